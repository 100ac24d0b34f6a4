//! Calls to etcd's gRPC API, for the two calls on a cluster's hot path:
//! the leader's fenced append (`KV.Txn`, [`EtcdClient::txn_put`]) and a
//! standby's watch of the log (`Watch.Watch`, [`EtcdClient::watch`]).
//!
//! Why not the JSON gateway, as every other call: each gateway request
//! costs etcd a JSON decode, a base64 decode and a second gRPC hop inside
//! etcd, and each watch event a JSON encoding per watcher. Measured on a
//! 2-core machine with etcd 3.4, a one-put transaction of 1.5 KB took etcd
//! about 1.0 ms of CPU through the gateway and 0.45 ms over gRPC, and two
//! watchers added 0.2–0.4 ms a transaction through the gateway against
//! 0.0–0.1 ms over gRPC.
//!
//! HTTP/2 comes from `h2`, run on a current-thread tokio runtime of this
//! client's own: the calling thread drives it while it waits, so no thread
//! is added. One connection, kept between calls and dropped on any error
//! but an answer from etcd; endpoints are tried in order from the last one
//! that answered, as the gateway client does, but only until a request
//! has gone out: after that, a failure is the call's (an append that may
//! have landed must not be sent again elsewhere).
//!
//! [`EtcdClient::txn_put`]: super::EtcdClient::txn_put
//! [`EtcdClient::watch`]: super::EtcdClient::watch

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;

use super::error::Failure;
use super::{EtcdError, EtcdTls, MAX_ANSWER_BYTES};

/// One endpoint, split for connecting.
struct Target {
    /// As configured: `http[s]://host[:port]`.
    endpoint: String,
    host: String,
    port: u16,
    https: bool,
}

impl Target {
    fn parse(endpoint: &str) -> Result<Target, EtcdError> {
        let invalid = |reason| EtcdError::InvalidEndpoint {
            endpoint: endpoint.to_string(),
            reason,
        };
        let (https, rest) = match endpoint.strip_prefix("https://") {
            Some(rest) => (true, rest),
            None => (false, endpoint.strip_prefix("http://").unwrap_or(endpoint)),
        };
        let default_port = if https { 443 } else { 80 };
        let (host, port) = match rest.rsplit_once(':') {
            // An IPv6 address without a port: its colons are inside brackets.
            Some((host, port)) if !port.ends_with(']') => (
                host,
                port.parse()
                    .map_err(|_| invalid("the port is not a number"))?,
            ),
            _ => (rest, default_port),
        };
        Ok(Target {
            endpoint: endpoint.to_string(),
            host: host.trim_start_matches('[').trim_end_matches(']').into(),
            port,
            https,
        })
    }
}

/// A blocking gRPC client of one etcd cluster (not `Sync`: the etcd
/// client keeps it behind a mutex).
pub(super) struct GrpcClient {
    runtime: Runtime,
    targets: Vec<Target>,
    /// The endpoint to try first: the last one that answered.
    current: usize,
    tls: Option<tokio_rustls::TlsConnector>,
    /// The open connection.
    connection: Option<Connection>,
}

