//! The partition log: Kafka's on-disk layout (segments `<20-digit base>.log` with `.index`
//! and `.timeindex`, checkpoints), written with O_DIRECT through the [`crate::storage`] seam.
//!
//! Shape of the write path (DESIGN invariants 2, 4, 5):
//! - [`Log::append`] is synchronous: validation, offset assignment, epoch stamping and the
//!   push into the in-memory tail happen without an await, so the order of appends is the
//!   order of offsets. The batch becomes visible to readers at once (the caller's high
//!   watermark decides what consumers see).
//! - One flusher task per log writes the pending tail in large block-aligned writes (the
//!   partial last block kept in memory and rewritten), several in flight, and issues at
//!   most one `fdatasync` at a time; appends arriving meanwhile join the next one (group
//!   commit). [`Log::wait_durable`] resolves when the flush policy is satisfied.
//! - Every file operation is serialised by one async lock: flusher steps, truncation,
//!   retention and close never interleave their I/O.
//!
//! Reads come from the tail cache (shared `Bytes`, no copy) when possible, else from the
//! file (offset index, then a scan of batch headers).

mod checkpoint;
mod epoch;
mod flush;
mod index;
mod index_cache;
mod maintenance;
pub(crate) mod notify;
mod read;
mod recovery;
mod segment;

#[cfg(test)]
mod tests;

pub use checkpoint::{topic_id_from_str, topic_id_to_string};
pub use epoch::EpochCache;
pub use index::SegmentIndex;
pub use index_cache::{INDEX_CACHE_BYTES_MAX, INDEX_CACHE_ENTRIES_MAX};

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};

use bytes::{Bytes, BytesMut};

use crate::batch::{self, BatchHeader, TimestampType};
use crate::clock::Clock;
use crate::storage::{Storage, StorageFile};
use crate::types::{LeaderEpoch, Offset, TopicId};
use crate::{Error, Result};

use index_cache::IndexCache;
use notify::{AsyncLock, Notify};
use segment::{PendingBatch, Segment};

/// Kafka's `flush.policy` extension (DESIGN invariant 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Durable (fdatasync'd, with the metadata it depends on) before acknowledgement.
    Always,
    /// Kafka's `flush.ms` / `flush.messages`: fsync when either is exceeded.
    Interval { flush_ms: i64, flush_messages: i64 },
    /// Kafka's default: never fsync on the write path (rely on replication).
    None,
}

/// Per-log configuration; defaults are Kafka's.
#[derive(Clone, Debug, PartialEq)]
pub struct LogConfig {
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub segment_index_bytes: u64,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub index_interval_bytes: u64,
    pub flush_policy: FlushPolicy,
    pub max_message_bytes: usize,
    pub message_timestamp_type: TimestampType,
    /// Bytes in writes submitted to the device and not completed, per log.
    pub in_flight_bytes_max: usize,
    /// Bytes appended and not yet submitted (the tail buffer filling the next writes), per
    /// log. Appends get backpressure beyond `in_flight_bytes_max + buffer_bytes_max`.
    pub buffer_bytes_max: usize,
    /// Size of one DMA write; a flusher step issues up to `writes_in_flight_max` of them.
    pub write_chunk_bytes: usize,
    pub writes_in_flight_max: usize,
    /// Bytes one flusher step writes at most into one segment before it syncs (per
    /// policy) and lets checkpoints and waiting truncations run.
    pub write_step_bytes_max: u64,
    /// Preallocation steps grow from the min, doubling with the file, up to the max.
    pub preallocate_step_min_bytes: u64,
    pub preallocate_step_max_bytes: u64,
    /// Under `flush.policy=always`, write the active segment through an O_DSYNC file (each
    /// write durable on completion: the write and its device flush are one operation)
    /// instead of plain writes followed by an fdatasync. Off by default: on this project's
    /// test machines (virtio disk without FUA, so each O_DSYNC write costs its own cache
    /// flush) it was slower than group-committed fdatasyncs (BENCHMARKS.md, run G).
    pub dsync_writes: bool,
    /// Under `flush.policy=always`, a flush step of at most this many bytes is one write
    /// with `RWF_DSYNC` (durable on completion) instead of a write and an fdatasync, while
    /// the shard allows it (`Log::wants_dsync_step`). 0: never.
    pub dsync_step_bytes_max: u64,
    /// Syncs whose data all overwrote durably written blocks (zero-filled logs, see
    /// `ensure_preallocated`) share one device cache flush per round with the other logs
    /// of the shard ([`StorageFile::flush_device`]) instead of each paying its own
    /// fdatasync. Only for filesystems where that holds (ext4, XFS: the broker's
    /// `riptide.log.flush.shared=auto` checks); off by default.
    pub shared_syncs: bool,
    /// `always` logs whose fdatasyncs cover less than this on average grow their files by
    /// zero fills (see `ensure_preallocated`): below it the per-sync metadata write that a
    /// fallocated file costs dominates (and zero-filled logs can share syncs); above it
    /// the syncs are few and the doubled device bandwidth of zero fills is not worth
    /// paying (BENCHMARKS.md, logbench runs F and J: on this disk 32 KiB per sync gains
    /// from zero fills, 256 KiB per sync loses 20% with them). 0: never zero-fill.
    pub zero_fill_sync_bytes_max: u64,
    /// Under `none` and `interval`, appended batches wait in memory up to this long (or
    /// until `write_chunk_bytes` are pending) before the flusher writes them, so small
    /// appends share one write: each write is a syscall, a device doorbell and, into
    /// fallocated space, an io_uring worker hand-off (at 5,000 one-message produce
    /// requests a second that was a third of the broker's CPU). Such appends are
    /// acknowledged before they are written either way. 0: write at once. `always` logs
    /// never wait (their acknowledgement waits for the write).
    pub write_linger_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            segment_index_bytes: 10 << 20,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            index_interval_bytes: 4096,
            flush_policy: FlushPolicy::Always,
            max_message_bytes: 1_048_588,
            message_timestamp_type: TimestampType::CreateTime,
            in_flight_bytes_max: 1 << 20,
            buffer_bytes_max: 1 << 20,
            write_chunk_bytes: 256 << 10,
            writes_in_flight_max: 4,
            write_step_bytes_max: 64 << 20,
            preallocate_step_min_bytes: 1 << 20,
            preallocate_step_max_bytes: 32 << 20,
            dsync_writes: false,
            dsync_step_bytes_max: 256 << 10,
            shared_syncs: false,
            zero_fill_sync_bytes_max: 128 << 10,
            write_linger_ms: 0,
        }
    }
}

