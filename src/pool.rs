//! The senders of one messaging profile and the indexes selection walks.
//!
//! Senders live in slots. A slot's `generation` grows each time its sender
//! leaves, and sticky mappings store `(slot, generation)`: a mapping to a
//! sender that left is recognised as stale in O(1), without scanning the map.

use crate::health::Health;
use crate::number::{Npa, PhoneNumber, SenderKind};
use crate::region::{region_of, RegionId};
use crate::rotation::{Member, Rotation};
use crate::weighted::{LONG_CODE, TOLL_FREE};

type FastMap<K, V> = hashbrown::HashMap<K, V, foldhash::fast::RandomState>;

/// A sender as a sticky mapping refers to it: a pool slot and the slot's
/// generation when the mapping was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SenderRef {
    pub slot: u32,
    pub generation: u32,
}

/// One number of the pool.
#[derive(Debug, Clone)]
pub struct Sender {
    pub number: PhoneNumber,
    pub kind: SenderKind,
    /// When it joined the pool, in joining order (round-robin order).
    pub seq: u64,
    pub health: Health,
}

#[derive(Debug, Clone, Default)]
struct Slot {
    sender: Option<Sender>,
    generation: u32,
}

/// The pool of one profile: its senders, by kind, by area code and by region.
#[derive(Debug, Clone, Default)]
pub struct Pool {
    slots: Vec<Slot>,
    free: Vec<u32>,
    by_number: FastMap<PhoneNumber, u32>,
    /// Long codes and toll-free numbers, indexed by `LONG_CODE`/`TOLL_FREE`.
    kinds: [Rotation; 2],
    by_npa: FastMap<Npa, Rotation>,
    by_region: FastMap<RegionId, Rotation>,
    next_seq: u64,
}

/// Names one of the pool's rotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationKey {
    /// All long codes (`LONG_CODE`) or all toll-free numbers (`TOLL_FREE`).
    Kind(usize),
    /// Senders with this NANP area code.
    Npa(Npa),
    /// Senders in this state or province.
    Region(RegionId),
}

/// The rotation a sender of `kind` takes part in, if the pool picks that kind.
pub fn kind_index(kind: SenderKind) -> Option<usize> {
    match kind {
        SenderKind::LongCode => Some(LONG_CODE),
        SenderKind::TollFree => Some(TOLL_FREE),
        SenderKind::ShortCode => None,
    }
}

