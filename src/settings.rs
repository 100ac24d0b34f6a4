//! `number_pool_settings`: defaults, validation and the PATCH merge.
//!
//! A profile's settings are `Option<PoolSettings>`: `None` is the pool turned
//! off. A [`SettingsUpdate`] is validated as a whole before anything changes,
//! so a rejected update leaves the settings exactly as they were.

/// The longest sticky ttl accepted: ten years, well inside the timing wheel's range.
pub const MAX_STICKY_TTL_SECS: u64 = 10 * 365 * 24 * 3600;

/// The number pool settings of one messaging profile (SEMANTICS.md).
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSettings {
    /// Reuse the mapped sender for a recipient.
    pub sticky_sender: bool,
    /// Prefer a sender with the recipient's NANP area code.
    pub geomatch: bool,
    /// Relative share of long codes among weighted picks.
    pub long_code_weight: f64,
    /// Relative share of toll-free numbers among weighted picks.
    pub toll_free_weight: f64,
    /// Never pick an unhealthy sender for a new pick.
    pub skip_unhealthy: bool,
    /// Extension: this profile's sticky ttl; `None` uses the engine's.
    pub sticky_ttl_secs: Option<u64>,
    /// Extension: when geomatch finds no sender with the recipient's area
    /// code, try senders in the same state or province before weighting.
    pub geomatch_region_fallback: bool,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            sticky_sender: false,
            geomatch: false,
            long_code_weight: 1.0,
            toll_free_weight: 0.0,
            skip_unhealthy: false,
            sticky_ttl_secs: None,
            geomatch_region_fallback: false,
        }
    }
}

/// The fields a PATCH sets; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SettingsPatch {
    pub sticky_sender: Option<bool>,
    pub geomatch: Option<bool>,
    pub long_code_weight: Option<f64>,
    pub toll_free_weight: Option<f64>,
    pub skip_unhealthy: Option<bool>,
    pub sticky_ttl_secs: Option<u64>,
    pub geomatch_region_fallback: Option<bool>,
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

/// Why settings were rejected. `field` is the JSON name, for error pointers.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsError {
    #[error("{field} must be a finite number")]
    NonFiniteWeight { field: &'static str },
    #[error("{field} must not be negative")]
    NegativeWeight { field: &'static str },
    #[error("sticky_ttl_secs must be between 1 and {MAX_STICKY_TTL_SECS}")]
    InvalidTtl,
}

impl SettingsError {
    /// The JSON field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            SettingsError::NonFiniteWeight { field } | SettingsError::NegativeWeight { field } => {
                field
            }
            SettingsError::InvalidTtl => "sticky_ttl_secs",
        }
    }
}

fn check_weight(field: &'static str, w: Option<f64>) -> Result<(), SettingsError> {
    match w {
        Some(w) if !w.is_finite() => Err(SettingsError::NonFiniteWeight { field }),
        Some(w) if w < 0.0 => Err(SettingsError::NegativeWeight { field }),
        _ => Ok(()),
    }
}

impl SettingsPatch {
    /// Checks every field the patch sets.
    pub fn validate(&self) -> Result<(), SettingsError> {
        check_weight("long_code_weight", self.long_code_weight)?;
        check_weight("toll_free_weight", self.toll_free_weight)?;
        if let Some(ttl) = self.sticky_ttl_secs {
            if ttl == 0 || ttl > MAX_STICKY_TTL_SECS {
                return Err(SettingsError::InvalidTtl);
            }
        }
        Ok(())
    }

    /// The settings after merging this patch into `base`.
    fn merged_into(&self, mut base: PoolSettings) -> PoolSettings {
        let p = self;
        base.sticky_sender = p.sticky_sender.unwrap_or(base.sticky_sender);
        base.geomatch = p.geomatch.unwrap_or(base.geomatch);
        base.long_code_weight = p.long_code_weight.unwrap_or(base.long_code_weight);
        base.toll_free_weight = p.toll_free_weight.unwrap_or(base.toll_free_weight);
        base.skip_unhealthy = p.skip_unhealthy.unwrap_or(base.skip_unhealthy);
        base.sticky_ttl_secs = p.sticky_ttl_secs.or(base.sticky_ttl_secs);
        base.geomatch_region_fallback = p
            .geomatch_region_fallback
            .unwrap_or(base.geomatch_region_fallback);
        base
    }
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
