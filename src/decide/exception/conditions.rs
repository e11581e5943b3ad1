//! The conditions of each phase of an exception, and the next instant they
//! change by themselves (start, ExpiringSoon, expiry).

use jiff::{SignedDuration, Timestamp};

use super::{Lifecycle, Waiting};
use crate::decide::conditions::{Cond, reasons, types};
use crate::decide::invalid_spec::{Invalid, summary};
use crate::decide::time;
use crate::decide::validate::Window;

/// ExpiringSoon covers the last fifth of the window…
const EXPIRING_SOON_FRACTION: i32 = 5;
/// …but never more than the last seven days.
const EXPIRING_SOON_MAX: SignedDuration = SignedDuration::from_hours(7 * 24);

const VALID_MESSAGE: &str = "the exception satisfies its control and the grant ceiling";

/// When ExpiringSoon turns on for this window.
pub fn expiring_soon_from(w: Window) -> Timestamp {
    let length = w.expires_at.duration_since(w.starts_at);
    let lead = (length / EXPIRING_SOON_FRACTION).min(EXPIRING_SOON_MAX);
    w.expires_at.checked_sub(lead).unwrap_or(w.starts_at)
}

/// The conditions for `lifecycle` at `now` (`granted`: a grant exists), and
/// when they next change by themselves.
pub fn conditions_and_wake(lifecycle: &Lifecycle, granted: bool, now: Timestamp) -> (Vec<Cond>, Option<Timestamp>) {
    match lifecycle {
        Lifecycle::Rejected(errors) => (rejected(errors), None),
        Lifecycle::Pending(w) => (pending(*w), Some(w.starts_at)),
        Lifecycle::Awaiting(w, why) => (awaiting(*w, why), Some(w.expires_at)),
        Lifecycle::Active(w) => active(*w, granted, now),
        Lifecycle::Expired(w) => (expired(*w), None),
    }
}

fn rejected(errors: &[Invalid]) -> Vec<Cond> {
    let reason = errors.first().map(|e| e.reason.as_str()).unwrap_or(reasons::INVALID);
    let message = summary(errors);
    vec![
        Cond::no(types::READY, reason, format!("Rejected: {message}")),
        Cond::yes(types::STALLED, reason, message.clone()),
        Cond::no(types::VALID, reason, message),
        Cond::no(types::ACTIVE, reasons::REJECTED, "nothing is granted or tolerated"),
    ]
}

fn pending(w: Window) -> Vec<Cond> {
    let starts = format!("starts at {}", time::format(w.starts_at));
    vec![
        Cond::yes(types::READY, reasons::PENDING, format!("valid; {starts}")),
        Cond::yes(types::VALID, reasons::VALID, VALID_MESSAGE),
        Cond::no(types::ACTIVE, reasons::NOT_STARTED, starts.clone()),
        Cond::no(
            types::EXPIRED,
            reasons::NOT_EXPIRED,
            format!("expires at {}", time::format(w.expires_at)),
        ),
        Cond::no(types::EXPIRING_SOON, reasons::NOT_STARTED, starts),
    ]
}

/// Valid but not approved: Ready (kstatus Current, like Pending: it waits
/// for a person, not for the controller), nothing applies, and the
/// condition says who may approve and how.
fn awaiting(w: Window, why: &Waiting) -> Vec<Cond> {
    vec![
        Cond::yes(
            types::READY,
            why.reason,
            format!("valid; awaiting approval, nothing applies: {}", why.message),
        ),
        Cond::yes(types::VALID, reasons::VALID, VALID_MESSAGE),
        Cond::no(types::ACTIVE, why.reason, why.message.clone()),
        Cond::no(
            types::EXPIRED,
            reasons::NOT_EXPIRED,
            format!("expires at {}", time::format(w.expires_at)),
        ),
        Cond::no(types::EXPIRING_SOON, why.reason, "not approved"),
    ]
}

fn active(w: Window, granted: bool, now: Timestamp) -> (Vec<Cond>, Option<Timestamp>) {
    let soon_from = expiring_soon_from(w);
    let soon = now >= soon_from;
    let what = if granted {
        "grant and tolerations apply"
    } else {
        "tolerations apply"
    };
    let until = time::format(w.expires_at);
    let expiring_soon = if soon {
        Cond::yes(
            types::EXPIRING_SOON,
            reasons::EXPIRING_SOON,
            format!("expires at {until}"),
        )
    } else {
        Cond::no(
            types::EXPIRING_SOON,
            reasons::NOT_EXPIRING_SOON,
            format!("expiring soon from {}", time::format(soon_from)),
        )
    };
    let conditions = vec![
        Cond::yes(types::READY, reasons::ACTIVE, format!("active until {until}; {what}")),
        Cond::yes(types::VALID, reasons::VALID, VALID_MESSAGE),
        Cond::yes(types::ACTIVE, reasons::ACTIVE, format!("active until {until}")),
        Cond::no(types::EXPIRED, reasons::NOT_EXPIRED, format!("expires at {until}")),
        expiring_soon,
    ];
    (conditions, Some(if soon { w.expires_at } else { soon_from }))
}

