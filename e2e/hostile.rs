//! Hostile tenants: what a namespace admin (impersonated with `--as`) tries
//! against Steward, and the outcome they want that must not happen. Each
//! test also checks the controller stays healthy. Each submodule holds one
//! class of attack; the personas are defined here.

pub(crate) mod bounded;
mod names;
mod platform;
mod records;
mod tolerations;
mod webhook;

use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::ResourceExt;
use kube::api::Api;
use steward::api::{ControlOwnership, Phase, PolicyException};

use crate::harness::{
    self, Env, OUTCOME, condition, condition_is, env, eventually, from_now, http_get, phase_is, wait_for,
};

/// The tenant persona: `mallory`, admin of `ns` through a Role holding
/// everything in it (RBAC included), as the built-in `admin` would.
fn tenant_admin(env: &Env, ns: &str) {
    env.apply_ok(
        ns,
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: tenant-admin}
rules:
  - {apiGroups: ["", batch, rbac.authorization.k8s.io, steward.dev], resources: ["*"], verbs: ["*"]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: tenant-admin}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: tenant-admin}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: mallory}]
"#,
    );
}

/// `ns` with the tenant persona and the control `payments` of
/// `identities`, Ready; the admin's client.
async fn tenant_with_payments(env: &Env, ns: &str, identities: &[&str]) -> kube::Client {
    tenant_admin(env, ns);
    env.apply_ok(ns, &control("payments", "Audit", identities));
    let client = env.admin().await;
    let cos: Api<ControlOwnership> = Api::namespaced(client.clone(), ns);
    wait_for(&cos, "payments", OUTCOME, "Ready", condition_is("Ready", "True")).await;
    client
}

/// A control of `identities`, each allowed to get configmaps.
fn control(name: &str, enforcement: &str, identities: &[&str]) -> String {
    let identities: Vec<(&str, &str)> = identities
        .iter()
        .map(|sa| (*sa, r#"{apiGroups: [""], resources: [configmaps], verbs: [get]}"#))
        .collect();
    harness::control_yaml(name, enforcement, &harness::reviewed_recently(), &identities)
}

/// An exception `name` to `control`, approved by `approver`, for an hour,
/// granting `api` one rule (YAML flow style).
fn exception(name: &str, control: &str, approver: &str, rule: &str) -> String {
    format!(
        r#"
apiVersion: steward.dev/v1alpha1
kind: PolicyException
metadata: {{name: {name}}}
spec:
  control: {control}
  ticket: SEC-1
  approver: {approver}
  reason: Hostile test
  expiresAt: "{expires}"
  grant:
    serviceAccount: api
    rules: [{rule}]
"#,
        expires = from_now(3600)
    )
}

fn controller_healthy(env: &Env) {
    let ready = http_get(&format!("http://{}/readyz", env.metrics_addr));
    assert!(
        ready.as_ref().is_some_and(|(c, _)| *c == 200),
        "controller not ready: {ready:?}"
    );
}

fn identity<'a>(co: &'a ControlOwnership, sa: &str) -> Option<&'a steward::api::IdentityStatus> {
    co.status.as_ref()?.identities.iter().find(|i| i.service_account == sa)
}

#[tokio::test]
async fn a_squatted_identity_name_is_reported_and_stops_nothing_else_then_enforce_takes_it_back() {
    let env = env();
    let ns = env.namespace("squat").await;
    tenant_admin(env, &ns);
    // The attacker takes the name Steward will use for `api`, binding it to
    // everything they hold, before the control exists.
    let squat = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: "steward:payments:api"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: tenant-admin}
