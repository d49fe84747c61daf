//! The per-shard cache of closed segments' indexes. A sealed segment keeps only a summary
//! of its indexes in memory (its largest timestamp); the entries live in its `.index` and
//! `.timeindex` files, are read on the first lookup, and stay resident here, least recently
//! used first out, within a count and a byte bound per shard. So the memory of idle
//! partitions does not grow with the number of segments they hold (issue 2: an idle
//! partition costs at most 64 KiB).

use std::collections::BTreeMap;
use std::rc::Rc;

use super::index::SegmentIndex;
use super::{segment_file_name, Log};
use crate::storage::{self, Storage};

/// Defaults per shard: enough for every partition a cold reader sweeps at once.
pub const INDEX_CACHE_ENTRIES_MAX: usize = 1024;
pub const INDEX_CACHE_BYTES_MAX: usize = 64 << 20;

/// A closed segment: (log id within the shard, base offset).
pub type IndexKey = (u64, i64);

#[derive(Debug)]
pub struct IndexCache {
    entries_max: usize,
    bytes_max: usize,
    bytes: usize,
    tick: u64,
    /// Index and its last use.
    map: BTreeMap<IndexKey, (Rc<SegmentIndex>, u64)>,
    /// Last use → key: the eviction order.
    lru: BTreeMap<u64, IndexKey>,
    /// Indexes read from files so far (tests, metrics).
    loads: u64,
}

impl IndexCache {
    pub fn new(entries_max: usize, bytes_max: usize) -> Self {
        assert!(
            entries_max >= 1,
            "the index cache must hold at least one index"
        );
        IndexCache {
            entries_max,
            bytes_max,
            bytes: 0,
            tick: 0,
            map: BTreeMap::new(),
            lru: BTreeMap::new(),
            loads: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn loads(&self) -> u64 {
        self.loads
    }

    /// The resident index of `key`, marked as just used.
    pub fn get(&mut self, key: IndexKey) -> Option<Rc<SegmentIndex>> {
        self.tick += 1;
        let tick = self.tick;
        let (index, used) = self.map.get_mut(&key)?;
        let old = std::mem::replace(used, tick);
        let index = index.clone();
        let moved = self.lru.remove(&old);
        debug_assert_eq!(moved, Some(key));
        self.lru.insert(tick, key);
        Some(index)
    }

    /// Makes `index` (just read from files) resident, evicting the least recently used
    /// beyond the bounds. An index larger than the whole byte bound is not kept.
    pub fn insert(&mut self, key: IndexKey, index: Rc<SegmentIndex>) {
        self.loads += 1;
        self.remove(key);
        let bytes = index.resident_bytes();
        if bytes > self.bytes_max {
            return;
        }
        while self.map.len() + 1 > self.entries_max || self.bytes + bytes > self.bytes_max {
            let Some((_, oldest)) = self.lru.first_key_value() else {
                break;
            };
            self.remove(*oldest);
        }
        self.tick += 1;
        self.map.insert(key, (index, self.tick));
        self.lru.insert(self.tick, key);
        self.bytes += bytes;
        debug_assert!(self.map.len() <= self.entries_max && self.bytes <= self.bytes_max);
        debug_assert_eq!(self.map.len(), self.lru.len());
    }

    /// Forgets one segment's index (deleted, truncated, or sealed again).
    pub fn remove(&mut self, key: IndexKey) {
        if let Some((index, used)) = self.map.remove(&key) {
            self.bytes -= index.resident_bytes();
            let gone = self.lru.remove(&used);
            debug_assert_eq!(gone, Some(key));
        }
    }

    /// Forgets every index of one log (closed or deleted).
    pub fn remove_log(&mut self, log_id: u64) {
        let keys: Vec<IndexKey> = self
            .map
            .range((log_id, i64::MIN)..=(log_id, i64::MAX))
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            self.remove(key);
        }
    }
}

impl<S: Storage> Log<S> {
    /// The index entries of the sealed (finalized) segment `base` of `size` bytes: resident
    /// in the shard's cache, or read from its files and kept there. `None` when the files
    /// are gone or inconsistent, or the segment changed meanwhile (deleted by retention,
    /// truncated): the caller then scans the segment from its start, always correct.
    pub(super) async fn closed_index(&self, base: i64, size: u64) -> Option<Rc<SegmentIndex>> {
        let key = (self.log_id, base);
        if let Some(index) = self.budgets.indexes.borrow_mut().get(key) {
            return Some(index);
        }
        let version = self.inner.borrow().truncations;
        let read = |ext: &'static str| {
            let path = self.dir.join(segment_file_name(base, ext));
            async move { storage::read_file(&self.storage, &path).await }
        };
        let offsets = read("index").await;
        let times = read("timeindex").await;
        let (Ok(Some(offsets)), Ok(Some(times))) = (offsets, times) else {
            return None;
        };
        let Some(index) = SegmentIndex::decode(&offsets, &times, size) else {
            tracing::warn!(dir = %self.dir.display(), base, "inconsistent index files; scanning the segment instead");
            return None;
        };
        // Only an index of the segment as it still is may be used and kept.
        let current = {
            let inner = self.inner.borrow();
            inner.truncations == version
                && inner
                    .segments
                    .get(&base)
                    .is_some_and(|s| s.finalized && s.size == size)
        };
        if !current {
            return None;
        }
        let index = Rc::new(index);
        self.budgets.indexes.borrow_mut().insert(key, index.clone());
        Some(index)
    }

    /// Drops the cached index of segment `base` (it was deleted, truncated or re-sealed).
    pub(super) fn forget_index(&self, base: i64) {
        self.budgets
            .indexes
            .borrow_mut()
            .remove((self.log_id, base));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(entries: u32) -> Rc<SegmentIndex> {
        let mut i = SegmentIndex::new();
        for e in 0..entries {
            i.offsets.push((e + 1, e * 100 + 1));
        }
        i.offsets.shrink_to_fit();
        Rc::new(i)
    }

    #[test]
    fn evicts_least_recently_used_within_count_and_bytes() {
        let mut c = IndexCache::new(3, 10_000);
        // 1,600 bytes each.
        for b in 0..3 {
            c.insert((1, b), index(200));
        }
        assert_eq!(c.len(), 3);
        // Touch 0: 1 is now the oldest.
        assert!(c.get((1, 0)).is_some());
        c.insert((2, 7), index(200));
        assert_eq!(c.len(), 3);
        assert!(c.get((1, 1)).is_none());
        assert!(c.get((1, 0)).is_some() && c.get((1, 2)).is_some() && c.get((2, 7)).is_some());
        // Byte bound: one big index (8,000 bytes) pushes out the two oldest.
        let big = index(1000);
        assert_eq!(big.resident_bytes(), 8_000);
        c.insert((3, 0), big);
        assert_eq!(c.bytes(), 9_600);
        assert_eq!(c.len(), 2);
        assert!(c.get((3, 0)).is_some() && c.get((2, 7)).is_some());
        // Too big for the bound at all: not kept.
        c.insert((4, 0), index(5000));
        assert!(c.get((4, 0)).is_none());
        c.remove_log(3);
        assert_eq!(c.len(), 1);
        c.remove_log(2);
        assert!(c.is_empty());
        assert_eq!(c.bytes(), 0);
        assert_eq!(c.loads(), 6);
    }
}
