//! The process's caches, read from the API server's audit log: each process
//! keeps exactly one WATCH per kind open (the controllers, the webhook and
//! the PolicyReport writer share them; a watch the server ends is replaced,
//! never doubled), and `/readyz` answers 200 only once every cache has
//! listed, on the leader and on a standby alike.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use crate::harness::{self, Env, http_get};

/// The kinds every process caches, by resource name.
const CACHED: [&str; 6] = [
    "policyexceptions",
    "controlownerships",
    "rolebindings",
    "clusterrolebindings",
    "roles",
    "clusterroles",
];

fn audit_events(env: &Env, identity: &str, verb: &str) -> Vec<serde_json::Value> {
    let agent = format!("({identity})");
    let log = std::fs::read_to_string(&env.audit_log).unwrap_or_default();
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["verb"] == verb)
        .filter(|e| e["userAgent"].as_str().is_some_and(|a| a.ends_with(&agent)))
        .collect()
}

/// Completed requests of `verb` per resource made by the process whose
/// User-Agent names `identity`.
fn requests_by(env: &Env, identity: &str, verb: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for e in audit_events(env, identity, verb)
        .iter()
        .filter(|e| e["stage"] == "ResponseComplete")
    {
        let resource = e["objectRef"]["resource"].as_str().unwrap_or_default().to_string();
        *out.entry(resource).or_insert(0) += 1;
    }
    out
}

/// The watches of the process named `identity`, per resource: when each
/// began and, if it has, ended.
fn watches_by(env: &Env, identity: &str) -> BTreeMap<String, Vec<(Timestamp, Option<Timestamp>)>> {
    let at = |e: &serde_json::Value, field: &str| e[field].as_str().and_then(|t| t.parse::<Timestamp>().ok());
    let mut by_id: BTreeMap<String, (String, Option<Timestamp>, Option<Timestamp>)> = BTreeMap::new();
    for e in audit_events(env, identity, "watch") {
        let id = e["auditID"].as_str().unwrap_or_default().to_string();
        let resource = e["objectRef"]["resource"].as_str().unwrap_or_default().to_string();
        let entry = by_id.entry(id).or_insert((resource, None, None));
        entry.1 = at(&e, "requestReceivedTimestamp");
        if e["stage"] == "ResponseComplete" {
            entry.2 = at(&e, "stageTimestamp");
        }
    }
    let mut out: BTreeMap<String, Vec<(Timestamp, Option<Timestamp>)>> = BTreeMap::new();
    for (resource, start, end) in by_id.into_values() {
        if let Some(start) = start {
            out.entry(resource).or_default().push((start, end));
        }
    }
    for w in out.values_mut() {
        w.sort();
    }
    out
}

/// Whether two watches of one kind were ever open together (beyond the
/// instant a closed watch is replaced).
fn overlapping(watches: &[(Timestamp, Option<Timestamp>)]) -> bool {
    let handover = jiff::SignedDuration::from_secs(1);
    watches.windows(2).any(|pair| {
        let (_, first_end) = pair[0];
        let (second_start, _) = pair[1];
        first_end.is_none_or(|end| end.duration_since(second_start) > handover)
    })
}

fn leading(addr: &str) -> Option<bool> {
    let (code, body) = http_get(&format!("http://{addr}/metrics"))?;
    (code == 200).then(|| body.lines().any(|l| l.trim() == "steward_leader 1"))
}

/// Waits for `/readyz` on `addr`; at the first 200, returns which kinds the
/// process had listed by then (the audit log is written before the
/// response is sent).
async fn listed_when_ready(env: &Env, identity: &str, addr: &str) -> BTreeMap<String, usize> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if http_get(&format!("http://{addr}/readyz")).is_some_and(|(c, _)| c == 200) {
            return requests_by(env, identity, "list");
        }
        assert!(Instant::now() < deadline, "{identity} not ready within 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn each_process_watches_each_kind_once_and_is_ready_only_once_all_have_listed() {
    let env = harness::isolated();
    let args = ["--leader-elect", "--lease-duration", "15"];
    let (mut a, a_addr) = env.spawn_controller("caches-a", &args);
    let (mut b, b_addr) = env.spawn_controller("caches-b", &args);
    for (identity, addr) in [("caches-a", &a_addr), ("caches-b", &b_addr)] {
        let listed = listed_when_ready(&env, identity, addr).await;
        for kind in CACHED {
            assert!(
                listed.get(kind).is_some_and(|n| *n > 0),
                "{identity} reported ready before listing {kind}: {listed:?}"
            );
        }
    }

    // One of them leads; its controllers must be at work on the same
    // caches, not on watches of their own: make them reconcile something.
    let deadline = Instant::now() + Duration::from_secs(60);
    let leader = loop {
        match (leading(&a_addr), leading(&b_addr)) {
            (Some(true), Some(false)) => break "caches-a",
            (Some(false), Some(true)) => break "caches-b",
            state => assert!(Instant::now() < deadline, "no single leader: {state:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let ns = env.namespace("caches").await;
    let rule = r#"{apiGroups: [""], resources: [configmaps], verbs: [get]}"#;
    env.apply_ok(
        &ns,
        &harness::control_yaml("c", "Audit", &harness::reviewed_recently(), &[("api", rule)]),
    );
    env.kubectl_ok(&[
        "wait",
        "-n",
        &ns,
        "controlownership/c",
        "--for=condition=Ready",
        "--timeout=60s",
    ]);

    for identity in ["caches-a", "caches-b"] {
        let watches = watches_by(&env, identity);
        let role = if identity == leader { "leader" } else { "standby" };
        for kind in CACHED {
            assert!(
                watches.contains_key(kind),
                "{identity} ({role}) never watched {kind}: {watches:?}"
            );
        }
        for (kind, w) in &watches {
            assert!(
                !overlapping(w),
                "{identity} ({role}) had two watches of {kind} open at once: {w:?}"
            );
        }
    }
    let _ = a.kill();
    let _ = b.kill();
    let _ = a.wait();
    let _ = b.wait();
}

#[test]
fn a_second_watch_of_a_kind_is_caught_and_a_replacement_is_not() {
    let t = |s: u64| Timestamp::from_second(1_700_000_000 + s as i64).unwrap();
    assert!(!overlapping(&[(t(0), Some(t(10))), (t(10), None)]), "replaced");
    assert!(!overlapping(&[(t(0), None)]), "one open watch");
    assert!(overlapping(&[(t(0), None), (t(5), None)]), "two open at once");
    assert!(
        overlapping(&[(t(0), Some(t(10))), (t(5), None)]),
        "opened before the first ended"
    );
}
