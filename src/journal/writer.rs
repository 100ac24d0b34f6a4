//! The journal's writer: appends batches of framed records to the current
//! log segment and answers each batch's receipt once the operating system
//! has the bytes (`interval`, `never`) or the disk has them (`always`).
//!
//! Batches queue on a channel. A sender about to wait for its receipt
//! writes what is queued itself ([`Writer::help`]; an async one only under
//! `fsync = interval`) when no one else is writing at that moment: on a busy
//! machine the writer thread may wait hundreds of microseconds for a core,
//! and the caller would wait with it. On a cluster node only a standby's
//! follower does ([`Writer::help_follower`]): a leader's commits to etcd
//! stay on the thread. The thread writes the rest: it is
//! woken by a receipt waited on or dropped unanswered, not by each append
//! or barrier (see [`Receipt`]), and by drains, probes, rotations and
//! stopping. Whoever writes holds the writer's [`Core`] and takes batches
//! off the channel only while holding it, so batches are written in the
//! order they were appended, whoever writes them.
//!
//! When a write fails (a full disk, an I/O error) the segment is cut back
//! to its last whole batch, so the file holds exactly what was
//! acknowledged, and the writer turns *failed*: every receipt from then on
//! fails at once, until [`Writer::probe`] finds the journal writable again.
//! The engine meanwhile refuses changes and reloads its state from the
//! files, so that nothing refused stays visible (see `Engine`'s recovery).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::format::{self, FileKind};
pub(crate) use super::receipt::Receipt;
use super::record::{self, Record};
use super::FsyncPolicy;

/// Where a cluster leader's batches are committed before they are written
/// to the local log (see `crate::cluster`). A batch is acknowledged only
/// once it is committed there.
pub(crate) trait Replicator: Send + Sync {
    /// Commits `batch` (framed records) to the replicated log; returns its
    /// position there. An error refuses the batch: nothing of it may be
    /// acknowledged, and the writer turns failed.
    fn commit(&self, batch: &[u8]) -> Result<u64, String>;
    /// Whether commits can succeed again (the healing probe asks).
    fn probe(&self) -> bool;
    /// The batch committed last could not be written here: this node's
    /// state now lacks a committed batch, so it must stop leading (and
    /// follow the replicated log, which has it).
    fn abandon(&self);
}

/// Where a batch of changes goes before it is written here.
#[derive(Clone)]
pub(crate) enum Replication {
    /// Nowhere else: a server on its own.
    Off,
    /// A cluster standby: its state comes from the leader's log, so a change
    /// made here (a request that raced with stepping down) is refused, and
    /// the writer turns failed so that the engine reloads what is written.
    Follower,
    /// A cluster leader: each batch is committed there first.
    Leader(Arc<dyn Replicator>),
}

/// What a batch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// A change: replicated first when the node leads a cluster.
    Change,
    /// Local only: a snapshot marker, or records already committed in the
    /// replicated log that a standby applies.
    Local,
}

enum Msg {
    Append(Vec<u8>, Scope, oneshot::Sender<()>, u64),
    /// Resolves once every batch appended before it is written.
    Barrier(oneshot::Sender<()>),
    /// Resolves once every batch appended before it is done with, written
    /// or refused (even while failed).
    Drain(oneshot::Sender<()>),
    Rotate(PathBuf, oneshot::Sender<std::io::Result<()>>),
    Probe(oneshot::Sender<bool>),
    Stop,
}

/// What the writer thread and its handle share.
struct Shared {
    failed: AtomicBool,
    /// Why the journal last failed, for operators.
    error: Mutex<Option<String>>,
    /// Test support: while this file exists, every write fails.
    fault_file: Option<PathBuf>,
    /// Test support: while set, every write fails.
    fault: AtomicBool,
    /// Where changes go first (a cluster's log), if anywhere.
    replication: Mutex<Replication>,
    /// The position in the replicated log of the last batch written here.
    replicated: std::sync::atomic::AtomicU64,
    /// The number of the last append handed to the writer.
    appended: std::sync::atomic::AtomicU64,
    /// The number of the last append written (acknowledgeable).
    written: std::sync::atomic::AtomicU64,
    /// An append was refused since last asked: the state in memory may
    /// hold a change the files do not.
    refused: AtomicBool,
    /// Senders may write queued batches themselves: only while nothing is
    /// replicated (a leader's commit to etcd stays on the writer thread; a
    /// standby's sends are refused, and its follower has its own way in,
    /// [`Writer::help_follower`]).
    helpable: AtomicBool,
    /// How many times the writer thread went to sleep (tests wait for it).
    sleeps: std::sync::atomic::AtomicU64,
    /// Buffers of appends already taken, for later appends to encode into:
    /// a batch's allocation and its free on another thread cost about 1%
    /// of a batched run with the journal on.
    spare: Mutex<Vec<Vec<u8>>>,
}

