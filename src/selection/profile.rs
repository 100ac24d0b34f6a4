//! [`ProfileState`]: one messaging profile's settings, pool, sticky map and
//! counters, and every operation on them. The engine's actor for the
//! profile owns one; recovery builds them before any actor exists.

use super::health::{DeliveryOutcome, Health, HealthConfig, HealthCounts, HealthSlice};
use super::pool::{kind_index, Pool, Sender, SenderRef};
use super::rules::{
    eligibility, select, Eligibility, MappingOutcome, NoSender, Reason, SelectState, Selection,
};
use super::sticky::{ExpireReport, MapPosition, Mapping, StickyMap};
use super::weighted::SmoothWeighted;
use crate::number::{PhoneNumber, SenderKind};
use crate::settings::PoolSettings;

/// A sticky mapping as the API shows it. Times are seconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StickyMapping {
    /// The recipient.
    pub to: PhoneNumber,
    /// The sender it is mapped to.
    pub from: PhoneNumber,
    /// When the mapping was made.
    pub created_at: u32,
    /// When it was last used (its ttl runs from here).
    pub last_used_at: u32,
    /// When it expires; `None` when pinned.
    pub expires_at: Option<u32>,
    /// Pinned mappings do not expire until removed.
    pub pinned: bool,
}

/// Why a mapping could not be pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    /// The sender is not one of the profile's numbers.
    #[error("the sender is not in this profile's pool")]
    SenderNotInPool,
    /// Short codes are never picked, so they cannot be pinned either.
    #[error("short codes are never picked by the number pool and cannot be pinned")]
    ShortCode,
    /// Pins are sticky mappings: sticky sender must be on.
    #[error("sticky_sender is off for this profile")]
    StickyOff,
    /// The recipient's shard of the sticky map is full (2^24 mappings).
    #[error("this profile holds as many sticky mappings as it can")]
    Full,
}

/// Counters of one profile, for stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProfileStats {
    /// Selections that reused a sticky mapping.
    pub sticky: u64,
    /// Selections by geomatch.
    pub geomatch: u64,
    /// Selections by the weighted round-robin.
    pub weighted: u64,
    /// Selections refused (no eligible or healthy sender, pool off).
    pub rejected: u64,
    /// Sticky mappings made.
    pub mappings_created: u64,
    /// Sticky mappings expired.
    pub expired: u64,
    /// Mappings stored (including expired ones the wheel has not reached yet).
    pub stored_mappings: usize,
    /// Heap bytes of the sticky map.
    pub sticky_heap_bytes: usize,
    /// Numbers in the pool.
    pub senders: usize,
}

/// A sender with its health, for listings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SenderInfo {
    pub number: PhoneNumber,
    pub kind: SenderKind,
    pub health: HealthCounts,
    pub unhealthy: bool,
    /// Whether a new pick could choose it now, and if not why.
    pub eligibility: Eligibility,
}

/// One messaging profile's selection state.
#[derive(Debug)]
pub(crate) struct ProfileState {
    settings: Option<PoolSettings>,
    pool: Pool,
    sticky: StickyMap,
    weighted: SmoothWeighted,
    default_ttl: u32,
    stats: ProfileStats,
    /// The earliest expiry work the engine has been told about.
    reported_due: Option<u32>,
}

fn effective_ttl(settings: Option<&PoolSettings>, default_ttl: u32) -> u32 {
    settings
        .and_then(|s| s.sticky_ttl_secs)
        .map_or(default_ttl, |t| u32::try_from(t).unwrap_or(u32::MAX))
}

impl ProfileState {
    /// A profile with `settings` (`None`: pool off) and no senders; mappings
    /// live `default_ttl` seconds unless the settings say otherwise, in a
    /// sticky map of `shards` shards.
    pub fn new(settings: Option<PoolSettings>, default_ttl: u32, shards: usize) -> Self {
        let ttl = effective_ttl(settings.as_ref(), default_ttl);
        let mut pool = Pool::default();
        if settings.as_ref().is_some_and(|s| s.geomatch) {
            pool.enable_geo();
        }
        ProfileState {
            sticky: StickyMap::new(ttl, shards),
            settings,
            pool,
            weighted: SmoothWeighted::default(),
            default_ttl,
            stats: ProfileStats::default(),
            reported_due: None,
        }
    }

