//! [`Error`]: everything a call of the embedding API can refuse, and
//! [`StartError`]: why an engine could not start.

use std::path::PathBuf;
use std::time::Duration;

use crate::number::PhoneNumber;
use crate::selection::capacity::LimitsError;
use crate::selection::compliance::DestinationsError;
use crate::selection::profile::PinError;
use crate::selection::rules::NoSender;
use crate::settings::SettingsError;

/// Why an [`Engine`](crate::Engine) call failed. Nothing changed when it did.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// No messaging profile has this id.
    #[error("messaging profile not found")]
    UnknownProfile,
    /// The engine has never seen this number.
    #[error("phone number not found")]
    UnknownNumber,
    /// `NewProfile::id` names a profile that exists.
    #[error("a messaging profile with this id exists")]
    DuplicateProfile,
    /// The profile has as many requests waiting as its bound allows: retry later.
    #[error("too many requests for this messaging profile; retry later")]
    Overloaded,
    /// [`Engine::shutdown`](crate::Engine::shutdown) was called.
    #[error("the engine is shutting down")]
    ShuttingDown,
    /// A request panicked inside the engine (the engine keeps serving).
    #[error("internal error while handling the request")]
    Internal,
    /// The journal cannot write: the change was refused and left no trace.
    /// Writing resumes by itself once the journal can write again.
    #[error("the change could not be made durable; retry later")]
    Unavailable,
    /// Invalid `number_pool_settings`.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// Invalid capacity settings (profile caps, or a number's rate).
    #[error(transparent)]
    Limits(#[from] LimitsError),
    /// No sender could be chosen; the cause says why.
    #[error(transparent)]
    NoSender(#[from] NoSender),
    /// The sender's queue would make the message wait longer than the
    /// profile's `max_queue_seconds`: nothing was reserved or mapped.
    #[error("sender queue full: {sender} would make the message wait {:.1} s", wait.as_secs_f64())]
    QueueFull {
        /// The sender (the recipient's sticky sender, the one chosen, or the one named).
        sender: PhoneNumber,
        /// How long the message would have waited.
        wait: Duration,
    },
    /// The profile sent its `daily_message_limit` today.
    #[error("daily message limit reached")]
    DailyLimit,
    /// The profile is switched off (`enabled: false`): nothing is sent.
    #[error("the messaging profile is disabled")]
    ProfileDisabled,
    /// The recipient's region is not in the profile's `whitelisted_destinations`.
    #[error("destination not allowed: {}", region.as_deref().unwrap_or("the recipient has no region"))]
    DestinationNotAllowed {
        /// The recipient's region (ISO 3166-1 alpha-2), if it has one.
        region: Option<String>,
    },
    /// The recipient opted out of the profile (texted STOP or the like).
    #[error("the recipient opted out of this messaging profile")]
    OptedOut,
    /// A `whitelisted_destinations` entry is not a region code.
    #[error(transparent)]
    Destinations(#[from] DestinationsError),
    /// The sender named for a message is not in the profile's pool.
    #[error("the sender is not a number of this messaging profile")]
    NotInPool,
    /// A mapping could not be pinned.
    #[error(transparent)]
    Pin(#[from] PinError),
}

/// Why an engine could not start. No record was changed or dropped (damage
/// found is kept in side files, see the variants).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Reading or creating the data directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Another process holds the data directory.
    #[error("the data directory {dir} is in use by process {holder}")]
    Locked {
        /// The directory.
        dir: PathBuf,
        /// What the lock file says of its holder (its pid, or "unknown").
        holder: String,
    },
    /// A journal or snapshot file of a format this version cannot read.
    #[error("{path}: {reason}; this numpool cannot read it (nothing was changed)")]
    UnknownFormat {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A log is damaged before valid records: start-up stops rather than
    /// discard them. `numpool repair` moves the damaged bytes aside.
    #[error("{path}: damaged record at byte {offset}, followed by valid records; nothing was changed. Run `numpool repair --data-dir {dir}` to move the damaged bytes to a side file and start from what is intact")]
    Damaged {
        /// The log segment.
        path: PathBuf,
        /// Where the damage starts.
        offset: u64,
        /// The data directory.
        dir: PathBuf,
    },
    /// `repair` was given a data directory that does not exist.
    #[error("{dir}: there is no such data directory")]
    NoDataDir {
        /// The directory.
        dir: PathBuf,
    },
    /// The actor runtime could not start.
    #[error("the actor runtime failed to start: {0}")]
    Runtime(String),
}

impl StartError {
    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StartError::Io {
            path: path.into(),
            source,
        }
    }
}
