//! One node of a cluster: it follows the leader's log as a standby,
//! campaigns for leadership, and leads once elected, until it loses its
//! lease, is deposed, hands over (switchover) or shuts down; then it
//! follows again.
//!
//! The node's thread (`numpool-cluster`) runs this loop:
//!
//! 1. **Session.** Grant a lease and keep it alive (`session`): the node
//!    campaigns on it and publishes its member record on it.
//! 2. **Follow.** A follower thread applies the log from the position the
//!    local files hold: first what is already in etcd (a range read), then
//!    every new batch as a watch delivers it.
//! 3. **Campaign** on the session's lease, unless a switchover names
//!    another member (then it stands aside until that one leads).
//! 4. **Lead.** Once elected: stop following, apply whatever of the log is
//!    still unapplied, then give the journal writer a [`LogAppender`]: from
//!    now on every change is committed to etcd (fenced on this node's
//!    leader key) before it is written locally and acknowledged.
//! 5. **Step down** when the lease is lost, a commit fails (deposed, or
//!    etcd did not answer), leadership is handed over, or the node shuts
//!    down: refuse changes, resign (so the next leader is elected at once),
//!    and forget what etcd did not commit (reload from the local files,
//!    which hold only committed batches) before serving any stale read.
//!    Then follow again (2).
//!
//! Beside it, the view thread (`view`) reads the cluster every 100 ms and
//! publishes this node's member record; the leader deletes the part of the
//! log that every member's snapshot holds (`log::shorten`). A node whose
//! files end before the log in etcd starts fetches the leader's snapshot
//! (`GET /cluster/snapshot`) and follows on from it; such a node never
//! leads before it has.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use futures::executor::block_on;
use parking_lot::RwLock;
use serde::Serialize;

use super::etcd::{EtcdClient, EtcdConfig, EtcdError, LeaderKey};
use super::follower::{catch_up, CatchUpError, Follower};
use super::log::{self, Keys, LogAppender};
use super::session::Session;
use super::switchover::{hand_over, Leading, SwitchoverError};
use super::view::{self, ClusterView};
use crate::engine::Engine;
use crate::journal::Replication;

/// How a node joins a cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// The cluster's name (its etcd prefix is `/numpool/NAME/`).
    pub name: String,
    /// How to reach etcd: its client URLs, TLS, authentication.
    pub etcd: EtcdConfig,
    /// Where other nodes reach this one's HTTP API (standbys forward there).
    pub advertise: String,
    /// The lease of leadership: a leader that stops renewing it is replaced
    /// after about this long.
    pub lease_ttl: Duration,
    /// An API key the nodes accept, to fetch the leader's snapshot with
    /// (`None` when the API takes none).
    pub api_key: Option<String>,
    /// The most positions of the log a standby may lag behind and still be
    /// ready (`/cluster/standby`, `/readyz`) or take over in a switchover.
    pub max_lag: u64,
    /// The CA other nodes' certificates are checked against when they
    /// advertise `https://` (`None`: the usual web roots).
    pub tls_ca: Option<std::path::PathBuf>,
}

/// The default of [`ClusterConfig::max_lag`].
pub const DEFAULT_MAX_LAG: u64 = 100;

/// The default of [`ClusterConfig::lease_ttl`] (`--lease-ttl`).
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(2);

/// How recent the view's last answer from etcd must be for the status and
/// the probes to call etcd reachable (the view reads it every 100 ms).
const ETCD_ANSWERED_WITHIN: Duration = Duration::from_secs(2);

/// How often a node in line asks whether it leads now.
const CAMPAIGN_POLL: Duration = Duration::from_millis(20);

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

    fn from_u8(n: u8) -> Role {
        match n {
            1 => Role::Standby,
            2 => Role::Leader,
            _ => Role::Starting,
        }
    }
}

/// A request to the node's thread.
pub(super) struct SwitchoverRequest {
    to: Option<String>,
    reply: Sender<Result<String, SwitchoverError>>,
    /// Not taken after this (the asker has given up).
    until: Instant,
}

