//! [`ProfileActor`]: one messaging profile's [`Profile`] behind an actix actor.
//!
//! The actor is a thin shell: it owns the profile, answers two kinds of
//! messages, and ticks its timing wheels. Every request runs under
//! `catch_unwind`: a request that panics is answered with [`Panicked`] and the
//! actor keeps serving with its state as the request left it (core operations
//! finish their bookkeeping before any point that could panic, so no
//! half-made mapping is left behind in practice, but nothing is rolled back).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, ActorContext, AsyncContext, Context, Handler, Message, MessageResult};

use crate::clock::Clock;
use crate::health::HealthConfig;
use crate::journal::{record, Receipt, Record, Writer};
use crate::number::PhoneNumber;
use crate::profile::Profile;
use crate::registry::ProfileId;
use crate::select::{MappingOutcome, SelectError, Selection};

/// A request panicked while the actor handled it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Panicked;

/// What every actor of an engine shares.
pub struct ActorEnv {
    pub health: HealthConfig,
    pub clock: Arc<dyn Clock>,
    /// How often the actor advances its timing wheels.
    pub expire_tick: Duration,
    /// Entries one expiry slice may reach before yielding to other messages.
    pub expire_budget: usize,
    /// Where changes are journaled (`None`: ephemeral).
    pub journal: Option<Arc<Writer>>,
}

impl ActorEnv {
    /// Journals `records`; the receipt resolves once they are written.
    /// `None` when there is nothing to write or no journal.
    pub fn journal(&self, records: &[Record]) -> Option<Receipt> {
        let writer = self.journal.as_ref()?;
        if records.is_empty() {
            return None;
        }
        let mut bytes = Vec::with_capacity(64 * records.len());
        for r in records {
            record::encode(r, &mut bytes);
        }
        Some(writer.append(bytes))
    }
}

/// The journal record a selection needs, if any: a new mapping, or a sticky
/// hit in a later minute than the mapping's previous use (coarse touches).
fn selection_record(
    profile: ProfileId,
    to: PhoneNumber,
    s: &Selection,
    now: u32,
) -> Option<Record> {
    match (s.mapping, s.previous_use) {
        (MappingOutcome::Created, _) => Some(Record::MappingSet {
            profile,
            to,
            from: s.sender,
            created_at: now,
            last_used: now,
            pinned: false,
        }),
        (MappingOutcome::Reused, Some(previous)) if previous / 60 != now / 60 => {
            Some(Record::MappingTouched {
                profile,
                to,
                last_used: now,
            })
        }
        _ => None,
    }
}

/// One queued message's place in its actor's mailbox count. The dispatcher
/// takes a ticket before sending; dropping it (when the actor starts on the
/// message, or when an undelivered message is dropped) frees the place.
pub struct Ticket(Arc<AtomicUsize>);

impl Ticket {
    /// Takes a place if fewer than `bound` messages are queued.
    pub fn take(depth: &Arc<AtomicUsize>, bound: usize) -> Option<Ticket> {
        let mut current = depth.load(Ordering::Relaxed);
        loop {
            if current >= bound {
                return None;
            }
            match depth.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(Ticket(Arc::clone(depth))),
                Err(seen) => current = seen,
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The actor of one messaging profile.
pub struct ProfileActor {
    id: ProfileId,
    profile: Profile,
    env: Arc<ActorEnv>,
    /// A follow-up expiry slice is queued.
    continuing: bool,
}

impl ProfileActor {
    pub fn new(id: ProfileId, profile: Profile, env: Arc<ActorEnv>) -> Self {
        ProfileActor {
            id,
            profile,
            env,
            continuing: false,
        }
    }

    /// One budgeted slice of expiry; queues another if work is left, so
    /// selections interleave with a large batch of expirations.
    fn expire_slice(&mut self, ctx: &mut Context<Self>) {
        let now = self.env.clock.now().as_secs_u32();
        let report = self.profile.expire(now, self.env.expire_budget);
        if !report.done && !self.continuing {
            self.continuing = true;
            ctx.notify(ContinueExpiry);
        }
    }
}

impl Actor for ProfileActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.env.expire_tick, |actor, ctx| actor.expire_slice(ctx));
    }
}