impl GrpcClient {
    /// A client of `endpoints` (checked already), with `tls` for the
    /// `https://` ones. Connects only when first called.
    pub(super) fn new(
        endpoints: &[String],
        tls: Option<&EtcdTls>,
    ) -> Result<GrpcClient, EtcdError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| EtcdError::Io(format!("cannot start the gRPC client: {e}")))?;
        let targets = endpoints
            .iter()
            .map(|e| Target::parse(e))
            .collect::<Result<Vec<_>, _>>()?;
        let tls = if targets.iter().any(|t| t.https) {
            Some(tokio_rustls::TlsConnector::from(Arc::new(tls_config(tls)?)))
        } else {
            None
        };
        Ok(GrpcClient {
            runtime: Runtime(Some(runtime)),
            targets,
            current: 0,
            tls,
            connection: None,
        })
    }

    /// Calls `method` (`/package.Service/Method`) with the encoded
    /// `message`, sending `token` for etcd's authentication; returns the
    /// answer's message. The whole call, connecting included, within
    /// `timeout`; connecting within `connect_timeout`.
    pub(super) fn call(
        &mut self,
        method: &str,
        message: &[u8],
        token: Option<&str>,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Result<Vec<u8>, EtcdError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let (at, _send, recv) =
            self.open(method, message, true, token, connect_timeout, deadline)?;
        let read = block_on(&self.runtime, async move {
            tokio::time::timeout_at(deadline, read_unary(recv)).await
        });
        let read = read.unwrap_or(Err(Failure::TimedOut));
        read.map_err(|f| self.failed(at, f))
    }

    /// Opens a stream of `method` with the encoded `message` as its first
    /// request, and hands each answer's message to `on` as it arrives,
    /// until `on` returns false ([`StreamEnd::Stopped`]), or nothing has
    /// arrived for `idle` and `go_on` says not to wait another `idle`
    /// ([`StreamEnd::Idle`]; a message arriving slowly in pieces is waited
    /// for as long as pieces come); the stream is then dropped (etcd sees
    /// it reset). Opening within `timeout`. A stream
    /// that etcd ends is an error (with etcd's status if it gave one).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn stream(
        &mut self,
        method: &str,
        message: &[u8],
        token: Option<&str>,
        connect_timeout: Duration,
        timeout: Duration,
        idle: Duration,
        mut on: impl FnMut(&[u8]) -> Result<bool, EtcdError>,
        mut go_on: impl FnMut() -> bool,
    ) -> Result<StreamEnd, EtcdError> {
        let deadline = tokio::time::Instant::now() + timeout;
        // The request side stays open: etcd ends a watch whose client
        // has nothing more to say only when asked to.
        let (at, _send, mut recv) =
            self.open(method, message, false, token, connect_timeout, deadline)?;
        let mut buffer = Vec::new();
        loop {
            let next = block_on(
                &self.runtime,
                next_message(&mut recv, &mut buffer, Some(idle)),
            );
            let message = match next {
                Ok(Some(message)) => message,
                Ok(None) if go_on() => continue,
                Ok(None) => return Ok(StreamEnd::Idle),
                Err(f) => return Err(self.failed(at, f)),
            };
            if !on(&message)? {
                return Ok(StreamEnd::Stopped);
            }
        }
    }

    /// Sends the first request of a call to the first endpoint that can
    /// be reached, from the last one that answered, and waits for the
    /// answer's headers: the endpoint and the call's two ends.
    fn open(
        &mut self,
        method: &str,
        message: &[u8],
        end_of_stream: bool,
        token: Option<&str>,
        connect_timeout: Duration,
        deadline: tokio::time::Instant,
    ) -> Result<(usize, h2::SendStream<Bytes>, h2::RecvStream), EtcdError> {
        let mut framed = Vec::with_capacity(5 + message.len());
        framed.push(0); // not compressed
        let len = u32::try_from(message.len())
            .map_err(|_| EtcdError::Io("a gRPC message over 4 GiB".into()))?;
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(message);
        let framed = Bytes::from(framed);
        let n = self.targets.len();
        let first = self.current % n;
        let mut last = None;
        for i in 0..n {
            let at = (first + i) % n;
            if self.connection.as_ref().is_some_and(|c| c.to != at) {
                self.connection = None;
            }
            let target = &self.targets[at];
            let request = Request {
                target,
                method,
                framed: framed.clone(),
                end_of_stream,
                token,
            };
            let attempt = open_once(
                &request,
                &mut self.connection,
                at,
                self.tls.as_ref(),
                connect_timeout,
            );
            let outcome = block_on(&self.runtime, async move {
                tokio::time::timeout_at(deadline, attempt).await
            });
            match outcome.unwrap_or(Err(Failure::TimedOut)) {
                Ok((send, recv)) => {
                    self.current = at;
                    return Ok((at, send, recv));
                }
                Err(f @ (Failure::Unreached(_) | Failure::Handshake(_))) => {
                    self.connection = None;
                    last = Some(f.into_error(&self.targets[at].endpoint));
                }
                Err(f) => return Err(self.failed(at, f)),
            }
        }
        Err(last.unwrap_or(EtcdError::Timeout))
    }

    /// The error a call to endpoint `at` ends with. An answer from etcd
    /// leaves the connection be; anything else drops it, and a timeout
    /// also makes the next call start from the following endpoint.
    fn failed(&mut self, at: usize, failure: Failure) -> EtcdError {
        match failure {
            Failure::Other(e @ EtcdError::Grpc { .. }) => {
                self.current = at;
                e
            }
            Failure::TimedOut => {
                self.connection = None;
                self.current = (at + 1) % self.targets.len();
                EtcdError::Timeout
            }
            f => {
                self.connection = None;
                self.current = at;
                f.into_error(&self.targets[at].endpoint)
            }
        }
    }
}

