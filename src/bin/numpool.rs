//! The `numpool` binary: parse the configuration, recover the journaled
//! state, start the engine and the HTTP API, stop gracefully on Ctrl-C or
//! SIGTERM.

use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use numpool::cli::{Cli, Command};
use numpool::engine::Engine;
use numpool::SystemClock;

fn main() -> ExitCode {
    let Cli { command } = Cli::parse();
    let Command::Serve(args) = command;
    let config = match args.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("numpool: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(config.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("numpool: cannot listen on {}: {e}", config.listen);
            return ExitCode::from(1);
        }
    };
    let address = listener.local_addr().map_or(config.listen, |a| a);
    println!("{}", config.describe());
    let (engine, recovered) = match Engine::recover(config.engine.clone(), Arc::new(SystemClock)) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("numpool: cannot start the engine: {e}");
            return ExitCode::from(1);
        }
    };
    for warning in &recovered.warnings {
        eprintln!("numpool: recovery: {warning}");
    }
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
    // Connections are only answered (and /readyz says ready) once recovery is done.
    println!(
        "numpool {} listening on http://{address}/v2",
        env!("CARGO_PKG_VERSION")
    );
    let result = actix_web::rt::System::new().block_on(async {
        let (server, _state) = numpool::http::server(listener, engine.clone(), config.http)?;
        let outcome = server.await;
        engine.shutdown().await;
        outcome
    });
    match result {
        Ok(()) => {
            println!("numpool: stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("numpool: {e}");
            ExitCode::from(1)
        }
    }
}
