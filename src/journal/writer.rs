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

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;
use tokio::sync::oneshot;

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

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
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

fn run(mut file: File, rx: Receiver<Msg>, policy: FsyncPolicy, failed: Arc<AtomicBool>) {
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut receipts: Vec<oneshot::Sender<()>> = Vec::new();
    let mut dirty = false;
    let mut last_sync = Instant::now();
    let fail = |e: std::io::Error| {
        eprintln!("numpool: journal write failed, refusing further changes: {e}");
        failed.store(true, Ordering::Relaxed);
    };
    loop {
        let wait = match policy {
            FsyncPolicy::Interval(every) if dirty => every.saturating_sub(last_sync.elapsed()),
            _ => Duration::from_secs(3600),
        };
        let first = match rx.recv_timeout(wait) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some(Msg::Stop),
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
                    dirty = true;
                    if policy == FsyncPolicy::Always {
                        if let Err(e) = file.sync_data() {
                            fail(e);
                            receipts.clear();
                        }
                        dirty = false;
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
        if let FsyncPolicy::Interval(every) = policy {
            if dirty && last_sync.elapsed() >= every {
                if let Err(e) = file.sync_data() {
                    fail(e);
                }
                dirty = false;
                last_sync = Instant::now();
            }
        }
        if let Some((path, done)) = rotate {
            let result = file.sync_data().and_then(|_| open(&path)).map(|next| {
                file = next;
                dirty = false;
            });
            let _ = done.send(result);
        }
        if stop {
            let _ = file.sync_data();
            return;
        }
    }
}
