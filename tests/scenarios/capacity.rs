//! Sender capacity (`docs/SELECTION.md`, "Sender capacity"): rates and
//! queues, the queue cap, load-aware picks and the daily caps, with the
//! manual clock. Default rates: long code 1/s, toll-free 3/s.

use std::time::Duration;

use numpool::{
    CapacityUpdate, Clock, LimitsError, NoSender, Outbound, PhoneNumber, Reason, SettingsPatch,
    Timestamp,
};

use super::backend::{Backend, Failure};
use super::{n, sticky, World, A, B, C, R, TF};

const SEC: u64 = 1_000_000_000;

impl<B: Backend> World<B> {
    fn caps(&mut self, update: CapacityUpdate) {
        self.b.update_capacity(self.profile, update).unwrap();
    }

    fn advance_ms(&self, ms: u64) {
        self.clock.advance(Duration::from_millis(ms));
    }

    /// Sends `to` from `from` (explicitly), `parts` segments.
    fn send_from(
        &mut self,
        from: &str,
        to: &str,
        parts: u32,
    ) -> Result<numpool::Selection, Failure> {
        self.try_send_message(Outbound::to(n(to)).parts(parts).from_sender(n(from)))
    }

    fn wait_of(&self, sender: &str) -> Duration {
        self.b.capacity(n(sender)).wait
    }
}

fn recipient(i: u64) -> PhoneNumber {
    PhoneNumber::from_u64(12_065_550_000 + i).unwrap()
}

/// The pool on, sticky off.
fn no_sticky() -> SettingsPatch {
    SettingsPatch::default()
}

pub fn a_queue_grows_by_parts_over_the_rate_and_drains_with_time<B: Backend>() {
    let mut w = World::<B>::new(no_sticky(), &[A]);
    let t0 = w.clock.now();
    // One long code at 1/s: each one-part message waits a second more.
    for k in 0..3u64 {
        let s = w.send(R);
        assert_eq!(s.wait, Duration::from_secs(k), "message {k}");
        assert_eq!(s.send_at, t0.after(Duration::from_secs(k)));
    }
    // A message of 2 parts takes 2 slots: the next one waits 2 s more.
    let two = w.try_send_message(Outbound::to(n(R)).parts(2)).unwrap();
    assert_eq!(two.wait, Duration::from_secs(3));
    assert_eq!(w.send(R).wait, Duration::from_secs(5));
    assert_eq!(w.wait_of(A), Duration::from_secs(6));
    // Time drains the queue at the same rate.
    w.advance_ms(2_500);
    assert_eq!(w.wait_of(A), Duration::from_millis(3_500));
    w.advance(10);
    assert_eq!(w.wait_of(A), Duration::ZERO);
    assert_eq!(w.send(R).wait, Duration::ZERO);
    // A toll-free number at 3/s: a third of a second per part, exact to the ns.
    w.patch(SettingsPatch {
        long_code_weight: Some(0.0),
        toll_free_weight: Some(1.0),
        ..Default::default()
    });
    w.assign(TF);
    let waits: Vec<u64> = (0..4).map(|_| w.send(R).wait.as_nanos() as u64).collect();
    assert_eq!(
        waits,
        [0, SEC / 3 + 1, 2 * (SEC / 3 + 1), 3 * (SEC / 3 + 1)]
    );
    // A number's own rate wins over its kind's.
    w.b.set_rate(n(A), Some(4.0)).unwrap();
    assert_eq!(w.b.capacity(n(A)).messages_per_second, 4.0);
    w.advance(60);
    let a = |w: &mut World<B>| w.send_from(A, R, 1).unwrap().wait;
    assert_eq!(
        (a(&mut w), a(&mut w)),
        (Duration::ZERO, Duration::from_millis(250))
    );
    w.b.set_rate(n(A), None).unwrap();
    assert_eq!(w.b.capacity(n(A)).messages_per_second, 1.0);
}

pub fn the_queue_cap_takes_a_wait_exactly_at_it_and_refuses_one_just_over<B: Backend>() {
    let mut w = World::<B>::new(no_sticky(), &[A]);
    w.caps(CapacityUpdate {
        max_queue_seconds: Some(2.0),
        ..Default::default()
    });
    for k in 0..3 {
        assert_eq!(w.send(R).wait, Duration::from_secs(k));
    }
    // The queue ends 3 s from now: 1 ms later the wait is 2.999 s, over the cap.
    w.advance_ms(1);
    match w.try_send(R) {
        Err(Failure::QueueFull { sender, wait }) => {
            assert_eq!((sender, wait), (n(A), Duration::from_millis(2_999)));
        }
        other => panic!("expected queue full, got {other:?}"),
    }
    // Nothing was reserved: the queue and the counts are as before.
    assert_eq!(w.wait_of(A), Duration::from_millis(2_999));
    assert_eq!(w.b.capacity(n(A)).messages_today, 3);
    // At 1 s the wait is exactly 2 s: taken.
    w.advance_ms(999);
    assert_eq!(w.send(R).wait, Duration::from_secs(2));
    assert_eq!(w.b.capacity(n(A)).messages_today, 4);
}

