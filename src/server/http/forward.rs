//! In a cluster, a standby serves no request of the API itself (but stale
//! reads): it forwards each one to the leader (one hop, over a plain
//! HTTP/1.1 connection) and answers what the leader answered, or 503 with
//! `Retry-After` while no leader is known, the leader does not answer, or
//! its answer is not one (an empty or foreign error body, such as the 408
//! of a server that was paused).
//!
//! Two bodies have no size bound and are passed on as they arrive, a chunk
//! at a time, never held whole: an import's request (the standby reads
//! every other request whole, within the body limit) and an answer the
//! leader streams (an export: an answer without a `Content-Length`). Every
//! other answer is read whole (at most 64 MiB) and checked before it is
//! passed on. The exchange runs on one of actix's blocking threads, for as
//! long as the bodies flow; a client that goes away ends it at the next
//! chunk.

use std::io::{self, Read};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};

use super::error::ApiError;
use crate::cluster::peer::{read_answer, Answer, Peers, Request};
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

/// How long a streamed body (an import's request, an export's answer) may
/// take to pass, each: an hour, as `numpool backup` gives a backup.
const STREAM_WITHIN: Duration = Duration::from_secs(3600);

/// Chunks of a streamed body in flight between the blocking thread and the
/// HTTP worker, each way (64 KiB each, at most).
const CHUNKS_IN_FLIGHT: usize = 8;

/// Bytes read from the leader's streamed answer at a time.
const CHUNK: usize = 64 * 1024;

/// Whether `req` is an import, whose body has no size limit: a standby
/// passes it on as it arrives.
pub(super) fn is_import(req: &HttpRequest) -> bool {
    req.method() == actix_web::http::Method::POST && req.path().ends_with("/sticky_mappings/import")
}

/// Whether `req` is an export, whose answer has no size bound.
fn is_export(req: &HttpRequest) -> bool {
    req.method() == actix_web::http::Method::GET && req.path().ends_with("/sticky_mappings/export")
}

/// A forwarded request's body.
pub(super) enum Outgoing {
    /// Read whole, within the body limit: every request but an import.
    Whole(Vec<u8>),
    /// Passed on as it arrives: an import's, which has no size limit.
    Streamed(web::Payload),
}

/// The head of the leader's answer, as the blocking thread hands it over.
enum Head {
    /// Read whole: an answer with a `Content-Length`, or an error.
    Whole(Answer),
    /// Its body follows in chunks: status and content type.
    Streamed(u16, Option<String>),
}

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
    body: Outgoing,
) -> HttpResponse {
    // A request forwarded once is not forwarded again (two nodes that each
    // take the other for the leader, for a moment).
    let leader = if req.headers().contains_key("x-numpool-forwarded") {
        None
    } else {
        node.leader()
    };
    let (body, payload) = match body {
        Outgoing::Whole(bytes) => (bytes, None),
        Outgoing::Streamed(payload) => (Vec::new(), Some(payload)),
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
    let within = if is_import(req) || is_export(req) {
        STREAM_WITHIN
    } else {
        LEADER_ANSWERS_WITHIN
    };
    let (head_tx, head_rx) = oneshot::channel();
    let (down_tx, down_rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let (up_tx, upload) = match payload {
        Some(_) => {
            let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
            (
                Some(tx),
                Some(Upload {
                    rx,
                    chunk: web::Bytes::new(),
                }),
            )
        }
        None => (None, None),
    };
    actix_web::rt::task::spawn_blocking(move || {
        to_leader(&peers, leader, request, within, upload, head_tx, down_tx);
    });
    // The request's body goes up while the answer is awaited: the leader
    // may answer (a refusal) before it has read it all.
    let send_up = async move {
        let (Some(mut payload), Some(tx)) = (payload, up_tx) else {
            return;
        };
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| io::Error::other(e.to_string()));
            let failed = chunk.is_err();
            if tx.send(chunk).await.is_err() || failed {
                return;
            }
        }
    };
    let (_, head) = futures::future::join(send_up, head_rx).await;
    match head {
        Ok(Ok(Head::Whole(answer))) => respond(Ok(answer)),
        Ok(Ok(Head::Streamed(status, content_type))) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            let mut response = HttpResponse::build(status);
            if let Some(t) = content_type {
                response.insert_header(("Content-Type", t));
            }
            let chunks = futures::stream::unfold(down_rx, |mut rx| async move {
                rx.recv().await.map(|chunk| (chunk, rx))
            });
            response.streaming(chunks)
        }
        Ok(Err(why)) => respond(Err(why)),
        Err(_) => respond(Err("forwarding to the leader failed; retry".into())),
    }
}

/// An import's body on its way up: the chunks the HTTP worker passes on,
/// read by the blocking thread as ureq sends them. An error from the
/// client ends the upload with that error, so the leader sees the request
/// cut off rather than ended.
struct Upload {
    rx: mpsc::Receiver<io::Result<web::Bytes>>,
    chunk: web::Bytes,
}

impl Read for Upload {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.chunk = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk = self.chunk.slice(n..);
        Ok(n)
    }
}

/// Sends `request` to the leader at `leader` (`http://host:port`), its body
/// from `upload` if it streams, each body within `within`; hands over the
/// answer's head (or why there is none) through `head` and, for an answer
/// without a `Content-Length`, its body through `down`. Blocking: run it
/// off the worker's thread.
fn to_leader(
    peers: &Peers,
    leader: Option<String>,
    request: Request,
    within: Duration,
    upload: Option<Upload>,
    head: oneshot::Sender<Result<Head, String>>,
    down: mpsc::Sender<io::Result<web::Bytes>>,
) {
    let Some(leader) = leader else {
        let _ = head.send(Err(
            "this node is a standby and no leader is known now; retry".into(),
        ));
        return;
    };
    let failed =
        |e: &dyn std::fmt::Display| format!("the leader {leader} did not answer ({e}); retry");
    let mut upload = upload;
    let body = upload.as_mut().map(|u| u as &mut dyn Read);
    let answer = match peers.open(&leader, &request, body, LEADER_ANSWERS_WITHIN, within) {
        Ok(answer) => answer,
        Err(e) => {
            let _ = head.send(Err(failed(&e)));
            return;
        }
    };
    let status = answer.status().as_u16();
    let sized = answer.headers().contains_key("content-length");
    if status >= 400 || sized {
        let _ = head.send(read_answer(answer).map(Head::Whole).map_err(|e| failed(&e)));
        return;
    }
    let content_type = answer
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if head.send(Ok(Head::Streamed(status, content_type))).is_err() {
        return;
    }
    let mut reader = answer.into_body().into_reader();
    loop {
        let mut chunk = vec![0u8; CHUNK];
        let read = reader.read(&mut chunk);
        let end = !matches!(read, Ok(n) if n > 0);
        let item = read.map(|n| {
            chunk.truncate(n);
            web::Bytes::from(chunk)
        });
        // Read to its end, or cut off (the client sees the answer end
        // short); a client gone away drops the receiver.
        if matches!(item, Ok(ref b) if b.is_empty()) || down.blocking_send(item).is_err() || end {
            return;
        }
    }
}

/// The response for what [`to_leader`] returned.
fn respond(answer: Result<Answer, String>) -> HttpResponse {
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
        Err(why) => unavailable(&why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            respond(Err("gone".into())).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
