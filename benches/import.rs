//! Moving mappings in and out. Importing message history: `ROWS` rows (10M
//! by default) over `RECIPIENTS` recipients (2M), in process through
//! `Engine::import_history` with the journal on (fsync `interval`), then
//! the same rows over HTTP into a running `numpool serve`-style server,
//! as CSV and as NDJSON lines of an export's form; rows a second and the
//! peak memory. Exporting: `EXPORT_MAPPINGS` mappings (10M) read over
//! HTTP as NDJSON; MB a second. Backing up the server (`GET /backup`).
//! Copying the exported profile to a second server: its export piped, as
//! it arrives, into an import there. During the CSV import, the export
//! and the backup, a client sends one message at a time to another
//! profile, and its p99 is compared with the same client's p99 alone,
//! side by side in the run.
//!
//! Run: `cargo bench --bench import` (`ROWS`, `RECIPIENTS`, `HTTP_ROWS`:
//! the rows sent over HTTP, default 10M, 2M distinct rows repeated;
//! `EXPORT_MAPPINGS`).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::executor::block_on;
use numpool::server::{http_server, ApiKeys, HttpOptions};
use numpool::{
    Engine, EngineConfig, FsyncPolicy, HistoryRow, JournalConfig, PhoneNumber, ProfileId,
};

/// Peak resident memory of this process so far, MiB.
fn peak_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn sender(i: u64) -> PhoneNumber {
    PhoneNumber::from_u64(13_125_550_000 + i).unwrap()
}

const SENDERS: u64 = 50;

/// Row `i`: a recipient among `recipients`, a sender, a time in the last
/// 7 days (xorshift: the same rows every run).
fn rows(n: u64, recipients: u64, now: u32) -> impl Iterator<Item = HistoryRow> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..n).map(move |_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        HistoryRow {
            to: PhoneNumber::from_u64(14_000_000_000 + state % recipients).unwrap(),
            from: sender((state >> 20) % SENDERS),
            sent_at: now - ((state >> 32) % (7 * 86_400)) as u32,
            created_at: None,
            pinned: false,
        }
    })
}

