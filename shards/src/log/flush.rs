//! The flusher: one task per log that turns the in-memory tail into file writes and
//! fdatasyncs (group commit), creates and seals segments, and writes the checkpoints the
//! durable data depends on before declaring it durable.

use std::rc::{Rc, Weak};

use std::collections::VecDeque;

use super::checkpoint::{self, RECOVERY_POINT_CHECKPOINT};
use super::recovery::write_index_files;
use super::segment::ZeroFill;
use super::{segment_file_name, FlushPolicy, Log};
use crate::storage::{self, align_down, align_up, Storage, StorageFile, BLOCK_BYTES};
use crate::types::Offset;
use crate::Result;

pub fn spawn_flusher<S: Storage>(log: &Rc<Log<S>>) {
    let weak = Rc::downgrade(log);
    let shared = log.shared.clone();
    glommio::spawn_local(async move {
        loop {
            let seen = shared.work.generation();
            if shared.stop.get() {
                break;
            }
            let Some(log) = Weak::upgrade(&weak) else {
                break;
            };
            let wait = match log.flush_wait() {
                FlushWait::Now => {
                    let guard = log.io_lock.lock().await;
                    let r = log.flush_step().await;
                    drop(guard);
                    if let Err(e) = r {
                        log.fail(e.to_string());
                        break;
                    }
                    // Let a waiting truncation or reader take the lock between steps.
                    // Otherwise go straight on: the next step's write reaches the device
                    // before the tasks this step woke (acknowledgements, fetch wake-ups)
                    // run — they run while it is in flight — so a log that always has
                    // the next append waiting keeps its device busy.
                    let contended = log.io_lock.contended();
                    drop(log);
                    if contended {
                        futures_lite::future::yield_now().await;
                    } else {
                        glommio::yield_if_needed().await;
                    }
                    continue;
                }
                FlushWait::Idle => None,
                FlushWait::Timer(d) => Some(d),
                FlushWait::Stop => break,
            };
            drop(log);
            match wait {
                None => shared.work.wait(seen).await,
                Some(d) => {
                    let sleep = glommio::timer::sleep(d);
                    futures_lite::future::or(shared.work.wait(seen), sleep).await
                }
            }
        }
    })
    .detach();
}

/// Exponential moving average (weight 1/8) of the bytes per fdatasync; `u64::MAX` means no
/// sync yet. Pure.
fn sync_bytes_average(avg: u64, covered: u64) -> u64 {
    if avg == u64::MAX {
        covered
    } else {
        avg - avg / 8 + covered / 8
    }
}

async fn join_write(task: &mut glommio::task::JoinHandle<Result<()>>) -> Result<()> {
    match task.await {
        Some(r) => r,
        None => Err(crate::Error::LogFailed("a write task was cancelled".into())),
    }
}

/// One submitted write, completed in submission order.
struct Chunk {
    /// File position of the write (block-aligned).
    start: u64,
    /// Bytes of the write (padding included), for the per-log device in-flight limit.
    device_bytes: usize,
    end_pos: u64,
    /// New data bytes (excluding the rewritten partial block) for in-flight accounting.
    data_bytes: usize,
    last_next: Option<i64>,
    /// The partial last block, if this chunk ends inside a block.
    tail: Option<Vec<u8>>,
    /// Written through an O_DSYNC file: durable once it (and every chunk before it, which
    /// completions are consumed in order) completed.
    durable: bool,
    task: glommio::task::JoinHandle<Result<()>>,
}

pub enum FlushWait {
    Now,
    Idle,
    /// Only an interval fsync is due, after this long.
    Timer(std::time::Duration),
    Stop,
}

impl<S: Storage> Log<S> {
    /// Decides whether the flusher has work now.
    pub(super) fn flush_wait(&self) -> FlushWait {
        let inner = self.inner.borrow();
        if inner.failed.is_some() || inner.closed {
            return FlushWait::Stop;
        }
        if inner.segments.values().any(|s| s.needs_flush_work()) || inner.recovery_point_dirty {
            return match self.write_linger_left(&inner) {
                Some(left) => FlushWait::Timer(left),
                None => FlushWait::Now,
            };
        }
        if inner.written_offset <= inner.synced_offset {
            return FlushWait::Idle;
        }
        match self.sync_due_in_ms(&inner, self.clock.now_ms()) {
            None => FlushWait::Idle,
            Some(ms) if ms <= 0 => FlushWait::Now,
            Some(ms) => FlushWait::Timer(std::time::Duration::from_millis(ms as u64)),
        }
    }

