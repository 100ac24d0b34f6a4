//! Importing message history (`Engine::import_history`): each rule of
//! docs/SELECTION.md, "Importing message history", then properties: the
//! result does not depend on the rows' order or batching, matches a plain
//! model of the rules, and an export imported into an empty profile with
//! the same pool reproduces every mapping and its expiry.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::executor::block_on;
use numpool::test_util::ManualClock;
use numpool::{
    Clock, Engine, EngineConfig, Error, HistoryRow, ImportReport, NewProfile, PhoneNumber,
    PinError, ProfileId, SettingsPatch, SettingsUpdate, StickyMapping, Timestamp,
};
use proptest::prelude::*;

const START: u64 = 1_800_000_000;
const TTL: u32 = 8 * 86_400;

fn n(s: &str) -> PhoneNumber {
    PhoneNumber::parse_sender(s).unwrap()
}

const A: &str = "+13125550001";
const B: &str = "+13125550002";
/// Never in the pool.
const GONE: &str = "+13125550009";

fn engine() -> (Engine, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(START)));
    let config = EngineConfig {
        expire_tick: Duration::from_secs(3600),
        ..EngineConfig::default()
    };
    (
        Engine::start_with_clock(config, clock.clone()).unwrap(),
        clock,
    )
}

fn profile(engine: &Engine, sticky: bool) -> ProfileId {
    block_on(async {
        let p = engine
            .create_profile(NewProfile {
                name: "import".into(),
                number_pool_settings: SettingsUpdate::Merge(SettingsPatch {
                    sticky_sender: Some(sticky),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .id;
        for number in [A, B] {
            engine.assign_number(n(number), Some(p)).await.unwrap();
        }
        p
    })
}

fn row(to: u64, from: &str, ago: u32) -> HistoryRow {
    HistoryRow {
        to: recipient(to),
        from: n(from),
        sent_at: START as u32 - ago,
        created_at: None,
        pinned: false,
    }
}

fn recipient(i: u64) -> PhoneNumber {
    PhoneNumber::from_u64(14_155_550_000 + i).unwrap()
}

fn import(engine: &Engine, p: ProfileId, rows: &[HistoryRow]) -> ImportReport {
    block_on(async {
        let mut import = engine.import_history(p).await.unwrap();
        for r in rows {
            import.push(*r).await.unwrap();
        }
        import.finish().await.unwrap()
    })
}

fn mapping(engine: &Engine, p: ProfileId, to: u64) -> Option<StickyMapping> {
    block_on(engine.mapping(p, recipient(to))).unwrap()
}

/// Rows that fill a batch (1,024 rows; more here) with other recipients, so
/// what follows lands in a later batch.
fn filler() -> Vec<HistoryRow> {
    (1000..1000 + 4096).map(|i| row(i, A, 60)).collect()
}

#[test]
fn only_a_recipients_latest_row_counts_in_any_order_and_batch() {
    for newer_first in [false, true] {
        for across_batches in [false, true] {
            let (engine, _) = engine();
            let p = profile(&engine, true);
            let (older, newer) = (row(1, A, 3000), row(1, B, 1000));
            let mut rows = vec![if newer_first { newer } else { older }];
            if across_batches {
                rows.extend(filler());
            }
            rows.push(if newer_first { older } else { newer });
            let report = import(&engine, p, &rows);
            let m = mapping(&engine, p, 1).expect("mapped");
            assert_eq!(
                (m.from, m.last_used_at, m.expires_at),
                (n(B), newer.sent_at, Some(newer.sent_at + TTL)),
                "newer first {newer_first}, across batches {across_batches}"
            );
            assert_eq!(report.superseded, 1);
            assert_eq!(report.rows, rows.len() as u64);
        }
    }
}

#[test]
fn a_tie_goes_to_the_later_row() {
    let (engine, _) = engine();
    let p = profile(&engine, true);
    import(&engine, p, &[row(1, A, 500), row(1, B, 500)]);
    assert_eq!(mapping(&engine, p, 1).unwrap().from, n(B));
    let mut rows = vec![row(2, B, 500)];
    rows.extend(filler());
    rows.push(row(2, A, 500));
    import(&engine, p, &rows);
    assert_eq!(mapping(&engine, p, 2).unwrap().from, n(A), "across batches");
}

#[test]
fn a_row_older_than_the_ttl_is_expired_and_maps_nothing() {
    let (engine, _) = engine();
    let p = profile(&engine, true);
    let report = import(&engine, p, &[row(1, A, TTL), row(2, A, TTL - 1)]);
    assert_eq!((report.expired, report.mapped), (1, 1));
    assert!(mapping(&engine, p, 1).is_none());
    assert!(mapping(&engine, p, 2).is_some());
}

#[test]
fn a_latest_row_whose_sender_is_not_in_the_pool_maps_nothing() {
    for across_batches in [false, true] {
        let (engine, _) = engine();
        let p = profile(&engine, true);
        // The older row, in the pool, comes first and may already be applied.
        let mut rows = vec![row(1, A, 3000)];
        if across_batches {
            rows.extend(filler());
        }
        rows.push(row(1, GONE, 1000));
        let report = import(&engine, p, &rows);
        assert!(mapping(&engine, p, 1).is_none(), "{across_batches}");
        assert_eq!(report.not_in_pool, 1);
    }
}

#[test]
fn a_newer_or_pinned_mapping_already_there_is_kept() {
    let (engine, clock) = engine();
    let p = profile(&engine, true);
    // A send now: last used now, newer than any row.
    let sent = block_on(engine.send(p, recipient(1))).unwrap();
    block_on(engine.pin(p, recipient(2), n(A))).unwrap();
    clock.advance(Duration::from_secs(10));
    let other = if sent.sender == n(A) { B } else { A };
    let report = import(
        &engine,
        p,
        &[row(1, other, 5), row(2, B, 5), row(3, A, 100)],
    );
    assert_eq!((report.kept_existing, report.mapped), (2, 1));
    assert_eq!(mapping(&engine, p, 1).unwrap().from, sent.sender);
    assert_eq!(mapping(&engine, p, 2).unwrap().from, n(A));
    // An existing mapping older than the row is replaced.
    let report = import(&engine, p, &[row(3, B, 50)]);
    assert_eq!(report.mapped, 1);
    assert_eq!(mapping(&engine, p, 3).unwrap().from, n(B));
}

#[test]
fn the_same_import_twice_leaves_the_same_map() {
    let (engine, _) = engine();
    let p = profile(&engine, true);
    let rows: Vec<HistoryRow> = (0..50)
        .map(|i| {
            row(
                i % 20,
                if i % 3 == 0 { A } else { B },
                100 + (i as u32 * 37) % 900,
            )
        })
        .collect();
    import(&engine, p, &rows);
    let first = block_on(engine.mappings(p)).unwrap();
    let again = import(&engine, p, &rows);
    assert_eq!(block_on(engine.mappings(p)).unwrap(), first);
    assert_eq!(again.mapped, 0, "{again:?}");
    assert_eq!(again.kept_existing, first.len() as u64);
}

#[test]
fn an_import_into_a_profile_with_sticky_off_is_refused() {
    let (engine, _) = engine();
    let p = profile(&engine, false);
    assert!(matches!(
        block_on(engine.import_history(p)),
        Err(Error::Pin(PinError::StickyOff))
    ));
}

#[test]
fn imported_rows_count_toward_no_queue_or_daily_count() {
    let (engine, _) = engine();
    let p = profile(&engine, true);
    import(&engine, p, &[row(1, A, 10), row(2, A, 20)]);
    let status = block_on(engine.number(n(A))).unwrap();
    let capacity = status.capacity.unwrap();
    assert_eq!(
        (capacity.messages_today, capacity.new_recipients_today),
        (0, 0)
    );
    assert_eq!(capacity.wait, Duration::ZERO);
    assert_eq!(status.health.finalized, 0);
}

#[test]
fn a_row_sent_after_the_imports_clock_is_malformed() {
    let (engine, _) = engine();
    let p = profile(&engine, true);
    let mut future = row(1, A, 0);
    future.sent_at += 60;
    let report = import(&engine, p, &[future]);
    assert_eq!((report.malformed, report.mapped), (1, 0));
}

/// A clock whose cheap reading is a few seconds behind its precise one,
/// as the engine's default clock may be a tick behind.
struct Lagging;

impl Clock for Lagging {
    fn now(&self) -> Timestamp {
        Timestamp::from_secs(START - 5)
    }

    fn precise_now(&self) -> Timestamp {
        Timestamp::from_secs(START)
    }
}

#[test]
fn a_row_stamped_now_by_the_callers_clock_is_not_from_the_future() {
    let engine = Engine::start_with_clock(EngineConfig::default(), Arc::new(Lagging)).unwrap();
    let p = profile(&engine, true);
    let report = import(&engine, p, &[row(1, A, 0)]);
    assert_eq!((report.malformed, report.mapped), (0, 1));
}

/// The rules on their own: per recipient, the latest row (ties: later),
/// then expired, not in pool, mapped (no mapping exists before).
fn model(
    rows: &[HistoryRow],
    in_pool: &[PhoneNumber],
    now: u32,
) -> HashMap<PhoneNumber, (PhoneNumber, u32)> {
    let mut latest: HashMap<PhoneNumber, HistoryRow> = HashMap::new();
    for r in rows {
        if latest.get(&r.to).is_none_or(|l| l.sent_at <= r.sent_at) {
            latest.insert(r.to, *r);
        }
    }
    latest
        .into_values()
        .filter(|r| r.sent_at + TTL > now && in_pool.contains(&r.from))
        .map(|r| (r.to, (r.from, r.sent_at)))
        .collect()
}

fn rows_strategy() -> impl Strategy<Value = Vec<HistoryRow>> {
    prop::collection::vec((0u64..40, 0usize..3, 0u32..(TTL + 5000)), 1..300).prop_map(|rows| {
        rows.into_iter()
            .map(|(to, from, ago)| row(to, [A, B, GONE][from], ago))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn an_import_matches_the_rules_whatever_the_order_and_an_export_reimports_exactly(
        rows in rows_strategy(),
        seed in any::<u64>(),
        split in any::<bool>(),
    ) {
        let (engine, _) = engine();
        let p = profile(&engine, true);
        let mut input = rows.clone();
        if split {
            // Part in a later batch.
            let tail = input.split_off(input.len() / 2);
            input.extend(filler());
            input.extend(tail);
        }
        let report = import(&engine, p, &input);
        prop_assert_eq!(
            report.rows,
            report.malformed + report.superseded + report.mapped + report.kept_existing
                + report.expired + report.not_in_pool
        );
        let got: HashMap<PhoneNumber, (PhoneNumber, u32)> = block_on(engine.mappings(p))
            .unwrap()
            .into_iter()
            .filter(|m| m.to.as_u64() < 14_155_551_000)
            .map(|m| (m.to, (m.from, m.last_used_at)))
            .collect();
        prop_assert_eq!(&got, &model(&rows, &[n(A), n(B)], START as u32));

        // The same rows shuffled give the same map.
        let mut shuffled = rows.clone();
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        // Ties are broken by input order, so only shuffle rows of distinct times.
        let distinct = {
            let mut seen = std::collections::HashSet::new();
            rows.iter().all(|r| seen.insert((r.to, r.sent_at)))
        };
        if distinct {
            let (other, _) = engine_pair();
            let q = profile(&other, true);
            import(&other, q, &shuffled);
            let again: HashMap<PhoneNumber, (PhoneNumber, u32)> = block_on(other.mappings(q))
                .unwrap()
                .into_iter()
                .map(|m| (m.to, (m.from, m.last_used_at)))
                .collect();
            prop_assert_eq!(&again, &got);
        }

        // An export imported into an empty profile with the same pool.
        let exported = block_on(engine.mappings(p)).unwrap();
        let back: Vec<HistoryRow> = exported
            .iter()
            .map(|m| HistoryRow {
                to: m.to,
                from: m.from,
                sent_at: m.last_used_at,
                created_at: Some(m.created_at),
                pinned: m.pinned,
            })
            .collect();
        let q = profile(&engine, true);
        import(&engine, q, &back);
        let reimported = block_on(engine.mappings(q)).unwrap();
        prop_assert_eq!(reimported, exported);
    }
}

fn engine_pair() -> (Engine, Arc<ManualClock>) {
    engine()
}
