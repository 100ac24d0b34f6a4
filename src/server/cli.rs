//! The `numpool` command line: `serve` (the HTTP API) and `repair` (move a
//! damaged journal's bytes aside). `serve`'s configuration comes from flags,
//! `NUMPOOL_*` environment variables and a TOML file, in that order of
//! precedence, over defaults.
//!
//! (Over 600 lines: every setting's flag, variable, TOML key, default and
//! check is in this one file, so that the three sources cannot disagree;
//! its tests are at the end.)

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

use crate::cluster::{ClusterConfig, Node, DEFAULT_MAX_LAG};
use crate::selection::capacity::{valid_rate, MAX_RATE};
use crate::server::http::{
    auth, ApiKeys, HttpOptions, DEFAULT_BODY_LIMIT, DEFAULT_IDEMPOTENCY_CACHE_BYTES,
    DEFAULT_WEBHOOK_CACHE_BYTES,
};
use crate::{
    parse_duration, CapacityConfig, Engine, EngineConfig, FsyncPolicy, HealthConfig, JournalConfig,
    KindRates, DEFAULT_STICKY_TTL_SECS,
};

/// numpool: sender selection for SMS number pools.
#[derive(Debug, Parser)]
#[command(name = "numpool", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the Telnyx-compatible HTTP API.
    Serve(Box<ServeArgs>),
    /// Move the damaged bytes of a data directory's logs to side files,
    /// keeping every valid record, so `serve` can start again.
    Repair(RepairArgs),
    /// Look at a cluster and change its leader on purpose, through any node.
    #[command(subcommand)]
    Cluster(super::cluster_cli::ClusterCommand),
}

/// Flags of `numpool repair`.
#[derive(Debug, Args)]
pub struct RepairArgs {
    /// The data directory to repair (no server may be running on it).
    #[arg(long, env = "NUMPOOL_DATA_DIR", default_value = "./numpool-data")]
    pub data_dir: PathBuf,
}

