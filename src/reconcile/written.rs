//! Read-your-writes over the watch caches. A reconcile often runs before
//! the watch has delivered the controller's own last write (its own writes
//! are what trigger it). Deciding from that stale view would apply the same
//! object again, or write a status computed from an older one. This memo
//! remembers, per object, the resourceVersion the API server returned for
//! our last write and what we wrote; it forgets an entry as soon as the
//! watch shows that version (or a later one), and after `TTL` in any case.
//!
//! resourceVersions are compared as integers (etcd revisions, which is what
//! every Kubernetes API server uses). If one does not parse, the memo knows
//! nothing and the cache is trusted, which costs a write, never a miss.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// How long an entry may wait for the watch. Beyond it, the cache is trusted
/// again (a watch that lags this much is being re-listed anyway).
pub const TTL: Duration = Duration::from_secs(10);

type Key = (String, String, String);

struct Entry {
    version: u64,
    fingerprint: u64,
    at: Instant,
}

/// Our recent writes that the caches may not show yet.
#[derive(Default)]
pub struct Written {
    entries: Mutex<HashMap<Key, Entry>>,
}

/// A stable fingerprint of what was written.
pub fn fingerprint<T: Serialize>(value: &T) -> u64 {
    let mut h = DefaultHasher::new();
    // Serialising our own types cannot fail (no maps with non-string keys).
    serde_json::to_string(value).unwrap_or_default().hash(&mut h);
    h.finish()
}

fn version(rv: Option<&str>) -> Option<u64> {
    rv.and_then(|v| v.parse().ok())
}

impl Written {
    /// Records that we wrote `fingerprint` to `kind` `ns/name` and the API
    /// server answered with resourceVersion `rv`.
    pub fn record(&self, kind: &str, ns: &str, name: &str, rv: Option<&str>, fingerprint: u64) {
        let Some(version) = version(rv) else { return };
        let Ok(mut entries) = self.entries.lock() else { return };
        // Entries normally leave when the watch shows them; this bounds the
        // map when a watch event is lost.
        if entries.len() > 1024 && entries.len().is_power_of_two() {
            entries.retain(|_, e| e.at.elapsed() < TTL);
        }
        entries.insert(
            (kind.to_string(), ns.to_string(), name.to_string()),
            Entry {
                version,
                fingerprint,
                at: Instant::now(),
            },
        );
    }

    /// The watch delivered `kind` `ns/name` at `rv` (an update, or its
    /// deletion): the cache now shows our write or something newer.
    pub fn seen(&self, kind: &str, ns: &str, name: &str, rv: Option<&str>) {
        let Ok(mut entries) = self.entries.lock() else { return };
        if entries.is_empty() {
            return;
        }
        let key = (kind.to_string(), ns.to_string(), name.to_string());
        let caught_up = match (entries.get(&key), version(rv)) {
            (Some(e), Some(v)) => v >= e.version,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if caught_up {
            entries.remove(&key);
        }
    }

    /// Whether the cache (holding `cached_rv`, None if absent) is behind our
    /// last write of this object, and that write was exactly `fingerprint`:
    /// the server already holds what we want, so writing again is waste.
    pub fn holds(&self, kind: &str, ns: &str, name: &str, cached_rv: Option<&str>, fingerprint: u64) -> bool {
        self.behind_at(kind, ns, name, cached_rv)
            .is_some_and(|f| f == fingerprint)
    }

    /// Whether the cache (holding `cached_rv`) is behind our last write of
    /// this object, whatever it was.
    pub fn behind(&self, kind: &str, ns: &str, name: &str, cached_rv: Option<&str>) -> bool {
        self.behind_at(kind, ns, name, cached_rv).is_some()
    }

    fn behind_at(&self, kind: &str, ns: &str, name: &str, cached_rv: Option<&str>) -> Option<u64> {
        let Ok(entries) = self.entries.lock() else { return None };
        let e = entries.get(&(kind.to_string(), ns.to_string(), name.to_string()))?;
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

    const K: &str = "Role";

    #[test]
    fn a_cache_behind_our_write_is_known_to_hold_it() {
        let w = Written::default();
        w.record(K, "ns", "a", Some("100"), 7);
        assert!(w.holds(K, "ns", "a", None, 7), "not in the cache yet");
        assert!(w.holds(K, "ns", "a", Some("99"), 7), "cache shows an older version");
        assert!(!w.holds(K, "ns", "a", Some("99"), 8), "we now want something else");
        assert!(
            !w.holds(K, "ns", "a", Some("100"), 7),
            "the cache shows our write: trust it"
        );
        assert!(!w.holds(K, "ns", "a", Some("101"), 7), "a later edit: trust the cache");
        assert!(!w.holds(K, "ns", "b", None, 7), "another object");
        assert!(!w.holds("RoleBinding", "ns", "a", None, 7), "another kind");
    }

    #[test]
    fn the_watch_catching_up_clears_the_entry() {
        let w = Written::default();
        w.record(K, "ns", "a", Some("100"), 7);
        w.seen(K, "ns", "a", Some("99"));
        assert!(w.behind(K, "ns", "a", None), "an older event changes nothing");
        // A deletion after our write arrives with a later version: the object
        // is gone, and the next decision must see that, not our memo.
        w.seen(K, "ns", "a", Some("150"));
        assert!(!w.behind(K, "ns", "a", None));
        assert!(!w.holds(K, "ns", "a", None, 7));
    }

    #[test]
    fn versions_that_do_not_parse_mean_the_cache_is_trusted() {
        let w = Written::default();
        w.record(K, "ns", "a", Some("opaque"), 7);
        assert!(!w.holds(K, "ns", "a", None, 7));
        w.record(K, "ns", "b", Some("100"), 7);
        assert!(!w.holds(K, "ns", "b", Some("opaque"), 7));
    }

    #[test]
    fn fingerprints_tell_contents_apart() {
        assert_eq!(fingerprint(&vec!["a", "b"]), fingerprint(&vec!["a", "b"]));
        assert_ne!(fingerprint(&vec!["a", "b"]), fingerprint(&vec!["b", "a"]));
    }
}
