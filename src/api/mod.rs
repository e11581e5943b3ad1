//! The custom resource types of `steward.dev/v1alpha1` (SPEC §1) and nothing
//! else: no behaviour lives here, so the CRDs in `crds/` are a pure function of
//! these definitions. Doc comments become `kubectl explain` text.

// `printcolumn(...)` repeats `type_ = "string"` once per column, which
// clippy mistakes for a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

pub mod approval;
mod control_ownership;
pub mod limits;
mod policy_exception;
mod schema;

pub use approval::{ApprovalEntry, ApprovalStatus};
pub use control_ownership::*;
pub use policy_exception::*;

/// The API group of both kinds.
pub const GROUP: &str = "steward.dev";
/// Label set on every object Steward manages.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY_VALUE: &str = "steward";
/// Label naming the ControlOwnership a managed object belongs to.
pub const CONTROL_LABEL: &str = "steward.dev/control";
/// Label naming the PolicyException a managed grant belongs to.
pub const EXCEPTION_LABEL: &str = "steward.dev/exception";
/// Finalizer that removes managed RBAC before the owner disappears
/// (garbage collection is not guaranteed to run).
pub const FINALIZER: &str = "steward.dev/cleanup";
