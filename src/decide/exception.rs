//! The whole PolicyException lifecycle, as one pure function:
//! (exception, its control, the ceiling, now) → phase, desired grant, status,
//! next wake-up and the event to record.
//!
//! ```text
//!   invalid spec ───────────────────────────────► Rejected
//!   now < startsAt ─────────────────────────────► Pending   (wake at startsAt)
//!   startsAt ≤ now < expiresAt ─────────────────► Active    (wake at ExpiringSoon, expiresAt)
//!   now ≥ expiresAt, or previously Expired,
//!   or now ≥ the expiresAt recorded in status ──► Expired   (sticky, never again Active)
//! ```

use jiff::{SignedDuration, Timestamp};
use kube::{Resource, ResourceExt};

use super::ceiling::Ceiling;
use super::conditions::{Cond, merge, reasons, types};
use super::invalid_spec::{Invalid, summary};
use super::notice::{self, Notice};
use super::rbac::{self, ManagedFor, RbacPair};
use super::time;
use super::validate::{self, Against, Window};
use crate::api::{ControlOwnership, Phase, PolicyException, PolicyExceptionStatus};

/// ExpiringSoon covers the last fifth of the window…
const EXPIRING_SOON_FRACTION: i32 = 5;
/// …but never more than the last seven days.
const EXPIRING_SOON_MAX: SignedDuration = SignedDuration::from_hours(7 * 24);

/// Where an exception is in its life, with the instants that matter.
#[derive(Clone, Debug, PartialEq)]
pub enum Lifecycle {
    /// The spec is invalid.
    Rejected(Vec<Invalid>),
    /// Valid, not yet started.
    Pending(Window),
    /// Valid and in force.
    Active(Window),
    /// Over. `window` is `None` when the spec was changed into something
    /// invalid after it expired; it stays expired all the same.
    Expired(Option<Window>),
}

impl Lifecycle {
    /// The phase written to status.
    pub fn phase(&self) -> Phase {
        match self {
            Lifecycle::Rejected(_) => Phase::Rejected,
            Lifecycle::Pending(_) => Phase::Pending,
            Lifecycle::Active(_) => Phase::Active,
            Lifecycle::Expired(_) => Phase::Expired,
        }
    }
}

/// When ExpiringSoon turns on for this window.
pub fn expiring_soon_from(w: Window) -> Timestamp {
    let length = w.expires_at.duration_since(w.starts_at);
    let lead = (length / EXPIRING_SOON_FRACTION).min(EXPIRING_SOON_MAX);
    w.expires_at.checked_sub(lead).unwrap_or(w.starts_at)
}

/// The instant an exception's default start is measured from.
pub fn created_at(pe: &PolicyException, now: Timestamp) -> Timestamp {
    pe.metadata.creation_timestamp.as_ref().map(|t| t.0).unwrap_or(now)
}

/// Classifies an exception at `now`. Pure: the same inputs always give the
/// same answer. Parses the control's exception rules; a caller judging many
/// exceptions to one control parses them once and calls [`lifecycle_against`].
pub fn lifecycle(
    pe: &PolicyException,
    control: Option<&ControlOwnership>,
    ceiling: &Ceiling,
    now: Timestamp,
) -> Lifecycle {
    let rules = control.map(|c| validate::exception_rules(&c.spec));
    lifecycle_against(pe, Against::of(rules.as_ref()), ceiling, now)
}

