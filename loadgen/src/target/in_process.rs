//! numpool in-process: the [`Engine`] with a manual clock.

use std::sync::Arc;

use futures::executor::block_on;
use numpool::test_util::ManualClock;
use numpool::{
    DeliveryOutcome, Dispatch, Engine, EngineConfig, Error, JournalConfig, NewProfile, PhoneNumber,
    ProfileId, Reason, Selection, SettingsPatch, SettingsUpdate, Timestamp,
};

use super::{BatchOutcome, Target, TargetError};
use crate::workload::{Request, Workload};

/// Pool settings of a loadgen profile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolFlags {
    pub sticky: bool,
    pub geomatch: bool,
    pub skip_unhealthy: bool,
    pub ttl_secs: u64,
}

impl PoolFlags {
    /// The settings as a profile update.
    pub fn settings(&self) -> SettingsUpdate {
        SettingsUpdate::Merge(SettingsPatch {
            sticky_sender: Some(self.sticky),
            geomatch: Some(self.geomatch),
            skip_unhealthy: Some(self.skip_unhealthy),
            long_code_weight: Some(4.0),
            toll_free_weight: Some(1.0),
            sticky_ttl_secs: Some(self.ttl_secs.max(1)),
            ..Default::default()
        })
    }
}

pub struct NumpoolTarget {
    engine: Engine,
    profiles: Vec<ProfileId>,
    name: &'static str,
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
    ) -> Result<Self, TargetError> {
        Self::start_with(workload, flags, clock, None)
    }

    /// Like [`NumpoolTarget::start`], journaling to `journal` if given,
    /// with requests reaching profiles as `dispatch` says.
    pub fn start_with(
        workload: &Workload,
        flags: PoolFlags,
        clock: Arc<ManualClock>,
        journal: Option<JournalConfig>,
    ) -> Result<Self, TargetError> {
        Self::start_dispatch(workload, flags, clock, journal, Dispatch::CallerRuns)
    }

    /// The engine with every request through its profile's mailbox (the
    /// `mailbox` engine: what the actor hop costs, for comparison).
    pub fn start_mailbox(
        workload: &Workload,
        flags: PoolFlags,
        clock: Arc<ManualClock>,
    ) -> Result<Self, TargetError> {
        Self::start_dispatch(workload, flags, clock, None, Dispatch::Mailbox)
    }

    fn start_dispatch(
        workload: &Workload,
        flags: PoolFlags,
        clock: Arc<ManualClock>,
        journal: Option<JournalConfig>,
        dispatch: Dispatch,
    ) -> Result<Self, TargetError> {
        let name = match (&journal, dispatch) {
            (Some(_), _) => "journal",
            (None, Dispatch::Mailbox) => "mailbox",
            (None, Dispatch::CallerRuns) => "numpool",
        };
        let config = EngineConfig {
            journal,
            dispatch,
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
        Ok(NumpoolTarget {
            engine,
            profiles,
            name,
        })
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
        _worker: usize,
        batch: &[Request],
        _now: Timestamp,
    ) -> Result<BatchOutcome, TargetError> {
        let mut out = BatchOutcome::default();
        // One message: the call an embedder makes per message.
        if let [r] = batch {
            let result = self
                .engine
                .send_now(self.profiles[r.profile as usize], r.recipient);
            count(&mut out, result)?;
            return Ok(out);
        }
        let items: Vec<(ProfileId, PhoneNumber)> = batch
            .iter()
            .map(|r| (self.profiles[r.profile as usize], r.recipient))
            .collect();
        for result in self.engine.send_batch_now(&items) {
            count(&mut out, result)?;
        }
        Ok(out)
    }

    fn live_mappings(&self) -> u64 {
        block_on(self.engine.stats()).stored_mappings as u64
    }

    fn bytes_per_mapping(&self) -> Option<f64> {
        let stats = block_on(self.engine.stats());
        (stats.stored_mappings > 0)
            .then(|| stats.sticky_heap_bytes as f64 / stats.stored_mappings as f64)
    }

    fn shutdown(&self) {
        block_on(self.engine.shutdown());
    }
}

/// Counts one selection's outcome; refusals are counted, other errors stop the run.
fn count(out: &mut BatchOutcome, result: Result<Selection, Error>) -> Result<(), TargetError> {
    match result {
        Ok(s) => match s.reason {
            Reason::Sticky => out.sticky += 1,
            Reason::Geomatch => out.geomatch += 1,
            Reason::Weighted => out.weighted += 1,
        },
        Err(Error::NoSender(_)) | Err(Error::Overloaded) => out.failed += 1,
        Err(e) => {
            return Err(TargetError::Request {
                target: "numpool",
                message: e.to_string(),
            })
        }
    }
    Ok(())
}
