//! Unit tests of `send.rs`.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::executor::block_on;
use parking_lot::{Condvar, Mutex};

use crate::clock::ManualClock;
use crate::journal::{Replication, Replicator};
use crate::{Dispatch, Engine, EngineConfig, JournalConfig, PhoneNumber, ProfileId, Timestamp};

/// A replicated log that holds every commit until opened.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
    position: AtomicU64,
    /// A commit has come to the gate.
    reached: AtomicBool,
    /// Commits let through the gate fail (etcd did not answer).
    refuse: AtomicBool,
}

/// Opens the gate when dropped: a failed assertion must not leave the
/// journal writer waiting forever (the engine could not stop).
struct OpenOnDrop(Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

impl Gate {
    fn set(&self, open: bool) {
        *self.open.lock() = open;
        self.opened.notify_all();
    }
}

impl Replicator for Gate {
    fn commit(&self, _: &[u8]) -> Result<u64, String> {
        self.reached.store(true, Ordering::Release);
        let mut open = self.open.lock();
        while !*open {
            self.opened.wait(&mut open);
        }
        if self.refuse.load(Ordering::Acquire) {
            return Err("etcd did not answer (test)".into());
        }
        Ok(self.position.fetch_add(1, Ordering::AcqRel) + 1)
    }

    fn probe(&self) -> bool {
        true
    }

    fn abandon(&self) {}
}

/// An engine journaling to a new temporary directory (removed when the
/// returned guard is dropped), its clock standing still.
fn journaled_engine(prefix: &str) -> (tempfile::TempDir, Engine) {
    let (dir, engine, _) = journaled_engine_with(prefix, Dispatch::CallerRuns);
    (dir, engine)
}

/// A journaled engine whose requests reach profiles as `dispatch` says,
/// with its clock.
fn journaled_engine_with(
    prefix: &str,
    dispatch: Dispatch,
) -> (tempfile::TempDir, Engine, Arc<ManualClock>) {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
    let config = EngineConfig {
        journal: Some(JournalConfig::new(dir.path())),
        dispatch,
        ..EngineConfig::default()
    };
    let engine = Engine::start_with_clock(config, clock.clone()).unwrap();
    (dir, engine, clock)
}

/// A sticky profile named `name` with `numbers` in its pool.
async fn sticky_profile(engine: &Engine, name: &str, numbers: &[&str]) -> ProfileId {
    let numbers = numbers.iter().map(|n| PhoneNumber::parse_e164(n).unwrap());
    crate::test_util::sticky_profile(engine, name, numbers)
        .await
        .unwrap()
}

fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    let waker = futures::task::noop_waker();
    std::pin::Pin::new(f).poll(&mut Context::from_waker(&waker))
}

#[test]
fn a_reply_waits_for_its_recipients_unwritten_mapping_and_for_nothing_else() {
    let (_dir, engine) = journaled_engine("numpool-unsettled-");
    let number = |s: &str| PhoneNumber::parse_e164(s).unwrap();
    let (a, b) = (number("+14155550001"), number("+14155550002"));
    let profile = block_on(async {
        let p = sticky_profile(&engine, "gated", &["+13125550001", "+13125550002"]).await;
        // b's sends: the profile's daily sends #1 to #1022, all written
        // (a's makes #1023, the check on b below #1024).
        for _ in 0..1022 {
            engine.send(p, b).await.unwrap();
        }
        p
    });
    // From now on every change waits in the gate before it is written.
    let gate = Arc::new(Gate::default());
    let _open_on_exit = OpenOnDrop(Arc::clone(&gate));
    let writer = engine.journal_writer().unwrap();
    writer.set_replication(Replication::Leader(gate.clone()));
    let first = {
        let engine = engine.clone();
        std::thread::spawn(move || block_on(engine.send(profile, a)))
    };
    while !gate.reached.load(Ordering::Acquire) {
        std::thread::yield_now();
    }
    // A sticky hit on b's mapping (written long ago) is answered with
    // a's still in the gate. (Bounded: a wrong answer would wait for the
    // gate forever.) Once it is, a's request has let the profile go.
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let engine = engine.clone();
        std::thread::spawn(move || tx.send(block_on(engine.send(profile, b))));
    }
    let other = rx.recv_timeout(Duration::from_secs(30));
    assert!(matches!(other, Ok(Ok(_))), "{other:?}");
    // A sticky hit on a's mapping, still in the gate, is not answered,
    // neither when it starts a block of daily counts (the profile's
    // send #1025: its own record needs no wait without a cap, what it
    // read does)...
    let mut again = Box::pin(engine.send(profile, a));
    assert!(poll_once(&mut again).is_pending());
    // ...nor when it writes nothing.
    let mut third = Box::pin(engine.send(profile, a));
    assert!(poll_once(&mut third).is_pending());
    gate.set(true);
    let first = first.join().unwrap().unwrap();
    for reply in [block_on(again).unwrap(), block_on(third).unwrap()] {
        assert_eq!(reply.sender, first.sender);
    }
    block_on(engine.shutdown());
}

