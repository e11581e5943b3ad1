//! Prometheus metrics. Counters and histograms are updated by the
//! reconcilers; gauges describing the objects (exceptions by phase, those
//! awaiting approval, unreviewed break glass, seconds to the next expiry,
//! overdue reviews, drift bindings) are computed from the caches at scrape
//! time, so they cost nothing between scrapes.

use std::sync::{Arc, Mutex, OnceLock};

use jiff::Timestamp;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::Phase;
use crate::cache::Caches;
use crate::decide::conditions::{is_true, types};
use crate::decide::policy_report::{awaits_approval, break_glass_unreviewed};

/// `kind` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// ControlOwnership or PolicyException.
    pub kind: String,
}

/// `kind` and `error` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// ControlOwnership or PolicyException.
    pub kind: String,
    /// Error category.
    pub error: String,
}

/// `phase` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    /// Exception phase.
    pub phase: String,
}

/// Labels of a per-exception series: bounded by the number of exceptions.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExceptionLabels {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The control it is an exception to.
    pub control: String,
}

/// `namespace` label: bounded by the number of namespaces holding
/// exceptions.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NamespaceLabel {
    /// The namespace.
    pub namespace: String,
}

/// Labels of a per-exception break-glass series: one per exception standing
/// on a break-glass approval no approver has reviewed, so an alert can name
/// it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BreakGlassLabels {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub exception: String,
    /// The control it is an exception to.
    pub control: String,
}

/// Labels of a per-control series: bounded by the number of controls.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControlLabels {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

type Seconds = Gauge<f64, std::sync::atomic::AtomicU64>;

/// `verb` label of API requests.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerbLabel {
    /// get, watch, post, put, patch or delete.
    pub verb: String,
}