/// Classifies an exception at `now` against its control's parsed rules.
pub fn lifecycle_against(pe: &PolicyException, control: Against<'_>, ceiling: &Ceiling, now: Timestamp) -> Lifecycle {
    // Expiry is sticky from the moment the window the controller last
    // recorded in status is over, even if it never got to write Expired
    // (down, stalled, handing over the lease): an expiresAt moved forward
    // after that instant must not revive the grant. An extension counts
    // only once the controller has recorded it before the old expiry.
    let status = pe.status.as_ref();
    let recorded = status
        .and_then(|s| s.expires_at.as_deref())
        .and_then(|t| time::parse(t).ok());
    let was_expired = status.is_some_and(|s| s.phase == Some(Phase::Expired)) || recorded.is_some_and(|r| now >= r);
    let alone = validate::exception_alone(&pe.spec, created_at(pe, now));
    let checked = alone
        .clone()
        .and_then(|w| validate::exception_against(&pe.spec, w, control, ceiling));
    match checked {
        // Expiry is sticky: a changed or re-applied spec never revives it,
        // and the record keeps the window that really ended, not a later
        // expiresAt written since.
        _ if was_expired => Lifecycle::Expired(checked.ok().map(|w| {
            let expires_at = recorded.map_or(w.expires_at, |r| r.min(w.expires_at));
            Window {
                starts_at: w.starts_at.min(expires_at),
                expires_at,
            }
        })),
        Err(errors) => match alone {
            // A window that is over stays over, even if the control vanished.
            Ok(w) if now >= w.expires_at => Lifecycle::Expired(Some(w)),
            _ => Lifecycle::Rejected(errors),
        },
        Ok(w) if now < w.starts_at => Lifecycle::Pending(w),
        Ok(w) if now < w.expires_at => Lifecycle::Active(w),
        Ok(w) => Lifecycle::Expired(Some(w)),
    }
}

/// Everything the reconciler needs to do for one exception.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// Where it is.
    pub lifecycle: Lifecycle,
    /// The grant that must exist; `None` means any grant must be deleted.
    pub grant: Option<RbacPair>,
    /// The status to hold (compare before writing).
    pub status: PolicyExceptionStatus,
    /// The next instant the decision changes by itself.
    pub wake_at: Option<Timestamp>,
    /// Event for a phase change, if any: Granted, Activated, Expired,
    /// Rejected or Pending.
    pub event: Option<Notice>,
}

/// Decides the desired state of one exception at `now`.
pub fn decide(pe: &PolicyException, control: Option<&ControlOwnership>, ceiling: &Ceiling, now: Timestamp) -> Decision {
    let lifecycle = lifecycle(pe, control, ceiling, now);
    let name = pe.name_any();
    let namespace = pe.namespace().unwrap_or_default();
    let grant = match (&lifecycle, &pe.spec.grant) {
        (Lifecycle::Active(_), Some(g)) => Some(rbac::pair(
            &rbac::exception_name(&name),
            &namespace,
            &g.service_account,
            &g.rules,
            &ManagedFor::Exception {
                exception: &name,
                control: &pe.spec.control,
            },
            pe.controller_owner_ref(&()),
        )),
        _ => None,
    };
    let (conditions, wake_at) = conditions_and_wake(&lifecycle, grant.is_some(), now);
    let previous = pe.status.clone().unwrap_or_default();
    let generation = pe.metadata.generation;
    let expires_at = match &lifecycle {
        Lifecycle::Pending(w) | Lifecycle::Active(w) | Lifecycle::Expired(Some(w)) => Some(time::format(w.expires_at)),
        Lifecycle::Expired(None) => previous.expires_at.clone(),
        // Keeps the expiry of the last window it was valid for, so a detour
        // through Rejected does not wipe the record that makes expiry sticky.
        Lifecycle::Rejected(_) => previous.expires_at.clone(),
    };
    let status = PolicyExceptionStatus {
        observed_generation: generation,
        phase: Some(lifecycle.phase()),
        expires_at,
        granted_role: grant.as_ref().map(|g| g.name().to_string()),
        conditions: merge(&previous.conditions, conditions, generation, now),
    };
    let event = transition(previous.phase, &lifecycle, &pe.spec.grant.is_some(), &status);
    Decision {
        lifecycle,
        grant,
        status,
        wake_at,
        event,
    }
}

