//! Thin I/O around `decide`: observe (read the caches), decide, apply RBAC,
//! delete what is no longer desired, then write status, and requeue at the
//! next instant something changes. Also wires both controllers and their
//! watches.

mod burst;
mod control;
mod exception;
mod expiry_clock;
mod guarded_delete;
mod managed_rbac;
mod policy_report;
mod runner;
mod spec_changes;
mod sweep;
#[cfg(test)]
mod tests;
mod triggers;

pub use runner::Action;
pub use triggers::{Config, run};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::future::Future;

use jiff::Timestamp;
use k8s_openapi::NamespaceResourceScope;
use kube::api::Api;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

use crate::api::FINALIZER;

use crate::apply::Writer;
use crate::cache::Caches;
use crate::metrics::Metrics;

/// Errors of the I/O layer. Invalid specs are not errors: they are status.
#[derive(Debug, Error)]
pub enum Error {
    /// An API call failed; retried with backoff.
    #[error("API call failed: {0}")]
    Api(#[from] kube::Error),
    /// Adding or removing the finalizer failed.
    #[error("could not add or remove the finalizer")]
    Finalizer(#[source] kube::Error),
    /// kube's finalizer helper refused the object.
    #[error("finalizer helper: {0}")]
    FinalizerUse(&'static str),
    /// A managed Role or RoleBinding could not be put in place.
    #[error(transparent)]
    Pair(#[from] managed_rbac::PairError),
    /// Some identities of a control could not be served; their status says
    /// why. Retried with backoff.
    #[error("{0} identities not in place")]
    Identities(usize),
    /// The decision's task did not complete (the runtime is shutting down).
    #[error("the decision did not complete")]
    Decide(#[source] tokio::task::JoinError),
    /// A grant that must go could not be deleted: retried every
    /// `REVOCATION_RETRY` for a while (`retry_after`), not with the growing
    /// backoff, so a grant whose window closed while the API server was
    /// away goes as soon as it is back.
    #[error("could not revoke a grant: {0}")]
    Revocation(#[source] Box<Error>),
}

/// How often a failed revocation is tried again (see `Error::Revocation`).
const REVOCATION_RETRY: Duration = Duration::from_millis(500);

impl Error {
    /// Label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Api(_) => "api",
            Error::Finalizer(_) | Error::FinalizerUse(_) => "finalizer",
            Error::Pair(_) | Error::Identities(_) => "identity",
            Error::Decide(_) => "decide",
            Error::Revocation(_) => "revocation",
        }
    }
}

/// How soon a reconcile that found its object's cache behind our own write
/// looks again. The watch event of that write normally triggers it first;
/// this only covers a lost event.
const LOST_EVENT_RETRY: Duration = Duration::from_secs(10);

/// Shared state of both controllers: the caches, the writer, the metrics.
pub struct Context {
    /// The process's caches.
    pub caches: Arc<Caches>,
    /// Every write goes through it.
    pub writer: Writer,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Verifies approval records.
    pub key: crate::decide::approval::Key,
    /// Namespaces whose PolicyReport must be rebuilt.
    reports: futures::channel::mpsc::UnboundedSender<String>,
    failures: Mutex<HashMap<String, u32>>,
    /// The shards this process writes for.
    pub shards: Arc<crate::shard::Held>,
    /// Turns for reconciles that can only add (a grant not yet made): they
    /// hold what they build (objects, request bodies, Events) until their
    /// writes are done, and ten thousand at once held 126 MiB more than the
    /// caches. A reconcile that may revoke never waits for one
    /// (`exception::reconcile`).
    new_work: tokio::sync::Semaphore,
    /// Turns for the controls released at the end of a burst: thousands
    /// at once, each with a status write to make. A released reconcile
    /// holds its decision and request body until its write is answered;
    /// with the turns of new work (16 per request slot), a thousand of them
    /// waited for the request slots at once, the largest part of the
    /// controller's peak at 10,000 exceptions. Two per request slot keep
    /// the slots busy.
    released: tokio::sync::Semaphore,
    /// Decisions being made: one per core. Decisions are CPU work, and
    /// after a restart every object's reconcile decides at once; unbounded,
    /// the blocking pool's threads outnumbered the runtime's and decided
    /// faster than the reconciles could compare and drop the results, which
    /// piled up. A slot is taken after the early revocation and given back
    /// before any write, and slots are served first come, first served, as
    /// the blocking pool's queue is.
    deciding: tokio::sync::Semaphore,
    /// New work under way, and the controls whose count waits for its end.
    burst: burst::Burst,
    /// Deletes sent and not yet answered (`guarded_delete`).
    deletes: guarded_delete::InFlight,
}

/// A reconcile's turn for new work (`Context::new_work`): counted as new
/// work from before it waits until it ends.
pub(super) struct Turn<'a> {
    _permit: Option<tokio::sync::SemaphorePermit<'a>>,
    _counted: burst::NewWork<'a>,
}

impl Context {
    /// Waits for a turn for new work (see `new_work`).
    async fn new_work_turn(&self) -> Turn<'_> {
        let counted = self.burst.started();
        Turn {
            // Closed only when the context is dropped, which ends this
            // task too.
            _permit: self.new_work.acquire().await.ok(),
            _counted: counted,
        }
    }

    /// Waits for a slot to decide in (see `deciding`).
    async fn decision_slot(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        // Closed only when the context is dropped, which ends this task too.
        self.deciding.acquire().await.ok()
    }

    /// Waits for a turn as a control released at the end of a burst (see
    /// `released` and `burst::take_released`); not counted as new work.
    async fn released_turn(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        // Closed only when the context is dropped, which ends this task too.
        self.released.acquire().await.ok()
    }

    /// Marks a namespace's PolicyReport for a rebuild.
    pub fn report_dirty(&self, ns: &str) {
        let _ = self.reports.unbounded_send(ns.to_string());
    }

    /// Whether `obj`'s namespace is in a shard this process holds. An
    /// object of another shard is left alone, timers included: its holder
    /// reconciles it, and taking its shard over reconciles everything again.
    pub fn writes_for(&self, obj: &impl Resource) -> bool {
        self.shards.owns(obj.meta().namespace.as_deref().unwrap_or_default())
    }

    fn succeeded(&self, key: &str) {
        if let Ok(mut f) = self.failures.lock() {
            f.remove(key);
        }
    }

    /// The objects of kind `K` whose last reconcile failed.
    pub fn failing<K: Resource<DynamicType = ()>>(&self) -> Vec<kube::runtime::reflector::ObjectRef<K>> {
        let prefix = format!("{}/", K::kind(&()));
        let Ok(failures) = self.failures.lock() else {
            return Vec::new();
        };
        failures
            .keys()
            .filter_map(|k| {
                // `key` wrote kind/namespace/name; neither holds a '/'.
                let (ns, name) = k.strip_prefix(&prefix)?.split_once('/')?;
                Some(kube::runtime::reflector::ObjectRef::new(name).within(ns))
            })
            .collect()
    }

    /// Counts one more failure of `key`; returns how many in a row.
    fn failed(&self, key: &str) -> u32 {
        match self.failures.lock() {
            Ok(mut f) => {
                let n = f.entry(key.to_string()).or_insert(0);
                *n = n.saturating_add(1);
                *n
            }
            Err(_) => 1,
        }
    }
}

/// Exponential backoff after `n` failures in a row: 500 ms doubling to 1 min.
fn backoff(n: u32) -> Duration {
    let ms = 500u64.saturating_mul(1u64 << n.min(10).saturating_sub(1));
    Duration::from_millis(ms.min(60_000))
}

/// Failed revocations retried every `REVOCATION_RETRY` before a backoff
/// takes over: 20 s of them, longer than an API server restart takes, and
/// no endless two requests a second per grant when the failure is one that
/// retrying cannot mend.
const FAST_REVOCATION_TRIES: u32 = 40;

/// How soon to retry after the `n`th failure in a row of `err`.
fn retry_after(err: &Error, n: u32) -> Duration {
    match err {
        Error::Revocation(_) => revocation_retry(n),
        _ => backoff(n),
    }
}

/// The longest a failed revocation waits before it is tried again: an
/// outage longer than the fast tries must not leave a grant that should be
/// gone waiting a minute after the API server is back.
const REVOCATION_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// How soon to try a revocation again after its `n`th failure in a row.
fn revocation_retry(n: u32) -> Duration {
    if n <= FAST_REVOCATION_TRIES {
        REVOCATION_RETRY
    } else {
        backoff(n - FAST_REVOCATION_TRIES).min(REVOCATION_BACKOFF_MAX)
    }
}

/// `delay`, but no later than just after `ends`, the instant a grant ends:
/// a reconcile that failed before it (a status write while the API server
/// was away) must not back off past it, or the revocation and the Expired
/// status wait for the backoff.
fn no_later_than(delay: Duration, ends: Option<Timestamp>, now: Timestamp) -> Duration {
    match ends.map(|t| Duration::try_from(t.duration_since(now))) {
        Some(Ok(until)) => delay.min(until + Duration::from_millis(1)),
        // Ended already: the failure was its revocation's, or came after it.
        _ => delay,
    }
}

#[cfg(test)]
impl Context {
    /// A context over `caches` whose every request goes to `client`, for
    /// tests; PolicyReport marks go nowhere.
    fn for_test(caches: Arc<Caches>, client: kube::Client) -> Self {
        let reporter = kube::runtime::events::Reporter {
            controller: "steward".into(),
            instance: None,
        };
        Self {
            caches,
            writer: Writer::new(client, reporter),
            metrics: Arc::new(Metrics::new()),
            key: test_key(),
            reports: futures::channel::mpsc::unbounded().0,
            failures: Mutex::default(),
            shards: Arc::new(crate::shard::Held::everything()),
            new_work: tokio::sync::Semaphore::new(NEW_WORK_IN_TESTS),
            released: tokio::sync::Semaphore::new(NEW_WORK_IN_TESTS),
            deciding: tokio::sync::Semaphore::new(2),
            burst: burst::Burst::new(Arc::new(Metrics::new())).0,
            deletes: Default::default(),
        }
    }
}

/// Turns for new work in unit tests (`Context::new_work`).
#[cfg(test)]
const NEW_WORK_IN_TESTS: usize = 4;

/// The key unit tests sign and verify approvals with.
#[cfg(test)]
pub fn test_key() -> crate::decide::approval::Key {
    // 32 bytes: long enough by construction.
    crate::decide::approval::Key::new(&[7; 32]).expect("a 32-byte key")
}

/// Runs a pure decision on the blocking pool. Reconciles, the runners and
/// the expiry clock share the runtime's few worker threads: a decision over
/// megabyte objects (validation, digests) made on one would hold up
/// everything queued on that thread, an expiry due meanwhile among them.
async fn off_task<T: Send + 'static>(decide: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(decide).await.map_err(Error::Decide)
}

/// Requeue at `wake_at` exactly (never a polling interval), or wait for a
/// change when nothing is scheduled.
pub fn requeue_at(wake_at: Option<Timestamp>, now: Timestamp) -> Action {
    match wake_at {
        Some(t) => {
            let d = t.duration_since(now);
            // The timer may fire a hair early; the decision is then unchanged
            // and the object requeues for the remainder.
            let d = Duration::try_from(d).unwrap_or(Duration::ZERO);
            Action::requeue(d + Duration::from_millis(1))
        }
        None => Action::await_change(),
    }
}

fn key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    )
}

