//! Admission and judgement of approvals, end to end over the fixtures: the
//! control `payments` (approver alice@example.com, maxDuration 2d) and the
//! exception `debug` (window 2026-11-28T10:00Z to 2026-11-29T10:00Z).

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

use super::*;
use crate::api::approval::{
    APPROVALS_ANNOTATION, APPROVE_ANNOTATION, APPROVE_DIGEST_ANNOTATION, BREAK_GLASS_ANNOTATION,
    REQUESTED_BY_ANNOTATION, Record, Via,
};
use crate::api::{ApprovalEntry, ApprovalStatus, BreakGlass as BreakGlassSpec, ControlOwnershipSpec, PolicyException};
use crate::decide::fixtures::{control, exception, ts};
use crate::decide::validate::exception_rules;

const CAROL: &str = "carol@example.com";
const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const GINA: &str = "gina@example.com";
const DAN: &str = "dan@example.com";
const MALLORY: &str = "mallory@example.com";
const ARGO: &str = "system:serviceaccount:argocd:argocd-application-controller";

/// Before the window opens (created 09:00, starts 10:00).
const NOW: &str = "2026-11-28T09:30:00Z";
/// The fixture's window length.
const DAY: SignedDuration = SignedDuration::from_hours(24);

fn key() -> Key {
    Key::new(&[7; 32]).expect("key")
}

fn other_key() -> Key {
    Key::new(&[8; 32]).expect("key")
}

fn now() -> Timestamp {
    ts(NOW)
}

fn groups(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The fixture control's approval rules after `edit`, parsed the way the
/// controller and the webhook parse them.
fn policy_with(edit: impl FnOnce(&mut ControlOwnershipSpec)) -> Policy {
    let mut spec = control().spec;
    edit(&mut spec);
    exception_rules(&spec).expect("a valid control").approval
}

/// Approvers alice and bob, the group `leads`, Argo CD as trusted applier,
/// and break glass for `oncall` up to a day.
fn rich() -> Policy {
    rich_with(|_| {})
}

fn rich_with(edit: impl FnOnce(&mut ControlOwnershipSpec)) -> Policy {
    policy_with(|s| {
        s.approvers = groups(&[ALICE, BOB]);
        s.approver_groups = groups(&["leads"]);
        let p = s.exception_policy.get_or_insert_with(Default::default);
        p.trusted_appliers = groups(&[ARGO]);
        p.break_glass = Some(BreakGlassSpec {
            groups: groups(&["oncall"]),
            max_duration: "1d".into(),
        });
        edit(s);
    })
}

fn min_approvals(n: i32) -> impl FnOnce(&mut ControlOwnershipSpec) {
    move |s| s.exception_policy.get_or_insert_with(Default::default).min_approvals = Some(n)
}

/// The fixture exception as a client sends it: no annotations.
fn fresh() -> PolicyException {
    exception()
}

fn with(mut pe: PolicyException, k: &str, v: &str) -> PolicyException {
    pe.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(k.into(), v.into());
    pe
}

fn annotations(pe: &PolicyException) -> BTreeMap<String, String> {
    pe.metadata.annotations.clone().unwrap_or_default()
}

/// Runs admission and puts what it admitted on the object.
fn admitted(
    user: &str,
    caller_groups: &[&str],
    old: Option<&PolicyException>,
    new: &PolicyException,
    policy: &Policy,
    at: Timestamp,
) -> Result<(PolicyException, Vec<String>), String> {
    let g = groups(caller_groups);
    let caller = Caller { user, groups: &g };
    let a = admit(caller, old, new, Ok(policy), &key(), at)?;
    let mut out = new.clone();
    out.metadata.annotations = Some(a.annotations);
    Ok((out, a.warnings))
}

/// Admitted, or the test fails saying why not.
fn ok(
    user: &str,
    caller_groups: &[&str],
    old: Option<&PolicyException>,
    new: &PolicyException,
    policy: &Policy,
) -> PolicyException {
    match admitted(user, caller_groups, old, new, policy, now()) {
        Ok((pe, _)) => pe,
        Err(e) => panic!("{user} refused: {e}"),
    }
}

/// Created by `user` through admission.
fn created_by(user: &str, caller_groups: &[&str], policy: &Policy) -> PolicyException {
    ok(user, caller_groups, None, &fresh(), policy)
}

/// `old` with `user` setting `annotation` to `value`, through admission.
fn annotate(
    old: &PolicyException,
    user: &str,
    caller_groups: &[&str],
    annotation: &str,
    value: &str,
    policy: &Policy,
) -> Result<PolicyException, String> {
    let new = with(old.clone(), annotation, value);
    admitted(user, caller_groups, Some(old), &new, policy, now()).map(|(pe, _)| pe)
}

fn approve(old: &PolicyException, user: &str, caller_groups: &[&str], policy: &Policy) -> PolicyException {
    annotate(old, user, caller_groups, APPROVE_ANNOTATION, user, policy)
        .unwrap_or_else(|e| panic!("{user} could not approve: {e}"))
}

fn verdict(pe: &PolicyException, policy: &Policy) -> Judged {
    judge(pe, policy, Trust::Verify(&key()), DAY)
}

fn state(pe: &PolicyException, policy: &Policy) -> State {
    verdict(pe, policy).state
}

fn reason(s: &State) -> &'static str {
    match s {
        State::Approved(_) => "Approved",
        State::Awaiting { reason, .. } => reason,
    }
}

/// (user, via) of each approval record, as written.
fn approvals_of(pe: &PolicyException) -> Vec<(String, Via)> {
    records(pe).1.into_iter().map(|r| (r.user, r.via)).collect()
}

fn requester_of(pe: &PolicyException) -> Option<Record> {
    verified_requester(pe, &key())
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("json")
}

// ---------------------------------------------------------------- admit

