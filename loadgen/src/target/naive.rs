//! The naive baseline: what a team writes in an hour. One
//! `Mutex<HashMap<String, ...>>` keyed by `"profile:recipient"`, round-robin
//! over each pool, expiry by scanning the whole map once a simulated minute.
//! (No geomatch, weights or health.)

use std::collections::HashMap;
use std::sync::Mutex;

use numpool::Timestamp;

use super::{BatchOutcome, Target, TargetError};
use crate::workload::{Request, Workload};

struct State {
    mappings: HashMap<String, (String, u64)>,
    pools: Vec<Vec<String>>,
    next: Vec<usize>,
    last_scan: u64,
}

pub struct NaiveTarget {
    state: Mutex<State>,
    sticky: bool,
    ttl_secs: u64,
}

impl NaiveTarget {
    pub fn new(workload: &Workload, sticky: bool, ttl_secs: u64) -> Self {
        let pools: Vec<Vec<String>> = workload
            .senders
            .iter()
            .map(|p| p.iter().map(|n| n.to_string()).collect())
            .collect();
        NaiveTarget {
            state: Mutex::new(State {
                mappings: HashMap::new(),
                next: vec![0; pools.len()],
                pools,
                last_scan: 0,
            }),
            sticky,
            ttl_secs,
        }
    }
}

impl Target for NaiveTarget {
    fn name(&self) -> &'static str {
        "naive"
    }

    fn select(
        &self,
        _worker: usize,
        batch: &[Request],
        now: Timestamp,
    ) -> Result<BatchOutcome, TargetError> {
        let now = now.as_secs();
        let mut out = BatchOutcome::default();
        for r in batch {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if now >= state.last_scan + 60 {
                let ttl = self.ttl_secs;
                state.mappings.retain(|_, (_, used)| now < *used + ttl);
                state.last_scan = now;
            }
            let key = format!("{}:{}", r.profile, r.recipient);
            if self.sticky {
                if let Some((_, used)) = state
                    .mappings
                    .get_mut(&key)
                    .filter(|(_, used)| now < *used + self.ttl_secs)
                {
                    *used = now;
                    out.sticky += 1;
                    continue;
                }
            }
            let p = r.profile as usize;
            let i = state.next[p];
            state.next[p] = (i + 1) % state.pools[p].len();
            let sender = state.pools[p][i].clone();
            if self.sticky {
                state.mappings.insert(key, (sender, now));
            }
            out.weighted += 1;
        }
        Ok(out)
    }

    fn live_mappings(&self) -> u64 {
        self.state.lock().map_or(0, |s| s.mappings.len() as u64)
    }

    fn bytes_per_mapping(&self) -> Option<f64> {
        let s = self.state.lock().ok()?;
        let n = s.mappings.len();
        if n == 0 {
            return None;
        }
        // Buckets (hashbrown: one control byte and one slot each) plus the strings' heap.
        let slot = std::mem::size_of::<(String, (String, u64))>() + 1;
        let strings: usize = s
            .mappings
            .iter()
            .map(|(k, (v, _))| k.capacity() + v.capacity())
            .sum();
        Some((s.mappings.capacity() * slot + strings) as f64 / n as f64)
    }
}
