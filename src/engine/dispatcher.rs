//! [`Dispatcher`]: profile id -> the profile's actor.
//!
//! A concurrent map, written only when profiles are created or deleted. The
//! hot path reads a small per-thread cache in front of it instead: reading
//! the shared map takes a read lock (an atomic write on a line every thread
//! shares), which costs more than the selection when two cores send to the
//! same profiles. The cache remembers the last profile looked up, so a
//! caller sending to one profile compares a key instead of hashing it.
//!
//! A deleted profile is unrouted and retired under its lock. A cached
//! entry of a retired actor is passed over (and replaced if its id is
//! routed again; else it stays until the cache starts over), and a
//! request that reached it anyway fails with "unknown profile" under the
//! lock, never touching a deleted state.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

use super::actor::ProfileActor;
use crate::ids::ProfileId;

/// Entries a thread's cache holds before it starts over.
const CACHE_LIMIT: usize = 4096;

/// Tells dispatchers apart in the per-thread caches (tests run many engines).
static NEXT_DISPATCHER: AtomicU64 = AtomicU64::new(1);

/// A slot no cache has: what `last` names before anything is looked up.
const NO_SLOT: usize = usize::MAX;

/// A thread's cache key: the dispatcher's id and the profile's.
type Key = (u64, ProfileId);

/// One thread's cache of routes (`A`: the actor; generic for its tests).
struct Cache<A> {
    /// The key looked up last and its slot: a caller usually sends to one
    /// profile many times in a row, and comparing the key costs a fraction
    /// of hashing it.
    last: Cell<(Key, usize)>,
    /// Each cached actor, in a slot of its own until the cache starts over.
    slots: Vec<A>,
    /// Key -> slot.
    index: hashbrown::HashMap<Key, usize, foldhash::fast::RandomState>,
}

impl<A> Default for Cache<A> {
    fn default() -> Self {
        Cache {
            // No slot: whatever key this is, looking it up finds nothing.
            last: Cell::new(((0, ProfileId(uuid::Uuid::nil())), NO_SLOT)),
            slots: Vec::new(),
            index: Default::default(),
        }
    }
}

impl<A> Cache<A> {
    /// The actor cached under `key`.
    #[inline]
    fn get(&self, key: &Key) -> Option<&A> {
        let (last, slot) = self.last.get();
        if last == *key {
            return self.slots.get(slot);
        }
        let slot = *self.index.get(key)?;
        self.last.set((*key, slot));
        self.slots.get(slot)
    }

    /// Caches `actor` under `key`, in place of an actor it held there (a
    /// retired one: the slot, and `last` pointing at it, stay right).
    fn insert(&mut self, key: Key, actor: A) {
        if let Some(&slot) = self.index.get(&key) {
            self.slots[slot] = actor;
            return;
        }
        if self.slots.len() >= CACHE_LIMIT {
            // Starting over forgets `last` too.
            *self = Cache::default();
        }
        self.index.insert(key, self.slots.len());
        self.slots.push(actor);
    }
}

thread_local! {
    static CACHE: RefCell<Cache<Arc<ProfileActor>>> = RefCell::new(Cache::default());
}

/// Routes requests to profile actors.
pub(crate) struct Dispatcher {
    id: u64,
    routes: DashMap<ProfileId, Arc<ProfileActor>, foldhash::fast::RandomState>,
}

impl Default for Dispatcher {
    fn default() -> Self {
        Dispatcher {
            id: NEXT_DISPATCHER.fetch_add(1, Ordering::Relaxed),
            routes: DashMap::default(),
        }
    }
}

impl Dispatcher {
    /// The actor of `id`, if routed.
    #[inline]
    pub(crate) fn actor(&self, id: ProfileId) -> Option<Arc<ProfileActor>> {
        self.routes.get(&id).map(|r| Arc::clone(&r))
    }

    /// Runs `f` with the actor of `id`, found in this thread's cache when
    /// it can be (the hot path: no write to memory other threads share).
    #[inline]
    pub(crate) fn with<R>(
        &self,
        id: ProfileId,
        f: impl FnOnce(&Arc<ProfileActor>) -> R,
    ) -> Option<R> {
        let key = (self.id, id);
        CACHE.with(|cache| {
            // `try_borrow`: a request that re-entered the dispatcher on this
            // thread (none does today) would read the cache, but not add
            // to it (the miss's `try_borrow_mut` fails while `f` runs).
            if let Ok(cached) = cache.try_borrow() {
                if let Some(actor) = cached.get(&key).filter(|a| !a.is_retired()) {
                    return Some(f(actor));
                }
            }
            let actor = self.route(cache, key)?;
            Some(f(&actor))
        })
    }

