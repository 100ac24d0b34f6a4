//! `number_pool_settings`: defaults, validation, the PATCH merge, and JSON.
//!
//! Every field is declared once, in the `pool_settings!` invocation below;
//! the settings struct, the patch, the merge, validation, JSON reading and
//! the list of known field names are all generated from that one list, so a
//! new field cannot be forgotten in one of them. JSON writing and the
//! journal use serde on [`PoolSettings`] itself.
//!
//! A profile's settings are `Option<PoolSettings>`: `None` is the pool turned
//! off. A [`SettingsUpdate`] is validated as a whole before anything changes,
//! so a rejected update leaves the settings exactly as they were.

use serde_json::{Map, Value};

/// The longest sticky ttl accepted: ten years, well inside the timing wheel's range.
pub(crate) const MAX_STICKY_TTL_SECS: u64 = 10 * 365 * 24 * 3600;

/// The largest weight accepted. Weights are relative, so this bounds nothing
/// useful while keeping the weighted round-robin's running sums exact.
pub const MAX_WEIGHT: f64 = 1_000_000.0;

/// Why settings were rejected. `field` is the JSON name, for error pointers.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsError {
    /// A weight that is NaN or infinite.
    #[error("{field} must be a finite number")]
    NonFiniteWeight {
        /// The field.
        field: &'static str,
    },
    /// A weight below zero.
    #[error("{field} must not be negative")]
    NegativeWeight {
        /// The field.
        field: &'static str,
    },
    /// A weight above [`MAX_WEIGHT`].
    #[error("{field} must be at most {MAX_WEIGHT}")]
    WeightTooLarge {
        /// The field.
        field: &'static str,
    },
    /// A sticky ttl of zero or above 315,360,000 seconds (10 years).
    #[error("sticky_ttl_secs must be between 1 and {MAX_STICKY_TTL_SECS}")]
    InvalidTtl,
    /// A key that is not a setting (a typo here would silently change selection).
    #[error("{field:?} is not a field of number_pool_settings")]
    UnknownField {
        /// The key as sent.
        field: String,
    },
    /// `null` for a field (it neither keeps nor resets a value).
    #[error("{field} may not be null: leave it out to keep its value")]
    Null {
        /// The field.
        field: &'static str,
    },
    /// A value of the wrong JSON type.
    #[error("{field} must be {expected}")]
    WrongType {
        /// The field.
        field: &'static str,
        /// What it must be, in words.
        expected: &'static str,
    },
    /// A value of the right JSON type but out of range (e.g. `1.5` for a whole number).
    #[error("{field} must be {expected}")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// What it must be, in words.
        expected: &'static str,
    },
}

impl SettingsError {
    /// The JSON field the error is about.
    pub fn field(&self) -> &str {
        match self {
            SettingsError::NonFiniteWeight { field }
            | SettingsError::NegativeWeight { field }
            | SettingsError::WeightTooLarge { field }
            | SettingsError::Null { field }
            | SettingsError::WrongType { field, .. }
            | SettingsError::OutOfRange { field, .. } => field,
            SettingsError::InvalidTtl => "sticky_ttl_secs",
            SettingsError::UnknownField { field } => field,
        }
    }

    /// Whether the request was malformed (wrong JSON type or null: HTTP 400)
    /// rather than a well-formed but invalid value (422).
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            SettingsError::Null { .. } | SettingsError::WrongType { .. }
        )
    }
}

/// A type a setting can have, as JSON sees it.
trait SettingValue: serde::de::DeserializeOwned + Clone {
    /// What the value must be, in words ("a boolean").
    const EXPECTED: &'static str;
    /// Whether `v` has this type's JSON shape (a number for numbers...).
    fn shape_matches(v: &Value) -> bool;
}

impl SettingValue for bool {
    const EXPECTED: &'static str = "a boolean";
    fn shape_matches(v: &Value) -> bool {
        v.is_boolean()
    }
}

impl SettingValue for f64 {
    const EXPECTED: &'static str = "a number";
    fn shape_matches(v: &Value) -> bool {
        v.is_number()
    }
}

impl SettingValue for u64 {
    const EXPECTED: &'static str = "a whole number >= 0";
    fn shape_matches(v: &Value) -> bool {
        v.is_number()
    }
}

/// How a patched value lands in a setting: as itself, or as `Some` of it
/// for a setting that may be unset.
trait MergeFrom<P> {
    fn merge_from(&mut self, value: &P);
}

impl<T: Clone> MergeFrom<T> for T {
    fn merge_from(&mut self, value: &T) {
        *self = value.clone();
    }
}

