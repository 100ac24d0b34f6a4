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

fn mapping(profile: ProfileId, i: u64, flags: u8) -> Record {
    Record::MappingSet {
        profile,
        to: PhoneNumber::from_u64(14_155_550_000 + i).unwrap(),
        from: PhoneNumber::from_u64(13_125_550_000 + i % 50).unwrap(),
        created_at: 1_000 + i as u32,
        last_used: 2_000 + i as u32,
        pinned: flags & 1 != 0,
        history: flags & 2 != 0,
    }
}

/// The tag of every frame in `bytes`, in order.
fn frame_tags(bytes: &[u8]) -> Vec<u8> {
    let mut tags = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        tags.push(bytes[at + FRAME_LEN]);
        at += FRAME_LEN + len;
    }
    tags
}

#[test]
fn new_mappings_of_a_profile_share_frames_and_read_back_one_by_one() {
    let (a, b) = (ProfileId::new_v4(), ProfileId::new_v4());
    // Every value of the flags (pinned, imported history) in the first run.
    let mut records: Vec<Record> = (0..4).map(|i| mapping(a, i, i as u8)).collect();
    records.push(Record::OptIn {
        profile: a,
        to: PhoneNumber::from_u64(14_155_550_000).unwrap(),
    });
    records.push(mapping(a, 4, 0));
    records.extend((0..MAX_MAPPINGS_PER_RECORD as u64 + 904).map(|i| mapping(b, i, 1)));
    records.extend((5..7).map(|i| mapping(a, i, 2)));
    let mut buf = Vec::new();
    encode_all(&records, &mut buf);
    let (read, valid) = read_all(&buf);
    assert!(read == records, "the same records, in order");
    assert_eq!(valid, buf.len());
    // A run of one stays a `MappingSet`; a run longer than a frame holds
    // goes on in the next; another profile's mappings start a new frame.
    assert_eq!(
        frame_tags(&buf),
        [
            tag::MAPPINGS_SET,
            tag::OPT_IN,
            tag::MAPPING_SET,
            tag::MAPPINGS_SET,
            tag::MAPPINGS_SET,
            tag::MAPPINGS_SET
        ]
    );
    // 25 bytes a mapping, 29 a frame of them (its frame, tag, id and
    // count), against 50 for a `MappingSet`.
    let (grouped, opt_in, single) = (4 + MAX_MAPPINGS_PER_RECORD + 904 + 2, 33, 50);
    assert_eq!(buf.len(), 25 * grouped + 29 * 4 + opt_in + single);
    // Read as a stream, cut anywhere, as recovery reads.
    for step in [7, 4096] {
        let (ahead, decoded) = decoded_from(&buf, step);
        assert!(ahead == records, "step {step}");
        assert!(decoded.whole && decoded.valid == buf.len());
    }
}

#[test]
fn a_torn_or_flipped_frame_of_mappings_loses_all_of_them() {
    let p = ProfileId::new_v4();
    let mut buf = Vec::new();
    encode(&Record::Probe, &mut buf);
    let probe = buf.len();
    let run: Vec<Record> = (0..5).map(|i| mapping(p, i, 0)).collect();
    encode_all(&run, &mut buf);
    encode(&Record::Probe, &mut buf);
    // The last probe's frame is 9 bytes.
    let (read, valid) = read_all(&buf[..buf.len() - 5]);
    assert_eq!(
        (read.len(), valid),
        (6, buf.len() - 9),
        "torn after the run"
    );
    let (read, valid) = read_all(&buf[..buf.len() - 20]);
    assert_eq!(
        (read, valid),
        (vec![Record::Probe], probe),
        "torn inside it"
    );
    let mut flipped = buf.clone();
    flipped[probe + FRAME_LEN + 30] ^= 0x01;
    let (read, valid) = read_all(&flipped);
    assert_eq!((read, valid), (vec![Record::Probe], probe), "flipped");
    // Read part way into the run, only the frames wholly handed out count.
    let mut records = Records::new(&buf);
    assert_eq!(records.by_ref().take(3).count(), 3);
    assert_eq!(records.valid(), probe);
    assert_eq!(records.by_ref().take(3).count(), 3);
    assert_eq!(records.valid(), buf.len() - 9);
}

#[test]
fn a_malformed_frame_of_mappings_adds_no_record() {
    let p = ProfileId::new_v4();
    let mut two = Vec::new();
    encode_all(&[mapping(p, 1, 0), mapping(p, 2, 0)], &mut two);
    let payload = two[FRAME_LEN..].to_vec();
    let mut out = VecDeque::from([Record::Probe]);
    assert_eq!(decode_into(&payload, &mut out), Ok(()));
    assert_eq!(out.len(), 3);
    // The count at bytes 17..21 of the payload (after the tag and the id).
    let with_count = |count: u32| {
        let mut bad = payload.clone();
        bad[17..21].copy_from_slice(&count.to_le_bytes());
        bad
    };
    let mut flags = payload.clone();
    *flags.last_mut().unwrap() = 4;
    // More mappings than a frame may hold, with the bytes for them.
    let too_many: Vec<Record> = (0..=MAX_MAPPINGS_PER_RECORD as u64)
        .map(|i| mapping(p, i, 0))
        .collect();
    let mut over = Vec::new();
    encode_mappings(p, &too_many, &mut over);
    let over = over[FRAME_LEN..].to_vec();
    for bad in [
        with_count(0),
        with_count(1),
        with_count(3),
        flags,
        payload[..payload.len() - 1].to_vec(),
        over,
    ] {
        let mut out = VecDeque::from([Record::Probe]);
        assert_eq!(decode_into(&bad, &mut out), Err(Malformed));
        assert_eq!(out, [Record::Probe], "nothing added");
    }
    // Framed with a good checksum, a malformed one stops reading there.
    let mut framed = Vec::new();
    encode(&Record::Probe, &mut framed);
    let start = open_frame(&mut framed);
    framed.extend_from_slice(&with_count(3));
    close_frame(&mut framed, start);
    assert_eq!(read_all(&framed), (vec![Record::Probe], start));
}
