//! The selection order (`docs/SELECTION.md`), as plain code:
//! sticky -> geomatch -> weighted, unhealthy senders skipped on request,
//! and, with capacity, the least busy sender among equals.

use std::time::Duration;

use super::health::HealthConfig;
use super::pool::{kind_index, Pool, RotationKey, Sender};
use super::rotation::Member;
use super::select_at::SelectAt;
use super::sticky::{Hint, StickyMap};
use super::weighted::{SmoothWeighted, LONG_CODE, TOLL_FREE};
use crate::clock::Timestamp;
use crate::geo::destinations::RegionCode;
use crate::geo::npa::region_of;
use crate::number::PhoneNumber;
use crate::settings::PoolSettings;

/// Why a sender was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The recipient's live mapping.
    Sticky,
    /// A sender with the recipient's area code (or, with the fallback, region).
    Geomatch,
    /// The weighted round-robin.
    Weighted,
    /// The caller named the sender.
    Explicit,
}

impl Reason {
    /// Every reason, in the order the rules try them (the one list counters
    /// and metrics go by).
    pub const ALL: [Reason; 4] = [
        Reason::Sticky,
        Reason::Geomatch,
        Reason::Weighted,
        Reason::Explicit,
    ];

    /// The name used in the API's `selection.reason`.
    pub fn api_name(self) -> &'static str {
        match self {
            Reason::Sticky => "sticky",
            Reason::Geomatch => "geomatch",
            Reason::Weighted => "weighted",
            Reason::Explicit => "explicit",
        }
    }
}

/// Selections counted by [`Reason`].
///
/// ```
/// use numpool::{ByReason, Reason};
/// let mut counts = ByReason::default();
/// counts.add(Reason::Sticky);
/// counts.add(Reason::Sticky);
/// assert_eq!(counts[Reason::Sticky], 2);
/// assert_eq!(counts.total(), 2);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ByReason([u64; Reason::ALL.len()]);

impl ByReason {
    /// Counts one selection for `reason`.
    #[inline]
    pub fn add(&mut self, reason: Reason) {
        self.0[reason as usize] += 1;
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &ByReason) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            *mine += theirs;
        }
    }

    /// Each reason with its count, in [`Reason::ALL`]'s order.
    pub fn iter(&self) -> impl Iterator<Item = (Reason, u64)> + '_ {
        Reason::ALL.into_iter().map(|r| (r, self[r]))
    }

    /// Selections of every reason.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

impl std::ops::Index<Reason> for ByReason {
    type Output = u64;
    fn index(&self, reason: Reason) -> &u64 {
        &self.0[reason as usize]
    }
}

/// What happened to the recipient's sticky mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MappingOutcome {
    /// The existing mapping was used (and its expiry restarted).
    Reused,
    /// A new mapping was made for the pick.
    Created,
    /// Sticky sender is off (or the sender was named): no mapping.
    None,
}

impl MappingOutcome {
    /// The name used in the API's `selection.mapping`.
    pub fn api_name(self) -> &'static str {
        match self {
            MappingOutcome::Reused => "reused",
            MappingOutcome::Created => "created",
            MappingOutcome::None => "none",
        }
    }
}

/// The sender chosen for one message, why, and when it goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selection {
    /// The number the message goes out from.
    pub sender: PhoneNumber,
    /// Which rule chose it.
    pub reason: Reason,
    /// What happened to the recipient's sticky mapping.
    pub mapping: MappingOutcome,
    /// How long the message waits in its sender's queue.
    pub wait: Duration,
    /// When it goes out: now plus the wait.
    pub send_at: Timestamp,
    /// A reused mapping whose previous use was in an earlier minute than
    /// this selection's (tracked only when a journal needs it): the journal
    /// writes touches coarsely, once a minute (see [`SelectAt::moves_minute`]).
    pub(crate) touch_due: bool,
    /// The send began a new block of daily counts (of the profile or the
    /// sender): the journal records the counts reserved.
    pub(crate) starts_block: bool,
}

/// Why no sender could be chosen. Nothing is mapped when this is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NoSender {
    /// `number_pool_settings` is null.
    #[error("the number pool is off for this messaging profile")]
    PoolDisabled,
    /// No long code or toll-free number is assigned.
    #[error("no numbers in pool: the pool has no long code or toll-free numbers")]
    EmptyPool,
    /// Both weights are 0.
    #[error("no eligible numbers in pool: long_code_weight and toll_free_weight are both 0")]
    BothWeightsZero,
    /// The kinds with weight above 0 have no numbers.
    #[error("no eligible numbers in pool: no numbers of a kind whose weight is above 0")]
    NoSenderOfWeightedKind,
    /// Every candidate is unhealthy and the profile skips unhealthy numbers.
    #[error("no healthy numbers in pool")]
    NoHealthySender,
    /// Every candidate took its new recipients for today.
    #[error("no eligible numbers in pool: every number reached new_recipients_per_sender_per_day")]
    NewRecipientLimit,
}

