//! The lifecycle and the decision, end to end.

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
        let d = decide(
            &pe,
            Some(&co),
            &c,
            crate::decide::approval::Trust::AssumeApproved,
            ts(now),
        );
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
    let pending = decide(
        &pe,
        Some(&co),
        &c,
        crate::decide::approval::Trust::AssumeApproved,
        ts("2026-11-28T09:00:00Z"),
    );
    assert_eq!(get(&pending, "Ready"), Some(("True".into(), "Pending".into())));
    assert_eq!(get(&pending, "Active"), Some(("False".into(), "NotStarted".into())));
    assert_eq!(get(&pending, "Stalled"), None);
    let active = decide(
        &pe,
        Some(&co),
        &c,
        crate::decide::approval::Trust::AssumeApproved,
        ts("2026-11-28T12:00:00Z"),
    );
    assert_eq!(get(&active, "Ready"), Some(("True".into(), "Active".into())));
    assert_eq!(get(&active, "Active"), Some(("True".into(), "Active".into())));
    assert_eq!(get(&active, "ExpiringSoon").map(|x| x.0), Some("False".into()));
    let soon = decide(
        &pe,
        Some(&co),
        &c,
        crate::decide::approval::Trust::AssumeApproved,
        ts("2026-11-29T06:00:00Z"),
    );
    assert_eq!(get(&soon, "ExpiringSoon").map(|x| x.0), Some("True".into()));
    let expired = decide(
        &pe,
        Some(&co),
        &c,
        crate::decide::approval::Trust::AssumeApproved,
        ts("2026-11-30T00:00:00Z"),
    );
    assert_eq!(get(&expired, "Ready"), Some(("True".into(), "Expired".into())));
    assert_eq!(get(&expired, "Stalled"), None, "expiry is an end, not a failure");
    assert_eq!(get(&expired, "Expired"), Some(("True".into(), "Expired".into())));
}

#[test]
fn expiry_is_sticky() {
    let (mut pe, co, c) = (exception(), control(), ceiling());
    let expired = decide(
        &pe,
        Some(&co),
        &c,
        crate::decide::approval::Trust::AssumeApproved,
        ts("2026-11-30T00:00:00Z"),
    );
    pe.status = Some(expired.status);
    // Someone extends the window after it ended: still Expired.
    pe.spec.expires_at = "2026-11-30T06:00:00Z".into();
    pe.spec.starts_at = Some("2026-11-29T12:00:00Z".into());
    let again = decide(
        &pe,
        Some(&co),
        &c,
        crate::decide::approval::Trust::AssumeApproved,
        ts("2026-11-30T00:00:01Z"),
    );
    assert_eq!(again.lifecycle.phase(), Phase::Expired);
    assert!(again.grant.is_none());
    assert_eq!(again.wake_at, None);
}