#[test]
fn create_records_the_caller_with_only_the_groups_the_control_names() {
    let pe = created_by(
        CAROL,
        &["system:authenticated", "oncall", "dev", "leads", "oncall"],
        &rich(),
    );
    let r = requester_of(&pe).expect("a verified requester");
    assert_eq!(r.user, CAROL);
    assert_eq!(r.via, Via::Request);
    assert_eq!(r.groups, groups(&["leads", "oncall"]));
    assert_eq!(r.digest, digest(&pe));
    assert_eq!(r.at, NOW);
    assert!(approvals_of(&pe).is_empty());
    assert!(!annotations(&pe).contains_key(APPROVALS_ANNOTATION));
    // A control naming no groups records none.
    let plain = created_by(CAROL, &["leads"], &policy_with(|_| {}));
    assert_eq!(requester_of(&plain).map(|r| r.groups), Some(vec![]));
    // Other annotations pass untouched.
    let labelled = with(fresh(), "team", "payments");
    let pe = ok(CAROL, &[], None, &labelled, &rich());
    assert_eq!(annotations(&pe).get("team").map(String::as_str), Some("payments"));
}

#[test]
fn record_annotations_sent_by_a_client_are_replaced_and_warned_about() {
    let p = rich();
    let forged_requester = json(&signing::record(
        &other_key(),
        ("shop", "debug"),
        ALICE,
        vec![],
        Via::Request,
        &digest(&fresh()),
        NOW,
    ));
    let forged_approvals = json(&[signing::record(
        &key(),
        ("shop", "other"),
        ALICE,
        vec![],
        Via::Approver,
        &digest(&fresh()),
        NOW,
    )]);
    let forged = with(
        with(fresh(), REQUESTED_BY_ANNOTATION, &forged_requester),
        APPROVALS_ANNOTATION,
        &forged_approvals,
    );

    // CREATE: there is nothing to keep; the caller is the requester.
    let (pe, warnings) = admitted(CAROL, &[], None, &forged, &p, now()).expect("admitted");
    assert_eq!(requester_of(&pe).map(|r| r.user).as_deref(), Some(CAROL));
    assert!(approvals_of(&pe).is_empty(), "forged approvals kept");
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    for (w, k) in warnings.iter().zip([REQUESTED_BY_ANNOTATION, APPROVALS_ANNOTATION]) {
        assert!(
            w.contains(k) && w.contains("written by Steward's admission only"),
            "{w}"
        );
    }
    let old = pe;
    let approved = approve(&old, ALICE, &[], &p);
    let held = annotations(&approved);

    // UPDATE that leaves the content alone: (case, new annotations, warnings)
    type Case = (&'static str, Box<dyn Fn(&mut BTreeMap<String, String>)>, usize);
    let cases: Vec<Case> = vec![
        ("unchanged", Box::new(|_| {}), 0),
        (
            "removed",
            Box::new(|a| {
                a.remove(REQUESTED_BY_ANNOTATION);
                a.remove(APPROVALS_ANNOTATION);
            }),
            0,
        ),
        (
            "requester forged",
            Box::new(|a| {
                a.insert(REQUESTED_BY_ANNOTATION.into(), String::new());
            }),
            1,
        ),
        (
            "approvals forged",
            Box::new(|a| {
                a.insert(APPROVALS_ANNOTATION.into(), "[]".into());
            }),
            1,
        ),
        (
            "both forged",
            Box::new(move |a| {
                a.insert(REQUESTED_BY_ANNOTATION.into(), forged_requester.clone());
                a.insert(APPROVALS_ANNOTATION.into(), forged_approvals.clone());
            }),
            2,
        ),
    ];
    for (case, edit, want) in cases {
        let mut new = approved.clone();
        let mut a = annotations(&new);
        edit(&mut a);
        new.metadata.annotations = Some(a);
        let (pe, warnings) = admitted(MALLORY, &[], Some(&approved), &new, &p, now()).expect(case);
        assert_eq!(annotations(&pe), held, "{case}: the old records were not restored");
        assert_eq!(warnings.len(), want, "{case}: {warnings:?}");
        assert!(state(&pe, &p).applies(), "{case}");
    }

    // An UPDATE may not add records the old object did not hold.
    let mut new = old.clone();
    new.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(APPROVALS_ANNOTATION.into(), held[APPROVALS_ANNOTATION].clone());
    let (pe, warnings) = admitted(CAROL, &[], Some(&old), &new, &p, now()).expect("admitted");
    assert!(!annotations(&pe).contains_key(APPROVALS_ANNOTATION));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(!state(&pe, &p).applies());
}

#[test]
fn a_change_of_what_an_approval_covers_clears_it_and_records_the_writer() {
    let p = rich();
    let approved = approve(&created_by(CAROL, &[], &p), ALICE, &[], &p);
    assert!(state(&approved, &p).applies());
    type Edit = fn(&mut PolicyException);
    // (case, edit, covered by the approval)
    let cases: Vec<(&str, Edit, bool)> = vec![
        ("ticket", |e| e.spec.ticket = "SEC-99".into(), true),
        ("window", |e| e.spec.expires_at = "2026-11-29T09:00:00Z".into(), true),
        (
            "grant",
            |e| e.spec.grant.as_mut().expect("grant").rules[0].verbs.push("list".into()),
            true,
        ),
        ("tolerations", |e| e.spec.tolerate.clear(), true),
        ("reason", |e| e.spec.reason = "another".into(), false),
        // (For an approval through Git it names the reviewer, shown as such.)
        ("claimed approver", |e| e.spec.approver = BOB.into(), true),
        (
            "labels",
            |e| e.metadata.labels = Some([("a".into(), "b".into())].into()),
            false,
        ),
    ];
    for (case, edit, covered) in cases {
        let mut new = approved.clone();
        edit(&mut new);
        let (pe, warnings) = admitted(BOB, &["leads"], Some(&approved), &new, &p, now()).expect(case);
        assert!(warnings.is_empty(), "{case}: {warnings:?}");
        let r = requester_of(&pe).unwrap_or_else(|| panic!("{case}: no verified requester"));
        if covered {
            assert_eq!(r.user, BOB, "{case}");
            assert_eq!(r.groups, groups(&["leads"]), "{case}");
            assert!(approvals_of(&pe).is_empty(), "{case}: approvals kept");
            assert!(!annotations(&pe).contains_key(APPROVALS_ANNOTATION), "{case}");
            assert_eq!(reason(&state(&pe, &p)), reasons::AWAITING_APPROVAL, "{case}");
        } else {
            assert_eq!(annotations(&pe), annotations(&approved), "{case}: records changed");
            assert_eq!(r.user, CAROL, "{case}");
            assert!(state(&pe, &p).applies(), "{case}");
        }
    }
}

#[test]
fn a_trusted_applier_approves_what_git_alone_wrote() {
    let p = rich();
    let by_git = created_by(ARGO, &["system:serviceaccounts"], &p);
    // Judged from the request record (the applier wrote all of it), not
    // from an approval record: whether the applier is trusted is the
    // control's call when the controller judges, not when admission ran.
    assert!(approvals_of(&by_git).is_empty());
    assert!(requester_of(&by_git).is_some_and(|r| r.whole));
    assert_eq!(state(&by_git, &p), State::Approved(How::TrustedApplier));
    let mut edited = by_git.clone();
    edited.spec.ticket = "SEC-2".into();

    // (case, old, writer, approved through Git)
    let by_carol = created_by(CAROL, &[], &p);
    let mut carol_edit = by_carol.clone();
    carol_edit.spec.ticket = "SEC-2".into();
    let cases: Vec<(&str, &PolicyException, &PolicyException, &str, bool)> = vec![
        ("Git changes what Git wrote", &by_git, &edited, ARGO, true),
        ("Git changes what carol wrote", &by_carol, &carol_edit, ARGO, false),
        ("carol changes what Git wrote", &by_git, &edited, CAROL, false),
    ];
    for (case, old, new, writer, approved) in cases {
        let pe = ok(writer, &[], Some(old), new, &p);
        assert_eq!(requester_of(&pe).map(|r| r.user).as_deref(), Some(writer), "{case}");
        assert!(approvals_of(&pe).is_empty(), "{case}");
        assert_eq!(state(&pe, &p).applies(), approved, "{case}");
    }
    // Laundering: carol adds to what Git wrote; Git writing twice after
    // her does not make her addition Git's.
    let mut tolerated = by_git.clone();
    tolerated.spec.ticket = "SEC-3".into();
    let carols = ok(CAROL, &[], Some(&by_git), &tolerated, &p);
    let mut once = carols.clone();
    once.spec.reason = "Git's reason".into();
    once.spec.expires_at = "2026-11-29T09:00:00Z".into();
    let once = ok(ARGO, &[], Some(&carols), &once, &p);
    let mut twice = once.clone();
    twice.spec.expires_at = "2026-11-29T08:00:00Z".into();
    let twice = ok(ARGO, &[], Some(&once), &twice, &p);
    assert!(!state(&once, &p).applies(), "Git over carol's edit");
    assert!(!state(&twice, &p).applies(), "Git twice over carol's edit");
    // Not listed: no approval through Git.
    let not_trusted = policy_with(|_| {});
    let plain = created_by(ARGO, &[], &not_trusted);
    assert!(!state(&plain, &not_trusted).applies());
    // Without the control's rules at admission (Git applied the control
    // and the exception together): recorded, and judged by the control
    // once it is known.
    let g: Vec<String> = vec![];
    let a = admit(
        Caller { user: ARGO, groups: &g },
        None,
        &fresh(),
        Err("no control"),
        &key(),
        now(),
    )
    .expect("a create without a control is recorded");
    assert!(!a.annotations.contains_key(APPROVALS_ANNOTATION));
    let mut later = fresh();
    later.metadata.annotations = Some(a.annotations);
    assert_eq!(state(&later, &p), State::Approved(How::TrustedApplier));
}

#[test]
fn every_refusal_says_why() {
    let p = rich();
    let by_carol = created_by(CAROL, &[], &p);
    let by_dan = created_by(DAN, &["oncall"], &p);
    let by_alice = created_by(ALICE, &[], &p);
    let short = rich_with(|s| {
        s.exception_policy.as_mut().expect("policy").break_glass = Some(BreakGlassSpec {
            groups: groups(&["oncall"]),
            max_duration: "12h".into(),
        })
    });
    let no_glass = policy_with(|_| {});
    let unsigned = fresh();
    let other_signed = {
        let r = signing::record(
            &other_key(),
            ("shop", "debug"),
            CAROL,
            vec![],
            Via::Request,
            &digest(&fresh()),
            NOW,
        );
        with(fresh(), REQUESTED_BY_ANNOTATION, &json(&r))
    };
    let mut changed = with(by_carol.clone(), APPROVE_ANNOTATION, ALICE);
    changed.spec.ticket = "SEC-2".into();
    let both = with(
        with(by_carol.clone(), APPROVE_ANNOTATION, ALICE),
        BREAK_GLASS_ANNOTATION,
        ALICE,
    );
    let mut nameless = fresh();
    nameless.metadata.name = None;
    nameless.metadata.generate_name = Some("debug-".into());
    let mut empty_name = fresh();
    empty_name.metadata.name = Some(String::new());

    struct Case<'a> {
        case: &'a str,
        user: &'a str,
        groups: &'a [&'a str],
        old: Option<&'a PolicyException>,
        new: PolicyException,
        policy: &'a Policy,
        at: &'a str,
        says: &'a str,
    }
    let on = |old: &PolicyException, k: &str, v: &str| with(old.clone(), k, v);
    let cases = vec![
        Case {
            case: "the value names someone else",
            user: ALICE,
            groups: &[],
            old: Some(&by_carol),
            new: on(&by_carol, APPROVE_ANNOTATION, BOB),
            policy: &p,
            at: NOW,
            says: "set it to your own user name",
        },
        Case {
            case: "break glass naming someone else",
            user: DAN,
            groups: &["oncall"],
            old: Some(&by_dan),
            new: on(&by_dan, BREAK_GLASS_ANNOTATION, CAROL),
            policy: &p,
            at: NOW,
            says: "set it to your own user name",
        },
        Case {
            case: "not an approver",
            user: MALLORY,
            groups: &["dev", "oncall"],
            old: Some(&by_carol),
            new: on(&by_carol, APPROVE_ANNOTATION, MALLORY),
            policy: &p,
            at: NOW,
            says: "is not an approver of ControlOwnership \"payments\"",
        },
        Case {
            case: "the requester approves their own",
            user: ALICE,
            groups: &[],
            old: Some(&by_alice),
            new: on(&by_alice, APPROVE_ANNOTATION, ALICE),
            policy: &p,
            at: NOW,
            says: "someone else must approve it",
        },
        Case {
            case: "approving while changing the content",
            user: ALICE,
            groups: &[],
            old: Some(&by_carol),
            new: changed,
            policy: &p,
            at: NOW,
            says: "an approval must not change what it approves",
        },
        Case {
            case: "approving at creation",
            user: ALICE,
            groups: &[],
            old: None,
            new: on(&fresh(), APPROVE_ANNOTATION, ALICE),
            policy: &p,
            at: NOW,
            says: "cannot be approved as it is created",
        },
        Case {
            case: "breaking glass at creation",
            user: DAN,
            groups: &["oncall"],
            old: None,
            new: on(&fresh(), BREAK_GLASS_ANNOTATION, DAN),
            policy: &p,
            at: NOW,
            says: "cannot be approved as it is created",
        },
        Case {
            case: "no requester recorded",
            user: ALICE,
            groups: &[],
            old: Some(&unsigned),
            new: on(&unsigned, APPROVE_ANNOTATION, ALICE),
            policy: &p,
            at: NOW,
            says: "no verified requester",
        },
        Case {
            case: "a requester signed by another key",
            user: ALICE,
            groups: &[],
            old: Some(&other_signed),
            new: on(&other_signed, APPROVE_ANNOTATION, ALICE),
            policy: &p,
            at: NOW,
            says: "no verified requester",
        },
        Case {
            case: "approving at expiry",
            user: ALICE,
            groups: &[],
            old: Some(&by_carol),
            new: on(&by_carol, APPROVE_ANNOTATION, ALICE),
            policy: &p,
            at: "2026-11-29T10:00:00Z",
            says: "has expired",
        },
        Case {
            case: "approving after expiry",
            user: ALICE,
            groups: &[],
            old: Some(&by_carol),
            new: on(&by_carol, APPROVE_ANNOTATION, ALICE),
            policy: &p,
            at: "2026-12-01T00:00:00Z",
            says: "has expired",
        },
        Case {
            case: "break glass outside its groups",
            user: CAROL,
            groups: &["leads"],
            old: Some(&by_carol),
            new: on(&by_carol, BREAK_GLASS_ANNOTATION, CAROL),
            policy: &p,
            at: NOW,
            says: "is in none of the break-glass groups of ControlOwnership \"payments\" (oncall)",
        },
        Case {
            case: "break glass the control does not allow",
            user: DAN,
            groups: &["oncall"],
            old: Some(&by_dan),
            new: on(&by_dan, BREAK_GLASS_ANNOTATION, DAN),
            policy: &no_glass,
            at: NOW,
            says: "allows no break glass",
        },
        Case {
            case: "break glass over its longest window",
            user: DAN,
            groups: &["oncall"],
            old: Some(&by_dan),
            new: on(&by_dan, BREAK_GLASS_ANNOTATION, DAN),
            policy: &short,
            at: NOW,
            says: "break glass is limited to windows of 12h; this one is 1d",
        },
        Case {
            case: "both annotations",
            user: ALICE,
            groups: &["oncall"],
            old: Some(&by_carol),
            new: both,
            policy: &p,
            at: NOW,
            says: "not both",
        },
        Case {
            case: "generateName",
            user: CAROL,
            groups: &[],
            old: None,
            new: nameless,
            policy: &p,
            at: NOW,
            says: "generateName is not supported",
        },
        Case {
            case: "an empty name",
            user: CAROL,
            groups: &[],
            old: None,
            new: empty_name,
            policy: &p,
            at: NOW,
            says: "generateName is not supported",
        },
    ];
    for c in cases {
        match admitted(c.user, c.groups, c.old, &c.new, c.policy, ts(c.at)) {
            Ok((pe, _)) => panic!("{}: admitted: {:?}", c.case, annotations(&pe)),
            Err(e) => assert!(e.contains(c.says), "{}: {e}", c.case),
        }
    }
    // Without the control's rules there is nobody to approve.
    let g: Vec<String> = vec![];
    let e = admit(
        Caller {
            user: ALICE,
            groups: &g,
        },
        Some(&by_carol),
        &on(&by_carol, APPROVE_ANNOTATION, ALICE),
        Err("ControlOwnership \"payments\" does not exist in this namespace"),
        &key(),
        now(),
    )
    .expect_err("approved without a control");
    assert!(e.contains("cannot approve: ControlOwnership"), "{e}");
}

