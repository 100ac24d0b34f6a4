//! The HTTP API: the number-pool subset of the Telnyx Messaging API v2
//! (`docs/API.md`), on actix-web, over an [`Engine`].
//!
//! - `routes`: the route table (which also generates the OpenAPI document)
//!   and the handlers (profiles, numbers, messages, sticky mappings,
//!   webhooks, operations).
//! - `history`: message history lines (NDJSON, CSV) for an import.
//! - `requests`: the request bodies as types; `body`: reading them
//!   (size limit, errors naming the field), paths, query strings, paging.
//! - `views`: the records returned, as types; `encoding`: GSM-7/UCS-2 parts.
//! - `error`: the error envelope and codes; `auth`: keys and signatures.
//! - `download`: a snapshot file streamed as an answer (backups, and
//!   snapshots from node to node).
//! - `ttl_cache`: bounded caches (idempotency, webhook ids); `metrics`; `openapi`.
//! - `access`: request ids and the access log; `tls`: HTTPS; `forward`: a
//!   cluster standby passing the API on to its leader.

mod access;
pub(crate) mod auth;
mod body;
mod download;
mod encoding;
mod error;
mod forward;
mod history;
mod metrics;
mod openapi;
mod requests;
mod routes;
pub mod tls;
mod ttl_cache;
mod views;

use std::net::TcpListener;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, Service};
use actix_web::{web, App, HttpServer};
use ed25519_dalek::VerifyingKey;
use futures::FutureExt;

pub use auth::ApiKeys;
pub(crate) use routes::AppState;

use crate::Engine;

/// Default request body limit: 256 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 256 * 1024;
/// Default bytes of the `Idempotency-Key` cache: 64 MiB.
pub(super) const DEFAULT_IDEMPOTENCY_CACHE_BYTES: usize = 64 << 20;
/// Default bytes of the webhook event id cache: 16 MiB.
pub(super) const DEFAULT_WEBHOOK_CACHE_BYTES: usize = 16 << 20;

/// How the HTTP server runs.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Accepted API keys (none: unauthenticated, loopback only).
    pub keys: ApiKeys,
    /// Verifies the hosted service's ed25519 webhook signatures.
    pub webhook_key: Option<VerifyingKey>,
    /// Largest request body in bytes.
    pub body_limit: usize,
    /// Worker threads (0: one per core).
    pub workers: usize,
    /// Bytes the `Idempotency-Key` cache may hold (oldest out first).
    pub idempotency_cache_bytes: usize,
    /// Bytes the cache of webhook event ids may hold (oldest out first).
    pub webhook_cache_bytes: usize,
    /// In a cluster: this node's status (a standby forwards the API's
    /// requests to the leader).
    pub cluster: Option<Arc<crate::cluster::NodeStatus>>,
    /// Stop gracefully on SIGINT and SIGTERM (off when the caller handles
    /// signals itself, as `numpool serve` does to resign leadership first).
    pub handle_signals: bool,
    /// Serve HTTPS with this configuration (`None`: plain HTTP).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Log every request (one `tracing` event each, target `numpool::access`).
    pub access_log: bool,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            keys: ApiKeys::default(),
            webhook_key: None,
            body_limit: DEFAULT_BODY_LIMIT,
            workers: 0,
            idempotency_cache_bytes: DEFAULT_IDEMPOTENCY_CACHE_BYTES,
            webhook_cache_bytes: DEFAULT_WEBHOOK_CACHE_BYTES,
            cluster: None,
            handle_signals: true,
            tls: None,
            access_log: false,
        }
    }
}

/// Builds the server on a bound `listener` (bind `127.0.0.1:0` in tests).
/// Run it by awaiting the returned [`Server`] inside an actix system; it
/// stops gracefully through its handle, and on SIGINT/SIGTERM unless
/// [`HttpOptions::handle_signals`] is off.
pub fn server(
    listener: TcpListener,
    engine: Engine,
    options: HttpOptions,
) -> std::io::Result<Server> {
    let state = web::Data::new(AppState {
        engine,
        keys: options.keys,
        webhook_key: options.webhook_key,
        body_limit: options.body_limit,
        idempotency: ttl_cache::TtlCache::new(
            Duration::from_secs(24 * 3600),
            options.idempotency_cache_bytes,
        ),
        seen_events: ttl_cache::TtlCache::new(
            Duration::from_secs(24 * 3600),
            options.webhook_cache_bytes,
        ),
        metrics: metrics::Metrics::default(),
        ready: AtomicBool::new(true),
        cluster: options.cluster,
        access_log: options.access_log,
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
            .wrap_fn(access::wrap)
    })
    // Answers go out at once: without this, pipelined replies wait on
    // Nagle's algorithm for the client's delayed ACK (tens of ms).
    .on_connect(|conn, _| {
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            let _ = tcp.set_nodelay(true);
        }
    })
    .shutdown_timeout(10)
    // No 408 with an empty body for a request whose head arrived while
    // the process was paused (SIGSTOP, a long GC-like stall of the host):
    // it is read and answered when the process runs again.
    .client_request_timeout(Duration::ZERO);
    if !options.handle_signals {
        http = http.disable_signals();
    }
    if options.workers > 0 {
        http = http.workers(options.workers);
    }
    Ok(match options.tls {
        Some(tls) => http.listen_rustls_0_23(listener, (*tls).clone())?.run(),
        None => http.listen(listener)?.run(),
    })
}
