//! Profiles: creating, listing, changing and deleting messaging profiles.
//!
//! Every change holds the engine's admin lock, then the profile's lock
//! while it journals its record, so the journal is in the order the state
//! changed.

use std::sync::Arc;

use super::actor::ProfileActor;
use super::Engine;
use crate::error::Error;
use crate::ids::ProfileId;
use crate::journal::{settle, Record};
use crate::number::PhoneNumber;
use crate::resources::{NewProfile, ProfileRecord, ProfileUpdate};
use crate::selection::capacity::Limits;
use crate::selection::compliance::Destinations;
use crate::selection::ProfileState;

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
        // Every value is checked here, before anything changes.
        let settings = new.number_pool_settings.apply(None)?;
        Limits::new(&new.capacity)?;
        Destinations::parse(&new.whitelisted_destinations)?;
        let whitelisted_destinations = Destinations::canonical(&new.whitelisted_destinations);
        let id = new.id.unwrap_or_else(ProfileId::new_v4);
        if self.inner.dispatcher.actor(id).is_some() {
            return Err(Error::DuplicateProfile);
        }
        let now = self.now();
        let record = ProfileRecord {
            id,
            name: new.name,
            enabled: new.enabled,
            whitelisted_destinations,
            webhook_url: new.webhook_url,
            webhook_failover_url: new.webhook_failover_url,
            number_pool_settings: settings.clone(),
            capacity: new.capacity,
            created_at: now,
            updated_at: now,
        };
        let state = ProfileState::from_record(&record, self.inner.config.shape());
        let actor = Arc::new(ProfileActor::new(
            id,
            state,
            Arc::clone(&self.inner.env),
            Arc::downgrade(&self.inner.runtime),
        ));
        let receipt = {
            let mut state = actor.lock();
            let saved = Record::ProfileSaved {
                profile: Box::new(record.clone()),
                at: now.as_secs_u32(),
            };
            self.inner.env.journal_admin(&[saved], [&mut *state])
        };
        self.inner.dispatcher.insert(actor);
        // The record is shown once it is durable (in a cluster: committed).
        settle(receipt).await?;
        self.inner.catalog.write().put_profile(record.clone());
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

    /// The profiles passing `keep`, oldest first: `limit` of them from
    /// `offset`, with how many pass in all. Without a filter a page costs
    /// the page; a filter looks at every profile.
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, NewProfile};
    /// # futures::executor::block_on(async {
    /// # let engine = Engine::start(EngineConfig::default())?;
    /// for name in ["eu-alerts", "us-alerts", "us-otp"] {
    ///     engine.create_profile(NewProfile { name: name.into(), ..Default::default() }).await?;
    /// }
    /// let (page, total) = engine.profiles_page(1, 10, |p| p.name.starts_with("us-"));
    /// assert_eq!(total, 2);
    /// assert_eq!(page[0].name, "us-otp");
    /// # engine.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn profiles_page(
        &self,
        offset: usize,
        limit: usize,
        keep: impl Fn(&ProfileRecord) -> bool,
    ) -> (Vec<ProfileRecord>, usize) {
        self.inner.catalog.read().profiles_page(offset, limit, keep)
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
            capacity,
        } = update;
        let settings = number_pool_settings.apply(record.number_pool_settings.as_ref())?;
        let capacity = capacity.apply(&record.capacity);
        Limits::new(&capacity)?;
        record.capacity = capacity;
        let now = self.now();
        record.number_pool_settings = settings.clone();
        if let Some(name) = name {
            record.name = name;
        }
        if let Some(enabled) = enabled {
            record.enabled = enabled;
        }
        if let Some(w) = whitelisted_destinations {
            record.whitelisted_destinations = Destinations::canonical(&w);
        }
        if let Some(url) = webhook_url {
            record.webhook_url = url;
        }
        if let Some(url) = webhook_failover_url {
            record.webhook_failover_url = url;
        }
        record.updated_at = now;
        Destinations::parse(&record.whitelisted_destinations)?;
        let receipt = {
            let mut state = actor.lock();
            if actor.is_retired() {
                return Err(Error::UnknownProfile);
            }
            let rezoned = state.apply_record(&record, now.as_millis());
            let mut records = vec![Record::ProfileSaved {
                profile: Box::new(record.clone()),
                at: now.as_secs_u32(),
            }];
            if rezoned {
                // The day's counts, as the new zone's day now holds them.
                records.extend(crate::journal::snapshot::daily_records(
                    id,
                    state.daily_counts(),
                ));
            }
            self.inner.env.journal_admin(&records, [&mut *state])
        };
        settle(receipt).await?;
        self.inner.catalog.write().put_profile(record.clone());
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
        let actor = self.actor_of(id)?;
        let numbers = {
            let mut state = actor.lock();
            let numbers: Vec<PhoneNumber> = state.drain_senders();
            let deleted = Record::ProfileDeleted { profile: id };
            let receipt = self.inner.env.journal_admin(&[deleted], [&mut *state]);
            // The profile is held until its deletion is durable (in a
            // cluster: committed), so that no request sees it deleted
            // before that (they queue meanwhile, and then find it gone). A
            // refused deletion leaves replies about it waiting for the
            // journal, which fails them until the state is reloaded.
            crate::journal::settle_holding(receipt)?;
            actor.retire(&mut state);
            numbers
        };
        self.inner.dispatcher.remove(id);
        actor.stop_mailbox();
        self.inner.env.expiry.forget(id);
        let now = self.now();
        let mut catalog = self.inner.catalog.write();
        catalog.remove_profile(id, now);
        debug_assert!(numbers
            .iter()
            .all(|n| catalog.number(*n).is_some_and(|r| r.profile.is_none())));
        Ok(record)
    }
}
