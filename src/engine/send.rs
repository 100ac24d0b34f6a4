//! Sending: choosing the sender of one message or of a batch.
//!
//! Which call for which load:
//!
//! | call | for | cost when the profile is free |
//! |---|---|---|
//! | [`Engine::send_now`] | a thread that sends one message at a time | the selection itself: no thread hop, no allocation |
//! | [`Engine::send`] | async code (a gateway, a web handler) | the same; it only awaits when the profile is busy or a journal write must finish |
//! | [`Engine::send_batch_now`], [`Engine::send_batch`] | many messages at once | one lock per profile in the batch |
//!
//! All of them run the selection on the calling thread when the profile is
//! free; a busy profile queues the request on its mailbox (bounded: a full
//! one fails at once with [`Error::Overloaded`]). With a journal, a send
//! that made a new mapping returns once the mapping is written.

use std::sync::Arc;

use super::actor::{ActorError, Env, ProfileActor};
use super::answers::Answers;
use super::groups::Groups;
use super::Engine;
use crate::error::Error;
use crate::ids::ProfileId;
use crate::journal::{settle_helping, settle_now, Receipt, Record};
use crate::number::PhoneNumber;
use crate::selection::rules::{Context, MappingOutcome, Refusal, Selection};
use crate::selection::select_at::SelectAt;
use crate::selection::sticky::Hint;
use crate::selection::unsettled::Reads;
use crate::selection::ProfileState;

/// One outbound message as the engine routes it: its recipient, how many
/// segments it has (each takes a slot of its sender's rate), and the
/// sender the caller names, if any. A bare [`PhoneNumber`] converts to a
/// one-part message chosen by the pool.
///
/// ```
/// # use numpool::{Outbound, PhoneNumber};
/// let to = PhoneNumber::parse_e164("+14155550123")?;
/// let sender = PhoneNumber::parse_e164("+13125550001")?;
/// let message = Outbound::to(to).parts(3).from_sender(sender);
/// assert_eq!((message.parts, message.from), (3, Some(sender)));
/// assert_eq!(Outbound::from(to), Outbound::to(to));
/// # Ok::<(), numpool::NumberError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outbound {
    /// The recipient.
    pub to: PhoneNumber,
    /// Segments (at least 1).
    pub parts: u32,
    /// The sender the caller chose; `None`: the pool chooses.
    pub from: Option<PhoneNumber>,
}

impl Outbound {
    /// A one-part message to `to`, its sender chosen by the pool.
    pub fn to(to: PhoneNumber) -> Outbound {
        Outbound {
            to,
            parts: 1,
            from: None,
        }
    }

    /// The same message with `parts` segments (0 counts as 1).
    pub fn parts(self, parts: u32) -> Outbound {
        Outbound {
            parts: parts.max(1),
            ..self
        }
    }

    /// The same message from `sender`, which must be in the profile's pool.
    pub fn from_sender(self, sender: PhoneNumber) -> Outbound {
        Outbound {
            from: Some(sender),
            ..self
        }
    }
}

impl From<PhoneNumber> for Outbound {
    fn from(to: PhoneNumber) -> Outbound {
        Outbound::to(to)
    }
}

/// What one selection on an actor gives back.
type Selected = (Result<Selection, Refusal>, Option<Receipt>);

/// Adds the journal record a selection needs, if any, to `records`: a new
/// mapping, or a sticky hit that moved its mapping's last use into a later
/// minute (coarse touches, [`Selection::touch_due`]).
#[inline(always)]
fn selection_record(
    profile: ProfileId,
    to: PhoneNumber,
    s: &Selection,
    at: SelectAt,
    records: &mut Vec<Record>,
) {
    if s.mapping == MappingOutcome::Created {
        records.push(Record::MappingSet {
            profile,
            to,
            from: s.sender,
            created_at: at.secs,
            last_used: at.secs,
            pinned: false,
            history: false,
        });
    } else if s.touch_due {
        records.push(Record::MappingTouched {
            profile,
            to,
            last_used: at.secs,
        });
    }
}

