//! The expiry clock: deletes an exception's grant binding at the instant
//! from which no grant may exist (`exception::grant_ends`), on a timer of its
//! own, beside the exception's reconcile.
//!
//! Why beside it: kube runs one reconcile of an object at a time, and the
//! wake-up at an expiry waits for the one in progress. Under a tenant's
//! flood of megabyte objects, the reconcile a few seconds before the expiry
//! (ExpiringSoon: a status write, an Event) waited seconds for the API
//! server to answer its status write, and the revocation behind it began up
//! to 1.6 s after `expiresAt`. Here nothing waits but the clock. The
//! reconcile's own wake-up still comes: it finds the binding deleted (a
//! delete is sent once, `guarded_delete`), then records Expired, the Event
//! and deletes the Role, as before.
//!
//! The clock keeps one instant per cached exception, from the exceptions'
//! cache; every change of an exception sets it again. When it fires, it
//! reads the exception from the cache again and revokes only if the instant
//! has passed for the exception as it is now.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use super::{Context, managed_rbac};
use crate::api::PolicyException;
use crate::decide::exception::grant_ends;
use crate::decide::rbac;

/// An exception by namespace and name, one copy shared by both of the
/// schedule's tables.
type Key = Arc<(Box<str>, Box<str>)>;

/// The instants at which grants end, earliest first.
#[derive(Debug, Default)]
pub struct Schedule {
    by_key: HashMap<Key, Timestamp>,
    due: BTreeSet<(Timestamp, Key)>,
}

impl Schedule {
    /// Sets (or, with None, clears) the instant of `key`.
    pub fn set(&mut self, key: Key, at: Option<Timestamp>) {
        if let Some(old) = self.by_key.remove(&key) {
            self.due.remove(&(old, key.clone()));
        }
        if let Some(at) = at {
            self.by_key.insert(key.clone(), at);
            self.due.insert((at, key));
        }
    }

    /// The earliest instant kept.
    pub fn next(&self) -> Option<Timestamp> {
        self.due.first().map(|(at, _)| *at)
    }

    /// Removes and returns every key whose instant is `now` or earlier.
    pub fn take_due(&mut self, now: Timestamp) -> Vec<Key> {
        let mut keys = Vec::new();
        while let Some((at, _)) = self.due.first()
            && *at <= now
        {
            if let Some((_, key)) = self.due.pop_first() {
                self.by_key.remove(&key);
                keys.push(key);
            }
        }
        keys
    }

