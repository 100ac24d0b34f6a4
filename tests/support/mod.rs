//! A minimal HTTP/1.1 client for the tests that drive a real server.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

pub mod etcd;

/// A response: status, lower-cased head, and the body as JSON (or a string).
pub struct Response {
    pub status: u16,
    pub headers: String,
    pub body: Value,
}

/// One HTTP/1.1 request over a fresh connection; panics on I/O errors.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    key: Option<&str>,
    extra: &[(&str, &str)],
) -> Response {
    try_request(addr, method, path, body, key, extra).unwrap()
}

/// One HTTP/1.1 request over a fresh connection.
pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    key: Option<&str>,
    extra: &[(&str, &str)],
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(k) = key {
        req.push_str(&format!("Authorization: Bearer {k}\r\n"));
    }
    for (h, v) in extra {
        req.push_str(&format!("{h}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes())?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out)?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no HTTP status"))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok(Response {
        status,
        headers: head.to_ascii_lowercase(),
        body: serde_json::from_str(&body).unwrap_or(Value::String(body)),
    })
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
    out
}

/// A running `numpool serve`, killed (SIGKILL) and reaped when dropped.
pub struct Numpool {
    child: std::process::Child,
    pub addr: SocketAddr,
    /// Everything it printed (stdout and stderr), as it prints it.
    pub output: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Numpool {
    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it printed so far.
    pub fn printed(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Sends `signal` (`-STOP`, `-CONT`, `-TERM`, ...) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// Waits (at most `within`) for the process to exit; its exit status.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Numpool {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How a `numpool` run that was expected to serve ended instead.
#[derive(Debug)]
pub struct Exited {
    pub code: Option<i32>,
    pub output: String,
}

/// Runs `numpool serve --listen 127.0.0.1:0 ARGS` with `env` added, and
/// waits (at most 30 s) until it listens; `Err` if it exits first.
pub fn serve(args: &[&str], env: &[(&str, &str)]) -> Result<Numpool, Exited> {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::sync::{Arc, Mutex};
    let mut child = Command::new(env!("CARGO_BIN_EXE_numpool"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("numpool starts");
    let output = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().unwrap();
    let errors = Arc::clone(&output);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            errors.lock().unwrap().push_str(&format!("{line}\n"));
        }
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let printed = Arc::clone(&output);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            printed.lock().unwrap().push_str(&format!("{line}\n"));
            let url = line
                .split("listening on http://")
                .nth(1)
                .or_else(|| line.split("listening on https://").nth(1));
            if let Some(url) = url {
                let _ = tx.send(url.trim_end_matches("/v2").parse::<SocketAddr>().unwrap());
            }
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(addr) = rx.recv_timeout(Duration::from_millis(20)) {
            return Ok(Numpool {
                child,
                addr,
                output,
            });
        }
        if let Ok(Some(status)) = child.try_wait() {
            std::thread::sleep(Duration::from_millis(50)); // let the readers finish
            return Err(Exited {
                code: status.code(),
                output: output.lock().unwrap().clone(),
            });
        }
        assert!(
            std::time::Instant::now() < deadline,
            "numpool serve did not start: {}",
            output.lock().unwrap()
        );
    }
}

/// Runs `numpool ARGS` (a command that ends: backup, restore, import,
/// cluster ...) to its end; its exit code and everything it printed.
pub fn numpool(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_numpool"))
        .args(args)
        .output()
        .expect("numpool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Waits (at most 20 s) until `cond` holds.
pub fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
