//! [`TtlCache`]: a map of things seen lately, for `Idempotency-Key` replies
//! and webhook event ids. Entries live `ttl`; the map holds at most
//! `capacity` bytes (keys, values and bookkeeping counted), oldest first
//! out, so memory stays bounded however many keys arrive and however long
//! they are.

use std::collections::{HashMap, VecDeque};

use parking_lot::Mutex;

use crate::Timestamp;

/// What an entry costs beyond its key: its value's heap bytes.
pub(crate) trait Weigh {
    /// Heap bytes the value holds.
    fn weight(&self) -> usize;
}

impl Weigh for () {
    fn weight(&self) -> usize {
        0
    }
}

/// Bytes an entry costs on top of its key (twice: map and queue) and value.
const OVERHEAD: usize = 96;

fn cost<V: Weigh>(key: &str, value: &V) -> usize {
    2 * key.len() + value.weight() + OVERHEAD
}

struct Entry<V> {
    at: Timestamp,
    /// Which insertion this is, so a queue slot only evicts its own entry.
    seq: u64,
    value: V,
}

struct Inner<V> {
    map: HashMap<String, Entry<V>>,
    order: VecDeque<(u64, String)>,
    bytes: usize,
    next_seq: u64,
}

/// A bounded, expiring map from string keys.
pub(crate) struct TtlCache<V> {
    inner: Mutex<Inner<V>>,
    ttl_ms: u64,
    capacity: usize,
}

impl<V: Clone + Weigh> TtlCache<V> {
    /// Entries live `ttl`; at most `capacity` bytes are held.
    pub(crate) fn new(ttl: std::time::Duration, capacity: usize) -> Self {
        TtlCache {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                order: VecDeque::new(),
                bytes: 0,
                next_seq: 0,
            }),
            ttl_ms: ttl.as_millis() as u64,
            capacity,
        }
    }

    /// Drops what is too old, then the oldest until the rest fits.
    fn prune(&self, inner: &mut Inner<V>, now: Timestamp) {
        while let Some((seq, key)) = inner.order.front() {
            let entry = inner.map.get(key).filter(|e| e.seq == *seq);
            let old = entry
                .is_none_or(|e| now.as_millis().saturating_sub(e.at.as_millis()) >= self.ttl_ms);
            if !old && inner.bytes <= self.capacity {
                break;
            }
            let (seq, key) = inner.order.pop_front().expect("front exists");
            if inner.map.get(&key).is_some_and(|e| e.seq == seq) {
                let entry = inner.map.remove(&key).expect("present");
                inner.bytes -= cost(&key, &entry.value);
            }
        }
    }

    /// The value stored for `key`, if still fresh.
    #[cfg(test)]
    pub(crate) fn get(&self, key: &str, now: Timestamp) -> Option<V> {
        let mut inner = self.inner.lock();
        self.prune(&mut inner, now);
        inner.map.get(key).map(|e| e.value.clone())
    }

    /// Stores `value` for `key` unless a fresh value is there; returns the
    /// value that was there (`None`: this call stored it). A value too big
    /// for the whole capacity is not stored (and `None` returned).
    fn insert_if_absent(&self, key: &str, value: V, now: Timestamp) -> Option<V> {
        let mut inner = self.inner.lock();
        self.prune(&mut inner, now);
        if let Some(existing) = inner.map.get(key) {
            return Some(existing.value.clone());
        }
        let c = cost(key, &value);
        if c > self.capacity {
            return None;
        }
        inner.next_seq += 1;
        let seq = inner.next_seq;
        inner.bytes += c;
        inner.map.insert(
            key.to_string(),
            Entry {
                at: now,
                seq,
                value,
            },
        );
        inner.order.push_back((seq, key.to_string()));
        self.prune(&mut inner, now);
        None
    }

    /// Claims `key` with `marker` (a request working on it), unless a fresh
    /// value is there: then that value. The claim forgets the key when it
    /// is dropped unsettled (the request ended without an answer to keep).
    pub(crate) fn claim<'a>(&'a self, key: &str, marker: V, now: Timestamp) -> Claim<'a, V> {
        match self.insert_if_absent(key, marker, now) {
            Some(existing) => Claim::Taken(existing),
            None => Claim::Fresh(Pending {
                recent: self,
                key: key.to_string(),
                now,
            }),
        }
    }

    /// Replaces the value of `key` (keeping its age), or removes it with `None`.
    pub(crate) fn set(&self, key: &str, value: Option<V>, now: Timestamp) {
        let mut inner = self.inner.lock();
        let Some(entry) = inner.map.get_mut(key) else {
            return;
        };
        let before = cost(key, &entry.value);
        match value {
            Some(v) => {
                let after = cost(key, &v);
                entry.value = v;
                inner.bytes = inner.bytes - before + after;
            }
            None => {
                inner.map.remove(key);
                inner.bytes -= before;
            }
        }
        self.prune(&mut inner, now);
    }

    /// Bytes held now.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.inner.lock().bytes
    }
}