/// The controller recorded the window while Active, then missed the
/// expiry instant; meanwhile the spec was extended by a day.
#[test]
fn a_window_extended_after_the_recorded_expiry_stays_expired() {
    let (mut pe, co, c) = (exception(), control(), ceiling());
    pe.status = Some(
        decide(
            &pe,
            Some(&co),
            &c,
            crate::decide::approval::Trust::AssumeApproved,
            ts("2026-11-28T12:00:00Z"),
        )
        .status,
    );
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
        let d = decide(
            &pe,
            Some(&co),
            &c,
            crate::decide::approval::Trust::AssumeApproved,
            ts(now),
        );
        assert_eq!(d.lifecycle.phase(), phase, "at {now}");
        assert_eq!(d.grant.is_some(), phase == Phase::Active, "grant at {now}");
    }
    // The record keeps the window that really ended.
    let after = decide(
        &pe,
        Some(&co),
        &c,
        crate::decide::approval::Trust::AssumeApproved,
        ts("2026-11-29T10:00:01Z"),
    );
    assert_eq!(after.status.expires_at.as_deref(), Some("2026-11-29T10:00:00Z"));
    // A detour through Rejected keeps the recorded expiry, so fixing the
    // spec after it does not revive the grant either.
    let mut detour = pe.clone();
    detour.spec.ticket = "JIRA-1".into();
    let rejected = decide(
        &detour,
        Some(&co),
        &c,
        crate::decide::approval::Trust::AssumeApproved,
        ts("2026-11-29T09:00:00Z"),
    );
    assert_eq!(rejected.lifecycle.phase(), Phase::Rejected);
    assert_eq!(rejected.status.expires_at.as_deref(), Some("2026-11-29T10:00:00Z"));
    detour.status = Some(rejected.status);
    detour.spec.ticket = pe.spec.ticket.clone();
    let fixed = decide(
        &detour,
        Some(&co),
        &c,
        crate::decide::approval::Trust::AssumeApproved,
        ts("2026-11-29T11:00:00Z"),
    );
    assert_eq!(fixed.lifecycle.phase(), Phase::Expired);
    assert!(fixed.grant.is_none());
    // Once the extension is recorded (before the old expiry), the new
    // window holds.
    pe.status = Some(
        decide(
            &pe,
            Some(&co),
            &c,
            crate::decide::approval::Trust::AssumeApproved,
            ts("2026-11-29T09:59:59Z"),
        )
        .status,
    );
    let later = decide(
        &pe,
        Some(&co),
        &c,
        crate::decide::approval::Trust::AssumeApproved,
        ts("2026-11-29T12:00:00Z"),
    );
    assert_eq!(later.lifecycle.phase(), Phase::Active);
}

#[test]
fn unchanged_input_gives_identical_status_and_no_event() {
    let (mut pe, co, c) = (exception(), control(), ceiling());
    let first = decide(
        &pe,
        Some(&co),
        &c,
        crate::decide::approval::Trust::AssumeApproved,
        ts("2026-11-28T12:00:00Z"),
    );
    assert_eq!(first.event.as_ref().map(|e| e.reason), Some("Granted"));
    pe.status = Some(first.status.clone());
    let second = decide(
        &pe,
        Some(&co),
        &c,
        crate::decide::approval::Trust::AssumeApproved,
        ts("2026-11-28T13:00:00Z"),
    );
    assert_eq!(second.status, first.status);
    assert_eq!(second.event, None);
}

#[test]
fn every_rejection_reason() {
    for (name, reason, field, edit) in rejections() {
        let (mut pe, mut co) = (exception(), control());
        edit(&mut pe, &mut co);
        let d = decide(
            &pe,
            Some(&co),
            &ceiling(),
            crate::decide::approval::Trust::AssumeApproved,
            ts("2026-11-28T12:00:00Z"),
        );
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
    let d = decide(
        &exception(),
        None,
        &ceiling(),
        crate::decide::approval::Trust::AssumeApproved,
        ts("2026-11-28T12:00:00Z"),
    );
    assert!(matches!(&d.lifecycle, Lifecycle::Rejected(e) if e[0].reason == Reason::ControlNotFound));
}

type Edit = fn(&mut PolicyException, &mut ControlOwnership);

/// (case, first reason, its field or "-", edit of the fixtures)
fn rejections() -> Vec<(&'static str, Reason, &'static str, Edit)> {
    vec![
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
            |e, _| e.spec.grant.as_mut().unwrap().service_account = "system:serviceaccount:kube-system:admin".into(),
        ),
        ("control invalid", Reason::ControlInvalid, "spec.control", |_, c| {
            c.spec.exception_policy.as_mut().unwrap().ticket_pattern = Some("(".into())
        }),
    ]
}

#[test]
fn an_over_window_stays_expired_even_without_its_control() {
    let pe = exception();
    let d = decide(
        &pe,
        None,
        &ceiling(),
        crate::decide::approval::Trust::AssumeApproved,
        ts("2026-12-01T00:00:00Z"),
    );
    assert_eq!(d.lifecycle.phase(), Phase::Expired);
}

