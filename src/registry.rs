//! [`Registry`]: every profile and number of an engine in one thread.
//!
//! This is the selection engine without actors: what the property tests,
//! the benches' floor and single-threaded embedders use. The actor runtime
//! splits the same [`Profile`]s across actors and keeps number ownership in
//! its dispatcher.

use std::collections::HashMap;
use std::fmt;

use crate::config::SelectionConfig;
use crate::health::DeliveryOutcome;
use crate::number::PhoneNumber;
use crate::profile::{PinError, Profile, StickyMapping};
use crate::select::{SelectError, Selection};
use crate::settings::{SettingsError, SettingsUpdate};
use crate::sticky::ExpireReport;

/// A messaging profile's id (a UUID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProfileId(pub uuid::Uuid);

impl ProfileId {
    /// A new random id.
    pub fn new_v4() -> Self {
        ProfileId(uuid::Uuid::new_v4())
    }

    /// The id from its hyphenated or simple string form.
    pub fn parse(s: &str) -> Option<Self> {
        uuid::Uuid::parse_str(s).ok().map(ProfileId)
    }
}

impl fmt::Display for ProfileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Errors of registry operations.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RegistryError {
    #[error("messaging profile not found")]
    UnknownProfile,
    #[error("a messaging profile with this id exists")]
    DuplicateProfile,
    #[error("phone number not found")]
    UnknownNumber,
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Select(#[from] SelectError),
    #[error(transparent)]
    Pin(#[from] PinError),
}

/// All profiles and number assignments, single-threaded.
#[derive(Debug, Default)]
pub struct Registry {
    config: SelectionConfig,
    profiles: HashMap<ProfileId, Profile>,
    owners: HashMap<PhoneNumber, ProfileId>,
}

impl Registry {
    pub fn new(config: SelectionConfig) -> Self {
        Registry {
            config,
            ..Default::default()
        }
    }

    pub fn config(&self) -> &SelectionConfig {
        &self.config
    }

    /// Creates a profile; `settings` as on a PATCH of a profile with the pool off.
    pub fn create_profile(
        &mut self,
        id: ProfileId,
        settings: &SettingsUpdate,
        now: u32,
    ) -> Result<(), RegistryError> {
        if self.profiles.contains_key(&id) {
            return Err(RegistryError::DuplicateProfile);
        }
        let settings = settings.apply(None)?;
        self.profiles
            .insert(id, Profile::new(settings, &self.config, now));
        Ok(())
    }

    /// Deletes a profile: its mappings are gone, its numbers unassigned (returned).
    pub fn delete_profile(&mut self, id: ProfileId) -> Result<Vec<PhoneNumber>, RegistryError> {
        let mut profile = self
            .profiles
            .remove(&id)
            .ok_or(RegistryError::UnknownProfile)?;
        let numbers: Vec<PhoneNumber> = profile
            .drain_senders()
            .into_iter()
            .map(|s| s.number)
            .collect();
        for n in &numbers {
            self.owners.remove(n);
        }
        Ok(numbers)
    }

    pub fn profile(&self, id: ProfileId) -> Option<&Profile> {
        self.profiles.get(&id)
    }

    fn profile_mut(&mut self, id: ProfileId) -> Result<&mut Profile, RegistryError> {
        self.profiles
            .get_mut(&id)
            .ok_or(RegistryError::UnknownProfile)
    }

    pub fn update_settings(
        &mut self,
        id: ProfileId,
        update: &SettingsUpdate,
        now: u32,
    ) -> Result<(), RegistryError> {
        Ok(self.profile_mut(id)?.update_settings(update, now)?)
    }

    /// Assigns `number` to profile `id`, moving it (with its health) if
    /// another profile had it. Returns the previous owner.
    pub fn assign(
        &mut self,
        number: PhoneNumber,
        id: ProfileId,
    ) -> Result<Option<ProfileId>, RegistryError> {
        if !self.profiles.contains_key(&id) {
            return Err(RegistryError::UnknownProfile);
        }
        let previous = self.owners.get(&number).copied();
        if previous == Some(id) {
            return Ok(previous);
        }
        let health = match previous {
            Some(old) => self
                .profile_mut(old)?
                .remove_sender(number)
                .map(|s| s.health),
            None => None,
        };
        self.profile_mut(id)?
            .add_sender(number, health.unwrap_or_default());
        self.owners.insert(number, id);
        Ok(previous)
    }

    /// Unassigns `number`; returns the profile that had it.
    pub fn unassign(&mut self, number: PhoneNumber) -> Option<ProfileId> {
        let owner = self.owners.remove(&number)?;
        if let Some(p) = self.profiles.get_mut(&owner) {
            p.remove_sender(number);
        }
        Some(owner)
    }

    /// The profile `number` is assigned to.
    pub fn owner(&self, number: PhoneNumber) -> Option<ProfileId> {
        self.owners.get(&number).copied()
    }

    /// Chooses the sender for one message.
    #[inline]
    pub fn select(
        &mut self,
        id: ProfileId,
        recipient: PhoneNumber,
        now: u32,
    ) -> Result<Selection, RegistryError> {
        let profile = self
            .profiles
            .get_mut(&id)
            .ok_or(RegistryError::UnknownProfile)?;
        Ok(profile.select(recipient, now, &self.config.health)?)
    }

    /// Records a delivery outcome of `sender`; `false` if no profile has it.
    pub fn record_outcome(
        &mut self,
        sender: PhoneNumber,
        outcome: DeliveryOutcome,
        now: u32,
    ) -> bool {
        let Some(owner) = self.owners.get(&sender) else {
            return false;
        };
        let health = &self.config.health;
        self.profiles
            .get_mut(owner)
            .is_some_and(|p| p.record_outcome(sender, outcome, now, health))
    }

    pub fn pin(
        &mut self,
        id: ProfileId,
        recipient: PhoneNumber,
        sender: PhoneNumber,
        now: u32,
    ) -> Result<StickyMapping, RegistryError> {
        Ok(self.profile_mut(id)?.pin(recipient, sender, now)?)
    }

    pub fn unmap(
        &mut self,
        id: ProfileId,
        recipient: PhoneNumber,
        now: u32,
    ) -> Result<Option<StickyMapping>, RegistryError> {
        Ok(self.profile_mut(id)?.unmap(recipient, now))
    }

    /// Runs expiry on every profile up to `now` (no budget).
    pub fn expire(&mut self, now: u32) -> ExpireReport {
        let mut total = ExpireReport {
            done: true,
            ..Default::default()
        };
        for p in self.profiles.values_mut() {
            let r = p.expire(now, usize::MAX);
            total.expired += r.expired;
            total.reclaimed += r.reclaimed;
        }
        total
    }

    /// Profile ids.
    pub fn profile_ids(&self) -> impl Iterator<Item = ProfileId> + '_ {
        self.profiles.keys().copied()
    }
}
