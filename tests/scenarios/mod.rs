//! The behavioural scenarios of `docs/SELECTION.md`: one per selection rule
//! and per row of the mapping lifecycle table. They are written once,
//! against a [`Backend`], and run with the caller running each request
//! (`tests/semantics.rs`) and with every request through the profile's
//! mailbox (`tests/engine.rs`). Time moves only through a `ManualClock`.

// No `allow(dead_code)`: a scenario missing from `scenario_tests!` is dead
// code, which `cargo clippy --all-targets -D warnings` refuses.

pub mod backend;
pub mod capacity;
pub mod compliance;

use std::sync::Arc;
use std::time::Duration;

use backend::{Backend, Failure};
use numpool::test_util::ManualClock;
use numpool::{
    Clock, DeliveryOutcome, MappingOutcome, NoSender, Outbound, PhoneNumber, ProfileId, Reason,
    Selection, SettingsPatch, SettingsUpdate, Timestamp,
};

const DAY: u64 = 24 * 3600;

fn n(s: &str) -> PhoneNumber {
    PhoneNumber::parse_sender(s).unwrap()
}

fn merge(patch: SettingsPatch) -> SettingsUpdate {
    SettingsUpdate::Merge(patch)
}

fn sticky() -> SettingsPatch {
    SettingsPatch {
        sticky_sender: Some(true),
        ..Default::default()
    }
}

/// A backend, a manual clock and one profile to play with.
struct World<B: Backend> {
    b: B,
    clock: Arc<ManualClock>,
    profile: ProfileId,
}

impl<B: Backend> World<B> {
    fn new(settings: SettingsPatch, numbers: &[&str]) -> Self {
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
        let mut b = B::new(Arc::clone(&clock));
        let profile = ProfileId::new_v4();
        b.create_profile(profile, &merge(settings)).unwrap();
        let mut world = World { b, clock, profile };
        for number in numbers {
            world.assign(number);
        }
        world
    }

    fn now(&self) -> u32 {
        self.clock.now().as_secs_u32()
    }

    fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    fn assign(&mut self, number: &str) {
        self.b.assign(n(number), self.profile).unwrap();
    }

    fn try_send(&mut self, to: &str) -> Result<Selection, Failure> {
        self.try_send_message(Outbound::to(n(to)))
    }

    fn try_send_message(&mut self, message: Outbound) -> Result<Selection, Failure> {
        self.b.send(self.profile, message)
    }

    fn send(&mut self, to: &str) -> Selection {
        self.try_send(to).unwrap()
    }

    fn from(&mut self, to: &str) -> String {
        self.send(to).sender.to_string()
    }

    fn patch(&mut self, patch: SettingsPatch) {
        self.b.update_settings(self.profile, &merge(patch)).unwrap();
    }

    fn mapped_sender(&self, to: &str) -> Option<String> {
        self.b
            .mapping(self.profile, n(to))
            .map(|m| m.from.to_string())
    }

    fn report(&mut self, sender: &str, delivered: bool, times: usize) {
        for _ in 0..times {
            let outcome = DeliveryOutcome {
                delivered,
                spam: false,
            };
            assert!(self.b.record_outcome(n(sender), outcome));
        }
    }

    /// Makes `sender` unhealthy under the default thresholds (20 failures).
    fn make_unhealthy(&mut self, sender: &str) {
        self.report(sender, false, 20);
    }
}

const A: &str = "+13125550001";
const B: &str = "+13125550002";
const C: &str = "+14155550003";
const TF: &str = "+18005550009";
const R: &str = "+12125550100";

// ---- 1. Sticky -------------------------------------------------------------

pub fn sticky_reuses_the_mapped_sender_and_says_so<B: Backend>() {
    let mut w = World::<B>::new(sticky(), &[A, B, C]);
    let first = w.send(R);
    assert_eq!(first.reason, Reason::Weighted);
    assert_eq!(first.mapping, MappingOutcome::Created);
    for _ in 0..5 {
        let again = w.send(R);
        assert_eq!(again.sender, first.sender);
        assert_eq!(again.reason, Reason::Sticky);
        assert_eq!(again.mapping, MappingOutcome::Reused);
    }
}

pub fn without_sticky_no_mapping_is_made<B: Backend>() {
    let mut w = World::<B>::new(SettingsPatch::default(), &[A, B]);
    let first = w.send(R);
    assert_eq!(first.mapping, MappingOutcome::None);
    assert_eq!(w.mapped_sender(R), None);
    // Round-robin moves on: the second send gets the other number.
    assert_ne!(w.send(R).sender, first.sender);
}

pub fn mapping_is_reused_at_7_days_23_hours_59_minutes<B: Backend>() {
    let mut w = World::<B>::new(sticky(), &[A, B, C]);
    let first = w.from(R);
    w.advance(8 * DAY - 60);
    let again = w.send(R);
    assert_eq!(again.sender.to_string(), first);
    assert_eq!(again.reason, Reason::Sticky);
}

