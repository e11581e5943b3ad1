//! Deletes of the Roles and RoleBindings Steward manages, each sent once,
//! for the reconcilers and the sweep. Both may decide to delete the same
//! object before the watch shows it gone (at a mass expiry they all do):
//! the view's memo of our own deletions (`View::record_deleted`) is written
//! before the request, so whoever comes second sends nothing, and is
//! forgotten when the request fails, so the next attempt sends it again.
//! Every delete carries the object's uid as a precondition; already gone
//! (404) or replaced (409) counts as done (`Writer::delete_namespaced`).
//!
//! Whoever comes second waits for the first one's answer (`InFlight`): the
//! exception's reconcile writes Expired only once the binding is gone, and
//! the expiry clock may be the one deleting it. If that delete fails, the
//! second sends its own.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use kube::runtime::reflector::ObjectRef;

use super::Context;
use crate::apply::Namespaced;
use crate::cache::View;
use crate::compact::{Compact, Meta};

/// Which object at a name a delete is for.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// The cached object, if its owner references include this uid. A name
    /// Steward would use that someone else holds is not Steward's to
    /// delete, and what the cache does not hold is not deleted.
    OwnedBy(&'a str),
    /// The cached object, if it has this uid. One the cache no longer
    /// holds is gone already: the sweep judged a snapshot, and sending its
    /// delete anyway only drew a 404, late in a mass expiry, where each one
    /// held the status writes back (`client::lanes`).
    Uid(&'a str),
}

impl Target<'_> {
    /// Whether `meta` is of the object this target names.
    fn names(self, meta: &Meta) -> bool {
        match self {
            Target::OwnedBy(owner) => meta.owned_by(owner),
            Target::Uid(uid) => &*meta.uid == uid,
        }
    }
}

/// Deletes `target` at `ns`/`name`, recording the deletion in `view` until
/// the cache shows it. None when there is nothing to send: a delete of ours
/// was already answered there (one under way is waited for first), or the
/// cache holds no such object.
pub async fn delete_once<K: Namespaced>(
    ctx: &Context,
    view: &View<K::Cached>,
    ns: &str,
    name: &str,
    target: Target<'_>,
) -> Option<Result<(), kube::Error>> {
    let key = ObjectRef::new(name).within(ns);
    let flight = format!("{}/{ns}/{name}", K::kind(&()));
    if view.deleted(&key) {
        ctx.deletes.answered(&flight).await;
        // Still recorded: it succeeded. Forgotten: it failed, and this one
        // sends its own.
        if view.deleted(&key) {
            return None;
        }
    }
    let cached = view.get(&key).filter(|c| target.names(c.meta()))?;
    // Under way before it is recorded: whoever then finds it recorded also
    // finds it under way, and waits for its answer.
    let under_way = ctx.deletes.start(flight);
    view.record_deleted(&cached);
    let uid = Some(cached.meta().uid.to_string()).filter(|u| !u.is_empty());
    let done = ctx.writer.delete_namespaced::<K>(ns, name, uid).await;
    if done.is_err() {
        view.forget_deleted(&key);
    }
    // Only now, so whoever waited reads the memo as this answer left it.
    drop(under_way);
    Some(done)
}

/// Deletes sent and not yet answered, by kind, namespace and name.
#[derive(Debug, Default)]
pub struct InFlight {
    sent: Mutex<HashMap<String, (u64, tokio::sync::watch::Receiver<()>)>>,
    /// Numbers each delete, so an answered one never takes a later one of
    /// the same object off the table.
    next: AtomicU64,
}

impl InFlight {
    /// Records the delete of `key` as under way until the guard drops.
    fn start(&self, key: String) -> UnderWay<'_> {
        let (tx, rx) = tokio::sync::watch::channel(());
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut sent) = self.sent.lock() {
            sent.insert(key.clone(), (id, rx));
        }
        UnderWay {
            flights: self,
            key,
            id,
            _answered: tx,
        }
    }

    /// Returns once the delete of `key` under way, if any, is answered.
    async fn answered(&self, key: &str) {
        let rx = self
            .sent
            .lock()
            .ok()
            .and_then(|sent| sent.get(key).map(|(_, rx)| rx.clone()));
        if let Some(mut rx) = rx {
            // Ends when the sender drops, with the answer.
            while rx.changed().await.is_ok() {}
        }
    }
}

/// A delete under way; dropping it marks it answered.
struct UnderWay<'a> {
    flights: &'a InFlight,
    key: String,
    id: u64,
    _answered: tokio::sync::watch::Sender<()>,
}

impl Drop for UnderWay<'_> {
    fn drop(&mut self) {
        // A failed delete is forgotten before this drops, and another may
        // have started meanwhile: that one stays under way.
        if let Ok(mut sent) = self.flights.sent.lock()
            && sent.get(&self.key).is_some_and(|(id, _)| *id == self.id)
        {
            sent.remove(&self.key);
        }
    }
}

/// Whether `target` at `ns`/`name` is cached and no delete of ours is under
/// way there: whether `delete_once` would delete the cached object.
pub fn pending<K: Namespaced>(view: &View<K::Cached>, ns: &str, name: &str, target: Target<'_>) -> bool {
    let key = ObjectRef::new(name).within(ns);
    view.get(&key)
        .is_some_and(|c| target.names(c.meta()) && !view.deleted(&key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Still under way: `answered` cannot return (nothing would wake it).
    async fn waits(flights: &InFlight, key: &str) -> bool {
        tokio::time::timeout(Duration::from_millis(50), flights.answered(key))
            .await
            .is_err()
    }

    /// A delete answered after a second one of the same object started
    /// (the first failed, the second was sent) leaves the second under way.
    #[tokio::test]
    async fn an_answered_delete_leaves_a_later_one_under_way() {
        let flights = InFlight::default();
        let first = flights.start("RoleBinding/shop/x".into());
        let second = flights.start("RoleBinding/shop/x".into());
        drop(first);
        assert!(
            waits(&flights, "RoleBinding/shop/x").await,
            "the second delete no longer waited for"
        );
        drop(second);
        flights.answered("RoleBinding/shop/x").await;
        assert!(flights.sent.lock().map(|s| s.is_empty()).unwrap_or(false));
        // Nothing under way: answered at once.
        flights.answered("RoleBinding/shop/y").await;
    }
}
