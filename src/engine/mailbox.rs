//! The actix side of the engine: an actor system of its own with a few
//! arbiter threads, which hosts
//!
//! - each profile's mailbox actor, created the first time a request for the
//!   profile has to queue (see [`super::actor`]), and
//! - the housekeeper (see [`super::housekeeping`]): expiry when it is due,
//!   and periodic snapshots.
//!
//! An idle profile has no mailbox actor and no timer: it costs nothing here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Weak;
use std::thread::JoinHandle;

use actix::{Actor, ActorContext, Addr, Context, Handler, Message};
use actix_rt::{Arbiter, ArbiterHandle, System};
use parking_lot::Mutex;

use super::actor::ProfileActor;
use crate::error::StartError;

/// A request for a profile's state, queued on its mailbox actor.
pub(crate) type Job = Box<dyn FnOnce(&ProfileActor) + Send>;

struct Run(Job);

impl Message for Run {
    type Result = ();
}

struct Stop;

impl Message for Stop {
    type Result = ();
}

/// Runs the queued requests of one profile, in order.
struct MailboxActor {
    profile: Weak<ProfileActor>,
}

impl Actor for MailboxActor {
    type Context = Context<Self>;
}

impl Handler<Run> for MailboxActor {
    type Result = ();

    fn handle(&mut self, Run(job): Run, _: &mut Context<Self>) {
        if let Some(profile) = self.profile.upgrade() {
            job(&profile);
        }
    }
}

impl Handler<Stop> for MailboxActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// The address of a profile's mailbox actor.
pub(crate) struct MailboxAddr(Addr<MailboxActor>);

impl MailboxAddr {
    /// Queues `job`. The engine bounds the queue itself, so the actix
    /// mailbox never refuses or parks the sender.
    pub(crate) fn send(&self, job: Job) {
        self.0.do_send(Run(job));
    }

    /// Stops the actor after the requests already queued.
    pub(crate) fn stop(&self) {
        self.0.do_send(Stop);
    }
}

/// The actix system's thread.
struct SystemThread {
    system: System,
    thread: JoinHandle<()>,
}

/// The actor system: its thread, its arbiters.
pub(crate) struct Runtime {
    arbiters: Vec<ArbiterHandle>,
    next: AtomicUsize,
    system: Mutex<Option<SystemThread>>,
}

impl Runtime {
    /// Starts `arbiters` arbiter threads (0: one per core).
    pub(crate) fn start(arbiters: usize) -> Result<Runtime, StartError> {
        let count = if arbiters == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            arbiters
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
            })
            .map_err(|e| StartError::Runtime(e.to_string()))?;
        let (system, arbiters) = rx
            .recv()
            .map_err(|_| StartError::Runtime("the actor system did not start".into()))?;
        Ok(Runtime {
            arbiters,
            next: AtomicUsize::new(0),
            system: Mutex::new(Some(SystemThread { system, thread })),
        })
    }

    /// The next arbiter, round-robin.
    pub(crate) fn arbiter(&self) -> &ArbiterHandle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.arbiters.len();
        &self.arbiters[i]
    }

    /// Starts the mailbox actor of `profile`.
    pub(crate) fn start_mailbox(&self, profile: Weak<ProfileActor>) -> MailboxAddr {
        MailboxAddr(MailboxActor::start_in_arbiter(self.arbiter(), move |_| {
            MailboxActor { profile }
        }))
    }

    /// Stops every actor and arbiter and waits for their threads. Requests
    /// still queued are dropped (their callers get `Stopped`).
    pub(crate) fn stop(&self) {
        if let Some(s) = self.system.lock().take() {
            s.system.stop();
            // From one of this system's own threads (the last engine handle
            // dropped by a task on an arbiter), joining would wait on itself.
            let inside = System::try_current().is_some_and(|c| c.id() == s.system.id());
            if !inside {
                s.thread.join().ok();
            }
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop();
    }
}
