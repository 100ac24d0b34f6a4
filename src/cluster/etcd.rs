//! A blocking client for etcd's v3 JSON gateway (`POST /v3/...`, HTTP/1.1).
//!
//! (About 2,100 lines of client and 850 of tests against a real etcd: one
//! protocol, whose JSON shapes, calls, streams and connection handling
//! change together; the tests at the end exercise each call.)
//!
//! It covers what leader election plus a fenced, replicated log need: KV
//! ([`EtcdClient::range`], [`EtcdClient::put`], [`EtcdClient::delete_range`],
//! [`EtcdClient::txn`], [`EtcdClient::compact`]), leases
//! ([`EtcdClient::lease_grant`], [`EtcdClient::lease_keepalive`],
//! [`EtcdClient::lease_revoke`]), the election API
//! ([`EtcdClient::campaign`], [`EtcdClient::leader`], [`EtcdClient::resign`])
//! and watches ([`EtcdClient::watch`]). Written against etcd 3.4 (Debian
//! bookworm's `etcd-server`); the request and response shapes are the same
//! in 3.5 and 3.6.
//!
//! What the gateway does, and so what this client copes with:
//! - keys and values are `bytes`: standard base64 **with** padding;
//! - 64-bit integers come back as JSON strings (`"revision":"13"`), and are
//!   sent as strings too;
//! - fields at their default value are omitted (`succeeded:false`,
//!   `type:"PUT"`, `TTL:0`, an empty `kvs`), so every response field
//!   defaults;
//! - errors are a non-2xx status with `{"error","message","code"}`, `code`
//!   being the gRPC status code ([`EtcdError::Http`]);
//! - watch, lease keepalive and election responses are streams: chunked
//!   transfer encoding carrying newline-delimited JSON, one
//!   `{"result":{...}}` or `{"error":{...}}` per line, lines free to span
//!   chunks.
//!
//! Connections: unary calls share one keep-alive connection per client (a
//! call made while another is in flight opens a second one, dropped
//! afterwards); every stream (a watch, a campaign, a keepalive) has a
//! connection of its own. Endpoints are tried in order, starting from the
//! last one that answered, when a connection cannot be made; a timed-out
//! call makes the next call start from the following endpoint. Each unary
//! call is bounded by the request timeout (connect, send and the whole
//! response); a pooled connection that the server had closed is retried
//! once on a new connection.
//!
//! Fencing: a leader's appends compare the create revision of its own
//! leader key ([`LeaderKey::fence`]), true exactly while that key exists,
//! i.e. while its lease lives and it has not resigned. A stale leader's
//! transaction then runs its failure branch instead ([`TxnResult`]).

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::de::{self, DeserializeOwned, Deserializer, Unexpected, Visitor};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The most operations one transaction may hold (etcd's `--max-txn-ops`
/// default; the compares do not count).
pub const MAX_TXN_OPS: usize = 128;

/// The largest request etcd accepts by default (`--max-request-bytes`),
/// measured on the protobuf encoding: about the raw bytes of the keys and
/// values, not their base64 JSON.
pub const MAX_REQUEST_BYTES: usize = 1_572_864;

/// How long to wait for a TCP connection to an endpoint, by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a unary call may take in all, by default.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The port of an endpoint given without one.
const DEFAULT_PORT: u16 = 2379;

/// The longest status, header or chunk-size line accepted.
const MAX_LINE: u64 = 16 * 1024;

/// The most header bytes accepted in one response.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// What can go wrong talking to etcd.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// An endpoint that is not `http://host[:port]`.
    #[error("invalid etcd endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No endpoint accepted a connection.
    #[error("cannot connect to etcd (last tried {endpoint}): {source}")]
    Connect {
        /// The last endpoint tried.
        endpoint: String,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// Reading or writing a connection failed, or a stream ended early.
    #[error("etcd connection error: {0}")]
    Io(#[source] io::Error),
    /// The call did not complete within its timeout (the connection is
    /// dropped).
    #[error("etcd did not answer in time")]
    Timeout,
    /// etcd answered with an error: a non-2xx status, or an `{"error":...}`
    /// line in a stream.
    #[error("etcd error (HTTP {status}, code {code:?}): {message}")]
    Http {
        /// The HTTP status (in a stream: the one etcd's error line names).
        status: u16,
        /// The gRPC status code etcd gave, if any (3 InvalidArgument,
        /// 5 NotFound, 9 FailedPrecondition, 11 OutOfRange, 14 Unavailable).
        code: Option<i32>,
        /// etcd's message, e.g. `etcdserver: requested lease not found`.
        message: String,
    },
    /// A response that is not what the gateway sends.
    #[error("malformed response from etcd: {0}")]
    Malformed(String),
    /// A transaction's compares failed (see [`TxnResult::require_success`]).
    #[error("etcd transaction compare failed (at revision {revision})")]
    CompareFailed {
        /// The store's revision when the transaction ran.
        revision: i64,
    },
    /// A keepalive found the lease gone: expired or revoked. Whatever was
    /// attached to it (a leader key) is gone too.
    #[error("etcd lease {0:x} expired or was revoked")]
    LeaseLost(i64),
    /// The call was cancelled through its [`ShutdownHandle`].
    #[error("cancelled")]
    Cancelled,
}

impl From<io::Error> for EtcdError {
    /// Socket timeouts become [`EtcdError::Timeout`], the rest
    /// [`EtcdError::Io`].
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => EtcdError::Timeout,
            _ => EtcdError::Io(e),
        }
    }
}

impl EtcdError {
    /// The gRPC status code etcd gave, if this is an error from etcd.
    pub fn code(&self) -> Option<i32> {
        match self {
            EtcdError::Http { code, .. } => *code,
            _ => None,
        }
    }
}

/// A key and its value as stored in etcd.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct KeyValue {
    /// The key.
    #[serde(deserialize_with = "de_bytes")]
    pub key: Vec<u8>,
    /// The value (empty in a DELETE event).
    #[serde(deserialize_with = "de_bytes")]
    pub value: Vec<u8>,
    /// The revision that created the key (since its last deletion).
    #[serde(deserialize_with = "de_i64", alias = "createRevision")]
    pub create_revision: i64,
    /// The revision of its last modification.
    #[serde(deserialize_with = "de_i64", alias = "modRevision")]
    pub mod_revision: i64,
    /// How many times it was written since its creation (1 on creation).
    #[serde(deserialize_with = "de_i64")]
    pub version: i64,
    /// The lease it is attached to, 0 for none.
    #[serde(deserialize_with = "de_i64")]
    pub lease: i64,
}

/// The answer to a range request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RangeResult {
    /// The keys found, in key order, at most the limit asked for.
    pub kvs: Vec<KeyValue>,
    /// More keys matched than the limit let through.
    pub more: bool,
    /// How many keys matched in all (regardless of the limit).
    pub count: i64,
    /// The store's revision the range was read at.
    pub header_revision: i64,
}

/// The answer to a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeleteResult {
    /// How many keys were deleted.
    pub deleted: i64,
    /// The store's revision after the delete (that of the deletion if any).
    pub header_revision: i64,
}

/// A granted lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseGrant {
    /// The lease's id.
    pub id: i64,
    /// Its time to live in seconds, as granted (etcd may raise a small TTL
    /// to its minimum, 1.5 × the election timeout).
    pub ttl: i64,
}

/// This node's key in an election, as returned by a won campaign.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct LeaderKey {
    /// The election's name (the key prefix).
    #[serde(deserialize_with = "de_bytes")]
    pub name: Vec<u8>,
    /// The leader key: `<name>/<lease id in lowercase hex>`.
    #[serde(deserialize_with = "de_bytes")]
    pub key: Vec<u8>,
    /// The leader key's create revision: the leader's epoch, increasing
    /// from one leader to the next.
    #[serde(deserialize_with = "de_i64")]
    pub rev: i64,
    /// The lease the leader key is attached to.
    #[serde(deserialize_with = "de_i64")]
    pub lease: i64,
}

impl LeaderKey {
    /// The compare that fences a leader's writes: its leader key still
    /// exists with the create revision it was elected with. It fails once
    /// the lease expired or was revoked, or the leader resigned. (Not the
    /// mod revision or value: a re-campaign or proclaim changes those.)
    pub fn fence(&self) -> Compare {
        Compare::create_revision(self.key.clone(), CompareResult::Equal, self.rev)
    }
}

/// How a [`Compare`] compares the key's field with the given value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareResult {
    /// The key's field equals the value.
    Equal,
    /// The key's field is greater.
    Greater,
    /// The key's field is less.
    Less,
    /// The key's field differs.
    NotEqual,
}

impl CompareResult {
    /// The name the gateway knows it by.
    fn name(self) -> &'static str {
        match self {
            CompareResult::Equal => "EQUAL",
            CompareResult::Greater => "GREATER",
            CompareResult::Less => "LESS",
            CompareResult::NotEqual => "NOT_EQUAL",
        }
    }
}

/// Which field of the key a [`Compare`] looks at, and the value it is
/// compared with. A missing key has version, create and mod revision 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompareTarget {
    /// The key's version (0 when absent).
    Version(i64),
    /// The key's create revision (0 when absent).
    Create(i64),
    /// The key's mod revision (0 when absent).
    Mod(i64),
    /// The key's value.
    Value(Vec<u8>),
    /// The key's lease id (0 for none).
    Lease(i64),
}

/// One condition of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    /// The key compared.
    pub key: Vec<u8>,
    /// When set, the condition must hold for every key in `[key, range_end)`.
    pub range_end: Option<Vec<u8>>,
    /// The field and the value.
    pub target: CompareTarget,
    /// The comparison.
    pub result: CompareResult,
}

impl Compare {
    /// Compares the key's create revision (0 when absent: `Equal, 0` means
    /// "does not exist").
    pub fn create_revision(key: impl Into<Vec<u8>>, result: CompareResult, rev: i64) -> Self {
        Compare::new(key, result, CompareTarget::Create(rev))
    }

    /// Compares the key's mod revision.
    pub fn mod_revision(key: impl Into<Vec<u8>>, result: CompareResult, rev: i64) -> Self {
        Compare::new(key, result, CompareTarget::Mod(rev))
    }

    /// Compares the key's version.
    pub fn version(key: impl Into<Vec<u8>>, result: CompareResult, version: i64) -> Self {
        Compare::new(key, result, CompareTarget::Version(version))
    }

    /// Compares the key's value.
    pub fn value(
        key: impl Into<Vec<u8>>,
        result: CompareResult,
        value: impl Into<Vec<u8>>,
    ) -> Self {
        Compare::new(key, result, CompareTarget::Value(value.into()))
    }

    /// Compares the key's lease id.
    pub fn lease(key: impl Into<Vec<u8>>, result: CompareResult, lease: i64) -> Self {
        Compare::new(key, result, CompareTarget::Lease(lease))
    }

    /// The same condition over every key in `[key, range_end)`.
    pub fn with_range_end(mut self, range_end: impl Into<Vec<u8>>) -> Self {
        self.range_end = Some(range_end.into());
        self
    }

    /// A compare on `key` alone.
    fn new(key: impl Into<Vec<u8>>, result: CompareResult, target: CompareTarget) -> Self {
        Compare {
            key: key.into(),
            range_end: None,
            target,
            result,
        }
    }

