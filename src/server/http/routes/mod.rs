//! The route table and what every handler shares.

pub(crate) mod cluster;
mod mappings;
mod messages;
mod numbers;
mod ops;
mod opt_outs;
mod profiles;
mod webhooks;

use std::future::{ready, Ready};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use ed25519_dalek::VerifyingKey;
use serde::Serialize;

use super::auth::ApiKeys;
use super::body::Query;
use super::error::ApiError;
use super::metrics::Metrics;
use super::requests::{NewProfileBody, NumberBody, PinBody, ProfileBody, SendBody, WebhookBody};
use super::ttl_cache::TtlCache;
use super::views::{
    Data, List, Mapping, Message, Number, OptOut, PageMeta, Profile, RemovalPreview, WebhookReply,
};
use crate::Engine;
use schemars::{JsonSchema, Schema, SchemaGenerator};

/// What the idempotency cache holds for a key.
#[derive(Clone)]
pub(crate) enum IdempotentReply {
    /// The first request with the key is still running.
    InProgress,
    /// Its reply.
    Done {
        /// The fingerprint of its path and body.
        print: [u8; 32],
        /// The status.
        status: u16,
        /// The body.
        body: String,
    },
}

impl super::ttl_cache::Weigh for IdempotentReply {
    fn weight(&self) -> usize {
        match self {
            IdempotentReply::InProgress => 0,
            IdempotentReply::Done { body, .. } => body.len(),
        }
    }
}

/// Everything the handlers share.
pub(crate) struct AppState {
    pub engine: Engine,
    pub keys: ApiKeys,
    pub webhook_key: Option<VerifyingKey>,
    pub body_limit: usize,
    pub idempotency: TtlCache<IdempotentReply>,
    pub seen_events: TtlCache<webhooks::SeenEvent>,
    pub metrics: Metrics,
    /// Recovered and serving.
    pub ready: AtomicBool,
    /// In a cluster: this node's status.
    pub cluster: Option<Arc<crate::cluster::NodeStatus>>,
    /// Log every request.
    pub access_log: bool,
}

/// Proof that the request carried an accepted API key.
pub(super) struct Authed;

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

/// `{"data": record}`.
pub(super) fn data<T: Serialize>(record: T) -> HttpResponse {
    HttpResponse::Ok().json(Data { data: record })
}

/// `{"data": [...], "meta": {...}}`.
pub(super) fn list<T: Serialize>(records: Vec<T>, meta: PageMeta) -> HttpResponse {
    HttpResponse::Ok().json(List {
        data: records,
        meta,
    })
}

/// The schema of a body type, from a generator (see [`super::openapi`]).
pub(super) type SchemaOf = fn(&mut SchemaGenerator) -> Schema;

/// `T`'s schema, as a reference into the generator's definitions.
fn schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// One operation of the API: where, how, what it does, the query
/// parameters it takes (any other is refused, see [`check_query`]), and
/// the types of its request body and reply.
#[derive(Debug, Clone, Copy)]
pub(super) struct Route {
    /// The path under `/v2`.
    pub path: &'static str,
    /// The method, lower case.
    pub method: &'static str,
    /// One line for the OpenAPI document.
    pub summary: &'static str,
    /// The query parameters it takes (besides `consistency` on a `GET`).
    pub query: &'static [&'static str],
    /// The type its handler reads the body into, if it reads one (one
    /// line of it, for a stream of lines).
    pub request: Option<SchemaOf>,
    /// The media type of that body.
    pub request_media: &'static str,
    /// The type its handler answers 200 with (one line of it, for a
    /// stream of lines).
    pub reply: SchemaOf,
    /// The media type of that answer.
    pub media: &'static str,
}

/// Paging by number, as the hosted service.
const PAGE: &[&str] = &["page[number]", "page[size]"];
/// numpool's listings that also page by cursor.
const CURSOR_PAGE: &[&str] = &["page[number]", "page[size]", "page[after]"];
/// The published filters of a profile listing.
const PROFILE_FILTERS: &[&str] = &[
    "page[number]",
    "page[size]",
    "filter[name]",
    "filter[name][eq]",
    "filter[name][contains]",
];
/// The published filters and sort of a phone number listing.
const NUMBER_FILTERS: &[&str] = &[
    "page[number]",
    "page[size]",
    "filter[messaging_profile_id]",
    "filter[phone_number]",
    "filter[phone_number][contains]",
    "filter[type]",
    "sort[phone_number]",
];
/// A sticky mapping listing: cursor paging and a filter by sender.
const MAPPING_FILTERS: &[&str] = &[
    "page[number]",
    "page[size]",
    "page[after]",
    "filter[sender]",
];

