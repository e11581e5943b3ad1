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
//! later) first receives the whole store, as it would from its own list. A
//! relist (a watch reset, a `410 Gone`) sends only what it changed: the
//! objects that are new or of a new version, and the cached copies of those
//! it no longer finds; `relists` tells those who must look at everything
//! again (the sweep) that one completed.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};

use futures::channel::mpsc;
use futures::{FutureExt, Stream, StreamExt, TryStreamExt};
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};

use super::kinds::{Cached, keep};
use super::own_writes::OwnWrites;
use crate::allocator::long_lived;

/// One kind's cache, its own-writes memo and its subscribers.
pub struct View<C: Cached> {
    own: OwnWrites<C>,
    subscribers: Mutex<Vec<mpsc::UnboundedSender<Arc<C>>>>,
    /// Those told of every completed (re)list.
    relist_subscribers: Mutex<Vec<mpsc::UnboundedSender<()>>>,
    /// The cached objects by namespace (cluster-scoped ones under "") and
    /// name: the view's store. A decision about one namespace reads that
    /// namespace instead of scanning every cached object: at ten thousand
    /// objects those scans, one per reconcile, were most of the
    /// controller's CPU.
    by_namespace: RwLock<Index<C>>,
    /// The objects of a list in progress, swapped in when it completes.
    listing: Mutex<Vec<Arc<C>>>,
    /// True from the first complete list on. Kept here rather than asked of
    /// a store: kube's readiness future holds one waker, so a probe polling
    /// it (`/readyz`) would take the wake-up away from a task awaiting it,
    /// which then waits forever.
    listed: tokio::sync::watch::Sender<bool>,
    /// When the list in progress began (`own_writes::relisted`).
    list_began: Mutex<Option<std::time::Instant>>,
}

/// Objects by namespace, then name.
type Index<C> = HashMap<Box<str>, HashMap<Box<str>, Arc<C>>>;

fn cache_form<C: Cached>(event: watcher::Event<C::Api>) -> watcher::Event<C> {
    use watcher::Event::*;
    match event {
        Apply(o) => Apply(C::cache_form(o)),
        Delete(o) => Delete(C::cache_form(o)),
        Init => Init,
        InitApply(o) => InitApply(C::cache_form(o)),
        InitDone => InitDone,
    }
}

impl<C: Cached> View<C> {
    /// A view kept by one watch of `api`; the future is the watch, to be
    /// spawned once.
    pub fn watch(api: Api<C::Api>, config: watcher::Config) -> (Arc<Self>, impl Future<Output = ()> + Send + 'static) {
        let view = Arc::new(Self::new());
        let pumped = view.clone();
        let pump = watcher(api, config)
            .backoff(super::backoff::WatchBackoff::default())
            .map_ok(cache_form::<C>)
            .for_each(move |event| {
                pumped.saw(event);
                futures::future::ready(())
            })
            .boxed();
        (view, pump)
    }

    fn new() -> Self {
        Self {
            own: OwnWrites::default(),
            subscribers: Mutex::default(),
            relist_subscribers: Mutex::default(),
            by_namespace: RwLock::default(),
            listing: Mutex::default(),
            listed: tokio::sync::watch::Sender::new(false),
            list_began: Mutex::default(),
        }
    }

