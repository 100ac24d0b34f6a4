//! Sending: `/v2/messages/number_pool` and `/v2/messages`. numpool decides
//! the sender and records the message as `queued`; it delivers nothing.

use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};

use super::{AppState, Authed, IdempotentReply};
use crate::server::http::body;
use crate::server::http::encoding::{self, Requested};
use crate::server::http::error::ApiError;
use crate::server::http::requests::SendBody;
use crate::server::http::ttl_cache::Claim;
use crate::server::http::views::{self, MessageView};
use crate::ProfileId;
use crate::{Outbound, PhoneNumber};

/// How the sender is chosen.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SendMode {
    /// By the profile's number pool.
    Pool,
    /// `POST /v2/messages`: `from` if given, else the pool.
    FromOrPool,
}

pub(super) async fn number_pool(
    _: Authed,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    idempotent(&req, payload, &state, SendMode::Pool).await
}

pub(super) async fn send(
    _: Authed,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    idempotent(&req, payload, &state, SendMode::FromOrPool).await
}

/// The longest `Idempotency-Key` accepted.
pub(super) const MAX_IDEMPOTENCY_KEY: usize = 255;

/// How a request ended, for the idempotency cache: executed requests are
/// remembered; requests that never started (unreadable or invalid bodies)
/// or were refused for load are not, so a retry can succeed.
struct Outcome {
    /// The reply's body (JSON text), or the error.
    response: Result<String, ApiError>,
    executed: bool,
}

/// A reply as status and JSON text.
async fn reply_parts(response: Result<String, ApiError>) -> (u16, String) {
    match response {
        Ok(body) => (200, body),
        Err(e) => {
            let response = e.error_response();
            let status = response.status().as_u16();
            let body = match actix_web::body::to_bytes(response.into_body()).await {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(_) => String::new(),
            };
            (status, body)
        }
    }
}

fn json_reply(status: u16, body: String) -> HttpResponse {
    let mut response = HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::OK));
    if status == 429 || status == 503 {
        response.insert_header(("Retry-After", "1"));
    }
    response.content_type("application/json").body(body)
}

/// The fingerprint of a request body, to tell a retry from a reuse of its key.
fn fingerprint(path: &str, body: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(path.as_bytes());
    h.update([0]);
    h.update(body);
    h.finalize().into()
}

/// Applies `Idempotency-Key` (the rules of payment APIs): a repeat of an
/// executed request within 24 h gets the first reply and selects nothing;
/// the same key with another body is refused (422), and while the first is
/// running (409). Only requests read whole and executed are remembered.
async fn idempotent(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    mode: SendMode,
) -> HttpResponse {
    let started = Instant::now();
    let key = match req.headers().get("idempotency-key") {
        None => None,
        Some(v) => match v.to_str() {
            Ok(k)
                if !k.is_empty()
                    && k.len() <= MAX_IDEMPOTENCY_KEY
                    && k.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                Some(format!("{}:{k}", req.path()))
            }
            _ => {
                return ApiError::bad_header(
                    "Idempotency-Key",
                    format!(
                    "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
                ),
                )
                .error_response()
            }
        },
    };
    // The body is read before the key is looked at: an upload that breaks
    // off is answered but never remembered.
    let bytes = match body::read(payload, state.body_limit).await {
        Ok(b) => b,
        Err(e) => return e.error_response(),
    };
    let now = state.engine.now();
    let print = key.as_ref().map(|_| fingerprint(req.path(), &bytes));
    // The claim forgets the key if this request ends without an answer to
    // remember (the client went away mid-request, and actix dropped it).
    let mut pending = None;
    if let (Some(key), Some(print)) = (&key, print) {
        match state
            .idempotency
            .claim(key, IdempotentReply::InProgress, now)
        {
            Claim::Fresh(claim) => pending = Some(claim),
            Claim::Taken(IdempotentReply::InProgress) => {
                return ApiError::IdempotencyConflict.error_response()
            }
            Claim::Taken(IdempotentReply::Done {
                print: first,
                status,
                body,
            }) => {
                if first != print {
                    return ApiError::IdempotencyMismatch.error_response();
                }
                return json_reply(status, body);
            }
        }
    }
    let Outcome { response, executed } = handle(&bytes, state, mode).await;
    let (status, body) = reply_parts(response).await;
    if let (Some(pending), Some(print)) = (pending.take(), print) {
        let remember = executed && status != 429 && status != 503;
        let replay = remember.then(|| IdempotentReply::Done {
            print,
            status,
            body: body.clone(),
        });
        pending.settle(replay);
    }
    state.metrics.send_latency(started.elapsed());
    json_reply(status, body)
}

/// Reads and runs one send: `executed` says whether it reached the engine.
async fn handle(bytes: &[u8], state: &AppState, mode: SendMode) -> Outcome {
    let request = match parse(bytes, mode) {
        Ok(r) => r,
        Err(e) => {
            return Outcome {
                response: Err(e),
                executed: false,
            }
        }
    };
    let target = match resolve(&request, state) {
        Ok(t) => t,
        Err(e) => {
            return Outcome {
                response: Err(e),
                executed: false,
            }
        }
    };
    Outcome {
        response: execute(&request, target, state).await,
        executed: true,
    }
}

