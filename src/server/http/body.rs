//! Reading requests strictly: bodies with a size limit into their types
//! (wrong type: 400; bad value: 422; missing: 422, each naming the field),
//! phone numbers in paths, query strings, and paging.

use actix_web::web::{Bytes, BytesMut, Payload};
use futures::StreamExt;

use super::error::{pointer_token, ApiError};
use super::views::PageMeta;
use crate::PhoneNumber;
use serde_json::Value;

/// Reads the whole body, refusing more than `limit` bytes.
pub(super) async fn read(payload: Payload, limit: usize) -> Result<Bytes, ApiError> {
    read_or(payload, limit, || too_large(limit)).await
}

/// The error for a body of more than `limit` bytes.
pub(super) fn too_large(limit: usize) -> ApiError {
    ApiError::bad_request("/", format!("body larger than {limit} bytes"))
}

/// [`read`], with `too_large` the error for a body over `limit`.
pub(super) async fn read_or(
    mut payload: Payload,
    limit: usize,
    too_large: impl FnOnce() -> ApiError,
) -> Result<Bytes, ApiError> {
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request("/", format!("unreadable body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Reads a body into its request type `T`: an empty body is `{}`; a body
/// that is not a JSON object, or not JSON, is 400 at `/`; a field of the
/// wrong type is 400 naming it (`source.pointer`); a value outside an
/// enumeration is 422; a missing required field is 422 (10004).
pub(super) fn json<T: serde::de::DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| ApiError::bad_request("/", "body is not UTF-8"))?;
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Ok(T::default());
    }
    if !trimmed.starts_with('{') {
        // serde would read a struct from a JSON array too.
        return Err(match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => ApiError::bad_request("/", "body must be a JSON object"),
            Err(e) => ApiError::bad_request("/", format!("malformed JSON: {e}")),
        });
    }
    // A body that reads is read without keeping the path to each field
    // (that cost a third of reading a send's body); one that does not is
    // read again with it, for its error to name the field.
    if let Ok(value) = serde_json::from_str(text) {
        return Ok(value);
    }
    let mut reader = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut reader).map_err(|e| field_error(&e))?;
    reader
        .end()
        .map_err(|e| ApiError::bad_request("/", format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// `T` read only from a JSON object: serde would read a struct from an
/// array too, which a body never means.
pub(super) struct FromObject<T>(pub T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for FromObject<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Object<T>(std::marker::PhantomData<T>);
        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Object<T> {
            type Value = FromObject<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(FromObject)
            }
        }
        d.deserialize_map(Object(std::marker::PhantomData))
    }
}

/// Reads the JSON object `value`, found at `pointer` in a body, into `T`
/// (serde would also read a struct from an array): anything but an object
/// is 400 at `pointer`; errors inside name the field under `pointer`.
pub(super) fn object_at<T: serde::de::DeserializeOwned>(
    value: Value,
    pointer: &str,
) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::bad_request(
            pointer,
            format!("{} must be an object", pointer.trim_start_matches('/')),
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = field_error(&e);
        inner.under(pointer)
    })
}

/// The API error for a body serde could not read, at the field it names.
fn field_error(e: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    use serde_json::error::Category;
    let inner = e.inner();
    let mut pointer = String::new();
    for segment in e.path().iter() {
        use serde_path_to_error::Segment;
        match segment {
            Segment::Seq { index } => pointer.push_str(&format!("/{index}")),
            Segment::Map { key } => pointer.push_str(&format!("/{}", pointer_token(key))),
            Segment::Enum { variant } => pointer.push_str(&format!("/{variant}")),
            Segment::Unknown => {}
        }
    }
    if !matches!(inner.classify(), Category::Data) {
        return ApiError::bad_request("/", format!("malformed JSON: {inner}"));
    }
    // serde's own wording, without its "at line 1 column 9".
    let message = inner.to_string();
    let message = message
        .rsplit_once(" at line ")
        .map_or(message.as_str(), |(m, _)| m);
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        return ApiError::missing(&format!("{pointer}/{}", pointer_token(field)));
    }
    if let Some(field) = message
        .strip_prefix("duplicate field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        return ApiError::bad_request(
            &format!("{pointer}/{}", pointer_token(field)),
            format!("{field} is given more than once"),
        );
    }
    let at = if pointer.is_empty() { "/" } else { &pointer };
    let field = at.rsplit('/').next().unwrap_or_default();
    if message.starts_with("unknown variant") || message.starts_with("invalid value") {
        ApiError::invalid(at, format!("{field}: {message}"))
    } else {
        ApiError::bad_request(at, format!("{field}: {message}"))
    }
}

/// A path segment with a leading `%2B` read as the `+` it encodes.
pub(super) fn decode_plus(raw: &str) -> String {
    raw.strip_prefix("%2B")
        .or_else(|| raw.strip_prefix("%2b"))
        .map(|rest| format!("+{rest}"))
        .unwrap_or_else(|| raw.trim_start_matches(' ').to_string())
}

