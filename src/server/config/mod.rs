//! `numpool serve`'s configuration: every setting's flag, environment
//! variable (`NUMPOOL_*`), TOML key and default, declared once in
//! [`ServeArgs`], and resolved into a [`ServeConfig`] with precedence
//! flag > environment > file > default, each value checked (a setting that
//! cannot be honoured stops start-up, naming it). Secrets (API keys, etcd's
//! password) can come from files or the environment, never only from the
//! command line, and are never shown. The flags themselves are in `args`.

mod args;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cluster::{
    ClusterConfig, EtcdAuth, EtcdConfig, EtcdTls, DEFAULT_LEASE_TTL, DEFAULT_MAX_LAG,
};
use crate::selection::capacity::{valid_rate, MAX_RATE};
use crate::server::http::{
    auth, ApiKeys, HttpOptions, DEFAULT_BODY_LIMIT, DEFAULT_IDEMPOTENCY_CACHE_BYTES,
    DEFAULT_WEBHOOK_CACHE_BYTES,
};
use crate::{
    parse_duration, CapacityConfig, EngineConfig, FsyncPolicy, HealthConfig, JournalConfig,
    KindRates, DEFAULT_STICKY_TTL_SECS,
};

/// Where `serve` keeps its state unless told otherwise (also `numpool
/// repair`'s default).
pub(crate) const DEFAULT_DATA_DIR: &str = "./numpool-data";

pub(in crate::server) use args::ServeArgs;

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the config file {path} is not valid: {message}")]
    File { path: PathBuf, message: String },
    #[error("{setting}: {message}")]
    Invalid {
        setting: &'static str,
        message: String,
    },
    #[error("no API key is configured: that is only allowed on a loopback address, not {0}")]
    UnauthenticatedOnNetwork(SocketAddr),
    #[error(transparent)]
    WebhookKey(#[from] auth::KeyError),
}

/// Where state is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Storage {
    Ephemeral,
    DataDir(PathBuf),
}

/// How `numpool serve` logs: the library's `tracing` events (and
/// actix-web's) to standard error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LogConfig {
    /// `EnvFilter` directives (`info`, `numpool=debug,actix_web=warn`, ...).
    pub filter: String,
    /// One JSON object a line instead of text.
    pub json: bool,
}

impl LogConfig {
    /// Installs the subscriber (once per process; later calls do nothing).
    pub(super) fn install(&self) {
        let filter = tracing_subscriber::EnvFilter::new(&self.filter);
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        let _ = if self.json {
            builder
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .try_init()
        } else {
            builder.with_ansi(false).try_init()
        };
    }
}

/// The effective configuration of a server.
#[derive(Debug, Clone)]
pub(super) struct ServeConfig {
    pub listen: SocketAddr,
    pub log: LogConfig,
    /// `Some`: this node joins a cluster.
    pub cluster: Option<ClusterConfig>,
    pub engine: EngineConfig,
    pub http: HttpOptions,
    pub storage: Storage,
}