impl MergeFrom<u64> for Option<u64> {
    fn merge_from(&mut self, value: &u64) {
        *self = Some(*value);
    }
}

/// Reads one setting's JSON value.
fn read_value<T: SettingValue>(field: &'static str, v: &Value) -> Result<T, SettingsError> {
    if v.is_null() {
        return Err(SettingsError::Null { field });
    }
    if !T::shape_matches(v) {
        return Err(SettingsError::WrongType {
            field,
            expected: T::EXPECTED,
        });
    }
    // A whole number written with a fraction (`10.0`, `1e3`) is that whole
    // number, as JSON Schema's `integer` has it.
    let whole = v
        .as_f64()
        .filter(|f| {
            !v.is_u64() && !v.is_i64() && f.fract() == 0.0 && *f >= 0.0 && *f < 2f64.powi(64)
        })
        .map(|f| Value::from(f as u64));
    serde_json::from_value(whole.unwrap_or_else(|| v.clone())).or_else(|_| {
        serde_json::from_value(v.clone()).map_err(|_| SettingsError::OutOfRange {
            field,
            expected: T::EXPECTED,
        })
    })
}

fn any_value<T>(_: &'static str, _: &T) -> Result<(), SettingsError> {
    Ok(())
}

fn weight(field: &'static str, w: &f64) -> Result<(), SettingsError> {
    if !w.is_finite() {
        Err(SettingsError::NonFiniteWeight { field })
    } else if *w < 0.0 {
        Err(SettingsError::NegativeWeight { field })
    } else if *w > MAX_WEIGHT {
        Err(SettingsError::WeightTooLarge { field })
    } else {
        Ok(())
    }
}

fn ttl(_: &'static str, t: &u64) -> Result<(), SettingsError> {
    if *t == 0 || *t > MAX_STICKY_TTL_SECS {
        Err(SettingsError::InvalidTtl)
    } else {
        Ok(())
    }
}

/// A setting in a patch may be left out, never `null` (`null` is refused):
/// the schema of [`SettingsPatch`] says so.
#[cfg(feature = "server")]
fn settings_never_null(schema: &mut schemars::Schema) {
    let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    for property in properties.values_mut() {
        if let Some(Value::Array(types)) = property.get_mut("type") {
            types.retain(|t| t != "null");
            if types.len() == 1 {
                let only = types[0].clone();
                property["type"] = only;
            }
        }
    }
}

