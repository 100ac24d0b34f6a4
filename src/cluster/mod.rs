//! High availability on etcd: a leader elected on etcd's keys and leases
//! appends journal batches to etcd in fenced transactions, and standbys
//! watch the log prefix. numpool runs no consensus of its own: it talks to
//! etcd with a small blocking client (`etcd`), over TLS and with etcd's
//! user authentication when configured. Most calls go through etcd's v3
//! JSON gateway on ureq; the two on the hot path, the leader's appends and
//! the standbys' watches of the log, go over etcd's gRPC API on HTTP/2,
//! which costs etcd about half the CPU (four messages encoded by hand: no
//! protoc).
//!
//! - `etcd`: the client.
//! - `log`: the log's keys in etcd, and the leader's fenced appends.
//! - `node`: one node's loop: follow, campaign, lead, step down, and keep
//!   the log in etcd short.
//! - `status`: what a node knows of itself and its cluster: [`Role`],
//!   [`NodeStatus`] (what the HTTP layer reads), [`ClusterStatus`].
//! - `session`: the node's lease, kept alive.
//! - `view`: the cluster as last read from etcd (members, leader,
//!   switchover), and this node's member record.
//! - `switchover`: handing leadership over on purpose.
//! - `follower`: a standby applying the log, and taking the leader's
//!   snapshot when too far behind.
//! - `peer`: requests from node to node (forwarding, snapshot fetches).
//! - `transport`: what both clients share on ureq: requests with per-stage
//!   timeouts, certificates from PEM files.

// The client covers the gateway's calls; the node uses part of them (the
// rest is exercised by its tests).
#[allow(dead_code)]
pub(crate) mod etcd;

pub use etcd::{EtcdAuth, EtcdConfig, EtcdError, EtcdTls};
pub use peer::{PeerError, Peers};
mod follower;
mod log;
mod node;
pub(crate) mod peer;
mod session;
mod status;
mod switchover;
mod transport;
mod view;

pub use node::{ClusterConfig, JoinError, Node, DEFAULT_LEASE_TTL, DEFAULT_MAX_LAG};
pub use status::{ClusterStatus, EtcdStatus, MemberStatus, NodeStatus, Role};
pub use switchover::SwitchoverError;
