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
    view.record_deleted(&cached);
    let under_way = ctx.deletes.start(flight);
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
    sent: Mutex<HashMap<String, tokio::sync::watch::Receiver<()>>>,
}

impl InFlight {
    /// Records the delete of `key` as under way until the guard drops.
    fn start(&self, key: String) -> UnderWay<'_> {
        let (tx, rx) = tokio::sync::watch::channel(());
        if let Ok(mut sent) = self.sent.lock() {
            sent.insert(key.clone(), rx);
        }
        UnderWay {
            flights: self,
            key,
            _answered: tx,
        }
    }

    /// Returns once the delete of `key` under way, if any, is answered.
    async fn answered(&self, key: &str) {
        let rx = self.sent.lock().ok().and_then(|sent| sent.get(key).cloned());
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
    _answered: tokio::sync::watch::Sender<()>,
}

impl Drop for UnderWay<'_> {
    fn drop(&mut self) {
        if let Ok(mut sent) = self.flights.sent.lock() {
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
