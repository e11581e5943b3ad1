//! ControlOwnership end to end: exact workload permissions, drift reported
//! (Audit) or removed (Enforce), tolerations that end at expiry, hand edits
//! reverted, cleanup on delete, and the review deadline to the second.

use std::time::Duration;

use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, Patch, PatchParams};
use steward::api::ControlOwnership;

use crate::harness::{Env, condition, condition_is, env, eventually, from_now, wait_for};

fn control(name: &str, enforcement: &str, review: &str) -> String {
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
  review: {review}
  enforcement: {enforcement}
  workloadIdentities:
    - serviceAccount: api
      task: Reads configuration
      rules:
        - {{apiGroups: [""], resources: [configmaps], verbs: [get, list]}}
    - serviceAccount: worker
      task: Runs batch jobs
      rules:
        - {{apiGroups: [batch], resources: [jobs], verbs: [get, create]}}
"#
    )
}

fn reviewed_recently() -> String {
    format!(r#"{{interval: 30d, lastReviewed: "{}"}}"#, from_now(-60))
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
        Duration::from_secs(15),
        "Ready",
        condition_is("Ready", "True"),
    )
    .await;
    wait_for(
        &cos,
        "payments",
        Duration::from_secs(5),
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
    eventually(Duration::from_secs(5), "api granted", || {
        env.can(&ns, "api", "get", "", "configmaps")
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
        !env.can(&ns, "api", "create", "batch", "jobs").await,
        "the other identity's rule leaked"
    );
    assert!(env.can(&ns, "worker", "create", "batch", "jobs").await);
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
    assert_eq!(ids[0].role, "steward-payments-api");
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
            Duration::from_secs(30),
            "Ready",
            condition_is("Ready", "True"),
        )
        .await;
    }
    // Give straggling reconciles a moment, then count what the API server
    // recorded.
    tokio::time::sleep(Duration::from_secs(2)).await;
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
    assert_eq!(take("patch roles 201"), 2 * N, "one Role per identity");
    assert_eq!(take("patch rolebindings 201"), 2 * N, "one RoleBinding per identity");
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
    let co = wait_for(
        &cos,
        "payments",
        Duration::from_secs(2),
        "Drifted",
        condition_is("Drifted", "True"),
    )
    .await;
    assert_eq!(drift_of(&co), vec![format!("ClusterRoleBinding/{name}")]);
    // Audit never deletes.
    let crbs: Api<ClusterRoleBinding> = Api::all(client.clone());
    assert!(crbs.get_opt(&name).await.unwrap().is_some());

    // An exception tolerating it: drift suppressed until it expires.
    let expires = from_now(8);
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
  tolerate: [{{kind: ClusterRoleBinding, name: {name}}}]
"#
        ),
    );
    let co = wait_for(
        &cos,
        "payments",
        Duration::from_secs(5),
        "tolerated",
        condition_is("Drifted", "False"),
    )
    .await;
    assert_eq!(co.status.unwrap().active_exceptions, Some(1));
    let co = wait_for(
        &cos,
        "payments",
        Duration::from_secs(15),
        "drifted again",
        condition_is("Drifted", "True"),
    )
    .await;
    let expired: jiff::Timestamp = expires.parse().unwrap();
    assert!(
        jiff::Timestamp::now() <= expired + jiff::SignedDuration::from_secs(2),
        "drift came back late"
    );
    assert_eq!(co.status.unwrap().active_exceptions, Some(0));
    crbs.delete(&name, &Default::default()).await.unwrap();
    wait_for(
        &cos,
        "payments",
        Duration::from_secs(2),
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

    let sole = format!("{ns}-sole");
    env.apply_ok(
        &ns,
        &crb(
            &sole,
            &format!("[{{kind: ServiceAccount, name: api, namespace: {ns}}}]"),
        ),
    );
    let start = std::time::Instant::now();
    eventually(Duration::from_secs(2), "drifting binding deleted", || {
        let crbs = crbs.clone();
        let sole = sole.clone();
        async move { crbs.get_opt(&sole).await.unwrap().is_none() }
    })
    .await;
    assert!(start.elapsed() <= Duration::from_secs(2));
    assert!(!env.can(&ns, "api", "delete", "", "nodes").await);

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
        Duration::from_secs(2),
        "shared reported",
        condition_is("Drifted", "True"),
    )
    .await;
    assert_eq!(drift_of(&co), vec![format!("ClusterRoleBinding/{shared}")]);
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
        Duration::from_secs(2),
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
    let events = env.kubectl_ok(&[
        "get",
        "events.events.k8s.io",
        "-n",
        &ns,
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    assert!(events.contains("DriftRemoved"), "{events}");
}

#[tokio::test]
async fn hand_edits_are_reverted_and_delete_cleans_up() {
    let env = env();
    let (ns, client, _cos) = ready_control(env, "revert", "Audit").await;
    let roles: Api<Role> = Api::namespaced(client.clone(), &ns);
    let rbs: Api<RoleBinding> = Api::namespaced(client.clone(), &ns);
    eventually(Duration::from_secs(5), "granted", || {
        env.can(&ns, "api", "get", "", "configmaps")
    })
    .await;

    let edit = serde_json::json!({"rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}]});
    roles
        .patch("steward-payments-api", &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .unwrap();
    eventually(Duration::from_secs(2), "hand edit reverted", || {
        let roles = roles.clone();
        async move {
            let r = roles.get("steward-payments-api").await.unwrap();
            r.rules
                .unwrap_or_default()
                .iter()
                .all(|r| r.resources.as_deref() == Some(&["configmaps".to_string()][..]))
        }
    })
    .await;
    assert!(!env.can(&ns, "api", "get", "", "secrets").await);

    // A removed binding comes back too.
    rbs.delete("steward-payments-worker", &Default::default())
        .await
        .unwrap();
    eventually(Duration::from_secs(2), "binding restored", || {
        let rbs = rbs.clone();
        async move { rbs.get_opt("steward-payments-worker").await.unwrap().is_some() }
    })
    .await;

    env.kubectl_ok(&[
        "delete",
        "-n",
        &ns,
        "controlownership/payments",
        "--wait=true",
        "--timeout=20s",
    ]);
    assert!(
        roles.list(&Default::default()).await.unwrap().items.is_empty(),
        "Roles left behind"
    );
    let left: Vec<_> = rbs.list(&Default::default()).await.unwrap().items;
    assert!(left.is_empty(), "RoleBindings left behind: {left:?}");
    assert!(!env.can(&ns, "api", "get", "", "configmaps").await);
}

#[tokio::test]
async fn removing_an_identity_removes_its_rbac() {
    let env = env();
    let (ns, client, _cos) = ready_control(env, "remove", "Audit").await;
    let roles: Api<Role> = Api::namespaced(client, &ns);
    eventually(Duration::from_secs(5), "worker granted", || {
        env.can(&ns, "worker", "create", "batch", "jobs")
    })
    .await;
    let one = control("payments", "Audit", &reviewed_recently());
    let one = &one[..one.find("    - serviceAccount: worker").unwrap()];
    env.apply_ok(&ns, one);
    eventually(Duration::from_secs(5), "worker revoked", || async {
        !env.can(&ns, "worker", "create", "batch", "jobs").await
    })
    .await;
    // The binding goes first (that is what the SAR saw); the Role follows.
    eventually(Duration::from_secs(5), "worker's Role deleted", || async {
        roles.get_opt("steward-payments-worker").await.unwrap().is_none()
    })
    .await;
    assert!(env.can(&ns, "api", "get", "", "configmaps").await);
}

#[tokio::test]
async fn review_overdue_flips_at_the_due_instant() {
    let env = env();
    let ns = env.namespace("review").await;
    // Due five seconds from now.
    let review = format!(r#"{{interval: 1h, lastReviewed: "{}"}}"#, from_now(-3600 + 5));
    let due: jiff::Timestamp = (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(5))
        .round(jiff::Unit::Second)
        .unwrap();
    env.apply_ok(&ns, &control("payments", "Audit", &review));
    let cos: Api<ControlOwnership> = Api::namespaced(env.admin().await, &ns);
    let co = wait_for(
        &cos,
        "payments",
        Duration::from_secs(4),
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
        Duration::from_secs(10),
        "overdue",
        condition_is("ReviewOverdue", "True"),
    )
    .await;
    let lag = jiff::Timestamp::now().duration_since(due_status);
    assert!(
        lag <= jiff::SignedDuration::from_secs(1),
        "flipped {lag:?} after the due instant"
    );
    assert_eq!(condition(&co, "Ready").unwrap()["status"], "True");
}
