//! The records the API returns, as Rust types: each handler builds one and
//! serde writes it; the same types describe the responses in
//! `/v2/openapi.json` (`JsonSchema`). Fields of the hosted service that
//! numpool does not use keep values its published schema allows.

use schemars::JsonSchema;
use serde::Serialize;

use crate::clock::Rfc3339;
use crate::PhoneNumber;
use crate::PoolSettings;
use crate::ProfileId;
use crate::Selection;
use crate::StickyMapping;
use crate::Timestamp;
use crate::{NumberStatus, OptOutRecord, ProfileRecord};

/// `{"data": ...}`: the envelope of every success.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "{T}Reply")]
pub(super) struct Data<T> {
    /// The record.
    pub data: T,
}

/// `{"data": [...], "meta": {...}}`: one page of a listing.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "{T}List")]
pub(super) struct List<T> {
    /// The page's records.
    pub data: Vec<T>,
    /// Where the page is.
    pub meta: PageMeta,
}

/// The `meta` of a page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub(super) struct PageMeta {
    /// This page (from 1).
    pub page_number: usize,
    /// Records a page.
    pub page_size: usize,
    /// Pages in all (at least 1).
    pub total_pages: usize,
    /// Records in all.
    pub total_results: usize,
    /// Listings paged by cursor (extension): the `page[after]` of the next
    /// page, `null` on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_after: Option<Option<String>>,
}

/// A field of the hosted service numpool does not use: always `null`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(super) struct Unused;

impl JsonSchema for Unused {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Unused".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "null" })
    }
}

/// A recipient's opt-out (extension).
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct OptOut {
    /// `"opt_out"`.
    #[schemars(extend("const" = "opt_out"))]
    pub record_type: &'static str,
    /// The recipient.
    pub to: String,
    /// The keyword they texted (`STOP`...); `null` when opted out through
    /// the API.
    pub keyword: Option<&'static str>,
    /// The pool number they texted it to.
    pub via: Option<String>,
    /// When.
    #[schemars(extend("format" = "date-time"))]
    pub created_at: String,
}

/// A recipient's opt-out.
pub(super) fn opt_out(o: &OptOutRecord) -> OptOut {
    OptOut {
        record_type: "opt_out",
        to: o.to.to_string(),
        keyword: o.keyword.map(|k| k.as_str()),
        via: o.via.map(|n| n.to_string()),
        created_at: o.created_at.to_rfc3339(),
    }
}

/// A messaging profile.
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct Profile {
    /// `"messaging_profile"`.
    #[schemars(extend("const" = "messaging_profile"))]
    pub record_type: &'static str,
    /// Its UUID.
    #[schemars(extend("format" = "uuid"))]
    pub id: String,
    /// Its name.
    pub name: String,
    /// Whether it sends.
    pub enabled: bool,
    /// ISO 3166-1 alpha-2 codes it may send to, or `["*"]`.
    pub whitelisted_destinations: Vec<String>,
    /// The selection rules, complete; `null` while the pool is off.
    pub number_pool_settings: Option<PoolSettings>,
    /// Extension: the longest queue a send may join, in seconds.
    pub max_queue_seconds: f64,
    /// Extension: sends a day, or `null` for no limit.
    pub daily_message_limit: Option<u32>,
    /// Extension: new recipients a sender takes a day, or `null`.
    pub new_recipients_per_sender_per_day: Option<u32>,
    /// Extension: the IANA zone whose midnight starts a new day.
    pub daily_reset_time_zone: String,
    /// Extension: recipients who opted out of it.
    pub opt_out_count: usize,
    /// Where its webhooks go (`""` when unset).
    pub webhook_url: String,
    /// Where they go when `webhook_url` fails (`""` when unset).
    pub webhook_failover_url: String,
    /// `"2"`.
    #[schemars(extend("enum" = ["1", "2", "2010-04-01"]))]
    pub webhook_api_version: &'static str,
    /// Not used: `null`.
    pub url_shortener_settings: Unused,
    /// Not used: `null`.
    pub alpha_sender: Unused,
    /// Not used: `false`.
    pub daily_spend_limit_enabled: bool,
    /// Not used: `false`.
    pub mms_fall_back_to_sms: bool,
    /// Not used: `false`.
    pub mms_transcoding: bool,
    /// Not used: `false`.
    pub mobile_only: bool,
    /// Not used: `false`.
    pub smart_encoding: bool,
    /// When it was made.
    #[schemars(extend("format" = "date-time"))]
    pub created_at: String,
    /// When it last changed.
    #[schemars(extend("format" = "date-time"))]
    pub updated_at: String,
}

