//! A blocking client of etcd's v3 JSON gateway (`POST /v3/...`), on
//! [`ureq`] (HTTP/1.1, rustls): connection reuse, a timeout for the
//! connection and one for the whole call, TLS with a CA of its own and a
//! client certificate (mutual TLS), and etcd's user authentication with
//! its token renewed when etcd no longer takes it. Two calls, a leader's
//! fenced append ([`EtcdClient::txn_put`]) and watches
//! ([`EtcdClient::watch`]), go over etcd's gRPC API instead, with the same
//! endpoints, TLS and token (`grpc`, `proto`).
//!
//! It covers what leader election plus a fenced, replicated log need: KV
//! ([`EtcdClient::range`], [`EtcdClient::put`], [`EtcdClient::delete_range`],
//! [`EtcdClient::txn`], [`EtcdClient::compact`]), leases
//! ([`EtcdClient::lease_grant`], [`EtcdClient::lease_keepalive`],
//! [`EtcdClient::lease_revoke`]), an election on KV and leases (`election`:
//! the recipe of etcd's own `concurrency` package, over create revisions)
//! and watches in windows (`watch`). Written against etcd 3.4 (Debian
//! bookworm's `etcd-server`); the shapes are the same in 3.5 and 3.6
//! (`types`).
//!
//! Endpoints are tried in order, starting from the last one that answered,
//! when one cannot be reached; a call that times out makes the next call
//! start from the following endpoint.
//!
//! Fencing: a leader's appends compare the create revision of its own
//! leader key ([`LeaderKey::fence`]), true exactly while that key exists,
//! i.e. while its lease lives and it has not resigned. A stale leader's
//! transaction then runs its failure branch instead ([`TxnResult`]).

mod config;
mod election;
mod error;
mod grpc;
mod json;
mod proto;
mod types;
mod watch;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use config::{endpoint, tls_config};
pub use config::{EtcdAuth, EtcdConfig, EtcdTls};
pub use error::EtcdError;
use error::Failure;
pub(crate) use types::*;
pub(crate) use watch::{WatchEnd, WatchOptions, REWATCH_AFTER};

use json::{
    b64, http_error, parse_json, prefix_range, range_json, DeleteJson, HeaderOnlyJson,
    LeaseGrantJson, RangeJson, TxnJson,
};

/// The most operations one transaction may hold (etcd's `--max-txn-ops`
/// default; the compares do not count).
pub(crate) const MAX_TXN_OPS: usize = 128;

/// The largest request etcd takes by default (`--max-request-bytes`,
/// 1.5 MiB): a put's value must stay below it, base64 and all.
pub(crate) const MAX_REQUEST_BYTES: usize = 1_572_864;

