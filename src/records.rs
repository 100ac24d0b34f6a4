//! The administrative records of profiles and numbers (names, ids,
//! timestamps): what the engine keeps beside selection state, and what the
//! journal writes.

use crate::clock::Timestamp;
use crate::number::PhoneNumber;
use crate::registry::ProfileId;
use crate::settings::PoolSettings;

/// A messaging profile.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileRecord {
    pub id: ProfileId,
    pub name: String,
    pub enabled: bool,
    pub whitelisted_destinations: Vec<String>,
    pub webhook_url: Option<String>,
    pub webhook_failover_url: Option<String>,
    /// `None`: the number pool is off.
    pub number_pool_settings: Option<PoolSettings>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A phone number known to the engine (assigned now or before).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumberRecord {
    pub number: PhoneNumber,
    /// A numeric id the engine gave the number, stable for its lifetime.
    pub id: u64,
    pub profile: Option<ProfileId>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}
