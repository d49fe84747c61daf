//! One segment's in-memory state, and the scanner that walks a segment file batch by batch
//! (recovery, truncation, index rebuilds) validating each batch.

use std::collections::VecDeque;
use std::rc::Rc;

use bytes::Bytes;

use super::index::SegmentIndex;
use crate::batch::{self, BatchHeader, BATCH_HEADER_LEN};
use crate::storage::{Storage, StorageFile};
use crate::Result;

/// A batch appended but not yet written to the segment file.
#[derive(Clone, Debug)]
pub struct PendingBatch {
    pub bytes: Bytes,
    pub next_offset: i64,
}

/// A background zero fill of `[from, to)` of a segment file.
pub struct ZeroFill {
    pub from: u64,
    pub to: u64,
    pub task: glommio::task::JoinHandle<Result<()>>,
}

/// Bound of [`Segment::fills_done`].
pub const FILLS_DONE_MAX: usize = 4;

pub struct Segment<S: Storage> {
    pub base: i64,
    /// Bytes appended (written or pending).
    pub size: u64,
    /// Bytes in completed file writes.
    pub written: u64,
    /// Offset after the last batch (for a sealed segment loaded from disk without a scan:
    /// the next segment's base, an upper bound).
    pub next_offset: i64,
    /// The file exists and its directory entry is durable.
    pub created: bool,
    /// Open handle while the segment is active (or being sealed).
    pub file: Option<Rc<S::File>>,
    pub pending: VecDeque<PendingBatch>,
    /// Bytes of the front pending batch already copied into a submitted write (a write
    /// step may end inside a batch).
    pub pending_front_taken: usize,
    /// Bytes of the partial last block `[align_down(written), written)`, rewritten with the
    /// next write (O_DIRECT writes whole blocks).
    pub tail_block: Vec<u8>,
    /// Bytes the file is preallocated to.
    pub preallocated: u64,
    /// A zero fill running ahead of the writes (`always` logs, see
    /// [`crate::storage::StorageFile::zero_fill`]): its range starts at or after
    /// `preallocated`, and no data is written past `preallocated` until it is settled.
    pub fill: Option<ZeroFill>,
    /// Every block of `[0, written_extent_end)` of the file was written by a completed write
    /// (data or zero fill): allocated and initialised, not a fallocated extent.
    pub written_extent_end: u64,
    /// Zero fills completed beyond `written_extent_end`, joined to it once the data writes
    /// reach them; at most [`FILLS_DONE_MAX`] (forgetting one only costs a shared sync).
    pub fills_done: Vec<(u64, u64)>,
    /// `[0, overwrite_durable_end)` was written and then covered by a completed fdatasync
    /// of this file: allocation and size are durable, so a later write ending at or before
    /// it is a pure overwrite that any device cache flush makes durable
    /// ([`crate::storage::StorageFile::flush_device`]).
    pub overwrite_durable_end: u64,
    /// All entries while the segment is active or being sealed; once `finalized`, only
    /// the summary ([`SegmentIndex::summary`]): the entries are in its index files and
    /// read back through the shard's bounded index cache.
    pub index: SegmentIndex,
    pub first_append_ms: Option<i64>,
    /// Broker time of the last append since open (retention of batches without
    /// timestamps).
    pub last_append_ms: Option<i64>,
    /// Rolled: no more appends; the flusher syncs it, trims it and writes its indexes.
    pub sealed: bool,
    /// Sealing finished (file closed, indexes on disk).
    pub finalized: bool,
}

impl<S: Storage> Segment<S> {
    /// A new, empty active segment; the flusher creates its file.
    pub fn new_active(base: i64) -> Self {
        Segment {
            base,
            size: 0,
            written: 0,
            next_offset: base,
            created: false,
            file: None,
            pending: VecDeque::new(),
            pending_front_taken: 0,
            tail_block: Vec::new(),
            preallocated: 0,
            fill: None,
            written_extent_end: 0,
            fills_done: Vec::new(),
            overwrite_durable_end: 0,
            index: SegmentIndex::new(),
            first_append_ms: None,
            last_append_ms: None,
            sealed: false,
            finalized: false,
        }
    }

    /// A completed write (data or zero fill) covered the blocks `[from, to)`.
    pub fn extent_written(&mut self, from: u64, to: u64) {
        if from <= self.written_extent_end {
            self.written_extent_end = self.written_extent_end.max(to);
        } else if self.fills_done.len() < FILLS_DONE_MAX {
            self.fills_done.push((from, to));
        }
        // Join completed fills that the written prefix now reaches.
        while let Some(i) = self
            .fills_done
            .iter()
            .position(|&(a, _)| a <= self.written_extent_end)
        {
            let (_, b) = self.fills_done.swap_remove(i);
            self.written_extent_end = self.written_extent_end.max(b);
        }
    }