/// The journal record of the daily counts a send reserved, when it began
/// a new block of them.
#[inline]
fn daily_record(state: &ProfileState, profile: ProfileId, s: &Selection) -> Option<Record> {
    if !s.starts_block {
        return None;
    }
    Some(daily_count(state, profile, s.sender))
}

/// The record of the daily counts reserved so far (rare: once a block),
/// kept out of line so that the check above inlines alone.
#[cold]
#[inline(never)]
fn daily_count(state: &ProfileState, profile: ProfileId, sender: PhoneNumber) -> Record {
    let (day, profile_messages, sender) = state.daily_reservation(sender);
    Record::DailyCount {
        profile,
        day,
        profile_messages,
        sender,
    }
}

/// Selects for `message` on `state` with `ctx`, the state's context at
/// the call's time (`hint`: where a look-ahead, a batch's or a single
/// send's before the lock, found its sticky entry, to be checked); the
/// records it needs go to
/// `records`. Always inlined: the compiler's own choice changed with
/// the crate's features, and in a batch's loop the call cost about 80
/// instructions a message (callgrind).
#[inline(always)]
fn select_into(
    state: &mut ProfileState,
    env: &Env,
    profile: ProfileId,
    message: Outbound,
    hint: Hint,
    ctx: &Context<'_>,
    records: &mut Vec<Record>,
) -> Result<Selection, Refusal> {
    let at = ctx.at;
    let tracking = env.journal.is_some();
    let result = match message.from {
        None => state.select(message.to, hint, message.parts, ctx, tracking),
        Some(from) => state.send_from(from, message.to, message.parts, ctx),
    };
    if let Ok(s) = &result {
        if s.mapping == MappingOutcome::Created {
            if let Some(due) = state.wakeup_after_mapping(at.secs) {
                env.expiry.schedule(profile, due);
            }
        }
        if tracking {
            selection_record(profile, message.to, s, at, records);
            if let Some(r) = daily_record(state, profile, s) {
                records.push(r);
            }
            // The sender's queue moved: where it ends is written next tick.
            if state.list_queues() {
                env.queues.note(profile);
            }
        }
    }
    result
}

/// The request for one selection, to `actor`'s profile. Its sticky lookup
/// starts here, before the lock is taken ([`ProfileActor::look_ahead`]):
/// its two cache misses then lengthen neither this caller's hold of the
/// lock nor the wait of another caller queued behind it.
#[inline]
fn select_one(
    actor: &ProfileActor,
    profile: ProfileId,
    message: Outbound,
    now_ms: u64,
) -> impl FnOnce(&mut ProfileState, &Env) -> Selected + Send + 'static {
    let hint = match message.from {
        None => actor.look_ahead(message.to),
        Some(_) => Hint::NONE,
    };
    move |state, env| {
        let mut records = Vec::new();
        let at = SelectAt::new(now_ms);
        let ctx = state.context_at(at, &env.health);
        let result = select_into(state, env, profile, message, hint, &ctx, &mut records);
        let reads = Reads {
            recipients: [message.to],
            daily: state.has_daily_caps(),
        };
        let receipt = env.journal_for(state, &records, reads);
        if records.capacity() == 0 {
            // Nothing to free (most sends write nothing); dropping would
            // still call the element loop of `Record`'s drop (16
            // instructions a send).
            std::mem::forget(records);
        }
        (result, receipt)
    }
}

/// The request for the selections of one profile in a batch, in order,
/// through the profile's mailbox (the profile was busy): the same pass a
/// group served on the caller's thread makes, look-ahead included
/// ([`select_group`]).
fn select_many(
    profile: ProfileId,
    recipients: Vec<PhoneNumber>,
    now_ms: u64,
) -> impl FnOnce(&mut ProfileState, &Env) -> (Answers, Option<Receipt>) + Send + 'static {
    move |state, env| {
        let positions: Vec<usize> = (0..recipients.len()).collect();
        let mut results = Answers::new(recipients.len());
        let mut records = Vec::new();
        let receipt = select_group(
            state,
            env,
            profile,
            now_ms,
            &positions,
            &recipients[..],
            &mut results,
            &mut records,
        );
        (results, receipt)
    }
}

