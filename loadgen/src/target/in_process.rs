//! numpool in-process: the [`Engine`] with a manual clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::executor::block_on;
use hdrhistogram::Histogram;
use numpool::test_util::ManualClock;
use numpool::{
    CapacityConfig, CapacityLimits, DeliveryOutcome, Dispatch, Engine, EngineConfig, Error,
    JournalConfig, KindRates, NewProfile, PhoneNumber, ProfileId, Reason, Selection, SettingsPatch,
    SettingsUpdate, Timestamp,
};

use super::{BatchOutcome, Target, TargetError};
use crate::workload::{Request, Workload};

/// The weights of loadgen's profiles.
const LONG_CODE_WEIGHT: f64 = 4.0;
const TOLL_FREE_WEIGHT: f64 = 1.0;

/// Pool settings of a loadgen profile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolFlags {
    pub sticky: bool,
    pub geomatch: bool,
    pub skip_unhealthy: bool,
    pub ttl_secs: u64,
    pub capacity: CapacityFlags,
}

/// Sender capacity as a run asks for it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CapacityFlags {
    /// Queues, caps and load-aware picks on.
    pub enabled: bool,
    /// Earliest-free picks (else plain round-robin).
    pub load_aware: bool,
    pub rates: KindRates,
    /// The profiles' queue cap, seconds.
    pub max_queue_secs: f64,
    /// Record every message's queue wait (when simulated time moves).
    pub record_waits: bool,
}

impl CapacityFlags {
    /// The engine's capacity configuration.
    pub fn config(&self) -> CapacityConfig {
        CapacityConfig {
            enabled: self.enabled,
            load_aware: self.load_aware,
            rates: self.rates,
        }
    }

    /// Messages per second one profile's pool can take when the weights
    /// split them `long_code_weight : toll_free_weight` (the loadgen
    /// settings, 4:1): the kind that fills first bounds it.
    pub fn pool_rate(&self, senders: &[PhoneNumber]) -> f64 {
        let weights = [LONG_CODE_WEIGHT, TOLL_FREE_WEIGHT];
        let total = LONG_CODE_WEIGHT + TOLL_FREE_WEIGHT;
        let capacity = [numpool::SenderKind::LongCode, numpool::SenderKind::TollFree].map(|k| {
            senders.iter().filter(|n| n.kind() == k).count() as f64
                * match k {
                    numpool::SenderKind::LongCode => self.rates.long_code,
                    _ => self.rates.toll_free,
                }
        });
        (0..2)
            .map(|k| capacity[k] / (weights[k] / total))
            .fold(f64::INFINITY, f64::min)
    }
}
impl PoolFlags {
    /// The settings as a profile update.
    pub fn settings(&self) -> SettingsUpdate {
        SettingsUpdate::Merge(SettingsPatch {
            sticky_sender: Some(self.sticky),
            geomatch: Some(self.geomatch),
            skip_unhealthy: Some(self.skip_unhealthy),
            long_code_weight: Some(LONG_CODE_WEIGHT),
            toll_free_weight: Some(TOLL_FREE_WEIGHT),
            sticky_ttl_secs: Some(self.ttl_secs.max(1)),
            ..Default::default()
        })
    }
}

pub struct NumpoolTarget {
    engine: Engine,
    profiles: Vec<ProfileId>,
    name: &'static str,
    /// Queue waits by worker thread, when recorded.
    waits: Option<Vec<Mutex<Histogram<u64>>>>,
    /// The longest wait, exact (a histogram keeps 3 digits).
    max_wait: AtomicU64,
    /// Calls go through the async API (`Engine::send`, `Engine::send_batch`),
    /// awaited on the client thread, as an async embedder's would.
    async_calls: bool,
}

/// Waits from 1 ns to 30 days.
fn wait_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 30 * 86_400 * 1_000_000_000, 3).expect("valid bounds")
}

fn setup(e: impl std::fmt::Display) -> TargetError {
    TargetError::Setup {
        target: "numpool",
        message: e.to_string(),
    }
}

impl NumpoolTarget {
    pub fn start(
        workload: &Workload,
        flags: PoolFlags,
        clock: Arc<ManualClock>,
        workers: usize,
    ) -> Result<Self, TargetError> {
        Self::start_with(workload, flags, clock, None, workers)
    }

    /// Like [`NumpoolTarget::start`], journaling to `journal` if given,
    /// with requests reaching profiles as `dispatch` says.
    pub fn start_with(
        workload: &Workload,
        flags: PoolFlags,
        clock: Arc<ManualClock>,
        journal: Option<JournalConfig>,
        workers: usize,
    ) -> Result<Self, TargetError> {
        Self::start_dispatch(
            workload,
            flags,
            clock,
            journal,
            Dispatch::CallerRuns,
            workers,
        )
    }

    /// The engine with every request through its profile's mailbox (the
    /// `mailbox` engine: what the actor hop costs, for comparison).
    pub fn start_mailbox(
        workload: &Workload,
        flags: PoolFlags,
        clock: Arc<ManualClock>,
        workers: usize,
    ) -> Result<Self, TargetError> {
        Self::start_dispatch(workload, flags, clock, None, Dispatch::Mailbox, workers)
    }

