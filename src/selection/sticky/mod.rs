//! Sticky sender mappings: a sharded map with timing-wheel expiry.
//!
//! - [`map`]: [`StickyMap`], the recipient -> sender map of one profile.
//! - [`wheel`]: [`TimerWheel`], the hierarchical timing wheel each shard owns.
//! - `index`: the per-shard recipient index (hash -> entry id, 4 bytes a bucket).
//! - `slab`: the packed 28-byte entries the index and the wheel point into.

mod index;
pub mod map;
mod slab;
pub mod wheel;

pub use map::{ExpireReport, MapPosition, Mapping, StickyMap, DEFAULT_SHARDS};

/// Hints the CPU to bring the cache line of `value` in, so that a lookup
/// about to read it does not wait for memory (batches prefetch ahead).
#[inline(always)]
fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch only hints the cache; it never faults, and the
    // pointer comes from a reference.
    unsafe {
        std::arch::x86_64::_mm_prefetch(
            (value as *const T).cast::<i8>(),
            std::arch::x86_64::_MM_HINT_T0,
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}
