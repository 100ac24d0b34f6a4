//! When the journal cannot write: refuse changes, put back what is durable,
//! and resume on our own once writing works again.
//!
//! A change is applied in memory and then journaled; its caller is only
//! answered once the record is written. When a write fails, the changes of
//! that batch (and any behind it) are refused to their callers, but memory
//! already has them. So:
//!
//! 1. From the failure on, every change is refused before it is applied
//!    (`Error::Unavailable`, HTTP 503 with `Retry-After`), and the engine
//!    reports itself not ready.
//! 2. The housekeeper reloads every profile and number from the journal
//!    files, which the writer has cut back to the last acknowledged batch:
//!    memory again holds exactly what was acknowledged, so no later read,
//!    retry or restart shows a refused change.
//! 3. Then it probes the journal every tick; the first write that works
//!    ends the outage.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::actor::ProfileActor;
use super::Engine;
use crate::error::Error;
use crate::ids::ProfileId;
use crate::journal::recovery::{self, ReplayConfig};

/// Where the engine is in an outage of its journal.
#[derive(Default)]
pub(crate) struct Healing {
    /// The state in memory is the journal's (reloaded since the failure).
    reloaded: AtomicBool,
    /// Memory may hold a change the journal refused, until the reload under
    /// way ends (set before the writer's own flag is taken).
    dirty: AtomicBool,
    /// Held by the one heal (or reload) running.
    turn: tokio::sync::Mutex<()>,
}

impl Engine {
    /// Refuses a change while the journal cannot write.
    #[inline]
    pub(crate) fn check_journal(&self) -> Result<(), Error> {
        match &self.inner.env.journal {
            Some(w) if w.is_failed() => Err(Error::Unavailable),
            _ => Ok(()),
        }
    }

    /// Whether the engine takes changes now: `false` while its journal cannot
    /// write (changes are refused with [`Error::Unavailable`] until it can;
    /// reads go on). Always `true` without a journal.
    ///
    /// ```
    /// use numpool::{Engine, EngineConfig};
    /// let engine = Engine::start(EngineConfig::default())?;
    /// assert!(engine.is_ready());
    /// # Ok::<(), numpool::StartError>(())
    /// ```
    pub fn is_ready(&self) -> bool {
        self.check_journal().is_ok()
    }

    /// In a cluster: the position of the cluster's log this engine's state
    /// holds (0 outside a cluster).
    pub fn replicated_position(&self) -> u64 {
        self.inner
            .env
            .journal
            .as_ref()
            .map_or(0, |w| w.replicated())
    }

    /// The journal's writer, when the engine journals.
    pub(crate) fn journal_writer(&self) -> Option<Arc<crate::journal::Writer>> {
        self.inner.env.journal.clone()
    }

    /// Why the journal last failed, while it is failed.
    ///
    /// ```
    /// use numpool::{Engine, EngineConfig};
    /// let engine = Engine::start(EngineConfig::default())?;
    /// assert_eq!(engine.journal_error(), None);
    /// # Ok::<(), numpool::StartError>(())
    /// ```
    pub fn journal_error(&self) -> Option<String> {
        let writer = self.inner.env.journal.as_ref()?;
        writer
            .is_failed()
            .then(|| writer.last_error().unwrap_or_default())
    }

    /// Whether memory may hold a change the journal refused (it is being
    /// reloaded away): nothing may be answered from memory without waiting
    /// for the journal now. Always `false` without a journal.
    #[cfg(feature = "server")]
    pub(crate) fn may_hold_refused(&self) -> bool {
        let Some(writer) = &self.inner.env.journal else {
            return false;
        };
        writer.refused_pending() || self.inner.healing.dirty.load(Ordering::Acquire)
    }

    /// Takes the writer's note of a refused change, marking memory dirty
    /// first (so that [`Engine::may_hold_refused`] never misses it) until
    /// the next reload ends.
    fn take_refused(&self, writer: &crate::journal::Writer) -> bool {
        if !writer.refused_pending() {
            return false;
        }
        self.inner.healing.dirty.store(true, Ordering::Release);
        writer.take_refused()
    }

    /// Drains the writer and reloads the state from the files; memory then
    /// holds exactly what they hold. Call with the healing turn held.
    async fn reload_written(
        &self,
        writer: &crate::journal::Writer,
    ) -> Result<(), crate::StartError> {
        let healing = &self.inner.healing;
        self.take_refused(writer);
        // The files must hold every batch the writer will still write.
        writer.drain().await;
        self.reload().await?;
        healing.reloaded.store(true, Ordering::Release);
        if !writer.refused_pending() {
            healing.dirty.store(false, Ordering::Release);
        }
        Ok(())
    }