pub fn an_explicit_sender_is_queued_and_capped_too<B: Backend>() {
    let mut w = World::<B>::new(no_sticky(), &[A, B]);
    w.caps(CapacityUpdate {
        max_queue_seconds: Some(1.0),
        ..Default::default()
    });
    let first = w.send_from(A, R, 1).unwrap();
    assert_eq!((first.sender, first.reason), (n(A), Reason::Explicit));
    assert_eq!(w.send_from(A, R, 1).unwrap().wait, Duration::from_secs(1));
    assert!(matches!(
        w.send_from(A, R, 1),
        Err(Failure::QueueFull { sender, .. }) if sender == n(A)
    ));
    // The pool meanwhile picks the idle sender.
    assert_eq!(w.from(R), B);
}

pub fn load_aware_picks_the_earliest_free_and_keep_round_robin_order_on_ties<B: Backend>() {
    let mut w = World::<B>::new(no_sticky(), &[A, B, C]);
    // Idle pool: exactly round-robin.
    let idle: Vec<String> = (0..6)
        .map(|_| {
            w.advance(10);
            w.from(R)
        })
        .collect();
    assert_eq!(idle, [A, B, C, A, B, C]);
    // A is 5 s behind (named explicitly); B and C are idle.
    w.advance(10);
    for _ in 0..5 {
        w.send_from(A, R, 1).unwrap();
    }
    let picks: Vec<String> = (0..5).map(|_| w.from(R)).collect();
    // Plain round-robin would give A, B, C, A, B. Load-aware: B and C
    // while idle; then B and C tie at 1 s: the first to join, B; then C
    // (1 s) is ahead of B (2 s)...
    assert_eq!(picks, [B, C, B, C, B]);
    // ...and once the waits even out, order is round-robin again.
    w.advance(60);
    let later: Vec<String> = (0..3).map(|_| w.from(R)).collect();
    assert_eq!(later, [C, A, B]);
}

pub fn sticky_is_kept_when_busy_and_refused_past_the_cap_with_the_mapping_untouched<B: Backend>() {
    let mut w = World::<B>::new(sticky(), &[A, B]);
    w.caps(CapacityUpdate {
        max_queue_seconds: Some(10.0),
        ..Default::default()
    });
    assert_eq!(w.from(R), A);
    w.send_from(A, "+12065550999", 9).unwrap();
    // A's queue is 10 s, the cap; B is idle: the mapping still wins.
    let s = w.send(R);
    assert_eq!(
        (s.sender, s.reason, s.wait),
        (n(A), Reason::Sticky, Duration::from_secs(10))
    );
    let mapping = w.b.mapping(w.profile, n(R)).unwrap();
    // 2 s later A has 12 s queued: past the cap. Refused, and the mapping
    // is as it was (its last use included).
    w.advance(2);
    w.send_from(A, "+12065550999", 3).unwrap();
    match w.try_send(R) {
        Err(Failure::QueueFull { sender, wait }) => {
            assert_eq!((sender, wait), (n(A), Duration::from_secs(12)));
        }
        other => panic!("expected queue full, got {other:?}"),
    }
    assert_eq!(w.b.mapping(w.profile, n(R)), Some(mapping));
    // Once the queue is back under the cap, the mapping serves again.
    w.advance(2);
    let again = w.send(R);
    assert_eq!((again.sender, again.reason), (n(A), Reason::Sticky));
}

pub fn geomatch_passes_over_a_candidate_past_the_cap<B: Backend>() {
    let geo = SettingsPatch {
        geomatch: Some(true),
        ..Default::default()
    };
    let mut w = World::<B>::new(geo, &[A, B, C]);
    w.caps(CapacityUpdate {
        max_queue_seconds: Some(1.0),
        ..Default::default()
    });
    // A and B have the 312 area code. A busy one is still a candidate...
    w.send_from(A, R, 1).unwrap();
    let s = w.send("+13125550100");
    assert_eq!(
        (s.sender, s.reason),
        (n(B), Reason::Geomatch),
        "earliest free first"
    );
    w.send_from(A, R, 1).unwrap();
    let s = w.send("+13125550101");
    assert_eq!((s.sender, s.reason), (n(B), Reason::Geomatch));
    // ...until both 312 numbers would wait past the cap: then weighted,
    // which takes the earliest free of the kind.
    let s = w.send("+13125550102");
    assert_eq!((s.sender, s.reason), (n(C), Reason::Weighted));
}

