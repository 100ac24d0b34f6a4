//! One node of a cluster: it follows the leader's log as a standby,
//! campaigns for leadership, and leads once elected, until it loses its
//! lease or is deposed; then it follows again.
//!
//! The node's thread runs this loop:
//!
//! 1. **Follow.** A follower thread applies the log from the position the
//!    local files hold: first what is already in etcd (a range read), then
//!    every new batch as a watch delivers it. Applied batches go to the
//!    local journal too, with their position.
//! 2. **Campaign** on a lease kept alive every third of its TTL.
//! 3. **Lead.** Once elected: stop following, apply whatever of the log is
//!    still unapplied, then give the journal writer a [`LogAppender`]: from
//!    now on every change is committed to etcd (fenced on this node's
//!    leader key) before it is written locally and acknowledged.
//! 4. **Step down** when the lease is lost or a commit fails (deposed, or
//!    etcd did not answer): refuse changes, reload the state from the
//!    local files (which hold only what was committed and acknowledged),
//!    take changes again as a standby, and follow again (1).
//!
//! Beside it, every node publishes what its newest snapshot holds (on its
//! lease), and the leader deletes the part of the log every snapshot holds
//! (`log::shorten`). A node whose files end before the log in etcd starts
//! fetches the leader's snapshot (`GET /cluster/snapshot`) and follows on
//! from it; such a node never leads before it has.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures::executor::block_on;
use parking_lot::RwLock;

use super::etcd::{EtcdClient, EtcdError};
use super::follower::{catch_up, CatchUpError, Follower};
use super::log::{self, Keys, LogAppender};
use crate::engine::Engine;
use crate::journal::Replication;

/// How a node joins a cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// The cluster's name (its etcd prefix is `/numpool/NAME/`).
    pub name: String,
    /// etcd's client URLs.
    pub etcd: Vec<String>,
    /// Where other nodes reach this one's HTTP API (standbys forward there).
    pub advertise: String,
    /// The lease of leadership: a leader that stops renewing it is replaced
    /// after about this long.
    pub lease_ttl: Duration,
    /// An API key the nodes accept, to fetch the leader's snapshot with
    /// (`None` when the API takes none).
    pub api_key: Option<String>,
}

/// A node's part in its cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Role {
    /// Not caught up with the log yet (or no etcd to read it from).
    Starting = 0,
    /// Following the leader's log; requests are forwarded to the leader.
    Standby = 1,
    /// Serving every request; changes are committed to etcd first.
    Leader = 2,
}

impl Role {
    /// The role as `/readyz` and `/metrics` name it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Starting => "starting",
            Role::Standby => "standby",
            Role::Leader => "leader",
        }
    }
}

/// What a node shows of itself (to `/readyz`, `/metrics` and forwarding).
#[derive(Debug, Default)]
pub struct NodeStatus {
    role: AtomicU8,
    epoch: AtomicU64,
    /// The leader's advertised URL, when one is known.
    leader: RwLock<Option<String>>,
    /// The last position of the log in etcd this node has seen.
    pub(super) head: AtomicU64,
    /// The first position of the log still in etcd, as last seen.
    pub(super) log_start: AtomicU64,
    /// The lease this node campaigns (or leads) on; 0 while it has none.
    lease: AtomicI64,
    /// Until when (in [`monotonic_ns`]) the lease is surely still alive:
    /// the last renewal's sending time plus most of its TTL.
    lease_until: AtomicU64,
}

/// Nanoseconds since the process first asked.
fn monotonic_ns() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

impl NodeStatus {
    /// This node's role now.
    pub fn role(&self) -> Role {
        match self.role.load(Ordering::Acquire) {
            1 => Role::Standby,
            2 => Role::Leader,
            _ => Role::Starting,
        }
    }

    pub(super) fn set_role(&self, role: Role) {
        self.role.store(role as u8, Ordering::Release);
    }

    /// The current leader's epoch (its leader key's create revision) when
    /// this node leads; 0 otherwise.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Where the leader listens, when known (this node's own URL when it leads).
    pub fn leader(&self) -> Option<String> {
        self.leader.read().clone()
    }