    /// How many instants are kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether none is kept.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

fn key_of(pe: &PolicyException) -> Key {
    Arc::new((pe.namespace().unwrap_or_default().into(), pe.name_any().into()))
}

/// Runs the clock until the exceptions' cache ends.
pub async fn run(ctx: Arc<Context>) {
    let mut changes = ctx.caches.exceptions.subscribe();
    let mut schedule = Schedule::default();
    loop {
        let wait = schedule
            .next()
            .map(|at| Duration::try_from(at.duration_since(Timestamp::now())).unwrap_or(Duration::ZERO));
        tokio::select! {
            changed = changes.next() => match changed {
                Some(pe) => {
                    let key = key_of(&pe);
                    // A deleted exception's grant goes with it (the sweep).
                    let cached = ctx.caches.exceptions.get(&ObjectRef::new(&key.1).within(&key.0));
                    schedule.set(key, cached.as_deref().and_then(grant_ends));
                }
                None => return,
            },
            () = tokio::time::sleep(wait.unwrap_or(Duration::ZERO)), if wait.is_some() => {
                let now = Timestamp::now();
                for key in schedule.take_due(now) {
                    let Some(pe) = ctx.caches.exceptions.get(&ObjectRef::new(&key.1).within(&key.0)) else {
                        continue;
                    };
                    match grant_ends(&pe) {
                        Some(end) if end <= now => {
                            if ctx.writes_for(pe.as_ref()) {
                                tokio::spawn(revoke(ctx.clone(), pe, end));
                            }
                        }
                        // Changed since it was set, and its change not yet
                        // seen here: keep its instant as it is now.
                        later => schedule.set(key, later),
                    }
                }
            }
        }
    }
}

/// Deletes the grant binding of `pe` (ended at `end`) if Steward's is there.
/// A failed delete (the API server away, or refusing with 403 until its
/// authorizer has synced after a restart) is tried again on the
/// revocation's retry schedule for as long as the cached exception, as it
/// is then, is the same one and has ended: the exception's reconcile
/// retries too, but it may be held in a request of its own, and a relist
/// no longer sends every exception again. Only names are kept between
/// tries: the exception may be a megabyte.
pub(super) async fn revoke(ctx: Arc<Context>, pe: Arc<PolicyException>, end: Timestamp) {
    let (ns, uid, exception) = (
        pe.namespace().unwrap_or_default(),
        pe.uid().unwrap_or_default(),
        pe.name_any(),
    );
    drop(pe);
    let name = rbac::exception_name(&exception);
    let cached = ObjectRef::new(&exception).within(&ns);
    let mut failures = 0;
    loop {
        match managed_rbac::remove_binding(&ctx, &ns, &name, &uid).await {
            Ok(true) => {
                let lag = Timestamp::now().duration_since(end).as_secs_f64();
                ctx.metrics.expiry_enforced(lag);
                tracing::info!(namespace = %ns, %exception, lag_seconds = lag, "grant revoked at its expiry");
                return;
            }
            Ok(false) => return,
            Err(e) => {
                failures += 1;
                let delay = super::revocation_retry(failures);
                // Once per revocation: through an outage every expired
                // exception fails twice a second, and its reconcile logs too.
                if failures == 1 {
                    tracing::warn!(namespace = %ns, %exception, error = %e, "revoking at the expiry failed; retrying");
                } else {
                    tracing::debug!(namespace = %ns, %exception, error = %e, retry_in_ms = delay.as_millis() as u64, "revoking at the expiry failed again");
                }
                tokio::time::sleep(delay).await;
                match ctx.caches.exceptions.get(&cached) {
                    Some(now) if still_ended(&now, &uid, Timestamp::now()) && ctx.writes_for(now.as_ref()) => {}
                    // Deleted (the sweep revokes), replaced, or extended.
                    _ => return,
                }
            }
        }
    }
}

/// Whether `pe` is still the exception of `uid` and its grant has ended at
/// `now`.
fn still_ended(pe: &PolicyException, uid: &str, now: Timestamp) -> bool {
    pe.uid().as_deref() == Some(uid) && grant_ends(pe).is_some_and(|end| end <= now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::fixtures::ts;

    fn key(name: &str) -> Key {
        Arc::new(("shop".into(), name.into()))
    }

    /// Due at its instant, not a nanosecond before; set again, it moves;
    /// cleared, it never comes.
    #[test]
    fn instants_come_due_in_order_and_move_when_set_again() {
        let mut s = Schedule::default();
        s.set(key("b"), Some(ts("2026-11-29T10:00:02Z")));
        s.set(key("a"), Some(ts("2026-11-29T10:00:01Z")));
        s.set(key("c"), Some(ts("2026-11-29T10:00:03Z")));
        s.set(key("gone"), Some(ts("2026-11-29T10:00:00Z")));
        s.set(key("gone"), None);
        assert_eq!(s.next(), Some(ts("2026-11-29T10:00:01Z")));
        assert_eq!(s.len(), 3);
        // c extended: it moves, and is kept once.
        s.set(key("c"), Some(ts("2026-11-29T11:00:00Z")));
        assert_eq!(s.len(), 3);
        // (now, keys due)
        let table: &[(&str, &[&str])] = &[
            ("2026-11-29T10:00:00.999999999Z", &[]),
            ("2026-11-29T10:00:01Z", &["a"]),
            ("2026-11-29T10:00:01Z", &[]),
            ("2026-11-29T10:59:59Z", &["b"]),
            ("2026-11-29T11:00:00Z", &["c"]),
        ];
        for (now, want) in table {
            let got: Vec<String> = s.take_due(ts(now)).into_iter().map(|k| k.1.to_string()).collect();
            assert_eq!(got, *want, "at {now}");
        }
        assert!(s.is_empty());
        assert_eq!(s.next(), None);
    }

    /// A failed revocation is tried again only while the exception, as
    /// cached then, is the same one and has ended.
    #[test]
    fn a_failed_revocation_is_retried_only_while_it_is_still_due() {
        let pe = |uid: &str, expires: &str| {
            let mut pe: PolicyException = serde_json::from_value(serde_json::json!({
                "apiVersion": "steward.dev/v1alpha1", "kind": "PolicyException",
                "metadata": {"name": "x", "namespace": "shop", "uid": uid},
                "spec": {"control": "c", "ticket": "T-1", "approver": "a@example.com",
                         "reason": "r", "expiresAt": expires}
            }))
            .expect("an exception");
            pe.status = None;
            pe
        };
        let now = ts("2026-11-29T10:00:00Z");
        // (uid, expiresAt, retried)
        let table = [
            ("u1", "2026-11-29T09:59:59Z", true),
            ("u1", "2026-11-29T10:00:00Z", true),
            // Extended meanwhile.
            ("u1", "2026-11-29T10:00:01Z", false),
            // Deleted and created again under the same name.
            ("u2", "2026-11-29T09:59:59Z", false),
        ];
        for (uid, expires, want) in table {
            assert_eq!(still_ended(&pe(uid, expires), "u1", now), want, "{uid} {expires}");
        }
    }

    /// Two exceptions ending at the same instant both come due.
    #[test]
    fn the_same_instant_holds_many() {
        let mut s = Schedule::default();
        let at = ts("2026-11-29T10:00:00Z");
        for n in ["x", "y", "z"] {
            s.set(key(n), Some(at));
        }
        assert_eq!(s.take_due(at).len(), 3);
    }
}
