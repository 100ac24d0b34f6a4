//! The client against a real etcd (started by each test on free loopback
//! ports; skipped, and said so, where there is no `etcd` binary), and the
//! parts that need none.

use std::fs::{self, File};
use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use super::json::{b64, parse_stream_line};
use super::watch::WatchEnd;
use super::*;

/// How often a waiting candidate asks whether it leads.
const POLL: Duration = Duration::from_millis(20);

// ---- a throwaway etcd ----

/// A single-node etcd on free loopback ports with a temporary data
/// directory; killed and removed on drop.
struct TestEtcd {
    child: Child,
    /// Removed when the field drops, after `drop` has stopped etcd.
    dir: tempfile::TempDir,
    endpoint: String,
}

/// The `etcd` binary: `$ETCD_BIN`, else the first `etcd` on `PATH`.
fn etcd_binary() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("ETCD_BIN") {
        return Some(bin.into());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("etcd"))
            .find(|p| p.is_file())
    })
}

/// Two distinct free loopback ports.
fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}

impl TestEtcd {
    /// A fresh etcd; `None`, said on standard error as a skip, when
    /// there is no `etcd` binary here (scripts/etcd-install has one).
    fn start() -> Option<TestEtcd> {
        let Some(bin) = etcd_binary() else {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: etcd client test: no `etcd` on PATH (run scripts/etcd-install or set ETCD_BIN)"
            );
            return None;
        };
        let mut last = String::new();
        // A port taken between free_ports and etcd's bind: try again.
        for _ in 0..3 {
            match TestEtcd::try_start(&bin) {
                Ok(etcd) => return Some(etcd),
                Err(e) => last = e,
            }
        }
        panic!("could not start etcd: {last}");
    }

    fn try_start(bin: &PathBuf) -> Result<TestEtcd, String> {
        let (client_port, peer_port) = free_ports();
        let dir = tempfile::Builder::new()
            .prefix("numpool-etcd-test-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let log = File::create(dir.path().join("etcd.log")).map_err(|e| e.to_string())?;
        let client = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let child = Command::new(bin)
            .arg("--name=t")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=t={peer}"))
            .args(["--heartbeat-interval", "10", "--election-timeout", "100"])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let mut etcd = TestEtcd {
            child,
            dir,
            endpoint: client,
        };
        let probe = EtcdClient::new(EtcdConfig::plain(vec![etcd.endpoint.clone()]))
            .unwrap()
            .with_connect_timeout(Duration::from_millis(100))
            .with_request_timeout(Duration::from_millis(500));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(true) = probe.health() {
                return Ok(etcd);
            }
            if let Ok(Some(status)) = etcd.child.try_wait() {
                return Err(format!("etcd exited ({status}):\n{}", etcd.log_tail()));
            }
            if Instant::now() > deadline {
                return Err(format!("etcd not healthy after 10 s:\n{}", etcd.log_tail()));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn client(&self) -> EtcdClient {
        EtcdClient::new(EtcdConfig::plain(vec![self.endpoint.clone()])).unwrap()
    }

    /// How many reads (`Range` calls, JSON gateway included) etcd has
    /// served so far, by its `/metrics`.
    fn reads_served(&self) -> u64 {
        let text = ureq::get(format!("{}/metrics", self.endpoint))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with("grpc_server_handled_total{") && l.contains("\"Range\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for TestEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            let _ = writeln!(
                std::io::stderr(),
                "etcd log ({}):\n{}",
                self.endpoint,
                self.log_tail()
            );
        }
    }
}

/// Runs `f` on a thread and fails if it takes longer than `limit`.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("did not finish within {limit:?}"))
}

fn log_key(i: u64) -> Vec<u8> {
    format!("/np/log/{i:020}").into_bytes()
}

// ---- without etcd ----

#[test]
fn base64_matches_rfc4648() {
    for (plain, encoded) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
        ("/ha/log/", "L2hhL2xvZy8="),
    ] {
        assert_eq!(b64::encode(plain.as_bytes()), encoded);
        assert_eq!(b64::decode(encoded).unwrap(), plain.as_bytes());
    }
    let all: Vec<u8> = (0..=255).collect();
    for len in 0..all.len() {
        let bytes = &all[all.len() - len..];
        assert_eq!(b64::decode(&b64::encode(bytes)).unwrap(), bytes);
    }
    assert_eq!(b64::decode("Zg").unwrap(), b"f"); // unpadded is accepted
    for bad in ["Z", "Zg=a", "Z===", "Zm9v-_", "Zm 9v", "===="] {
        assert!(b64::decode(bad).is_none(), "{bad:?}");
    }
}

// ---- against a real etcd ----

