//! The controller's own blast radius: it holds the grant ceiling only in
//! namespaces the platform team opted in, cannot opt one in itself, and can
//! create no workload anywhere (so no Job running as a service account of
//! kube-system). A namespace not opted in gets nothing, says why on each
//! identity, and is retried with backoff, not in a hot loop. Taking the
//! opt-in away stops new grants and never the revocation of old ones.

use std::time::Duration;

use k8s_openapi::api::rbac::v1::Role;
use kube::api::Api;
use steward::api::{ControlOwnership, Phase, PolicyException};

use super::{control, controller_healthy, exception, identity, tenant_with_payments};
use crate::harness::{Env, OUTCOME, condition, env, eventually, from_now, phase_is, wait_for};

/// What the controller must never create: anything that runs a container
/// (and so could run as any service account of its namespace), or a token.
const WORKLOADS: [(&str, &str); 9] = [
    ("", "pods"),
    ("", "replicationcontrollers"),
    ("apps", "deployments"),
    ("apps", "statefulsets"),
    ("apps", "daemonsets"),
    ("apps", "replicasets"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
    ("", "serviceaccounts/token"),
];

/// The controller's refused writes of `name`'s Role in `ns`, as the audit
/// log shows them, once there are at least `n`.
async fn refused_role_writes(env: &Env, ns: &str, name: &str, n: usize) -> Vec<jiff::Timestamp> {
    let mut times = Vec::new();
    eventually(OUTCOME, &format!("{n} refused writes of {name}"), || {
        times = env
            .controller_writes()
            .iter()
            .filter(|w| {
                (w.is("create", "roles", Some(ns), name) || w.is("patch", "roles", Some(ns), name)) && w.code == 403
            })
            .map(|w| w.received)
            .collect();
        let ok = times.len() >= n;
        async move { ok }
    })
    .await;
    times
}

#[tokio::test]
async fn a_namespace_gets_nothing_until_the_platform_opts_it_in_and_the_controller_creates_no_workload() {
    let env = env();
    let ns = env.bare_namespace("optin").await;
    env.apply_ok(&ns, &control("payments", "Audit", &["api"]));
    let client = env.admin().await;
    let cos: Api<ControlOwnership> = Api::namespaced(client.clone(), &ns);
    let co = wait_for(
        &cos,
        "payments",
        OUTCOME,
        "api not applied",
        |c: Option<&ControlOwnership>| c.and_then(|c| identity(c, "api")).is_some_and(|i| i.problem.is_some()),
    )
    .await;
    // The identity says why, and what the platform team binds.
    let problem = identity(&co, "api").and_then(|i| i.problem.clone()).unwrap_or_default();
    for part in [
        ns.as_str(),
        "does not hold the grant ceiling",
        "steward-grant-ceiling",
        "steward-grantable",
    ] {
        assert!(problem.contains(part), "{part} missing: {problem}");
    }
    let ready = condition(&co, "Ready").expect("Ready");
    assert_eq!(ready["status"], "False", "{ready}");
    assert_eq!(ready["reason"], "IdentityNotApplied", "{ready}");
    let stalled = condition(&co, "Stalled").expect("Stalled: a person must act");
    assert_eq!(stalled["status"], "True", "{stalled}");
    let roles: Api<Role> = Api::namespaced(client.clone(), &ns);
    assert!(roles.get_opt("steward:payments:api").await.unwrap().is_none());
    // Retried with backoff, not in a hot loop: the refused attempts spread
    // out (500 ms doubling; the first two may be back to back, the second
    // triggered by the failure's own status write). The control's are
    // counted before its exception exists: each change of an exception
    // legitimately wakes its control again.
    let backs_off = |name: &'static str, ns: String| async move {
        let times = refused_role_writes(env, &ns, name, 5).await;
        let spread = times[4].duration_since(times[0]);
        assert!(
            spread >= jiff::SignedDuration::from_secs(3),
            "{name}: 5 attempts within {spread:#}: {times:?}"
        );
    };
    backs_off("steward:payments:api", ns.clone()).await;
    // An exception there grants nothing either.
    let rule = r#"{apiGroups: [""], resources: [configmaps], verbs: [list]}"#;
    env.apply_ok(&ns, &exception("debug", "payments", "alice@example.com", rule));

    // The controller cannot opt the namespace in itself (RBAC's escalation
    // check: it does not hold the ceiling there), nor kube-system.
    for target in [ns.as_str(), "kube-system"] {
        let out = env.kubectl(&[
            "--as=system:serviceaccount:steward-system:steward",
            "-n",
            target,
            "create",
            "rolebinding",
            "steward-grant-ceiling",
            "--clusterrole=steward-grantable",
            "--serviceaccount=steward-system:steward",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("forbidden"), "{target}: {err}");
    }

    backs_off("steward-x:debug", ns.clone()).await;
    controller_healthy(env);

    // The platform team opts the namespace in: both are served at the next
    // retry (backoff reaches at most a minute).
    env.opt_in(&ns).await;
    let served = Duration::from_secs(60) + OUTCOME;
    wait_for(&cos, "payments", served, "Ready", |c: Option<&ControlOwnership>| {
        c.and_then(|c| condition(c, "Ready"))
            .is_some_and(|r| r["status"] == "True")
    })
    .await;
    let pes: Api<PolicyException> = Api::namespaced(client.clone(), &ns);
    wait_for(&pes, "debug", served, "Active", phase_is(Phase::Active)).await;
    eventually(OUTCOME, "both grants in force", || async {
        env.can(&ns, "api", "get", "", "configmaps").await && env.can(&ns, "api", "list", "", "configmaps").await
    })
    .await;

    // Not in kube-system, nor where it holds the ceiling, may the
    // controller create a workload or mint a token.
    for target in ["kube-system", ns.as_str()] {
        for (group, resource) in WORKLOADS {
            assert!(
                !env.controller_can(target, "create", group, resource).await,
                "the controller may create {resource} in {target}"
            );
        }
    }
    let out = env.kubectl(&[
        "auth",
        "can-i",
        "--as=system:serviceaccount:steward-system:steward",
        "create",
        "jobs",
        "-n",
        "kube-system",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no");
    // It does hold the ceiling where opted in, and only there.
    assert!(env.controller_can(&ns, "get", "", "configmaps").await);
    assert!(!env.controller_can("kube-system", "get", "", "configmaps").await);
    controller_healthy(env);
}

/// The tenant admin deletes the platform's opt-in from their namespace while
/// their exception is Active, so that the controller, no longer holding the
/// ceiling there, could not take the grant away at its expiry. Revocation
/// needs no opt-in: the controller deletes its own bindings through its own
/// ClusterRole (which is why its RBAC delete is not per namespace), so the
/// grant still ends within a second of `expiresAt`.
#[tokio::test]
async fn taking_the_opt_in_away_keeps_no_grant_past_its_expiry() {
    let env = env();
    let ns = env.namespace("optout").await;
    let client = tenant_with_payments(env, &ns, &["api"]).await;
    let mut exc = crate::exceptions::good("debug");
    // Long enough for a loaded machine to grant it and opt out before it
    // ends (asserted below): each of those steps takes a second or two.
    const WINDOW: u64 = 45;
    exc.expires = from_now(WINDOW as i64);
    let expires_at: jiff::Timestamp = exc.expires.parse().unwrap();
    env.apply_ok(&ns, &exc.yaml());
    let pes: Api<PolicyException> = Api::namespaced(client.clone(), &ns);
    wait_for(&pes, "debug", OUTCOME, "Active", phase_is(Phase::Active)).await;
    eventually(OUTCOME, "the grant in force", || {
        env.can(&ns, "api", "get", "", "pods/log")
    })
    .await;

    env.kubectl_ok(&[
        "--as=mallory",
        "-n",
        &ns,
        "delete",
        "rolebinding",
        "steward-grant-ceiling",
    ]);
    eventually(OUTCOME, "the controller no longer holding the ceiling", || async {
        !env.controller_can(&ns, "get", "", "configmaps").await
    })
    .await;
    assert!(
        jiff::Timestamp::now() < expires_at,
        "the opt-out landed after the expiry it was meant to outlast"
    );

    let revoked = env
        .controller_write(OUTCOME + Duration::from_secs(WINDOW), "the grant's deletion", |w| {
            w.is("delete", "rolebindings", Some(&ns), "steward-x:debug")
        })
        .await;
    assert!(
        (200..300).contains(&revoked.code),
        "the revocation was refused: {}",
        revoked.code
    );
    let late = revoked.completed.duration_since(expires_at);
    assert!(
        revoked.received >= expires_at && late <= jiff::SignedDuration::from_secs(1),
        "grant deleted {late:#} after expiresAt"
    );
    eventually(OUTCOME, "denied after expiry", || async {
        !env.can(&ns, "api", "get", "", "pods/log").await
    })
    .await;
    wait_for(&pes, "debug", OUTCOME, "Expired", phase_is(Phase::Expired)).await;
    controller_healthy(env);
}
