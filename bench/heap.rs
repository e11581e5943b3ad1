//! Where a cached object's bytes go: the heap that one live object of each
//! kind takes in the form the controller caches it (`cache::Cached`: its
//! own kinds trimmed, Roles and RoleBindings in their compact forms),
//! counted by an allocator wrapper in this bench process, not estimated
//! from the controller's RSS.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Resource;
use kube::api::{Api, ListParams};
use serde::de::DeserializeOwned;
use steward::api::{ControlOwnership, PolicyException};
use steward::cache::Cached;
use steward::compact::{CachedRole, CachedRoleBinding};

/// The system allocator, counting the bytes and blocks live.
pub struct Counting;

static BYTES: AtomicIsize = AtomicIsize::new(0);
static BLOCKS: AtomicIsize = AtomicIsize::new(0);

// Safety: every call is forwarded unchanged to the system allocator; the
// counters only observe.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        BLOCKS.fetch_add(1, Ordering::Relaxed);
        // Safety: the caller's contract for `alloc` is passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        BLOCKS.fetch_sub(1, Ordering::Relaxed);
        // Safety: the caller's contract for `dealloc` is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        BYTES.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        // Safety: the caller's contract for `realloc` is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Bytes and heap blocks one object takes, inline size included.
#[derive(Debug)]
pub struct Footprint {
    pub kind: &'static str,
    pub bytes: f64,
    pub blocks: f64,
    /// Its JSON as the API server sends it, trimmed the same way.
    pub json: usize,
}

const COPIES: usize = 2000;

/// The footprint of `json` held as `K` after trimming, averaged over many
/// copies so the vector's own buffer is the only overhead (counted: it
/// holds the inline part).
fn footprint<C: Cached>(kind: &'static str, json: &serde_json::Value) -> Option<Footprint>
where
    C::Api: serde::Serialize,
{
    let mut trimmed: C::Api = serde_json::from_value(json.clone()).ok()?;
    steward::cache::trim::trim(&mut trimmed);
    let json_len = serde_json::to_vec(&trimmed).ok()?.len();
    let (bytes, blocks) = (BYTES.load(Ordering::Relaxed), BLOCKS.load(Ordering::Relaxed));
    let mut held: Vec<C> = Vec::with_capacity(COPIES);
    for _ in 0..COPIES {
        let obj: C::Api = serde_json::from_value(json.clone()).ok()?;
        held.push(C::cache_form(obj));
    }
    let bytes = (BYTES.load(Ordering::Relaxed) - bytes) as f64 / COPIES as f64;
    let blocks = (BLOCKS.load(Ordering::Relaxed) - blocks) as f64 / COPIES as f64;
    drop(held);
    Some(Footprint {
        kind,
        bytes,
        blocks,
        json: json_len,
    })
}

/// One object of `api` (matching `lp`) as JSON.
async fn one<K: Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug>(
    api: Api<K>,
    lp: ListParams,
) -> Option<serde_json::Value> {
    let list = api.list(&lp.limit(1)).await.ok()?;
    serde_json::to_value(list.items.into_iter().next()?).ok()
}

/// The footprint of one live object of each kind the controller caches
/// most of: an exception, a control, a managed RoleBinding and Role.
pub async fn live(client: &kube::Client) -> Vec<Footprint> {
    let managed = ListParams::default().labels("app.kubernetes.io/managed-by=steward");
    let mut out = Vec::new();
    if let Some(j) = one(Api::<PolicyException>::all(client.clone()), ListParams::default()).await {
        out.extend(footprint::<PolicyException>("PolicyException", &j));
    }
    if let Some(j) = one(Api::<ControlOwnership>::all(client.clone()), ListParams::default()).await {
        out.extend(footprint::<ControlOwnership>("ControlOwnership", &j));
    }
    if let Some(j) = one(Api::<RoleBinding>::all(client.clone()), managed.clone()).await {
        out.extend(footprint::<CachedRoleBinding>("RoleBinding (managed)", &j));
    }
    if let Some(j) = one(Api::<Role>::all(client.clone()), managed).await {
        out.extend(footprint::<CachedRole>("Role (managed)", &j));
    }
    out
}
