//! Following the leader's log: a standby applies every batch in order,
//! first what etcd already holds (a range read, [`catch_up`]), then each
//! batch as a watch delivers it; a node whose files end before the log in
//! etcd starts takes the leader's snapshot first ([`take_snapshot`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures::executor::block_on;

use super::etcd::{EtcdClient, EtcdError, EventKind, WatchEnd, WatchOptions, REWATCH_AFTER};
use super::log::{self, Keys};
use super::node::{pause, ClusterConfig};
use super::peer;
use super::status::{NodeStatus, Role};
use crate::engine::Engine;
use crate::journal::record::Records;

/// Why a node could not catch up with the log.
#[derive(Debug)]
pub(super) enum CatchUpError {
    Etcd(EtcdError),
    /// The log in etcd starts at `start`, after the end of this node's files.
    Behind {
        start: u64,
    },
}

impl From<EtcdError> for CatchUpError {
    fn from(e: EtcdError) -> Self {
        CatchUpError::Etcd(e)
    }
}

/// Applies every batch of the log after the local position, reading it from
/// etcd in pages; returns the revision the last read was at.
pub(super) fn catch_up(
    engine: &Engine,
    client: &EtcdClient,
    keys: &Keys,
    status: &NodeStatus,
    stop: &AtomicBool,
) -> Result<i64, CatchUpError> {
    let (_, end) = keys.log_range();
    let writer = engine.journal_writer().expect("a cluster node journals");
    let start = log::log_start(client, keys)?;
    status.log_start.store(start, Ordering::Release);
    if writer.replicated() + 1 < start {
        return Err(CatchUpError::Behind { start });
    }
    loop {
        let from = keys.batch(writer.replicated() + 1);
        // Pages of a few batches: a batch holds up to 1 MiB.
        let page = client.range(&from, Some(&end), 16)?;
        for kv in &page.kvs {
            if stop.load(Ordering::Acquire) {
                return Err(EtcdError::Cancelled.into());
            }
            apply(engine, keys, &kv.key, &kv.value, status)?;
        }
        if !page.more {
            return Ok(page.header_revision);
        }
    }
}

/// Applies one batch read from the log (skipping one the local files hold).
fn apply(
    engine: &Engine,
    keys: &Keys,
    key: &[u8],
    value: &[u8],
    status: &NodeStatus,
) -> Result<(), EtcdError> {
    let Some(position) = keys.position(key) else {
        return Ok(());
    };
    status.head.fetch_max(position, Ordering::AcqRel);
    let writer = engine.journal_writer().expect("a cluster node journals");
    let applied = writer.replicated();
    if position <= applied {
        return Ok(());
    }
    if position != applied + 1 {
        return Err(EtcdError::Malformed(format!(
            "the cluster's log jumps from position {applied} to {position}"
        )));
    }
    let mut decoded = Records::new(value);
    let records: Vec<_> = decoded.by_ref().collect();
    if decoded.valid() != value.len() {
        return Err(EtcdError::Malformed(format!(
            "the batch at position {position} of the cluster's log does not decode whole"
        )));
    }
    block_on(engine.apply_replicated(records, position))
        .map_err(|e| EtcdError::Malformed(format!("applying position {position}: {e}")))
}

/// A standby following the log on a thread of its own.
pub(super) struct Follower {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// How long a watch waits with nothing to deliver before its thread looks
/// whether to stop (a node elected stops following within this).
const WATCH_WINDOW: Duration = Duration::from_millis(200);

impl Follower {
    pub(super) fn start(
        engine: Engine,
        config: &ClusterConfig,
        keys: Keys,
        status: Arc<NodeStatus>,
    ) -> Follower {
        let stop = Arc::new(AtomicBool::new(false));
        let (s, c) = (Arc::clone(&stop), config.clone());
        let thread = std::thread::Builder::new()
            .name("numpool-follower".into())
            .spawn(move || follow(engine, c, keys, status, s))
            .expect("a thread starts");
        Follower { stop, thread }
    }