#[test]
fn the_grant_is_exactly_one_role_and_one_binding() {
    let d = decide(
        &exception(),
        Some(&control()),
        &ceiling(),
        crate::decide::approval::Trust::AssumeApproved,
        ts("2026-11-28T12:00:00Z"),
    );
    let g = d.grant.unwrap();
    assert_eq!(g.name(), "steward-x:debug");
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
    let d = decide(
        &pe,
        Some(&control()),
        &ceiling(),
        crate::decide::approval::Trust::AssumeApproved,
        ts("2026-11-28T09:30:00Z"),
    );
    assert_eq!(d.lifecycle.phase(), Phase::Active);
    // created 09:00, expires next day 10:00: 25 h < 2 d.
}

/// The sweeper's rule agrees with the lifecycle at every edge, and keeps
/// nothing once expiry is recorded, whatever the spec says since.
#[test]
fn window_open_matches_the_active_phase_and_honours_recorded_expiry() {
    let (pe, co, c) = (exception(), control(), ceiling());
    for now in [
        "2026-11-28T09:59:59Z",
        "2026-11-28T10:00:00Z",
        "2026-11-29T09:59:59.999Z",
        "2026-11-29T10:00:00Z",
    ] {
        let active = decide(
            &pe,
            Some(&co),
            &c,
            crate::decide::approval::Trust::AssumeApproved,
            ts(now),
        )
        .lifecycle
        .phase()
            == Phase::Active;
        assert_eq!(
            window_open(&pe, crate::decide::approval::Trust::AssumeApproved, None, ts(now)),
            active,
            "at {now}"
        );
    }
    let mut moved = pe.clone();
    moved.status = Some(PolicyExceptionStatus {
        expires_at: Some("2026-11-28T12:00:00Z".into()),
        ..Default::default()
    });
    assert!(window_open(
        &moved,
        crate::decide::approval::Trust::AssumeApproved,
        None,
        ts("2026-11-28T11:59:59Z")
    ));
    assert!(
        !window_open(
            &moved,
            crate::decide::approval::Trust::AssumeApproved,
            None,
            ts("2026-11-28T12:00:00Z")
        ),
        "recorded expiry passed"
    );
    moved.status = Some(PolicyExceptionStatus {
        phase: Some(Phase::Expired),
        ..Default::default()
    });
    assert!(
        !window_open(
            &moved,
            crate::decide::approval::Trust::AssumeApproved,
            None,
            ts("2026-11-28T11:00:00Z")
        ),
        "recorded Expired"
    );
    let mut broken = pe;
    broken.spec.expires_at = "tomorrow".into();
    assert!(
        !window_open(
            &broken,
            crate::decide::approval::Trust::AssumeApproved,
            None,
            ts("2026-11-28T11:00:00Z")
        ),
        "unparsable window"
    );
}

// ------------------------------------------------- verified approvals

use crate::api::approval::{APPROVALS_ANNOTATION, REQUESTED_BY_ANNOTATION, Via};
use crate::api::{BreakGlass, ExceptionPolicy};
use crate::decide::approval::{Key, approved_for_tests, record};

const CAROL: &str = "carol@example.com";
const ALICE: &str = "alice@example.com";
const DAN: &str = "dan@example.com";

fn key() -> Key {
    Key::new(&[3; 32]).expect("key")
}

fn verify(key: &Key) -> Trust<'_> {
    Trust::Verify(key)
}

/// `pe` as admission would leave it: requested by `requester` (with
/// groups) and approved by each of `approvals`, all of its content now.
fn signed(mut pe: PolicyException, requester: (&str, &[&str]), approvals: &[(&str, &[&str], Via)]) -> PolicyException {
    let (k, d, at) = (key(), approval::digest(&pe), "2026-11-28T09:00:00Z");
    let id = ("shop", "debug");
    let g = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let r = record(&k, id, requester.0, g(requester.1), Via::Request, &d, at);
    let a: Vec<_> = approvals
        .iter()
        .map(|(user, groups, via)| record(&k, id, user, g(groups), *via, &d, at))
        .collect();
    let annotations = pe.metadata.annotations.get_or_insert_with(Default::default);
    annotations.insert(REQUESTED_BY_ANNOTATION.into(), serde_json::to_string(&r).expect("json"));
    if !a.is_empty() {
        annotations.insert(APPROVALS_ANNOTATION.into(), serde_json::to_string(&a).expect("json"));
    }
    pe
}