fn expired(w: Option<Window>) -> Vec<Cond> {
    let at = w
        .map(|w| format!(" at {}", time::format(w.expires_at)))
        .unwrap_or_default();
    let message = format!(
        "expired{at}; nothing is granted or tolerated any more. Expiry is final: remove this exception from Git, or file a new one to extend it"
    );
    // Expiry is the designed end of an exception, not a failure: Ready=True
    // (kstatus Current), no Stalled, so a GitOps health check over objects
    // still in Git does not turn red when one of them reaches its end.
    vec![
        Cond::yes(types::READY, reasons::EXPIRED, message.clone()),
        Cond::no(types::ACTIVE, reasons::EXPIRED, message.clone()),
        Cond::yes(types::EXPIRED, reasons::EXPIRED, message),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::Reason;
    use crate::decide::fixtures::ts;

    fn window() -> Window {
        Window {
            starts_at: ts("2026-11-28T10:00:00Z"),
            expires_at: ts("2026-11-29T10:00:00Z"),
        }
    }

    /// (case, lifecycle, now, conditions as (type, status, reason), wake)
    type Case = (
        &'static str,
        Lifecycle,
        &'static str,
        Vec<(&'static str, bool, &'static str)>,
        Option<&'static str>,
    );

    fn check(cases: Vec<Case>) {
        for (name, lifecycle, now, want, wake) in cases {
            let (conds, wake_at) = conditions_and_wake(&lifecycle, true, ts(now));
            let got: Vec<_> = conds.iter().map(|c| (c.type_, c.status, c.reason.as_str())).collect();
            assert_eq!(got, want, "{name}");
            assert_eq!(wake_at, wake.map(ts), "{name}");
        }
    }

    /// For the window 2026-11-28T10:00Z to 2026-11-29T10:00Z.
    #[test]
    fn conditions_while_valid() {
        let valid = |ready, active, soon| {
            vec![
                ("Ready", true, ready),
                ("Valid", true, "Valid"),
                ("Active", active == "Active", active),
                ("Expired", false, "NotExpired"),
                ("ExpiringSoon", soon == "ExpiringSoon", soon),
            ]
        };
        check(vec![
            (
                "pending",
                Lifecycle::Pending(window()),
                "2026-11-28T09:00:00Z",
                valid("Pending", "NotStarted", "NotStarted"),
                Some("2026-11-28T10:00:00Z"),
            ),
            (
                "active",
                Lifecycle::Active(window()),
                "2026-11-28T12:00:00Z",
                valid("Active", "Active", "NotExpiringSoon"),
                Some("2026-11-29T05:12:00Z"),
            ),
            (
                "expiring soon",
                Lifecycle::Active(window()),
                "2026-11-29T05:12:00Z",
                valid("Active", "Active", "ExpiringSoon"),
                Some("2026-11-29T10:00:00Z"),
            ),
        ]);
    }

    #[test]
    fn conditions_when_nothing_applies() {
        let rejected = Lifecycle::Rejected(vec![Invalid::new(Reason::WindowTooLong, "spec.expiresAt", "m")]);
        let why = "WindowTooLong";
        check(vec![
            (
                "rejected",
                rejected,
                "2026-11-28T12:00:00Z",
                vec![
                    ("Ready", false, why),
                    ("Stalled", true, why),
                    ("Valid", false, why),
                    ("Active", false, "Rejected"),
                ],
                None,
            ),
            (
                "expired",
                Lifecycle::Expired(Some(window())),
                "2026-11-29T10:00:00Z",
                vec![
                    ("Ready", true, "Expired"),
                    ("Active", false, "Expired"),
                    ("Expired", true, "Expired"),
                ],
                None,
            ),
        ]);
    }

    #[test]
    fn messages_say_what_applies_and_until_when() {
        let at = ts("2026-11-28T12:00:00Z");
        let ready = |granted| {
            conditions_and_wake(&Lifecycle::Active(window()), granted, at).0[0]
                .message
                .clone()
        };
        assert_eq!(
            ready(true),
            "active until 2026-11-29T10:00:00Z; grant and tolerations apply"
        );
        assert_eq!(ready(false), "active until 2026-11-29T10:00:00Z; tolerations apply");
        let (expired, _) = conditions_and_wake(&Lifecycle::Expired(None), false, at);
        assert!(
            expired[0].message.starts_with("expired; nothing is granted"),
            "{}",
            expired[0].message
        );
    }

    #[test]
    fn expiring_soon_is_the_last_fifth_capped_at_seven_days() {
        let w = |s: &str, e: &str| Window {
            starts_at: ts(s),
            expires_at: ts(e),
        };
        assert_eq!(
            expiring_soon_from(w("2026-11-28T10:00:00Z", "2026-11-29T10:00:00Z")),
            ts("2026-11-29T05:12:00Z")
        );
        assert_eq!(
            expiring_soon_from(w("2026-01-01T00:00:00Z", "2026-03-02T00:00:00Z")),
            ts("2026-02-23T00:00:00Z")
        );
    }
}
