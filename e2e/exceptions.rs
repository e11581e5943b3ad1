//! PolicyException end to end: exact expiry of a real grant, every
//! rejection reason granting nothing, and the ceiling enforced twice (by
//! Steward, and by the API server against the controller itself).

use std::time::Duration;

use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::Api;
use steward::api::{ControlOwnership, Phase, PolicyException};

use crate::harness::{Env, OUTCOME, condition, condition_is, env, eventually, from_now, phase_is, wait_for};

/// A control named `name` with one identity, `api`, and `extra` appended.
pub(crate) fn control(name: &str, extra: &str) -> String {
    format!(
        r#"
apiVersion: steward.dev/v1alpha1
kind: ControlOwnership
metadata: {{name: {name}}}
spec:
  layer: Identity
  owner: {{name: payments-team}}
  backupOwner: {{name: security-team}}
  approvers: [alice@example.com]
  review: {{interval: 30d, lastReviewed: "{reviewed}"}}
  exceptionPolicy: {{maxDuration: 2d, ticketPattern: "^SEC-[0-9]+$", trustedAppliers: [{admin}]}}
  workloadIdentities:
    - serviceAccount: api
      task: Serves the API
      rules:
        - {{apiGroups: [""], resources: [configmaps], verbs: [get]}}
{extra}"#,
        reviewed = from_now(-3600),
        admin = crate::harness::ADMIN_USER
    )
}

/// A PolicyException to control `payments`, granting `api` one rule.
pub(crate) struct Exc<'a> {
    pub(crate) name: &'a str,
    pub(crate) control: &'a str,
    pub(crate) ticket: &'a str,
    pub(crate) approver: &'a str,
    pub(crate) requester: &'a str,
    pub(crate) starts: String,
    pub(crate) expires: String,
    pub(crate) verb: &'a str,
    pub(crate) resource: &'a str,
    pub(crate) group: &'a str,
}

impl Exc<'_> {
    pub(crate) fn yaml(&self) -> String {
        format!(
            r#"
apiVersion: steward.dev/v1alpha1
kind: PolicyException
metadata: {{name: {name}}}
spec:
  control: {control}
  ticket: "{ticket}"
  approver: "{approver}"
  requester: "{requester}"
  reason: Debug a stuck payout
  startsAt: "{starts}"
  expiresAt: "{expires}"
  grant:
    serviceAccount: api
    rules:
      - {{apiGroups: ["{group}"], resources: [{resource}], verbs: [{verb}]}}
"#,
            name = self.name,
            control = self.control,
            ticket = self.ticket,
            approver = self.approver,
            requester = self.requester,
            starts = self.starts,
            expires = self.expires,
            verb = self.verb,
            resource = self.resource,
            group = self.group,
        )
    }
}

/// An exception every check accepts, Active from 5 s ago for an hour.
pub(crate) fn good<'a>(name: &'a str) -> Exc<'a> {
    Exc {
        name,
        control: "payments",
        ticket: "SEC-1",
        approver: "alice@example.com",
        requester: "carol@example.com",
        starts: from_now(-5),
        expires: from_now(3600),
        verb: "get",
        resource: "pods/log",
        group: "",
    }
}

/// A fresh namespace holding the control `payments`, reconciled: the
/// controller's cache holds it, so no exception applied afterwards is judged
/// (ControlNotFound) before the control is seen.
async fn setup(prefix: &str) -> (&'static Env, String, Api<PolicyException>, Api<RoleBinding>) {
    let env = env();
    let ns = env.namespace(prefix).await;
    env.apply_ok(&ns, &control("payments", ""));
    let client = env.admin().await;
    ready(&Api::namespaced(client.clone(), &ns), "payments").await;
    (
        env,
        ns.clone(),
        Api::namespaced(client.clone(), &ns),
        Api::namespaced(client, &ns),
    )
}