pub fn the_daily_message_limit_refuses_past_it_until_midnight<B: Backend>() {
    let mut w = World::<B>::new(sticky(), &[A, B]);
    w.caps(CapacityUpdate {
        daily_message_limit: Some(Some(3)),
        ..Default::default()
    });
    // The clock starts at 08:00 UTC.
    for i in 0..3 {
        w.send(&format!("+1206555000{i}"));
    }
    assert_eq!(w.try_send("+12065550009"), Err(Failure::DailyLimit));
    assert_eq!(
        w.try_send_message(Outbound::to(n(R)).from_sender(n(A))),
        Err(Failure::DailyLimit)
    );
    assert_eq!(w.mapped_sender("+12065550009"), None, "nothing is mapped");
    w.advance(16 * 3600 - 1); // 23:59:59
    assert_eq!(w.try_send("+12065550009"), Err(Failure::DailyLimit));
    w.advance(1); // midnight UTC
    assert!(w.try_send("+12065550009").is_ok());
    // Lifting the limit takes effect at once.
    for _ in 0..2 {
        w.send(R);
    }
    assert_eq!(w.try_send(R), Err(Failure::DailyLimit));
    w.caps(CapacityUpdate {
        daily_message_limit: Some(None),
        ..Default::default()
    });
    assert!(w.try_send(R).is_ok());
}

pub fn the_daily_reset_follows_los_angeles_across_daylight_saving<B: Backend>() {
    let mut w = World::<B>::new(SettingsPatch::default(), &[A]);
    w.caps(CapacityUpdate {
        daily_message_limit: Some(Some(1)),
        daily_reset_time_zone: Some("America/Los_Angeles".into()),
        max_queue_seconds: Some(86_400.0),
        ..Default::default()
    });
    // 2026-03-07 23:30 PST.
    w.clock.set(Timestamp::from_secs(1_772_955_000));
    assert!(w.try_send(R).is_ok());
    w.advance(29 * 60 + 59); // 23:59:59 PST
    assert_eq!(w.try_send(R), Err(Failure::DailyLimit));
    w.advance(1); // 2026-03-08 00:00 PST, 08:00 UTC
    assert!(w.try_send(R).is_ok());
    // Clocks spring forward at 02:00: this day has 23 hours, and the next
    // starts at 07:00 UTC, not 08:00.
    w.clock.set(Timestamp::from_secs(1_773_039_600 - 1)); // 23:59:59 PDT
    assert_eq!(w.try_send(R), Err(Failure::DailyLimit));
    w.advance(1); // 2026-03-09 00:00 PDT
    assert!(w.try_send(R).is_ok());
}

pub fn new_recipients_per_sender_per_day_passes_a_full_sender_over<B: Backend>() {
    let mut w = World::<B>::new(sticky(), &[A, B]);
    w.caps(CapacityUpdate {
        new_recipients_per_sender_per_day: Some(Some(2)),
        max_queue_seconds: Some(3600.0),
        ..Default::default()
    });
    // A is busy with an explicit send (not a new recipient), so B is
    // picked first: B, A, B. B is then full and passed over.
    w.send_from(A, "+12065559999", 1).unwrap();
    for i in 0..3 {
        w.send(&recipient(i).to_string());
    }
    assert_eq!(w.b.capacity(n(A)).new_recipients_today, 1);
    assert_eq!(w.b.capacity(n(B)).new_recipients_today, 2);
    let fourth = w.send(&recipient(3).to_string());
    assert_eq!(fourth.sender, n(A));
    // Both full: a new recipient is refused, and the cause is named.
    assert_eq!(
        w.try_send(&recipient(4).to_string()),
        Err(Failure::Select(NoSender::NewRecipientLimit))
    );
    assert_eq!(w.mapped_sender(&recipient(4).to_string()), None);
    // Sticky reuse is not limited.
    assert_eq!(w.send(&recipient(0).to_string()).reason, Reason::Sticky);
    // Tomorrow (midnight UTC is 16 h after the start) counts from zero.
    w.advance(16 * 3600);
    assert!(w.try_send(&recipient(4).to_string()).is_ok());
}

