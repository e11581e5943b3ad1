//! The pure heart of Steward: functions of (spec, observed objects, now,
//! config) that return desired objects, status and the next wake-up. Nothing
//! here talks to the API server or reads the clock; the reconcilers and
//! `steward validate` call into it.
//!
//! | module | owns |
//! |---|---|
//! | `validate` | the one validation of both kinds (controller, admission, `steward validate`) |
//! | `invalid_spec` | what a failure looks like: `Invalid`, its `Reason`, the summary message |
//! | `ceiling` | the grant ceiling and the rules refused whatever it says |
//! | `ceiling_change` | what narrowing the ceiling takes away, as admission warnings |
//! | `control` | the ControlOwnership decision, step by step, over a per-control `ControlView` |
//! | `exception` | the PolicyException lifecycle and decision |
//! | `admission` | webhook verdicts, from the same view and lifecycle |
//! | `approval` | verified requesters and approvals: records, signatures, the verdict |
//! | `drift` | which bindings name a service account |
//! | `rbac` | the Role/RoleBinding pairs Steward manages |
//! | `sweep` | which managed objects have lost their owner |
//! | `conditions` | condition types and reasons, and merging a condition list |
//! | `notice` | the Event a decision asks for, and the event reasons |
//! | `policy_report` | the per-namespace PolicyReport |
//! | `time`, `duration` | timestamps and durations as users write them |

pub mod admission;
pub mod approval;
pub mod ceiling;
pub mod ceiling_change;
pub mod conditions;
pub mod control;
pub mod drift;
pub mod duration;
pub mod exception;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod invalid_spec;
pub mod notice;
pub mod policy_report;
pub mod rbac;
pub mod sweep;
pub mod time;
pub mod validate;

pub use ceiling::Ceiling;
pub use invalid_spec::{Invalid, Reason};
