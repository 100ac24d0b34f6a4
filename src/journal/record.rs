//! Journal records and their framing.
//!
//! (One file, longer than most: the layout table below, the encoder and the
//! decoder of every record kind are kept side by side, so that a change to
//! one is seen next to the others. The tests are in `record_tests.rs`.)
//!
//! Every record is framed as
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | payload length `n`, u32 little-endian (at most [`MAX_PAYLOAD`]) |
//! | 4..8 | CRC-32 (IEEE) of the payload, u32 little-endian |
//! | 8..8+n | payload: a one-byte tag, then the fields below |
//!
//! so a torn or corrupted record is recognised on reading. Payload fields,
//! all little-endian: `id` is a profile id (16 bytes, the UUID), `number` a
//! packed phone number (u64, see `PhoneNumber::as_u64`), `secs` seconds
//! since the Unix epoch (u32), `ms` milliseconds (u64), `str` a u32 length
//! and UTF-8 bytes.
//!
//! | tag | record | fields after the tag |
//! |---|---|---|
//! | 1 | `ProfileSaved` | `at` secs, the profile record as JSON (`str`) |
//! | 2 | `ProfileDeleted` | id |
//! | 3 | `NumberSaved` | number, number id u64, owner (u8 0/1 + id), created ms, updated ms, own rate f64 bits (NaN: none; absent in older records) |
//! | 4 | `MappingSet` | id, to number, from number, created secs, last used secs, flags u8 (1 pinned, 2 imported history) |
//! | 5 | `MappingTouched` | id, to number, last used secs |
//! | 6 | `MappingRemoved` | id, to number |
//! | 7 | `Outcome` | id, sender number, bits u8 (1 delivered, 2 spam), at secs |
//! | 8 | `HealthState` | id, sender number, count u32, then count x (slice, finalized, delivered, spam) u32 |
//! | 9 | `SnapshotMark` | id, snapshot u64 |
//! | 10 | `SnapshotEnd` | records u64 (as read: a `MappingsSet` counts its mappings) |
//! | 11 | `Probe` | nothing: written to test that a failed journal can write again; ignored |
//! | 13 | `OptOut` | id, to number, keyword u8 (0: set through the API), u8 0/1 + via number, at secs |
//! | 14 | `OptIn` | id, to number |
//! | 15 | `Replicated` | position u64: the local log holds the cluster's log up to here |
//! | 12 | `DailyCount` | id, day i32, profile messages u32, u8 0/1 + (sender number, messages u32, new recipients u32) |
//! | 16 | `QueueEnds` | id, count u32, then count x (sender number, queue end u64 ns since the epoch) |
//! | 17 | `MappingsSet` | id, count u32 (at least 1), then count x (to number, from number, created secs, last used secs, flags u8 as in `MappingSet`) |
//!
//! `MappingsSet` is how a run of new mappings of one profile is written
//! ([`encode_all`]): one frame and one checksum for up to
//! [`MAX_MAPPINGS_PER_RECORD`] of them, 25 bytes each instead of a 50-byte
//! `MappingSet` frame each. It reads back as that many `MappingSet`
//! records. A torn one loses all of them, as the append that wrote them is
//! acknowledged whole or not at all; damage inside one puts all of them
//! aside (`numpool repair`).
//!
//! Profile records are JSON so that a new profile field or setting needs no
//! new layout here; everything on the hot path is fixed-size binary.

use std::collections::VecDeque;

use crate::clock::Timestamp;
use crate::ids::ProfileId;
use crate::number::PhoneNumber;
use crate::resources::{NumberRecord, ProfileRecord};
use crate::selection::compliance::{OptOut, OptOutKeyword};
use crate::selection::health::{DeliveryOutcome, HealthSlice};
use crate::selection::profile::DailyCounts;

/// Largest payload a reader accepts (a guard against reading garbage lengths).
pub(crate) const MAX_PAYLOAD: usize = 16 << 20;

