//! Profiles by the hundred thousand, the way a reseller with a profile per
//! customer runs numpool: 100,000 profiles of 10 numbers each, created
//! through `Engine` (in memory), then left idle. Reports the creation rate,
//! the resident memory, and the CPU the process uses while idle (no profile
//! has a timer of its own, so there should be next to nothing).
//!
//! Run: `cargo bench --bench profiles` (`PROFILES`: default 100000,
//! `IDLE_SECS`: default 30). Linux only (reads /proc/self).

use std::time::{Duration, Instant};

use numpool::{Engine, EngineConfig, PhoneNumber};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident memory of this process, in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// CPU time this process has used (user + system), from /proc/self/stat.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the file: 12 and 13 after the name.
    let clock_ticks = 100; // USER_HZ on Linux
    Duration::from_millis((ticks(11) + ticks(12)) * 1000 / clock_ticks)
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // nothing to list or smoke-test under `cargo test --benches`
    }
    let profiles = env_or("PROFILES", 100_000);
    let idle = Duration::from_secs(env_or("IDLE_SECS", 30));
    let rss_before = rss_bytes();
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
    let started = Instant::now();
    futures::executor::block_on(async {
        for p in 0..profiles {
            let numbers =
                (0..10).map(|i| PhoneNumber::from_u64(12_000_000_000 + p * 10 + i).unwrap());
            let name = format!("customer-{p}");
            numpool::test_util::sticky_profile(&engine, &name, numbers)
                .await
                .unwrap();
        }
    });
    let took = started.elapsed();
    let rss = rss_bytes();
    let cpu_before = cpu_time();
    let idle_started = Instant::now();
    std::thread::sleep(idle);
    let idle_cpu = cpu_time().saturating_sub(cpu_before);
    let idle_wall = idle_started.elapsed();
    let stats = futures::executor::block_on(engine.stats());
    println!(
        "\n{profiles} profiles x 10 numbers, in memory, created through Engine (create_profile + 10 assign_number each)"
    );
    println!(
        "creation: {:.1?} for {profiles} profiles: {:.0} profiles/s ({:.0} calls/s)",
        took,
        profiles as f64 / took.as_secs_f64(),
        (profiles * 11) as f64 / took.as_secs_f64()
    );
    println!(
        "resident memory: {:.0} MB ({:.0} MB before the engine started; {:.0} bytes per profile)",
        rss as f64 / 1e6,
        rss_before as f64 / 1e6,
        (rss - rss_before) as f64 / profiles as f64
    );
    println!(
        "idle: {:.1?} of CPU over {:.1?}: {:.3}% of a core; profiles with expiry scheduled: {}, expiry slices run: {}",
        idle_cpu,
        idle_wall,
        idle_cpu.as_secs_f64() / idle_wall.as_secs_f64() * 100.0,
        stats.expiry_scheduled,
        stats.expiry_slices
    );
}