pub fn mapping_expires_after_8_days_and_1_second<B: Backend>() {
    let mut w = World::<B>::new(sticky(), &[A, B, C]);
    let first = w.from(R);
    w.advance(8 * DAY + 1);
    assert_eq!(
        w.mapped_sender(R),
        None,
        "expired mapping is invisible at once"
    );
    let again = w.send(R);
    assert_eq!(again.reason, Reason::Weighted);
    assert_eq!(again.mapping, MappingOutcome::Created);
    // Round-robin has moved on, so the new pick is a different number.
    assert_ne!(again.sender.to_string(), first);
}

pub fn mapping_is_dead_exactly_at_expires_at<B: Backend>() {
    let mut w = World::<B>::new(sticky(), &[A, B]);
    w.send(R);
    w.advance(8 * DAY - 1);
    assert!(w.mapped_sender(R).is_some());
    w.advance(1);
    assert_eq!(w.mapped_sender(R), None, "live only while now < expires_at");
}

pub fn each_send_restarts_the_timer<B: Backend>() {
    let mut w = World::<B>::new(sticky(), &[A, B, C]);
    let first = w.from(R);
    for _ in 0..4 {
        w.advance(6 * DAY);
        assert_eq!(w.from(R), first, "24 days in, still the same sender");
    }
    let m = w.b.mapping(w.profile, n(R)).unwrap();
    assert_eq!(m.last_used_at, w.now());
    assert_eq!(m.expires_at, Some(w.now() + 8 * DAY as u32));
}

pub fn expired_mappings_are_invisible_before_the_wheel_runs_and_reclaimed_after<B: Backend>() {
    let mut w = World::<B>::new(sticky(), &[A, B]);
    for i in 0..100 {
        w.send(&format!("+1646555{i:04}"));
    }
    assert_eq!(w.b.stored_mappings(w.profile), 100);
    w.advance(8 * DAY);
    assert!(w.b.mappings(w.profile).is_empty());
    assert_eq!(
        w.b.stored_mappings(w.profile),
        100,
        "the wheel has not run yet"
    );
    let report = w.b.expire();
    assert_eq!(report.expired, 100);
    assert_eq!(w.b.stored_mappings(w.profile), 0);
}

pub fn per_profile_ttl_overrides_the_engine_default<B: Backend>() {
    let mut w = World::<B>::new(
        SettingsPatch {
            sticky_ttl_secs: Some(90),
            ..sticky()
        },
        &[A, B, C],
    );
    let first = w.from(R);
    w.advance(89);
    assert_eq!(w.from(R), first);
    w.advance(90);
    assert_eq!(w.send(R).mapping, MappingOutcome::Created);
}

// ---- Lifecycle table -------------------------------------------------------

pub fn disabling_sticky_clears_every_mapping_and_reenabling_starts_empty<B: Backend>() {
    let mut w = World::<B>::new(sticky(), &[A, B, C]);
    let recipients = ["+12125550101", "+12125550102", "+12125550103"];
    for r in recipients {
        w.send(r);
    }
    w.patch(SettingsPatch {
        sticky_sender: Some(false),
        ..Default::default()
    });
    assert_eq!(w.b.stored_mappings(w.profile), 0);
    w.patch(sticky());
    for r in recipients {
        assert_eq!(w.mapped_sender(r), None);
        assert_eq!(w.send(r).mapping, MappingOutcome::Created);
    }
}

pub fn settings_null_turns_the_pool_off_and_clears_mappings<B: Backend>() {
    let mut w = World::<B>::new(sticky(), &[A, B]);
    w.send(R);
    w.b.update_settings(w.profile, &SettingsUpdate::Disable)
        .unwrap();
    assert_eq!(w.try_send(R), Err(Failure::Select(NoSender::PoolDisabled)));
    assert_eq!(w.b.settings(w.profile), None);
    w.patch(sticky());
    assert_eq!(w.mapped_sender(R), None);
    assert_eq!(w.send(R).mapping, MappingOutcome::Created);
}

pub fn removing_a_sender_clears_every_mapping_to_it<B: Backend>() {
    let mut w = World::<B>::new(sticky(), &[A, B]);
    // Two recipients on A, one on B.
    assert_eq!(w.from("+12125550101"), A);
    assert_eq!(w.from("+12125550102"), B);
    assert_eq!(w.from("+12125550103"), A);
    w.b.unassign(n(A));
    assert_eq!(w.mapped_sender("+12125550101"), None);
    assert_eq!(w.mapped_sender("+12125550103"), None);
    assert_eq!(w.mapped_sender("+12125550102").as_deref(), Some(B));
    let again = w.send("+12125550101");
    assert_eq!(again.sender.to_string(), B);
    assert_eq!(again.mapping, MappingOutcome::Created);
    // Re-adding A does not bring its old mappings back.
    w.assign(A);
    assert_eq!(w.mapped_sender("+12125550103"), None);
}

