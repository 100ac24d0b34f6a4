//! Recovery: the latest readable snapshot, then the log segments after it,
//! replayed into plain [`ProfileState`]s before any actor starts; and the
//! repair of a damaged log.
//!
//! What recovery does with damage:
//! - a file whose header is not this build's format stops start-up (nothing
//!   is changed);
//! - a torn tail (an incomplete last record, nothing valid after it) is cut,
//!   with a warning, after its bytes are copied to a side file
//!   `log-N.seg.torn-OFFSET`;
//! - a damaged record followed by valid ones stops start-up, naming the
//!   file and offset: [`repair`] moves the damaged bytes to a side file
//!   `log-N.seg.damaged-OFFSET` and keeps every valid record;
//! - a damaged snapshot is skipped for the previous one, with a warning
//!   (and whatever of it was applied is dropped).
//!
//! How it stays fast for millions of records: each file is read a few
//! megabytes at a time and decoded on a second thread while this one
//! applies (`record::decode_ahead`); a snapshot is checked as it is applied,
//! in one pass; and a run of one profile's mappings (a snapshot's, with its
//! opt-outs, or a log's new ones) is set aside as it comes (`Pending`) and
//! made findable once the run ends: each shard's index built in one pass
//! (`StickyMap::restore_unindexed`), the opt-out table sized once
//! (`OptOuts::stage`), and what each insert reads prefetched ahead.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::format::{self, FileKind, HeaderError};
use super::record::{self, Applies, Record};
use super::{numbered, segment_path, snapshot, snapshot_path};
use crate::error::StartError;
use crate::ids::ProfileId;
use crate::number::PhoneNumber;
use crate::resources::{NumberRecord, ProfileRecord};
use crate::selection::compliance::{Destinations, OptOut};
use crate::selection::health::HealthConfig;
use crate::selection::profile::{Shape, StickyMapping};
use crate::selection::sticky::Recipients;
use crate::selection::{move_sender, ProfileState};

/// What replay needs to build profiles.
#[derive(Clone, Copy)]
pub(crate) struct ReplayConfig<'a> {
    pub shape: Shape,
    pub health: &'a HealthConfig,
    /// Now: daily counters of another day are dropped.
    pub now_ms: u64,
}

/// The state recovered from a data directory.
pub(crate) struct Recovered {
    pub profiles: Vec<(ProfileRecord, ProfileState)>,
    pub numbers: Vec<NumberRecord>,
    /// The segment new records go to.
    pub segment: u64,
    /// The snapshot recovery started from, if any.
    pub snapshot: Option<u64>,
    /// Records replayed from the log.
    pub replayed: u64,
    /// What recovery repaired or skipped (torn tails, damaged snapshots).
    pub warnings: Vec<String>,
    /// In a cluster: the position of the cluster's log the files hold.
    pub replicated: u64,
    /// In a cluster: the position of the cluster's log the snapshot holds.
    pub snapshot_replicated: u64,
}

/// Maps keyed by profile id, with the crate's fast hasher (one lookup per record).
type ByProfile<V> = hashbrown::HashMap<ProfileId, V, foldhash::fast::RandomState>;

/// Profiles and numbers being rebuilt from records.
struct Rebuild<'a> {
    config: ReplayConfig<'a>,
    profiles: ByProfile<(ProfileRecord, ProfileState)>,
    numbers: BTreeMap<PhoneNumber, NumberRecord>,
    /// Profiles in the snapshot whose log records up to their marker are in it already.
    awaiting_mark: hashbrown::HashSet<ProfileId, foldhash::fast::RandomState>,
    /// Replaying the log (not a snapshot): a mapping record there is a new
    /// recipient of its sender.
    in_log: bool,
    /// In a cluster: the position of the cluster's log the files hold.
    replicated: u64,
    /// The run of mappings (and, in a snapshot, opt-outs) of one profile
    /// not applied yet.
    pending: Pending,
}

/// A run of mappings of one profile (a snapshot's, with its opt-outs, or a
/// log's new ones), applied together (see `StickyMap::restore_unindexed`
/// and `OptOuts::stage`): for millions of them, several times faster than
/// one by one.
struct Pending {
    profile: ProfileId,
    mappings: Vec<StickyMapping>,
    opt_outs: Vec<(PhoneNumber, OptOut)>,
}

impl Pending {
    fn new() -> Self {
        Pending {
            profile: NOBODY,
            mappings: Vec::new(),
            opt_outs: Vec::new(),
        }
    }

    /// Whether a record of `profile` joins what waits, rather than
    /// following it.
    fn takes(&self, profile: ProfileId) -> bool {
        profile == self.profile && self.mappings.len() + self.opt_outs.len() < PENDING_MAPPINGS
    }
}

/// Whether a profile's run of mappings goes on past what waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    GoesOn,
    Ended,
}

/// At most this many mappings and opt-outs wait to be applied together.
const PENDING_MAPPINGS: usize = 1 << 14;

