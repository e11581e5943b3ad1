//! `cargo bench --bench steward -- scale`: Steward at ten thousand objects,
//! on a control plane of its own (`harness::isolated()`) with one release
//! controller the bench starts, pauses, kills and restarts itself. Measured
//! in one run, each figure beside its floor measured in the same run:
//!
//! 1. convergence of 3,000 ControlOwnerships × 2 identities over 100
//!    namespaces (`convergence`), with the controller's requests by type
//!    and the API server's time for each, from its audit log;
//! 2. activation of 2,000 exceptions with grants in those namespaces, and
//!    the controller's writes per exception, beside a plain client making
//!    the same end state (exception, Role, RoleBinding, status) while the
//!    controller is paused;
//! 3. mass expiry of 1,000 exceptions (`mass_expiry`);
//! 4. memory at 10,000 exceptions with grants (20,000 more RBAC objects):
//!    RSS, peak RSS, objects cached and bytes per cached object;
//! 5. a restart (SIGKILL) with all of that in place: time to ready, and
//!    writes in the minute after (there should be none);
//! 6. a minute of nothing happening: writes and API requests;
//! 7. the API server restarted past every watch (each relists): the
//!    controller's relists, reconciles, writes and memory in the minute
//!    after.
//!
//! `STEWARD_BENCH_SCALE` (default 1) multiplies every count (at least one
//! of each; the two identities per control are a shape, not a count, and
//! stay two): `STEWARD_BENCH_SCALE=0.05` is a quick smoke run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use steward::api::{ControlOwnership, Phase, PolicyException};

use crate::{CONCURRENCY, Controller, harness};

/// Counts at factor 1.
const CONTROLS: usize = 3_000;
const IDENTITIES: usize = 2;
const SPREAD: usize = 100;
const ACTIVATION: usize = 2_000;
const MASS: usize = 1_000;
const TOTAL_EXCEPTIONS: usize = 10_000;

/// How long the restarted and the idle controller are watched.
const QUIET: Duration = Duration::from_secs(60);

/// Targets.
const CONVERGENCE_RATIO: f64 = 1.3;
const ACTIVATION_RATIO: f64 = 1.5;
const WRITES_PER_EXCEPTION: f64 = 4.5;
const EXPIRED_WITHIN_MS: f64 = 3_000.0;
const REVOCATION_MARGIN_MS: f64 = 300.0;
const PEAK_RSS_MIB: f64 = 64.0;
const READY_WITHIN_S: f64 = 30.0;

/// `STEWARD_BENCH_SCALE`, default 1.
fn factor() -> f64 {
    match std::env::var("STEWARD_BENCH_SCALE") {
        Err(_) => 1.0,
        Ok(s) => match s.trim().parse::<f64>() {
            Ok(f) if f > 0.0 && f.is_finite() => f,
            _ => panic!("STEWARD_BENCH_SCALE={s:?}: expected a positive number such as 0.05"),
        },
    }
}

fn scaled(n: usize, f: f64) -> usize {
    ((n as f64 * f).round() as usize).max(1)
}

/// One request of the controller's identity, as the API server's audit log
/// records it (the audit policy logs writes, lists and watches; gets are
/// not logged).
struct Request {
    verb: String,
    /// With its subresource: `policyexceptions/status`.
    resource: String,
    namespace: Option<String>,
    /// `steward/<version> (<instance>)` for a controller process.
    agent: String,
    /// The HTTP status code of the answer.
    code: u64,
    received: Timestamp,
    completed: Timestamp,
}

impl Request {
    fn kind(&self) -> String {
        format!("{} {}", self.verb, self.resource)
    }

    fn is_write(&self) -> bool {
        ["create", "update", "patch", "delete", "deletecollection"].contains(&self.verb.as_str())
    }

    /// Whether the controller process started as `instance` made it.
    fn by(&self, instance: &str) -> bool {
        self.agent.starts_with("steward/") && self.agent.ends_with(&format!("({instance})"))
    }

    fn within(&self, from: Timestamp, to: Timestamp) -> bool {
        self.received >= from && self.received <= to
    }

    /// Server-side latency: completed − received (for a watch: how long it
    /// was open, which says nothing; those are not summed).
    fn ms(&self) -> f64 {
        self.completed.duration_since(self.received).as_secs_f64() * 1000.0
    }
}

/// The controller identity's requests in the audit log, read
/// incrementally from where this bench part began.
struct Audit {
    path: PathBuf,
    user: String,
    offset: u64,
    requests: Vec<Request>,
}

impl Audit {
    fn new(env: &harness::Env) -> Self {
        Audit {
            path: env.audit_log.clone(),
            user: env.controller_user.clone(),
            offset: std::fs::metadata(&env.audit_log).map(|m| m.len()).unwrap_or(0),
            requests: Vec::new(),
        }
    }

    /// Reads what was appended since the last read (whole lines only: one
    /// still being written is left for the next read).
    fn read(&mut self) {
        use std::io::{BufRead, Seek, SeekFrom};
        let mut file = std::fs::File::open(&self.path).expect("audit log");
        file.seek(SeekFrom::Start(self.offset)).expect("seek audit log");
        let mut reader = std::io::BufReader::new(file);
        let mut line = Vec::new();
        let user = format!("\"{}\"", self.user);
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).expect("read audit log");
            if n == 0 || line.last() != Some(&b'\n') {
                return;
            }
            self.offset += n as u64;
            // Most lines are other users' (the bench's own requests): skip
            // them before parsing.
            if !String::from_utf8_lossy(&line).contains(&user) {
                continue;
            }
            let Ok(e) = serde_json::from_slice::<serde_json::Value>(&line) else {
                continue;
            };
            if e["user"]["username"].as_str() != Some(self.user.as_str()) {
                continue;
            }
            let verb = e["verb"].as_str().unwrap_or_default();
            // A watch is logged when it starts (ResponseStarted) and again
            // when it ends; everything else once, complete.
            let stage = if verb == "watch" {
                "ResponseStarted"
            } else {
                "ResponseComplete"
            };
            if e["stage"] != stage {
                continue;
            }
            let o = &e["objectRef"];
            let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
            let time = |v: &serde_json::Value| {
                v.as_str()
                    .and_then(|t| t.parse::<Timestamp>().ok())
                    .unwrap_or_else(|| panic!("audit event without a timestamp: {e}"))
            };
            self.requests.push(Request {
                verb: verb.to_string(),
                resource: match o["subresource"].as_str() {
                    Some(sub) => format!("{}/{sub}", s(&o["resource"])),
                    None => s(&o["resource"]),
                },
                namespace: o["namespace"].as_str().map(str::to_string),
                agent: s(&e["userAgent"]),
                code: e["responseStatus"]["code"].as_u64().unwrap_or_default(),
                received: time(&e["requestReceivedTimestamp"]),
                completed: time(&e["stageTimestamp"]),
            });
        }
    }

    /// The requests `pick` accepts, the log read to its end first.
    fn select(&mut self, pick: impl Fn(&Request) -> bool) -> Vec<&Request> {
        self.read();
        self.requests.iter().filter(|r| pick(r)).collect()
    }
}

