//! Housekeeping: expiry when it is due, where sender queues end, and
//! periodic snapshots.
//!
//! No profile has a timer of its own. A profile tells the
//! [`ExpirySchedule`] when its timing wheels will next have work (only when
//! that moves earlier, so not on every mapping), and one housekeeper actor
//! ticks every `expire_tick`, running a budgeted expiry slice on each
//! profile that is due. An idle profile, or one whose mappings are days
//! from expiring, costs nothing between ticks.
//!
//! Sender queues: a send moves its sender's queue end without writing it
//! (no journal write, no etcd commit per send). The first send after a
//! write lists the profile in [`QueueEnds`]; each tick, the housekeeper
//! writes one `QueueEnds` record per listed profile with the senders whose
//! queue end moved (at most [`MAX_QUEUE_ENDS_PER_TICK`] in all, the rest on
//! the next ticks), so that a new leader, or a restart, starts every queue
//! within a tick of where it was.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use actix::{Actor, AsyncContext, Context};
use parking_lot::Mutex;

use super::Inner;
use crate::ids::ProfileId;

#[derive(Default)]
struct Due {
    by_time: BTreeSet<(u32, ProfileId)>,
    by_profile: HashMap<ProfileId, u32>,
}

/// When each profile next has expiry work. Cheap to clone (shared).
#[derive(Clone, Default)]
pub(crate) struct ExpirySchedule {
    due: Arc<Mutex<Due>>,
    /// Expiry slices run, for stats and tests.
    slices: Arc<AtomicU64>,
}

impl ExpirySchedule {
    /// Expiry for `profile` is due at `at` (seconds); keeps an earlier time.
    pub(crate) fn schedule(&self, profile: ProfileId, at: u32) {
        let mut due = self.due.lock();
        if let Some(&current) = due.by_profile.get(&profile) {
            if current <= at {
                return;
            }
            due.by_time.remove(&(current, profile));
        }
        due.by_profile.insert(profile, at);
        due.by_time.insert((at, profile));
    }

    /// Forgets `profile` (deleted).
    pub(crate) fn forget(&self, profile: ProfileId) {
        let mut due = self.due.lock();
        if let Some(at) = due.by_profile.remove(&profile) {
            due.by_time.remove(&(at, profile));
        }
    }

    /// Takes every profile due at or before `now`.
    fn take_due(&self, now: u32) -> Vec<ProfileId> {
        let mut due = self.due.lock();
        let mut out = Vec::new();
        while let Some(&(at, profile)) = due.by_time.first() {
            if at > now {
                break;
            }
            due.by_time.pop_first();
            due.by_profile.remove(&profile);
            out.push(profile);
        }
        out
    }

    /// Profiles with expiry scheduled.
    pub(crate) fn scheduled(&self) -> usize {
        self.due.lock().by_profile.len()
    }

    /// Expiry slices run so far.
    pub(crate) fn slices(&self) -> u64 {
        self.slices.load(Ordering::Relaxed)
    }
}

/// How often the senders whose queue moved have their queue ends written.
pub(crate) const QUEUE_ENDS_EVERY: Duration = Duration::from_millis(100);

/// The most senders whose queue ends one tick writes (16 bytes each): the
/// write per tick stays bounded however many senders moved.
pub(crate) const MAX_QUEUE_ENDS_PER_TICK: usize = 65_536;

/// The profiles whose sender queues moved since they were last written.
/// Cheap to clone (shared).
#[derive(Clone, Default)]
pub(crate) struct QueueEnds {
    listed: Arc<Mutex<Vec<ProfileId>>>,
}

impl QueueEnds {
    /// `profile`'s queues moved (the first time since they were written).
    pub(crate) fn note(&self, profile: ProfileId) {
        self.listed.lock().push(profile);
    }

    fn take(&self) -> Vec<ProfileId> {
        std::mem::take(&mut *self.listed.lock())
    }

    /// Whether none is listed.
    pub(crate) fn is_empty(&self) -> bool {
        self.listed.lock().is_empty()
    }
}

