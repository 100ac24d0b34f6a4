//! What the client's calls take and give: keys and values, compares and
//! operations of transactions, watch events. The JSON shapes of the
//! gateway behind them, and its conventions, are in `json`.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::json::{b64, de_bytes, de_i64, range_json};
use super::EtcdError;

/// A key and its value as stored in etcd.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub(crate) struct KeyValue {
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
pub(crate) struct RangeResult {
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
pub(crate) struct DeleteResult {
    /// How many keys were deleted.
    pub deleted: i64,
    /// The store's revision after the delete (that of the deletion if any).
    pub header_revision: i64,
}

/// A granted lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LeaseGrant {
    /// The lease's id.
    pub id: i64,
    /// Its time to live in seconds, as granted (etcd may raise a small TTL
    /// to its minimum, 1.5 × the election timeout).
    pub ttl: i64,
}

/// This node's key in an election, as returned by a won campaign.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub(crate) struct LeaderKey {
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
    pub(crate) fn fence(&self) -> Compare {
        Compare::create_revision(self.key.clone(), CompareResult::Equal, self.rev)
    }
}

/// How a [`Compare`] compares the key's field with the given value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CompareResult {
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
pub(crate) enum CompareTarget {
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
pub(crate) struct Compare {
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
    pub(crate) fn create_revision(
        key: impl Into<Vec<u8>>,
        result: CompareResult,
        rev: i64,
    ) -> Self {
        Compare::new(key, result, CompareTarget::Create(rev))
    }

    /// Compares the key's mod revision.
    pub(crate) fn mod_revision(key: impl Into<Vec<u8>>, result: CompareResult, rev: i64) -> Self {
        Compare::new(key, result, CompareTarget::Mod(rev))
    }

    /// Compares the key's version.
    pub(crate) fn version(key: impl Into<Vec<u8>>, result: CompareResult, version: i64) -> Self {
        Compare::new(key, result, CompareTarget::Version(version))
    }

    /// Compares the key's value.
    pub(crate) fn value(
        key: impl Into<Vec<u8>>,
        result: CompareResult,
        value: impl Into<Vec<u8>>,
    ) -> Self {
        Compare::new(key, result, CompareTarget::Value(value.into()))
    }

    /// Compares the key's lease id.
    pub(crate) fn lease(key: impl Into<Vec<u8>>, result: CompareResult, lease: i64) -> Self {
        Compare::new(key, result, CompareTarget::Lease(lease))
    }

    /// The same condition over every key in `[key, range_end)`.
    pub(crate) fn with_range_end(mut self, range_end: impl Into<Vec<u8>>) -> Self {
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
    pub(super) fn to_json(&self) -> Value {
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
pub(crate) enum Op {
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
    pub(crate) fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Op {
        Op::Put {
            key: key.into(),
            value: value.into(),
            lease: None,
        }
    }

    /// Reads `key`.
    pub(crate) fn get(key: impl Into<Vec<u8>>) -> Op {
        Op::Range {
            key: key.into(),
            range_end: None,
            limit: 0,
        }
    }

    /// Deletes `key`.
    pub(crate) fn delete(key: impl Into<Vec<u8>>) -> Op {
        Op::DeleteRange {
            key: key.into(),
            range_end: None,
        }
    }

    /// The gateway's JSON for it (a `RequestOp`).
    pub(super) fn to_json(&self) -> Value {
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
pub(crate) enum OpResponse {
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
pub(crate) struct TxnResult {
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
    pub(crate) fn require_success(self) -> Result<TxnResult, EtcdError> {
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
pub(crate) enum EventKind {
    /// The key was written.
    #[default]
    Put,
    /// The key was deleted (its [`KeyValue`] then holds only the key and
    /// the deletion's mod revision).
    Delete,
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Event {
    /// A write or a deletion.
    pub kind: EventKind,
    /// The key after the change.
    pub kv: KeyValue,
    /// The key before the change, when the watch asked for it
    /// ([`WatchOptions::prev_kv`]).
    pub prev_kv: Option<KeyValue>,
}

/// One message of a watch: the events of one revision or more, a progress
/// notification (no events), or the watch's cancellation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct WatchEvent {
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
    pub(crate) fn is_progress_notify(&self) -> bool {
        self.events.is_empty() && !self.canceled
    }
}

/// Options of a watch beyond its key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct WatchOptions {
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
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}
