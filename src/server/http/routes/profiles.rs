//! `/v2/messaging_profiles`: create, list, get, patch (merging
//! `number_pool_settings`), delete, and the profile's numbers.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use super::{data, list as page_of, AppState, Authed};
use crate::server::http::body::{self, Fields, Page, Query};
use crate::server::http::error::settings_error;
use crate::server::http::error::ApiError;
use crate::server::http::views;
use crate::ProfileId;
use crate::SettingsUpdate;
use crate::{CapacityLimits, CapacityUpdate, NewProfile, NumberFilter, ProfileUpdate};

/// A profile id from the path; an id that is not a UUID names no profile.
pub fn path_profile(raw: &str) -> Result<ProfileId, ApiError> {
    ProfileId::parse(raw)
        .ok_or_else(|| ApiError::NotFound(format!("messaging profile {raw} not found")))
}

/// `whitelisted_destinations` (its entries are checked by the engine).
fn destinations(f: &Fields<'_>, required: bool) -> Result<Option<Vec<String>>, ApiError> {
    let list = f.strings("whitelisted_destinations")?;
    if list.is_none() && required {
        return Err(ApiError::missing("/whitelisted_destinations"));
    }
    Ok(list)
}

/// A profile as the API shows it, with its opt-out count.
async fn view(state: &AppState, record: &crate::ProfileRecord) -> Result<Value, ApiError> {
    let count = match state.engine.opt_out_count(record.id).await {
        Ok(n) => n,
        // Deleted meanwhile (or being deleted): it has none left.
        Err(crate::Error::UnknownProfile) => 0,
        Err(e) => return Err(e.into()),
    };
    Ok(views::profile(record, count))
}

/// The capacity fields of a profile body (`null` puts a field back to
/// its default). Values are checked by the engine.
fn capacity(f: &Fields<'_>) -> Result<CapacityUpdate, ApiError> {
    let defaults = CapacityLimits::default();
    Ok(CapacityUpdate {
        max_queue_seconds: f
            .nullable_number("max_queue_seconds")?
            .map(|v| v.unwrap_or(defaults.max_queue_seconds)),
        daily_message_limit: f.nullable_count("daily_message_limit")?,
        new_recipients_per_sender_per_day: f.nullable_count("new_recipients_per_sender_per_day")?,
        daily_reset_time_zone: f
            .nullable_str("daily_reset_time_zone")?
            .map(|v| v.unwrap_or(defaults.daily_reset_time_zone)),
    })
}

pub async fn create(
    _: Authed,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let bytes = body::read(payload, state.body_limit).await?;
    let map = body::object(&bytes)?;
    let f = Fields::new(&map, "");
    let name = f.required_str("name")?;
    if name.trim().is_empty() {
        return Err(ApiError::invalid("/name", "name must not be empty"));
    }
    let new = NewProfile {
        id: None,
        name: name.to_string(),
        enabled: f.bool("enabled", false)?.unwrap_or(true),
        whitelisted_destinations: destinations(&f, true)?.unwrap_or_default(),
        webhook_url: f.str("webhook_url")?.map(str::to_string),
        webhook_failover_url: f.str("webhook_failover_url")?.map(str::to_string),
        number_pool_settings: SettingsUpdate::from_json(f.raw("number_pool_settings"))
            .map_err(settings_error)?,
        capacity: capacity(&f)?.apply(&CapacityLimits::default()),
    };
    let record = state.engine.create_profile(new).await?;
    Ok(data(view(&state, &record).await?))
}

pub async fn list(
    _: Authed,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let query = Query::parse(req.query_string());
    let page = Page::from_query(&query)?;
    let eq = query.get("filter[name][eq]").map(str::to_string);
    let contains = query.get("filter[name][contains]").map(str::to_string);
    // A filter looks at every profile: off the HTTP worker's thread.
    let engine = state.engine.clone();
    let (records, total) = web::block(move || {
        engine.profiles_page(page.offset(), page.size, |p| {
            eq.as_deref().is_none_or(|n| p.name == n)
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

pub async fn get(
    _: Authed,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let record = state.engine.profile(path_profile(&id)?)?;
    Ok(data(view(&state, &record).await?))
}

pub async fn update(
    _: Authed,
    id: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path_profile(&id)?;
    state.engine.profile(id)?;
    let bytes = body::read(payload, state.body_limit).await?;
    let map = body::object(&bytes)?;
    let f = Fields::new(&map, "");
    let name = f.str("name")?;
    if name.is_some_and(|n| n.trim().is_empty()) {
        return Err(ApiError::invalid("/name", "name must not be empty"));
    }
    let update = ProfileUpdate {
        name: name.map(str::to_string),
        enabled: f.bool("enabled", false)?,
        whitelisted_destinations: destinations(&f, false)?,
        webhook_url: f.nullable_str("webhook_url")?,
        webhook_failover_url: f.nullable_str("webhook_failover_url")?,
        number_pool_settings: SettingsUpdate::from_json(f.raw("number_pool_settings"))
            .map_err(settings_error)?,
        capacity: capacity(&f)?,
    };
    let record = state.engine.update_profile(id, update).await?;
    Ok(data(view(&state, &record).await?))
}

pub async fn delete(
    _: Authed,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let record = state.engine.delete_profile(path_profile(&id)?).await?;
    // Its opt-outs went with it.
    Ok(data(views::profile(&record, 0)))
}

pub async fn phone_numbers(
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
