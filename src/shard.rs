//! Sharding: with `--shards N`, namespaces are split among N shards by a
//! stable hash of their name, and a process reconciles (writes for) only the
//! namespaces of the shards whose Lease it holds (`leader::hold_shards`).
//! Every replica keeps every cache and serves the webhook; only the writing
//! is divided. Without sharding one process holds everything.
//!
//! This module owns the pure part (which shard a namespace is in) and the
//! shared record of the shards this process holds, which reconciles consult
//! before they write and which wakes them when a shard is taken over.

use std::sync::atomic::{AtomicU64, Ordering};

use futures::Stream;
use tokio::sync::watch;

/// Most shards a deployment can have (one bit each in [`Held`]).
pub const MAX_SHARDS: u32 = 64;

/// The shard of `namespace` among `shards`: FNV-1a (64-bit) of its name,
/// modulo `shards`. Stable across processes, versions and platforms, unlike
/// std's `DefaultHasher`, so every replica agrees without talking.
pub fn shard_of(namespace: &str, shards: u32) -> u32 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = namespace
        .bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    // `shards` is at least 1 (checked at parse time); max(1) keeps a
    // zero from a caller of this library from dividing by zero.
    (hash % u64::from(shards.max(1))) as u32
}

/// The shards this process holds, shared by the lease tasks (which set
/// them) and every writer (which asks before writing).
#[derive(Debug)]
pub struct Held {
    shards: u32,
    bits: AtomicU64,
    changes: watch::Sender<u64>,
}

impl Held {
    /// Unsharded: one shard, held from the start (the caller runs the
    /// controllers only while it leads, if it elects a leader at all).
    pub fn everything() -> Self {
        let held = Self::none(1);
        held.acquire(0);
        held
    }

    /// `shards` shards (1 to [`MAX_SHARDS`]), none of them held yet.
    pub fn none(shards: u32) -> Self {
        Self {
            shards: shards.clamp(1, MAX_SHARDS),
            bits: AtomicU64::new(0),
            changes: watch::Sender::new(0),
        }
    }

    /// How many shards the deployment has.
    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// Whether this process is the one to write for `namespace`.
    pub fn owns(&self, namespace: &str) -> bool {
        self.holds(shard_of(namespace, self.shards))
    }

    /// Whether this process holds `shard`.
    pub fn holds(&self, shard: u32) -> bool {
        shard < self.shards && self.bits.load(Ordering::Acquire) & (1 << shard) != 0
    }

    /// How many shards this process holds.
    pub fn count(&self) -> u32 {
        self.bits.load(Ordering::Acquire).count_ones()
    }

    /// Records that this process now holds `shard`, and wakes whoever
    /// waits for acquisitions.
    pub fn acquire(&self, shard: u32) {
        if shard >= self.shards {
            return;
        }
        let bits = self.bits.fetch_or(1 << shard, Ordering::AcqRel) | (1 << shard);
        self.changes.send_replace(bits);
    }

    /// A stream that yields once for every change of the held set after it
    /// was created (an acquisition: a lost shard ends the process). Meant
    /// for `reconcile_all_on`: objects skipped while their shard was
    /// someone else's are looked at again.
    pub fn acquisitions(&self) -> impl Stream<Item = ()> + Send + 'static {
        let mut rx = self.changes.subscribe();
        rx.mark_unchanged();
        futures::stream::unfold(rx, |mut rx| async move {
            rx.changed().await.ok()?;
            Some(((), rx))
        })
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    #[test]
    fn the_hash_is_fnv1a_and_stable() {
        // FNV-1a 64 reference values: every replica and every release must
        // place a namespace in the same shard.
        let fnv = |s: &str| {
            s.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            })
        };
        assert_eq!(fnv(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(shard_of("a", 2), (0xaf63_dc4c_8601_ec8c_u64 % 2) as u32);
        assert_eq!(shard_of("payments", 1), 0);
        for (ns, n) in [("default", 7), ("kube-system", 3), ("team-a", 64)] {
            assert_eq!(u64::from(shard_of(ns, n)), fnv(ns) % u64::from(n));
        }
    }

    #[test]
    fn namespaces_spread_over_the_shards() {
        let mut per = [0u32; 4];
        for i in 0..4000 {
            per[shard_of(&format!("team-{i}"), 4) as usize] += 1;
        }
        for n in per {
            assert!((800..1200).contains(&n), "{per:?}");
        }
    }

    #[test]
    fn zero_shards_is_one() {
        assert_eq!(shard_of("x", 0), 0);
        let held = Held::none(0);
        assert_eq!(held.shards(), 1);
    }

    #[test]
    fn a_process_owns_the_namespaces_of_its_shards_only() {
        let held = Held::none(2);
        let (a, b) = ((0..).map(|i| format!("ns-{i}")))
            .try_fold((None, None), |(a, b), ns| {
                let (a, b) = match shard_of(&ns, 2) {
                    0 => (a.or(Some(ns)), b),
                    _ => (a, b.or(Some(ns))),
                };
                match (a, b) {
                    (Some(a), Some(b)) => Err((a, b)),
                    other => Ok(other),
                }
            })
            .unwrap_err();
        assert!(!held.owns(&a) && !held.owns(&b));
        held.acquire(0);
        assert!(held.owns(&a) && !held.owns(&b));
        held.acquire(1);
        assert!(held.owns(&a) && held.owns(&b));
        assert_eq!(held.count(), 2);
        // Out of range: ignored.
        held.acquire(5);
        assert!(!held.holds(5));
        assert_eq!(held.count(), 2);
    }

    #[test]
    fn unsharded_owns_everything() {
        let held = Held::everything();
        assert!(held.owns("anything") && held.owns(""));
        assert_eq!(held.count(), 1);
    }

    #[tokio::test]
    async fn acquisitions_wake_subscribers_but_not_for_the_past() {
        let held = Held::none(2);
        held.acquire(0);
        let mut woken = Box::pin(held.acquisitions());
        // Held before the subscription: nothing to wake for.
        assert!(futures::FutureExt::now_or_never(woken.next()).is_none());
        held.acquire(1);
        assert_eq!(woken.next().await, Some(()));
    }
}