pub fn moving_a_sender_to_another_profile_clears_its_mappings_here<B: Backend>() {
    let mut w = World::<B>::new(sticky(), &[A, B]);
    assert_eq!(w.from(R), A);
    let other = ProfileId::new_v4();
    w.b.create_profile(other, &merge(sticky())).unwrap();
    assert_eq!(w.b.owner(n(A)), Some(w.profile));
    w.b.assign(n(A), other).unwrap();
    assert_eq!(w.b.owner(n(A)), Some(other));
    assert_eq!(w.mapped_sender(R), None);
    assert_eq!(w.from(R), B);
    // The other profile now picks A.
    assert_eq!(w.b.send(other, Outbound::to(n(R))).unwrap().sender, n(A));
}

pub fn mapped_sender_whose_kind_weight_drops_to_zero_is_replaced<B: Backend>() {
    let mut w = World::<B>::new(
        SettingsPatch {
            long_code_weight: Some(1.0),
            toll_free_weight: Some(1.0),
            ..sticky()
        },
        &[A, TF],
    );
    // Smooth weighted 1:1 starts with the long code, then toll-free.
    assert_eq!(w.from("+12125550101"), A);
    assert_eq!(w.from(R), TF);
    w.patch(SettingsPatch {
        toll_free_weight: Some(0.0),
        ..Default::default()
    });
    let again = w.send(R);
    assert_eq!(again.sender.to_string(), A);
    assert_eq!(again.mapping, MappingOutcome::Created);
    assert_eq!(w.mapped_sender(R).as_deref(), Some(A));
}

pub fn unhealthy_mapped_sender_is_still_used<B: Backend>() {
    let mut w = World::<B>::new(
        SettingsPatch {
            skip_unhealthy: Some(true),
            ..sticky()
        },
        &[A, B],
    );
    assert_eq!(w.from(R), A);
    w.make_unhealthy(A);
    for _ in 0..3 {
        let s = w.send(R);
        assert_eq!(s.sender.to_string(), A);
        assert_eq!(s.reason, Reason::Sticky);
    }
    // ...but new recipients never get it.
    for i in 0..4 {
        assert_eq!(w.from(&format!("+1646555{i:04}")), B);
    }
}

pub fn adding_a_sender_leaves_existing_mappings_alone<B: Backend>() {
    let mut w = World::<B>::new(sticky(), &[A]);
    assert_eq!(w.from(R), A);
    w.assign(B);
    w.assign(C);
    assert_eq!(w.mapped_sender(R).as_deref(), Some(A));
    assert_eq!(w.from(R), A);
}

pub fn deleting_a_profile_drops_its_mappings_and_unassigns_its_numbers<B: Backend>() {
    let mut w = World::<B>::new(sticky(), &[A, B]);
    w.send(R);
    let numbers = w.b.delete_profile(w.profile).unwrap();
    assert_eq!(numbers, 2);
    assert_eq!(w.b.owner(n(A)), None);
    assert_eq!(w.try_send(R), Err(Failure::UnknownProfile));
    // The numbers can join another profile, with no mappings attached.
    let other = ProfileId::new_v4();
    w.b.create_profile(other, &merge(sticky())).unwrap();
    w.b.assign(n(A), other).unwrap();
    assert!(w.b.mapping(other, n(R)).is_none());
}

// ---- 2. Geomatch -----------------------------------------------------------

fn geo() -> SettingsPatch {
    SettingsPatch {
        geomatch: Some(true),
        ..Default::default()
    }
}

pub fn geomatch_picks_a_sender_with_the_recipients_area_code<B: Backend>() {
    let mut w = World::<B>::new(geo(), &[A, C, "+14155550004"]);
    for _ in 0..5 {
        let s = w.send("+14155559999");
        assert_eq!(s.reason, Reason::Geomatch);
        assert_eq!(s.sender.npa(), Some(415));
    }
    let s = w.send("+13125559999");
    assert_eq!(
        (s.sender.to_string().as_str(), s.reason),
        (A, Reason::Geomatch)
    );
}

pub fn geomatch_without_a_match_falls_back_to_weighted_over_the_whole_pool<B: Backend>() {
    let mut w = World::<B>::new(geo(), &[A, C]);
    let picks: Vec<Selection> = (0..4).map(|_| w.send("+12065550100")).collect();
    assert!(picks.iter().all(|s| s.reason == Reason::Weighted));
    let senders: Vec<String> = picks.iter().map(|s| s.sender.to_string()).collect();
    assert_eq!(senders, [A, C, A, C]);
}