/// All metrics of the process.
pub struct Metrics {
    registry: Mutex<Registry>,
    reconciles: Family<KindLabel, Counter>,
    errors: Family<ErrorLabels, Counter>,
    duration: Family<KindLabel, Histogram>,
    exceptions: Family<PhaseLabel, Gauge>,
    next_expiry: Gauge<f64, std::sync::atomic::AtomicU64>,
    overdue: Gauge,
    drift: Gauge,
    expiries: Counter,
    glass_broken: Counter,
    expiry_lag: Histogram,
    leader: Gauge,
    requests: Family<VerbLabel, Counter>,
    expiry_at: Family<ExceptionLabels, Seconds>,
    review_due_at: Family<ControlLabels, Seconds>,
    awaiting: Family<NamespaceLabel, Gauge>,
    break_glass: Family<BreakGlassLabels, Gauge>,
    heap_allocated: Gauge,
    heap_resident: Gauge,
    new_work: Gauge,
    counts_waiting: Gauge,
    count_waits: Counter,
    /// The caches the gauges describe; set by the leader only, so that the
    /// replicas of one Deployment do not all report the same objects.
    caches: OnceLock<Arc<Caches>>,
    /// The shards this process writes for: the gauges describe only their
    /// namespaces, so the replicas' figures add up to the cluster's.
    shards: OnceLock<Arc<crate::shard::Held>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("steward");
        let reconciles = Family::<KindLabel, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration = Family::<KindLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 14))
        });
        let exceptions = Family::<PhaseLabel, Gauge>::default();
        let next_expiry = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        let overdue = Gauge::default();
        let drift = Gauge::default();
        let expiries = Counter::default();
        let glass_broken = Counter::default();
        let expiry_lag = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        let leader = Gauge::default();
        let requests = Family::<VerbLabel, Counter>::default();
        let expiry_at = Family::<ExceptionLabels, Seconds>::default();
        let review_due_at = Family::<ControlLabels, Seconds>::default();
        let awaiting = Family::<NamespaceLabel, Gauge>::default();
        let break_glass = Family::<BreakGlassLabels, Gauge>::default();
        let heap_allocated = Gauge::default();
        let heap_resident = Gauge::default();
        let new_work = Gauge::default();
        let counts_waiting = Gauge::default();
        let count_waits = Counter::default();
        registry.register(
            "control_count_waits",
            "Times a ControlOwnership's changed activeExceptions began to wait for new work under way to end",
            count_waits.clone(),
        );
        registry.register(
            "new_work",
            "Reconciles that can only add (new exceptions and controls), waiting for a turn or in progress",
            new_work.clone(),
        );
        registry.register(
            "control_counts_waiting",
            "ControlOwnerships whose changed activeExceptions waits for the new work under way to end",
            counts_waiting.clone(),
        );
        registry.register(
            "heap_allocated_bytes",
            "Bytes the process holds in live allocations (jemalloc stats.allocated; 0 where jemalloc is not the allocator)",
            heap_allocated.clone(),
        );
        registry.register(
            "heap_resident_bytes",
            "Bytes of physical memory the allocator holds (jemalloc stats.resident): the difference to allocated is what it keeps for reuse",
            heap_resident.clone(),
        );
        registry.register(
            "exceptions_awaiting_approval",
            "Pending PolicyExceptions awaiting approval (or a verified requester), by namespace (absent: none)",
            awaiting.clone(),
        );
        registry.register(
            "exceptions_break_glass",
            "1 for each Pending or Active PolicyException approved by break glass and not yet reviewed by an approver",
            break_glass.clone(),
        );
        registry.register(
            "exception_expiry_timestamp_seconds",
            "When each Pending or Active PolicyException expires (Unix time)",
            expiry_at.clone(),
        );
        registry.register(
            "control_review_due_timestamp_seconds",
            "When each ControlOwnership's review is due (Unix time)",
            review_due_at.clone(),
        );
        registry.register(
            "api_requests",
            "Requests this process sent to the Kubernetes API, by verb (watch: a GET with watch=true)",
            requests.clone(),
        );
        registry.register("leader", "1 while this process runs the controllers", leader.clone());
        registry.register("reconciles", "Reconciliations by kind", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Failed reconciliations by kind and error",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconciliation duration by kind",
            duration.clone(),
        );
        registry.register("exceptions", "PolicyExceptions by phase", exceptions.clone());
        registry.register(
            "next_expiry_seconds",
            "Seconds until the next Active PolicyException expires (absent: none active)",
            next_expiry.clone(),
        );
        registry.register(
            "reviews_overdue",
            "ControlOwnerships whose review is overdue",
            overdue.clone(),
        );
        registry.register(
            "drift_bindings",
            "Bindings reported as drift across all controls",
            drift.clone(),
        );
        registry.register(
            "expiries_enforced",
            "Grants revoked because their exception expired",
            expiries.clone(),
        );
        registry.register(
            "break_glass",
            "Exceptions approved by break glass (counted when glass is broken, so one whose record was \
             later changed or deleted still shows)",
            glass_broken.clone(),
        );
        registry.register(
            "expiry_lag_seconds",
            "Time from expiresAt to the grant being revoked",
            expiry_lag.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            reconciles,
            errors,
            duration,
            exceptions,
            next_expiry,
            overdue,
            drift,
            expiries,
            glass_broken,
            expiry_lag,
            leader,
            requests,
            expiry_at,
            review_due_at,
            awaiting,
            break_glass,
            heap_allocated,
            heap_resident,
            new_work,
            counts_waiting,
            count_waits,
            caches: OnceLock::new(),
            shards: OnceLock::new(),
        }
    }

    /// Gives the scrape handler the caches to describe.
    pub fn attach(&self, caches: Arc<Caches>, shards: Arc<crate::shard::Held>) {
        let _ = self.caches.set(caches);
        let _ = self.shards.set(shards);
    }

    /// Records one reconciliation.
    pub fn reconciled(&self, kind: &str, seconds: f64) {
        let l = KindLabel { kind: kind.into() };
        self.reconciles.get_or_create(&l).inc();
        self.duration.get_or_create(&l).observe(seconds);
    }

    /// Records a failed reconciliation.
    pub fn failed(&self, kind: &str, error: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                kind: kind.into(),
                error: error.into(),
            })
            .inc();
    }

    /// Counts one request to the Kubernetes API.
    pub fn api_request(&self, verb: &str) {
        self.requests.get_or_create(&VerbLabel { verb: verb.into() }).inc();
    }

    /// Sets how many reconciles that can only add are under way, and how
    /// many controls' counts wait for them (`reconcile::burst`).
    pub fn burst(&self, new_work: usize, counts_waiting: usize) {
        self.new_work.set(i64::try_from(new_work).unwrap_or(i64::MAX));
        self.counts_waiting
            .set(i64::try_from(counts_waiting).unwrap_or(i64::MAX));
    }

    /// Counts a control's count beginning to wait for a burst.
    pub fn count_began_waiting(&self) {
        self.count_waits.inc();
    }

    /// Marks this process as the leader (or not).
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Counts one exception approved by break glass.
    pub fn glass_broken(&self) {
        self.glass_broken.inc();
    }

    /// Records a grant revoked at expiry, `lag` after expiresAt.
    pub fn expiry_enforced(&self, lag_seconds: f64) {
        self.expiries.inc();
        self.expiry_lag.observe(lag_seconds.max(0.0));
    }

    fn refresh(&self, now: Timestamp) {
        if let Some((allocated, resident)) = heap() {
            self.heap_allocated.set(i64::try_from(allocated).unwrap_or(i64::MAX));
            self.heap_resident.set(i64::try_from(resident).unwrap_or(i64::MAX));
        }
        let Some(c) = self.caches.get() else { return };
        let mine = |ns: Option<&String>| {
            self.shards
                .get()
                .is_none_or(|held| held.owns(ns.map_or("", |n| n.as_str())))
        };
        let mut by_phase = std::collections::HashMap::<&str, i64>::new();
        let mut next: Option<f64> = None;
        // Rebuilt at each scrape: a deleted or expired object's series goes.
        self.expiry_at.clear();
        self.review_due_at.clear();
        self.awaiting.clear();
        self.break_glass.clear();
        let mut awaiting = std::collections::BTreeMap::<String, i64>::new();
        for pe in c
            .exceptions
            .state()
            .into_iter()
            .filter(|pe| mine(pe.metadata.namespace.as_ref()))
        {
            let Some(status) = &pe.status else { continue };
            let Some(phase) = status.phase else { continue };
            *by_phase.entry(phase.as_str()).or_default() += 1;
            let namespace = || pe.metadata.namespace.clone().unwrap_or_default();
            if awaits_approval(status) {
                *awaiting.entry(namespace()).or_default() += 1;
            }
            if break_glass_unreviewed(status) {
                self.break_glass
                    .get_or_create(&BreakGlassLabels {
                        namespace: namespace(),
                        exception: pe.metadata.name.clone().unwrap_or_default(),
                        control: pe.spec.control.clone(),
                    })
                    .set(1);
            }
            // One awaiting approval grants nothing, so nothing of it expires
            // (the expiring-soon alert would say its grant ends).
            if matches!(phase, Phase::Pending | Phase::Active)
                && !awaits_approval(status)
                && let Some(t) = status.expires_at.as_deref().and_then(|s| s.parse::<Timestamp>().ok())
            {
                self.expiry_at
                    .get_or_create(&ExceptionLabels {
                        namespace: pe.metadata.namespace.clone().unwrap_or_default(),
                        name: pe.metadata.name.clone().unwrap_or_default(),
                        control: pe.spec.control.clone(),
                    })
                    .set(unix_seconds(t));
            }
            if phase == Phase::Active
                && let Some(t) = status.expires_at.as_deref().and_then(|s| s.parse::<Timestamp>().ok())
            {
                let secs = t.duration_since(now).as_secs_f64();
                next = Some(next.map_or(secs, |n| n.min(secs)));
            }
        }
        for p in [Phase::Pending, Phase::Active, Phase::Expired, Phase::Rejected] {
            let n = by_phase.get(p.as_str()).copied().unwrap_or(0);
            self.exceptions
                .get_or_create(&PhaseLabel {
                    phase: p.as_str().into(),
                })
                .set(n);
        }
        for (namespace, n) in awaiting {
            self.awaiting.get_or_create(&NamespaceLabel { namespace }).set(n);
        }
        self.next_expiry.set(next.unwrap_or(f64::NAN));
        let controls: Vec<_> = c
            .controls
            .state()
            .into_iter()
            .filter(|co| mine(co.metadata.namespace.as_ref()))
            .collect();
        for co in &controls {
            if let Some(t) = co
                .status
                .as_ref()
                .and_then(|s| s.next_review_due.as_deref())
                .and_then(|s| s.parse::<Timestamp>().ok())
            {
                self.review_due_at
                    .get_or_create(&ControlLabels {
                        namespace: co.metadata.namespace.clone().unwrap_or_default(),
                        name: co.metadata.name.clone().unwrap_or_default(),
                    })
                    .set(unix_seconds(t));
            }
        }
        let overdue = controls
            .iter()
            .filter(|co| {
                co.status
                    .as_ref()
                    .is_some_and(|s| is_true(&s.conditions, types::REVIEW_OVERDUE))
            })
            .count();
        let drift: usize = controls
            .iter()
            .filter_map(|co| co.status.as_ref())
            .flat_map(|s| s.identities.iter())
            .map(|i| i.drift.len())
            .sum();
        self.overdue.set(i64::try_from(overdue).unwrap_or(i64::MAX));
        self.drift.set(i64::try_from(drift).unwrap_or(i64::MAX));
    }

    /// The text exposition at `now`.
    pub fn render(&self, now: Timestamp) -> String {
        self.refresh(now);
        let mut out = String::new();
        if let Ok(registry) = self.registry.lock() {
            // Writing into a String cannot fail.
            let _ = encode(&mut out, &registry);
        }
        out
    }
}

