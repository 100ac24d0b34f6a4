//! An async embedder's program, the way a gateway uses numpool: two tokio
//! tasks on a two-thread runtime, each sending one message per call
//! (`engine.send(profile, to).await`), one profile with 50 numbers, 100k
//! recipients (all mapped first, so sends are sticky hits), time per call
//! recorded for every message. Next to it, in the same program and the same
//! run, what the embedder would write instead: a
//! `parking_lot::Mutex<HashMap<u64, u64>>` sticky map with a round-robin
//! pick for new recipients. Three rounds, alternating; the median is
//! reported.
//!
//! Run: `cargo bench --bench embedder` (`EMBEDDER_MESSAGES`: per task,
//! default 1M; `EMBEDDER_TASKS`: tasks, default 2, on as many threads).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;
use numpool::{Engine, EngineConfig, PhoneNumber, ProfileId};
use parking_lot::Mutex;
use rand::{rngs::StdRng, Rng, SeedableRng};

const RECIPIENTS: u64 = 100_000;

fn recipient(i: u64) -> PhoneNumber {
    PhoneNumber::from_u64(13_000_000_000 + i).unwrap()
}

fn sender(i: u64) -> PhoneNumber {
    PhoneNumber::from_u64(12_125_550_000 + i).unwrap()
}

/// One task's recipients: a seeded random walk over the 100k.
fn stream(task: usize, n: usize) -> Vec<PhoneNumber> {
    let mut rng = StdRng::seed_from_u64(task as u64 + 1);
    (0..n)
        .map(|_| recipient(rng.random_range(0..RECIPIENTS)))
        .collect()
}

/// What one round measured: messages/s over all tasks, latency per message.
struct Round {
    per_sec: f64,
    hist: Histogram<u64>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap()
}

/// The naive sticky map an embedder would write in its place.
struct Naive {
    map: Mutex<HashMap<u64, u64>>,
    next: AtomicU64,
}

impl Naive {
    fn send(&self, to: PhoneNumber) -> u64 {
        let mut map = self.map.lock();
        *map.entry(to.as_u64())
            .or_insert_with(|| sender(self.next.fetch_add(1, Ordering::Relaxed) % 50).as_u64())
    }
}

/// Runs every stream, one task each; `send` is what a task does per message.
async fn round<S>(streams: &Arc<Vec<Vec<PhoneNumber>>>, sender: S) -> Round
where
    S: Sender + Clone + Send + 'static,
{
    let started = Instant::now();
    let tasks: Vec<_> = (0..streams.len())
        .map(|t| {
            let (streams, sender) = (Arc::clone(streams), sender.clone());
            tokio::spawn(async move {
                let mut hist = histogram();
                for &to in &streams[t] {
                    let t0 = Instant::now();
                    sender.send(to).await;
                    hist.record(t0.elapsed().as_nanos().max(1) as u64).unwrap();
                }
                hist
            })
        })
        .collect();
    let mut hist = histogram();
    for t in tasks {
        hist.add(t.await.unwrap()).unwrap();
    }
    let total: usize = streams.iter().map(Vec::len).sum();
    Round {
        per_sec: total as f64 / started.elapsed().as_secs_f64(),
        hist,
    }
}

/// One message's send, as each side does it.
trait Sender {
    fn send(&self, to: PhoneNumber) -> impl std::future::Future<Output = ()> + Send;
}

#[derive(Clone)]
struct Numpool(Engine, ProfileId);

impl Sender for Numpool {
    async fn send(&self, to: PhoneNumber) {
        std::hint::black_box(self.0.send(self.1, to).await.unwrap());
    }
}

impl Sender for Arc<Naive> {
    fn send(&self, to: PhoneNumber) -> impl std::future::Future<Output = ()> + Send {
        std::hint::black_box(Naive::send(self, to));
        std::future::ready(())
    }
}

fn describe(name: &str, r: &Round) {
    let us = |q: f64| r.hist.value_at_quantile(q) as f64 / 1e3;
    println!(
        "{name:<34} {:>10.2} M/s   p50 {:>6.3} us   p99 {:>6.3} us   p99.9 {:>7.3} us   max {:>8.1} us",
        r.per_sec / 1e6,
        us(0.5),
        us(0.99),
        us(0.999),
        r.hist.max() as f64 / 1e3
    );
}

fn median(mut rounds: Vec<Round>) -> Round {
    rounds.sort_by(|a, b| a.per_sec.total_cmp(&b.per_sec));
    rounds.swap_remove(rounds.len() / 2)
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // nothing to list or smoke-test under `cargo test --benches`
    }
    let per_task: usize = std::env::var("EMBEDDER_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let tasks: usize = std::env::var("EMBEDDER_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(2);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(tasks)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let engine = Engine::start(EngineConfig {
            // Millions of messages a second, far beyond any carrier rate: the
            // highest rates keep queues from filling (the bookkeeping is the same).
            capacity: numpool::CapacityConfig {
                rates: numpool::KindRates::uniform(100_000.0),
                ..Default::default()
            },
            ..EngineConfig::default()
        })
        .unwrap();
        let profile: ProfileId =
            numpool::test_util::sticky_profile(&engine, "embedder", (0..50).map(sender))
                .await
                .unwrap();
        let naive = Arc::new(Naive {
            map: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
        });
        for i in 0..RECIPIENTS {
            engine.send(profile, recipient(i)).await.unwrap();
            Naive::send(&naive, recipient(i));
        }
        let streams = Arc::new((0..tasks).map(|t| stream(t, per_task)).collect::<Vec<_>>());
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            ours.push(round(&streams, Numpool(engine.clone(), profile)).await);
            theirs.push(round(&streams, Arc::clone(&naive)).await);
        }
        println!(
            "\nasync embedder: {tasks} tokio tasks on {tasks} threads, one send().await per message, \
             1 profile x 50 numbers, 100k recipients (sticky hits), {per_task} messages per task; \
             latency is per message; median of 3 rounds"
        );
        let (ours, theirs) = (median(ours), median(theirs));
        describe("numpool Engine::send", &ours);
        describe("Mutex<HashMap<u64,u64>>", &theirs);
        println!(
            "numpool / Mutex<HashMap> throughput: {:.2}x",
            ours.per_sec / theirs.per_sec
        );
        engine.shutdown().await;
    });
}
