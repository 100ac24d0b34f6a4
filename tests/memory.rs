//! Memory per live mapping, measured with a counting global allocator:
//! bytes allocated while 1M mappings are made, divided by 1M.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use numpool::pool::SenderRef;
use numpool::sticky::StickyMap;
use numpool::PhoneNumber;

struct Counting;

static ALLOCATED: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn a_live_mapping_costs_at_most_48_bytes_at_1m() {
    const N: u64 = 1_000_000;
    let before = ALLOCATED.load(Ordering::Relaxed);
    let mut map = StickyMap::new(8 * 24 * 3600, 16, 1_800_000_000);
    let sender = SenderRef {
        slot: 3,
        generation: 0,
    };
    for i in 0..N {
        let r = PhoneNumber::from_u64(12_000_000_000 + i * 7).unwrap();
        map.assign(r, sender, 1_800_000_000);
    }
    let used = ALLOCATED.load(Ordering::Relaxed) - before;
    let per_mapping = used as f64 / N as f64;
    println!("{used} bytes for {N} mappings: {per_mapping:.1} bytes per mapping");
    assert_eq!(map.stored(), N as usize);
    assert!(per_mapping <= 48.0, "{per_mapping:.1} bytes per mapping");
    // The map's own account matches what the allocator saw.
    let reported = map.heap_bytes() as f64;
    assert!(
        (reported - used as f64).abs() / (used as f64) < 0.02,
        "{reported} vs {used}"
    );
}
