//! Faults, against the real `numpool serve`: a journal that cannot write
//! (an injected fault, and a real 1 MB tmpfs when one can be mounted), two
//! servers on one data directory, a byte flipped mid-log, a truncated
//! snapshot, an upload dropped halfway, oversized keys, and listings of a
//! large profile next to sends.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use support::{eventually, request, serve, Numpool, Response};
use tempfile::TempDir;

const KEY: &str = "faults-key";

/// A scratch directory for the test `name`, removed when dropped.
fn temp_dir(name: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("numpool-faults-{name}-"))
        .tempdir()
        .unwrap()
}

fn call(s: &Numpool, method: &str, path: &str, body: Value) -> Response {
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    request(s.addr, method, path, &body, Some(KEY), &[])
}

/// A profile with sticky sender and two numbers; returns its id.
fn profile(s: &Numpool) -> String {
    let r = call(
        s,
        "POST",
        "/v2/messaging_profiles",
        json!({"name": "faults", "whitelisted_destinations": ["US"],
               "number_pool_settings": {"sticky_sender": true}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.body["data"]["id"].as_str().unwrap().to_string();
    for n in ["+13125550001", "+13125550002"] {
        let r = call(
            s,
            "PATCH",
            &format!("/v2/phone_numbers/{n}/messaging"),
            json!({ "messaging_profile_id": id }),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    id
}

fn send(s: &Numpool, profile: &str, to: &str) -> Response {
    call(
        s,
        "POST",
        "/v2/messages/number_pool",
        json!({"messaging_profile_id": profile, "to": to, "text": "hi"}),
    )
}

fn mapping(s: &Numpool, profile: &str, to: &str) -> Response {
    call(
        s,
        "GET",
        &format!("/v2/messaging_profiles/{profile}/sticky_mappings/{to}"),
        Value::Null,
    )
}

fn ready(s: &Numpool) -> u16 {
    request(s.addr, "GET", "/readyz", "", None, &[]).status
}

fn args<'a>(dir: &'a Path, more: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["--api-key", KEY, "--data-dir", dir.to_str().unwrap()];
    a.extend_from_slice(more);
    a
}

#[test]
fn a_refused_write_leaves_no_trace_and_the_server_resumes_by_itself() {
    let dir = temp_dir("refused");
    let fault = dir.path().join("FAULT");
    let fault_env = fault.to_str().unwrap();
    let env = [("NUMPOOL_FAULT_JOURNAL", fault_env)];
    let s = serve(&args(dir.path(), &["--fsync", "always"]), &env).unwrap();
    let p = profile(&s);
    let kept = send(&s, &p, "+14155550001");
    assert_eq!(kept.status, 200);
    std::fs::write(&fault, b"").unwrap(); // the disk is full from now on
    let refused = send(&s, &p, "+14155550002");
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(refused.headers.contains("retry-after:"));
    // The same request again: refused, never "sticky, reused".
    let again = send(&s, &p, "+14155550002");
    assert_eq!(again.status, 503, "{}", again.body);
    let assign = call(
        &s,
        "PATCH",
        "/v2/phone_numbers/+13125550003/messaging",
        json!({ "messaging_profile_id": p }),
    );
    assert_eq!(assign.status, 503);
    assert_eq!(ready(&s), 503);
    // No read shows what was refused.
    eventually("the refused mapping is gone", || {
        mapping(&s, &p, "+14155550002").status == 404
    });
    let number = call(
        &s,
        "GET",
        "/v2/phone_numbers/+13125550003/messaging",
        Value::Null,
    );
    assert_eq!(number.status, 404);
    // Space again: writing resumes without a restart.
    std::fs::remove_file(&fault).unwrap();
    eventually("ready again", || ready(&s) == 200);
    let later = send(&s, &p, "+14155550003");
    assert_eq!(later.status, 200);
    drop(s);
    // After a restart: what was acknowledged, nothing refused.
    let s = serve(&args(dir.path(), &[]), &[]).unwrap();
    let from = |r: &Response| r.body["data"]["from"].clone();
    assert_eq!(
        mapping(&s, &p, "+14155550001").body["data"]["from"],
        from(&kept)["phone_number"]
    );
    assert_eq!(mapping(&s, &p, "+14155550002").status, 404);
    assert_eq!(
        mapping(&s, &p, "+14155550003").body["data"]["from"],
        from(&later)["phone_number"]
    );
}

/// Mounts a 1 MB tmpfs (needs root); `None` where that is not allowed.
/// Its mount point is removed when the field drops, after `drop` has
/// unmounted it.
struct Tmpfs(TempDir);

impl Tmpfs {
    fn mount(name: &str) -> Option<Tmpfs> {
        let dir = temp_dir(name);
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(dir.path())
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then(|| Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

#[test]
fn a_full_disk_refuses_changes_then_resumes_when_space_is_freed() {
    let Some(fs) = Tmpfs::mount("tmpfs") else {
        // Straight to the process's stderr, past the harness's capture, so
        // that scripts/test reports it as skipped, not as a pass.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: a_full_disk_refuses_changes_then_resumes_when_space_is_freed: cannot mount a tmpfs here (the injected fault test covers the same)"
        );
        return;
    };
    // Leave room for a few hundred records only.
    let filler = fs.0.path().join("filler");
    std::fs::write(&filler, vec![0u8; 900 * 1024]).unwrap();
    let data = fs.0.path().join("data");
    let s = serve(&args(&data, &["--fsync", "always"]), &[]).unwrap();
    let p = profile(&s);
    let mut acked = Vec::new();
    let mut refused = None;
    for i in 0..5000 {
        let to = format!("+1415{:07}", i);
        let r = send(&s, &p, &to);
        match r.status {
            200 => acked.push((to, r.body["data"]["from"]["phone_number"].clone())),
            503 => {
                refused = Some(to);
                break;
            }
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    let refused = refused.expect("the disk filled up");
    assert_eq!(send(&s, &p, &refused).status, 503, "a retry is refused too");
    assert_eq!(ready(&s), 503);
    eventually("the refused mapping is gone", || {
        mapping(&s, &p, &refused).status == 404
    });
    std::fs::remove_file(&filler).unwrap();
    eventually("ready again", || ready(&s) == 200);
    assert_eq!(send(&s, &p, &refused).status, 200);
    drop(s);
    let s = serve(&args(&data, &[]), &[]).unwrap();
    for (to, from) in &acked {
        assert_eq!(&mapping(&s, &p, to).body["data"]["from"], from, "{to}");
    }
}

#[test]
fn a_second_server_on_the_same_directory_refuses_to_start_and_names_the_first() {
    let dir = temp_dir("two");
    let first = serve(&args(dir.path(), &[]), &[]).unwrap();
    let second = serve(&args(dir.path(), &[]), &[]);
    let exited = second.err().expect("the second server must not start");
    assert_eq!(exited.code, Some(1));
    assert!(
        exited
            .output
            .contains(&format!("in use by process {}", first.pid())),
        "{}",
        exited.output
    );
    // kill -9 releases the lock: a new server starts.
    drop(first);
    let again = serve(&args(dir.path(), &[]), &[]).unwrap();
    drop(again);
}

fn segment(dir: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    segs.pop().unwrap()
}

#[test]
fn a_byte_flipped_mid_log_stops_start_up_and_repair_keeps_the_rest() {
    let dir = temp_dir("flipped");
    let s = serve(&args(dir.path(), &[]), &[]).unwrap();
    let p = profile(&s);
    for i in 0..50 {
        assert_eq!(send(&s, &p, &format!("+1415555{i:04}")).status, 200);
    }
    drop(s);
    let seg = segment(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5A;
    std::fs::write(&seg, &bytes).unwrap();
    let stopped = serve(&args(dir.path(), &[]), &[])
        .err()
        .expect("start-up stops");
    assert_ne!(stopped.code, Some(0));
    assert!(
        stopped.output.contains(seg.to_str().unwrap()),
        "{}",
        stopped.output
    );
    assert!(
        stopped.output.contains("numpool repair"),
        "{}",
        stopped.output
    );
    assert_eq!(std::fs::read(&seg).unwrap(), bytes, "nothing was changed");
    let repair = std::process::Command::new(env!("CARGO_BIN_EXE_numpool"))
        .args(["repair", "--data-dir", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(repair.status.success());
    let printed = String::from_utf8_lossy(&repair.stdout);
    assert!(printed.contains("moved to"), "{printed}");
    let side: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".damaged-"))
        .collect();
    assert_eq!(side.len(), 1, "the damaged bytes are kept aside");
    let s = serve(&args(dir.path(), &[]), &[]).unwrap();
    let listed = call(
        &s,
        "GET",
        &format!("/v2/messaging_profiles/{p}/sticky_mappings?page[size]=250"),
        Value::Null,
    );
    let kept = listed.body["data"].as_array().unwrap().len();
    assert!(
        (48..50).contains(&kept),
        "all but the damaged record: {kept}"
    );
    drop(s);
    // Repair of a directory that is not there says so, and creates nothing.
    let missing = dir.path().join("not-there");
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_numpool"))
        .args(["repair", "--data-dir", missing.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("no such data directory"), "{said}");
    assert!(!said.contains("LOCK"), "{said}");
    assert!(!missing.exists());
}

#[test]
fn a_truncated_snapshot_falls_back_to_the_one_before_with_a_warning() {
    let dir = temp_dir("snapshot");
    let s = serve(&args(dir.path(), &["--snapshot-every", "1s"]), &[]).unwrap();
    let p = profile(&s);
    let mut acked = Vec::new();
    // Two snapshots at least, with traffic around them.
    for round in 0..3 {
        for i in 0..20 {
            let to = format!("+1415{round}{i:06}");
            let r = send(&s, &p, &to);
            acked.push((to, r.body["data"]["from"]["phone_number"].clone()));
        }
        std::thread::sleep(Duration::from_millis(1300));
    }
    drop(s);
    let mut snaps: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    snaps.sort();
    assert!(snaps.len() >= 2, "{snaps:?}");
    let newest = snaps.pop().unwrap();
    let len = std::fs::metadata(&newest).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&newest)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let s = serve(&args(dir.path(), &[]), &[]).unwrap();
    // Printed on stderr before it listens (the two pipes are read apart).
    eventually("a warning about the damaged snapshot", || {
        s.printed().contains("falling back")
    });
    for (to, from) in &acked {
        assert_eq!(&mapping(&s, &p, to).body["data"]["from"], from, "{to}");
    }
}

#[test]
fn a_dropped_upload_does_not_poison_its_idempotency_key() {
    let dir = temp_dir("dropped");
    let s = serve(&args(dir.path(), &[]), &[]).unwrap();
    let p = profile(&s);
    let body = json!({"messaging_profile_id": p, "to": "+14155550009", "text": "hi"}).to_string();
    // Headers and half the body, then the client goes away.
    let mut stream = TcpStream::connect(s.addr).unwrap();
    write!(
        stream,
        "POST /v2/messages/number_pool HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\
         Idempotency-Key: retry-me\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        &body[..body.len() / 2]
    )
    .unwrap();
    drop(stream);
    std::thread::sleep(Duration::from_millis(200));
    let key = [("Idempotency-Key", "retry-me")];
    let r = request(
        s.addr,
        "POST",
        "/v2/messages/number_pool",
        &body,
        Some(KEY),
        &key,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // A repeat replays it; the same key with another body is refused.
    let again = request(
        s.addr,
        "POST",
        "/v2/messages/number_pool",
        &body,
        Some(KEY),
        &key,
    );
    assert_eq!(again.body["data"]["id"], r.body["data"]["id"]);
    let other = json!({"messaging_profile_id": p, "to": "+14155550010", "text": "hi"}).to_string();
    let reused = request(
        s.addr,
        "POST",
        "/v2/messages/number_pool",
        &other,
        Some(KEY),
        &key,
    );
    assert_eq!(reused.status, 422, "{}", reused.body);
    // An invalid request is not remembered either: fixed, it goes through.
    let bad = json!({"messaging_profile_id": p, "to": "nope", "text": "hi"}).to_string();
    let k2 = [("Idempotency-Key", "fix-me")];
    assert_eq!(
        request(
            s.addr,
            "POST",
            "/v2/messages/number_pool",
            &bad,
            Some(KEY),
            &k2
        )
        .status,
        400
    );
    let fixed = json!({"messaging_profile_id": p, "to": "+14155550011", "text": "hi"}).to_string();
    assert_eq!(
        request(
            s.addr,
            "POST",
            "/v2/messages/number_pool",
            &fixed,
            Some(KEY),
            &k2
        )
        .status,
        200
    );
}

/// Resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[test]
fn oversized_keys_are_refused_and_the_caches_stay_within_their_bytes() {
    let dir = temp_dir("keys");
    let cache = (512 * 1024).to_string();
    let s = serve(
        &args(
            dir.path(),
            &[
                "--idempotency-cache-bytes",
                &cache,
                "--webhook-cache-bytes",
                &cache,
            ],
        ),
        &[],
    )
    .unwrap();
    let p = profile(&s);
    let long = "k".repeat(256);
    let body = json!({"messaging_profile_id": p, "to": "+14155550001", "text": "hi"}).to_string();
    let r = request(
        s.addr,
        "POST",
        "/v2/messages/number_pool",
        &body,
        Some(KEY),
        &[("Idempotency-Key", &long)],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let event = |id: &str| {
        json!({"data": {"event_type": "message.finalized", "id": id,
            "payload": {"from": {"phone_number": "+13125550001"}, "to": [{"status": "delivered"}]}}})
        .to_string()
    };
    let r = request(
        s.addr,
        "POST",
        "/v2/webhooks/messaging",
        &event(&long),
        Some(KEY),
        &[],
    );
    assert_eq!(r.status, 422, "{}", r.body);
    // 3000 distinct 255-character keys through a 512 KiB cache: it holds
    // about a thousand at a time, so memory stays flat.
    let before = rss(s.pid());
    for i in 0..3000 {
        let key = format!("{i:0>255}");
        let to = format!("+1415{:07}", i);
        let body = json!({"messaging_profile_id": p, "to": to, "text": "hi"}).to_string();
        let r = request(
            s.addr,
            "POST",
            "/v2/messages/number_pool",
            &body,
            Some(KEY),
            &[("Idempotency-Key", &key)],
        );
        assert_eq!(r.status, 200);
    }
    // The first keys were pushed out: a repeat runs again (a new message id).
    let first = json!({"messaging_profile_id": p, "to": "+14150000000", "text": "hi"}).to_string();
    let key0 = format!("{:0>255}", 0);
    let r = request(
        s.addr,
        "POST",
        "/v2/messages/number_pool",
        &first,
        Some(KEY),
        &[("Idempotency-Key", &key0)],
    );
    assert_eq!(r.status, 200);
    let grown = rss(s.pid()).saturating_sub(before);
    assert!(grown < 32 << 20, "resident memory grew by {grown} bytes");
}

#[test]
fn webhook_events_about_unknown_numbers_are_not_remembered() {
    let dir = temp_dir("events");
    let s = serve(&args(dir.path(), &[]), &[]).unwrap();
    let p = profile(&s);
    let event = json!({"data": {"event_type": "message.finalized", "id": "evt-1",
        "payload": {"from": {"phone_number": "+13125550009"}, "to": [{"status": "delivered"}]}}})
    .to_string();
    let r = request(
        s.addr,
        "POST",
        "/v2/webhooks/messaging",
        &event,
        Some(KEY),
        &[],
    );
    assert_eq!(r.body["data"]["counted"], false);
    // The number joins a pool; the same event (a retry) now counts.
    call(
        &s,
        "PATCH",
        "/v2/phone_numbers/+13125550009/messaging",
        json!({ "messaging_profile_id": p }),
    );
    let r = request(
        s.addr,
        "POST",
        "/v2/webhooks/messaging",
        &event,
        Some(KEY),
        &[],
    );
    assert_eq!(r.body["data"]["counted"], true, "{}", r.body);
    let r = request(
        s.addr,
        "POST",
        "/v2/webhooks/messaging",
        &event,
        Some(KEY),
        &[],
    );
    assert_eq!(r.body["data"]["duplicate"], true, "counted once");
}

#[test]
fn mapping_pages_walk_a_profile_once_while_sends_go_on() {
    let s = serve(&["--api-key", KEY, "--ephemeral"], &[]).unwrap();
    let p = profile(&s);
    let mut expected = std::collections::BTreeSet::new();
    for i in 0..300 {
        let to = format!("+1415{:07}", i);
        assert_eq!(send(&s, &p, &to).status, 200);
        expected.insert(to);
    }
    // Cursor pages of 7 visit every mapping exactly once.
    let mut seen = std::collections::BTreeSet::new();
    let mut after: Option<String> = None;
    loop {
        let q = match &after {
            Some(c) => format!("?page[size]=7&page[after]={c}"),
            None => "?page[size]=7".to_string(),
        };
        let r = call(
            &s,
            "GET",
            &format!("/v2/messaging_profiles/{p}/sticky_mappings{q}"),
            Value::Null,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        for m in r.body["data"].as_array().unwrap() {
            assert!(
                seen.insert(m["to"].as_str().unwrap().to_string()),
                "seen twice"
            );
        }
        assert_eq!(r.body["meta"]["total_results"], 300);
        match r.body["meta"]["next_page_after"].as_str() {
            Some(c) => after = Some(c.to_string()),
            None => break,
        }
        // A send between pages is served as usual.
        assert_eq!(send(&s, &p, "+14150000000").status, 200);
    }
    assert_eq!(seen, expected);
    // page[number] reaches the same pages; past the end is empty.
    let page = |n: usize| {
        call(
            &s,
            "GET",
            &format!("/v2/messaging_profiles/{p}/sticky_mappings?page[size]=100&page[number]={n}"),
            Value::Null,
        )
        .body["data"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!((page(1), page(3), page(4)), (100, 100, 0));
    let bad = call(
        &s,
        "GET",
        &format!("/v2/messaging_profiles/{p}/sticky_mappings?page[after]=x.y"),
        Value::Null,
    );
    assert_eq!(bad.status, 422);
}