    /// How much longer the pending appends may wait before they are written
    /// (`LogConfig::write_linger_ms`): `None` when they are due now — the policy is
    /// `always`, lingering is off, a sync or other file work is due, a write chunk's worth
    /// is pending, the shard's in-flight budget is half used, or the oldest waited long
    /// enough.
    fn write_linger_left(&self, inner: &super::Inner<S>) -> Option<std::time::Duration> {
        let linger_ms = self.config.write_linger_ms;
        let since_ms = inner.unwritten_since_ms?;
        if linger_ms <= 0 || inner.recovery_point_dirty {
            return None;
        }
        let mut back = inner.segments.values().rev();
        let active = back.next().expect("active segment");
        let only_appends_pending =
            active.created && !active.sealed && back.all(|s| !s.needs_flush_work());
        let log_bytes_max = (self.config.in_flight_bytes_max + self.config.buffer_bytes_max) / 2;
        let pending_small =
            inner.in_flight_bytes < self.config.write_chunk_bytes.min(log_bytes_max);
        let shard_room = self.budgets.in_flight_bytes.get() < self.budgets.in_flight_bytes_max / 2;
        let now_ms = self.clock.now_ms();
        let mut left_ms = since_ms.saturating_add(linger_ms) - now_ms;
        if let Some(sync_in_ms) = self.sync_due_in_ms(inner, now_ms) {
            // A sync due now (always `always`) writes at once; an interval sync due later
            // wakes the flusher in time.
            left_ms = left_ms.min(sync_in_ms);
        }
        (only_appends_pending && pending_small && shard_room && left_ms > 0)
            .then(|| std::time::Duration::from_millis(left_ms as u64))
    }

    /// Milliseconds until the flush policy asks for a sync (0 or less: now); `None` if it
    /// never does (`none`). `always` is always due; `interval` when `flush.messages` were
    /// appended or `flush.ms` passed since the last sync.
    fn sync_due_in_ms(&self, inner: &super::Inner<S>, now_ms: i64) -> Option<i64> {
        match self.config.flush_policy {
            FlushPolicy::Always => Some(0),
            FlushPolicy::None => None,
            FlushPolicy::Interval {
                flush_ms,
                flush_messages,
            } => Some(if inner.messages_since_sync >= flush_messages {
                0
            } else {
                inner.last_sync_ms.saturating_add(flush_ms) - now_ms
            }),
        }
    }

    /// One round of the flusher; the caller holds `io_lock`. Writes every pending batch of
    /// every segment in order (creating and sealing segments on the way), then syncs the
    /// active segment if the policy asks, writing dirty checkpoints first.
    pub(super) async fn flush_step(&self) -> Result<()> {
        // Every append so far is taken by this step (or, past its limits, by the next,
        // which then is due at once).
        self.inner.borrow_mut().unwritten_since_ms = None;
        // Segments in order, each once per step; a segment left with work stops the step,
        // so the written offset only covers a contiguous prefix of the log.
        let bases: Vec<i64> = {
            let inner = self.inner.borrow();
            inner
                .segments
                .values()
                .filter(|s| s.needs_flush_work())
                .map(|s| s.base)
                .collect()
        };
        for base in bases {
            self.process_segment(base).await?;
            let unfinished = self
                .inner
                .borrow()
                .segments
                .get(&base)
                .is_some_and(|s| s.needs_flush_work());
            if unfinished {
                break;
            }
        }
        self.sync_by_policy(false).await
    }

    /// Writes and syncs everything (truncation, close): afterwards disk == memory.
    pub(super) async fn flush_all_locked(&self) -> Result<()> {
        loop {
            self.flush_step().await?;
            let more = self
                .inner
                .borrow()
                .segments
                .values()
                .any(|s| s.needs_flush_work());
            if !more {
                break;
            }
        }
        self.sync_by_policy(true).await
    }

