//! The data directory's lock: one process at a time.
//!
//! `LOCK` in the directory is locked exclusively (an advisory `flock`)
//! for as long as the engine lives and holds the holder's pid, so a second
//! process refuses to start and names the first. The operating system
//! releases the lock when the holder exits, however it exits (kill -9
//! included), so a stale `LOCK` file never blocks a restart.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

use crate::error::StartError;

/// Holds the lock until dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Locks `dir` (which must exist) for this process.
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock, StartError> {
        let path = dir.join("LOCK");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StartError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(StartError::Locked {
                    dir: dir.to_path_buf(),
                    holder: if holder.is_empty() {
                        "unknown".into()
                    } else {
                        holder.to_string()
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(StartError::io(&path, e)),
        }
        file.set_len(0)
            .and_then(|_| file.rewind())
            .and_then(|_| writeln!(file, "{}", std::process::id()))
            .and_then(|_| file.sync_all())
            .map_err(|e| StartError::io(&path, e))?;
        Ok(DirLock { _file: file })
    }
}
