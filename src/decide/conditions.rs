//! `metav1.Condition` lists: build the desired set, then carry over
//! `lastTransitionTime` from the previous status for every condition whose
//! status did not flip, so an unchanged object produces an identical status
//! (and therefore no write).

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// A condition before it is stamped with times and generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cond {
    /// Condition type, e.g. `Ready`.
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
    if b { "True" } else { "False" }
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
                message: c.message,
                observed_generation: generation,
                last_transition_time: since,
            }
        })
        .collect()
}

/// Finds a condition by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Is the condition of this type True?
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
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
}