    async fn process_segment(&self, base: i64) -> Result<()> {
        let created = self
            .inner
            .borrow()
            .segments
            .get(&base)
            .is_none_or(|s| s.created);
        if !created {
            let path = self.dir.join(segment_file_name(base, "log"));
            let file = if self.wants_dsync_writes() {
                self.storage.open_dsync(&path, true).await?
            } else {
                self.storage.open(&path, true).await?
            };
            let step = self.config.preallocate_step_min_bytes;
            let zero = self.grows_by_zero_fills();
            if zero {
                file.zero_fill(0, align_up(step)).await?;
            } else {
                file.preallocate(step).await?;
            }
            // The new name must be durable before any data in it is declared durable.
            self.storage.sync_dir(&self.dir).await?;
            let mut inner = self.inner.borrow_mut();
            let seg = inner
                .segments
                .get_mut(&base)
                .expect("segment vanished under the io lock");
            seg.created = true;
            seg.preallocated = step;
            if zero {
                seg.extent_written(0, align_up(step));
            }
            seg.file = Some(Rc::new(file));
        }
        let has_pending = self
            .inner
            .borrow()
            .segments
            .get(&base)
            .is_some_and(|s| !s.pending.is_empty());
        if has_pending {
            self.reopen_for_dsync_writes(base).await?;
            // One pipeline run per step: what arrives later joins the next step (and, under
            // `always`, the next fdatasync).
            self.write_pending(base).await?;
        }
        let seal = self.inner.borrow().segments.get(&base).is_some_and(|s| {
            s.sealed && !s.finalized && s.pending.is_empty() && s.written == s.size
        });
        if seal {
            self.finalize_segment(base).await?;
        }
        Ok(())
    }

    /// Writes the pending batches of one segment as a pipeline: block-aligned chunks of
    /// `write_chunk_bytes`, up to `writes_in_flight_max` in flight, each completion
    /// releasing in-flight budget at once. A chunk ending in a partial block is written only
    /// when no more data is at hand, and nothing is submitted while it is in flight (the
    /// next write rewrites that block; two writes of one block must not race). Under
    /// `always` the step ends at the size seen when it started, so an fdatasync follows
    /// promptly; otherwise it follows the data as it arrives.
    async fn write_pending(&self, base: i64) -> Result<()> {
        let chunk_bytes = self.config.write_chunk_bytes;
        let (file, target_end, mut submitted, dsync_step) = {
            let inner = self.inner.borrow();
            let seg = inner.segments.get(&base).expect("segment");
            let file = seg.file.clone().expect("created segment has a file");
            let step_bytes = seg.tail_block.len() as u64 + (seg.size - seg.written);
            let dsync_step =
                !file.writes_are_durable() && self.wants_dsync_step(&inner, step_bytes);
            (file, seg.size, seg.written, dsync_step)
        };
        // Each write through an O_DSYNC file is durable on completion: it streams as under
        // `none`. Otherwise `always` bounds the step so that its fdatasync comes promptly;
        // a small step written with RWF_DSYNC is one such bounded step, durable by itself.
        let dsync_file = file.writes_are_durable();
        let durable_writes = dsync_file || dsync_step;
        let always = self.config.flush_policy == FlushPolicy::Always && !dsync_file;
        let _dsync_guard = dsync_step.then(|| self.budgets.dsync_write_started());
        let first_submitted = submitted;
        let mut queue: VecDeque<Chunk> = VecDeque::new();
        let mut partial_outstanding = false;
        loop {
            let mut queued = false;
            while queue.len() < self.config.writes_in_flight_max && !partial_outstanding {
                let (limit, head) = {
                    let inner = self.inner.borrow();
                    let seg = inner.segments.get(&base).expect("segment");
                    let limit = if always { target_end } else { seg.size };
                    (limit, seg.tail_block.len())
                };
                // Bounded steps, so checkpoints and waiting truncations get their turn.
                let limit = limit.min(first_submitted + self.config.write_step_bytes_max);
                let avail = limit.saturating_sub(submitted) as usize;
                if avail == 0 {
                    break;
                }
                let start = align_down(submitted);
                debug_assert_eq!((submitted - start) as usize, head);
                let full = head + avail;
                let len = if full >= chunk_bytes {
                    chunk_bytes
                } else if queue.is_empty() || always {
                    full
                } else {
                    break; // wait for more data or a completion
                };
                let end_pos = start + len as u64;
                let padded = align_up(len as u64) as usize;
                let device_bytes: usize = queue.iter().map(|c| c.device_bytes).sum();
                if !queue.is_empty() && device_bytes + padded > self.config.in_flight_bytes_max {
                    break; // the device holds this log's share; wait for a completion
                }
                self.ensure_preallocated(&file, base, start + padded as u64)
                    .await?;
                // `fill_chunk` writes bytes 0..len; only the block padding is zeroed.
                let mut buf = file.alloc_buf_zeroed_from(padded, len);
                let last_next = self.fill_chunk(base, buf.as_mut(), len);
                let tail = if !end_pos.is_multiple_of(BLOCK_BYTES as u64) {
                    partial_outstanding = true;
                    let t0 = (align_down(end_pos) - start) as usize;
                    Some(buf.as_ref()[t0..len].to_vec())
                } else {
                    None
                };
                let file2 = file.clone();
                // Queued now (the flusher just woke producers that would run first);
                // handed to the kernel below, before the completions are awaited.
                let task = crate::runtime::spawn_started(async move {
                    if dsync_step {
                        file2.write_at_durable(buf, start).await
                    } else {
                        file2.write_at(buf, start).await
                    }
                })
                .await;
                queued = true;
                queue.push_back(Chunk {
                    start,
                    device_bytes: padded,
                    end_pos,
                    data_bytes: (end_pos - submitted) as usize,
                    last_next,
                    tail,
                    durable: durable_writes,
                    task,
                });
                submitted = end_pos;
                self.stats.writes.set(self.stats.writes.get() + 1);
                self.stats
                    .write_bytes
                    .set(self.stats.write_bytes.get() + padded as u64);
            }
            if queued {
                // To the device now: completions consumed below wake producers, and the
                // executor's own I/O poll would come only after they all ran.
                crate::runtime::submit_io_now();
            }
            let Some(front) = queue.front_mut() else {
                break;
            };
            // Completions are consumed in submission order: the written position can only
            // advance contiguously, and later writes keep running meanwhile.
            let seen = self.shared.work.generation();
            let result = if always || partial_outstanding {
                Some(join_write(&mut front.task).await)
            } else {
                let wait_data = async {
                    self.shared.work.wait(seen).await;
                    None
                };
                futures_lite::future::or(
                    async { Some(join_write(&mut front.task).await) },
                    wait_data,
                )
                .await
            };
            let Some(result) = result else {
                continue; // new data arrived: try to submit more
            };
            result?;
            let c = queue.pop_front().expect("front");
            if c.tail.is_some() {
                partial_outstanding = false;
            }
            self.chunk_written(base, c);
        }
        debug_assert!(queue.is_empty());
        Ok(())
    }