/// A messaging profile with its opt-out count.
pub(super) fn profile(p: &ProfileRecord, opt_out_count: usize) -> Profile {
    Profile {
        record_type: "messaging_profile",
        id: p.id.to_string(),
        name: p.name.clone(),
        enabled: p.enabled,
        whitelisted_destinations: p.whitelisted_destinations.clone(),
        number_pool_settings: p.number_pool_settings.clone(),
        max_queue_seconds: p.capacity.max_queue_seconds,
        daily_message_limit: p.capacity.daily_message_limit,
        new_recipients_per_sender_per_day: p.capacity.new_recipients_per_sender_per_day,
        daily_reset_time_zone: p.capacity.daily_reset_time_zone.clone(),
        opt_out_count,
        webhook_url: p.webhook_url.clone().unwrap_or_default(),
        webhook_failover_url: p.webhook_failover_url.clone().unwrap_or_default(),
        webhook_api_version: "2",
        url_shortener_settings: Unused,
        alpha_sender: Unused,
        daily_spend_limit_enabled: false,
        mms_fall_back_to_sms: false,
        mms_transcoding: false,
        mobile_only: false,
        smart_encoding: false,
        created_at: p.created_at.to_rfc3339(),
        updated_at: p.updated_at.to_rfc3339(),
    }
}

/// A number's delivery health over the health window.
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct Health {
    /// Delivered / finalized (1 with no outcomes).
    pub success_ratio: f64,
    /// Spam-blocked / finalized (0 with no outcomes).
    pub spam_ratio: f64,
    /// Finalized outcomes in the window.
    pub message_count: u32,
    /// Always 0.
    pub inbound_outbound_ratio: f64,
}

/// Extension: whether a new pick may choose a number now.
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct Eligible {
    /// Whether it may.
    pub eligible: bool,
    /// If not, why.
    pub reason: Option<&'static str>,
}

/// Extension: a pool number's rate, queue and today's counts.
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct SenderCapacity {
    /// The rate in effect.
    pub messages_per_second: f64,
    /// How long a message given to it now would wait, in seconds.
    pub wait_seconds: f64,
    /// Messages today (the day of its profile's time zone).
    pub messages_today: u32,
    /// New recipients today.
    pub new_recipients_today: u32,
}

/// `features`: not used, `{"sms": null, "mms": null}`.
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct Features {
    /// `null`.
    pub sms: Unused,
    /// `null`.
    pub mms: Unused,
}

