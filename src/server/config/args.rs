//! [`ServeArgs`]: every setting of `numpool serve` declared once: its
//! flag, its `NUMPOOL_*` variable, its TOML key and its help (which gives
//! its default). `super` resolves them into a `ServeConfig`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use serde::Deserialize;

/// Flags of `numpool serve`; each also reads `NUMPOOL_<NAME>`.
#[derive(Debug, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::server) struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "NUMPOOL_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// A TOML file with any of these settings (flags and environment win).
    #[arg(long, env = "NUMPOOL_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// An accepted API key (repeat the flag; comma separated in the environment).
    #[arg(
        long = "api-key",
        env = "NUMPOOL_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    #[serde(default, alias = "api_key")]
    pub api_keys: Vec<String>,
    /// A file of accepted API keys, one a line (keeps them out of `ps` and the environment).
    #[arg(long, env = "NUMPOOL_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,
    /// PEM certificate chain: serve the API over HTTPS (with --tls-key).
    #[arg(long, env = "NUMPOOL_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "NUMPOOL_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA the other nodes' certificates are checked against when they advertise https:// [default: the usual web roots].
    #[arg(long, env = "NUMPOOL_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Log every request: method, route, status, latency, request id [default: off].
    #[arg(long, env = "NUMPOOL_ACCESS_LOG", num_args = 0..=1, default_missing_value = "true")]
    pub access_log: Option<bool>,
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
    /// etcd's client URLs, comma separated (with --cluster): http:// or https://.
    #[arg(long, env = "NUMPOOL_ETCD", value_delimiter = ',')]
    #[serde(default)]
    pub etcd: Vec<String>,
    /// PEM CA etcd's certificate must chain to (https:// endpoints).
    #[arg(long, env = "NUMPOOL_ETCD_CA")]
    pub etcd_ca: Option<PathBuf>,
    /// PEM client certificate for etcd's --client-cert-auth (with --etcd-key).
    #[arg(long, env = "NUMPOOL_ETCD_CERT")]
    pub etcd_cert: Option<PathBuf>,
    /// PEM private key of --etcd-cert.
    #[arg(long, env = "NUMPOOL_ETCD_KEY")]
    pub etcd_key: Option<PathBuf>,
    /// etcd user, when etcd has authentication on (its password from --etcd-password-file or NUMPOOL_ETCD_PASSWORD).
    #[arg(long, env = "NUMPOOL_ETCD_USER")]
    pub etcd_user: Option<String>,
    /// A file holding etcd's password (its first line).
    #[arg(long, env = "NUMPOOL_ETCD_PASSWORD_FILE")]
    pub etcd_password_file: Option<PathBuf>,
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