    /// Copies the next `len` bytes of the segment's unwritten data (kept partial block
    /// first, then pending batches) into `dst`. Returns the next offset after the last batch
    /// that this chunk completes.
    fn fill_chunk(&self, base: i64, dst: &mut [u8], len: usize) -> Option<i64> {
        let mut inner = self.inner.borrow_mut();
        let seg = inner.segments.get_mut(&base).expect("segment");
        let head = std::mem::take(&mut seg.tail_block);
        dst[..head.len()].copy_from_slice(&head);
        let mut filled = head.len();
        let mut last_next = None;
        while filled < len {
            let front = seg.pending.front().expect("pending data for the chunk");
            let rest = &front.bytes[seg.pending_front_taken..];
            let n = rest.len().min(len - filled);
            dst[filled..filled + n].copy_from_slice(&rest[..n]);
            filled += n;
            seg.pending_front_taken += n;
            if seg.pending_front_taken == front.bytes.len() {
                last_next = Some(front.next_offset);
                seg.pending.pop_front();
                seg.pending_front_taken = 0;
            }
        }
        last_next
    }

    /// Makes sure `[.., end)` of the active segment's file is allocated before a write
    /// there. Logs that sync often and little at a time (`always`, under
    /// `LogConfig::zero_fill_sync_bytes_max` per sync) grow by zero fills that run one step ahead of
    /// the writes in the background, so the fill never stalls an append and every data
    /// write is an overwrite (see [`StorageFile::zero_fill`]); other logs grow by
    /// fallocate, which costs no device bandwidth.
    async fn ensure_preallocated(&self, file: &Rc<S::File>, base: i64, end: u64) -> Result<()> {
        if end > self.preallocated(base) {
            self.settle_fill(base).await?;
        }
        let zero = self.grows_by_zero_fills();
        let (from, to) = {
            let inner = self.inner.borrow();
            let seg = inner.segments.get(&base).expect("segment");
            let to = if zero {
                align_up(end.max(seg.preallocated + self.config.preallocate_step_min_bytes))
            } else {
                self.next_preallocation(seg.preallocated, end)
            };
            (seg.preallocated, to)
        };
        if end > from {
            if zero {
                file.zero_fill(align_up(from), to).await?;
                self.segment_extent_written(base, align_up(from), to);
            } else {
                file.preallocate(to).await?;
            }
            self.set_preallocated(base, to);
        }
        if zero {
            self.start_fill_ahead(file, base, end);
        }
        // The write about to go to `[.., end)` must not race a zero fill: every running
        // fill starts at or after the preallocated end, and the write ends before it.
        let inner = self.inner.borrow();
        let seg = inner.segments.get(&base).expect("segment");
        assert!(
            end <= seg.preallocated,
            "write to {end} past the preallocated {}",
            seg.preallocated
        );
        assert!(
            seg.fill.as_ref().is_none_or(|f| f.from >= end),
            "write to {end} over a running zero fill"
        );
        Ok(())
    }

