//! Liveness, as `/healthz` reports it: the process's runtime answers (a
//! watchdog task on it ticks every second) and, on the leader, the
//! controllers are still running. A standby, and a leader still waiting for
//! its caches to list, are alive: readiness is `/readyz`'s question, and a
//! restart would not make either go faster. The endpoint itself is served
//! from a thread of its own (`http`), so a runtime whose workers are all
//! busy gets an honest 503 instead of a probe timeout.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often the watchdog ticks.
pub const TICK: Duration = Duration::from_secs(1);

/// How late the last tick may be before the runtime counts as stalled:
/// well above a tick delayed by a busy moment, well below the kubelet's
/// default liveness budget (3 probes, 10 s apart).
pub const STALLED_AFTER: Duration = Duration::from_secs(10);

/// Where the controllers are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Controllers {
    /// Not leading (or not started yet): nothing to run.
    Standby,
    /// Leading and running.
    Running,
    /// They stopped, saying why.
    Stopped(String),
}

/// Whether the process is alive: `Err` says why not. Pure: the instant of
/// the last tick and now are given, as durations since one origin.
pub fn verdict(
    last_tick: Duration,
    now: Duration,
    stalled_after: Duration,
    controllers: &Controllers,
) -> Result<(), String> {
    let late = now.saturating_sub(last_tick);
    if late > stalled_after {
        return Err(format!(
            "the runtime has not run the watchdog for {}s (more than {}s): its workers are stuck",
            late.as_secs(),
            stalled_after.as_secs()
        ));
    }
    match controllers {
        Controllers::Stopped(why) => Err(format!("the controllers stopped: {why}")),
        Controllers::Standby | Controllers::Running => Ok(()),
    }
}

/// The process's liveness, shared by the watchdog, `main` and `/healthz`.
pub struct Health {
    origin: Instant,
    /// Milliseconds from `origin` to the last tick.
    last_tick: AtomicU64,
    controllers: Mutex<Controllers>,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    /// Alive as of now, controllers on standby.
    pub fn new() -> Self {
        Health {
            origin: Instant::now(),
            last_tick: AtomicU64::new(0),
            controllers: Mutex::new(Controllers::Standby),
        }
    }

    fn since_origin(&self) -> Duration {
        self.origin.elapsed()
    }

    /// Records a tick now.
    pub fn tick(&self) {
        let ms = u64::try_from(self.since_origin().as_millis()).unwrap_or(u64::MAX);
        self.last_tick.store(ms, Ordering::Relaxed);
    }

    /// Records where the controllers are.
    pub fn set_controllers(&self, state: Controllers) {
        // A poisoned lock still holds a usable value: the state is replaced
        // whole, never left half-written.
        let mut guard = self.controllers.lock().unwrap_or_else(|p| p.into_inner());
        *guard = state;
    }

    /// Whether the process is alive now.
    pub fn check(&self) -> Result<(), String> {
        let last = Duration::from_millis(self.last_tick.load(Ordering::Relaxed));
        let controllers = self.controllers.lock().unwrap_or_else(|p| p.into_inner()).clone();
        verdict(last, self.since_origin(), STALLED_AFTER, &controllers)
    }

    /// Ticks every [`TICK`] on the runtime it is spawned on, forever.
    pub async fn watchdog(self: std::sync::Arc<Self>) {
        let mut every = tokio::time::interval(TICK);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            self.tick();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn a_recent_tick_is_alive_on_the_leader_and_on_a_standby() {
        assert_eq!(verdict(S(99), S(100), S(10), &Controllers::Running), Ok(()));
        assert_eq!(verdict(S(99), S(100), S(10), &Controllers::Standby), Ok(()));
    }

    #[test]
    fn a_tick_exactly_at_the_threshold_is_still_alive() {
        assert_eq!(verdict(S(90), S(100), S(10), &Controllers::Running), Ok(()));
    }

    #[test]
    fn a_late_tick_is_a_stalled_runtime() {
        let e = verdict(S(89), S(100), S(10), &Controllers::Standby).unwrap_err();
        assert!(e.contains("11s"), "{e}");
    }

    #[test]
    fn stopped_controllers_are_not_alive() {
        let e = verdict(S(100), S(100), S(10), &Controllers::Stopped("a watch ended".into())).unwrap_err();
        assert!(e.contains("a watch ended"), "{e}");
    }

    #[test]
    fn a_clock_read_before_the_tick_is_not_an_underflow() {
        assert_eq!(verdict(S(101), S(100), S(10), &Controllers::Running), Ok(()));
    }

    #[test]
    fn a_new_process_is_alive_until_its_watchdog_is_late() {
        let health = Health::new();
        assert_eq!(health.check(), Ok(()));
        health.set_controllers(Controllers::Stopped("gone".into()));
        assert!(health.check().is_err());
    }
}
