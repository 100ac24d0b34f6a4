//! What the journal and snapshots read out of a [`ProfileState`] and put
//! back at recovery: the profile record's settings, daily counts, mappings
//! as they were, health.

use super::{ProfileState, Shape, StickyMapping};
use crate::number::PhoneNumber;
use crate::resources::ProfileRecord;
use crate::selection::capacity::{profile_block, reserved, Limits, INFORMING_BLOCK};
use crate::selection::compliance::Destinations;
use crate::selection::health::{Health, HealthConfig, HealthSlice};
use crate::selection::sticky::{Mapping, Recipients};

/// A sender's counters of one day, as snapshots keep them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DailyCounts {
    pub sender: PhoneNumber,
    pub day: i32,
    pub messages: u32,
    pub new_recipients: u32,
}

impl ProfileState {
    /// The state of a new profile with `record`'s settings: the one way a
    /// profile's state is made, by a live create, by recovery and by a
    /// cluster standby. The record's values were checked when it was made;
    /// one that no longer parses (a time zone this build lacks, a region
    /// code it does not know) falls back as `Limits::recovered` and
    /// `Destinations::recovered` say.
    pub(crate) fn from_record(record: &ProfileRecord, shape: Shape) -> Self {
        let limits = Limits::recovered(&record.capacity);
        let mut state = ProfileState::new(record.number_pool_settings.clone(), limits, shape);
        let destinations = Destinations::recovered(&record.whitelisted_destinations);
        state.set_compliance(record.enabled, destinations);
        state
    }

    /// Applies a changed profile record at `at_ms` (settings, limits,
    /// compliance): the one rule for a live update, recovery and a cluster
    /// standby. Returns whether the daily limits' time zone changed (then
    /// the day's counts were re-read in the new zone).
    pub(crate) fn apply_record(&mut self, record: &ProfileRecord, at_ms: u64) -> bool {
        self.set_settings(record.number_pool_settings.clone(), (at_ms / 1000) as u32);
        let rezoned = self
            .set_limits(Limits::recovered(&record.capacity), at_ms)
            .is_some();
        let destinations = Destinations::recovered(&record.whitelisted_destinations);
        self.set_compliance(record.enabled, destinations);
        rezoned
    }

    /// Today's counters of every sender that has any, and the profile's
    /// (snapshots and the journal keep them).
    pub(crate) fn daily_counts(&self) -> (i32, u32, Vec<DailyCounts>) {
        let day = self.today.index;
        let senders = self
            .pool
            .occupied()
            .filter_map(|(slot, s)| {
                let load = self.pool.load(slot);
                (load.day == day && load.messages > 0).then_some(DailyCounts {
                    sender: s.number,
                    day,
                    messages: load.messages,
                    new_recipients: load.new_recipients,
                })
            })
            .collect();
        (day, self.tally.messages_today, senders)
    }

    /// The counters of one sender, for the journal after a counted send.
    pub(crate) fn daily_count(&self, sender: PhoneNumber) -> Option<DailyCounts> {
        let load = self.pool.load(self.pool.lookup(sender)?.slot);
        Some(DailyCounts {
            sender,
            day: load.day,
            messages: load.messages,
            new_recipients: load.new_recipients,
        })
    }

    /// The counters a journal keeps for a counted send from `sender`:
    /// today's count of the profile and of the sender, each rounded up to
    /// the end of its block (see `profile_block`). The journal writes them
    /// when a send starts a new block ([`Selection::starts_block`]), so a
    /// crash can lose no count: recovery reads the reservation back, which
    /// errs on the side of the caps.
    pub(crate) fn daily_reservation(&self, sender: PhoneNumber) -> (i32, u32, Option<DailyCounts>) {
        let mut counts = self.daily_count(sender);
        let sticky = self.settings.as_ref().is_some_and(|s| s.sticky_sender);
        let cap = self.limits.new_recipients_per_sender;
        if let Some(c) = &mut counts {
            c.messages = reserved(c.messages, INFORMING_BLOCK);
            // With sticky sender on, the journaled mappings count them
            // again; without, the reservation bounds them.
            if cap.is_some() && !sticky {
                c.new_recipients = reserved(c.new_recipients, profile_block(cap));
            }
        }
        (self.today.index, self.tally.reserved_today, counts)
    }

