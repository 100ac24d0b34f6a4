//! `/v2/webhooks/messaging`: the hosted service's webhook events.
//! `message.finalized` (a delivery outcome) feeds sender health;
//! `message.received` (a recipient texting a pool number) can opt the
//! recipient out of the profile or back in. Other events are accepted and
//! ignored; each event id counts once.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{Map, Value};

use super::{data, AppState};
use crate::server::http::auth;
use crate::server::http::body;
use crate::server::http::error::ApiError;
use crate::server::http::requests::{WebhookBody, WebhookEvent};
use crate::server::http::ttl_cache::{Claim, Weigh};
use crate::server::http::views::WebhookReply;
use crate::PhoneNumber;
use crate::{DeliveryOutcome, Inbound};

/// What the cache of event ids holds.
#[derive(Clone, Copy)]
pub(crate) enum SeenEvent {
    /// A delivery of the event is being counted now.
    InProgress,
    /// The event was counted.
    Counted,
}

impl Weigh for SeenEvent {
    fn weight(&self) -> usize {
        0
    }
}

/// The longest event id remembered.
const MAX_EVENT_ID: usize = 255;

/// Error codes that mean the carrier blocked the message as spam.
const SPAM_CODES: [&str; 2] = ["40002", "40003"];

/// The outcome a message's status and error codes tell, if they tell one.
fn outcome_of<'a>(
    status: Option<&str>,
    mut codes: impl Iterator<Item = Option<&'a Value>>,
) -> Option<DeliveryOutcome> {
    let delivered = match status? {
        "delivered" => true,
        "delivery_failed" | "sending_failed" | "expired" | "delivery_unconfirmed" => false,
        _ => return None,
    };
    let spam = codes.any(|code| {
        let code = match code {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return false,
        };
        SPAM_CODES.contains(&code.as_str())
    });
    Some(DeliveryOutcome { delivered, spam })
}

/// Where a phone number is in a message.
#[derive(Clone, Copy)]
enum Party {
    /// `from.phone_number`.
    Sender,
    /// `to[0].phone_number`.
    Recipient,
}

impl Party {
    /// Its JSON pointer under the message.
    fn pointer(self) -> &'static str {
        match self {
            Party::Sender => "/from/phone_number",
            Party::Recipient => "/to/0/phone_number",
        }
    }
}

/// What handling an event reads of its message (the event's `payload`),
/// however the body was read.
trait MessageFields {
    /// The number at `party`, parsed: missing is 422, a wrong JSON type on
    /// the way 400 at that step, a number that does not parse 400.
    fn number(&self, party: Party) -> Result<PhoneNumber, ApiError>;
    /// The delivery outcome, if the message has one.
    fn outcome(&self) -> Option<DeliveryOutcome>;
    /// The message's text (none is empty); not a string is 400.
    fn take_text(&mut self) -> Result<String, ApiError>;
}

/// A message read through a `Value`: each wrong JSON type is found here,
/// and named.
impl MessageFields for Map<String, Value> {
    fn number(&self, party: Party) -> Result<PhoneNumber, ApiError> {
        let pointer = party.pointer();
        let full = format!("/data/payload{pointer}");
        // Every step of the way must have its JSON type: a wrong one is
        // 400 at that step, a missing one 422.
        let mut steps = pointer.split('/').skip(1);
        let first = steps.next().expect("a pointer has a step");
        // The length of `full` walked so far.
        let mut walked = full.len() - pointer.len() + 1 + first.len();
        let mut at = match self.get(first) {
            None | Some(Value::Null) => return Err(ApiError::missing(&full)),
            Some(v) => v,
        };
        for step in steps {
            let parent = &full[..walked];
            walked += 1 + step.len();
            let next = match (at, step.parse::<usize>()) {
                (Value::Array(items), Ok(i)) => items.get(i),
                (Value::Object(fields), _) => fields.get(step),
                _ => {
                    return Err(ApiError::bad_request(
                        parent,
                        format!("{parent} has the wrong JSON type"),
                    ));
                }
            };
            at = match next {
                None | Some(Value::Null) => return Err(ApiError::missing(&full)),
                Some(v) => v,
            };
        }
        let Value::String(raw) = at else {
            return Err(ApiError::bad_request(
                &full,
                "a phone number must be a string",
            ));
        };
        PhoneNumber::parse_sender(raw).map_err(|e| ApiError::number(&full, e))
    }

