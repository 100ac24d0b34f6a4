//! The administrative records of profiles and numbers, as the API shows them.

use crate::health::HealthCounts;
use crate::number::SenderKind;
use crate::profile::Eligibility;
pub use crate::records::{NumberRecord, ProfileRecord};
use crate::registry::ProfileId;
use crate::settings::SettingsUpdate;

/// What creating a profile takes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewProfile {
    /// A chosen id, or `None` for a new random one.
    pub id: Option<ProfileId>,
    pub name: String,
    pub enabled: bool,
    pub whitelisted_destinations: Vec<String>,
    pub webhook_url: Option<String>,
    pub webhook_failover_url: Option<String>,
    /// Applied to a pool that is off: `Keep` leaves it off.
    pub number_pool_settings: SettingsUpdate,
}

/// A profile PATCH: `None` keeps a field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileUpdate {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub whitelisted_destinations: Option<Vec<String>>,
    pub webhook_url: Option<Option<String>>,
    pub webhook_failover_url: Option<Option<String>>,
    pub number_pool_settings: SettingsUpdate,
}

/// A number with its kind, health and eligibility now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NumberStatus {
    pub record: NumberRecord,
    pub kind: SenderKind,
    pub health: HealthCounts,
    pub unhealthy: bool,
    pub eligibility: Eligibility,
}
