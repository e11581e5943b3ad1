//! Verified approvals end to end, with the approvals webhook registered as
//! users install it and personas impersonated with `--as`/`--as-group`:
//! erin (a namespace editor who files exceptions), alice and bob
//! (approvers, bob not of this control), carol and frank (holding the
//! approver role through a group: the control lists carol's group, not
//! frank's), dave (on call, may break glass), and Argo CD's application
//! controller (a trusted applier).

use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{PolicyRule, RoleBinding};
use kube::api::Api;
use steward::api::{Grant, Phase, PolicyException, limits};

use crate::admission;
use crate::harness::{self, Env, OUTCOME, condition, condition_is, env, eventually, from_now, phase_is, wait_for};

const ARGOCD: &str = "system:serviceaccount:argocd:argocd-application-controller";
const ONCALL: &str = "payments-oncall";
/// The group the control lists in `approverGroups`.
const LEADS: &str = "payments-leads";

/// The personas' RBAC in `ns`: everyone may file and read exceptions;
/// alice and bob, and the groups payments-leads and platform-leads, also
/// hold the approver role (so what refuses bob, or frank of platform-leads,
/// is Steward's admission, not RBAC).
fn personas(env: &Env, ns: &str) {
    env.apply_ok(
        ns,
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: exception-editors}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: steward-editor}
subjects:
  - {apiGroup: rbac.authorization.k8s.io, kind: User, name: erin}
  - {apiGroup: rbac.authorization.k8s.io, kind: User, name: alice@example.com}
  - {apiGroup: rbac.authorization.k8s.io, kind: Group, name: payments-oncall}
  - {kind: ServiceAccount, name: argocd-application-controller, namespace: argocd}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: exception-viewers}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: steward-viewer}
subjects:
  - {apiGroup: rbac.authorization.k8s.io, kind: User, name: erin}
  - {apiGroup: rbac.authorization.k8s.io, kind: Group, name: payments-oncall}
  - {kind: ServiceAccount, name: argocd-application-controller, namespace: argocd}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: exception-approvers}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: steward-approver}
subjects:
  - {apiGroup: rbac.authorization.k8s.io, kind: User, name: alice@example.com}
  - {apiGroup: rbac.authorization.k8s.io, kind: User, name: bob@example.com}
  - {apiGroup: rbac.authorization.k8s.io, kind: Group, name: payments-oncall}
  - {apiGroup: rbac.authorization.k8s.io, kind: Group, name: payments-leads}
  - {apiGroup: rbac.authorization.k8s.io, kind: Group, name: platform-leads}
"#,
    );
}

/// The control `payments`: approvers alice (and bob when `min` is 2) and
/// the members of payments-leads, Argo CD trusted, on-call may break glass
/// for at most an hour.
fn control(min: u32) -> String {
    let approvers = if min > 1 {
        "[alice@example.com, bob@example.com]"
    } else {
        "[alice@example.com]"
    };
    format!(
        r#"
apiVersion: steward.dev/v1alpha1
kind: ControlOwnership
metadata: {{name: payments}}
spec:
  layer: Identity
  owner: {{name: payments-team}}
  backupOwner: {{name: security-team}}
  approvers: {approvers}
  approverGroups: [{LEADS}]
  review: {reviewed}
  exceptionPolicy:
    minApprovals: {min}
    trustedAppliers: ["{ARGOCD}"]
    breakGlass: {{groups: [{ONCALL}], maxDuration: 1h}}
  workloadIdentities:
    - serviceAccount: api
      task: Serves the API
      rules: [{{apiGroups: [""], resources: [configmaps], verbs: [get]}}]
"#,
        reviewed = harness::reviewed_recently()
    )
}

/// An exception `name` granting `api` `verbs` on pods/log for `secs`.
fn exception(name: &str, verbs: &str, secs: i64) -> String {
    format!(
        r#"
apiVersion: steward.dev/v1alpha1
kind: PolicyException
metadata: {{name: {name}}}
spec:
  control: payments
  ticket: SEC-7
  approver: alice@example.com
  requester: erin
  reason: Debug a stuck payout
  expiresAt: "{expires}"
  grant:
    serviceAccount: api
    rules: [{{apiGroups: [""], resources: [pods/log], verbs: {verbs}}}]
"#,
        expires = from_now(secs)
    )
}

/// A namespace with the personas and the control, Ready.
async fn setup(env: &Env, prefix: &str, min: u32) -> String {
    let ns = env.namespace(prefix).await;
    personas(env, &ns);
    env.apply_ok(&ns, &control(min));
    let cos: Api<steward::api::ControlOwnership> = Api::namespaced(env.admin().await, &ns);
    wait_for(&cos, "payments", OUTCOME, "Ready", condition_is("Ready", "True")).await;
    ns
}

/// `kubectl apply` of `yaml` as `who` (`--as`, then `--as-group`s).
fn apply_as(env: &Env, ns: &str, yaml: &str, who: &[&str]) -> std::process::Output {
    env.apply_with(ns, yaml, who)
}