    /// The gateway's JSON for it.
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("key".into(), b64::encode(&self.key).into());
        if let Some(end) = &self.range_end {
            m.insert("range_end".into(), b64::encode(end).into());
        }
        m.insert("result".into(), self.result.name().into());
        let (target, field, value): (&str, &str, Value) = match &self.target {
            CompareTarget::Version(v) => ("VERSION", "version", v.to_string().into()),
            CompareTarget::Create(v) => ("CREATE", "create_revision", v.to_string().into()),
            CompareTarget::Mod(v) => ("MOD", "mod_revision", v.to_string().into()),
            CompareTarget::Value(v) => ("VALUE", "value", b64::encode(v).into()),
            CompareTarget::Lease(v) => ("LEASE", "lease", v.to_string().into()),
        };
        m.insert("target".into(), target.into());
        m.insert(field.into(), value);
        Value::Object(m)
    }
}

/// One operation of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Writes a key.
    Put {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
        /// The lease to attach the key to.
        lease: Option<i64>,
    },
    /// Reads a key, or the keys in `[key, range_end)`.
    Range {
        /// The key, or the start of the range.
        key: Vec<u8>,
        /// The end of the range (exclusive); `None` for the key alone.
        range_end: Option<Vec<u8>>,
        /// At most this many keys; 0 for no limit.
        limit: i64,
    },
    /// Deletes a key, or the keys in `[key, range_end)`.
    DeleteRange {
        /// The key, or the start of the range.
        key: Vec<u8>,
        /// The end of the range (exclusive); `None` for the key alone.
        range_end: Option<Vec<u8>>,
    },
}

impl Op {
    /// Writes `key` with no lease.
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Op {
        Op::Put {
            key: key.into(),
            value: value.into(),
            lease: None,
        }
    }

    /// Reads `key`.
    pub fn get(key: impl Into<Vec<u8>>) -> Op {
        Op::Range {
            key: key.into(),
            range_end: None,
            limit: 0,
        }
    }

    /// Deletes `key`.
    pub fn delete(key: impl Into<Vec<u8>>) -> Op {
        Op::DeleteRange {
            key: key.into(),
            range_end: None,
        }
    }

    /// The gateway's JSON for it (a `RequestOp`).
    fn to_json(&self) -> Value {
        match self {
            Op::Put { key, value, lease } => {
                let mut m = Map::new();
                m.insert("key".into(), b64::encode(key).into());
                m.insert("value".into(), b64::encode(value).into());
                if let Some(lease) = lease {
                    m.insert("lease".into(), lease.to_string().into());
                }
                json!({ "request_put": m })
            }
            Op::Range {
                key,
                range_end,
                limit,
            } => json!({ "request_range": range_json(key, range_end.as_deref(), *limit) }),
            Op::DeleteRange { key, range_end } => {
                json!({ "request_delete_range": range_json(key, range_end.as_deref(), 0) })
            }
        }
    }
}

/// The answer to one operation of a transaction, in the order of the
/// branch that ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResponse {
    /// A put's answer.
    Put {
        /// The revision of the write (the transaction's).
        header_revision: i64,
    },
    /// A range's answer.
    Range(RangeResult),
    /// A delete's answer.
    DeleteRange(DeleteResult),
}

/// The answer to a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnResult {
    /// The compares held and the success branch ran; otherwise the failure
    /// branch ran (an HTTP 200 all the same).
    pub succeeded: bool,
    /// The store's revision after the transaction: that of its writes,
    /// which all share one revision.
    pub header_revision: i64,
    /// The answers of the branch that ran.
    pub responses: Vec<OpResponse>,
}

impl TxnResult {
    /// The result if the compares held, else [`EtcdError::CompareFailed`].
    pub fn require_success(self) -> Result<TxnResult, EtcdError> {
        if self.succeeded {
            Ok(self)
        } else {
            Err(EtcdError::CompareFailed {
                revision: self.header_revision,
            })
        }
    }
}

/// What happened to a key in a watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventKind {
    /// The key was written.
    #[default]
    Put,
    /// The key was deleted (its [`KeyValue`] then holds only the key and
    /// the deletion's mod revision).
    Delete,
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct Event {
    /// A write or a deletion.
    #[serde(rename = "type", deserialize_with = "de_event_kind")]
    pub kind: EventKind,
    /// The key after the change.
    pub kv: KeyValue,
    /// The key before the change, when the watch asked for it
    /// ([`WatchOptions::prev_kv`]).
    #[serde(alias = "prevKv")]
    pub prev_kv: Option<KeyValue>,
}

/// One message of a watch: the events of one revision or more, a progress
/// notification (no events), or the watch's cancellation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WatchEvent {
    /// The store's revision when the message was sent: after a progress
    /// notification, every change up to it has been delivered. (0 in a
    /// cancellation for compaction.)
    pub header_revision: i64,
    /// The changes, in revision order; the changes of one transaction share
    /// a revision and come in one message.
    pub events: Vec<Event>,
    /// When canceled because the start revision was compacted: the oldest
    /// revision still available. Re-read the keys and watch again from
    /// after the read's revision.
    pub compact_revision: i64,
    /// etcd canceled the watch; the stream ends after this message.
    pub canceled: bool,
    /// Why, when etcd says.
    pub cancel_reason: String,
}

impl WatchEvent {
    /// A progress notification: no events, not a cancellation.
    pub fn is_progress_notify(&self) -> bool {
        self.events.is_empty() && !self.canceled
    }
}

/// Options of a watch beyond its key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchOptions {
    /// Watch `[key, range_end)` rather than the key alone (see
    /// [`prefix_end`]).
    pub range_end: Option<Vec<u8>>,
    /// Deliver the changes from this revision on (it may be in the past, as
    /// long as it is not compacted); `None` for the changes after the watch
    /// is created.
    pub start_revision: Option<i64>,
    /// Ask for progress notifications (sent every
    /// `--experimental-watch-progress-notify-interval`, 10 min by default).
    pub progress_notify: bool,
    /// Deliver the previous value with each event.
    pub prev_kv: bool,
    /// Fail the stream with [`EtcdError::Timeout`] when nothing arrives for
    /// this long (with `progress_notify` and a shorter interval, a way to
    /// notice a frozen etcd); `None` waits forever.
    pub idle_timeout: Option<Duration>,
}

/// The end of the range of every key starting with `prefix`: the prefix
/// with its last byte below 0xff incremented (and what follows dropped);
/// `[0]` (every key from `prefix` on) when there is none.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Stops a stream (a watch or a campaign) from another thread: shuts its
/// socket down, which makes etcd cancel the watch or withdraw the
/// candidate. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ShutdownHandle(Arc<ShutdownInner>);

/// The socket shared with the stream, and whether it was shut down.
#[derive(Debug)]
struct ShutdownInner {
    stream: TcpStream,
    shut: AtomicBool,
}

impl ShutdownHandle {
    /// A handle on `stream`, a clone of the stream's socket.
    fn new(stream: TcpStream) -> Self {
        ShutdownHandle(Arc::new(ShutdownInner {
            stream,
            shut: AtomicBool::new(false),
        }))
    }

    /// Shuts the stream down: a blocked read returns at once, the watch
    /// iterator then ends, a campaign fails with [`EtcdError::Cancelled`].
    pub fn shutdown(&self) {
        self.0.shut.store(true, Ordering::SeqCst);
        let _ = self.0.stream.shutdown(Shutdown::Both);
    }

    /// Whether [`ShutdownHandle::shutdown`] was called.
    pub fn is_shutdown(&self) -> bool {
        self.0.shut.load(Ordering::SeqCst)
    }
}

/// A watch: a blocking iterator over its messages, on a connection of its
/// own.
///
/// It yields [`WatchEvent`]s (events, progress notifications, and at the
/// end a cancellation) and errors: an `{"error":...}` line from etcd
/// ([`EtcdError::Http`], e.g. code 14 when etcd shuts down), a connection
/// that fails or ends ([`EtcdError::Io`]), or the idle timeout
/// ([`EtcdError::Timeout`]). After a cancellation or an error, and after
/// [`ShutdownHandle::shutdown`], it returns `None`; to go on, watch again
/// from the last revision seen + 1. Dropping it closes the connection.
#[derive(Debug)]
pub struct WatchStream {
    lines: BufReader<Body<BufReader<Timed>>>,
    handle: ShutdownHandle,
    created_revision: i64,
    pending: Option<WatchEvent>,
    done: bool,
    buf: Vec<u8>,
}

impl WatchStream {
    /// The store's revision when the watch was created: with no start
    /// revision, the changes after it are delivered.
    pub fn created_revision(&self) -> i64 {
        self.created_revision
    }

    /// A handle that stops this watch from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.handle.clone()
    }

    /// Ends the stream: nothing more is read, the connection is shut.
    fn finish(&mut self) {
        self.done = true;
        self.handle.shutdown();
    }
}

impl Iterator for WatchStream {
    type Item = Result<WatchEvent, EtcdError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(event) = self.pending.take() {
            if event.canceled {
                self.finish();
            }
            return Some(Ok(event));
        }
        loop {
            if self.done || self.handle.is_shutdown() {
                self.done = true;
                return None;
            }
            let parsed = match next_line(&mut self.lines, &mut self.buf) {
                Ok(Some(line)) => parse_stream_line::<WatchResponseJson>(line),
                Ok(None) => Err(EtcdError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the watch stream ended",
                ))),
                Err(e) => Err(e.into()),
            };
            if self.handle.is_shutdown() {
                self.done = true;
                return None;
            }
            match parsed {
                Err(e) => {
                    self.finish();
                    return Some(Err(e));
                }
                // A second creation confirmation: nothing to report.
                Ok(r) if r.created && !r.canceled && r.events.is_empty() => continue,
                Ok(r) => {
                    let event = r.into_event();
                    if event.canceled {
                        self.finish();
                    }
                    return Some(Ok(event));
                }
            }
        }
    }
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

/// A campaign under way, on a connection of its own: [`Campaign::wait`]
/// blocks until elected; [`ShutdownHandle::shutdown`] (or dropping it)
/// withdraws the candidate (etcd deletes its key).
#[derive(Debug)]
pub struct Campaign {
    reader: BufReader<Timed>,
    handle: ShutdownHandle,
}

impl Campaign {
    /// A handle that withdraws this campaign from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.handle.clone()
    }

    /// Blocks until this candidate is the leader, with no timeout: a
    /// frozen etcd is only noticed through the lease (keep it alive
    /// meanwhile) or the shutdown handle. [`EtcdError::Cancelled`] after
    /// a shutdown.
    pub fn wait(mut self) -> Result<LeaderKey, EtcdError> {
        let result = self.read_answer();
        if self.handle.is_shutdown() {
            return Err(EtcdError::Cancelled);
        }
        result
    }

    /// Reads the campaign's answer, however long it takes.
    fn read_answer(&mut self) -> Result<LeaderKey, EtcdError> {
        let head = read_head(&mut self.reader)?;
        let mut body = Vec::new();
        Body::new(&mut self.reader, head.framing).read_to_end(&mut body)?;
        if !(200..300).contains(&head.status) {
            return Err(http_error(head.status, &body));
        }
        let r: CampaignJson = parse_json(&body)?;
        r.leader
            .ok_or_else(|| EtcdError::Malformed("campaign answer without a leader".into()))
    }
}