/// What a node shows of itself (to the HTTP layer: `/readyz`, the probes,
/// `/cluster/status`, `/metrics`, forwarding).
#[derive(Debug)]
pub struct NodeStatus {
    advertise: String,
    name: String,
    max_lag: u64,
    role: AtomicU8,
    epoch: AtomicU64,
    /// The leader's advertised URL, when one is known.
    leader: RwLock<Option<String>>,
    /// The last position of the log in etcd this node has seen.
    pub(super) head: AtomicU64,
    /// The first position of the log still in etcd, as last seen.
    pub(super) log_start: AtomicU64,
    /// The lease of this node's session; 0 while it has none.
    session: AtomicI64,
    /// Until when (in [`monotonic_ns`]) the lease is surely still alive:
    /// the last renewal's sending time plus most of its TTL.
    lease_until: AtomicU64,
    /// The engine's memory holds only what etcd committed: false from the
    /// moment the node leads (a change is applied before it is committed)
    /// until, after stepping down, it has reloaded its committed state.
    committed_only: AtomicBool,
    /// How many times this node has started leading (a read compares it
    /// before and after, to know it led, or followed, all along).
    terms: AtomicU64,
    view: RwLock<ClusterView>,
    switchover: Sender<SwitchoverRequest>,
    peers: super::peer::Peers,
}

/// Nanoseconds since the process first asked.
fn monotonic_ns() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

impl NodeStatus {
    fn new(
        config: &ClusterConfig,
        switchover: Sender<SwitchoverRequest>,
        peers: super::peer::Peers,
    ) -> NodeStatus {
        NodeStatus {
            peers,
            advertise: config.advertise.clone(),
            name: config.name.clone(),
            max_lag: config.max_lag,
            role: AtomicU8::new(Role::Starting as u8),
            epoch: AtomicU64::new(0),
            leader: RwLock::new(None),
            head: AtomicU64::new(0),
            log_start: AtomicU64::new(0),
            session: AtomicI64::new(0),
            lease_until: AtomicU64::new(0),
            committed_only: AtomicBool::new(true),
            terms: AtomicU64::new(0),
            view: RwLock::new(ClusterView::default()),
            switchover,
        }
    }

    /// This node's role now.
    pub fn role(&self) -> Role {
        Role::from_u8(self.role.load(Ordering::Acquire))
    }

