//! Kafka's sparse indexes of one segment, kept in memory and written beside the segment when
//! it is sealed: the offset index (`.index`, 8-byte entries: relative offset u32 BE,
//! position u32 BE) and the time index (`.timeindex`, 12-byte entries: timestamp i64 BE,
//! relative offset u32 BE). As in Kafka an offset-index entry names the last offset of the
//! batch that starts at its position, and a time-index entry names the largest timestamp
//! seen so far in the segment and the last offset of the batch that carried it.

use crate::batch::BatchHeader;

pub const OFFSET_ENTRY_BYTES: usize = 8;
pub const TIME_ENTRY_BYTES: usize = 12;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SegmentIndex {
    /// (relative last offset, position of the batch)
    pub offsets: Vec<(u32, u32)>,
    /// (max timestamp so far, relative last offset of the batch that carried it)
    pub times: Vec<(i64, u32)>,
    pub bytes_since_entry: u64,
    /// Largest batch `maxTimestamp` in the segment and the last offset of its batch.
    pub max_timestamp: i64,
    pub max_timestamp_offset: i64,
}

impl SegmentIndex {
    pub fn new() -> Self {
        SegmentIndex {
            max_timestamp: -1,
            max_timestamp_offset: -1,
            ..Default::default()
        }
    }

    /// What a sealed segment keeps in memory once its entries are on disk: the largest
    /// timestamp and its offset (retention, ListOffsets MAX_TIMESTAMP, choosing the segment
    /// of a time lookup). The entries are read back by [`super::index_cache`] on demand.
    pub fn summary(&self) -> SegmentIndex {
        SegmentIndex {
            max_timestamp: self.max_timestamp,
            max_timestamp_offset: self.max_timestamp_offset,
            ..SegmentIndex::new()
        }
    }

    /// Whether the entries are held (false for a summary of a non-empty index).
    pub fn has_entries(&self) -> bool {
        !self.offsets.is_empty() || !self.times.is_empty()
    }

    /// Heap bytes held by the entries.
    pub fn resident_bytes(&self) -> usize {
        self.offsets.capacity() * std::mem::size_of::<(u32, u32)>()
            + self.times.capacity() * std::mem::size_of::<(i64, u32)>()
    }

    /// Records one batch appended at `position`, exactly as Kafka's `LogSegment.append`:
    /// an index entry when more than `interval_bytes` were appended since the last one.
    pub fn on_batch(
        &mut self,
        base_offset: i64,
        header: &BatchHeader,
        position: u64,
        interval_bytes: u64,
    ) {
        let last = header.last_offset();
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.max_timestamp_offset = last;
        }
        if self.bytes_since_entry > interval_bytes {
            let rel = (last - base_offset) as u32;
            debug_assert!(self.offsets.last().is_none_or(|e| e.0 < rel || rel == 0));
            self.offsets.push((rel, position as u32));
            let rel_ts = (self.max_timestamp_offset - base_offset) as u32;
            if self.times.last().is_none_or(|e| e.0 < self.max_timestamp) {
                self.times.push((self.max_timestamp, rel_ts));
            }
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += header.total_len() as u64;
    }

    /// Kafka's last time-index entry on sealing: the segment's true maximum.
    pub fn seal(&mut self, base_offset: i64) {
        if self.max_timestamp >= 0 && self.times.last().is_none_or(|e| e.0 < self.max_timestamp) {
            self.times.push((
                self.max_timestamp,
                (self.max_timestamp_offset - base_offset) as u32,
            ));
        }
    }

    /// Position to start scanning for `offset`: the entry with the largest offset <= it.
    pub fn lookup_position(&self, base_offset: i64, offset: i64) -> u64 {
        let rel = offset - base_offset;
        if rel < 0 {
            return 0;
        }
        let i = self.offsets.partition_point(|e| (e.0 as i64) <= rel);
        if i == 0 {
            0
        } else {
            self.offsets[i - 1].1 as u64
        }
    }

    /// Offset to start scanning for the first timestamp >= `ts`: the offset of the last entry
    /// whose timestamp is < `ts` (every earlier batch has a smaller maximum), else the base.
    pub fn lookup_time(&self, base_offset: i64, ts: i64) -> i64 {
        let i = self.times.partition_point(|e| e.0 < ts);
        if i == 0 {
            base_offset
        } else {
            base_offset + self.times[i - 1].1 as i64
        }
    }

    pub fn encode_offsets(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.offsets.len() * OFFSET_ENTRY_BYTES);
        for (rel, pos) in &self.offsets {
            out.extend_from_slice(&rel.to_be_bytes());
            out.extend_from_slice(&pos.to_be_bytes());
        }
        out
    }

    pub fn encode_times(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.times.len() * TIME_ENTRY_BYTES);
        for (ts, rel) in &self.times {
            out.extend_from_slice(&ts.to_be_bytes());
            out.extend_from_slice(&rel.to_be_bytes());
        }
        out
    }

    /// Decodes both index files of a sealed segment of `segment_bytes`. `None` when they are
    /// inconsistent (wrong length, non-monotonic, positions past the end): the caller
    /// rebuilds by scanning.
    pub fn decode(offsets: &[u8], times: &[u8], segment_bytes: u64) -> Option<SegmentIndex> {
        if !offsets.len().is_multiple_of(OFFSET_ENTRY_BYTES)
            || !times.len().is_multiple_of(TIME_ENTRY_BYTES)
        {
            return None;
        }
        let mut index = SegmentIndex::new();
        index
            .offsets
            .reserve_exact(offsets.len() / OFFSET_ENTRY_BYTES);
        index.times.reserve_exact(times.len() / TIME_ENTRY_BYTES);
        for e in offsets.chunks_exact(OFFSET_ENTRY_BYTES) {
            let rel = u32::from_be_bytes(e[0..4].try_into().ok()?);
            let pos = u32::from_be_bytes(e[4..8].try_into().ok()?);
            if let Some(prev) = index.offsets.last() {
                if rel <= prev.0 || pos <= prev.1 {
                    return None;
                }
            }
            if pos as u64 >= segment_bytes {
                return None;
            }
            index.offsets.push((rel, pos));
        }
        for e in times.chunks_exact(TIME_ENTRY_BYTES) {
            let ts = i64::from_be_bytes(e[0..8].try_into().ok()?);
            let rel = u32::from_be_bytes(e[8..12].try_into().ok()?);
            if let Some(prev) = index.times.last() {
                if ts <= prev.0 || rel < prev.1 {
                    return None;
                }
            }
            index.times.push((ts, rel));
        }
        Some(index)
    }
}
