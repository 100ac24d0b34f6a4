//! The protobuf messages of etcd's gRPC API that a leader's appends use,
//! encoded and decoded by hand: `TxnRequest` with compares and one put,
//! and the `TxnResponse` it gets back. Field numbers are those of etcd's
//! `rpc.proto` (`etcdserverpb`), the same from 3.4 to 3.6.
//!
//! By hand because it is four messages: generated code would need `protoc`
//! at build time, for a few dozen lines of varints.

use super::types::{
    Compare, CompareResult, CompareTarget, Event, EventKind, KeyValue, OpResponse, TxnResult,
    WatchEvent,
};
use super::EtcdError;

/// Wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// Appends `value` as a base-128 varint.
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_key(out: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire));
}

/// An integer field; proto3 sends negative `int64`s as ten-byte varints.
fn put_int(out: &mut Vec<u8>, field: u32, value: i64) {
    put_key(out, field, VARINT);
    put_varint(out, value as u64);
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(out, field, LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A nested message field: `write` encodes its body.
fn put_message(out: &mut Vec<u8>, field: u32, write: impl FnOnce(&mut Vec<u8>)) {
    let mut body = Vec::new();
    write(&mut body);
    put_bytes(out, field, &body);
}

/// `Compare`: result 1, target 2, key 3, the value compared to in the
/// `target_union` oneof (4 to 8), range_end 64.
fn put_compare(out: &mut Vec<u8>, compare: &Compare) {
    let result = match compare.result {
        CompareResult::Equal => 0,
        CompareResult::Greater => 1,
        CompareResult::Less => 2,
        CompareResult::NotEqual => 3,
    };
    put_int(out, 1, result);
    // CompareTarget's number, and the field of the value in `target_union`.
    let (target, field) = match &compare.target {
        CompareTarget::Version(_) => (0, 4),
        CompareTarget::Create(_) => (1, 5),
        CompareTarget::Mod(_) => (2, 6),
        CompareTarget::Value(_) => (3, 7),
        CompareTarget::Lease(_) => (4, 8),
    };
    put_int(out, 2, target);
    put_bytes(out, 3, &compare.key);
    // A oneof member is sent even when zero: that is what says which one.
    match &compare.target {
        CompareTarget::Value(v) => put_bytes(out, field, v),
        CompareTarget::Version(v)
        | CompareTarget::Create(v)
        | CompareTarget::Mod(v)
        | CompareTarget::Lease(v) => put_int(out, field, *v),
    }
    if let Some(end) = &compare.range_end {
        put_bytes(out, 64, end);
    }
}

/// A `TxnRequest` (compare 1, success 2) whose success branch puts
/// `value` at `key` (`RequestOp.request_put` 2: `PutRequest` key 1,
/// value 2), and whose failure branch is empty.
pub(super) fn encode_txn_put(compare: &[Compare], key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + key.len() * 3 + 64);
    for c in compare {
        put_message(&mut out, 1, |m| put_compare(m, c));
    }
    put_key(&mut out, 2, LEN);
    // RequestOp { request_put: PutRequest { key, value } }, lengths first.
    let put_len = field_len(key.len()) + field_len(value.len());
    put_varint(&mut out, (field_len(put_len)) as u64);
    put_key(&mut out, 2, LEN);
    put_varint(&mut out, put_len as u64);
    put_bytes(&mut out, 1, key);
    put_bytes(&mut out, 2, value);
    out
}

/// The encoded length of a length-delimited field (of a field number
/// below 16) whose body is `len` bytes.
fn field_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

fn varint_len(value: u64) -> usize {
    (64 - value.max(1).leading_zeros() as usize).div_ceil(7)
}

/// One field read off the wire.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    /// A fixed-width field, skipped.
    Fixed,
}

/// The fields of one message, in order.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8]) -> Fields<'a> {
        Fields { rest: bytes }
    }

    fn varint(&mut self) -> Result<u64, EtcdError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.rest.split_first().ok_or_else(truncated)?;
            self.rest = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(EtcdError::Malformed(
            "a varint longer than ten bytes".into(),
        ))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], EtcdError> {
        if self.rest.len() < n {
            return Err(truncated());
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    /// The next field and its number, `None` at the end.
    fn next_field(&mut self) -> Result<Option<(u64, Field<'a>)>, EtcdError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = match (key & 7) as u8 {
            VARINT => Field::Varint(self.varint()?),
            LEN => {
                let len = usize::try_from(self.varint()?).map_err(|_| truncated())?;
                Field::Bytes(self.take(len)?)
            }
            FIXED64 => {
                self.take(8)?;
                Field::Fixed
            }
            FIXED32 => {
                self.take(4)?;
                Field::Fixed
            }
            wire => {
                return Err(EtcdError::Malformed(format!(
                    "protobuf wire type {wire} in an answer"
                )))
            }
        };
        Ok(Some((key >> 3, field)))
    }
}

