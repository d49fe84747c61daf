//! The flusher: one task per log that turns the in-memory tail into file writes and
//! fdatasyncs (group commit), creates and seals segments, and writes the checkpoints the
//! durable data depends on before declaring it durable.

use std::rc::{Rc, Weak};

use futures::future::try_join_all;

use super::checkpoint::{self, RECOVERY_POINT_CHECKPOINT};
use super::recovery::write_index_files;
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
            let wait_ms = match log.flush_wait() {
                FlushWait::Now => {
                    let guard = log.io_lock.lock().await;
                    let r = log.flush_step().await;
                    drop(guard);
                    if let Err(e) = r {
                        log.fail(e.to_string());
                        break;
                    }
                    drop(log);
                    // Let a waiting truncation or reader take the lock between steps.
                    futures_lite::future::yield_now().await;
                    continue;
                }
                FlushWait::Idle => None,
                FlushWait::Timer(ms) => Some(ms),
                FlushWait::Stop => break,
            };
            drop(log);
            match wait_ms {
                None => shared.work.wait(seen).await,
                Some(ms) => {
                    let sleep =
                        glommio::timer::sleep(std::time::Duration::from_millis(ms.max(1) as u64));
                    futures_lite::future::or(shared.work.wait(seen), sleep).await
                }
            }
        }
    })
    .detach();
}

pub enum FlushWait {
    Now,
    Idle,
    /// Only an interval fsync is due, in this many milliseconds.
    Timer(i64),
    Stop,
}

impl<S: Storage> Log<S> {
    /// Decides whether the flusher has work now.
    pub(super) fn flush_wait(&self) -> FlushWait {
        let inner = self.inner.borrow();
        if inner.failed.is_some() || inner.closed {
            return FlushWait::Stop;
        }
        if inner.segments.values().any(|s| s.needs_flush_work())
            || inner.epochs_dirty
            || inner.recovery_point_dirty
        {
            return FlushWait::Now;
        }
        if inner.written_offset <= inner.synced_offset {
            return FlushWait::Idle;
        }
        match self.config.flush_policy {
            FlushPolicy::Always => FlushWait::Now,
            FlushPolicy::None => FlushWait::Idle,
            FlushPolicy::Interval {
                flush_ms,
                flush_messages,
            } => {
                if inner.messages_since_sync >= flush_messages {
                    return FlushWait::Now;
                }
                let due_in = inner.last_sync_ms.saturating_add(flush_ms) - self.clock.now_ms();
                if due_in <= 0 {
                    FlushWait::Now
                } else {
                    FlushWait::Timer(due_in)
                }
            }
        }
    }

    /// One round of the flusher; the caller holds `io_lock`. Writes every pending batch of
    /// every segment in order (creating and sealing segments on the way), then syncs the
    /// active segment if the policy asks, writing dirty checkpoints first.
    pub(super) async fn flush_step(&self) -> Result<()> {
        loop {
            let job = {
                let inner = self.inner.borrow();
                inner
                    .segments
                    .values()
                    .find(|s| s.needs_flush_work())
                    .map(|s| s.base)
            };
            let Some(base) = job else { break };
            self.process_segment(base).await?;
        }
        self.sync_by_policy(false).await
    }