#[test]
fn kv_round_trip_with_binary_keys_and_values() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let c = etcd.client();
    assert!(c.health().unwrap());
    let key = b"/np/kv/\x00\xff\n=".to_vec();
    let value: Vec<u8> = (0..=255).rev().collect();
    let rev = c.put(&key, &value, None).unwrap();
    let kv = c.get(&key).unwrap().unwrap();
    assert_eq!(
        kv,
        KeyValue {
            key: key.clone(),
            value: value.clone(),
            create_revision: rev,
            mod_revision: rev,
            version: 1,
            lease: 0
        }
    );
    let rev2 = c.put(&key, b"", None).unwrap(); // an empty value is omitted in JSON
    let kv = c.get(&key).unwrap().unwrap();
    assert_eq!(
        (
            kv.value.len(),
            kv.create_revision,
            kv.mod_revision,
            kv.version
        ),
        (0, rev, rev2, 2)
    );

    for k in [b"/np/kv/a", b"/np/kv/b"] {
        c.put(k, k, None).unwrap();
    }
    c.put(b"/np/kw", b"outside", None).unwrap();
    let all = c.range_prefix(b"/np/kv/").unwrap();
    let keys: Vec<&[u8]> = all.kvs.iter().map(|kv| kv.key.as_slice()).collect();
    assert_eq!(keys, [&key[..], b"/np/kv/a", b"/np/kv/b"]);
    assert_eq!((all.count, all.more), (3, false));
    let end = prefix_end(b"/np/kv/");
    let some = c.range(b"/np/kv/", Some(&end), 2).unwrap();
    assert_eq!((some.kvs.len(), some.count, some.more), (2, 3, true));
    assert!(c.get(b"/np/missing").unwrap().is_none());

    let d = c.delete_range(&key, None).unwrap();
    assert_eq!(d.deleted, 1);
    assert!(d.header_revision > rev2);
    assert!(c.get(&key).unwrap().is_none());
    assert_eq!(c.delete_range(b"/np/kv/", Some(&end)).unwrap().deleted, 2);
    assert_eq!(c.delete_range(b"/np/kv/", Some(&end)).unwrap().deleted, 0);
    assert_eq!(c.range_prefix(b"").unwrap().count, 1); // /np/kw

    // Leases: keys go with a revoked lease; errors carry etcd's code.
    let lease = c.lease_grant(1).unwrap();
    assert_eq!(lease.ttl, 1);
    c.put(b"/np/leased", b"v", Some(lease.id)).unwrap();
    assert_eq!(c.get(b"/np/leased").unwrap().unwrap().lease, lease.id);
    assert!(c.lease_revoke(lease.id).unwrap());
    assert!(c.get(b"/np/leased").unwrap().is_none());
    assert!(!c.lease_revoke(lease.id).unwrap());
    match c.put(b"/np/leased", b"v", Some(lease.id)) {
        Err(EtcdError::Http {
            status: 404,
            code: Some(5),
            message,
        }) => assert!(message.contains("lease not found"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        c.lease_keepalive(lease.id),
        Err(EtcdError::LeaseLost(id)) if id == lease.id
    ));
}

#[test]
fn unreachable_endpoints_are_skipped() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let c = EtcdClient::new(EtcdConfig::plain(vec![dead.clone(), etcd.endpoint.clone()])).unwrap();
    c.put(b"k", b"v", None).unwrap();
    assert_eq!(c.get(b"k").unwrap().unwrap().value, b"v");
    let none = EtcdClient::new(EtcdConfig::plain(vec![dead])).unwrap();
    assert!(matches!(none.get(b"k"), Err(EtcdError::Connect { .. })));
}

