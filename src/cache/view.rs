//! One kind's cache: the store one watch keeps, the questions about
//! freshness the reconcilers ask of it, and the fan-out of every change to
//! whoever subscribed.
//!
//! Freshness: a reconcile often runs before the watch has delivered our own
//! last write of an object. The view answers "does the server already hold
//! exactly this?" and "is this the newest copy?" from the store and a memo
//! of our own writes (`own_writes`), which no one else sees. Every write
//! Steward makes records itself here (see `apply.rs`).
//!
//! Subscriptions: the controllers are triggered by every change, deletions
//! included, which kube's shared-stream dispatcher does not send; hence this
//! fan-out. Objects are shared behind `Arc`, never copied per subscriber. A
//! subscriber that arrives after the first list (a replica elected leader
//! later) first receives the whole store, as it would from its own list.

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;

use super::own_writes::OwnWrites;

/// One kind's cache, its own-writes memo and its subscribers.
pub struct View<K: Resource<DynamicType = ()> + Clone + 'static> {
    store: Store<K>,
    own: OwnWrites<K>,
    subscribers: Mutex<Vec<mpsc::UnboundedSender<Arc<K>>>>,
    /// The objects cached in each namespace by name (cluster-scoped ones
    /// under ""), sharing the store's copies, so a decision about one
    /// namespace reads that namespace instead of scanning every cached
    /// object: at ten thousand objects those scans, one per reconcile, were
    /// most of the controller's CPU. Kept as the objects, not their names:
    /// looking each name up in the store again (building its key, hashing
    /// and comparing it) was then the controller's largest cost while
    /// thousands of exceptions were activated.
    by_namespace: Mutex<HashMap<String, HashMap<String, Arc<K>>>>,
    /// True from the first complete list on. Kept here rather than asked of
    /// the store: its readiness future holds one waker, so a probe polling
    /// it (`/readyz`) would take the wake-up away from a task awaiting it,
    /// which then waits forever.
    listed: tokio::sync::watch::Sender<bool>,
}

