//! Unit tests of `record.rs`.

use super::*;
use crate::settings::PoolSettings;

pub(crate) fn sample() -> Vec<Record> {
    let p = ProfileId::new_v4();
    let n = PhoneNumber::parse_e164("+13125550001").unwrap();
    let to = PhoneNumber::parse_e164("+14155550100").unwrap();
    vec![
        Record::ProfileSaved {
            profile: Box::new(ProfileRecord {
                id: p,
                name: "a".into(),
                enabled: true,
                whitelisted_destinations: vec!["US".into()],
                webhook_url: None,
                webhook_failover_url: Some("https://x".into()),
                number_pool_settings: Some(PoolSettings {
                    sticky_sender: true,
                    sticky_ttl_secs: Some(60),
                    ..Default::default()
                }),
                capacity: crate::CapacityLimits {
                    max_queue_seconds: 60.5,
                    daily_message_limit: Some(1000),
                    new_recipients_per_sender_per_day: Some(150),
                    daily_reset_time_zone: "America/Los_Angeles".into(),
                },
                created_at: Timestamp::from_millis(5),
                updated_at: Timestamp::from_millis(6),
            }),
            at: 7,
        },
        Record::NumberSaved(NumberRecord {
            number: n,
            id: 3,
            profile: Some(p),
            created_at: Timestamp::from_millis(1),
            updated_at: Timestamp::from_millis(2),
            messages_per_second: Some(2.5),
        }),
        Record::NumberSaved(NumberRecord {
            number: to,
            id: 4,
            profile: None,
            created_at: Timestamp::from_millis(1),
            updated_at: Timestamp::from_millis(2),
            messages_per_second: None,
        }),
        Record::QueueEnds {
            profile: p,
            ends: vec![(n, 1_800_000_000_123_456_789), (to, 1)],
        },
        Record::DailyCount {
            profile: p,
            day: 20_000,
            profile_messages: 128,
            sender: Some(DailyCounts {
                sender: n,
                day: 20_000,
                messages: 64,
                new_recipients: 9,
            }),
        },
        Record::OptOut {
            profile: p,
            to,
            opt_out: OptOut {
                keyword: Some(OptOutKeyword::Unsubscribe),
                via: Some(n),
                at: 99,
            },
        },
        Record::OptOut {
            profile: p,
            to: n,
            opt_out: OptOut {
                keyword: None,
                via: None,
                at: 1,
            },
        },
        Record::OptIn { profile: p, to },
        Record::Replicated { position: 77 },
        Record::DailyCount {
            profile: p,
            day: -1,
            profile_messages: 1,
            sender: None,
        },
        Record::MappingSet {
            profile: p,
            to,
            from: n,
            created_at: 10,
            last_used: 11,
            pinned: true,
            history: true,
        },
        Record::MappingTouched {
            profile: p,
            to,
            last_used: 99,
        },
        Record::MappingRemoved { profile: p, to },
        Record::Outcome {
            profile: p,
            sender: n,
            outcome: DeliveryOutcome {
                delivered: false,
                spam: true,
            },
            at: 12,
        },
        Record::HealthState {
            profile: p,
            sender: n,
            buckets: vec![(1, 2, 3, 4)],
        },
        Record::SnapshotMark {
            profile: p,
            snapshot: 4,
        },
        Record::SnapshotEnd { records: 8 },
        Record::Probe,
        Record::ProfileDeleted { profile: p },
    ]
}

#[test]
fn records_round_trip() {
    let records = sample();
    let mut buf = Vec::new();
    for r in &records {
        encode(r, &mut buf);
    }
    let (read, valid) = read_all(&buf);
    assert_eq!(read, records);
    assert_eq!(valid, buf.len());
}

