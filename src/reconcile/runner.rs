//! Runs the reconciles of one kind as kube's `Controller` does: each change
//! wakes the objects it concerns, an object is reconciled once at a time and
//! again after that if it was woken meanwhile, at the instant its [`Action`]
//! asks, or after the error policy's delay.
//!
//! Why not kube's own runner: kube-runtime 5 polls every reconcile in
//! flight, and scans every wake-up held for an object already running, on
//! each event (`FutureHashMap`, `Scheduler::hold_unless`). A burst of new
//! objects keeps thousands in flight (each waiting for its turn of new
//! work), so every event cost thousands of polls and hashes: about a fifth
//! of the controller's CPU in a convergence of 1,500 controls. Here each
//! event costs a constant: finished reconciles come from a
//! `FuturesUnordered`, the objects running and those woken meanwhile are
//! hash sets. The delays and deduplication are kube's own scheduler.
//!
//! Memory: an object's reference is shared (`Arc`) between the scheduler's
//! two tables and the set of those running, rather than copied into each
//! (four strings a copy: about 2 MiB at ten thousand pending wake-ups), and
//! the sets give their room back once a burst has passed: a hash set never
//! shrinks by itself, and a restart runs every object at once.

use std::collections::HashSet;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc;
use futures::stream::FuturesUnordered;
use futures::{Stream, StreamExt};
use kube::runtime::reflector::{Lookup, ObjectRef};
use kube::runtime::scheduler::{ScheduleRequest, debounced_scheduler};
use tokio::time::Instant;

/// What a reconcile asks for next (the same as kube's, whose delay cannot
/// be read back).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Action {
    requeue_after: Option<Duration>,
}

impl Action {
    /// Reconcile again after `duration`, or sooner if a change wakes it.
    pub const fn requeue(duration: Duration) -> Self {
        Self {
            requeue_after: Some(duration),
        }
    }

    /// Reconcile again only when a change wakes it.
    pub const fn await_change() -> Self {
        Self { requeue_after: None }
    }

    /// The delay asked for, if any.
    pub fn requeue_after(&self) -> Option<Duration> {
        self.requeue_after
    }
}

/// Runs reconciles of the objects `triggers` names, reading each from `get`
/// as it starts (one gone by then is skipped), until `triggers` ends. A
/// wake-up `debounce` after the last of several is one reconcile.
pub async fn run<K, Ctx, E, Fut>(
    triggers: impl Stream<Item = ObjectRef<K>> + Send,
    get: impl Fn(&ObjectRef<K>) -> Option<Arc<K>>,
    debounce: Duration,
    reconcile: impl Fn(Arc<K>, Arc<Ctx>) -> Fut,
    error_policy: impl Fn(Arc<K>, &E, Arc<Ctx>) -> Action + Send + Sync + 'static,
    ctx: Arc<Ctx>,
) where
    K: Lookup + Send + Sync + 'static,
    K::DynamicType: Hash + Eq + Clone + Send + Sync,
    Ctx: Send + Sync + 'static,
    E: Send + 'static,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
{
    let error_policy = Arc::new(error_policy);
    // Wake-ups go through kube's scheduler (dedup, delay, debounce); both
    // the triggers and the requeues are fed to it here.
    let (requests, scheduled) = mpsc::unbounded::<ScheduleRequest<Arc<ObjectRef<K>>>>();
    let mut due = std::pin::pin!(debounced_scheduler(scheduled, debounce));
    let mut triggers = std::pin::pin!(triggers);
    let mut running: HashSet<Arc<ObjectRef<K>>> = HashSet::new();
    let mut woken_while_running: HashSet<Arc<ObjectRef<K>>> = HashSet::new();
    let mut finished = FuturesUnordered::new();
    let start = |obj_ref: Arc<ObjectRef<K>>, running: &mut HashSet<Arc<ObjectRef<K>>>| {
        let obj = get(&obj_ref)?;
        let (ctx, error_policy) = (ctx.clone(), error_policy.clone());
        let fut = reconcile(obj.clone(), ctx.clone());
        running.insert(obj_ref.clone());
        // Each reconcile is its own task, so they use every core.
        Some(tokio::spawn(async move {
            let action = match fut.await {
                Ok(action) => action,
                Err(e) => error_policy(obj, &e, ctx),
            };
            (obj_ref, action)
        }))
    };
    loop {
        tokio::select! {
            woken = triggers.next() => {
                let Some(obj_ref) = woken else { return };
                // The receiver lives in this function: sending cannot fail.
                let message = Arc::new(obj_ref);
                let _ = requests.unbounded_send(ScheduleRequest { message, run_at: Instant::now() });
            }
            Some(obj_ref) = due.next() => {
                if running.contains(&obj_ref) {
                    woken_while_running.insert(obj_ref);
                } else if let Some(task) = start(obj_ref, &mut running) {
                    finished.push(task);
                }
            }
            Some(done) = finished.next() => {
                let (obj_ref, action) = match done {
                    Ok(done) => done,
                    // A reconcile that panicked stops the controller, as in
                    // kube's: nothing may go on silently without it.
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    // Cancelled: the runtime is shutting down.
                    Err(_) => return,
                };
                running.remove(&obj_ref);
                give_back_room(&mut running);
                if woken_while_running.remove(&obj_ref) {
                    give_back_room(&mut woken_while_running);
                    // Its decision may be stale: decide again now (the
                    // requeue it asked for is decided again too).
                    if let Some(task) = start(obj_ref, &mut running) {
                        finished.push(task);
                    }
                } else if let Some(after) = action.requeue_after() {
                    let run_at = Instant::now().checked_add(after).unwrap_or_else(far_future);
                    let _ = requests.unbounded_send(ScheduleRequest { message: obj_ref, run_at });
                }
            }
        }
    }
}

/// Shrinks `set` once it fills less than an eighth of its room, to twice
/// what it holds: a burst's room is given back, and a set that grows and
/// shrinks around a steady size is not resized on every change.
fn give_back_room<T: Hash + Eq>(set: &mut HashSet<T>) {
    if set.capacity() > 64 && set.len() < set.capacity() / 8 {
        set.shrink_to(set.len() * 2);
    }
}

/// A year from now: "never" for a delay too large to add.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(365 * 24 * 3600)
}

#[cfg(test)]
mod tests;
