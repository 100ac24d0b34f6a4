//! Opt-outs: list, get, set (opt a recipient out through the API) and
//! remove (opt back in).

use actix_web::{web, HttpRequest, HttpResponse};

use super::mappings::mapping_path as recipient_path;
use super::profiles::path_profile;
use super::{data, list as page_of, AppState, Authed};
use crate::server::http::body::{Page, Query};
use crate::server::http::error::ApiError;
use crate::server::http::views;
use crate::PhoneNumber;

fn not_opted_out(to: PhoneNumber) -> ApiError {
    ApiError::NotFound(format!("{to} has not opted out of this messaging profile"))
}

pub async fn list(
    _: Authed,
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let profile = path_profile(&id)?;
    let page = Page::from_query(&Query::parse(req.query_string()))?;
    let (records, total) = state
        .engine
        .opt_outs_page(profile, page.offset(), page.size)
        .await?;
    let items = records.iter().map(views::opt_out).collect();
    Ok(page_of(items, page.meta(total)))
}

pub async fn get(
    _: Authed,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (profile, to) = recipient_path(path)?;
    let record = state
        .engine
        .opt_out_of(profile, to)
        .await?
        .ok_or_else(|| not_opted_out(to))?;
    Ok(data(views::opt_out(&record)))
}

pub async fn put(
    _: Authed,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (profile, to) = recipient_path(path)?;
    let record = state.engine.opt_out(profile, to).await?;
    Ok(data(views::opt_out(&record)))
}

pub async fn delete(
    _: Authed,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (profile, to) = recipient_path(path)?;
    let record = state
        .engine
        .opt_in(profile, to)
        .await?
        .ok_or_else(|| not_opted_out(to))?;
    Ok(data(views::opt_out(&record)))
}