/// What [`Engine::send`] still waits for after its calling task's part,
/// with the call counted in flight until it is done.
enum Waiting<'a> {
    /// The profile was busy: the request is in its mailbox.
    Queued(
        super::Entered<'a>,
        tokio::sync::oneshot::Receiver<Result<Selected, ActorError>>,
    ),
    /// The selection is made; its journal records are being written.
    Written(super::Entered<'a>, Result<Selection, Refusal>, Receipt),
}

impl Waiting<'_> {
    async fn finish(self, engine: &Engine) -> Result<Selection, Error> {
        let (_entered, result, receipt) = match self {
            Waiting::Queued(entered, answer) => {
                let (result, receipt) = answer.await.unwrap_or(Err(ActorError::Stopped))?;
                (entered, result, receipt)
            }
            Waiting::Written(entered, result, receipt) => (entered, result, Some(receipt)),
        };
        settle_helping(receipt, engine.inner.env.journal.as_deref()).await?;
        Ok(result?)
    }
}

/// A request that ran on the calling thread, or was queued.
enum Attempt<R> {
    Done(Result<R, ActorError>),
    Queued(Result<tokio::sync::oneshot::Receiver<Result<R, ActorError>>, ActorError>),
}

/// Runs `f` on `actor` on the calling task if it can (see
/// [`ProfileActor::try_call`]), else queues it.
#[inline]
fn attempt<R, F>(actor: &Arc<ProfileActor>, bound: usize, f: F) -> Attempt<R>
where
    R: Send + 'static,
    F: FnOnce(&mut ProfileState, &Env) -> R + Send + 'static,
{
    match actor.try_call(bound, f) {
        Ok(done) => Attempt::Done(done),
        Err(f) => Attempt::Queued(actor.enqueue(bound, f)),
    }
}