/// Flags of `numpool serve`; each also reads `NUMPOOL_<NAME>`.
#[derive(Debug, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "NUMPOOL_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// A TOML file with any of these settings (flags and environment win).
    #[arg(long, env = "NUMPOOL_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// An accepted API key (repeat the flag; comma separated in the environment).
    #[arg(long = "api-key", env = "NUMPOOL_API_KEYS", value_delimiter = ',')]
    #[serde(default)]
    pub api_keys: Vec<String>,
    /// Sticky ttl, e.g. `8d`, `12h`, `90s` [default: 8d].
    #[arg(long, env = "NUMPOOL_STICKY_TTL")]
    pub sticky_ttl: Option<String>,
    /// Base64 ed25519 public key that verifies webhook signatures.
    #[arg(long, env = "NUMPOOL_WEBHOOK_PUBLIC_KEY")]
    pub webhook_public_key: Option<String>,
    /// Directory for durable state [default: ./numpool-data].
    #[arg(long, env = "NUMPOOL_DATA_DIR", conflicts_with = "ephemeral")]
    pub data_dir: Option<PathBuf>,
    /// Keep everything in memory only.
    #[arg(long, env = "NUMPOOL_EPHEMERAL")]
    #[serde(default)]
    pub ephemeral: bool,
    /// When the journal syncs to disk: `always`, `interval` (every 10 ms),
    /// `interval:DUR`, or `never` [default: interval].
    #[arg(long, env = "NUMPOOL_FSYNC")]
    pub fsync: Option<String>,
    /// How often a snapshot compacts the journal, e.g. `10m` [default: 10m].
    #[arg(long, env = "NUMPOOL_SNAPSHOT_EVERY")]
    pub snapshot_every: Option<String>,
    /// Health window, e.g. `24h` [default: 24h].
    #[arg(long, env = "NUMPOOL_HEALTH_WINDOW")]
    pub health_window: Option<String>,
    /// Outcomes needed before a sender can be unhealthy [default: 20].
    #[arg(long, env = "NUMPOOL_HEALTH_MIN_SAMPLES")]
    pub health_min_samples: Option<u32>,
    /// Unhealthy below this success ratio [default: 0.25].
    #[arg(long, env = "NUMPOOL_HEALTH_MIN_SUCCESS_RATIO")]
    pub health_min_success_ratio: Option<f64>,
    /// Unhealthy above this spam ratio [default: 0.75].
    #[arg(long, env = "NUMPOOL_HEALTH_MAX_SPAM_RATIO")]
    pub health_max_spam_ratio: Option<f64>,
    /// Actor threads (0: one per core) [default: 0].
    #[arg(long, env = "NUMPOOL_ARBITERS")]
    pub arbiters: Option<usize>,
    /// Messages an actor may queue before requests get 429 [default: 1024].
    #[arg(long, env = "NUMPOOL_MAILBOX_BOUND")]
    pub mailbox_bound: Option<usize>,
    /// Largest request body in bytes [default: 262144].
    #[arg(long, env = "NUMPOOL_BODY_LIMIT")]
    pub body_limit: Option<usize>,
    /// HTTP worker threads (0: one per core) [default: 0].
    #[arg(long, env = "NUMPOOL_HTTP_WORKERS")]
    pub http_workers: Option<usize>,
    /// Bytes the Idempotency-Key cache may hold, oldest out first [default: 67108864].
    #[arg(long, env = "NUMPOOL_IDEMPOTENCY_CACHE_BYTES")]
    pub idempotency_cache_bytes: Option<usize>,
    /// Bytes the webhook event id cache may hold, oldest out first [default: 16777216].
    #[arg(long, env = "NUMPOOL_WEBHOOK_CACHE_BYTES")]
    pub webhook_cache_bytes: Option<usize>,
    /// Messages per second of a long code without a rate of its own [default: 1].
    #[arg(long, env = "NUMPOOL_LONG_CODE_MPS")]
    pub long_code_mps: Option<f64>,
    /// Messages per second of a toll-free number without a rate of its own [default: 3].
    #[arg(long, env = "NUMPOOL_TOLL_FREE_MPS")]
    pub toll_free_mps: Option<f64>,
    /// Messages per second of a short code without a rate of its own [default: 100].
    #[arg(long, env = "NUMPOOL_SHORT_CODE_MPS")]
    pub short_code_mps: Option<f64>,
    /// Join the cluster of this name (high availability; needs --etcd).
    #[arg(long, env = "NUMPOOL_CLUSTER")]
    pub cluster: Option<String>,
    /// etcd's client URLs, comma separated (with --cluster).
    #[arg(long, env = "NUMPOOL_ETCD", value_delimiter = ',')]
    #[serde(default)]
    pub etcd: Vec<String>,
    /// The URL other nodes reach this one's API at [default: http://LISTEN].
    #[arg(long, env = "NUMPOOL_ADVERTISE")]
    pub advertise: Option<String>,
    /// The leader's lease: a leader that stops renewing it is replaced after about this long [default: 2s].
    #[arg(long, env = "NUMPOOL_LEASE_TTL")]
    pub lease_ttl: Option<String>,
    /// What to log: a level (error, warn, info, debug, trace) or RUST_LOG-style directives [default: RUST_LOG, else info].
    #[arg(long, env = "NUMPOOL_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// How log lines look: text or json [default: text].
    #[arg(long, env = "NUMPOOL_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Positions of the log a standby may lag and still be ready (/cluster/standby, /readyz) or take over in a switchover [default: 100].
    #[arg(long, env = "NUMPOOL_MAX_LAG")]
    pub max_lag: Option<u64>,
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
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
pub enum Storage {
    Ephemeral,
    DataDir(PathBuf),
}

/// How `numpool serve` logs: the library's `tracing` events (and
/// actix-web's) to standard error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `EnvFilter` directives (`info`, `numpool=debug,actix_web=warn`, ...).
    pub filter: String,
    /// One JSON object a line instead of text.
    pub json: bool,
}

impl LogConfig {
    /// Installs the subscriber (once per process; later calls do nothing).
    pub fn install(&self) {
        let filter = tracing_subscriber::EnvFilter::new(&self.filter);
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        let _ = if self.json {
            builder.json().with_current_span(false).try_init()
        } else {
            builder.with_ansi(false).try_init()
        };
    }
}