/// Writes where the queues that moved end now: one record per listed
/// profile, journaled (in a cluster: committed to etcd) without anyone
/// waiting for it. Not while the journal refuses changes (a failed
/// journal, a cluster standby): they stay listed. Returns whether it wrote.
pub(crate) fn write_queue_ends(inner: &Inner) -> bool {
    let Some(writer) = &inner.env.journal else {
        return false;
    };
    if writer.is_failed() || !writer.takes_changes() {
        return false;
    }
    let queues = &inner.env.queues;
    let mut budget = MAX_QUEUE_ENDS_PER_TICK;
    let mut listed = queues.take().into_iter();
    for id in listed.by_ref() {
        let Some(actor) = inner.dispatcher.actor(id) else {
            continue;
        };
        let Some(mut state) = actor.try_lock() else {
            queues.note(id);
            continue;
        };
        if actor.is_retired() {
            continue;
        }
        let mut ends = Vec::new();
        let max = budget.min(crate::journal::record::MAX_QUEUE_ENDS);
        if state.queue_changes(max, &mut ends) {
            queues.note(id);
        }
        budget -= ends.len();
        if !ends.is_empty() {
            // Under the profile's lock: the log keeps the order of changes.
            let _ = inner
                .env
                .journal(&[crate::journal::Record::QueueEnds { profile: id, ends }]);
        }
        if budget == 0 {
            break;
        }
    }
    for id in listed {
        queues.note(id);
    }
    budget < MAX_QUEUE_ENDS_PER_TICK
}

/// Runs one expiry slice on every profile that is due at `now`; a profile
/// busy right now, or with work left after its slice, is due again at once.
pub(crate) fn expire_due(inner: &Inner, now: u32) {
    let schedule = &inner.env.expiry;
    for id in schedule.take_due(now) {
        let Some(actor) = inner.dispatcher.actor(id) else {
            continue;
        };
        let Some(mut state) = actor.try_lock() else {
            schedule.schedule(id, now);
            continue;
        };
        if actor.is_retired() {
            continue;
        }
        schedule.slices.fetch_add(1, Ordering::Relaxed);
        let report = state.expire(now, inner.config.expire_budget.max(1));
        if !report.done {
            schedule.schedule(id, now);
        } else if let Some(at) = state.wakeup_after_expiry() {
            schedule.schedule(id, at);
        }
    }
}

/// The housekeeper actor: expiry (and healing) every `tick`, queue ends
/// every 100 ms, a census of the counters every 2 s, a snapshot every
/// `snapshot_every` (when the engine journals).
pub(crate) struct Housekeeper {
    pub inner: Weak<Inner>,
    pub tick: Duration,
    pub snapshot_every: Option<Duration>,
}

impl Actor for Housekeeper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(QUEUE_ENDS_EVERY, |this, _| {
            if let Some(inner) = this.inner.upgrade() {
                write_queue_ends(&inner);
            }
        });
        ctx.run_interval(super::stats::CENSUS_EVERY, |this, _| {
            if let Some(inner) = this.inner.upgrade() {
                super::Engine { inner }.census_if_due();
            }
        });
        ctx.run_interval(self.tick, |this, _| {
            if let Some(inner) = this.inner.upgrade() {
                let now = inner.now_secs();
                expire_due(&inner, now);
                if inner.env.journal.as_ref().is_some_and(|w| w.is_failed()) {
                    let engine = super::Engine { inner };
                    actix_rt::spawn(async move { engine.heal().await });
                }
            }
        });
        if let Some(every) = self.snapshot_every {
            ctx.run_interval(every, |this, _| {
                let Some(inner) = this.inner.upgrade() else {
                    return;
                };
                if inner.is_closing() {
                    return;
                }
                let engine = super::Engine { inner };
                actix_rt::spawn(async move {
                    if let Err(e) = engine.snapshot_now().await {
                        tracing::error!(error = %e, "journal: snapshot failed");
                    }
                });
            });
        }
    }
}