    /// Whether this node leads and its lease is surely alive: a leader that
    /// could have been replaced answers nothing, not even a read.
    pub fn leads(&self) -> bool {
        self.role() == Role::Leader && monotonic_ns() < self.lease_until.load(Ordering::Acquire)
    }

    /// Notes a renewal of the lease sent at `sent` for `ttl`: it lives at
    /// least until then (a tenth is kept back for clock drift).
    fn renewed(&self, sent: Instant, ttl: Duration) {
        let start = monotonic_ns().saturating_sub(sent.elapsed().as_nanos() as u64);
        let until = start + (ttl.as_nanos() as u64) / 10 * 9;
        self.lease_until.fetch_max(until, Ordering::AcqRel);
    }

    /// The last position of the log this node has seen in etcd.
    pub fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    /// The first position of the log still in etcd, as this node last saw
    /// it (the leader deletes what every node's snapshot holds).
    pub fn log_start(&self) -> u64 {
        self.log_start.load(Ordering::Acquire).max(1)
    }
}

/// A running node.
pub struct Node {
    status: Arc<NodeStatus>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Node {
    /// Joins `engine` (started on its data directory) to the cluster.
    pub fn start(engine: Engine, config: ClusterConfig) -> Result<Node, EtcdError> {
        let status = Arc::new(NodeStatus::default());
        let stop = Arc::new(AtomicBool::new(false));
        // Fail early on a wrong endpoint list.
        EtcdClient::new(config.etcd.clone())?;
        // Until it leads, a node makes no change of its own.
        if let Some(writer) = engine.journal_writer() {
            writer.set_replication(Replication::Follower);
        }
        let keys = Keys::new(&config.name);
        let mut threads = Vec::new();
        let (s, st, k, c) = (
            Arc::clone(&status),
            Arc::clone(&stop),
            keys.clone(),
            config.clone(),
        );
        threads.push(
            std::thread::Builder::new()
                .name("numpool-leader-watch".into())
                .spawn(move || watch_leader(c, k, s, st))
                .map_err(EtcdError::Io)?,
        );
        let (e, s, st, k, c) = (
            engine.clone(),
            Arc::clone(&status),
            Arc::clone(&stop),
            keys.clone(),
            config.clone(),
        );
        threads.push(
            std::thread::Builder::new()
                .name("numpool-covered".into())
                .spawn(move || publish_covered(e, c, k, s, st))
                .map_err(EtcdError::Io)?,
        );
        let (s, st) = (Arc::clone(&status), Arc::clone(&stop));
        threads.push(
            std::thread::Builder::new()
                .name("numpool-cluster".into())
                .spawn(move || run(engine, config, keys, s, st))
                .map_err(EtcdError::Io)?,
        );
        Ok(Node {
            status,
            stop,
            threads,
        })
    }

    /// What the node shows of itself.
    pub fn status(&self) -> Arc<NodeStatus> {
        Arc::clone(&self.status)
    }

    /// Leaves the cluster (resigning if it leads).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Keeps `status.leader` current: who leads now, from etcd.
fn watch_leader(config: ClusterConfig, keys: Keys, status: Arc<NodeStatus>, stop: Arc<AtomicBool>) {
    let Ok(client) = EtcdClient::new(config.etcd.clone()) else {
        return;
    };
    let election = keys.election();
    while !stop.load(Ordering::Acquire) {
        if status.role() != Role::Leader {
            let leader = client
                .leader(&election)
                .ok()
                .flatten()
                .and_then(|kv| String::from_utf8(kv.value).ok());
            *status.leader.write() = leader;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Publishes, on the node's lease, the position of the log its newest
/// snapshot holds, whenever either changes.
fn publish_covered(
    engine: Engine,
    config: ClusterConfig,
    keys: Keys,
    status: Arc<NodeStatus>,
    stop: Arc<AtomicBool>,
) {
    let Ok(client) = EtcdClient::new(config.etcd.clone()) else {
        return;
    };
    let key = keys.covered(&config.advertise);
    let mut published = (0, 0);
    while !pause(Duration::from_millis(250), &stop) {
        let now = (
            status.lease.load(Ordering::Acquire),
            engine.snapshot_covers(),
        );
        if now.0 != 0 && now != published {
            let value = now.1.to_string();
            if client.put(&key, value.as_bytes(), Some(now.0)).is_ok() {
                published = now;
            }
        }
    }
}

/// Sleeps `d` unless asked to stop; returns whether to stop.
pub(super) fn pause(d: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if stop.load(Ordering::Acquire) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.load(Ordering::Acquire)
}

fn run(
    engine: Engine,
    config: ClusterConfig,
    keys: Keys,
    status: Arc<NodeStatus>,
    stop: Arc<AtomicBool>,
) {
    let Some(writer) = engine.journal_writer() else {
        eprintln!("numpool: a cluster node needs its data directory (not --ephemeral)");
        return;
    };
    while !stop.load(Ordering::Acquire) {
        // `Starting` until the follower has caught up once (then `Standby`).
        status.epoch.store(0, Ordering::Release);
        let follower = Follower::start(engine.clone(), &config, keys.clone(), Arc::clone(&status));
        let Some(elected) = campaign(&config, &keys, &status, &stop) else {
            follower.stop();
            continue;
        };
        let (leader, lease, alive, keepalive) = elected;
        // Elected: stop following, then apply what is left of the log.
        follower.stop();
        let client = match EtcdClient::new(config.etcd.clone()) {
            Ok(c) => c,
            Err(_) => continue,
        };
        let caught_up = catch_up(&engine, &client, &keys, &status, &stop);
        match &caught_up {
            Err(CatchUpError::Behind { start }) => eprintln!(
                "numpool: elected, but this node's files end before the cluster's log in etcd starts ({start}); standing down"
            ),
            Err(CatchUpError::Etcd(e)) if !stop.load(Ordering::Acquire) => {
                eprintln!("numpool: elected, but could not read the cluster's log ({e}); standing down")
            }
            _ => {}
        }
        let lost = Arc::new(AtomicBool::new(false));
        if caught_up.is_ok() {
            let next = writer.replicated() + 1;
            let appender = LogAppender::new(
                client,
                keys.clone(),
                leader.clone(),
                next,
                Arc::clone(&lost),
            );
            writer.set_replication(Replication::Leader(Arc::new(appender)));
            status.epoch.store(leader.rev as u64, Ordering::Release);
            *status.leader.write() = Some(config.advertise.clone());
            status.set_role(Role::Leader);
            eprintln!(
                "numpool: leading cluster {} (epoch {})",
                config.name, leader.rev
            );
            let upkeep = EtcdClient::new(config.etcd.clone()).ok();
            let mut next_upkeep = Instant::now();
            while !stop.load(Ordering::Acquire)
                && !lost.load(Ordering::Acquire)
                && alive.load(Ordering::Acquire)
            {
                if let Some(client) = upkeep.as_ref().filter(|_| Instant::now() >= next_upkeep) {
                    next_upkeep = Instant::now() + Duration::from_secs(1);
                    if let Ok(Some(start)) = log::shorten(client, &keys, &leader, &config.advertise)
                    {
                        status.log_start.store(start, Ordering::Release);
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Step down: refuse changes, put back what the local files hold
        // (only what was committed), take changes again as a standby.
        status.set_role(Role::Standby);
        // From the next batch on, a change made here is refused.
        writer.set_replication(Replication::Follower);
        writer.fail("this node is stepping down from leading its cluster");
        alive.store(false, Ordering::Release);
        let _ = keepalive.join();
        status.lease.store(0, Ordering::Release);
        if let Ok(c) = EtcdClient::new(config.etcd.clone()) {
            let _ = c.lease_revoke(lease);
        }
        status.epoch.store(0, Ordering::Release);
        *status.leader.write() = None;
        // Put back what the files hold (only what was committed, a batch
        // whose commit was under way included) and take changes again: the
        // engine's healing, as after any journal failure (if its
        // housekeeper is at it already, that one finishes).
        block_on(engine.heal());
        if !stop.load(Ordering::Acquire) {
            eprintln!(
                "numpool: no longer leading cluster {}; following again",
                config.name
            );
        }
    }
}

/// Campaigns until elected (or asked to stop). Returns the leader key, its
/// lease, the flag its keepalive thread clears when the lease is lost, and
/// that thread.
#[allow(clippy::type_complexity)]
fn campaign(
    config: &ClusterConfig,
    keys: &Keys,
    status: &Arc<NodeStatus>,
    stop: &Arc<AtomicBool>,
) -> Option<(super::etcd::LeaderKey, i64, Arc<AtomicBool>, JoinHandle<()>)> {
    while !stop.load(Ordering::Acquire) {
        let Ok(client) = EtcdClient::new(config.etcd.clone()) else {
            return None;
        };
        let ttl = config.lease_ttl.as_secs().max(1) as i64;
        let sent = Instant::now();
        let (lease, granted) = match client.lease_grant(ttl) {
            Ok(l) => (l.id, Duration::from_secs(l.ttl.max(1) as u64)),
            Err(_) => {
                if pause(Duration::from_millis(500), stop) {
                    return None;
                }
                continue;
            }
        };
        status.lease.store(lease, Ordering::Release);
        // The shorter of what was asked and what was granted.
        let ttl = config.lease_ttl.min(granted);
        status.lease_until.store(0, Ordering::Release);
        status.renewed(sent, ttl);
        let alive = Arc::new(AtomicBool::new(true));
        let keepalive = {
            let (alive, stop, etcd) = (Arc::clone(&alive), Arc::clone(stop), config.etcd.clone());
            let status = Arc::clone(status);
            std::thread::spawn(move || keep_alive(etcd, lease, ttl, status, alive, stop))
        };
        let Ok(candidate) =
            client.start_campaign(&keys.election(), lease, config.advertise.as_bytes())
        else {
            status.lease.store(0, Ordering::Release);
            alive.store(false, Ordering::Release);
            let _ = keepalive.join();
            if pause(Duration::from_millis(500), stop) {
                return None;
            }
            continue;
        };
        // Withdraw when asked to stop or when the lease is lost meanwhile.
        let handle = candidate.shutdown_handle();
        let watcher = {
            let (alive, stop) = (Arc::clone(&alive), Arc::clone(stop));
            std::thread::spawn(move || {
                while alive.load(Ordering::Acquire)
                    && !stop.load(Ordering::Acquire)
                    && !handle.is_shutdown()
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                handle.shutdown();
            })
        };
        let result = candidate.wait();
        match result {
            Ok(leader) if alive.load(Ordering::Acquire) && !stop.load(Ordering::Acquire) => {
                // The watcher must not withdraw a won election: it stops on
                // its own once told the lease is kept by the leader loop.
                let kept = Arc::clone(&alive);
                let _ = watcher;
                return Some((leader, lease, kept, keepalive));
            }
            _ => {
                alive.store(false, Ordering::Release);
                let _ = keepalive.join();
                let _ = watcher.join();
                status.lease.store(0, Ordering::Release);
                let _ = client.lease_revoke(lease);
                if pause(Duration::from_millis(200), stop) {
                    return None;
                }
            }
        }
    }
    None
}

/// Renews `lease` every third of `ttl`, noting each renewal on `status`;
/// clears `alive` once renewals have failed for a whole `ttl` (the lease
/// may be gone: leadership must end).
fn keep_alive(
    etcd: Vec<String>,
    lease: i64,
    ttl: Duration,
    status: Arc<NodeStatus>,
    alive: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) {
    let every = ttl / 3;
    let Ok(client) = EtcdClient::new(etcd)
        .map(|c| c.with_request_timeout(every.max(Duration::from_millis(200))))
    else {
        alive.store(false, Ordering::Release);
        return;
    };
    let mut last_ok = Instant::now();
    while alive.load(Ordering::Acquire) && !stop.load(Ordering::Acquire) {
        let sent = Instant::now();
        match client.lease_keepalive(lease) {
            Ok(granted) => {
                // Counted from the sending: etcd renewed it no earlier.
                last_ok = sent;
                status.renewed(sent, ttl.min(Duration::from_secs(granted.max(1) as u64)));
            }
            Err(EtcdError::LeaseLost(_)) => break,
            Err(_) if last_ok.elapsed() >= ttl => break,
            Err(_) => {}
        }
        let next = last_ok + every;
        while Instant::now() < next
            && alive.load(Ordering::Acquire)
            && !stop.load(Ordering::Acquire)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    alive.store(false, Ordering::Release);
}
