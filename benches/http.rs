//! HTTP throughput: `wrk` against the number-pool send endpoint of a real
//! numpool server holding 1M live mappings, next to a trivial actix-web JSON
//! handler measured the same way in the same run; the same for reads of a
//! recipient's mapping (`GET .../sticky_mappings/{to}`) and for delivery
//! outcomes (`POST /v2/webhooks/messaging`, a `message.finalized` event
//! as the hosted service sends one for each message); then sends to the
//! same engine served over HTTPS (rustls, a certificate made for the run)
//! and with the access log on (JSON lines to a file), side by side with
//! plain HTTP.
//!
//! Needs `wrk` (Debian: `apt-get install wrk`). Run: `cargo bench --bench http`.
//! Environment: `WRK_SECONDS` (default 10), `WRK_CONNECTIONS` (a list,
//! default `1,32`: one connection shows the latency of a lone request, 32
//! the throughput under load).

use std::net::TcpListener;
use std::process::Command;
use std::time::Instant;

use actix_web::{web, App, HttpResponse, HttpServer};
use futures::executor::block_on;
use numpool::server::{http_server, ApiKeys, HttpOptions};
use numpool::{
    Engine, EngineConfig, NewProfile, PhoneNumber, ProfileId, SettingsPatch, SettingsUpdate,
};

const PROFILES: u64 = 10;
const LIVE: u64 = 1_000_000;
const WORKERS: usize = 2;

fn recipient(r: u64) -> PhoneNumber {
    PhoneNumber::from_u64(13_000_000_000 + r).unwrap()
}

fn sender(p: u64, i: u64) -> PhoneNumber {
    PhoneNumber::from_u64(12_000_000_000 + p * 1000 + i).unwrap()
}

async fn trivial(body: web::Json<serde_json::Value>) -> HttpResponse {
    HttpResponse::Ok()
        .json(serde_json::json!({ "data": { "to": body.get("to"), "status": "queued" } }))
}

async fn trivial_webhook(body: web::Json<serde_json::Value>) -> HttpResponse {
    let accepted = body.pointer("/data/payload/to/0/status").is_some();
    HttpResponse::Ok().json(serde_json::json!({ "data": { "accepted": accepted } }))
}

async fn trivial_read(path: web::Path<(String, String)>) -> HttpResponse {
    let (_, to) = path.into_inner();
    HttpResponse::Ok()
        .json(serde_json::json!({ "data": { "record_type": "sticky_mapping", "to": to } }))
}

/// What a run's requests are.
#[derive(Clone, Copy)]
enum Requests {
    /// `POST /v2/messages/number_pool`.
    Sends,
    /// `GET /v2/messaging_profiles/{id}/sticky_mappings/{to}`.
    Reads,
    /// `POST /v2/webhooks/messaging`: a delivery outcome of a pool sender,
    /// each with an event id of its own.
    Outcomes,
}

/// A wrk script of requests for recipients drawn uniformly from the live
/// ones (recipient `r` is profile `r % PROFILES`'s).
fn wrk_script(ids: &[ProfileId], requests: Requests) -> String {
    let list: Vec<String> = ids.iter().map(|id| format!("\"{id}\"")).collect();
    let request = match requests {
        Requests::Sends => {
            r#"local body = string.format('{"messaging_profile_id":"%s","to":"+1%d","text":"hello"}', profile, 3000000000 + r)
  return wrk.format("POST", "/v2/messages/number_pool", {["Content-Type"]="application/json", ["Authorization"]="Bearer bench"}, body)"#
        }
        Requests::Reads => {
            r#"local path = string.format('/v2/messaging_profiles/%s/sticky_mappings/+1%d', profile, 3000000000 + r)
  return wrk.format("GET", path, {["Authorization"]="Bearer bench"})"#
        }
        // The shape of the hosted service's event (fields numpool does
        // not read included); ids unique across runs (the clock's second).
        Requests::Outcomes => {
            r#"events = (events or 0) + 1
  local id = string.format('%d-%d', started, events)
  local sender = 2000000000 + ((r % PROFILES) * 1000) + (r % 50)
  local status = (math.random(100) == 1) and 'delivery_failed' or 'delivered'
  local body = string.format('{"data":{"event_type":"message.finalized","id":"%s","occurred_at":"2026-12-07T12:00:01.000+00:00","payload":{"completed_at":"2026-12-07T12:00:01.000+00:00","cost":null,"direction":"outbound","encoding":"GSM-7","errors":[],"from":{"carrier":"Telnyx","line_type":"Wireless","phone_number":"+1%d"},"id":"%s","media":[],"messaging_profile_id":"%s","organization_id":"b448f9cc-a842-4784-98e9-03c1a5872950","parts":1,"received_at":"2026-12-07T12:00:00.000+00:00","record_type":"message","sent_at":"2026-12-07T12:00:00.500+00:00","tags":[],"text":"hello","to":[{"carrier":"T-MOBILE USA, INC.","line_type":"Wireless","phone_number":"+1%d","status":"%s"}],"type":"SMS","valid_until":null,"webhook_failover_url":null,"webhook_url":"https://example.com/webhooks"},"record_type":"event"},"meta":{"attempt":1,"delivered_to":"https://example.com/webhooks"}}', id, sender, id, profile, 3000000000 + r, status)
  return wrk.format("POST", "/v2/webhooks/messaging", {["Content-Type"]="application/json", ["Authorization"]="Bearer bench"}, body)"#
        }
    };
    format!(
        r#"math.randomseed(42)
local profiles = {{{}}}
local PROFILES = {}
local started = os.time()
request = function()
  local r = math.random(0, {})
  local profile = profiles[(r % {}) + 1]
  {request}
end
"#,
        list.join(","),
        PROFILES,
        LIVE - 1,
        PROFILES
    )
}