/// `kubectl annotate --overwrite policyexception NAME KEY=VALUE` as `who`.
fn annotate_as(env: &Env, ns: &str, name: &str, kv: &str, who: &[&str]) -> std::process::Output {
    let mut args: Vec<&str> = who.to_vec();
    args.extend(["-n", ns, "annotate", "--overwrite", "policyexception", name, kv]);
    env.kubectl(&args)
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(out: std::process::Output, what: &str) {
    assert!(out.status.success(), "{what} failed: {}", stderr(&out));
}

fn refused(out: std::process::Output, what: &str, says: &str) {
    assert!(!out.status.success(), "{what} was admitted");
    let err = stderr(&out);
    assert!(err.contains(says), "{what}: the refusal does not say {says:?}: {err}");
}

/// Waits until the exception's `Approved` condition has `reason`.
async fn approval_is(pes: &Api<PolicyException>, name: &str, reason: &'static str) -> PolicyException {
    wait_for(pes, name, OUTCOME, reason, move |pe: Option<&PolicyException>| {
        pe.and_then(|pe| condition(pe, "Approved"))
            .is_some_and(|c| c["reason"] == reason)
    })
    .await
}

/// Waits until the exception's status names who approved it.
async fn approval_recorded(pes: &Api<PolicyException>, name: &str) -> PolicyException {
    wait_for(
        pes,
        name,
        OUTCOME,
        "an approval in status",
        |pe: Option<&PolicyException>| pe.is_some_and(|pe| approval(pe).approved_by.is_some()),
    )
    .await
}

fn approval(pe: &PolicyException) -> steward::api::ApprovalStatus {
    pe.status.as_ref().and_then(|s| s.approval.clone()).unwrap_or_default()
}

const ERIN: &[&str] = &["--as=erin"];
const ALICE: &[&str] = &["--as=alice@example.com"];
const BOB: &[&str] = &["--as=bob@example.com"];
const DAVE: &[&str] = &[
    "--as=dave",
    "--as-group=payments-oncall",
    "--as-group=system:authenticated",
];
const ARGO: &[&str] = &["--as=system:serviceaccount:argocd:argocd-application-controller"];
/// Listed by no user name; a member of the control's approver group.
const CAROL: &[&str] = &[
    "--as=carol",
    "--as-group=payments-leads",
    "--as-group=system:authenticated",
];
/// Holds the approver role through platform-leads, a group the control
/// does not list.
const FRANK: &[&str] = &[
    "--as=frank",
    "--as-group=platform-leads",
    "--as-group=system:authenticated",
];

/// The value of the controller's `metric` whose labels include `labels`.
fn metric(env: &Env, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    env.metrics()
        .samples
        .into_iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .and_then(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => Some(v),
            _ => None,
        })
}

/// Waits until an Event of `reason` about the exception `name` is in `ns`
/// (events.k8s.io/v1, `regarding` the exception).
async fn event_about(env: &Env, ns: &str, name: &str, reason: &str) {
    let events: Api<Event> = Api::namespaced(env.admin().await, ns);
    let what = format!("an {reason} Event about {ns}/{name}");
    eventually(OUTCOME, &what, || {
        let events = events.clone();
        async move {
            events.list(&Default::default()).await.is_ok_and(|l| {
                l.items.iter().any(|e| {
                    e.reason.as_deref() == Some(reason)
                        && e.regarding.as_ref().is_some_and(|r| {
                            r.kind.as_deref() == Some("PolicyException") && r.name.as_deref() == Some(name)
                        })
                })
            })
        }
    })
    .await;
}

