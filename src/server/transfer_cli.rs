//! Moving state in and out of a running server from the command line:
//! `numpool backup` (`GET /backup` to a file), `numpool restore` (a data
//! directory from such a file, no server needed) and `numpool import`
//! (a message-history file streamed to a profile's
//! `POST .../sticky_mappings/import`, with progress on a terminal).

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::Value;

use super::cluster_cli::{detail, KeyArgs, NodeArgs};
use crate::cluster::peer::Request;
use crate::cluster::Peers;

/// Flags of `numpool backup`.
#[derive(Debug, Args)]
pub(super) struct BackupArgs {
    /// Where to write the backup (written whole, then renamed into place).
    #[arg(long)]
    pub to: PathBuf,
    #[command(flatten)]
    pub node: NodeArgs,
    #[command(flatten)]
    pub key: KeyArgs,
}

/// Flags of `numpool restore`.
#[derive(Debug, Args)]
pub(super) struct RestoreArgs {
    /// A file `numpool backup` wrote.
    pub file: PathBuf,
    /// The data directory to make; it must be new or empty.
    #[arg(long, env = "NUMPOOL_DATA_DIR")]
    pub data_dir: PathBuf,
}

/// Flags of `numpool import`.
#[derive(Debug, Args)]
pub(super) struct ImportArgs {
    /// The messaging profile to import into.
    #[arg(long)]
    pub profile: String,
    /// Message history: CSV with a header, or NDJSON (see docs/API.md).
    pub file: PathBuf,
    #[command(flatten)]
    pub node: NodeArgs,
    #[command(flatten)]
    pub key: KeyArgs,
}

/// The largest backup taken (a guard against a runaway answer).
const MAX_BACKUP_BYTES: u64 = 64 << 30;

/// Runs `numpool backup`, `restore` or `import`, printing what it did (or
/// why not) and returning the exit code.
pub(super) fn run(name: &str, outcome: Result<String, String>) -> ExitCode {
    match outcome {
        Ok(said) => {
            println!("numpool {name}: {said}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("numpool {name}: {e}");
            ExitCode::from(1)
        }
    }
}

/// `numpool backup`: streams `GET /backup` to a temporary file beside
/// `--to`, checks its checksum and that it is a whole snapshot, then
/// renames it into place.
pub(super) fn backup(args: &BackupArgs) -> Result<String, String> {
    let node = args.node.node.trim_end_matches('/');
    let peers = Peers::new(args.node.tls_ca.as_deref()).map_err(|e| e.to_string())?;
    let request = Request {
        method: "GET".into(),
        path_and_query: "/backup".into(),
        headers: args.key.headers()?,
        body: Vec::new(),
    };
    let partial = args.to.with_extension("partial");
    let fetched = peers.fetch_to_file(
        node,
        &request,
        Duration::from_secs(3600),
        &partial,
        MAX_BACKUP_BYTES,
    );
    let checked = (|| {
        let (code, size, crc, error) = fetched.map_err(|e| format!("{node}: {e}"))?;
        if code != 200 {
            let v: Value = serde_json::from_slice(&error).unwrap_or(Value::Null);
            return Err(format!("{node} answered {code}: {}", detail(&v)));
        }
        let bytes =
            std::fs::read(&partial).map_err(|e| format!("reading {}: {e}", partial.display()))?;
        if bytes.len() as u64 != size || crc.is_some_and(|c| c != crc32fast::hash(&bytes)) {
            return Err(format!(
                "the backup {node} sent does not match its checksum"
            ));
        }
        let (profiles, _) = crate::journal::snapshot::examine(&bytes)
            .ok_or_else(|| format!("the backup {node} sent is not a whole snapshot"))?;
        std::fs::rename(&partial, &args.to).map_err(|e| format!("{}: {e}", args.to.display()))?;
        Ok(format!(
            "{} bytes, {} profiles, written to {}",
            size,
            profiles.len(),
            args.to.display()
        ))
    })();
    if checked.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    checked
}

/// `numpool restore`.
pub(super) fn restore(args: &RestoreArgs) -> Result<String, String> {
    let report = crate::restore(&args.file, &args.data_dir).map_err(|e| e.to_string())?;
    Ok(format!(
        "{} profiles restored into {} ({} bytes); start it with: numpool serve --data-dir {}",
        report.profiles,
        args.data_dir.display(),
        report.bytes,
        args.data_dir.display()
    ))
}

/// `numpool import`: streams the file (never held whole) and prints the
/// server's counts; on a terminal, how much has been sent as it goes.
pub(super) fn import(args: &ImportArgs) -> Result<String, String> {
    let node = args.node.node.trim_end_matches('/');
    let peers = Peers::new(args.node.tls_ca.as_deref()).map_err(|e| e.to_string())?;
    let file = std::fs::File::open(&args.file)
        .map_err(|e| format!("cannot read {}: {e}", args.file.display()))?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut headers = args.key.headers()?;
    headers.push(("Content-Type".into(), content_type(&args.file).into()));
    let leader = leader_instead(&peers, node);
    if let Some(leader) = &leader {
        eprintln!("numpool import: {node} is a standby; sending to the leader, {leader}");
    }
    let node = leader.as_deref().unwrap_or(node);
    let mut body = Progress::new(file, total, std::io::stderr().is_terminal());
    let answer = peers.upload(
        node,
        "POST",
        &format!(
            "/v2/messaging_profiles/{}/sticky_mappings/import",
            args.profile
        ),
        &headers,
        &mut body,
        Duration::from_secs(3600),
    );
    body.finish();
    let (code, _, _, bytes) = answer.map_err(|e| format!("{node}: {e}"))?;
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if code != 200 {
        return Err(format!("{node} answered {code}: {}", detail(&v)));
    }
    Ok(render_import(&v["data"]))
}

/// The leader, when `node` is a cluster's standby that knows it and the
/// leader answers here: a standby passes on request bodies up to its body
/// limit only, where the leader reads an import of any size as it arrives.
/// `None` for anything else (the leader itself, a server on its own, no
/// answer, a leader that does not answer here, or one reached over plain
/// HTTP where `node` was HTTPS: the key is not sent in the clear): the
/// import then goes to `node` as asked.
fn leader_instead(peers: &Peers, node: &str) -> Option<String> {
    let readyz = |url: &str| -> Option<Value> {
        let request = Request {
            method: "GET".into(),
            path_and_query: "/readyz".into(),
            headers: Vec::new(),
            body: Vec::new(),
        };
        let (_, _, _, bytes) = peers.exchange(url, &request, Duration::from_secs(5)).ok()?;
        serde_json::from_slice(&bytes).ok()
    };
    let v = readyz(node)?;
    let leader = v["leader"].as_str()?.trim_end_matches('/').to_string();
    let downgrade = node.starts_with("https://") && !leader.starts_with("https://");
    (v["role"] == "standby" && !downgrade && readyz(&leader).is_some()).then_some(leader)
}

/// The content type a history file is sent with, by its extension.
fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("csv") => "text/csv",
        _ => "application/x-ndjson",
    }
}

