//! numpool over HTTP: a running `numpool serve` driven through
//! `POST /v2/messages/number_pool`, one keep-alive connection per client
//! thread, `--batch` requests pipelined per round trip.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;

use numpool::Timestamp;
use serde_json::{json, Value};

use super::in_process::PoolFlags;
use super::{BatchOutcome, Target, TargetError};
use crate::workload::{Request, Workload};

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

/// A response: status and body.
struct Reply {
    status: u16,
    body: String,
}

impl Conn {
    fn open(host: &str) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(host)?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    fn read_reply(&mut self) -> std::io::Result<Reply> {
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut length = 0usize;
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 || line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; length];
        self.reader.read_exact(&mut body)?;
        Ok(Reply {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}

pub struct HttpTarget {
    host: String,
    base: String,
    key: String,
    profiles: Vec<String>,
    connections: Vec<Mutex<Option<Conn>>>,
}

fn request_text(host: &str, method: &str, path: &str, key: &str, body: &str) -> String {
    let auth = if key.is_empty() {
        String::new()
    } else {
        format!("Authorization: Bearer {key}\r\n")
    };
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

impl HttpTarget {
    /// Connects to `url` (e.g. `http://127.0.0.1:8080/v2`) and creates the
    /// workload's profiles and numbers through the API.
    pub fn connect(
        url: &str,
        key: &str,
        workload: &Workload,
        flags: PoolFlags,
        workers: usize,
    ) -> Result<Self, TargetError> {
        let setup = |message: String| TargetError::Setup {
            target: "http",
            message,
        };
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| setup(format!("{url:?}: only http:// URLs are supported")))?;
        let (host, base) = rest
            .split_once('/')
            .map_or((rest, String::new()), |(h, b)| {
                (h, format!("/{}", b.trim_end_matches('/')))
            });
        let mut target = HttpTarget {
            host: host.to_string(),
            base,
            key: key.to_string(),
            profiles: Vec::new(),
            connections: (0..workers).map(|_| Mutex::new(None)).collect(),
        };
        let mut conn =
            Conn::open(host).map_err(|e| setup(format!("cannot connect to {host}: {e}")))?;
        let mut call = |method: &str, path: &str, body: Value| -> Result<Value, TargetError> {
            let text = request_text(
                &target.host,
                method,
                &format!("{}{path}", target.base),
                key,
                &body.to_string(),
            );
            conn.writer
                .write_all(text.as_bytes())
                .map_err(|e| setup(e.to_string()))?;
            let reply = conn.read_reply().map_err(|e| setup(e.to_string()))?;
            if reply.status != 200 {
                return Err(setup(format!(
                    "{method} {path}: HTTP {} {}",
                    reply.status, reply.body
                )));
            }
            serde_json::from_str(&reply.body).map_err(|e| setup(e.to_string()))
        };
        let settings = match flags.settings() {
            numpool::SettingsUpdate::Merge(p) => json!({
                "sticky_sender": p.sticky_sender, "geomatch": p.geomatch, "skip_unhealthy": p.skip_unhealthy,
                "long_code_weight": p.long_code_weight, "toll_free_weight": p.toll_free_weight,
                "sticky_ttl_secs": p.sticky_ttl_secs,
            }),
            _ => Value::Null,
        };
        let mut profiles = Vec::new();
        for (p, senders) in workload.senders.iter().enumerate() {
            let created = call(
                "POST",
                "/messaging_profiles",
                json!({"name": format!("loadgen-{p}"), "whitelisted_destinations": ["*"],
                       "number_pool_settings": settings,
                       "max_queue_seconds": flags.capacity.max_queue_secs}),
            )?;
            let id = created["data"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            for n in senders {
                call(
                    "PATCH",
                    &format!("/phone_numbers/{n}/messaging"),
                    json!({"messaging_profile_id": id}),
                )?;
            }
            profiles.push(id);
        }
        for (i, n) in workload.unhealthy.iter().enumerate() {
            for k in 0..20 {
                call(
                    "POST",
                    "/webhooks/messaging",
                    json!({"data": {"event_type": "message.finalized", "id": format!("loadgen-{i}-{k}-{}", std::process::id()),
                        "payload": {"from": {"phone_number": n.to_string()}, "to": [{"status": "delivery_failed"}], "errors": []}}}),
                )?;
            }
        }
        target.profiles = profiles;
        Ok(target)
    }
}

impl Target for HttpTarget {
    fn name(&self) -> &'static str {
        "http"
    }

    fn select(
        &self,
        worker: usize,
        batch: &[Request],
        _now: Timestamp,
    ) -> Result<BatchOutcome, TargetError> {
        let failed = |message: String| TargetError::Request {
            target: "http",
            message,
        };
        let mut slot = self.connections[worker % self.connections.len()]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(Conn::open(&self.host).map_err(|e| failed(e.to_string()))?);
        }
        let conn = slot.as_mut().expect("just opened");
        let path = format!("{}/messages/number_pool", self.base);
        let mut text = String::new();
        for r in batch {
            let body = format!(
                "{{\"messaging_profile_id\":\"{}\",\"to\":\"{}\",\"text\":\"loadgen\"}}",
                self.profiles[r.profile as usize], r.recipient
            );
            text.push_str(&request_text(&self.host, "POST", &path, &self.key, &body));
        }
        if let Err(e) = conn.writer.write_all(text.as_bytes()) {
            *slot = None;
            return Err(failed(e.to_string()));
        }
        let mut out = BatchOutcome::default();
        for _ in batch {
            let reply = match conn.read_reply() {
                Ok(r) => r,
                Err(e) => {
                    *slot = None;
                    return Err(failed(e.to_string()));
                }
            };
            if reply.status == 200 {
                let reason = serde_json::from_str::<Value>(&reply.body)
                    .ok()
                    .and_then(|v| {
                        v["data"]["selection"]["reason"]
                            .as_str()
                            .map(str::to_string)
                    })
                    .unwrap_or_default();
                out.count(&reason);
            } else if reply.body.contains("\"40318\"") {
                out.queue_full += 1;
            } else {
                out.failed += 1;
            }
        }
        Ok(out)
    }

    fn live_mappings(&self) -> u64 {
        // From the server's own gauge.
        let Ok(mut conn) = Conn::open(&self.host) else {
            return 0;
        };
        let text = request_text(&self.host, "GET", "/metrics", "", "");
        if conn.writer.write_all(text.as_bytes()).is_err() {
            return 0;
        }
        conn.read_reply().ok().map_or(0, |r| {
            r.body
                .lines()
                .find_map(|l| l.strip_prefix("numpool_live_mappings "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        })
    }

    fn bytes_per_mapping(&self) -> Option<f64> {
        None
    }
}