impl<'a> Rebuild<'a> {
    fn new(config: ReplayConfig<'a>) -> Self {
        Rebuild {
            config,
            profiles: ByProfile::default(),
            numbers: BTreeMap::new(),
            awaiting_mark: Default::default(),
            in_log: false,
            replicated: 0,
            pending: Pending::new(),
        }
    }

    fn state(&mut self, profile: ProfileId) -> Option<&mut ProfileState> {
        self.profiles.get_mut(&profile).map(|(_, p)| p)
    }

    fn apply(&mut self, r: Record) {
        if let Some(p) = r.profile().filter(|_| !self.awaiting_mark.is_empty()) {
            if self.awaiting_mark.contains(&p) {
                if matches!(r, Record::SnapshotMark { .. }) {
                    self.awaiting_mark.remove(&p);
                }
                return;
            }
        }
        // A snapshot holds each profile's opt-outs, then its mappings, in
        // one run with no other record about that profile inside it; a
        // log's new mappings of one profile (an import's, a busy batch's)
        // come in runs too. Each run is put back together until any other
        // record of any profile ends it, but for daily counts and queue
        // ends, which a batch writes among its new mappings and which read
        // neither the map nor the opt-outs. (A delivery outcome ends it
        // too: in a busy log, runs are shorter than an import's.)
        match r {
            Record::MappingSet {
                profile,
                to,
                from,
                created_at,
                last_used,
                pinned,
                history,
            } => {
                // Counted now, in its place among the daily counts; only
                // the map waits.
                let (in_log, now_ms) = (self.in_log, self.config.now_ms);
                if let Some(p) = self.state(profile).filter(|_| in_log) {
                    count_new_recipient(p, from, created_at, pinned, history, now_ms);
                }
                self.pend(profile).mappings.push(StickyMapping {
                    to,
                    from,
                    created_at,
                    last_used_at: last_used,
                    expires_at: None,
                    pinned,
                });
                return;
            }
            Record::OptOut {
                profile,
                to,
                opt_out,
            } if !self.in_log => {
                self.pend(profile).opt_outs.push((to, opt_out));
                return;
            }
            Record::DailyCount { .. } | Record::QueueEnds { .. } => {}
            _ => self.apply_pending(Run::Ended),
        }
        let health = self.config.health;
        // Each arm takes the record kind `applies` names (the `else` never runs).
        match r.applies() {
            Applies::ProfileState(id) => {
                let (in_log, now_ms) = (self.in_log, self.config.now_ms);
                if let Some(p) = self.state(id) {
                    apply_to_profile(p, r, health, now_ms, in_log);
                }
            }
            Applies::ProfileSaved => {
                let Record::ProfileSaved { mut profile, at } = r else {
                    return;
                };
                // Lists written before repeats were dropped lose them here.
                profile.whitelisted_destinations =
                    Destinations::canonical(&profile.whitelisted_destinations);
                match self.profiles.get_mut(&profile.id) {
                    Some((record, state)) => {
                        state.apply_record(&profile, u64::from(at) * 1000);
                        *record = *profile;
                    }
                    None => {
                        let state = ProfileState::from_record(&profile, self.config.shape);
                        self.profiles.insert(profile.id, (*profile, state));
                    }
                }
            }
            Applies::ProfileDeleted => {
                let Record::ProfileDeleted { profile } = r else {
                    return;
                };
                self.profiles.remove(&profile);
                for n in self.numbers.values_mut() {
                    if n.profile == Some(profile) {
                        n.profile = None;
                    }
                }
            }
            Applies::NumberSaved => {
                let Record::NumberSaved(mut record) = r else {
                    return;
                };
                let previous = self.numbers.get(&record.number).and_then(|n| n.profile);
                if previous != record.profile {
                    let [from, to] = self.profiles.get_disjoint_mut([
                        &previous.unwrap_or(NOBODY),
                        &record.profile.unwrap_or(NOBODY),
                    ]);
                    move_sender(&record, from.map(|(_, p)| p), to.map(|(_, p)| p));
                } else if let Some(p) = record.profile.and_then(|p| self.state(p)) {
                    p.set_rate(record.number, record.messages_per_second, None);
                }
                record.profile = record.profile.filter(|o| self.profiles.contains_key(o));
                self.numbers.insert(record.number, record);
            }
            Applies::Replicated => {
                if let Record::Replicated { position } = r {
                    self.replicated = position;
                }
            }
            Applies::Nothing => {}
        }
    }

    /// What waits to be applied, ready to take a record of `profile`
    /// (what waited for another profile, or a full run, is applied first).
    fn pend(&mut self, profile: ProfileId) -> &mut Pending {
        if !self.pending.takes(profile) {
            let run = if profile == self.pending.profile {
                Run::GoesOn
            } else {
                Run::Ended
            };
            self.apply_pending(run);
            self.pending.profile = profile;
        }
        &mut self.pending
    }

