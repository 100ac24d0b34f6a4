//! The selection core: one profile's senders, sticky mappings and rules, as
//! plain single-threaded data structures. Nothing here has a thread, a clock
//! or I/O: every operation takes `now` as an argument, so the core is tested
//! with a manual clock and benchmarked on its own. The engine gives each
//! profile's [`ProfileState`] to one actor.
//!
//! From the bottom up (where a number is, its region or area code's state,
//! comes from `crate::geo`):
//! - [`health`]: delivery outcomes over a sliding window -> healthy or not.
//! - [`rotation`]: round-robin over a changing set of senders.
//! - [`weighted`]: smooth weighted round-robin between long codes and toll-free.
//! - [`pool`]: a profile's senders and the rotations selection walks.
//! - [`sticky`]: the sharded recipient -> sender map and its timing wheels.
//! - [`rules`]: the selection order (sticky -> geomatch -> weighted, skip
//!   unhealthy) and the one eligibility rule.
//! - [`capacity`]: sender rates, queues and daily caps.
//! - [`compliance`]: disabled profiles, allowed destinations, opt-outs.
//! - [`unsettled`]: what of a profile's state is still on its way to the
//!   journal (the replies that must wait for it).
//! - [`select_at`]: the time of a call's selections, in each unit they use.
//! - [`profile`]: [`ProfileState`], one profile's whole selection state.

pub(crate) mod capacity;
pub(crate) mod compliance;
pub(crate) mod health;
pub(crate) mod pool;
pub(crate) mod profile;
pub(crate) mod rotation;
pub(crate) mod rules;
pub(crate) mod select_at;
pub(crate) mod sticky;
pub(crate) mod unsettled;
pub(crate) mod weighted;

pub(crate) use profile::{move_sender, ProfileState};

/// Hints the CPU to bring the cache line of `value` in, so that a lookup
/// about to read it does not wait for memory (selections prefetch what they
/// will read while other reads are under way).
#[inline(always)]
pub(crate) fn prefetch<T>(value: &T) {
    prefetch_line((value as *const T).cast());
}

/// [`prefetch`] of all of `value`, which may straddle two cache lines (a
/// 28-byte sticky entry does at 6 of the 16 four-byte-aligned offsets in
/// a 64-byte line): the line of its first byte and that of its last.
#[inline(always)]
pub(crate) fn prefetch_whole<T>(value: &T) {
    prefetch_whole_at::<T>((value as *const T).addr());
}

/// [`prefetch_whole`] of a `T` at address `at`, which may be anyone's
/// memory: it is never read through. When the value does not straddle,
/// the second prefetch finds the first's line and costs only itself.
#[inline(always)]
pub(crate) fn prefetch_whole_at<T>(at: usize) {
    const { assert!(0 < std::mem::size_of::<T>() && std::mem::size_of::<T>() <= 64) };
    prefetch_address(at);
    prefetch_address(at.wrapping_add(std::mem::size_of::<T>() - 1));
}

/// [`prefetch`] of every cache line of `len` bytes from `start`. The
/// pointer is never read through: a prefetch only hints the cache, so the
/// bytes may be under another thread's lock.
#[inline]
pub(crate) fn prefetch_bytes(start: *const u8, len: usize) {
    for line in cache_lines(start as usize, len) {
        prefetch_address(line);
    }
}

/// The addresses of the cache lines `len` bytes from `start` touch. Counted
/// from the line `start` is in: stepping 64 bytes from an unaligned start
/// would miss the line of the last bytes.
fn cache_lines(start: usize, len: usize) -> impl Iterator<Item = usize> {
    let end = start.saturating_add(len);
    let first = if len == 0 { end } else { start & !63 };
    (first..end).step_by(64)
}

/// [`prefetch`] of the cache line at address `at`, which may be anyone's
/// memory (a sticky entry under another thread's lock, or freed since):
/// it is never read through.
#[inline(always)]
pub(crate) fn prefetch_address(at: usize) {
    prefetch_line(std::ptr::without_provenance(at));
}

/// The one prefetch instruction behind them: `at` is never read through.
#[inline(always)]
fn prefetch_line(at: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch only hints the cache: it never faults, whatever
    // the address, and reads nothing into the program.
    unsafe {
        std::arch::x86_64::_mm_prefetch(at.cast::<i8>(), std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

#[cfg(test)]
mod tests {
    use super::cache_lines;

    /// Every line a range touches is fetched, the last included when the
    /// range starts part way into a line; nothing for an empty range.
    #[test]
    fn a_range_is_fetched_line_by_line_from_the_line_it_starts_in() {
        let lines = |start, len| cache_lines(start, len).collect::<Vec<_>>();
        assert_eq!(lines(128, 64), [128]);
        assert_eq!(lines(128, 65), [128, 192]);
        assert_eq!(lines(100, 40), [64, 128]);
        assert_eq!(lines(100, 200), [64, 128, 192, 256]);
        assert_eq!(lines(100, 0), Vec::<usize>::new());
    }
}
