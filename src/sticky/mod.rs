//! Sticky sender mappings: a sharded map with timing-wheel expiry.
//!
//! - [`map`]: [`StickyMap`], the recipient -> sender map of one profile.
//! - [`wheel`]: [`TimerWheel`], the hierarchical timing wheel each shard owns.
//! - `slab`: the packed 28-byte entries both of them index into.

pub mod map;
mod slab;
pub mod wheel;

pub use map::{ExpireReport, Mapping, StickyMap, DEFAULT_SHARDS};
pub use wheel::TimerWheel;
