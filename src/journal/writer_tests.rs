//! Unit tests of `writer.rs`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use futures::executor::block_on;

use super::*;

/// The first segment's path in a directory of its own for the test
/// `name`; the directory is removed when the guard drops.
fn temp_segment(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix(&format!("numpool-writer-{name}-"))
        .tempdir()
        .unwrap();
    let path = dir.path().join("log-00000000000000000001.seg");
    (dir, path)
}

fn framed() -> Vec<u8> {
    let mut bytes = Vec::new();
    record::encode(&Record::Probe, &mut bytes);
    bytes
}

/// A replicated log that takes every batch and notes being abandoned.
#[derive(Default)]
struct Log {
    position: AtomicU64,
    abandoned: AtomicBool,
}

impl Replicator for Log {
    fn commit(&self, _: &[u8]) -> Result<u64, String> {
        Ok(self.position.fetch_add(1, Ordering::AcqRel) + 1)
    }
    fn probe(&self) -> bool {
        true
    }
    fn abandon(&self) {
        self.abandoned.store(true, Ordering::Release);
    }
}

#[test]
fn a_follower_refuses_changes_and_writes_what_it_applies() {
    let (_dir, path) = temp_segment("follower");
    let writer = Writer::start(&path, FsyncPolicy::Never, None).unwrap();
    writer.set_replication(Replication::Follower);
    // What a standby applies from its leader is written...
    assert!(block_on(writer.append_scoped(framed(), Scope::Local)).is_ok());
    // ...a change of its own is refused, and the writer turns failed
    // (the engine then reloads what is written).
    assert!(block_on(writer.append_scoped(framed(), Scope::Change)).is_err());
    assert!(writer.is_failed());
    writer.stop();
}

/// A standby's follower writes what it applies on its own thread, without
/// waking the writer thread; a leader's commit never runs there.
#[test]
fn a_follower_writes_its_batches_itself_but_never_a_leaders_commit() {
    let (_dir, path) = temp_segment("follower-helps");
    let writer = Writer::start(&path, FsyncPolicy::Never, None).unwrap();
    writer.set_replication(Replication::Follower);
    let slept = writer.asleep_since(0);
    for n in 1..=20 {
        let mut receipt = writer.append_scoped(framed(), Scope::Local);
        writer.help_follower();
        // Answered on return: the thread, asleep, was not woken to write it.
        assert!(
            receipt.try_recv().is_ok(),
            "batch {n} was not written by the follower"
        );
        assert_eq!(writer.written(), n);
    }
    // Nor woken at all (it would have gone back to sleep by now).
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(writer.sleeps(), slept, "the writer thread was woken");

    let log = Arc::new(CommitThreads::default());
    writer.set_replication(Replication::Leader(Arc::clone(&log) as Arc<dyn Replicator>));
    let receipt = writer.append_scoped(framed(), Scope::Change);
    writer.help_follower();
    assert!(block_on(receipt).is_ok());
    let threads = log.threads.lock().clone();
    assert_eq!(threads.len(), 1);
    assert_ne!(
        threads[0],
        std::thread::current().id(),
        "a leader's commit ran on the caller"
    );
    writer.stop();
}

/// A follower's own write that fails refuses its batch at once and turns
/// the journal failed, as the thread's would (the engine then reloads).
#[test]
fn a_followers_failed_write_refuses_its_batch() {
    let (dir, path) = temp_segment("follower-fails");
    let fault = dir.path().join("fault");
    let writer = Writer::start(&path, FsyncPolicy::Never, Some(fault.clone())).unwrap();
    writer.set_replication(Replication::Follower);
    std::fs::write(&fault, b"").unwrap();
    let mut receipt = writer.append_scoped(framed(), Scope::Local);
    writer.help_follower();
    assert!(matches!(
        receipt.try_recv(),
        Err(crate::journal::receipt::TryRecvError::Closed)
    ));
    assert!(writer.is_failed());
    assert_eq!(writer.written(), 0);
    writer.stop();
}

/// A replicated log that notes the thread of each commit.
#[derive(Default)]
struct CommitThreads {
    threads: parking_lot::Mutex<Vec<std::thread::ThreadId>>,
}

impl Replicator for CommitThreads {
    fn commit(&self, _: &[u8]) -> Result<u64, String> {
        let mut threads = self.threads.lock();
        threads.push(std::thread::current().id());
        Ok(threads.len() as u64)
    }
    fn probe(&self) -> bool {
        true
    }
    fn abandon(&self) {}
}

