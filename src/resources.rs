//! The API's resources, as embedders and the HTTP API see them: the
//! records an engine keeps beside selection state (profiles, numbers, opt-
//! outs), and what it takes to create, change, filter or preview them. (Not
//! to be confused with the journal's `Record`s, the changes written to disk.)

use crate::clock::Timestamp;
use crate::ids::ProfileId;
use crate::number::{PhoneNumber, SenderKind};
use crate::selection::health::HealthCounts;
use crate::selection::profile::Capacity;
use crate::selection::rules::Eligibility;
use crate::settings::{PoolSettings, SettingsUpdate};

/// A messaging profile.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProfileRecord {
    /// Its id.
    pub id: ProfileId,
    /// A name for people.
    pub name: String,
    /// `false` switches the profile off.
    pub enabled: bool,
    /// ISO 3166-1 alpha-2 codes the profile may send to, or `["*"]`.
    pub whitelisted_destinations: Vec<String>,
    /// Where the hosted service would post this profile's events (kept, not used).
    pub webhook_url: Option<String>,
    /// The fallback of `webhook_url` (kept, not used).
    pub webhook_failover_url: Option<String>,
    /// `None`: the number pool is off.
    pub number_pool_settings: Option<PoolSettings>,
    /// Queue cap and daily caps of its senders.
    #[serde(flatten)]
    pub capacity: CapacityLimits,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// A profile's capacity settings: how long its senders' queues may grow
/// and its daily caps (see `docs/SELECTION.md`, "Sender capacity").
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct CapacityLimits {
    /// A send that would wait longer in its sender's queue is refused
    /// (seconds, default 14400 = 4 h).
    pub max_queue_seconds: f64,
    /// Sends of the profile per day beyond which sends are refused.
    pub daily_message_limit: Option<u32>,
    /// New recipients a sender may take per day before new picks pass it over.
    pub new_recipients_per_sender_per_day: Option<u32>,
    /// IANA time zone whose midnight starts a new day (default `UTC`).
    pub daily_reset_time_zone: String,
}

impl Default for CapacityLimits {
    fn default() -> Self {
        CapacityLimits {
            max_queue_seconds: crate::selection::capacity::DEFAULT_MAX_QUEUE_SECS,
            daily_message_limit: None,
            new_recipients_per_sender_per_day: None,
            daily_reset_time_zone: "UTC".into(),
        }
    }
}

/// A change of [`CapacityLimits`]: `None` keeps a field; `Some(None)`
/// clears a cap.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CapacityUpdate {
    /// A new queue cap.
    pub max_queue_seconds: Option<f64>,
    /// A new daily message cap, or none.
    pub daily_message_limit: Option<Option<u32>>,
    /// A new cap of new recipients per sender per day, or none.
    pub new_recipients_per_sender_per_day: Option<Option<u32>>,
    /// A new time zone for the daily reset.
    pub daily_reset_time_zone: Option<String>,
}

impl CapacityUpdate {
    /// `limits` with this update applied.
    pub fn apply(&self, limits: &CapacityLimits) -> CapacityLimits {
        CapacityLimits {
            max_queue_seconds: self.max_queue_seconds.unwrap_or(limits.max_queue_seconds),
            daily_message_limit: self
                .daily_message_limit
                .unwrap_or(limits.daily_message_limit),
            new_recipients_per_sender_per_day: self
                .new_recipients_per_sender_per_day
                .unwrap_or(limits.new_recipients_per_sender_per_day),
            daily_reset_time_zone: self
                .daily_reset_time_zone
                .clone()
                .unwrap_or_else(|| limits.daily_reset_time_zone.clone()),
        }
    }
}

/// A phone number known to the engine (assigned now or before).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NumberRecord {
    /// The number.
    pub number: PhoneNumber,
    /// A numeric id the engine gave the number, stable for its lifetime.
    pub id: u64,
    /// The profile it is assigned to, if any.
    pub profile: Option<ProfileId>,
    /// When the engine first saw it.
    pub created_at: Timestamp,
    /// When its assignment last changed.
    pub updated_at: Timestamp,
    /// Its own rate (messages per second); `None`: its kind's default.
    pub messages_per_second: Option<f64>,
}

