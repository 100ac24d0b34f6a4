//! The HTTP API over real HTTP: a server on `127.0.0.1:0`, every route,
//! every error row of API.md, and the mapping lifecycle with a manual clock.

mod support;

use std::net::{SocketAddr, TcpListener};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey};
use futures::executor::block_on;
use numpool::server::{self, ApiKeys, HttpOptions};
use numpool::test_util::ManualClock;
use numpool::{Clock, Engine, EngineConfig, ProfileId, Timestamp};
use serde_json::{json, Value};
use support::{request, Response};

const KEY: &str = "test-key-1";
const DAY: u64 = 24 * 3600;

struct Server {
    addr: SocketAddr,
    engine: Engine,
    clock: Arc<ManualClock>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for Server {
    fn drop(&mut self) {
        block_on(self.handle.stop(false));
    }
}

fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

fn start(mailbox_bound: usize) -> Server {
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
    let config = EngineConfig {
        arbiters: 2,
        mailbox_bound,
        expire_tick: Duration::from_secs(3600),
        ..EngineConfig::default()
    };
    let engine = Engine::start_with_clock(config, clock.clone()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let public =
        base64::engine::general_purpose::STANDARD.encode(signing_key().verifying_key().as_bytes());
    let options = HttpOptions {
        keys: ApiKeys::new(vec![KEY.into(), "test-key-2".into()]),
        webhook_key: Some(server::webhook_key(&public).unwrap()),
        body_limit: 4096,
        workers: 2,
        ..HttpOptions::default()
    };
    let (tx, rx) = mpsc::channel();
    let served = engine.clone();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = server::http_server(listener, served, options).unwrap();
            tx.send(server.handle()).unwrap();
            server.await.ok();
        })
    });
    let handle = rx.recv().unwrap();
    Server {
        addr,
        engine,
        clock,
        handle,
    }
}

