//! Phone number messaging settings, on the current paths
//! (`/v2/phone_numbers/{id}/messaging`, record type `messaging_settings`)
//! and the older ones (`/v2/messaging_phone_numbers`, `messaging_phone_number`).

use actix_web::{web, HttpRequest, HttpResponse};

use super::{data, list as page_of, AppState, Authed};
use crate::selection::capacity::check_rate;
use crate::server::http::body::{self, Page, Query};
use crate::server::http::error::ApiError;
use crate::server::http::requests::NumberBody;
use crate::server::http::views;
use crate::ProfileId;
use crate::{NumberFilter, PhoneNumber, SenderKind};

const CURRENT: &str = "messaging_settings";
const OLDER: &str = "messaging_phone_number";

fn lookup(state: &AppState, raw: &str) -> Result<PhoneNumber, ApiError> {
    body::path_number(raw, |id| state.engine.number_by_id(id).map(|r| r.number))
}

async fn get(
    state: &AppState,
    raw: &str,
    record_type: &'static str,
) -> Result<HttpResponse, ApiError> {
    let status = state.engine.number(lookup(state, raw)?).await?;
    Ok(data(views::number(&status, record_type)))
}

async fn update(
    state: &AppState,
    raw: &str,
    payload: web::Payload,
    record_type: &'static str,
) -> Result<HttpResponse, ApiError> {
    let number = lookup(state, raw).map_err(|_| {
        let plain = body::decode_plus(raw);
        ApiError::path_number(
            "{id}",
            PhoneNumber::parse_sender(&plain)
                .err()
                .unwrap_or(crate::NumberError::Empty),
        )
    })?;
    let bytes = body::read(payload, state.body_limit).await?;
    let b: NumberBody = body::json(&bytes)?;
    // Every field is checked before anything changes.
    let rate = b.messages_per_second.into_option();
    if let Some(r) = rate {
        check_rate(r).map_err(|e| ApiError::invalid("/messages_per_second", e.to_string()))?;
    }
    match b.messaging_profile_id.as_deref() {
        // Absent or null: keep.
        None => {
            state
                .engine
                .number_record(number)
                .ok_or_else(|| ApiError::NotFound(format!("phone number {number} not found")))?;
        }
        Some("") => {
            state.engine.assign_number(number, None).await?;
        }
        Some(id) => {
            let missing = || {
                ApiError::no_such(
                    "/messaging_profile_id",
                    format!("messaging profile {id} does not exist"),
                )
            };
            let profile = ProfileId::parse(id).ok_or_else(missing)?;
            state.engine.profile(profile).map_err(|_| missing())?;
            state.engine.assign_number(number, Some(profile)).await?;
        }
    }
    if let Some(rate) = rate {
        state.engine.set_rate(number, rate).await?;
    }
    get(state, &number.to_string(), record_type).await
}

async fn list(
    state: &AppState,
    req: &HttpRequest,
    record_type: &'static str,
) -> Result<HttpResponse, ApiError> {
    let query = Query::parse(req.query_string());
    let page = Page::from_query(&query)?;
    let profile = match query.get("filter[messaging_profile_id]") {
        None => None,
        Some(raw) => Some(ProfileId::parse(raw).ok_or_else(|| {
            ApiError::invalid_parameter(
                "filter[messaging_profile_id]",
                "not a messaging profile id",
            )
        })?),
    };
    let kind = match query.get("filter[type]") {
        None => None,
        Some(t) => Some(SenderKind::from_api_name(t).ok_or_else(|| {
            ApiError::invalid_parameter(
                "filter[type]",
                "filter[type] must be longcode, tollfree or shortcode",
            )
        })?),
    };
    let descending = match query.get("sort[phone_number]") {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => {
            return Err(ApiError::invalid_parameter(
                "sort[phone_number]",
                "sort[phone_number] must be asc or desc",
            ))
        }
    };
    // A comma-separated list; a listed value that is no phone number
    // matches nothing.
    let mut numbers = Vec::new();
    if let Some(raw) = query.get("filter[phone_number]") {
        numbers.extend(raw.split(',').filter_map(body::query_number));
        if numbers.is_empty() {
            return Ok(page_of(Vec::<views::Number>::new(), page.meta(0)));
        }
    }
    let contains = query
        .get("filter[phone_number][contains]")
        .map(body::query_digits);
    if profile.is_some_and(|p| state.engine.profile(p).is_err()) {
        return Ok(page_of(Vec::<views::Number>::new(), page.meta(0)));
    }
    let filter = NumberFilter {
        profile,
        kind,
        numbers,
        contains,
        descending,
    };
    let (numbers, total) = state
        .engine
        .numbers_page(filter, page.offset(), page.size)
        .await?;
    let items = numbers
        .iter()
        .map(|n| views::number(n, record_type))
        .collect();
    Ok(page_of(items, page.meta(total)))
}

pub(super) async fn get_current(
    _: Authed,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    get(&state, &id, CURRENT).await
}

pub(super) async fn get_older(
    _: Authed,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    get(&state, &id, OLDER).await
}

pub(super) async fn removal_preview(
    _: Authed,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let status = state.engine.number(lookup(&state, &id)?).await?;
    Ok(data(views::removal_preview(&status)))
}

pub(super) async fn update_current(
    _: Authed,
    id: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    update(&state, &id, payload, CURRENT).await
}

pub(super) async fn update_older(
    _: Authed,
    id: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    update(&state, &id, payload, OLDER).await
}

pub(super) async fn list_current(
    _: Authed,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    list(&state, &req, CURRENT).await
}

pub(super) async fn list_older(
    _: Authed,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    list(&state, &req, OLDER).await
}
