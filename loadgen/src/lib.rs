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
    }
}