/// The fixture control, letting `oncall` break glass for up to a day.
fn control_with_break_glass() -> ControlOwnership {
    let mut co = control();
    let policy = co.spec.exception_policy.get_or_insert_with(ExceptionPolicy::default);
    policy.break_glass = Some(BreakGlass {
        groups: vec!["oncall".into()],
        max_duration: "1d".into(),
    });
    co
}

/// (status, reason) of a condition.
fn cond(d: &Decision, type_: &str) -> Option<(String, String)> {
    d.status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

fn is(status: &str, reason: &str) -> Option<(String, String)> {
    Some((status.into(), reason.into()))
}

/// Decides again with the status just decided fed back, a little later:
/// nothing changed, so nothing is said and the status is the same.
fn settled(pe: &mut PolicyException, co: &ControlOwnership, d: &Decision, now: &str) {
    pe.status = Some(d.status.clone());
    let k = key();
    let again = decide(pe, Some(co), &ceiling(), verify(&k), ts(now));
    assert_eq!(again.event, None, "event at {now}");
    assert_eq!(again.break_glass_event, None, "break-glass event at {now}");
    assert_eq!(again.status, d.status, "status at {now}");
    assert_eq!(again.grant, d.grant, "grant at {now}");
}

#[test]
fn awaiting_approval_holds_nothing_until_it_expires() {
    let (co, c, k) = (control(), ceiling(), key());
    // (case, exception, Active=False reason)
    let cases = [
        (
            "requested, not approved",
            signed(exception(), (CAROL, &[]), &[]),
            "AwaitingApproval",
        ),
        ("no verified requester", exception(), "RequesterUnverified"),
        (
            "approved by its own requester",
            signed(exception(), (ALICE, &[]), &[(ALICE, &[], Via::Approver)]),
            "AwaitingApproval",
        ),
    ];
    for (case, pe, reason) in cases {
        let mut pe = pe;
        let mut first = true;
        for now in [
            "2026-11-28T09:00:00Z",
            "2026-11-28T10:00:00Z",
            "2026-11-28T12:00:00Z",
            "2026-11-29T09:59:59Z",
        ] {
            let d = decide(&pe, Some(&co), &c, verify(&k), ts(now));
            let at = format!("{case} at {now}");
            assert!(
                matches!(d.lifecycle, Lifecycle::Awaiting(..)),
                "{at}: {:?}",
                d.lifecycle
            );
            assert_eq!(d.status.phase, Some(Phase::Pending), "{at}");
            assert!(d.grant.is_none(), "{at}: granted");
            assert_eq!(d.status.granted_role, None, "{at}");
            assert_eq!(d.wake_at, Some(ts("2026-11-29T10:00:00Z")), "{at}");
            assert_eq!(cond(&d, "Ready"), is("True", reason), "{at}");
            assert_eq!(cond(&d, "Active"), is("False", reason), "{at}");
            assert_eq!(cond(&d, "Approved"), is("False", reason), "{at}");
            assert_eq!(cond(&d, "BreakGlass"), None, "{at}");
            assert!(!d.break_glass_unreviewed, "{at}");
            // The sweeper's backstop needs a signed approval; whether its
            // approver counts is left to the reconciler.
            if case != "approved by its own requester" {
                assert!(
                    !window_open(&pe, verify(&k), None, ts(now)),
                    "{at}: the sweeper keeps it"
                );
            }
            let event = d.event.as_ref().map(|e| (e.reason, e.warning));
            if first {
                assert_eq!(event, Some(("AwaitingApproval", false)), "{at}");
                let note = &d.event.as_ref().expect("event").note;
                let approval = d.status.approval.as_ref().expect("approval status");
                if reason == "AwaitingApproval" {
                    assert!(note.contains("steward.dev/approve=<their user name>"), "{at}: {note}");
                    assert!(approval.requested_by.is_some(), "{at}");
                } else {
                    assert!(note.contains("no verified record"), "{at}: {note}");
                    assert_eq!(approval.requested_by, None, "{at}");
                }
                assert_eq!(approval.approved_by, None, "{at}");
                first = false;
            } else {
                assert_eq!(event, None, "{at}");
            }
            settled(&mut pe, &co, &d, now);
        }
        let d = decide(&pe, Some(&co), &c, verify(&k), ts("2026-11-29T10:00:00Z"));
        assert_eq!(d.lifecycle.phase(), Phase::Expired, "{case}");
        assert!(d.grant.is_none(), "{case}");
        assert_eq!(d.wake_at, None, "{case}");
        assert_eq!(
            d.event.as_ref().map(|e| e.note.as_str()),
            Some("expired; nothing is granted or tolerated"),
            "{case}"
        );
        let history: Vec<_> = d.status.history.iter().map(|h| h.reason.as_str()).collect();
        assert_eq!(history, ["AwaitingApproval", "Expired"], "{case}");
    }
}

#[test]
fn approved_it_is_pending_then_active_with_its_grant() {
    let (co, c, k) = (control(), ceiling(), key());
    let mut pe = approved_for_tests(exception(), &k, CAROL, ALICE);
    let pending = decide(&pe, Some(&co), &c, verify(&k), ts("2026-11-28T09:00:00Z"));
    assert_eq!(pending.lifecycle.phase(), Phase::Pending);
    assert!(matches!(pending.lifecycle, Lifecycle::Pending(_)));
    assert_eq!(pending.wake_at, Some(ts("2026-11-28T10:00:00Z")));
    assert_eq!(cond(&pending, "Active"), is("False", "NotStarted"));
    assert_eq!(cond(&pending, "Approved"), is("True", "Approved"));
    assert_eq!(pending.event.as_ref().map(|e| e.reason), Some("Pending"));
    settled(&mut pe, &co, &pending, "2026-11-28T09:30:00Z");
    let active = decide(&pe, Some(&co), &c, verify(&k), ts("2026-11-28T12:00:00Z"));
    assert_eq!(active.lifecycle.phase(), Phase::Active);
    assert_eq!(active.grant.as_ref().map(|g| g.name()), Some("steward-x:debug"));
    assert_eq!(active.status.granted_role.as_deref(), Some("steward-x:debug"));
    assert_eq!(cond(&active, "Active"), is("True", "Active"));
    assert_eq!(cond(&active, "Approved"), is("True", "Approved"));
    assert_eq!(cond(&active, "BreakGlass"), None);
    assert_eq!(active.event.as_ref().map(|e| e.reason), Some("Granted"));
    assert_eq!(active.break_glass_event, None);
    assert!(!active.break_glass_unreviewed);
    assert!(window_open(&pe, verify(&k), None, ts("2026-11-28T12:00:00Z")));
    let approved = active
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "Approved")
        .expect("Approved");
    assert_eq!(approved.message, "approved by alice@example.com");
    let approval = active.status.approval.clone().expect("approval status");
    assert_eq!(approval.requested_by.as_deref(), Some(CAROL));
    assert_eq!(approval.approved_by.as_deref(), Some(ALICE));
    assert_eq!(approval.required, Some(1));
    settled(&mut pe, &co, &active, "2026-11-28T13:00:00Z");
    let history: Vec<_> = active.status.history.iter().map(|h| h.reason.as_str()).collect();
    assert_eq!(history, ["Pending", "Granted"]);
}

