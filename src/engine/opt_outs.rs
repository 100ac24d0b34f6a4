//! Opt-outs: recipients who texted STOP (or the like) to a number of a
//! profile, or were opted out through the API, get nothing more from that
//! profile until they text START or are opted back in.

use super::Engine;
use crate::error::Error;
use crate::ids::ProfileId;
use crate::journal::{settle, Record};
use crate::number::PhoneNumber;
use crate::resources::OptOutRecord;
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

    /// One page of `profile`'s opt-outs, in storage order (stable while the
    /// opt-outs do not change), starting at `after` (`None`: the first
    /// page). At most `limit`; a page may hold fewer when the slots it
    /// passed were empty, and [`OptOutPage::next`] says where to go on.
    /// Costs the page, not the profile: a listing never holds up sends for
    /// long.
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, NewProfile, PhoneNumber};
    /// # futures::executor::block_on(async {
    /// # let engine = Engine::start(EngineConfig::default())?;
    /// let profile = engine.create_profile(NewProfile::default()).await?.id;
    /// for n in ["+14155550102", "+14155550101", "+14155550103"] {
    ///     engine.opt_out(profile, PhoneNumber::parse_e164(n)?).await?;
    /// }
    /// let (mut seen, mut after) = (0, None);
    /// loop {
    ///     let page = engine.opt_outs_page(profile, after, 2).await?;
    ///     seen += page.opt_outs.len();
    ///     match page.next {
    ///         Some(next) => after = Some(next),
    ///         None => break,
    ///     }
    /// }
    /// assert_eq!(seen, 3);
    /// # engine.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn opt_outs_page(
        &self,
        profile: ProfileId,
        after: Option<OptOutCursor>,
        limit: usize,
    ) -> Result<OptOutPage, Error> {
        let _in = self.enter()?;
        let actor = self.actor_of(profile)?;
        let from = after.map_or(0, |c| c.0);
        // Slots looked at per page, full or not: bounds the time the
        // profile is held.
        let budget = limit.max(1).saturating_mul(8).max(4096);
        let ((page, next), receipt) = actor
            .call_long(self.inner.config.mailbox_bound, move |p, env| {
                let page = p.opt_outs().page_from(from, limit.max(1), budget);
                (page, env.read_barrier_whole(p))
            })
            .await?;
        settle(receipt).await?;
        Ok(OptOutPage {
            opt_outs: page.into_iter().map(|(to, o)| record(to, o)).collect(),
            next: next.map(OptOutCursor),
        })
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

/// Where a page of opt-outs starts: opaque, printable, and parsed back, so
/// an API can hand it to its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptOutCursor(usize);

impl std::fmt::Display for OptOutCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::str::FromStr for OptOutCursor {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        if s.is_empty()
            || (s.len() > 1 && s.starts_with('0'))
            || !s.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(());
        }
        s.parse().map(OptOutCursor).map_err(|_| ())
    }
}

/// One page of a profile's opt-outs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptOutPage {
    /// The opt-outs, in storage order.
    pub opt_outs: Vec<OptOutRecord>,
    /// Where the next page starts; `None` after the last.
    pub next: Option<OptOutCursor>,
}
