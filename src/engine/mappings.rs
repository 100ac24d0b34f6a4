//! Sticky mappings: read one or all, pin a recipient to a sender, break a
//! mapping. Changes are journaled before they are acknowledged.

use super::Engine;
use crate::error::Error;
use crate::ids::ProfileId;
use crate::journal::{settle, Record};
use crate::number::PhoneNumber;
use crate::selection::profile::StickyMapping;
use crate::selection::sticky::MapPosition;
use crate::selection::unsettled::Reads;

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
        let (found, receipt) = actor
            .call(self.inner.config.mailbox_bound, move |p, env| {
                (
                    p.mapping(to, now),
                    env.read_barrier(p, Reads::recipient(to)),
                )
            })
            .await?;
        settle(receipt).await?;
        Ok(found)
    }

    /// Every live mapping of `profile`, ordered by recipient. Read one page
    /// at a time (see [`Engine::mappings_page`]), so the profile is never
    /// held for the whole listing; for a large profile prefer the pages.
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
        let mut all = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.mappings_page(profile, cursor, 4096, None).await?;
            all.extend(page.mappings);
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
            yield_now().await;
        }
        all.sort_unstable_by_key(|m| m.to);
        Ok(all)
    }

    /// One page of `profile`'s live mappings (of `sender` only, if given),
    /// in storage order (stable while the mappings do not change), starting
    /// at `after` (`None`: the first page). At most `limit` mappings; a page
    /// may hold fewer when many entries it passed were expired, and
    /// [`MappingPage::next`] says where to go on. Costs the page, not the
    /// profile: a listing never holds up sends for long.
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
    /// for i in 0..5u64 {
    ///     engine.send(p, PhoneNumber::from_u64(14_155_550_000 + i).unwrap()).await?;
    /// }
    /// let (mut seen, mut after) = (0, None);
    /// loop {
    ///     let page = engine.mappings_page(p, after, 2, None).await?;
    ///     seen += page.mappings.len();
    ///     match page.next {
    ///         Some(next) => after = Some(next),
    ///         None => break,
    ///     }
    /// }
    /// assert_eq!(seen, 5);
    /// # engine.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn mappings_page(
        &self,
        profile: ProfileId,
        after: Option<MappingCursor>,
        limit: usize,
        sender: Option<PhoneNumber>,
    ) -> Result<MappingPage, Error> {
        let _in = self.enter()?;
        let now = self.inner.now_secs();
        let actor = self.actor_of(profile)?;
        let from = after.map_or_else(MapPosition::default, |c| c.0);
        // Entries looked at per page, live or not: bounds the time the
        // profile is held even when most entries passed have expired.
        let budget = limit.max(1).saturating_mul(8).max(4096);
        let ((mappings, next), receipt) = actor
            .call_long(self.inner.config.mailbox_bound, move |p, env| {
                let page = p.mappings_page(from, limit.max(1), budget, sender, now);
                (page, env.read_barrier_whole(p))
            })
            .await?;
        settle(receipt).await?;
        Ok(MappingPage {
            mappings,
            next: next.map(MappingCursor),
        })
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
                    let record = Record::MappingSet {
                        profile,
                        to,
                        from,
                        created_at: m.created_at,
                        last_used: m.last_used_at,
                        pinned: true,
                        history: false,
                    };
                    env.journal_for(p, &[record], Reads::recipient(to))
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
                let removed = p.unmap(to, now);
                let receipt = env.journal_for(
                    p,
                    &[Record::MappingRemoved { profile, to }],
                    Reads::recipient(to),
                );
                (removed, receipt)
            })
            .await?;
        settle(receipt).await?;
        Ok(removed)
    }
}

/// Where a page of mappings starts: opaque, printable, and parsed back
/// (`"3.1024"`), so an API can hand it to its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappingCursor(MapPosition);

impl std::fmt::Display for MappingCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0.shard, self.0.entry)
    }
}

impl std::str::FromStr for MappingCursor {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let (shard, entry) = s.split_once('.').ok_or(())?;
        let number = |v: &str| {
            if v.is_empty() || (v.len() > 1 && v.starts_with('0')) {
                return Err(());
            }
            v.parse::<u32>().map_err(|_| ())
        };
        Ok(MappingCursor(MapPosition {
            shard: number(shard)?,
            entry: number(entry)?,
        }))
    }
}

/// One page of a profile's mappings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingPage {
    /// The mappings, in storage order.
    pub mappings: Vec<StickyMapping>,
    /// Where the next page starts; `None` after the last.
    pub next: Option<MappingCursor>,
}

/// Lets other tasks of this thread run: a long listing made of many
/// pages (each run on the calling thread when the profile is free) yields
/// between them, so an HTTP worker serves other requests meanwhile.
pub(crate) async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}
