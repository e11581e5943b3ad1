//! Hostile tenants: a toleration excuses a binding only as it stands. A
//! tolerated `view` binding swapped under the same name for
//! `cluster-admin`, or given one more subject, is drift again: reported,
//! and the swapped one removed in Enforce, so the identity does not keep
//! the wider permission.

use std::time::Duration;

use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::Api;
use steward::api::{ControlOwnership, Phase, PolicyException};

use super::{control, controller_healthy, identity, tenant_with_payments};
use crate::harness::{OUTCOME, condition, env, eventually, from_now, phase_is, wait_for};

/// A RoleBinding `name` of ClusterRole `role` to `subjects` (flow style).
fn binding(name: &str, role: &str, subjects: &str) -> String {
    format!(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: {name}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {role}}}
subjects: {subjects}
"#
    )
}

fn drift_of(co: &ControlOwnership, sa: &str) -> Vec<String> {
    identity(co, sa)
        .map(|i| i.drift.iter().map(|d| format!("{} {}", d.name, d.role_ref)).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_tolerated_binding_swapped_or_widened_is_drift_again() {
    let env = env();
    let ns = env.namespace("pinned").await;
    let client = tenant_with_payments(env, &ns, &["api", "worker"]).await;
    let cos: Api<ControlOwnership> = Api::namespaced(client.clone(), &ns);

    // Two legacy `view` bindings, tolerated exactly as they stand.
    env.apply_ok(
        &ns,
        &format!(
            r#"
apiVersion: steward.dev/v1alpha1
kind: PolicyException
metadata: {{name: legacy}}
spec:
  control: payments
  ticket: SEC-7
  approver: alice@example.com
  reason: Migrating off the legacy view bindings
  expiresAt: "{}"
  tolerate:
    - kind: RoleBinding
      name: legacy-view
      roleRef: {{kind: ClusterRole, name: view}}
      subjects: [{{kind: ServiceAccount, name: api}}]
    - kind: RoleBinding
      name: legacy-worker
      roleRef: {{kind: ClusterRole, name: view}}
      subjects: [{{kind: ServiceAccount, name: worker, namespace: {ns}}}]
"#,
            from_now(3600)
        ),
    );
    let pes: Api<PolicyException> = Api::namespaced(client.clone(), &ns);
    wait_for(&pes, "legacy", OUTCOME, "Active", phase_is(Phase::Active)).await;
    let view_api = binding("legacy-view", "view", "[{kind: ServiceAccount, name: api}]");
    let view_worker = binding("legacy-worker", "view", "[{kind: ServiceAccount, name: worker}]");
    for yaml in [&view_api, &view_worker] {
        let out = env.apply_with(&ns, yaml, &["--as=mallory"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    // Tolerated: once the controller has settled, no drift.
    env.controller_quiet_in(&ns, Duration::from_secs(3), OUTCOME).await;
    let co = cos.get("payments").await.unwrap();
    let drifted = condition(&co, "Drifted").expect("Drifted");
    assert_eq!(drifted["status"], "False", "{drifted}");

    // The tenant swaps one for cluster-admin under the same name (roleRef
    // is immutable: delete and recreate) and adds a subject to the other.
    let out = env.kubectl(&["--as=mallory", "-n", &ns, "delete", "rolebinding", "legacy-view"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let admin_api = binding("legacy-view", "cluster-admin", "[{kind: ServiceAccount, name: api}]");
    let widened = binding(
        "legacy-worker",
        "view",
        "[{kind: ServiceAccount, name: worker}, {apiGroup: rbac.authorization.k8s.io, kind: User, name: mallory}]",
    );
    for yaml in [&admin_api, &widened] {
        let out = env.apply_with(&ns, yaml, &["--as=mallory"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let co = wait_for(
        &cos,
        "payments",
        OUTCOME,
        "both reported",
        |c: Option<&ControlOwnership>| {
            c.is_some_and(|c| !drift_of(c, "api").is_empty() && !drift_of(c, "worker").is_empty())
        },
    )
    .await;
    assert_eq!(drift_of(&co, "api"), ["legacy-view ClusterRole/cluster-admin"]);
    assert_eq!(drift_of(&co, "worker"), ["legacy-worker ClusterRole/view"]);
    let drifted = condition(&co, "Drifted").expect("Drifted");
    assert_eq!(drifted["status"], "True", "{drifted}");
    // In Audit the swap took effect: that is what the report is about.
    eventually(OUTCOME, "the swapped binding in force", || {
        env.can(&ns, "api", "delete", "", "secrets")
    })
    .await;

    // Enforce: the swapped binding (only a managed subject) is deleted and
    // api loses the wider permission; the widened one (a user besides) is
    // reported, never deleted.
    env.apply_ok(&ns, &control("payments", "Enforce", &["api", "worker"]));
    let rbs: Api<RoleBinding> = Api::namespaced(client, &ns);
    eventually(OUTCOME, "the swapped binding deleted", || async {
        rbs.get_opt("legacy-view").await.unwrap().is_none()
    })
    .await;
    env.controller_write(OUTCOME, "the controller's delete", |w| {
        w.is("delete", "rolebindings", Some(&ns), "legacy-view")
    })
    .await;
    eventually(OUTCOME, "api without the wider permission", || async {
        !env.can(&ns, "api", "delete", "", "secrets").await
    })
    .await;
    assert!(
        env.can(&ns, "api", "get", "", "configmaps").await,
        "api lost what it declares"
    );
    let co = wait_for(
        &cos,
        "payments",
        OUTCOME,
        "worker still reported",
        |c: Option<&ControlOwnership>| {
            c.is_some_and(|c| drift_of(c, "api").is_empty() && !drift_of(c, "worker").is_empty())
        },
    )
    .await;
    assert_eq!(drift_of(&co, "worker"), ["legacy-worker ClusterRole/view"]);
    assert!(rbs.get_opt("legacy-worker").await.unwrap().is_some());
    controller_healthy(env);
}
