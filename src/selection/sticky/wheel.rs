//! A hierarchical timing wheel over intrusive lists.
//!
//! Six levels of 64 slots: level `L` slots span `64^L` ticks, so the wheel
//! covers ticks `0..2^36` (ticks are absolute: at one tick per second since
//! the Unix epoch that reaches the year 4147; later deadlines are clamped to
//! the last tick). An entry is
//! placed at the level of the highest 6-bit group in which its deadline
//! differs from the wheel's current tick, in the slot given by that group.
//! When time reaches a slot of a higher level, its entries cascade into lower
//! levels; when it reaches a level-0 slot, they are due.
//!
//! The wheel stores no entries itself: entries are `u32` ids of the owner's
//! storage, chained through a link the owner keeps ([`WheelLinks`]), 4 bytes
//! per entry. Each time the wheel reaches an entry (to cascade it or because
//! it is due) it asks the owner what to do with it: return its current
//! deadline to keep it, or `None` to let it go. This makes rescheduling lazy:
//! an owner that postpones a deadline does not touch the wheel, and finds out
//! when the old deadline comes round.
//!
//! Finding the next occupied slot uses one 64-bit occupancy mask per level,
//! so advancing costs O(levels + entries reached), never O(entries held).

/// The end of a list.
pub(crate) const NIL: u32 = u32::MAX;

const LEVELS: usize = 6;
const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
/// The last tick the wheel can represent.
pub(crate) const MAX_TICK: u64 = (1 << (SLOT_BITS as usize * LEVELS)) - 1;

/// The link each entry of the owner's storage keeps for the wheel.
pub(crate) trait WheelLinks {
    /// The entry after `id` in its slot's list.
    fn link(&self, id: u32) -> u32;
    /// Sets the entry after `id`.
    fn set_link(&mut self, id: u32, next: u32);
}

/// Where an entry sits: `(level, slot)`.
pub(crate) type Position = (usize, usize);

/// What one call to [`TimerWheel::advance`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Advance {
    /// Entries handed to the owner's callback.
    pub visited: usize,
    /// Whether the wheel reached `now`; `false` when the budget ran out first.
    pub done: bool,
}

/// The timing wheel. See the module docs.
#[derive(Debug, Clone)]
pub(crate) struct TimerWheel {
    /// Slot list heads, allocated on the first insert: a map with no
    /// mappings (an idle profile) pays nothing for them.
    heads: Option<Box<[[u32; SLOTS]; LEVELS]>>,
    occupied: [u64; LEVELS],
    /// The current tick: every slot before it has been processed.
    elapsed: u64,
    len: usize,
}

impl TimerWheel {
    /// An empty wheel standing at tick `now`.
    pub(crate) fn new(now: u64) -> Self {
        TimerWheel {
            heads: None,
            occupied: [0; LEVELS],
            elapsed: now.min(MAX_TICK),
            len: 0,
        }
    }

    /// Heap bytes: the slot heads, once allocated.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.heads
            .as_ref()
            .map_or(0, |_| std::mem::size_of::<[[u32; SLOTS]; LEVELS]>())
    }

    /// Entries in the wheel.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where an entry with `deadline` would be placed now. A deadline at or
    /// before the current tick goes to the current level-0 slot (due at the
    /// next advance).
    pub(crate) fn position(&self, deadline: u64) -> Position {
        let when = deadline.clamp(self.elapsed, MAX_TICK);
        // Both ticks are below 2^36, so they differ in one of the six groups.
        let differing = (self.elapsed ^ when) | (SLOTS as u64 - 1);
        let level = ((63 - differing.leading_zeros()) / SLOT_BITS) as usize;
        (level, slot_index(when, level))
    }

    /// Arms entry `id` for `deadline`.
    pub(crate) fn insert<L: WheelLinks>(&mut self, links: &mut L, id: u32, deadline: u64) {
        let (level, slot) = self.position(deadline);
        let heads = self
            .heads
            .get_or_insert_with(|| Box::new([[NIL; SLOTS]; LEVELS]));
        links.set_link(id, heads[level][slot]);
        heads[level][slot] = id;
        self.occupied[level] |= 1 << slot;
        self.len += 1;
    }

    /// The tick at which the wheel next has work (the start of its earliest
    /// occupied slot), or `None` when it holds nothing.
    pub(crate) fn next_due(&self) -> Option<u64> {
        self.next_occupied()
            .map(|(_, start)| start.max(self.elapsed))
    }

    /// The earliest occupied slot and the tick it starts at.
    fn next_occupied(&self) -> Option<(Position, u64)> {
        // Lower levels always hold earlier deadlines than higher ones, and no
        // occupied slot lies before the current tick.
        let level = (0..LEVELS).find(|&l| self.occupied[l] != 0)?;
        let slot = self.occupied[level].trailing_zeros() as usize;
        let window = level_span(level + 1);
        let start = (self.elapsed & !(window - 1)) + slot as u64 * level_span(level);
        Some(((level, slot), start))
    }

    /// Moves the wheel to tick `now`, handing every entry it reaches to
    /// `on_reached(links, id)`: the callback returns the entry's deadline to
    /// keep it armed (a deadline not after `now` is treated as `now + 1`), or
    /// `None` to drop it. Stops after `budget` entries; call again to go on.
    pub(crate) fn advance<L, F>(
        &mut self,
        now: u64,
        links: &mut L,
        budget: usize,
        mut on_reached: F,
    ) -> Advance
    where
        L: WheelLinks,
        F: FnMut(&mut L, u32) -> Option<u64>,
    {
        let now = now.min(MAX_TICK);
        let mut visited = 0;
        while let Some(((level, slot), start)) = self.next_occupied() {
            if start > now {
                break;
            }
            self.elapsed = self.elapsed.max(start);
            // An occupied slot implies the heads exist.
            let heads = self.heads.as_mut().expect("occupied slots have heads");
            let mut id = std::mem::replace(&mut heads[level][slot], NIL);
            self.occupied[level] &= !(1 << slot);
            while id != NIL {
                if visited == budget {
                    // Re-armed entries never land in the slot being drained
                    // (their deadlines are after `now`), so it is still empty.
                    let heads = self.heads.as_mut().expect("occupied slots have heads");
                    debug_assert_eq!(heads[level][slot], NIL);
                    heads[level][slot] = id;
                    self.occupied[level] |= 1 << slot;
                    return Advance {
                        visited,
                        done: false,
                    };
                }
                let next = links.link(id);
                self.len -= 1;
                visited += 1;
                if let Some(deadline) = on_reached(links, id) {
                    if now < MAX_TICK {
                        self.insert(links, id, deadline.max(now + 1));
                    }
                }
                id = next;
            }
        }
        self.elapsed = self.elapsed.max(now);
        Advance {
            visited,
            done: true,
        }
    }
}

/// Ticks covered by one slot of `level` (`level == LEVELS`: the whole wheel).
fn level_span(level: usize) -> u64 {
    1 << (SLOT_BITS as usize * level)
}

fn slot_index(tick: u64, level: usize) -> usize {
    ((tick >> (SLOT_BITS as usize * level)) & (SLOTS as u64 - 1)) as usize
}

#[cfg(test)]
#[path = "wheel_tests.rs"]
mod tests;
