//! [`StickyMap`]: recipient -> sender mappings of one profile, with expiry.

use std::hash::BuildHasher;
use std::sync::Arc;

use super::counts::SenderCounts;
use super::index::Index;
use super::peek::PeekTable;
use super::slab::{Entry, Slab};
use super::wheel::TimerWheel;
use crate::number::PhoneNumber;
use crate::selection::pool::SenderRef;

/// Default number of shards per map.
pub(crate) const DEFAULT_SHARDS: usize = 16;

/// A mapping as callers see it. Times are seconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mapping {
    pub recipient: PhoneNumber,
    pub sender: SenderRef,
    pub created_at: u32,
    pub last_used: u32,
    /// `None` for a pinned mapping, which does not expire.
    pub expires_at: Option<u32>,
    pub pinned: bool,
}

/// Where a look-ahead found a recipient's entry likely to be: a shard and
/// an entry id, or nothing. Only a guess: [`StickyMap::touch`] checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hint(u64);

impl Hint {
    /// No guess: the lookup hashes and probes.
    pub(crate) const NONE: Hint = Hint(u64::MAX);

    #[inline]
    pub(super) fn at(shard: usize, id: u32) -> Hint {
        Hint(((shard as u64) << 32) | u64::from(id))
    }

    #[inline]
    fn get(self) -> Option<(usize, u32)> {
        (self != Hint::NONE).then_some(((self.0 >> 32) as usize, self.0 as u32))
    }
}

/// A place in a map's storage order, where a page of mappings starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct MapPosition {
    /// The shard.
    pub shard: u32,
    /// The entry within the shard.
    pub entry: u32,
}

/// What one expiry pass did (see `Engine::expire_now`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpireReport {
    /// Mappings removed because their ttl ran out.
    pub expired: usize,
    /// Entries freed because their mapping was removed or its sender left.
    pub reclaimed: usize,
    /// Whether every shard reached `now`; `false` when the budget ran out.
    pub done: bool,
}

/// Whether a run of restored mappings may hold a recipient more than once
/// (see [`StickyMap::restore_unindexed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recipients {
    /// Each recipient once: a snapshot's image of a map.
    Distinct,
    /// A log's: a recipient mapped again, after a removal or an expiry.
    MayRepeat,
}

/// One shard. Invariant: an entry of the slab is in the index exactly when
/// it is not vacant, and every allocated entry is in the wheel exactly once
/// (but see `unindexed_from`).
struct Shard {
    index: Index,
    slab: Slab,
    wheel: TimerWheel,
    /// Entries from this id to the slab's high water were stored by
    /// [`StickyMap::restore_unindexed`] and are not yet indexed, armed or
    /// counted: only more of those and then [`StickyMap::index_restored`]
    /// may run meanwhile (`find` checks, in debug builds).
    unindexed_from: Option<u32>,
    /// Where the index words and the slab's chunk starts were when the
    /// map's [`PeekTable`] was last told (see [`Shard::layout`]).
    published: (usize, usize),
}

impl Shard {
    fn new(now: u32) -> Self {
        Shard {
            index: Index::default(),
            slab: Slab::default(),
            wheel: TimerWheel::new(u64::from(now)),
            unindexed_from: None,
            published: (0, 0),
        }
    }

    /// Where its index words and its slab's chunk starts are: the two
    /// tables a published view of it shares (see `peek`). While neither
    /// moves, the view sees what changes in them.
    fn layout(&self) -> (usize, usize) {
        let words = Arc::as_ptr(self.index.words()).cast::<u8>().addr();
        let starts = Arc::as_ptr(self.slab.starts()).cast::<u8>().addr();
        (words, starts)
    }

    #[inline(always)]
    fn find(&self, hash: u64, recipient: u64) -> Option<u32> {
        debug_assert!(self.unindexed_from.is_none(), "a restore not indexed yet");
        let slab = &self.slab;
        self.index
            .find(hash, |id| slab.get(id).recipient() == recipient)
    }