    /// Sets the role; a change is an event (operators follow failovers by
    /// these).
    pub(super) fn set_role(&self, role: Role) {
        let was = Role::from_u8(self.role.swap(role as u8, Ordering::AcqRel));
        if was != role {
            tracing::info!(
                role = role.name(),
                was = was.name(),
                leader = self.leader().as_deref().unwrap_or(""),
                epoch = self.epoch(),
                "cluster: role changed"
            );
        }
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

    pub(super) fn set_leader(&self, leader: Option<String>) {
        *self.leader.write() = leader;
    }

    /// This node's advertised URL.
    pub fn advertise(&self) -> &str {
        &self.advertise
    }

    /// The client of the other nodes.
    pub fn peers(&self) -> &super::peer::Peers {
        &self.peers
    }

    /// Whether this node leads and its lease is surely alive: a leader that
    /// could have been replaced answers nothing, not even a read.
    pub fn leads(&self) -> bool {
        self.role() == Role::Leader && monotonic_ns() < self.lease_until.load(Ordering::Acquire)
    }

    /// Whether this node's memory holds only state etcd committed, so a
    /// stale read may be answered from it (the engine must also hold no
    /// change its journal refused).
    pub fn committed_only(&self) -> bool {
        self.committed_only.load(Ordering::Acquire)
    }

    /// How many times this node has started leading.
    pub fn terms(&self) -> u64 {
        self.terms.load(Ordering::Acquire)
    }

    /// Notes a renewal of the lease sent at `sent` for `ttl`: it lives at
    /// least until then (a tenth is kept back for clock drift). `fresh`: a
    /// new lease (the old one's time no longer counts).
    pub(super) fn lease_renewed(&self, sent: Instant, ttl: Duration, fresh: bool) {
        let start = monotonic_ns().saturating_sub(sent.elapsed().as_nanos() as u64);
        let until = start + (ttl.as_nanos() as u64) / 10 * 9;
        if fresh {
            self.lease_until.store(until, Ordering::Release);
        } else {
            self.lease_until.fetch_max(until, Ordering::AcqRel);
        }
    }

    /// The lease of this node's session (0: none).
    pub(super) fn session(&self) -> i64 {
        self.session.load(Ordering::Acquire)
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

    pub(super) fn set_view(&self, view: ClusterView) {
        *self.view.write() = view;
    }

    pub(super) fn view_failed(&self, error: String) {
        self.view.write().error = Some(error);
    }

    /// The member a switchover under way hands over to, as last read.
    pub(super) fn switchover_target(&self) -> Option<String> {
        self.view.read().switchover.clone()
    }

    /// Whether a switchover under way names another member than this one.
    pub(super) fn stands_aside(&self) -> bool {
        self.switchover_target()
            .is_some_and(|t| t.trim_end_matches('/') != self.advertise.trim_end_matches('/'))
    }

    /// Why this node is not a standby ready to serve stale reads and take
    /// over (`/cluster/standby`): `None` when it is one. `applied`: the
    /// position its engine holds; `max_lag`: the most positions it may lag.
    pub fn standby_unready(&self, applied: u64, max_lag: Option<u64>) -> Option<String> {
        let max_lag = max_lag.unwrap_or(self.max_lag);
        match self.role() {
            Role::Standby => {}
            role => return Some(format!("this node is {}, not a standby", role.name())),
        }
        if !self.committed_only() {
            return Some("this node is putting back its committed state after leading".into());
        }
        if self.leader().is_none() {
            return Some("no leader is known".into());
        }
        let view = self.view.read();
        match view.read_at {
            Some(at) if at.elapsed() < ETCD_ANSWERED_WITHIN => {}
            _ => {
                let why = view.error.as_deref().unwrap_or("no answer yet");
                return Some(format!("etcd does not answer ({why})"));
            }
        }
        let lag = self.head().saturating_sub(applied);
        (lag > max_lag).then(|| format!("{lag} positions behind the log (at most {max_lag})"))
    }

    /// Asks the node's thread to hand leadership over to `to` (or the best
    /// standby), waiting at most `within`.
    pub fn switchover(
        &self,
        to: Option<String>,
        within: Duration,
    ) -> Result<String, SwitchoverError> {
        if !self.leads() {
            return Err(SwitchoverError::NotLeader);
        }
        let (reply, answer) = crossbeam_channel::bounded(1);
        let request = SwitchoverRequest {
            to,
            reply,
            until: Instant::now() + within,
        };
        self.switchover
            .send(request)
            .map_err(|_| SwitchoverError::NotLeader)?;
        answer
            .recv_timeout(within)
            .unwrap_or(Err(SwitchoverError::NotLeader))
    }

    /// The cluster as this node sees it (`/cluster/status`), from memory:
    /// `applied` is what its engine holds.
    pub fn cluster_status(&self, applied: u64) -> ClusterStatus {
        let view = self.view.read();
        let now = view::wall_ms();
        let head = view
            .members
            .iter()
            .map(|m| m.applied)
            .chain([self.head(), applied])
            .max()
            .unwrap_or(0);
        let mut members: Vec<MemberStatus> = view
            .members
            .iter()
            .map(|m| {
                let own = m.url == self.advertise;
                let (role, applied, epoch) = if own {
                    (self.role().name().to_string(), applied, self.epoch())
                } else {
                    (m.role.clone(), m.applied, m.epoch)
                };
                MemberStatus {
                    url: m.url.clone(),
                    role,
                    epoch,
                    applied,
                    lag: head.saturating_sub(applied),
                    snapshot: m.snapshot,
                    heard_ms_ago: if own { 0 } else { now.saturating_sub(m.at_ms) },
                    this_node: own,
                }
            })
            .collect();
        if !members.iter().any(|m| m.this_node) {
            members.push(MemberStatus {
                url: self.advertise.clone(),
                role: self.role().name().to_string(),
                epoch: self.epoch(),
                applied,
                lag: head.saturating_sub(applied),
                snapshot: 0,
                heard_ms_ago: 0,
                this_node: true,
            });
        }
        members.sort_by(|a, b| a.url.cmp(&b.url));
        ClusterStatus {
            cluster: self.name.clone(),
            leader: view.leader.as_ref().map(|(url, _)| url.clone()),
            epoch: view.leader.as_ref().map_or(0, |(_, e)| *e),
            head,
            log_start: self.log_start(),
            switchover: view.switchover.clone(),
            etcd: EtcdStatus {
                reachable: view
                    .read_at
                    .is_some_and(|at| at.elapsed() < ETCD_ANSWERED_WITHIN),
                last_answer_ms_ago: view.read_at.map(|at| at.elapsed().as_millis() as u64),
                error: view.error.clone(),
            },
            members,
        }
    }
}

/// The cluster as one node sees it (`GET /cluster/status`).
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    /// The cluster's name.
    pub cluster: String,
    /// The leader's URL, as etcd last said.
    pub leader: Option<String>,
    /// The leader's epoch.
    pub epoch: u64,
    /// The newest position of the log known here.
    pub head: u64,
    /// The first position of the log still in etcd.
    pub log_start: u64,
    /// The member a switchover under way hands over to.
    pub switchover: Option<String>,
    /// Whether etcd answers this node.
    pub etcd: EtcdStatus,
    /// Every member, by URL.
    pub members: Vec<MemberStatus>,
}

/// Whether etcd answers a node.
#[derive(Debug, Clone, Serialize)]
pub struct EtcdStatus {
    /// It answered within the last 2 s.
    pub reachable: bool,
    /// How long ago it last answered (`None`: never yet).
    pub last_answer_ms_ago: Option<u64>,
    /// Why the last read failed, if it did.
    pub error: Option<String>,
}

/// One member of a cluster, as its member record says (this node's own
/// row from memory).
#[derive(Debug, Clone, Serialize)]
pub struct MemberStatus {
    /// Its advertised URL.
    pub url: String,
    /// `starting`, `standby` or `leader`.
    pub role: String,
    /// Its epoch while it leads.
    pub epoch: u64,
    /// The position of the log it has applied.
    pub applied: u64,
    /// How far behind the newest known position it is.
    pub lag: u64,
    /// The position its newest snapshot holds.
    pub snapshot: u64,
    /// How long ago it published its record (by the clocks of both nodes).
    pub heard_ms_ago: u64,
    /// It is the node answering.
    pub this_node: bool,
}

/// A running node.
pub struct Node {
    status: Arc<NodeStatus>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// Why a node could not join its cluster.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The etcd endpoints, or the TLS files for them, cannot be used.
    #[error("etcd: {0}")]
    Etcd(EtcdError),
    /// etcd refused this node: its certificate is not trusted (or expired,
    /// or this node does not trust etcd's), or its user and password are
    /// wrong. Waiting does not mend that.
    #[error("etcd refused this node: {0}")]
    Refused(EtcdError),
    /// The engine keeps no journal (a cluster node needs its data directory).
    #[error("a cluster node needs its data directory (it cannot run in memory only)")]
    NoJournal,
    /// A thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    /// The client of the other nodes cannot be set up (its CA file).
    #[error("node-to-node TLS: {0}")]
    Peers(String),
}

impl Node {
    /// Joins `engine` (started on its data directory) to the cluster.
    pub fn start(engine: Engine, config: ClusterConfig) -> Result<Node, JoinError> {
        let (requests, control) = crossbeam_channel::unbounded();
        let peers = super::peer::Peers::new(config.tls_ca.as_deref())
            .map_err(|e| JoinError::Peers(e.to_string()))?;
        let status = Arc::new(NodeStatus::new(&config, requests, peers));
        let stop = Arc::new(AtomicBool::new(false));
        // Fail early on a wrong endpoint list, TLS that does not hold, or
        // credentials etcd refuses; an etcd that does not answer yet is
        // waited for.
        let client = EtcdClient::new(config.etcd.clone()).map_err(JoinError::Etcd)?;
        let keys = Keys::new(&config.name);
        match client.get(&keys.election()) {
            Err(e) if e.is_refusal() => return Err(JoinError::Refused(e)),
            Err(e) => {
                tracing::warn!(error = %e, "cluster: etcd does not answer yet; waiting for it")
            }
            Ok(_) => {}
        }
        // Until it leads, a node makes no change of its own.
        let writer = engine.journal_writer().ok_or(JoinError::NoJournal)?;
        writer.set_replication(Replication::Follower);
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(f)
                .map_err(JoinError::Thread)
        };
        let mut threads = Vec::new();
        let (e, c, k, s, st) = (
            engine.clone(),
            config.clone(),
            keys.clone(),
            Arc::clone(&status),
            Arc::clone(&stop),
        );
        threads.push(spawn(
            "numpool-cluster-view",
            Box::new(move || view::watch_cluster(e, c, k, s, st)),
        )?);
        let (s, st) = (Arc::clone(&status), Arc::clone(&stop));
        threads.push(spawn(
            "numpool-cluster",
            Box::new(move || run(engine, config, keys, s, st, control)),
        )?);
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

