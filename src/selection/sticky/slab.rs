//! Storage for the mappings of one shard: fixed 28-byte entries in chunks.
//!
//! Chunks of 128 entries keep growth cheap (no reallocation and copy of a
//! large array while selection waits) and waste at most one partial chunk
//! per shard. A profile's map has 16 shards, so small profiles feel that
//! waste: a thousand profiles of a thousand mappings each took 150 bytes
//! a mapping with chunks of 256, 93 with 128, 75 with 64 (loadgen
//! `--profiles 1000`). Chunks of 64 made the chunk table four times as
//! long and lookups over ten large profiles about 2% slower; 128 showed no
//! change there. Freed entries are chained into a free list through their
//! link.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use super::index::MAX_ID;
use super::wheel::{WheelLinks, NIL};
use crate::selection::pool::SenderRef;

const CHUNK_BITS: u32 = 7;
const CHUNK: usize = 1 << CHUNK_BITS;

/// Marks a slot field with no sender: the mapping was removed while the
/// wheel still holds its entry.
const VACANT: u32 = 0x7FFF_FFFF;
const PINNED: u32 = 1 << 31;

/// One mapping, packed. Times are seconds since the Unix epoch.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    /// The recipient, split so the entry needs only 4-byte alignment.
    recipient: [u32; 2],
    /// The sender's pool slot; bit 31 marks a pinned mapping.
    slot: u32,
    generation: u32,
    pub created_at: u32,
    pub last_used: u32,
    /// The next entry in this entry's wheel slot, or in the free list.
    link: u32,
}

const EMPTY: Entry = Entry {
    recipient: [0, 0],
    slot: VACANT,
    generation: 0,
    created_at: 0,
    last_used: 0,
    link: NIL,
};

impl Entry {
    pub(super) fn new(recipient: u64, sender: SenderRef, now: u32, pinned: bool) -> Self {
        Self::with_times(recipient, sender, now, now, pinned)
    }

    /// A mapping made at `created_at` and last used at `last_used` (recovery).
    pub(super) fn with_times(
        recipient: u64,
        sender: SenderRef,
        created_at: u32,
        last_used: u32,
        pinned: bool,
    ) -> Self {
        Entry {
            recipient: [recipient as u32, (recipient >> 32) as u32],
            slot: sender.slot | if pinned { PINNED } else { 0 },
            generation: sender.generation,
            created_at,
            last_used,
            link: NIL,
        }
    }

    #[inline]
    pub(super) fn recipient(&self) -> u64 {
        u64::from(self.recipient[0]) | (u64::from(self.recipient[1]) << 32)
    }

    #[inline]
    pub(super) fn sender(&self) -> SenderRef {
        SenderRef {
            slot: self.slot & !PINNED,
            generation: self.generation,
        }
    }

    #[inline]
    pub(super) fn pinned(&self) -> bool {
        self.slot & PINNED != 0
    }

    /// Whether the mapping was removed (the entry waits for the wheel to free it).
    #[inline]
    pub(super) fn is_vacant(&self) -> bool {
        self.slot & !PINNED == VACANT
    }

    pub(super) fn set_vacant(&mut self) {
        self.slot = VACANT;
    }

    /// Overwrites the mapping, keeping the entry's place in the wheel.
    pub(super) fn replace(&mut self, with: Entry) {
        let link = self.link;
        *self = with;
        self.link = link;
    }
}

/// Where a slab's chunks start, by chunk (0: not made yet), for its
/// shard's published view (see `peek`): addresses to prefetch, never read
/// through. Grown by doubling, so that a new chunk is one store, and a
/// view made anew only when the table doubles.
pub(super) type ChunkStarts = Arc<[AtomicUsize]>;

/// Chunked entry storage with a free list.
#[derive(Debug, Default)]
pub(super) struct Slab {
    /// Boxed, so that growing the list moves pointers, never entries.
    #[allow(clippy::vec_box)]
    chunks: Vec<Box<[Entry; CHUNK]>>,
    /// Where each chunk starts (see [`ChunkStarts`]).
    starts: ChunkStarts,
    /// Entries ever handed out (the next fresh id).
    high_water: u32,
    free_head: Option<u32>,
}