    /// Takes entry `id` out of the index and marks it vacant; the wheel
    /// frees it when it reaches it.
    fn unindex(&mut self, id: u32, hasher: &Hasher, counts: &mut SenderCounts) {
        let e = self.slab.get(id);
        counts.remove(e.sender(), e.pinned());
        let hash = hasher.hash_one(e.recipient());
        self.index.remove(hash, id);
        self.slab.get_mut(id).set_vacant();
    }

    /// Rebuilds the index from the slab's entries below id `below` with
    /// room for `more` ids beyond them; `skip`, an entry allocated but not
    /// indexed yet, stays out.
    fn regrow(&mut self, hasher: &Hasher, below: u32, skip: Option<u32>, more: usize) {
        let count = self.index.len() + more;
        let indexed = self
            .slab
            .entries()
            .take_while(|&(id, _)| id < below)
            .filter(|&(id, e)| Some(id) != skip && !e.is_vacant())
            .map(|(id, e)| (id, hasher.hash_one(e.recipient())));
        self.index.rebuild(indexed, count);
    }
}

/// Sticky mappings of one profile, sharded by recipient hash. Each shard
/// pairs an index of slab ids (see `index`) with a timing wheel.
///
/// - A hit only sets `last_used`; the wheel keeps the old deadline and, when
///   it comes, the entry is re-armed if it was used since (lazy rescheduling).
/// - Liveness is decided on every read (`now < last_used + ttl`, or pinned),
///   so an entry the wheel has not reached yet is never visible once expired.
/// - Mappings store the sender's `(slot, generation)`; callers pass a
///   validity check, so a sender leaving the pool invalidates its mappings
///   without a scan. Stale entries are freed when the wheel reaches them.
/// - Every stored entry is in its shard's wheel exactly once (pinned ones
///   are re-armed one ttl ahead each time they are reached).
/// - Each shard's layout is published to a [`PeekTable`], so that a send
///   can start its lookup before it takes the profile's lock.
pub(crate) struct StickyMap {
    /// Empty until the first mapping is made, so a profile that never maps
    /// anyone (or an idle one) costs no shards (only its `peek` table, a
    /// pointer a shard); then `shard_mask + 1` shards.
    shards: Vec<Shard>,
    shard_mask: usize,
    hasher: Hasher,
    ttl: u32,
    /// The shard the next budgeted expiry pass starts with.
    next_shard: usize,
    /// Stored mappings per sender.
    counts: SenderCounts,
    /// Where sends look before taking the lock (see `peek`).
    peek: Arc<PeekTable>,
}

/// The recipients' hash. Phone numbers come in runs (consecutive lines of
/// an area code), and under one process seed in three `foldhash`'s fast
/// variant left the low bits of such runs, the index's bucket, clustered:
/// a sticky hit then read 3 to 10 index words instead of about 2.6. The
/// quality variant's extra multiply spreads them whatever the seed.
/// Seedable, so that tests can try many seeds.
pub(super) type Hasher = foldhash::quality::SeedableRandomState;

/// The shard and hash a lookup of `recipient` starts from.
#[inline]
pub(super) fn locate(hasher: &Hasher, shard_mask: usize, recipient: u64) -> (usize, u64) {
    let hash = hasher.hash_one(recipient);
    // The index uses the low bits (bucket) and top 8 bits (tag) of the
    // hash; take the shard from bits in between so each stays random.
    ((hash >> 40) as usize & shard_mask, hash)
}

#[inline]
fn hash_of(hasher: &Hasher, e: &Entry) -> u64 {
    hasher.hash_one(e.recipient())
}

#[inline]
fn is_live(e: &Entry, now: u32, ttl: u32) -> bool {
    e.pinned() || u64::from(now) < u64::from(e.last_used) + u64::from(ttl)
}

