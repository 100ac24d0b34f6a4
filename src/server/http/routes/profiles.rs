//! `/v2/messaging_profiles`: create, list, get, patch (merging
//! `number_pool_settings`), delete, and the profile's numbers.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{Number, Value};

use super::{data, list as page_of, AppState, Authed};
use crate::server::http::body::{self, Page, Query};
use crate::server::http::error::settings_error;
use crate::server::http::error::ApiError;
use crate::server::http::requests::{DistinctKeys, NewProfileBody, Patch, ProfileBody};
use crate::server::http::views;
use crate::ProfileId;
use crate::SettingsUpdate;
use crate::{CapacityLimits, CapacityUpdate, NewProfile, NumberFilter, ProfileUpdate};

/// A profile id from the path; an id that is not a UUID names no profile.
pub(super) fn path_profile(raw: &str) -> Result<ProfileId, ApiError> {
    ProfileId::parse(raw)
        .ok_or_else(|| ApiError::NotFound(format!("messaging profile {raw} not found")))
}

/// A profile as the API shows it, with its opt-out count.
async fn view(state: &AppState, record: &crate::ProfileRecord) -> Result<views::Profile, ApiError> {
    let count = match state.engine.opt_out_count(record.id).await {
        Ok(n) => n,
        // Deleted meanwhile (or being deleted): it has none left.
        Err(crate::Error::UnknownProfile) => 0,
        Err(e) => return Err(e.into()),
    };
    Ok(views::profile(record, count))
}

/// A whole count of a profile body (`daily_message_limit`...): a number
/// that is not a whole number from 0 to 2^32 - 1 is an invalid value (422).
fn count(field: &str, value: Patch<Number>) -> Result<Option<Option<u32>>, ApiError> {
    match value.into_option() {
        None => Ok(None),
        Some(None) => Ok(Some(None)),
        // A whole number written with a fraction (`1000.0`) is that number.
        Some(Some(n)) => match n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                    .map(|f| f as u64)
            })
            .and_then(|n| u32::try_from(n).ok())
        {
            Some(n) => Ok(Some(Some(n))),
            None => Err(ApiError::invalid(
                &format!("/{field}"),
                format!(
                    "{field} must be a whole number from 1 to {}, or null, not {n}",
                    u32::MAX
                ),
            )),
        },
    }
}

/// The capacity fields of a profile body (`null` puts a field back to
/// its default). Values are checked by the engine.
fn capacity(b: &mut ProfileBody) -> Result<CapacityUpdate, ApiError> {
    let defaults = CapacityLimits::default();
    Ok(CapacityUpdate {
        max_queue_seconds: std::mem::take(&mut b.max_queue_seconds)
            .into_option()
            .map(|v| v.unwrap_or(defaults.max_queue_seconds)),
        daily_message_limit: count(
            "daily_message_limit",
            std::mem::take(&mut b.daily_message_limit),
        )?,
        new_recipients_per_sender_per_day: count(
            "new_recipients_per_sender_per_day",
            std::mem::take(&mut b.new_recipients_per_sender_per_day),
        )?,
        daily_reset_time_zone: std::mem::take(&mut b.daily_reset_time_zone)
            .into_option()
            .map(|v| v.unwrap_or(defaults.daily_reset_time_zone)),
    })
}

/// `number_pool_settings` of a profile body: absent keeps, `null` turns the
/// pool off, an object merges.
fn settings(value: &Patch<DistinctKeys>) -> Result<SettingsUpdate, ApiError> {
    let raw = match value {
        Patch::Absent => None,
        Patch::Null => Some(&Value::Null),
        Patch::Value(v) => Some(&v.0),
    };
    SettingsUpdate::from_json(raw).map_err(settings_error)
}

/// A name given in a body: not blank.
fn checked_name(name: Option<String>) -> Result<Option<String>, ApiError> {
    if name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return Err(ApiError::invalid("/name", "name must not be empty"));
    }
    Ok(name)
}

pub(super) async fn create(
    _: Authed,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let bytes = body::read(payload, state.body_limit).await?;
    let NewProfileBody(mut b) = body::json(&bytes)?;
    let name = checked_name(b.name.take())?.ok_or_else(|| ApiError::missing("/name"))?;
    let destinations = b
        .whitelisted_destinations
        .take()
        .ok_or_else(|| ApiError::missing("/whitelisted_destinations"))?;
    let new = NewProfile {
        id: None,
        name,
        enabled: b.enabled.unwrap_or(true),
        whitelisted_destinations: destinations,
        webhook_url: b.webhook_url.clone().into_option().flatten(),
        webhook_failover_url: b.webhook_failover_url.clone().into_option().flatten(),
        number_pool_settings: settings(&b.number_pool_settings)?,
        capacity: capacity(&mut b)?.apply(&CapacityLimits::default()),
    };
    let record = state.engine.create_profile(new).await?;
    Ok(data(view(&state, &record).await?))
}

pub(super) async fn list(
    _: Authed,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let query = Query::parse(req.query_string());
    let page = Page::from_query(&query)?;
    // `filter[name]` is the hosted service's other spelling of `[eq]`;
    // given both, a profile matches both.
    let eq: Vec<String> = ["filter[name][eq]", "filter[name]"]
        .iter()
        .filter_map(|k| query.get(k).map(str::to_string))
        .collect();
    let contains = query.get("filter[name][contains]").map(str::to_string);
    // A filter looks at every profile: off the HTTP worker's thread.
    let engine = state.engine.clone();
    let (records, total) = web::block(move || {
        engine.profiles_page(page.offset(), page.size, |p| {
            eq.iter().all(|n| p.name == *n)
                && contains.as_deref().is_none_or(|n| p.name.contains(n))
        })
    })
    .await
    .map_err(|_| ApiError::Internal)?;
    let mut items = Vec::with_capacity(records.len());
    for r in &records {
        items.push(view(&state, r).await?);
    }
    Ok(page_of(items, page.meta(total)))
}

pub(super) async fn get(
    _: Authed,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let record = state.engine.profile(path_profile(&id)?)?;
    Ok(data(view(&state, &record).await?))
}

pub(super) async fn update(
    _: Authed,
    id: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path_profile(&id)?;
    state.engine.profile(id)?;
    let bytes = body::read(payload, state.body_limit).await?;
    let mut b: ProfileBody = body::json(&bytes)?;
    let update = ProfileUpdate {
        name: checked_name(b.name.take())?,
        enabled: b.enabled,
        whitelisted_destinations: b.whitelisted_destinations.take(),
        webhook_url: b.webhook_url.clone().into_option(),
        webhook_failover_url: b.webhook_failover_url.clone().into_option(),
        number_pool_settings: settings(&b.number_pool_settings)?,
        capacity: capacity(&mut b)?,
    };
    let record = state.engine.update_profile(id, update).await?;
    Ok(data(view(&state, &record).await?))
}

pub(super) async fn delete(
    _: Authed,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let record = state.engine.delete_profile(path_profile(&id)?).await?;
    // Its opt-outs went with it.
    Ok(data(views::profile(&record, 0)))
}

pub(super) async fn phone_numbers(
    _: Authed,
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path_profile(&id)?;
    let page = Page::from_query(&Query::parse(req.query_string()))?;
    let filter = NumberFilter {
        profile: Some(id),
        ..Default::default()
    };
    let (numbers, total) = state
        .engine
        .numbers_page(filter, page.offset(), page.size)
        .await?;
    let items = numbers
        .iter()
        .map(|n| views::number(n, "messaging_settings"))
        .collect();
    Ok(page_of(items, page.meta(total)))
}