    fn outcome(&self) -> Option<DeliveryOutcome> {
        let status = self
            .get("to")
            .and_then(|to| to.pointer("/0/status"))
            .and_then(Value::as_str);
        let errors = self.get("errors").and_then(Value::as_array);
        outcome_of(status, errors.into_iter().flatten().map(|e| e.get("code")))
    }

    fn take_text(&mut self) -> Result<String, ApiError> {
        match self.remove("text") {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(ApiError::bad_request(
                "/data/payload/text",
                "text must be a string",
            )),
        }
    }
}

/// A message read straight into the fields handling uses. Each is an
/// object, an array of objects, a string or null where the hosted service
/// sends one, so a message that reads this way has no wrong JSON type on
/// any path the handling walks; one that does not is read through a
/// `Value` instead, for its errors.
#[derive(serde::Deserialize)]
struct Message {
    from: Option<body::FromObject<Sender>>,
    to: Option<Vec<body::FromObject<Recipient>>>,
    errors: Option<Vec<body::FromObject<MessageError>>>,
    text: Option<String>,
}

#[derive(serde::Deserialize)]
struct Sender {
    phone_number: Option<String>,
}

#[derive(serde::Deserialize)]
struct Recipient {
    phone_number: Option<String>,
    status: Option<String>,
}

#[derive(serde::Deserialize)]
struct MessageError {
    code: Option<Value>,
}

impl MessageFields for Message {
    fn number(&self, party: Party) -> Result<PhoneNumber, ApiError> {
        let raw = match party {
            Party::Sender => self.from.as_ref().and_then(|f| f.0.phone_number.as_deref()),
            Party::Recipient => self
                .to
                .as_ref()
                .and_then(|to| to.first()?.0.phone_number.as_deref()),
        };
        let full = || format!("/data/payload{}", party.pointer());
        let raw = raw.ok_or_else(|| ApiError::missing(&full()))?;
        PhoneNumber::parse_sender(raw).map_err(|e| ApiError::number(&full(), e))
    }

    fn outcome(&self) -> Option<DeliveryOutcome> {
        let status = self
            .to
            .as_ref()
            .and_then(|to| to.first()?.0.status.as_deref());
        let codes = self.errors.iter().flatten().map(|e| e.0.code.as_ref());
        outcome_of(status, codes)
    }

    fn take_text(&mut self) -> Result<String, ApiError> {
        Ok(self.text.take().unwrap_or_default())
    }
}

pub(super) async fn messaging(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let bytes = body::read(payload, state.body_limit).await?;
    let signed = state
        .webhook_key
        .as_ref()
        .is_some_and(|key| auth::signature_valid(&req, &bytes, key, state.engine.now().as_secs()));
    if !signed {
        state.keys.check(&req)?;
    }
    // The gate checked the query only for a caller with a key.
    super::check_query(&req)?;
    let (event_type, id, action) = match read_event(&bytes)? {
        Read::Straight(event) => action_of(event)?,
        Read::ThroughValue(event) => action_of(event)?,
    };
    let Some(action) = action else {
        return Ok(data(WebhookReply {
            accepted: true,
            ..Default::default()
        }));
    };
    let now = state.engine.now();
    // One id counts once per event type: a STOP whose id another kind of
    // event used is still counted.
    let key = format!("{event_type}/{id}");
    let claim = match state.seen_events.claim(&key, SeenEvent::InProgress, now) {
        Claim::Fresh(claim) => claim,
        Claim::Taken(SeenEvent::InProgress) => return Err(ApiError::EventInProgress),
        Claim::Taken(SeenEvent::Counted) => {
            return Ok(data(WebhookReply {
                accepted: true,
                counted: false,
                duplicate: Some(true),
                effect: None,
            }))
        }
    };
    // An event about a number no profile has is not remembered, so the
    // same event counts once the number is assigned.
    let (counted, effect) = match action {
        Action::Outcome(sender, outcome) => {
            (state.engine.report_outcome(sender, outcome).await?, None)
        }
        Action::Inbound { from, to, text } => match state.engine.receive(from, to, &text).await? {
            Inbound::UnknownNumber => (false, None),
            Inbound::NoKeyword => (true, None),
            Inbound::OptedOut(_) => (true, Some("opted_out")),
            Inbound::OptedIn(_) => (true, Some("opted_in")),
        },
    };
    claim.settle(counted.then_some(SeenEvent::Counted));
    Ok(data(WebhookReply {
        accepted: true,
        counted,
        duplicate: None,
        effect,
    }))
}

