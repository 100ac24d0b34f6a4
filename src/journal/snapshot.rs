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

/// Reads snapshot `n`; `None` if it is torn, corrupt or incomplete.
pub fn read(dir: &Path, n: u64) -> std::io::Result<Option<Vec<Record>>> {
    let bytes = std::fs::read(snapshot_path(dir, n))?;
    let (mut records, valid) = record::read_all(&bytes);
    match records.pop() {
        Some(Record::SnapshotEnd { records: count })
            if valid == bytes.len() && count == records.len() as u64 =>
        {
            Ok(Some(records))
        }
        _ => Ok(None),
    }
}