    /// One watch event, in the form this view keeps.
    fn saw(&self, event: Result<watcher::Event<C>, watcher::Error>) {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!(kind = %C::kind(&()), error = %e, "watch error; retrying with backoff");
                return;
            }
        };
        match event {
            watcher::Event::Apply(obj) => {
                self.own.seen(&obj);
                let shared = keep(&obj);
                self.index(&shared, true);
                self.publish(&[shared]);
            }
            watcher::Event::Delete(obj) => {
                self.own.seen(&obj);
                let gone = Arc::new(obj);
                self.index(&gone, false);
                self.publish(&[gone]);
            }
            watcher::Event::Init => {
                if let Ok(mut listing) = self.listing.lock() {
                    listing.clear();
                }
                if let Ok(mut began) = self.list_began.lock() {
                    *began = Some(std::time::Instant::now());
                }
            }
            watcher::Event::InitApply(obj) => {
                // An object the relist finds unchanged keeps the copy the
                // store already shares, and the decoded one is dropped at
                // once: a relist of ten thousand objects (a watch reset, a
                // `410 Gone`) would otherwise hold two copies of the whole
                // cache until it completes.
                let shared = self.unchanged(&obj).unwrap_or_else(|| keep(&obj));
                if let Ok(mut listing) = self.listing.lock() {
                    listing.push(shared);
                }
            }
            // After a (re)list the objects go out only once the whole list is
            // in: a reconcile triggered earlier would read the view as it
            // was before the list, older than what the memo was told it
            // shows. Only what the list changed goes out: after a watch
            // reset at ten thousand objects, sending every one again made
            // ten thousand reconciles that each found nothing to do.
            watcher::Event::InitDone => {
                let listed = self
                    .listing
                    .lock()
                    .map(|mut l| std::mem::take(&mut *l))
                    .unwrap_or_default();
                for obj in &listed {
                    self.own.seen(obj);
                }
                let changed = self.reindex(&listed);
                drop(listed);
                if let Some(began) = self.list_began.lock().ok().and_then(|mut b| b.take()) {
                    self.own.relisted(began, |key| self.get(key).is_some());
                }
                self.listed.send_replace(true);
                self.publish(&changed);
                if let Ok(mut subs) = self.relist_subscribers.lock() {
                    subs.retain(|s| s.unbounded_send(()).is_ok());
                }
            }
        }
    }

    /// The store's copy of `obj` if it is that very version of that very
    /// object (same uid, same resourceVersion).
    fn unchanged(&self, obj: &C) -> Option<Arc<C>> {
        let cached = self.get(&ObjectRef::from_obj(obj))?;
        let version = obj.resource_version()?;
        (cached.resource_version().as_deref() == Some(version.as_ref()) && cached.uid() == obj.uid()).then_some(cached)
    }

    /// Records (`cached`) or forgets `obj` in its namespace.
    fn index(&self, obj: &Arc<C>, cached: bool) {
        let (Some(name), Ok(mut index)) = (obj.name(), self.by_namespace.write()) else {
            return;
        };
        let ns = obj.namespace();
        let ns = ns.as_deref().unwrap_or_default();
        if cached {
            // The index's entries live as long as the objects.
            long_lived(|| match index.get_mut(ns) {
                Some(objs) => {
                    objs.insert(name.into(), obj.clone());
                }
                None => {
                    index.insert(ns.into(), HashMap::from([(name.into(), obj.clone())]));
                }
            });
        } else if let Some(objs) = index.get_mut(ns) {
            objs.remove(name.as_ref());
            if objs.is_empty() {
                index.remove(ns);
            }
        }
    }

    /// Rebuilds the index from a complete list; returns what changed: the
    /// listed objects the store did not share already (`unchanged` kept its
    /// copy of the others), and the store's copies of the objects the list
    /// left out.
    fn reindex(&self, listed: &[Arc<C>]) -> Vec<Arc<C>> {
        // The index's entries live as long as the objects.
        let fresh: Index<C> = long_lived(|| {
            let mut fresh: Index<C> = HashMap::new();
            for obj in listed {
                if let Some(name) = obj.name() {
                    let ns = obj.namespace().unwrap_or_default();
                    fresh.entry(ns.into()).or_default().insert(name.into(), obj.clone());
                }
            }
            fresh
        });
        let Ok(mut index) = self.by_namespace.write() else {
            return listed.to_vec();
        };
        let old = std::mem::replace(&mut *index, fresh);
        let was = |obj: &Arc<C>| {
            let ns = obj.namespace().unwrap_or_default();
            let name = obj.name().unwrap_or_default();
            old.get(&*ns)
                .and_then(|objs| objs.get(name.as_ref()))
                .is_some_and(|cached| Arc::ptr_eq(cached, obj))
        };
        let mut changed: Vec<Arc<C>> = listed.iter().filter(|o| !was(o)).cloned().collect();
        for (ns, objs) in &old {
            let now = index.get(ns);
            changed.extend(
                objs.iter()
                    .filter(|(name, _)| now.is_none_or(|n| !n.contains_key(*name)))
                    .map(|(_, obj)| obj.clone()),
            );
        }
        changed
    }

    /// The namespaces holding at least one cached object.
    pub fn namespaces(&self) -> Vec<String> {
        self.by_namespace
            .read()
            .map(|index| {
                index
                    .iter()
                    .filter(|(_, names)| !names.is_empty())
                    .map(|(ns, _)| ns.to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The cached objects of namespace `ns`.
    pub fn in_namespace(&self, ns: &str) -> Vec<Arc<C>> {
        let Ok(index) = self.by_namespace.read() else {
            return Vec::new();
        };
        index
            .get(ns)
            .map(|objs| objs.values().cloned().collect())
            .unwrap_or_default()
    }

    fn publish(&self, objs: &[Arc<C>]) {
        let Ok(mut subs) = self.subscribers.lock() else { return };
        // A closed channel is a subscriber that stopped (a deposed leader's
        // controllers): forget it.
        subs.retain(|s| objs.iter().all(|o| s.unbounded_send(o.clone()).is_ok()));
    }

    /// Every change from now on (deletions included), preceded by the whole
    /// store if it has listed already.
    pub fn subscribe(&self) -> impl Stream<Item = Arc<C>> + Send + 'static {
        let (tx, rx) = mpsc::unbounded();
        if let Ok(mut subs) = self.subscribers.lock() {
            // Under the lock, so no event falls between the snapshot and the
            // registration (a repeat is harmless: triggers are idempotent).
            if self.is_listed() {
                for obj in self.state() {
                    let _ = tx.unbounded_send(obj);
                }
            }
            subs.push(tx);
        }
        rx
    }

    /// One item after every completed (re)list, from now on.
    pub fn relists(&self) -> impl Stream<Item = ()> + Send + 'static {
        let (tx, rx) = mpsc::unbounded();
        if let Ok(mut subs) = self.relist_subscribers.lock() {
            subs.push(tx);
        }
        rx
    }

    /// The cached copy of `key`.
    pub fn get(&self, key: &ObjectRef<C>) -> Option<Arc<C>> {
        let index = self.by_namespace.read().ok()?;
        index
            .get(key.namespace.as_deref().unwrap_or_default())?
            .get(key.name.as_str())
            .cloned()
    }

    /// Every cached object.
    pub fn state(&self) -> Vec<Arc<C>> {
        let Ok(index) = self.by_namespace.read() else {
            return Vec::new();
        };
        index.values().flat_map(|objs| objs.values().cloned()).collect()
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
    pub fn holds(&self, key: &ObjectRef<C>, fingerprint: u64) -> bool {
        self.ahead_of_store(key) == Some(fingerprint)
    }

    /// Whether we wrote `key` and the store has not shown that write yet.
    pub fn wrote(&self, key: &ObjectRef<C>) -> bool {
        self.ahead_of_store(key).is_some()
    }

    /// Whether `obj` is the newest copy we can know of: the store holds this
    /// very version, and no write of ours is newer.
    pub fn is_newest(&self, obj: &C) -> bool {
        let key = ObjectRef::from_obj(obj);
        let cached = self.get(&key);
        cached.as_ref().and_then(|c| c.resource_version()) == obj.resource_version()
            && self.ahead_of_store(&key).is_none()
    }

    fn ahead_of_store(&self, key: &ObjectRef<C>) -> Option<u64> {
        let cached = self.get(key);
        let rv = cached.as_ref().and_then(|c| c.resource_version());
        self.own.ahead_of(key, rv.as_deref())
    }

    /// Records our write of `fingerprint` to `key`, answered with `rv`.
    pub fn record(&self, key: &ObjectRef<C>, rv: Option<&str>, fingerprint: u64) {
        self.own.record(key, rv, fingerprint);
    }

    /// Records that we delete `obj`, the copy this view holds: until the
    /// watch shows the deletion (whose version is later than any the
    /// object had), `deleted` says so, and a reconcile or sweep that runs
    /// in between does not delete it again. Recorded before the request is
    /// sent, so two deleters racing send one request; a delete that fails
    /// must be forgotten (`forget_deleted`), so that it is retried.
    pub fn record_deleted(&self, obj: &C) {
        let next = obj
            .resource_version()
            .and_then(|v| v.parse::<u64>().ok())
            .and_then(|v| v.checked_add(1));
        if let Some(next) = next {
            self.own
                .record(&ObjectRef::from_obj(obj), Some(&next.to_string()), DELETED);
        }
    }

    /// Forgets a deletion recorded for `key` whose request failed.
    pub fn forget_deleted(&self, key: &ObjectRef<C>) {
        self.own.forget(key, DELETED);
    }

    /// Whether we deleted `key` and the store does not show that yet.
    pub fn deleted(&self, key: &ObjectRef<C>) -> bool {
        self.holds(key, DELETED)
    }
}

/// The fingerprint recorded for a deletion: not the fingerprint of any
/// content in practice (a 64-bit hash equal to it by chance would only make
/// Steward take one write of that content as done until the watch shows it).
const DELETED: u64 = u64::MAX;

#[cfg(test)]
impl<C: Cached> View<C> {
    /// A view fed by hand instead of a watch, for tests.
    pub fn fed(objs: Vec<C::Api>) -> Arc<Self> {
        let view = Arc::new(Self::new());
        view.feed(watcher::Event::Init);
        for o in objs {
            view.feed(watcher::Event::InitApply(o));
        }
        view.feed(watcher::Event::InitDone);
        view
    }

    /// A view whose first list has not arrived, for tests.
    pub fn unlisted() -> Arc<Self> {
        Arc::new(Self::new())
    }

    /// Completes an empty first list, as the watch would.
    pub fn list_empty(&self) {
        self.feed(watcher::Event::Init);
        self.feed(watcher::Event::InitDone);
    }

    /// One watch event, as the watch delivers it.
    pub fn feed(&self, event: watcher::Event<C::Api>) {
        self.saw(Ok(cache_form::<C>(event)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compact::CachedRole;
    use k8s_openapi::api::rbac::v1::Role;
    use kube::runtime::reflector::Lookup;

    fn role(name: &str, rv: &str) -> Role {
        let mut r = Role::default();
        r.metadata.name = Some(name.into());
        r.metadata.namespace = Some("ns".into());
        r.metadata.resource_version = Some(rv.into());
        r
    }

    fn names(objs: Vec<Arc<CachedRole>>) -> Vec<String> {
        let mut v: Vec<String> = objs.iter().map(|o| o.metadata.name.to_string()).collect();
        v.sort();
        v
    }

    fn cached_role(name: &str, rv: &str) -> CachedRole {
        role(name, rv).into()
    }

    #[test]
    fn a_namespace_reads_exactly_its_objects_through_changes_and_relists() {
        let mut elsewhere = role("x", "1");
        elsewhere.metadata.namespace = Some("other".into());
        let view = View::<CachedRole>::fed(vec![role("a", "1"), role("b", "2"), elsewhere]);
        assert_eq!(names(view.in_namespace("ns")), ["a", "b"]);
        assert_eq!(names(view.in_namespace("other")), ["x"]);
        assert!(view.in_namespace("none").is_empty());
        view.feed(watcher::Event::Apply(role("c", "3")));
        view.feed(watcher::Event::Delete(role("a", "4")));
        assert_eq!(names(view.in_namespace("ns")), ["b", "c"]);
        assert_eq!(names(view.state()), ["b", "c", "x"]);
        // A relist replaces everything, once it is complete.
        view.feed(watcher::Event::Init);
        view.feed(watcher::Event::InitApply(role("d", "5")));
        assert_eq!(names(view.in_namespace("ns")), ["b", "c"], "mid-list");
        view.feed(watcher::Event::InitDone);
        assert_eq!(names(view.in_namespace("ns")), ["d"]);
        assert!(view.in_namespace("other").is_empty());
    }

    /// A relist keeps the store's copy of what did not change, so that it
    /// never holds two copies of an unchanged cache, and takes the new
    /// copy of what did.
    #[test]
    fn a_relist_shares_the_copies_of_unchanged_objects() {
        let mut recreated = role("c", "3");
        recreated.metadata.uid = Some("first".into());
        let view = View::<CachedRole>::fed(vec![role("a", "1"), role("b", "2"), recreated.clone()]);
        let get = |name: &str| view.get(&ObjectRef::new(name).within("ns")).expect(name);
        let (a, b, c) = (get("a"), get("b"), get("c"));
        assert_eq!(c.uid().as_deref(), Some("first"));
        recreated.metadata.uid = Some("second".into());
        view.feed(watcher::Event::Init);
        view.feed(watcher::Event::InitApply(role("a", "1")));
        view.feed(watcher::Event::InitApply(role("b", "9")));
        view.feed(watcher::Event::InitApply(recreated));
        view.feed(watcher::Event::InitDone);
        assert!(Arc::ptr_eq(&a, &get("a")), "unchanged: the same copy");
        assert!(!Arc::ptr_eq(&b, &get("b")), "a new version: the new copy");
        assert_eq!(get("b").resource_version().as_deref(), Some("9"));
        assert_eq!(
            get("c").uid().as_deref(),
            Some("second"),
            "another object of that name and version"
        );
    }

    /// A relist sends the objects it changed, new or gone, and nothing it
    /// found as the store holds it; those following relists hear of each.
    #[tokio::test]
    async fn a_relist_sends_only_what_it_changed() {
        let view = View::<CachedRole>::fed(vec![role("same", "1"), role("newer", "2"), role("gone", "3")]);
        let mut sub = view.subscribe();
        let mut relists = view.relists();
        let mut first = Vec::new();
        for _ in 0..3 {
            first.push(sub.next().await.expect("the store").metadata.name.to_string());
        }
        first.sort();
        assert_eq!(first, ["gone", "newer", "same"], "a late subscriber gets the store");
        assert!(futures::FutureExt::now_or_never(relists.next()).is_none());
        view.feed(watcher::Event::Init);
        view.feed(watcher::Event::InitApply(role("same", "1")));
        view.feed(watcher::Event::InitApply(role("newer", "9")));
        view.feed(watcher::Event::InitApply(role("created", "10")));
        view.feed(watcher::Event::InitDone);
        let mut sent = Vec::new();
        while let Some(Some(obj)) = futures::FutureExt::now_or_never(sub.next()) {
            sent.push((obj.metadata.name.to_string(), obj.metadata.resource_version.to_string()));
        }
        sent.sort();
        assert_eq!(
            sent,
            [
                ("created".to_string(), "10".to_string()),
                ("gone".to_string(), "3".to_string()),
                ("newer".to_string(), "9".to_string()),
            ],
            "the new, the newer and the store's copy of the gone; not the unchanged"
        );
        assert_eq!(futures::FutureExt::now_or_never(relists.next()), Some(Some(())));
        assert_eq!(names(view.state()), ["created", "newer", "same"]);
    }

    #[tokio::test]
    async fn a_late_subscriber_gets_the_store_then_the_changes() {
        let view = View::<CachedRole>::fed(vec![role("a", "1"), role("b", "2")]);
        let mut sub = view.subscribe();
        let mut first: Vec<String> = vec![
            sub.next().await.expect("a").metadata.name.to_string(),
            sub.next().await.expect("b").metadata.name.to_string(),
        ];
        first.sort();
        assert_eq!(first, ["a", "b"]);
        view.feed(watcher::Event::Delete(role("a", "3")));
        assert_eq!(&*sub.next().await.expect("delete").metadata.name, "a");
    }

    #[tokio::test]
    async fn an_early_subscriber_gets_the_list_once_it_is_complete() {
        let view = View::<CachedRole>::unlisted();
        let mut sub = view.subscribe();
        assert!(!view.is_listed());
        view.feed(watcher::Event::Init);
        view.feed(watcher::Event::InitApply(role("a", "1")));
        assert!(
            futures::FutureExt::now_or_never(sub.next()).is_none(),
            "sent before the list was complete"
        );
        assert!(
            view.get(&ObjectRef::new("a").within("ns")).is_none(),
            "readable before the list was complete"
        );
        view.feed(watcher::Event::InitDone);
        assert!(view.is_listed());
        assert_eq!(&*sub.next().await.expect("a").metadata.name, "a");
    }

    #[test]
    fn freshness_comes_from_the_store_and_our_writes() {
        let view = View::<CachedRole>::fed(vec![role("a", "5")]);
        let key = ObjectRef::new("a").within("ns");
        assert!(view.is_newest(&cached_role("a", "5")));
        assert!(
            !view.is_newest(&cached_role("a", "4")),
            "an older copy than the store's"
        );
        view.record(&key, Some("6"), 42);
        assert!(view.holds(&key, 42), "the store is behind our write of exactly this");
        assert!(!view.holds(&key, 43), "we now want something else");
        assert!(
            !view.is_newest(&cached_role("a", "5")),
            "our write is newer than the store"
        );
        view.feed(watcher::Event::Apply(role("a", "6")));
        assert!(view.is_newest(&cached_role("a", "6")));
        assert!(!view.holds(&key, 42), "the store shows it now: trust the store");
    }

    #[test]
    fn our_deletion_shows_until_the_watch_does() {
        let view = View::<CachedRole>::fed(vec![role("a", "5"), role("b", "7")]);
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
        view.feed(watcher::Event::Delete(role("a", "9")));
        assert!(view.get(&key).is_none());
        assert!(!view.deleted(&key), "the store shows it: nothing left to remember");
        // Created again under that name: it is there to delete.
        view.feed(watcher::Event::Apply(role("a", "12")));
        assert!(!view.deleted(&key));
    }

    /// An object deleted while the watch was down comes back in no event:
    /// the relist leaves it out. A write of ours recorded before must not
    /// make the view say the server holds it.
    #[test]
    fn a_relist_without_our_object_shows_it_gone() {
        let view = View::<CachedRole>::fed(vec![role("a", "5")]);
        let key = ObjectRef::new("a").within("ns");
        view.record(&key, Some("6"), 42);
        assert!(view.holds(&key, 42));
        view.feed(watcher::Event::Init);
        view.feed(watcher::Event::InitDone);
        assert!(view.get(&key).is_none());
        assert!(!view.holds(&key, 42), "deleted while the watch was down: not held");
        assert!(!view.wrote(&key));
    }

    #[test]
    fn a_stopped_subscriber_is_forgotten() {
        let view = View::<CachedRole>::fed(vec![role("a", "1")]);
        drop(view.subscribe());
        view.feed(watcher::Event::Apply(role("a", "2")));
        assert_eq!(view.subscribers.lock().map(|s| s.len()).unwrap_or(9), 0);
    }

    /// A readiness probe asking while the controllers wait must not take
    /// their wake-up (the store's readiness future holds a single waker).
    #[tokio::test]
    async fn a_probe_asking_meanwhile_does_not_strand_a_waiter() {
        let view = View::<CachedRole>::unlisted();
        let waiter = tokio::spawn({
            let view = view.clone();
            async move { view.listed().await }
        });
        tokio::task::yield_now().await;
        for _ in 0..3 {
            assert!(!view.is_listed());
            tokio::task::yield_now().await;
        }
        view.list_empty();
        assert!(view.is_listed());
        let done = tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await;
        assert!(matches!(done, Ok(Ok(true))), "the waiter was never woken: {done:?}");
    }
}