pub fn bad_capacity_settings_are_refused_and_change_nothing<B: Backend>() {
    let mut w = World::<B>::new(SettingsPatch::default(), &[A]);
    let before = w.b.engine().profile(w.profile).unwrap();
    let cases = [
        (
            CapacityUpdate {
                max_queue_seconds: Some(0.0),
                ..Default::default()
            },
            "max_queue_seconds",
        ),
        (
            CapacityUpdate {
                max_queue_seconds: Some(f64::NAN),
                ..Default::default()
            },
            "max_queue_seconds",
        ),
        (
            CapacityUpdate {
                daily_message_limit: Some(Some(0)),
                ..Default::default()
            },
            "daily_message_limit",
        ),
        (
            CapacityUpdate {
                new_recipients_per_sender_per_day: Some(Some(0)),
                ..Default::default()
            },
            "new_recipients_per_sender_per_day",
        ),
        (
            CapacityUpdate {
                daily_reset_time_zone: Some("Pacific Time".into()),
                // A valid field beside it is not applied either.
                daily_message_limit: Some(Some(5)),
                ..Default::default()
            },
            "daily_reset_time_zone",
        ),
    ];
    for (update, field) in cases {
        match w.b.update_capacity(w.profile, update) {
            Err(Failure::Limits(e)) => assert_eq!(e.field(), field),
            other => panic!("{field}: expected a refusal, got {other:?}"),
        }
    }
    for rate in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e12] {
        assert!(matches!(
            w.b.set_rate(n(A), Some(rate)),
            Err(Failure::Limits(LimitsError::Rate(_)))
        ));
    }
    assert_eq!(w.b.engine().profile(w.profile).unwrap(), before);
    assert_eq!(w.b.capacity(n(A)).messages_per_second, 1.0);
}

/// With load-aware picks switched off (`CapacityConfig::load_aware`), the
/// same situation as above picks plain round-robin, busy or not. Not in
/// `scenario_tests!`: it runs with the `RoundRobin` backend only
/// (`tests/semantics.rs`).
#[allow(dead_code)]
pub fn without_load_aware_picks_round_robin_ignores_queues<B: Backend>() {
    let mut w = World::<B>::new(no_sticky(), &[A, B, C]);
    for _ in 0..5 {
        w.send_from(A, R, 1).unwrap();
    }
    let picks: Vec<String> = (0..5).map(|_| w.from(R)).collect();
    assert_eq!(picks, [A, B, C, A, B]);
    assert_eq!(w.b.capacity(n(A)).wait, Duration::from_secs(7));
}

/// 2026-03-10 11:00 UTC: the day of UTC, of Pacific/Kiritimati (UTC+14, its
/// day from 10:00 UTC) and of Etc/GMT+12 (UTC-12, its day until 12:00 UTC)
/// all hold the hour that follows.
const MARCH_10_11H_UTC: u64 = 1_773_140_400;

fn zone(name: &str) -> CapacityUpdate {
    CapacityUpdate {
        daily_reset_time_zone: Some(name.into()),
        ..Default::default()
    }
}

pub fn changing_the_time_zone_never_lets_more_than_the_limit_through<B: Backend>() {
    let mut w = World::<B>::new(no_sticky(), &[A, B]);
    w.caps(CapacityUpdate {
        daily_message_limit: Some(Some(3)),
        max_queue_seconds: Some(86_400.0),
        ..Default::default()
    });
    w.clock.set(Timestamp::from_secs(MARCH_10_11H_UTC));
    // Every change of zone, spellings of UTC included, within one hour
    // that is in the same day of each zone: 3 sends in all, not 3 a zone.
    let mut sent = 0;
    for name in [
        "UTC",
        "Etc/UTC",
        "Pacific/Kiritimati",
        "Etc/GMT+12",
        "UTC",
        "Etc/UTC",
    ] {
        w.caps(zone(name));
        for _ in 0..5 {
            if w.try_send(R).is_ok() {
                sent += 1;
            } else {
                assert_eq!(w.try_send(R), Err(Failure::DailyLimit), "{name}");
            }
        }
        w.advance(60);
    }
    assert_eq!(sent, 3);
    // Once every day that held those sends has ended (Kiritimati's last, at
    // 10:00 UTC the next day), sending resumes.
    w.clock
        .set(Timestamp::from_secs(MARCH_10_11H_UTC + 23 * 3600 - 1)); // 09:59:59 UTC
    assert_eq!(
        w.try_send(R),
        Err(Failure::DailyLimit),
        "Kiritimati's day still holds them"
    );
    w.advance(1); // 10:00 UTC: UTC's next day started at midnight, Kiritimati's just now
    assert!(w.try_send(R).is_ok());
}