impl Server {
    /// One request over a fresh connection; `key` as the Bearer key.
    fn raw(
        &self,
        method: &str,
        path: &str,
        body: &str,
        key: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Response {
        request(self.addr, method, path, body, key, extra)
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Response {
        let text = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        self.raw(method, path, &text, Some(KEY), &[])
    }

    fn ok(&self, method: &str, path: &str, body: Value) -> Value {
        let r = self.call(method, path, body);
        assert_eq!(r.status, 200, "{method} {path}: {}", r.body);
        r.body["data"].clone()
    }

    fn profile(&self, settings: Value) -> String {
        let created = self.ok(
            "POST",
            "/v2/messaging_profiles",
            json!({"name": "p", "whitelisted_destinations": ["US"], "number_pool_settings": settings}),
        );
        created["id"].as_str().unwrap().to_string()
    }

    fn assign(&self, number: &str, profile: &str) {
        self.ok(
            "PATCH",
            &format!("/v2/phone_numbers/{number}/messaging"),
            json!({"messaging_profile_id": profile}),
        );
    }

    fn send(&self, profile: &str, to: &str) -> Value {
        self.ok(
            "POST",
            "/v2/messages/number_pool",
            json!({"messaging_profile_id": profile, "to": to, "text": "hi"}),
        )
    }
}

fn error(r: &Response) -> (u16, String, Option<String>) {
    let e = &r.body["errors"][0];
    (
        r.status,
        e["code"].as_str().unwrap_or("").to_string(),
        e["source"]["pointer"].as_str().map(str::to_string),
    )
}

fn expect_error(r: Response, status: u16, code: &str) -> Response {
    assert_eq!(
        (r.status, r.body["errors"][0]["code"].as_str().unwrap_or("")),
        (status, code),
        "{}",
        r.body
    );
    assert!(r.body["errors"][0]["title"].is_string() && r.body["errors"][0]["detail"].is_string());
    r
}

#[test]
fn keys_are_required_except_for_operations() {
    let s = start(64);
    expect_error(
        s.raw("GET", "/v2/messaging_profiles", "", None, &[]),
        401,
        "10009",
    );
    expect_error(
        s.raw("GET", "/v2/messaging_profiles", "", Some("wrong"), &[]),
        401,
        "10009",
    );
    assert_eq!(
        s.raw("GET", "/v2/messaging_profiles", "", Some("test-key-2"), &[])
            .status,
        200
    );
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(s.raw("GET", path, "", None, &[]).status, 200, "{path}");
    }
    expect_error(
        s.call("GET", "/v2/no_such_route", Value::Null),
        404,
        "10005",
    );
    // A known path with a method it does not take: 405, and what it takes.
    let wrong = expect_error(
        s.call("DELETE", "/v2/messaging_profiles", Value::Null),
        405,
        "10015",
    );
    assert!(
        wrong.headers.contains("allow: post, get"),
        "{}",
        wrong.headers
    );
    let wrong = expect_error(s.call("PUT", "/v2/messages", Value::Null), 405, "10015");
    assert!(wrong.headers.contains("allow: post"), "{}", wrong.headers);
    // A profile's routes share one scope: the same answers under it.
    let wrong = expect_error(
        s.call("POST", "/v2/messaging_profiles/p1/opt_outs", Value::Null),
        405,
        "10015",
    );
    assert!(wrong.headers.contains("allow: get"), "{}", wrong.headers);
    for path in [
        "/v2/messaging_profiles/p1/no_such_route",
        "/v2/messaging_profiles/p1/sticky_mappings/+14155550100/more",
    ] {
        expect_error(s.call("GET", path, Value::Null), 404, "10005");
    }
    let unknown = expect_error(
        s.call(
            "GET",
            "/v2/messaging_profiles/p1/sticky_mappings?sort=to",
            Value::Null,
        ),
        400,
        "10015",
    );
    let detail = unknown.body["errors"][0]["detail"].as_str().unwrap_or("");
    assert!(detail.contains("page[size]"), "{detail}");
    // The Bearer scheme is case-insensitive (RFC 7235).
    assert_eq!(
        s.raw(
            "GET",
            "/v2/messaging_profiles",
            "",
            None,
            &[("Authorization", "BEARER test-key-1")]
        )
        .status,
        200
    );
}

#[test]
fn profiles_crud_with_settings_merge() {
    let s = start(64);
    let created = s.ok(
        "POST",
        "/v2/messaging_profiles",
        json!({"name": "alerts", "whitelisted_destinations": ["US", "CA"]}),
    );
    assert_eq!(created["record_type"], "messaging_profile");
    assert_eq!(created["number_pool_settings"], Value::Null);
    assert_eq!(created["enabled"], true);
    let id = created["id"].as_str().unwrap();
    assert!(ProfileId::parse(id).is_some());
    // PATCH merges field by field; the response holds the complete object.
    let patched = s.ok(
        "PATCH",
        &format!("/v2/messaging_profiles/{id}"),
        json!({"number_pool_settings": {"toll_free_weight": 2}}),
    );
    assert_eq!(
        patched["number_pool_settings"],
        json!({"sticky_sender": false, "geomatch": false, "long_code_weight": 1.0, "toll_free_weight": 2.0, "skip_unhealthy": false, "geomatch_region_fallback": false})
    );
    let patched = s.ok(
        "PATCH",
        &format!("/v2/messaging_profiles/{id}"),
        json!({"number_pool_settings": {"sticky_sender": true}, "name": "renamed"}),
    );
    assert_eq!(patched["number_pool_settings"]["toll_free_weight"], 2.0);
    assert_eq!(patched["number_pool_settings"]["sticky_sender"], true);
    assert_eq!(patched["name"], "renamed");
    // Lists, filters and pages.
    s.ok(
        "POST",
        "/v2/messaging_profiles",
        json!({"name": "other", "whitelisted_destinations": ["*"]}),
    );
    let all = s.call(
        "GET",
        "/v2/messaging_profiles?page[size]=1&page[number]=2",
        Value::Null,
    );
    assert_eq!(
        all.body["meta"],
        json!({"page_number": 2, "page_size": 1, "total_pages": 2, "total_results": 2})
    );
    let named = s.call(
        "GET",
        "/v2/messaging_profiles?filter%5Bname%5D%5Beq%5D=renamed",
        Value::Null,
    );
    assert_eq!(named.body["data"].as_array().unwrap().len(), 1);
    let contains = s.call(
        "GET",
        "/v2/messaging_profiles?filter[name][contains]=th",
        Value::Null,
    );
    assert_eq!(contains.body["data"][0]["name"], "other");
    // null turns the pool off.
    let off = s.ok(
        "PATCH",
        &format!("/v2/messaging_profiles/{id}"),
        json!({"number_pool_settings": null}),
    );
    assert_eq!(off["number_pool_settings"], Value::Null);
    assert_eq!(
        s.ok("GET", &format!("/v2/messaging_profiles/{id}"), Value::Null)["name"],
        "renamed"
    );
    // Delete returns the record; then it is gone.
    assert_eq!(
        s.ok(
            "DELETE",
            &format!("/v2/messaging_profiles/{id}"),
            Value::Null
        )["id"],
        id
    );
    expect_error(
        s.call("GET", &format!("/v2/messaging_profiles/{id}"), Value::Null),
        404,
        "10005",
    );
    expect_error(
        s.call(
            "DELETE",
            &format!("/v2/messaging_profiles/{id}"),
            Value::Null,
        ),
        404,
        "10005",
    );
    expect_error(
        s.call("GET", "/v2/messaging_profiles/not-a-uuid", Value::Null),
        404,
        "10005",
    );
}

#[test]
fn bad_profile_input_gets_the_documented_errors_and_changes_nothing() {
    let s = start(64);
    let path = "/v2/messaging_profiles";
    let r = expect_error(
        s.call("POST", path, json!({"whitelisted_destinations": ["US"]})),
        422,
        "10004",
    );
    assert_eq!(error(&r).2.as_deref(), Some("/name"));
    expect_error(s.call("POST", path, json!({"name": "x"})), 422, "10004");
    expect_error(
        s.call(
            "POST",
            path,
            json!({"name": 5, "whitelisted_destinations": ["US"]}),
        ),
        400,
        "10015",
    );
    expect_error(
        s.call(
            "POST",
            path,
            json!({"name": "x", "whitelisted_destinations": ["usa"]}),
        ),
        422,
        "10015",
    );
    expect_error(
        s.raw("POST", path, "{\"name\": ", Some(KEY), &[]),
        400,
        "10015",
    );
    expect_error(s.raw("POST", path, "[1,2]", Some(KEY), &[]), 400, "10015");
    let huge = format!(
        "{{\"name\": \"{}\", \"whitelisted_destinations\": [\"US\"]}}",
        "x".repeat(5000)
    );
    expect_error(s.raw("POST", path, &huge, Some(KEY), &[]), 400, "10015");
    let id = s.profile(json!({"sticky_sender": true, "long_code_weight": 3}));
    let before = s.ok("GET", &format!("{path}/{id}"), Value::Null);
    let patch = |body: Value| s.call("PATCH", &format!("{path}/{id}"), body);
    let r = expect_error(
        patch(json!({"name": "changed", "number_pool_settings": {"long_code_weight": -1}})),
        422,
        "10015",
    );
    assert_eq!(
        error(&r).2.as_deref(),
        Some("/number_pool_settings/long_code_weight")
    );
    expect_error(
        patch(json!({"number_pool_settings": {"long_code_weight": "5"}})),
        400,
        "10015",
    );
    expect_error(
        patch(json!({"number_pool_settings": {"sticky_sender": null}})),
        400,
        "10015",
    );
    expect_error(
        patch(json!({"number_pool_settings": {"sticky_sender": "yes"}})),
        400,
        "10015",
    );
    expect_error(patch(json!({"number_pool_settings": [true]})), 400, "10015");
    expect_error(
        s.raw(
            "PATCH",
            &format!("{path}/{id}"),
            "{\"number_pool_settings\": {\"toll_free_weight\": 1e999}}",
            Some(KEY),
            &[],
        ),
        400,
        "10015",
    );
    expect_error(
        s.call("GET", "/v2/messaging_profiles?page[size]=0", Value::Null),
        422,
        "10015",
    );
    expect_error(
        s.call("GET", "/v2/messaging_profiles?page[number]=x", Value::Null),
        400,
        "10015",
    );
    assert_eq!(
        s.ok("GET", &format!("{path}/{id}"), Value::Null),
        before,
        "nothing changed"
    );
}

/// `source.parameter` of a reply's first error.
fn parameter(r: &Response) -> Option<&str> {
    r.body["errors"][0]["source"]["parameter"].as_str()
}

fn listed(r: &Response, field: &str) -> Vec<String> {
    r.body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", r.body))
        .iter()
        .map(|v| v[field].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn published_query_parameters_are_honoured_and_others_refused() {
    let s = start(64);
    let a = s.ok(
        "POST",
        "/v2/messaging_profiles",
        json!({"name": "alpha", "whitelisted_destinations": ["US"]}),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.ok(
        "POST",
        "/v2/messaging_profiles",
        json!({"name": "alphabet", "whitelisted_destinations": ["US"]}),
    );
    for n in [
        "+13125550001",
        "+13125550002",
        "+14155550003",
        "+18005550004",
    ] {
        s.assign(n, &a);
    }
    // filter[name] (what the Node SDK sends for `filter: {name}`) is exact.
    let r = s.call(
        "GET",
        "/v2/messaging_profiles?filter[name]=alpha",
        Value::Null,
    );
    assert_eq!(listed(&r, "name"), ["alpha"]);
    let r = s.call(
        "GET",
        "/v2/messaging_profiles?filter[name][contains]=alpha",
        Value::Null,
    );
    assert_eq!(r.body["meta"]["total_results"], 2);
    let r = s.call(
        "GET",
        "/v2/messaging_profiles?filter[name]=alpha&filter[name][eq]=alphabet",
        Value::Null,
    );
    assert_eq!(r.body["meta"]["total_results"], 0, "both must match");
    // filter[phone_number]: a comma-separated list, `+` escaped or not.
    let numbers = "/v2/phone_numbers/messaging";
    let r = s.call(
        "GET",
        &format!("{numbers}?filter[phone_number]=%2B13125550001,+14155550003"),
        Value::Null,
    );
    assert_eq!(listed(&r, "phone_number"), ["+13125550001", "+14155550003"]);
    let r = s.call(
        "GET",
        &format!("{numbers}?filter[phone_number]=nonsense"),
        Value::Null,
    );
    assert_eq!(r.body["meta"]["total_results"], 0);
    // [contains] matches the written number, and sort[phone_number] orders.
    let r = s.call(
        "GET",
        &format!("{numbers}?filter[phone_number][contains]=312555&sort[phone_number]=desc"),
        Value::Null,
    );
    assert_eq!(listed(&r, "phone_number"), ["+13125550002", "+13125550001"]);
    let r = s.call(
        "GET",
        &format!("{numbers}?filter[phone_number][contains]=%2B1312&sort[phone_number]=asc"),
        Value::Null,
    );
    assert_eq!(listed(&r, "phone_number"), ["+13125550001", "+13125550002"]);
    let r = s.call(
        "GET",
        "/v2/messaging_phone_numbers?sort[phone_number]=desc&page[size]=1",
        Value::Null,
    );
    assert_eq!(listed(&r, "phone_number"), ["+18005550004"]);
    let r = expect_error(
        s.call(
            "GET",
            &format!("{numbers}?sort[phone_number]=up"),
            Value::Null,
        ),
        422,
        "10015",
    );
    assert_eq!(parameter(&r), Some("sort[phone_number]"));
    // Anything else is refused with 400 naming it, on every operation,
    // and nothing changes.
    let before = s.ok("GET", &format!("/v2/messaging_profiles/{a}"), Value::Null);
    for (method, path, body) in [
        (
            "GET",
            "/v2/messaging_profiles?filter[enabled]=true".to_string(),
            Value::Null,
        ),
        (
            "GET",
            format!("{numbers}?sort[created_at]=asc"),
            Value::Null,
        ),
        (
            "GET",
            format!("/v2/messaging_profiles/{a}?include=numbers"),
            Value::Null,
        ),
        (
            "GET",
            format!("/v2/messaging_profiles/{a}/phone_numbers?filter[type]=longcode"),
            Value::Null,
        ),
        (
            "PATCH",
            format!("/v2/messaging_profiles/{a}?name=x"),
            json!({"name": "changed"}),
        ),
        (
            "POST",
            "/v2/messages/number_pool?dry_run=1".to_string(),
            json!({"messaging_profile_id": a, "to": "+13125550100", "text": "x"}),
        ),
    ] {
        let r = expect_error(s.call(method, &path, body), 400, "10015");
        let name = parameter(&r)
            .unwrap_or_else(|| panic!("{path}: {}", r.body))
            .to_string();
        assert!(path.contains(&format!("?{name}=")), "{path}: {name}");
        assert!(
            r.body["errors"][0]["source"]["pointer"].is_null(),
            "{}",
            r.body
        );
    }
    assert_eq!(
        s.ok("GET", &format!("/v2/messaging_profiles/{a}"), Value::Null),
        before,
        "nothing changed"
    );
    let mapped = s.call(
        "GET",
        &format!("/v2/messaging_profiles/{a}/sticky_mappings"),
        Value::Null,
    );
    assert_eq!(mapped.body["meta"]["total_results"], 0, "nothing was sent");
    // Errors about a parameter's value name it in source.parameter too.
    let r = expect_error(
        s.call("GET", "/v2/messaging_profiles?page[size]=0", Value::Null),
        422,
        "10015",
    );
    assert_eq!(parameter(&r), Some("page[size]"));
    let r = expect_error(
        s.call("GET", &format!("{numbers}?filter[type]=fax"), Value::Null),
        422,
        "10015",
    );
    assert_eq!(parameter(&r), Some("filter[type]"));
    // `consistency=stale` is taken by every GET (answered as usual outside
    // a cluster); another value is refused.
    s.ok(
        "GET",
        &format!("/v2/messaging_profiles/{a}?consistency=stale"),
        Value::Null,
    );
    let r = expect_error(
        s.call(
            "GET",
            &format!("/v2/messaging_profiles/{a}?consistency=strong"),
            Value::Null,
        ),
        422,
        "10015",
    );
    assert_eq!(parameter(&r), Some("consistency"));
}

/// `source` of a reply's first error.
fn source(r: &Response) -> &Value {
    &r.body["errors"][0]["source"]
}

#[test]
fn tricky_requests_get_the_answers_the_contract_gives() {
    let s = start(64);
    let p = s.profile(json!({"sticky_sender": true}));
    s.assign("+13125551001", &p);
    let profile = format!("/v2/messaging_profiles/{p}");
    let before = s.ok("GET", &profile, Value::Null);
    // A webhook's `data` must be an object: an array is refused, and the
    // STOP in it opts nobody out.
    let r = expect_error(
        s.call(
            "POST",
            "/v2/webhooks/messaging",
            json!({"data": ["message.received", "ev-1", {"from": {"phone_number": "+14155550177"}, "to": [{"phone_number": "+13125551001"}], "text": "STOP"}]}),
        ),
        400,
        "10015",
    );
    assert_eq!(source(&r)["pointer"], "/data");
    expect_error(
        s.call(
            "GET",
            &format!("{profile}/opt_outs/+14155550177"),
            Value::Null,
        ),
        404,
        "10005",
    );
    // A phone number of the wrong JSON type in an event is 400, not 422.
    let r = expect_error(
        s.call(
            "POST",
            "/v2/webhooks/messaging",
            json!({"data": {"event_type": "message.finalized", "id": "t1", "payload": {"from": {"phone_number": 5}}}}),
        ),
        400,
        "10015",
    );
    assert_eq!(source(&r)["pointer"], "/data/payload/from/phone_number");
    // Without a key, an unknown parameter is answered 401 like the rest:
    // the key is checked first.
    expect_error(
        s.raw("DELETE", &format!("{profile}?force=true"), "", None, &[]),
        401,
        "10009",
    );
    expect_error(
        s.raw("GET", "/v2/messaging_profiles?bogus=1", "", None, &[]),
        401,
        "10009",
    );
    // A parameter given twice is refused, naming it.
    for query in [
        "filter[name]=r&filter[name]=nope",
        "page[size]=1&page[size]=9999",
    ] {
        let r = expect_error(
            s.call(
                "GET",
                &format!("/v2/messaging_profiles?{query}"),
                Value::Null,
            ),
            400,
            "10015",
        );
        assert!(query.starts_with(parameter(&r).unwrap()), "{query}");
    }
    // A key given twice: refused and named, inside number_pool_settings too.
    let r = expect_error(
        s.raw(
            "PATCH",
            &profile,
            r#"{"number_pool_settings": {"sticky_sender": true, "sticky_sender": false}}"#,
            Some(KEY),
            &[],
        ),
        400,
        "10015",
    );
    assert_eq!(source(&r)["pointer"], "/number_pool_settings/sticky_sender");
    let r = expect_error(
        s.raw(
            "PATCH",
            &profile,
            r#"{"name": "d", "name": "e"}"#,
            Some(KEY),
            &[],
        ),
        400,
        "10015",
    );
    assert_eq!(source(&r)["pointer"], "/name");
    // Pointers are JSON pointers: `/` and `~` in a key are escaped.
    let r = expect_error(
        s.call(
            "PATCH",
            &profile,
            json!({"number_pool_settings": {"a/b~c": 1}}),
        ),
        422,
        "10015",
    );
    assert_eq!(source(&r)["pointer"], "/number_pool_settings/a~1b~0c");
    assert_eq!(
        s.ok("GET", &profile, Value::Null),
        before,
        "nothing changed"
    );
    // Path segments and headers are no body field: no `source`.
    let r = expect_error(
        s.call("GET", &format!("{profile}/sticky_mappings/0"), Value::Null),
        422,
        "10016",
    );
    assert!(source(&r).is_null(), "{}", r.body);
    let r = expect_error(
        s.raw(
            "POST",
            "/v2/messages/number_pool",
            &json!({"messaging_profile_id": p, "to": "+14155550100", "text": "x"}).to_string(),
            Some(KEY),
            &[("Idempotency-Key", "a b")],
        ),
        400,
        "10015",
    );
    assert!(source(&r).is_null(), "{}", r.body);
    // A whole number written with a fraction is that number.
    let updated = s.ok(
        "PATCH",
        &profile,
        json!({"daily_message_limit": 1000.0, "number_pool_settings": {"sticky_ttl_secs": 3600.0}}),
    );
    assert_eq!(updated["daily_message_limit"], 1000);
    assert_eq!(updated["number_pool_settings"]["sticky_ttl_secs"], 3600);
    // A long detail is cut to 300 characters, the last an ellipsis.
    let r = expect_error(
        s.call(
            "POST",
            "/v2/messages/number_pool",
            json!({"messaging_profile_id": p, "to": "+14155550100", "text": "x", "type": "z".repeat(1000)}),
        ),
        422,
        "10015",
    );
    let detail = r.body["errors"][0]["detail"].as_str().unwrap();
    assert_eq!(detail.chars().count(), 300, "{detail}");
    assert!(detail.ends_with('…'));
}

#[test]
fn numbers_are_assigned_moved_listed_and_unassigned() {
    let s = start(64);
    let a = s.profile(json!({"sticky_sender": true}));
    let b = s.profile(json!({"sticky_sender": true}));
    // A literal '+' and an encoded one.
    s.assign("+13125550001", &a);
    s.assign("%2B18005550002", &a);
    let n = s.ok(
        "GET",
        "/v2/phone_numbers/%2B13125550001/messaging",
        Value::Null,
    );
    assert_eq!(
        (
            n["record_type"].as_str(),
            n["type"].as_str(),
            n["country_code"].as_str()
        ),
        (Some("messaging_settings"), Some("longcode"), Some("US"))
    );
    assert_eq!(n["messaging_profile_id"], a.as_str());
    assert_eq!(
        n["health"],
        json!({"success_ratio": 1.0, "spam_ratio": 0.0, "message_count": 0, "inbound_outbound_ratio": 0.0})
    );
    // By numeric id, and on the older path.
    let by_id = s.ok(
        "GET",
        &format!("/v2/messaging_phone_numbers/{}", n["id"].as_str().unwrap()),
        Value::Null,
    );
    assert_eq!(
        (
            by_id["phone_number"].as_str(),
            by_id["record_type"].as_str()
        ),
        (Some("+13125550001"), Some("messaging_phone_number"))
    );
    let tf = s.call(
        "GET",
        &format!(
            "/v2/phone_numbers/messaging?filter[messaging_profile_id]={a}&filter[type]=tollfree"
        ),
        Value::Null,
    );
    assert_eq!(tf.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        s.call(
            "GET",
            &format!("/v2/messaging_profiles/{a}/phone_numbers"),
            Value::Null
        )
        .body["meta"]["total_results"],
        2
    );
    // Move, then unassign (the record stays).
    s.ok(
        "PATCH",
        "/v2/messaging_phone_numbers/+13125550001",
        json!({"messaging_profile_id": b}),
    );
    assert_eq!(
        s.call(
            "GET",
            &format!("/v2/messaging_profiles/{b}/phone_numbers"),
            Value::Null
        )
        .body["meta"]["total_results"],
        1
    );
    let freed = s.ok(
        "PATCH",
        "/v2/phone_numbers/+13125550001/messaging",
        json!({"messaging_profile_id": ""}),
    );
    assert_eq!(freed["messaging_profile_id"], Value::Null);
    assert_eq!(freed["eligible"]["eligible"], false);
    // Absent or null keeps.
    let kept = s.ok(
        "PATCH",
        "/v2/phone_numbers/+18005550002/messaging",
        json!({"messaging_profile_id": null}),
    );
    assert_eq!(kept["messaging_profile_id"], a.as_str());
    let filtered = s.call(
        "GET",
        "/v2/messaging_phone_numbers?filter[phone_number]=%2B18005550002",
        Value::Null,
    );
    assert_eq!(filtered.body["data"].as_array().unwrap().len(), 1);
    // Errors.
    expect_error(
        s.call(
            "PATCH",
            "/v2/phone_numbers/1312555/messaging",
            json!({"messaging_profile_id": a}),
        ),
        422,
        "10016",
    );
    // A 5-6 digit code is a short code: assignable, never picked by the pool.
    let short = s.ok(
        "PATCH",
        "/v2/phone_numbers/13125/messaging",
        json!({"messaging_profile_id": a}),
    );
    assert_eq!(
        (
            short["type"].as_str(),
            short["eligible"]["eligible"].as_bool()
        ),
        (Some("shortcode"), Some(false))
    );
    expect_error(
        s.call(
            "PATCH",
            "/v2/phone_numbers/+1312abc/messaging",
            json!({"messaging_profile_id": a}),
        ),
        422,
        "10016",
    );
    let r = expect_error(
        s.call(
            "PATCH",
            "/v2/phone_numbers/+13125550009/messaging",
            json!({"messaging_profile_id": ProfileId::new_v4().to_string()}),
        ),
        422,
        "10017",
    );
    assert_eq!(error(&r).2.as_deref(), Some("/messaging_profile_id"));
    expect_error(
        s.call(
            "PATCH",
            "/v2/phone_numbers/+13125550009/messaging",
            json!({"messaging_profile_id": 7}),
        ),
        400,
        "10015",
    );
    expect_error(
        s.call(
            "GET",
            "/v2/phone_numbers/+19995550000/messaging",
            Value::Null,
        ),
        404,
        "10005",
    );
    expect_error(
        s.call(
            "GET",
            "/v2/phone_numbers/messaging?filter[type]=landline",
            Value::Null,
        ),
        422,
        "10015",
    );
}

#[test]
fn sending_through_the_pool_and_explicitly() {
    let s = start(64);
    let p = s.profile(json!({"sticky_sender": true}));
    s.assign("+13125550001", &p);
    s.assign("+13125550002", &p);
    let m = s.send(&p, "+14155550100");
    assert_eq!(
        (
            m["record_type"].as_str(),
            m["direction"].as_str(),
            m["type"].as_str()
        ),
        (Some("message"), Some("outbound"), Some("SMS"))
    );
    assert_eq!(m["to"][0]["status"], "queued");
    assert_eq!(
        (&m["selection"]["reason"], &m["selection"]["mapping"]),
        (&json!("weighted"), &json!("created"))
    );
    assert_eq!(
        (
            m["encoding"].as_str(),
            m["parts"].as_u64(),
            m["num_chars"].as_u64()
        ),
        (Some("GSM-7"), Some(1), Some(2))
    );
    assert_eq!(m["sent_at"], Value::Null);
    let again = s.send(&p, "+14155550100");
    assert_eq!(again["from"], m["from"]);
    assert_eq!(
        (
            &again["selection"]["reason"],
            &again["selection"]["mapping"]
        ),
        (&json!("sticky"), &json!("reused"))
    );
    // POST /v2/messages: with messaging_profile_id it is the pool; with from, explicit.
    let pooled = s.ok(
        "POST",
        "/v2/messages",
        json!({"messaging_profile_id": p, "to": "+14155550100", "text": "x"}),
    );
    assert_eq!(pooled["selection"]["reason"], "sticky");
    let explicit = s.ok(
        "POST",
        "/v2/messages",
        json!({"from": "+13125550002", "to": "+14155550100", "text": "x"}),
    );
    assert_eq!(
        (
            explicit["from"]["phone_number"].as_str(),
            explicit["selection"]["reason"].as_str()
        ),
        (Some("+13125550002"), Some("explicit"))
    );
    assert_eq!(explicit["messaging_profile_id"], p.as_str());
    // Long and non-GSM texts.
    let long = s.ok(
        "POST",
        "/v2/messages/number_pool",
        json!({"messaging_profile_id": p, "to": "+14155550101", "text": "a".repeat(161)}),
    );
    assert_eq!(
        (long["parts"].as_u64(), long["num_chars"].as_u64()),
        (Some(2), Some(161))
    );
    let ucs = s.ok(
        "POST",
        "/v2/messages/number_pool",
        json!({"messaging_profile_id": p, "to": "+14155550101", "text": "привет"}),
    );
    assert_eq!(
        (ucs["encoding"].as_str(), ucs["parts"].as_u64()),
        (Some("UCS-2"), Some(1))
    );
    let mms = s.ok("POST", "/v2/messages/number_pool", json!({"messaging_profile_id": p, "to": "+14155550101", "media_urls": ["https://example.com/a.png"]}));
    assert_eq!(mms["type"], "MMS");
}

#[test]
fn bad_sends_get_the_documented_errors() {
    let s = start(64);
    let p = s.profile(json!({"sticky_sender": true}));
    let path = "/v2/messages/number_pool";
    let send = |body: Value| s.call("POST", path, body);
    expect_error(
        send(json!({"messaging_profile_id": p, "to": "4155550100", "text": "x"})),
        400,
        "40310",
    );
    expect_error(
        send(json!({"messaging_profile_id": p, "to": "+0155550100", "text": "x"})),
        400,
        "40310",
    );
    expect_error(
        send(json!({"messaging_profile_id": p, "text": "x"})),
        422,
        "10004",
    );
    expect_error(
        send(json!({"messaging_profile_id": p, "to": "+14155550100"})),
        422,
        "10004",
    );
    expect_error(
        send(json!({"to": "+14155550100", "text": "x"})),
        422,
        "10004",
    );
    expect_error(
        send(
            json!({"messaging_profile_id": ProfileId::new_v4().to_string(), "to": "+14155550100", "text": "x"}),
        ),
        422,
        "10017",
    );
    expect_error(
        send(json!({"messaging_profile_id": p, "to": "+14155550100", "text": "x", "type": "FAX"})),
        422,
        "10015",
    );
    expect_error(
        send(
            json!({"messaging_profile_id": p, "to": "+14155550100", "text": "x", "encoding": "latin1"}),
        ),
        422,
        "10015",
    );
    expect_error(
        send(
            json!({"messaging_profile_id": p, "to": "+14155550100", "text": "привет", "encoding": "gsm7"}),
        ),
        422,
        "10015",
    );
    expect_error(
        send(json!({"messaging_profile_id": p, "to": 14155550100u64, "text": "x"})),
        400,
        "10015",
    );
    // As the hosted service: an SMS takes at most 10 parts (GSM-7: 153
    // characters a part), and an MMS needs media_urls.
    let r = expect_error(
        send(json!({"messaging_profile_id": p, "to": "+14155550100", "text": "x".repeat(1531)})),
        422,
        "10015",
    );
    assert_eq!(error(&r).2.as_deref(), Some("/text"));
    assert!(r.body["errors"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("11 parts"));
    let r = expect_error(
        send(json!({"messaging_profile_id": p, "to": "+14155550100", "text": "x", "type": "MMS"})),
        422,
        "10004",
    );
    assert_eq!(error(&r).2.as_deref(), Some("/media_urls"));
    // Ten parts are read and go on to the pool (which has no numbers yet).
    expect_error(
        send(json!({"messaging_profile_id": p, "to": "+14155550100", "text": "x".repeat(1530)})),
        422,
        "40330",
    );
    // No numbers: the fixed no-sender code, the title names the cause.
    let r = expect_error(
        send(json!({"messaging_profile_id": p, "to": "+14155550100", "text": "x"})),
        422,
        "40330",
    );
    assert_eq!(r.body["errors"][0]["title"], "No numbers in pool");
    s.assign("+13125550001", &p);
    s.ok(
        "PATCH",
        &format!("/v2/messaging_profiles/{p}"),
        json!({"number_pool_settings": {"long_code_weight": 0}}),
    );
    let r = expect_error(
        send(json!({"messaging_profile_id": p, "to": "+14155550100", "text": "x"})),
        422,
        "40330",
    );
    assert!(r.body["errors"][0]["title"]
        .as_str()
        .unwrap()
        .contains("weights are 0"));
    expect_error(
        s.call(
            "POST",
            "/v2/messages",
            json!({"from": "+19995550000", "to": "+14155550100", "text": "x"}),
        ),
        422,
        "10017",
    );
    expect_error(
        s.call(
            "POST",
            "/v2/messages",
            json!({"from": "abc", "to": "+14155550100", "text": "x"}),
        ),
        422,
        "10016",
    );
}

#[test]
fn idempotency_key_replays_the_first_result_and_selects_nothing() {
    let s = start(64);
    let p = s.profile(json!({"long_code_weight": 1}));
    s.assign("+13125550001", &p);
    s.assign("+13125550002", &p);
    let body = json!({"messaging_profile_id": p, "to": "+14155550100", "text": "x"}).to_string();
    let key = [("Idempotency-Key", "abc-123")];
    let first = s.raw("POST", "/v2/messages/number_pool", &body, Some(KEY), &key);
    let replay = s.raw("POST", "/v2/messages/number_pool", &body, Some(KEY), &key);
    assert_eq!(first.status, 200);
    assert_eq!(first.body, replay.body, "same message, same id");
    let stats = block_on(s.engine.stats());
    assert_eq!(
        stats.selections[numpool::Reason::Weighted],
        1,
        "the replay selected nothing"
    );
    // Round-robin moved on exactly once: the next send gets the other number.
    let next = s.send(&p, "+14155550100");
    assert_ne!(next["from"], first.body["data"]["from"]);
}

#[test]
fn webhooks_feed_health_once_per_event_with_key_or_signature() {
    let s = start(64);
    let p = s.profile(json!({"skip_unhealthy": true}));
    s.assign("+13125550001", &p);
    s.assign("+13125550002", &p);
    let event = |id: usize, status: &str| {
        json!({"data": {"event_type": "message.finalized", "id": format!("evt-{id}"), "occurred_at": "2027-01-15T08:00:00Z",
            "payload": {"from": {"phone_number": "+13125550001"}, "to": [{"phone_number": "+14155550100", "status": status}], "errors": []}}})
    };
    for i in 0..20 {
        let r = s.ok(
            "POST",
            "/v2/webhooks/messaging",
            event(i, "delivery_failed"),
        );
        assert_eq!(r["counted"], true);
    }
    // A duplicate id is counted once; other events are accepted and ignored.
    assert_eq!(
        s.ok(
            "POST",
            "/v2/webhooks/messaging",
            event(3, "delivery_failed")
        )["counted"],
        false
    );
    let sent = json!({"data": {"event_type": "message.sent", "id": "evt-x", "payload": {}}});
    assert_eq!(
        s.ok("POST", "/v2/webhooks/messaging", sent)["counted"],
        false
    );
    let n = s.ok(
        "GET",
        "/v2/phone_numbers/+13125550001/messaging",
        Value::Null,
    );
    assert_eq!(n["health"]["message_count"], 20);
    assert_eq!(n["health"]["success_ratio"], 0.0);
    assert_eq!(n["eligible"]["eligible"], false);
    // Skip unhealthy: every new pick avoids it.
    for i in 0..4 {
        assert_eq!(
            s.send(&p, &format!("+1415555020{i}"))["from"]["phone_number"],
            "+13125550002"
        );
    }
    // Auth: no key and no signature is refused; a valid signature is enough.
    let body = event(100, "delivered").to_string();
    expect_error(
        s.raw("POST", "/v2/webhooks/messaging", &body, None, &[]),
        401,
        "10009",
    );
    let now = s.clock.now().as_secs();
    let sign = |ts: u64| {
        let sig = signing_key().sign(format!("{ts}|{body}").as_bytes());
        base64::engine::general_purpose::STANDARD.encode(sig.to_bytes())
    };
    let good = s.raw(
        "POST",
        "/v2/webhooks/messaging",
        &body,
        None,
        &[
            ("telnyx-signature-ed25519", &sign(now)),
            ("telnyx-timestamp", &now.to_string()),
        ],
    );
    assert_eq!(good.status, 200, "{}", good.body);
    let stale = now - 301;
    let old = s.raw(
        "POST",
        "/v2/webhooks/messaging",
        &body,
        None,
        &[
            ("telnyx-signature-ed25519", &sign(stale)),
            ("telnyx-timestamp", &stale.to_string()),
        ],
    );
    expect_error(old, 401, "10009");
    let forged = s.raw(
        "POST",
        "/v2/webhooks/messaging",
        &body.replace("delivered", "expired"),
        None,
        &[
            ("telnyx-signature-ed25519", &sign(now)),
            ("telnyx-timestamp", &now.to_string()),
        ],
    );
    expect_error(forged, 401, "10009");
    expect_error(
        s.call("POST", "/v2/webhooks/messaging", json!({"nope": 1})),
        422,
        "10004",
    );
}

#[test]
fn sticky_mappings_routes() {
    let s = start(64);
    let p = s.profile(json!({"sticky_sender": true}));
    s.assign("+13125550001", &p);
    s.assign("+13125550002", &p);
    let first = s.send(&p, "+14155550100");
    s.send(&p, "+14155550101");
    let base = format!("/v2/messaging_profiles/{p}/sticky_mappings");
    let listed = s.call("GET", &format!("{base}?page[size]=1"), Value::Null);
    assert_eq!(listed.body["meta"]["total_results"], 2);
    assert_eq!(listed.body["data"][0]["record_type"], "sticky_mapping");
    let m = s.ok("GET", &format!("{base}/+14155550100"), Value::Null);
    assert_eq!(m["from"], first["from"]["phone_number"]);
    assert_eq!(m["pinned"], false);
    assert!(m["expires_at"].as_str().unwrap().starts_with("2027-01-23"));
    let by_sender = s.call(
        "GET",
        &format!("{base}?filter[sender]=%2B13125550002"),
        Value::Null,
    );
    assert_eq!(by_sender.body["data"].as_array().unwrap().len(), 1);
    let pinned = s.ok(
        "PUT",
        &format!("{base}/%2B14155550100"),
        json!({"from": "+13125550002"}),
    );
    assert_eq!(
        (pinned["pinned"].as_bool(), pinned["expires_at"].is_null()),
        (Some(true), true)
    );
    expect_error(
        s.call(
            "PUT",
            &format!("{base}/+14155550100"),
            json!({"from": "+19995550000"}),
        ),
        422,
        "10015",
    );
    expect_error(
        s.call("PUT", &format!("{base}/+14155550100"), json!({})),
        422,
        "10004",
    );
    assert_eq!(
        s.ok("DELETE", &format!("{base}/+14155550100"), Value::Null)["from"],
        "+13125550002"
    );
    expect_error(
        s.call("GET", &format!("{base}/+14155550100"), Value::Null),
        404,
        "10005",
    );
    expect_error(
        s.call("GET", &format!("{base}/4155550100"), Value::Null),
        422,
        "10016",
    );
    expect_error(
        s.call(
            "GET",
            &format!(
                "/v2/messaging_profiles/{}/sticky_mappings",
                ProfileId::new_v4()
            ),
            Value::Null,
        ),
        404,
        "10005",
    );
}

#[test]
fn a_removal_preview_counts_what_removing_a_number_would_clear_and_keep() {
    let s = start(64);
    let p = s.profile(json!({"sticky_sender": true}));
    let (a, b) = ("+13125550001", "+13125550002");
    s.assign(a, &p);
    s.assign(b, &p);
    let id = |number: &str| {
        s.ok(
            "GET",
            &format!("/v2/phone_numbers/{number}/messaging"),
            Value::Null,
        )["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let mut to_a = 0;
    for i in 0..6 {
        let sent = s.send(&p, &format!("+1415555010{i}"));
        to_a += u32::from(sent["from"]["phone_number"] == a);
    }
    // One recipient pinned to `a`, one opt-out that came in through `a`.
    let base = format!("/v2/messaging_profiles/{p}/sticky_mappings");
    let moved = s.ok("GET", &format!("{base}/+14155550100"), Value::Null)["from"] != a;
    s.ok("PUT", &format!("{base}/%2B14155550100"), json!({"from": a}));
    to_a += u32::from(moved);
    let event = json!({"data": {"event_type": "message.received", "id": "stop-1",
        "payload": {"from": {"phone_number": "+14155550199"},
                    "to": [{"phone_number": a}], "text": "STOP"}}});
    s.ok("POST", "/v2/webhooks/messaging", event);

    let preview_of = |number: &str| {
        s.ok(
            "GET",
            &format!("/v2/phone_numbers/{}/messaging/removal_preview", id(number)),
            Value::Null,
        )
    };
    let preview = preview_of(a);
    assert_eq!(preview["record_type"], "removal_preview");
    assert_eq!(preview["messaging_profile_id"], json!(p));
    assert_eq!(
        (
            &preview["mappings_cleared"],
            &preview["pinned_cleared"],
            &preview["opt_outs_kept"]
        ),
        (&json!(to_a), &json!(1), &json!(1)),
        "{preview}"
    );
    assert_eq!(preview_of(b)["mappings_cleared"], json!(6 - to_a));
    let record = s.ok(
        "GET",
        &format!("/v2/phone_numbers/{a}/messaging"),
        Value::Null,
    );
    assert_eq!(record["sticky_mappings"], json!(to_a));
    // The preview changed nothing; the removal then does what it said.
    let listed = |s: &Server| {
        s.call("GET", &format!("{base}?page[size]=250"), Value::Null)
            .body["data"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(listed(&s), 6);
    s.ok(
        "PATCH",
        &format!("/v2/phone_numbers/{a}/messaging"),
        json!({"messaging_profile_id": ""}),
    );
    assert_eq!(listed(&s) as u32, 6 - to_a);
    let after = preview_of(a);
    assert_eq!(
        (&after["mappings_cleared"], &after["messaging_profile_id"]),
        (&json!(0), &Value::Null)
    );
    assert_eq!(
        s.ok("GET", &format!("/v2/messaging_profiles/{p}"), Value::Null)["opt_out_count"],
        1,
        "the opt-out stays with the profile"
    );
    expect_error(
        s.call(
            "GET",
            "/v2/phone_numbers/+19995550000/messaging/removal_preview",
            Value::Null,
        ),
        404,
        "10005",
    );
}

#[test]
fn an_export_streams_every_live_mapping_as_ndjson() {
    let s = start(64);
    let p = s.profile(json!({"sticky_sender": true}));
    for n in ["+13125550001", "+13125550002", "+18005550003"] {
        s.assign(n, &p);
    }
    // More than one page of the export (1024 mappings a page).
    let recipients = 4500u64;
    for i in 0..recipients {
        s.send(&p, &format!("+1415{:07}", 5_000_000 + i));
    }
    let path = format!("/v2/messaging_profiles/{p}/sticky_mappings/export");
    let r = s.raw("GET", &path, "", Some(KEY), &[]);
    assert_eq!(r.status, 200);
    assert!(
        r.headers.contains("content-type: application/x-ndjson"),
        "{}",
        r.headers
    );
    let text = r.body.as_str().expect("NDJSON text");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(lines.len() as u64, recipients, "every mapping once");
    let mut seen = std::collections::HashSet::new();
    for line in &lines {
        assert_eq!(line["record_type"], "sticky_mapping", "{line}");
        assert!(seen.insert(line["to"].as_str().unwrap().to_string()));
    }
    // A line is the mapping record the single read gives.
    let one = &lines[lines.len() / 2];
    let single = s.ok(
        "GET",
        &format!(
            "/v2/messaging_profiles/{p}/sticky_mappings/{}",
            one["to"].as_str().unwrap()
        ),
        Value::Null,
    );
    assert_eq!(&single, one);
    // An unknown profile, or a query parameter: a plain error, no stream.
    let unknown = format!(
        "/v2/messaging_profiles/{}/sticky_mappings/export",
        ProfileId::new_v4()
    );
    expect_error(s.raw("GET", &unknown, "", Some(KEY), &[]), 404, "10005");
    expect_error(
        s.raw("GET", &format!("{path}?page[size]=10"), "", Some(KEY), &[]),
        400,
        "10015",
    );
    // An empty profile exports nothing.
    let empty = s.profile(json!({"sticky_sender": true}));
    let r = s.raw(
        "GET",
        &format!("/v2/messaging_profiles/{empty}/sticky_mappings/export"),
        "",
        Some(KEY),
        &[],
    );
    assert_eq!((r.status, r.body.as_str()), (200, Some("")));
}

#[test]
fn an_upload_cut_off_imports_its_whole_lines_only_and_a_rerun_finishes_it() {
    use std::io::{Read, Write};
    let s = start(64);
    let p = s.profile(json!({"sticky_sender": true}));
    s.assign("+13125550001", &p);
    let made = s.ok("GET", &format!("/v2/messaging_profiles/{p}"), Value::Null)["created_at"]
        .as_str()
        .unwrap()
        .to_string();
    let at = made.parse::<jiff::Timestamp>().unwrap().as_second() - 60;
    let line =
        |to: &str| format!("{{\"to\":\"{to}\",\"from\":\"+13125550001\",\"sent_at\":{at}}}\n");
    let whole: String = [
        "+14155550200",
        "+14155550201",
        "+14155550202",
        "+14155550203",
    ]
    .iter()
    .map(|to| line(to))
    .collect();
    // The last line stops inside its number: "+1415555020" is a number too,
    // so reading the cut line as a row would map the wrong recipient.
    let cut = &whole[..whole.find("+14155550203").unwrap() + 11];
    assert!(cut.ends_with("+1415555020"), "{cut}");
    let path = format!("/v2/messaging_profiles/{p}/sticky_mappings/import");
    let mut stream = std::net::TcpStream::connect(s.addr).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n{cut}",
        whole.len()
    )
    .unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("broke off after line 3"), "{answer}");
    let mapping = |to: &str| {
        s.call(
            "GET",
            &format!("/v2/messaging_profiles/{p}/sticky_mappings/{to}"),
            Value::Null,
        )
        .status
    };
    assert_eq!(mapping("+14155550202"), 200, "whole lines are imported");
    assert_eq!(mapping("+14155550203"), 404);
    assert_eq!(mapping("+1415555020"), 404, "the cut line is not a row");
    let r = s.raw("POST", &path, &whole, Some(KEY), &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(mapping("+14155550203"), 200, "the re-run finishes it");
}

#[test]
fn message_history_imports_from_ndjson_and_csv_and_an_export_reimports() {
    let s = start(64);
    let p = s.profile(json!({"sticky_sender": true}));
    for n in ["+13125550001", "+13125550002"] {
        s.assign(n, &p);
    }
    let path = format!("/v2/messaging_profiles/{p}/sticky_mappings/import");
    // The server's clock (a manual one here): the profile was made "now".
    let made = s.ok("GET", &format!("/v2/messaging_profiles/{p}"), Value::Null)["created_at"]
        .as_str()
        .unwrap()
        .to_string();
    let clock_now = made.parse::<jiff::Timestamp>().unwrap().as_second() as u64;
    // NDJSON: the latest row per recipient; bad lines reported by number,
    // and the rows around them still count.
    let ndjson = [
        r#"{"to":"+14155550100","from":"+13125550001","sent_at":"2020-01-01T00:00:00Z"}"#,
        r#"{"to":"+14155550101","from":"+13125550001","sent_at":"NOW-3600"}"#,
        "not json",
        r#"{"to":"+14155550101","from":"+13125550002","sent_at":"NOW-60"}"#,
        r#"{"to":"+14155550102","from":"+19995550000","sent_at":"NOW-60"}"#,
        r#"{"to":"12","from":"+13125550001","sent_at":"NOW-60"}"#,
    ];
    let body: String = ndjson
        .iter()
        .map(|l| {
            l.replace("\"NOW-3600\"", &(clock_now - 3600).to_string())
                .replace("\"NOW-60\"", &(clock_now - 60).to_string())
                + "\n"
        })
        .collect();
    let r = s.raw("POST", &path, &body, Some(KEY), &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    let d = &r.body["data"];
    assert_eq!(
        (d["rows"].as_u64(), d["mapped"].as_u64()),
        (Some(6), Some(1)),
        "{d}"
    );
    assert_eq!(d["skipped"]["expired"], 1, "{d}");
    assert_eq!(d["skipped"]["not_in_pool"], 1, "{d}");
    assert_eq!(d["skipped"]["superseded"], 1, "{d}");
    assert_eq!(d["skipped"]["malformed"], 2, "{d}");
    let lines: Vec<u64> = d["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [3, 6]);
    let m = s.ok(
        "GET",
        &format!("/v2/messaging_profiles/{p}/sticky_mappings/+14155550101"),
        Value::Null,
    );
    assert_eq!(m["from"], "+13125550002");
    // CSV as a provider's message-log export names its columns; inbound
    // rows are skipped.
    let csv = format!(
        "\"From\",\"To\",\"Body\",\"SentDate\",\"Direction\"\r\n\"+13125550001\",\"+14155550200\",\"hi, you\",\"{}\",\"outbound-api\"\r\n\"+14155550200\",\"+13125550001\",\"STOP\",\"{}\",\"inbound\"\r\n",
        clock_now - 120,
        clock_now - 100
    );
    let r = s.raw(
        "POST",
        &path,
        &csv,
        Some(KEY),
        &[("Content-Type", "text/csv")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["mapped"], 1, "{}", r.body);
    assert_eq!(r.body["data"]["skipped"]["inbound"], 1, "{}", r.body);
    // An export imported into an empty profile with the same pool gives
    // the same mappings, expiry and all.
    let exported = s.raw(
        "GET",
        &format!("/v2/messaging_profiles/{p}/sticky_mappings/export"),
        "",
        Some(KEY),
        &[],
    );
    let text = match &exported.body {
        Value::String(t) => t.clone(),
        one => format!("{one}\n"),
    };
    let q = s.profile(json!({"sticky_sender": true}));
    for n in ["+13125550001", "+13125550002"] {
        s.ok(
            "PATCH",
            &format!("/v2/phone_numbers/{n}/messaging"),
            json!({"messaging_profile_id": q}),
        );
    }
    // The numbers moved to q: its export must match p's as it was.
    let r = s.raw(
        "POST",
        &format!("/v2/messaging_profiles/{q}/sticky_mappings/import"),
        &text,
        Some(KEY),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let again = s.raw(
        "GET",
        &format!("/v2/messaging_profiles/{q}/sticky_mappings/export"),
        "",
        Some(KEY),
        &[],
    );
    let sorted = |v: &Value| {
        let text = match v {
            Value::String(t) => t.clone(),
            one => one.to_string(),
        };
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines.sort();
        lines
    };
    assert_eq!(sorted(&again.body), sorted(&exported.body));
    assert_eq!(sorted(&again.body).len(), 2);
    // Sticky off: refused; an unknown profile: 404; a header naming no
    // known column: every line malformed, nothing mapped.
    let off = s.profile(json!({"sticky_sender": false}));
    expect_error(
        s.raw(
            "POST",
            &format!("/v2/messaging_profiles/{off}/sticky_mappings/import"),
            &body,
            Some(KEY),
            &[],
        ),
        422,
        "10015",
    );
    expect_error(
        s.raw(
            "POST",
            &format!(
                "/v2/messaging_profiles/{}/sticky_mappings/import",
                ProfileId::new_v4()
            ),
            &body,
            Some(KEY),
            &[],
        ),
        404,
        "10005",
    );
    let r = s.raw("POST", &path, "a,b,c\n1,2,3\n", Some(KEY), &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["mapped"], 0);
    assert_eq!(r.body["data"]["errors"][0]["line"], 1, "{}", r.body);
}

#[test]
fn lifecycle_through_http_with_a_manual_clock() {
    let s = start(64);
    let p = s.profile(json!({"sticky_sender": true}));
    s.assign("+13125550001", &p);
    s.assign("+13125550002", &p);
    let first = s.send(&p, "+14155550100");
    s.clock.advance(Duration::from_secs(8 * DAY - 60));
    assert_eq!(s.send(&p, "+14155550100")["selection"]["reason"], "sticky");
    s.clock.advance(Duration::from_secs(8 * DAY + 1));
    let after = s.send(&p, "+14155550100");
    assert_eq!(
        (
            &after["selection"]["reason"],
            &after["selection"]["mapping"]
        ),
        (&json!("weighted"), &json!("created"))
    );
    assert_ne!(after["from"], first["from"]);
    // Disabling sticky clears; removing a sender clears its mappings.
    s.ok(
        "PATCH",
        &format!("/v2/messaging_profiles/{p}"),
        json!({"number_pool_settings": {"sticky_sender": false}}),
    );
    s.ok(
        "PATCH",
        &format!("/v2/messaging_profiles/{p}"),
        json!({"number_pool_settings": {"sticky_sender": true}}),
    );
    expect_error(
        s.call(
            "GET",
            &format!("/v2/messaging_profiles/{p}/sticky_mappings/+14155550100"),
            Value::Null,
        ),
        404,
        "10005",
    );
    let m = s.send(&p, "+14155550100");
    s.ok(
        "PATCH",
        &format!(
            "/v2/phone_numbers/{}/messaging",
            m["from"]["phone_number"].as_str().unwrap()
        ),
        json!({"messaging_profile_id": ""}),
    );
    expect_error(
        s.call(
            "GET",
            &format!("/v2/messaging_profiles/{p}/sticky_mappings/+14155550100"),
            Value::Null,
        ),
        404,
        "10005",
    );
    // The pool off: sends rejected with the no-sender code.
    s.ok(
        "PATCH",
        &format!("/v2/messaging_profiles/{p}"),
        json!({"number_pool_settings": null}),
    );
    let r = expect_error(
        s.call(
            "POST",
            "/v2/messages/number_pool",
            json!({"messaging_profile_id": p, "to": "+14155550100", "text": "x"}),
        ),
        422,
        "40330",
    );
    assert_eq!(r.body["errors"][0]["title"], "Number pool is off");
}

#[test]
fn overload_is_429_with_retry_after() {
    let s = start(1);
    let p = s.profile(json!({"sticky_sender": true}));
    s.assign("+13125550001", &p);
    let id = ProfileId::parse(&p).unwrap();
    let (release, wait) = mpsc::channel::<()>();
    let (started, running) = mpsc::channel::<()>();
    s.engine
        .queue_request(id, move || {
            started.send(()).unwrap();
            wait.recv().unwrap();
        })
        .unwrap();
    running.recv().unwrap();
    let addr = s.addr;
    let body = json!({"messaging_profile_id": p, "to": "+14155550100", "text": "x"}).to_string();
    // One send queues (the bound is 1)...
    let queued = {
        let body = body.clone();
        std::thread::spawn(move || {
            request(
                addr,
                "POST",
                "/v2/messages/number_pool",
                &body,
                Some(KEY),
                &[],
            )
            .status
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while s.engine.mailbox_depth(id) < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the first send never queued"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    // ...and the next is refused at once.
    let refused = s.raw("POST", "/v2/messages/number_pool", &body, Some(KEY), &[]);
    release.send(()).unwrap();
    let refused = expect_error(refused, 429, "10011");
    assert!(refused.headers.contains("retry-after: 1"));
    assert_eq!(queued.join().unwrap(), 200);
}

#[test]
fn garbage_never_breaks_the_server() {
    let s = start(64);
    let p = s.profile(json!({"sticky_sender": true}));
    let bodies = [
        "",
        "null",
        "{",
        "\"x\"",
        "{\"to\": []}",
        "{\"number_pool_settings\": {\"geomatch\": {}}}",
        "\u{0}\u{1}",
        "{\"messaging_profile_id\": {\"a\": 1}}",
        "{\"data\": 5}",
    ];
    let routes = [
        ("POST", "/v2/messaging_profiles".to_string()),
        ("PATCH", format!("/v2/messaging_profiles/{p}")),
        (
            "PATCH",
            "/v2/phone_numbers/+13125550001/messaging".to_string(),
        ),
        ("POST", "/v2/messages/number_pool".to_string()),
        ("POST", "/v2/messages".to_string()),
        ("POST", "/v2/webhooks/messaging".to_string()),
        (
            "PUT",
            format!("/v2/messaging_profiles/{p}/sticky_mappings/+14155550100"),
        ),
    ];
    let before = s.ok("GET", &format!("/v2/messaging_profiles/{p}"), Value::Null);
    for (method, path) in &routes {
        for body in bodies {
            // Never a server error; every refusal in the error envelope. (A
            // PATCH of only unknown fields is a valid no-op: unknown fields are ignored.)
            let r = s.raw(method, path, body, Some(KEY), &[]);
            assert!(
                r.status < 500,
                "{method} {path} {body:?}: {} {}",
                r.status,
                r.body
            );
            if r.status >= 400 {
                assert!(
                    r.body["errors"][0]["code"].is_string(),
                    "{method} {path} {body:?}: {}",
                    r.body
                );
            }
        }
    }
    assert_eq!(
        s.ok("GET", &format!("/v2/messaging_profiles/{p}"), Value::Null),
        before,
        "nothing changed"
    );
    assert_eq!(s.raw("GET", "/healthz", "", None, &[]).status, 200);
    let doc = s.raw("GET", "/v2/openapi.json", "", Some(KEY), &[]);
    assert_eq!(doc.body["openapi"], "3.1.0");
    let send = &doc.body["paths"]["/messages/number_pool"]["post"];
    assert_eq!(
        send["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/SendBody"
    );
    let metrics = s.raw("GET", "/metrics", "", None, &[]);
    assert!(metrics
        .body
        .as_str()
        .unwrap()
        .contains("numpool_http_responses_total{class=\"4xx\"}"));
}

#[test]
fn capacity_through_http_waits_caps_and_bad_values() {
    let s = start(64);
    let p = s.profile(json!({}));
    // Profile fields: defaults on every profile, set and merged by PATCH.
    let profile = s.ok("GET", &format!("/v2/messaging_profiles/{p}"), Value::Null);
    assert_eq!(
        (
            &profile["max_queue_seconds"],
            &profile["daily_message_limit"],
            &profile["new_recipients_per_sender_per_day"],
            &profile["daily_reset_time_zone"]
        ),
        (&json!(14400.0), &Value::Null, &Value::Null, &json!("UTC"))
    );
    let patched = s.ok(
        "PATCH",
        &format!("/v2/messaging_profiles/{p}"),
        json!({"max_queue_seconds": 2, "daily_message_limit": 5,
               "daily_reset_time_zone": "America/Los_Angeles"}),
    );
    assert_eq!(patched["max_queue_seconds"], 2.0);
    assert_eq!(patched["daily_message_limit"], 5);
    assert_eq!(patched["daily_reset_time_zone"], "America/Los_Angeles");
    // Bad values: 422 with a pointer, nothing changed.
    for (body, pointer) in [
        (json!({"max_queue_seconds": 0}), "/max_queue_seconds"),
        (json!({"max_queue_seconds": -3}), "/max_queue_seconds"),
        (json!({"max_queue_seconds": 1e300}), "/max_queue_seconds"),
        (json!({"daily_message_limit": 0}), "/daily_message_limit"),
        (json!({"daily_message_limit": 2.5}), "/daily_message_limit"),
        (
            json!({"new_recipients_per_sender_per_day": -1}),
            "/new_recipients_per_sender_per_day",
        ),
        (
            json!({"daily_reset_time_zone": "Mars/Base", "daily_message_limit": 9}),
            "/daily_reset_time_zone",
        ),
    ] {
        let r = expect_error(
            s.call(
                "PATCH",
                &format!("/v2/messaging_profiles/{p}"),
                body.clone(),
            ),
            422,
            "10015",
        );
        assert_eq!(error(&r).2.as_deref(), Some(pointer), "{body}");
    }
    expect_error(
        s.call(
            "PATCH",
            &format!("/v2/messaging_profiles/{p}"),
            json!({"max_queue_seconds": "ten"}),
        ),
        400,
        "10015",
    );
    assert_eq!(
        s.ok("GET", &format!("/v2/messaging_profiles/{p}"), Value::Null),
        patched
    );

    // A number's rate and capacity object.
    s.assign("+13125550001", &p);
    let path = "/v2/phone_numbers/+13125550001/messaging";
    let number = s.ok("GET", path, Value::Null);
    assert_eq!(number["messages_per_second"], Value::Null);
    assert_eq!(
        number["capacity"],
        json!({"messages_per_second": 1.0, "wait_seconds": 0.0,
               "messages_today": 0, "new_recipients_today": 0})
    );
    for bad in [json!(0), json!(-1), json!(1e9)] {
        let r = expect_error(
            s.call(
                "PATCH",
                path,
                json!({"messages_per_second": bad, "messaging_profile_id": ""}),
            ),
            422,
            "10015",
        );
        assert_eq!(error(&r).2.as_deref(), Some("/messages_per_second"));
    }
    assert_eq!(
        s.engine
            .owner(numpool::PhoneNumber::parse_e164("+13125550001").unwrap())
            .map(|id| id.to_string()),
        Some(p.clone()),
        "a refused PATCH changes nothing"
    );
    let fast = s.ok("PATCH", path, json!({"messages_per_second": 2}));
    assert_eq!(fast["capacity"]["messages_per_second"], 2.0);

    // Waits and send_at on messages; a long text takes more parts.
    let one = s.send(&p, "+14155550100");
    assert_eq!(one["wait_seconds"], 0.0);
    assert_eq!(one["selection"]["send_at"], one["received_at"]);
    let long = s.ok(
        "POST",
        "/v2/messages/number_pool",
        json!({"messaging_profile_id": p, "to": "+14155550101", "text": "x".repeat(200)}),
    );
    assert_eq!(
        (long["parts"].as_u64(), long["wait_seconds"].as_f64()),
        (Some(2), Some(0.5))
    );
    // 2 parts at 2/s: the queue is 1.5 s now; one more is 1.5 s, within 2 s.
    assert_eq!(s.send(&p, "+14155550102")["wait_seconds"], 1.5);
    // 2 s now: one more would wait 2 s, exactly the cap; 2.5 s is over.
    let r = s.send(&p, "+14155550103");
    assert_eq!(r["wait_seconds"], 2.0);
    let full = expect_error(
        s.call(
            "POST",
            "/v2/messages",
            json!({"from": "+13125550001", "to": "+14155550104", "text": "hi"}),
        ),
        422,
        "40318",
    );
    let detail = full.body["errors"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("+13125550001") && detail.contains("2.5 s"),
        "{detail}"
    );
    let listed = s.ok(
        "GET",
        &format!("/v2/messaging_profiles/{p}/phone_numbers"),
        Value::Null,
    );
    assert_eq!(listed[0]["capacity"]["messages_today"], 4);
    assert_eq!(listed[0]["capacity"]["wait_seconds"], 2.5);

    // The daily limit (5): one more fits after the queue drains, then 40320.
    s.clock.advance(Duration::from_secs(10));
    s.send(&p, "+14155550105");
    expect_error(
        s.call(
            "POST",
            "/v2/messages/number_pool",
            json!({"messaging_profile_id": p, "to": "+14155550106", "text": "hi"}),
        ),
        422,
        "40320",
    );
    let metrics = s.raw("GET", "/metrics", "", None, &[]).body;
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains("numpool_sends_refused_total{cause=\"queue_full\",code=\"40318\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("numpool_sends_refused_total{cause=\"daily_limit\",code=\"40320\"} 1"));
    assert!(metrics.contains("numpool_queue_wait_seconds_count 5"));
}

#[test]
fn compliance_through_http_opt_outs_destinations_and_disabled_profiles() {
    let s = start(64);
    let p = s.profile(json!({"sticky_sender": true}));
    s.assign("+13125550001", &p);
    let path = |rest: &str| format!("/v2/messaging_profiles/{p}{rest}");
    // Destinations: ["US"] from `profile()`; Canada is +1 but not US.
    let ca = expect_error(
        s.call(
            "POST",
            "/v2/messages/number_pool",
            json!({"messaging_profile_id": p, "to": "+14165550100", "text": "hi"}),
        ),
        422,
        "40319",
    );
    assert!(ca.body["errors"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("CA"));
    // Unknown region codes are refused with a pointer, nothing changed.
    let bad = expect_error(
        s.call(
            "PATCH",
            &path(""),
            json!({"whitelisted_destinations": ["US", "QQ"]}),
        ),
        422,
        "10015",
    );
    assert_eq!(
        error(&bad).2.as_deref(),
        Some("/whitelisted_destinations/1")
    );
    assert_eq!(
        s.ok("GET", &path(""), Value::Null)["whitelisted_destinations"],
        json!(["US"])
    );
    // Opt-out by an inbound STOP, with the keyword and the number texted.
    let inbound = |id: &str, text: &str| {
        let event = json!({"data": {"event_type": "message.received", "id": id,
            "payload": {"from": {"phone_number": "+14155550100"},
                        "to": [{"phone_number": "+13125550001"}], "text": text}}});
        s.ok("POST", "/v2/webhooks/messaging", event)
    };
    let first = s.send(&p, "+14155550100");
    assert_eq!(inbound("e1", " Stop ")["effect"], "opted_out");
    assert_eq!(inbound("e1", " Stop ")["duplicate"], true);
    assert_eq!(inbound("e2", "stop please")["counted"], true);
    let blocked = expect_error(
        s.call(
            "POST",
            "/v2/messages",
            json!({"from": "+13125550001", "to": "+14155550100", "text": "hi"}),
        ),
        422,
        "40300",
    );
    assert_eq!(
        blocked.body["errors"][0]["title"],
        "Blocked due to STOP message"
    );
    let record = s.ok("GET", &path("/opt_outs/+14155550100"), Value::Null);
    assert_eq!(
        (&record["record_type"], &record["keyword"], &record["via"]),
        (&json!("opt_out"), &json!("STOP"), &json!("+13125550001"))
    );
    assert_eq!(s.ok("GET", &path(""), Value::Null)["opt_out_count"], 1);
    // Through the API: PUT (no keyword, no number), list, DELETE.
    let put = s.ok("PUT", &path("/opt_outs/%2B14155550199"), Value::Null);
    assert_eq!((&put["keyword"], &put["via"]), (&Value::Null, &Value::Null));
    // Pages in storage order: page 2 of size 1, and the same page again
    // through the cursor page 1 gave, hold the recipient page 1 did not.
    let page_one = s.call("GET", &path("/opt_outs?page[size]=1"), Value::Null);
    let page_two = s.call(
        "GET",
        &path("/opt_outs?page[size]=1&page[number]=2"),
        Value::Null,
    );
    let after = page_one.body["meta"]["next_page_after"]
        .as_str()
        .unwrap()
        .to_string();
    let again = s.call(
        "GET",
        &path(&format!("/opt_outs?page[size]=1&page[after]={after}")),
        Value::Null,
    );
    assert_eq!(page_two.body["data"], again.body["data"]);
    let mut listed = vec![
        page_one.body["data"][0]["to"].as_str().unwrap(),
        page_two.body["data"][0]["to"].as_str().unwrap(),
    ];
    listed.sort_unstable();
    assert_eq!(listed, ["+14155550100", "+14155550199"]);
    assert_eq!(page_two.body["meta"]["total_results"], 2);
    expect_error(
        s.call("GET", &path("/opt_outs?page[after]=x1"), Value::Null),
        422,
        "10015",
    );
    s.ok("DELETE", &path("/opt_outs/+14155550199"), Value::Null);
    expect_error(
        s.call("DELETE", &path("/opt_outs/+14155550199"), Value::Null),
        404,
        "10005",
    );
    expect_error(
        s.call("GET", &path("/opt_outs/+14155550199"), Value::Null),
        404,
        "10005",
    );
    // START opts back in; the sticky sender is still the one.
    assert_eq!(inbound("e3", "START")["effect"], "opted_in");
    assert_eq!(s.send(&p, "+14155550100")["from"], first["from"]);
    // Disabled: 40311 for every send; enabled again, mappings intact.
    s.ok("PATCH", &path(""), json!({"enabled": false}));
    expect_error(
        s.call(
            "POST",
            "/v2/messages/number_pool",
            json!({"messaging_profile_id": p, "to": "+14155550100", "text": "hi"}),
        ),
        422,
        "40311",
    );
    s.ok("PATCH", &path(""), json!({"enabled": true}));
    assert_eq!(s.send(&p, "+14155550100")["selection"]["reason"], "sticky");
    let metrics = s.raw("GET", "/metrics", "", None, &[]).body;
    let metrics = metrics.as_str().unwrap();
    for line in [
        "numpool_sends_refused_total{cause=\"opted_out\",code=\"40300\"} 1",
        "numpool_sends_refused_total{cause=\"disabled\",code=\"40311\"} 1",
        "numpool_sends_refused_total{cause=\"destination\",code=\"40319\"} 1",
    ] {
        assert!(metrics.contains(line), "{line}");
    }
}

#[test]
fn hostile_inputs_get_short_answers_and_leave_bounded_state() {
    let s = start(64);
    // A whitelist full of repeats is kept once each.
    let repeats: Vec<&str> = std::iter::repeat_n("US", 500).chain(["CA", "US"]).collect();
    let created = s.ok(
        "POST",
        "/v2/messaging_profiles",
        json!({"name": "r", "whitelisted_destinations": repeats}),
    );
    assert_eq!(created["whitelisted_destinations"], json!(["US", "CA"]));
    let p = created["id"].as_str().unwrap().to_string();
    let path = |rest: &str| format!("/v2/messaging_profiles/{p}{rest}");
    let patched = s.ok(
        "PATCH",
        &path(""),
        json!({"whitelisted_destinations": ["*", "*", "*"]}),
    );
    assert_eq!(patched["whitelisted_destinations"], json!(["*"]));
    // What a client sent comes back cut short in an error.
    let long = "x".repeat(3000);
    let bad = expect_error(
        s.call("PATCH", &path(""), json!({ "daily_reset_time_zone": long })),
        422,
        "10015",
    );
    let detail = bad.body["errors"][0]["detail"].as_str().unwrap();
    assert!(
        detail.chars().count() <= 301 && detail.ends_with('…'),
        "{detail}"
    );
    let key = format!("k{}", "y".repeat(2000));
    let unknown = s.call(
        "PATCH",
        &path(""),
        json!({ "number_pool_settings": { key: true } }),
    );
    assert!(unknown.status >= 400, "{}", unknown.body);
    let pointer = unknown.body["errors"][0]["source"]["pointer"]
        .as_str()
        .unwrap_or("");
    assert!(pointer.chars().count() <= 121, "{pointer}");
    // A page number too large to be one is out of range (422), as any other.
    expect_error(
        s.call(
            "GET",
            "/v2/messaging_profiles?page[number]=18446744073709551616",
            Value::Null,
        ),
        422,
        "10015",
    );
    expect_error(
        s.call(
            "GET",
            "/v2/messaging_profiles?page[number]=two",
            Value::Null,
        ),
        400,
        "10015",
    );
    // A webhook's text of the wrong JSON type is refused.
    s.assign("+13125550001", &p);
    let event = |id: &str, kind: &str, text: Value| {
        json!({"data": {"event_type": kind, "id": id,
            "payload": {"from": {"phone_number": "12345"},
                        "to": [{"phone_number": "+13125550001", "status": "delivered"}], "text": text}}})
    };
    expect_error(
        s.call(
            "POST",
            "/v2/webhooks/messaging",
            event("w1", "message.received", json!(5)),
        ),
        400,
        "10015",
    );
    // Event ids count once per event type: a STOP reusing the id of a
    // delivery report is still a STOP.
    let finalized = json!({"data": {"event_type": "message.finalized", "id": "same",
        "payload": {"from": {"phone_number": "+13125550001"},
                    "to": [{"phone_number": "+14155550100", "status": "delivered"}]}}});
    assert_eq!(
        s.ok("POST", "/v2/webhooks/messaging", finalized)["counted"],
        true
    );
    let stop = s.ok(
        "POST",
        "/v2/webhooks/messaging",
        event("same", "message.received", json!("STOP")),
    );
    assert_eq!(stop["effect"], "opted_out", "{stop}");
    // The opt-out of a short code can be read and removed.
    let record = s.ok("GET", &path("/opt_outs/12345"), Value::Null);
    assert_eq!(record["to"], "12345");
    s.ok("DELETE", &path("/opt_outs/12345"), Value::Null);
    expect_error(
        s.call("GET", &path("/opt_outs/12345"), Value::Null),
        404,
        "10005",
    );
}

#[test]
fn metrics_answer_while_a_profile_is_held_and_catch_up_within_a_census() {
    let s = start(64);
    let p = s.profile(json!({"sticky_sender": true}));
    s.assign("+13125550001", &p);
    s.send(&p, "+14155550100");
    // The profile is held (a request that does not finish until told).
    let (release, held) = mpsc::channel::<()>();
    let id = numpool::ProfileId::parse(&p).unwrap();
    s.engine
        .queue_request(id, move || {
            let _ = held.recv();
        })
        .unwrap();
    // /metrics (no key) reads no profile: it answers meanwhile (a scrape
    // that waited for the profile would wait for ever here).
    let (tx, rx) = mpsc::channel();
    let addr = s.addr;
    std::thread::spawn(move || {
        let _ = tx.send(request(addr, "GET", "/metrics", "", None, &[]));
    });
    let scraped = rx.recv_timeout(Duration::from_secs(30));
    release.send(()).unwrap();
    let scraped = scraped.expect("/metrics answered while the profile was held");
    assert_eq!(scraped.status, 200);
    // The engine's counters come from a census taken every 2 s.
    support::eventually("the census counts the send", || {
        let text = s.raw("GET", "/metrics", "", None, &[]).body;
        text.as_str()
            .unwrap_or("")
            .contains("numpool_selections_total{reason=\"weighted\"} 1")
    });
}