/// How long a connection may take to open, by default.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a whole call may take, by default.
pub(crate) const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The largest answer read (a page of the log holds 16 batches of at most
/// 1 MiB, in base64).
pub(super) const MAX_ANSWER_BYTES: u64 = 64 << 20;

/// A blocking etcd client. `Send + Sync`: share it behind an `Arc`.
pub(crate) struct EtcdClient {
    agent: ureq::Agent,
    endpoints: Vec<String>,
    /// The endpoint to try first: the last one that answered.
    current: AtomicUsize,
    config: EtcdConfig,
    connect_timeout: Duration,
    request_timeout: Duration,
    /// The token of etcd's authentication, once taken (shared with the
    /// other clients of the same [`EtcdAuth`]).
    token: Arc<Mutex<Option<String>>>,
    /// The gRPC client of [`EtcdClient::txn_put`], made at its first call.
    grpc: Mutex<Option<grpc::GrpcClient>>,
    /// The gRPC client of watches, made at the first: a watch holds its
    /// client for a window, and must not hold up appends.
    grpc_watch: Mutex<Option<grpc::GrpcClient>>,
}

impl std::fmt::Debug for EtcdClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdClient")
            .field("endpoints", &self.endpoints)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl EtcdClient {
    /// A client of the etcd `config` names. Fails on a bad endpoint or a
    /// TLS file that cannot be used; connects only when first called.
    pub(crate) fn new(config: EtcdConfig) -> Result<Self, EtcdError> {
        let endpoints = config
            .endpoints
            .iter()
            .map(|e| endpoint(e))
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err(EtcdError::InvalidEndpoint {
                endpoint: String::new(),
                reason: "no endpoint given",
            });
        }
        let token = config
            .auth
            .as_ref()
            .map(|a| Arc::clone(&a.token))
            .unwrap_or_default();
        let mut client = EtcdClient {
            agent: ureq::Agent::new_with_defaults(),
            endpoints,
            current: AtomicUsize::new(0),
            config,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            token,
            grpc: Mutex::new(None),
            grpc_watch: Mutex::new(None),
        };
        client.agent = client.make_agent()?;
        Ok(client)
    }

    fn make_agent(&self) -> Result<ureq::Agent, EtcdError> {
        let mut builder = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(self.connect_timeout))
            .max_idle_connections_per_host(4)
            .user_agent("numpool");
        if let Some(tls) = &self.config.tls {
            builder = builder.tls_config(tls_config(tls)?);
        }
        Ok(builder.build().into())
    }

    /// Sets how long a connection may take to open.
    pub(crate) fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        if let Ok(agent) = self.make_agent() {
            self.agent = agent;
        }
        self
    }

    /// Sets how long a whole unary call may take (streams have their own).
    pub(crate) fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Whether etcd says it is healthy (`GET /health`).
    pub(crate) fn health(&self) -> Result<bool, EtcdError> {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct HealthJson {
            health: String,
        }
        let (status, bytes) = self.exchange("GET", "/health", None, Some(self.request_timeout))?;
        if !(200..300).contains(&status) {
            return Ok(false);
        }
        Ok(parse_json::<HealthJson>(&bytes)?.health == "true")
    }

    /// Reads `key`, or the keys in `[key, range_end)` in key order, at most
    /// `limit` (0: all).
    pub(crate) fn range(
        &self,
        key: &[u8],
        range_end: Option<&[u8]>,
        limit: i64,
    ) -> Result<RangeResult, EtcdError> {
        let r: RangeJson = self.post("/v3/kv/range", &range_json(key, range_end, limit))?;
        Ok(r.into_result())
    }

    /// Reads every key starting with `prefix` (every key when it is empty).
    pub(crate) fn range_prefix(&self, prefix: &[u8]) -> Result<RangeResult, EtcdError> {
        let (key, end) = prefix_range(prefix);
        self.range(&key, Some(&end), 0)
    }

    /// Reads one key.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, EtcdError> {
        Ok(self.range(key, None, 1)?.kvs.into_iter().next())
    }

    /// Writes `key` (on `lease`, if given); returns the write's revision.
    pub(crate) fn put(
        &self,
        key: &[u8],
        value: &[u8],
        lease: Option<i64>,
    ) -> Result<i64, EtcdError> {
        let mut body = json!({ "key": b64::encode(key), "value": b64::encode(value) });
        if let Some(lease) = lease {
            body["lease"] = lease.to_string().into();
        }
        let r: HeaderOnlyJson = self.post("/v3/kv/put", &body)?;
        Ok(r.header.revision)
    }

    /// Deletes `key`, or the keys in `[key, range_end)`.
    pub(crate) fn delete_range(
        &self,
        key: &[u8],
        range_end: Option<&[u8]>,
    ) -> Result<DeleteResult, EtcdError> {
        let r: DeleteJson = self.post("/v3/kv/deleterange", &range_json(key, range_end, 0))?;
        Ok(r.into_result())
    }

    /// Runs a transaction: if every compare holds, the `success` operations,
    /// else the `failure` ones (etcd takes at most [`MAX_TXN_OPS`] a
    /// branch), atomically.
    pub(crate) fn txn(
        &self,
        compare: &[Compare],
        success: &[Op],
        failure: &[Op],
    ) -> Result<TxnResult, EtcdError> {
        let body = json!({
            "compare": compare.iter().map(Compare::to_json).collect::<Vec<_>>(),
            "success": success.iter().map(Op::to_json).collect::<Vec<_>>(),
            "failure": failure.iter().map(Op::to_json).collect::<Vec<_>>(),
        });
        let r: TxnJson = self.post("/v3/kv/txn", &body)?;
        r.into_result()
    }

    /// A transaction whose success branch puts `value` at `key`, and whose
    /// failure branch does nothing: a cluster leader's fenced append. Over
    /// etcd's gRPC API, which costs etcd half the CPU of the gateway (see
    /// `grpc`).
    pub(crate) fn txn_put(
        &self,
        compare: &[Compare],
        key: &[u8],
        value: &[u8],
    ) -> Result<TxnResult, EtcdError> {
        let message = proto::encode_txn_put(compare, key, value);
        let mut grpc = self.grpc_client(&self.grpc)?;
        let answer = self.with_token(
            |token| {
                grpc.call(
                    "/etcdserverpb.KV/Txn",
                    &message,
                    token,
                    self.connect_timeout,
                    self.request_timeout,
                )
            },
            || true,
        )?;
        proto::decode_txn(&answer)
    }

    /// The gRPC client in `slot`, made if it is not yet.
    fn grpc_client<'a>(
        &self,
        slot: &'a Mutex<Option<grpc::GrpcClient>>,
    ) -> Result<parking_lot::MappedMutexGuard<'a, grpc::GrpcClient>, EtcdError> {
        let mut held = slot.lock();
        if held.is_none() {
            *held = Some(grpc::GrpcClient::new(
                &self.endpoints,
                self.config.tls.as_ref(),
            )?);
        }
        Ok(parking_lot::MutexGuard::map(held, |g| {
            g.as_mut().expect("made above")
        }))
    }

    /// Compacts the history up to `revision` (a watch from before it is
    /// canceled with the compact revision).
    pub(crate) fn compact(&self, revision: i64) -> Result<(), EtcdError> {
        let body = json!({ "revision": revision.to_string() });
        let _: HeaderOnlyJson = self.post("/v3/kv/compaction", &body)?;
        Ok(())
    }

    /// Grants a lease of `ttl_secs` seconds.
    pub(crate) fn lease_grant(&self, ttl_secs: i64) -> Result<LeaseGrant, EtcdError> {
        let r: LeaseGrantJson = self.post("/v3/lease/grant", &json!({ "TTL": ttl_secs }))?;
        if !r.error.is_empty() {
            return Err(EtcdError::Http {
                status: 200,
                code: None,
                message: r.error,
            });
        }
        Ok(LeaseGrant {
            id: r.id,
            ttl: r.ttl,
        })
    }

    /// Renews a lease; returns its TTL in seconds again.
    /// [`EtcdError::LeaseLost`] if the lease has expired or was revoked.
    pub(crate) fn lease_keepalive(&self, id: i64) -> Result<i64, EtcdError> {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct KeepAliveJson {
            #[serde(rename = "TTL", deserialize_with = "json::de_i64")]
            ttl: i64,
        }
        // A stream that answers once per request sent; the gateway ends it
        // when the request body ends, so the whole answer is one line and
        // the connection is kept for the next renewal.
        let body = serde_json::to_vec(&json!({ "ID": id.to_string() }))
            .map_err(|e| EtcdError::Malformed(e.to_string()))?;
        let (status, answer) = self.authed(
            "POST",
            "/v3/lease/keepalive",
            Some(&body),
            Some(self.request_timeout),
        )?;
        if !(200..300).contains(&status) {
            return Err(http_error(status, &answer));
        }
        let line = answer.split(|&b| b == b'\n').next().unwrap_or_default();
        match json::parse_stream_line::<KeepAliveJson>(line)?.ttl {
            ttl if ttl > 0 => Ok(ttl),
            _ => Err(EtcdError::LeaseLost(id)),
        }
    }

    /// Revokes a lease, deleting the keys attached to it; `false` if there
    /// was no such lease (expired, or revoked already).
    pub(crate) fn lease_revoke(&self, id: i64) -> Result<bool, EtcdError> {
        let body = json!({ "ID": id.to_string() });
        match self.post::<HeaderOnlyJson>("/v3/lease/revoke", &body) {
            Ok(_) => Ok(true),
            Err(EtcdError::Http { message, .. }) if message.contains("lease not found") => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// A unary call: `body` to `path`, the 2xx answer as `T`.
    fn post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T, EtcdError> {
        let bytes = serde_json::to_vec(body).map_err(|e| EtcdError::Malformed(e.to_string()))?;
        let (status, answer) =
            self.authed("POST", path, Some(&bytes), Some(self.request_timeout))?;
        if !(200..300).contains(&status) {
            return Err(http_error(status, &answer));
        }
        parse_json(&answer)
    }

    /// [`EtcdClient::exchange`] with etcd's authentication
    /// ([`EtcdClient::with_token`]; `exchange` sends the token held).
    fn authed(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        timeout: Option<Duration>,
    ) -> Result<(u16, Vec<u8>), EtcdError> {
        self.with_token(
            |_| {
                let (status, answer) = self.exchange(method, path, body, timeout)?;
                if !(200..300).contains(&status) {
                    let error = http_error(status, &answer);
                    if error.is_stale_token() {
                        return Err(error);
                    }
                }
                Ok((status, answer))
            },
            || true,
        )
    }

    /// Runs `call` with etcd's authentication token when it is on (taking
    /// one first if none is held). A token etcd no longer takes is dropped,
    /// and the call made once more with a new one if `may_repeat()` says it
    /// can be.
    fn with_token<T>(
        &self,
        mut call: impl FnMut(Option<&str>) -> Result<T, EtcdError>,
        may_repeat: impl Fn() -> bool,
    ) -> Result<T, EtcdError> {
        if self.config.auth.is_none() {
            return call(None);
        }
        let sent = self.token()?;
        match call(Some(&sent)) {
            Err(e) if e.is_stale_token() => {
                self.forget_token(&sent);
                if !may_repeat() {
                    return Err(e);
                }
                let renewed = self.token()?;
                let answer = call(Some(&renewed));
                if matches!(&answer, Err(e) if e.is_stale_token()) {
                    self.forget_token(&renewed);
                }
                answer
            }
            answer => answer,
        }
    }

    /// The token to send: the one held, else a new one.
    fn token(&self) -> Result<String, EtcdError> {
        if let Some(t) = self.token.lock().clone() {
            return Ok(t);
        }
        self.authenticate()
    }

    /// Drops `stale` (unless another client has replaced it already).
    fn forget_token(&self, stale: &str) {
        let mut held = self.token.lock();
        if held.as_deref() == Some(stale) {
            *held = None;
        }
    }

    /// Takes a token with the configured user and password.
    fn authenticate(&self) -> Result<String, EtcdError> {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct TokenJson {
            token: String,
        }
        let Some(auth) = &self.config.auth else {
            return Ok(String::new());
        };
        let body = json!({ "name": auth.user, "password": auth.password });
        let bytes = serde_json::to_vec(&body).map_err(|e| EtcdError::Malformed(e.to_string()))?;
        let (status, answer) = self.exchange(
            "POST",
            "/v3/auth/authenticate",
            Some(&bytes),
            Some(self.request_timeout),
        )?;
        if !(200..300).contains(&status) {
            let message = match http_error(status, &answer) {
                EtcdError::Http { message, .. } => message.trim().to_string(),
                e => e.to_string(),
            };
            // etcd's JSON gateway refuses, with authentication on, a client
            // certificate that has a CommonName (CVE-2018-16886).
            let hint = if message.contains("CommonName") {
                "; give numpool a client certificate without one"
            } else {
                ""
            };
            return Err(EtcdError::Auth(format!("{message}{hint}")));
        }
        let token = parse_json::<TokenJson>(&answer)?.token;
        if token.is_empty() {
            return Err(EtcdError::Auth(
                "etcd gave no token (is authentication enabled there?)".into(),
            ));
        }
        *self.token.lock() = Some(token.clone());
        Ok(token)
    }

    /// One request to the first endpoint that can be reached, starting from
    /// the last one that answered: its status and body. `timeout`: the
    /// whole call's.
    fn exchange(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        timeout: Option<Duration>,
    ) -> Result<(u16, Vec<u8>), EtcdError> {
        let n = self.endpoints.len();
        let first = self.current.load(Ordering::Relaxed) % n;
        let mut last = None;
        for i in 0..n {
            let at = (first + i) % n;
            let url = format!("{}{path}", self.endpoints[at]);
            match self.once(method, &url, body, timeout) {
                Ok(answer) => {
                    self.current.store(at, Ordering::Relaxed);
                    return Ok(answer);
                }
                Err(f @ (Failure::Unreached(_) | Failure::Handshake(_))) => {
                    last = Some(f.into_error(&self.endpoints[at]))
                }
                Err(Failure::TimedOut) => {
                    // The next call starts from the following endpoint.
                    self.current.store((at + 1) % n, Ordering::Relaxed);
                    return Err(EtcdError::Timeout);
                }
                Err(f @ (Failure::Other(_) | Failure::Closed(_))) => {
                    return Err(f.into_error(&self.endpoints[at]))
                }
            }
        }
        Err(last.unwrap_or(EtcdError::Timeout))
    }

    fn once(
        &self,
        method: &str,
        url: &str,
        body: Option<&[u8]>,
        timeout: Option<Duration>,
    ) -> Result<(u16, Vec<u8>), Failure> {
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(url)
            .header("Content-Type", "application/json");
        if let Some(t) = self.token.lock().as_deref() {
            request = request.header("Authorization", t);
        }
        let request = request
            .body(body.unwrap_or_default().to_vec())
            .map_err(|e| Failure::Other(EtcdError::Io(e.to_string())))?;
        let response = super::transport::run(&self.agent, request, timeout)
            .map_err(|e| Failure::from(e).at(url))?;
        let status = response.status().as_u16();
        let mut reader = response
            .into_body()
            .into_with_config()
            .limit(MAX_ANSWER_BYTES)
            .reader();
        let mut answer = Vec::new();
        std::io::Read::read_to_end(&mut reader, &mut answer).map_err(Failure::from_io)?;
        Ok((status, answer))
    }
}

#[cfg(test)]
mod tests;