impl Drop for Campaign {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

/// A blocking etcd client over the v3 JSON gateway. `Send + Sync`: share
/// it behind an `Arc`.
pub struct EtcdClient {
    endpoints: Vec<Endpoint>,
    /// The endpoint to try first: the last one that answered.
    current: AtomicUsize,
    /// The keep-alive connection of unary calls, when idle.
    conn: Mutex<Option<Conn>>,
    connect_timeout: Duration,
    request_timeout: Duration,
}

impl fmt::Debug for EtcdClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdClient")
            .field(
                "endpoints",
                &self.endpoints.iter().map(|e| &e.url).collect::<Vec<_>>(),
            )
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl EtcdClient {
    /// A client of the etcd members at `endpoints`, URLs like
    /// `http://127.0.0.1:2379` (`http://` only; port 2379 when omitted).
    /// Connects lazily, with [`DEFAULT_CONNECT_TIMEOUT`] and
    /// [`DEFAULT_REQUEST_TIMEOUT`].
    pub fn new(endpoints: Vec<String>) -> Result<Self, EtcdError> {
        if endpoints.is_empty() {
            return Err(EtcdError::InvalidEndpoint {
                endpoint: String::new(),
                reason: "no endpoints",
            });
        }
        let endpoints = endpoints
            .iter()
            .map(|e| Endpoint::parse(e))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EtcdClient {
            endpoints,
            current: AtomicUsize::new(0),
            conn: Mutex::new(None),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        })
    }

    /// Sets how long to wait for a TCP connection to one endpoint.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets how long a unary call may take in all (connect, send, the whole
    /// answer), and a stream to be set up. Keep it below a third of the
    /// leases' TTL when the client sends keepalives.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Whether etcd says it is healthy (`GET /health`: it has a raft leader
    /// and can commit). An error when it cannot be reached.
    pub fn health(&self) -> Result<bool, EtcdError> {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct HealthJson {
            health: Value,
        }
        let (status, body) = self.call("GET", "/health", &[])?;
        let r: HealthJson = parse_json(&body)?;
        let healthy = matches!(&r.health, Value::Bool(true))
            || matches!(&r.health, Value::String(s) if s == "true");
        Ok(status == 200 && healthy)
    }

    /// Reads `key`, or the keys in `[key, range_end)` in key order, at most
    /// `limit` of them (0: no limit).
    pub fn range(
        &self,
        key: &[u8],
        range_end: Option<&[u8]>,
        limit: i64,
    ) -> Result<RangeResult, EtcdError> {
        let r: RangeJson = self.post("/v3/kv/range", &range_json(key, range_end, limit))?;
        Ok(r.into_result())
    }

    /// Reads every key starting with `prefix` (every key when it is empty).
    pub fn range_prefix(&self, prefix: &[u8]) -> Result<RangeResult, EtcdError> {
        let (key, end) = prefix_range(prefix);
        self.range(&key, Some(&end), 0)
    }

    /// Reads one key.
    pub fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, EtcdError> {
        Ok(self.range(key, None, 0)?.kvs.into_iter().next())
    }

    /// Writes `key`, attached to `lease` if given; returns the write's
    /// revision. A lease that does not exist: [`EtcdError::Http`] 404,
    /// code 5.
    pub fn put(&self, key: &[u8], value: &[u8], lease: Option<i64>) -> Result<i64, EtcdError> {
        let mut body = json!({ "key": b64::encode(key), "value": b64::encode(value) });
        if let Some(lease) = lease {
            body["lease"] = lease.to_string().into();
        }
        let r: HeaderOnlyJson = self.post("/v3/kv/put", &body)?;
        Ok(r.header.revision)
    }

    /// Deletes `key`, or the keys in `[key, range_end)`.
    pub fn delete_range(
        &self,
        key: &[u8],
        range_end: Option<&[u8]>,
    ) -> Result<DeleteResult, EtcdError> {
        let r: DeleteJson = self.post("/v3/kv/deleterange", &range_json(key, range_end, 0))?;
        Ok(r.into_result())
    }