pub fn a_new_zone_whose_day_began_earlier_counts_the_old_zones_yesterday_too<B: Backend>() {
    let mut w = World::<B>::new(no_sticky(), &[A, B]);
    w.caps(CapacityUpdate {
        daily_message_limit: Some(Some(3)),
        daily_reset_time_zone: Some("Etc/GMT+12".into()),
        max_queue_seconds: Some(86_400.0),
        ..Default::default()
    });
    // 11:00 UTC: two sends on Etc/GMT+12's day that ends at 12:00 UTC...
    w.clock.set(Timestamp::from_secs(MARCH_10_11H_UTC));
    w.send(R);
    w.send(R);
    // ...one on its next day...
    w.advance(90 * 60); // 12:30 UTC
    w.send(R);
    // ...and Pacific/Kiritimati's day, begun at 10:00 UTC, holds all three.
    w.caps(zone("Pacific/Kiritimati"));
    assert_eq!(w.try_send(R), Err(Failure::DailyLimit));
}

pub fn a_zone_change_on_a_daylight_saving_day_resets_at_the_new_zones_midnight<B: Backend>() {
    let mut w = World::<B>::new(no_sticky(), &[A]);
    w.caps(CapacityUpdate {
        daily_message_limit: Some(Some(1)),
        max_queue_seconds: Some(86_400.0),
        ..Default::default()
    });
    // 2026-03-08 12:00 UTC (04:00 PST... 05:00 PDT: clocks sprang forward
    // at 02:00 local): one send on UTC's day.
    w.clock.set(Timestamp::from_secs(1_772_971_200));
    w.send(R);
    w.caps(zone("America/Los_Angeles"));
    // Los Angeles' day (23 hours) holds it: nothing more until its
    // midnight, 2026-03-09 07:00 UTC, not 08:00.
    assert_eq!(w.try_send(R), Err(Failure::DailyLimit));
    w.clock.set(Timestamp::from_secs(1_773_039_600 - 1));
    assert_eq!(w.try_send(R), Err(Failure::DailyLimit));
    w.advance(1);
    assert!(w.try_send(R).is_ok());
}

pub fn new_recipients_per_sender_per_day_holds_with_sticky_off<B: Backend>() {
    let mut w = World::<B>::new(no_sticky(), &[A, B]);
    w.caps(CapacityUpdate {
        new_recipients_per_sender_per_day: Some(Some(1)),
        max_queue_seconds: Some(3600.0),
        ..Default::default()
    });
    // An explicit send is not a new pick: it counts nothing.
    w.send_from(A, "+12065559999", 1).unwrap();
    assert_eq!(w.b.capacity(n(A)).new_recipients_today, 0);
    // Every pick is a new recipient of its sender when nothing is mapped.
    let first = w.send(&recipient(0).to_string()).sender;
    let second = w.send(&recipient(1).to_string()).sender;
    assert_ne!(first, second);
    for s in [A, B] {
        assert_eq!(w.b.capacity(n(s)).new_recipients_today, 1, "{s}");
    }
    assert_eq!(
        w.try_send(&recipient(2).to_string()),
        Err(Failure::Select(NoSender::NewRecipientLimit))
    );
}

pub fn a_rate_change_moves_the_queue_and_a_rate_under_one_a_day_is_refused<B: Backend>() {
    let mut w = World::<B>::new(no_sticky(), &[A]);
    for _ in 0..10 {
        w.send(R);
    }
    assert_eq!(w.wait_of(A), Duration::from_secs(10));
    // What is queued goes at the new rate from now on.
    w.b.set_rate(n(A), Some(2.0)).unwrap();
    assert_eq!(w.wait_of(A), Duration::from_secs(5));
    w.b.set_rate(n(A), None).unwrap();
    assert_eq!(w.wait_of(A), Duration::from_secs(10));
    // One a day is the slowest rate: anything slower would jam the queue.
    for rate in [5e-324, 1e-6, 1.0 / 86_401.0] {
        assert!(
            matches!(
                w.b.set_rate(n(A), Some(rate)),
                Err(Failure::Limits(LimitsError::Rate(_)))
            ),
            "{rate}"
        );
    }
    w.b.set_rate(n(A), Some(1.0 / 86_400.0)).unwrap();
    assert_eq!(w.wait_of(A), Duration::from_secs(10 * 86_400));
}