/// Bytes of a record's frame before its payload.
pub(crate) const FRAME_LEN: usize = 8;

/// The tag byte of each record.
mod tag {
    pub(super) const PROFILE_SAVED: u8 = 1;
    pub(super) const PROFILE_DELETED: u8 = 2;
    pub(super) const NUMBER_SAVED: u8 = 3;
    pub(super) const MAPPING_SET: u8 = 4;
    pub(super) const MAPPING_TOUCHED: u8 = 5;
    pub(super) const MAPPING_REMOVED: u8 = 6;
    pub(super) const OUTCOME: u8 = 7;
    pub(super) const HEALTH_STATE: u8 = 8;
    pub(super) const SNAPSHOT_MARK: u8 = 9;
    pub(super) const SNAPSHOT_END: u8 = 10;
    pub(super) const PROBE: u8 = 11;
    pub(super) const DAILY_COUNT: u8 = 12;
    pub(super) const OPT_OUT: u8 = 13;
    pub(super) const OPT_IN: u8 = 14;
    pub(super) const REPLICATED: u8 = 15;
    pub(super) const QUEUE_ENDS: u8 = 16;
    pub(super) const MAPPINGS_SET: u8 = 17;
}

/// The most mappings one `MappingsSet` record holds (25 bytes each): a
/// frame stays far below a piece of the cluster's log (1 MiB).
pub(crate) const MAX_MAPPINGS_PER_RECORD: usize = 4096;

/// The most senders one `QueueEnds` record holds (16 bytes each), so that a
/// record stays small whatever the pool's size.
pub(crate) const MAX_QUEUE_ENDS: usize = 4096;

/// One change of state.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Record {
    /// A profile created or updated, with its settings as they are after
    /// the change, applied at `at` seconds.
    ProfileSaved {
        /// The whole record (boxed: it is ten times the size of any other
        /// record, and every record is moved by value while replaying).
        profile: Box<ProfileRecord>,
        /// When the change was applied.
        at: u32,
    },
    /// A profile deleted (its numbers become unassigned).
    ProfileDeleted {
        /// The profile.
        profile: ProfileId,
    },
    /// A number's record; `profile` is where it is now (`None`: unassigned).
    /// Applying it moves the number, health and all, from where it was.
    NumberSaved(NumberRecord),
    /// A mapping made, replaced or pinned.
    MappingSet {
        /// The profile.
        profile: ProfileId,
        /// The recipient.
        to: PhoneNumber,
        /// The sender.
        from: PhoneNumber,
        /// When it was made.
        created_at: u32,
        /// When it was last used.
        last_used: u32,
        /// Whether it is pinned.
        pinned: bool,
        /// Imported message history: it counts toward no daily cap (a
        /// mapping made by a send counts as a new recipient of its sender).
        history: bool,
    },
    /// A mapping used in a later minute than before (coarse touches).
    MappingTouched {
        /// The profile.
        profile: ProfileId,
        /// The recipient.
        to: PhoneNumber,
        /// When it was used.
        last_used: u32,
    },
    /// A mapping broken.
    MappingRemoved {
        /// The profile.
        profile: ProfileId,
        /// The recipient.
        to: PhoneNumber,
    },
    /// A delivery outcome of a sender.
    Outcome {
        /// The profile owning the sender.
        profile: ProfileId,
        /// The sender.
        sender: PhoneNumber,
        /// What happened.
        outcome: DeliveryOutcome,
        /// When it was reported.
        at: u32,
    },
    /// A sender's health slices, in snapshots.
    HealthState {
        /// The profile owning the sender.
        profile: ProfileId,
        /// The sender.
        sender: PhoneNumber,
        /// `(slice, finalized, delivered, spam)`.
        buckets: Vec<HealthSlice>,
    },
    /// The profile's state was captured for snapshot `snapshot` here: its
    /// records before this one are in the snapshot.
    SnapshotMark {
        /// The profile.
        profile: ProfileId,
        /// The snapshot.
        snapshot: u64,
    },
    /// The last record of a complete snapshot file.
    SnapshotEnd {
        /// Records before it.
        records: u64,
    },
    /// Written by a failed journal to find out whether it can write again.
    Probe,
    /// A recipient opted out of a profile.
    OptOut {
        /// The profile.
        profile: ProfileId,
        /// The recipient.
        to: PhoneNumber,
        /// How and when.
        opt_out: OptOut,
    },
    /// A recipient opted back in.
    OptIn {
        /// The profile.
        profile: ProfileId,
        /// The recipient.
        to: PhoneNumber,
    },
    /// In a cluster: everything before this record, and nothing after it,
    /// is the cluster's log up to `position`.
    Replicated {
        /// The position of the last batch of the cluster's log.
        position: u64,
    },
    /// Daily counts of a profile (and of one of its senders) on `day`:
    /// exact in snapshots, reserved ahead in blocks in the log.
    DailyCount {
        /// The profile.
        profile: ProfileId,
        /// Days since 1970-01-01 in the profile's time zone.
        day: i32,
        /// Sends of the profile that day.
        profile_messages: u32,
        /// A sender's counts that day.
        sender: Option<DailyCounts>,
    },
    /// Where some senders' queues end (nanoseconds since the Unix epoch):
    /// written every 100 ms for the senders whose queue end moved, and in
    /// snapshots, so that a new leader (or a restart) starts each sender's
    /// queue where it was. At most [`MAX_QUEUE_ENDS`] senders.
    QueueEnds {
        /// The profile.
        profile: ProfileId,
        /// `(sender, queue end)`.
        ends: Vec<(PhoneNumber, u64)>,
    },
}

