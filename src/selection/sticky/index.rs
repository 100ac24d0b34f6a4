//! The recipient index of one shard: hash -> slab id, one `u32` per bucket.
//!
//! A general hash table would cost a sticky hit three dependent cache misses
//! (control bytes, the stored id, then the entry). Here a bucket word holds
//! an 8-bit tag from the hash next to a 24-bit id, so a hit is one miss for
//! the word and one for the entry, and a tag mismatch skips an entry without
//! reading it. Linear probing keeps a probe within one or two cache lines.
//!
//! Removal leaves a tombstone, so it never reads other entries (a
//! backward-shift deletion would read the slab entry of every word it moves,
//! a cache miss each, and more of them the fuller the table). Tombstones
//! count towards the load; when the table fills up it is rebuilt from the
//! slab in one sequential pass, which also clears them.
//!
//! The words are atomics so that a send may read them before it takes its
//! profile's lock (see `peek`): the lock holder is their only writer, and
//! relaxed loads and stores compile to the plain ones.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;

/// Ids must fit in 24 bits; the word stores `id + 1` so that 0 means empty,
/// and the largest word is kept for tombstones.
pub(super) const MAX_ID: u32 = 0x00FF_FFFD;
const ID_BITS: u32 = 24;
const ID_MASK: u32 = (1 << ID_BITS) - 1;
const MIN_CAPACITY: usize = 16;
/// How far [`Index::candidate`] follows a probe (up to five lines of words): a
/// lookup almost never goes further. Linear probing makes long clusters
/// at high load: at 100k mappings in 16 shards (each index three
/// quarters full), 1.7% of a map's recipients sat 16 words or more from
/// their home word, and with 8 about one hit in thirty went further.
/// Each such hit's lookup waited for an entry nobody had fetched.
const CANDIDATE_WORDS: usize = 64;
const EMPTY: u32 = 0;
/// A removed entry: probes go on past it, inserts may reuse it.
const TOMBSTONE: u32 = u32::MAX;

#[inline]
fn tag(hash: u64) -> u32 {
    (hash >> 56) as u32
}

#[inline]
fn word(hash: u64, id: u32) -> u32 {
    (tag(hash) << ID_BITS) | (id + 1)
}

#[inline]
fn id_of(word: u32) -> u32 {
    (word & ID_MASK) - 1
}

/// An index's buckets. Shared with the map's published view of the
/// shard (`peek::ShardView`), which keeps a replaced array alive until no
/// reader can hold it.
pub(super) type Words = Arc<[AtomicU32]>;

/// Open-addressing index from a 64-bit hash to a slab id.
#[derive(Debug, Default)]
pub(super) struct Index {
    words: Words,
    len: usize,
    tombstones: usize,
}

impl Index {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    fn mask(&self) -> usize {
        self.words.len() - 1
    }

    #[inline(always)]
    fn word_at(&self, pos: usize) -> u32 {
        self.words[pos].load(Relaxed)
    }

    #[inline(always)]
    fn set_word(&self, pos: usize, w: u32) {
        self.words[pos].store(w, Relaxed);
    }

    /// The buckets, for the shard's published view.
    pub(super) fn words(&self) -> &Words {
        &self.words
    }

    /// The id stored under `hash` for which `is_key` holds. Always inlined,
    /// as the sticky hit that calls it (`StickyMap::touch`).
    #[inline(always)]
    pub(super) fn find(&self, hash: u64, mut is_key: impl FnMut(u32) -> bool) -> Option<u32> {
        if self.words.is_empty() {
            return None;
        }
        let mask = self.mask();
        let t = tag(hash);
        let mut pos = hash as usize & mask;
        loop {
            let w = self.word_at(pos);
            if w == EMPTY {
                return None;
            }
            if w != TOMBSTONE && w >> ID_BITS == t && is_key(id_of(w)) {
                return Some(id_of(w));
            }
            pos = (pos + 1) & mask;
        }
    }

    /// The words [`Index::find`] reads for `hash` before it ends (tests of
    /// how the hash spreads keys).
    #[cfg(test)]
    pub(super) fn words_read(&self, hash: u64, mut is_key: impl FnMut(u32) -> bool) -> usize {
        let mask = self.mask();
        let mut pos = hash as usize & mask;
        for read in 1.. {
            let w = self.word_at(pos);
            if w == EMPTY || (w != TOMBSTONE && w >> ID_BITS == tag(hash) && is_key(id_of(w))) {
                return read;
            }
            pos = (pos + 1) & mask;
        }
        unreachable!("a probe ends at an empty word")
    }

