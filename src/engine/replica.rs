//! Following a cluster leader: a standby applies the records of each batch
//! of the leader's log to its own live state, and writes them to its local
//! log. Records about one profile's state go through the function
//! recovery uses for all but runs of new mappings
//! (`journal::recovery::apply_to_profile`); profiles and numbers
//! are created, changed, moved and deleted here, as the engine's own calls
//! do, without their checks (the leader made them).

use std::sync::Arc;

use super::actor::ProfileActor;
use super::Engine;
use crate::error::Error;
use crate::journal::recovery::apply_to_profile;
use crate::journal::{settle, Applies, Record};
use crate::resources::{NumberRecord, ProfileRecord};
use crate::selection::compliance::Destinations;
use crate::selection::{move_sender, ProfileState};

impl Engine {
    /// Applies the records of one batch of a cluster leader's log, at
    /// position `position` of it, and writes them with that position to the
    /// local log. Batches must come in order. Runs on the thread applying
    /// the log (the follower's, or the elected node's catching up), never
    /// on an executor: it does that write itself.
    pub(crate) async fn apply_replicated(
        &self,
        records: Vec<Record>,
        position: u64,
    ) -> Result<(), Error> {
        let inner = &self.inner;
        let _admin = inner.admin.lock().await;
        let now_ms = inner.now().as_millis();
        let mut local = Vec::with_capacity(records.len() + 1);
        for r in records {
            match r.applies() {
                Applies::ProfileState(id) => {
                    // A profile this node does not have: nothing to keep.
                    let Some(actor) = inner.dispatcher.actor(id) else {
                        continue;
                    };
                    let mut state = actor.lock();
                    let mapped = matches!(r, Record::MappingSet { .. });
                    apply_to_profile(&mut state, r.clone(), &inner.env.health, now_ms, true);
                    if mapped {
                        if let Some(due) = state.wakeup_after_mapping((now_ms / 1000) as u32) {
                            inner.env.expiry.schedule(actor.id, due);
                        }
                    }
                }
                Applies::ProfileSaved => {
                    if let Record::ProfileSaved { profile, at } = &r {
                        self.replica_profile(ProfileRecord::clone(profile), *at);
                    }
                }
                Applies::ProfileDeleted => {
                    if let Record::ProfileDeleted { profile } = &r {
                        self.replica_delete(*profile);
                    }
                }
                Applies::NumberSaved => {
                    if let Record::NumberSaved(number) = &r {
                        self.replica_number(*number);
                    }
                }
                // The position is written below, once for the batch.
                Applies::Replicated | Applies::Nothing => continue,
            }
            local.push(r);
        }
        local.push(Record::Replicated { position });
        let receipt = inner.env.journal_local(&local);
        if let (Some(_), Some(writer)) = (&receipt, &inner.env.journal) {
            // This thread writes its batch (see `help_follower`).
            writer.help_follower();
        }
        settle(receipt).await?;
        if let Some(writer) = &inner.env.journal {
            writer.set_replicated(position);
        }
        Ok(())
    }

    /// A profile deleted on the leader.
    fn replica_delete(&self, profile: crate::ids::ProfileId) {
        let inner = &self.inner;
        if let Some(actor) = inner.dispatcher.remove(profile) {
            let mut state = actor.lock();
            actor.retire(&mut state);
            state.drain_senders();
            drop(state);
            actor.stop_mailbox();
            inner.env.expiry.forget(profile);
            inner.catalog.write().remove_profile(profile, inner.now());
        }
    }

    /// A profile created or changed on the leader.
    fn replica_profile(&self, mut profile: ProfileRecord, at: u32) {
        let inner = &self.inner;
        profile.whitelisted_destinations =
            Destinations::canonical(&profile.whitelisted_destinations);
        match inner.dispatcher.actor(profile.id) {
            Some(actor) => {
                actor.lock().apply_record(&profile, u64::from(at) * 1000);
            }
            None => {
                let state = ProfileState::from_record(&profile, inner.config.shape());
                inner.dispatcher.insert(Arc::new(ProfileActor::new(
                    profile.id,
                    state,
                    Arc::clone(&inner.env),
                    Arc::downgrade(&inner.runtime),
                )));
            }
        }
        inner.catalog.write().put_profile(profile);
    }

    /// A number assigned, moved, unassigned or given a rate on the leader.
    fn replica_number(&self, record: NumberRecord) {
        let inner = &self.inner;
        let previous = self.number_record(record.number).and_then(|r| r.profile);
        let source = previous.and_then(|p| inner.dispatcher.actor(p));
        let target = record.profile.and_then(|p| inner.dispatcher.actor(p));
        if previous != record.profile {
            let mut from = source.as_ref().map(|a| a.lock());
            let mut to = target.as_ref().map(|a| a.lock());
            move_sender(&record, from.as_deref_mut(), to.as_deref_mut());
        } else if let Some(actor) = &target {
            actor
                .lock()
                .set_rate(record.number, record.messages_per_second, None);
        }
        inner.catalog.write().put_number(record);
    }
}
