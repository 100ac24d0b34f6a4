//! Selection core benchmarks, each against 1M live mappings, next to the
//! floor: a bare `hashbrown` lookup-and-touch of the same keys.
//!
//! - `select_1M/*`: the floor, a sticky hit, a miss + insert and a geomatch
//!   pick + insert. Misses run in a steady state: a fresh recipient every
//!   message, one second of simulated time every 1000 messages and a ttl of
//!   1000 s, so 1M mappings stay live while the wheel expires the oldest.
//! - `wheel_expire/*`: the wheel reaching 1M expiring mappings while 1M or
//!   4M other mappings stay live (cost per expired entry should not change),
//!   next to `hashbrown` removing the same number of keys.
//!
//! Run: `cargo bench --bench select`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use numpool::health::HealthConfig;
use numpool::pool::SenderRef;
use numpool::settings::{SettingsPatch, SettingsUpdate};
use numpool::sticky::StickyMap;
use numpool::{PhoneNumber, Profile, SelectionConfig};

const LIVE: u64 = 1_000_000;
const START: u32 = 1_800_000_000;
const NPAS: [u64; 10] = [212, 312, 415, 206, 305, 617, 713, 404, 503, 602];

/// A NANP recipient with one of the sender area codes, unique per `i`.
fn recipient(i: u64) -> PhoneNumber {
    let npa = NPAS[(i % 10) as usize];
    PhoneNumber::from_u64(10_000_000_000 + npa * 10_000_000 + 2_000_000 + i / 10).unwrap()
}

/// A fixed pseudo-random order of `0..n` (xorshift, no dependencies).
fn shuffled(n: u64) -> Vec<u64> {
    let mut v: Vec<u64> = (0..n).collect();
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

/// A profile with 50 senders (40 long codes over 10 area codes, 10 toll-free),
/// sticky on, weights 4:1.
fn profile(ttl: u32, geomatch: bool) -> Profile {
    let config = SelectionConfig {
        sticky_ttl_secs: ttl,
        ..SelectionConfig::default()
    };
    let mut p = Profile::new(None, &config, START);
    let settings = SettingsUpdate::Merge(SettingsPatch {
        sticky_sender: Some(true),
        geomatch: Some(geomatch),
        long_code_weight: Some(4.0),
        toll_free_weight: Some(1.0),
        ..Default::default()
    });
    p.update_settings(&settings, START).unwrap();
    for i in 0..40u64 {
        let n = 10_000_000_000 + NPAS[(i % 10) as usize] * 10_000_000 + 5_550_000 + i;
        p.add_sender(PhoneNumber::from_u64(n).unwrap(), Default::default());
    }
    for i in 0..10u64 {
        let n = 18_005_550_000 + i;
        p.add_sender(PhoneNumber::from_u64(n).unwrap(), Default::default());
    }
    p
}

/// Fresh recipients into `p` in the steady state: one simulated second per
/// 1000 messages, expiring what the ttl left behind.
struct SteadyState {
    next: u64,
    now: u32,
}

impl SteadyState {
    fn fill(p: &mut Profile, health: &HealthConfig) -> Self {
        let mut s = SteadyState {
            next: 0,
            now: START,
        };
        for _ in 0..LIVE {
            s.step(p, health);
        }
        s
    }

    #[inline]
    fn step(&mut self, p: &mut Profile, health: &HealthConfig) -> PhoneNumber {
        let r = recipient(self.next);
        self.next += 1;
        let sel = p.select(r, self.now, health).unwrap();
        if self.next % 1000 == 0 {
            self.now += 1;
            p.expire(self.now, usize::MAX);
        }
        sel.sender
    }
}

fn select_1m(c: &mut Criterion) {
    let health = HealthConfig::default();
    let order = shuffled(LIVE);
    let mut group = c.benchmark_group("select_1M");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(4));

    // The floor: a bare hashbrown map of the same keys, 16-byte values.
    let mut floor: hashbrown::HashMap<u64, [u32; 4], foldhash::fast::RandomState> =
        hashbrown::HashMap::default();
    for i in 0..LIVE {
        floor.insert(recipient(i).as_u64(), [i as u32, 0, START, START]);
    }
    let mut k = 0usize;
    group.bench_function("floor_hashbrown_lookup_touch", |b| {
        b.iter(|| {
            let key = recipient(order[k % order.len()]).as_u64();
            k += 1;
            let v = floor.get_mut(&key).unwrap();
            v[3] = START + 1;
            black_box(v[0])
        })
    });
    drop(floor);

    // Sticky hit: 1M mappings made at START, hit in random order.
    let mut p = profile(8 * 24 * 3600, false);
    for i in 0..LIVE {
        p.select(recipient(i), START, &health).unwrap();
    }
    let mut k = 0usize;
    group.bench_function("sticky_hit", |b| {
        b.iter(|| {
            let r = recipient(order[k % order.len()]);
            k += 1;
            black_box(p.select(r, START + 1, &health).unwrap().sender)
        })
    });
    eprintln!(
        "sticky map at 1M: {} heap bytes, {:.1} bytes per mapping",
        p.sticky_heap_bytes(),
        p.sticky_heap_bytes() as f64 / LIVE as f64
    );
    drop(p);

    for (name, geomatch) in [("miss_insert", false), ("geomatch_pick_insert", true)] {
        let mut p = profile(1000, geomatch);
        let mut steady = SteadyState::fill(&mut p, &health);
        group.bench_function(name, |b| b.iter(|| black_box(steady.step(&mut p, &health))));
        let stats = p.stats();
        eprintln!(
            "{name}: {} mappings stored at the end, {} expired so far",
            stats.stored_mappings, stats.expired
        );
    }
    group.finish();
}

fn wheel_expire(c: &mut Criterion) {
    const EXPIRING: u64 = 1_000_000;
    const TTL: u32 = 3600;
    let mut group = c.benchmark_group("wheel_expire");
    group.sample_size(10);
    group.throughput(Throughput::Elements(EXPIRING));
    let sender = SenderRef {
        slot: 0,
        generation: 0,
    };
    for live in [1_000_000u64, 4_000_000] {
        group.bench_function(format!("expire_1M_with_{}M_live", live / 1_000_000), |b| {
            b.iter_batched(
                || {
                    let mut map = StickyMap::new(TTL, 16, START);
                    for i in 0..EXPIRING {
                        map.assign(recipient(i), sender, START);
                    }
                    // Used much later: armed far beyond the expiring ones.
                    for i in EXPIRING..EXPIRING + live {
                        map.assign(recipient(i), sender, START + 30 * 24 * 3600);
                    }
                    map
                },
                |mut map| {
                    let report = map.expire(START + TTL, usize::MAX, |_| true);
                    assert_eq!(report.expired as u64, EXPIRING);
                    map
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.bench_function("floor_hashbrown_remove_1M", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut map: hashbrown::HashMap<u64, [u32; 4], foldhash::fast::RandomState> =
                    hashbrown::HashMap::default();
                for i in 0..EXPIRING + 1_000_000 {
                    map.insert(recipient(i).as_u64(), [0; 4]);
                }
                let t = Instant::now();
                for i in 0..EXPIRING {
                    black_box(map.remove(&recipient(i).as_u64()));
                }
                total += t.elapsed();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, select_1m, wheel_expire);
criterion_main!(benches);
