//! ControlOwnership end to end: exact workload permissions, drift reported
//! (Audit) or removed (Enforce), tolerations that end at expiry, hand edits
//! reverted, cleanup on delete, and the review deadline to the second.

use std::time::Duration;

use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, Patch, PatchParams};
use steward::api::ControlOwnership;

use crate::harness::{
    self, Env, OUTCOME, condition, condition_is, env, eventually, from_now, reviewed_recently, wait_for,
};

/// The `payments`-style control of these tests: `api` reads configuration,
/// `worker` watches jobs.
fn control(name: &str, enforcement: &str, review: &str) -> String {
    harness::control_yaml(
        name,
        enforcement,
        review,
        &[
            (
                "api",
                r#"{apiGroups: [""], resources: [configmaps], verbs: [get, list]}"#,
            ),
            ("worker", "{apiGroups: [batch], resources: [jobs], verbs: [get, list]}"),
        ],
    )
}

fn drift_of(co: &ControlOwnership) -> Vec<String> {
    co.status
        .iter()
        .flat_map(|s| s.identities.iter())
        .flat_map(|i| i.drift.iter().map(|d| format!("{}/{}", d.kind, d.name)))
        .collect()
}

fn crb(name: &str, subjects: &str) -> String {
    format!(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {name}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}}
subjects: {subjects}
"#
    )
}

/// A fresh namespace holding the `payments` control with `enforcement`,
/// reconciled (Ready, no drift); returns the namespace, an admin client and
/// the controls API.
async fn ready_control(env: &Env, prefix: &str, enforcement: &str) -> (String, kube::Client, Api<ControlOwnership>) {
    let ns = env.namespace(prefix).await;
    env.apply_ok(&ns, &control("payments", enforcement, &reviewed_recently()));
    let client = env.admin().await;
    let cos: Api<ControlOwnership> = Api::namespaced(client.clone(), &ns);
    wait_for(
        &cos,
        "payments",
        Duration::from_secs(60),
        "Ready",
        condition_is("Ready", "True"),
    )
    .await;
    wait_for(
        &cos,
        "payments",
        OUTCOME,
        "Drifted=False",
        condition_is("Drifted", "False"),
    )
    .await;
    (ns, client, cos)
}

#[tokio::test]
async fn identities_get_exactly_the_declared_permissions() {
    let env = env();
    let (ns, _client, cos) = ready_control(env, "exact", "Audit").await;
    // Both identities' grants in force first: a denial asserted before the
    // API server's authorizer has seen the other identity's Role would not
    // show that its rules did not leak.
    eventually(OUTCOME, "api granted", || env.can(&ns, "api", "get", "", "configmaps")).await;
    eventually(OUTCOME, "worker granted", || {
        env.can(&ns, "worker", "list", "batch", "jobs")
    })
    .await;
    assert!(env.can(&ns, "api", "list", "", "configmaps").await);
    assert!(
        !env.can(&ns, "api", "watch", "", "configmaps").await,
        "undeclared verb allowed"
    );
    assert!(
        !env.can(&ns, "api", "get", "", "secrets").await,
        "undeclared resource allowed"
    );
    assert!(
        !env.can(&ns, "api", "list", "batch", "jobs").await,
        "the other identity's rule leaked"
    );
    assert!(env.can(&ns, "worker", "get", "batch", "jobs").await);
    assert!(
        !env.can(&ns, "worker", "delete", "batch", "jobs").await,
        "undeclared verb allowed"
    );
    assert!(
        !env.can(&ns, "worker", "get", "", "configmaps").await,
        "the other identity's rule leaked"
    );
    let co = cos.get("payments").await.unwrap();
    let ids = &co.status.unwrap().identities;
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0].role, "steward:payments:api");
}

