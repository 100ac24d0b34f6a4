//! Sticky mappings (extension): list, get, pin, break.

use actix_web::{web, HttpRequest, HttpResponse};

use super::profiles::path_profile;
use super::{data, list as page_of, AppState, Authed};
use crate::server::http::body::{self, Fields, Page, Query};
use crate::server::http::error::ApiError;
use crate::server::http::views;
use crate::PhoneNumber;
use crate::ProfileId;

/// The profile and the recipient a mapping path names.
fn mapping_path(path: web::Path<(String, String)>) -> Result<(ProfileId, PhoneNumber), ApiError> {
    let (id, to) = path.into_inner();
    let profile = path_profile(&id)?;
    let to =
        PhoneNumber::parse_e164(&body::decode_plus(&to)).map_err(|e| ApiError::number("/to", e))?;
    Ok((profile, to))
}

fn not_mapped(to: PhoneNumber) -> ApiError {
    ApiError::NotFound(format!("no sticky mapping for {to}"))
}

pub async fn list(
    _: Authed,
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let profile = path_profile(&id)?;
    let query = Query::parse(req.query_string());
    let page = Page::from_query(&query)?;
    let sender = match query.get("filter[sender]") {
        None => None,
        Some(s) => Some(
            PhoneNumber::parse_sender(s.trim())
                .map_err(|e| ApiError::number("/filter[sender]", e))?,
        ),
    };
    let items = state
        .engine
        .mappings(profile)
        .await?
        .iter()
        .filter(|m| sender.is_none_or(|s| m.from == s))
        .map(views::mapping)
        .collect();
    let (items, meta) = page.apply(items);
    Ok(page_of(items, meta))
}

pub async fn get(
    _: Authed,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (profile, to) = mapping_path(path)?;
    let m = state
        .engine
        .mapping(profile, to)
        .await?
        .ok_or_else(|| not_mapped(to))?;
    Ok(data(views::mapping(&m)))
}

pub async fn pin(
    _: Authed,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (profile, to) = mapping_path(path)?;
    state.engine.profile(profile)?;
    let bytes = body::read(payload, state.body_limit).await?;
    let map = body::object(&bytes)?;
    let from_raw = Fields::new(&map, "").required_str("from")?;
    let from = PhoneNumber::parse_sender(from_raw).map_err(|e| ApiError::number("/from", e))?;
    let m = state.engine.pin(profile, to, from).await?;
    Ok(data(views::mapping(&m)))
}

pub async fn delete(
    _: Authed,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (profile, to) = mapping_path(path)?;
    let m = state
        .engine
        .unmap(profile, to)
        .await?
        .ok_or_else(|| not_mapped(to))?;
    Ok(data(views::mapping(&m)))
}
