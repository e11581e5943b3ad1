//! The runner's promises, with tokio's clock paused: one reconcile at a
//! time per object, a wake-up while running is one more run after it,
//! requeues and the error policy's delays land at their instant.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::channel::mpsc::{UnboundedSender, unbounded};
use k8s_openapi::api::core::v1::ConfigMap;
use tokio::sync::Semaphore;

use super::*;

/// What the reconciles saw, and what the next ones answer.
#[derive(Default)]
struct Probe {
    /// (object, when) of every reconcile started.
    starts: Mutex<Vec<(String, Instant)>>,
    in_flight: Mutex<HashMap<String, usize>>,
    /// The most reconciles of one object seen running at once.
    most_at_once: AtomicUsize,
    /// When set, each reconcile waits for a permit before it ends.
    gate: Option<Semaphore>,
    /// What the next reconciles return, in order (then `await_change`).
    answers: Mutex<VecDeque<Result<Action, &'static str>>>,
    /// Errors the error policy was given.
    failures: AtomicUsize,
}

impl Probe {
    fn starts_of(&self, name: &str) -> Vec<Instant> {
        let starts = self.starts.lock().unwrap();
        starts.iter().filter(|(n, _)| n == name).map(|(_, t)| *t).collect()
    }
}

async fn reconcile(obj: Arc<ConfigMap>, probe: Arc<Probe>) -> Result<Action, &'static str> {
    let name = obj.metadata.name.clone().unwrap_or_default();
    probe.starts.lock().unwrap().push((name.clone(), Instant::now()));
    {
        let mut in_flight = probe.in_flight.lock().unwrap();
        let n = in_flight.entry(name.clone()).or_default();
        *n += 1;
        probe.most_at_once.fetch_max(*n, Ordering::SeqCst);
    }
    if let Some(gate) = &probe.gate {
        gate.acquire().await.unwrap().forget();
    }
    *probe.in_flight.lock().unwrap().get_mut(&name).unwrap() -= 1;
    probe
        .answers
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Ok(Action::await_change()))
}

fn error_policy(_: Arc<ConfigMap>, _: &&'static str, probe: Arc<Probe>) -> Action {
    probe.failures.fetch_add(1, Ordering::SeqCst);
    Action::requeue(Duration::from_secs(5))
}

fn object(name: &str) -> ObjectRef<ConfigMap> {
    ObjectRef::new(name).within("ns")
}

/// A runner over objects `a` and `b` (anything else reads as gone), with
/// the sender of its triggers.
fn start(
    probe: &Arc<Probe>,
    debounce: Duration,
) -> (UnboundedSender<ObjectRef<ConfigMap>>, tokio::task::JoinHandle<()>) {
    let objects: HashMap<String, Arc<ConfigMap>> = ["a", "b"]
        .into_iter()
        .map(|n| {
            let mut cm = ConfigMap::default();
            cm.metadata.name = Some(n.into());
            cm.metadata.namespace = Some("ns".into());
            (n.to_string(), Arc::new(cm))
        })
        .collect();
    let (tx, rx) = unbounded();
    let get = move |r: &ObjectRef<ConfigMap>| objects.get(&r.name).cloned();
    let runner = tokio::spawn(run(rx, get, debounce, reconcile, error_policy, probe.clone()));
    (tx, runner)
}

