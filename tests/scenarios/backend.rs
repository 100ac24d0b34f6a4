//! The operations the scenarios need, over the single-threaded `Registry`
//! and over the actor-based `Engine`, with errors brought to one type.

use std::sync::Arc;
use std::time::Duration;

use futures::executor::block_on;
use numpool::clock::{Clock, ManualClock};
use numpool::engine::{Engine, EngineConfig, EngineError, NewProfile, ProfileUpdate};
use numpool::health::DeliveryOutcome;
use numpool::profile::PinError;
use numpool::settings::{PoolSettings, SettingsError, SettingsUpdate};
use numpool::sticky::ExpireReport;
use numpool::{
    PhoneNumber, ProfileId, Registry, RegistryError, SelectError, Selection, SelectionConfig,
    StickyMapping,
};

/// An error as the scenarios check it.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    UnknownProfile,
    Select(SelectError),
    Pin(PinError),
    Settings(SettingsError),
    Other(String),
}

impl From<RegistryError> for Failure {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::UnknownProfile => Failure::UnknownProfile,
            RegistryError::Select(e) => Failure::Select(e),
            RegistryError::Pin(e) => Failure::Pin(e),
            RegistryError::Settings(e) => Failure::Settings(e),
            other => Failure::Other(other.to_string()),
        }
    }
}

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::UnknownProfile => Failure::UnknownProfile,
            EngineError::Select(e) => Failure::Select(e),
            EngineError::Pin(e) => Failure::Pin(e),
            EngineError::Settings(e) => Failure::Settings(e),
            other => Failure::Other(other.to_string()),
        }
    }
}

/// What a scenario can do to an engine.
pub trait Backend {
    fn new(clock: Arc<ManualClock>) -> Self;
    fn create_profile(&mut self, id: ProfileId, settings: &SettingsUpdate) -> Result<(), Failure>;
    /// Returns how many numbers were unassigned.
    fn delete_profile(&mut self, id: ProfileId) -> Result<usize, Failure>;
    fn assign(&mut self, number: PhoneNumber, id: ProfileId) -> Result<(), Failure>;
    fn unassign(&mut self, number: PhoneNumber);
    fn owner(&self, number: PhoneNumber) -> Option<ProfileId>;
    fn select(&mut self, id: ProfileId, to: PhoneNumber) -> Result<Selection, Failure>;
    fn update_settings(&mut self, id: ProfileId, update: &SettingsUpdate) -> Result<(), Failure>;
    fn settings(&self, id: ProfileId) -> Option<PoolSettings>;
    fn mapping(&self, id: ProfileId, to: PhoneNumber) -> Option<StickyMapping>;
    fn mappings(&self, id: ProfileId) -> Vec<StickyMapping>;
    fn stored_mappings(&self, id: ProfileId) -> usize;
    fn record_outcome(&mut self, sender: PhoneNumber, outcome: DeliveryOutcome) -> bool;
    fn pin(
        &mut self,
        id: ProfileId,
        to: PhoneNumber,
        from: PhoneNumber,
    ) -> Result<StickyMapping, Failure>;
    fn unmap(&mut self, id: ProfileId, to: PhoneNumber) -> Result<Option<StickyMapping>, Failure>;
    fn expire(&mut self) -> ExpireReport;
}

/// The selection core in one thread, time passed in from the clock.
pub struct RegistryBackend {
    registry: Registry,
    clock: Arc<ManualClock>,
}

impl RegistryBackend {
    fn now(&self) -> u32 {
        self.clock.now().as_secs_u32()
    }
}

impl Backend for RegistryBackend {
    fn new(clock: Arc<ManualClock>) -> Self {
        RegistryBackend {
            registry: Registry::new(SelectionConfig::default()),
            clock,
        }
    }
    fn create_profile(&mut self, id: ProfileId, settings: &SettingsUpdate) -> Result<(), Failure> {
        let now = self.now();
        Ok(self.registry.create_profile(id, settings, now)?)
    }
    fn delete_profile(&mut self, id: ProfileId) -> Result<usize, Failure> {
        Ok(self.registry.delete_profile(id)?.len())
    }
    fn assign(&mut self, number: PhoneNumber, id: ProfileId) -> Result<(), Failure> {
        self.registry.assign(number, id)?;
        Ok(())
    }
    fn unassign(&mut self, number: PhoneNumber) {
        self.registry.unassign(number);
    }
    fn owner(&self, number: PhoneNumber) -> Option<ProfileId> {
        self.registry.owner(number)
    }
    fn select(&mut self, id: ProfileId, to: PhoneNumber) -> Result<Selection, Failure> {
        let now = self.now();
        Ok(self.registry.select(id, to, now)?)
    }
    fn update_settings(&mut self, id: ProfileId, update: &SettingsUpdate) -> Result<(), Failure> {
        let now = self.now();
        Ok(self.registry.update_settings(id, update, now)?)
    }
    fn settings(&self, id: ProfileId) -> Option<PoolSettings> {
        self.registry.profile(id)?.settings().cloned()
    }
    fn mapping(&self, id: ProfileId, to: PhoneNumber) -> Option<StickyMapping> {
        self.registry.profile(id)?.mapping(to, self.now())
    }
    fn mappings(&self, id: ProfileId) -> Vec<StickyMapping> {
        self.registry
            .profile(id)
            .map(|p| p.mappings(self.now()))
            .unwrap_or_default()
    }
    fn stored_mappings(&self, id: ProfileId) -> usize {
        self.registry
            .profile(id)
            .map_or(0, |p| p.stats().stored_mappings)
    }
    fn record_outcome(&mut self, sender: PhoneNumber, outcome: DeliveryOutcome) -> bool {
        let now = self.now();
        self.registry.record_outcome(sender, outcome, now)
    }
    fn pin(
        &mut self,
        id: ProfileId,
        to: PhoneNumber,
        from: PhoneNumber,
    ) -> Result<StickyMapping, Failure> {
        let now = self.now();
        Ok(self.registry.pin(id, to, from, now)?)
    }
    fn unmap(&mut self, id: ProfileId, to: PhoneNumber) -> Result<Option<StickyMapping>, Failure> {
        let now = self.now();
        Ok(self.registry.unmap(id, to, now)?)
    }
    fn expire(&mut self) -> ExpireReport {
        let now = self.now();
        self.registry.expire(now)
    }
}