    /// Applies the mappings and opt-outs waiting in `pending`.
    /// They are made findable once the profile's run of them has ended.
    fn apply_pending(&mut self, run: Run) {
        let mut pending = std::mem::replace(&mut self.pending, Pending::new());
        // A snapshot holds each recipient of a profile once; a log can map
        // one again and again.
        let repeats = if self.in_log {
            Recipients::MayRepeat
        } else {
            Recipients::Distinct
        };
        if let Some(p) = self.state(pending.profile) {
            p.restore_opt_outs(&pending.opt_outs);
            p.restore_mappings(&pending.mappings, repeats);
            if run == Run::Ended {
                p.finish_restore();
            }
        }
        pending.mappings.clear();
        pending.opt_outs.clear();
        self.pending = Pending {
            profile: NOBODY,
            ..pending
        };
    }
}

/// A log's mapping record is a new recipient of its sender, unless pinned
/// or imported from history (a snapshot's counts are kept apart).
fn count_new_recipient(
    p: &mut ProfileState,
    from: PhoneNumber,
    created_at: u32,
    pinned: bool,
    history: bool,
    now_ms: u64,
) {
    if !pinned && !history {
        p.restore_new_recipient(from, created_at, now_ms);
    }
}

/// Applies a record about one profile's state (its mappings, outcomes,
/// health, daily counts, opt-outs) to that state, as a cluster standby
/// following its leader's log does for every such record and recovery for
/// all but runs of new mappings (see `Rebuild::apply`).
/// `counts_new_recipients`: a mapping record is a new recipient of its
/// sender (in a log; not in a snapshot, whose counts are kept apart).
pub(crate) fn apply_to_profile(
    p: &mut ProfileState,
    r: Record,
    health: &HealthConfig,
    now_ms: u64,
    counts_new_recipients: bool,
) {
    match r {
        Record::MappingSet {
            to,
            from,
            created_at,
            last_used,
            pinned,
            history,
            ..
        } => {
            p.restore_mapping(to, from, created_at, last_used, pinned);
            if counts_new_recipients {
                count_new_recipient(p, from, created_at, pinned, history, now_ms);
            }
        }
        Record::MappingTouched { to, last_used, .. } => p.restore_touch(to, last_used),
        Record::MappingRemoved { to, .. } => {
            p.unmap(to, 0);
        }
        Record::Outcome {
            sender,
            outcome,
            at,
            ..
        } => {
            p.record_outcome(sender, outcome, at, health);
        }
        Record::HealthState {
            sender, buckets, ..
        } => p.restore_health(sender, &buckets, health),
        Record::OptOut { to, opt_out, .. } => {
            p.opt_out(to, opt_out);
        }
        Record::OptIn { to, .. } => {
            p.opt_in(to);
        }
        Record::DailyCount {
            day,
            profile_messages,
            sender,
            ..
        } => p.restore_daily(now_ms, day, profile_messages, sender),
        Record::QueueEnds { ends, .. } => p.restore_queue_ends(&ends),
        // Not about one profile's own state: the caller applies these
        // (listed, so that a new kind of record must be placed here).
        Record::ProfileSaved { .. }
        | Record::ProfileDeleted { .. }
        | Record::NumberSaved(_)
        | Record::SnapshotMark { .. }
        | Record::SnapshotEnd { .. }
        | Record::Probe
        | Record::Replicated { .. } => {}
    }
}

/// The id no profile has (the nil UUID): stands for "no profile" where a
/// map lookup needs a key.
const NOBODY: ProfileId = ProfileId(uuid::Uuid::nil());

fn read(path: &Path) -> Result<Vec<u8>, StartError> {
    std::fs::read(path).map_err(|e| StartError::io(path, e))
}

/// Opens `path` and reads its header (fewer bytes if the file is
/// shorter): the file, positioned after them, and the bytes.
fn open_header(path: &Path) -> Result<(std::fs::File, Vec<u8>), StartError> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| StartError::io(path, e))?;
    let mut header = Vec::with_capacity(format::HEADER_LEN);
    (&mut file)
        .take(format::HEADER_LEN as u64)
        .read_to_end(&mut header)
        .map_err(|e| StartError::io(path, e))?;
    Ok((file, header))
}

/// The bytes of `path` from `offset` on.
fn read_from(path: &Path, offset: u64) -> Result<Vec<u8>, StartError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut rest = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut file| {
            file.seek(SeekFrom::Start(offset))?;
            file.read_to_end(&mut rest)
        })
        .map_err(|e| StartError::io(path, e))?;
    Ok(rest)
}

