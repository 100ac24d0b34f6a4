//! Unary calls to etcd's gRPC API, for the one call on a cluster's hot
//! path: the leader's fenced append (`KV.Txn`, [`EtcdClient::txn_put`]).
//!
//! Why not the JSON gateway, as every other call: each gateway request
//! costs etcd a JSON decode, a base64 decode and a second gRPC hop inside
//! etcd. Measured on a 2-core machine with etcd 3.4, a one-put transaction
//! of 1.5 KB took etcd about 1.0 ms of CPU through the gateway and 0.45 ms
//! over gRPC; a leader commits hundreds of them a second.
//!
//! HTTP/2 comes from `h2`, run on a current-thread tokio runtime of this
//! client's own: the calling thread drives it while it waits, so no thread
//! is added. One connection, kept between calls and dropped on any error
//! but an answer from etcd; endpoints are tried in order from the last one
//! that answered, as the gateway client does.
//!
//! [`EtcdClient::txn_put`]: super::EtcdClient::txn_put

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
    runtime: tokio::runtime::Runtime,
    targets: Vec<Target>,
    /// The endpoint to try first: the last one that answered.
    current: usize,
    tls: Option<tokio_rustls::TlsConnector>,
    /// The open connection and the endpoint it goes to.
    connection: Option<(usize, h2::client::SendRequest<Bytes>)>,
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
            runtime,
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
            if self.connection.as_ref().is_some_and(|(to, _)| *to != at) {
                self.connection = None;
            }
            let target = &self.targets[at];
            let attempt = once(
                target,
                &mut self.connection,
                at,
                self.tls.as_ref(),
                method,
                framed.clone(),
                token,
                connect_timeout,
            );
            let outcome = self
                .runtime
                .block_on(async { tokio::time::timeout(timeout, attempt).await });
            match outcome {
                Ok(Ok(answer)) => {
                    self.current = at;
                    return Ok(answer);
                }
                // etcd answered: the connection is sound.
                Ok(Err(Failure::Other(e @ EtcdError::Grpc { .. }))) => {
                    self.current = at;
                    return Err(e);
                }
                Ok(Err(f)) => {
                    self.connection = None;
                    match f {
                        Failure::Unreached(_) | Failure::Handshake(_) => {
                            last = Some(f.into_error(&target.endpoint));
                        }
                        f => return Err(f.into_error(&target.endpoint)),
                    }
                }
                Err(_) => {
                    // Timed out: the next call starts from the following
                    // endpoint, on a new connection.
                    self.connection = None;
                    self.current = (at + 1) % n;
                    return Err(EtcdError::Timeout);
                }
            }
        }
        Err(last.unwrap_or(EtcdError::Timeout))
    }
}

/// One call to one endpoint, connecting first if need be.
#[allow(clippy::too_many_arguments)]
async fn once(
    target: &Target,
    connection: &mut Option<(usize, h2::client::SendRequest<Bytes>)>,
    at: usize,
    tls: Option<&tokio_rustls::TlsConnector>,
    method: &str,
    framed: Bytes,
    token: Option<&str>,
    connect_timeout: Duration,
) -> Result<Vec<u8>, Failure> {
    let send = match connection {
        Some((_, send)) => send.clone(),
        None => {
            let send = connect(target, tls, connect_timeout)
                .await
                .map_err(|f| f.at(&target.endpoint))?;
            *connection = Some((at, send.clone()));
            send
        }
    };
    let mut send = send.ready().await.map_err(h2_failure)?;
    let scheme = if target.https { "https" } else { "http" };
    let mut request = http::Request::builder()
        .method(http::Method::POST)
        .uri(format!(
            "{scheme}://{}:{}{method}",
            authority_host(&target.host),
            target.port
        ))
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers");
    if let Some(token) = token {
        request = request.header("token", token);
    }
    let request = request
        .body(())
        .map_err(|e| Failure::Other(EtcdError::Io(e.to_string())))?;
    let (answer, mut body) = send.send_request(request, false).map_err(h2_failure)?;
    body.send_data(framed, true).map_err(h2_failure)?;
    let answer = answer.await.map_err(h2_failure)?;
    let (parts, mut body) = answer.into_parts();
    if parts.status != http::StatusCode::OK {
        return Err(Failure::Other(EtcdError::Http {
            status: parts.status.as_u16(),
            code: None,
            message: "a gRPC call answered with this HTTP status".into(),
        }));
    }
    // A call that fails at once answers with its status in the headers.
    if let Some(status) = grpc_status(&parts.headers) {
        return Err(Failure::Other(status));
    }
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(h2_failure)?;
        let _ = body.flow_control().release_capacity(chunk.len());
        if (data.len() + chunk.len()) as u64 > MAX_ANSWER_BYTES {
            return Err(Failure::Other(EtcdError::Malformed(
                "a gRPC answer over the size limit".into(),
            )));
        }
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.map_err(h2_failure)?;
    if let Some(status) = trailers.as_ref().and_then(grpc_status) {
        return Err(Failure::Other(status));
    }
    if trailers.is_none() {
        return Err(Failure::Other(EtcdError::Io(
            "a gRPC answer without its status".into(),
        )));
    }
    unframe(data).map_err(Failure::Other)
}