/// Runs `f` on a thread of its own and returns its answer, or `None`
/// if it did not answer within `within`.
fn answer_within<R: Send + 'static>(
    within: Duration,
    f: impl FnOnce() -> R + Send + 'static,
) -> Option<R> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(within).ok()
}

#[test]
fn a_read_waits_for_the_unwritten_state_it_shows_and_for_nothing_else() {
    let (_dir, engine) = journaled_engine("numpool-unsettled-read-");
    let number = |s: &str| PhoneNumber::parse_e164(s).unwrap();
    let (a, b) = (number("+14155550001"), number("+14155550002"));
    let (profile, other) = block_on(async {
        let ids = [
            sticky_profile(&engine, "gated", &["+13125550001"]).await,
            sticky_profile(&engine, "other", &["+13125550002"]).await,
        ];
        engine.send(ids[0], b).await.unwrap();
        engine.send(ids[1], b).await.unwrap();
        (ids[0], ids[1])
    });
    let gate = Arc::new(Gate::default());
    let _open_on_exit = OpenOnDrop(Arc::clone(&gate));
    let writer = engine.journal_writer().unwrap();
    writer.set_replication(Replication::Leader(gate.clone()));
    // a's new mapping waits in the gate (as for an etcd commit).
    let first = {
        let engine = engine.clone();
        std::thread::spawn(move || block_on(engine.send(profile, a)))
    };
    while !gate.reached.load(Ordering::Acquire) {
        std::thread::yield_now();
    }
    let bounded = Duration::from_secs(30);
    // What is written is read at once: b's mapping, the other profile.
    let e = engine.clone();
    let read_b = answer_within(bounded, move || block_on(e.mapping(profile, b)));
    assert!(matches!(read_b, Some(Ok(Some(_)))), "{read_b:?}");
    let e = engine.clone();
    let listed = answer_within(bounded, move || {
        block_on(e.mappings_page(other, None, 10, None))
    });
    assert!(
        matches!(&listed, Some(Ok(page)) if page.mappings.len() == 1),
        "{listed:?}"
    );
    // What a's mapping shows waits for its write: the mapping itself, a
    // page of the profile's mappings, its counters, its senders' state.
    let mut mapping = Box::pin(engine.mapping(profile, a));
    assert!(poll_once(&mut mapping).is_pending());
    let mut page = Box::pin(engine.mappings_page(profile, None, 10, None));
    assert!(poll_once(&mut page).is_pending());
    let mut stats = Box::pin(engine.profile_stats(profile));
    assert!(poll_once(&mut stats).is_pending());
    let mut senders = Box::pin(engine.numbers(Some(profile)));
    assert!(poll_once(&mut senders).is_pending());
    gate.set(true);
    let first = first.join().unwrap().unwrap();
    assert_eq!(
        block_on(mapping).unwrap().map(|m| m.from),
        Some(first.sender)
    );
    assert_eq!(block_on(page).unwrap().mappings.len(), 2);
    block_on(stats).unwrap();
    block_on(senders).unwrap();
    // A profile's record shows a change only once it is written.
    gate.set(false);
    gate.reached.store(false, Ordering::Release);
    let renamed = {
        let engine = engine.clone();
        std::thread::spawn(move || {
            block_on(engine.update_profile(
                profile,
                crate::ProfileUpdate {
                    name: Some("renamed".into()),
                    ..Default::default()
                },
            ))
        })
    };
    while !gate.reached.load(Ordering::Acquire) {
        std::thread::yield_now();
    }
    assert_eq!(engine.profile(profile).unwrap().name, "gated");
    let mut page = Box::pin(engine.mappings_page(profile, None, 10, None));
    assert!(
        poll_once(&mut page).is_pending(),
        "a settings change is the profile's as a whole"
    );
    gate.set(true);
    renamed.join().unwrap().unwrap();
    assert_eq!(engine.profile(profile).unwrap().name, "renamed");
    block_on(page).unwrap();
    block_on(engine.shutdown());
}