/// Country geomatch (extension): outside the NANP, a sender with the
/// recipient's country calling code is preferred.
pub fn geomatch_outside_the_nanp_prefers_the_recipients_country<B: Backend>() {
    let uk = "+447700900001";
    let de = "+4915112345678";
    let mut w = World::<B>::new(geo(), &[A, uk, de]);
    for _ in 0..3 {
        let s = w.send("+447700900123");
        assert_eq!(
            (s.sender.to_string(), s.reason),
            (uk.to_string(), Reason::Geomatch)
        );
    }
    assert_eq!(w.send("+4930123456").sender.to_string(), de);
    // No sender of the country (France): the weighted pick over the pool.
    assert_eq!(w.send("+33612345678").reason, Reason::Weighted);
    // A NANP recipient never matches a non-NANP sender by country.
    assert_eq!(w.send("+12065550100").reason, Reason::Weighted);
}

pub fn geomatch_region_fallback_is_off_by_default_and_picks_the_same_state_when_on<B: Backend>() {
    // 773 and 312 are both Illinois; 415 is California.
    let mut w = World::<B>::new(geo(), &[C, A]);
    assert_eq!(w.send("+17735550100").reason, Reason::Weighted);
    w.patch(SettingsPatch {
        geomatch_region_fallback: Some(true),
        ..Default::default()
    });
    for _ in 0..3 {
        let s = w.send("+17735550100");
        assert_eq!(s.reason, Reason::Geomatch);
        assert_eq!(s.sender.to_string(), A);
    }
    // No sender in the recipient's region: weighted.
    assert_eq!(w.send("+12125550100").reason, Reason::Weighted);
}

pub fn geomatch_skips_unhealthy_senders<B: Backend>() {
    let mut w = World::<B>::new(
        SettingsPatch {
            skip_unhealthy: Some(true),
            ..geo()
        },
        &[A, C],
    );
    w.make_unhealthy(C);
    let s = w.send("+14155550100");
    assert_eq!(
        (s.sender.to_string().as_str(), s.reason),
        (A, Reason::Weighted)
    );
}

pub fn geomatch_respects_a_zero_weight_kind<B: Backend>() {
    let mut w = World::<B>::new(
        SettingsPatch {
            toll_free_weight: Some(0.0),
            ..geo()
        },
        &[A, TF],
    );
    // A toll-free recipient area code matches TF, but its weight is 0.
    assert_eq!(w.from("+18005550100"), A);
}

pub fn a_geomatched_pick_becomes_the_mapping<B: Backend>() {
    let mut w = World::<B>::new(
        SettingsPatch {
            sticky_sender: Some(true),
            ..geo()
        },
        &[A, C],
    );
    let first = w.send("+14155550100");
    assert_eq!(
        (first.reason, first.mapping),
        (Reason::Geomatch, MappingOutcome::Created)
    );
    let again = w.send("+14155550100");
    assert_eq!((again.sender, again.reason), (first.sender, Reason::Sticky));
}

// ---- 3. Weighted distribution ----------------------------------------------

pub fn weights_5_to_1_give_exactly_5_long_codes_per_window_of_6<B: Backend>() {
    let mut w = World::<B>::new(
        SettingsPatch {
            long_code_weight: Some(5.0),
            toll_free_weight: Some(1.0),
            ..Default::default()
        },
        &[A, B, TF, "+18885550010"],
    );
    let kinds: Vec<bool> = (0..120)
        .map(|i| w.send(&format!("+1646555{i:04}")).sender.kind() == numpool::SenderKind::TollFree)
        .collect();
    for window in kinds.windows(6) {
        assert_eq!(window.iter().filter(|tf| **tf).count(), 1);
    }
}

pub fn senders_of_a_kind_rotate_round_robin<B: Backend>() {
    let mut w = World::<B>::new(SettingsPatch::default(), &[A, B, C]);
    let picks: Vec<String> = (0..6).map(|_| w.from(R)).collect();
    assert_eq!(picks, [A, B, C, A, B, C]);
}

pub fn weight_zero_removes_a_kind<B: Backend>() {
    // Defaults: long codes 1, toll-free 0.
    let mut w = World::<B>::new(SettingsPatch::default(), &[TF, A]);
    assert!((0..10).all(|_| w.from(R) == A));
    w.patch(SettingsPatch {
        long_code_weight: Some(0.0),
        toll_free_weight: Some(2.0),
        ..Default::default()
    });
    assert!((0..10).all(|_| w.from(R) == TF));
}

pub fn both_weights_zero_is_valid_but_every_send_is_rejected<B: Backend>() {
    let mut w = World::<B>::new(
        SettingsPatch {
            long_code_weight: Some(0.0),
            toll_free_weight: Some(0.0),
            ..sticky()
        },
        &[A, TF],
    );
    assert_eq!(
        w.try_send(R),
        Err(Failure::Select(NoSender::BothWeightsZero))
    );
    assert_eq!(w.mapped_sender(R), None);
}