    /// Puts back daily counters (recovery): the profile's count of `day`,
    /// and a sender's. Records are replayed in the order they were
    /// written, so the last one holds: an exact count (a snapshot, a clean
    /// shutdown) or a block's reservation, which bounds the count from
    /// above. Counters of another day than the one holding `now_ms` are
    /// dropped (they would read as zero anyway).
    pub(crate) fn restore_daily(
        &mut self,
        now_ms: u64,
        day: i32,
        profile_messages: u32,
        sender: Option<DailyCounts>,
    ) {
        self.roll_day(now_ms);
        if day != self.today.index {
            return;
        }
        self.tally.messages_today = profile_messages;
        self.tally.reserved_today = profile_messages;
        if let Some(c) = sender {
            if let Some(r) = self.pool.lookup(c.sender) {
                let load = self.pool.load_mut(r.slot);
                load.start_day(day);
                load.messages = c.messages;
                load.new_recipients = c.new_recipients;
            }
        }
    }

    /// Counts a new recipient of `sender` made at `at` seconds (recovery
    /// replays the mappings selections made; each was a new recipient).
    pub(crate) fn restore_new_recipient(&mut self, sender: PhoneNumber, at: u32, now_ms: u64) {
        self.roll_day(now_ms);
        if !self.today.holds(u64::from(at) * 1000) {
            return;
        }
        let day = self.today.index;
        if let Some(r) = self.pool.lookup(sender) {
            let load = self.pool.load_mut(r.slot);
            if load.day != day {
                load.start_day(day);
            }
            load.new_recipients = load.new_recipients.saturating_add(1);
        }
    }

    /// Puts back a mapping to `from` as it was (recovery); ignored if `from`
    /// is not in the pool.
    pub(crate) fn restore_mapping(
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

    /// Puts back many mappings as a snapshot holds them (recovery): with
    /// [`ProfileState::finish_restore`] after the last of them, the same as
    /// [`ProfileState::restore_mapping`] for each in turn, faster for many.
    /// Nothing else may touch the sticky map in between (see
    /// `StickyMap::restore_unindexed`).
    pub(crate) fn restore_mappings(&mut self, saved: &[StickyMapping], repeats: Recipients) {
        let pool = &self.pool;
        let mappings = saved.iter().filter_map(|m| {
            Some(Mapping {
                recipient: m.to,
                sender: pool.lookup(m.from)?,
                created_at: m.created_at,
                last_used: m.last_used_at,
                expires_at: None,
                pinned: m.pinned,
            })
        });
        self.sticky.restore_unindexed(mappings, repeats);
    }

    /// Makes what [`ProfileState::restore_mappings`] and
    /// [`ProfileState::restore_opt_outs`] put back findable: indexes the
    /// mappings and inserts the opt-outs.
    pub(crate) fn finish_restore(&mut self) {
        self.sticky.index_restored();
        self.opt_outs.insert_staged();
    }

    /// Moves a mapping's last use forward (recovery).
    pub(crate) fn restore_touch(&mut self, to: PhoneNumber, last_used: u32) {
        self.sticky.restore_touch(to, last_used);
    }

    /// Sets a sender's health to `slices` (recovery).
    pub(crate) fn restore_health(
        &mut self,
        sender: PhoneNumber,
        slices: &[HealthSlice],
        config: &HealthConfig,
    ) {
        if let Some(s) = self.pool.sender_mut(sender) {
            s.health = Health::from_slices(slices, config);
        }
    }

    /// After a send that moved a sender's queue: `true` the first time
    /// since the queue ends were last written, so the engine lists the
    /// profile for the next write (see [`ProfileState::queue_changes`]).
    #[inline]
    pub(crate) fn list_queues(&mut self) -> bool {
        !std::mem::replace(&mut self.queues_listed, true)
    }

    /// The senders whose queue end moved since the last call, at most
    /// `max`, with where their queues end; `true` if more remain (the
    /// profile stays listed).
    pub(crate) fn queue_changes(&mut self, max: usize, out: &mut Vec<(PhoneNumber, u64)>) -> bool {
        let more = self.pool.queue_changes(max, out);
        self.queues_listed = more;
        more
    }

    /// Every sender's queue end (snapshots).
    pub(crate) fn queue_ends(&self) -> Vec<(PhoneNumber, u64)> {
        self.pool.queue_ends()
    }

    /// Sets the senders' queue ends as the journal has them.
    pub(crate) fn restore_queue_ends(&mut self, ends: &[(PhoneNumber, u64)]) {
        for &(sender, end) in ends {
            self.pool.restore_queue_end(sender, end);
        }
    }

    /// The senders with their health slices, in joining order (snapshots).
    pub(crate) fn sender_states(&self) -> Vec<(PhoneNumber, Vec<HealthSlice>)> {
        self.pool
            .senders()
            .into_iter()
            .map(|s| (s.number, s.health.slices()))
            .collect()
    }
}
