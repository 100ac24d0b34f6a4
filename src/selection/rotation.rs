//! Round-robin over a changing set of senders.
//!
//! Members are kept in the order they joined the pool (by a sequence number
//! that only grows). The next pick is the first eligible member *after the
//! last one picked*, wrapping around. Defining the cursor by the last pick's
//! sequence number, not by a position, keeps rotation fair when members are
//! added or removed in between picks.
//!
//! Load-aware picks (sender capacity) take the member whose queue ends
//! first instead. Idle members all tie (they wait 0) and keep the
//! round-robin order; busy members with equal queue ends go in joining
//! order. When every member is busy the pick needs the minimum over all
//! members. A rotation of up to 64 members is simply scanned. Scanning a
//! large one at every pick costs a busy pool more than the rest of the
//! selection, so a large rotation keeps a *shortlist*: the members
//! with the smallest queue ends, in order, and the key every other member
//! is at or after. Queue ends only grow, so a listed end is at most too
//! early: a pick corrects the entries it meets at the front (moving them
//! back, or out of the list), and the first correct one is the least of
//! all. The list is rebuilt from a scan only once it runs out.

use std::cell::RefCell;

/// A member of a rotation: the sender's pool slot and when it joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Member {
    /// Joining order; unique and increasing within a pool.
    pub seq: u32,
    /// The sender's slot in the pool.
    pub slot: u32,
}

/// An ordered set of senders with a round-robin cursor.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rotation {
    /// Sorted by `seq`.
    members: Vec<Member>,
    /// `seq` of the last pick; 0 before the first pick (sequence numbers start at 1).
    last: u32,
    /// The members with the least queue ends, for load-aware picks: built
    /// at the first pick that finds every member busy, dropped when
    /// members change.
    shortlist: RefCell<Option<Box<Shortlist>>>,
}

/// A member's place in queue order: `(queue end, seq, slot)`; equal ends
/// go in joining order.
type Key = (u64, u32, u32);

/// How many members a shortlist holds.
const SHORTLIST: usize = 16;

/// Rotations up to this size are scanned whole at a load-aware pick: their
/// queue ends fit in a few cache lines, and keeping a shortlist correct
/// cost more than reading them all.
const SCAN_UP_TO: usize = 64;

/// The members with the least keys, least first, and the least key of the
/// members not listed. Listed ends may be behind (too early); never ahead.
#[derive(Debug, Clone, Default)]
struct Shortlist {
    entries: Vec<Key>,
    rest_from: Option<Key>,
    /// Room for a rebuild's scan (kept, so a pick allocates nothing).
    scratch: Vec<Key>,
}

impl Shortlist {
    /// Lists the least keys of `members`.
    fn rebuild(&mut self, members: &[Member], queue_end: &impl Fn(u32) -> u64) {
        self.scratch.clear();
        self.scratch
            .extend(members.iter().map(|m| (queue_end(m.slot), m.seq, m.slot)));
        self.rest_from = None;
        if self.scratch.len() > SHORTLIST {
            let (_, nth, _) = self.scratch.select_nth_unstable(SHORTLIST);
            self.rest_from = Some(*nth);
            self.scratch.truncate(SHORTLIST);
        }
        self.scratch.sort_unstable();
        self.entries.clear();
        self.entries.extend_from_slice(&self.scratch);
    }

    /// Corrects entry `i` if its member's queue end moved: it moves back
    /// in the list, or out of it when it is no longer among the least.
    /// Returns whether entry `i` was correct.
    fn correct(&mut self, i: usize, queue_end: &impl Fn(u32) -> u64) -> bool {
        let (end, seq, slot) = self.entries[i];
        let current = queue_end(slot);
        if current == end {
            return true;
        }
        self.entries.remove(i);
        let key = (current, seq, slot);
        if self.rest_from.is_none_or(|rest| key < rest) {
            let at = self.entries.partition_point(|e| *e < key);
            self.entries.insert(at, key);
        } else {
            // Out of the list: the rest now starts no later than this key.
            self.rest_from = self.rest_from.map(|rest| rest.min(key));
        }
        false
    }
}