#[tokio::test]
async fn a_claimed_approver_grants_nothing_until_the_approver_approves_as_herself() {
    let env = env();
    let ns = setup(env, "approve", 1).await;
    let pes: Api<PolicyException> = Api::namespaced(env.admin().await, &ns);
    let rbs: Api<RoleBinding> = Api::namespaced(env.admin().await, &ns);

    // erin writes `approver: alice@example.com`: a claim, not an approval.
    ok(
        apply_as(env, &ns, &exception("debug", "[get]", 3600), ERIN),
        "erin files",
    );
    let pe = approval_is(&pes, "debug", "AwaitingApproval").await;
    assert_eq!(pe.status.as_ref().and_then(|s| s.phase), Some(Phase::Pending));
    assert_eq!(approval(&pe).requested_by.as_deref(), Some("erin"));
    assert!(approval(&pe).approved_by.is_none());
    assert!(rbs.get_opt("steward-x:debug").await.unwrap().is_none());
    assert!(!env.can(&ns, "api", "get", "", "pods/log").await, "granted on a claim");
    // Told: an Event about it, and the gauge an alert watches (computed
    // from the controller's cache, which sees the status after we do).
    event_about(env, &ns, "debug", "AwaitingApproval").await;
    eventually(OUTCOME, "the awaiting-approval gauge counting it", || {
        let n = metric(env, "steward_exceptions_awaiting_approval", &[("namespace", &ns)]);
        async move { n.is_some_and(|n| n >= 1.0) }
    })
    .await;

    // Refused, each with a message that says why.
    refused(
        annotate_as(env, &ns, "debug", "steward.dev/approve=bob@example.com", BOB),
        "bob, not an approver of payments",
        "is not an approver of ControlOwnership \"payments\"",
    );
    refused(
        annotate_as(env, &ns, "debug", "steward.dev/approve=alice@example.com", ERIN),
        "erin naming alice",
        "but you are \"erin\"",
    );
    refused(
        annotate_as(env, &ns, "debug", "steward.dev/approve=bob@example.com", ALICE),
        "alice naming bob",
        "but you are \"alice@example.com\"",
    );
    // Forged records are replaced, not trusted.
    let forged = r#"steward.dev/approvals=[{"user":"alice@example.com","via":"Approver","digest":"x","at":"2026-01-01T00:00:00Z","sig":"00"}]"#;
    let out = annotate_as(env, &ns, "debug", forged, ERIN);
    assert!(
        stderr(&out).contains("written by Steward's admission only"),
        "no warning: {}",
        stderr(&out)
    );
    let pe = approval_is(&pes, "debug", "AwaitingApproval").await;
    assert!(approval(&pe).approvals.is_empty());
    assert!(!env.can(&ns, "api", "get", "", "pods/log").await);

    // alice approves as herself: granted within a second.
    ok(
        annotate_as(env, &ns, "debug", "steward.dev/approve=alice@example.com", ALICE),
        "alice approves",
    );
    let approved = env
        .audited(OUTCOME, "alice's approval", |w| {
            w.as_user.as_deref() == Some("alice@example.com")
                && w.is("patch", "policyexceptions", Some(&ns), "debug")
                && w.code == 200
        })
        .await;
    let granted = env
        .controller_write(OUTCOME, "the grant", |w| {
            w.resource == "rolebindings" && w.name == "steward-x:debug" && w.namespace.as_deref() == Some(ns.as_str())
        })
        .await;
    let lag = granted.completed.duration_since(approved.completed);
    eprintln!("approval to grant: {lag:?}");
    assert!(
        lag < jiff::SignedDuration::from_secs(1),
        "granted {lag:?} after the approval"
    );
    let pe = wait_for(&pes, "debug", OUTCOME, "Active", phase_is(Phase::Active)).await;
    assert_eq!(approval(&pe).approved_by.as_deref(), Some("alice@example.com"));
    assert_eq!(approval(&pe).requested_by.as_deref(), Some("erin"));
    eventually(OUTCOME, "the grant in force", || {
        env.can(&ns, "api", "get", "", "pods/log")
    })
    .await;

    // Editing the grant voids the approval: revoked until approved again.
    ok(
        apply_as(env, &ns, &exception("debug", "[get, list]", 3600), ERIN),
        "erin widens it",
    );
    approval_is(&pes, "debug", "AwaitingApproval").await;
    eventually(OUTCOME, "revoked", || async {
        !env.can(&ns, "api", "get", "", "pods/log").await
    })
    .await;
    assert!(!env.can(&ns, "api", "list", "", "pods/log").await);
    ok(
        annotate_as(env, &ns, "debug", "steward.dev/approve=alice@example.com", ALICE),
        "alice approves the new content",
    );
    eventually(OUTCOME, "granted again, as changed", || {
        env.can(&ns, "api", "list", "", "pods/log")
    })
    .await;
}

#[tokio::test]
async fn a_member_of_an_approver_group_approves_and_a_member_of_no_listed_group_cannot() {
    let env = env();
    let ns = setup(env, "groups", 1).await;
    let pes: Api<PolicyException> = Api::namespaced(env.admin().await, &ns);
    ok(
        apply_as(env, &ns, &exception("debug", "[get]", 3600), ERIN),
        "erin files",
    );
    approval_is(&pes, "debug", "AwaitingApproval").await;
    // frank may patch it (RBAC through platform-leads), but neither he nor
    // his group is listed by the control.
    refused(
        annotate_as(env, &ns, "debug", "steward.dev/approve=frank", FRANK),
        "frank, in no listed group",
        "frank is not an approver of ControlOwnership \"payments\"",
    );
    let pe = approval_is(&pes, "debug", "AwaitingApproval").await;
    assert!(approval(&pe).approvals.is_empty(), "{:?}", approval(&pe));
    assert!(
        !env.can(&ns, "api", "get", "", "pods/log").await,
        "granted on frank's word"
    );

    // carol is not in spec.approvers; her group is in spec.approverGroups.
    ok(
        annotate_as(env, &ns, "debug", "steward.dev/approve=carol", CAROL),
        "carol approves through payments-leads",
    );
    let pe = approval_is(&pes, "debug", "Approved").await;
    assert_eq!(approval(&pe).approved_by.as_deref(), Some("carol"));
    assert_eq!(approval(&pe).requested_by.as_deref(), Some("erin"));
    eventually(OUTCOME, "granted", || env.can(&ns, "api", "get", "", "pods/log")).await;
}

