//! [`ApiError`]: every error the HTTP API answers, in the Telnyx envelope
//! `{"errors": [{"code", "title", "detail", "source": {"pointer"}}]}`
//! (`source.parameter` instead when a query parameter is at fault).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use schemars::JsonSchema;
use serde::Serialize;

use crate::Error;
use crate::NoSender;
use crate::NumberError;
use crate::SettingsError;

/// Every error code the API answers with, in one place: the hosted
/// service's codes, so that clients handle them as they already do.
pub(super) mod code {
    /// A missing or unknown API key.
    pub(crate) const AUTHENTICATION: &str = "10009";
    /// No such resource (or route).
    pub(crate) const NOT_FOUND: &str = "10005";
    /// A malformed request or value; also a method not allowed and an
    /// idempotency conflict.
    pub(crate) const BAD_REQUEST: &str = "10015";
    /// A required parameter is absent.
    pub(crate) const MISSING: &str = "10004";
    /// A phone number that is not E.164.
    pub(crate) const NOT_E164: &str = "10016";
    /// A named resource (a profile) that does not exist.
    pub(crate) const NO_SUCH_ASSOCIATED: &str = "10017";
    /// A `to` the send cannot go to.
    pub(crate) const INVALID_TO: &str = "40310";
    /// Overload: a full mailbox (429).
    pub(crate) const TOO_MANY_REQUESTS: &str = "10011";
    /// Temporarily unavailable (503), and the rare internal error.
    pub(crate) const UNAVAILABLE: &str = "10007";
    /// The one code for "no eligible / no healthy sender" (the title names the cause).
    pub(crate) const NO_SENDER: &str = "40330";
    /// A send to a recipient who opted out.
    pub(crate) const OPTED_OUT: &str = "40300";
    /// A send of a disabled profile.
    pub(crate) const DISABLED: &str = "40311";
    /// A send to a region the profile's `whitelisted_destinations` does not list.
    pub(crate) const DESTINATION: &str = "40319";
    /// A send refused because its sender's queue would exceed `max_queue_seconds`.
    pub(crate) const QUEUE_FULL: &str = "40318";
    /// A send refused because the profile reached its `daily_message_limit`.
    pub(crate) const DAILY_LIMIT: &str = "40320";
}

/// The part of a request an error is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A JSON pointer into the body (`source.pointer`).
    Pointer(String),
    /// A query parameter, by name (`source.parameter`).
    Parameter(String),
    /// Neither (a path segment, a header): the detail names it, and the
    /// reply has no `source`.
    Elsewhere(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Pointer(p) | Source::Parameter(p) | Source::Elsewhere(p) => f.write_str(p),
        }
    }
}

