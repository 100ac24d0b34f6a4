//! Durability: what the engine acknowledged survives restart (clean or not),
//! torn and corrupt journals are repaired, snapshots compact the log.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::executor::block_on;
use numpool::test_util::ManualClock;
use numpool::{
    CapacityUpdate, DeliveryOutcome, Engine, EngineConfig, Error, FsyncPolicy, JournalConfig,
    NewProfile, NumberStatus, PhoneNumber, ProfileId, ProfileUpdate, Reason, SettingsPatch,
    SettingsUpdate, StartError, Timestamp,
};
use tempfile::TempDir;

const DAY: u64 = 24 * 3600;

fn n(s: &str) -> PhoneNumber {
    PhoneNumber::parse_sender(s).unwrap()
}

fn to(i: u64) -> PhoneNumber {
    PhoneNumber::from_u64(14_155_550_000 + i).unwrap()
}

/// A data directory for the test `name`, removed when dropped.
fn temp_dir(name: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("numpool-durability-{name}-"))
        .tempdir()
        .unwrap()
}

fn open(dir: &Path, clock: &Arc<ManualClock>) -> Engine {
    let config = EngineConfig {
        journal: Some(JournalConfig {
            dir: dir.to_path_buf(),
            fsync: FsyncPolicy::Never,
            snapshot_every: None,
        }),
        expire_tick: Duration::from_secs(3600),
        ..EngineConfig::default()
    };
    Engine::start_with_clock(config, clock.clone()).unwrap()
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)))
}