/// Waits until `instance` has made no write for `still` (by the audit log);
/// returns how long that took. Panics after `timeout`.
async fn quiet(audit: &mut Audit, instance: &str, still: Duration, timeout: Duration) -> f64 {
    let t = Instant::now();
    loop {
        let now = Timestamp::now();
        let since = now - SignedDuration::try_from(still).expect("a short duration");
        let recent = audit
            .select(|r| r.by(instance) && r.is_write() && r.received >= since)
            .len();
        if recent == 0 && t.elapsed() >= still {
            return t.elapsed().as_secs_f64();
        }
        assert!(t.elapsed() < timeout, "{instance} still writing after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every write of the controller in `namespaces` from `started` until it
/// has made none for 10 s: all a burst of `n` exceptions caused, writes it
/// deferred past the last Active included. Prints them by type; returns
/// them per exception.
async fn caused(audit: &mut Audit, started: Timestamp, namespaces: &HashSet<String>, n: usize) -> f64 {
    let waited = quiet(audit, "scale", Duration::from_secs(10), Duration::from_secs(600)).await;
    let writes = audit.select(|r| {
        r.by("scale")
            && r.is_write()
            && r.received >= started
            && r.namespace.as_ref().is_some_and(|ns| namespaces.contains(ns))
    });
    let per_exception = writes.len() as f64 / n as f64;
    println!(
        "  every controller write in those namespaces from the first create until it was quiet for 10 s ({waited:.1} s after the above): {} = {per_exception:.2} per exception (target <= {WRITES_PER_EXCEPTION}), by type:",
        writes.len()
    );
    print_table(&writes);
    per_exception
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    crate::percentile(&v, 50.0)
}

/// One line per "verb resource[/subresource]": count, how many were
/// refused (with their status codes), summed and median server-side
/// latency; the most time first.
fn print_table(requests: &[&Request]) {
    #[derive(Default)]
    struct Row {
        ms: Vec<f64>,
        failed: BTreeMap<u64, usize>,
    }
    let mut by_kind: BTreeMap<String, Row> = BTreeMap::new();
    for r in requests {
        let row = by_kind.entry(r.kind()).or_default();
        row.ms.push(r.ms());
        if r.code >= 300 {
            *row.failed.entry(r.code).or_default() += 1;
        }
    }
    let mut rows: Vec<(String, usize, String, f64, f64)> = by_kind
        .into_iter()
        .map(|(kind, row)| {
            let failed = row
                .failed
                .iter()
                .map(|(code, n)| format!("{n} ({code})"))
                .collect::<Vec<_>>()
                .join(", ");
            let failed = if failed.is_empty() { "0".to_string() } else { failed };
            if kind.starts_with("watch ") {
                (kind, row.ms.len(), failed, f64::NAN, f64::NAN)
            } else {
                (kind, row.ms.len(), failed, row.ms.iter().sum(), median(row.ms))
            }
        })
        .collect();
    rows.sort_by(|a, b| b.3.total_cmp(&a.3).then(b.1.cmp(&a.1)));
    println!(
        "    {:<36} {:>7} {:>12} {:>10} {:>10}",
        "request (audit log)", "count", "refused", "sum ms", "median ms"
    );
    for (kind, n, failed, sum, med) in rows {
        if sum.is_nan() {
            println!("    {kind:<36} {n:>7} {failed:>12} {:>10} {:>10}", "-", "-");
        } else {
            println!("    {kind:<36} {n:>7} {failed:>12} {sum:>10.0} {med:>10.2}");
        }
    }
}

/// Runs `f` on every item, CONCURRENCY in flight; panics naming how many
/// failed and the first errors.
pub(crate) async fn all_ok<I, F, Fut>(what: &str, items: I, f: F)
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: std::future::Future<Output = Result<(), kube::Error>>,
{
    let results: Vec<Result<(), kube::Error>> = futures::stream::iter(items)
        .map(f)
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let total = results.len();
    let errors: Vec<String> = results
        .into_iter()
        .filter_map(Result::err)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "{what}: {} of {total} failed; first: {:#?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
}

/// An exception `name` to `control` granting `sa` (an identity of it)
/// read access to pod logs, approved by `alice`, ending at `expires`.
pub(crate) fn granted_exception(name: &str, control: &str, sa: &str, expires: Timestamp) -> PolicyException {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "steward.dev/v1alpha1",
        "kind": "PolicyException",
        "metadata": {"name": name},
        "spec": {
            "control": control, "ticket": "T-1", "approver": "alice", "reason": "bench",
            "expiresAt": expires.to_string(),
            "grant": {"serviceAccount": sa, "rules": [{"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}]}
        }
    }))
    .expect("exception")
}

/// The bench's exceptions: the `k`-th goes to control `c-{k % controls}`
/// in its namespace and grants one of its identities.
struct Layout<'a> {
    namespaces: &'a [String],
    controls: usize,
    expires: Timestamp,
}

impl Layout<'_> {
    fn exception(&self, k: usize) -> (String, PolicyException) {
        let c = k % self.controls;
        let ns = self.namespaces[c % self.namespaces.len()].clone();
        let sa = format!("c-{c}-sa-{}", (k / self.controls) % IDENTITIES);
        (
            ns,
            granted_exception(&format!("x-{k}"), &format!("c-{c}"), &sa, self.expires),
        )
    }
}

/// Exceptions seen Active (and when first) or Rejected, in `namespaces`,
/// from one watch.
struct Phases {
    active: Arc<Mutex<HashMap<(String, String), Instant>>>,
    rejected: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

fn watch_phases(client: kube::Client, namespaces: HashSet<String>) -> Phases {
    let active = Arc::new(Mutex::new(HashMap::new()));
    let rejected = Arc::new(Mutex::new(Vec::new()));
    let (a, r) = (active.clone(), rejected.clone());
    let task = tokio::spawn(async move {
        let api: Api<PolicyException> = Api::all(client);
        let mut events = watcher(api, watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Some(ev) = events.next().await {
            let Ok(pe) = ev else { continue };
            let ns = pe.namespace().unwrap_or_default();
            if !namespaces.contains(&ns) {
                continue;
            }
            match pe.status.as_ref().and_then(|s| s.phase) {
                Some(Phase::Active) => {
                    a.lock()
                        .unwrap()
                        .entry((ns, pe.name_any()))
                        .or_insert_with(Instant::now);
                }
                Some(Phase::Rejected) => {
                    let why = serde_json::to_value(&pe.status).unwrap_or_default();
                    r.lock().unwrap().push(format!("{ns}/{}: {why}", pe.name_any()));
                }
                _ => {}
            }
        }
    });
    Phases { active, rejected, task }
}

impl Phases {
    /// Waits until `n` are Active; returns when the last of them became so.
    /// Panics on a rejected exception, or after `timeout`.
    async fn wait_active(&self, n: usize, timeout: Duration, what: &str) -> Instant {
        let start = Instant::now();
        loop {
            if let Some(first) = self.rejected.lock().unwrap().first() {
                panic!("{what}: an exception was rejected: {first}");
            }
            {
                let active = self.active.lock().unwrap();
                if active.len() >= n {
                    return active.values().copied().max().unwrap_or(start);
                }
                assert!(
                    start.elapsed() < timeout,
                    "{what}: only {} of {n} exceptions Active after {timeout:?}",
                    active.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Pauses (SIGSTOP) or resumes (SIGCONT) the controller process `pid`.
fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill {sig} {pid} failed");
}

/// The controller's own heap figures (MiB): what it holds in live
/// allocations and what its allocator keeps resident.
fn heap_mib(addr: &str) -> (f64, f64) {
    let metric = |name: &str| {
        crate::metrics_at(addr)
            .samples
            .into_iter()
            .find(|s| s.metric == name)
            .map_or(f64::NAN, |s| match s.value {
                prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v / 1024.0 / 1024.0,
                _ => f64::NAN,
            })
    };
    (
        metric("steward_heap_allocated_bytes"),
        metric("steward_heap_resident_bytes"),
    )
}

/// The most a controller held over a while, and when (seconds from the
/// start of the sampling): its live heap and its RSS.
struct Sampled {
    live: (f64, f64),
    rss: (f64, f64),
}

/// Samples the controller's live heap and RSS every 250 ms for `span`: when
/// in a restart the memory peaks, and whether live data or the allocator's
/// keeping sets it.
async fn sample_memory(pid: u32, addr: &str, span: Duration) -> Sampled {
    let start = Instant::now();
    let mut most = Sampled {
        live: (0.0, 0.0),
        rss: (0.0, 0.0),
    };
    while start.elapsed() < span {
        let at = start.elapsed().as_secs_f64();
        let (live, _) = heap_mib(addr);
        let rss = crate::rss_mib(pid);
        if live > most.live.0 {
            most.live = (live, at);
        }
        if rss > most.rss.0 {
            most.rss = (rss, at);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    most
}

/// The controller's live heap, or None while it does not serve /metrics yet.
fn heap_live_mib(addr: &str) -> Option<f64> {
    let (code, body) = crate::harness::http_get(&format!("http://{addr}/metrics"))?;
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).ok()?;
    (code == 200).then_some(())?;
    scrape
        .samples
        .into_iter()
        .find(|s| s.metric == "steward_heap_allocated_bytes")
        .and_then(|s| match s.value {
            prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => Some(v / 1024.0 / 1024.0),
            _ => None,
        })
}

/// Waits (up to a minute) until a controller just spawned answers
/// `/readyz` with 200, sampling its live heap and RSS every 50 ms
/// meanwhile: where, before ready, a restart's peak is set. Returns the
/// seconds until ready and the most sampled.
async fn ready_sampled(pid: u32, addr: &str) -> (f64, Sampled) {
    let start = Instant::now();
    let mut most = Sampled {
        live: (0.0, 0.0),
        rss: (0.0, 0.0),
    };
    let url = format!("http://{addr}/readyz");
    loop {
        let at = start.elapsed().as_secs_f64();
        if let Some(live) = heap_live_mib(addr)
            && live > most.live.0
        {
            most.live = (live, at);
        }
        let rss = crate::rss_mib(pid);
        if rss > most.rss.0 {
            most.rss = (rss, at);
        }
        if crate::harness::http_get(&url).is_some_and(|(c, _)| c == 200) {
            return (start.elapsed().as_secs_f64(), most);
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the restarted controller was not ready within a minute"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Prints the controller's memory now, and its peak so far: which part of
/// the run sets the peak.
fn memory_now(pid: u32, addr: &str, when: &str) {
    let (allocated, resident) = heap_mib(addr);
    println!(
        "  controller memory {when}: RSS {:.1} MiB, peak RSS so far {:.1} MiB; heap live {allocated:.1} MiB, resident {resident:.1} MiB",
        crate::rss_mib(pid),
        crate::peak_rss_mib(pid)
    );
}

/// The reconciles the controller serving /metrics at `addr` has started,
/// every kind (its own `steward_reconciles_total`).
fn reconciles_at(addr: &str) -> f64 {
    crate::metrics_at(addr)
        .samples
        .into_iter()
        .filter(|s| s.metric == "steward_reconciles_total")
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// Waits until the controller serving /metrics at `addr` has started no
/// reconcile for 2 s (its own `steward_reconciles_total`, not the API
/// server); returns how long that took, or None if it did not within
/// `timeout`.
async fn settle(addr: &str, timeout: Duration) -> Option<f64> {
    let reconciles = || reconciles_at(addr);
    let start = Instant::now();
    let (mut last, mut since) = (reconciles(), Instant::now());
    while start.elapsed() < timeout {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = reconciles();
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() >= Duration::from_secs(2) {
            return Some(start.elapsed().as_secs_f64());
        }
    }
    None
}

/// How many objects `api` holds (paged lists of metadata).
async fn count<K>(api: Api<K>, lp: ListParams) -> usize
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    count_where(api, lp, |_| true).await
}

/// How many objects `api` holds whose metadata `pick` accepts.
async fn count_where<K>(api: Api<K>, lp: ListParams, pick: impl Fn(&kube::api::ObjectMeta) -> bool) -> usize
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut lp = lp.limit(500);
    let mut n = 0;
    loop {
        let page = api.list_metadata(&lp).await.expect("list");
        n += page.items.iter().filter(|o| pick(&o.metadata)).count();
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => return n,
        }
    }
}

/// The floor for activating `n` exceptions: with the controller paused, a
/// plain client makes the same end state in `spread` other namespaces:
/// the admin creates each exception (to a control that does not exist
/// there), and the controller's identity server-side applies its Role and
/// RoleBinding and marks its status Active, CONCURRENCY in flight. Everything
/// it made is deleted again before the controller resumes. Returns seconds.
async fn activation_floor(env: &harness::Env, ctl: u32, n: usize, spread: usize, expires: Timestamp) -> f64 {
    let admin = env.admin().await;
    let as_controller = harness::client_from(&env.controller_kubeconfig).await;
    let nss = crate::namespaces(env, "bench-xfloor", spread).await;
    signal(ctl, "-STOP");
    let t = Instant::now();
    all_ok("floor: exception, Role, RoleBinding, status", 0..n, |i| {
        let ns = nss[i % spread].clone();
        let pes: Api<PolicyException> = Api::namespaced(admin.clone(), &ns);
        let pes_ctl: Api<PolicyException> = Api::namespaced(as_controller.clone(), &ns);
        let roles: Api<Role> = Api::namespaced(as_controller.clone(), &ns);
        let rbs: Api<RoleBinding> = Api::namespaced(as_controller.clone(), &ns);
        async move {
            let name = format!("f-{i}");
            let sa = format!("floor-sa-{}", i % IDENTITIES);
            let pe = pes
                .create(&PostParams::default(), &granted_exception(&name, "floor", &sa, expires))
                .await?;
            let grant = steward::decide::rbac::exception_name(&name);
            // As the controller writes a grant: labelled, owned by the
            // exception, applied as the controller's own identity.
            let meta = serde_json::json!({
                "name": grant,
                "labels": {
                    "app.kubernetes.io/managed-by": "steward",
                    "steward.dev/control": "floor",
                    "steward.dev/exception": name,
                },
                "ownerReferences": [{
                    "apiVersion": "steward.dev/v1alpha1", "kind": "PolicyException",
                    "name": name, "uid": pe.uid().unwrap_or_default(),
                    "controller": true, "blockOwnerDeletion": true
                }]
            });
            let pp = PatchParams::apply("bench").force();
            let role = serde_json::json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
                "rules": [{"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}]
            });
            roles.patch(&grant, &pp, &Patch::Apply(role)).await?;
            let binding = serde_json::json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": grant},
                "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]
            });
            rbs.patch(&grant, &pp, &Patch::Apply(binding)).await?;
            let status = serde_json::json!({"status": {"phase": "Active"}});
            pes_ctl
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                .await
                .map(|_| ())
        }
    })
    .await;
    let floor = t.elapsed().as_secs_f64();
    // Gone before the controller resumes, so it never works on them.
    let floor_objects = ListParams::default().labels("steward.dev/control=floor");
    all_ok("floor: clean-up", nss.iter(), |ns| {
        let pes: Api<PolicyException> = Api::namespaced(admin.clone(), ns);
        let roles: Api<Role> = Api::namespaced(admin.clone(), ns);
        let rbs: Api<RoleBinding> = Api::namespaced(admin.clone(), ns);
        let lp = floor_objects.clone();
        async move {
            let dp = DeleteParams::default();
            pes.delete_collection(&dp, &ListParams::default()).await?;
            rbs.delete_collection(&dp, &lp).await?;
            roles.delete_collection(&dp, &lp).await?;
            Ok(())
        }
    })
    .await;
    let floor_ns: HashSet<&str> = nss.iter().map(String::as_str).collect();
    let in_floor = |m: &kube::api::ObjectMeta| m.namespace.as_deref().is_some_and(|ns| floor_ns.contains(ns));
    let left = (
        count_where(
            Api::<PolicyException>::all(admin.clone()),
            ListParams::default(),
            in_floor,
        )
        .await,
        count_where(Api::<Role>::all(admin.clone()), floor_objects.clone(), in_floor).await,
        count_where(Api::<RoleBinding>::all(admin.clone()), floor_objects.clone(), in_floor).await,
    );
    assert_eq!(
        left,
        (0, 0, 0),
        "floor objects left after clean-up (exceptions, Roles, RoleBindings)"
    );
    signal(ctl, "-CONT");
    floor
}

/// The convergence floor as the issue defines it: a plain client making
/// the same end state the controller makes, with the controller paused:
/// the admin creates each control, and the controller's identity applies
/// its Roles and RoleBindings and writes its status once, 64 in flight.
/// Everything is deleted again before the controller resumes.
async fn convergence_floor(env: &harness::Env, ctl: u32, controls: usize, spread: usize) -> f64 {
    let admin = env.admin().await;
    let as_controller = harness::client_from(&env.controller_kubeconfig).await;
    let nss = crate::namespaces(env, "bench-cfloor", spread).await;
    signal(ctl, "-STOP");
    let t = Instant::now();
    all_ok("floor: control, Roles, RoleBindings, status", 0..controls, |c| {
        let ns = nss[c % spread].clone();
        let cos: Api<ControlOwnership> = Api::namespaced(admin.clone(), &ns);
        let cos_ctl: Api<ControlOwnership> = Api::namespaced(as_controller.clone(), &ns);
        let roles: Api<Role> = Api::namespaced(as_controller.clone(), &ns);
        let rbs: Api<RoleBinding> = Api::namespaced(as_controller.clone(), &ns);
        async move {
            let name = format!("f-{c}");
            let co: ControlOwnership =
                serde_yaml_ng::from_str(&crate::control_yaml(&name, IDENTITIES)).expect("control");
            cos.create(&PostParams::default(), &co).await?;
            let pp = PatchParams::apply("bench").force();
            for i in 0..IDENTITIES {
                let pair = format!("{name}-{i}");
                let meta = serde_json::json!({"name": pair, "labels": {"steward.dev/control": "floor"}});
                let role = serde_json::json!({
                    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
                    "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]
                });
                roles.patch(&pair, &pp, &Patch::Apply(role)).await?;
                let binding = serde_json::json!({
                    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": pair},
                    "subjects": [{"kind": "ServiceAccount", "name": format!("{name}-sa-{i}"), "namespace": ns}]
                });
                rbs.patch(&pair, &pp, &Patch::Apply(binding)).await?;
            }
            let status = serde_json::json!({"status": {"observedGeneration": 1}});
            cos_ctl
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                .await
                .map(|_| ())
        }
    })
    .await;
    let floor = t.elapsed().as_secs_f64();
    let floor_objects = ListParams::default().labels("steward.dev/control=floor");
    all_ok("floor: clean-up", nss.iter(), |ns| {
        let cos: Api<ControlOwnership> = Api::namespaced(admin.clone(), ns);
        let roles: Api<Role> = Api::namespaced(admin.clone(), ns);
        let rbs: Api<RoleBinding> = Api::namespaced(admin.clone(), ns);
        let lp = floor_objects.clone();
        async move {
            let dp = DeleteParams::default();
            cos.delete_collection(&dp, &ListParams::default()).await?;
            rbs.delete_collection(&dp, &lp).await?;
            roles.delete_collection(&dp, &lp).await?;
            Ok(())
        }
    })
    .await;
    signal(ctl, "-CONT");
    floor
}

/// Every figure with its floor or target, for docs/benchmarks.md.
struct Summary(Vec<[String; 3]>);

impl Summary {
    fn add(&mut self, what: impl Into<String>, result: impl Into<String>, target: impl Into<String>) {
        self.0.push([what.into(), result.into(), target.into()]);
    }
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

pub async fn run() {
    let f = factor();
    let controls = scaled(CONTROLS, f);
    let spread = scaled(SPREAD, f).min(controls);
    let activation = scaled(ACTIVATION, f);
    let mass = scaled(MASS, f);
    let total = scaled(TOTAL_EXCEPTIONS, f).max(activation);
    let run_started = Instant::now();
    let mut parts: Vec<(&str, f64)> = Vec::new();
    let mut part_started = Instant::now();
    let mut part_done = |name: &'static str| {
        parts.push((name, part_started.elapsed().as_secs_f64()));
        part_started = Instant::now();
    };
    let env = harness::isolated();
    let (mut child, addr) = env.spawn_ready_controller("scale", &[]).await;
    let pid = child.id();
    let empty_rss = crate::rss_mib(pid);
    println!(
        "scale (factor {f}) — a control plane of its own, kube-apiserver {}, {} cores; release controller pid {pid}, RSS on an empty control plane {empty_rss:.1} MiB",
        env.server_version,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    let mut audit = Audit::new(&env);
    let mut summary = Summary(Vec::new());
    let ctl = Controller {
        pid: Some(pid),
        metrics_addr: addr.clone(),
    };
    let admin = env.admin().await;

    part_done("control plane and controller start");

    // 1. Convergence, beside the end-state floor measured just before.
    let end_state_floor = convergence_floor(&env, pid, controls, spread).await;
    if settle(&addr, Duration::from_secs(300)).await.is_none() {
        println!("  (the controller did not settle after the floor)");
    }
    println!(
        "convergence floor (end state: admin creates each control, the controller's identity writes its Roles, RoleBindings and status once; controller paused): {end_state_floor:.2} s"
    );
    let conv = crate::convergence(&env, &ctl, controls, IDENTITIES, spread, CONVERGENCE_RATIO).await;
    println!(
        "  ratio to the end-state floor: {:.2} (target <= {CONVERGENCE_RATIO})",
        conv.converge / end_state_floor
    );
    let until = conv.ended + SignedDuration::from_secs(2);
    let requests = audit.select(|r| r.by("scale") && r.within(conv.started, until));
    println!("  the controller's requests meanwhile, by type (server-side latency = completed - received):");
    print_table(&requests);
    let ratio = conv.converge / conv.floor;
    summary.add(
        format!("{controls} ControlOwnerships × {IDENTITIES} identities in {spread} namespaces, until all Ready"),
        format!("{:.1} s", conv.converge),
        format!(
            "end-state floor (control create, Roles, RoleBindings, status; controller paused) {end_state_floor:.1} s: ratio {:.2} (target <= {CONVERGENCE_RATIO}, {}); RBAC writes only as the controller's identity {:.1} s: ratio {ratio:.2}; as the admin {:.1} s",
            conv.converge / end_state_floor,
            met(conv.converge / end_state_floor <= CONVERGENCE_RATIO),
            conv.floor,
            conv.admin_floor
        ),
    );
    summary.add(
        "controller writes / API requests per ControlOwnership",
        format!(
            "{:.2} / {:.2}",
            conv.writes as f64 / controls as f64,
            conv.requests / controls as f64
        ),
        format!(
            "minimum {} (finalizer, {IDENTITIES} Roles, {IDENTITIES} RoleBindings, status)",
            2 + 2 * IDENTITIES
        ),
    );

    part_done("convergence");
    memory_now(pid, &addr, "after the convergence");

    // 2. Activation of exceptions, beside its floor.
    let expires = Timestamp::now() + SignedDuration::from_hours(20);
    let floor = activation_floor(&env, pid, activation, spread, expires).await;
    // Let the resumed controller catch up on what its watches missed (it
    // may re-list, and then reconciles everything once), so that work is
    // not measured as activation.
    let resumed = Timestamp::now();
    let settled = settle(&addr, Duration::from_secs(120)).await;
    let caught_up = audit.select(|r| r.by("scale") && r.within(resumed, Timestamp::now()));
    println!(
        "activation floor done; the controller resumed and {} ({} lists, {} watches, {} writes meanwhile)",
        match settled {
            Some(s) => format!("settled in {s:.1} s"),
            None => "was still reconciling after 120 s (measuring anyway)".to_string(),
        },
        caught_up.iter().filter(|r| r.verb == "list").count(),
        caught_up.iter().filter(|r| r.verb == "watch").count(),
        caught_up.iter().filter(|r| r.is_write()).count(),
    );
    let caught_up_writes: Vec<&Request> = caught_up.into_iter().filter(|r| r.is_write()).collect();
    if !caught_up_writes.is_empty() {
        print_table(&caught_up_writes);
    }
    let layout = Layout {
        namespaces: &conv.namespaces,
        controls,
        expires,
    };
    let ours: HashSet<String> = conv.namespaces.iter().cloned().collect();
    let phases = watch_phases(admin.clone(), ours.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ctl_cpu, api_cpu) = (
        crate::cpu_seconds(Some(pid)),
        crate::cpu_seconds(crate::apiserver_pid(&env)),
    );
    let started = Timestamp::now();
    let t = Instant::now();
    all_ok("create exceptions", 0..activation, |k| {
        let (ns, pe) = layout.exception(k);
        let api: Api<PolicyException> = Api::namespaced(admin.clone(), &ns);
        async move { api.create(&PostParams::default(), &pe).await.map(|_| ()) }
    })
    .await;
    let created = t.elapsed().as_secs_f64();
    let last = phases
        .wait_active(activation, Duration::from_secs(600), "activation")
        .await;
    let activated = last.duration_since(t).as_secs_f64();
    let ended = Timestamp::now();
    let ctl_cpu = crate::cpu_seconds(Some(pid)) - ctl_cpu;
    let api_cpu = crate::cpu_seconds(crate::apiserver_pid(&env)) - api_cpu;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let until = ended + SignedDuration::from_secs(2);
    let writes = audit.select(|r| {
        r.by("scale")
            && r.is_write()
            && r.within(started, until)
            && r.namespace.as_ref().is_some_and(|ns| ours.contains(ns))
    });
    let per_exception = writes.len() as f64 / activation as f64;
    let ratio = activated / floor;
    println!(
        "activation ({activation} exceptions with grants to identities of those controls, created at once by the admin, {CONCURRENCY} in flight):"
    );
    println!(
        "  all Active in {activated:.2} s (created in {created:.2} s); CPU used meanwhile: controller {ctl_cpu:.1} s, kube-apiserver {api_cpu:.1} s"
    );
    println!(
        "  floor: the same end state by a plain client, controller paused (admin creates, the controller's identity applies Role + RoleBinding and patches status), {CONCURRENCY} in flight: {floor:.2} s; ratio {ratio:.2} (target <= {ACTIVATION_RATIO})"
    );
    println!(
        "  controller writes in those namespaces until 2 s after the last Active: {} = {:.2} per exception, by type:",
        writes.len(),
        per_exception
    );
    print_table(&writes);
    let per_exception = caused(&mut audit, started, &ours, activation).await;
    summary.add(
        format!("{activation} exceptions with grants, until all Active"),
        format!("{activated:.1} s"),
        format!(
            "plain client, same end state: {floor:.1} s: ratio {ratio:.2} (target <= {ACTIVATION_RATIO}, {})",
            met(ratio <= ACTIVATION_RATIO)
        ),
    );
    summary.add(
        "controller writes per exception (activation, all it caused)",
        format!("{per_exception:.2}"),
        format!(
            "target <= {WRITES_PER_EXCEPTION} ({})",
            met(per_exception <= WRITES_PER_EXCEPTION)
        ),
    );

    part_done("activation");
    memory_now(pid, &addr, "after the activation");

    // 3. Mass expiry.
    let m = crate::mass_expiry(&env, mass, REVOCATION_MARGIN_MS).await;
    // Where the controller's writes went between the instant and the last
    // Expired: each type's count, and when its requests completed.
    let until = m.at + SignedDuration::from_millis(m.expired.2 as i64 + 1000);
    let expiry_writes = audit.select(|r| r.by("scale") && r.is_write() && r.within(m.at, until));
    println!("  controller writes from expiresAt until 1 s after the last Expired, by type:");
    print_table(&expiry_writes);
    let mut done_by_kind: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in &expiry_writes {
        let after = r.completed.duration_since(m.at).as_secs_f64() * 1000.0;
        done_by_kind.entry(r.kind()).or_default().push(after);
    }
    for (kind, mut after) in done_by_kind {
        after.sort_by(f64::total_cmp);
        let at = |q: f64| after[((after.len() - 1) as f64 * q).round() as usize];
        println!(
            "    {kind:<38} completed after expiresAt: p50 {:.0} ms, p99 {:.0} ms, last {:.0} ms",
            at(0.5),
            at(0.99),
            at(1.0)
        );
    }
    let revocation_ok = m.deleted.1 <= m.floor + REVOCATION_MARGIN_MS;
    let expired_ok = m.expired.2 <= EXPIRED_WITHIN_MS;
    println!(
        "  expiresAt -> phase Expired, max: {:.0} ms (target: every Expired status within {EXPIRED_WITHIN_MS:.0} ms, {})",
        m.expired.2,
        met(expired_ok)
    );
    println!(
        "  revocation: p99 {:.0} ms (target p99 <= floor + {REVOCATION_MARGIN_MS:.0} ms = {:.0} ms, {})",
        m.deleted.1,
        m.floor + REVOCATION_MARGIN_MS,
        met(revocation_ok)
    );
    summary.add(
        format!("{mass} exceptions expiring in the same second: -> RoleBinding deleted"),
        format!(
            "p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            m.deleted.0, m.deleted.1, m.deleted.2
        ),
        format!(
            "plain client deleting {mass} RoleBindings: {:.0} ms as the admin ({:.0} ms as the controller's identity); target p99 <= {:.0} ms ({})",
            m.floor,
            m.floor_sa,
            m.floor + REVOCATION_MARGIN_MS,
            met(revocation_ok)
        ),
    );
    summary.add(
        "same: -> phase Expired",
        format!(
            "p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            m.expired.0, m.expired.1, m.expired.2
        ),
        format!("target max <= {EXPIRED_WITHIN_MS:.0} ms ({})", met(expired_ok)),
    );

    part_done("mass expiry");

    // 4. Memory at `total` exceptions with grants.
    let more = total - activation;
    let started = Timestamp::now();
    let t = Instant::now();
    all_ok("create more exceptions", activation..total, |k| {
        let (ns, pe) = layout.exception(k);
        let api: Api<PolicyException> = Api::namespaced(admin.clone(), &ns);
        async move { api.create(&PostParams::default(), &pe).await.map(|_| ()) }
    })
    .await;
    let last = phases
        .wait_active(total, Duration::from_secs(1200), "10k activation")
        .await;
    phases.task.abort();
    let more_active = last.duration_since(t).as_secs_f64();
    let ended = Timestamp::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let until = ended + SignedDuration::from_secs(2);
    let more_writes = audit.select(|r| {
        r.by("scale")
            && r.is_write()
            && r.within(started, until)
            && r.namespace.as_ref().is_some_and(|ns| ours.contains(ns))
    });
    let more_per_exception = more_writes.len() as f64 / more as f64;
    let (rss, peak) = (crate::rss_mib(pid), crate::peak_rss_mib(pid));
    // Read with the RSS: jemalloc returns freed pages within a second.
    let (allocated, resident) = heap_mib(&addr);
    let managed = ListParams::default().labels("app.kubernetes.io/managed-by=steward");
    let (pes, cos, rbs, roles, crbs) = (
        count(Api::<PolicyException>::all(admin.clone()), ListParams::default()).await,
        count(Api::<ControlOwnership>::all(admin.clone()), ListParams::default()).await,
        count(Api::<RoleBinding>::all(admin.clone()), ListParams::default()).await,
        count(Api::<Role>::all(admin.clone()), managed).await,
        count(Api::<ClusterRoleBinding>::all(admin.clone()), ListParams::default()).await,
    );
    let cached = pes + cos + rbs + roles + crbs;
    let per_object = (rss - empty_rss) * 1024.0 * 1024.0 / cached as f64;
    println!("memory at {total} exceptions with grants ({more} more created and all Active in {more_active:.1} s):");
    println!(
        "  controller RSS {rss:.1} MiB, peak RSS {peak:.1} MiB (target <= {PEAK_RSS_MIB} MiB, {}); on an empty control plane {empty_rss:.1} MiB",
        met(peak <= PEAK_RSS_MIB)
    );
    println!(
        "  objects it caches: {cached} = {pes} PolicyExceptions + {cos} ControlOwnerships + {rbs} RoleBindings + {roles} managed Roles + {crbs} ClusterRoleBindings"
    );
    println!("  (RSS - empty RSS) / cached objects: {per_object:.0} bytes per object");
    println!("  heap: {allocated:.1} MiB in live allocations, {resident:.1} MiB resident in the allocator");
    println!("  controller threads: {}", crate::threads(pid));
    // What one object of each kind takes as the controller holds it.
    let footprints = crate::heap::live(&admin).await;
    println!("  heap per object in the form it is cached, counted by allocator:");
    for f in &footprints {
        println!(
            "    {:<26} {:>6.0} bytes in {:>4.0} heap blocks (its JSON: {} bytes)",
            f.kind, f.bytes, f.blocks, f.json
        );
    }
    let by_kind = |kind: &str| {
        footprints
            .iter()
            .find(|f| f.kind.starts_with(kind))
            .map_or(0.0, |f| f.bytes)
    };
    let estimate = pes as f64 * by_kind("PolicyException")
        + cos as f64 * by_kind("ControlOwnership")
        + rbs as f64 * by_kind("RoleBinding")
        + roles as f64 * by_kind("Role");
    println!(
        "    those objects at those sizes: {:.1} MiB (of the {:.1} MiB above the empty controller)",
        estimate / 1024.0 / 1024.0,
        rss - empty_rss
    );
    println!(
        "  controller writes in those namespaces until 2 s after the last Active: {} = {more_per_exception:.2} per exception, by type:",
        more_writes.len()
    );
    print_table(&more_writes);
    let more_per_exception = caused(&mut audit, started, &ours, more).await;
    summary.add(
        format!("{more} more exceptions with grants, until all Active"),
        format!("{more_active:.1} s; {more_per_exception:.2} controller writes per exception (all it caused)"),
        format!(
            "target <= {WRITES_PER_EXCEPTION} writes per exception ({})",
            met(more_per_exception <= WRITES_PER_EXCEPTION)
        ),
    );
    summary.add(
        "heap per cached object, by kind (allocator count)".to_string(),
        footprints
            .iter()
            .map(|f| format!("{} {:.0} B in {:.0} blocks", f.kind, f.bytes, f.blocks))
            .collect::<Vec<_>>()
            .join("; "),
        format!(
            "at these sizes the cached objects take {:.1} MiB",
            estimate / 1024.0 / 1024.0
        ),
    );
    summary.add(
        format!("controller memory at {total} exceptions with grants, {cached} cached objects"),
        format!("RSS {rss:.1} MiB, peak {peak:.1} MiB; {per_object:.0} bytes per cached object"),
        format!(
            "target peak <= {PEAK_RSS_MIB} MiB ({}); empty control plane {empty_rss:.1} MiB",
            met(peak <= PEAK_RSS_MIB)
        ),
    );

    part_done("memory");

    // 5. Restart with all of that in place, once the controller has
    // caught up (its PolicyReports trail a burst): what the new one writes
    // is then only what a restart costs.
    let caught_up = quiet(&mut audit, "scale", Duration::from_secs(10), Duration::from_secs(600)).await;
    println!("  the controller wrote nothing for 10 s after {caught_up:.1} s");
    // What a controller that lived through the bursts keeps once they are
    // over, beside what a restarted one holds (below).
    memory_now(pid, &addr, "then");
    println!("  SIGKILL");
    child.kill().expect("SIGKILL the controller");
    let _ = child.wait();
    let spawned = Timestamp::now();
    let (mut child, addr) = env.spawn_controller("scale-restart", &[]);
    let pid = child.id();
    let (ready, before_ready) = ready_sampled(pid, &addr).await;
    let sampled = sample_memory(pid, &addr, QUIET).await;
    let quiet_end = Timestamp::now();
    let (rss, peak, threads) = (crate::rss_mib(pid), crate::peak_rss_mib(pid), crate::threads(pid));
    let (allocated, resident) = heap_mib(&addr);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let restart = audit.select(|r| r.by("scale-restart") && r.within(spawned, quiet_end));
    let lists = restart.iter().filter(|r| r.verb == "list").count();
    let watches = restart.iter().filter(|r| r.verb == "watch").count();
    let writes: Vec<&Request> = restart.into_iter().filter(|r| r.is_write()).collect();
    println!("restart (SIGKILL, then a new controller with all of the above in place):");
    println!(
        "  spawn -> /readyz 200: {ready:.2} s (target <= {READY_WITHIN_S} s, {})",
        met(ready <= READY_WITHIN_S)
    );
    println!(
        "  writes from spawn until {}s after ready: {} (target 0); lists {lists}, watches {watches}",
        QUIET.as_secs(),
        writes.len()
    );
    if !writes.is_empty() {
        print_table(&writes);
    }
    println!("  then: RSS {rss:.1} MiB, peak RSS {peak:.1} MiB, {threads} threads");
    println!("  heap: {allocated:.1} MiB in live allocations, {resident:.1} MiB resident in the allocator");
    println!(
        "  sampled every 250 ms from ready on: heap live at most {:.1} MiB ({:.1} s after ready), RSS at most {:.1} MiB ({:.1} s after ready); the peak RSS before ready is the part above that",
        sampled.live.0, sampled.live.1, sampled.rss.0, sampled.rss.1
    );
    println!(
        "  sampled every 50 ms from spawn until ready: heap live at most {:.1} MiB ({:.2} s after spawn), RSS at most {:.1} MiB ({:.2} s after spawn)",
        before_ready.live.0, before_ready.live.1, before_ready.rss.0, before_ready.rss.1
    );
    summary.add(
        format!("restart with {cached} objects: spawn -> ready"),
        format!("{ready:.1} s"),
        format!("target <= {READY_WITHIN_S} s ({})", met(ready <= READY_WITHIN_S)),
    );
    summary.add(
        format!("writes in the {} s after the restart", QUIET.as_secs()),
        writes.len().to_string(),
        format!("target 0 ({})", met(writes.is_empty())),
    );
    summary.add(
        "restarted controller's RSS / peak RSS after that",
        format!("{rss:.1} MiB / {peak:.1} MiB"),
        format!("target peak <= {PEAK_RSS_MIB} MiB ({})", met(peak <= PEAK_RSS_MIB)),
    );

    part_done("restart");

    // 6. Idle.
    let requests_before = crate::api_requests(&addr);
    let idle_start = Timestamp::now();
    tokio::time::sleep(QUIET).await;
    let idle_end = Timestamp::now();
    let requests_after = crate::api_requests(&addr);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_writes = audit
        .select(|r| r.by("scale-restart") && r.is_write() && r.within(idle_start, idle_end))
        .len();
    let mut by_verb: Vec<(String, f64)> = requests_after
        .iter()
        .map(|(verb, n)| (verb.clone(), n - requests_before.get(verb).copied().unwrap_or(0.0)))
        .filter(|(_, n)| *n > 0.0)
        .collect();
    by_verb.sort_by(|a, b| a.0.cmp(&b.0));
    // Folded from +0.0: an empty float sum is -0.0.
    let idle_requests = by_verb.iter().fold(0.0, |sum, (_, n)| sum + n);
    let verbs = by_verb
        .iter()
        .map(|(v, n)| format!("{v} {n:.0}"))
        .collect::<Vec<_>>()
        .join(", ");
    println!("idle ({} s, nothing happening):", QUIET.as_secs());
    println!(
        "  writes: {idle_writes} (target 0); API requests (steward_api_requests_total): {idle_requests:.0}{}",
        if verbs.is_empty() {
            String::new()
        } else {
            format!(" ({verbs})")
        }
    );
    summary.add(
        format!("idle {} s: writes / API requests", QUIET.as_secs()),
        format!("{idle_writes} / {idle_requests:.0}"),
        format!("target 0 writes ({})", met(idle_writes == 0)),
    );
    part_done("idle");

    // 7. The API server restarted under the controller, past every watch:
    // each resumed watch is answered 410 Gone and relists everything. A
    // relist that finds what the cache holds must cost no reconcile and no
    // write, and no more memory than the list itself.
    let reconciles_before = reconciles_at(&addr);
    let down = Timestamp::now();
    env.restart_api_server_past_every_watch();
    let up = Timestamp::now();
    let sampled = sample_memory(pid, &addr, QUIET).await;
    let window_end = Timestamp::now();
    let reconciled = reconciles_at(&addr) - reconciles_before;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_restart = audit.select(|r| r.by("scale-restart") && r.within(down, window_end));
    let relisted: BTreeMap<&str, usize> =
        after_restart
            .iter()
            .filter(|r| r.verb == "list" && r.code == 200)
            .fold(BTreeMap::new(), |mut m, r| {
                *m.entry(r.resource.as_str()).or_default() += 1;
                m
            });
    let writes: Vec<&Request> = after_restart.iter().copied().filter(|r| r.is_write()).collect();
    // Without a relist of each kind the controller decides from, a count
    // of zero reconciles would say nothing.
    let unlisted: Vec<&str> = ["policyexceptions", "controlownerships", "roles", "rolebindings"]
        .into_iter()
        .filter(|k| !relisted.contains_key(k))
        .collect();
    println!(
        "API server restart past every watch (down {:.1} s), then {} s:",
        up.duration_since(down).as_secs_f64(),
        QUIET.as_secs()
    );
    println!("  list requests (pages of 500) by resource: {relisted:?}; not relisted: {unlisted:?}");
    println!(
        "  reconciles started: {reconciled:.0}; writes: {}; RSS at most {:.1} MiB ({:.1} s after the API server was back), heap live at most {:.1} MiB",
        writes.len(),
        sampled.rss.0,
        sampled.rss.1,
        sampled.live.0
    );
    if !writes.is_empty() {
        print_table(&writes);
    }
    summary.add(
        format!("API server restart under {cached} cached objects: list requests (pages of 500) / reconciles / writes"),
        format!(
            "{} / {reconciled:.0} / {}",
            relisted.values().sum::<usize>(),
            writes.len()
        ),
        format!(
            "every kind relisted, 0 writes ({}; not relisted: {unlisted:?})",
            met(writes.is_empty() && unlisted.is_empty())
        ),
    );
    summary.add(
        "controller RSS at most, in the minute after that restart",
        format!("{:.1} MiB", sampled.rss.0),
        format!(
            "target peak <= {PEAK_RSS_MIB} MiB ({})",
            met(sampled.rss.0 <= PEAK_RSS_MIB)
        ),
    );
    let _ = child.kill();
    let _ = child.wait();
    part_done("API server restart");

    println!(
        "time per part: {}",
        parts
            .iter()
            .map(|(name, s)| format!("{name} {s:.0} s"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "scale summary (factor {f}, kube-apiserver {}, {:.0} s in all):",
        env.server_version,
        run_started.elapsed().as_secs_f64()
    );
    println!("| what | result | floor / target |");
    println!("|---|---|---|");
    for [what, result, target] in &summary.0 {
        println!("| {what} | {result} | {target} |");
    }
}
