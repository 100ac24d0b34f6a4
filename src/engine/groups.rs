//! A batch's items grouped by profile: each group is served under one hold
//! of its profile (see `Engine::send_batch`).

use crate::ids::ProfileId;
use crate::number::PhoneNumber;

/// A batch's items grouped by profile, in the order profiles first appear:
/// each group's positions in order, all in one vector (a group is a range
/// of it, so a batch of many small groups allocates nothing per group).
pub(super) struct Groups {
    /// Positions, group after group.
    order: Vec<usize>,
    /// Each group's profile and where its positions end in `order` (they
    /// start where the group before ends).
    ends: Vec<(ProfileId, usize)>,
}

impl Groups {
    /// Groups `items`: one pass finds each item's group and counts it, a
    /// counting sort then places the positions.
    pub(super) fn of(items: &[(ProfileId, PhoneNumber)]) -> Groups {
        let mut table = GroupTable::new();
        let group_of: Vec<u32> = items.iter().map(|&(p, _)| table.count(p)).collect();
        let (profiles, sizes) = table.into_sizes();
        // Each group's next free place in `order`.
        let mut next = Vec::with_capacity(sizes.len());
        let mut ends = Vec::with_capacity(sizes.len());
        let mut end = 0;
        for (profile, n) in profiles.into_iter().zip(sizes) {
            next.push(end);
            end += n;
            ends.push((profile, end));
        }
        let mut order = vec![0; items.len()];
        for (i, &g) in group_of.iter().enumerate() {
            order[next[g as usize]] = i;
            next[g as usize] += 1;
        }
        Groups { order, ends }
    }

    pub(super) fn len(&self) -> usize {
        self.ends.len()
    }

    pub(super) fn profile(&self, g: usize) -> ProfileId {
        self.ends[g].0
    }

    /// The positions of group `g`, in order.
    pub(super) fn positions(&self, g: usize) -> &[usize] {
        let start = g.checked_sub(1).map_or(0, |before| self.ends[before].1);
        &self.order[start..self.ends[g].1]
    }
}

/// Slots of [`GroupTable`] (a power of two).
const SLOTS: usize = 64;

/// Profiles [`GroupTable`] holds in its slots: at most half full, so that
/// probes stay short. A batch's further profiles go to a map.
const IN_SLOTS: usize = SLOTS / 2;

/// One slot: a profile, its group and how many items it has so far (0: an
/// empty slot).
#[derive(Clone, Copy)]
struct Slot {
    profile: ProfileId,
    group: u32,
    count: usize,
}

/// The profiles of a batch met so far, each with its group (numbered in the
/// order profiles first appear) and its item count: an open table of a
/// few slots on the stack, found by a few bits of the id. An item whose
/// profile sits in its first slot, the usual case, costs a multiply and a
/// compare; a hash of the 16-byte id and a map only serve batches of
/// many profiles.
struct GroupTable {
    slots: [Slot; SLOTS],
    /// Each group's profile, by group.
    profiles: Vec<ProfileId>,
    /// Groups beyond the slots' share, with their counts.
    more: hashbrown::HashMap<ProfileId, (u32, usize), foldhash::fast::RandomState>,
}

impl GroupTable {
    fn new() -> GroupTable {
        let empty = Slot {
            profile: ProfileId(uuid::Uuid::nil()),
            group: 0,
            count: 0,
        };
        GroupTable {
            slots: [empty; SLOTS],
            profiles: Vec::new(),
            more: hashbrown::HashMap::default(),
        }
    }

    /// Counts an item of `profile`; returns its group. The first two slots
    /// of its probe are looked at inline: of ten profiles in 64 slots, one
    /// sits in its second slot in about every other batch, and its items
    /// would all take the call.
    #[inline(always)]
    fn count(&mut self, profile: ProfileId) -> u32 {
        let first = first_slot(profile);
        for i in [first, (first + 1) % SLOTS] {
            let slot = &mut self.slots[i];
            if slot.profile == profile && slot.count > 0 {
                slot.count += 1;
                return slot.group;
            }
        }
        self.count_probing(profile)
    }