#[test]
fn an_approval_adds_one_signed_record_once() {
    let p = rich();
    let pe = created_by(CAROL, &[], &p);
    assert_eq!(reason(&state(&pe, &p)), reasons::AWAITING_APPROVAL);
    // The value may carry stray spaces.
    let once = annotate(&pe, ALICE, &[], APPROVE_ANNOTATION, &format!(" {ALICE} "), &p).expect("approved");
    let (requester, approvals) = records(&once);
    assert_eq!(requester, records(&pe).0, "the requester record changed");
    assert_eq!(approvals.len(), 1);
    let r = &approvals[0];
    assert_eq!((r.user.as_str(), r.via, r.at.as_str()), (ALICE, Via::Approver, NOW));
    assert_eq!(r.digest, digest(&pe));
    assert!(key().verifies("shop", "debug", r));
    assert!(
        !annotations(&once).contains_key(APPROVE_ANNOTATION),
        "the request stays"
    );
    assert_eq!(state(&once, &p), State::Approved(How::Approvers));
    let twice = approve(&once, ALICE, &[], &p);
    assert_eq!(annotations(&twice), annotations(&once));
}

#[test]
fn min_approvals_counts_distinct_approvers() {
    let p = rich_with(min_approvals(2));
    let pe = created_by(CAROL, &[], &p);
    let one = approve(&pe, ALICE, &[], &p);
    let State::Awaiting { reason, message } = state(&one, &p) else {
        panic!("approved by one of two")
    };
    assert_eq!(reason, reasons::AWAITING_APPROVAL);
    assert!(
        message.contains("approved by 1 of the 2 distinct approvers"),
        "{message}"
    );
    assert!(
        message.contains("not counting the requester carol@example.com"),
        "{message}"
    );
    let again = approve(&one, ALICE, &[], &p);
    assert!(!state(&again, &p).applies(), "one approver counted twice");
    let two = approve(&again, BOB, &[], &p);
    assert_eq!(approvals_of(&two).len(), 2);
    assert_eq!(state(&two, &p), State::Approved(How::Approvers));
    let j = verdict(&two, &p);
    let status = j.status.expect("status");
    assert_eq!(
        status.approved_by.as_deref(),
        Some("alice@example.com, bob@example.com")
    );
    assert_eq!(status.required, Some(2));
}

