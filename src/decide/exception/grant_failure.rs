//! After the writes: an Active exception whose grant could not be put in
//! place (another object holds its name, the API server refused it) says so
//! in its status instead of claiming a grant it does not have. The phase
//! stays what the window says; the grant is simply not there.

use jiff::Timestamp;

use crate::api::PolicyExceptionStatus;
use crate::decide::conditions::{Cond, amend, reasons, types};

/// `status` as decided, amended with the grant's failure: no `grantedRole`,
/// `Ready=False` with reason `GrantNotApplied`, and `Stalled=True` when only
/// a person can fix it. `previous` conditions keep their transition times
/// where the status did not flip.
/// Its history is `previous`'s, with one `GrantNotApplied` entry (not a
/// Granted one: nothing was granted).
pub fn with_grant_failure(
    status: &PolicyExceptionStatus,
    previous: &PolicyExceptionStatus,
    problem: &str,
    needs_person: bool,
    now: Timestamp,
) -> PolicyExceptionStatus {
    let mut out = status.clone();
    out.granted_role = None;
    let message = format!("the grant is not in place: {problem}");
    out.history = previous.history.clone();
    if out.history.last().map(|h| h.reason.as_str()) != Some(reasons::GRANT_NOT_APPLIED) {
        super::history::append(&mut out.history, now, reasons::GRANT_NOT_APPLIED, &message);
    }
    let previous = previous.conditions.as_slice();
    let mut wanted = vec![Cond::no(types::READY, reasons::GRANT_NOT_APPLIED, message.clone())];
    if needs_person {
        wanted.push(Cond::yes(types::STALLED, reasons::GRANT_NOT_APPLIED, message));
    }
    amend(&mut out.conditions, previous, wanted, status.observed_generation, now);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::conditions::{find, is_true};
    use crate::decide::exception::decide;
    use crate::decide::fixtures::{ceiling, control, exception, ts};

    #[test]
    fn a_grant_not_in_place_is_not_claimed() {
        let now = ts("2026-11-28T12:00:00Z");
        let d = decide(
            &exception(),
            Some(&control()),
            &ceiling(),
            crate::decide::approval::Trust::AssumeApproved,
            now,
        );
        assert!(d.status.granted_role.is_some());
        for (needs_person, stalled) in [(true, true), (false, false)] {
            let before = PolicyExceptionStatus::default();
            let s = with_grant_failure(&d.status, &before, "Role taken", needs_person, now);
            assert_eq!(s.history.last().map(|h| h.reason.as_str()), Some("GrantNotApplied"));
            assert!(s.history.iter().all(|h| h.reason != "Granted"), "{:?}", s.history);
            assert_eq!(s.granted_role, None);
            assert_eq!(s.phase, d.status.phase, "the window decides the phase");
            let ready = find(&s.conditions, types::READY).expect("Ready");
            assert_eq!(ready.status, "False");
            assert_eq!(ready.reason, reasons::GRANT_NOT_APPLIED);
            assert!(ready.message.contains("Role taken"));
            assert_eq!(is_true(&s.conditions, types::STALLED), stalled);
            assert!(find(&s.conditions, types::ACTIVE).is_some(), "other conditions stand");
        }
    }
}