#[test]
fn a_change_after_approval_waits_for_a_new_one() {
    let (co, c, k) = (control(), ceiling(), key());
    let mut pe = approved_for_tests(exception(), &k, CAROL, ALICE);
    let active = decide(&pe, Some(&co), &c, verify(&k), ts("2026-11-28T12:00:00Z"));
    assert_eq!(active.lifecycle.phase(), Phase::Active);
    pe.status = Some(active.status.clone());
    let mut edited = pe.clone();
    edited.spec.grant.as_mut().expect("grant").rules[0]
        .verbs
        .push("list".into());
    // (case, the edited exception, Active=False reason)
    let cases = [
        // Admission re-records the writer and clears the approval.
        (
            "through the webhook",
            {
                let mut e = signed(edited.clone(), ("bob@example.com", &[]), &[]);
                e.status = pe.status.clone();
                e.metadata
                    .annotations
                    .as_mut()
                    .expect("annotations")
                    .remove(APPROVALS_ANNOTATION);
                e
            },
            "AwaitingApproval",
        ),
        // Written while the webhook was not called: the records are stale.
        ("around the webhook", edited, "RequesterUnverified"),
    ];
    for (case, mut e, reason) in cases {
        let d = decide(&e, Some(&co), &c, verify(&k), ts("2026-11-28T13:00:00Z"));
        assert!(
            matches!(d.lifecycle, Lifecycle::Awaiting(..)),
            "{case}: {:?}",
            d.lifecycle
        );
        assert_eq!(d.status.phase, Some(Phase::Pending), "{case}");
        assert!(d.grant.is_none(), "{case}: granted");
        assert_eq!(d.status.granted_role, None, "{case}");
        assert_eq!(cond(&d, "Active"), is("False", reason), "{case}");
        assert_eq!(cond(&d, "Approved"), is("False", reason), "{case}");
        assert_eq!(
            d.event.as_ref().map(|e| (e.reason, e.warning)),
            Some(("AwaitingApproval", false)),
            "{case}"
        );
        assert_eq!(d.wake_at, Some(ts("2026-11-29T10:00:00Z")), "{case}");
        assert!(!window_open(&e, verify(&k), None, ts("2026-11-28T13:00:00Z")), "{case}");
        settled(&mut e, &co, &d, "2026-11-28T14:00:00Z");
        // Approved again: Active again, granted again.
        let mut again = signed(e.clone(), ("bob@example.com", &[]), &[(ALICE, &[], Via::Approver)]);
        again.status = e.status.clone();
        let d = decide(&again, Some(&co), &c, verify(&k), ts("2026-11-28T15:00:00Z"));
        assert_eq!(d.lifecycle.phase(), Phase::Active, "{case}");
        assert!(d.grant.is_some(), "{case}");
        assert_eq!(d.event.as_ref().map(|e| e.reason), Some("Granted"), "{case}");
    }
}

