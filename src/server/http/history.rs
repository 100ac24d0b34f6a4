//! Reading message history for an import, one line at a time: NDJSON
//! (`{"to", "from", "sent_at"}` a line, or the lines of an export) or CSV
//! with a header whose columns are recognised by name, as the hosted
//! providers' message-log exports name them (docs/API.md lists them).

use std::borrow::Cow;

use crate::{HistoryRow, PhoneNumber};

/// What one line of history is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Line {
    /// A message to import.
    Row(HistoryRow),
    /// An inbound message (a recipient texting a pool number): not a
    /// pairing numpool made, skipped.
    Inbound,
    /// Nothing to read (a blank line, the CSV header).
    Nothing,
}

/// The columns of a CSV file, by position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Columns {
    to: usize,
    from: usize,
    sent_at: usize,
    direction: Option<usize>,
}

/// The reader: the format is decided by the first line that is not blank.
#[derive(Debug, Default)]
pub(super) struct HistoryReader {
    csv: Option<Columns>,
    ndjson: bool,
}

/// Column names (lower case, letters and digits only) for each field.
const TO: &[&str] = &[
    "to",
    "tonumber",
    "recipient",
    "destination",
    "destinationnumber",
];
const FROM: &[&str] = &["from", "fromnumber", "sender", "source", "sourcenumber"];
const SENT_AT: &[&str] = &[
    "sentat",
    "sentdate",
    "datesent",
    "sent",
    "messagetime",
    "createdat",
    "timestamp",
    "date",
    "lastusedat",
];
const DIRECTION: &[&str] = &["direction", "messagedirection"];

fn normalized(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

impl HistoryReader {
    /// Reads one line (without its line end).
    pub(super) fn line(&mut self, text: &str) -> Result<Line, String> {
        let text = text.trim_start_matches('\u{feff}').trim_end_matches('\r');
        if text.trim().is_empty() {
            return Ok(Line::Nothing);
        }
        if self.ndjson {
            return ndjson_line(text);
        }
        match &self.csv {
            Some(columns) => csv_line(columns, text),
            None if text.trim_start().starts_with('{') => {
                self.ndjson = true;
                ndjson_line(text)
            }
            None => {
                self.csv = Some(header(text)?);
                Ok(Line::Nothing)
            }
        }
    }
}

/// The columns a CSV header names.
fn header(text: &str) -> Result<Columns, String> {
    let names: Vec<String> = split_csv(text)?.iter().map(|n| normalized(n)).collect();
    let find = |wanted: &[&str]| {
        wanted
            .iter()
            .find_map(|w| names.iter().position(|n| n == w))
    };
    let missing = |what: &str| {
        format!(
            "the CSV header names no {what} column (recognised: see docs/API.md); it has: {text}"
        )
    };
    Ok(Columns {
        to: find(TO).ok_or_else(|| missing("recipient (to)"))?,
        from: find(FROM).ok_or_else(|| missing("sender (from)"))?,
        sent_at: find(SENT_AT).ok_or_else(|| missing("sent time (sent_at)"))?,
        direction: find(DIRECTION),
    })
}

fn csv_line(columns: &Columns, text: &str) -> Result<Line, String> {
    let fields = split_csv(text)?;
    let get = |i: usize| {
        fields
            .get(i)
            .map(|f| &**f)
            .ok_or_else(|| format!("{} fields, the header has more", fields.len()))
    };
    if let Some(d) = columns.direction {
        if is_inbound(get(d)?) {
            return Ok(Line::Inbound);
        }
    }
    Ok(Line::Row(HistoryRow {
        to: number(get(columns.to)?, "to")?,
        from: number(get(columns.from)?, "from")?,
        sent_at: time(get(columns.sent_at)?)?,
        created_at: None,
        pinned: false,
    }))
}

/// Whether a `direction` says inbound: it holds `inbound` or `incoming`,
/// in any case.
fn is_inbound(direction: &str) -> bool {
    let holds = |word: &[u8]| {
        (direction.as_bytes().windows(word.len())).any(|w| w.eq_ignore_ascii_case(word))
    };
    holds(b"inbound") || holds(b"incoming")
}

/// One NDJSON line of message history (a CSV line has the same fields,
/// found by column name).
#[derive(Debug, Default, serde::Deserialize, schemars::JsonSchema)]
pub(super) struct HistoryLine {
    /// The recipient.
    #[schemars(required)]
    pub to: Option<String>,
    /// The sender it saw.
    #[schemars(required)]
    pub from: Option<String>,
    /// When: RFC 3339, RFC 2822, `YYYY-MM-DD HH:MM:SS` (UTC), or seconds
    /// since the epoch.
    #[schemars(with = "Option<String>")]
    pub sent_at: Option<serde_json::Value>,
    /// An export's line: read as `sent_at` when that is absent.
    #[schemars(with = "Option<String>")]
    pub last_used_at: Option<serde_json::Value>,
    /// When the pairing began (an export's lines have it).
    pub created_at: Option<String>,
    /// Imported pinned (an export's pinned mappings).
    pub pinned: Option<bool>,
    /// `inbound...`: a recipient's message to a pool number, skipped.
    pub direction: Option<String>,
}

fn ndjson_line(text: &str) -> Result<Line, String> {
    match plain_fields(text) {
        Some(fields) => fields.line(),
        None => fields_through_serde(text)?.line(),
    }
}

/// The fields of an NDJSON line that an import reads.
#[derive(Debug, Default)]
struct LineFields<'a> {
    to: Option<Cow<'a, str>>,
    from: Option<Cow<'a, str>>,
    sent_at: Option<TimeField<'a>>,
    last_used_at: Option<TimeField<'a>>,
    created_at: Option<Cow<'a, str>>,
    pinned: Option<bool>,
    direction: Option<Cow<'a, str>>,
}

