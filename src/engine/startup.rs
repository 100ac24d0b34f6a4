//! The engine's life: start (recovering the journal first), snapshots, and
//! a graceful shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Actor;
use parking_lot::RwLock;

use super::actor::{Env, ProfileActor};
use super::catalog::Catalog;
use super::dispatcher::Dispatcher;
use super::housekeeping::{ExpirySchedule, Housekeeper};
use super::mailbox::Runtime;
use super::{EngineConfig, InFlight, Inner};
use crate::clock::{Clock, CoarseClock};
use crate::error::StartError;
use crate::ids::ProfileId;
use crate::journal::lock::DirLock;
use crate::journal::recovery::{self, ReplayConfig};
use crate::journal::snapshot::{self, ProfileImage, Snapshots};
use crate::journal::{self, settle, Record, Writer};
use crate::resources::ProfileRecord;
use crate::Engine;

/// What recovery found when the engine started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Profiles recovered.
    pub profiles: usize,
    /// Numbers recovered.
    pub numbers: usize,
    /// Sticky mappings recovered.
    pub mappings: usize,
    /// The snapshot recovery started from, if any.
    pub snapshot: Option<u64>,
    /// Log records replayed after it.
    pub replayed_records: u64,
    /// What recovery repaired or skipped (torn tails cut, damaged snapshots).
    pub warnings: Vec<String>,
    /// How long recovery took.
    pub took: Duration,
}

impl Engine {
    /// Starts an engine on the wall clock ([`CoarseClock`]: as of the
    /// kernel's last tick, a few milliseconds at most behind the precise
    /// time, for a fifth of the cost of reading that), recovering the state
    /// journaled in `config.journal` first (if set). For the precise clock:
    /// `start_with_clock(config, Arc::new(SystemClock))`.
    ///
    /// ```
    /// use numpool::{Engine, EngineConfig};
    /// let engine = Engine::start(EngineConfig::default())?;
    /// assert_eq!(engine.profiles().len(), 0);
    /// # Ok::<(), numpool::StartError>(())
    /// ```
    pub fn start(config: EngineConfig) -> Result<Engine, StartError> {
        Self::start_with_clock(config, Arc::new(CoarseClock))
    }