/// Unwraps the finalizer helper's result. Adding or removing the finalizer
/// is a JSON patch guarded by a test of the cached finalizer list; when the
/// cache is a step behind the server the test fails (409/422). That is not a
/// failure: the watch event that brings the cache up to date triggers the
/// next reconcile, and a short requeue covers a lost event.
/// (The helper's own `Action` says nothing here: what the reconcile asked
/// for is kept beside it, see `finalized`.)
pub fn finalizer_outcome<T>(result: Result<T, kube::runtime::finalizer::Error<Error>>) -> Result<Action, Error> {
    use kube::runtime::finalizer::Error as F;
    match result {
        Ok(_) => Ok(Action::await_change()),
        Err(F::ApplyFailed(e) | F::CleanupFailed(e)) => Err(e),
        Err(F::AddFinalizer(kube::Error::Api(s)) | F::RemoveFinalizer(kube::Error::Api(s)))
            if s.code == 409 || s.code == 422 =>
        {
            Ok(Action::requeue(Duration::from_millis(500)))
        }
        Err(F::AddFinalizer(e) | F::RemoveFinalizer(e)) => Err(Error::Finalizer(e)),
        Err(F::UnnamedObject) => Err(Error::FinalizerUse("the object has no name")),
        Err(F::InvalidFinalizer) => Err(Error::FinalizerUse("invalid finalizer name")),
    }
}

