//! The senders of one messaging profile and the indexes selection walks.
//!
//! Senders live in slots. A slot's `generation` grows each time its sender
//! leaves, and sticky mappings store `(slot, generation)`: a mapping to a
//! sender that left is recognised as stale in O(1), without scanning the map.

use super::capacity::SenderLoad;
use super::health::Health;
use super::rotation::{Member, Rotation};
use super::weighted::{LONG_CODE, TOLL_FREE};
use crate::geo::npa::{region_of, RegionId};
use crate::number::{Npa, PhoneNumber, SenderKind};

type FastMap<K, V> = hashbrown::HashMap<K, V, foldhash::fast::RandomState>;

/// Up to this many senders, a number is found by scanning the slots
/// (a few cache lines) rather than through a map a small pool would pay
/// hundreds of bytes for.
const SCAN_UP_TO: usize = 16;

/// A sender as a sticky mapping refers to it: a pool slot and the slot's
/// generation when the mapping was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SenderRef {
    pub slot: u32,
    pub generation: u32,
}

/// One number of the pool.
#[derive(Debug, Clone)]
pub(crate) struct Sender {
    pub number: PhoneNumber,
    pub kind: SenderKind,
    /// When it joined the pool, in joining order (round-robin order).
    pub seq: u32,
    /// Its delivery outcomes.
    pub health: Health,
}

/// What a number brings when it joins a pool: what it had in its last one
/// (health, rate, queue and counters travel with the number).
#[derive(Debug, Clone, Default)]
pub(crate) struct Carried {
    /// Its delivery outcomes.
    pub health: Health,
    /// Its own messages per second.
    pub rate: Option<f64>,
    /// When its queue ends.
    pub free_at_ns: u64,
    /// Its today's counters.
    pub load: SenderLoad,
}

#[derive(Debug, Clone, Default)]
struct Slot {
    sender: Option<Sender>,
    generation: u32,
}

/// The pool of one profile: its senders, by kind, by area code and by region.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pool {
    slots: Vec<Slot>,
    /// When each slot's sender's queue ends (ns since the epoch), apart
    /// from the senders: a load-aware pick reads it for every candidate,
    /// and a dense array keeps that to a few cache lines.
    queue_ends: Vec<u64>,
    /// The queue ends last handed to the journal, by slot (empty until
    /// the first [`Pool::queue_changes`]): what moved since is written next.
    queue_written: Vec<u64>,
    /// Each slot's own rate and today's counters; empty until the pool's
    /// first send (or rate), so an idle profile pays nothing for them.
    loads: Vec<SenderLoad>,
    free: Vec<u32>,
    /// Number -> slot, kept once the pool outgrows [`SCAN_UP_TO`].
    by_number: Option<FastMap<PhoneNumber, u32>>,
    /// Senders in the pool.
    len: usize,
    /// Long codes and toll-free numbers, indexed by `LONG_CODE`/`TOLL_FREE`.
    kinds: [Rotation; 2],
    /// The geomatch rotations, built the first time geomatch is turned on
    /// (most profiles never pay for them). Until then no geomatch pick has
    /// moved a cursor, so building them late selects exactly as building
    /// them all along would have.
    geo: Option<Box<GeoIndex>>,
    next_seq: u32,
}

/// Senders by area code and by region, each list sorted by key (a pool
/// spans few, so a sorted list is small and quick).
#[derive(Debug, Clone, Default)]
struct GeoIndex {
    by_npa: Vec<(Npa, Rotation)>,
    by_region: Vec<(RegionId, Rotation)>,
    /// Senders outside the NANP, by country calling code.
    by_country: Vec<(u16, Rotation)>,
}

impl GeoIndex {
    fn forget_shortlists(&mut self) {
        let lists = self.by_npa.iter_mut().map(|(_, r)| r);
        let lists = lists.chain(self.by_region.iter_mut().map(|(_, r)| r));
        for rotation in lists.chain(self.by_country.iter_mut().map(|(_, r)| r)) {
            rotation.forget_shortlist();
        }
    }

    fn add(&mut self, number: PhoneNumber, member: Member) {
        if let Some(npa) = number.npa() {
            entry(&mut self.by_npa, npa).push(member);
            if let Some(region) = region_of(npa) {
                entry(&mut self.by_region, region).push(member);
            }
        } else if let Some(code) = number.calling_code() {
            entry(&mut self.by_country, code).push(member);
        }
    }

    fn remove(&mut self, number: PhoneNumber, slot: u32) {
        if let Some(npa) = number.npa() {
            remove_from(&mut self.by_npa, npa, slot);
            if let Some(region) = region_of(npa) {
                remove_from(&mut self.by_region, region, slot);
            }
        } else if let Some(code) = number.calling_code() {
            remove_from(&mut self.by_country, code, slot);
        }
    }

