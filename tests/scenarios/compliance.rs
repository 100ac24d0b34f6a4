//! Compliance (`docs/SELECTION.md`, "Compliance"): opt-outs by keyword,
//! allowed destinations, disabled profiles, and the order of the checks on
//! a send. Every refused send is shown to change nothing.

use numpool::{
    CapacityUpdate, Inbound, NoSender, Outbound, ProfileId, ProfileUpdate, Reason, SettingsPatch,
    SettingsUpdate,
};

use super::backend::{Backend, Failure};
use super::{n, sticky, World, A, B, R};

impl<B: Backend> World<B> {
    /// The recipient `from` texts `text` to the pool number `to`.
    fn text(&mut self, from: &str, to: &str, text: &str) -> Inbound {
        self.b.receive(n(from), n(to), text)
    }

    fn update(&mut self, update: ProfileUpdate) {
        self.b.update_profile(self.profile, update).unwrap();
    }

    fn allow(&mut self, destinations: &[&str]) {
        self.update(ProfileUpdate {
            whitelisted_destinations: Some(destinations.iter().map(|d| d.to_string()).collect()),
            ..Default::default()
        });
    }

    fn enable(&mut self, on: bool) {
        self.update(ProfileUpdate {
            enabled: Some(on),
            ..Default::default()
        });
    }

    /// What selection has moved: every mapping, and every sender's counts.
    fn footprint(&self) -> (Vec<numpool::StickyMapping>, Vec<(u32, u32)>) {
        let numbers = futures::executor::block_on(self.b.engine().numbers(Some(self.profile)));
        let counts = numbers
            .unwrap()
            .iter()
            .map(|s| {
                let c = s.capacity.unwrap();
                (c.messages_today, c.new_recipients_today)
            })
            .collect();
        (self.b.mappings(self.profile), counts)
    }
}

pub fn every_opt_out_keyword_in_any_case_and_spacing_opts_out_and_start_opts_back_in<B: Backend>() {
    let mut w = World::<B>::new(sticky(), &[A, B]);
    let p = w.profile;
    for keyword in [
        "STOP",
        "stopall",
        " Unsubscribe ",
        "cancel\n",
        "End",
        "\tQUIT",
    ] {
        assert_eq!(w.text(R, A, keyword), Inbound::OptedOut(p), "{keyword:?}");
        assert_eq!(w.try_send(R), Err(Failure::OptedOut), "{keyword:?}");
        let back = if keyword.starts_with('S') {
            "start"
        } else {
            " UNSTOP "
        };
        assert_eq!(w.text(R, B, back), Inbound::OptedIn(p));
        assert!(w.try_send(R).is_ok(), "{keyword:?}: back in");
    }
}

pub fn a_keyword_inside_a_longer_text_changes_nothing<B: Backend>() {
    let mut w = World::<B>::new(sticky(), &[A]);
    for text in ["please stop", "STOP!", "stop stop", "", "hello"] {
        assert_eq!(w.text(R, A, text), Inbound::NoKeyword, "{text:?}");
    }
    assert!(w.try_send(R).is_ok());
    // A number no profile has: nothing happens.
    assert_eq!(w.text(R, "+19995550000", "STOP"), Inbound::UnknownNumber);
    assert!(w.try_send(R).is_ok());
}

pub fn an_opted_out_recipient_gets_nothing_and_its_mapping_waits_for_start<B: Backend>() {
    let mut w = World::<B>::new(sticky(), &[A, B]);
    let first = w.send(R);
    w.advance(3600);
    w.text(R, B, "STOP");
    let before = w.footprint();
    for _ in 0..3 {
        assert_eq!(w.try_send(R), Err(Failure::OptedOut));
        // An explicit sender too.
        assert_eq!(
            w.try_send_message(Outbound::to(n(R)).from_sender(n(A))),
            Err(Failure::OptedOut)
        );
    }
    assert_eq!(w.footprint(), before, "nothing selected, mapped or counted");
    w.advance(3600);
    w.text(R, A, "START");
    let again = w.send(R);
    assert_eq!((again.sender, again.reason), (first.sender, Reason::Sticky));
}

pub fn an_opt_out_stays_with_the_profile_it_was_sent_to_when_the_number_moves<B: Backend>() {
    let mut w = World::<B>::new(sticky(), &[A, B]);
    let p = w.profile;
    let other = ProfileId::new_v4();
    w.b.create_profile(other, &SettingsUpdate::Merge(SettingsPatch::default()))
        .unwrap();
    assert_eq!(w.text(R, A, "stop"), Inbound::OptedOut(p));
    w.b.assign(n(A), other).unwrap();
    assert_eq!(
        w.try_send(R),
        Err(Failure::OptedOut),
        "still opted out of P"
    );
    let from_other = w.b.send(other, Outbound::to(n(R))).unwrap();
    assert_eq!(from_other.sender, n(A), "the other profile may send");
    // A STOP through the moved number now opts out of its new profile.
    assert_eq!(w.text(R, A, "stop"), Inbound::OptedOut(other));
    assert_eq!(w.b.send(other, Outbound::to(n(R))), Err(Failure::OptedOut));
    // ...and START through a number of P opts back in to P only.
    assert_eq!(w.text(R, B, "start"), Inbound::OptedIn(p));
    assert!(w.try_send(R).is_ok());
    assert_eq!(w.b.send(other, Outbound::to(n(R))), Err(Failure::OptedOut));
}