pub fn a_kind_with_no_eligible_sender_is_left_out_of_the_pick<B: Backend>() {
    // Toll-free weighted 1:1 but has no numbers: every pick is a long code.
    let mut w = World::<B>::new(
        SettingsPatch {
            toll_free_weight: Some(1.0),
            skip_unhealthy: Some(true),
            ..Default::default()
        },
        &[A, B],
    );
    assert!((0..6).all(|_| w.from(R) != TF));
    // Toll-free present but unhealthy: still left out.
    w.assign(TF);
    w.make_unhealthy(TF);
    assert!((0..6).all(|_| w.from(R) != TF));
    // Healthy again once the outcomes leave the 24 h window: back in the mix.
    w.advance(DAY);
    assert!((0..6).any(|_| w.from(R) == TF));
}

pub fn an_empty_pool_or_a_pool_without_weighted_kinds_is_rejected<B: Backend>() {
    let mut w = World::<B>::new(SettingsPatch::default(), &[]);
    assert_eq!(w.try_send(R), Err(Failure::Select(NoSender::EmptyPool)));
    w.assign(TF); // toll-free, but its weight is 0 by default
    assert_eq!(
        w.try_send(R),
        Err(Failure::Select(NoSender::NoSenderOfWeightedKind))
    );
}

pub fn short_codes_are_never_picked_by_the_pool<B: Backend>() {
    let mut w = World::<B>::new(SettingsPatch::default(), &["12345"]);
    assert_eq!(w.try_send(R), Err(Failure::Select(NoSender::EmptyPool)));
    w.assign(A);
    assert!((0..10).all(|_| w.from(R) == A));
}

// ---- 4. Skip unhealthy -----------------------------------------------------

pub fn skip_unhealthy_avoids_unhealthy_senders_for_new_picks<B: Backend>() {
    let mut w = World::<B>::new(
        SettingsPatch {
            skip_unhealthy: Some(true),
            ..Default::default()
        },
        &[A, B],
    );
    w.make_unhealthy(A);
    assert!((0..6).all(|_| w.from(R) == B));
}

pub fn without_skip_unhealthy_unhealthy_senders_are_picked<B: Backend>() {
    let mut w = World::<B>::new(SettingsPatch::default(), &[A, B]);
    w.make_unhealthy(A);
    assert!((0..6).any(|_| w.from(R) == A));
}

pub fn a_sender_with_too_few_outcomes_is_healthy<B: Backend>() {
    let mut w = World::<B>::new(
        SettingsPatch {
            skip_unhealthy: Some(true),
            ..Default::default()
        },
        &[A],
    );
    w.report(A, false, 19);
    assert_eq!(w.from(R), A);
    w.report(A, false, 1);
    assert!(w.try_send(R).is_err());
}

pub fn all_unhealthy_is_rejected_and_nothing_is_mapped<B: Backend>() {
    let mut w = World::<B>::new(
        SettingsPatch {
            skip_unhealthy: Some(true),
            ..sticky()
        },
        &[A, B],
    );
    w.make_unhealthy(A);
    w.make_unhealthy(B);
    let err = w.try_send(R).unwrap_err();
    assert_eq!(err, Failure::Select(NoSender::NoHealthySender));
    let Failure::Select(cause) = err else {
        unreachable!()
    };
    assert_eq!(cause.to_string(), "no healthy numbers in pool");
    assert_eq!(w.mapped_sender(R), None);
}

pub fn spam_makes_a_sender_unhealthy<B: Backend>() {
    let mut w = World::<B>::new(
        SettingsPatch {
            skip_unhealthy: Some(true),
            ..Default::default()
        },
        &[A, B],
    );
    for _ in 0..20 {
        let spam = DeliveryOutcome {
            delivered: true,
            spam: true,
        };
        w.b.record_outcome(n(A), spam);
    }
    assert!((0..4).all(|_| w.from(R) == B));
}

// ---- Settings --------------------------------------------------------------

pub fn a_rejected_patch_changes_nothing<B: Backend>() {
    let mut w = World::<B>::new(sticky(), &[A, B]);
    let before = w.b.settings(w.profile);
    w.send(R);
    let bad = SettingsPatch {
        sticky_sender: Some(false),
        long_code_weight: Some(-1.0),
        ..Default::default()
    };
    assert!(w.b.update_settings(w.profile, &merge(bad)).is_err());
    assert_eq!(w.b.settings(w.profile), before);
    assert!(
        w.mapped_sender(R).is_some(),
        "mappings survive a rejected patch"
    );
}

// ---- Pins (extension) ------------------------------------------------------

