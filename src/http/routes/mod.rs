//! The route table and what every handler shares.

mod mappings;
mod messages;
mod numbers;
mod ops;
mod profiles;
mod webhooks;

use std::future::{ready, Ready};
use std::sync::atomic::AtomicBool;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use ed25519_dalek::VerifyingKey;
use serde_json::{json, Value};

use super::auth::ApiKeys;
use super::error::ApiError;
use super::metrics::Metrics;
use super::recent::Recent;
use crate::engine::Engine;

/// A cached reply to a request with an `Idempotency-Key`.
#[derive(Clone)]
pub enum Replay {
    InProgress,
    Done { status: u16, body: String },
}

/// Everything the handlers share.
pub struct AppState {
    pub engine: Engine,
    pub keys: ApiKeys,
    pub webhook_key: Option<VerifyingKey>,
    pub body_limit: usize,
    pub idempotency: Recent<String, Replay>,
    pub seen_events: Recent<String, ()>,
    pub metrics: Metrics,
    /// Recovered and serving.
    pub ready: AtomicBool,
}

/// Proof that the request carried an accepted API key.
pub struct Authed;

impl FromRequest for Authed {
    type Error = ApiError;
    type Future = Ready<Result<Authed, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req
            .app_data::<web::Data<AppState>>()
            .expect("state is registered");
        ready(state.keys.check(req).map(|_| Authed))
    }
}

/// `{"data": value}`.
pub fn data(value: Value) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "data": value }))
}

/// `{"data": [...], "meta": {...}}`.
pub fn list(items: Vec<Value>, meta: Value) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "data": items, "meta": meta }))
}

/// Registers every route under `/v2` plus the operational ones.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Static paths first, the hot send paths before all: the router tries
    // routes in order, and each dynamic one costs a pattern match.
    cfg.route("/healthz", web::get().to(ops::healthz))
        .route("/readyz", web::get().to(ops::readyz))
        .route("/metrics", web::get().to(ops::metrics))
        .service(
            web::scope("/v2")
                .route(
                    "/messages/number_pool",
                    web::post().to(messages::number_pool),
                )
                .route("/messages", web::post().to(messages::send))
                .route("/webhooks/messaging", web::post().to(webhooks::messaging))
                .route("/openapi.json", web::get().to(ops::openapi))
                .route("/messaging_profiles", web::post().to(profiles::create))
                .route("/messaging_profiles", web::get().to(profiles::list))
                .route("/messaging_profiles/{id}", web::get().to(profiles::get))
                .route(
                    "/messaging_profiles/{id}",
                    web::patch().to(profiles::update),
                )
                .route(
                    "/messaging_profiles/{id}",
                    web::delete().to(profiles::delete),
                )
                .route(
                    "/messaging_profiles/{id}/phone_numbers",
                    web::get().to(profiles::phone_numbers),
                )
                .route(
                    "/messaging_profiles/{id}/sticky_mappings",
                    web::get().to(mappings::list),
                )
                .route(
                    "/messaging_profiles/{id}/sticky_mappings/{to}",
                    web::get().to(mappings::get),
                )
                .route(
                    "/messaging_profiles/{id}/sticky_mappings/{to}",
                    web::put().to(mappings::pin),
                )
                .route(
                    "/messaging_profiles/{id}/sticky_mappings/{to}",
                    web::delete().to(mappings::delete),
                )
                .route(
                    "/phone_numbers/messaging",
                    web::get().to(numbers::list_current),
                )
                .route(
                    "/phone_numbers/{id}/messaging",
                    web::get().to(numbers::get_current),
                )
                .route(
                    "/phone_numbers/{id}/messaging",
                    web::patch().to(numbers::update_current),
                )
                .route(
                    "/messaging_phone_numbers",
                    web::get().to(numbers::list_older),
                )
                .route(
                    "/messaging_phone_numbers/{id}",
                    web::get().to(numbers::get_older),
                )
                .route(
                    "/messaging_phone_numbers/{id}",
                    web::patch().to(numbers::update_older),
                )
                .route(
                    "/messages/number_pool",
                    web::post().to(messages::number_pool),
                )
                .route("/messages", web::post().to(messages::send))
                .route("/webhooks/messaging", web::post().to(webhooks::messaging)),
        )
        .default_service(web::to(ops::not_found));
}