/// The effective configuration of a server.
#[derive(Debug, Clone)]
pub struct ServeConfig {
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
    pub fn with_file(mut self) -> Result<ServeArgs, ConfigError> {
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
            data_dir,
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
            log_level,
            log_format
        );
        if self.etcd.is_empty() {
            self.etcd = file.etcd;
        }
        if self.api_keys.is_empty() {
            self.api_keys = file.api_keys;
        }
        self.ephemeral |= file.ephemeral;
        Ok(self)
    }

    /// The effective configuration, with defaults for what is unset.
    pub fn resolve(self) -> Result<ServeConfig, ConfigError> {
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
        let window = duration(
            "health-window",
            &args.health_window,
            Duration::from_secs(24 * 3600),
        )?;
        let ratio = |setting: &'static str, value: Option<f64>, default: f64| match value {
            None => Ok(default),
            Some(r) if (0.0..=1.0).contains(&r) => Ok(r),
            Some(r) => Err(ConfigError::Invalid {
                setting,
                message: format!("{r} is not a ratio between 0 and 1"),
            }),
        };
        let defaults = HealthConfig::default();
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
        let keys = ApiKeys::new(args.api_keys);
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
            Duration::from_secs(600),
        )?;
        let storage = if args.ephemeral {
            Storage::Ephemeral
        } else {
            Storage::DataDir(
                args.data_dir
                    .unwrap_or_else(|| PathBuf::from("./numpool-data")),
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
                let advertise = match &args.advertise {
                    Some(a) => a.trim_end_matches('/').to_string(),
                    None if listen.ip().is_unspecified() => {
                        return Err(ConfigError::Invalid {
                            setting: "advertise",
                            message: format!("listening on {listen}: say where other nodes reach this one with --advertise http://HOST:PORT"),
                        })
                    }
                    None => format!("http://{listen}"),
                };
                Some(ClusterConfig {
                    name: name.clone(),
                    etcd: args.etcd.clone(),
                    advertise,
                    lease_ttl: duration("lease-ttl", &args.lease_ttl, Duration::from_secs(2))?,
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
            },
            storage,
        })
    }
}