    /// Whether the active segment grows by zero fills rather than fallocate: `always` logs
    /// whose syncs cover little on average (a new log, with no syncs yet, starts with
    /// fallocate: a partition that gets one batch must not cost a zero fill). A segment
    /// created by such a log starts with a zero-filled step as well, so its syncs can be
    /// shared ones from its first step on.
    fn grows_by_zero_fills(&self) -> bool {
        self.config.flush_policy == FlushPolicy::Always
            && self.inner.borrow().sync_bytes_avg < self.config.zero_fill_sync_bytes_max
    }

    /// Where to grow a file preallocated to `preallocated` that must hold `end`: steps
    /// double with the file, within the configured bounds. Pure.
    fn next_preallocation(&self, preallocated: u64, end: u64) -> u64 {
        let step = preallocated.clamp(
            self.config.preallocate_step_min_bytes,
            self.config.preallocate_step_max_bytes,
        );
        align_up(end.max(preallocated + step))
    }

    fn preallocated(&self, base: i64) -> u64 {
        self.inner
            .borrow()
            .segments
            .get(&base)
            .expect("segment")
            .preallocated
    }

    fn set_preallocated(&self, base: i64, to: u64) {
        let mut inner = self.inner.borrow_mut();
        let seg = inner.segments.get_mut(&base).expect("segment");
        debug_assert!(seg.fill.is_none(), "a fill runs past the preallocated end");
        seg.preallocated = seg.preallocated.max(to);
    }

    /// Whether a flush step of `step_bytes` (kept partial block included) is written with
    /// `RWF_DSYNC` instead of a write and an fdatasync: under `always`, when it fits one
    /// write of at most `LogConfig::dsync_step_bytes_max`, nothing before the active
    /// segment waits for its own sync, and the shard allows it (no sync runs, and fewer
    /// than its sync slots' worth of durable writes). One operation then makes it durable
    /// — no io_uring worker hand-off and one wake-up instead of two — while concurrent
    /// small syncs of many logs still group (each durable write pays a device cache flush
    /// of its own).
    fn wants_dsync_step(&self, inner: &super::Inner<S>, step_bytes: u64) -> bool {
        let max = self
            .config
            .dsync_step_bytes_max
            .min(self.config.write_chunk_bytes as u64);
        self.config.flush_policy == FlushPolicy::Always
            && step_bytes > 0
            && step_bytes <= max
            && inner
                .segments
                .values()
                .rev()
                .nth(1)
                .is_none_or(|s| s.finalized)
            && self.budgets.dsync_step_allowed()
    }

    /// Whether new segment files of this log are opened for durable (O_DSYNC) writes.
    fn wants_dsync_writes(&self) -> bool {
        self.config.dsync_writes && self.config.flush_policy == FlushPolicy::Always
    }

    /// A segment file opened without O_DSYNC (by recovery after a restart, or before the
    /// topic's policy became `always`) is reopened with it before the next writes; readers
    /// holding the old handle keep it until they drop it.
    async fn reopen_for_dsync_writes(&self, base: i64) -> Result<()> {
        if !self.wants_dsync_writes() {
            return Ok(());
        }
        let plain = {
            let inner = self.inner.borrow();
            let seg = inner.segments.get(&base).expect("segment");
            seg.file.as_ref().is_some_and(|f| !f.writes_are_durable())
        };
        if !plain {
            return Ok(());
        }
        let path = self.dir.join(segment_file_name(base, "log"));
        let file = Rc::new(self.storage.open_dsync(&path, false).await?);
        let mut inner = self.inner.borrow_mut();
        let seg = inner.segments.get_mut(&base).expect("segment");
        seg.file = Some(file);
        Ok(())
    }

