//! `make bench`: measurements, not pass/fail tests. Runs the release
//! controller as its own identity against the local control plane and
//! prints, each beside its physical floor measured in the same run:
//! single-expiry lag, mass-expiry lag, convergence of 500 controls × 4
//! identities, the controller's peak RSS and API writes per object; and
//! `scale` (bench/scale.rs): the same figures, and memory and restart, at
//! thousands of objects on a control plane of its own; and, only when
//! named, `status-cost` (bench/status_cost.rs): a status write by
//! server-side apply against a merge patch of the same body.

mod fixtures;
#[allow(dead_code)]
#[path = "../e2e/harness.rs"]
mod harness;
mod heap;
mod scale;
mod status_cost;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use steward::api::{ControlOwnership, Phase, PolicyException};

const CONCURRENCY: usize = 64;

/// Counts this process's heap, for `heap::live`.
#[global_allocator]
static ALLOCATOR: heap::Counting = heap::Counting;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (percentile(&v, 50.0), percentile(&v, 99.0))
}

fn control_yaml(name: &str, identities: usize) -> String {
    let mut ids = String::new();
    for i in 0..identities {
        ids.push_str(&format!(
            "    - serviceAccount: {name}-sa-{i}\n      task: Task {i}\n      rules:\n        - {{apiGroups: [\"\"], resources: [configmaps], verbs: [get]}}\n"
        ));
    }
    format!(
        "apiVersion: steward.dev/v1alpha1\nkind: ControlOwnership\nmetadata: {{name: {name}}}\nspec:\n  layer: Identity\n  owner: {{name: a}}\n  backupOwner: {{name: b}}\n  approvers: [alice]\n  review: {{interval: 30d, lastReviewed: \"{}\"}}\n  exceptionPolicy: {{maxDuration: 1d, trustedAppliers: [{admin}]}}\n  workloadIdentities:\n{ids}",
        Timestamp::now(),
        admin = harness::ADMIN_USER
    )
}

fn exception(name: &str, expires: Timestamp) -> PolicyException {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "steward.dev/v1alpha1",
        "kind": "PolicyException",
        "metadata": {"name": name},
        "spec": {
            "control": "c", "ticket": "T-1", "approver": "alice", "reason": "bench",
            "expiresAt": expires.to_string(),
            "grant": {"serviceAccount": "c-sa-0", "rules": [{"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}]}
        }
    }))
    .expect("exception")
}

/// Records, per object name, when it was deleted / reached phase Expired.
fn record_deletions(api: Api<RoleBinding>) -> Arc<Mutex<HashMap<String, Timestamp>>> {
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let s = seen.clone();
    tokio::spawn(async move {
        let mut events = watcher(api, watcher::Config::default()).boxed();
        while let Some(Ok(ev)) = events.next().await {
            if let watcher::Event::Delete(rb) = ev {
                let now = Timestamp::now();
                s.lock().unwrap().insert(rb.metadata.name.unwrap_or_default(), now);
            }
        }
    });
    seen
}

fn record_expired(api: Api<PolicyException>) -> Arc<Mutex<HashMap<String, Timestamp>>> {
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let s = seen.clone();
    tokio::spawn(async move {
        let mut events = watcher(api, watcher::Config::default()).applied_objects().boxed();
        while let Some(Ok(pe)) = events.next().await {
            if pe.status.as_ref().and_then(|s| s.phase) == Some(Phase::Expired) {
                let now = Timestamp::now();
                s.lock()
                    .unwrap()
                    .entry(pe.metadata.name.unwrap_or_default())
                    .or_insert(now);
            }
        }
    });
    seen
}

