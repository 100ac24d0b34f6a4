//! The naive baseline: what a team writes in an hour. One
//! `Mutex<HashMap<String, ...>>` keyed by `"profile:recipient"`, round-robin
//! over each pool (or over the numbers with the recipient's area code, with
//! geomatch), expiry by scanning the whole map once a simulated minute.
//! (No weights, health or sender capacity.)

use std::collections::HashMap;
use std::sync::Mutex;

use numpool::Timestamp;

use super::{BatchOutcome, Target, TargetError};
use crate::workload::{Request, Workload};

struct State {
    mappings: HashMap<String, (String, u64)>,
    pools: Vec<Vec<String>>,
    next: Vec<usize>,
    /// Per pool: area code -> (its numbers, round-robin cursor).
    by_area: Vec<HashMap<u16, (Vec<String>, usize)>>,
    last_scan: u64,
    /// The latest time seen (live mappings are counted at it).
    now: u64,
}

pub struct NaiveTarget {
    state: Mutex<State>,
    sticky: bool,
    geomatch: bool,
    ttl_secs: u64,
}

impl NaiveTarget {
    pub fn new(workload: &Workload, sticky: bool, geomatch: bool, ttl_secs: u64) -> Self {
        let pools: Vec<Vec<String>> = workload
            .senders
            .iter()
            .map(|p| p.iter().map(|n| n.to_string()).collect())
            .collect();
        let by_area = workload
            .senders
            .iter()
            .map(|p| {
                let mut areas: HashMap<u16, (Vec<String>, usize)> = HashMap::new();
                for n in p
                    .iter()
                    .filter(|n| n.kind() != numpool::SenderKind::ShortCode)
                {
                    if let Some(npa) = area_code(&n.to_string()) {
                        areas.entry(npa).or_default().0.push(n.to_string());
                    }
                }
                areas
            })
            .collect();
        NaiveTarget {
            state: Mutex::new(State {
                mappings: HashMap::new(),
                next: vec![0; pools.len()],
                pools,
                by_area,
                last_scan: 0,
                now: 0,
            }),
            sticky,
            geomatch,
            ttl_secs,
        }
    }
}

/// The area code of a `+1` number written as `+1NPA...`.
fn area_code(number: &str) -> Option<u16> {
    let digits = number.strip_prefix("+1")?;
    (digits.len() == 10)
        .then(|| digits[..3].parse().ok())
        .flatten()
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
            state.now = state.now.max(now);
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
            let area = if self.geomatch {
                area_code(&r.recipient.to_string())
            } else {
                None
            };
            let matched = area.and_then(|a| {
                let (numbers, next) = state.by_area[p].get_mut(&a)?;
                let sender = numbers[*next].clone();
                *next = (*next + 1) % numbers.len();
                Some(sender)
            });
            let sender = match matched {
                Some(sender) => {
                    out.geomatch += 1;
                    sender
                }
                None => {
                    let i = state.next[p];
                    state.next[p] = (i + 1) % state.pools[p].len();
                    out.weighted += 1;
                    state.pools[p][i].clone()
                }
            };
            if self.sticky {
                state.mappings.insert(key, (sender, now));
            }
        }
        Ok(out)
    }

    fn live_mappings(&self) -> u64 {
        self.state.lock().map_or(0, |s| {
            let (now, ttl) = (s.now, self.ttl_secs);
            s.mappings
                .values()
                .filter(|(_, used)| now < used + ttl)
                .count() as u64
        })
    }

    fn bytes_per_mapping(&self) -> Option<f64> {
        let n = self.live_mappings() as usize;
        let s = self.state.lock().ok()?;
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
