//! A cluster node's own routes (`/cluster/...`) and the gate every API
//! request passes. It refuses a query parameter the operation does not
//! take ([`super::check_query`]); then, in a cluster:
//!
//! - the leader answers while its lease is surely held, a read only if it
//!   still is when the read is done (so a read is linearizable);
//! - a standby forwards every request to the leader, except a `GET` with
//!   `consistency=stale`, which it answers from its committed state (never
//!   from memory etcd did not accept), saying in `X-Numpool-Log-Position`
//!   which position of the log the answer holds at least;
//! - a node that cannot answer either way answers 503 with `Retry-After`.
//!
//! Routes: `GET /cluster/status` (the members, from memory), the
//! load-balancer probes `GET /cluster/leader` and `GET /cluster/standby`
//! (200 or 503), `POST /cluster/switchover` (a planned change of leader;
//! needs an API key) and `GET /cluster/snapshot` (a node fetching the
//! leader's snapshot; needs an API key).

use std::sync::Arc;
use std::time::Duration;

use actix_web::body::BoxBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use serde_json::json;

use super::{AppState, Authed};
use crate::cluster::{NodeStatus, Role};
use crate::server::http::body;
use crate::server::http::error::ApiError;
use crate::server::http::forward;
use crate::server::http::requests::SwitchoverBody;

/// The header a locally answered request in a cluster carries: the answer
/// holds the log at least up to this position.
pub(crate) const LOG_POSITION: &str = "x-numpool-log-position";

/// How long a switchover may take before its caller is answered anyway.
const SWITCHOVER_WITHIN: Duration = Duration::from_secs(8);

/// Whether a query string has `consistency=stale` (decoded as the
/// handlers decode it: `%73tale` is `stale`).
fn asks_stale(query: &str) -> bool {
    !query.is_empty()
        && body::Query::parse(query)
            .pairs()
            .any(|pair| pair == (super::CONSISTENCY, "stale"))
}

fn unavailable(
    req: ServiceRequest,
    why: &str,
) -> LocalBoxFuture<'static, Result<ServiceResponse, actix_web::Error>> {
    let response = ApiError::Unavailable(why.to_string()).error_response();
    futures::future::ready(Ok(req.into_response(response))).boxed_local()
}

fn with_position(mut res: ServiceResponse, position: u64) -> ServiceResponse {
    if let Ok(v) = HeaderValue::from_str(&position.to_string()) {
        res.headers_mut()
            .insert(HeaderName::from_static(LOG_POSITION), v);
    }
    res
}

/// Replaces `res` with a 503 saying `why`.
fn refuse(res: ServiceResponse, why: &str) -> ServiceResponse {
    let (req, _) = res.into_parts();
    ServiceResponse::new(req, ApiError::Unavailable(why.to_string()).error_response())
}

/// Where an API request goes in a cluster (see the module docs).
pub(crate) fn gate<S>(
    req: ServiceRequest,
    srv: &S,
) -> LocalBoxFuture<'static, Result<ServiceResponse, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<BoxBody>, Error = actix_web::Error>,
    S::Future: 'static,
{
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return srv.call(req).boxed_local();
    };
    // A query parameter the operation does not take is refused first,
    // wherever the request would be answered; but a caller without a key
    // learns nothing of the API's parameters: its handler answers 401.
    if let Err(e) = super::check_query(req.request()) {
        let open = req.path().ends_with("/openapi.json");
        if open || state.keys.check(req.request()).is_ok() {
            let response = e.error_response();
            return futures::future::ready(Ok(req.into_response(response))).boxed_local();
        }
    }
    let Some(node) = state.cluster.clone() else {
        return srv.call(req).boxed_local();
    };
    let read = req.method() == actix_web::http::Method::GET;
    if node.leads() {
        let (epoch, terms) = (node.epoch(), node.terms());
        let position = state.engine.replicated_position();
        return srv
            .call(req)
            .map(move |res| {
                let res = res?;
                // A read is answered only if this node led all along.
                if read && !(node.leads() && node.epoch() == epoch && node.terms() == terms) {
                    return Ok(refuse(
                        res,
                        "this node's leadership may have lapsed during the read; retry",
                    ));
                }
                Ok(with_position(res, position))
            })
            .boxed_local();
    }
    if read && asks_stale(req.query_string()) && serves_stale(&node, &state) {
        let terms = node.terms();
        let position = state.engine.replicated_position();
        return srv
            .call(req)
            .map(move |res| {
                let res = res?;
                if !(serves_stale(&node, &state) && node.terms() == terms) {
                    return Ok(refuse(
                        res,
                        "this node took the lead during the read; retry",
                    ));
                }
                Ok(with_position(res, position))
            })
            .boxed_local();
    }
    match node.role() {
        Role::Leader => unavailable(
            req,
            "this node's leadership may have lapsed (its lease is not renewed); retry",
        ),
        _ => forward_request(req, node).boxed_local(),
    }
}

/// Whether this node answers a stale read from its own memory: a standby
/// whose memory holds only what etcd committed.
fn serves_stale(node: &NodeStatus, state: &AppState) -> bool {
    node.role() == Role::Standby && node.committed_only() && !state.engine.may_hold_refused()
}