pub fn destinations_go_by_the_recipients_region_across_the_nanp<B: Backend>() {
    let mut w = World::<B>::new(sticky(), &[A, B]);
    w.allow(&["US"]);
    assert!(w.try_send("+12065550100").is_ok());
    for (to, region) in [
        ("+14165550100", "CA"), // Toronto shares +1
        ("+17875550100", "PR"), // Puerto Rico too
        ("+442079460000", "GB"),
    ] {
        let before = w.footprint();
        assert_eq!(
            w.try_send(to),
            Err(Failure::Destination(Some(region.into()))),
            "{to}"
        );
        assert_eq!(
            w.try_send_message(Outbound::to(n(to)).from_sender(n(A))),
            Err(Failure::Destination(Some(region.into())))
        );
        assert_eq!(w.footprint(), before, "{to}: nothing changed");
    }
    w.allow(&["US", "CA"]);
    assert!(w.try_send("+14165550100").is_ok());
    w.allow(&["*"]);
    assert!(w.try_send("+17875550100").is_ok());
    assert!(w.try_send("+442079460000").is_ok());
    // An empty list allows nothing; an unknown code is refused as a value.
    w.allow(&[]);
    assert!(matches!(
        w.try_send("+12065550100"),
        Err(Failure::Destination(_))
    ));
    let bad = ProfileUpdate {
        whitelisted_destinations: Some(vec!["US".into(), "XX".into()]),
        ..Default::default()
    };
    assert!(matches!(
        w.b.update_profile(w.profile, bad),
        Err(Failure::Other(e)) if e.contains("XX")
    ));
}

pub fn a_disabled_profile_sends_nothing_and_keeps_its_mappings<B: Backend>() {
    let mut w = World::<B>::new(sticky(), &[A, B]);
    let first = w.send(R);
    w.enable(false);
    let before = w.footprint();
    assert_eq!(w.try_send(R), Err(Failure::Disabled));
    assert_eq!(w.try_send("+12065550999"), Err(Failure::Disabled));
    assert_eq!(
        w.try_send_message(Outbound::to(n(R)).from_sender(n(A))),
        Err(Failure::Disabled)
    );
    assert_eq!(w.footprint(), before);
    w.enable(true);
    let again = w.send(R);
    assert_eq!((again.sender, again.reason), (first.sender, Reason::Sticky));
}

/// Profile exists, enabled, destination, opt-out, capacity caps, then
/// selection: each failing check hides the ones after it.
pub fn checks_run_in_the_documented_order_and_a_refusal_changes_nothing<B: Backend>() {
    let mut w = World::<B>::new(SettingsPatch::default(), &[A]);
    // Every check fails at once: the daily limit is spent, the pool off.
    w.b.update_capacity(
        w.profile,
        CapacityUpdate {
            daily_message_limit: Some(Some(1)),
            ..Default::default()
        },
    )
    .unwrap();
    w.send("+442079460000");
    w.text("+442079460000", A, "STOP");
    w.update(ProfileUpdate {
        enabled: Some(false),
        whitelisted_destinations: Some(vec!["US".into()]),
        number_pool_settings: SettingsUpdate::Disable,
        ..Default::default()
    });
    let to = "+442079460000";
    let before = w.footprint();
    let unknown = ProfileId::new_v4();
    assert_eq!(
        w.b.send(unknown, Outbound::to(n(to))),
        Err(Failure::UnknownProfile)
    );
    assert_eq!(w.try_send(to), Err(Failure::Disabled));
    w.enable(true);
    assert_eq!(w.try_send(to), Err(Failure::Destination(Some("GB".into()))));
    w.allow(&["*"]);
    assert_eq!(w.try_send(to), Err(Failure::OptedOut));
    w.text(to, A, "START");
    assert_eq!(w.try_send(to), Err(Failure::DailyLimit));
    w.b.update_capacity(
        w.profile,
        CapacityUpdate {
            daily_message_limit: Some(None),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(w.try_send(to), Err(Failure::Select(NoSender::PoolDisabled)));
    assert_eq!(w.footprint(), before, "no refusal changed anything");
    w.patch(SettingsPatch::default());
    assert!(w.try_send(to).is_ok());
}
