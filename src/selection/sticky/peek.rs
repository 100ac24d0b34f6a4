//! A sticky lookup started before the profile's lock is taken.
//!
//! Most of a sticky hit's time under the lock is two cache misses: the
//! recipient's index word, then the entry it names. While one caller waits
//! for them, a second caller of the same profile waits for the lock. So a
//! send reads the index word and fetches the entry before it takes the
//! lock ([`PeekTable::look_ahead`]), and hands the place it found (a
//! [`Hint`]) to the selection, which checks it as it checks any hint: a
//! wrong place only means a probe under the lock, as without a hint.
//!
//! For that, the map publishes per shard where its index words and its
//! entry chunks are (a `ShardView`), each time either table moves (the
//! index is rebuilt, the slab's table of chunk starts doubles, the shards
//! are made anew or dropped). Readers hold no lock:
//! - index words and chunk starts are atomics, so reading one the lock
//!   holder writes is defined (it gives the old value or the new);
//! - a view owns a share of both tables (`Arc`), and a view replaced is
//!   freed through `crossbeam-epoch`, once no reader that could have
//!   loaded it is still reading;
//! - entry addresses are only prefetched, never read through: an entry may
//!   be anything by the time the lock is taken.
//!
//! A shard without a view (none made yet, or sticky off) costs a send one
//! load, not an epoch pin.

use std::sync::atomic::AtomicPtr;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
use std::sync::Arc;

use crossbeam_epoch::{self as epoch, Atomic, Owned};

use super::index::{candidate_in, Words};
use super::map::{locate, Hasher, Hint};
use super::slab::{ChunkStarts, Entry, Slab};
use crate::number::PhoneNumber;

/// Where one shard's index words and entry chunks are.
struct ShardView {
    words: Words,
    starts: ChunkStarts,
}

/// What a map publishes for lookups made without its profile's lock: its
/// hasher and shard count (fixed for the map's life) and each shard's view
/// (none while a shard is empty or not made yet).
pub(crate) struct PeekTable {
    hasher: Hasher,
    shard_mask: usize,
    shards: Box<[Atomic<ShardView>]>,
}

impl PeekTable {
    pub(super) fn new(hasher: Hasher, shard_mask: usize) -> PeekTable {
        PeekTable {
            hasher,
            shard_mask,
            shards: (0..=shard_mask).map(|_| Atomic::null()).collect(),
        }
    }

    /// Publishes shard `s`'s index words and chunk starts, replacing its
    /// view.
    pub(super) fn publish(&self, s: usize, words: &Words, starts: &ChunkStarts) {
        let view = Owned::new(ShardView {
            words: Arc::clone(words),
            starts: Arc::clone(starts),
        });
        self.replace(s, Some(view));
    }

    /// Withdraws every shard's view (the shards are dropped or made anew).
    pub(super) fn withdraw_all(&self) {
        for s in 0..self.shards.len() {
            self.replace(s, None);
        }
    }

    fn replace(&self, s: usize, view: Option<Owned<ShardView>>) {
        let guard = epoch::pin();
        let old = match view {
            Some(view) => self.shards[s].swap(view, AcqRel, &guard),
            None => self.shards[s].swap(epoch::Shared::null(), AcqRel, &guard),
        };
        if !old.is_null() {
            // SAFETY: `old` is out of the table, so no reader pinned from
            // now on can load it; the epoch frees it after those pinned
            // before have unpinned.
            unsafe { guard.defer_destroy(old) };
            // Hand it to the global queue now, so that any thread's next
            // collection frees it (a replaced view may hold the last share
            // of a large index).
            guard.flush();
        }
    }