    fn start_dispatch(
        workload: &Workload,
        flags: PoolFlags,
        clock: Arc<ManualClock>,
        journal: Option<JournalConfig>,
        dispatch: Dispatch,
        workers: usize,
    ) -> Result<Self, TargetError> {
        let name = match (&journal, dispatch) {
            (Some(_), _) => "journal",
            (None, Dispatch::Mailbox) => "mailbox",
            (None, Dispatch::CallerRuns) => "numpool",
        };
        let config = EngineConfig {
            journal,
            dispatch,
            capacity: flags.capacity.config(),
            ..EngineConfig::default()
        };
        let engine = Engine::start_with_clock(config, clock).map_err(setup)?;
        let profiles = block_on(async {
            let mut ids = Vec::new();
            for (p, senders) in workload.senders.iter().enumerate() {
                let record = engine
                    .create_profile(NewProfile {
                        name: format!("loadgen-{p}"),
                        number_pool_settings: flags.settings(),
                        capacity: CapacityLimits {
                            max_queue_seconds: flags.capacity.max_queue_secs,
                            ..Default::default()
                        },
                        ..Default::default()
                    })
                    .await?;
                for &n in senders {
                    engine.assign_number(n, Some(record.id)).await?;
                }
                ids.push(record.id);
            }
            let failed = DeliveryOutcome {
                delivered: false,
                spam: false,
            };
            for &n in &workload.unhealthy {
                for _ in 0..engine.config().health.min_samples {
                    engine.report_outcome(n, failed).await?;
                }
            }
            Ok::<_, Error>(ids)
        })
        .map_err(setup)?;
        let waits = flags
            .capacity
            .record_waits
            .then(|| (0..workers).map(|_| Mutex::new(wait_histogram())).collect());
        Ok(NumpoolTarget {
            engine,
            profiles,
            name,
            waits,
            max_wait: AtomicU64::new(0),
            async_calls: false,
        })
    }

    /// Calls through the async API (`--async-calls`): `Engine::send_batch`
    /// and `Engine::send`, each awaited on the client thread, instead of
    /// `send_batch_now` and `send_now`. A profile busy with another
    /// caller's group then queues the group on its mailbox.
    pub fn with_async_calls(mut self, on: bool) -> Self {
        self.async_calls = on;
        self
    }

    /// The engine under test.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine's profile ids, by workload profile index.
    pub fn profiles(&self) -> &[ProfileId] {
        &self.profiles
    }
}

impl Target for NumpoolTarget {
    fn name(&self) -> &'static str {
        self.name
    }

    fn select(
        &self,
        worker: usize,
        batch: &[Request],
        _now: Timestamp,
    ) -> Result<BatchOutcome, TargetError> {
        let mut out = BatchOutcome::default();
        let mut waits = self.waits.as_ref().map(|w| {
            w[worker % w.len()]
                .lock()
                .unwrap_or_else(|e| e.into_inner())
        });
        // By reference and inlined: a call per answer, moving it, cost the
        // run about 30 instructions a message (callgrind), charged to
        // numpool's figure though the floor pays nothing like it.
        let mut count = |result: &Result<Selection, Error>| -> Result<(), TargetError> {
            if let (Ok(s), Some(h)) = (result, waits.as_deref_mut()) {
                let ns = s.wait.as_nanos() as u64;
                h.saturating_record(ns.max(1));
                self.max_wait.fetch_max(ns, Ordering::Relaxed);
            }
            count(&mut out, result)
        };
        // One message: the call an embedder makes per message.
        if let [r] = batch {
            let profile = self.profiles[r.profile as usize];
            let result = if self.async_calls {
                block_on(self.engine.send(profile, r.recipient))
            } else {
                self.engine.send_now(profile, r.recipient)
            };
            count(&result)?;
            return Ok(out);
        }
        let items: Vec<(ProfileId, PhoneNumber)> = batch
            .iter()
            .map(|r| (self.profiles[r.profile as usize], r.recipient))
            .collect();
        let results = if self.async_calls {
            block_on(self.engine.send_batch(&items))
        } else {
            self.engine.send_batch_now(&items)
        };
        for result in &results {
            count(result)?;
        }
        Ok(out)
    }

    fn max_wait(&self) -> Option<u64> {
        self.waits.as_ref()?;
        Some(self.max_wait.load(Ordering::Relaxed))
    }

    fn waits(&self) -> Option<Histogram<u64>> {
        let mut all = wait_histogram();
        for h in self.waits.as_ref()? {
            all.add(&*h.lock().unwrap_or_else(|e| e.into_inner())).ok();
        }
        Some(all)
    }

    /// Live mappings only: expired ones the wheels had not reached yet
    /// are reclaimed first.
    fn live_mappings(&self) -> u64 {
        block_on(self.engine.expire_now());
        block_on(self.engine.stats()).stored_mappings as u64
    }

    fn bytes_per_mapping(&self) -> Option<f64> {
        block_on(self.engine.expire_now());
        let stats = block_on(self.engine.stats());
        (stats.stored_mappings > 0)
            .then(|| stats.sticky_heap_bytes as f64 / stats.stored_mappings as f64)
    }

    fn shutdown(&self) {
        block_on(self.engine.shutdown());
    }
}

/// Counts one selection's outcome; refusals are counted, other errors stop the run.
#[inline(always)]
fn count(out: &mut BatchOutcome, result: &Result<Selection, Error>) -> Result<(), TargetError> {
    match result {
        Ok(s) => match s.reason {
            Reason::Sticky => out.sticky += 1,
            Reason::Geomatch => out.geomatch += 1,
            Reason::Weighted | Reason::Explicit => out.weighted += 1,
        },
        Err(Error::QueueFull { .. }) => out.queue_full += 1,
        Err(Error::NoSender(_)) | Err(Error::Overloaded) | Err(Error::DailyLimit) => {
            out.failed += 1
        }
        Err(e) => return Err(failed_request(e)),
    }
    Ok(())
}

/// The error that stops a run (out of line: it never happens in a run
/// that completes).
#[cold]
#[inline(never)]
fn failed_request(e: &Error) -> TargetError {
    TargetError::Request {
        target: "numpool",
        message: e.to_string(),
    }
}