    /// Once less than one step of zero-filled room is left, fill the next step in the
    /// background: by the time the writes reach its end the fill is (normally) done.
    fn start_fill_ahead(&self, file: &Rc<S::File>, base: i64, end: u64) {
        let mut inner = self.inner.borrow_mut();
        let seg = inner.segments.get_mut(&base).expect("segment");
        if seg.fill.is_some() || seg.sealed {
            return;
        }
        let from = seg.preallocated;
        let room = from.saturating_sub(end);
        // Fills go in the smallest step, not the doubling one: a zero written ahead and
        // never used is trimmed away at seal or close but still cost device bandwidth
        // (doubling steps wrote 5x the data for 256 small partitions). One step of room
        // left gives the fill a whole step's worth of appends to complete.
        let step = self.config.preallocate_step_min_bytes;
        if room > step {
            return;
        }
        let to = align_up(from + step);
        let file = file.clone();
        let task =
            glommio::spawn_local(async move { file.zero_fill(align_up(from), to).await }).detach();
        seg.fill = Some(ZeroFill { from, to, task });
    }

    /// Waits for a background zero fill of the segment, if one runs: before writing past
    /// the preallocated end, and before anything truncates or closes the file (a fill
    /// finishing later would extend it again).
    pub(super) async fn settle_fill(&self, base: i64) -> Result<()> {
        let fill = {
            let mut inner = self.inner.borrow_mut();
            inner.segments.get_mut(&base).and_then(|s| s.fill.take())
        };
        let Some(mut fill) = fill else {
            return Ok(());
        };
        join_write(&mut fill.task).await?;
        if let Some(seg) = self.inner.borrow_mut().segments.get_mut(&base) {
            seg.preallocated = seg.preallocated.max(fill.to);
            seg.extent_written(align_up(fill.from), fill.to);
        }
        Ok(())
    }

    fn segment_extent_written(&self, base: i64, from: u64, to: u64) {
        let mut inner = self.inner.borrow_mut();
        let seg = inner.segments.get_mut(&base).expect("segment");
        seg.extent_written(from, to);
    }

    /// A chunk completed, and every chunk before it: advance the written position.
    fn chunk_written(&self, base: i64, c: Chunk) {
        {
            let mut inner = self.inner.borrow_mut();
            let seg = inner.segments.get_mut(&base).expect("segment");
            assert!(c.end_pos > seg.written, "written position must grow");
            seg.written = c.end_pos;
            seg.extent_written(c.start, c.start + c.device_bytes as u64);
            if let Some(tail) = c.tail {
                seg.tail_block = tail;
            }
            if let Some(next) = c.last_next {
                inner.written_offset = inner.written_offset.max(Offset(next));
            }
            if c.durable {
                // Every earlier chunk completed first, each durable itself: everything
                // written is durable. Bytes per durable write feed the zero-fill choice as
                // bytes per fdatasync do.
                inner.synced_offset = inner.synced_offset.max(inner.written_offset);
                inner.bytes_since_sync = inner.bytes_since_sync.saturating_sub(c.data_bytes as u64);
                inner.sync_bytes_avg =
                    sync_bytes_average(inner.sync_bytes_avg, c.data_bytes as u64);
            }
            inner.in_flight_bytes -= c.data_bytes;
        }
        let shard = self.budgets.in_flight_bytes.get();
        self.budgets.in_flight_bytes.set(shard - c.data_bytes);
        self.budgets.space.notify_all();
        self.budgets.evict();
        self.notify_changed();
    }

