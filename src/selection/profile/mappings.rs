//! A profile's sticky mappings as the API sees them: read one, page
//! through them, pin and break them.

use super::{PinError, ProfileState, StickyMapping};
use crate::number::PhoneNumber;
use crate::selection::pool::{kind_index, SenderRef};
use crate::selection::sticky::{MapPosition, Mapping};

impl ProfileState {
    fn in_pool(&self) -> impl Fn(SenderRef) -> bool + '_ {
        |r| self.pool.resolve(r).is_some()
    }

    fn record(&self, m: Mapping) -> Option<StickyMapping> {
        Some(StickyMapping {
            to: m.recipient,
            from: self.pool.resolve(m.sender)?.number,
            created_at: m.created_at,
            last_used_at: m.last_used,
            expires_at: m.expires_at,
            pinned: m.pinned,
        })
    }

    /// The live mapping of `recipient`, if any.
    pub fn mapping(&self, recipient: PhoneNumber, now: u32) -> Option<StickyMapping> {
        self.record(self.sticky.get(recipient, now, self.in_pool())?)
    }

    /// One page of the live mappings (of `sender` only, if given), in
    /// storage order from `from`; see [`StickyMap::page`].
    pub fn mappings_page(
        &self,
        from: MapPosition,
        limit: usize,
        budget: usize,
        sender: Option<PhoneNumber>,
        now: u32,
    ) -> (Vec<StickyMapping>, Option<MapPosition>) {
        let only = sender.map(|n| self.pool.lookup(n));
        let (page, next) = self.sticky.page(from, limit, budget, now, |r| {
            self.pool.resolve(r).is_some() && only.is_none_or(|o| o == Some(r))
        });
        (
            page.into_iter().filter_map(|m| self.record(m)).collect(),
            next,
        )
    }

    /// Number of parts [`ProfileState::mappings_part`] divides the mappings into.
    pub fn mapping_parts(&self) -> usize {
        self.sticky.shard_count()
    }

    /// The live mappings of one part (a shard of the sticky map), unordered.
    pub fn mappings_part(&self, part: usize, now: u32) -> Vec<StickyMapping> {
        self.sticky
            .live_in_shard(part, now, self.in_pool())
            .into_iter()
            .filter_map(|m| self.record(m))
            .collect()
    }

    /// Pins `recipient` to `sender`, which must be a pickable sender of this pool.
    pub fn pin(
        &mut self,
        recipient: PhoneNumber,
        sender: PhoneNumber,
        now: u32,
    ) -> Result<StickyMapping, PinError> {
        if !self.settings.as_ref().is_some_and(|s| s.sticky_sender) {
            return Err(PinError::StickyOff);
        }
        let r = self.pool.lookup(sender).ok_or(PinError::SenderNotInPool)?;
        if kind_index(sender.kind()).is_none() {
            return Err(PinError::ShortCode);
        }
        if !self.sticky.pin(recipient, r, now) {
            return Err(PinError::Full);
        }
        self.mapping(recipient, now).ok_or(PinError::Full)
    }

    /// Breaks the mapping of `recipient`; returns it if it was live.
    pub fn unmap(&mut self, recipient: PhoneNumber, now: u32) -> Option<StickyMapping> {
        let removed = self
            .sticky
            .remove(recipient, now, |r| self.pool.resolve(r).is_some())?;
        self.record(removed)
    }
}