/// An import's counts, and its first bad lines, for a person.
fn render_import(d: &Value) -> String {
    let skipped = &d["skipped"];
    let mut out = format!(
        "{} rows: {} mapped, {} kept (a newer mapping was there); skipped: {} malformed, {} expired, {} sender not in the pool, {} superseded, {} inbound",
        d["rows"], d["mapped"], d["kept_existing"], skipped["malformed"], skipped["expired"],
        skipped["not_in_pool"], skipped["superseded"], skipped["inbound"]
    );
    for e in d["errors"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "\n  line {}: {}",
            e["line"],
            e["detail"].as_str().unwrap_or("?")
        ));
    }
    out
}

/// A reader that shows on standard error how much of it has been read
/// (when `show`), at most four times a second.
struct Progress<R> {
    inner: R,
    read: u64,
    total: u64,
    show: bool,
    started: Instant,
    shown: Instant,
}

impl<R> Progress<R> {
    fn new(inner: R, total: u64, show: bool) -> Self {
        let now = Instant::now();
        Progress {
            inner,
            read: 0,
            total,
            show,
            started: now,
            shown: now,
        }
    }

    fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        let percent = if self.total > 0 {
            100.0 * self.read as f64 / self.total as f64
        } else {
            100.0
        };
        format!(
            "\r{percent:5.1}%  {:.1} of {:.1} MiB sent, {:.1} MiB/s",
            mib(self.read),
            mib(self.total),
            mib(self.read) / secs
        )
    }

    /// Ends the progress line (the answer follows on its own line).
    fn finish(&self) {
        if self.show {
            let _ = writeln!(std::io::stderr(), "{}", self.line());
        }
    }
}

impl<R: Read> Read for Progress<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.show && self.shown.elapsed() >= Duration::from_millis(250) {
            self.shown = Instant::now();
            let _ = write!(std::io::stderr(), "{}", self.line());
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_import_report_names_every_count_and_each_bad_line() {
        let d = serde_json::json!({
            "rows": 5, "mapped": 2, "kept_existing": 1,
            "skipped": {"malformed": 1, "expired": 1, "not_in_pool": 0, "superseded": 0, "inbound": 0},
            "errors": [{"line": 4, "detail": "`to` is not a phone number"}]
        });
        let text = render_import(&d);
        assert!(text.starts_with("5 rows: 2 mapped, 1 kept"), "{text}");
        assert!(text.contains("1 malformed, 1 expired"), "{text}");
        assert!(
            text.ends_with("line 4: `to` is not a phone number"),
            "{text}"
        );
    }

    #[test]
    fn history_files_are_sent_as_csv_or_ndjson_by_extension() {
        assert_eq!(content_type(Path::new("log.CSV")), "text/csv");
        assert_eq!(
            content_type(Path::new("export.ndjson")),
            "application/x-ndjson"
        );
        assert_eq!(content_type(Path::new("history")), "application/x-ndjson");
    }

    #[test]
    fn progress_counts_what_was_read() {
        let mut p = Progress::new(&b"0123456789"[..], 10, false);
        let mut out = Vec::new();
        p.read_to_end(&mut out).unwrap();
        assert_eq!(p.read, 10);
        assert!(p.line().contains("100.0%"), "{}", p.line());
    }
}