#[test]
fn a_read_of_a_change_that_is_then_refused_is_refused_too() {
    let (_dir, engine) = journaled_engine("numpool-refused-read-");
    let to = PhoneNumber::parse_e164("+14155550001").unwrap();
    let profile = block_on(sticky_profile(&engine, "gated", &["+13125550001"]));
    let gate = Arc::new(Gate::default());
    let _open_on_exit = OpenOnDrop(Arc::clone(&gate));
    let writer = engine.journal_writer().unwrap();
    writer.set_replication(Replication::Leader(gate.clone()));
    let send = {
        let engine = engine.clone();
        std::thread::spawn(move || block_on(engine.send(profile, to)))
    };
    while !gate.reached.load(Ordering::Acquire) {
        std::thread::yield_now();
    }
    let mut read = Box::pin(engine.mapping(profile, to));
    assert!(poll_once(&mut read).is_pending());
    // The batch is refused (etcd gone): the read is refused with it,
    // never answered with the mapping that was not made durable.
    gate.refuse.store(true, Ordering::Release);
    gate.set(true);
    assert!(matches!(
        send.join().unwrap(),
        Err(crate::Error::Unavailable)
    ));
    let read = block_on(read);
    assert!(matches!(read, Err(crate::Error::Unavailable)), "{read:?}");
    block_on(engine.shutdown());
}

/// A batch whose only records inform (a new block of daily counts, no cap)
/// is written by its sender once it has let the profile go, and the writer
/// thread is not woken for it. Dropped where it was made, under the
/// profile's lock, such a receipt woke the thread once a group; on two
/// cores the woken thread took a core from a sender.
#[test]
fn a_batch_that_only_informs_is_written_by_its_sender_without_waking_the_writer() {
    let (_dir, engine) = journaled_engine("numpool-informs-");
    let to = PhoneNumber::parse_e164("+14155550001").unwrap();
    let profile = block_on(sticky_profile(&engine, "informs", &["+13125550001"]));
    // The day's send #1: a new mapping and the first block of counts.
    engine.send_now(profile, to).unwrap();
    let writer = engine.journal_writer().unwrap();
    let block = crate::selection::capacity::INFORMING_BLOCK as usize;
    // Each round sends one block of sticky hits (#2 to #1025, #1026 to
    // #2049, ...): its last send begins a block, the round's only record.
    // A round passes if the sender wrote it before answering and the writer
    // thread stayed asleep. Every 100 ms the housekeeper journals the
    // queue ends that moved, which wakes the thread: a round it falls into
    // is tried again. Before the change, every round woke the thread.
    for sync in [true, false] {
        let quiet = (0..5).any(|_| {
            let slept = writer.asleep_since(writer.sleeps().saturating_sub(1));
            let before = writer.written();
            let items = vec![(profile, to); block];
            let results = if sync {
                engine.send_batch_now(&items)
            } else {
                block_on(engine.send_batch(&items))
            };
            assert!(results.iter().all(Result::is_ok));
            let written_by_sender = writer.written() > before;
            std::thread::sleep(Duration::from_millis(20));
            written_by_sender && writer.sleeps() == slept
        });
        assert!(
            quiet,
            "the writer thread woke in every round (sync: {sync})"
        );
    }
    block_on(engine.shutdown());
}

/// Journaled mappings, as (profile, recipient).
type Mapped = Vec<(ProfileId, PhoneNumber)>;

