//! [`ProfileState`]: one messaging profile's settings, pool, sticky map and
//! counters, and every operation on them. The engine's actor for the
//! profile owns one; recovery builds them before any actor exists.
//! Reading and changing its mappings is in `profile/mappings.rs`; what the
//! journal and snapshots read out of a profile and put back, in
//! `profile/journaled.rs`.
//!
//! (Over 600 lines: the selection path, sender capacity and compliance all
//! read and change the same fields under one borrow; the hot path keeps
//! them in one `impl` so each send is one pass over one struct.)

mod journaled;
mod mappings;

pub(crate) use journaled::DailyCounts;

use std::sync::Arc;
use std::time::Duration;

use super::capacity::{
    busy_ns, profile_block, reserved, starts_block, CapacityConfig, Day, Limits, INFORMING_BLOCK,
};
use super::compliance::{Destinations, OptOut, OptOuts};
use super::health::{DeliveryOutcome, HealthConfig, HealthCounts};
use super::pool::{Carried, Pool};
use super::rules::{
    choose, eligibility, ByReason, Chosen, Context, Eligibility, MappingOutcome, NoSender, Reason,
    Refusal, SelectState, Selection,
};
use super::select_at::SelectAt;
use super::sticky::{ExpireReport, Hint, PeekTable, StickyMap};
use super::unsettled::Unsettled;
use super::weighted::SmoothWeighted;
use crate::clock::Timestamp;
use crate::number::{PhoneNumber, SenderKind};
use crate::resources::NumberRecord;
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

/// The counters every send writes, on cache lines of their own: the first
/// line holds the day's counts and every counter a send moves (the stats'
/// later fields are filled in when read). Two threads sending to one
/// profile take turns holding it, and each line a send writes must come
/// over from the other core: the fewer lines, the shorter the turn. The
/// alignment also leaves the profile's lock alone in its line, so the
/// thread spinning on it does not pull these away from the holder.
/// Measured with `cargo bench --bench embedder`; it costs an idle profile
/// about 0.2 KB of padding.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
struct SendTally {
    /// Messages the profile sent today.
    messages_today: u32,
    /// The count the journal holds for today (a block's end): a send past
    /// it reserves the next block.
    reserved_today: u32,
    stats: ProfileStats,
}

/// Counters of one profile, for stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct ProfileStats {
    /// Selections by reason (`Explicit`: messages sent from a sender the
    /// caller named).
    pub selections: ByReason,
    /// Sends refused (compliance, caps, no eligible or healthy sender,
    /// pool off), explicit ones included.
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
    /// Recipients opted out.
    pub opt_outs: usize,
    /// Heap bytes of the opt-outs.
    pub opt_out_heap_bytes: usize,
}

/// A sender's capacity now, as the API shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Capacity {
    /// Its rate: its own, or its kind's default.
    pub messages_per_second: f64,
    /// How long a message given to it now would wait.
    pub wait: Duration,
    /// Messages given to it today (the profile's day).
    pub messages_today: u32,
    /// New mappings it took today.
    pub new_recipients_today: u32,
}

/// A sender with its health and capacity, for listings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SenderInfo {
    pub number: PhoneNumber,
    pub kind: SenderKind,
    pub health: HealthCounts,
    pub unhealthy: bool,
    /// Whether a new pick could choose it now, and if not why.
    pub eligibility: Eligibility,
    pub capacity: Capacity,
    /// Recipients mapped to it, pinned ones included (live only once the
    /// profile's expiry has reached now: see [`ProfileState::reap`]).
    pub mappings: u32,
    /// Of those, the pinned ones.
    pub pinned: u32,
    /// Opt-outs that came in through it (they stay when it leaves).
    pub opt_outs: u32,
}

/// What every profile of an engine shares, fixed for its life.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Shape {
    /// Sticky ttl when the settings do not set one.
    pub default_ttl: u32,
    /// Shards of the sticky map.
    pub shards: usize,
    /// Queues, caps and rates.
    pub capacity: CapacityConfig,
}

/// A day of a time zone no longer in force: until it ends, the sends of it
/// still count against the daily limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HeldDay {
    start_ms: i64,
    end_ms: i64,
    messages: u32,
}