impl Pool {
    /// Adds `number` (carrying its `health` from a previous pool, if it moved).
    /// Adding a number that is already here changes nothing.
    pub fn add(&mut self, number: PhoneNumber, health: Health) -> SenderRef {
        if let Some(r) = self.lookup(number) {
            return r;
        }
        self.next_seq += 1;
        let seq = self.next_seq;
        let kind = number.kind();
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(Slot::default());
                (self.slots.len() - 1) as u32
            }
        };
        let member = Member { seq, slot };
        if let Some(k) = kind_index(kind) {
            self.kinds[k].push(member);
            if let Some(npa) = number.npa() {
                self.by_npa.entry(npa).or_default().push(member);
                if let Some(region) = region_of(npa) {
                    self.by_region.entry(region).or_default().push(member);
                }
            }
        }
        self.slots[slot as usize].sender = Some(Sender {
            number,
            kind,
            seq,
            health,
        });
        self.by_number.insert(number, slot);
        SenderRef {
            slot,
            generation: self.slots[slot as usize].generation,
        }
    }

    /// Removes `number`; returns it (with its health) if it was here. Every
    /// mapping to it becomes stale at once.
    pub fn remove(&mut self, number: PhoneNumber) -> Option<Sender> {
        let slot = self.by_number.remove(&number)?;
        let entry = &mut self.slots[slot as usize];
        let sender = entry.sender.take()?;
        entry.generation = entry.generation.wrapping_add(1);
        self.free.push(slot);
        if let Some(k) = kind_index(sender.kind) {
            self.kinds[k].remove(slot);
            if let Some(npa) = number.npa() {
                remove_from(&mut self.by_npa, npa, slot);
                if let Some(region) = region_of(npa) {
                    remove_from(&mut self.by_region, region, slot);
                }
            }
        }
        Some(sender)
    }

    /// The current reference to `number`, if it is in the pool.
    pub fn lookup(&self, number: PhoneNumber) -> Option<SenderRef> {
        let slot = *self.by_number.get(&number)?;
        Some(SenderRef {
            slot,
            generation: self.slots[slot as usize].generation,
        })
    }

    /// The sender `r` refers to, unless it has left since.
    #[inline]
    pub fn resolve(&self, r: SenderRef) -> Option<&Sender> {
        let slot = self.slots.get(r.slot as usize)?;
        if slot.generation == r.generation {
            slot.sender.as_ref()
        } else {
            None
        }
    }

    /// The sender in `slot` (members of rotations always have one).
    #[inline]
    pub fn sender_in(&self, slot: u32) -> Option<&Sender> {
        self.slots.get(slot as usize)?.sender.as_ref()
    }

    /// The reference a new mapping to the sender in `slot` stores.
    pub fn reference(&self, slot: u32) -> SenderRef {
        SenderRef {
            slot,
            generation: self.slots[slot as usize].generation,
        }
    }

    /// Mutable access to a sender, for recording its health.
    pub fn sender_mut(&mut self, number: PhoneNumber) -> Option<&mut Sender> {
        let slot = *self.by_number.get(&number)?;
        self.slots[slot as usize].sender.as_mut()
    }

    /// A rotation selection walks, if the pool has one for `key`.
    pub fn rotation(&self, key: RotationKey) -> Option<&Rotation> {
        match key {
            RotationKey::Kind(k) => self.kinds.get(k),
            RotationKey::Npa(npa) => self.by_npa.get(&npa),
            RotationKey::Region(region) => self.by_region.get(&region),
        }
    }

    /// Mutable access to a rotation (to commit a pick).
    pub fn rotation_mut(&mut self, key: RotationKey) -> Option<&mut Rotation> {
        match key {
            RotationKey::Kind(k) => self.kinds.get_mut(k),
            RotationKey::Npa(npa) => self.by_npa.get_mut(&npa),
            RotationKey::Region(region) => self.by_region.get_mut(&region),
        }
    }

    /// How many senders of each pickable kind the pool holds.
    pub fn kind_counts(&self) -> [usize; 2] {
        [self.kinds[LONG_CODE].len(), self.kinds[TOLL_FREE].len()]
    }

    /// Number of senders, short codes included.
    pub fn len(&self) -> usize {
        self.by_number.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_number.is_empty()
    }

    /// Every sender, in joining order.
    pub fn senders(&self) -> Vec<&Sender> {
        let mut all: Vec<&Sender> = self
            .slots
            .iter()
            .filter_map(|s| s.sender.as_ref())
            .collect();
        all.sort_by_key(|s| s.seq);
        all
    }

    /// Removes every sender, returning them (used when a profile is deleted).
    pub fn drain(&mut self) -> Vec<Sender> {
        let numbers: Vec<PhoneNumber> = self.senders().iter().map(|s| s.number).collect();
        numbers.into_iter().filter_map(|n| self.remove(n)).collect()
    }
}

fn remove_from<K: std::hash::Hash + Eq>(map: &mut FastMap<K, Rotation>, key: K, slot: u32) {
    if let Some(rotation) = map.get_mut(&key) {
        rotation.remove(slot);
        if rotation.is_empty() {
            map.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> PhoneNumber {
        PhoneNumber::parse_sender(s).unwrap()
    }

    #[test]
    fn indexes_by_kind_and_area_code() {
        let mut pool = Pool::default();
        pool.add(n("+13125550001"), Health::default());
        pool.add(n("+13125550002"), Health::default());
        pool.add(n("+18005550003"), Health::default());
        pool.add(n("12345"), Health::default());
        assert_eq!(pool.len(), 4);
        assert_eq!(pool.kind_counts(), [2, 1]);
        assert_eq!(pool.rotation(RotationKey::Npa(312)).unwrap().len(), 2);
        assert!(pool.rotation(RotationKey::Npa(415)).is_none());
        // 312 and 773 are both Illinois.
        let il = region_of(773).unwrap();
        assert_eq!(pool.rotation(RotationKey::Region(il)).unwrap().len(), 2);
    }

    #[test]
    fn removal_makes_references_stale() {
        let mut pool = Pool::default();
        let a = pool.add(n("+13125550001"), Health::default());
        assert!(pool.resolve(a).is_some());
        assert!(pool.remove(n("+13125550001")).is_some());
        assert!(pool.resolve(a).is_none());
        assert!(pool.rotation(RotationKey::Npa(312)).is_none());
        // The slot is reused by a newcomer; the old reference stays stale.
        let b = pool.add(n("+14155550009"), Health::default());
        assert_eq!(b.slot, a.slot);
        assert!(pool.resolve(a).is_none());
        assert_eq!(pool.resolve(b).unwrap().number, n("+14155550009"));
    }

    #[test]
    fn adding_twice_keeps_one() {
        let mut pool = Pool::default();
        let a = pool.add(n("+13125550001"), Health::default());
        let b = pool.add(n("+13125550001"), Health::default());
        assert_eq!(a, b);
        assert_eq!(pool.len(), 1);
        assert_eq!(pool.kind_counts(), [1, 0]);
    }
}