/// Runs one reconcile of `obj` through kube's finalizer helper (which adds
/// Steward's finalizer before `reconcile` sees `Apply`, and removes it after
/// `Cleanup`), then records the outcome: backoff reset, PolicyReport marked,
/// metrics. A finalizer just added is followed by `Apply` in the same
/// reconcile.
async fn finalized<K, F, Fut>(ctx: &Context, obj: Arc<K>, reconcile: F) -> Result<Action, Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    F: FnOnce(FinalizerEvent<K>) -> Fut,
    Fut: Future<Output = Result<Action, Error>>,
{
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.writer.client().clone(), &ns);
    let started = std::time::Instant::now();
    let key = key(obj.as_ref());
    let deleting = obj.meta().deletion_timestamp.is_some();
    let has_finalizer = obj.finalizers().iter().any(|f| f == FINALIZER);
    // kube's helper futures are boxed, and skipped where they would only
    // call `reconcile`: thousands of reconciles may wait for their decision
    // at once, and each would otherwise hold room for the helper's requests.
    let action = match (deleting, has_finalizer) {
        // What the helper does here: the work, nothing else.
        (false, true) => reconcile(FinalizerEvent::Apply(obj)).await?,
        (false, false) => {
            // The helper adds the finalizer and stops there, leaving the
            // work to the reconcile its watch event brings. At scale that
            // event queues behind thousands of others, and nothing the
            // object wants exists until then; so the work follows at once.
            // (The helper's reconcile is not called when it adds.)
            let added = Box::pin(finalizer(&api, FINALIZER, obj.clone(), |_| {
                futures::future::ready(Ok::<_, Error>(kube::runtime::controller::Action::await_change()))
            }))
            .await;
            match added {
                Ok(_) => reconcile(FinalizerEvent::Apply(obj)).await?,
                Err(e) => finalizer_outcome::<()>(Err(e))?,
            }
        }
        (true, _) => {
            // The helper speaks kube's `Action`, whose delay cannot be read
            // back: the reconcile's own answer is kept here.
            let mut asked = None;
            let ran = Box::pin(finalizer(&api, FINALIZER, obj, |event| async {
                asked = Some(reconcile(event).await?);
                Ok(kube::runtime::controller::Action::await_change())
            }))
            .await;
            let action = finalizer_outcome(ran)?;
            asked.unwrap_or(action)
        }
    };
    Ok(ctx.done::<K>(&key, &ns, started, action))
}