/// A phone number given in a query string, where an unescaped `+` arrives
/// as a space: `+1312...`, ` 1312...` or `1312...` (E.164 digits) or a
/// short code.
pub(super) fn query_number(raw: &str) -> Option<PhoneNumber> {
    let digits = raw.trim().trim_start_matches('+');
    PhoneNumber::parse_e164(&format!("+{digits}"))
        .ok()
        .filter(|_| digits.len() > 6)
        .or_else(|| PhoneNumber::parse_sender(digits).ok())
}

/// Part of a phone number given in a query string: a leading `+` that
/// arrived as a space (unescaped) is put back.
pub(super) fn query_digits(raw: &str) -> String {
    match raw.strip_prefix(' ') {
        Some(rest) => format!("+{}", rest.trim()),
        None => raw.trim().to_string(),
    }
}

/// A phone number in a path: `+1312...`, `%2B1312...`, or (if `by_id` finds
/// it) the numeric id the server gave it (written without leading zeros:
/// `00001` is not id 1).
pub(super) fn path_number(
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
pub(super) struct Page {
    pub number: usize,
    pub size: usize,
}

impl Page {
    pub(super) fn from_query(query: &Query) -> Result<Page, ApiError> {
        let number = query.usize("page[number]")?.unwrap_or(1);
        let size = query.usize("page[size]")?.unwrap_or(20);
        if number < 1 {
            return Err(ApiError::invalid_parameter(
                "page[number]",
                "page[number] must be at least 1",
            ));
        }
        if !(1..=250).contains(&size) {
            return Err(ApiError::invalid_parameter(
                "page[size]",
                "page[size] must be between 1 and 250",
            ));
        }
        Ok(Page { number, size })
    }

    /// Items before this page.
    pub(super) fn offset(&self) -> usize {
        (self.number - 1).saturating_mul(self.size)
    }

    /// The `meta` object of this page of `total` items.
    pub(super) fn meta(&self, total: usize) -> PageMeta {
        PageMeta {
            page_number: self.number,
            page_size: self.size,
            total_pages: total.div_ceil(self.size).max(1),
            total_results: total,
            next_page_after: None,
        }
    }
}

/// A decoded query string (`a=b&c=d`, percent-decoding and `+` as space).
pub(super) struct Query(Vec<(String, String)>);

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
    pub(super) fn parse(query: &str) -> Query {
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

    /// Every `(name, value)`, in order.
    pub(super) fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub(super) fn get(&self, key: &str) -> Option<&str> {
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
            Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => v
                .parse::<usize>()
                .map(Some)
                .map_err(|_| ApiError::invalid_parameter(key, format!("{key} is out of range"))),
            Some(_) => Err(ApiError::bad_parameter(
                key,
                format!("{key} must be a whole number"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::http::requests::{ProfileBody, SendBody};

    /// `(status, pointer)` of a body `T` refuses.
    fn refused<T: serde::de::DeserializeOwned + Default + std::fmt::Debug>(
        body: &str,
    ) -> (u16, String) {
        use actix_web::ResponseError;
        let e = json::<T>(body.as_bytes()).unwrap_err();
        let pointer = match &e {
            ApiError::BadRequest { at, .. }
            | ApiError::InvalidValue { at, .. }
            | ApiError::Missing { at } => at.to_string(),
            other => panic!("{other:?}"),
        };
        (e.status_code().as_u16(), pointer)
    }

    #[test]
    fn bodies_are_read_into_their_types_and_errors_name_the_field() {
        let b: SendBody = json(br#"{"to": "+13125550100", "text": null, "extra": [1]}"#).unwrap();
        assert_eq!((b.to.as_deref(), b.text), (Some("+13125550100"), None));
        let empty: SendBody = json(b"  ").unwrap();
        assert!(empty.to.is_none());
        assert_eq!(refused::<SendBody>(r#"{"to": 5}"#), (400, "/to".into()));
        assert_eq!(
            refused::<SendBody>(r#"{"media_urls": ["a", 7]}"#),
            (400, "/media_urls/1".into())
        );
        assert_eq!(
            refused::<ProfileBody>(r#"{"whitelisted_destinations": "US"}"#),
            (400, "/whitelisted_destinations".into())
        );
        for malformed in [
            "[1]",
            "\"x\"",
            "{\"to\": ",
            "{} {}",
            "{\"to\": \"a\", \"to\": \"b\"}",
        ] {
            let (status, pointer) = refused::<SendBody>(malformed);
            assert_eq!(status, 400, "{malformed}");
            assert!(pointer == "/" || pointer == "/to", "{malformed}: {pointer}");
        }
        assert_eq!(
            json::<SendBody>(&[b'{', 0xff, b'}']).unwrap_err(),
            ApiError::bad_request("/", "body is not UTF-8")
        );
    }

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
        assert_eq!((meta.total_pages, meta.total_results), (3, 5));
        assert_eq!(
            Page {
                number: 1,
                size: 20
            }
            .meta(0)
            .total_pages,
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
