//! [`ProfileActor`]: the one owner of a messaging profile's state.
//!
//! A profile's [`ProfileState`] is only ever touched by whoever holds the
//! actor's lock, one request at a time. How a request gets there:
//!
//! - **Caller runs** (the fast path): when nothing is queued for the
//!   profile and its lock is free (or frees within a few microseconds), the
//!   calling thread runs the request itself. No thread hop, no allocation.
//! - **Mailbox** (the slow path): otherwise the request is boxed and queued
//!   on the profile's actix mailbox actor (created on first need), which
//!   runs it on an engine arbiter thread when the lock frees. The mailbox is
//!   bounded: a request that would exceed the bound fails at once with
//!   `Overloaded`.
//!
//! A busy profile and an async caller: when the holder runs a request (a
//! selection: well under a microsecond) the caller waits on the lock like
//! any mutex user; when the holder does long work (the engine's own:
//! expiry, snapshots, administration, listings) the caller's request goes
//! to the mailbox instead, so no async thread is held up for long.
//!
//! Ordering: a caller only takes the fast path when nothing is queued, and
//! the mailbox actor takes the lock *before* it releases the request's
//! place in the queue, so a request can never overtake one queued before it.
//! Each request runs under `catch_unwind`: a panic fails that request only,
//! and the state stays as the request left it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};
use tokio::sync::oneshot;

use super::mailbox::{Job, MailboxAddr, Runtime};
use crate::clock::Clock;
use crate::ids::ProfileId;
use crate::journal::{Receipt, Record, Scope, Touches, Writer};
use crate::number::PhoneNumber;
use crate::selection::health::HealthConfig;
use crate::selection::sticky::{Hint, PeekSlot};
use crate::selection::unsettled::Reads;
use crate::selection::ProfileState;

/// How long a caller spins for a busy profile before queueing instead:
/// long enough to outlast a selection (well under a microsecond), short
/// enough that waiting on a long request (an expiry slice, a snapshot
/// part) goes to the mailbox and parks rather than burns a core.
const SPIN_FOR: Duration = Duration::from_micros(4);

/// What every actor of an engine shares.
pub(crate) struct Env {
    pub health: HealthConfig,
    pub clock: Arc<dyn Clock>,
    /// Where changes are journaled (`None`: in memory only).
    pub journal: Option<Arc<Writer>>,
    /// Told when a profile's timing wheels get work, so expiry runs then.
    pub expiry: super::housekeeping::ExpirySchedule,
    /// Told when a profile's sender queues move, so where they end is
    /// written within a tick.
    pub queues: super::housekeeping::QueueEnds,
    /// [`Dispatch::Mailbox`](super::Dispatch::Mailbox): never run inline.
    pub mailbox_only: bool,
}

impl Env {
    /// Journals `records` (the caller holds the lock of every profile they
    /// concern, so the log is in the order the state changed); the receipt
    /// resolves once they are written. `None` when there is nothing to
    /// write or no journal.
    pub(crate) fn journal(&self, records: &[Record]) -> Option<Receipt> {
        self.journal_scoped(records, Scope::Change)
    }

    /// Journals the records a request on `state` produced and notes them on
    /// it; with none, a reply that read (`reads`) state still on its way to
    /// the journal waits for it (a barrier). A receipt no reply needs to
    /// wait for comes back marked [`Receipt::informing`]; the settling
    /// functions (`crate::journal::settle` and the rest) then do not wait.
    pub(crate) fn journal_for(
        &self,
        state: &mut ProfileState,
        records: &[Record],
        reads: Reads<impl IntoIterator<Item = PhoneNumber>>,
    ) -> Option<Receipt> {
        let writer = self.journal.as_ref()?;
        if records.is_empty() {
            let wait = state.unsettled().must_wait(reads, writer.written());
            return wait.then(|| writer.barrier());
        }
        // Under a cap, a new mapping and a reservation of daily counts are
        // what later replies wait for; without one, a reservation only
        // informs, and its write goes on without holding the reply (in a
        // cluster, a commit) unless the reply read something unwritten.
        let capped = state.has_daily_caps();
        let informs = !capped
            && records
                .iter()
                .all(|r| matches!(r, Record::DailyCount { .. }));
        let read_unsettled = informs && state.unsettled().must_wait(reads, writer.written());
        // The receipt of these records comes after every earlier append.
        let receipt = self.journal(records);
        let append = writer.appended();
        let unsettled = state.unsettled();
        unsettled.forget_written(writer.written());
        for r in records {
            match r.touches() {
                Touches::Recipient(to) => {
                    unsettled.recipient(to, append);
                    // Under a cap, a new mapping also reserves daily counts.
                    if capped && matches!(r, Record::MappingSet { .. }) {
                        unsettled.daily(append);
                    }
                }
                Touches::Daily => unsettled.daily(append),
                Touches::Whole => unsettled.whole(append),
            }
        }
        // A receipt only informing goes back to the sender all the same:
        // dropped here, under the lock, it would wake the writer thread.
        receipt.map(|r| {
            if informs && !read_unsettled {
                r.informing()
            } else {
                r
            }
        })
    }