fn truncated() -> EtcdError {
    EtcdError::Malformed("a protobuf message that ends early".into())
}

/// The revision in a `ResponseHeader` (field 3).
fn header_revision(bytes: &[u8]) -> Result<i64, EtcdError> {
    let mut fields = Fields::new(bytes);
    let mut revision = 0;
    while let Some((number, field)) = fields.next_field()? {
        if let (3, Field::Varint(v)) = (number, field) {
            revision = v as i64;
        }
    }
    Ok(revision)
}

/// A `TxnResponse`: header 1, succeeded 2, responses 3, each a
/// `ResponseOp`; only put answers (`response_put`, 2) are expected, as
/// only puts are sent.
pub(super) fn decode_txn(bytes: &[u8]) -> Result<TxnResult, EtcdError> {
    let mut result = TxnResult {
        succeeded: false,
        header_revision: 0,
        responses: Vec::new(),
    };
    let mut fields = Fields::new(bytes);
    while let Some((number, field)) = fields.next_field()? {
        match (number, field) {
            (1, Field::Bytes(header)) => result.header_revision = header_revision(header)?,
            (2, Field::Varint(v)) => result.succeeded = v != 0,
            (3, Field::Bytes(op)) => {
                let mut op = Fields::new(op);
                let mut put = None;
                while let Some((number, field)) = op.next_field()? {
                    if let (2, Field::Bytes(answer)) = (number, field) {
                        let mut answer = Fields::new(answer);
                        let mut revision = 0;
                        while let Some((number, field)) = answer.next_field()? {
                            if let (1, Field::Bytes(header)) = (number, field) {
                                revision = header_revision(header)?;
                            }
                        }
                        put = Some(OpResponse::Put {
                            header_revision: revision,
                        });
                    }
                }
                result.responses.push(put.ok_or_else(|| {
                    EtcdError::Malformed("transaction answer of an unknown kind".into())
                })?);
            }
            _ => {}
        }
    }
    Ok(result)
}

/// A `WatchRequest` whose `create_request` (1) watches `key` (1), or
/// `[key, range_end)` (2), from `start_revision` (3; 0: from now on),
/// with the previous value of each key if `prev_kv` (6).
pub(super) fn encode_watch_create(
    key: &[u8],
    range_end: Option<&[u8]>,
    start_revision: Option<i64>,
    prev_kv: bool,
) -> Vec<u8> {
    let mut out = Vec::new();
    put_message(&mut out, 1, |m| {
        put_bytes(m, 1, key);
        if let Some(end) = range_end {
            put_bytes(m, 2, end);
        }
        if let Some(rev) = start_revision {
            put_int(m, 3, rev);
        }
        if prev_kv {
            put_int(m, 6, 1);
        }
    });
    out
}

/// A `KeyValue`: key 1, create_revision 2, mod_revision 3, version 4,
/// value 5, lease 6.
fn decode_kv(bytes: &[u8]) -> Result<KeyValue, EtcdError> {
    let mut kv = KeyValue::default();
    let mut fields = Fields::new(bytes);
    while let Some((number, field)) = fields.next_field()? {
        match (number, field) {
            (1, Field::Bytes(b)) => kv.key = b.to_vec(),
            (2, Field::Varint(v)) => kv.create_revision = v as i64,
            (3, Field::Varint(v)) => kv.mod_revision = v as i64,
            (4, Field::Varint(v)) => kv.version = v as i64,
            (5, Field::Bytes(b)) => kv.value = b.to_vec(),
            (6, Field::Varint(v)) => kv.lease = v as i64,
            _ => {}
        }
    }
    Ok(kv)
}