    /// Runs `success` if every compare holds, else `failure`, atomically;
    /// at most [`MAX_TXN_OPS`] operations per branch, no key written twice.
    /// A failed compare is not an error: see [`TxnResult::succeeded`] and
    /// [`TxnResult::require_success`].
    pub fn txn(
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

    /// Drops the history before `revision` (the revision itself stays
    /// readable), waiting until it is gone from the backend. Watches and
    /// reads below it then fail; compacting below an earlier compaction:
    /// [`EtcdError::Http`] 400, code 11.
    pub fn compact(&self, revision: i64) -> Result<(), EtcdError> {
        let body = json!({ "revision": revision.to_string(), "physical": true });
        let _: HeaderOnlyJson = self.post("/v3/kv/compaction", &body)?;
        Ok(())
    }

    /// Grants a lease of `ttl_secs` seconds.
    pub fn lease_grant(&self, ttl_secs: i64) -> Result<LeaseGrant, EtcdError> {
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

    /// Renews a lease; returns its TTL in seconds again. One request on a
    /// connection of its own, bounded by the request timeout.
    /// [`EtcdError::LeaseLost`] if the lease has expired or was revoked.
    pub fn lease_keepalive(&self, id: i64) -> Result<i64, EtcdError> {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct KeepAliveJson {
            #[serde(rename = "TTL", deserialize_with = "de_i64")]
            ttl: i64,
        }
        let deadline = Instant::now() + self.request_timeout;
        let body = json!({ "ID": id.to_string() });
        let (reader, handle) = self.open("/v3/lease/keepalive", &body, deadline)?;
        let mut lines = BufReader::new(self.stream_body(reader)?);
        let mut buf = Vec::new();
        let r = match next_line(&mut lines, &mut buf)? {
            Some(line) => parse_stream_line::<KeepAliveJson>(line),
            None => Err(EtcdError::Malformed(
                "the keepalive stream ended without an answer".into(),
            )),
        };
        handle.shutdown();
        match r?.ttl {
            ttl if ttl > 0 => Ok(ttl),
            _ => Err(EtcdError::LeaseLost(id)),
        }
    }

    /// Revokes a lease, deleting the keys attached to it; `false` if there
    /// was no such lease (expired, or revoked already).
    pub fn lease_revoke(&self, id: i64) -> Result<bool, EtcdError> {
        let body = json!({ "ID": id.to_string() });
        let (status, bytes) =
            self.call("POST", "/v3/lease/revoke", body_bytes(&body).as_slice())?;
        match status {
            200..=299 => Ok(true),
            404 => Ok(false),
            _ => Err(http_error(status, &bytes)),
        }
    }

    /// Campaigns in election `name` with `lease` (kept alive by the caller,
    /// every TTL/3) and `value` (e.g. this node's address); blocks until
    /// elected, with no timeout. Campaigning again with the same lease
    /// reuses the same key. See [`EtcdClient::start_campaign`] to be able
    /// to withdraw.
    pub fn campaign(&self, name: &[u8], lease: i64, value: &[u8]) -> Result<LeaderKey, EtcdError> {
        self.start_campaign(name, lease, value)?.wait()
    }

    /// Starts a campaign (as [`EtcdClient::campaign`]) on a connection of
    /// its own and returns once the request is sent; wait for the outcome
    /// with [`Campaign::wait`].
    pub fn start_campaign(
        &self,
        name: &[u8],
        lease: i64,
        value: &[u8],
    ) -> Result<Campaign, EtcdError> {
        let deadline = Instant::now() + self.request_timeout;
        let body = json!({
            "name": b64::encode(name),
            "lease": lease.to_string(),
            "value": b64::encode(value),
        });
        let (mut reader, handle) = self.open("/v3/election/campaign", &body, deadline)?;
        reader.get_mut().wait_forever(None)?;
        Ok(Campaign { reader, handle })
    }

    /// The current leader of election `name`: its key (whose create
    /// revision is the epoch) and value; `None` when there is none.
    pub fn leader(&self, name: &[u8]) -> Result<Option<KeyValue>, EtcdError> {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct LeaderJson {
            kv: Option<KeyValue>,
        }
        let body = json!({ "name": b64::encode(name) });
        let (status, bytes) = self.call("POST", "/v3/election/leader", &body_bytes(&body))?;
        if !(200..300).contains(&status) {
            return match http_error(status, &bytes) {
                EtcdError::Http { message, .. } if message.contains("no leader") => Ok(None),
                e => Err(e),
            };
        }
        Ok(parse_json::<LeaderJson>(&bytes)?.kv)
    }

    /// Gives up leadership: deletes the leader key if it is still the one
    /// elected (a no-op otherwise); the next candidate is elected at once.
    pub fn resign(&self, leader: &LeaderKey) -> Result<(), EtcdError> {
        let body = json!({ "leader": {
            "name": b64::encode(&leader.name),
            "key": b64::encode(&leader.key),
            "rev": leader.rev.to_string(),
            "lease": leader.lease.to_string(),
        }});
        let _: HeaderOnlyJson = self.post("/v3/election/resign", &body)?;
        Ok(())
    }

    /// Watches `key`, or the keys in `[key, range_end)`, from
    /// `start_revision` (`None`: the changes after this call). Returns once
    /// etcd has confirmed the watch, within the request timeout.
    pub fn watch(
        &self,
        key: &[u8],
        range_end: Option<&[u8]>,
        start_revision: Option<i64>,
    ) -> Result<WatchStream, EtcdError> {
        let options = WatchOptions {
            range_end: range_end.map(<[u8]>::to_vec),
            start_revision,
            ..WatchOptions::default()
        };
        self.watch_with(key, &options)
    }

    /// Watches with every option (see [`WatchOptions`]).
    pub fn watch_with(&self, key: &[u8], options: &WatchOptions) -> Result<WatchStream, EtcdError> {
        let mut create = range_json(key, options.range_end.as_deref(), 0);
        if let Some(rev) = options.start_revision {
            create["start_revision"] = rev.to_string().into();
        }
        if options.progress_notify {
            create["progress_notify"] = true.into();
        }
        if options.prev_kv {
            create["prev_kv"] = true.into();
        }
        let deadline = Instant::now() + self.request_timeout;
        let body = json!({ "create_request": create });
        let (reader, handle) = self.open("/v3/watch", &body, deadline)?;
        let mut lines = BufReader::new(self.stream_body(reader)?);
        let mut buf = Vec::new();
        // The confirmation, before anything is delivered; it may also be a
        // cancellation (e.g. a compacted start revision).
        let first = match next_line(&mut lines, &mut buf)? {
            Some(line) => parse_stream_line::<WatchResponseJson>(line)?,
            None => {
                return Err(EtcdError::Malformed(
                    "the watch stream ended before its confirmation".into(),
                ))
            }
        };
        let created_revision = first.header.revision;
        let pending = if first.created && !first.canceled && first.events.is_empty() {
            None
        } else {
            Some(first.into_event())
        };
        let idle = options.idle_timeout.filter(|d| !d.is_zero());
        lines.get_mut().get_mut().get_mut().wait_forever(idle)?;
        Ok(WatchStream {
            lines,
            handle,
            created_revision,
            pending,
            done: false,
            buf,
        })
    }

    // ---- transport ----

    /// A unary POST whose 2xx answer is parsed as `T`.
    fn post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T, EtcdError> {
        let (status, bytes) = self.call("POST", path, &body_bytes(body))?;
        if !(200..300).contains(&status) {
            if status == 503 {
                self.rotate_from(self.current.load(Ordering::Relaxed));
            }
            return Err(http_error(status, &bytes));
        }
        parse_json(&bytes)
    }

    /// A unary request: the status and the whole body. Uses the pooled
    /// connection if there is one (retrying once on a new connection if
    /// the server had closed it), else a new one, and pools it afterwards.
    fn call(&self, method: &str, path: &str, body: &[u8]) -> Result<(u16, Vec<u8>), EtcdError> {
        let deadline = Instant::now() + self.request_timeout;
        let pooled = self.conn.lock().take();
        if let Some(mut conn) = pooled {
            match self.exchange(&mut conn, true, method, path, body, deadline) {
                Ok(answer) => return Ok(self.pool(conn, answer)),
                // Closed while idle: the request never reached etcd.
                Err(Attempt::Stale(_)) => {}
                Err(Attempt::Failed(e)) => return Err(self.failed(e, conn.endpoint)),
            }
        }
        let mut conn = self.connect(deadline)?;
        match self.exchange(&mut conn, false, method, path, body, deadline) {
            Ok(answer) => Ok(self.pool(conn, answer)),
            Err(Attempt::Stale(e) | Attempt::Failed(e)) => Err(self.failed(e, conn.endpoint)),
        }
    }

    /// Keeps `conn` for the next call if it can be reused.
    fn pool(&self, conn: Conn, (status, body, reusable): (u16, Vec<u8>, bool)) -> (u16, Vec<u8>) {
        if reusable {
            let mut slot = self.conn.lock();
            if slot.is_none() {
                *slot = Some(conn);
            }
        }
        (status, body)
    }

    /// After a failed call: a timeout makes the next call start from the
    /// following endpoint (a frozen member still accepts connections).
    fn failed(&self, e: EtcdError, endpoint: usize) -> EtcdError {
        if matches!(e, EtcdError::Timeout) {
            self.rotate_from(endpoint);
        }
        e
    }

    /// Makes the endpoint after `endpoint` the first one tried, unless
    /// another call already moved on.
    fn rotate_from(&self, endpoint: usize) {
        let next = (endpoint + 1) % self.endpoints.len();
        let _ = self
            .current
            .compare_exchange(endpoint, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// One request and its answer on `conn`. A failure before any byte of
    /// the answer on a `reused` connection is [`Attempt::Stale`].
    fn exchange(
        &self,
        conn: &mut Conn,
        reused: bool,
        method: &str,
        path: &str,
        body: &[u8],
        deadline: Instant,
    ) -> Result<(u16, Vec<u8>, bool), Attempt> {
        let endpoint = &self.endpoints[conn.endpoint];
        conn.reader.get_mut().deadline = Some(deadline);
        let stale = |e: io::Error| {
            if reused && is_disconnect(&e) {
                Attempt::Stale(e.into())
            } else {
                Attempt::Failed(e.into())
            }
        };
        write_request(conn.reader.get_mut(), endpoint, method, path, body, false).map_err(stale)?;
        match conn.reader.fill_buf().map(|b| b.is_empty()) {
            Ok(false) => {}
            Ok(true) => {
                return Err(stale(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before the answer",
                )))
            }
            Err(e) => return Err(stale(e)),
        }
        let head = read_head(&mut conn.reader).map_err(Attempt::Failed)?;
        let mut bytes = Vec::new();
        Body::new(&mut conn.reader, head.framing)
            .read_to_end(&mut bytes)
            .map_err(|e| Attempt::Failed(e.into()))?;
        let reusable = head.keep_alive && conn.reader.buffer().is_empty();
        Ok((head.status, bytes, reusable))
    }

    /// A new connection, trying every endpoint once from the current one.
    fn connect(&self, deadline: Instant) -> Result<Conn, EtcdError> {
        let n = self.endpoints.len();
        let start = self.current.load(Ordering::Relaxed) % n;
        let mut last = None;
        for i in 0..n {
            let index = (start + i) % n;
            let endpoint = &self.endpoints[index];
            match connect_to(endpoint, self.connect_timeout, deadline) {
                Ok(stream) => {
                    self.current.store(index, Ordering::Relaxed);
                    return Ok(Conn {
                        reader: BufReader::new(Timed {
                            stream,
                            deadline: Some(deadline),
                        }),
                        endpoint: index,
                    });
                }
                Err(e) => last = Some((endpoint.url.clone(), e)),
            }
        }
        let (endpoint, source) = last.expect("at least one endpoint");
        Err(EtcdError::Connect { endpoint, source })
    }

    /// Opens a stream: a new connection carrying one request (read and
    /// written under `deadline`, kept until the caller lifts it), and a
    /// handle to shut it down.
    fn open(
        &self,
        path: &str,
        body: &Value,
        deadline: Instant,
    ) -> Result<(BufReader<Timed>, ShutdownHandle), EtcdError> {
        let mut conn = self.connect(deadline)?;
        let endpoint = &self.endpoints[conn.endpoint];
        let timed = conn.reader.get_mut();
        write_request(timed, endpoint, "POST", path, &body_bytes(body), true)
            .map_err(|e| self.failed(e.into(), conn.endpoint))?;
        let handle = ShutdownHandle::new(timed.stream.try_clone()?);
        Ok((conn.reader, handle))
    }

    /// The body of a stream whose answer is a 2xx; the error otherwise.
    fn stream_body(
        &self,
        mut reader: BufReader<Timed>,
    ) -> Result<Body<BufReader<Timed>>, EtcdError> {
        let head = read_head(&mut reader).map_err(|e| {
            let index = self.current.load(Ordering::Relaxed);
            self.failed(e, index)
        })?;
        let mut body = Body::new(reader, head.framing);
        if !(200..300).contains(&head.status) {
            let mut bytes = Vec::new();
            body.read_to_end(&mut bytes)?;
            return Err(http_error(head.status, &bytes));
        }
        Ok(body)
    }
}

/// How a unary exchange failed.
enum Attempt {
    /// On a pooled connection, before any answer: the server had closed
    /// it; the request can be sent again on a new connection.
    Stale(EtcdError),
    /// Any other failure.
    Failed(EtcdError),
}

/// An etcd member's address.
#[derive(Debug, Clone)]
struct Endpoint {
    /// As given.
    url: String,
    /// `host:port`, for connecting and the `Host` header.
    authority: String,
}

impl Endpoint {
    /// Parses `http://host[:port][/]` (or `host[:port]`).
    fn parse(url: &str) -> Result<Endpoint, EtcdError> {
        let invalid = |reason| EtcdError::InvalidEndpoint {
            endpoint: url.to_string(),
            reason,
        };
        if url.starts_with("https://") {
            return Err(invalid("TLS is not supported: use http://"));
        }
        let rest = url.strip_prefix("http://").unwrap_or(url);
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() {
            return Err(invalid("no host"));
        }
        if authority.contains(['/', '@', '?', '#', ' ']) {
            return Err(invalid("expected http://host[:port] with no path"));
        }
        let has_port = match authority.strip_prefix('[') {
            Some(v6) => v6.contains("]:"),
            None => authority.contains(':'),
        };
        let authority = if has_port {
            authority.to_string()
        } else {
            format!("{authority}:{DEFAULT_PORT}")
        };
        Ok(Endpoint {
            url: url.to_string(),
            authority,
        })
    }
}

/// A connection with its read buffer.
#[derive(Debug)]
struct Conn {
    reader: BufReader<Timed>,
    endpoint: usize,
}

/// A socket whose reads and writes fail once a deadline has passed.
#[derive(Debug)]
struct Timed {
    stream: TcpStream,
    /// `None`: the socket's own timeouts apply.
    deadline: Option<Instant>,
}

impl Timed {
    /// The time left before the deadline, if there is one.
    fn left(&self) -> io::Result<Option<Duration>> {
        match self.deadline {
            None => Ok(None),
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"))
                } else {
                    Ok(Some(left))
                }
            }
        }
    }

    /// Lifts the deadline: reads wait up to `read_timeout` (`None`: for
    /// ever).
    fn wait_forever(&mut self, read_timeout: Option<Duration>) -> io::Result<()> {
        self.deadline = None;
        self.stream.set_read_timeout(read_timeout)
    }
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(left) = self.left()? {
            self.stream.set_read_timeout(Some(left))?;
        }
        self.stream.read(buf)
    }
}

impl Write for Timed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(left) = self.left()? {
            self.stream.set_write_timeout(Some(left))?;
        }
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// Connects to `endpoint`, trying each of its addresses, within
/// `timeout` each and `deadline` in all.
fn connect_to(endpoint: &Endpoint, timeout: Duration, deadline: Instant) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address for the host");
    for addr in endpoint.authority.to_socket_addrs()? {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
        }
        match TcpStream::connect_timeout(&addr, timeout.min(left)) {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Whether `e` means the peer had closed the connection.
fn is_disconnect(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::NotConnected
    )
}

/// Sends one request, headers and body in one write.
fn write_request(
    w: &mut impl Write,
    endpoint: &Endpoint,
    method: &str,
    path: &str,
    body: &[u8],
    close: bool,
) -> io::Result<()> {
    let mut request = Vec::with_capacity(body.len() + 160);
    write!(
        request,
        "{method} {path} HTTP/1.1\r\nHost: {}\r\n",
        endpoint.authority
    )?;
    if method != "GET" {
        write!(
            request,
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        )?;
    }
    if close {
        request.extend_from_slice(b"Connection: close\r\n");
    }
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(body);
    w.write_all(&request)?;
    w.flush()
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

/// A response's status line and headers.
#[derive(Debug)]
struct Head {
    status: u16,
    framing: Framing,
    /// The connection may carry another request after this body.
    keep_alive: bool,
}

/// Reads a response's status line and headers (skipping 1xx answers).
fn read_head<R: BufRead>(r: &mut R) -> Result<Head, EtcdError> {
    let mut line = Vec::new();
    loop {
        if read_line(r, &mut line)? == 0 {
            return Err(EtcdError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the answer",
            )));
        }
        let status_line = String::from_utf8_lossy(trim_eol(&line)).into_owned();
        let mut parts = status_line.split_whitespace();
        let version = parts.next().unwrap_or("");
        let status = parts.next().and_then(|s| s.parse::<u16>().ok());
        let status = match status {
            Some(status) if version.starts_with("HTTP/1.") => status,
            _ => {
                return Err(EtcdError::Malformed(format!(
                    "bad HTTP status line {status_line:?}"
                )))
            }
        };
        let mut length = None;
        let mut chunked = false;
        let mut close = version == "HTTP/1.0";
        let mut total = 0;
        loop {
            let n = read_line(r, &mut line)?;
            if n == 0 {
                return Err(EtcdError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed in the headers",
                )));
            }
            total += n;
            if total > MAX_HEADER_BYTES {
                return Err(EtcdError::Malformed("headers too long".into()));
            }
            let header = trim_eol(&line);
            if header.is_empty() {
                break;
            }
            let header = String::from_utf8_lossy(header);
            let Some((name, value)) = header.split_once(':') else {
                return Err(EtcdError::Malformed(format!("bad header {header:?}")));
            };
            let value = value.trim().to_ascii_lowercase();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => {
                    length = Some(value.parse::<u64>().map_err(|_| {
                        EtcdError::Malformed(format!("bad Content-Length {value:?}"))
                    })?)
                }
                "transfer-encoding" => chunked |= value.contains("chunked"),
                "connection" => close |= value.contains("close"),
                _ => {}
            }
        }
        if (100..200).contains(&status) {
            continue;
        }
        let framing = if chunked {
            Framing::Chunked
        } else if let Some(n) = length {
            Framing::Length(n)
        } else if status == 204 || status == 304 {
            Framing::Length(0)
        } else {
            Framing::UntilClose
        };
        return Ok(Head {
            status,
            framing,
            keep_alive: !close && framing != Framing::UntilClose,
        });
    }
}

