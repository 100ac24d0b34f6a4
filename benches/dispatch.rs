//! How a request reaches its profile, side by side in one run: the caller
//! running it (the default) against the mailbox (`Dispatch::Mailbox`, every
//! request on an engine thread), one message per call and in batches, next
//! to a bare `hashbrown` lookup-and-touch of the same keys on one thread.
//!
//! Workload: 10 profiles x 50 senders (40 long codes, 10 toll-free, weights
//! 4:1), sticky on, 1M live mappings (100k per profile), recipients drawn
//! Zipf (s = 1.0) over those 1M, so nearly every selection is a sticky hit.
//! One thread calls (see `benches/embedder.rs` for two async callers).
//!
//! Run: `cargo bench --bench dispatch`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures::executor::block_on;
use futures::stream::{self, StreamExt};
use numpool::{
    Dispatch, Engine, EngineConfig, NewProfile, PhoneNumber, ProfileId, SettingsPatch,
    SettingsUpdate,
};
use rand::{rngs::StdRng, SeedableRng};
use rand_distr::{Distribution, Zipf};

const PROFILES: u64 = 10;
const LIVE: u64 = 1_000_000;
const REQUESTS: usize = 1 << 20;

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

fn start(w: &Workload, dispatch: Dispatch) -> Engine {
    let engine = Engine::start(EngineConfig {
        dispatch,
        // Millions of messages a second, far beyond any carrier rate: the
        // highest rates keep queues from filling (the bookkeeping is the same).
        capacity: numpool::CapacityConfig {
            rates: numpool::KindRates::uniform(100_000.0),
            ..Default::default()
        },
        ..EngineConfig::default()
    })
    .unwrap();
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
    engine
}

/// One request at a time from this thread, timed one by one.
fn round_trips(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    engine: &Engine,
    requests: &[(ProfileId, PhoneNumber)],
) {
    let mut histogram = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    let mut k = 0usize;
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (id, to) = requests[k % requests.len()];
                k += 1;
                let t = Instant::now();
                black_box(engine.send_now(id, to).unwrap());
                let took = t.elapsed();
                histogram.record(took.as_nanos().max(1) as u64).unwrap();
                total += took;
            }
            total
        })
    });
    eprintln!(
        "{name}: {} samples, p50 {:.2} us, p90 {:.2} us, p99 {:.2} us, p99.9 {:.2} us, max {:.1} us",
        histogram.len(),
        histogram.value_at_quantile(0.5) as f64 / 1e3,
        histogram.value_at_quantile(0.9) as f64 / 1e3,
        histogram.value_at_quantile(0.99) as f64 / 1e3,
        histogram.value_at_quantile(0.999) as f64 / 1e3,
        histogram.max() as f64 / 1e3,
    );
}

fn bench(c: &mut Criterion) {
    let w = workload();
    // The floor: a bare map of the same keys, one thread.
    let mut floor: hashbrown::HashMap<(ProfileId, u64), [u32; 4], foldhash::fast::RandomState> =
        hashbrown::HashMap::default();
    for (i, &(id, to)) in w.warm.iter().enumerate() {
        floor.insert((id, to.as_u64()), [i as u32, 0, 0, 0]);
    }
    let caller_runs = start(&w, Dispatch::CallerRuns);
    let mailbox = start(&w, Dispatch::Mailbox);

    let mut group = c.benchmark_group("dispatch_1M_zipf");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    let chunk = 1 << 16;
    group.throughput(Throughput::Elements(chunk as u64));
    let requests = &w.requests;
    let mut offset = 0usize;
    let mut next = move || {
        let start = offset;
        offset = (offset + chunk) % REQUESTS;
        &requests[start..start + chunk]
    };
    group.bench_function("floor_hashbrown_one_thread", |b| {
        b.iter(|| {
            for &(id, to) in next() {
                let v = floor.get_mut(&(id, to.as_u64())).unwrap();
                v[3] += 1;
                black_box(v[0]);
            }
        })
    });
    group.bench_function("caller_runs_send_now", |b| {
        b.iter(|| {
            for &(id, to) in next() {
                black_box(caller_runs.send_now(id, to).unwrap());
            }
        })
    });
    for (name, engine) in [("caller_runs", &caller_runs), ("mailbox", &mailbox)] {
        group.bench_function(format!("{name}_batch_4096"), |b| {
            b.iter(|| {
                for items in next().chunks(4096) {
                    black_box(engine.send_batch_now(items));
                }
            })
        });
    }
    group.bench_function("mailbox_send_256_in_flight", |b| {
        b.iter(|| {
            let requests = next();
            block_on(
                stream::iter(requests)
                    .map(|&(id, to)| mailbox.send(id, to))
                    .buffer_unordered(256)
                    .for_each(|r| {
                        black_box(r.unwrap());
                        async {}
                    }),
            )
        })
    });
    group.throughput(Throughput::Elements(1));
    round_trips(&mut group, "caller_runs_round_trip", &caller_runs, requests);
    round_trips(&mut group, "mailbox_round_trip", &mailbox, requests);
    group.finish();
    block_on(caller_runs.shutdown());
    block_on(mailbox.shutdown());
}

criterion_group!(benches, bench);
criterion_main!(benches);
