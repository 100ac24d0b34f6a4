//! [`EngineConfig`]: how an engine is sized and tuned.

use std::time::Duration;

use crate::journal::JournalConfig;
use crate::selection::capacity::CapacityConfig;
use crate::selection::health::HealthConfig;
use crate::selection::profile::Shape;

/// The default sticky ttl: 8 days.
pub const DEFAULT_STICKY_TTL_SECS: u32 = 8 * 24 * 3600;

/// Settings of an [`Engine`](crate::Engine). `EngineConfig::default()` is an
/// in-memory engine with the defaults of the hosted service.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// Sticky ttl for profiles that do not set `sticky_ttl_secs` (default 8 days).
    pub sticky_ttl_secs: u32,
    /// Health window and thresholds.
    pub health: HealthConfig,
    /// Requests a profile may have queued while it is busy before further
    /// ones fail at once with [`Error::Overloaded`](crate::Error::Overloaded)
    /// (default 1024).
    pub mailbox_bound: usize,
    /// Arbiter threads that run queued requests and housekeeping (0: one
    /// per core).
    pub arbiters: usize,
    /// How often due expiry work runs (default 100 ms).
    pub expire_tick: Duration,
    /// Entries one expiry slice may reach before letting requests run
    /// (default 4096: well under a millisecond).
    pub expire_budget: usize,
    /// Shards of each profile's sticky map (rounded up to a power of two).
    pub sticky_shards: usize,
    /// Where state is journaled; `None` keeps everything in memory only.
    pub journal: Option<JournalConfig>,
    /// How a request reaches its profile's actor.
    pub dispatch: Dispatch,
    /// Sender rates by kind, queues and caps, load-aware picks.
    pub capacity: CapacityConfig,
}

impl EngineConfig {
    /// What every profile of the engine shares.
    pub(crate) fn shape(&self) -> Shape {
        Shape {
            default_ttl: self.sticky_ttl_secs,
            shards: self.sticky_shards,
            capacity: self.capacity,
        }
    }
}

/// How a request reaches its profile's actor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Dispatch {
    /// The caller runs the request itself when the profile is free (no
    /// thread hop); a busy profile's requests go through its mailbox. The
    /// default.
    #[default]
    CallerRuns,
    /// Every request goes through the profile's mailbox and runs on an
    /// engine thread: the classic actor hop, kept to compare against (and
    /// so the tests exercise the mailbox path on every rule).
    Mailbox,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            sticky_ttl_secs: DEFAULT_STICKY_TTL_SECS,
            health: HealthConfig::default(),
            mailbox_bound: 1024,
            arbiters: 0,
            expire_tick: Duration::from_millis(100),
            expire_budget: 4096,
            sticky_shards: crate::selection::sticky::DEFAULT_SHARDS,
            journal: None,
            dispatch: Dispatch::CallerRuns,
            capacity: CapacityConfig::default(),
        }
    }
}