/// The message in a gRPC answer's body: one uncompressed length-prefixed
/// message.
fn unframe(mut data: Vec<u8>) -> Result<Vec<u8>, EtcdError> {
    if data.len() < 5 || data[0] != 0 {
        return Err(EtcdError::Malformed(
            "a gRPC answer that is not one uncompressed message".into(),
        ));
    }
    let len = u32::from_be_bytes(data[1..5].try_into().expect("4 bytes")) as usize;
    if data.len() != 5 + len {
        return Err(EtcdError::Malformed(
            "a gRPC answer whose length does not match its prefix".into(),
        ));
    }
    data.drain(..5);
    Ok(data)
}

/// The error a `grpc-status` other than 0 (OK) names, with etcd's
/// message; `None` when there is no status or it is OK.
fn grpc_status(headers: &http::HeaderMap) -> Option<EtcdError> {
    let code = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .parse::<i32>()
        .ok()?;
    if code == 0 {
        return None;
    }
    let message = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .map(percent_decode)
        .unwrap_or_default();
    Some(EtcdError::Grpc { code, message })
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
) -> Result<h2::client::SendRequest<Bytes>, Failure> {
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
    // Room for a whole piece of the log in flight (1 MiB at most).
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
            let (send, connection) = builder.handshake(stream).await.map_err(h2_failure)?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Ok(send)
        }
        (true, None) => Err(Failure::Other(EtcdError::Tls(
            "an https endpoint without TLS settings".into(),
        ))),
        (false, _) => {
            let (send, connection) = builder.handshake(tcp).await.map_err(h2_failure)?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Ok(send)
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
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read_certs = |path: &std::path::Path| {
        CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| EtcdError::Tls(format!("{}: {e}", path.display())))
    };
    let mut roots = rustls::RootCertStore::empty();
    match tls {
        Some(tls) => {
            for cert in read_certs(&tls.ca)? {
                roots
                    .add(cert)
                    .map_err(|e| EtcdError::Tls(format!("{}: {e}", tls.ca.display())))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    // ring, as everywhere in numpool (see server::tls for why).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| EtcdError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    let mut config = match tls.map(|t| (&t.cert, &t.key)) {
        Some((Some(cert), Some(key))) => {
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| EtcdError::Tls(format!("{}: {e}", key.display())))?;
            builder
                .with_client_auth_cert(read_certs(cert)?, key)
                .map_err(|e| EtcdError::Tls(format!("{}: {e}", cert.display())))?
        }
        _ => builder.with_no_client_auth(),
    };
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
        assert!(grpc_status(&headers).is_none());
        headers.insert("grpc-status", "16".parse().unwrap());
        headers.insert(
            "grpc-message",
            "etcdserver:%20invalid%20auth%20token".parse().unwrap(),
        );
        let e = grpc_status(&headers).unwrap();
        assert!(e.is_stale_token() && e.is_refusal());
        assert_eq!(e.code(), Some(16));
        assert!(e.to_string().contains("etcdserver: invalid auth token"));
        assert_eq!(percent_decode("100%25 %zz"), "100% %zz");

        assert_eq!(unframe(vec![0, 0, 0, 0, 2, 7, 8]).unwrap(), [7, 8]);
        assert!(unframe(vec![1, 0, 0, 0, 1, 7]).is_err(), "compressed");
        assert!(unframe(vec![0, 0, 0, 0, 3, 7]).is_err(), "short");
        assert!(unframe(vec![0, 0]).is_err());
    }
}
