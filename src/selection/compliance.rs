//! Compliance: whether a message may go at all. A profile can be switched
//! off, limited to destinations, and its recipients can opt out by texting
//! a keyword to any of its numbers (the whole profile stops sending to
//! them) and back in.
//!
//! The checks run before anything is selected, in this order: the profile
//! is enabled, the recipient's region is allowed, the recipient has not
//! opted out. A refused message changes nothing.

use std::fmt;

use crate::geo::destinations::{is_known_region, RegionCode};
use crate::number::PhoneNumber;

/// Where a profile may send: anywhere, or to the listed regions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Destinations {
    /// `["*"]`.
    #[default]
    Anywhere,
    /// ISO 3166-1 alpha-2 codes, sorted.
    Only(Vec<RegionCode>),
}

/// Why a `whitelisted_destinations` list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("whitelisted_destinations[{index}]: {value:?} is not an ISO 3166-1 alpha-2 region code or \"*\"")]
pub struct DestinationsError {
    /// The position of the entry at fault.
    pub index: usize,
    /// The entry.
    pub value: String,
}

impl Destinations {
    /// The destinations a `whitelisted_destinations` list names: `"*"`
    /// anywhere in it means anywhere; every other entry must be a region
    /// code numbers can have (or an ISO code without numbers of its own).
    pub(crate) fn parse(list: &[String]) -> Result<Destinations, DestinationsError> {
        let mut regions = Vec::with_capacity(list.len());
        let mut anywhere = false;
        for (index, value) in list.iter().enumerate() {
            if value == "*" {
                anywhere = true;
            } else if is_known_region(value) {
                let b = value.as_bytes();
                regions.push(RegionCode::new([b[0], b[1]]));
            } else {
                return Err(DestinationsError {
                    index,
                    value: value.clone(),
                });
            }
        }
        if anywhere {
            return Ok(Destinations::Anywhere);
        }
        regions.sort_unstable();
        regions.dedup();
        Ok(Destinations::Only(regions))
    }

    /// `list` without repeated entries, in the order given: what a profile
    /// keeps (valid entries are the ~250 region codes and `"*"`, so the
    /// list stays that short whatever was sent).
    pub(crate) fn canonical(list: &[String]) -> Vec<String> {
        let mut seen = std::collections::HashSet::with_capacity(list.len().min(256));
        list.iter()
            .filter(|v| seen.insert(v.as_str()))
            .cloned()
            .collect()
    }

    /// [`Destinations::parse`] for a list read back from disk: an entry
    /// this build does not know is left out rather than stop start-up.
    pub(crate) fn recovered(list: &[String]) -> Destinations {
        let known: Vec<String> = list
            .iter()
            .filter(|v| *v == "*" || is_known_region(v))
            .cloned()
            .collect();
        Destinations::parse(&known).unwrap_or(Destinations::Only(Vec::new()))
    }

    /// Whether a message to `to` may go: `Err` with the recipient's region
    /// (`None` when it has none) when it may not.
    #[inline]
    pub(crate) fn check(&self, to: PhoneNumber) -> Result<(), Option<RegionCode>> {
        match self {
            Destinations::Anywhere => Ok(()),
            Destinations::Only(allowed) => {
                let region = to.region_code();
                match region {
                    Some(r) if allowed.binary_search(&r).is_ok() => Ok(()),
                    _ => Err(region),
                }
            }
        }
    }
}

/// A keyword that opts a recipient out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OptOutKeyword {
    /// `STOP`.
    Stop,
    /// `STOPALL`.
    StopAll,
    /// `UNSUBSCRIBE`.
    Unsubscribe,
    /// `CANCEL`.
    Cancel,
    /// `END`.
    End,
    /// `QUIT`.
    Quit,
}

const KEYWORDS: [(OptOutKeyword, &str); 6] = [
    (OptOutKeyword::Stop, "STOP"),
    (OptOutKeyword::StopAll, "STOPALL"),
    (OptOutKeyword::Unsubscribe, "UNSUBSCRIBE"),
    (OptOutKeyword::Cancel, "CANCEL"),
    (OptOutKeyword::End, "END"),
    (OptOutKeyword::Quit, "QUIT"),
];

impl OptOutKeyword {
    /// The keyword as texted, upper case.
    pub fn as_str(self) -> &'static str {
        KEYWORDS[self as usize].1
    }

    /// The keyword's code in the journal (1 to 6).
    pub(crate) fn code(self) -> u8 {
        self as u8 + 1
    }

    /// The keyword of a journal code.
    pub(crate) fn from_code(code: u8) -> Option<OptOutKeyword> {
        KEYWORDS.get(usize::from(code).checked_sub(1)?).map(|k| k.0)
    }
}