impl StickyMap {
    /// An empty map with `ttl` seconds and `shards` shards (rounded up to a
    /// power of two). Only the [`PeekTable`] is allocated until the first
    /// mapping.
    pub(crate) fn new(ttl: u32, shards: usize) -> Self {
        let n = shards.max(1).next_power_of_two();
        let hasher = Hasher::random();
        StickyMap {
            shards: Vec::new(),
            shard_mask: n - 1,
            peek: Arc::new(PeekTable::new(hasher.clone(), n - 1)),
            hasher,
            ttl: ttl.max(1),
            next_shard: 0,
            counts: SenderCounts::default(),
        }
    }

    /// [`StickyMap::new`] with its hash seeded: tests whose figures
    /// depend on where keys fall try fixed seeds, not a random one.
    #[cfg(test)]
    pub(super) fn seeded(ttl: u32, shards: usize, seed: u64) -> Self {
        let shared: &'static foldhash::SharedSeed =
            Box::leak(Box::new(foldhash::SharedSeed::from_u64(seed)));
        let mut map = StickyMap::new(ttl, shards);
        map.hasher = Hasher::with_seed(seed, shared);
        map.peek = Arc::new(PeekTable::new(map.hasher.clone(), map.shard_mask));
        map
    }

    /// Where sends look before taking the profile's lock: the map keeps
    /// it up to date (see `peek`).
    pub(crate) fn peek_table(&self) -> Arc<PeekTable> {
        Arc::clone(&self.peek)
    }

    /// Publishes shard `s`'s layout, if it changed since last published.
    /// Always inlined, as is `Slab::alloc`: the compiler's own choice for
    /// both, in `put_located`, changed with code elsewhere in the crate (a
    /// second caller of the batch's selection pass), at about 60
    /// instructions a new mapping (callgrind).
    #[inline(always)]
    fn publish(&mut self, s: usize) {
        let shard = &mut self.shards[s];
        let layout = shard.layout();
        if shard.published != layout {
            shard.published = layout;
            self.peek
                .publish(s, shard.index.words(), shard.slab.starts());
        }
    }

    /// Seconds of silence after which a mapping expires.
    pub(crate) fn ttl(&self) -> u32 {
        self.ttl
    }

    /// Changes the ttl of every live mapping. Mappings already expired under
    /// the old ttl are removed first, so a longer ttl never revives them.
    /// This scans the map once (ttl changes are rare administrative acts).
    /// A longer ttl leaves every entry armed no later than its new deadline
    /// (the wheel re-arms lazily); a shorter one would leave entries armed
    /// past theirs, so each shard is rebuilt with its live mappings armed
    /// at their new deadlines, keeping the wheels (and the per-sender
    /// counts) exact.
    pub(crate) fn set_ttl(&mut self, ttl: u32, now: u32) {
        let old = self.ttl;
        let new = ttl.max(1);
        self.ttl = new;
        if new >= old {
            for shard in self.shards.iter_mut() {
                for id in 0..shard.slab.len() {
                    let e = shard.slab.get(id);
                    if !e.is_vacant() && !is_live(e, now, old) {
                        shard.unindex(id, &self.hasher, &mut self.counts);
                    }
                }
            }
            return;
        }
        let before = std::mem::take(&mut self.shards);
        self.peek.withdraw_all();
        self.counts.clear();
        self.next_shard = 0;
        if before.is_empty() {
            return;
        }
        self.shards = (0..=self.shard_mask).map(|_| Shard::new(now)).collect();
        for shard in before {
            for (_, e) in shard.slab.entries() {
                if !e.is_vacant() && is_live(e, now, old) && is_live(e, now, new) {
                    // Cannot fail: the entries fitted in the same shards before.
                    self.put(*e, e.last_used);
                }
            }
        }
    }

    #[inline]
    fn locate(&self, recipient: u64) -> (usize, u64) {
        locate(&self.hasher, self.shard_mask, recipient)
    }