struct ContinueExpiry;

impl Message for ContinueExpiry {
    type Result = ();
}

impl Handler<ContinueExpiry> for ProfileActor {
    type Result = ();

    fn handle(&mut self, _: ContinueExpiry, ctx: &mut Context<Self>) {
        self.continuing = false;
        self.expire_slice(ctx);
    }
}

/// Select a sender for one recipient.
pub struct SelectOne {
    pub recipient: PhoneNumber,
    pub now: u32,
    pub ticket: Ticket,
}

impl Message for SelectOne {
    type Result = Result<(Result<Selection, SelectError>, Option<Receipt>), Panicked>;
}

impl Handler<SelectOne> for ProfileActor {
    type Result = MessageResult<SelectOne>;

    fn handle(&mut self, msg: SelectOne, _: &mut Context<Self>) -> Self::Result {
        drop(msg.ticket);
        let (id, profile, env) = (self.id, &mut self.profile, &*self.env);
        MessageResult(
            catch_unwind(AssertUnwindSafe(|| {
                let result = if env.journal.is_some() {
                    profile.select_tracked(msg.recipient, msg.now, &env.health)
                } else {
                    profile.select(msg.recipient, msg.now, &env.health)
                };
                let receipt = match &result {
                    Ok(s) => selection_record(id, msg.recipient, s, msg.now)
                        .and_then(|r| env.journal(&[r])),
                    Err(_) => None,
                };
                (result, receipt)
            }))
            .map_err(|_| Panicked),
        )
    }
}

/// Select senders for many recipients of this profile, in order, at one instant.
pub struct SelectBatch {
    pub recipients: Vec<PhoneNumber>,
    pub now: u32,
    pub ticket: Ticket,
}

impl Message for SelectBatch {
    type Result = Result<(Vec<Result<Selection, SelectError>>, Option<Receipt>), Panicked>;
}

impl Handler<SelectBatch> for ProfileActor {
    type Result = MessageResult<SelectBatch>;

    fn handle(&mut self, msg: SelectBatch, _: &mut Context<Self>) -> Self::Result {
        drop(msg.ticket);
        let (id, profile, env) = (self.id, &mut self.profile, &*self.env);
        MessageResult(
            catch_unwind(AssertUnwindSafe(|| {
                let mut records = Vec::new();
                let results: Vec<_> = msg
                    .recipients
                    .iter()
                    .map(|&r| {
                        if env.journal.is_none() {
                            return profile.select(r, msg.now, &env.health);
                        }
                        let result = profile.select_tracked(r, msg.now, &env.health);
                        if let Ok(s) = &result {
                            records.extend(selection_record(id, r, s, msg.now));
                        }
                        result
                    })
                    .collect();
                (results, env.journal(&records))
            }))
            .map_err(|_| Panicked),
        )
    }
}

/// A control-plane operation on the profile: runs `f` on the actor.
pub struct Run<R> {
    #[allow(clippy::type_complexity)]
    pub f: Box<dyn FnOnce(&mut Profile, &ActorEnv) -> R + Send>,
    pub ticket: Ticket,
}

impl<R: Send + 'static> Message for Run<R> {
    type Result = Result<R, Panicked>;
}

impl<R: Send + 'static> Handler<Run<R>> for ProfileActor {
    type Result = MessageResult<Run<R>>;

    fn handle(&mut self, msg: Run<R>, _: &mut Context<Self>) -> Self::Result {
        let Run { f, ticket } = msg;
        drop(ticket);
        let (profile, env) = (&mut self.profile, &*self.env);
        MessageResult(catch_unwind(AssertUnwindSafe(|| f(profile, env))).map_err(|_| Panicked))
    }
}

/// Stops the actor (its profile was deleted).
pub struct Stop;

impl Message for Stop {
    type Result = ();
}

impl Handler<Stop> for ProfileActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