#[test]
fn a_txn_whose_compare_fails_changes_nothing() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let c = etcd.client();
    let rev = c.put(b"/np/t/a", b"one", None).unwrap();
    let r = c
        .txn(
            &[Compare::value(b"/np/t/a", CompareResult::Equal, b"two")],
            &[Op::put(b"/np/t/a", b"changed"), Op::put(b"/np/t/b", b"x")],
            &[Op::get(b"/np/t/a")],
        )
        .unwrap();
    assert!(!r.succeeded);
    assert_eq!(r.header_revision, rev);
    match &r.responses[..] {
        [OpResponse::Range(range)] => assert_eq!(range.kvs[0].value, b"one"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        r.require_success(),
        Err(EtcdError::CompareFailed { revision }) if revision == rev
    ));
    assert_eq!(c.get(b"/np/t/a").unwrap().unwrap().value, b"one");
    assert!(c.get(b"/np/t/b").unwrap().is_none());

    // Every compare target; all writes of a txn share one revision.
    let compares = [
        Compare::value(b"/np/t/a", CompareResult::Equal, b"one"),
        Compare::version(b"/np/t/a", CompareResult::Greater, 0),
        Compare::mod_revision(b"/np/t/a", CompareResult::Less, rev + 1),
        Compare::create_revision(b"/np/t/a", CompareResult::NotEqual, 0),
        Compare::lease(b"/np/t/a", CompareResult::Equal, 0),
        Compare::create_revision(b"/np/t/b", CompareResult::Equal, 0), // absent
        Compare::version(b"/np/t/", CompareResult::Greater, 0)
            .with_range_end(prefix_end(b"/np/t/")),
    ];
    let r = c
        .txn(
            &compares,
            &[
                Op::put(b"/np/t/b", b"x"),
                Op::put(b"/np/t/c", b"y"),
                Op::delete(b"/np/t/a"),
            ],
            &[],
        )
        .unwrap()
        .require_success()
        .unwrap();
    assert_eq!(
        r.responses,
        [
            OpResponse::Put {
                header_revision: rev + 1
            },
            OpResponse::Put {
                header_revision: rev + 1
            },
            OpResponse::DeleteRange(DeleteResult {
                deleted: 1,
                header_revision: rev + 1
            }),
        ]
    );
    // Create-if-absent holds once.
    let r = c
        .txn(
            &[Compare::create_revision(
                b"/np/t/b",
                CompareResult::Equal,
                0,
            )],
            &[Op::put(b"/np/t/b", b"again")],
            &[],
        )
        .unwrap();
    assert!(!r.succeeded && r.responses.is_empty());

    // etcd's limits come back as errors with its code.
    let ops: Vec<Op> = (0..=MAX_TXN_OPS as u64)
        .map(|i| Op::put(log_key(i), b"v"))
        .collect();
    match c.txn(&[], &ops, &[]) {
        Err(EtcdError::Http {
            status: 400,
            code: Some(3),
            message,
        }) => assert!(message.contains("too many operations"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(c.txn(&[], &ops[..MAX_TXN_OPS], &[]).unwrap().succeeded);
}

#[test]
fn a_deposed_leaders_fenced_append_fails() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let a = etcd.client();
    let b = Arc::new(etcd.client());
    let election: &[u8] = b"/np/election";
    assert!(a.leader(election).unwrap().is_none());
    // Two seconds: with one, a test binary busy on both cores once held
    // A's keepalives back past its lease (B was elected while A appended).
    let lease_a = a.lease_grant(2).unwrap();
    let lease_b = b.lease_grant(2).unwrap();
    assert_eq!((lease_a.ttl, lease_b.ttl), (2, 2));

    let key_a = a
        .campaign(election, lease_a.id, b"node-a", POLL, &|| false)
        .unwrap()
        .unwrap();
    assert_eq!(
        key_a.key,
        format!("/np/election/{:x}", lease_a.id).into_bytes()
    );
    assert_eq!((key_a.name.as_slice(), key_a.lease), (election, lease_a.id));

    // B waits behind A, keeping its own lease alive.
    let stop = Arc::new(AtomicBool::new(false));
    let keepalive_b = {
        let (b, stop) = (b.clone(), stop.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                b.lease_keepalive(lease_b.id).unwrap();
                thread::sleep(Duration::from_millis(250));
            }
        })
    };
    let (elected_tx, elected) = mpsc::channel();
    {
        let b = b.clone();
        thread::spawn(move || {
            let key = b.campaign(b"/np/election", lease_b.id, b"node-b", POLL, &|| false);
            let _ = elected_tx.send((key, Instant::now()));
        });
    }

    // A appends under its fence, past its TTL thanks to keepalives.
    let append = |c: &EtcdClient, leader: &LeaderKey, i: u64| {
        c.txn(
            &[
                leader.fence(),
                Compare::create_revision(log_key(i), CompareResult::Equal, 0),
            ],
            &[Op::put(log_key(i), format!("batch {i}"))],
            &[Op::get(leader.key.clone())],
        )
        .unwrap()
    };
    for i in 0..5 {
        a.lease_keepalive(lease_a.id).unwrap();
        assert!(append(&a, &key_a, i).succeeded);
        thread::sleep(Duration::from_millis(300));
        assert!(
            elected.try_recv().is_err(),
            "B elected while A keeps its lease"
        );
    }
    assert_eq!(a.leader(election).unwrap().unwrap().value, b"node-a");

    // A stops keeping its lease alive: B takes over within TTL + 1 s.
    let last_keepalive = Instant::now();
    assert_eq!(a.lease_keepalive(lease_a.id).unwrap(), 2);
    let (key_b, elected_at) = elected
        .recv_timeout(Duration::from_secs(4))
        .expect("B not elected within 4 s");
    let key_b = key_b.unwrap().unwrap();
    let takeover = elected_at - last_keepalive;
    assert!(
        takeover <= Duration::from_secs(3),
        "takeover took {takeover:?}"
    );
    assert!(key_b.rev > key_a.rev, "epochs increase");

    // A's fenced append now fails, writes nothing, and shows why.
    let r = append(&a, &key_a, 5);
    assert!(!r.succeeded);
    match &r.responses[..] {
        [OpResponse::Range(range)] => assert!(range.kvs.is_empty(), "A's key is gone"),
        other => panic!("{other:?}"),
    }
    assert!(a.get(&log_key(5)).unwrap().is_none());
    assert!(matches!(
        a.lease_keepalive(lease_a.id),
        Err(EtcdError::LeaseLost(_))
    ));
    // B's succeeds; the leader is B.
    assert!(append(&b, &key_b, 5).succeeded);
    let leader = a.leader(election).unwrap().unwrap();
    assert_eq!(
        (leader.key, leader.create_revision, leader.value),
        (key_b.key.clone(), key_b.rev, b"node-b".to_vec())
    );
    assert_eq!(a.range_prefix(b"/np/log/").unwrap().count, 6);

    // Resigning hands leadership over at once (here: to nobody).
    b.resign(&key_b).unwrap();
    assert!(a.leader(election).unwrap().is_none());
    assert!(!append(&b, &key_b, 6).succeeded);
    stop.store(true, Ordering::Relaxed);
    keepalive_b.join().unwrap();
}

