//! The operations the scenarios need, over the [`Engine`] reached the two
//! ways a request can reach a profile: the caller running it (`send_now`),
//! and the profile's mailbox (`Dispatch::Mailbox`, async calls).

use std::sync::Arc;
use std::time::Duration;

use futures::executor::block_on;
use numpool::test_util::ManualClock;
use numpool::{
    Capacity, CapacityConfig, CapacityUpdate, DeliveryOutcome, Dispatch, Engine, EngineConfig,
    Error, ExpireReport, Inbound, LimitsError, NewProfile, NoSender, Outbound, PhoneNumber,
    PinError, PoolSettings, ProfileId, ProfileUpdate, Selection, SettingsError, SettingsUpdate,
    StickyMapping,
};

/// An error as the scenarios check it.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    UnknownProfile,
    Select(NoSender),
    Pin(PinError),
    Settings(SettingsError),
    Limits(LimitsError),
    QueueFull { sender: PhoneNumber, wait: Duration },
    DailyLimit,
    Disabled,
    Destination(Option<String>),
    OptedOut,
    Other(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        match e {
            Error::UnknownProfile => Failure::UnknownProfile,
            Error::NoSender(e) => Failure::Select(e),
            Error::Pin(e) => Failure::Pin(e),
            Error::Settings(e) => Failure::Settings(e),
            Error::Limits(e) => Failure::Limits(e),
            Error::QueueFull { sender, wait } => Failure::QueueFull { sender, wait },
            Error::DailyLimit => Failure::DailyLimit,
            Error::ProfileDisabled => Failure::Disabled,
            Error::DestinationNotAllowed { region } => Failure::Destination(region),
            Error::OptedOut => Failure::OptedOut,
            other => Failure::Other(other.to_string()),
        }
    }
}

/// What a scenario can do to an engine.
pub trait Backend {
    fn new(clock: Arc<ManualClock>) -> Self;
    fn engine(&self) -> &Engine;
    /// Sends one message the way this backend's callers do.
    fn send(&mut self, id: ProfileId, message: Outbound) -> Result<Selection, Failure>;

    fn create_profile(&mut self, id: ProfileId, settings: &SettingsUpdate) -> Result<(), Failure> {
        let new = NewProfile {
            id: Some(id),
            name: "scenario".into(),
            number_pool_settings: settings.clone(),
            ..Default::default()
        };
        block_on(self.engine().create_profile(new))?;
        Ok(())
    }
    /// Returns how many numbers were unassigned.
    fn delete_profile(&mut self, id: ProfileId) -> Result<usize, Failure> {
        let before = block_on(self.engine().numbers(Some(id)))?.len();
        block_on(self.engine().delete_profile(id))?;
        Ok(before)
    }
    fn assign(&mut self, number: PhoneNumber, id: ProfileId) -> Result<(), Failure> {
        block_on(self.engine().assign_number(number, Some(id)))?;
        Ok(())
    }
    fn unassign(&mut self, number: PhoneNumber) {
        let _ = block_on(self.engine().assign_number(number, None));
    }
    fn owner(&self, number: PhoneNumber) -> Option<ProfileId> {
        self.engine().owner(number)
    }
    fn update_settings(&mut self, id: ProfileId, update: &SettingsUpdate) -> Result<(), Failure> {
        let update = ProfileUpdate {
            number_pool_settings: update.clone(),
            ..Default::default()
        };
        block_on(self.engine().update_profile(id, update))?;
        Ok(())
    }
    fn update_capacity(&mut self, id: ProfileId, update: CapacityUpdate) -> Result<(), Failure> {
        let update = ProfileUpdate {
            capacity: update,
            ..Default::default()
        };
        block_on(self.engine().update_profile(id, update))?;
        Ok(())
    }
    fn update_profile(&mut self, id: ProfileId, update: ProfileUpdate) -> Result<(), Failure> {
        block_on(self.engine().update_profile(id, update))?;
        Ok(())
    }
    fn receive(&mut self, from: PhoneNumber, to: PhoneNumber, text: &str) -> Inbound {
        block_on(self.engine().receive(from, to, text)).unwrap()
    }
    fn set_rate(&mut self, number: PhoneNumber, rate: Option<f64>) -> Result<(), Failure> {
        block_on(self.engine().set_rate(number, rate))?;
        Ok(())
    }
    /// A sender's capacity now (it must be in a pool).
    fn capacity(&self, number: PhoneNumber) -> Capacity {
        block_on(self.engine().number(number))
            .unwrap()
            .capacity
            .unwrap()
    }
    fn settings(&self, id: ProfileId) -> Option<PoolSettings> {
        self.engine().profile(id).ok()?.number_pool_settings
    }
    fn mapping(&self, id: ProfileId, to: PhoneNumber) -> Option<StickyMapping> {
        block_on(self.engine().mapping(id, to)).ok().flatten()
    }
    fn mappings(&self, id: ProfileId) -> Vec<StickyMapping> {
        block_on(self.engine().mappings(id)).unwrap_or_default()
    }
    fn stored_mappings(&self, id: ProfileId) -> usize {
        block_on(self.engine().stats())
            .per_profile
            .iter()
            .find(|s| s.id == id)
            .map_or(0, |s| s.stats.stored_mappings)
    }
    fn record_outcome(&mut self, sender: PhoneNumber, outcome: DeliveryOutcome) -> bool {
        block_on(self.engine().report_outcome(sender, outcome)).unwrap()
    }
    fn pin(
        &mut self,
        id: ProfileId,
        to: PhoneNumber,
        from: PhoneNumber,
    ) -> Result<StickyMapping, Failure> {
        Ok(block_on(self.engine().pin(id, to, from))?)
    }
    fn unmap(&mut self, id: ProfileId, to: PhoneNumber) -> Result<Option<StickyMapping>, Failure> {
        Ok(block_on(self.engine().unmap(id, to))?)
    }
    fn expire(&mut self) -> ExpireReport {
        block_on(self.engine().expire_now())
    }
}