/// How recovery and a cluster standby apply a record: the one place every
/// kind of record is classified ([`Record::applies`] lists them all, so a
/// new kind is placed there, and the appliers follow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applies {
    /// One profile's own state (mappings, outcomes, health, daily counts,
    /// opt-outs, queue ends): `recovery::apply_to_profile`.
    ProfileState(ProfileId),
    /// A profile created or changed.
    ProfileSaved,
    /// A profile deleted.
    ProfileDeleted,
    /// A number assigned, moved, unassigned or given a rate.
    NumberSaved,
    /// The position of the cluster's log the files hold.
    Replicated,
    /// File bookkeeping (snapshot marks and ends, probes): changes nothing.
    Nothing,
}

/// What of a profile's state a record written for it changes, so that a
/// reply that reads it waits for it (`selection::unsettled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Touches {
    /// One recipient's mapping or opt-out.
    Recipient(PhoneNumber),
    /// The profile's daily counts.
    Daily,
    /// Anything a read of the profile may show.
    Whole,
}

impl Record {
    /// How the record is applied; see [`Applies`].
    pub(crate) fn applies(&self) -> Applies {
        match self {
            Record::MappingSet { profile, .. }
            | Record::MappingTouched { profile, .. }
            | Record::MappingRemoved { profile, .. }
            | Record::Outcome { profile, .. }
            | Record::HealthState { profile, .. }
            | Record::DailyCount { profile, .. }
            | Record::OptOut { profile, .. }
            | Record::OptIn { profile, .. }
            | Record::QueueEnds { profile, .. } => Applies::ProfileState(*profile),
            Record::ProfileSaved { .. } => Applies::ProfileSaved,
            Record::ProfileDeleted { .. } => Applies::ProfileDeleted,
            Record::NumberSaved(_) => Applies::NumberSaved,
            Record::Replicated { .. } => Applies::Replicated,
            Record::SnapshotMark { .. } | Record::SnapshotEnd { .. } | Record::Probe => {
                Applies::Nothing
            }
        }
    }