/// A phone number with its messaging settings.
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct Number {
    /// `"messaging_settings"` (current paths) or `"messaging_phone_number"`
    /// (older paths).
    #[schemars(extend("enum" = ["messaging_settings", "messaging_phone_number"]))]
    pub record_type: &'static str,
    /// Its numeric id, stable for the life of the record.
    pub id: String,
    /// E.164, or a short code's digits.
    pub phone_number: String,
    /// The profile whose pool it is in, or `null`.
    pub messaging_profile_id: Option<String>,
    /// `"longcode"`, `"tollfree"` or `"shortcode"`.
    #[serde(rename = "type")]
    #[schemars(extend("enum" = ["longcode", "tollfree", "shortcode"]))]
    pub kind: &'static str,
    /// ISO 3166-1 alpha-2, where numpool knows the number's region
    /// (absent otherwise: the published schema allows no empty code).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Z]{2}$"))]
    pub country_code: Option<String>,
    /// Delivery health.
    pub health: Health,
    /// Extension: whether a new pick may choose it now.
    pub eligible: Eligible,
    /// Extension: its own rate, or `null` for its kind's default.
    pub messages_per_second: Option<f64>,
    /// Extension: rate, queue and counts; `null` while unassigned.
    pub capacity: Option<SenderCapacity>,
    /// Extension: recipients it is the live sticky sender of (pinned
    /// mappings included); 0 while unassigned.
    pub sticky_mappings: u32,
    /// `"A2P"`.
    pub traffic_type: &'static str,
    /// `"P2P"`.
    pub messaging_product: &'static str,
    /// `["A2P"]`.
    pub eligible_messaging_products: [&'static str; 1],
    /// Not used.
    pub features: Features,
    /// First seen.
    #[schemars(extend("format" = "date-time"))]
    pub created_at: String,
    /// Last change of assignment.
    #[schemars(extend("format" = "date-time"))]
    pub updated_at: String,
}

/// A number with its messaging settings; `record_type` differs between
/// the current and the older paths.
pub(super) fn number(s: &NumberStatus, record_type: &'static str) -> Number {
    let r = &s.record;
    Number {
        record_type,
        id: r.id.to_string(),
        phone_number: r.number.to_string(),
        messaging_profile_id: r.profile.map(|p| p.to_string()),
        kind: s.kind.api_name(),
        country_code: r.number.region_code().map(|c| c.to_string()),
        health: Health {
            success_ratio: s.health.success_ratio(),
            spam_ratio: s.health.spam_ratio(),
            message_count: s.health.finalized,
            inbound_outbound_ratio: 0.0,
        },
        eligible: Eligible {
            eligible: s.eligibility.reason().is_none(),
            reason: s.eligibility.reason(),
        },
        messages_per_second: r.messages_per_second,
        capacity: s.capacity.map(|c| SenderCapacity {
            messages_per_second: c.messages_per_second,
            wait_seconds: c.wait.as_secs_f64(),
            messages_today: c.messages_today,
            new_recipients_today: c.new_recipients_today,
        }),
        sticky_mappings: s.sticky_mappings,
        traffic_type: "A2P",
        messaging_product: "P2P",
        eligible_messaging_products: ["A2P"],
        features: Features {
            sms: Unused,
            mms: Unused,
        },
        created_at: r.created_at.to_rfc3339(),
        updated_at: r.updated_at.to_rfc3339(),
    }
}

/// What removing a number from its pool would do (extension).
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct RemovalPreview {
    /// `"removal_preview"`.
    #[schemars(extend("const" = "removal_preview"))]
    pub record_type: &'static str,
    /// The number.
    pub phone_number: String,
    /// The profile it would leave, or `null` (then nothing changes).
    pub messaging_profile_id: Option<String>,
    /// Live sticky mappings to it that would be cleared, pinned included:
    /// those recipients get a new sender on their next message.
    pub mappings_cleared: u32,
    /// Of those, the pinned ones.
    pub pinned_cleared: u32,
    /// Opt-outs received through it; they belong to the profile and stay.
    pub opt_outs_kept: u32,
}

/// What removing the number of `s` from its pool would do.
pub(super) fn removal_preview(s: &NumberStatus) -> RemovalPreview {
    let p = s.removal_preview();
    RemovalPreview {
        record_type: "removal_preview",
        phone_number: s.record.number.to_string(),
        messaging_profile_id: s.record.profile.map(|p| p.to_string()),
        mappings_cleared: p.mappings_cleared,
        pinned_cleared: p.pinned_cleared,
        opt_outs_kept: p.opt_outs_kept,
    }
}

/// What a webhook event did.
#[derive(Debug, Default, Serialize, JsonSchema)]
pub(super) struct WebhookReply {
    /// Always `true`: the event was read.
    pub accepted: bool,
    /// Whether it counted (a delivery outcome or an inbound text of a
    /// known number, the first time its id is seen).
    pub counted: bool,
    /// `true` when its id was counted before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<bool>,
    /// What an inbound text did: `"opted_out"` or `"opted_in"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["opted_out", "opted_in"]))]
    pub effect: Option<&'static str>,
}

/// A sticky mapping (extension).
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct Mapping {
    /// `"sticky_mapping"`.
    #[schemars(extend("const" = "sticky_mapping"))]
    pub record_type: &'static str,
    /// The recipient.
    #[serde(serialize_with = "as_text")]
    #[schemars(with = "String")]
    pub to: PhoneNumber,
    /// The sender it sticks to.
    #[serde(serialize_with = "as_text")]
    #[schemars(with = "String")]
    pub from: PhoneNumber,
    /// When the mapping was made.
    #[serde(serialize_with = "as_text")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub created_at: Rfc3339,
    /// The last send through it.
    #[serde(serialize_with = "as_text")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub last_used_at: Rfc3339,
    /// When it expires without another send; `null` when pinned.
    #[serde(serialize_with = "maybe_as_text")]
    #[schemars(with = "Option<String>")]
    pub expires_at: Option<Rfc3339>,
    /// Whether it was pinned (never expires).
    pub pinned: bool,
}

/// A sticky mapping; its numbers and times are written as text while the
/// JSON is (an export writes millions).
pub(super) fn mapping(m: &StickyMapping) -> Mapping {
    let ts = |secs: u32| Timestamp::from_secs(u64::from(secs)).rfc3339();
    Mapping {
        record_type: "sticky_mapping",
        to: m.to,
        from: m.from,
        created_at: ts(m.created_at),
        last_used_at: ts(m.last_used_at),
        expires_at: m.expires_at.map(ts),
        pinned: m.pinned,
    }
}

/// What the message record says about one outbound message.
pub(super) struct MessageView<'a> {
    pub profile: ProfileId,
    pub from: PhoneNumber,
    pub to: PhoneNumber,
    pub text: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub media_urls: &'a [String],
    pub mms: bool,
    pub encoding: super::encoding::Encoded,
    pub webhook_url: Option<&'a str>,
    pub webhook_failover_url: Option<&'a str>,
    pub selection: &'a Selection,
    pub now: Timestamp,
}

