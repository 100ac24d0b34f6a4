//! Profiles and numbers: creating, changing and deleting profiles,
//! assigning and moving numbers, and reading their records.
//!
//! Every change here holds the engine's admin lock, then the lock of each
//! profile it changes while it journals its record, so the journal is in
//! the order the state changed and a number is never seen half-moved.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::actor::ProfileActor;
use super::Engine;
use crate::error::Error;
use crate::ids::ProfileId;
use crate::journal::{settle, Record};
use crate::number::PhoneNumber;
use crate::records::{NewProfile, NumberRecord, NumberStatus, ProfileRecord, ProfileUpdate};
use crate::selection::health::HealthCounts;
use crate::selection::profile::SenderInfo;
use crate::selection::rules::Eligibility;
use crate::selection::{move_sender, ProfileState};

/// The records of profiles and numbers.
#[derive(Default)]
pub(crate) struct Catalog {
    /// Each profile's record with its place in creation order.
    profiles: HashMap<ProfileId, (u64, ProfileRecord)>,
    next_profile: u64,
    pub numbers: BTreeMap<PhoneNumber, NumberRecord>,
    /// The number with id `i + 1` at `i` (ids are handed out in order).
    pub number_ids: Vec<PhoneNumber>,
    pub next_number_id: u64,
}

impl Catalog {
    /// Records a new or changed profile (a new one goes last in order).
    pub fn put_profile(&mut self, record: ProfileRecord) {
        let order = match self.profiles.get(&record.id) {
            Some((order, _)) => *order,
            None => {
                self.next_profile += 1;
                self.next_profile
            }
        };
        self.profiles.insert(record.id, (order, record));
    }

    /// Forgets a deleted profile.
    pub fn remove_profile(&mut self, id: ProfileId) {
        self.profiles.remove(&id);
    }

    /// The record of profile `id`.
    pub fn profile(&self, id: ProfileId) -> Option<&ProfileRecord> {
        self.profiles.get(&id).map(|(_, r)| r)
    }

    /// Every profile record, in creation order.
    pub fn profiles(&self) -> Vec<ProfileRecord> {
        let mut all: Vec<&(u64, ProfileRecord)> = self.profiles.values().collect();
        all.sort_by_key(|(order, _)| *order);
        all.into_iter().map(|(_, r)| r.clone()).collect()
    }

    /// Number of profiles.
    pub fn profile_count(&self) -> usize {
        self.profiles.len()
    }

    /// Records `record` (new or changed).
    pub fn put_number(&mut self, record: NumberRecord) {
        self.next_number_id = self.next_number_id.max(record.id);
        if let Some(i) = usize::try_from(record.id)
            .ok()
            .and_then(|id| id.checked_sub(1))
        {
            if i >= self.number_ids.len() {
                // A gap (never left by this engine) is filled with this number;
                // lookups check the record's id.
                self.number_ids.resize(i + 1, record.number);
            }
            self.number_ids[i] = record.number;
        }
        self.numbers.insert(record.number, record);
    }

    /// The record of the number whose id is `id`.
    pub fn number_by_id(&self, id: u64) -> Option<&NumberRecord> {
        let i = usize::try_from(id).ok()?.checked_sub(1)?;
        let record = self.numbers.get(self.number_ids.get(i)?)?;
        (record.id == id).then_some(record)
    }
}

impl Engine {
    pub(crate) fn actor_of(&self, id: ProfileId) -> Result<Arc<ProfileActor>, Error> {
        self.inner.dispatcher.actor(id).ok_or(Error::UnknownProfile)
    }

