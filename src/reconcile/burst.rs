//! New work and what waits for it to end. A reconcile that can only add
//! (see `Context::new_work`) counts as new work from before it waits for
//! its turn until it ends; while any does, a control whose status changed
//! in its count of active exceptions alone may wait (rule in
//! `decide::control::count`). When the last new work ends, every control
//! waiting is reconciled again, through the stream the controls'
//! controller reads (`triggers`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::channel::mpsc;
use jiff::Timestamp;
use kube::runtime::reflector::ObjectRef;

use crate::api::{ControlOwnership, ControlOwnershipStatus};
use crate::decide::control::count::count_may_wait;
use crate::metrics::Metrics;

/// New work under way, and the controls whose count waits for its end.
pub struct Burst {
    new_work: AtomicUsize,
    /// Each waiting control and when its count first waited. Changed only
    /// under this lock, together with the check of `new_work`, so the end of
    /// the burst cannot slip between a control's check and its entry.
    waiting: Mutex<HashMap<ObjectRef<ControlOwnership>, Timestamp>>,
    /// Controls sent to be reconciled at the end of a burst and not yet
    /// reconciled: thousands at once, each takes a turn (`take_released`).
    released: Mutex<HashSet<ObjectRef<ControlOwnership>>>,
    ended: mpsc::UnboundedSender<ObjectRef<ControlOwnership>>,
    /// Where both figures are exported (`steward_new_work`,
    /// `steward_control_counts_waiting`).
    metrics: Arc<Metrics>,
}

impl Burst {
    /// A burst tracker; the controls to reconcile when a burst ends come
    /// out of the returned stream.
    pub fn new(metrics: Arc<Metrics>) -> (Self, mpsc::UnboundedReceiver<ObjectRef<ControlOwnership>>) {
        let (ended, rx) = mpsc::unbounded();
        let burst = Self {
            new_work: AtomicUsize::new(0),
            waiting: Mutex::default(),
            released: Mutex::default(),
            ended,
            metrics,
        };
        (burst, rx)
    }

    /// Counts one reconcile as new work until the guard is dropped.
    pub fn started(&self) -> NewWork<'_> {
        let waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let n = self.new_work.fetch_add(1, Ordering::AcqRel) + 1;
        self.metrics.burst(n, waiting.len());
        NewWork { burst: self }
    }

    /// Whether `new` may wait instead of being written now over `written`
    /// (the status of control `key`); the instant by which it must be
    /// written if so. A control that writes (or has nothing to write) is
    /// no longer waiting.
    pub fn count_waits(
        &self,
        key: &ObjectRef<ControlOwnership>,
        written: Option<&ControlOwnershipStatus>,
        new: &ControlOwnershipStatus,
        now: Timestamp,
    ) -> Option<Timestamp> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let burst = self.new_work.load(Ordering::Acquire) > 0;
        let since = waiting.get(key).copied();
        let wait = match count_may_wait(written, new, since, burst, now) {
            Some(deadline) => {
                if since.is_none() {
                    waiting.insert(key.clone(), now);
                    self.metrics.count_began_waiting();
                }
                Some(deadline)
            }
            None => {
                waiting.remove(key);
                None
            }
        };
        self.metrics.burst(self.new_work.load(Ordering::Acquire), waiting.len());
        wait
    }

    /// Whether `key` was sent to be reconciled at the end of a burst (and
    /// is not any more). Those reconciles come all at once, one per control
    /// of the burst; each takes a turn (`Context::released_turn`), so they
    /// do not hold thousands of decisions in memory together.
    /// Not while new work is under way again: a new burst's work is ahead
    /// in the queue for turns, and this reconcile may have more to do than
    /// the count (drift to remove).
    pub fn take_released(&self, key: &ObjectRef<ControlOwnership>) -> bool {
        let released = self.released.lock().map(|mut r| r.remove(key)).unwrap_or_default();
        released && self.new_work.load(Ordering::Acquire) == 0
    }

    /// Controls whose count waits now.
    #[cfg(test)]
    pub fn waiting(&self) -> usize {
        self.waiting.lock().map(|w| w.len()).unwrap_or_default()
    }

    fn ended_one(&self) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        // Checked under the lock: see `waiting`.
        let left = self.new_work.fetch_sub(1, Ordering::AcqRel) - 1;
        if left == 0 {
            let mut released = self.released.lock().unwrap_or_else(|e| e.into_inner());
            for (key, _) in waiting.drain() {
                released.insert(key.clone());
                let _ = self.ended.unbounded_send(key);
            }
        }
        self.metrics.burst(left, waiting.len());
    }
}

/// One reconcile counted as new work (see [`Burst::started`]).
pub struct NewWork<'a> {
    burst: &'a Burst,
}

impl Drop for NewWork<'_> {
    fn drop(&mut self) {
        self.burst.ended_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{FutureExt, StreamExt};

    fn status(count: i32) -> ControlOwnershipStatus {
        ControlOwnershipStatus {
            active_exceptions: Some(count),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_count_waits_while_new_work_is_under_way_and_is_released_when_it_ends() {
        let metrics = Arc::new(Metrics::new());
        let (burst, mut ended) = Burst::new(metrics.clone());
        let now: Timestamp = "2026-11-30T10:00:00Z".parse().expect("now");
        let key = ObjectRef::<ControlOwnership>::new("payments").within("shop");
        // No new work: written at once.
        assert_eq!(burst.count_waits(&key, Some(&status(1)), &status(2), now), None);
        let first = burst.started();
        let second = burst.started();
        let waits = burst.count_waits(&key, Some(&status(1)), &status(2), now);
        assert!(waits.is_some());
        assert_eq!(burst.waiting(), 1);
        let exported = metrics.render(now);
        assert!(exported.contains("steward_new_work 2"), "{exported}");
        assert!(exported.contains("steward_control_counts_waiting 1"), "{exported}");
        // Waiting again in the same burst is the same wait.
        assert_eq!(burst.count_waits(&key, Some(&status(1)), &status(3), now), waits);
        let exported = metrics.render(now);
        assert!(exported.contains("steward_control_count_waits_total 1"), "{exported}");
        drop(first);
        // Still one under way: nothing released.
        assert!(ended.next().now_or_never().is_none());
        drop(second);
        assert_eq!(ended.next().await, Some(key.clone()));
        assert_eq!(burst.waiting(), 0);
        let exported = metrics.render(now);
        assert!(exported.contains("steward_new_work 0"), "{exported}");
        assert!(exported.contains("steward_control_counts_waiting 0"), "{exported}");
        // Its reconcile takes a turn, once.
        assert!(burst.take_released(&key));
        assert!(!burst.take_released(&key));
        // After the burst the same change is written at once.
        assert_eq!(burst.count_waits(&key, Some(&status(1)), &status(2), now), None);
    }

    #[tokio::test]
    async fn a_control_that_writes_leaves_the_waiting_list() {
        let (burst, mut ended) = Burst::new(Arc::new(Metrics::new()));
        let now: Timestamp = "2026-11-30T10:00:00Z".parse().expect("now");
        let key = ObjectRef::<ControlOwnership>::new("payments").within("shop");
        let work = burst.started();
        assert!(burst.count_waits(&key, Some(&status(1)), &status(2), now).is_some());
        // Then something else changed too: written now, no longer waiting.
        let mut other = status(2);
        other.observed_generation = Some(9);
        assert_eq!(burst.count_waits(&key, Some(&status(1)), &other, now), None);
        drop(work);
        assert!(ended.next().now_or_never().is_none(), "nothing waited");
    }
}