struct WrkResult {
    requests_per_sec: f64,
    latency: Vec<(String, String)>,
    non_2xx: String,
}

fn run_wrk(port: u16, script: &str, connections: &str) -> WrkResult {
    run_wrk_url(&format!("http://127.0.0.1:{port}"), script, connections)
}

fn run_wrk_url(url: &str, script: &str, connections: &str) -> WrkResult {
    let seconds = std::env::var("WRK_SECONDS").unwrap_or_else(|_| "10".into());
    let out = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            "-s",
            script,
        ])
        .arg(url)
        .output()
        .expect("wrk is installed (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let requests_per_sec = text
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let latency = text
        .lines()
        .skip_while(|l| !l.contains("Latency Distribution"))
        .skip(1)
        .take(4)
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            Some((parts.next()?.to_string(), parts.next()?.to_string()))
        })
        .collect();
    let non_2xx = text
        .lines()
        .find(|l| l.contains("Non-2xx"))
        .map_or("0".into(), |l| {
            l.split(':').nth(1).unwrap_or("?").trim().to_string()
        });
    WrkResult {
        requests_per_sec,
        latency,
        non_2xx,
    }
}

/// One row per run: requests/s, latency percentiles, non-2xx answers.
fn print_table(rows: &[(&str, &WrkResult)]) {
    println!(
        "{:<34} {:>12} {:>10} {:>10} {:>10} {:>10} {:>8}",
        "server", "requests/s", "p50", "p75", "p90", "p99", "non-2xx"
    );
    for (name, r) in rows {
        let p = |i: usize| r.latency.get(i).map_or("?".to_string(), |(_, v)| v.clone());
        println!(
            "{name:<34} {:>12.0} {:>10} {:>10} {:>10} {:>10} {:>8}",
            r.requests_per_sec,
            p(0),
            p(1),
            p(2),
            p(3),
            r.non_2xx
        );
    }
}