    /// The sticky hit: if `recipient` has a live mapping and `check` accepts
    /// its sender, marks it used at `now` and returns what `check` returned
    /// with the mapping's previous use. `hint`, from a look-ahead (a
    /// batch's [`StickyMap::prefetch_entry`], or a single send's
    /// [`PeekTable::look_ahead`] before the lock, maybe of a map since
    /// replaced), is checked first: where it holds, the lookup neither
    /// hashes nor probes. Always inlined: it is most of
    /// a sticky hit, the most common selection (see `ProfileState::select`).
    #[inline(always)]
    pub(crate) fn touch<T>(
        &mut self,
        recipient: PhoneNumber,
        hint: Hint,
        now: u32,
        check: impl FnOnce(SenderRef) -> Option<T>,
    ) -> Option<(T, u32)> {
        let key = recipient.as_u64();
        let ttl = self.ttl;
        let e = match self.hinted(hint, key) {
            Some((s, id)) => self.shards.get_mut(s)?.slab.try_get_mut(id)?,
            None => {
                let (s, hash) = self.locate(key);
                let shard = self.shards.get_mut(s)?;
                let id = shard.find(hash, key)?;
                shard.slab.get_mut(id)
            }
        };
        if !is_live(e, now, ttl) {
            return None;
        }
        let accepted = check(e.sender())?;
        let previous = e.last_used;
        // Written only when the second moved on: a hit within the same
        // second leaves the entry's cache line clean, so callers on other
        // cores keep their copies (and nothing is written back).
        if now > previous {
            e.last_used = now;
        }
        Some((accepted, previous))
    }

    /// Where `hint` says `key`'s entry is, if it is there: an entry that
    /// holds a mapping (not vacant) is in its shard's index, and a shard
    /// indexes a recipient once, so an entry of `key` found this way is the
    /// one a lookup would find, however the map changed since the hint.
    #[inline(always)]
    fn hinted(&self, hint: Hint, key: u64) -> Option<(usize, u32)> {
        let (s, id) = hint.get()?;
        let shard = self.shards.get(s)?;
        debug_assert!(shard.unindexed_from.is_none(), "a restore not indexed yet");
        let e = shard.slab.try_get(id)?;
        (e.recipient() == key && !e.is_vacant()).then_some((s, id))
    }

    /// Stage 1 of a batch's look-ahead: fetches the index word a lookup of
    /// `recipient` reads first.
    #[inline]
    pub(crate) fn prefetch_index(&self, recipient: PhoneNumber) {
        let (s, hash) = self.locate(recipient.as_u64());
        if let Some(shard) = self.shards.get(s) {
            shard.index.prefetch(hash);
        }
    }

    /// Stage 2, some lookups later (the word's line is in cache by then):
    /// fetches the entry named by the first word on the probe with the
    /// recipient's tag, where a hit almost always ends, and returns where
    /// that is, so that the lookup itself ([`StickyMap::touch`]) starts
    /// there.
    #[inline]
    pub(crate) fn prefetch_entry(&self, recipient: PhoneNumber) -> Hint {
        let (s, hash) = self.locate(recipient.as_u64());
        let Some(shard) = self.shards.get(s) else {
            return Hint::NONE;
        };
        match shard.index.candidate(hash) {
            Some(id) => {
                shard.slab.prefetch(id);
                Hint::at(s, id)
            }
            None => Hint::NONE,
        }
    }

    /// For a third stage of looking ahead: the sender of the entry at
    /// `hint` (stage 2's), if it is `recipient`'s, so that its state can
    /// be fetched before the lookup reaches it.
    #[inline]
    pub(crate) fn likely_sender(&self, recipient: PhoneNumber, hint: Hint) -> Option<SenderRef> {
        let (s, id) = self.hinted(hint, recipient.as_u64())?;
        Some(self.shards[s].slab.get(id).sender())
    }

    /// The live mapping of `recipient` whose sender passes `valid`, without touching it.
    pub(crate) fn get(
        &self,
        recipient: PhoneNumber,
        now: u32,
        valid: impl FnOnce(SenderRef) -> bool,
    ) -> Option<Mapping> {
        let key = recipient.as_u64();
        let (s, hash) = self.locate(key);
        let shard = self.shards.get(s)?;
        let e = shard.slab.get(shard.find(hash, key)?);
        (is_live(e, now, self.ttl) && valid(e.sender())).then(|| self.view(e))
    }

