//! The Redis baseline: one Lua script per message (GETEX with EX; else pick
//! round-robin from the profile's list and SET EX), pipelined `--batch` deep.
//! Redis expiry runs on real time, so `--sim-rate` does not apply to it.

use std::sync::Mutex;

use numpool::Timestamp;

use super::{BatchOutcome, Target, TargetError};
use crate::workload::{Request, Workload};

const SCRIPT: &str = r#"
if ARGV[2] == '1' then
  local s = redis.call('GETEX', KEYS[1], 'EX', ARGV[1])
  if s then return {s, 'sticky'} end
end
local n = redis.call('INCR', KEYS[2])
local sender = redis.call('LINDEX', KEYS[3], n % redis.call('LLEN', KEYS[3]))
if ARGV[2] == '1' then redis.call('SET', KEYS[1], sender, 'EX', ARGV[1]) end
return {sender, 'weighted'}
"#;

pub struct RedisTarget {
    client: redis::Client,
    connections: Vec<Mutex<redis::Connection>>,
    sha: String,
    prefix: String,
    sticky: bool,
    ttl_secs: u64,
    memory_before: u64,
}

fn setup(e: impl std::fmt::Display) -> TargetError {
    TargetError::Setup {
        target: "redis",
        message: format!("{e} (start a throwaway server with loadgen/redis.sh)"),
    }
}

fn used_memory(conn: &mut redis::Connection) -> Result<u64, redis::RedisError> {
    let info: String = redis::cmd("INFO").arg("memory").query(conn)?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0))
}

impl RedisTarget {
    pub fn connect(
        url: &str,
        workload: &Workload,
        workers: usize,
        sticky: bool,
        ttl_secs: u64,
    ) -> Result<Self, TargetError> {
        let client = redis::Client::open(url).map_err(setup)?;
        let mut conn = client.get_connection().map_err(setup)?;
        let sha: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(SCRIPT)
            .query(&mut conn)
            .map_err(setup)?;
        let prefix = format!("loadgen:{}:{}:", workload.spec.seed, std::process::id());
        for (p, senders) in workload.senders.iter().enumerate() {
            let key = format!("{prefix}pool:{p}");
            let numbers: Vec<String> = senders.iter().map(|n| n.to_string()).collect();
            redis::cmd("DEL")
                .arg(&key)
                .query::<()>(&mut conn)
                .map_err(setup)?;
            redis::cmd("RPUSH")
                .arg(&key)
                .arg(numbers)
                .query::<()>(&mut conn)
                .map_err(setup)?;
        }
        let memory_before = used_memory(&mut conn).map_err(setup)?;
        let connections = (0..workers)
            .map(|_| client.get_connection().map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()
            .map_err(setup)?;
        Ok(RedisTarget {
            client,
            connections,
            sha,
            prefix,
            sticky,
            ttl_secs,
            memory_before,
        })
    }
}

impl Target for RedisTarget {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn select(
        &self,
        worker: usize,
        batch: &[Request],
        _now: Timestamp,
    ) -> Result<BatchOutcome, TargetError> {
        let mut conn = self.connections[worker % self.connections.len()]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut pipe = redis::pipe();
        let sticky = if self.sticky { "1" } else { "0" };
        for r in batch {
            pipe.cmd("EVALSHA")
                .arg(&self.sha)
                .arg(3)
                .arg(format!("{}m:{}:{}", self.prefix, r.profile, r.recipient))
                .arg(format!("{}rr:{}", self.prefix, r.profile))
                .arg(format!("{}pool:{}", self.prefix, r.profile))
                .arg(self.ttl_secs)
                .arg(sticky);
        }
        let results: Vec<(String, String)> =
            pipe.query(&mut *conn).map_err(|e| TargetError::Request {
                target: "redis",
                message: e.to_string(),
            })?;
        let mut out = BatchOutcome::default();
        for (_, reason) in results {
            out.count(&reason);
        }
        Ok(out)
    }

    fn live_mappings(&self) -> u64 {
        // Only this run's mapping keys: the server may hold others.
        let Ok(mut conn) = self.client.get_connection() else {
            return 0;
        };
        let pattern = format!("{}m:*", self.prefix);
        let mut cursor: u64 = 0;
        let mut count = 0u64;
        loop {
            let Ok((next, keys)) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(10_000)
                .query::<(u64, Vec<String>)>(&mut conn)
            else {
                return count;
            };
            count += keys.len() as u64;
            if next == 0 {
                return count;
            }
            cursor = next;
        }
    }

    fn bytes_per_mapping(&self) -> Option<f64> {
        let mut conn = self.client.get_connection().ok()?;
        let used = used_memory(&mut conn).ok()?;
        let live = self.live_mappings();
        (live > 0).then(|| used.saturating_sub(self.memory_before) as f64 / live as f64)
    }

    /// Removes every key of this run (their names carry the seed and the
    /// process id, so another run's or another program's keys are never
    /// touched): a shared Redis is left as it was found.
    fn shutdown(&self) {
        let Ok(mut conn) = self.client.get_connection() else {
            return;
        };
        let pattern = format!("{}*", self.prefix);
        let mut cursor: u64 = 0;
        loop {
            let Ok((next, keys)) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(10_000)
                .query::<(u64, Vec<String>)>(&mut conn)
            else {
                return;
            };
            if !keys.is_empty() {
                let _ = redis::cmd("UNLINK").arg(keys).query::<()>(&mut conn);
            }
            if next == 0 {
                return;
            }
            cursor = next;
        }
    }
}