#[test]
fn approver_groups_approve_through_the_callers_groups() {
    let p = rich();
    let pe = created_by(CAROL, &[], &p);
    let e = annotate(&pe, GINA, &["dev"], APPROVE_ANNOTATION, GINA, &p).expect_err("not in leads");
    assert!(e.contains("is not an approver"), "{e}");
    let approved = approve(&pe, GINA, &["system:authenticated", "leads"], &p);
    let (_, approvals) = records(&approved);
    assert_eq!(approvals[0].groups, groups(&["leads"]));
    assert_eq!(state(&approved, &p), State::Approved(How::Approvers));
    // The group no longer approves: neither does the record.
    let without = rich_with(|s| s.approver_groups.clear());
    assert!(!state(&approved, &without).applies());
}

#[test]
fn break_glass_within_its_longest_window_then_review() {
    let p = rich();
    let pe = created_by(DAN, &["oncall"], &p);
    assert_eq!(requester_of(&pe).map(|r| r.groups), Some(groups(&["oncall"])));
    let broken = annotate(&pe, DAN, &["oncall"], BREAK_GLASS_ANNOTATION, DAN, &p).expect("break glass");
    assert_eq!(approvals_of(&broken), vec![(DAN.to_string(), Via::BreakGlass)]);
    let j = verdict(&broken, &p);
    assert_eq!(j.state, State::Approved(How::BreakGlass));
    assert_eq!(j.break_glass, Some(false));
    assert_eq!(
        j.status.and_then(|s| s.approved_by).as_deref(),
        Some("dan@example.com (break glass)")
    );
    // Breaking it again adds nothing.
    let again = annotate(&broken, DAN, &["oncall"], BREAK_GLASS_ANNOTATION, DAN, &p).expect("again");
    assert_eq!(annotations(&again), annotations(&broken));
    let reviewed = approve(&broken, ALICE, &[], &p);
    let j = verdict(&reviewed, &p);
    assert_eq!(j.state, State::Approved(How::Approvers));
    assert_eq!(j.break_glass, Some(true));
    // Judged against a shorter limit set since, the window is too long.
    let short = rich_with(|s| {
        s.exception_policy.as_mut().expect("policy").break_glass = Some(BreakGlassSpec {
            groups: groups(&["oncall"]),
            max_duration: "12h".into(),
        })
    });
    let j = verdict(&broken, &short);
    assert!(!j.state.applies());
    assert_eq!(j.break_glass, None);
    // A window of exactly the limit is within it.
    let mut twelve = fresh();
    twelve.spec.expires_at = "2026-11-28T22:00:00Z".into();
    let twelve = ok(DAN, &["oncall"], None, &twelve, &short);
    let broken = annotate(&twelve, DAN, &["oncall"], BREAK_GLASS_ANNOTATION, DAN, &short).expect("12h");
    let j = judge(&broken, &short, Trust::Verify(&key()), SignedDuration::from_hours(12));
    assert_eq!(j.state, State::Approved(How::BreakGlass));
}

