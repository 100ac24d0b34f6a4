//! The cluster's log in etcd: its keys, and the leader's side of it.
//!
//! Under the prefix `/numpool/NAME/`: `election` (the election's name; the
//! leader key's value is the leader's advertised URL) and `log/` followed
//! by a 20-digit position, one key per batch of journal records, positions
//! counting up from 1 with no gap. A batch is the framed records the local
//! journal writes too (`journal::record`), cut at frame boundaries into
//! pieces that fit etcd's request limit, one position each.
//!
//! The log is kept short: each node publishes under `covered/` (on its
//! lease, so a node that is gone stops counting) the position its newest
//! snapshot holds, and the leader deletes the batches every published
//! snapshot holds, records in `log-start` the first position still in
//! etcd, and compacts etcd's history. A node whose files end before
//! `log-start` takes a snapshot from the leader instead (`Engine`'s
//! `install_snapshot`). Snapshots, not log files, count: they are synced,
//! so the log in etcd is never shortened past what a node could lose.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::etcd::{prefix_end, Compare, CompareResult, EtcdClient, EtcdError, LeaderKey, Op};
use crate::journal::record::FRAME_LEN;
use crate::journal::Replicator;

/// The largest piece of a batch one log key holds: well under etcd's
/// 1.5 MiB request limit, with room for the base64 and the transaction.
const PIECE: usize = 1 << 20;

/// The etcd keys of one cluster.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(super) fn new(cluster: &str) -> Keys {
        Keys {
            prefix: format!("/numpool/{cluster}/"),
        }
    }

    /// The election's name.
    pub(super) fn election(&self) -> Vec<u8> {
        format!("{}election", self.prefix).into_bytes()
    }

    /// The key of the batch at `position`.
    pub(super) fn batch(&self, position: u64) -> Vec<u8> {
        format!("{}log/{position:020}", self.prefix).into_bytes()
    }

    /// The prefix of every batch key, and its range end.
    pub(super) fn log_range(&self) -> (Vec<u8>, Vec<u8>) {
        let prefix = format!("{}log/", self.prefix).into_bytes();
        let end = prefix_end(&prefix);
        (prefix, end)
    }

    /// The first position of the log still in etcd (absent: 1).
    pub(super) fn log_start(&self) -> Vec<u8> {
        format!("{}log-start", self.prefix).into_bytes()
    }

    /// The prefix of every candidate's key in the election, and its range end.
    pub(super) fn election_range(&self) -> (Vec<u8>, Vec<u8>) {
        let mut prefix = self.election();
        prefix.push(b'/');
        let end = prefix_end(&prefix);
        (prefix, end)
    }

    /// Where the node advertised as `node` publishes its member record.
    pub(super) fn member(&self, node: &str) -> Vec<u8> {
        format!("{}member/{node}", self.prefix).into_bytes()
    }

    /// The prefix of every member record, and its range end.
    pub(super) fn members_range(&self) -> (Vec<u8>, Vec<u8>) {
        let prefix = format!("{}member/", self.prefix).into_bytes();
        let end = prefix_end(&prefix);
        (prefix, end)
    }

    /// The member a switchover under way hands leadership to.
    pub(super) fn switchover(&self) -> Vec<u8> {
        format!("{}switchover", self.prefix).into_bytes()
    }

    /// The position a batch key names.
    pub(super) fn position(&self, key: &[u8]) -> Option<u64> {
        let text = std::str::from_utf8(key).ok()?;
        text.strip_prefix(&format!("{}log/", self.prefix))?
            .parse()
            .ok()
    }
}

/// The first position of the log still in etcd.
pub(crate) fn log_start(client: &EtcdClient, keys: &Keys) -> Result<u64, EtcdError> {
    Ok(client
        .get(&keys.log_start())?
        .and_then(|kv| std::str::from_utf8(&kv.value).ok()?.parse().ok())
        .unwrap_or(1))
}

/// A new leader whose files hold position `position` that the log in etcd
/// does not (its data directory was made by `numpool restore`, or etcd
/// lost the log): moves the log's start past it, fenced on the leader key,
/// so that a standby holding less takes the leader's snapshot instead of
/// replaying a log that never held this state. Returns whether it moved.
pub(crate) fn seed_start(
    client: &EtcdClient,
    keys: &Keys,
    leader: &LeaderKey,
    position: u64,
) -> Result<bool, EtcdError> {
    if position == 0 || position < log_start(client, keys)? {
        return Ok(false);
    }
    if client.get(&keys.batch(position))?.is_some() {
        return Ok(false);
    }
    let moved = Op::put(keys.log_start(), (position + 1).to_string());
    Ok(client.txn(&[leader.fence()], &[moved], &[])?.succeeded)
}