    /// Leaves the cluster: a leader stops taking changes and resigns first,
    /// so that a standby leads at once instead of after the lease.
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

/// Sleeps `d` unless asked to stop; returns whether to stop.
pub(super) fn pause(d: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if stop.load(Ordering::Acquire) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10).min(until - Instant::now()));
    }
    stop.load(Ordering::Acquire)
}

/// Why leading ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Stopping,
    /// An append failed (deposed, or etcd did not answer).
    Deposed,
    LeaseLost,
    HandedOver,
}

fn run(
    engine: Engine,
    config: ClusterConfig,
    keys: Keys,
    status: Arc<NodeStatus>,
    stop: Arc<AtomicBool>,
    control: Receiver<SwitchoverRequest>,
) {
    while !stop.load(Ordering::Acquire) {
        let Some(session) = Session::open(&config, &status, &stop) else {
            break;
        };
        status.session.store(session.id, Ordering::Release);
        while session.alive() && !stop.load(Ordering::Acquire) {
            // `Starting` until the follower has caught up once (then `Standby`).
            let follower =
                Follower::start(engine.clone(), &config, keys.clone(), Arc::clone(&status));
            let elected = campaign(&config, &keys, &status, &session, &stop);
            follower.stop();
            refuse_pending(&control, SwitchoverError::NotLeader);
            if let Some(leader) = elected {
                let ended = lead(
                    &engine, &config, &keys, &status, &session, &stop, &leader, &control,
                );
                step_down(&engine, &config, &status, &session, &leader, ended);
            }
        }
        status.session.store(0, Ordering::Release);
        let client = EtcdClient::new(config.etcd.clone())
            .ok()
            .map(|c| c.with_request_timeout(Duration::from_millis(500)));
        // Revoked when leaving (the member record and candidacy go at once).
        session.close(client.as_ref().filter(|_| stop.load(Ordering::Acquire)));
    }
}

