//! The JSON shapes of etcd's gateway, and reading them.
//!
//! The gateway's conventions, which every shape here copes with: keys and
//! values are `bytes` (standard base64 with padding); 64-bit integers come
//! as JSON strings (`"revision":"13"`) and are sent as strings; fields at
//! their default are left out (`succeeded: false`, `type: "PUT"`, an empty
//! `kvs`), so every field defaults; an error is `{"error","message","code"}`
//! (`code` the gRPC status) with a non-2xx status, or an `{"error":...}`
//! line in a stream.

use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, Unexpected, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::types::*;
use super::EtcdError;

/// Parses an answer; [`EtcdError::Malformed`] with its start if it is not `T`.
pub(super) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, EtcdError> {
    serde_json::from_slice(bytes).map_err(|e| {
        EtcdError::Malformed(format!(
            "{e} in {:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        ))
    })
}

/// An HTTP error answer: `{"error","message","code"}` when etcd sent one.
pub(super) fn http_error(status: u16, body: &[u8]) -> EtcdError {
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
pub(super) fn parse_stream_line<T: DeserializeOwned>(line: &[u8]) -> Result<T, EtcdError> {
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
pub(super) fn range_json(key: &[u8], range_end: Option<&[u8]>, limit: i64) -> Value {
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
pub(super) fn prefix_range(prefix: &[u8]) -> (Vec<u8>, Vec<u8>) {
    if prefix.is_empty() {
        (vec![0], vec![0])
    } else {
        (prefix.to_vec(), prefix_end(prefix))
    }
}

/// A `ResponseHeader`: only the revision matters here.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(super) struct HeaderJson {
    #[serde(deserialize_with = "de_i64")]
    pub(super) revision: i64,
}

/// An answer with nothing but its header (put, compaction, resign).
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(super) struct HeaderOnlyJson {
    pub(super) header: HeaderJson,
}

/// A `RangeResponse`.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(super) struct RangeJson {
    header: HeaderJson,
    kvs: Vec<KeyValue>,
    more: bool,
    #[serde(deserialize_with = "de_i64")]
    count: i64,
}

impl RangeJson {
    /// As handed to the caller.
    pub(super) fn into_result(self) -> RangeResult {
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
pub(super) struct DeleteJson {
    header: HeaderJson,
    #[serde(deserialize_with = "de_i64")]
    deleted: i64,
}

impl DeleteJson {
    /// As handed to the caller.
    pub(super) fn into_result(self) -> DeleteResult {
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
pub(super) struct TxnJson {
    header: HeaderJson,
    succeeded: bool,
    responses: Vec<ResponseOpJson>,
}

impl TxnJson {
    /// As handed to the caller.
    pub(super) fn into_result(self) -> Result<TxnResult, EtcdError> {
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
pub(super) struct LeaseGrantJson {
    #[serde(rename = "ID", deserialize_with = "de_i64")]
    pub(super) id: i64,
    #[serde(rename = "TTL", deserialize_with = "de_i64")]
    pub(super) ttl: i64,
    pub(super) error: String,
}

/// An int64: a JSON string (as the gateway sends them) or number; null is 0.
pub(super) fn de_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
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
pub(super) fn de_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
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

/// Standard base64 with padding (padding optional when reading), as the
/// gateway wants it.
pub(super) mod b64 {
    use base64::alphabet::STANDARD;
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
    use base64::engine::DecodePaddingMode;
    use base64::Engine;

    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );

    /// Encodes with padding.
    pub(crate) fn encode(bytes: &[u8]) -> String {
        ENGINE.encode(bytes)
    }

    /// Decodes, with or without padding; `None` if it is not base64.
    pub(crate) fn decode(text: &str) -> Option<Vec<u8>> {
        ENGINE.decode(text).ok()
    }
}
