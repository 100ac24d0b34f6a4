//! Requests from node to node: a standby forwarding the API to its leader,
//! a node fetching its leader's snapshot, a leader asking a switchover's
//! target how far it has applied; and `numpool cluster`'s requests to a
//! node. HTTP/1.1 on [`ureq`]: connections kept and reused, a timeout for
//! connecting and one for the whole exchange, answers read up to a bound,
//! and TLS verified against the configured CA when the node's URL is
//! `https://` (the usual web roots without one).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The largest answer read into memory (a forwarded answer: a page of
/// profiles, a snapshot's error).
const MAX_ANSWER_BYTES: u64 = 64 << 20;

/// How long a connection to another node may take to open.
const CONNECT_WITHIN: Duration = Duration::from_secs(2);

/// A request to another node: method, path with query, headers, body.
pub(crate) struct Request {
    pub method: String,
    pub path_and_query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A node's answer: status, content type, `Retry-After`, body.
pub(crate) type Answer = (u16, Option<String>, Option<String>, Vec<u8>);

/// Why a request to another node got no answer.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The CA file cannot be read or holds no certificate.
    #[error("CA file: {reason}")]
    Ca {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The node's URL is not `http[s]://host:port`.
    #[error("{0:?} is not a node's URL (http[s]://host:port)")]
    BadUrl(String),
    /// Connecting, TLS, or the exchange failed (or timed out).
    #[error("{0}")]
    Exchange(String),
    /// The answer was larger than the bound.
    #[error("the answer is larger than {0} bytes")]
    TooLarge(u64),
    /// Writing the answer to a file failed.
    #[error("writing {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The client of other nodes: one connection pool, one TLS configuration.
#[derive(Debug, Clone)]
pub struct Peers {
    agent: ureq::Agent,
}

impl Peers {
    /// A client that checks `https://` nodes against `ca` (PEM), or
    /// against the usual web roots without one.
    pub fn new(ca: Option<&Path>) -> Result<Peers, PeerError> {
        let mut builder = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_WITHIN))
            .max_redirects(0)
            .user_agent("numpool");
        if let Some(path) = ca {
            let roots = super::transport::certificates(path).map_err(|reason| PeerError::Ca {
                path: path.to_path_buf(),
                reason,
            })?;
            let tls = ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
                .build();
            builder = builder.tls_config(tls);
        }
        Ok(Peers {
            agent: builder.build().into(),
        })
    }

    fn send(
        &self,
        node: &str,
        r: &Request,
        timeout: Duration,
    ) -> Result<ureq::http::Response<ureq::Body>, PeerError> {
        let node = node.trim_end_matches('/');
        if !(node.starts_with("http://") || node.starts_with("https://")) {
            return Err(PeerError::BadUrl(node.to_string()));
        }
        let url = format!("{node}{}", r.path_and_query);
        let mut builder = ureq::http::Request::builder()
            .method(r.method.as_str())
            .uri(&url);
        for (name, value) in &r.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let request = builder
            .body(r.body.clone())
            .map_err(|e| PeerError::Exchange(e.to_string()))?;
        super::transport::run(&self.agent, request, Some(timeout))
            .map_err(|e| PeerError::Exchange(e.to_string()))
    }

    /// Sends `r` to the node at `node` (`http[s]://host:port`) and reads
    /// its answer, all within `timeout`.
    pub(crate) fn exchange(
        &self,
        node: &str,
        r: &Request,
        timeout: Duration,
    ) -> Result<Answer, PeerError> {
        read_answer(self.send(node, r, timeout)?)
    }

    /// Sends a request whose body is read from `body` as it goes (a file of
    /// any size, never held whole), then reads the answer; `timeout` bounds
    /// each step (sending, and waiting for the answer), not the whole.
    pub(crate) fn upload(
        &self,
        node: &str,
        method: &str,
        path_and_query: &str,
        headers: &[(String, String)],
        body: &mut dyn Read,
        timeout: Duration,
    ) -> Result<Answer, PeerError> {
        let node = node.trim_end_matches('/');
        if !(node.starts_with("http://") || node.starts_with("https://")) {
            return Err(PeerError::BadUrl(node.to_string()));
        }
        let mut builder = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{node}{path_and_query}"));
        for (name, value) in headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let request = builder
            .body(ureq::SendBody::from_reader(body))
            .map_err(|e| PeerError::Exchange(e.to_string()))?;
        let response = super::transport::run(&self.agent, request, Some(timeout))
            .map_err(|e| PeerError::Exchange(e.to_string()))?;
        read_answer(response)
    }

