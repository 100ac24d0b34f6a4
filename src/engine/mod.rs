//! [`Engine`]: the one public handle to a running numpool.
//!
//! The HTTP server, loadgen and embedders use only this. It owns one actor
//! per messaging profile (the only owner of that profile's state), the
//! records of profiles and numbers, the clock, the journal and the
//! housekeeping. The methods are grouped by concept, one file each:
//!
//! - [`startup`]: start, recover the journal, shut down; [`config`]: its settings;
//! - [`profiles`]: create, update, delete, list messaging profiles;
//! - [`numbers`]: assign, move, unassign numbers, their rates and status;
//! - [`send`]: sending, one message or a batch, async or not;
//! - [`mappings`]: reading, pinning and breaking sticky mappings;
//! - [`import`]: importing message history into a profile's sticky map;
//! - [`outcomes`]: delivery outcomes that feed sender health;
//! - [`opt_outs`]: inbound keywords, opt-outs and opt-ins;
//! - [`stats`]: counters, expiry on demand, snapshots on demand;
//! - [`catalog`]: the records of profiles and numbers, in listing order;
//! - [`healing`]: refusing changes while the journal cannot write, and
//!   resuming once it can;
//! - [`replica`]: a cluster standby applying its leader's log;
//!   [`transfer`]: a node taking its leader's snapshot when it is too far behind.
//!
//! Internals: [`actor`] (a profile's owner: caller-runs, else its mailbox),
//! [`groups`] (a batch's items grouped by profile), [`answers`] (a
//! batch's answers by position),
//! [`mailbox`] (the actix system: mailbox actors and the housekeeper),
//! [`dispatcher`] (id -> actor), [`housekeeping`] (expiry when due,
//! periodic snapshots).

pub(crate) mod actor;
mod answers;
mod catalog;
mod config;
pub(crate) mod dispatcher;
mod groups;
mod healing;
pub(crate) mod housekeeping;
pub(crate) mod import;
pub(crate) mod mailbox;
mod mappings;
mod numbers;
mod opt_outs;
mod outcomes;
mod profiles;
mod replica;
mod send;
mod startup;
mod stats;
mod transfer;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

pub use config::{Dispatch, EngineConfig, DEFAULT_STICKY_TTL_SECS};
pub use import::{HistoryRow, ImportReport, Importer};
#[cfg(feature = "server")]
pub(crate) use mappings::yield_now;
pub use mappings::{MappingCursor, MappingPage};
pub use opt_outs::{Inbound, OptOutCursor, OptOutPage};
pub use send::Outbound;
pub use startup::RecoveryReport;
pub use stats::{EngineStats, ProfileCounters};
pub use transfer::BackupReport;

use actor::Env;
use catalog::Catalog;
use dispatcher::Dispatcher;
use mailbox::Runtime;

use crate::clock::Timestamp;
use crate::error::Error;

/// The handle to a running engine. Cheap to clone; every clone is the same
/// engine. See the crate docs for an example.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

/// Calls in flight, counted per thread slot so that counting costs no
/// traffic between cores on the hot path.
struct InFlight {
    slots: [crossbeam_utils::CachePadded<AtomicUsize>; 16],
}

thread_local! {
    static SLOT: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % 16
    };
}

impl InFlight {
    fn total(&self) -> usize {
        self.slots.iter().map(|s| s.load(Ordering::SeqCst)).sum()
    }
}

/// What every handle and every actor of one engine share.
pub(crate) struct Inner {
    pub dispatcher: Dispatcher,
    pub catalog: RwLock<Catalog>,
    /// Serializes administrative changes (profiles, numbers, snapshots'
    /// first phase), so a number moving between two profiles is never seen
    /// half-moved.
    pub admin: tokio::sync::Mutex<()>,
    pub env: Arc<Env>,
    pub config: EngineConfig,
    pub runtime: Arc<Runtime>,
    pub snapshots: crate::journal::snapshot::Snapshots,
    pub recovery: RecoveryReport,
    healing: healing::Healing,
    /// The last census of the profiles' counters (`Engine::totals`).
    census: parking_lot::Mutex<stats::Census>,
    closing: AtomicBool,
    inflight: InFlight,
    drained: tokio::sync::Notify,
    /// Held while the engine may write its data directory.
    dir_lock: parking_lot::Mutex<Option<crate::journal::lock::DirLock>>,
}

impl Inner {
    /// The current time on the engine's clock.
    #[inline]
    pub(crate) fn now(&self) -> Timestamp {
        self.env.clock.now()
    }

    /// The current time in whole seconds, as the selection core counts it.
    pub(crate) fn now_secs(&self) -> u32 {
        self.now().as_secs_u32()
    }

    /// Whether shutdown has begun.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }
}

/// A call in flight; dropping it lets a waiting shutdown go on.
pub(crate) struct Entered<'a> {
    inner: &'a Inner,
    slot: usize,
}

impl Drop for Entered<'_> {
    #[inline]
    fn drop(&mut self) {
        self.inner.inflight.slots[self.slot].fetch_sub(1, Ordering::SeqCst);
        if self.inner.closing.load(Ordering::SeqCst) {
            self.inner.drained.notify_waiters();
        }
    }
}

impl Engine {
    /// Counts a call in flight, or refuses it once shutdown has begun.
    #[inline]
    pub(crate) fn enter(&self) -> Result<Entered<'_>, Error> {
        let slot = SLOT.with(|s| *s);
        self.inner.inflight.slots[slot].fetch_add(1, Ordering::SeqCst);
        let entered = Entered {
            inner: &self.inner,
            slot,
        };
        // SeqCst on both sides: either this call sees `closing`, or
        // shutdown sees this call counted.
        if self.inner.closing.load(Ordering::SeqCst) {
            return Err(Error::ShuttingDown);
        }
        Ok(entered)
    }

    /// The engine's configuration.
    ///
    /// ```
    /// use numpool::{Engine, EngineConfig};
    /// let engine = Engine::start(EngineConfig { mailbox_bound: 64, ..Default::default() })?;
    /// assert_eq!(engine.config().mailbox_bound, 64);
    /// # Ok::<(), numpool::StartError>(())
    /// ```
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The current time on the engine's clock.
    ///
    /// ```
    /// use numpool::{Engine, EngineConfig};
    /// let engine = Engine::start(EngineConfig::default())?;
    /// assert!(engine.now().as_secs() > 1_700_000_000);
    /// # Ok::<(), numpool::StartError>(())
    /// ```
    pub fn now(&self) -> Timestamp {
        self.inner.now()
    }

    /// What recovery found when the engine started (all zero without a journal).
    ///
    /// ```
    /// use numpool::{Engine, EngineConfig};
    /// let engine = Engine::start(EngineConfig::default())?;
    /// assert_eq!(engine.recovery().profiles, 0);
    /// # Ok::<(), numpool::StartError>(())
    /// ```
    pub fn recovery(&self) -> &RecoveryReport {
        &self.inner.recovery
    }
}
