//! Running a workload against a target: closed loop (as fast as it goes) or
//! open loop (`rate`: batches issued on a fixed schedule, latency measured
//! from each batch's *intended* start, so a stalled target cannot hide its
//! queueing: coordinated omission is not hidden).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use numpool::test_util::ManualClock;
use numpool::Clock;

use crate::report::{Percentiles, RunReport};
use crate::target::{BatchOutcome, Target, TargetError};
use crate::workload::Workload;

/// How to drive.
#[derive(Debug, Clone, PartialEq)]
pub struct DriverConfig {
    pub batch: usize,
    pub concurrency: usize,
    /// Open loop: messages per second.
    pub rate: Option<f64>,
    /// Simulated time per message.
    pub sim_rate: Duration,
    pub progress: bool,
}

/// Messages a worker sends between updates of the progress bar.
const PROGRESS_EVERY: u64 = 1 << 16;

fn histogram() -> Histogram<u64> {
    // 1 ns .. 1 hour, 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid bounds")
}

/// Runs every request of `workload` against `target`.
pub fn run(
    target: &dyn Target,
    workload: &Workload,
    clock: &ManualClock,
    cfg: &DriverConfig,
) -> Result<RunReport, TargetError> {
    let requests = &workload.requests;
    let batch = cfg.batch.max(1);
    let batches = requests.len().div_ceil(batch);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let failure: Mutex<Option<TargetError>> = Mutex::new(None);
    let progress = if cfg.progress {
        let bar = ProgressBar::new(requests.len() as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>8} [{bar:40}] {human_pos}/{human_len} {per_sec} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(target.name());
        bar
    } else {
        ProgressBar::hidden()
    };
    let started = Instant::now();
    let results: Vec<(Histogram<u64>, BatchOutcome)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..cfg.concurrency.max(1))
            .map(|worker| {
                let (next, stop, failure, progress) = (&next, &stop, &failure, &progress);
                s.spawn(move || {
                    let mut hist = histogram();
                    let mut outcome = BatchOutcome::default();
                    // Messages not yet shown on the bar: updating it reads
                    // the clock (with one message a call, about 4% of the
                    // time when it was updated every call).
                    let mut unshown = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        if k >= batches {
                            break;
                        }
                        let slice = &requests[k * batch..((k + 1) * batch).min(requests.len())];
                        if !cfg.sim_rate.is_zero() {
                            clock.advance(cfg.sim_rate * slice.len() as u32);
                        }
                        let intended = cfg.rate.map(|rate| {
                            started + Duration::from_secs_f64((k * batch) as f64 / rate)
                        });
                        if let Some(at) = intended {
                            wait_until(at);
                        }
                        let issued = Instant::now();
                        match target.select(worker, slice, clock.now()) {
                            Ok(o) => outcome.add(o),
                            Err(e) => {
                                stop.store(true, Ordering::Relaxed);
                                failure
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .get_or_insert(e);
                                break;
                            }
                        }
                        let took = Instant::now() - intended.unwrap_or(issued).min(issued);
                        let ns = (took.as_nanos() as u64).clamp(1, 3_600_000_000_000);
                        hist.record_n(ns, slice.len() as u64).ok();
                        unshown += slice.len() as u64;
                        if unshown >= PROGRESS_EVERY {
                            progress.inc(std::mem::take(&mut unshown));
                        }
                    }
                    progress.inc(unshown);
                    (hist, outcome)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("worker threads do not panic"))
            .collect()
    });
    let wall = started.elapsed();
    progress.finish_and_clear();
    if let Some(e) = failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    let mut hist = histogram();
    let mut outcome = BatchOutcome::default();
    for (h, o) in results {
        hist.add(h).ok();
        outcome.add(o);
    }
    let mut report = RunReport::new(
        target.name(),
        requests.len() as u64,
        wall,
        &hist,
        outcome,
        target.live_mappings(),
        target.bytes_per_mapping(),
    );
    report.waits = target.waits().map(|h| Percentiles {
        max: target.max_wait().unwrap_or(h.max()),
        ..Percentiles::of(&h)
    });
    Ok(report)
}

/// Waits for `at`: sleeps while it is far, then spins, so that requests a
/// microsecond apart leave on time (a sleep alone overshoots by tens of
/// microseconds).
fn wait_until(at: Instant) {
    loop {
        let now = Instant::now();
        if now >= at {
            return;
        }
        let left = at - now;
        if left > Duration::from_millis(1) {
            std::thread::sleep(left - Duration::from_micros(500));
        } else {
            std::hint::spin_loop();
        }
    }
}
