//! Operations: `/healthz`, `/readyz`, `/metrics`, `/v2/openapi.json`, and
//! the 404 for everything else.

use std::sync::atomic::Ordering;

use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde_json::json;

use super::AppState;
use crate::server::http::error::ApiError;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if !state.ready.load(Ordering::Acquire) {
        return HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "1"))
            .json(json!({ "status": "starting" }));
    }
    match state.engine.journal_error() {
        None => HttpResponse::Ok().json(json!({ "status": "ready" })),
        Some(error) => HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "1"))
            .json(json!({ "status": "journal_unavailable", "detail": error })),
    }
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let stats = state.engine.stats().await;
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render(&stats))
}

pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no route {} {}",
        req.method(),
        req.path()
    )))
}

pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(super::super::openapi::document())
}

/// 405 for a known path asked with a method it does not take.
pub fn method_not_allowed(allowed: &[&str]) -> HttpResponse {
    let allow: Vec<String> = allowed.iter().map(|m| m.to_ascii_uppercase()).collect();
    let allow = allow.join(", ");
    let mut response = ApiError::MethodNotAllowed(allow.clone()).error_response();
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&allow) {
        response
            .headers_mut()
            .insert(actix_web::http::header::ALLOW, value);
    }
    response
}