    /// What of its profile's state the record changes; see [`Touches`].
    pub(crate) fn touches(&self) -> Touches {
        match self {
            Record::MappingSet { to, .. }
            | Record::MappingTouched { to, .. }
            | Record::MappingRemoved { to, .. }
            | Record::OptOut { to, .. }
            | Record::OptIn { to, .. } => Touches::Recipient(*to),
            Record::DailyCount { .. } => Touches::Daily,
            Record::ProfileSaved { .. }
            | Record::ProfileDeleted { .. }
            | Record::NumberSaved(_)
            | Record::Outcome { .. }
            | Record::HealthState { .. }
            | Record::QueueEnds { .. }
            | Record::SnapshotMark { .. }
            | Record::SnapshotEnd { .. }
            | Record::Probe
            | Record::Replicated { .. } => Touches::Whole,
        }
    }

    /// The profile whose state (alone) the record changes, for snapshot
    /// markers. `None` for records about numbers (they move between
    /// profiles, and are only written outside a snapshot's first phase) and
    /// for file markers.
    pub(crate) fn profile(&self) -> Option<ProfileId> {
        match self {
            Record::ProfileSaved { profile, .. } => Some(profile.id),
            Record::ProfileDeleted { profile }
            | Record::MappingSet { profile, .. }
            | Record::MappingTouched { profile, .. }
            | Record::MappingRemoved { profile, .. }
            | Record::Outcome { profile, .. }
            | Record::HealthState { profile, .. }
            | Record::SnapshotMark { profile, .. }
            | Record::DailyCount { profile, .. }
            | Record::OptOut { profile, .. }
            | Record::OptIn { profile, .. }
            | Record::QueueEnds { profile, .. } => Some(*profile),
            Record::NumberSaved(_)
            | Record::SnapshotEnd { .. }
            | Record::Probe
            | Record::Replicated { .. } => None,
        }
    }
}

struct Out<'a>(&'a mut Vec<u8>);

/// Bytes of a mapping's fields after its profile: recipient, sender,
/// created, last used (8, 8, 4, 4) and a flags byte.
const MAPPING_FIELDS: usize = 25;

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
    fn id(&mut self, v: ProfileId) {
        self.0.extend_from_slice(v.0.as_bytes());
    }
    fn number(&mut self, n: PhoneNumber) {
        self.u64(n.as_u64());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    /// A mapping's fields after its profile (`MappingSet`, `MappingsSet`);
    /// nothing for another record.
    fn mapping(&mut self, record: &Record) {
        if let Record::MappingSet {
            to,
            from,
            created_at,
            last_used,
            pinned,
            history,
            ..
        } = record
        {
            // One copy of the 25 bytes rather than five growing pushes: a
            // batch's new mappings are most of what the journal encodes.
            let mut fields = [0u8; MAPPING_FIELDS];
            fields[0..8].copy_from_slice(&to.as_u64().to_le_bytes());
            fields[8..16].copy_from_slice(&from.as_u64().to_le_bytes());
            fields[16..20].copy_from_slice(&created_at.to_le_bytes());
            fields[20..24].copy_from_slice(&last_used.to_le_bytes());
            // Bit 0: pinned; bit 1: imported history.
            fields[24] = u8::from(*pinned) | (u8::from(*history) << 1);
            self.0.extend_from_slice(&fields);
        }
    }
}

/// Why a payload could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed;

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
    fn bytes(&mut self) -> Result<&[u8], Malformed> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn ts(&mut self) -> Result<Timestamp, Malformed> {
        Ok(Timestamp::from_millis(self.u64()?))
    }
    /// A mapping of `profile` (see [`Out::mapping`]).
    fn mapping(&mut self, profile: ProfileId) -> Result<Record, Malformed> {
        let (to, from) = (self.number()?, self.number()?);
        let (created_at, last_used) = (self.u32()?, self.u32()?);
        let flags = self.u8()?;
        if flags > 3 {
            return Err(Malformed);
        }
        Ok(Record::MappingSet {
            profile,
            to,
            from,
            created_at,
            last_used,
            pinned: flags & 1 != 0,
            history: flags & 2 != 0,
        })
    }
}