/// An API error; `at` says which field or query parameter is at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    #[error("authentication failed")]
    Unauthorized,
    #[error("resource not found: {0}")]
    NotFound(String),
    #[error("method not allowed here; allowed: {0}")]
    MethodNotAllowed(String),
    #[error("bad request: {detail}")]
    BadRequest { detail: String, at: Source },
    #[error("invalid value: {detail}")]
    InvalidValue { detail: String, at: Source },
    #[error("missing required parameter {at}")]
    Missing { at: Source },
    #[error("phone number must be in +E.164 format: {detail}")]
    NotE164 { detail: String, at: Source },
    #[error("associated resource does not exist: {detail}")]
    NoSuchAssociated { detail: String, at: Source },
    #[error("invalid 'to' address: {0}")]
    InvalidTo(String),
    #[error("{0}")]
    NoSender(NoSender),
    /// A send the profile's rules refuse (caps, compliance): 422 with the
    /// rule's own code.
    #[error("{detail}")]
    Refused {
        code: &'static str,
        title: &'static str,
        detail: String,
    },
    #[error("too many requests")]
    Overloaded,
    #[error("a request with this Idempotency-Key is in progress")]
    IdempotencyConflict,
    #[error("this Idempotency-Key was used with a different request body")]
    IdempotencyMismatch,
    #[error("an event with this id is being counted; retry")]
    EventInProgress,
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// A malformed body field (400).
    pub fn bad_request(pointer: &str, detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            detail: detail.into(),
            at: Source::Pointer(pointer.into()),
        }
    }

    /// A body field with a value out of its range or set (422).
    pub fn invalid(pointer: &str, detail: impl Into<String>) -> Self {
        ApiError::InvalidValue {
            detail: detail.into(),
            at: Source::Pointer(pointer.into()),
        }
    }

    /// A required body field that is absent (422).
    pub fn missing(pointer: &str) -> Self {
        ApiError::Missing {
            at: Source::Pointer(pointer.into()),
        }
    }

    /// A phone number field that is not valid E.164.
    pub fn number(pointer: &str, e: NumberError) -> Self {
        ApiError::NotE164 {
            detail: e.to_string(),
            at: Source::Pointer(pointer.into()),
        }
    }

    /// A body field naming something that does not exist (422).
    pub fn no_such(pointer: &str, detail: impl Into<String>) -> Self {
        ApiError::NoSuchAssociated {
            detail: detail.into(),
            at: Source::Pointer(pointer.into()),
        }
    }

    /// This error, found in a part of the body read on its own, with its
    /// pointer put under `prefix` (the pointer of that part).
    pub fn under(self, prefix: &str) -> Self {
        let move_under = |at: Source| match at {
            Source::Pointer(p) if p == "/" => Source::Pointer(prefix.to_string()),
            Source::Pointer(p) => Source::Pointer(format!("{prefix}{p}")),
            other => other,
        };
        match self {
            ApiError::BadRequest { detail, at } => ApiError::BadRequest {
                detail,
                at: move_under(at),
            },
            ApiError::InvalidValue { detail, at } => ApiError::InvalidValue {
                detail,
                at: move_under(at),
            },
            ApiError::Missing { at } => ApiError::Missing { at: move_under(at) },
            other => other,
        }
    }

    /// A path segment that is not a phone number (no `source`: it is not
    /// in the body).
    pub fn path_number(segment: &str, e: NumberError) -> Self {
        ApiError::NotE164 {
            detail: format!("{segment}: {e}"),
            at: Source::Elsewhere(segment.into()),
        }
    }

    /// A bad request header (no `source`).
    pub fn bad_header(header: &str, detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            detail: detail.into(),
            at: Source::Elsewhere(header.into()),
        }
    }

    /// A query parameter the operation does not take, or a malformed one
    /// (400).
    pub fn bad_parameter(name: &str, detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            detail: detail.into(),
            at: Source::Parameter(name.into()),
        }
    }

    /// A query parameter with a value out of its range or set (422).
    pub fn invalid_parameter(name: &str, detail: impl Into<String>) -> Self {
        ApiError::InvalidValue {
            detail: detail.into(),
            at: Source::Parameter(name.into()),
        }
    }

    /// A query parameter that should hold a phone number and does not.
    pub fn parameter_number(name: &str, e: NumberError) -> Self {
        ApiError::NotE164 {
            detail: e.to_string(),
            at: Source::Parameter(name.into()),
        }
    }

    /// `(status, code, title)` for this error.
    fn parts(&self) -> (StatusCode, &'static str, String) {
        use ApiError::*;
        match self {
            Unauthorized => (
                StatusCode::UNAUTHORIZED,
                code::AUTHENTICATION,
                "Authentication failed".into(),
            ),
            NotFound(_) => (
                StatusCode::NOT_FOUND,
                code::NOT_FOUND,
                "Resource not found".into(),
            ),
            MethodNotAllowed(_) => (
                StatusCode::METHOD_NOT_ALLOWED,
                code::BAD_REQUEST,
                "Method not allowed".into(),
            ),
            BadRequest { .. } => (
                StatusCode::BAD_REQUEST,
                code::BAD_REQUEST,
                "Bad Request".into(),
            ),
            InvalidValue { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                code::BAD_REQUEST,
                "Bad Request".into(),
            ),
            Missing { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                code::MISSING,
                "Missing required parameter".into(),
            ),
            NotE164 { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                code::NOT_E164,
                "Phone number must be in +E.164 format".into(),
            ),
            NoSuchAssociated { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                code::NO_SUCH_ASSOCIATED,
                "Associated resource does not exist".into(),
            ),
            InvalidTo(_) => (
                StatusCode::BAD_REQUEST,
                code::INVALID_TO,
                "Invalid 'to' address".into(),
            ),
            NoSender(cause) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                code::NO_SENDER,
                no_sender_title(*cause).into(),
            ),
            Refused { code, title, .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, code, (*title).into())
            }
            Overloaded => (
                StatusCode::TOO_MANY_REQUESTS,
                code::TOO_MANY_REQUESTS,
                "Too many requests".into(),
            ),
            IdempotencyConflict | EventInProgress => (
                StatusCode::CONFLICT,
                code::BAD_REQUEST,
                "Bad Request".into(),
            ),
            IdempotencyMismatch => (
                StatusCode::UNPROCESSABLE_ENTITY,
                code::BAD_REQUEST,
                "Bad Request".into(),
            ),
            // Temporary (a failover, a journal that cannot write, a
            // shutdown): the title says so; the code stays the hosted
            // service's 10007 that clients already handle.
            Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                code::UNAVAILABLE,
                "Service temporarily unavailable".into(),
            ),
            Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                code::UNAVAILABLE,
                "Unexpected error".into(),
            ),
        }
    }

    /// `source`: `("pointer", "/field")` or `("parameter", "name")`.
    fn source(&self) -> Option<(&'static str, &str)> {
        match self {
            ApiError::BadRequest { at, .. }
            | ApiError::InvalidValue { at, .. }
            | ApiError::Missing { at }
            | ApiError::NotE164 { at, .. }
            | ApiError::NoSuchAssociated { at, .. } => match at {
                Source::Pointer(p) => Some(("pointer", p)),
                Source::Parameter(p) => Some(("parameter", p)),
                Source::Elsewhere(_) => None,
            },
            ApiError::InvalidTo(_) => Some(("pointer", "/to")),
            _ => None,
        }
    }
}