#[tokio::test]
async fn new_controls_cost_one_write_per_object() {
    let env = env();
    let ns = env.namespace("writes").await;
    // Many at once, so reconciles triggered by the controller's own writes
    // run while the watch is still behind them; none of them may write again.
    const N: usize = 40;
    // Each with service accounts of its own (controls sharing one would see
    // each other's bindings as drift).
    let docs: Vec<String> = (0..N)
        .map(|i| {
            control(&format!("c{i}"), "Audit", &reviewed_recently())
                .replace("serviceAccount: api", &format!("serviceAccount: api-{i}"))
                .replace("serviceAccount: worker", &format!("serviceAccount: worker-{i}"))
        })
        .collect();
    env.apply_ok(&ns, &docs.join("\n---\n"));
    let client = env.admin().await;
    let cos: Api<ControlOwnership> = Api::namespaced(client, &ns);
    for i in 0..N {
        wait_for(
            &cos,
            &format!("c{i}"),
            Duration::from_secs(60),
            "Ready",
            condition_is("Ready", "True"),
        )
        .await;
    }
    // Count once the audit log shows the controller quiet in the namespace
    // for 10 s: the TTL of its read-your-writes memo (src/reconcile/
    // written.rs), the longest a reconcile that ran on a cache behind its
    // own writes waits before deciding again. A second write it makes is in
    // the count, not after it, and so is an audit entry that trailed the
    // watch which showed Ready.
    env.controller_quiet_in(&ns, Duration::from_secs(10), Duration::from_secs(120))
        .await;
    let mut writes = env.controller_writes_by_kind(&ns);
    // The namespace's PolicyReport is rebuilt in batches; not counted here.
    writes.retain(|k, _| !k.contains("policyreports"));
    let log = env.controller_log();
    let status_log: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("status written") && l.contains(&ns))
        .collect();
    let status_log = status_log.join("\n");
    let mut take = |key: &str| writes.remove(key).unwrap_or(0);
    assert_eq!(take("patch controlownerships 200"), N, "one finalizer each");
    // Created (the cache shows them absent), not applied: a create costs
    // the API server less.
    assert_eq!(take("create roles 201"), 2 * N, "one Role per identity");
    assert_eq!(take("create rolebindings 201"), 2 * N, "one RoleBinding per identity");
    // One status each. Without the read-your-writes memo this was 53-65
    // for 40 controls. The bound leaves room for one or two late writes on
    // a loaded machine; the log lines say which control wrote twice.
    let statuses = take("patch controlownerships/status 200");
    assert!(
        (N..=N + N / 10).contains(&statuses),
        "{statuses} status writes:\n{status_log}"
    );
    assert!(writes.is_empty(), "unexpected writes: {writes:?}");
}

#[tokio::test]
async fn drift_is_reported_in_audit_and_a_toleration_hides_it_until_expiry() {
    let env = env();
    let (ns, client, cos) = ready_control(env, "audit", "Audit").await;

    let name = format!("{ns}-legacy-admin");
    env.apply_ok(
        &ns,
        &crb(
            &name,
            &format!("[{{kind: ServiceAccount, name: api, namespace: {ns}}}]"),
        ),
    );
    let co = wait_for(&cos, "payments", OUTCOME, "Drifted", condition_is("Drifted", "True")).await;
    assert_eq!(drift_of(&co), vec![format!("ClusterRoleBinding/{name}")]);
    // Audit never deletes (the reconcile that reported the drift would have
    // deleted it before writing that status).
    let crbs: Api<ClusterRoleBinding> = Api::all(client.clone());
    assert!(crbs.get_opt(&name).await.unwrap().is_some());

    // An exception tolerating it: drift suppressed until it expires. The
    // window gives a loaded machine ample time to tolerate it first: the
    // controller must know the expiry before it passes for the lag measured
    // below to mean anything.
    let expires = from_now(15);
    let expired: jiff::Timestamp = expires.parse().unwrap();
    env.apply_ok(
        &ns,
        &format!(
            r#"
apiVersion: steward.dev/v1alpha1
kind: PolicyException
metadata: {{name: legacy}}
spec:
  control: payments
  ticket: SEC-9
  approver: alice@example.com
  reason: Migration off the legacy admin binding
  expiresAt: "{expires}"
  tolerate:
    - kind: ClusterRoleBinding
      name: {name}
      roleRef: {{kind: ClusterRole, name: cluster-admin}}
      subjects: [{{kind: ServiceAccount, name: api, namespace: {ns}}}]
"#
        ),
    );
    let co = wait_for(&cos, "payments", OUTCOME, "tolerated", condition_is("Drifted", "False")).await;
    assert!(
        jiff::Timestamp::now() < expired,
        "setup too slow: the toleration was seen only after it had expired"
    );
    assert_eq!(co.status.unwrap().active_exceptions, Some(1));
    let co = wait_for(
        &cos,
        "payments",
        OUTCOME,
        "drifted again",
        condition_is("Drifted", "True"),
    )
    .await;
    assert_eq!(co.status.unwrap().active_exceptions, Some(0));
    // How late, from expiresAt to the status write that reported the drift
    // again, as the API server recorded it (not when this test got to see
    // it). The status says nothing new between the toleration and expiry, so
    // the first status write from expiresAt on is that one.
    let back = env
        .controller_write(OUTCOME, "a status write from expiresAt on", |w| {
            w.is("patch", "controlownerships/status", Some(&ns), "payments") && w.received >= expired
        })
        .await;
    let late = back.completed.duration_since(expired);
    eprintln!("drift back {late:#} after expiresAt");
    assert!(
        late <= jiff::SignedDuration::from_secs(2),
        "drift came back {late:#} after expiresAt"
    );
    crbs.delete(&name, &Default::default()).await.unwrap();
    wait_for(
        &cos,
        "payments",
        OUTCOME,
        "clean after delete",
        condition_is("Drifted", "False"),
    )
    .await;
}

