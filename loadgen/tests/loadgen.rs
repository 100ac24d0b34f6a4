//! loadgen: deterministic workloads, honest summaries, documented JSON, and
//! short real runs against numpool in-process and the naive baseline.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use hdrhistogram::Histogram;
use loadgen::args::{Args, Dist, EngineKind};
use loadgen::driver::{self, DriverConfig};
use loadgen::report::{self, RunReport};
use loadgen::target::{BatchOutcome, CapacityFlags, NaiveTarget, NumpoolTarget, PoolFlags, Target};
use loadgen::workload::{Workload, WorkloadSpec};
use numpool::test_util::ManualClock;
use numpool::Timestamp;

fn spec(seed: u64, messages: u64) -> WorkloadSpec {
    WorkloadSpec {
        profiles: 3,
        numbers: 10,
        recipients: 5_000,
        dist: Dist::Zipf(1.0),
        messages,
        seed,
        unhealthy_fraction: 0.0,
    }
}

fn drive(
    target: &dyn Target,
    workload: &Workload,
    clock: &ManualClock,
    sim_rate: Duration,
) -> RunReport {
    let cfg = DriverConfig {
        batch: 64,
        concurrency: 2,
        rate: None,
        sim_rate,
        progress: false,
    };
    driver::run(target, workload, clock, &cfg).unwrap()
}

fn flags(ttl_secs: u64) -> PoolFlags {
    PoolFlags {
        sticky: true,
        geomatch: false,
        skip_unhealthy: false,
        ttl_secs,
        capacity: CapacityFlags {
            enabled: true,
            load_aware: true,
            rates: numpool::KindRates {
                long_code: 100_000.0,
                toll_free: 100_000.0,
                short_code: 100_000.0,
            },
            max_queue_secs: 14_400.0,
            record_waits: false,
        },
    }
}

#[test]
fn the_same_seed_gives_the_same_workload() {
    let a = Workload::generate(&spec(7, 10_000)).unwrap();
    let b = Workload::generate(&spec(7, 10_000)).unwrap();
    let c = Workload::generate(&spec(8, 10_000)).unwrap();
    assert_eq!(a, b);
    assert_ne!(a.requests, c.requests);
    assert_eq!(a.senders, c.senders, "pools do not depend on the seed");
    // Zipf: the most popular recipient is rank 0 and dominates.
    let top = a
        .requests
        .iter()
        .filter(|r| *r == &loadgen::workload::recipient(&a.spec, 0))
        .count();
    assert!(top > 500, "rank 0 drew {top} of 10000");
    // Every sender is distinct across pools.
    let mut all: Vec<_> = a.senders.iter().flatten().collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 30);
}

#[test]
fn the_summary_is_right_on_a_known_histogram() {
    let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).unwrap();
    for v in 1..=1000u64 {
        h.record(v * 1000).unwrap();
    }
    let outcome = BatchOutcome {
        queue_full: 0,
        sticky: 750,
        geomatch: 0,
        weighted: 250,
        failed: 0,
    };
    let r = RunReport::new(
        "numpool",
        1000,
        Duration::from_millis(500),
        &h,
        outcome,
        250,
        Some(36.0),
    );
    let close = |got: u64, want: u64| (got as f64 - want as f64).abs() / want as f64 <= 0.001;
    assert!(close(r.latency.p50, 500_000), "{}", r.latency.p50);
    assert!(close(r.latency.p90, 900_000), "{}", r.latency.p90);
    assert!(close(r.latency.p99, 990_000), "{}", r.latency.p99);
    assert!(close(r.latency.p999, 999_000), "{}", r.latency.p999);
    assert!(close(r.latency.max, 1_000_000), "{}", r.latency.max);
    assert_eq!(r.throughput_per_sec, 2000.0);
    assert_eq!(r.sticky_hit_ratio(), 0.75);
    let text = report::summary("test", &[r], &report::RunContext::default());
    assert!(text.contains("mappings: live ones only"));
    // HDR keeps 3 significant digits: the median of 1..=1000 us reads 500.2 us.
    assert!(
        text.contains("500.2 us") && text.contains("75.0%"),
        "{text}"
    );
}

