//! The [`Engine`]: the SEMANTICS.md scenarios through the actor runtime
//! (the same scenarios `tests/semantics.rs` runs on the core), then what
//! only the runtime has: concurrency, backpressure, faults, batches,
//! shutdown, actor-driven expiry and stats.

mod scenarios;

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::executor::block_on;
use numpool::actor::DispatcherConfig;
use numpool::clock::{ManualClock, Timestamp};
use numpool::engine::{Engine, EngineConfig, EngineError, NewProfile, ProfileUpdate};
use numpool::health::DeliveryOutcome;
use numpool::profile::Eligibility;
use numpool::settings::{SettingsPatch, SettingsUpdate};
use numpool::{PhoneNumber, ProfileId, Reason, SelectError};
use scenarios::backend::EngineBackend;

scenario_tests!(EngineBackend);

fn n(s: &str) -> PhoneNumber {
    PhoneNumber::parse_sender(s).unwrap()
}

fn recipient(i: u64) -> PhoneNumber {
    PhoneNumber::from_u64(16_465_550_000 + i).unwrap()
}

fn engine(mailbox_bound: usize) -> (Engine, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
    let config = EngineConfig {
        dispatcher: DispatcherConfig {
            arbiters: 2,
            mailbox_bound,
        },
        expire_tick: Duration::from_secs(3600),
        ..EngineConfig::default()
    };
    (Engine::with_clock(config, clock.clone()).unwrap(), clock)
}

fn sticky_profile(engine: &Engine, numbers: &[&str]) -> ProfileId {
    block_on(async {
        let p = engine
            .create_profile(NewProfile {
                name: "test".into(),
                number_pool_settings: SettingsUpdate::Merge(SettingsPatch {
                    sticky_sender: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap();
        for number in numbers {
            engine.assign_number(n(number), Some(p.id)).await.unwrap();
        }
        p.id
    })
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
                        seen[k as usize] =
                            Some(engine.send_blocking(p, recipient(k)).unwrap().sender);
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

#[test]
fn a_full_mailbox_is_refused_at_once_with_overloaded() {
    let (engine, _) = engine(4);
    let p = sticky_profile(&engine, &NUMBERS);
    let (release, wait) = mpsc::channel::<()>();
    let (started, running) = mpsc::channel::<()>();
    // Stall the actor on a request that waits for the test.
    let stall = {
        let engine = engine.clone();
        std::thread::spawn(move || {
            block_on(engine.run_on_actor(p, move |_| {
                started.send(()).unwrap();
                wait.recv().unwrap();
            }))
        })
    };
    running.recv().unwrap();
    // The actor is busy: 4 sends queue, the rest are refused at once.
    let sends: Vec<_> = (0..10u64)
        .map(|i| {
            let engine = engine.clone();
            std::thread::spawn(move || engine.send_blocking(p, recipient(i)))
        })
        .collect();
    // Give the senders time to queue or be refused (no result depends on it).
    let deadline = Instant::now() + Duration::from_secs(5);
    while sends.iter().filter(|h| h.is_finished()).count() < 6 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    release.send(()).unwrap();
    stall.join().unwrap().unwrap();
    let results: Vec<_> = sends.into_iter().map(|h| h.join().unwrap()).collect();
    let refused = results
        .iter()
        .filter(|r| **r == Err(EngineError::Overloaded))
        .count();
    let served = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!((refused, served), (6, 4), "{results:?}");
    // Once drained, the profile serves again.
    assert!(engine.send_blocking(p, recipient(99)).is_ok());
}

#[test]
fn a_panicking_request_leaves_the_engine_serving_with_state_intact() {
    let (engine, _) = engine(64);
    let p = sticky_profile(&engine, &NUMBERS);
    let other = sticky_profile(&engine, &[]);
    block_on(engine.assign_number(n("+14155550009"), Some(other))).unwrap();
    let before = engine.send_blocking(p, recipient(1)).unwrap().sender;
    let crash = block_on(engine.run_on_actor(p, |_| -> () { panic!("injected fault") }));
    assert_eq!(crash, Err(EngineError::Internal));
    // Same actor: still serving, mapping intact.
    let after = engine.send_blocking(p, recipient(1)).unwrap();
    assert_eq!((after.sender, after.reason), (before, Reason::Sticky));
    // Other profiles unaffected.
    assert!(engine.send_blocking(other, recipient(1)).is_ok());
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
    let results = engine.send_batch_blocking(&items);
    assert_eq!(results.len(), items.len());
    for ((profile, to), result) in items.iter().zip(&results) {
        if *profile == unknown {
            assert_eq!(*result, Err(EngineError::UnknownProfile));
        } else {
            let s = result.as_ref().unwrap();
            let mapped = block_on(engine.mapping(*profile, *to)).unwrap().unwrap();
            assert_eq!(mapped.from, s.sender);
            assert_eq!(engine.owner(s.sender), Some(*profile));
        }
    }
    // One profile, many recipients, one message.
    let many = block_on(engine.send_to_many(a, (0..10).map(recipient).collect())).unwrap();
    assert!(many
        .iter()
        .all(|r| r.as_ref().unwrap().reason == Reason::Sticky || r.is_ok()));
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
            block_on(engine.run_on_actor(p, move |profile| {
                started.send(()).unwrap();
                wait.recv().unwrap();
                profile.stats().senders
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
    while engine.send_blocking(ProfileId::new_v4(), recipient(1)) != Err(EngineError::ShuttingDown)
    {
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
    assert_eq!(
        engine.send_blocking(p, recipient(1)),
        Err(EngineError::ShuttingDown)
    );
}

#[test]
fn actors_run_their_timing_wheels_on_their_own() {
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
    let config = EngineConfig {
        expire_tick: Duration::from_millis(5),
        ..EngineConfig::default()
    };
    let engine = Engine::with_clock(config, clock.clone()).unwrap();
    let p = sticky_profile(&engine, &NUMBERS);
    for i in 0..50 {
        engine.send_blocking(p, recipient(i)).unwrap();
    }
    assert_eq!(block_on(engine.stats()).stored_mappings, 50);
    clock.advance(Duration::from_secs(8 * 24 * 3600));
    // The actor's own tick (every 5 ms of real time) reclaims them.
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
        Err(EngineError::UnknownNumber)
    );
    assert_eq!(
        block_on(engine.assign_number(number, Some(ProfileId::new_v4()))),
        Err(EngineError::UnknownProfile)
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
    assert!(matches!(created, Err(EngineError::Settings(_))));
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
        engine.send_blocking(a, recipient(i)).unwrap();
        engine.send_blocking(a, recipient(i)).unwrap();
    }
    assert_eq!(
        engine.send_blocking(b, recipient(1)),
        Err(EngineError::Select(SelectError::EmptyPool))
    );
    let stats = block_on(engine.stats());
    assert_eq!(stats.profiles, 2);
    assert_eq!((stats.weighted, stats.sticky, stats.rejected), (10, 10, 1));
    assert_eq!(stats.mappings_created, 10);
    assert_eq!(stats.stored_mappings, 10);
    assert_eq!(stats.senders, 4);
    assert_eq!(stats.mailbox_depth, 0);
    assert_eq!(stats.per_profile.len(), 2);
}
