//! The command line of `loadgen`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Measure numpool's sender selection at millions of messages, next to a
/// naive map and Redis.
#[derive(Debug, Clone, Parser)]
#[command(name = "loadgen", version, about, args_override_self = true)]
pub struct Args {
    /// Messages to send, e.g. `5M`, `500k`, `20000`.
    #[arg(long, default_value = "4M", value_parser = parse_count)]
    pub messages: u64,
    /// Messaging profiles.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub profiles: u32,
    /// Numbers per profile (a long-code / toll-free mix over several area codes).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub numbers: u32,
    /// Distinct recipients, e.g. `1M`.
    #[arg(long, default_value = "1M", value_parser = parse_count)]
    pub recipients: u64,
    /// Recipient distribution: `uniform` or `zipf:S` (S > 0).
    #[arg(long, default_value = "zipf:1.0", value_parser = parse_dist)]
    pub dist: Dist,
    /// Sticky sender on.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub sticky: bool,
    /// Geomatch on.
    #[arg(long)]
    pub geomatch: bool,
    /// Skip unhealthy numbers.
    #[arg(long)]
    pub skip_unhealthy: bool,
    /// Fraction of numbers made unhealthy before the run (0..1).
    #[arg(long, default_value_t = 0.0, value_parser = parse_fraction)]
    pub unhealthy_fraction: f64,
    /// Sticky ttl, e.g. `8d`, `90s`.
    #[arg(long, default_value = "8d", value_parser = parse_duration)]
    pub ttl: Duration,
    /// Simulated time per message, e.g. `1s`, `100ms` (0: time stands still).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub sim_rate: Duration,
    /// Messages per simulated second, so that sender queues build and
    /// drain as they would at that rate: a number (`630`) or a share of the
    /// pools' capacity under their weights (`90%`). Replaces `--sim-rate`.
    #[arg(long, value_parser = parse_arrival)]
    pub arrival_rate: Option<Arrival>,
    /// Sender rates by kind, e.g. `long_code=1,toll_free=3,short_code=100`
    /// [default: 1, 3, 100 with `--arrival-rate`; 100000 each while time
    /// stands still, where any real rate would only grow queues].
    #[arg(long, value_parser = parse_mps, value_delimiter = ',')]
    pub mps: Vec<(Kind, f64)>,
    /// The profiles' queue cap, e.g. `4h`.
    #[arg(long, default_value = "4h", value_parser = parse_duration)]
    pub max_queue: Duration,
    /// Plain round-robin instead of load-aware picks (to compare).
    #[arg(long)]
    pub round_robin: bool,
    /// Turn sender capacity off: no queues, caps or load-aware picks (to
    /// measure what the bookkeeping costs).
    #[arg(long)]
    pub no_capacity: bool,
    /// Messages per request (in-process: per engine call; HTTP and Redis: pipelined).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub batch: u32,
    /// Requests in flight (client threads).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,
    /// In-process engines: call the async API (`Engine::send_batch`,
    /// `Engine::send`, awaited on each client thread) instead of the
    /// blocking one (`send_batch_now`, `send_now`). A group whose profile
    /// another caller holds then goes through the profile's mailbox.
    #[arg(long)]
    pub async_calls: bool,
    /// Open loop: messages per second, issued on a fixed schedule; latency is
    /// measured from each request's intended start.
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Seed of the workload (same seed, same workload).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// What to measure: `floor` (a bare hashbrown lookup-and-touch, one
    /// thread), `numpool`, `mailbox` (numpool with every request through its
    /// profile's mailbox), `journal` (numpool with its journal in
    /// `--data-dir`), `naive`, `redis`, `http`, or `all` (floor, numpool,
    /// naive, and redis if `--redis-url` answers).
    #[arg(long, default_value = "floor,numpool,naive", value_delimiter = ',')]
    pub engine: Vec<EngineKind>,
    /// Measure every engine this many times, alternating their order from
    /// one round to the next; the table shows each engine's median round
    /// and each ratio is the median of the rounds' ratios (on a shared,
    /// noisy machine one round proves little).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: u32,
    /// Drive a running `numpool serve` through HTTP (implies `--engine http`).
    #[arg(long)]
    pub target: Option<String>,
    /// API key for `--target`.
    #[arg(long, default_value = "")]
    pub api_key: String,
    /// Data directory of the `journal` engine (default: a fresh temporary one).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// fsync policy of the `journal` engine: always, interval, interval:DUR, never.
    #[arg(long, default_value = "interval")]
    pub fsync: String,
    /// Redis for the `redis` baseline (`loadgen/redis.sh` starts one).
    #[arg(long, default_value = "redis://127.0.0.1:6390/")]
    pub redis_url: String,
    /// Write the results as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Draw the latency percentile spectrum of every engine (SVG).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// How fast messages arrive in simulated time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arrival {
    /// Messages per second.
    PerSecond(f64),
    /// A share of the pools' capacity.
    Share(f64),
}

/// A sender kind, for `--mps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    LongCode,
    TollFree,
    ShortCode,
}

