//! The nemesis: a Jepsen-style fault test of a three-node cluster on one
//! machine.
//!
//! etcd, three `numpool serve --cluster` nodes and the clients each live in
//! a Linux network namespace this test creates (joined by veth pairs to a
//! bridge in a namespace of their own; every address is inside them), so
//! that the network between them can be cut. Clients send and read
//! (default and `consistency=stale`) through every node while a seeded
//! schedule injects faults, one at a time, and heals them:
//!
//! - kill -9 of the leader (restarted with its files), of a standby
//!   (restarted without them), of two nodes at once;
//! - SIGSTOP of the leader past its lease, of a standby, of etcd;
//! - SIGTERM of the leader (restarted after);
//! - partitions: the leader cut off from etcd but not from the clients, a
//!   standby cut off from everyone, the clients cut off from the leader,
//!   the leader cut off from everyone.
//!
//! Every request is recorded with when it began and ended and what it got.
//! Once everything is healed, every recipient's mapping is read from the
//! leader (its committed state: nothing here changes a mapping on
//! purpose), and the checker asserts:
//!
//! 1. every acknowledged mapping survives with its sender;
//! 2. no recipient is ever seen with two senders, in any reply or read;
//! 3. no read shows a mapping that was never committed;
//! 4. a default read never misses a mapping acknowledged before it began
//!    (default reads are linearizable);
//! 5. a write succeeds within a bound after every heal;
//! 6. no node exits unless killed (and one stopped with SIGTERM exits 0);
//!
//! and that every failure a client saw is an answer of the API (the error
//! envelope; 503 and 429 with `Retry-After`), never an empty body.
//!
//! `NUMPOOL_NEMESIS_SECONDS` (default 45) and `NUMPOOL_NEMESIS_SEED`
//! (default 1) set the run; `scripts/nemesis --seconds 600 --seed 7` runs a
//! long one. `NUMPOOL_NEMESIS_BINARY` runs another build of `numpool`
//! under the same nemesis (an older one, to see the checker catch what it
//! got wrong). Needs root (to make namespaces): where they cannot be made,
//! the test says `SKIPPED` on standard error and does nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const KEY: &str = "nemesis-key";
const SUBNET: &str = "10.77.0";
const ETCD_HOST: u8 = 100;
const CLIENT_HOST: u8 = 200;
const NODES: usize = 3;
const CLIENTS: usize = 4;
/// The leader's lease.
const TTL: Duration = Duration::from_secs(1);
/// A write must succeed within this long after every heal.
const WRITES_WITHIN: Duration = Duration::from_secs(15);