/// An approver who passes the digest they reviewed approves that content
/// or nothing: a change since they read it is refused, not approved.
#[test]
fn an_approval_of_a_digest_read_earlier_is_refused_after_a_change() {
    let p = rich();
    let pe = created_by(CAROL, &[], &p);
    let read = digest(&pe);
    let approve_read = |pe: &PolicyException, d: &str| {
        let new = with(
            with(pe.clone(), APPROVE_ANNOTATION, ALICE),
            APPROVE_DIGEST_ANNOTATION,
            d,
        );
        admitted(ALICE, &[], Some(pe), &new, &p, now())
    };
    let (ok_pe, _) = approve_read(&pe, &read[..SHORT_DIGEST]).expect("the digest read");
    assert!(state(&ok_pe, &p).applies());
    assert!(!annotations(&ok_pe).contains_key(APPROVE_DIGEST_ANNOTATION), "consumed");
    let mut changed = pe.clone();
    changed.spec.ticket = "SEC-77".into();
    let changed = ok(CAROL, &[], Some(&pe), &changed, &p);
    let err = approve_read(&changed, &read[..SHORT_DIGEST]).expect_err("stale digest");
    assert!(err.contains("changed since it was read"), "{err}");
    let err = approve_read(&changed, "sha256:ab").expect_err("too short");
    assert!(err.contains("shorter than 19"), "{err}");
    let alone = with(changed.clone(), APPROVE_DIGEST_ANNOTATION, &read);
    let err = admitted(ALICE, &[], Some(&changed), &alone, &p, now()).expect_err("digest alone");
    assert!(err.contains("goes with"), "{err}");
}