impl Context {
    /// Records a successful reconcile: backoff reset, PolicyReport marked,
    /// metrics.
    fn done<K: Resource<DynamicType = ()>>(
        &self,
        key: &str,
        ns: &str,
        started: std::time::Instant,
        action: Action,
    ) -> Action {
        self.succeeded(key);
        self.report_dirty(ns);
        self.metrics
            .reconciled(K::kind(&()).as_ref(), started.elapsed().as_secs_f64());
        action
    }
}

/// Error policy of the controls' controller: log, then retry with backoff.
pub fn error_policy<K: Resource<DynamicType = ()>>(obj: Arc<K>, err: &Error, ctx: Arc<Context>) -> Action {
    let delay = retry_after(err, ctx.failed(&key(obj.as_ref())));
    failed::<K>(&obj, err, &ctx, delay)
}

/// Error policy of the exceptions' controller: as the controls', but never
/// past the instant the exception's grant ends (`no_later_than`).
pub fn exception_error_policy(pe: Arc<crate::api::PolicyException>, err: &Error, ctx: Arc<Context>) -> Action {
    let delay = retry_after(err, ctx.failed(&key(pe.as_ref())));
    let delay = no_later_than(delay, crate::decide::exception::grant_ends(&pe), Timestamp::now());
    failed(pe.as_ref(), err, &ctx, delay)
}

/// Logs and counts a failed reconcile; retries it after `delay`.
fn failed<K: Resource<DynamicType = ()>>(obj: &K, err: &Error, ctx: &Context, delay: Duration) -> Action {
    ctx.metrics.failed(K::kind(&()).as_ref(), err.metric_label());
    tracing::warn!(
        error = %err,
        kind = %K::kind(&()),
        namespace = obj.namespace().unwrap_or_default(),
        object = %obj.name_any(),
        retry_in_ms = delay.as_millis() as u64,
        "reconcile failed"
    );
    Action::requeue(delay)
}