fn main() {
    let total = common::count("ROWS", 10_000_000);
    let recipients = common::count("RECIPIENTS", 2_000_000);
    let http_rows = common::count("HTTP_ROWS", 10_000_000);
    let dir = std::env::temp_dir().join(format!("numpool-import-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let engine = Engine::start(EngineConfig {
        journal: Some(JournalConfig {
            dir: dir.clone(),
            fsync: FsyncPolicy::default(),
            snapshot_every: None,
        }),
        ..EngineConfig::default()
    })
    .unwrap();
    let p = common::sticky_profile(&engine, (0..SENDERS).map(sender));
    let sends = common::sticky_profile(&engine, []);
    block_on(async {
        let quick = PhoneNumber::from_u64(13_125_559_000).unwrap();
        engine.assign_number(quick, Some(sends)).await.unwrap();
        // Fast enough that its queue never refuses the probe's sends.
        engine.set_rate(quick, Some(100_000.0)).await.unwrap();
    });
    let now = engine.now().as_secs() as u32;
    let before = peak_mib();
    let started = Instant::now();
    let report = block_on(async {
        let mut import = engine.import_history(p).await.unwrap();
        for row in rows(total, recipients, now) {
            import.push(row).await.unwrap();
        }
        import.finish().await.unwrap()
    });
    let took = started.elapsed();
    println!(
        "in process: {total} rows, {recipients} recipients: {:.2} s, {:.2} M rows/s; peak memory {:.0} MiB -> {:.0} MiB; {report:?}",
        took.as_secs_f64(),
        total as f64 / took.as_secs_f64() / 1e6,
        before,
        peak_mib()
    );

    // Over HTTP: a CSV body, streamed from memory a chunk at a time, into
    // a fresh profile, while one client sends to another profile.
    let q = common::sticky_profile(&engine, (0..SENDERS).map(sender));
    let addr = serve(engine.clone());
    let ((), _, quiet) = while_sending(addr, sends, || std::thread::sleep(Duration::from_secs(3)));
    // At most 2M distinct rows held by this client, sent as many times as
    // it takes: the body's length costs the client no memory.
    let distinct = http_rows.min(2_000_000);
    let chunks = csv_chunks(distinct, recipients, now);
    let before = peak_mib();
    let (answer, took, during) = while_sending(addr, sends, || {
        post_history(
            addr,
            q,
            "text/csv",
            "to,from,sent_at\n",
            &chunks,
            http_rows / distinct,
        )
    });
    let http_rows = distinct * (http_rows / distinct);
    drop(chunks);
    println!(
        "over HTTP (CSV): {http_rows} rows: {:.2} s, {:.0} k rows/s; peak memory {before:.0} MiB -> {:.0} MiB; {}",
        took.as_secs_f64(),
        http_rows as f64 / took.as_secs_f64() / 1e3,
        peak_mib(),
        answer.lines().last().unwrap_or("")
    );
    print_p99("the import", quiet, during);

    // The same rows as NDJSON lines of an export's form (two RFC 3339
    // times a line), into a fresh profile: what a copy from another
    // numpool reads.
    let q2 = common::sticky_profile(&engine, (0..SENDERS).map(sender));
    let chunks = ndjson_chunks(distinct, recipients, now);
    let started = Instant::now();
    let answer = post_history(
        addr,
        q2,
        "application/x-ndjson",
        "",
        &chunks,
        http_rows / distinct,
    );
    drop(chunks);
    let took = started.elapsed();
    println!(
        "over HTTP (NDJSON): {http_rows} rows: {:.2} s, {:.0} k rows/s; {}",
        took.as_secs_f64(),
        http_rows as f64 / took.as_secs_f64() / 1e3,
        answer.lines().last().unwrap_or("")
    );

    // Export: a profile of `EXPORT_MAPPINGS` recipients (one row each,
    // imported in process), read whole over HTTP while the client sends.
    let mappings = common::count("EXPORT_MAPPINGS", 10_000_000);
    let e = common::sticky_profile(&engine, (0..SENDERS).map(sender));
    block_on(async {
        let mut import = engine.import_history(e).await.unwrap();
        for row in rows(mappings * 4, mappings, now) {
            import.push(row).await.unwrap();
        }
        let report = import.finish().await.unwrap();
        println!("export: {} mappings made to export", report.mapped);
    });
    let ((bytes, lines), took, during) = while_sending(addr, sends, || get_export(addr, e));
    println!(
        "export over HTTP (NDJSON): {lines} mappings, {:.0} MB in {:.2} s: {:.0} MB/s, {:.2} M mappings/s; peak memory {:.0} MiB",
        bytes as f64 / 1e6,
        took.as_secs_f64(),
        bytes as f64 / 1e6 / took.as_secs_f64(),
        lines as f64 / took.as_secs_f64() / 1e6,
        peak_mib()
    );
    print_p99("the export", quiet, during);

    // A backup of the whole server (`GET /backup`): every profile's
    // mappings (the exported profile's: the others' senders moved to it).
    let ((status, bytes), took, during) = while_sending(addr, sends, || get_backup(addr));
    println!(
        "backup over HTTP: {status}, {:.0} MB in {:.2} s: {:.0} MB/s; peak memory {:.0} MiB",
        bytes as f64 / 1e6,
        took.as_secs_f64(),
        bytes as f64 / 1e6 / took.as_secs_f64(),
        peak_mib()
    );
    print_p99("the backup", quiet, during);

    // A copy: the export piped, as it arrives, into an NDJSON import of the
    // same profile on a second server (its own engine and data directory,
    // the same numbers), as `curl .../export | curl --data-binary @-
    // .../import` would move a profile to another numpool.
    let dir2 = dir.with_extension("copy");
    let _ = std::fs::remove_dir_all(&dir2);
    let target = Engine::start(EngineConfig {
        journal: Some(JournalConfig::new(dir2.clone())),
        ..EngineConfig::default()
    })
    .unwrap();
    let copy = common::sticky_profile(&target, (0..SENDERS).map(sender));
    let addr2 = serve(target.clone());
    let started = Instant::now();
    let (lines, answer) = pipe_export_to_import(addr, e, addr2, copy);
    let took = started.elapsed();
    println!(
        "copy to another server (export piped into an NDJSON import): {lines} mappings in {:.2} s: {:.2} M mappings/s; {}",
        took.as_secs_f64(),
        lines as f64 / took.as_secs_f64() / 1e6,
        answer.lines().last().unwrap_or("")
    );
    let _ = std::fs::remove_dir_all(&dir2);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Serves `engine` over HTTP (two workers, API key `bench`) on a port of
/// its own; its address, once it answers.
fn serve(engine: Engine) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let options = HttpOptions {
                keys: ApiKeys::new(vec!["bench".into()]),
                workers: 2,
                ..HttpOptions::default()
            };
            let _ = http_server(listener, engine, options).unwrap().await;
        })
    });
    std::thread::sleep(Duration::from_millis(300));
    addr
}