impl Slab {
    /// Stores `entry`; `None` when every id the index can hold is taken.
    /// Always inlined (see `StickyMap::publish`).
    #[inline(always)]
    pub(super) fn alloc(&mut self, entry: Entry) -> Option<u32> {
        let Some(id) = self.free_head else {
            return self.alloc_fresh(entry);
        };
        let next = self.get(id).link;
        self.free_head = (next != NIL).then_some(next);
        *self.get_mut(id) = entry;
        Some(id)
    }

    /// Stores `entry` under the next id never handed out, leaving the free
    /// list alone: entries stored one after another get consecutive ids.
    /// `None` when every id the index can hold was handed out.
    pub(super) fn alloc_fresh(&mut self, entry: Entry) -> Option<u32> {
        let id = self.high_water;
        if id > MAX_ID {
            return None;
        }
        if id as usize == self.chunks.len() * CHUNK {
            self.add_chunk();
        }
        self.high_water += 1;
        *self.get_mut(id) = entry;
        Some(id)
    }

    /// Whether freed entries wait to be reused.
    #[inline]
    pub(super) fn has_free(&self) -> bool {
        self.free_head.is_some()
    }

    /// How many entries the free list holds (for tests of the accounting).
    #[cfg(test)]
    pub(super) fn free_count(&self) -> u32 {
        let (mut count, mut at) = (0, self.free_head);
        while let Some(id) = at {
            assert!(self.get(id).is_vacant(), "a free entry holds a mapping");
            count += 1;
            assert!(count <= self.high_water, "the free list loops");
            at = Some(self.get(id).link).filter(|&next| next != NIL);
        }
        count
    }

    pub(super) fn free(&mut self, id: u32) {
        let next = self.free_head.unwrap_or(NIL);
        let e = self.get_mut(id);
        *e = EMPTY;
        e.link = next;
        self.free_head = Some(id);
    }

    #[inline]
    pub(super) fn get(&self, id: u32) -> &Entry {
        &self.chunks[(id >> CHUNK_BITS) as usize][id as usize & (CHUNK - 1)]
    }

    /// Entry `id`, if it exists: for a look-ahead, which must not panic on
    /// an id it only guessed.
    #[inline]
    pub(super) fn try_get(&self, id: u32) -> Option<&Entry> {
        self.chunks
            .get((id >> CHUNK_BITS) as usize)?
            .get(id as usize & (CHUNK - 1))
    }

    /// Hints the CPU to fetch entry `id` (if it exists).
    #[inline]
    pub(super) fn prefetch(&self, id: u32) {
        if let Some(chunk) = self.chunks.get((id >> CHUNK_BITS) as usize) {
            super::prefetch_whole(&chunk[id as usize & (CHUNK - 1)]);
        }
    }

    /// [`Slab::try_get`], for writing.
    #[inline]
    pub(super) fn try_get_mut(&mut self, id: u32) -> Option<&mut Entry> {
        self.chunks
            .get_mut((id >> CHUNK_BITS) as usize)?
            .get_mut(id as usize & (CHUNK - 1))
    }

    #[inline]
    pub(super) fn get_mut(&mut self, id: u32) -> &mut Entry {
        &mut self.chunks[(id >> CHUNK_BITS) as usize][id as usize & (CHUNK - 1)]
    }

    /// Ids handed out so far: every id below this is allocated or free.
    pub(super) fn len(&self) -> u32 {
        self.high_water
    }

    /// Every entry ever allocated with its id, free ones included (check `is_vacant`).
    /// Chunk by chunk, each a slice cut at the high water, ids counted from
    /// the chunk's start: an index rebuild reads every entry, and counting
    /// and cutting the flattened entries instead (`take`, `enumerate`)
    /// cost it about 30 more instructions an entry (callgrind).
    pub(super) fn entries(&self) -> impl Iterator<Item = (u32, &Entry)> {
        let len = self.high_water as usize;
        self.chunks.iter().enumerate().flat_map(move |(c, chunk)| {
            let start = c * CHUNK;
            let used = len.saturating_sub(start).min(CHUNK);
            chunk[..used]
                .iter()
                .enumerate()
                .map(move |(k, e)| ((start + k) as u32, e))
        })
    }

    #[cold]
    fn add_chunk(&mut self) {
        let chunk = Box::new([EMPTY; CHUNK]);
        let (n, start) = (self.chunks.len(), chunk.as_ptr().addr());
        if n == self.starts.len() {
            let grown = (n * 2).max(8);
            self.starts = (0..grown)
                .map(|c| AtomicUsize::new(self.chunk_start(c)))
                .collect();
        }
        self.starts[n].store(start, Relaxed);
        self.chunks.push(chunk);
    }