/// How many spare buffers are kept, and the largest kept: enough for the
/// appends of a few batches in flight, not for an import's.
const SPARE_BUFFERS: usize = 32;
const SPARE_CAPACITY: usize = 64 << 10;

impl Shared {
    fn fail(&self, e: &std::io::Error) {
        self.refuse(
            e.to_string(),
            "journal write failed, refusing changes until it can write",
        );
    }

    /// Turns the writer failed for `why`, saying so once with `announce`.
    fn refuse(&self, why: String, announce: &str) {
        if !self.failed.swap(true, Ordering::AcqRel) {
            tracing::warn!(error = %why, "journal: {announce}");
        }
        *self.error.lock() = Some(why);
    }

    /// Keeps `bytes`, taken by the writer, for a later append.
    fn recycle(&self, mut bytes: Vec<u8>) {
        if bytes.capacity() <= SPARE_CAPACITY {
            let mut spare = self.spare.lock();
            if spare.len() < SPARE_BUFFERS {
                bytes.clear();
                spare.push(bytes);
            }
        }
    }

    /// A write error injected for a test, if one is.
    fn injected(&self) -> Option<std::io::Error> {
        let on = self.fault.load(Ordering::Relaxed)
            || self.fault_file.as_ref().is_some_and(|p| p.exists());
        on.then(|| std::io::Error::other("injected journal fault (test)"))
    }
}

/// The handle to the writer.
pub(crate) struct Writer {
    tx: Sender<Msg>,
    /// Held while an append takes its number and is sent.
    order: Mutex<()>,
    core: Arc<Mutex<Core>>,
    policy: FsyncPolicy,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The writer thread, to wake (appends leave that to their receipts).
    wake: Thread,
    shared: Arc<Shared>,
}

/// Opens a log segment for appending, writing its header if it is new.
/// Returns the file and its length.
fn open(path: &Path) -> std::io::Result<(File, u64)> {
    let existed = path.exists();
    let result = (|| {
        let mut file = OpenOptions::new().create(true).append(true).open(path)?;
        let mut len = file.metadata()?.len();
        if len == 0 {
            format::write_header(&mut file, FileKind::Log)?;
            len = format::HEADER_LEN as u64;
        }
        Ok((file, len))
    })();
    if result.is_err() && !existed {
        // No debris: a segment that could not even get its header goes.
        let _ = std::fs::remove_file(path);
    }
    result
}

impl Writer {
    /// Starts appending to `path`. `fault_file`: test support, see
    /// [`Shared::injected`].
    pub(crate) fn start(
        path: &Path,
        policy: FsyncPolicy,
        fault_file: Option<PathBuf>,
    ) -> std::io::Result<Writer> {
        let (file, len) = open(path)?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let shared = Arc::new(Shared {
            failed: AtomicBool::new(false),
            error: Mutex::new(None),
            fault_file,
            fault: AtomicBool::new(false),
            replication: Mutex::new(Replication::Off),
            replicated: std::sync::atomic::AtomicU64::new(0),
            appended: std::sync::atomic::AtomicU64::new(0),
            written: std::sync::atomic::AtomicU64::new(0),
            refused: AtomicBool::new(false),
            helpable: AtomicBool::new(true),
            sleeps: std::sync::atomic::AtomicU64::new(0),
            spare: Mutex::new(Vec::new()),
        });
        let core = Arc::new(Mutex::new(Core::new(
            rx.clone(),
            file,
            len,
            policy,
            Arc::clone(&shared),
        )));
        let (thread_core, thread_shared) = (Arc::clone(&core), Arc::clone(&shared));
        let thread = std::thread::Builder::new()
            .name("numpool-journal".into())
            .spawn(move || run(&thread_core, rx, &thread_shared))?;
        Ok(Writer {
            tx,
            order: Mutex::new(()),
            core,
            policy,
            wake: thread.thread().clone(),
            thread: Mutex::new(Some(thread)),
            shared,
        })
    }

