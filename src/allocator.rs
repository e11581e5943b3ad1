//! Where the controller's memory is allocated: jemalloc, with the
//! allocations that live as long as an object stays cached kept on pages of
//! their own.
//!
//! A watch decodes each object (short-lived), then copies what the cache
//! keeps (long-lived), in between the decisions' and requests' own scratch.
//! Mixed on the same pages, each cached object pins a page that the
//! short-lived allocations around it have left almost empty, and the
//! allocator can return none of it. [`Steward`], the binary's global
//! allocator, serves what is allocated inside [`long_lived`] from an arena
//! of its own; under any other allocator (the tests') the mark changes
//! nothing.

#[cfg(not(target_env = "msvc"))]
use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
#[cfg(not(target_env = "msvc"))]
use std::sync::atomic::{AtomicU32, Ordering};

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with its allocations marked as long-lived.
pub fn long_lived<T>(f: impl FnOnce() -> T) -> T {
    /// Restores the mark even if `f` unwinds.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            let was = self.0;
            let _ = ON.try_with(|on| on.set(was));
        }
    }
    let was = ON.try_with(|on| on.replace(true)).unwrap_or(false);
    let _restore = Restore(was);
    f()
}

/// Whether the current thread is inside [`long_lived`]. Called by the global
/// allocator on every allocation: it must not allocate itself (a `const`
/// thread-local of a `Cell<bool>` needs no lazy initialisation).
#[inline]
pub fn active() -> bool {
    ON.try_with(Cell::get).unwrap_or(false)
}

/// The arena of the long-lived allocations, once `arenas.create` made it.
#[cfg(not(target_env = "msvc"))]
static ARENA: AtomicU32 = AtomicU32::new(NO_ARENA);

#[cfg(not(target_env = "msvc"))]
const NO_ARENA: u32 = u32::MAX;

/// Creates the arena of the long-lived allocations. Until it is called (or
/// if jemalloc refuses), they go where every other allocation goes.
#[cfg(not(target_env = "msvc"))]
pub fn create_arena() {
    // Safety: `arenas.create` is a read-only `unsigned` entry of jemalloc
    // 5.3 that creates an arena with the default options and names it.
    if let Ok(arena) = unsafe { tikv_jemalloc_ctl::raw::read::<u32>(b"arenas.create\0") } {
        ARENA.store(arena, Ordering::Relaxed);
    }
}

/// The arena of the long-lived allocations, if it was created.
#[cfg(not(target_env = "msvc"))]
pub fn arena() -> Option<u32> {
    Some(ARENA.load(Ordering::Relaxed)).filter(|a| *a != NO_ARENA)
}

/// jemalloc, with what is allocated inside [`long_lived`] taken from an
/// arena of its own and past the thread's cache (whose blocks come from
/// the shared arenas). Frees go the usual way: jemalloc finds the arena of
/// a block from its address.
#[cfg(not(target_env = "msvc"))]
pub struct Steward;

#[cfg(not(target_env = "msvc"))]
impl Steward {
    /// The flags that send an allocation of `layout` to the long-lived
    /// arena, when it exists and the thread is inside [`long_lived`].
    #[inline]
    fn long_lived_flags(layout: Layout) -> Option<std::ffi::c_int> {
        use tikv_jemalloc_sys::{MALLOCX_ALIGN, MALLOCX_ARENA, MALLOCX_TCACHE_NONE};
        if !active() {
            return None;
        }
        let arena = arena()?;
        let mut flags = MALLOCX_ARENA(arena as usize) | MALLOCX_TCACHE_NONE;
        // As tikv-jemallocator does: jemalloc aligns to 16 bytes by itself
        // only for sizes of at least the alignment.
        if layout.align() > 16 || layout.align() > layout.size() {
            flags |= MALLOCX_ALIGN(layout.align());
        }
        Some(flags)
    }
}

// Safety: every path hands the layout's size and alignment to jemalloc
// unchanged, as `tikv_jemallocator::Jemalloc` does; blocks from either path
// are jemalloc's and are freed by `sdallocx` through it.
#[cfg(not(target_env = "msvc"))]
unsafe impl GlobalAlloc for Steward {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match Self::long_lived_flags(layout) {
            // Safety: the size is non-zero, as GlobalAlloc promises.
            Some(flags) => unsafe { tikv_jemalloc_sys::mallocx(layout.size(), flags).cast() },
            None => unsafe { tikv_jemallocator::Jemalloc.alloc(layout) },
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match Self::long_lived_flags(layout) {
            Some(flags) => unsafe {
                tikv_jemalloc_sys::mallocx(layout.size(), flags | tikv_jemalloc_sys::MALLOCX_ZERO).cast()
            },
            None => unsafe { tikv_jemallocator::Jemalloc.alloc_zeroed(layout) },
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { tikv_jemallocator::Jemalloc.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Safety: GlobalAlloc promises a valid size for the alignment.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if Self::long_lived_flags(new_layout).is_none() {
            return unsafe { tikv_jemallocator::Jemalloc.realloc(ptr, layout, new_size) };
        }
        // Moved into the long-lived arena: `rallocx` would keep a block
        // where it is when it fits.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_holds_inside_and_is_restored_after_even_on_unwind() {
        assert!(!active());
        let inside = long_lived(|| (active(), long_lived(active), active()));
        assert_eq!(inside, (true, true, true));
        assert!(!active());
        let unwound = std::panic::catch_unwind(|| long_lived(|| panic!("in f")));
        assert!(unwound.is_err());
        assert!(!active(), "the mark is restored when f unwinds");
    }
}