    fn view(&self, e: &Entry) -> Mapping {
        Mapping {
            recipient: PhoneNumber::from_u64(e.recipient()).expect("stored recipients are valid"),
            sender: e.sender(),
            created_at: e.created_at,
            last_used: e.last_used,
            expires_at: (!e.pinned()).then(|| e.last_used.saturating_add(self.ttl)),
            pinned: e.pinned(),
        }
    }

    /// Maps `recipient` to `sender` from `now` on, replacing any mapping it
    /// had. Returns `false` if the shard is full (2^24 entries).
    #[inline]
    pub(crate) fn assign(&mut self, recipient: PhoneNumber, sender: SenderRef, now: u32) -> bool {
        self.put(Entry::new(recipient.as_u64(), sender, now, false), now)
    }

    /// Pins `recipient` to `sender`: the mapping does not expire until
    /// removed. Returns `false` if the shard is full.
    pub(crate) fn pin(&mut self, recipient: PhoneNumber, sender: SenderRef, now: u32) -> bool {
        self.put(Entry::new(recipient.as_u64(), sender, now, true), now)
    }

    /// Puts back a mapping as it was (recovery): made at `created_at`, last
    /// used at `last_used`. Returns `false` if the shard is full.
    pub(crate) fn restore(
        &mut self,
        recipient: PhoneNumber,
        sender: SenderRef,
        created_at: u32,
        last_used: u32,
        pinned: bool,
    ) -> bool {
        let entry = Entry::with_times(recipient.as_u64(), sender, created_at, last_used, pinned);
        self.put(entry, last_used)
    }

    /// Moves a mapping's last use forward to `last_used` (recovery).
    pub(crate) fn restore_touch(&mut self, recipient: PhoneNumber, last_used: u32) {
        let key = recipient.as_u64();
        let (s, hash) = self.locate(key);
        if let Some(shard) = self.shards.get_mut(s) {
            if let Some(id) = shard.find(hash, key) {
                let e = shard.slab.get_mut(id);
                e.last_used = e.last_used.max(last_used);
            }
        }
    }

    fn put(&mut self, entry: Entry, now: u32) -> bool {
        let (s, hash) = self.locate(entry.recipient());
        self.ensure_shards(now);
        self.put_located(s, hash, entry, now)
    }

    /// Creates the shards, if not yet made, with their wheels at `now`.
    fn ensure_shards(&mut self, now: u32) {
        if self.shards.is_empty() {
            self.shards = (0..=self.shard_mask).map(|_| Shard::new(now)).collect();
        }
    }

    /// [`StickyMap::put`] with the shard and hash already located.
    #[inline]
    fn put_located(&mut self, s: usize, hash: u64, entry: Entry, now: u32) -> bool {
        let key = entry.recipient();
        let deadline = u64::from(now) + u64::from(self.ttl);
        let hasher = &self.hasher;
        let shard = &mut self.shards[s];
        if let Some(id) = shard.find(hash, key) {
            // The entry stays where the wheel has it; the wheel re-arms it later.
            let old = shard.slab.get_mut(id);
            self.counts.remove(old.sender(), old.pinned());
            old.replace(entry);
            self.counts.add(entry.sender(), entry.pinned());
            return true;
        }
        let Some(id) = shard.slab.alloc(entry) else {
            return false;
        };
        self.counts.add(entry.sender(), entry.pinned());
        if !shard.index.has_room() {
            // Grow: every other non-vacant entry is indexed (the new one is not yet).
            shard.regrow(hasher, u32::MAX, Some(id), 0);
        }
        shard.index.insert(hash, id);
        shard.wheel.insert(&mut shard.slab, id, deadline);
        self.publish(s);
        true
    }

