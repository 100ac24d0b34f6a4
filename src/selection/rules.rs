//! The selection order (`docs/SELECTION.md`), as plain code:
//! sticky -> geomatch -> weighted, with unhealthy senders skipped on request.

use super::health::HealthConfig;
use super::pool::{kind_index, Pool, RotationKey, Sender};
use super::region::region_of;
use super::sticky::StickyMap;
use super::weighted::{SmoothWeighted, LONG_CODE, TOLL_FREE};
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
}

impl Reason {
    /// The name used in the API's `selection.reason`.
    pub fn api_name(self) -> &'static str {
        match self {
            Reason::Sticky => "sticky",
            Reason::Geomatch => "geomatch",
            Reason::Weighted => "weighted",
        }
    }
}

/// What happened to the recipient's sticky mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MappingOutcome {
    /// The existing mapping was used (and its expiry restarted).
    Reused,
    /// A new mapping was made for the pick.
    Created,
    /// Sticky sender is off: no mapping.
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

/// The sender chosen for one message, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selection {
    /// The number the message goes out from.
    pub sender: PhoneNumber,
    /// Which rule chose it.
    pub reason: Reason,
    /// What happened to the recipient's sticky mapping.
    pub mapping: MappingOutcome,
    /// For a reused mapping, when it was used before this selection
    /// (seconds), tracked only when a journal needs it: the journal writes
    /// touches coarsely from it.
    pub(crate) previous_use: Option<u32>,
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

/// The one eligibility rule, for selection and for the status the API shows.
#[inline]
pub(crate) fn eligibility(
    settings: Option<&PoolSettings>,
    sender: &Sender,
    now: u32,
    health: &HealthConfig,
) -> Eligibility {
    let Some(settings) = settings else {
        return Eligibility::PoolOff;
    };
    match kind_index(sender.kind) {
        None => Eligibility::ShortCode,
        Some(k) if settings.weights()[k] <= 0.0 => Eligibility::KindWeightZero,
        Some(_) if settings.skip_unhealthy && sender.health.is_unhealthy(now, health) => {
            Eligibility::Unhealthy
        }
        Some(_) => Eligibility::Eligible,
    }
}

/// Which senders may be picked for a new pick.
struct PickRules<'a> {
    settings: &'a PoolSettings,
    weights: [f64; 2],
    now: u32,
    health: &'a HealthConfig,
}

impl PickRules<'_> {
    #[inline]
    fn eligible(&self, sender: &Sender) -> bool {
        eligibility(Some(self.settings), sender, self.now, self.health) == Eligibility::Eligible
    }

    #[inline]
    fn slot_eligible(&self, pool: &Pool, slot: u32) -> bool {
        pool.sender_in(slot).is_some_and(|s| self.eligible(s))
    }

    /// Round-robin pick of an eligible sender of rotation `key`.
    fn pick(&self, pool: &mut Pool, key: RotationKey) -> Option<u32> {
        let member = pool
            .rotation(key)?
            .peek(|slot| self.slot_eligible(pool, slot))?;
        pool.rotation_mut(key)?.commit(member);
        Some(member.slot)
    }
}

/// The mutable selection state of one profile.
pub struct SelectState<'a> {
    pub pool: &'a mut Pool,
    pub sticky: &'a mut StickyMap,
    pub weighted: &'a mut SmoothWeighted,
}

