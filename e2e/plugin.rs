//! `kubectl steward`: the binary found by kubectl's plugin mechanism as
//! `kubectl-steward` on PATH, summarizing live objects with `status`.

use std::process::Command;

use kube::api::Api;
use steward::api::{ControlOwnership, Phase, PolicyException};

use crate::harness::{self, OUTCOME, condition_is, control_yaml, from_now, phase_is, reviewed_recently, wait_for};

fn exception(name: &str, approver: &str, starts: Option<String>, expires: String) -> String {
    let starts = starts.map(|s| format!("  startsAt: \"{s}\"\n")).unwrap_or_default();
    harness::exception_yaml(name, "shop", approver, &expires, &starts)
}

#[tokio::test]
async fn kubectl_steward_status_summarizes_live_objects() {
    let env = harness::env();
    let ns = env.namespace("plugin").await;
    let rule = r#"{apiGroups: [""], resources: [configmaps], verbs: [get]}"#;
    env.apply_ok(
        &ns,
        &control_yaml("shop", "Audit", &reviewed_recently(), &[("api", rule)]),
    );
    env.apply_ok(&ns, &harness::admin_binding_yaml("legacy", "api"));
    env.apply_ok(&ns, &exception("active", "alice@example.com", None, from_now(3600)));
    env.apply_ok(
        &ns,
        &exception("pending", "alice@example.com", Some(from_now(3600)), from_now(7200)),
    );
    env.apply_ok(&ns, &exception("ending", "alice@example.com", None, from_now(2)));
    env.apply_ok(&ns, &exception("refused", "mallory@example.com", None, from_now(3600)));

    let client = env.admin().await;
    let controls: Api<ControlOwnership> = Api::namespaced(client.clone(), &ns);
    wait_for(&controls, "shop", OUTCOME, "Drifted", condition_is("Drifted", "True")).await;
    let pes: Api<PolicyException> = Api::namespaced(client, &ns);
    for (name, phase) in [
        ("active", Phase::Active),
        ("pending", Phase::Pending),
        ("ending", Phase::Expired),
        ("refused", Phase::Rejected),
    ] {
        wait_for(&pes, name, OUTCOME, &format!("{phase:?}"), phase_is(phase)).await;
    }

    // kubectl finds the binary as kubectl-steward on PATH.
    let bin = tempfile::tempdir().expect("temp dir");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_steward"), bin.path().join("kubectl-steward")).expect("symlink");
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default());
    let kubectl = |args: &[&str]| {
        let out = Command::new(&env.kubectl)
            .args(args)
            .env("PATH", &path)
            .env("KUBECONFIG", &env.admin_kubeconfig)
            .output()
            .expect("kubectl");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let plugins = kubectl(&["plugin", "list", "--name-only"]);
    assert!(plugins.lines().any(|l| l.trim() == "kubectl-steward"), "{plugins}");
    let help = kubectl(&["steward", "--help"]);
    assert!(help.contains("Usage: kubectl steward"), "{help}");

    let status = kubectl(&["steward", "status", "-n", &ns]);
    eprintln!("{status}");
    assert!(
        status.starts_with(&format!("Steward status, namespace {ns}, at ")),
        "{status}"
    );
    assert!(
        status.contains("Controls:   1 (1 ready, 0 invalid, 0 review overdue, 1 drifted)"),
        "{status}"
    );
    assert!(
        status.contains("Exceptions: 4 (1 Active, 1 Pending, 1 Expired, 1 Rejected)"),
        "{status}"
    );
    let section = |title: &str| -> Vec<String> {
        status
            .split(&format!("\n{title}:\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("no {title} section:\n{status}"))
            .lines()
            .take_while(|l| l.starts_with("  "))
            .map(str::to_string)
            .collect()
    };
    let expiring = section("Expiring within 7d");
    assert_eq!(expiring.len(), 2, "{expiring:?}");
    assert!(
        expiring[0].contains(&format!("{ns}/active")),
        "soonest first: {expiring:?}"
    );
    assert!(expiring[1].contains(&format!("{ns}/pending")), "{expiring:?}");
    let drift = section("Drift");
    assert!(
        drift.len() == 1 && drift[0].contains("api: RoleBinding/legacy -> ClusterRole/admin"),
        "{drift:?}"
    );
    let invalid = section("Invalid or rejected");
    assert!(
        invalid.len() == 1
            && invalid[0].contains(&format!("{ns}/refused"))
            && invalid[0].contains("ApproverNotAllowed"),
        "{invalid:?}"
    );
}

#[test]
fn the_krew_manifest_offers_every_platform() {
    let manifest: serde_json::Value =
        serde_yaml_ng::from_str(include_str!("../plugins/krew/steward.yaml")).expect("krew manifest YAML");
    assert_eq!(manifest["kind"], "Plugin");
    let mut platforms: Vec<String> = manifest["spec"]["platforms"]
        .as_array()
        .expect("platforms")
        .iter()
        .map(|p| {
            // krew runs `bin`: it must be the plugin's name.
            assert_eq!(p["bin"], "kubectl-steward", "{p}");
            let labels = &p["selector"]["matchLabels"];
            format!(
                "{}/{}",
                labels["os"].as_str().unwrap_or_default(),
                labels["arch"].as_str().unwrap_or_default()
            )
        })
        .collect();
    platforms.sort();
    assert_eq!(
        platforms,
        ["darwin/amd64", "darwin/arm64", "linux/amd64", "linux/arm64"]
    );
}