impl Engine {
    /// Chooses the sender of one message of `profile`: from its pool, or
    /// the sender the message names ([`Outbound`]; a bare [`PhoneNumber`]
    /// is a one-part message chosen by the pool). The message takes its
    /// place in the sender's queue: [`Selection::wait`] says how long it
    /// waits there.
    ///
    /// Runs on the calling task when the profile is free (it awaits only a
    /// busy profile or, with a journal, the write of a new mapping).
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, NewProfile, PhoneNumber, Reason, SettingsPatch, SettingsUpdate};
    /// # futures::executor::block_on(async {
    /// # let engine = Engine::start(EngineConfig::default())?;
    /// # let profile = engine.create_profile(NewProfile {
    /// #     number_pool_settings: SettingsUpdate::Merge(SettingsPatch::default()),
    /// #     ..Default::default()
    /// # }).await?.id;
    /// engine.assign_number(PhoneNumber::parse_e164("+13125550001")?, Some(profile)).await?;
    /// let selection = engine.send(profile, PhoneNumber::parse_e164("+14155550123")?).await?;
    /// assert_eq!(selection.sender.to_string(), "+13125550001");
    /// assert_eq!(selection.reason, Reason::Weighted);
    /// # engine.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn send(
        &self,
        profile: ProfileId,
        message: impl Into<Outbound>,
    ) -> Result<Selection, Error> {
        // The usual answer returns before anything is held across the
        // `.await`, so it is not moved through the future's saved state.
        let waiting = match self.send_on_caller(profile, message.into()) {
            Ok(answer) => return answer,
            Err(waiting) => waiting,
        };
        waiting.finish(self).await
    }

    /// [`Engine::send`] as far as it goes on the calling task: the answer,
    /// or what is left to wait for. Kept apart from the `async` body so
    /// that the usual answer goes straight back, not through the future's
    /// saved state (which a value held across an `.await` lives in).
    #[inline(always)]
    fn send_on_caller(
        &self,
        profile: ProfileId,
        message: Outbound,
    ) -> Result<Result<Selection, Error>, Waiting<'_>> {
        let entered = match self.enter() {
            Ok(entered) => entered,
            Err(e) => return Ok(Err(e)),
        };
        if let Err(e) = self.check_journal() {
            return Ok(Err(e));
        }
        let now = self.inner.now().as_millis();
        let bound = self.inner.config.mailbox_bound;
        let attempt = self.inner.dispatcher.with(profile, |actor| {
            attempt(actor, bound, select_one(actor, profile, message, now))
        });
        let (result, receipt) = match attempt {
            None => return Ok(Err(Error::UnknownProfile)),
            Some(Attempt::Done(Ok(selected))) => selected,
            Some(Attempt::Done(Err(e))) => return Ok(Err(e.into())),
            Some(Attempt::Queued(Ok(answer))) => return Err(Waiting::Queued(entered, answer)),
            Some(Attempt::Queued(Err(e))) => return Ok(Err(e.into())),
        };
        // Most sends write nothing: skip even building the wait.
        match receipt {
            None => Ok(result.map_err(Error::from)),
            Some(receipt) => Err(Waiting::Written(entered, result, receipt)),
        }
    }

    /// [`Engine::send`] for a caller outside an async runtime. It never
    /// parks when the profile is free (and, with a journal, when the
    /// selection wrote nothing); a busy profile parks the thread until its
    /// turn. Do not call it from an async task: use [`Engine::send`].
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, NewProfile, PhoneNumber, Reason, SettingsPatch, SettingsUpdate};
    /// # let engine = Engine::start(EngineConfig::default())?;
    /// # let profile = futures::executor::block_on(engine.create_profile(NewProfile {
    /// #     number_pool_settings: SettingsUpdate::Merge(SettingsPatch {
    /// #         sticky_sender: Some(true), ..Default::default() }),
    /// #     ..Default::default()
    /// # }))?.id;
    /// # futures::executor::block_on(engine.assign_number(PhoneNumber::parse_e164("+13125550001")?, Some(profile)))?;
    /// let to = PhoneNumber::parse_e164("+14155550123")?;
    /// let first = engine.send_now(profile, to)?;
    /// let again = engine.send_now(profile, to)?;
    /// assert_eq!((again.sender, again.reason), (first.sender, Reason::Sticky));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_now(
        &self,
        profile: ProfileId,
        message: impl Into<Outbound>,
    ) -> Result<Selection, Error> {
        let message = message.into();
        let _in = self.enter()?;
        self.check_journal()?;
        let now = self.inner.now().as_millis();
        let bound = self.inner.config.mailbox_bound;
        let (result, receipt) = self
            .inner
            .dispatcher
            .with(profile, |actor| {
                actor.call_now(bound, select_one(actor, profile, message, now))
            })
            .ok_or(Error::UnknownProfile)??;
        settle_now(receipt, self.inner.env.journal.as_deref())?;
        Ok(result?)
    }

    /// Chooses senders for a batch of `(profile, recipient)` pairs. Each
    /// profile's messages are chosen in order under one lock; results come
    /// back in the order of `items`. Profiles that are free are served on
    /// the calling task first; busy ones are waited for (through their
    /// mailboxes) after.
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, NewProfile, PhoneNumber, SettingsPatch, SettingsUpdate};
    /// # futures::executor::block_on(async {
    /// # let engine = Engine::start(EngineConfig::default())?;
    /// # let profile = engine.create_profile(NewProfile {
    /// #     number_pool_settings: SettingsUpdate::Merge(SettingsPatch::default()),
    /// #     ..Default::default()
    /// # }).await?.id;
    /// # engine.assign_number(PhoneNumber::parse_e164("+13125550001")?, Some(profile)).await?;
    /// let to = |s| PhoneNumber::parse_e164(s).unwrap();
    /// let results = engine
    ///     .send_batch(&[(profile, to("+14155550123")), (profile, to("+14155550124"))])
    ///     .await;
    /// assert!(results.iter().all(Result::is_ok));
    /// # engine.shutdown().await;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn send_batch(
        &self,
        items: &[(ProfileId, PhoneNumber)],
    ) -> Vec<Result<Selection, Error>> {
        let groups = Groups::of(items);
        let mut batch = match Batch::start(self, items, &groups) {
            Ok(b) => b,
            Err(e) => return items.iter().map(|_| Err(e.clone())).collect(),
        };
        let bound = self.inner.config.mailbox_bound;
        let now = batch.now_ms;
        let mut queued = Vec::new();
        for (actor, g) in std::mem::take(&mut batch.busy) {
            let positions = groups.positions(g);
            let recipients = positions.iter().map(|&i| items[i].1).collect();
            match attempt(&actor, bound, select_many(actor.id, recipients, now)) {
                Attempt::Done(answer) => batch.finish(positions, g, answer),
                Attempt::Queued(q) => queued.push((g, q)),
            }
        }
        for (g, q) in queued {
            let answer = match q {
                Ok(rx) => rx.await.unwrap_or(Err(ActorError::Stopped)),
                Err(e) => Err(e),
            };
            batch.finish(groups.positions(g), g, answer);
        }
        for (g, receipt) in std::mem::take(&mut batch.receipts) {
            if let Err(e) = settle_helping(Some(receipt), self.inner.env.journal.as_deref()).await {
                batch.fail(groups.positions(g), e);
            }
        }
        batch.results.into_vec()
    }

    /// [`Engine::send_batch`] for a caller outside an async runtime: busy
    /// profiles are waited for on this thread (parked), after the free ones.
    ///
    /// ```
    /// # use numpool::{Engine, EngineConfig, NewProfile, PhoneNumber, SettingsPatch, SettingsUpdate};
    /// # let engine = Engine::start(EngineConfig::default())?;
    /// # let profile = futures::executor::block_on(engine.create_profile(NewProfile {
    /// #     number_pool_settings: SettingsUpdate::Merge(SettingsPatch::default()),
    /// #     ..Default::default()
    /// # }))?.id;
    /// # futures::executor::block_on(engine.assign_number(PhoneNumber::parse_e164("+13125550001")?, Some(profile)))?;
    /// let items: Vec<_> = (0..1000u64)
    ///     .map(|i| (profile, PhoneNumber::from_u64(14_155_550_000 + i).unwrap()))
    ///     .collect();
    /// assert!(engine.send_batch_now(&items).iter().all(Result::is_ok));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_batch_now(
        &self,
        items: &[(ProfileId, PhoneNumber)],
    ) -> Vec<Result<Selection, Error>> {
        if self.inner.env.mailbox_only {
            return futures::executor::block_on(self.send_batch(items));
        }
        let groups = Groups::of(items);
        let mut batch = match Batch::start(self, items, &groups) {
            Ok(b) => b,
            Err(e) => return items.iter().map(|_| Err(e.clone())).collect(),
        };
        let bound = self.inner.config.mailbox_bound;
        for (actor, g) in std::mem::take(&mut batch.busy) {
            let positions = groups.positions(g);
            let answer = actor.run_waiting(bound, |state, env| {
                batch.select_group(state, env, actor.id, positions, items)
            });
            batch.settle_group(positions, g, answer);
        }
        for (g, receipt) in std::mem::take(&mut batch.receipts) {
            if let Err(e) = settle_now(Some(receipt), self.inner.env.journal.as_deref()) {
                batch.fail(groups.positions(g), e);
            }
        }
        batch.results.into_vec()
    }
}

