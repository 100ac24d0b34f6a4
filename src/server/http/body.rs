//! Reading requests strictly: bodies with a size limit, JSON fields with
//! their types checked (wrong type: 400; bad value: 422; missing: 422),
//! phone numbers in paths, and paging.

use actix_web::web::{Bytes, BytesMut, Payload};
use futures::StreamExt;
use serde_json::{Map, Value};

use super::error::ApiError;
use crate::PhoneNumber;

/// Reads the whole body, refusing more than `limit` bytes.
pub async fn read(mut payload: Payload, limit: usize) -> Result<Bytes, ApiError> {
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request("/", format!("unreadable body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::bad_request(
                "/",
                format!("body larger than {limit} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Parses a body that must be a JSON object.
pub fn object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| ApiError::bad_request("/", "body is not UTF-8"))?;
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request("/", "body must be a JSON object")),
        Err(e) => Err(ApiError::bad_request("/", format!("malformed JSON: {e}"))),
    }
}

/// Typed access to the fields of one JSON object at `prefix` (a JSON pointer).
pub struct Fields<'a> {
    map: &'a Map<String, Value>,
    prefix: String,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl<'a> Fields<'a> {
    pub fn new(map: &'a Map<String, Value>, prefix: &str) -> Self {
        Fields {
            map,
            prefix: prefix.to_string(),
        }
    }

    /// The JSON pointer of `key`.
    pub fn pointer(&self, key: &str) -> String {
        format!("{}/{}", self.prefix, key)
    }

    fn wrong(&self, key: &str, want: &str, got: &Value) -> ApiError {
        ApiError::bad_request(
            &self.pointer(key),
            format!("{key} must be {want}, not {}", type_name(got)),
        )
    }

    /// The raw value of `key`, if present (null included).
    pub fn raw(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key)
    }

    /// An optional string; `null` counts as absent.
    pub fn str(&self, key: &str) -> Result<Option<&'a str>, ApiError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong(key, "a string", other)),
        }
    }

    /// A required string.
    pub fn required_str(&self, key: &str) -> Result<&'a str, ApiError> {
        self.str(key)?
            .ok_or_else(|| ApiError::missing(&self.pointer(key)))
    }

    /// A string that may be set to `null` explicitly: `None` absent,
    /// `Some(None)` null, `Some(Some(s))` a value.
    pub fn nullable_str(&self, key: &str) -> Result<Option<Option<String>>, ApiError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
            Some(other) => Err(self.wrong(key, "a string or null", other)),
        }
    }

    /// An optional boolean; `null` counts as absent unless `strict`.
    pub fn bool(&self, key: &str, strict: bool) -> Result<Option<bool>, ApiError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::Null) if !strict => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.wrong(key, "a boolean", other)),
        }
    }

    /// An optional array of strings; `null` counts as absent.
    pub fn strings(&self, key: &str) -> Result<Option<Vec<String>>, ApiError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(ApiError::bad_request(
                        &format!("{}/{i}", self.pointer(key)),
                        format!("{key} must hold strings, not {}", type_name(other)),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(self.wrong(key, "an array of strings", other)),
        }
    }

    /// A number that may be set to `null` explicitly: `None` absent,
    /// `Some(None)` null.
    pub fn nullable_number(&self, key: &str) -> Result<Option<Option<f64>>, ApiError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::Number(n)) => Ok(Some(n.as_f64())),
            Some(other) => Err(self.wrong(key, "a number or null", other)),
        }
    }

    /// A whole count that may be `null`: a number that is not a whole
    /// number from 0 to 2^32 - 1 is an invalid value (422).
    pub fn nullable_count(&self, key: &str) -> Result<Option<Option<u32>>, ApiError> {
        let Some(value) = self.nullable_number(key)? else {
            return Ok(None);
        };
        let raw = self.map.get(key).and_then(Value::as_u64);
        match (value, raw) {
            (None, _) => Ok(Some(None)),
            (Some(_), Some(n)) if n <= u64::from(u32::MAX) => Ok(Some(Some(n as u32))),
            (Some(v), _) => Err(ApiError::invalid(
                &self.pointer(key),
                format!(
                    "{key} must be a whole number from 1 to {}, or null, not {v}",
                    u32::MAX
                ),
            )),
        }
    }

    /// An optional nested object: `None` absent, `Some(None)` null.
    pub fn object(&self, key: &str) -> Result<Option<Option<&'a Map<String, Value>>>, ApiError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::Object(m)) => Ok(Some(Some(m))),
            Some(other) => Err(self.wrong(key, "an object or null", other)),
        }
    }
}

/// A path segment with a leading `%2B` read as the `+` it encodes.
pub fn decode_plus(raw: &str) -> String {
    raw.strip_prefix("%2B")
        .or_else(|| raw.strip_prefix("%2b"))
        .map(|rest| format!("+{rest}"))
        .unwrap_or_else(|| raw.trim_start_matches(' ').to_string())
}

