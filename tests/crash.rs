//! SIGKILL of the real `numpool serve` during a stream of sends, then a
//! restart on the same data dir: every acknowledged mapping is back, and the
//! same recipients get the same senders.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{request, try_request};

const KEY: &str = "crash-test";

/// A data directory named after `what`, removed when dropped.
fn data_dir(what: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("numpool-{what}-"))
        .tempdir()
        .unwrap()
}

/// Starts `numpool serve` on `dir` with the test key; returns it with its address.
fn serve(dir: &std::path::Path) -> (support::Numpool, SocketAddr) {
    let dir = dir.to_str().unwrap();
    let server = support::serve(&["--api-key", KEY, "--data-dir", dir], &[]).unwrap();
    let addr = server.addr;
    (server, addr)
}

/// A profile with sticky sender named `name`, and `numbers` in its pool.
fn sticky_profile(addr: SocketAddr, name: &str, numbers: &[&str]) -> String {
    let created = request(
        addr,
        "POST",
        "/v2/messaging_profiles",
        &json!({"name": name, "whitelisted_destinations": ["US"], "number_pool_settings": {"sticky_sender": true}}).to_string(),
        Some(KEY),
        &[],
    );
    let profile = created.body["data"]["id"].as_str().unwrap().to_string();
    for n in numbers {
        let body = json!({ "messaging_profile_id": profile }).to_string();
        let path = format!("/v2/phone_numbers/{n}/messaging");
        assert_eq!(
            request(addr, "PATCH", &path, &body, Some(KEY), &[]).status,
            200
        );
    }
    profile
}

