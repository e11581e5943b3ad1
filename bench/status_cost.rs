//! `cargo bench --bench steward -- status-cost`: what a PolicyException
//! status write costs the API server, by server-side apply (what Steward
//! sends) and by a JSON merge patch of the same body, on a control plane of
//! its own. Two thousand exceptions, a thousand written each way, four
//! rounds (Active, Expired, Active, Expired), 64 in flight, as the admin.
//! It answers whether a cheaper kind of write would bring a thousand
//! simultaneous expiries' `Expired` sooner.

use std::time::Instant;

use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use steward::api::PolicyException;

use crate::scale::{all_ok, granted_exception};
use crate::{CONCURRENCY, harness};

const N: usize = 1000;

/// A status shaped like the controller's for an exception in `phase`.
fn status(phase: &str, now: &str) -> Value {
    let active = phase == "Active";
    let condition = |kind: &str, on: bool, reason: &str| {
        json!({
            "type": kind, "status": if on { "True" } else { "False" }, "reason": reason,
            "message": format!("{phase}: pods/log get for ServiceAccount api until 2026-12-31T00:00:00Z"),
            "lastTransitionTime": now, "observedGeneration": 1,
        })
    };
    json!({
        "observedGeneration": 1, "phase": phase, "expiresAt": "2026-12-31T00:00:00Z",
        "grantedRole": if active { json!("steward-x-bench") } else { Value::Null },
        "conditions": [
            condition("Ready", true, phase), condition("Valid", true, "Valid"),
            condition("Active", active, phase), condition("Approved", true, "Approved"),
            condition("Expired", !active, phase), condition("ExpiringSoon", false, "NotSoon"),
        ],
        "approval": {"requestedBy": "admin", "approvedBy": "alice", "required": 1},
        "history": [{"time": now, "reason": phase, "message": "granted to api"}],
    })
}

/// Writes `body` as the status of exceptions `range`, by `method`.
async fn write(api: &Api<PolicyException>, range: std::ops::Range<usize>, method: &str, body: &Value) {
    futures::stream::iter(range)
        .map(|i| async move {
            let name = format!("x-{i}");
            let written = if method == "apply" {
                let p = json!({"apiVersion": "steward.dev/v1alpha1", "kind": "PolicyException", "status": body});
                api.patch_status(&name, &PatchParams::apply("steward").force(), &Patch::Apply(p))
                    .await
            } else {
                let params = PatchParams {
                    field_manager: Some("steward".into()),
                    ..Default::default()
                };
                api.patch_status(&name, &params, &Patch::Merge(json!({"status": body})))
                    .await
            };
            written.expect("a status write");
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
}

/// With `STEWARD_BENCH_PPROF=dir`, a two-second CPU profile of the API
/// server from the start of a round, written to `dir/name` (read it with
/// `go tool pprof -top <kube-apiserver> <file>`).
fn profile(env: &harness::Env, name: &str) -> Option<std::thread::JoinHandle<()>> {
    let dir = std::path::PathBuf::from(std::env::var_os("STEWARD_BENCH_PPROF")?);
    let mut cmd = std::process::Command::new(&env.kubectl);
    cmd.arg("--kubeconfig")
        .arg(&env.admin_kubeconfig)
        .args(["get", "--raw", "/debug/pprof/profile?seconds=2"]);
    let path = dir.join(name);
    Some(std::thread::spawn(move || {
        let out = harness::run(&mut cmd);
        std::fs::write(&path, out.stdout).expect("write the profile");
    }))
}

pub async fn run() {
    let env = harness::isolated();
    let admin = env.admin().await;
    let ns = env.namespace("status-cost").await;
    let api: Api<PolicyException> = Api::namespaced(admin, &ns);
    let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24);
    all_ok("create exceptions", 0..2 * N, |i| {
        let (api, pe) = (api.clone(), granted_exception(&format!("x-{i}"), "c", "api", expires));
        async move { api.create(&PostParams::default(), &pe).await.map(|_| ()) }
    })
    .await;
    let apiserver = crate::apiserver_pid(&env);
    let now = jiff::Timestamp::now().to_string();
    println!(
        "status-cost — {N} PolicyException status writes each way, {CONCURRENCY} in flight, kube-apiserver {}:",
        env.server_version
    );
    for (round, phase) in ["Active", "Expired", "Active", "Expired"].into_iter().enumerate() {
        let body = status(phase, &now);
        for (method, range) in [("apply", 0..N), ("merge", N..2 * N)] {
            let cpu = crate::cpu_seconds(apiserver);
            let t = Instant::now();
            let profile = profile(&env, &format!("round{}-{method}.pprof", round + 1));
            write(&api, range, method, &body).await;
            if let Some(p) = profile {
                p.join().expect("the profile's thread");
            }
            println!(
                "  round {} (to {phase}), {method:<5}: {:.2} s, kube-apiserver CPU {:.2} s",
                round + 1,
                t.elapsed().as_secs_f64(),
                crate::cpu_seconds(apiserver) - cpu
            );
        }
    }
}
