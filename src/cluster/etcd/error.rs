//! What can go wrong talking to etcd: [`EtcdError`] for callers, and
//! `Failure`, how one request to one endpoint failed (the client decides
//! from it whether to try the next endpoint).

/// What can go wrong talking to etcd.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// An endpoint that is not `http[s]://host[:port]`.
    #[error("invalid etcd endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A CA, certificate or key file that cannot be read or used.
    #[error("etcd TLS: {0}")]
    Tls(String),
    /// No endpoint accepted a connection (or its TLS handshake failed).
    #[error("cannot connect to etcd (last tried {endpoint}): {message}")]
    Connect {
        /// The last endpoint tried.
        endpoint: String,
        /// Why it failed.
        message: String,
    },
    /// Reading or writing a connection failed, or a stream ended early.
    #[error("etcd connection error: {0}")]
    Io(String),
    /// The call did not complete within its timeout.
    #[error("etcd did not answer in time")]
    Timeout,
    /// etcd answered with an error: a non-2xx status, or an `{"error":...}`
    /// line in a stream.
    #[error("etcd error (HTTP {status}, code {code:?}): {message}")]
    Http {
        /// The HTTP status (in a stream: the one etcd's error line names).
        status: u16,
        /// The gRPC status code etcd gave, if any (3 InvalidArgument,
        /// 5 NotFound, 9 FailedPrecondition, 11 OutOfRange, 14 Unavailable,
        /// 16 Unauthenticated).
        code: Option<i32>,
        /// etcd's message, e.g. `etcdserver: requested lease not found`.
        message: String,
    },
    /// etcd answered a gRPC call with an error status.
    #[error("etcd error (gRPC code {code}): {message}")]
    Grpc {
        /// The gRPC status code (see [`EtcdError::Http`]'s).
        code: i32,
        /// etcd's message, e.g. `etcdserver: invalid auth token`.
        message: String,
    },
    /// etcd canceled a watch for a reason other than compaction (a
    /// permission denied, for one).
    #[error("etcd canceled the watch: {0}")]
    WatchCanceled(String),
    /// etcd refused the user name and password (or authentication is not
    /// enabled there).
    #[error("etcd authentication failed: {0}")]
    Auth(String),
    /// A response that is not what the gateway sends.
    #[error("malformed response from etcd: {0}")]
    Malformed(String),
    /// A transaction's compares failed (where its success was required).
    #[error("etcd transaction compare failed (at revision {revision})")]
    CompareFailed {
        /// The store's revision when the transaction ran.
        revision: i64,
    },
    /// A keepalive found the lease gone: expired or revoked. Whatever was
    /// attached to it (a leader key) is gone too.
    #[error("etcd lease {0:x} expired or was revoked")]
    LeaseLost(i64),
    /// The caller asked to stop.
    #[error("cancelled")]
    Cancelled,
}

impl EtcdError {
    /// The gRPC status code etcd gave, if this is an error from etcd.
    pub fn code(&self) -> Option<i32> {
        match self {
            EtcdError::Http { code, .. } => *code,
            EtcdError::Grpc { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether this is etcd (or its TLS) refusing this node's credentials
    /// or certificates: waiting does not mend it, unlike an etcd that does
    /// not answer.
    pub fn is_refusal(&self) -> bool {
        match self {
            EtcdError::Tls(_) | EtcdError::Auth(_) | EtcdError::InvalidEndpoint { .. } => true,
            // 7: PermissionDenied; 16: Unauthenticated.
            EtcdError::Http { code, .. } => matches!(code, Some(7) | Some(16)),
            EtcdError::Grpc { code, .. } => matches!(code, 7 | 16),
            _ => false,
        }
    }

    /// etcd no longer takes the token this client sent.
    pub(super) fn is_stale_token(&self) -> bool {
        let message = match self {
            EtcdError::Http { message, .. } | EtcdError::Grpc { message, .. } => message,
            _ => return false,
        };
        self.code() == Some(16)
            || message.contains("invalid auth token")
            || message.contains("user name is empty")
    }
}

/// How one request failed.
pub(super) enum Failure {
    /// The endpoint could not be reached (try the next).
    Unreached(String),
    /// The TLS handshake failed: a certificate not trusted, expired, or
    /// refused (try the next; said as such if none answers).
    Handshake(String),
    /// The connection was closed as the request went out (see
    /// [`Failure::at`]).
    Closed(String),
    /// The call timed out.
    TimedOut,
    /// Anything else.
    Other(EtcdError),
}

impl From<ureq::Error> for Failure {
    fn from(e: ureq::Error) -> Self {
        match e {
            ureq::Error::Timeout(_) => Failure::TimedOut,
            ureq::Error::Io(io) => Failure::from_io(io),
            ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => {
                Failure::Unreached(e.to_string())
            }
            ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_) => {
                Failure::Handshake(e.to_string())
            }
            other => Failure::Other(EtcdError::Io(other.to_string())),
        }
    }
}

impl Failure {
    /// `self` for a request to `url`. A connection closed as the request
    /// went out is, over TLS, etcd refusing this node's client certificate:
    /// with TLS 1.3 the server checks it after the client has finished its
    /// side of the handshake, so the client sees a closed pipe, not an
    /// alert. Over plain HTTP it is an endpoint that went away.
    pub(super) fn at(self, url: &str) -> Failure {
        match self {
            Failure::Closed(m) if url.starts_with("https://") => Failure::Handshake(format!(
                "etcd closed the connection at the TLS handshake: does it trust this node's client certificate? ({m})"
            )),
            Failure::Closed(m) => Failure::Unreached(m),
            f => f,
        }
    }

    /// The error a caller sees when `endpoint` failed this way.
    pub(super) fn into_error(self, endpoint: &str) -> EtcdError {
        match self {
            Failure::Unreached(message) => EtcdError::Connect {
                endpoint: endpoint.to_string(),
                message,
            },
            Failure::Handshake(message) => EtcdError::Tls(format!("{endpoint}: {message}")),
            Failure::Closed(message) => EtcdError::Io(message),
            Failure::TimedOut => EtcdError::Timeout,
            Failure::Other(e) => e,
        }
    }

    pub(super) fn from_io(e: std::io::Error) -> Failure {
        use std::io::ErrorKind::*;
        match e.kind() {
            TimedOut | WouldBlock => Failure::TimedOut,
            BrokenPipe => Failure::Closed(e.to_string()),
            ConnectionRefused | ConnectionReset | ConnectionAborted | NotConnected
            | AddrNotAvailable | HostUnreachable | NetworkUnreachable => {
                Failure::Unreached(e.to_string())
            }
            _ if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) => {
                Failure::Handshake(e.to_string())
            }
            _ => match e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<ureq::Error>())
            {
                Some(ureq::Error::Timeout(_)) => Failure::TimedOut,
                Some(inner @ (ureq::Error::Tls(_) | ureq::Error::Rustls(_))) => {
                    Failure::Handshake(inner.to_string())
                }
                _ => Failure::Other(EtcdError::Io(e.to_string())),
            },
        }
    }
}
