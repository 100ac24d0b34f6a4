//! Leader election on etcd's keys and leases, as etcd's own `concurrency`
//! package does it on the client side: each candidate puts a key
//! `<election>/<its lease in hex>` on its lease; the oldest key (the least
//! create revision) leads, and its create revision is the leader's epoch.
//! A leader that stops renewing its lease loses its key with it; one that
//! resigns deletes it; the next oldest then leads. Ordering and fencing are
//! etcd's: create revisions, and transactions that compare them.

use std::time::{Duration, Instant};

use serde_json::json;

use super::json::{b64, RangeJson};
use super::watch::{WatchOptions, REWATCH_AFTER};
use super::{Compare, CompareResult, EtcdClient, EtcdError, KeyValue, LeaderKey, Op};

impl EtcdClient {
    /// The key a candidate with `lease` takes in election `name`.
    fn candidate_key(name: &[u8], lease: i64) -> Vec<u8> {
        let mut key = name.to_vec();
        key.extend_from_slice(format!("/{lease:x}").as_bytes());
        key
    }

    /// The oldest key under `prefix` (the least create revision), and the
    /// revision it was read at.
    fn oldest(&self, prefix: &[u8]) -> Result<(Option<KeyValue>, i64), EtcdError> {
        let end = super::prefix_end(prefix);
        let body = json!({
            "key": b64::encode(prefix),
            "range_end": b64::encode(&end),
            "limit": "1",
            "sort_order": "ASCEND",
            "sort_target": "CREATE",
        });
        let r = self.post::<RangeJson>("/v3/kv/range", &body)?.into_result();
        Ok((r.kvs.into_iter().next(), r.header_revision))
    }

    /// Campaigns in election `name` with `lease` (kept alive by the caller)
    /// and `value` (this node's address): puts the candidate's key once
    /// (campaigning again with the same lease keeps its place in line),
    /// then asks whether it is the oldest key, i.e. leads, each time a
    /// candidate's key changes (it watches them: a key deleted by a
    /// resignation or a lapsed lease is seen at once) and at least every
    /// `recheck`, when `withdraw` is asked too: when it says so, the key is
    /// deleted and `Ok(None)` returned. An error when the key is gone (the
    /// lease lapsed) or etcd does not answer.
    pub(crate) fn campaign(
        &self,
        name: &[u8],
        lease: i64,
        value: &[u8],
        recheck: Duration,
        withdraw: &dyn Fn() -> bool,
    ) -> Result<Option<LeaderKey>, EtcdError> {
        let key = Self::candidate_key(name, lease);
        let put = Op::Put {
            key: key.clone(),
            value: value.to_vec(),
            lease: Some(lease),
        };
        let absent = Compare::create_revision(key.clone(), CompareResult::Equal, 0);
        self.txn(&[absent], &[put], &[Op::get(key.clone())])?;
        let mine = self
            .get(&key)?
            .ok_or(EtcdError::LeaseLost(lease))?
            .create_revision;
        let mut prefix = name.to_vec();
        prefix.push(b'/');
        let leader = LeaderKey {
            name: name.to_vec(),
            key: key.clone(),
            rev: mine,
            lease,
        };
        loop {
            if withdraw() {
                self.resign(&leader)?;
                return Ok(None);
            }
            let (oldest, read_at) = self.oldest(&prefix)?;
            match oldest {
                Some(kv) if kv.key == key && kv.create_revision == mine => return Ok(Some(leader)),
                Some(_) => {}
                None => return Err(EtcdError::LeaseLost(lease)),
            }
            // Still in line only while the key is there.
            if self.get(&key)?.is_none_or(|kv| kv.create_revision != mine) {
                return Err(EtcdError::LeaseLost(lease));
            }
            // Until a candidate's key changes after that read (the first
            // change ends the watch; the candidate's own key is one of
            // them), asking `withdraw` every `recheck`. One watch for the
            // whole wait: each new one starts in the past (the log's appends
            // move etcd's revision on), which etcd catches up with a pass
            // over every change since, up to 100 ms later. It is made again
            // after a while all the same, in case its connection died
            // without a word.
            let since = WatchOptions {
                range_end: Some(super::prefix_end(&prefix)),
                start_revision: Some(read_at + 1),
                window: recheck,
                ..WatchOptions::default()
            };
            let started = Instant::now();
            self.watch_while(
                &prefix,
                &since,
                |_| false,
                || !withdraw() && started.elapsed() < REWATCH_AFTER,
            )?;
        }
    }

    /// The current leader of election `name`: its key (whose create
    /// revision is the epoch) and value; `None` when there is none.
    pub(crate) fn leader(&self, name: &[u8]) -> Result<Option<KeyValue>, EtcdError> {
        let mut prefix = name.to_vec();
        prefix.push(b'/');
        Ok(self.oldest(&prefix)?.0)
    }

    /// Gives up leadership (or a place in line): deletes the key if it is
    /// still the one elected with (a no-op otherwise); the next candidate
    /// leads at once.
    pub(crate) fn resign(&self, leader: &LeaderKey) -> Result<(), EtcdError> {
        let delete = Op::delete(leader.key.clone());
        self.txn(&[leader.fence()], &[delete], &[])?;
        Ok(())
    }
}
