//! Operations that remove or reshape data: truncation (replication), DeleteRecords and
//! retention (log start moves, whole segments deleted), close and topic deletion. All run
//! under the log's io lock, after the tail is written, so disk and memory agree.

use std::rc::Rc;

use super::checkpoint::{
    self, CLEAN_SHUTDOWN_MARKER, LOG_START_CHECKPOINT, RECOVERY_POINT_CHECKPOINT,
};
use super::index::SegmentIndex;
use super::recovery::write_index_files;
use super::segment::{self, Segment};
use super::{segment_file_name, Log};
use crate::storage::{self, align_down, Storage, StorageFile};
use crate::types::Offset;
use crate::{Error, Result};

impl<S: Storage> Log<S> {
    /// Removes every batch at and after `offset` (the whole batch containing it), fixes the
    /// indexes, epoch cache and checkpoints. A target below the log start empties the log
    /// and restarts it at `offset` (Kafka's `truncateFullyAndStartAt`).
    pub async fn truncate_to(&self, offset: Offset) -> Result<()> {
        let _guard = self.io_lock.lock().await;
        self.check_writable()?;
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        {
            let mut inner = self.inner.borrow_mut();
            inner.truncating = true;
            inner.truncations += 1;
        }
        // Read-ahead data may cover bytes about to be replaced.
        self.readahead.borrow_mut().take();
        let r = self.truncate_locked(offset).await;
        self.inner.borrow_mut().truncating = false;
        if let Err(e) = &r {
            self.fail(format!("truncation failed: {e}"));
        }
        self.notify_changed();
        r
    }

    async fn truncate_locked(&self, offset: Offset) -> Result<()> {
        self.flush_all_locked().await?;
        // A zero fill still running would extend a file after it is cut (or write into
        // one about to be deleted).
        let bases: Vec<i64> = self.inner.borrow().segments.keys().copied().collect();
        for base in bases {
            self.settle_fill(base).await?;
        }
        let (doomed, keep) = {
            let inner = self.inner.borrow();
            let doomed: Vec<i64> = inner.segments.range(offset.0..).map(|(b, _)| *b).collect();
            let keep = inner
                .segments
                .range(..offset.0)
                .next_back()
                .filter(|_| offset >= inner.log_start)
                .map(|(b, s)| (*b, s.file.clone(), s.written));
            (doomed, keep)
        };
        // Find the cut in the segment that keeps data, rebuilding its index by a scan.
        let kept = match keep {
            None => None,
            Some((base, file, size)) => {
                let file = match file {
                    Some(f) => f,
                    None => Rc::new(
                        self.storage
                            .open(&self.dir.join(segment_file_name(base, "log")), true)
                            .await?,
                    ),
                };
                let r = segment::scan(
                    &*file,
                    base,
                    0,
                    SegmentIndex::new(),
                    size,
                    self.config.index_interval_bytes,
                    u32::MAX as u64,
                    Some(offset.0),
                )
                .await?;
                file.truncate(r.valid_end).await?;
                file.fdatasync().await?;
                let aligned = align_down(r.valid_end);
                let tail = file
                    .read_at(aligned, (r.valid_end - aligned) as usize)
                    .await?;
                Some((base, file, r, tail))
            }
        };
        for base in doomed.iter().chain(kept.iter().map(|(b, ..)| b)) {
            self.forget_index(*base);
        }
        for base in &doomed {
            for ext in ["log", "index", "timeindex"] {
                let p = self.dir.join(segment_file_name(*base, ext));
                if self.storage.exists(&p).await? {
                    self.storage.remove_file(&p).await?;
                }
            }
        }
        self.storage.sync_dir(&self.dir).await?;
        // Memory follows disk.
        let new_end;
        let dropped_cache;
        {
            let mut guard = self.inner.borrow_mut();
            let inner = &mut *guard;
            for base in &doomed {
                inner.segments.remove(base);
            }
            match kept {
                Some((base, file, r, tail)) => {
                    let seg = inner.segments.get_mut(&base).expect("kept segment");
                    // Kafka: the log end becomes the target even when the batch holding it
                    // went whole (a gap the next append skips over).
                    new_end = offset;
                    debug_assert!(r.next_offset <= offset.0);
                    seg.size = r.valid_end;
                    seg.written = r.valid_end;
                    seg.next_offset = offset.0;
                    seg.index = r.index;
                    seg.tail_block = tail;
                    seg.preallocated = r.valid_end;
                    seg.reset_extents(r.valid_end);
                    seg.file = Some(file);
                    seg.sealed = false;
                    seg.finalized = false;
                    seg.pending.clear();
                    seg.pending_front_taken = 0;
                }
                None => {
                    new_end = offset;
                    inner.log_start = inner.log_start.min(offset);
                    inner
                        .segments
                        .insert(offset.0, Segment::new_active(offset.0));
                }
            }
            // The truncated segment is active again; segments created after it are gone.
            debug_assert!(inner
                .segments
                .values()
                .next_back()
                .is_some_and(|s| !s.sealed));
            inner.next_offset = new_end;
            inner.written_offset = new_end;
            inner.synced_offset = inner.synced_offset.min(new_end);
            inner.recovery_point = inner.recovery_point.min(new_end);
            inner.epochs.truncate_from_end(new_end);
            let before = inner.cache.len();
            let keep_n = inner.cache.partition_point(|c| c.last < new_end.0);
            let dropped: usize = inner.cache.iter().skip(keep_n).map(|c| c.bytes.len()).sum();
            inner.cache.truncate(keep_n);
            debug_assert!(inner.cache.len() <= before);
            inner.cache_bytes -= dropped;
            dropped_cache = dropped;
        }
        self.budgets
            .tail_cache_bytes
            .set(self.budgets.tail_cache_bytes.get() - dropped_cache);
        self.write_epoch_checkpoint().await?;
        let (rp, log_start) = {
            let inner = self.inner.borrow();
            (inner.recovery_point, inner.log_start)
        };
        self.write_offset_checkpoints(rp, log_start).await?;
        // Everything kept was fdatasync'd above.
        let mut inner = self.inner.borrow_mut();
        inner.synced_offset = inner.next_offset;
        Ok(())
    }