/// Answers the switchover requests queued while this node does not lead.
fn refuse_pending(control: &Receiver<SwitchoverRequest>, why: SwitchoverError) {
    for r in control.try_iter() {
        let _ = r.reply.send(Err(why.clone()));
    }
}

/// Campaigns on the session's lease until elected. `None` when asked to
/// stop or the session is lost. Stands aside (withdraws, and waits) while
/// a switchover names another member.
fn campaign(
    config: &ClusterConfig,
    keys: &Keys,
    status: &Arc<NodeStatus>,
    session: &Session,
    stop: &Arc<AtomicBool>,
) -> Option<LeaderKey> {
    let Ok(client) = EtcdClient::new(config.etcd.clone()) else {
        return None;
    };
    let out = |stop: &AtomicBool| stop.load(Ordering::Acquire) || !session.alive();
    loop {
        if out(stop) {
            return None;
        }
        if status.stands_aside() {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        // In line until elected; withdraws when asked to stop, when the
        // session is lost, or when a switchover names another member.
        let withdraw = || out(stop) || status.stands_aside();
        let result = client.campaign(
            &keys.election(),
            session.id,
            config.advertise.as_bytes(),
            CAMPAIGN_POLL,
            &withdraw,
        );
        match result {
            Ok(Some(leader)) if !withdraw() => return Some(leader),
            Ok(Some(leader)) => {
                // Elected, but it must not lead: give it back at once.
                let _ = client.resign(&leader);
            }
            Ok(None) => {}
            Err(_) => {
                if pause(Duration::from_millis(50), stop) {
                    return None;
                }
            }
        }
    }
}

/// Leads until asked to stop, deposed, the lease is lost, or leadership
/// is handed over.
#[allow(clippy::too_many_arguments)]
fn lead(
    engine: &Engine,
    config: &ClusterConfig,
    keys: &Keys,
    status: &Arc<NodeStatus>,
    session: &Session,
    stop: &AtomicBool,
    leader: &LeaderKey,
    control: &Receiver<SwitchoverRequest>,
) -> Ended {
    let writer = engine.journal_writer().expect("a cluster node journals");
    let Ok(client) = EtcdClient::new(config.etcd.clone()) else {
        return Ended::Deposed;
    };
    // Elected: apply what is left of the log first.
    if let Err(e) = catch_up(engine, &client, keys, status, stop) {
        match e {
            CatchUpError::Behind { start } => tracing::warn!(
                log_start = start,
                "cluster: elected, but this node's files end before the cluster's log in etcd starts; standing down"
            ),
            CatchUpError::Etcd(e) => {
                tracing::warn!(error = %e, "cluster: elected, but could not read the cluster's log; standing down")
            }
        }
        return Ended::Deposed;
    }
    match log::seed_start(&client, keys, leader, writer.replicated()) {
        Ok(true) => {
            let start = writer.replicated() + 1;
            status.log_start.store(start, Ordering::Release);
            tracing::info!(
                log_start = start,
                "cluster: this node's files hold state the log in etcd does not (a restored backup): the log starts after it, and other nodes take this node's snapshot"
            );
        }
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(error = %e, "cluster: elected, but could not check the log's start; standing down");
            return Ended::Deposed;
        }
    }
    let lost = Arc::new(AtomicBool::new(false));
    let next = writer.replicated() + 1;
    let appender = LogAppender::new(
        client,
        keys.clone(),
        leader.clone(),
        next,
        Arc::clone(&lost),
    );
    // From the first change on, memory may hold what etcd has not committed.
    status.terms.fetch_add(1, Ordering::AcqRel);
    status.committed_only.store(false, Ordering::Release);
    writer.set_replication(Replication::Leader(Arc::new(appender)));
    status.epoch.store(leader.rev as u64, Ordering::Release);
    status.set_leader(Some(config.advertise.clone()));
    status.set_role(Role::Leader);
    tracing::info!(cluster = %config.name, epoch = leader.rev, position = next - 1, "cluster: leading");
    let Ok(upkeep) = EtcdClient::new(config.etcd.clone())
        .map(|c| c.with_request_timeout(Duration::from_millis(500)))
    else {
        return Ended::Deposed;
    };
    if status
        .switchover_target()
        .is_some_and(|t| t == config.advertise)
    {
        let _ = upkeep.delete_range(&keys.switchover(), None);
    }
    let mut next_upkeep = Instant::now();
    loop {
        if stop.load(Ordering::Acquire) {
            return Ended::Stopping;
        }
        if lost.load(Ordering::Acquire) {
            return Ended::Deposed;
        }
        if !session.alive() {
            return Ended::LeaseLost;
        }
        if Instant::now() >= next_upkeep {
            next_upkeep = Instant::now() + Duration::from_secs(1);
            status.head.fetch_max(writer.replicated(), Ordering::AcqRel);
            if let Ok(Some(start)) = log::shorten(&upkeep, keys, leader, &config.advertise) {
                status.log_start.store(start, Ordering::Release);
            }
        }
        if let Ok(request) = control.recv_timeout(Duration::from_millis(20)) {
            if Instant::now() > request.until {
                continue;
            }
            let leading = Leading {
                engine,
                client: &upkeep,
                keys,
                config,
                leader,
                status,
            };
            let outcome = hand_over(&leading, request.to.as_deref());
            let handed = outcome.is_ok();
            if let Err(e) = &outcome {
                tracing::warn!(error = %e, "cluster: switchover refused; leading on");
            }
            let _ = request.reply.send(outcome);
            if handed {
                return Ended::HandedOver;
            }
        }
    }
}