/// Why a send was refused by the profile. Nothing was selected, reserved,
/// mapped or touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The profile is switched off.
    Disabled,
    /// The recipient's region (if it has one) is not an allowed destination.
    Destination(Option<RegionCode>),
    /// The recipient opted out of the profile.
    OptedOut,
    /// No sender could be chosen.
    NoSender(NoSender),
    /// The chosen sender's queue would exceed the profile's cap.
    QueueFull { sender: PhoneNumber, wait_ns: u64 },
    /// The profile sent its `daily_message_limit` today.
    DailyLimit,
    /// An explicit sender that is not in the profile's pool.
    NotInPool,
}

impl From<Refusal> for crate::Error {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Disabled => crate::Error::ProfileDisabled,
            Refusal::Destination(region) => crate::Error::DestinationNotAllowed {
                region: region.map(|r| r.to_string()),
            },
            Refusal::OptedOut => crate::Error::OptedOut,
            Refusal::NoSender(cause) => crate::Error::NoSender(cause),
            Refusal::QueueFull { sender, wait_ns } => crate::Error::QueueFull {
                sender,
                wait: Duration::from_nanos(wait_ns),
            },
            Refusal::DailyLimit => crate::Error::DailyLimit,
            Refusal::NotInPool => crate::Error::NotInPool,
        }
    }
}

impl From<NoSender> for Refusal {
    fn from(e: NoSender) -> Self {
        Refusal::NoSender(e)
    }
}

/// Whether a sender can be chosen by a new pick now, and if not why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eligibility {
    /// A new pick may choose it.
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
    /// It took `new_recipients_per_sender_per_day` new recipients today.
    NewRecipientLimit,
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
            Eligibility::NewRecipientLimit => {
                Some("it reached new_recipients_per_sender_per_day for today")
            }
        }
    }
}

/// What one selection knows besides the profile's state: the time, the
/// health thresholds, the capacity settings. The selections of one call
/// (or of a batch's group) share one, made by `ProfileState::context_at`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context<'a> {
    pub health: &'a HealthConfig,
    /// Now.
    pub at: SelectAt,
    /// Today in the profile's time zone.
    pub day: i32,
    /// The profile's queue cap (its limits' `max_queue_ns`).
    pub max_queue_ns: u64,
    /// The profile's daily cap of new recipients a sender (its limits'
    /// `new_recipients_per_sender`).
    pub new_recipients_per_sender: Option<u32>,
    /// Capacity bookkeeping on (queues, caps, load-aware picks).
    pub capacity: bool,
    /// Among equal candidates, the least busy first.
    pub load_aware: bool,
}

impl Context<'_> {
    /// How long a message given now to the sender in `slot` would wait
    /// (0 without capacity).
    #[inline]
    pub(crate) fn wait_ns(&self, pool: &Pool, slot: u32) -> u64 {
        if self.capacity {
            pool.queue_end(slot).saturating_sub(self.at.ns)
        } else {
            0
        }
    }

    /// Whether that wait exceeds the profile's cap.
    #[inline]
    pub(crate) fn over_cap(&self, wait_ns: u64) -> bool {
        wait_ns > self.max_queue_ns
    }
}

/// The one eligibility rule, for selection and for the status the API
/// shows; `new_today` is the new recipients the sender took today.
#[inline]
pub(crate) fn eligibility(
    settings: Option<&PoolSettings>,
    sender: &Sender,
    new_today: u32,
    ctx: &Context<'_>,
) -> Eligibility {
    let Some(settings) = settings else {
        return Eligibility::PoolOff;
    };
    match kind_index(sender.kind) {
        None => Eligibility::ShortCode,
        Some(k) if settings.weights()[k] <= 0.0 => Eligibility::KindWeightZero,
        Some(_)
            if settings.skip_unhealthy && sender.health.is_unhealthy(ctx.at.secs, ctx.health) =>
        {
            Eligibility::Unhealthy
        }
        Some(_)
            if ctx.capacity
                && ctx
                    .new_recipients_per_sender
                    .is_some_and(|cap| new_today >= cap) =>
        {
            Eligibility::NewRecipientLimit
        }
        Some(_) => Eligibility::Eligible,
    }
}

/// The sender a selection settled on, before its queue is charged.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Chosen {
    pub slot: u32,
    /// The sender in `slot`.
    pub sender: PhoneNumber,
    pub reason: Reason,
    pub mapping: MappingOutcome,
    /// See [`Selection::touch_due`].
    pub touch_due: bool,
}

/// Which senders may be picked for a new pick.
struct PickRules<'a> {
    settings: &'a PoolSettings,
    weights: [f64; 2],
    ctx: &'a Context<'a>,
}