    /// DeleteRecords: advances the log start offset to `offset` (durably, before returning)
    /// and deletes the segments entirely below it. Returns the new log start.
    pub async fn delete_records_before(&self, offset: Offset) -> Result<Offset> {
        let _guard = self.io_lock.lock().await;
        self.check_writable()?;
        {
            let inner = self.inner.borrow();
            if offset > inner.next_offset {
                return Err(Error::OffsetOutOfRange {
                    offset: offset.0,
                    start: inner.log_start.0,
                    end: inner.next_offset.0,
                });
            }
            if offset <= inner.log_start {
                return Ok(inner.log_start);
            }
        }
        self.advance_log_start_locked(offset).await?;
        Ok(self.log_start_offset())
    }

    /// Moves the log start (if `offset` is past it), checkpoints it (and the epoch cache),
    /// then deletes the sealed segments that lie entirely below it.
    async fn advance_log_start_locked(&self, offset: Offset) -> Result<()> {
        let moved = {
            let mut inner = self.inner.borrow_mut();
            let moved = offset > inner.log_start;
            if moved {
                inner.log_start = offset;
                inner.epochs.truncate_from_start(offset);
            }
            moved
        };
        let start = self.log_start_offset();
        if moved {
            storage::write_file_atomic(
                &self.storage,
                &self.dir,
                LOG_START_CHECKPOINT,
                &checkpoint::encode_offset(start),
            )
            .await?;
            self.write_epoch_checkpoint().await?;
            self.notify_changed();
        }
        let doomed: Vec<i64> = {
            let inner = self.inner.borrow();
            let bases: Vec<i64> = inner.segments.keys().copied().collect();
            bases
                .windows(2)
                .filter(|w| w[1] <= start.0 && inner.segments[&w[0]].finalized)
                .map(|w| w[0])
                .collect()
        };
        self.delete_segments_locked(&doomed).await
    }