/// The review a break-glass exception owes may come after its window
/// ended; any other approval of an expired exception changes nothing and
/// is refused.
#[test]
fn break_glass_is_reviewed_even_after_expiry() {
    let p = rich();
    let after = "2026-11-29T11:00:00Z".parse::<Timestamp>().expect("ts");
    let review = |pe: &PolicyException| {
        let new = with(pe.clone(), APPROVE_ANNOTATION, ALICE);
        admitted(ALICE, &[], Some(pe), &new, &p, after)
    };
    let broken = annotate(
        &created_by(DAN, &["oncall"], &p),
        DAN,
        &["oncall"],
        BREAK_GLASS_ANNOTATION,
        DAN,
        &p,
    )
    .expect("break glass");
    let (reviewed, _) = review(&broken).expect("a late review of break glass");
    assert_eq!(verdict(&reviewed, &p).break_glass, Some(true));
    let plain = created_by(CAROL, &[], &p);
    let err = review(&plain).expect_err("an expired exception approved");
    assert!(err.contains("has expired"), "{err}");
}

/// A record written under an approver's name while the webhook was not
/// called must not stand in the way of that approver's real approval.
#[test]
fn a_forged_record_does_not_block_a_real_approval() {
    let p = rich();
    let pe = created_by(CAROL, &[], &p);
    let d = digest(&pe);
    for (case, forged) in [
        (
            "another key",
            signing::record(&other_key(), ("shop", "debug"), ALICE, vec![], Via::Approver, &d, NOW),
        ),
        (
            "no signature",
            Record {
                user: ALICE.into(),
                groups: vec![],
                via: Via::Approver,
                digest: d.clone(),
                whole: false,
                at: NOW.into(),
                sig: String::new(),
            },
        ),
    ] {
        let stored = with(pe.clone(), APPROVALS_ANNOTATION, &json(&[forged]));
        assert!(!state(&stored, &p).applies(), "{case}");
        let approved = approve(&stored, ALICE, &[], &p);
        assert_eq!(state(&approved, &p), State::Approved(How::Approvers), "{case}");
        assert_eq!(
            approvals_of(&approved),
            vec![(ALICE.to_string(), Via::Approver)],
            "{case}"
        );
    }
}

#[test]
fn content_changed_while_the_webhook_was_not_called_has_no_verified_requester() {
    let p = rich_with(min_approvals(2));
    let pe = created_by(CAROL, &[], &p);
    let one = approve(&pe, ALICE, &[], &p);
    // The ticket was changed while the webhook was not called: the old
    // approval still sits there, for other content.
    let mut stale = one.clone();
    stale.spec.ticket = "SEC-2".into();
    assert_eq!(reason(&state(&stale, &p)), reasons::REQUESTER_UNVERIFIED);
    let e = annotate(&stale, BOB, &[], APPROVE_ANNOTATION, BOB, &p).expect_err("no requester");
    assert!(e.contains("no verified requester"), "{e}");
}

// ---------------------------------------------------------------- judge

#[test]
fn judge_without_a_verified_requester() {
    let p = rich();
    let d = digest(&fresh());
    let signed = |k: &Key, name: &str, digest: &str| {
        let r = signing::record(k, ("shop", name), CAROL, vec![], Via::Request, digest, NOW);
        with(fresh(), REQUESTED_BY_ANNOTATION, &json(&r))
    };
    let mut changed = created_by(CAROL, &[], &p);
    changed.spec.ticket = "SEC-2".into();
    let as_approver = {
        let r = signing::record(&key(), ("shop", "debug"), CAROL, vec![], Via::Approver, &d, NOW);
        with(fresh(), REQUESTED_BY_ANNOTATION, &json(&r))
    };
    let cases = [
        ("none", fresh()),
        ("not JSON", with(fresh(), REQUESTED_BY_ANNOTATION, "carol")),
        ("another key", signed(&other_key(), "debug", &d)),
        ("another exception", signed(&key(), "other", &d)),
        ("another digest", signed(&key(), "debug", "sha256:00")),
        ("content changed since", changed),
        ("not a request", as_approver),
    ];
    for (case, pe) in cases {
        // Even with an approval signed for it, nothing applies.
        let a = signing::record(
            &key(),
            ("shop", "debug"),
            ALICE,
            vec![],
            Via::Approver,
            &digest(&pe),
            NOW,
        );
        let pe = with(pe, APPROVALS_ANNOTATION, &json(&[a]));
        let j = verdict(&pe, &p);
        let State::Awaiting { reason, message } = &j.state else {
            panic!("{case}: approved")
        };
        assert_eq!(*reason, reasons::REQUESTER_UNVERIFIED, "{case}");
        assert!(message.contains("no verified record of who wrote"), "{case}: {message}");
        assert_eq!(j.break_glass, None);
        assert_eq!(
            j.status,
            Some(ApprovalStatus {
                required: Some(1),
                ..Default::default()
            }),
            "{case}"
        );
    }
    assert!(
        verdict(&signed(&key(), "debug", &d), &p)
            .status
            .is_some_and(|s| s.requested_by.is_some())
    );
}