fn sticky_profile(e: &Engine, numbers: &[&str]) -> ProfileId {
    block_on(async {
        let p = e
            .create_profile(NewProfile {
                name: "durable".into(),
                whitelisted_destinations: vec!["US".into()],
                number_pool_settings: SettingsUpdate::Merge(SettingsPatch {
                    sticky_sender: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap();
        for number in numbers {
            e.assign_number(n(number), Some(p.id)).await.unwrap();
        }
        p.id
    })
}

fn mapped(e: &Engine, p: ProfileId, r: PhoneNumber) -> Option<PhoneNumber> {
    block_on(e.mapping(p, r)).unwrap().map(|m| m.from)
}

fn last_segment(dir: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    segs.pop().unwrap()
}

#[test]
fn a_clean_restart_keeps_everything() {
    let dir = temp_dir("clean");
    let c = clock();
    let e = open(dir.path(), &c);
    let p = sticky_profile(&e, &["+13125550001", "+13125550002", "+18005550003"]);
    block_on(e.update_profile(
        p,
        ProfileUpdate {
            name: Some("renamed".into()),
            number_pool_settings: SettingsUpdate::Merge(SettingsPatch {
                toll_free_weight: Some(2.0),
                ..Default::default()
            }),
            ..Default::default()
        },
    ))
    .unwrap();
    let senders: Vec<PhoneNumber> = (0..50)
        .map(|i| e.send_now(p, to(i)).unwrap().sender)
        .collect();
    block_on(e.pin(p, to(99), n("+13125550002"))).unwrap();
    for _ in 0..20 {
        block_on(e.report_outcome(
            n("+13125550001"),
            DeliveryOutcome {
                delivered: false,
                spam: false,
            },
        ))
        .unwrap();
    }
    let before = e.profile(p).unwrap();
    let numbers_before = block_on(e.numbers(Some(p))).unwrap();
    block_on(e.shutdown());

    let e = open(dir.path(), &c);
    assert_eq!(e.profile(p).unwrap(), before);
    // Queue positions restart empty (the README says so); the rest is kept.
    let without_queues = |mut all: Vec<NumberStatus>| {
        for s in &mut all {
            s.capacity.as_mut().unwrap().wait = Duration::ZERO;
        }
        all
    };
    let numbers_after = block_on(e.numbers(Some(p))).unwrap();
    assert_eq!(
        without_queues(numbers_after.clone()),
        without_queues(numbers_before),
        "numbers, ids, health, today's exact counts"
    );
    let sent: u32 = numbers_after
        .iter()
        .map(|s| s.capacity.unwrap().messages_today)
        .sum();
    assert_eq!(sent, 50);
    assert!(numbers_after.iter().any(|s| s.unhealthy));
    for (i, s) in senders.iter().enumerate() {
        assert_eq!(mapped(&e, p, to(i as u64)), Some(*s), "recipient {i}");
        let again = e.send_now(p, to(i as u64)).unwrap();
        assert_eq!((again.sender, again.reason), (*s, Reason::Sticky));
    }
    let pin = block_on(e.mapping(p, to(99))).unwrap().unwrap();
    assert!(pin.pinned);
    block_on(e.shutdown());
}

#[test]
fn disabling_sticky_deletion_and_number_removal_survive_restart() {
    let dir = temp_dir("removals");
    let c = clock();
    let e = open(dir.path(), &c);
    let a = sticky_profile(&e, &["+13125550001", "+13125550002"]);
    let b = sticky_profile(&e, &["+14155550009"]);
    let first = e.send_now(a, to(1)).unwrap().sender;
    e.send_now(a, to(2)).unwrap();
    e.send_now(b, to(3)).unwrap();
    // Remove the sender of to(1): its mapping goes; to(2)'s stays.
    block_on(e.assign_number(first, None)).unwrap();
    // Profile b: sticky off clears, then on again.
    for sticky in [false, true] {
        block_on(e.update_profile(
            b,
            ProfileUpdate {
                number_pool_settings: SettingsUpdate::Merge(SettingsPatch {
                    sticky_sender: Some(sticky),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ))
        .unwrap();
    }
    let c2 = block_on(async {
        e.create_profile(NewProfile {
            name: "doomed".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .id
    });
    block_on(e.assign_number(n("+17735550005"), Some(c2))).unwrap();
    block_on(e.delete_profile(c2)).unwrap();
    let kept = mapped(&e, a, to(2));
    block_on(e.shutdown());

    let e = open(dir.path(), &c);
    assert_eq!(mapped(&e, a, to(1)), None);
    assert_eq!(mapped(&e, a, to(2)), kept);
    assert_eq!(mapped(&e, b, to(3)), None, "sticky off cleared it");
    assert!(e.profile(c2).is_err());
    assert_eq!(e.owner(first), None);
    assert_eq!(e.owner(n("+17735550005")), None);
    assert!(e.number_record(n("+17735550005")).is_some());
    block_on(e.shutdown());
}

#[test]
fn expired_mappings_are_not_resurrected_and_touches_are_coarse() {
    let dir = temp_dir("expiry");
    let c = clock();
    let e = open(dir.path(), &c);
    let p = sticky_profile(&e, &["+13125550001", "+13125550002"]);
    e.send_now(p, to(1)).unwrap();
    e.send_now(p, to(2)).unwrap();
    // to(2) keeps being used: a hit every 25 s for 10 minutes.
    for _ in 0..24 {
        c.advance(Duration::from_secs(25));
        e.send_now(p, to(2)).unwrap();
    }
    let truth = block_on(e.mapping(p, to(2))).unwrap().unwrap().last_used_at;
    // Killed without a clean shutdown: drop the engine's writer by leaking nothing.
    block_on(e.shutdown());
    let e = open(dir.path(), &c);
    let recovered = block_on(e.mapping(p, to(2))).unwrap().unwrap().last_used_at;
    assert!(
        recovered <= truth && truth - recovered < 60,
        "truth {truth}, recovered {recovered}"
    );
    block_on(e.shutdown());
    // Eight days later, to(1)'s mapping has expired: recovery must not bring it back.
    c.advance(Duration::from_secs(8 * DAY));
    let e = open(dir.path(), &c);
    assert_eq!(mapped(&e, p, to(1)), None);
    assert_eq!(e.send_now(p, to(1)).unwrap().reason, Reason::Weighted);
    block_on(e.shutdown());
}

#[test]
fn a_torn_tail_is_truncated_and_everything_before_it_kept() {
    let dir = temp_dir("torn");
    let c = clock();
    let e = open(dir.path(), &c);
    let p = sticky_profile(&e, &["+13125550001", "+13125550002"]);
    let senders: Vec<_> = (0..10)
        .map(|i| e.send_now(p, to(i)).unwrap().sender)
        .collect();
    block_on(e.shutdown());
    // A half-written record at the end, as a crash mid-write leaves it.
    let seg = last_segment(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    let good = bytes.len();
    bytes.extend_from_slice(&[40, 0, 0, 0, 1, 2, 3, 4, 9, 9]);
    std::fs::write(&seg, &bytes).unwrap();
    let e = Engine::start_with_clock(
        EngineConfig {
            journal: Some(JournalConfig::new(dir.path())),
            ..EngineConfig::default()
        },
        c.clone(),
    )
    .unwrap();
    let report = e.recovery();
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len() as usize,
        good,
        "truncated at the last good record"
    );
    // The cut bytes are kept beside the log, not thrown away.
    let side = PathBuf::from(format!("{}.torn-{good}", seg.display()));
    assert_eq!(
        std::fs::read(&side).unwrap(),
        [40, 0, 0, 0, 1, 2, 3, 4, 9, 9]
    );
    for (i, s) in senders.iter().enumerate() {
        assert_eq!(mapped(&e, p, to(i as u64)), Some(*s));
    }
    // And it keeps journaling after the repair.
    let s = e.send_now(p, to(50)).unwrap().sender;
    block_on(e.shutdown());
    let e = open(dir.path(), &c);
    assert_eq!(mapped(&e, p, to(50)), Some(s));
    block_on(e.shutdown());
}

#[test]
fn a_flipped_byte_mid_log_stops_start_up_and_repair_keeps_the_rest() {
    let dir = temp_dir("flipped");
    let c = clock();
    let e = open(dir.path(), &c);
    let p = sticky_profile(&e, &["+13125550001", "+13125550002"]);
    e.send_now(p, to(1)).unwrap();
    let size_after_first = std::fs::metadata(last_segment(dir.path())).unwrap().len() as usize;
    e.send_now(p, to(2)).unwrap();
    e.send_now(p, to(3)).unwrap();
    block_on(e.shutdown());
    let seg = last_segment(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[size_after_first + 12] ^= 0x20; // inside the record of to(2)
    std::fs::write(&seg, &bytes).unwrap();
    let config = |dir: &Path| EngineConfig {
        journal: Some(JournalConfig {
            dir: dir.to_path_buf(),
            fsync: FsyncPolicy::Never,
            snapshot_every: None,
        }),
        ..EngineConfig::default()
    };
    // Valid records follow the damage: start-up stops, naming file and
    // offset, and changes nothing.
    let refused = Engine::start_with_clock(config(dir.path()), c.clone()).err();
    match refused {
        Some(StartError::Damaged { path, offset, .. }) => {
            assert_eq!(path, seg);
            assert_eq!(offset as usize, size_after_first);
        }
        other => panic!("expected Damaged, got {other:?}"),
    }
    assert_eq!(std::fs::read(&seg).unwrap(), bytes, "nothing was changed");
    // The repair moves the damaged record aside and keeps the rest.
    let report = numpool::repair(dir.path()).unwrap();
    assert_eq!(report.moved.len(), 1);
    let moved = &report.moved[0];
    assert_eq!(moved.offset as usize, size_after_first);
    assert_eq!(
        std::fs::read(&moved.side_file).unwrap(),
        bytes[size_after_first..size_after_first + moved.len]
    );
    let e = open(dir.path(), &c);
    assert!(mapped(&e, p, to(1)).is_some());
    assert_eq!(mapped(&e, p, to(2)), None, "the damaged record is gone");
    assert!(
        mapped(&e, p, to(3)).is_some(),
        "records after the damage are kept"
    );
    block_on(e.shutdown());
}

#[test]
fn snapshots_compact_the_log_and_recovery_uses_snapshot_plus_tail() {
    let dir = temp_dir("snapshot");
    let c = clock();
    let e = open(dir.path(), &c);
    let p = sticky_profile(&e, &["+13125550001", "+13125550002", "+13125550003"]);
    let early: Vec<_> = (0..100)
        .map(|i| e.send_now(p, to(i)).unwrap().sender)
        .collect();
    for _ in 0..20 {
        block_on(e.report_outcome(
            n("+13125550003"),
            DeliveryOutcome {
                delivered: false,
                spam: false,
            },
        ))
        .unwrap();
    }
    let first = block_on(e.snapshot_now()).unwrap();
    let late: Vec<_> = (100..150)
        .map(|i| e.send_now(p, to(i)).unwrap().sender)
        .collect();
    let second = block_on(e.snapshot_now()).unwrap();
    let tail: Vec<_> = (150..160)
        .map(|i| e.send_now(p, to(i)).unwrap().sender)
        .collect();
    block_on(e.shutdown());
    // Only the last two snapshots and the segments they need remain.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.contains(&format!("{:020}", first - 1))),
        "{names:?}"
    );
    assert!(names
        .iter()
        .any(|n| n.contains(&format!("snapshot-{second:020}"))));

    let e = Engine::start_with_clock(
        EngineConfig {
            journal: Some(JournalConfig::new(dir.path())),
            ..EngineConfig::default()
        },
        c.clone(),
    )
    .unwrap();
    let report = e.recovery().clone();
    assert_eq!(report.snapshot, Some(second));
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    for (i, s) in early.iter().chain(&late).chain(&tail).enumerate() {
        assert_eq!(mapped(&e, p, to(i as u64)), Some(*s), "recipient {i}");
    }
    let health = block_on(e.number(n("+13125550003"))).unwrap();
    assert_eq!(
        health.health.finalized, 20,
        "health counted once, not twice"
    );
    block_on(e.shutdown());

    // A damaged newest snapshot: recovery falls back to the previous one.
    let snap = dir.path().join(format!("snapshot-{second:020}.bin"));
    let mut bytes = std::fs::read(&snap).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xFF;
    std::fs::write(&snap, &bytes).unwrap();
    let e = Engine::start_with_clock(
        EngineConfig {
            journal: Some(JournalConfig::new(dir.path())),
            ..EngineConfig::default()
        },
        c.clone(),
    )
    .unwrap();
    let report = e.recovery().clone();
    assert_eq!(report.snapshot, Some(first));
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    for (i, s) in early.iter().chain(&late).chain(&tail).enumerate() {
        assert_eq!(
            mapped(&e, p, to(i as u64)),
            Some(*s),
            "recipient {i} after fallback"
        );
    }
    block_on(e.shutdown());
}

#[test]
fn a_snapshot_taken_during_traffic_loses_nothing() {
    let dir = temp_dir("traffic");
    let c = clock();
    let e = open(dir.path(), &c);
    let profiles: Vec<ProfileId> = (0..3)
        .map(|k| {
            sticky_profile(
                &e,
                &[&format!("+1312555000{k}"), &format!("+1773555000{k}")],
            )
        })
        .collect();
    for i in 0..3000u64 {
        e.send_now(profiles[(i % 3) as usize], to(i)).unwrap();
    }
    let acked = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        let traffic = s.spawn(|| {
            for i in 3000..9000u64 {
                let p = profiles[(i % 3) as usize];
                // New recipients, and hits on old ones, while the snapshot runs.
                let r = if i % 2 == 0 { to(i) } else { to(i % 3000) };
                let sel = e.send_now(p, r).unwrap();
                acked.lock().unwrap().push((p, r, sel.sender));
            }
        });
        for _ in 0..3 {
            block_on(e.snapshot_now()).unwrap();
        }
        traffic.join().unwrap();
    });
    block_on(e.shutdown());
    let e = open(dir.path(), &c);
    for (p, r, sender) in acked.into_inner().unwrap() {
        assert_eq!(mapped(&e, p, r), Some(sender), "{r}");
    }
    block_on(e.shutdown());
}

/// Waits (bounded) until `cond` holds, checking every millisecond.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_change_the_journal_refused_leaves_no_trace_and_writing_resumes_by_itself() {
    let dir = temp_dir("refused");
    let c = clock();
    let config = EngineConfig {
        journal: Some(JournalConfig {
            dir: dir.path().to_path_buf(),
            fsync: FsyncPolicy::Always,
            snapshot_every: None,
        }),
        // The housekeeper heals every tick.
        expire_tick: Duration::from_millis(2),
        ..EngineConfig::default()
    };
    let e = Engine::start_with_clock(config.clone(), c.clone()).unwrap();
    let p = sticky_profile(&e, &["+13125550001", "+13125550002"]);
    let kept = e.send_now(p, to(1)).unwrap().sender;
    e.inject_journal_fault(true);
    // A new mapping cannot be made durable: refused (the async call, whose
    // selection is made before its write fails, as the blocking one).
    assert_eq!(block_on(e.send(p, to(2))), Err(numpool::Error::Unavailable));
    // Retrying gets the same refusal, never a "sticky" answer built on the
    // refused mapping; so does every other change.
    assert_eq!(e.send_now(p, to(2)), Err(numpool::Error::Unavailable));
    assert_eq!(
        block_on(e.assign_number(n("+13125550003"), Some(p))),
        Err(numpool::Error::Unavailable)
    );
    assert!(!e.is_ready());
    assert!(e.journal_error().is_some());
    // No read shows the refused mapping: until the state is reloaded a read
    // of it is refused too; after, it is gone. The others stay.
    eventually("the refused mapping is gone", || {
        match block_on(e.mapping(p, to(2))) {
            Err(err) => {
                assert_eq!(err, numpool::Error::Unavailable);
                false
            }
            Ok(m) => {
                assert_eq!(m, None, "a read showed the refused mapping");
                true
            }
        }
    });
    assert_eq!(mapped(&e, p, to(1)), Some(kept));
    assert_eq!(e.number_record(n("+13125550003")), None);
    // The disk frees up: writing resumes without a restart.
    e.inject_journal_fault(false);
    eventually("the engine takes changes again", || e.is_ready());
    // The reloaded state's map is the one sends look into before the lock
    // (and whatever they find there is checked): the kept mapping still
    // answers, twice over, in both call styles.
    for _ in 0..2 {
        assert_eq!(e.send_now(p, to(1)).unwrap().sender, kept);
        assert_eq!(block_on(e.send(p, to(1))).unwrap().sender, kept);
    }
    let later = e.send_now(p, to(3)).unwrap().sender;
    block_on(e.shutdown());
    // After a restart: what was acknowledged, and nothing refused.
    let e = Engine::start_with_clock(config, c).unwrap();
    assert_eq!(mapped(&e, p, to(1)), Some(kept));
    assert_eq!(mapped(&e, p, to(2)), None);
    assert_eq!(mapped(&e, p, to(3)), Some(later));
    assert!(
        e.recovery().warnings.is_empty(),
        "{:?}",
        e.recovery().warnings
    );
    block_on(e.shutdown());
}

/// Imports `rows` recipients (from `to(10_000)` on) into `p`, sent a
/// minute ago by `from`: the error of a push or of the end, if any.
fn import_rows(e: &Engine, p: ProfileId, from: &str, rows: u64) -> Result<u64, Error> {
    block_on(async {
        let mut import = e.import_history(p).await?;
        let sent_at = import.now() - 60;
        for i in 0..rows {
            import
                .push(numpool::HistoryRow {
                    to: to(10_000 + i),
                    from: n(from),
                    sent_at,
                    created_at: None,
                    pinned: false,
                })
                .await?;
        }
        Ok(import.finish().await?.mapped)
    })
}

#[test]
fn an_import_the_journal_refuses_is_refused_and_leaves_no_trace() {
    // An import's batches go to the journal while later ones are applied:
    // its answer must still wait for every one of them. Less than a batch
    // (only the end's wait can see the refusal), a few batches, and more
    // than it lets go ahead unwaited.
    for rows in [5u64, 3 * 1024 + 5, 20 * 1024 + 5] {
        let dir = temp_dir("import-refused");
        let config = EngineConfig {
            journal: Some(JournalConfig {
                dir: dir.path().to_path_buf(),
                fsync: FsyncPolicy::Interval(Duration::from_millis(10)),
                snapshot_every: None,
            }),
            expire_tick: Duration::from_millis(2),
            ..EngineConfig::default()
        };
        let e = Engine::start_with_clock(config.clone(), clock()).unwrap();
        let p = sticky_profile(&e, &["+13125550001"]);
        let checked = [0, 1024.min(rows - 1), rows - 1];
        e.inject_journal_fault(true);
        assert_eq!(
            import_rows(&e, p, "+13125550001", rows),
            Err(Error::Unavailable),
            "{rows} rows"
        );
        e.inject_journal_fault(false);
        eventually("the engine takes changes again", || e.is_ready());
        for i in checked {
            assert_eq!(mapped(&e, p, to(10_000 + i)), None, "row {i} of {rows}");
        }
        // Written whole once the disk is back, and kept over a restart.
        assert_eq!(import_rows(&e, p, "+13125550001", rows), Ok(rows));
        block_on(e.shutdown());
        let e = Engine::start_with_clock(config, clock()).unwrap();
        for i in checked {
            assert_eq!(mapped(&e, p, to(10_000 + i)), Some(n("+13125550001")));
        }
        block_on(e.shutdown());
    }
}

#[test]
fn a_second_engine_on_the_same_directory_is_refused_and_named() {
    let dir = temp_dir("locked");
    let c = clock();
    let first = open(dir.path(), &c);
    let second = Engine::start_with_clock(
        EngineConfig {
            journal: Some(JournalConfig::new(dir.path())),
            ..EngineConfig::default()
        },
        c.clone(),
    );
    match second {
        Err(StartError::Locked { holder, .. }) => {
            assert_eq!(holder, std::process::id().to_string())
        }
        other => panic!("expected Locked, got {:?}", other.err()),
    }
    // Released on shutdown: the directory can be opened again.
    block_on(first.shutdown());
    let again = open(dir.path(), &c);
    block_on(again.shutdown());
}

/// Copies a data directory as a crash would leave it: what was written,
/// without the shutdown's last records.
fn copy_as_crashed(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

#[test]
fn daily_counts_survive_a_crash_and_err_on_the_side_of_the_cap() {
    let dir = temp_dir("daily");
    let crashed = temp_dir("daily-crashed");
    let c = clock();
    let e = open(dir.path(), &c);
    let p = sticky_profile(&e, &["+13125550001", "+13125550002"]);
    let limit = CapacityUpdate {
        daily_message_limit: Some(Some(100)),
        ..Default::default()
    };
    block_on(e.update_profile(
        p,
        ProfileUpdate {
            capacity: limit,
            ..Default::default()
        },
    ))
    .unwrap();
    for i in 0..40 {
        e.send_now(p, to(i)).unwrap();
    }
    // A snapshot holds exact counts; the log after it holds reservations.
    block_on(e.snapshot_now()).unwrap();
    for i in 40..72 {
        e.send_now(p, to(i)).unwrap();
    }
    copy_as_crashed(dir.path(), crashed.path());
    block_on(e.shutdown());

    // After the crash: the profile's count is reserved in blocks of 5 (a
    // twentieth of its limit), so 72 sent reads as 75: 25 more today, never
    // 29. New recipients are exact (each was a journaled mapping).
    let e = open(crashed.path(), &c);
    let numbers = block_on(e.numbers(Some(p))).unwrap();
    let new: Vec<u32> = numbers
        .iter()
        .map(|s| s.capacity.unwrap().new_recipients_today)
        .collect();
    assert_eq!(new, [36, 36]);
    for s in &numbers {
        let messages = s.capacity.unwrap().messages_today;
        // A sender's count only informs: reserved in blocks of 1024.
        assert!((36..36 + 1024).contains(&messages), "{messages}");
    }
    let allowed = (0..40)
        .take_while(|i| e.send_now(p, to(1000 + i)).is_ok())
        .count();
    assert_eq!(allowed, 25);
    assert_eq!(e.send_now(p, to(0)).unwrap_err(), Error::DailyLimit);
    block_on(e.shutdown());

    // A clean restart keeps exact counts: 72 sent, 28 left.
    let e = open(dir.path(), &c);
    let allowed = (0..40)
        .take_while(|i| e.send_now(p, to(1000 + i)).is_ok())
        .count();
    assert_eq!(allowed, 28);
    // The next day counts from zero.
    c.advance(Duration::from_secs(DAY));
    assert!(e.send_now(p, to(0)).is_ok());
    block_on(e.shutdown());
}

#[test]
fn sender_queues_survive_a_restart_and_a_crash() {
    let dir = temp_dir("queues");
    let crashed = temp_dir("queues-crashed");
    let c = clock();
    let config = |dir: &Path| EngineConfig {
        journal: Some(JournalConfig {
            dir: dir.to_path_buf(),
            fsync: FsyncPolicy::Never,
            snapshot_every: None,
        }),
        expire_tick: Duration::from_secs(3600),
        ..EngineConfig::default()
    };
    let e = Engine::start_with_clock(config(dir.path()), c.clone()).unwrap();
    let p = block_on(async {
        let p = e
            .create_profile(NewProfile {
                number_pool_settings: SettingsUpdate::Merge(SettingsPatch::default()),
                ..Default::default()
            })
            .await
            .unwrap()
            .id;
        for s in ["+13125550001", "+13125550002", "+13125550003"] {
            e.assign_number(n(s), Some(p)).await.unwrap();
        }
        p
    });
    let waits = |e: &Engine| -> Vec<Duration> {
        block_on(e.numbers(Some(p)))
            .unwrap()
            .iter()
            .map(|s| s.capacity.unwrap().wait)
            .collect()
    };
    // 30 messages over 3 long codes at 1 a second: 10 s of queue each.
    for i in 0..30 {
        e.send_now(p, to(i)).unwrap();
    }
    assert_eq!(waits(&e), vec![Duration::from_secs(10); 3]);
    // A snapshot holds them; 6 more after it are in the log.
    block_on(e.snapshot_now()).unwrap();
    for i in 30..36 {
        e.send_now(p, to(i)).unwrap();
    }
    let before = waits(&e);
    assert_eq!(before, vec![Duration::from_secs(12); 3]);
    // Written within 100 ms, without a write per send.
    std::thread::sleep(Duration::from_millis(300));
    copy_as_crashed(dir.path(), crashed.path());
    block_on(e.shutdown());
    for dir in [crashed.path(), dir.path()] {
        let e = Engine::start_with_clock(config(dir), c.clone()).unwrap();
        assert_eq!(waits(&e), before, "{}", dir.display());
        // The next message takes its place behind them.
        assert_eq!(
            e.send_now(p, to(100)).unwrap().wait,
            Duration::from_secs(12)
        );
        block_on(e.shutdown());
    }
}
