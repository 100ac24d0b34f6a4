//! In a cluster, a standby serves no request of the API itself: it forwards
//! each one to the leader (one hop, over a plain HTTP/1.1 connection) and
//! answers what the leader answered, or 503 with `Retry-After` while no
//! leader is known or the leader does not answer.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::HttpResponse;

use super::error::ApiError;
use crate::cluster::peer::{exchange, Answer, Request};

/// The request headers a forwarded request keeps.
const KEPT: [&str; 5] = [
    "authorization",
    "content-type",
    "idempotency-key",
    "telnyx-signature-ed25519",
    "telnyx-timestamp",
];

/// A request as forwarded: method, path with query, kept headers, body.
pub type Forwarded = Request;

/// Keeps what the leader needs of a request's headers.
pub fn keep(name: &str) -> bool {
    KEPT.iter().any(|k| k.eq_ignore_ascii_case(name))
}

fn unavailable(why: &str) -> HttpResponse {
    use actix_web::ResponseError;
    let mut response = ApiError::Unavailable(why.to_string()).error_response();
    response.headers_mut().insert(
        actix_web::http::header::RETRY_AFTER,
        actix_web::http::header::HeaderValue::from_static("1"),
    );
    response
}

/// Sends `request` to the leader at `leader` (`http://host:port`) and
/// returns its answer, or why there is none (blocking: call it off the
/// worker's thread).
pub fn to_leader(leader: Option<String>, request: Forwarded) -> Result<Answer, String> {
    let Some(leader) = leader else {
        return Err("this node is a standby and no leader is known yet; retry".into());
    };
    exchange(&leader, &request, Duration::from_secs(30))
        .map_err(|e| format!("the leader {leader} did not answer ({e}); retry"))
}

/// The response for what [`to_leader`] returned.
pub fn respond(answer: Result<Answer, String>) -> HttpResponse {
    match answer {
        Ok((status, content_type, retry_after, body)) => {
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
        Err(why) => unavailable(&why),
    }
}
