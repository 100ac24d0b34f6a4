//! [`Recent`]: a bounded map of things seen lately, for `Idempotency-Key`
//! replies and webhook event ids. Entries live `ttl`; when full, the oldest
//! goes first, so memory stays bounded however many keys arrive.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use parking_lot::Mutex;

use crate::Timestamp;

struct Inner<K, V> {
    map: HashMap<K, (Timestamp, V)>,
    order: VecDeque<(Timestamp, K)>,
}

/// A bounded, expiring map.
pub struct Recent<K, V> {
    inner: Mutex<Inner<K, V>>,
    ttl_ms: u64,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> Recent<K, V> {
    pub fn new(ttl: std::time::Duration, capacity: usize) -> Self {
        Recent {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                order: VecDeque::new(),
            }),
            ttl_ms: ttl.as_millis() as u64,
            capacity: capacity.max(1),
        }
    }

    fn prune(&self, inner: &mut Inner<K, V>, now: Timestamp) {
        while let Some((at, key)) = inner.order.front() {
            let old = now.as_millis().saturating_sub(at.as_millis()) >= self.ttl_ms;
            if !old && inner.order.len() < self.capacity {
                break;
            }
            // Only remove the map entry if it is the one this queue slot recorded.
            if inner.map.get(key).is_some_and(|(t, _)| t == at) {
                inner.map.remove(key);
            }
            inner.order.pop_front();
        }
    }

    /// The value stored for `key`, if still fresh.
    #[cfg(test)]
    pub fn get(&self, key: &K, now: Timestamp) -> Option<V> {
        let mut inner = self.inner.lock();
        self.prune(&mut inner, now);
        inner.map.get(key).map(|(_, v)| v.clone())
    }

    /// Stores `value` for `key` unless a fresh value is there; returns the
    /// value that was there (`None`: this call stored it).
    pub fn insert_if_absent(&self, key: K, value: V, now: Timestamp) -> Option<V> {
        let mut inner = self.inner.lock();
        self.prune(&mut inner, now);
        if let Some((_, existing)) = inner.map.get(&key) {
            return Some(existing.clone());
        }
        inner.map.insert(key.clone(), (now, value));
        inner.order.push_back((now, key));
        None
    }

    /// Replaces the value of `key` (keeping its age), or removes it with `None`.
    pub fn set(&self, key: &K, value: Option<V>) {
        let mut inner = self.inner.lock();
        match value {
            Some(v) => {
                if let Some(entry) = inner.map.get_mut(key) {
                    entry.1 = v;
                }
            }
            None => {
                inner.map.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn entries_expire_and_capacity_bounds() {
        let recent = Recent::new(Duration::from_secs(10), 2);
        let t = |s| Timestamp::from_secs(s);
        assert_eq!(recent.insert_if_absent("a", 1, t(0)), None);
        assert_eq!(recent.insert_if_absent("a", 2, t(1)), Some(1));
        assert_eq!(recent.get(&"a", t(9)), Some(1));
        assert_eq!(recent.get(&"a", t(10)), None, "expired");
        recent.insert_if_absent("b", 1, t(20));
        recent.insert_if_absent("c", 1, t(21));
        recent.insert_if_absent("d", 1, t(22));
        assert_eq!(recent.get(&"b", t(22)), None, "evicted when full");
        assert_eq!(recent.get(&"d", t(22)), Some(1));
    }
}