subjects: [{kind: ServiceAccount, name: api}]
"#;
    env.apply_with(&ns, squat, &["--as=mallory"]);
    let client = env.admin().await;
    let rbs: Api<RoleBinding> = Api::namespaced(client.clone(), &ns);
    assert!(
        rbs.get_opt("steward:payments:api").await.unwrap().is_some(),
        "squat not created"
    );

    env.apply_ok(&ns, &control("payments", "Audit", &["api", "worker"]));
    let cos: Api<ControlOwnership> = Api::namespaced(client.clone(), &ns);
    let co = wait_for(
        &cos,
        "payments",
        OUTCOME,
        "api not applied",
        |c: Option<&ControlOwnership>| c.and_then(|c| identity(c, "api")).is_some_and(|i| i.problem.is_some()),
    )
    .await;
    let ready = condition(&co, "Ready").expect("Ready");
    assert_eq!(ready["status"], "False", "{ready}");
    assert_eq!(ready["reason"], "IdentityNotApplied", "{ready}");
    let api = identity(&co, "api").expect("api");
    assert!(
        api.problem
            .as_deref()
            .is_some_and(|p| p.contains("steward:payments:api")),
        "{api:?}"
    );
    // The squat is drift of `api`, not Steward's binding.
    assert!(
        api.drift.iter().any(|d| d.name == "steward:payments:api"),
        "squat not reported: {api:?}"
    );
    // Neither overwritten nor deleted in Audit.
    let kept = rbs.get("steward:payments:api").await.unwrap();
    assert_eq!(kept.role_ref.name, "tenant-admin");
    // The other identity is served.
    eventually(OUTCOME, "worker's grant in place", || async {
        env.can(&ns, "worker", "get", "", "configmaps").await
    })
    .await;
    assert!(identity(&co, "worker").is_some_and(|i| i.problem.is_none()));
    controller_healthy(env);

    // Enforce: the foreign binding is replaced by Steward's own.
    env.apply_ok(&ns, &control("payments", "Enforce", &["api", "worker"]));
    wait_for(&cos, "payments", OUTCOME, "Ready again", condition_is("Ready", "True")).await;
    let ours = rbs.get("steward:payments:api").await.unwrap();
    assert_eq!(ours.role_ref.kind, "Role");
    assert_eq!(ours.role_ref.name, "steward:payments:api", "squat still bound");
    eventually(OUTCOME, "api holds only what it declares", || async {
        env.can(&ns, "api", "get", "", "configmaps").await && !env.can(&ns, "api", "delete", "", "secrets").await
    })
    .await;
    controller_healthy(env);
}

#[tokio::test]
async fn a_rejected_exception_never_deletes_a_pair_it_does_not_own() {
    let env = env();
    let ns = env.namespace("collide").await;
    // Control `x` with identity `foo` owns `steward:x:foo`. Under the old
    // scheme (`steward-x-foo`) that was the very name an exception `foo`
    // used for its grant; now the names differ, and ownership by uid would
    // protect it anyway.
    env.apply_ok(&ns, &control("x", "Audit", &["foo"]));
    env.apply_ok(&ns, &control("payments", "Audit", &["api"]));
    let client = env.admin().await;
    let cos: Api<ControlOwnership> = Api::namespaced(client.clone(), &ns);
    for name in ["x", "payments"] {
        wait_for(&cos, name, OUTCOME, "Ready", condition_is("Ready", "True")).await;
    }
    eventually(OUTCOME, "foo's grant in place", || async {
        env.can(&ns, "foo", "get", "", "configmaps").await
    })
    .await;
    // An exception named `foo`, Rejected (approver not allowed): its
    // reconciler removes whatever grant it might have had.
    let rule = r#"{apiGroups: [""], resources: [configmaps], verbs: [list]}"#;
    env.apply_ok(&ns, &exception("foo", "payments", "mallory@example.com", rule));
    let pes: Api<PolicyException> = Api::namespaced(client.clone(), &ns);
    wait_for(&pes, "foo", OUTCOME, "Rejected", phase_is(Phase::Rejected)).await;
    // Removal runs before the status write, so any delete has happened.
    let rbs: Api<RoleBinding> = Api::namespaced(client, &ns);
    assert!(
        rbs.get_opt("steward:x:foo").await.unwrap().is_some(),
        "the exception deleted control x's binding"
    );
    assert!(env.can(&ns, "foo", "get", "", "configmaps").await);
    assert_eq!(env.controller_writes_by_kind(&ns).get("delete rolebindings 200"), None);
    controller_healthy(env);
}

