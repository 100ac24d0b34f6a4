//! What the etcd client and the node-to-node client share on ureq:
//! running a request with per-stage timeouts, and certificates from PEM
//! files for their TLS.

use std::path::Path;
use std::time::Duration;

use ureq::tls::{Certificate, PemItem};

/// The certificates in the PEM file at `path` (other items skipped); an
/// error naming the file when it cannot be read, does not parse, or holds
/// none.
pub(crate) fn certificates(path: &Path) -> Result<Vec<Certificate<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certificates = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(Ok(c)),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!("{} holds no certificate", path.display()));
    }
    Ok(certificates)
}

/// Checks that the certificate chain at `cert` and the key at `key` can
/// identify this client in a TLS handshake (rustls refuses, for example, a
/// version 1 certificate). ureq only finds out at its first request, where
/// it panics; this finds out at start, with an error naming the file.
pub(crate) fn check_client_identity(cert: &Path, key: &Path) -> Result<(), String> {
    rustls_client(rustls::RootCertStore::empty(), Some((cert, key))).map(|_| ())
}

/// The certificates in the PEM file at `path`, for rustls; an error
/// naming the file.
pub(crate) fn rustls_certificates(
    path: &Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// A rustls client configuration trusting `roots` and, with `identity`
/// (certificate chain and key files), identifying this client by it.
pub(crate) fn rustls_client(
    roots: rustls::RootCertStore,
    identity: Option<(&Path, &Path)>,
) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::PrivateKeyDer;
    // ring, as everywhere in numpool (see server::tls for why).
    #[allow(deprecated)]
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let Some((cert, key)) = identity else {
        return Ok(builder.with_no_client_auth());
    };
    let chain = rustls_certificates(cert)?;
    let private =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    builder
        .with_client_auth_cert(chain, private)
        .map_err(|e| format!("{} cannot identify this node: {e}", cert.display()))
}

/// Runs `request` on `agent`, each stage (sending, waiting for the answer,
/// reading it) within `timeout`; connecting is the agent's own timeout.
/// Per stage rather than one global timeout: with a global one, ureq looks
/// the host up on a new thread for every request (a name lookup bounded by
/// a timeout), even an IP address; with none on the lookup it resolves
/// inline, and an IP address costs nothing.
pub(crate) fn run(
    agent: &ureq::Agent,
    request: ureq::http::Request<impl ureq::AsSendBody>,
    timeout: Option<Duration>,
) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
    let request = agent
        .configure_request(request)
        .timeout_send_request(timeout)
        .timeout_send_body(timeout)
        .timeout_recv_response(timeout)
        .timeout_recv_body(timeout)
        .allow_non_standard_methods(true)
        .build();
    agent.run(request)
}