    /// The actor of `key`'s profile from the shared map, kept in this
    /// thread's `cache` for next time. Out of line: that keeps the usual
    /// path above small enough to inline into its caller.
    #[cold]
    #[inline(never)]
    fn route(
        &self,
        cache: &RefCell<Cache<Arc<ProfileActor>>>,
        key: Key,
    ) -> Option<Arc<ProfileActor>> {
        let actor = self.actor(key.1)?;
        if let Ok(mut cache) = cache.try_borrow_mut() {
            cache.insert(key, Arc::clone(&actor));
        }
        Some(actor)
    }

    /// Routes `actor`. `false` if its id is taken.
    pub(crate) fn insert(&self, actor: Arc<ProfileActor>) -> bool {
        match self.routes.entry(actor.id) {
            dashmap::Entry::Occupied(_) => false,
            dashmap::Entry::Vacant(v) => {
                v.insert(actor);
                true
            }
        }
    }

    /// Unroutes `id`; new requests get "unknown profile".
    pub(crate) fn remove(&self, id: ProfileId) -> Option<Arc<ProfileActor>> {
        self.routes.remove(&id).map(|(_, a)| a)
    }

    /// Every routed actor.
    pub(crate) fn actors(&self) -> Vec<Arc<ProfileActor>> {
        self.routes.iter().map(|r| Arc::clone(r.value())).collect()
    }

    /// Drops every route.
    pub(crate) fn clear(&self) {
        self.routes.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(dispatcher: u64, n: u128) -> Key {
        (dispatcher, ProfileId(uuid::Uuid::from_u128(n)))
    }

    #[test]
    fn the_last_key_looked_up_answers_as_the_index_does() {
        let mut cache = Cache::default();
        cache.insert(key(1, 1), "a");
        cache.insert(key(1, 2), "b");
        cache.insert(key(2, 1), "c");
        // Each key twice in a row: the second answer comes from `last`.
        for _ in 0..2 {
            for (k, want) in [
                (key(1, 1), Some(&"a")),
                (key(1, 2), Some(&"b")),
                (key(2, 1), Some(&"c")),
                (key(2, 2), None),
            ] {
                assert_eq!(cache.get(&k), want);
                assert_eq!(cache.get(&k), want);
            }
        }
        // Replaced in place (a retired actor's successor): the remembered
        // slot now holds the new one.
        assert_eq!(cache.get(&key(1, 2)), Some(&"b"));
        cache.insert(key(1, 2), "b2");
        assert_eq!(cache.get(&key(1, 2)), Some(&"b2"));
    }

    #[test]
    fn a_cache_that_started_over_answers_no_key_it_was_not_given() {
        let cache: Cache<&str> = Cache::default();
        assert_eq!(cache.get(&key(0, 0)), None);
        assert_eq!(cache.get(&key(1, 0)), None);
        // The key `last` starts with, once slot 0 is taken by another.
        let mut cache = Cache::default();
        cache.insert(key(1, 1), "a");
        assert_eq!(cache.get(&key(0, 0)), None);
        for n in 1..=CACHE_LIMIT as u128 {
            cache.insert(key(1, n + 1), "b");
        }
        assert_eq!(cache.slots.len(), 1, "started over");
        assert_eq!(cache.get(&key(0, 0)), None);
    }

    #[test]
    fn starting_over_forgets_the_last_key() {
        let mut cache = Cache::default();
        cache.insert(key(1, 0), 0usize);
        assert_eq!(cache.get(&key(1, 0)), Some(&0));
        for n in 1..CACHE_LIMIT as u128 {
            cache.insert(key(1, n), n as usize);
        }
        assert_eq!(
            cache.get(&key(1, 0)),
            Some(&0),
            "full, not yet started over"
        );
        // The next new key starts the cache over: key 0 is gone, though it
        // was the last looked up and its slot is taken again.
        cache.insert(key(7, 7), 77);
        assert_eq!(cache.get(&key(1, 0)), None);
        assert_eq!(cache.get(&key(7, 7)), Some(&77));
        assert_eq!(cache.slots.len(), 1);
    }
}
