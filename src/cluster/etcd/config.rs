//! How to reach etcd: its endpoints ([`EtcdConfig`]), TLS ([`EtcdTls`]) and
//! user authentication ([`EtcdAuth`]), and the checks that turn them into a
//! client's TLS configuration and endpoint URLs.

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;

use super::EtcdError;

/// TLS to etcd: the CA its certificate is checked against, and this
/// client's certificate and key for mutual TLS (`--client-cert-auth`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EtcdTls {
    /// PEM: the CA (or CAs) etcd's certificate must chain to.
    pub ca: PathBuf,
    /// PEM: this client's certificate chain, for mutual TLS.
    pub cert: Option<PathBuf>,
    /// PEM: this client's private key, for mutual TLS.
    pub key: Option<PathBuf>,
}

/// etcd's user authentication.
#[derive(Clone)]
pub struct EtcdAuth {
    /// The user.
    pub user: String,
    /// The password (never shown by `Debug`).
    pub password: String,
    /// The token etcd gave for them, shared by every client made from this
    /// value or its clones: taking one costs etcd a bcrypt comparison (tens
    /// of milliseconds of its CPU), so a node takes one, not one a client.
    pub(super) token: Arc<Mutex<Option<String>>>,
}

impl EtcdAuth {
    /// Logs in as `user` with `password`.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> EtcdAuth {
        EtcdAuth {
            user: user.into(),
            password: password.into(),
            token: Arc::default(),
        }
    }
}

impl PartialEq for EtcdAuth {
    fn eq(&self, other: &Self) -> bool {
        self.user == other.user && self.password == other.password
    }
}

impl Eq for EtcdAuth {}

impl std::fmt::Debug for EtcdAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdAuth")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// How to reach etcd.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EtcdConfig {
    /// Client URLs: `http://host[:port]` or `https://host[:port]`.
    pub endpoints: Vec<String>,
    /// TLS, for `https://` endpoints (without it they are checked against
    /// the usual web roots).
    pub tls: Option<EtcdTls>,
    /// User authentication, when etcd has it enabled.
    pub auth: Option<EtcdAuth>,
}

impl EtcdConfig {
    /// Plain endpoints, no TLS, no authentication.
    pub fn plain(endpoints: Vec<String>) -> EtcdConfig {
        EtcdConfig {
            endpoints,
            ..EtcdConfig::default()
        }
    }
}

/// The TLS settings of `config` for ureq.
pub(super) fn tls_config(tls: &EtcdTls) -> Result<ureq::tls::TlsConfig, EtcdError> {
    let read = |path: &PathBuf| {
        std::fs::read(path)
            .map_err(|e| EtcdError::Tls(format!("cannot read {}: {e}", path.display())))
    };
    let roots = crate::cluster::transport::certificates(&tls.ca).map_err(EtcdError::Tls)?;
    let mut builder =
        ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::new_with_certs(&roots));
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            crate::cluster::transport::check_client_identity(cert, key).map_err(EtcdError::Tls)?;
            let chain = crate::cluster::transport::certificates(cert).map_err(EtcdError::Tls)?;
            let key = ureq::tls::PrivateKey::from_pem(&read(key)?)
                .map_err(|e| EtcdError::Tls(format!("{}: {e}", key.display())))?;
            builder = builder.client_cert(Some(ureq::tls::ClientCert::new_with_certs(&chain, key)));
        }
        (None, None) => {}
        _ => {
            return Err(EtcdError::Tls(
                "a client certificate needs its key, and a key its certificate".into(),
            ))
        }
    }
    Ok(builder.build())
}

/// Checks an endpoint and returns it without a trailing slash.
pub(super) fn endpoint(raw: &str) -> Result<String, EtcdError> {
    let trimmed = raw.trim().trim_end_matches('/');
    let invalid = |reason| EtcdError::InvalidEndpoint {
        endpoint: raw.to_string(),
        reason,
    };
    let rest = trimmed
        .strip_prefix("http://")
        .or_else(|| trimmed.strip_prefix("https://"))
        .ok_or_else(|| invalid("not http:// or https://"))?;
    if rest.is_empty() || rest.contains('/') {
        return Err(invalid("expected scheme://host[:port] and nothing after"));
    }
    if rest.contains('@') {
        return Err(invalid(
            "credentials in the URL: use the user and password settings",
        ));
    }
    // A port given must be a number.
    if let Some((_, port)) = rest
        .rsplit_once(':')
        .filter(|(h, _)| !h.ends_with(']') || rest.starts_with('['))
    {
        if !port.is_empty() && !port.ends_with(']') && port.parse::<u16>().is_err() {
            return Err(invalid("the port is not a number"));
        }
    }
    Ok(trimmed.to_string())
}