impl PickRules<'_> {
    #[inline]
    fn eligible(&self, pool: &Pool, slot: u32, sender: &Sender) -> bool {
        let new_today = pool.load(slot).counts(self.ctx.day).1;
        eligibility(Some(self.settings), sender, new_today, self.ctx) == Eligibility::Eligible
    }

    /// Whether every member of rotation `key` is eligible, without looking
    /// at any: a kind rotation's members all have its kind (with weight
    /// above 0, checked by the caller), so unless health or the
    /// new-recipient cap matter, only their queues differ.
    #[inline]
    fn all_eligible(&self, key: RotationKey) -> bool {
        let ctx = self.ctx;
        matches!(key, RotationKey::Kind(_))
            && !self.settings.skip_unhealthy
            && !(ctx.capacity && ctx.new_recipients_per_sender.is_some())
    }

    /// The member of rotation `key` a new pick takes: the first eligible
    /// after the last pick, or with load-aware picks the one whose queue
    /// frees first (the first of those in round-robin order on a tie, so an
    /// idle pool picks exactly round-robin). `within_cap` passes over
    /// senders whose wait would exceed the cap.
    #[inline]
    fn best(&self, pool: &Pool, key: RotationKey, within_cap: bool) -> Option<Member> {
        let rotation = pool.rotation(key)?;
        let ctx = self.ctx;
        let checks = !self.all_eligible(key);
        let eligible = |slot: u32| {
            !checks
                || pool
                    .sender_in(slot)
                    .is_some_and(|s| self.eligible(pool, slot, s))
        };
        let max_wait = within_cap.then_some(ctx.max_queue_ns);
        if ctx.capacity && ctx.load_aware {
            let ends = pool.queue_ends_by_slot();
            let queue_end = |slot: u32| ends[slot as usize];
            rotation.peek_least(ctx.at.ns, max_wait, queue_end, eligible)
        } else {
            rotation.peek(|slot| {
                eligible(slot) && !(within_cap && ctx.over_cap(ctx.wait_ns(pool, slot)))
            })
        }
    }
}

/// The mutable selection state of one profile.
pub(crate) struct SelectState<'a> {
    pub pool: &'a mut Pool,
    pub sticky: &'a mut StickyMap,
    pub weighted: &'a mut SmoothWeighted,
}

/// Chooses the sender for one message to `recipient`, whose sticky entry
/// a look-ahead may have found (`hint`, see `StickyMap::touch`). With
/// `track`, a sticky hit says whether it moved its mapping into a later
/// minute ([`Selection::touch_due`]: the journal then records the touch);
/// without, the hit path does not wait for the previous use, which keeps
/// sticky hits measurably faster. Changes nothing when it refuses.
#[inline(always)]
pub(crate) fn choose(
    settings: &PoolSettings,
    state: SelectState<'_>,
    ctx: &Context<'_>,
    recipient: PhoneNumber,
    hint: Hint,
    track: bool,
) -> Result<Chosen, Refusal> {
    // 1. Sticky: a live mapping to an available sender wins, even if
    // unhealthy and whatever its wait, unless the wait would exceed the
    // cap: then the send is refused and the mapping left untouched. This
    // is the hot path, kept small so the CPU can overlap the memory
    // accesses of consecutive selections; new picks are out of line.
    if settings.sticky_sender {
        let weights = settings.weights();
        let pool = &*state.pool;
        let mut full = None;
        let hit = state.sticky.touch(
            recipient,
            hint,
            ctx.at.secs,
            #[inline(always)]
            |r| {
                let s = pool.resolve(r).filter(|s| available(s, weights))?;
                let wait = ctx.wait_ns(pool, r.slot);
                if ctx.over_cap(wait) {
                    full = Some((s.number, wait));
                    return None;
                }
                Some((r.slot, s.number))
            },
        );
        if let Some(((slot, sender), previous)) = hit {
            return Ok(Chosen {
                slot,
                sender,
                reason: Reason::Sticky,
                mapping: MappingOutcome::Reused,
                touch_due: track && ctx.at.moves_minute(previous),
            });
        }
        if let Some((sender, wait_ns)) = full {
            return Err(Refusal::QueueFull { sender, wait_ns });
        }
    }
    pick_new(settings, state, ctx, recipient)
}

/// Available: of a kind the pool picks, with weight above 0 (the caller
/// has checked the sender is still in the pool).
#[inline]
fn available(sender: &Sender, weights: [f64; 2]) -> bool {
    kind_index(sender.kind).is_some_and(|k| weights[k] > 0.0)
}

