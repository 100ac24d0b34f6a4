//! How long a restart takes to load a snapshot: a profile's opt-outs at
//! `n` and `4n` (50k and 200k, then 250k and 1M), and `MAPPINGS` sticky
//! mappings (10M by default). Each data directory is filled, snapshotted
//! and closed, then opened again and timed. Loading must stay linear: the
//! bench fails (exit 1) when loading `4n` opt-outs takes more than 12 times
//! as long as `n`. A quadratic load takes about 16 times; a linear one
//! takes 4 times plus cache misses, as a table of 1M opt-outs (24 MB) no
//! longer fits in cache where one of 250k nearly does: 5 to 9 times on a
//! 2-core cloud machine.
//!
//! Run: `cargo bench --bench recovery` (`MAPPINGS`: default 10M;
//! `OPT_OUTS`: the largest opt-out count, default 1M). With
//! `RECOVERY_DIR=path`, only the mappings are timed: the directory is
//! filled the first time and kept, and later runs (or a profiler) time
//! nothing but the reopening, `REOPENS` times (default 1).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::executor::block_on;
use numpool::{
    CapacityConfig, Engine, EngineConfig, FsyncPolicy, JournalConfig, KindRates, PhoneNumber,
};

fn config(dir: &Path) -> EngineConfig {
    EngineConfig {
        journal: Some(JournalConfig {
            dir: dir.to_path_buf(),
            fsync: FsyncPolicy::Never,
            snapshot_every: None,
        }),
        capacity: CapacityConfig {
            rates: KindRates::uniform(100_000.0),
            ..CapacityConfig::default()
        },
        ..EngineConfig::default()
    }
}

fn fresh(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("numpool-recovery-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Opens `dir` again and times it (the recovery the report says, and the
/// wall time around `Engine::start`).
fn reopen(dir: &Path) -> Duration {
    let started = Instant::now();
    let engine = Engine::start(config(dir)).unwrap();
    let took = started.elapsed();
    block_on(engine.shutdown());
    took
}

/// A data directory whose snapshot holds `n` opt-outs of one profile.
fn with_opt_outs(n: u64) -> PathBuf {
    let dir = fresh(&format!("optouts-{n}"));
    let engine = Engine::start(config(&dir)).unwrap();
    let p = common::sticky_profile(
        &engine,
        (0..50u64).map(|i| PhoneNumber::from_u64(13_125_550_000 + i).unwrap()),
    );
    block_on(async {
        for i in 0..n {
            let to = PhoneNumber::from_u64(14_000_000_000 + i * 7).unwrap();
            engine.opt_out(p, to).await.unwrap();
        }
    });
    block_on(engine.snapshot_now()).unwrap();
    block_on(engine.shutdown());
    dir
}

/// A data directory whose snapshot holds `n` mappings of one profile.
fn with_mappings(n: u64) -> PathBuf {
    let dir = fresh(&format!("mappings-{n}"));
    let engine = Engine::start(config(&dir)).unwrap();
    let p = common::sticky_profile(
        &engine,
        (0..50u64).map(|i| PhoneNumber::from_u64(13_125_550_000 + i).unwrap()),
    );
    let mut batch = Vec::with_capacity(4096);
    for i in 0..n {
        batch.push((p, PhoneNumber::from_u64(15_000_000_000 + i).unwrap()));
        if batch.len() == 4096 || i + 1 == n {
            for r in engine.send_batch_now(&batch) {
                r.unwrap();
            }
            batch.clear();
        }
    }
    block_on(engine.snapshot_now()).unwrap();
    block_on(engine.shutdown());
    dir
}

/// Times reopening a kept directory (see the module docs). A directory
/// that already holds journal files is reopened as it is: one with a log
/// and no snapshot times a replay of the log.
fn reopen_kept(dir: &Path) {
    if !holds_journal(dir) {
        let filled = with_mappings(common::count("MAPPINGS", 10_000_000));
        std::fs::rename(&filled, dir).expect("RECOVERY_DIR: move the filled directory");
    }
    for _ in 0..common::count("REOPENS", 1) {
        println!(
            "recovery: {} reopened in {:.2?}",
            dir.display(),
            reopen(dir)
        );
    }
}

fn holds_journal(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("snapshot-") || name.starts_with("log-")
        })
    })
}

fn main() {
    if let Some(dir) = std::env::var_os("RECOVERY_DIR") {
        reopen_kept(Path::new(&dir));
        return;
    }
    let largest = common::count("OPT_OUTS", 1_000_000);
    let mut failed = false;
    for n in [largest / 20, largest / 4] {
        let (small, large) = (with_opt_outs(n), with_opt_outs(4 * n));
        let (a, b) = (reopen(&small), reopen(&large));
        let ratio = b.as_secs_f64() / a.as_secs_f64().max(1e-6);
        println!(
            "recovery: {n} opt-outs {a:.2?}, {} opt-outs {b:.2?}: {ratio:.1}x for 4x the opt-outs",
            4 * n
        );
        if ratio > 12.0 {
            println!("recovery: loading opt-outs grows faster than linearly");
            failed = true;
        }
        for d in [small, large] {
            let _ = std::fs::remove_dir_all(d);
        }
    }
    let mappings = common::count("MAPPINGS", 10_000_000);
    let dir = with_mappings(mappings);
    println!("recovery: {mappings} mappings {:.2?}", reopen(&dir));
    let _ = std::fs::remove_dir_all(dir);
    if failed {
        std::process::exit(1);
    }
}