/// The leader's upkeep of the log: deletes the batches that the snapshot of
/// every member holds (by their member records, this node's own among
/// them), fenced on the leader key, then compacts etcd's history. Returns
/// the new start, if it moved.
pub(crate) fn shorten(
    client: &EtcdClient,
    keys: &Keys,
    leader: &LeaderKey,
    own: &str,
) -> Result<Option<u64>, EtcdError> {
    let (from, to) = keys.members_range();
    let members = client.range(&from, Some(&to), 0)?;
    let own = keys.member(own);
    if !members.kvs.iter().any(|kv| kv.key == own) {
        return Ok(None);
    }
    let held = members
        .kvs
        .iter()
        .map(|kv| {
            serde_json::from_slice::<super::view::MemberRecord>(&kv.value).map_or(0, |m| m.snapshot)
        })
        .min()
        .unwrap_or(0);
    let start = log_start(client, keys)?;
    if held < start {
        return Ok(None);
    }
    let new_start = held + 1;
    let deletion = Op::DeleteRange {
        key: keys.batch(start),
        range_end: Some(keys.batch(new_start)),
    };
    let moved = Op::put(keys.log_start(), new_start.to_string());
    let txn = client.txn(&[leader.fence()], &[deletion, moved], &[])?;
    if !txn.succeeded {
        return Ok(None);
    }
    client.compact(txn.header_revision)?;
    Ok(Some(new_start))
}

/// `bytes` (whole framed records) cut at frame boundaries into pieces of
/// at most `max` bytes (a frame larger than that is a piece of its own).
pub(crate) fn pieces(bytes: &[u8], max: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let (mut start, mut at) = (0, 0);
    while at + FRAME_LEN <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let next = at + FRAME_LEN + len;
        if next - start > max && at > start {
            out.push(&bytes[start..at]);
            start = at;
        }
        at = next.min(bytes.len());
    }
    if start < bytes.len() {
        out.push(&bytes[start..]);
    }
    out
}

/// The leader's side of the log: commits each batch in a transaction that
/// holds only while this node's leader key is the one etcd has (its create
/// revision, the epoch), so a deposed leader's commit fails. Any failure
/// (deposed, or etcd not answering: the commit may or may not have landed)
/// ends this node's leadership: it steps down and follows the log again.
pub(crate) struct LogAppender {
    client: EtcdClient,
    keys: Keys,
    leader: LeaderKey,
    /// The position the next piece takes.
    next: AtomicU64,
    /// Leadership ended.
    lost: Arc<AtomicBool>,
}

impl LogAppender {
    pub(super) fn new(
        client: EtcdClient,
        keys: Keys,
        leader: LeaderKey,
        next: u64,
        lost: Arc<AtomicBool>,
    ) -> LogAppender {
        LogAppender {
            client,
            keys,
            leader,
            next: AtomicU64::new(next),
            lost,
        }
    }
}

impl Replicator for LogAppender {
    fn commit(&self, batch: &[u8]) -> Result<u64, String> {
        if self.lost.load(Ordering::Acquire) {
            return Err("this node no longer leads the cluster".into());
        }
        let mut position = 0;
        for piece in pieces(batch, PIECE) {
            position = self.next.load(Ordering::Acquire);
            let key = self.keys.batch(position);
            let compare = [
                self.leader.fence(),
                Compare::create_revision(key.clone(), CompareResult::Equal, 0),
            ];
            let outcome = self.client.txn_put(&compare, &key, piece);
            match outcome {
                Ok(r) if r.succeeded => {
                    self.next.store(position + 1, Ordering::Release);
                }
                Ok(_) => {
                    self.lost.store(true, Ordering::Release);
                    tracing::warn!(
                        position,
                        epoch = self.leader.rev,
                        "cluster: fenced: etcd refused this node's append; another node leads"
                    );
                    return Err("deposed: another node leads the cluster now".into());
                }
                Err(e) => {
                    self.lost.store(true, Ordering::Release);
                    return Err(format!("the cluster's log in etcd did not answer: {e}"));
                }
            }
        }
        Ok(position)
    }

    fn abandon(&self) {
        self.lost.store(true, Ordering::Release);
    }

    fn probe(&self) -> bool {
        !self.lost.load(Ordering::Acquire)
            && matches!(self.client.get(&self.leader.key), Ok(Some(kv)) if kv.create_revision == self.leader.rev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::record::{encode, Record};

    #[test]
    fn keys_name_positions_in_order() {
        let keys = Keys::new("east");
        assert_eq!(
            keys.batch(7),
            b"/numpool/east/log/00000000000000000007".to_vec()
        );
        assert_eq!(keys.position(&keys.batch(123)), Some(123));
        assert_eq!(keys.position(b"/numpool/west/log/1"), None);
        assert!(keys.batch(9) < keys.batch(10), "keys sort as positions do");
    }

    #[test]
    fn batches_are_cut_at_record_boundaries() {
        let mut bytes = Vec::new();
        for _ in 0..10 {
            encode(&Record::Replicated { position: 1 }, &mut bytes);
        }
        let one = bytes.len() / 10;
        let cut = pieces(&bytes, one * 3);
        assert_eq!(
            cut.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [3 * one, 3 * one, 3 * one, one]
        );
        assert_eq!(cut.concat(), bytes);
        assert_eq!(
            pieces(&bytes, 1).len(),
            10,
            "a record larger than the limit stands alone"
        );
        assert!(pieces(&[], 10).is_empty());
    }
}