#[test]
fn prefix_end_increments_the_last_byte_below_0xff() {
    assert_eq!(prefix_end(b"/np/log/"), b"/np/log0");
    assert_eq!(prefix_end(b"a\xff\xff"), b"b");
    assert_eq!(prefix_end(b"\xff"), b"\0");
    assert_eq!(prefix_end(b""), b"\0");
}

#[test]
fn endpoints_parse() {
    let c = EtcdClient::new(EtcdConfig::plain(vec![
        "http://127.0.0.1:2379".into(),
        "http://localhost/".into(),
        "https://[::1]:23790".into(),
    ]))
    .unwrap();
    assert_eq!(
        c.endpoints,
        [
            "http://127.0.0.1:2379",
            "http://localhost",
            "https://[::1]:23790"
        ]
    );
    for bad in [
        "127.0.0.1:2379",
        "http://",
        "http://h:1/v3",
        "http://u@h",
        "http://h:x",
    ] {
        assert!(
            matches!(
                EtcdClient::new(EtcdConfig::plain(vec![bad.into()])),
                Err(EtcdError::InvalidEndpoint { .. })
            ),
            "{bad}"
        );
    }
    assert!(EtcdClient::new(EtcdConfig::plain(vec![])).is_err());
    // TLS files that cannot be used are named.
    let missing = EtcdConfig {
        tls: Some(EtcdTls {
            ca: "/no/such/ca.pem".into(),
            ..EtcdTls::default()
        }),
        ..EtcdConfig::plain(vec!["https://127.0.0.1:2379".into()])
    };
    match EtcdClient::new(missing) {
        Err(EtcdError::Tls(why)) => assert!(why.contains("/no/such/ca.pem"), "{why}"),
        other => panic!("{other:?}"),
    }
    // A password is never shown.
    let auth = EtcdAuth::new("numpool", "hunter2");
    assert!(!format!("{auth:?}").contains("hunter2"));
}

#[test]
fn stream_lines_parse_results_and_errors() {
    let line = br#"{"result":{"header":{"revision":"31"},"TTL":"2"}}"#;
    let r = parse_stream_line::<serde_json::Value>(line).unwrap();
    assert_eq!(r["TTL"], "2");
    let error = br#"{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader"}}"#;
    assert!(matches!(
        parse_stream_line::<serde_json::Value>(error),
        Err(EtcdError::Http {
            status: 503,
            code: Some(14),
            ..
        })
    ));
    assert!(matches!(
        parse_stream_line::<serde_json::Value>(b"{}"),
        Err(EtcdError::Malformed(_))
    ));
}

#[test]
fn an_unanswered_call_times_out() {
    // Accepts (the kernel does) but never answers: a frozen etcd.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let client = EtcdClient::new(EtcdConfig::plain(vec![endpoint]))
        .unwrap()
        .with_request_timeout(Duration::from_millis(200));
    let outcome = within(Duration::from_secs(5), move || client.put(b"k", b"v", None));
    assert!(matches!(outcome, Err(EtcdError::Timeout)), "{outcome:?}");
    drop(listener);
}

