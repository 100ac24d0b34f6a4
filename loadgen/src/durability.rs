//! What durability costs, measured on a journaled engine after its run:
//! how long selection stalls while a snapshot is taken, and how long a
//! restart takes to recover everything.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::executor::block_on;
use numpool::test_util::ManualClock;
use numpool::{Engine, EngineConfig, JournalConfig};

use crate::target::NumpoolTarget;
use crate::workload::Workload;

/// The measurements.
#[derive(Debug, Clone, PartialEq)]
pub struct DurabilityReport {
    /// Worst single-send latency while a snapshot was taken.
    pub worst_during_snapshot: Duration,
    /// Worst single-send latency of the same probe with no snapshot running.
    pub worst_without_snapshot: Duration,
    pub snapshot_took: Duration,
    pub recovery_took: Duration,
    pub recovered_mappings: usize,
}

/// Sends one message at a time, round the profiles, until `stop`; returns
/// the worst latency seen.
fn probe(
    engine: &Engine,
    target: &NumpoolTarget,
    workload: &Workload,
    stop: &AtomicBool,
) -> Duration {
    let mut worst = Duration::ZERO;
    for r in workload.requests.iter().cycle() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let t = Instant::now();
        let _ = engine.send_now(target.profiles()[r.profile as usize], r.recipient);
        worst = worst.max(t.elapsed());
    }
    worst
}

fn probe_while(
    engine: &Engine,
    target: &NumpoolTarget,
    workload: &Workload,
    work: impl FnOnce(),
) -> Duration {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let probing = s.spawn(|| probe(engine, target, workload, &stop));
        std::thread::sleep(Duration::from_millis(50));
        work();
        stop.store(true, Ordering::Relaxed);
        probing.join().expect("the probe does not panic")
    })
}

/// Measures the snapshot stall on `target` (then shuts it down) and the
/// recovery of `journal`'s directory.
pub fn measure(
    target: &NumpoolTarget,
    workload: &Workload,
    journal: &JournalConfig,
    clock: Arc<ManualClock>,
) -> std::io::Result<DurabilityReport> {
    let engine = target.engine().clone();
    let worst_without_snapshot = probe_while(&engine, target, workload, || {
        std::thread::sleep(Duration::from_millis(1000))
    });
    let mut snapshot = Ok(Duration::ZERO);
    let worst_during_snapshot = probe_while(&engine, target, workload, || {
        let t = Instant::now();
        snapshot = block_on(engine.snapshot_now()).map(|_| t.elapsed());
    });
    let snapshot_took = snapshot?;
    block_on(engine.shutdown());
    let config = EngineConfig {
        journal: Some(journal.clone()),
        ..EngineConfig::default()
    };
    let recovered = Engine::start_with_clock(config, clock).map_err(std::io::Error::other)?;
    let report = recovered.recovery().clone();
    block_on(recovered.shutdown());
    Ok(DurabilityReport {
        worst_during_snapshot,
        worst_without_snapshot,
        snapshot_took,
        recovery_took: report.took,
        recovered_mappings: report.mappings,
    })
}