/// The route table: every operation once, with its method, handler,
/// summary and query parameters. It registers the routes (a known path
/// with a wrong method gets 405 with `Allow`), checks query strings
/// ([`check_query`]) and generates the OpenAPI document ([`ROUTES`]).
macro_rules! route_table {
    (@request) => { None };
    (@request $body:ty) => { Some(schema_of::<$body> as SchemaOf) };
    (@body_media) => { "application/json" };
    (@body_media $media:expr) => { $media };
    (@media) => { "application/json" };
    (@media $media:expr) => { $media };
    (@resource $path:expr, $( $method:ident $handler:path ),+) => {
        web::resource($path)
            $( .route(web::$method().to($handler)) )+
            .default_service(web::to(|| async {
                ops::method_not_allowed(&[$( stringify!($method) ),+])
            }))
    };
    ($( $path:literal => { $(
        $method:ident : $handler:path, $summary:literal, $query:expr,
        $( body $body:ty $( as $body_media:expr )?, )? reply $reply:ty $( as $media:expr )?;
    )+ } )*) => {
        /// Every operation, in order.
        pub(super) const ROUTES: &[Route] = &[
            $( $( Route {
                path: $path,
                method: stringify!($method),
                summary: $summary,
                query: $query,
                request: route_table!(@request $($body)?),
                request_media: route_table!(@body_media $($($body_media)?)?),
                reply: schema_of::<$reply>,
                media: route_table!(@media $($media)?),
            }, )+ )*
        ];

        /// Registers every route of the table under `/v2`. A profile's
        /// routes (under [`PROFILE_SCOPE`]) share one scope, placed where
        /// the first of them is: the router matches a pattern with a
        /// parameter by a regex each, and this way a mapping's path is
        /// matched by two (the scope's, then its own) instead of six.
        fn register(scope: actix_web::Scope) -> actix_web::Scope {
            let mut profile = Some(web::scope(PROFILE_SCOPE));
            $(
                if let Some(rest) = $path.strip_prefix(PROFILE_SCOPE) {
                    profile = profile.map(|p| p.service(
                        route_table!(@resource rest, $( $method $handler ),+)
                    ));
                }
            )*
            let mut scope = scope;
            $(
                if !$path.starts_with(PROFILE_SCOPE) {
                    scope = scope.service(route_table!(@resource $path, $( $method $handler ),+));
                } else if let Some(p) = profile.take() {
                    scope = scope.service(p);
                }
            )*
            scope
        }
    };
}

/// The prefix of a profile's own routes, registered as one scope.
const PROFILE_SCOPE: &str = "/messaging_profiles/{id}";

// The hot send paths first: the router tries resources in order.
route_table! {
    "/messages/number_pool" => {
        post: messages::number_pool, "Send a message from a number pool", &[],
            body SendBody, reply Data<Message<'static>>;
    }
    "/messages" => {
        post: messages::send, "Send a message (from a given sender or a profile's pool)", &[],
            body SendBody, reply Data<Message<'static>>;
    }
    "/webhooks/messaging" => {
        post: webhooks::messaging, "Webhook events: delivery outcomes (message.finalized) and inbound opt-out keywords (message.received)", &[],
            body WebhookBody, reply Data<WebhookReply>;
    }
    "/openapi.json" => {
        get: ops::openapi, "This document", &[], reply serde_json::Value;
    }
    "/messaging_profiles" => {
        post: profiles::create, "Create a messaging profile", &[],
            body NewProfileBody, reply Data<Profile>;
        get: profiles::list, "List messaging profiles", PROFILE_FILTERS, reply List<Profile>;
    }
    "/messaging_profiles/{id}" => {
        get: profiles::get, "Retrieve a messaging profile", &[], reply Data<Profile>;
        patch: profiles::update, "Update a messaging profile (number_pool_settings merge)", &[],
            body ProfileBody, reply Data<Profile>;
        delete: profiles::delete, "Delete a messaging profile", &[], reply Data<Profile>;
    }
    "/messaging_profiles/{id}/phone_numbers" => {
        get: profiles::phone_numbers, "List a profile's phone numbers", PAGE, reply List<Number>;
    }
    "/messaging_profiles/{id}/sticky_mappings" => {
        get: mappings::list, "List sticky mappings (extension)", MAPPING_FILTERS,
            reply List<Mapping>;
    }
    // Before `{to}`: "import" and "export" are no phone numbers.
    "/messaging_profiles/{id}/sticky_mappings/import" => {
        post: mappings::import, "Import message history (NDJSON or CSV) into the sticky map (extension)", &[],
            body super::history::HistoryLine as mappings::NDJSON, reply Data<mappings::ImportReply>;
    }
    "/messaging_profiles/{id}/sticky_mappings/export" => {
        get: mappings::export, "Every live mapping, one NDJSON line each, streamed (extension)", &[],
            reply Mapping as mappings::NDJSON;
    }
    "/messaging_profiles/{id}/sticky_mappings/{to}" => {
        get: mappings::get, "Retrieve a sticky mapping (extension)", &[], reply Data<Mapping>;
        put: mappings::pin, "Pin a recipient to a sender (extension)", &[],
            body PinBody, reply Data<Mapping>;
        delete: mappings::delete, "Break a sticky mapping (extension)", &[], reply Data<Mapping>;
    }
    "/messaging_profiles/{id}/opt_outs" => {
        get: opt_outs::list, "List the recipients who opted out of a profile", CURSOR_PAGE,
            reply List<OptOut>;
    }
    "/messaging_profiles/{id}/opt_outs/{to}" => {
        get: opt_outs::get, "Retrieve a recipient's opt-out", &[], reply Data<OptOut>;
        put: opt_outs::put, "Opt a recipient out of a profile", &[], reply Data<OptOut>;
        delete: opt_outs::delete, "Opt a recipient back in", &[], reply Data<OptOut>;
    }
    "/phone_numbers/messaging" => {
        get: numbers::list_current, "List phone numbers with messaging settings", NUMBER_FILTERS,
            reply List<Number>;
    }
    "/phone_numbers/{id}/messaging" => {
        get: numbers::get_current, "Retrieve a phone number's messaging settings", &[],
            reply Data<Number>;
        patch: numbers::update_current, "Assign, move or unassign a phone number", &[],
            body NumberBody, reply Data<Number>;
    }
    "/phone_numbers/{id}/messaging/removal_preview" => {
        get: numbers::removal_preview, "What removing a number from its pool would do (extension)",
            &[], reply Data<RemovalPreview>;
    }
    "/messaging_phone_numbers" => {
        get: numbers::list_older, "List phone numbers (older path)", NUMBER_FILTERS,
            reply List<Number>;
    }
    "/messaging_phone_numbers/{id}" => {
        get: numbers::get_older, "Retrieve a phone number (older path)", &[], reply Data<Number>;
        patch: numbers::update_older, "Update a phone number (older path)", &[],
            body NumberBody, reply Data<Number>;
    }
}