    fn chunk_start(&self, c: usize) -> usize {
        self.chunks.get(c).map_or(0, |chunk| chunk.as_ptr().addr())
    }

    /// Where the chunks start, for the shard's published view.
    pub(super) fn starts(&self) -> &ChunkStarts {
        &self.starts
    }

    /// Where entry `id` is, in a slab whose chunks start at `starts` (a
    /// published [`Slab::starts`]); `None` if its chunk was not made.
    #[inline]
    pub(super) fn entry_address(starts: &[AtomicUsize], id: u32) -> Option<usize> {
        let start = starts.get((id >> CHUNK_BITS) as usize)?.load(Relaxed);
        (start != 0).then(|| start + (id as usize & (CHUNK - 1)) * std::mem::size_of::<Entry>())
    }

    /// Bytes of heap this slab holds.
    pub(super) fn heap_bytes(&self) -> usize {
        self.chunks.len() * std::mem::size_of::<[Entry; CHUNK]>()
            + self.chunks.capacity() * std::mem::size_of::<Box<[Entry; CHUNK]>>()
            + self.starts.len() * std::mem::size_of::<AtomicUsize>()
    }
}

impl WheelLinks for Slab {
    #[inline]
    fn link(&self, id: u32) -> u32 {
        self.get(id).link
    }
    #[inline]
    fn set_link(&mut self, id: u32, next: u32) {
        self.get_mut(id).link = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sender of entries whose sender no test looks at.
    const ANY_SENDER: SenderRef = SenderRef {
        slot: 0,
        generation: 0,
    };

    #[test]
    fn entry_is_28_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 28);
    }

    #[test]
    fn entry_round_trips_and_pins() {
        let r = SenderRef {
            slot: 12,
            generation: 3,
        };
        let e = Entry::new(0x0123_4567_89AB_CDEF, r, 99, true);
        assert_eq!(e.recipient(), 0x0123_4567_89AB_CDEF);
        assert_eq!(e.sender(), r);
        assert!(e.pinned());
        assert!(!e.is_vacant());
    }

    /// The chunk starts a published view holds name each entry's address,
    /// as the table doubles and after (a stale table names the chunks of
    /// its time), and nothing for an entry not made yet.
    #[test]
    fn chunk_starts_name_every_entrys_address() {
        let (mut slab, r) = (Slab::default(), ANY_SENDER);
        let addr = |slab: &Slab, id: u32| std::ptr::from_ref(slab.get(id)).addr();
        let mut early = None;
        for i in 0..(40 * CHUNK as u64) {
            let id = slab.alloc(Entry::new(i, r, 0, false)).unwrap();
            let starts = Arc::clone(slab.starts());
            assert_eq!(Slab::entry_address(&starts, id), Some(addr(&slab, id)));
            if id == 3 * CHUNK as u32 {
                early = Some(starts);
            }
        }
        for id in (0..40 * CHUNK as u32).step_by(7) {
            assert_eq!(
                Slab::entry_address(slab.starts(), id),
                Some(addr(&slab, id))
            );
        }
        let early = early.unwrap();
        assert_eq!(Slab::entry_address(&early, 5), Some(addr(&slab, 5)));
        assert_eq!(Slab::entry_address(&early, 30 * CHUNK as u32), None);
        assert_eq!(Slab::entry_address(slab.starts(), 64 * CHUNK as u32), None);
    }

    #[test]
    fn freed_entries_are_reused() {
        let (mut slab, r) = (Slab::default(), ANY_SENDER);
        let ids: Vec<u32> = (0..300)
            .map(|i| slab.alloc(Entry::new(i, r, 0, false)).unwrap())
            .collect();
        assert_eq!(slab.chunks.len(), 300usize.div_ceil(CHUNK));
        slab.free(ids[5]);
        slab.free(ids[260]);
        assert_eq!(slab.alloc(Entry::new(1000, r, 0, false)), Some(ids[260]));
        assert_eq!(slab.alloc(Entry::new(1001, r, 0, false)), Some(ids[5]));
        assert_eq!(slab.alloc(Entry::new(1002, r, 0, false)), Some(300));
        assert_eq!(slab.get(ids[5]).recipient(), 1001);
    }
}
