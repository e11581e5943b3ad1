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
            window_open(&pe, crate::decide::approval::Trust::AssumeApproved, ts(now)),
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
        ts("2026-11-28T11:59:59Z")
    ));
    assert!(
        !window_open(
            &moved,
            crate::decide::approval::Trust::AssumeApproved,
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
            ts("2026-11-28T11:00:00Z")
        ),
        "unparsable window"
    );
}