/// Says on standard error (not captured by the test harness) that the
/// test did not run, and why.
fn skip(why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED: nemesis: {why}");
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The test's hosts: a namespace each, on one bridge.
struct Net {
    /// Namespace names: etcd, the nodes, the clients.
    etcd: String,
    nodes: Vec<String>,
    clients: String,
    switch: String,
    /// Partitions in force: (namespace, address blackholed there).
    cuts: Mutex<Vec<(String, String)>>,
    /// Hosts whose link is down.
    down: Mutex<Vec<String>>,
}

fn addr_of(host: u8) -> String {
    format!("{SUBNET}.{host}")
}

impl Net {
    fn create() -> Result<Net, String> {
        let tag = format!("np{}", std::process::id() % 100_000);
        let net = Net {
            etcd: format!("{tag}-e"),
            nodes: (1..=NODES).map(|i| format!("{tag}-{i}")).collect(),
            clients: format!("{tag}-c"),
            switch: format!("{tag}-sw"),
            cuts: Mutex::default(),
            down: Mutex::default(),
        };
        ip(&["netns", "add", &net.switch])?;
        ip(&["-n", &net.switch, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &net.switch, "link", "set", "br0", "up"])?;
        let hosts: Vec<(String, u8)> = std::iter::once((net.etcd.clone(), ETCD_HOST))
            .chain(net.nodes.iter().cloned().zip(1u8..))
            .chain([(net.clients.clone(), CLIENT_HOST)])
            .collect();
        for (ns, host) in hosts {
            ip(&["netns", "add", &ns])?;
            let (outer, inner) = (format!("{tag}o{host}"), format!("{tag}i{host}"));
            ip(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ])?;
            ip(&["link", "set", &inner, "netns", &ns])?;
            ip(&["link", "set", &outer, "netns", &net.switch])?;
            ip(&["-n", &net.switch, "link", "set", &outer, "master", "br0"])?;
            ip(&["-n", &net.switch, "link", "set", &outer, "up"])?;
            ip(&["-n", &ns, "link", "set", &inner, "name", "eth0"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", addr_of(host)),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    /// Moves the calling thread into namespace `ns` (its sockets from now on
    /// are made there).
    fn enter(ns: &str) {
        let f = File::open(format!("/var/run/netns/{ns}")).expect("the namespace exists");
        // SAFETY: setns on a valid namespace file descriptor only changes
        // the calling thread's network namespace.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
    }

    /// Drops in `ns` whatever `addr` sends it, silently (its packets, and
    /// so its connections, hang).
    fn cut(&self, ns: &str, addr: &str) {
        if ip(&["-n", ns, "route", "add", "blackhole", &format!("{addr}/32")]).is_ok() {
            self.cuts
                .lock()
                .unwrap()
                .push((ns.to_string(), addr.to_string()));
        }
    }

    /// Takes a host off the network (its link down).
    fn isolate(&self, ns: &str) {
        if ip(&["-n", ns, "link", "set", "eth0", "down"]).is_ok() {
            self.down.lock().unwrap().push(ns.to_string());
        }
    }

    fn heal(&self) {
        for (ns, addr) in self.cuts.lock().unwrap().drain(..) {
            let _ = ip(&[
                "-n",
                &ns,
                "route",
                "del",
                "blackhole",
                &format!("{addr}/32"),
            ]);
        }
        for ns in self.down.lock().unwrap().drain(..) {
            let _ = ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in std::iter::once(&self.etcd)
            .chain(&self.nodes)
            .chain([&self.clients, &self.switch])
        {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on a child process id this test spawned.
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
    }
}

/// A process the test started, in a namespace.
struct Proc {
    child: Child,
    /// The test stopped it on purpose (kill -9, SIGTERM): its exit is expected.
    stopped: bool,
    /// It was sent SIGTERM: it must exit 0.
    terminated: bool,
}

impl Proc {
    fn spawn(ns: &str, program: &str, args: &[String], log: &Path) -> Proc {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns, program])
            .args(args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("ip netns exec starts");
        Proc {
            child,
            stopped: false,
            terminated: false,
        }
    }

    fn kill(&mut self) {
        self.stopped = true;
        signal(&self.child, libc::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a request got.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// 200; the sender it showed (a read of no mapping: `None`, from 404).
    Ok(Option<String>),
    /// An answer that is not a success (status, had `Retry-After`, had the
    /// error envelope).
    Failed(u16, bool, bool),
    /// Nothing came back in time (it may or may not have happened).
    Unknown(String),
    /// No connection: it did not reach the node.
    Unreached,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Send,
    Read,
    StaleRead,
}

#[derive(Debug, Clone)]
struct Op {
    kind: Kind,
    node: usize,
    to: u32,
    start: f64,
    end: f64,
    outcome: Outcome,
}

struct History {
    began: Instant,
    ops: Mutex<Vec<Op>>,
    /// Recipients handed out so far (0..next).
    next: AtomicU32,
}

impl History {
    fn at(&self, t: Instant) -> f64 {
        t.duration_since(self.began).as_secs_f64()
    }

    fn now(&self) -> f64 {
        self.at(Instant::now())
    }

    /// Whether a send invoked at or after `since` has succeeded.
    fn wrote_since(&self, since: f64) -> Option<f64> {
        self.ops
            .lock()
            .unwrap()
            .iter()
            .filter(|o| o.kind == Kind::Send && o.start >= since)
            .filter(|o| matches!(o.outcome, Outcome::Ok(_)))
            .map(|o| o.end)
            .reduce(f64::min)
    }
}

fn recipient(i: u32) -> String {
    format!("+14155{i:06}")
}

/// One HTTP/1.1 request with a bounded connect and answer.
fn http(node: SocketAddr, method: &str, path: &str, body: &str) -> Outcome {
    let mut stream = match TcpStream::connect_timeout(&node, Duration::from_millis(500)) {
        Ok(s) => s,
        Err(_) => return Outcome::Unreached,
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(3)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(3)));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {node}\r\nConnection: close\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if let Err(e) = stream.write_all(request.as_bytes()) {
        return Outcome::Unknown(format!("send: {e}"));
    }
    let mut raw = Vec::new();
    if let Err(e) = stream.read_to_end(&mut raw) {
        return Outcome::Unknown(format!("answer: {e}"));
    }
    let text = String::from_utf8_lossy(&raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Outcome::Unknown("no answer".into());
    };
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let lower = head.to_ascii_lowercase();
    let body = if lower.contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_string()
    };
    let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    match status {
        200 => {
            let from = json["data"]["from"]
                .as_str()
                .or_else(|| json["data"]["from"]["phone_number"].as_str());
            Outcome::Ok(from.map(str::to_string))
        }
        404 if json["errors"][0]["code"] == "10005" && path.contains("sticky_mappings") => {
            Outcome::Ok(None)
        }
        _ => Outcome::Failed(
            status,
            lower.contains("retry-after"),
            json["errors"][0]["code"].is_string(),
        ),
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail.get(n + 2..).unwrap_or("");
    }
    out
}

fn node_addr(i: usize) -> SocketAddr {
    format!("{}:8080", addr_of(i as u8 + 1)).parse().unwrap()
}

/// The cluster under test.
struct Cluster {
    net: Net,
    dir: PathBuf,
    etcd: Proc,
    nodes: Vec<Option<Proc>>,
    paused: Vec<bool>,
    etcd_paused: bool,
    /// Unexpected exits (property 6).
    exits: Vec<String>,
}

impl Cluster {
    fn start(net: Net, dir: PathBuf) -> Cluster {
        let etcd_url = format!("http://{}:2379", addr_of(ETCD_HOST));
        let peer = format!("http://{}:2380", addr_of(ETCD_HOST));
        let args: Vec<String> = [
            "--name",
            "n",
            "--data-dir",
            dir.join("etcd").to_str().unwrap(),
            "--listen-client-urls",
            &etcd_url,
            "--advertise-client-urls",
            &etcd_url,
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            &format!("n={peer}"),
            "--heartbeat-interval",
            "10",
            "--election-timeout",
            "100",
            "--logger",
            "zap",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let etcd = Proc::spawn(&net.etcd, "etcd", &args, &dir.join("etcd.log"));
        let mut cluster = Cluster {
            net,
            dir,
            etcd,
            nodes: (0..NODES).map(|_| None).collect(),
            paused: vec![false; NODES],
            etcd_paused: false,
            exits: Vec::new(),
        };
        for i in 0..NODES {
            cluster.start_node(i, false);
        }
        cluster
    }

    fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.join(format!("node{i}"))
    }

    fn start_node(&mut self, i: usize, wipe: bool) {
        if wipe {
            let _ = std::fs::remove_dir_all(self.node_dir(i));
        }
        let addr = node_addr(i);
        let args: Vec<String> = [
            "serve",
            "--listen",
            &addr.to_string(),
            "--advertise",
            &format!("http://{addr}"),
            "--cluster",
            "nemesis",
            "--etcd",
            &format!("http://{}:2379", addr_of(ETCD_HOST)),
            "--lease-ttl",
            "1s",
            "--api-key",
            KEY,
            "--data-dir",
            self.node_dir(i).to_str().unwrap(),
            "--snapshot-every",
            "5s",
            "--http-workers",
            "2",
            "--arbiters",
            "1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let log = self.dir.join(format!("node{i}.log"));
        self.nodes[i] = Some(Proc::spawn(&self.net.nodes[i], &binary(), &args, &log));
        self.paused[i] = false;
    }

    /// Notes nodes that exited on their own (property 6).
    fn check_exits(&mut self) {
        for (i, slot) in self.nodes.iter_mut().enumerate() {
            let Some(p) = slot else { continue };
            if let Ok(Some(status)) = p.child.try_wait() {
                if p.terminated && !status.success() {
                    self.exits
                        .push(format!("node {i} exited {status} after SIGTERM"));
                } else if !p.stopped {
                    self.exits.push(format!("node {i} exited {status} unasked"));
                }
                *slot = None;
            }
        }
    }

    fn running(&self) -> Vec<usize> {
        (0..NODES)
            .filter(|&i| self.nodes[i].is_some() && !self.paused[i])
            .collect()
    }

    /// The node whose `/readyz` answers 200 as the leader (asked from the
    /// clients' namespace), waiting up to `within`.
    fn leader(&self, within: Duration) -> Option<usize> {
        let deadline = Instant::now() + within;
        loop {
            for i in self.running() {
                if let Ok(mut s) =
                    TcpStream::connect_timeout(&node_addr(i), Duration::from_millis(200))
                {
                    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                    let _ = s
                        .write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                    let mut out = String::new();
                    let _ = s.read_to_string(&mut out);
                    if out.starts_with("HTTP/1.1 200") && out.contains("\"role\":\"leader\"") {
                        return Some(i);
                    }
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn pause(&mut self, i: usize) {
        if let Some(p) = &self.nodes[i] {
            signal(&p.child, libc::SIGSTOP);
            self.paused[i] = true;
        }
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.nodes[i].take() {
            p.kill();
        }
    }

    /// Heals everything: the network, paused processes, stopped nodes.
    fn heal(&mut self) {
        self.net.heal();
        if self.etcd_paused {
            signal(&self.etcd.child, libc::SIGCONT);
            self.etcd_paused = false;
        }
        for i in 0..NODES {
            if self.paused[i] {
                if let Some(p) = &self.nodes[i] {
                    signal(&p.child, libc::SIGCONT);
                }
                self.paused[i] = false;
            }
        }
        self.check_exits();
        for i in 0..NODES {
            if self.nodes[i].is_none() {
                self.start_node(i, false);
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for p in self.nodes.iter_mut().flatten() {
            p.kill();
        }
        self.etcd.kill();
    }
}

/// The faults the nemesis injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Fault {
    KillLeader,
    KillStandbyWithoutFiles,
    KillTwo,
    PauseLeader,
    PauseStandby,
    PauseEtcd,
    TermLeader,
    CutLeaderFromEtcd,
    IsolateStandby,
    CutClientsFromLeader,
    IsolateLeader,
}

const FAULTS: [Fault; 11] = [
    Fault::KillLeader,
    Fault::KillStandbyWithoutFiles,
    Fault::KillTwo,
    Fault::PauseLeader,
    Fault::PauseStandby,
    Fault::PauseEtcd,
    Fault::TermLeader,
    Fault::CutLeaderFromEtcd,
    Fault::IsolateStandby,
    Fault::CutClientsFromLeader,
    Fault::IsolateLeader,
];

/// Injects `fault`; returns how long to hold it.
fn inject(c: &mut Cluster, fault: Fault, rng: &mut StdRng) -> Duration {
    let leader = c.leader(Duration::from_secs(3));
    let running = c.running();
    let leader = leader.or_else(|| running.first().copied()).unwrap_or(0);
    let standby = running
        .iter()
        .copied()
        .filter(|&i| i != leader)
        .collect::<Vec<_>>()
        .choose(rng)
        .copied()
        .unwrap_or((leader + 1) % NODES);
    let hold = Duration::from_millis(rng.random_range(1000..3000));
    let leader_ip = addr_of(leader as u8 + 1);
    match fault {
        Fault::KillLeader => c.kill(leader),
        Fault::KillStandbyWithoutFiles => {
            c.kill(standby);
            let _ = std::fs::remove_dir_all(c.node_dir(standby));
        }
        Fault::KillTwo => {
            c.kill(leader);
            c.kill(standby);
        }
        Fault::PauseLeader => {
            c.pause(leader);
            return TTL + hold;
        }
        Fault::PauseStandby => c.pause(standby),
        Fault::PauseEtcd => {
            signal(&c.etcd.child, libc::SIGSTOP);
            c.etcd_paused = true;
            return TTL + hold;
        }
        Fault::TermLeader => {
            if let Some(p) = &mut c.nodes[leader] {
                p.stopped = true;
                p.terminated = true;
                signal(&p.child, libc::SIGTERM);
            }
        }
        Fault::CutLeaderFromEtcd => {
            // etcd drops what the leader sends: its calls hang, its lease lapses.
            c.net.cut(&c.net.etcd.clone(), &leader_ip);
            return TTL + hold;
        }
        Fault::IsolateStandby => c.net.isolate(&c.net.nodes[standby].clone()),
        Fault::CutClientsFromLeader => {
            c.net
                .cut(&c.net.nodes[leader].clone(), &addr_of(CLIENT_HOST));
        }
        Fault::IsolateLeader => {
            c.net.isolate(&c.net.nodes[leader].clone());
            return TTL + hold;
        }
    }
    hold
}

/// A client: sends and reads through random nodes until told to stop.
fn client(
    id: usize,
    seed: u64,
    history: Arc<History>,
    profile: String,
    stop: Arc<AtomicBool>,
    ns: String,
) {
    Net::enter(&ns);
    let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(1000).wrapping_add(id as u64));
    while !stop.load(Ordering::Relaxed) {
        let seen = history.next.load(Ordering::Acquire);
        // Most requests are about the newest recipients: their mappings are
        // the ones a fault can catch on their way to etcd.
        let recent = |rng: &mut StdRng| seen - 1 - rng.random_range(0..seen.min(32));
        let any = |rng: &mut StdRng| rng.random_range(0..seen);
        let roll = rng.random_range(0..100);
        let (kind, to) = match roll {
            0..35 => (Kind::Send, history.next.fetch_add(1, Ordering::AcqRel)),
            _ if seen == 0 => continue,
            35..50 => (Kind::Send, recent(&mut rng)),
            50..60 => (Kind::Send, any(&mut rng)),
            60..75 => (Kind::Read, recent(&mut rng)),
            75..80 => (Kind::Read, any(&mut rng)),
            80..95 => (Kind::StaleRead, recent(&mut rng)),
            _ => (Kind::StaleRead, any(&mut rng)),
        };
        let node = rng.random_range(0..NODES);
        let start = history.now();
        let outcome = match kind {
            Kind::Send => {
                let body =
                    json!({"messaging_profile_id": profile, "to": recipient(to), "text": "x"});
                http(
                    node_addr(node),
                    "POST",
                    "/v2/messages/number_pool",
                    &body.to_string(),
                )
            }
            Kind::Read | Kind::StaleRead => {
                let mut path = format!(
                    "/v2/messaging_profiles/{profile}/sticky_mappings/{}",
                    recipient(to)
                );
                if kind == Kind::StaleRead {
                    path.push_str("?consistency=stale");
                }
                http(node_addr(node), "GET", &path, "")
            }
        };
        let end = history.now();
        let failed = !matches!(outcome, Outcome::Ok(_));
        history.ops.lock().unwrap().push(Op {
            kind,
            node,
            to,
            start,
            end,
            outcome,
        });
        if failed {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Creates the profile and its numbers through the leader.
fn setup_profile(c: &Cluster) -> String {
    let leader = c
        .leader(Duration::from_secs(30))
        .expect("a leader is elected");
    let addr = node_addr(leader);
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = json!({"name": "nemesis", "whitelisted_destinations": ["*"],
        "number_pool_settings": {"sticky_sender": true}, "max_queue_seconds": 2_592_000});
    let profile = loop {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).unwrap();
        let text = body.to_string();
        write!(s, "POST /v2/messaging_profiles HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}", text.len()).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        if let Some(id) = out
            .split_once("\r\n\r\n")
            .and_then(|(_, b)| serde_json::from_str::<Value>(b).ok())
            .and_then(|v| v["data"]["id"].as_str().map(str::to_string))
        {
            break id;
        }
        assert!(
            Instant::now() < deadline,
            "the profile could not be made: {out}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    for n in [
        "+13125550001",
        "+13125550002",
        "+13125550003",
        "+13125550004",
    ] {
        let body = json!({ "messaging_profile_id": profile }).to_string();
        loop {
            if matches!(
                http(
                    addr,
                    "PATCH",
                    &format!("/v2/phone_numbers/{n}/messaging"),
                    &body
                ),
                Outcome::Ok(_)
            ) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "number {n} could not be assigned"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    profile
}

/// What the checker found.
#[derive(Default)]
struct Verdict {
    violations: Vec<String>,
}

impl Verdict {
    fn add(&mut self, v: String) {
        if self.violations.len() < 200 {
            self.violations.push(v);
        }
    }
}

/// Checks properties 1 to 4 and the failures' form against the final,
/// committed state of each recipient.
fn check(ops: &[Op], committed: &BTreeMap<u32, Option<String>>, verdict: &mut Verdict) {
    let mut by_to: BTreeMap<u32, Vec<&Op>> = BTreeMap::new();
    for o in ops {
        by_to.entry(o.to).or_default().push(o);
        if let Outcome::Failed(status, retry, envelope) = o.outcome {
            let allowed = matches!(status, 503 | 429) && retry && envelope;
            if !allowed {
                verdict.add(format!(
                    "{:?} of {} through node {} at {:.3}s got {status} (Retry-After: {retry}, error envelope: {envelope})",
                    o.kind, recipient(o.to), o.node, o.start
                ));
            }
        }
    }
    for (to, ops) in by_to {
        let final_sender = committed.get(&to).cloned().flatten();
        let mut seen = BTreeSet::new();
        for o in &ops {
            let Outcome::Ok(shown) = &o.outcome else {
                continue;
            };
            match (o.kind, shown) {
                (Kind::Send, Some(s)) if final_sender.as_ref() != Some(s) => verdict.add(format!(
                    "acknowledged mapping lost: {} -> {s} (at {:.3}s through node {}), committed: {final_sender:?}",
                    recipient(to), o.end, o.node
                )),
                (Kind::Read | Kind::StaleRead, Some(s)) if final_sender.as_ref() != Some(s) => {
                    verdict.add(format!(
                        "{:?} at {:.3}s through node {} showed {} -> {s}, never committed (committed: {final_sender:?})",
                        o.kind, o.start, o.node, recipient(to)
                    ))
                }
                _ => {}
            }
            if let Some(s) = shown {
                seen.insert(s.clone());
            }
        }
        if let Some(s) = &final_sender {
            seen.insert(s.clone());
        }
        if seen.len() > 1 {
            verdict.add(format!("{} seen with two senders: {seen:?}", recipient(to)));
        }
        // Linearizable default reads: none misses an acknowledged mapping.
        let first_ack = ops
            .iter()
            .filter(|o| o.kind == Kind::Send && matches!(o.outcome, Outcome::Ok(Some(_))))
            .map(|o| o.end)
            .reduce(f64::min);
        if let Some(acked) = first_ack {
            for o in &ops {
                if o.kind == Kind::Read && o.start > acked && o.outcome == Outcome::Ok(None) {
                    verdict.add(format!(
                        "default read at {:.3}s through node {} missed {}, acknowledged at {acked:.3}s",
                        o.start, o.node, recipient(to)
                    ));
                }
            }
        }
    }
}

/// The `numpool` under test: this build's, or `NUMPOOL_NEMESIS_BINARY`
/// (to check the checker against another build, an older one say).
fn binary() -> String {
    std::env::var("NUMPOOL_NEMESIS_BINARY")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_numpool").to_string())
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

#[test]
fn the_cluster_shows_nothing_uncommitted_and_loses_nothing_acknowledged_under_faults() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skip("not root: cannot make network namespaces");
        return;
    }
    let seconds = env_number("NUMPOOL_NEMESIS_SECONDS", 45);
    let seed = env_number("NUMPOOL_NEMESIS_SEED", 1);
    let net = match Net::create() {
        Ok(n) => n,
        Err(e) => {
            skip(&format!("cannot make network namespaces ({e})"));
            return;
        }
    };
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("nemesis-{seed}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let clients_ns = net.clients.clone();
    let mut c = Cluster::start(net, dir.clone());
    // This thread asks the nodes from the clients' namespace too.
    Net::enter(&clients_ns);
    let profile = setup_profile(&c);
    let history = Arc::new(History {
        began: Instant::now(),
        ops: Mutex::default(),
        next: AtomicU32::new(0),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let (h, p, s, ns) = (
                Arc::clone(&history),
                profile.clone(),
                Arc::clone(&stop),
                clients_ns.clone(),
            );
            std::thread::spawn(move || client(id, seed, h, p, s, ns))
        })
        .collect();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut verdict = Verdict::default();
    let mut faults: BTreeMap<Fault, usize> = BTreeMap::new();
    let mut outages: Vec<(Fault, f64)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    std::thread::sleep(Duration::from_secs(2));
    let mut schedule = Vec::new();
    while Instant::now() < deadline {
        if schedule.is_empty() {
            schedule = FAULTS.to_vec();
            schedule.shuffle(&mut rng);
        }
        let fault = schedule.pop().unwrap();
        *faults.entry(fault).or_default() += 1;
        let hold = inject(&mut c, fault, &mut rng);
        std::thread::sleep(hold);
        c.heal();
        let healed = history.now();
        // Property 5: a write succeeds within a bound after the heal.
        let until = Instant::now() + WRITES_WITHIN;
        let outage = loop {
            if let Some(t) = history.wrote_since(healed) {
                break Some(t - healed);
            }
            if Instant::now() >= until {
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        match outage {
            Some(o) => outages.push((fault, o)),
            None => verdict.add(format!("no write succeeded within {WRITES_WITHIN:?} after healing {fault:?} at {healed:.3}s")),
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(500..1500)));
    }
    stop.store(true, Ordering::Relaxed);
    for t in clients {
        t.join().unwrap();
    }
    c.heal();
    c.check_exits();
    // The committed state: every recipient read from the leader.
    let ops = history.ops.lock().unwrap().clone();
    let recipients = history.next.load(Ordering::Acquire);
    let mut committed = BTreeMap::new();
    let final_deadline = Instant::now() + Duration::from_secs(60);
    for to in 0..recipients {
        let path = format!(
            "/v2/messaging_profiles/{profile}/sticky_mappings/{}",
            recipient(to)
        );
        loop {
            let leader = c.leader(Duration::from_secs(10));
            if let Some(l) = leader {
                if let Outcome::Ok(shown) = http(node_addr(l), "GET", &path, "") {
                    committed.insert(to, shown);
                    break;
                }
            }
            assert!(
                Instant::now() < final_deadline,
                "the final reads never completed"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    check(&ops, &committed, &mut verdict);
    c.check_exits();
    for e in &c.exits {
        verdict.add(e.clone());
    }
    // The report.
    let count = |k: Kind| ops.iter().filter(|o| o.kind == k).count();
    let acked = ops
        .iter()
        .filter(|o| o.kind == Kind::Send && matches!(o.outcome, Outcome::Ok(_)))
        .count();
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    for o in &ops {
        let name = match &o.outcome {
            Outcome::Ok(_) => continue,
            Outcome::Failed(s, ..) => format!("{s}"),
            Outcome::Unknown(_) => "no answer in time".into(),
            Outcome::Unreached => "not reached".into(),
        };
        *failures.entry(format!("{:?} {name}", o.kind)).or_default() += 1;
    }
    let longest =
        outages.iter().cloned().fold(
            (None, 0.0f64),
            |acc, (f, o)| {
                if o > acc.1 {
                    (Some(f), o)
                } else {
                    acc
                }
            },
        );
    let report = format!(
        "nemesis seed {seed}, {seconds} s of faults: {} operations ({} sends, {} reads, {} stale reads), {acked} sends acknowledged, {} recipients, {} committed mappings\n  faults: {faults:?}\n  failures: {failures:?}\n  longest write outage after a heal: {:.3} s ({:?})\n  violations: {}\n",
        ops.len(),
        count(Kind::Send),
        count(Kind::Read),
        count(Kind::StaleRead),
        recipients,
        committed.values().filter(|v| v.is_some()).count(),
        longest.1,
        longest.0,
        verdict.violations.len()
    );
    let _ = writeln!(std::io::stderr(), "{report}");
    let history_file = dir.join("history.txt");
    let mut f = File::create(&history_file).unwrap();
    for o in &ops {
        let _ = writeln!(
            f,
            "{:.4} {:.4} {:?} node{} {} {:?}",
            o.start,
            o.end,
            o.kind,
            o.node,
            recipient(o.to),
            o.outcome
        );
    }
    if !verdict.violations.is_empty() {
        panic!(
            "{report}{}\n(history and logs in {})",
            verdict.violations.join("\n"),
            dir.display()
        );
    }
    assert!(acked > 0, "nothing was acknowledged: {report}");
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
}