/// Reads one line (with its `\n`) of at most [`MAX_LINE`] bytes into
/// `line`; 0 at the end of the input.
fn read_line<R: BufRead>(r: &mut R, line: &mut Vec<u8>) -> io::Result<usize> {
    line.clear();
    let n = r.by_ref().take(MAX_LINE).read_until(b'\n', line)?;
    if n as u64 == MAX_LINE && line.last() != Some(&b'\n') {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
    }
    Ok(n)
}

/// `line` without its `\n` or `\r\n`.
fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A response body, delimited as its headers say. Ending before its
/// length, or a chunked body before its last chunk, is an
/// `UnexpectedEof` error.
#[derive(Debug)]
enum Body<R> {
    Length { inner: R, left: u64 },
    Chunked(ChunkedReader<R>),
    UntilClose(R),
}

impl<R: BufRead> Body<R> {
    /// The body that follows headers saying `framing` in `inner`.
    fn new(inner: R, framing: Framing) -> Self {
        match framing {
            Framing::Length(left) => Body::Length { inner, left },
            Framing::Chunked => Body::Chunked(ChunkedReader::new(inner)),
            Framing::UntilClose => Body::UntilClose(inner),
        }
    }

    /// The connection under the body.
    fn get_mut(&mut self) -> &mut R {
        match self {
            Body::Length { inner, .. } | Body::UntilClose(inner) => inner,
            Body::Chunked(chunked) => &mut chunked.inner,
        }
    }
}

impl<R: BufRead> Read for Body<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Body::Length { inner, left } => {
                if *left == 0 || buf.is_empty() {
                    return Ok(0);
                }
                let max = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                let n = inner.read(&mut buf[..max])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed within the body",
                    ));
                }
                *left -= n as u64;
                Ok(n)
            }
            Body::Chunked(chunked) => chunked.read(buf),
            Body::UntilClose(inner) => inner.read(buf),
        }
    }
}

/// Where a [`ChunkedReader`] is in the chunked encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Before a chunk-size line.
    Size,
    /// Within a chunk's data, this many bytes left.
    Data(u64),
    /// After a chunk's data, before its CRLF.
    DataEnd,
    /// After the last chunk and the trailers.
    Done,
}

/// Decodes `Transfer-Encoding: chunked` (RFC 9112 §7.1): chunk extensions
/// and trailers are skipped; the input ending before the last chunk is an
/// `UnexpectedEof` error, so a dropped stream is never a clean end.
#[derive(Debug)]
struct ChunkedReader<R> {
    inner: R,
    state: ChunkState,
    line: Vec<u8>,
}

impl<R: BufRead> ChunkedReader<R> {
    /// Decodes the chunked body that starts in `inner`.
    fn new(inner: R) -> Self {
        ChunkedReader {
            inner,
            state: ChunkState::Size,
            line: Vec::new(),
        }
    }

    /// Reads a line of the framing; the input must not end there.
    fn framing_line(&mut self) -> io::Result<()> {
        if read_line(&mut self.inner, &mut self.line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the last chunk",
            ));
        }
        Ok(())
    }
}

impl<R: BufRead> Read for ChunkedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.state {
                ChunkState::Done => return Ok(0),
                ChunkState::Size => {
                    self.framing_line()?;
                    let line = trim_eol(&self.line);
                    let size = line.split(|&b| b == b';').next().unwrap_or(&[]);
                    let size = std::str::from_utf8(size)
                        .ok()
                        .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
                        .ok_or_else(|| {
                            io::Error::new(io::ErrorKind::InvalidData, "bad chunk size")
                        })?;
                    if size == 0 {
                        // Trailers, up to an empty line.
                        loop {
                            self.framing_line()?;
                            if trim_eol(&self.line).is_empty() {
                                break;
                            }
                        }
                        self.state = ChunkState::Done;
                    } else {
                        self.state = ChunkState::Data(size);
                    }
                }
                ChunkState::Data(left) => {
                    let available = self.inner.fill_buf()?;
                    if available.is_empty() {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "connection closed within a chunk",
                        ));
                    }
                    let n = buf
                        .len()
                        .min(available.len())
                        .min(usize::try_from(left).unwrap_or(usize::MAX));
                    buf[..n].copy_from_slice(&available[..n]);
                    self.inner.consume(n);
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                    return Ok(n);
                }
                ChunkState::DataEnd => {
                    self.framing_line()?;
                    if !trim_eol(&self.line).is_empty() {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "chunk longer than its size",
                        ));
                    }
                    self.state = ChunkState::Size;
                }
            }
        }
    }
}

/// The next non-blank line of a stream, without its line end; `None` at
/// its end. A last line without `\n` still counts.
fn next_line<'a, R: BufRead>(r: &mut R, buf: &'a mut Vec<u8>) -> io::Result<Option<&'a [u8]>> {
    loop {
        buf.clear();
        if r.read_until(b'\n', buf)? == 0 {
            return Ok(None);
        }
        if !buf.trim_ascii().is_empty() {
            return Ok(Some(buf.trim_ascii()));
        }
    }
}

// ---- JSON ----

/// A JSON request body.
fn body_bytes(body: &Value) -> Vec<u8> {
    body.to_string().into_bytes()
}

/// Parses an answer; [`EtcdError::Malformed`] with its start if it is not `T`.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, EtcdError> {
    serde_json::from_slice(bytes).map_err(|e| {
        EtcdError::Malformed(format!(
            "{e} in {:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        ))
    })
}

/// An HTTP error answer: `{"error","message","code"}` when etcd sent one.
fn http_error(status: u16, body: &[u8]) -> EtcdError {
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct ErrorJson {
        error: String,
        message: String,
        code: Option<i32>,
    }
    match serde_json::from_slice::<ErrorJson>(body) {
        Ok(e) => EtcdError::Http {
            status,
            code: e.code,
            message: if e.message.is_empty() {
                e.error
            } else {
                e.message
            },
        },
        Err(_) => EtcdError::Http {
            status,
            code: None,
            message: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
        },
    }
}

/// One line of a stream: `{"result":T}` or `{"error":{...}}`.
fn parse_stream_line<T: DeserializeOwned>(line: &[u8]) -> Result<T, EtcdError> {
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct StreamErrorJson {
        grpc_code: Option<i32>,
        http_code: u16,
        message: String,
    }
    #[derive(Deserialize)]
    struct StreamLine<T> {
        result: Option<T>,
        error: Option<StreamErrorJson>,
    }
    let line: StreamLine<T> = parse_json(line)?;
    if let Some(e) = line.error {
        return Err(EtcdError::Http {
            status: e.http_code,
            code: e.grpc_code,
            message: e.message,
        });
    }
    line.result
        .ok_or_else(|| EtcdError::Malformed("stream line with neither result nor error".into()))
}

/// A `RangeRequest` (also the shape of a delete and a watch's key).
fn range_json(key: &[u8], range_end: Option<&[u8]>, limit: i64) -> Value {
    let mut m = Map::new();
    m.insert("key".into(), b64::encode(key).into());
    if let Some(end) = range_end {
        m.insert("range_end".into(), b64::encode(end).into());
    }
    if limit > 0 {
        m.insert("limit".into(), limit.to_string().into());
    }
    Value::Object(m)
}

/// The key and range end covering `prefix` (all keys for an empty one:
/// etcd rejects an empty key).
fn prefix_range(prefix: &[u8]) -> (Vec<u8>, Vec<u8>) {
    if prefix.is_empty() {
        (vec![0], vec![0])
    } else {
        (prefix.to_vec(), prefix_end(prefix))
    }
}

/// A `ResponseHeader`: only the revision matters here.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct HeaderJson {
    #[serde(deserialize_with = "de_i64")]
    revision: i64,
}

/// An answer with nothing but its header (put, compaction, resign).
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct HeaderOnlyJson {
    header: HeaderJson,
}

/// A `RangeResponse`.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct RangeJson {
    header: HeaderJson,
    kvs: Vec<KeyValue>,
    more: bool,
    #[serde(deserialize_with = "de_i64")]
    count: i64,
}

impl RangeJson {
    /// As handed to the caller.
    fn into_result(self) -> RangeResult {
        RangeResult {
            kvs: self.kvs,
            more: self.more,
            count: self.count,
            header_revision: self.header.revision,
        }
    }
}

/// A `DeleteRangeResponse`.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct DeleteJson {
    header: HeaderJson,
    #[serde(deserialize_with = "de_i64")]
    deleted: i64,
}

impl DeleteJson {
    /// As handed to the caller.
    fn into_result(self) -> DeleteResult {
        DeleteResult {
            deleted: self.deleted,
            header_revision: self.header.revision,
        }
    }
}

/// A `ResponseOp`: one of these is set.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ResponseOpJson {
    #[serde(alias = "responsePut")]
    response_put: Option<HeaderOnlyJson>,
    #[serde(alias = "responseRange")]
    response_range: Option<RangeJson>,
    #[serde(alias = "responseDeleteRange")]
    response_delete_range: Option<DeleteJson>,
}

/// A `TxnResponse`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct TxnJson {
    header: HeaderJson,
    succeeded: bool,
    responses: Vec<ResponseOpJson>,
}

impl TxnJson {
    /// As handed to the caller.
    fn into_result(self) -> Result<TxnResult, EtcdError> {
        let responses = self
            .responses
            .into_iter()
            .map(|r| {
                if let Some(put) = r.response_put {
                    Ok(OpResponse::Put {
                        header_revision: put.header.revision,
                    })
                } else if let Some(range) = r.response_range {
                    Ok(OpResponse::Range(range.into_result()))
                } else if let Some(delete) = r.response_delete_range {
                    Ok(OpResponse::DeleteRange(delete.into_result()))
                } else {
                    Err(EtcdError::Malformed(
                        "transaction answer of an unknown kind".into(),
                    ))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TxnResult {
            succeeded: self.succeeded,
            header_revision: self.header.revision,
            responses,
        })
    }
}

/// A `LeaseGrantResponse`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct LeaseGrantJson {
    #[serde(rename = "ID", deserialize_with = "de_i64")]
    id: i64,
    #[serde(rename = "TTL", deserialize_with = "de_i64")]
    ttl: i64,
    error: String,
}

/// A `CampaignResponse`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct CampaignJson {
    leader: Option<LeaderKey>,
}