fn conditions_and_wake(lifecycle: &Lifecycle, granted: bool, now: Timestamp) -> (Vec<Cond>, Option<Timestamp>) {
    match lifecycle {
        Lifecycle::Rejected(errors) => {
            let reason = errors.first().map(|e| e.reason.as_str()).unwrap_or(reasons::INVALID);
            let message = summary(errors);
            (
                vec![
                    Cond::no(types::READY, reason, format!("Rejected: {message}")),
                    Cond::yes(types::STALLED, reason, message.clone()),
                    Cond::no(types::VALID, reason, message),
                    Cond::no(types::ACTIVE, reasons::REJECTED, "nothing is granted or tolerated"),
                ],
                None,
            )
        }
        Lifecycle::Pending(w) => (
            vec![
                Cond::yes(
                    types::READY,
                    reasons::PENDING,
                    format!("valid; starts at {}", time::format(w.starts_at)),
                ),
                Cond::yes(
                    types::VALID,
                    reasons::VALID,
                    "the exception satisfies its control and the grant ceiling",
                ),
                Cond::no(
                    types::ACTIVE,
                    reasons::NOT_STARTED,
                    format!("starts at {}", time::format(w.starts_at)),
                ),
                Cond::no(
                    types::EXPIRED,
                    reasons::NOT_EXPIRED,
                    format!("expires at {}", time::format(w.expires_at)),
                ),
                Cond::no(
                    types::EXPIRING_SOON,
                    reasons::NOT_STARTED,
                    format!("starts at {}", time::format(w.starts_at)),
                ),
            ],
            Some(w.starts_at),
        ),
        Lifecycle::Active(w) => {
            let soon_from = expiring_soon_from(*w);
            let soon = now >= soon_from;
            let what = if granted {
                "grant and tolerations apply"
            } else {
                "tolerations apply"
            };
            (
                vec![
                    Cond::yes(
                        types::READY,
                        reasons::ACTIVE,
                        format!("active until {}; {what}", time::format(w.expires_at)),
                    ),
                    Cond::yes(
                        types::VALID,
                        reasons::VALID,
                        "the exception satisfies its control and the grant ceiling",
                    ),
                    Cond::yes(
                        types::ACTIVE,
                        reasons::ACTIVE,
                        format!("active until {}", time::format(w.expires_at)),
                    ),
                    Cond::no(
                        types::EXPIRED,
                        reasons::NOT_EXPIRED,
                        format!("expires at {}", time::format(w.expires_at)),
                    ),
                    if soon {
                        Cond::yes(
                            types::EXPIRING_SOON,
                            reasons::EXPIRING_SOON,
                            format!("expires at {}", time::format(w.expires_at)),
                        )
                    } else {
                        Cond::no(
                            types::EXPIRING_SOON,
                            reasons::NOT_EXPIRING_SOON,
                            format!("expiring soon from {}", time::format(soon_from)),
                        )
                    },
                ],
                Some(if soon { w.expires_at } else { soon_from }),
            )
        }
        Lifecycle::Expired(w) => {
            let at = w
                .map(|w| format!(" at {}", time::format(w.expires_at)))
                .unwrap_or_default();
            let message = format!(
                "expired{at}; nothing is granted or tolerated. Expiry is final: file a new exception to extend it"
            );
            (
                vec![
                    Cond::no(types::READY, reasons::EXPIRED, message.clone()),
                    Cond::yes(types::STALLED, reasons::EXPIRED, message.clone()),
                    Cond::no(types::ACTIVE, reasons::EXPIRED, message.clone()),
                    Cond::yes(types::EXPIRED, reasons::EXPIRED, message),
                ],
                None,
            )
        }
    }
}

fn transition(
    previous: Option<Phase>,
    lifecycle: &Lifecycle,
    has_grant: &bool,
    status: &PolicyExceptionStatus,
) -> Option<Notice> {
    let phase = lifecycle.phase();
    if previous == Some(phase) {
        return None;
    }
    use notice::reasons::{ACTIVATED, EXPIRED, GRANTED, PENDING, REJECTED};
    Some(match lifecycle {
        Lifecycle::Rejected(errors) => Notice::warning(REJECTED, summary(errors)),
        Lifecycle::Pending(w) => Notice::normal(PENDING, format!("valid; starts at {}", time::format(w.starts_at))),
        Lifecycle::Active(w) if *has_grant => Notice::normal(
            GRANTED,
            format!(
                "granted Role {} until {}",
                status.granted_role.as_deref().unwrap_or_default(),
                time::format(w.expires_at)
            ),
        ),
        Lifecycle::Active(w) => Notice::normal(ACTIVATED, format!("active until {}", time::format(w.expires_at))),
        Lifecycle::Expired(_) if previous == Some(Phase::Active) && *has_grant => {
            Notice::normal(EXPIRED, "expired; the grant was revoked")
        }
        Lifecycle::Expired(_) => Notice::normal(EXPIRED, "expired; nothing is granted or tolerated"),
    })
}

