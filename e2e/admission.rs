//! Admission end to end: the webhook registered with `clientConfig.url` on
//! loopback and a CA made by the test, on a control plane of its own (so
//! the other tests can still apply invalid objects and watch them be
//! rejected in status). The webhook requires the client certificate the
//! API server presents (`e2e/control-plane.sh` configures it).

use std::time::{Duration, Instant};

use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::ResourceExt;
use kube::api::Api;
use steward::api::{ControlOwnership, Phase, PolicyException};

use crate::harness::{self, Env, OUTCOME, condition_is, eventually, from_now, http_get, phase_is, wait_for};

pub(crate) use crate::harness::pki;

/// The shipped `config/webhook/validating_webhook.yaml`, pointed at the
/// test's webhook on loopback instead of the in-cluster Service, with the CA
/// the test made instead of cert-manager's injection. Rules, failure
/// policies and namespace selectors are exactly what users install.
pub(crate) fn webhook_config(url: &str, ca: &str) -> String {
    let shipped = include_str!("../config/webhook/validating_webhook.yaml");
    let mut config: serde_json::Value = serde_yaml_ng::from_str(shipped).expect("webhook YAML");
    config["metadata"]["annotations"] = serde_json::json!({});
    for hook in config["webhooks"].as_array_mut().expect("webhooks") {
        hook["clientConfig"] = serde_json::json!({"url": url, "caBundle": ca});
    }
    serde_json::to_string(&config).expect("webhook JSON")
}

pub(crate) fn control(ns: &str) -> String {
    let _ = ns;
    format!(
        r##"
apiVersion: steward.dev/v1alpha1
kind: ControlOwnership
metadata: {{name: payments}}
spec:
  layer: Identity
  owner: {{name: payments-team, contact: "#payments-oncall"}}
  backupOwner: {{name: security-team}}
  approvers: [alice@example.com]
  review: {{interval: 30d, lastReviewed: "{}"}}
  exceptionPolicy: {{trustedAppliers: [{}]}}
  enforcement: Enforce
  workloadIdentities:
    - {{serviceAccount: api, task: Serves, rules: [{{apiGroups: [""], resources: [configmaps], verbs: [get]}}]}}
"##,
        from_now(-60),
        harness::ADMIN_USER
    )
}

pub(crate) fn exception(name: &str, approver: &str, starts: String, expires: String, tolerate: &str) -> String {
    format!(
        r#"
apiVersion: steward.dev/v1alpha1
kind: PolicyException
metadata: {{name: {name}}}
spec:
  control: payments
  ticket: SEC-1
  approver: {approver}
  reason: Migration
  startsAt: "{starts}"
  expiresAt: "{expires}"
  tolerate: [{tolerate}]
"#
    )
}

fn crb(name: &str, ns: &str) -> String {
    format!(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {name}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}}
subjects: [{{kind: ServiceAccount, name: api, namespace: {ns}}}]
"#
    )
}

/// A control plane of its own with a CA and serving certificate for the
/// webhook, and a free loopback address for it: (env, CA bundle, address).
pub(crate) fn webhook_env() -> (Env, String, String) {
    let env = harness::isolated();
    let ca = pki(&env.dir);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    (env, ca, format!("127.0.0.1:{port}"))
}

/// The CA of the client certificate the API server presents to webhooks.
pub(crate) fn client_ca(env: &Env) -> std::path::PathBuf {
    env.dir.join("pki/webhook-client-ca.crt")
}

/// Starts a controller serving the webhook on `addr` with the certificate
/// and key in `dir`, to callers with the API server's client certificate;
/// returns it with its metrics address, without waiting for it.
pub(crate) fn spawn_webhook_from(
    env: &Env,
    name: &str,
    addr: &str,
    dir: &std::path::Path,
) -> (std::process::Child, String) {
    let cert = dir.join("webhook.crt");
    let key = dir.join("webhook.key");
    env.spawn_controller(
        name,
        &[
            "--webhook-addr",
            addr,
            "--webhook-cert",
            cert.to_str().unwrap(),
            "--webhook-key",
            key.to_str().unwrap(),
            "--webhook-client-ca",
            client_ca(env).to_str().unwrap(),
            "--webhook-client-name",
            "kube-apiserver",
        ],
    )
}

fn spawn_webhook(env: &Env, name: &str, addr: &str) -> (std::process::Child, String) {
    spawn_webhook_from(env, name, addr, &env.dir)
}

