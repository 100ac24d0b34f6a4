//! Memory, measured with a counting global allocator: bytes allocated
//! while 1M mappings are made through the engine, divided by 1M; and the
//! bytes of an idle profile with ten numbers.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use futures::executor::block_on;
use numpool::{
    CapacityConfig, Engine, EngineConfig, NewProfile, PhoneNumber, ProfileId, SettingsPatch,
    SettingsUpdate,
};

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

fn allocated() -> isize {
    ALLOCATED.load(Ordering::Relaxed)
}

fn sticky_profile(engine: &Engine) -> ProfileId {
    block_on(engine.create_profile(NewProfile {
        number_pool_settings: SettingsUpdate::Merge(SettingsPatch {
            sticky_sender: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }))
    .unwrap()
    .id
}

// One test, so the two measurements never run at once.
#[test]
fn memory_per_mapping_and_per_idle_profile() {
    // One number takes a million messages here: at its real rate its queue
    // would be refused long before, so capacity is off for this measurement.
    let config = EngineConfig {
        capacity: CapacityConfig {
            enabled: false,
            ..Default::default()
        },
        ..Default::default()
    };
    let engine = Engine::start(config).unwrap();
    a_live_mapping_costs_at_most_48_bytes_at_1m(&engine);
    an_idle_profile_with_ten_numbers_costs_at_most_4_5_kb(&engine);
    block_on(engine.shutdown());
}

fn a_live_mapping_costs_at_most_48_bytes_at_1m(engine: &Engine) {
    const N: u64 = 1_000_000;
    let profile = sticky_profile(engine);
    block_on(engine.assign_number(
        PhoneNumber::parse_e164("+13125550001").unwrap(),
        Some(profile),
    ))
    .unwrap();
    let before = allocated();
    let recipients: Vec<(ProfileId, PhoneNumber)> = (0..N)
        .map(|i| {
            (
                profile,
                PhoneNumber::from_u64(12_000_000_000 + i * 7).unwrap(),
            )
        })
        .collect();
    let list_bytes =
        (recipients.capacity() * std::mem::size_of::<(ProfileId, PhoneNumber)>()) as isize;
    for chunk in recipients.chunks(4096) {
        assert!(engine.send_batch_now(chunk).iter().all(Result::is_ok));
    }
    let used = allocated() - before - list_bytes;
    let per_mapping = used as f64 / N as f64;
    println!("{used} bytes for {N} mappings: {per_mapping:.1} bytes per mapping");
    let stats = block_on(engine.stats());
    assert_eq!(stats.stored_mappings, N as usize);
    assert!(per_mapping <= 48.0, "{per_mapping:.1} bytes per mapping");
    // The engine's own account matches what the allocator saw.
    let reported = stats.sticky_heap_bytes as f64;
    assert!(
        (reported - used as f64).abs() / (used as f64) < 0.02,
        "{reported} vs {used}"
    );
}

fn an_idle_profile_with_ten_numbers_costs_at_most_4_5_kb(engine: &Engine) {
    const PROFILES: u64 = 1000;
    let before = allocated();
    for p in 0..PROFILES {
        let id = sticky_profile(engine);
        for i in 0..10 {
            let n = PhoneNumber::from_u64(13_125_000_000 + p * 10 + i).unwrap();
            block_on(engine.assign_number(n, Some(id))).unwrap();
        }
    }
    let per_profile = (allocated() - before) as f64 / PROFILES as f64;
    println!("{per_profile:.0} bytes per idle profile with 10 numbers");
    // 2.7 KB before sender capacity; its settings and counters added about
    // 0.8 KB (a sender's queue is only allocated at its first send), and
    // later state about 0.4 KB (3.95 KB). The counters every send writes
    // on cache lines of their own, apart from the profile's lock, added
    // 0.2 KB: 4.16 KB.
    assert!(per_profile <= 4608.0, "{per_profile:.0} bytes per profile");
}