/// Runs `future` on the client's `runtime`. From inside another runtime
/// (which must not be blocked) a thread of its own does.
fn block_on<F>(runtime: &tokio::runtime::Runtime, future: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    if tokio::runtime::Handle::try_current().is_err() {
        return runtime.block_on(future);
    }
    std::thread::scope(|s| {
        s.spawn(|| runtime.block_on(future))
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// The client's runtime, dropped without waiting for its blocking tasks:
/// a name lookup a timeout cut short may still be running on one.
struct Runtime(Option<tokio::runtime::Runtime>);

impl std::ops::Deref for Runtime {
    type Target = tokio::runtime::Runtime;

    fn deref(&self) -> &tokio::runtime::Runtime {
        self.0.as_ref().expect("taken only when dropped")
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// How a [`GrpcClient::stream`] ended (other than with an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StreamEnd {
    /// Nothing arrived for the idle time given.
    Idle,
    /// The caller said stop.
    Stopped,
}

/// An HTTP/2 connection to one endpoint.
struct Connection {
    /// The endpoint's index.
    to: usize,
    send: h2::client::SendRequest<Bytes>,
    /// The task driving it, finished once the connection is closed.
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// What one call sends.
struct Request<'a> {
    target: &'a Target,
    method: &'a str,
    /// The first message, framed.
    framed: Bytes,
    /// Whether it is the last: a unary call's is.
    end_of_stream: bool,
    token: Option<&'a str>,
}

/// Sends `request` to its endpoint, connecting first if need be, and
/// waits for the answer's headers. A call that fails at once (its status
/// in the headers) is an error here. Failures before the request went
/// out say whether the endpoint could be reached (the caller may try the
/// next); after, they are the call's own.
async fn open_once(
    request: &Request<'_>,
    connection: &mut Option<Connection>,
    at: usize,
    tls: Option<&tokio_rustls::TlsConnector>,
    connect_timeout: Duration,
) -> Result<(h2::SendStream<Bytes>, h2::RecvStream), Failure> {
    let endpoint = &request.target.endpoint;
    let mut reuse = connection.is_some();
    let answer = loop {
        if reuse {
            // Nothing drove the connection since the last call: let it
            // read what came meanwhile (a close, a GOAWAY) first. Twice:
            // the first lets the runtime poll the socket (waking the
            // driver), the second lets the driver run.
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
            if connection.as_ref().is_some_and(|c| c.driver.is_finished()) {
                *connection = None;
            }
        }
        let reused = connection.is_some();
        let send = match connection {
            Some(c) => c.send.clone(),
            None => {
                let (send, driver) = connect(request.target, tls, connect_timeout)
                    .await
                    .map_err(|f| f.at(endpoint))?;
                *connection = Some(Connection {
                    to: at,
                    send: send.clone(),
                    driver,
                });
                send
            }
        };
        reuse = false;
        let sent = match send_request(send, request).await {
            Ok((answer, body)) => answer.await.map(|answer| (answer, body)),
            // A kept connection that died since the last call: once more
            // on a new one.
            Err(_) if reused => {
                *connection = None;
                continue;
            }
            Err(e) => return Err(h2_failure(e).at(endpoint)),
        };
        match sent {
            Ok(answer) => break answer,
            // etcd refused the stream unprocessed (closing the connection).
            Err(e) if reused && e.reason() == Some(h2::Reason::REFUSED_STREAM) => {
                *connection = None;
            }
            Err(e) => {
                return Err(match h2_failure(e) {
                    f @ (Failure::TimedOut | Failure::Other(_)) => f,
                    Failure::Unreached(m) | Failure::Handshake(m) | Failure::Closed(m) => {
                        Failure::Other(EtcdError::Io(format!(
                            "the connection to {endpoint} failed with the request sent: {m}"
                        )))
                    }
                })
            }
        }
    };
    let (answer, body) = answer;
    let (parts, recv) = answer.into_parts();
    if parts.status != http::StatusCode::OK {
        return Err(Failure::Other(EtcdError::Http {
            status: parts.status.as_u16(),
            code: None,
            message: "a gRPC call answered with this HTTP status".into(),
        }));
    }
    if let Some(Err(status)) = grpc_status(&parts.headers) {
        return Err(Failure::Other(status));
    }
    Ok((body, recv))
}

/// Sends the request's headers and first message on `send`.
async fn send_request(
    send: h2::client::SendRequest<Bytes>,
    request: &Request<'_>,
) -> Result<(h2::client::ResponseFuture, h2::SendStream<Bytes>), h2::Error> {
    let mut send = send.ready().await?;
    let target = request.target;
    let scheme = if target.https { "https" } else { "http" };
    let mut builder = http::Request::builder()
        .method(http::Method::POST)
        .uri(format!(
            "{scheme}://{}:{}{}",
            authority_host(&target.host),
            target.port,
            request.method
        ))
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers");
    if let Some(token) = request.token {
        builder = builder.header("token", token);
    }
    let http_request = builder
        .body(())
        .expect("a method, a URI from a checked endpoint and ASCII headers");
    let (answer, mut body) = send.send_request(http_request, false)?;
    body.send_data(request.framed.clone(), request.end_of_stream)?;
    Ok((answer, body))
}

/// A unary call's answer: its one message, then its status.
async fn read_unary(mut recv: h2::RecvStream) -> Result<Vec<u8>, Failure> {
    let mut buffer = Vec::new();
    let message = next_message(&mut recv, &mut buffer, None)
        .await?
        .expect("no idle time: a message or an error");
    // Nothing may follow it but the status.
    while let Some(chunk) = recv.data().await {
        let chunk = chunk.map_err(h2_failure)?;
        let _ = recv.flow_control().release_capacity(chunk.len());
        buffer.extend_from_slice(&chunk);
    }
    if !buffer.is_empty() {
        return Err(Failure::Other(EtcdError::Malformed(
            "more than one message in a unary gRPC answer".into(),
        )));
    }
    let trailers = recv.trailers().await.map_err(h2_failure)?;
    match trailers.as_ref().and_then(grpc_status) {
        Some(Ok(())) => Ok(message),
        Some(Err(status)) => Err(Failure::Other(status)),
        None => Err(Failure::Other(EtcdError::Io(
            "a gRPC answer without its status".into(),
        ))),
    }
}

/// The next message of an answer, reading on from what `buffer` holds
/// (a message may span data frames, and a frame hold several); `None`
/// when nothing at all arrived for `idle`. The end of the answer before a
/// message is an error: etcd's status if it gave one.
async fn next_message(
    recv: &mut h2::RecvStream,
    buffer: &mut Vec<u8>,
    idle: Option<Duration>,
) -> Result<Option<Vec<u8>>, Failure> {
    loop {
        if let Some(message) = unframe(buffer)? {
            return Ok(Some(message));
        }
        let chunk = match idle {
            Some(idle) => match tokio::time::timeout(idle, recv.data()).await {
                Ok(chunk) => chunk,
                Err(_) => return Ok(None),
            },
            None => recv.data().await,
        };
        match chunk {
            Some(chunk) => {
                let chunk = chunk.map_err(h2_failure)?;
                let _ = recv.flow_control().release_capacity(chunk.len());
                buffer.extend_from_slice(&chunk);
            }
            None => {
                let trailers = recv.trailers().await.map_err(h2_failure)?;
                return Err(Failure::Other(
                    match trailers.as_ref().and_then(grpc_status) {
                        Some(Err(status)) => status,
                        _ => EtcdError::Io("the gRPC stream ended".into()),
                    },
                ));
            }
        }
    }
}

/// The first message `buffer` holds whole (one uncompressed
/// length-prefixed message), taken off it; `None` while it holds less.
fn unframe(buffer: &mut Vec<u8>) -> Result<Option<Vec<u8>>, Failure> {
    if buffer.len() < 5 {
        return Ok(None);
    }
    if buffer[0] != 0 {
        return Err(Failure::Other(EtcdError::Malformed(
            "a compressed gRPC message".into(),
        )));
    }
    let len = u32::from_be_bytes(buffer[1..5].try_into().expect("4 bytes")) as u64;
    if len > MAX_ANSWER_BYTES {
        return Err(Failure::Other(EtcdError::Malformed(
            "a gRPC message over the size limit".into(),
        )));
    }
    let end = 5 + len as usize;
    if buffer.len() < end {
        return Ok(None);
    }
    let message = buffer[5..end].to_vec();
    buffer.drain(..end);
    Ok(Some(message))
}

/// The status `headers` give (`grpc-status`, with etcd's message in
/// `grpc-message` when it is not OK); `None` when they give none.
fn grpc_status(headers: &http::HeaderMap) -> Option<Result<(), EtcdError>> {
    let code = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .parse::<i32>()
        .ok()?;
    if code == 0 {
        return Some(Ok(()));
    }
    let message = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .map(percent_decode)
        .unwrap_or_default();
    Some(Err(EtcdError::Grpc { code, message }))
}

/// `grpc-message` is percent-encoded (gRPC's HTTP/2 protocol).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An IPv6 address goes in brackets in a URI's authority.
fn authority_host(host: &str) -> std::borrow::Cow<'_, str> {
    if host.contains(':') {
        format!("[{host}]").into()
    } else {
        host.into()
    }
}

/// Opens a connection to `target` (TLS for `https://`) and starts HTTP/2
/// on it, its driver spawned on the client's runtime.
async fn connect(
    target: &Target,
    tls: Option<&tokio_rustls::TlsConnector>,
    connect_timeout: Duration,
) -> Result<(h2::client::SendRequest<Bytes>, tokio::task::JoinHandle<()>), Failure> {
    let tcp = tokio::time::timeout(
        connect_timeout,
        TcpStream::connect((target.host.as_str(), target.port)),
    )
    .await
    .map_err(|_| Failure::Unreached("connecting timed out".into()))?
    .map_err(|e| match Failure::from_io(e) {
        Failure::TimedOut => Failure::Unreached("connecting timed out".into()),
        f => f,
    })?;
    let _ = tcp.set_nodelay(true);
    let mut builder = h2::client::Builder::new();
    // What etcd may send before this side reads: a watch message of a
    // whole piece of the log (1 MiB at most) fits.
    builder
        .initial_window_size(2 << 20)
        .initial_connection_window_size(2 << 20);
    match (target.https, tls) {
        (true, Some(tls)) => {
            let name = rustls::pki_types::ServerName::try_from(target.host.clone())
                .map_err(|e| Failure::Other(EtcdError::Tls(e.to_string())))?;
            let stream = tokio::time::timeout(connect_timeout, tls.connect(name, tcp))
                .await
                .map_err(|_| Failure::Handshake("the TLS handshake timed out".into()))?
                .map_err(Failure::from_io)?;
            if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
                return Err(Failure::Handshake(
                    "etcd did not agree to HTTP/2 (ALPN h2) for gRPC".into(),
                ));
            }
            let (send, connection) = builder.handshake(stream).await.map_err(h2_failure)?;
            let driver = tokio::spawn(async move {
                let _ = connection.await;
            });
            Ok((send, driver))
        }
        (true, None) => Err(Failure::Other(EtcdError::Tls(
            "an https endpoint without TLS settings".into(),
        ))),
        (false, _) => {
            let (send, connection) = builder.handshake(tcp).await.map_err(h2_failure)?;
            let driver = tokio::spawn(async move {
                let _ = connection.await;
            });
            Ok((send, driver))
        }
    }
}

fn h2_failure(e: h2::Error) -> Failure {
    if e.is_io() {
        if let Some(io) = e.into_io() {
            return Failure::from_io(io);
        }
        return Failure::Other(EtcdError::Io("HTTP/2 connection error".into()));
    }
    Failure::Other(EtcdError::Io(format!("HTTP/2: {e}")))
}

/// rustls settings for gRPC: the CA of `tls` (else the web's roots), this
/// node's client certificate if given, and HTTP/2 by ALPN.
fn tls_config(tls: Option<&EtcdTls>) -> Result<rustls::ClientConfig, EtcdError> {
    use crate::cluster::transport::{rustls_certificates, rustls_client};
    let mut roots = rustls::RootCertStore::empty();
    let mut identity = None;
    match tls {
        Some(tls) => {
            for cert in rustls_certificates(&tls.ca).map_err(EtcdError::Tls)? {
                roots
                    .add(cert)
                    .map_err(|e| EtcdError::Tls(format!("{}: {e}", tls.ca.display())))?;
            }
            if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
                identity = Some((cert.as_path(), key.as_path()));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let mut config = rustls_client(roots, identity).map_err(EtcdError::Tls)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_split_into_host_and_port() {
        let t = Target::parse("https://etcd.example:2379").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.https),
            ("etcd.example", 2379, true)
        );
        let t = Target::parse("http://127.0.0.1").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.https), ("127.0.0.1", 80, false));
        let t = Target::parse("http://[::1]:2379").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 2379));
        assert_eq!(authority_host(&t.host), "[::1]");
        let t = Target::parse("https://[::1]").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 443));
    }

    #[test]
    fn statuses_and_frames_are_read_as_grpc_sends_them() {
        let mut headers = http::HeaderMap::new();
        assert!(grpc_status(&headers).is_none());
        headers.insert("grpc-status", "0".parse().unwrap());
        assert!(matches!(grpc_status(&headers), Some(Ok(()))));
        headers.insert("grpc-status", "16".parse().unwrap());
        headers.insert(
            "grpc-message",
            "etcdserver:%20invalid%20auth%20token".parse().unwrap(),
        );
        let e = grpc_status(&headers).unwrap().unwrap_err();
        assert!(e.is_stale_token() && e.is_refusal());
        assert_eq!(e.code(), Some(16));
        assert!(e.to_string().contains("etcdserver: invalid auth token"));
        assert_eq!(percent_decode("100%25 %zz"), "100% %zz");

        // Two messages, the second cut short: one whole, then a wait.
        let mut buffer = vec![0, 0, 0, 0, 2, 7, 8, 0, 0, 0, 0, 3, 9];
        assert_eq!(unframe(&mut buffer).ok().flatten().unwrap(), [7, 8]);
        assert!(matches!(unframe(&mut buffer), Ok(None)));
        buffer.extend_from_slice(&[10, 11]);
        assert_eq!(unframe(&mut buffer).ok().flatten().unwrap(), [9, 10, 11]);
        assert!(buffer.is_empty());
        assert!(matches!(unframe(&mut vec![0, 0]), Ok(None)));
        assert!(unframe(&mut vec![1, 0, 0, 0, 1, 7]).is_err(), "compressed");
        assert!(unframe(&mut vec![0, 0xff, 0, 0, 0]).is_err(), "too large");
    }
}