/// Waits until a second candidate's key is in line in election `/np/e`.
fn second_in_line(c: &EtcdClient) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while c.range_prefix(b"/np/e/").unwrap().count < 2 {
        assert!(
            Instant::now() < deadline,
            "B's candidate key never appeared"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// B's campaign in election `/np/e` on `lease`, on a thread of its own,
/// withdrawing once `withdraw` is set.
fn campaign_behind(
    c: &Arc<EtcdClient>,
    lease: i64,
    withdraw: &Arc<AtomicBool>,
) -> thread::JoinHandle<Result<Option<LeaderKey>, EtcdError>> {
    let (c, withdraw) = (c.clone(), withdraw.clone());
    thread::spawn(move || {
        c.campaign(b"/np/e", lease, b"b", POLL, &|| {
            withdraw.load(Ordering::Acquire)
        })
    })
}

#[test]
fn a_candidate_in_line_leads_as_soon_as_the_leader_resigns() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let c = Arc::new(etcd.client());
    let lease_a = c.lease_grant(10).unwrap();
    let lease_b = c.lease_grant(10).unwrap();
    let a = c
        .campaign(b"/np/e", lease_a.id, b"a", POLL, &|| false)
        .unwrap()
        .unwrap();
    // B waits in line rechecking only every minute: it must see A go by
    // watching the candidates' keys, not by asking again.
    let (elected_tx, elected) = mpsc::channel();
    {
        let c = c.clone();
        thread::spawn(move || {
            let r = c.campaign(b"/np/e", lease_b.id, b"b", Duration::from_secs(60), &|| {
                false
            });
            let _ = elected_tx.send(r);
        });
    }
    second_in_line(&c);
    // Other keys changing (a log's appends) elect nobody.
    for i in 0..20 {
        c.put(&log_key(i), b"batch", None).unwrap();
    }
    assert!(
        elected.recv_timeout(Duration::from_millis(300)).is_err(),
        "B elected while A leads"
    );
    c.resign(&a).unwrap();
    let b = elected
        .recv_timeout(Duration::from_secs(2))
        .expect("B not elected within 2 s of A resigning")
        .unwrap()
        .unwrap();
    assert_eq!(b.lease, lease_b.id);
    assert!(b.rev > a.rev, "epochs increase");
}

#[test]
fn a_candidate_in_line_reads_nothing_while_the_line_stays_the_same() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let c = Arc::new(etcd.client());
    let lease_a = c.lease_grant(10).unwrap();
    let lease_b = c.lease_grant(10).unwrap();
    c.campaign(b"/np/e", lease_a.id, b"a", POLL, &|| false)
        .unwrap()
        .unwrap();
    let withdraw = Arc::new(AtomicBool::new(false));
    let waiting = campaign_behind(&c, lease_b.id, &withdraw);
    second_in_line(&c);
    thread::sleep(Duration::from_millis(100));
    // Half a second of other keys changing (etcd's revision moves on), at
    // 25 rechecks of B's: it asks whether to withdraw each time, but reads
    // the line only if a candidate's key changes.
    let before = etcd.reads_served();
    for i in 0..50 {
        c.put(&log_key(i), b"batch", None).unwrap();
        thread::sleep(Duration::from_millis(10));
    }
    let reads = etcd.reads_served() - before;
    assert!(reads <= 2, "B read the line {reads} times");
    withdraw.store(true, Ordering::Release);
    let r = within(Duration::from_secs(2), move || waiting.join().unwrap());
    assert!(matches!(r, Ok(None)), "{r:?}");
}

#[test]
fn a_waiting_campaign_withdraws_when_asked_and_keeps_its_place_otherwise() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let c = Arc::new(etcd.client());
    let lease_a = c.lease_grant(5).unwrap();
    let lease_b = c.lease_grant(5).unwrap();
    let leader = c
        .campaign(b"/np/e", lease_a.id, b"a", POLL, &|| false)
        .unwrap()
        .unwrap();
    // Campaigning again with the same lease keeps the same key and epoch.
    let again = c
        .campaign(b"/np/e", lease_a.id, b"a", POLL, &|| false)
        .unwrap()
        .unwrap();
    assert_eq!(
        (again.key.clone(), again.rev),
        (leader.key.clone(), leader.rev)
    );
    let withdraw = Arc::new(AtomicBool::new(false));
    let waiting = campaign_behind(&c, lease_b.id, &withdraw);
    second_in_line(&c);
    withdraw.store(true, Ordering::Release);
    let r = within(Duration::from_secs(2), move || waiting.join().unwrap());
    assert!(matches!(r, Ok(None)), "{r:?}");
    // Only A's key is left.
    assert_eq!(c.range_prefix(b"/np/e/").unwrap().count, 1);
    assert_eq!(c.leader(b"/np/e").unwrap().unwrap().key, leader.key);
    // A campaign on a lease that does not exist fails.
    assert!(c.campaign(b"/np/e", 12345, b"x", POLL, &|| false).is_err());
}