pub fn a_pinned_mapping_never_expires_until_deleted<B: Backend>() {
    let mut w = World::<B>::new(sticky(), &[A, B]);
    let m = w.b.pin(w.profile, n(R), n(B)).unwrap();
    assert!(m.pinned);
    assert_eq!(m.expires_at, None);
    w.advance(30 * DAY);
    w.b.expire();
    assert_eq!(w.from(R), B);
    assert!(w.b.unmap(w.profile, n(R)).unwrap().is_some());
    assert_eq!(w.mapped_sender(R), None);
}

pub fn pinning_needs_a_pickable_sender_of_the_pool_and_sticky_on<B: Backend>() {
    let mut w = World::<B>::new(sticky(), &[A, "12345"]);
    use numpool::PinError;
    assert_eq!(
        w.b.pin(w.profile, n(R), n(C)),
        Err(Failure::Pin(PinError::SenderNotInPool))
    );
    assert_eq!(
        w.b.pin(w.profile, n(R), n("12345")),
        Err(Failure::Pin(PinError::ShortCode))
    );
    w.patch(SettingsPatch {
        sticky_sender: Some(false),
        ..Default::default()
    });
    assert_eq!(
        w.b.pin(w.profile, n(R), n(A)),
        Err(Failure::Pin(PinError::StickyOff))
    );
}

pub fn changing_the_ttl_never_revives_an_expired_mapping<B: Backend>() {
    let mut w = World::<B>::new(sticky(), &[A, B, C]);
    w.send(R);
    w.patch(SettingsPatch {
        sticky_ttl_secs: Some(30),
        ..Default::default()
    });
    w.advance(30);
    assert_eq!(
        w.mapped_sender(R),
        None,
        "a shorter ttl applies to live mappings"
    );
    w.patch(SettingsPatch {
        sticky_ttl_secs: Some(90),
        ..Default::default()
    });
    assert_eq!(w.mapped_sender(R), None, "a longer ttl does not revive it");
    assert_eq!(w.send(R).mapping, MappingOutcome::Created);
    // A live mapping does get the longer ttl.
    w.advance(60);
    assert_eq!(w.send(R).reason, Reason::Sticky);
}

