//! What a node knows of itself and its cluster, for the node's own
//! threads and for the HTTP API: its [`Role`], the shared [`NodeStatus`]
//! (role, leader, epoch, log positions, the latest view of the cluster),
//! and the [`ClusterStatus`] that `GET /cluster/status` answers.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use parking_lot::RwLock;
use serde::Serialize;

use super::node::{ClusterConfig, SwitchoverRequest};
use super::switchover::SwitchoverError;
use super::view::{self, ClusterView};

/// How recent the view's last answer from etcd must be for the status and
/// the probes to call etcd reachable (the view reads it every 100 ms).
const ETCD_ANSWERED_WITHIN: Duration = Duration::from_secs(2);

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

/// What a node shows of itself (to the HTTP layer: `/readyz`, the probes,
/// `/cluster/status`, `/metrics`, forwarding).
#[derive(Debug)]
pub struct NodeStatus {
    pub(super) advertise: String,
    pub(super) name: String,
    pub(super) max_lag: u64,
    pub(super) role: AtomicU8,
    pub(super) epoch: AtomicU64,
    /// The leader's advertised URL, when one is known.
    pub(super) leader: RwLock<Option<String>>,
    /// The last position of the log in etcd this node has seen.
    pub(super) head: AtomicU64,
    /// The first position of the log still in etcd, as last seen.
    pub(super) log_start: AtomicU64,
    /// The lease of this node's session; 0 while it has none.
    pub(super) session: AtomicI64,
    /// Until when (in [`monotonic_ns`]) the lease is surely still alive:
    /// the last renewal's sending time plus most of its TTL.
    pub(super) lease_until: AtomicU64,
    /// The engine's memory holds only what etcd committed: false from the
    /// moment the node leads (a change is applied before it is committed)
    /// until, after stepping down, it has reloaded its committed state.
    pub(super) committed_only: AtomicBool,
    /// How many times this node has started leading (a read compares it
    /// before and after, to know it led, or followed, all along).
    pub(super) terms: AtomicU64,
    pub(super) view: RwLock<ClusterView>,
    pub(super) switchover: Sender<SwitchoverRequest>,
    pub(super) peers: super::peer::Peers,
}

/// Nanoseconds since the process first asked.
pub(super) fn monotonic_ns() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

impl NodeStatus {
    pub(super) fn new(
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
