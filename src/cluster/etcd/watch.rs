//! Watches, in windows: one request delivers the changes of a key (or a
//! range) from a revision on as etcd sends them, until nothing has come
//! for a window (so that its caller can stop between windows), the caller
//! says stop, or etcd cancels it (a compacted start revision). The caller
//! watches again from the revision each call returns.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use serde_json::{json, Value};

use super::json::{b64, http_error, parse_stream_line, WatchResponseJson};
use super::{EtcdClient, EtcdError, Failure, WatchEvent};

/// Options of a watch beyond its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WatchOptions {
    /// Watch `[key, range_end)` rather than the key alone (see
    /// [`super::prefix_end`]).
    pub range_end: Option<Vec<u8>>,
    /// Deliver the changes from this revision on (it may be in the past, as
    /// long as it is not compacted); `None` for the changes after the watch
    /// is created.
    pub start_revision: Option<i64>,
    /// Deliver the previous value with each event.
    pub prev_kv: bool,
    /// Return when nothing has arrived for this long.
    pub window: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            range_end: None,
            start_revision: None,
            prev_kv: false,
            window: Duration::from_millis(250),
        }
    }
}

/// How a watch call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WatchEnd {
    /// Nothing came for a window, or the caller said stop: watch again from
    /// `next` to go on.
    Paused {
        /// The revision the next watch starts from.
        next: i64,
    },
    /// etcd canceled the watch because its start revision was compacted:
    /// read the keys again, then watch from after that read.
    Compacted {
        /// The oldest revision still available.
        compact_revision: i64,
    },
}

impl EtcdClient {
    /// Watches `key` with `options`, handing every message (events, and
    /// progress notifications) to `on` as it arrives; `on` returns whether
    /// to go on. See the module docs.
    pub(crate) fn watch(
        &self,
        key: &[u8],
        options: &WatchOptions,
        mut on: impl FnMut(WatchEvent) -> bool,
    ) -> Result<WatchEnd, EtcdError> {
        let mut create = serde_json::Map::new();
        create.insert("key".into(), b64::encode(key).into());
        if let Some(end) = &options.range_end {
            create.insert("range_end".into(), b64::encode(end).into());
        }
        if let Some(rev) = options.start_revision {
            create.insert("start_revision".into(), rev.to_string().into());
        }
        if options.prev_kv {
            create.insert("prev_kv".into(), true.into());
        }
        let body = serde_json::to_vec(&json!({ "create_request": Value::Object(create) }))
            .map_err(|e| EtcdError::Malformed(e.to_string()))?;
        let mut next = options.start_revision.unwrap_or(0);
        let token = match self.config.auth {
            Some(_) => Some(self.token()?),
            None => None,
        };
        let (status, reader) =
            self.open_stream("/v3/watch", &body, options.window, token.as_deref())?;
        let mut lines = BufReader::new(reader);
        if !(200..300).contains(&status) {
            let mut answer = Vec::new();
            let _ = std::io::Read::read_to_end(&mut lines, &mut answer);
            let error = http_error(status, &answer);
            if let (true, Some(t)) = (error.is_stale_token(), &token) {
                // The next watch takes a new one.
                self.forget_token(t);
            }
            return Err(error);
        }
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = lines.read_until(b'\n', &mut line);
            match read {
                Ok(0) => {
                    return Err(EtcdError::Io("the watch stream ended".into()));
                }
                Ok(_) => {}
                Err(e) => {
                    return match Failure::from_io(e) {
                        // Nothing for a window: the caller may stop now.
                        Failure::TimedOut => Ok(WatchEnd::Paused { next }),
                        Failure::Unreached(m) | Failure::Handshake(m) | Failure::Closed(m) => {
                            Err(EtcdError::Io(m))
                        }
                        Failure::Other(e) => Err(e),
                    };
                }
            }
            let trimmed = line.trim_ascii();
            if trimmed.is_empty() {
                continue;
            }
            let r: WatchResponseJson = parse_stream_line(trimmed)?;
            if r.canceled {
                if r.compact_revision > 0 {
                    return Ok(WatchEnd::Compacted {
                        compact_revision: r.compact_revision,
                    });
                }
                return Err(EtcdError::Http {
                    status: 200,
                    code: None,
                    message: format!("watch canceled: {}", r.cancel_reason),
                });
            }
            if r.created && r.events.is_empty() {
                if options.start_revision.is_none() {
                    next = r.header.revision + 1;
                }
                continue;
            }
            let event = r.into_event();
            for e in &event.events {
                next = next.max(e.kv.mod_revision + 1);
            }
            if event.events.is_empty() {
                next = next.max(event.header_revision + 1);
            }
            if !on(event) {
                return Ok(WatchEnd::Paused { next });
            }
        }
    }

    /// Opens a stream: its status and a reader that fails with a timeout
    /// when nothing arrives for `idle`.
    fn open_stream(
        &self,
        path: &str,
        body: &[u8],
        idle: Duration,
        token: Option<&str>,
    ) -> Result<(u16, ureq::BodyReader<'static>), EtcdError> {
        let n = self.endpoints.len();
        let first = self.current.load(std::sync::atomic::Ordering::Relaxed) % n;
        let mut last = None;
        for i in 0..n {
            let at = (first + i) % n;
            let url = format!("{}{path}", self.endpoints[at]);
            let mut req = self
                .agent
                .post(&url)
                .config()
                .timeout_global(None)
                .timeout_recv_response(Some(self.request_timeout))
                .timeout_per_read(Some(idle))
                .build()
                .header("Content-Type", "application/json");
            if let Some(t) = token {
                req = req.header("Authorization", t);
            }
            match req.send(body) {
                Ok(response) => {
                    self.current.store(at, std::sync::atomic::Ordering::Relaxed);
                    let status = response.status().as_u16();
                    let reader = response
                        .into_body()
                        .into_with_config()
                        .limit(u64::MAX)
                        .reader();
                    return Ok((status, reader));
                }
                Err(e) => match Failure::from(e).at(&url) {
                    f @ (Failure::Unreached(_) | Failure::Handshake(_)) => {
                        last = Some(f.into_error(&self.endpoints[at]))
                    }
                    f => return Err(f.into_error(&self.endpoints[at])),
                },
            }
        }
        Err(last.unwrap_or(EtcdError::Timeout))
    }
}