/// An exception as large as the API server stores (about a megabyte) is
/// approved like any other. The review of alice's update carries the
/// object twice, over two megabytes: the webhook reads it rather than
/// refusing it for its size (failurePolicy Fail would refuse the approval).
#[tokio::test]
async fn an_exception_as_large_as_the_api_server_stores_can_be_approved() {
    let env = env();
    let ns = setup(env, "large", 1).await;
    let pes: Api<PolicyException> = Api::namespaced(env.admin().await, &ns);
    // Every list at its limit, as in the hostile tests, but a grant the
    // control allows: pods/log of many named pods.
    let mut large = crate::hostile::bounded::largest_exception("large", "payments", "alice@example.com", 60);
    let rule = |r: usize| PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(vec!["pods/log".into()]),
        verbs: vec!["get".into()],
        resource_names: Some(
            (0..limits::RULE_RESOURCE_NAMES)
                .map(|i| format!("pod-{r}-{i}-{}", "x".repeat(230)))
                .collect(),
        ),
        non_resource_urls: None,
    };
    large.spec.grant = Some(Grant {
        service_account: "api".into(),
        rules: (0..limits::RULES).map(rule).collect(),
    });
    large.spec.tolerate.clear();
    let doc = crate::hostile::bounded::json(&large);
    // An update's review carries it twice: over 2 MiB.
    assert!(doc.len() > 1_100_000, "not large: {} bytes", doc.len());
    // Server-side: kubectl's client-side apply would add a second copy of
    // the object as an annotation, over the API server's limit.
    ok(env.apply_with(&ns, &doc, &["--server-side", "--as=erin"]), "erin files");
    approval_is(&pes, "large", "AwaitingApproval").await;
    ok(
        annotate_as(env, &ns, "large", "steward.dev/approve=alice@example.com", ALICE),
        "alice approves the large exception",
    );
    let pe = approval_recorded(&pes, "large").await;
    assert_eq!(approval(&pe).approved_by.as_deref(), Some("alice@example.com"));
    assert_eq!(approval(&pe).requested_by.as_deref(), Some("erin"));
    // And granted: a Role of all 4,096 named pods.
    wait_for(&pes, "large", OUTCOME, "Active", phase_is(Phase::Active)).await;
}

#[tokio::test]
async fn the_requester_cannot_approve_their_own_request() {
    let env = env();
    let ns = setup(env, "self", 1).await;
    let pes: Api<PolicyException> = Api::namespaced(env.admin().await, &ns);
    ok(
        apply_as(env, &ns, &exception("mine", "[get]", 3600), ALICE),
        "alice files",
    );
    approval_is(&pes, "mine", "AwaitingApproval").await;
    refused(
        annotate_as(env, &ns, "mine", "steward.dev/approve=alice@example.com", ALICE),
        "alice approving her own request",
        "someone else must approve it",
    );
    assert!(!env.can(&ns, "api", "get", "", "pods/log").await);
}

#[tokio::test]
async fn two_distinct_approvers_are_needed_when_the_control_says_two() {
    let env = env();
    let ns = setup(env, "twice", 2).await;
    let pes: Api<PolicyException> = Api::namespaced(env.admin().await, &ns);
    ok(
        apply_as(env, &ns, &exception("debug", "[get]", 3600), ERIN),
        "erin files",
    );
    approval_is(&pes, "debug", "AwaitingApproval").await;
    for _ in 0..2 {
        ok(
            annotate_as(env, &ns, "debug", "steward.dev/approve=alice@example.com", ALICE),
            "alice approves",
        );
    }
    // alice's approval is recorded once, and one is not two.
    let pe = approval_recorded(&pes, "debug").await;
    assert_eq!(approval(&pe).approvals.len(), 1, "{:?}", approval(&pe));
    assert_eq!(condition(&pe, "Approved").unwrap()["reason"], "AwaitingApproval");
    assert!(
        !env.can(&ns, "api", "get", "", "pods/log").await,
        "granted on one of two"
    );
    ok(
        annotate_as(env, &ns, "debug", "steward.dev/approve=bob@example.com", BOB),
        "bob approves",
    );
    let pe = approval_is(&pes, "debug", "Approved").await;
    assert_eq!(
        approval(&pe).approved_by.as_deref(),
        Some("alice@example.com, bob@example.com")
    );
    eventually(OUTCOME, "granted", || env.can(&ns, "api", "get", "", "pods/log")).await;
}

#[tokio::test]
async fn a_trusted_applier_grants_and_a_plain_editor_applying_the_same_does_not() {
    let env = env();
    let ns = setup(env, "gitops", 1).await;
    let pes: Api<PolicyException> = Api::namespaced(env.admin().await, &ns);
    ok(
        apply_as(env, &ns, &exception("from-git", "[get]", 3600), ARGO),
        "Argo CD applies",
    );
    let pe = approval_is(&pes, "from-git", "ApprovedViaTrustedApplier").await;
    let a = approval(&pe);
    assert_eq!(a.approvals[0].via, "TrustedApplier");
    assert_eq!(a.approvals[0].reviewer.as_deref(), Some("alice@example.com"));
    assert!(a.approved_by.unwrap_or_default().contains("via trusted applier"));
    eventually(OUTCOME, "granted", || env.can(&ns, "api", "get", "", "pods/log")).await;

    // The same manifest applied by erin under another name: nothing.
    ok(
        apply_as(env, &ns, &exception("by-hand", "[list]", 3600), ERIN),
        "erin applies",
    );
    approval_is(&pes, "by-hand", "AwaitingApproval").await;
    assert!(!env.can(&ns, "api", "list", "", "pods/log").await);

    // erin edits Git's exception: a human must approve it now, and Argo
    // CD writing over her edit does not count as Git's approval either.
    ok(
        apply_as(env, &ns, &exception("from-git", "[get, watch]", 3600), ERIN),
        "erin edits",
    );
    approval_is(&pes, "from-git", "AwaitingApproval").await;
    ok(
        apply_as(env, &ns, &exception("from-git", "[get]", 3600), ARGO),
        "Argo CD reverts",
    );
    approval_is(&pes, "from-git", "AwaitingApproval").await;
    eventually(OUTCOME, "revoked", || async {
        !env.can(&ns, "api", "get", "", "pods/log").await
    })
    .await;
}