/// Steps 2 to 4 for a recipient without a usable mapping; maps the pick
/// when sticky is on.
#[inline(never)]
fn pick_new(
    settings: &PoolSettings,
    state: SelectState<'_>,
    ctx: &Context<'_>,
    recipient: PhoneNumber,
) -> Result<Chosen, Refusal> {
    let SelectState {
        pool,
        sticky,
        weighted,
    } = state;
    let rules = PickRules {
        settings,
        weights: settings.weights(),
        ctx,
    };

    // 2. Geomatch: the recipient's area code, then (if enabled) its region;
    // outside the NANP its country calling code. A candidate whose wait
    // would exceed the cap is passed over.
    let mut picked = None;
    if settings.geomatch {
        let keys = match recipient.npa() {
            Some(npa) => {
                let region = region_of(npa)
                    .filter(|_| settings.geomatch_region_fallback)
                    .map(RotationKey::Region);
                [Some(RotationKey::Npa(npa)), region]
            }
            // Outside the NANP: senders of the recipient's country.
            None => [recipient.calling_code().map(RotationKey::Country), None],
        };
        picked = keys
            .into_iter()
            .flatten()
            .find_map(|key| Some((key, rules.best(pool, key, true)?)));
    }
    // 3. and 4. Weighted, over eligible (healthy if asked) senders.
    let (key, member, reason) = match picked {
        Some((key, member)) => (key, member, Reason::Geomatch),
        None => {
            let (kind, member, credit) = pick_weighted(&rules, pool, weighted)?;
            let wait = ctx.wait_ns(pool, member.slot);
            if ctx.over_cap(wait) {
                let sender = pool.sender_in(member.slot).map(|s| s.number);
                return Err(Refusal::QueueFull {
                    sender: sender.expect("picked slots hold a sender"),
                    wait_ns: wait,
                });
            }
            *weighted = credit;
            (RotationKey::Kind(kind), member, Reason::Weighted)
        }
    };
    if let Some(rotation) = pool.rotation_mut(key) {
        rotation.commit(member);
    }
    let mapping = if settings.sticky_sender
        && sticky.assign(recipient, pool.reference(member.slot), ctx.at.secs)
    {
        MappingOutcome::Created
    } else {
        MappingOutcome::None
    };
    Ok(Chosen {
        slot: member.slot,
        sender: pool
            .sender_in(member.slot)
            .expect("picked slots hold a sender")
            .number,
        reason,
        mapping,
        touch_due: false,
    })
}

/// Step 3, weighted: choose the kind by smooth weighted round-robin among
/// kinds that have an eligible sender now, then the best sender of that
/// kind. Returns the kind, the member, and the weighted credit as it will
/// be once the pick is kept (nothing changes until the caller keeps it).
fn pick_weighted(
    rules: &PickRules<'_>,
    pool: &Pool,
    weighted: &SmoothWeighted,
) -> Result<(usize, Member, SmoothWeighted), NoSender> {
    let kinds = [LONG_CODE, TOLL_FREE];
    let candidate = |kind: usize| {
        if rules.weights[kind] > 0.0 {
            rules.best(pool, RotationKey::Kind(kind), false)
        } else {
            None
        }
    };
    // Which kinds have a candidate decides the pick. When every member is
    // eligible, a kind has one exactly when it has weight and members, and
    // only the chosen kind's rotation is searched.
    let mut candidates = [None; 2];
    let available = if kinds
        .iter()
        .all(|&k| rules.all_eligible(RotationKey::Kind(k)))
    {
        kinds.map(|k| {
            rules.weights[k] > 0.0
                && pool
                    .rotation(RotationKey::Kind(k))
                    .is_some_and(|r| !r.is_empty())
        })
    } else {
        candidates = kinds.map(candidate);
        candidates.map(|c| c.is_some())
    };
    let effective = kinds.map(|k| if available[k] { rules.weights[k] } else { 0.0 });
    let mut credit = weighted.clone();
    let Some(kind) = credit.pick(effective) else {
        return Err(no_sender_cause(rules, pool));
    };
    let member = candidates[kind]
        .or_else(|| candidate(kind))
        .expect("a kind with weight has a candidate");
    Ok((kind, member, credit))
}

/// Names why nothing was eligible (only on the failure path).
fn no_sender_cause(rules: &PickRules<'_>, pool: &Pool) -> NoSender {
    let counts = pool.kind_counts();
    // Eligible but for today's new-recipient cap.
    let capped = |(_, s): (u32, &Sender)| {
        eligibility(Some(rules.settings), s, 0, rules.ctx) == Eligibility::Eligible
    };
    if counts == [0, 0] {
        NoSender::EmptyPool
    } else if rules.weights.iter().all(|w| *w <= 0.0) {
        NoSender::BothWeightsZero
    } else if (0..2).all(|k| counts[k] == 0 || rules.weights[k] <= 0.0) {
        NoSender::NoSenderOfWeightedKind
    } else if pool.occupied().any(capped) {
        NoSender::NewRecipientLimit
    } else {
        NoSender::NoHealthySender
    }
}