/// Extension: how a message's sender was chosen.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub(super) struct Selected {
    /// The rule that chose it.
    #[schemars(extend("enum" = ["sticky", "geomatch", "weighted", "explicit"]))]
    reason: &'static str,
    /// What happened to the recipient's sticky mapping.
    #[schemars(extend("enum" = ["reused", "created", "none"]))]
    mapping: &'static str,
    /// When the sender's queue lets the message go.
    #[serde(serialize_with = "as_text")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    send_at: Rfc3339,
}

/// The sender or a recipient of a message.
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct Party {
    /// The number.
    #[serde(serialize_with = "as_text")]
    #[schemars(with = "String")]
    phone_number: PhoneNumber,
    /// A recipient's status: `"queued"` (numpool routes, it delivers
    /// nothing).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["queued"]))]
    status: Option<&'static str>,
    /// Not known: `""`.
    carrier: &'static str,
    /// `"Wireless"` for NANP numbers and short codes, else `""`.
    #[schemars(extend("enum" = ["Wireless", ""]))]
    line_type: &'static str,
}

/// A medium of an MMS: its URL as given.
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct Media<'a> {
    /// The URL.
    url: &'a str,
    /// Not known: `null`.
    content_type: Unused,
    /// Not known: `null`.
    sha256: Unused,
    /// Not known: `null`.
    size: Unused,
}

