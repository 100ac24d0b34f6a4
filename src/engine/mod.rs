//! [`Engine`]: the one public handle to a running numpool.
//!
//! The HTTP layer, loadgen and embedders use only this. It owns the actor
//! runtime (a [`Dispatcher`] and one actor per profile), the administrative
//! records of profiles and numbers, and the clock.
//!
//! - Selection (`send*`) goes straight to the profile's actor; it takes no
//!   engine-wide lock.
//! - Control-plane changes (profiles, settings, numbers) are serialized by
//!   one async mutex, so a number moving between two actors is never seen
//!   half-moved by another change.
//! - Every actor mailbox is bounded: a full one fails the call at once with
//!   [`EngineError::Overloaded`].
//! - A request that panics inside an actor fails with
//!   [`EngineError::Internal`]; the actor keeps serving with its state.
//!
//! ```
//! use numpool::engine::{Engine, EngineConfig, NewProfile};
//! use numpool::settings::{SettingsPatch, SettingsUpdate};
//! use numpool::{PhoneNumber, Reason};
//!
//! let engine = Engine::start(EngineConfig::default())?;
//! futures::executor::block_on(async {
//!     let profile = engine
//!         .create_profile(NewProfile {
//!             name: "alerts".into(),
//!             number_pool_settings: SettingsUpdate::Merge(SettingsPatch {
//!                 sticky_sender: Some(true),
//!                 ..Default::default()
//!             }),
//!             ..Default::default()
//!         })
//!         .await?;
//!     for n in ["+13125550001", "+13125550002"] {
//!         engine.assign_number(PhoneNumber::parse_e164(n)?, Some(profile.id)).await?;
//!     }
//!     let to = PhoneNumber::parse_e164("+14155550123")?;
//!     let first = engine.send(profile.id, to).await?;
//!     let again = engine.send(profile.id, to).await?;
//!     assert_eq!((again.sender, again.reason), (first.sender, Reason::Sticky));
//!     engine.shutdown().await;
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod error;
mod records;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

pub use config::EngineConfig;
pub use error::EngineError;
pub use records::{NewProfile, NumberRecord, NumberStatus, ProfileRecord, ProfileUpdate};

use crate::actor::{settle, ActorEnv, Dispatcher};
use crate::clock::{Clock, SystemClock, Timestamp};
use crate::health::{DeliveryOutcome, HealthCounts};
use crate::journal::{self, recovery, snapshot, Record, Writer};
use crate::number::PhoneNumber;
use crate::profile::{Eligibility, Profile, ProfileStats, SenderInfo, StickyMapping};
use crate::registry::ProfileId;
use crate::select::{SelectError, Selection};
use crate::sticky::ExpireReport;

/// Counters of one profile and its mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileSnapshot {
    pub id: ProfileId,
    pub stats: ProfileStats,
    pub mailbox_depth: usize,
}

/// Counters of the whole engine: the sum over profiles, and each profile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub profiles: usize,
    pub sticky: u64,
    pub geomatch: u64,
    pub weighted: u64,
    pub rejected: u64,
    pub mappings_created: u64,
    pub expired: u64,
    /// Mappings stored (expired ones count until their wheel reaches them).
    pub stored_mappings: usize,
    /// Heap bytes of every sticky map.
    pub sticky_heap_bytes: usize,
    pub senders: usize,
    pub mailbox_depth: usize,
    pub max_mailbox_depth: usize,
    pub per_profile: Vec<ProfileSnapshot>,
}

#[derive(Default)]
struct Catalog {
    profiles: HashMap<ProfileId, ProfileRecord>,
    numbers: BTreeMap<PhoneNumber, NumberRecord>,
    next_number_id: u64,
}

struct Inner {
    dispatcher: Dispatcher,
    catalog: RwLock<Catalog>,
    admin: tokio::sync::Mutex<()>,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
    closing: AtomicBool,
    inflight: AtomicUsize,
    drained: tokio::sync::Notify,
    /// The journal's writer (`None`: ephemeral).
    writer: Option<Arc<Writer>>,
    /// The number of the next snapshot (and of the log segment after it).
    next_snapshot: AtomicU64,
    /// One snapshot at a time.
    snapshotting: tokio::sync::Mutex<()>,
}

