//! [`Catalog`]: the records of profiles and numbers, with the indexes the
//! listings page through (creation order; numbers by profile), so a page
//! costs the page, not the catalog.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::clock::Timestamp;
use crate::ids::ProfileId;
use crate::number::PhoneNumber;
use crate::resources::{NumberFilter, NumberRecord, ProfileRecord};

/// The records of profiles and numbers.
#[derive(Default)]
pub(crate) struct Catalog {
    /// Each profile's record with its place in creation order.
    profiles: HashMap<ProfileId, (u64, ProfileRecord)>,
    /// Creation order -> profile.
    by_order: BTreeMap<u64, ProfileId>,
    next_profile: u64,
    numbers: BTreeMap<PhoneNumber, NumberRecord>,
    /// Each profile's numbers.
    by_profile: HashMap<ProfileId, BTreeSet<PhoneNumber>>,
    /// The number with id `i + 1` at `i` (ids are handed out in order).
    number_ids: Vec<PhoneNumber>,
    next_number_id: u64,
}

impl Catalog {
    /// Records a new or changed profile (a new one goes last in order).
    pub(crate) fn put_profile(&mut self, record: ProfileRecord) {
        let order = match self.profiles.get(&record.id) {
            Some((order, _)) => *order,
            None => {
                self.next_profile += 1;
                self.by_order.insert(self.next_profile, record.id);
                self.next_profile
            }
        };
        self.profiles.insert(record.id, (order, record));
    }

    /// Forgets a deleted profile; its numbers become unassigned at `now`.
    pub(crate) fn remove_profile(&mut self, id: ProfileId, now: Timestamp) {
        if let Some((order, _)) = self.profiles.remove(&id) {
            self.by_order.remove(&order);
        }
        for number in self.by_profile.remove(&id).unwrap_or_default() {
            if let Some(r) = self.numbers.get_mut(&number) {
                r.profile = None;
                r.updated_at = now;
            }
        }
    }

    /// The record of profile `id`.
    pub(crate) fn profile(&self, id: ProfileId) -> Option<&ProfileRecord> {
        self.profiles.get(&id).map(|(_, r)| r)
    }

    /// Every profile record, in creation order.
    pub(crate) fn profiles(&self) -> Vec<ProfileRecord> {
        self.profiles_page(0, usize::MAX, |_| true).0
    }

    /// The profiles passing `keep`, in creation order: `limit` of them from
    /// `offset`, with how many pass in all.
    pub(crate) fn profiles_page(
        &self,
        offset: usize,
        limit: usize,
        keep: impl Fn(&ProfileRecord) -> bool,
    ) -> (Vec<ProfileRecord>, usize) {
        let records = self.by_order.values().filter_map(|id| self.profile(*id));
        let mut page = Vec::new();
        let mut total = 0;
        for r in records.filter(|r| keep(r)) {
            if total >= offset && page.len() < limit {
                page.push(r.clone());
            }
            total += 1;
        }
        (page, total)
    }

    /// Number of profiles.
    pub(crate) fn profile_count(&self) -> usize {
        self.profiles.len()
    }

    /// Records `record` (new or changed).
    pub(crate) fn put_number(&mut self, record: NumberRecord) {
        self.next_number_id = self.next_number_id.max(record.id);
        if let Some(i) = usize::try_from(record.id)
            .ok()
            .and_then(|id| id.checked_sub(1))
        {
            if i >= self.number_ids.len() {
                // A gap (never left by this engine) is filled with this number;
                // lookups check the record's id.
                self.number_ids.resize(i + 1, record.number);
            }
            self.number_ids[i] = record.number;
        }
        if let Some(old) = self.numbers.get(&record.number).and_then(|r| r.profile) {
            if let Some(set) = self.by_profile.get_mut(&old) {
                set.remove(&record.number);
            }
        }
        if let Some(p) = record.profile {
            self.by_profile.entry(p).or_default().insert(record.number);
        }
        self.numbers.insert(record.number, record);
    }

    /// The id the next new number gets.
    pub(crate) fn next_number_id(&self) -> u64 {
        self.next_number_id + 1
    }

    /// The record of `number`.
    pub(crate) fn number(&self, number: PhoneNumber) -> Option<&NumberRecord> {
        self.numbers.get(&number)
    }

    /// Every number record, by number (snapshots).
    pub(crate) fn numbers(&self) -> &BTreeMap<PhoneNumber, NumberRecord> {
        &self.numbers
    }

    /// The record of the number whose id is `id`.
    pub(crate) fn number_by_id(&self, id: u64) -> Option<&NumberRecord> {
        let i = usize::try_from(id).ok()?.checked_sub(1)?;
        let record = self.numbers.get(self.number_ids.get(i)?)?;
        (record.id == id).then_some(record)
    }

    /// The numbers passing `filter`, by number: `limit` of them from
    /// `offset`, with how many pass in all. A profile's numbers are read
    /// from its own index.
    pub(crate) fn numbers_page(
        &self,
        filter: &NumberFilter,
        offset: usize,
        limit: usize,
    ) -> (Vec<NumberRecord>, usize) {
        let mut text = String::new();
        let mut keep = |r: &&NumberRecord| {
            filter.kind.is_none_or(|k| r.number.kind() == k)
                && (filter.numbers.is_empty() || filter.numbers.contains(&r.number))
                && filter.contains.as_deref().is_none_or(|part| {
                    use std::fmt::Write;
                    text.clear();
                    let _ = write!(text, "{}", r.number);
                    text.contains(part)
                })
        };
        let mut page = Vec::new();
        let mut total = 0;
        let mut visit = |r: &NumberRecord| {
            if total >= offset && page.len() < limit {
                page.push(*r);
            }
            total += 1;
        };
        let by_number: Box<dyn DoubleEndedIterator<Item = &NumberRecord> + '_> =
            match filter.profile {
                Some(p) => Box::new(
                    self.by_profile
                        .get(&p)
                        .into_iter()
                        .flatten()
                        .filter_map(|n| self.numbers.get(n)),
                ),
                None => Box::new(self.numbers.values()),
            };
        let ordered: Box<dyn Iterator<Item = &NumberRecord> + '_> = if filter.descending {
            Box::new(by_number.rev())
        } else {
            by_number
        };
        ordered.filter(&mut keep).for_each(&mut visit);
        (page, total)
    }
}
