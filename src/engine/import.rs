//! Importing message history into a profile's sticky map: rows of `to`,
//! `from`, `sent_at` from another provider (or an export of numpool's
//! own), so recipients keep the number they saw. docs/SELECTION.md,
//! "Importing message history", has the rules; [`Importer`] applies them
//! to a stream of rows of any length.
//!
//! Only a recipient's latest row counts. Rows arrive in any order, so the
//! importer remembers, per recipient it has seen, the time of its latest
//! row and what became of it (a 32-byte entry a recipient in a hash table,
//! never the rows):
//! an older row that comes later is superseded, and a newer one replaces
//! (or, when its sender left the pool, takes back) the mapping an earlier
//! row made. Rows are applied a batch at a time, each batch in one hold of
//! the profile. A batch's records are on their way to the journal (in a
//! cluster, to etcd) while the next batches are applied, at most
//! [`IN_FLIGHT`] of them, so the writer carries several batches in one
//! write or commit; the import's answer waits for every one of them. A
//! crash loses nothing the import acknowledged (it acknowledges only at
//! its end), and the same import run again changes nothing.

use std::collections::VecDeque;

use super::Engine;
use crate::error::Error;
use crate::ids::ProfileId;
use crate::journal::{settle, Receipt, Record};
use crate::number::PhoneNumber;
use crate::selection::profile::StickyMapping;
use crate::selection::unsettled::Reads;

/// Rows applied in one hold of the profile: a quarter of a millisecond or
/// so, so the sends of profiles on the same arbiter wait little.
const IMPORT_BATCH: usize = 1024;

/// Batches applied whose records may still be on their way to the journal
/// before the next waits for the oldest of them: enough to keep the
/// writer busy for the length of a commit to etcd (waiting for each in
/// turn, a 3-node cluster imported at a quarter to two fifths of one
/// server's pace), few enough to bound what is queued (25 bytes a mapping).
const IN_FLIGHT: usize = 8;

/// How many rows ahead a batch starts fetching a recipient's sticky index
/// word, and then (half as far ahead) its entry: with millions of
/// mappings each is a cache miss, and rows are independent of each other.
const LOOK_AHEAD: usize = 16;

/// Keyed by recipient with foldhash, randomly seeded, as the sticky map
/// is: much faster than SipHash, at the price of a weaker guarantee against
/// rows crafted to collide (the sticky map makes the same trade for the
/// same numbers).
type ByRecipient<V> = hashbrown::HashMap<PhoneNumber, V, foldhash::quality::RandomState>;

/// One row of message history: `to` was sent a message from `from` at
/// `sent_at` (seconds since the Unix epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryRow {
    /// The recipient.
    pub to: PhoneNumber,
    /// The sender it saw.
    pub from: PhoneNumber,
    /// When (seconds since the Unix epoch); the mapping's last use.
    pub sent_at: u32,
    /// When the pairing began, if known (an export says); else `sent_at`.
    pub created_at: Option<u32>,
    /// A pinned mapping (from an export): imported pinned, never expired.
    pub pinned: bool,
}

/// What applying one row did to the profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowOutcome {
    /// The recipient maps to the row's sender now.
    Mapped(StickyMapping),
    /// A mapping at least as recent (or pinned) was there: it stays.
    KeptExisting,
    /// Older than the sticky ttl.
    Expired,
    /// The sender is not in the pool now.
    NotInPool,
    /// The sender is not in the pool now, and the mapping an earlier row of
    /// this import made was taken back.
    NotInPoolTakenBack,
    /// Sticky sender is off.
    StickyOff,
    /// The map has no room for the recipient.
    Full,
}

/// What became of a recipient's latest row, for the counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Mapped(PhoneNumber),
    KeptExisting,
    Expired,
    NotInPool,
}

/// What an import did, counted once per recipient (by its latest row) and
/// once per row for the rows that did not count: `rows` is `malformed +
/// superseded +` the four per-recipient counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Rows read (malformed ones included).
    pub rows: u64,
    /// Recipients mapped to the sender of their latest row.
    pub mapped: u64,
    /// Recipients whose newer (or pinned) mapping was kept.
    pub kept_existing: u64,
    /// Recipients whose latest row is older than the sticky ttl.
    pub expired: u64,
    /// Recipients whose latest row's sender is not in the pool.
    pub not_in_pool: u64,
    /// Rows older than a later row for the same recipient.
    pub superseded: u64,
    /// Rows that could not be read (counted by whoever parses them, see
    /// [`Importer::malformed`]).
    pub malformed: u64,
}

