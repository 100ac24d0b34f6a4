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

/// Starts `numpool serve` on `dir` with the test key; returns it with its address.
fn serve(dir: &std::path::Path) -> (support::Numpool, SocketAddr) {
    let dir = dir.to_str().unwrap();
    let server = support::serve(&["--api-key", KEY, "--data-dir", dir], &[]).unwrap();
    let addr = server.addr;
    (server, addr)
}

#[test]
fn sigkill_loses_nothing_acknowledged() {
    let dir = std::env::temp_dir().join(format!("numpool-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (mut child, addr) = serve(&dir);
    let created = request(
        addr,
        "POST",
        "/v2/messaging_profiles",
        &json!({"name": "crash", "whitelisted_destinations": ["US"], "number_pool_settings": {"sticky_sender": true}}).to_string(),
        Some(KEY),
        &[],
    );
    let profile = created.body["data"]["id"].as_str().unwrap().to_string();
    for n in [
        "+13125550001",
        "+13125550002",
        "+13125550003",
        "+13125550004",
    ] {
        let body = json!({ "messaging_profile_id": profile }).to_string();
        assert_eq!(
            request(
                addr,
                "PATCH",
                &format!("/v2/phone_numbers/{n}/messaging"),
                &body,
                Some(KEY),
                &[]
            )
            .status,
            200
        );
    }
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

    let (mut child, addr) = serve(&dir);
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
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn opt_outs_survive_sigkill() {
    let dir = std::env::temp_dir().join(format!("numpool-crash-optout-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (mut child, addr) = serve(&dir);
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

    let (mut child, addr) = serve(&dir);
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
    let _ = std::fs::remove_dir_all(&dir);
}