/// The answer of [`TtlCache::claim`].
pub(crate) enum Claim<'a, V: Clone + Weigh> {
    /// The key is this request's now.
    Fresh(Pending<'a, V>),
    /// The key was there, with this value.
    Taken(V),
}

/// A claimed key: settle it with the value to keep, or it is forgotten.
pub(crate) struct Pending<'a, V: Clone + Weigh> {
    recent: &'a TtlCache<V>,
    key: String,
    now: Timestamp,
}

impl<V: Clone + Weigh> Pending<'_, V> {
    /// Keeps `value` for the key, or forgets the key with `None`.
    pub(crate) fn settle(self, value: Option<V>) {
        self.recent.set(&self.key, value, self.now);
        std::mem::forget(self);
    }
}

impl<V: Clone + Weigh> Drop for Pending<'_, V> {
    fn drop(&mut self) {
        self.recent.set(&self.key, None, self.now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    impl Weigh for u32 {
        fn weight(&self) -> usize {
            0
        }
    }

    #[test]
    fn entries_expire_and_bytes_bound_the_map() {
        let t = |s| Timestamp::from_secs(s);
        let one = cost("a", &1u32); // a one-byte key
        let recent = TtlCache::new(Duration::from_secs(10), 6 * one);
        assert_eq!(recent.insert_if_absent("a", 1u32, t(0)), None);
        assert_eq!(recent.insert_if_absent("a", 2, t(1)), Some(1));
        assert_eq!(recent.get("a", t(9)), Some(1));
        assert_eq!(recent.get("a", t(10)), None, "expired");
        for k in ["b", "c", "d", "e", "f", "g", "h"] {
            recent.insert_if_absent(k, 1, t(20));
        }
        assert_eq!(recent.get("b", t(20)), None, "the oldest went when full");
        assert_eq!(recent.get("h", t(20)), Some(1));
        assert_eq!(recent.bytes(), 6 * one);
        // A long key costs its length: it pushes more out.
        let long = "k".repeat(2 * one);
        recent.insert_if_absent(&long, 1, t(21));
        assert_eq!(recent.get(&long, t(21)), Some(1));
        assert!(recent.bytes() <= 6 * one, "{}", recent.bytes());
        assert_eq!(recent.get("c", t(21)), None);
        assert_eq!(recent.get("h", t(21)), Some(1));
        // Too big for the whole cache: not kept at all.
        let huge = "k".repeat(10 * one);
        assert_eq!(recent.insert_if_absent(&huge, 1, t(21)), None);
        assert_eq!(recent.get(&huge, t(21)), None);
        // Removing frees its bytes.
        let before = recent.bytes();
        recent.set(&long, None, t(21));
        assert_eq!(recent.bytes(), before - cost(&long, &1u32));
    }

    #[test]
    fn a_claim_dropped_unsettled_is_forgotten() {
        let t = Timestamp::from_secs(1);
        let recent = TtlCache::new(Duration::from_secs(10), 1 << 20);
        match recent.claim("k", 0u32, t) {
            Claim::Fresh(pending) => drop(pending),
            Claim::Taken(_) => panic!("new key"),
        }
        assert_eq!(recent.get("k", t), None);
        match recent.claim("k", 0u32, t) {
            Claim::Fresh(pending) => pending.settle(Some(7)),
            Claim::Taken(_) => panic!("forgotten key"),
        }
        assert!(matches!(recent.claim("k", 0u32, t), Claim::Taken(7)));
    }
}
