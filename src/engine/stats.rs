//! Counters of the engine and its profiles, and expiry on demand.

use super::Engine;
use crate::error::Error;
use crate::ids::ProfileId;
use crate::selection::profile::ProfileStats;
use crate::selection::rules::ByReason;
use crate::selection::sticky::ExpireReport;

/// Counters of one profile and its mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileCounters {
    /// The profile.
    pub id: ProfileId,
    /// Its selection counters and sizes.
    pub stats: ProfileStats,
    /// Requests queued for it now.
    pub mailbox_depth: usize,
}

/// Counters of the whole engine: the sum over profiles, and each profile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Profiles.
    pub profiles: usize,
    /// Selections by reason (`Explicit`: messages sent from a sender the
    /// caller named).
    pub selections: ByReason,
    /// Selections refused.
    pub rejected: u64,
    /// Sticky mappings made.
    pub mappings_created: u64,
    /// Sticky mappings expired.
    pub expired: u64,
    /// Mappings stored (expired ones count until their wheel reaches them).
    pub stored_mappings: usize,
    /// Heap bytes of every sticky map.
    pub sticky_heap_bytes: usize,
    /// Numbers in pools.
    pub senders: usize,
    /// Requests queued in every mailbox now.
    pub mailbox_depth: usize,
    /// The deepest mailbox now.
    pub max_mailbox_depth: usize,
    /// Profiles with expiry work scheduled (an idle profile has none).
    pub expiry_scheduled: usize,
    /// Expiry slices the housekeeper has run.
    pub expiry_slices: u64,
    /// Each profile, by id.
    pub per_profile: Vec<ProfileCounters>,
}

impl EngineStats {
    fn add(&mut self, c: ProfileCounters) {
        let s = &c.stats;
        self.profiles += 1;
        self.selections.merge(&s.selections);
        self.rejected += s.rejected;
        self.mappings_created += s.mappings_created;
        self.expired += s.expired;
        self.stored_mappings += s.stored_mappings;
        self.sticky_heap_bytes += s.sticky_heap_bytes;
        self.senders += s.senders;
        self.mailbox_depth += c.mailbox_depth;
        self.max_mailbox_depth = self.max_mailbox_depth.max(c.mailbox_depth);
        self.per_profile.push(c);
    }
}

/// The engine's totals as the last census found them (see
/// [`Engine::totals`]).
#[derive(Default)]
pub(crate) struct Census {
    /// When the last census began; `None` before the first.
    began: Option<std::time::Instant>,
    running: bool,
    totals: EngineStats,
}

/// How often the housekeeper takes a census of the profiles' counters.
pub(crate) const CENSUS_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