/// An event as handling reads it: its message is `M`.
#[derive(serde::Deserialize)]
struct Event<M> {
    event_type: Option<String>,
    id: Option<String>,
    payload: Option<M>,
}

/// A webhook body whose `data` reads straight into its event.
#[derive(serde::Deserialize)]
struct DirectBody {
    data: Option<body::FromObject<Event<body::FromObject<Message>>>>,
}

/// How a webhook body was read.
enum Read {
    /// Straight into the fields handling uses: the common case.
    Straight(Event<Message>),
    /// Through a `Value`, whose walk names the field of each error.
    ThroughValue(Event<Map<String, Value>>),
}

/// Reads a webhook body straight into its event when it can be, so its
/// text is parsed once and only the fields handling uses are kept; a body
/// that cannot (not an object, `data` or a field used of another JSON
/// type, a field repeated) is read again by [`event_through_value`], so
/// that its error names the field.
///
/// The fields handling does not use are skipped, checked for JSON's
/// grammar only: a number too large for an `f64`, a lone surrogate
/// escape, or arrays and objects nested deeper than serde_json builds a
/// `Value` of, in such a field, are accepted here where a `Value`
/// refuses them. The hosted service sends none of them, and none changes
/// what an event means.
fn read_event(bytes: &[u8]) -> Result<Read, ApiError> {
    // Text that is not UTF-8 is refused, as a `Value` refuses it: the
    // straight reading skips the fields it does not use without looking
    // inside their strings.
    let text = std::str::from_utf8(bytes).unwrap_or("");
    if text.trim_start().starts_with('{') {
        if let Ok(DirectBody {
            data: Some(body::FromObject(event)),
        }) = serde_json::from_str(text)
        {
            return Ok(Read::Straight(Event {
                event_type: event.event_type,
                id: event.id,
                payload: event.payload.map(|p| p.0),
            }));
        }
    }
    event_through_value(bytes).map(Read::ThroughValue)
}

/// The event of a webhook body read through a `Value`, each error naming
/// its field.
fn event_through_value(bytes: &[u8]) -> Result<Event<Map<String, Value>>, ApiError> {
    let b: WebhookBody = body::json(bytes)?;
    let event: WebhookEvent = match b.data {
        None => return Err(ApiError::missing("/data")),
        Some(data) => body::object_at(data, "/data")?,
    };
    Ok(Event {
        event_type: event.event_type,
        id: event.id,
        payload: event.payload,
    })
}

/// An event's type, its id, and what it asks of the engine (nothing: an
/// event of another type, or an outcome that is not final), or why the
/// event is refused.
fn action_of<M: MessageFields>(
    event: Event<M>,
) -> Result<(String, String, Option<Action>), ApiError> {
    let event_type = event
        .event_type
        .ok_or_else(|| ApiError::missing("/data/event_type"))?;
    if !matches!(
        event_type.as_str(),
        "message.finalized" | "message.received"
    ) {
        return Ok((event_type, String::new(), None));
    }
    let id = event.id.ok_or_else(|| ApiError::missing("/data/id"))?;
    if id.chars().count() > MAX_EVENT_ID {
        return Err(ApiError::invalid(
            "/data/id",
            format!("an event id is at most {MAX_EVENT_ID} characters"),
        ));
    }
    let mut message = event
        .payload
        .ok_or_else(|| ApiError::missing("/data/payload"))?;
    let action = if event_type == "message.finalized" {
        let sender = message.number(Party::Sender)?;
        message
            .outcome()
            .map(|outcome| Action::Outcome(sender, outcome))
    } else {
        let text = message.take_text()?;
        Some(Action::Inbound {
            from: message.number(Party::Sender)?,
            to: message.number(Party::Recipient)?,
            text,
        })
    };
    Ok((event_type, id, action))
}

