//! `numpool cluster status` and `numpool cluster switchover`: an
//! operator's view of a cluster and its planned change of leader, through
//! the HTTP API of any of its nodes (`GET /cluster/status`,
//! `POST /cluster/switchover`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::Value;

use crate::cluster::peer::Request;
use crate::cluster::Peers;

/// `numpool cluster ...`.
#[derive(Debug, Subcommand)]
pub(super) enum ClusterCommand {
    /// Every member: role, epoch, applied position, lag, snapshot, when last heard from.
    Status(StatusArgs),
    /// Hand leadership over to a standby (the most caught-up one, or --to).
    Switchover(SwitchoverArgs),
}

/// Which node to ask.
#[derive(Debug, Args)]
pub(super) struct NodeArgs {
    /// Any node of the cluster.
    #[arg(long, env = "NUMPOOL_NODE", default_value = "http://127.0.0.1:8080")]
    pub node: String,
    /// The CA the node's certificate is checked against (an https:// node).
    #[arg(long, env = "NUMPOOL_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
}

/// Flags of `numpool cluster status`.
#[derive(Debug, Args)]
pub(super) struct StatusArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    /// Print the node's JSON answer as it is.
    #[arg(long)]
    pub json: bool,
}

/// The API key a command presents.
#[derive(Debug, Args)]
pub(super) struct KeyArgs {
    /// An API key of the server (or NUMPOOL_API_KEY, or --api-key-file).
    #[arg(long, env = "NUMPOOL_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// A file holding the API key (its first line).
    #[arg(long, env = "NUMPOOL_API_KEY_FILE", conflicts_with = "api_key")]
    pub api_key_file: Option<PathBuf>,
}

impl KeyArgs {
    /// The key given, read from its file if need be.
    pub(super) fn key(&self) -> Result<Option<String>, String> {
        match (&self.api_key, &self.api_key_file) {
            (Some(k), _) => Ok(Some(k.clone())),
            (None, Some(path)) => Ok(Some(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read the API key file {}: {e}", path.display()))?
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string(),
            )),
            (None, None) => Ok(None),
        }
    }

    /// The `Authorization` header for the key, if one was given.
    pub(super) fn headers(&self) -> Result<Vec<(String, String)>, String> {
        Ok(self
            .key()?
            .map(|k| ("Authorization".to_string(), format!("Bearer {k}")))
            .into_iter()
            .collect())
    }
}

/// Flags of `numpool cluster switchover`.
#[derive(Debug, Args)]
pub(super) struct SwitchoverArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    /// The member to hand over to (its advertised URL) [default: the most caught-up standby].
    #[arg(long)]
    pub to: Option<String>,
    #[command(flatten)]
    pub key: KeyArgs,
}

/// Runs a `numpool cluster` command.
pub(super) fn run(command: ClusterCommand) -> ExitCode {
    let outcome = match command {
        ClusterCommand::Status(args) => status(&args),
        ClusterCommand::Switchover(args) => switchover(&args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("numpool cluster: {e}");
            ExitCode::from(1)
        }
    }
}

/// Sends one request to `node`; returns the status and the JSON answer.
fn call(
    args: &NodeArgs,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: &[u8],
) -> Result<(u16, Value), String> {
    let node = args.node.as_str();
    let peers = Peers::new(args.tls_ca.as_deref()).map_err(|e| e.to_string())?;
    let mut headers = vec![("Content-Type".to_string(), "application/json".to_string())];
    if let Some(k) = key {
        headers.push(("Authorization".to_string(), format!("Bearer {k}")));
    }
    let request = Request {
        method: method.into(),
        path_and_query: path.into(),
        headers,
        body: body.to_vec(),
    };
    let (code, _, _, answer) = peers
        .exchange(
            node.trim_end_matches('/'),
            &request,
            Duration::from_secs(15),
        )
        .map_err(|e| format!("{node} did not answer: {e}"))?;
    let value = serde_json::from_slice(&answer).map_err(|_| {
        format!(
            "{node} answered {code} with no JSON: {}",
            String::from_utf8_lossy(&answer)
        )
    })?;
    Ok((code, value))
}