/// A phone number given in a query string, where an unescaped `+` arrives
/// as a space: `+1312...`, ` 1312...` or `1312...` (E.164 digits) or a
/// short code.
pub fn query_number(raw: &str) -> Option<PhoneNumber> {
    let digits = raw.trim().trim_start_matches('+');
    PhoneNumber::parse_e164(&format!("+{digits}"))
        .ok()
        .filter(|_| digits.len() > 6)
        .or_else(|| PhoneNumber::parse_sender(digits).ok())
}

/// A phone number in a path: `+1312...`, `%2B1312...`, or (if `by_id` finds
/// it) the numeric id the server gave it (written without leading zeros:
/// `00001` is not id 1).
pub fn path_number(
    raw: &str,
    by_id: impl Fn(u64) -> Option<PhoneNumber>,
) -> Result<PhoneNumber, ApiError> {
    let decoded = decode_plus(raw);
    if !decoded.starts_with('+') && !decoded.starts_with('0') {
        if let Ok(id) = decoded.parse::<u64>() {
            if let Some(n) = by_id(id) {
                return Ok(n);
            }
        }
    }
    PhoneNumber::parse_sender(&decoded)
        .map_err(|_| ApiError::NotFound(format!("phone number {raw} not found")))
}

/// `page[number]` and `page[size]` from a query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub number: usize,
    pub size: usize,
}

impl Page {
    pub fn from_query(query: &Query) -> Result<Page, ApiError> {
        let number = query.usize("page[number]")?.unwrap_or(1);
        let size = query.usize("page[size]")?.unwrap_or(20);
        if number < 1 {
            return Err(ApiError::invalid(
                "/page[number]",
                "page[number] must be at least 1",
            ));
        }
        if !(1..=250).contains(&size) {
            return Err(ApiError::invalid(
                "/page[size]",
                "page[size] must be between 1 and 250",
            ));
        }
        Ok(Page { number, size })
    }

    /// Items before this page.
    pub fn offset(&self) -> usize {
        (self.number - 1).saturating_mul(self.size)
    }

    /// The `meta` object of this page of `total` items.
    pub fn meta(&self, total: usize) -> Value {
        serde_json::json!({
            "page_number": self.number,
            "page_size": self.size,
            "total_pages": total.div_ceil(self.size).max(1),
            "total_results": total,
        })
    }
}

/// A decoded query string (`a=b&c=d`, percent-decoding and `+` as space).
pub struct Query(Vec<(String, String)>);

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi * 16 + lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Query {
    pub fn parse(query: &str) -> Query {
        Query(
            query
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn usize(&self, key: &str) -> Result<Option<usize>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            // A whole number too large to be one is out of range (422), as
            // any other out-of-range value; anything else is malformed (400).
            Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                v.parse::<usize>().map(Some).map_err(|_| {
                    ApiError::invalid(&format!("/{key}"), format!("{key} is out of range"))
                })
            }
            Some(_) => Err(ApiError::bad_request(
                &format!("/{key}"),
                format!("{key} must be a whole number"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_brackets_and_plus() {
        let q = Query::parse("page%5Bnumber%5D=2&filter[phone_number]=%2B1312&x=a+b&bad=%zz");
        assert_eq!(q.get("page[number]"), Some("2"));
        assert_eq!(q.get("filter[phone_number]"), Some("+1312"));
        assert_eq!(q.get("x"), Some("a b"));
        assert_eq!(q.get("bad"), Some("%zz"));
    }

    #[test]
    fn pages_describe_themselves() {
        let page = Page { number: 2, size: 2 };
        assert_eq!(page.offset(), 2);
        let meta = page.meta(5);
        assert_eq!(meta["total_pages"], 3);
        assert_eq!(meta["total_results"], 5);
        assert_eq!(
            Page {
                number: 1,
                size: 20
            }
            .meta(0)["total_pages"],
            1
        );
    }

    #[test]
    fn path_numbers_accept_plus_and_encoded_plus() {
        let none = |_| None;
        let n = PhoneNumber::parse_e164("+13125550001").unwrap();
        assert_eq!(path_number("+13125550001", none).unwrap(), n);
        assert_eq!(path_number("%2B13125550001", none).unwrap(), n);
        assert!(path_number(" 13125550001", none).is_err());
        assert_eq!(path_number("7", |id| (id == 7).then_some(n)).unwrap(), n);
        // A leading zero is never an id: 00007 is the short code 00007.
        let by_seven = |id| (id == 7).then_some(n);
        assert_eq!(path_number("00007", by_seven).unwrap().to_string(), "00007");
        assert!(path_number("007", by_seven).is_err());
    }

    #[test]
    fn query_numbers_survive_a_plus_decoded_as_a_space() {
        let n = PhoneNumber::parse_e164("+13125550001").unwrap();
        for raw in ["+13125550001", " 13125550001", "13125550001"] {
            assert_eq!(query_number(raw), Some(n), "{raw:?}");
        }
        assert_eq!(
            query_number("12345").map(|n| n.to_string()),
            Some("12345".into())
        );
        assert_eq!(query_number("not a number"), None);
    }
}