/// A send, read and checked.
struct SendRequest {
    to: PhoneNumber,
    /// The explicit sender of `POST /v2/messages`, as given.
    from: Option<String>,
    profile: Option<String>,
    text: Option<String>,
    subject: Option<String>,
    media_urls: Vec<String>,
    mms: bool,
    encoding: encoding::Encoded,
    webhook_url: Option<String>,
    webhook_failover_url: Option<String>,
}

/// Reads a send's body; every error here is the client's, before anything runs.
fn parse(bytes: &[u8], mode: SendMode) -> Result<SendRequest, ApiError> {
    let b: SendBody = body::json(bytes)?;
    let to_raw = b.to.as_deref().ok_or_else(|| ApiError::missing("/to"))?;
    let to = PhoneNumber::parse_e164(to_raw)
        .map_err(|e| ApiError::InvalidTo(format!("{to_raw:?}: {e}")))?;
    let media_urls = b.media_urls.unwrap_or_default();
    if b.text.is_none() && media_urls.is_empty() {
        return Err(ApiError::missing("/text"));
    }
    let mms = match b.kind.as_deref() {
        None => !media_urls.is_empty(),
        Some("SMS") => false,
        Some("MMS") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "/type",
                format!("type must be SMS or MMS, not {other:?}"),
            ))
        }
    };
    if mms && media_urls.is_empty() {
        return Err(ApiError::missing("/media_urls"));
    }
    let requested = match b.encoding.as_deref() {
        None => Requested::Auto,
        Some(e) => Requested::parse(e).ok_or_else(|| {
            ApiError::invalid(
                "/encoding",
                format!("encoding must be auto, gsm7 or ucs2, not {e:?}"),
            )
        })?,
    };
    let mut encoding = encoding::encode(b.text.as_deref().unwrap_or_default(), requested)
        .ok_or_else(|| {
            ApiError::invalid(
                "/encoding",
                "the text has characters outside the GSM-7 alphabet",
            )
        })?;
    if mms {
        // An MMS goes as one message whatever its text.
        encoding.parts = 1;
    } else if encoding.parts > encoding::MAX_PARTS {
        return Err(ApiError::invalid(
            "/text",
            format!(
                "the text takes {} parts in {}; an SMS takes at most {}",
                encoding.parts,
                encoding.name,
                encoding::MAX_PARTS
            ),
        ));
    }
    let from = match mode {
        SendMode::FromOrPool => b.from,
        SendMode::Pool => None,
    };
    let profile = match (&from, b.messaging_profile_id) {
        (None, None) => return Err(ApiError::missing("/messaging_profile_id")),
        (_, profile) => profile,
    };
    Ok(SendRequest {
        to,
        from,
        profile,
        text: b.text,
        subject: b.subject,
        media_urls,
        mms,
        encoding,
        webhook_url: b.webhook_url,
        webhook_failover_url: b.webhook_failover_url,
    })
}

/// Where a send goes: an explicit sender (and its profile), or a pool.
enum Target {
    From(PhoneNumber, ProfileId),
    Pool(ProfileId),
}

/// Resolves the sender or profile a send names; errors here mean the
/// request never ran (it is not remembered under its Idempotency-Key).
fn resolve(r: &SendRequest, state: &AppState) -> Result<Target, ApiError> {
    match &r.from {
        Some(raw) => {
            let sender =
                PhoneNumber::parse_sender(raw).map_err(|e| ApiError::number("/from", e))?;
            let profile = state.engine.owner(sender).ok_or_else(|| {
                ApiError::no_such(
                    "/from",
                    format!("{raw} is not a number of any messaging profile"),
                )
            })?;
            Ok(Target::From(sender, profile))
        }
        None => {
            let raw = r.profile.as_deref().unwrap_or_default();
            ProfileId::parse(raw)
                .filter(|p| state.engine.profile(*p).is_ok())
                .map(Target::Pool)
                .ok_or_else(|| missing_profile(raw))
        }
    }
}

fn missing_profile(raw: &str) -> ApiError {
    ApiError::no_such(
        "/messaging_profile_id",
        format!("messaging profile {raw} does not exist"),
    )
}

/// Runs a send on the engine; the reply's body (the message record in
/// its envelope, JSON text) on success.
async fn execute(r: &SendRequest, target: Target, state: &AppState) -> Result<String, ApiError> {
    let message = Outbound::to(r.to).parts(r.encoding.parts);
    let (profile, message) = match target {
        Target::From(sender, profile) => (profile, message.from_sender(sender)),
        Target::Pool(profile) => (profile, message),
    };
    let selection = state.engine.send(profile, message).await.map_err(|e| {
        state.metrics.refused(&e);
        match e {
            crate::Error::UnknownProfile => {
                missing_profile(r.profile.as_deref().unwrap_or_default())
            }
            other => other.into(),
        }
    })?;
    state.metrics.selected(&selection);
    Ok(views::message_reply_json(&MessageView {
        profile,
        from: selection.sender,
        to: r.to,
        text: r.text.as_deref(),
        subject: r.subject.as_deref(),
        media_urls: &r.media_urls,
        mms: r.mms,
        encoding: r.encoding,
        webhook_url: r.webhook_url.as_deref(),
        webhook_failover_url: r.webhook_failover_url.as_deref(),
        selection: &selection,
        now: state.engine.now(),
    }))
}
