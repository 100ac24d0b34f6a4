//! The actor runtime against the selection core, side by side in one run.
//!
//! Workload: 10 profiles x 50 senders (40 long codes, 10 toll-free, weights
//! 4:1), sticky on, 1M live mappings (100k per profile), recipients drawn
//! Zipf (s = 1.0) over those 1M, so nearly every selection is a sticky hit.
//!
//! - `floor_core_one_thread`: `Registry::select` called directly, one thread.
//! - `engine_batch_{256,4096}`: `Engine::send_batch`, 4 batches in flight.
//! - `engine_single_pipelined`: `Engine::send`, 256 requests in flight.
//! - `engine_single_round_trip`: one request in flight; the latency
//!   percentiles are printed (HDR histogram) next to criterion's mean.
//!
//! Run: `cargo bench --bench dispatch`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures::executor::block_on;
use futures::stream::{self, StreamExt};
use numpool::engine::{Engine, EngineConfig, NewProfile};
use numpool::settings::{SettingsPatch, SettingsUpdate};
use numpool::{PhoneNumber, ProfileId, Registry, SelectionConfig};
use rand::{rngs::StdRng, SeedableRng};
use rand_distr::{Distribution, Zipf};

const PROFILES: u64 = 10;
const LIVE: u64 = 1_000_000;
const REQUESTS: usize = 1 << 20;
const NOW: u32 = 1_800_000_000;

fn settings() -> SettingsUpdate {
    SettingsUpdate::Merge(SettingsPatch {
        sticky_sender: Some(true),
        long_code_weight: Some(4.0),
        toll_free_weight: Some(1.0),
        ..Default::default()
    })
}

/// Sender `i` of profile `p`: 40 long codes over 10 area codes, then 10 toll-free.
fn sender(p: u64, i: u64) -> PhoneNumber {
    let raw = if i < 40 {
        10_000_000_000 + (201 + i % 10) * 10_000_000 + 5_550_000 + p * 100 + i
    } else {
        18_005_550_000 + p * 100 + i
    };
    PhoneNumber::from_u64(raw).unwrap()
}

/// Recipient of rank `r` (0-based): profile `r % 10`, a distinct NANP number.
fn recipient(r: u64) -> (u64, PhoneNumber) {
    (
        r % PROFILES,
        PhoneNumber::from_u64(13_000_000_000 + r).unwrap(),
    )
}

struct Workload {
    ids: Vec<ProfileId>,
    /// Every live mapping, made once in both engines.
    warm: Vec<(ProfileId, PhoneNumber)>,
    /// The measured requests, Zipf over the live recipients.
    requests: Vec<(ProfileId, PhoneNumber)>,
}

fn workload() -> Workload {
    let ids: Vec<ProfileId> = (0..PROFILES).map(|_| ProfileId::new_v4()).collect();
    let warm = (0..LIVE)
        .map(|r| {
            let (p, to) = recipient(r);
            (ids[p as usize], to)
        })
        .collect();
    let zipf = Zipf::new(LIVE as f64, 1.0).unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let requests = (0..REQUESTS)
        .map(|_| {
            let (p, to) = recipient(zipf.sample(&mut rng) as u64 - 1);
            (ids[p as usize], to)
        })
        .collect();
    Workload {
        ids,
        warm,
        requests,
    }
}

fn bench(c: &mut Criterion) {
    let w = workload();

    // The floor: the core, one thread, same profiles, same mappings.
    let mut registry = Registry::new(SelectionConfig::default());
    for (p, id) in w.ids.iter().enumerate() {
        registry.create_profile(*id, &settings(), NOW).unwrap();
        for i in 0..50 {
            registry.assign(sender(p as u64, i), *id).unwrap();
        }
    }
    for &(id, to) in &w.warm {
        registry.select(id, to, NOW).unwrap();
    }

    // The engine: all cores.
    let engine = Engine::start(EngineConfig::default()).unwrap();
    block_on(async {
        for (p, id) in w.ids.iter().enumerate() {
            let new = NewProfile {
                id: Some(*id),
                name: format!("bench-{p}"),
                number_pool_settings: settings(),
                ..Default::default()
            };
            engine.create_profile(new).await.unwrap();
            for i in 0..50 {
                engine
                    .assign_number(sender(p as u64, i), Some(*id))
                    .await
                    .unwrap();
            }
        }
        for chunk in w.warm.chunks(4096) {
            for r in engine.send_batch(chunk).await {
                r.unwrap();
            }
        }
    });
    let stats = block_on(engine.stats());
    eprintln!(
        "engine: {} profiles, {} live mappings, one arbiter per core",
        stats.profiles, stats.stored_mappings
    );

    let mut group = c.benchmark_group("dispatch_1M_zipf");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(6));

    let chunk = 1 << 16;
    group.throughput(Throughput::Elements(chunk as u64));
    let requests = &w.requests;
    let mut offset = 0usize;
    let mut next = move || {
        let start = offset;
        offset = (offset + chunk) % REQUESTS;
        &requests[start..start + chunk]
    };

    group.bench_function("floor_core_one_thread", |b| {
        b.iter(|| {
            for &(id, to) in next() {
                black_box(registry.select(id, to, NOW).unwrap());
            }
        })
    });
    for batch in [256usize, 4096] {
        group.bench_function(format!("engine_batch_{batch}"), |b| {
            b.iter(|| {
                let requests = next();
                block_on(
                    stream::iter(requests.chunks(batch))
                        .map(|items| engine.send_batch(items))
                        .buffer_unordered(4)
                        .for_each(|results| {
                            black_box(results);
                            async {}
                        }),
                )
            })
        });
    }
    group.bench_function("engine_single_pipelined", |b| {
        b.iter(|| {
            let requests = next();
            block_on(
                stream::iter(requests)
                    .map(|&(id, to)| engine.send(id, to))
                    .buffer_unordered(256)
                    .for_each(|r| {
                        black_box(r.unwrap());
                        async {}
                    }),
            )
        })
    });

    group.throughput(Throughput::Elements(1));
    let mut histogram = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    let mut k = 0usize;
    group.bench_function("engine_single_round_trip", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (id, to) = requests[k % REQUESTS];
                k += 1;
                let t = Instant::now();
                black_box(engine.send_blocking(id, to).unwrap());
                let took = t.elapsed();
                histogram.record(took.as_nanos() as u64).unwrap();
                total += took;
            }
            total
        })
    });
    group.finish();
    eprintln!(
        "engine_single_round_trip: {} samples, p50 {:.1} us, p90 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us",
        histogram.len(),
        histogram.value_at_quantile(0.5) as f64 / 1e3,
        histogram.value_at_quantile(0.9) as f64 / 1e3,
        histogram.value_at_quantile(0.99) as f64 / 1e3,
        histogram.value_at_quantile(0.999) as f64 / 1e3,
        histogram.max() as f64 / 1e3,
    );
    block_on(engine.shutdown());
}

criterion_group!(benches, bench);
criterion_main!(benches);