/// Waits (on tokio's paused clock) until `done` holds; a minute without is
/// a failure.
async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn an_object_woken_while_running_runs_once_more_after_never_twice_at_once() {
    let probe = Arc::new(Probe {
        gate: Some(Semaphore::new(0)),
        ..Default::default()
    });
    let (tx, _runner) = start(&probe, Duration::ZERO);
    tx.unbounded_send(object("a")).unwrap();
    until("a starts", || probe.starts_of("a").len() == 1).await;
    for _ in 0..3 {
        tx.unbounded_send(object("a")).unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(probe.starts_of("a").len(), 1, "not again while it runs");
    probe.gate.as_ref().unwrap().add_permits(1);
    until("a runs again", || probe.starts_of("a").len() == 2).await;
    probe.gate.as_ref().unwrap().add_permits(1);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        probe.starts_of("a").len(),
        2,
        "three wake-ups while running are one more run"
    );
    assert_eq!(probe.most_at_once.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn different_objects_run_at_once() {
    let probe = Arc::new(Probe {
        gate: Some(Semaphore::new(0)),
        ..Default::default()
    });
    let (tx, _runner) = start(&probe, Duration::ZERO);
    tx.unbounded_send(object("a")).unwrap();
    tx.unbounded_send(object("b")).unwrap();
    until("both start while neither has ended", || {
        probe.starts_of("a").len() == 1 && probe.starts_of("b").len() == 1
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_requeue_runs_at_its_instant() {
    let probe = Arc::new(Probe::default());
    probe
        .answers
        .lock()
        .unwrap()
        .push_back(Ok(Action::requeue(Duration::from_secs(10))));
    let (tx, _runner) = start(&probe, Duration::ZERO);
    tx.unbounded_send(object("a")).unwrap();
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert_eq!(probe.starts_of("a").len(), 1, "not before its instant");
    tokio::time::sleep(Duration::from_secs(30)).await;
    let starts = probe.starts_of("a");
    assert_eq!(starts.len(), 2, "once at its instant, then it awaits a change");
    let gap = starts[1] - starts[0];
    assert!(
        gap >= Duration::from_secs(10) && gap < Duration::from_millis(10_010),
        "{gap:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_change_before_the_requeue_runs_at_once() {
    let probe = Arc::new(Probe::default());
    probe
        .answers
        .lock()
        .unwrap()
        .push_back(Ok(Action::requeue(Duration::from_secs(3600))));
    let (tx, _runner) = start(&probe, Duration::ZERO);
    tx.unbounded_send(object("a")).unwrap();
    until("a starts", || probe.starts_of("a").len() == 1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let woken = Instant::now();
    tx.unbounded_send(object("a")).unwrap();
    until("a runs again", || probe.starts_of("a").len() == 2).await;
    assert!(probe.starts_of("a")[1] - woken < Duration::from_millis(10));
    // The change's run answered `await_change`: the hour's requeue is gone
    // with the entry it replaced.
    tokio::time::sleep(Duration::from_secs(7200)).await;
    assert_eq!(probe.starts_of("a").len(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_error_runs_again_after_the_error_policy_delay() {
    let probe = Arc::new(Probe::default());
    probe.answers.lock().unwrap().push_back(Err("refused"));
    let (tx, _runner) = start(&probe, Duration::ZERO);
    tx.unbounded_send(object("a")).unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let starts = probe.starts_of("a");
    assert_eq!(starts.len(), 2);
    assert_eq!(probe.failures.load(Ordering::SeqCst), 1);
    let gap = starts[1] - starts[0];
    assert!(
        gap >= Duration::from_secs(5) && gap < Duration::from_millis(5_010),
        "{gap:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_object_gone_before_its_turn_is_not_reconciled() {
    let probe = Arc::new(Probe::default());
    let (tx, _runner) = start(&probe, Duration::ZERO);
    tx.unbounded_send(object("gone")).unwrap();
    tx.unbounded_send(object("a")).unwrap();
    until("a runs", || probe.starts_of("a").len() == 1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(probe.starts_of("gone").is_empty());
}

#[tokio::test(start_paused = true)]
async fn wake_ups_within_the_debounce_are_one_reconcile() {
    let probe = Arc::new(Probe::default());
    let (tx, _runner) = start(&probe, Duration::from_millis(100));
    let first = Instant::now();
    for _ in 0..5 {
        tx.unbounded_send(object("a")).unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let starts = probe.starts_of("a");
    assert_eq!(starts.len(), 1);
    assert!(starts[0] - first >= Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn the_runner_ends_with_its_triggers() {
    let probe = Arc::new(Probe::default());
    let (tx, runner) = start(&probe, Duration::ZERO);
    drop(tx);
    tokio::time::timeout(Duration::from_secs(1), runner)
        .await
        .expect("ended")
        .expect("no panic");
}

#[test]
fn a_set_gives_back_the_room_of_a_burst_and_keeps_a_steady_size() {
    let mut set: HashSet<usize> = (0..10_000).collect();
    let burst = set.capacity();
    // Draining a burst: the room shrinks as the set empties.
    for i in 0..9_990 {
        set.remove(&i);
        give_back_room(&mut set);
    }
    assert!(set.capacity() < 64, "room after a burst of 10,000: {}", set.capacity());
    assert_eq!(set.len(), 10);
    // A set within an eighth of its room keeps it.
    let mut steady: HashSet<usize> = HashSet::with_capacity(burst);
    steady.extend(0..burst / 4);
    let room = steady.capacity();
    give_back_room(&mut steady);
    assert_eq!(steady.capacity(), room);
    // A small one (room for at most 64) is never resized.
    let mut small: HashSet<usize> = HashSet::with_capacity(50);
    small.insert(1);
    let room = small.capacity();
    give_back_room(&mut small);
    assert_eq!(small.capacity(), room);
}
