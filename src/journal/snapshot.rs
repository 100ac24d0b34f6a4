//! Snapshot files: every profile's state as records, ending with a
//! `SnapshotEnd` that counts them, written to a temporary file, synced and
//! renamed into place, so a snapshot is either complete or ignored.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use super::record::{self, Record};
use super::snapshot_path;

/// Writes snapshot `n` in `dir` from `records`.
pub fn write(dir: &Path, n: u64, records: impl Iterator<Item = Record>) -> std::io::Result<()> {
    let path = snapshot_path(dir, n);
    let tmp = path.with_extension("tmp");
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
    let mut buf = Vec::with_capacity(256);
    let mut count = 0u64;
    for r in records {
        buf.clear();
        record::encode(&r, &mut buf);
        out.write_all(&buf)?;
        count += 1;
    }
    buf.clear();
    record::encode(&Record::SnapshotEnd { records: count }, &mut buf);
    out.write_all(&buf)?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Whether `bytes` are a whole snapshot: every record intact, ending with a
/// `SnapshotEnd` that counts the records before it.
pub fn is_complete(bytes: &[u8]) -> bool {
    let mut records = record::Records::new(bytes);
    let mut count = 0u64;
    let mut last_end = None;
    for r in records.by_ref() {
        last_end = match r {
            Record::SnapshotEnd { records } => Some(records),
            _ => None,
        };
        count += 1;
    }
    records.valid() == bytes.len() && last_end == Some(count.saturating_sub(1))
}

/// The bytes of snapshot `n` if it is whole (see [`is_complete`]); `None`
/// if it is torn, corrupt or incomplete. Checked before anything is applied.
pub fn read(dir: &Path, n: u64) -> std::io::Result<Option<Vec<u8>>> {
    let bytes = std::fs::read(snapshot_path(dir, n))?;
    Ok(is_complete(&bytes).then_some(bytes))
}
