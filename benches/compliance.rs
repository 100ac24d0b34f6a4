//! What opt-outs cost a send: one message per call (`send_now`, the
//! embedder's call) to a profile with no opt-outs and to one with 1M, in
//! the same run, in paired rounds; recipients are sticky hits that never opted
//! out, so the difference is the opt-out check. Also prints the opt-outs'
//! memory per recipient.
//!
//! Run: `cargo bench --bench compliance` (`OPT_OUTS`: default 1M).

mod common;

use std::time::Instant;

use futures::executor::block_on;
use numpool::{CapacityConfig, Engine, EngineConfig, KindRates, PhoneNumber, ProfileId};

const RECIPIENTS: u64 = 100_000;
const SENDS: u64 = 400_000;
const ROUNDS: usize = 9;

fn recipient(i: u64) -> PhoneNumber {
    PhoneNumber::from_u64(13_000_000_000 + i).unwrap()
}

/// Paired rounds of `a` and `b`, the order swapped every round (the
/// machine is shared and noisy): the median ns per send of each and the
/// median of the per-round ratios b / a.
fn paired(engine: &Engine, a: ProfileId, b: ProfileId) -> (f64, f64, f64) {
    let (mut xs, mut ys, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (x, y) = if round % 2 == 0 {
            let x = measure(engine, a);
            (x, measure(engine, b))
        } else {
            let y = measure(engine, b);
            (measure(engine, a), y)
        };
        xs.push(x);
        ys.push(y);
        ratios.push(y / x);
    }
    for v in [&mut xs, &mut ys, &mut ratios] {
        v.sort_by(f64::total_cmp);
    }
    (xs[ROUNDS / 2], ys[ROUNDS / 2], ratios[ROUNDS / 2])
}

/// Nanoseconds per send over `SENDS` sticky sends.
fn measure(engine: &Engine, p: ProfileId) -> f64 {
    let started = Instant::now();
    for i in 0..SENDS {
        let to = recipient(i.wrapping_mul(2_654_435_761) % RECIPIENTS);
        engine.send_now(p, to).unwrap();
    }
    started.elapsed().as_nanos() as f64 / SENDS as f64
}

fn main() {
    let opt_outs: u64 = std::env::var("OPT_OUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let engine = Engine::start(EngineConfig {
        capacity: CapacityConfig {
            rates: KindRates::uniform(100_000.0),
            ..Default::default()
        },
        ..EngineConfig::default()
    })
    .unwrap();
    let clean = common::sticky_profile(
        &engine,
        (0..50).map(|i| PhoneNumber::from_u64(12_125_550_000 + i).unwrap()),
    );
    let blocked = common::sticky_profile(
        &engine,
        (0..50).map(|i| PhoneNumber::from_u64(12_135_550_000 + i).unwrap()),
    );
    // Map every recipient first: the measured sends are sticky hits.
    for p in [clean, blocked] {
        for i in 0..RECIPIENTS {
            engine.send_now(p, recipient(i)).unwrap();
        }
    }
    // The two profiles differ a little even when alike (where their data
    // landed): measure that first, then again with the opt-outs.
    let (_, _, alike) = paired(&engine, clean, blocked);
    block_on(async {
        for i in 0..opt_outs {
            let to = PhoneNumber::from_u64(14_000_000_000 + i * 7).unwrap();
            engine.opt_out(blocked, to).await.unwrap();
        }
    });
    let stats = block_on(engine.stats());
    let heap: usize = stats
        .per_profile
        .iter()
        .map(|p| p.stats.opt_out_heap_bytes)
        .sum();
    println!(
        "opt-outs: {opt_outs}, {:.1} bytes per opted-out recipient",
        heap as f64 / opt_outs.max(1) as f64
    );
    let (none, many, ratio) = paired(&engine, clean, blocked);
    println!(
        "send_now, sticky hit: {none:.0} ns with no opt-outs, {many:.0} ns with {opt_outs}: {ratio:.2}x; the same two profiles before the opt-outs: {alike:.2}x; opt-outs alone: {:.2}x (medians of {ROUNDS} paired rounds)",
        ratio / alike
    );
    block_on(engine.shutdown());
}