fn ms(d: SignedDuration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn wait_until<F: Fn() -> bool>(timeout: Duration, what: &str, f: F) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Time for one DELETE of a RoleBinding by a plain client (median of n).
async fn delete_round_trip(client: &kube::Client, ns: &str, n: usize) -> f64 {
    let api: Api<RoleBinding> = Api::namespaced(client.clone(), ns);
    let mut v = Vec::new();
    for i in 0..n {
        let rb = plain_binding(&format!("floor-{i}"));
        api.create(&PostParams::default(), &rb).await.expect("create");
        let t = Instant::now();
        api.delete(&format!("floor-{i}"), &DeleteParams::default())
            .await
            .expect("delete");
        v.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    summary(v).0
}

fn plain_binding(name: &str) -> RoleBinding {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "sa-0", "namespace": "x"}]
    }))
    .expect("binding")
}

/// A namespace of its own with one control, and when each of its grants
/// was deleted and each of its exceptions reached Expired, as they happen.
struct Watched {
    ns: String,
    client: kube::Client,
    pes: Api<PolicyException>,
    rbs: Api<RoleBinding>,
    deleted: Arc<Mutex<HashMap<String, Timestamp>>>,
    expired: Arc<Mutex<HashMap<String, Timestamp>>>,
}

async fn watched(env: &harness::Env, prefix: &str) -> Watched {
    let ns = env.namespace(prefix).await;
    let client = env.admin().await;
    env.apply_ok(&ns, &control_yaml("c", 1));
    let pes: Api<PolicyException> = Api::namespaced(client.clone(), &ns);
    let rbs: Api<RoleBinding> = Api::namespaced(client.clone(), &ns);
    let (deleted, expired) = (record_deletions(rbs.clone()), record_expired(pes.clone()));
    Watched {
        ns,
        client,
        pes,
        rbs,
        deleted,
        expired,
    }
}

async fn single_expiry(env: &harness::Env, runs: usize) {
    let Watched {
        ns,
        client,
        pes,
        deleted,
        expired,
        ..
    } = watched(env, "bench-single").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let floor = delete_round_trip(&client, &ns, 20).await;
    let (mut to_delete, mut to_status) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let name = format!("single-{i}");
        let expires = Timestamp::now() + SignedDuration::from_millis(1500);
        pes.create(&PostParams::default(), &exception(&name, expires))
            .await
            .expect("create");
        let grant = format!("steward-x:{name}");
        wait_until(Duration::from_secs(10), "expiry", || {
            deleted.lock().unwrap().contains_key(&grant) && expired.lock().unwrap().contains_key(&name)
        })
        .await;
        to_delete.push(ms(deleted.lock().unwrap()[&grant].duration_since(expires)));
        to_status.push(ms(expired.lock().unwrap()[&name].duration_since(expires)));
    }
    let (d50, d99) = summary(to_delete);
    let (s50, s99) = summary(to_status);
    println!("single expiry ({runs} runs, nothing else happening):");
    println!("  expiresAt -> RoleBinding deleted: p50 {d50:.1} ms  p99 {d99:.1} ms   (target p99 <= 100 ms)");
    println!("  expiresAt -> phase Expired:       p50 {s50:.1} ms  p99 {s99:.1} ms");
    println!("  floor: one DELETE round trip by a plain client: p50 {floor:.1} ms (+ timer)");
    println!("  for scale: kube-janitor polls every 30 s, Kyverno cleanup every 60 s");
}

/// What `mass_expiry` measured, in milliseconds from `expiresAt`.
pub(crate) struct MassExpiry {
    /// The plain client's n deletes, CONCURRENCY in flight, as the admin.
    pub floor: f64,
    /// The same as the controller's identity.
    pub floor_sa: f64,
    /// expiresAt -> RoleBinding deleted: p50, p99, max.
    pub deleted: (f64, f64, f64),
    /// expiresAt -> phase Expired: p50, p99, max.
    pub expired: (f64, f64, f64),
    /// The instant they all expired.
    pub at: Timestamp,
}

fn max_of(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::max)
}