/// A time field's JSON value.
#[derive(Debug)]
enum TimeField<'a> {
    Text(Cow<'a, str>),
    Number(f64),
    /// Another JSON type: not a time.
    Other,
}

impl LineFields<'_> {
    /// What the line is: a row, or an inbound message; or why it is
    /// neither.
    fn line(&self) -> Result<Line, String> {
        if self.direction.as_deref().is_some_and(is_inbound) {
            return Ok(Line::Inbound);
        }
        let to = self.to.as_deref().ok_or("no \"to\"")?;
        let from = self.from.as_deref().ok_or("no \"from\"")?;
        let sent = self
            .sent_at
            .as_ref()
            .or(self.last_used_at.as_ref())
            .ok_or("no \"sent_at\"")?;
        let sent_at = match sent {
            TimeField::Text(s) => time(s)?,
            TimeField::Number(n) => seconds(*n)?,
            TimeField::Other => return Err("sent_at must be a time".into()),
        };
        let created_at = self.created_at.as_deref().map(time).transpose()?;
        Ok(Line::Row(HistoryRow {
            to: number(to, "to")?,
            from: number(from, "from")?,
            sent_at,
            created_at,
            pinned: self.pinned.unwrap_or(false),
        }))
    }
}

/// A line read by serde: any JSON, and serde's error for a line that is
/// not an object of [`HistoryLine`]'s fields.
fn fields_through_serde(text: &str) -> Result<LineFields<'static>, String> {
    if !text.trim_start().starts_with('{') {
        return Err("a line must be a JSON object".into());
    }
    let line: HistoryLine = serde_json::from_str(text).map_err(|e| format!("{e}"))?;
    let time = |v: serde_json::Value| match v {
        serde_json::Value::String(s) => TimeField::Text(Cow::Owned(s)),
        serde_json::Value::Number(n) => TimeField::Number(n.as_f64().unwrap_or(-1.0)),
        _ => TimeField::Other,
    };
    Ok(LineFields {
        to: line.to.map(Cow::Owned),
        from: line.from.map(Cow::Owned),
        sent_at: line.sent_at.map(time),
        last_used_at: line.last_used_at.map(time),
        created_at: line.created_at.map(Cow::Owned),
        pinned: line.pinned,
        direction: line.direction.map(Cow::Owned),
    })
}