#[test]
fn a_watch_delivers_later_changes_in_order() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let c = etcd.client();
    c.put(b"/np/log/before", b"not delivered", None).unwrap();
    let from = c.put(b"/np/other", b"a mark", None).unwrap() + 1;
    let mut expected = Vec::new();
    for i in 0..5u64 {
        let value = vec![i as u8, 0, 0xff, b'\n', b'"'];
        let rev = c.put(&log_key(i), &value, None).unwrap();
        expected.push((EventKind::Put, log_key(i), value, rev));
    }
    c.put(b"/np/other", b"outside the prefix", None).unwrap();
    let r = c
        .txn(
            &[],
            &[Op::put(log_key(5), b"5"), Op::put(log_key(6), b"6")],
            &[],
        )
        .unwrap();
    expected.push((EventKind::Put, log_key(5), b"5".to_vec(), r.header_revision));
    expected.push((EventKind::Put, log_key(6), b"6".to_vec(), r.header_revision));
    let d = c.delete_range(&log_key(0), None).unwrap();
    expected.push((EventKind::Delete, log_key(0), Vec::new(), d.header_revision));
    let options = WatchOptions {
        range_end: Some(prefix_end(b"/np/log/")),
        start_revision: Some(from),
        prev_kv: true,
        window: Duration::from_millis(500),
    };
    let mut seen = Vec::new();
    let mut batches = Vec::new();
    let end = c
        .watch(b"/np/log/", &options, |batch| {
            batches.push(batch.events.len());
            for e in batch.events {
                seen.push((e.kind, e.kv.key, e.kv.value, e.kv.mod_revision, e.prev_kv));
            }
            seen.len() < expected.len()
        })
        .unwrap();
    let got: Vec<_> = seen
        .iter()
        .map(|(k, key, v, rev, _)| (*k, key.clone(), v.clone(), *rev))
        .collect();
    assert_eq!(got, expected);
    // etcd sends past revisions in as few messages as it likes (one,
    // here); every event arrives once.
    assert_eq!(batches.iter().sum::<usize>(), expected.len());
    assert_eq!(seen[7].4.as_ref().unwrap().value, expected[0].2, "prev_kv");
    assert_eq!(
        end,
        WatchEnd::Paused {
            next: d.header_revision + 1
        }
    );
    // Nothing more: the next window pauses, and says where to go on from.
    let quiet = c
        .watch(
            b"/np/log/",
            &WatchOptions {
                start_revision: Some(d.header_revision + 1),
                ..options
            },
            |_| true,
        )
        .unwrap();
    assert_eq!(
        quiet,
        WatchEnd::Paused {
            next: d.header_revision + 1
        }
    );
}

#[test]
fn a_watch_below_the_compaction_says_where_the_history_starts() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let c = etcd.client();
    let first = c.put(b"/np/w", b"0", None).unwrap();
    for i in 1..5 {
        c.put(b"/np/w", format!("{i}").as_bytes(), None).unwrap();
    }
    c.compact(first + 2).unwrap();
    assert!(matches!(
        c.compact(first + 1),
        Err(EtcdError::Http { code: Some(11), .. })
    ));
    let options = WatchOptions {
        start_revision: Some(first),
        ..WatchOptions::default()
    };
    let end = c.watch(b"/np/w", &options, |_| true).unwrap();
    assert_eq!(
        end,
        WatchEnd::Compacted {
            compact_revision: first + 2
        }
    );
    // From the compact revision itself, the history is there.
    let mut values = Vec::new();
    let options = WatchOptions {
        start_revision: Some(first + 2),
        ..WatchOptions::default()
    };
    c.watch(b"/np/w", &options, |batch| {
        values.extend(batch.events.into_iter().map(|e| e.kv.value));
        values.len() < 3
    })
    .unwrap();
    assert_eq!(values, [b"2", b"3", b"4"]);
}

#[test]
fn clients_of_one_configuration_share_their_token() {
    // Taking a token costs etcd a bcrypt comparison: a node's many clients
    // (lease, watches, appends) must take one between them.
    let config = EtcdConfig {
        endpoints: vec!["http://127.0.0.1:2379".into()],
        auth: Some(EtcdAuth::new("numpool", "hunter2")),
        ..EtcdConfig::default()
    };
    let a = EtcdClient::new(config.clone()).unwrap();
    let b = EtcdClient::new(config.clone()).unwrap();
    *a.token.lock() = Some("t1".into());
    assert_eq!(b.token().unwrap(), "t1");
    // A stale token is dropped once, not a newer one another client took.
    *b.token.lock() = Some("t2".into());
    a.forget_token("t1");
    assert_eq!(a.token().unwrap(), "t2");
    a.forget_token("t2");
    assert!(b.token.lock().is_none());
    // Another configuration with the same credentials has its own.
    let other = EtcdClient::new(EtcdConfig {
        auth: Some(EtcdAuth::new("numpool", "hunter2")),
        ..config
    })
    .unwrap();
    *a.token.lock() = Some("t3".into());
    assert!(other.token.lock().is_none());
}

