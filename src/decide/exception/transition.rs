//! The Event for a phase change: one per change, none while the phase holds.

use super::Lifecycle;
use crate::api::{Phase, PolicyExceptionStatus};
use crate::decide::approval::reasons::{AWAITING_APPROVAL as AWAITING, REQUESTER_UNVERIFIED as UNVERIFIED};
use crate::decide::conditions::{find, types};
use crate::decide::invalid_spec::summary;
use crate::decide::notice::{Notice, reasons};
use crate::decide::time;

/// The Event for moving from `previous` to `lifecycle`; `has_grant`: the
/// spec asks for a grant; `status` is the one about to be held. An Active
/// exception whose grant was not in place (its name held by another
/// object) gets its Granted Event when the grant is finally made.
pub fn transition(
    previous: &PolicyExceptionStatus,
    lifecycle: &Lifecycle,
    has_grant: bool,
    status: &PolicyExceptionStatus,
) -> Option<Notice> {
    let granted_late =
        previous.phase == Some(Phase::Active) && previous.granted_role.is_none() && status.granted_role.is_some();
    let awaiting = |s: &PolicyExceptionStatus| {
        find(&s.conditions, types::ACTIVE).is_some_and(|c| c.reason == AWAITING || c.reason == UNVERIFIED)
    };
    // Waiting for approval and waiting for the start are both Pending: a
    // move between them is a transition of its own.
    let wait_changed = matches!(lifecycle, Lifecycle::Awaiting(..)) != awaiting(previous);
    let previous = previous.phase;
    if previous == Some(lifecycle.phase()) && !granted_late && !wait_changed {
        return None;
    }
    Some(match lifecycle {
        Lifecycle::Rejected(errors) => Notice::warning(reasons::REJECTED, summary(errors)),
        Lifecycle::Awaiting(_, why) => Notice::normal(reasons::AWAITING_APPROVAL, why.message.clone()),
        Lifecycle::Pending(w) => Notice::normal(
            reasons::PENDING,
            format!("valid; starts at {}", time::format(w.starts_at)),
        ),
        Lifecycle::Active(w) if has_grant => Notice::normal(
            reasons::GRANTED,
            format!(
                "granted Role {} until {}",
                status.granted_role.as_deref().unwrap_or_default(),
                time::format(w.expires_at)
            ),
        ),
        Lifecycle::Active(w) => Notice::normal(
            reasons::ACTIVATED,
            format!("active until {}", time::format(w.expires_at)),
        ),
        Lifecycle::Expired(_) if previous == Some(Phase::Active) && has_grant => {
            Notice::normal(reasons::EXPIRED, "expired; the grant was revoked")
        }
        Lifecycle::Expired(_) => Notice::normal(reasons::EXPIRED, "expired; nothing is granted or tolerated"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::fixtures::ts;
    use crate::decide::validate::Window;
    use crate::decide::{Invalid, Reason};

    #[test]
    fn one_event_per_phase_change() {
        let w = Window {
            starts_at: ts("2026-11-28T10:00:00Z"),
            expires_at: ts("2026-11-29T10:00:00Z"),
        };
        let rejected = Lifecycle::Rejected(vec![Invalid::new(Reason::MissingField, "spec.ticket", "empty")]);
        let status = PolicyExceptionStatus {
            granted_role: Some("steward-x:debug".into()),
            ..Default::default()
        };
        // (case, previous, now, has grant, reason, warning, note)
        type Case = (
            &'static str,
            Option<Phase>,
            Lifecycle,
            bool,
            Option<(&'static str, bool, &'static str)>,
        );
        let cases: Vec<Case> = vec![
            ("unchanged", Some(Phase::Active), Lifecycle::Active(w), true, None),
            (
                "rejected",
                None,
                rejected,
                true,
                Some(("Rejected", true, "spec.ticket: empty")),
            ),
            (
                "pending",
                None,
                Lifecycle::Pending(w),
                true,
                Some(("Pending", false, "valid; starts at 2026-11-28T10:00:00Z")),
            ),
            (
                "granted",
                Some(Phase::Pending),
                Lifecycle::Active(w),
                true,
                Some((
                    "Granted",
                    false,
                    "granted Role steward-x:debug until 2026-11-29T10:00:00Z",
                )),
            ),
            (
                "activated without a grant",
                Some(Phase::Pending),
                Lifecycle::Active(w),
                false,
                Some(("Activated", false, "active until 2026-11-29T10:00:00Z")),
            ),
            (
                "expired, grant revoked",
                Some(Phase::Active),
                Lifecycle::Expired(Some(w)),
                true,
                Some(("Expired", false, "expired; the grant was revoked")),
            ),
            (
                "expired from pending",
                Some(Phase::Pending),
                Lifecycle::Expired(Some(w)),
                true,
                Some(("Expired", false, "expired; nothing is granted or tolerated")),
            ),
        ];
        for (name, previous, lifecycle, has_grant, want) in cases {
            let before = PolicyExceptionStatus {
                phase: previous,
                granted_role: status.granted_role.clone(),
                ..Default::default()
            };
            let got = transition(&before, &lifecycle, has_grant, &status);
            let got = got.as_ref().map(|n| (n.reason, n.warning, n.note.as_str()));
            assert_eq!(got, want, "{name}");
        }
    }

    /// A grant made late (its name was held by another object) is Granted
    /// then, once; staying Active with it in place says nothing.
    #[test]
    fn a_grant_made_late_is_granted_once() {
        let w = Window {
            starts_at: ts("2026-11-28T10:00:00Z"),
            expires_at: ts("2026-11-29T10:00:00Z"),
        };
        let granted = PolicyExceptionStatus {
            phase: Some(Phase::Active),
            granted_role: Some("steward-x:debug".into()),
            ..Default::default()
        };
        let not_yet = PolicyExceptionStatus {
            granted_role: None,
            ..granted.clone()
        };
        let late = transition(&not_yet, &Lifecycle::Active(w), true, &granted);
        assert_eq!(late.map(|n| n.reason), Some("Granted"));
        assert_eq!(transition(&granted, &Lifecycle::Active(w), true, &granted), None);
    }
}
