//! Reads: whole batches by offset (tail cache first, then the segment files) and lookup by
//! timestamp.

use std::rc::Rc;

use bytes::Bytes;

use super::{segment_file_name, Log, ReadResult};
use crate::batch::{self, BatchHeader, TimestampType, BATCH_HEADER_LEN};
use crate::storage::{Storage, StorageFile};
use crate::types::Offset;
use crate::{Error, Result};

/// Bytes read from a file at once while looking for the first batch.
const READ_AHEAD_BYTES: usize = 64 * 1024;
/// Decompression bound for timestamp lookups inside compressed batches.
const TIMESTAMP_LOOKUP_DECOMPRESSED_MAX: usize = 64 << 20;

enum Plan<F> {
    Done(ReadResult),
    Disk {
        file: Option<Rc<F>>,
        base: i64,
        /// Where to start scanning; `None`: a sealed segment, look it up in its index files.
        position: Option<u64>,
        limit: u64,
        next_segment: Option<i64>,
    },
}

impl<S: Storage> Log<S> {
    /// Whole batches from the one containing `offset`, stopping before `max_offset` (the
    /// caller's high watermark), at most `max_bytes` but always the first batch (as Kafka).
    /// Errors with [`Error::OffsetOutOfRange`] outside `[log start, log end]`.
    pub async fn read(
        &self,
        offset: Offset,
        max_offset: Offset,
        max_bytes: usize,
    ) -> Result<ReadResult> {
        let mut from = offset.0;
        loop {
            // Truncations bump this; read-ahead taken before one is never used after it.
            let version = self.inner.borrow().truncations;
            let plan = self.plan_read(offset, from, max_offset, max_bytes)?;
            match plan {
                Plan::Done(r) => return Ok(r),
                Plan::Disk {
                    file,
                    base,
                    position,
                    limit,
                    next_segment,
                } => {
                    let position = match position {
                        Some(p) => p,
                        None => {
                            let index = self.closed_index(base, limit).await;
                            if self.inner.borrow().truncations != version {
                                continue; // the plan is stale
                            }
                            index.map_or(0, |i| i.lookup_position(base, from))
                        }
                    };
                    let file = match file {
                        Some(f) => f,
                        None => {
                            let path = self.dir.join(segment_file_name(base, "log"));
                            match self.storage.open(&path, false).await {
                                Ok(f) => Rc::new(f),
                                // Deleted by retention meanwhile: the offset is now out of range.
                                Err(_) if !self.storage.exists(&path).await.unwrap_or(true) => {
                                    continue
                                }
                                Err(e) => return Err(e),
                            }
                        }
                    };
                    // A sequential consumer finds its next range already read (read-ahead).
                    let ahead = self.readahead.borrow_mut().take();
                    let initial = match ahead {
                        Some(ra)
                            if ra.base == base
                                && ra.next_offset == from
                                && ra.pos >= position
                                && ra.version == version =>
                        {
                            match ra.task.await {
                                Some(Ok(data)) => Some((ra.pos, data)),
                                _ => None,
                            }
                        }
                        _ => None,
                    };
                    let (chunk, next, end_pos) = read_from_file(
                        &*file,
                        position,
                        limit,
                        from,
                        max_offset.0,
                        max_bytes,
                        initial,
                    )
                    .await?;
                    if let Some(chunk) = chunk {
                        let want = read_want(max_bytes).min(limit.saturating_sub(end_pos) as usize);
                        if want >= BATCH_HEADER_LEN {
                            let f = file.clone();
                            // Queued now and handed to the device at once.
                            let task = crate::runtime::spawn_started(async move {
                                f.read_at(end_pos, want).await
                            })
                            .await;
                            crate::runtime::submit_io_now();
                            *self.readahead.borrow_mut() = Some(Readahead {
                                base,
                                pos: end_pos,
                                next_offset: next,
                                version,
                                task,
                            });
                        }
                        let inner = self.inner.borrow();
                        return Ok(ReadResult {
                            bytes: chunk.len(),
                            chunks: vec![chunk],
                            next_offset: Offset(next),
                            log_start_offset: inner.log_start,
                            log_end_offset: inner.next_offset,
                        });
                    }
                    match next_segment {
                        // Nothing at or after `from` in this segment: continue in the next.
                        Some(n) => from = from.max(n),
                        None => return Ok(self.empty_result(offset)),
                    }
                }
            }
        }
    }

