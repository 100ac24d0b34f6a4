//! The [`Engine`]: the `docs/SELECTION.md` scenarios with every request
//! through the profile's mailbox (`tests/semantics.rs` runs them with the
//! caller running each request), then what the runtime adds: concurrency,
//! ordering, backpressure and faults on both paths, batches, shutdown,
//! housekeeping and stats.

mod scenarios;

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::executor::block_on;
use numpool::test_util::ManualClock;
use numpool::{
    CapacityUpdate, DeliveryOutcome, Dispatch, Eligibility, Engine, EngineConfig, Error,
    NewProfile, NoSender, PhoneNumber, ProfileId, ProfileUpdate, Reason, SettingsPatch,
    SettingsUpdate, Timestamp,
};
use parking_lot::Mutex;
use scenarios::backend::ThroughMailbox;

scenario_tests!(ThroughMailbox);

fn n(s: &str) -> PhoneNumber {
    PhoneNumber::parse_sender(s).unwrap()
}

fn recipient(i: u64) -> PhoneNumber {
    PhoneNumber::from_u64(16_465_550_000 + i).unwrap()
}

fn engine(mailbox_bound: usize) -> (Engine, Arc<ManualClock>) {
    engine_dispatching(Dispatch::CallerRuns, mailbox_bound)
}

fn engine_dispatching(dispatch: Dispatch, mailbox_bound: usize) -> (Engine, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
    let config = EngineConfig {
        arbiters: 2,
        mailbox_bound,
        expire_tick: Duration::from_secs(3600),
        dispatch,
        ..EngineConfig::default()
    };
    (
        Engine::start_with_clock(config, clock.clone()).unwrap(),
        clock,
    )
}

fn sticky_profile(engine: &Engine, numbers: &[&str]) -> ProfileId {
    let numbers = numbers.iter().map(|number| n(number));
    block_on(numpool::test_util::sticky_profile(engine, "test", numbers)).unwrap()
}

const NUMBERS: [&str; 4] = [
    "+13125550001",
    "+13125550002",
    "+13125550003",
    "+13125550004",
];