#[tokio::test]
async fn break_glass_grants_at_once_within_its_cap_and_is_reported_until_reviewed() {
    let env = env();
    let ns = setup(env, "glass", 1).await;
    let pes: Api<PolicyException> = Api::namespaced(env.admin().await, &ns);
    // Longer than breakGlass.maxDuration (1h): refused.
    ok(
        apply_as(env, &ns, &exception("long", "[get]", 7200), DAVE),
        "dave files a long one",
    );
    approval_is(&pes, "long", "AwaitingApproval").await;
    refused(
        annotate_as(env, &ns, "long", "steward.dev/break-glass=dave", DAVE),
        "break glass beyond maxDuration",
        "break glass is limited to windows of 1h",
    );
    // erin is not on call.
    ok(
        apply_as(env, &ns, &exception("erins", "[get]", 1800), ERIN),
        "erin files",
    );
    approval_is(&pes, "erins", "AwaitingApproval").await;
    refused(
        annotate_as(env, &ns, "erins", "steward.dev/break-glass=erin", ERIN),
        "erin breaking glass",
        "is in none of the break-glass groups",
    );

    ok(
        apply_as(env, &ns, &exception("incident", "[get]", 1800), DAVE),
        "dave files",
    );
    // No other test breaks glass through the shared controller.
    let glass_count = |env: &Env| metric(env, "steward_break_glass_total", &[]).expect("steward_break_glass_total");
    let before = glass_count(env);
    ok(
        annotate_as(env, &ns, "incident", "steward.dev/break-glass=dave", DAVE),
        "dave breaks glass",
    );
    let pe = approval_is(&pes, "incident", "BreakGlass").await;
    assert_eq!(condition(&pe, "BreakGlass").unwrap()["status"], "True");
    eventually(OUTCOME, "granted", || env.can(&ns, "api", "get", "", "pods/log")).await;
    env.wait_for_events(&ns, &["BreakGlass"]).await;
    // Reported: the metric an alert pages on, and a `fail` result.
    let broken_glass = |env: &Env| {
        env.metrics().samples.iter().any(|s| {
            s.metric == "steward_exceptions_break_glass"
                && s.labels.get("namespace") == Some(ns.as_str())
                && s.labels.get("exception") == Some("incident")
                && matches!(s.value, prometheus_parse::Value::Gauge(v) if v == 1.0)
        })
    };
    eventually(OUTCOME, "the break-glass metric", || {
        let seen = broken_glass(env);
        async move { seen }
    })
    .await;
    // Counted once, after the status write that said BreakGlass.
    eventually(OUTCOME, "steward_break_glass_total counting it", || {
        let n = glass_count(env);
        async move { n > before }
    })
    .await;
    assert_eq!(glass_count(env), before + 1.0, "steward_break_glass_total");
    let report = report_result(env, &ns, "exception-break-glass").await;
    assert_eq!(report["result"], "fail", "{report:#}");
    assert_eq!(report["severity"], "high", "{report:#}");

    // alice reviews it after the fact.
    ok(
        annotate_as(env, &ns, "incident", "steward.dev/approve=alice@example.com", ALICE),
        "alice reviews",
    );
    let pe = approval_is(&pes, "incident", "Approved").await;
    assert_eq!(condition(&pe, "BreakGlass").unwrap()["reason"], "Reviewed");
    env.wait_for_events(&ns, &["BreakGlassReviewed"]).await;
    eventually(OUTCOME, "the metric gone once reviewed", || {
        let seen = broken_glass(env);
        async move { !seen }
    })
    .await;
    // The review is not another break of glass.
    assert_eq!(
        glass_count(env),
        before + 1.0,
        "steward_break_glass_total after the review"
    );
}