/// Generates [`PoolSettings`], [`SettingsPatch`] and their operations from
/// one list of `field: type [type in a patch] = default, check;`.
macro_rules! pool_settings {
    ($( $(#[doc = $doc:literal])* $(#[serde($($serde:tt)*)])? $field:ident : $ty:ty [$pty:ty] = $default:expr, $check:ident; )*) => {
        /// The number pool settings of one messaging profile.
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "server", derive(schemars::JsonSchema))]
        #[serde(default)]
        pub struct PoolSettings {
            $( $(#[doc = $doc])* $(#[serde($($serde)*)])? pub $field: $ty, )*
        }

        impl Default for PoolSettings {
            fn default() -> Self {
                PoolSettings { $( $field: $default, )* }
            }
        }

        /// The fields a PATCH sets; `None` keeps the current value. (Its
        /// schema describes the JSON object [`SettingsPatch::from_json`]
        /// reads: no other key.)
        #[derive(Debug, Clone, Default, PartialEq)]
        #[cfg_attr(feature = "server", derive(schemars::JsonSchema))]
        #[cfg_attr(feature = "server", schemars(deny_unknown_fields, transform = settings_never_null))]
        pub struct SettingsPatch {
            $( $(#[doc = $doc])* pub $field: Option<$pty>, )*
        }

        impl SettingsPatch {
            /// The JSON names of every setting.
            pub const FIELDS: &'static [&'static str] = &[$( stringify!($field) ),*];

            /// Checks every field the patch sets.
            pub fn validate(&self) -> Result<(), SettingsError> {
                $( if let Some(v) = &self.$field { $check(stringify!($field), v)?; } )*
                Ok(())
            }

            /// The settings after merging this patch into `base`.
            fn merged_into(&self, mut base: PoolSettings) -> PoolSettings {
                $( if let Some(v) = &self.$field { base.$field.merge_from(v); } )*
                base
            }

            /// Reads a patch from the JSON object of `number_pool_settings`:
            /// unknown keys, `null` and wrong types are refused; values are
            /// validated.
            pub fn from_json(map: &Map<String, Value>) -> Result<SettingsPatch, SettingsError> {
                let mut patch = SettingsPatch::default();
                for (key, value) in map {
                    match key.as_str() {
                        $( stringify!($field) => {
                            patch.$field = Some(read_value::<$pty>(stringify!($field), value)?);
                        } )*
                        other => {
                            return Err(SettingsError::UnknownField { field: other.to_string() })
                        }
                    }
                }
                patch.validate()?;
                Ok(patch)
            }
        }
    };
}

pool_settings! {
    /// Reuse the mapped sender for a recipient.
    sticky_sender: bool [bool] = false, any_value;
    /// Prefer a sender with the recipient's NANP area code (or, outside
    /// NANP, its country calling code).
    geomatch: bool [bool] = false, any_value;
    /// Relative share of long codes among weighted picks.
    long_code_weight: f64 [f64] = 1.0, weight;
    /// Relative share of toll-free numbers among weighted picks.
    toll_free_weight: f64 [f64] = 0.0, weight;
    /// Never pick an unhealthy sender for a new pick.
    skip_unhealthy: bool [bool] = false, any_value;
    /// Extension: this profile's sticky ttl in seconds; `None` uses the engine's.
    #[serde(skip_serializing_if = "Option::is_none")]
    sticky_ttl_secs: Option<u64> [u64] = None, ttl;
    /// Extension: when geomatch finds no sender with the recipient's area
    /// code, try senders in the same state or province before weighting.
    geomatch_region_fallback: bool [bool] = false, any_value;
}

impl PoolSettings {
    /// The two weights, indexed by `LONG_CODE` and `TOLL_FREE`.
    pub(crate) fn weights(&self) -> [f64; 2] {
        [self.long_code_weight, self.toll_free_weight]
    }
}

/// What a profile update does to `number_pool_settings`.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum SettingsUpdate {
    /// The field was absent: keep the settings as they are.
    #[default]
    Keep,
    /// `number_pool_settings: null`: turn the pool off.
    Disable,
    /// An object: merge these fields (turning the pool on if it was off).
    Merge(SettingsPatch),
}

impl SettingsUpdate {
    /// The settings after this update, or why it is rejected (then nothing changes).
    pub fn apply(
        &self,
        current: Option<&PoolSettings>,
    ) -> Result<Option<PoolSettings>, SettingsError> {
        match self {
            SettingsUpdate::Keep => Ok(current.cloned()),
            SettingsUpdate::Disable => Ok(None),
            SettingsUpdate::Merge(patch) => {
                patch.validate()?;
                Ok(Some(
                    patch.merged_into(current.cloned().unwrap_or_default()),
                ))
            }
        }
    }

    /// The update a request body's `number_pool_settings` value asks for:
    /// absent keeps, `null` turns the pool off, an object merges.
    pub fn from_json(value: Option<&Value>) -> Result<SettingsUpdate, SettingsError> {
        match value {
            None => Ok(SettingsUpdate::Keep),
            Some(Value::Null) => Ok(SettingsUpdate::Disable),
            Some(Value::Object(map)) => Ok(SettingsUpdate::Merge(SettingsPatch::from_json(map)?)),
            Some(_) => Err(SettingsError::WrongType {
                field: "number_pool_settings",
                expected: "an object or null",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merging_into_nothing_starts_from_defaults() {
        let patch = SettingsPatch {
            sticky_sender: Some(true),
            ..Default::default()
        };
        let s = SettingsUpdate::Merge(patch).apply(None).unwrap().unwrap();
        assert_eq!(
            s,
            PoolSettings {
                sticky_sender: true,
                ..PoolSettings::default()
            }
        );
        assert_eq!(s.long_code_weight, 1.0);
        assert_eq!(s.toll_free_weight, 0.0);
    }

    #[test]
    fn merge_changes_only_present_fields() {
        let current = PoolSettings {
            sticky_sender: true,
            geomatch: true,
            long_code_weight: 5.0,
            toll_free_weight: 1.0,
            skip_unhealthy: true,
            sticky_ttl_secs: Some(60),
            geomatch_region_fallback: true,
        };
        let patch = SettingsPatch {
            toll_free_weight: Some(3.0),
            ..Default::default()
        };
        let merged = SettingsUpdate::Merge(patch).apply(Some(&current)).unwrap();
        assert_eq!(
            merged,
            Some(PoolSettings {
                toll_free_weight: 3.0,
                ..current.clone()
            })
        );
        assert_eq!(
            SettingsUpdate::Keep.apply(Some(&current)).unwrap(),
            Some(current.clone())
        );
        assert_eq!(SettingsUpdate::Disable.apply(Some(&current)).unwrap(), None);
    }

    #[test]
    fn bad_weights_are_rejected_with_their_field() {
        for (w, expected) in [
            (
                -1.0,
                SettingsError::NegativeWeight {
                    field: "long_code_weight",
                },
            ),
            (
                f64::NAN,
                SettingsError::NonFiniteWeight {
                    field: "long_code_weight",
                },
            ),
            (
                f64::INFINITY,
                SettingsError::NonFiniteWeight {
                    field: "long_code_weight",
                },
            ),
            (
                1e308,
                SettingsError::WeightTooLarge {
                    field: "long_code_weight",
                },
            ),
        ] {
            let patch = SettingsPatch {
                long_code_weight: Some(w),
                ..Default::default()
            };
            assert_eq!(
                SettingsUpdate::Merge(patch).apply(None),
                Err(expected.clone())
            );
            assert_eq!(expected.field(), "long_code_weight");
        }
        let patch = SettingsPatch {
            toll_free_weight: Some(-0.5),
            ..Default::default()
        };
        assert_eq!(
            patch.validate(),
            Err(SettingsError::NegativeWeight {
                field: "toll_free_weight"
            })
        );
        let zero_ttl = SettingsPatch {
            sticky_ttl_secs: Some(0),
            ..Default::default()
        };
        assert_eq!(zero_ttl.validate(), Err(SettingsError::InvalidTtl));
        let max = SettingsPatch {
            long_code_weight: Some(MAX_WEIGHT),
            ..Default::default()
        };
        assert_eq!(max.validate(), Ok(()));
    }

    #[test]
    fn zero_weights_are_valid() {
        let patch = SettingsPatch {
            long_code_weight: Some(0.0),
            toll_free_weight: Some(0.0),
            ..Default::default()
        };
        assert!(SettingsUpdate::Merge(patch).apply(None).is_ok());
    }

    fn parse(v: Value) -> Result<SettingsUpdate, SettingsError> {
        SettingsUpdate::from_json(v.get("number_pool_settings"))
    }

    #[test]
    fn json_absent_null_and_object() {
        assert_eq!(parse(json!({})).unwrap(), SettingsUpdate::Keep);
        assert_eq!(
            parse(json!({"number_pool_settings": null})).unwrap(),
            SettingsUpdate::Disable
        );
        let SettingsUpdate::Merge(p) = parse(json!({"number_pool_settings": {
            "sticky_sender": true, "sticky_ttl_secs": 90
        }}))
        .unwrap() else {
            panic!("an object merges")
        };
        assert_eq!(p.sticky_sender, Some(true));
        assert_eq!(p.sticky_ttl_secs, Some(90));
        assert_eq!(p.long_code_weight, None);
    }

    #[test]
    fn json_errors_say_malformed_or_invalid() {
        let err = |v| parse(v).unwrap_err();
        let e = err(json!({"number_pool_settings": {"long_code_weight": "5"}}));
        assert!(e.is_malformed(), "{e:?}");
        assert_eq!(e.field(), "long_code_weight");
        assert!(err(json!({"number_pool_settings": {"sticky_sender": 1}})).is_malformed());
        assert!(err(json!({"number_pool_settings": {"geomatch": null}})).is_malformed());
        assert!(err(json!({"number_pool_settings": 7})).is_malformed());
        let e = err(json!({"number_pool_settings": {"long_code_weight": -1}}));
        assert!(!e.is_malformed());
        assert!(!err(json!({"number_pool_settings": {"sticky_ttl_secs": 0}})).is_malformed());
        assert!(!err(json!({"number_pool_settings": {"sticky_ttl_secs": 1.5}})).is_malformed());
        let e = err(json!({"number_pool_settings": {"stiky_sender": true}}));
        assert_eq!(
            e,
            SettingsError::UnknownField {
                field: "stiky_sender".into()
            }
        );
        assert!(!e.is_malformed());
    }

    #[test]
    fn every_field_survives_json_and_is_known() {
        let s = PoolSettings {
            sticky_sender: true,
            geomatch: true,
            long_code_weight: 2.5,
            toll_free_weight: 0.5,
            skip_unhealthy: true,
            sticky_ttl_secs: Some(77),
            geomatch_region_fallback: true,
        };
        let json = serde_json::to_value(&s).unwrap();
        let unset = serde_json::to_value(PoolSettings::default()).unwrap();
        assert!(
            unset.get("sticky_ttl_secs").is_none(),
            "an unset ttl is left out"
        );
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut known = SettingsPatch::FIELDS.to_vec();
        known.sort_unstable();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, known);
        let back = SettingsPatch::from_json(json.as_object().unwrap()).unwrap();
        assert_eq!(SettingsUpdate::Merge(back).apply(None).unwrap(), Some(s));
    }
}