fn unknown_format(path: &Path, e: HeaderError) -> StartError {
    StartError::UnknownFormat {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Where the records of a damaged log can be read again after `bad`: the
/// first later offset holding a whole, valid record, if any.
fn resync(records: &[u8], bad: usize) -> Option<usize> {
    (bad + 1..records.len()).find(|&o| record::starts_with_record(&records[o..]))
}

/// Copies `bytes` to a side file next to `path` named `{path}.{what}-{offset}`.
fn keep_aside(path: &Path, what: &str, offset: u64, bytes: &[u8]) -> Result<PathBuf, StartError> {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{what}-{offset}"));
    let side = PathBuf::from(name);
    let mut f = std::fs::File::create(&side).map_err(|e| StartError::io(&side, e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| StartError::io(&side, e))?;
    Ok(side)
}

/// Recovers the state kept in `dir` (created if missing).
pub(crate) fn recover(dir: &Path, config: ReplayConfig<'_>) -> Result<Recovered, StartError> {
    std::fs::create_dir_all(dir).map_err(|e| StartError::io(dir, e))?;
    let mut warnings = Vec::new();
    let mut rebuild = Rebuild::new(config);
    // The newest snapshot that reads back whole; older ones are the fallback.
    let snapshots = numbered(dir, "snapshot-", ".bin").map_err(|e| StartError::io(dir, e))?;
    let mut base = None;
    let mut snapshot_replicated = 0;
    for &n in snapshots.iter().rev() {
        let path = snapshot_path(dir, n);
        // Read as it is applied, a few megabytes at a time.
        let (mut file, header) = open_header(&path)?;
        match format::check(&header, FileKind::Snapshot) {
            Ok(_) => {}
            Err(e @ (HeaderError::Short(_) | HeaderError::WrongKind { .. })) => {
                warnings.push(format!(
                    "{}: {e}; falling back to an older snapshot",
                    path.display()
                ));
                continue;
            }
            Err(e) => return Err(unknown_format(&path, e)),
        }
        // Applied as it is checked (one pass over a file of hundreds of
        // megabytes, not two); a snapshot found damaged at its end is
        // dropped with everything applied from it.
        let mut whole = snapshot::Wholeness::default();
        let decoded = record::decode_ahead(&mut file, |r| {
            whole.see(&r);
            rebuild.apply(r);
        })
        .map_err(|e| StartError::io(&path, e))?;
        rebuild.apply_pending(Run::Ended);
        if !whole.is_whole(decoded) {
            warnings.push(format!(
                "{}: damaged or incomplete; falling back to an older snapshot",
                path.display()
            ));
            rebuild = Rebuild::new(config);
            continue;
        }
        rebuild.awaiting_mark = rebuild.profiles.keys().copied().collect();
        snapshot_replicated = rebuild.replicated;
        base = Some(n);
        break;
    }
    rebuild.in_log = true;
    let from = base.unwrap_or(0);
    let segments: Vec<u64> = numbered(dir, "log-", ".seg")
        .map_err(|e| StartError::io(dir, e))?
        .into_iter()
        .filter(|s| *s >= from)
        .collect();
    let mut replayed = 0u64;
    let mut last = from;
    let mut last_version = format::VERSION;
    for (i, &s) in segments.iter().enumerate() {
        let path = segment_path(dir, s);
        // Read as it is applied, a few megabytes at a time.
        let (mut file, header) = open_header(&path)?;
        last = s;
        last_version = format::version_of(&header).unwrap_or(format::VERSION);
        match format::check(&header, FileKind::Log) {
            Ok(_) => {}
            // A segment torn while its header was written holds nothing.
            Err(HeaderError::Short(n)) if header[..] == format::header(FileKind::Log)[..n] => {
                if n > 0 {
                    keep_aside(&path, "torn", 0, &header)?;
                }
                rewrite(&path, &[])?;
                continue;
            }
            Err(e) => return Err(unknown_format(&path, e)),
        }
        // Decoded a few thousand records ahead of applying them: a log of
        // millions of records is never held in memory, read or decoded.
        let decoded = record::decode_ahead(&mut file, |r| {
            replayed += 1;
            rebuild.apply(r);
        })
        .map_err(|e| StartError::io(&path, e))?;
        if decoded.whole {
            continue;
        }
        // What follows the last whole record, read again: a torn tail (cut
        // and set aside) or damage (start-up stops).
        let offset = (format::HEADER_LEN + decoded.valid) as u64;
        let rest = read_from(&path, offset)?;
        let later_segments = i + 1 < segments.len();
        if later_segments || resync(&rest, 0).is_some() {
            return Err(StartError::Damaged {
                path,
                offset,
                dir: dir.to_path_buf(),
            });
        }
        let side = keep_aside(&path, "torn", offset, &rest)?;
        warnings.push(format!(
            "{}: torn record at byte {offset} of {}; cut there ({} bytes kept in {})",
            path.display(),
            offset + rest.len() as u64,
            rest.len(),
            side.display()
        ));
        truncate(&path, offset)?;
    }
    rebuild.apply_pending(Run::Ended);
    // New records go to a file of this build's version: a segment of an
    // older one is closed as it is.
    if last_version < format::VERSION {
        last += 1;
    }
    Ok(Recovered {
        profiles: rebuild.profiles.into_values().collect(),
        numbers: rebuild.numbers.into_values().collect(),
        segment: last,
        snapshot: base,
        replayed,
        warnings,
        replicated: rebuild.replicated,
        snapshot_replicated,
    })
}

fn truncate(path: &Path, len: u64) -> Result<(), StartError> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| {
            f.set_len(len)?;
            f.sync_all()
        })
        .map_err(|e| StartError::io(path, e))
}

/// Replaces the log segment at `path` by a header and `records`, atomically.
fn rewrite(path: &Path, records: &[u8]) -> Result<(), StartError> {
    let tmp = path.with_extension("repair");
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        format::write_header(&mut f, FileKind::Log)?;
        f.write_all(records)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| StartError::io(path, e))
}

