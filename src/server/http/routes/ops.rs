//! Operations: `/healthz`, `/readyz`, `/metrics`, `/backup`,
//! `/v2/openapi.json`, and the 404 for everything else (the cluster's own routes are in
//! `cluster`).

use std::sync::atomic::Ordering;

use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde_json::json;

use super::AppState;
use crate::server::http::error::ApiError;

/// `/backup`: a snapshot taken now, as a file `numpool restore` makes a
/// data directory from; it holds every change acknowledged before the
/// request. On a cluster's standby it holds what that standby has applied.
/// Its CRC-32 is in `X-Numpool-Crc32`. Needs an API key.
pub(super) async fn backup(
    _: super::Authed,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if state.engine.data_dir().is_none() {
        return Err(ApiError::BadRequest {
            detail: "this server keeps no data directory (it runs --ephemeral), so it has no snapshot to back up".into(),
            at: crate::server::http::error::Source::Elsewhere("the server's configuration".into()),
        });
    }
    const NOT_TAKEN: &str = "no backup taken";
    let (n, file) = state
        .engine
        .backup_file()
        .await
        .map_err(|e| ApiError::Unavailable(format!("{NOT_TAKEN}: {e}")))?;
    crate::server::http::download::snapshot_reply(
        file,
        Some(format!("numpool-backup-{n}.bin")),
        NOT_TAKEN,
    )
    .await
}

pub(super) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// `/readyz`: 200 once the node can serve what it is for. On its own: its
/// journal writes. In a cluster: it leads with its lease surely held, or it
/// is a standby following a known leader within `--max-lag`.
pub(super) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if !state.ready.load(Ordering::Acquire) {
        return HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "1"))
            .json(json!({ "status": "starting" }));
    }
    if let Some(node) = &state.cluster {
        let unready = match node.role() {
            crate::cluster::Role::Leader => super::cluster::leader_unready(node, &state),
            _ => super::cluster::standby_unready(node, &state, None),
        };
        let body = json!({
            "status": if unready.is_none() { "ready" } else { "unavailable" },
            "reason": unready,
            "role": node.role().name(),
            "epoch": node.epoch(),
            "leader": node.leader(),
            "applied": state.engine.replicated_position(),
            "head": node.head(),
            "log_start": node.log_start(),
        });
        return match unready {
            None => HttpResponse::Ok().json(body),
            Some(_) => HttpResponse::ServiceUnavailable()
                .insert_header(("Retry-After", "1"))
                .json(body),
        };
    }
    match state.engine.journal_error() {
        None => HttpResponse::Ok().json(json!({ "status": "ready" })),
        Some(error) => HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "1"))
            .json(json!({ "status": "journal_unavailable", "detail": error })),
    }
}

/// `/metrics`: constant cost whatever the number of profiles (the engine's
/// totals come from its last census, taken in the background).
pub(super) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let stats = state.engine.totals();
    let mut text = state.metrics.render(&stats);
    if let Some(cluster) = &state.cluster {
        use std::fmt::Write;
        let applied = state.engine.replicated_position();
        let _ = writeln!(text, "# HELP numpool_cluster_role This node's role (1 for the one it has).\n# TYPE numpool_cluster_role gauge");
        for role in ["starting", "standby", "leader"] {
            let on = u8::from(cluster.role().name() == role);
            let _ = writeln!(text, "numpool_cluster_role{{role=\"{role}\"}} {on}");
        }
        let _ = writeln!(text, "# HELP numpool_cluster_epoch The epoch of this node's leadership (0 when it does not lead).\n# TYPE numpool_cluster_epoch gauge\nnumpool_cluster_epoch {}", cluster.epoch());
        let _ = writeln!(text, "# HELP numpool_cluster_applied_position The position of the cluster's log applied here.\n# TYPE numpool_cluster_applied_position gauge\nnumpool_cluster_applied_position {applied}");
        let lag = cluster.head().saturating_sub(applied);
        let _ = writeln!(text, "# HELP numpool_cluster_lag Batches of the log seen in etcd and not applied here yet.\n# TYPE numpool_cluster_lag gauge\nnumpool_cluster_lag {lag}");
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text)
}

pub(super) async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no route {} {}",
        req.method(),
        req.path()
    )))
}

pub(super) async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(super::super::openapi::document())
}

/// 405 for a known path asked with a method it does not take.
pub(super) fn method_not_allowed(allowed: &[&str]) -> HttpResponse {
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