/// A `WatchResponse`.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct WatchResponseJson {
    header: HeaderJson,
    created: bool,
    canceled: bool,
    #[serde(deserialize_with = "de_i64", alias = "compactRevision")]
    compact_revision: i64,
    #[serde(alias = "cancelReason")]
    cancel_reason: String,
    events: Vec<Event>,
}

impl WatchResponseJson {
    /// As handed to the caller.
    fn into_event(self) -> WatchEvent {
        WatchEvent {
            header_revision: self.header.revision,
            events: self.events,
            compact_revision: self.compact_revision,
            canceled: self.canceled,
            cancel_reason: self.cancel_reason,
        }
    }
}

/// An int64: a JSON string (as the gateway sends them) or number; null is 0.
fn de_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = i64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an int64 as a string or a number")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
            v.parse()
                .map_err(|_| E::invalid_value(Unexpected::Str(v), &self))
        }
        fn visit_unit<E: de::Error>(self) -> Result<i64, E> {
            Ok(0)
        }
    }
    d.deserialize_any(V)
}

/// `bytes`: standard base64 with padding; null is empty.
fn de_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("base64 bytes")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
            b64::decode(v).ok_or_else(|| E::invalid_value(Unexpected::Str(v), &self))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Vec<u8>, E> {
            Ok(Vec::new())
        }
    }
    d.deserialize_any(V)
}

/// An event type: `"PUT"`/`"DELETE"` or 0/1.
fn de_event_kind<'de, D: Deserializer<'de>>(d: D) -> Result<EventKind, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = EventKind;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("PUT or DELETE")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<EventKind, E> {
            match v {
                "PUT" => Ok(EventKind::Put),
                "DELETE" => Ok(EventKind::Delete),
                _ => Err(E::invalid_value(Unexpected::Str(v), &self)),
            }
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<EventKind, E> {
            match v {
                0 => Ok(EventKind::Put),
                1 => Ok(EventKind::Delete),
                _ => Err(E::invalid_value(Unexpected::Unsigned(v), &self)),
            }
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<EventKind, E> {
            match u64::try_from(v) {
                Ok(v) => self.visit_u64(v),
                Err(_) => Err(E::invalid_value(Unexpected::Signed(v), &self)),
            }
        }
        fn visit_unit<E: de::Error>(self) -> Result<EventKind, E> {
            Ok(EventKind::Put)
        }
    }
    d.deserialize_any(V)
}

/// Standard base64 (RFC 4648 §4) with padding, as etcd's gateway wants
/// it. Hand-written: the `base64` crate is only a dependency of the
/// `server` feature, and this module builds without it.
mod b64 {
    /// The standard alphabet.
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    /// Encodes with padding.
    pub(super) fn encode(input: &[u8]) -> String {
        let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
        for chunk in input.chunks(3) {
            let b1 = chunk.get(1).copied().unwrap_or(0);
            let b2 = chunk.get(2).copied().unwrap_or(0);
            let n = u32::from(chunk[0]) << 16 | u32::from(b1) << 8 | u32::from(b2);
            let sextet = |shift: u32| char::from(ALPHABET[(n >> shift & 63) as usize]);
            out.push(sextet(18));
            out.push(sextet(12));
            out.push(if chunk.len() > 1 { sextet(6) } else { '=' });
            out.push(if chunk.len() > 2 { sextet(0) } else { '=' });
        }
        out
    }

