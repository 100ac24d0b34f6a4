//! `loadgen`: parse the flags, generate the workload, run each engine,
//! print the summary, write the JSON and the plot.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use std::time::Duration;

use loadgen::args::{Args, Arrival, EngineKind};
use loadgen::driver::{self, DriverConfig};
use loadgen::durability;
use loadgen::report::{self, RunContext, RunReport};
use loadgen::target::{
    FloorTarget, HttpTarget, NaiveTarget, NumpoolTarget, RedisTarget, Target, TargetError,
};
use loadgen::workload::{Workload, WorkloadSpec};
use loadgen::{capacity_flags, target_flags};
use numpool::test_util::ManualClock;
use numpool::Clock;
use numpool::JournalConfig;
use numpool::SystemClock;

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
        "{} messages, {} profiles x {} numbers, {} recipients ({:?}), sticky {}, geomatch {}, skip-unhealthy {} ({:.0}% unhealthy), ttl {:?}, sim-rate {:?}/msg, batch {}, concurrency {}{}, {}, seed {}",
        args.messages, args.profiles, args.numbers, args.recipients, args.dist, args.sticky, args.geomatch,
        args.skip_unhealthy, args.unhealthy_fraction * 100.0, args.ttl, args.sim_rate, args.batch, args.concurrency,
        if args.async_calls { " (async calls)" } else { "" },
        args.rate.map_or("closed loop".to_string(), |r| format!("open loop at {r:.0} msg/s")), args.seed
    );
    let capacity = capacity_flags(&args);
    // The arrival rate at which the busiest pool (the workload does not
    // load profiles evenly) runs at its capacity.
    let mut per_profile = vec![0u64; workload.senders.len()];
    for r in &workload.requests {
        per_profile[r.profile as usize] += 1;
    }
    let pools_rate = workload
        .senders
        .iter()
        .zip(&per_profile)
        .map(|(s, &n)| capacity.pool_rate(s) * workload.requests.len() as f64 / n.max(1) as f64)
        .fold(f64::INFINITY, f64::min);
    let arrival = args.arrival_rate.map(|a| match a {
        Arrival::PerSecond(r) => r,
        Arrival::Share(share) => share * pools_rate,
    });
    let sim_rate = arrival.map_or(args.sim_rate, |r| Duration::from_secs_f64(1.0 / r));
    let capacity_line = if capacity.enabled {
        format!(
            "capacity on ({} picks; rates long code {}/s, toll-free {}/s; queue cap {:?}{})",
            if capacity.load_aware { "load-aware" } else { "round-robin" },
            capacity.rates.long_code,
            capacity.rates.toll_free,
            args.max_queue,
            arrival.map_or(String::new(), |r| format!(
                "; arrivals {r:.1} msg/s of simulated time, {:.0}% of the {pools_rate:.0} msg/s at which the busiest pool is full under its 4:1 weights",
                100.0 * r / pools_rate
            ))
        )
    } else {
        "capacity off".to_string()
    };
    let rounds = if args.rounds > 1 {
        format!(
            ", {} rounds (engines alternating in order; the median round shown)",
            args.rounds
        )
    } else {
        String::new()
    };
    let description = format!(
        "{}, {capacity_line}{rounds}",
        description.replace(
            &format!("sim-rate {:?}/msg", args.sim_rate),
            &format!("sim-rate {sim_rate:?}/msg")
        )
    );
    let cfg = DriverConfig {
        batch: args.batch as usize,
        concurrency: args.concurrency as usize,
        rate: args.rate,
        sim_rate,
        progress: !args.quiet && std::io::stderr().is_terminal(),
    };
    let kinds = args.engines();
    // Every round runs every engine; odd rounds in reverse order, so that
    // no engine always runs first (or last) on a machine that warms up or
    // gets busier.
    let mut runs: Vec<Vec<RunReport>> = kinds.iter().map(|_| Vec::new()).collect();
    let mut durability: Vec<String> = Vec::new();
    for round in 0..args.rounds {
        let mut order: Vec<usize> = (0..kinds.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            match measure(kinds[i], &args, &workload, &cfg) {
                Ok(Some((report, line))) => {
                    runs[i].push(report);
                    durability.extend(line);
                }
                Ok(None) => {}
                Err(e) => {
                    eprintln!("loadgen: {e}");
                    return ExitCode::from(1);
                }
            }
        }
    }
    let reports: Vec<RunReport> = runs.into_iter().filter_map(RunReport::median_of).collect();
    let mut naive_lacks = Vec::new();
    let mut redis_lacks = Vec::new();
    if args.geomatch {
        redis_lacks.push("geomatch");
    }
    if args.skip_unhealthy || args.unhealthy_fraction > 0.0 {
        naive_lacks.push("health");
        redis_lacks.push("health");
    }
    let ctx = RunContext {
        batch: args.batch,
        offered: args.rate,
        naive_lacks,
        redis_lacks,
    };
    print!("{}", report::summary(&description, &reports, &ctx));
    for line in &durability {
        println!("{line}");
    }
    if let Some(path) = &args.json {
        let doc = serde_json::json!({
            "commit": git_commit(),
            "date": SystemClock.now().to_rfc3339(),
            "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "latency_sample": ctx.sample(),
            "workload": description,
            "args": format!("{args:?}"),
            "spec": {
                "messages": args.messages, "profiles": args.profiles, "numbers": args.numbers,
                "recipients": args.recipients, "dist": format!("{:?}", args.dist),
                "sticky": args.sticky, "geomatch": args.geomatch,
                "skip_unhealthy": args.skip_unhealthy, "unhealthy_fraction": args.unhealthy_fraction,
                "ttl_secs": args.ttl.as_secs(), "sim_rate_ns": cfg.sim_rate.as_nanos() as u64,
                "batch": args.batch, "concurrency": args.concurrency, "rate": args.rate,
                "seed": args.seed, "capacity": !args.no_capacity, "round_robin": args.round_robin,
            },
            "runs": reports.iter().map(RunReport::to_json).collect::<Vec<_>>(),
        });
        if let Err(e) = std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap_or_default())
        {
            eprintln!("loadgen: cannot write {}: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    if let Some(path) = &args.plot {
        if let Err(e) = report::plot(&reports, path, &description, &ctx) {
            eprintln!("loadgen: cannot draw {}: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}

/// One run of the engine `kind` on `workload`: its report and, for the
/// journal, the line on its snapshot and recovery. `None`: skipped (Redis
/// under `--engine all` when none answers).
fn measure(
    kind: EngineKind,
    args: &Args,
    workload: &Workload,
    cfg: &DriverConfig,
) -> Result<Option<(RunReport, Option<String>)>, String> {
    // Every engine starts from the same simulated instant.
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let flags = target_flags(args);
    if kind == EngineKind::Journal {
        let (report, line) = run_journal(args, workload, cfg, clock).map_err(|e| e.to_string())?;
        return Ok(Some((report, Some(line))));
    }
    let target: Result<Box<dyn Target>, TargetError> = match kind {
        EngineKind::Floor => Ok(Box::new(FloorTarget::new(workload))),
        EngineKind::Numpool => {
            NumpoolTarget::start(workload, flags, clock.clone(), cfg.concurrency)
                .map(|t| Box::new(t.with_async_calls(args.async_calls)) as _)
        }
        EngineKind::Mailbox => {
            NumpoolTarget::start_mailbox(workload, flags, clock.clone(), cfg.concurrency)
                .map(|t| Box::new(t.with_async_calls(args.async_calls)) as _)
        }
        EngineKind::Naive => Ok(Box::new(NaiveTarget::new(
            workload,
            args.sticky,
            args.geomatch,
            flags.ttl_secs,
        ))),
        EngineKind::Redis => RedisTarget::connect(
            &args.redis_url,
            workload,
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
            HttpTarget::connect(&url, &args.api_key, workload, flags, cfg.concurrency)
                .map(|t| Box::new(t) as _)
        }
        EngineKind::All | EngineKind::Journal => return Ok(None),
    };
    let target = match target {
        Ok(t) => t,
        Err(e) if kind == EngineKind::Redis && args.engine.contains(&EngineKind::All) => {
            eprintln!("loadgen: skipping redis: {e}");
            return Ok(None);
        }
        Err(e) => return Err(e.to_string()),
    };
    // The floor is one thread by definition.
    let floor_cfg = DriverConfig {
        concurrency: 1,
        ..cfg.clone()
    };
    let run_cfg = if kind == EngineKind::Floor {
        &floor_cfg
    } else {
        cfg
    };
    let result = driver::run(target.as_ref(), workload, &clock, run_cfg);
    target.shutdown();
    result.map(|r| Some((r, None))).map_err(|e| e.to_string())
}

/// Runs numpool with its journal, then measures the snapshot stall and the
/// recovery of what it wrote. Returns the run and a line for the summary.
fn run_journal(
    args: &Args,
    workload: &Workload,
    cfg: &DriverConfig,
    clock: Arc<ManualClock>,
) -> Result<(RunReport, String), String> {
    let (dir, temporary) = match &args.data_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("loadgen-journal-{}", std::process::id())),
            true,
        ),
    };
    if std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(format!(
            "--data-dir {} is not empty: the journal engine needs a fresh directory",
            dir.display()
        ));
    }
    // A directory of the run's own goes when the run ends, on an error too.
    let _remove = temporary.then(|| RemoveDir(dir.clone()));
    let journal = JournalConfig {
        dir: dir.clone(),
        fsync: args
            .fsync
            .parse()
            .map_err(|e: numpool::FsyncPolicyError| e.to_string())?,
        snapshot_every: None,
    };
    let flags = target_flags(args);
    let target = NumpoolTarget::start_with(
        workload,
        flags,
        clock.clone(),
        Some(journal.clone()),
        cfg.concurrency,
    )
    .map_err(|e| e.to_string())?
    .with_async_calls(args.async_calls);
    let report = driver::run(&target, workload, &clock, cfg).map_err(|e| e.to_string())?;
    let d = durability::measure(&target, workload, &journal, clock).map_err(|e| e.to_string())?;
    let line = format!(
        "journal ({}): snapshot of {} mappings took {:.2?}; worst single send during it {:.2?} (without a snapshot {:.2?}); recovery of {} mappings took {:.2?}",
        args.fsync,
        d.recovered_mappings,
        d.snapshot_took,
        d.worst_during_snapshot,
        d.worst_without_snapshot,
        d.recovered_mappings,
        d.recovery_took
    );
    Ok((report, line))
}

/// Removes the directory it names when dropped.
struct RemoveDir(std::path::PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The commit of the checkout loadgen runs in, if it is one.
fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}