    /// After a mapping was made or pinned at `now`: the time expiry has work
    /// to do, if that is earlier than the engine was told before (so the
    /// engine schedules expiry without hearing about every mapping).
    #[inline]
    pub fn wakeup_after_mapping(&mut self, now: u32) -> Option<u32> {
        let due = now.saturating_add(self.sticky.ttl());
        if self.reported_due.is_none_or(|d| due < d) {
            self.reported_due = Some(due);
            Some(due)
        } else {
            None
        }
    }

    /// After an expiry pass (or recovery): when expiry next has work, now
    /// reported to the engine.
    pub fn wakeup_after_expiry(&mut self) -> Option<u32> {
        self.reported_due = self.sticky.next_due();
        self.reported_due
    }

    /// Makes `new` the settings. Turning sticky off (or the pool off)
    /// clears every mapping; new weights restart the weighted cycle; a new
    /// ttl applies to live mappings (those already expired stay expired).
    pub fn set_settings(&mut self, new: Option<PoolSettings>, now: u32) {
        if new.as_ref().is_some_and(|s| s.geomatch) {
            self.pool.enable_geo();
        }
        let sticky_on = |s: Option<&PoolSettings>| s.is_some_and(|s| s.sticky_sender);
        if sticky_on(self.settings.as_ref()) && !sticky_on(new.as_ref()) {
            self.sticky.clear();
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
    }

    /// Chooses the sender for one message to `recipient`.
    #[inline]
    pub fn select(
        &mut self,
        recipient: PhoneNumber,
        now: u32,
        health: &HealthConfig,
    ) -> Result<Selection, NoSender> {
        self.select_with(recipient, now, health, false)
    }

    /// [`ProfileState::select`], also reporting a reused mapping's previous use
    /// (for the journal's coarse touches).
    #[inline]
    pub fn select_tracked(
        &mut self,
        recipient: PhoneNumber,
        now: u32,
        health: &HealthConfig,
    ) -> Result<Selection, NoSender> {
        self.select_with(recipient, now, health, true)
    }

    #[inline]
    fn select_with(
        &mut self,
        recipient: PhoneNumber,
        now: u32,
        health: &HealthConfig,
        track: bool,
    ) -> Result<Selection, NoSender> {
        let Some(settings) = &self.settings else {
            self.stats.rejected += 1;
            return Err(NoSender::PoolDisabled);
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

    /// Prefetches what selecting for `recipient` will read (see
    /// [`StickyMap::prefetch`]); batches call it a few recipients ahead.
    #[inline]
    pub fn prefetch(&self, recipient: PhoneNumber, stage: u8) {
        if self.settings.as_ref().is_some_and(|s| s.sticky_sender) {
            self.sticky.prefetch(recipient, stage);
        }
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
        SenderInfo {
            number: s.number,
            kind: s.kind,
            health: s.health.counts(now, config),
            unhealthy: s.health.is_unhealthy(now, config),
            eligibility: eligibility(self.settings.as_ref(), s, now, config),
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

    /// One page of the live mappings (of `sender` only, if given), in
    /// storage order from `from`; see [`StickyMap::page`].
    pub fn mappings_page(
        &self,
        from: MapPosition,
        limit: usize,
        budget: usize,
        sender: Option<PhoneNumber>,
        now: u32,
    ) -> (Vec<StickyMapping>, Option<MapPosition>) {
        let only = sender.map(|n| self.pool.lookup(n));
        let (page, next) = self.sticky.page(from, limit, budget, now, |r| {
            self.pool.resolve(r).is_some() && only.is_none_or(|o| o == Some(r))
        });
        (
            page.into_iter().filter_map(|m| self.record(m)).collect(),
            next,
        )
    }

    /// Number of parts [`ProfileState::mappings_part`] divides the mappings into.
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
        if !self.sticky.pin(recipient, r, now) {
            return Err(PinError::Full);
        }
        self.mapping(recipient, now).ok_or(PinError::Full)
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

/// Moves `number` out of `from` (if given and it holds the number) into `to`
/// (if given), with its health: the one implementation of a number changing
/// pools, shared by the engine and by recovery. Mappings to it in `from`
/// become stale at once; `to`'s mappings are untouched.
pub(crate) fn move_sender(
    number: PhoneNumber,
    from: Option<&mut ProfileState>,
    to: Option<&mut ProfileState>,
) {
    let health = from
        .and_then(|p| p.remove_sender(number))
        .map(|s| s.health)
        .unwrap_or_default();
    if let Some(p) = to {
        p.add_sender(number, health);
    }
}
