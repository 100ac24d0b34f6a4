//! Unit tests of `compliance.rs`.

use super::*;

fn n(s: &str) -> PhoneNumber {
    PhoneNumber::parse_e164(s).unwrap()
}

#[test]
fn keywords_are_whole_texts_trimmed_in_any_case() {
    use InboundKeyword::*;
    for (text, want) in [
        ("STOP", Some(OptOut(OptOutKeyword::Stop))),
        ("  stop\n", Some(OptOut(OptOutKeyword::Stop))),
        ("StopAll", Some(OptOut(OptOutKeyword::StopAll))),
        ("unsubscribe", Some(OptOut(OptOutKeyword::Unsubscribe))),
        ("Cancel", Some(OptOut(OptOutKeyword::Cancel))),
        ("end", Some(OptOut(OptOutKeyword::End))),
        ("QUIT ", Some(OptOut(OptOutKeyword::Quit))),
        ("start", Some(OptIn)),
        ("UNSTOP", Some(OptIn)),
        ("please stop", None),
        ("STOP!", None),
        ("", None),
        ("stopp", None),
    ] {
        assert_eq!(InboundKeyword::parse(text), want, "{text:?}");
    }
}

#[test]
fn opt_outs_keep_how_and_when() {
    let mut set = OptOuts::default();
    let via = n("+13125550001");
    let o = OptOut {
        keyword: Some(OptOutKeyword::Quit),
        via: Some(via),
        at: 1_800_000_000,
    };
    set.insert(n("+14155550100"), o);
    let api = OptOut {
        keyword: None,
        via: None,
        at: 7,
    };
    set.insert(n("+14155550101"), api);
    assert_eq!(set.get(n("+14155550100")), Some(o));
    assert_eq!(set.get(n("+14155550101")), Some(api));
    assert!(set.contains(n("+14155550100")) && !set.contains(n("+14155550102")));
    let mut page: Vec<_> = set
        .page_from(0, 10, 100)
        .0
        .into_iter()
        .map(|(to, _)| to)
        .collect();
    page.sort_unstable();
    assert_eq!(page, [n("+14155550100"), n("+14155550101")]);
    assert_eq!(set.remove(n("+14155550100")), Some(o));
    assert_eq!(set.len(), 1);
}

#[test]
fn opt_outs_are_counted_by_the_number_they_came_through() {
    let mut set = OptOuts::default();
    let (a, b) = (n("+13125550001"), n("+13125550002"));
    let via = |v: Option<PhoneNumber>| OptOut {
        keyword: v.map(|_| OptOutKeyword::Stop),
        via: v,
        at: 9,
    };
    let to = |i: u64| PhoneNumber::from_u64(14_155_550_000 + i).unwrap();
    for i in 0..300 {
        set.insert(to(i), via(Some(a)));
    }
    set.insert(to(300), via(Some(b)));
    set.insert(to(301), via(None));
    assert_eq!((set.via_count(a), set.via_count(b)), (300, 1));
    // Replacing an opt-out moves it from one number's count to the other's.
    set.insert(to(0), via(Some(b)));
    set.insert(to(1), via(None));
    assert_eq!((set.via_count(a), set.via_count(b)), (298, 2));
    set.remove(to(2));
    set.remove(to(300));
    assert_eq!((set.via_count(a), set.via_count(b)), (297, 1));
    assert_eq!(set.via_count(n("+13125550003")), 0);
}

#[test]
fn the_table_grows_and_forgets_removed_recipients() {
    let mut set = OptOuts::default();
    let to = |i: u64| PhoneNumber::from_u64(14_155_550_000 + i).unwrap();
    let o = |i: u64| OptOut {
        keyword: None,
        via: None,
        at: i as u32,
    };
    for i in 0..10_000 {
        set.insert(to(i), o(i));
    }
    for i in (0..10_000).step_by(2) {
        assert_eq!(set.remove(to(i)), Some(o(i)));
    }
    for i in 0..10_000 {
        assert_eq!(set.get(to(i)), (i % 2 == 1).then(|| o(i)), "{i}");
    }
    // Removed slots are reused, and the table stays bounded.
    for round in 0..5 {
        for i in (0..10_000).step_by(2) {
            set.insert(to(i), o(i + round));
            set.remove(to(i));
        }
    }
    assert_eq!(set.len(), 5_000);
    assert!(set.heap_bytes() < 5_000 * 48, "{}", set.heap_bytes());
    assert!(set.contains(to(9_999)) && !set.contains(to(10_001)));
}

