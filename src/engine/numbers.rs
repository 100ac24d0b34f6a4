//! Numbers: assigning, moving and unassigning phone numbers, and reading
//! them with their health and eligibility.
//!
//! A move holds the engine's admin lock and the locks of both profiles
//! while it journals its one record, so a number is never seen half-moved.

use std::collections::HashMap;

use super::Engine;
use crate::clock::Timestamp;
use crate::error::Error;
use crate::ids::ProfileId;
use crate::journal::{settle, Record};
use crate::number::PhoneNumber;
use crate::resources::{NumberFilter, NumberRecord, NumberStatus, RemovalPreview};
use crate::selection::capacity::check_rate;
use crate::selection::health::HealthCounts;
use crate::selection::move_sender;
use crate::selection::profile::SenderInfo;
use crate::selection::rules::Eligibility;

impl Engine {
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
            id: existing.map_or_else(|| self.inner.catalog.read().next_number_id(), |r| r.id),
            profile,
            created_at: existing.map_or(now, |r| r.created_at),
            updated_at: now,
            messages_per_second: existing.and_then(|r| r.messages_per_second),
        };
        let source = previous.and_then(|p| self.inner.dispatcher.actor(p));
        let receipt = {
            let mut from = source.as_ref().map(|a| a.lock());
            let mut to = target.as_ref().map(|a| a.lock());
            move_sender(&record, from.as_deref_mut(), to.as_deref_mut());
            let changed = from.iter_mut().chain(to.iter_mut()).map(|s| &mut **s);
            self.inner
                .env
                .journal_admin(&[Record::NumberSaved(record)], changed)
        };
        // The record is shown once it is durable (in a cluster: committed).
        settle(receipt).await?;
        self.inner.catalog.write().put_number(record);
        Ok(record)
    }

    /// Sets the rate of `number` (messages per second; `None`: its kind's
    /// default, see [`KindRates`](crate::KindRates)). The queue it has
    /// drains at the new rate from its next message on.
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, NewProfile, PhoneNumber, SettingsPatch, SettingsUpdate};
    /// # futures::executor::block_on(async {
    /// # let engine = Engine::start(EngineConfig::default())?;
    /// let p = engine.create_profile(NewProfile::default()).await?.id;
    /// let number = PhoneNumber::parse_e164("+13125550001")?;
    /// engine.assign_number(number, Some(p)).await?;
    /// assert_eq!(engine.number(number).await?.capacity.unwrap().messages_per_second, 1.0);
    /// engine.set_rate(number, Some(4.0)).await?;
    /// assert_eq!(engine.number(number).await?.capacity.unwrap().messages_per_second, 4.0);
    /// assert!(engine.set_rate(number, Some(0.0)).await.is_err());
    /// # engine.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn set_rate(
        &self,
        number: PhoneNumber,
        rate: Option<f64>,
    ) -> Result<NumberRecord, Error> {
        check_rate(rate)?;
        let _in = self.enter()?;
        self.check_journal()?;
        let _admin = self.inner.admin.lock().await;
        let existing = self.number_record(number).ok_or(Error::UnknownNumber)?;
        let record = NumberRecord {
            messages_per_second: rate,
            updated_at: self.now(),
            ..existing
        };
        let owner = existing
            .profile
            .and_then(|p| self.inner.dispatcher.actor(p));
        let receipt = {
            let mut state = owner.as_ref().map(|a| a.lock());
            if let (Some(state), Some(actor)) = (state.as_deref_mut(), &owner) {
                // What is queued goes at the new rate from now on.
                let now_ns = self.now().as_millis().saturating_mul(1_000_000);
                state.set_rate(number, rate, Some(now_ns));
                if state.list_queues() {
                    self.inner.env.queues.note(actor.id);
                }
            }
            let changed = state.iter_mut().map(|s| &mut **s);
            self.inner
                .env
                .journal_admin(&[Record::NumberSaved(record)], changed)
        };
        settle(receipt).await?;
        self.inner.catalog.write().put_number(record);
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
        self.inner.catalog.read().number(number).copied()
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

    /// What removing `number` from its pool would do now, without doing
    /// it: the live mappings that would be cleared (pinned ones among
    /// them) and the opt-outs received through it, which stay with the
    /// profile. Counts are kept as mappings come and go, so this costs no
    /// scan of the profile's mappings. A number in no pool clears nothing.
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, NewProfile, PhoneNumber, SettingsPatch, SettingsUpdate};
    /// # futures::executor::block_on(async {
    /// # let engine = Engine::start(EngineConfig::default())?;
    /// let p = engine.create_profile(NewProfile {
    ///     number_pool_settings: SettingsUpdate::Merge(SettingsPatch { sticky_sender: Some(true), ..Default::default() }),
    ///     ..Default::default()
    /// }).await?.id;
    /// let number = PhoneNumber::parse_e164("+13125550001")?;
    /// engine.assign_number(number, Some(p)).await?;
    /// for to in ["+13125559001", "+13125559002"] {
    ///     engine.send(p, PhoneNumber::parse_e164(to)?).await?;
    /// }
    /// let preview = engine.removal_preview(number).await?;
    /// assert_eq!(preview.mappings_cleared, 2);
    /// assert_eq!(preview.pinned_cleared, 0);
    /// # engine.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn removal_preview(&self, number: PhoneNumber) -> Result<RemovalPreview, Error> {
        Ok(self.number(number).await?.removal_preview())
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
        let filter = NumberFilter {
            profile,
            ..Default::default()
        };
        Ok(self.numbers_page(filter, 0, usize::MAX).await?.0)
    }

    /// The numbers passing `filter`, in its order: `limit` of them from
    /// `offset` with their health and eligibility, and how many pass in
    /// all. Health is read only for the page's numbers.
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, NewProfile, NumberFilter, PhoneNumber, SenderKind};
    /// # futures::executor::block_on(async {
    /// # let engine = Engine::start(EngineConfig::default())?;
    /// let p = engine.create_profile(NewProfile::default()).await?.id;
    /// for n in ["+13125550001", "+18005550002", "+13125550003"] {
    ///     engine.assign_number(PhoneNumber::parse_e164(n)?, Some(p)).await?;
    /// }
    /// let long_codes = NumberFilter { profile: Some(p), kind: Some(SenderKind::LongCode), ..Default::default() };
    /// let (page, total) = engine.numbers_page(long_codes, 1, 10).await?;
    /// assert_eq!(total, 2);
    /// assert_eq!(page[0].record.number.to_string(), "+13125550003");
    /// # engine.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn numbers_page(
        &self,
        filter: NumberFilter,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<NumberStatus>, usize), Error> {
        if let Some(p) = filter.profile {
            self.profile(p)?;
        }
        let (records, total) = self
            .inner
            .catalog
            .read()
            .numbers_page(&filter, offset, limit);
        Ok((self.statuses(records).await?, total))
    }

    /// Health and eligibility for `records`: one request per profile involved.
    async fn statuses(&self, records: Vec<NumberRecord>) -> Result<Vec<NumberStatus>, Error> {
        let _in = self.enter()?;
        let now = self.inner.now().as_millis();
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
            let (found, receipt) = actor
                .call(self.inner.config.mailbox_bound, move |state, env| {
                    state.reap(Timestamp::from_millis(now).as_secs_u32());
                    let found = numbers
                        .iter()
                        .filter_map(|&n| state.sender(n, now, &env.health))
                        .collect::<Vec<_>>();
                    (found, env.read_barrier_whole(state))
                })
                .await?;
            settle(receipt).await?;
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
                    capacity: Some(i.capacity),
                    sticky_mappings: i.mappings,
                    pinned_mappings: i.pinned,
                    opt_outs_via: i.opt_outs,
                },
                None => NumberStatus {
                    record,
                    kind: record.number.kind(),
                    health: HealthCounts::default(),
                    unhealthy: false,
                    eligibility: Eligibility::Unassigned,
                    capacity: None,
                    sticky_mappings: 0,
                    pinned_mappings: 0,
                    opt_outs_via: 0,
                },
            })
            .collect())
    }
}