    /// Journals administrative `records` (a profile's settings, its
    /// senders), noting them on every profile they change (the caller holds
    /// their locks), so that a reply that reads those profiles waits for
    /// them as for its own.
    pub(crate) fn journal_admin<'a>(
        &self,
        records: &[Record],
        changed: impl IntoIterator<Item = &'a mut ProfileState>,
    ) -> Option<Receipt> {
        let receipt = self.journal(records)?;
        let append = self.journal.as_ref()?.appended();
        for state in changed {
            state.unsettled().whole(append);
        }
        Some(receipt)
    }

    /// What a reply that read `reads` of `state` (and changed nothing) must
    /// wait for: the write of whatever of it is still on its way to the
    /// journal (in a cluster: to etcd). No reply, a read's included, shows
    /// a change that could still be refused. `None`: nothing to wait for.
    pub(crate) fn read_barrier(
        &self,
        state: &mut ProfileState,
        reads: Reads<impl IntoIterator<Item = PhoneNumber>>,
    ) -> Option<Receipt> {
        self.journal_for(state, &[], reads)
    }

    /// [`Env::read_barrier`] for a reply that read the profile as a whole
    /// (a page of a listing, its counters, its senders' state).
    pub(crate) fn read_barrier_whole(&self, state: &mut ProfileState) -> Option<Receipt> {
        let writer = self.journal.as_ref()?;
        let wait = state.unsettled().any_unwritten(writer.written());
        wait.then(|| writer.barrier())
    }

    /// [`Env::journal`] for records that stay in the local log (snapshot
    /// markers; in a cluster, what a standby applies from its leader).
    pub(crate) fn journal_local(&self, records: &[Record]) -> Option<Receipt> {
        self.journal_scoped(records, Scope::Local)
    }

    fn journal_scoped(&self, records: &[Record], scope: Scope) -> Option<Receipt> {
        let writer = self.journal.as_ref()?;
        if records.is_empty() {
            return None;
        }
        let mut bytes = writer.buffer(64 * records.len());
        crate::journal::record::encode_all(records, &mut bytes);
        Some(writer.append_scoped(bytes, scope))
    }
}

/// Why a request could not run on its actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ActorError {
    /// The profile was deleted.
    Retired,
    /// The mailbox is at its bound.
    Overloaded,
    /// The request panicked.
    Panicked,
    /// The runtime is stopping.
    Stopped,
}

impl From<ActorError> for crate::Error {
    fn from(e: ActorError) -> Self {
        match e {
            ActorError::Retired => crate::Error::UnknownProfile,
            ActorError::Overloaded => crate::Error::Overloaded,
            ActorError::Panicked => crate::Error::Internal,
            ActorError::Stopped => crate::Error::ShuttingDown,
        }
    }
}

/// A request queued in the mailbox holds a place, freed when the actor
/// starts on it (or when the request is dropped undelivered).
pub(crate) struct Place<'a>(&'a ProfileActor);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Place<'_> {
    /// Keeps the place taken after this guard is gone (a queued job frees it).
    fn keep(self) {
        std::mem::forget(self);
    }
}

/// The place of a request queued on the mailbox, owned by the job.
struct QueuedPlace(Arc<ProfileActor>);