/// Generates one `#[test]` per scenario, run against backend `$backend`.
#[macro_export]
macro_rules! scenario_tests {
    ($backend:ty) => {
        #[test]
        fn sticky_reuses_the_mapped_sender_and_says_so() {
            scenarios::sticky_reuses_the_mapped_sender_and_says_so::<$backend>();
        }
        #[test]
        fn without_sticky_no_mapping_is_made() {
            scenarios::without_sticky_no_mapping_is_made::<$backend>();
        }
        #[test]
        fn mapping_is_reused_at_7_days_23_hours_59_minutes() {
            scenarios::mapping_is_reused_at_7_days_23_hours_59_minutes::<$backend>();
        }
        #[test]
        fn mapping_expires_after_8_days_and_1_second() {
            scenarios::mapping_expires_after_8_days_and_1_second::<$backend>();
        }
        #[test]
        fn mapping_is_dead_exactly_at_expires_at() {
            scenarios::mapping_is_dead_exactly_at_expires_at::<$backend>();
        }
        #[test]
        fn each_send_restarts_the_timer() {
            scenarios::each_send_restarts_the_timer::<$backend>();
        }
        #[test]
        fn expired_mappings_are_invisible_before_the_wheel_runs_and_reclaimed_after() {
            scenarios::expired_mappings_are_invisible_before_the_wheel_runs_and_reclaimed_after::<$backend>();
        }
        #[test]
        fn per_profile_ttl_overrides_the_engine_default() {
            scenarios::per_profile_ttl_overrides_the_engine_default::<$backend>();
        }
        #[test]
        fn disabling_sticky_clears_every_mapping_and_reenabling_starts_empty() {
            scenarios::disabling_sticky_clears_every_mapping_and_reenabling_starts_empty::<$backend>();
        }
        #[test]
        fn settings_null_turns_the_pool_off_and_clears_mappings() {
            scenarios::settings_null_turns_the_pool_off_and_clears_mappings::<$backend>();
        }
        #[test]
        fn removing_a_sender_clears_every_mapping_to_it() {
            scenarios::removing_a_sender_clears_every_mapping_to_it::<$backend>();
        }
        #[test]
        fn moving_a_sender_to_another_profile_clears_its_mappings_here() {
            scenarios::moving_a_sender_to_another_profile_clears_its_mappings_here::<$backend>();
        }
        #[test]
        fn mapped_sender_whose_kind_weight_drops_to_zero_is_replaced() {
            scenarios::mapped_sender_whose_kind_weight_drops_to_zero_is_replaced::<$backend>();
        }
        #[test]
        fn unhealthy_mapped_sender_is_still_used() {
            scenarios::unhealthy_mapped_sender_is_still_used::<$backend>();
        }
        #[test]
        fn adding_a_sender_leaves_existing_mappings_alone() {
            scenarios::adding_a_sender_leaves_existing_mappings_alone::<$backend>();
        }
        #[test]
        fn deleting_a_profile_drops_its_mappings_and_unassigns_its_numbers() {
            scenarios::deleting_a_profile_drops_its_mappings_and_unassigns_its_numbers::<$backend>();
        }
        #[test]
        fn geomatch_picks_a_sender_with_the_recipients_area_code() {
            scenarios::geomatch_picks_a_sender_with_the_recipients_area_code::<$backend>();
        }
        #[test]
        fn geomatch_without_a_match_falls_back_to_weighted_over_the_whole_pool() {
            scenarios::geomatch_without_a_match_falls_back_to_weighted_over_the_whole_pool::<$backend>();
        }
        #[test]
        fn geomatch_outside_the_nanp_prefers_the_recipients_country() {
            scenarios::geomatch_outside_the_nanp_prefers_the_recipients_country::<$backend>();
        }
        #[test]
        fn geomatch_region_fallback_is_off_by_default_and_picks_the_same_state_when_on() {
            scenarios::geomatch_region_fallback_is_off_by_default_and_picks_the_same_state_when_on::<$backend>();
        }
        #[test]
        fn geomatch_skips_unhealthy_senders() {
            scenarios::geomatch_skips_unhealthy_senders::<$backend>();
        }
        #[test]
        fn geomatch_respects_a_zero_weight_kind() {
            scenarios::geomatch_respects_a_zero_weight_kind::<$backend>();
        }
        #[test]
        fn a_geomatched_pick_becomes_the_mapping() {
            scenarios::a_geomatched_pick_becomes_the_mapping::<$backend>();
        }
        #[test]
        fn weights_5_to_1_give_exactly_5_long_codes_per_window_of_6() {
            scenarios::weights_5_to_1_give_exactly_5_long_codes_per_window_of_6::<$backend>();
        }
        #[test]
        fn senders_of_a_kind_rotate_round_robin() {
            scenarios::senders_of_a_kind_rotate_round_robin::<$backend>();
        }
        #[test]
        fn weight_zero_removes_a_kind() {
            scenarios::weight_zero_removes_a_kind::<$backend>();
        }
        #[test]
        fn both_weights_zero_is_valid_but_every_send_is_rejected() {
            scenarios::both_weights_zero_is_valid_but_every_send_is_rejected::<$backend>();
        }
        #[test]
        fn a_kind_with_no_eligible_sender_is_left_out_of_the_pick() {
            scenarios::a_kind_with_no_eligible_sender_is_left_out_of_the_pick::<$backend>();
        }
        #[test]
        fn an_empty_pool_or_a_pool_without_weighted_kinds_is_rejected() {
            scenarios::an_empty_pool_or_a_pool_without_weighted_kinds_is_rejected::<$backend>();
        }
        #[test]
        fn short_codes_are_never_picked_by_the_pool() {
            scenarios::short_codes_are_never_picked_by_the_pool::<$backend>();
        }
        #[test]
        fn skip_unhealthy_avoids_unhealthy_senders_for_new_picks() {
            scenarios::skip_unhealthy_avoids_unhealthy_senders_for_new_picks::<$backend>();
        }
        #[test]
        fn without_skip_unhealthy_unhealthy_senders_are_picked() {
            scenarios::without_skip_unhealthy_unhealthy_senders_are_picked::<$backend>();
        }
        #[test]
        fn a_sender_with_too_few_outcomes_is_healthy() {
            scenarios::a_sender_with_too_few_outcomes_is_healthy::<$backend>();
        }
        #[test]
        fn all_unhealthy_is_rejected_and_nothing_is_mapped() {
            scenarios::all_unhealthy_is_rejected_and_nothing_is_mapped::<$backend>();
        }
        #[test]
        fn spam_makes_a_sender_unhealthy() {
            scenarios::spam_makes_a_sender_unhealthy::<$backend>();
        }
        #[test]
        fn a_rejected_patch_changes_nothing() {
            scenarios::a_rejected_patch_changes_nothing::<$backend>();
        }
        #[test]
        fn a_pinned_mapping_never_expires_until_deleted() {
            scenarios::a_pinned_mapping_never_expires_until_deleted::<$backend>();
        }
        #[test]
        fn pinning_needs_a_pickable_sender_of_the_pool_and_sticky_on() {
            scenarios::pinning_needs_a_pickable_sender_of_the_pool_and_sticky_on::<$backend>();
        }
        #[test]
        fn changing_the_ttl_never_revives_an_expired_mapping() {
            scenarios::changing_the_ttl_never_revives_an_expired_mapping::<$backend>();
        }
        #[test]
        fn every_opt_out_keyword_in_any_case_and_spacing_opts_out_and_start_opts_back_in() {
            scenarios::compliance::every_opt_out_keyword_in_any_case_and_spacing_opts_out_and_start_opts_back_in::<$backend>();
        }
        #[test]
        fn a_keyword_inside_a_longer_text_changes_nothing() {
            scenarios::compliance::a_keyword_inside_a_longer_text_changes_nothing::<$backend>();
        }
        #[test]
        fn an_opted_out_recipient_gets_nothing_and_its_mapping_waits_for_start() {
            scenarios::compliance::an_opted_out_recipient_gets_nothing_and_its_mapping_waits_for_start::<$backend>();
        }
        #[test]
        fn an_opt_out_stays_with_the_profile_it_was_sent_to_when_the_number_moves() {
            scenarios::compliance::an_opt_out_stays_with_the_profile_it_was_sent_to_when_the_number_moves::<$backend>();
        }
        #[test]
        fn destinations_go_by_the_recipients_region_across_the_nanp() {
            scenarios::compliance::destinations_go_by_the_recipients_region_across_the_nanp::<$backend>();
        }
        #[test]
        fn a_disabled_profile_sends_nothing_and_keeps_its_mappings() {
            scenarios::compliance::a_disabled_profile_sends_nothing_and_keeps_its_mappings::<$backend>();
        }
        #[test]
        fn checks_run_in_the_documented_order_and_a_refusal_changes_nothing() {
            scenarios::compliance::checks_run_in_the_documented_order_and_a_refusal_changes_nothing::<$backend>();
        }
        #[test]
        fn a_queue_grows_by_parts_over_the_rate_and_drains_with_time() {
            scenarios::capacity::a_queue_grows_by_parts_over_the_rate_and_drains_with_time::<$backend>();
        }
        #[test]
        fn the_queue_cap_takes_a_wait_exactly_at_it_and_refuses_one_just_over() {
            scenarios::capacity::the_queue_cap_takes_a_wait_exactly_at_it_and_refuses_one_just_over::<$backend>();
        }
        #[test]
        fn an_explicit_sender_is_queued_and_capped_too() {
            scenarios::capacity::an_explicit_sender_is_queued_and_capped_too::<$backend>();
        }
        #[test]
        fn load_aware_picks_the_earliest_free_and_keep_round_robin_order_on_ties() {
            scenarios::capacity::load_aware_picks_the_earliest_free_and_keep_round_robin_order_on_ties::<$backend>();
        }
        #[test]
        fn sticky_is_kept_when_busy_and_refused_past_the_cap_with_the_mapping_untouched() {
            scenarios::capacity::sticky_is_kept_when_busy_and_refused_past_the_cap_with_the_mapping_untouched::<$backend>();
        }
        #[test]
        fn geomatch_passes_over_a_candidate_past_the_cap() {
            scenarios::capacity::geomatch_passes_over_a_candidate_past_the_cap::<$backend>();
        }
        #[test]
        fn the_daily_message_limit_refuses_past_it_until_midnight() {
            scenarios::capacity::the_daily_message_limit_refuses_past_it_until_midnight::<$backend>();
        }
        #[test]
        fn the_daily_reset_follows_los_angeles_across_daylight_saving() {
            scenarios::capacity::the_daily_reset_follows_los_angeles_across_daylight_saving::<$backend>();
        }
        #[test]
        fn new_recipients_per_sender_per_day_passes_a_full_sender_over() {
            scenarios::capacity::new_recipients_per_sender_per_day_passes_a_full_sender_over::<$backend>();
        }
        #[test]
        fn bad_capacity_settings_are_refused_and_change_nothing() {
            scenarios::capacity::bad_capacity_settings_are_refused_and_change_nothing::<$backend>();
        }
        #[test]
        fn changing_the_time_zone_never_lets_more_than_the_limit_through() {
            scenarios::capacity::changing_the_time_zone_never_lets_more_than_the_limit_through::<$backend>();
        }
        #[test]
        fn a_new_zone_whose_day_began_earlier_counts_the_old_zones_yesterday_too() {
            scenarios::capacity::a_new_zone_whose_day_began_earlier_counts_the_old_zones_yesterday_too::<$backend>();
        }
        #[test]
        fn a_zone_change_on_a_daylight_saving_day_resets_at_the_new_zones_midnight() {
            scenarios::capacity::a_zone_change_on_a_daylight_saving_day_resets_at_the_new_zones_midnight::<$backend>();
        }
        #[test]
        fn new_recipients_per_sender_per_day_holds_with_sticky_off() {
            scenarios::capacity::new_recipients_per_sender_per_day_holds_with_sticky_off::<$backend>();
        }
        #[test]
        fn a_rate_change_moves_the_queue_and_a_rate_under_one_a_day_is_refused() {
            scenarios::capacity::a_rate_change_moves_the_queue_and_a_rate_under_one_a_day_is_refused::<$backend>();
        }
    };
}
