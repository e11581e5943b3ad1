//! The memo behind read-your-writes, private to the cache module. A
//! reconcile often runs before the watch has delivered the controller's own
//! last write (its own writes are what trigger it). Deciding from that stale
//! view would apply the same object again, or write a status computed from
//! an older one. This memo remembers, per object of one kind, the
//! resourceVersion the API server returned for our last write and a
//! fingerprint of what we wrote; it forgets an entry as soon as the watch
//! shows that version (or a later one), and after `TTL` in any case.
//!
//! resourceVersions are compared as integers (etcd revisions, which is what
//! every Kubernetes API server uses). If one does not parse, the memo knows
//! nothing and the cache is trusted, which costs a write, never a miss.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::runtime::reflector::{Lookup, ObjectRef};
use serde::Serialize;

/// How long an entry may wait for the watch. Beyond it, the cache is trusted
/// again. The entry is consulted only while the cache shows an older
/// version than our write, so the API server holds our write or something
/// newer, whose own event is on its way; the bound is a safety valve, not a
/// freshness rule. It is a minute because under a tenant's flood of
/// megabyte objects the watch showed our status writes more than 10 s
/// late, and each reconcile after that wrote the same status again (125 to
/// 233 status writes for 100 objects), loading the swamped API server with
/// a megabyte object's write each.
const TTL: Duration = Duration::from_secs(60);

struct Entry {
    version: u64,
    fingerprint: u64,
    at: Instant,
}

/// Our recent writes of one kind that its cache may not show yet.
pub(super) struct OwnWrites<K: Lookup<DynamicType = ()>> {
    entries: Mutex<HashMap<ObjectRef<K>, Entry>>,
}

impl<K: Lookup<DynamicType = ()>> Default for OwnWrites<K> {
    fn default() -> Self {
        Self {
            entries: Mutex::default(),
        }
    }
}

/// A stable fingerprint of what was written.
pub fn fingerprint<T: Serialize>(value: &T) -> u64 {
    let mut h = DefaultHasher::new();
    // Serialising our own types cannot fail (no maps with non-string keys);
    // if it did, every value would share one fingerprint and the memo would
    // answer "holds" only for an object we wrote, so at worst skip a write
    // of a value equal in everything we serialise.
    serde_json::to_string(value).unwrap_or_default().hash(&mut h);
    h.finish()
}

fn version(rv: Option<&str>) -> Option<u64> {
    rv.and_then(|v| v.parse().ok())
}

impl<K: Lookup<DynamicType = ()>> OwnWrites<K> {
    /// Records that we wrote `fingerprint` to `key` and the API server
    /// answered with resourceVersion `rv`.
    pub(super) fn record(&self, key: &ObjectRef<K>, rv: Option<&str>, fingerprint: u64) {
        let Some(version) = version(rv) else { return };
        let Ok(mut entries) = self.entries.lock() else { return };
        // Entries normally leave when the watch shows them; this bounds the
        // map when a watch event is lost.
        if entries.len() > 1024 && entries.len().is_power_of_two() {
            entries.retain(|_, e| e.at.elapsed() < TTL);
        }
        entries.insert(
            key.clone(),
            Entry {
                version,
                fingerprint,
                at: Instant::now(),
            },
        );
    }

    /// Forgets our write of `key` if it was `fingerprint` (a write that
    /// turned out not to happen).
    pub(super) fn forget(&self, key: &ObjectRef<K>, fingerprint: u64) {
        let Ok(mut entries) = self.entries.lock() else { return };
        if entries.get(key).is_some_and(|e| e.fingerprint == fingerprint) {
            entries.remove(key);
        }
    }

