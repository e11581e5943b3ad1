//! `metav1.Condition` lists: build the desired set, then carry over
//! `lastTransitionTime` from the previous status for every condition whose
//! status did not flip, so an unchanged object produces an identical status
//! (and therefore no write).

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Condition types. API: kstatus, `kubectl wait`, the Argo CD health checks
/// and users' alerts match these strings.
pub mod types {
    /// kstatus: the object is in its desired state.
    pub const READY: &str = "Ready";
    /// kstatus: progress needs a change of spec.
    pub const STALLED: &str = "Stalled";
    /// The spec validates.
    pub const VALID: &str = "Valid";
    /// ControlOwnership: the review date has passed.
    pub const REVIEW_OVERDUE: &str = "ReviewOverdue";
    /// ControlOwnership: the review falls due within the control's warning
    /// window.
    pub const REVIEW_DUE_SOON: &str = "ReviewDueSoon";
    /// ControlOwnership: undeclared bindings grant a managed identity something.
    pub const DRIFTED: &str = "Drifted";
    /// PolicyException: in force.
    pub const ACTIVE: &str = "Active";
    /// PolicyException: the window is over.
    pub const EXPIRED: &str = "Expired";
    /// PolicyException: in the last part of its window.
    pub const EXPIRING_SOON: &str = "ExpiringSoon";
    /// PolicyException: approved, as verified, as it stands.
    pub const APPROVED: &str = "Approved";
    /// PolicyException: approved by break glass and not yet reviewed.
    pub const BREAK_GLASS: &str = "BreakGlass";
}

/// Condition reasons, besides the validation reasons of
/// [`Reason`](super::Reason). API, like the types.
pub mod reasons {
    /// Fallback when an invalid spec names no failure.
    pub const INVALID: &str = "Invalid";
    /// The spec validates.
    pub const VALID: &str = "Valid";
    /// ControlOwnership: owners, identities and RBAC are in place.
    pub const RECONCILED: &str = "Reconciled";
    /// ControlOwnership: the review date has passed.
    pub const REVIEW_OVERDUE: &str = "ReviewOverdue";
    /// ControlOwnership: the review date is ahead.
    pub const REVIEW_UP_TO_DATE: &str = "ReviewUpToDate";
    /// ControlOwnership: the review falls due soon.
    pub const REVIEW_DUE_SOON: &str = "ReviewDueSoon";
    /// ControlOwnership: drift found.
    pub const UNDECLARED_BINDINGS: &str = "UndeclaredBindings";
    /// ControlOwnership: no drift.
    pub const NO_DRIFT: &str = "NoDrift";
    /// PolicyException: valid, waiting for its start.
    pub const PENDING: &str = "Pending";
    /// PolicyException: not started yet.
    pub const NOT_STARTED: &str = "NotStarted";
    /// PolicyException: in force.
    pub const ACTIVE: &str = "Active";
    /// PolicyException: the window is not over.
    pub const NOT_EXPIRED: &str = "NotExpired";
    /// PolicyException: in the last part of its window.
    pub const EXPIRING_SOON: &str = "ExpiringSoon";
    /// PolicyException: before the last part of its window.
    pub const NOT_EXPIRING_SOON: &str = "NotExpiringSoon";
    /// PolicyException: the window is over.
    pub const EXPIRED: &str = "Expired";
    /// PolicyException: the spec is invalid.
    pub const REJECTED: &str = "Rejected";
    /// ControlOwnership: an identity's Role or RoleBinding could not be put
    /// in place.
    pub const IDENTITY_NOT_APPLIED: &str = "IdentityNotApplied";
    /// PolicyException: its grant's Role or RoleBinding could not be put in
    /// place.
    pub const GRANT_NOT_APPLIED: &str = "GrantNotApplied";
}

/// Puts `wanted` into `conditions` (a status already decided), replacing
/// conditions of the same type and adding new ones after the first;
/// `previous` keeps transition times where a status did not flip.
pub fn amend(
    conditions: &mut Vec<Condition>,
    previous: &[Condition],
    wanted: Vec<Cond>,
    generation: Option<i64>,
    now: Timestamp,
) {
    for c in merge(previous, wanted, generation, now) {
        match conditions.iter_mut().find(|o| o.type_ == c.type_) {
            Some(slot) => *slot = c,
            None => conditions.insert(1.min(conditions.len()), c),
        }
    }
}

