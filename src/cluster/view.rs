//! What a node knows of its cluster, read from etcd every 100 ms on a
//! thread of its own (`numpool-cluster-view`), so that `/cluster/status`,
//! the probes and forwarding answer from memory without waiting on etcd
//! (and say so when etcd stopped answering).
//!
//! Every node publishes a **member record** under `member/<advertise URL>`
//! on its session lease (so a node that is gone disappears with its
//! lease): its role, epoch, applied position and what its newest snapshot
//! holds. The leader's upkeep reads the snapshot positions to know how much
//! of the log every node can do without (`log::shorten`).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::etcd::{EtcdClient, OpResponse};
use super::log::Keys;
use super::node::{pause, ClusterConfig};
use super::status::{NodeStatus, Role};
use crate::engine::Engine;

/// A member as it publishes itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct MemberRecord {
    /// Its advertised URL (its name in the cluster).
    pub url: String,
    /// `starting`, `standby` or `leader`.
    pub role: String,
    /// Its epoch while it leads; 0 otherwise.
    pub epoch: u64,
    /// The position of the log it has applied.
    pub applied: u64,
    /// The position of the log its newest snapshot holds.
    pub snapshot: u64,
    /// When it published this (milliseconds since the Unix epoch, its clock).
    pub at_ms: u64,
}

/// The cluster as last read from etcd.
#[derive(Debug, Clone, Default)]
pub(super) struct ClusterView {
    /// The leader's URL and epoch (the election's oldest candidate).
    pub leader: Option<(String, u64)>,
    /// Every candidate in the election, oldest first: URL and create revision.
    pub candidates: Vec<(String, i64)>,
    /// Every member record.
    pub members: Vec<MemberRecord>,
    /// The member a switchover under way hands leadership to.
    pub switchover: Option<String>,
    /// When etcd last answered.
    pub read_at: Option<Instant>,
    /// Why the last read failed, if it did.
    pub error: Option<String>,
}

/// Milliseconds since the Unix epoch.
pub(super) fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Reads the election, the member records and the switchover key in one
/// transaction.
pub(super) fn read(client: &EtcdClient, keys: &Keys) -> Result<ClusterView, String> {
    let (election, election_end) = keys.election_range();
    let (members, members_end) = keys.members_range();
    let ops = [
        super::etcd::Op::Range {
            key: election,
            range_end: Some(election_end),
            limit: 0,
        },
        super::etcd::Op::Range {
            key: members,
            range_end: Some(members_end),
            limit: 0,
        },
        super::etcd::Op::get(keys.switchover()),
    ];
    let txn = client.txn(&[], &ops, &[]).map_err(|e| e.to_string())?;
    let range = |i: usize| match txn.responses.get(i) {
        Some(OpResponse::Range(r)) => Ok(&r.kvs),
        _ => Err("etcd's answer lacks a range".to_string()),
    };
    let mut candidates: Vec<(String, i64)> = range(0)?
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(&kv.value).into_owned(),
                kv.create_revision,
            )
        })
        .collect();
    candidates.sort_by_key(|(_, rev)| *rev);
    let members = range(1)?
        .iter()
        .filter_map(|kv| serde_json::from_slice::<MemberRecord>(&kv.value).ok())
        .collect();
    let switchover = range(2)?
        .first()
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned());
    Ok(ClusterView {
        leader: candidates
            .first()
            .map(|(url, rev)| (url.clone(), *rev as u64)),
        candidates,
        members,
        switchover,
        read_at: Some(Instant::now()),
        error: None,
    })
}

/// The view thread: reads the cluster every 100 ms, keeps `status` current
/// (who leads, for forwarding), and publishes this node's member record
/// when it changes (its applied position at most once a second) and at
/// least every 5 s.
pub(super) fn watch_cluster(
    engine: Engine,
    config: ClusterConfig,
    keys: Keys,
    status: Arc<NodeStatus>,
    stop: Arc<AtomicBool>,
) {
    let Ok(client) = EtcdClient::new(config.etcd.clone())
        .map(|c| c.with_request_timeout(Duration::from_millis(500)))
    else {
        return;
    };
    let own_key = keys.member(&config.advertise);
    let mut published: Option<(MemberRecord, i64, Instant)> = None;
    loop {
        match read(&client, &keys) {
            Ok(view) => {
                if status.role() != Role::Leader {
                    let leader = view
                        .leader
                        .as_ref()
                        .map(|(url, _)| url.clone())
                        .filter(|url| *url != config.advertise);
                    status.set_leader(leader);
                }
                status.set_view(view);
            }
            Err(e) => status.view_failed(e),
        }
        let session = status.session();
        if session != 0 {
            let record = MemberRecord {
                url: config.advertise.clone(),
                role: status.role().name().to_string(),
                epoch: status.epoch(),
                applied: engine.replicated_position(),
                snapshot: engine.snapshot_covers(),
                at_ms: wall_ms(),
            };
            let due = match &published {
                None => true,
                Some((last, lease, at)) => {
                    let same = |a: &MemberRecord, b: &MemberRecord| {
                        a.role == b.role && a.epoch == b.epoch && a.snapshot == b.snapshot
                    };
                    *lease != session
                        || !same(last, &record)
                        || (last.applied != record.applied
                            && at.elapsed() >= Duration::from_secs(1))
                        || at.elapsed() >= Duration::from_secs(5)
                }
            };
            if due {
                let value = serde_json::to_vec(&record).unwrap_or_default();
                if client.put(&own_key, &value, Some(session)).is_ok() {
                    published = Some((record, session, Instant::now()));
                }
            }
        }
        if pause(Duration::from_millis(100), &stop) {
            return;
        }
    }
}
