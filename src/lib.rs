//! Steward: owners, least-privilege workload RBAC and time-bound exceptions
//! as Kubernetes objects, enforced by a controller.
//!
//! `api` holds the CRD types; `decide` is pure (spec, observed objects, now →
//! desired objects, status, next wake-up); `reconcile` is the thin I/O around
//! it; `cli` and `main.rs` only dispatch.

pub mod allocator;
pub mod api;
pub mod apply;
pub mod approval_key;
pub mod cache;
pub mod cli;
pub mod client;
pub mod compact;
pub mod crds;
pub mod decide;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod reconcile;
pub mod shard;
pub mod status_cmd;
pub mod telemetry;
#[cfg(test)]
mod test_support;
pub mod validate_cmd;
pub mod webhook;
