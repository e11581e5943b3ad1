//! When a control's new count of active exceptions may wait to be written.
//!
//! `activeExceptions` changes with every exception of the control that
//! becomes Active or ends, and each change was a status write of the whole
//! control: in a burst of ten thousand new exceptions, one per exception,
//! each costing the API server more than the exception's own status. The
//! count is a summary; each exception's own status, the PolicyReport and
//! the metrics say the same at once. So while a burst of new work is under
//! way, a status that differs from the written one in the count alone waits
//! for the burst to end, at most `MAX_WAIT` from the first change that
//! waited: a control then writes its count once per burst, and never later
//! than that under a flood. Any other difference (a condition, drift, an
//! identity, the generation observed) is written at once.

use jiff::{SignedDuration, Timestamp};

use crate::api::ControlOwnershipStatus;

/// Longest a changed count waits behind a burst of new work.
pub const MAX_WAIT: SignedDuration = SignedDuration::from_mins(5);

/// The instant by which `new` must be written if it may wait now, or None
/// to write it now. `burst`: new work is waiting or in progress;
/// `waiting_since`: when this control's count first waited, if it does.
pub fn count_may_wait(
    written: Option<&ControlOwnershipStatus>,
    new: &ControlOwnershipStatus,
    waiting_since: Option<Timestamp>,
    burst: bool,
    now: Timestamp,
) -> Option<Timestamp> {
    let written = written?;
    if !burst || written.active_exceptions == new.active_exceptions {
        return None;
    }
    let mut count_aside = new.clone();
    count_aside.active_exceptions = written.active_exceptions;
    if &count_aside != written {
        return None;
    }
    let deadline = waiting_since.unwrap_or(now).checked_add(MAX_WAIT).ok()?;
    (now < deadline).then_some(deadline)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::IdentityStatus;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("a timestamp")
    }

    fn status(count: i32) -> ControlOwnershipStatus {
        ControlOwnershipStatus {
            observed_generation: Some(3),
            next_review_due: Some("2026-12-01T00:00:00Z".into()),
            active_exceptions: Some(count),
            identities: vec![IdentityStatus {
                service_account: "api".into(),
                role: "steward-payments-api".into(),
                ..Default::default()
            }],
            conditions: vec![],
        }
    }

    #[test]
    fn only_a_changed_count_waits_and_only_during_a_burst() {
        let now = at("2026-11-30T10:00:00Z");
        let later = |s: i64| now.checked_add(SignedDuration::from_secs(s)).expect("later");
        let written = status(2);
        let mut newer_generation = status(3);
        newer_generation.observed_generation = Some(4);
        let mut other_identity = status(3);
        other_identity.identities[0].role = "steward-payments-other".into();
        let never_written: Option<&ControlOwnershipStatus> = None;
        let deadline = Some(later(300));
        // (case, written, new, waiting since, burst, now, wait until)
        type Case<'a> = (
            &'a str,
            Option<&'a ControlOwnershipStatus>,
            ControlOwnershipStatus,
            Option<Timestamp>,
            bool,
            Timestamp,
            Option<Timestamp>,
        );
        let cases: Vec<Case<'_>> = vec![
            (
                "count alone, burst: waits",
                Some(&written),
                status(3),
                None,
                true,
                now,
                deadline,
            ),
            (
                "count alone, no burst: now",
                Some(&written),
                status(3),
                None,
                false,
                now,
                None,
            ),
            (
                "count and generation: now",
                Some(&written),
                newer_generation,
                None,
                true,
                now,
                None,
            ),
            (
                "count and an identity: now",
                Some(&written),
                other_identity,
                None,
                true,
                now,
                None,
            ),
            (
                "nothing changed: nothing waits",
                Some(&written),
                status(2),
                None,
                true,
                now,
                None,
            ),
            ("the first status: now", never_written, status(3), None, true, now, None),
            (
                "waiting since, before the bound: the same deadline",
                Some(&written),
                status(4),
                Some(now),
                true,
                later(299),
                deadline,
            ),
            (
                "waiting since, at the bound: now",
                Some(&written),
                status(4),
                Some(now),
                true,
                later(300),
                None,
            ),
            (
                "waiting since, after the bound: now",
                Some(&written),
                status(4),
                Some(now),
                true,
                later(301),
                None,
            ),
        ];
        for (case, written, new, since, burst, now, want) in cases {
            assert_eq!(count_may_wait(written, &new, since, burst, now), want, "{case}");
        }
    }

    #[test]
    fn a_count_back_to_the_written_one_does_not_wait() {
        // Two changes that cancel out while waiting: nothing to write.
        let now = at("2026-11-30T10:00:00Z");
        assert_eq!(count_may_wait(Some(&status(2)), &status(2), Some(now), true, now), None);
    }
}
