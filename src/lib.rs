//! # numpool
//!
//! In-memory sender selection for SMS number pools: for every outbound
//! message, pick the sender a recipient saw last time (sticky sender,
//! expiring after 8 days of silence), else one with the recipient's area
//! code (geomatch), else by a long-code/toll-free weighted round-robin,
//! never an unhealthy one when asked not to. The rules are those of the
//! number pool of the Telnyx Messaging API, written down in the
//! repository's `docs/SELECTION.md`; the HTTP contract is `docs/API.md`.
//!
//! ## Use it
//!
//! ```
//! use numpool::{Engine, EngineConfig, NewProfile, PhoneNumber, Reason, SettingsPatch, SettingsUpdate};
//!
//! let engine = Engine::start(EngineConfig::default())?; // in memory; see JournalConfig to persist
//! futures::executor::block_on(async {
//!     let profile = engine
//!         .create_profile(NewProfile {
//!             name: "alerts".into(),
//!             // A profile's number pool is off until it has settings.
//!             number_pool_settings: SettingsUpdate::Merge(SettingsPatch {
//!                 sticky_sender: Some(true),
//!                 ..Default::default()
//!             }),
//!             ..Default::default()
//!         })
//!         .await?;
//!     for n in ["+13125550001", "+13125550002"] {
//!         engine.assign_number(PhoneNumber::parse_e164(n)?, Some(profile.id)).await?;
//!     }
//!     let to = PhoneNumber::parse_e164("+14155550123")?;
//!     let first = engine.send(profile.id, to).await?; // async; `send_now` for plain threads
//!     let again = engine.send(profile.id, to).await?;
//!     assert_eq!((again.sender, again.reason), (first.sender, Reason::Sticky));
//!     engine.shutdown().await;
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Which call for which load: [`Engine::send_now`] from plain threads,
//! [`Engine::send`] from async code, [`Engine::send_batch`] for many
//! messages at once; all of them run the selection on the calling thread
//! when the profile is free. `numpool serve` (the `server` feature) puts
//! the Telnyx-compatible HTTP API in front of the same engine.
//!
//! ## Architecture
//!
//! ```text
//!  HTTP API (server) ─┐                               ┌─ ProfileActor (one per messaging profile)
//!  embedders ─────────┼─► Engine ─► Dispatcher ── id ─┤    owns a ProfileState: settings, Pool,
//!  loadgen ───────────┘                               │    StickyMap (shards + TimerWheel)
//!                                                     └─ caller runs it when free, else its
//!                                                        actix mailbox (bounded) on an arbiter
//!  Journal: records appended under the profile's lock, written by one thread; replies wait for them.
//!  Housekeeper (actix): expiry when a profile's wheels are due; periodic snapshots.
//!  Cluster (optional): the leader commits each journal batch to etcd first; standbys follow it.
//! ```
//!
//! A request for a profile runs on the calling thread when the profile is
//! free (no thread hop, no allocation); when it is busy the request waits
//! in the profile's bounded mailbox and an engine thread runs it in order.
//! A single send starts its sticky lookup before it takes the lock,
//! reading the map's published view of its index (so its cache misses
//! overlap any wait for the lock); the lookup under the lock checks what
//! it found.
//! The selection core underneath is plain single-threaded data structures
//! with no runtime, no clock and no I/O (every operation takes `now`).
//! `docs/ARCHITECTURE.md` walks a send, a read, a recovery, a replicated
//! batch and a failover step by step.
//!
//! ## Map of modules (all internal; the items below are the public API)
//!
//! - `engine`: [`Engine`], the one handle: start and recovery, profiles and
//!   numbers, sending, mappings and history imports, removal previews,
//!   backups, health reports, stats, shutdown; its actors, dispatcher,
//!   mailboxes and housekeeping.
//! - `journal`: durability: the log, snapshots, recovery, repair, restoring
//!   a backup, the data-directory lock.
//! - `selection`: the core: `health`, `rotation`, `weighted`, `pool`, `sticky` (map, index, slab, timing wheel, the view a send reads before the lock), `capacity` (sender
//!   rates, queues, daily caps), `compliance` (disabled profiles,
//!   destinations, opt-outs), `rules` (the selection order), `profile` (one
//!   profile's state).
//! - `cluster` (feature `cluster`, on with `server`): high availability on
//!   etcd: a node follows the leader's log, campaigns, leads by committing
//!   each journal batch to etcd (fenced), keeps the log short, and takes the
//!   leader's snapshot when too far behind (`docs/CLUSTER.md`). Its etcd
//!   and node-to-node clients are on ureq with rustls (TLS, client
//!   certificates, etcd's user authentication).
//! - `geo`: where a phone number is: its region, its area code's state or
//!   province (tables generated from libphonenumber's metadata).
//! - `settings` ([`PoolSettings`], declared once), `resources` (the API's
//!   resources: profile and number records, their updates and filters), `number` ([`PhoneNumber`]), `ids` ([`ProfileId`]),
//!   `clock` ([`Clock`], [`Timestamp`], the engine's [`CoarseClock`] and the
//!   precise [`SystemClock`]), `duration`, `error` ([`Error`],
//!   [`StartError`]).
//! - `server` (feature `server`, on by default): `numpool serve`'s
//!   configuration, its log subscriber and the HTTP API (with TLS and the
//!   access log). Build with `default-features = false` to embed the engine
//!   without actix-web, clap, toml, ed25519, ureq or rustls.
//!
//! The library never prints: it emits [`tracing`](https://docs.rs/tracing)
//! events (recovery, snapshots, journal failure and healing, role changes)
//! for the embedding program's subscriber.
//! - `test_util` (feature `test-util`): a manual clock, fault injection and
//!   the sticky profile most tests start from.