    fn list(&self, key: RotationKey) -> Option<&Rotation> {
        match key {
            RotationKey::Kind(_) => None,
            RotationKey::Npa(npa) => find(&self.by_npa, npa).map(|i| &self.by_npa[i].1),
            RotationKey::Region(r) => find(&self.by_region, r).map(|i| &self.by_region[i].1),
            RotationKey::Country(c) => find(&self.by_country, c).map(|i| &self.by_country[i].1),
        }
    }

    fn list_mut(&mut self, key: RotationKey) -> Option<&mut Rotation> {
        match key {
            RotationKey::Kind(_) => None,
            RotationKey::Npa(npa) => find(&self.by_npa, npa).map(|i| &mut self.by_npa[i].1),
            RotationKey::Region(r) => find(&self.by_region, r).map(|i| &mut self.by_region[i].1),
            RotationKey::Country(c) => find(&self.by_country, c).map(|i| &mut self.by_country[i].1),
        }
    }
}

/// Pushes onto `v` growing it by one slot while it is small (pools of a
/// few numbers are the common case and are kept by the hundred thousand),
/// by doubling after.
fn push_tight<T>(v: &mut Vec<T>, value: T) {
    if v.len() == v.capacity() && v.len() < 64 {
        v.reserve_exact(1);
    }
    v.push(value);
}

/// The rotation of `key` in a sorted list, created if missing.
fn entry<K: Ord + Copy>(list: &mut Vec<(K, Rotation)>, key: K) -> &mut Rotation {
    let i = match list.binary_search_by_key(&key, |(k, _)| *k) {
        Ok(i) => i,
        Err(i) => {
            list.insert(i, (key, Rotation::default()));
            i
        }
    };
    &mut list[i].1
}

fn find<K: Ord + Copy>(list: &[(K, Rotation)], key: K) -> Option<usize> {
    list.binary_search_by_key(&key, |(k, _)| *k).ok()
}

/// Names one of the pool's rotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RotationKey {
    /// All long codes (`LONG_CODE`) or all toll-free numbers (`TOLL_FREE`).
    Kind(usize),
    /// Senders with this NANP area code.
    Npa(Npa),
    /// Senders in this state or province.
    Region(RegionId),
    /// Senders outside the NANP with this country calling code.
    Country(u16),
}

/// The rotation a sender of `kind` takes part in, if the pool picks that kind.
pub(crate) fn kind_index(kind: SenderKind) -> Option<usize> {
    match kind {
        SenderKind::LongCode => Some(LONG_CODE),
        SenderKind::TollFree => Some(TOLL_FREE),
        SenderKind::ShortCode => None,
    }
}