#[test]
fn judge_counts_only_records_signed_for_this_content() {
    let p = rich();
    let pe = created_by(CAROL, &[], &p);
    let d = digest(&pe);
    let mut earlier = fresh();
    earlier.spec.ticket = "SEC-1".into();
    let sign = |k: &Key, name: &str, user: &str, via: Via, digest: &str| {
        signing::record(k, ("shop", name), user, vec![], via, digest, NOW)
    };
    let edited = {
        let mut r = sign(&key(), "debug", ALICE, Via::Approver, &d);
        r.digest = "sha256:00".into();
        r
    };
    let regrouped = {
        let mut r = sign(&key(), "debug", GINA, Via::Approver, &d);
        r.groups = groups(&["leads"]);
        r
    };
    let cases = [
        ("another key", sign(&other_key(), "debug", ALICE, Via::Approver, &d)),
        (
            "copied from another exception",
            sign(&key(), "other", ALICE, Via::Approver, &d),
        ),
        ("edited digest", edited),
        ("groups added by hand", regrouped),
        (
            "for earlier content",
            sign(&key(), "debug", ALICE, Via::Approver, &digest(&earlier)),
        ),
        ("the requester's own", sign(&key(), "debug", CAROL, Via::Approver, &d)),
        ("not an approver", sign(&key(), "debug", MALLORY, Via::Approver, &d)),
        (
            "a request, not an approval",
            sign(&key(), "debug", ALICE, Via::Request, &d),
        ),
        (
            "break glass outside its groups",
            sign(&key(), "debug", DAN, Via::BreakGlass, &d),
        ),
        (
            "Git, not listed",
            sign(&key(), "debug", "someone", Via::TrustedApplier, &d),
        ),
    ];
    for (case, r) in cases {
        let forged = with(pe.clone(), APPROVALS_ANNOTATION, &json(&[r]));
        let j = verdict(&forged, &p);
        assert_eq!(reason(&j.state), reasons::AWAITING_APPROVAL, "{case}");
        let status = j.status.expect("status");
        assert_eq!(status.requested_by.as_deref(), Some(CAROL), "{case}");
        assert_eq!(status.approved_by, None, "{case}");
        assert!(status.approvals.is_empty(), "{case}");
        assert_eq!(j.break_glass, None, "{case}");
    }
    // The real one counts.
    let real = with(
        pe.clone(),
        APPROVALS_ANNOTATION,
        &json(&[sign(&key(), "debug", ALICE, Via::Approver, &d)]),
    );
    assert!(state(&real, &p).applies());
}

#[test]
fn judge_applies_the_controls_rules_as_they_are_now() {
    let p = rich();
    let approved = approve(&created_by(CAROL, &[], &p), ALICE, &[], &p);
    assert!(state(&approved, &p).applies());
    let alice_removed = rich_with(|s| s.approvers = groups(&[BOB]));
    assert_eq!(reason(&state(&approved, &alice_removed)), reasons::AWAITING_APPROVAL);
    let more_needed = rich_with(min_approvals(2));
    assert!(!state(&approved, &more_needed).applies());
    let by_git = created_by(ARGO, &[], &p);
    assert_eq!(state(&by_git, &p), State::Approved(How::TrustedApplier));
    let git_removed = rich_with(|s| s.exception_policy.as_mut().expect("policy").trusted_appliers.clear());
    let State::Awaiting { reason, message } = state(&by_git, &git_removed) else {
        panic!("approved by an applier no longer trusted")
    };
    assert_eq!(reason, reasons::AWAITING_APPROVAL);
    assert!(message.contains("approved by 0 of the 1"), "{message}");
    assert!(
        message.contains("kubectl annotate policyexception debug -n shop steward.dev/approve=<their user name>"),
        "{message}"
    );
    let broken = annotate(
        &created_by(DAN, &["oncall"], &p),
        DAN,
        &["oncall"],
        BREAK_GLASS_ANNOTATION,
        DAN,
        &p,
    )
    .expect("break glass");
    let glass_removed = rich_with(|s| s.exception_policy.as_mut().expect("policy").break_glass = None);
    assert!(!state(&broken, &glass_removed).applies());
}

#[test]
fn judge_reports_who_approved_how() {
    let p = rich_with(min_approvals(2));
    // Git wrote it; alice and bob approved it too; dan broke glass.
    let by_git = created_by(ARGO, &[], &p);
    let mut status_of = verdict(&by_git, &p);
    assert_eq!(status_of.state, State::Approved(How::TrustedApplier));
    let s = status_of.status.take().expect("status");
    assert_eq!(
        s,
        ApprovalStatus {
            requested_by: Some(ARGO.into()),
            approved_by: Some(format!("alice@example.com (via trusted applier {ARGO})")),
            required: Some(2),
            digest: Some(digest(&by_git)),
            approvals: vec![ApprovalEntry {
                user: ARGO.into(),
                via: "TrustedApplier".into(),
                time: NOW.into(),
                reviewer: Some(ALICE.into()),
            }],
        }
    );
    let one = approve(&by_git, ALICE, &[], &p);
    // Break glass is for one's own exception only: dan did not ask for this.
    let refused = annotate(&one, DAN, &["oncall"], BREAK_GLASS_ANNOTATION, DAN, &p).expect_err("not his");
    assert!(
        refused.contains("break glass approves your own exception only"),
        "{refused}"
    );
    // A signed break-glass record by someone else than the requester (the
    // webhook never writes one) does not count either.
    let d = digest(&one);
    let (_, mut records_now) = records(&one);
    records_now.push(signing::record(
        &key(),
        ("shop", "debug"),
        DAN,
        vec!["oncall".into()],
        Via::BreakGlass,
        &d,
        NOW,
    ));
    let not_his = with(one.clone(), APPROVALS_ANNOTATION, &json(&records_now));
    assert_eq!(verdict(&not_his, &p).break_glass, None);
    // dan's own exception, broken and then reviewed by alice.
    let mut own = created_by(DAN, &["oncall"], &p);
    own = annotate(&own, DAN, &["oncall"], BREAK_GLASS_ANNOTATION, DAN, &p).expect("break glass");
    let broken = approve(&own, ALICE, &[], &p);
    let j = verdict(&broken, &p);
    assert_eq!(j.state, State::Approved(How::BreakGlass), "one of two approvers");
    assert_eq!(j.break_glass, Some(true), "alice approved the same content");
    let s = j.status.expect("status");
    assert_eq!(
        s.approved_by.as_deref(),
        Some("dan@example.com (break glass), alice@example.com")
    );
    let vias: Vec<&str> = s.approvals.iter().map(|e| e.via.as_str()).collect();
    assert_eq!(vias, ["BreakGlass", "Approver"]);
    let two = approve(&broken, BOB, &[], &p);
    assert_eq!(state(&two, &p), State::Approved(How::Approvers));
    // Assumed approved: no status, nothing to verify.
    let j = judge(&fresh(), &p, Trust::AssumeApproved, DAY);
    assert_eq!(
        (j.state, j.break_glass, j.status),
        (State::Approved(How::Approvers), None, None)
    );
}

