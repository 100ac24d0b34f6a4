//! # numpool
//!
//! In-memory sender selection for SMS number pools: for every outbound
//! message, pick the sender a recipient saw last time (sticky sender, expiring
//! after 8 days of silence), else one with the recipient's area code
//! (geomatch), else by a long-code/toll-free weighted round-robin, never an
//! unhealthy one when asked not to. The rules are those of the number pool of
//! the Telnyx Messaging API (see `SEMANTICS.md` in the repository).
//!
//! ## Architecture
//!
//! ```text
//!  HTTP API ──┐
//!  embedders ─┼─► Engine ─► Dispatcher ── profile id ─► ProfileActor (one per profile)
//!  loadgen  ──┘                                           └─ Profile: settings, Pool,
//!                                                            StickyMap (shards + TimerWheel)
//! ```
//!
//! The selection core is plain, single-threaded data structures with no
//! runtime, no clock and no I/O: every operation takes `now` as an argument.
//! That makes it testable with a manual clock and benchmarkable on its own.
//!
//! ## Map of modules
//!
//! The server, from the top:
//! - [`cli`]: `numpool serve`'s flags, environment and TOML configuration.
//! - [`http`]: the Telnyx-compatible HTTP API on actix-web.
//!
//! The runtime:
//! - [`journal`]: durability: the append-only journal, snapshots, recovery.
//! - [`engine`]: [`Engine`], the public handle: profiles, numbers, sending
//!   (single, batch, blocking), mappings, health reports, stats, shutdown.
//! - [`actor`]: `ProfileActor` (one per profile, owning a [`Profile`]) and the
//!   `Dispatcher` (arbiters, routes, bounded mailboxes).
//!
//! The core, from the bottom up (no actors, no clock, no I/O):
//! - [`number`]: E.164 parsing, [`PhoneNumber`] packed in a `u64`, NANP area
//!   codes, [`SenderKind`].
//! - [`settings`]: `number_pool_settings`, defaults, validation, PATCH merge.
//! - [`health`]: delivery outcomes over a sliding window -> healthy or not.
//! - [`rotation`]: round-robin over a changing set of senders.
//! - [`weighted`]: smooth weighted round-robin between long codes and toll-free.
//! - [`region`]: NANP area code -> state/province (generated table) for the
//!   geomatch fallback.
//! - [`pool`]: a profile's senders and the rotations selection walks.
//! - [`sticky`]: the sharded recipient -> sender map and its timing wheel.
//! - [`select`]: the selection order (sticky -> geomatch -> weighted, skip unhealthy).
//! - [`profile`]: [`Profile`], one messaging profile's whole state and operations.
//! - [`records`]: the administrative records of profiles and numbers.
//! - [`registry`]: [`Registry`], every profile and number in one thread.
//! - [`config`]: engine-wide settings the core needs.
//! - [`clock`]: the [`Clock`] trait; `ManualClock` with the `test-util` feature.
//!
//! ## Example
//!
//! ```
//! use numpool::{PhoneNumber, ProfileId, Reason, Registry, SelectionConfig};
//! use numpool::settings::{SettingsPatch, SettingsUpdate};
//!
//! let mut registry = Registry::new(SelectionConfig::default());
//! let profile = ProfileId::new_v4();
//! let sticky = SettingsUpdate::Merge(SettingsPatch {
//!     sticky_sender: Some(true),
//!     ..Default::default()
//! });
//! let now = 1_800_000_000; // seconds since the Unix epoch
//! registry.create_profile(profile, &sticky, now)?;
//! for n in ["+13125550001", "+13125550002"] {
//!     registry.assign(PhoneNumber::parse_e164(n)?, profile)?;
//! }
//! let to = PhoneNumber::parse_e164("+14155550123")?;
//! let first = registry.select(profile, to, now)?;
//! let again = registry.select(profile, to, now + 60)?;
//! assert_eq!(first.sender, again.sender);
//! assert_eq!(again.reason, Reason::Sticky);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod actor;
pub mod cli;
pub mod clock;
pub mod config;
pub mod engine;
pub mod health;
pub mod http;
pub mod journal;
pub mod number;
pub mod pool;
pub mod profile;
pub mod records;
pub mod region;
mod region_table;
pub mod registry;
pub mod rotation;
pub mod select;
pub mod settings;
pub mod sticky;
pub mod weighted;

pub use clock::{Clock, SystemClock, Timestamp};
pub use config::SelectionConfig;
pub use engine::{Engine, EngineConfig, EngineError};
pub use number::{NumberError, PhoneNumber, SenderKind};
pub use profile::{Profile, StickyMapping};
pub use registry::{ProfileId, Registry, RegistryError};
pub use select::{MappingOutcome, Reason, SelectError, Selection};
pub use settings::{PoolSettings, SettingsError, SettingsPatch, SettingsUpdate};