    /// Puts back many mappings (recovery), in runs: called any number of
    /// times, then [`StickyMap::index_restored`] once, it does what
    /// [`StickyMap::restore`] for each mapping in turn does, far faster for
    /// a large map; nothing else may use the map in between. It stores
    /// each mapping in its shard's slab, in order, under consecutive ids,
    /// and nothing more (but for a shard whose fresh ids ran out: that
    /// shard is indexed and the mapping put as `restore` puts it; and see
    /// [`Recipients`]). Indexing each as it came missed the cache on nearly
    /// every index word of a large map, and rebuilt the index each time it
    /// doubled. Each mapping's `expires_at` is ignored: it follows from
    /// `last_used` and the ttl. Returns how many did not fit.
    pub(crate) fn restore_unindexed(
        &mut self,
        mappings: impl IntoIterator<Item = Mapping>,
        repeats: Recipients,
    ) -> usize {
        /// A shard's run is indexed once it is this long and as long as
        /// what the shard has indexed.
        const MIN_RUN: usize = 1024;
        let mut mappings = mappings.into_iter().peekable();
        let Some(first) = mappings.peek() else {
            return 0;
        };
        self.ensure_shards(first.last_used);
        let mut full = 0;
        for m in mappings {
            let key = m.recipient.as_u64();
            let (s, hash) = self.locate(key);
            let entry = Entry::with_times(key, m.sender, m.created_at, m.last_used, m.pinned);
            let shard = &mut self.shards[s];
            // Freed entries are reused first (as `restore` reuses them), so
            // a log that maps the same recipients over and over does not
            // grow the slab by a fresh entry each time.
            let fresh = shard.unindexed_from.is_some() || !shard.slab.has_free();
            if let Some(id) = fresh.then(|| shard.slab.alloc_fresh(entry)).flatten() {
                let first = *shard.unindexed_from.get_or_insert(id);
                // A run that may repeat recipients is indexed once it is as
                // long as what is indexed: each repeat holds an entry until
                // then (a log can map the same recipients over and over),
                // and the index at most doubles each time. A snapshot's run
                // holds each recipient once and is left whole (the bound
                // cost 10M of them 15 to 20% more time).
                if repeats == Recipients::MayRepeat
                    && (id - first) as usize >= shard.index.len().max(MIN_RUN)
                {
                    self.index_shard(s);
                }
                continue;
            }
            // A freed entry to reuse, or no fresh id left: index what
            // waits, then put this one as `restore` does.
            self.index_shard(s);
            full += usize::from(!self.put_located(s, hash, entry, entry.last_used));
        }
        full
    }

    /// Indexes, arms and counts what [`StickyMap::restore_unindexed`]
    /// stored, shard by shard, in the order it came (a recipient stored
    /// twice keeps its later mapping, as `restore` one by one would). Each
    /// shard's index is sized once for all of it and filled in one pass,
    /// its words fetched a few entries ahead: a shard's index is a
    /// sixteenth of the map's (4 MB of a 10M map), so most of it stays in
    /// the last-level cache while it fills.
    pub(crate) fn index_restored(&mut self) {
        for s in 0..self.shards.len() {
            self.index_shard(s);
        }
    }

    /// Checks each shard's accounting: every entry holding a mapping is
    /// indexed under its own id, and every entry handed out is either in
    /// the wheel or on the free list.
    #[cfg(test)]
    pub(super) fn assert_consistent(&self) {
        for shard in &self.shards {
            assert!(shard.unindexed_from.is_none());
            let mut held = 0;
            for (id, e) in shard.slab.entries().filter(|(_, e)| !e.is_vacant()) {
                let hash = self.hasher.hash_one(e.recipient());
                assert_eq!(shard.find(hash, e.recipient()), Some(id));
                held += 1;
            }
            assert_eq!(shard.index.len(), held, "indexed entries");
            assert_eq!(
                shard.wheel.len() + shard.slab.free_count() as usize,
                shard.slab.len() as usize,
                "entries in the wheel or free"
            );
        }
    }