#[test]
fn a_client_certificate_that_cannot_identify_the_node_is_an_error_at_once() {
    // ureq would only find out at the first request, and panic there.
    let tmp = tempfile::Builder::new()
        .prefix("numpool-client-cert-")
        .tempdir()
        .unwrap();
    let dir = tmp.path();
    let key = rcgen::KeyPair::generate().unwrap();
    let other_key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (ca, cert_file, key_file) = (dir.join("ca.pem"), dir.join("c.pem"), dir.join("k.pem"));
    fs::write(&ca, cert.pem()).unwrap();
    fs::write(&cert_file, cert.pem()).unwrap();
    let config = |key_pem: String| {
        fs::write(&key_file, key_pem).unwrap();
        EtcdConfig {
            endpoints: vec!["https://127.0.0.1:2379".into()],
            tls: Some(EtcdTls {
                ca: ca.clone(),
                cert: Some(cert_file.clone()),
                key: Some(key_file.clone()),
            }),
            auth: None,
        }
    };
    assert!(EtcdClient::new(config(key.serialize_pem())).is_ok());
    match EtcdClient::new(config(other_key.serialize_pem())) {
        Err(EtcdError::Tls(why)) => assert!(why.contains("c.pem"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_put_over_grpc_holds_exactly_when_the_gateway_says_its_compares_do() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    // An endpoint that cannot be reached is skipped, as on the gateway.
    let c = EtcdClient::new(EtcdConfig::plain(vec![dead, etcd.endpoint.clone()])).unwrap();
    let rev = c.put(b"/np/g/a", b"one", None).unwrap();
    let holding = [
        Compare::value(b"/np/g/a", CompareResult::Equal, b"one"),
        Compare::version(b"/np/g/a", CompareResult::Greater, 0),
        Compare::mod_revision(b"/np/g/a", CompareResult::Less, rev + 1),
        Compare::create_revision(b"/np/g/a", CompareResult::NotEqual, 0),
        Compare::create_revision(b"/np/g/a", CompareResult::Equal, rev),
        Compare::lease(b"/np/g/a", CompareResult::Equal, 0),
        Compare::create_revision(b"/np/g/absent", CompareResult::Equal, 0),
        Compare::version(b"/np/g/", CompareResult::Greater, 0)
            .with_range_end(prefix_end(b"/np/g/")),
    ];
    let failing = [
        Compare::value(b"/np/g/a", CompareResult::Equal, b"two"),
        Compare::version(b"/np/g/a", CompareResult::Less, 1),
        Compare::mod_revision(b"/np/g/a", CompareResult::Greater, rev),
        Compare::create_revision(b"/np/g/a", CompareResult::Equal, -1),
        Compare::lease(b"/np/g/a", CompareResult::NotEqual, 0),
        Compare::version(b"/np/g/", CompareResult::Equal, 0).with_range_end(prefix_end(b"/np/g/")),
    ];
    let value: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    for (i, (compare, holds)) in holding
        .iter()
        .map(|c| (c, true))
        .chain(failing.iter().map(|c| (c, false)))
        .enumerate()
    {
        let gateway = c
            .txn(std::slice::from_ref(compare), &[], &[])
            .unwrap()
            .succeeded;
        assert_eq!(gateway, holds, "the gateway on {compare:?}");
        let key = format!("/np/p/{i:02}").into_bytes();
        let r = c
            .txn_put(std::slice::from_ref(compare), &key, &value)
            .unwrap();
        assert_eq!(r.succeeded, holds, "gRPC on {compare:?}");
        let stored = c.get(&key).unwrap();
        if holds {
            let stored = stored.expect("put");
            assert_eq!(stored.value, value);
            assert_eq!(r.header_revision, stored.mod_revision);
            assert_eq!(
                r.responses,
                [OpResponse::Put {
                    header_revision: stored.mod_revision
                }]
            );
        } else {
            assert!(stored.is_none(), "{compare:?} failed, yet the put landed");
            assert!(r.responses.is_empty());
        }
    }
    // From inside an async runtime (which must not be blocked) a thread of
    // its own carries it, to the same end.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let fenced = [Compare::create_revision(
        b"/np/p/rt",
        CompareResult::Equal,
        0,
    )];
    let first = runtime.block_on(async { c.txn_put(&fenced, b"/np/p/rt", b"x").unwrap() });
    let second = runtime.block_on(async { c.txn_put(&fenced, b"/np/p/rt", b"y").unwrap() });
    assert!(first.succeeded && !second.succeeded);
    assert_eq!(c.get(b"/np/p/rt").unwrap().unwrap().value, b"x");
}

#[test]
fn a_put_over_grpc_takes_a_new_token_when_etcd_drops_the_old_one() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let etcdctl = |args: &[&str]| {
        Command::new("etcdctl")
            .args(["--endpoints", &etcd.endpoint])
            .args(args)
            .env("ETCDCTL_API", "3")
            .output()
    };
    let Ok(version) = etcdctl(&["version"]) else {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: no etcdctl on PATH (run scripts/etcd-install)"
        );
        return;
    };
    assert!(version.status.success());
    for args in [
        &["user", "add", "root:pw"][..],
        &["user", "grant-role", "root", "root"],
        &["auth", "enable"],
    ] {
        let out = etcdctl(args).unwrap();
        assert!(out.status.success(), "etcdctl {args:?}: {out:?}");
    }
    let c = EtcdClient::new(EtcdConfig {
        endpoints: vec![etcd.endpoint.clone()],
        auth: Some(EtcdAuth::new("root", "pw")),
        ..EtcdConfig::default()
    })
    .unwrap();
    let fenced = |key: &[u8]| {
        [Compare::create_revision(
            key.to_vec(),
            CompareResult::Equal,
            0,
        )]
    };
    assert!(
        c.txn_put(&fenced(b"/np/a/1"), b"/np/a/1", b"x")
            .unwrap()
            .succeeded
    );
    let first = c.token.lock().clone().expect("a token taken");
    // A token etcd does not know (as after a restart of etcd, or a TTL).
    *c.token.lock() = Some("stale.1".into());
    assert!(
        c.txn_put(&fenced(b"/np/a/2"), b"/np/a/2", b"y")
            .unwrap()
            .succeeded
    );
    let renewed = c.token.lock().clone().expect("a token taken");
    assert!(
        renewed != "stale.1" && renewed != first,
        "a new token: {renewed}"
    );
    assert_eq!(c.get(b"/np/a/2").unwrap().unwrap().value, b"y");
    // Without credentials etcd refuses, and nothing lands.
    let anonymous = etcd.client();
    let refused = anonymous
        .txn_put(&fenced(b"/np/a/3"), b"/np/a/3", b"z")
        .unwrap_err();
    assert!(
        matches!(&refused, EtcdError::Grpc { message, .. } if message.contains("user name is empty")),
        "{refused:?}"
    );
    assert!(c.get(b"/np/a/3").unwrap().is_none());
}