#[test]
fn pages_walk_every_opt_out_once_each_costing_its_slots() {
    let mut set = OptOuts::default();
    for i in 0..100u64 {
        let to = PhoneNumber::from_u64(14_155_550_000 + i).unwrap();
        let at = i as u32;
        set.insert(
            to,
            OptOut {
                keyword: None,
                via: None,
                at,
            },
        );
    }
    let (mut seen, mut from, mut pages) = (Vec::new(), Some(0), 0);
    while let Some(start) = from {
        let (page, next) = set.page_from(start, 7, 64);
        assert!(page.len() <= 7);
        if let Some(n) = next {
            assert!(
                n > start && n - start <= 64,
                "a page looks at most its budget"
            );
        }
        seen.extend(page.into_iter().map(|(to, o)| (to.as_u64(), o.at)));
        from = next;
        pages += 1;
    }
    seen.sort_unstable();
    let want: Vec<(u64, u32)> = (0..100).map(|i| (14_155_550_000 + i, i as u32)).collect();
    assert_eq!(seen, want);
    assert!(pages >= 100 / 7);
    assert_eq!(set.page_from(usize::MAX, 5, 10), (Vec::new(), None));
}

#[test]
fn loading_opt_outs_in_another_tables_order_stays_linear() {
    // A snapshot holds a table's opt-outs in its slot order; a new table
    // loading them must not see them sorted by its own home slots.
    let mut first = OptOuts::default();
    let n = 200_000u64;
    for i in 0..n {
        let to = PhoneNumber::from_u64(14_000_000_000 + i * 7919).unwrap();
        first.insert(
            to,
            OptOut {
                keyword: None,
                via: None,
                at: 1,
            },
        );
    }
    let mut second = OptOuts::default();
    let mut probes = 0usize;
    for (to, o) in first.all() {
        second.insert(to, o);
        let key = to.as_u64();
        let slots = second.keys.len();
        let home = home(key, second.seed, slots);
        let at = second.find(key).unwrap();
        probes += (at + slots - home) % slots;
    }
    assert_eq!(second.len(), n as usize);
    // Linear probing at these loads averages a few slots a key; loading
    // in the first table's order with one hash for both averaged thousands.
    assert!(
        probes / (n as usize) < 20,
        "{} probes a key",
        probes / n as usize
    );
}

#[test]
fn destinations_by_region_of_the_recipient() {
    let only =
        |l: &[&str]| Destinations::parse(&l.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let us = only(&["US"]).unwrap();
    assert!(us.check(n("+14155550100")).is_ok());
    // Canada and Puerto Rico share +1 and are not US.
    assert_eq!(
        us.check(n("+14165550100"))
            .unwrap_err()
            .map(|r| r.to_string()),
        Some("CA".into())
    );
    assert_eq!(
        us.check(n("+17875550100"))
            .unwrap_err()
            .map(|r| r.to_string()),
        Some("PR".into())
    );
    let london = n("+442079460000");
    assert_eq!(
        us.check(london).unwrap_err().map(|r| r.to_string()),
        Some("GB".into())
    );
    assert!(only(&["GB", "US"]).unwrap().check(london).is_ok());
    // +44 7911 is Guernsey, which shares +44: not GB.
    assert!(only(&["GB"]).unwrap().check(n("+447911123456")).is_err());
    // A number of no region passes only "*".
    assert_eq!(only(&["GB"]).unwrap().check(n("+447700900123")), Err(None));
    assert!(only(&["*"]).unwrap().check(n("+447700900123")).is_ok());
    assert!(
        only(&[]).unwrap().check(n("+14155550100")).is_err(),
        "[] allows nothing"
    );
    assert_eq!(only(&["US", "ZZ"]).unwrap_err().index, 1);
    assert_eq!(only(&["us"]).unwrap_err().index, 0);
}

#[test]
fn opt_outs_put_back_in_runs_are_those_recorded_one_by_one() {
    let via = [None, Some(n("+13125550001")), Some(n("+13125550002"))];
    // 30,000 opt-outs over 20,000 recipients: the repeats, later, replace
    // the earlier ones (another time, keyword and via).
    let all: Vec<(PhoneNumber, OptOut)> = (0..30_000u64)
        .map(|i| {
            let to = PhoneNumber::from_u64(14_155_000_000 + i % 20_000).unwrap();
            let opt_out = OptOut {
                keyword: (i % 2 == 0).then_some(OptOutKeyword::Stop),
                via: via[(i % 3) as usize],
                at: 1_800_000_000 + i as u32,
            };
            (to, opt_out)
        })
        .collect();
    let mut one_by_one = OptOuts::default();
    for &(to, o) in &all {
        one_by_one.insert(to, o);
    }
    let mut together = OptOuts::default();
    one_by_one.remove(all[5].0);
    // In uneven runs, as recovery hands them over.
    for run in all.chunks(7_000) {
        together.stage(run);
    }
    together.insert_staged();
    together.remove(all[5].0);
    assert_eq!(together.len(), 20_000 - 1);
    assert_eq!(together.len(), one_by_one.len());
    for &(to, _) in &all {
        assert_eq!(together.get(to), one_by_one.get(to), "{to}");
    }
    for v in via.into_iter().flatten() {
        assert_eq!(together.via_count(v), one_by_one.via_count(v));
    }
}