#[test]
fn a_leader_that_cannot_write_a_committed_batch_abandons_leading() {
    let (_dir, path) = temp_segment("abandon");
    let writer = Writer::start(&path, FsyncPolicy::Never, None).unwrap();
    let log = Arc::new(Log::default());
    writer.set_replication(Replication::Leader(log.clone()));
    assert!(block_on(writer.append_scoped(framed(), Scope::Change)).is_ok());
    assert_eq!(writer.replicated(), 1);
    assert!(!log.abandoned.load(Ordering::Acquire));
    writer.shared.fault.store(true, Ordering::Relaxed);
    assert!(!writer.take_refused());
    assert!(block_on(writer.append_scoped(framed(), Scope::Change)).is_err());
    assert!(writer.take_refused());
    // Committed as position 2 but not written here: stop leading.
    assert_eq!(
        (log.position.load(Ordering::Acquire), writer.replicated()),
        (2, 1)
    );
    assert!(log.abandoned.load(Ordering::Acquire));
    writer.stop();
}

#[test]
fn numbers_reach_the_writer_in_order_and_are_taken_while_failed() {
    let (_dir, path) = temp_segment("numbers");
    let writer = Writer::start(&path, FsyncPolicy::Never, None).unwrap();
    assert!(block_on(writer.append_scoped(framed(), Scope::Change)).is_ok());
    assert_eq!((writer.appended(), writer.written()), (1, 1));
    writer.fail("test");
    assert!(block_on(writer.append_scoped(framed(), Scope::Change)).is_err());
    // The refused append has a number that is never written, and the
    // refusal is told once (the engine then reloads its state).
    assert_eq!((writer.appended(), writer.written()), (2, 1));
    assert!(writer.take_refused());
    assert!(!writer.take_refused());
    writer.stop();
}

/// Appends the next position (taken with the append, so that position
/// order is append order).
fn append_next(writer: &Writer, next: &parking_lot::Mutex<u64>) -> Receipt {
    let mut n = next.lock();
    *n += 1;
    let mut bytes = Vec::new();
    record::encode(&Record::Replicated { position: *n }, &mut bytes);
    writer.append_scoped(bytes, Scope::Local)
}

/// Waits for `receipt` as a blocking sender does, or as an async one does.
fn settle_as_caller(writer: &Writer, receipt: Receipt, in_async: bool) -> Result<(), crate::Error> {
    if in_async {
        block_on(crate::journal::settle_helping(Some(receipt), Some(writer)))
    } else {
        crate::journal::settle_now(Some(receipt), Some(writer))
    }
}

/// The positions a segment holds, in order; every byte after its header
/// must be a whole record.
fn positions_in(path: &Path) -> Vec<u64> {
    let bytes = std::fs::read(path).unwrap();
    let body = format::check(&bytes, FileKind::Log).unwrap();
    let (records, valid) = record::read_all(body);
    assert_eq!(valid, body.len(), "no torn or damaged bytes in {path:?}");
    records
        .iter()
        .map(|r| match r {
            Record::Replicated { position } => *position,
            other => panic!("unexpected record {other:?}"),
        })
        .collect()
}

/// Callers that write queued batches themselves ([`Writer::help`]) and the
/// writer thread, all at once: every batch is written once, in the order
/// it was appended, and every receipt answers. Blocking callers and async
/// ones (which help only under `interval`) alike.
#[test]
fn batches_are_written_in_order_whoever_writes_them() {
    written_in_order_by_helpers("helpers", FsyncPolicy::Never, false);
    let interval = FsyncPolicy::Interval(Duration::from_millis(5));
    written_in_order_by_helpers("helpers-async", interval, true);
    written_in_order_by_helpers("helpers-async-always", FsyncPolicy::Always, true);
}

