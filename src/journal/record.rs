//! Journal records and their framing: `[len u32][crc32 u32][payload]`,
//! little-endian, so a torn or corrupted record is recognised on reading.

use crate::clock::Timestamp;
use crate::health::{DeliveryOutcome, HealthSlice};
use crate::number::PhoneNumber;
pub use crate::records::ProfileRecord;
use crate::registry::ProfileId;
use crate::settings::PoolSettings;

/// Largest payload a reader accepts (a guard against reading garbage lengths).
pub const MAX_PAYLOAD: usize = 16 << 20;

/// One change of state. Every record names the profile whose actor wrote it.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// Created or updated (with the settings as they are after the change,
    /// applied at `at` seconds).
    ProfileSaved {
        profile: ProfileRecord,
        at: u32,
    },
    ProfileDeleted {
        profile: ProfileId,
    },
    /// A number's record; `owner` is where it is now (`None`: unassigned).
    NumberSaved {
        profile: ProfileId,
        number: PhoneNumber,
        id: u64,
        owner: Option<ProfileId>,
        created_at: Timestamp,
        updated_at: Timestamp,
    },
    MappingSet {
        profile: ProfileId,
        to: PhoneNumber,
        from: PhoneNumber,
        created_at: u32,
        last_used: u32,
        pinned: bool,
    },
    MappingTouched {
        profile: ProfileId,
        to: PhoneNumber,
        last_used: u32,
    },
    MappingRemoved {
        profile: ProfileId,
        to: PhoneNumber,
    },
    Outcome {
        profile: ProfileId,
        sender: PhoneNumber,
        outcome: DeliveryOutcome,
        at: u32,
    },
    /// A sender's health slices, in snapshots: `(slice, finalized, delivered, spam)`.
    HealthState {
        profile: ProfileId,
        sender: PhoneNumber,
        buckets: Vec<HealthSlice>,
    },
    /// The profile's state was captured for snapshot `snapshot` here.
    SnapshotMark {
        profile: ProfileId,
        snapshot: u64,
    },
    /// The last record of a complete snapshot file.
    SnapshotEnd {
        records: u64,
    },
}

impl Record {
    /// The profile whose actor wrote the record (`None` for file markers).
    pub fn profile(&self) -> Option<ProfileId> {
        match self {
            Record::ProfileSaved { profile, .. } => Some(profile.id),
            Record::ProfileDeleted { profile }
            | Record::NumberSaved { profile, .. }
            | Record::MappingSet { profile, .. }
            | Record::MappingTouched { profile, .. }
            | Record::MappingRemoved { profile, .. }
            | Record::Outcome { profile, .. }
            | Record::HealthState { profile, .. }
            | Record::SnapshotMark { profile, .. } => Some(*profile),
            Record::SnapshotEnd { .. } => None,
        }
    }
}

struct Out<'a>(&'a mut Vec<u8>);

impl Out<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn f64(&mut self, v: f64) {
        self.u64(v.to_bits());
    }
    fn id(&mut self, v: ProfileId) {
        self.0.extend_from_slice(v.0.as_bytes());
    }
    fn opt_id(&mut self, v: Option<ProfileId>) {
        match v {
            Some(id) => {
                self.u8(1);
                self.id(id);
            }
            None => self.u8(0),
        }
    }
    fn number(&mut self, n: PhoneNumber) {
        self.u64(n.as_u64());
    }
    fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn opt_str(&mut self, s: &Option<String>) {
        match s {
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
            None => self.u8(0),
        }
    }
}

/// Why a payload could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

struct In<'a>(&'a [u8]);

impl In<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], Malformed> {
        if self.0.len() < n {
            return Err(Malformed);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, Malformed> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().map_err(|_| Malformed)?,
        ))
    }
    fn u64(&mut self) -> Result<u64, Malformed> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().map_err(|_| Malformed)?,
        ))
    }
    fn f64(&mut self) -> Result<f64, Malformed> {
        Ok(f64::from_bits(self.u64()?))
    }
    fn bool(&mut self) -> Result<bool, Malformed> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Malformed),
        }
    }
    fn id(&mut self) -> Result<ProfileId, Malformed> {
        let bytes: [u8; 16] = self.take(16)?.try_into().map_err(|_| Malformed)?;
        Ok(ProfileId(uuid::Uuid::from_bytes(bytes)))
    }
    fn opt_id(&mut self) -> Result<Option<ProfileId>, Malformed> {
        Ok(if self.bool()? { Some(self.id()?) } else { None })
    }
    fn number(&mut self) -> Result<PhoneNumber, Malformed> {
        PhoneNumber::from_u64(self.u64()?).ok_or(Malformed)
    }
    fn str(&mut self) -> Result<String, Malformed> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| Malformed)
    }
    fn opt_str(&mut self) -> Result<Option<String>, Malformed> {
        Ok(if self.bool()? {
            Some(self.str()?)
        } else {
            None
        })
    }
    fn ts(&mut self) -> Result<Timestamp, Malformed> {
        Ok(Timestamp::from_millis(self.u64()?))
    }
}