    async fn delete_segments_locked(&self, bases: &[i64]) -> Result<()> {
        if bases.is_empty() {
            return Ok(());
        }
        {
            let mut inner = self.inner.borrow_mut();
            for b in bases {
                inner.segments.remove(b);
            }
        }
        for b in bases {
            self.forget_index(*b);
        }
        for base in bases {
            for ext in ["log", "index", "timeindex"] {
                let p = self.dir.join(segment_file_name(*base, ext));
                if self.storage.exists(&p).await? {
                    self.storage.remove_file(&p).await?;
                }
            }
        }
        self.storage.sync_dir(&self.dir).await
    }

    /// Kafka's retention: deletes whole segments, oldest first, beyond `retention.ms` (by
    /// their largest timestamp) or `retention.bytes` (while what remains still holds that
    /// many bytes), and advances the log start past them. The active segment qualifies as
    /// well when it is not empty (Kafka's `deletableSegments`): since a log always keeps a
    /// segment, it is first rolled — a new empty active segment at the log end — and the
    /// log start then moves to the log end. Without that an idle partition whose only
    /// segment expired would keep its data forever.
    pub async fn enforce_retention(&self) -> Result<()> {
        let _guard = self.io_lock.lock().await;
        self.check_writable()?;
        let plan = self.retention_plan(self.clock.now_ms());
        let new_start = match plan {
            RetentionPlan::Keep => return Ok(()),
            RetentionPlan::DeleteBelow(start) => start,
            RetentionPlan::RollAndDeleteAll => {
                let start = self.roll_for_retention();
                // Writes, seals (indexes, close) the rolled segment and creates the new one,
                // with their directory fsyncs, before anything is deleted.
                self.flush_all_locked().await?;
                start
            }
        };
        self.advance_log_start_locked(new_start).await?;
        debug_assert!(self
            .inner
            .borrow()
            .segments
            .keys()
            .next()
            .is_some_and(|b| *b <= new_start.0));
        Ok(())
    }

    /// Which segments retention removes now (no I/O).
    fn retention_plan(&self, now_ms: i64) -> RetentionPlan {
        let inner = self.inner.borrow();
        let total: u64 = inner.segments.values().map(|s| s.size).sum();
        let mut remaining = total as i64;
        let mut plan = RetentionPlan::Keep;
        let mut iter = inner.segments.values().peekable();
        while let Some(seg) = iter.next() {
            let next_base = iter.peek().map(|s| s.base);
            let active = next_base.is_none();
            // Closed segments go only once sealed on disk; the active one only when it
            // holds data (an empty active segment is the log's floor).
            let eligible = if active { seg.size > 0 } else { seg.finalized };
            if !eligible || !self.segment_expired(seg, remaining, now_ms) {
                break;
            }
            remaining -= seg.size as i64;
            plan = match next_base {
                Some(b) => RetentionPlan::DeleteBelow(Offset(b)),
                None => RetentionPlan::RollAndDeleteAll,
            };
        }
        plan
    }

    /// Kafka's predicates: the segment's newest record is older than `retention.ms`, or
    /// the log without it (`remaining` bytes with it) still holds `retention.bytes`.
    fn segment_expired(&self, seg: &Segment<S>, remaining: i64, now_ms: i64) -> bool {
        let newest_ms = if seg.index.max_timestamp >= 0 {
            seg.index.max_timestamp
        } else {
            // No record timestamps: the time of the last append stands in (Kafka uses
            // the file's modification time); unknown after a restart means not expired.
            seg.last_append_ms.unwrap_or(now_ms)
        };
        let by_time =
            self.config.retention_ms >= 0 && now_ms - newest_ms > self.config.retention_ms;
        let by_size = self.config.retention_bytes >= 0
            && remaining - seg.size as i64 >= self.config.retention_bytes;
        by_time || by_size
    }

    /// Seals the (non-empty) active segment and starts an empty one at the log end, in
    /// memory; the flusher's work creates its file. Returns the new segment's base.
    fn roll_for_retention(&self) -> Offset {
        let mut guard = self.inner.borrow_mut();
        let inner = &mut *guard;
        let base = inner.next_offset.0;
        let (_, seg) = inner
            .segments
            .iter_mut()
            .next_back()
            .expect("a log always has an active segment");
        assert!(seg.size > 0 && !seg.sealed && seg.base < base);
        debug_assert!(seg.next_offset <= base);
        seg.sealed = true;
        inner.segments.insert(base, Segment::new_active(base));
        Offset(base)
    }