#[test]
fn break_glass_is_loud_until_an_approver_reviews_it() {
    let (co, c, k) = (control_with_break_glass(), ceiling(), key());
    let mut pe = signed(exception(), (DAN, &["oncall"]), &[(DAN, &["oncall"], Via::BreakGlass)]);
    let broken = decide(&pe, Some(&co), &c, verify(&k), ts("2026-11-28T12:00:00Z"));
    assert_eq!(broken.lifecycle.phase(), Phase::Active);
    assert!(broken.grant.is_some());
    assert_eq!(cond(&broken, "Approved"), is("True", "BreakGlass"));
    assert_eq!(cond(&broken, "BreakGlass"), is("True", "BreakGlass"));
    assert_eq!(broken.event.as_ref().map(|e| e.reason), Some("Granted"));
    let event = broken.break_glass_event.as_ref().expect("a break-glass event");
    assert_eq!((event.reason, event.warning), ("BreakGlass", true));
    assert!(event.note.contains("dan@example.com (break glass)"), "{}", event.note);
    assert!(event.note.contains("an approver must review it"), "{}", event.note);
    assert!(broken.break_glass_unreviewed);
    assert_eq!(
        broken.status.approval.as_ref().and_then(|a| a.approved_by.as_deref()),
        Some("dan@example.com (break glass)")
    );
    settled(&mut pe, &co, &broken, "2026-11-28T12:30:00Z");

    let mut reviewed = signed(
        pe.clone(),
        (DAN, &["oncall"]),
        &[(DAN, &["oncall"], Via::BreakGlass), (ALICE, &[], Via::Approver)],
    );
    reviewed.status = pe.status.clone();
    let d = decide(&reviewed, Some(&co), &c, verify(&k), ts("2026-11-28T13:00:00Z"));
    assert_eq!(d.lifecycle.phase(), Phase::Active);
    assert!(d.grant.is_some());
    assert_eq!(d.event, None, "still Active");
    assert_eq!(cond(&d, "Approved"), is("True", "Approved"));
    assert_eq!(cond(&d, "BreakGlass"), is("False", "Reviewed"));
    let event = d.break_glass_event.as_ref().expect("a review event");
    assert_eq!((event.reason, event.warning), ("BreakGlassReviewed", false));
    assert!(!d.break_glass_unreviewed);
    let history: Vec<_> = d.status.history.iter().map(|h| h.reason.as_str()).collect();
    assert_eq!(history, ["Granted", "BreakGlass", "BreakGlassReviewed"]);
    settled(&mut reviewed, &co, &d, "2026-11-28T14:00:00Z");

    // The same break glass against a control that allows none: waits.
    pe.status = None;
    let d = decide(&pe, Some(&control()), &c, verify(&k), ts("2026-11-28T12:00:00Z"));
    assert!(matches!(d.lifecycle, Lifecycle::Awaiting(..)), "{:?}", d.lifecycle);
    assert_eq!(cond(&d, "BreakGlass"), None);
    assert_eq!(d.break_glass_event, None);
    assert!(!d.break_glass_unreviewed);
}