/// A message record, serialized straight from borrowed fields (this is the
/// hot response of the API).
// Its numbers, ids and times are values, written as text while the JSON
// is written (no `String` of their own).
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct Message<'a> {
    /// `"message"`.
    #[schemars(extend("const" = "message"))]
    record_type: &'static str,
    /// `"outbound"`.
    #[schemars(extend("const" = "outbound"))]
    direction: &'static str,
    /// A new UUID.
    #[schemars(with = "String", extend("format" = "uuid"))]
    id: uuid::Uuid,
    /// `"SMS"` or `"MMS"`.
    #[serde(rename = "type")]
    #[schemars(extend("enum" = ["SMS", "MMS"]))]
    kind: &'static str,
    /// The profile whose pool (or number) sent it.
    #[schemars(with = "String")]
    messaging_profile_id: ProfileId,
    /// The sender chosen.
    from: Party,
    /// The recipient.
    to: [Party; 1],
    /// Always `[]`.
    cc: [Unused; 0],
    /// The text (`""` for an MMS without one).
    text: &'a str,
    /// The subject, or `null`.
    subject: Option<&'a str>,
    /// The media of an MMS.
    media: Vec<Media<'a>>,
    /// `"GSM-7"` or `"UCS-2"`.
    #[schemars(extend("enum" = ["GSM-7", "UCS-2"]))]
    encoding: &'static str,
    /// SMS parts (1 for an MMS).
    #[schemars(range(min = 1, max = 10))]
    parts: u32,
    /// Characters in the text.
    num_chars: u32,
    /// Always `[]`.
    tags: [Unused; 0],
    /// Always `[]`.
    errors: [Unused; 0],
    /// The message's webhook URL as given (`""` when none).
    webhook_url: &'a str,
    /// Its failover URL as given (`""` when none).
    webhook_failover_url: &'a str,
    /// When numpool took it.
    #[serde(serialize_with = "as_text")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    received_at: Rfc3339,
    /// Not sent by numpool: `null` (the hosted service's own example).
    sent_at: Unused,
    /// `null`.
    completed_at: Unused,
    /// Four hours after `received_at`.
    #[serde(serialize_with = "as_text")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    valid_until: Rfc3339,
    /// Extension: the sender's queue wait, in seconds.
    wait_seconds: f64,
    /// Extension: how the sender was chosen.
    selection: Selected,
}

/// The reply to a send: its message record (status `queued`: numpool
/// routes, it does not deliver) in the `{"data": ...}` envelope, as JSON
/// text, written in one pass into one buffer.
pub(super) fn message_reply_json(m: &MessageView<'_>) -> String {
    // Room for the record and what the request gave it (escapes aside):
    // one allocation.
    let given = [m.text, m.subject, m.webhook_url, m.webhook_failover_url]
        .iter()
        .map(|s| s.map_or(0, str::len))
        .sum::<usize>()
        + m.media_urls.iter().map(|u| u.len() + 64).sum::<usize>();
    let mut json = Vec::with_capacity(1024 + given);
    let reply = Data {
        data: message_record(m),
    };
    if serde_json::to_writer(&mut json, &reply).is_err() {
        return String::new();
    }
    String::from_utf8(json).unwrap_or_default()
}

/// Serializes a field as the text its `Display` writes, straight into the
/// output: no `String` of its own (the numbers and times of a send's
/// answer and of a mapping).
fn as_text<T: std::fmt::Display, S: serde::Serializer>(
    value: &T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// [`as_text`], or `null`.
fn maybe_as_text<T: std::fmt::Display, S: serde::Serializer>(
    value: &Option<T>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => serializer.collect_str(value),
        None => serializer.serialize_none(),
    }
}