impl LogConfig {
    fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::Invalid(format!("invalid log config: {what}")));
        if self.segment_bytes < 14 || self.segment_bytes > i32::MAX as u64 {
            return bad("segment.bytes must be in [14, 2^31)");
        }
        if self.write_chunk_bytes == 0
            || !self
                .write_chunk_bytes
                .is_multiple_of(crate::storage::BLOCK_BYTES)
        {
            return bad("write chunk must be a positive multiple of 4096");
        }
        if self.writes_in_flight_max == 0
            || self.in_flight_bytes_max == 0
            || self.write_step_bytes_max == 0
        {
            return bad("in-flight limits must be positive");
        }
        if self.segment_index_bytes < 8 {
            return bad("segment.index.bytes must be >= 8");
        }
        Ok(())
    }
}

/// Per-shard memory budgets shared by every log of the shard (one `Rc` per shard).
pub struct ShardBudgets {
    pub tail_cache_bytes_max: usize,
    pub in_flight_bytes_max: usize,
    tail_cache_bytes: Cell<usize>,
    in_flight_bytes: Cell<usize>,
    /// Cached batches of all logs in insertion order: the eviction order.
    cache_fifo: RefCell<VecDeque<(Weak<dyn CacheOwner>, i64)>>,
    space: Notify,
    /// fdatasyncs in flight at once over all logs of the shard. Each log already keeps at
    /// most one; with many active logs, unbounded concurrent fdatasyncs each carry a little
    /// data and each pay the device cache flush and the io-wq hand-off. Bounded, a log
    /// waiting for a slot syncs more at once (group commit across the shard).
    sync_slots: glommio::sync::Semaphore,
    pub syncs_in_flight_max: usize,
    /// Shared device flushes ([`ShardBudgets::flush_device`]): how many were started and
    /// completed, whether one runs, and a wake-up for logs waiting on one.
    flushes_started: Cell<u64>,
    flushes_completed: Cell<u64>,
    flush_running: Cell<bool>,
    flush_done: Notify,
    /// Durable write steps running ([`ShardBudgets::dsync_step_allowed`]).
    dsync_writes_in_flight: Cell<usize>,
    /// Closed segments' indexes read back from their files, bounded.
    indexes: RefCell<IndexCache>,
    /// Names the logs of the shard in `indexes`.
    next_log_id: Cell<u64>,
}

/// A durable write step running on the shard ([`ShardBudgets::dsync_step_allowed`]).
struct DsyncWriteRunning<'a>(&'a ShardBudgets);

impl Drop for DsyncWriteRunning<'_> {
    fn drop(&mut self) {
        let n = self.0.dsync_writes_in_flight.get();
        debug_assert!(n > 0);
        self.0.dsync_writes_in_flight.set(n - 1);
    }
}

/// Marks the shard's shared device flush as no longer running and wakes its waiters.
struct FlushRunning<'a>(&'a ShardBudgets);

impl Drop for FlushRunning<'_> {
    fn drop(&mut self) {
        self.0.flush_running.set(false);
        self.0.flush_done.notify_all();
    }
}

/// Default bound of [`ShardBudgets::syncs_in_flight_max`].
pub const SYNCS_IN_FLIGHT_MAX_DEFAULT: usize = 4;

/// Every bound of a [`ShardBudgets`]; `Default` is the broker's.
#[derive(Clone, Copy, Debug)]
pub struct BudgetLimits {
    pub tail_cache_bytes_max: usize,
    pub in_flight_bytes_max: usize,
    pub syncs_in_flight_max: usize,
    pub index_entries_max: usize,
    pub index_bytes_max: usize,
}

