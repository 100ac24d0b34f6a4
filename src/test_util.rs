//! Test support (feature `test-util`): a clock that moves only when told,
//! ways to make a profile's actor panic or stall on purpose, and a sticky
//! profile to start from.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use numpool::test_util::ManualClock;
//! use numpool::{Clock, Engine, EngineConfig, Timestamp};
//!
//! let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
//! let engine = Engine::start_with_clock(EngineConfig::default(), clock.clone())?;
//! clock.advance(Duration::from_secs(8 * 24 * 3600));
//! assert_eq!(engine.now().as_secs(), 1_800_000_000 + 8 * 24 * 3600);
//! # Ok::<(), numpool::StartError>(())
//! ```

pub use crate::clock::ManualClock;

use crate::{Engine, Error, NewProfile, PhoneNumber, ProfileId, SettingsPatch, SettingsUpdate};

/// A new profile named `name`, sticky sender on, with `numbers` in its
/// pool: what most tests and benches start from.
pub async fn sticky_profile(
    engine: &Engine,
    name: &str,
    numbers: impl IntoIterator<Item = PhoneNumber>,
) -> Result<ProfileId, Error> {
    let id = engine
        .create_profile(NewProfile {
            name: name.into(),
            number_pool_settings: SettingsUpdate::Merge(SettingsPatch {
                sticky_sender: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?
        .id;
    for n in numbers {
        engine.assign_number(n, Some(id)).await?;
    }
    Ok(id)
}

impl Engine {
    /// Runs `f` as a request of `profile`, the way a send runs (on the
    /// calling thread when the profile is free, else through its mailbox):
    /// to make a request panic, or hold the profile busy, in a test.
    pub async fn run_as_request<R, F>(&self, profile: ProfileId, f: F) -> Result<R, Error>
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        let _in = self.enter()?;
        let actor = self.actor_of(profile)?;
        Ok(actor
            .call(self.inner.config.mailbox_bound, move |_, _| f())
            .await?)
    }

    /// Queues `f` as a request of `profile` on its mailbox, without waiting
    /// for it (even when the profile is free): to stall a profile from
    /// another thread. Fails like a send would when the mailbox is full.
    pub fn queue_request<F>(&self, profile: ProfileId, f: F) -> Result<(), Error>
    where
        F: FnOnce() + Send + 'static,
    {
        let actor = self.actor_of(profile)?;
        actor.enqueue(self.inner.config.mailbox_bound, move |_, _| f())?;
        Ok(())
    }

    /// Makes every journal write fail while `on` (as a full disk would):
    /// to test that refused changes leave no trace and that the engine
    /// resumes by itself. No-op without a journal.
    pub fn inject_journal_fault(&self, on: bool) {
        if let Some(writer) = &self.inner.env.journal {
            writer.inject_fault(on);
        }
    }

    /// The NANP region (state or province) of an area code, as geomatch's
    /// region fallback sees it.
    pub fn npa_region(npa: u16) -> Option<&'static str> {
        crate::geo::npa::region_of(npa).map(crate::geo::npa::region_name)
    }
}
