//! Moving mappings in and out. Importing message history: `ROWS` rows (10M
//! by default) over `RECIPIENTS` recipients (2M), in process through
//! `Engine::import_history` with the journal on (fsync `interval`), then
//! the same rows over HTTP as CSV into a running `numpool serve`-style
//! server; rows a second and the peak memory each time. Exporting:
//! `EXPORT_MAPPINGS` mappings (10M) read over HTTP as NDJSON; MB a second.
//! During the HTTP import and the export, a client sends one message at a
//! time to another profile, and its p99 is compared with the same
//! client's p99 alone, side by side in the run.
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
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let served = engine.clone();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let options = HttpOptions {
                keys: ApiKeys::new(vec!["bench".into()]),
                workers: 2,
                ..HttpOptions::default()
            };
            let _ = http_server(listener, served, options).unwrap().await;
        })
    });
    std::thread::sleep(Duration::from_millis(300));
    let stop = Arc::new(AtomicBool::new(false));
    let stop_after = Arc::clone(&stop);
    let timer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(3));
        stop_after.store(true, Ordering::Release);
    });
    let quiet = send_p99(addr, sends, &stop);
    let _ = timer.join();
    stop.store(false, Ordering::Release);
    // At most 2M distinct rows held by this client, sent as many times as
    // it takes: the body's length costs the client no memory.
    let distinct = http_rows.min(2_000_000);
    let chunks = csv_chunks(distinct, recipients, now);
    let before = peak_mib();
    let probing = Arc::clone(&stop);
    let probe = std::thread::spawn(move || send_p99(addr, sends, &probing));
    let started = Instant::now();
    let answer = post_csv(addr, q, &chunks, http_rows / distinct);
    let http_rows = distinct * (http_rows / distinct);
    drop(chunks);
    let took = started.elapsed();
    stop.store(true, Ordering::Release);
    let during = probe.join().unwrap();
    println!(
        "over HTTP (CSV): {http_rows} rows: {:.2} s, {:.0} k rows/s; peak memory {before:.0} MiB -> {:.0} MiB; {}",
        took.as_secs_f64(),
        http_rows as f64 / took.as_secs_f64() / 1e3,
        peak_mib(),
        answer.lines().last().unwrap_or("")
    );
    println!(
        "one-message sends to another profile: p99 {:.0} us alone, {:.0} us during the import ({:.2}x)",
        quiet * 1e6,
        during * 1e6,
        during / quiet.max(1e-9)
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
    stop.store(false, Ordering::Release);
    let probing = Arc::clone(&stop);
    let probe = std::thread::spawn(move || send_p99(addr, sends, &probing));
    let started = Instant::now();
    let (bytes, lines) = get_export(addr, e);
    let took = started.elapsed();
    stop.store(true, Ordering::Release);
    let during = probe.join().unwrap();
    println!(
        "export over HTTP (NDJSON): {lines} mappings, {:.0} MB in {:.2} s: {:.0} MB/s, {:.2} M mappings/s; peak memory {:.0} MiB",
        bytes as f64 / 1e6,
        took.as_secs_f64(),
        bytes as f64 / 1e6 / took.as_secs_f64(),
        lines as f64 / took.as_secs_f64() / 1e6,
        peak_mib()
    );
    println!(
        "one-message sends to another profile: p99 {:.0} us alone, {:.0} us during the export ({:.2}x)",
        quiet * 1e6,
        during * 1e6,
        during / quiet.max(1e-9)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Reads profile `p`'s export to its end; the bytes read and the records
/// in them (each record line ends `}` then a newline).
fn get_export(addr: SocketAddr, p: ProfileId) -> (u64, u64) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET /v2/messaging_profiles/{p}/sticky_mappings/export HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer bench\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let (mut bytes, mut lines, mut last) = (0u64, 0u64, 0u8);
    loop {
        let n = stream.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        bytes += n as u64;
        for &b in &buf[..n] {
            if b == b'\n' && last == b'}' {
                lines += 1;
            }
            last = b;
        }
    }
    (bytes, lines)
}

/// `n` CSV rows (no header), in chunks of about 64 KiB: made before the
/// clock starts, so that the upload costs the machine no more than a
/// client elsewhere would (writing bytes), not formatting on its 2 cores.
fn csv_chunks(n: u64, recipients: u64, now: u32) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut chunk = String::new();
    for row in rows(n, recipients, now) {
        chunk.push_str(&format!("{},{},{}\n", row.to, row.from, row.sent_at));
        if chunk.len() > 64 * 1024 {
            chunks.push(std::mem::take(&mut chunk));
        }
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    chunks
}

/// POSTs a CSV header then `chunks` `times` over, as one chunked body;
/// the answer's text.
fn post_csv(addr: SocketAddr, p: ProfileId, chunks: &[String], times: u64) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /v2/messaging_profiles/{p}/sticky_mappings/import HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer bench\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let header = "to,from,sent_at\n";
    write!(stream, "{:x}\r\n{header}\r\n", header.len()).unwrap();
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
