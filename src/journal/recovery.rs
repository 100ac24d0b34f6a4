//! Recovery: the latest readable snapshot, then the log segments after it,
//! replayed into plain [`Profile`]s before any actor starts.

use std::collections::BTreeMap;
use std::path::Path;

use super::record::{self, Record};
use super::{numbered, segment_path, snapshot};
use crate::config::SelectionConfig;
use crate::number::PhoneNumber;
use crate::profile::Profile;
use crate::records::{NumberRecord, ProfileRecord};
use crate::registry::ProfileId;

/// The state recovered from a data directory.
pub struct Recovered {
    pub profiles: Vec<(ProfileRecord, Profile)>,
    pub numbers: Vec<NumberRecord>,
    /// The segment new records go to.
    pub segment: u64,
    /// The snapshot recovery started from, if any.
    pub snapshot: Option<u64>,
    /// Records replayed from the log.
    pub replayed: u64,
    /// What recovery repaired or skipped (truncated tails, unreadable snapshots).
    pub warnings: Vec<String>,
}

/// Maps keyed by profile id, with the crate's fast hasher (one lookup per record).
type ByProfile<V> = hashbrown::HashMap<ProfileId, V, foldhash::fast::RandomState>;

struct Replay<'a> {
    config: &'a SelectionConfig,
    profiles: ByProfile<(ProfileRecord, Profile)>,
    numbers: BTreeMap<PhoneNumber, NumberRecord>,
    /// Profiles in the snapshot whose log records up to their marker are in it already.
    awaiting_mark: hashbrown::HashSet<ProfileId, foldhash::fast::RandomState>,
}

impl Replay<'_> {
    fn apply(&mut self, r: Record) {
        if let Some(p) = r.profile().filter(|_| !self.awaiting_mark.is_empty()) {
            if self.awaiting_mark.contains(&p) {
                if matches!(r, Record::SnapshotMark { .. }) {
                    self.awaiting_mark.remove(&p);
                }
                return;
            }
        }
        let health = &self.config.health;
        match r {
            Record::ProfileSaved { profile, at } => match self.profiles.get_mut(&profile.id) {
                Some((state, p)) => {
                    p.restore_settings(profile.number_pool_settings.clone(), at);
                    *state = profile;
                }
                None => {
                    let p = Profile::new(profile.number_pool_settings.clone(), self.config, at);
                    self.profiles.insert(profile.id, (profile, p));
                }
            },
            Record::ProfileDeleted { profile } => {
                self.profiles.remove(&profile);
                for n in self.numbers.values_mut() {
                    if n.profile == Some(profile) {
                        n.profile = None;
                    }
                }
            }
            Record::NumberSaved {
                number,
                id,
                owner,
                created_at,
                updated_at,
                ..
            } => {
                let previous = self.numbers.get(&number).and_then(|n| n.profile);
                if previous != owner {
                    let carried = previous
                        .and_then(|q| self.profiles.get_mut(&q))
                        .and_then(|(_, p)| p.remove_sender(number))
                        .map(|s| s.health);
                    if let Some((_, p)) = owner.and_then(|o| self.profiles.get_mut(&o)) {
                        p.add_sender(number, carried.unwrap_or_default());
                    }
                }
                self.numbers.insert(
                    number,
                    NumberRecord {
                        number,
                        id,
                        profile: owner.filter(|o| self.profiles.contains_key(o)),
                        created_at,
                        updated_at,
                    },
                );
            }
            Record::MappingSet {
                profile,
                to,
                from,
                created_at,
                last_used,
                pinned,
            } => {
                if let Some((_, p)) = self.profiles.get_mut(&profile) {
                    p.restore_mapping(to, from, created_at, last_used, pinned);
                }
            }
            Record::MappingTouched {
                profile,
                to,
                last_used,
            } => {
                if let Some((_, p)) = self.profiles.get_mut(&profile) {
                    p.restore_touch(to, last_used);
                }
            }
            Record::MappingRemoved { profile, to } => {
                if let Some((_, p)) = self.profiles.get_mut(&profile) {
                    p.unmap(to, 0);
                }
            }
            Record::Outcome {
                profile,
                sender,
                outcome,
                at,
            } => {
                if let Some((_, p)) = self.profiles.get_mut(&profile) {
                    p.record_outcome(sender, outcome, at, health);
                }
            }
            Record::HealthState {
                profile,
                sender,
                buckets,
            } => {
                if let Some((_, p)) = self.profiles.get_mut(&profile) {
                    p.restore_health(sender, &buckets, health);
                }
            }
            Record::SnapshotMark { .. } | Record::SnapshotEnd { .. } => {}
        }
    }
}

/// Recovers the state kept in `dir` (created if missing).
pub fn recover(dir: &Path, config: &SelectionConfig) -> std::io::Result<Recovered> {
    std::fs::create_dir_all(dir)?;
    let mut warnings = Vec::new();
    let mut replay = Replay {
        config,
        profiles: ByProfile::default(),
        numbers: BTreeMap::new(),
        awaiting_mark: Default::default(),
    };
    // The newest snapshot that reads back whole; older ones are the fallback.
    let mut base = None;
    for n in numbered(dir, "snapshot-", ".bin")?.into_iter().rev() {
        match snapshot::read(dir, n)? {
            Some(bytes) => {
                for r in record::Records::new(&bytes) {
                    replay.apply(r);
                }
                replay.awaiting_mark = replay.profiles.keys().copied().collect();
                base = Some(n);
                break;
            }
            None => warnings.push(format!(
                "snapshot {n} is damaged; falling back to an older one"
            )),
        }
    }
    let from = base.unwrap_or(0);
    let segments: Vec<u64> = numbered(dir, "log-", ".seg")?
        .into_iter()
        .filter(|s| *s >= from)
        .collect();
    let mut replayed = 0u64;
    let mut last = from;
    for (i, &s) in segments.iter().enumerate() {
        let path = segment_path(dir, s);
        let bytes = std::fs::read(&path)?;
        // Decoded and applied one by one: a log of millions of records is
        // never held decoded in memory.
        let mut records = record::Records::new(&bytes);
        for r in records.by_ref() {
            replayed += 1;
            replay.apply(r);
        }
        let valid = records.valid();
        last = s;
        if valid < bytes.len() {
            warnings.push(format!(
                "{}: torn or corrupt record at byte {valid} of {}; truncated there",
                path.display(),
                bytes.len()
            ));
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)?
                .set_len(valid as u64)?;
            // What follows a damaged record cannot be trusted to apply.
            for &later in &segments[i + 1..] {
                warnings.push(format!(
                    "log segment {later} follows a damaged one; removed"
                ));
                std::fs::remove_file(segment_path(dir, later))?;
            }
            break;
        }
    }
    Ok(Recovered {
        profiles: replay.profiles.into_values().collect(),
        numbers: replay.numbers.into_values().collect(),
        segment: last,
        snapshot: base,
        replayed,
        warnings,
    })
}
