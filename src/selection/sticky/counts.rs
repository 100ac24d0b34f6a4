//! [`SenderCounts`]: how many mappings each sender holds, kept as mappings
//! are made and dropped, so that "how many recipients is this number
//! mapped to" is one read instead of a scan of the map.

use crate::selection::pool::SenderRef;

/// The mappings one sender of a pool slot holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Count {
    /// The slot's generation these counts belong to: a mapping to an
    /// earlier occupant of the slot is stale and counts for no one.
    generation: u32,
    /// Mappings stored, pinned ones included.
    mapped: u32,
    /// Of those, the pinned ones.
    pinned: u32,
}

/// Mappings per sender, indexed by pool slot.
///
/// A count covers the map's stored entries: a mapping that has expired but
/// that the timing wheel has not reached yet still counts, so a caller
/// wanting live mappings only lets the wheel reach `now` first. A sender
/// leaving the pool needs no call here: its slot's next occupant has a new
/// generation, which starts from zero.
#[derive(Debug, Clone, Default)]
pub(super) struct SenderCounts {
    by_slot: Vec<Count>,
}

impl SenderCounts {
    /// A mapping to `sender` was stored. One to an earlier occupant of the
    /// slot than the one counted (a stale mapping stored again, as when a
    /// ttl change rebuilds the map) counts for no one.
    #[inline]
    pub(super) fn add(&mut self, sender: SenderRef, pinned: bool) {
        let slot = sender.slot as usize;
        if slot >= self.by_slot.len() {
            self.by_slot.resize(slot + 1, Count::default());
        }
        let c = &mut self.by_slot[slot];
        if c.generation != sender.generation {
            // Generations grow (wrapping) each time a slot's sender leaves.
            if (sender.generation.wrapping_sub(c.generation) as i32) < 0 {
                return;
            }
            *c = Count {
                generation: sender.generation,
                ..Count::default()
            };
        }
        c.mapped += 1;
        c.pinned += u32::from(pinned);
    }

    /// A mapping to `sender` was dropped (a stale one changes nothing).
    #[inline]
    pub(super) fn remove(&mut self, sender: SenderRef, pinned: bool) {
        if let Some(c) = self.by_slot.get_mut(sender.slot as usize) {
            if c.generation == sender.generation {
                c.mapped = c.mapped.saturating_sub(1);
                c.pinned = c.pinned.saturating_sub(u32::from(pinned));
            }
        }
    }

    /// Mappings stored to `sender`, and how many of them are pinned.
    pub(super) fn of(&self, sender: SenderRef) -> (u32, u32) {
        match self.by_slot.get(sender.slot as usize) {
            Some(c) if c.generation == sender.generation => (c.mapped, c.pinned),
            _ => (0, 0),
        }
    }

    /// Forgets every count (the map was cleared).
    pub(super) fn clear(&mut self) {
        self.by_slot = Vec::new();
    }

    /// Heap bytes held.
    pub(super) fn heap_bytes(&self) -> usize {
        self.by_slot.capacity() * std::mem::size_of::<Count>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(slot: u32, generation: u32) -> SenderRef {
        SenderRef { slot, generation }
    }

    #[test]
    fn counts_follow_adds_and_removes_of_one_generation() {
        let mut c = SenderCounts::default();
        c.add(r(3, 0), false);
        c.add(r(3, 0), true);
        c.add(r(1, 0), false);
        assert_eq!(c.of(r(3, 0)), (2, 1));
        assert_eq!(c.of(r(1, 0)), (1, 0));
        c.remove(r(3, 0), true);
        assert_eq!(c.of(r(3, 0)), (1, 0));
        assert_eq!(c.of(r(7, 0)), (0, 0), "a slot never used holds nothing");
    }

    #[test]
    fn a_new_occupant_of_a_slot_starts_from_zero_and_stale_removals_do_not_touch_it() {
        let mut c = SenderCounts::default();
        c.add(r(2, 0), false);
        c.add(r(2, 0), false);
        assert_eq!(c.of(r(2, 1)), (0, 0), "the slot's next sender has none");
        c.add(r(2, 1), true);
        c.remove(r(2, 0), false);
        assert_eq!(c.of(r(2, 1)), (1, 1));
        assert_eq!(c.of(r(2, 0)), (0, 0), "the old generation is gone");
    }

    #[test]
    fn a_stale_mapping_stored_again_does_not_reset_the_current_senders_count() {
        let mut c = SenderCounts::default();
        c.add(r(4, 7), false);
        c.add(r(4, 7), true);
        c.add(r(4, 6), false);
        assert_eq!(c.of(r(4, 7)), (2, 1));
        assert_eq!(c.of(r(4, 6)), (0, 0));
        // Across the wrap of the generation counter too.
        c.add(r(5, 0), false);
        c.add(r(5, u32::MAX), false);
        assert_eq!(c.of(r(5, 0)), (1, 0));
        c.add(r(6, u32::MAX), false);
        c.add(r(6, 0), false);
        assert_eq!(c.of(r(6, 0)), (1, 0), "the newer generation after the wrap");
    }
}
