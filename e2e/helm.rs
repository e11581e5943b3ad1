//! The Helm chart (`charts/steward`): it renders exactly what `config/`
//! installs, and on a real API server it installs, upgrades and uninstalls
//! the way the README says, with the controller running as the chart's
//! service account; the release manifest (`make release-manifests`)
//! installs every object of `config/default`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::harness::{self, OUTCOME, eventually, http_get};

const RELEASE: &str = "steward";
const NAMESPACE: &str = "steward-system";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn chart() -> String {
    repo().join("charts/steward").display().to_string()
}

/// The helm `make deps` built (e2e/helm.sh).
fn helm_bin() -> PathBuf {
    let out = Command::new("bash")
        .arg(repo().join("e2e/helm.sh"))
        .arg("bin")
        .output()
        .expect("e2e/helm.sh");
    let bin = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(bin.is_file(), "{} missing: run `make deps`", bin.display());
    bin
}

/// The kubectl of the selected release (for `kubectl kustomize`).
fn kubectl_bin() -> PathBuf {
    let out = Command::new("bash")
        .arg(repo().join("e2e/control-plane.sh"))
        .arg("bindir")
        .output()
        .expect("e2e/control-plane.sh");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("kubectl")
}

/// A field (`jsonpath`) of the installed Deployment.
fn deployment(env: &harness::Env, jsonpath: &str) -> String {
    env.kubectl_ok(&[
        "get",
        "-n",
        NAMESPACE,
        "deployment/steward",
        "-o",
        &format!("jsonpath={jsonpath}"),
    ])
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// helm `args`, against the control plane of `env` if given.
fn helm(env: Option<&harness::Env>, args: &[&str]) -> Output {
    let mut cmd = Command::new(helm_bin());
    cmd.args(args);
    // Helm's own caches and config, away from the user's.
    let home = std::env::temp_dir().join("steward-e2e-helm-home");
    cmd.env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"));
    if let Some(env) = env {
        cmd.env("KUBECONFIG", &env.admin_kubeconfig);
    }
    cmd.output().expect("helm")
}

fn documents(yaml: &str) -> Vec<serde_json::Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| serde::Deserialize::deserialize(d).expect("YAML document"))
        .filter(|d: &serde_json::Value| !d.is_null())
        .collect()
}

/// `helm template` of the chart as released in steward-system, CRDs
/// included, with `values` (`key=value`, as `--set`).
fn template(values: &[&str]) -> Vec<serde_json::Value> {
    let chart = chart();
    let mut args = vec!["template", RELEASE, chart.as_str(), "-n", NAMESPACE, "--include-crds"];
    for v in values {
        args.extend(["--set", v]);
    }
    documents(&ok(helm(None, &args), "helm template"))
}

/// `kubectl kustomize` of a directory of config/.
fn kustomize(dir: &str) -> Vec<serde_json::Value> {
    let out = Command::new(kubectl_bin())
        .arg("kustomize")
        .arg(repo().join(dir))
        .output()
        .expect("kubectl kustomize");
    documents(&ok(out, "kubectl kustomize"))
}

/// The labels Helm's convention adds to every object; config/ has none of them.
const HELM_LABELS: [&str; 4] = [
    "helm.sh/chart",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
];

/// Objects by kind/namespace/name, without Helm's labels. The Namespace
/// is left out: the chart is installed into it (`--create-namespace`), as
/// Helm charts are, rather than creating it.
fn comparable(docs: Vec<serde_json::Value>) -> BTreeMap<String, serde_json::Value> {
    docs.into_iter()
        .filter(|d| d["kind"] != "Namespace")
        .map(|mut d| {
            if let Some(labels) = d["metadata"]["labels"].as_object_mut() {
                for l in HELM_LABELS {
                    labels.remove(l);
                }
            }
            let key = format!(
                "{}/{}/{}",
                d["kind"].as_str().unwrap_or_default(),
                d["metadata"]["namespace"].as_str().unwrap_or_default(),
                d["metadata"]["name"].as_str().unwrap_or_default()
            );
            (key, d)
        })
        .collect()
}

