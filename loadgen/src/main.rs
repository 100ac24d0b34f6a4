//! `loadgen`: parse the flags, generate the workload, run each engine,
//! print the summary, write the JSON and the plot.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use loadgen::args::{Args, EngineKind};
use loadgen::driver::{self, DriverConfig};
use loadgen::report::{self, RunReport};
use loadgen::target::{HttpTarget, NaiveTarget, NumpoolTarget, RedisTarget, Target, TargetError};
use loadgen::target_flags;
use loadgen::workload::{Workload, WorkloadSpec};
use numpool::clock::{ManualClock, SystemClock};
use numpool::Clock;

fn main() -> ExitCode {
    let args = Args::parse();
    let spec = WorkloadSpec {
        profiles: args.profiles,
        numbers: args.numbers,
        recipients: args.recipients,
        dist: args.dist,
        messages: args.messages,
        seed: args.seed,
        unhealthy_fraction: args.unhealthy_fraction,
    };
    let workload = match Workload::generate(&spec) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let description = format!(
        "{} messages, {} profiles x {} numbers, {} recipients ({:?}), sticky {}, geomatch {}, skip-unhealthy {} ({:.0}% unhealthy), ttl {:?}, sim-rate {:?}/msg, batch {}, concurrency {}, {}, seed {}",
        args.messages, args.profiles, args.numbers, args.recipients, args.dist, args.sticky, args.geomatch,
        args.skip_unhealthy, args.unhealthy_fraction * 100.0, args.ttl, args.sim_rate, args.batch, args.concurrency,
        args.rate.map_or("closed loop".to_string(), |r| format!("open loop at {r:.0} msg/s")), args.seed
    );
    let cfg = DriverConfig {
        batch: args.batch as usize,
        concurrency: args.concurrency as usize,
        rate: args.rate,
        sim_rate: args.sim_rate,
        progress: !args.quiet && std::io::stderr().is_terminal(),
    };
    let mut reports: Vec<RunReport> = Vec::new();
    for kind in args.engines() {
        // Every engine starts from the same simulated instant.
        let clock = Arc::new(ManualClock::new(SystemClock.now()));
        let flags = target_flags(&args);
        let target: Result<Box<dyn Target>, TargetError> = match kind {
            EngineKind::Numpool => {
                NumpoolTarget::start(&workload, flags, clock.clone()).map(|t| Box::new(t) as _)
            }
            EngineKind::Naive => Ok(Box::new(NaiveTarget::new(
                &workload,
                args.sticky,
                flags.ttl_secs,
            ))),
            EngineKind::Redis => RedisTarget::connect(
                &args.redis_url,
                &workload,
                cfg.concurrency,
                args.sticky,
                flags.ttl_secs,
            )
            .map(|t| Box::new(t) as _),
            EngineKind::Http => {
                let url = args
                    .target
                    .clone()
                    .unwrap_or_else(|| "http://127.0.0.1:8080/v2".into());
                HttpTarget::connect(&url, &args.api_key, &workload, flags, cfg.concurrency)
                    .map(|t| Box::new(t) as _)
            }
            EngineKind::All => continue,
        };
        let target = match target {
            Ok(t) => t,
            Err(e) if kind == EngineKind::Redis && args.engine.contains(&EngineKind::All) => {
                eprintln!("loadgen: skipping redis: {e}");
                continue;
            }
            Err(e) => {
                eprintln!("loadgen: {e}");
                return ExitCode::from(1);
            }
        };
        let result = driver::run(target.as_ref(), &workload, &clock, &cfg);
        target.shutdown();
        match result {
            Ok(r) => reports.push(r),
            Err(e) => {
                eprintln!("loadgen: {e}");
                return ExitCode::from(1);
            }
        }
    }
    print!("{}", report::summary(&description, &reports));
    if let Some(path) = &args.json {
        let doc = serde_json::json!({
            "workload": description,
            "runs": reports.iter().map(RunReport::to_json).collect::<Vec<_>>(),
        });
        if let Err(e) = std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap_or_default())
        {
            eprintln!("loadgen: cannot write {}: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    if let Some(path) = &args.plot {
        if let Err(e) = report::plot(&reports, path) {
            eprintln!("loadgen: cannot draw {}: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}
