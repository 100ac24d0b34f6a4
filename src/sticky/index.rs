//! The recipient index of one shard: hash -> slab id, one `u32` per bucket.
//!
//! A general hash table would cost a sticky hit three dependent cache misses
//! (control bytes, the stored id, then the entry). Here a bucket word holds
//! an 8-bit tag from the hash next to a 24-bit id, so a hit is one miss for
//! the word and one for the entry, and a tag mismatch skips an entry without
//! reading it. Linear probing keeps a probe within one or two cache lines;
//! deletion shifts the following run back (no tombstones), so probe lengths
//! stay those of a table that never saw a deletion.

/// Ids must fit in 24 bits; the word stores `id + 1` so that 0 means empty.
pub const MAX_ID: u32 = 0x00FF_FFFE;
const ID_BITS: u32 = 24;
const ID_MASK: u32 = (1 << ID_BITS) - 1;
const MIN_CAPACITY: usize = 16;

#[inline]
fn tag(hash: u64) -> u32 {
    (hash >> 56) as u32
}

#[inline]
fn word(hash: u64, id: u32) -> u32 {
    (tag(hash) << ID_BITS) | (id + 1)
}

#[inline]
fn id_of(word: u32) -> u32 {
    (word & ID_MASK) - 1
}

/// Open-addressing index from a 64-bit hash to a slab id.
#[derive(Debug, Default, Clone)]
pub(super) struct Index {
    words: Box<[u32]>,
    len: usize,
}

impl Index {
    pub fn len(&self) -> usize {
        self.len
    }

    fn mask(&self) -> usize {
        self.words.len() - 1
    }

    /// The id stored under `hash` for which `is_key` holds.
    #[inline]
    pub fn find(&self, hash: u64, mut is_key: impl FnMut(u32) -> bool) -> Option<u32> {
        if self.words.is_empty() {
            return None;
        }
        let mask = self.mask();
        let t = tag(hash);
        let mut pos = hash as usize & mask;
        loop {
            let w = self.words[pos];
            if w == 0 {
                return None;
            }
            if w >> ID_BITS == t && is_key(id_of(w)) {
                return Some(id_of(w));
            }
            pos = (pos + 1) & mask;
        }
    }

    /// Whether one more id fits without growing.
    #[inline]
    pub fn has_room(&self) -> bool {
        // At most 7/8 full, so every probe ends at an empty word.
        (self.len + 1) * 8 <= self.words.len() * 7
    }

    /// Stores `id` under `hash`. The caller ensures room ([`Index::has_room`]
    /// or [`Index::rebuild`]) and that `id` is not stored yet.
    #[inline]
    pub fn insert(&mut self, hash: u64, id: u32) {
        debug_assert!(id <= MAX_ID && self.has_room());
        let mask = self.mask();
        let mut pos = hash as usize & mask;
        while self.words[pos] != 0 {
            pos = (pos + 1) & mask;
        }
        self.words[pos] = word(hash, id);
        self.len += 1;
    }

    /// Replaces the table with one of twice the capacity (at least enough
    /// for `entries`) holding exactly `entries` (`(id, hash)` pairs).
    pub fn rebuild(&mut self, entries: impl Iterator<Item = (u32, u64)>, count: usize) {
        let mut capacity = (self.words.len() * 2).max(MIN_CAPACITY);
        while (count + 1) * 8 > capacity * 7 {
            capacity *= 2;
        }
        self.words = vec![0; capacity].into_boxed_slice();
        self.len = 0;
        for (id, hash) in entries {
            self.insert(hash, id);
        }
    }

    /// Removes `id`, stored under `hash`. `home` gives the hash of any stored
    /// id (needed to shift the run that follows). Returns whether it was there.
    pub fn remove(&mut self, hash: u64, id: u32, home: impl Fn(u32) -> u64) -> bool {
        if self.words.is_empty() {
            return false;
        }
        let mask = self.mask();
        let target = word(hash, id);
        let mut hole = hash as usize & mask;
        loop {
            match self.words[hole] {
                0 => return false,
                w if w == target => break,
                _ => hole = (hole + 1) & mask,
            }
        }
        // Backward shift: move each later member of the run into the hole
        // unless its home lies cyclically in (hole, j].
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let w = self.words[j];
            if w == 0 {
                break;
            }
            let h = home(id_of(w)) as usize & mask;
            let stays = if hole <= j {
                hole < h && h <= j
            } else {
                hole < h || h <= j
            };
            if !stays {
                self.words[hole] = w;
                hole = j;
            }
        }
        self.words[hole] = 0;
        self.len -= 1;
        true
    }

    /// Bytes of heap the index holds.
    pub fn heap_bytes(&self) -> usize {
        self.words.len() * std::mem::size_of::<u32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Hashes chosen to collide on purpose: `h(k)` puts every key in one of
    /// four home buckets, with tags that often match.
    fn h(k: u64) -> u64 {
        ((k % 3) << 56) | (k % 4)
    }

    #[test]
    fn insert_find_remove_with_heavy_collisions() {
        let mut index = Index::default();
        let mut keys: HashMap<u32, u64> = HashMap::new();
        for k in 0..200u64 {
            if !index.has_room() {
                let entries: Vec<(u32, u64)> = keys.iter().map(|(&id, &k)| (id, h(k))).collect();
                index.rebuild(entries.into_iter(), keys.len());
            }
            let id = k as u32 * 2;
            index.insert(h(k), id);
            keys.insert(id, k);
        }
        assert_eq!(index.len(), 200);
        let find = |index: &Index, k: u64| index.find(h(k), |id| keys.get(&id) == Some(&k));
        for k in 0..200u64 {
            assert_eq!(find(&index, k), Some(k as u32 * 2));
        }
        assert_eq!(find(&index, 999), None);
        // Remove every third key; the rest stay findable after the shifts.
        for k in (0..200u64).step_by(3) {
            assert!(index.remove(h(k), k as u32 * 2, |id| h(keys[&id])));
        }
        assert!(!index.remove(h(0), 0, |id| h(keys[&id])));
        for k in 0..200u64 {
            let expected = (k % 3 != 0).then_some(k as u32 * 2);
            assert_eq!(find(&index, k), expected, "key {k}");
        }
        assert_eq!(index.len(), 200 - 67);
    }

    #[test]
    fn removal_across_the_wrap_around() {
        let mut index = Index::default();
        index.rebuild(std::iter::empty(), 0);
        let cap = index.words.len() as u64;
        // Three keys homed at the last bucket: they wrap to buckets 0 and 1.
        let hashes = [cap - 1, cap - 1 + (1 << 32), cap - 1 + (2 << 32)];
        for (id, hash) in hashes.iter().enumerate() {
            index.insert(*hash, id as u32);
        }
        let home = |id: u32| hashes[id as usize];
        assert!(index.remove(hashes[0], 0, home));
        assert_eq!(index.find(hashes[1], |id| id == 1), Some(1));
        assert_eq!(index.find(hashes[2], |id| id == 2), Some(2));
        assert_eq!(
            index.words[(cap - 1) as usize] & ID_MASK,
            2,
            "shifted back over the wrap"
        );
    }

    #[test]
    fn words_never_look_empty() {
        assert_ne!(word(0, 0), 0);
        assert_eq!(id_of(word(u64::MAX, MAX_ID)), MAX_ID);
    }
}
