//! Hostile tenants: names Steward would use cannot be made to collide, fit
//! at any length, and a name someone else holds is reported on the object
//! that wanted it.

use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams};
use steward::api::{ControlOwnership, Phase, PolicyException};
use steward::decide::rbac::{exception_name, identity_name};

use super::{control, controller_healthy, exception, tenant_admin};
use crate::harness::{self, OUTCOME, condition, condition_is, env, eventually, phase_is, wait_for};

/// A DNS subdomain of exactly 253 characters starting with `prefix`.
fn longest_name(prefix: &str) -> String {
    let label = |c: char, n: usize| std::iter::repeat_n(c, n).collect::<String>();
    let mut name = format!("{prefix}{}", label('a', 63 - prefix.len()));
    name.push_str(&format!(".{}.{}.{}", label('b', 63), label('c', 63), label('d', 61)));
    assert_eq!(name.len(), 253);
    name
}

#[tokio::test]
async fn identities_of_look_alike_controls_and_of_the_longest_names_each_get_their_own_pair() {
    let env = env();
    let ns = env.namespace("names").await;
    // `a-b`/`c` and `a`/`b-c` were the same name under a hyphenated scheme;
    // in Enforce they would replace each other's pair forever.
    let get = r#"{apiGroups: [""], resources: [configmaps], verbs: [get]}"#;
    let list = r#"{apiGroups: [""], resources: [pods], verbs: [list]}"#;
    let review = harness::reviewed_recently();
    env.apply_ok(&ns, &harness::control_yaml("a-b", "Enforce", &review, &[("c", get)]));
    env.apply_ok(&ns, &harness::control_yaml("a", "Enforce", &review, &[("b-c", list)]));
    // Names of 253 characters: the pair's name is longer than any object
    // name, which RBAC allows.
    let (long_control, long_sa) = (longest_name("control"), longest_name("sa"));
    env.apply_ok(
        &ns,
        &harness::control_yaml(&long_control, "Audit", &review, &[(&long_sa, get)]),
    );

    let client = env.admin().await;
    let cos: Api<ControlOwnership> = Api::namespaced(client.clone(), &ns);
    for name in ["a-b", "a", long_control.as_str()] {
        wait_for(&cos, name, OUTCOME, "Ready", condition_is("Ready", "True")).await;
    }
    let roles: Api<Role> = Api::namespaced(client.clone(), &ns);
    for (control, sa) in [("a-b", "c"), ("a", "b-c"), (long_control.as_str(), long_sa.as_str())] {
        let name = identity_name(control, sa);
        assert!(roles.get_opt(&name).await.unwrap().is_some(), "no Role {name}");
    }
    eventually(OUTCOME, "each identity holds exactly its own rules", || async {
        env.can(&ns, "c", "get", "", "configmaps").await
            && !env.can(&ns, "c", "list", "", "pods").await
            && env.can(&ns, "b-c", "list", "", "pods").await
            && !env.can(&ns, "b-c", "get", "", "configmaps").await
            && env.can(&ns, &long_sa, "get", "", "configmaps").await
    })
    .await;
    // Settled, not looping on a refused write.
    env.controller_quiet_in(&ns, std::time::Duration::from_secs(3), OUTCOME)
        .await;
    controller_healthy(env);
}

#[tokio::test]
async fn a_squatted_grant_name_is_reported_on_the_exception_and_the_grant_follows_once_freed() {
    let env = env();
    let ns = env.namespace("squat-x").await;
    tenant_admin(env, &ns);
    let grant = exception_name("debug");
    // The attacker takes the grant's name first, bound to everything they
    // hold.
    let squat = format!(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: "{grant}"}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: tenant-admin}}
subjects: [{{kind: ServiceAccount, name: other}}]
"#
    );
    let out = env.apply_with(&ns, &squat, &["--as=mallory"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    env.apply_ok(&ns, &control("payments", "Audit", &["api"]));
    let rule = r#"{apiGroups: [""], resources: [configmaps], verbs: [list]}"#;
    env.apply_ok(&ns, &exception("debug", "payments", "alice@example.com", rule));

    let client = env.admin().await;
    let pes: Api<PolicyException> = Api::namespaced(client.clone(), &ns);
    let pe = wait_for(
        &pes,
        "debug",
        OUTCOME,
        "GrantNotApplied",
        |p: Option<&PolicyException>| {
            p.and_then(|p| condition(p, "Ready"))
                .is_some_and(|c| c["reason"] == "GrantNotApplied")
        },
    )
    .await;
    let status = pe.status.as_ref().expect("status");
    assert_eq!(status.phase, Some(Phase::Active), "the window decides the phase");
    assert_eq!(status.granted_role, None, "claims a grant it does not have");
    let ready = condition(&pe, "Ready").expect("Ready");
    assert_eq!(ready["status"], "False");
    assert!(ready["message"].as_str().is_some_and(|m| m.contains(&grant)), "{ready}");
    assert_eq!(condition(&pe, "Stalled").expect("Stalled")["status"], "True");
    env.wait_for_events(&ns, &["GrantNotApplied"]).await;
    // The squat is neither overwritten nor deleted (the control audits),
    // and `api` gets nothing through it.
    let rbs: Api<RoleBinding> = Api::namespaced(client.clone(), &ns);
    assert_eq!(rbs.get(&grant).await.unwrap().role_ref.name, "tenant-admin");
    assert!(!env.can(&ns, "api", "list", "", "configmaps").await);
    controller_healthy(env);

    // Once the name is free, the grant follows without waiting for a retry.
    rbs.delete(&grant, &DeleteParams::default()).await.unwrap();
    wait_for(&pes, "debug", OUTCOME, "Ready", condition_is("Ready", "True")).await;
    wait_for(&pes, "debug", OUTCOME, "granted", |p: Option<&PolicyException>| {
        phase_is(Phase::Active)(p)
            && p.and_then(|p| p.status.as_ref())
                .is_some_and(|s| s.granted_role.as_deref() == Some(grant.as_str()))
    })
    .await;
    eventually(OUTCOME, "api holds the grant", || async {
        env.can(&ns, "api", "list", "", "configmaps").await
    })
    .await;
    controller_healthy(env);
}
