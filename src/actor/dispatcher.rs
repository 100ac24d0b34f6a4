//! [`Dispatcher`]: profile id -> actor, arbiters, and bounded mailboxes.
//!
//! Actors are spread over a fixed set of arbiters (one thread each, one per
//! core by default), assigned round-robin as profiles are created. Every
//! request takes a [`Ticket`] first: when an actor already has `bound`
//! messages queued the request fails at once with
//! [`DispatchError::Overloaded`] instead of queueing. Control-plane requests
//! may use a small reserve above the bound (they are serialized by the
//! engine, so at most a few are ever in flight), so that a burst of sends
//! cannot make a number move fail halfway.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use actix::{Actor, Addr};
use actix_rt::{Arbiter, ArbiterHandle, System};
use dashmap::DashMap;
use parking_lot::Mutex;

use super::profile::{ActorEnv, Panicked, ProfileActor, Run, SelectBatch, SelectOne, Stop, Ticket};
use crate::number::PhoneNumber;
use crate::profile::Profile;
use crate::registry::ProfileId;
use crate::select::{SelectError, Selection};

/// Extra mailbox places control-plane requests may use beyond the bound.
const CONTROL_RESERVE: usize = 4;

/// Why a request could not be carried out by an actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    #[error("messaging profile not found")]
    UnknownProfile,
    #[error("the profile's mailbox is full")]
    Overloaded,
    #[error("the request failed inside the engine")]
    Panicked,
    #[error("the profile's actor has stopped")]
    Stopped,
    #[error("the journal could not write the change")]
    Journal,
}

/// Waits for `receipt` (the change is journaled) if there is one.
pub async fn settle(receipt: Option<crate::journal::Receipt>) -> Result<(), DispatchError> {
    match receipt {
        Some(r) => r.await.map_err(|_| DispatchError::Journal),
        None => Ok(()),
    }
}

impl From<Panicked> for DispatchError {
    fn from(_: Panicked) -> Self {
        DispatchError::Panicked
    }
}

impl From<actix::MailboxError> for DispatchError {
    fn from(_: actix::MailboxError) -> Self {
        DispatchError::Stopped
    }
}

#[derive(Clone)]
struct Route {
    addr: Addr<ProfileActor>,
    depth: Arc<AtomicUsize>,
}

/// Sizes of the actor system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DispatcherConfig {
    /// Arbiter threads (0: one per available core).
    pub arbiters: usize,
    /// Messages an actor may have queued before requests are refused.
    pub mailbox_bound: usize,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        DispatcherConfig {
            arbiters: 0,
            mailbox_bound: 1024,
        }
    }
}

struct Runtime {
    system: System,
    thread: JoinHandle<()>,
}

/// Routes requests to profile actors.
pub struct Dispatcher {
    routes: DashMap<ProfileId, Route, foldhash::fast::RandomState>,
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: AtomicUsize,
    bound: usize,
    env: Arc<ActorEnv>,
    runtime: Mutex<Option<Runtime>>,
}

impl Dispatcher {
    /// Starts the arbiter threads (under an actix system of their own).
    pub fn start(config: DispatcherConfig, env: ActorEnv) -> std::io::Result<Self> {
        let count = if config.arbiters == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            config.arbiters
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("numpool-system".into())
            .spawn(move || {
                let system = System::new();
                let arbiters: Vec<Arbiter> = (0..count).map(|_| Arbiter::new()).collect();
                let handles = arbiters.iter().map(Arbiter::handle).collect::<Vec<_>>();
                let _ = tx.send((System::current(), handles));
                system.run().ok();
                for arbiter in arbiters {
                    arbiter.stop();
                    arbiter.join().ok();
                }
            })?;
        let (system, arbiters) = rx
            .recv()
            .map_err(|_| std::io::Error::other("the actor system failed to start"))?;
        Ok(Dispatcher {
            routes: DashMap::default(),
            arbiters,
            next_arbiter: AtomicUsize::new(0),
            bound: config.mailbox_bound.max(1),
            env: Arc::new(env),
            runtime: Mutex::new(Some(Runtime { system, thread })),
        })
    }

    /// The environment every actor shares.
    pub fn env(&self) -> &ActorEnv {
        &self.env
    }

    /// Number of arbiter threads.
    pub fn arbiter_count(&self) -> usize {
        self.arbiters.len()
    }

