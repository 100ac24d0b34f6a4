//! Durability: an append-only journal of state changes, periodic snapshots,
//! and recovery (latest valid snapshot + the log after it).
//!
//! - Every record is written by the actor of the profile it concerns, so a
//!   profile's records are in the order its state changed, and a snapshot
//!   marker written by the actor says exactly which records a snapshot of
//!   that profile already contains.
//! - Actors never wait for I/O: they hand records to the writer thread
//!   ([`writer`]), and the *caller's* reply waits for the records' receipt
//!   (written to the OS; with `fsync = always`, to disk). A process killed
//!   with SIGKILL therefore loses nothing it acknowledged.
//! - Sticky hits are journaled coarsely: a hit is written only when it is
//!   in a later minute (of the clock) than the mapping's previous use. After
//!   recovery a mapping's `last_used` is at most 60 s older than the truth.
//! - Files: `log-N.seg` (records after snapshot N) and `snapshot-N.bin`.
//!   Each record is `[len][crc32][payload]` ([`record`]); recovery stops at
//!   the first torn or corrupt record and truncates the log there, and falls
//!   back to the previous snapshot if the latest cannot be read.
//!
//! What each `fsync` policy promises on power loss: `always`, nothing
//! acknowledged is lost; `interval` (default, every 10 ms), at most the last
//! interval of acknowledged changes; `never`, whatever the OS had not yet
//! written back (seconds). A killed process loses nothing under any policy.

pub mod record;
pub mod recovery;
pub mod snapshot;
pub mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use record::Record;
pub use writer::{Receipt, Writer};

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

impl FsyncPolicy {
    /// `always`, `interval` (10 ms), `interval:50ms`, or `never`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "always" => Ok(FsyncPolicy::Always),
            "never" => Ok(FsyncPolicy::Never),
            "interval" => Ok(FsyncPolicy::Interval(Duration::from_millis(10))),
            other => match other.strip_prefix("interval:") {
                Some(d) => crate::cli::parse_duration(d).map(FsyncPolicy::Interval),
                None => Err(format!(
                    "{s:?}: use always, interval, interval:DUR or never"
                )),
            },
        }
    }
}

/// Where and how an engine keeps its state.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalConfig {
    pub dir: PathBuf,
    pub fsync: FsyncPolicy,
    /// How often a snapshot compacts the log (`None`: only when asked).
    pub snapshot_every: Option<Duration>,
}

impl JournalConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        JournalConfig {
            dir: dir.into(),
            fsync: FsyncPolicy::Interval(Duration::from_millis(10)),
            snapshot_every: Some(Duration::from_secs(600)),
        }
    }
}

/// The log segment after snapshot `n`.
pub fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("log-{n:020}.seg"))
}

/// Snapshot `n`.
pub fn snapshot_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("snapshot-{n:020}.bin"))
}

/// The numbers `n` of the files named `{prefix}N{suffix}` in `dir`, ascending.
pub fn numbered(dir: &Path, prefix: &str, suffix: &str) -> std::io::Result<Vec<u64>> {
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