impl Engine {
    /// The engine's totals (no per-profile rows) as the last census found
    /// them: a background thread adds up every profile's counters every
    /// 2 s, so reading them costs the same with 5 profiles or 500,000 and
    /// holds up no send (for monitoring: `/metrics`). Before the first
    /// census, zeros.
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig};
    /// let engine = Engine::start(EngineConfig::default())?;
    /// assert_eq!(engine.totals().stored_mappings, 0);
    /// # Ok::<(), numpool::StartError>(())
    /// ```
    pub fn totals(&self) -> EngineStats {
        let census = self.inner.census.lock();
        EngineStats {
            expiry_scheduled: self.inner.env.expiry.scheduled(),
            expiry_slices: self.inner.env.expiry.slices(),
            ..census.totals.clone()
        }
    }

    /// Starts a census on a thread of its own if the last one began more
    /// than [`CENSUS_EVERY`] ago (the housekeeper asks that often).
    pub(crate) fn census_if_due(&self) {
        {
            let mut census = self.inner.census.lock();
            let due = census.began.is_none_or(|at| at.elapsed() >= CENSUS_EVERY);
            if census.running || !due {
                return;
            }
            census.running = true;
            census.began = Some(std::time::Instant::now());
        }
        let engine = self.clone();
        let spawned = std::thread::Builder::new()
            .name("numpool-census".into())
            .spawn(move || {
                let mut totals = futures::executor::block_on(engine.stats());
                totals.per_profile = Vec::new();
                let mut census = engine.inner.census.lock();
                census.totals = totals;
                census.running = false;
            });
        if spawned.is_err() {
            self.inner.census.lock().running = false;
        }
    }

    /// Counters of every profile and their sum. Each profile is read under
    /// its lock for an instant; a busy profile is waited for. Costs a pass
    /// over every profile: for monitoring, [`Engine::totals`] reads the
    /// last census instead.
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, NewProfile};
    /// # futures::executor::block_on(async {
    /// let engine = Engine::start(EngineConfig::default())?;
    /// engine.create_profile(NewProfile::default()).await?;
    /// let stats = engine.stats().await;
    /// assert_eq!((stats.profiles, stats.expiry_scheduled), (1, 0));
    /// # engine.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn stats(&self) -> EngineStats {
        let mut total = EngineStats {
            expiry_scheduled: self.inner.env.expiry.scheduled(),
            expiry_slices: self.inner.env.expiry.slices(),
            ..Default::default()
        };
        for actor in self.inner.dispatcher.actors() {
            let stats = actor.lock().stats();
            if actor.is_retired() {
                continue;
            }
            total.add(ProfileCounters {
                id: actor.id,
                stats,
                mailbox_depth: actor.queued(),
            });
        }
        total.per_profile.sort_by_key(|s| s.id);
        total
    }

    /// Counters and sizes of one profile.
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, NewProfile, PhoneNumber};
    /// # futures::executor::block_on(async {
    /// # let engine = Engine::start(EngineConfig::default())?;
    /// let p = engine.create_profile(NewProfile::default()).await?.id;
    /// engine.assign_number(PhoneNumber::parse_e164("+13125550001")?, Some(p)).await?;
    /// assert_eq!(engine.profile_stats(p).await?.senders, 1);
    /// # engine.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn profile_stats(&self, profile: ProfileId) -> Result<ProfileStats, Error> {
        let _in = self.enter()?;
        let actor = self.actor_of(profile)?;
        let (stats, receipt) = actor
            .call(self.inner.config.mailbox_bound, |p, env| {
                (p.stats(), env.read_barrier_whole(p))
            })
            .await?;
        crate::journal::settle(receipt).await?;
        Ok(stats)
    }

    /// Requests queued for `profile` now (0 for an unknown profile). Read
    /// without taking the profile's lock, so it answers while it is busy.
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, NewProfile, PhoneNumber, SettingsPatch, SettingsUpdate};
    /// # futures::executor::block_on(async {
    /// # let engine = Engine::start(EngineConfig::default())?;
    /// let p = engine.create_profile(NewProfile::default()).await?.id;
    /// assert_eq!(engine.mailbox_depth(p), 0);
    /// # engine.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn mailbox_depth(&self, profile: ProfileId) -> usize {
        self.inner
            .dispatcher
            .with(profile, |a| a.queued())
            .unwrap_or(0)
    }

    /// Runs expiry to completion on every profile now. The housekeeper also
    /// does it on its own, in budgeted slices, when a profile's expiry is due.
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, NewProfile, PhoneNumber, SettingsPatch, SettingsUpdate};
    /// # futures::executor::block_on(async {
    /// # let engine = Engine::start(EngineConfig::default())?;
    /// // Nothing has expired in a new engine.
    /// assert_eq!(engine.expire_now().await.expired, 0);
    /// # engine.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn expire_now(&self) -> ExpireReport {
        let now = self.inner.now_secs();
        let mut total = ExpireReport {
            done: true,
            ..Default::default()
        };
        for actor in self.inner.dispatcher.actors() {
            let mut state = actor.lock();
            if actor.is_retired() {
                continue;
            }
            let r = state.expire(now, usize::MAX);
            total.expired += r.expired;
            total.reclaimed += r.reclaimed;
            if let Some(at) = state.wakeup_after_expiry() {
                self.inner.env.expiry.schedule(actor.id, at);
            }
        }
        total
    }
}
