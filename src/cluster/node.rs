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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use futures::executor::block_on;

use super::etcd::{EtcdClient, EtcdConfig, EtcdError, LeaderKey};
use super::follower::{catch_up, CatchUpError, Follower};
use super::log::{self, Keys, LogAppender};
use super::session::Session;
use super::status::{NodeStatus, Role};
use super::switchover::{hand_over, Leading, SwitchoverError};
use super::view;
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

/// How long a node in line waits, when no candidate's key changes, before
/// it looks again whether to stand aside (the view thread decides that
/// every 100 ms); a change (the leader resigns, or its lease lapses) is
/// seen at once.
const CAMPAIGN_RECHECK: Duration = Duration::from_millis(100);

/// A request to the node's thread.
pub(super) struct SwitchoverRequest {
    pub(super) to: Option<String>,
    pub(super) reply: Sender<Result<String, SwitchoverError>>,
    /// Not taken after this (the asker has given up).
    pub(super) until: Instant,
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
            CAMPAIGN_RECHECK,
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