/// An import under way into one profile: push rows, then finish.
///
/// ```
/// # use numpool::{Engine, EngineConfig, HistoryRow, NewProfile, PhoneNumber, SettingsPatch, SettingsUpdate};
/// # futures::executor::block_on(async {
/// # let engine = Engine::start(EngineConfig::default())?;
/// let p = engine.create_profile(NewProfile {
///     number_pool_settings: SettingsUpdate::Merge(SettingsPatch { sticky_sender: Some(true), ..Default::default() }),
///     ..Default::default()
/// }).await?.id;
/// let (a, b) = (PhoneNumber::parse_e164("+13125550001")?, PhoneNumber::parse_e164("+13125550002")?);
/// engine.assign_number(a, Some(p)).await?;
/// engine.assign_number(b, Some(p)).await?;
/// let to = PhoneNumber::parse_e164("+14155550123")?;
/// let now = engine.now().as_secs() as u32;
/// let mut import = engine.import_history(p).await?;
/// import.push(HistoryRow { to, from: a, sent_at: now - 7200, created_at: None, pinned: false }).await?;
/// import.push(HistoryRow { to, from: b, sent_at: now - 3600, created_at: None, pinned: false }).await?;
/// let report = import.finish().await?;
/// // The older row of the two is superseded: only the latest counts.
/// assert_eq!((report.rows, report.mapped, report.superseded), (2, 1, 1));
/// assert_eq!(engine.mapping(p, to).await?.map(|m| m.from), Some(b));
/// # engine.shutdown().await;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct Importer {
    engine: Engine,
    profile: ProfileId,
    /// The import's "now": rows after it are malformed.
    now: u32,
    /// Per recipient seen: its latest row's time and what became of it.
    latest: ByRecipient<(u32, Fate)>,
    /// Rows waiting for the next batch.
    pending: Vec<HistoryRow>,
    /// Receipts of the batches applied and not yet known to be written,
    /// oldest first (at most [`IN_FLIGHT`]).
    unwritten: VecDeque<Receipt>,
    /// What `latest` held for each pending row (kept for the next batch).
    befores: Vec<Option<(u32, Fate)>>,
    rows: u64,
    superseded: u64,
    malformed: u64,
}

impl Engine {
    /// Starts importing message history into `profile`. Refused with
    /// [`Error::Pin`] (`StickyOff`) when the profile's sticky sender is
    /// off: there is no map to fill.
    pub async fn import_history(&self, profile: ProfileId) -> Result<Importer, Error> {
        let record = self.profile(profile)?;
        if !record
            .number_pool_settings
            .as_ref()
            .is_some_and(|s| s.sticky_sender)
        {
            return Err(Error::Pin(crate::PinError::StickyOff));
        }
        Ok(Importer {
            engine: self.clone(),
            profile,
            // Rows are stamped by other clocks: not taken for rows from the
            // future because the engine's clock is a tick behind theirs.
            now: self.inner.env.clock.precise_now().as_secs_u32(),
            latest: ByRecipient::default(),
            pending: Vec::with_capacity(IMPORT_BATCH),
            unwritten: VecDeque::with_capacity(IN_FLIGHT),
            befores: Vec::with_capacity(IMPORT_BATCH),
            rows: 0,
            superseded: 0,
            malformed: 0,
        })
    }
}

impl Importer {
    /// The import's clock reading (seconds since the Unix epoch): a row
    /// sent after it is malformed.
    pub fn now(&self) -> u32 {
        self.now
    }

    /// Counts a row that could not be read.
    pub fn malformed(&mut self) {
        self.rows += 1;
        self.malformed += 1;
    }

