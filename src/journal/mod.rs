//! Durability: an append-only journal of state changes, periodic snapshots,
//! and recovery (latest valid snapshot + the log after it).
//!
//! - A record is appended while its writer holds the lock of every profile
//!   it changes, so the log is in the order state changed, and a snapshot
//!   marker says exactly which of a profile's records a snapshot contains.
//! - Nobody waits for I/O while holding a profile: records go to the writer
//!   ([`writer`]), and the *caller's* reply waits for the receipt
//!   (written to the OS; with `fsync = always`, to disk). A process killed
//!   with SIGKILL therefore loses nothing it acknowledged. A sender that
//!   would wait writes what is queued itself, after releasing the profile,
//!   if no one else is writing then (an async sender only under
//!   `interval`, where that cannot wait long for a disk). Appends do not
//!   wake the writer thread; a receipt waited on or dropped unanswered does
//!   ([`Receipt`]).
//! - Sticky hits are journaled coarsely: a hit is written only when it is
//!   in a later minute (of the clock) than the mapping's previous use. After
//!   recovery a mapping's `last_used` is at most 60 s older than the truth.
//! - Files: `log-N.seg` (records after snapshot N) and `snapshot-N.bin`,
//!   each starting with a header ([`format`]); records are framed with a
//!   length and a CRC ([`record`]). [`recovery`] reads them back;
//!   [`snapshot`] writes snapshots and removes what they make redundant;
//!   `backup` makes a data directory from a snapshot taken elsewhere.
//!
//! What each `fsync` policy promises on power loss: `always`, nothing
//! acknowledged is lost; `interval` (default, every 10 ms), at most the last
//! interval of acknowledged changes; `never`, whatever the OS had not yet
//! written back (seconds). A killed process loses nothing under any policy.

mod backup;
pub(crate) mod format;
pub(crate) mod lock;
mod receipt;
pub(crate) mod record;
pub(crate) mod recovery;

pub use backup::{restore, RestoreError, RestoreReport};
pub use recovery::{MovedSpan, RepairReport};
pub(crate) mod snapshot;
pub(crate) mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub(crate) use record::{Applies, Record, Touches};
pub(crate) use writer::{Receipt, Replication, Replicator, Scope, Writer};

use receipt::TryRecvError;

use crate::duration::{parse_duration, DurationError};
use crate::error::Error;

/// When the journal forces its writes to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Before acknowledging each batch.
    Always,
    /// Every interval, for all writes since (group commit).
    Interval(Duration),
    /// Never: the OS writes back when it wants.
    Never,
}

impl Default for FsyncPolicy {
    fn default() -> Self {
        FsyncPolicy::Interval(Duration::from_millis(10))
    }
}

/// Why an fsync policy could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FsyncPolicyError {
    /// Not one of the policies.
    #[error("{0:?}: use always, interval, interval:DUR or never")]
    Unknown(String),
    /// `interval:` with a bad duration.
    #[error(transparent)]
    Duration(#[from] DurationError),
}

impl std::str::FromStr for FsyncPolicy {
    type Err = FsyncPolicyError;

    /// `always`, `interval` (10 ms), `interval:50ms`, or `never`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "always" => Ok(FsyncPolicy::Always),
            "never" => Ok(FsyncPolicy::Never),
            "interval" => Ok(FsyncPolicy::default()),
            other => match other.strip_prefix("interval:") {
                Some(d) => Ok(FsyncPolicy::Interval(parse_duration(d)?)),
                None => Err(FsyncPolicyError::Unknown(s.to_string())),
            },
        }
    }
}

impl std::fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FsyncPolicy::Always => write!(f, "always"),
            FsyncPolicy::Never => write!(f, "never"),
            FsyncPolicy::Interval(d) => write!(f, "interval:{}ms", d.as_millis()),
        }
    }
}

/// Where and how an engine keeps its state.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalConfig {
    /// The data directory (created if missing; one process at a time).
    pub dir: PathBuf,
    /// When writes are forced to disk.
    pub fsync: FsyncPolicy,
    /// How often a snapshot compacts the log (`None`: only when asked).
    pub snapshot_every: Option<Duration>,
}

impl JournalConfig {
    /// How often a snapshot is taken unless told otherwise: 10 minutes.
    pub const DEFAULT_SNAPSHOT_EVERY: Duration = Duration::from_secs(600);

    /// A journal in `dir`, fsync every 10 ms, a snapshot every
    /// [`JournalConfig::DEFAULT_SNAPSHOT_EVERY`].
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        JournalConfig {
            dir: dir.into(),
            fsync: FsyncPolicy::default(),
            snapshot_every: Some(Self::DEFAULT_SNAPSHOT_EVERY),
        }
    }
}

/// Waits for `receipt` (the change is journaled) if there is one.
pub(crate) async fn settle(receipt: Option<Receipt>) -> Result<(), Error> {
    match receipt {
        // Dropped: the writer thread is woken if it is still pending.
        Some(r) if r.informs() => Ok(()),
        Some(r) => r.await.map_err(|_| Error::Unavailable),
        None => Ok(()),
    }
}