/// What creating a profile takes.
///
/// `NewProfile::default()` is enabled, may send anywhere (`["*"]`) and has
/// its number pool **off**: give `number_pool_settings` to turn it on.
#[derive(Debug, Clone, PartialEq)]
pub struct NewProfile {
    /// A chosen id, or `None` for a new random one.
    pub id: Option<ProfileId>,
    /// A name for people.
    pub name: String,
    /// `false` creates it switched off.
    pub enabled: bool,
    /// ISO 3166-1 alpha-2 codes, or `["*"]` for anywhere.
    pub whitelisted_destinations: Vec<String>,
    /// Kept and shown, not used.
    pub webhook_url: Option<String>,
    /// Kept and shown, not used.
    pub webhook_failover_url: Option<String>,
    /// Applied to a pool that is off: `Keep` leaves it off.
    pub number_pool_settings: SettingsUpdate,
    /// Queue cap and daily caps (default: 4 h, no daily caps, UTC).
    pub capacity: CapacityLimits,
}

impl Default for NewProfile {
    fn default() -> Self {
        NewProfile {
            id: None,
            name: String::new(),
            enabled: true,
            whitelisted_destinations: vec!["*".into()],
            webhook_url: None,
            webhook_failover_url: None,
            number_pool_settings: SettingsUpdate::Keep,
            capacity: CapacityLimits::default(),
        }
    }
}

/// A profile update (PATCH): `None` keeps a field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileUpdate {
    /// A new name.
    pub name: Option<String>,
    /// Switch on or off.
    pub enabled: Option<bool>,
    /// New allowed destinations.
    pub whitelisted_destinations: Option<Vec<String>>,
    /// `Some(None)` clears it.
    pub webhook_url: Option<Option<String>>,
    /// `Some(None)` clears it.
    pub webhook_failover_url: Option<Option<String>>,
    /// Merged field by field.
    pub number_pool_settings: SettingsUpdate,
    /// Merged field by field.
    pub capacity: CapacityUpdate,
}

/// Which numbers a listing shows (every field set must match), and in
/// which order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NumberFilter {
    /// Only the numbers of this profile.
    pub profile: Option<ProfileId>,
    /// Only numbers of this kind.
    pub kind: Option<SenderKind>,
    /// Only these numbers (empty: any number).
    pub numbers: Vec<PhoneNumber>,
    /// Only numbers whose written form (`+13125550001`, or a short code's
    /// digits) contains this text.
    pub contains: Option<String>,
    /// Largest number first; otherwise smallest first. Numbers compare by
    /// their digits read as a whole number (short codes after every E.164
    /// number).
    pub descending: bool,
}

/// A number with its kind, health and eligibility now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NumberStatus {
    /// The number's record.
    pub record: NumberRecord,
    /// Long code, toll-free or short code.
    pub kind: SenderKind,
    /// Delivery outcomes in the health window.
    pub health: HealthCounts,
    /// Whether the outcomes make it unhealthy.
    pub unhealthy: bool,
    /// Whether a new pick may choose it now, and if not why.
    pub eligibility: Eligibility,
    /// Its rate, queue and today's counters (when it is in a pool).
    pub capacity: Option<Capacity>,
    /// Live sticky mappings to it, pinned ones included.
    pub sticky_mappings: u32,
    /// Of those, the pinned ones.
    pub pinned_mappings: u32,
    /// Opt-outs its profile received through it.
    pub opt_outs_via: u32,
}

impl NumberStatus {
    /// What removing the number from its pool would do now.
    pub fn removal_preview(&self) -> RemovalPreview {
        RemovalPreview {
            mappings_cleared: self.sticky_mappings,
            pinned_cleared: self.pinned_mappings,
            opt_outs_kept: self.opt_outs_via,
        }
    }
}

/// What removing a number from its pool would do, without doing it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemovalPreview {
    /// Live mappings to it that would be cleared (pinned ones included):
    /// those recipients get a new sender on their next message.
    pub mappings_cleared: u32,
    /// Of those, the pinned ones.
    pub pinned_cleared: u32,
    /// Opt-outs received through it; they belong to the profile and stay.
    pub opt_outs_kept: u32,
}

/// A recipient who opted out of a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptOutRecord {
    /// The recipient.
    pub to: PhoneNumber,
    /// The keyword they texted; `None` when opted out through the API.
    pub keyword: Option<crate::selection::compliance::OptOutKeyword>,
    /// The pool number they texted; `None` when opted out through the API.
    pub via: Option<PhoneNumber>,
    /// When.
    pub created_at: Timestamp,
}