#[test]
fn the_json_has_the_documented_keys() {
    let h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).unwrap();
    let r = RunReport::new(
        "naive",
        10,
        Duration::from_secs(1),
        &h,
        BatchOutcome::default(),
        0,
        None,
    );
    let j = r.to_json();
    for key in [
        "engine",
        "messages",
        "throughput_per_sec",
        "latency_ns",
        "sticky_hit_ratio",
        "live_mappings",
        "bytes_per_mapping",
    ] {
        assert!(j.get(key).is_some(), "missing {key}");
    }
    for key in ["p50", "p90", "p99", "p999", "max"] {
        assert!(
            j["latency_ns"].get(key).is_some(),
            "missing latency_ns.{key}"
        );
    }
}

#[test]
fn short_numpool_and_naive_runs_agree() {
    let workload = Workload::generate(&spec(3, 20_000)).unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
    let numpool = NumpoolTarget::start(&workload, flags(3600), clock.clone(), 2).unwrap();
    let a = drive(&numpool, &workload, &clock, Duration::ZERO);
    numpool.shutdown();
    let naive = NaiveTarget::new(&workload, true, false, 3600);
    let b = drive(&naive, &workload, &clock, Duration::ZERO);
    for r in [&a, &b] {
        assert_eq!(r.messages, 20_000);
        assert_eq!(
            r.outcome.sticky + r.outcome.weighted,
            20_000,
            "{}",
            r.engine
        );
        assert!(r.throughput_per_sec > 0.0);
    }
    // Same workload, same sticky semantics: the same number of new mappings.
    assert_eq!(a.outcome.weighted, b.outcome.weighted);
    assert_eq!(a.live_mappings, a.outcome.weighted);
    assert!(a.bytes_per_mapping.unwrap() > 28.0);
}

/// `--async-calls` drives the async API (`send_batch`, `send`) and gets
/// what the blocking one gets: every message answered, the same new
/// mappings, in calls of many messages and of one.
#[test]
fn async_calls_answer_as_blocking_calls_do() {
    let workload = Workload::generate(&spec(4, 20_000)).unwrap();
    for batch in [64, 1] {
        let cfg = DriverConfig {
            batch,
            concurrency: 2,
            rate: None,
            sim_rate: Duration::ZERO,
            progress: false,
        };
        let run = |async_calls: bool| {
            let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
            let target = NumpoolTarget::start(&workload, flags(3600), clock.clone(), 2)
                .unwrap()
                .with_async_calls(async_calls);
            let report = driver::run(&target, &workload, &clock, &cfg).unwrap();
            target.shutdown();
            report
        };
        let (blocking, asynchronous) = (run(false), run(true));
        for r in [&blocking, &asynchronous] {
            assert_eq!(r.messages, 20_000);
            assert_eq!(
                r.outcome.sticky + r.outcome.weighted,
                20_000,
                "batch {batch}"
            );
        }
        assert_eq!(
            asynchronous.outcome.weighted, blocking.outcome.weighted,
            "batch {batch}"
        );
        assert_eq!(
            asynchronous.live_mappings, blocking.live_mappings,
            "batch {batch}"
        );
    }
}

#[test]
fn simulated_time_expires_and_remaps() {
    let workload = Workload::generate(&spec(5, 20_000)).unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
    let target = NumpoolTarget::start(&workload, flags(100), clock.clone(), 2).unwrap();
    let still = drive(&target, &workload, &clock, Duration::ZERO);
    target.shutdown();
    let distinct = still.outcome.weighted;
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
    let target = NumpoolTarget::start(&workload, flags(100), clock.clone(), 2).unwrap();
    // One simulated second per message against a 100 s ttl: mappings expire
    // during the run and recipients are mapped again.
    let moving = drive(&target, &workload, &clock, Duration::from_secs(1));
    target.shutdown();
    assert!(
        moving.outcome.weighted > distinct,
        "{} vs {distinct}",
        moving.outcome.weighted
    );
}