#[tokio::test]
async fn enforce_removes_drift_but_only_reports_shared_bindings() {
    let env = env();
    let (ns, client, cos) = ready_control(env, "enforce", "Enforce").await;
    let crbs: Api<ClusterRoleBinding> = Api::all(client.clone());
    let rbs: Api<RoleBinding> = Api::namespaced(client.clone(), &ns);

    // A RoleBinding in the control's namespace, to managed identities only:
    // deleted.
    env.apply_ok(&ns, &harness::admin_binding_yaml("sole", "api"));
    eventually(OUTCOME, "drifting binding deleted", || {
        let rbs = rbs.clone();
        async move { rbs.get_opt("sole").await.unwrap().is_none() }
    })
    .await;
    // How fast, between the API server's own records of the binding's
    // creation and the controller's delete of it.
    let created = env
        .audited(OUTCOME, "the binding's creation", |w| {
            w.is("create", "rolebindings", Some(&ns), "sole")
        })
        .await;
    let removed = env
        .controller_write(OUTCOME, "the controller's delete", |w| {
            w.is("delete", "rolebindings", Some(&ns), "sole")
        })
        .await;
    let took = removed.completed.duration_since(created.completed);
    eprintln!("drift removed {took:#} after the binding was created");
    assert!(
        took <= jiff::SignedDuration::from_secs(2),
        "drift removed {took:#} after the binding was created"
    );
    eventually(OUTCOME, "the removed binding's grant gone", || async {
        !env.can(&ns, "api", "delete", "", "secrets").await
    })
    .await;

    // A ClusterRoleBinding is the platform's, even to managed identities
    // only: reported, never deleted by a namespaced control.
    let sole = format!("{ns}-sole");
    env.apply_ok(
        &ns,
        &crb(
            &sole,
            &format!("[{{kind: ServiceAccount, name: api, namespace: {ns}}}]"),
        ),
    );
    let co = wait_for(
        &cos,
        "payments",
        OUTCOME,
        "cluster binding reported",
        |c: Option<&ControlOwnership>| c.is_some_and(|c| drift_of(c).contains(&format!("ClusterRoleBinding/{sole}"))),
    )
    .await;
    assert_eq!(drift_of(&co), vec![format!("ClusterRoleBinding/{sole}")]);
    assert!(
        crbs.get_opt(&sole).await.unwrap().is_some(),
        "a ClusterRoleBinding was deleted"
    );
    crbs.delete(&sole, &Default::default()).await.unwrap();
    wait_for(
        &cos,
        "payments",
        OUTCOME,
        "clean again",
        condition_is("Drifted", "False"),
    )
    .await;

    let shared = format!("{ns}-shared");
    env.apply_ok(
        &ns,
        &crb(
            &shared,
            &format!("[{{kind: ServiceAccount, name: api, namespace: {ns}}}, {{kind: User, name: jane}}]"),
        ),
    );
    let co = wait_for(
        &cos,
        "payments",
        OUTCOME,
        "shared reported",
        condition_is("Drifted", "True"),
    )
    .await;
    assert_eq!(drift_of(&co), vec![format!("ClusterRoleBinding/{shared}")]);
    // Reported, and (in the same reconcile, before that status) not edited.
    let kept = crbs.get(&shared).await.unwrap();
    assert_eq!(kept.subjects.unwrap().len(), 2, "a shared binding was edited");

    // A RoleBinding in the namespace through the group of all its SAs.
    env.apply_ok(
        &ns,
        &format!(
            r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: all-sas}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}}