/// Pipes profile `from`'s export at `addr` into an import of profile `to`
/// at `to_addr`, the export's body as it arrives; the export's mapping
/// lines and the import's answer.
fn pipe_export_to_import(
    addr: SocketAddr,
    from: ProfileId,
    to_addr: SocketAddr,
    to: ProfileId,
) -> (u64, String) {
    let mut export = TcpStream::connect(addr).unwrap();
    write!(
        export,
        "GET /v2/messaging_profiles/{from}/sticky_mappings/export HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer bench\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut import = TcpStream::connect(to_addr).unwrap();
    write!(
        import,
        "POST /v2/messaging_profiles/{to}/sticky_mappings/import HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer bench\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut head = Vec::new();
    let mut chunks: Option<Dechunk> = None;
    let mut body = Vec::new();
    let (mut lines, mut last) = (0u64, 0u8);
    loop {
        let n = export.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        body.clear();
        match &mut chunks {
            Some(dechunk) => dechunk.feed(&buf[..n], &mut body),
            None => {
                head.extend_from_slice(&buf[..n]);
                let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                assert!(head.starts_with(b"HTTP/1.1 200"), "export refused");
                let mut dechunk = Dechunk::default();
                dechunk.feed(&head[at + 4..], &mut body);
                chunks = Some(dechunk);
            }
        }
        for &b in &body {
            if b == b'\n' && last == b'}' {
                lines += 1;
            }
            last = b;
        }
        if !body.is_empty() {
            write!(import, "{:x}\r\n", body.len()).unwrap();
            import.write_all(&body).unwrap();
            import.write_all(b"\r\n").unwrap();
        }
    }
    import.write_all(b"0\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = import.read_to_string(&mut answer);
    (lines, answer)
}

/// Takes an HTTP/1.1 chunked body apart as its bytes arrive.
#[derive(Default)]
struct Dechunk {
    state: ChunkState,
    /// A chunk's size line read so far.
    line: Vec<u8>,
}

#[derive(Default)]
enum ChunkState {
    #[default]
    Size,
    Data(usize),
    /// The line end after a chunk's data: bytes left of it.
    End(usize),
    Done,
}

impl Dechunk {
    /// Appends the body's bytes in `input` to `out`.
    fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        while !input.is_empty() {
            match self.state {
                ChunkState::Size => {
                    let Some(i) = input.iter().position(|&b| b == b'\n') else {
                        self.line.extend_from_slice(input);
                        return;
                    };
                    self.line.extend_from_slice(&input[..i]);
                    input = &input[i + 1..];
                    let text = String::from_utf8_lossy(&self.line);
                    let hex = text.split(';').next().unwrap_or("").trim();
                    let size = usize::from_str_radix(hex, 16).expect("a chunk size");
                    self.line.clear();
                    self.state = if size == 0 {
                        ChunkState::Done
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    let take = left.min(input.len());
                    out.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    self.state = if take == left {
                        ChunkState::End(2)
                    } else {
                        ChunkState::Data(left - take)
                    };
                }
                ChunkState::End(left) => {
                    let take = left.min(input.len());
                    input = &input[take..];
                    self.state = if take == left {
                        ChunkState::Size
                    } else {
                        ChunkState::End(left - take)
                    };
                }
                ChunkState::Done => return,
            }
        }
    }
}

/// Sends `GET path` and hands every chunk of the answer (head and body,
/// as read) to `each`, to its end.
fn get_to_end(addr: SocketAddr, path: &str, mut each: impl FnMut(&[u8])) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer bench\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = stream.read(&mut buf).unwrap();
        if n == 0 {
            return;
        }
        each(&buf[..n]);
    }
}

/// Reads `GET /backup` to its end: the answer's status line and the
/// bytes of its body.
fn get_backup(addr: SocketAddr) -> (String, u64) {
    let mut first = Vec::new();
    let mut bytes = 0u64;
    get_to_end(addr, "/backup", |chunk| {
        if first.len() < 4096 {
            first.extend_from_slice(&chunk[..chunk.len().min(4096)]);
        }
        bytes += chunk.len() as u64;
    });
    let head = first
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(0, |at| at + 4);
    let bytes = bytes - head as u64;
    let status = String::from_utf8_lossy(&first)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    (status, bytes)
}

/// Reads profile `p`'s export to its end; the bytes read and the records
/// in them (each record line ends `}` then a newline).
fn get_export(addr: SocketAddr, p: ProfileId) -> (u64, u64) {
    let path = format!("/v2/messaging_profiles/{p}/sticky_mappings/export");
    let (mut bytes, mut lines, mut last) = (0u64, 0u64, 0u8);
    get_to_end(addr, &path, |chunk| {
        bytes += chunk.len() as u64;
        for &b in chunk {
            if b == b'\n' && last == b'}' {
                lines += 1;
            }
            last = b;
        }
    });
    (bytes, lines)
}

/// `n` CSV rows (no header), in chunks of about 64 KiB: made before the
/// clock starts, so that the upload costs the machine no more than a
/// client elsewhere would (writing bytes), not formatting on its 2 cores.
fn csv_chunks(n: u64, recipients: u64, now: u32) -> Vec<String> {
    chunked(
        rows(n, recipients, now).map(|row| format!("{},{},{}\n", row.to, row.from, row.sent_at)),
    )
}

/// The same rows as [`csv_chunks`], as NDJSON lines of the form an export
/// writes.
fn ndjson_chunks(n: u64, recipients: u64, now: u32) -> Vec<String> {
    let time = |s: u32| {
        jiff::Timestamp::from_second(i64::from(s))
            .unwrap()
            .strftime("%Y-%m-%dT%H:%M:%S.000Z")
            .to_string()
    };
    chunked(rows(n, recipients, now).map(|row| {
        format!(
            "{{\"record_type\":\"sticky_mapping\",\"to\":\"{}\",\"from\":\"{}\",\"created_at\":\"{}\",\"last_used_at\":\"{}\",\"expires_at\":\"{}\",\"pinned\":false}}\n",
            row.to,
            row.from,
            time(row.sent_at),
            time(row.sent_at),
            time(row.sent_at + 8 * 86_400)
        )
    }))
}

/// `lines` joined into chunks of about 64 KiB.
fn chunked(lines: impl Iterator<Item = String>) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut chunk = String::new();
    for line in lines {
        chunk.push_str(&line);
        if chunk.len() > 64 * 1024 {
            chunks.push(std::mem::take(&mut chunk));
        }
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    chunks
}

/// POSTs `header` then `chunks` `times` over to profile `p`'s import, as
/// one chunked body of `content_type`; the answer's text.
fn post_history(
    addr: SocketAddr,
    p: ProfileId,
    content_type: &str,
    header: &str,
    chunks: &[String],
    times: u64,
) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /v2/messaging_profiles/{p}/sticky_mappings/import HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer bench\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    if !header.is_empty() {
        write!(stream, "{:x}\r\n{header}\r\n", header.len()).unwrap();
    }
    for _ in 0..times {
        for chunk in chunks {
            write!(stream, "{:x}\r\n{chunk}\r\n", chunk.len()).unwrap();
        }
    }
    stream.write_all(b"0\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

/// Runs `work` while a client sends one message at a time to profile `p`:
/// what `work` returned, how long it took, and the client's p99 meanwhile.
fn while_sending<T>(
    addr: SocketAddr,
    p: ProfileId,
    work: impl FnOnce() -> T,
) -> (T, Duration, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let probing = Arc::clone(&stop);
    let probe = std::thread::spawn(move || send_p99(addr, p, &probing));
    let started = Instant::now();
    let done = work();
    let took = started.elapsed();
    stop.store(true, Ordering::Release);
    (done, took, probe.join().unwrap())
}

/// Prints the sending client's p99 during `what` beside its p99 alone.
fn print_p99(what: &str, quiet: f64, during: f64) {
    println!(
        "one-message sends to another profile: p99 {:.0} us alone, {:.0} us during {what} ({:.2}x)",
        quiet * 1e6,
        during * 1e6,
        during / quiet.max(1e-9)
    );
}

/// The p99 of one-message sends over one keep-alive connection until
/// `stop` is set.
fn send_p99(addr: SocketAddr, p: ProfileId, stop: &AtomicBool) -> f64 {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut took = Vec::new();
    let mut i = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Acquire) || took.len() < 100 {
        let body = format!(
            "{{\"messaging_profile_id\":\"{p}\",\"to\":\"+1646{:07}\",\"text\":\"x\"}}",
            i % 1_000_000
        );
        i += 1;
        let t = Instant::now();
        write!(
            stream,
            "POST /v2/messages/number_pool HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        // One answer: read until its body is complete (Content-Length).
        let mut got = Vec::new();
        loop {
            let k = stream.read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..k]);
            let text = String::from_utf8_lossy(&got);
            if let Some((head, rest)) = text.split_once("\r\n\r\n") {
                let len = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                if rest.len() >= len {
                    break;
                }
            }
        }
        took.push(t.elapsed().as_secs_f64());
        // Over the long-code rate the queue would refuse: pace gently.
        std::thread::sleep(Duration::from_micros(200));
    }
    took.sort_by(f64::total_cmp);
    took[(took.len() * 99 / 100).min(took.len() - 1)]
}