/// The one query parameter every `GET` takes: `consistency=stale` (in a
/// cluster, a standby answers from its committed state).
pub(super) const CONSISTENCY: &str = "consistency";

/// Refuses a query string naming a parameter the operation does not take
/// (400, `source.parameter` naming it): a client that filters or sorts by
/// something numpool does not support gets an error, never an unfiltered
/// answer. Unknown routes and methods pass (404 and 405 follow).
pub(super) fn check_query(req: &HttpRequest) -> Result<(), ApiError> {
    let raw = req.query_string();
    if raw.is_empty() {
        return Ok(());
    }
    let Some(pattern) = req.match_pattern() else {
        return Ok(());
    };
    let path = pattern.strip_prefix("/v2").unwrap_or(&pattern);
    let method = req.method().as_str();
    let Some(route) = ROUTES
        .iter()
        .find(|r| r.path == path && r.method.eq_ignore_ascii_case(method))
    else {
        return Ok(());
    };
    let get = route.method == "get";
    let query = Query::parse(raw);
    for (i, (name, value)) in query.pairs().enumerate() {
        // A parameter given twice would leave one value unread.
        if query.pairs().take(i).any(|(earlier, _)| earlier == name) {
            return Err(ApiError::bad_parameter(
                name,
                format!("{name} is given more than once; give it once (a list is comma-separated)"),
            ));
        }
        if get && name == CONSISTENCY {
            if value != "stale" {
                return Err(ApiError::invalid_parameter(
                    name,
                    "consistency must be stale (or absent: answered by the leader)",
                ));
            }
            continue;
        }
        if !route.query.contains(&name) {
            let takes = match (route.query, get) {
                ([], false) => "none".to_string(),
                ([], true) => CONSISTENCY.to_string(),
                (names, false) => names.join(", "),
                (names, true) => format!("{}, {CONSISTENCY}", names.join(", ")),
            };
            return Err(ApiError::bad_parameter(
                name,
                format!("unknown query parameter {name}; this operation takes: {takes}"),
            ));
        }
    }
    Ok(())
}

/// Registers every route under `/v2` plus the operational ones.
pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(ops::healthz))
        .route("/readyz", web::get().to(ops::readyz))
        .route("/metrics", web::get().to(ops::metrics))
        .route("/backup", web::get().to(ops::backup))
        .route("/cluster/status", web::get().to(cluster::status))
        .route("/cluster/leader", web::get().to(cluster::leader))
        .route("/cluster/standby", web::get().to(cluster::standby))
        .route("/cluster/switchover", web::post().to(cluster::switchover))
        .route("/cluster/snapshot", web::get().to(cluster::snapshot))
        .service(register(web::scope("/v2")).wrap_fn(cluster::gate))
        .default_service(web::to(ops::not_found));
}
