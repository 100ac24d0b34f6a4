//! [`EngineConfig`]: how an engine is sized and tuned.

use std::time::Duration;

use crate::actor::DispatcherConfig;
use crate::config::SelectionConfig;
use crate::journal::JournalConfig;

/// Settings of an [`Engine`](super::Engine).
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// Sticky ttl, shards and health thresholds.
    pub selection: SelectionConfig,
    /// Arbiter threads and mailbox bound.
    pub dispatcher: DispatcherConfig,
    /// How often each actor advances its timing wheels (default 100 ms).
    pub expire_tick: Duration,
    /// Entries an expiry slice may reach before letting selections run
    /// (default 4096: well under a millisecond).
    pub expire_budget: usize,
    /// Where state is journaled; `None` keeps everything in memory only.
    pub journal: Option<JournalConfig>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            selection: SelectionConfig::default(),
            dispatcher: DispatcherConfig::default(),
            expire_tick: Duration::from_millis(100),
            expire_budget: 4096,
            journal: None,
        }
    }
}
