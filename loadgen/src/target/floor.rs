//! The floor: the least any sticky selection can cost. A bare `hashbrown`
//! map from recipient to `(sender, last used)` with a fast hasher, looked
//! up and touched once per message, a new recipient given the next sender
//! of its pool round-robin. No expiry, no rules, no sharing: loadgen runs it
//! on one thread, whatever `--concurrency` says, so the lock it sits behind
//! is never contended.

use parking_lot::Mutex;

use numpool::Timestamp;

use super::{BatchOutcome, Target, TargetError};
use crate::workload::{Request, Workload};

type FastMap = hashbrown::HashMap<u64, (u64, u64), foldhash::fast::RandomState>;

struct State {
    mappings: FastMap,
    pools: Vec<Vec<u64>>,
    next: Vec<usize>,
}

pub struct FloorTarget {
    state: Mutex<State>,
}

impl FloorTarget {
    pub fn new(workload: &Workload) -> Self {
        let pools: Vec<Vec<u64>> = workload
            .senders
            .iter()
            .map(|p| p.iter().map(|n| n.as_u64()).collect())
            .collect();
        FloorTarget {
            state: Mutex::new(State {
                mappings: FastMap::default(),
                next: vec![0; pools.len()],
                pools,
            }),
        }
    }
}

impl Target for FloorTarget {
    fn name(&self) -> &'static str {
        "floor"
    }

    fn select(
        &self,
        _worker: usize,
        batch: &[Request],
        now: Timestamp,
    ) -> Result<BatchOutcome, TargetError> {
        let now = now.as_secs();
        let mut out = BatchOutcome::default();
        let mut guard = self.state.lock();
        let state = &mut *guard;
        for r in batch {
            let key = r.recipient.as_u64();
            if let Some((sender, used)) = state.mappings.get_mut(&key) {
                *used = now;
                std::hint::black_box(*sender);
                out.sticky += 1;
                continue;
            }
            let p = r.profile as usize;
            let i = state.next[p];
            state.next[p] = (i + 1) % state.pools[p].len();
            state.mappings.insert(key, (state.pools[p][i], now));
            out.weighted += 1;
        }
        Ok(out)
    }

    fn live_mappings(&self) -> u64 {
        self.state.lock().mappings.len() as u64
    }

    fn bytes_per_mapping(&self) -> Option<f64> {
        let s = self.state.lock();
        let n = s.mappings.len();
        (n > 0).then(|| {
            let slot = std::mem::size_of::<(u64, (u64, u64))>() + 1;
            (s.mappings.capacity() * slot) as f64 / n as f64
        })
    }
}