/// Approved before its start: from waiting for approval to waiting for the
/// start is a transition of its own, then the grant comes at the start.
#[test]
fn approved_before_its_start_waits_for_it() {
    let (co, c, k) = (control(), ceiling(), key());
    let mut pe = signed(exception(), (CAROL, &[]), &[]);
    let waiting = decide(&pe, Some(&co), &c, verify(&k), ts("2026-11-28T09:00:00Z"));
    assert!(matches!(waiting.lifecycle, Lifecycle::Awaiting(..)));
    pe.status = Some(waiting.status);
    let mut approved = signed(pe.clone(), (CAROL, &[]), &[(ALICE, &[], Via::Approver)]);
    approved.status = pe.status.clone();
    let d = decide(&approved, Some(&co), &c, verify(&k), ts("2026-11-28T09:30:00Z"));
    assert!(matches!(d.lifecycle, Lifecycle::Pending(_)), "{:?}", d.lifecycle);
    assert_eq!(d.event.as_ref().map(|e| e.reason), Some("Pending"));
    assert_eq!(d.wake_at, Some(ts("2026-11-28T10:00:00Z")));
    assert_eq!(cond(&d, "Approved"), is("True", "Approved"));
    assert!(d.grant.is_none());
    settled(&mut approved, &co, &d, "2026-11-28T09:45:00Z");
    let d = decide(&approved, Some(&co), &c, verify(&k), ts("2026-11-28T10:00:00Z"));
    assert_eq!(d.lifecycle.phase(), Phase::Active);
    assert!(d.grant.is_some());
    let history: Vec<_> = d.status.history.iter().map(|h| h.reason.as_str()).collect();
    assert_eq!(history, ["AwaitingApproval", "Pending", "Granted"]);
}