/// A TCP proxy on a free loopback port to `to` (`http://host:port`): it
/// counts the connections it accepts and can cut every one open.
struct CuttingProxy {
    endpoint: String,
    accepted: Arc<AtomicUsize>,
    open: Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl CuttingProxy {
    fn start(to: &str) -> CuttingProxy {
        let to = to.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (count, streams) = (Arc::clone(&accepted), Arc::clone(&open));
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = std::net::TcpStream::connect(&to) else {
                    continue;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let mut held = streams.lock().unwrap();
                held.push(client.try_clone().unwrap());
                held.push(server.try_clone().unwrap());
                for (mut from, mut into) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut into);
                        let _ = into.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        CuttingProxy {
            endpoint,
            accepted,
            open,
        }
    }

    /// Closes every connection open through the proxy.
    fn cut(&self) {
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

#[test]
fn grpc_keeps_its_connection_to_the_endpoint_that_answered_and_replaces_a_dead_one() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let proxy = CuttingProxy::start(&etcd.endpoint);
    let refused = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let c = EtcdClient::new(EtcdConfig::plain(vec![refused, proxy.endpoint.clone()])).unwrap();
    let fenced = |key: &[u8]| {
        [Compare::create_revision(
            key.to_vec(),
            CompareResult::Equal,
            0,
        )]
    };
    for i in 0..5 {
        let key = format!("/np/k/{i}").into_bytes();
        assert!(c.txn_put(&fenced(&key), &key, b"v").unwrap().succeeded);
    }
    assert_eq!(
        proxy.accepted.load(Ordering::SeqCst),
        1,
        "one connection, kept: calls start from the endpoint that answered"
    );
    // etcd (or the network) closes it between calls: the next call opens
    // a new one instead of failing.
    proxy.cut();
    thread::sleep(Duration::from_millis(50));
    assert!(
        c.txn_put(&fenced(b"/np/k/after"), b"/np/k/after", b"v")
            .unwrap()
            .succeeded
    );
    assert_eq!(proxy.accepted.load(Ordering::SeqCst), 2);
    // A watch over a connection cut in the same way.
    let options = WatchOptions {
        start_revision: Some(1),
        range_end: Some(prefix_end(b"/np/k/")),
        window: Duration::from_millis(300),
        ..Default::default()
    };
    proxy.cut();
    thread::sleep(Duration::from_millis(50));
    let mut keys = Vec::new();
    let end = c
        .watch(b"/np/k/", &options, |message| {
            keys.extend(message.events.into_iter().map(|e| e.kv.key));
            true
        })
        .unwrap();
    assert_eq!(keys.len(), 6, "every put once, in order: {keys:?}");
    assert!(matches!(end, WatchEnd::Paused { .. }));
}