impl Default for BudgetLimits {
    fn default() -> Self {
        BudgetLimits {
            tail_cache_bytes_max: 256 << 20,
            in_flight_bytes_max: 64 << 20,
            syncs_in_flight_max: SYNCS_IN_FLIGHT_MAX_DEFAULT,
            index_entries_max: INDEX_CACHE_ENTRIES_MAX,
            index_bytes_max: INDEX_CACHE_BYTES_MAX,
        }
    }
}

impl ShardBudgets {
    /// Defaults: 256 MiB of tail cache, 64 MiB in flight.
    pub fn new(tail_cache_bytes_max: usize, in_flight_bytes_max: usize) -> Rc<ShardBudgets> {
        Self::with_limits(BudgetLimits {
            tail_cache_bytes_max,
            in_flight_bytes_max,
            ..BudgetLimits::default()
        })
    }

    /// As `new`, with at most `syncs_in_flight_max` fdatasyncs in flight on the shard.
    pub fn with_syncs(
        tail_cache_bytes_max: usize,
        in_flight_bytes_max: usize,
        syncs_in_flight_max: usize,
    ) -> Rc<ShardBudgets> {
        Self::with_limits(BudgetLimits {
            tail_cache_bytes_max,
            in_flight_bytes_max,
            syncs_in_flight_max,
            ..BudgetLimits::default()
        })
    }

    /// As [`ShardBudgets::new`], with bounds on the closed segments' indexes kept in
    /// memory: at most `index_entries_max` indexes and `index_bytes_max` bytes.
    pub fn with_index_cache(
        tail_cache_bytes_max: usize,
        in_flight_bytes_max: usize,
        index_entries_max: usize,
        index_bytes_max: usize,
    ) -> Rc<ShardBudgets> {
        Self::with_limits(BudgetLimits {
            tail_cache_bytes_max,
            in_flight_bytes_max,
            index_entries_max,
            index_bytes_max,
            ..BudgetLimits::default()
        })
    }

    pub fn with_limits(limits: BudgetLimits) -> Rc<ShardBudgets> {
        let BudgetLimits {
            tail_cache_bytes_max,
            in_flight_bytes_max,
            syncs_in_flight_max,
            index_entries_max,
            index_bytes_max,
        } = limits;
        assert!(syncs_in_flight_max >= 1, "at least one fdatasync at a time");
        Rc::new(ShardBudgets {
            tail_cache_bytes_max,
            in_flight_bytes_max,
            tail_cache_bytes: Cell::new(0),
            in_flight_bytes: Cell::new(0),
            cache_fifo: RefCell::new(VecDeque::new()),
            space: Notify::default(),
            sync_slots: glommio::sync::Semaphore::new(syncs_in_flight_max as u64),
            syncs_in_flight_max,
            flushes_started: Cell::new(0),
            flushes_completed: Cell::new(0),
            flush_running: Cell::new(false),
            flush_done: Notify::default(),
            dsync_writes_in_flight: Cell::new(0),
            indexes: RefCell::new(IndexCache::new(index_entries_max, index_bytes_max)),
            next_log_id: Cell::new(0),
        })
    }

    /// Whether a log's next small `always` step may be one durable (`RWF_DSYNC`) write:
    /// no fdatasync or shared device flush runs on the shard (those group many logs' data,
    /// and a step that waits for them joins the next), and fewer than
    /// `syncs_in_flight_max` durable writes run. A few active logs then each complete a
    /// step in one operation; before, a second log's step beside a running durable write
    /// became a write and an fdatasync, two device round trips in a row (e2e at 5,000
    /// msg/s over 3 partitions on 2 shards: publish p99 2.74 → 2.55 ms, BENCHMARKS.md
    /// session 15).
    fn dsync_step_allowed(&self) -> bool {
        self.sync_slots.available() as usize == self.syncs_in_flight_max
            && !self.flush_running.get()
            && self.dsync_writes_in_flight.get() < self.syncs_in_flight_max
    }