#![deny(missing_docs)]
// `pub` means reachable from outside the crate; anything else is `pub(crate)`.
#![warn(unreachable_pub)]
// The engine's replication hooks (applying a leader's log, installing its
// snapshot, the writer's follower and leader modes) serve the `cluster`
// feature and the crate's own tests; the engine-only build (with or
// without `test-util`) carries them unused. Every other build is linted
// for dead code as usual.
#![cfg_attr(not(any(feature = "cluster", test)), allow(dead_code, unused_imports))]

mod clock;
#[cfg(feature = "cluster")]
pub mod cluster;
mod duration;
mod engine;
mod error;
mod geo;
mod ids;
mod journal;
mod number;
mod resources;
mod selection;
mod settings;

#[cfg(feature = "server")]
pub mod server;

/// The README's Rust examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeExamples;
#[cfg(any(test, feature = "test-util"))]
pub mod test_util;

pub use clock::{Clock, CoarseClock, SystemClock, Timestamp};
pub use duration::{parse_duration, DurationError};
pub use engine::{
    BackupReport, Dispatch, Engine, EngineConfig, EngineStats, HistoryRow, ImportReport, Importer,
    Inbound, MappingCursor, MappingPage, OptOutCursor, OptOutPage, Outbound, ProfileCounters,
    RecoveryReport, DEFAULT_STICKY_TTL_SECS,
};
pub use error::{Error, StartError};
pub use ids::ProfileId;
pub use journal::{
    repair, restore, FsyncPolicy, FsyncPolicyError, JournalConfig, MovedSpan, RepairReport,
    RestoreError, RestoreReport,
};
pub use number::{NumberError, PhoneNumber, SenderKind};
pub use resources::{
    CapacityLimits, CapacityUpdate, NewProfile, NumberFilter, NumberRecord, NumberStatus,
    OptOutRecord, ProfileRecord, ProfileUpdate, RemovalPreview,
};
pub use selection::capacity::{CapacityConfig, KindRates, LimitsError};
pub use selection::compliance::{DestinationsError, OptOutKeyword};
pub use selection::health::{DeliveryOutcome, HealthConfig, HealthCounts};
pub use selection::profile::{Capacity, PinError, ProfileStats, StickyMapping};
pub use selection::rules::{ByReason, Eligibility, MappingOutcome, NoSender, Reason, Selection};
pub use selection::sticky::map::ExpireReport;
pub use settings::{PoolSettings, SettingsError, SettingsPatch, SettingsUpdate, MAX_WEIGHT};
