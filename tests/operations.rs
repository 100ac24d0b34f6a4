//! What an operator relies on, against the real `numpool serve`: the JSON
//! log (start-up, recovery, snapshots, a journal failure and its healing,
//! shutdown), the access log with request ids, no secret in any line, the
//! API over HTTPS, and secrets read from files.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::etcd::Certs;
use support::{eventually, request, serve, Numpool, Response};
use tempfile::TempDir;

/// Distinctive, so that a leak into any output is found.
const KEY: &str = "operations-secret-key-5f1c2a9e";

/// A scratch directory for the test `name`, removed when dropped.
fn temp_dir(name: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("numpool-ops-{name}-"))
        .tempdir()
        .unwrap()
}

fn call(s: &Numpool, method: &str, path: &str, body: Value, extra: &[(&str, &str)]) -> Response {
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    request(s.addr, method, path, &body, Some(KEY), extra)
}

/// The JSON log lines the server wrote so far (other output skipped).
fn events(s: &Numpool) -> Vec<Value> {
    s.printed()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("fields").is_some())
        .collect()
}

/// The first event whose message starts with `message`.
fn event(s: &Numpool, message: &str) -> Option<Value> {
    events(s).into_iter().find(|e| {
        e["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with(message))
    })
}

fn profile(s: &Numpool) -> String {
    let r = call(
        s,
        "POST",
        "/v2/messaging_profiles",
        json!({"name": "ops", "whitelisted_destinations": ["US"],
               "number_pool_settings": {"sticky_sender": true}}),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.body["data"]["id"].as_str().unwrap().to_string();
    let r = call(
        s,
        "PATCH",
        "/v2/phone_numbers/+13125550001/messaging",
        json!({ "messaging_profile_id": id }),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    id
}

fn send(s: &Numpool, profile: &str, to: &str) -> Response {
    call(
        s,
        "POST",
        "/v2/messages/number_pool",
        json!({"messaging_profile_id": profile, "to": to, "text": "hi"}),
        &[],
    )
}

#[test]
fn json_log_lines_tell_recovery_snapshots_journal_failure_healing_and_shutdown() {
    let dir = temp_dir("json");
    let data = dir.path().join("data");
    let key_file = dir.path().join("keys");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let fault = dir.path().join("FAULT");
    let env = [("NUMPOOL_FAULT_JOURNAL", fault.to_str().unwrap())];
    let args = [
        "--api-key-file",
        key_file.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--log-format",
        "json",
        "--snapshot-every",
        "1s",
    ];
    let mut s = serve(&args, &env).unwrap();
    let p = profile(&s);
    assert_eq!(send(&s, &p, "+14155550001").status, 200);
    // Start-up: the configuration, the keys counted, never shown.
    let start = event(&s, "starting").expect("a start-up event");
    assert_eq!(start["fields"]["api_keys"], 1);
    assert_eq!(start["level"], "INFO");
    assert!(start["timestamp"].is_string() && start["target"].is_string());
    // A snapshot, with its figures.
    eventually("a snapshot event", || {
        event(&s, "journal: snapshot taken").is_some()
    });
    let snap = event(&s, "journal: snapshot taken").unwrap();
    assert!(snap["fields"]["bytes"].as_u64().unwrap() > 0, "{snap}");
    assert!(snap["fields"]["snapshot"].as_u64().unwrap() >= 1, "{snap}");
    // A journal that cannot write: a warning naming the cause; writes are
    // refused; once it can write again, an event says so.
    std::fs::write(&fault, b"").unwrap();
    assert_eq!(send(&s, &p, "+14155550002").status, 503);
    let failure = || {
        events(&s).into_iter().find(|e| {
            e["level"] == "WARN"
                && e["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("journal:"))
        })
    };
    eventually("a journal failure event", || failure().is_some());
    let failed = failure().unwrap();
    assert!(failed["fields"]["error"].is_string(), "{failed}");
    std::fs::remove_file(&fault).unwrap();
    eventually("a healing event", || {
        event(&s, "journal: writing again").is_some()
    });
    eventually("writes taken again", || {
        send(&s, &p, "+14155550003").status == 200
    });
    // SIGTERM: stopping, stopped, exit 0.
    s.signal("-TERM");
    let status = s
        .wait_exit(Duration::from_secs(20))
        .expect("exits on SIGTERM");
    assert!(status.success(), "{status:?}");
    eventually("the shutdown events", || event(&s, "stopped").is_some());
    assert!(event(&s, "stopping").is_some_and(|e| e["fields"]["signal"] == "SIGTERM"));
    let first = s.printed();
    // A restart: recovery, with what it recovered and how long it took.
    let s = serve(&args, &[]).unwrap();
    eventually("a recovery event", || {
        event(&s, "journal: recovered").is_some()
    });
    let recovered = event(&s, "journal: recovered").unwrap();
    assert_eq!(recovered["fields"]["profiles"], 1, "{recovered}");
    assert_eq!(recovered["fields"]["numbers"], 1, "{recovered}");
    assert_eq!(recovered["fields"]["mappings"], 2, "{recovered}");
    assert!(recovered["fields"]["took_ms"].is_u64(), "{recovered}");
    // No line of either run shows the key.
    for text in [first, s.printed()] {
        assert!(
            !text.contains(KEY),
            "the API key leaked into the output:\n{text}"
        );
    }
}

#[test]
fn the_access_log_names_each_request_and_its_id_and_never_a_key() {
    let s = serve(
        &[
            "--ephemeral",
            "--api-key",
            KEY,
            "--access-log",
            "--log-format",
            "json",
        ],
        &[],
    )
    .unwrap();
    // An id the client gave is echoed and logged.
    let r = call(
        &s,
        "GET",
        "/v2/messaging_profiles",
        Value::Null,
        &[("X-Request-Id", "trace-me-123")],
    );
    assert_eq!(r.status, 200);
    assert!(
        r.headers.contains("x-request-id: trace-me-123"),
        "{}",
        r.headers
    );
    eventually("the access log line", || {
        events(&s)
            .iter()
            .any(|e| e["fields"]["request_id"] == "trace-me-123")
    });
    let line = events(&s)
        .into_iter()
        .find(|e| e["fields"]["request_id"] == "trace-me-123")
        .unwrap();
    assert_eq!(line["target"], "numpool::access");
    assert_eq!(line["fields"]["method"], "GET");
    assert_eq!(line["fields"]["route"], "/v2/messaging_profiles");
    assert_eq!(line["fields"]["status"], 200);
    assert!(line["fields"]["latency_us"].is_u64());
    // The route is the template, not the path with its ids.
    let p = profile(&s);
    call(
        &s,
        "GET",
        &format!("/v2/messaging_profiles/{p}"),
        Value::Null,
        &[],
    );
    eventually("a templated route", || {
        events(&s)
            .iter()
            .any(|e| e["fields"]["route"] == "/v2/messaging_profiles/{id}")
    });
    assert!(!s
        .printed()
        .contains(&format!("/v2/messaging_profiles/{p}\"")));
    // Without one, or with one that is not a short token, a new id.
    let long = "x".repeat(300);
    for given in [None, Some(long.as_str())] {
        let extra: Vec<(&str, &str)> = given.map(|g| ("X-Request-Id", g)).into_iter().collect();
        let r = call(&s, "GET", "/v2/messaging_profiles", Value::Null, &extra);
        let id = r
            .headers
            .lines()
            .find_map(|l| l.strip_prefix("x-request-id: "))
            .expect("an id is made")
            .trim()
            .to_string();
        assert_eq!(id.len(), 32, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    }
    // A wrong key is refused and logged as a 401, without the key.
    let wrong = "operations-wrong-key-77aa01";
    let r = request(
        s.addr,
        "GET",
        "/v2/messaging_profiles",
        "",
        Some(wrong),
        &[],
    );
    assert_eq!(r.status, 401);
    eventually("the 401 is logged", || {
        events(&s).iter().any(|e| e["fields"]["status"] == 401)
    });
    let text = s.printed();
    assert!(
        !text.contains(KEY) && !text.contains(wrong),
        "a key leaked:\n{text}"
    );
    drop(s);
    // Off by default: no access lines, but the id is still echoed.
    let quiet = serve(
        &["--ephemeral", "--api-key", KEY, "--log-format", "json"],
        &[],
    )
    .unwrap();
    let r = call(
        &quiet,
        "GET",
        "/v2/messaging_profiles",
        Value::Null,
        &[("X-Request-Id", "quiet-1")],
    );
    assert!(r.headers.contains("x-request-id: quiet-1"));
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !events(&quiet)
            .iter()
            .any(|e| e["target"] == "numpool::access"),
        "{}",
        quiet.printed()
    );
}

/// A client that trusts `ca` (PEM) only.
fn https_client(ca: &std::path::Path) -> ureq::Agent {
    let pem = std::fs::read(ca).unwrap();
    let roots: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|i| match i.unwrap() {
            ureq::tls::PemItem::Certificate(c) => Some(c),
            _ => None,
        })
        .collect();
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
        .build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

#[test]
fn the_api_serves_https_with_the_given_certificate_and_names_a_bad_one() {
    let dir = temp_dir("tls");
    let certs = Certs::make(&dir.path().join("certs"));
    let s = serve(
        &[
            "--ephemeral",
            "--api-key",
            KEY,
            "--tls-cert",
            certs.server_cert.to_str().unwrap(),
            "--tls-key",
            certs.server_key.to_str().unwrap(),
        ],
        &[],
    )
    .unwrap();
    assert!(s.printed().contains("https://"), "{}", s.printed());
    let url = format!("https://localhost:{}/v2/messaging_profiles", s.addr.port());
    // Trusting the CA: the API answers.
    let mut r = https_client(&certs.ca)
        .get(&url)
        .header("Authorization", format!("Bearer {KEY}"))
        .call()
        .expect("an https request with the CA");
    assert_eq!(r.status(), 200);
    let body: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    assert!(body["data"].is_array(), "{body}");
    // Trusting another CA: the handshake fails, naming why.
    let other = Certs::make(&dir.path().join("other"));
    let e = https_client(&other.ca)
        .get(&url)
        .call()
        .unwrap_err()
        .to_string();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    // Plain HTTP to the TLS port gets no answer of the API.
    let plain = support::try_request(s.addr, "GET", "/readyz", "", None, &[]);
    assert!(plain.is_err() || plain.unwrap().status != 200);
    drop(s);
    // A certificate that cannot be used: start-up refuses, naming the file.
    let missing = dir.path().join("missing.pem");
    let refused = serve(
        &[
            "--ephemeral",
            "--tls-cert",
            certs.server_cert.to_str().unwrap(),
            "--tls-key",
            missing.to_str().unwrap(),
        ],
        &[],
    )
    .err()
    .expect("refused");
    assert_eq!(refused.code, Some(2), "a configuration error");
    assert!(refused.output.contains("missing.pem"), "{}", refused.output);
    let half = serve(
        &[
            "--ephemeral",
            "--tls-cert",
            certs.server_cert.to_str().unwrap(),
        ],
        &[],
    )
    .err()
    .expect("refused");
    assert!(half.output.contains("tls-key"), "{}", half.output);
}

/// Runs `numpool ARGS` to its end: whether it succeeded, and what it printed.
fn numpool(args: &[&str]) -> (bool, String) {
    let (code, text) = support::numpool(args);
    (code == 0, text)
}

/// What a server holds for `profile`, as its reads show it: the profile
/// record, every mapping (sorted export lines), the opt-outs and the
/// numbers with their mapping counts.
fn state_of(s: &Numpool, profile: &str) -> Value {
    let get = |path: &str| {
        let r = call(s, "GET", path, Value::Null, &[]);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        r.body
    };
    let export = get(&format!(
        "/v2/messaging_profiles/{profile}/sticky_mappings/export"
    ));
    let mut lines: Vec<&str> = export.as_str().unwrap_or("").lines().collect();
    lines.sort_unstable();
    let numbers: Vec<Value> = get(&format!("/v2/messaging_profiles/{profile}/phone_numbers"))
        ["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            json!([
                n["phone_number"],
                n["sticky_mappings"],
                n["messages_per_second"]
            ])
        })
        .collect();
    json!({
        "profile": get(&format!("/v2/messaging_profiles/{profile}"))["data"],
        "mappings": lines,
        "opt_outs": get(&format!("/v2/messaging_profiles/{profile}/opt_outs"))["data"],
        "numbers": numbers,
    })
}

#[test]
fn a_backup_of_a_running_server_restores_into_an_empty_directory_exactly() {
    let dir = temp_dir("backup");
    let data = dir.path().join("data");
    let base = ["--api-key", KEY, "--data-dir", data.to_str().unwrap()];
    let s = serve(&base, &[]).unwrap();
    let p = profile(&s);
    let r = call(
        &s,
        "PATCH",
        "/v2/phone_numbers/+13125550002/messaging",
        json!({ "messaging_profile_id": p, "messages_per_second": 7.5 }),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    for i in 0..40 {
        assert_eq!(send(&s, &p, &format!("+141555501{i:02}")).status, 200);
    }
    let pin = call(
        &s,
        "PUT",
        &format!("/v2/messaging_profiles/{p}/sticky_mappings/%2B14155550100"),
        json!({"from": "+13125550002"}),
        &[],
    );
    assert_eq!(pin.status, 200, "{}", pin.body);
    let stop = json!({"data": {"event_type": "message.received", "id": "stop-1",
        "payload": {"from": {"phone_number": "+14155550101"},
                    "to": [{"phone_number": "+13125550001"}], "text": "STOP"}}});
    assert_eq!(
        call(&s, "POST", "/v2/webhooks/messaging", stop, &[]).status,
        200
    );
    let held = state_of(&s, &p);
    assert_eq!(held["mappings"].as_array().unwrap().len(), 40);

    // A key is needed; then the backup is taken while the server runs.
    let node = format!("http://{}", s.addr);
    let file = dir.path().join("numpool.backup");
    let (ok, said) = numpool(&["backup", "--to", file.to_str().unwrap(), "--node", &node]);
    assert!(!ok && said.contains("401"), "{said}");
    assert!(!file.exists());
    let (ok, said) = numpool(&[
        "backup",
        "--to",
        file.to_str().unwrap(),
        "--node",
        &node,
        "--api-key",
        KEY,
    ]);
    assert!(ok, "{said}");
    assert!(said.contains("1 profiles"), "{said}");
    // Changes after the backup are not in it.
    assert_eq!(send(&s, &p, "+14155550999").status, 200);

    // Restore refuses a directory in use and a damaged file, writing nothing.
    let (ok, said) = numpool(&[
        "restore",
        file.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(!ok && said.contains("not empty"), "{said}");
    let mut cut = std::fs::read(&file).unwrap();
    cut.truncate(cut.len() - 10);
    let damaged = dir.path().join("cut.backup");
    std::fs::write(&damaged, cut).unwrap();
    let restored = dir.path().join("restored");
    let (ok, said) = numpool(&[
        "restore",
        damaged.to_str().unwrap(),
        "--data-dir",
        restored.to_str().unwrap(),
    ]);
    assert!(!ok && said.contains("not a whole numpool backup"), "{said}");
    assert!(!restored.exists() || std::fs::read_dir(&restored).unwrap().next().is_none());

    let (ok, said) = numpool(&[
        "restore",
        file.to_str().unwrap(),
        "--data-dir",
        restored.to_str().unwrap(),
    ]);
    assert!(ok, "{said}");
    drop(s);
    let again = serve(
        &["--api-key", KEY, "--data-dir", restored.to_str().unwrap()],
        &[],
    )
    .unwrap();
    assert_eq!(
        state_of(&again, &p),
        held,
        "the restored server serves what the backup held"
    );
    // It goes on from there: the recipient who was pinned keeps its number.
    let r = send(&again, &p, "+14155550100");
    assert_eq!(
        r.body["data"]["from"]["phone_number"], "+13125550002",
        "{}",
        r.body
    );

    // `numpool import` streams a history file into it and prints the counts.
    let history = dir.path().join("history.csv");
    let pinned = call(
        &again,
        "GET",
        &format!("/v2/messaging_profiles/{p}/sticky_mappings/+14155550100"),
        Value::Null,
        &[],
    );
    let now = pinned.body["data"]["last_used_at"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(
        &history,
        format!("From,To,SentDate\n+13125550001,+14155550777,{now}\n+19995550000,+14155550778,{now}\nnot,a,row\n"),
    )
    .unwrap();
    let (ok, said) = numpool(&[
        "import",
        "--profile",
        &p,
        history.to_str().unwrap(),
        "--node",
        &format!("http://{}", again.addr),
        "--api-key",
        KEY,
    ]);
    assert!(ok, "{said}");
    assert!(said.contains("3 rows: 1 mapped"), "{said}");
    assert!(said.contains("1 sender not in the pool"), "{said}");
    assert!(said.contains("line 4:"), "{said}");
    let m = call(
        &again,
        "GET",
        &format!("/v2/messaging_profiles/{p}/sticky_mappings/+14155550777"),
        Value::Null,
        &[],
    );
    assert_eq!(m.body["data"]["from"], "+13125550001", "{}", m.body);
    let (ok, said) = numpool(&[
        "import",
        "--profile",
        "00000000-0000-0000-0000-000000000000",
        history.to_str().unwrap(),
        "--node",
        &format!("http://{}", again.addr),
        "--api-key",
        KEY,
    ]);
    assert!(!ok && said.contains("404"), "{said}");
}
