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
    if !text.trim_start().starts_with('{') {
        return Err("a line must be a JSON object".into());
    }
    let line: HistoryLine = serde_json::from_str(text).map_err(|e| format!("{e}"))?;
    if line.direction.as_deref().is_some_and(is_inbound) {
        return Ok(Line::Inbound);
    }
    let to = line.to.as_deref().ok_or("no \"to\"")?;
    let from = line.from.as_deref().ok_or("no \"from\"")?;
    let sent = line
        .sent_at
        .as_ref()
        .or(line.last_used_at.as_ref())
        .ok_or("no \"sent_at\"")?;
    let sent_at = match sent {
        serde_json::Value::String(s) => time(s)?,
        serde_json::Value::Number(n) => seconds(n.as_f64().unwrap_or(-1.0))?,
        _ => return Err("sent_at must be a time".into()),
    };
    let created_at = line.created_at.as_deref().map(time).transpose()?;
    Ok(Line::Row(HistoryRow {
        to: number(to, "to")?,
        from: number(from, "from")?,
        sent_at,
        created_at,
        pinned: line.pinned.unwrap_or(false),
    }))
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