/// The `detail` of an error envelope, else the whole answer.
pub(super) fn detail(v: &Value) -> String {
    v["errors"][0]["detail"]
        .as_str()
        .map_or_else(|| v.to_string(), str::to_string)
}

fn status(args: &StatusArgs) -> Result<(), String> {
    let (code, v) = call(&args.node, "GET", "/cluster/status", None, b"")?;
    if code != 200 {
        return Err(format!(
            "{} answered {code}: {}",
            args.node.node,
            detail(&v)
        ));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    print!("{}", render_status(&v));
    Ok(())
}

/// The status answer as a table.
fn render_status(v: &Value) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
    let mut out = format!(
        "cluster {}: leader {} (epoch {}), log {}..{}, etcd {}\n",
        text(&v["cluster"]),
        text(&v["leader"]),
        v["epoch"],
        v["log_start"],
        v["head"],
        if v["etcd"]["reachable"].as_bool() == Some(true) {
            "reachable".to_string()
        } else {
            format!("NOT reachable ({})", text(&v["etcd"]["error"]))
        }
    );
    if let Some(to) = v["switchover"].as_str() {
        out.push_str(&format!("switchover under way to {to}\n"));
    }
    let rows: Vec<[String; 7]> = v["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|m| {
                    let mark = if m["this_node"].as_bool() == Some(true) {
                        " *"
                    } else {
                        ""
                    };
                    [
                        format!("{}{mark}", text(&m["url"])),
                        text(&m["role"]),
                        m["epoch"].to_string(),
                        m["applied"].to_string(),
                        m["lag"].to_string(),
                        m["snapshot"].to_string(),
                        format!("{:.1}s", m["heard_ms_ago"].as_f64().unwrap_or(0.0) / 1000.0),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    let head = [
        "MEMBER", "ROLE", "EPOCH", "APPLIED", "LAG", "SNAPSHOT", "HEARD",
    ]
    .map(str::to_string);
    let mut widths = [0; 7];
    for row in std::iter::once(&head).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    for row in std::iter::once(&head).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out.push_str("(* the node asked)\n");
    out
}

fn switchover(args: &SwitchoverArgs) -> Result<(), String> {
    let key = args.key.key()?;
    let body = serde_json::json!({ "to": args.to }).to_string();
    let (code, v) = call(
        &args.node,
        "POST",
        "/cluster/switchover",
        key.as_deref(),
        body.as_bytes(),
    )?;
    if code != 200 {
        return Err(format!("switchover refused ({code}): {}", detail(&v)));
    }
    println!(
        "numpool cluster: leadership handed over from {} to {}",
        v["data"]["from"].as_str().unwrap_or("?"),
        v["data"]["to"].as_str().unwrap_or("?")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_table_names_every_member_and_the_leader() {
        let v = serde_json::json!({
            "cluster": "east", "leader": "http://a:1", "epoch": 7, "head": 12, "log_start": 3,
            "switchover": null,
            "etcd": {"reachable": false, "last_answer_ms_ago": 3000, "error": "timed out"},
            "members": [
                {"url": "http://a:1", "role": "leader", "epoch": 7, "applied": 12, "lag": 0, "snapshot": 10, "heard_ms_ago": 0, "this_node": true},
                {"url": "http://b:2", "role": "standby", "epoch": 0, "applied": 11, "lag": 1, "snapshot": 9, "heard_ms_ago": 1500, "this_node": false}
            ]
        });
        let table = render_status(&v);
        assert!(table.starts_with("cluster east: leader http://a:1 (epoch 7), log 3..12, etcd NOT reachable (timed out)"), "{table}");
        assert!(table.contains("http://a:1 *  leader"), "{table}");
        assert!(
            table
                .lines()
                .any(|l| l.starts_with("http://b:2") && l.ends_with("1.5s")),
            "{table}"
        );
    }
}