    /// Takes one row; applies a batch when one is full. A row sent after
    /// [`Importer::now`] counts as malformed.
    pub async fn push(&mut self, row: HistoryRow) -> Result<(), Error> {
        if row.sent_at > self.now {
            self.malformed();
            return Ok(());
        }
        self.rows += 1;
        self.pending.push(row);
        if self.pending.len() >= IMPORT_BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    /// Applies what is pending and says what the import did.
    pub async fn finish(mut self) -> Result<ImportReport, Error> {
        self.flush().await?;
        while let Some(receipt) = self.unwritten.pop_front() {
            settle(Some(receipt)).await?;
        }
        let mut report = ImportReport {
            rows: self.rows,
            superseded: self.superseded,
            malformed: self.malformed,
            ..Default::default()
        };
        for (_, fate) in self.latest.values() {
            match fate {
                Fate::Mapped(_) => report.mapped += 1,
                Fate::KeptExisting => report.kept_existing += 1,
                Fate::Expired => report.expired += 1,
                Fate::NotInPool => report.not_in_pool += 1,
            }
        }
        Ok(report)
    }

    /// Applies the pending rows: the latest per recipient (ties: the later
    /// row), in one hold of the profile. Their records go to the journal
    /// meanwhile; with [`IN_FLIGHT`] batches on their way already, the
    /// oldest is waited for first.
    async fn flush(&mut self) -> Result<(), Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        // The batches still on their way may have failed to write: from a
        // failure on, no change is applied (the engine reloads what is
        // written), and nobody has waited on them yet to find out.
        self.engine.check_journal()?;
        // Only rows newer than (or as new as) the recipient's latest so far
        // count; within the batch, the last of the latest.
        let mut batch: ByRecipient<(HistoryRow, Option<(u32, PhoneNumber)>)> =
            ByRecipient::with_capacity_and_hasher(self.pending.len(), Default::default());
        // Looked up in a loop of their own, so that the processor can
        // overlap their cache misses (one a row, with millions of
        // recipients) instead of waiting for each before the next.
        let latest = &self.latest;
        self.befores.clear();
        (self.befores).extend(self.pending.iter().map(|row| latest.get(&row.to).copied()));
        for (row, before) in self.pending.drain(..).zip(self.befores.drain(..)) {
            if before.is_some_and(|(at, _)| at > row.sent_at) {
                self.superseded += 1;
                continue;
            }
            let ours = match before {
                Some((at, Fate::Mapped(from))) => Some((at, from)),
                _ => None,
            };
            match batch.get_mut(&row.to) {
                Some((kept, _)) if kept.sent_at > row.sent_at => self.superseded += 1,
                Some(slot) => {
                    self.superseded += 1;
                    slot.0 = row;
                }
                None => {
                    // The recipient's latest row so far is superseded now.
                    if before.is_some() {
                        self.superseded += 1;
                    }
                    batch.insert(row.to, (row, ours));
                }
            }
        }
        let rows: Vec<(HistoryRow, Option<(u32, PhoneNumber)>)> = batch.into_values().collect();
        // Room for this batch among those on their way to the journal.
        while self.unwritten.len() >= IN_FLIGHT {
            settle(self.unwritten.pop_front()).await?;
        }
        let (profile, now) = (self.profile, self.now);
        let clock = self.engine.inner.now_secs();
        let actor = self.engine.actor_of(profile)?;
        let (outcomes, receipt) = actor
            .call_long(self.engine.inner.config.mailbox_bound, move |p, env| {
                let mut records = Vec::new();
                let mut outcomes = Vec::with_capacity(rows.len());
                for (i, (row, ours)) in rows.iter().enumerate() {
                    if let Some((ahead, _)) = rows.get(i + LOOK_AHEAD) {
                        p.prefetch_index(ahead.to);
                    }
                    if let Some((ahead, _)) = rows.get(i + LOOK_AHEAD / 2) {
                        p.prefetch_entry(ahead.to);
                    }
                    let outcome = p.import_row(row, *ours, now);
                    match outcome {
                        RowOutcome::Mapped(m) => records.push(Record::MappingSet {
                            profile,
                            to: m.to,
                            from: m.from,
                            created_at: m.created_at,
                            last_used: m.last_used_at,
                            pinned: m.pinned,
                            history: true,
                        }),
                        RowOutcome::NotInPoolTakenBack => records.push(Record::MappingRemoved {
                            profile,
                            to: row.to,
                        }),
                        _ => {}
                    }
                    outcomes.push((*row, outcome));
                }
                if let Some(due) = p.wakeup_after_expiry() {
                    env.expiry.schedule(profile, due.max(clock));
                }
                let read = Reads {
                    recipients: rows.iter().map(|(row, _)| row.to).collect::<Vec<_>>(),
                    daily: false,
                };
                let receipt = env.journal_for(p, &records, read);
                (outcomes, receipt)
            })
            .await?;
        if let Some(mut receipt) = receipt {
            // Written (committed) from now on, while the next batch is
            // applied: nobody waits for it yet.
            receipt.wake_writer();
            self.unwritten.push_back(receipt);
        }
        for (row, outcome) in outcomes {
            let fate = match outcome {
                RowOutcome::Mapped(m) => Fate::Mapped(m.from),
                RowOutcome::KeptExisting => Fate::KeptExisting,
                RowOutcome::Expired => Fate::Expired,
                RowOutcome::NotInPool | RowOutcome::NotInPoolTakenBack => Fate::NotInPool,
                RowOutcome::StickyOff => return Err(Error::Pin(crate::PinError::StickyOff)),
                RowOutcome::Full => return Err(Error::Pin(crate::PinError::Full)),
            };
            self.latest.insert(row.to, (row.sent_at, fate));
        }
        Ok(())
    }
}