/// One messaging profile's selection state.
#[derive(Debug)]
pub(crate) struct ProfileState {
    settings: Option<PoolSettings>,
    pool: Pool,
    sticky: StickyMap,
    weighted: SmoothWeighted,
    shape: Shape,
    limits: Limits,
    /// Today in the profile's time zone.
    today: Day,
    /// What every send writes, together.
    tally: SendTally,
    /// Messages the profile sent the day before `today` (0 when `today` did
    /// not follow it): a change of time zone may start the new zone's day
    /// before the old zone's today began.
    messages_yesterday: u32,
    /// After a change of time zone: the old zone's day, still counted (and
    /// capped) until it ends.
    held: Option<HeldDay>,
    /// The earliest expiry work the engine has been told about.
    reported_due: Option<u32>,
    /// `false`: every send is refused.
    enabled: bool,
    /// Where the profile may send.
    destinations: Destinations,
    /// Recipients who opted out.
    opt_outs: OptOuts,
    /// What of this state is still on its way to the journal: a reply that
    /// read it waits until it is written.
    unsettled: Unsettled,
    /// The engine was told that a sender's queue moved, and has not yet
    /// written where the queues end now.
    queues_listed: bool,
}

/// What a selection at `now_ms` knows besides the profile's pool.
#[inline]
fn context<'h>(
    limits: &Limits,
    shape: &Shape,
    day: i32,
    at: SelectAt,
    health: &'h HealthConfig,
) -> Context<'h> {
    Context {
        health,
        at,
        day,
        max_queue_ns: limits.max_queue_ns,
        new_recipients_per_sender: limits.new_recipients_per_sender,
        capacity: shape.capacity.enabled,
        load_aware: shape.capacity.load_aware,
    }
}

fn effective_ttl(settings: Option<&PoolSettings>, default_ttl: u32) -> u32 {
    settings
        .and_then(|s| s.sticky_ttl_secs)
        .map_or(default_ttl, |t| u32::try_from(t).unwrap_or(u32::MAX))
}

impl ProfileState {
    /// A profile with `settings` (`None`: pool off), capacity `limits` and
    /// no senders, shaped as its engine says.
    pub(crate) fn new(settings: Option<PoolSettings>, limits: Limits, shape: Shape) -> Self {
        let ttl = effective_ttl(settings.as_ref(), shape.default_ttl);
        let mut pool = Pool::default();
        if settings.as_ref().is_some_and(|s| s.geomatch) {
            pool.enable_geo();
        }
        ProfileState {
            sticky: StickyMap::new(ttl, shape.shards),
            settings,
            pool,
            weighted: SmoothWeighted::default(),
            today: Day::at(0, &limits.zone),
            limits,
            shape,
            tally: SendTally::default(),
            messages_yesterday: 0,
            held: None,
            reported_due: None,
            enabled: true,
            destinations: Destinations::Anywhere,
            opt_outs: OptOuts::default(),
            unsettled: Unsettled::default(),
            queues_listed: false,
        }
    }

    /// Switches the profile on or off and sets where it may send.
    pub(crate) fn set_compliance(&mut self, enabled: bool, destinations: Destinations) {
        self.enabled = enabled;
        self.destinations = destinations;
    }

    /// The checks before any selection: the profile is on, the recipient's
    /// region is allowed, the recipient has not opted out.
    #[inline]
    fn admit(&self, to: PhoneNumber) -> Result<(), Refusal> {
        if !self.enabled {
            return Err(Refusal::Disabled);
        }
        self.destinations.check(to).map_err(Refusal::Destination)?;
        if self.opt_outs.contains(to) {
            return Err(Refusal::OptedOut);
        }
        Ok(())
    }

    /// Whether a daily cap applies: then a send's reply waits for the
    /// counts it consumed to be journaled (else, counts only inform).
    #[inline]
    pub(crate) fn has_daily_caps(&self) -> bool {
        self.limits.daily_message_limit.is_some() || self.limits.new_recipients_per_sender.is_some()
    }

    /// What of this state is still on its way to the journal.
    #[inline]
    pub(crate) fn unsettled(&mut self) -> &mut Unsettled {
        &mut self.unsettled
    }

