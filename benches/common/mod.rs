//! What several benches share. Each bench compiles this module on its
//! own and uses part of it.
#![allow(dead_code)]

use futures::executor::block_on;
use numpool::{Engine, PhoneNumber, ProfileId};

/// A new profile with sticky sender on and `numbers` in its pool.
pub fn sticky_profile(
    engine: &Engine,
    numbers: impl IntoIterator<Item = PhoneNumber>,
) -> ProfileId {
    block_on(numpool::test_util::sticky_profile(engine, "bench", numbers)).unwrap()
}

/// A count from the environment variable `var` (`10m`, `250k` or digits),
/// else `default`.
pub fn count(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| {
            let v = v.trim().to_ascii_lowercase();
            let (digits, scale) = match v.strip_suffix('m') {
                Some(d) => (d, 1_000_000),
                None => match v.strip_suffix('k') {
                    Some(d) => (d, 1_000),
                    None => (v.as_str(), 1),
                },
            };
            digits.parse::<u64>().ok().map(|n| n * scale)
        })
        .unwrap_or(default)
}
