//! A profile's sticky mappings as the API sees them: read one, page
//! through them, pin and break them, import a row of message history.

use super::{PinError, ProfileState, StickyMapping};
use crate::engine::import::{HistoryRow, RowOutcome};
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
    pub(crate) fn mapping(&self, recipient: PhoneNumber, now: u32) -> Option<StickyMapping> {
        self.record(self.sticky.get(recipient, now, self.in_pool())?)
    }

    /// One page of the live mappings (of `sender` only, if given), in
    /// storage order from `from`; see [`StickyMap::page`].
    pub(crate) fn mappings_page(
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
    pub(crate) fn mapping_parts(&self) -> usize {
        self.sticky.shard_count()
    }

    /// The live mappings of one part (a shard of the sticky map), unordered.
    pub(crate) fn mappings_part(&self, part: usize, now: u32) -> Vec<StickyMapping> {
        self.sticky
            .live_in_shard(part, now, self.in_pool())
            .into_iter()
            .filter_map(|m| self.record(m))
            .collect()
    }

    /// Pins `recipient` to `sender`, which must be a pickable sender of this pool.
    pub(crate) fn pin(
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

    /// Applies one row of message history (`to` was sent a message from
    /// `from` at `sent_at`), the latest of its recipient so far in this
    /// import; `ours` is the mapping this import made for `to` from an
    /// earlier row, `(last used, sender)`, which a later row replaces or
    /// (when its sender left the pool) takes back. The rules of
    /// docs/SELECTION.md, "Importing message history".
    pub(crate) fn import_row(
        &mut self,
        row: &HistoryRow,
        ours: Option<(u32, PhoneNumber)>,
        now: u32,
    ) -> RowOutcome {
        if !self.settings.as_ref().is_some_and(|s| s.sticky_sender) {
            return RowOutcome::StickyOff;
        }
        if !row.pinned && u64::from(row.sent_at) + u64::from(self.sticky.ttl()) <= u64::from(now) {
            return RowOutcome::Expired;
        }
        let existing = self.mapping(row.to, now);
        let is_ours = existing.as_ref().is_some_and(|m| {
            ours.is_some_and(|(at, from)| m.last_used_at == at && m.from == from && !m.pinned)
        });
        let sender = self
            .pool
            .lookup(row.from)
            .filter(|_| kind_index(row.from.kind()).is_some());
        let Some(sender) = sender else {
            if is_ours {
                return match self.unmap(row.to, now) {
                    Some(_) => RowOutcome::NotInPoolTakenBack,
                    None => RowOutcome::NotInPool,
                };
            }
            return RowOutcome::NotInPool;
        };
        if let Some(m) = existing.filter(|_| !is_ours) {
            if m.pinned || m.last_used_at >= row.sent_at {
                return RowOutcome::KeptExisting;
            }
        }
        let created_at = row.created_at.unwrap_or(row.sent_at).min(row.sent_at);
        if !self
            .sticky
            .restore(row.to, sender, created_at, row.sent_at, row.pinned)
        {
            return RowOutcome::Full;
        }
        match self.mapping(row.to, now) {
            Some(m) => RowOutcome::Mapped(m),
            None => RowOutcome::Full,
        }
    }

    /// Breaks the mapping of `recipient`; returns it if it was live.
    pub(crate) fn unmap(&mut self, recipient: PhoneNumber, now: u32) -> Option<StickyMapping> {
        let removed = self
            .sticky
            .remove(recipient, now, |r| self.pool.resolve(r).is_some())?;
        self.record(removed)
    }
}
