//! High availability on etcd, on one machine: a real single-node `etcd`
//! (Debian's `etcd-server`; `scripts/etcd-install` installs it) and three
//! `numpool serve --cluster` processes on loopback. Every wait is bounded.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::etcd::Etcd;
use support::{request, try_request, Numpool};
use tempfile::TempDir;

const KEY: &str = "cluster-test";
/// The leader's lease: a stopped leader is replaced after about this long.
const TTL: Duration = Duration::from_secs(1);

/// One node: its process and data directory (removed when the field
/// drops, after `drop` has stopped the process).
struct NodeProcess {
    server: Option<Numpool>,
    dir: TempDir,
}

/// A data directory for the node `name`, removed when dropped.
fn node_dir(name: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("numpool-node-{name}-"))
        .tempdir()
        .unwrap()
}

fn start_node(etcd: &Etcd, cluster: &str, dir: &Path) -> Numpool {
    start_node_with(etcd, cluster, dir, &[])
}

fn start_node_with(etcd: &Etcd, cluster: &str, dir: &Path, extra: &[&str]) -> Numpool {
    start_node_env(etcd, cluster, dir, extra, &[])
}

fn start_node_env(
    etcd: &Etcd,
    cluster: &str,
    dir: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Numpool {
    let mut args = vec![
        "--api-key",
        KEY,
        "--data-dir",
        dir.to_str().unwrap(),
        "--cluster",
        cluster,
        "--etcd",
        &etcd.url,
    ];
    if !extra.contains(&"--lease-ttl") {
        args.extend_from_slice(&["--lease-ttl", "1s"]);
    }
    args.extend_from_slice(&["--log-format", "json"]);
    args.extend_from_slice(extra);
    let secure = etcd.node_flags();
    args.extend(secure.iter().map(String::as_str));
    support::serve(&args, env).unwrap()
}

/// The "role changed" events in a node's JSON log, in order.
fn role_changes(node: &Numpool) -> Vec<Value> {
    node.printed()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["fields"]["message"] == "cluster: role changed")
        .collect()
}

fn cluster(etcd: &Etcd, name: &str, n: usize) -> Vec<NodeProcess> {
    cluster_with(etcd, name, n, &[])
}

fn cluster_with(etcd: &Etcd, name: &str, n: usize, extra: &[&str]) -> Vec<NodeProcess> {
    (0..n)
        .map(|i| {
            let dir = node_dir(&format!("{name}-{i}"));
            NodeProcess {
                server: Some(start_node_with(etcd, name, dir.path(), extra)),
                dir,
            }
        })
        .collect()
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            s.kill();
        }
    }
}

fn ready(addr: SocketAddr) -> Option<Value> {
    try_request(addr, "GET", "/readyz", "", None, &[])
        .ok()
        .map(|r| r.body)
}

/// Waits (bounded) until the standby at `node` has applied all the leader
/// at `leader` has.
fn wait_caught_up(what: &str, leader: SocketAddr, node: SocketAddr) {
    support::eventually(what, || {
        let head = ready(leader).unwrap()["applied"].as_u64();
        ready(node).is_some_and(|b| b["role"] == "standby" && b["applied"].as_u64() == head)
    });
}