impl ServeArgs {
    /// Fills what flags and environment left unset from the config file.
    pub(super) fn with_file(mut self) -> Result<ServeArgs, ConfigError> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let file: ServeArgs = toml::from_str(&text).map_err(|e| ConfigError::File {
            path: path.clone(),
            message: e.to_string(),
        })?;
        macro_rules! fill {
            ($($field:ident),*) => { $( if self.$field.is_none() { self.$field = file.$field; } )* };
        }
        fill!(
            listen,
            sticky_ttl,
            webhook_public_key,
            tls_cert,
            tls_key,
            tls_ca,
            access_log,
            etcd_ca,
            etcd_cert,
            etcd_key,
            etcd_user,
            etcd_password_file,
            fsync,
            snapshot_every,
            health_window,
            health_min_samples,
            health_min_success_ratio,
            health_max_spam_ratio,
            arbiters,
            mailbox_bound,
            body_limit,
            http_workers,
            idempotency_cache_bytes,
            webhook_cache_bytes,
            long_code_mps,
            toll_free_mps,
            short_code_mps,
            cluster,
            advertise,
            lease_ttl,
            max_lag,
            log_format
        );
        // RUST_LOG is the environment's: it wins over the file.
        if self.log_level.is_none() && std::env::var_os("RUST_LOG").is_none() {
            self.log_level = file.log_level;
        }
        if self.etcd.is_empty() {
            self.etcd = file.etcd;
        }
        // The API keys are one setting, from flags/environment or the file.
        if self.api_keys.is_empty() && self.api_key_file.is_none() {
            self.api_keys = file.api_keys;
            self.api_key_file = file.api_key_file;
        }
        // So is where state is kept: a --data-dir given on the command line
        // is never overridden by `ephemeral = true` in the file.
        if self.data_dir.is_none() && !self.ephemeral {
            if file.ephemeral && file.data_dir.is_some() {
                return Err(ConfigError::File {
                    path,
                    message: "ephemeral and data_dir are both set: keep one".into(),
                });
            }
            self.data_dir = file.data_dir;
            self.ephemeral = file.ephemeral;
        }
        Ok(self)
    }

    /// The effective configuration, with defaults for what is unset.
    pub(super) fn resolve(self) -> Result<ServeConfig, ConfigError> {
        let args = self.with_file()?;
        let duration =
            |setting: &'static str, value: &Option<String>, default: Duration| match value {
                None => Ok(default),
                Some(s) => match parse_duration(s) {
                    Ok(d) if d.is_zero() => Err(ConfigError::Invalid {
                        setting,
                        message: "must be above zero".into(),
                    }),
                    Ok(d) => Ok(d),
                    Err(e) => Err(ConfigError::Invalid {
                        setting,
                        message: e.to_string(),
                    }),
                },
            };
        let ttl = duration(
            "sticky-ttl",
            &args.sticky_ttl,
            Duration::from_secs(u64::from(DEFAULT_STICKY_TTL_SECS)),
        )?;
        let defaults = HealthConfig::default();
        let window = duration(
            "health-window",
            &args.health_window,
            Duration::from_secs(u64::from(defaults.window_secs)),
        )?;
        let ratio = |setting: &'static str, value: Option<f64>, default: f64| match value {
            None => Ok(default),
            Some(r) if (0.0..=1.0).contains(&r) => Ok(r),
            Some(r) => Err(ConfigError::Invalid {
                setting,
                message: format!("{r} is not a ratio between 0 and 1"),
            }),
        };
        let health = HealthConfig {
            window_secs: u32::try_from(window.as_secs().max(1)).unwrap_or(u32::MAX),
            min_samples: args.health_min_samples.unwrap_or(defaults.min_samples),
            min_success_ratio: ratio(
                "health-min-success-ratio",
                args.health_min_success_ratio,
                defaults.min_success_ratio,
            )?,
            max_spam_ratio: ratio(
                "health-max-spam-ratio",
                args.health_max_spam_ratio,
                defaults.max_spam_ratio,
            )?,
            ..defaults
        };
        let listen = args
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let mut api_keys = args.api_keys.clone();
        if let Some(path) = &args.api_key_file {
            api_keys.extend(read_secret_lines("api-key-file", path)?);
        }
        let keys = ApiKeys::new(api_keys);
        let tls = match (&args.tls_cert, &args.tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(std::sync::Arc::new(
                crate::server::http::tls::server_config(cert, key).map_err(|e| {
                    ConfigError::Invalid {
                        setting: "tls-cert",
                        message: e.to_string(),
                    }
                })?,
            )),
            _ => {
                return Err(ConfigError::Invalid {
                    setting: "tls-cert",
                    message: "--tls-cert and --tls-key go together".into(),
                })
            }
        };
        if keys.is_empty() && !listen.ip().is_loopback() {
            return Err(ConfigError::UnauthenticatedOnNetwork(listen));
        }
        let webhook_key = args
            .webhook_public_key
            .as_deref()
            .map(auth::webhook_key)
            .transpose()?;
        let fsync = match &args.fsync {
            None => FsyncPolicy::default(),
            Some(s) => s
                .parse()
                .map_err(|e: crate::FsyncPolicyError| ConfigError::Invalid {
                    setting: "fsync",
                    message: e.to_string(),
                })?,
        };
        let snapshot_every = duration(
            "snapshot-every",
            &args.snapshot_every,
            JournalConfig::DEFAULT_SNAPSHOT_EVERY,
        )?;
        let storage = if args.ephemeral {
            Storage::Ephemeral
        } else {
            Storage::DataDir(
                args.data_dir
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            )
        };
        let journal = match &storage {
            Storage::Ephemeral => None,
            Storage::DataDir(dir) => Some(JournalConfig {
                dir: dir.clone(),
                fsync,
                snapshot_every: Some(snapshot_every),
            }),
        };
        let default_rates = KindRates::default();
        let rate = |setting: &'static str, value: Option<f64>, default: f64| {
            match value {
            None => Ok(default),
            Some(r) if valid_rate(r) => Ok(r),
            Some(r) => Err(ConfigError::Invalid {
                setting,
                message: format!("{r} is not a rate of at least one a day (1/86400) and at most {MAX_RATE} per second"),
            }),
        }
        };
        let rates = KindRates {
            long_code: rate("long-code-mps", args.long_code_mps, default_rates.long_code)?,
            toll_free: rate("toll-free-mps", args.toll_free_mps, default_rates.toll_free)?,
            short_code: rate(
                "short-code-mps",
                args.short_code_mps,
                default_rates.short_code,
            )?,
        };
        let cluster = match &args.cluster {
            None => None,
            Some(name) => {
                if args.etcd.is_empty() {
                    return Err(ConfigError::Invalid {
                        setting: "etcd",
                        message: "--cluster needs --etcd URL[,URL...]".into(),
                    });
                }
                if storage == Storage::Ephemeral {
                    return Err(ConfigError::Invalid {
                        setting: "cluster",
                        message:
                            "a cluster node keeps its state in --data-dir; it cannot be --ephemeral"
                                .into(),
                    });
                }
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    return Err(ConfigError::Invalid {
                        setting: "cluster",
                        message: format!(
                            "{name:?}: a cluster name is letters, digits, '-' and '_'"
                        ),
                    });
                }
                let scheme = if tls.is_some() { "https" } else { "http" };
                let advertise = match &args.advertise {
                    Some(a) => a.trim_end_matches('/').to_string(),
                    None if listen.ip().is_unspecified() => {
                        return Err(ConfigError::Invalid {
                            setting: "advertise",
                            message: format!("listening on {listen}: say where other nodes reach this one with --advertise {scheme}://HOST:PORT"),
                        })
                    }
                    None => format!("{scheme}://{listen}"),
                };
                Some(ClusterConfig {
                    name: name.clone(),
                    etcd: etcd_config(&args)?,
                    tls_ca: args.tls_ca.clone(),
                    advertise,
                    lease_ttl: duration("lease-ttl", &args.lease_ttl, DEFAULT_LEASE_TTL)?,
                    // Nodes of one cluster take the same keys.
                    api_key: keys.first().map(str::to_string),
                    max_lag: args.max_lag.unwrap_or(DEFAULT_MAX_LAG),
                })
            }
        };
        let log = LogConfig {
            filter: match args
                .log_level
                .clone()
                .or_else(|| std::env::var("RUST_LOG").ok())
            {
                Some(f) if !f.trim().is_empty() => {
                    tracing_subscriber::EnvFilter::try_new(&f).map_err(|e| {
                        ConfigError::Invalid {
                            setting: "log-level",
                            message: format!("{f:?}: {e}"),
                        }
                    })?;
                    f
                }
                _ => "info".to_string(),
            },
            json: match args.log_format.as_deref().map(str::trim) {
                None | Some("text") => false,
                Some("json") => true,
                Some(other) => {
                    return Err(ConfigError::Invalid {
                        setting: "log-format",
                        message: format!("{other:?}: use text or json"),
                    })
                }
            },
        };
        let mailbox_bound = args.mailbox_bound.unwrap_or(1024);
        if mailbox_bound == 0 {
            return Err(ConfigError::Invalid {
                setting: "mailbox-bound",
                message: "must be at least 1".into(),
            });
        }
        Ok(ServeConfig {
            listen,
            log,
            cluster,
            engine: EngineConfig {
                sticky_ttl_secs: u32::try_from(ttl.as_secs().max(1)).unwrap_or(u32::MAX),
                health,
                arbiters: args.arbiters.unwrap_or(0),
                mailbox_bound,
                journal,
                capacity: CapacityConfig {
                    rates,
                    ..CapacityConfig::default()
                },
                ..EngineConfig::default()
            },
            http: HttpOptions {
                keys,
                webhook_key,
                body_limit: args.body_limit.unwrap_or(DEFAULT_BODY_LIMIT).max(1024),
                workers: args.http_workers.unwrap_or(0),
                idempotency_cache_bytes: args
                    .idempotency_cache_bytes
                    .unwrap_or(DEFAULT_IDEMPOTENCY_CACHE_BYTES),
                webhook_cache_bytes: args
                    .webhook_cache_bytes
                    .unwrap_or(DEFAULT_WEBHOOK_CACHE_BYTES),
                cluster: None,
                handle_signals: true,
                tls,
                access_log: args.access_log.unwrap_or(false),
            },
            storage,
        })
    }
}

