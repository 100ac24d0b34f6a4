//! Snapshots leaving the engine: backups (a fresh snapshot copied out,
//! [`Engine::backup_to`]), and from node to node: a cluster node whose
//! files are behind what the cluster's log in etcd still holds takes the
//! leader's newest snapshot in place of its own state, then follows the log
//! from the position that snapshot covers.

use std::io;
use std::sync::atomic::Ordering;

use super::Engine;
use crate::journal::{self, settle, snapshot, Record};

/// What [`Engine::backup_to`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// The snapshot taken for it (its number in the data directory).
    pub snapshot: u64,
    /// Bytes written.
    pub bytes: u64,
}

impl Engine {
    /// Takes a snapshot now and copies it to `to`, written whole (to a
    /// temporary file, synced, then renamed) or not at all. It holds every
    /// change acknowledged before the call; sends go on while it is taken.
    /// `numpool::restore` makes a data directory from it. An engine without
    /// a data directory has no snapshots to give (an error).
    ///
    /// See [`crate::restore`] for an example.
    pub async fn backup_to(&self, to: &std::path::Path) -> io::Result<BackupReport> {
        let (snapshot, mut file) = self.backup_file().await?;
        let tmp = to.with_extension("partial");
        let written = (|| {
            let mut out = std::fs::File::create(&tmp)?;
            let bytes = io::copy(&mut file, &mut out)?;
            out.sync_all()?;
            std::fs::rename(&tmp, to)?;
            Ok(bytes)
        })();
        match written {
            Ok(bytes) => Ok(BackupReport { snapshot, bytes }),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// A snapshot taken now: its number and the file, open (the server's
    /// `GET /backup`). Open, it stays whole to read even once a later
    /// snapshot has removed it from the data directory, so a slow reader
    /// holds no lock and no copy in memory.
    pub(crate) async fn backup_file(&self) -> io::Result<(u64, std::fs::File)> {
        let Some(j) = &self.inner.config.journal else {
            return Err(io::Error::other(
                "this engine keeps no data directory, so it has no snapshots to back up",
            ));
        };
        self.snapshot_now().await?;
        // No snapshot is taken (and none removed) while opening; a newer
        // one than ours, taken in between, holds everything ours does.
        let _one = self.inner.snapshots.one.lock().await;
        let n = journal::numbered(&j.dir, "snapshot-", ".bin")?
            .last()
            .copied()
            .ok_or_else(|| io::Error::other("no snapshot was written"))?;
        Ok((n, std::fs::File::open(journal::snapshot_path(&j.dir, n))?))
    }

    /// The engine's data directory, if it keeps one.
    pub(crate) fn data_dir(&self) -> Option<&std::path::Path> {
        self.inner.config.journal.as_ref().map(|j| j.dir.as_path())
    }

    /// The position of the cluster's log that this engine's newest snapshot
    /// holds (0 with none, or outside a cluster).
    pub(crate) fn snapshot_covers(&self) -> u64 {
        self.inner.snapshots.covers.load(Ordering::Acquire)
    }

    /// This engine's newest snapshot, open (see [`Engine::backup_file`]),
    /// taking one first if the newest does not hold the cluster's log up to
    /// `at_least` (for the server's `/cluster/snapshot`).
    #[cfg(feature = "server")]
    pub(crate) async fn snapshot_file(&self, at_least: u64) -> io::Result<std::fs::File> {
        let inner = &self.inner;
        let Some(j) = &inner.config.journal else {
            return Err(io::Error::other("this node keeps no files"));
        };
        // No snapshot here can hold more of the log than this node has.
        if at_least > self.replicated_position() {
            return Err(io::Error::other(format!(
                "this node holds the cluster's log up to {} only",
                self.replicated_position()
            )));
        }
        let newest = || journal::numbered(&j.dir, "snapshot-", ".bin").map(|s| s.last().copied());
        if self.snapshot_covers() < at_least || newest()?.is_none() {
            self.snapshot_now().await?;
        }
        // No snapshot is taken (and no older one removed) while opening.
        let _one = inner.snapshots.one.lock().await;
        let n = newest()?.ok_or_else(|| io::Error::other("no snapshot was written"))?;
        std::fs::File::open(journal::snapshot_path(&j.dir, n))
    }

    /// Replaces this engine's state with `bytes`, a whole snapshot file from
    /// the cluster's leader; returns the position of the log it holds. The
    /// snapshot becomes this node's newest, so a restart starts from it.
    pub(crate) async fn install_snapshot(&self, bytes: &[u8]) -> io::Result<u64> {
        let inner = &self.inner;
        let (Some(j), Some(writer)) = (&inner.config.journal, &inner.env.journal) else {
            return Err(io::Error::other("this node keeps no files"));
        };
        let (profiles, position) = snapshot::examine(bytes)
            .ok_or_else(|| io::Error::other("the leader's snapshot is not whole"))?;
        // No snapshot is taken here until the installed state is in place
        // and labelled with its position.
        let _one = inner.snapshots.one.lock().await;
        {
            let _admin = inner.admin.lock().await;
            // As for a snapshot taken here: a new segment, opened with the
            // marks that say its profiles' records come after the snapshot.
            let n = inner.snapshots.next.fetch_add(1, Ordering::AcqRel);
            writer.rotate(journal::segment_path(&j.dir, n)).await?;
            let marks: Vec<Record> = profiles
                .iter()
                .map(|&profile| Record::SnapshotMark {
                    profile,
                    snapshot: n,
                })
                .collect();
            settle(inner.env.journal_local(&marks))
                .await
                .map_err(|e| io::Error::other(e.to_string()))?;
            snapshot::install(&j.dir, n, bytes)?;
            snapshot::retain(&j.dir)?;
        }
        self.reload()
            .await
            .map_err(|e| io::Error::other(e.to_string()))?;
        writer.set_replicated(position);
        inner.snapshots.covers.store(position, Ordering::Release);
        Ok(position)
    }
}