#[tokio::test]
async fn only_steward_removes_its_finalizer_and_no_grant_outlives_its_record() {
    // A control plane of its own: the controller is stopped in between.
    let env = harness::isolated();
    let (mut ctl, _) = env.spawn_ready_controller("ctl-strip", &[]).await;
    let ns = env.namespace("strip").await;
    let client = tenant_with_payments(&env, &ns, &["api"]).await;
    let rule = r#"{apiGroups: [""], resources: [configmaps], verbs: [list]}"#;
    env.apply_ok(&ns, &exception("debug", "payments", "alice@example.com", rule));
    let pes: Api<PolicyException> = Api::namespaced(client.clone(), &ns);
    wait_for(&pes, "debug", OUTCOME, "Active", phase_is(Phase::Active)).await;
    eventually(OUTCOME, "the grant in force", || async {
        env.can(&ns, "api", "list", "", "configmaps").await
    })
    .await;

    // Exceptions carry no finalizer: the sweeper is their cleanup path.
    let pe = pes.get("debug").await.unwrap();
    assert!(pe.finalizers().is_empty(), "{:?}", pe.finalizers());

    // The tenant may not strip Steward's finalizer from a control (the API
    // server's own policy refuses it) ...
    // (The API server loads policies asynchronously: wait until it is in
    // force, on a dry run, before the real attempt.)
    let strip = r#"{"metadata":{"finalizers":null}}"#;
    let patch_as_mallory = |extra: &[&str]| {
        let mut args = vec![
            "--as=mallory",
            "-n",
            ns.as_str(),
            "patch",
            "controlownership",
            "payments",
        ];
        args.extend_from_slice(&["--type=merge", "-p", strip]);
        args.extend_from_slice(extra);
        let out = env.kubectl(&args);
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    eventually(OUTCOME, "the finalizer policy in force", || {
        let (ok, err) = patch_as_mallory(&["--dry-run=server"]);
        let refused = !ok && err.contains("FinalizerIsStewards");
        async move { refused }
    })
    .await;
    let (ok, err) = patch_as_mallory(&[]);
    assert!(!ok && err.contains("FinalizerIsStewards"), "{err}");

    // ... and a record can vanish while the controller is down (a restart,
    // a lost lease, an uninstall): here a cluster administrator deletes the
    // exception then.
    ctl.kill().unwrap();
    let _ = ctl.wait();
    env.kubectl_ok(&["-n", &ns, "delete", "policyexception", "debug"]);
    assert!(pes.get_opt("debug").await.unwrap().is_none(), "the record survived");
    let rbs: Api<RoleBinding> = Api::namespaced(client, &ns);
    assert!(
        rbs.get_opt("steward-x:debug").await.unwrap().is_some(),
        "nothing left to sweep"
    );

    let (mut ctl, _) = env.spawn_ready_controller("ctl-strip-back", &[]).await;
    eventually(OUTCOME, "the orphaned grant deleted", || async {
        rbs.get_opt("steward-x:debug").await.unwrap().is_none()
    })
    .await;
    eventually(OUTCOME, "the grant gone", || async {
        !env.can(&ns, "api", "list", "", "configmaps").await
    })
    .await;
    // The control's own identity, whose owner is alive, is untouched.
    assert!(
        rbs.get_opt("steward:payments:api").await.unwrap().is_some(),
        "the control's binding was deleted"
    );
    let _ = ctl.kill();
    let _ = ctl.wait();
}

#[tokio::test]
async fn drift_cannot_hide_behind_a_bootstrap_label_or_a_group_of_everyone() {
    let env = env();
    let ns = env.namespace("hide").await;
    tenant_admin(env, &ns);
    env.apply_ok(&ns, &control("payments", "Audit", &["api"]));
    // Dressed as Kubernetes' own default binding: `system:` name, its label.
    let dressed = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: "system:controller:tenant"
  labels: {kubernetes.io/bootstrapping: rbac-defaults}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: tenant-admin}
subjects: [{kind: ServiceAccount, name: api}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: everyone}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: tenant-admin}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: "system:authenticated"}]
"#;
    let out = env.apply_with(&ns, dressed, &["--as=mallory"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let client = env.admin().await;
    let cos: Api<ControlOwnership> = Api::namespaced(client, &ns);
    let co = wait_for(
        &cos,
        "payments",
        OUTCOME,
        "both reported",
        |c: Option<&ControlOwnership>| c.and_then(|c| identity(c, "api")).is_some_and(|i| i.drift.len() == 2),
    )
    .await;
    let mut names: Vec<String> = identity(&co, "api")
        .expect("api")
        .drift
        .iter()
        .map(|d| d.name.clone())
        .collect();
    names.sort();
    assert_eq!(names, ["everyone", "system:controller:tenant"]);
    // The API server's own default bindings (system:discovery and friends,
    // to every authenticated user) are not.
    let drifted = condition(&co, "Drifted").expect("Drifted");
    assert_eq!(drifted["status"], "True", "{drifted}");
    controller_healthy(env);
}

#[tokio::test]
async fn a_service_account_belongs_to_the_control_that_declared_it_first() {
    let env = env();
    let ns = env.namespace("claim").await;
    tenant_admin(env, &ns);
    env.apply_ok(&ns, &control("strict", "Audit", &["api"]));
    let client = env.admin().await;
    let cos: Api<ControlOwnership> = Api::namespaced(client.clone(), &ns);
    let strict = wait_for(&cos, "strict", OUTCOME, "Ready", condition_is("Ready", "True")).await;
    // Creation times have one-second resolution (a tie goes by name): let
    // the clock pass strict's second, so "first" is unambiguous.
    let created = strict.metadata.creation_timestamp.expect("created").0;
    eventually(OUTCOME, "the next second", || async move {
        jiff::Timestamp::now() >= created + jiff::SignedDuration::from_secs(1)
    })
    .await;
    // The tenant declares the same service account in a lax control of
    // their own, approved by themselves, and files an exception to it.
    let lax = format!(
        r#"
apiVersion: steward.dev/v1alpha1
kind: ControlOwnership
metadata: {{name: lax}}
spec:
  layer: Identity
  owner: {{name: tenant}}
  backupOwner: {{name: tenant-backup}}
  approvers: [mallory@example.com]
  review: {{interval: 30d, lastReviewed: "{}"}}
  workloadIdentities:
    - serviceAccount: api
      task: Everything
      rules: [{{apiGroups: [""], resources: [pods], verbs: [get]}}]
---
{}"#,
        from_now(-60),
        exception(
            "mine",
            "lax",
            "mallory@example.com",
            r#"{apiGroups: [""], resources: [pods/log], verbs: [get]}"#
        )
    );
    let out = env.apply_with(&ns, &lax, &["--as=mallory"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let co = wait_for(&cos, "lax", OUTCOME, "refused", |c: Option<&ControlOwnership>| {
        c.and_then(|c| condition(c, "Ready"))
            .is_some_and(|r| r["reason"] == "ServiceAccountClaimed")
    })
    .await;
    let why = condition(&co, "Ready").expect("Ready");
    assert!(why["message"].as_str().is_some_and(|m| m.contains("strict")), "{why}");
    let pes: Api<PolicyException> = Api::namespaced(client.clone(), &ns);
    let pe = wait_for(&pes, "mine", OUTCOME, "Rejected", phase_is(Phase::Rejected)).await;
    let rejected = condition(&pe, "Ready").expect("Ready");
    assert_eq!(rejected["reason"], "GrantOutsideControl", "{rejected}");
    // Nothing of the lax control's reaches api; the strict control's stays.
    // (The lax control never makes a binding for api; the strict one's may
    // still be reaching the authorizer.)
    assert!(!env.can(&ns, "api", "get", "", "pods").await);
    assert!(!env.can(&ns, "api", "get", "", "pods/log").await);
    eventually(OUTCOME, "the strict control's grant in force", || async {
        env.can(&ns, "api", "get", "", "configmaps").await
    })
    .await;
    let rbs: Api<RoleBinding> = Api::namespaced(client, &ns);
    assert!(rbs.get_opt("steward:lax:api").await.unwrap().is_none());
    controller_healthy(env);

    // Once the first control lets go, the other may take the account.
    env.kubectl_ok(&["-n", &ns, "delete", "controlownership", "strict"]);
    wait_for(&cos, "lax", OUTCOME, "Ready once free", condition_is("Ready", "True")).await;
    eventually(OUTCOME, "the lax control's rules in force", || async {
        env.can(&ns, "api", "get", "", "pods").await
    })
    .await;
}
