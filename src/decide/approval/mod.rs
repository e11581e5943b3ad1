//! Approval as a fact: who asked for an exception and who approved it, by
//! their authenticated identities, bound to exactly what was approved.
//!
//! | module | owns |
//! |---|---|
//! | `signing` | the key, the digest of approved content, signed records |
//! | `policy` | a control's approval rules, parsed and checked |
//! | `admit` | what admission records on a create, change or approval |
//! | `judge` | whether the exception as it stands is approved |
//!
//! ```text
//!   create / change of what an approval covers ─► requested-by = the writer, approvals cleared
//!       … by a trusted applier (over Git's own content) ─► approved via trusted applier
//!   annotate steward.dev/approve=<own name> ─────► + approval (not the requester, an approver)
//!   annotate steward.dev/break-glass=<own name> ─► + break-glass approval (short windows only)
//!   controller: signed, current digest, approver still allowed, ≥ minApprovals ─► applies
//! ```

mod admit;
mod judge;
mod policy;
mod signing;

pub use admit::{Admitted, Caller, PolicyOf, SHORT_DIGEST, admit};
pub use judge::{How, Judged, State, Trust, judge, reasons, records, verified_requester};
pub use policy::{BreakGlass, Policy, parse};
#[cfg(test)]
pub(crate) use signing::sample_record;
pub use signing::{Key, MIN_KEY_LEN, digest, record, request_record};

/// Signs `pe` as it stands as requested by `requester` and approved by
/// `approver` (an approver of the fixture control), for tests of what
/// happens to approved exceptions.
#[cfg(test)]
pub fn approved_for_tests(
    mut pe: crate::api::PolicyException,
    key: &Key,
    requester: &str,
    approver: &str,
) -> crate::api::PolicyException {
    use crate::api::approval::{APPROVALS_ANNOTATION, REQUESTED_BY_ANNOTATION, Via};
    let ns = pe.metadata.namespace.clone().unwrap_or_default();
    let name = pe.metadata.name.clone().unwrap_or_default();
    let d = digest(&pe);
    let at = "2026-11-01T00:00:00Z";
    let r = record(key, (&ns, &name), requester, vec![], Via::Request, &d, at);
    let a = record(key, (&ns, &name), approver, vec![], Via::Approver, &d, at);
    let annotations = pe.metadata.annotations.get_or_insert_with(Default::default);
    annotations.insert(
        REQUESTED_BY_ANNOTATION.into(),
        serde_json::to_string(&r).unwrap_or_default(),
    );
    annotations.insert(
        APPROVALS_ANNOTATION.into(),
        serde_json::to_string(&[a]).unwrap_or_default(),
    );
    pe
}

#[cfg(test)]
mod tests;