/// [`settle`] for a send on an executor: like [`settle_now`], it first
/// writes what is queued itself if no one else is writing, but only when
/// that cannot wait long for a disk ([`Writer::help_without_sync`]).
/// Call it holding no profile.
pub(crate) async fn settle_helping(
    receipt: Option<Receipt>,
    writer: Option<&Writer>,
) -> Result<(), Error> {
    let Some(mut receipt) = receipt else {
        return Ok(());
    };
    let settled = answered_or_help(&mut receipt, writer, Writer::help_without_sync);
    if receipt.informs() {
        return Ok(());
    }
    if let Some(settled) = settled {
        return settled;
    }
    receipt.await.map_err(|_| Error::Unavailable)
}

/// The receipt's answer if it has one; if not, `help` on `writer` (the
/// caller then waits) and `None`.
fn answered_or_help(
    receipt: &mut Receipt,
    writer: Option<&Writer>,
    help: fn(&Writer),
) -> Option<Result<(), Error>> {
    match receipt.try_recv() {
        Ok(()) => Some(Ok(())),
        Err(TryRecvError::Closed) => Some(Err(Error::Unavailable)),
        Err(TryRecvError::Empty) => {
            if let Some(writer) = writer {
                help(writer);
            }
            None
        }
    }
}

/// [`settle`] for a caller outside an async runtime (parks until written).
/// It writes what is queued itself when no one else is writing
/// ([`Writer::help`]), and tries again while it waits, so the writer
/// thread is woken only if that does not do: call it holding no profile.
/// Most sends write nothing: the check inlines alone.
#[inline(always)]
pub(crate) fn settle_now(receipt: Option<Receipt>, writer: Option<&Writer>) -> Result<(), Error> {
    match receipt {
        None => Ok(()),
        Some(receipt) => settle_receipt_now(receipt, writer),
    }
}

#[inline(never)]
fn settle_receipt_now(mut receipt: Receipt, writer: Option<&Writer>) -> Result<(), Error> {
    if receipt.informs() {
        // Nobody waits for it. Written here if no one else is writing and
        // no write waits for a disk (`fsync = interval`), so that dropping
        // it does not wake the writer thread; else the drop wakes it.
        answered_or_help(&mut receipt, writer, Writer::help_without_sync);
        return Ok(());
    }
    match settle_yielding(&mut receipt, writer) {
        Some(settled) => settled,
        None => futures::executor::block_on(receipt).map_err(|_| Error::Unavailable),
    }
}

/// [`settle`] on the calling thread in any context, an executor's included
/// (it neither parks on nor enters one): for the rare change that must
/// hold a profile's lock until it is written (a deletion).
pub(crate) fn settle_holding(receipt: Option<Receipt>) -> Result<(), Error> {
    let Some(mut receipt) = receipt else {
        return Ok(());
    };
    if receipt.informs() {
        return Ok(());
    }
    receipt.wake_writer();
    loop {
        if let Some(settled) = settle_yielding(&mut receipt, None) {
            return settled;
        }
        std::thread::sleep(std::time::Duration::from_micros(50));
    }
}

/// Looks at `receipt` up to [`SETTLE_YIELDS`] times, helping `writer` (if
/// given) and yielding the thread in between: its answer, or `None` if it
/// is still pending. A write takes tens of microseconds, so this usually
/// finds it done, without the cost of parking the thread and waking it
/// again (measured with `cargo loadgen --engine numpool,journal`).
fn settle_yielding(receipt: &mut Receipt, writer: Option<&Writer>) -> Option<Result<(), Error>> {
    for _ in 0..SETTLE_YIELDS {
        if let Some(settled) = answered_or_help(receipt, writer, Writer::help) {
            return Some(settled);
        }
        std::thread::yield_now();
    }
    None
}

/// How many times a receipt is looked at, yielding in between, before the
/// thread waiting for it parks (or sleeps).
const SETTLE_YIELDS: u32 = 64;

/// The log segment after snapshot `n`.
pub(crate) fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("log-{n:020}.seg"))
}

/// Snapshot `n`.
pub(crate) fn snapshot_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("snapshot-{n:020}.bin"))
}

/// The numbers `n` of the files named `{prefix}N{suffix}` in `dir`, ascending.
pub(crate) fn numbered(dir: &Path, prefix: &str, suffix: &str) -> std::io::Result<Vec<u64>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(suffix))
            .and_then(|n| n.parse().ok())
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Repairs the data directory `dir` after start-up stopped on a damaged
/// log ([`StartError::Damaged`](crate::StartError::Damaged)): moves every
/// damaged span of every log segment to a side file next to it
/// (`log-N.seg.damaged-OFFSET`), keeping every valid record before and after
/// it. Nothing is deleted. The directory must not be in use.
pub fn repair(dir: &Path) -> Result<recovery::RepairReport, crate::error::StartError> {
    if !dir.is_dir() {
        return Err(crate::error::StartError::NoDataDir {
            dir: dir.to_path_buf(),
        });
    }
    let _lock = lock::DirLock::acquire(dir)?;
    recovery::repair(dir)
}
