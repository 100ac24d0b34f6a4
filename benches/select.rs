//! Selection benchmarks through the engine's synchronous call
//! (`Engine::send_now`, the caller running each request, as an embedder's
//! thread does), each against 1M live mappings, next to the floor: a bare
//! `hashbrown` lookup-and-touch of the same keys.
//!
//! - `select_1M/*`: the floor, a sticky hit, a miss + insert and a geomatch
//!   pick + insert. Misses run in a steady state: a fresh recipient every
//!   message, one second of simulated time every 1000 messages and a ttl of
//!   1000 s, so 1M mappings stay live while expiry reclaims the oldest.
//! - `wheel_expire/*`: expiry reaching 1M expiring mappings while 1M or 4M
//!   other mappings stay live (cost per expired entry should not change),
//!   next to `hashbrown` removing the same number of keys.
//!
//! Run: `cargo bench --bench select`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use futures::executor::block_on;
use numpool::test_util::ManualClock;
use numpool::{
    Engine, EngineConfig, NewProfile, PhoneNumber, ProfileId, SettingsPatch, SettingsUpdate,
    Timestamp,
};

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

/// An engine on a manual clock at `START`, with one profile of 50 senders
/// (40 long codes over 10 area codes, 10 toll-free), sticky on, weights 4:1.
fn start(ttl: u32, geomatch: bool) -> (Engine, ProfileId, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(u64::from(START))));
    let config = EngineConfig {
        sticky_ttl_secs: ttl,
        // Expiry runs when the bench says so.
        expire_tick: Duration::from_secs(3600),
        // Millions of messages a second, far beyond any carrier rate: the
        // highest rates keep queues from filling (the bookkeeping is the same).
        capacity: numpool::CapacityConfig {
            rates: numpool::KindRates::uniform(100_000.0),
            ..Default::default()
        },
        ..EngineConfig::default()
    };
    let engine = Engine::start_with_clock(config, clock.clone()).unwrap();
    let settings = SettingsUpdate::Merge(SettingsPatch {
        sticky_sender: Some(true),
        geomatch: Some(geomatch),
        long_code_weight: Some(4.0),
        toll_free_weight: Some(1.0),
        ..Default::default()
    });
    let id = block_on(engine.create_profile(NewProfile {
        number_pool_settings: settings,
        ..Default::default()
    }))
    .unwrap()
    .id;
    let senders = (0..40u64)
        .map(|i| 10_000_000_000 + NPAS[(i % 10) as usize] * 10_000_000 + 5_550_000 + i)
        .chain((0..10u64).map(|i| 18_005_550_000 + i));
    for n in senders {
        block_on(engine.assign_number(PhoneNumber::from_u64(n).unwrap(), Some(id))).unwrap();
    }
    (engine, id, clock)
}

/// Fresh recipients in the steady state: one simulated second per 1000
/// messages, expiring what the ttl left behind.
struct SteadyState {
    next: u64,
    now: u32,
}

impl SteadyState {
    fn fill(engine: &Engine, id: ProfileId, clock: &ManualClock) -> Self {
        let mut s = SteadyState {
            next: 0,
            now: START,
        };
        for _ in 0..LIVE {
            s.step(engine, id, clock);
        }
        s
    }

    #[inline]
    fn step(&mut self, engine: &Engine, id: ProfileId, clock: &ManualClock) -> PhoneNumber {
        let r = recipient(self.next);
        self.next += 1;
        let sel = engine.send_now(id, r).unwrap();
        if self.next.is_multiple_of(1000) {
            self.now += 1;
            clock.set(Timestamp::from_secs(u64::from(self.now)));
            block_on(engine.expire_now());
        }
        sel.sender
    }
}

fn select_1m(c: &mut Criterion) {
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
    let (engine, id, clock) = start(8 * 24 * 3600, false);
    let all: Vec<(ProfileId, PhoneNumber)> = (0..LIVE).map(|i| (id, recipient(i))).collect();
    for chunk in all.chunks(4096) {
        engine.send_batch_now(chunk);
    }
    clock.set(Timestamp::from_secs(u64::from(START) + 1));
    let mut k = 0usize;
    group.bench_function("sticky_hit", |b| {
        b.iter(|| {
            let r = recipient(order[k % order.len()]);
            k += 1;
            black_box(engine.send_now(id, r).unwrap().sender)
        })
    });
    let stats = block_on(engine.stats());
    eprintln!(
        "sticky map at 1M: {} heap bytes, {:.1} bytes per mapping",
        stats.sticky_heap_bytes,
        stats.sticky_heap_bytes as f64 / stats.stored_mappings as f64
    );
    block_on(engine.shutdown());

    for (name, geomatch) in [("miss_insert", false), ("geomatch_pick_insert", true)] {
        let (engine, id, clock) = start(1000, geomatch);
        let mut steady = SteadyState::fill(&engine, id, &clock);
        group.bench_function(name, |b| {
            b.iter(|| black_box(steady.step(&engine, id, &clock)))
        });
        let stats = block_on(engine.stats());
        eprintln!(
            "{name}: {} mappings stored at the end, {} expired so far",
            stats.stored_mappings, stats.expired
        );
        block_on(engine.shutdown());
    }
    group.finish();
}

fn wheel_expire(c: &mut Criterion) {
    const EXPIRING: u64 = 1_000_000;
    const TTL: u32 = 3600;
    let mut group = c.benchmark_group("wheel_expire");
    group.sample_size(10);
    group.throughput(Throughput::Elements(EXPIRING));
    for live in [1_000_000u64, 4_000_000] {
        group.bench_function(format!("expire_1M_with_{}M_live", live / 1_000_000), |b| {
            b.iter_batched(
                || {
                    let (engine, id, clock) = start(TTL, false);
                    let batch = |from: u64, to: u64| {
                        let items: Vec<_> = (from..to).map(|i| (id, recipient(i))).collect();
                        for chunk in items.chunks(4096) {
                            engine.send_batch_now(chunk);
                        }
                    };
                    batch(0, EXPIRING);
                    // Made much later: armed far beyond the expiring ones.
                    clock.set(Timestamp::from_secs(u64::from(START) + 3000));
                    batch(EXPIRING, EXPIRING + live);
                    clock.set(Timestamp::from_secs(u64::from(START + TTL)));
                    engine
                },
                |engine| {
                    let report = block_on(engine.expire_now());
                    assert_eq!(report.expired as u64, EXPIRING);
                    engine
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