#[test]
fn approved_for_tests_gives_a_verified_approval() {
    let p = rich();
    let pe = approved_for_tests(fresh(), &key(), CAROL, ALICE);
    assert_eq!(state(&pe, &p), State::Approved(How::Approvers));
    assert!(!state(&approved_for_tests(fresh(), &other_key(), CAROL, ALICE), &p).applies());
}

// ------------------------------------------------------------ hostile input

/// What a client could put under an annotation: anything, JSON that looks
/// like records, or records signed by another key.
fn hostile() -> impl Strategy<Value = String> {
    let d = digest(&fresh());
    let user = prop_oneof![
        Just(ALICE.to_string()),
        Just(CAROL.to_string()),
        Just(ARGO.to_string()),
        "\\PC{0,12}"
    ];
    let via = prop_oneof![
        Just(Via::Request),
        Just(Via::Approver),
        Just(Via::TrustedApplier),
        Just(Via::BreakGlass)
    ];
    let digest = prop_oneof![Just(d), "\\PC{0,20}"];
    let sig = prop_oneof![Just(None), "[0-9a-f]{0,64}".prop_map(Some)];
    let record = (user, proptest::collection::vec("\\PC{0,8}", 0..3), via, digest, sig).prop_map(
        |(user, groups, via, digest, sig)| {
            let r = signing::record(&other_key(), ("shop", "debug"), &user, groups, via, &digest, NOW);
            match sig {
                Some(sig) => Record { sig, ..r },
                None => r,
            }
        },
    );
    prop_oneof![
        "\\PC{0,40}",
        Just(String::new()),
        Just("[]".to_string()),
        Just("null".to_string()),
        Just(ALICE.to_string()),
        record.clone().prop_map(|r| json(&r)),
        proptest::collection::vec(record, 0..20).prop_map(|v| json(&v)),
    ]
}

fn maybe(s: impl Strategy<Value = String>) -> impl Strategy<Value = Option<String>> {
    prop_oneof![Just(None), s.prop_map(Some)]
}

fn put(pe: &mut PolicyException, k: &str, v: &Option<String>) {
    if let Some(v) = v {
        pe.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(k.into(), v.clone());
    }
}

/// Stands for the caller's own user name in a generated value.
const SELF: &str = "<self>";

/// A value for the approve or break-glass annotation: the caller's own
/// name (perhaps padded), someone else's, or anything.
fn named() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(SELF.to_string()),
        Just(format!(" {SELF}\n")),
        Just(ALICE.to_string()),
        Just(DAN.to_string()),
        "\\PC{0,20}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Admission never panics on what a client sends, and nothing but what
    /// the caller earned in this very request (as themselves) is signed:
    /// with no record signed by the key on the stored object, the result
    /// applies only when the caller approved it or Git wrote it.
    #[test]
    fn hostile_annotations_never_panic_nor_approve(
        old_requester in maybe(hostile()),
        old_approvals in maybe(hostile()),
        new_requester in maybe(hostile()),
        new_approvals in maybe(hostile()),
        approve_value in maybe(named()),
        glass_value in maybe(named()),
        caller in prop_oneof![Just(ALICE), Just(CAROL), Just(DAN), Just(ARGO), Just(MALLORY)],
        caller_groups in proptest::sample::subsequence(vec!["leads", "oncall", "dev"], 0..=3),
        requested in proptest::bool::weighted(0.7),
        update in proptest::bool::weighted(0.8),
        change in proptest::bool::weighted(0.3),
    ) {
        let p = rich();
        let mut old = fresh();
        put(&mut old, REQUESTED_BY_ANNOTATION, &old_requester);
        put(&mut old, APPROVALS_ANNOTATION, &old_approvals);
        // Nothing the key signed is on the stored object…
        prop_assert!(!verdict(&old, &p).state.applies());
        // …but perhaps a real record of carol's request.
        if requested {
            let r = signing::record(&key(), ("shop", "debug"), CAROL, vec![], Via::Request, &digest(&old), NOW);
            put(&mut old, REQUESTED_BY_ANNOTATION, &Some(json(&r)));
            prop_assert!(!verdict(&old, &p).state.applies());
        }
        let mut new = old.clone();
        put(&mut new, REQUESTED_BY_ANNOTATION, &new_requester);
        put(&mut new, APPROVALS_ANNOTATION, &new_approvals);
        if change {
            new.spec.ticket = "SEC-2".into();
        }
        let own_name = |v: &Option<String>| v.as_ref().map(|v| v.replace(SELF, caller));
        let (approve_value, glass_value) = (own_name(&approve_value), own_name(&glass_value));
        put(&mut new, APPROVE_ANNOTATION, &approve_value);
        put(&mut new, BREAK_GLASS_ANNOTATION, &glass_value);
        let g = groups(&caller_groups);
        let admitted = admit(Caller { user: caller, groups: &g }, update.then_some(&old), &new, Ok(&p), &key(), now());
        if let Ok(a) = admitted {
            let mut out = new.clone();
            out.metadata.annotations = Some(a.annotations);
            let j = verdict(&out, &p);
            let own = |v: &Option<String>| v.as_deref().is_some_and(|v| v.trim() == caller);
            let approver = caller == ALICE || caller_groups.contains(&"leads");
            let earned = if !update || change {
                // A create, or a change of content: Git's own, or nothing.
                caller == ARGO && !update
            } else {
                requested
                    && ((own(&approve_value) && approver && caller != CAROL)
                        || (own(&glass_value) && caller_groups.contains(&"oncall")))
            };
            prop_assert_eq!(j.state.applies(), earned, "{:?}", j.state);
        }
    }
}
