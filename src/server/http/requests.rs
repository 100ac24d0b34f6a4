//! The request bodies of the API as Rust types. A handler reads its body
//! into one of these ([`super::body::json`]), then checks the values; the
//! same types describe the bodies in `/v2/openapi.json` (`JsonSchema`).
//!
//! Fields are read leniently where the hosted service is (unknown
//! top-level fields are ignored, `null` counts as absent unless a field
//! gives it a meaning) and strictly where a mistake would change routing
//! (`number_pool_settings`: [`crate::SettingsPatch`]).

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use serde_json::{Number, Value};

/// A field a `PATCH` may set, clear with `null`, or leave out.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) enum Patch<T> {
    /// Not in the body: keep what is there.
    #[default]
    Absent,
    /// `null`: back to the default (or unset).
    Null,
    /// A value.
    Value(T),
}

impl<T> Patch<T> {
    /// `None` absent, `Some(None)` null, `Some(Some(v))` a value.
    pub(super) fn into_option(self) -> Option<Option<T>> {
        match self {
            Patch::Absent => None,
            Patch::Null => Some(None),
            Patch::Value(v) => Some(Some(v)),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Option::<T>::deserialize(d)?.map_or(Patch::Null, Patch::Value))
    }
}

impl<T: JsonSchema> JsonSchema for Patch<T> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        Option::<T>::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        Option::<T>::json_schema(generator)
    }
}

/// Any JSON value whose objects never repeat a key (serde_json's `Value`
/// keeps the last of two): `number_pool_settings` changes selection, so a
/// key given twice is refused rather than half read.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct DistinctKeys(pub Value);