/// Waits (bounded) until one of `nodes` leads; returns its index and when.
fn leader(nodes: &[NodeProcess], within: Duration) -> (usize, Instant) {
    let deadline = Instant::now() + within;
    loop {
        for (i, n) in nodes.iter().enumerate() {
            if let Some(s) = &n.server {
                if ready(s.addr).is_some_and(|b| b["role"] == "leader") {
                    return (i, Instant::now());
                }
            }
        }
        assert!(Instant::now() < deadline, "no leader within {within:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn call(addr: SocketAddr, method: &str, path: &str, body: Value) -> support::Response {
    let text = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    request(addr, method, path, &text, Some(KEY), &[])
}

/// The node that leads (one is waited for up to 15 s), and its address.
fn led_by(nodes: &[NodeProcess]) -> (usize, SocketAddr) {
    let (first, _) = leader(nodes, Duration::from_secs(15));
    (first, nodes[first].server.as_ref().unwrap().addr)
}

/// A profile with sticky sender and four numbers, made through `addr`.
fn profile(addr: SocketAddr) -> String {
    let created = call(
        addr,
        "POST",
        "/v2/messaging_profiles",
        json!({"name": "ha", "whitelisted_destinations": ["*"], "number_pool_settings": {"sticky_sender": true},
               "max_queue_seconds": 2_592_000}),
    );
    assert_eq!(
        created.status,
        200,
        "{}; the node's status: {}",
        created.body,
        call(addr, "GET", "/cluster/status", Value::Null).body
    );
    let id = created.body["data"]["id"].as_str().unwrap().to_string();
    for n in [
        "+13125550001",
        "+13125550002",
        "+13125550003",
        "+13125550004",
    ] {
        let r = call(
            addr,
            "PATCH",
            &format!("/v2/phone_numbers/{n}/messaging"),
            json!({ "messaging_profile_id": id }),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    id
}

fn send(addr: SocketAddr, profile: &str, to: &str) -> Option<String> {
    let body = json!({"messaging_profile_id": profile, "to": to, "text": "x"}).to_string();
    let r = try_request(
        addr,
        "POST",
        "/v2/messages/number_pool",
        &body,
        Some(KEY),
        &[],
    )
    .ok()?;
    (r.status == 200).then(|| {
        r.body["data"]["from"]["phone_number"]
            .as_str()
            .unwrap()
            .to_string()
    })
}

fn mapped(addr: SocketAddr, profile: &str, to: &str) -> Option<String> {
    let r = call(
        addr,
        "GET",
        &format!("/v2/messaging_profiles/{profile}/sticky_mappings/{to}"),
        Value::Null,
    );
    (r.status == 200).then(|| r.body["data"]["from"].as_str().unwrap().to_string())
}

#[test]
fn killing_the_leader_under_load_loses_nothing_acknowledged() {
    let etcd = Etcd::start("kill");
    let mut nodes = cluster(&etcd, "kill", 3);
    let (first, leader_addr) = led_by(&nodes);
    let standby_addr = nodes[(first + 1) % 3].server.as_ref().unwrap().addr;
    let p = profile(leader_addr);
    // Clients send to new recipients through the leader and through a
    // standby (which forwards), recording every acknowledged pair.
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = [leader_addr, standby_addr, leader_addr]
        .into_iter()
        .enumerate()
        .map(|(t, addr)| {
            let (acked, stop, p) = (acked.clone(), stop.clone(), p.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let to = format!("+1415{:07}", t * 1_000_000 + i);
                    if let Some(from) = send(addr, &p, &to) {
                        acked.lock().unwrap().push((to, from));
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().len() < 300 {
        assert!(Instant::now() < deadline, "the load never got going");
        std::thread::sleep(Duration::from_millis(5));
    }
    nodes[first].server.as_mut().unwrap().kill();
    let killed = Instant::now();
    nodes[first].server = None;
    let (second, elected) = leader(&nodes, Duration::from_secs(10));
    let failover = elected - killed;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    println!("failover (kill to a new leader): {failover:?}");
    // The new leader says so in its log, with the epoch it leads in.
    let took_over = role_changes(nodes[second].server.as_ref().unwrap());
    let last = took_over.last().expect("a role change event");
    assert_eq!(last["fields"]["role"], "leader", "{last}");
    assert_eq!(last["fields"]["was"], "standby", "{last}");
    assert!(last["fields"]["epoch"].as_u64() > Some(0), "{last}");
    assert!(
        failover <= TTL + Duration::from_secs(1),
        "failover took {failover:?}"
    );
    let new_leader = nodes[second].server.as_ref().unwrap().addr;
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 300);
    for (to, from) in &acked {
        assert_eq!(
            mapped(new_leader, &p, to).as_deref(),
            Some(from.as_str()),
            "{to}"
        );
    }
    // ...and the same recipients keep their senders.
    for (to, from) in acked.iter().step_by(41) {
        assert_eq!(send(new_leader, &p, to).as_deref(), Some(from.as_str()));
    }
}

#[test]
fn a_paused_leader_is_fenced_and_steps_down() {
    let etcd = Etcd::start("pause");
    let nodes = cluster(&etcd, "pause", 3);
    let (first, _) = leader(&nodes, Duration::from_secs(15));
    let old = nodes[first].server.as_ref().unwrap().addr;
    let p = profile(old);
    let pid = nodes[first].server.as_ref().unwrap().pid().to_string();
    Command::new("kill").args(["-STOP", &pid]).status().unwrap();
    // The others elect a new leader once the paused one's lease is gone.
    let rest: Vec<usize> = (0..3).filter(|i| *i != first).collect();
    let deadline = Instant::now() + TTL * 3 + Duration::from_secs(5);
    let second = loop {
        if let Some(&i) = rest.iter().find(|&&i| {
            ready(nodes[i].server.as_ref().unwrap().addr).is_some_and(|b| b["role"] == "leader")
        }) {
            break i;
        }
        assert!(
            Instant::now() < deadline,
            "no new leader while the old one is paused"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let new = nodes[second].server.as_ref().unwrap().addr;
    let from_new = send(new, &p, "+14155550100").expect("the new leader takes changes");
    Command::new("kill").args(["-CONT", &pid]).status().unwrap();
    // The old leader, resumed, must acknowledge nothing of its own: a send
    // to a new recipient is refused or forwarded, never decided by it.
    let mut answers = Vec::new();
    for i in 0..20 {
        let to = format!("+1415666{i:04}");
        if let Some(from) = send(old, &p, &to) {
            answers.push((to, from));
        }
        if let Some(from) = send(old, &p, "+14155550100") {
            assert_eq!(from, from_new, "one recipient, two senders");
        }
    }
    // Whatever it acknowledged is on the new leader (it was forwarded there).
    for (to, from) in &answers {
        assert_eq!(mapped(new, &p, to).as_deref(), Some(from.as_str()), "{to}");
    }
    support::eventually("the old leader steps down", || {
        ready(old).is_some_and(|b| b["role"] == "standby")
    });
    drop(nodes);
}

#[test]
fn a_restarted_standby_catches_up_with_or_without_its_files() {
    let etcd = Etcd::start("restart");
    let mut nodes = cluster(&etcd, "restart", 3);
    let (first, leader_addr) = led_by(&nodes);
    let p = profile(leader_addr);
    // An import's mappings reach the log as one record of many mappings
    // (`MappingsSet`), which every node must read back one by one.
    let sent = jiff::Timestamp::now().to_string();
    let lines: String = (0..20)
        .map(|i| format!("{{\"to\": \"+1206556{i:04}\", \"from\": \"+13125550002\", \"sent_at\": \"{sent}\"}}\n"))
        .collect();
    let r = request(
        leader_addr,
        "POST",
        &format!("/v2/messaging_profiles/{p}/sticky_mappings/import"),
        &lines,
        Some(KEY),
        &[],
    );
    assert_eq!(r.body["data"]["mapped"], 20, "{}", r.body);
    let standby = (first + 1) % 3;
    for keep_files in [true, false] {
        nodes[standby].server.as_mut().unwrap().kill();
        nodes[standby].server = None;
        if !keep_files {
            let _ = std::fs::remove_dir_all(nodes[standby].dir.path());
        }
        for i in 0..50 {
            assert!(send(
                leader_addr,
                &p,
                &format!("+1206555{:04}", i + usize::from(keep_files) * 100)
            )
            .is_some());
        }
        let dir = nodes[standby].dir.path().to_path_buf();
        nodes[standby].server = Some(start_node(&etcd, "restart", &dir));
        let addr = nodes[standby].server.as_ref().unwrap().addr;
        wait_caught_up("the restarted standby catches up", leader_addr, addr);
    }
    // It serves the same state once it leads: stop the leader.
    nodes[first].server.as_mut().unwrap().kill();
    nodes[first].server = None;
    let (second, _) = leader(&nodes, Duration::from_secs(10));
    let addr = nodes[second].server.as_ref().unwrap().addr;
    for i in 0..50 {
        assert!(
            mapped(addr, &p, &format!("+1206555{i:04}")).is_some(),
            "{i}"
        );
        assert!(
            mapped(addr, &p, &format!("+1206555{:04}", i + 100)).is_some(),
            "{i}"
        );
    }
    for i in 0..20 {
        assert_eq!(
            mapped(addr, &p, &format!("+1206556{i:04}")).as_deref(),
            Some("+13125550002"),
            "imported {i}"
        );
    }
}

/// A standby whose disk fails while it follows (its own writes of the
/// leader's batches fail) falls behind without harm to the cluster, and
/// catches up by itself once its disk works again; it then leads with
/// every acknowledged mapping.
#[test]
fn a_standby_whose_disk_fails_catches_up_once_it_is_back() {
    let etcd = Etcd::start("standby-disk");
    let mut nodes = cluster(&etcd, "standby-disk", 3);
    let (first, leader_addr) = led_by(&nodes);
    let p = profile(leader_addr);
    // The standby again, able to have its disk fail.
    let standby = (first + 1) % 3;
    nodes[standby].server.as_mut().unwrap().kill();
    let dir = nodes[standby].dir.path().to_path_buf();
    let fault = dir.join("FAULT");
    let env = [("NUMPOOL_FAULT_JOURNAL", fault.to_str().unwrap())];
    nodes[standby].server = Some(start_node_env(&etcd, "standby-disk", &dir, &[], &env));
    let standby_addr = nodes[standby].server.as_ref().unwrap().addr;
    wait_caught_up("the standby follows", leader_addr, standby_addr);

    std::fs::write(&fault, b"").unwrap(); // its disk is full from now on
    let mut sent = Vec::new();
    for i in 0..30 {
        let to = format!("+1206557{i:04}");
        let from = send(leader_addr, &p, &to).expect("the leader is not affected");
        sent.push((to, from));
    }
    let head = ready(leader_addr).unwrap()["applied"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let behind = ready(standby_addr).unwrap();
    assert!(
        behind["applied"].as_u64().unwrap() < head,
        "a standby that cannot write does not count what it could not write: {behind}"
    );

    std::fs::remove_file(&fault).unwrap(); // and back
    wait_caught_up(
        "the standby catches up once its disk is back",
        leader_addr,
        standby_addr,
    );
    // It leads with what it wrote: stop the other two.
    for i in [first, (first + 2) % 3] {
        nodes[i].server.as_mut().unwrap().kill();
        nodes[i].server = None;
    }
    let (now, _) = leader(&nodes, Duration::from_secs(15));
    assert_eq!(now, standby);
    for (to, from) in &sent {
        assert_eq!(
            mapped(standby_addr, &p, to).as_deref(),
            Some(from.as_str()),
            "{to}"
        );
    }
}

#[test]
fn the_log_in_etcd_is_shortened_and_a_node_too_far_behind_takes_the_leaders_snapshot() {
    let etcd = Etcd::start("short");
    let every = ["--snapshot-every", "1s"];
    let mut nodes = cluster_with(&etcd, "short", 3, &every);
    let (first, leader_addr) = led_by(&nodes);
    let p = profile(leader_addr);
    let standby = (first + 1) % 3;
    nodes[standby].server.as_mut().unwrap().kill();
    nodes[standby].server = None;
    let _ = std::fs::remove_dir_all(nodes[standby].dir.path());
    let mut acked = Vec::new();
    for i in 0..100 {
        let to = format!("+1503555{i:04}");
        acked.push((to.clone(), send(leader_addr, &p, &to).unwrap()));
    }
    // Once the gone node's lease has expired and the others have taken a
    // snapshot, the leader deletes what both snapshots hold.
    let written = ready(leader_addr).unwrap()["applied"].as_u64().unwrap();
    support::eventually("the log in etcd is shortened", || {
        ready(leader_addr).is_some_and(|b| b["log_start"].as_u64() > Some(written / 2))
    });
    let dir = nodes[standby].dir.path().to_path_buf();
    nodes[standby].server = Some(start_node_with(&etcd, "short", &dir, &every));
    let node = nodes[standby].server.as_ref().unwrap();
    let addr = node.addr;
    wait_caught_up("the node without files catches up", leader_addr, addr);
    assert!(
        node.output
            .lock()
            .unwrap()
            .contains("took the leader's snapshot"),
        "{}",
        node.output.lock().unwrap()
    );
    // A stale read is answered by the standby itself, from what it applied.
    for (to, from) in &acked {
        let r = call(
            addr,
            "GET",
            &format!("/v2/messaging_profiles/{p}/sticky_mappings/{to}?consistency=stale"),
            Value::Null,
        );
        assert_eq!(r.body["data"]["from"].as_str(), Some(from.as_str()), "{to}");
    }
    // What it applies after the snapshot survives a restart from its files.
    for i in 100..120 {
        let to = format!("+1503555{i:04}");
        acked.push((to.clone(), send(leader_addr, &p, &to).unwrap()));
    }
    nodes[standby].server.as_mut().unwrap().kill();
    nodes[standby].server = Some(start_node_with(&etcd, "short", &dir, &every));
    let addr = nodes[standby].server.as_ref().unwrap().addr;
    wait_caught_up("the restarted node catches up", leader_addr, addr);
    // And it serves the same state once it leads: stop the others.
    for i in (0..3).filter(|&i| i != standby) {
        nodes[i].server.as_mut().unwrap().kill();
        nodes[i].server = None;
    }
    let (second, _) = leader(&nodes, Duration::from_secs(10));
    assert_eq!(second, standby);
    for (to, from) in &acked {
        assert_eq!(mapped(addr, &p, to).as_deref(), Some(from.as_str()), "{to}");
    }
}

#[test]
fn a_backup_of_a_single_server_seeds_a_new_cluster() {
    let tmp = tempfile::Builder::new()
        .prefix("numpool-seed-")
        .tempdir()
        .unwrap();
    let base = tmp.path();
    let single = base.join("single");
    let alone = support::serve(
        &["--api-key", KEY, "--data-dir", single.to_str().unwrap()],
        &[],
    )
    .unwrap();
    let p = profile(alone.addr);
    let mut acked = Vec::new();
    for i in 0..50 {
        let to = format!("+1503556{i:04}");
        acked.push((to.clone(), send(alone.addr, &p, &to).unwrap()));
    }
    let file = base.join("seed.backup");
    let run = |args: &[&str]| {
        let (code, said) = support::numpool(args);
        assert_eq!(code, 0, "{said}");
    };
    let node = format!("http://{}", alone.addr);
    run(&[
        "backup",
        "--to",
        file.to_str().unwrap(),
        "--node",
        &node,
        "--api-key",
        KEY,
    ]);
    drop(alone);

    // The first node starts from the backup and leads; the others start empty.
    let etcd = Etcd::start("seed");
    let mut nodes: Vec<NodeProcess> = (0..3)
        .map(|i| NodeProcess {
            server: None,
            dir: node_dir(&format!("seed-{i}")),
        })
        .collect();
    run(&[
        "restore",
        file.to_str().unwrap(),
        "--data-dir",
        nodes[0].dir.path().to_str().unwrap(),
    ]);
    nodes[0].server = Some(start_node(&etcd, "seed", nodes[0].dir.path()));
    let (first, _) = leader(&nodes, Duration::from_secs(15));
    assert_eq!(first, 0);
    let leader_addr = nodes[0].server.as_ref().unwrap().addr;
    for n in &mut nodes[1..] {
        n.server = Some(start_node(&etcd, "seed", n.dir.path()));
    }
    let more = "+15035569999".to_string();
    acked.push((more.clone(), send(leader_addr, &p, &more).unwrap()));
    for (i, n) in nodes.iter().enumerate().skip(1) {
        let addr = n.server.as_ref().unwrap().addr;
        wait_caught_up("an empty node takes the seeded state", leader_addr, addr);
        for (to, from) in &acked {
            let r = call(
                addr,
                "GET",
                &format!("/v2/messaging_profiles/{p}/sticky_mappings/{to}?consistency=stale"),
                Value::Null,
            );
            assert_eq!(
                r.body["data"]["from"].as_str(),
                Some(from.as_str()),
                "{to} on node {i}"
            );
        }
    }
    // With the seeded node gone, another leads and serves the same state.
    nodes[0].server.as_mut().unwrap().kill();
    nodes[0].server = None;
    let (next, _) = leader(&nodes, Duration::from_secs(15));
    let addr = nodes[next].server.as_ref().unwrap().addr;
    for (to, from) in &acked {
        assert_eq!(mapped(addr, &p, to).as_deref(), Some(from.as_str()), "{to}");
    }
}

#[test]
fn a_standby_answers_stale_reads_itself_and_forwards_the_rest() {
    let etcd = Etcd::start("stale");
    let mut nodes = cluster(&etcd, "stale", 2);
    let (first, leader_addr) = led_by(&nodes);
    let standby_addr = nodes[1 - first].server.as_ref().unwrap().addr;
    let p = profile(leader_addr);
    let from = send(leader_addr, &p, "+12065550100").unwrap();
    wait_caught_up("the standby applies the send", leader_addr, standby_addr);
    // With the leader gone (and before another is elected: a lone standby
    // of a two-node cluster takes over after the lease), a plain read gets
    // 503 and a stale one is answered.
    nodes[first].server.as_mut().unwrap().kill();
    nodes[first].server = None;
    let path = format!("/v2/messaging_profiles/{p}/sticky_mappings/+12065550100");
    let stale = call(
        standby_addr,
        "GET",
        &format!("{path}?consistency=stale"),
        Value::Null,
    );
    assert_eq!(stale.status, 200, "{}", stale.body);
    assert_eq!(stale.body["data"]["from"].as_str(), Some(from.as_str()));
    let forwarded = call(standby_addr, "GET", &path, Value::Null);
    assert_eq!(forwarded.status, 503, "{}", forwarded.body);
    assert_eq!(
        forwarded.body["errors"][0]["title"], "Service temporarily unavailable",
        "a 503 says it is temporary"
    );
    // A change is never served stale: `consistency` is refused on it.
    let send_stale = try_request(
        standby_addr,
        "POST",
        "/v2/messages/number_pool?consistency=stale",
        &json!({"messaging_profile_id": p, "to": "+12065550101", "text": "x"}).to_string(),
        Some(KEY),
        &[],
    )
    .unwrap();
    assert_eq!(send_stale.status, 400, "{}", send_stale.body);
    assert_eq!(
        send_stale.body["errors"][0]["source"]["parameter"],
        "consistency"
    );
}

#[test]
fn an_import_over_the_body_limit_through_a_standby_is_refused_naming_the_leader() {
    let etcd = Etcd::start("bulk");
    let nodes = cluster(&etcd, "bulk", 2);
    let (first, leader_addr) = led_by(&nodes);
    let standby_addr = nodes[1 - first].server.as_ref().unwrap().addr;
    let p = profile(leader_addr);
    wait_caught_up("the standby has the profile", leader_addr, standby_addr);
    let sent = jiff::Timestamp::now().to_string();
    // `n` recipients from +1206`first`0000 on.
    let lines = |n: usize, first: u32| -> String {
        (0..n)
            .map(|i| format!("{{\"to\": \"+1206{first}{i:04}\", \"from\": \"+13125550003\", \"sent_at\": \"{sent}\"}}\n"))
            .collect()
    };
    let path = format!("/v2/messaging_profiles/{p}/sticky_mappings/import");
    // A standby reads what it forwards whole, within the body limit (256
    // KiB): a larger import is refused, naming where it can go, and
    // changes nothing.
    let big = lines(4000, 557);
    assert!(big.len() > 256 * 1024);
    let r = request(standby_addr, "POST", &path, &big, Some(KEY), &[]);
    assert_eq!(r.status, 400, "{}", r.body);
    let detail = r.body["errors"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("to the leader (http://{leader_addr})")),
        "{detail}"
    );
    assert!(mapped(leader_addr, &p, "+12065570000").is_none());
    // The same import to the leader, and a small one through the standby.
    let r = request(leader_addr, "POST", &path, &big, Some(KEY), &[]);
    assert_eq!(r.body["data"]["mapped"], 4000, "{}", r.body);
    let r = request(standby_addr, "POST", &path, &lines(10, 558), Some(KEY), &[]);
    assert_eq!(r.body["data"]["mapped"], 10, "{}", r.body);
    // `numpool import` pointed at a standby sends a file of any size to
    // the leader, and says so.
    let file = tempfile::NamedTempFile::with_suffix(".ndjson").unwrap();
    std::fs::write(file.path(), lines(4000, 559)).unwrap();
    let cli = Command::new(env!("CARGO_BIN_EXE_numpool"))
        .args([
            "import",
            "--profile",
            &p,
            "--node",
            &format!("http://{standby_addr}"),
        ])
        .args(["--api-key", KEY])
        .arg(file.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&cli.stderr);
    assert!(cli.status.success(), "{said}");
    assert!(
        said.contains("is a standby; sending to the leader, http://"),
        "{said}"
    );
    assert!(String::from_utf8_lossy(&cli.stdout).contains("4000 rows: 4000 mapped"));
    // A standby exports on its own with consistency=stale, streamed (what
    // its refusal of a larger answer names; `forward.rs` tests that).
    wait_caught_up("the standby has the import", leader_addr, standby_addr);
    let export = format!("/v2/messaging_profiles/{p}/sticky_mappings/export");
    let direct = request(leader_addr, "GET", &export, "", Some(KEY), &[]);
    let stale = request(
        standby_addr,
        "GET",
        &format!("{export}?consistency=stale"),
        "",
        Some(KEY),
        &[],
    );
    assert_eq!(stale.status, 200, "{}", stale.body);
    assert!(
        stale.headers.contains("transfer-encoding: chunked"),
        "{}",
        stale.headers
    );
    // The same lines (each node's map keeps its own order).
    let sorted = |r: &support::Response| {
        let mut lines: Vec<String> = r.body.as_str().unwrap().lines().map(String::from).collect();
        lines.sort();
        lines
    };
    let (stale, direct) = (sorted(&stale), sorted(&direct));
    assert_eq!(stale.len(), 8010);
    assert!(
        stale == direct,
        "a standby's stale export differs from the leader's"
    );
}

#[test]
fn without_etcd_writes_are_refused_and_resume_by_themselves() {
    let etcd = Etcd::start("outage");
    let nodes = cluster(&etcd, "outage", 2);
    let (first, _) = leader(&nodes, Duration::from_secs(15));
    let addr = nodes[first].server.as_ref().unwrap().addr;
    let standby = nodes[1 - first].server.as_ref().unwrap().addr;
    let p = profile(addr);
    assert!(send(addr, &p, "+14155550001").is_some());
    wait_caught_up("the standby catches up", addr, standby);
    etcd.signal("-STOP");
    // Nothing is acknowledged while etcd does not answer.
    let body = json!({"messaging_profile_id": p, "to": "+14155550002", "text": "x"}).to_string();
    let sending = std::thread::spawn(move || {
        request(
            addr,
            "POST",
            "/v2/messages/number_pool",
            &body,
            Some(KEY),
            &[],
        )
    });
    // Nor shown by any read while the send waits for etcd: a default read
    // (through the standby, forwarded) or a stale one, on either node.
    std::thread::sleep(Duration::from_millis(200));
    let path = format!("/v2/messaging_profiles/{p}/sticky_mappings/+14155550002");
    let stale = format!("{path}?consistency=stale");
    let mut reads = Vec::new();
    for (node, path) in [
        (standby, &path),
        (addr, &stale),
        (standby, &stale),
        (addr, &path),
    ] {
        reads.push(call(node, "GET", path, Value::Null));
    }
    let r = sending.join().unwrap();
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.headers.contains("retry-after"));
    for read in &reads {
        assert_ne!(
            read.status, 200,
            "a read showed what etcd did not commit: {}",
            read.body
        );
    }
    etcd.signal("-CONT");
    // Service resumes on its own: some node leads again and takes writes.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let taken = nodes
            .iter()
            .filter_map(|n| n.server.as_ref())
            .any(|s| send(s.addr, &p, "+14155550003").is_some());
        if taken {
            break;
        }
        assert!(Instant::now() < deadline, "writes never resumed");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (second, _) = leader(&nodes, Duration::from_secs(5));
    let leader_addr = nodes[second].server.as_ref().unwrap().addr;
    let standby_addr = nodes[1 - second].server.as_ref().unwrap().addr;
    assert!(mapped(leader_addr, &p, "+14155550001").is_some());
    // The refused send's append was on its way to etcd when the leader
    // gave up on it: etcd, running again, may still commit it (the leader
    // cannot know; it answered 503, not an acknowledgement). Usually it
    // does not. Either way every node shows the same, and the send retried
    // gets the sender it shows.
    let trace = mapped(leader_addr, &p, "+14155550002");
    wait_caught_up(
        "the standby catches up after the outage",
        leader_addr,
        standby_addr,
    );
    let shown = call(standby_addr, "GET", &stale, Value::Null);
    let on_standby =
        (shown.status == 200).then(|| shown.body["data"]["from"].as_str().unwrap().to_string());
    assert_eq!(
        on_standby, trace,
        "both nodes show the same for the refused send"
    );
    let retried = send(leader_addr, &p, "+14155550002").expect("the retried send is taken");
    if let Some(sender) = trace {
        assert_eq!(retried, sender, "a retried send gets the committed sender");
    }
}

/// `numpool cluster ARGS`: its exit code and what it printed.
/// `numpool cluster switchover ARGS`, asked again (up to three times) when
/// it answers 503: a switchover that cannot finish in time (etcd slow on a
/// loaded machine) changes nothing, and the documented remedy is to retry.
fn switchover(args: &[&str]) -> (i32, String) {
    let mut all = vec!["switchover"];
    all.extend_from_slice(args);
    let mut tries = 0;
    loop {
        let (code, out) = cluster_command(&all);
        tries += 1;
        if code == 0 || !out.contains("(503)") || tries == 3 {
            return (code, out);
        }
        eprintln!("switchover not done, asking again: {out}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn cluster_command(args: &[&str]) -> (i32, String) {
    let mut all = vec!["cluster"];
    all.extend_from_slice(args);
    support::numpool(&all)
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

#[test]
fn probes_and_status_say_who_leads_and_who_can_take_over() {
    let etcd = Etcd::start("probes");
    let nodes = cluster(&etcd, "probes", 3);
    let (first, _) = leader(&nodes, Duration::from_secs(15));
    let addrs: Vec<SocketAddr> = nodes
        .iter()
        .map(|n| n.server.as_ref().unwrap().addr)
        .collect();
    let p = profile(addrs[first]);
    send(addrs[first], &p, "+14155550001").unwrap();
    for (i, &addr) in addrs.iter().enumerate().filter(|(i, _)| *i != first) {
        wait_caught_up(&format!("standby {i} catches up"), addrs[first], addr);
    }
    support::eventually("every member is listed", || {
        let r = request(
            addrs[(first + 1) % 3],
            "GET",
            "/cluster/status",
            "",
            None,
            &[],
        );
        r.body["members"].as_array().is_some_and(|m| m.len() == 3)
    });
    for (i, &addr) in addrs.iter().enumerate() {
        let is_leader = i == first;
        let leader_probe = request(addr, "GET", "/cluster/leader", "", None, &[]);
        let standby_probe = request(addr, "GET", "/cluster/standby", "", None, &[]);
        assert_eq!(
            leader_probe.status,
            if is_leader { 200 } else { 503 },
            "{}",
            leader_probe.body
        );
        assert_eq!(
            standby_probe.status,
            if is_leader { 503 } else { 200 },
            "{}",
            standby_probe.body
        );
        assert_eq!(request(addr, "GET", "/readyz", "", None, &[]).status, 200);
        // A standby lagging by more than the lag allowed is not ready for it.
        if !is_leader {
            assert!(standby_probe.body["reason"].is_null());
            // The leader may still be writing (queue ends, every 100 ms):
            // caught up within a moment.
            support::eventually("a caught-up standby is ready at lag=0", || {
                request(addr, "GET", "/cluster/standby?lag=0", "", None, &[]).status == 200
            });
        }
        // Member records are published within 100 ms of a change, and read
        // every 100 ms.
        support::eventually("the status shows one leader and two standbys", || {
            let status = request(addr, "GET", "/cluster/status", "", None, &[]).body;
            let roles: Vec<&str> = status["members"]
                .as_array()
                .map(|m| m.iter().filter_map(|m| m["role"].as_str()).collect())
                .unwrap_or_default();
            status["leader"].as_str() == Some(url(addrs[first]).as_str())
                && status["etcd"]["reachable"] == true
                && roles.iter().filter(|r| **r == "leader").count() == 1
                && roles.iter().filter(|r| **r == "standby").count() == 2
        });
    }
    let (code, table) = cluster_command(&["status", "--node", &url(addrs[(first + 2) % 3])]);
    assert_eq!(code, 0, "{table}");
    assert!(
        table.contains(&format!("leader {}", url(addrs[first]))),
        "{table}"
    );
    for addr in &addrs {
        assert!(table.contains(&url(*addr)), "{table}");
    }
    // The status answers from memory while etcd does not, saying so.
    etcd.signal("-STOP");
    support::eventually("the status says etcd does not answer", || {
        let r = request(addrs[first], "GET", "/cluster/status", "", None, &[]);
        r.status == 200 && r.body["etcd"]["reachable"] == false
    });
    etcd.signal("-CONT");
}

/// Acknowledged sends: (recipient, sender).
type Acked = Vec<(String, String)>;
/// Failures clients saw: (status, had `Retry-After`).
type Failures = Vec<(u16, bool)>;

/// Clients sending to new recipients through every node, recording what
/// was acknowledged and every failure's status and `Retry-After`.
struct Load {
    acked: Arc<Mutex<Acked>>,
    failures: Arc<Mutex<Failures>>,
    stop: Arc<AtomicBool>,
    clients: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(addrs: &[SocketAddr], profile: &str, tag: usize) -> Load {
        let acked: Arc<Mutex<Acked>> = Arc::default();
        let failures: Arc<Mutex<Failures>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let clients = addrs
            .iter()
            .enumerate()
            .map(|(t, &addr)| {
                let (acked, failures, stop, p) = (
                    acked.clone(),
                    failures.clone(),
                    stop.clone(),
                    profile.to_string(),
                );
                std::thread::spawn(move || {
                    for i in 0.. {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let to = format!("+1{}{t}{i:06}", 212 + tag);
                        let body =
                            json!({"messaging_profile_id": p, "to": to, "text": "x"}).to_string();
                        match try_request(
                            addr,
                            "POST",
                            "/v2/messages/number_pool",
                            &body,
                            Some(KEY),
                            &[],
                        ) {
                            Ok(r) if r.status == 200 => {
                                let from = r.body["data"]["from"]["phone_number"].as_str().unwrap();
                                acked.lock().unwrap().push((to, from.to_string()));
                            }
                            Ok(r) => {
                                failures
                                    .lock()
                                    .unwrap()
                                    .push((r.status, r.headers.contains("retry-after")));
                                std::thread::sleep(Duration::from_millis(5));
                            }
                            // A node that is gone: nothing was answered.
                            Err(_) => std::thread::sleep(Duration::from_millis(5)),
                        }
                    }
                })
            })
            .collect();
        Load {
            acked,
            failures,
            stop,
            clients,
        }
    }

    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Stops the clients; what was acknowledged and the failures.
    fn stop(self) -> (Acked, Failures) {
        self.stop.store(true, Ordering::Relaxed);
        for c in self.clients {
            c.join().unwrap();
        }
        let acked = self.acked.lock().unwrap().clone();
        let failures = self.failures.lock().unwrap().clone();
        (acked, failures)
    }
}

#[test]
fn a_switchover_hands_over_to_the_named_standby_and_loses_nothing() {
    let etcd = Etcd::start("switch");
    let nodes = cluster(&etcd, "switch", 3);
    let (first, _) = leader(&nodes, Duration::from_secs(15));
    let addrs: Vec<SocketAddr> = nodes
        .iter()
        .map(|n| n.server.as_ref().unwrap().addr)
        .collect();
    let p = profile(addrs[first]);
    let target = (first + 2) % 3;
    for i in (0..3).filter(|&i| i != first) {
        support::eventually("the standbys are ready", || {
            request(addrs[i], "GET", "/cluster/standby", "", None, &[]).status == 200
        });
    }
    support::eventually("every member is listed", || {
        let r = request(addrs[first], "GET", "/cluster/status", "", None, &[]);
        r.body["members"].as_array().is_some_and(|m| m.len() == 3)
    });
    // Refused, naming why, and nothing changes: an unknown member, the
    // leader itself, no key.
    let via = url(addrs[(first + 1) % 3]);
    let (code, out) = cluster_command(&[
        "switchover",
        "--node",
        &via,
        "--to",
        "http://127.0.0.1:1",
        "--api-key",
        KEY,
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no member http://127.0.0.1:1"), "{out}");
    let (code, out) = cluster_command(&[
        "switchover",
        "--node",
        &via,
        "--to",
        &url(addrs[first]),
        "--api-key",
        KEY,
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("leads already"), "{out}");
    let (code, out) = cluster_command(&["switchover", "--node", &via, "--to", &url(addrs[target])]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("401"), "{out}");
    assert_eq!(
        leader(&nodes, Duration::from_secs(1)).0,
        first,
        "nothing changed"
    );
    // Under load through every node: hand over, through a standby.
    let load = Load::start(&addrs, &p, 0);
    support::eventually("the load gets going", || load.acked() >= 200);
    let key_file = tempfile::Builder::new()
        .prefix("numpool-switch-key-")
        .tempfile()
        .unwrap();
    std::fs::write(key_file.path(), format!("{KEY}\n")).unwrap();
    let (code, out) = switchover(&[
        "--node",
        &via,
        "--to",
        &url(addrs[target]),
        "--api-key-file",
        key_file.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("to {}", url(addrs[target]))), "{out}");
    let (now, _) = leader(&nodes, Duration::from_secs(5));
    assert_eq!(now, target);
    let before = load.acked();
    support::eventually("writes go on under the new leader", || {
        load.acked() >= before + 100
    });
    let (acked, failures) = load.stop();
    drop(key_file);
    // Clients saw only 503 with Retry-After, and nothing acknowledged is lost.
    assert!(
        failures
            .iter()
            .all(|&(status, retry)| status == 503 && retry),
        "{failures:?}"
    );
    for (to, from) in &acked {
        assert_eq!(
            mapped(addrs[target], &p, to).as_deref(),
            Some(from.as_str()),
            "{to}"
        );
    }
    // The old leader follows the new one.
    wait_caught_up("the old leader follows", addrs[target], addrs[first]);
}

#[test]
fn a_leader_stopped_with_sigterm_resigns_and_exits_cleanly() {
    // A long lease: without resigning, the others would wait 10 s for it.
    let etcd = Etcd::start("term");
    let long = ["--lease-ttl", "10s"];
    let mut nodes = cluster_with(&etcd, "term", 3, &long);
    let (first, _) = leader(&nodes, Duration::from_secs(30));
    let addrs: Vec<SocketAddr> = nodes
        .iter()
        .map(|n| n.server.as_ref().unwrap().addr)
        .collect();
    let p = profile(addrs[first]);
    let others: Vec<SocketAddr> = (0..3).filter(|&i| i != first).map(|i| addrs[i]).collect();
    let load = Load::start(&others, &p, 1);
    support::eventually("the load gets going", || load.acked() >= 100);
    nodes[first].server.as_ref().unwrap().signal("-TERM");
    let stopped = Instant::now();
    let deadline = stopped + Duration::from_secs(5);
    let second = loop {
        if let Some(i) = (0..3)
            .filter(|&i| i != first)
            .find(|&i| ready(addrs[i]).is_some_and(|b| b["role"] == "leader"))
        {
            break i;
        }
        assert!(
            Instant::now() < deadline,
            "no leader well before the 10 s lease: it did not resign"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let status = nodes[first]
        .server
        .as_mut()
        .unwrap()
        .wait_exit(Duration::from_secs(15));
    assert!(status.is_some_and(|s| s.success()), "exit: {status:?}");
    let before = load.acked();
    support::eventually("writes go on under the new leader", || {
        load.acked() >= before + 50
    });
    let (acked, failures) = load.stop();
    assert!(
        failures
            .iter()
            .all(|&(status, retry)| status == 503 && retry),
        "{failures:?}"
    );
    for (to, from) in &acked {
        assert_eq!(
            mapped(addrs[second], &p, to).as_deref(),
            Some(from.as_str()),
            "{to}"
        );
    }
}

#[test]
fn a_request_that_waited_out_a_pause_gets_an_answer_with_a_body() {
    let etcd = Etcd::start("paused-request");
    let nodes = cluster(&etcd, "paused-request", 2);
    let (first, leader_addr) = led_by(&nodes);
    let p = profile(leader_addr);
    send(leader_addr, &p, "+14155550001").unwrap();
    // The leader is paused longer than a request head may take (5 s by
    // default in actix-web); a request sent meanwhile is answered after.
    let server = nodes[first].server.as_ref().unwrap();
    server.signal("-STOP");
    let path = format!("/v2/messaging_profiles/{p}/sticky_mappings/+14155550001");
    let asked = std::thread::spawn(move || {
        let mut stream = std::net::TcpStream::connect(leader_addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        use std::io::{Read, Write};
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {KEY}\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        let _ = stream.read_to_string(&mut out);
        out
    });
    std::thread::sleep(Duration::from_secs(7));
    server.signal("-CONT");
    let answer = asked.join().unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    assert!(!head.contains(" 408 "), "{answer}");
    // A leader whose lease lapsed while paused answers 503 with the error
    // envelope; one that kept it answers the mapping.
    let body: Value = serde_json::from_str(body.trim()).unwrap_or(Value::Null);
    assert!(
        body["data"]["from"].is_string() || body["errors"][0]["code"] == "10007",
        "{answer}"
    );
    if head.contains(" 503 ") {
        assert!(
            head.to_ascii_lowercase().contains("retry-after"),
            "{answer}"
        );
    }
}

/// The shortest queue wait among `numbers` (each number's `capacity`).
fn least_wait(addr: SocketAddr, numbers: &[String]) -> f64 {
    numbers
        .iter()
        .map(|n| {
            let r = call(
                addr,
                "GET",
                &format!("/v2/phone_numbers/{n}/messaging"),
                Value::Null,
            );
            assert_eq!(r.status, 200, "{}", r.body);
            r.body["data"]["capacity"]["wait_seconds"].as_f64().unwrap()
        })
        .fold(f64::INFINITY, f64::min)
}

#[test]
fn sender_queues_survive_a_failover_a_switchover_and_sigterm() {
    let etcd = Etcd::start("queues");
    let mut nodes = cluster(&etcd, "queues", 3);
    let (first, _) = leader(&nodes, Duration::from_secs(15));
    let mut addrs: Vec<SocketAddr> = nodes
        .iter()
        .map(|n| n.server.as_ref().unwrap().addr)
        .collect();
    // Ten long codes at 1 message a second, no sticky sender: 600 messages
    // leave about 60 s of queue on each.
    let created = call(
        addrs[first],
        "POST",
        "/v2/messaging_profiles",
        json!({"name": "queues", "whitelisted_destinations": ["*"], "number_pool_settings": {}}),
    );
    let p = created.body["data"]["id"].as_str().unwrap().to_string();
    let numbers: Vec<String> = (0..10).map(|i| format!("+1312555{i:04}")).collect();
    for n in &numbers {
        let r = call(
            addrs[first],
            "PATCH",
            &format!("/v2/phone_numbers/{n}/messaging"),
            json!({ "messaging_profile_id": p }),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    for i in 0..600 {
        assert!(send(addrs[first], &p, &format!("+1415777{i:04}")).is_some());
    }
    let backlog = least_wait(addrs[first], &numbers);
    assert!(backlog > 55.0, "{backlog}");
    let mut fresh = 0;
    for event in ["kill -9", "switchover", "SIGTERM"] {
        let (old, _) = leader(&nodes, Duration::from_secs(15));
        for i in (0..3).filter(|&i| i != old) {
            support::eventually("the standbys are ready", || {
                request(addrs[i], "GET", "/cluster/standby", "", None, &[]).status == 200
            });
        }
        let before = least_wait(addrs[old], &numbers);
        // Written within a tick (100 ms), without a write per send.
        std::thread::sleep(Duration::from_millis(300));
        let at = Instant::now();
        match event {
            "kill -9" => nodes[old].server.as_mut().unwrap().kill(),
            "switchover" => {
                let via = url(addrs[(old + 1) % 3]);
                let (code, out) = switchover(&["--node", &via, "--api-key", KEY]);
                assert_eq!(code, 0, "{out}");
            }
            _ => {
                let server = nodes[old].server.as_mut().unwrap();
                server.signal("-TERM");
                assert!(server
                    .wait_exit(Duration::from_secs(15))
                    .is_some_and(|s| s.success()));
            }
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        let new = loop {
            if let Some(i) = (0..3)
                .filter(|&i| i != old)
                .find(|&i| request(addrs[i], "GET", "/cluster/leader", "", None, &[]).status == 200)
            {
                break i;
            }
            assert!(Instant::now() < deadline, "no new leader after {event}");
            std::thread::sleep(Duration::from_millis(10));
        };
        // The first send through the new leader queues behind what the
        // senders had: its wait is the least backlog then, less the time
        // passed, within a second.
        fresh += 1;
        let body =
            json!({"messaging_profile_id": p, "to": format!("+1415888{fresh:04}"), "text": "x"});
        let r = call(addrs[new], "POST", "/v2/messages/number_pool", body);
        assert_eq!(r.status, 200, "{}", r.body);
        let wait = r.body["data"]["wait_seconds"].as_f64().unwrap();
        let expected = before - at.elapsed().as_secs_f64();
        assert!(
            wait >= expected - 1.0 && wait <= before + 1.0,
            "after {event}: wait {wait:.2} s, the old leader's least backlog {before:.2} s ({expected:.2} s now)"
        );
        if nodes[old]
            .server
            .as_mut()
            .unwrap()
            .wait_exit(Duration::ZERO)
            .is_some()
        {
            let dir = nodes[old].dir.path().to_path_buf();
            nodes[old].server = Some(start_node(&etcd, "queues", &dir));
            addrs[old] = nodes[old].server.as_ref().unwrap().addr;
        }
    }
}

/// Whether the secure-etcd tests can run here (they need `etcdctl`);
/// says so when they cannot.
fn secure_etcd_possible(test: &str) -> bool {
    let possible = support::etcd::has_etcdctl();
    if !possible {
        println!("SKIPPED: {test}: no etcdctl on PATH (run scripts/etcd-install)");
    }
    possible
}

/// `flags` with the value of `--name=...` replaced by `value` (or the flag
/// dropped when `value` is `None`).
fn replace_flag(flags: &[String], name: &str, value: Option<&str>) -> Vec<String> {
    let prefix = format!("{name}=");
    flags
        .iter()
        .filter_map(|f| match f.strip_prefix(&prefix) {
            Some(_) => value.map(|v| format!("{prefix}{v}")),
            None => Some(f.clone()),
        })
        .collect()
}

/// A node started with `flags` for `etcd`: how it exits (it must not serve).
fn refused_node(etcd: &Etcd, name: &str, flags: &[String]) -> support::Exited {
    let dir = node_dir(name);
    let mut args = vec![
        "--api-key",
        KEY,
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--cluster",
        name,
        "--etcd",
        &etcd.url,
    ];
    args.extend(flags.iter().map(String::as_str));
    let exited = match support::serve(&args, &[]) {
        Err(exited) => exited,
        Ok(node) => {
            std::thread::sleep(Duration::from_millis(500));
            panic!("the node serves: {}", node.printed())
        }
    };
    exited
}

#[test]
fn a_node_etcd_refuses_stops_at_start_up_naming_the_cause() {
    if !secure_etcd_possible("a_node_etcd_refuses_stops_at_start_up_naming_the_cause") {
        return;
    }
    let etcd = Etcd::start_secure("refused");
    let flags = etcd.node_flags();
    let other = support::etcd::Certs::make(&etcd.dir.path().join("other"));
    let wrong_password = etcd.dir.path().join("wrong-password");
    std::fs::write(&wrong_password, "not-the-password\n").unwrap();
    let other_ca = other.ca.to_str().unwrap();
    let certs = etcd.certs.as_ref().unwrap();
    let cases: [(&str, Vec<String>, &[&str]); 4] = [
        (
            "a CA that did not sign etcd's certificate",
            replace_flag(&flags, "--etcd-ca", Some(other_ca)),
            &["etcd refused this node", "certificate"],
        ),
        (
            "a client certificate etcd's CA did not sign",
            replace_flag(
                &replace_flag(
                    &flags,
                    "--etcd-cert",
                    Some(other.client_cert.to_str().unwrap()),
                ),
                "--etcd-key",
                Some(other.client_key.to_str().unwrap()),
            ),
            &["etcd refused this node", "certificate"],
        ),
        (
            "a client certificate with a CommonName",
            replace_flag(
                &replace_flag(
                    &flags,
                    "--etcd-cert",
                    Some(certs.named_client_cert.to_str().unwrap()),
                ),
                "--etcd-key",
                Some(certs.named_client_key.to_str().unwrap()),
            ),
            &["etcd refused this node", "commonname", "without one"],
        ),
        (
            "a wrong password",
            replace_flag(
                &flags,
                "--etcd-password-file",
                Some(wrong_password.to_str().unwrap()),
            ),
            &["etcd refused this node", "invalid user id or password"],
        ),
    ];
    for (case, flags, expected) in cases {
        println!("case: {case}");
        let exited = refused_node(&etcd, "refused", &flags);
        assert_eq!(exited.code, Some(1), "{case}: {}", exited.output);
        let said = exited.output.to_lowercase();
        for e in expected {
            assert!(said.contains(e), "{case}: {e:?} not in {}", exited.output);
        }
        assert!(
            !exited.output.contains(support::etcd::ROOT_PASSWORD),
            "{case}: the password leaked: {}",
            exited.output
        );
    }
    // The right flags: it serves, and leads.
    let nodes = cluster_with(&etcd, "refused-ok", 1, &[]);
    leader(&nodes, Duration::from_secs(15));
    // An etcd whose certificate has expired.
    drop(nodes);
    drop(etcd);
    let expired = Etcd::start_tls("expired", |dir| {
        support::etcd::Certs::make_valid(dir, -30, -1)
    });
    let exited = refused_node(&expired, "expired", &expired.node_flags());
    let said = exited.output.to_lowercase();
    assert!(
        said.contains("etcd refused this node") && said.contains("expired"),
        "{}",
        exited.output
    );
}

#[test]
fn a_revoked_token_stops_writes_until_etcd_takes_the_node_again() {
    if !secure_etcd_possible("a_revoked_token_stops_writes_until_etcd_takes_the_node_again") {
        return;
    }
    let etcd = Etcd::start_secure("revoked");
    let nodes = cluster(&etcd, "revoked", 1);
    leader(&nodes, Duration::from_secs(15));
    let addr = nodes[0].server.as_ref().unwrap().addr;
    let p = profile(addr);
    let kept = send(addr, &p, "+14155550001").expect("a send before");
    // A new password: etcd takes none of the tokens it gave, and the
    // node's own password no longer works.
    etcd.set_root_password("a-new-password");
    for i in 0..20 {
        let to = format!("+1415666{i:04}");
        assert_eq!(send(addr, &p, &to), None, "acknowledged without etcd: {to}");
    }
    support::eventually("the status names the cause", || {
        let r = request(addr, "GET", "/cluster/status", "", Some(KEY), &[]);
        r.body.to_string().contains("authentication failed")
    });
    assert_eq!(
        request(addr, "GET", "/readyz", "", None, &[]).status,
        503,
        "not ready while etcd refuses it"
    );
    // The old password again: the node takes a new token and leads again,
    // with what it had acknowledged and nothing it had refused.
    etcd.set_root_password(support::etcd::ROOT_PASSWORD);
    leader(&nodes, Duration::from_secs(15));
    support::eventually("writes are taken again", || {
        send(addr, &p, "+14155550002").is_some()
    });
    assert_eq!(
        send(addr, &p, "+14155550001").as_deref(),
        Some(kept.as_str())
    );
    for i in 0..20 {
        let to = format!("+1415666{i:04}");
        assert_eq!(
            mapped(addr, &p, &to),
            None,
            "{to} was refused but is mapped"
        );
    }
}