/// A line that is a flat JSON object of plain values (strings without
/// escapes, `true`, `false`, `null`), as an export's lines are, read in
/// place: serde reading [`HistoryLine`] took about 0.3 µs a line, most of
/// an NDJSON import's reading. `None` for any other line (a number, an
/// escape, a field repeated, a value of the wrong type), which
/// [`fields_through_serde`] reads, or refuses with serde's error.
fn plain_fields(text: &str) -> Option<LineFields<'_>> {
    let mut cursor = Plain { text, at: 0 };
    let mut fields = LineFields::default();
    // The fields read so far, a bit each: serde's derive refuses a field
    // repeated, even one that was null.
    let mut seen = 0u8;
    cursor.expect(b'{')?;
    if cursor.peek()? == b'}' {
        cursor.at += 1;
    } else {
        loop {
            let key = cursor.string()?;
            cursor.expect(b':')?;
            let value = cursor.value()?;
            // As serde reads each field: `null` is none, and another type
            // than the field's is an error (left to serde).
            let (bit, ok) = match key {
                "to" => (1, text_slot(&mut fields.to, &value)),
                "from" => (2, text_slot(&mut fields.from, &value)),
                "created_at" => (4, text_slot(&mut fields.created_at, &value)),
                "direction" => (8, text_slot(&mut fields.direction, &value)),
                "sent_at" => (16, time_slot(&mut fields.sent_at, &value)),
                "last_used_at" => (32, time_slot(&mut fields.last_used_at, &value)),
                "pinned" => (
                    64,
                    fields_slot(&mut fields.pinned, &value, |v| match v {
                        PlainValue::Bool(b) => Some(*b),
                        _ => None,
                    }),
                ),
                _ => (0, true),
            };
            if seen & bit != 0 {
                return None;
            }
            seen |= bit;
            if !ok {
                return None;
            }
            match cursor.next_byte()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
    }
    cursor.skip_space();
    (cursor.at == text.len()).then_some(fields)
}

/// Fills `slot` from `value` as serde fills an `Option` field: false
/// (serde's error) if `read` refuses the value.
fn fields_slot<'a, T>(
    slot: &mut Option<T>,
    value: &PlainValue<'a>,
    read: impl Fn(&PlainValue<'a>) -> Option<T>,
) -> bool {
    match value {
        PlainValue::Null => true,
        v => match read(v) {
            Some(read) => {
                *slot = Some(read);
                true
            }
            None => false,
        },
    }
}

/// Fills a text field's `slot` from `value` (see [`fields_slot`]).
fn text_slot<'a>(slot: &mut Option<Cow<'a, str>>, value: &PlainValue<'a>) -> bool {
    fields_slot(slot, value, |v| match v {
        PlainValue::Text(s) => Some(Cow::Borrowed(*s)),
        _ => None,
    })
}

/// Fills a time field's `slot` from `value` (see [`fields_slot`]): text
/// is read as a time later, another type is not a time.
fn time_slot<'a>(slot: &mut Option<TimeField<'a>>, value: &PlainValue<'a>) -> bool {
    fields_slot(slot, value, |v| match v {
        PlainValue::Text(s) => Some(TimeField::Text(Cow::Borrowed(*s))),
        _ => Some(TimeField::Other),
    })
}

/// A plain JSON value.
enum PlainValue<'a> {
    Text(&'a str),
    Bool(bool),
    Null,
}

/// A place in a line being read by [`plain_fields`].
struct Plain<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Plain<'a> {
    fn skip_space(&mut self) {
        let bytes = self.text.as_bytes();
        while bytes
            .get(self.at)
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.at += 1;
        }
    }

    /// The next byte that is not space, not taken.
    fn peek(&mut self) -> Option<u8> {
        self.skip_space();
        self.text.as_bytes().get(self.at).copied()
    }

    /// The next byte that is not space, taken.
    fn next_byte(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn expect(&mut self, wanted: u8) -> Option<()> {
        (self.next_byte()? == wanted).then_some(())
    }

    /// A string without escapes or control characters.
    fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let rest = &self.text.as_bytes()[self.at..];
        let len = rest
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if rest[len] != b'"' {
            return None;
        }
        let s = &self.text[self.at..self.at + len];
        self.at += len + 1;
        Some(s)
    }

    fn value(&mut self) -> Option<PlainValue<'a>> {
        if self.peek()? == b'"' {
            return self.string().map(PlainValue::Text);
        }
        let rest = &self.text[self.at..];
        let (value, len) = if rest.starts_with("true") {
            (PlainValue::Bool(true), 4)
        } else if rest.starts_with("false") {
            (PlainValue::Bool(false), 5)
        } else if rest.starts_with("null") {
            (PlainValue::Null, 4)
        } else {
            return None;
        };
        self.at += len;
        Some(value)
    }
}

