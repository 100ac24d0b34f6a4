//! [`Dispatcher`]: profile id -> the profile's actor.
//!
//! A concurrent map read on every request; written only when profiles are
//! created or deleted. A deleted profile is unrouted first, then retired
//! under its lock, so a request that found it just before deletion fails
//! with "unknown profile" rather than touching a deleted state.

use std::sync::Arc;

use dashmap::DashMap;

use super::actor::ProfileActor;
use crate::ids::ProfileId;

/// Routes requests to profile actors.
#[derive(Default)]
pub(crate) struct Dispatcher {
    routes: DashMap<ProfileId, Arc<ProfileActor>, foldhash::fast::RandomState>,
}

impl Dispatcher {
    /// The actor of `id`, if routed.
    #[inline]
    pub fn actor(&self, id: ProfileId) -> Option<Arc<ProfileActor>> {
        self.routes.get(&id).map(|r| Arc::clone(&r))
    }

    /// Runs `f` with the actor of `id` without taking a reference to it
    /// (the hot path: no reference count traffic between threads).
    #[inline]
    pub fn with<R>(&self, id: ProfileId, f: impl FnOnce(&Arc<ProfileActor>) -> R) -> Option<R> {
        self.routes.get(&id).map(|r| f(&r))
    }

    /// Routes `actor`. `false` if its id is taken.
    pub fn insert(&self, actor: Arc<ProfileActor>) -> bool {
        match self.routes.entry(actor.id) {
            dashmap::Entry::Occupied(_) => false,
            dashmap::Entry::Vacant(v) => {
                v.insert(actor);
                true
            }
        }
    }

    /// Unroutes `id`; new requests get "unknown profile".
    pub fn remove(&self, id: ProfileId) -> Option<Arc<ProfileActor>> {
        self.routes.remove(&id).map(|(_, a)| a)
    }

    /// Every routed actor.
    pub fn actors(&self) -> Vec<Arc<ProfileActor>> {
        self.routes.iter().map(|r| Arc::clone(r.value())).collect()
    }

    /// Drops every route.
    pub fn clear(&self) {
        self.routes.clear();
    }
}