    /// Hints the CPU to fetch the first word a lookup of `hash` reads.
    #[inline]
    pub(super) fn prefetch(&self, hash: u64) {
        if !self.words.is_empty() {
            super::prefetch(&self.words[hash as usize & self.mask()]);
        }
    }

    /// The id a lookup of `hash` most likely ends at: the first word on its
    /// probe whose tag matches, looking at most [`CANDIDATE_WORDS`] words
    /// (almost always within the line the stage before prefetched; a
    /// longer probe reads the lines after it), without reading any entry.
    #[inline]
    pub(super) fn candidate(&self, hash: u64) -> Option<u32> {
        candidate_in(&self.words, hash)
    }

    /// Whether one more id fits without a rebuild.
    #[inline]
    pub(super) fn has_room(&self) -> bool {
        self.has_room_for(1)
    }

    /// Whether `more` ids fit without a rebuild.
    #[inline]
    pub(super) fn has_room_for(&self, more: usize) -> bool {
        // Live words and tombstones fill at most 7/8, so every probe ends
        // at an empty word.
        (self.len + self.tombstones + more) * 8 <= self.words.len() * 7
    }

    /// Stores `id` under `hash`, reusing the first tombstone on the way.
    /// The caller ensures room ([`Index::has_room`] or [`Index::rebuild`])
    /// and that `id` is not stored yet.
    #[inline]
    pub(super) fn insert(&mut self, hash: u64, id: u32) {
        debug_assert!(id <= MAX_ID && self.has_room());
        let mask = self.mask();
        let mut pos = hash as usize & mask;
        loop {
            match self.word_at(pos) {
                EMPTY => break,
                TOMBSTONE => {
                    self.tombstones -= 1;
                    break;
                }
                _ => pos = (pos + 1) & mask,
            }
        }
        self.set_word(pos, word(hash, id));
        self.len += 1;
    }

    /// Replaces the table with one holding exactly `entries` (`(id, hash)`
    /// pairs), without tombstones, sized for `count` ids (the entries and
    /// any about to come): the same capacity if that leaves room to grow,
    /// else twice as much (or more).
    pub(super) fn rebuild(&mut self, entries: impl Iterator<Item = (u32, u64)>, count: usize) {
        let mut capacity = self.words.len().max(MIN_CAPACITY);
        // Keep at least a quarter free after the rebuild, so rebuilds stay rare.
        while (count + 1) * 4 > capacity * 3 {
            capacity *= 2;
        }
        self.words = (0..capacity).map(|_| AtomicU32::new(EMPTY)).collect();
        self.len = 0;
        self.tombstones = 0;
        for (id, hash) in entries {
            self.insert(hash, id);
        }
    }

    /// Removes `id`, stored under `hash`. Returns whether it was there.
    pub(super) fn remove(&mut self, hash: u64, id: u32) -> bool {
        if self.words.is_empty() {
            return false;
        }
        let mask = self.mask();
        let target = word(hash, id);
        let mut pos = hash as usize & mask;
        loop {
            match self.word_at(pos) {
                EMPTY => return false,
                w if w == target => {
                    self.set_word(pos, TOMBSTONE);
                    self.len -= 1;
                    self.tombstones += 1;
                    return true;
                }
                _ => pos = (pos + 1) & mask,
            }
        }
    }

    /// Bytes of heap the index holds.
    pub(super) fn heap_bytes(&self) -> usize {
        self.words.len() * std::mem::size_of::<u32>()
    }
}