    /// Writes and syncs everything (truncation, close): afterwards disk == memory.
    pub(super) async fn flush_all_locked(&self) -> Result<()> {
        self.flush_step().await?;
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
            let file = self.storage.open(&path, true).await?;
            let step = self.config.preallocate_step_min_bytes;
            file.preallocate(step).await?;
            // The new name must be durable before any data in it is declared durable.
            self.storage.sync_dir(&self.dir).await?;
            let mut inner = self.inner.borrow_mut();
            let seg = inner
                .segments
                .get_mut(&base)
                .expect("segment vanished under the io lock");
            seg.created = true;
            seg.preallocated = step;
            seg.file = Some(Rc::new(file));
        }
        loop {
            let has_pending = self
                .inner
                .borrow()
                .segments
                .get(&base)
                .is_some_and(|s| !s.pending.is_empty());
            if !has_pending {
                break;
            }
            self.write_pending(base).await?;
        }
        let seal = self
            .inner
            .borrow()
            .segments
            .get(&base)
            .is_some_and(|s| s.sealed && !s.finalized);
        if seal {
            self.finalize_segment(base).await?;
        }
        Ok(())
    }

    /// Writes pending batches of one segment: the kept partial block plus the batches,
    /// block-padded, in chunks written concurrently.
    async fn write_pending(&self, base: i64) -> Result<()> {
        let step_bytes_max = self.config.write_chunk_bytes * self.config.writes_in_flight_max;
        let (file, start, head, batches, prealloc_to) = {
            let mut inner = self.inner.borrow_mut();
            let seg = inner.segments.get_mut(&base).expect("segment");
            let start = align_down(seg.written);
            let head = std::mem::take(&mut seg.tail_block);
            debug_assert_eq!(head.len() as u64, seg.written - start);
            let mut batches = Vec::new();
            let mut total = head.len();
            while let Some(b) = seg.pending.front() {
                if !batches.is_empty() && total + b.bytes.len() > step_bytes_max {
                    break;
                }
                total += b.bytes.len();
                batches.push(seg.pending.pop_front().expect("front checked"));
            }
            let end = start + align_up(total as u64);
            let prealloc_to = (end > seg.preallocated).then(|| {
                let step = seg.preallocated.clamp(
                    self.config.preallocate_step_min_bytes,
                    self.config.preallocate_step_max_bytes,
                );
                align_up(end.max(seg.preallocated + step))
            });
            (
                seg.file.clone().expect("created segment has a file"),
                start,
                head,
                batches,
                prealloc_to,
            )
        };
        if let Some(to) = prealloc_to {
            file.preallocate(to).await?;
            self.inner
                .borrow_mut()
                .segments
                .get_mut(&base)
                .expect("segment")
                .preallocated = to;
        }
        // Copy head + batches into block-aligned chunk buffers.
        let total: usize = head.len() + batches.iter().map(|b| b.bytes.len()).sum::<usize>();
        let padded = align_up(total as u64) as usize;
        let chunk = self.config.write_chunk_bytes;
        let mut bufs = Vec::with_capacity(padded.div_ceil(chunk));
        let mut sources = std::iter::once(&head[..]).chain(batches.iter().map(|b| &b.bytes[..]));
        let mut src: &[u8] = sources.next().unwrap_or(&[]);
        let mut done = 0;
        while done < padded {
            let len = chunk.min(padded - done);
            let mut buf = file.alloc_buf(len);
            let dst = buf.as_mut();
            let mut filled = 0;
            while filled < len {
                if src.is_empty() {
                    match sources.next() {
                        Some(s) => {
                            src = s;
                            continue;
                        }
                        None => break, // padding stays zero
                    }
                }
                let n = src.len().min(len - filled);
                dst[filled..filled + n].copy_from_slice(&src[..n]);
                src = &src[n..];
                filled += n;
            }
            bufs.push((buf, start + done as u64));
            done += len;
        }
        // The last partial block is kept to be rewritten with the next write.
        let tail_len = total % BLOCK_BYTES;
        let tail_block = if tail_len == 0 {
            Vec::new()
        } else {
            let (last, _) = bufs.last().expect("non-empty write");
            let in_last = (padded - total).abs_diff(0);
            let last_ref = last.as_ref();
            let end_in_last = last_ref.len() - in_last;
            last_ref[end_in_last - tail_len..end_in_last].to_vec()
        };
        try_join_all(bufs.into_iter().map(|(buf, pos)| file.write_at(buf, pos))).await?;
        let written_bytes = total - head.len();
        let next_offset = batches.last().expect("at least one batch").next_offset;
        {
            let mut inner = self.inner.borrow_mut();
            let seg = inner.segments.get_mut(&base).expect("segment");
            seg.written += written_bytes as u64;
            assert_eq!(
                seg.written,
                start + total as u64,
                "written position drifted"
            );
            seg.tail_block = tail_block;
            inner.written_offset = inner.written_offset.max(Offset(next_offset));
            inner.in_flight_bytes -= written_bytes;
        }
        let shard = self.budgets.in_flight_bytes.get();
        self.budgets.in_flight_bytes.set(shard - written_bytes);
        self.budgets.space.notify_all();
        self.budgets.evict();
        self.changed.notify_all();
        Ok(())
    }

    /// A sealed segment: sync, trim the preallocated tail, write its indexes, close it.
    async fn finalize_segment(&self, base: i64) -> Result<()> {
        let (file, size, index) = {
            let mut inner = self.inner.borrow_mut();
            let seg = inner.segments.get_mut(&base).expect("segment");
            debug_assert!(seg.pending.is_empty() && seg.written == seg.size);
            seg.index.seal(base);
            (seg.file.clone().expect("file"), seg.size, seg.index.clone())
        };
        file.truncate(size).await?;
        file.fdatasync().await?;
        write_index_files(&self.storage, &self.dir, base, &index).await?;
        let mut inner = self.inner.borrow_mut();
        let seg = inner.segments.get_mut(&base).expect("segment");
        seg.file = None;
        seg.finalized = true;
        seg.tail_block = Vec::new();
        let next = seg.next_offset;
        // Everything up to the end of this segment is durable; nothing before it is pending
        // since segments are flushed in order.
        inner.synced_offset = inner.synced_offset.max(Offset(next));
        if inner.recovery_point.0 < next {
            inner.recovery_point = Offset(next);
            inner.recovery_point_dirty = true;
        }
        drop(inner);
        self.changed.notify_all();
        Ok(())
    }

    /// fdatasync of the active segment when the policy (or `force`) asks, after writing the
    /// epoch checkpoint the synced batches may depend on.
    async fn sync_by_policy(&self, force: bool) -> Result<()> {
        if self.inner.borrow().epochs_dirty {
            self.write_epoch_checkpoint().await?;
        }
        let now_ms = self.clock.now_ms();
        let (target, file) = {
            let inner = self.inner.borrow();
            let due = force
                || match self.config.flush_policy {
                    FlushPolicy::Always => true,
                    FlushPolicy::None => false,
                    FlushPolicy::Interval {
                        flush_ms,
                        flush_messages,
                    } => {
                        inner.messages_since_sync >= flush_messages
                            || now_ms - inner.last_sync_ms >= flush_ms
                    }
                };
            let active = inner.segments.values().next_back().expect("active segment");
            let file = active.file.clone();
            (due && inner.written_offset > inner.synced_offset)
                .then_some(inner.written_offset)
                .zip(file)
        }
        .map_or((None, None), |(t, f)| (Some(t), Some(f)));
        if let (Some(target), Some(file)) = (target, file) {
            file.fdatasync().await?;
            let mut inner = self.inner.borrow_mut();
            inner.synced_offset = inner.synced_offset.max(target);
            inner.messages_since_sync = 0;
            inner.last_sync_ms = now_ms;
            drop(inner);
            self.changed.notify_all();
        }
        if self.inner.borrow().recovery_point_dirty {
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