/// The body of every error reply.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Errors {
    /// One error.
    pub errors: [ErrorObject; 1],
}

/// One error of [`Errors`].
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorObject {
    /// The code (docs/API.md lists them).
    #[schemars(regex(pattern = r"^[0-9]+$"))]
    pub code: &'static str,
    /// What kind of error, in a few words.
    pub title: String,
    /// What was wrong, at most 300 characters.
    pub detail: String,
    /// The body field or query parameter at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<ErrorSource>,
}

/// Where in the request an error is (one of the two).
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorSource {
    /// A JSON pointer into the body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// A query parameter's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
}

/// The longest `detail` of an error, in characters (longer ones are cut).
const MAX_DETAIL: usize = 300;
/// The longest `source.pointer` or `source.parameter`, in characters.
const MAX_POINTER: usize = 120;

/// `s` cut to at most `max` characters, the last one `…` when cut.
fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some(_) => {
            let keep = s.char_indices().nth(max - 1).map_or(s.len(), |(at, _)| at);
            format!("{}…", &s[..keep])
        }
    }
}

/// `key` as one token of a JSON pointer (RFC 6901: `~` is `~0`, `/` is
/// `~1`).
pub(super) fn pointer_token(key: &str) -> std::borrow::Cow<'_, str> {
    if key.contains(['~', '/']) {
        key.replace('~', "~0").replace('/', "~1").into()
    } else {
        key.into()
    }
}

/// The title of a "no sender" error: the cause, in a few words.
pub(super) fn no_sender_title(cause: NoSender) -> &'static str {
    match cause {
        NoSender::PoolDisabled => "Number pool is off",
        NoSender::EmptyPool => "No numbers in pool",
        NoSender::BothWeightsZero => "No eligible numbers in pool: both weights are 0",
        NoSender::NoSenderOfWeightedKind => "No eligible numbers in pool",
        NoSender::NoHealthySender => "No healthy numbers in pool",
        NoSender::NewRecipientLimit => {
            "No eligible numbers in pool: every number reached its new recipients for today"
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.parts().0
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.parts().0);
        if matches!(
            self.parts().0,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            response.insert_header(("Retry-After", "1"));
        }
        response.json(self.envelope())
    }
}

