//! [`Profile`]: one messaging profile's settings, pool, sticky map and
//! counters, and every operation on them. The actor layer owns one per actor.

use crate::config::SelectionConfig;
use crate::health::{DeliveryOutcome, Health, HealthConfig, HealthCounts, HealthSlice};
use crate::number::{PhoneNumber, SenderKind};
use crate::pool::{kind_index, Pool, Sender, SenderRef};
use crate::select::{select, MappingOutcome, Reason, SelectError, SelectState, Selection};
use crate::settings::{PoolSettings, SettingsError, SettingsUpdate};
use crate::sticky::{ExpireReport, Mapping, StickyMap};
use crate::weighted::SmoothWeighted;

/// A sticky mapping as the API shows it. Times are seconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StickyMapping {
    pub to: PhoneNumber,
    pub from: PhoneNumber,
    pub created_at: u32,
    pub last_used_at: u32,
    /// `None` when pinned.
    pub expires_at: Option<u32>,
    pub pinned: bool,
}

/// Why a mapping could not be pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    #[error("the sender is not in this profile's pool")]
    SenderNotInPool,
    #[error("short codes are never picked by the number pool and cannot be pinned")]
    ShortCode,
    #[error("sticky_sender is off for this profile")]
    StickyOff,
}

/// Counters of one profile, for stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProfileStats {
    pub sticky: u64,
    pub geomatch: u64,
    pub weighted: u64,
    /// Selections refused (no eligible or healthy sender, pool off).
    pub rejected: u64,
    pub mappings_created: u64,
    pub expired: u64,
    /// Mappings stored (including expired ones the wheel has not reached yet).
    pub stored_mappings: usize,
    /// Heap bytes of the sticky map.
    pub sticky_heap_bytes: usize,
    pub senders: usize,
}

/// A sender with its health, for listings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SenderInfo {
    pub number: PhoneNumber,
    pub kind: SenderKind,
    pub health: HealthCounts,
    pub unhealthy: bool,
    /// Whether a new pick could choose it now, and if not why.
    pub eligibility: Eligibility,
}

/// Whether a sender can be chosen by a new pick now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eligibility {
    Eligible,
    /// The number belongs to no profile.
    Unassigned,
    /// The profile's number pool is off.
    PoolOff,
    /// Short codes are never picked by the pool.
    ShortCode,
    /// Its kind's weight is 0.
    KindWeightZero,
    /// Unhealthy while the profile skips unhealthy numbers.
    Unhealthy,
}

impl Eligibility {
    /// The reason as the API states it (`None` when eligible).
    pub fn reason(self) -> Option<&'static str> {
        match self {
            Eligibility::Eligible => None,
            Eligibility::Unassigned => Some("not assigned to a messaging profile"),
            Eligibility::PoolOff => Some("the profile's number pool is off"),
            Eligibility::ShortCode => Some("short codes are never picked by the number pool"),
            Eligibility::KindWeightZero => Some("the weight of its kind is 0"),
            Eligibility::Unhealthy => Some("unhealthy, and the profile skips unhealthy numbers"),
        }
    }
}

/// One messaging profile's selection state.
#[derive(Debug)]
pub struct Profile {
    settings: Option<PoolSettings>,
    pool: Pool,
    sticky: StickyMap,
    weighted: SmoothWeighted,
    default_ttl: u32,
    stats: ProfileStats,
}

fn effective_ttl(settings: Option<&PoolSettings>, default_ttl: u32) -> u32 {
    settings
        .and_then(|s| s.sticky_ttl_secs)
        .map_or(default_ttl, |t| u32::try_from(t).unwrap_or(u32::MAX))
}

impl Profile {
    /// A profile with `settings` (`None`: pool off) and no senders.
    pub fn new(settings: Option<PoolSettings>, config: &SelectionConfig, now: u32) -> Self {
        let ttl = effective_ttl(settings.as_ref(), config.sticky_ttl_secs);
        Profile {
            sticky: StickyMap::new(ttl, config.sticky_shards, now),
            settings,
            pool: Pool::default(),
            weighted: SmoothWeighted::default(),
            default_ttl: config.sticky_ttl_secs,
            stats: ProfileStats::default(),
        }
    }

    /// The current settings (`None`: the pool is off).
    pub fn settings(&self) -> Option<&PoolSettings> {
        self.settings.as_ref()
    }

    /// Applies a settings update. Turning sticky off (or the pool off) clears
    /// every mapping; new weights restart the weighted cycle; a new ttl
    /// applies to live mappings (those already expired stay expired). A
    /// rejected update changes nothing.
    pub fn update_settings(
        &mut self,
        update: &SettingsUpdate,
        now: u32,
    ) -> Result<(), SettingsError> {
        let new = update.apply(self.settings.as_ref())?;
        let sticky_on = |s: Option<&PoolSettings>| s.is_some_and(|s| s.sticky_sender);
        if sticky_on(self.settings.as_ref()) && !sticky_on(new.as_ref()) {
            self.sticky.clear(now);
        }
        let weights =
            |s: Option<&PoolSettings>| s.map(|s| (s.long_code_weight, s.toll_free_weight));
        if weights(self.settings.as_ref()) != weights(new.as_ref()) {
            self.weighted.reset();
        }
        let ttl = effective_ttl(new.as_ref(), self.default_ttl);
        if ttl != self.sticky.ttl() {
            self.sticky.set_ttl(ttl, now);
        }
        self.settings = new;
        Ok(())
    }