/// What an event asks of the engine.
#[derive(Debug)]
enum Action {
    /// A delivery outcome of a sender.
    Outcome(PhoneNumber, DeliveryOutcome),
    /// A text from a recipient to a pool number.
    Inbound {
        from: PhoneNumber,
        to: PhoneNumber,
        text: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What handling makes of an event (its type, id and action, or the
    /// error), as text, for comparing the two ways of reading a body.
    fn shown<M: MessageFields>(event: Result<Event<M>, ApiError>) -> String {
        match event.and_then(action_of) {
            Ok((event_type, id, action)) => format!("{event_type:?} {id:?} {action:?}"),
            Err(e) => format!("error {:?}", e.envelope()),
        }
    }

    fn read(body: &str) -> String {
        match read_event(body.as_bytes()) {
            Ok(Read::Straight(event)) => shown(Ok(event)),
            Ok(Read::ThroughValue(event)) => shown(Ok(event)),
            Err(e) => shown::<Message>(Err(e)),
        }
    }

    /// Whether a body reads straight.
    fn straight(body: &str) -> bool {
        matches!(read_event(body.as_bytes()), Ok(Read::Straight(_)))
    }

    /// The reading through a `Value` only (every body's, before).
    fn read_through_value(body: &str) -> String {
        shown(event_through_value(body.as_bytes()))
    }

    proptest::proptest! {
        /// A broken body (an event with a few characters removed,
        /// replaced or put in) reads the same straight as through a
        /// `Value`: the same event, or the same error. (Arrays and repeated
        /// keys, which random edits rarely make, are the test below.)
        #[test]
        fn a_broken_event_reads_the_same_both_ways(
            edits in proptest::collection::vec((0usize..1000, 0usize..3, 0usize..12), 1..6)
        ) {
            let mut body: Vec<char> = r#"{"data":{"event_type":"message.finalized","id":"e1","payload":{"from":{"phone_number":"+13125550001"},"to":[{"phone_number":"+14155550100","status":"delivered"}],"errors":[{"code":"40002"}],"text":"hi"}},"meta":{"attempt":1}}"#.chars().collect();
            let pieces = ['[', ']', '{', '}', '"', ',', ':', '1', 'x', ' ', '\\', 'n'];
            for (at, how, piece) in edits {
                let at = at % (body.len() + 1);
                match how {
                    0 if at < body.len() => {
                        body.remove(at);
                    }
                    1 if at < body.len() => body[at] = pieces[piece],
                    _ => body.insert(at, pieces[piece]),
                }
            }
            let body: String = body.into_iter().collect();
            proptest::prop_assert_eq!(read(&body), read_through_value(&body), "{}", body);
        }
    }

    /// Pieces of an event's JSON text, each of the right type or a wrong
    /// one, for building events (`None`: the field is left out).
    const NUMBERS: [&str; 7] = [
        r#""+13125550001""#,
        r#""+14155550100""#,
        r#""12""#,
        "7",
        "null",
        "[]",
        "{}",
    ];
    const STATUSES: [Option<&str>; 6] = [
        Some(r#""delivered""#),
        Some(r#""delivery_failed""#),
        Some(r#""sent""#),
        Some("5"),
        Some("null"),
        None,
    ];
    const CODES: [&str; 6] = [r#""40002""#, "40003", "40002.0", "null", "[]", r#""1""#];
    const TEXTS: [Option<&str>; 6] = [
        Some(r#""STOP""#),
        Some(r#""hi""#),
        Some("null"),
        Some("7"),
        Some("[]"),
        None,
    ];
    const TYPES: [Option<&str>; 6] = [
        Some(r#""message.finalized""#),
        Some(r#""message.received""#),
        Some(r#""message.sent""#),
        Some("7"),
        Some("null"),
        None,
    ];

    /// An event's body from the choices `c` (each taken modulo its list).
    fn event_body(c: [usize; 12]) -> String {
        let n = |i: usize| NUMBERS[c[i] % NUMBERS.len()];
        let (p1, p2, p3) = (n(0), n(1), n(2));
        let status =
            STATUSES[c[3] % STATUSES.len()].map_or(String::new(), |s| format!(r#","status":{s}"#));
        let code = CODES[c[4] % CODES.len()];
        let from = [
            None,
            Some("null".to_string()),
            Some(r#""x""#.to_string()),
            Some(format!("[{p1}]")),
            Some(format!(r#"{{"phone_number":{p1}}}"#)),
            Some(format!(
                r#"{{"carrier":"T","phone_number":{p1},"line_type":[1]}}"#
            )),
            Some(format!(r#"{{"phone_number":{p1},"phone_number":{p2}}}"#)),
        ][c[5] % 7]
            .clone();
        let recipient = format!(r#"{{"phone_number":{p3}{status}}}"#);
        let to = [
            None,
            Some("null".to_string()),
            Some("[]".to_string()),
            Some("{}".to_string()),
            Some(format!(r#"{{"0":{recipient}}}"#)),
            Some(format!("[{recipient}]")),
            Some(format!(r#"[{recipient},{{"phone_number":null}}]"#)),
            Some(format!("[{recipient},7]")),
            Some(format!("[[{p3}]]")),
            Some("[null]".to_string()),
        ][c[6] % 10]
            .clone();
        let errors = [
            None,
            Some("null".to_string()),
            Some("[]".to_string()),
            Some(r#""x""#.to_string()),
            Some(format!(r#"[{{"code":{code}}}]"#)),
            Some(format!(r#"[7,{{"code":{code}}}]"#)),
            Some(format!(
                r#"[{{"code":{code},"title":"t","meta":{{"a":[1]}}}}]"#
            )),
        ][c[7] % 7]
            .clone();
        let text = TEXTS[c[8] % TEXTS.len()].map(str::to_string);
        let fields = [
            ("from", from),
            ("to", to),
            ("errors", errors),
            ("text", text),
        ];
        let message: Vec<String> = fields
            .iter()
            .filter_map(|(name, value)| Some(format!(r#""{name}":{}"#, value.as_ref()?)))
            .collect();
        let payload = [
            None,
            Some("null".to_string()),
            Some("[]".to_string()),
            Some(format!("{{{}}}", message.join(","))),
            Some(format!(r#"{{"id":"m",{}}}"#, message.join(","))),
        ][c[9] % 5]
            .clone();
        let id = [
            Some(r#""e1""#.to_string()),
            None,
            Some(format!(r#""{}""#, "i".repeat(300))),
            Some("7".to_string()),
        ][c[10] % 4]
            .clone();
        let event_type = TYPES[c[11] % TYPES.len()].map(str::to_string);
        let data: Vec<String> = [("event_type", event_type), ("id", id), ("payload", payload)]
            .iter()
            .filter_map(|(name, value)| Some(format!(r#""{name}":{}"#, value.as_ref()?)))
            .collect();
        format!(
            r#"{{"data":{{{}}},"meta":{{"attempt":1}}}}"#,
            data.join(",")
        )
    }

    proptest::proptest! {
        /// An event built of fields of the right type or a wrong one (left
        /// out, null, repeated, an array for an object, a number for a
        /// string, at every step of each path handling walks) reads the
        /// same straight as through a `Value`: the same action, or the
        /// same error.
        #[test]
        fn an_event_of_any_field_types_reads_the_same_both_ways(c in proptest::array::uniform12(0usize..64)) {
            let body = event_body(c);
            proptest::prop_assert_eq!(read(&body), read_through_value(&body), "{}", body);
        }
    }

    #[test]
    fn every_mix_of_message_fields_reads_the_same_both_ways() {
        let mut straight_reads = 0;
        let mut check = |c: [usize; 12]| {
            let body = event_body(c);
            assert_eq!(read(&body), read_through_value(&body), "{body}");
            straight_reads += usize::from(straight(&body));
        };
        for event_type in [0, 1] {
            // Each field of the message, of each type, beside the others.
            for from in 0..7 {
                for to in 0..10 {
                    for errors in 0..7 {
                        for text in 0..TEXTS.len() {
                            for status in 0..STATUSES.len() {
                                check([
                                    0, 1, 1, status, 0, from, to, errors, text, 4, 0, event_type,
                                ]);
                            }
                        }
                    }
                }
            }
            // Each number and error code, in well-formed fields.
            for p1 in 0..NUMBERS.len() {
                for p3 in 0..NUMBERS.len() {
                    for code in 0..CODES.len() {
                        check([p1, 1, p3, 0, code, 4, 5, 4, 0, 4, 0, event_type]);
                    }
                }
            }
        }
        // Most of them read straight: the fast reading is not a dead path.
        assert!(straight_reads > 4_000, "{straight_reads}");
    }

    #[test]
    fn a_well_formed_event_reads_straight() {
        // The choices of the first of each list: every field of its type.
        let finalized = event_body([0, 1, 1, 0, 0, 4, 5, 4, 0, 4, 0, 0]);
        assert!(straight(&finalized), "{finalized}");
        assert_eq!(
            read(&finalized),
            r#""message.finalized" "e1" Some(Outcome(PhoneNumber(+13125550001), DeliveryOutcome { delivered: true, spam: true }))"#
        );
        let received = event_body([0, 1, 1, 0, 0, 5, 6, 2, 0, 3, 0, 1]);
        assert!(straight(&received), "{received}");
        assert!(read(&received).contains("Inbound"), "{}", read(&received));
        // In a field of the event that handling does not read, a value
        // nested deeper than serde_json builds a `Value` of, a number too
        // large for an `f64`, a lone surrogate: skipped when read
        // straight, so accepted, where the reading through a `Value`
        // refuses them.
        for unread in [
            format!("{}{}", "[".repeat(200), "]".repeat(200)),
            "1e400".to_string(),
            r#""\udc00""#.to_string(),
        ] {
            let body = finalized.replace(r#""id":"m""#, &format!(r#""id":{unread}"#));
            assert!(straight(&body), "{body}");
            assert!(read_through_value(&body).starts_with("error"), "{body}");
        }
        // Text that is not UTF-8 is refused either way, wherever it is.
        let mut not_utf8 = finalized.clone().into_bytes();
        let at = finalized.find(r#""attempt""#).unwrap() + 2;
        not_utf8[at] = 0xff;
        let (Err(straight_error), Err(value_error)) =
            (read_event(&not_utf8), event_through_value(&not_utf8))
        else {
            panic!("a body that is not UTF-8 was read");
        };
        assert_eq!(
            format!("{:?}", straight_error.envelope()),
            format!("{:?}", value_error.envelope())
        );
    }

    #[test]
    fn an_event_reads_the_same_straight_or_through_a_value() {
        let event = r#"{"data":{"event_type":"message.finalized","id":"e1","occurred_at":"x","payload":{"from":{"phone_number":"+13125550001"},"to":[{"phone_number":"+14155550100","status":"delivered"}],"errors":[{"code":40002}],"text":"hi \u00e9"},"record_type":"event"},"meta":{"attempt":1}}"#;
        for body in [
            event,
            // A field repeated inside data (the last counts) and in the payload.
            r#"{"data":{"id":"a","event_type":"message.received","id":"b","payload":{"text":"x","text":"STOP"}}}"#,
            // data not an object: an array would read as a struct's fields.
            r#"{"data":["message.finalized","e1",{}]}"#,
            r#"[{"data":{"event_type":"message.finalized","id":"e1","payload":{}}}]"#,
            r#"{"data":null}"#,
            r#"{"data":{"event_type":7,"id":"e1"}}"#,
            r#"{"data":{"event_type":"message.finalized","id":"e1","payload":[1]}}"#,
            r#"{"data":{"event_type":"message.finalized","id":"e1"}} trailing"#,
            "",
            "{",
        ] {
            assert_eq!(read(body), read_through_value(body), "{body}");
        }
        assert!(read(event).starts_with(r#""message.finalized" "e1" Some(Outcome("#));
        assert!(read(r#"{"data":["message.finalized","e1",{}]}"#).contains("must be an object"));
    }

    /// A wrong JSON type on the way to a number is 400 at that step.
    #[test]
    fn a_number_of_the_wrong_shape_is_refused_where_the_shape_breaks() {
        for (payload, party, at) in [
            (json!({"from": "x"}), Party::Sender, "/data/payload/from"),
            (
                json!({"from": {"phone_number": 5}}),
                Party::Sender,
                "/data/payload/from/phone_number",
            ),
            (json!({"to": 7}), Party::Recipient, "/data/payload/to"),
            (
                json!({"to": [["+14155550100"]]}),
                Party::Recipient,
                "/data/payload/to/0",
            ),
            (
                json!({"to": [{"phone_number": []}]}),
                Party::Recipient,
                "/data/payload/to/0/phone_number",
            ),
        ] {
            let Value::Object(fields) = payload.clone() else {
                unreachable!()
            };
            let error = fields.number(party).expect_err("refused");
            let shown = format!("{:?}", error.envelope());
            assert!(
                shown.contains(&format!("pointer: Some({at:?})")),
                "{payload}: {shown}"
            );
        }
    }

    #[test]
    fn outcomes_from_payloads() {
        let cases = [
            ("delivered", json!([]), Some((true, false))),
            ("expired", json!([]), Some((false, false))),
            (
                "delivery_failed",
                json!([{"code": "40002"}]),
                Some((false, true)),
            ),
            (
                "sending_failed",
                json!([{"code": 40003}]),
                Some((false, true)),
            ),
            (
                "delivery_failed",
                json!([{"code": "10007"}]),
                Some((false, false)),
            ),
            ("sent", json!([]), None),
        ];
        for (status, errors, expected) in cases {
            let expected = expected.map(|(delivered, spam)| DeliveryOutcome { delivered, spam });
            let payload = json!({"to": [{"status": status}], "errors": errors});
            let Value::Object(fields) = payload.clone() else {
                unreachable!()
            };
            assert_eq!(fields.outcome(), expected, "{payload}");
            let message: body::FromObject<Message> =
                serde_json::from_value(payload.clone()).unwrap();
            assert_eq!(message.0.outcome(), expected, "{payload}");
        }
    }
}
