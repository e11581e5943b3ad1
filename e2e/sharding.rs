//! Sharding: three replicas with `--shards 2` split the namespaces; each
//! shard is written by exactly the replica holding its Lease, and a holder
//! killed just before an expiry in its shard is replaced within the lease
//! duration, while the other shard's expiry lands on time.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::Api;
use steward::api::{Phase, PolicyException};
use steward::shard::shard_of;

use crate::harness::{self, Env, OUTCOME, eventually, from_now, phase_is, reviewed_recently, wait_for};

const SHARDS: u32 = 2;
/// Long enough that a slow renewal on a loaded machine (the whole suite
/// runs at once on two cores) does not hand a shard over by itself.
const LEASE: u64 = 10;
const REPLICAS: [&str; 3] = ["shard-r0", "shard-r1", "shard-r2"];

fn lease_name(shard: u32) -> String {
    format!("steward-controller-shard-{shard}")
}

/// The holder of each shard's Lease, once every shard has one.
async fn holders(leases: &Api<Lease>) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for shard in 0..SHARDS {
        let lease = leases.get_opt(&lease_name(shard)).await.ok()??;
        out.push(lease.spec?.holder_identity?);
    }
    Some(out)
}

/// Who reported each Event of `reason` in `ns` (events.k8s.io/v1
/// `reportingInstance`: the replica's identity).
fn reporters(env: &Env, ns: &str, reason: &str) -> Vec<String> {
    let out = env.kubectl_ok(&["get", "events.events.k8s.io", "-n", ns, "-o", "json"]);
    let list: serde_json::Value = serde_json::from_str(&out).expect("event list");
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["reason"] == reason)
        .filter_map(|e| e["reportingInstance"].as_str().map(str::to_string))
        .collect()
}

/// Successful creates, patches and updates of RoleBindings in `ns` by the
/// controller identity (every replica's).
fn binding_writes(env: &Env, ns: &str) -> usize {
    env.controller_writes()
        .iter()
        .filter(|w| {
            w.namespace.as_deref() == Some(ns) && w.resource == "rolebindings" && w.verb != "delete" && w.code < 300
        })
        .count()
}

fn exception_yaml(name: &str, expires: &str, resource: &str) -> String {
    let grant = format!(
        "  grant:\n    serviceAccount: api\n    rules: [{{apiGroups: [\"\"], resources: [{resource}], verbs: [get]}}]\n"
    );
    harness::exception_yaml(name, "c", "alice@example.com", expires, &grant)
}