#[test]
fn a_number_record_without_a_rate_reads_as_the_kind_default() {
    // The layout before rates: the same fields, without the last.
    let record = NumberRecord {
        number: PhoneNumber::parse_e164("+13125550001").unwrap(),
        id: 3,
        profile: None,
        created_at: Timestamp::from_millis(1),
        updated_at: Timestamp::from_millis(2),
        messages_per_second: Some(7.0),
    };
    let mut buf = Vec::new();
    encode(&Record::NumberSaved(record), &mut buf);
    let payload = &buf[FRAME_LEN..buf.len() - 8];
    assert_eq!(
        decode(payload),
        Ok(Record::NumberSaved(NumberRecord {
            messages_per_second: None,
            ..record
        }))
    );
}

#[test]
fn reading_stops_at_a_torn_or_flipped_record() {
    let mut buf = Vec::new();
    for r in sample() {
        encode(&r, &mut buf);
    }
    let (_, full) = read_all(&buf);
    // Torn: the last record cut in half.
    let torn = &buf[..buf.len() - 5];
    let (records, valid) = read_all(torn);
    assert_eq!(records.len(), sample().len() - 1);
    assert!(valid < full);
    // Flipped: a byte inside the third record.
    let mut flipped = buf.clone();
    let mut one = Vec::new();
    encode(&sample()[0], &mut one);
    let mut two = Vec::new();
    encode(&sample()[1], &mut two);
    flipped[one.len() + two.len() + 10] ^= 0x40;
    let (records, valid) = read_all(&flipped);
    assert_eq!(records.len(), 2);
    assert_eq!(valid, one.len() + two.len());
}

/// A source that hands out at most `step` bytes a read, so that records
/// arrive cut at every possible place.
struct Trickle<'a> {
    bytes: &'a [u8],
    step: usize,
}

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.bytes.len());
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        Ok(n)
    }
}

fn decoded_from(bytes: &[u8], step: usize) -> (Vec<Record>, Decoded) {
    let mut read = Vec::new();
    let decoded = decode_ahead(Trickle { bytes, step }, |r| read.push(r)).unwrap();
    (read, decoded)
}

#[test]
fn decoding_ahead_reads_what_reading_in_place_reads() {
    // Enough records for several batches, and one larger than a read
    // buffer (a profile record with a 5 MB name).
    let mut records: Vec<Record> = (0..3).flat_map(|_| sample()).collect();
    records.extend((0..10_000u64).map(|i| Record::MappingRemoved {
        profile: ProfileId::new_v4(),
        to: PhoneNumber::from_u64(14_155_550_000 + i).unwrap(),
    }));
    let Record::ProfileSaved { profile, at } = &sample()[0] else {
        panic!("the sample starts with a profile");
    };
    let mut large = profile.clone();
    large.name = "n".repeat(5 << 20);
    records.insert(
        20,
        Record::ProfileSaved {
            profile: large,
            at: *at,
        },
    );
    let mut buf = Vec::new();
    for r in &records {
        encode(r, &mut buf);
    }
    for step in [7, 4096, usize::MAX] {
        let (read, decoded) = decoded_from(&buf, step);
        assert_eq!(read.len(), records.len(), "step {step}");
        assert!(read == records, "step {step}");
        assert_eq!(
            decoded,
            Decoded {
                valid: buf.len(),
                whole: true
            }
        );
    }
    // Torn at the end, and a flipped byte in the middle: what comes before
    // is read, the rest is not, and the source is not whole.
    let (read, decoded) = decoded_from(&buf[..buf.len() - 3], 1000);
    assert_eq!(read.len(), records.len() - 1);
    assert!(!decoded.whole);
    assert_eq!(decoded.valid, read_all(&buf[..buf.len() - 3]).1);
    let mut flipped = buf.clone();
    let middle = buf.len() - 20 * 40;
    flipped[middle] ^= 0x40;
    let (read, decoded) = decoded_from(&flipped, 1 << 20);
    let (in_place, valid) = read_all(&flipped);
    assert!(read == in_place);
    assert_eq!(
        decoded,
        Decoded {
            valid,
            whole: false
        }
    );
    assert!(valid < middle);
}