#[test]
fn concurrent_senders_never_see_two_senders_for_one_recipient() {
    let (engine, _) = engine(1 << 16);
    let p = sticky_profile(&engine, &NUMBERS);
    let seen: Vec<Vec<Option<PhoneNumber>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let engine = engine.clone();
                s.spawn(move || {
                    // Each thread walks the same 200 recipients from a different start.
                    let mut seen = vec![None; 200];
                    for i in 0..200 {
                        let k = (i + t * 50) % 200;
                        seen[k as usize] = Some(engine.send_now(p, recipient(k)).unwrap().sender);
                    }
                    seen
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for i in 0..200 {
        let first = seen[0][i];
        assert!(
            seen.iter().all(|s| s[i] == first),
            "recipient {i} saw two senders"
        );
    }
    // And the engine agrees with what the threads saw.
    let mapped = block_on(engine.mapping(p, recipient(7))).unwrap().unwrap();
    assert_eq!(Some(mapped.from), seen[0][7]);
}

/// Holds `p` busy on a request that runs on an engine thread until the
/// returned sender is used; returns once it is running.
fn stall(engine: &Engine, p: ProfileId) -> mpsc::Sender<()> {
    let (release, wait) = mpsc::channel::<()>();
    let (started, running) = mpsc::channel::<()>();
    engine
        .queue_request(p, move || {
            started.send(()).unwrap();
            wait.recv().unwrap();
        })
        .unwrap();
    running.recv().unwrap();
    release
}

#[test]
fn a_full_mailbox_is_refused_at_once_with_overloaded() {
    let (engine, _) = engine(4);
    let p = sticky_profile(&engine, &NUMBERS);
    let release = stall(&engine, p);
    // The actor is busy: 4 sends queue, the rest are refused at once.
    let sends: Vec<_> = (0..10u64)
        .map(|i| {
            let engine = engine.clone();
            std::thread::spawn(move || engine.send_now(p, recipient(i)))
        })
        .collect();
    // Give the senders time to queue or be refused (no result depends on it).
    let deadline = Instant::now() + Duration::from_secs(5);
    while sends.iter().filter(|h| h.is_finished()).count() < 6 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    release.send(()).unwrap();
    let results: Vec<_> = sends.into_iter().map(|h| h.join().unwrap()).collect();
    let refused = results
        .iter()
        .filter(|r| **r == Err(Error::Overloaded))
        .count();
    let served = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!((refused, served), (6, 4), "{results:?}");
    // Once drained, the profile serves again.
    assert!(engine.send_now(p, recipient(99)).is_ok());
}

#[test]
fn a_panicking_request_leaves_the_engine_serving_with_state_intact() {
    let (engine, _) = engine(64);
    let p = sticky_profile(&engine, &NUMBERS);
    let other = sticky_profile(&engine, &[]);
    block_on(engine.assign_number(n("+14155550009"), Some(other))).unwrap();
    let before = engine.send_now(p, recipient(1)).unwrap().sender;
    // The profile is free, so the request runs on this thread (the fast path).
    let crash = block_on(engine.run_as_request(p, || -> () { panic!("injected fault") }));
    assert_eq!(crash, Err(Error::Internal));
    // Same actor: still serving, mapping intact.
    let after = engine.send_now(p, recipient(1)).unwrap();
    assert_eq!((after.sender, after.reason), (before, Reason::Sticky));
    // Other profiles unaffected.
    assert!(engine.send_now(other, recipient(1)).is_ok());
}

#[test]
fn an_empty_batch_answers_nothing_and_changes_nothing() {
    let (engine, _) = engine(64);
    let a = sticky_profile(&engine, &["+13125550001"]);
    assert!(engine.send_batch_now(&[]).is_empty());
    assert!(block_on(engine.send_batch(&[])).is_empty());
    let stats = block_on(engine.profile_stats(a)).unwrap();
    assert_eq!((stats.selections.total(), stats.rejected), (0, 0));
}

#[test]
fn batches_span_profiles_and_keep_their_order() {
    let (engine, _) = engine(64);
    let a = sticky_profile(&engine, &["+13125550001", "+13125550002"]);
    let b = sticky_profile(&engine, &["+14155550001"]);
    let unknown = ProfileId::new_v4();
    let items: Vec<(ProfileId, PhoneNumber)> = (0..30u64)
        .map(|i| ([a, b, unknown][(i % 3) as usize], recipient(i)))
        .collect();
    let results = engine.send_batch_now(&items);
    assert_eq!(results.len(), items.len());
    for ((profile, to), result) in items.iter().zip(&results) {
        if *profile == unknown {
            assert_eq!(*result, Err(Error::UnknownProfile));
        } else {
            let s = result.as_ref().unwrap();
            let mapped = block_on(engine.mapping(*profile, *to)).unwrap().unwrap();
            assert_eq!(mapped.from, s.sender);
            assert_eq!(engine.owner(s.sender), Some(*profile));
        }
    }
    // A busy profile's group queues and is answered in order too.
    let release = stall(&engine, a);
    let batch = {
        let engine = engine.clone();
        let items = items.clone();
        std::thread::spawn(move || engine.send_batch_now(&items))
    };
    release.send(()).unwrap();
    let again = batch.join().unwrap();
    for ((profile, _), (first, second)) in items.iter().zip(results.iter().zip(&again)) {
        if *profile != unknown {
            let (first, second) = (first.as_ref().unwrap(), second.as_ref().unwrap());
            assert_eq!(
                (second.sender, second.reason),
                (first.sender, Reason::Sticky)
            );
        }
    }
}

#[test]
fn shutdown_finishes_calls_in_flight_then_refuses() {
    let (engine, _) = engine(64);
    let p = sticky_profile(&engine, &NUMBERS);
    let (release, wait) = mpsc::channel::<()>();
    let (started, running) = mpsc::channel::<()>();
    let in_flight = {
        let engine = engine.clone();
        std::thread::spawn(move || {
            block_on(engine.run_as_request(p, move || {
                started.send(()).unwrap();
                wait.recv().unwrap();
                4
            }))
        })
    };
    running.recv().unwrap();
    let stopper = {
        let engine = engine.clone();
        std::thread::spawn(move || block_on(engine.shutdown()))
    };
    // New calls are refused while shutdown waits for the one in flight. (The
    // probe names no profile, so it never queues behind the stalled actor.)
    let deadline = Instant::now() + Duration::from_secs(5);
    while engine.send_now(ProfileId::new_v4(), recipient(1)) != Err(Error::ShuttingDown) {
        assert!(Instant::now() < deadline, "shutdown never started refusing");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(!stopper.is_finished());
    release.send(()).unwrap();
    assert_eq!(
        in_flight.join().unwrap(),
        Ok(4),
        "the call in flight finished"
    );
    stopper.join().unwrap();
    assert_eq!(engine.send_now(p, recipient(1)), Err(Error::ShuttingDown));
}

#[test]
fn an_async_send_queued_behind_a_busy_profile_is_answered_before_shutdown_ends() {
    let (engine, _) = engine(64);
    let p = sticky_profile(&engine, &NUMBERS);
    let release = stall(&engine, p);
    // A request already queued sends the async send to the mailbox too
    // (it never waits past queued requests), not to wait on the lock.
    engine.queue_request(p, || {}).unwrap();
    let queued = {
        let engine = engine.clone();
        std::thread::spawn(move || block_on(engine.send(p, recipient(1))))
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while engine.mailbox_depth(p) < 2 {
        assert!(Instant::now() < deadline, "the send never queued");
        std::thread::yield_now();
    }
    let stopper = {
        let engine = engine.clone();
        std::thread::spawn(move || block_on(engine.shutdown()))
    };
    while engine.send_now(ProfileId::new_v4(), recipient(2)) != Err(Error::ShuttingDown) {
        assert!(Instant::now() < deadline, "shutdown never started refusing");
        std::thread::yield_now();
    }
    // Shutdown neither ends nor drops the queued send while the profile is
    // busy.
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_millis(100) {
        assert!(
            !stopper.is_finished(),
            "shutdown ended before the queued send"
        );
        std::thread::yield_now();
    }
    release.send(()).unwrap();
    let sent = queued.join().unwrap().expect("the queued send is answered");
    assert_eq!(sent.reason, Reason::Weighted);
    stopper.join().unwrap();
}

#[test]
fn the_housekeeper_expires_due_profiles_on_its_own() {
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
    let config = EngineConfig {
        expire_tick: Duration::from_millis(5),
        ..EngineConfig::default()
    };
    let engine = Engine::start_with_clock(config, clock.clone()).unwrap();
    let p = sticky_profile(&engine, &NUMBERS);
    for i in 0..50 {
        engine.send_now(p, recipient(i)).unwrap();
    }
    assert_eq!(block_on(engine.stats()).stored_mappings, 50);
    clock.advance(Duration::from_secs(8 * 24 * 3600));
    assert_eq!(block_on(engine.stats()).expiry_scheduled, 1);
    // The housekeeper's tick (every 5 ms of real time) reclaims them.
    let deadline = Instant::now() + Duration::from_secs(5);
    while block_on(engine.stats()).stored_mappings > 0 {
        assert!(
            Instant::now() < deadline,
            "the actor never expired its mappings"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(block_on(engine.stats()).expired, 50);
}

#[test]
fn numbers_move_between_profiles_with_their_health() {
    let (engine, _) = engine(64);
    let a = sticky_profile(&engine, &["+13125550001"]);
    let b = sticky_profile(&engine, &[]);
    let number = n("+13125550001");
    let failed = DeliveryOutcome {
        delivered: false,
        spam: false,
    };
    for _ in 0..20 {
        assert!(block_on(engine.report_outcome(number, failed)).unwrap());
    }
    let record = engine.number_record(number).unwrap();
    block_on(engine.assign_number(number, Some(b))).unwrap();
    let status = block_on(engine.number(number)).unwrap();
    assert_eq!(status.record.profile, Some(b));
    assert_eq!(status.record.id, record.id, "the numeric id is stable");
    assert_eq!(status.health.finalized, 20);
    assert!(status.unhealthy);
    assert_eq!(block_on(engine.numbers(Some(a))).unwrap().len(), 0);
    // Unassigned: the record stays, with no profile.
    block_on(engine.assign_number(number, None)).unwrap();
    let status = block_on(engine.number(number)).unwrap();
    assert_eq!(status.eligibility, Eligibility::Unassigned);
    assert!(!block_on(engine.report_outcome(number, failed)).unwrap());
    // Unknown numbers and profiles are refused.
    assert_eq!(
        block_on(engine.assign_number(n("+19995550000"), None)),
        Err(Error::UnknownNumber)
    );
    assert_eq!(
        block_on(engine.assign_number(number, Some(ProfileId::new_v4()))),
        Err(Error::UnknownProfile)
    );
}

#[test]
fn rejected_settings_create_or_change_nothing() {
    let (engine, _) = engine(64);
    let bad = SettingsUpdate::Merge(SettingsPatch {
        toll_free_weight: Some(f64::NAN),
        ..Default::default()
    });
    let created = block_on(engine.create_profile(NewProfile {
        name: "bad".into(),
        number_pool_settings: bad.clone(),
        ..Default::default()
    }));
    assert!(matches!(created, Err(Error::Settings(_))));
    assert!(engine.profiles().is_empty());
    let p = sticky_profile(&engine, &NUMBERS);
    let before = engine.profile(p).unwrap();
    let update = ProfileUpdate {
        name: Some("renamed".into()),
        number_pool_settings: bad,
        ..Default::default()
    };
    assert!(block_on(engine.update_profile(p, update)).is_err());
    assert_eq!(
        engine.profile(p).unwrap(),
        before,
        "not even the name changed"
    );
}

#[test]
fn stats_count_selections_by_reason_across_profiles() {
    let (engine, _) = engine(64);
    let a = sticky_profile(&engine, &NUMBERS);
    let b = sticky_profile(&engine, &[]);
    for i in 0..10 {
        engine.send_now(a, recipient(i)).unwrap();
        engine.send_now(a, recipient(i)).unwrap();
    }
    assert_eq!(
        engine.send_now(b, recipient(1)),
        Err(Error::NoSender(NoSender::EmptyPool))
    );
    let stats = block_on(engine.stats());
    assert_eq!(stats.profiles, 2);
    assert_eq!(
        (
            stats.selections[Reason::Weighted],
            stats.selections[Reason::Sticky],
            stats.rejected
        ),
        (10, 10, 1)
    );
    assert_eq!(stats.mappings_created, 10);
    assert_eq!(stats.stored_mappings, 10);
    assert_eq!(stats.senders, 4);
    assert_eq!(stats.mailbox_depth, 0);
    assert_eq!(stats.per_profile.len(), 2);
}

#[test]
fn one_callers_requests_apply_in_the_order_issued_under_contention() {
    let (engine, _) = engine(1 << 16);
    let p = sticky_profile(&engine, &NUMBERS);
    let applied = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Two threads keep the profile busy, one with sends, one with the
    // engine's own (long) work, so some of the caller's requests run on its
    // thread, some wait on the lock and some queue on the mailbox.
    let contenders: Vec<_> = (0..2)
        .map(|t| {
            let (engine, stop) = (engine.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if t == 0 {
                        // The clock stands still, so a long run of sends
                        // fills the senders' queues: that refusal is fine.
                        match engine.send_now(p, recipient(1000 + i % 500)) {
                            Ok(_) | Err(Error::QueueFull { .. }) => {}
                            Err(e) => panic!("contending send failed: {e}"),
                        }
                    } else {
                        block_on(engine.mappings(p)).unwrap();
                    }
                    i += 1;
                }
            })
        })
        .collect();
    // One caller issues 2000 requests at once (pipelined) and awaits them all.
    let requests = (0..2000).map(|i| {
        let applied = applied.clone();
        engine.run_as_request(p, move || applied.lock().push(i))
    });
    let results = block_on(futures::future::join_all(requests));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in contenders {
        c.join().unwrap();
    }
    assert!(results.iter().all(Result::is_ok));
    let applied = applied.lock();
    assert_eq!(*applied, (0..2000).collect::<Vec<_>>());
}

#[test]
fn the_fast_path_refuses_at_once_when_the_bound_is_reached() {
    let (engine, _) = engine(2);
    let p = sticky_profile(&engine, &NUMBERS);
    let release = stall(&engine, p);
    // Fill the mailbox to its bound from other threads...
    let queued: Vec<_> = (0..2u64)
        .map(|i| {
            let engine = engine.clone();
            std::thread::spawn(move || engine.send_now(p, recipient(i)))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while engine.mailbox_depth(p) < 2 {
        assert!(Instant::now() < deadline, "the senders never queued");
        std::thread::yield_now();
    }
    // ...then both calls, sync and async, are refused without waiting.
    assert_eq!(engine.send_now(p, recipient(7)), Err(Error::Overloaded));
    assert_eq!(
        block_on(engine.send(p, recipient(7))),
        Err(Error::Overloaded)
    );
    release.send(()).unwrap();
    for q in queued {
        assert!(q.join().unwrap().is_ok());
    }
    assert!(engine.send_now(p, recipient(7)).is_ok());
}

#[test]
fn idle_profiles_have_no_timer_and_no_sticky_memory() {
    let (engine, _) = engine(64);
    for i in 0..1000 {
        block_on(engine.create_profile(NewProfile {
            name: format!("idle-{i}"),
            number_pool_settings: SettingsUpdate::Merge(SettingsPatch {
                sticky_sender: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        }))
        .unwrap();
    }
    let busy = sticky_profile(&engine, &NUMBERS);
    engine.send_now(busy, recipient(1)).unwrap();
    let stats = block_on(engine.stats());
    assert_eq!(stats.profiles, 1001);
    // Only the profile with a mapping has expiry work scheduled; the
    // others have nothing that could ever wake them.
    assert_eq!(stats.expiry_scheduled, 1);
    let idle_bytes: usize = stats
        .per_profile
        .iter()
        .filter(|c| c.id != busy)
        .map(|c| c.stats.sticky_heap_bytes)
        .sum();
    assert_eq!(
        idle_bytes, 0,
        "an idle profile's sticky map allocates nothing"
    );
}

/// A refused send changes nothing, however late its time: sends refused
/// with a time from the day before (the profile busy when they read the
/// clock, or the clock set back) leave the profile's day where it is, and
/// with it today's count against the daily limit.
#[test]
fn a_late_refused_send_leaves_the_days_count_alone() {
    let (engine, clock) = engine(64);
    let p = sticky_profile(&engine, &NUMBERS);
    let update = ProfileUpdate {
        capacity: CapacityUpdate {
            daily_message_limit: Some(Some(3)),
            ..Default::default()
        },
        ..Default::default()
    };
    block_on(engine.update_profile(p, update)).unwrap();
    let opted_out = recipient(99);
    block_on(engine.opt_out(p, opted_out)).unwrap();
    let today = Timestamp::from_secs(1_800_000_000);
    clock.set(today);
    engine.send_now(p, recipient(0)).unwrap();
    engine.send_now(p, recipient(1)).unwrap();
    // Late: the day before, refused (one alone, one in a batch).
    clock.set(Timestamp::from_secs(1_800_000_000 - 86_400));
    assert!(matches!(
        engine.send_now(p, opted_out),
        Err(Error::OptedOut)
    ));
    let late = engine.send_batch_now(&[(p, opted_out)]);
    assert!(matches!(late[..], [Err(Error::OptedOut)]));
    clock.set(Timestamp::from_secs(1_800_000_000 + 60));
    engine.send_now(p, recipient(2)).unwrap();
    assert!(
        matches!(engine.send_now(p, recipient(3)), Err(Error::DailyLimit)),
        "the fourth send of the day"
    );
}

/// A batch answers as its messages sent one by one would: the same
/// sender, rule, mapping outcome and wait for each, on two engines set up
/// alike. Recipients repeat within a few messages (a new mapping, then a
/// hit on it while the batch's look-ahead still holds what it saw before
/// the mapping was made), and one profile's groups are short (the
/// look-ahead's third stage). Both ways a group is served: on the
/// caller's thread (`send_batch_now`), and through the profile's mailbox
/// (`send_batch` on an engine that queues every request), which makes
/// the same pass on the actor's side.
#[test]
fn a_batch_answers_as_its_messages_sent_one_by_one() {
    batch_answers_as_sent_one_by_one(Dispatch::CallerRuns, |engine, batch| {
        engine.send_batch_now(batch)
    });
    batch_answers_as_sent_one_by_one(Dispatch::Mailbox, |engine, batch| {
        block_on(engine.send_batch(batch))
    });
}

fn batch_answers_as_sent_one_by_one(
    dispatch: Dispatch,
    send_batch: impl Fn(&Engine, &[(ProfileId, PhoneNumber)]) -> Vec<Result<numpool::Selection, Error>>,
) {
    let numbers: [&[&str]; 3] = [
        &NUMBERS,
        &["+14155550001", "+14155550002"],
        &["+16175550001"],
    ];
    let set_up = || {
        let (engine, clock) = engine_dispatching(dispatch, 64);
        let profiles: Vec<ProfileId> = numbers.iter().map(|n| sticky_profile(&engine, n)).collect();
        (engine, clock, profiles)
    };
    let (batched, batched_clock, batched_profiles) = set_up();
    let (single, single_clock, single_profiles) = set_up();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut random = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    for round in 0..4 {
        // Profile 0 most, profile 2 rarely (groups of about 50).
        let items: Vec<(usize, PhoneNumber)> = (0..1000)
            .map(|_| {
                let p = match random(100) {
                    0..=69 => 0,
                    70..=94 => 1,
                    _ => 2,
                };
                (p, recipient(random(300)))
            })
            .collect();
        let batch: Vec<(ProfileId, PhoneNumber)> = items
            .iter()
            .map(|&(p, to)| (batched_profiles[p], to))
            .collect();
        let answers = send_batch(&batched, &batch);
        for (&(p, to), answer) in items.iter().zip(&answers) {
            let expected = single.send_now(single_profiles[p], to).unwrap();
            let got = answer.as_ref().unwrap();
            assert_eq!(
                (got.sender, got.reason, got.mapping, got.wait),
                (
                    expected.sender,
                    expected.reason,
                    expected.mapping,
                    expected.wait
                ),
                "{dispatch:?}: round {round}, profile {p}, to {to}"
            );
        }
        batched_clock.advance(Duration::from_secs(61));
        single_clock.advance(Duration::from_secs(61));
    }
}
