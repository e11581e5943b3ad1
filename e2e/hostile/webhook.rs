//! Hostile callers of the admission webhook: any pod can open a connection
//! to its port, so it serves only the API server (client certificate), and
//! its certificate is renewed under it without a restart. And the platform
//! narrowing the grant ceiling is told, before it lands, which controls lose
//! their grants. Each test has a control plane of its own: the webhook
//! judges every namespace of it, and the ceiling is narrowed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::admission;
use crate::harness::{Env, OUTCOME, eventually, from_now, http_get};

fn openssl(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A certificate `name`.crt/.key in `dir`, signed by the test's webhook CA
/// (`ca.crt`, `ca.key` in `dir`), with `ext` as its extensions.
fn issue(dir: &Path, name: &str, cn: &str, ext: &str) {
    let (key, csr, crt, extfile) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.crt"),
        format!("{name}.ext"),
    );
    std::fs::write(dir.join(&extfile), ext).expect("ext");
    openssl(
        dir,
        &[
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", cn, "-keyout", &key, "-out", &csr,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &extfile,
            "-out",
            &crt,
        ],
    );
}

fn serial_of(dir: &Path, cert: &str) -> String {
    let out = openssl(dir, &["x509", "-in", cert, "-noout", "-serial"]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A webhook certificate volume laid out as the kubelet lays out a Secret
/// (`webhook.crt` → `..data/webhook.crt`, `..data` → `..vN`), so a renewal
/// is the kubelet's atomic symlink swap.
struct Volume {
    dir: PathBuf,
    version: u32,
}

impl Volume {
    fn new(dir: PathBuf, cert: &Path, key: &Path) -> Self {
        std::fs::create_dir_all(&dir).expect("volume dir");
        for f in ["webhook.crt", "webhook.key"] {
            std::os::unix::fs::symlink(format!("..data/{f}"), dir.join(f)).expect("symlink");
        }
        let mut v = Volume { dir, version: 0 };
        v.publish(cert, key);
        v
    }

    fn publish(&mut self, cert: &Path, key: &Path) {
        self.version += 1;
        let name = format!("..v{}", self.version);
        let version = self.dir.join(&name);
        std::fs::create_dir(&version).expect("version dir");
        std::fs::copy(cert, version.join("webhook.crt")).expect("cert");
        std::fs::copy(key, version.join("webhook.key")).expect("key");
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&name, &tmp).expect("symlink");
        std::fs::rename(&tmp, self.dir.join("..data")).expect("swap");
    }
}

/// The serial of the certificate the webhook at `addr` serves now, asked
/// with the API server's client certificate.
fn served_serial(env: &Env, addr: &str) -> Option<String> {
    let pki = env.dir.join("pki");
    let script = format!(
        "openssl s_client -connect {addr} -CAfile '{ca}' -cert '{crt}' -key '{key}' </dev/null 2>/dev/null \
         | openssl x509 -noout -serial",
        ca = env.dir.join("ca.crt").display(),
        crt = pki.join("webhook-client.crt").display(),
        key = pki.join("webhook-client.key").display(),
    );
    let out = Command::new("sh").args(["-c", &script]).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// An AdmissionReview of an exception, POSTed to the webhook by curl with
/// `client` (a cert and key) or no client certificate: the HTTP status, or
/// None when the connection was refused.
fn post_review(env: &Env, addr: &str, client: Option<(&Path, &Path)>) -> Option<u16> {
    let review = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "1",
            "kind": {"group": "steward.dev", "version": "v1alpha1", "kind": "PolicyException"},
            "resource": {"group": "steward.dev", "version": "v1alpha1", "resource": "policyexceptions"},
            "name": "probe", "namespace": "default", "operation": "CREATE",
            "userInfo": {"username": "mallory"},
            "object": {
                "apiVersion": "steward.dev/v1alpha1", "kind": "PolicyException",
                "metadata": {"name": "probe", "namespace": "default"},
                "spec": {"control": "payments", "ticket": "SEC-1", "approver": "alice@example.com",
                         "reason": "probe", "expiresAt": from_now(3600)}
            }
        }
    });
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10"])
        .arg("--cacert")
        .arg(env.dir.join("ca.crt"))
        .args(["-H", "Content-Type: application/json", "-d", &review.to_string()]);
    if let Some((crt, key)) = client {
        cmd.arg("--cert").arg(crt).arg("--key").arg(key);
    }
    let out = cmd.arg(format!("https://{addr}/validate")).output().expect("curl");
    let code: u16 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
    (out.status.success() && code != 0).then_some(code)
}