impl Drop for QueuedPlace {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The owner of one profile's state.
pub(crate) struct ProfileActor {
    pub id: ProfileId,
    state: Mutex<ProfileState>,
    /// Where the state's sticky map is, for sends to start their lookup
    /// before they take the lock (`ProfileActor::look_ahead`).
    peek: PeekSlot,
    pub env: Arc<Env>,
    /// Requests queued in the mailbox and not started.
    queued: AtomicUsize,
    /// Set under the lock when the profile is deleted.
    retired: AtomicBool,
    /// Created on the first request that has to queue.
    mailbox: OnceLock<MailboxAddr>,
    /// Set while the holder does long work (see the module docs).
    long_held: AtomicBool,
    /// Weak: an actor can outlive its engine in a thread's route cache,
    /// and must not keep the engine's threads alive (or stop them from a
    /// thread-local destructor).
    runtime: Weak<Runtime>,
}

impl ProfileActor {
    pub(crate) fn new(
        id: ProfileId,
        state: ProfileState,
        env: Arc<Env>,
        runtime: Weak<Runtime>,
    ) -> Self {
        ProfileActor {
            id,
            peek: PeekSlot::new(state.peek_table()),
            state: Mutex::new(state),
            env,
            queued: AtomicUsize::new(0),
            retired: AtomicBool::new(false),
            mailbox: OnceLock::new(),
            long_held: AtomicBool::new(false),
            runtime,
        }
    }

    /// Hints the CPU to fetch the actor, its lock and the inline part of
    /// its state (a batch does this for the group it serves next). It
    /// reads nothing: no lock is needed.
    #[inline]
    pub(crate) fn prefetch(&self) {
        crate::selection::prefetch_bytes((self as *const Self).cast(), std::mem::size_of::<Self>());
    }

    /// Starts the sticky lookup of a send to `recipient` without the lock:
    /// fetches the entry it will most likely read, and returns where that
    /// is, for the selection to check first (see `sticky::peek`). Called
    /// before taking the lock, so that a caller waiting for it waits for
    /// memory at the same time.
    #[inline]
    pub(crate) fn look_ahead(&self, recipient: PhoneNumber) -> Hint {
        self.peek.look_ahead(recipient)
    }

    /// Replaces the state wholesale (a store healed from its journal) and
    /// points sends' look-ahead at its map.
    pub(crate) fn replace_state(&self, held: &mut Held<'_>, state: ProfileState) {
        self.peek.set(state.peek_table());
        **held = state;
    }

    /// Requests waiting in the mailbox now.
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Whether the profile was deleted.
    #[inline]
    pub(crate) fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// The lock, waiting as long as it takes: for the engine's own work
    /// (administration, snapshots), which is serialized and never holds a
    /// profile lock while waiting for another except under the admin lock.
    /// Marked long while held.
    pub(crate) fn lock(&self) -> Held<'_> {
        Held::new(self.state.lock(), &self.long_held)
    }

