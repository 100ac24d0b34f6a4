//! Opt-outs: list, get, set (opt a recipient out through the API) and
//! remove (opt back in).

use actix_web::{web, HttpRequest, HttpResponse};

use super::profiles::path_profile;
use super::{data, list as page_of, AppState, Authed};
use crate::server::http::body::{Page, Query};
use crate::server::http::error::ApiError;
use crate::server::http::views;
use crate::{OptOutCursor, PhoneNumber};

/// The profile and the recipient of an opt-out path: the recipient is an
/// E.164 number, or a short code (an inbound STOP can come from one), as
/// the webhook takes them, so that every opt-out made can be read and
/// removed.
fn recipient_path(
    path: web::Path<(String, String)>,
) -> Result<(crate::ProfileId, PhoneNumber), ApiError> {
    let (id, to) = path.into_inner();
    let profile = path_profile(&id)?;
    let to = PhoneNumber::parse_sender(&crate::server::http::body::decode_plus(&to))
        .map_err(|e| ApiError::path_number("{to}", e))?;
    Ok((profile, to))
}

fn not_opted_out(to: PhoneNumber) -> ApiError {
    ApiError::NotFound(format!("{to} has not opted out of this messaging profile"))
}

pub(super) async fn list(
    _: Authed,
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let profile = path_profile(&id)?;
    let query = Query::parse(req.query_string());
    let page = Page::from_query(&query)?;
    // A page costs the page: `page[after]` (the `next_page_after` of the
    // page before) goes straight there; `page[number]` N walks N-1 pages
    // first, one lock hold each, letting this worker serve others between.
    let mut after = match query.get("page[after]") {
        None => None,
        Some(raw) => Some(raw.parse::<OptOutCursor>().map_err(|_| {
            ApiError::invalid_parameter("page[after]", "not a cursor this server gave out")
        })?),
    };
    let skip = if after.is_some() { 0 } else { page.number - 1 };
    let mut current = state
        .engine
        .opt_outs_page(profile, after, page.size)
        .await?;
    for _ in 0..skip {
        let Some(next) = current.next else {
            current.opt_outs.clear();
            break;
        };
        after = Some(next);
        crate::engine::yield_now().await;
        current = state
            .engine
            .opt_outs_page(profile, after, page.size)
            .await?;
    }
    let total = state.engine.opt_out_count(profile).await?;
    let mut meta = page.meta(total);
    meta.next_page_after = Some(current.next.map(|c| c.to_string()));
    let items = current.opt_outs.iter().map(views::opt_out).collect();
    Ok(page_of(items, meta))
}

pub(super) async fn get(
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

pub(super) async fn put(
    _: Authed,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (profile, to) = recipient_path(path)?;
    let record = state.engine.opt_out(profile, to).await?;
    Ok(data(views::opt_out(&record)))
}

pub(super) async fn delete(
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