    /// [`GroupTable::count`] past the first slots: the probe goes on to the
    /// profile's slot or an empty one, where a new profile takes the next
    /// group (or, once the slots hold their share, the map).
    #[inline(never)]
    fn count_probing(&mut self, profile: ProfileId) -> u32 {
        let mut i = first_slot(profile);
        loop {
            let slot = &mut self.slots[i];
            if slot.count == 0 {
                break;
            }
            if slot.profile == profile {
                slot.count += 1;
                return slot.group;
            }
            i = (i + 1) % SLOTS;
        }
        let group = match self.more.get_mut(&profile) {
            Some((group, count)) => {
                *count += 1;
                return *group;
            }
            None => self.profiles.len() as u32,
        };
        self.profiles.push(profile);
        if self.profiles.len() <= IN_SLOTS {
            self.slots[i] = Slot {
                profile,
                group,
                count: 1,
            };
        } else {
            self.more.insert(profile, (group, 1));
        }
        group
    }

    /// Each group's profile and item count, by group.
    fn into_sizes(self) -> (Vec<ProfileId>, Vec<usize>) {
        let mut sizes = vec![0; self.profiles.len()];
        let counted = self.slots.iter().filter(|s| s.count > 0);
        for (group, count) in counted
            .map(|s| (s.group, s.count))
            .chain(self.more.into_values())
        {
            sizes[group as usize] = count;
        }
        (self.profiles, sizes)
    }
}

/// The first slot `profile` is looked for in: the two halves of its id
/// xored, times a large odd constant, the product's top bits. Every bit of
/// the id counts, so ids that share most of theirs (time-ordered ones)
/// spread too.
#[inline(always)]
fn first_slot(profile: ProfileId) -> usize {
    let v = profile.0.as_u128();
    let folded = (v as u64) ^ ((v >> 64) as u64);
    (folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SLOTS.trailing_zeros())) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Grouping by profile, against the plain definition: groups in the
    /// order their profiles first appear, each with its positions in order.
    /// Batches of 1, 10 and 200 profiles (more than the slots hold, so
    /// the map serves some), one of them the nil id (the id an empty slot
    /// holds); taking turns item by item, in runs, and at random.
    #[test]
    fn a_batch_is_grouped_by_profile_in_order_of_first_appearance() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut random = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as usize
        };
        let to = PhoneNumber::from_u64(14_155_550_000).unwrap();
        for n in [1, 10, 200] {
            let mut profiles: Vec<ProfileId> = (0..n).map(|_| ProfileId::new_v4()).collect();
            profiles[n / 2] = ProfileId(uuid::Uuid::nil());
            let orders: [Vec<usize>; 3] = [
                (0..4096).map(|i| i % n).collect(),
                (0..4096).map(|i| (i / 7) % n).collect(),
                (0..4096).map(|_| random() % n).collect(),
            ];
            for order in orders {
                let items: Vec<(ProfileId, PhoneNumber)> =
                    order.iter().map(|&p| (profiles[p], to)).collect();
                let mut expected: Vec<(ProfileId, Vec<usize>)> = Vec::new();
                for (i, &(profile, _)) in items.iter().enumerate() {
                    match expected.iter_mut().find(|(p, _)| *p == profile) {
                        Some((_, positions)) => positions.push(i),
                        None => expected.push((profile, vec![i])),
                    }
                }
                let groups = Groups::of(&items);
                let got: Vec<(ProfileId, Vec<usize>)> = (0..groups.len())
                    .map(|g| (groups.profile(g), groups.positions(g).to_vec()))
                    .collect();
                assert_eq!(got, expected, "{n} profiles");
            }
        }
        assert_eq!(Groups::of(&[]).len(), 0);
    }
}
