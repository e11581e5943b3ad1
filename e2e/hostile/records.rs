//! Hostile tenants: an exception record cannot be made to vanish while its
//! grant is in force. A namespace editor (who may delete exceptions) cannot
//! delete an Active one, one by one or as a collection; ending it early
//! means setting `expiresAt` to now, after which it is an Expired record
//! and may be deleted.

use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::Api;
use steward::api::{Phase, PolicyException};

use super::{controller_healthy, exception, tenant_with_payments};
use crate::harness::{Env, OUTCOME, env, eventually, from_now, phase_is, wait_for};

/// The editor persona: `erin`, who holds in `ns` what the built-in `edit`
/// role gets from Steward's aggregated roles (steward-viewer and
/// steward-editor; no aggregation controller runs locally, so the rules are
/// copied into a Role).
fn namespace_editor(env: &Env, ns: &str) {
    env.apply_ok(
        ns,
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: steward-editor}
rules:
  - apiGroups: [steward.dev]
    resources: [controlownerships, policyexceptions, controlownerships/status, policyexceptions/status]
    verbs: [get, list, watch]
  - apiGroups: [steward.dev]
    resources: [policyexceptions]
    verbs: [create, update, patch, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: steward-editor}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: steward-editor}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: erin}]
"#,
    );
}

#[tokio::test]
async fn an_active_exception_is_kept_until_its_window_ends_then_it_may_go() {
    let env = env();
    let ns = env.namespace("records").await;
    namespace_editor(env, &ns);
    let client = tenant_with_payments(env, &ns, &["api"]).await;
    let rule = r#"{apiGroups: [""], resources: [configmaps], verbs: [list]}"#;
    env.apply_ok(&ns, &exception("debug", "payments", "alice@example.com", rule));
    let pes: Api<PolicyException> = Api::namespaced(client.clone(), &ns);
    let active = wait_for(&pes, "debug", OUTCOME, "Active", phase_is(Phase::Active)).await;
    eventually(OUTCOME, "the grant in force", || async {
        env.can(&ns, "api", "list", "", "configmaps").await
    })
    .await;

    let delete_as = |user: &str, extra: &[&str]| {
        let mut args = vec!["--as", user, "-n", ns.as_str(), "delete", "policyexception", "debug"];
        args.extend_from_slice(extra);
        let out = env.kubectl(&args);
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    // (The API server loads policies asynchronously: wait until it is in
    // force, on a dry run, before the real attempt.)
    eventually(OUTCOME, "the policy in force", || {
        let (ok, err) = delete_as("erin", &["--dry-run=server"]);
        let refused = !ok && err.contains("ActiveIsKept");
        async move { refused }
    })
    .await;
    // The editor cannot delete it ...
    let (ok, err) = delete_as("erin", &["--wait=false"]);
    assert!(
        !ok && err.contains("ActiveIsKept") && err.contains("expiresAt"),
        "{err}"
    );
    // ... nor can the namespace's admin, as a collection (DELETECOLLECTION
    // is admitted object by object).
    let collection = format!("/apis/steward.dev/v1alpha1/namespaces/{ns}/policyexceptions");
    let out = env.kubectl(&["--as=mallory", "delete", "--raw", &collection]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("ActiveIsKept"), "{err}");
    // The record and its grant are untouched.
    let kept = pes.get("debug").await.unwrap();
    assert_eq!(kept.metadata.uid, active.metadata.uid);
    assert!(kept.metadata.deletion_timestamp.is_none(), "being deleted: {kept:?}");
    let rbs: Api<RoleBinding> = Api::namespaced(client.clone(), &ns);
    assert!(rbs.get_opt("steward-x:debug").await.unwrap().is_some(), "grant removed");
    assert!(env.can(&ns, "api", "list", "", "configmaps").await);
    controller_healthy(env);

    // Ending it early: expiresAt set to now (at least a second after its
    // creation, so the window is not empty and the exception not Rejected).
    let created = active.metadata.creation_timestamp.clone().expect("created").0;
    eventually(OUTCOME, "a second past its creation", || async move {
        jiff::Timestamp::now() >= created + jiff::SignedDuration::from_secs(2)
    })
    .await;
    let now = format!(r#"{{"spec":{{"expiresAt":"{}"}}}}"#, from_now(0));
    let out = env.kubectl(&[
        "--as=erin",
        "-n",
        &ns,
        "patch",
        "policyexception",
        "debug",
        "--type=merge",
        "-p",
        &now,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for(&pes, "debug", OUTCOME, "Expired", phase_is(Phase::Expired)).await;
    assert!(rbs.get_opt("steward-x:debug").await.unwrap().is_none(), "grant kept");
    eventually(OUTCOME, "the grant revoked", || async {
        !env.can(&ns, "api", "list", "", "configmaps").await
    })
    .await;

    // An Expired record may go.
    let (ok, err) = delete_as("erin", &["--wait=false"]);
    assert!(ok, "{err}");
    eventually(OUTCOME, "the record deleted", || async {
        pes.get_opt("debug").await.unwrap().is_none()
    })
    .await;
    controller_healthy(env);
}
