//! The end of a log segment, written through a shared memory map: under
//! fsync `interval` and `never`, appending a batch is a copy into the page
//! cache, as a `write` call's is, without the call. With one message per
//! call, that call was most of what a new mapping cost the journal.
//!
//! - **Space first.** The file is extended [`WINDOW`] at a time with
//!   `posix_fallocate` before anything is copied into the new part: a full
//!   disk fails the extension (an error, as a failed `write` is), never a
//!   store into the map (which would end the process with `SIGBUS`).
//! - **Zeros after the records.** While a segment is written its file is
//!   longer than its records. Closing it ([`MappedTail::close`]) cuts the
//!   zeros; after a crash, recovery reads them as the end of the records,
//!   and the writer that opens the segment again cuts them.
//! - **Durability as with `write`.** A finished copy is in the page cache:
//!   a process killed right after loses nothing of it. `fdatasync` on the
//!   file flushes pages dirtied through the map as it does written ones.
//! - **Bounded.** Only the window being written is mapped, so the map adds
//!   at most [`WINDOW`] to the process's resident memory.
//!
//! Linux only; elsewhere (and under fsync `always`, where the sync costs
//! far more than the call) segments are written with `pwrite`.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// How much of the file one map covers, and how far ahead it is extended.
pub(crate) const WINDOW: usize = 1 << 20;

/// The mapped window at the end of a segment; see the module docs.
pub(crate) struct MappedTail {
    /// The start of the map, or null when nothing is mapped.
    ptr: *mut u8,
    /// The file offset `ptr` maps (a multiple of the page size).
    start: u64,
    /// Bytes mapped.
    len: usize,
    /// The file's length: what is reserved on disk.
    allocated: u64,
}

// SAFETY: the map is owned by this value alone (no copy of `ptr` escapes),
// and it is only used through `&mut self`.
unsafe impl Send for MappedTail {}

impl MappedTail {
    /// A tail for a file `len` bytes long, nothing mapped yet.
    pub(crate) fn new(len: u64) -> MappedTail {
        MappedTail {
            ptr: std::ptr::null_mut(),
            start: 0,
            len: 0,
            allocated: len,
        }
    }

    /// Copies `buf` into `file` at offset `at`, first extending the file
    /// and moving the window when it does not cover the range. On an error
    /// nothing is copied.
    pub(crate) fn write_at(&mut self, file: &File, at: u64, buf: &[u8]) -> io::Result<()> {
        let end = at + buf.len() as u64;
        if self.ptr.is_null() || at < self.start || end > self.start + self.len as u64 {
            self.map(file, at, buf.len())?;
        }
        let offset = (at - self.start) as usize;
        // SAFETY: `[at, end)` lies inside the window (checked or just
        // mapped), the window lies inside the file (extended before it was
        // mapped), and `buf` is not part of the map.
        unsafe {
            std::ptr::copy_nonoverlapping(buf.as_ptr(), self.ptr.add(offset), buf.len());
        }
        Ok(())
    }

    /// Maps a window that starts at the page holding `at` and holds at least
    /// `need` bytes from there, extending the file to cover it: a whole
    /// [`WINDOW`] if the disk has room, else only the pages needed, so that
    /// a nearly full disk refuses no more than `write` calls would.
    fn map(&mut self, file: &File, at: u64, need: usize) -> io::Result<()> {
        self.unmap();
        let page = page_size();
        let start = at - at % page;
        let needed = (at + need as u64).next_multiple_of(page);
        let wanted = needed.max(start + WINDOW as u64);
        if self.extend(file, wanted).is_err() {
            self.extend(file, needed)?;
        }
        let len = (wanted.min(self.allocated) - start) as usize;
        // SAFETY: a new shared map of `len` bytes of an open file, at a
        // page-aligned offset inside it; nothing else maps this range.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                start as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        (self.ptr, self.start, self.len) = (ptr.cast(), start, len);
        Ok(())
    }

    /// Extends the file to `end` bytes, reserving the space on disk.
    fn extend(&mut self, file: &File, end: u64) -> io::Result<()> {
        if end <= self.allocated {
            return Ok(());
        }
        let from = self.allocated as libc::off_t;
        let more = (end - self.allocated) as libc::off_t;
        // SAFETY: a plain call on an open descriptor; it returns the error
        // number instead of setting errno.
        let e = unsafe { libc::posix_fallocate(file.as_raw_fd(), from, more) };
        if e != 0 {
            return Err(io::Error::from_raw_os_error(e));
        }
        self.allocated = end;
        Ok(())
    }

    fn unmap(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: `ptr` and `len` are a map made by `map` and not yet
            // unmapped; nothing refers into it once `ptr` is cleared.
            unsafe { libc::munmap(self.ptr.cast(), self.len) };
            self.ptr = std::ptr::null_mut();
            self.len = 0;
        }
    }

    /// Unmaps the window and cuts `file` to `len`, its records: what a
    /// segment does when it is closed, or cut back after a failed write.
    pub(crate) fn close(&mut self, file: &File, len: u64) -> io::Result<()> {
        self.unmap();
        // Cutting a file shorter needs no space: this works on a full disk.
        file.set_len(len)?;
        self.allocated = len;
        Ok(())
    }
}

impl Drop for MappedTail {
    fn drop(&mut self) {
        self.unmap();
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    fn file(name: &str) -> (std::path::PathBuf, File) {
        let path =
            std::env::temp_dir().join(format!("numpool-mapped-{name}-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        (path, file)
    }

    #[test]
    fn writes_land_in_the_file_ahead_of_its_zeros_and_closing_cuts_them() {
        let (path, f) = file("write");
        f.write_all_at(b"head", 0).unwrap();
        let mut tail = MappedTail::new(4);
        tail.write_at(&f, 4, b"one").unwrap();
        // Past the first window: the window moves on, the file grows.
        let far = WINDOW as u64 + 100;
        tail.write_at(&f, far, b"two").unwrap();
        let len = f.metadata().unwrap().len();
        assert!(len >= far + 3 && len % page_size() == 0, "{len}");
        let mut back = vec![0u8; 7];
        f.read_exact_at(&mut back, 0).unwrap();
        assert_eq!(&back, b"headone", "visible to reads before any sync");
        let mut two = [0u8; 3];
        f.read_exact_at(&mut two, far).unwrap();
        assert_eq!(&two, b"two");
        tail.close(&f, 7).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"headone");
        // Writing again after a close maps again.
        tail.write_at(&f, 7, b"!").unwrap();
        f.read_exact_at(&mut back[..1], 7).unwrap();
        assert_eq!(back[0], b'!');
        drop(tail);
        let _ = std::fs::remove_file(path);
    }
}