/// Chooses the sender for one message to `recipient` at `now` (seconds).
/// With `track`, a reused mapping's previous use is reported in
/// [`Selection::previous_use`] (the journal needs it); without, the hit path
/// does not wait for it, which keeps sticky hits measurably faster.
#[inline]
pub fn select(
    settings: &PoolSettings,
    state: SelectState<'_>,
    health: &HealthConfig,
    recipient: PhoneNumber,
    now: u32,
    track: bool,
) -> Result<Selection, NoSender> {
    // 1. Sticky: a live mapping to an available sender wins, even if
    // unhealthy. This is the hot path, kept small so the CPU can overlap the
    // memory accesses of consecutive selections; new picks are out of line.
    if settings.sticky_sender {
        let weights = settings.weights();
        let pool = &*state.pool;
        let hit = state.sticky.touch(recipient, now, |r| {
            pool.resolve(r)
                .filter(|s| available(s, weights))
                .map(|s| s.number)
        });
        if let Some((sender, previous)) = hit {
            return Ok(Selection {
                sender,
                reason: Reason::Sticky,
                mapping: MappingOutcome::Reused,
                previous_use: track.then_some(previous),
            });
        }
    }
    pick_new(settings, state, health, recipient, now)
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
    health: &HealthConfig,
    recipient: PhoneNumber,
    now: u32,
) -> Result<Selection, NoSender> {
    let SelectState {
        pool,
        sticky,
        weighted,
    } = state;
    let rules = PickRules {
        settings,
        weights: settings.weights(),
        now,
        health,
    };

    // 2. Geomatch: the recipient's area code, then (if enabled) its region.
    let mut picked = None;
    if settings.geomatch {
        if let Some(npa) = recipient.npa() {
            picked = rules.pick(pool, RotationKey::Npa(npa));
            if picked.is_none() && settings.geomatch_region_fallback {
                if let Some(region) = region_of(npa) {
                    picked = rules.pick(pool, RotationKey::Region(region));
                }
            }
        }
    }
    // 3. and 4. Weighted, over eligible (healthy if asked) senders.
    let (slot, reason) = match picked {
        Some(slot) => (slot, Reason::Geomatch),
        None => (pick_weighted(&rules, pool, weighted)?, Reason::Weighted),
    };

    let sender = pool
        .sender_in(slot)
        .map(|s| s.number)
        .expect("picked slots hold a sender");
    let mapping = if settings.sticky_sender && sticky.assign(recipient, pool.reference(slot), now) {
        MappingOutcome::Created
    } else {
        MappingOutcome::None
    };
    Ok(Selection {
        sender,
        reason,
        mapping,
        previous_use: None,
    })
}

/// Step 3, weighted: choose the kind by smooth weighted round-robin among
/// kinds that have an eligible sender now, then the next sender of that kind.
fn pick_weighted(
    rules: &PickRules<'_>,
    pool: &mut Pool,
    weighted: &mut SmoothWeighted,
) -> Result<u32, NoSender> {
    let candidate = |kind: usize| {
        if rules.weights[kind] > 0.0 {
            pool.rotation(RotationKey::Kind(kind))?
                .peek(|slot| rules.slot_eligible(pool, slot))
        } else {
            None
        }
    };
    let candidates = [candidate(LONG_CODE), candidate(TOLL_FREE)];
    let effective = [LONG_CODE, TOLL_FREE].map(|k| {
        if candidates[k].is_some() {
            rules.weights[k]
        } else {
            0.0
        }
    });
    let Some(kind) = weighted.pick(effective) else {
        return Err(no_sender_cause(rules, pool));
    };
    let member = candidates[kind].expect("a kind with weight has a candidate");
    if let Some(rotation) = pool.rotation_mut(RotationKey::Kind(kind)) {
        rotation.commit(member);
    }
    Ok(member.slot)
}

/// Names why nothing was eligible (only on the failure path).
fn no_sender_cause(rules: &PickRules<'_>, pool: &Pool) -> NoSender {
    let counts = pool.kind_counts();
    if counts == [0, 0] {
        NoSender::EmptyPool
    } else if rules.weights.iter().all(|w| *w <= 0.0) {
        NoSender::BothWeightsZero
    } else if (0..2).all(|k| counts[k] == 0 || rules.weights[k] <= 0.0) {
        NoSender::NoSenderOfWeightedKind
    } else {
        NoSender::NoHealthySender
    }
}