    /// A sealed segment: sync, trim the preallocated tail, write its indexes, close it.
    async fn finalize_segment(&self, base: i64) -> Result<()> {
        self.settle_fill(base).await?;
        let (file, size, index) = {
            let mut inner = self.inner.borrow_mut();
            let seg = inner.segments.get_mut(&base).expect("segment");
            debug_assert!(seg.pending.is_empty() && seg.written == seg.size);
            seg.index.seal(base);
            (seg.file.clone().expect("file"), seg.size, seg.index.clone())
        };
        file.truncate(size).await?;
        {
            let _slot = self.budgets.sync_slot().await;
            crate::runtime::rushed(file.fdatasync()).await?;
        }
        self.stats.fdatasyncs.set(self.stats.fdatasyncs.get() + 1);
        write_index_files(&self.storage, &self.dir, base, &index).await?;
        // The entries are on disk now: memory keeps only the summary (read back on demand
        // through the shard's bounded index cache).
        self.forget_index(base);
        let mut inner = self.inner.borrow_mut();
        let seg = inner.segments.get_mut(&base).expect("segment");
        seg.file = None;
        seg.finalized = true;
        seg.tail_block = Vec::new();
        seg.index = seg.index.summary();
        let next = seg.next_offset;
        // Everything up to the end of this segment is durable; nothing before it is pending
        // since segments are flushed in order.
        inner.synced_offset = inner.synced_offset.max(Offset(next));
        if inner.recovery_point.0 < next {
            inner.recovery_point = Offset(next);
            inner.recovery_point_dirty = true;
        }
        drop(inner);
        self.notify_changed();
        Ok(())
    }

    /// fdatasync of the active segment when the policy (or `force`) asks; then the recovery
    /// point, preceded by the epoch checkpoint. Epochs learnt from appended batches need no
    /// checkpoint before the batches are durable: recovery rescans everything past the
    /// recovery point and relearns them from the batches' `partitionLeaderEpoch`. So the
    /// epoch checkpoint is written only before the recovery point moves past them (or on
    /// close, truncation, explicit assignment), not on every first append of an epoch.
    async fn sync_by_policy(&self, force: bool) -> Result<()> {
        let now_ms = self.clock.now_ms();
        let (target, file, shared, active_base, extent) = {
            let inner = self.inner.borrow();
            let due = force
                || self
                    .sync_due_in_ms(&inner, now_ms)
                    .is_some_and(|ms| ms <= 0);
            let mut back = inner.segments.values().rev();
            let active = back.next().expect("active segment");
            let file = active.file.clone();
            let target =
                (due && inner.written_offset > inner.synced_offset).then_some(inner.written_offset);
            // Segments finalize in order, each with its own fdatasync: if the one before
            // the active segment is finalized, everything unsynced is in the active one.
            let shared = self.config.shared_syncs
                && back.next().is_none_or(|s| s.finalized)
                && align_up(active.written) <= active.overwrite_durable_end;
            (target, file, shared, active.base, active.written_extent_end)
        };
        if let (Some(target), Some(file)) = (target, file) {
            // Nothing is written to this log while it waits (the flusher is the only
            // writer and it is here), so `target` is still everything written.
            let covered_bytes = self.inner.borrow().bytes_since_sync;
            if shared && !self.budgets.own_sync_is_sooner() {
                // Every unsynced write of this log overwrote durable blocks and completed
                // before this call: one device flush shared by the shard covers it.
                self.budgets.flush_device(&*file).await?;
                self.stats
                    .shared_syncs
                    .set(self.stats.shared_syncs.get() + 1);
            } else {
                let slot = self.budgets.sync_slot().await;
                crate::runtime::rushed(file.fdatasync()).await?;
                drop(slot);
                self.stats.fdatasyncs.set(self.stats.fdatasyncs.get() + 1);
                // The blocks written before the call now have durable allocation and
                // size: later writes there are overwrites.
                // (The segment may have rolled meanwhile: it is found by its base.)
                let mut inner = self.inner.borrow_mut();
                if let Some(seg) = inner.segments.get_mut(&active_base) {
                    seg.overwrite_durable_end = seg.overwrite_durable_end.max(extent);
                }
            }
            let mut inner = self.inner.borrow_mut();
            inner.bytes_since_sync -= covered_bytes;
            inner.sync_bytes_avg = sync_bytes_average(inner.sync_bytes_avg, covered_bytes);
            inner.synced_offset = inner.synced_offset.max(target);
            inner.messages_since_sync = 0;
            inner.last_sync_ms = now_ms;
            drop(inner);
            self.notify_changed();
        }
        if self.inner.borrow().recovery_point_dirty {
            if self.inner.borrow().epochs_dirty {
                self.write_epoch_checkpoint().await?;
            }
            let rp = {
                let mut inner = self.inner.borrow_mut();
                inner.recovery_point_dirty = false;
                inner.recovery_point
            };
            storage::write_file_atomic(
                &self.storage,
                &self.dir,
                RECOVERY_POINT_CHECKPOINT,
                &checkpoint::encode_offset(rp),
            )
            .await?;
        }
        Ok(())
    }
}
