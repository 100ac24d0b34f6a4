//! Snapshot files: every profile's state as records, ending with a
//! `SnapshotEnd` that counts them, written to a temporary file, synced and
//! renamed into place, so a snapshot is either complete or ignored; and the
//! retention of files a newer snapshot makes redundant.
//!
//! How a snapshot `N` is taken (by the engine, see `Engine::snapshot_now`):
//! 1. Under the engine's admin lock (no profile or number changes), the
//!    writer switches to segment `N`; each profile, under its lock, gets a
//!    `SnapshotMark` and its settings and senders are captured.
//! 2. Then, lock by lock, each profile's mappings one shard at a time, so
//!    no profile stops for long. Mapping records written after a profile's
//!    mark are replayed over this copy, and they are last-writer-wins.
//! 3. The file is written off the engine's threads; the files older than
//!    the previous snapshot are removed.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::AtomicU64;

use super::format::{self, FileKind};
use super::record::{self, Record};
use super::{numbered, segment_path, snapshot_path};
use crate::ids::ProfileId;
use crate::number::PhoneNumber;
use crate::resources::{NumberRecord, ProfileRecord};
use crate::selection::compliance::OptOut;
use crate::selection::health::HealthSlice;
use crate::selection::profile::{DailyCounts, StickyMapping};

/// The snapshots of one engine: the number of the next, and one at a time.
#[derive(Default)]
pub(crate) struct Snapshots {
    pub next: AtomicU64,
    /// In a cluster: the position of the cluster's log the newest snapshot
    /// holds (the log before it may go from etcd as far as this node cares).
    pub covers: AtomicU64,
    pub one: tokio::sync::Mutex<()>,
}

/// One profile as a snapshot holds it.
pub(crate) struct ProfileImage {
    pub record: ProfileRecord,
    /// Its senders in joining order, with their health.
    pub senders: Vec<(PhoneNumber, Vec<HealthSlice>)>,
    /// Today's counts: the day, the profile's sends, its senders' counts.
    pub daily: (i32, u32, Vec<DailyCounts>),
    /// Where its senders' queues end.
    pub queues: Vec<(PhoneNumber, u64)>,
    pub mappings: Vec<StickyMapping>,
    pub opt_outs: Vec<(PhoneNumber, OptOut)>,
}

/// The records of a snapshot: each profile (record, then its numbers with
/// their health, then its mappings), then the numbers no profile has, then
/// (in a cluster) the position of the cluster's log it holds.
pub(crate) fn records(
    profiles: Vec<ProfileImage>,
    numbers: std::collections::BTreeMap<PhoneNumber, NumberRecord>,
    at: u32,
    replicated: u64,
) -> impl Iterator<Item = Record> {
    let unassigned: Vec<NumberRecord> = numbers
        .values()
        .filter(|r| r.profile.is_none())
        .copied()
        .collect();
    profiles
        .into_iter()
        .flat_map(move |image| {
            let id: ProfileId = image.record.id;
            let mut out = vec![Record::ProfileSaved {
                profile: Box::new(image.record),
                at,
            }];
            for (number, slices) in image.senders {
                if let Some(r) = numbers.get(&number) {
                    out.push(Record::NumberSaved(NumberRecord {
                        profile: Some(id),
                        ..*r
                    }));
                }
                if !slices.is_empty() {
                    out.push(Record::HealthState {
                        profile: id,
                        sender: number,
                        buckets: slices,
                    });
                }
            }
            out.extend(daily_records(id, image.daily));
            out.extend(
                image
                    .queues
                    .chunks(record::MAX_QUEUE_ENDS)
                    .map(|ends| Record::QueueEnds {
                        profile: id,
                        ends: ends.to_vec(),
                    }),
            );
            out.extend(
                image
                    .opt_outs
                    .into_iter()
                    .map(move |(to, opt_out)| Record::OptOut {
                        profile: id,
                        to,
                        opt_out,
                    }),
            );
            out.extend(image.mappings.into_iter().map(move |m| Record::MappingSet {
                profile: id,
                to: m.to,
                from: m.from,
                created_at: m.created_at,
                last_used: m.last_used_at,
                pinned: m.pinned,
                history: false,
            }));
            out
        })
        .chain(unassigned.into_iter().map(Record::NumberSaved))
        .chain((replicated > 0).then_some(Record::Replicated {
            position: replicated,
        }))
}

/// The records of a profile's daily counts (none when it sent nothing
/// on its day): one per sender with counts, or one for the profile alone.
pub(crate) fn daily_records(
    profile: ProfileId,
    (day, profile_messages, counts): (i32, u32, Vec<DailyCounts>),
) -> Vec<Record> {
    if profile_messages == 0 && counts.is_empty() {
        return Vec::new();
    }
    let senders: Vec<Option<DailyCounts>> = match counts.is_empty() {
        true => vec![None],
        false => counts.into_iter().map(Some).collect(),
    };
    senders
        .into_iter()
        .map(|sender| Record::DailyCount {
            profile,
            day,
            profile_messages,
            sender,
        })
        .collect()
}

