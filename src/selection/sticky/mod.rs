//! Sticky sender mappings: a sharded map with timing-wheel expiry.
//!
//! - [`map`]: [`StickyMap`], the recipient -> sender map of one profile.
//! - [`wheel`]: [`TimerWheel`], the hierarchical timing wheel each shard owns.
//! - `index`: the per-shard recipient index (hash -> entry id, 4 bytes a bucket).
//! - `slab`: the packed 28-byte entries the index and the wheel point into.
//! - `counts`: mappings per sender, kept exact as entries come and go.
//! - `peek`: [`PeekTable`], where each shard's index and entries are, for
//!   a send to start its lookup before it takes the profile's lock.

mod counts;
mod index;
pub(crate) mod map;
mod peek;
mod slab;
pub(crate) mod wheel;

pub(crate) use map::{
    ExpireReport, Hint, MapPosition, Mapping, Recipients, StickyMap, DEFAULT_SHARDS,
};
pub(crate) use peek::{PeekSlot, PeekTable};

use super::{prefetch, prefetch_whole};