/// The actor-based engine, driven through its blocking and async calls.
pub struct EngineBackend {
    engine: Engine,
}

impl Backend for EngineBackend {
    fn new(clock: Arc<ManualClock>) -> Self {
        let config = EngineConfig {
            // Actors must not expire on their own mid-scenario: the
            // scenarios decide when the wheels run.
            expire_tick: Duration::from_secs(3600),
            dispatcher: numpool::actor::DispatcherConfig {
                arbiters: 2,
                ..Default::default()
            },
            ..EngineConfig::default()
        };
        EngineBackend {
            engine: Engine::with_clock(config, clock).unwrap(),
        }
    }
    fn create_profile(&mut self, id: ProfileId, settings: &SettingsUpdate) -> Result<(), Failure> {
        let new = NewProfile {
            id: Some(id),
            name: "scenario".into(),
            number_pool_settings: settings.clone(),
            ..Default::default()
        };
        block_on(self.engine.create_profile(new))?;
        Ok(())
    }
    fn delete_profile(&mut self, id: ProfileId) -> Result<usize, Failure> {
        let before = block_on(self.engine.numbers(Some(id)))?.len();
        block_on(self.engine.delete_profile(id))?;
        Ok(before)
    }
    fn assign(&mut self, number: PhoneNumber, id: ProfileId) -> Result<(), Failure> {
        block_on(self.engine.assign_number(number, Some(id)))?;
        Ok(())
    }
    fn unassign(&mut self, number: PhoneNumber) {
        let _ = block_on(self.engine.assign_number(number, None));
    }
    fn owner(&self, number: PhoneNumber) -> Option<ProfileId> {
        self.engine.owner(number)
    }
    fn select(&mut self, id: ProfileId, to: PhoneNumber) -> Result<Selection, Failure> {
        Ok(self.engine.send_blocking(id, to)?)
    }
    fn update_settings(&mut self, id: ProfileId, update: &SettingsUpdate) -> Result<(), Failure> {
        let update = ProfileUpdate {
            number_pool_settings: update.clone(),
            ..Default::default()
        };
        block_on(self.engine.update_profile(id, update))?;
        Ok(())
    }
    fn settings(&self, id: ProfileId) -> Option<PoolSettings> {
        self.engine.profile(id).ok()?.number_pool_settings
    }
    fn mapping(&self, id: ProfileId, to: PhoneNumber) -> Option<StickyMapping> {
        block_on(self.engine.mapping(id, to)).ok().flatten()
    }
    fn mappings(&self, id: ProfileId) -> Vec<StickyMapping> {
        block_on(self.engine.mappings(id)).unwrap_or_default()
    }
    fn stored_mappings(&self, id: ProfileId) -> usize {
        block_on(self.engine.stats())
            .per_profile
            .iter()
            .find(|s| s.id == id)
            .map_or(0, |s| s.stats.stored_mappings)
    }
    fn record_outcome(&mut self, sender: PhoneNumber, outcome: DeliveryOutcome) -> bool {
        block_on(self.engine.report_outcome(sender, outcome)).unwrap()
    }
    fn pin(
        &mut self,
        id: ProfileId,
        to: PhoneNumber,
        from: PhoneNumber,
    ) -> Result<StickyMapping, Failure> {
        Ok(block_on(self.engine.pin(id, to, from))?)
    }
    fn unmap(&mut self, id: ProfileId, to: PhoneNumber) -> Result<Option<StickyMapping>, Failure> {
        Ok(block_on(self.engine.unmap(id, to))?)
    }
    fn expire(&mut self) -> ExpireReport {
        block_on(self.engine.expire_now())
    }
}
