//! The partition → shard table. Every shard holds a full copy; updates carry the metadata
//! revision that produced them and a copy ignores an update older than what it has, so
//! copies converge whatever order broadcasts arrive in.
//!
//! Placement spreads partitions evenly: a new partition goes to the shard that owns the
//! fewest. Placement is recorded in the metadata log by the broker, so a restart keeps it;
//! with a different shard count, a recorded shard that no longer exists is folded onto
//! `shard % count` (ownership moves, files stay where they are).

use std::collections::HashMap;

use crate::types::{ShardId, TopicId, TopicPartition};

/// Where one partition lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionEntry {
    pub topic_id: TopicId,
    /// The shard recorded at creation (kept even when the shard count shrinks).
    pub recorded_shard: ShardId,
}

/// A change to the table, stamped with the metadata revision (offset) that caused it.
#[derive(Clone, Debug)]
pub enum TableUpdate {
    Upsert {
        tp: TopicPartition,
        entry: PartitionEntry,
    },
    Remove {
        tp: TopicPartition,
    },
}

#[derive(Clone, Debug, Default)]
pub struct PartitionTable {
    revision: i64,
    shard_count: u16,
    entries: HashMap<TopicPartition, PartitionEntry>,
}

impl PartitionTable {
    pub fn new(shard_count: u16) -> Self {
        assert!(shard_count >= 1);
        PartitionTable {
            revision: -1,
            shard_count,
            entries: HashMap::new(),
        }
    }

    pub fn revision(&self) -> i64 {
        self.revision
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Apply updates made at `revision`. Returns false (and changes nothing) when this copy
    /// already reflects `revision` or a later one.
    pub fn apply(&mut self, revision: i64, updates: &[TableUpdate]) -> bool {
        if revision <= self.revision {
            return false;
        }
        for update in updates {
            match update {
                TableUpdate::Upsert { tp, entry } => {
                    self.entries.insert(tp.clone(), entry.clone());
                }
                TableUpdate::Remove { tp } => {
                    self.entries.remove(tp);
                }
            }
        }
        self.revision = revision;
        true
    }

    /// The shard that owns `tp` now: the recorded shard, folded onto the current count.
    pub fn shard_of(&self, tp: &TopicPartition) -> Option<ShardId> {
        self.entries
            .get(tp)
            .map(|e| fold(e.recorded_shard, self.shard_count))
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<&PartitionEntry> {
        self.entries.get(tp)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&TopicPartition, &PartitionEntry)> {
        self.entries.iter()
    }

    /// The partitions owned by `shard`.
    pub fn owned_by(&self, shard: ShardId) -> Vec<TopicPartition> {
        let mut tps: Vec<_> = self
            .entries
            .iter()
            .filter(|(_, e)| fold(e.recorded_shard, self.shard_count) == shard)
            .map(|(tp, _)| tp.clone())
            .collect();
        tps.sort();
        tps
    }

    /// Choose shards for `n` new partitions: each goes to the currently least-loaded shard
    /// (ties to the lowest id), counting the choices already made in this call.
    pub fn place(&self, n: usize) -> Vec<ShardId> {
        let mut load = vec![0usize; self.shard_count as usize];
        for e in self.entries.values() {
            load[fold(e.recorded_shard, self.shard_count).0 as usize] += 1;
        }
        place_on_loads(&mut load, n)
    }
}

fn fold(shard: ShardId, count: u16) -> ShardId {
    ShardId(shard.0 % count)
}

fn place_on_loads(load: &mut [usize], n: usize) -> Vec<ShardId> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let (i, _) = load
            .iter()
            .enumerate()
            .min_by_key(|(i, l)| (**l, *i))
            .expect("at least one shard");
        load[i] += 1;
        out.push(ShardId(i as u16));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(shard: u16) -> PartitionEntry {
        PartitionEntry {
            topic_id: TopicId::default(),
            recorded_shard: ShardId(shard),
        }
    }

    #[test]
    fn stale_updates_are_ignored() {
        let mut t = PartitionTable::new(2);
        let tp = TopicPartition::new("a", 0);
        assert!(t.apply(
            5,
            &[TableUpdate::Upsert {
                tp: tp.clone(),
                entry: entry(1)
            }]
        ));
        assert!(!t.apply(4, &[TableUpdate::Remove { tp: tp.clone() }]));
        assert!(!t.apply(5, &[TableUpdate::Remove { tp: tp.clone() }]));
        assert_eq!(t.shard_of(&tp), Some(ShardId(1)));
        assert!(t.apply(6, &[TableUpdate::Remove { tp: tp.clone() }]));
        assert_eq!(t.shard_of(&tp), None);
    }

    #[test]
    fn shrinking_shard_count_folds_ownership() {
        let mut t = PartitionTable::new(1);
        let tp = TopicPartition::new("a", 3);
        t.apply(
            1,
            &[TableUpdate::Upsert {
                tp: tp.clone(),
                entry: entry(3),
            }],
        );
        assert_eq!(t.shard_of(&tp), Some(ShardId(0)));
        assert_eq!(t.get(&tp).unwrap().recorded_shard, ShardId(3));
    }

    proptest! {
        /// Placement keeps shards within one partition of each other.
        #[test]
        fn placement_is_even(shards in 1u16..8, existing in 0usize..50, n in 0usize..200) {
            let mut t = PartitionTable::new(shards);
            let ups: Vec<_> = (0..existing)
                .map(|i| TableUpdate::Upsert { tp: TopicPartition::new("x", i as i32), entry: entry(0) })
                .collect();
            t.apply(1, &ups);
            let placed = t.place(n);
            prop_assert_eq!(placed.len(), n);
            let mut load = vec![0usize; shards as usize];
            load[0] = existing;
            for s in &placed { load[s.0 as usize] += 1; }
            // The pre-loaded shard 0 may stay above the rest; the others are balanced.
            let others: Vec<usize> = load[1..].to_vec();
            if let (Some(max), Some(min)) = (others.iter().max(), others.iter().min()) {
                prop_assert!(max - min <= 1);
            }
            prop_assert_eq!(load.iter().sum::<usize>(), existing + n);
        }
    }
}