#[test]
fn open_loop_runs_on_schedule() {
    let workload = Workload::generate(&spec(9, 2_000)).unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
    let naive = NaiveTarget::new(&workload, true, false, 3600);
    let cfg = DriverConfig {
        batch: 100,
        concurrency: 1,
        rate: Some(20_000.0),
        sim_rate: Duration::ZERO,
        progress: false,
    };
    let r = driver::run(&naive, &workload, &clock, &cfg).unwrap();
    // 2000 messages at 20k/s take at least 0.095 s of schedule.
    assert!(r.wall >= Duration::from_millis(90), "{:?}", r.wall);
    assert_eq!(r.messages, 2_000);
}

#[test]
fn bad_flags_are_refused_with_a_message() {
    for bad in [
        vec!["loadgen", "--messages", "ten"],
        vec!["loadgen", "--dist", "normal"],
        vec!["loadgen", "--unhealthy-fraction", "2"],
        vec!["loadgen", "--profiles", "0"],
        vec!["loadgen", "--engine", "postgres"],
        vec!["loadgen", "--ttl", "8 days"],
    ] {
        let err = Args::try_parse_from(&bad).unwrap_err();
        assert!(!err.to_string().is_empty(), "{bad:?}");
    }
    let ok = Args::try_parse_from([
        "loadgen",
        "--messages",
        "500k",
        "--dist",
        "zipf:1.1",
        "--engine",
        "all",
    ])
    .unwrap();
    assert_eq!(ok.messages, 500_000);
    assert_eq!(
        ok.engines(),
        [
            EngineKind::Floor,
            EngineKind::Numpool,
            EngineKind::Naive,
            EngineKind::Redis
        ]
    );
    assert!(Workload::generate(&WorkloadSpec {
        recipients: 200_000_000,
        ..spec(1, 1)
    })
    .is_err());
}

#[test]
fn the_plot_is_an_svg_with_every_engine() {
    let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).unwrap();
    for v in 1..=100u64 {
        h.record(v * 10_000).unwrap();
    }
    let a = RunReport::new(
        "numpool",
        100,
        Duration::from_millis(1),
        &h,
        BatchOutcome::default(),
        0,
        None,
    );
    let b = RunReport::new(
        "naive",
        100,
        Duration::from_millis(10),
        &h,
        BatchOutcome::default(),
        0,
        None,
    );
    let dir = tempfile::Builder::new()
        .prefix("loadgen-plot-")
        .tempdir()
        .unwrap();
    let path = dir.path().join("plot.svg");
    let ctx = report::RunContext {
        batch: 4096,
        ..Default::default()
    };
    report::plot(&[a, b], &path, "test workload", &ctx).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("numpool") && svg.contains("naive"));
    assert!(
        svg.contains("one call of 4096 messages"),
        "the title says what a sample is"
    );
}

#[test]
fn a_short_journal_run_recovers_what_it_wrote() {
    use numpool::{FsyncPolicy, JournalConfig};
    let workload = Workload::generate(&spec(11, 20_000)).unwrap();
    let dir = tempfile::Builder::new()
        .prefix("loadgen-journal-test-")
        .tempdir()
        .unwrap();
    let journal = JournalConfig {
        dir: dir.path().to_path_buf(),
        fsync: FsyncPolicy::Never,
        snapshot_every: None,
    };
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
    let target = NumpoolTarget::start_with(
        &workload,
        flags(3600),
        clock.clone(),
        Some(journal.clone()),
        2,
    )
    .unwrap();
    let run = drive(&target, &workload, &clock, Duration::ZERO);
    assert_eq!(run.engine, "journal");
    let d = loadgen::durability::measure(&target, &workload, &journal, clock).unwrap();
    assert_eq!(d.recovered_mappings as u64, run.live_mappings);
    assert!(d.snapshot_took > Duration::ZERO);
}