/// An `Event` (mvccpb): type 1 (PUT 0, DELETE 1), kv 2, prev_kv 3.
fn decode_event(bytes: &[u8]) -> Result<Event, EtcdError> {
    let mut event = Event {
        kind: EventKind::Put,
        kv: KeyValue::default(),
        prev_kv: None,
    };
    let mut fields = Fields::new(bytes);
    while let Some((number, field)) = fields.next_field()? {
        match (number, field) {
            (1, Field::Varint(0)) => event.kind = EventKind::Put,
            (1, Field::Varint(1)) => event.kind = EventKind::Delete,
            (1, Field::Varint(other)) => {
                return Err(EtcdError::Malformed(format!("watch event of type {other}")))
            }
            (2, Field::Bytes(kv)) => event.kv = decode_kv(kv)?,
            (3, Field::Bytes(kv)) => event.prev_kv = Some(decode_kv(kv)?),
            _ => {}
        }
    }
    Ok(event)
}

/// A `WatchResponse`: header 1, created 3, canceled 4, compact_revision
/// 5, cancel_reason 6, events 11; and whether it is the answer saying the
/// watch was created.
pub(super) fn decode_watch_response(bytes: &[u8]) -> Result<(bool, WatchEvent), EtcdError> {
    let mut created = false;
    let mut event = WatchEvent::default();
    let mut fields = Fields::new(bytes);
    while let Some((number, field)) = fields.next_field()? {
        match (number, field) {
            (1, Field::Bytes(header)) => event.header_revision = header_revision(header)?,
            (3, Field::Varint(v)) => created = v != 0,
            (4, Field::Varint(v)) => event.canceled = v != 0,
            (5, Field::Varint(v)) => event.compact_revision = v as i64,
            (6, Field::Bytes(reason)) => {
                event.cancel_reason = String::from_utf8_lossy(reason).into_owned()
            }
            (11, Field::Bytes(e)) => event.events.push(decode_event(e)?),
            _ => {}
        }
    }
    Ok((created, event))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_match_the_protobuf_encoding() {
        let cases: [(u64, &[u8]); 5] = [
            (0, &[0]),
            (1, &[1]),
            (150, &[0x96, 0x01]),
            (300, &[0xac, 0x02]),
            (
                u64::MAX,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ];
        for (value, bytes) in cases {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(out, bytes, "{value}");
            assert_eq!(varint_len(value), bytes.len(), "{value}");
            assert_eq!(Fields::new(bytes).varint().unwrap(), value);
        }
    }

    #[test]
    fn a_fenced_put_encodes_as_etcd_reads_it() {
        // Bytes worked out by hand from rpc.proto: a compare of the create
        // revision of "k" being 0, and a put of "v" at "p".
        let compare = [Compare::create_revision(
            b"k".to_vec(),
            CompareResult::Equal,
            0,
        )];
        let bytes = encode_txn_put(&compare, b"p", b"v");
        let expected: &[u8] = &[
            0x0a, 0x09, // compare (1), 9 bytes
            0x08, 0x00, // result EQUAL
            0x10, 0x01, // target CREATE
            0x1a, 0x01, b'k', // key
            0x28, 0x00, // create_revision 0, sent: it names the oneof member
            0x12, 0x08, // success (2), 8 bytes: a RequestOp
            0x12, 0x06, // request_put (2), 6 bytes
            0x0a, 0x01, b'p', // key
            0x12, 0x01, b'v', // value
        ];
        assert_eq!(bytes, expected);
    }

    #[test]
    fn long_values_and_negative_revisions_keep_their_lengths() {
        let value = vec![7u8; 200];
        let compare = [Compare::create_revision(
            b"lead".to_vec(),
            CompareResult::Equal,
            -1,
        )];
        let bytes = encode_txn_put(&compare, b"key", &value);
        let mut fields = Fields::new(&bytes);
        let Some((1, Field::Bytes(c))) = fields.next_field().unwrap() else {
            panic!("compare first");
        };
        let mut c = Fields::new(c);
        let mut seen = Vec::new();
        while let Some((n, f)) = c.next_field().unwrap() {
            if let Field::Varint(v) = f {
                seen.push((n, v as i64));
            }
        }
        assert_eq!(seen, [(1, 0), (2, 1), (5, -1)]);
        let Some((2, Field::Bytes(op))) = fields.next_field().unwrap() else {
            panic!("then the success branch");
        };
        let Some((2, Field::Bytes(put))) = Fields::new(op).next_field().unwrap() else {
            panic!("a put");
        };
        let mut put = Fields::new(put);
        let Some((1, Field::Bytes(b"key"))) = put.next_field().unwrap() else {
            panic!("its key");
        };
        let Some((2, Field::Bytes(v))) = put.next_field().unwrap() else {
            panic!("its value");
        };
        assert_eq!(v, &value[..]);
        assert!(fields.next_field().unwrap().is_none());
    }

    #[test]
    fn watch_requests_and_answers_follow_rpc_proto() {
        let create = encode_watch_create(b"/a/", Some(b"/a0"), Some(300), true);
        let expected: &[u8] = &[
            0x0a, 0x0f, // create_request (1), 15 bytes
            0x0a, 0x03, b'/', b'a', b'/', // key
            0x12, 0x03, b'/', b'a', b'0', // range_end
            0x18, 0xac, 0x02, // start_revision 300
            0x30, 0x01, // prev_kv
        ];
        assert_eq!(create, expected);
        assert_eq!(
            encode_watch_create(b"k", None, None, false),
            [0x0a, 0x03, 0x0a, 0x01, b'k']
        );

        // header { revision: 31 }, events: a DELETE of "a" at 31, and a PUT
        // of "b" (value 00 ff, create 7, mod 31, version 2, lease 12) with
        // its previous value "x".
        let mut answer = vec![0x0a, 0x02, 0x18, 31];
        let delete: &[u8] = &[0x08, 0x01, 0x12, 0x05, 0x0a, 0x01, b'a', 0x18, 31];
        answer.extend_from_slice(&[0x5a, delete.len() as u8]);
        answer.extend_from_slice(delete);
        let put: &[u8] = &[
            0x12, 0x0f, 0x0a, 0x01, b'b', 0x10, 7, 0x18, 31, 0x20, 2, 0x2a, 0x02, 0x00, 0xff, 0x30,
            12, // kv
            0x1a, 0x05, 0x0a, 0x01, b'b', 0x2a, 0x00, // prev_kv
        ];
        answer.extend_from_slice(&[0x5a, put.len() as u8]);
        answer.extend_from_slice(put);
        let (created, r) = decode_watch_response(&answer).unwrap();
        assert!(!created && !r.canceled);
        assert_eq!(r.header_revision, 31);
        assert_eq!(r.events.len(), 2);
        assert_eq!(r.events[0].kind, EventKind::Delete);
        assert_eq!(
            (r.events[0].kv.key.as_slice(), r.events[0].kv.mod_revision),
            (&b"a"[..], 31)
        );
        let b = &r.events[1];
        assert_eq!(b.kind, EventKind::Put);
        assert_eq!(
            b.kv,
            KeyValue {
                key: b"b".to_vec(),
                value: vec![0, 0xff],
                create_revision: 7,
                mod_revision: 31,
                version: 2,
                lease: 12,
            }
        );
        assert_eq!(b.prev_kv.as_ref().unwrap().key, b"b");

        // created; then canceled for a compaction, with a reason.
        let (created, r) = decode_watch_response(&[0x0a, 0x02, 0x18, 5, 0x18, 0x01]).unwrap();
        assert!(created && r.events.is_empty() && r.header_revision == 5);
        let (_, r) = decode_watch_response(&[0x20, 0x01, 0x28, 9, 0x32, 0x02, b'g', b'c']).unwrap();
        assert!(r.canceled);
        assert_eq!((r.compact_revision, r.cancel_reason.as_str()), (9, "gc"));
        assert!(
            decode_watch_response(&[0x5a, 0x02, 0x08, 0x07]).is_err(),
            "an unknown type"
        );
    }

    #[test]
    fn answers_decode_and_truncated_ones_are_errors() {
        // header { revision: 42 }, succeeded, responses [ response_put {
        // header { revision: 42 } } ], with a field to skip.
        let answer: &[u8] = &[
            0x0a, 0x04, 0x08, 0x01, 0x18, 0x2a, // header: cluster_id 1, revision 42
            0x10, 0x01, // succeeded
            0x1a, 0x06, 0x12, 0x04, 0x0a, 0x02, 0x18, 0x2a, // a put's answer
            0x21, 1, 2, 3, 4, 5, 6, 7, 8, // an unknown fixed64 field
        ];
        let txn = decode_txn(answer).unwrap();
        assert!(txn.succeeded);
        assert_eq!(txn.header_revision, 42);
        assert_eq!(
            txn.responses,
            [OpResponse::Put {
                header_revision: 42
            }]
        );
        let failed = decode_txn(&[0x0a, 0x02, 0x18, 0x07]).unwrap();
        assert!(!failed.succeeded && failed.responses.is_empty());
        assert_eq!(failed.header_revision, 7);
        for cut in 1..answer.len() - 9 {
            if decode_txn(&answer[..cut]).is_ok() {
                // A cut at a field boundary is a shorter valid message.
                assert!([6, 8, 16].contains(&cut), "cut at {cut} decoded");
            }
        }
    }
}