/// A batch in progress: answers by position, the groups (by their index in
/// [`Groups`]) of busy profiles still to serve, and journal receipts still
/// to wait for.
struct Batch<'a> {
    _entered: super::Entered<'a>,
    now_ms: u64,
    results: Answers,
    busy: Vec<(Arc<ProfileActor>, usize)>,
    receipts: Vec<(usize, Receipt)>,
    /// The journal's records of the group being served, kept from group
    /// to group so that each does not allocate its own.
    records: Vec<Record>,
}

/// Groups shorter than this look ahead for their senders' state too (see
/// [`select_group`]).
const SHORT_GROUP: usize = 64;

impl<'a> Batch<'a> {
    /// Serves every group of `items` (as `groups` has them) whose profile
    /// is free right now; the others are left in `busy`.
    fn start(
        engine: &'a Engine,
        items: &[(ProfileId, PhoneNumber)],
        groups: &Groups,
    ) -> Result<Batch<'a>, Error> {
        let entered = engine.enter()?;
        engine.check_journal()?;
        let mut batch = Batch {
            _entered: entered,
            now_ms: engine.inner.now().as_millis(),
            results: Answers::new(items.len()),
            busy: Vec::new(),
            receipts: Vec::new(),
            records: Vec::new(),
        };
        let dispatcher = &engine.inner.dispatcher;
        let mut actors = (0..groups.len())
            .map(|g| dispatcher.actor(groups.profile(g)))
            .enumerate()
            .peekable();
        while let Some((g, actor)) = actors.next() {
            let (profile, positions) = (groups.profile(g), groups.positions(g));
            let Some(actor) = actor else {
                batch.fail(positions, Error::UnknownProfile);
                continue;
            };
            // The next group's profile is read from memory while this
            // one's is served (with many profiles, groups are short).
            if let Some((_, Some(next))) = actors.peek() {
                next.prefetch();
            }
            match actor
                .run_if_free(|state, env| batch.select_group(state, env, profile, positions, items))
            {
                Ok(answer) => batch.settle_group(positions, g, answer),
                Err(_) => batch.busy.push((actor, g)),
            }
        }
        if !batch.busy.is_empty() && !batch.receipts.is_empty() {
            if let Some(writer) = &engine.inner.env.journal {
                writer.begin_writing();
            }
        }
        Ok(batch)
    }

    /// Selects for every item of one profile's group, in order, writing the
    /// results in place; returns the group's journal receipt.
    fn select_group(
        &mut self,
        state: &mut ProfileState,
        env: &Env,
        profile: ProfileId,
        positions: &[usize],
        items: &[(ProfileId, PhoneNumber)],
    ) -> Option<Receipt> {
        select_group(
            state,
            env,
            profile,
            self.now_ms,
            positions,
            items,
            &mut self.results,
            &mut self.records,
        )
    }

    /// Records group `g` (at `positions`) served inline: its receipt, or
    /// its failure.
    fn settle_group(
        &mut self,
        positions: &[usize],
        g: usize,
        answer: Result<Option<Receipt>, ActorError>,
    ) {
        match answer {
            Ok(Some(receipt)) => self.receipts.push((g, receipt)),
            Ok(None) => {}
            Err(e) => self.fail(positions, e.into()),
        }
    }

    fn fail(&mut self, positions: &[usize], e: Error) {
        for &i in positions {
            self.results.set(i, Err(e.clone()));
        }
    }

    /// Records group `g` (at `positions`) answered through the mailbox.
    fn finish(&mut self, positions: &[usize], g: usize, answer: GroupAnswer) {
        match answer {
            Ok((answers, receipt)) => {
                for (&i, answer) in positions.iter().zip(answers.into_vec()) {
                    self.results.set(i, answer);
                }
                if let Some(r) = receipt {
                    self.receipts.push((g, r));
                }
            }
            Err(e) => self.fail(positions, e.into()),
        }
    }
}