/// Waits until the API server calls the webhook just registered while
/// nothing listens at its address: it loads the configuration
/// asynchronously, and until it calls the webhook (and, nobody listening,
/// refuses: failurePolicy Fail) an admission would prove nothing.
async fn unreachable_in_force(env: &Env, ns: &str) {
    let probe = exception("probe", "alice@example.com", from_now(-60), from_now(3600), "");
    eventually(OUTCOME, "the webhook configuration in force", || {
        let out = env.apply_with(ns, &probe, &["--dry-run=server"]);
        let ok = !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("failed calling webhook");
        async move { ok }
    })
    .await;
}

/// Starts a controller serving the webhook and waits until it is ready;
/// returns it with the instant it was seen ready.
pub(crate) fn start(env: &Env, addr: &str) -> (std::process::Child, jiff::Timestamp) {
    let (child, metrics) = spawn_webhook(env, "ctl-webhook", addr);
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_get(&format!("http://{metrics}/readyz")).is_none_or(|(c, _)| c != 200) {
        assert!(Instant::now() < deadline, "controller not ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, jiff::Timestamp::now())
}

#[tokio::test]
async fn admission_refuses_what_status_would_reject() {
    let (env, ca, addr) = webhook_env();
    let (mut ctl, _) = start(&env, &addr);
    env.apply_ok("default", &webhook_config(&format!("https://{addr}/validate"), &ca));
    let ns = env.namespace("admit").await;
    // The webhook's caches see the control before exceptions are judged.
    env.apply_ok(&ns, &control(&ns));
    let client = env.admin().await;
    let pes: Api<PolicyException> = Api::namespaced(client.clone(), &ns);
    let crbs: Api<ClusterRoleBinding> = Api::all(client.clone());

    // An approver the control does not allow: refused, naming the field.
    let bad = exception("bad", "mallory@example.com", from_now(-60), from_now(3600), "");
    // Until the API server has loaded the webhook configuration it does not
    // call the webhook, and until the webhook's cache holds the control it
    // answers ControlNotFound; wait for the verdict that needs both.
    let mut refused = String::new();
    eventually(OUTCOME, "refused for the approver", || {
        let out = env.apply(&ns, &bad);
        refused = String::from_utf8_lossy(&out.stderr).into_owned();
        let ok = !out.status.success() && refused.contains("ApproverNotAllowed");
        async move { ok }
    })
    .await;
    assert!(
        refused.contains("spec.approver") && refused.contains("ApproverNotAllowed"),
        "{refused}"
    );
    assert!(!env.apply_with(&ns, &bad, &["--dry-run=server"]).status.success());
    let good = exception("good", "alice@example.com", from_now(-60), from_now(3600), "");
    assert!(env.apply_with(&ns, &good, &["--dry-run=server"]).status.success());
    assert!(
        pes.get_opt("good").await.unwrap().is_none(),
        "dry run created the object"
    );

    // The shipped namespace selector (kubernetes.io/metadata.name, set by
    // the API server on every namespace) leaves the controller's own
    // namespace out: the same exception is admitted there.
    env.apply_ok("steward-system", &control("steward-system"));
    env.apply_ok("steward-system", &bad);

    // Already expired: admitted, then Expired.
    env.apply_ok(
        &ns,
        &exception("old", "alice@example.com", from_now(-7200), from_now(-3600), ""),
    );
    wait_for(&pes, "old", OUTCOME, "Expired", phase_is(Phase::Expired)).await;

    // A binding of cluster-admin to an enforced identity: refused.
    let name = format!("{ns}-admin");
    let out = env.apply(&ns, &crb(&name, &ns));
    assert!(!out.status.success(), "binding admitted");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("payments") && err.contains("payments-team") && err.contains("PolicyException"),
        "{err}"
    );
    // Tolerated by an Active exception: admitted.
    let tolerate = format!(
        "{{kind: ClusterRoleBinding, name: {name}, roleRef: {{kind: ClusterRole, name: cluster-admin}}, \
         subjects: [{{kind: ServiceAccount, name: api, namespace: {ns}}}]}}"
    );
    env.apply_ok(
        &ns,
        &exception("allow", "alice@example.com", from_now(-60), from_now(3600), &tolerate),
    );
    wait_for(&pes, "allow", OUTCOME, "Active", phase_is(Phase::Active)).await;
    eventually(OUTCOME, "tolerated binding admitted", || {
        let ok = env.apply(&ns, &crb(&name, &ns)).status.success();
        async move { ok }
    })
    .await;
    crbs.delete(&name, &Default::default()).await.unwrap();
    env.kubectl_ok(&["delete", "-n", &ns, "policyexception/allow"]);

    // Controller down: bindings fail open, and the drift is removed once it
    // is back (a RoleBinding of the control's namespace: ClusterRoleBindings
    // are refused at admission but never deleted).
    ctl.kill().unwrap();
    let _ = ctl.wait();
    let rbs: Api<RoleBinding> = Api::namespaced(client.clone(), &ns);
    env.apply_ok(&ns, &harness::admin_binding_yaml("sneaky", "api"));
    assert!(rbs.get_opt("sneaky").await.unwrap().is_some());
    let (mut ctl, ready) = start(&env, &addr);
    eventually(OUTCOME, "drift removed after restart", || async {
        rbs.get_opt("sneaky").await.unwrap().is_none()
    })
    .await;
    // How fast: from the instant the controller was seen ready to its
    // delete, as the API server recorded it.
    let removed = env
        .controller_write(OUTCOME, "the controller's delete", |w| {
            w.is("delete", "rolebindings", Some(&ns), "sneaky")
        })
        .await;
    let took = removed.completed.duration_since(ready);
    eprintln!("drift removed {took:#} after the restarted controller was ready");
    assert!(
        took <= jiff::SignedDuration::from_secs(2),
        "drift removed {took:#} after the restarted controller was ready"
    );
    let _ = ctl.kill();
    let _ = ctl.wait();
}

/// The validating webhooks leave the controller's own writes alone (their
/// matchConditions name its user, as the approvals webhook's does): with
/// the webhook unreachable, people's writes of Steward objects are refused
/// (failurePolicy Fail), and the controller still removes its finalizer,
/// so a control's deletion completes. (Nor does a flood that keeps the
/// webhook busy hold up the controller's writes.)
#[tokio::test]
async fn with_the_webhook_unreachable_the_controller_still_finalizes() {
    let (env, ca, addr) = webhook_env();
    let (mut ctl, _) = env.spawn_ready_controller("ctl-unreachable", &[]).await;
    let ns = env.namespace("unreachable").await;
    env.apply_ok(&ns, &control(&ns));
    let cos: Api<ControlOwnership> = Api::namespaced(env.admin().await, &ns);
    wait_for(&cos, "payments", OUTCOME, "Ready", condition_is("Ready", "True")).await;
    assert!(!cos.get("payments").await.expect("payments").finalizers().is_empty());

    // Registered, with nothing listening at its address.
    env.apply_ok("default", &webhook_config(&format!("https://{addr}/validate"), &ca));
    unreachable_in_force(&env, &ns).await;

    let out = env.kubectl(&["-n", &ns, "delete", "controlownership", "payments", "--wait=false"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    eventually(OUTCOME, "the control gone, its finalizer removed", || {
        let cos = cos.clone();
        async move { cos.get_opt("payments").await.is_ok_and(|co| co.is_none()) }
    })
    .await;
    let _ = ctl.kill();
    let _ = ctl.wait();
}

#[tokio::test]
async fn a_webhook_just_started_never_answers_from_an_empty_cache() {
    let (env, ca, addr) = webhook_env();
    // The control exists before the webhook starts, so any ControlNotFound
    // would be a verdict from a cache that had not listed yet.
    let ns = env.namespace("cold").await;
    env.apply_ok(&ns, &control(&ns));
    env.apply_ok("default", &webhook_config(&format!("https://{addr}/validate"), &ca));
    unreachable_in_force(&env, &ns).await;
    let good = exception("good", "alice@example.com", from_now(-60), from_now(3600), "");
    let (mut ctl, _) = spawn_webhook(&env, "ctl-cold", &addr);
    // Hammer it from the first instant: until it listens the API server
    // cannot reach it (failurePolicy Fail); after that every answer must be
    // the real verdict.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = env.apply_with(&ns, &good, &["--dry-run=server"]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !stderr.contains("ControlNotFound"),
            "answered from an empty cache: {stderr}"
        );
        if out.status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "never admitted: {stderr}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = ctl.kill();
    let _ = ctl.wait();
}