    /// Sends `r` and streams a 200 answer to the file `path` (at most
    /// `max_bytes`); returns the status, the bytes written and the value of
    /// the answer's `X-Numpool-Crc32` header. Another status's body comes
    /// back instead of being written (its first bytes).
    pub(crate) fn fetch_to_file(
        &self,
        node: &str,
        r: &Request,
        timeout: Duration,
        path: &Path,
        max_bytes: u64,
    ) -> Result<(u16, u64, Option<u32>, Vec<u8>), PeerError> {
        let response = self.send(node, r, timeout)?;
        let status = response.status().as_u16();
        let crc = response
            .headers()
            .get(SNAPSHOT_CRC_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let mut reader = response
            .into_body()
            .into_with_config()
            .limit(max_bytes + 1)
            .reader();
        if status != 200 {
            let mut body = Vec::new();
            let _ = reader.by_ref().take(4096).read_to_end(&mut body);
            return Ok((status, 0, crc, body));
        }
        let file_error = |source| PeerError::File {
            path: path.to_path_buf(),
            source,
        };
        let mut file = std::fs::File::create(path).map_err(file_error)?;
        let mut buf = vec![0u8; 1 << 16];
        let mut written = 0u64;
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|e| PeerError::Exchange(e.to_string()))?;
            if n == 0 {
                break;
            }
            written += n as u64;
            if written > max_bytes {
                drop(file);
                let _ = std::fs::remove_file(path);
                return Err(PeerError::TooLarge(max_bytes));
            }
            file.write_all(&buf[..n]).map_err(file_error)?;
        }
        file.sync_all().map_err(file_error)?;
        Ok((status, written, crc, Vec::new()))
    }
}

/// An answer's status, content type, `Retry-After` and body (at most
/// `MAX_ANSWER_BYTES`).
fn read_answer(response: ureq::http::Response<ureq::Body>) -> Result<Answer, PeerError> {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (status, content_type, retry_after) = (
        response.status().as_u16(),
        header("content-type"),
        header("retry-after"),
    );
    let mut body = Vec::new();
    // One byte past the bound tells a larger answer (`TooLarge`) from a
    // failed one.
    let read = response
        .into_body()
        .into_reader()
        .take(MAX_ANSWER_BYTES + 1)
        .read_to_end(&mut body);
    read.map_err(|e| PeerError::Exchange(e.to_string()))?;
    if body.len() as u64 > MAX_ANSWER_BYTES {
        return Err(PeerError::TooLarge(MAX_ANSWER_BYTES));
    }
    Ok((status, content_type, retry_after, body))
}

/// The header the leader's snapshot carries: the CRC-32 of the whole file.
pub(crate) const SNAPSHOT_CRC_HEADER: &str = "x-numpool-crc32";

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Answers one request on a local port with `len` bytes, then closes;
    /// its URL.
    pub(crate) fn answering(len: usize) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut head = [0u8; 1024];
            let _ = s.read(&mut head);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
            );
            let _ = s.write_all(&vec![b' '; len]);
        });
        format!("http://{addr}")
    }

    #[test]
    fn an_answer_past_the_bound_is_too_large_and_one_at_it_is_read() {
        let peers = Peers::new(None).unwrap();
        let request = Request {
            method: "GET".into(),
            path_and_query: "/".into(),
            headers: Vec::new(),
            body: Vec::new(),
        };
        let within = Duration::from_secs(10);
        let bound = MAX_ANSWER_BYTES as usize;
        let over = peers.exchange(&answering(bound + 1), &request, within);
        assert!(
            matches!(over, Err(PeerError::TooLarge(b)) if b == MAX_ANSWER_BYTES),
            "{over:?}"
        );
        let at = peers.exchange(&answering(bound), &request, within).unwrap();
        assert_eq!(at.3.len(), bound);
    }
}