/// What recovery found, for the start-up banner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub profiles: usize,
    pub numbers: usize,
    pub mappings: usize,
    pub snapshot: Option<u64>,
    pub replayed_records: u64,
    pub warnings: Vec<String>,
    pub took: std::time::Duration,
}

/// The emitter recorded for numbers that belong to no profile (snapshots).
const NO_PROFILE: ProfileId = ProfileId(uuid::Uuid::nil());

/// Waits for a journaled change: the actor's answer, then the receipt of
/// the records it wrote, then gives the answer's value.
async fn durable<R>(
    answer: impl std::future::Future<
        Output = Result<(R, Option<crate::journal::Receipt>), crate::actor::DispatchError>,
    >,
) -> Result<R, EngineError> {
    let (value, receipt) = answer.await?;
    settle(receipt).await?;
    Ok(value)
}

/// Counts a call in flight, for graceful shutdown.
struct InFlight<'a>(&'a Inner);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.0.inflight.fetch_sub(1, Ordering::AcqRel) == 1
            && self.0.closing.load(Ordering::Acquire)
        {
            self.0.drained.notify_waiters();
        }
    }
}

/// The handle to a running engine. Cheap to clone; every clone is the same engine.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    /// Starts an engine on the system clock.
    pub fn start(config: EngineConfig) -> std::io::Result<Engine> {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    /// Starts an engine reading time from `clock` (a `ManualClock` in tests).
    pub fn with_clock(config: EngineConfig, clock: Arc<dyn Clock>) -> std::io::Result<Engine> {
        Self::recover(config, clock).map(|(engine, _)| engine)
    }

    /// Starts an engine, first recovering the state journaled in
    /// `config.journal` (if set); returns what recovery found.
    pub fn recover(
        config: EngineConfig,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<(Engine, RecoveryReport)> {
        let started = std::time::Instant::now();
        let mut report = RecoveryReport::default();
        let (recovered, writer) = match &config.journal {
            Some(j) => {
                let r = recovery::recover(&j.dir, &config.selection)?;
                let writer = Writer::start(&journal::segment_path(&j.dir, r.segment), j.fsync)?;
                (Some(r), Some(Arc::new(writer)))
            }
            None => (None, None),
        };
        let env = ActorEnv {
            health: config.selection.health.clone(),
            clock: Arc::clone(&clock),
            expire_tick: config.expire_tick,
            expire_budget: config.expire_budget.max(1),
            journal: writer.clone(),
        };
        let dispatcher = Dispatcher::start(config.dispatcher, env)?;
        let mut catalog = Catalog::default();
        let mut next_snapshot = 1;
        if let Some(r) = recovered {
            report.snapshot = r.snapshot;
            report.replayed_records = r.replayed;
            report.warnings = r.warnings;
            next_snapshot = r.segment + 1;
            for (state, profile) in r.profiles {
                report.mappings += profile.stats().stored_mappings;
                let id = state.id;
                futures::executor::block_on(dispatcher.spawn(id, profile))
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                catalog.profiles.insert(id, state);
            }
            for n in r.numbers {
                catalog.next_number_id = catalog.next_number_id.max(n.id);
                catalog.numbers.insert(n.number, n);
            }
            report.profiles = catalog.profiles.len();
            report.numbers = catalog.numbers.len();
        }
        report.took = started.elapsed();
        let engine = Engine {
            inner: Arc::new(Inner {
                dispatcher,
                catalog: RwLock::new(catalog),
                admin: tokio::sync::Mutex::new(()),
                clock,
                config,
                closing: AtomicBool::new(false),
                inflight: AtomicUsize::new(0),
                drained: tokio::sync::Notify::new(),
                writer,
                next_snapshot: AtomicU64::new(next_snapshot),
                snapshotting: tokio::sync::Mutex::new(()),
            }),
        };
        engine.start_snapshot_timer();
        Ok((engine, report))
    }

    /// Takes a snapshot every `snapshot_every` while the engine lives.
    fn start_snapshot_timer(&self) {
        let Some(every) = self
            .inner
            .config
            .journal
            .as_ref()
            .and_then(|j| j.snapshot_every)
        else {
            return;
        };
        let weak = Arc::downgrade(&self.inner);
        let _ = std::thread::Builder::new()
            .name("numpool-snapshots".into())
            .spawn(move || {
                let mut last = std::time::Instant::now();
                loop {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    let Some(inner) = weak.upgrade() else { return };
                    if inner.closing.load(Ordering::Acquire) {
                        return;
                    }
                    if last.elapsed() >= every {
                        let engine = Engine { inner };
                        if let Err(e) = futures::executor::block_on(engine.snapshot_now()) {
                            eprintln!("numpool: snapshot failed: {e}");
                        }
                        last = std::time::Instant::now();
                    }
                }
            });
    }

    /// Compacts the journal: captures every profile (inside its actor, in
    /// messages small enough not to hold up selection), writes snapshot N,
    /// and removes the files older than the previous snapshot. Returns N. A
    /// no-op without a journal.
    pub async fn snapshot_now(&self) -> std::io::Result<u64> {
        let Some(j) = self.inner.config.journal.clone() else {
            return Ok(0);
        };
        let writer = self.inner.writer.clone().expect("a journal has a writer");
        let _one = self.inner.snapshotting.lock().await;
        let n = self.inner.next_snapshot.fetch_add(1, Ordering::AcqRel);
        // Records from here on go to segment n.
        writer.rotate(journal::segment_path(&j.dir, n)).await?;
        let now = self.now_secs();
        // Each profile in two steps, so no actor stops for long: first, in
        // one message, its marker with its settings, senders and health;
        // then its mappings one shard per message. Mappings captured after
        // the marker are fine: every mapping record after the marker is
        // replayed over them, and those records are last-writer-wins.
        let mut captured = Vec::new();
        for id in self.inner.dispatcher.profile_ids() {
            let head = self
                .inner
                .dispatcher
                .control(id, move |p, env| {
                    let receipt = env.journal(&[Record::SnapshotMark {
                        profile: id,
                        snapshot: n,
                    }]);
                    (
                        p.settings().cloned(),
                        p.sender_states(),
                        p.mapping_parts(),
                        receipt,
                    )
                })
                .await;
            let Ok((settings, senders, parts, receipt)) = head else {
                continue; // deleted meanwhile
            };
            settle(receipt)
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let mut mappings = Vec::new();
            for part in 0..parts {
                match self
                    .inner
                    .dispatcher
                    .control(id, move |p, _| p.mappings_part(part, now))
                    .await
                {
                    Ok(m) => mappings.extend(m),
                    Err(_) => break,
                }
            }
            if let Ok(mut record) = self.profile(id) {
                record.number_pool_settings = settings;
                captured.push((record, senders, mappings));
            }
        }
        let unassigned: Vec<NumberRecord> = self
            .inner
            .catalog
            .read()
            .numbers
            .values()
            .filter(|r| r.profile.is_none())
            .copied()
            .collect();
        let numbers: HashMap<PhoneNumber, NumberRecord> = self
            .inner
            .catalog
            .read()
            .numbers
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        let dir = j.dir.clone();
        let (done, written) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let records = captured
                .into_iter()
                .flat_map(move |(record, senders, mappings)| {
                    let id = record.id;
                    let mut out = vec![Record::ProfileSaved {
                        profile: record,
                        at: now,
                    }];
                    for (number, slices) in senders {
                        if let Some(r) = numbers.get(&number) {
                            out.push(Record::NumberSaved {
                                profile: id,
                                number,
                                id: r.id,
                                owner: Some(id),
                                created_at: r.created_at,
                                updated_at: r.updated_at,
                            });
                        }
                        if !slices.is_empty() {
                            out.push(Record::HealthState {
                                profile: id,
                                sender: number,
                                buckets: slices,
                            });
                        }
                    }
                    out.extend(mappings.into_iter().map(|m| Record::MappingSet {
                        profile: id,
                        to: m.to,
                        from: m.from,
                        created_at: m.created_at,
                        last_used: m.last_used_at,
                        pinned: m.pinned,
                    }));
                    out
                });
            let free = unassigned.into_iter().map(|r| Record::NumberSaved {
                profile: NO_PROFILE,
                number: r.number,
                id: r.id,
                owner: None,
                created_at: r.created_at,
                updated_at: r.updated_at,
            });
            let _ = done.send(snapshot::write(&dir, n, records.chain(free)));
        });
        written
            .await
            .map_err(|_| std::io::Error::other("the snapshot writer stopped"))??;
        // Keep this snapshot and the previous one (the fallback), with the
        // segments they need; remove everything older.
        let snapshots = journal::numbered(&j.dir, "snapshot-", ".bin")?;
        let keep_from = snapshots.iter().rev().nth(1).copied().unwrap_or(0);
        for s in snapshots.iter().filter(|s| **s < keep_from) {
            let _ = std::fs::remove_file(journal::snapshot_path(&j.dir, *s));
        }
        for s in journal::numbered(&j.dir, "log-", ".seg")?
            .into_iter()
            .filter(|s| *s < keep_from)
        {
            let _ = std::fs::remove_file(journal::segment_path(&j.dir, s));
        }
        Ok(n)
    }

    /// The engine's configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The current time on the engine's clock.
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    fn now_secs(&self) -> u32 {
        self.now().as_secs_u32()
    }

    fn enter(&self) -> Result<InFlight<'_>, EngineError> {
        self.inner.inflight.fetch_add(1, Ordering::AcqRel);
        let guard = InFlight(&self.inner);
        if self.inner.closing.load(Ordering::Acquire) {
            return Err(EngineError::ShuttingDown);
        }
        Ok(guard)
    }

    // ---- Profiles -----------------------------------------------------------

    /// Creates a messaging profile and its actor.
    pub async fn create_profile(&self, new: NewProfile) -> Result<ProfileRecord, EngineError> {
        let _in = self.enter()?;
        let _admin = self.inner.admin.lock().await;
        let settings = new.number_pool_settings.apply(None)?;
        let id = new.id.unwrap_or_else(ProfileId::new_v4);
        if self.inner.catalog.read().profiles.contains_key(&id) {
            return Err(EngineError::DuplicateProfile);
        }
        let now = self.now();
        let profile = Profile::new(
            settings.clone(),
            &self.inner.config.selection,
            now.as_secs_u32(),
        );
        self.inner.dispatcher.spawn(id, profile).await?;
        let record = ProfileRecord {
            id,
            name: new.name,
            enabled: new.enabled,
            whitelisted_destinations: new.whitelisted_destinations,
            webhook_url: new.webhook_url,
            webhook_failover_url: new.webhook_failover_url,
            number_pool_settings: settings,
            created_at: now,
            updated_at: now,
        };
        let saved = Record::ProfileSaved {
            profile: record.clone(),
            at: now.as_secs_u32(),
        };
        let receipt = self
            .inner
            .dispatcher
            .control(id, move |_, env| env.journal(&[saved]))
            .await?;
        self.publish(record, receipt).await
    }

    /// Makes `record` the profile's record, then waits for its journal
    /// receipt. The catalog is updated first because the actor already has
    /// the change: the catalog must match it even if the journal fails.
    async fn publish(
        &self,
        record: ProfileRecord,
        receipt: Option<crate::journal::Receipt>,
    ) -> Result<ProfileRecord, EngineError> {
        self.inner
            .catalog
            .write()
            .profiles
            .insert(record.id, record.clone());
        settle(receipt).await?;
        Ok(record)
    }

    /// The record of profile `id`.
    pub fn profile(&self, id: ProfileId) -> Result<ProfileRecord, EngineError> {
        self.inner
            .catalog
            .read()
            .profiles
            .get(&id)
            .cloned()
            .ok_or(EngineError::UnknownProfile)
    }

    /// Every profile, oldest first.
    pub fn profiles(&self) -> Vec<ProfileRecord> {
        let mut all: Vec<ProfileRecord> = self
            .inner
            .catalog
            .read()
            .profiles
            .values()
            .cloned()
            .collect();
        all.sort_by_key(|p| (p.created_at, p.id));
        all
    }

    /// Updates a profile; `number_pool_settings` merges field by field. A
    /// rejected update changes nothing.
    pub async fn update_profile(
        &self,
        id: ProfileId,
        update: ProfileUpdate,
    ) -> Result<ProfileRecord, EngineError> {
        let _in = self.enter()?;
        let _admin = self.inner.admin.lock().await;
        let mut record = self.profile(id)?;
        let settings = update
            .number_pool_settings
            .apply(record.number_pool_settings.as_ref())?;
        let now = self.now();
        record.number_pool_settings = settings;
        if let Some(name) = update.name {
            record.name = name;
        }
        if let Some(enabled) = update.enabled {
            record.enabled = enabled;
        }
        if let Some(w) = update.whitelisted_destinations {
            record.whitelisted_destinations = w;
        }
        if let Some(url) = update.webhook_url {
            record.webhook_url = url;
        }
        if let Some(url) = update.webhook_failover_url {
            record.webhook_failover_url = url;
        }
        record.updated_at = now;
        let change = update.number_pool_settings;
        let secs = now.as_secs_u32();
        let saved = Record::ProfileSaved {
            profile: record.clone(),
            at: secs,
        };
        let receipt = self
            .inner
            .dispatcher
            .control(id, move |p, env| {
                p.update_settings(&change, secs)?;
                Ok::<_, crate::settings::SettingsError>(env.journal(&[saved]))
            })
            .await??;
        self.publish(record, receipt).await
    }

    /// Deletes a profile: its mappings and pool are gone, its numbers become
    /// unassigned. Returns the deleted record.
    pub async fn delete_profile(&self, id: ProfileId) -> Result<ProfileRecord, EngineError> {
        let _in = self.enter()?;
        let _admin = self.inner.admin.lock().await;
        let record = self.profile(id)?;
        let numbers = durable(self.inner.dispatcher.retire(id, move |p, env| {
            let numbers = p
                .drain_senders()
                .into_iter()
                .map(|s| s.number)
                .collect::<Vec<_>>();
            (
                numbers,
                env.journal(&[Record::ProfileDeleted { profile: id }]),
            )
        }))
        .await?;
        let now = self.now();
        let mut catalog = self.inner.catalog.write();
        catalog.profiles.remove(&id);
        for n in numbers {
            if let Some(r) = catalog.numbers.get_mut(&n) {
                r.profile = None;
                r.updated_at = now;
            }
        }
        Ok(record)
    }

    // ---- Numbers ------------------------------------------------------------

    /// Assigns `number` to `profile` (creating its record if new), moving it
    /// with its health if another profile had it; `None` unassigns it.
    pub async fn assign_number(
        &self,
        number: PhoneNumber,
        profile: Option<ProfileId>,
    ) -> Result<NumberRecord, EngineError> {
        let _in = self.enter()?;
        let _admin = self.inner.admin.lock().await;
        let existing = self.number_record(number);
        if let Some(target) = profile {
            self.profile(target)?;
        } else if existing.is_none() {
            return Err(EngineError::UnknownNumber);
        }
        let now = self.now();
        let previous = existing.and_then(|r| r.profile);
        let mut landed = previous;
        if previous != profile {
            // The record as it will be, journaled by each actor involved.
            let id =
                existing.map_or_else(|| self.inner.catalog.read().next_number_id + 1, |r| r.id);
            let created_at = existing.map_or(now, |r| r.created_at);
            let saved = move |by: ProfileId, owner: Option<ProfileId>| Record::NumberSaved {
                profile: by,
                number,
                id,
                owner,
                created_at,
                updated_at: now,
            };
            let mut health = None;
            if let Some(old) = previous {
                let record = saved(old, profile);
                let (carried, receipt) = self
                    .inner
                    .dispatcher
                    .control(old, move |p, env| {
                        (
                            p.remove_sender(number).map(|s| s.health),
                            env.journal(&[record]),
                        )
                    })
                    .await?;
                health = carried;
                landed = None;
                self.record_assignment(number, landed, now);
                settle(receipt).await?;
            }
            if let Some(target) = profile {
                let health = health.unwrap_or_default();
                let record = saved(target, Some(target));
                let added = self
                    .inner
                    .dispatcher
                    .control(target, move |p, env| {
                        p.add_sender(number, health);
                        env.journal(&[record])
                    })
                    .await;
                if added.is_ok() {
                    landed = Some(target);
                }
                // Keep the record true to where the number is, even on failure.
                self.record_assignment(number, landed, now);
                settle(added?).await?;
            }
        }
        Ok(self.record_assignment(number, landed, now))
    }

    fn record_assignment(
        &self,
        number: PhoneNumber,
        profile: Option<ProfileId>,
        now: Timestamp,
    ) -> NumberRecord {
        let mut catalog = self.inner.catalog.write();
        let next_id = catalog.next_number_id + 1;
        let record = catalog
            .numbers
            .entry(number)
            .or_insert_with(|| NumberRecord {
                number,
                id: next_id,
                profile: None,
                created_at: now,
                updated_at: now,
            });
        if record.id == next_id {
            catalog.next_number_id = next_id;
        }
        let record = catalog.numbers.get_mut(&number).expect("just inserted");
        record.profile = profile;
        record.updated_at = now;
        *record
    }

    /// The record of `number`, if the engine knows it.
    pub fn number_record(&self, number: PhoneNumber) -> Option<NumberRecord> {
        self.inner.catalog.read().numbers.get(&number).copied()
    }

    /// The number whose numeric id is `id`.
    pub fn number_by_id(&self, id: u64) -> Option<NumberRecord> {
        self.inner
            .catalog
            .read()
            .numbers
            .values()
            .find(|r| r.id == id)
            .copied()
    }

    /// The profile `number` is assigned to.
    pub fn owner(&self, number: PhoneNumber) -> Option<ProfileId> {
        self.number_record(number).and_then(|r| r.profile)
    }

    /// A number with its kind, health and eligibility now.
    pub async fn number(&self, number: PhoneNumber) -> Result<NumberStatus, EngineError> {
        let record = self
            .number_record(number)
            .ok_or(EngineError::UnknownNumber)?;
        let mut all = self.statuses(vec![record]).await?;
        Ok(all.remove(0))
    }

    /// Every number the engine knows, by number, or only those of `profile`.
    pub async fn numbers(
        &self,
        profile: Option<ProfileId>,
    ) -> Result<Vec<NumberStatus>, EngineError> {
        if let Some(p) = profile {
            self.profile(p)?;
        }
        let records: Vec<NumberRecord> = self
            .inner
            .catalog
            .read()
            .numbers
            .values()
            .filter(|r| profile.is_none() || r.profile == profile)
            .copied()
            .collect();
        self.statuses(records).await
    }

    /// Health and eligibility for `records`: one request per profile involved.
    async fn statuses(&self, records: Vec<NumberRecord>) -> Result<Vec<NumberStatus>, EngineError> {
        let _in = self.enter()?;
        let now = self.now_secs();
        let mut by_profile: HashMap<ProfileId, Vec<PhoneNumber>> = HashMap::new();
        for r in &records {
            if let Some(p) = r.profile {
                by_profile.entry(p).or_default().push(r.number);
            }
        }
        let mut infos: HashMap<PhoneNumber, SenderInfo> = HashMap::new();
        for (p, numbers) in by_profile {
            let found = self
                .inner
                .dispatcher
                .control(p, move |prof, env| {
                    numbers
                        .iter()
                        .filter_map(|&n| prof.sender(n, now, &env.health))
                        .collect::<Vec<_>>()
                })
                .await?;
            infos.extend(found.into_iter().map(|i| (i.number, i)));
        }
        Ok(records
            .into_iter()
            .map(|record| match infos.get(&record.number) {
                Some(i) => NumberStatus {
                    record,
                    kind: i.kind,
                    health: i.health,
                    unhealthy: i.unhealthy,
                    eligibility: i.eligibility,
                },
                None => NumberStatus {
                    record,
                    kind: record.number.kind(),
                    health: HealthCounts::default(),
                    unhealthy: false,
                    eligibility: Eligibility::Unassigned,
                },
            })
            .collect())
    }

    // ---- Sending ------------------------------------------------------------

    /// Chooses the sender of one message from `profile`'s pool to `to`.
    pub async fn send(
        &self,
        profile: ProfileId,
        to: PhoneNumber,
    ) -> Result<Selection, EngineError> {
        let _in = self.enter()?;
        Ok(self
            .inner
            .dispatcher
            .select(profile, to, self.now_secs())
            .await??)
    }

    /// Chooses senders for many messages of one profile in one actor message.
    pub async fn send_to_many(
        &self,
        profile: ProfileId,
        recipients: Vec<PhoneNumber>,
    ) -> Result<Vec<Result<Selection, SelectError>>, EngineError> {
        let _in = self.enter()?;
        Ok(self
            .inner
            .dispatcher
            .select_many(profile, recipients, self.now_secs())
            .await?)
    }

    /// Chooses senders for a batch of `(profile, recipient)` pairs: grouped
    /// by profile into one actor message each, all in flight at once.
    /// Results come back in the order of `items`.
    pub async fn send_batch(
        &self,
        items: &[(ProfileId, PhoneNumber)],
    ) -> Vec<Result<Selection, EngineError>> {
        let guard = match self.enter() {
            Ok(g) => g,
            Err(e) => return items.iter().map(|_| Err(e.clone())).collect(),
        };
        let now = self.now_secs();
        let mut groups: HashMap<ProfileId, Vec<usize>> = HashMap::new();
        for (i, (p, _)) in items.iter().enumerate() {
            groups.entry(*p).or_default().push(i);
        }
        let dispatcher = &self.inner.dispatcher;
        let requests = groups.into_iter().map(|(p, positions)| {
            let recipients = positions.iter().map(|&i| items[i].1).collect();
            async move { (positions, dispatcher.select_many(p, recipients, now).await) }
        });
        let mut out: Vec<Option<Result<Selection, EngineError>>> = vec![None; items.len()];
        for (positions, result) in futures::future::join_all(requests).await {
            match result {
                Ok(selections) => {
                    for (i, s) in positions.into_iter().zip(selections) {
                        out[i] = Some(s.map_err(EngineError::from));
                    }
                }
                Err(e) => {
                    for i in positions {
                        out[i] = Some(Err(e.into()));
                    }
                }
            }
        }
        drop(guard);
        out.into_iter()
            .map(|r| r.expect("every position answered"))
            .collect()
    }

    /// [`Engine::send`] for callers outside an async runtime. Do not call it
    /// from a thread of an async runtime (it blocks the thread).
    pub fn send_blocking(
        &self,
        profile: ProfileId,
        to: PhoneNumber,
    ) -> Result<Selection, EngineError> {
        futures::executor::block_on(self.send(profile, to))
    }

    /// [`Engine::send_batch`] for callers outside an async runtime.
    pub fn send_batch_blocking(
        &self,
        items: &[(ProfileId, PhoneNumber)],
    ) -> Vec<Result<Selection, EngineError>> {
        futures::executor::block_on(self.send_batch(items))
    }

    // ---- Sticky mappings ----------------------------------------------------

    /// The live mapping of `to` in `profile`.
    pub async fn mapping(
        &self,
        profile: ProfileId,
        to: PhoneNumber,
    ) -> Result<Option<StickyMapping>, EngineError> {
        let _in = self.enter()?;
        let now = self.now_secs();
        Ok(self
            .inner
            .dispatcher
            .control(profile, move |p, _| p.mapping(to, now))
            .await?)
    }

    /// Every live mapping of `profile`, ordered by recipient.
    pub async fn mappings(&self, profile: ProfileId) -> Result<Vec<StickyMapping>, EngineError> {
        let _in = self.enter()?;
        let now = self.now_secs();
        Ok(self
            .inner
            .dispatcher
            .control(profile, move |p, _| p.mappings(now))
            .await?)
    }

    /// Pins `to` to sender `from` of `profile`'s pool; it does not expire until removed.
    pub async fn pin(
        &self,
        profile: ProfileId,
        to: PhoneNumber,
        from: PhoneNumber,
    ) -> Result<StickyMapping, EngineError> {
        let _in = self.enter()?;
        let now = self.now_secs();
        Ok(
            durable(self.inner.dispatcher.control(profile, move |p, env| {
                let pinned = p.pin(to, from, now);
                let receipt = pinned.as_ref().ok().and_then(|m| {
                    env.journal(&[Record::MappingSet {
                        profile,
                        to,
                        from,
                        created_at: m.created_at,
                        last_used: m.last_used_at,
                        pinned: true,
                    }])
                });
                (pinned, receipt)
            }))
            .await??,
        )
    }

    /// Breaks the mapping of `to`; returns it if it was live.
    pub async fn unmap(
        &self,
        profile: ProfileId,
        to: PhoneNumber,
    ) -> Result<Option<StickyMapping>, EngineError> {
        let _in = self.enter()?;
        let now = self.now_secs();
        durable(self.inner.dispatcher.control(profile, move |p, env| {
            (
                p.unmap(to, now),
                env.journal(&[Record::MappingRemoved { profile, to }]),
            )
        }))
        .await
    }

    // ---- Health -------------------------------------------------------------

    /// Records a delivery outcome of `sender`. `Ok(false)` if no profile has
    /// the number (the outcome is dropped).
    pub async fn report_outcome(
        &self,
        sender: PhoneNumber,
        outcome: DeliveryOutcome,
    ) -> Result<bool, EngineError> {
        let _in = self.enter()?;
        let Some(profile) = self.owner(sender) else {
            return Ok(false);
        };
        let now = self.now_secs();
        durable(self.inner.dispatcher.run(profile, move |p, env| {
            if p.record_outcome(sender, outcome, now, &env.health) {
                let record = Record::Outcome {
                    profile,
                    sender,
                    outcome,
                    at: now,
                };
                (true, env.journal(&[record]))
            } else {
                (false, None)
            }
        }))
        .await
    }

    // ---- Operations ---------------------------------------------------------

    /// Counters of every profile and their sum.
    pub async fn stats(&self) -> EngineStats {
        let dispatcher = &self.inner.dispatcher;
        let ids = dispatcher.profile_ids();
        let requests = ids.into_iter().map(|id| async move {
            let stats = dispatcher.control(id, |p, _| p.stats()).await.ok()?;
            Some(ProfileSnapshot {
                id,
                stats,
                mailbox_depth: dispatcher.depth(id),
            })
        });
        let mut total = EngineStats::default();
        for s in futures::future::join_all(requests)
            .await
            .into_iter()
            .flatten()
        {
            total.profiles += 1;
            total.sticky += s.stats.sticky;
            total.geomatch += s.stats.geomatch;
            total.weighted += s.stats.weighted;
            total.rejected += s.stats.rejected;
            total.mappings_created += s.stats.mappings_created;
            total.expired += s.stats.expired;
            total.stored_mappings += s.stats.stored_mappings;
            total.sticky_heap_bytes += s.stats.sticky_heap_bytes;
            total.senders += s.stats.senders;
            total.mailbox_depth += s.mailbox_depth;
            total.max_mailbox_depth = total.max_mailbox_depth.max(s.mailbox_depth);
            total.per_profile.push(s);
        }
        total.per_profile.sort_by_key(|s| s.id);
        total
    }

    /// Messages queued in `profile`'s mailbox now (0 for an unknown profile).
    /// Read without asking the actor, so it answers even while the actor is busy.
    pub fn mailbox_depth(&self, profile: ProfileId) -> usize {
        self.inner.dispatcher.depth(profile)
    }

    /// Runs expiry to completion on every profile now (actors also do it on
    /// their own every `expire_tick`, in budgeted slices).
    pub async fn expire_now(&self) -> ExpireReport {
        let now = self.now_secs();
        let dispatcher = &self.inner.dispatcher;
        let requests = dispatcher
            .profile_ids()
            .into_iter()
            .map(|id| dispatcher.control(id, move |p, _| p.expire(now, usize::MAX)));
        let mut total = ExpireReport {
            done: true,
            ..Default::default()
        };
        for r in futures::future::join_all(requests)
            .await
            .into_iter()
            .flatten()
        {
            total.expired += r.expired;
            total.reclaimed += r.reclaimed;
        }
        total
    }

    /// Stops taking calls, waits for the calls in flight to finish, then
    /// stops every actor and thread.
    pub async fn shutdown(&self) {
        self.inner.closing.store(true, Ordering::Release);
        loop {
            let drained = self.inner.drained.notified();
            if self.inner.inflight.load(Ordering::Acquire) == 0 {
                break;
            }
            drained.await;
        }
        self.inner.dispatcher.shutdown();
        if let Some(writer) = &self.inner.writer {
            writer.stop();
        }
    }

    /// Test hook: runs `f` on the actor of `profile` (to inject a panic or a stall).
    #[cfg(feature = "test-util")]
    pub async fn run_on_actor<R, F>(&self, profile: ProfileId, f: F) -> Result<R, EngineError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Profile) -> R + Send + 'static,
    {
        let _in = self.enter()?;
        Ok(self.inner.dispatcher.run(profile, move |p, _| f(p)).await?)
    }
}