/// A server configuration with a certificate for 127.0.0.1 made now
/// (wrk does not check it).
fn bench_tls() -> rustls::ServerConfig {
    let dir = std::env::temp_dir().join(format!("numpool-bench-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let config = numpool::server::tls::server_config(&cert_file, &key_file).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    config
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // nothing to list or smoke-test under `cargo test --benches`
    }
    let engine = Engine::start(EngineConfig {
        // Millions of messages a second, far beyond any carrier rate: the
        // highest rates keep queues from filling (the bookkeeping is the same).
        capacity: numpool::CapacityConfig {
            rates: numpool::KindRates::uniform(100_000.0),
            ..Default::default()
        },
        ..EngineConfig::default()
    })
    .unwrap();
    let ids: Vec<ProfileId> = (0..PROFILES).map(|_| ProfileId::new_v4()).collect();
    let started = Instant::now();
    block_on(async {
        for (p, id) in ids.iter().enumerate() {
            let new = NewProfile {
                id: Some(*id),
                name: format!("bench-{p}"),
                number_pool_settings: SettingsUpdate::Merge(SettingsPatch {
                    sticky_sender: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            };
            engine.create_profile(new).await.unwrap();
            for i in 0..50 {
                engine
                    .assign_number(sender(p as u64, i), Some(*id))
                    .await
                    .unwrap();
            }
        }
        let all: Vec<(ProfileId, PhoneNumber)> = (0..LIVE)
            .map(|r| (ids[(r % PROFILES) as usize], recipient(r)))
            .collect();
        for chunk in all.chunks(4096) {
            for r in engine.send_batch(chunk).await {
                r.unwrap();
            }
        }
    });
    let stats = block_on(engine.stats());
    eprintln!(
        "preloaded {} live mappings in {:.1?}",
        stats.stored_mappings,
        started.elapsed()
    );

    let script_of = |requests: Requests, name: &str| {
        let path =
            std::env::temp_dir().join(format!("numpool-wrk-{name}-{}.lua", std::process::id()));
        std::fs::write(&path, wrk_script(&ids, requests)).unwrap();
        path.to_str().unwrap().to_string()
    };
    let script = script_of(Requests::Sends, "sends");
    let read_script = script_of(Requests::Reads, "reads");
    let outcome_script = script_of(Requests::Outcomes, "outcomes");

    let numpool_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let trivial_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let tls_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let logged_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let numpool_port = numpool_listener.local_addr().unwrap().port();
    let trivial_port = trivial_listener.local_addr().unwrap().port();
    let tls_port = tls_listener.local_addr().unwrap().port();
    let logged_port = logged_listener.local_addr().unwrap().port();
    let tls = std::sync::Arc::new(bench_tls());
    // The access log's events, formatted as `numpool serve --log-format
    // json` does, to a file (what a log shipper would tail).
    let log_file =
        std::env::temp_dir().join(format!("numpool-bench-access-{}.log", std::process::id()));
    let file = std::fs::File::create(&log_file).unwrap();
    tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(std::sync::Mutex::new(std::io::BufWriter::new(file)))
        .init();
    let served = engine.clone();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let options = |tls, access_log| HttpOptions {
                keys: ApiKeys::new(vec!["bench".into()]),
                workers: WORKERS,
                tls,
                access_log,
                ..HttpOptions::default()
            };
            let numpool =
                http_server(numpool_listener, served.clone(), options(None, false)).unwrap();
            let https =
                http_server(tls_listener, served.clone(), options(Some(tls), false)).unwrap();
            let logged = http_server(logged_listener, served, options(None, true)).unwrap();
            let trivial = HttpServer::new(|| {
                App::new()
                    .route("/v2/messages/number_pool", web::post().to(trivial))
                    .route(
                        "/v2/messaging_profiles/{id}/sticky_mappings/{to}",
                        web::get().to(trivial_read),
                    )
                    .route("/v2/webhooks/messaging", web::post().to(trivial_webhook))
            })
            .workers(WORKERS)
            .listen(trivial_listener)
            .unwrap()
            .run();
            let _ = futures::future::join4(numpool, trivial, https, logged).await;
        })
    });
    std::thread::sleep(std::time::Duration::from_millis(500));

    let connections = std::env::var("WRK_CONNECTIONS").unwrap_or_else(|_| "1,32".into());
    for (requests, what, script) in [
        (Requests::Sends, "POST /v2/messages/number_pool", &script),
        (
            Requests::Reads,
            "GET .../sticky_mappings/{to}",
            &read_script,
        ),
        (
            Requests::Outcomes,
            "POST /v2/webhooks/messaging (message.finalized)",
            &outcome_script,
        ),
    ] {
        for c in connections.split(',').map(str::trim) {
            let trivial = run_wrk(trivial_port, script, c);
            let numpool = run_wrk(numpool_port, script, c);
            let trivial_again = run_wrk(trivial_port, script, c);
            let baseline = (trivial.requests_per_sec + trivial_again.requests_per_sec) / 2.0;
            println!(
                "\nHTTP, wrk -t1 -c{c}, {what}, uniform over 1M live mappings, {WORKERS} workers"
            );
            print_table(&[
                ("trivial actix-web JSON handler", &trivial),
                ("numpool serve", &numpool),
                ("trivial (again)", &trivial_again),
            ]);
            let kind = match requests {
                Requests::Sends => "",
                Requests::Reads => " (reads)",
                Requests::Outcomes => " (outcomes)",
            };
            println!(
                "numpool / trivial{kind} (mean of the two trivial runs) at {c} connections: {:.2}x",
                numpool.requests_per_sec / baseline
            );
        }
    }
    for c in connections.split(',').map(str::trim) {
        let plain = run_wrk(numpool_port, &script, c);
        let https = run_wrk_url(&format!("https://127.0.0.1:{tls_port}"), &script, c);
        let logged = run_wrk(logged_port, &script, c);
        let plain_again = run_wrk(numpool_port, &script, c);
        let baseline = (plain.requests_per_sec + plain_again.requests_per_sec) / 2.0;
        println!(
            "\nnumpool serve over HTTPS and with the access log, wrk -t1 -c{c}, same requests"
        );
        print_table(&[
            ("plain HTTP", &plain),
            ("HTTPS (rustls)", &https),
            ("plain HTTP, access log on", &logged),
            ("plain HTTP (again)", &plain_again),
        ]);
        println!(
            "at {c} connections, of plain HTTP (mean of its two runs): HTTPS {:.2}x, access log {:.2}x",
            https.requests_per_sec / baseline,
            logged.requests_per_sec / baseline
        );
    }
    let lines = std::fs::read_to_string(&log_file).map_or(0, |t| t.lines().count());
    println!("access log: {lines} lines written");
    let _ = std::fs::remove_file(&log_file);
    let _ = std::fs::remove_file(&script);
    let _ = std::fs::remove_file(&read_script);
    let _ = std::fs::remove_file(&outcome_script);
    let after = block_on(engine.stats());
    println!(
        "selections: {} sticky, {} weighted; {} mappings",
        after.selections[numpool::Reason::Sticky],
        after.selections[numpool::Reason::Weighted],
        after.stored_mappings
    );
    // The outcomes were counted (their senders are the pools'), not
    // accepted and ignored.
    let health = block_on(engine.number(sender(0, 0))).unwrap().health;
    println!("outcomes counted for one sender: {health:?}");
}