/// Writes snapshot `n` in `dir` from `records`. On failure nothing is left
/// behind (the temporary file is removed).
pub(crate) fn write(
    dir: &Path,
    n: u64,
    records: impl Iterator<Item = Record>,
) -> std::io::Result<()> {
    put_in_place(dir, n, |out| {
        format::write_header(out, FileKind::Snapshot)?;
        // A chunk at a time, so that a profile's mappings share frames
        // (`record::encode_all`): half the bytes to write and to recover.
        let (mut records, mut chunk) = (records, Vec::with_capacity(CHUNK));
        let (mut buf, mut count) = (Vec::new(), 0u64);
        loop {
            chunk.clear();
            chunk.extend(records.by_ref().take(CHUNK));
            if chunk.is_empty() {
                break;
            }
            buf.clear();
            record::encode_all(&chunk, &mut buf);
            out.write_all(&buf)?;
            count += chunk.len() as u64;
        }
        buf.clear();
        record::encode(&Record::SnapshotEnd { records: count }, &mut buf);
        out.write_all(&buf)
    })
}

/// Records encoded together when a snapshot is written.
const CHUNK: usize = record::MAX_MAPPINGS_PER_RECORD;

/// Puts `bytes`, a whole snapshot file taken elsewhere (a cluster node's
/// from its leader), in place as snapshot `n` of `dir`.
pub(crate) fn install(dir: &Path, n: u64, bytes: &[u8]) -> std::io::Result<()> {
    put_in_place(dir, n, |out| out.write_all(bytes))
}

/// Writes snapshot `n` through `fill` to a temporary file, syncs it and
/// renames it into place: a snapshot is either whole or absent.
fn put_in_place(
    dir: &Path,
    n: u64,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let path = snapshot_path(dir, n);
    let tmp = path.with_extension("tmp");
    let result = (|| {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        fill(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// What a snapshot file taken elsewhere holds, checked whole: the profiles
/// in it and the position of the cluster's log it covers.
pub(crate) fn examine(bytes: &[u8]) -> Option<(Vec<ProfileId>, u64)> {
    let body = format::check(bytes, FileKind::Snapshot).ok()?;
    if !is_complete(body) {
        return None;
    }
    let (mut profiles, mut position) = (Vec::new(), 0);
    for r in record::Records::new(body) {
        match r {
            Record::ProfileSaved { profile, .. } => profiles.push(profile.id),
            Record::Replicated { position: p } => position = p,
            _ => {}
        }
    }
    Some((profiles, position))
}

/// Whether `body` (a snapshot without its header) is whole (see [`Wholeness`]).
pub(crate) fn is_complete(body: &[u8]) -> bool {
    let mut records = record::Records::new(body);
    let mut whole = Wholeness::default();
    for r in records.by_ref() {
        whole.see(&r);
    }
    whole.is_whole(record::Decoded {
        valid: records.valid(),
        whole: records.valid() == body.len(),
    })
}

/// Checks, record by record as they are read, that a snapshot is whole:
/// every record intact, ending with a `SnapshotEnd` that counts the
/// records before it.
#[derive(Default)]
pub(crate) struct Wholeness {
    count: u64,
    /// What the last record read counts, if it is a `SnapshotEnd`.
    last_end: Option<u64>,
}

impl Wholeness {
    /// The next record read.
    pub(crate) fn see(&mut self, r: &Record) {
        self.last_end = match r {
            Record::SnapshotEnd { records } => Some(*records),
            _ => None,
        };
        self.count += 1;
    }

    /// Whether the snapshot `decoded` read, record by record, was whole.
    pub(crate) fn is_whole(&self, decoded: record::Decoded) -> bool {
        decoded.whole && self.last_end == Some(self.count.saturating_sub(1))
    }
}

/// Keeps snapshot `n`, the one before it (the fallback) and the segments
/// they need; removes everything older.
pub(crate) fn retain(dir: &Path) -> std::io::Result<()> {
    let snapshots = numbered(dir, "snapshot-", ".bin")?;
    let keep_from = snapshots.iter().rev().nth(1).copied().unwrap_or(0);
    for s in snapshots.iter().filter(|s| **s < keep_from) {
        std::fs::remove_file(snapshot_path(dir, *s))?;
    }
    for s in numbered(dir, "log-", ".seg")?
        .into_iter()
        .filter(|s| *s < keep_from)
    {
        std::fs::remove_file(segment_path(dir, s))?;
    }
    Ok(())
}