#[tokio::test]
async fn two_shards_over_three_replicas_each_written_by_its_holder_and_taken_over_within_the_lease() {
    let env = harness::isolated();
    // One opted-in namespace in each shard.
    let mut of_shard: Vec<Option<String>> = vec![None; SHARDS as usize];
    while of_shard.iter().any(Option::is_none) {
        let ns = env.namespace("shard").await;
        let slot = &mut of_shard[shard_of(&ns, SHARDS) as usize];
        if slot.is_none() {
            *slot = Some(ns);
        }
    }
    let namespaces: Vec<String> = of_shard.into_iter().flatten().collect();

    let lease_flag = LEASE.to_string();
    let args = ["--shards", "2", "--lease-duration", lease_flag.as_str()];
    let mut replicas: Vec<(std::process::Child, String)> =
        REPLICAS.iter().map(|name| env.spawn_controller(name, &args)).collect();
    let client = env.admin().await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "steward-system");
    // Staggered candidacy: a replica stands for shards other than its
    // preferred one half a lease per step later.
    let deadline = Instant::now() + Duration::from_secs(60) + Duration::from_secs(LEASE);
    let held = loop {
        if let Some(h) = holders(&leases).await {
            break h;
        }
        assert!(
            Instant::now() < deadline,
            "not every shard held:\n{}",
            REPLICAS
                .iter()
                .map(|n| std::fs::read_to_string(env.dir.join(format!("{n}.log"))).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("shard holders: {held:?}");
    for h in &held {
        assert!(REPLICAS.contains(&h.as_str()), "unknown holder {h}");
    }

    for ns in &namespaces {
        env.apply_ok(
            ns,
            &harness::control_yaml(
                "c",
                "Enforce",
                &reviewed_recently(),
                &[("api", r#"{apiGroups: [""], resources: [configmaps], verbs: [get]}"#)],
            ),
        );
    }
    // Rounded to the second, 19.5 to 20.5 s away: granted well before the
    // kill below (three seconds before it) even on a loaded machine.
    let expires = from_now(20);
    for ns in &namespaces {
        env.apply_ok(ns, &exception_yaml("ending", &expires, "pods/log"));
        env.apply_ok(ns, &exception_yaml("lasting", &from_now(3600), "services"));
    }
    for ns in &namespaces {
        let pes: Api<PolicyException> = Api::namespaced(client.clone(), ns);
        for name in ["ending", "lasting"] {
            wait_for(&pes, name, OUTCOME, "Active", phase_is(Phase::Active)).await;
        }
        eventually(OUTCOME, "granted", || env.can(ns, "api", "get", "", "pods/log")).await;
    }

    // Each namespace written by its shard's holder only: the Granted Events
    // name it, and each grant was created once.
    for (shard, ns) in namespaces.iter().enumerate() {
        // Events follow the status they report: wait for them.
        eventually(OUTCOME, "Granted Events", || {
            let some = !reporters(&env, ns, "Granted").is_empty();
            async move { some }
        })
        .await;
        let granted = reporters(&env, ns, "Granted");
        assert!(
            granted.iter().all(|r| *r == held[shard]),
            "shard {shard} ({ns}) held by {} but Events from {granted:?}",
            held[shard]
        );
        // The control's binding and the two grants, each written once.
        // The audit log may trail the watch that showed Active.
        eventually(OUTCOME, "the RoleBinding writes audited", || {
            let seen = binding_writes(&env, ns) >= 3;
            async move { seen }
        })
        .await;
        assert_eq!(binding_writes(&env, ns), 3, "{ns}: RoleBindings written more than once");
    }

    // Kill the holder of shard 0 three seconds before `ending` expires, so
    // the expiry falls due while its shard has no live holder.
    let expires_at: jiff::Timestamp = expires.parse().expect("a timestamp");
    let until_kill = expires_at.duration_since(jiff::Timestamp::now()) - jiff::SignedDuration::from_secs(3);
    if let Ok(wait) = Duration::try_from(until_kill) {
        tokio::time::sleep(wait).await;
    }
    let victim = held[0].clone();
    let index = REPLICAS.iter().position(|r| *r == victim).expect("a replica");
    let (child, _) = &mut replicas[index];
    child.kill().expect("SIGKILL the holder");
    let killed = jiff::Timestamp::now();
    let _ = child.wait();
    let left = expires_at.duration_since(killed);
    assert!(
        left > jiff::SignedDuration::ZERO && left < jiff::SignedDuration::from_secs(LEASE as i64),
        "the exception must expire during the takeover ({left:#} after the kill)"
    );

    for (shard, ns) in namespaces.iter().enumerate() {
        let rbs: Api<RoleBinding> = Api::namespaced(client.clone(), ns);
        eventually(Duration::from_secs(LEASE) + OUTCOME, "grant revoked", || async {
            rbs.get_opt("steward-x:ending").await.expect("read").is_none()
        })
        .await;
        let revoked = env
            .controller_write(OUTCOME, "the revocation", |w| {
                w.is("delete", "rolebindings", Some(ns), "steward-x:ending")
            })
            .await;
        let late = revoked.completed.duration_since(expires_at);
        eprintln!("shard {shard}: revoked {late:#} after expiresAt");
        if held[shard] == victim {
            // Taken over: at most the lease after the kill, plus the lease
            // library's random pause of up to a second before it takes an
            // expired Lease, and the new holder's reconcile of the shard.
            let after_kill = revoked.completed.duration_since(killed);
            eprintln!("shard {shard}: revoked {after_kill:#} after its holder was killed");
            assert!(
                after_kill <= jiff::SignedDuration::from_secs(LEASE as i64 + 3),
                "shard {shard} revoked {after_kill:#} after its holder died (lease {LEASE} s)"
            );
        } else {
            // Its holder is alive: on time, as without sharding.
            assert!(
                late <= jiff::SignedDuration::from_secs(2),
                "shard {shard}, whose holder lives, revoked {late:#} late"
            );
        }
        assert!(late >= jiff::SignedDuration::ZERO, "revoked {late:#} before expiresAt");
        eventually(OUTCOME, "denied after expiry", || async {
            !env.can(ns, "api", "get", "", "pods/log").await
        })
        .await;
        // The other grant lives on through the takeover.
        assert!(
            env.can(ns, "api", "get", "", "services").await,
            "{ns}: the lasting grant went"
        );
        let pes: Api<PolicyException> = Api::namespaced(client.clone(), ns);
        wait_for(&pes, "ending", OUTCOME, "Expired", phase_is(Phase::Expired)).await;
    }

    // A live replica holds the dead one's shard now, and wrote its expiry.
    let now_held = holders(&leases).await.expect("both shards held");
    assert_ne!(now_held[0], victim, "shard 0 still held by the dead replica");
    eventually(OUTCOME, "the Expired Event", || {
        let some = !reporters(&env, &namespaces[0], "Expired").is_empty();
        async move { some }
    })
    .await;
    let expired_by = reporters(&env, &namespaces[0], "Expired");
    assert!(
        !expired_by.is_empty() && expired_by.iter().all(|r| *r == now_held[0]),
        "shard 0's expiry reported by {expired_by:?}, held by {}",
        now_held[0]
    );
    // Nothing was written again through the takeover.
    for ns in &namespaces {
        assert_eq!(
            binding_writes(&env, ns),
            3,
            "{ns}: RoleBindings written again after the takeover"
        );
    }
    for (child, _) in &mut replicas {
        let _ = child.kill();
        let _ = child.wait();
    }
}