impl Rotation {
    /// Adds a member that joined after every current member.
    pub(crate) fn push(&mut self, member: Member) {
        debug_assert!(self.members.last().is_none_or(|m| m.seq < member.seq));
        // Small rotations grow one member at a time: most pools are small
        // and kept by the hundred thousand.
        if self.members.len() == self.members.capacity() && self.members.len() < 64 {
            self.members.reserve_exact(1);
        }
        self.members.push(member);
        self.shortlist.get_mut().take();
    }

    /// Drops the load-aware shortlist (rebuilt at the next pick that needs
    /// it): for when a member's queue end went back.
    pub(crate) fn forget_shortlist(&mut self) {
        self.shortlist.get_mut().take();
    }

    /// Removes the member in `slot`; returns whether it was there.
    pub(crate) fn remove(&mut self, slot: u32) -> bool {
        match self.members.iter().position(|m| m.slot == slot) {
            Some(i) => {
                self.members.remove(i);
                self.shortlist.get_mut().take();
                true
            }
            None => false,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The member the next pick would take: the first for which `eligible`
    /// holds, starting after the last pick. Changes nothing; see [`Rotation::commit`].
    #[inline]
    pub(crate) fn peek(&self, mut eligible: impl FnMut(u32) -> bool) -> Option<Member> {
        self.in_order().find(|m| eligible(m.slot)).copied()
    }

    /// The member a load-aware pick takes: among the members `eligible`
    /// accepts, the one whose queue ends first (`queue_end` of its slot).
    /// Idle members (queue end at or before `now`) tie at a wait of 0 and
    /// keep the round-robin order; busy members with equal ends go in
    /// joining order. With `max_wait`, a member that would wait longer is
    /// not taken. Changes nothing the caller can see. Queue ends must only
    /// grow while the members stay the same.
    pub(crate) fn peek_least(
        &self,
        now: u64,
        max_wait: Option<u64>,
        queue_end: impl Fn(u32) -> u64,
        mut eligible: impl FnMut(u32) -> bool,
    ) -> Option<Member> {
        if self.members.is_empty() {
            return None;
        }
        if self.members.len() <= SCAN_UP_TO {
            return self.scan_least(now, max_wait, queue_end, eligible);
        }
        let mut cell = self.shortlist.borrow_mut();
        let list = cell.get_or_insert_with(Box::default);
        while !list.entries.is_empty() && !list.correct(0, &queue_end) {}
        if list.entries.is_empty() {
            list.rebuild(&self.members, &queue_end);
        }
        // Someone is idle: the first idle eligible member in round-robin order.
        if list.entries[0].0 <= now {
            if let Some(m) = self
                .in_order()
                .find(|m| queue_end(m.slot) <= now && eligible(m.slot))
            {
                return Some(*m);
            }
        }
        // The least queue end, passing over ineligible members. The first
        // correct entry is the least of all, the next correct one the least
        // of the others, and so on.
        let mut i = 0;
        while i < list.entries.len() {
            if !list.correct(i, &queue_end) {
                continue;
            }
            let (end, seq, slot) = list.entries[i];
            if max_wait.is_some_and(|w| end.saturating_sub(now) > w) {
                return None;
            }
            if end > now && eligible(slot) {
                return Some(Member { seq, slot });
            }
            i += 1;
        }
        // Every listed member is ineligible: the others, by a scan.
        let listed = std::mem::take(&mut list.entries);
        let found = self
            .members
            .iter()
            .filter(|m| !listed.iter().any(|e| e.2 == m.slot))
            .map(|m| (queue_end(m.slot), m.seq, m.slot))
            .filter(|k| k.0 > now && max_wait.is_none_or(|w| k.0 - now <= w))
            .filter(|k| eligible(k.2))
            .min()
            .map(|(_, seq, slot)| Member { seq, slot });
        list.entries = listed;
        found
    }

    /// [`Rotation::peek_least`] on a rotation small enough to read whole.
    ///
    /// Two cheap cases come first, for an idle pool and a busy one. If the
    /// next member in round-robin order is idle and eligible, it is the
    /// pick. Else one pass in joining order finds the least queue end. When
    /// no member is idle, the first member holding that end has the least
    /// `(end, seq)` of all, and is the pick if eligible. That pass reads
    /// each member once and compares one integer; it runs over every member
    /// of a busy pool at each new pick. Any other case (an idle member
    /// further on, an ineligible least) takes the general pass by order.
    fn scan_least(
        &self,
        now: u64,
        max_wait: Option<u64>,
        queue_end: impl Fn(u32) -> u64,
        mut eligible: impl FnMut(u32) -> bool,
    ) -> Option<Member> {
        let (after, before) = self.split_in_order();
        if let Some(&next) = after.first().or(before.first()) {
            if queue_end(next.slot) <= now && eligible(next.slot) {
                return Some(next);
            }
        }
        let (mut least_end, mut at) = (u64::MAX, 0);
        for (i, m) in self.members.iter().enumerate() {
            let end = queue_end(m.slot);
            if end < least_end {
                (least_end, at) = (end, i);
            }
        }
        let limit = max_wait.map_or(u64::MAX, |w| now.saturating_add(w));
        if least_end > now {
            // (An end of `MAX` is never taken, as in the pass by order.)
            if least_end > limit || least_end == u64::MAX {
                return None;
            }
            let first = self.members[at];
            if eligible(first.slot) {
                return Some(first);
            }
        }
        Self::scan_least_by_order([after, before], now, limit, queue_end, eligible)
    }

    /// [`Rotation::scan_least`] by one pass in round-robin order (`in_order`,
    /// the two slices of [`Rotation::split_in_order`]), whoever is eligible:
    /// the first idle eligible member, else the least busy eligible one
    /// whose queue ends by `limit`.
    fn scan_least_by_order(
        in_order: [&[Member]; 2],
        now: u64,
        limit: u64,
        queue_end: impl Fn(u32) -> u64,
        mut eligible: impl FnMut(u32) -> bool,
    ) -> Option<Member> {
        // The least `(end, seq)` seen so far (`MAX`: none), compared as
        // plain integers.
        let (mut least_end, mut least_seq) = (u64::MAX, u32::MAX);
        let mut best = None;
        for members in in_order {
            for &m in members {
                let end = queue_end(m.slot);
                if end <= now {
                    if eligible(m.slot) {
                        return Some(m);
                    }
                } else if (end < least_end || (end == least_end && m.seq < least_seq))
                    && end <= limit
                    && eligible(m.slot)
                {
                    (least_end, least_seq) = (end, m.seq);
                    best = Some(m);
                }
            }
        }
        best
    }

    /// Members in round-robin order: after the last pick, then from the start.
    #[inline]
    fn in_order(&self) -> impl Iterator<Item = &Member> {
        let (after, before) = self.split_in_order();
        after.iter().chain(before)
    }

    /// The members after the last pick, and those up to it (round-robin
    /// order is the first slice, then the second).
    #[inline]
    fn split_in_order(&self) -> (&[Member], &[Member]) {
        let start = self.members.partition_point(|m| m.seq <= self.last);
        let (before, after) = self.members.split_at(start);
        (after, before)
    }

    /// Records `member` as the last pick.
    #[inline]
    pub(crate) fn commit(&mut self, member: Member) {
        self.last = member.seq;
    }

    /// [`Rotation::peek`] then [`Rotation::commit`].
    #[cfg(test)]
    pub(crate) fn pick(&mut self, eligible: impl FnMut(u32) -> bool) -> Option<u32> {
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
        // Queue ends of slots 10, 11, 12; now is 100. Ends only grow, but
        // a member's heap entry is rebuilt when members change.
        let ends = std::cell::Cell::new([0u64, 0, 0]);
        let end = |slot: u32| ends.get()[(slot - 10) as usize];
        let least = |r: &Rotation, eligible: &dyn Fn(u32) -> bool, cap: Option<u64>| {
            r.peek_least(100, cap, end, eligible).map(|m| m.slot)
        };
        let all = |_: u32| true;
        // All idle: round-robin order.
        assert_eq!(least(&r, &all, None), Some(10));
        r.commit(r.peek_least(100, None, end, all).unwrap());
        assert_eq!(least(&r, &all, None), Some(11));
        // 11 is busy: the next idle one in order.
        ends.set([0, 105, 50]);
        assert_eq!(least(&r, &all, None), Some(12));
        // All busy: the earliest free; on a tie, the first to join.
        ends.set([103, 109, 107]);
        assert_eq!(least(&r, &all, None), Some(10));
        ends.set([107, 109, 107]);
        assert_eq!(least(&r, &all, None), Some(10));
        assert_eq!(least(&r, &|s| s != 10, None), Some(12));
        assert_eq!(least(&r, &|s| s == 11, None), Some(11));
        // A cap passes over members that would wait longer.
        assert_eq!(least(&r, &|s| s == 11, Some(8)), None);
        assert_eq!(least(&r, &all, Some(6)), None);
        assert_eq!(least(&r, &all, Some(7)), Some(10));
        // Charged members move back (their heap entries are corrected).
        ends.set([120, 109, 130]);
        assert_eq!(least(&r, &all, None), Some(11));
        // Idle members tie at 0 whatever their ends: round-robin among them.
        ends.set([190, 109, 120]);
        r.push(Member {
            seq: 4,
            slot: 10 + 3,
        });
        let four = std::cell::Cell::new([190u64, 109, 120, 20]);
        let end4 = |slot: u32| four.get()[(slot - 10) as usize];
        let pick = |r: &Rotation| r.peek_least(150, None, end4, all).map(|m| m.slot);
        assert_eq!(
            pick(&r),
            Some(11),
            "11, 12 and 13 idle at 150; 11 is first after 10"
        );
        r.commit(Member { seq: 2, slot: 11 });
        assert_eq!(pick(&r), Some(12));
    }

    /// Load-aware picks against the definition, with queue ends growing at
    /// random between picks: on a rotation scanned whole, and on one large
    /// enough to keep a shortlist.
    #[test]
    fn load_aware_picks_match_a_full_scan() {
        for members in [40, SCAN_UP_TO as u32 + 1, 150] {
            load_aware_picks_match_the_definition(members);
        }
    }

    fn load_aware_picks_match_the_definition(members: u32) {
        let slots: Vec<u32> = (0..members).collect();
        let mut r = rotation(&slots);
        let ends = std::cell::RefCell::new(vec![0u64; members as usize]);
        let mut seed = 7u64;
        let mut rand = move |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        for round in 0..20_000u64 {
            let now = round * 3;
            // Charges: the last pick and a few others (sticky hits).
            for _ in 0..rand(4) {
                let slot = rand(members.into()) as usize;
                let mut e = ends.borrow_mut();
                e[slot] = e[slot].max(now) + 1 + rand(20);
            }
            // Every member eligible in a third of the rounds.
            let ineligible = match rand(3) {
                0 => u32::MAX,
                _ => rand(members.into()) as u32,
            };
            let cap = (rand(4) == 0).then(|| rand(30));
            let end = |slot: u32| ends.borrow()[slot as usize];
            let eligible = |slot: u32| slot != ineligible;
            let got = r.peek_least(now, cap, end, eligible);
            // The definition: idle members in round-robin order first,
            // then the least (end, seq) within the cap.
            let want = r
                .in_order()
                .find(|m| end(m.slot) <= now && eligible(m.slot))
                .copied()
                .or_else(|| {
                    r.members
                        .iter()
                        .filter(|m| eligible(m.slot) && end(m.slot) > now)
                        .filter(|m| cap.is_none_or(|c| end(m.slot) - now <= c))
                        .min_by_key(|m| (end(m.slot), m.seq))
                        .copied()
                });
            assert_eq!(got, want, "{members} members, round {round}");
            if let Some(m) = got {
                r.commit(m);
                let mut e = ends.borrow_mut();
                e[m.slot as usize] = e[m.slot as usize].max(now) + 5;
            }
        }
    }
}