subjects: [{{kind: Group, name: "system:serviceaccounts:{ns}", apiGroup: rbac.authorization.k8s.io}}]
"#
        ),
    );
    let co = wait_for(
        &cos,
        "payments",
        OUTCOME,
        "group drift",
        |c: Option<&ControlOwnership>| c.is_some_and(|c| drift_of(c).contains(&"RoleBinding/all-sas".to_string())),
    )
    .await;
    assert!(drift_of(&co).contains(&format!("ClusterRoleBinding/{shared}")));
    let rbs: Api<RoleBinding> = Api::namespaced(client, &ns);
    assert!(
        rbs.get_opt("all-sas").await.unwrap().is_some(),
        "a group binding was deleted"
    );
    crbs.delete(&shared, &Default::default()).await.unwrap();
    env.wait_for_events(&ns, &["DriftRemoved"]).await;
}

#[tokio::test]
async fn hand_edits_are_reverted_and_delete_cleans_up() {
    let env = env();
    let (ns, client, _cos) = ready_control(env, "revert", "Audit").await;
    let roles: Api<Role> = Api::namespaced(client.clone(), &ns);
    let rbs: Api<RoleBinding> = Api::namespaced(client.clone(), &ns);
    eventually(OUTCOME, "granted", || env.can(&ns, "api", "get", "", "configmaps")).await;

    let edit = serde_json::json!({"rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}]});
    roles
        .patch("steward:payments:api", &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .unwrap();
    eventually(OUTCOME, "hand edit reverted", || {
        let roles = roles.clone();
        async move {
            let r = roles.get("steward:payments:api").await.unwrap();
            r.rules
                .unwrap_or_default()
                .iter()
                .all(|r| r.resources.as_deref() == Some(&["configmaps".to_string()][..]))
        }
    })
    .await;
    eventually(OUTCOME, "the reverted Role in force", || async {
        !env.can(&ns, "api", "get", "", "secrets").await
    })
    .await;

    // A removed binding comes back too.
    rbs.delete("steward:payments:worker", &Default::default())
        .await
        .unwrap();
    eventually(OUTCOME, "binding restored", || {
        let rbs = rbs.clone();
        async move { rbs.get_opt("steward:payments:worker").await.unwrap().is_some() }
    })
    .await;

    env.kubectl_ok(&[
        "delete",
        "-n",
        &ns,
        "controlownership/payments",
        "--wait=true",
        "--timeout=60s",
    ]);
    // The finalizer removed them before letting the control go.
    assert!(
        roles.list(&Default::default()).await.unwrap().items.is_empty(),
        "Roles left behind"
    );
    // (The platform's grant-ceiling binding is not Steward's and stays.)
    let ours = kube::api::ListParams::default().labels("app.kubernetes.io/managed-by=steward");
    let left: Vec<_> = rbs.list(&ours).await.unwrap().items;
    assert!(left.is_empty(), "RoleBindings left behind: {left:?}");
    eventually(OUTCOME, "access gone with the control", || async {
        !env.can(&ns, "api", "get", "", "configmaps").await
    })
    .await;
}

#[tokio::test]
async fn removing_an_identity_removes_its_rbac() {
    let env = env();
    let (ns, client, cos) = ready_control(env, "remove", "Audit").await;
    let roles: Api<Role> = Api::namespaced(client.clone(), &ns);
    let rbs: Api<RoleBinding> = Api::namespaced(client, &ns);
    eventually(OUTCOME, "api granted", || env.can(&ns, "api", "get", "", "configmaps")).await;
    eventually(OUTCOME, "worker granted", || {
        env.can(&ns, "worker", "list", "batch", "jobs")
    })
    .await;
    let one = control("payments", "Audit", &reviewed_recently());
    let one = &one[..one.find("    - serviceAccount: worker").unwrap()];
    env.apply_ok(&ns, one);
    eventually(OUTCOME, "worker revoked", || async {
        !env.can(&ns, "worker", "list", "batch", "jobs").await
    })
    .await;
    // The binding goes first (that is what the SAR saw); the Role follows.
    eventually(OUTCOME, "worker's Role deleted", || async {
        roles.get_opt("steward:payments:worker").await.unwrap().is_none()
    })
    .await;
    // The status of the one-identity spec is written after every delete of
    // that reconcile: from then on, what is left is what it left.
    wait_for(
        &cos,
        "payments",
        OUTCOME,
        "the one-identity spec reconciled",
        |c: Option<&ControlOwnership>| {
            c.is_some_and(|c| {
                c.status
                    .as_ref()
                    .is_some_and(|s| s.observed_generation == c.metadata.generation && s.identities.len() == 1)
            })
        },
    )
    .await;
    assert!(
        roles.get_opt("steward:payments:api").await.unwrap().is_some(),
        "the remaining identity's Role was deleted"
    );
    assert!(
        rbs.get_opt("steward:payments:api").await.unwrap().is_some(),
        "the remaining identity's RoleBinding was deleted"
    );
    assert!(env.can(&ns, "api", "get", "", "configmaps").await);
}

#[tokio::test]
async fn review_overdue_flips_at_the_due_instant() {
    let env = env();
    let ns = env.namespace("review").await;
    // Due ten seconds from now: ample time for a loaded machine to
    // reconcile it first, so the flip is the controller waking at the
    // instant it scheduled.
    let review = format!(r#"{{interval: 1h, lastReviewed: "{}"}}"#, from_now(-3600 + 10));
    let due: jiff::Timestamp = (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(10))
        .round(jiff::Unit::Second)
        .unwrap();
    env.apply_ok(&ns, &control("payments", "Audit", &review));
    let cos: Api<ControlOwnership> = Api::namespaced(env.admin().await, &ns);
    let co = wait_for(
        &cos,
        "payments",
        OUTCOME,
        "not yet overdue",
        condition_is("ReviewOverdue", "False"),
    )
    .await;
    let due_status: jiff::Timestamp = co
        .status
        .as_ref()
        .unwrap()
        .next_review_due
        .as_ref()
        .unwrap()
        .parse()
        .unwrap();
    assert!((due_status - due).get_seconds().abs() <= 1, "{due_status} vs {due}");
    let co = wait_for(
        &cos,
        "payments",
        OUTCOME,
        "overdue",
        condition_is("ReviewOverdue", "True"),
    )
    .await;
    // When it flipped: the status write that said so, as the API server
    // recorded it. Nothing else changes in the status, so it is the first
    // status write from the due instant on (there is none if it flipped
    // early).
    let flip = env
        .controller_write(OUTCOME, "a status write from the due instant on", |w| {
            w.is("patch", "controlownerships/status", Some(&ns), "payments") && w.received >= due_status
        })
        .await;
    let lag = flip.completed.duration_since(due_status);
    eprintln!("review overdue written {lag:#} after the due instant");
    assert!(
        lag <= jiff::SignedDuration::from_secs(1),
        "flipped {lag:#} after the due instant"
    );
    assert_eq!(condition(&co, "Ready").unwrap()["status"], "True");
}
