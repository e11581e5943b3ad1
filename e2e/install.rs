//! Installing like users do: every object of `config/default` exists on the
//! API server, and two controllers with leader election hand over cleanly.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::Api;
use steward::api::{Phase, PolicyException};

use crate::harness::{self, OUTCOME, eventually, from_now, http_get, phase_is, wait_for};

/// The install command the README gives users, read from the README itself
/// so the two cannot drift apart.
fn readme_install_path() -> String {
    let readme = include_str!("../README.md");
    let section = readme
        .split("## Install on a real cluster")
        .nth(1)
        .expect("README has an install section");
    let line = section
        .lines()
        .find(|l| l.starts_with("kubectl apply -k "))
        .expect("README's install section has a kubectl apply -k command");
    line.trim_start_matches("kubectl apply -k ").trim().to_string()
}

#[tokio::test]
async fn the_readme_install_creates_every_object() {
    let env = harness::env();
    // The harness installed exactly this (harness::start).
    let path = readme_install_path();
    assert_eq!(path, "config/default", "the harness installs config/default");
    let dir = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    let built = std::process::Command::new(&env.kubectl)
        .args(["kustomize", &dir])
        .output()
        .unwrap();
    assert!(built.status.success());
    let docs: Vec<serde_json::Value> = serde_yaml_ng::Deserializer::from_slice(&built.stdout)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    assert!(docs.len() >= 15, "only {} objects in {path}", docs.len());
    // Every object is on the API server, at the version the install names.
    let out = env.kubectl_ok(&["get", "-k", &dir, "-o", "name"]);
    assert_eq!(out.lines().count(), docs.len(), "{out}");
    for kind in [
        "deployment.apps/steward",
        "poddisruptionbudget.policy/steward",
        "networkpolicy.networking.k8s.io/steward",
        "validatingadmissionpolicy.admissionregistration.k8s.io/steward-expired-exceptions-are-records",
        "validatingadmissionpolicybinding.admissionregistration.k8s.io/steward-expired-exceptions-are-records",
        "validatingadmissionpolicy.admissionregistration.k8s.io/steward-active-exceptions-are-kept",
        "validatingadmissionpolicybinding.admissionregistration.k8s.io/steward-active-exceptions-are-kept",
    ] {
        assert!(out.contains(kind), "{kind} missing:\n{out}");
    }
    let pdb = docs.iter().find(|d| d["kind"] == "PodDisruptionBudget").unwrap();
    assert_eq!(pdb["apiVersion"], "policy/v1");
    // Applying it again works and draws no warning from the API server
    // (deprecated API versions, unknown fields).
    let again = env.kubectl(&["apply", "-k", &dir]);
    assert!(again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(!stderr.contains("Warning"), "{stderr}");
    // The CRDs carry the CEL rules generated from the Rust types.
    let rules = env.kubectl_ok(&[
        "get",
        "crd/policyexceptions.steward.dev",
        "-o",
        "jsonpath={.spec.versions[0].schema.openAPIV3Schema.properties.spec.x-kubernetes-validations[*].message}",
    ]);
    assert!(rules.contains("(InvalidWindow)"), "{rules}");
}

/// The objects of `config/default`, as kustomize builds them.
fn installed(env: &harness::Env) -> Vec<serde_json::Value> {
    let dir = format!("{}/config/default", env!("CARGO_MANIFEST_DIR"));
    let built = std::process::Command::new(&env.kubectl)
        .args(["kustomize", &dir])
        .output()
        .unwrap();
    assert!(built.status.success());
    serde_yaml_ng::Deserializer::from_slice(&built.stdout)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

/// The rules of the installed ClusterRole `name`, as (groups, resources,
/// verbs).
fn rules_of(docs: &[serde_json::Value], name: &str) -> Vec<(Vec<String>, Vec<String>, Vec<String>)> {
    let role = docs
        .iter()
        .find(|d| d["kind"] == "ClusterRole" && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("ClusterRole {name} not installed"));
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (strings(&r["apiGroups"]), strings(&r["resources"]), strings(&r["verbs"])))
        .collect()
}

#[tokio::test]
async fn the_installed_rbac_is_least_privilege() {
    let env = harness::env();
    let docs = installed(env);
    // The grant ceiling is bound nowhere by the install: the platform team
    // binds it per namespace.
    for d in &docs {
        let kind = d["kind"].as_str().unwrap_or_default();
        assert!(
            !(kind.ends_with("Binding") && d["roleRef"]["name"] == "steward-grantable"),
            "the install binds the ceiling: {d}"
        );
    }
    // The shipped ceiling creates no workload and mints no token.
    let workloads = [
        "pods",
        "replicationcontrollers",
        "deployments",
        "statefulsets",
        "daemonsets",
        "replicasets",
        "jobs",
        "cronjobs",
        "serviceaccounts/token",
    ];
    for (_, resources, verbs) in rules_of(&docs, "steward-grantable") {
        let creates = verbs.iter().any(|v| v == "create" || v == "*");
        let made: Vec<&String> = resources.iter().filter(|r| workloads.contains(&r.as_str())).collect();
        assert!(!creates || made.is_empty(), "the ceiling may create {made:?}");
    }
    // The controller's own rules: no escalation verbs, no wildcard, no PUT
    // but on finalizers, no write to ClusterRoleBindings or ClusterRoles.
    for (groups, resources, verbs) in rules_of(&docs, "steward-controller") {
        for v in &verbs {
            assert!(
                !["escalate", "bind", "impersonate", "*"].contains(&v.as_str()),
                "{v} on {resources:?}"
            );
            assert!(
                v != "update" || resources.iter().all(|r| r.ends_with("/finalizers")),
                "update on {resources:?}"
            );
        }
        assert!(!groups.contains(&"*".into()) && !resources.contains(&"*".into()));
        if resources
            .iter()
            .any(|r| r == "clusterrolebindings" || r == "clusterroles")
        {
            assert_eq!(verbs, ["get", "list", "watch"], "{resources:?}");
        }
    }
    // The API server agrees: in a namespace not opted in the controller
    // holds nothing of the ceiling, and nowhere can it bind cluster-wide.
    let ns = env.bare_namespace("least").await;
    assert!(!env.controller_can(&ns, "get", "", "configmaps").await);
    let rbac = "rbac.authorization.k8s.io";
    for (verb, resource) in [
        ("create", "clusterrolebindings"),
        ("create", "clusterroles"),
        ("escalate", "roles"),
        ("bind", "roles"),
        ("bind", "clusterroles"),
    ] {
        assert!(
            !env.controller_can(&ns, verb, rbac, resource).await,
            "the controller may {verb} {resource}"
        );
    }
    assert!(
        !env.controller_can(&ns, "update", "steward.dev", "policyexceptions")
            .await
    );
    assert!(
        env.controller_can(&ns, "patch", "steward.dev", "policyexceptions")
            .await
    );
}

#[tokio::test]
async fn the_server_is_the_selected_release() {
    let env = harness::env();
    let out = env.kubectl_ok(&["version", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let server = v["serverVersion"]["gitVersion"].as_str().unwrap_or_default();
    assert_eq!(server, env.server_version);
    let minor = std::env::var("KUBERNETES").unwrap_or_else(|_| "1.37".into());
    assert!(
        server.starts_with(&format!("v{minor}.")),
        "server {server}, selected {minor}"
    );
    // kubectl is the same release as the server.
    assert_eq!(v["clientVersion"]["gitVersion"], server);
    eprintln!("e2e: kube-apiserver {server}");
}

fn leading(addr: &str) -> Option<bool> {
    let (code, body) = http_get(&format!("http://{addr}/metrics"))?;
    if code != 200 {
        return None;
    }
    Some(
        body.lines()
            .any(|l| l.starts_with("steward_leader ") && l.ends_with(" 1")),
    )
}

fn reconciles(addr: &str) -> f64 {
    http_get(&format!("http://{addr}/metrics"))
        .map(|(_, body)| {
            body.lines()
                .filter(|l| l.starts_with("steward_reconciles_total"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        })
        .unwrap_or(0.0)
}

#[tokio::test]
async fn one_leader_writes_and_a_standby_takes_over_within_the_lease() {
    // Renewed a third of it before it runs out: on a loaded test machine
    // (the whole suite runs at once on 2 cores) a slow renewal alone must
    // not hand it over before the kill below.
    const LEASE: u64 = 15;
    let env = harness::isolated();
    let lease_flag = LEASE.to_string();
    let args = ["--leader-elect", "--lease-duration", lease_flag.as_str()];
    let (mut a, a_addr) = env.spawn_controller("ctl-a", &args);
    let (mut b, b_addr) = env.spawn_controller("ctl-b", &args);
    // Generous: on a loaded machine several control planes start at once.
    let deadline = Instant::now() + Duration::from_secs(60);
    // Decided from the one reading that showed a single leader: a second
    // scrape could fail on a loaded machine and swap the roles.
    let a_leads = loop {
        let state = (leading(&a_addr), leading(&b_addr));
        match state {
            (Some(true), Some(false)) => break true,
            (Some(false), Some(true)) => break false,
            // Both candidates started together on a free lease: only one
            // may ever win it.
            (Some(true), Some(true)) => panic!("two leaders at once"),
            _ => {}
        }
        let log = |n: &str| std::fs::read_to_string(env.dir.join(format!("{n}.log"))).unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "not one leader within 60 s: {state:?}\nctl-a:\n{}\nctl-b:\n{}",
            log("ctl-a"),
            log("ctl-b")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (leader, leader_addr, follower_addr, follower_name) = if a_leads {
        (&mut a, &a_addr, &b_addr, "ctl-b")
    } else {
        (&mut b, &b_addr, &a_addr, "ctl-a")
    };

    let ns = env.namespace("leader").await;
    env.apply_ok(
        &ns,
        &format!(
            r#"
apiVersion: steward.dev/v1alpha1
kind: ControlOwnership
metadata: {{name: c}}
spec:
  layer: Identity
  owner: {{name: a}}
  backupOwner: {{name: b}}
  approvers: [alice]
  review: {{interval: 30d, lastReviewed: "{}"}}
  exceptionPolicy: {{trustedAppliers: [{}]}}
  workloadIdentities:
    - {{serviceAccount: api, task: Serves, rules: [{{apiGroups: [""], resources: [configmaps], verbs: [get]}}]}}
"#,
            from_now(-60),
            crate::harness::ADMIN_USER
        ),
    );
    // Rounded to the second: 7.5 to 8.5 s away, so a loaded machine has
    // ample time to grant it before the kill below, and it expires well
    // within the lease (15 s) after the kill, during the handover.
    let expires = from_now(8);
    env.apply_ok(
        &ns,
        &format!(
            r#"
apiVersion: steward.dev/v1alpha1
kind: PolicyException
metadata: {{name: handover}}
spec:
  control: c
  ticket: T-1
  approver: alice
  reason: Expires while the leader changes
  expiresAt: "{expires}"
  grant:
    serviceAccount: api
    rules: [{{apiGroups: [""], resources: [pods/log], verbs: [get]}}]
"#
        ),
    );
    let client = env.admin().await;
    let pes: Api<PolicyException> = Api::namespaced(client.clone(), &ns);
    wait_for(&pes, "handover", OUTCOME, "Active", phase_is(Phase::Active)).await;
    eventually(OUTCOME, "granted", || env.can(&ns, "api", "get", "", "pods/log")).await;
    assert!(reconciles(leader_addr) > 0.0, "the leader reconciled nothing");
    assert_eq!(
        reconciles(follower_addr),
        0.0,
        "the standby reconciled (the leader {} running)",
        if matches!(leader.try_wait(), Ok(None)) {
            "is still"
        } else {
            "is no longer"
        }
    );

    // Kill the leader before the exception expires.
    leader.kill().expect("SIGKILL the leader");
    let killed = jiff::Timestamp::now();
    let _ = leader.wait();
    let expires_at: jiff::Timestamp = expires.parse().unwrap();
    let expiry_after_kill = expires_at.duration_since(jiff::Timestamp::now());
    assert!(
        expiry_after_kill > jiff::SignedDuration::ZERO
            && expiry_after_kill < jiff::SignedDuration::from_secs(LEASE as i64),
        "the exception must expire during the handover ({expiry_after_kill:?} after the kill)"
    );

    let rbs: Api<RoleBinding> = Api::namespaced(client.clone(), &ns);
    eventually(
        Duration::from_secs(LEASE) + OUTCOME,
        "grant revoked by the new leader",
        || async { rbs.get_opt("steward-x:handover").await.unwrap().is_none() },
    )
    .await;
    // How fast: from the kill to the new leader's delete, as the API server
    // recorded it.
    let revoked = env
        .controller_write(OUTCOME, "the new leader's delete", |w| {
            w.is("delete", "rolebindings", Some(&ns), "steward-x:handover")
        })
        .await;
    let took = revoked.completed.duration_since(killed);
    eprintln!("revoked {took:#} after the leader was killed");
    assert!(
        took <= jiff::SignedDuration::from_secs(LEASE as i64 + 2),
        "revoked {took:#} after the leader died (lease {LEASE} s)"
    );
    eventually(OUTCOME, "denied after the handover", || async {
        !env.can(&ns, "api", "get", "", "pods/log").await
    })
    .await;
    assert_eq!(leading(follower_addr), Some(true));
    let lease: Lease = Api::namespaced(client, "steward-system")
        .get("steward-controller")
        .await
        .unwrap();
    assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some(follower_name));
    // The status is written after the revocation.
    wait_for(&pes, "handover", OUTCOME, "Expired", phase_is(Phase::Expired)).await;
    let mut other = if a_leads { b } else { a };
    let _ = other.kill();
    let _ = other.wait();
}