/// What [`repair`](crate::repair) did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RepairReport {
    /// Each damaged span moved aside.
    pub moved: Vec<MovedSpan>,
}

/// Damaged bytes of a log segment, moved to a side file by a repair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedSpan {
    /// The log segment.
    pub segment: PathBuf,
    /// Where the damaged bytes started in it.
    pub offset: u64,
    /// How many bytes were moved.
    pub len: usize,
    /// The side file holding them.
    pub side_file: PathBuf,
}

/// Moves every damaged span of every log segment in `dir` to a side file,
/// keeping every valid record (before and after the damage). Files of an
/// unknown format are left untouched and stop the repair.
pub(crate) fn repair(dir: &Path) -> Result<RepairReport, StartError> {
    let mut report = RepairReport::default();
    let segments = numbered(dir, "log-", ".seg").map_err(|e| StartError::io(dir, e))?;
    for s in segments {
        let path = segment_path(dir, s);
        let bytes = read(&path)?;
        let body = format::check(&bytes, FileKind::Log).map_err(|e| unknown_format(&path, e))?;
        let mut kept = Vec::with_capacity(body.len());
        let mut at = 0;
        let mut changed = false;
        while at < body.len() {
            let mut records = record::Records::new(&body[at..]);
            records.by_ref().for_each(drop);
            let valid = records.valid();
            kept.extend_from_slice(&body[at..at + valid]);
            at += valid;
            if at == body.len() {
                break;
            }
            let end = resync(body, at).unwrap_or(body.len());
            let offset = (format::HEADER_LEN + at) as u64;
            let side = keep_aside(&path, "damaged", offset, &body[at..end])?;
            report.moved.push(MovedSpan {
                segment: path.clone(),
                offset,
                len: end - at,
                side_file: side,
            });
            changed = true;
            at = end;
        }
        if changed {
            rewrite(&path, &kept)?;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::journal::record::encode;
    use crate::selection::health::DeliveryOutcome;
    use crate::selection::profile::{DailyCounts, ProfileStats};

    fn test_shape() -> Shape {
        Shape {
            default_ttl: 3600,
            shards: 2,
            capacity: Default::default(),
        }
    }

    /// Recovers `dir` with the test shape and default health, at `now_ms`.
    fn recover_at(dir: &Path, now_ms: u64) -> Recovered {
        let health = HealthConfig::default();
        let config = ReplayConfig {
            shape: test_shape(),
            health: &health,
            now_ms,
        };
        recover(dir, config).unwrap()
    }

    /// A journal directory for the test `name`, removed when dropped.
    fn temp_dir(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("numpool-recovery-{name}-"))
            .tempdir()
            .unwrap()
    }

    fn profile_saved(p: ProfileId, at: u32) -> Record {
        Record::ProfileSaved {
            profile: Box::new(ProfileRecord {
                id: p,
                name: "p".into(),
                enabled: true,
                whitelisted_destinations: vec![],
                webhook_url: None,
                webhook_failover_url: None,
                number_pool_settings: Some(Default::default()),
                capacity: Default::default(),
                created_at: Timestamp::from_secs(u64::from(at)),
                updated_at: Timestamp::from_secs(u64::from(at)),
            }),
            at,
        }
    }

    fn number_saved(number: PhoneNumber, profile: Option<ProfileId>) -> Record {
        Record::NumberSaved(NumberRecord {
            number,
            id: 1,
            profile,
            created_at: Timestamp::from_secs(1),
            updated_at: Timestamp::from_secs(1),
            messages_per_second: None,
        })
    }

    fn mapping_set(p: ProfileId, to: u64, from: PhoneNumber, at: u32) -> Record {
        Record::MappingSet {
            profile: p,
            to: PhoneNumber::from_u64(to).unwrap(),
            from,
            created_at: at,
            last_used: at,
            pinned: false,
            history: false,
        }
    }

    #[test]
    fn a_damaged_snapshot_contributes_nothing_to_what_is_recovered() {
        let dir = temp_dir("damaged");
        let (a, b) = (ProfileId::new_v4(), ProfileId::new_v4());
        let sender = PhoneNumber::parse_e164("+13125550001").unwrap();
        let at = 1_800_000_000u32;
        snapshot::write(
            dir.path(),
            1,
            [profile_saved(a, at), number_saved(sender, Some(a))].into_iter(),
        )
        .unwrap();
        // Snapshot 2 adds a profile and mappings, but its end is lost. It is
        // applied while it is read, so what it held must be dropped again.
        let newer = [profile_saved(a, at), number_saved(sender, Some(a))]
            .into_iter()
            .chain((0..100).map(|i| mapping_set(a, 14_155_550_000 + i, sender, at)))
            .chain([profile_saved(b, at)]);
        snapshot::write(dir.path(), 2, newer).unwrap();
        let path = snapshot_path(dir.path(), 2);
        let len = std::fs::metadata(&path).unwrap().len();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(len - 3).unwrap();
        let recovered = recover_at(dir.path(), u64::from(at) * 1000);
        assert_eq!(recovered.snapshot, Some(1));
        assert_eq!(recovered.warnings.len(), 1, "{:?}", recovered.warnings);
        let ids: Vec<ProfileId> = recovered.profiles.iter().map(|(r, _)| r.id).collect();
        assert_eq!(ids, vec![a]);
        assert_eq!(recovered.profiles[0].1.stats().stored_mappings, 0);
    }

    #[test]
    fn a_snapshot_of_many_mappings_shares_frames_and_recovers_every_one() {
        let dir = temp_dir("many");
        let p = ProfileId::new_v4();
        let sender = PhoneNumber::parse_e164("+13125550001").unwrap();
        let at = 1_800_000_000u32;
        // The profile's run of mappings crosses the writer's chunks of
        // 4,096 records and the most one frame holds.
        let count = 10_000;
        let records = [profile_saved(p, at), number_saved(sender, Some(p))]
            .into_iter()
            .chain((0..count).map(|i| mapping_set(p, 14_155_550_000 + i, sender, at)));
        snapshot::write(dir.path(), 1, records).unwrap();
        let len = std::fs::metadata(snapshot_path(dir.path(), 1))
            .unwrap()
            .len();
        assert!(len < 26 * count, "{len} bytes: mappings share frames");
        let recovered = recover_at(dir.path(), u64::from(at) * 1000);
        assert_eq!(recovered.snapshot, Some(1));
        assert!(recovered.warnings.is_empty(), "{:?}", recovered.warnings);
        let stats = recovered.profiles[0].1.stats();
        assert_eq!(stats.stored_mappings, count as usize);
    }

    #[test]
    fn runs_of_mappings_of_two_profiles_back_to_back_are_each_indexed() {
        // numpool's snapshots put other records between two profiles'
        // mappings; a run that follows another at once must be indexed
        // all the same, each across more than one pending chunk.
        let dir = temp_dir("back-to-back");
        let at = 1_800_000_000u32;
        let count = PENDING_MAPPINGS as u64 + 3_000;
        let (a, b) = (ProfileId::new_v4(), ProfileId::new_v4());
        let from_a = PhoneNumber::parse_e164("+13125550001").unwrap();
        let from_b = PhoneNumber::parse_e164("+13125550002").unwrap();
        let records = [
            profile_saved(a, at),
            number_saved(from_a, Some(a)),
            profile_saved(b, at),
            number_saved(from_b, Some(b)),
        ]
        .into_iter()
        .chain((0..count).map(|i| mapping_set(a, 14_155_550_000 + i, from_a, at)))
        .chain((0..count).map(|i| mapping_set(b, 14_155_550_000 + i, from_b, at)));
        snapshot::write(dir.path(), 1, records).unwrap();
        let recovered = recover_at(dir.path(), u64::from(at) * 1000);
        assert!(recovered.warnings.is_empty(), "{:?}", recovered.warnings);
        assert_eq!(recovered.profiles.len(), 2);
        for (record, state) in &recovered.profiles {
            assert_eq!(
                state.stats().stored_mappings,
                count as usize,
                "profile {}",
                record.id
            );
        }
    }

    #[test]
    fn a_logs_runs_of_mappings_recover_as_its_records_applied_one_by_one() {
        // Two profiles' new mappings, in runs broken by what else a log
        // holds: repeats, touches, removals, opt-outs, daily counts, queue
        // ends; then one run longer than a pending chunk. Recovery puts
        // each run back together; a standby applies record by record
        // (`apply_to_profile`). Both must end alike.
        let at = 1_800_000_000u32;
        let (a, b) = (ProfileId::new_v4(), ProfileId::new_v4());
        let number = |s: &str| PhoneNumber::parse_e164(s).unwrap();
        let senders = [
            (a, number("+13125550001")),
            (a, number("+13125550002")),
            (b, number("+13125550003")),
        ];
        let setup: Vec<Record> = [profile_saved(a, at), profile_saved(b, at)]
            .into_iter()
            .chain(senders.iter().map(|&(p, s)| number_saved(s, Some(p))))
            .collect();
        let recipient = |i: u64| PhoneNumber::from_u64(14_155_550_000 + i).unwrap();
        let mut changes: Vec<Record> = (0..40_000u64)
            .map(|i| {
                // Runs of seven records of one sender, so of one profile.
                let (profile, from) = senders[(i / 7 % 3) as usize];
                let to = recipient(i * 7_919 % 3_000);
                // Touched or removed: the recipient mapped just before, so
                // mostly in the same run.
                let previous = recipient(i.saturating_sub(1) * 7_919 % 3_000);
                let t = at + (i / 10) as u32;
                match i % 50 {
                    7 => Record::MappingTouched {
                        profile,
                        to: previous,
                        last_used: t + 1,
                    },
                    13 => Record::MappingRemoved {
                        profile,
                        to: previous,
                    },
                    21 => Record::OptOut {
                        profile,
                        to,
                        opt_out: OptOut {
                            keyword: None,
                            via: None,
                            at: t,
                        },
                    },
                    // A sender's counts, set amid its new recipients.
                    29 => Record::DailyCount {
                        profile,
                        day: (t / 86_400) as i32,
                        profile_messages: i as u32,
                        sender: Some(DailyCounts {
                            sender: from,
                            day: (t / 86_400) as i32,
                            messages: i as u32,
                            new_recipients: (i % 3) as u32,
                        }),
                    },
                    // The second sender of `a` moves to `b` and back.
                    41 if i % 500 == 41 => number_saved(senders[1].1, Some(b)),
                    41 if i % 500 == 291 => number_saved(senders[1].1, Some(a)),
                    37 => Record::QueueEnds {
                        profile,
                        ends: vec![(from, u64::from(t) * 1_000_000_000)],
                    },
                    _ => Record::MappingSet {
                        profile,
                        to,
                        from,
                        created_at: t,
                        last_used: t,
                        pinned: i % 97 == 0,
                        history: i % 89 == 0,
                    },
                }
            })
            .collect();
        let long = PENDING_MAPPINGS as u64 + 5_000;
        changes.extend((0..long).map(|k| {
            let (profile, from) = senders[2];
            let t = at + 4_000;
            if k == 10_000 {
                return Record::DailyCount {
                    profile,
                    day: (t / 86_400) as i32,
                    profile_messages: 1,
                    sender: None,
                };
            }
            Record::MappingSet {
                profile,
                to: recipient(3_000 + k % 15_000),
                from,
                created_at: t,
                last_used: t,
                pinned: false,
                history: false,
            }
        }));
        let now_ms = u64::from(at + 4_500) * 1000;
        let replay = |records: &[Record]| {
            let dir = temp_dir("log-runs");
            let mut log = format::header(FileKind::Log).to_vec();
            for r in records {
                encode(r, &mut log);
            }
            std::fs::write(segment_path(dir.path(), 0), &log).unwrap();
            recover_at(dir.path(), now_ms).profiles
        };
        let all: Vec<Record> = setup.iter().chain(&changes).cloned().collect();
        let recovered = replay(&all);
        let mut reference = replay(&setup);
        let health = HealthConfig::default();
        for r in changes {
            let Record::NumberSaved(moved) = r else {
                let id = r.profile().unwrap();
                let (_, state) = reference.iter_mut().find(|(p, _)| p.id == id).unwrap();
                apply_to_profile(state, r, &health, now_ms, true);
                continue;
            };
            // As recovery moves a number, from one profile to the other.
            let (from, to) = if moved.profile == Some(b) {
                (a, b)
            } else {
                (b, a)
            };
            let [from, to] =
                [from, to].map(|id| reference.iter().position(|(p, _)| p.id == id).unwrap());
            let (x, y) = reference.split_at_mut(from.max(to));
            let (low, high) = (&mut x[from.min(to)].1, &mut y[0].1);
            let (from_state, to_state) = if from < to { (low, high) } else { (high, low) };
            move_sender(&moved, Some(from_state), Some(to_state));
        }
        assert_eq!(recovered.len(), 2);
        let now = (now_ms / 1000) as u32;
        for (record, state) in &recovered {
            let (_, expected) = reference.iter().find(|(p, _)| p.id == record.id).unwrap();
            assert!(state.stats().stored_mappings > 2_000, "a test of something");
            // The same but for memory: the index is sized for each run at
            // once, repeats included.
            let sized = |stats: ProfileStats| ProfileStats {
                sticky_heap_bytes: 0,
                ..stats
            };
            assert_eq!(sized(state.stats()), sized(expected.stats()));
            assert_eq!(state.opt_outs().len(), expected.opt_outs().len());
            for i in 0..18_000 {
                assert_eq!(
                    state.mapping(recipient(i), now),
                    expected.mapping(recipient(i), now),
                    "recipient {i}"
                );
            }
            for &(_, s) in senders.iter().filter(|(p, _)| *p == record.id) {
                assert_eq!(
                    state.sender(s, now_ms, &health),
                    expected.sender(s, now_ms, &health)
                );
            }
        }
    }

    #[test]
    fn a_snapshots_opt_outs_are_found_after_recovery() {
        // More than one pending chunk of them, then the profile's mappings.
        let dir = temp_dir("opt-outs");
        let (p, at) = (ProfileId::new_v4(), 1_800_000_000u32);
        let sender = PhoneNumber::parse_e164("+13125550001").unwrap();
        let count = PENDING_MAPPINGS as u64 + 1_000;
        let opted = |i: u64| PhoneNumber::from_u64(14_166_000_000 + i).unwrap();
        let records = [profile_saved(p, at), number_saved(sender, Some(p))]
            .into_iter()
            .chain((0..count).map(|i| Record::OptOut {
                profile: p,
                to: opted(i),
                opt_out: OptOut {
                    keyword: None,
                    via: None,
                    at,
                },
            }))
            .chain((0..10).map(|i| mapping_set(p, 14_155_550_000 + i, sender, at)));
        snapshot::write(dir.path(), 1, records).unwrap();
        let recovered = recover_at(dir.path(), u64::from(at) * 1000);
        let (_, state) = &recovered.profiles[0];
        assert_eq!(state.opt_outs().len(), count as usize);
        for i in [0, count / 2, count - 1] {
            assert_eq!(state.opt_outs().get(opted(i)).map(|o| o.at), Some(at));
        }
        assert_eq!(state.stats().stored_mappings, 10);
    }

    #[test]
    fn records_a_snapshot_already_holds_are_not_applied_twice() {
        let dir = temp_dir("marks");
        let p = ProfileId::new_v4();
        let sender = PhoneNumber::parse_e164("+13125550001").unwrap();
        let failed = DeliveryOutcome {
            delivered: false,
            spam: false,
        };
        let at = 1_800_000_000u32;
        // Snapshot 3 already counts 20 outcomes...
        let snap = vec![
            profile_saved(p, at),
            number_saved(sender, Some(p)),
            Record::HealthState {
                profile: p,
                sender,
                buckets: vec![(at / 3600, 20, 0, 0)],
            },
        ];
        snapshot::write(dir.path(), 3, snap.into_iter()).unwrap();
        // ...including the outcome written to segment 3 before the profile's
        // marker; only the one after the marker is new.
        let mut log = format::header(FileKind::Log).to_vec();
        let outcome = Record::Outcome {
            profile: p,
            sender,
            outcome: failed,
            at,
        };
        let mark = Record::SnapshotMark {
            profile: p,
            snapshot: 3,
        };
        // So are a mapping made and one removed before the marker (a
        // mapping record must not slip past the marker into a run).
        let made = mapping_set(p, 14_155_550_001, sender, at);
        let removed = Record::MappingRemoved {
            profile: p,
            to: PhoneNumber::from_u64(14_155_550_002).unwrap(),
        };
        let kept = mapping_set(p, 14_155_550_002, sender, at);
        for r in [made, removed, outcome.clone(), mark, outcome, kept] {
            encode(&r, &mut log);
        }
        std::fs::write(segment_path(dir.path(), 3), &log).unwrap();
        let recovered = recover_at(dir.path(), 1_800_000_000_000);
        let (_, profile) = &recovered.profiles[0];
        let mapped = |to: u64| {
            profile
                .mapping(PhoneNumber::from_u64(to).unwrap(), at)
                .is_some()
        };
        assert!(
            !mapped(14_155_550_001),
            "made before the marker: in the snapshot"
        );
        assert!(mapped(14_155_550_002), "made after the marker");
        let info = profile
            .sender(sender, u64::from(at) * 1000, &HealthConfig::default())
            .unwrap();
        assert_eq!(info.health.finalized, 21);
        assert_eq!(recovered.snapshot, Some(3));
    }

    #[test]
    fn a_log_of_the_previous_version_is_read_and_closed() {
        let dir = temp_dir("v2");
        let mut log = format::header(FileKind::Log).to_vec();
        log[8..12].copy_from_slice(&2u32.to_le_bytes());
        let p = ProfileId::new_v4();
        encode(&Record::ProfileDeleted { profile: p }, &mut log);
        std::fs::write(segment_path(dir.path(), 0), &log).unwrap();
        let recovered = recover_at(dir.path(), 1_800_000_000_000);
        assert_eq!(recovered.replayed, 1);
        assert_eq!(recovered.segment, 1, "new records go to a new segment");
        assert_eq!(
            std::fs::read(segment_path(dir.path(), 0)).unwrap(),
            log,
            "untouched"
        );
    }

    #[test]
    fn files_of_another_format_stop_recovery_and_are_not_touched() {
        let dir = temp_dir("format");
        let mut future = format::header(FileKind::Log).to_vec();
        future[8] = 99; // version 99
        future.extend_from_slice(b"records of a future numpool");
        let path = segment_path(dir.path(), 0);
        std::fs::write(&path, &future).unwrap();
        let health = HealthConfig::default();
        let config = || ReplayConfig {
            shape: test_shape(),
            health: &health,
            now_ms: 1_800_000_000_000,
        };
        match recover(dir.path(), config()) {
            Err(StartError::UnknownFormat { path: p, reason }) => {
                assert_eq!(p, path);
                assert!(reason.contains("version 99"), "{reason}");
            }
            other => panic!("expected UnknownFormat, got {:?}", other.err()),
        }
        assert_eq!(std::fs::read(&path).unwrap(), future);
        // A file from before headers (or another program) is refused too.
        std::fs::write(&path, b"\x28\x00\x00\x00 not ours").unwrap();
        assert!(matches!(
            recover(dir.path(), config()),
            Err(StartError::UnknownFormat { .. })
        ));
    }
}
