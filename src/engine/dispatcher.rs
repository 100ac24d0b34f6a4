//! [`Dispatcher`]: profile id -> the profile's actor.
//!
//! A concurrent map, written only when profiles are created or deleted. The
//! hot path reads a small per-thread cache in front of it instead: reading
//! the shared map takes a read lock (an atomic write on a line every thread
//! shares), which costs more than the selection when two cores send to the
//! same profiles. A deleted profile is unrouted first, then retired under
//! its lock; a cached entry of a retired actor is dropped on sight, and a
//! request that reached it anyway fails with "unknown profile" under the
//! lock, never touching a deleted state.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

use super::actor::ProfileActor;
use crate::ids::ProfileId;

/// Entries a thread's cache holds before it starts over.
const CACHE_LIMIT: usize = 4096;

/// Tells dispatchers apart in the per-thread caches (tests run many engines).
static NEXT_DISPATCHER: AtomicU64 = AtomicU64::new(1);

type Cache = hashbrown::HashMap<(u64, ProfileId), Arc<ProfileActor>, foldhash::fast::RandomState>;

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
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
            // thread (none does today) would simply skip the cache.
            if let Ok(cache) = cache.try_borrow() {
                if let Some(actor) = cache.get(&key).filter(|a| !a.is_retired()) {
                    return Some(f(actor));
                }
            }
            let actor = self.actor(id)?;
            if let Ok(mut cache) = cache.try_borrow_mut() {
                if cache.len() >= CACHE_LIMIT {
                    cache.clear();
                }
                cache.insert(key, Arc::clone(&actor));
            }
            Some(f(&actor))
        })
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