fn assert_same(chart: Vec<serde_json::Value>, config: Vec<serde_json::Value>, what: &str) {
    let (chart, config) = (comparable(chart), comparable(config));
    let names = |m: &BTreeMap<String, serde_json::Value>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&chart), names(&config), "{what}: not the same objects");
    for (key, want) in &config {
        let got = &chart[key];
        if let Some((path, got, want)) = first_difference(got, want, String::new()) {
            panic!("{what}: {key} differs at {path}:\nchart:  {got}\nconfig: {want}");
        }
    }
}

/// Where two JSON values first differ, and the two values there.
fn first_difference(
    a: &serde_json::Value,
    b: &serde_json::Value,
    path: String,
) -> Option<(String, serde_json::Value, serde_json::Value)> {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => x.keys().chain(y.keys()).find_map(|k| {
            first_difference(
                &x.get(k).cloned().unwrap_or(Value::Null),
                &y.get(k).cloned().unwrap_or(Value::Null),
                format!("{path}.{k}"),
            )
        }),
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(x, y, format!("{path}[{i}]"))),
        // kustomize writes 10.0 as 10.
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => None,
        _ if a == b => None,
        _ => Some((path, a.clone(), b.clone())),
    }
}

#[test]
fn the_chart_lints_and_renders_what_config_installs() {
    let chart = chart();
    ok(helm(None, &["lint", "--strict", &chart]), "helm lint");
    assert_same(template(&[]), kustomize("config/default"), "defaults vs config/default");
    assert_same(
        template(&["webhook.enabled=true"]),
        kustomize("config/webhook"),
        "webhook.enabled vs config/webhook",
    );
    assert_same(
        template(&["webhook.enabled=true", "webhook.clientAuth.mode=unauthenticated"]),
        kustomize("config/webhook-managed"),
        "webhook.clientAuth.mode=unauthenticated vs config/webhook-managed",
    );
    // The alerts: the chart's PrometheusRule is config/prometheus's.
    let rules: Vec<serde_json::Value> = template(&["metrics.prometheusRule.enabled=true"])
        .into_iter()
        .filter(|d| d["kind"] == "PrometheusRule")
        .collect();
    assert_same(rules, kustomize("config/prometheus"), "the PrometheusRule");
    // A ServiceMonitor only when asked for, scraping the metrics Service.
    assert!(!template(&[]).iter().any(|d| d["kind"] == "ServiceMonitor"));
    let monitor = template(&["metrics.serviceMonitor.enabled=true"])
        .into_iter()
        .find(|d| d["kind"] == "ServiceMonitor")
        .expect("a ServiceMonitor");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    // A provided certificate instead of cert-manager: no Issuer, the CA given.
    let provided = template(&[
        "webhook.enabled=true",
        "webhook.certificate.source=secret",
        "webhook.certificate.caBundle=Q0E=",
    ]);
    assert!(
        !provided
            .iter()
            .any(|d| d["kind"] == "Certificate" || d["kind"] == "Issuer")
    );
    let hooks = provided
        .iter()
        .find(|d| d["kind"] == "ValidatingWebhookConfiguration")
        .expect("the validating webhook");
    assert_eq!(hooks["webhooks"][0]["clientConfig"]["caBundle"], "Q0E=");
    assert!(hooks["metadata"]["annotations"].is_null(), "{hooks}");
    // Another ceiling and namespace scope reach the controller's flags and RBAC.
    let other = template(&[
        "grantCeiling.create=false",
        "grantCeiling.name=platform-ceiling",
        "watchNamespace=shop",
    ]);
    assert!(!other.iter().any(|d| d["metadata"]["name"] == "steward-grantable"));
    let args = other
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .map(|d| d["spec"]["template"]["spec"]["containers"][0]["args"].clone())
        .expect("the Deployment");
    for flag in ["--grant-ceiling=platform-ceiling", "--namespace=shop"] {
        assert!(
            args.as_array().into_iter().flatten().any(|a| a == flag),
            "{flag}: {args}"
        );
    }
    let role = other
        .iter()
        .find(|d| d["kind"] == "ClusterRole" && d["metadata"]["name"] == "steward-controller")
        .expect("the controller's role");
    assert!(
        role.to_string().contains(r#""resourceNames":["platform-ceiling"]"#),
        "{role}"
    );
}

#[test]
fn the_chart_carries_the_repos_crds_and_alerts() {
    // Helm installs crds/ of the chart; `make crds` writes both, and the
    // unit test in src/crds.rs holds both to the Rust types.
    for name in [
        "controlownerships.steward.dev.yaml",
        "policyexceptions.steward.dev.yaml",
    ] {
        let repo_crd = std::fs::read_to_string(repo().join("crds").join(name)).expect("crds/");
        let chart_crd = std::fs::read_to_string(repo().join("charts/steward/crds").join(name)).expect("chart crds/");
        assert_eq!(
            chart_crd, repo_crd,
            "charts/steward/crds/{name} differs from crds/{name}: run `make crds`"
        );
    }
    let rules = std::fs::read_to_string(repo().join("config/prometheus/rules.yaml")).expect("rules");
    let chart_rules = std::fs::read_to_string(repo().join("charts/steward/files/rules.yaml")).expect("chart rules");
    assert_eq!(
        chart_rules, rules,
        "charts/steward/files/rules.yaml differs from config/prometheus/rules.yaml"
    );
}

/// The README's uninstall commands after `helm uninstall`, in order.
fn readme_uninstall_commands() -> Vec<Vec<String>> {
    let readme = include_str!("../README.md");
    let section = readme
        .split("### Uninstall")
        .nth(1)
        .expect("README has an uninstall section");
    let section = section.split("\n##").next().unwrap_or_default();
    let commands: Vec<Vec<String>> = section
        .lines()
        .filter(|l| l.starts_with("kubectl delete "))
        .map(|l| l.split_whitespace().skip(1).map(str::to_string).collect())
        .collect();
    assert!(
        !commands.is_empty(),
        "no kubectl delete in the README's uninstall section"
    );
    assert!(
        section.contains("helm uninstall steward -n steward-system"),
        "{section}"
    );
    commands
}

fn write_values(env: &harness::Env, name: &str, yaml: &str) -> String {
    let path = env.dir.join(name);
    std::fs::write(&path, yaml).expect("values file");
    path.display().to_string()
}

fn control(ns: &str, rules: &str) -> String {
    format!(
        r#"
apiVersion: steward.dev/v1alpha1
kind: ControlOwnership
metadata: {{name: shop, namespace: {ns}}}
spec:
  layer: Identity
  owner: {{name: shop-team}}
  backupOwner: {{name: security-team}}
  approvers: [alice@example.com]
  review: {}
  workloadIdentities:
    - serviceAccount: api
      task: Serves the shop
      rules: [{rules}]
"#,
        harness::reviewed_recently()
    )
}

const CONFIGMAPS: &str = r#"{apiGroups: [""], resources: [configmaps], verbs: [get]}"#;
const JOBS: &str = r#"{apiGroups: [batch], resources: [jobs], verbs: [create]}"#;

#[tokio::test]
async fn install_upgrade_and_uninstall_on_the_api_server() {
    let env = harness::bare();
    // The controller keeps PolicyReports where the API exists; the
    // uninstall must remove them too.
    env.install_policy_report_crd();
    let ns = env.bare_namespace("shop").await;
    let chart = chart();

    // A wrong value fails at install, before anything is created.
    let wrong = helm(
        Some(&env),
        &[
            "install",
            RELEASE,
            &chart,
            "-n",
            NAMESPACE,
            "--create-namespace",
            "--set",
            "replicas=two",
        ],
    );
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(!wrong.status.success() && stderr.contains("/replicas"), "{stderr}");
    assert!(
        !env.kubectl(&["get", "-n", NAMESPACE, "deployment/steward"])
            .status
            .success()
    );

    // Install: the namespace opted in through the chart.
    let v1 = write_values(
        &env,
        "values-1.yaml",
        &format!("grantCeiling:\n  namespaces: [{ns}]\nlogFormat: text\n"),
    );
    ok(
        helm(
            Some(&env),
            &[
                "install",
                RELEASE,
                &chart,
                "-n",
                NAMESPACE,
                "--create-namespace",
                "-f",
                &v1,
            ],
        ),
        "helm install",
    );
    let manifest = ok(
        helm(Some(&env), &["get", "manifest", RELEASE, "-n", NAMESPACE]),
        "helm get manifest",
    );
    let rendered = documents(&manifest);
    assert!(rendered.len() >= 20, "only {} objects", rendered.len());
    let manifest_file = env.dir.join("release-manifest.yaml");
    std::fs::write(&manifest_file, &manifest).expect("manifest file");
    let manifest_path = manifest_file.display().to_string();
    let on_server = env.kubectl_ok(&["get", "-f", &manifest_path, "-o", "name"]);
    assert_eq!(on_server.lines().count(), rendered.len(), "{on_server}");
    env.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd/controlownerships.steward.dev",
        "crd/policyexceptions.steward.dev",
        "--timeout=60s",
    ]);

    // The controller as the chart's Deployment runs it: the local binary,
    // its service account's identity and RBAC, the Deployment's flags.
    let args: Vec<String> = serde_json::from_str(&deployment(&env, "{.spec.template.spec.containers[0].args}"))
        .expect("the Deployment's args");
    assert_eq!(args.first().map(String::as_str), Some("run"), "{args:?}");
    let flags: Vec<&str> = args[1..].iter().map(String::as_str).collect();
    let (mut ctl, addr) = env.spawn_ready_controller("helm-steward", &flags).await;
    let (code, _) = http_get(&format!("http://{addr}/readyz")).expect("/readyz");
    assert_eq!(code, 200);

    env.apply_ok(&ns, &control(&ns, CONFIGMAPS));
    eventually(OUTCOME, "the identity's Role in force", || {
        env.can(&ns, "api", "get", "", "configmaps")
    })
    .await;
    let role = env.kubectl_ok(&[
        "get",
        "-n",
        &ns,
        "role/steward:shop:api",
        "-o",
        "jsonpath={.metadata.labels}",
    ]);
    assert!(role.contains(r#""app.kubernetes.io/managed-by":"steward""#), "{role}");

    // Upgrade: one replica, three shards, and a ceiling that lets teams
    // create Jobs.
    let v2 = write_values(
        &env,
        "values-2.yaml",
        &format!(
            r#"replicas: 1
logFormat: text
leaderElection: {{shards: 3}}
grantCeiling:
  namespaces: [{ns}]
  rules:
    - {{apiGroups: [""], resources: [configmaps], verbs: [get, list, watch]}}
    - {{apiGroups: [batch], resources: [jobs], verbs: [get, list, watch, create]}}
"#
        ),
    );
    assert!(!env.can(&ns, "api", "create", "batch", "jobs").await);
    ok(
        helm(Some(&env), &["upgrade", RELEASE, &chart, "-n", NAMESPACE, "-f", &v2]),
        "helm upgrade",
    );
    let replicas = deployment(&env, "{.spec.replicas}");
    assert_eq!(replicas, "1");
    let args = deployment(&env, "{.spec.template.spec.containers[0].args}");
    assert!(args.contains("--shards=3"), "{args}");
    env.apply_ok(&ns, &control(&ns, &format!("{CONFIGMAPS}, {JOBS}")));
    eventually(OUTCOME, "the new ceiling's rule granted", || {
        env.can(&ns, "api", "create", "batch", "jobs")
    })
    .await;

    // Uninstall as the README says: helm, which stops the controller's
    // pods, then the commands for what Steward wrote itself.
    ok(
        helm(Some(&env), &["uninstall", RELEASE, "-n", NAMESPACE]),
        "helm uninstall",
    );
    ctl.kill().expect("stop the controller");
    let _ = ctl.wait();
    for command in readme_uninstall_commands() {
        let args: Vec<&str> = command.iter().map(String::as_str).collect();
        let out = env.kubectl(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Only report APIs this cluster does not serve may be missing.
        assert!(
            out.status.success() || stderr.contains("doesn't have a resource type"),
            "kubectl {command:?}: {stderr}"
        );
    }
    // Nothing Helm installed is left ...
    let left = env.kubectl_ok(&["get", "-f", &manifest_path, "--ignore-not-found", "-o", "name"]);
    assert_eq!(left.trim(), "", "left after helm uninstall");
    // ... nor anything Steward wrote, but the records and their CRDs.
    let left = env.kubectl_ok(&[
        "get",
        "roles,rolebindings,policyreports.wgpolicyk8s.io",
        "-A",
        "-l",
        "app.kubernetes.io/managed-by=steward",
        "-o",
        "name",
    ]);
    assert_eq!(left.trim(), "", "Steward's objects left");
    let left = env.kubectl_ok(&[
        "get",
        "secrets,leases,serviceaccounts,roles,rolebindings",
        "-n",
        NAMESPACE,
        "-o",
        "name",
    ]);
    assert_eq!(left.trim(), "", "left in {NAMESPACE}");
    let left = env.kubectl_ok(&[
        "get",
        "clusterroles,clusterrolebindings,validatingadmissionpolicies,validatingadmissionpolicybindings",
        "-l",
        "app.kubernetes.io/name=steward",
        "-o",
        "name",
    ]);
    assert_eq!(left.trim(), "", "cluster-scoped objects left");
    env.kubectl_ok(&[
        "get",
        "crd/controlownerships.steward.dev",
        "crd/policyexceptions.steward.dev",
    ]);
    env.kubectl_ok(&["get", "-n", &ns, "controlownership/shop"]);
    // No grant Steward made survives: the authorizer denies what the
    // control granted.
    eventually(OUTCOME, "the grants denied after the uninstall", || async {
        !env.can(&ns, "api", "get", "", "configmaps").await && !env.can(&ns, "api", "create", "batch", "jobs").await
    })
    .await;
    let releases = ok(helm(Some(&env), &["list", "-A", "-q"]), "helm list");
    assert_eq!(releases.trim(), "");
}

#[tokio::test]
async fn the_release_manifest_installs_every_object() {
    let dist = tempfile::Builder::new()
        .prefix("steward-dist-")
        .tempdir()
        .expect("temp dir");
    let out = Command::new("make")
        .args(["-s", "-C", env!("CARGO_MANIFEST_DIR"), "release-manifests"])
        .arg(format!("DIST={}", dist.path().display()))
        .output()
        .expect("make");
    ok(out, "make release-manifests");
    let install = std::fs::read_to_string(dist.path().join("install.yaml")).expect("install.yaml");
    // The same objects as `kubectl apply -k config/default`, Namespace included.
    let docs = documents(&install);
    let names = |docs: &[serde_json::Value]| {
        let mut n: Vec<String> = docs
            .iter()
            .map(|d| {
                format!(
                    "{}/{}",
                    d["kind"].as_str().unwrap_or_default(),
                    d["metadata"]["name"].as_str().unwrap_or_default()
                )
            })
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(&docs), names(&kustomize("config/default")));
    for name in [
        "controlownerships.steward.dev.yaml",
        "policyexceptions.steward.dev.yaml",
    ] {
        let shipped = std::fs::read_to_string(dist.path().join("crds").join(name)).expect("dist crds/");
        assert_eq!(
            shipped,
            std::fs::read_to_string(repo().join("crds").join(name)).expect("crds/")
        );
    }
    assert!(dist.path().join("steward-0.1.0.tgz").is_file(), "the packaged chart");

    // Applied to an API server, every object exists.
    let env = harness::bare();
    let path = dist.path().join("install.yaml").display().to_string();
    env.kubectl_ok(&["apply", "--server-side", "-f", &path]);
    let on_server = env.kubectl_ok(&["get", "-f", &path, "-o", "name"]);
    assert_eq!(on_server.lines().count(), docs.len(), "{on_server}");
}