    fn empty_result(&self, offset: Offset) -> ReadResult {
        let inner = self.inner.borrow();
        ReadResult {
            chunks: Vec::new(),
            bytes: 0,
            next_offset: offset,
            log_start_offset: inner.log_start,
            log_end_offset: inner.next_offset,
        }
    }

    fn plan_read(
        &self,
        offset: Offset,
        from: i64,
        max_offset: Offset,
        max_bytes: usize,
    ) -> Result<Plan<S::File>> {
        let inner = self.inner.borrow();
        if offset < inner.log_start || offset > inner.next_offset {
            return Err(Error::OffsetOutOfRange {
                offset: offset.0,
                start: inner.log_start.0,
                end: inner.next_offset.0,
            });
        }
        let stop = max_offset.min(inner.next_offset).0;
        if from >= stop {
            drop(inner);
            return Ok(Plan::Done(self.empty_result(offset)));
        }
        // Tail cache: a contiguous suffix of the log.
        if inner.cache.front().is_some_and(|c| c.base <= from) {
            let first = inner.cache.partition_point(|c| c.last < from);
            let mut chunks = Vec::new();
            let mut bytes = 0;
            let mut next = from;
            for c in inner.cache.iter().skip(first) {
                if c.base >= stop || (!chunks.is_empty() && bytes + c.bytes.len() > max_bytes) {
                    break;
                }
                bytes += c.bytes.len();
                next = c.last + 1;
                chunks.push(c.bytes.clone());
            }
            if !chunks.is_empty() {
                return Ok(Plan::Done(ReadResult {
                    chunks,
                    bytes,
                    next_offset: Offset(next),
                    log_start_offset: inner.log_start,
                    log_end_offset: inner.next_offset,
                }));
            }
        }
        let Some((&base, seg)) = inner
            .segments
            .range(..=from)
            .next_back()
            .or_else(|| inner.segments.iter().next())
        else {
            drop(inner);
            return Ok(Plan::Done(self.empty_result(offset)));
        };
        // Where to continue if this segment has nothing at or after `from` (a gap left by
        // truncation or compaction): the next segment, or the tail cache if it starts sooner.
        let next_segment = inner.segments.range(base + 1..).next().map(|(b, _)| *b);
        let cache_front = inner.cache.front().map(|c| c.base).filter(|b| *b > from);
        let next_segment = match (next_segment, cache_front) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // A sealed segment keeps only a summary of its indexes in memory.
        let position = (!seg.finalized).then(|| seg.index.lookup_position(base, from));
        Ok(Plan::Disk {
            file: seg.file.clone(),
            base,
            position,
            limit: seg.written,
            next_segment,
        })
    }