    /// [`Writer::help`] for a caller on an executor thread, which must not
    /// wait long for a disk: only under `fsync = interval`, and not while
    /// the journal is failed (its probes sync). A helper may still carry
    /// out a rotation (once per snapshot), which syncs the old segment:
    /// under `interval` that holds at most one interval of unsynced
    /// writes, where under `never` it could hold the whole segment.
    pub(crate) fn help_without_sync(&self) {
        if matches!(self.policy, FsyncPolicy::Interval(_)) && !self.is_failed() {
            self.help();
        }
    }

    /// For a caller holding receipts that first waits for something else
    /// (a busy profile in a batch): on a cluster leader the thread starts
    /// committing them now, so the commit to etcd overlaps that wait. A
    /// caller that may write does so itself once it settles (a local write
    /// is short), so the thread is left asleep.
    pub(crate) fn begin_writing(&self) {
        if !self.shared.helpable.load(Ordering::Acquire) {
            self.wake.unpark();
        }
    }

    /// Writes the batches queued now on the calling thread, if no one else
    /// is writing: for a caller about to wait for its receipt, which then
    /// need not wait for the thread to get a core. If it cannot, the
    /// receipt's waiting wakes the thread. Never call it while holding a
    /// profile: it does I/O.
    pub(crate) fn help(&self) {
        if !self.shared.helpable.load(Ordering::Acquire) {
            // A cluster node's senders leave batches to the thread: make
            // sure it is up.
            self.wake.unpark();
            return;
        }
        self.write_queued();
    }

    /// [`Writer::help`] for the thread applying a cluster leader's log on a
    /// standby (its follower, or the node just elected catching up before
    /// it leads): what it applies is written here only (nothing goes to
    /// etcd), so it writes that itself rather than waking the writer thread
    /// and parking until the thread has run (two context switches a batch).
    /// If someone else is writing, the batch is left to them (its receipt
    /// then wakes the thread). The mode is read once, before writing:
    /// `cluster::node` switches to leading only on the thread that applies
    /// the log, after it has stopped following, so this never carries out
    /// a leader's commit.
    pub(crate) fn help_follower(&self) {
        if matches!(*self.shared.replication.lock(), Replication::Follower) {
            self.write_queued();
        } else {
            self.wake.unpark();
        }
    }

    /// Writes the batches queued now on the calling thread, if no one else
    /// is writing.
    fn write_queued(&self) {
        let Some(mut core) = self.core.try_lock() else {
            return;
        };
        let Some(rx) = core.rx.clone() else {
            return; // stopped
        };
        let Ok(first) = rx.try_recv() else {
            return;
        };
        if core.step(first, &rx) == Step::Stop {
            // Stopping is the thread's to do: hand it the request back.
            drop(core);
            let _ = self.send_to_thread(Msg::Stop);
        }
    }

    /// An empty buffer to encode an append into, with room for `len` bytes:
    /// one an earlier append left, if any.
    pub(crate) fn buffer(&self, len: usize) -> Vec<u8> {
        let mut bytes = self.shared.spare.lock().pop().unwrap_or_default();
        bytes.reserve(len);
        bytes
    }

    /// Appends framed `bytes` (a batch of `scope`); the receipt resolves
    /// once they are written. While the journal is failed the receipt fails
    /// at once.
    pub(crate) fn append_scoped(&self, bytes: Vec<u8>, scope: Scope) -> Receipt {
        let (done, answer) = oneshot::channel();
        let receipt = Receipt::new(answer, self.wake.clone());
        // Numbers reach the writer in order (a reply compares them with
        // `written`), and are taken even while failed: a change applied
        // meanwhile must not look written.
        let _order = self.order.lock();
        let number = self.shared.appended.fetch_add(1, Ordering::AcqRel) + 1;
        if self.is_failed() {
            self.shared.refused.store(true, Ordering::Release);
        } else {
            let _ = self.tx.send(Msg::Append(bytes, scope, done, number));
        }
        receipt
    }

    /// Whether an append was refused since the last call (the state in
    /// memory may then hold a change the files do not: reload it).
    pub(crate) fn take_refused(&self) -> bool {
        self.shared.refused.swap(false, Ordering::AcqRel)
    }

    /// Whether an append was refused and not yet taken (see
    /// [`Writer::take_refused`]), without taking it.
    pub(crate) fn refused_pending(&self) -> bool {
        self.shared.refused.load(Ordering::Acquire)
    }

    /// The number of the last append handed to the writer (appends are
    /// numbered from 1 in order).
    pub(crate) fn appended(&self) -> u64 {
        self.shared.appended.load(Ordering::Acquire)
    }