/// Forwards a request a standby received to the leader, and answers what
/// the leader answered.
async fn forward_request(
    mut req: ServiceRequest,
    node: Arc<NodeStatus>,
) -> Result<ServiceResponse, actix_web::Error> {
    let limit = req
        .app_data::<web::Data<AppState>>()
        .map_or(1 << 20, |s| s.body_limit);
    let payload = req.extract::<web::Payload>().await?;
    let import = forward::is_import(req.request());
    let too_large = || {
        if import {
            forward::import_too_large(&node, limit)
        } else {
            body::too_large(limit)
        }
    };
    let response = match body::read_or(payload, limit, too_large).await {
        Ok(bytes) => forward::to_leader_of(req.request(), &node, bytes.to_vec()).await,
        Err(e) => e.error_response(),
    };
    Ok(req.into_response(response))
}

/// `GET /cluster/status`: every member, from this node's memory (it
/// answers while etcd is down, saying so).
pub(crate) async fn status(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let node = node_of(&state)?;
    let status = node.cluster_status(state.engine.replicated_position());
    Ok(HttpResponse::Ok().json(status))
}

fn node_of(state: &AppState) -> Result<&Arc<NodeStatus>, ApiError> {
    state
        .cluster
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("this server is not in a cluster".into()))
}

/// Why this node is not a leader that can serve now, if it is not one.
pub(crate) fn leader_unready(node: &NodeStatus, state: &AppState) -> Option<String> {
    if !node.leads() {
        return Some(match node.role() {
            Role::Leader => "this node's lease is not surely held".to_string(),
            role => format!("this node is {}, not the leader", role.name()),
        });
    }
    state
        .engine
        .journal_error()
        .map(|e| format!("this node cannot commit changes now: {e}"))
}

fn probe(node: &NodeStatus, state: &AppState, unready: Option<String>) -> HttpResponse {
    let body = json!({
        "role": node.role().name(),
        "leader": node.leader(),
        "applied": state.engine.replicated_position(),
        "head": node.head(),
        "ready": unready.is_none(),
        "reason": unready,
    });
    match unready {
        None => HttpResponse::Ok().json(body),
        Some(_) => HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "1"))
            .json(body),
    }
}

/// `GET /cluster/leader`: 200 only on the leader while its lease is held.
pub(crate) async fn leader(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let node = node_of(&state)?;
    Ok(probe(node, &state, leader_unready(node, &state)))
}

/// The query of `/cluster/standby`.
#[derive(serde::Deserialize)]
pub(crate) struct StandbyQuery {
    /// The most positions the standby may lag (default `--max-lag`).
    lag: Option<u64>,
}

/// `GET /cluster/standby[?lag=N]`: 200 only on a standby that follows a
/// known leader within the lag.
pub(crate) async fn standby(
    state: web::Data<AppState>,
    query: web::Query<StandbyQuery>,
) -> Result<HttpResponse, ApiError> {
    let node = node_of(&state)?;
    let unready = standby_unready(node, &state, query.lag);
    Ok(probe(node, &state, unready))
}

/// Why this node is not a standby ready to serve, if it is not one.
pub(crate) fn standby_unready(
    node: &NodeStatus,
    state: &AppState,
    lag: Option<u64>,
) -> Option<String> {
    node.standby_unready(state.engine.replicated_position(), lag)
        .or_else(|| {
            state
                .engine
                .journal_error()
                .map(|e| format!("its journal cannot write: {e}"))
        })
}

/// `POST /cluster/switchover` `{"to": URL}` (optional): hands leadership
/// over. A standby forwards it to the leader.
pub(crate) async fn switchover(
    _: Authed,
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let node = Arc::clone(node_of(&state)?);
    let bytes = body::read(payload, state.body_limit).await?;
    if !node.leads() && node.role() != Role::Leader {
        return Ok(forward::to_leader_of(&req, &node, bytes.to_vec()).await);
    }
    let b: SwitchoverBody = body::json(&bytes)?;
    let to = b.to.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let from = node.advertise().to_string();
    let outcome = web::block(move || node.switchover(to, SWITCHOVER_WITHIN))
        .await
        .map_err(|_| ApiError::Unavailable("the switchover could not run; retry".into()))?;
    match outcome {
        Ok(to) => Ok(HttpResponse::Ok().json(json!({ "data": { "from": from, "to": to } }))),
        Err(e) if e.is_refusal() => Err(ApiError::invalid("/to", e.to_string())),
        Err(e) => Err(ApiError::Unavailable(format!("switchover not done: {e}"))),
    }
}

/// The query of `/cluster/snapshot`.
#[derive(serde::Deserialize)]
pub(crate) struct SnapshotQuery {
    /// The snapshot must hold the cluster's log at least up to here.
    #[serde(default)]
    at_least: u64,
}

/// In a cluster: this node's newest snapshot file, holding the cluster's
/// log at least up to `?at_least=` (a snapshot is taken first if needed).
/// Another node fetches it when the log it would follow is no longer all in
/// etcd. Needs an API key like the API.
pub(crate) async fn snapshot(
    _: Authed,
    state: web::Data<AppState>,
    query: web::Query<SnapshotQuery>,
) -> Result<HttpResponse, ApiError> {
    node_of(&state)?;
    const NOT_GIVEN: &str = "no snapshot to give";
    let file = state
        .engine
        .snapshot_file(query.at_least)
        .await
        .map_err(|e| ApiError::Unavailable(format!("{NOT_GIVEN}: {e}")))?;
    crate::server::http::download::snapshot_reply(file, None, NOT_GIVEN).await
}
