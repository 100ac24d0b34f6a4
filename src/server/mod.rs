//! `numpool serve` (feature `server`): the Telnyx-compatible HTTP API over
//! an [`Engine`](crate::Engine), and its configuration from flags,
//! `NUMPOOL_*` environment variables and a TOML file.
//!
//! - `cli`: the command line (`serve`, `repair`, `cluster`, `backup`,
//!   `restore`, `import`); `config`: `serve`'s settings (flags,
//!   environment, file, defaults) and their checks; `cluster_cli`:
//!   `numpool cluster status|switchover`; `transfer_cli`: `numpool
//!   backup|restore|import`;
//! - `http`: the routes (one table registers them and generates
//!   `/v2/openapi.json`), request reading, the JSON records, errors, auth,
//!   idempotency, metrics.
//!
//! The binary (`src/bin/numpool.rs`) only calls [`main`]. Tests and
//! embedders that want the HTTP API in-process call [`http_server`] with a
//! bound listener (`127.0.0.1:0` in tests).

mod cli;
mod cluster_cli;
mod config;
mod http;
mod transfer_cli;

pub use http::auth::{webhook_key, KeyError};
pub use http::{server as http_server, tls, ApiKeys, HttpOptions, DEFAULT_BODY_LIMIT};

/// The `numpool` command: parses the command line and runs it.
pub fn main() -> std::process::ExitCode {
    cli::main()
}
