//! A node's session with etcd: one lease, kept alive every third of its
//! TTL, that the node campaigns on and publishes its member record on.
//! The session ends when a renewal has not succeeded for a whole TTL (etcd
//! unreachable, or the process was paused) or etcd says the lease is gone;
//! leadership held on it ends with it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::etcd::{EtcdClient, EtcdConfig, EtcdError};
use super::node::{pause, ClusterConfig};
use super::status::NodeStatus;

/// A live lease and the thread that keeps it alive.
pub(super) struct Session {
    /// The lease's id.
    pub id: i64,
    alive: Arc<AtomicBool>,
    keepalive: Option<JoinHandle<()>>,
}

impl Session {
    /// Grants a lease and starts keeping it alive; retries until etcd
    /// grants one. `None` once asked to stop.
    pub(super) fn open(
        config: &ClusterConfig,
        status: &Arc<NodeStatus>,
        stop: &AtomicBool,
    ) -> Option<Session> {
        let asked = config.lease_ttl.max(Duration::from_secs(1));
        let mut warned = false;
        loop {
            if stop.load(Ordering::Acquire) {
                return None;
            }
            let grant = EtcdClient::new(config.etcd.clone()).and_then(|c| {
                let sent = Instant::now();
                c.lease_grant(asked.as_secs() as i64).map(|g| (g, sent))
            });
            let (grant, sent) = match grant {
                Ok(g) => g,
                Err(e) => {
                    if !warned {
                        tracing::warn!(error = %e, "cluster: etcd grants no lease; retrying");
                        warned = true;
                    }
                    if pause(Duration::from_millis(500), stop) {
                        return None;
                    }
                    continue;
                }
            };
            let granted = Duration::from_secs(grant.ttl.max(1) as u64);
            if granted > asked {
                // etcd's minimum lease is 1.5 x its election timeout: a
                // failover then takes this long, not what was asked.
                tracing::warn!(
                    asked_secs = asked.as_secs(),
                    granted_secs = granted.as_secs(),
                    "cluster: etcd raised the lease TTL to its minimum (1.5 x its election timeout); failovers take that long"
                );
            }
            let ttl = asked.min(granted);
            status.lease_renewed(sent, ttl, true);
            let alive = Arc::new(AtomicBool::new(true));
            let keepalive = {
                let (alive, etcd, status) =
                    (Arc::clone(&alive), config.etcd.clone(), Arc::clone(status));
                let id = grant.id;
                std::thread::Builder::new()
                    .name("numpool-lease".into())
                    .spawn(move || keep_alive(etcd, id, ttl, status, alive))
                    .ok()?
            };
            return Some(Session {
                id: grant.id,
                alive,
                keepalive: Some(keepalive),
            });
        }
    }

    /// Whether the lease is still surely alive.
    pub(super) fn alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Stops renewing; with `revoke`, also revokes the lease (deleting the
    /// keys on it: this node's candidacy, leader key and member record) so
    /// that nobody waits for it to expire.
    pub(super) fn close(mut self, client: Option<&EtcdClient>) {
        self.alive.store(false, Ordering::Release);
        if let Some(t) = self.keepalive.take() {
            let _ = t.join();
        }
        if let Some(client) = client {
            let _ = client.lease_revoke(self.id);
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::Release);
        if let Some(t) = self.keepalive.take() {
            let _ = t.join();
        }
    }
}

/// Renews `lease` every third of `ttl`, noting each renewal on `status`;
/// clears `alive` once renewals have failed for a whole `ttl` (the lease
/// may be gone) or etcd says it is gone.
fn keep_alive(
    etcd: EtcdConfig,
    lease: i64,
    ttl: Duration,
    status: Arc<NodeStatus>,
    alive: Arc<AtomicBool>,
) {
    let every = ttl / 3;
    let Ok(client) = EtcdClient::new(etcd)
        .map(|c| c.with_request_timeout(every.max(Duration::from_millis(200))))
    else {
        alive.store(false, Ordering::Release);
        return;
    };
    let mut last_ok = Instant::now();
    while alive.load(Ordering::Acquire) {
        let sent = Instant::now();
        match client.lease_keepalive(lease) {
            Ok(granted) => {
                // Counted from the sending: etcd renewed it no earlier.
                last_ok = sent;
                status.lease_renewed(
                    sent,
                    ttl.min(Duration::from_secs(granted.max(1) as u64)),
                    false,
                );
            }
            Err(EtcdError::LeaseLost(_)) => {
                tracing::warn!(lease, "cluster: etcd says this node's lease is gone");
                break;
            }
            Err(e) if last_ok.elapsed() >= ttl => {
                tracing::warn!(lease, error = %e, ttl_ms = ttl.as_millis() as u64, "cluster: lease not renewed for a whole TTL");
                break;
            }
            Err(_) => {}
        }
        let next = last_ok + every;
        while Instant::now() < next && alive.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    alive.store(false, Ordering::Release);
}
