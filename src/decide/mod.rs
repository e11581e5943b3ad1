//! The pure heart of Steward: functions of (spec, observed objects, now,
//! config) that return desired objects, status and the next wake-up. Nothing
//! here talks to the API server or reads the clock; the reconcilers and
//! `steward validate` call into it.

pub mod admission;
pub mod ceiling;
pub mod conditions;
pub mod control;
pub mod drift;
pub mod duration;
pub mod exception;
#[cfg(test)]
mod fixtures;
pub mod invalid_spec;
pub mod notice;
pub mod policy_report;
pub mod rbac;
pub mod time;
pub mod validate;

pub use ceiling::Ceiling;
pub use invalid_spec::{Invalid, Reason};
