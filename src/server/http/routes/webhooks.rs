//! `/v2/webhooks/messaging`: the hosted service's webhook events.
//! `message.finalized` (a delivery outcome) feeds sender health;
//! `message.received` (a recipient texting a pool number) can opt the
//! recipient out of the profile or back in. Other events are accepted and
//! ignored; each event id counts once.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

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

fn outcome(payload: &Value) -> Option<DeliveryOutcome> {
    let status = payload.pointer("/to/0/status")?.as_str()?;
    let delivered = match status {
        "delivered" => true,
        "delivery_failed" | "sending_failed" | "expired" | "delivery_unconfirmed" => false,
        _ => return None,
    };
    let spam = payload
        .get("errors")
        .and_then(Value::as_array)
        .is_some_and(|errors| {
            errors.iter().any(|e| {
                let code = match e.get("code") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => return false,
                };
                SPAM_CODES.contains(&code.as_str())
            })
        });
    Some(DeliveryOutcome { delivered, spam })
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
    let event = event_of(&bytes)?;
    let event_type = event
        .event_type
        .as_deref()
        .ok_or_else(|| ApiError::missing("/data/event_type"))?;
    if !matches!(event_type, "message.finalized" | "message.received") {
        return Ok(data(WebhookReply {
            accepted: true,
            ..Default::default()
        }));
    }
    let id = event
        .id
        .as_deref()
        .ok_or_else(|| ApiError::missing("/data/id"))?;
    if id.chars().count() > MAX_EVENT_ID {
        return Err(ApiError::invalid(
            "/data/id",
            format!("an event id is at most {MAX_EVENT_ID} characters"),
        ));
    }
    let message = event
        .payload
        .ok_or_else(|| ApiError::missing("/data/payload"))?;
    let message = Value::Object(message);
    let number = |pointer: &str| -> Result<PhoneNumber, ApiError> {
        let full = format!("/data/payload{pointer}");
        // Every step of the way must have its JSON type: a wrong one is
        // 400 at that step, a missing one 422.
        let mut at = &message;
        let mut walked = String::from("/data/payload");
        for step in pointer.split('/').skip(1) {
            walked.push('/');
            walked.push_str(step);
            let next = match (at, step.parse::<usize>()) {
                (Value::Array(items), Ok(i)) => items.get(i),
                (Value::Object(fields), _) => fields.get(step),
                (Value::Null, _) => None,
                _ => {
                    let parent = walked.rsplit_once('/').map_or("", |(p, _)| p).to_string();
                    return Err(ApiError::bad_request(
                        &parent,
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
    };
    let action = if event_type == "message.finalized" {
        let sender = number("/from/phone_number")?;
        match outcome(&message) {
            Some(outcome) => Action::Outcome(sender, outcome),
            None => {
                return Ok(data(WebhookReply {
                    accepted: true,
                    ..Default::default()
                }))
            }
        }
    } else {
        let text = match message.get("text") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                return Err(ApiError::bad_request(
                    "/data/payload/text",
                    "text must be a string",
                ))
            }
        };
        Action::Inbound {
            from: number("/from/phone_number")?,
            to: number("/to/0/phone_number")?,
            text,
        }
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

/// A webhook body whose `data` reads straight into its event.
#[derive(serde::Deserialize)]
struct DirectBody {
    data: Option<body::FromObject<WebhookEvent>>,
}

/// The event of a webhook body. Read straight into the event when it can
/// be, so the payload's text is parsed once; a body that cannot (not an
/// object, `data` missing or of the wrong type, a field repeated) is read
/// again by [`event_through_value`], so that its error names the field.
fn event_of(bytes: &[u8]) -> Result<WebhookEvent, ApiError> {
    if bytes.trim_ascii_start().starts_with(b"{") {
        if let Ok(DirectBody {
            data: Some(body::FromObject(event)),
        }) = serde_json::from_slice(bytes)
        {
            return Ok(event);
        }
    }
    event_through_value(bytes)
}

/// The event of a webhook body read through a `Value`, each error naming
/// its field.
fn event_through_value(bytes: &[u8]) -> Result<WebhookEvent, ApiError> {
    let b: WebhookBody = body::json(bytes)?;
    match b.data {
        None => Err(ApiError::missing("/data")),
        Some(data) => body::object_at(data, "/data"),
    }
}

/// What an event asks of the engine.
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

    /// What a reading made of a body, as text (its fields, or the error),
    /// for comparing the two ways of reading it.
    fn shown(event: Result<WebhookEvent, ApiError>) -> String {
        match event {
            Ok(e) => format!("{:?} {:?} {:?}", e.event_type, e.id, e.payload),
            Err(e) => format!("error {:?}", e.envelope()),
        }
    }

    fn read(body: &str) -> String {
        shown(event_of(body.as_bytes()))
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
        assert!(read(event).starts_with("Some(\"message.finalized\") Some(\"e1\")"));
        assert!(read(r#"{"data":["message.finalized","e1",{}]}"#).contains("must be an object"));
    }

    #[test]
    fn outcomes_from_payloads() {
        let p = |status: &str, errors: Value| json!({"to": [{"status": status}], "errors": errors});
        assert_eq!(
            outcome(&p("delivered", json!([]))),
            Some(DeliveryOutcome {
                delivered: true,
                spam: false
            })
        );
        assert_eq!(
            outcome(&p("expired", json!([]))),
            Some(DeliveryOutcome {
                delivered: false,
                spam: false
            })
        );
        assert_eq!(
            outcome(&p("delivery_failed", json!([{"code": "40002"}]))),
            Some(DeliveryOutcome {
                delivered: false,
                spam: true
            })
        );
        assert_eq!(
            outcome(&p("sending_failed", json!([{"code": 40003}]))),
            Some(DeliveryOutcome {
                delivered: false,
                spam: true
            })
        );
        assert_eq!(outcome(&p("sent", json!([]))), None);
    }
}