/// The recipients of a group's messages, by position: a batch's items, or
/// a mailbox request's own list.
trait Recipients {
    fn at(&self, i: usize) -> PhoneNumber;
}

impl Recipients for [(ProfileId, PhoneNumber)] {
    #[inline(always)]
    fn at(&self, i: usize) -> PhoneNumber {
        self[i].1
    }
}

impl Recipients for [PhoneNumber] {
    #[inline(always)]
    fn at(&self, i: usize) -> PhoneNumber {
        self[i]
    }
}

/// Selects for the messages of one profile's group at `positions` (of
/// `recipients`), in order, at `now_ms`, writing each answer in place in
/// `results`; the journal's records go through `records` (kept by the
/// caller so that each group does not allocate its own). Returns the
/// group's journal receipt. Always inlined: in `Batch::select_group`,
/// the hot path, it is the loop (one message there costs 7 instructions
/// more than when this was its body, 1%; no loss in time).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn select_group<R: Recipients + ?Sized>(
    state: &mut ProfileState,
    env: &Env,
    profile: ProfileId,
    now_ms: u64,
    positions: &[usize],
    recipients: &R,
    results: &mut Answers,
    records: &mut Vec<Record>,
) -> Option<Receipt> {
    // The look-ahead runs in blocks of this many messages: stage 1
    // (the index words) two blocks ahead of the lookups, stage 2 (the
    // entries the words name) one block ahead. With each stage a fixed
    // distance ahead, one prefetch a message, `perf` put about a
    // fifth of a batched send's time on the prefetch instructions
    // themselves: a prefetch whose page is not in the translation
    // cache holds up what follows until its page walk ends. A block's
    // prefetches, one after another, walk at the same time. With 1M
    // recipients, a batched send took about an eighth less time.
    const BLOCK: usize = 8;
    // A group this short is one of many profiles in the batch, whose
    // senders' state is not in cache: a third stage fetches it. In a
    // long group it is, and the stage only costs (a sixth of the time
    // of ten profiles' batches).
    let short = positions.len() < SHORT_GROUP;
    // Room for a new mapping in eight sends without growing (a
    // journal's records; nothing is allocated without one).
    let capacity = if env.journal.is_some() {
        positions.len() / 8
    } else {
        0
    };
    records.clear();
    records.reserve(capacity);
    // Where stage 2 found each entry, for the lookup (and stage 3) of
    // the same recipient: by index `k` in the group, modulo two
    // blocks. Stage 2 writes block b + 1 into the half that block b,
    // being looked up, does not use.
    const RING: usize = 2 * BLOCK;
    // Stage 3 runs this many messages ahead: within the next block,
    // whose hints are written by then.
    const SENDER_AHEAD: usize = 2;
    const { assert!(SENDER_AHEAD <= BLOCK) };
    let mut hints = [Hint::NONE; RING];
    let at = SelectAt::new(now_ms);
    let ctx = state.context_at(at, &env.health);
    let n = positions.len();
    let block = |b: usize| (b * BLOCK).min(n)..((b + 1) * BLOCK).min(n);
    fetch_index_words(state, results, recipients, &positions[block(0)]);
    fetch_index_words(state, results, recipients, &positions[block(1)]);
    fetch_entries(state, recipients, positions, block(0), &mut hints);
    for b in 0..n.div_ceil(BLOCK) {
        fetch_index_words(state, results, recipients, &positions[block(b + 2)]);
        fetch_entries(state, recipients, positions, block(b + 1), &mut hints);
        for k in block(b) {
            if short {
                if let Some(&j) = positions.get(k + SENDER_AHEAD) {
                    state.prefetch_sender(recipients.at(j), hints[(k + SENDER_AHEAD) % RING]);
                }
            }
            let i = positions[k];
            let hint = hints[k % RING];
            let answer = select_into(
                state,
                env,
                profile,
                recipients.at(i).into(),
                hint,
                &ctx,
                records,
            );
            results.set_first(i, answer);
        }
    }
    let reads = Reads {
        recipients: positions.iter().map(|&i| recipients.at(i)),
        daily: state.has_daily_caps(),
    };
    env.journal_for(state, records, reads)
}