    /// Stops following; returns once nothing more is applied (within a
    /// watch window).
    pub(super) fn stop(self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.thread.join();
    }
}

fn follow(
    engine: Engine,
    config: ClusterConfig,
    keys: Keys,
    status: Arc<NodeStatus>,
    stop: Arc<AtomicBool>,
) {
    let (prefix, end) = keys.log_range();
    while !stop.load(Ordering::Acquire) {
        let Ok(client) = EtcdClient::new(config.etcd.clone()) else {
            return;
        };
        let revision = match catch_up(&engine, &client, &keys, &status, &stop) {
            Ok(r) => {
                if status.role() == Role::Starting {
                    status.set_role(Role::Standby);
                }
                r
            }
            Err(CatchUpError::Behind { start }) => {
                match take_snapshot(&engine, &status, &config, start - 1) {
                    Ok(position) => tracing::info!(
                        position,
                        "cluster: took the leader's snapshot; following on from it"
                    ),
                    Err(e) => {
                        tracing::warn!(log_start = start, error = %e, "cluster: this node's files end before the cluster's log in etcd starts, and the leader's snapshot could not be taken");
                        if pause(Duration::from_secs(1), &stop) {
                            return;
                        }
                    }
                }
                continue;
            }
            Err(CatchUpError::Etcd(_)) => {
                if pause(Duration::from_millis(200), &stop) {
                    return;
                }
                continue;
            }
        };
        // Watch after watch (each kept while the log is quiet, up to
        // `REWATCH_AFTER`) from where the last one ended; any trouble (an
        // error, a batch that does not apply, a compaction) starts over
        // from catching up.
        let mut next = revision + 1;
        while !stop.load(Ordering::Acquire) {
            let options = WatchOptions {
                range_end: Some(end.clone()),
                start_revision: Some(next),
                window: WATCH_WINDOW,
                ..Default::default()
            };
            let mut failed = false;
            // One watch while the log is quiet, asking every window whether
            // to stop: a new one would start at the last batch, and etcd
            // would catch it up with a pass over every change since. Made
            // again after a while all the same (a connection that died
            // without a word).
            let started = Instant::now();
            let ended = client.watch_while(
                &prefix,
                &options,
                |message| {
                    for event in message.events.iter().filter(|e| e.kind == EventKind::Put) {
                        if apply(&engine, &keys, &event.kv.key, &event.kv.value, &status).is_err() {
                            failed = true;
                            return false;
                        }
                    }
                    !stop.load(Ordering::Acquire)
                },
                || !stop.load(Ordering::Acquire) && started.elapsed() < REWATCH_AFTER,
            );
            match ended {
                Ok(WatchEnd::Paused { next: n }) if !failed => next = n,
                _ => {
                    if pause(Duration::from_millis(50), &stop) {
                        return;
                    }
                    break;
                }
            }
        }
    }
}

/// The largest snapshot a node takes from its leader (a guard against a
/// peer sending without end; 10M mappings take about 400 MB).
const MAX_SNAPSHOT_BYTES: u64 = 64 << 30;

/// Fetches the leader's snapshot holding the log at least up to `at_least`
/// (streamed to a file in the data directory, its size bounded and its
/// checksum checked) and puts it in place of this node's state; returns
/// the position it holds.
fn take_snapshot(
    engine: &Engine,
    status: &NodeStatus,
    config: &ClusterConfig,
    at_least: u64,
) -> Result<u64, String> {
    let leader = status
        .leader()
        .filter(|l| *l != config.advertise)
        .ok_or("no other node leads yet to take a snapshot from")?;
    let request = peer::Request {
        method: "GET".into(),
        path_and_query: format!("/cluster/snapshot?at_least={at_least}"),
        headers: config
            .api_key
            .iter()
            .map(|k| ("Authorization".to_string(), format!("Bearer {k}")))
            .collect(),
        body: Vec::new(),
    };
    let incoming = engine
        .data_dir()
        .ok_or("this node keeps no files")?
        .join("snapshot-incoming.tmp");
    let fetched = status
        .peers()
        .fetch_to_file(
            &leader,
            &request,
            Duration::from_secs(600),
            &incoming,
            MAX_SNAPSHOT_BYTES,
        )
        .map_err(|e| format!("the leader {leader} did not give its snapshot: {e}"));
    let result = (|| {
        let (code, size, crc, error) = fetched?;
        if code != 200 {
            let detail = String::from_utf8_lossy(&error[..error.len().min(300)]).into_owned();
            return Err(format!("the leader {leader} answered {code}: {detail}"));
        }
        let bytes =
            std::fs::read(&incoming).map_err(|e| format!("reading the snapshot fetched: {e}"))?;
        if crc.is_some_and(|c| c != crc32fast::hash(&bytes)) || bytes.len() as u64 != size {
            return Err(format!(
                "the snapshot {leader} gave does not match its checksum"
            ));
        }
        match crate::journal::snapshot::examine(&bytes) {
            Some((_, position)) if position >= at_least => {}
            Some((_, position)) => {
                return Err(format!(
                    "the leader's snapshot holds the log up to {position} only, not {at_least}"
                ))
            }
            None => return Err(format!("the snapshot {leader} gave is not whole")),
        }
        block_on(engine.install_snapshot(&bytes))
            .map_err(|e| format!("the leader's snapshot could not be put in place: {e}"))
    })();
    let _ = std::fs::remove_file(&incoming);
    result
}