    /// The file was cut to `len` and then synced (recovery, truncation): what is left is
    /// written and durable, nothing beyond it.
    pub fn reset_extents(&mut self, len: u64) {
        self.written_extent_end = crate::storage::align_down(len);
        self.overwrite_durable_end = self.written_extent_end;
        self.fills_done.clear();
    }

    pub fn needs_flush_work(&self) -> bool {
        !self.created || !self.pending.is_empty() || (self.sealed && !self.finalized)
    }
}

/// What a scan found.
#[derive(Clone, Debug)]
pub struct ScanResult {
    /// Byte position after the last valid batch.
    pub valid_end: u64,
    /// Offset after the last valid batch.
    pub next_offset: i64,
    pub index: SegmentIndex,
    /// Whether the scan stopped at invalid bytes (torn or corrupt) before `limit`.
    pub stopped_early: bool,
    /// (epoch, base offset) of every batch where the epoch changes.
    pub epochs: Vec<(i32, i64)>,
}

const SCAN_READ_BYTES: usize = 1 << 20;

/// Walks the batches of a segment from `start` (0, or a position from the offset index with
/// `index` the entries before it) to `limit`, checking magic, length, CRC and that offsets
/// grow, and rebuilding the indexes. Stops at the first invalid batch, or (if `stop_at` is
/// set) at the first batch whose last offset is >= `stop_at`.
#[allow(clippy::too_many_arguments)]
pub async fn scan<F: StorageFile>(
    file: &F,
    base: i64,
    start: u64,
    index: SegmentIndex,
    limit: u64,
    interval_bytes: u64,
    max_batch_bytes: u64,
    stop_at: Option<i64>,
) -> Result<ScanResult> {
    let mut result = ScanResult {
        valid_end: start,
        next_offset: base,
        index,
        stopped_early: false,
        epochs: Vec::new(),
    };
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_pos: u64 = start;
    let mut pos: u64 = start;
    loop {
        if pos + BATCH_HEADER_LEN as u64 > limit {
            result.stopped_early = pos != limit;
            break;
        }
        if !ensure(file, &mut buf, &mut buf_pos, pos, BATCH_HEADER_LEN, limit).await? {
            result.stopped_early = true;
            break;
        }
        let at = (pos - buf_pos) as usize;
        let header = match BatchHeader::parse(&buf[at..]) {
            Ok(h) => h,
            Err(_) => {
                result.stopped_early = true;
                break;
            }
        };
        let total = header.total_len() as u64;
        if total < BATCH_HEADER_LEN as u64 || total > max_batch_bytes || pos + total > limit {
            result.stopped_early = true;
            break;
        }
        if !ensure(file, &mut buf, &mut buf_pos, pos, total as usize, limit).await? {
            result.stopped_early = true;
            break;
        }
        let at = (pos - buf_pos) as usize;
        let bytes = &buf[at..at + total as usize];
        let valid = batch::validate_stored(bytes).ok().filter(|h| {
            h.base_offset >= result.next_offset && h.last_offset() - base <= u32::MAX as i64
        });
        let Some(h) = valid else {
            result.stopped_early = true;
            break;
        };
        if stop_at.is_some_and(|s| h.last_offset() >= s) {
            break;
        }
        result.index.on_batch(base, &h, pos, interval_bytes);
        if h.partition_leader_epoch >= 0
            && result
                .epochs
                .last()
                .is_none_or(|(e, _)| *e < h.partition_leader_epoch)
        {
            result
                .epochs
                .push((h.partition_leader_epoch, h.base_offset));
        }
        pos += total;
        result.valid_end = pos;
        result.next_offset = h.last_offset() + 1;
    }
    Ok(result)
}

/// Makes `[pos, pos + len)` available in `buf` (which holds file bytes from `buf_pos`),
/// reading at least [`SCAN_READ_BYTES`] at a time. False when the file ends first.
async fn ensure<F: StorageFile>(
    file: &F,
    buf: &mut Vec<u8>,
    buf_pos: &mut u64,
    pos: u64,
    len: usize,
    limit: u64,
) -> Result<bool> {
    let have_end = *buf_pos + buf.len() as u64;
    if pos >= *buf_pos && pos + len as u64 <= have_end {
        return Ok(true);
    }
    let want = (len.max(SCAN_READ_BYTES) as u64).min(limit.saturating_sub(pos)) as usize;
    if want < len {
        return Ok(false);
    }
    let data = file.read_at(pos, want).await?;
    *buf = data;
    *buf_pos = pos;
    Ok(buf.len() >= len)
}