/// The sweeper's backstop keeps a grant only for an exception that came
/// through admission: a verified requester and a signed approval of the
/// content as it stands, or a requester who wrote all of it (a trusted
/// applier's, which only the control can tell).
#[test]
fn window_open_needs_records_that_verify() {
    let k = key();
    let now = ts("2026-11-28T12:00:00Z");
    let bare = exception();
    assert!(window_open(&bare, Trust::AssumeApproved, None, now));
    assert!(!window_open(&bare, verify(&k), None, now), "no records");
    let approved = signed(bare.clone(), (CAROL, &[]), &[(ALICE, &[], Via::Approver)]);
    assert!(window_open(&approved, verify(&k), None, now));
    assert!(
        !window_open(&approved, verify(&Key::new(&[9; 32]).expect("key")), None, now),
        "another key"
    );
    let mut changed = approved.clone();
    changed.spec.ticket = "SEC-9".into();
    assert!(
        !window_open(&changed, verify(&k), None, now),
        "approval of other content"
    );
    let requested_only = signed(bare.clone(), (CAROL, &[]), &[]);
    assert!(
        !window_open(&requested_only, verify(&k), None, now),
        "requested, not approved"
    );
    let d = crate::decide::approval::digest(&bare);
    let whole = crate::decide::approval::request_record(
        &k,
        ("shop", "debug"),
        "argocd",
        vec![],
        true,
        &d,
        "2026-11-28T09:00:00Z",
    );
    let mut by_git = bare.clone();
    by_git.metadata.annotations.get_or_insert_with(Default::default).insert(
        REQUESTED_BY_ANNOTATION.into(),
        serde_json::to_string(&whole).expect("json"),
    );
    assert!(
        !window_open(&by_git, verify(&k), None, now),
        "no control: nobody is trusted"
    );
    let mut co = control();
    co.spec
        .exception_policy
        .get_or_insert_with(Default::default)
        .trusted_appliers = vec!["argocd".into()];
    let rules = validate::exception_rules(&co.spec).expect("rules");
    let trusting = Some(&rules.approval);
    assert!(
        window_open(&by_git, verify(&k), trusting, now),
        "written whole by its trusted applier"
    );
    assert!(
        !window_open(&by_git, verify(&k), trusting, ts("2026-11-29T10:00:00Z")),
        "at expiry"
    );
}

/// The expiry clock's instant (`grant_ends`): the earlier of the recorded
/// and the spec's end, and from that instant on no decision grants.
#[test]
fn no_decision_grants_from_the_instant_the_clock_revokes() {
    let (co, c) = (control(), ceiling());
    let trust = crate::decide::approval::Trust::AssumeApproved;
    let active = |spec_end: &str, recorded: Option<&str>| {
        let mut pe = exception();
        pe.spec.expires_at = spec_end.into();
        if let Some(r) = recorded {
            let mut status = decide(&pe, Some(&co), &c, trust, ts("2026-11-28T12:00:00Z")).status;
            status.expires_at = Some(r.into());
            pe.status = Some(status);
        }
        pe
    };
    // (case, the exception, the instant from which nothing may be granted,
    // whether it is granted just before: the clock is not early)
    let cases = [
        (
            "never active: the spec's end",
            active("2026-11-29T10:00:00Z", None),
            Some("2026-11-29T10:00:00Z"),
            true,
        ),
        (
            "active as recorded",
            active("2026-11-29T10:00:00Z", Some("2026-11-29T10:00:00Z")),
            Some("2026-11-29T10:00:00Z"),
            true,
        ),
        (
            "extended after it was recorded: the recorded end is final",
            active("2026-11-30T10:00:00Z", Some("2026-11-29T10:00:00Z")),
            Some("2026-11-29T10:00:00Z"),
            true,
        ),
        (
            "shortened after it was recorded: the spec's end",
            active("2026-11-28T18:00:00Z", Some("2026-11-29T10:00:00Z")),
            Some("2026-11-28T18:00:00Z"),
            true,
        ),
        (
            "a spec end that is no time (rejected): the recorded one",
            active("tomorrow", Some("2026-11-29T10:00:00Z")),
            Some("2026-11-29T10:00:00Z"),
            false,
        ),
        ("neither", active("tomorrow", None), None, false),
    ];
    for (case, pe, want, granted_before) in cases {
        let end = grant_ends(&pe);
        assert_eq!(end, want.map(ts), "{case}");
        let Some(end) = end else { continue };
        for after in [0, 1, 3_600_000] {
            let now = end + jiff::SignedDuration::from_millis(after);
            let d = decide(&pe, Some(&co), &c, trust, now);
            assert!(
                d.grant.is_none(),
                "{case}: granted {after} ms after the clock's instant"
            );
        }
        let before = decide(&pe, Some(&co), &c, trust, end - jiff::SignedDuration::from_millis(1));
        assert_eq!(
            before.grant.is_some(),
            granted_before,
            "{case}: just before the clock's instant"
        );
    }
}