    /// Counts a durable (`RWF_DSYNC`) write step as running until the guard drops.
    fn dsync_write_started(&self) -> DsyncWriteRunning<'_> {
        self.dsync_writes_in_flight
            .set(self.dsync_writes_in_flight.get() + 1);
        DsyncWriteRunning(self)
    }

    /// Waits for one of the shard's fdatasync slots (FIFO); the slot is held while the
    /// permit lives.
    async fn sync_slot(&self) -> glommio::sync::Permit<'_> {
        self.sync_slots
            .acquire_permit(1)
            .await
            .expect("the shard's sync semaphore is never closed")
    }

    /// Returns once a device cache flush that *started after this call* completed, so every
    /// write completed before the call that overwrote durably written blocks is durable
    /// ([`StorageFile::flush_device`]). Logs calling meanwhile share one flush: the first to
    /// find none running issues it through its own `file`, the rest wait for it or the
    /// next one. Many logs then pay one fdatasync per round instead of one each.
    async fn flush_device<F: StorageFile>(&self, file: &F) -> Result<()> {
        let needed = self.flushes_started.get() + 1;
        loop {
            if self.flushes_completed.get() >= needed {
                return Ok(());
            }
            if !self.flush_running.get() {
                let n = self.flushes_started.get() + 1;
                assert!(
                    n >= needed,
                    "a flush started before the call cannot serve it"
                );
                self.flushes_started.set(n);
                self.flush_running.set(true);
                // Cleared even if this future is dropped mid-flush (shard shutdown), so
                // that no waiter waits for a flush nobody runs.
                let running = FlushRunning(self);
                // No sync slot: shared flushes run one at a time anyway, and one queued
                // behind logs' own (metadata-writing, slower) fdatasyncs would hold up
                // every log waiting for it.
                let r = crate::runtime::rushed(file.flush_device()).await;
                if r.is_ok() {
                    self.flushes_completed
                        .set(self.flushes_completed.get().max(n));
                }
                drop(running);
                return r;
            }
            let seen = self.flush_done.generation();
            self.flush_done.wait(seen).await;
        }
    }

    /// Whether a sync that could be shared is better paid on its own: a shared flush is
    /// already running (joining means waiting for it *and* the next one) while a sync slot
    /// is free (an own fdatasync starts at once). Under light load this keeps one flush's
    /// latency; under many syncing logs the slots are busy and the flush is shared.
    fn own_sync_is_sooner(&self) -> bool {
        self.flush_running.get() && self.sync_slots.available() > 0
    }

    /// Shared device flushes completed so far.
    pub fn device_flushes(&self) -> u64 {
        self.flushes_completed.get()
    }

    /// Closed segments' indexes resident in memory now (count, bytes).
    pub fn resident_indexes(&self) -> (usize, usize) {
        let c = self.indexes.borrow();
        (c.len(), c.bytes())
    }

    /// Closed segments' indexes read from their files so far.
    pub fn index_loads(&self) -> u64 {
        self.indexes.borrow().loads()
    }

    pub fn tail_cache_bytes(&self) -> usize {
        self.tail_cache_bytes.get()
    }

    pub fn in_flight_bytes(&self) -> usize {
        self.in_flight_bytes.get()
    }

    /// Evicts the oldest cached batches of any log until the cache fits its budget. Stops at
    /// a batch not yet written (it must stay until the flusher wrote it).
    fn evict(&self) {
        while self.tail_cache_bytes.get() > self.tail_cache_bytes_max {
            let Some((owner, base)) = self.cache_fifo.borrow().front().cloned() else {
                break;
            };
            let freed = match owner.upgrade() {
                None => Some(0),
                Some(owner) => owner.evict_cached(base),
            };
            match freed {
                None => break,
                Some(bytes) => {
                    self.cache_fifo.borrow_mut().pop_front();
                    self.tail_cache_bytes
                        .set(self.tail_cache_bytes.get() - bytes);
                }
            }
        }
        // Stale entries (truncated or dropped logs) are removed as they reach the front.
    }
}

impl Default for ShardBudgets {
    fn default() -> Self {
        Rc::try_unwrap(ShardBudgets::new(256 << 20, 64 << 20))
            .unwrap_or_else(|_| unreachable!("a fresh Rc has one owner"))
    }
}

/// A log whose cached batches the shard budget can evict.
trait CacheOwner {
    /// Drops the cached batch with base offset `base` if it is the log's oldest cached
    /// batch; `Some(bytes freed)` (0 if stale), `None` if it is not written yet.
    fn evict_cached(&self, base: i64) -> Option<usize>;
}

/// What an append did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: Offset,
    pub last_offset: Offset,
    /// Kafka's `log_append_time_ms`: -1 unless the topic uses LogAppendTime.
    pub log_append_time_ms: i64,
    pub log_start_offset: Offset,
    pub record_count: i32,
    pub bytes: usize,
    /// The header as stored (offsets patched), for producer state.
    pub header: BatchHeader,
}

/// Result of [`Log::read`]: whole batches as shareable slices.
#[derive(Clone, Debug, Default)]
pub struct ReadResult {
    pub chunks: Vec<Bytes>,
    pub bytes: usize,
    /// Offset after the last batch returned (the next fetch offset), or the requested
    /// offset when nothing was returned.
    pub next_offset: Offset,
    pub log_start_offset: Offset,
    pub log_end_offset: Offset,
}

#[derive(Clone, Debug)]
struct CachedBatch {
    base: i64,
    last: i64,
    bytes: Bytes,
}

