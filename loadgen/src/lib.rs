//! # loadgen
//!
//! Measures sender selection at millions of messages: numpool in-process,
//! numpool over HTTP, and the alternatives a team would otherwise use (a
//! naive mutex-guarded map, Redis with a Lua script), on the same workload
//! from the same seed, side by side.
//!
//! - [`args`]: the command line, sizes like `10M`, distributions like `zipf:1.0`.
//! - [`workload`]: the deterministic workload (pools, recipients, request stream).
//! - [`target`]: the [`target::Target`] trait and its implementations
//!   (`numpool`, `naive`, `redis`, `http`).
//! - [`driver`]: closed and open loop, simulated time, latency histograms.
//! - [`durability`]: what the journal costs: snapshot stall, recovery time.
//! - [`report`]: the summary, the JSON file and the SVG plot.

pub mod args;
pub mod driver;
pub mod durability;
pub mod report;
pub mod target;
pub mod workload;

/// The pool settings the flags ask for.
pub fn target_flags(args: &args::Args) -> target::PoolFlags {
    target::PoolFlags {
        sticky: args.sticky,
        geomatch: args.geomatch,
        skip_unhealthy: args.skip_unhealthy,
        ttl_secs: args.ttl.as_secs().max(1),
        capacity: capacity_flags(args),
    }
}

/// Sender capacity as the flags ask for it. While simulated time stands
/// still (no `--arrival-rate` or `--sim-rate`), every queue only grows, so
/// the default rates are the highest accepted: the bookkeeping costs the
/// same at any rate, and no queue fills.
pub fn capacity_flags(args: &args::Args) -> target::CapacityFlags {
    let moving = args.arrival_rate.is_some() || !args.sim_rate.is_zero();
    let mut rates = if moving {
        numpool::KindRates::default()
    } else {
        numpool::KindRates {
            long_code: 100_000.0,
            toll_free: 100_000.0,
            short_code: 100_000.0,
        }
    };
    for (kind, rate) in &args.mps {
        match kind {
            args::Kind::LongCode => rates.long_code = *rate,
            args::Kind::TollFree => rates.toll_free = *rate,
            args::Kind::ShortCode => rates.short_code = *rate,
        }
    }
    target::CapacityFlags {
        enabled: !args.no_capacity,
        load_aware: !args.round_robin,
        rates,
        max_queue_secs: args.max_queue.as_secs_f64(),
        record_waits: moving && !args.no_capacity,
    }
}