    /// One step of healing, run by the housekeeper every tick while the
    /// journal is failed: reload once, then probe.
    pub(crate) async fn heal(&self) {
        let Some(writer) = self.inner.env.journal.clone() else {
            return;
        };
        let healing = &self.inner.healing;
        if !writer.is_failed() {
            return;
        }
        let Ok(_turn) = healing.turn.try_lock() else {
            return;
        };
        // A change refused since the last reload (one that passed the
        // check just before the failure) may be in memory: reload again.
        if writer.refused_pending() {
            healing.reloaded.store(false, Ordering::Release);
        }
        if !healing.reloaded.load(Ordering::Acquire) {
            if let Err(e) = self.reload_written(&writer).await {
                tracing::error!(error = %e, "journal: reloading after a write failure failed");
            }
        }
        if healing.reloaded.load(Ordering::Acquire) {
            if writer.refused_pending() {
                // Refused since the reload: reload again next time.
                healing.reloaded.store(false, Ordering::Release);
            } else if writer.probe().await {
                healing.reloaded.store(false, Ordering::Release);
                if writer.refused_pending() {
                    // Refused while the probe ran: once more.
                    writer.fail("a change was refused while the journal recovered; reloading");
                } else {
                    tracing::info!("journal: writing again; taking changes");
                }
            }
        }
    }

    /// Forgets every change the files do not hold (a cluster node that
    /// stops leading: memory may hold changes etcd never committed): drains
    /// the writer, reloads, and takes changes again once the journal
    /// writes. Returns once memory holds only what the files hold (a
    /// change refused later is reported by [`Engine::may_hold_refused`]).
    pub(crate) async fn forget_uncommitted(&self) -> Result<(), crate::StartError> {
        let Some(writer) = self.inner.env.journal.clone() else {
            return Ok(());
        };
        {
            let _turn = self.inner.healing.turn.lock().await;
            self.reload_written(&writer).await?;
        }
        self.heal().await;
        Ok(())
    }

    /// Replaces every profile's state and the records with what the
    /// journal holds (no profile is touched mid-request: each is swapped
    /// under its lock, all under the admin lock).
    pub(crate) async fn reload(&self) -> Result<(), crate::StartError> {
        let inner = &self.inner;
        let Some(journal) = &inner.config.journal else {
            return Ok(());
        };
        let _admin = inner.admin.lock().await;
        let config = &inner.config;
        let recovered = recovery::recover(
            &journal.dir,
            ReplayConfig {
                shape: config.shape(),
                health: &config.health,
                now_ms: inner.now().as_millis(),
            },
        )?;
        let mut durable: HashMap<ProfileId, _> = recovered
            .profiles
            .into_iter()
            .map(|(record, state)| (record.id, (record, state)))
            .collect();
        let mut records = Vec::new();
        for actor in inner.dispatcher.actors() {
            let mut state = actor.lock();
            if actor.is_retired() {
                continue;
            }
            match durable.remove(&actor.id) {
                Some((record, mut restored)) => {
                    if let Some(at) = restored.wakeup_after_expiry() {
                        inner.env.expiry.schedule(actor.id, at);
                    }
                    actor.replace_state(&mut state, restored);
                    records.push(record);
                }
                None => {
                    // Created in memory, never made durable.
                    actor.retire(&mut state);
                    drop(state);
                    inner.dispatcher.remove(actor.id);
                    actor.stop_mailbox();
                    inner.env.expiry.forget(actor.id);
                }
            }
        }
        // Deleted in memory, but the deletion was never made durable.
        let mut back: Vec<_> = durable.into_values().collect();
        back.sort_by_key(|(record, _)| (record.created_at, record.id));
        for (record, mut state) in back {
            if let Some(at) = state.wakeup_after_expiry() {
                inner.env.expiry.schedule(record.id, at);
            }
            let actor = ProfileActor::new(
                record.id,
                state,
                Arc::clone(&inner.env),
                Arc::downgrade(&inner.runtime),
            );
            inner.dispatcher.insert(Arc::new(actor));
            records.push(record);
        }
        records.sort_by_key(|r| (r.created_at, r.id));
        let mut catalog = super::catalog::Catalog::default();
        for record in records {
            catalog.put_profile(record);
        }
        for n in recovered.numbers {
            catalog.put_number(n);
        }
        *inner.catalog.write() = catalog;
        Ok(())
    }
}