/// Mutable state of a log; never borrowed across an await.
struct Inner<S: Storage> {
    segments: BTreeMap<i64, Segment<S>>,
    log_start: Offset,
    next_offset: Offset,
    /// Every batch below this offset is in a completed file write.
    written_offset: Offset,
    /// Every batch below this offset is fdatasync'd, with the metadata it depends on.
    synced_offset: Offset,
    recovery_point: Offset,
    recovery_point_dirty: bool,
    epochs: EpochCache,
    epochs_dirty: bool,
    cache: VecDeque<CachedBatch>,
    cache_bytes: usize,
    in_flight_bytes: usize,
    messages_since_sync: i64,
    last_sync_ms: i64,
    /// Bytes appended since the last fdatasync started.
    bytes_since_sync: u64,
    /// Broker time of the oldest append no flusher step has taken yet (lazy writes,
    /// `LogConfig::write_linger_ms`).
    unwritten_since_ms: Option<i64>,
    /// Moving average of the bytes each fdatasync covered (decides how files grow, see
    /// `ensure_preallocated`).
    sync_bytes_avg: u64,
    failed: Option<String>,
    closed: bool,
    truncating: bool,
    /// Number of truncations so far (invalidates read-ahead).
    truncations: u64,
}

/// State shared with the flusher task, which must not keep the log alive.
struct Shared {
    work: Notify,
    stop: Cell<bool>,
}

/// Counters of the log's file I/O (benchmarks, metrics).
#[derive(Debug, Default)]
pub struct LogStats {
    pub writes: Cell<u64>,
    /// Bytes submitted in writes, padding and rewritten partial blocks included.
    pub write_bytes: Cell<u64>,
    pub fdatasyncs: Cell<u64>,
    /// Syncs served by the shard's shared device flush instead of an own fdatasync.
    pub shared_syncs: Cell<u64>,
}

/// One partition replica's log, owned by one shard and used through `Rc`.
pub struct Log<S: Storage> {
    storage: S,
    dir: PathBuf,
    topic_id: TopicId,
    config: LogConfig,
    clock: Rc<dyn Clock>,
    budgets: Rc<ShardBudgets>,
    /// This log's name in the shard's index cache.
    log_id: u64,
    inner: RefCell<Inner<S>>,
    shared: Rc<Shared>,
    /// Fires when log end, durable offset, log start or failure state move: the log's own
    /// waiters (acknowledgements, in-flight space).
    changed: Notify,
    /// Fires right after `changed`: Fetch long polls ([`Log::watch`]). A second list so that
    /// the tasks acknowledging produces are woken, and so run, before the fetches woken by
    /// the same write: a producer waits for its answer, a consumer's long poll only for data
    /// (glommio runs woken tasks in wake order).
    watchers: Notify,
    io_lock: AsyncLock,
    weak_self: Weak<Log<S>>,
    pub stats: LogStats,
    /// One read-ahead for a sequential cold reader (dropped on truncation).
    readahead: RefCell<Option<read::Readahead>>,
}

fn segment_file_name(base: i64, ext: &str) -> String {
    format!("{base:020}.{ext}")
}

