//! Conditions step: Ready, Valid, Stalled, ReviewOverdue and Drifted from
//! the validation verdict, the review date and the drift found; and the
//! warning Events for conditions that just turned True.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::view::ControlView;
use crate::api::{ControlOwnership, ControlOwnershipStatus, IdentityStatus};
use crate::decide::conditions::{Cond, FALSE, find, is_true, reasons, types};
use crate::decide::invalid_spec::{Invalid, summary};
use crate::decide::notice::{self, Notice};
use crate::decide::time;
use crate::decide::validate::ValidControl;

/// The conditions of a control, before they are stamped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conditions {
    /// In status order.
    pub conditions: Vec<Cond>,
    /// `status.nextReviewDue` (valid specs only).
    pub next_review_due: Option<String>,
    /// When the review falls due, if it has not yet.
    pub wake_at: Option<Timestamp>,
}

/// The conditions of `view` at `now`, given the drift each identity reports.
pub fn conditions(view: &ControlView<'_>, identities: &[IdentityStatus], now: Timestamp) -> Conditions {
    let valid = match &view.checked {
        Ok(valid) => valid,
        Err(errors) => {
            return Conditions {
                conditions: invalid(errors),
                next_review_due: None,
                wake_at: None,
            };
        }
    };
    let due = review_due(view.control, valid, now);
    let overdue = now >= due;
    let soon_from = due.checked_sub(valid.review_warning).unwrap_or(due);
    let soon = !overdue && now >= soon_from;
    Conditions {
        conditions: vec![
            Cond::yes(
                types::READY,
                reasons::RECONCILED,
                "owners, identities and RBAC are in place",
            ),
            Cond::yes(
                types::VALID,
                reasons::VALID,
                "the spec is valid and fits the grant ceiling",
            ),
            review(due, overdue),
            review_due_soon(due, soon_from, soon, overdue),
            drifted(identities),
        ],
        next_review_due: Some(time::format(due)),
        // The next instant a condition changes by itself: the warning, then
        // the due date.
        wake_at: (!overdue).then_some(if now < soon_from { soon_from } else { due }),
    }
}

fn review_due_soon(due: Timestamp, soon_from: Timestamp, soon: bool, overdue: bool) -> Cond {
    let at = time::format(due);
    if soon {
        Cond::yes(
            types::REVIEW_DUE_SOON,
            reasons::REVIEW_DUE_SOON,
            format!("review due at {at}"),
        )
    } else if overdue {
        Cond::no(
            types::REVIEW_DUE_SOON,
            reasons::REVIEW_OVERDUE,
            format!("review was due at {at}"),
        )
    } else {
        Cond::no(
            types::REVIEW_DUE_SOON,
            reasons::REVIEW_UP_TO_DATE,
            format!("review due soon from {}", time::format(soon_from)),
        )
    }
}