    /// Records that `to` opted out; returns the opt-out it replaced.
    pub(crate) fn opt_out(&mut self, to: PhoneNumber, opt_out: OptOut) -> Option<OptOut> {
        let before = self.opt_outs.get(to);
        self.opt_outs.insert(to, opt_out);
        before
    }

    /// Puts back many opt-outs as a snapshot holds them (recovery): with
    /// [`ProfileState::finish_restore`] after the last of them, the same as
    /// [`ProfileState::opt_out`] for each in turn (see `OptOuts::stage`).
    pub(crate) fn restore_opt_outs(&mut self, all: &[(PhoneNumber, OptOut)]) {
        self.opt_outs.stage(all);
    }

    /// `to` opts back in; returns its opt-out, if it had one.
    pub(crate) fn opt_in(&mut self, to: PhoneNumber) -> Option<OptOut> {
        self.opt_outs.remove(to)
    }

    /// The profile's opt-outs.
    pub(crate) fn opt_outs(&self) -> &OptOuts {
        &self.opt_outs
    }

    /// Makes `limits` the profile's capacity settings (a new time zone
    /// starts a new day count at the next send).
    ///
    /// A change of `daily_reset_time_zone` at `now_ms` keeps the day's
    /// counts: the sends of the old zone's day count for the new zone's
    /// day (and those of the old zone's yesterday too, when the new day
    /// began before the old one), and the old zone's day stays counted and
    /// capped until it ends. So no day of either zone lets more than the
    /// limit through, however often or to whichever zone it changes (a
    /// change of spelling included). Returns the new day and its count,
    /// for the journal, when the zone changed.
    pub(crate) fn set_limits(&mut self, limits: Limits, now_ms: u64) -> Option<(i32, u32)> {
        if limits.zone == self.limits.zone {
            self.limits = limits;
            return None;
        }
        self.roll_day(now_ms);
        let old = self.today;
        let new = Day::at(now_ms, &limits.zone);
        let earlier = if new.start_ms() < old.start_ms() {
            self.messages_yesterday
        } else {
            0
        };
        let carried = self.tally.messages_today.saturating_add(earlier);
        let held = HeldDay {
            start_ms: old.start_ms(),
            end_ms: old.end_ms(),
            messages: self.tally.messages_today,
        };
        // Two days held at once are held as one: from the earlier start to
        // the later end, at the higher count (both only grow from here, by
        // the same sends).
        self.held = Some(match self.held {
            Some(h) => HeldDay {
                start_ms: h.start_ms.min(held.start_ms),
                end_ms: h.end_ms.max(held.end_ms),
                messages: h.messages.max(held.messages),
            },
            None => held,
        });
        self.pool.relabel_day(old.index, new.index);
        self.today = new;
        self.tally.messages_today = carried;
        self.tally.reserved_today = carried;
        self.messages_yesterday = 0;
        self.limits = limits;
        Some((new.index, carried))
    }

    /// Moves `today` to the day holding `now_ms` (counters of an earlier
    /// day read as zero from then on). Every admitted send asks: the check
    /// inlines alone, the move is out of line.
    #[inline(always)]
    fn roll_day(&mut self, now_ms: u64) {
        if !self.today.holds(now_ms) || self.held.is_some() {
            self.move_day(now_ms);
        }
    }

    #[cold]
    #[inline(never)]
    fn move_day(&mut self, now_ms: u64) {
        if !self.today.holds(now_ms) {
            let day = Day::at(now_ms, &self.limits.zone);
            if day.index != self.today.index {
                self.messages_yesterday = if day.index == self.today.index + 1 {
                    self.tally.messages_today
                } else {
                    0
                };
                self.tally.messages_today = 0;
                self.tally.reserved_today = 0;
            }
            self.today = day;
        }
        // Over once it ends (or if the clock was set back before it).
        if self
            .held
            .is_some_and(|h| !(h.start_ms..h.end_ms).contains(&(now_ms as i64)))
        {
            self.held = None;
        }
    }

