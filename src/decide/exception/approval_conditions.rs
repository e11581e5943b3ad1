//! The conditions that show an exception's approval (`Approved`, and
//! `BreakGlass` while a self-approval waits for review), and the Event when
//! glass is broken or the break-glass exception is reviewed.

use crate::api::PolicyExceptionStatus;
use crate::decide::approval::{How, Judged, State, reasons as approval};
use crate::decide::conditions::{Cond, find, is_true, types};
use crate::decide::notice::{Notice, reasons};

/// `Approved`, and `BreakGlass` when a break-glass approval exists.
pub fn conditions(j: &Judged, claimed_approver: &str) -> Vec<Cond> {
    let by = j
        .status
        .as_ref()
        .and_then(|s| s.approved_by.clone())
        .unwrap_or_default();
    let mut out = vec![match &j.state {
        State::Approved(How::Approvers) => Cond::yes(types::APPROVED, approval::APPROVED, format!("approved by {by}")),
        State::Approved(How::TrustedApplier) => Cond::yes(
            types::APPROVED,
            approval::TRUSTED_APPLIER,
            format!("approved via trusted applier: {by}; the reviewer Git named is {claimed_approver}"),
        ),
        State::Approved(How::BreakGlass) => Cond::yes(
            types::APPROVED,
            approval::BREAK_GLASS,
            format!("approved by break glass: {by}"),
        ),
        State::Awaiting { reason, message } => Cond::no(types::APPROVED, *reason, message.clone()),
    }];
    match j.break_glass {
        Some(false) => out.push(Cond::yes(
            types::BREAK_GLASS,
            approval::BREAK_GLASS,
            format!(
                "approved by its own requester in an emergency ({by}); an approver must review it: \
                 kubectl annotate policyexception NAME -n NAMESPACE steward.dev/approve=<their user name>"
            ),
        )),
        Some(true) => out.push(Cond::no(
            types::BREAK_GLASS,
            approval::REVIEWED,
            format!("break glass reviewed; approved by {by}"),
        )),
        None => {}
    }
    out
}

/// The Event when `BreakGlass` turns True (glass broken) or flips to
/// False (reviewed).
pub fn break_glass_event(previous: &PolicyExceptionStatus, status: &PolicyExceptionStatus) -> Option<Notice> {
    let was = find(&previous.conditions, types::BREAK_GLASS).map(|c| c.status == "True");
    let now = find(&status.conditions, types::BREAK_GLASS);
    let message = now.map(|c| c.message.clone()).unwrap_or_default();
    match (was, is_true(&status.conditions, types::BREAK_GLASS)) {
        (Some(true), true) => None,
        (_, true) => Some(Notice::warning(reasons::BREAK_GLASS, message)),
        (Some(true), false) if now.is_some() => Some(Notice::normal(reasons::BREAK_GLASS_REVIEWED, message)),
        _ => None,
    }
}