fn put_settings(o: &mut Out<'_>, s: &Option<PoolSettings>) {
    match s {
        None => o.u8(0),
        Some(s) => {
            o.u8(1);
            o.u8(u8::from(s.sticky_sender)
                | u8::from(s.geomatch) << 1
                | u8::from(s.skip_unhealthy) << 2
                | u8::from(s.geomatch_region_fallback) << 3);
            o.f64(s.long_code_weight);
            o.f64(s.toll_free_weight);
            o.u64(s.sticky_ttl_secs.unwrap_or(0));
        }
    }
}

fn get_settings(i: &mut In<'_>) -> Result<Option<PoolSettings>, Malformed> {
    if !i.bool()? {
        return Ok(None);
    }
    let flags = i.u8()?;
    let long_code_weight = i.f64()?;
    let toll_free_weight = i.f64()?;
    let ttl = i.u64()?;
    Ok(Some(PoolSettings {
        sticky_sender: flags & 1 != 0,
        geomatch: flags & 2 != 0,
        skip_unhealthy: flags & 4 != 0,
        geomatch_region_fallback: flags & 8 != 0,
        long_code_weight,
        toll_free_weight,
        sticky_ttl_secs: (ttl != 0).then_some(ttl),
    }))
}

/// Appends `record`, framed, to `buf`.
pub fn encode(record: &Record, buf: &mut Vec<u8>) {
    let start = buf.len();
    buf.extend_from_slice(&[0; 8]);
    let mut o = Out(buf);
    match record {
        Record::ProfileSaved { profile: p, at } => {
            o.u8(1);
            o.id(p.id);
            o.str(&p.name);
            o.u8(u8::from(p.enabled));
            o.u32(p.whitelisted_destinations.len() as u32);
            for d in &p.whitelisted_destinations {
                o.str(d);
            }
            o.opt_str(&p.webhook_url);
            o.opt_str(&p.webhook_failover_url);
            put_settings(&mut o, &p.number_pool_settings);
            o.u64(p.created_at.as_millis());
            o.u64(p.updated_at.as_millis());
            o.u32(*at);
        }
        Record::ProfileDeleted { profile } => {
            o.u8(2);
            o.id(*profile);
        }
        Record::NumberSaved {
            profile,
            number,
            id,
            owner,
            created_at,
            updated_at,
        } => {
            o.u8(3);
            o.id(*profile);
            o.number(*number);
            o.u64(*id);
            o.opt_id(*owner);
            o.u64(created_at.as_millis());
            o.u64(updated_at.as_millis());
        }
        Record::MappingSet {
            profile,
            to,
            from,
            created_at,
            last_used,
            pinned,
        } => {
            o.u8(4);
            o.id(*profile);
            o.number(*to);
            o.number(*from);
            o.u32(*created_at);
            o.u32(*last_used);
            o.u8(u8::from(*pinned));
        }
        Record::MappingTouched {
            profile,
            to,
            last_used,
        } => {
            o.u8(5);
            o.id(*profile);
            o.number(*to);
            o.u32(*last_used);
        }
        Record::MappingRemoved { profile, to } => {
            o.u8(6);
            o.id(*profile);
            o.number(*to);
        }
        Record::Outcome {
            profile,
            sender,
            outcome,
            at,
        } => {
            o.u8(7);
            o.id(*profile);
            o.number(*sender);
            o.u8(u8::from(outcome.delivered) | u8::from(outcome.spam) << 1);
            o.u32(*at);
        }
        Record::HealthState {
            profile,
            sender,
            buckets,
        } => {
            o.u8(8);
            o.id(*profile);
            o.number(*sender);
            o.u32(buckets.len() as u32);
            for &(a, b, c, d) in buckets {
                o.u32(a);
                o.u32(b);
                o.u32(c);
                o.u32(d);
            }
        }
        Record::SnapshotMark { profile, snapshot } => {
            o.u8(9);
            o.id(*profile);
            o.u64(*snapshot);
        }
        Record::SnapshotEnd { records } => {
            o.u8(10);
            o.u64(*records);
        }
    }
    let payload_len = (buf.len() - start - 8) as u32;
    let crc = crc32fast::hash(&buf[start + 8..]);
    buf[start..start + 4].copy_from_slice(&payload_len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes one payload (without its frame).
pub fn decode(payload: &[u8]) -> Result<Record, Malformed> {
    let mut i = In(payload);
    let record = match i.u8()? {
        1 => {
            let id = i.id()?;
            let name = i.str()?;
            let enabled = i.bool()?;
            let n = i.u32()? as usize;
            let mut whitelisted_destinations = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                whitelisted_destinations.push(i.str()?);
            }
            let webhook_url = i.opt_str()?;
            let webhook_failover_url = i.opt_str()?;
            let number_pool_settings = get_settings(&mut i)?;
            let created_at = i.ts()?;
            let updated_at = i.ts()?;
            let at = i.u32()?;
            Record::ProfileSaved {
                profile: ProfileRecord {
                    id,
                    name,
                    enabled,
                    whitelisted_destinations,
                    webhook_url,
                    webhook_failover_url,
                    number_pool_settings,
                    created_at,
                    updated_at,
                },
                at,
            }
        }
        2 => Record::ProfileDeleted { profile: i.id()? },
        3 => Record::NumberSaved {
            profile: i.id()?,
            number: i.number()?,
            id: i.u64()?,
            owner: i.opt_id()?,
            created_at: i.ts()?,
            updated_at: i.ts()?,
        },
        4 => Record::MappingSet {
            profile: i.id()?,
            to: i.number()?,
            from: i.number()?,
            created_at: i.u32()?,
            last_used: i.u32()?,
            pinned: i.bool()?,
        },
        5 => Record::MappingTouched {
            profile: i.id()?,
            to: i.number()?,
            last_used: i.u32()?,
        },
        6 => Record::MappingRemoved {
            profile: i.id()?,
            to: i.number()?,
        },
        7 => {
            let profile = i.id()?;
            let sender = i.number()?;
            let bits = i.u8()?;
            Record::Outcome {
                profile,
                sender,
                outcome: DeliveryOutcome {
                    delivered: bits & 1 != 0,
                    spam: bits & 2 != 0,
                },
                at: i.u32()?,
            }
        }
        8 => {
            let profile = i.id()?;
            let sender = i.number()?;
            let n = i.u32()? as usize;
            let mut buckets = Vec::with_capacity(n.min(4096));
            for _ in 0..n {
                buckets.push((i.u32()?, i.u32()?, i.u32()?, i.u32()?));
            }
            Record::HealthState {
                profile,
                sender,
                buckets,
            }
        }
        9 => Record::SnapshotMark {
            profile: i.id()?,
            snapshot: i.u64()?,
        },
        10 => Record::SnapshotEnd { records: i.u64()? },
        _ => return Err(Malformed),
    };
    if !i.0.is_empty() {
        return Err(Malformed);
    }
    Ok(record)
}

/// Decodes framed records one at a time, stopping at the first torn or
/// corrupt one; [`Records::valid`] is then the length of the good prefix.
pub struct Records<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Records<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Records { bytes, at: 0 }
    }

    /// Bytes of whole, valid records read so far.
    pub fn valid(&self) -> usize {
        self.at
    }
}