/// The records a journaled engine wrote, by kind: new mappings and
/// touches, each sorted.
fn mapping_records(dir: &std::path::Path) -> (Mapped, Mapped) {
    use crate::journal::record::{decode_ahead, Record};
    let (mut set, mut touched) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "seg") {
            let bytes = std::fs::read(&path).unwrap();
            let header = crate::journal::format::HEADER_LEN;
            decode_ahead(&bytes[header..], |r| match r {
                Record::MappingSet { profile, to, .. } => set.push((profile, to)),
                Record::MappingTouched { profile, to, .. } => touched.push((profile, to)),
                _ => {}
            })
            .unwrap();
        }
    }
    set.sort();
    touched.sort();
    (set, touched)
}

/// A batch over two profiles journals each group's new mappings once (a
/// group's records are its own, none left from the group before: they
/// would be written again after that profile's lock was let go), and its
/// sticky hits once a minute: none again within the minute the mapping
/// was last used, one each once a later minute begins. Both ways a group
/// is served: on the caller's thread, and through the profile's mailbox
/// (an engine that queues every request).
#[test]
fn a_batch_journals_new_mappings_once_and_hits_once_a_minute() {
    for dispatch in [Dispatch::CallerRuns, Dispatch::Mailbox] {
        let (dir, engine, clock) = journaled_engine_with("numpool-group-records-", dispatch);
        let (p, q) = block_on(async {
            let p = sticky_profile(&engine, "p", &["+13125550001"]).await;
            (p, sticky_profile(&engine, "q", &["+13125550002"]).await)
        });
        let items: Vec<_> = (0..40u64)
            .map(|i| {
                let profile = if i % 4 < 2 { p } else { q };
                (profile, PhoneNumber::from_u64(14_155_550_000 + i).unwrap())
            })
            .collect();
        let send = |blocking: bool| {
            let results = if blocking {
                engine.send_batch_now(&items)
            } else {
                block_on(engine.send_batch(&items))
            };
            assert!(results.iter().all(Result::is_ok), "{dispatch:?}");
        };
        // New mappings, then hits in the same minute.
        send(true);
        send(false);
        // A later minute: one touch each, then none for the rest of it.
        clock.advance(Duration::from_secs(61));
        send(false);
        send(true);
        block_on(engine.shutdown());
        let (set, touched) = mapping_records(dir.path());
        let mut expected = items.clone();
        expected.sort();
        assert_eq!(set, expected, "{dispatch:?}: new mappings");
        assert_eq!(touched, expected, "{dispatch:?}: touches");
    }
}

/// The journal's record of a selection: a new mapping always; a sticky
/// hit only when it moved its mapping into a later minute (coarse
/// touches: when that is, `SelectAt::moves_minute`'s test says).
#[test]
fn a_sticky_hit_is_journaled_once_a_minute() {
    use crate::journal::Record;
    use crate::selection::rules::{MappingOutcome, Reason, Selection};
    let profile = ProfileId::new_v4();
    let to = PhoneNumber::from_u64(14_155_550_000).unwrap();
    let at = super::SelectAt::new(1_800_000_056_789);
    let selection = |mapping, touch_due| Selection {
        sender: PhoneNumber::from_u64(13_125_550_001).unwrap(),
        reason: Reason::Sticky,
        mapping,
        wait: Duration::ZERO,
        send_at: Timestamp::from_millis(at.ms),
        touch_due,
        starts_block: false,
    };
    let recorded = |s: Selection| {
        let mut records = Vec::new();
        super::selection_record(profile, to, &s, at, &mut records);
        records
    };
    assert!(recorded(selection(MappingOutcome::Reused, false)).is_empty());
    assert_eq!(
        recorded(selection(MappingOutcome::Reused, true)),
        [Record::MappingTouched {
            profile,
            to,
            last_used: at.secs
        }],
    );
    assert!(recorded(selection(MappingOutcome::None, false)).is_empty());
    assert!(matches!(
        recorded(selection(MappingOutcome::Created, false))[..],
        [Record::MappingSet { created_at, last_used, pinned: false, .. }]
            if created_at == at.secs && last_used == at.secs
    ));
}