/// Waits until the controller has reconciled control `name` to Ready.
async fn ready(cos: &Api<ControlOwnership>, name: &str) {
    wait_for(
        cos,
        name,
        Duration::from_secs(60),
        "Ready",
        condition_is("Ready", "True"),
    )
    .await;
}

#[tokio::test]
async fn a_grant_ends_within_a_second_of_expiry_and_stays_ended() {
    let (env, ns, pes, rbs) = setup("expiry").await;
    let mut exc = good("debug");
    // Long enough for a loaded machine to grant it well before it ends.
    exc.expires = from_now(15);
    let expires_at: jiff::Timestamp = exc.expires.parse().unwrap();
    let yaml = exc.yaml();
    env.apply_ok(&ns, &yaml);

    wait_for(&pes, "debug", OUTCOME, "Active", phase_is(Phase::Active)).await;
    eventually(OUTCOME, "allowed during the window", || {
        env.can(&ns, "api", "get", "", "pods/log")
    })
    .await;
    assert!(
        !env.can(&ns, "api", "delete", "", "pods").await,
        "a neighbouring verb must stay denied"
    );
    assert!(rbs.get_opt("steward-x:debug").await.unwrap().is_some());

    // Within one second after expiresAt: binding gone, then phase Expired,
    // as the API server recorded the controller's writes (not when this
    // test got to see them).
    let pe = wait_for(&pes, "debug", OUTCOME, "Expired", phase_is(Phase::Expired)).await;
    let revoked = env
        .controller_write(OUTCOME, "the grant's deletion", |w| {
            w.is("delete", "rolebindings", Some(&ns), "steward-x:debug")
        })
        .await;
    let marked = env
        .controller_write(OUTCOME, "the Expired status write", |w| {
            w.is("patch", "policyexceptions/status", Some(&ns), "debug") && w.received >= revoked.completed
        })
        .await;
    assert!(
        revoked.received >= expires_at,
        "revoked at {} before expiresAt {expires_at}",
        revoked.received
    );
    eprintln!(
        "grant deleted {:#}, Expired written {:#} after expiresAt",
        revoked.completed.duration_since(expires_at),
        marked.completed.duration_since(expires_at)
    );
    let by = expires_at + jiff::SignedDuration::from_secs(1);
    assert!(
        revoked.completed <= by,
        "grant deleted {:#} after expiresAt",
        revoked.completed.duration_since(expires_at)
    );
    assert!(
        marked.completed <= by,
        "Expired written {:#} after expiresAt",
        marked.completed.duration_since(expires_at)
    );
    assert!(
        rbs.get_opt("steward-x:debug").await.unwrap().is_none(),
        "grant still bound after expiry"
    );
    // The API server's authorizer follows the deletion a moment later.
    eventually(OUTCOME, "denied after expiry", || async {
        !env.can(&ns, "api", "get", "", "pods/log").await
    })
    .await;
    assert_eq!(condition(&pe, "Expired").unwrap()["status"], "True");
    // The designed end, not a failure: Ready with reason Expired, no Stalled.
    assert_eq!(condition(&pe, "Ready").unwrap()["status"], "True");
    assert_eq!(condition(&pe, "Ready").unwrap()["reason"], "Expired");
    assert!(condition(&pe, "Stalled").is_none());
    assert!(pe.status.as_ref().unwrap().granted_role.is_none());

    // Re-applying the same YAML (as Argo CD does) grants nothing.
    env.apply_ok(&ns, &yaml);
    let out = env.apply_with(
        &ns,
        &yaml,
        &["--server-side", "--field-manager=argocd", "--force-conflicts"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A marker the controller must act on: a new exception of the same
    // namespace (granting something else). Its watch event comes after the
    // re-applies', and reaching Active takes it several writes, so once it
    // is Active the controller has reconciled the re-applied exception.
    let mut marker = good("marker");
    marker.resource = "events";
    env.apply_ok(&ns, &marker.yaml());
    wait_for(&pes, "marker", OUTCOME, "Active", phase_is(Phase::Active)).await;
    // The audit log holds every write, even one undone at once.
    let regrants: Vec<_> = env
        .controller_writes()
        .into_iter()
        .filter(|w| w.namespace.as_deref() == Some(ns.as_str()) && w.name == "steward-x:debug")
        .filter(|w| w.verb != "delete" && w.received >= revoked.completed)
        .collect();
    assert!(
        regrants.is_empty(),
        "re-apply re-granted an expired exception: {regrants:#?}"
    );
    assert!(rbs.get_opt("steward-x:debug").await.unwrap().is_none());
    env.rbac_caught_up(&ns).await;
    assert!(!env.can(&ns, "api", "get", "", "pods/log").await);
    let pe = pes.get("debug").await.unwrap();
    assert_eq!(pe.status.unwrap().phase, Some(Phase::Expired));
}

#[tokio::test]
async fn extending_an_expired_exception_does_not_revive_it() {
    let (env, ns, pes, _) = setup("sticky").await;
    let mut exc = good("late");
    exc.starts = from_now(-7200);
    exc.expires = from_now(-3600);
    env.apply_ok(&ns, &exc.yaml());
    wait_for(&pes, "late", OUTCOME, "Expired", phase_is(Phase::Expired)).await;
    // The API server refuses the edit itself (config/policy), with the
    // reason a user can act on; it loads policies asynchronously, so probe
    // with server-side dry runs first.
    let generation = pes.get("late").await.unwrap().metadata.generation;
    exc.expires = from_now(3600);
    let extended = exc.yaml();
    eventually(Duration::from_secs(30), "the policy in force", || {
        let out = env.apply_with(&ns, &extended, &["--dry-run=server"]);
        async move { !out.status.success() }
    })
    .await;
    let out = env.apply(&ns, &extended);
    assert!(!out.status.success(), "an expired window was extended");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("(ExpiredIsRecord)"), "{stderr}");
    assert_eq!(pes.get("late").await.unwrap().metadata.generation, generation);
}

#[tokio::test]
async fn every_rejection_reason_grants_nothing() {
    // ApproverIsRequester, InvalidWindow and empty fields never reach the
    // controller: the API server refuses them (api_rules.rs).
    let (env, ns, pes, rbs) = setup("reject").await;
    // A laxer control in the same namespace, whose identity is `batch`.
    env.apply_ok(
        &ns,
        &control("lax", "").replace("serviceAccount: api", "serviceAccount: batch"),
    );
    ready(&Api::namespaced(env.admin().await, &ns), "lax").await;
    type Edit = fn(&mut Exc<'_>);
    let cases: Vec<(&str, &str, &str, Edit)> = vec![
        ("no-control", "ControlNotFound", "spec.control", |e| {
            e.control = "missing"
        }),
        ("bad-approver", "ApproverNotAllowed", "spec.approver", |e| {
            e.approver = "mallory@example.com"
        }),
        (
            "other-control",
            "GrantOutsideControl",
            "spec.grant.serviceAccount",
            |e| e.control = "lax",
        ),
        ("bad-ticket", "TicketPatternMismatch", "spec.ticket", |e| {
            e.ticket = "JIRA-7"
        }),
        ("too-long", "WindowTooLong", "spec.expiresAt", |e| {
            e.expires = from_now(3 * 86_400)
        }),
        (
            "beyond-ceiling",
            "RuleOutsideCeiling",
            "spec.grant.rules[0].verbs",
            |e| {
                e.verb = "delete";
                e.resource = "secrets";
            },
        ),
        ("refused", "RuleRefused", "spec.grant.rules[0].verbs", |e| {
            e.verb = "impersonate";
            e.resource = "serviceaccounts";
        }),
        ("rbac-write", "RuleRefused", "spec.grant.rules[0].apiGroups", |e| {
            e.verb = "create";
            e.resource = "rolebindings";
            e.group = "rbac.authorization.k8s.io";
        }),
    ];
    for (name, _, _, edit) in &cases {
        let mut e = good(name);
        edit(&mut e);
        env.apply_ok(&ns, &e.yaml());
    }
    for (name, reason, field, _) in &cases {
        let pe = wait_for(&pes, name, OUTCOME, "Rejected", phase_is(Phase::Rejected)).await;
        let ready = condition(&pe, "Ready").unwrap();
        assert_eq!(ready["status"], "False", "{name}");
        assert_eq!(ready["reason"], *reason, "{name}: {ready}");
        let stalled = condition(&pe, "Stalled").unwrap();
        assert_eq!(stalled["status"], "True", "{name}");
        assert!(
            stalled["message"].as_str().unwrap().contains(field),
            "{name}: {stalled}"
        );
        assert_eq!(condition(&pe, "Valid").unwrap()["status"], "False");
        assert!(
            rbs.get_opt(&format!("steward-x:{name}")).await.unwrap().is_none(),
            "{name} granted something"
        );
    }
    // Nothing any of them asked for is allowed (asked once the API server's
    // authorizer has seen every binding written so far).
    env.rbac_caught_up(&ns).await;
    assert!(!env.can(&ns, "api", "get", "", "pods/log").await);
    assert!(!env.can(&ns, "api", "delete", "", "secrets").await);
    assert!(!env.can(&ns, "api", "impersonate", "", "serviceaccounts").await);
    assert!(
        !env.can(&ns, "api", "create", "rbac.authorization.k8s.io", "rolebindings")
            .await
    );
    // Events are recorded after the status.
    env.wait_for_events(&ns, &["Rejected"]).await;
}

#[tokio::test]
async fn the_api_server_refuses_the_controller_a_role_beyond_the_ceiling() {
    let env = env();
    let ns = env.namespace("ceiling").await;
    let out = env.kubectl_as_controller(&[
        "create",
        "role",
        "too-much",
        "-n",
        &ns,
        "--verb=delete",
        "--resource=secrets",
    ]);
    assert!(
        !out.status.success(),
        "the controller identity could create a Role beyond the ceiling"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("forbidden") || err.contains("Forbidden"), "{err}");
    // Within the ceiling it may.
    let out = env.kubectl_as_controller(&[
        "create",
        "role",
        "fine",
        "-n",
        &ns,
        "--verb=get",
        "--resource=configmaps",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // And it can never bind cluster-wide.
    let out = env.kubectl_as_controller(&[
        "create",
        "clusterrolebinding",
        "escalate",
        "--clusterrole=cluster-admin",
        &format!("--serviceaccount={ns}:api"),
    ]);
    assert!(
        !out.status.success(),
        "the controller identity could create a ClusterRoleBinding"
    );
}

#[tokio::test]
async fn deleting_an_active_exception_revokes_its_grant() {
    let (env, ns, pes, rbs) = setup("delete").await;
    env.apply_ok(&ns, &good("temp").yaml());
    wait_for(&pes, "temp", OUTCOME, "Active", phase_is(Phase::Active)).await;
    eventually(OUTCOME, "granted", || env.can(&ns, "api", "get", "", "pods/log")).await;
    env.kubectl_ok(&[
        "delete",
        "-n",
        &ns,
        "policyexception/temp",
        "--wait=true",
        "--timeout=60s",
    ]);
    // No finalizer holds the record: the sweeper revokes the grant of the
    // deleted exception and says so on it.
    eventually(OUTCOME, "the grant deleted", || async {
        rbs.get_opt("steward-x:temp").await.unwrap().is_none()
    })
    .await;
    eventually(OUTCOME, "denied once deleted", || async {
        !env.can(&ns, "api", "get", "", "pods/log").await
    })
    .await;
    env.wait_for_events(&ns, &["Revoked"]).await;
}

#[tokio::test]
async fn a_pending_exception_activates_at_its_start() {
    let (env, ns, pes, rbs) = setup("pending").await;
    let mut e = good("later");
    // Far enough ahead for a loaded machine to show it Pending first.
    e.starts = from_now(10);
    let starts: jiff::Timestamp = e.starts.parse().unwrap();
    env.apply_ok(&ns, &e.yaml());
    let pe = wait_for(&pes, "later", OUTCOME, "Pending", phase_is(Phase::Pending)).await;
    assert_eq!(condition(&pe, "Active").unwrap()["reason"], "NotStarted");
    // The reconcile that wrote Pending grants (if at all) before the status.
    assert!(
        rbs.get_opt("steward-x:later").await.unwrap().is_none(),
        "granted before startsAt"
    );
    wait_for(&pes, "later", OUTCOME, "Active", phase_is(Phase::Active)).await;
    // Not before startsAt, as the API server recorded the controller's
    // writes: the grant's first write (the Role, then its binding) and the
    // status saying Active.
    let granted = env
        .controller_write(OUTCOME, "the grant's first write", |w| {
            w.namespace.as_deref() == Some(ns.as_str()) && w.name == "steward-x:later"
        })
        .await;
    assert!(
        granted.received >= starts,
        "granted at {} before startsAt {starts}: {granted:?}",
        granted.received
    );
    let active = env
        .controller_write(OUTCOME, "the status write after the grant", |w| {
            w.is("patch", "policyexceptions/status", Some(&ns), "later") && w.received >= granted.completed
        })
        .await;
    assert!(active.received >= starts);
    eventually(OUTCOME, "granted after start", || {
        env.can(&ns, "api", "get", "", "pods/log")
    })
    .await;
}

/// The controller is down when the window ends, and someone moves
/// `expiresAt` forward before it is back (the API server cannot tell: status
/// still says Active). The restarted controller must not revive the grant.
#[tokio::test]
async fn a_window_extended_while_the_controller_was_down_stays_expired() {
    let env = crate::harness::isolated();
    let (mut ctl, _) = env.spawn_ready_controller("ctl-down", &[]).await;
    let ns = env.namespace("down").await;
    env.apply_ok(&ns, &control("payments", ""));
    let mut exc = good("debug");
    // Long enough for a loaded machine to grant it before the kill below.
    exc.expires = from_now(15);
    let expires_at: jiff::Timestamp = exc.expires.parse().unwrap();
    env.apply_ok(&ns, &exc.yaml());
    let client = env.admin().await;
    let pes: Api<PolicyException> = Api::namespaced(client.clone(), &ns);
    let rbs: Api<RoleBinding> = Api::namespaced(client, &ns);
    wait_for(&pes, "debug", OUTCOME, "Active", phase_is(Phase::Active)).await;
    eventually(OUTCOME, "granted", || env.can(&ns, "api", "get", "", "pods/log")).await;
    ctl.kill().expect("stop the controller");
    let _ = ctl.wait();
    assert!(
        jiff::Timestamp::now() < expires_at,
        "setup too slow: the window ended before the controller was stopped"
    );
    assert!(rbs.get_opt("steward-x:debug").await.unwrap().is_some());

    // Past the recorded expiry with nobody to enforce it: the grant is
    // still there, and the window is moved a day forward.
    // Waiting for a wall-clock instant, which is what is simulated here.
    let past = expires_at + jiff::SignedDuration::from_millis(500);
    let wait = past.duration_since(jiff::Timestamp::now());
    if wait > jiff::SignedDuration::ZERO {
        tokio::time::sleep(Duration::try_from(wait).unwrap_or_default()).await;
    }
    // Nobody revoked it: the controller is down.
    assert!(rbs.get_opt("steward-x:debug").await.unwrap().is_some());
    exc.expires = from_now(86_400);
    env.apply_ok(&ns, &exc.yaml());

    let (mut ctl, _) = env.spawn_controller("ctl-back", &[]);
    // Starting includes listing every cache: generous on a loaded machine.
    eventually(Duration::from_secs(60), "grant revoked after the restart", || async {
        rbs.get_opt("steward-x:debug").await.unwrap().is_none()
    })
    .await;
    let pe = wait_for(&pes, "debug", OUTCOME, "Expired", phase_is(Phase::Expired)).await;
    assert_eq!(
        pe.status.as_ref().and_then(|s| s.observed_generation),
        pe.metadata.generation,
        "decided on the extended spec"
    );
    // The record keeps the window that really ended.
    let recorded: jiff::Timestamp = pe
        .status
        .as_ref()
        .and_then(|s| s.expires_at.as_deref())
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(recorded, expires_at);
    eventually(OUTCOME, "denied after the restart", || async {
        !env.can(&ns, "api", "get", "", "pods/log").await
    })
    .await;
    let _ = ctl.kill();
    let _ = ctl.wait();
}

/// A burst of new exceptions: a control whose few exceptions were
/// reconciled first has its `activeExceptions` wait while the others are
/// (one status write per burst, not one per exception), and written when
/// the burst ends, not at the 5-minute bound. Nothing else triggers that
/// control afterwards, so only the release at the burst's end writes its
/// count in time. A controller with two request slots (32 turns) keeps
/// the burst going; the metric shows the count did wait.
#[tokio::test]
async fn a_controls_count_waits_for_a_burst_and_is_written_when_it_ends() {
    const FEW: usize = 4;
    const MANY: usize = 100;
    const BURST: Duration = Duration::from_secs(180);
    let env = crate::harness::isolated();
    let (mut ctl, addr) = env.spawn_ready_controller("ctl-burst", &["--max-in-flight", "2"]).await;
    let client = env.admin().await;
    let mut apis = Vec::new();
    for prefix in ["burst-few", "burst-many"] {
        let ns = env.namespace(prefix).await;
        env.apply_ok(&ns, &control("payments", ""));
        let cos: Api<ControlOwnership> = Api::namespaced(client.clone(), &ns);
        wait_for(&cos, "payments", OUTCOME, "Ready", condition_is("Ready", "True")).await;
        apis.push((cos, Api::<PolicyException>::namespaced(client.clone(), &ns)));
    }
    // All at once, as the admin (a trusted applier of the controls), the
    // few first: they take the first turns.
    let wanted = [(0, FEW), (1, MANY)];
    let creates = wanted
        .iter()
        .flat_map(|&(at, n)| (0..n).map(move |i| (at, format!("x-{i}"))))
        .map(|(at, name)| {
            let pe: PolicyException = serde_yaml_ng::from_str(&good(&name).yaml()).expect("exception YAML");
            let pes = apis[at].1.clone();
            async move { pes.create(&Default::default(), &pe).await.map(|_| ()) }
        });
    let created = futures::future::join_all(creates).await;
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    // The burst ends when the many are reconciled, however long a busy
    // machine takes; from then on, the few's count is due at once, not in
    // five minutes.
    for (at, n, within) in [(1, MANY, BURST), (0, FEW, OUTCOME)] {
        let want = i32::try_from(n).expect("a small count");
        wait_for(
            &apis[at].0,
            "payments",
            within,
            "the whole count",
            |co: Option<&ControlOwnership>| {
                co.and_then(|c| c.status.as_ref()).and_then(|s| s.active_exceptions) == Some(want)
            },
        )
        .await;
    }
    let scrape = crate::harness::http_get(&format!("http://{addr}/metrics"))
        .map(|(_, body)| body)
        .unwrap_or_default();
    let waits = scrape
        .lines()
        .find_map(|l| l.strip_prefix("steward_control_count_waits_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(waits >= 1.0, "no count waited, so this run shows nothing: {waits}");
    let _ = ctl.kill();
    let _ = ctl.wait();
}
