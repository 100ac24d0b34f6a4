//! Request ids and the access log. Every answer carries `X-Request-Id`: the
//! one the request came with (when it is a short printable token), else a
//! new one; a standby forwards it to the leader, so both log the same id.
//! With `--access-log`, each request is one event (target
//! `numpool::access`: method, route template, status, latency, request
//! id), and every event the request causes while it is handled carries the
//! request id (its span).

use std::time::Instant;

use actix_web::body::BoxBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::web;
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use tracing::Instrument;

use super::AppState;

/// The header.
pub(super) const REQUEST_ID: &str = "x-request-id";

/// The longest request id taken from a client.
const MAX_REQUEST_ID: usize = 128;

/// The request id of `req`: its own when acceptable, else a new one.
fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= MAX_REQUEST_ID)
        .filter(|v| v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_string)
}

/// The middleware: see the module docs.
pub(super) fn wrap<S>(
    req: ServiceRequest,
    srv: &S,
) -> LocalBoxFuture<'static, Result<ServiceResponse, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<BoxBody>, Error = actix_web::Error>,
    S::Future: 'static,
{
    let id = request_id(&req);
    let logged = req
        .app_data::<web::Data<AppState>>()
        .is_some_and(|s| s.access_log);
    let header = HeaderValue::from_str(&id).ok();
    if !logged {
        return srv
            .call(req)
            .map(move |res| {
                let mut res = res?;
                if let Some(v) = header {
                    res.headers_mut()
                        .insert(HeaderName::from_static(REQUEST_ID), v);
                }
                Ok(res)
            })
            .boxed_local();
    }
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req.match_pattern().unwrap_or_else(|| "(none)".to_string());
    let span = tracing::info_span!("request", request_id = %id);
    srv.call(req)
        .instrument(span.clone())
        .map(move |res| {
            let mut res = res?;
            let _in = span.enter();
            tracing::info!(
                target: "numpool::access",
                method = %method,
                route = %route,
                status = res.status().as_u16(),
                latency_us = started.elapsed().as_micros() as u64,
                request_id = %id,
                "request"
            );
            if let Some(v) = header {
                res.headers_mut()
                    .insert(HeaderName::from_static(REQUEST_ID), v);
            }
            Ok(res)
        })
        .boxed_local()
}