impl ServeConfig {
    /// The effective configuration for the start-up banner (keys masked).
    pub fn describe(&self) -> String {
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
        if let Some(c) = &self.cluster {
            lines.push(format!(
                "cluster: {} on etcd {} as {} (lease {}s)",
                c.name,
                c.etcd.join(","),
                c.advertise,
                c.lease_ttl.as_secs_f64()
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

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let Cli { command } = Cli::parse();
    match command {
        Command::Serve(args) => serve(*args),
        Command::Repair(args) => repair(&args.data_dir),
        Command::Cluster(command) => super::cluster_cli::run(command),
    }
}

/// Waits for SIGTERM or SIGINT; returns its name.
async fn stop_signal() -> &'static str {
    use actix_web::rt::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return futures::future::pending().await;
    };
    let name = match futures::future::select(Box::pin(term.recv()), Box::pin(int.recv())).await {
        futures::future::Either::Left(_) => "SIGTERM",
        futures::future::Either::Right(_) => "SIGINT",
    };
    name
}

fn repair(dir: &Path) -> ExitCode {
    match crate::repair(dir) {
        Ok(report) if report.moved.is_empty() => {
            println!("numpool repair: {}: nothing damaged", dir.display());
            ExitCode::SUCCESS
        }
        Ok(report) => {
            for m in report.moved {
                println!(
                    "numpool repair: {}: {} damaged bytes at byte {} moved to {}",
                    m.segment.display(),
                    m.len,
                    m.offset,
                    m.side_file.display()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("numpool repair: {e}");
            ExitCode::from(1)
        }
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let config = match args.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("numpool: {e}");
            return ExitCode::from(2);
        }
    };
    config.log.install();
    let listener = match TcpListener::bind(config.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("numpool: cannot listen on {}: {e}", config.listen);
            return ExitCode::from(1);
        }
    };
    let address = listener.local_addr().map_or(config.listen, |a| a);
    println!("{}", config.describe());
    let engine = match Engine::start(config.engine.clone()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("numpool: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let recovered = engine.recovery();
    for warning in &recovered.warnings {
        eprintln!("numpool: recovery: {warning}");
    }
    if config.engine.journal.is_some() {
        println!(
            "recovered {} profiles, {} numbers, {} mappings in {:.1?} (snapshot {}, {} log records)",
            recovered.profiles,
            recovered.numbers,
            recovered.mappings,
            recovered.took,
            recovered.snapshot.map_or("none".to_string(), |s| s.to_string()),
            recovered.replayed_records
        );
    }
    let mut http = config.http;
    // Signals are ours: a cluster leader resigns before the server stops.
    http.handle_signals = false;
    let mut node = None;
    if let Some(mut cluster) = config.cluster {
        if cluster.advertise.ends_with(":0") {
            cluster.advertise = format!("http://{address}");
        }
        match Node::start(engine.clone(), cluster) {
            Ok(n) => {
                http.cluster = Some(n.status());
                node = Some(n);
            }
            Err(e) => {
                eprintln!("numpool: cannot join the cluster: {e}");
                return ExitCode::from(1);
            }
        }
    }
    // Connections are only answered (and /readyz says ready) once recovery is done.
    println!(
        "numpool {} listening on http://{address}/v2",
        env!("CARGO_PKG_VERSION")
    );
    let result = actix_web::rt::System::new().block_on(async {
        let server = super::http::server(listener, engine.clone(), http)?;
        let handle = server.handle();
        let running = actix_web::rt::spawn(server);
        let outcome = match futures::future::select(running, Box::pin(stop_signal())).await {
            // The server ended by itself (it failed).
            futures::future::Either::Left((ended, _)) => ended.unwrap_or(Ok(())),
            futures::future::Either::Right((signal, running)) => {
                println!("numpool: {signal}: stopping");
                // A leader stops taking changes and resigns first, so that a
                // standby leads at once; requests still arriving meanwhile
                // are refused with 503 or forwarded.
                if let Some(mut node) = node.take() {
                    let _ = actix_web::rt::task::spawn_blocking(move || node.stop()).await;
                }
                handle.stop(true).await;
                running.await.unwrap_or(Ok(()))
            }
        };
        engine.shutdown().await;
        outcome
    });
    match result {
        Ok(()) => {
            println!("numpool: stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("numpool: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_refusals() {
        let c = ServeArgs::default().resolve().unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.engine.sticky_ttl_secs, 8 * 86_400);
        assert_eq!(c.storage, Storage::DataDir(PathBuf::from("./numpool-data")));
        let journal = c.engine.journal.clone().unwrap();
        assert_eq!(
            journal.fsync,
            FsyncPolicy::Interval(Duration::from_millis(10))
        );
        let ephemeral = ServeArgs {
            ephemeral: true,
            ..Default::default()
        };
        assert!(ephemeral.resolve().unwrap().engine.journal.is_none());
        let bad_fsync = ServeArgs {
            fsync: Some("sometimes".into()),
            ..Default::default()
        };
        assert!(bad_fsync.resolve().is_err());
        let open = ServeArgs {
            listen: Some("0.0.0.0:8080".parse().unwrap()),
            ..Default::default()
        };
        assert!(matches!(
            open.resolve(),
            Err(ConfigError::UnauthenticatedOnNetwork(_))
        ));
        let bad = ServeArgs {
            sticky_ttl: Some("0s".into()),
            ..Default::default()
        };
        assert!(bad.resolve().is_err());
    }

    #[test]
    fn flags_win_over_the_file() {
        let dir = std::env::temp_dir().join(format!("numpool-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("numpool.toml");
        std::fs::write(
            &path,
            "sticky_ttl = \"2s\"\nlisten = \"127.0.0.1:9000\"\napi_keys = [\"k1\"]\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            listen: Some("127.0.0.1:7000".parse().unwrap()),
            ..Default::default()
        };
        let c = args.resolve().unwrap();
        assert_eq!(c.listen.port(), 7000);
        assert_eq!(c.engine.sticky_ttl_secs, 2);
        assert!(!c.http.keys.is_empty());
        let banner = c.describe();
        assert!(banner.contains("1 configured"), "{banner}");
        assert!(!banner.contains("k1"), "{banner}");
    }
}
