//! The HTTP API: the number-pool subset of the Telnyx Messaging API v2
//! (`API.md`), on actix-web, over an [`Engine`].
//!
//! - [`routes`]: the route table and handlers (profiles, numbers, messages,
//!   sticky mappings, webhooks, operations).
//! - [`body`]: strict request reading; [`settings_json`]: `number_pool_settings`.
//! - [`views`]: the JSON records returned; [`encoding`]: GSM-7/UCS-2 parts.
//! - [`error`]: the error envelope and codes; [`auth`]: keys and signatures.
//! - [`coalesce`]: sends of one worker turn go to each actor as one batch.
//! - [`recent`]: bounded caches (idempotency, webhook ids); [`metrics`]; [`openapi`].

pub mod auth;
pub mod body;
pub mod coalesce;
pub mod encoding;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod recent;
pub mod routes;
pub mod settings_json;
pub mod views;

use std::net::TcpListener;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use actix_web::dev::{Server, Service};
use actix_web::{web, App, HttpServer};
use ed25519_dalek::VerifyingKey;
use futures::FutureExt;

pub use auth::ApiKeys;
pub use routes::AppState;

use crate::engine::Engine;

/// Default request body limit: 256 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 256 * 1024;

/// How the HTTP server runs.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub keys: ApiKeys,
    pub webhook_key: Option<VerifyingKey>,
    pub body_limit: usize,
    /// Worker threads (0: one per core).
    pub workers: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            keys: ApiKeys::default(),
            webhook_key: None,
            body_limit: DEFAULT_BODY_LIMIT,
            workers: 0,
        }
    }
}

/// Builds the server on a bound `listener` (bind `127.0.0.1:0` in tests).
/// Run it by awaiting the returned [`Server`] inside an actix system; it
/// stops gracefully on SIGINT/SIGTERM or through its handle.
pub fn server(
    listener: TcpListener,
    engine: Engine,
    options: HttpOptions,
) -> std::io::Result<(Server, web::Data<AppState>)> {
    let state = web::Data::new(AppState {
        engine,
        keys: options.keys,
        webhook_key: options.webhook_key,
        body_limit: options.body_limit,
        idempotency: recent::Recent::new(Duration::from_secs(24 * 3600), 1_000_000),
        seen_events: recent::Recent::new(Duration::from_secs(24 * 3600), 1_000_000),
        metrics: metrics::Metrics::default(),
        ready: AtomicBool::new(true),
    });
    let shared = state.clone();
    let mut http = HttpServer::new(move || {
        App::new()
            .app_data(shared.clone())
            .wrap_fn(|req, srv| {
                let state = req.app_data::<web::Data<AppState>>().cloned();
                srv.call(req).map(move |res| {
                    if let (Ok(res), Some(state)) = (&res, state) {
                        state.metrics.response(res.status().as_u16());
                    }
                    res
                })
            })
            .configure(routes::configure)
    })
    // Answers go out at once: without this, pipelined replies wait on
    // Nagle's algorithm for the client's delayed ACK (tens of ms).
    .on_connect(|conn, _| {
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            let _ = tcp.set_nodelay(true);
        }
    })
    .shutdown_timeout(10);
    if options.workers > 0 {
        http = http.workers(options.workers);
    }
    Ok((http.listen(listener)?.run(), state))
}