impl fmt::Display for OptOutKeyword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an inbound text asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InboundKeyword {
    /// Opt out (`STOP`, ...).
    OptOut(OptOutKeyword),
    /// Opt back in (`START`, `UNSTOP`).
    OptIn,
}

impl InboundKeyword {
    /// The keyword an inbound text is, if it is one: the whole text,
    /// trimmed, compared without regard to case. A keyword inside a longer
    /// text is not one.
    pub(crate) fn parse(text: &str) -> Option<InboundKeyword> {
        let word = text.trim();
        if ["START", "UNSTOP"]
            .iter()
            .any(|k| k.eq_ignore_ascii_case(word))
        {
            return Some(InboundKeyword::OptIn);
        }
        KEYWORDS
            .iter()
            .find(|(_, k)| k.eq_ignore_ascii_case(word))
            .map(|(kw, _)| InboundKeyword::OptOut(*kw))
    }
}

/// One recipient's opt-out: how (the keyword texted, or `None` when set
/// through the API), through which of the profile's numbers, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OptOut {
    /// The keyword texted; `None` when set through the API.
    pub keyword: Option<OptOutKeyword>,
    /// The pool number texted; `None` when set through the API.
    pub via: Option<PhoneNumber>,
    /// When (seconds since the Unix epoch).
    pub at: u32,
}

/// A profile's opted-out recipients: an open-addressing table of the
/// recipients with each opt-out packed in a parallel word (`at` in the high
/// 32 bits, then the number of its `via` sender among `vias` plus one, then
/// the keyword's code). The table grows by half when 85% full, so it stays
/// 60 to 85% full: 16 bytes a slot, 19 to 27 bytes a recipient.
///
/// Most recipients of a send have not opted out, and in a table that full
/// a miss probes far; a blocked Bloom filter in front (a byte a slot, one
/// cache line a check) answers almost every miss from one line, and the
/// table is read only for the rest. Empty (and unallocated) for most
/// profiles.
#[derive(Debug, Clone, Default)]
pub(crate) struct OptOuts {
    /// Cache-line blocks of filter bits; every recipient in the table has
    /// its bits set (removed ones may keep theirs until the next rebuild).
    filter: Vec<FilterBlock>,
    /// Recipients by slot; `EMPTY` and `REMOVED` are no phone number.
    keys: Vec<u64>,
    metas: Vec<u64>,
    len: usize,
    /// Slots holding a recipient or `REMOVED`.
    used: usize,
    /// The pool numbers opt-outs came through (a profile has few).
    vias: Vec<PhoneNumber>,
    /// How many opt-outs in the table came through each of `vias`.
    via_counts: Vec<u32>,
    /// Mixed into every key's hash, new at every rebuild: entries read out
    /// of one table (in its slot order, as a snapshot holds them) arrive in
    /// no particular order for another, so loading them stays linear
    /// (with one hash for all, they would arrive sorted by home slot and
    /// pile up into one long probe run: quadratic).
    seed: u64,
    /// Opt-outs put back by [`OptOuts::stage`], not in the table yet.
    staged: Vec<(PhoneNumber, OptOut)>,
}

const EMPTY: u64 = 0;
const REMOVED: u64 = u64::MAX;

/// 512 filter bits: one cache line.
#[derive(Debug, Clone, Copy, Default)]
#[repr(align(64))]
struct FilterBlock([u64; 8]);

/// Bits a recipient sets in its block.
const FILTER_BITS: u32 = 6;

/// The block of `key` among `blocks`, and the mask of its bits in each word.
#[inline]
fn filter_spot(key: u64, blocks: usize) -> (usize, [u64; 8]) {
    let h = mix(key ^ 0x517c_c1b7_2722_0a95);
    let block = ((u128::from(h) * blocks as u128) >> 64) as usize;
    let mut mask = [0u64; 8];
    let mut bits = mix(h);
    for _ in 0..FILTER_BITS {
        let bit = (bits & 511) as usize;
        mask[bit / 64] |= 1 << (bit % 64);
        bits >>= 9;
    }
    (block, mask)
}