    /// The context of selections at `at` ([`ProfileState::select`]). The
    /// selections of one call, or of a batch's group, share it: only a
    /// change of settings (not a selection) changes what it holds. Its day
    /// is the one `at` falls in; the profile's own day is rolled on to it
    /// only by a send its checks admit (a refused send changes nothing, and
    /// a late one must not move the day back).
    #[inline]
    pub(crate) fn context_at<'h>(&self, at: SelectAt, health: &'h HealthConfig) -> Context<'h> {
        let day = if self.today.holds(at.ms) {
            self.today.index
        } else {
            Day::at(at.ms, &self.limits.zone).index
        };
        context(&self.limits, &self.shape, day, at, health)
    }

    /// After a mapping was made or pinned at `now`: the time expiry has work
    /// to do, if that is earlier than the engine was told before (so the
    /// engine schedules expiry without hearing about every mapping).
    #[inline]
    pub(crate) fn wakeup_after_mapping(&mut self, now: u32) -> Option<u32> {
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
    pub(crate) fn wakeup_after_expiry(&mut self) -> Option<u32> {
        self.reported_due = self.sticky.next_due();
        self.reported_due
    }

    /// Makes `new` the settings. Turning sticky off (or the pool off)
    /// clears every mapping; new weights restart the weighted cycle; a new
    /// ttl applies to live mappings (those already expired stay expired).
    pub(crate) fn set_settings(&mut self, new: Option<PoolSettings>, now: u32) {
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
        let ttl = effective_ttl(new.as_ref(), self.shape.default_ttl);
        if ttl != self.sticky.ttl() {
            self.sticky.set_ttl(ttl, now);
        }
        self.settings = new;
    }

    /// Chooses the sender for one message of `parts` segments to
    /// `recipient`, and charges its queue; `ctx`, from this profile's
    /// [`ProfileState::context_at`], says when. With `track`, a
    /// sticky hit reports whether it moved its mapping into a later minute
    /// (`Selection::touch_due`, for the journal's coarse touches). A
    /// refusal changes nothing.
    ///
    /// This, `select_inner` and `charge` are always inlined: left to
    /// itself, the compiler inlined them or not depending on the features
    /// the crate was built with, and a call costs a batched message about
    /// a tenth of its instructions (callgrind).
    #[inline(always)]
    pub(crate) fn select(
        &mut self,
        recipient: PhoneNumber,
        hint: Hint,
        parts: u32,
        ctx: &Context<'_>,
        track: bool,
    ) -> Result<Selection, Refusal> {
        let result = self.select_inner(recipient, hint, parts, ctx, track);
        match &result {
            Ok(s) => {
                self.tally.stats.selections.add(s.reason);
                if s.mapping == MappingOutcome::Created {
                    self.tally.stats.mappings_created += 1;
                }
            }
            Err(_) => self.tally.stats.rejected += 1,
        }
        result
    }

    #[inline(always)]
    fn select_inner(
        &mut self,
        recipient: PhoneNumber,
        mut hint: Hint,
        parts: u32,
        ctx: &Context<'_>,
        track: bool,
    ) -> Result<Selection, Refusal> {
        if self.opt_outs.len() > 0 {
            // The opt-out check and the sticky lookup after it each read a
            // line of a large table: start the reads now (the filter's, and
            // the sticky index word's and the entry it names), so they
            // overlap instead of following one another. A caller that
            // looked ahead itself passes where the entry likely is (the
            // lookup checks it); `Hint::NONE` comes from one that did not
            // or found no entry (a new recipient, looked for twice then:
            // rare, and only with opt-outs).
            self.opt_outs.prefetch(recipient);
            if self.is_sticky() && hint == Hint::NONE {
                self.sticky.prefetch_index(recipient);
                hint = self.sticky.prefetch_entry(recipient);
            }
        }
        self.admit(recipient)?;
        self.roll_day(ctx.at.ms);
        debug_assert_eq!(self.today.index, ctx.day, "a context of another time");
        self.check_daily_limit()?;
        let Some(settings) = self.settings.as_ref() else {
            return Err(NoSender::PoolDisabled.into());
        };
        let state = SelectState {
            pool: &mut self.pool,
            sticky: &mut self.sticky,
            weighted: &mut self.weighted,
        };
        let chosen = choose(settings, state, ctx, recipient, hint, track)?;
        Ok(self.charge(chosen, parts, ctx.at.ns, ctx.day))
    }

    /// A message from `sender`, named by the caller: it must be in the
    /// pool (any kind, short codes included); the daily limit and the
    /// queue cap apply, and its queue is charged. No mapping is made.
    /// `ctx`, as for [`ProfileState::select`], says when.
    pub(crate) fn send_from(
        &mut self,
        sender: PhoneNumber,
        to: PhoneNumber,
        parts: u32,
        ctx: &Context<'_>,
    ) -> Result<Selection, Refusal> {
        let result = self.send_from_inner(sender, to, parts, ctx);
        match &result {
            Ok(_) => self.tally.stats.selections.add(Reason::Explicit),
            Err(_) => self.tally.stats.rejected += 1,
        }
        result
    }

    fn send_from_inner(
        &mut self,
        sender: PhoneNumber,
        to: PhoneNumber,
        parts: u32,
        ctx: &Context<'_>,
    ) -> Result<Selection, Refusal> {
        self.admit(to)?;
        self.roll_day(ctx.at.ms);
        debug_assert_eq!(self.today.index, ctx.day, "a context of another time");
        self.check_daily_limit()?;
        let r = self.pool.lookup(sender).ok_or(Refusal::NotInPool)?;
        let wait_ns = ctx.wait_ns(&self.pool, r.slot);
        if ctx.over_cap(wait_ns) {
            return Err(Refusal::QueueFull { sender, wait_ns });
        }
        let (now_ns, day) = (ctx.at.ns, ctx.day);
        let chosen = Chosen {
            slot: r.slot,
            sender,
            reason: Reason::Explicit,
            mapping: MappingOutcome::None,
            touch_due: false,
        };
        Ok(self.charge(chosen, parts, now_ns, day))
    }

    #[inline]
    fn check_daily_limit(&self) -> Result<(), Refusal> {
        let over = self.shape.capacity.enabled
            && self.limits.daily_message_limit.is_some_and(|limit| {
                self.tally.messages_today >= limit || self.held.is_some_and(|h| h.messages >= limit)
            });
        if over {
            Err(Refusal::DailyLimit)
        } else {
            Ok(())
        }
    }

    /// Puts the chosen message in its sender's queue and counts it.
    #[inline(always)]
    fn charge(&mut self, chosen: Chosen, parts: u32, now_ns: u64, day: i32) -> Selection {
        let slot = chosen.slot;
        let (mut wait_ns, mut new_block) = (0, false);
        if self.shape.capacity.enabled {
            // A new recipient of its sender: a new pick (geomatch or weight),
            // sticky sender on (it made a mapping) or off.
            let new_recipient = matches!(chosen.reason, Reason::Geomatch | Reason::Weighted);
            let load = self.pool.load_mut(slot);
            // The sender's time a part, kept with its counts (worked out
            // below, out of line, the first time).
            let known_part_ns = load.part_ns;
            load.count(day, new_recipient);
            new_block = starts_block(load.messages, INFORMING_BLOCK);
            // Under a cap, without mappings to count them again from, new
            // recipients are reserved in blocks (as a capped profile count).
            // Looked at only for a new recipient: a sticky hit, the usual
            // send, reads neither.
            if new_recipient {
                let cap = self.limits.new_recipients_per_sender;
                let sticky = self.settings.as_ref().is_some_and(|s| s.sticky_sender);
                if cap.is_some() && !sticky {
                    new_block |= starts_block(load.new_recipients, profile_block(cap));
                }
            }
            let part_ns = self.part_ns_from(slot, known_part_ns);
            let send_at = self.pool.queue_end(slot).max(now_ns);
            wait_ns = send_at - now_ns;
            let end = send_at.saturating_add(part_ns.saturating_mul(u64::from(parts.max(1))));
            self.pool.set_queue_end(slot, end);
            self.tally.messages_today = self.tally.messages_today.saturating_add(1);
            if let Some(h) = &mut self.held {
                h.messages = h.messages.saturating_add(1);
            }
            if self.tally.messages_today > self.tally.reserved_today {
                let block = profile_block(self.limits.daily_message_limit);
                self.tally.reserved_today = reserved(self.tally.messages_today, block);
                new_block = true;
            }
        }
        Selection {
            sender: chosen.sender,
            reason: chosen.reason,
            mapping: chosen.mapping,
            wait: Duration::from_nanos(wait_ns),
            send_at: Timestamp::from_millis((now_ns + wait_ns) / 1_000_000),
            touch_due: chosen.touch_due,
            starts_block: new_block,
        }
    }

    /// Nanoseconds one part takes the sender in `slot` (its own rate, else
    /// its kind's), worked out once and kept with its counts. The check
    /// inlines alone; working it out is out of line.
    #[inline(always)]
    fn part_ns(&mut self, slot: u32) -> u64 {
        let known = self.pool.load(slot).part_ns;
        self.part_ns_from(slot, known)
    }

    /// [`ProfileState::part_ns`] where the caller already read the kept
    /// value (`known`, 0: not worked out yet) with the sender's counts.
    #[inline(always)]
    fn part_ns_from(&mut self, slot: u32, known: u64) -> u64 {
        if known != 0 {
            return known;
        }
        self.work_out_part_ns(slot)
    }

    #[cold]
    #[inline(never)]
    fn work_out_part_ns(&mut self, slot: u32) -> u64 {
        let rate = self.pool.load(slot).own_rate().unwrap_or_else(|| {
            let kind = self
                .pool
                .sender_in(slot)
                .map_or(SenderKind::LongCode, |s| s.kind);
            self.shape.capacity.rates.of(kind)
        });
        let part_ns = busy_ns(1, rate).max(1);
        self.pool.load_mut(slot).part_ns = part_ns;
        part_ns
    }

    /// A batch's look-ahead fetches what selecting for a recipient will
    /// read in three stages, each a few recipients nearer than the one
    /// before. Stage 1: the recipient's opt-out filter line and sticky
    /// index word.
    #[inline]
    pub(crate) fn prefetch_index(&self, recipient: PhoneNumber) {
        self.opt_outs.prefetch(recipient);
        if self.is_sticky() {
            self.sticky.prefetch_index(recipient);
        }
    }

    /// Where a send looks before it takes the profile's lock (a single
    /// send's look-ahead; a batch has its own, over many sends, under the
    /// lock). The table stays this map's for as long as the state lives.
    pub(crate) fn peek_table(&self) -> Arc<PeekTable> {
        self.sticky.peek_table()
    }

    /// Stage 2: the sticky entry a hit most likely reads; returns where it
    /// is, for the selection ([`ProfileState::select`]) to start there.
    #[inline]
    pub(crate) fn prefetch_entry(&self, recipient: PhoneNumber) -> Hint {
        if !self.is_sticky() {
            return Hint::NONE;
        }
        self.sticky.prefetch_entry(recipient)
    }

    /// Stage 3: the state of the sender of the entry at `hint` (stage 2's),
    /// which a hit reads next (with many profiles, their pools are not in
    /// cache).
    #[inline]
    pub(crate) fn prefetch_sender(&self, recipient: PhoneNumber, hint: Hint) {
        if let Some(sender) = self.sticky.likely_sender(recipient, hint) {
            self.pool.prefetch_sender(sender.slot);
        }
    }

    #[inline]
    fn is_sticky(&self) -> bool {
        self.settings.as_ref().is_some_and(|s| s.sticky_sender)
    }

    /// Adds a sender (with what it brings from another profile: health,
    /// rate, queue, counters). Existing mappings are untouched.
    pub(crate) fn add_sender(&mut self, number: PhoneNumber, carried: Carried) {
        self.pool.add(number, carried);
    }

    /// Sets a sender's own rate (`None`: its kind's default); `false` if
    /// it is not here. With `now_ns`, the messages queued at the old rate
    /// are queued at the new one from now on (a slower rate lengthens the
    /// queue, a faster one shortens it); without (a replay), the queue is
    /// left as it is (the journal says where it ends next).
    pub(crate) fn set_rate(
        &mut self,
        number: PhoneNumber,
        rate: Option<f64>,
        now_ns: Option<u64>,
    ) -> bool {
        let Some(r) = self.pool.lookup(number) else {
            return false;
        };
        let before = self.part_ns(r.slot);
        self.pool.set_rate(r.slot, rate);
        let after = self.part_ns(r.slot);
        if let Some(now) = now_ns {
            let end = self.pool.queue_end(r.slot);
            if end > now && before != after {
                let queued = (end - now) as f64 / before as f64;
                let rescaled = now.saturating_add((queued * after as f64).ceil() as u64);
                self.pool.restore_queue_end(number, rescaled);
                // Written with the other queue ends that moved.
                self.pool.unwrite_queue_end(r.slot);
            }
        }
        true
    }

    /// Removes a sender, returning what it carries to another pool; every
    /// mapping to it is cleared at once.
    pub(crate) fn remove_sender(&mut self, number: PhoneNumber) -> Option<Carried> {
        self.pool.remove(number)
    }

    /// Records a delivery outcome for `number`; `false` if it is not here.
    pub(crate) fn record_outcome(
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

    /// One sender with its health and capacity at `now_ms`, if it is in
    /// the pool.
    pub(crate) fn sender(
        &self,
        number: PhoneNumber,
        now_ms: u64,
        config: &HealthConfig,
    ) -> Option<SenderInfo> {
        let r = self.pool.lookup(number)?;
        let s = self.pool.resolve(r)?;
        // Today as of `now_ms`, even before a send rolls the profile's day.
        let ctx = self.context_at(SelectAt::new(now_ms), config);
        let load = self.pool.load(r.slot);
        let (messages_today, new_recipients_today) = load.counts(ctx.day);
        let (mappings, pinned) = self.sticky.count_of(r);
        let rate = load
            .own_rate()
            .unwrap_or_else(|| self.shape.capacity.rates.of(s.kind));
        Some(SenderInfo {
            number: s.number,
            kind: s.kind,
            health: s.health.counts(ctx.at.secs, config),
            unhealthy: s.health.is_unhealthy(ctx.at.secs, config),
            eligibility: eligibility(self.settings.as_ref(), s, new_recipients_today, &ctx),
            capacity: Capacity {
                messages_per_second: rate,
                wait: Duration::from_nanos(ctx.wait_ns(&self.pool, r.slot)),
                messages_today,
                new_recipients_today,
            },
            mappings,
            pinned,
            opt_outs: self.opt_outs.via_count(number),
        })
    }

    /// Lets expiry reach `now` whatever it costs, so that per-sender
    /// mapping counts are of live mappings only. The work is the
    /// housekeeper's anyway (each expired entry is reached once); reads
    /// that report counts call this first.
    pub(crate) fn reap(&mut self, now: u32) {
        self.expire(now, usize::MAX);
    }

    /// Lets the timing wheels reach `now`, visiting at most `budget` entries.
    pub(crate) fn expire(&mut self, now: u32, budget: usize) -> ExpireReport {
        let pool = &self.pool;
        let report = self
            .sticky
            .expire(now, budget, |r| pool.resolve(r).is_some());
        self.tally.stats.expired += report.expired as u64;
        report
    }

    /// Counters and sizes.
    pub(crate) fn stats(&self) -> ProfileStats {
        ProfileStats {
            stored_mappings: self.sticky.stored(),
            sticky_heap_bytes: self.sticky.heap_bytes(),
            senders: self.pool.len(),
            opt_outs: self.opt_outs.len(),
            opt_out_heap_bytes: self.opt_outs.heap_bytes(),
            ..self.tally.stats
        }
    }

    /// Removes every sender (the profile is being deleted), returning their numbers.
    pub(crate) fn drain_senders(&mut self) -> Vec<PhoneNumber> {
        self.pool.drain()
    }
}

/// Moves the number of `record` out of `from` (if given and it holds the
/// number) into `to` (if given), with its health, queue and counters, at
/// the rate its record sets: the one implementation of a number changing
/// pools, shared by the engine and by recovery. Mappings to it in `from`
/// become stale at once; `to`'s mappings are untouched.
pub(crate) fn move_sender(
    record: &NumberRecord,
    from: Option<&mut ProfileState>,
    to: Option<&mut ProfileState>,
) {
    let carried = from
        .and_then(|p| p.remove_sender(record.number))
        .unwrap_or_default();
    if let Some(p) = to {
        p.add_sender(
            record.number,
            Carried {
                rate: record.messages_per_second,
                ..carried
            },
        );
    }
}
