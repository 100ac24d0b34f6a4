//! Sending: `/v2/messages/number_pool` and `/v2/messages`. numpool decides
//! the sender and records the message as `queued`; it delivers nothing.

use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};

use super::{AppState, Authed, IdempotentReply};
use crate::server::http::body::{self, Fields};
use crate::server::http::encoding::{self, Requested};
use crate::server::http::error::ApiError;
use crate::server::http::views::{self, MessageView, Selected};
use crate::PhoneNumber;
use crate::ProfileId;

/// How the sender is chosen.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SendMode {
    /// By the profile's number pool.
    Pool,
    /// `POST /v2/messages`: `from` if given, else the pool.
    FromOrPool,
}

pub async fn number_pool(
    _: Authed,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    idempotent(&req, payload, &state, SendMode::Pool).await
}

pub async fn send(
    _: Authed,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    idempotent(&req, payload, &state, SendMode::FromOrPool).await
}

/// Applies `Idempotency-Key`: a repeat within 24 h gets the first reply and selects nothing.
async fn idempotent(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    mode: SendMode,
) -> HttpResponse {
    let started = Instant::now();
    let key = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(|k| format!("{}:{k}", req.path()));
    let now = state.engine.now();
    if let Some(key) = &key {
        match state
            .idempotency
            .insert_if_absent(key.clone(), IdempotentReply::InProgress, now)
        {
            None => {}
            Some(IdempotentReply::InProgress) => {
                return ApiError::IdempotencyConflict.error_response()
            }
            Some(IdempotentReply::Done { status, body }) => {
                return HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
                    .content_type("application/json")
                    .body(body);
            }
        }
    }
    let (status, body) = match handle(payload, state, mode).await {
        Ok(record) => (200, format!("{{\"data\":{record}}}")),
        Err(e) => {
            let response = e.error_response();
            let status = response.status().as_u16();
            let body = match actix_web::body::to_bytes(response.into_body()).await {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(_) => String::new(),
            };
            (status, body)
        }
    };
    if let Some(key) = &key {
        // Refusals for load are not remembered: the client should retry.
        let replay = (status != 429 && status != 503).then(|| IdempotentReply::Done {
            status,
            body: body.clone(),
        });
        state.idempotency.set(key, replay);
    }
    state.metrics.send_latency(started.elapsed());
    let mut response = HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::OK));
    if status == 429 {
        response.insert_header(("Retry-After", "1"));
    }
    response.content_type("application/json").body(body)
}

/// The message record (JSON text) of one valid send.
async fn handle(
    payload: web::Payload,
    state: &AppState,
    mode: SendMode,
) -> Result<String, ApiError> {
    let bytes = body::read(payload, state.body_limit).await?;
    let map = body::object(&bytes)?;
    let f = Fields::new(&map, "");

    let to_raw = f.required_str("to")?;
    let to = PhoneNumber::parse_e164(to_raw)
        .map_err(|e| ApiError::InvalidTo(format!("{to_raw:?}: {e}")))?;
    let text = f.str("text")?;
    let media_urls = f.strings("media_urls")?.unwrap_or_default();
    if text.is_none() && media_urls.is_empty() {
        return Err(ApiError::missing("/text"));
    }
    let subject = f.str("subject")?;
    let mms = match f.str("type")? {
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
    let requested = match f.str("encoding")? {
        None => Requested::Auto,
        Some(e) => Requested::parse(e).ok_or_else(|| {
            ApiError::invalid(
                "/encoding",
                format!("encoding must be auto, gsm7 or ucs2, not {e:?}"),
            )
        })?,
    };
    let encoded = encoding::encode(text.unwrap_or_default(), requested).ok_or_else(|| {
        ApiError::invalid(
            "/encoding",
            "the text has characters outside the GSM-7 alphabet",
        )
    })?;
    let webhook_url = f.str("webhook_url")?;
    let webhook_failover_url = f.str("webhook_failover_url")?;
    let from = match mode {
        SendMode::FromOrPool => f.str("from")?,
        SendMode::Pool => None,
    };

    let (profile, sender, selection) = match from {
        Some(raw) => {
            let sender =
                PhoneNumber::parse_sender(raw).map_err(|e| ApiError::number("/from", e))?;
            let profile = state
                .engine
                .owner(sender)
                .ok_or_else(|| ApiError::NoSuchAssociated {
                    detail: format!("{raw} is not a number of any messaging profile"),
                    pointer: "/from".into(),
                })?;
            (
                profile,
                sender,
                Selected {
                    reason: "explicit",
                    mapping: "none",
                },
            )
        }
        None => {
            let raw = f.required_str("messaging_profile_id")?;
            let missing = || ApiError::NoSuchAssociated {
                detail: format!("messaging profile {raw} does not exist"),
                pointer: "/messaging_profile_id".into(),
            };
            let profile = ProfileId::parse(raw).ok_or_else(missing)?;
            let selection = state.engine.send(profile, to).await.map_err(|e| match e {
                crate::Error::UnknownProfile => missing(),
                other => other.into(),
            })?;
            (
                profile,
                selection.sender,
                Selected {
                    reason: selection.reason.api_name(),
                    mapping: selection.mapping.api_name(),
                },
            )
        }
    };
    Ok(views::message_json(&MessageView {
        profile,
        from: sender,
        to,
        text,
        subject,
        media_urls: &media_urls,
        mms,
        encoding: encoded,
        webhook_url,
        webhook_failover_url,
        selection,
        now: state.engine.now(),
    }))
}