/// `metav1.Condition` status of a true condition.
pub const TRUE: &str = "True";
/// `metav1.Condition` status of a false condition.
pub const FALSE: &str = "False";

/// A condition before it is stamped with times and generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cond {
    /// Condition type, one of [`types`].
    pub type_: &'static str,
    /// True or False.
    pub status: bool,
    /// CamelCase reason.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
}

impl Cond {
    /// A condition that is True.
    pub fn yes(type_: &'static str, reason: impl Into<String>, message: impl Into<String>) -> Self {
        Cond {
            type_,
            status: true,
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// A condition that is False.
    pub fn no(type_: &'static str, reason: impl Into<String>, message: impl Into<String>) -> Self {
        Cond {
            type_,
            status: false,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

fn status_str(b: bool) -> &'static str {
    if b { TRUE } else { FALSE }
}

/// Stamps `desired` with `generation` and transition times: a condition
/// whose status equals the previous one keeps its old `lastTransitionTime`;
/// any other gets `now`.
pub fn merge(previous: &[Condition], desired: Vec<Cond>, generation: Option<i64>, now: Timestamp) -> Vec<Condition> {
    desired
        .into_iter()
        .map(|c| {
            let status = status_str(c.status);
            let since = previous
                .iter()
                .find(|p| p.type_ == c.type_ && p.status == status)
                .map(|p| p.last_transition_time.clone())
                .unwrap_or(Time(now));
            Condition {
                type_: c.type_.to_string(),
                status: status.to_string(),
                reason: c.reason,
                message: capped(c.message),
                observed_generation: generation,
                last_transition_time: since,
            }
        })
        .collect()
}

/// Longest condition message kept, in bytes. A spec with thousands of
/// invalid rules would otherwise write a status too large for the API
/// server (and for anyone reading it); the first failures say enough.
pub const MESSAGE_MAX: usize = 2048;

/// `message` cut to `MESSAGE_MAX` bytes on a character boundary, saying so.
fn capped(mut message: String) -> String {
    if message.len() <= MESSAGE_MAX {
        return message;
    }
    let mut cut = MESSAGE_MAX - '…'.len_utf8();
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    message.truncate(cut);
    message.push('…');
    message
}

/// Finds a condition by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Is the condition of this type True?
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == TRUE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn keeps_transition_time_while_status_holds() {
        let t0 = ts("2026-11-28T10:00:00Z");
        let t1 = ts("2026-11-28T11:00:00Z");
        let first = merge(&[], vec![Cond::yes("Ready", "Active", "a")], Some(1), t0);
        assert_eq!(first[0].last_transition_time, Time(t0));
        // Same status, new message and generation: time stays.
        let second = merge(&first, vec![Cond::yes("Ready", "Active", "b")], Some(2), t1);
        assert_eq!(second[0].last_transition_time, Time(t0));
        assert_eq!(second[0].observed_generation, Some(2));
        // Flip: time moves.
        let third = merge(&second, vec![Cond::no("Ready", "Expired", "c")], Some(2), t1);
        assert_eq!(third[0].last_transition_time, Time(t1));
    }

    #[test]
    fn identical_input_gives_identical_output() {
        let t0 = ts("2026-11-28T10:00:00Z");
        let t1 = ts("2026-11-28T12:00:00Z");
        let desired = || vec![Cond::yes("Ready", "Active", "m"), Cond::no("Stalled", "Ok", "m")];
        let first = merge(&[], desired(), Some(3), t0);
        assert_eq!(merge(&first, desired(), Some(3), t1), first);
    }

    #[test]
    fn messages_are_capped_on_a_character_boundary() {
        let now: Timestamp = "2026-11-29T12:00:00Z".parse().unwrap();
        let long = "é".repeat(MESSAGE_MAX);
        let got = merge(&[], vec![Cond::no(types::READY, "R", long)], None, now);
        assert!(got[0].message.len() <= MESSAGE_MAX, "{}", got[0].message.len());
        assert!(got[0].message.ends_with('…'));
        let short = merge(&[], vec![Cond::no(types::READY, "R", "fine")], None, now);
        assert_eq!(short[0].message, "fine");
    }
}