fn message_record<'a>(m: &'a MessageView<'a>) -> Message<'a> {
    let line_type = |n: PhoneNumber| {
        if n.is_nanp() || n.is_short_code() {
            "Wireless"
        } else {
            ""
        }
    };
    Message {
        record_type: "message",
        direction: "outbound",
        id: uuid::Uuid::new_v4(),
        kind: if m.mms { "MMS" } else { "SMS" },
        messaging_profile_id: m.profile,
        from: Party {
            phone_number: m.from,
            status: None,
            carrier: "",
            line_type: line_type(m.from),
        },
        to: [Party {
            phone_number: m.to,
            status: Some("queued"),
            carrier: "",
            line_type: line_type(m.to),
        }],
        cc: [],
        text: m.text.unwrap_or_default(),
        subject: m.subject,
        media: m
            .media_urls
            .iter()
            .map(|u| Media {
                url: u,
                content_type: Unused,
                sha256: Unused,
                size: Unused,
            })
            .collect(),
        encoding: m.encoding.name,
        parts: m.encoding.parts,
        num_chars: m.encoding.chars,
        tags: [],
        errors: [],
        webhook_url: m.webhook_url.unwrap_or_default(),
        webhook_failover_url: m.webhook_failover_url.unwrap_or_default(),
        received_at: m.now.rfc3339(),
        sent_at: Unused,
        completed_at: Unused,
        valid_until: m
            .now
            .after(std::time::Duration::from_secs(4 * 3600))
            .rfc3339(),
        wait_seconds: m.selection.wait.as_secs_f64(),
        selection: Selected {
            reason: m.selection.reason.api_name(),
            mapping: m.selection.mapping.api_name(),
            send_at: m.selection.send_at.rfc3339(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mapping, as exports and the mapping routes write it: numbers and
    /// times written as text, `expires_at` null when pinned.
    #[test]
    fn a_mapping_is_written_with_its_numbers_and_times_as_text() {
        let number = |s| PhoneNumber::parse_e164(s).unwrap();
        let m = StickyMapping {
            to: number("+14155550100"),
            from: number("+13125550001"),
            created_at: 1_682_899_200,
            last_used_at: 1_682_944_496,
            expires_at: Some(1_683_635_696),
            pinned: false,
        };
        assert_eq!(
            serde_json::to_string(&mapping(&m)).unwrap(),
            r#"{"record_type":"sticky_mapping","to":"+14155550100","from":"+13125550001","created_at":"2023-05-01T00:00:00.000Z","last_used_at":"2023-05-01T12:34:56.000Z","expires_at":"2023-05-09T12:34:56.000Z","pinned":false}"#
        );
        let pinned = StickyMapping {
            expires_at: None,
            pinned: true,
            ..m
        };
        let json: serde_json::Value = serde_json::to_value(mapping(&pinned)).unwrap();
        assert_eq!(
            (&json["expires_at"], &json["pinned"]),
            (&serde_json::Value::Null, &serde_json::Value::Bool(true))
        );
        // The schema says what is written: strings (times as date-times),
        // and expires_at may be null.
        let schema = serde_json::to_value(schemars::schema_for!(Mapping)).unwrap();
        let field = |name: &str| schema["properties"][name].clone();
        assert_eq!(field("to")["type"], "string");
        assert_eq!(field("created_at")["format"], "date-time");
        assert_eq!(
            field("expires_at")["type"],
            serde_json::json!(["string", "null"])
        );
    }

    /// A send's reply, written in one pass: the envelope and each field
    /// written from its value's `Display` read back as the text it stands for.
    #[test]
    fn a_send_reply_holds_its_record_in_the_envelope() {
        let number = |s| PhoneNumber::parse_e164(s).unwrap();
        let selection = Selection {
            sender: number("+13125550001"),
            reason: crate::Reason::Sticky,
            mapping: crate::MappingOutcome::Reused,
            wait: std::time::Duration::from_millis(1500),
            send_at: Timestamp::from_millis(1_800_000_001_500),
            touch_due: false,
            starts_block: false,
        };
        let profile = ProfileId::new_v4();
        let media = vec!["https://example.com/a.png".to_string()];
        let view = MessageView {
            profile,
            from: selection.sender,
            to: number("+442071838750"),
            text: Some("a \"quoted\" text"),
            subject: None,
            media_urls: &media,
            mms: true,
            encoding: super::super::encoding::Encoded {
                name: "GSM-7",
                parts: 1,
                chars: 17,
            },
            webhook_url: None,
            webhook_failover_url: None,
            selection: &selection,
            now: Timestamp::from_millis(1_800_000_000_000),
        };
        let reply: serde_json::Value = serde_json::from_str(&message_reply_json(&view)).unwrap();
        let m = &reply["data"];
        assert_eq!(m["record_type"], "message");
        assert!(uuid::Uuid::parse_str(m["id"].as_str().unwrap()).is_ok());
        assert_eq!(m["messaging_profile_id"], profile.to_string());
        assert_eq!(m["type"], "MMS");
        assert_eq!(m["from"]["phone_number"], "+13125550001");
        assert_eq!(m["to"][0]["phone_number"], "+442071838750");
        assert_eq!(m["to"][0]["line_type"], "");
        assert_eq!(m["text"], "a \"quoted\" text");
        assert_eq!(m["media"][0]["url"], "https://example.com/a.png");
        assert_eq!(m["received_at"], "2027-01-15T08:00:00.000Z");
        assert_eq!(m["valid_until"], "2027-01-15T12:00:00.000Z");
        assert_eq!(m["wait_seconds"], 1.5);
        assert_eq!(m["selection"]["send_at"], "2027-01-15T08:00:01.500Z");
        assert_eq!(m["selection"]["reason"], "sticky");
    }
}