fn number(text: &str, what: &str) -> Result<PhoneNumber, String> {
    PhoneNumber::parse_sender(text.trim()).map_err(|e| format!("{what} {text:?}: {e}"))
}

/// Seconds since the epoch from a number (milliseconds when it is too
/// large to be seconds).
fn seconds(n: f64) -> Result<u32, String> {
    let secs = if n > 1e11 { n / 1000.0 } else { n };
    if !(0.0..u32::MAX as f64).contains(&secs) {
        return Err(format!("{n} is no time"));
    }
    Ok(secs as u32)
}

/// A time: RFC 3339, RFC 2822, `YYYY-MM-DD HH:MM:SS` (UTC), or seconds
/// since the epoch.
fn time(text: &str) -> Result<u32, String> {
    let text = text.trim();
    // The form an export writes, read by hand; any other, by jiff.
    if let Some(secs) = crate::clock::utc_seconds(text) {
        return u32::try_from(secs).map_err(|_| format!("{text:?} is out of range"));
    }
    if let Ok(n) = text.parse::<f64>() {
        return seconds(n);
    }
    let secs = text
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_second())
        .or_else(|_| jiff::fmt::rfc2822::parse(text).map(|z| z.timestamp().as_second()))
        .or_else(|_| {
            text.parse::<jiff::civil::DateTime>()
                .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC))
                .map(|z| z.timestamp().as_second())
        })
        .map_err(|_| format!("{text:?} is no time (RFC 3339, RFC 2822, or seconds)"))?;
    u32::try_from(secs).map_err(|_| format!("{text:?} is out of range"))
}