/// Appends `record`, framed, to `buf`.
pub(crate) fn encode(record: &Record, buf: &mut Vec<u8>) {
    let start = open_frame(buf);
    let mut o = Out(buf);
    match record {
        Record::ProfileSaved { profile, at } => {
            o.u8(tag::PROFILE_SAVED);
            o.u32(*at);
            let json = serde_json::to_vec(profile).expect("a profile record serializes");
            o.bytes(&json);
        }
        Record::ProfileDeleted { profile } => {
            o.u8(tag::PROFILE_DELETED);
            o.id(*profile);
        }
        Record::NumberSaved(r) => {
            o.u8(tag::NUMBER_SAVED);
            o.number(r.number);
            o.u64(r.id);
            match r.profile {
                Some(id) => {
                    o.u8(1);
                    o.id(id);
                }
                None => o.u8(0),
            }
            o.u64(r.created_at.as_millis());
            o.u64(r.updated_at.as_millis());
            o.u64(r.messages_per_second.unwrap_or(f64::NAN).to_bits());
        }
        Record::MappingSet { profile, .. } => {
            o.u8(tag::MAPPING_SET);
            o.id(*profile);
            o.mapping(record);
        }
        Record::MappingTouched {
            profile,
            to,
            last_used,
        } => {
            o.u8(tag::MAPPING_TOUCHED);
            o.id(*profile);
            o.number(*to);
            o.u32(*last_used);
        }
        Record::MappingRemoved { profile, to } => {
            o.u8(tag::MAPPING_REMOVED);
            o.id(*profile);
            o.number(*to);
        }
        Record::Outcome {
            profile,
            sender,
            outcome,
            at,
        } => {
            o.u8(tag::OUTCOME);
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
            o.u8(tag::HEALTH_STATE);
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
            o.u8(tag::SNAPSHOT_MARK);
            o.id(*profile);
            o.u64(*snapshot);
        }
        Record::SnapshotEnd { records } => {
            o.u8(tag::SNAPSHOT_END);
            o.u64(*records);
        }
        Record::Probe => o.u8(tag::PROBE),
        Record::OptOut {
            profile,
            to,
            opt_out,
        } => {
            o.u8(tag::OPT_OUT);
            o.id(*profile);
            o.number(*to);
            o.u8(opt_out.keyword.map_or(0, OptOutKeyword::code));
            match opt_out.via {
                Some(n) => {
                    o.u8(1);
                    o.number(n);
                }
                None => o.u8(0),
            }
            o.u32(opt_out.at);
        }
        Record::OptIn { profile, to } => {
            o.u8(tag::OPT_IN);
            o.id(*profile);
            o.number(*to);
        }
        Record::Replicated { position } => {
            o.u8(tag::REPLICATED);
            o.u64(*position);
        }
        Record::DailyCount {
            profile,
            day,
            profile_messages,
            sender,
        } => {
            o.u8(tag::DAILY_COUNT);
            o.id(*profile);
            o.u32(*day as u32);
            o.u32(*profile_messages);
            match sender {
                Some(c) => {
                    o.u8(1);
                    o.number(c.sender);
                    o.u32(c.messages);
                    o.u32(c.new_recipients);
                }
                None => o.u8(0),
            }
        }
        Record::QueueEnds { profile, ends } => {
            o.u8(tag::QUEUE_ENDS);
            o.id(*profile);
            o.u32(ends.len() as u32);
            for &(sender, end) in ends {
                o.number(sender);
                o.u64(end);
            }
        }
    }
    close_frame(buf, start);
}

