//! The leader-epoch cache (KIP-101/279): epoch -> first offset written in it, as Kafka's
//! `LeaderEpochFileCache`, with its checkpoint text format (`leader-epoch-checkpoint`).

use crate::types::{LeaderEpoch, Offset};

/// Bound on entries: epochs only grow with leader changes; a checkpoint claiming more is
/// corrupt.
pub const EPOCH_ENTRIES_MAX: usize = 1 << 16;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EpochCache {
    entries: Vec<(LeaderEpoch, Offset)>,
}

impl EpochCache {
    pub fn entries(&self) -> &[(LeaderEpoch, Offset)] {
        &self.entries
    }

    pub fn latest(&self) -> Option<(LeaderEpoch, Offset)> {
        self.entries.last().copied()
    }

    /// Kafka's `assign`: returns true when the cache changed. Entries that would break
    /// monotonicity (epoch >= new or start >= new start) are removed first.
    pub fn assign(&mut self, epoch: LeaderEpoch, start: Offset) -> bool {
        if epoch.0 < 0 {
            return false;
        }
        if let Some((e, s)) = self.latest() {
            if e == epoch && s <= start {
                return false;
            }
            if e > epoch && s <= start {
                // An older epoch after a newer one: ignore, as Kafka warns and skips.
                return false;
            }
        }
        self.entries.retain(|(e, s)| *e < epoch && *s < start);
        self.entries.push((epoch, start));
        if self.entries.len() > EPOCH_ENTRIES_MAX {
            self.entries.remove(0);
        }
        true
    }

    /// Removes entries starting at or after `end` (log truncated to `end`).
    pub fn truncate_from_end(&mut self, end: Offset) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(_, s)| *s < end);
        before != self.entries.len()
    }

    /// Recovery found the log ending at `end`: entries starting after it are gone (an epoch
    /// assigned exactly at the end, with no batch yet, stays).
    pub fn truncate_after(&mut self, end: Offset) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(_, s)| *s <= end);
        before != self.entries.len()
    }

    /// Log start moved to `start`: entries before it collapse into one starting at `start`.
    pub fn truncate_from_start(&mut self, start: Offset) -> bool {
        let below = self.entries.partition_point(|(_, s)| *s < start);
        if below == 0 {
            return false;
        }
        let (epoch, _) = self.entries[below - 1];
        let keep_last_below = self.entries.get(below).is_none_or(|(_, s)| *s > start);
        self.entries.drain(..below);
        if keep_last_below {
            self.entries.insert(0, (epoch, start));
        }
        true
    }

    /// Kafka's `endOffsetFor`: `(largest epoch <= requested, start of the next epoch)`, or
    /// `(requested, log end)` for the latest epoch; `None` is UNDEFINED (-1, -1).
    pub fn end_offset_for(
        &self,
        requested: LeaderEpoch,
        log_end: Offset,
    ) -> Option<(LeaderEpoch, Offset)> {
        if requested.0 < 0 {
            return None;
        }
        let (latest, _) = self.latest()?;
        if latest == requested {
            return Some((requested, log_end));
        }
        let higher = self.entries.iter().find(|(e, _)| *e > requested)?;
        match self.entries.iter().rev().find(|(e, _)| *e <= requested) {
            None => Some((requested, higher.1)),
            Some((floor, _)) => Some((*floor, higher.1)),
        }
    }

    /// Kafka's checkpoint text: version 0, entry count, then `epoch offset` lines.
    pub fn encode(&self) -> Vec<u8> {
        let mut s = format!("0\n{}\n", self.entries.len());
        for (e, o) in &self.entries {
            s.push_str(&format!("{} {}\n", e.0, o.0));
        }
        s.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Option<EpochCache> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut lines = text.lines();
        if lines.next()?.trim() != "0" {
            return None;
        }
        let count: usize = lines.next()?.trim().parse().ok()?;
        if count > EPOCH_ENTRIES_MAX {
            return None;
        }
        let mut cache = EpochCache::default();
        for _ in 0..count {
            let mut parts = lines.next()?.split_whitespace();
            let epoch: i32 = parts.next()?.parse().ok()?;
            let offset: i64 = parts.next()?.parse().ok()?;
            if let Some((e, o)) = cache.latest() {
                if epoch <= e.0 || offset < o.0 {
                    return None;
                }
            }
            cache.entries.push((LeaderEpoch(epoch), Offset(offset)));
        }
        Some(cache)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(x: i32) -> LeaderEpoch {
        LeaderEpoch(x)
    }
    fn o(x: i64) -> Offset {
        Offset(x)
    }

    #[test]
    fn assign_and_end_offsets_follow_kafka() {
        let mut c = EpochCache::default();
        assert!(c.assign(e(1), o(0)));
        assert!(!c.assign(e(1), o(5)));
        assert!(c.assign(e(3), o(10)));
        assert!(c.assign(e(5), o(20)));
        assert_eq!(c.end_offset_for(e(5), o(30)), Some((e(5), o(30))));
        assert_eq!(c.end_offset_for(e(3), o(30)), Some((e(3), o(20))));
        assert_eq!(c.end_offset_for(e(4), o(30)), Some((e(3), o(20))));
        assert_eq!(c.end_offset_for(e(0), o(30)), Some((e(0), o(0))));
        assert_eq!(c.end_offset_for(e(9), o(30)), None);
        assert!(c.truncate_from_end(o(20)));
        assert_eq!(c.latest(), Some((e(3), o(10))));
        assert!(c.truncate_from_start(o(12)));
        assert_eq!(c.entries(), &[(e(3), o(12))]);
        let round = EpochCache::decode(&c.encode()).unwrap();
        assert_eq!(round, c);
        assert!(EpochCache::decode(b"0\n2\n3 5\n2 9\n").is_none());
        assert!(EpochCache::decode(b"0\n99999999\n").is_none());
    }
}
