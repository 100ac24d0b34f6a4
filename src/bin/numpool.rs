//! The `numpool` binary: parse the configuration, start the engine and the
//! HTTP API, stop gracefully on Ctrl-C or SIGTERM.

use std::net::TcpListener;
use std::process::ExitCode;

use clap::Parser;
use numpool::cli::{Cli, Command};
use numpool::engine::Engine;

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
    let engine = match Engine::start(config.engine.clone()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("numpool: cannot start the engine: {e}");
            return ExitCode::from(1);
        }
    };
    println!(
        "numpool {} listening on http://{address}/v2",
        env!("CARGO_PKG_VERSION")
    );
    println!("{}", config.describe());
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
