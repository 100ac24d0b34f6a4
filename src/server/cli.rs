//! The `numpool` command line: `serve` (the HTTP API, configured as
//! `config` says), `repair` (move a damaged journal's bytes aside),
//! `cluster` (`cluster_cli`), and `backup`, `restore` and `import`
//! (`transfer_cli`). The server's own output is its `tracing`
//! events on standard error (`--log-format text|json`); the banner and the
//! line saying where it listens also go to standard output, for whoever
//! started it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use super::config::ServeArgs;
use crate::cluster::Node;
use crate::Engine;

/// numpool: sender selection for SMS number pools.
#[derive(Debug, Parser)]
#[command(name = "numpool", version, about)]
pub(super) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(super) enum Command {
    /// Serve the Telnyx-compatible HTTP API.
    Serve(Box<ServeArgs>),
    /// Move the damaged bytes of a data directory's logs to side files,
    /// keeping every valid record, so `serve` can start again.
    Repair(RepairArgs),
    /// Look at a cluster and change its leader on purpose, through any node.
    #[command(subcommand)]
    Cluster(super::cluster_cli::ClusterCommand),
    /// Take a consistent backup of a running server (single node, or any
    /// node of a cluster) into a file.
    Backup(super::transfer_cli::BackupArgs),
    /// Make a new data directory from a backup (no server needed).
    Restore(super::transfer_cli::RestoreArgs),
    /// Import message history (CSV or NDJSON) into a profile of a running
    /// server, so recipients keep the number they saw.
    Import(super::transfer_cli::ImportArgs),
}

/// Flags of `numpool repair`.
#[derive(Debug, Args)]
pub(super) struct RepairArgs {
    /// The data directory to repair (no server may be running on it).
    #[arg(long, env = "NUMPOOL_DATA_DIR", default_value = super::config::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
}

/// Parses the command line and runs it.
pub(super) fn main() -> ExitCode {
    let Cli { command } = Cli::parse();
    match command {
        Command::Serve(args) => serve(*args),
        Command::Repair(args) => repair(&args.data_dir),
        Command::Cluster(command) => super::cluster_cli::run(command),
        Command::Backup(args) => {
            super::transfer_cli::run("backup", super::transfer_cli::backup(&args))
        }
        Command::Restore(args) => {
            super::transfer_cli::run("restore", super::transfer_cli::restore(&args))
        }
        Command::Import(args) => {
            super::transfer_cli::run("import", super::transfer_cli::import(&args))
        }
    }
}

/// Waits for SIGTERM or SIGINT; returns its name.
async fn stop_signal() -> &'static str {
    use actix_web::rt::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return futures::future::pending().await;
    };
    let name = match futures::future::select(Box::pin(term.recv()), Box::pin(int.recv())).await {
        futures::future::Either::Left(_) => "SIGTERM",
        futures::future::Either::Right(_) => "SIGINT",
    };
    name
}

fn repair(dir: &Path) -> ExitCode {
    match crate::repair(dir) {
        Ok(report) if report.moved.is_empty() => {
            tracing::info!(dir = %dir.display(), "repair: nothing damaged");
            println!("numpool repair: {}: nothing damaged", dir.display());
            ExitCode::SUCCESS
        }
        Ok(report) => {
            for m in report.moved {
                tracing::warn!(segment = %m.segment.display(), bytes = m.len, offset = m.offset, side_file = %m.side_file.display(), "repair: damaged bytes moved aside");
                println!(
                    "numpool repair: {}: {} damaged bytes at byte {} moved to {}",
                    m.segment.display(),
                    m.len,
                    m.offset,
                    m.side_file.display()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("numpool repair: {e}");
            ExitCode::from(1)
        }
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let config = match args.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("numpool: {e}");
            return ExitCode::from(2);
        }
    };
    config.log.install();
    let listener = match TcpListener::bind(config.listen) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(listen = %config.listen, error = %e, "cannot listen");
            eprintln!("numpool: cannot listen on {}: {e}", config.listen);
            return ExitCode::from(1);
        }
    };
    let address = listener.local_addr().map_or(config.listen, |a| a);
    let scheme = if config.http.tls.is_some() {
        "https"
    } else {
        "http"
    };
    // The banner for whoever started it, and the same as an event.
    println!("{}", config.describe());
    config.log_start_up();
    let engine = match Engine::start(config.engine.clone()) {
        Ok(e) => e,
        Err(e) => {
            // A data directory another process holds is named here.
            tracing::error!(error = %e, "cannot start");
            eprintln!("numpool: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let recovered = engine.recovery();
    if config.engine.journal.is_some() {
        println!(
            "recovered {} profiles, {} numbers, {} mappings in {:.1?} (snapshot {}, {} log records)",
            recovered.profiles,
            recovered.numbers,
            recovered.mappings,
            recovered.took,
            recovered.snapshot.map_or("none".to_string(), |s| s.to_string()),
            recovered.replayed_records
        );
    }
    let mut http = config.http;
    // Signals are ours: a cluster leader resigns before the server stops.
    http.handle_signals = false;
    let mut node = None;
    if let Some(mut cluster) = config.cluster {
        if cluster.advertise.ends_with(":0") {
            cluster.advertise = format!("{scheme}://{address}");
        }
        match Node::start(engine.clone(), cluster) {
            Ok(n) => {
                http.cluster = Some(n.status());
                node = Some(n);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot join the cluster");
                eprintln!("numpool: cannot join the cluster: {e}");
                return ExitCode::from(1);
            }
        }
    }
    // Connections are only answered (and /readyz says ready) once recovery is done.
    tracing::info!(address = %address, tls = scheme == "https", "listening");
    println!(
        "numpool {} listening on {scheme}://{address}/v2",
        env!("CARGO_PKG_VERSION")
    );
    let result = actix_web::rt::System::new().block_on(async {
        let server = super::http::server(listener, engine.clone(), http)?;
        let handle = server.handle();
        let running = actix_web::rt::spawn(server);
        let outcome = match futures::future::select(running, Box::pin(stop_signal())).await {
            // The server ended by itself (it failed).
            futures::future::Either::Left((ended, _)) => ended.unwrap_or(Ok(())),
            futures::future::Either::Right((signal, running)) => {
                tracing::info!(signal, "stopping");
                println!("numpool: {signal}: stopping");
                // A leader stops taking changes and resigns first, so that a
                // standby leads at once; requests still arriving meanwhile
                // are refused with 503 or forwarded.
                if let Some(mut node) = node.take() {
                    let _ = actix_web::rt::task::spawn_blocking(move || node.stop()).await;
                }
                handle.stop(true).await;
                running.await.unwrap_or(Ok(()))
            }
        };
        engine.shutdown().await;
        outcome
    });
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            println!("numpool: stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "the server failed");
            eprintln!("numpool: {e}");
            ExitCode::from(1)
        }
    }
}