/// Milliseconds for `deleter` to delete n RoleBindings that `creator`
/// made, CONCURRENCY in flight.
async fn delete_floor(creator: &Api<RoleBinding>, deleter: &Api<RoleBinding>, prefix: &str, n: usize) -> f64 {
    futures::stream::iter(0..n)
        .map(|i| {
            let api = creator.clone();
            async move {
                api.create(&PostParams::default(), &plain_binding(&format!("{prefix}-{i}")))
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await
        .expect("create floor bindings");
    let t = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let api = deleter.clone();
            async move {
                api.delete(&format!("{prefix}-{i}"), &DeleteParams::default())
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await
        .expect("delete floor bindings");
    t.elapsed().as_secs_f64() * 1000.0
}

/// `n` exceptions expiring at the same instant; prints the lags beside the
/// floor with the target `p99 <= floor + margin_ms`, and returns them.
pub(crate) async fn mass_expiry(env: &harness::Env, n: usize, margin_ms: f64) -> MassExpiry {
    let w = watched(env, "bench-mass").await;
    let (client, pes, rbs, deleted, expired) = (w.client, w.pes, w.rbs, w.deleted, w.expired);

    // Floor: a plain client deleting n RoleBindings with CONCURRENCY in
    // flight, as the admin and as the controller's identity (the admin is
    // exempt from the API server's priority and fairness queues; the
    // controller's service account is not).
    let floor_ns = env.namespace("bench-floor").await;
    let floor_api: Api<RoleBinding> = Api::namespaced(client.clone(), &floor_ns);
    let as_controller = harness::client_from(&env.controller_kubeconfig).await;
    let floor_sa_api: Api<RoleBinding> = Api::namespaced(as_controller, &floor_ns);
    let floor = delete_floor(&floor_api, &floor_api, "f", n).await;
    let floor_sa = delete_floor(&floor_api, &floor_sa_api, "s", n).await;

    // n exceptions expiring in the same second, with room to create them all.
    let expires = (Timestamp::now() + SignedDuration::from_secs(60))
        .round(jiff::Unit::Second)
        .unwrap();
    let t = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let pes = pes.clone();
            async move {
                pes.create(&PostParams::default(), &exception(&format!("m-{i}"), expires))
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await
        .expect("create exceptions");
    let created_in = t.elapsed();
    // Steward's bindings only: the namespace also holds the platform's
    // grant-ceiling binding.
    let ours = kube::api::ListParams::default().labels("app.kubernetes.io/managed-by=steward");
    let granted = || async { rbs.list(&ours).await.map(|l| l.items.len()).unwrap_or(0) };
    let t = Instant::now();
    while granted().await < n + 1 {
        assert!(Timestamp::now() < expires, "grants not all in place before expiry");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "mass expiry setup: {n} exceptions created in {:.1} s, all granted {:.1} s later",
        created_in.as_secs_f64(),
        t.elapsed().as_secs_f64()
    );
    wait_until(Duration::from_secs(120), "mass expiry", || {
        deleted.lock().unwrap().len() >= n && expired.lock().unwrap().len() >= n
    })
    .await;
    let d: Vec<f64> = deleted
        .lock()
        .unwrap()
        .values()
        .map(|t| ms(t.duration_since(expires)))
        .collect();
    let s: Vec<f64> = expired
        .lock()
        .unwrap()
        .values()
        .map(|t| ms(t.duration_since(expires)))
        .collect();
    let (dmax, smax) = (max_of(&d), max_of(&s));
    let (d50, d99) = summary(d);
    let (s50, s99) = summary(s);
    println!("mass expiry ({n} exceptions expiring at the same instant):");
    println!("  expiresAt -> RoleBinding deleted: p50 {d50:.0} ms  p99 {d99:.0} ms");
    println!("  expiresAt -> phase Expired:       p50 {s50:.0} ms  p99 {s99:.0} ms");
    println!(
        "  floor: plain client deleting {n} RoleBindings, {CONCURRENCY} in flight: {floor:.0} ms as the admin, {floor_sa:.0} ms as the controller's identity   (target p99 <= floor + {margin_ms:.0} ms = {:.0} ms against the admin's)",
        floor + margin_ms
    );
    MassExpiry {
        floor,
        deleted: (d50, d99, dmax),
        expired: (s50, s99, smax),
        at: expires,
        floor_sa,
    }
}

/// The process's peak resident set (VmHWM), MiB.
pub(crate) fn peak_rss_mib(pid: u32) -> f64 {
    proc_status_mib(pid, "VmHWM:")
}

/// The process's threads now (its runtime's workers and blocking pool).
pub(crate) fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

/// The process's resident set now (VmRSS), MiB.
pub(crate) fn rss_mib(pid: u32) -> f64 {
    proc_status_mib(pid, "VmRSS:")
}

/// A `kB` field of /proc/<pid>/status, in MiB (NaN if unreadable).
fn proc_status_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// Time for `n` Role + RoleBinding server-side applies (the writes one
/// identity of a control needs) by a plain client, CONCURRENCY in flight,
/// spread over `namespaces` as the controls are.
async fn raw_writes(client: &kube::Client, namespaces: &[String], n: usize) -> f64 {
    let t = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let ns = namespaces[i % namespaces.len()].clone();
            let roles: Api<k8s_openapi::api::rbac::v1::Role> = Api::namespaced(client.clone(), &ns);
            let rbs: Api<RoleBinding> = Api::namespaced(client.clone(), &ns);
            async move {
                let name = format!("r-{i}");
                let pp = PatchParams::apply("bench").force();
                let role = serde_json::json!({
                    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                    "metadata": {"name": name},
                    "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]
                });
                roles.patch(&name, &pp, &Patch::Apply(role)).await?;
                let binding = serde_json::json!({
                    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                    "metadata": {"name": name},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                    "subjects": [{"kind": "ServiceAccount", "name": format!("sa-{i}"), "namespace": ns}]
                });
                rbs.patch(&name, &pp, &Patch::Apply(binding)).await.map(|_| ())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await
        .expect("raw writes");
    t.elapsed().as_secs_f64()
}

pub(crate) async fn namespaces(env: &harness::Env, prefix: &str, n: usize) -> Vec<String> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(env.namespace(prefix).await);
    }
    v
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: Option<u32>) -> f64 {
    let Some(pid) = pid else { return f64::NAN };
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name, which is in parentheses.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(f64::NAN)
}

fn apiserver_pid(env: &harness::Env) -> Option<u32> {
    std::fs::read_to_string(env.dir.join("apiserver.pid"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// A controller process the bench measures: its pid (for CPU and RSS) and
/// the address of its /metrics.
pub(crate) struct Controller {
    pub pid: Option<u32>,
    pub metrics_addr: String,
}

/// The /metrics of the controller at `addr`, parsed.
pub(crate) fn metrics_at(addr: &str) -> prometheus_parse::Scrape {
    let (code, body) = harness::http_get(&format!("http://{addr}/metrics")).expect("scrape /metrics");
    assert_eq!(code, 200, "{body}");
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text format")
}

/// The API requests so far of the controller serving /metrics at `addr`,
/// by verb.
pub(crate) fn api_requests(addr: &str) -> HashMap<String, f64> {
    let mut by_verb = HashMap::new();
    for s in metrics_at(addr).samples {
        if s.metric == "steward_api_requests_total"
            && let (Some(verb), prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v)) =
                (s.labels.get("verb"), s.value)
        {
            by_verb.insert(verb.to_string(), v);
        }
    }
    by_verb
}

/// What `convergence` measured.
pub(crate) struct Convergence {
    /// The namespaces holding the controls; control `c-{i}` is in
    /// `namespaces[i % namespaces.len()]`.
    pub namespaces: Vec<String>,
    /// When the first control was created and when all were Ready.
    pub started: Timestamp,
    pub ended: Timestamp,
    /// Seconds until all Ready; the floor as the controller's identity and
    /// as the admin.
    pub converge: f64,
    pub floor: f64,
    pub admin_floor: f64,
    /// The controller's writes in those namespaces, and all its API
    /// requests (its own metric) meanwhile.
    pub writes: usize,
    pub requests: f64,
}

/// `controls` × `identities` created at once, spread evenly over
/// `spread` namespaces; time until every control is Ready, beside two
/// floors measured just before with the same layout. `ctl` is the
/// controller working on them; `target` the ratio it should stay within.
pub(crate) async fn convergence(
    env: &harness::Env,
    ctl: &Controller,
    controls: usize,
    identities: usize,
    spread: usize,
    target: f64,
) -> Convergence {
    let client = env.admin().await;
    let n = controls * identities;
    // Floors: the raw writes the controller needs (a Role and a RoleBinding
    // per identity), by a plain client with the same concurrency: once as
    // the admin, and once as the controller's own identity. For the latter
    // the API server also runs its RBAC escalation check on every write
    // (the controller holds no escalate or bind, SPEC §3), which gathers the
    // writer's rules from every ClusterRoleBinding and the namespace's
    // RoleBindings each time (served from the API server's watch cache).
    let raw_ns = namespaces(env, "bench-raw", spread).await;
    let admin_api_cpu = cpu_seconds(apiserver_pid(env));
    let raw = raw_writes(&client, &raw_ns, n).await;
    let admin_api_cpu = cpu_seconds(apiserver_pid(env)) - admin_api_cpu;
    let as_controller = harness::client_from(&env.controller_kubeconfig).await;
    let raw_sa_ns = namespaces(env, "bench-raw-sa", spread).await;
    let floor_api_cpu = cpu_seconds(apiserver_pid(env));
    let raw_sa = raw_writes(&as_controller, &raw_sa_ns, n).await;
    let floor_api_cpu = cpu_seconds(apiserver_pid(env)) - floor_api_cpu;

    let prefix = format!("bench-converge{spread}");
    let nss = namespaces(env, &prefix, spread).await;
    let mine = format!("{prefix}-");
    let writes_before = env.controller_writes_where(|ns| ns.starts_with(&mine));
    // Count Ready controls from one watch, not by listing in a loop (which
    // would load the API server the controller is measured against).
    let ready = Arc::new(Mutex::new(std::collections::HashSet::new()));
    let r = ready.clone();
    let all: Api<ControlOwnership> = Api::all(client.clone());
    let watched = mine.clone();
    let watch = tokio::spawn(async move {
        let mut events = watcher(all, watcher::Config::default()).applied_objects().boxed();
        while let Some(Ok(co)) = events.next().await {
            let is_ready = co
                .status
                .as_ref()
                .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            if is_ready
                && co
                    .metadata
                    .namespace
                    .as_deref()
                    .is_some_and(|ns| ns.starts_with(&watched))
            {
                r.lock().unwrap().insert((
                    co.metadata.namespace.unwrap_or_default(),
                    co.metadata.name.unwrap_or_default(),
                ));
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let docs: Vec<(String, ControlOwnership)> = (0..controls)
        .map(|c| {
            let co = serde_yaml_ng::from_str(&control_yaml(&format!("c-{c}"), identities)).expect("control");
            (nss[c % spread].clone(), co)
        })
        .collect();
    // Created by a plain client with the same concurrency as the floors, so
    // the ratio measures the controller, not kubectl.
    let (ctl_cpu, api_cpu) = (cpu_seconds(ctl.pid), cpu_seconds(apiserver_pid(env)));
    let requests_before = api_requests(&ctl.metrics_addr);
    let started = Timestamp::now();
    let t = Instant::now();
    futures::stream::iter(docs)
        .map(|(ns, co)| {
            let api: Api<ControlOwnership> = Api::namespaced(client.clone(), &ns);
            async move { api.create(&PostParams::default(), &co).await.map(|_| ()) }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await
        .expect("create controls");
    wait_until(Duration::from_secs(600), "convergence", || {
        ready.lock().unwrap().len() >= controls
    })
    .await;
    watch.abort();
    let converge = t.elapsed().as_secs_f64();
    let ended = Timestamp::now();
    let ctl_cpu = cpu_seconds(ctl.pid) - ctl_cpu;
    let api_cpu = cpu_seconds(apiserver_pid(env)) - api_cpu;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes = env.controller_writes_where(|ns| ns.starts_with(&mine)) - writes_before;
    let mut requests: Vec<(String, f64)> = api_requests(&ctl.metrics_addr)
        .into_iter()
        .map(|(verb, n)| {
            let before = requests_before.get(&verb).copied().unwrap_or(0.0);
            (verb, n - before)
        })
        .filter(|(_, n)| *n > 0.0)
        .collect();
    requests.sort_by(|a, b| a.0.cmp(&b.0));
    let total: f64 = requests.iter().map(|(_, n)| n).sum();
    // For a closer look at where the writes went: STEWARD_BENCH_AUDIT=path.
    if let Ok(keep) = std::env::var("STEWARD_BENCH_AUDIT") {
        let _ = std::fs::copy(&env.audit_log, keep);
    }
    println!(
        "convergence ({controls} ControlOwnerships x {identities} identities in {spread} namespace(s), created at once, {CONCURRENCY} in flight):"
    );
    println!(
        "  all Ready in {converge:.2} s; CPU used meanwhile: controller {ctl_cpu:.1} s, kube-apiserver {api_cpu:.1} s"
    );
    println!(
        "  raw API writes ({} SSA writes), plain client as the controller's identity: {raw_sa:.2} s (kube-apiserver CPU {floor_api_cpu:.1} s); ratio {:.2} (target <= {target})",
        2 * n,
        converge / raw_sa
    );
    println!(
        "  the same as the admin (system:masters: no escalation checks): {raw:.2} s (kube-apiserver CPU {admin_api_cpu:.1} s); ratio {:.2}",
        converge / raw
    );
    println!(
        "  controller writes: {writes} = {:.1} per ControlOwnership ({:.2} per managed object): finalizer, RBAC, status",
        writes as f64 / controls as f64,
        writes as f64 / (2 * n) as f64
    );
    println!(
        "  controller API requests, all verbs: {total:.0} = {:.1} per ControlOwnership ({})",
        total / controls as f64,
        requests
            .iter()
            .map(|(v, n)| format!("{v} {n:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Convergence {
        namespaces: nss,
        started,
        ended,
        converge,
        floor: raw_sa,
        admin_floor: raw,
        writes,
        requests: total,
    }
}

/// `steward validate` on n documents: the same code path as the CLI,
/// reading from a file so parsing is included. Median of 5 runs.
fn validate_bench(n: usize) {
    use steward::validate_cmd::{Options, check, documents, read_paths};
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("docs.yaml");
    std::fs::write(&path, fixtures::documents(n)).expect("write docs");
    let opts = Options {
        now: "2026-11-28T12:00:00Z".parse().unwrap(),
        allow_expired: false,
        warn_within: SignedDuration::from_hours(24),
        ceiling: None,
        namespace: "default".into(),
    };
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let sources = read_paths(std::slice::from_ref(&path)).expect("read");
        let docs = documents(&sources[0]).expect("parse");
        let findings = check(&docs, &opts);
        times.push(t.elapsed().as_secs_f64());
        assert_eq!(docs.len(), n);
        assert!(findings.is_empty(), "{findings:?}");
    }
    let (p50, _) = summary(times);
    println!(
        "steward validate: {n} documents in {:.3} s (median of 5; target < 2 s)",
        p50
    );
}

/// Webhook latency: n AdmissionReviews of a valid PolicyException, one at a
/// time over HTTPS, against a second process that serves only the webhook
/// (its controllers watch an empty namespace, so they write nothing).
async fn webhook_latency(env: &harness::Env, n: usize) {
    let ns = env.namespace("bench-webhook").await;
    env.apply_ok(&ns, &control_yaml("c", 1));
    let dir = env.dir.join("webhook-pki");
    std::fs::create_dir_all(&dir).expect("pki dir");
    let sh = |cmd: &str| {
        let ok = std::process::Command::new("sh")
            .args(["-c", cmd])
            .current_dir(&dir)
            .output()
            .map(|o| o.status.success());
        assert_eq!(ok.ok(), Some(true), "{cmd}");
    };
    sh("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=ca -keyout ca.key -out ca.crt 2>/dev/null");
    sh("openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout tls.key -out tls.csr 2>/dev/null");
    sh(
        "printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > ext && openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -extfile ext -out tls.crt 2>/dev/null",
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let addr = format!("127.0.0.1:{port}");
    let (mut child, _) = env.spawn_controller(
        "webhook-only",
        &[
            "--namespace",
            "bench-webhook-idle",
            "--webhook-addr",
            &addr,
            "--webhook-cert",
            dir.join("tls.crt").to_str().unwrap_or_default(),
            "--webhook-key",
            dir.join("tls.key").to_str().unwrap_or_default(),
            // The bench's client presents no certificate.
            "--webhook-unauthenticated",
        ],
    );
    let ca = reqwest::Certificate::from_pem(&std::fs::read(dir.join("ca.crt")).expect("ca")).expect("ca pem");
    let http = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .expect("https client");
    let url = format!("https://{addr}/validate");
    let review = |i: usize| {
        serde_json::json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": format!("u-{i}"),
                "kind": {"group": "steward.dev", "version": "v1alpha1", "kind": "PolicyException"},
                "resource": {"group": "steward.dev", "version": "v1alpha1", "resource": "policyexceptions"},
                "name": "e", "namespace": ns, "operation": "CREATE",
                "userInfo": {"username": "alice"},
                "object": serde_json::to_value(exception("e", Timestamp::now() + SignedDuration::from_secs(3600))).unwrap(),
                "dryRun": false
            }
        })
    };
    // Wait until it serves and its caches know the control.
    let start = Instant::now();
    loop {
        let ok = match http.post(&url).json(&review(0)).send().await {
            Ok(r) => r
                .json::<serde_json::Value>()
                .await
                .ok()
                .is_some_and(|v| v["response"]["allowed"] == true),
            Err(_) => false,
        };
        if ok {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "webhook not serving");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut lat = Vec::new();
    for i in 0..n {
        let body = review(i);
        let t = Instant::now();
        let r = http.post(&url).json(&body).send().await.expect("review");
        let v: serde_json::Value = r.json().await.expect("response");
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(v["response"]["allowed"], true, "{v}");
    }
    let (p50, p99) = summary(lat);
    println!(
        "admission webhook ({n} AdmissionReviews over HTTPS, one at a time): p50 {p50:.2} ms  p99 {p99:.2} ms (target p99 <= 10 ms)"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` asks for test names; there are none
    }
    // SAFETY of set_var: single-threaded at this point of start-up in
    // practice; the harness reads it once when it starts the controller.
    unsafe { std::env::set_var("STEWARD_TEST_LOG", "warn") };
    // `cargo bench --bench steward -- convergence` runs only the parts named.
    let only: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let run = |part: &str| only.is_empty() || only.iter().any(|o| o == part);
    if run("validate") {
        validate_bench(10_000);
    }
    // The shared control plane only when a part on it runs.
    if ["single", "mass", "convergence", "webhook"].iter().any(|p| run(p)) {
        let env = harness::env();
        println!(
            "steward bench — release controller as its own identity, local kube-apiserver {}, {} cores",
            env.server_version,
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        );
        if run("single") {
            single_expiry(env, 50).await;
        }
        if run("mass") {
            mass_expiry(env, 1000, 500.0).await;
        }
        if run("convergence") {
            let ctl = Controller {
                pid: env.controller_pid(),
                metrics_addr: env.metrics_addr.clone(),
            };
            // Teams' controls live in their own namespaces; one namespace
            // holding all 500 is the worst case for the API server.
            convergence(env, &ctl, 500, 4, 50, 2.0).await;
            convergence(env, &ctl, 500, 4, 1, 2.0).await;
        }
        if run("webhook") {
            webhook_latency(env, 1000).await;
        }
        if let Some(pid) = env.controller_pid() {
            println!(
                "controller peak RSS over the whole run: {:.1} MiB (target <= 100 MiB)",
                peak_rss_mib(pid)
            );
        }
    }
    if run("scale") {
        scale::run().await;
    }
    if only.iter().any(|o| o == "status-cost") {
        status_cost::run().await;
    }
}