    /// Decodes, padded or not; `None` for anything else than the standard
    /// alphabet.
    pub(super) fn decode(input: &str) -> Option<Vec<u8>> {
        let bytes = input.as_bytes();
        let data = match bytes
            .strip_suffix(b"==")
            .or_else(|| bytes.strip_suffix(b"="))
        {
            // Padding only ever completes a group of 4.
            Some(_) if !bytes.len().is_multiple_of(4) => return None,
            Some(data) => data,
            None => bytes,
        };
        if data.len() % 4 == 1 {
            return None;
        }
        let mut out = Vec::with_capacity(data.len() / 4 * 3 + 2);
        let mut acc = 0u32;
        let mut bits = 0u32;
        for &c in data {
            acc = acc << 6 | value(c)?;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
                acc &= (1 << bits) - 1;
            }
        }
        Some(out)
    }

    /// The 6 bits `c` stands for.
    fn value(c: u8) -> Option<u32> {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        Some(u32::from(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{self, File};
    use std::net::TcpListener;
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::sync::mpsc;
    use std::thread;

    // ---- a throwaway etcd ----

    /// A single-node etcd on free loopback ports with a temporary data
    /// directory; killed and removed on drop.
    struct TestEtcd {
        child: Child,
        dir: PathBuf,
        endpoint: String,
    }

    /// The `etcd` binary: `$ETCD_BIN`, else the first `etcd` on `PATH`.
    fn etcd_binary() -> PathBuf {
        if let Some(bin) = std::env::var_os("ETCD_BIN") {
            return bin.into();
        }
        std::env::var_os("PATH")
            .and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join("etcd"))
                    .find(|p| p.is_file())
            })
            .unwrap_or_else(|| {
                panic!(
                    "the `etcd` binary is not on PATH: the etcd client tests need a real etcd; \
                     run scripts/etcd-install (Debian's etcd-server) or set ETCD_BIN"
                )
            })
    }

    /// Two distinct free loopback ports.
    fn free_ports() -> (u16, u16) {
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let b = TcpListener::bind("127.0.0.1:0").unwrap();
        (
            a.local_addr().unwrap().port(),
            b.local_addr().unwrap().port(),
        )
    }

    impl TestEtcd {
        fn start() -> TestEtcd {
            let bin = etcd_binary();
            let mut last = String::new();
            // A port taken between free_ports and etcd's bind: try again.
            for _ in 0..3 {
                match TestEtcd::try_start(&bin) {
                    Ok(etcd) => return etcd,
                    Err(e) => last = e,
                }
            }
            panic!("could not start etcd: {last}");
        }

        fn try_start(bin: &PathBuf) -> Result<TestEtcd, String> {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let (client_port, peer_port) = free_ports();
            let dir = std::env::temp_dir().join(format!(
                "numpool-etcd-test-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            let log = File::create(dir.join("etcd.log")).map_err(|e| e.to_string())?;
            let client = format!("http://127.0.0.1:{client_port}");
            let peer = format!("http://127.0.0.1:{peer_port}");
            let child = Command::new(bin)
                .arg("--name=t")
                .arg(format!("--data-dir={}", dir.join("data").display()))
                .arg(format!("--listen-client-urls={client}"))
                .arg(format!("--advertise-client-urls={client}"))
                .arg(format!("--listen-peer-urls={peer}"))
                .arg(format!("--initial-advertise-peer-urls={peer}"))
                .arg(format!("--initial-cluster=t={peer}"))
                .args(["--heartbeat-interval", "10", "--election-timeout", "100"])
                .args(["--logger", "zap", "--log-outputs", "stderr"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
            let mut etcd = TestEtcd {
                child,
                dir,
                endpoint: client,
            };
            let probe = EtcdClient::new(vec![etcd.endpoint.clone()])
                .unwrap()
                .with_connect_timeout(Duration::from_millis(100))
                .with_request_timeout(Duration::from_millis(500));
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(true) = probe.health() {
                    return Ok(etcd);
                }
                if let Ok(Some(status)) = etcd.child.try_wait() {
                    return Err(format!("etcd exited ({status}):\n{}", etcd.log_tail()));
                }
                if Instant::now() > deadline {
                    return Err(format!("etcd not healthy after 10 s:\n{}", etcd.log_tail()));
                }
                thread::sleep(Duration::from_millis(20));
            }
        }

        fn client(&self) -> EtcdClient {
            EtcdClient::new(vec![self.endpoint.clone()]).unwrap()
        }

        fn log_tail(&self) -> String {
            let log = fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            lines[lines.len().saturating_sub(20)..].join("\n")
        }
    }

    impl Drop for TestEtcd {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            if thread::panicking() {
                eprintln!("etcd log ({}):\n{}", self.endpoint, self.log_tail());
            }
            let _ = fs::remove_dir_all(&self.dir);
        }
    }

    /// Runs `f` on a thread and fails if it takes longer than `limit`.
    fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(limit)
            .unwrap_or_else(|_| panic!("did not finish within {limit:?}"))
    }

    fn log_key(i: u64) -> Vec<u8> {
        format!("/np/log/{i:020}").into_bytes()
    }

    // ---- without etcd ----

    #[test]
    fn base64_matches_rfc4648() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("/ha/log/", "L2hhL2xvZy8="),
        ] {
            assert_eq!(b64::encode(plain.as_bytes()), encoded);
            assert_eq!(b64::decode(encoded).unwrap(), plain.as_bytes());
        }
        let all: Vec<u8> = (0..=255).collect();
        for len in 0..all.len() {
            let bytes = &all[all.len() - len..];
            assert_eq!(b64::decode(&b64::encode(bytes)).unwrap(), bytes);
        }
        assert_eq!(b64::decode("Zg").unwrap(), b"f"); // unpadded is accepted
        for bad in ["Z", "Zg=", "Zg=a", "Z===", "Zm9v-_", "Zm 9v", "===="] {
            assert!(b64::decode(bad).is_none(), "{bad:?}");
        }
    }

    #[cfg(feature = "server")]
    #[test]
    fn base64_agrees_with_the_base64_crate() {
        use base64::Engine as _;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let theirs = base64::engine::general_purpose::STANDARD.encode(&bytes);
            assert_eq!(b64::encode(&bytes), theirs);
            assert_eq!(b64::decode(&theirs).unwrap(), bytes);
        }
    }

    #[test]
    fn prefix_end_increments_the_last_byte_below_0xff() {
        assert_eq!(prefix_end(b"/np/log/"), b"/np/log0");
        assert_eq!(prefix_end(b"a\xff\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), b"\0");
        assert_eq!(prefix_end(b""), b"\0");
    }

    #[test]
    fn endpoints_parse() {
        let c = EtcdClient::new(vec![
            "http://127.0.0.1:2379".into(),
            "http://localhost/".into(),
            "[::1]:23790".into(),
        ])
        .unwrap();
        let authorities: Vec<&str> = c.endpoints.iter().map(|e| e.authority.as_str()).collect();
        assert_eq!(
            authorities,
            ["127.0.0.1:2379", "localhost:2379", "[::1]:23790"]
        );
        for bad in ["https://h:1", "http://", "http://h:1/v3", "http://u@h"] {
            assert!(
                matches!(
                    EtcdClient::new(vec![bad.into()]),
                    Err(EtcdError::InvalidEndpoint { .. })
                ),
                "{bad}"
            );
        }
        assert!(EtcdClient::new(vec![]).is_err());
    }

    /// A reader handing out its input a few bytes at a time, like a socket.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(self.1);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn chunked_lines(input: &[u8], step: usize) -> (Vec<String>, Option<io::ErrorKind>) {
        let mut lines = BufReader::new(ChunkedReader::new(BufReader::with_capacity(
            4,
            Trickle(input, step),
        )));
        let mut out = Vec::new();
        let mut buf = Vec::new();
        loop {
            match next_line(&mut lines, &mut buf) {
                Ok(Some(line)) => out.push(String::from_utf8(line.to_vec()).unwrap()),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e.kind())),
            }
        }
    }

    #[test]
    fn chunked_lines_may_span_chunks() {
        // Lines split over chunks, two lines in a chunk, an extension, trailers.
        let input = b"5\r\n{\"a\":\r\n6;ext=1\r\n1}\n{\"b\r\nB\r\n\":2}\n\n{\"c\":\r\n4\r\n3}\n\n\r\n0\r\nGrpc-Trailer: x\r\n\r\n";
        for step in [1, 3, 7, 1000] {
            let (lines, err) = chunked_lines(input, step);
            assert_eq!(
                lines,
                [r#"{"a":1}"#, r#"{"b":2}"#, r#"{"c":3}"#],
                "step {step}"
            );
            assert_eq!(err, None);
        }
    }

    #[test]
    fn chunked_stream_cut_before_the_last_chunk_is_an_error() {
        for input in [
            &b"8\r\n{\"a\":1}\n\r\n"[..],          // no last chunk
            &b"8\r\n{\"a\":1}\n\r\n6\r\n{\"b"[..], // cut within a chunk
            &b"8\r\n{\"a\":1}\n\r\n0\r\n"[..],     // cut in the trailers
        ] {
            let (lines, err) = chunked_lines(input, 5);
            assert_eq!(lines, [r#"{"a":1}"#]);
            assert_eq!(err, Some(io::ErrorKind::UnexpectedEof));
        }
        let (_, err) = chunked_lines(b"zz\r\n", 5);
        assert_eq!(err, Some(io::ErrorKind::InvalidData));
        let (_, err) = chunked_lines(b"2\r\nabc\r\n", 5);
        assert_eq!(err, Some(io::ErrorKind::InvalidData));
    }

    #[test]
    fn stream_lines_parse_results_and_errors() {
        let line = br#"{"result":{"header":{"revision":"31"},"events":[{"type":"DELETE","kv":{"key":"YQ==","mod_revision":"31"}},{"kv":{"key":"Yg==","value":"AP8=","create_revision":"7","mod_revision":"31","version":"2","lease":"12"}}]}}"#;
        let r = parse_stream_line::<WatchResponseJson>(line)
            .unwrap()
            .into_event();
        assert_eq!(r.header_revision, 31);
        assert_eq!(r.events.len(), 2);
        assert_eq!(r.events[0].kind, EventKind::Delete);
        assert_eq!(r.events[0].kv.key, b"a");
        assert_eq!(r.events[1].kind, EventKind::Put);
        assert_eq!(
            r.events[1].kv,
            KeyValue {
                key: b"b".to_vec(),
                value: vec![0, 0xff],
                create_revision: 7,
                mod_revision: 31,
                version: 2,
                lease: 12
            }
        );
        let line = br#"{"error":{"grpc_code":14,"http_code":503,"message":"transport is closing","http_status":"Service Unavailable"}}"#;
        match parse_stream_line::<WatchResponseJson>(line) {
            Err(EtcdError::Http {
                status: 503,
                code: Some(14),
                message,
            }) => assert_eq!(message, "transport is closing"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_stream_line::<WatchResponseJson>(b"{}"),
            Err(EtcdError::Malformed(_))
        ));
    }

    /// A server that answers each request with `answer`, then closes the
    /// connection without saying so (as a server dropping an idle
    /// keep-alive connection does); reports how many connections it saw.
    fn one_shot_server(answer: &'static [u8], requests: usize) -> (String, mpsc::Receiver<usize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for n in 1..=requests {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream);
                let mut line = Vec::new();
                let mut length = 0;
                loop {
                    read_line(&mut reader, &mut line).unwrap();
                    let header = String::from_utf8_lossy(trim_eol(&line)).to_ascii_lowercase();
                    if header.is_empty() {
                        break;
                    }
                    if let Some(v) = header.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                reader.get_mut().write_all(answer).unwrap();
                let _ = tx.send(n);
                // Dropped: closed once the client has read the answer.
                thread::sleep(Duration::from_millis(50));
            }
        });
        (endpoint, rx)
    }

    #[test]
    fn a_pooled_connection_closed_by_the_server_is_retried_on_a_new_one() {
        let answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"header\":{\"revi\r\nf\r\nsion\":\"7\"},\"cou\r\n7\r\nnt\":\"0\"\r\n1\r\n}\r\n0\r\n\r\n";
        let (endpoint, served) = one_shot_server(answer, 2);
        let client = EtcdClient::new(vec![endpoint]).unwrap();
        let r = client.range(b"k", None, 0).unwrap();
        assert_eq!((r.header_revision, r.count, r.kvs.len()), (7, 0, 0));
        assert_eq!(served.recv_timeout(Duration::from_secs(1)), Ok(1));
        thread::sleep(Duration::from_millis(150)); // the server has closed it
        let r = client.range(b"k", None, 0).unwrap();
        assert_eq!(r.header_revision, 7);
        assert_eq!(served.recv_timeout(Duration::from_secs(1)), Ok(2));
    }

    #[test]
    fn an_unanswered_call_times_out() {
        // Accepts (the kernel does) but never answers: a frozen etcd.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let client = EtcdClient::new(vec![endpoint])
            .unwrap()
            .with_request_timeout(Duration::from_millis(200));
        let start = Instant::now();
        assert!(matches!(
            client.put(b"k", b"v", None),
            Err(EtcdError::Timeout)
        ));
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
        drop(listener);
    }

    // ---- against a real etcd ----

    #[test]
    fn kv_round_trip_with_binary_keys_and_values() {
        let etcd = TestEtcd::start();
        let c = etcd.client();
        assert!(c.health().unwrap());
        let key = b"/np/kv/\x00\xff\n=".to_vec();
        let value: Vec<u8> = (0..=255).rev().collect();
        let rev = c.put(&key, &value, None).unwrap();
        let kv = c.get(&key).unwrap().unwrap();
        assert_eq!(
            kv,
            KeyValue {
                key: key.clone(),
                value: value.clone(),
                create_revision: rev,
                mod_revision: rev,
                version: 1,
                lease: 0
            }
        );
        let rev2 = c.put(&key, b"", None).unwrap(); // an empty value is omitted in JSON
        let kv = c.get(&key).unwrap().unwrap();
        assert_eq!(
            (
                kv.value.len(),
                kv.create_revision,
                kv.mod_revision,
                kv.version
            ),
            (0, rev, rev2, 2)
        );

        for k in [b"/np/kv/a", b"/np/kv/b"] {
            c.put(k, k, None).unwrap();
        }
        c.put(b"/np/kw", b"outside", None).unwrap();
        let all = c.range_prefix(b"/np/kv/").unwrap();
        let keys: Vec<&[u8]> = all.kvs.iter().map(|kv| kv.key.as_slice()).collect();
        assert_eq!(keys, [&key[..], b"/np/kv/a", b"/np/kv/b"]);
        assert_eq!((all.count, all.more), (3, false));
        let end = prefix_end(b"/np/kv/");
        let some = c.range(b"/np/kv/", Some(&end), 2).unwrap();
        assert_eq!((some.kvs.len(), some.count, some.more), (2, 3, true));
        assert!(c.get(b"/np/missing").unwrap().is_none());

        let d = c.delete_range(&key, None).unwrap();
        assert_eq!(d.deleted, 1);
        assert!(d.header_revision > rev2);
        assert!(c.get(&key).unwrap().is_none());
        assert_eq!(c.delete_range(b"/np/kv/", Some(&end)).unwrap().deleted, 2);
        assert_eq!(c.delete_range(b"/np/kv/", Some(&end)).unwrap().deleted, 0);
        assert_eq!(c.range_prefix(b"").unwrap().count, 1); // /np/kw

        // Leases: keys go with a revoked lease; errors carry etcd's code.
        let lease = c.lease_grant(1).unwrap();
        assert_eq!(lease.ttl, 1);
        c.put(b"/np/leased", b"v", Some(lease.id)).unwrap();
        assert_eq!(c.get(b"/np/leased").unwrap().unwrap().lease, lease.id);
        assert!(c.lease_revoke(lease.id).unwrap());
        assert!(c.get(b"/np/leased").unwrap().is_none());
        assert!(!c.lease_revoke(lease.id).unwrap());
        match c.put(b"/np/leased", b"v", Some(lease.id)) {
            Err(EtcdError::Http {
                status: 404,
                code: Some(5),
                message,
            }) => assert!(message.contains("lease not found"), "{message}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            c.lease_keepalive(lease.id),
            Err(EtcdError::LeaseLost(id)) if id == lease.id
        ));
    }

    #[test]
    fn unreachable_endpoints_are_skipped() {
        let etcd = TestEtcd::start();
        let dead = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        let c = EtcdClient::new(vec![dead.clone(), etcd.endpoint.clone()]).unwrap();
        c.put(b"k", b"v", None).unwrap();
        assert_eq!(c.get(b"k").unwrap().unwrap().value, b"v");
        let none = EtcdClient::new(vec![dead]).unwrap();
        assert!(matches!(none.get(b"k"), Err(EtcdError::Connect { .. })));
    }

    #[test]
    fn a_txn_whose_compare_fails_changes_nothing() {
        let etcd = TestEtcd::start();
        let c = etcd.client();
        let rev = c.put(b"/np/t/a", b"one", None).unwrap();
        let r = c
            .txn(
                &[Compare::value(b"/np/t/a", CompareResult::Equal, b"two")],
                &[Op::put(b"/np/t/a", b"changed"), Op::put(b"/np/t/b", b"x")],
                &[Op::get(b"/np/t/a")],
            )
            .unwrap();
        assert!(!r.succeeded);
        assert_eq!(r.header_revision, rev);
        match &r.responses[..] {
            [OpResponse::Range(range)] => assert_eq!(range.kvs[0].value, b"one"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            r.require_success(),
            Err(EtcdError::CompareFailed { revision }) if revision == rev
        ));
        assert_eq!(c.get(b"/np/t/a").unwrap().unwrap().value, b"one");
        assert!(c.get(b"/np/t/b").unwrap().is_none());

        // Every compare target; all writes of a txn share one revision.
        let compares = [
            Compare::value(b"/np/t/a", CompareResult::Equal, b"one"),
            Compare::version(b"/np/t/a", CompareResult::Greater, 0),
            Compare::mod_revision(b"/np/t/a", CompareResult::Less, rev + 1),
            Compare::create_revision(b"/np/t/a", CompareResult::NotEqual, 0),
            Compare::lease(b"/np/t/a", CompareResult::Equal, 0),
            Compare::create_revision(b"/np/t/b", CompareResult::Equal, 0), // absent
            Compare::version(b"/np/t/", CompareResult::Greater, 0)
                .with_range_end(prefix_end(b"/np/t/")),
        ];
        let r = c
            .txn(
                &compares,
                &[
                    Op::put(b"/np/t/b", b"x"),
                    Op::put(b"/np/t/c", b"y"),
                    Op::delete(b"/np/t/a"),
                ],
                &[],
            )
            .unwrap()
            .require_success()
            .unwrap();
        assert_eq!(
            r.responses,
            [
                OpResponse::Put {
                    header_revision: rev + 1
                },
                OpResponse::Put {
                    header_revision: rev + 1
                },
                OpResponse::DeleteRange(DeleteResult {
                    deleted: 1,
                    header_revision: rev + 1
                }),
            ]
        );
        // Create-if-absent holds once.
        let r = c
            .txn(
                &[Compare::create_revision(
                    b"/np/t/b",
                    CompareResult::Equal,
                    0,
                )],
                &[Op::put(b"/np/t/b", b"again")],
                &[],
            )
            .unwrap();
        assert!(!r.succeeded && r.responses.is_empty());

        // etcd's limits come back as errors with its code.
        let ops: Vec<Op> = (0..=MAX_TXN_OPS as u64)
            .map(|i| Op::put(log_key(i), b"v"))
            .collect();
        match c.txn(&[], &ops, &[]) {
            Err(EtcdError::Http {
                status: 400,
                code: Some(3),
                message,
            }) => assert!(message.contains("too many operations"), "{message}"),
            other => panic!("{other:?}"),
        }
        assert!(c.txn(&[], &ops[..MAX_TXN_OPS], &[]).unwrap().succeeded);
    }

    #[test]
    fn a_deposed_leaders_fenced_append_fails() {
        let etcd = TestEtcd::start();
        let a = etcd.client();
        let b = Arc::new(etcd.client());
        let election: &[u8] = b"/np/election";
        assert!(a.leader(election).unwrap().is_none());
        let lease_a = a.lease_grant(1).unwrap();
        let lease_b = b.lease_grant(1).unwrap();
        assert_eq!((lease_a.ttl, lease_b.ttl), (1, 1));

        let key_a = a.campaign(election, lease_a.id, b"node-a").unwrap();
        assert_eq!(
            key_a.key,
            format!("/np/election/{:x}", lease_a.id).into_bytes()
        );
        assert_eq!((key_a.name.as_slice(), key_a.lease), (election, lease_a.id));

        // B waits behind A, keeping its own lease alive.
        let stop = Arc::new(AtomicBool::new(false));
        let keepalive_b = {
            let (b, stop) = (b.clone(), stop.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    b.lease_keepalive(lease_b.id).unwrap();
                    thread::sleep(Duration::from_millis(250));
                }
            })
        };
        let (elected_tx, elected) = mpsc::channel();
        {
            let b = b.clone();
            thread::spawn(move || {
                let key = b.campaign(b"/np/election", lease_b.id, b"node-b");
                let _ = elected_tx.send((key, Instant::now()));
            });
        }

        // A appends under its fence, past its TTL thanks to keepalives.
        let append = |c: &EtcdClient, leader: &LeaderKey, i: u64| {
            c.txn(
                &[
                    leader.fence(),
                    Compare::create_revision(log_key(i), CompareResult::Equal, 0),
                ],
                &[Op::put(log_key(i), format!("batch {i}"))],
                &[Op::get(leader.key.clone())],
            )
            .unwrap()
        };
        for i in 0..5 {
            a.lease_keepalive(lease_a.id).unwrap();
            assert!(append(&a, &key_a, i).succeeded);
            thread::sleep(Duration::from_millis(300));
            assert!(
                elected.try_recv().is_err(),
                "B elected while A keeps its lease"
            );
        }
        assert_eq!(a.leader(election).unwrap().unwrap().value, b"node-a");

        // A stops keeping its lease alive: B takes over within TTL + 1 s.
        let last_keepalive = Instant::now();
        assert_eq!(a.lease_keepalive(lease_a.id).unwrap(), 1);
        let (key_b, elected_at) = elected
            .recv_timeout(Duration::from_secs(3))
            .expect("B not elected within 3 s");
        let key_b = key_b.unwrap();
        let takeover = elected_at - last_keepalive;
        assert!(
            takeover <= Duration::from_secs(2),
            "takeover took {takeover:?}"
        );
        eprintln!("takeover {takeover:?} after the last keepalive (TTL 1 s)");
        assert!(key_b.rev > key_a.rev, "epochs increase");

        // A's fenced append now fails, writes nothing, and shows why.
        let r = append(&a, &key_a, 5);
        assert!(!r.succeeded);
        match &r.responses[..] {
            [OpResponse::Range(range)] => assert!(range.kvs.is_empty(), "A's key is gone"),
            other => panic!("{other:?}"),
        }
        assert!(a.get(&log_key(5)).unwrap().is_none());
        assert!(matches!(
            a.lease_keepalive(lease_a.id),
            Err(EtcdError::LeaseLost(_))
        ));
        // B's succeeds; the leader is B.
        assert!(append(&b, &key_b, 5).succeeded);
        let leader = a.leader(election).unwrap().unwrap();
        assert_eq!(
            (leader.key, leader.create_revision, leader.value),
            (key_b.key.clone(), key_b.rev, b"node-b".to_vec())
        );
        assert_eq!(a.range_prefix(b"/np/log/").unwrap().count, 6);

        // Resigning hands leadership over at once (here: to nobody).
        b.resign(&key_b).unwrap();
        assert!(a.leader(election).unwrap().is_none());
        assert!(!append(&b, &key_b, 6).succeeded);
        stop.store(true, Ordering::Relaxed);
        keepalive_b.join().unwrap();
    }

    #[test]
    fn a_waiting_campaign_can_be_withdrawn() {
        let etcd = TestEtcd::start();
        let c = etcd.client();
        let lease_a = c.lease_grant(5).unwrap();
        let lease_b = c.lease_grant(5).unwrap();
        let leader = c.campaign(b"/np/e", lease_a.id, b"a").unwrap();
        let waiting = c.start_campaign(b"/np/e", lease_b.id, b"b").unwrap();
        let handle = waiting.shutdown_handle();
        let outcome = thread::spawn(move || waiting.wait());
        let deadline = Instant::now() + Duration::from_secs(2);
        while c.range_prefix(b"/np/e/").unwrap().count < 2 {
            assert!(
                Instant::now() < deadline,
                "B's candidate key never appeared"
            );
            thread::sleep(Duration::from_millis(10));
        }
        handle.shutdown();
        let r = within(Duration::from_secs(1), move || outcome.join().unwrap());
        assert!(matches!(r, Err(EtcdError::Cancelled)), "{r:?}");
        // etcd withdraws the candidate: only A's key is left.
        while c.range_prefix(b"/np/e/").unwrap().count > 1 {
            assert!(
                Instant::now() < deadline,
                "B's candidate key was not deleted"
            );
            thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(c.leader(b"/np/e").unwrap().unwrap().key, leader.key);
        // A campaign on a lease that does not exist fails.
        assert!(matches!(
            c.campaign(b"/np/e", 12345, b"x"),
            Err(EtcdError::Http { status: 500, .. })
        ));
    }

    #[test]
    fn a_watch_delivers_later_changes_in_order() {
        let etcd = TestEtcd::start();
        let c = etcd.client();
        c.put(b"/np/log/before", b"not delivered", None).unwrap();
        let options = WatchOptions {
            range_end: Some(prefix_end(b"/np/log/")),
            prev_kv: true,
            idle_timeout: Some(Duration::from_secs(5)),
            ..WatchOptions::default()
        };
        let mut watch = c.watch_with(b"/np/log/", &options).unwrap();
        let created = watch.created_revision();

        let mut expected = Vec::new();
        for i in 0..5u64 {
            let value = vec![i as u8, 0, 0xff, b'\n', b'"'];
            let rev = c.put(&log_key(i), &value, None).unwrap();
            expected.push((EventKind::Put, log_key(i), value, rev));
        }
        c.put(b"/np/other", b"outside the prefix", None).unwrap();
        let r = c
            .txn(
                &[],
                &[Op::put(log_key(5), b"5"), Op::put(log_key(6), b"6")],
                &[],
            )
            .unwrap();
        expected.push((EventKind::Put, log_key(5), b"5".to_vec(), r.header_revision));
        expected.push((EventKind::Put, log_key(6), b"6".to_vec(), r.header_revision));
        let d = c.delete_range(&log_key(0), None).unwrap();
        expected.push((EventKind::Delete, log_key(0), Vec::new(), d.header_revision));

        let mut seen = Vec::new();
        let mut batches = Vec::new();
        while seen.len() < expected.len() {
            let batch = watch.next().expect("the watch ended").unwrap();
            assert!(!batch.canceled);
            batches.push(batch.events.len());
            for e in batch.events {
                assert!(e.kv.mod_revision <= batch.header_revision);
                seen.push((e.kind, e.kv.key, e.kv.value, e.kv.mod_revision, e.prev_kv));
            }
        }
        assert!(expected[0].3 > created);
        let got: Vec<_> = seen
            .iter()
            .map(|(k, key, v, rev, _)| (*k, key.clone(), v.clone(), *rev))
            .collect();
        assert_eq!(got, expected);
        assert_eq!(batches, [1, 1, 1, 1, 1, 2, 1], "one message per revision");
        // The delete's previous value came along (prev_kv).
        assert_eq!(seen[7].4.as_ref().unwrap().value, expected[0].2);
    }

    #[test]
    fn a_watch_below_the_compaction_is_canceled_with_the_compact_revision() {
        let etcd = TestEtcd::start();
        let c = etcd.client();
        let first = c.put(b"/np/w", b"0", None).unwrap();
        for i in 1..5 {
            c.put(b"/np/w", format!("{i}").as_bytes(), None).unwrap();
        }
        c.compact(first + 2).unwrap();
        assert!(matches!(
            c.compact(first + 1),
            Err(EtcdError::Http { code: Some(11), .. })
        ));

        let mut watch = c.watch(b"/np/w", None, Some(first)).unwrap();
        let canceled = within(Duration::from_secs(5), move || {
            let first = watch.next();
            (first, watch.next().is_none())
        });
        let (event, ended) = canceled;
        let event = event.expect("a cancellation").unwrap();
        assert!(event.canceled);
        assert_eq!(event.compact_revision, first + 2);
        assert!(event.events.is_empty());
        assert!(ended, "the stream ends after the cancellation");

        // From the compact revision itself, the history is there.
        let options = WatchOptions {
            start_revision: Some(first + 2),
            idle_timeout: Some(Duration::from_secs(5)),
            ..WatchOptions::default()
        };
        let mut watch = c.watch_with(b"/np/w", &options).unwrap();
        let mut values = Vec::new();
        while values.len() < 3 {
            let batch = watch.next().unwrap().unwrap();
            values.extend(batch.events.into_iter().map(|e| e.kv.value));
        }
        assert_eq!(values, [b"2", b"3", b"4"]);
    }

    #[test]
    fn a_watch_stops_promptly_when_shut_down_from_another_thread() {
        let etcd = TestEtcd::start();
        let c = etcd.client();
        let mut watch = c.watch(b"/np/quiet", None, None).unwrap();
        let handle = watch.shutdown_handle();
        let (tx, rx) = mpsc::channel();
        let reader = thread::spawn(move || {
            let mut n = 0;
            for item in watch.by_ref() {
                item.unwrap();
                n += 1;
            }
            let _ = tx.send((n, Instant::now()));
        });
        c.put(b"/np/quiet", b"one", None).unwrap();
        thread::sleep(Duration::from_millis(200));
        let stopped = Instant::now();
        handle.shutdown();
        let (n, at) = rx
            .recv_timeout(Duration::from_secs(2))
            .expect("the watch did not stop");
        assert_eq!(n, 1);
        assert!(
            at - stopped < Duration::from_millis(500),
            "{:?}",
            at - stopped
        );
        reader.join().unwrap();
        assert!(handle.is_shutdown());
    }
}