fn written_in_order_by_helpers(name: &str, policy: FsyncPolicy, in_async: bool) {
    let (_dir, path) = temp_segment(name);
    let writer = Arc::new(Writer::start(&path, policy, None).unwrap());
    let next = Arc::new(parking_lot::Mutex::new(0u64));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (writer, next) = (Arc::clone(&writer), Arc::clone(&next));
            std::thread::spawn(move || {
                for _ in 0..2_000 {
                    let receipt = append_next(&writer, &next);
                    settle_as_caller(&writer, receipt, in_async).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    writer.stop();
    assert_eq!(positions_in(&path), (1..=8_000).collect::<Vec<_>>());
    assert_eq!(writer.written(), 8_000);
}

/// Once stopped, the writer refuses at once what it is sent: nothing
/// waits for a thread that is gone.
#[test]
fn after_stopping_appends_and_drains_answer_at_once() {
    let (_dir, path) = temp_segment("stopped");
    let writer = Arc::new(
        Writer::start(&path, FsyncPolicy::Interval(Duration::from_millis(5)), None).unwrap(),
    );
    assert!(block_on(writer.append_scoped(framed(), Scope::Change)).is_ok());
    writer.stop();
    let (tx, rx) = std::sync::mpsc::channel();
    let w = Arc::clone(&writer);
    std::thread::spawn(move || {
        let receipt = w.append_scoped(framed(), Scope::Change);
        let settled = crate::journal::settle_now(Some(receipt), Some(&w));
        block_on(w.drain());
        let _ = tx.send(settled);
    });
    let settled = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("an append after stop must answer, not hang");
    assert!(settled.is_err());
}

/// A rotation and barriers while callers help: whoever takes them off the
/// queue carries them out in their place, so the two segments together
/// hold every batch once, in order, and every barrier answers.
#[test]
fn rotations_and_barriers_keep_their_place_whoever_writes() {
    rotation_among_helpers("rotate-helpers", FsyncPolicy::Always, false);
    let interval = FsyncPolicy::Interval(Duration::from_millis(5));
    rotation_among_helpers("rotate-helpers-async", interval, true);
}

fn rotation_among_helpers(name: &str, policy: FsyncPolicy, in_async: bool) {
    let (_dir, first) = temp_segment(name);
    let second = first.with_file_name("log-00000000000000000002.seg");
    let writer = Arc::new(Writer::start(&first, policy, None).unwrap());
    let next = Arc::new(parking_lot::Mutex::new(0u64));
    let rotated = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let threads: Vec<_> = (0..3)
        .map(|t| {
            let (writer, next) = (Arc::clone(&writer), Arc::clone(&next));
            let rotated = Arc::clone(&rotated);
            std::thread::spawn(move || {
                for i in 0..500 {
                    // Past 300 batches each, wait for the rotation, so that
                    // on a busy machine it still comes mid-stream.
                    while i == 300 && !rotated.load(std::sync::atomic::Ordering::Acquire) {
                        std::thread::yield_now();
                    }
                    let receipt = append_next(&writer, &next);
                    settle_as_caller(&writer, receipt, in_async).unwrap();
                    if (i + t) % 50 == 0 {
                        settle_as_caller(&writer, writer.barrier(), in_async).unwrap();
                    }
                }
            })
        })
        .collect();
    // Mid-stream: after some batches are written, before all are.
    while writer.written() < 100 {
        std::thread::yield_now();
    }
    block_on(writer.rotate(second.clone())).unwrap();
    rotated.store(true, std::sync::atomic::Ordering::Release);
    for t in threads {
        t.join().unwrap();
    }
    writer.stop();
    let mut positions = Vec::new();
    let mut per_segment = Vec::new();
    for path in [&first, &second] {
        let these = positions_in(path);
        per_segment.push(these.len());
        positions.extend(these);
    }
    assert_eq!(positions, (1..=1_500).collect::<Vec<_>>());
    assert!(
        per_segment.iter().all(|&n| n > 0),
        "rotated mid-stream: {per_segment:?}"
    );
}

/// Runs `f` on a thread of its own and fails the test if it does not
/// finish within ten seconds (a receipt nobody writes would hang it).
fn within_ten_seconds<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("{what}: not written within 10 s"))
}

/// Waits, without polling `receipt` as a future (which would wake the
/// thread), until it is answered, calling `help` on `writer` in between as
/// a blocking sender does; gives up after ten seconds.
fn answered_by_polling(writer: &Writer, mut receipt: Receipt) -> Result<(), ()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        match receipt.try_recv() {
            Ok(()) => return Ok(()),
            Err(crate::journal::receipt::TryRecvError::Closed) => return Err(()),
            Err(_) => writer.help(),
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Err(())
}

/// Appends do not wake the writer thread (a blocking sender writes its own
/// batch); whoever waits without writing must. Each way of waiting, with no
/// caller helping and the thread asleep beforehand, still gets its batch
/// written: each part hangs (and fails here) without the wake it names.
#[test]
fn every_way_of_waiting_gets_the_batch_written_without_a_helper() {
    let (_dir, path) = temp_segment("wake");
    let writer = Arc::new(Writer::start(&path, FsyncPolicy::Never, None).unwrap());
    let mut slept = writer.asleep_since(0);

    // Awaited: the first poll that finds it pending wakes the thread.
    let w = Arc::clone(&writer);
    let awaited = within_ten_seconds("an awaited receipt", move || {
        block_on(w.append_scoped(framed(), Scope::Change))
    });
    assert!(awaited.is_ok());
    assert_eq!(writer.written(), 1);
    slept = writer.asleep_since(slept);

    // Dropped unanswered: nobody waits, yet it is written.
    drop(writer.append_scoped(framed(), Scope::Change));
    let w = Arc::clone(&writer);
    within_ten_seconds("a dropped receipt", move || {
        while w.written() < 2 {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    slept = writer.asleep_since(slept);

    // Held while a profile is (a deletion): it wakes the thread first.
    let w = Arc::clone(&writer);
    let held = within_ten_seconds("a receipt settled holding a profile", move || {
        crate::journal::settle_holding(Some(w.append_scoped(framed(), Scope::Change)))
    });
    assert!(held.is_ok());
    slept = writer.asleep_since(slept);

    // A barrier behind an append keeps its place (the awaited wake again).
    let w = Arc::clone(&writer);
    let barrier = within_ten_seconds("a barrier", move || {
        let _pending = w.append_scoped(framed(), Scope::Change);
        block_on(w.barrier())
    });
    assert!(barrier.is_ok());
    assert_eq!(writer.written(), 4);
    slept = writer.asleep_since(slept);

    // A blocking sender on a leader, which may not write itself (commits
    // stay on the thread): helping wakes the thread instead.
    writer.set_replication(Replication::Leader(Arc::new(Log::default())));
    let w = Arc::clone(&writer);
    let led = within_ten_seconds("a leader's blocking sender", move || {
        answered_by_polling(&w, w.append_scoped(framed(), Scope::Change))
    });
    assert!(led.is_ok());
    assert_eq!(writer.written(), 5);
    slept = writer.asleep_since(slept);

    // A batch on a leader that waits for a busy profile first: its
    // commit begins before it settles.
    let receipt = writer.append_scoped(framed(), Scope::Change);
    writer.begin_writing();
    let w = Arc::clone(&writer);
    within_ten_seconds("a leader's batch begun before settling", move || {
        while w.written() < 6 {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    drop(receipt);
    writer.asleep_since(slept);

    // Stopping wakes it too. (Its handle is leaked if not: dropping it
    // would wait for the thread as well, and hang instead of failing.)
    let (tx, rx) = std::sync::mpsc::channel();
    let w = Arc::clone(&writer);
    std::thread::spawn(move || {
        w.stop();
        let _ = tx.send(());
    });
    if rx.recv_timeout(Duration::from_secs(10)).is_err() {
        std::mem::forget(writer);
        panic!("stopping: the writer thread did not stop within 10 s");
    }
}

#[test]
fn an_appends_buffer_is_kept_for_a_later_one_unless_it_is_large() {
    let (_dir, path) = temp_segment("spare");
    let writer = Writer::start(&path, FsyncPolicy::Never, None).unwrap();
    let mut bytes = writer.buffer(100);
    record::encode(&Record::Probe, &mut bytes);
    let (kept, capacity) = (bytes.as_ptr(), bytes.capacity());
    assert!(block_on(writer.append_scoped(bytes, Scope::Local)).is_ok());
    // The next append encodes into the same memory, emptied.
    let again = writer.buffer(capacity);
    assert!(again.is_empty());
    assert_eq!((again.as_ptr(), again.capacity()), (kept, capacity));
    // A buffer larger than an ordinary batch's (an import's) is not kept.
    let mut large = writer.buffer(SPARE_CAPACITY + 1);
    record::encode(&Record::Probe, &mut large);
    assert!(block_on(writer.append_scoped(large, Scope::Local)).is_ok());
    assert!(writer.buffer(0).capacity() == 0);
    writer.stop();
}