    /// Starts the sticky lookup of `recipient`: reads its index word and
    /// fetches the entry it names. Returns where that entry is, for the
    /// selection to check first under the lock, or [`Hint::NONE`].
    #[inline]
    fn look_ahead(&self, recipient: PhoneNumber) -> Hint {
        let (s, hash) = locate(&self.hasher, self.shard_mask, recipient.as_u64());
        let Some(slot) = self.shards.get(s) else {
            return Hint::NONE;
        };
        // SAFETY: the unprotected load is only compared with null.
        if unsafe { slot.load(Relaxed, epoch::unprotected()) }.is_null() {
            return Hint::NONE;
        }
        let guard = epoch::pin();
        // SAFETY: views are freed only through the epoch (`replace`, and
        // `drop` with no reader left), so this one lives while `guard` does.
        let Some(view) = (unsafe { slot.load(Acquire, &guard).as_ref() }) else {
            return Hint::NONE;
        };
        let Some(id) = candidate_in(&view.words, hash) else {
            return Hint::NONE;
        };
        match Slab::entry_address(&view.starts, id) {
            Some(at) => {
                crate::selection::prefetch_whole_at::<Entry>(at);
                Hint::at(s, id)
            }
            None => Hint::NONE,
        }
    }
}

impl Drop for PeekTable {
    fn drop(&mut self) {
        for slot in self.shards.iter() {
            // SAFETY: `&mut self`: no reader holds the table any more.
            let view = unsafe { slot.load(Relaxed, epoch::unprotected()) };
            if !view.is_null() {
                // SAFETY: as above; each view is owned by its slot alone.
                drop(unsafe { view.into_owned() });
            }
        }
    }
}

impl std::fmt::Debug for PeekTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeekTable")
            .field("shards", &self.shards.len())
            .finish()
    }
}

/// A profile's [`PeekTable`], held outside its lock by the profile's
/// actor. Replaced when the actor's state is replaced wholesale (a store
/// healed from its journal), so that sends look where the new map is; a
/// table replaced is kept until the slot is dropped (a few hundred bytes:
/// its map withdrew its views when dropped), so that a send reads the
/// current table without pinning anything.
pub(crate) struct PeekSlot {
    /// The current table, from `Arc::into_raw`.
    current: AtomicPtr<PeekTable>,
    retired: parking_lot::Mutex<Vec<Arc<PeekTable>>>,
}

impl PeekSlot {
    pub(crate) fn new(table: Arc<PeekTable>) -> PeekSlot {
        PeekSlot {
            current: AtomicPtr::new(Arc::into_raw(table).cast_mut()),
            retired: parking_lot::Mutex::new(Vec::new()),
        }
    }

    /// Points sends at `table` from now on.
    pub(crate) fn set(&self, table: Arc<PeekTable>) {
        let old = self.current.swap(Arc::into_raw(table).cast_mut(), AcqRel);
        // SAFETY: `old` came from `Arc::into_raw` (`new`, `set`), and the
        // swap took it out of `current`: this is its one owner now.
        self.retired.lock().push(unsafe { Arc::from_raw(old) });
    }

    /// [`PeekTable::look_ahead`] on the current table.
    #[inline]
    pub(crate) fn look_ahead(&self, recipient: PhoneNumber) -> Hint {
        // SAFETY: every table this slot pointed at lives as long as the
        // slot (`current` or `retired`), and `&self` keeps the slot alive.
        let table = unsafe { &*self.current.load(Acquire) };
        table.look_ahead(recipient)
    }
}