impl Pool {
    /// Adds `number` with what it `carried` from a previous pool, if it
    /// moved. Adding a number that is already here changes nothing.
    pub(crate) fn add(&mut self, number: PhoneNumber, carried: Carried) -> SenderRef {
        if let Some(r) = self.lookup(number) {
            return r;
        }
        self.next_seq += 1;
        let seq = self.next_seq;
        let kind = number.kind();
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                push_tight(&mut self.slots, Slot::default());
                push_tight(&mut self.queue_ends, 0);
                (self.slots.len() - 1) as u32
            }
        };
        self.queue_ends[slot as usize] = carried.free_at_ns;
        let load = SenderLoad {
            rate: carried.rate.unwrap_or(f64::NAN),
            part_ns: 0,
            ..carried.load
        };
        if !load.is_idle() || !self.loads.is_empty() {
            *self.load_mut(slot) = load;
        }
        let member = Member { seq, slot };
        if let Some(k) = kind_index(kind) {
            self.kinds[k].push(member);
            if let Some(geo) = &mut self.geo {
                geo.add(number, member);
            }
        }
        self.slots[slot as usize].sender = Some(Sender {
            number,
            kind,
            seq,
            health: carried.health,
        });
        self.len += 1;
        match &mut self.by_number {
            Some(map) => {
                map.insert(number, slot);
            }
            None if self.len > SCAN_UP_TO => {
                let map = self
                    .slots
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| Some((s.sender.as_ref()?.number, i as u32)))
                    .collect();
                self.by_number = Some(map);
            }
            None => {}
        }
        SenderRef {
            slot,
            generation: self.slots[slot as usize].generation,
        }
    }

    /// Removes `number`; returns what it carries to another pool (health,
    /// rate, queue, counters) if it was here. Every mapping to it becomes
    /// stale at once.
    pub(crate) fn remove(&mut self, number: PhoneNumber) -> Option<Carried> {
        let slot = self.slot_of(number)?;
        if let Some(map) = &mut self.by_number {
            map.remove(&number);
        }
        self.len -= 1;
        let entry = &mut self.slots[slot as usize];
        let sender = entry.sender.take()?;
        entry.generation = entry.generation.wrapping_add(1);
        self.free.push(slot);
        if let Some(k) = kind_index(sender.kind) {
            self.kinds[k].remove(slot);
            if let Some(geo) = &mut self.geo {
                geo.remove(number, slot);
            }
        }
        let load = self
            .loads
            .get_mut(slot as usize)
            .map_or(SenderLoad::IDLE, |l| std::mem::replace(l, SenderLoad::IDLE));
        Some(Carried {
            rate: load.own_rate(),
            health: sender.health,
            free_at_ns: self.queue_ends[slot as usize],
            load,
        })
    }

    /// The rate and today's counters of the sender in `slot`.
    #[inline]
    pub(crate) fn load(&self, slot: u32) -> &SenderLoad {
        static IDLE: SenderLoad = SenderLoad::IDLE;
        self.loads.get(slot as usize).unwrap_or(&IDLE)
    }

    /// The same, to change (the first one allocates the pool's loads).
    /// The check inlines alone; the allocation is out of line.
    #[inline(always)]
    pub(crate) fn load_mut(&mut self, slot: u32) -> &mut SenderLoad {
        if self.loads.len() < self.slots.len() {
            self.grow_loads();
        }
        &mut self.loads[slot as usize]
    }

    #[cold]
    #[inline(never)]
    fn grow_loads(&mut self) {
        self.loads.resize(self.slots.len(), SenderLoad::IDLE);
    }

    /// Counters of day `from` become day `to`'s (the profile's time zone
    /// changed: the day's counts are kept).
    pub(crate) fn relabel_day(&mut self, from: i32, to: i32) {
        for load in self.loads.iter_mut().filter(|l| l.day == from) {
            load.day = to;
        }
    }

    /// Sets the own rate of the sender in `slot` (`None`: its kind's).
    pub(crate) fn set_rate(&mut self, slot: u32, rate: Option<f64>) {
        if rate.is_some() || !self.loads.is_empty() {
            let load = self.load_mut(slot);
            load.rate = rate.unwrap_or(f64::NAN);
            load.part_ns = 0;
        }
    }

    /// Every sender with its slot, in slot order.
    pub(crate) fn occupied(&self) -> impl Iterator<Item = (u32, &Sender)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((i as u32, s.sender.as_ref()?)))
    }

    /// When the queue of the sender in `slot` ends.
    #[inline]
    pub(crate) fn queue_end(&self, slot: u32) -> u64 {
        self.queue_ends[slot as usize]
    }

    /// When each slot's queue ends, by slot (a scan over many senders reads
    /// them through one borrowed slice).
    #[inline]
    pub(crate) fn queue_ends_by_slot(&self) -> &[u64] {
        &self.queue_ends
    }

    /// Moves the end of the queue of the sender in `slot`.
    #[inline]
    pub(crate) fn set_queue_end(&mut self, slot: u32, end_ns: u64) {
        self.queue_ends[slot as usize] = end_ns;
    }

    /// Adds to `out` the senders whose queue end moved since it was last
    /// handed to the journal, with their queue ends, at most up to `max`
    /// entries in `out`; notes them as handed over. Returns whether more
    /// moved than fitted.
    pub(crate) fn queue_changes(&mut self, max: usize, out: &mut Vec<(PhoneNumber, u64)>) -> bool {
        if self.queue_written.len() < self.queue_ends.len() {
            self.queue_written.resize(self.queue_ends.len(), 0);
        }
        for (i, slot) in self.slots.iter().enumerate() {
            let Some(sender) = &slot.sender else {
                continue;
            };
            let end = self.queue_ends[i];
            if end != self.queue_written[i] {
                if out.len() >= max {
                    return true;
                }
                out.push((sender.number, end));
                self.queue_written[i] = end;
            }
        }
        false
    }

    /// Marks the queue end in `slot` as not yet handed to the journal.
    pub(crate) fn unwrite_queue_end(&mut self, slot: u32) {
        if let Some(w) = self.queue_written.get_mut(slot as usize) {
            *w = u64::MAX;
        }
    }

    /// Every sender with a queue end, for a snapshot.
    pub(crate) fn queue_ends(&self) -> Vec<(PhoneNumber, u64)> {
        self.occupied()
            .map(|(slot, s)| (s.number, self.queue_ends[slot as usize]))
            .filter(|&(_, end)| end > 0)
            .collect()
    }

    /// Sets the queue end of `number` as the journal has it (a replay, or a
    /// standby applying its leader's log), as already written.
    pub(crate) fn restore_queue_end(&mut self, number: PhoneNumber, end_ns: u64) {
        let Some(slot) = self.slot_of(number) else {
            return;
        };
        self.queue_ends[slot as usize] = end_ns;
        if self.queue_written.len() < self.queue_ends.len() {
            self.queue_written.resize(self.queue_ends.len(), 0);
        }
        self.queue_written[slot as usize] = end_ns;
        // A queue end may go back here, which load-aware picks do not
        // expect of a member: their shortlists start over.
        for rotation in self.kinds.iter_mut() {
            rotation.forget_shortlist();
        }
        if let Some(geo) = &mut self.geo {
            geo.forget_shortlists();
        }
    }

    /// The slot of `number`, if it is in the pool.
    fn slot_of(&self, number: PhoneNumber) -> Option<u32> {
        match &self.by_number {
            Some(map) => map.get(&number).copied(),
            None => self
                .slots
                .iter()
                .position(|s| s.sender.as_ref().is_some_and(|s| s.number == number))
                .map(|i| i as u32),
        }
    }

    /// The current reference to `number`, if it is in the pool.
    pub(crate) fn lookup(&self, number: PhoneNumber) -> Option<SenderRef> {
        let slot = self.slot_of(number)?;
        Some(SenderRef {
            slot,
            generation: self.slots[slot as usize].generation,
        })
    }

    /// The sender `r` refers to, unless it has left since.
    #[inline]
    pub(crate) fn resolve(&self, r: SenderRef) -> Option<&Sender> {
        let slot = self.slots.get(r.slot as usize)?;
        if slot.generation == r.generation {
            slot.sender.as_ref()
        } else {
            None
        }
    }

    /// Hints the CPU to fetch the sender in `slot` and its load.
    #[inline]
    pub(crate) fn prefetch_sender(&self, slot: u32) {
        if let Some(s) = self.slots.get(slot as usize) {
            super::prefetch(s);
        }
        if let Some(l) = self.loads.get(slot as usize) {
            super::prefetch(l);
        }
    }

    /// The sender in `slot` (members of rotations always have one).
    #[inline]
    pub(crate) fn sender_in(&self, slot: u32) -> Option<&Sender> {
        self.slots.get(slot as usize)?.sender.as_ref()
    }

    /// The reference a new mapping to the sender in `slot` stores.
    pub(crate) fn reference(&self, slot: u32) -> SenderRef {
        SenderRef {
            slot,
            generation: self.slots[slot as usize].generation,
        }
    }

    /// Mutable access to a sender, for recording its health.
    pub(crate) fn sender_mut(&mut self, number: PhoneNumber) -> Option<&mut Sender> {
        let slot = self.slot_of(number)?;
        self.slots[slot as usize].sender.as_mut()
    }

    /// A rotation selection walks, if the pool has one for `key`.
    pub(crate) fn rotation(&self, key: RotationKey) -> Option<&Rotation> {
        match key {
            RotationKey::Kind(k) => self.kinds.get(k),
            _ => self.geo.as_ref()?.list(key),
        }
    }

    /// Mutable access to a rotation (to commit a pick).
    pub(crate) fn rotation_mut(&mut self, key: RotationKey) -> Option<&mut Rotation> {
        match key {
            RotationKey::Kind(k) => self.kinds.get_mut(k),
            _ => self.geo.as_mut()?.list_mut(key),
        }
    }

    /// Builds the geomatch rotations if they are not built yet (geomatch is
    /// being turned on), from the senders in joining order.
    pub(crate) fn enable_geo(&mut self) {
        if self.geo.is_some() {
            return;
        }
        let mut geo = GeoIndex::default();
        for s in self.senders() {
            if kind_index(s.kind).is_some() {
                let slot = self.slot_of(s.number).expect("a listed sender has a slot");
                geo.add(s.number, Member { seq: s.seq, slot });
            }
        }
        self.geo = Some(Box::new(geo));
    }

    /// How many senders of each pickable kind the pool holds.
    pub(crate) fn kind_counts(&self) -> [usize; 2] {
        [self.kinds[LONG_CODE].len(), self.kinds[TOLL_FREE].len()]
    }

    /// Number of senders, short codes included.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Every sender, in joining order.
    pub(crate) fn senders(&self) -> Vec<&Sender> {
        let mut all: Vec<&Sender> = self
            .slots
            .iter()
            .filter_map(|s| s.sender.as_ref())
            .collect();
        all.sort_by_key(|s| s.seq);
        all
    }

    /// Removes every sender, returning their numbers (used when a profile
    /// is deleted).
    pub(crate) fn drain(&mut self) -> Vec<PhoneNumber> {
        let numbers: Vec<PhoneNumber> = self.senders().iter().map(|s| s.number).collect();
        for &n in &numbers {
            self.remove(n);
        }
        numbers
    }
}

fn remove_from<K: Ord + Copy>(list: &mut Vec<(K, Rotation)>, key: K, slot: u32) {
    if let Some(i) = find(list, key) {
        list[i].1.remove(slot);
        if list[i].1.is_empty() {
            list.remove(i);
        }
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