/// The fields of one CSV line: commas, double quotes around a field that
/// holds them, `""` for a quote inside one. (A field may not span lines.)
/// A line without quotes, the usual one, is cut where it stands.
fn split_csv(text: &str) -> Result<Vec<Cow<'_, str>>, String> {
    if !text.contains('"') {
        return Ok(text.split(',').map(Cow::Borrowed).collect());
    }
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut started = true;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', false) if started => quoted = true,
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', true) => quoted = false,
            (',', false) => {
                fields.push(Cow::Owned(std::mem::take(&mut field)));
                started = true;
                continue;
            }
            (c, _) => field.push(c),
        }
        started = false;
    }
    if quoted {
        return Err("a quoted field is not closed".into());
    }
    fields.push(Cow::Owned(field));
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(line: Result<Line, String>) -> HistoryRow {
        match line {
            Ok(Line::Row(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn csv_columns_are_found_by_their_providers_names() {
        // A message-log export: quoted fields, a direction, RFC 2822 dates.
        let mut r = HistoryReader::default();
        assert_eq!(
            r.line("\"From\",\"To\",\"Body\",\"Status\",\"SentDate\",\"Direction\""),
            Ok(Line::Nothing)
        );
        let got = row(r.line(
            "\"+13125550001\",\"+14155550100\",\"hi, there \"\"you\"\"\",\"delivered\",\"Mon, 01 May 2023 12:34:56 +0000\",\"outbound-api\"",
        ));
        assert_eq!(got.from.to_string(), "+13125550001");
        assert_eq!(got.to.to_string(), "+14155550100");
        assert_eq!(got.sent_at, 1_682_944_496);
        assert_eq!(
            r.line("+14155550100,+13125550001,STOP,received,2023-05-01T12:40:00Z,inbound"),
            Ok(Line::Inbound)
        );
        assert!(r.line("+1415,+1312,x").is_err());
        // snake_case names, a plain date-time, seconds.
        let mut r = HistoryReader::default();
        r.line("to_number,from_number,message_time").unwrap();
        assert_eq!(
            row(r.line("+14155550100,+13125550001,2023-05-01 12:34:56")).sent_at,
            1_682_944_496
        );
        assert_eq!(
            row(r.line("+14155550100,+13125550001,1682944496000")).sent_at,
            1_682_944_496
        );
        assert!(
            HistoryReader::default().line("a,b,c").is_err(),
            "no known column"
        );
    }

    #[test]
    fn csv_fields_are_cut_at_commas_outside_quotes() {
        let fields = |line: &str| -> Result<Vec<String>, String> {
            Ok(split_csv(line)?.into_iter().map(Cow::into_owned).collect())
        };
        // Without quotes (cut where it stands, nothing copied).
        assert_eq!(fields("a,b,,c ").unwrap(), ["a", "b", "", "c "]);
        assert_eq!(fields("").unwrap(), [""]);
        assert!(split_csv("x,y")
            .unwrap()
            .iter()
            .all(|f| matches!(f, Cow::Borrowed(_))));
        // Quoted: commas inside, "" for a quote, a quote mid-field is text;
        // an unquoted field beside them cuts as before.
        assert_eq!(
            fields(r#""x,y","he said ""hi""",z,a"b,"""#).unwrap(),
            ["x,y", r#"he said "hi""#, "z", r#"a"b"#, ""]
        );
        assert_eq!(fields(r#""in"out, "q""#).unwrap(), ["inout", r#" "q""#]);
        assert!(fields(r#"a,"open"#).is_err());
        // Only a later field quoted (a provider's date), and a quoted field
        // before an empty last one.
        assert_eq!(
            fields(r#"+14155550100,+13125550001,"Mon, 01 May 2023 12:34:56 +0000""#).unwrap(),
            [
                "+14155550100",
                "+13125550001",
                "Mon, 01 May 2023 12:34:56 +0000"
            ]
        );
        assert_eq!(fields(r#""x","#).unwrap(), ["x", ""]);
        // The same line read with and without its quotes.
        assert_eq!(
            fields(r#""+14155550100","+13125550001","1682944496""#).unwrap(),
            fields("+14155550100,+13125550001,1682944496").unwrap()
        );
    }

    #[test]
    fn a_direction_is_read_in_any_case_in_either_format() {
        let mut csv = HistoryReader::default();
        csv.line("to,from,sent_at,direction").unwrap();
        let mut ndjson = HistoryReader::default();
        let inbound = [
            "INBOUND",
            "Incoming",
            "inbound-api",
            "api-INBOUND",
            "message_incoming",
        ];
        for (direction, want_inbound) in (inbound.iter().map(|d| (*d, true)))
            .chain([("Outbound-Reply", false), ("outbound-api", false)])
        {
            let line = format!("+14155550100,+13125550001,1682944496,{direction}");
            let json = format!(
                r#"{{"to":"+14155550100","from":"+13125550001","sent_at":1682944496,"direction":"{direction}"}}"#
            );
            for read in [csv.line(&line), ndjson.line(&json)] {
                match read {
                    Ok(Line::Inbound) => assert!(want_inbound, "{direction}"),
                    Ok(Line::Row(_)) => assert!(!want_inbound, "{direction}"),
                    other => panic!("{direction}: {other:?}"),
                }
            }
        }
    }

    /// Keys and values an NDJSON line's fields are built of: each field's
    /// own type, the wrong ones, escapes, and fields no import reads.
    const KEYS: [&str; 11] = [
        "to",
        "from",
        "sent_at",
        "last_used_at",
        "created_at",
        "pinned",
        "direction",
        "record_type",
        "expires_at",
        r"t\u006f",
        "",
    ];
    const VALUES: [&str; 16] = [
        r#""+14155550101""#,
        r#""+13125550001""#,
        r#"" +1312555000 ""#,
        r#""2026-12-07T15:10:07.000Z""#,
        r#""2026-12-07 15:10:07""#,
        r#""1733580000""#,
        "1733580000",
        "1.5e9",
        "null",
        "true",
        "false",
        r#""INBOUND""#,
        r#""in\"bound""#,
        "[1]",
        "{}",
        r#""é""#,
    ];

    /// An NDJSON line of `fields` (key, value and spaces, by index).
    fn plain_line(fields: &[(usize, usize, usize)]) -> String {
        let spaces = ["", " ", "\t", "  "];
        let body: Vec<String> = fields
            .iter()
            .map(|&(k, v, sp)| {
                let sp = spaces[sp % spaces.len()];
                format!(
                    r#"{sp}"{}"{sp}:{sp}{}{sp}"#,
                    KEYS[k % KEYS.len()],
                    VALUES[v % VALUES.len()]
                )
            })
            .collect();
        format!("{{{}}}", body.join(","))
    }

    /// What a reading of a line gives, as text.
    fn shown(line: Result<Line, String>) -> String {
        format!("{line:?}")
    }

    proptest::proptest! {
        /// A line read in place reads as serde reads it: the same row, or
        /// the same error; and a line it leaves to serde is one serde
        /// reads differently (a number, an escape, a field repeated, a
        /// value of another type) or refuses.
        #[test]
        fn a_line_reads_the_same_in_place_as_through_serde(
            fields in proptest::collection::vec((0usize..11, 0usize..16, 0usize..4), 0..9),
            tail in 0usize..4,
        ) {
            let line = plain_line(&fields) + ["", " ", "x", "}"][tail];
            let through_serde = shown(fields_through_serde(&line).and_then(|f| f.line()));
            if let Some(fields) = plain_fields(&line) {
                proptest::prop_assert_eq!(shown(fields.line()), through_serde, "{}", line);
            }
        }
    }

    #[test]
    fn an_export_line_is_read_in_place() {
        let line = r#"{"record_type":"sticky_mapping","to":"+14155550101","from":"+13125550001","created_at":"2026-12-07T15:10:07.000Z","last_used_at":"2026-12-08T15:10:07.000Z","expires_at":"2026-12-16T15:10:07.000Z","pinned":true}"#;
        let fields = plain_fields(line).expect("read in place");
        assert!(matches!(fields.to, Some(Cow::Borrowed("+14155550101"))));
        assert_eq!(
            fields.line(),
            fields_through_serde(line).unwrap().line(),
            "{line}"
        );
        let row = row(ndjson_line(line));
        assert_eq!(row.sent_at, 1_796_742_607);
        assert_eq!(row.created_at, Some(1_796_656_207));
        assert!(row.pinned);
        // Left to serde: a number, an escape, a repeated field (even
        // after null), a value of another type, text after the object.
        for other in [
            r#"{"to":"+14155550101","from":"+13125550001","sent_at":1733580000}"#,
            r#"{"to":"+1415555\u00301","from":"+13125550001","sent_at":"x"}"#,
            r#"{"to":null,"to":"+14155550101"}"#,
            r#"{"to":"+14155550101","pinned":"yes"}"#,
            r#"{"to":"+14155550101"} x"#,
        ] {
            assert!(plain_fields(other).is_none(), "{other}");
        }
    }

    #[test]
    fn ndjson_lines_and_export_lines_are_read() {
        let mut r = HistoryReader::default();
        let got = row(r.line(
            r#"{"to":"+14155550100","from":"+13125550001","sent_at":"2023-05-01T12:34:56Z"}"#,
        ));
        assert_eq!(got.sent_at, 1_682_944_496);
        let export = row(r.line(
            r#"{"record_type":"sticky_mapping","to":"+14155550101","from":"+13125550001","created_at":"2023-05-01T00:00:00.000Z","last_used_at":"2023-05-01T12:34:56.000Z","expires_at":null,"pinned":true}"#,
        ));
        assert_eq!(
            (export.pinned, export.created_at),
            (true, Some(1_682_899_200))
        );
        assert!(r.line("[1]").is_err());
        assert!(r
            .line(r#"{"to":"+1","from":"+13125550001","sent_at":1}"#)
            .is_err());
        assert!(r
            .line(r#"{"to":"+14155550100","from":"+13125550001","sent_at":"yesterday"}"#)
            .is_err());
        assert_eq!(r.line("   "), Ok(Line::Nothing));
    }
}
