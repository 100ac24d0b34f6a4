//! An async gateway embedding numpool: one profile with sticky sender and
//! geomatch, a few numbers, then one `send().await` per message, printing
//! the sender chosen and why.
//!
//! Run: `cargo run --example gateway`

use numpool::{Engine, EngineConfig, NewProfile, PhoneNumber, SettingsPatch, SettingsUpdate};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // In memory; set `journal: Some(JournalConfig::new("./data"))` to persist.
    let engine = Engine::start(EngineConfig::default())?;
    let profile = engine
        .create_profile(NewProfile {
            name: "gateway".into(),
            whitelisted_destinations: vec!["US".into(), "CA".into()],
            // A profile's number pool is off until it has settings.
            number_pool_settings: SettingsUpdate::Merge(SettingsPatch {
                sticky_sender: Some(true),
                geomatch: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?;
    for n in [
        "+13125550001",
        "+13125550002",
        "+14155550003",
        "+12125550004",
    ] {
        engine
            .assign_number(PhoneNumber::parse_e164(n)?, Some(profile.id))
            .await?;
    }
    // Two messages to a Chicago (312) recipient, one to San Francisco (415),
    // one to Toronto (416: no number of that area code in the pool).
    for to in [
        "+13125559876",
        "+13125559876",
        "+14155559876",
        "+14165559876",
    ] {
        let selection = engine
            .send(profile.id, PhoneNumber::parse_e164(to)?)
            .await?;
        println!(
            "to {to}: from {} ({}, mapping {})",
            selection.sender,
            selection.reason.api_name(),
            selection.mapping.api_name()
        );
    }
    engine.shutdown().await;
    Ok(())
}