/// The result of `rule` in the namespace's PolicyReport, once there.
async fn report_result(env: &Env, ns: &str, rule: &str) -> serde_json::Value {
    use kube::api::{DynamicObject, GroupVersionKind};
    let gvk = GroupVersionKind::gvk("wgpolicyk8s.io", "v1alpha2", "PolicyReport");
    let client = env.admin().await;
    let (ar, _) = kube::discovery::pinned_kind(&client, &gvk).await.unwrap();
    let reports: Api<DynamicObject> = Api::namespaced_with(client, ns, &ar);
    let deadline = std::time::Instant::now() + OUTCOME;
    loop {
        if let Some(r) = reports.get_opt("steward").await.ok().flatten()
            && let Some(hit) = r.data["results"]
                .as_array()
                .and_then(|rs| rs.iter().find(|x| x["rule"] == rule).cloned())
        {
            return hit;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {rule} result in the PolicyReport of {ns} within {OUTCOME:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn only_the_controller_writes_status() {
    let env = env();
    let ns = setup(env, "status", 1).await;
    let pes: Api<PolicyException> = Api::namespaced(env.admin().await, &ns);
    ok(
        apply_as(env, &ns, &exception("debug", "[get]", 3600), ERIN),
        "erin files",
    );
    approval_is(&pes, "debug", "AwaitingApproval").await;
    // erin (with the status subresource in her reach through a role of her
    // own) still may not write status.
    env.apply_ok(
        &ns,
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: status-writer}
rules: [{apiGroups: [steward.dev], resources: [policyexceptions/status], verbs: [get, patch, update]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: status-writer}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: status-writer}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: erin}]
"#,
    );
    let patch = r#"{"status":{"phase":"Active","approval":{"approvedBy":"alice@example.com"}}}"#;
    let args = [
        "--as=erin",
        "-n",
        ns.as_str(),
        "patch",
        "policyexception",
        "debug",
        "--subresource=status",
        "--type=merge",
        "-p",
        patch,
    ];
    // The API server loads policies asynchronously: retried until refused
    // by the policy, which is the outcome asserted.
    let mut last = String::new();
    eventually(OUTCOME, "the status policy in force", || {
        let out = env.kubectl(&args);
        last = stderr(&out);
        let refused = !out.status.success() && last.contains("StatusIsStewards");
        async move { refused }
    })
    .await;
    assert!(!env.can(&ns, "api", "get", "", "pods/log").await);
}

/// The webhook unregistered (a control plane of its own): an exception
/// carrying another exception's genuine records, and an "approved" status
/// written by a cluster admin, grant nothing.
#[tokio::test]
async fn without_the_webhook_a_hand_written_approval_grants_nothing() {
    let env = harness::isolated();
    let (mut ctl, _) = env.spawn_ready_controller("ctl-unregistered", &[]).await;
    let ns = setup(&env, "forged", 1).await;
    let client = env.admin().await;
    let pes: Api<PolicyException> = Api::namespaced(client.clone(), &ns);
    // A genuine, approved exception, to copy its records from.
    ok(
        apply_as(&env, &ns, &exception("genuine", "[get]", 3600), ERIN),
        "erin files",
    );
    approval_is(&pes, "genuine", "AwaitingApproval").await;
    ok(
        annotate_as(&env, &ns, "genuine", "steward.dev/approve=alice@example.com", ALICE),
        "alice approves",
    );
    let genuine = approval_is(&pes, "genuine", "Approved").await;
    eventually(OUTCOME, "granted", || env.can(&ns, "api", "get", "", "pods/log")).await;
    let records = genuine.metadata.annotations.clone().unwrap_or_default();

    env.kubectl_ok(&["delete", "mutatingwebhookconfiguration", "steward"]);
    // Until the API server has dropped the webhook, its records would be
    // written by it: wait until a dry run comes back unrecorded.
    let probe = exception("probe", "[get]", 3600);
    eventually(OUTCOME, "the webhook no longer called", || {
        let out = env.apply_with(&ns, &probe, &["--dry-run=server", "-o", "json"]);
        let called = String::from_utf8_lossy(&out.stdout).contains("steward.dev/requested-by");
        async move { !called }
    })
    .await;

    // The copy: same content, another name, the genuine records.
    let mut copy: serde_json::Value = serde_yaml_ng::from_str(&exception("copy", "[list]", 3600)).unwrap();
    copy["metadata"]["annotations"] = serde_json::json!({
        "steward.dev/requested-by": records["steward.dev/requested-by"],
        "steward.dev/approvals": records["steward.dev/approvals"],
    });
    env.apply_ok(&ns, &serde_json::to_string(&copy).unwrap());
    let pe = approval_is(&pes, "copy", "RequesterUnverified").await;
    assert!(approval(&pe).approved_by.is_none());
    // A cluster admin writes an approved, Active status over it.
    let status = r#"{"status":{"phase":"Active","approval":{"requestedBy":"erin","approvedBy":"alice@example.com","approvals":[{"user":"alice@example.com","via":"Approver","time":"2026-01-01T00:00:00Z"}]}}}"#;
    env.kubectl_ok(&[
        "-n",
        &ns,
        "patch",
        "policyexception",
        "copy",
        "--subresource=status",
        "--type=merge",
        "-p",
        status,
    ]);
    // The controller puts its own account back, and grants nothing.
    let rbs: Api<RoleBinding> = Api::namespaced(client, &ns);
    wait_for(
        &pes,
        "copy",
        OUTCOME,
        "status corrected",
        |pe: Option<&PolicyException>| {
            pe.is_some_and(|pe| pe.status.as_ref().is_some_and(|s| s.phase == Some(Phase::Pending)))
        },
    )
    .await;
    assert!(rbs.get_opt("steward-x:copy").await.unwrap().is_none());
    assert!(!env.can(&ns, "api", "list", "", "pods/log").await, "the copy granted");
    let _ = ctl.kill();
    let _ = ctl.wait();
}

/// What the API server answers, failurePolicy Fail, when it cannot reach
/// the approvals webhook.
const WEBHOOK_DOWN: &str = "failed calling webhook \"approvals.steward.dev\"";

/// A server-side dry run of `yaml` in `ns` as the admin: whether the
/// approvals webhook recorded a requester on it.
fn recorded_by_webhook(env: &Env, ns: &str, yaml: &str) -> bool {
    let out = env.apply_with(ns, yaml, &["--dry-run=server", "-o", "json"]);
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("steward.dev/requested-by")
}

/// The webhook registered but not answering (the controller serving it
/// killed, as a crashed single Deployment leaves it): the API server
/// refuses users' creates and updates of exceptions (failurePolicy Fail),
/// so neither a new exception nor an approval lands unrecorded; once the
/// controller is back, the same approval is recorded and grants. A control
/// plane of its own, whose approvals webhook is re-pointed at the test's
/// controller: the harness's webhook-only process would keep answering
/// after the controller is killed.
#[tokio::test]
async fn with_the_webhook_down_no_exception_is_written_and_no_approval_lands() {
    let (env, ca, addr) = admission::webhook_env();
    let (cert, key) = (env.dir.join("webhook.crt"), env.dir.join("webhook.key"));
    let client_ca = admission::client_ca(&env);
    let flags = [
        "--webhook-addr",
        addr.as_str(),
        "--webhook-cert",
        cert.to_str().unwrap(),
        "--webhook-key",
        key.to_str().unwrap(),
        "--webhook-client-ca",
        client_ca.to_str().unwrap(),
        "--webhook-client-name",
        "kube-apiserver",
    ];
    // The shipped configuration pointed at the test's controller before it
    // listens. Until the API server has loaded it, the webhook-only process
    // still records exceptions; once it has, a dry run is refused for the
    // webhook (or, were failures ignored, admitted unrecorded).
    env.apply_ok(
        "default",
        &harness::mutating_webhook_config(&format!("https://{addr}/mutate"), &ca),
    );
    let probe = exception("probe", "[get]", 3600);
    eventually(OUTCOME, "the API server calling the test's webhook", || {
        let out = env.apply_with("default", &probe, &["--dry-run=server", "-o", "json"]);
        let switched = if out.status.success() {
            !String::from_utf8_lossy(&out.stdout).contains("steward.dev/requested-by")
        } else {
            stderr(&out).contains(WEBHOOK_DOWN)
        };
        async move { switched }
    })
    .await;
    let (mut ctl, _) = env.spawn_ready_controller("ctl-webhook-down", &flags).await;
    let ns = setup(&env, "down", 1).await;
    let pes: Api<PolicyException> = Api::namespaced(env.admin().await, &ns);
    ok(
        apply_as(&env, &ns, &exception("debug", "[get]", 3600), ERIN),
        "erin files",
    );
    let pe = approval_is(&pes, "debug", "AwaitingApproval").await;
    assert_eq!(approval(&pe).requested_by.as_deref(), Some("erin"));
    assert!(approval(&pe).approvals.is_empty(), "{:?}", approval(&pe));
    assert!(!env.can(&ns, "api", "get", "", "pods/log").await, "granted on a claim");

    // The controller dies; the webhook configuration stays registered.
    ctl.kill().expect("stop the controller");
    let _ = ctl.wait();
    let record = |pe: PolicyException| pe.metadata.annotations.unwrap_or_default();
    let before = record(pes.get("debug").await.unwrap());
    assert!(before.contains_key("steward.dev/requested-by"), "{before:?}");
    assert!(!before.contains_key("steward.dev/approvals"), "{before:?}");
    refused(
        annotate_as(&env, &ns, "debug", "steward.dev/approve=alice@example.com", ALICE),
        "alice's approval with the webhook down",
        WEBHOOK_DOWN,
    );
    refused(
        apply_as(&env, &ns, &exception("another", "[get]", 3600), ERIN),
        "erin's new exception with the webhook down",
        WEBHOOK_DOWN,
    );
    assert!(
        pes.get_opt("another").await.unwrap().is_none(),
        "an exception was written unrecorded"
    );
    // Still erin's record alone: no approval slipped in.
    let after = record(pes.get("debug").await.unwrap());
    assert_eq!(after, before, "the record changed while the webhook was down");
    assert!(!env.can(&ns, "api", "get", "", "pods/log").await);

    // The controller back with the same flags: the exception is as it was,
    // and alice's approval, refused while nothing answered, now lands.
    let (mut ctl, _) = env.spawn_ready_controller("ctl-webhook-back", &flags).await;
    eventually(OUTCOME, "the webhook answering again", || {
        let recorded = recorded_by_webhook(&env, &ns, &probe);
        async move { recorded }
    })
    .await;
    let pe = approval_is(&pes, "debug", "AwaitingApproval").await;
    assert!(approval(&pe).approvals.is_empty(), "{:?}", approval(&pe));
    assert!(
        !env.can(&ns, "api", "get", "", "pods/log").await,
        "granted before anyone approved"
    );
    ok(
        annotate_as(&env, &ns, "debug", "steward.dev/approve=alice@example.com", ALICE),
        "alice approves with the webhook back",
    );
    let pe = approval_is(&pes, "debug", "Approved").await;
    assert_eq!(approval(&pe).approved_by.as_deref(), Some("alice@example.com"));
    assert_eq!(approval(&pe).requested_by.as_deref(), Some("erin"));
    eventually(OUTCOME, "granted", || env.can(&ns, "api", "get", "", "pods/log")).await;
    let _ = ctl.kill();
    let _ = ctl.wait();
}

/// Runs the README's commands that rotate the approval key, as the admin,
/// with the harness's kubectl: the block after "Rotating the approval
/// key", without its restart (the test restarts its controller itself).
fn rotate_as_the_readme_says(env: &Env) {
    let readme = include_str!("../README.md");
    let block = readme
        .split("Rotating the approval key")
        .nth(1)
        .and_then(|s| s.split("```sh\n").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("README's commands to rotate the approval key");
    let script: String = block
        .lines()
        .filter(|l| !l.contains("rollout restart"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(script.contains("previous"), "{script}");
    let bin = env.kubectl.parent().expect("kubectl's directory");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    harness::run(
        std::process::Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .env("KUBECONFIG", &env.admin_kubeconfig)
            .env("PATH", path),
    );
}

/// Merge-patches the approval key Secret's data as the admin.
async fn patch_key_secret(env: &Env, data: serde_json::Value) {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Patch, PatchParams};
    let secrets: Api<Secret> = Api::namespaced(env.admin().await, "steward-system");
    secrets
        .patch(
            "steward-approval-key",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "data": data })),
        )
        .await
        .expect("patch the approval key Secret");
}

