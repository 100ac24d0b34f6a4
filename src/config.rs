//! Engine-wide settings the selection core needs.

use crate::health::HealthConfig;

/// The default sticky ttl: 8 days.
pub const DEFAULT_STICKY_TTL_SECS: u32 = 8 * 24 * 3600;

/// Settings shared by every profile of an engine.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectionConfig {
    /// Sticky ttl for profiles that do not set `sticky_ttl_secs` (default 8 days).
    pub sticky_ttl_secs: u32,
    /// Shards per profile's sticky map (rounded up to a power of two).
    pub sticky_shards: usize,
    /// Health window and thresholds.
    pub health: HealthConfig,
}

impl Default for SelectionConfig {
    fn default() -> Self {
        SelectionConfig {
            sticky_ttl_secs: DEFAULT_STICKY_TTL_SECS,
            sticky_shards: crate::sticky::DEFAULT_SHARDS,
            health: HealthConfig::default(),
        }
    }
}