    /// Clean shutdown: writes and syncs everything, writes the active segment's indexes,
    /// trims its preallocation, checkpoints, and leaves the clean-shutdown marker.
    pub async fn close(&self) -> Result<()> {
        let _guard = self.io_lock.lock().await;
        if self.inner.borrow().closed {
            return Ok(());
        }
        if let Some(reason) = self.failure() {
            self.inner.borrow_mut().closed = true;
            self.shared.stop.set(true);
            self.shared.work.notify_all();
            return Err(Error::LogFailed(reason));
        }
        self.flush_all_locked().await?;
        let active = *self
            .inner
            .borrow()
            .segments
            .keys()
            .next_back()
            .expect("active segment");
        self.settle_fill(active).await?;
        let (base, file, size, index) = {
            let inner = self.inner.borrow();
            let (b, s) = inner.segments.iter().next_back().expect("active segment");
            (*b, s.file.clone(), s.size, s.index.clone())
        };
        if let Some(file) = file {
            file.truncate(size).await?;
            file.fdatasync().await?;
            write_index_files(&self.storage, &self.dir, base, &index).await?;
        }
        self.write_offset_checkpoints(self.log_end_offset(), self.log_start_offset())
            .await?;
        self.write_epoch_checkpoint().await?;
        storage::write_file_atomic(&self.storage, &self.dir, CLEAN_SHUTDOWN_MARKER, b"").await?;
        {
            let mut inner = self.inner.borrow_mut();
            inner.closed = true;
            for seg in inner.segments.values_mut() {
                seg.file = None;
            }
        }
        self.shared.stop.set(true);
        self.shared.work.notify_all();
        self.notify_changed();
        Ok(())
    }

    /// Topic deletion: stops the log, renames its directory to `<name>.<uuid>-delete`
    /// (durably), then removes it. Returns the renamed path.
    pub async fn delete(self: Rc<Self>) -> Result<std::path::PathBuf> {
        let _guard = self.io_lock.lock().await;
        {
            let mut inner = self.inner.borrow_mut();
            inner.closed = true;
            for seg in inner.segments.values_mut() {
                seg.file = None;
            }
        }
        self.shared.stop.set(true);
        self.shared.work.notify_all();
        self.notify_changed();
        let name = self
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent = self
            .dir
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_default();
        let target = parent.join(format!("{name}.{}-delete", uuid::Uuid::new_v4().simple()));
        self.storage.rename(&self.dir, &target).await?;
        self.storage.sync_dir(&parent).await?;
        self.storage.remove_dir_all(&target).await?;
        self.storage.sync_dir(&parent).await?;
        Ok(target)
    }
}

/// What [`Log::enforce_retention`] does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RetentionPlan {
    Keep,
    /// Delete the closed segments below this offset (a segment base).
    DeleteBelow(Offset),
    /// Every segment expired, the active one included: roll, then delete all but the new.
    RollAndDeleteAll,
}

/// Removes leftover `*-delete` directories of a data directory (after a crash during topic
/// deletion). Returns how many were removed.
pub async fn remove_deleted_dirs<S: Storage>(
    storage: &S,
    data_dir: &std::path::Path,
) -> Result<usize> {
    let mut n = 0;
    for name in storage.list_dir(data_dir).await? {
        if name.ends_with("-delete") {
            storage.remove_dir_all(&data_dir.join(&name)).await?;
            n += 1;
        }
    }
    if n > 0 {
        storage.sync_dir(data_dir).await?;
    }
    Ok(n)
}

impl<S: Storage> Log<S> {
    /// The recovery-point and log-start checkpoints, each written atomically.
    async fn write_offset_checkpoints(
        &self,
        recovery_point: Offset,
        log_start: Offset,
    ) -> Result<()> {
        storage::write_file_atomic(
            &self.storage,
            &self.dir,
            RECOVERY_POINT_CHECKPOINT,
            &checkpoint::encode_offset(recovery_point),
        )
        .await?;
        storage::write_file_atomic(
            &self.storage,
            &self.dir,
            LOG_START_CHECKPOINT,
            &checkpoint::encode_offset(log_start),
        )
        .await
    }
}