impl ApiError {
    /// The error's body: `{"errors": [...]}`.
    pub fn envelope(&self) -> Errors {
        let (_, code, title) = self.parts();
        // What a client sent comes back cut short: a 200 KB value in a
        // request gets an error of a few hundred bytes, not another 200 KB.
        let source = self.source().map(|(kind, at)| {
            let at = Some(cut(at, MAX_POINTER));
            match kind {
                "pointer" => ErrorSource {
                    pointer: at,
                    parameter: None,
                },
                _ => ErrorSource {
                    pointer: None,
                    parameter: at,
                },
            }
        });
        Errors {
            errors: [ErrorObject {
                code,
                title,
                detail: cut(&self.to_string(), MAX_DETAIL),
                source,
            }],
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::UnknownProfile => ApiError::NotFound("messaging profile not found".into()),
            Error::UnknownNumber => ApiError::NotFound("phone number not found".into()),
            Error::DuplicateProfile => {
                ApiError::invalid("/id", "a messaging profile with this id exists")
            }
            Error::Overloaded => ApiError::Overloaded,
            Error::ShuttingDown => ApiError::Unavailable("the server is shutting down".into()),
            Error::Internal => ApiError::Internal,
            Error::Unavailable => {
                ApiError::Unavailable("the change could not be made durable; retry later".into())
            }
            Error::Settings(e) => settings_error(e),
            Error::NoSender(e) => ApiError::NoSender(e),
            Error::Pin(e) => ApiError::invalid("/from", e.to_string()),
            Error::Limits(e) => ApiError::invalid(&format!("/{}", e.field()), e.to_string()),
            Error::QueueFull { sender, wait } => ApiError::Refused {
                code: code::QUEUE_FULL,
                title: "Sender queue full",
                detail: format!(
                    "sender {sender} has a queue of {:.1} s, longer than the profile's max_queue_seconds; nothing was reserved",
                    wait.as_secs_f64()
                ),
            },
            Error::DailyLimit => ApiError::Refused {
                code: code::DAILY_LIMIT,
                title: "Daily message limit reached",
                detail: "the messaging profile sent its daily_message_limit today; the count restarts at midnight in its daily_reset_time_zone".into(),
            },
            Error::ProfileDisabled => ApiError::Refused {
                code: code::DISABLED,
                title: "Messaging profile disabled",
                detail: "the messaging profile is disabled (enabled: false); nothing was sent".into(),
            },
            Error::DestinationNotAllowed { region } => ApiError::Refused {
                code: code::DESTINATION,
                title: "Destination not allowed",
                detail: match region {
                    Some(r) => format!("the recipient's region {r} is not in the profile's whitelisted_destinations"),
                    None => "the recipient's number belongs to no region, and the profile's whitelisted_destinations is not [\"*\"]".into(),
                },
            },
            Error::OptedOut => ApiError::Refused {
                code: code::OPTED_OUT,
                title: "Blocked due to STOP message",
                detail: "the recipient opted out of this messaging profile; a START from them, or DELETE on its opt-out, lets messages go again".into(),
            },
            Error::Destinations(e) => ApiError::invalid(
                &format!("/whitelisted_destinations/{}", e.index),
                e.to_string(),
            ),
            Error::NotInPool => {
                ApiError::no_such("/from", "from is not a number of this messaging profile")
            }
        }
    }
}

/// A rejected `number_pool_settings` value: 400 when malformed (wrong
/// type, null), 422 when invalid.
pub(super) fn settings_error(e: SettingsError) -> ApiError {
    let pointer = if e.field() == "number_pool_settings" {
        "/number_pool_settings".to_string()
    } else {
        format!("/number_pool_settings/{}", pointer_token(e.field()))
    };
    if e.is_malformed() {
        ApiError::bad_request(&pointer, e.to_string())
    } else {
        ApiError::invalid(&pointer, e.to_string())
    }
}