#[test]
fn sigkill_loses_nothing_acknowledged() {
    let dir = data_dir("crash");
    let (mut child, addr) = serve(dir.path());
    let numbers = [
        "+13125550001",
        "+13125550002",
        "+13125550003",
        "+13125550004",
    ];
    let profile = sticky_profile(addr, "crash", &numbers);
    // A stream of sends to new recipients from two threads; each records
    // what the server acknowledged.
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let count = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..2)
        .map(|t| {
            let (acked, count, stop, profile) =
                (acked.clone(), count.clone(), stop.clone(), profile.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let to = format!("+1415{:07}", t * 1_000_000 + i);
                    let body =
                        json!({"messaging_profile_id": profile, "to": to, "text": "x"}).to_string();
                    match try_request(
                        addr,
                        "POST",
                        "/v2/messages/number_pool",
                        &body,
                        Some(KEY),
                        &[],
                    ) {
                        Ok(r) if r.status == 200 => {
                            let from = r.body["data"]["from"]["phone_number"]
                                .as_str()
                                .unwrap()
                                .to_string();
                            acked.lock().unwrap().push((to, from));
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => break,
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while count.load(Ordering::Relaxed) < 400 {
        assert!(Instant::now() < deadline, "the stream never got going");
        std::thread::sleep(Duration::from_millis(5));
    }
    // SIGKILL in the middle of the stream.
    child.kill();
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 400);

    let (mut child, addr) = serve(dir.path());
    for (to, from) in &acked {
        let m = request(
            addr,
            "GET",
            &format!("/v2/messaging_profiles/{profile}/sticky_mappings/{to}"),
            "",
            Some(KEY),
            &[],
        );
        assert_eq!(
            m.status, 200,
            "acknowledged mapping of {to} lost: {}",
            m.body
        );
        assert_eq!(m.body["data"]["from"].as_str(), Some(from.as_str()), "{to}");
    }
    // The same recipients get the same senders.
    for (to, from) in acked.iter().step_by(37) {
        let body = json!({"messaging_profile_id": profile, "to": to, "text": "again"}).to_string();
        let r = request(
            addr,
            "POST",
            "/v2/messages/number_pool",
            &body,
            Some(KEY),
            &[],
        );
        assert_eq!(
            r.body["data"]["from"]["phone_number"].as_str(),
            Some(from.as_str())
        );
        assert_eq!(r.body["data"]["selection"]["reason"], "sticky");
    }
    child.kill();
}

#[test]
fn opt_outs_survive_sigkill() {
    let dir = data_dir("crash-optout");
    let (mut child, addr) = serve(dir.path());
    let call = |addr, method: &str, path: &str, body: serde_json::Value| {
        let text = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        request(addr, method, path, &text, Some(KEY), &[])
    };
    let created = call(
        addr,
        "POST",
        "/v2/messaging_profiles",
        json!({"name": "stop", "whitelisted_destinations": ["*"], "number_pool_settings": {}}),
    );
    let profile = created.body["data"]["id"].as_str().unwrap().to_string();
    let pool = "+13125550001";
    let assigned = call(
        addr,
        "PATCH",
        &format!("/v2/phone_numbers/{pool}/messaging"),
        json!({ "messaging_profile_id": profile }),
    );
    assert_eq!(assigned.status, 200);
    let inbound = |addr, id: usize, from: &str, text: &str| {
        let event = json!({"data": {"event_type": "message.received", "id": format!("in-{id}"),
            "payload": {"from": {"phone_number": from}, "to": [{"phone_number": pool}], "text": text}}});
        let r = call(addr, "POST", "/v2/webhooks/messaging", event);
        assert_eq!(r.status, 200, "{}", r.body);
    };
    let recipients: Vec<String> = (0..50).map(|i| format!("+1415555{i:04}")).collect();
    for (i, r) in recipients.iter().enumerate() {
        inbound(addr, i, r, "STOP");
    }
    inbound(addr, 100, &recipients[7], "start");
    let put = call(
        addr,
        "PUT",
        &format!("/v2/messaging_profiles/{profile}/opt_outs/+12065550100"),
        serde_json::Value::Null,
    );
    assert_eq!(put.status, 200);
    child.kill();

    let (mut child, addr) = serve(dir.path());
    let listed = call(
        addr,
        "GET",
        &format!("/v2/messaging_profiles/{profile}/opt_outs?page[size]=250"),
        serde_json::Value::Null,
    );
    let mut want: Vec<String> = recipients
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 7)
        .map(|(_, r)| r.clone())
        .collect();
    want.push("+12065550100".into());
    want.sort();
    let mut got: Vec<String> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["to"].as_str().unwrap().to_string())
        .collect();
    got.sort();
    assert_eq!(got, want);
    let send = |to: &str| {
        call(
            addr,
            "POST",
            "/v2/messages/number_pool",
            json!({"messaging_profile_id": profile, "to": to, "text": "hi"}),
        )
    };
    assert_eq!(send(&recipients[3]).body["errors"][0]["code"], "40300");
    assert_eq!(
        send(&recipients[7]).status,
        200,
        "opted back in before the kill"
    );
    child.kill();
}

/// Every mapping of `profile` on the server at `addr`, as `to -> from`.
fn exported(addr: SocketAddr, profile: &str) -> std::collections::BTreeMap<String, String> {
    let r = request(
        addr,
        "GET",
        &format!("/v2/messaging_profiles/{profile}/sticky_mappings/export"),
        "",
        Some(KEY),
        &[],
    );
    assert_eq!(r.status, 200);
    r.body
        .as_str()
        .unwrap_or("")
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["to"].as_str().unwrap().to_string(),
                v["from"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The import route of `profile`, sent `body` on a raw connection at
/// `pace` (bytes a write, pausing between writes) until `stop` says so;
/// returns the bytes written.
fn upload(addr: SocketAddr, profile: &str, body: &[u8], stop: &AtomicBool) -> usize {
    use std::io::Write;
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return 0;
    };
    let head = format!(
        "POST /v2/messaging_profiles/{profile}/sticky_mappings/import HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    if stream.write_all(head.as_bytes()).is_err() {
        return 0;
    }
    let mut sent = 0;
    for piece in body.chunks(16 * 1024) {
        if stop.load(Ordering::Relaxed) || stream.write_all(piece).is_err() {
            break;
        }
        sent += piece.len();
        std::thread::sleep(Duration::from_millis(20));
    }
    sent
}

#[test]
fn sigkill_during_an_import_keeps_what_was_journaled_and_a_rerun_finishes_it() {
    let dir = data_dir("crash-import");
    let (mut child, addr) = serve(dir.path());
    let (a, b) = ("+13125550001", "+13125550002");
    let profile = sticky_profile(addr, "import", &[a, b]);
    // 40,000 recipients once each, then the first 2,000 again, newer and
    // from the other sender: their mapping must end on the later row.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut body = String::new();
    let mut want = std::collections::BTreeMap::new();
    let mut row = |i: u64, from: &str, ago: u64| {
        let to = format!("+1415{:07}", 2_000_000 + i);
        body.push_str(&format!(
            "{{\"to\":\"{to}\",\"from\":\"{from}\",\"sent_at\":{}}}\n",
            now - ago
        ));
        want.insert(to, from.to_string());
    };
    for i in 0..40_000 {
        row(i, if i % 2 == 0 { a } else { b }, 7_200 + i);
    }
    for i in 0..2_000 {
        row(i, if i % 2 == 0 { b } else { a }, 3_600);
    }
    let body = body.into_bytes();

    // The upload goes on, slowly, until mappings show; then SIGKILL.
    let stop = Arc::new(AtomicBool::new(false));
    let uploading = {
        let (body, stop, profile) = (body.clone(), stop.clone(), profile.clone());
        std::thread::spawn(move || upload(addr, &profile, &body, &stop))
    };
    let mapped = |addr: SocketAddr| -> u64 {
        let r = request(
            addr,
            "GET",
            &format!("/v2/messaging_profiles/{profile}/phone_numbers"),
            "",
            Some(KEY),
            &[],
        );
        r.body["data"]
            .as_array()
            .map(|ns| {
                ns.iter()
                    .filter_map(|n| n["sticky_mappings"].as_u64())
                    .sum()
            })
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while mapped(addr) < 5_000 {
        assert!(Instant::now() < deadline, "the import never got going");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill();
    stop.store(true, Ordering::Relaxed);
    let sent = uploading.join().unwrap();
    assert!(
        sent < body.len(),
        "the server died before the whole body was sent"
    );

    // What was journaled is back, and all of it is what the file says (a
    // mapping from a row of the file, never a half-read line).
    let (mut child, addr) = serve(dir.path());
    let partial = exported(addr, &profile);
    assert!(partial.len() >= 5_000, "{} mappings back", partial.len());
    assert!(partial.len() < want.len());
    for (to, from) in &partial {
        assert!(want.contains_key(to), "{to} is in no row");
        assert!(from == a || from == b, "{to} -> {from}");
    }
    // The same import run again finishes it: every recipient on its latest row.
    let r = request(
        addr,
        "POST",
        &format!("/v2/messaging_profiles/{profile}/sticky_mappings/import"),
        std::str::from_utf8(&body).unwrap(),
        Some(KEY),
        &[("Content-Type", "application/x-ndjson")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["rows"], 42_000);
    assert_eq!(exported(addr, &profile), want);
    child.kill();
}