    /// ListOffsets by timestamp: the first record whose timestamp is >= `ts_ms`, with its
    /// timestamp. The time index finds the segment and a starting batch; batches are then
    /// scanned, and the records of the first batch whose maximum qualifies.
    pub async fn offset_for_timestamp(&self, ts_ms: i64) -> Result<Option<(Offset, i64)>> {
        let (base, size, resident) = {
            let inner = self.inner.borrow();
            let seg = inner
                .segments
                .values()
                .find(|s| s.index.max_timestamp >= ts_ms);
            match seg {
                None => return Ok(None),
                Some(seg) => (
                    seg.base,
                    seg.size,
                    (!seg.finalized).then(|| seg.index.lookup_time(seg.base, ts_ms)),
                ),
            }
        };
        let start = match resident {
            Some(offset) => offset,
            // A sealed segment: its time index is read back (or scanned from its base).
            None => self
                .closed_index(base, size)
                .await
                .map_or(base, |i| i.lookup_time(base, ts_ms)),
        };
        let mut from = Offset(start.max(self.log_start_offset().0));
        loop {
            let end = self.log_end_offset();
            if from >= end {
                return Ok(None);
            }
            let r = match self.read(from, end, 1 << 20).await {
                Ok(r) => r,
                Err(Error::OffsetOutOfRange { start, .. }) if start > from.0 => {
                    from = Offset(start);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if r.chunks.is_empty() {
                return Ok(None);
            }
            for chunk in &r.chunks {
                for (h, b) in batch::split_batches(chunk, usize::MAX)? {
                    if h.last_offset() < from.0 || h.max_timestamp < ts_ms {
                        continue;
                    }
                    if let Some(found) = first_record_at_or_after(&h, &b, ts_ms)? {
                        return Ok(Some(found));
                    }
                }
            }
            from = r.next_offset.max(from.next());
        }
    }

    /// ListOffsets MAX_TIMESTAMP: the first record that carries the log's largest timestamp
    /// and that timestamp. The segment index knows the batch (by its last offset); the
    /// batch is read back and its records scanned for the exact one, as Kafka does since
    /// KAFKA-16310 (3.8), rather than answering with the batch's last offset.
    pub async fn max_timestamp_record(&self) -> Result<Option<(Offset, i64)>> {
        let Some((batch_last, ts_ms)) = self.max_timestamp() else {
            return Ok(None);
        };
        let r = match self.read(batch_last, batch_last.next(), 1).await {
            Ok(r) => r,
            // Deleted under us (retention, DeleteRecords): the index answer is all there is.
            Err(Error::OffsetOutOfRange { .. }) => return Ok(Some((batch_last, ts_ms))),
            Err(e) => return Err(e),
        };
        // A batch whose records cannot be scanned (over the decompression bound) still
        // has the index's answer.
        let exact = r.chunks.iter().find_map(|chunk| {
            let batches = batch::split_batches(chunk, usize::MAX).ok()?;
            batches.into_iter().find_map(|(h, b)| {
                let holds = h.base_offset <= batch_last.0 && batch_last.0 <= h.last_offset();
                holds
                    .then(|| first_record_at_or_after(&h, &b, ts_ms).ok().flatten())
                    .flatten()
            })
        });
        Ok(Some(match exact {
            Some((offset, found)) => (offset.max(self.log_start_offset()), found),
            None => (batch_last, ts_ms),
        }))
    }
}

fn first_record_at_or_after(
    h: &BatchHeader,
    b: &Bytes,
    ts_ms: i64,
) -> Result<Option<(Offset, i64)>> {
    let records = batch::records(b, TIMESTAMP_LOOKUP_DECOMPRESSED_MAX)?;
    for r in records {
        let ts = match h.timestamp_type() {
            TimestampType::LogAppendTime => h.max_timestamp,
            TimestampType::CreateTime => h.base_timestamp.wrapping_add(r.timestamp_delta),
        };
        if ts >= ts_ms {
            return Ok(Some((Offset(h.base_offset + r.offset_delta as i64), ts)));
        }
    }
    Ok(None)
}

/// Reads whole batches of one segment file starting at the batch that contains `from`
/// (scanning forward from `position`), up to `limit` bytes of the file. Returns the bytes
/// and the offset after the last batch, or `None` if no batch at or after `from` is there.
async fn read_from_file<F: StorageFile>(
    file: &F,
    position: u64,
    limit: u64,
    from: i64,
    max_offset: i64,
    max_bytes: usize,
    initial: Option<(u64, Vec<u8>)>,
) -> Result<(Option<Bytes>, i64, u64)> {
    let (mut buf, mut buf_pos) = match initial {
        Some((p, data)) => (data, p),
        None => (Vec::new(), position),
    };
    let mut pos = buf_pos.max(position);
    let corrupt = |pos: u64| {
        Error::Invalid(format!(
            "stored batch at position {pos} of {} is unreadable",
            file.path().display()
        ))
    };
    // 1. Find the first batch whose last offset is >= from.
    let start = loop {
        if pos + BATCH_HEADER_LEN as u64 > limit {
            return Ok((None, from, pos));
        }
        if !in_buf(&buf, buf_pos, pos, BATCH_HEADER_LEN) {
            let want = read_want(max_bytes).min((limit - pos) as usize);
            buf = crate::runtime::rushed(file.read_at(pos, want)).await?;
            buf_pos = pos;
            if buf.len() < BATCH_HEADER_LEN {
                return Err(corrupt(pos));
            }
        }
        let h = BatchHeader::parse(&buf[(pos - buf_pos) as usize..]).map_err(|_| corrupt(pos))?;
        if h.last_offset() >= from {
            break pos;
        }
        pos += h.total_len() as u64;
    };
    // 2. Collect whole batches.
    let mut end = start;
    let mut next = from;
    loop {
        if end + BATCH_HEADER_LEN as u64 > limit {
            break;
        }
        // The first read covered `max_bytes` from the index position: a batch whose header
        // lies past it would not fit the budget anyway (unless it is the first one).
        let covered = buf_pos <= start && in_buf(&buf, buf_pos, end, 0);
        if end > start && covered && !in_buf(&buf, buf_pos, end, BATCH_HEADER_LEN) {
            break;
        }
        if !in_buf(&buf, buf_pos, end, BATCH_HEADER_LEN) {
            // Only headers are needed here; the data is read once below.
            let want = READ_AHEAD_BYTES.min((limit - end) as usize);
            let data = crate::runtime::rushed(file.read_at(end, want)).await?;
            if data.len() < BATCH_HEADER_LEN {
                return Err(corrupt(end));
            }
            // Keep the buffer covering [start, ...) when it is contiguous.
            if buf_pos + buf.len() as u64 == end && buf_pos <= start {
                buf.extend_from_slice(&data);
            } else {
                buf = data;
                buf_pos = end;
            }
        }
        let h = BatchHeader::parse(&buf[(end - buf_pos) as usize..]).map_err(|_| corrupt(end))?;
        let total = h.total_len() as u64;
        if h.base_offset >= max_offset || end + total > limit {
            break;
        }
        if end > start && (end - start + total) as usize > max_bytes {
            break;
        }
        end += total;
        next = h.last_offset() + 1;
    }
    if end == start {
        return Ok((None, from, end));
    }
    let len = (end - start) as usize;
    let bytes = if buf_pos <= start && buf_pos + buf.len() as u64 >= end {
        let at = (start - buf_pos) as usize;
        Bytes::from(buf).slice(at..at + len)
    } else {
        let data = crate::runtime::rushed(file.read_at(start, len)).await?;
        if data.len() != len {
            return Err(corrupt(start));
        }
        Bytes::from(data)
    };
    Ok((Some(bytes), next, end))
}

/// Bytes read from the file for one fetch of `max_bytes` (also the read-ahead size).
fn read_want(max_bytes: usize) -> usize {
    READ_AHEAD_BYTES.max(max_bytes.min(8 << 20))
}

/// The next range of a segment, read while the consumer handles the previous one.
pub(super) struct Readahead {
    base: i64,
    pos: u64,
    next_offset: i64,
    version: u64,
    /// Its reads were queued and submitted when it was created (first polled by the
    /// reader, then handed to this task).
    task: glommio::task::JoinHandle<Result<Vec<u8>>>,
}

fn in_buf(buf: &[u8], buf_pos: u64, pos: u64, len: usize) -> bool {
    pos >= buf_pos && pos + len as u64 <= buf_pos + buf.len() as u64
}