    /// The watch delivered `obj` (an update, or its deletion): the cache
    /// now shows our write of it or something newer.
    pub(super) fn seen(&self, obj: &K) {
        let Ok(mut entries) = self.entries.lock() else { return };
        if entries.is_empty() {
            return;
        }
        let key = ObjectRef::from_obj(obj);
        let caught_up = match (entries.get(&key), version(obj.resource_version().as_deref())) {
            (Some(e), Some(v)) => v >= e.version,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if caught_up {
            entries.remove(&key);
        }
    }

    /// A relist that began at `began` is complete, and `listed` says which
    /// objects it holds. A write recorded before the relist began, of an
    /// object the list does not hold, is forgotten: the object is gone
    /// (deleted while the watch was down, so no deletion event came), and
    /// the memo must not say for up to `TTL` that the server holds it. If
    /// the list was served from a cache behind our write after all, the
    /// next decision writes it again: a write, never a miss.
    pub(super) fn relisted(&self, began: Instant, listed: impl Fn(&ObjectRef<K>) -> bool) {
        let Ok(mut entries) = self.entries.lock() else { return };
        entries.retain(|key, e| e.at >= began || listed(key));
    }

    /// If the cache (holding `cached_rv`, None if absent) is behind our last
    /// write of `key`, the fingerprint of that write.
    pub(super) fn ahead_of(&self, key: &ObjectRef<K>, cached_rv: Option<&str>) -> Option<u64> {
        let Ok(entries) = self.entries.lock() else { return None };
        let e = entries.get(key)?;
        if e.at.elapsed() >= TTL {
            return None;
        }
        let behind = match cached_rv {
            None => true,
            Some(rv) => version(Some(rv))? < e.version,
        };
        behind.then_some(e.fingerprint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};

    fn role(name: &str, rv: Option<&str>) -> Role {
        let mut r = Role::default();
        r.metadata.name = Some(name.into());
        r.metadata.namespace = Some("ns".into());
        r.metadata.resource_version = rv.map(String::from);
        r
    }

    fn key(name: &str) -> ObjectRef<Role> {
        ObjectRef::new(name).within("ns")
    }

    #[test]
    fn a_cache_behind_our_write_knows_what_we_wrote() {
        let w = OwnWrites::<Role>::default();
        w.record(&key("a"), Some("100"), 7);
        let table: &[(&str, Option<&str>, Option<u64>, &str)] = &[
            ("a", None, Some(7), "not in the cache yet"),
            ("a", Some("99"), Some(7), "cache shows an older version"),
            ("a", Some("100"), None, "the cache shows our write: trust it"),
            ("a", Some("101"), None, "a later edit: trust the cache"),
            ("b", None, None, "another object"),
        ];
        for (name, cached, want, why) in table {
            assert_eq!(w.ahead_of(&key(name), *cached), *want, "{why}");
        }
        // Another kind has its own memo.
        let other = OwnWrites::<RoleBinding>::default();
        assert_eq!(other.ahead_of(&ObjectRef::new("a").within("ns"), None), None);
    }

    #[test]
    fn the_watch_catching_up_clears_the_entry() {
        let w = OwnWrites::<Role>::default();
        w.record(&key("a"), Some("100"), 7);
        w.seen(&role("a", Some("99")));
        assert_eq!(w.ahead_of(&key("a"), None), Some(7), "an older event changes nothing");
        // A deletion after our write arrives with a later version: the object
        // is gone, and the next decision must see that, not our memo.
        w.seen(&role("a", Some("150")));
        assert_eq!(w.ahead_of(&key("a"), None), None);
    }

    #[test]
    fn a_relist_without_the_object_forgets_writes_made_before_it() {
        let w = OwnWrites::<Role>::default();
        w.record(&key("gone"), Some("100"), 7);
        w.record(&key("kept"), Some("100"), 7);
        let began = Instant::now();
        w.record(&key("after"), Some("120"), 7);
        // The list holds "kept" (at an older version than our write), not
        // "gone", which was deleted while the watch was down.
        w.relisted(began, |k| k == &key("kept"));
        assert_eq!(w.ahead_of(&key("gone"), None), None, "deleted meanwhile: not held");
        assert_eq!(
            w.ahead_of(&key("kept"), Some("99")),
            Some(7),
            "listed: still behind our write"
        );
        assert_eq!(
            w.ahead_of(&key("after"), None),
            Some(7),
            "written after the list began: the list may predate it"
        );
    }

    #[test]
    fn versions_that_do_not_parse_mean_the_cache_is_trusted() {
        let w = OwnWrites::<Role>::default();
        w.record(&key("a"), Some("opaque"), 7);
        assert_eq!(w.ahead_of(&key("a"), None), None);
        w.record(&key("b"), Some("100"), 7);
        assert_eq!(w.ahead_of(&key("b"), Some("opaque")), None);
    }

    #[test]
    fn fingerprints_tell_contents_apart() {
        assert_eq!(fingerprint(&vec!["a", "b"]), fingerprint(&vec!["a", "b"]));
        assert_ne!(fingerprint(&vec!["a", "b"]), fingerprint(&vec!["b", "a"]));
    }
}
