//! Round-robin over a changing set of senders.
//!
//! Members are kept in the order they joined the pool (by a sequence number
//! that only grows). The next pick is the first eligible member *after the
//! last one picked*, wrapping around. Defining the cursor by the last pick's
//! sequence number, not by a position, keeps rotation fair when members are
//! added or removed in between picks.

/// A member of a rotation: the sender's pool slot and when it joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Joining order; unique and increasing within a pool.
    pub seq: u32,
    /// The sender's slot in the pool.
    pub slot: u32,
}

/// An ordered set of senders with a round-robin cursor.
#[derive(Debug, Clone, Default)]
pub struct Rotation {
    /// Sorted by `seq`.
    members: Vec<Member>,
    /// `seq` of the last pick; 0 before the first pick (sequence numbers start at 1).
    last: u32,
}

impl Rotation {
    /// Adds a member that joined after every current member.
    pub fn push(&mut self, member: Member) {
        debug_assert!(self.members.last().is_none_or(|m| m.seq < member.seq));
        // Small rotations grow one member at a time: most pools are small
        // and kept by the hundred thousand.
        if self.members.len() == self.members.capacity() && self.members.len() < 64 {
            self.members.reserve_exact(1);
        }
        self.members.push(member);
    }

    /// Removes the member in `slot`; returns whether it was there.
    pub fn remove(&mut self, slot: u32) -> bool {
        match self.members.iter().position(|m| m.slot == slot) {
            Some(i) => {
                self.members.remove(i);
                true
            }
            None => false,
        }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The member the next pick would take: the first for which `eligible`
    /// holds, starting after the last pick. Changes nothing; see [`Rotation::commit`].
    #[inline]
    pub fn peek(&self, mut eligible: impl FnMut(u32) -> bool) -> Option<Member> {
        let start = self.members.partition_point(|m| m.seq <= self.last);
        let (before, after) = self.members.split_at(start);
        after
            .iter()
            .chain(before)
            .find(|m| eligible(m.slot))
            .copied()
    }

    /// The member a load-aware pick takes: among those for which `eligible`
    /// holds, the one of least `cost` (its wait), the first in round-robin
    /// order on a tie. A member of cost 0 (idle) ends the search: nothing
    /// beats it, and it comes first. Changes nothing.
    #[inline]
    pub fn peek_least(
        &self,
        mut eligible: impl FnMut(u32) -> bool,
        mut cost: impl FnMut(u32) -> u64,
    ) -> Option<Member> {
        let start = self.members.partition_point(|m| m.seq <= self.last);
        let (before, after) = self.members.split_at(start);
        let mut best: Option<(u64, Member)> = None;
        for m in after.iter().chain(before) {
            if !eligible(m.slot) {
                continue;
            }
            let c = cost(m.slot);
            if c == 0 {
                return Some(*m);
            }
            if best.is_none_or(|(b, _)| c < b) {
                best = Some((c, *m));
            }
        }
        best.map(|(_, m)| m)
    }

    /// Records `member` as the last pick.
    #[inline]
    pub fn commit(&mut self, member: Member) {
        self.last = member.seq;
    }

    /// [`Rotation::peek`] then [`Rotation::commit`].
    #[cfg(test)]
    pub fn pick(&mut self, eligible: impl FnMut(u32) -> bool) -> Option<u32> {
        let member = self.peek(eligible)?;
        self.commit(member);
        Some(member.slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rotation(slots: &[u32]) -> Rotation {
        let mut r = Rotation::default();
        for (i, &slot) in slots.iter().enumerate() {
            r.push(Member {
                seq: i as u32 + 1,
                slot,
            });
        }
        r
    }

    #[test]
    fn cycles_in_joining_order() {
        let mut r = rotation(&[10, 11, 12]);
        let picks: Vec<_> = (0..7).map(|_| r.pick(|_| true).unwrap()).collect();
        assert_eq!(picks, [10, 11, 12, 10, 11, 12, 10]);
    }

    #[test]
    fn skips_ineligible_members() {
        let mut r = rotation(&[10, 11, 12]);
        let picks: Vec<_> = (0..4).map(|_| r.pick(|s| s != 11).unwrap()).collect();
        assert_eq!(picks, [10, 12, 10, 12]);
        assert_eq!(r.pick(|_| false), None);
    }

    #[test]
    fn removal_keeps_the_cursor_meaningful() {
        let mut r = rotation(&[10, 11, 12]);
        assert_eq!(r.pick(|_| true), Some(10));
        assert_eq!(r.pick(|_| true), Some(11));
        // The last pick leaves: the next is still the one after it.
        assert!(r.remove(11));
        assert!(!r.remove(11));
        assert_eq!(r.pick(|_| true), Some(12));
        // A newcomer joins at the end of the cycle.
        r.push(Member { seq: 9, slot: 13 });
        assert_eq!(r.pick(|_| true), Some(13));
        assert_eq!(r.pick(|_| true), Some(10));
    }

    #[test]
    fn peek_does_not_move() {
        let r = rotation(&[10, 11]);
        assert_eq!(r.peek(|_| true).unwrap().slot, 10);
        assert_eq!(r.peek(|_| true).unwrap().slot, 10);
    }

    #[test]
    fn the_least_busy_wins_and_ties_keep_round_robin_order() {
        let mut r = rotation(&[10, 11, 12]);
        let waits = |w: [u64; 3]| move |slot: u32| w[(slot - 10) as usize];
        // All idle: round-robin order.
        assert_eq!(r.peek_least(|_| true, waits([0, 0, 0])).unwrap().slot, 10);
        r.commit(r.peek_least(|_| true, waits([0, 0, 0])).unwrap());
        assert_eq!(r.peek_least(|_| true, waits([0, 0, 0])).unwrap().slot, 11);
        // 11 is busy: the next idle one in order.
        assert_eq!(r.peek_least(|_| true, waits([0, 5, 0])).unwrap().slot, 12);
        // All busy: the earliest free; on a tie, the first after the cursor.
        assert_eq!(r.peek_least(|_| true, waits([3, 9, 7])).unwrap().slot, 10);
        assert_eq!(r.peek_least(|_| true, waits([7, 9, 7])).unwrap().slot, 12);
        assert_eq!(
            r.peek_least(|s| s != 10, waits([1, 9, 7])).unwrap().slot,
            12
        );
    }
}