    /// [`Engine::start`] reading time from `clock` (a `ManualClock` in tests).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use numpool::{Clock, Engine, EngineConfig, Timestamp};
    ///
    /// struct Frozen;
    /// impl Clock for Frozen {
    ///     fn now(&self) -> Timestamp {
    ///         Timestamp::from_secs(1_800_000_000)
    ///     }
    /// }
    /// let engine = Engine::start_with_clock(EngineConfig::default(), Arc::new(Frozen))?;
    /// assert_eq!(engine.now().as_secs(), 1_800_000_000);
    /// # Ok::<(), numpool::StartError>(())
    /// ```
    pub fn start_with_clock(
        config: EngineConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Engine, StartError> {
        let started = Instant::now();
        let mut report = RecoveryReport::default();
        let (recovered, writer, lock) = match &config.journal {
            Some(j) => {
                std::fs::create_dir_all(&j.dir).map_err(|e| StartError::io(&j.dir, e))?;
                let lock = DirLock::acquire(&j.dir).inspect_err(|e| {
                    tracing::error!(dir = %j.dir.display(), error = %e, "journal: data directory refused");
                })?;
                let r = recovery::recover(
                    &j.dir,
                    ReplayConfig {
                        shape: config.shape(),
                        health: &config.health,
                        now_ms: clock.now().as_millis(),
                    },
                )?;
                let path = journal::segment_path(&j.dir, r.segment);
                // Test support: a process started with NUMPOOL_FAULT_JOURNAL=FILE
                // fails every journal write while FILE exists.
                #[cfg(feature = "test-util")]
                let fault_file = std::env::var_os("NUMPOOL_FAULT_JOURNAL").map(Into::into);
                #[cfg(not(feature = "test-util"))]
                let fault_file = None;
                let writer = Writer::start(&path, j.fsync, fault_file)
                    .map_err(|e| StartError::io(&path, e))?;
                writer.set_replicated(r.replicated);
                (Some(r), Some(Arc::new(writer)), Some(lock))
            }
            None => (None, None, None),
        };
        let runtime = Arc::new(Runtime::start(config.arbiters)?);
        let env = Arc::new(Env {
            health: config.health.clone(),
            clock,
            journal: writer,
            expiry: ExpirySchedule::default(),
            queues: super::housekeeping::QueueEnds::default(),
            mailbox_only: config.dispatch == super::Dispatch::Mailbox,
        });
        let dispatcher = Dispatcher::default();
        let mut catalog = Catalog::default();
        let mut next_snapshot = 1;
        let mut covers = 0;
        if let Some(r) = recovered {
            covers = r.snapshot_replicated;
            report.snapshot = r.snapshot;
            report.replayed_records = r.replayed;
            report.warnings = r.warnings;
            next_snapshot = r.segment + 1;
            let mut profiles = r.profiles;
            profiles.sort_by_key(|(record, _)| (record.created_at, record.id));
            for (record, mut state) in profiles {
                report.mappings += state.stats().stored_mappings;
                if let Some(at) = state.wakeup_after_expiry() {
                    env.expiry.schedule(record.id, at);
                }
                let actor =
                    ProfileActor::new(record.id, state, Arc::clone(&env), Arc::downgrade(&runtime));
                dispatcher.insert(Arc::new(actor));
                catalog.put_profile(record);
            }
            for n in r.numbers {
                catalog.put_number(n);
            }
            report.profiles = catalog.profile_count();
            report.numbers = catalog.numbers().len();
        }
        report.took = started.elapsed();
        if let Some(j) = &config.journal {
            for warning in &report.warnings {
                tracing::warn!(warning = %warning, "journal: recovery");
            }
            tracing::info!(
                dir = %j.dir.display(),
                profiles = report.profiles,
                numbers = report.numbers,
                mappings = report.mappings,
                snapshot = report.snapshot,
                log_records = report.replayed_records,
                took_ms = report.took.as_millis() as u64,
                "journal: recovered"
            );
        }
        let snapshot_every = config.journal.as_ref().and_then(|j| j.snapshot_every);
        let tick = config.expire_tick;
        let inner = Arc::new(Inner {
            dispatcher,
            catalog: RwLock::new(catalog),
            admin: tokio::sync::Mutex::new(()),
            env,
            config,
            runtime: Arc::clone(&runtime),
            snapshots: Snapshots::default(),
            recovery: report,
            healing: Default::default(),
            census: Default::default(),
            closing: AtomicBool::new(false),
            inflight: InFlight {
                slots: Default::default(),
            },
            drained: tokio::sync::Notify::new(),
            dir_lock: parking_lot::Mutex::new(lock),
        });
        inner.snapshots.next.store(next_snapshot, Ordering::Release);
        inner.snapshots.covers.store(covers, Ordering::Release);
        let housekeeper = Housekeeper {
            inner: Arc::downgrade(&inner),
            tick,
            snapshot_every,
        };
        Housekeeper::start_in_arbiter(runtime.arbiter(), move |_| housekeeper);
        Ok(Engine { inner })
    }

    /// Compacts the journal: writes snapshot N of every profile and number
    /// and removes the files older than the previous snapshot. Returns N
    /// (0 without a journal). Selection goes on meanwhile: no profile is
    /// held for more than one shard of its mappings at a time.
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, JournalConfig, NewProfile};
    /// # futures::executor::block_on(async {
    /// let dir = std::env::temp_dir().join(format!("numpool-doc-snapshot-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// let config = EngineConfig { journal: Some(JournalConfig::new(&dir)), ..Default::default() };
    /// let engine = Engine::start(config.clone())?;
    /// let p = engine.create_profile(NewProfile { name: "kept".into(), ..Default::default() }).await?.id;
    /// assert_eq!(engine.snapshot_now().await?, 1);
    /// engine.shutdown().await;
    /// // A restart recovers from the snapshot.
    /// let engine = Engine::start(config)?;
    /// assert_eq!(engine.recovery().snapshot, Some(1));
    /// assert_eq!(engine.profile(p)?.name, "kept");
    /// # engine.shutdown().await;
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn snapshot_now(&self) -> std::io::Result<u64> {
        let inner = &self.inner;
        let (Some(j), Some(writer)) = (inner.config.journal.clone(), inner.env.journal.clone())
        else {
            return Ok(0);
        };
        if writer.is_failed() {
            return Err(std::io::Error::other(
                "the journal cannot write; no snapshot until it can",
            ));
        }
        let _one = inner.snapshots.one.lock().await;
        let started = Instant::now();
        let now = inner.now_secs();
        // Phase 1, under the admin lock: the marks and the profiles' heads.
        let admin = inner.admin.lock().await;
        let n = inner.snapshots.next.fetch_add(1, Ordering::AcqRel);
        writer.rotate(journal::segment_path(&j.dir, n)).await?;
        // In a cluster: what of the cluster's log the files before the new
        // segment hold (a standby applies under the admin lock, held here).
        let replicated = writer.replicated();
        let mut heads = Vec::new();
        let mut marks = Vec::new();
        for actor in inner.dispatcher.actors() {
            let state = actor.lock();
            if actor.is_retired() {
                continue;
            }
            marks.push(inner.env.journal_local(&[Record::SnapshotMark {
                profile: actor.id,
                snapshot: n,
            }]));
            let head = (
                state.sender_states(),
                (state.daily_counts(), state.queue_ends()),
                state.mapping_parts(),
            );
            drop(state);
            heads.push((actor, head));
        }
        let (records, numbers) = {
            let catalog = inner.catalog.read();
            let profiles: HashMap<ProfileId, ProfileRecord> =
                catalog.profiles().into_iter().map(|r| (r.id, r)).collect();
            (profiles, catalog.numbers().clone())
        };
        drop(admin);
        for mark in marks {
            settle(mark)
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?;
        }
        // Phase 2: the mappings, one shard per lock.
        let mut images = Vec::new();
        for (actor, (senders, (daily, queues), parts)) in heads {
            let Some(record) = records.get(&actor.id).cloned() else {
                continue;
            };
            let mut mappings = Vec::new();
            for part in 0..parts {
                let state = actor.lock();
                mappings.extend(state.mappings_part(part, now));
            }
            // Opt-outs are set operations: one replayed after this copy
            // lands where it would have anyway.
            let opt_outs = actor.lock().opt_outs().all().collect();
            images.push(ProfileImage {
                record,
                senders,
                daily,
                queues,
                mappings,
                opt_outs,
            });
        }
        // Everything copied was appended before this barrier: if it is not
        // all written (a change refused meanwhile, its commit to a cluster
        // failed), this copy could hold it, and is not kept.
        settle(Some(writer.barrier())).await.map_err(|_| {
            std::io::Error::other("the journal failed while the snapshot was taken")
        })?;
        let dir = j.dir.clone();
        let (done, written) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let records = snapshot::records(images, numbers, now, replicated);
            let result = snapshot::write(&dir, n, records).and_then(|_| snapshot::retain(&dir));
            let _ = done.send(result);
        });
        written
            .await
            .map_err(|_| std::io::Error::other("the snapshot writer stopped"))??;
        inner
            .snapshots
            .covers
            .fetch_max(replicated, Ordering::AcqRel);
        tracing::info!(
            snapshot = n,
            position = replicated,
            bytes = std::fs::metadata(journal::snapshot_path(&j.dir, n)).map_or(0, |m| m.len()),
            took_ms = started.elapsed().as_millis() as u64,
            "journal: snapshot taken"
        );
        Ok(n)
    }

    /// Stops taking calls, waits for the calls in flight to finish, then
    /// stops every actor and thread (the journal is flushed and synced, the
    /// data directory released).
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, NewProfile, PhoneNumber, SettingsPatch, SettingsUpdate};
    /// # futures::executor::block_on(async {
    /// # let engine = Engine::start(EngineConfig::default())?;
    /// engine.shutdown().await;
    /// let refused = engine.create_profile(NewProfile::default()).await;
    /// assert_eq!(refused, Err(numpool::Error::ShuttingDown));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        inner.closing.store(true, Ordering::SeqCst);
        loop {
            let drained = inner.drained.notified();
            if inner.inflight.total() == 0 {
                break;
            }
            drained.await;
        }
        // Where every queue ends now, as the ticks would write it.
        while !inner.env.queues.is_empty() && super::housekeeping::write_queue_ends(inner) {}
        // Exact daily counts replace the blocks reserved ahead in the log
        // (not on a cluster standby: its counts are the leader's).
        let takes_changes = inner
            .env
            .journal
            .as_ref()
            .is_some_and(|w| w.takes_changes());
        let mut receipts = Vec::new();
        for actor in inner
            .dispatcher
            .actors()
            .into_iter()
            .filter(|_| takes_changes)
        {
            let state = actor.lock();
            let records = snapshot::daily_records(actor.id, state.daily_counts());
            if !records.is_empty() {
                receipts.push(inner.env.journal(&records));
            }
        }
        for receipt in receipts {
            // A journal that cannot write keeps the reservations: counts
            // err on the side of the caps.
            let _ = settle(receipt).await;
        }
        inner.runtime.stop();
        inner.dispatcher.clear();
        if let Some(writer) = &inner.env.journal {
            writer.stop();
        }
        // Another engine may use the directory from now on.
        inner.dir_lock.lock().take();
    }
}