impl Drop for PeekSlot {
    fn drop(&mut self) {
        // SAFETY: from `Arc::into_raw`, owned by `current` alone.
        drop(unsafe { Arc::from_raw(*self.current.get_mut()) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selection::pool::SenderRef;
    use crate::selection::sticky::{Mapping, Recipients, StickyMap};

    const NOW: u32 = 1_800_000_000;
    const TTL: u32 = 86_400;

    fn to(i: u64) -> PhoneNumber {
        PhoneNumber::from_u64(14_155_000_000 + i).unwrap()
    }

    fn sender(i: u64) -> SenderRef {
        SenderRef {
            slot: (i % 5) as u32,
            generation: 1,
        }
    }

    /// Every recipient of `0..n` (and some never mapped) is looked for
    /// without the lock where the lookup under it would look first;
    /// returns how many of those places were found.
    fn assert_looks_alike(slot: &PeekSlot, map: &StickyMap, n: u64) -> usize {
        let mut found = 0;
        for i in 0..n + 100 {
            let under_lock = map.prefetch_entry(to(i));
            assert_eq!(slot.look_ahead(to(i)), under_lock, "recipient {i} of {n}");
            found += usize::from(under_lock != Hint::NONE);
        }
        found
    }

    /// As the map grows (its indexes rebuilt, its slabs gaining chunks),
    /// has its shards made anew (a shorter ttl), is emptied and restored
    /// in runs, a send looks where the selection under the lock would. A
    /// layout change the map failed to publish shows as a different
    /// place, or none.
    #[test]
    fn a_send_looks_before_the_lock_where_the_lookup_under_it_would() {
        let mut map = StickyMap::new(TTL, 4);
        let slot = PeekSlot::new(map.peek_table());
        assert_eq!(assert_looks_alike(&slot, &map, 0), 0);
        let n = 20_000;
        for i in 0..n {
            // Half last used long ago: a shorter ttl below drops them.
            let at = if i % 2 == 0 { NOW } else { NOW - 3_600 };
            assert!(map.assign(to(i), sender(i), at));
            if i % 1_999 == 0 {
                assert_looks_alike(&slot, &map, i + 1);
            }
        }
        let found = assert_looks_alike(&slot, &map, n);
        assert!(found as u64 * 100 >= n * 99, "{found} of {n} found");

        map.set_ttl(1_800, NOW);
        assert_eq!(map.stored(), n as usize / 2);
        assert!(assert_looks_alike(&slot, &map, n) >= n as usize / 2 * 99 / 100);

        map.clear();
        assert_eq!(assert_looks_alike(&slot, &map, n), 0);

        let runs: Vec<Mapping> = (0..n)
            .map(|i| Mapping {
                recipient: to(i),
                sender: sender(i),
                created_at: NOW,
                last_used: NOW,
                expires_at: None,
                pinned: false,
            })
            .collect();
        for run in runs.chunks(3_333) {
            assert_eq!(
                map.restore_unindexed(run.iter().copied(), Recipients::Distinct),
                0
            );
        }
        map.index_restored();
        let found = assert_looks_alike(&slot, &map, n);
        assert!(found as u64 * 100 >= n * 99, "{found} of {n} found");
    }

    /// A profile whose state is replaced (healed from its journal) is
    /// looked into where its new map is.
    #[test]
    fn a_replaced_map_is_looked_into() {
        let mut old = StickyMap::new(TTL, 4);
        let mut new = StickyMap::new(TTL, 4);
        for i in 0..1_000 {
            assert!(old.assign(to(i), sender(i), NOW));
            assert!(new.assign(to(i + 500), sender(i), NOW));
        }
        let slot = PeekSlot::new(old.peek_table());
        assert!(assert_looks_alike(&slot, &old, 1_000) >= 990);
        slot.set(new.peek_table());
        assert!(assert_looks_alike(&slot, &new, 1_500) >= 990);
        drop(new);
        // The slot keeps what it points at readable.
        let _ = slot.look_ahead(to(600));
    }

    /// Sends look while the lock holder grows, remakes and empties the
    /// map: they read only what is published, and find the map's places
    /// once it stops changing.
    #[test]
    fn sends_look_while_the_map_changes() {
        let mut map = StickyMap::new(TTL, 4);
        let slot = std::sync::Arc::new(PeekSlot::new(map.peek_table()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (slot, stop) = (slot.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut looks = 0u64;
                while !stop.load(Relaxed) {
                    for i in 0..4_000 {
                        std::hint::black_box(slot.look_ahead(to(i)));
                    }
                    looks += 4_000;
                    // Other tests share the two cores (some on etcd's
                    // timing): look in bursts, not spinning flat out.
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
                looks
            })
        };
        for round in 0..5 {
            for i in 0..4_000 {
                assert!(map.assign(to(i), sender(i + round), NOW + round as u32));
            }
            if round % 2 == 0 {
                map.set_ttl(TTL - round as u32 - 1, NOW + round as u32);
            } else {
                map.clear();
            }
        }
        for i in 0..4_000 {
            assert!(map.assign(to(i), sender(i), NOW + 10));
        }
        stop.store(true, Relaxed);
        assert!(reader.join().unwrap() > 0);
        assert!(assert_looks_alike(&slot, &map, 4_000) >= 3_960);
    }
}