impl<K> View<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// A view kept by one watch of `api`; the future is the watch, to be
    /// spawned once.
    pub fn watch(api: Api<K>, config: watcher::Config) -> (Arc<Self>, impl Future<Output = ()> + Send + 'static) {
        let (store, writer) = reflector::store();
        let view = Arc::new(Self::over(store));
        let pumped = view.clone();
        let events = watcher(api, config)
            .backoff(super::backoff::WatchBackoff::default())
            .modify(super::trim::trim);
        let pump = reflector::reflector(writer, events).for_each(move |event| {
            pumped.saw(event);
            futures::future::ready(())
        });
        (view, pump)
    }

    fn over(store: Store<K>) -> Self {
        Self {
            store,
            own: OwnWrites::default(),
            subscribers: Mutex::default(),
            by_namespace: Mutex::default(),
            listed: tokio::sync::watch::Sender::new(false),
        }
    }

    /// One watch event, after the reflector applied it to the store.
    fn saw(&self, event: Result<watcher::Event<K>, watcher::Error>) {
        match event {
            Ok(watcher::Event::Apply(obj)) => {
                self.own.seen(&obj);
                // The store's own copy, when it still holds this version:
                // the index and the subscribers then share it instead of
                // keeping a second copy of every changed object alive.
                let stored = self
                    .store
                    .get(&ObjectRef::from_obj(&obj))
                    .filter(|s| s.meta().resource_version == obj.meta().resource_version);
                let shared = stored.unwrap_or_else(|| Arc::new(obj));
                self.index(&shared, true);
                self.publish(&[shared]);
            }
            Ok(watcher::Event::Delete(obj)) => {
                self.own.seen(&obj);
                let gone = Arc::new(obj);
                self.index(&gone, false);
                self.publish(&[gone]);
            }
            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
            // After a (re)list the objects go out only once the whole list is
            // in the store: the reflector swaps it in at InitDone, and a
            // reconcile triggered earlier would read the store as it was
            // before the list, older than what the memo was told it shows.
            Ok(watcher::Event::InitDone) => {
                // The reflector has marked the store ready by now.
                self.listed.send_replace(true);
                let listed = self.store.state();
                for obj in &listed {
                    self.own.seen(obj);
                }
                self.reindex(&listed);
                self.publish(&listed);
            }
            Err(e) => tracing::warn!(kind = %K::kind(&()), error = %e, "watch error; retrying with backoff"),
        }
    }

    /// Records (`cached`) or forgets `obj` in its namespace.
    fn index(&self, obj: &Arc<K>, cached: bool) {
        let (Some(name), Ok(mut index)) = (obj.meta().name.as_deref(), self.by_namespace.lock()) else {
            return;
        };
        let ns = obj.meta().namespace.as_deref().unwrap_or_default();
        if cached {
            match index.get_mut(ns) {
                Some(objs) => {
                    objs.insert(name.to_string(), obj.clone());
                }
                None => {
                    index.insert(ns.to_string(), HashMap::from([(name.to_string(), obj.clone())]));
                }
            }
        } else if let Some(objs) = index.get_mut(ns) {
            objs.remove(name);
            if objs.is_empty() {
                index.remove(ns);
            }
        }
    }

    /// Rebuilds the index from a complete list.
    fn reindex(&self, listed: &[Arc<K>]) {
        let mut fresh: HashMap<String, HashMap<String, Arc<K>>> = HashMap::new();
        for obj in listed {
            if let Some(name) = &obj.meta().name {
                let ns = obj.meta().namespace.clone().unwrap_or_default();
                fresh.entry(ns).or_default().insert(name.clone(), obj.clone());
            }
        }
        if let Ok(mut index) = self.by_namespace.lock() {
            *index = fresh;
        }
    }

    /// The namespaces holding at least one cached object.
    pub fn namespaces(&self) -> Vec<String> {
        self.by_namespace
            .lock()
            .map(|index| {
                index
                    .iter()
                    .filter(|(_, names)| !names.is_empty())
                    .map(|(ns, _)| ns.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The cached objects of namespace `ns`.
    pub fn in_namespace(&self, ns: &str) -> Vec<Arc<K>> {
        let Ok(index) = self.by_namespace.lock() else {
            return Vec::new();
        };
        index
            .get(ns)
            .map(|objs| objs.values().cloned().collect())
            .unwrap_or_default()
    }

    fn publish(&self, objs: &[Arc<K>]) {
        let Ok(mut subs) = self.subscribers.lock() else { return };
        // A closed channel is a subscriber that stopped (a deposed leader's
        // controllers): forget it.
        subs.retain(|s| objs.iter().all(|o| s.unbounded_send(o.clone()).is_ok()));
    }

    /// Every change from now on (deletions included), preceded by the whole
    /// store if it has listed already.
    pub fn subscribe(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        let (tx, rx) = mpsc::unbounded();
        if let Ok(mut subs) = self.subscribers.lock() {
            // Under the lock, so no event falls between the snapshot and the
            // registration (a repeat is harmless: triggers are idempotent).
            if self.is_listed() {
                for obj in self.store.state() {
                    let _ = tx.unbounded_send(obj);
                }
            }
            subs.push(tx);
        }
        rx
    }

    /// The store, for kube's `Controller`.
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// The cached copy of `key`.
    pub fn get(&self, key: &ObjectRef<K>) -> Option<Arc<K>> {
        self.store.get(key)
    }

    /// Every cached object.
    pub fn state(&self) -> Vec<Arc<K>> {
        self.store.state()
    }

    /// Whether the first list has completed.
    pub fn is_listed(&self) -> bool {
        *self.listed.borrow()
    }

    /// Resolves once the first list has completed; false if the view is
    /// gone.
    pub async fn listed(&self) -> bool {
        self.listed.subscribe().wait_for(|listed| *listed).await.is_ok()
    }

    /// Whether the server is known to hold exactly `fingerprint` at `key`
    /// although the store does not show it yet: our last write of it was
    /// that, and the store is behind that write.
    pub fn holds(&self, key: &ObjectRef<K>, fingerprint: u64) -> bool {
        self.ahead_of_store(key) == Some(fingerprint)
    }

    /// Whether we wrote `key` and the store has not shown that write yet.
    pub fn wrote(&self, key: &ObjectRef<K>) -> bool {
        self.ahead_of_store(key).is_some()
    }

    /// Whether `obj` is the newest copy we can know of: the store holds this
    /// very version, and no write of ours is newer.
    pub fn is_newest(&self, obj: &K) -> bool {
        let key = ObjectRef::from_obj(obj);
        let cached = self.store.get(&key).and_then(|c| c.meta().resource_version.clone());
        cached == obj.meta().resource_version && self.ahead_of_store(&key).is_none()
    }

    fn ahead_of_store(&self, key: &ObjectRef<K>) -> Option<u64> {
        let cached = self.store.get(key);
        self.own
            .ahead_of(key, cached.as_ref().and_then(|c| c.meta().resource_version.as_deref()))
    }

    /// Records our write of `fingerprint` to `key`, answered with `rv`.
    pub fn record(&self, key: &ObjectRef<K>, rv: Option<&str>, fingerprint: u64) {
        self.own.record(key, rv, fingerprint);
    }

    /// Records that we delete `obj`, the copy this view holds: until the
    /// watch shows the deletion (whose version is later than any the
    /// object had), `deleted` says so, and a reconcile or sweep that runs
    /// in between does not delete it again. Recorded before the request is
    /// sent, so two deleters racing send one request; a delete that fails
    /// must be forgotten (`forget_deleted`), so that it is retried.
    pub fn record_deleted(&self, obj: &K) {
        let next = obj
            .meta()
            .resource_version
            .as_deref()
            .and_then(|v| v.parse::<u64>().ok())
            .and_then(|v| v.checked_add(1));
        if let Some(next) = next {
            self.own
                .record(&ObjectRef::from_obj(obj), Some(&next.to_string()), DELETED);
        }
    }

    /// Forgets a deletion recorded for `key` whose request failed.
    pub fn forget_deleted(&self, key: &ObjectRef<K>) {
        self.own.forget(key, DELETED);
    }

    /// Whether we deleted `key` and the store does not show that yet.
    pub fn deleted(&self, key: &ObjectRef<K>) -> bool {
        self.holds(key, DELETED)
    }
}

/// The fingerprint recorded for a deletion: not the fingerprint of any
/// content in practice (a 64-bit hash equal to it by chance would only make
/// Steward take one write of that content as done until the watch shows it).
const DELETED: u64 = u64::MAX;

#[cfg(test)]
impl<K> View<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// A view fed by hand instead of a watch, for tests.
    pub fn fed(objs: Vec<K>) -> (Arc<Self>, reflector::store::Writer<K>) {
        let (store, mut writer) = reflector::store();
        let view = Arc::new(Self::over(store));
        writer.apply_watcher_event(&watcher::Event::Init);
        for o in &objs {
            writer.apply_watcher_event(&watcher::Event::InitApply(o.clone()));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        view.saw(Ok(watcher::Event::InitDone));
        (view, writer)
    }

    /// A view whose first list has not arrived, for tests.
    pub fn unlisted() -> (Arc<Self>, reflector::store::Writer<K>) {
        let (store, writer) = reflector::store();
        (Arc::new(Self::over(store)), writer)
    }

    /// Completes an empty first list through `writer`, as the watch would.
    pub fn list_empty(&self, writer: &mut reflector::store::Writer<K>) {
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitDone);
        self.saw(Ok(watcher::Event::InitDone));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::rbac::v1::Role;

    fn role(name: &str, rv: &str) -> Role {
        let mut r = Role::default();
        r.metadata.name = Some(name.into());
        r.metadata.namespace = Some("ns".into());
        r.metadata.resource_version = Some(rv.into());
        r
    }

    fn names(objs: Vec<Arc<Role>>) -> Vec<String> {
        let mut v: Vec<String> = objs.iter().filter_map(|o| o.metadata.name.clone()).collect();
        v.sort();
        v
    }

    #[test]
    fn a_namespace_reads_exactly_its_objects_through_changes_and_relists() {
        let mut elsewhere = role("x", "1");
        elsewhere.metadata.namespace = Some("other".into());
        let (view, mut w) = View::fed(vec![role("a", "1"), role("b", "2"), elsewhere]);
        assert_eq!(names(view.in_namespace("ns")), ["a", "b"]);
        assert_eq!(names(view.in_namespace("other")), ["x"]);
        assert!(view.in_namespace("none").is_empty());
        // A change as the watch delivers it: the store first, then the view.
        let apply = |w: &mut reflector::store::Writer<Role>, e: watcher::Event<Role>| {
            w.apply_watcher_event(&e);
            view.saw(Ok(e));
        };
        apply(&mut w, watcher::Event::Apply(role("c", "3")));
        apply(&mut w, watcher::Event::Delete(role("a", "4")));
        assert_eq!(names(view.in_namespace("ns")), ["b", "c"]);
        // A relist replaces everything.
        w.apply_watcher_event(&watcher::Event::Init);
        w.apply_watcher_event(&watcher::Event::InitApply(role("d", "5")));
        apply(&mut w, watcher::Event::InitDone);
        assert_eq!(names(view.in_namespace("ns")), ["d"]);
        assert!(view.in_namespace("other").is_empty());
    }

    #[tokio::test]
    async fn a_late_subscriber_gets_the_store_then_the_changes() {
        let (view, _w) = View::fed(vec![role("a", "1"), role("b", "2")]);
        let mut sub = view.subscribe();
        let mut first: Vec<String> = vec![
            sub.next().await.expect("a").metadata.name.clone().unwrap_or_default(),
            sub.next().await.expect("b").metadata.name.clone().unwrap_or_default(),
        ];
        first.sort();
        assert_eq!(first, ["a", "b"]);
        view.saw(Ok(watcher::Event::Delete(role("a", "3"))));
        assert_eq!(sub.next().await.expect("delete").metadata.name.as_deref(), Some("a"));
    }

    #[tokio::test]
    async fn an_early_subscriber_gets_the_list_once_it_is_complete() {
        let (view, mut w) = View::<Role>::unlisted();
        let mut sub = view.subscribe();
        assert!(!view.is_listed());
        w.apply_watcher_event(&watcher::Event::Init);
        w.apply_watcher_event(&watcher::Event::InitApply(role("a", "1")));
        view.saw(Ok(watcher::Event::InitApply(role("a", "1"))));
        assert!(
            futures::FutureExt::now_or_never(sub.next()).is_none(),
            "sent before the list was complete"
        );
        w.apply_watcher_event(&watcher::Event::InitDone);
        view.saw(Ok(watcher::Event::InitDone));
        assert!(view.is_listed());
        assert_eq!(sub.next().await.expect("a").metadata.name.as_deref(), Some("a"));
    }

    #[test]
    fn freshness_comes_from_the_store_and_our_writes() {
        let (view, mut w) = View::fed(vec![role("a", "5")]);
        let key = ObjectRef::new("a").within("ns");
        assert!(view.is_newest(&role("a", "5")));
        assert!(!view.is_newest(&role("a", "4")), "an older copy than the store's");
        view.record(&key, Some("6"), 42);
        assert!(view.holds(&key, 42), "the store is behind our write of exactly this");
        assert!(!view.holds(&key, 43), "we now want something else");
        assert!(!view.is_newest(&role("a", "5")), "our write is newer than the store");
        let newer = role("a", "6");
        w.apply_watcher_event(&watcher::Event::Apply(newer.clone()));
        view.saw(Ok(watcher::Event::Apply(newer.clone())));
        assert!(view.is_newest(&newer));
        assert!(!view.holds(&key, 42), "the store shows it now: trust the store");
    }

    #[test]
    fn our_deletion_shows_until_the_watch_does() {
        let (view, mut w) = View::fed(vec![role("a", "5"), role("b", "7")]);
        let key = ObjectRef::new("a").within("ns");
        let cached = view.get(&key).expect("cached");
        assert!(!view.deleted(&key));
        view.record_deleted(&cached);
        assert!(view.deleted(&key), "deleted by us, still in the store");
        assert!(!view.deleted(&ObjectRef::new("b").within("ns")), "only that object");
        // A delete that failed is forgotten, so it is sent again.
        view.forget_deleted(&key);
        assert!(!view.deleted(&key));
        view.record_deleted(&cached);
        // Forgetting a write of other content leaves the deletion alone.
        view.own.forget(&key, 7);
        assert!(view.deleted(&key));
        // The watch's deletion carries the deletion's (later) version.
        let gone = role("a", "9");
        w.apply_watcher_event(&watcher::Event::Delete(gone.clone()));
        view.saw(Ok(watcher::Event::Delete(gone)));
        assert!(view.get(&key).is_none());
        assert!(!view.deleted(&key), "the store shows it: nothing left to remember");
        // Created again under that name: it is there to delete.
        let again = role("a", "12");
        w.apply_watcher_event(&watcher::Event::Apply(again.clone()));
        view.saw(Ok(watcher::Event::Apply(again)));
        assert!(!view.deleted(&key));
    }

    #[test]
    fn a_stopped_subscriber_is_forgotten() {
        let (view, _w) = View::fed(vec![role("a", "1")]);
        drop(view.subscribe());
        view.saw(Ok(watcher::Event::Apply(role("a", "2"))));
        assert_eq!(view.subscribers.lock().map(|s| s.len()).unwrap_or(9), 0);
    }

    /// A readiness probe asking while the controllers wait must not take
    /// their wake-up (the store's readiness future holds a single waker).
    #[tokio::test]
    async fn a_probe_asking_meanwhile_does_not_strand_a_waiter() {
        let (view, mut w) = View::<Role>::unlisted();
        let waiter = tokio::spawn({
            let view = view.clone();
            async move { view.listed().await }
        });
        tokio::task::yield_now().await;
        for _ in 0..3 {
            assert!(!view.is_listed());
            tokio::task::yield_now().await;
        }
        view.list_empty(&mut w);
        assert!(view.is_listed());
        let done = tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await;
        assert!(matches!(done, Ok(Ok(true))), "the waiter was never woken: {done:?}");
    }
}