/// `lastReviewed + interval`; a control never reviewed is due from its
/// creation.
fn review_due(co: &ControlOwnership, valid: &ValidControl, now: Timestamp) -> Timestamp {
    valid
        .last_reviewed
        .and_then(|t| t.checked_add(valid.review_interval).ok())
        .or_else(|| co.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(now)
}

fn review(due: Timestamp, overdue: bool) -> Cond {
    if overdue {
        Cond::yes(
            types::REVIEW_OVERDUE,
            reasons::REVIEW_OVERDUE,
            format!("review was due at {}", time::format(due)),
        )
    } else {
        Cond::no(
            types::REVIEW_OVERDUE,
            reasons::REVIEW_UP_TO_DATE,
            format!("next review due at {}", time::format(due)),
        )
    }
}

fn drifted(identities: &[IdentityStatus]) -> Cond {
    let list: Vec<String> = identities
        .iter()
        .flat_map(|i| {
            i.drift
                .iter()
                .map(move |d| format!("{} {} ({}) grants {}", d.kind, d.name, d.role_ref, i.service_account))
        })
        .collect();
    if list.is_empty() {
        Cond::no(
            types::DRIFTED,
            reasons::NO_DRIFT,
            "no undeclared bindings grant the managed identities anything",
        )
    } else {
        Cond::yes(types::DRIFTED, reasons::UNDECLARED_BINDINGS, list.join("; "))
    }
}

/// An invalid spec: not Ready, Stalled until the spec changes, not Valid;
/// the reason is the first failure's, the message lists them all.
fn invalid(errors: &[Invalid]) -> Vec<Cond> {
    let reason = errors.first().map(|e| e.reason.as_str()).unwrap_or(reasons::INVALID);
    let message = summary(errors);
    vec![
        Cond::no(types::READY, reason, format!("invalid: {message}")),
        Cond::yes(types::STALLED, reason, message.clone()),
        Cond::no(types::VALID, reason, message),
    ]
}

/// A warning when the spec turned invalid (Valid turned False: Stalled may
/// have been True already, for an identity that could not be applied), and
/// for each of ReviewOverdue and Drifted that turned True, since `previous`.
pub fn notices(previous: &[Condition], status: &ControlOwnershipStatus) -> Vec<Notice> {
    let is_false = |conds: &[Condition], t: &str| find(conds, t).is_some_and(|c| c.status == FALSE);
    let rejected = (is_false(&status.conditions, types::VALID) && !is_false(previous, types::VALID))
        .then(|| Notice::warning(notice::reasons::REJECTED, message_of(status, types::VALID)));
    let warned = [
        (types::REVIEW_DUE_SOON, notice::reasons::REVIEW_DUE_SOON),
        (types::REVIEW_OVERDUE, notice::reasons::REVIEW_OVERDUE),
        (types::DRIFTED, notice::reasons::DRIFT_DETECTED),
    ];
    rejected
        .into_iter()
        .chain(
            warned
                .into_iter()
                .filter(|(t, _)| is_true(&status.conditions, t) && !is_true(previous, t))
                .map(|(t, reason)| Notice::warning(reason, message_of(status, t))),
        )
        .collect()
}

fn message_of(status: &ControlOwnershipStatus, type_: &str) -> String {
    find(&status.conditions, type_)
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::DriftBinding;
    use crate::decide::conditions::merge;
    use crate::decide::fixtures::{ceiling, control, ts};

    fn summary_of(c: &Conditions) -> Vec<(&str, bool, &str)> {
        c.conditions
            .iter()
            .map(|c| (c.type_, c.status, c.reason.as_str()))
            .collect()
    }

    /// The fixture was last reviewed 2026-11-20 with a 30d interval, so it
    /// is due 2026-12-20 and due soon from 2026-12-06 (14 days before);
    /// created 2026-11-01.
    #[test]
    fn review_table() {
        // (case, lastReviewed, now, due soon, overdue, next review due, wake)
        type Case = (
            &'static str,
            Option<&'static str>,
            &'static str,
            bool,
            bool,
            &'static str,
            Option<&'static str>,
        );
        const LAST: Option<&str> = Some("2026-11-20T00:00:00Z");
        const DUE: &str = "2026-12-20T00:00:00Z";
        let cases: [Case; 6] = [
            (
                "long before",
                LAST,
                "2026-11-28T00:00:00Z",
                false,
                false,
                DUE,
                Some("2026-12-06T00:00:00Z"),
            ),
            (
                "just before the warning",
                LAST,
                "2026-12-05T23:59:59Z",
                false,
                false,
                DUE,
                Some("2026-12-06T00:00:00Z"),
            ),
            (
                "the warning starts",
                LAST,
                "2026-12-06T00:00:00Z",
                true,
                false,
                DUE,
                Some(DUE),
            ),
            (
                "just before due",
                LAST,
                "2026-12-19T23:59:59Z",
                true,
                false,
                DUE,
                Some(DUE),
            ),
            ("at due", LAST, DUE, false, true, DUE, None),
            (
                "never reviewed: due from creation",
                None,
                "2026-11-28T00:00:00Z",
                false,
                true,
                "2026-11-01T00:00:00Z",
                None,
            ),
        ];
        let c = ceiling();
        for (name, last, now, soon, overdue, due, wake) in cases {
            let mut co = control();
            co.spec.review.last_reviewed = last.map(String::from);
            let got = conditions(
                &ControlView::new(&co, &c, crate::decide::approval::Trust::AssumeApproved),
                &[],
                ts(now),
            );
            let reason = if overdue { "ReviewOverdue" } else { "ReviewUpToDate" };
            assert_eq!(summary_of(&got)[2], ("ReviewOverdue", overdue, reason), "{name}");
            let soon_reason = match (soon, overdue) {
                (true, _) => "ReviewDueSoon",
                (false, true) => "ReviewOverdue",
                (false, false) => "ReviewUpToDate",
            };
            assert_eq!(summary_of(&got)[3], ("ReviewDueSoon", soon, soon_reason), "{name}");
            assert_eq!(got.next_review_due.as_deref(), Some(due), "{name}");
            assert_eq!(got.wake_at, wake.map(ts), "{name}");
            assert_eq!(summary_of(&got)[0], ("Ready", true, "Reconciled"), "{name}");
        }
    }

    #[test]
    fn the_warning_window_is_the_controls() {
        let c = ceiling();
        // (warnBefore, now, due soon, wake)
        let cases = [
            ("1d", "2026-12-18T23:59:59Z", false, "2026-12-19T00:00:00Z"),
            ("1d", "2026-12-19T00:00:00Z", true, "2026-12-20T00:00:00Z"),
        ];
        for (warn, now, soon, wake) in cases {
            let mut co = control();
            co.spec.review.last_reviewed = Some("2026-11-20T00:00:00Z".into());
            co.spec.review.warn_before = Some(warn.into());
            let got = conditions(
                &ControlView::new(&co, &c, crate::decide::approval::Trust::AssumeApproved),
                &[],
                ts(now),
            );
            let all = summary_of(&got);
            assert!(all.len() > 3, "{warn}: {all:?}");
            assert_eq!(all[3].1, soon, "{warn} at {now}");
            assert_eq!(got.wake_at, Some(ts(wake)), "{warn} at {now}");
        }
        let mut bad = control();
        bad.spec.review.warn_before = Some("two weeks".into());
        let got = conditions(
            &ControlView::new(&bad, &c, crate::decide::approval::Trust::AssumeApproved),
            &[],
            ts("2026-11-28T00:00:00Z"),
        );
        assert!(!summary_of(&got)[0].1, "an unparsable window is an invalid spec");
    }

    #[test]
    fn drift_and_invalid_table() {
        let binding = DriftBinding {
            kind: "ClusterRoleBinding".into(),
            name: "legacy".into(),
            role_ref: "ClusterRole/admin".into(),
        };
        let drifting = [IdentityStatus {
            problem: None,
            service_account: "api".into(),
            role: "steward:payments:api".into(),
            drift: vec![binding],
        }];
        let c = ceiling();
        let valid = control();
        let mut invalid = control();
        invalid.spec.backup_owner.name = "payments-team".into();
        // (case, control, identities, conditions, Drifted message)
        type Case<'a> = (
            &'a str,
            &'a ControlOwnership,
            &'a [IdentityStatus],
            Vec<(&'a str, bool, &'a str)>,
        );
        let cases: [Case; 3] = [
            ("no drift", &valid, &[], vec![("Drifted", false, "NoDrift")]),
            (
                "drift",
                &valid,
                &drifting,
                vec![("Drifted", true, "UndeclaredBindings")],
            ),
            (
                "invalid",
                &invalid,
                &drifting,
                vec![
                    ("Ready", false, "OwnerIsBackupOwner"),
                    ("Stalled", true, "OwnerIsBackupOwner"),
                    ("Valid", false, "OwnerIsBackupOwner"),
                ],
            ),
        ];
        for (name, co, identities, want) in cases {
            let got = conditions(
                &ControlView::new(co, &c, crate::decide::approval::Trust::AssumeApproved),
                identities,
                ts("2026-11-28T12:00:00Z"),
            );
            let all = summary_of(&got);
            let tail = &all[all.len() - want.len()..];
            assert_eq!(tail, want, "{name}");
        }
        let got = conditions(
            &ControlView::new(&valid, &c, crate::decide::approval::Trust::AssumeApproved),
            &drifting,
            ts("2026-11-28T12:00:00Z"),
        );
        assert_eq!(
            got.conditions[4].message,
            "ClusterRoleBinding legacy (ClusterRole/admin) grants api"
        );
        let got = conditions(
            &ControlView::new(&invalid, &c, crate::decide::approval::Trust::AssumeApproved),
            &[],
            ts("2026-11-28T12:00:00Z"),
        );
        assert_eq!((got.next_review_due, got.wake_at), (None, None));
    }

    #[test]
    fn notices_only_for_conditions_turning_true() {
        let now = ts("2026-11-28T12:00:00Z");
        let stamp = |conds: Vec<Cond>| ControlOwnershipStatus {
            conditions: merge(&[], conds, Some(1), now),
            ..Default::default()
        };
        let on = |t| Cond::yes(t, "R", format!("{t} on"));
        let off = |t| Cond::no(t, "R", "off");
        // Valid is the one warned about when it turns False.
        let invalid = || Cond::no("Valid", "R", "Valid on");
        let valid = || Cond::yes("Valid", "R", "valid");
        /// (case, previous, now, event reasons)
        type Case = (&'static str, Vec<Cond>, Vec<Cond>, Vec<&'static str>);
        let cases: Vec<Case> = vec![
            ("nothing", vec![], vec![off("Stalled"), valid()], vec![]),
            (
                "all three turn on",
                vec![valid(), off("ReviewOverdue")],
                vec![invalid(), on("Stalled"), on("ReviewOverdue"), on("Drifted")],
                vec!["Rejected", "ReviewOverdue", "DriftDetected"],
            ),
            (
                "invalid while already Stalled for an identity",
                vec![valid(), on("Stalled")],
                vec![invalid(), on("Stalled")],
                vec!["Rejected"],
            ),
            ("still invalid", vec![invalid()], vec![invalid()], vec![]),
            ("Stalled alone is not a rejection", vec![], vec![on("Stalled")], vec![]),
            ("still on", vec![on("Drifted")], vec![on("Drifted")], vec![]),
            ("Ready is not warned", vec![], vec![on("Ready")], vec![]),
        ];
        for (name, before, after, want) in cases {
            let got = notices(&stamp(before).conditions, &stamp(after));
            assert_eq!(got.iter().map(|n| n.reason).collect::<Vec<_>>(), want, "{name}");
            assert!(got.iter().all(|n| n.warning && n.note.ends_with(" on")), "{name}");
        }
    }
}
