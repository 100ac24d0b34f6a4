//! In a cluster, a standby serves no request of the API itself (but stale
//! reads): it forwards each one to the leader (one hop, over a plain
//! HTTP/1.1 connection) and answers what the leader answered, or 503 with
//! `Retry-After` while no leader is known, the leader does not answer, or
//! its answer is not one (an empty or foreign error body, such as the 408
//! of a server that was paused).
//!
//! It reads what it passes on whole: a request body up to the body limit
//! and an answer up to 64 MiB. Past either, retrying cannot help, so the
//! answer is a 400 saying where to go instead: an import to the leader,
//! which reads one of any size as it arrives; a large export to the leader
//! or to this node with `consistency=stale`.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};

use super::error::{ApiError, Source};
use crate::cluster::peer::{Answer, PeerError, Peers, Request};
use crate::cluster::NodeStatus;

/// The request headers a forwarded request keeps.
const KEPT: [&str; 6] = [
    "authorization",
    "content-type",
    "idempotency-key",
    "telnyx-signature-ed25519",
    "telnyx-timestamp",
    "x-request-id",
];

/// How long the leader has to answer a forwarded request.
const LEADER_ANSWERS_WITHIN: Duration = Duration::from_secs(30);

/// Keeps what the leader needs of a request's headers.
fn keep(name: &str) -> bool {
    KEPT.iter().any(|k| k.eq_ignore_ascii_case(name))
}

fn unavailable(why: &str) -> HttpResponse {
    ApiError::Unavailable(why.to_string()).error_response()
}

/// Forwards `req` (whose body is `body`) to the leader `node` knows, and
/// returns the leader's answer (or a 503 saying why there is none).
pub(super) async fn to_leader_of(
    req: &HttpRequest,
    node: &NodeStatus,
    body: Vec<u8>,
) -> HttpResponse {
    // A request forwarded once is not forwarded again (two nodes that each
    // take the other for the leader, for a moment).
    let leader = if req.headers().contains_key("x-numpool-forwarded") {
        None
    } else {
        node.leader()
    };
    let request = Request {
        method: req.method().to_string(),
        path_and_query: req
            .uri()
            .path_and_query()
            .map_or_else(|| req.path().to_string(), |p| p.to_string()),
        headers: req
            .headers()
            .iter()
            .filter(|(name, _)| keep(name.as_str()))
            .filter_map(|(n, v)| Some((n.to_string(), v.to_str().ok()?.to_string())))
            .chain([("X-Numpool-Forwarded".to_string(), "1".to_string())])
            .collect(),
        body,
    };
    let peers = node.peers().clone();
    let answer = web::block(move || to_leader(&peers, leader, request))
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::Unavailable(
                "forwarding to the leader failed; retry".into(),
            ))
        });
    respond(answer)
}

/// Sends `request` to the leader at `leader` (`http://host:port`) and
/// returns its answer, or why there is none (blocking: call it off the
/// worker's thread).
fn to_leader(peers: &Peers, leader: Option<String>, request: Request) -> Result<Answer, ApiError> {
    let Some(leader) = leader else {
        return Err(ApiError::Unavailable(
            "this node is a standby and no leader is known now; retry".into(),
        ));
    };
    let read = request.method == "GET";
    peers
        .exchange(&leader, &request, LEADER_ANSWERS_WITHIN)
        .map_err(|e| match e {
            // Retrying cannot help: say where the answer can be had (a read
            // from the leader itself, or this node's own copy; a change is
            // made, only its answer is lost).
            PeerError::TooLarge(bound) => ApiError::BadRequest {
                detail: format!(
                    "the leader's answer is larger than a standby passes on ({} MiB): {}",
                    bound >> 20,
                    if read {
                        format!(
                            "ask the leader ({leader}) itself, or this node with consistency=stale"
                        )
                    } else {
                        format!("the change may have been made; read it from the leader ({leader})")
                    }
                ),
                at: Source::Elsewhere("the leader's answer".into()),
            },
            e => ApiError::Unavailable(format!("the leader {leader} did not answer ({e}); retry")),
        })
}

/// The error for an import larger than the body limit sent to a standby,
/// which reads what it forwards whole: the leader reads an import as it
/// arrives, of any size.
pub(super) fn import_too_large(node: &NodeStatus, limit: usize) -> ApiError {
    let leader = node.leader();
    ApiError::bad_request(
        "/",
        format!(
            "body larger than {limit} bytes: a standby passes on bodies up to the body limit; send an import of any size to the leader ({})",
            leader.as_deref().unwrap_or("none known now; see GET /cluster/leader")
        ),
    )
}

/// Whether `req` is an import (whose body only the leader reads as it
/// arrives, without the body limit).
pub(super) fn is_import(req: &HttpRequest) -> bool {
    req.method() == actix_web::http::Method::POST && req.path().ends_with("/sticky_mappings/import")
}

/// The response for what [`to_leader`] returned.
fn respond(answer: Result<Answer, ApiError>) -> HttpResponse {
    match answer {
        Ok((status, content_type, retry_after, body)) => {
            let json = content_type
                .as_deref()
                .is_some_and(|t| t.starts_with("application/json"));
            if status >= 400 && (body.is_empty() || !json) {
                // Not an answer of the API (the 408 of a paused server, a
                // proxy's page): the client gets the error envelope.
                return unavailable(&format!(
                    "the leader answered {status} without an error body; retry"
                ));
            }
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            let mut response = HttpResponse::build(status);
            if let Some(t) = content_type {
                response.insert_header(("Content-Type", t));
            }
            if let Some(r) = retry_after {
                response.insert_header(("Retry-After", r));
            }
            response.body(body)
        }
        Err(e) => e.error_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_too_large_to_pass_on_is_a_400_saying_where_to_ask() {
        let peers = Peers::new(None).unwrap();
        for (method, hint) in [("GET", "consistency=stale"), ("POST", "may have been made")] {
            let leader = crate::cluster::peer::tests::answering((64 << 20) + 1);
            let request = Request {
                method: method.into(),
                path_and_query: "/v2/x".into(),
                headers: Vec::new(),
                body: Vec::new(),
            };
            let answer = respond(to_leader(&peers, Some(leader.clone()), request));
            assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{method}");
            assert!(answer.headers().get("retry-after").is_none());
            let body =
                futures::executor::block_on(actix_web::body::to_bytes(answer.into_body())).unwrap();
            let text = String::from_utf8_lossy(&body);
            assert!(text.contains(&format!("({leader})")), "{text}");
            assert!(text.contains(hint), "{method}: {text}");
        }
    }

    #[test]
    fn an_answer_without_an_error_body_becomes_a_503_envelope() {
        let empty = respond(Ok((408, None, None, Vec::new())));
        assert_eq!(empty.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(empty.headers().get("retry-after").unwrap(), "1");
        let html = respond(Ok((
            502,
            Some("text/html".into()),
            None,
            b"<h1>bad</h1>".to_vec(),
        )));
        assert_eq!(html.status(), StatusCode::SERVICE_UNAVAILABLE);
        let api = respond(Ok((
            422,
            Some("application/json".into()),
            None,
            br#"{"errors":[]}"#.to_vec(),
        )));
        assert_eq!(api.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let ok = respond(Ok((
            200,
            Some("application/json".into()),
            None,
            b"{}".to_vec(),
        )));
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(
            respond(Err(ApiError::Unavailable("gone".into()))).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