/// Stage 1 of a batch's look-ahead: fetches the sticky index word of each
/// of `positions` (and the line its answer goes to). Called once a block,
/// out of line: inlined, the compiler laid out the selection loop around
/// it at about 9 instructions a message more (callgrind).
#[inline(never)]
fn fetch_index_words<R: Recipients + ?Sized>(
    state: &ProfileState,
    results: &Answers,
    recipients: &R,
    positions: &[usize],
) {
    for &j in positions {
        state.prefetch_index(recipients.at(j));
        results.prefetch(j);
    }
}

/// Stage 2 of a batch's look-ahead: fetches the sticky entry the index
/// word of each of `positions[range]` names, noting where in `hints`, at
/// the message's index `k` in the group modulo `N` (the ring's length;
/// hence the whole group and a range, where stage 1 takes a slice).
#[inline(always)]
fn fetch_entries<R: Recipients + ?Sized, const N: usize>(
    state: &ProfileState,
    recipients: &R,
    positions: &[usize],
    range: std::ops::Range<usize>,
    hints: &mut [Hint; N],
) {
    for k in range {
        hints[k % N] = state.prefetch_entry(recipients.at(positions[k]));
    }
}

type GroupAnswer = Result<(Answers, Option<Receipt>), ActorError>;

#[cfg(test)]
#[path = "send_tests.rs"]
mod tests;