/// The lines of a secret file (API keys: one a line), blank ones left out.
fn read_secret_lines(
    setting: &'static str,
    path: &std::path::Path,
) -> Result<Vec<String>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Invalid {
        setting,
        message: format!("cannot read {}: {e}", path.display()),
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

/// How to reach etcd: its URLs, TLS and authentication, from `args`.
fn etcd_config(args: &ServeArgs) -> Result<EtcdConfig, ConfigError> {
    let tls = match (&args.etcd_ca, &args.etcd_cert, &args.etcd_key) {
        (None, None, None) => None,
        (Some(ca), cert, key) => {
            if cert.is_some() != key.is_some() {
                return Err(ConfigError::Invalid {
                    setting: "etcd-cert",
                    message: "--etcd-cert and --etcd-key go together".into(),
                });
            }
            Some(EtcdTls {
                ca: ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
            })
        }
        (None, _, _) => return Err(ConfigError::Invalid {
            setting: "etcd-ca",
            message:
                "a client certificate for etcd needs --etcd-ca, the CA etcd's certificate chains to"
                    .into(),
        }),
    };
    let auth = match &args.etcd_user {
        None => None,
        Some(user) => {
            let password = match &args.etcd_password_file {
                Some(path) => read_secret_lines("etcd-password-file", path)?
                    .into_iter()
                    .next(),
                None => std::env::var("NUMPOOL_ETCD_PASSWORD").ok(),
            }
            .filter(|p| !p.is_empty())
            .ok_or(ConfigError::Invalid {
                setting: "etcd-user",
                message: "etcd's password comes from --etcd-password-file or NUMPOOL_ETCD_PASSWORD"
                    .into(),
            })?;
            Some(EtcdAuth::new(user.clone(), password))
        }
    };
    Ok(EtcdConfig {
        endpoints: args.etcd.clone(),
        tls,
        auth,
    })
}

impl ServeConfig {
    /// The start-up configuration as an event (no secret: keys counted,
    /// etcd's user named, its password never).
    pub(super) fn log_start_up(&self) {
        let cluster = self.cluster.as_ref();
        tracing::info!(
            listen = %self.listen,
            api_keys = self.http.keys.len(),
            https = self.http.tls.is_some(),
            access_log = self.http.access_log,
            storage = %match &self.storage {
                Storage::DataDir(dir) => dir.display().to_string(),
                Storage::Ephemeral => "ephemeral".to_string(),
            },
            cluster = cluster.map(|c| c.name.as_str()),
            advertise = cluster.map(|c| c.advertise.as_str()),
            etcd = cluster.map(|c| c.etcd.endpoints.join(",")),
            etcd_tls = cluster.is_some_and(|c| c.etcd.tls.is_some()),
            etcd_user = cluster.and_then(|c| c.etcd.auth.as_ref()).map(|a| a.user.as_str()),
            "starting"
        );
    }

    /// The effective configuration for the start-up banner (keys masked).
    pub(super) fn describe(&self) -> String {
        let s = &self.engine;
        let mut lines = vec![
            format!("listen: {}", self.listen),
            format!(
                "api keys: {}",
                if self.http.keys.is_empty() {
                    "none (unauthenticated access, allowed on loopback only)".to_string()
                } else {
                    self.http.keys.describe()
                }
            ),
            format!("sticky ttl: {}s", s.sticky_ttl_secs),
            format!(
                "default rates: long code {}/s, toll-free {}/s, short code {}/s",
                s.capacity.rates.long_code, s.capacity.rates.toll_free, s.capacity.rates.short_code
            ),
            format!(
                "health: window {}s, min samples {}, unhealthy below {} success or above {} spam",
                s.health.window_secs,
                s.health.min_samples,
                s.health.min_success_ratio,
                s.health.max_spam_ratio
            ),
            format!(
                "actors: {}, mailbox bound {}",
                if self.engine.arbiters == 0 {
                    "one arbiter thread per core".to_string()
                } else {
                    format!("{} arbiter threads", self.engine.arbiters)
                },
                self.engine.mailbox_bound
            ),
            format!(
                "body limit: {} bytes; caches: idempotency {} bytes, webhook ids {} bytes",
                self.http.body_limit,
                self.http.idempotency_cache_bytes,
                self.http.webhook_cache_bytes
            ),
            format!(
                "webhook signatures: {}",
                if self.http.webhook_key.is_some() {
                    "verified with the configured key"
                } else {
                    "off (Bearer key only)"
                }
            ),
        ];
        lines.push(format!(
            "https: {}; access log: {}",
            if self.http.tls.is_some() {
                "on (--tls-cert)"
            } else {
                "off"
            },
            if self.http.access_log { "on" } else { "off" }
        ));
        if let Some(c) = &self.cluster {
            lines.push(format!(
                "cluster: {} on etcd {} as {} (lease {}s; etcd TLS {}, user {})",
                c.name,
                c.etcd.endpoints.join(","),
                c.advertise,
                c.lease_ttl.as_secs_f64(),
                if c.etcd.tls.as_ref().is_some_and(|t| t.cert.is_some()) {
                    "with a client certificate"
                } else if c.etcd.tls.is_some() {
                    "on"
                } else {
                    "off"
                },
                c.etcd.auth.as_ref().map_or("none", |a| a.user.as_str())
            ));
        }
        lines.push(match (&self.storage, &self.engine.journal) {
            (Storage::DataDir(dir), Some(j)) => format!(
                "storage: journal in {} (fsync {}, snapshot every {})",
                dir.display(),
                j.fsync,
                j.snapshot_every
                    .map_or("never".to_string(), |d| format!("{}s", d.as_secs()))
            ),
            _ => "storage: ephemeral (in memory only; everything is lost on exit)".into(),
        });
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests;