/// splitmix64's finalizer.
#[inline]
fn mix(key: u64) -> u64 {
    let mut z = key.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The slot a probe for `key` starts at, in a table of `slots` hashed with
/// `seed` (the high half of a 128-bit product maps the hash onto any table
/// size).
#[inline]
fn home(key: u64, seed: u64, slots: usize) -> usize {
    ((u128::from(mix(key ^ seed)) * slots as u128) >> 64) as usize
}

/// A seed no other table has had.
fn fresh_seed() -> u64 {
    use std::hash::BuildHasher;
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    foldhash::fast::RandomState::default().hash_one(NEXT.fetch_add(1, Ordering::Relaxed))
}

impl OptOuts {
    fn pack(&mut self, o: OptOut) -> u64 {
        let via = match o.via {
            None => 0,
            Some(n) => match self.vias.iter().position(|v| *v == n) {
                Some(i) => i + 1,
                None => {
                    self.vias.push(n);
                    self.via_counts.push(0);
                    self.vias.len()
                }
            },
        };
        u64::from(o.at) << 32
            | (via as u64 & 0x1fff_ffff) << 3
            | u64::from(o.keyword.map_or(0, OptOutKeyword::code))
    }

    /// The `vias` index (plus one; 0 for none) packed in `meta`.
    fn via_of(meta: u64) -> usize {
        ((meta >> 3) & 0x1fff_ffff) as usize
    }

    /// Moves the count of `meta`'s via number up or down.
    fn count_via(&mut self, meta: u64, up: bool) {
        if let Some(c) = Self::via_of(meta)
            .checked_sub(1)
            .and_then(|i| self.via_counts.get_mut(i))
        {
            *c = if up { *c + 1 } else { c.saturating_sub(1) };
        }
    }

    /// Opt-outs that came in through `via`.
    pub(crate) fn via_count(&self, via: PhoneNumber) -> u32 {
        self.vias
            .iter()
            .position(|v| *v == via)
            .map_or(0, |i| self.via_counts[i])
    }

    fn unpack(&self, meta: u64) -> OptOut {
        let via = Self::via_of(meta);
        OptOut {
            keyword: OptOutKeyword::from_code((meta & 7) as u8),
            via: via.checked_sub(1).and_then(|i| self.vias.get(i).copied()),
            at: (meta >> 32) as u32,
        }
    }

    /// Whether the filter lets `key` through (it may be in the table).
    #[inline]
    fn may_hold(&self, key: u64) -> bool {
        let (block, mask) = filter_spot(key, self.filter.len());
        let words = &self.filter[block].0;
        (0..8).all(|w| words[w] & mask[w] == mask[w])
    }

    /// The slot holding `key`, if any.
    #[inline]
    fn find(&self, key: u64) -> Option<usize> {
        let slots = self.keys.len();
        if self.len == 0 || !self.may_hold(key) {
            return None;
        }
        let mut i = home(key, self.seed, slots);
        loop {
            match self.keys[i] {
                k if k == key => return Some(i),
                EMPTY => return None,
                _ => i = if i + 1 == slots { 0 } else { i + 1 },
            }
        }
    }

    /// Starts bringing in the slot a check of `to` reads, so that the check
    /// overlaps other reads (a selection's sticky lookup).
    #[inline]
    pub(crate) fn prefetch(&self, to: PhoneNumber) {
        if self.len > 0 {
            let (block, _) = filter_spot(to.as_u64(), self.filter.len());
            super::prefetch(&self.filter[block]);
        }
    }

    /// Whether `to` has opted out.
    #[inline]
    pub(crate) fn contains(&self, to: PhoneNumber) -> bool {
        // Most profiles have no opt-outs: answer that without a call.
        self.len > 0 && self.find(to.as_u64()).is_some()
    }

    /// The opt-out of `to`, if any.
    pub(crate) fn get(&self, to: PhoneNumber) -> Option<OptOut> {
        self.find(to.as_u64()).map(|i| self.unpack(self.metas[i]))
    }

    /// Records that `to` opted out (replacing an earlier opt-out).
    pub(crate) fn insert(&mut self, to: PhoneNumber, opt_out: OptOut) {
        let meta = self.pack(opt_out);
        self.count_via(meta, true);
        let key = to.as_u64();
        if let Some(i) = self.find(key) {
            self.count_via(self.metas[i], false);
            self.metas[i] = meta;
            return;
        }
        if (self.used + 1) * 100 > self.keys.len() * 85 {
            self.resize((self.len + 1) * 3 / 2 + 8);
        }
        let slots = self.keys.len();
        let mut i = home(key, self.seed, slots);
        while self.keys[i] != EMPTY && self.keys[i] != REMOVED {
            i = if i + 1 == slots { 0 } else { i + 1 };
        }
        if self.keys[i] == EMPTY {
            self.used += 1;
        }
        self.keys[i] = key;
        self.metas[i] = meta;
        self.len += 1;
        self.mark(key);
    }

    /// Puts back many opt-outs (recovery), in runs: called any number of
    /// times, then [`OptOuts::insert_staged`] once, it does what
    /// [`OptOuts::insert`] for each in turn does; nothing else may use the
    /// table in between. The table is then sized once for the lot: grown
    /// run by run (by half each time it filled), a table of a million was
    /// rebuilt about ten times, every entry a cache miss each time.
    pub(crate) fn stage(&mut self, all: &[(PhoneNumber, OptOut)]) {
        self.staged.extend_from_slice(all);
    }

    /// Inserts what [`OptOuts::stage`] put back, in the order it came.
    pub(crate) fn insert_staged(&mut self) {
        let staged = std::mem::take(&mut self.staged);
        self.insert_all(&staged);
    }

    /// Records many opt-outs: the same as [`OptOuts::insert`] for each in
    /// turn, but the table grows at most once for all of them, and the
    /// filter block and home slot of each are fetched a few opt-outs
    /// ahead: in a table of millions each is a cache miss.
    fn insert_all(&mut self, all: &[(PhoneNumber, OptOut)]) {
        const AHEAD: usize = 8;
        if (self.used + all.len()) * 100 > self.keys.len() * 85 {
            self.resize((self.len + all.len()) * 3 / 2 + 8);
        }
        for (k, &(to, opt_out)) in all.iter().enumerate() {
            if let Some(&(ahead, _)) = all.get(k + AHEAD) {
                let key = ahead.as_u64();
                let (block, _) = filter_spot(key, self.filter.len());
                super::prefetch(&self.filter[block]);
                super::prefetch(&self.keys[home(key, self.seed, self.keys.len())]);
            }
            self.insert(to, opt_out);
        }
    }

    /// Sets the filter bits of `key`.
    fn mark(&mut self, key: u64) {
        let (block, mask) = filter_spot(key, self.filter.len());
        for (word, bits) in self.filter[block].0.iter_mut().zip(mask) {
            *word |= bits;
        }
    }

    /// `to` opts back in; returns its opt-out, if it had one.
    pub(crate) fn remove(&mut self, to: PhoneNumber) -> Option<OptOut> {
        let i = self.find(to.as_u64())?;
        self.keys[i] = REMOVED;
        self.len -= 1;
        self.count_via(self.metas[i], false);
        Some(self.unpack(self.metas[i]))
    }

    /// Rebuilds the table with `slots` slots (dropping removed entries).
    fn resize(&mut self, slots: usize) {
        let old = std::mem::take(&mut self.keys);
        let metas = std::mem::take(&mut self.metas);
        self.keys = vec![EMPTY; slots];
        self.metas = vec![0; slots];
        self.seed = fresh_seed();
        // A byte of filter a slot: about 10 bits a recipient, so about one
        // miss in a hundred gets through to the table.
        self.filter = vec![FilterBlock::default(); slots.div_ceil(64)];
        self.used = self.len;
        for (key, meta) in old.into_iter().zip(metas) {
            if key != EMPTY && key != REMOVED {
                let mut i = home(key, self.seed, slots);
                while self.keys[i] != EMPTY {
                    i = if i + 1 == slots { 0 } else { i + 1 };
                }
                self.keys[i] = key;
                self.metas[i] = meta;
                self.mark(key);
            }
        }
    }

    /// Opted-out recipients.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn entries(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.keys
            .iter()
            .zip(&self.metas)
            .filter(|(k, _)| **k != EMPTY && **k != REMOVED)
            .map(|(k, m)| (*k, *m))
    }

    /// Up to `limit` opt-outs in storage order, starting at slot `from`,
    /// looking at no more than `budget` slots: the opt-outs and the slot the
    /// next page starts at (`None` after the last). Costs the slots looked
    /// at, not the table; the order is stable while the opt-outs do not
    /// change.
    pub(crate) fn page_from(
        &self,
        from: usize,
        limit: usize,
        budget: usize,
    ) -> (Vec<(PhoneNumber, OptOut)>, Option<usize>) {
        let mut out = Vec::with_capacity(limit.min(256));
        let end = self.keys.len();
        let mut at = from.min(end);
        let stop = at.saturating_add(budget.max(1)).min(end);
        while at < stop && out.len() < limit {
            let key = self.keys[at];
            if key != EMPTY && key != REMOVED {
                if let Some(to) = PhoneNumber::from_u64(key) {
                    out.push((to, self.unpack(self.metas[at])));
                }
            }
            at += 1;
        }
        (out, (at < end).then_some(at))
    }

    /// Every opt-out, unordered (snapshots).
    pub(crate) fn all(&self) -> impl Iterator<Item = (PhoneNumber, OptOut)> + '_ {
        self.entries()
            .filter_map(|(k, m)| Some((PhoneNumber::from_u64(k)?, self.unpack(m))))
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        (self.keys.capacity() + self.metas.capacity()) * 8
            + self.filter.capacity() * std::mem::size_of::<FilterBlock>()
            + self.vias.capacity() * std::mem::size_of::<PhoneNumber>()
    }
}

#[cfg(test)]
#[path = "compliance_tests.rs"]
mod tests;