/// The event for a grant removed because the exception left Active other
/// than by expiry (rejected after a change, or deleted).
pub fn revoked_note(name: &str) -> String {
    format!("revoked the grant {}", rbac::exception_name(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::Reason;
    use crate::decide::fixtures::{ceiling, control, exception, rule, ts};

    /// The lifecycle at every edge of the window (startsAt 10:00 on the
    /// 28th, expiresAt 10:00 on the 29th).
    #[test]
    fn phase_at_each_edge() {
        let cases = [
            ("2026-11-28T09:59:59Z", Phase::Pending, Some("2026-11-28T10:00:00Z")),
            ("2026-11-28T10:00:00Z", Phase::Active, Some("2026-11-29T05:12:00Z")),
            ("2026-11-29T09:59:59.999Z", Phase::Active, Some("2026-11-29T10:00:00Z")),
            ("2026-11-29T10:00:00Z", Phase::Expired, None),
            ("2026-11-29T10:00:01Z", Phase::Expired, None),
        ];
        let (pe, co, c) = (exception(), control(), ceiling());
        for (now, phase, wake) in cases {
            let d = decide(&pe, Some(&co), &c, ts(now));
            assert_eq!(d.lifecycle.phase(), phase, "at {now}");
            assert_eq!(d.wake_at, wake.map(ts), "wake-up at {now}");
            assert_eq!(d.grant.is_some(), phase == Phase::Active, "grant at {now}");
            assert_eq!(d.status.phase, Some(phase));
            assert_eq!(d.status.granted_role.is_some(), phase == Phase::Active);
        }
    }

    #[test]
    fn conditions_follow_the_table_of_the_contract() {
        let (pe, co, c) = (exception(), control(), ceiling());
        let get = |d: &Decision, t: &str| {
            d.status
                .conditions
                .iter()
                .find(|x| x.type_ == t)
                .map(|x| (x.status.clone(), x.reason.clone()))
        };
        let pending = decide(&pe, Some(&co), &c, ts("2026-11-28T09:00:00Z"));
        assert_eq!(get(&pending, "Ready"), Some(("True".into(), "Pending".into())));
        assert_eq!(get(&pending, "Active"), Some(("False".into(), "NotStarted".into())));
        assert_eq!(get(&pending, "Stalled"), None);
        let active = decide(&pe, Some(&co), &c, ts("2026-11-28T12:00:00Z"));
        assert_eq!(get(&active, "Ready"), Some(("True".into(), "Active".into())));
        assert_eq!(get(&active, "Active"), Some(("True".into(), "Active".into())));
        assert_eq!(get(&active, "ExpiringSoon").map(|x| x.0), Some("False".into()));
        let soon = decide(&pe, Some(&co), &c, ts("2026-11-29T06:00:00Z"));
        assert_eq!(get(&soon, "ExpiringSoon").map(|x| x.0), Some("True".into()));
        let expired = decide(&pe, Some(&co), &c, ts("2026-11-30T00:00:00Z"));
        assert_eq!(get(&expired, "Ready"), Some(("False".into(), "Expired".into())));
        assert_eq!(get(&expired, "Stalled"), Some(("True".into(), "Expired".into())));
        assert_eq!(get(&expired, "Expired"), Some(("True".into(), "Expired".into())));
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

    #[test]
    fn expiry_is_sticky() {
        let (mut pe, co, c) = (exception(), control(), ceiling());
        let expired = decide(&pe, Some(&co), &c, ts("2026-11-30T00:00:00Z"));
        pe.status = Some(expired.status);
        // Someone extends the window after it ended: still Expired.
        pe.spec.expires_at = "2026-11-30T06:00:00Z".into();
        pe.spec.starts_at = Some("2026-11-29T12:00:00Z".into());
        let again = decide(&pe, Some(&co), &c, ts("2026-11-30T00:00:01Z"));
        assert_eq!(again.lifecycle.phase(), Phase::Expired);
        assert!(again.grant.is_none());
        assert_eq!(again.wake_at, None);
    }

    /// The controller recorded the window while Active, then missed the
    /// expiry instant; meanwhile the spec was extended by a day.
    #[test]
    fn a_window_extended_after_the_recorded_expiry_stays_expired() {
        let (mut pe, co, c) = (exception(), control(), ceiling());
        pe.status = Some(decide(&pe, Some(&co), &c, ts("2026-11-28T12:00:00Z")).status);
        assert_eq!(
            pe.status.as_ref().unwrap().expires_at.as_deref(),
            Some("2026-11-29T10:00:00Z")
        );
        pe.spec.expires_at = "2026-11-30T10:00:00Z".into();
        let cases = [
            // Seen before the recorded expiry: a legitimate extension.
            ("2026-11-29T09:59:59Z", Phase::Active),
            ("2026-11-29T10:00:00Z", Phase::Expired),
            ("2026-11-29T10:00:01Z", Phase::Expired),
            ("2026-11-30T09:00:00Z", Phase::Expired),
        ];
        for (now, phase) in cases {
            let d = decide(&pe, Some(&co), &c, ts(now));
            assert_eq!(d.lifecycle.phase(), phase, "at {now}");
            assert_eq!(d.grant.is_some(), phase == Phase::Active, "grant at {now}");
        }
        // The record keeps the window that really ended.
        let after = decide(&pe, Some(&co), &c, ts("2026-11-29T10:00:01Z"));
        assert_eq!(after.status.expires_at.as_deref(), Some("2026-11-29T10:00:00Z"));
        // A detour through Rejected keeps the recorded expiry, so fixing the
        // spec after it does not revive the grant either.
        let mut detour = pe.clone();
        detour.spec.ticket = "JIRA-1".into();
        let rejected = decide(&detour, Some(&co), &c, ts("2026-11-29T09:00:00Z"));
        assert_eq!(rejected.lifecycle.phase(), Phase::Rejected);
        assert_eq!(rejected.status.expires_at.as_deref(), Some("2026-11-29T10:00:00Z"));
        detour.status = Some(rejected.status);
        detour.spec.ticket = pe.spec.ticket.clone();
        let fixed = decide(&detour, Some(&co), &c, ts("2026-11-29T11:00:00Z"));
        assert_eq!(fixed.lifecycle.phase(), Phase::Expired);
        assert!(fixed.grant.is_none());
        // Once the extension is recorded (before the old expiry), the new
        // window holds.
        pe.status = Some(decide(&pe, Some(&co), &c, ts("2026-11-29T09:59:59Z")).status);
        let later = decide(&pe, Some(&co), &c, ts("2026-11-29T12:00:00Z"));
        assert_eq!(later.lifecycle.phase(), Phase::Active);
    }

    #[test]
    fn unchanged_input_gives_identical_status_and_no_event() {
        let (mut pe, co, c) = (exception(), control(), ceiling());
        let first = decide(&pe, Some(&co), &c, ts("2026-11-28T12:00:00Z"));
        assert_eq!(first.event.as_ref().map(|e| e.reason), Some("Granted"));
        pe.status = Some(first.status.clone());
        let second = decide(&pe, Some(&co), &c, ts("2026-11-28T13:00:00Z"));
        assert_eq!(second.status, first.status);
        assert_eq!(second.event, None);
    }

    #[test]
    fn every_rejection_reason() {
        type Edit = fn(&mut PolicyException, &mut ControlOwnership);
        let cases: Vec<(&str, Reason, &str, Edit)> = vec![
            ("empty ticket", Reason::MissingField, "spec.ticket", |e, _| {
                e.spec.ticket = " ".into()
            }),
            (
                "approver not allowed",
                Reason::ApproverNotAllowed,
                "spec.approver",
                |e, _| e.spec.approver = "mallory@example.com".into(),
            ),
            ("owner may approve", Reason::MissingField, "-", |e, _| {
                e.spec.approver = "payments-team".into();
                e.spec.ticket = String::new();
            }),
            ("self approval", Reason::ApproverIsRequester, "spec.approver", |e, _| {
                e.spec.requester = Some("Alice@Example.com".into())
            }),
            (
                "ticket pattern",
                Reason::TicketPatternMismatch,
                "spec.ticket",
                |e, _| e.spec.ticket = "SEC-12a".into(),
            ),
            ("window too long", Reason::WindowTooLong, "spec.expiresAt", |e, _| {
                e.spec.expires_at = "2026-11-30T10:00:01Z".into()
            }),
            ("window backwards", Reason::InvalidWindow, "spec.expiresAt", |e, _| {
                e.spec.expires_at = "2026-11-28T10:00:00Z".into()
            }),
            (
                "grant to another control's identity",
                Reason::GrantOutsideControl,
                "spec.grant.serviceAccount",
                |_, c| c.spec.workload_identities.retain(|id| id.service_account != "api"),
            ),
            (
                "grant to an undeclared service account",
                Reason::GrantOutsideControl,
                "spec.grant.serviceAccount",
                |e, _| e.spec.grant.as_mut().unwrap().service_account = "default".into(),
            ),
            ("not utc", Reason::InvalidTimestamp, "spec.expiresAt", |e, _| {
                e.spec.expires_at = "2026-11-29T10:00:00+02:00".into()
            }),
            (
                "outside ceiling",
                Reason::RuleOutsideCeiling,
                "spec.grant.rules[0].verbs",
                |e, _| e.spec.grant.as_mut().unwrap().rules = vec![rule(&[""], &["secrets"], &["get"])],
            ),
            (
                "refused verb",
                Reason::RuleRefused,
                "spec.grant.rules[0].verbs",
                |e, _| e.spec.grant.as_mut().unwrap().rules = vec![rule(&[""], &["pods"], &["escalate"])],
            ),
            (
                "other namespace",
                Reason::OutsideNamespace,
                "spec.grant.serviceAccount",
                |e, _| {
                    e.spec.grant.as_mut().unwrap().service_account = "system:serviceaccount:kube-system:admin".into()
                },
            ),
            ("control invalid", Reason::ControlInvalid, "spec.control", |_, c| {
                c.spec.exception_policy.as_mut().unwrap().ticket_pattern = Some("(".into())
            }),
        ];
        for (name, reason, field, edit) in cases {
            let (mut pe, mut co) = (exception(), control());
            edit(&mut pe, &mut co);
            let d = decide(&pe, Some(&co), &ceiling(), ts("2026-11-28T12:00:00Z"));
            let Lifecycle::Rejected(errors) = &d.lifecycle else {
                panic!("{name}: not rejected: {:?}", d.lifecycle)
            };
            assert_eq!(errors[0].reason, reason, "{name}: {errors:?}");
            if field != "-" {
                assert_eq!(errors[0].field, field, "{name}");
            }
            assert!(d.grant.is_none(), "{name}: granted");
            assert_eq!(d.wake_at, None, "{name}");
            assert_eq!(d.event.as_ref().map(|e| e.reason), Some("Rejected"));
            let stalled = d.status.conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
            assert_eq!(stalled.reason, reason.as_str());
        }
        let d = decide(&exception(), None, &ceiling(), ts("2026-11-28T12:00:00Z"));
        assert!(matches!(&d.lifecycle, Lifecycle::Rejected(e) if e[0].reason == Reason::ControlNotFound));
    }

    #[test]
    fn an_over_window_stays_expired_even_without_its_control() {
        let pe = exception();
        let d = decide(&pe, None, &ceiling(), ts("2026-12-01T00:00:00Z"));
        assert_eq!(d.lifecycle.phase(), Phase::Expired);
    }

    #[test]
    fn the_grant_is_exactly_one_role_and_one_binding() {
        let d = decide(&exception(), Some(&control()), &ceiling(), ts("2026-11-28T12:00:00Z"));
        let g = d.grant.unwrap();
        assert_eq!(g.name(), "steward-x-debug");
        assert_eq!(
            g.role.rules.as_ref().unwrap(),
            &vec![rule(&[""], &["pods/log"], &["get"])]
        );
        let subjects = g.binding.subjects.unwrap();
        assert_eq!(subjects.len(), 1);
        assert_eq!(subjects[0].name, "api");
        assert_eq!(subjects[0].namespace.as_deref(), Some("shop"));
        assert_eq!(g.binding.role_ref.kind, "Role");
        let owner = &g.role.metadata.owner_references.unwrap()[0];
        assert_eq!(owner.uid, "pe-uid");
    }

    #[test]
    fn default_start_is_creation() {
        let mut pe = exception();
        pe.spec.starts_at = None;
        let d = decide(&pe, Some(&control()), &ceiling(), ts("2026-11-28T09:30:00Z"));
        assert_eq!(d.lifecycle.phase(), Phase::Active);
        // created 09:00, expires next day 10:00: 25 h < 2 d.
    }
}