    fn index_shard(&mut self, s: usize) {
        /// How many entries ahead an index word is prefetched.
        const AHEAD: u32 = 16;
        let (ttl, hasher, counts) = (u64::from(self.ttl), &self.hasher, &mut self.counts);
        let shard = &mut self.shards[s];
        let Some(first) = shard.unindexed_from.take() else {
            return;
        };
        let end = shard.slab.len();
        let more = (end - first) as usize;
        if !shard.index.has_room_for(more) {
            // The entries before `first` are the indexed ones.
            shard.regrow(hasher, first, None, more);
        }
        for id in first..end {
            // A shard's index still misses the L2 cache: its words are
            // fetched a few entries ahead (the slab is read in order).
            if id + AHEAD < end {
                let ahead = shard.slab.get(id + AHEAD).recipient();
                shard.index.prefetch(hasher.hash_one(ahead));
            }
            let entry = *shard.slab.get(id);
            let key = entry.recipient();
            let hash = hasher.hash_one(key);
            counts.add(entry.sender(), entry.pinned());
            if let Some(old) = shard.find(hash, key) {
                // Restored twice: the later mapping, in the earlier entry's place.
                let old = shard.slab.get_mut(old);
                counts.remove(old.sender(), old.pinned());
                old.replace(entry);
                shard.slab.free(id);
                continue;
            }
            shard.index.insert(hash, id);
            shard
                .wheel
                .insert(&mut shard.slab, id, u64::from(entry.last_used) + ttl);
        }
        self.publish(s);
    }

    /// Removes the mapping of `recipient`; returns it if it was live and valid.
    pub(crate) fn remove(
        &mut self,
        recipient: PhoneNumber,
        now: u32,
        valid: impl FnOnce(SenderRef) -> bool,
    ) -> Option<Mapping> {
        let key = recipient.as_u64();
        let (s, hash) = self.locate(key);
        let shard = self.shards.get_mut(s)?;
        let id = shard.find(hash, key)?;
        let e = *shard.slab.get(id);
        shard.unindex(id, &self.hasher, &mut self.counts);
        (is_live(&e, now, self.ttl) && valid(e.sender())).then(|| self.view(&e))
    }

    /// Drops every mapping at once (and the memory they held).
    pub(crate) fn clear(&mut self) {
        self.shards = Vec::new();
        self.peek.withdraw_all();
        self.counts.clear();
    }

    /// When the wheels next have work (seconds), or `None` with nothing
    /// stored: an engine schedules expiry for then, not on a fixed tick.
    pub(crate) fn next_due(&self) -> Option<u32> {
        self.shards
            .iter()
            .filter_map(|s| s.wheel.next_due())
            .min()
            .map(|t| u32::try_from(t).unwrap_or(u32::MAX))
    }

    /// Moves every shard's wheel to `now`: expired mappings are removed,
    /// entries of removed mappings or of senders failing `valid` are freed,
    /// and mappings used since they were armed are re-armed. Reaches at most
    /// `budget` entries, so a large batch is spread over several calls.
    pub(crate) fn expire(
        &mut self,
        now: u32,
        budget: usize,
        valid: impl Fn(SenderRef) -> bool,
    ) -> ExpireReport {
        let mut report = ExpireReport {
            done: true,
            ..Default::default()
        };
        let ttl = u64::from(self.ttl);
        let now64 = u64::from(now);
        let mut left = budget;
        let n = self.shards.len();
        for i in 0..n {
            let s = (self.next_shard + i) & self.shard_mask;
            let hasher = &self.hasher;
            let counts = &mut self.counts;
            let Shard {
                index, slab, wheel, ..
            } = &mut self.shards[s];
            let advance = wheel.advance(now64, slab, left, |slab, id| {
                let e = *slab.get(id);
                if e.is_vacant() {
                    slab.free(id);
                    report.reclaimed += 1;
                    return None;
                }
                let stale = !valid(e.sender());
                if !stale {
                    if e.pinned() {
                        return Some(now64 + ttl);
                    }
                    let deadline = u64::from(e.last_used) + ttl;
                    if deadline > now64 {
                        return Some(deadline);
                    }
                }
                index.remove(hash_of(hasher, &e), id);
                counts.remove(e.sender(), e.pinned());
                slab.free(id);
                if stale {
                    report.reclaimed += 1;
                } else {
                    report.expired += 1;
                }
                None
            });
            left -= advance.visited;
            if !advance.done {
                self.next_shard = s;
                report.done = false;
                return report;
            }
        }
        report
    }

