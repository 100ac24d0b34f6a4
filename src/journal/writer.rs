//! The journal's writer thread: appends batches of framed records to the
//! current log segment and answers each batch's receipt once the operating
//! system has the bytes (`interval`, `never`) or the disk has them (`always`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::format::{self, FileKind};
use super::FsyncPolicy;

/// Resolves once the records it was given for are written (an error if the
/// journal failed: the change must not be acknowledged).
pub type Receipt = oneshot::Receiver<()>;

enum Msg {
    Append(Vec<u8>, Option<oneshot::Sender<()>>),
    Rotate(PathBuf, oneshot::Sender<std::io::Result<()>>),
    Stop,
}

/// The handle to the writer thread.
pub struct Writer {
    tx: Sender<Msg>,
    thread: Mutex<Option<JoinHandle<()>>>,
    failed: Arc<AtomicBool>,
}

/// Opens a log segment for appending, writing its header if it is new.
fn open(path: &Path) -> std::io::Result<File> {
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    if file.metadata()?.len() == 0 {
        format::write_header(&mut file, FileKind::Log)?;
    }
    Ok(file)
}

impl Writer {
    /// Starts appending to `path`.
    pub fn start(path: &Path, policy: FsyncPolicy) -> std::io::Result<Writer> {
        let file = open(path)?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let failed = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&failed);
        let thread = std::thread::Builder::new()
            .name("numpool-journal".into())
            .spawn(move || run(file, rx, policy, flag))?;
        Ok(Writer {
            tx,
            thread: Mutex::new(Some(thread)),
            failed,
        })
    }

    /// Appends framed `bytes`; the receipt resolves once they are written.
    pub fn append(&self, bytes: Vec<u8>) -> Receipt {
        let (done, receipt) = oneshot::channel();
        if !self.failed.load(Ordering::Relaxed) {
            let _ = self.tx.send(Msg::Append(bytes, Some(done)));
        }
        receipt
    }

    /// Switches to a new segment at `path`; earlier appends go to the old one.
    pub async fn rotate(&self, path: PathBuf) -> std::io::Result<()> {
        let (done, answer) = oneshot::channel();
        self.tx
            .send(Msg::Rotate(path, done))
            .map_err(|_| std::io::Error::other("the journal writer has stopped"))?;
        answer
            .await
            .map_err(|_| std::io::Error::other("the journal writer has stopped"))?
    }

    /// Writes what is queued, syncs, and stops the thread.
    pub fn stop(&self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// For `interval`: syncs the current segment every interval on a thread of
/// its own, so a slow sync never holds up writes (and the replies waiting on them).
struct Syncer {
    file: Arc<Mutex<Option<File>>>,
    dirty: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    fn start(file: &File, every: Duration, failed: Arc<AtomicBool>) -> std::io::Result<Syncer> {
        let shared = Arc::new(Mutex::new(Some(file.try_clone()?)));
        let dirty = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, d, s) = (Arc::clone(&shared), Arc::clone(&dirty), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name("numpool-fsync".into())
            .spawn(move || {
                let mut last = Instant::now();
                while !s.load(Ordering::Relaxed) {
                    std::thread::sleep(
                        every
                            .saturating_sub(last.elapsed())
                            .max(Duration::from_millis(1)),
                    );
                    last = Instant::now();
                    if d.swap(false, Ordering::AcqRel) {
                        if let Some(file) = f.lock().as_ref() {
                            if let Err(e) = file.sync_data() {
                                eprintln!(
                                    "numpool: journal sync failed, refusing further changes: {e}"
                                );
                                failed.store(true, Ordering::Relaxed);
                            }
                        }
                    }
                }
            })?;
        Ok(Syncer {
            file: shared,
            dirty,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(mut file: File, rx: Receiver<Msg>, policy: FsyncPolicy, failed: Arc<AtomicBool>) {
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut receipts: Vec<oneshot::Sender<()>> = Vec::new();
    let syncer = match policy {
        FsyncPolicy::Interval(every) => Syncer::start(&file, every, Arc::clone(&failed)).ok(),
        _ => None,
    };
    let fail = |e: std::io::Error| {
        eprintln!("numpool: journal write failed, refusing further changes: {e}");
        failed.store(true, Ordering::Relaxed);
    };
    loop {
        let first = match rx.recv() {
            Ok(m) => Some(m),
            Err(_) => Some(Msg::Stop),
        };
        let mut stop = false;
        let mut rotate = None;
        // Group commit: everything already queued goes out in one write.
        for msg in first.into_iter().chain(rx.try_iter().take(16_384)) {
            match msg {
                Msg::Append(bytes, done) => {
                    buf.extend_from_slice(&bytes);
                    receipts.extend(done);
                }
                Msg::Rotate(path, done) => {
                    rotate = Some((path, done));
                    break;
                }
                Msg::Stop => {
                    stop = true;
                    break;
                }
            }
        }
        if !buf.is_empty() {
            match file.write_all(&buf) {
                Ok(()) => {
                    if policy == FsyncPolicy::Always {
                        if let Err(e) = file.sync_data() {
                            fail(e);
                            receipts.clear();
                        }
                    }
                    if let Some(s) = &syncer {
                        s.dirty.store(true, Ordering::Release);
                    }
                }
                Err(e) => {
                    fail(e);
                    receipts.clear();
                }
            }
            buf.clear();
        }
        for done in receipts.drain(..) {
            let _ = done.send(());
        }
        if let Some((path, done)) = rotate {
            let result = file.sync_data().and_then(|_| open(&path)).and_then(|next| {
                if let Some(s) = &syncer {
                    *s.file.lock() = Some(next.try_clone()?);
                }
                file = next;
                Ok(())
            });
            let _ = done.send(result);
        }
        if stop {
            let _ = file.sync_data();
            return;
        }
    }
}