/// [`Index::candidate`] on an index's `words`, which may be a published
/// copy read without the lock (see `peek`): whatever the words hold, the
/// answer is only a place to look first. Always inlined: both callers are
/// a look-ahead on a send's path.
#[inline(always)]
pub(super) fn candidate_in(words: &[AtomicU32], hash: u64) -> Option<u32> {
    if words.is_empty() {
        return None;
    }
    let mask = words.len() - 1;
    let t = tag(hash);
    let mut pos = hash as usize & mask;
    for _ in 0..CANDIDATE_WORDS {
        let w = words[pos].load(Relaxed);
        if w == EMPTY {
            return None;
        }
        if w != TOMBSTONE && w >> ID_BITS == t {
            return Some(id_of(w));
        }
        pos = (pos + 1) & mask;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Hashes chosen to collide on purpose: `h(k)` puts every key in one of
    /// four home buckets, with tags that often match.
    fn h(k: u64) -> u64 {
        ((k % 3) << 56) | (k % 4)
    }

    fn rebuild(index: &mut Index, keys: &HashMap<u32, u64>) {
        let entries: Vec<(u32, u64)> = keys.iter().map(|(&id, &k)| (id, h(k))).collect();
        index.rebuild(entries.into_iter(), keys.len());
    }

    #[test]
    fn insert_find_remove_with_heavy_collisions() {
        let mut index = Index::default();
        let mut keys: HashMap<u32, u64> = HashMap::new();
        for k in 0..200u64 {
            if !index.has_room() {
                rebuild(&mut index, &keys);
            }
            let id = k as u32 * 2;
            index.insert(h(k), id);
            keys.insert(id, k);
        }
        assert_eq!(index.len(), 200);
        let find = |index: &Index, keys: &HashMap<u32, u64>, k: u64| {
            index.find(h(k), |id| keys.get(&id) == Some(&k))
        };
        for k in 0..200u64 {
            assert_eq!(find(&index, &keys, k), Some(k as u32 * 2));
        }
        assert_eq!(find(&index, &keys, 999), None);
        // Remove every third key; the rest stay findable past the tombstones.
        for k in (0..200u64).step_by(3) {
            assert!(index.remove(h(k), k as u32 * 2));
            keys.remove(&(k as u32 * 2));
        }
        assert!(!index.remove(h(0), 0));
        for k in 0..200u64 {
            let expected = (k % 3 != 0).then_some(k as u32 * 2);
            assert_eq!(find(&index, &keys, k), expected, "key {k}");
        }
        assert_eq!(index.len(), 200 - 67);
        // A rebuild clears the tombstones and keeps every live key.
        rebuild(&mut index, &keys);
        assert_eq!(index.tombstones, 0);
        for k in (1..200u64).filter(|k| k % 3 != 0) {
            assert_eq!(find(&index, &keys, k), Some(k as u32 * 2));
        }
    }

    #[test]
    fn inserts_reuse_tombstones_and_churn_stays_bounded() {
        let mut index = Index::default();
        let mut keys: HashMap<u32, u64> = HashMap::new();
        let mut capacities = Vec::new();
        // A steady state: 100 live keys, one removed for each one added.
        for k in 0..10_000u64 {
            if !index.has_room() {
                rebuild(&mut index, &keys);
                capacities.push(index.words.len());
            }
            index.insert(h(k), k as u32);
            keys.insert(k as u32, k);
            if k >= 100 {
                let old = k - 100;
                assert!(index.remove(h(old), old as u32));
                keys.remove(&(old as u32));
            }
        }
        assert_eq!(index.len(), 100);
        assert!(
            capacities.iter().all(|&c| c <= 256),
            "the table does not grow under churn: {capacities:?}"
        );
        for (&id, &k) in &keys {
            assert_eq!(index.find(h(k), |x| x == id), Some(id));
        }
    }

    #[test]
    fn the_candidate_is_the_first_word_with_the_tag_on_the_probe() {
        let mut index = Index::default();
        index.rebuild(std::iter::empty(), 8);
        // One home bucket, three tags: the third key's word is two past home.
        let hash = |tag: u64| (tag << 56) | 5;
        index.insert(hash(1), 10);
        index.insert(hash(2), 20);
        index.insert(hash(3), 30);
        assert_eq!(index.candidate(hash(1)), Some(10));
        assert_eq!(index.candidate(hash(3)), Some(30));
        // A tombstone is passed over; an empty word ends the probe.
        assert!(index.remove(hash(2), 20));
        assert_eq!(index.candidate(hash(3)), Some(30));
        assert_eq!(index.candidate(hash(4)), None);
        // A probe longer than the candidate looks gives none.
        let mut full = Index::default();
        full.rebuild(std::iter::empty(), 2 * CANDIDATE_WORDS);
        for tag in 0..=CANDIDATE_WORDS as u64 {
            full.insert(hash(tag), tag as u32);
        }
        assert_eq!(
            full.candidate(hash(CANDIDATE_WORDS as u64 - 1)),
            Some(CANDIDATE_WORDS as u32 - 1)
        );
        assert_eq!(full.candidate(hash(CANDIDATE_WORDS as u64)), None);
        assert_eq!(
            full.find(hash(CANDIDATE_WORDS as u64), |_| true),
            Some(CANDIDATE_WORDS as u32)
        );
    }

    #[test]
    fn words_never_look_empty_or_removed() {
        assert_ne!(word(0, 0), EMPTY);
        assert_ne!(word(u64::MAX, MAX_ID), TOMBSTONE);
        assert_eq!(id_of(word(u64::MAX, MAX_ID)), MAX_ID);
    }
}