impl<'de> Deserialize<'de> for DistinctKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = DistinctKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<DistinctKeys, A::Error> {
                let mut out = serde_json::Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    if out.contains_key(&key) {
                        return Err(serde::de::Error::custom(format_args!(
                            "duplicate field `{key}`"
                        )));
                    }
                    let value: DistinctKeys = map.next_value()?;
                    out.insert(key, value.0);
                }
                Ok(DistinctKeys(Value::Object(out)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<DistinctKeys, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element::<DistinctKeys>()? {
                    out.push(item.0);
                }
                Ok(DistinctKeys(Value::Array(out)))
            }
            fn visit_bool<E>(self, v: bool) -> Result<DistinctKeys, E> {
                Ok(DistinctKeys(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<DistinctKeys, E> {
                Ok(DistinctKeys(Value::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<DistinctKeys, E> {
                Ok(DistinctKeys(Value::from(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<DistinctKeys, E> {
                Ok(DistinctKeys(Value::from(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<DistinctKeys, E> {
                Ok(DistinctKeys(Value::from(v)))
            }
            fn visit_unit<E>(self) -> Result<DistinctKeys, E> {
                Ok(DistinctKeys(Value::Null))
            }
            fn visit_none<E>(self) -> Result<DistinctKeys, E> {
                Ok(DistinctKeys(Value::Null))
            }
        }
        d.deserialize_any(Visit)
    }
}

/// The body of `POST /v2/messaging_profiles` (`name` and
/// `whitelisted_destinations` required) and of `PATCH` on a profile (every
/// field optional; `number_pool_settings` merges field by field).
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub(super) struct ProfileBody {
    /// A name for people; not empty.
    #[schemars(length(min = 1))]
    pub name: Option<String>,
    /// A disabled profile refuses sends (422 40311).
    pub enabled: Option<bool>,
    /// ISO 3166-1 alpha-2 codes of the regions it may send to, or `["*"]`.
    #[schemars(inner(regex(pattern = r"^([A-Z]{2}|\*)$")))]
    pub whitelisted_destinations: Option<Vec<String>>,
    /// Where its webhooks go; `null` unsets it (on `PATCH`).
    #[serde(default)]
    pub webhook_url: Patch<String>,
    /// Where its webhooks go when `webhook_url` fails; `null` unsets it.
    #[serde(default)]
    pub webhook_failover_url: Patch<String>,
    /// The selection rules: an object merges into the current settings
    /// (an unknown key is refused), `null` turns the pool off.
    #[serde(default)]
    #[schemars(with = "Option<crate::SettingsPatch>")]
    pub number_pool_settings: Patch<DistinctKeys>,
    /// Extension: the longest queue a send may join, in seconds; `null`
    /// puts back the default.
    #[serde(default)]
    #[schemars(extend("exclusiveMinimum" = 0, "maximum" = 2_592_000))]
    pub max_queue_seconds: Patch<f64>,
    /// Extension: sends a day; `null` for no limit.
    #[serde(default)]
    #[schemars(with = "Option<u32>", range(min = 1))]
    pub daily_message_limit: Patch<Number>,
    /// Extension: new recipients a sender takes a day; `null` for no limit.
    #[serde(default)]
    #[schemars(with = "Option<u32>", range(min = 1))]
    pub new_recipients_per_sender_per_day: Patch<Number>,
    /// Extension: the IANA time zone whose midnight starts a new day;
    /// `null` puts back `UTC`.
    #[serde(default)]
    pub daily_reset_time_zone: Patch<String>,
}

/// The body of `POST /v2/messaging_profiles`: a [`ProfileBody`] whose
/// `name` and `whitelisted_destinations` are required.
#[derive(Debug, Default, Deserialize)]
#[serde(transparent)]
pub(super) struct NewProfileBody(pub ProfileBody);

impl JsonSchema for NewProfileBody {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "NewProfileBody".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut schema = ProfileBody::json_schema(generator);
        let required = ["name", "whitelisted_destinations"];
        if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
            for field in required {
                if let Some(Value::Array(types)) =
                    properties.get_mut(field).and_then(|p| p.get_mut("type"))
                {
                    types.retain(|t| t != "null");
                }
            }
        }
        schema.insert("required".into(), serde_json::json!(required));
        schema.insert(
            "description".into(),
            "The body of `POST /v2/messaging_profiles`.".into(),
        );
        schema
    }
}

/// The body of `PATCH /v2/phone_numbers/{id}/messaging` (and the older
/// path).
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub(super) struct NumberBody {
    /// A profile id assigns the number (moving it if another profile has
    /// it), `""` unassigns it; absent or `null` keeps.
    pub messaging_profile_id: Option<String>,
    /// Extension: the number's own rate (messages a second, above 0 and at
    /// most 100,000); `null` for its kind's default.
    #[serde(default)]
    pub messages_per_second: Patch<f64>,
}

/// The body of `POST /v2/messages/number_pool` and `POST /v2/messages`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub(super) struct SendBody {
    /// The recipient, E.164.
    #[schemars(required, regex(pattern = r"^\+[1-9][0-9]{7,14}$"))]
    pub to: Option<String>,
    /// The profile whose pool picks the sender (required unless `from` is
    /// given to `/v2/messages`).
    #[schemars(extend("format" = "uuid"))]
    pub messaging_profile_id: Option<String>,
    /// `/v2/messages` only: the sender to use as given (it must be in a
    /// pool).
    pub from: Option<String>,
    /// The text (required for an SMS); an SMS takes at most 10 parts.
    pub text: Option<String>,
    /// The subject of an MMS.
    pub subject: Option<String>,
    /// Media of an MMS (required for an MMS).
    pub media_urls: Option<Vec<String>>,
    /// `SMS` or `MMS` (default: `MMS` when `media_urls` is given).
    #[serde(rename = "type")]
    #[schemars(extend("enum" = ["SMS", "MMS", null]))]
    pub kind: Option<String>,
    /// `auto`, `gsm7` or `ucs2`.
    #[schemars(extend("enum" = ["auto", "gsm7", "ucs2", null]))]
    pub encoding: Option<String>,
    /// Where this message's webhooks go.
    pub webhook_url: Option<String>,
    /// Where they go when `webhook_url` fails.
    pub webhook_failover_url: Option<String>,
}

/// The body of `PUT .../sticky_mappings/{to}` (extension).
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub(super) struct PinBody {
    /// The sender to pin the recipient to: a number of the profile.
    #[schemars(required)]
    pub from: Option<String>,
}

/// A webhook event, as the hosted service posts it: numpool reads
/// `message.finalized` (a delivery outcome) and `message.received` (an
/// inbound text, for opt-out keywords); other types are accepted and not
/// counted.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub(super) struct WebhookBody {
    /// The event: an object (read into [`WebhookEvent`] by
    /// [`super::body::object_at`], so an array is refused).
    #[schemars(required, with = "WebhookEvent")]
    pub data: Option<Value>,
}

/// The `data` of a webhook event.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub(super) struct WebhookEvent {
    /// `message.finalized`, `message.received`, or another type (ignored).
    #[schemars(required)]
    pub event_type: Option<String>,
    /// The event's id: an event counts once per id and type.
    #[schemars(required, length(max = 255))]
    pub id: Option<String>,
    /// The message: `from.phone_number`, `to[0].phone_number` and `status`,
    /// `errors[].code`, `text`.
    pub payload: Option<serde_json::Map<String, Value>>,
}

/// The body of `POST /cluster/switchover` (may be empty).
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub(super) struct SwitchoverBody {
    /// The member to hand leadership to (its advertised URL); absent: the
    /// most caught-up standby.
    pub to: Option<String>,
}