/// Rotating the approval key as the README says: the Secret's `key` moves
/// to `previous`, a new `key` is written, the replicas restart. What the
/// old key signed still verifies, so no approval and no grant is lost, and
/// a replica not restarted yet (here the webhook) still signs records that
/// count. Removing `previous`, for a key that leaked, takes its approvals
/// away: the grants are revoked.
#[tokio::test]
async fn a_rotated_key_keeps_every_approval_until_the_replaced_key_is_removed() {
    use k8s_openapi::api::core::v1::Secret;
    let env = &harness::isolated();
    let (mut ctl, _) = env.spawn_ready_controller("ctl-key-1", &[]).await;
    let ns = setup(env, "rotate", 1).await;
    let pes: Api<PolicyException> = Api::namespaced(env.admin().await, &ns);
    ok(
        apply_as(env, &ns, &exception("before", "[get]", 3600), ARGO),
        "Argo CD applies",
    );
    approval_is(&pes, "before", "ApprovedViaTrustedApplier").await;
    eventually(OUTCOME, "granted", || env.can(&ns, "api", "get", "", "pods/log")).await;
    let _ = ctl.kill();
    let _ = ctl.wait();

    let secrets: Api<Secret> = Api::namespaced(env.admin().await, "steward-system");
    let data = |s: Secret| s.data.unwrap_or_default();
    let old = data(secrets.get("steward-approval-key").await.expect("the key Secret"));
    rotate_as_the_readme_says(env);
    let rotated = data(secrets.get("steward-approval-key").await.expect("the key Secret"));
    assert_eq!(rotated.get("previous"), old.get("key"), "the key moved to previous");
    assert!(
        rotated
            .get("key")
            .is_some_and(|k| k.0.len() == 32 && Some(k) != old.get("key"))
    );
    let restarted = jiff::Timestamp::now();
    let (mut ctl, _) = env.spawn_ready_controller("ctl-key-2", &[]).await;

    // An exception applied now is signed by the webhook, which still holds
    // the old key; the restarted controller grants it.
    ok(
        apply_as(env, &ns, &exception("after", "[list]", 3600), ARGO),
        "Argo CD applies",
    );
    approval_is(&pes, "after", "ApprovedViaTrustedApplier").await;
    eventually(OUTCOME, "granted", || env.can(&ns, "api", "list", "", "pods/log")).await;
    // By then the restarted controller has decided about every exception:
    // the one approved before the rotation kept its approval and grant.
    env.controller_quiet_in(&ns, std::time::Duration::from_secs(3), OUTCOME)
        .await;
    let before = pes.get("before").await.expect("before");
    assert_eq!(condition(&before, "Approved").expect("Approved")["status"], "True");
    assert_eq!(before.status.as_ref().and_then(|s| s.phase), Some(Phase::Active));
    assert!(env.can(&ns, "api", "get", "", "pods/log").await, "the grant was lost");
    let revoked = env
        .controller_writes()
        .iter()
        .filter(|w| w.received >= restarted && w.verb == "delete" && w.namespace.as_deref() == Some(ns.as_str()))
        .count();
    assert_eq!(revoked, 0, "the restarted controller deleted something");
    let _ = ctl.kill();
    let _ = ctl.wait();

    // The replaced key removed: what it signed no longer counts.
    patch_key_secret(env, serde_json::json!({"previous": null})).await;
    let (mut ctl, _) = env.spawn_ready_controller("ctl-key-3", &[]).await;
    eventually(OUTCOME, "both grants revoked", || async {
        !env.can(&ns, "api", "get", "", "pods/log").await && !env.can(&ns, "api", "list", "", "pods/log").await
    })
    .await;
    for name in ["before", "after"] {
        wait_for(&pes, name, OUTCOME, "not approved", |pe: Option<&PolicyException>| {
            pe.and_then(|pe| condition(pe, "Approved"))
                .is_some_and(|c| c["status"] != "True")
        })
        .await;
    }
    let _ = ctl.kill();
    let _ = ctl.wait();
}