/// Stops leading: refuses changes, resigns (unless the lease is gone
/// already), and puts back the committed state before any stale read is
/// answered from memory.
fn step_down(
    engine: &Engine,
    config: &ClusterConfig,
    status: &NodeStatus,
    session: &Session,
    leader: &LeaderKey,
    ended: Ended,
) {
    let writer = engine.journal_writer().expect("a cluster node journals");
    // Nothing is served as the leader from now on (requests are forwarded).
    status.set_role(Role::Standby);
    status.epoch.store(0, Ordering::Release);
    status.set_leader(None);
    // From the next batch on, a change made here is refused.
    writer.set_replication(Replication::Follower);
    let why = match ended {
        Ended::Stopping => "this node is shutting down",
        Ended::HandedOver => "this node handed leadership over",
        Ended::Deposed | Ended::LeaseLost => "this node is stepping down from leading its cluster",
    };
    writer.fail(why);
    if session.alive() && ended != Ended::HandedOver {
        // Resigning lets the next candidate lead at once.
        if let Ok(c) = EtcdClient::new(config.etcd.clone())
            .map(|c| c.with_request_timeout(Duration::from_millis(500)))
        {
            if let Err(e) = c.resign(leader) {
                tracing::warn!(error = %e, "cluster: could not resign; the lease will lapse");
            }
        }
    }
    tracing::info!(
        cluster = %config.name,
        epoch = leader.rev,
        reason = ?ended,
        "cluster: no longer leading"
    );
    if ended == Ended::Stopping {
        // The process is going: no reload (stale reads are refused, the rest
        // is forwarded to the next leader until the server stops).
        return;
    }
    // Put back what the files hold (only what was committed, a batch whose
    // commit was under way included) before answering any stale read.
    match block_on(engine.forget_uncommitted()) {
        Ok(()) => status.committed_only.store(true, Ordering::Release),
        Err(e) => {
            tracing::error!(error = %e, "cluster: could not reload the committed state after leading")
        }
    }
}