    /// Chooses the sender for one message to `recipient`.
    #[inline]
    pub fn select(
        &mut self,
        recipient: PhoneNumber,
        now: u32,
        health: &HealthConfig,
    ) -> Result<Selection, SelectError> {
        self.select_with(recipient, now, health, false)
    }

    /// [`Profile::select`], also reporting a reused mapping's previous use
    /// (for the journal's coarse touches).
    #[inline]
    pub fn select_tracked(
        &mut self,
        recipient: PhoneNumber,
        now: u32,
        health: &HealthConfig,
    ) -> Result<Selection, SelectError> {
        self.select_with(recipient, now, health, true)
    }

    #[inline]
    fn select_with(
        &mut self,
        recipient: PhoneNumber,
        now: u32,
        health: &HealthConfig,
        track: bool,
    ) -> Result<Selection, SelectError> {
        let Some(settings) = &self.settings else {
            self.stats.rejected += 1;
            return Err(SelectError::PoolDisabled);
        };
        let state = SelectState {
            pool: &mut self.pool,
            sticky: &mut self.sticky,
            weighted: &mut self.weighted,
        };
        let result = select(settings, state, health, recipient, now, track);
        match &result {
            Ok(s) => {
                match s.reason {
                    Reason::Sticky => self.stats.sticky += 1,
                    Reason::Geomatch => self.stats.geomatch += 1,
                    Reason::Weighted => self.stats.weighted += 1,
                }
                if s.mapping == MappingOutcome::Created {
                    self.stats.mappings_created += 1;
                }
            }
            Err(_) => self.stats.rejected += 1,
        }
        result
    }

    /// Adds a sender (with the health it brings from another profile).
    /// Existing mappings are untouched.
    pub fn add_sender(&mut self, number: PhoneNumber, health: Health) {
        self.pool.add(number, health);
    }

    /// Removes a sender; every mapping to it is cleared at once.
    pub fn remove_sender(&mut self, number: PhoneNumber) -> Option<Sender> {
        self.pool.remove(number)
    }

    /// Whether `number` is in this profile's pool.
    pub fn has_sender(&self, number: PhoneNumber) -> bool {
        self.pool.lookup(number).is_some()
    }

    /// Records a delivery outcome for `number`; `false` if it is not here.
    pub fn record_outcome(
        &mut self,
        number: PhoneNumber,
        outcome: DeliveryOutcome,
        now: u32,
        config: &HealthConfig,
    ) -> bool {
        match self.pool.sender_mut(number) {
            Some(sender) => {
                sender.health.record(outcome, now, config);
                true
            }
            None => false,
        }
    }

    /// The senders in joining order, with their health at `now`.
    pub fn senders(&self, now: u32, config: &HealthConfig) -> Vec<SenderInfo> {
        self.pool
            .senders()
            .into_iter()
            .map(|s| self.info(s, now, config))
            .collect()
    }

    /// One sender with its health at `now`, if it is in the pool.
    pub fn sender(
        &self,
        number: PhoneNumber,
        now: u32,
        config: &HealthConfig,
    ) -> Option<SenderInfo> {
        let r = self.pool.lookup(number)?;
        Some(self.info(self.pool.resolve(r)?, now, config))
    }

    fn info(&self, s: &Sender, now: u32, config: &HealthConfig) -> SenderInfo {
        let unhealthy = s.health.is_unhealthy(now, config);
        let eligibility = match (&self.settings, kind_index(s.kind)) {
            (None, _) => Eligibility::PoolOff,
            (_, None) => Eligibility::ShortCode,
            (Some(settings), Some(k)) => {
                if [settings.long_code_weight, settings.toll_free_weight][k] <= 0.0 {
                    Eligibility::KindWeightZero
                } else if settings.skip_unhealthy && unhealthy {
                    Eligibility::Unhealthy
                } else {
                    Eligibility::Eligible
                }
            }
        };
        SenderInfo {
            number: s.number,
            kind: s.kind,
            health: s.health.counts(now, config),
            unhealthy,
            eligibility,
        }
    }