/// Waits until the API server's calls get the webhook's verdict: an
/// exception with an approver the control does not allow is refused.
async fn refusal_still_happens(env: &Env, ns: &str) {
    let bad = admission::exception("bad", "mallory@example.com", from_now(-60), from_now(3600), "");
    eventually(OUTCOME, "the API server's call refused the exception", || {
        let out = env.apply(ns, &bad);
        let ok = !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("ApproverNotAllowed");
        async move { ok }
    })
    .await;
}

fn healthy(metrics: &str) {
    let health = http_get(&format!("http://{metrics}/healthz"));
    assert!(
        health.as_ref().is_some_and(|(c, b)| *c == 200 && b == "ok"),
        "/healthz: {health:?}"
    );
}

#[tokio::test]
async fn only_the_api_server_can_call_the_webhook_and_a_renewed_certificate_is_served_without_a_restart() {
    let (env, ca, addr) = admission::webhook_env();
    let volume_dir = env.dir.join("tls");
    let mut volume = Volume::new(
        volume_dir.clone(),
        &env.dir.join("webhook.crt"),
        &env.dir.join("webhook.key"),
    );
    let (mut ctl, metrics) = admission::spawn_webhook_from(&env, "ctl-hostile-webhook", &addr, &volume_dir);
    env.apply_ok(
        "default",
        &admission::webhook_config(&format!("https://{addr}/validate"), &ca),
    );
    let ns = env.namespace("caller").await;
    env.apply_ok(&ns, &admission::control(&ns));
    refusal_still_happens(&env, &ns).await;

    // Any pod: no client certificate, or one the webhook's own serving CA
    // signed for a client. Refused before a verdict.
    assert_eq!(
        post_review(&env, &addr, None),
        None,
        "served a caller without a certificate"
    );
    issue(
        &env.dir,
        "intruder",
        "/CN=kube-apiserver",
        "subjectAltName=DNS:kube-apiserver\nbasicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    );
    let intruder = (env.dir.join("intruder.crt"), env.dir.join("intruder.key"));
    assert_eq!(
        post_review(&env, &addr, Some((&intruder.0, &intruder.1))),
        None,
        "served a certificate from another CA"
    );
    // The same request with the API server's certificate is answered: the
    // refusals above are the authentication, not the request.
    let pki = env.dir.join("pki");
    let apiserver = (pki.join("webhook-client.crt"), pki.join("webhook-client.key"));
    assert_eq!(post_review(&env, &addr, Some((&apiserver.0, &apiserver.1))), Some(200));

    // Renewal: a new certificate from the same CA, published as the kubelet
    // publishes a renewed Secret; served without a restart.
    let old = serial_of(&env.dir, "webhook.crt");
    assert_eq!(served_serial(&env, &addr).as_deref(), Some(old.as_str()));
    issue(
        &env.dir,
        "renewed",
        "/CN=127.0.0.1",
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    );
    let renewed = serial_of(&env.dir, "renewed.crt");
    assert_ne!(old, renewed);
    volume.publish(&env.dir.join("renewed.crt"), &env.dir.join("renewed.key"));
    let took = eventually(OUTCOME, "the renewed certificate served", || {
        let ok = served_serial(&env, &addr).as_deref() == Some(renewed.as_str());
        async move { ok }
    })
    .await;
    eprintln!("renewed certificate served {took:?} after the swap");
    assert!(
        ctl.try_wait().expect("controller").is_none(),
        "the controller restarted"
    );
    // And the API server, which trusts the CA, still gets verdicts.
    refusal_still_happens(&env, &ns).await;
    healthy(&metrics);
    let _ = ctl.kill();
    let _ = ctl.wait();
}

#[tokio::test]
async fn narrowing_the_ceiling_names_the_controls_that_lose_their_grants_before_it_lands() {
    let (env, ca, addr) = admission::webhook_env();
    let (mut ctl, _) = admission::start(&env, &addr);
    env.apply_ok(
        "default",
        &admission::webhook_config(&format!("https://{addr}/validate"), &ca),
    );
    let ns = env.namespace("ceiling").await;
    // `api` may get configmaps, which the shipped ceiling allows.
    env.apply_ok(&ns, &admission::control(&ns));
    let narrowed = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: steward-grantable
  labels: {app.kubernetes.io/name: steward}
rules:
  - apiGroups: [apps]
    resources: [deployments]
    verbs: [get, list, watch]
"#;
    let named = format!("ControlOwnership {ns}/payments would become Invalid");
    // Server-side dry run first: the warning comes before anything changes
    // (and once the API server calls the webhook, whose cache holds the
    // control).
    let mut stderr = String::new();
    eventually(OUTCOME, "the warning on a dry run", || {
        let out = env.apply_with("default", narrowed, &["--dry-run=server"]);
        stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let ok = out.status.success() && stderr.contains(&named);
        async move { ok }
    })
    .await;
    assert!(
        stderr.contains("Warning:") && stderr.contains("[api]") && stderr.contains("RuleOutsideCeiling"),
        "{stderr}"
    );
    // The real change: admitted (the platform decides), with the warning.
    let out = env.apply("default", narrowed);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(&named), "{stderr}");
    // After it, the control says so too: Invalid, with a Rejected Event.
    env.wait_for_events(&ns, &["Rejected"]).await;
    // A real change that removes nothing more (one more read rule) reaches
    // the webhook and warns of nothing.
    let widened = format!("{narrowed}  - apiGroups: [apps]\n    resources: [statefulsets]\n    verbs: [get]\n");
    let out = env.apply("default", &widened);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.contains("configured"),
        "{stdout}{stderr}"
    );
    assert!(!stderr.contains("Warning:"), "{stderr}");
    let _ = ctl.kill();
    let _ = ctl.wait();
}

