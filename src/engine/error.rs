//! [`EngineError`]: everything an [`Engine`](super::Engine) call can refuse.

use crate::actor::DispatchError;
use crate::profile::PinError;
use crate::select::SelectError;
use crate::settings::SettingsError;

/// Why an engine call failed. Nothing changed when it did.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    #[error("messaging profile not found")]
    UnknownProfile,
    #[error("phone number not found")]
    UnknownNumber,
    #[error("a messaging profile with this id exists")]
    DuplicateProfile,
    /// The profile's mailbox is full: retry later.
    #[error("too many requests for this messaging profile; retry later")]
    Overloaded,
    #[error("the engine is shutting down")]
    ShuttingDown,
    /// A request panicked inside the engine (the engine keeps serving).
    #[error("internal error while handling the request")]
    Internal,
    /// The journal could not write the change, so it is not acknowledged.
    #[error("the change could not be made durable")]
    Journal,
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Select(#[from] SelectError),
    #[error(transparent)]
    Pin(#[from] PinError),
}

impl From<DispatchError> for EngineError {
    fn from(e: DispatchError) -> Self {
        match e {
            DispatchError::UnknownProfile => EngineError::UnknownProfile,
            DispatchError::Overloaded => EngineError::Overloaded,
            DispatchError::Panicked => EngineError::Internal,
            DispatchError::Stopped => EngineError::UnknownProfile,
            DispatchError::Journal => EngineError::Journal,
        }
    }
}