/// Encodes `records` framed, one after another, as [`encode`] does each,
/// except that a run of new mappings of one profile shares a frame
/// (`MappingsSet`, up to [`MAX_MAPPINGS_PER_RECORD`]): what a batch's
/// group of sends journals, in half the bytes and one checksum.
pub(crate) fn encode_all(records: &[Record], buf: &mut Vec<u8>) {
    let mut rest = records;
    while let Some(first) = rest.first() {
        let run = match first {
            Record::MappingSet { profile, .. } => rest
                .iter()
                .take(MAX_MAPPINGS_PER_RECORD)
                .take_while(|r| matches!(r, Record::MappingSet { profile: p, .. } if p == profile))
                .count(),
            _ => 1,
        };
        let (now, later) = rest.split_at(run);
        match (first, run) {
            (Record::MappingSet { profile, .. }, 2..) => encode_mappings(*profile, now, buf),
            _ => encode(first, buf),
        }
        rest = later;
    }
}

/// Encodes `run`, new mappings of `profile`, as one `MappingsSet` record.
fn encode_mappings(profile: ProfileId, run: &[Record], buf: &mut Vec<u8>) {
    let start = open_frame(buf);
    let mut o = Out(buf);
    o.u8(tag::MAPPINGS_SET);
    o.id(profile);
    o.u32(run.len() as u32);
    for r in run {
        o.mapping(r);
    }
    close_frame(buf, start);
}

/// Starts a frame at the end of `buf`: room for its length and checksum.
fn open_frame(buf: &mut Vec<u8>) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0; FRAME_LEN]);
    start
}

