//! The header every journal file starts with, so a file of another format
//! (or another program) is recognised before anything is read or changed.
//!
//! | bytes | field |
//! |---|---|
//! | 0..8 | magic `NUMPOOL\0` |
//! | 8..12 | format version, u32 little-endian (this build writes [`VERSION`]) |
//! | 12..16 | file kind, u32 little-endian: 1 log segment, 2 snapshot |
//!
//! The records follow (see [`super::record`] for their layout).

use std::io::Write;

/// The first 8 bytes of every journal file.
pub(crate) const MAGIC: [u8; 8] = *b"NUMPOOL\0";
/// The format version this build reads and writes.
pub(crate) const VERSION: u32 = 5;
/// The oldest version this build reads. Version 3 added record kinds 12 to
/// 14 and a field at the end of `NumberSaved`, version 4 record kind 16
/// (`QueueEnds`), version 5 record kind 17 (`MappingsSet`); an older file
/// holds none of them and reads as it is. New records never go into an older file: a
/// build that does not know them would take them for damage.
pub(crate) const OLDEST_READABLE: u32 = 2;
/// Bytes before the first record.
pub(crate) const HEADER_LEN: usize = 16;

/// What a journal file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum FileKind {
    /// `log-N.seg`: records appended after snapshot N.
    Log = 1,
    /// `snapshot-N.bin`: the state at snapshot N.
    Snapshot = 2,
}

/// The header of a file of `kind`.
pub(crate) fn header(kind: FileKind) -> [u8; HEADER_LEN] {
    let mut h = [0; HEADER_LEN];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(kind as u32).to_le_bytes());
    h
}

/// Writes the header of a file of `kind`.
pub(crate) fn write_header(out: &mut impl Write, kind: FileKind) -> std::io::Result<()> {
    out.write_all(&header(kind))
}

/// Why a file's header is not one this build reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HeaderError {
    /// Shorter than a header: a file torn while it was being created.
    #[error("shorter than its header ({0} bytes)")]
    Short(usize),
    /// Not a numpool journal file (or one from before files had a header).
    #[error("not a numpool journal file (no NUMPOOL header)")]
    NotNumpool,
    /// A version this build does not know.
    #[error("format version {0} (this build reads versions {OLDEST_READABLE} to {VERSION})")]
    UnknownVersion(u32),
    /// A snapshot where a log was expected, or the reverse.
    #[error("a file of kind {found}, expected {expected}")]
    WrongKind {
        /// The kind found.
        found: u32,
        /// The kind expected.
        expected: u32,
    },
}

/// The format version in the header of `bytes`, if it has a header.
pub(crate) fn version_of(bytes: &[u8]) -> Option<u32> {
    let v = bytes.get(8..12)?;
    Some(u32::from_le_bytes(v.try_into().ok()?))
}

/// Checks the header of `bytes` for a file of `kind`; returns the records
/// after it.
pub(crate) fn check(bytes: &[u8], kind: FileKind) -> Result<&[u8], HeaderError> {
    if bytes.len() < HEADER_LEN {
        if bytes.len() >= 8 && bytes[..8] != MAGIC {
            return Err(HeaderError::NotNumpool);
        }
        return Err(HeaderError::Short(bytes.len()));
    }
    if bytes[..8] != MAGIC {
        return Err(HeaderError::NotNumpool);
    }
    let version = version_of(bytes).unwrap_or(0);
    if !(OLDEST_READABLE..=VERSION).contains(&version) {
        return Err(HeaderError::UnknownVersion(version));
    }
    let found = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"));
    if found != kind as u32 {
        return Err(HeaderError::WrongKind {
            found,
            expected: kind as u32,
        });
    }
    Ok(&bytes[HEADER_LEN..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_checked() {
        let mut file = header(FileKind::Log).to_vec();
        file.extend_from_slice(b"records");
        assert_eq!(check(&file, FileKind::Log), Ok(&b"records"[..]));
        assert_eq!(
            check(&file, FileKind::Snapshot),
            Err(HeaderError::WrongKind {
                found: 1,
                expected: 2
            })
        );
        let mut future = file.clone();
        future[8] = 9;
        assert_eq!(
            check(&future, FileKind::Log),
            Err(HeaderError::UnknownVersion(9))
        );
        assert_eq!(
            check(b"garbage!garbage!", FileKind::Log),
            Err(HeaderError::NotNumpool)
        );
        assert_eq!(
            check(&file[..10], FileKind::Log),
            Err(HeaderError::Short(10))
        );
    }
}