/// An engine for scenarios; `load_aware: false` picks plain round-robin.
pub fn start(clock: Arc<ManualClock>, dispatch: Dispatch, load_aware: bool) -> Engine {
    let config = EngineConfig {
        capacity: CapacityConfig {
            load_aware,
            ..CapacityConfig::default()
        },
        // The housekeeper must not expire on its own mid-scenario: the
        // scenarios decide when the wheels run.
        expire_tick: Duration::from_secs(3600),
        arbiters: 2,
        dispatch,
        ..EngineConfig::default()
    };
    Engine::start_with_clock(config, clock).unwrap()
}

/// The caller runs each request: `send_now` from the test thread.
#[allow(dead_code)] // each test file runs the scenarios with one backend
pub struct CallerRuns(Engine);

impl Backend for CallerRuns {
    fn new(clock: Arc<ManualClock>) -> Self {
        CallerRuns(start(clock, Dispatch::CallerRuns, true))
    }
    fn engine(&self) -> &Engine {
        &self.0
    }
    fn send(&mut self, id: ProfileId, message: Outbound) -> Result<Selection, Failure> {
        Ok(self.0.send_now(id, message)?)
    }
}

/// Every request through the profile's mailbox, with the async calls.
#[allow(dead_code)] // each test file runs the scenarios with one backend
pub struct ThroughMailbox(Engine);

impl Backend for ThroughMailbox {
    fn new(clock: Arc<ManualClock>) -> Self {
        ThroughMailbox(start(clock, Dispatch::Mailbox, true))
    }
    fn engine(&self) -> &Engine {
        &self.0
    }
    fn send(&mut self, id: ProfileId, message: Outbound) -> Result<Selection, Failure> {
        Ok(block_on(self.0.send(id, message))?)
    }
}

/// The caller runs each request, with load-aware picks off: plain
/// round-robin, to show what the rule changes.
#[allow(dead_code)] // each test file runs the scenarios with one backend
pub struct RoundRobin(Engine);

impl Backend for RoundRobin {
    fn new(clock: Arc<ManualClock>) -> Self {
        RoundRobin(start(clock, Dispatch::CallerRuns, false))
    }
    fn engine(&self) -> &Engine {
        &self.0
    }
    fn send(&mut self, id: ProfileId, message: Outbound) -> Result<Selection, Failure> {
        Ok(self.0.send_now(id, message)?)
    }
}
