//! Sticky mappings: read one or all, pin a recipient to a sender, break a
//! mapping. Changes are journaled before they are acknowledged.

use super::Engine;
use crate::error::Error;
use crate::ids::ProfileId;
use crate::journal::{settle, Record};
use crate::number::PhoneNumber;
use crate::selection::profile::StickyMapping;

impl Engine {
    /// The live mapping of `to` in `profile`, if any.
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, NewProfile, PhoneNumber, SettingsPatch, SettingsUpdate};
    /// # futures::executor::block_on(async {
    /// # let engine = Engine::start(EngineConfig::default())?;
    /// # let profile = engine.create_profile(NewProfile {
    /// #     number_pool_settings: SettingsUpdate::Merge(SettingsPatch {
    /// #         sticky_sender: Some(true), ..Default::default() }),
    /// #     ..Default::default()
    /// # }).await?.id;
    /// # engine.assign_number(PhoneNumber::parse_e164("+13125550001")?, Some(profile)).await?;
    /// let to = PhoneNumber::parse_e164("+14155550123")?;
    /// assert!(engine.mapping(profile, to).await?.is_none());
    /// let s = engine.send(profile, to).await?;
    /// assert_eq!(engine.mapping(profile, to).await?.map(|m| m.from), Some(s.sender));
    /// # engine.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn mapping(
        &self,
        profile: ProfileId,
        to: PhoneNumber,
    ) -> Result<Option<StickyMapping>, Error> {
        let _in = self.enter()?;
        let now = self.inner.now_secs();
        let actor = self.actor_of(profile)?;
        Ok(actor
            .call(self.inner.config.mailbox_bound, move |p, _| {
                p.mapping(to, now)
            })
            .await?)
    }

    /// Every live mapping of `profile`, ordered by recipient.
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, NewProfile, PhoneNumber, SettingsPatch, SettingsUpdate};
    /// # futures::executor::block_on(async {
    /// # let engine = Engine::start(EngineConfig::default())?;
    /// let p = engine.create_profile(NewProfile {
    ///     number_pool_settings: SettingsUpdate::Merge(SettingsPatch { sticky_sender: Some(true), ..Default::default() }),
    ///     ..Default::default()
    /// }).await?.id;
    /// engine.assign_number(PhoneNumber::parse_e164("+13125550001")?, Some(p)).await?;
    /// for to in ["+14155550124", "+14155550123"] {
    ///     engine.send(p, PhoneNumber::parse_e164(to)?).await?;
    /// }
    /// let to: Vec<String> = engine.mappings(p).await?.iter().map(|m| m.to.to_string()).collect();
    /// assert_eq!(to, ["+14155550123", "+14155550124"]);
    /// # engine.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn mappings(&self, profile: ProfileId) -> Result<Vec<StickyMapping>, Error> {
        let _in = self.enter()?;
        let now = self.inner.now_secs();
        let actor = self.actor_of(profile)?;
        Ok(actor
            .call_long(self.inner.config.mailbox_bound, move |p, _| p.mappings(now))
            .await?)
    }

    /// Pins `to` to sender `from` of `profile`'s pool: the mapping does not
    /// expire until it is broken with [`Engine::unmap`].
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, NewProfile, PhoneNumber, Reason, SettingsPatch, SettingsUpdate};
    /// # futures::executor::block_on(async {
    /// # let engine = Engine::start(EngineConfig::default())?;
    /// # let profile = engine.create_profile(NewProfile {
    /// #     number_pool_settings: SettingsUpdate::Merge(SettingsPatch {
    /// #         sticky_sender: Some(true), ..Default::default() }),
    /// #     ..Default::default()
    /// # }).await?.id;
    /// let (a, b) = (PhoneNumber::parse_e164("+13125550001")?, PhoneNumber::parse_e164("+13125550002")?);
    /// engine.assign_number(a, Some(profile)).await?;
    /// engine.assign_number(b, Some(profile)).await?;
    /// let to = PhoneNumber::parse_e164("+14155550123")?;
    /// engine.pin(profile, to, b).await?;
    /// let s = engine.send(profile, to).await?;
    /// assert_eq!((s.sender, s.reason), (b, Reason::Sticky));
    /// # engine.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn pin(
        &self,
        profile: ProfileId,
        to: PhoneNumber,
        from: PhoneNumber,
    ) -> Result<StickyMapping, Error> {
        let _in = self.enter()?;
        self.check_journal()?;
        let now = self.inner.now_secs();
        let actor = self.actor_of(profile)?;
        let (pinned, receipt) = actor
            .call(self.inner.config.mailbox_bound, move |p, env| {
                let pinned = p.pin(to, from, now);
                let receipt = pinned.as_ref().ok().and_then(|m| {
                    if let Some(due) = p.wakeup_after_mapping(now) {
                        env.expiry.schedule(profile, due);
                    }
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
            })
            .await?;
        settle(receipt).await?;
        Ok(pinned?)
    }

    /// Breaks the mapping of `to`; returns it if it was live.
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, NewProfile, PhoneNumber, SettingsPatch, SettingsUpdate};
    /// # futures::executor::block_on(async {
    /// # let engine = Engine::start(EngineConfig::default())?;
    /// # let profile = engine.create_profile(NewProfile {
    /// #     number_pool_settings: SettingsUpdate::Merge(SettingsPatch {
    /// #         sticky_sender: Some(true), ..Default::default() }),
    /// #     ..Default::default()
    /// # }).await?.id;
    /// # engine.assign_number(PhoneNumber::parse_e164("+13125550001")?, Some(profile)).await?;
    /// let to = PhoneNumber::parse_e164("+14155550123")?;
    /// engine.send(profile, to).await?;
    /// assert!(engine.unmap(profile, to).await?.is_some());
    /// assert!(engine.mapping(profile, to).await?.is_none());
    /// # engine.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn unmap(
        &self,
        profile: ProfileId,
        to: PhoneNumber,
    ) -> Result<Option<StickyMapping>, Error> {
        let _in = self.enter()?;
        self.check_journal()?;
        let now = self.inner.now_secs();
        let actor = self.actor_of(profile)?;
        let (removed, receipt) = actor
            .call(self.inner.config.mailbox_bound, move |p, env| {
                (
                    p.unmap(to, now),
                    env.journal(&[Record::MappingRemoved { profile, to }]),
                )
            })
            .await?;
        settle(receipt).await?;
        Ok(removed)
    }
}