/// jemalloc's allocated and resident bytes, refreshed now (its statistics
/// are a snapshot taken at each epoch advance).
#[cfg(not(target_env = "msvc"))]
fn heap() -> Option<(usize, usize)> {
    use tikv_jemalloc_ctl::{epoch, stats};
    epoch::advance().ok()?;
    Some((stats::allocated::read().ok()?, stats::resident::read().ok()?))
}

#[cfg(target_env = "msvc")]
fn heap() -> Option<(usize, usize)> {
    None
}

fn unix_seconds(t: Timestamp) -> f64 {
    t.as_millisecond() as f64 / 1000.0
}

/// Shared handle.
pub type SharedMetrics = Arc<Metrics>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::policy_report::approval_fixtures::{awaiting, break_glass, reviewed, unverified};

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("a timestamp")
    }

    /// The exposition of `exceptions` at `now`, as the leader serves it.
    fn scrape(exceptions: Vec<crate::api::PolicyException>, now: Timestamp) -> Vec<String> {
        let metrics = Metrics::new();
        metrics.attach(
            Arc::new(Caches::fed(vec![], exceptions)),
            Arc::new(crate::shard::Held::everything()),
        );
        metrics.render(now).lines().map(String::from).collect()
    }

    fn series<'a>(lines: &'a [String], metric: &str) -> Vec<&'a str> {
        let mut found: Vec<&str> = lines
            .iter()
            .map(String::as_str)
            .filter(|l| l.starts_with(metric) && l[metric.len()..].starts_with(['{', ' ']))
            .collect();
        found.sort();
        found
    }

    #[test]
    fn exceptions_awaiting_approval_are_counted_by_namespace() {
        let now = ts("2026-11-28T12:00:00Z");
        let lines = scrape(
            vec![
                awaiting("shop", "a", now),
                unverified("shop", "b", now),
                awaiting("bank", "c", now),
                // Approved (break glass reviewed): not awaiting.
                reviewed("ledger", "d", now),
                // Expired unapproved: it can no longer be approved.
                awaiting("ledger", "e", ts("2026-12-01T00:00:00Z")),
            ],
            now,
        );
        assert_eq!(
            series(&lines, "steward_exceptions_awaiting_approval"),
            [
                r#"steward_exceptions_awaiting_approval{namespace="bank"} 1"#,
                r#"steward_exceptions_awaiting_approval{namespace="shop"} 2"#,
            ]
        );
        // They are Pending, as the phase gauge says.
        assert!(
            lines.contains(&r#"steward_exceptions{phase="Pending"} 3"#.to_string()),
            "{lines:#?}"
        );
    }

    #[test]
    fn each_unreviewed_break_glass_has_its_own_series_none_once_reviewed_or_expired() {
        let now = ts("2026-11-28T12:00:00Z");
        let lines = scrape(
            vec![
                break_glass("shop", "glass", now),
                reviewed("shop", "checked", now),
                break_glass("bank", "over", ts("2026-12-01T00:00:00Z")),
                awaiting("bank", "waiting", now),
            ],
            now,
        );
        assert_eq!(
            series(&lines, "steward_exceptions_break_glass"),
            [r#"steward_exceptions_break_glass{namespace="shop",exception="glass",control="payments"} 1"#]
        );
        // Reviewed: no series.
        let none = scrape(vec![reviewed("shop", "glass", now)], now);
        assert!(series(&none, "steward_exceptions_break_glass").is_empty(), "{none:#?}");
        assert!(
            series(&none, "steward_exceptions_awaiting_approval").is_empty(),
            "{none:#?}"
        );
    }
}
