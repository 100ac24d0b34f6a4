//! Unit tests of `pool.rs`.

use super::*;

fn n(s: &str) -> PhoneNumber {
    PhoneNumber::parse_sender(s).unwrap()
}

#[test]
fn indexes_by_kind_and_area_code() {
    let mut pool = Pool::default();
    pool.enable_geo();
    pool.add(n("+13125550001"), Carried::default());
    pool.add(n("+13125550002"), Carried::default());
    pool.add(n("+18005550003"), Carried::default());
    pool.add(n("12345"), Carried::default());
    assert_eq!(pool.len(), 4);
    assert_eq!(pool.kind_counts(), [2, 1]);
    assert_eq!(pool.rotation(RotationKey::Npa(312)).unwrap().len(), 2);
    assert!(pool.rotation(RotationKey::Npa(415)).is_none());
    // 312 and 773 are both Illinois.
    let il = region_of(773).unwrap();
    assert_eq!(pool.rotation(RotationKey::Region(il)).unwrap().len(), 2);
}

#[test]
fn removal_makes_references_stale() {
    let mut pool = Pool::default();
    pool.enable_geo();
    let a = pool.add(n("+13125550001"), Carried::default());
    assert!(pool.resolve(a).is_some());
    assert!(pool.remove(n("+13125550001")).is_some());
    assert!(pool.resolve(a).is_none());
    assert!(pool.rotation(RotationKey::Npa(312)).is_none());
    // The slot is reused by a newcomer; the old reference stays stale.
    let b = pool.add(n("+14155550009"), Carried::default());
    assert_eq!(b.slot, a.slot);
    assert!(pool.resolve(a).is_none());
    assert_eq!(pool.resolve(b).unwrap().number, n("+14155550009"));
}

#[test]
fn adding_twice_keeps_one() {
    let mut pool = Pool::default();
    let a = pool.add(n("+13125550001"), Carried::default());
    let b = pool.add(n("+13125550001"), Carried::default());
    assert_eq!(a, b);
    assert_eq!(pool.len(), 1);
    assert_eq!(pool.kind_counts(), [1, 0]);
}

#[test]
fn large_pools_find_numbers_through_a_map_small_ones_by_scanning() {
    let mut pool = Pool::default();
    let number = |i: u64| PhoneNumber::from_u64(13_125_550_000 + i).unwrap();
    for i in 0..40 {
        pool.add(number(i), Carried::default());
        assert_eq!(pool.by_number.is_some(), i as usize >= SCAN_UP_TO);
    }
    for i in 0..40 {
        assert_eq!(
            pool.sender_in(pool.lookup(number(i)).unwrap().slot)
                .unwrap()
                .number,
            number(i)
        );
    }
    for i in 0..30 {
        assert!(pool.remove(number(i)).is_some());
    }
    assert_eq!(pool.len(), 10);
    assert!(pool.lookup(number(3)).is_none());
    assert!(pool.lookup(number(35)).is_some());
    assert_eq!(pool.kind_counts(), [10, 0]);
}

#[test]
fn geomatch_rotations_built_late_equal_those_kept_all_along() {
    let numbers = [
        "+13125550001",
        "+14155550002",
        "+13125550003",
        "+17735550004",
    ];
    let (mut early, mut late) = (Pool::default(), Pool::default());
    early.enable_geo();
    for s in numbers {
        early.add(n(s), Carried::default());
        late.add(n(s), Carried::default());
    }
    early.remove(n("+13125550001"));
    late.remove(n("+13125550001"));
    assert!(
        late.rotation(RotationKey::Npa(312)).is_none(),
        "not built yet"
    );
    late.enable_geo();
    let il = region_of(312).unwrap();
    for key in [
        RotationKey::Npa(312),
        RotationKey::Npa(415),
        RotationKey::Region(il),
    ] {
        let members = |p: &Pool| {
            let mut r = p.rotation(key).unwrap().clone();
            (0..4)
                .map(|_| r.pick(|_| true).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(members(&early), members(&late), "{key:?}");
    }
}
