//! Opt-outs: recipients who texted STOP (or the like) to a number of a
//! profile, or were opted out through the API, get nothing more from that
//! profile until they text START or are opted back in.

use super::Engine;
use crate::error::Error;
use crate::ids::ProfileId;
use crate::journal::{settle, Record};
use crate::number::PhoneNumber;
use crate::records::OptOutRecord;
use crate::selection::compliance::{InboundKeyword, OptOut};
use crate::selection::unsettled::Reads;
use crate::Timestamp;

/// What an inbound message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    /// The number texted belongs to no profile: nothing changed.
    UnknownNumber,
    /// The text is not a keyword: nothing changed.
    NoKeyword,
    /// The sender of the text opted out of `profile`.
    OptedOut(ProfileId),
    /// The sender of the text opted back in to `profile`.
    OptedIn(ProfileId),
}

fn record(to: PhoneNumber, o: OptOut) -> OptOutRecord {
    OptOutRecord {
        to,
        keyword: o.keyword,
        via: o.via,
        created_at: Timestamp::from_secs(u64::from(o.at)),
    }
}

impl Engine {
    /// Handles a message a recipient sent to a pool number: `from` is the
    /// recipient, `to` the number texted, `text` what they wrote. A keyword
    /// (the whole text, trimmed, any case) opts them out of the profile
    /// owning `to` (`STOP`, `STOPALL`, `UNSUBSCRIBE`, `CANCEL`, `END`,
    /// `QUIT`) or back in (`START`, `UNSTOP`); anything else changes nothing.
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, Error, Inbound, NewProfile, PhoneNumber, SettingsPatch, SettingsUpdate};
    /// # futures::executor::block_on(async {
    /// # let engine = Engine::start(EngineConfig::default())?;
    /// # let profile = engine.create_profile(NewProfile {
    /// #     number_pool_settings: SettingsUpdate::Merge(SettingsPatch::default()),
    /// #     ..Default::default()
    /// # }).await?.id;
    /// let pool_number = PhoneNumber::parse_e164("+13125550001")?;
    /// engine.assign_number(pool_number, Some(profile)).await?;
    /// let recipient = PhoneNumber::parse_e164("+14155550123")?;
    /// assert_eq!(engine.receive(recipient, pool_number, " stop ").await?, Inbound::OptedOut(profile));
    /// assert_eq!(engine.send(profile, recipient).await, Err(Error::OptedOut));
    /// assert_eq!(engine.receive(recipient, pool_number, "Start").await?, Inbound::OptedIn(profile));
    /// assert!(engine.send(profile, recipient).await.is_ok());
    /// # engine.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn receive(
        &self,
        from: PhoneNumber,
        to: PhoneNumber,
        text: &str,
    ) -> Result<Inbound, Error> {
        let Some(profile) = self.owner(to) else {
            return Ok(Inbound::UnknownNumber);
        };
        match InboundKeyword::parse(text) {
            None => Ok(Inbound::NoKeyword),
            Some(InboundKeyword::OptOut(keyword)) => {
                let opt_out = OptOut {
                    keyword: Some(keyword),
                    via: Some(to),
                    at: self.inner.now_secs(),
                };
                self.set_opt_out(profile, from, opt_out).await?;
                Ok(Inbound::OptedOut(profile))
            }
            Some(InboundKeyword::OptIn) => {
                self.opt_in(profile, from).await?;
                Ok(Inbound::OptedIn(profile))
            }
        }
    }

    /// Opts `to` out of `profile` (as if they had texted STOP; the record
    /// has no keyword and no number). Returns the opt-out.
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, NewProfile, PhoneNumber};
    /// # futures::executor::block_on(async {
    /// # let engine = Engine::start(EngineConfig::default())?;
    /// let profile = engine.create_profile(NewProfile::default()).await?.id;
    /// let to = PhoneNumber::parse_e164("+14155550123")?;
    /// let record = engine.opt_out(profile, to).await?;
    /// assert_eq!((record.to, record.keyword, record.via), (to, None, None));
    /// assert_eq!(engine.opt_out_of(profile, to).await?, Some(record));
    /// # engine.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn opt_out(
        &self,
        profile: ProfileId,
        to: PhoneNumber,
    ) -> Result<OptOutRecord, Error> {
        let opt_out = OptOut {
            keyword: None,
            via: None,
            at: self.inner.now_secs(),
        };
        self.set_opt_out(profile, to, opt_out).await?;
        Ok(record(to, opt_out))
    }

    async fn set_opt_out(
        &self,
        profile: ProfileId,
        to: PhoneNumber,
        opt_out: OptOut,
    ) -> Result<(), Error> {
        let _in = self.enter()?;
        self.check_journal()?;
        let actor = self.actor_of(profile)?;
        let receipt = actor
            .call(self.inner.config.mailbox_bound, move |p, env| {
                p.opt_out(to, opt_out);
                env.journal_for(
                    p,
                    &[Record::OptOut {
                        profile,
                        to,
                        opt_out,
                    }],
                    Reads::recipient(to),
                )
            })
            .await?;
        settle(receipt).await
    }

    /// Opts `to` back in to `profile`; returns the opt-out it had, if any.
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, NewProfile, PhoneNumber};
    /// # futures::executor::block_on(async {
    /// # let engine = Engine::start(EngineConfig::default())?;
    /// let profile = engine.create_profile(NewProfile::default()).await?.id;
    /// let to = PhoneNumber::parse_e164("+14155550123")?;
    /// assert_eq!(engine.opt_in(profile, to).await?, None);
    /// engine.opt_out(profile, to).await?;
    /// assert!(engine.opt_in(profile, to).await?.is_some());
    /// assert_eq!(engine.opt_out_of(profile, to).await?, None);
    /// # engine.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn opt_in(
        &self,
        profile: ProfileId,
        to: PhoneNumber,
    ) -> Result<Option<OptOutRecord>, Error> {
        let _in = self.enter()?;
        self.check_journal()?;
        let actor = self.actor_of(profile)?;
        let (removed, receipt) = actor
            .call(self.inner.config.mailbox_bound, move |p, env| {
                let removed = p.opt_in(to);
                let receipt = removed
                    .is_some()
                    .then(|| {
                        env.journal_for(p, &[Record::OptIn { profile, to }], Reads::recipient(to))
                    })
                    .flatten();
                (removed, receipt)
            })
            .await?;
        settle(receipt).await?;
        Ok(removed.map(|o| record(to, o)))
    }

    /// The opt-out of `to` from `profile`, if it opted out.
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, NewProfile, PhoneNumber};
    /// # futures::executor::block_on(async {
    /// # let engine = Engine::start(EngineConfig::default())?;
    /// let profile = engine.create_profile(NewProfile::default()).await?.id;
    /// let to = PhoneNumber::parse_e164("+14155550123")?;
    /// assert_eq!(engine.opt_out_of(profile, to).await?, None);
    /// engine.opt_out(profile, to).await?;
    /// assert_eq!(engine.opt_out_of(profile, to).await?.map(|r| r.to), Some(to));
    /// # engine.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn opt_out_of(
        &self,
        profile: ProfileId,
        to: PhoneNumber,
    ) -> Result<Option<OptOutRecord>, Error> {
        let _in = self.enter()?;
        let actor = self.actor_of(profile)?;
        let (found, receipt) = actor
            .call(self.inner.config.mailbox_bound, move |p, env| {
                (
                    p.opt_outs().get(to),
                    env.read_barrier(p, Reads::recipient(to)),
                )
            })
            .await?;
        settle(receipt).await?;
        Ok(found.map(|o| record(to, o)))
    }

    /// `limit` opt-outs of `profile` from `offset`, by recipient, and how
    /// many it has in all.
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, NewProfile, PhoneNumber};
    /// # futures::executor::block_on(async {
    /// # let engine = Engine::start(EngineConfig::default())?;
    /// let profile = engine.create_profile(NewProfile::default()).await?.id;
    /// for n in ["+14155550102", "+14155550101"] {
    ///     engine.opt_out(profile, PhoneNumber::parse_e164(n)?).await?;
    /// }
    /// let (page, total) = engine.opt_outs_page(profile, 0, 10).await?;
    /// assert_eq!((page[0].to.to_string(), total), ("+14155550101".to_string(), 2));
    /// # engine.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn opt_outs_page(
        &self,
        profile: ProfileId,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<OptOutRecord>, usize), Error> {
        let _in = self.enter()?;
        let actor = self.actor_of(profile)?;
        let (page, total, receipt) = actor
            .call(self.inner.config.mailbox_bound, move |p, env| {
                let all = p.opt_outs();
                let (page, total) = (all.page(offset, limit), all.len());
                (page, total, env.read_barrier_whole(p))
            })
            .await?;
        settle(receipt).await?;
        Ok((
            page.into_iter().map(|(to, o)| record(to, o)).collect(),
            total,
        ))
    }

    /// How many recipients opted out of `profile`.
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, NewProfile, PhoneNumber};
    /// # futures::executor::block_on(async {
    /// # let engine = Engine::start(EngineConfig::default())?;
    /// let profile = engine.create_profile(NewProfile::default()).await?.id;
    /// engine.opt_out(profile, PhoneNumber::parse_e164("+14155550123")?).await?;
    /// assert_eq!(engine.opt_out_count(profile).await?, 1);
    /// # engine.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn opt_out_count(&self, profile: ProfileId) -> Result<usize, Error> {
        let _in = self.enter()?;
        let actor = self.actor_of(profile)?;
        let (count, receipt) = actor
            .call(self.inner.config.mailbox_bound, |p, env| {
                (p.opt_outs().len(), env.read_barrier_whole(p))
            })
            .await?;
        settle(receipt).await?;
        Ok(count)
    }
}