    /// The number of the last append written: everything up to it is
    /// acknowledgeable.
    pub(crate) fn written(&self) -> u64 {
        self.shared.written.load(Ordering::Acquire)
    }

    /// Waits until the writer thread has gone to sleep with nothing queued
    /// since its sleep number `after` (and stayed asleep a few
    /// milliseconds), so that what a test appends next is written only if
    /// something wakes the thread or the test's caller writes it. Returns
    /// its sleep number now.
    #[cfg(test)]
    pub(crate) fn asleep_since(&self, after: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let n = self.sleeps();
            std::thread::sleep(Duration::from_millis(5));
            if n > after && self.sleeps() == n {
                return n;
            }
            assert!(Instant::now() < deadline, "the writer never slept");
        }
    }

    /// How many times the writer thread has gone to sleep.
    #[cfg(test)]
    pub(crate) fn sleeps(&self) -> u64 {
        self.shared.sleeps.load(Ordering::Acquire)
    }

    /// Resolves once every append handed over before it is written (fails
    /// if the journal fails first): what a reply that depends on earlier,
    /// not yet written changes waits for.
    pub(crate) fn barrier(&self) -> Receipt {
        let (done, answer) = oneshot::channel();
        if !self.is_failed() {
            let _ = self.tx.send(Msg::Barrier(done));
        }
        Receipt::new(answer, self.wake.clone())
    }

    /// Sends `msg`, which only the thread may be there to carry out, and
    /// wakes it.
    fn send_to_thread(&self, msg: Msg) -> Result<(), crossbeam_channel::SendError<Msg>> {
        let sent = self.tx.send(msg);
        self.wake.unpark();
        sent
    }

    /// Resolves once the writer is done with every batch appended before
    /// (written or refused), so that reading the files sees all of them: a
    /// batch whose commit was under way when the journal failed may still
    /// be written.
    pub(crate) async fn drain(&self) {
        let (done, answer) = oneshot::channel();
        if self.send_to_thread(Msg::Drain(done)).is_ok() {
            let _ = answer.await;
        }
    }

    /// Where changes go before they are written here, from the next batch on.
    pub(crate) fn set_replication(&self, replication: Replication) {
        let mut current = self.shared.replication.lock();
        self.shared
            .helpable
            .store(matches!(replication, Replication::Off), Ordering::Release);
        *current = replication;
    }

    /// The position in the replicated log of the last batch written here.
    pub(crate) fn replicated(&self) -> u64 {
        self.shared.replicated.load(Ordering::Acquire)
    }

    /// Records that the log holds the replicated log up to `position` (a
    /// standby, after writing batches it applied; or after recovery).
    pub(crate) fn set_replicated(&self, position: u64) {
        self.shared.replicated.store(position, Ordering::Release);
    }

    /// Turns the writer failed (changes refused) with `why`, on purpose
    /// (not a write error): the engine then reloads what is written.
    pub(crate) fn fail(&self, why: &str) {
        self.shared
            .refuse(why.to_string(), "refusing changes for now");
    }

    /// Whether changes made here are written (not a cluster standby's).
    pub(crate) fn takes_changes(&self) -> bool {
        !matches!(*self.shared.replication.lock(), Replication::Follower)
    }

    /// Whether the journal cannot write now.
    #[inline]
    pub(crate) fn is_failed(&self) -> bool {
        self.shared.failed.load(Ordering::Acquire)
    }

    /// Why the journal last failed.
    pub(crate) fn last_error(&self) -> Option<String> {
        self.shared.error.lock().clone()
    }

    /// Test support: makes every write fail while `on`.
    #[cfg(feature = "test-util")]
    pub(crate) fn inject_fault(&self, on: bool) {
        self.shared.fault.store(on, Ordering::Relaxed);
    }

    /// Tries to write (and sync) a probe record; if that works the journal
    /// is no longer failed. Returns whether it is writable now.
    pub(crate) async fn probe(&self) -> bool {
        let (done, answer) = oneshot::channel();
        if self.send_to_thread(Msg::Probe(done)).is_err() {
            return false;
        }
        answer.await.unwrap_or(false)
    }

    /// Switches to a new segment at `path`; earlier appends go to the old
    /// one. On failure the writer stays on the old segment and no new file
    /// is left behind.
    pub(crate) async fn rotate(&self, path: PathBuf) -> std::io::Result<()> {
        let (done, answer) = oneshot::channel();
        self.send_to_thread(Msg::Rotate(path, done))
            .map_err(|_| std::io::Error::other("the journal writer has stopped"))?;
        answer
            .await
            .map_err(|_| std::io::Error::other("the journal writer has stopped"))?
    }

    /// Writes what is queued, syncs, and stops the thread.
    pub(crate) fn stop(&self) {
        let _ = self.send_to_thread(Msg::Stop);
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
    fn start(file: &File, every: Duration, shared: Arc<Shared>) -> std::io::Result<Syncer> {
        let current = Arc::new(Mutex::new(Some(file.try_clone()?)));
        let dirty = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, d, s) = (Arc::clone(&current), Arc::clone(&dirty), Arc::clone(&stop));
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
                                shared.fail(&e);
                            }
                        }
                    }
                }
            })?;
        Ok(Syncer {
            file: current,
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

/// The writer thread's state: the segment and how much of it holds
/// whole, acknowledged batches.
struct Segment {
    file: File,
    durable_len: u64,
    policy: FsyncPolicy,
    syncer: Option<Syncer>,
    shared: Arc<Shared>,
}

impl Segment {
    /// Writes `buf` (and syncs it under `always`). On failure the file is
    /// cut back to its last whole batch and the journal turns failed.
    fn write(&mut self, buf: &[u8]) -> bool {
        let result = match self.shared.injected() {
            Some(e) => Err(e),
            None => self.file.write_all(buf).and_then(|_| {
                if self.policy == FsyncPolicy::Always {
                    self.file.sync_data()
                } else {
                    Ok(())
                }
            }),
        };
        match result {
            Ok(()) => {
                self.durable_len += buf.len() as u64;
                if let Some(s) = &self.syncer {
                    s.dirty.store(true, Ordering::Release);
                }
                true
            }
            Err(e) => {
                // Cutting a file shorter needs no space: this works on a full disk.
                let _ = self.file.set_len(self.durable_len);
                self.shared.fail(&e);
                false
            }
        }
    }

    fn rotate(&mut self, path: &Path) -> std::io::Result<()> {
        if let Some(e) = self.shared.injected() {
            return Err(e);
        }
        let (next, len) = open(path)?;
        if let Err(e) = self.file.sync_data() {
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
        if let Some(s) = &self.syncer {
            *s.file.lock() = Some(next.try_clone()?);
        }
        self.file = next;
        self.durable_len = len;
        Ok(())
    }

    /// Writes a probe record (ignored by recovery) and syncs it.
    fn probe(&mut self) -> bool {
        let mut bytes = Vec::new();
        record::encode(&Record::Probe, &mut bytes);
        let ok = self.write(&bytes) && self.file.sync_data().is_ok();
        if ok {
            self.shared.failed.store(false, Ordering::Release);
            *self.shared.error.lock() = None;
        }
        ok
    }
}

/// What writing needs: the queue, the segment and the group being
/// written. Whoever writes holds it (see the module docs).
struct Core {
    /// The queue's end batches are taken from; `None` once stopped, so that
    /// when the thread's end goes too, later sends fail at once (their
    /// receipts answer "unavailable") instead of waiting for nobody.
    rx: Option<Receiver<Msg>>,
    segment: Segment,
    /// The group's framed records, as written here.
    buf: Vec<u8>,
    /// The group's changes, in order, for the replicated log.
    changes: Vec<u8>,
    receipts: Vec<oneshot::Sender<()>>,
    last_number: u64,
}

/// Whether a [`Core::step`] met a request to stop.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Go,
    Stop,
}

impl Core {
    fn new(
        rx: Receiver<Msg>,
        file: File,
        len: u64,
        policy: FsyncPolicy,
        shared: Arc<Shared>,
    ) -> Core {
        let syncer = match policy {
            FsyncPolicy::Interval(every) => Syncer::start(&file, every, Arc::clone(&shared)).ok(),
            _ => None,
        };
        Core {
            rx: Some(rx),
            segment: Segment {
                file,
                durable_len: len,
                policy,
                syncer,
                shared,
            },
            buf: Vec::with_capacity(1 << 20),
            changes: Vec::with_capacity(1 << 20),
            receipts: Vec::new(),
            last_number: 0,
        }
    }

    /// Writes `first` and what is queued after it as one group (group
    /// commit), up to the first request that is not an append, which is
    /// then carried out (all but stopping: that is left to the caller).
    fn step(&mut self, first: Msg, rx: &Receiver<Msg>) -> Step {
        let mut step = Step::Go;
        let mut control = None;
        for msg in std::iter::once(first).chain(rx.try_iter().take(16_384)) {
            match msg {
                Msg::Append(bytes, scope, done, number) => {
                    if scope == Scope::Change {
                        self.changes.extend_from_slice(&bytes);
                    }
                    self.buf.extend_from_slice(&bytes);
                    self.segment.shared.recycle(bytes);
                    self.receipts.push(done);
                    self.last_number = self.last_number.max(number);
                }
                Msg::Stop => {
                    step = Step::Stop;
                    break;
                }
                other => {
                    control = Some(other);
                    break;
                }
            }
        }
        if !self.buf.is_empty() {
            self.write_group();
        }
        let segment = &mut self.segment;
        match control {
            Some(Msg::Rotate(path, done)) => {
                let _ = done.send(segment.rotate(&path));
            }
            Some(Msg::Barrier(done)) if !segment.shared.failed.load(Ordering::Acquire) => {
                let _ = done.send(());
            }
            Some(Msg::Drain(done)) => {
                let _ = done.send(());
            }
            Some(Msg::Probe(done)) => {
                let replication = segment.shared.replication.lock().clone();
                let replicable = match replication {
                    Replication::Leader(r) => r.probe(),
                    Replication::Off | Replication::Follower => true,
                };
                let ok = replicable && segment.probe();
                let _ = done.send(ok);
            }
            _ => {}
        }
        step
    }

    /// Writes the group gathered (replicated first on a leader) and answers
    /// its receipts, or refuses them all.
    fn write_group(&mut self) {
        let segment = &mut self.segment;
        // Nothing is written while failed: a later batch must not land
        // after a hole where a refused one was.
        let failed = segment.shared.failed.load(Ordering::Acquire);
        let replicated = if failed {
            None
        } else {
            replicate(&segment.shared, &self.changes, &mut self.buf)
        };
        if let Some(position) = replicated {
            if segment.write(&self.buf) {
                if let Some(p) = position {
                    segment.shared.replicated.store(p, Ordering::Release);
                }
                segment
                    .shared
                    .written
                    .store(self.last_number, Ordering::Release);
                for done in self.receipts.drain(..) {
                    let _ = done.send(());
                }
            } else if position.is_some() {
                // Committed to the cluster but not written here.
                if let Replication::Leader(r) = &*segment.shared.replication.lock() {
                    r.abandon();
                }
            }
        }
        if !self.receipts.is_empty() {
            // Not written: these receipts fail.
            segment.shared.refused.store(true, Ordering::Release);
        }
        self.receipts.clear();
        self.buf.clear();
        self.changes.clear();
    }
}

/// The writer thread: sleeps until woken with something queued, then
/// takes and writes what is queued while holding the core (a caller may
/// have written it meanwhile). A wake that comes while it is writing is
/// kept, so the queue is looked at again before sleeping.
fn run(core: &Mutex<Core>, rx: Receiver<Msg>, shared: &Shared) {
    loop {
        if rx.is_empty() {
            shared.sleeps.fetch_add(1, Ordering::Release);
            std::thread::park();
            continue;
        }
        let mut core = core.lock();
        let first = match rx.try_recv() {
            Ok(msg) => msg,
            Err(crossbeam_channel::TryRecvError::Empty) => continue,
            Err(crossbeam_channel::TryRecvError::Disconnected) => Msg::Stop,
        };
        if core.step(first, &rx) == Step::Stop {
            let _ = core.segment.file.sync_data();
            // The queue's last ends go (this one on return): what is still
            // queued, or sent later, is refused. The fsync thread stops.
            core.rx = None;
            core.segment.syncer = None;
            return;
        }
    }
}

/// Commits the batch's changes to the replicated log, if the node leads a
/// cluster, and adds the position they reached to the local batch.
/// `None`: refused (the writer is failed now); `Some(None)`: nothing to
/// replicate.
fn replicate(shared: &Shared, changes: &[u8], local: &mut Vec<u8>) -> Option<Option<u64>> {
    let replication = shared.replication.lock().clone();
    let replicator = match replication {
        _ if changes.is_empty() => return Some(None),
        Replication::Off => return Some(None),
        Replication::Follower => {
            shared.refuse(
                "this node follows its cluster's leader: changes are made there".into(),
                "refused a change",
            );
            return None;
        }
        Replication::Leader(r) => r,
    };
    match replicator.commit(changes) {
        Ok(position) => {
            record::encode(&Record::Replicated { position }, local);
            Some(Some(position))
        }
        Err(e) => {
            shared.fail(&std::io::Error::other(e));
            None
        }
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
