//! The JSON the API returns: profiles, numbers, messages, mappings.

use serde_json::{json, Value};

use crate::PhoneNumber;
use crate::PoolSettings;
use crate::ProfileId;
use crate::Selection;
use crate::StickyMapping;
use crate::Timestamp;
use crate::{NumberStatus, OptOutRecord, ProfileRecord};

/// The complete `number_pool_settings` object (or null when the pool is off).
pub fn settings(s: Option<&PoolSettings>) -> Value {
    s.map_or(Value::Null, |s| {
        serde_json::to_value(s).expect("settings serialize")
    })
}

/// A recipient's opt-out (extension).
pub fn opt_out(o: &OptOutRecord) -> Value {
    json!({
        "record_type": "opt_out",
        "to": o.to.to_string(),
        "keyword": o.keyword.map(|k| k.as_str()),
        "via": o.via.map(|n| n.to_string()),
        "created_at": o.created_at.to_rfc3339(),
    })
}

/// A messaging profile with its opt-out count, the fields numpool does not
/// use at neutral values.
pub fn profile(p: &ProfileRecord, opt_out_count: usize) -> Value {
    json!({
        "record_type": "messaging_profile",
        "id": p.id.to_string(),
        "name": p.name,
        "enabled": p.enabled,
        "whitelisted_destinations": p.whitelisted_destinations,
        "number_pool_settings": settings(p.number_pool_settings.as_ref()),
        "max_queue_seconds": p.capacity.max_queue_seconds,
        "daily_message_limit": p.capacity.daily_message_limit,
        "new_recipients_per_sender_per_day": p.capacity.new_recipients_per_sender_per_day,
        "daily_reset_time_zone": p.capacity.daily_reset_time_zone,
        "opt_out_count": opt_out_count,
        "webhook_url": p.webhook_url.clone().unwrap_or_default(),
        "webhook_failover_url": p.webhook_failover_url.clone().unwrap_or_default(),
        "webhook_api_version": "2",
        "url_shortener_settings": null,
        "alpha_sender": null,
        "daily_spend_limit_enabled": false,
        "mms_fall_back_to_sms": false,
        "mms_transcoding": false,
        "mobile_only": false,
        "smart_encoding": false,
        "created_at": p.created_at.to_rfc3339(),
        "updated_at": p.updated_at.to_rfc3339(),
    })
}

/// A number with its messaging settings; `record_type` differs between
/// the current and the older paths.
pub fn number(s: &NumberStatus, record_type: &str) -> Value {
    let r = &s.record;
    let messages = s.health.finalized;
    let mut record = json!({
        "record_type": record_type,
        "id": r.id.to_string(),
        "phone_number": r.number.to_string(),
        "messaging_profile_id": r.profile.map(|p| p.to_string()),
        "type": s.kind.api_name(),
        "health": {
            "success_ratio": s.health.success_ratio(),
            "spam_ratio": s.health.spam_ratio(),
            "message_count": messages,
            "inbound_outbound_ratio": 0.0,
        },
        "eligible": {
            "eligible": s.eligibility.reason().is_none(),
            "reason": s.eligibility.reason(),
        },
        "messages_per_second": r.messages_per_second,
        "capacity": s.capacity.map(|c| json!({
            "messages_per_second": c.messages_per_second,
            "wait_seconds": c.wait.as_secs_f64(),
            "messages_today": c.messages_today,
            "new_recipients_today": c.new_recipients_today,
        })),
        "traffic_type": "A2P",
        "messaging_product": "P2P",
        "eligible_messaging_products": ["A2P"],
        "features": { "sms": null, "mms": null },
        "created_at": r.created_at.to_rfc3339(),
        "updated_at": r.updated_at.to_rfc3339(),
    });
    // ISO 3166-1 alpha-2 where numpool knows the region; absent otherwise
    // (the published schema allows no empty code).
    if let Some(region) = r.number.region_code() {
        record["country_code"] = json!(region.to_string());
    }
    record
}

/// A sticky mapping (extension).
pub fn mapping(m: &StickyMapping) -> Value {
    let ts = |secs: u32| Timestamp::from_secs(u64::from(secs)).to_rfc3339();
    json!({
        "record_type": "sticky_mapping",
        "to": m.to.to_string(),
        "from": m.from.to_string(),
        "created_at": ts(m.created_at),
        "last_used_at": ts(m.last_used_at),
        "expires_at": m.expires_at.map(ts),
        "pinned": m.pinned,
    })
}

/// What the message record says about one outbound message.
pub struct MessageView<'a> {
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

/// The `selection` extension field of a message.
#[derive(Debug, Clone, serde::Serialize)]
struct Selected {
    reason: &'static str,
    mapping: &'static str,
    send_at: String,
}

#[derive(serde::Serialize)]
struct Party {
    phone_number: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    carrier: &'static str,
    line_type: &'static str,
}

#[derive(serde::Serialize)]
struct Media<'a> {
    url: &'a str,
    content_type: Option<()>,
    sha256: Option<()>,
    size: Option<()>,
}

/// The message record, serialized straight from borrowed fields (this is
/// the hot response of the API).
#[derive(serde::Serialize)]
struct MessageRecord<'a> {
    record_type: &'static str,
    direction: &'static str,
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    messaging_profile_id: String,
    from: Party,
    to: [Party; 1],
    cc: [(); 0],
    text: &'a str,
    subject: Option<&'a str>,
    media: Vec<Media<'a>>,
    encoding: &'static str,
    parts: u32,
    num_chars: u32,
    tags: [(); 0],
    errors: [(); 0],
    webhook_url: &'a str,
    webhook_failover_url: &'a str,
    received_at: String,
    sent_at: Option<()>,
    completed_at: Option<()>,
    valid_until: String,
    wait_seconds: f64,
    selection: Selected,
}

/// A message record (status `queued`: numpool routes, it does not deliver),
/// as JSON text, without building a `Value` first.
pub fn message_json(m: &MessageView<'_>) -> String {
    serde_json::to_string(&message_record(m)).unwrap_or_default()
}

fn message_record<'a>(m: &'a MessageView<'a>) -> MessageRecord<'a> {
    let line_type = |n: PhoneNumber| {
        if n.is_nanp() || n.is_short_code() {
            "Wireless"
        } else {
            ""
        }
    };
    MessageRecord {
        record_type: "message",
        direction: "outbound",
        id: uuid::Uuid::new_v4().to_string(),
        kind: if m.mms { "MMS" } else { "SMS" },
        messaging_profile_id: m.profile.to_string(),
        from: Party {
            phone_number: m.from.to_string(),
            status: None,
            carrier: "",
            line_type: line_type(m.from),
        },
        to: [Party {
            phone_number: m.to.to_string(),
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
                content_type: None,
                sha256: None,
                size: None,
            })
            .collect(),
        encoding: m.encoding.name,
        parts: m.encoding.parts,
        num_chars: m.encoding.chars,
        tags: [],
        errors: [],
        webhook_url: m.webhook_url.unwrap_or_default(),
        webhook_failover_url: m.webhook_failover_url.unwrap_or_default(),
        received_at: m.now.to_rfc3339(),
        sent_at: None,
        completed_at: None,
        valid_until: m
            .now
            .after(std::time::Duration::from_secs(4 * 3600))
            .to_rfc3339(),
        wait_seconds: m.selection.wait.as_secs_f64(),
        selection: Selected {
            reason: m.selection.reason.api_name(),
            mapping: m.selection.mapping.api_name(),
            send_at: m.selection.send_at.to_rfc3339(),
        },
    }
}