    /// One page of the live mappings whose sender passes `valid`, in
    /// storage order (shard, then entry), from `from` on: at most `limit`
    /// mappings, after looking at no more than `budget` entries. Returns
    /// them with where the next page starts (`None`: nothing after). The
    /// cost is that of the page, whatever the size of the map.
    pub(crate) fn page(
        &self,
        from: MapPosition,
        limit: usize,
        budget: usize,
        now: u32,
        valid: impl Fn(SenderRef) -> bool,
    ) -> (Vec<Mapping>, Option<MapPosition>) {
        let mut out = Vec::with_capacity(limit.min(budget));
        let mut looked = 0;
        let mut at = from;
        while (at.shard as usize) < self.shards.len() {
            let shard = &self.shards[at.shard as usize];
            while at.entry < shard.slab.len() {
                if out.len() == limit || looked == budget {
                    return (out, Some(at));
                }
                looked += 1;
                let e = shard.slab.get(at.entry);
                at.entry += 1;
                if !e.is_vacant() && is_live(e, now, self.ttl) && valid(e.sender()) {
                    out.push(self.view(e));
                }
            }
            at = MapPosition {
                shard: at.shard + 1,
                entry: 0,
            };
        }
        (out, None)
    }

    /// Number of shards (allocated or not).
    pub(crate) fn shard_count(&self) -> usize {
        self.shard_mask + 1
    }

    /// The live mappings of shard `shard` whose sender passes `valid`, in no
    /// particular order (snapshots copy the map one shard at a time).
    pub(crate) fn live_in_shard(
        &self,
        shard: usize,
        now: u32,
        valid: impl Fn(SenderRef) -> bool,
    ) -> Vec<Mapping> {
        self.shards.get(shard).map_or_else(Vec::new, |s| {
            s.slab
                .entries()
                .map(|(_, e)| e)
                .filter(|e| !e.is_vacant() && is_live(e, now, self.ttl) && valid(e.sender()))
                .map(|e| self.view(e))
                .collect()
        })
    }

    /// Entries stored: live mappings plus those expired or invalidated that
    /// the wheels have not reached yet.
    pub(crate) fn stored(&self) -> usize {
        self.shards.iter().map(|s| s.index.len()).sum()
    }

    /// Mappings stored to `sender`, and how many of them are pinned. Counts
    /// entries the wheel has not reached yet even if expired: after
    /// [`StickyMap::expire`] to `now` has finished, they are the live ones.
    pub(crate) fn count_of(&self, sender: SenderRef) -> (u32, u32) {
        self.counts.of(sender)
    }

    /// Heap bytes held by the map (tables, slabs, wheels and counts).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.counts.heap_bytes()
            + self.shards.len() * std::mem::size_of::<Shard>()
            + self
                .shards
                .iter()
                .map(|s| s.index.heap_bytes() + s.slab.heap_bytes() + s.wheel.heap_bytes())
                .sum::<usize>()
    }
}

impl Drop for StickyMap {
    /// Takes the shards' views out of the [`PeekTable`], which the
    /// profile's actor may hold longer (a state replaced wholesale), so
    /// that they free their tables.
    fn drop(&mut self) {
        self.peek.withdraw_all();
    }
}

impl std::fmt::Debug for StickyMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StickyMap")
            .field("shards", &self.shards.len())
            .field("ttl", &self.ttl)
            .field("stored", &self.stored())
            .finish()
    }
}

#[cfg(test)]
#[path = "map_tests.rs"]
mod tests;