    /// Starts the actor of profile `id`, owning `profile`. Returns once the
    /// actor answers, so the route is never published to a starting actor.
    pub async fn spawn(&self, id: ProfileId, profile: Profile) -> Result<(), DispatchError> {
        let i = self.next_arbiter.fetch_add(1, Ordering::Relaxed) % self.arbiters.len();
        let env = Arc::clone(&self.env);
        let capacity = self.bound + CONTROL_RESERVE + 1;
        let addr = ProfileActor::start_in_arbiter(&self.arbiters[i], move |ctx| {
            ctx.set_mailbox_capacity(capacity);
            ProfileActor::new(id, profile, env)
        });
        let route = Route {
            addr,
            depth: Arc::new(AtomicUsize::new(0)),
        };
        // A first round trip: the mailbox capacity above is set by now.
        let ticket = Ticket::take(&route.depth, usize::MAX).expect("a new mailbox is empty");
        route
            .addr
            .send(Run {
                f: Box::new(|_, _| ()),
                ticket,
            })
            .await??;
        self.routes.insert(id, route);
        Ok(())
    }

    fn route(&self, id: ProfileId) -> Result<Route, DispatchError> {
        self.routes
            .get(&id)
            .map(|r| r.clone())
            .ok_or(DispatchError::UnknownProfile)
    }

    fn ticket(&self, route: &Route, bound: usize) -> Result<Ticket, DispatchError> {
        Ticket::take(&route.depth, bound).ok_or(DispatchError::Overloaded)
    }

    /// One selection on profile `id`.
    pub async fn select(
        &self,
        id: ProfileId,
        recipient: PhoneNumber,
        now: u32,
    ) -> Result<Result<Selection, SelectError>, DispatchError> {
        let route = self.route(id)?;
        let ticket = self.ticket(&route, self.bound)?;
        let msg = SelectOne {
            recipient,
            now,
            ticket,
        };
        let (result, receipt) = route.addr.send(msg).await??;
        settle(receipt).await?;
        Ok(result)
    }

    /// Many selections on profile `id`, in one message.
    pub async fn select_many(
        &self,
        id: ProfileId,
        recipients: Vec<PhoneNumber>,
        now: u32,
    ) -> Result<Vec<Result<Selection, SelectError>>, DispatchError> {
        let route = self.route(id)?;
        let ticket = self.ticket(&route, self.bound)?;
        let msg = SelectBatch {
            recipients,
            now,
            ticket,
        };
        let (results, receipt) = route.addr.send(msg).await??;
        settle(receipt).await?;
        Ok(results)
    }

    /// Runs `f` on the actor of profile `id`, within the mailbox bound.
    pub async fn run<R, F>(&self, id: ProfileId, f: F) -> Result<R, DispatchError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Profile, &ActorEnv) -> R + Send + 'static,
    {
        let route = self.route(id)?;
        Self::run_on(&route, self.ticket(&route, self.bound)?, f).await
    }

    /// Runs a control-plane `f` on the actor of profile `id`; may use the
    /// reserve above the bound.
    pub async fn control<R, F>(&self, id: ProfileId, f: F) -> Result<R, DispatchError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Profile, &ActorEnv) -> R + Send + 'static,
    {
        let route = self.route(id)?;
        Self::run_on(
            &route,
            self.ticket(&route, self.bound + CONTROL_RESERVE)?,
            f,
        )
        .await
    }

    /// Unroutes profile `id` (new requests get `UnknownProfile`), runs `f`
    /// on its actor after the messages already queued, then stops the actor.
    pub async fn retire<R, F>(&self, id: ProfileId, f: F) -> Result<R, DispatchError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Profile, &ActorEnv) -> R + Send + 'static,
    {
        let (_, route) = self
            .routes
            .remove(&id)
            .ok_or(DispatchError::UnknownProfile)?;
        let ticket = Ticket::take(&route.depth, usize::MAX).expect("unbounded");
        let result = Self::run_on(&route, ticket, f).await;
        route.addr.do_send(Stop);
        result
    }

    async fn run_on<R, F>(route: &Route, ticket: Ticket, f: F) -> Result<R, DispatchError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Profile, &ActorEnv) -> R + Send + 'static,
    {
        Ok(route
            .addr
            .send(Run {
                f: Box::new(f),
                ticket,
            })
            .await??)
    }

    /// Messages queued for profile `id` (0 if unknown).
    pub fn depth(&self, id: ProfileId) -> usize {
        self.routes
            .get(&id)
            .map_or(0, |r| r.depth.load(Ordering::Relaxed))
    }

    /// Every routed profile.
    pub fn profile_ids(&self) -> Vec<ProfileId> {
        self.routes.iter().map(|r| *r.key()).collect()
    }

    /// Stops every actor and the arbiters, and waits for their threads.
    pub fn shutdown(&self) {
        self.routes.clear();
        if let Some(runtime) = self.runtime.lock().take() {
            runtime.system.stop();
            runtime.thread.join().ok();
        }
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.shutdown();
    }
}
