//! Backups: a data directory made from one snapshot file taken elsewhere
//! ([`restore`]). Taking the snapshot is the engine's (`Engine::backup_to`,
//! `GET /backup` on a server).

use std::path::{Path, PathBuf};

use super::record::{Record, Records};
use super::snapshot;

/// What [`restore`] put in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// The profiles the backup holds.
    pub profiles: usize,
    /// The position of a cluster's log the restored directory holds (at
    /// least 1: a cluster seeded from it has its standbys take the leader's
    /// snapshot instead of replaying a log that never held this state).
    pub position: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// Why a backup could not be restored. Nothing is left behind in the data
/// directory when restoring fails.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The data directory already holds files: restoring never mixes a
    /// backup with other state.
    #[error("{} is not empty: restore into a new or empty directory", .0.display())]
    NotEmpty(PathBuf),
    /// The file is not a whole numpool snapshot (cut short, damaged, or
    /// something else entirely).
    #[error("{} is not a whole numpool backup (cut short, damaged, or another kind of file)", .0.display())]
    NotABackup(PathBuf),
    /// Reading the backup or writing the directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

/// Makes `data_dir` (new, or empty) a data directory holding exactly what
/// the backup file `file` holds: `numpool serve --data-dir` (or
/// `Engine::start` with a journal there) then serves that state. The file
/// is checked whole before anything is written.
///
/// ```
/// # use numpool::{Engine, EngineConfig, JournalConfig, NewProfile};
/// # futures::executor::block_on(async {
/// let base = std::env::temp_dir().join(format!("numpool-doc-restore-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&base);
/// let config = |dir: &str| EngineConfig { journal: Some(JournalConfig::new(base.join(dir))), ..Default::default() };
/// let engine = Engine::start(config("live"))?;
/// let p = engine.create_profile(NewProfile { name: "kept".into(), ..Default::default() }).await?.id;
/// engine.backup_to(&base.join("backup.bin")).await?;
/// engine.shutdown().await;
///
/// numpool::restore(&base.join("backup.bin"), &base.join("restored"))?;
/// let restored = Engine::start(config("restored"))?;
/// assert_eq!(restored.profile(p)?.name, "kept");
/// # restored.shutdown().await;
/// # let _ = std::fs::remove_dir_all(&base);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub fn restore(file: &Path, data_dir: &Path) -> Result<RestoreReport, RestoreError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RestoreError::Io { path, source }
    };
    let bytes = std::fs::read(file).map_err(io(file))?;
    let (profiles, position) =
        snapshot::examine(&bytes).ok_or_else(|| RestoreError::NotABackup(file.to_path_buf()))?;
    match std::fs::read_dir(data_dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(RestoreError::NotEmpty(data_dir.to_path_buf()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
        }
        Err(e) => return Err(io(data_dir)(e)),
    }
    let written = if position > 0 {
        snapshot::install(data_dir, 1, &bytes).map(|()| bytes.len() as u64)
    } else {
        // A single node's snapshot holds no log position; stamp it 1.
        let body = super::format::check(&bytes, super::format::FileKind::Snapshot)
            .expect("examined above");
        let records = Records::new(body)
            .filter(|r| !matches!(r, Record::SnapshotEnd { .. }))
            .chain(std::iter::once(Record::Replicated { position: 1 }));
        snapshot::write(data_dir, 1, records)
            .and_then(|()| std::fs::metadata(super::snapshot_path(data_dir, 1)))
            .map(|m| m.len())
    };
    let bytes = written.map_err(|e| {
        let _ = std::fs::remove_file(super::snapshot_path(data_dir, 1));
        io(data_dir)(e)
    })?;
    Ok(RestoreReport {
        profiles: profiles.len(),
        position: position.max(1),
        bytes,
    })
}