impl Iterator for Records<'_> {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        let rest = &self.bytes[self.at..];
        if rest.len() < 8 {
            return None;
        }
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        if len > MAX_PAYLOAD || rest.len() - 8 < len {
            return None;
        }
        let payload = &rest[8..8 + len];
        if crc32fast::hash(payload) != crc {
            return None;
        }
        let record = decode(payload).ok()?;
        self.at += 8 + len;
        Some(record)
    }
}

/// Reads framed records from `bytes`. Returns them with the length of the
/// valid prefix: reading stops at the first torn or corrupt record.
pub fn read_all(bytes: &[u8]) -> (Vec<Record>, usize) {
    let mut records = Records::new(bytes);
    let all = records.by_ref().collect();
    (all, records.valid())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Record> {
        let p = ProfileId::new_v4();
        let n = PhoneNumber::parse_e164("+13125550001").unwrap();
        let to = PhoneNumber::parse_e164("+14155550100").unwrap();
        vec![
            Record::ProfileSaved {
                profile: ProfileRecord {
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
                    created_at: Timestamp::from_millis(5),
                    updated_at: Timestamp::from_millis(6),
                },
                at: 7,
            },
            Record::NumberSaved {
                profile: p,
                number: n,
                id: 3,
                owner: Some(p),
                created_at: Timestamp::from_millis(1),
                updated_at: Timestamp::from_millis(2),
            },
            Record::MappingSet {
                profile: p,
                to,
                from: n,
                created_at: 10,
                last_used: 11,
                pinned: true,
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
}