impl<S: Storage> Log<S> {
    /// Opens the log in `dir` (`<data-dir>/<topic>-<partition>`), formatting it when new and
    /// recovering it otherwise, and starts its flusher task (on the current glommio
    /// executor).
    pub async fn open(
        storage: S,
        dir: PathBuf,
        topic_id: TopicId,
        config: LogConfig,
        clock: Rc<dyn Clock>,
        budgets: Rc<ShardBudgets>,
    ) -> Result<Rc<Log<S>>> {
        config.validate()?;
        let recovered = recovery::open_dir(&storage, &dir, topic_id, &config).await?;
        let now_ms = clock.now_ms();
        let log_id = budgets.next_log_id.get();
        budgets.next_log_id.set(log_id + 1);
        let log = Rc::new_cyclic(|weak_self| Log {
            storage,
            dir,
            topic_id,
            config,
            clock,
            budgets,
            log_id,
            inner: RefCell::new(Inner {
                segments: recovered.segments,
                log_start: recovered.log_start,
                next_offset: recovered.next_offset,
                written_offset: recovered.next_offset,
                synced_offset: recovered.next_offset,
                recovery_point: recovered.recovery_point,
                recovery_point_dirty: false,
                epochs: recovered.epochs,
                epochs_dirty: false,
                cache: VecDeque::new(),
                cache_bytes: 0,
                in_flight_bytes: 0,
                messages_since_sync: 0,
                last_sync_ms: now_ms,
                bytes_since_sync: 0,
                unwritten_since_ms: None,
                sync_bytes_avg: u64::MAX,
                failed: None,
                closed: false,
                truncating: false,
                truncations: 0,
            }),
            shared: Rc::new(Shared {
                work: Notify::default(),
                stop: Cell::new(false),
            }),
            changed: Notify::default(),
            watchers: Notify::default(),
            io_lock: AsyncLock::default(),
            weak_self: weak_self.clone(),
            stats: LogStats::default(),
            readahead: RefCell::new(None),
        });
        flush::spawn_flusher(&log);
        Ok(log)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn topic_id(&self) -> TopicId {
        self.topic_id
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Stage 1 of a produce: validates one freshly produced batch, assigns its offsets and
    /// leader epoch, stamps LogAppendTime if configured, and appends it to the tail. No
    /// await: the returned offsets fix its order. Fails with [`Error::LogInFlightFull`] when
    /// the in-flight limits are reached (see [`Log::has_space`], [`Log::wait_for_space`]).
    pub fn append(&self, mut batch: BytesMut, leader_epoch: LeaderEpoch) -> Result<AppendInfo> {
        self.check_writable()?;
        batch::validate_produced(&batch, self.config.max_message_bytes)?;
        self.check_space(batch.len())?;
        let base = self.inner.borrow().next_offset.0;
        batch::patch_offset_and_epoch(&mut batch, base, leader_epoch.0);
        let mut log_append_time_ms = -1;
        if self.config.message_timestamp_type == TimestampType::LogAppendTime {
            log_append_time_ms = self.clock.now_ms();
            batch::set_log_append_time(&mut batch, log_append_time_ms);
        }
        let bytes = batch.freeze();
        let stored = BatchHeader::parse(&bytes)?;
        debug_assert_eq!(stored.base_offset, base);
        let info = self.append_stored(bytes, stored, log_append_time_ms);
        Ok(info)
    }

    /// Appends batches that already carry their offsets and epochs (a follower's fetch
    /// response), as they are. Checks magic, length and CRC, and that offsets only grow;
    /// gaps and empty batches are accepted. Returns the first base and last offset.
    pub fn append_replicated(&self, batches: Bytes) -> Result<Option<(Offset, Offset)>> {
        self.check_writable()?;
        let split = batch::split_batches(&batches, usize::MAX)?;
        let mut expected = self.inner.borrow().next_offset.0;
        for (_, b) in &split {
            let h = batch::validate_stored(b)?;
            if h.base_offset < expected {
                return Err(Error::CorruptBatch(format!(
                    "replicated batch at offset {} is below the log end {expected}",
                    h.base_offset
                )));
            }
            expected = h.last_offset() + 1;
        }
        self.check_space(batches.len())?;
        let mut range = None;
        for (h, b) in split {
            let info = self.append_stored(b, h, -1);
            let first = range.map_or(info.base_offset, |(f, _)| f);
            range = Some((first, info.last_offset));
        }
        Ok(range)
    }

    fn check_writable(&self) -> Result<()> {
        let inner = self.inner.borrow();
        if let Some(reason) = &inner.failed {
            return Err(Error::LogFailed(reason.clone()));
        }
        if inner.closed {
            return Err(Error::Closed);
        }
        if inner.truncating {
            return Err(Error::Invalid("log is being truncated".into()));
        }
        Ok(())
    }

    /// Whether an append of `bytes` fits the in-flight limits now. The first batch always
    /// fits when nothing is in flight, so a batch above the limit is not stuck forever.
    pub fn has_space(&self, bytes: usize) -> bool {
        let log_bytes = self.inner.borrow().in_flight_bytes;
        let shard_bytes = self.budgets.in_flight_bytes.get();
        let log_max = self.config.in_flight_bytes_max + self.config.buffer_bytes_max;
        (log_bytes == 0 || log_bytes + bytes <= log_max)
            && (shard_bytes == 0 || shard_bytes + bytes <= self.budgets.in_flight_bytes_max)
    }

    fn check_space(&self, bytes: usize) -> Result<()> {
        if self.has_space(bytes) {
            return Ok(());
        }
        Err(Error::LogInFlightFull {
            in_flight_bytes: self.inner.borrow().in_flight_bytes,
            limit: self.config.in_flight_bytes_max + self.config.buffer_bytes_max,
        })
    }

    /// Waits until [`Log::has_space`] would accept `bytes` (or the log failed or closed).
    pub async fn wait_for_space(&self, bytes: usize) -> Result<()> {
        loop {
            let seen_log = self.changed.generation();
            let seen_shard = self.budgets.space.generation();
            self.check_writable()?;
            if self.has_space(bytes) {
                return Ok(());
            }
            futures_lite::future::or(
                self.changed.wait(seen_log),
                self.budgets.space.wait(seen_shard),
            )
            .await;
        }
    }

    /// The synchronous core shared by both append paths; `bytes` is one stored batch.
    fn append_stored(
        &self,
        bytes: Bytes,
        header: BatchHeader,
        log_append_time_ms: i64,
    ) -> AppendInfo {
        let len = bytes.len();
        let now_ms = self.clock.now_ms();
        let info = {
            let mut guard = self.inner.borrow_mut();
            let inner = &mut *guard;
            self.maybe_roll(inner, &header, len, now_ms);
            let (_, seg) = inner
                .segments
                .iter_mut()
                .next_back()
                .expect("a log always has an active segment");
            debug_assert!(!seg.sealed);
            let position = seg.size;
            seg.index.on_batch(
                seg.base,
                &header,
                position,
                self.config.index_interval_bytes,
            );
            seg.first_append_ms.get_or_insert(now_ms);
            seg.last_append_ms = Some(now_ms);
            seg.size += len as u64;
            let next = header.last_offset() + 1;
            seg.next_offset = next;
            seg.pending.push_back(PendingBatch {
                bytes: bytes.clone(),
                next_offset: next,
            });
            inner.cache.push_back(CachedBatch {
                base: header.base_offset,
                last: header.last_offset(),
                bytes,
            });
            inner.cache_bytes += len;
            inner.in_flight_bytes += len;
            inner.messages_since_sync += header.record_count.max(0) as i64;
            inner.bytes_since_sync += len as u64;
            inner.unwritten_since_ms.get_or_insert(now_ms);
            if header.partition_leader_epoch >= 0 {
                let epoch = LeaderEpoch(header.partition_leader_epoch);
                if inner.epochs.latest().is_none_or(|(e, _)| e < epoch)
                    && inner.epochs.assign(epoch, Offset(header.base_offset))
                {
                    inner.epochs_dirty = true;
                }
            }
            assert!(next > inner.next_offset.0, "offsets must grow");
            inner.next_offset = Offset(next);
            AppendInfo {
                base_offset: Offset(header.base_offset),
                last_offset: Offset(header.last_offset()),
                log_append_time_ms,
                log_start_offset: inner.log_start,
                record_count: header.record_count,
                bytes: len,
                header,
            }
        };
        self.budgets
            .tail_cache_bytes
            .set(self.budgets.tail_cache_bytes.get() + len);
        self.budgets
            .in_flight_bytes
            .set(self.budgets.in_flight_bytes.get() + len);
        let owner: Weak<dyn CacheOwner> = self.weak_self.clone();
        self.budgets
            .cache_fifo
            .borrow_mut()
            .push_back((owner, info.base_offset.0));
        self.budgets.evict();
        self.shared.work.notify_all();
        self.notify_changed();
        info
    }

    /// Seals the active segment and starts a new one (created on disk by the flusher) when
    /// the batch would overflow `segment.bytes`, the segment is older than `segment.ms`,
    /// an index is full, or relative offsets would overflow.
    fn maybe_roll(&self, inner: &mut Inner<S>, header: &BatchHeader, len: usize, now_ms: i64) {
        let (_, seg) = inner.segments.iter().next_back().expect("active segment");
        if seg.size == 0 {
            return;
        }
        let full = seg.size + len as u64 > self.config.segment_bytes;
        let old = seg
            .first_append_ms
            .is_some_and(|t| now_ms - t > self.config.segment_ms);
        let index_full = (seg.index.offsets.len() + 1) * index::OFFSET_ENTRY_BYTES
            > self.config.segment_index_bytes as usize
            || (seg.index.times.len() + 1) * index::TIME_ENTRY_BYTES
                > self.config.segment_index_bytes as usize;
        let rel_overflow = header.last_offset() - seg.base > i32::MAX as i64;
        if !(full || old || index_full || rel_overflow) {
            return;
        }
        let base = header.base_offset;
        let (_, seg) = inner
            .segments
            .iter_mut()
            .next_back()
            .expect("active segment");
        seg.sealed = true;
        inner.segments.insert(base, Segment::new_active(base));
    }

    pub fn log_end_offset(&self) -> Offset {
        self.inner.borrow().next_offset
    }

    /// What the policy promises is kept: under `always` the fdatasync'd offset, otherwise
    /// the log end (DESIGN invariant 4: the high watermark never passes it).
    pub fn durable_offset(&self) -> Offset {
        let inner = self.inner.borrow();
        match self.config.flush_policy {
            FlushPolicy::Always => inner.synced_offset,
            _ => inner.next_offset,
        }
    }

    /// The offset below which everything is fdatasync'd, whatever the policy.
    pub fn synced_offset(&self) -> Offset {
        self.inner.borrow().synced_offset
    }

    pub fn log_start_offset(&self) -> Offset {
        self.inner.borrow().log_start
    }

    /// Total bytes of the segments (appended, including not yet written).
    pub fn size_bytes(&self) -> u64 {
        self.inner.borrow().segments.values().map(|s| s.size).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.inner.borrow().segments.len()
    }

    /// The base offset of the active (last) segment: it moves when the log rolls.
    pub fn active_segment_base(&self) -> Offset {
        let inner = self.inner.borrow();
        Offset(
            inner
                .segments
                .keys()
                .next_back()
                .copied()
                .unwrap_or(inner.next_offset.0),
        )
    }

    /// Stage 2 of a produce: resolves when every offset up to `last_offset` is durable per
    /// the flush policy (only `always` waits).
    pub async fn wait_durable(&self, last_offset: Offset) -> Result<()> {
        loop {
            let seen = self.changed.generation();
            {
                let inner = self.inner.borrow();
                if let Some(reason) = &inner.failed {
                    return Err(Error::LogFailed(reason.clone()));
                }
                if self.config.flush_policy != FlushPolicy::Always
                    || inner.synced_offset > last_offset
                {
                    return Ok(());
                }
                if inner.closed {
                    return Err(Error::Closed);
                }
            }
            self.changed.wait(seen).await;
        }
    }

    /// A generation number for [`Log::changed_since`] (Fetch long-poll): read it, check the
    /// offsets, then wait.
    pub fn watch(&self) -> u64 {
        self.watchers.generation()
    }

    /// Resolves when the log end, durable offset or log start moved since `generation`.
    pub async fn changed_since(&self, generation: u64) {
        self.watchers.wait(generation).await
    }

    /// Wakes the log's own waiters first, then the long polls (see `watchers`).
    fn notify_changed(&self) {
        self.changed.notify_all();
        self.watchers.notify_all();
    }

    /// The record with the largest timestamp (ListOffsets MAX_TIMESTAMP): its batch's last
    /// offset and the timestamp.
    pub fn max_timestamp(&self) -> Option<(Offset, i64)> {
        let inner = self.inner.borrow();
        inner
            .segments
            .values()
            .filter(|s| s.index.max_timestamp >= 0)
            .max_by_key(|s| (s.index.max_timestamp, std::cmp::Reverse(s.base)))
            .map(|s| {
                (
                    Offset(s.index.max_timestamp_offset.max(inner.log_start.0)),
                    s.index.max_timestamp,
                )
            })
    }

    pub fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> Option<(LeaderEpoch, Offset)> {
        let inner = self.inner.borrow();
        inner.epochs.end_offset_for(epoch, inner.next_offset)
    }

    pub fn latest_epoch(&self) -> Option<LeaderEpoch> {
        self.inner.borrow().epochs.latest().map(|(e, _)| e)
    }

    pub fn epoch_entries(&self) -> Vec<(LeaderEpoch, Offset)> {
        self.inner.borrow().epochs.entries().to_vec()
    }

    /// Records that `epoch` starts at `start` (a new leadership) and checkpoints the cache.
    pub async fn assign_epoch(&self, epoch: LeaderEpoch, start: Offset) -> Result<()> {
        let changed = self.inner.borrow_mut().epochs.assign(epoch, start);
        if changed {
            let _guard = self.io_lock.lock().await;
            self.write_epoch_checkpoint().await?;
        }
        Ok(())
    }

    async fn write_epoch_checkpoint(&self) -> Result<()> {
        let bytes = {
            let mut inner = self.inner.borrow_mut();
            inner.epochs_dirty = false;
            inner.epochs.encode()
        };
        let r = crate::storage::write_file_atomic(
            &self.storage,
            &self.dir,
            checkpoint::LEADER_EPOCH_CHECKPOINT,
            &bytes,
        )
        .await;
        if r.is_err() {
            self.inner.borrow_mut().epochs_dirty = true;
        }
        r
    }

    /// Writes a small named file beside the log atomically (producer-state snapshots,
    /// high-watermark checkpoint...).
    pub async fn write_aux_file(&self, name: &str, bytes: &[u8]) -> Result<()> {
        check_aux_name(name)?;
        crate::storage::write_file_atomic(&self.storage, &self.dir, name, bytes).await
    }

    pub async fn read_aux_file(&self, name: &str) -> Result<Option<Vec<u8>>> {
        check_aux_name(name)?;
        crate::storage::read_file(&self.storage, &self.dir.join(name)).await
    }

    fn fail(&self, reason: String) {
        tracing::error!(dir = %self.dir.display(), %reason, "log failed; it accepts no more writes");
        let mut inner = self.inner.borrow_mut();
        inner.failed.get_or_insert(reason);
        drop(inner);
        self.notify_changed();
    }

    /// Whether the log hit an I/O error (it then refuses writes; reopen to recover).
    pub fn failure(&self) -> Option<String> {
        self.inner.borrow().failed.clone()
    }
}

fn check_aux_name(name: &str) -> Result<()> {
    let reserved =
        name.ends_with(".log") || name.ends_with(".index") || name.ends_with(".timeindex");
    if name.is_empty()
        || name.len() > 128
        || name.contains('/')
        || name.starts_with('.')
        || reserved
    {
        return Err(Error::Invalid(format!("invalid side file name {name:?}")));
    }
    Ok(())
}

impl<S: Storage> CacheOwner for Log<S> {
    fn evict_cached(&self, base: i64) -> Option<usize> {
        let mut inner = self.inner.borrow_mut();
        let written = inner.written_offset.0;
        let front = inner.cache.front()?;
        if front.base != base {
            return Some(0);
        }
        if front.last >= written {
            return None;
        }
        let gone = inner.cache.pop_front().expect("front checked");
        inner.cache_bytes -= gone.bytes.len();
        Some(gone.bytes.len())
    }
}

impl<S: Storage> Drop for Log<S> {
    fn drop(&mut self) {
        let inner = self.inner.get_mut();
        let cache = self.budgets.tail_cache_bytes.get();
        self.budgets.tail_cache_bytes.set(cache - inner.cache_bytes);
        let in_flight = self.budgets.in_flight_bytes.get();
        self.budgets
            .in_flight_bytes
            .set(in_flight - inner.in_flight_bytes);
        self.budgets.space.notify_all();
        self.budgets.indexes.borrow_mut().remove_log(self.log_id);
        self.shared.stop.set(true);
        self.shared.work.notify_all();
    }
}
pub use maintenance::remove_deleted_dirs;