    /// Creates a messaging profile.
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, NewProfile, SettingsPatch, SettingsUpdate};
    /// # futures::executor::block_on(async {
    /// let engine = Engine::start(EngineConfig::default())?;
    /// let profile = engine
    ///     .create_profile(NewProfile {
    ///         name: "alerts".into(),
    ///         number_pool_settings: SettingsUpdate::Merge(SettingsPatch {
    ///             sticky_sender: Some(true),
    ///             ..Default::default()
    ///         }),
    ///         ..Default::default()
    ///     })
    ///     .await?;
    /// assert_eq!(engine.profile(profile.id)?.name, "alerts");
    /// # engine.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn create_profile(&self, new: NewProfile) -> Result<ProfileRecord, Error> {
        let _in = self.enter()?;
        self.check_journal()?;
        let _admin = self.inner.admin.lock().await;
        let settings = new.number_pool_settings.apply(None)?;
        let id = new.id.unwrap_or_else(ProfileId::new_v4);
        if self.inner.dispatcher.actor(id).is_some() {
            return Err(Error::DuplicateProfile);
        }
        let now = self.now();
        let record = ProfileRecord {
            id,
            name: new.name,
            enabled: new.enabled,
            whitelisted_destinations: new.whitelisted_destinations,
            webhook_url: new.webhook_url,
            webhook_failover_url: new.webhook_failover_url,
            number_pool_settings: settings.clone(),
            created_at: now,
            updated_at: now,
        };
        let config = &self.inner.config;
        let state = ProfileState::new(settings, config.sticky_ttl_secs, config.sticky_shards);
        let actor = Arc::new(ProfileActor::new(
            id,
            state,
            Arc::clone(&self.inner.env),
            Arc::downgrade(&self.inner.runtime),
        ));
        let receipt = {
            let _state = actor.lock();
            self.inner.env.journal(&[Record::ProfileSaved {
                profile: record.clone(),
                at: now.as_secs_u32(),
            }])
        };
        self.inner.dispatcher.insert(actor);
        self.inner.catalog.write().put_profile(record.clone());
        settle(receipt).await?;
        Ok(record)
    }

    /// The record of profile `id`.
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, NewProfile, PhoneNumber, SettingsPatch, SettingsUpdate};
    /// # futures::executor::block_on(async {
    /// # let engine = Engine::start(EngineConfig::default())?;
    /// let created = engine.create_profile(NewProfile { name: "alerts".into(), ..Default::default() }).await?;
    /// assert_eq!(engine.profile(created.id)?, created);
    /// assert!(engine.profile(numpool::ProfileId::new_v4()).is_err());
    /// # engine.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn profile(&self, id: ProfileId) -> Result<ProfileRecord, Error> {
        self.inner
            .catalog
            .read()
            .profile(id)
            .cloned()
            .ok_or(Error::UnknownProfile)
    }

    /// Every profile, oldest first.
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, NewProfile, PhoneNumber, SettingsPatch, SettingsUpdate};
    /// # futures::executor::block_on(async {
    /// # let engine = Engine::start(EngineConfig::default())?;
    /// for name in ["a", "b"] {
    ///     engine.create_profile(NewProfile { name: name.into(), ..Default::default() }).await?;
    /// }
    /// let names: Vec<String> = engine.profiles().into_iter().map(|p| p.name).collect();
    /// assert_eq!(names, ["a", "b"]);
    /// # engine.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn profiles(&self) -> Vec<ProfileRecord> {
        self.inner.catalog.read().profiles()
    }

    /// Updates a profile; `number_pool_settings` merges field by field. A
    /// rejected update changes nothing.
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, NewProfile, PhoneNumber, SettingsPatch, SettingsUpdate};
    /// # futures::executor::block_on(async {
    /// # let engine = Engine::start(EngineConfig::default())?;
    /// use numpool::ProfileUpdate;
    /// let p = engine.create_profile(NewProfile::default()).await?.id;
    /// let on = SettingsUpdate::Merge(SettingsPatch { geomatch: Some(true), ..Default::default() });
    /// let updated = engine
    ///     .update_profile(p, ProfileUpdate { number_pool_settings: on, ..Default::default() })
    ///     .await?;
    /// let settings = updated.number_pool_settings.unwrap();
    /// assert!(settings.geomatch && !settings.sticky_sender); // the rest: defaults
    /// # engine.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn update_profile(
        &self,
        id: ProfileId,
        update: ProfileUpdate,
    ) -> Result<ProfileRecord, Error> {
        let _in = self.enter()?;
        self.check_journal()?;
        let _admin = self.inner.admin.lock().await;
        let actor = self.actor_of(id)?;
        let mut record = self.profile(id)?;
        let ProfileUpdate {
            name,
            enabled,
            whitelisted_destinations,
            webhook_url,
            webhook_failover_url,
            number_pool_settings,
        } = update;
        let settings = number_pool_settings.apply(record.number_pool_settings.as_ref())?;
        let now = self.now();
        record.number_pool_settings = settings.clone();
        if let Some(name) = name {
            record.name = name;
        }
        if let Some(enabled) = enabled {
            record.enabled = enabled;
        }
        if let Some(w) = whitelisted_destinations {
            record.whitelisted_destinations = w;
        }
        if let Some(url) = webhook_url {
            record.webhook_url = url;
        }
        if let Some(url) = webhook_failover_url {
            record.webhook_failover_url = url;
        }
        record.updated_at = now;
        let receipt = {
            let mut state = actor.lock();
            if actor.is_retired() {
                return Err(Error::UnknownProfile);
            }
            state.set_settings(settings, now.as_secs_u32());
            self.inner.env.journal(&[Record::ProfileSaved {
                profile: record.clone(),
                at: now.as_secs_u32(),
            }])
        };
        self.inner.catalog.write().put_profile(record.clone());
        settle(receipt).await?;
        Ok(record)
    }

    /// Deletes a profile: its mappings and pool are gone, its numbers become
    /// unassigned. Returns the deleted record.
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, NewProfile, PhoneNumber, SettingsPatch, SettingsUpdate};
    /// # futures::executor::block_on(async {
    /// # let engine = Engine::start(EngineConfig::default())?;
    /// let p = engine.create_profile(NewProfile::default()).await?.id;
    /// let number = PhoneNumber::parse_e164("+13125550001")?;
    /// engine.assign_number(number, Some(p)).await?;
    /// engine.delete_profile(p).await?;
    /// assert_eq!(engine.owner(number), None);
    /// assert!(engine.profile(p).is_err());
    /// # engine.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn delete_profile(&self, id: ProfileId) -> Result<ProfileRecord, Error> {
        let _in = self.enter()?;
        self.check_journal()?;
        let _admin = self.inner.admin.lock().await;
        let record = self.profile(id)?;
        let actor = self
            .inner
            .dispatcher
            .remove(id)
            .ok_or(Error::UnknownProfile)?;
        let (numbers, receipt) = {
            let mut state = actor.lock();
            actor.retire(&mut state);
            let numbers: Vec<PhoneNumber> = state
                .drain_senders()
                .into_iter()
                .map(|s| s.number)
                .collect();
            let receipt = self
                .inner
                .env
                .journal(&[Record::ProfileDeleted { profile: id }]);
            (numbers, receipt)
        };
        actor.stop_mailbox();
        self.inner.env.expiry.forget(id);
        let now = self.now();
        {
            let mut catalog = self.inner.catalog.write();
            catalog.remove_profile(id);
            for n in numbers {
                if let Some(r) = catalog.numbers.get_mut(&n) {
                    r.profile = None;
                    r.updated_at = now;
                }
            }
        }
        settle(receipt).await?;
        Ok(record)
    }

    /// Assigns `number` to `profile` (creating its record if new), moving it
    /// with its health if another profile had it; `None` unassigns it.
    /// Mappings to the number in its old profile are cleared at once.
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, NewProfile, PhoneNumber, SettingsPatch, SettingsUpdate};
    /// # futures::executor::block_on(async {
    /// # let engine = Engine::start(EngineConfig::default())?;
    /// let (a, b) = (
    ///     engine.create_profile(NewProfile::default()).await?.id,
    ///     engine.create_profile(NewProfile::default()).await?.id,
    /// );
    /// let number = PhoneNumber::parse_e164("+13125550001")?;
    /// let record = engine.assign_number(number, Some(a)).await?;
    /// let moved = engine.assign_number(number, Some(b)).await?;
    /// assert_eq!((moved.id, moved.profile), (record.id, Some(b)));
    /// assert_eq!(engine.assign_number(number, None).await?.profile, None);
    /// # engine.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn assign_number(
        &self,
        number: PhoneNumber,
        profile: Option<ProfileId>,
    ) -> Result<NumberRecord, Error> {
        let _in = self.enter()?;
        self.check_journal()?;
        let _admin = self.inner.admin.lock().await;
        let existing = self.number_record(number);
        let target = match profile {
            Some(p) => Some(self.actor_of(p)?),
            None if existing.is_none() => return Err(Error::UnknownNumber),
            None => None,
        };
        let previous = existing.and_then(|r| r.profile);
        if let Some(r) = existing.filter(|_| previous == profile) {
            return Ok(r);
        }
        let now = self.now();
        let record = NumberRecord {
            number,
            id: existing.map_or_else(|| self.inner.catalog.read().next_number_id + 1, |r| r.id),
            profile,
            created_at: existing.map_or(now, |r| r.created_at),
            updated_at: now,
        };
        let source = previous.and_then(|p| self.inner.dispatcher.actor(p));
        let receipt = {
            let mut from = source.as_ref().map(|a| a.lock());
            let mut to = target.as_ref().map(|a| a.lock());
            move_sender(number, from.as_deref_mut(), to.as_deref_mut());
            self.inner.env.journal(&[Record::NumberSaved(record)])
        };
        self.inner.catalog.write().put_number(record);
        settle(receipt).await?;
        Ok(record)
    }

    /// The record of `number`, if the engine knows it.
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, NewProfile, PhoneNumber, SettingsPatch, SettingsUpdate};
    /// # futures::executor::block_on(async {
    /// # let engine = Engine::start(EngineConfig::default())?;
    /// let p = engine.create_profile(NewProfile::default()).await?.id;
    /// let number = PhoneNumber::parse_e164("+13125550001")?;
    /// assert!(engine.number_record(number).is_none());
    /// engine.assign_number(number, Some(p)).await?;
    /// assert_eq!(engine.number_record(number).unwrap().profile, Some(p));
    /// # engine.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn number_record(&self, number: PhoneNumber) -> Option<NumberRecord> {
        self.inner.catalog.read().numbers.get(&number).copied()
    }

    /// The number whose numeric id is `id` (the id the API shows).
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, NewProfile, PhoneNumber, SettingsPatch, SettingsUpdate};
    /// # futures::executor::block_on(async {
    /// # let engine = Engine::start(EngineConfig::default())?;
    /// let p = engine.create_profile(NewProfile::default()).await?.id;
    /// let number = PhoneNumber::parse_e164("+13125550001")?;
    /// let record = engine.assign_number(number, Some(p)).await?;
    /// assert_eq!(engine.number_by_id(record.id).map(|r| r.number), Some(number));
    /// # engine.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn number_by_id(&self, id: u64) -> Option<NumberRecord> {
        self.inner.catalog.read().number_by_id(id).copied()
    }

    /// The profile `number` is assigned to.
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, NewProfile, PhoneNumber, SettingsPatch, SettingsUpdate};
    /// # futures::executor::block_on(async {
    /// # let engine = Engine::start(EngineConfig::default())?;
    /// let p = engine.create_profile(NewProfile::default()).await?.id;
    /// let number = PhoneNumber::parse_e164("+13125550001")?;
    /// engine.assign_number(number, Some(p)).await?;
    /// assert_eq!(engine.owner(number), Some(p));
    /// # engine.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn owner(&self, number: PhoneNumber) -> Option<ProfileId> {
        self.number_record(number).and_then(|r| r.profile)
    }

    /// A number with its kind, health and eligibility now.
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, NewProfile, PhoneNumber, SettingsPatch, SettingsUpdate};
    /// # futures::executor::block_on(async {
    /// # let engine = Engine::start(EngineConfig::default())?;
    /// use numpool::{Eligibility, SenderKind};
    /// let p = engine.create_profile(NewProfile::default()).await?.id;
    /// let number = PhoneNumber::parse_e164("+18005550001")?;
    /// engine.assign_number(number, Some(p)).await?;
    /// let status = engine.number(number).await?;
    /// assert_eq!(status.kind, SenderKind::TollFree);
    /// assert_eq!(status.eligibility, Eligibility::PoolOff); // no settings yet
    /// # engine.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn number(&self, number: PhoneNumber) -> Result<NumberStatus, Error> {
        let record = self.number_record(number).ok_or(Error::UnknownNumber)?;
        let mut all = self.statuses(vec![record]).await?;
        Ok(all.remove(0))
    }

    /// Every number the engine knows, by number, or only those of `profile`.
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, NewProfile, PhoneNumber, SettingsPatch, SettingsUpdate};
    /// # futures::executor::block_on(async {
    /// # let engine = Engine::start(EngineConfig::default())?;
    /// let p = engine.create_profile(NewProfile::default()).await?.id;
    /// for n in ["+13125550002", "+13125550001"] {
    ///     engine.assign_number(PhoneNumber::parse_e164(n)?, Some(p)).await?;
    /// }
    /// let listed: Vec<String> = engine.numbers(Some(p)).await?.iter().map(|s| s.record.number.to_string()).collect();
    /// assert_eq!(listed, ["+13125550001", "+13125550002"]);
    /// # engine.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn numbers(&self, profile: Option<ProfileId>) -> Result<Vec<NumberStatus>, Error> {
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
    async fn statuses(&self, records: Vec<NumberRecord>) -> Result<Vec<NumberStatus>, Error> {
        let _in = self.enter()?;
        let now = self.inner.now_secs();
        let mut by_profile: HashMap<ProfileId, Vec<PhoneNumber>> = HashMap::new();
        for r in &records {
            if let Some(p) = r.profile {
                by_profile.entry(p).or_default().push(r.number);
            }
        }
        let mut infos: HashMap<PhoneNumber, SenderInfo> = HashMap::new();
        for (p, numbers) in by_profile {
            let Some(actor) = self.inner.dispatcher.actor(p) else {
                continue;
            };
            let found = actor
                .call(self.inner.config.mailbox_bound, move |state, env| {
                    numbers
                        .iter()
                        .filter_map(|&n| state.sender(n, now, &env.health))
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
}
