//! What loadgen measures: anything that picks senders for batches of requests.

mod floor;
mod http;
mod in_process;
mod naive;
mod redis;

pub use self::floor::FloorTarget;
pub use self::http::HttpTarget;
pub use self::in_process::{CapacityFlags, NumpoolTarget, PoolFlags};
pub use self::naive::NaiveTarget;
pub use self::redis::RedisTarget;

use numpool::Timestamp;

use crate::workload::Request;

/// How the selections of one batch went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub sticky: u64,
    pub geomatch: u64,
    pub weighted: u64,
    /// Refused (no eligible or healthy sender, overload, daily caps).
    pub failed: u64,
    /// Refused because the sender's queue was full (40318).
    pub queue_full: u64,
}

impl BatchOutcome {
    pub fn add(&mut self, other: BatchOutcome) {
        self.sticky += other.sticky;
        self.geomatch += other.geomatch;
        self.weighted += other.weighted;
        self.failed += other.failed;
        self.queue_full += other.queue_full;
    }

    /// Counts one selection by its reason name.
    pub fn count(&mut self, reason: &str) {
        match reason {
            "sticky" => self.sticky += 1,
            "geomatch" => self.geomatch += 1,
            _ => self.weighted += 1,
        }
    }
}

/// Why a target failed.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("setting up {target}: {message}")]
    Setup {
        target: &'static str,
        message: String,
    },
    #[error("{target} failed a request: {message}")]
    Request {
        target: &'static str,
        message: String,
    },
}

/// A sender selector under load. `worker` is the client thread calling.
pub trait Target: Sync {
    fn name(&self) -> &'static str;
    /// Selects senders for `batch` at simulated time `now`.
    fn select(
        &self,
        worker: usize,
        batch: &[Request],
        now: Timestamp,
    ) -> Result<BatchOutcome, TargetError>;
    /// Mappings held now.
    fn live_mappings(&self) -> u64;
    /// Memory per live mapping, if the target can tell.
    fn bytes_per_mapping(&self) -> Option<f64>;
    /// Queue waits of the messages sent (ns), if the target measures them.
    fn waits(&self) -> Option<hdrhistogram::Histogram<u64>> {
        None
    }
    /// The longest queue wait (ns), exact, if the target measures waits.
    fn max_wait(&self) -> Option<u64> {
        None
    }
    /// Stops whatever the target started.
    fn shutdown(&self) {}
}