/// `kubectl kustomize` of a directory of `config/`, as JSON documents.
fn built(dir: &str) -> Vec<serde_json::Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/control-plane.sh");
    let bin = Command::new("bash")
        .arg(&script)
        .arg("bindir")
        .output()
        .expect("bindir");
    let kubectl = PathBuf::from(String::from_utf8_lossy(&bin.stdout).trim()).join("kubectl");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config").join(dir);
    let out = Command::new(kubectl)
        .arg("kustomize")
        .arg(path)
        .output()
        .expect("kubectl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_yaml_ng::Deserializer::from_slice(&out.stdout)
        .map(|d| serde::Deserialize::deserialize(d).expect("YAML"))
        .collect()
}

fn find<'a>(docs: &'a [serde_json::Value], kind: &str, name: &str) -> Option<&'a serde_json::Value> {
    docs.iter().find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
}

fn args(docs: &[serde_json::Value]) -> Vec<String> {
    let deployment = find(docs, "Deployment", "steward").expect("Deployment");
    serde_json::from_value(deployment["spec"]["template"]["spec"]["containers"][0]["args"].clone()).expect("args")
}

/// Ports a NetworkPolicy opens, each with whether it names its sources.
fn opened(policy: &serde_json::Value) -> Vec<(i64, bool)> {
    let rules = policy["spec"]["ingress"].as_array().cloned().unwrap_or_default();
    rules
        .iter()
        .flat_map(|r| {
            let restricted = r["from"].as_array().is_some_and(|f| !f.is_empty());
            let ports = r["ports"].as_array().cloned().unwrap_or_default();
            ports
                .into_iter()
                .map(move |p| (p["port"].as_i64().unwrap_or(0), restricted))
        })
        .collect()
}

#[test]
fn the_webhook_port_is_open_only_to_authenticated_callers_or_to_the_listed_addresses() {
    // config/default: no webhook; the metrics port only from scraper
    // namespaces.
    let default = built("default");
    assert!(args(&default).iter().all(|a| !a.starts_with("--webhook")));
    let policy = find(&default, "NetworkPolicy", "steward").expect("NetworkPolicy");
    assert_eq!(opened(policy), vec![(8080, true)]);
    assert!(find(&default, "NetworkPolicy", "steward-webhook").is_none());

    // config/webhook: client certificates required, so 9443 is open.
    let webhook = built("webhook");
    assert!(args(&webhook).iter().any(|a| a.starts_with("--webhook-client-ca=")));
    assert!(!args(&webhook).contains(&"--webhook-unauthenticated".to_string()));
    let policy = find(&webhook, "NetworkPolicy", "steward-webhook").expect("webhook NetworkPolicy");
    assert_eq!(opened(policy), vec![(9443, false)]);
    // The ceiling's webhook names the ClusterRole the controller watches by
    // default, and never blocks the platform.
    let config = find(&webhook, "ValidatingWebhookConfiguration", "steward").expect("webhooks");
    let ceiling = config["webhooks"]
        .as_array()
        .and_then(|w| w.iter().find(|h| h["name"] == "ceiling.steward.dev"))
        .expect("ceiling webhook");
    assert_eq!(ceiling["failurePolicy"], "Ignore");
    assert!(
        ceiling["matchConditions"][0]["expression"]
            .as_str()
            .is_some_and(|e| e.contains("'steward-grantable'"))
    );

    // config/webhook-managed: unauthenticated, so 9443 only from an ipBlock.
    let managed = built("webhook-managed");
    assert!(args(&managed).contains(&"--webhook-unauthenticated".to_string()));
    assert!(args(&managed).iter().all(|a| !a.starts_with("--webhook-client-ca")));
    let policy = find(&managed, "NetworkPolicy", "steward-webhook").expect("webhook NetworkPolicy");
    assert_eq!(opened(policy), vec![(9443, true)]);
    assert!(policy["spec"]["ingress"][0]["from"][0]["ipBlock"]["cidr"].is_string());
}