/// Fills in the length and checksum of the frame started at `start`.
fn close_frame(buf: &mut [u8], start: usize) {
    let payload_len = (buf.len() - start - FRAME_LEN) as u32;
    let crc = crc32fast::hash(&buf[start + FRAME_LEN..]);
    buf[start..start + 4].copy_from_slice(&payload_len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes one payload (without its frame) into the records it holds, at
/// the back of `out`: one, or a `MappingsSet`'s mappings. Nothing is added
/// when the payload is malformed.
pub(crate) fn decode_into(payload: &[u8], out: &mut VecDeque<Record>) -> Result<(), Malformed> {
    let Some((&tag::MAPPINGS_SET, fields)) = payload.split_first() else {
        out.push_back(decode(payload)?);
        return Ok(());
    };
    let mut i = In(fields);
    let profile = i.id()?;
    let count = i.u32()? as usize;
    if !(1..=MAX_MAPPINGS_PER_RECORD).contains(&count)
        || count.checked_mul(MAPPING_LEN) != Some(i.0.len())
    {
        return Err(Malformed);
    }
    let before = out.len();
    for _ in 0..count {
        match i.mapping(profile) {
            Ok(r) => out.push_back(r),
            Err(e) => {
                out.truncate(before);
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Bytes of one mapping in a `MappingsSet`.
const MAPPING_LEN: usize = 25;

/// Decodes the payload of a record that is one record (not `MappingsSet`).
pub(crate) fn decode(payload: &[u8]) -> Result<Record, Malformed> {
    let mut i = In(payload);
    let record = match i.u8()? {
        tag::PROFILE_SAVED => {
            let at = i.u32()?;
            let profile = serde_json::from_slice(i.bytes()?).map_err(|_| Malformed)?;
            Record::ProfileSaved {
                profile: Box::new(profile),
                at,
            }
        }
        tag::PROFILE_DELETED => Record::ProfileDeleted { profile: i.id()? },
        tag::NUMBER_SAVED => Record::NumberSaved(NumberRecord {
            number: i.number()?,
            id: i.u64()?,
            profile: i.opt_id()?,
            created_at: i.ts()?,
            updated_at: i.ts()?,
            messages_per_second: if i.0.is_empty() {
                None
            } else {
                Some(f64::from_bits(i.u64()?)).filter(|r| !r.is_nan())
            },
        }),
        tag::MAPPING_SET => {
            let profile = i.id()?;
            i.mapping(profile)?
        }
        tag::MAPPING_TOUCHED => Record::MappingTouched {
            profile: i.id()?,
            to: i.number()?,
            last_used: i.u32()?,
        },
        tag::MAPPING_REMOVED => Record::MappingRemoved {
            profile: i.id()?,
            to: i.number()?,
        },
        tag::OUTCOME => {
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
        tag::HEALTH_STATE => {
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
        tag::SNAPSHOT_MARK => Record::SnapshotMark {
            profile: i.id()?,
            snapshot: i.u64()?,
        },
        tag::SNAPSHOT_END => Record::SnapshotEnd { records: i.u64()? },
        tag::PROBE => Record::Probe,
        tag::OPT_OUT => {
            let profile = i.id()?;
            let to = i.number()?;
            let keyword = match i.u8()? {
                0 => None,
                code => Some(OptOutKeyword::from_code(code).ok_or(Malformed)?),
            };
            let via = if i.bool()? { Some(i.number()?) } else { None };
            Record::OptOut {
                profile,
                to,
                opt_out: OptOut {
                    keyword,
                    via,
                    at: i.u32()?,
                },
            }
        }
        tag::OPT_IN => Record::OptIn {
            profile: i.id()?,
            to: i.number()?,
        },
        tag::REPLICATED => Record::Replicated { position: i.u64()? },
        tag::DAILY_COUNT => {
            let profile = i.id()?;
            let day = i.u32()? as i32;
            let profile_messages = i.u32()?;
            let sender = if i.bool()? {
                Some(DailyCounts {
                    sender: i.number()?,
                    day,
                    messages: i.u32()?,
                    new_recipients: i.u32()?,
                })
            } else {
                None
            };
            Record::DailyCount {
                profile,
                day,
                profile_messages,
                sender,
            }
        }
        tag::QUEUE_ENDS => {
            let profile = i.id()?;
            let count = i.u32()? as usize;
            if count > MAX_QUEUE_ENDS {
                return Err(Malformed);
            }
            let mut ends = Vec::with_capacity(count);
            for _ in 0..count {
                ends.push((i.number()?, i.u64()?));
            }
            Record::QueueEnds { profile, ends }
        }
        _ => return Err(Malformed),
    };
    if !i.0.is_empty() {
        return Err(Malformed);
    }
    Ok(record)
}

/// Decodes the record framed at the start of `bytes` into `out` (see
/// [`decode_into`]) and returns its framed length, if `bytes` starts with a
/// whole, valid record.
pub(crate) fn decode_framed(bytes: &[u8], out: &mut VecDeque<Record>) -> Option<usize> {
    if bytes.len() < FRAME_LEN {
        return None;
    }
    let len = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if len > MAX_PAYLOAD || bytes.len() - FRAME_LEN < len {
        return None;
    }
    let payload = &bytes[FRAME_LEN..FRAME_LEN + len];
    if crc32fast::hash(payload) != crc {
        return None;
    }
    decode_into(payload, out).ok()?;
    Some(FRAME_LEN + len)
}

/// Whether `bytes` starts with a whole, valid record.
pub(crate) fn starts_with_record(bytes: &[u8]) -> bool {
    decode_framed(bytes, &mut VecDeque::new()).is_some()
}

/// Decodes framed records one at a time, stopping at the first torn or
/// corrupt one; [`Records::valid`] is then the length of the good prefix.
pub(crate) struct Records<'a> {
    bytes: &'a [u8],
    at: usize,
    /// Records of the last frame not yet handed out (a `MappingsSet`'s),
    /// and where that frame starts.
    pending: VecDeque<Record>,
    pending_from: usize,
}

impl<'a> Records<'a> {
    /// Records framed in `bytes` (without a file header).
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Records {
            bytes,
            at: 0,
            pending: VecDeque::new(),
            pending_from: 0,
        }
    }

    /// Bytes of whole, valid records read so far: the frames every record
    /// of which has been handed out.
    pub(crate) fn valid(&self) -> usize {
        if self.pending.is_empty() {
            self.at
        } else {
            self.pending_from
        }
    }
}

impl Iterator for Records<'_> {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        if self.pending.is_empty() {
            self.pending_from = self.at;
            self.at += decode_framed(&self.bytes[self.at..], &mut self.pending)?;
        }
        self.pending.pop_front()
    }
}

/// What [`decode_ahead`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decoded {
    /// Bytes of whole, valid records from the start (as [`Records::valid`]).
    pub valid: usize,
    /// Whether those were all the source held (nothing torn or corrupt after).
    pub whole: bool,
}

/// Reads framed records from `source` and decodes them on a second thread,
/// handing them in order to `apply` on this one, so that reading and
/// decoding a large file (its checksums and parsing) overlap with applying
/// it. Stops at the first torn or corrupt record. At most a few batches of
/// records, and a few megabytes of the source, are held at once.
pub(crate) fn decode_ahead(
    source: impl std::io::Read + Send,
    mut apply: impl FnMut(Record),
) -> std::io::Result<Decoded> {
    const BATCH: usize = 4096;
    std::thread::scope(|scope| {
        let (full_tx, full) = crossbeam_channel::bounded::<Vec<Record>>(4);
        // Emptied batches go back, so no batch is allocated twice.
        let (empty_tx, empty) = crossbeam_channel::bounded::<Vec<Record>>(8);
        let decoder = std::thread::Builder::new()
            .name("numpool-decode".into())
            .spawn_scoped(scope, move || {
                let mut batch = Vec::with_capacity(BATCH);
                let decoded = decode_stream(source, |r| {
                    batch.push(r);
                    if batch.len() < BATCH {
                        return true;
                    }
                    let next = empty
                        .try_recv()
                        .unwrap_or_else(|_| Vec::with_capacity(BATCH));
                    full_tx.send(std::mem::replace(&mut batch, next)).is_ok()
                });
                if !batch.is_empty() {
                    let _ = full_tx.send(batch);
                }
                decoded
            })?;
        for mut batch in full.iter() {
            batch.drain(..).for_each(&mut apply);
            let _ = empty_tx.try_send(batch);
        }
        decoder.join().expect("decoding records does not panic")
    })
}

/// Reads `source` a few megabytes at a time and passes each whole, valid
/// record to `emit` until it returns `false`, the source ends, or a record
/// is torn or corrupt.
fn decode_stream(
    mut source: impl std::io::Read,
    mut emit: impl FnMut(Record) -> bool,
) -> std::io::Result<Decoded> {
    const READ: usize = 4 << 20;
    let mut buf = vec![0u8; READ];
    // `buf[start..end]` is read and not yet decoded; `before` bytes of the
    // source came before `buf[0]`.
    let (mut start, mut end, mut before, mut ended) = (0, 0, 0, false);
    loop {
        let mut records = Records::new(&buf[start..end]);
        for r in records.by_ref() {
            if !emit(r) {
                return Ok(Decoded {
                    valid: before + start + records.valid(),
                    whole: false,
                });
            }
        }
        start += records.valid();
        // A frame whose length is readable, and not too long, needs that many
        // bytes; a shorter rest may be cut by the read and needs more.
        let rest = &buf[start..end];
        let need = (rest.len() >= FRAME_LEN)
            .then(|| u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize)
            .filter(|&len| len <= MAX_PAYLOAD)
            .map_or(FRAME_LEN, |len| FRAME_LEN + len);
        if ended || rest.len() >= need {
            return Ok(Decoded {
                valid: before + start,
                whole: ended && start == end,
            });
        }
        buf.copy_within(start..end, 0);
        (before, end, start) = (before + start, end - start, 0);
        if buf.len() < need {
            buf.resize(need, 0);
        }
        let n = loop {
            match source.read(&mut buf[end..]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        ended = n == 0;
        end += n;
    }
}

/// Reads framed records from `bytes`. Returns them with the length of the
/// valid prefix: reading stops at the first torn or corrupt record.
#[cfg(test)]
pub(crate) fn read_all(bytes: &[u8]) -> (Vec<Record>, usize) {
    let mut records = Records::new(bytes);
    let all = records.by_ref().collect();
    (all, records.valid())
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
