//! `number_pool_settings` from JSON: every known field type-checked,
//! `null` inside the object refused (it neither keeps nor resets).

use serde_json::{Map, Value};

use super::body::Fields;
use super::error::{settings_error, ApiError};
use crate::settings::{SettingsPatch, SettingsUpdate};

/// The update a request body's `number_pool_settings` asks for.
pub fn update(body: &Fields<'_>) -> Result<SettingsUpdate, ApiError> {
    match body.object("number_pool_settings")? {
        None => Ok(SettingsUpdate::Keep),
        Some(None) => Ok(SettingsUpdate::Disable),
        Some(Some(map)) => Ok(SettingsUpdate::Merge(patch(map)?)),
    }
}

fn patch(map: &Map<String, Value>) -> Result<SettingsPatch, ApiError> {
    let f = Fields::new(map, "/number_pool_settings");
    for (key, value) in map {
        if value.is_null() {
            return Err(ApiError::bad_request(
                &f.pointer(key),
                format!("{key} may not be null: leave it out to keep its value"),
            ));
        }
    }
    let patch = SettingsPatch {
        sticky_sender: f.bool("sticky_sender", true)?,
        geomatch: f.bool("geomatch", true)?,
        long_code_weight: f.f64("long_code_weight")?,
        toll_free_weight: f.f64("toll_free_weight")?,
        skip_unhealthy: f.bool("skip_unhealthy", true)?,
        sticky_ttl_secs: f.u64("sticky_ttl_secs")?,
        geomatch_region_fallback: f.bool("geomatch_region_fallback", true)?,
    };
    patch.validate().map_err(settings_error)?;
    Ok(patch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<SettingsUpdate, ApiError> {
        let map = v.as_object().unwrap().clone();
        update(&Fields::new(&map, ""))
    }

    #[test]
    fn absent_null_and_object() {
        assert_eq!(parse(json!({})).unwrap(), SettingsUpdate::Keep);
        assert_eq!(
            parse(json!({"number_pool_settings": null})).unwrap(),
            SettingsUpdate::Disable
        );
        let SettingsUpdate::Merge(p) =
            parse(json!({"number_pool_settings": {"sticky_sender": true}})).unwrap()
        else {
            panic!()
        };
        assert_eq!(p.sticky_sender, Some(true));
        assert_eq!(p.long_code_weight, None);
    }

    #[test]
    fn wrong_types_are_400_and_bad_values_422() {
        let status = |v| actix_web::ResponseError::status_code(&parse(v).unwrap_err()).as_u16();
        assert_eq!(
            status(json!({"number_pool_settings": {"long_code_weight": "5"}})),
            400
        );
        assert_eq!(
            status(json!({"number_pool_settings": {"sticky_sender": 1}})),
            400
        );
        assert_eq!(
            status(json!({"number_pool_settings": {"geomatch": null}})),
            400
        );
        assert_eq!(status(json!({"number_pool_settings": 7})), 400);
        assert_eq!(
            status(json!({"number_pool_settings": {"long_code_weight": -1}})),
            422
        );
        assert_eq!(
            status(json!({"number_pool_settings": {"sticky_ttl_secs": 0}})),
            422
        );
    }
}