fn parse_arrival(s: &str) -> Result<Arrival, String> {
    let t = s.trim();
    if let Some(pct) = t.strip_suffix('%') {
        return match pct.parse::<f64>() {
            Ok(p) if p > 0.0 && p.is_finite() => Ok(Arrival::Share(p / 100.0)),
            _ => Err(format!("{s:?}: a share like 90%")),
        };
    }
    match t.parse::<f64>() {
        Ok(r) if r > 0.0 && r.is_finite() => Ok(Arrival::PerSecond(r)),
        _ => Err(format!(
            "{s:?}: messages per second (like 630) or a share (like 90%)"
        )),
    }
}

fn parse_mps(s: &str) -> Result<(Kind, f64), String> {
    let (kind, rate) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: use KIND=RATE, e.g. long_code=1"))?;
    let kind = match kind.trim() {
        "long_code" => Kind::LongCode,
        "toll_free" => Kind::TollFree,
        "short_code" => Kind::ShortCode,
        other => {
            return Err(format!(
                "{other:?}: the kinds are long_code, toll_free, short_code"
            ))
        }
    };
    match rate.trim().parse::<f64>() {
        Ok(r) if r > 0.0 && r <= 100_000.0 => Ok((kind, r)),
        _ => Err(format!(
            "{s:?}: a rate above 0 and at most 100000 per second"
        )),
    }
}

/// A recipient distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Dist {
    Uniform,
    Zipf(f64),
}

/// What a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineKind {
    /// A bare hashbrown lookup-and-touch on one thread: the least a sticky selection costs.
    Floor,
    /// numpool in-process (the caller runs each request).
    Numpool,
    /// numpool with every request through its profile's mailbox (the actor hop).
    Mailbox,
    /// numpool with its journal.
    Journal,
    Naive,
    Redis,
    Http,
    All,
}

/// `10M`, `500k`, `2G`, `1_000_000`, `20000`.
pub fn parse_count(s: &str) -> Result<u64, String> {
    let t = s.trim().replace('_', "");
    let (digits, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1_000),
        Some('m' | 'M') => (&t[..t.len() - 1], 1_000_000),
        Some('g' | 'G') => (&t[..t.len() - 1], 1_000_000_000),
        _ => (&t[..], 1),
    };
    let value: f64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a count like 10M, 500k or 20000"))?;
    let n = value * mult as f64;
    if !(1.0..=1e12).contains(&n) || n.fract() != 0.0 {
        return Err(format!(
            "{s:?}: a count must be a whole number from 1 to 10^12"
        ));
    }
    Ok(n as u64)
}

pub fn parse_dist(s: &str) -> Result<Dist, String> {
    match s.trim() {
        "uniform" => Ok(Dist::Uniform),
        other => {
            let exponent = other
                .strip_prefix("zipf:")
                .or_else(|| (other == "zipf").then_some("1.0"))
                .ok_or_else(|| format!("{s:?}: use uniform or zipf:S"))?;
            match exponent.parse::<f64>() {
                Ok(e) if e > 0.0 && e.is_finite() => Ok(Dist::Zipf(e)),
                _ => Err(format!("{s:?}: the Zipf exponent must be a number above 0")),
            }
        }
    }
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("{s:?}: a fraction from 0 to 1")),
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let n = parse_count(s)? as f64;
    Ok(n)
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    numpool::parse_duration(s).map_err(|e| e.to_string())
}

impl Args {
    /// The engines to run, in order, `all` expanded.
    pub fn engines(&self) -> Vec<EngineKind> {
        if self.target.is_some() {
            return vec![EngineKind::Http];
        }
        let mut out = Vec::new();
        for e in &self.engine {
            let add: &[EngineKind] = match e {
                EngineKind::All => &[
                    EngineKind::Floor,
                    EngineKind::Numpool,
                    EngineKind::Naive,
                    EngineKind::Redis,
                ],
                other => std::slice::from_ref(other),
            };
            for k in add {
                if !out.contains(k) {
                    out.push(*k);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        assert_eq!(parse_count("10M"), Ok(10_000_000));
        assert_eq!(parse_count("500k"), Ok(500_000));
        assert_eq!(parse_count("1.5M"), Ok(1_500_000));
        assert_eq!(parse_count("20_000"), Ok(20_000));
        assert!(parse_count("0").is_err());
        assert!(parse_count("ten").is_err());
        assert!(parse_count("-5").is_err());
    }

    #[test]
    fn capacity_flags() {
        assert_eq!(parse_arrival("90%"), Ok(Arrival::Share(0.9)));
        assert_eq!(parse_arrival("630"), Ok(Arrival::PerSecond(630.0)));
        assert!(parse_arrival("0").is_err() && parse_arrival("x%").is_err());
        assert_eq!(parse_mps("toll_free=3"), Ok((Kind::TollFree, 3.0)));
        assert!(parse_mps("toll_free=0").is_err() && parse_mps("landline=1").is_err());
    }

    #[test]
    fn dists() {
        assert_eq!(parse_dist("uniform"), Ok(Dist::Uniform));
        assert_eq!(parse_dist("zipf:1.2"), Ok(Dist::Zipf(1.2)));
        assert_eq!(parse_dist("zipf"), Ok(Dist::Zipf(1.0)));
        assert!(parse_dist("zipf:0").is_err());
        assert!(parse_dist("normal").is_err());
    }
}