    /// The lock if it is free now (housekeeping skips a busy profile).
    /// Marked long while held.
    pub(crate) fn try_lock(&self) -> Option<Held<'_>> {
        Some(Held::new(self.state.try_lock()?, &self.long_held))
    }

    /// Marks the profile deleted: every request from now on fails with
    /// `Retired`. Call with the lock held.
    pub(crate) fn retire(&self, _held: &mut ProfileState) {
        self.retired.store(true, Ordering::Release);
    }

    /// The lock for the fast path: only when nothing is queued ahead, and
    /// only if it frees within [`SPIN_FOR`].
    #[inline]
    fn fast_lock(&self) -> Option<MutexGuard<'_, ProfileState>> {
        if self.queued.load(Ordering::Acquire) != 0 || self.env.mailbox_only {
            return None;
        }
        // Read before trying, as in `spin_lock`.
        if !self.state.is_locked() {
            if let Some(guard) = self.state.try_lock() {
                return Some(guard);
            }
        }
        self.spin_lock()
    }

    #[cold]
    fn spin_lock(&self) -> Option<MutexGuard<'_, ProfileState>> {
        let started = Instant::now();
        // Look at the lock after every pause: a selection holds it for a
        // few hundred nanoseconds, and sixteen pauses between looks (about
        // as long, on this machine's AMD cores) left it free and unseen.
        // The clock is read only every 32nd look.
        for round in 1u32.. {
            std::hint::spin_loop();
            if self.queued.load(Ordering::Acquire) != 0 {
                return None;
            }
            // Read before trying: a failed try takes the lock's cache line
            // from the holder, which then waits for it to come back.
            if !self.state.is_locked() {
                if let Some(guard) = self.state.try_lock() {
                    return Some(guard);
                }
            }
            if round % 32 == 0 && started.elapsed() >= SPIN_FOR {
                return None;
            }
        }
        None
    }

    /// Runs `f` on the state held by `guard`, unless the profile is retired.
    #[inline]
    fn run<R>(
        &self,
        guard: &mut ProfileState,
        f: impl FnOnce(&mut ProfileState, &Env) -> R,
    ) -> Result<R, ActorError> {
        if self.is_retired() {
            return Err(ActorError::Retired);
        }
        catch_unwind(AssertUnwindSafe(|| f(guard, &self.env))).map_err(|_| ActorError::Panicked)
    }

    /// Runs `f` on the profile's state: on the calling task when the
    /// profile is free or busy only briefly, else through the mailbox
    /// (`bound`: the most requests the mailbox may hold).
    pub(crate) async fn call<R, F>(self: &Arc<Self>, bound: usize, f: F) -> Result<R, ActorError>
    where
        R: Send + 'static,
        F: FnOnce(&mut ProfileState, &Env) -> R + Send + 'static,
    {
        match self.try_call(bound, f) {
            Ok(result) => result,
            Err(f) => self
                .enqueue(bound, f)?
                .await
                .unwrap_or(Err(ActorError::Stopped)),
        }
    }

    /// [`ProfileActor::call`] for long work (a listing): marked long while
    /// it runs, so async callers queue rather than wait on the lock.
    pub(crate) async fn call_long<R, F>(
        self: &Arc<Self>,
        bound: usize,
        f: F,
    ) -> Result<R, ActorError>
    where
        R: Send + 'static,
        F: FnOnce(&mut ProfileState, &Env) -> R + Send + 'static,
    {
        let this = Arc::clone(self);
        self.call(bound, move |state, env| {
            this.long_held.store(true, Ordering::Release);
            let result = f(state, env);
            this.long_held.store(false, Ordering::Release);
            result
        })
        .await
    }

    /// The part of [`ProfileActor::call`] that runs on the calling task:
    /// inline when free; waiting on the lock when the holder is on a short
    /// request; `Err(f)` back when the request should go to the mailbox.
    #[inline]
    pub(crate) fn try_call<R, F>(&self, bound: usize, f: F) -> Result<Result<R, ActorError>, F>
    where
        F: FnOnce(&mut ProfileState, &Env) -> R,
    {
        let f = match self.try_inline(f) {
            Ok(result) => return Ok(result),
            Err(f) => f,
        };
        // Requests already queued may be this caller's own (an async caller
        // can have several in flight): never wait past them.
        if self.env.mailbox_only
            || self.long_held.load(Ordering::Acquire)
            || self.queued.load(Ordering::Acquire) != 0
        {
            return Err(f);
        }
        match self.wait_lock(bound) {
            Ok(mut guard) => Ok(self.run(&mut guard, f)),
            Err(e) => Ok(Err(e)),
        }
    }

    /// [`ProfileActor::call`] for a caller outside an async runtime. The
    /// fast path never parks. A busy profile parks the caller on the lock
    /// itself (holding a place in the mailbox's count, so the bound still
    /// holds and later callers do not overtake it): a thread that would
    /// park anyway waits for the lock rather than for a hop to an engine
    /// thread and back. In [`Dispatch::Mailbox`](super::Dispatch::Mailbox)
    /// mode the request goes through the mailbox.
    pub(crate) fn call_now<R, F>(self: &Arc<Self>, bound: usize, f: F) -> Result<R, ActorError>
    where
        R: Send + 'static,
        F: FnOnce(&mut ProfileState, &Env) -> R + Send + 'static,
    {
        let f = match self.try_inline(f) {
            Ok(result) => return result,
            Err(f) => f,
        };
        if self.env.mailbox_only {
            return futures::executor::block_on(self.enqueue(bound, f)?)
                .unwrap_or(Err(ActorError::Stopped));
        }
        let mut guard = self.wait_lock(bound)?;
        self.run(&mut guard, f)
    }

    /// The lock for a caller that may park, after the requests queued
    /// before it: holds a place in the mailbox's count while it waits.
    fn wait_lock(&self, bound: usize) -> Result<MutexGuard<'_, ProfileState>, ActorError> {
        let place = self.take_place(bound)?;
        let guard = self.state.lock();
        drop(place);
        Ok(guard)
    }

    /// Runs `f` now if the profile is free this instant (no spinning);
    /// `Err(f)` back otherwise. For batches, which try every profile
    /// before waiting for any.
    #[inline]
    pub(crate) fn run_if_free<R, F>(&self, f: F) -> Result<Result<R, ActorError>, F>
    where
        F: FnOnce(&mut ProfileState, &Env) -> R,
    {
        if self.queued.load(Ordering::Acquire) != 0 || self.env.mailbox_only {
            return Err(f);
        }
        match self.state.try_lock() {
            Some(mut guard) => Ok(self.run(&mut guard, f)),
            None => Err(f),
        }
    }

    /// Runs `f` on the calling thread, waiting (parked) for the profile if
    /// it is busy; `f` need not be `'static`. Not in mailbox mode.
    pub(crate) fn run_waiting<R>(
        &self,
        bound: usize,
        f: impl FnOnce(&mut ProfileState, &Env) -> R,
    ) -> Result<R, ActorError> {
        match self.fast_lock() {
            Some(mut guard) => self.run(&mut guard, f),
            None => {
                let mut guard = self.wait_lock(bound)?;
                self.run(&mut guard, f)
            }
        }
    }

    /// The fast path: `Err(f)` back when it cannot be taken.
    #[inline]
    pub(crate) fn try_inline<R, F>(&self, f: F) -> Result<Result<R, ActorError>, F>
    where
        F: FnOnce(&mut ProfileState, &Env) -> R,
    {
        match self.fast_lock() {
            Some(mut guard) => Ok(self.run(&mut guard, f)),
            None => Err(f),
        }
    }

    /// The slow path: queues `f` on the mailbox; the receiver gets its result.
    #[allow(clippy::type_complexity)]
    pub(crate) fn enqueue<R, F>(
        self: &Arc<Self>,
        bound: usize,
        f: F,
    ) -> Result<oneshot::Receiver<Result<R, ActorError>>, ActorError>
    where
        R: Send + 'static,
        F: FnOnce(&mut ProfileState, &Env) -> R + Send + 'static,
    {
        self.take_place(bound)?.keep();
        let (tx, rx) = oneshot::channel();
        // The place travels with the job, as a reference count the job
        // holds; it is freed when the job starts or is dropped.
        let place = QueuedPlace(Arc::clone(self));
        let job: Job = Box::new(move |actor: &ProfileActor| {
            let mut guard = actor.state.lock();
            // Only now may a later caller take the fast path: the lock is held.
            drop(place);
            let _ = tx.send(actor.run(&mut guard, f));
        });
        self.mailbox().ok_or(ActorError::Stopped)?.send(job);
        Ok(rx)
    }

    fn take_place(&self, bound: usize) -> Result<Place<'_>, ActorError> {
        let mut current = self.queued.load(Ordering::Relaxed);
        loop {
            if current >= bound {
                return Err(ActorError::Overloaded);
            }
            match self.queued.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(Place(self)),
                Err(seen) => current = seen,
            }
        }
    }

    fn mailbox(self: &Arc<Self>) -> Option<&MailboxAddr> {
        if let Some(m) = self.mailbox.get() {
            return Some(m);
        }
        let runtime = self.runtime.upgrade()?;
        Some(
            self.mailbox
                .get_or_init(|| runtime.start_mailbox(Arc::downgrade(self))),
        )
    }

    /// Stops the mailbox actor, if one was started (the profile is gone).
    pub(crate) fn stop_mailbox(&self) {
        if let Some(mailbox) = self.mailbox.get() {
            mailbox.stop();
        }
    }
}

/// The lock held by the engine's own (possibly long) work: async callers
/// queue on the mailbox meanwhile instead of waiting on the lock.
pub(crate) struct Held<'a> {
    guard: MutexGuard<'a, ProfileState>,
    flag: &'a AtomicBool,
}

impl<'a> Held<'a> {
    fn new(guard: MutexGuard<'a, ProfileState>, flag: &'a AtomicBool) -> Self {
        flag.store(true, Ordering::Release);
        Held { guard, flag }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // Cleared before the guard unlocks (fields drop after this).
        self.flag.store(false, Ordering::Release);
    }
}

impl std::ops::Deref for Held<'_> {
    type Target = ProfileState;

    fn deref(&self) -> &ProfileState {
        &self.guard
    }
}

impl std::ops::DerefMut for Held<'_> {
    fn deref_mut(&mut self) -> &mut ProfileState {
        &mut self.guard
    }
}