    fn in_pool(&self) -> impl Fn(SenderRef) -> bool + '_ {
        |r| self.pool.resolve(r).is_some()
    }

    fn record(&self, m: Mapping) -> Option<StickyMapping> {
        Some(StickyMapping {
            to: m.recipient,
            from: self.pool.resolve(m.sender)?.number,
            created_at: m.created_at,
            last_used_at: m.last_used,
            expires_at: m.expires_at,
            pinned: m.pinned,
        })
    }

    /// The live mapping of `recipient`, if any.
    pub fn mapping(&self, recipient: PhoneNumber, now: u32) -> Option<StickyMapping> {
        self.record(self.sticky.get(recipient, now, self.in_pool())?)
    }

    /// Every live mapping, ordered by recipient.
    pub fn mappings(&self, now: u32) -> Vec<StickyMapping> {
        self.sticky
            .live(now, self.in_pool())
            .into_iter()
            .filter_map(|m| self.record(m))
            .collect()
    }

    /// Number of parts [`Profile::mappings_part`] divides the mappings into.
    pub fn mapping_parts(&self) -> usize {
        self.sticky.shard_count()
    }

    /// The live mappings of one part (a shard of the sticky map), unordered.
    pub fn mappings_part(&self, part: usize, now: u32) -> Vec<StickyMapping> {
        self.sticky
            .live_in_shard(part, now, self.in_pool())
            .into_iter()
            .filter_map(|m| self.record(m))
            .collect()
    }

    /// Pins `recipient` to `sender`, which must be a pickable sender of this pool.
    pub fn pin(
        &mut self,
        recipient: PhoneNumber,
        sender: PhoneNumber,
        now: u32,
    ) -> Result<StickyMapping, PinError> {
        if !self.settings.as_ref().is_some_and(|s| s.sticky_sender) {
            return Err(PinError::StickyOff);
        }
        let r = self.pool.lookup(sender).ok_or(PinError::SenderNotInPool)?;
        if kind_index(sender.kind()).is_none() {
            return Err(PinError::ShortCode);
        }
        self.sticky.pin(recipient, r, now);
        Ok(self
            .mapping(recipient, now)
            .expect("a pinned mapping is live"))
    }

    /// Breaks the mapping of `recipient`; returns it if it was live.
    pub fn unmap(&mut self, recipient: PhoneNumber, now: u32) -> Option<StickyMapping> {
        let removed = self
            .sticky
            .remove(recipient, now, |r| self.pool.resolve(r).is_some())?;
        self.record(removed)
    }

    /// Lets the timing wheels reach `now`, visiting at most `budget` entries.
    pub fn expire(&mut self, now: u32, budget: usize) -> ExpireReport {
        let pool = &self.pool;
        let report = self
            .sticky
            .expire(now, budget, |r| pool.resolve(r).is_some());
        self.stats.expired += report.expired as u64;
        report
    }

    /// Counters and sizes.
    pub fn stats(&self) -> ProfileStats {
        ProfileStats {
            stored_mappings: self.sticky.stored(),
            sticky_heap_bytes: self.sticky.heap_bytes(),
            senders: self.pool.len(),
            ..self.stats
        }
    }

    /// Heap bytes of the sticky map.
    pub fn sticky_heap_bytes(&self) -> usize {
        self.sticky.heap_bytes()
    }

    /// Sets the settings to `settings` as they were at `at` (recovery).
    pub fn restore_settings(&mut self, settings: Option<PoolSettings>, at: u32) {
        let update = match settings {
            None => SettingsUpdate::Disable,
            Some(s) => SettingsUpdate::Merge(crate::settings::SettingsPatch {
                sticky_sender: Some(s.sticky_sender),
                geomatch: Some(s.geomatch),
                long_code_weight: Some(s.long_code_weight),
                toll_free_weight: Some(s.toll_free_weight),
                skip_unhealthy: Some(s.skip_unhealthy),
                sticky_ttl_secs: s.sticky_ttl_secs,
                geomatch_region_fallback: Some(s.geomatch_region_fallback),
            }),
        };
        let _ = self.update_settings(&update, at);
    }

    /// Puts back a mapping to `from` as it was (recovery); ignored if `from`
    /// is not in the pool.
    pub fn restore_mapping(
        &mut self,
        to: PhoneNumber,
        from: PhoneNumber,
        created_at: u32,
        last_used: u32,
        pinned: bool,
    ) {
        if let Some(r) = self.pool.lookup(from) {
            self.sticky.restore(to, r, created_at, last_used, pinned);
        }
    }

    /// Moves a mapping's last use forward (recovery).
    pub fn restore_touch(&mut self, to: PhoneNumber, last_used: u32) {
        self.sticky.restore_touch(to, last_used);
    }

    /// Sets a sender's health to `slices` (recovery).
    pub fn restore_health(
        &mut self,
        sender: PhoneNumber,
        slices: &[HealthSlice],
        config: &HealthConfig,
    ) {
        if let Some(s) = self.pool.sender_mut(sender) {
            s.health = Health::from_slices(slices, config);
        }
    }

    /// The senders with their health slices, in joining order (snapshots).
    pub fn sender_states(&self) -> Vec<(PhoneNumber, Vec<HealthSlice>)> {
        self.pool
            .senders()
            .into_iter()
            .map(|s| (s.number, s.health.slices()))
            .collect()
    }

    /// Removes every sender (the profile is being deleted), returning them.
    pub fn drain_senders(&mut self) -> Vec<Sender> {
        self.pool.drain()
    }
}
