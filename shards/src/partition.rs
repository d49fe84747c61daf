//! A partition replica on its home shard: the log plus the state Kafka keeps beside it —
//! leader epoch, high watermark, idempotent-producer state (and later ISR).
//!
//! Only the home shard touches a `Partition` (invariant 3): it is `Rc`, not `Arc`, and its
//! interior mutability is `Cell`/`RefCell`, never a lock.
//!
//! Producer state is snapshotted beside the log (`producer.snapshot`, written atomically)
//! when the log rolls (as Kafka does), on clean close and every 30 s; on open it is
//! restored from the snapshot and rebuilt from the log tail after the snapshot's offset,
//! so a crash loses no sequence state that the log still holds.

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::{Rc, Weak};

use bytes::BytesMut;

use crate::batch::BatchHeader;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::log::notify::AsyncLock;
use crate::log::{AppendInfo, Log, LogConfig, ReadResult, ShardBudgets};
use crate::producer_state::{ProducerStateTable, SeqCheck};
use crate::storage::DmaStorage;
use crate::types::{LeaderEpoch, Offset, TopicId, TopicPartition};

/// The log type partitions use in the broker.
pub type PartitionLog = Log<DmaStorage>;

/// Producer ids tracked per partition before the least recently used is evicted.
pub const PRODUCERS_PER_PARTITION_MAX: usize = 10_000;

/// The producer-state snapshot beside the log.
const PRODUCER_SNAPSHOT_FILE: &str = "producer.snapshot";

/// Bytes read per step while rebuilding producer state from the log tail.
const REBUILD_READ_BYTES: usize = 1 << 20;

pub struct Partition {
    /// Itself, for the background work it starts (the producer snapshot at a roll).
    me: Weak<Partition>,
    pub tp: TopicPartition,
    pub topic_id: TopicId,
    log: Rc<PartitionLog>,
    leader_epoch: Cell<LeaderEpoch>,
    producers: RefCell<ProducerStateTable>,
    /// Appends since the last producer-state snapshot.
    producers_dirty: Cell<bool>,
    /// Snapshots share one file name: one is written at a time.
    snapshot_lock: AsyncLock,
    /// A snapshot for a roll is queued and has not started: later rolls need no other.
    roll_snapshot_queued: Cell<bool>,
    /// Closed or deleted: no more snapshots.
    closed: Cell<bool>,
    /// The active segment's base when producer state was last snapshotted for a roll.
    snapshot_segment_base: Cell<Offset>,
    clock: Rc<dyn Clock>,
    /// `message.timestamp.before.max.ms` / `after.max.ms` (CreateTime topics only).
    timestamp_before_max_ms: Cell<i64>,
    timestamp_after_max_ms: Cell<i64>,
}

/// What opening a partition needs from its shard.
pub struct OpenContext {
    pub storage: DmaStorage,
    pub clock: Rc<dyn Clock>,
    pub budgets: Rc<ShardBudgets>,
}

impl Partition {
    /// Open (or create) the partition's log in `dir`, record the leader epoch in its epoch
    /// cache, and restore producer state.
    pub async fn open(
        tp: TopicPartition,
        topic_id: TopicId,
        dir: PathBuf,
        config: LogConfig,
        leader_epoch: LeaderEpoch,
        ctx: &OpenContext,
    ) -> Result<Rc<Self>> {
        let log = Log::open(
            ctx.storage.clone(),
            dir,
            topic_id,
            config,
            ctx.clock.clone(),
            ctx.budgets.clone(),
        )
        .await?;
        if log.latest_epoch().is_none_or(|e| e < leader_epoch) {
            log.assign_epoch(leader_epoch, log.log_end_offset()).await?;
        }
        let producers = restore_producers(&log, ctx.clock.now_ms()).await?;
        let segment_base = log.active_segment_base();
        Ok(Rc::new_cyclic(|me| Partition {
            me: me.clone(),
            tp,
            topic_id,
            log,
            leader_epoch: Cell::new(leader_epoch),
            producers: RefCell::new(producers),
            producers_dirty: Cell::new(false),
            snapshot_lock: AsyncLock::default(),
            roll_snapshot_queued: Cell::new(false),
            closed: Cell::new(false),
            snapshot_segment_base: Cell::new(segment_base),
            clock: ctx.clock.clone(),
            timestamp_before_max_ms: Cell::new(i64::MAX),
            timestamp_after_max_ms: Cell::new(i64::MAX),
        }))
    }

    /// Set the accepted distance of CreateTime timestamps from broker time.
    pub fn set_timestamp_bounds(&self, before_max_ms: i64, after_max_ms: i64) {
        self.timestamp_before_max_ms.set(before_max_ms);
        self.timestamp_after_max_ms.set(after_max_ms);
    }

    /// Kafka's timestamp check, on the batch's first and largest timestamps (records of an
    /// uncompressed batch are not each checked: a documented approximation).
    fn check_timestamps(&self, header: &BatchHeader) -> Result<()> {
        if self.log.config().message_timestamp_type != crate::batch::TimestampType::CreateTime {
            return Ok(());
        }
        let now_ms = self.clock.now_ms();
        for ts in [header.base_timestamp, header.max_timestamp] {
            let behind = now_ms.saturating_sub(ts) > self.timestamp_before_max_ms.get();
            let ahead = ts.saturating_sub(now_ms) > self.timestamp_after_max_ms.get();
            if ts >= 0 && (behind || ahead) {
                return Err(Error::InvalidTimestamp {
                    timestamp_ms: ts,
                    now_ms,
                });
            }
        }
        Ok(())
    }

    pub fn log(&self) -> &Rc<PartitionLog> {
        &self.log
    }

    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.leader_epoch.get()
    }

    /// Whether an append of `bytes` fits the in-flight limits now.
    pub fn has_space(&self, bytes: usize) -> bool {
        self.log.has_space(bytes)
    }

    pub async fn wait_for_space(&self, bytes: usize) -> Result<()> {
        self.log.wait_for_space(bytes).await
    }

    /// Stage 1 of a produce: check the producer's sequence, validate, assign offsets.
    /// Synchronous so that the order of calls is the order of offsets. A retried duplicate
    /// of one of the producer's last 5 batches is answered with its original offsets and
    /// not written again.
    pub fn append(&self, batch: BytesMut) -> Result<AppendInfo> {
        let header = BatchHeader::parse(&batch)?;
        if let SeqCheck::Duplicate {
            base_offset,
            last_offset,
            log_append_time_ms,
        } = self.producers.borrow().check(&header)?
        {
            // Only a batch that is itself valid may be answered as a duplicate: so far only
            // its header was parsed.
            crate::batch::validate_produced(&batch, self.log.config().max_message_bytes)?;
            return Ok(AppendInfo {
                base_offset: Offset(base_offset),
                last_offset: Offset(last_offset),
                log_append_time_ms,
                log_start_offset: self.log.log_start_offset(),
                record_count: header.record_count,
                bytes: 0,
                header,
            });
        }
        self.check_timestamps(&header)?;
        let info = self.log.append(batch, self.leader_epoch.get())?;
        if header.has_producer_id() {
            self.producers.borrow_mut().update(
                &header,
                info.base_offset.0,
                self.clock.now_ms(),
                info.log_append_time_ms,
            );
            self.producers_dirty.set(true);
        }
        self.snapshot_on_roll();
        Ok(info)
    }

    /// Kafka snapshots producer state when the log rolls, so that recovery after a crash
    /// replays at most the active segment and retention never deletes the only record of
    /// a producer. The write runs in the background; the state it writes is taken when it
    /// runs (a later, equally consistent point: state and log end are read together).
    fn snapshot_on_roll(&self) {
        let base = self.log.active_segment_base();
        if base == self.snapshot_segment_base.replace(base) || !self.producers_dirty.get() {
            return;
        }
        // One queued task at most, however fast the log rolls (tiny `segment.bytes`): it
        // takes the state when it runs, so later rolls are covered by it.
        if self.roll_snapshot_queued.replace(true) {
            return;
        }
        let Some(partition) = self.me.upgrade() else {
            return;
        };
        crate::runtime::spawn_background(async move {
            partition.roll_snapshot_queued.set(false);
            if let Err(e) = partition.snapshot_producers().await {
                tracing::warn!(tp = %partition.tp, "producer snapshot at roll failed: {e}");
            }
        });
    }

    /// Stage 2: resolves when the batch ending at `last` may be acknowledged.
    pub async fn wait_committed(&self, last: Offset) -> Result<()> {
        self.log.wait_durable(last).await
    }

    /// What consumers may read up to (exclusive). Single node: the durable offset under
    /// `always`, the log end otherwise (DESIGN invariant 4).
    pub fn high_watermark(&self) -> Offset {
        self.log.durable_offset()
    }

    /// Without transactions the last stable offset is the high watermark.
    pub fn last_stable_offset(&self) -> Offset {
        self.high_watermark()
    }

    pub fn log_start_offset(&self) -> Offset {
        self.log.log_start_offset()
    }

    pub fn log_end_offset(&self) -> Offset {
        self.log.log_end_offset()
    }

    /// Read committed batches from `offset`, at most `max_bytes` (the first batch always).
    pub async fn read(&self, offset: Offset, max_bytes: usize) -> Result<ReadResult> {
        self.log
            .read(offset, self.high_watermark(), max_bytes)
            .await
    }

    /// A change generation for long polls: read it, check, then `changed_since`.
    pub fn watch(&self) -> u64 {
        self.log.watch()
    }

    pub async fn changed_since(&self, generation: u64) {
        self.log.changed_since(generation).await
    }

    /// Drop producers idle for `producer.id.expiration.ms`.
    pub fn expire_producers(&self, expiration_ms: i64) {
        if self
            .producers
            .borrow_mut()
            .expire(self.clock.now_ms(), expiration_ms)
            > 0
        {
            self.producers_dirty.set(true);
        }
    }

    /// Snapshot producer state if it changed since the last snapshot.
    pub async fn snapshot_producers(&self) -> Result<()> {
        let _writing = self.snapshot_lock.lock().await;
        self.snapshot_locked().await
    }

    /// The snapshot write, under `snapshot_lock`. Nothing once the partition is closed or
    /// deleted: a late background snapshot must not write into a directory that a topic
    /// of the same name may own by now.
    async fn snapshot_locked(&self) -> Result<()> {
        if self.closed.get() || !self.producers_dirty.replace(false) {
            return Ok(());
        }
        let end = self.log.log_end_offset().0;
        let bytes = self.producers.borrow().snapshot(end);
        let written = self
            .log
            .write_aux_file(PRODUCER_SNAPSHOT_FILE, &bytes)
            .await;
        if written.is_err() {
            self.producers_dirty.set(true);
        }
        written
    }

    /// Clean shutdown: snapshot producer state, then close the log (flush, checkpoints,
    /// clean-shutdown marker).
    pub async fn close(&self) -> Result<()> {
        let snap = {
            let _writing = self.snapshot_lock.lock().await;
            let snap = self.snapshot_locked().await;
            self.closed.set(true);
            snap
        };
        self.log.close().await?;
        snap
    }

    /// Topic deletion: the log directory is renamed and removed.
    pub async fn delete(self: Rc<Self>) -> Result<()> {
        {
            let _writing = self.snapshot_lock.lock().await;
            self.closed.set(true);
        }
        self.log.clone().delete().await.map(|_| ())
    }
}

/// Producer state = the snapshot (if valid) + every producer batch after its offset.
async fn restore_producers(log: &Rc<PartitionLog>, now_ms: i64) -> Result<ProducerStateTable> {
    let (mut table, mut from) = match log.read_aux_file(PRODUCER_SNAPSHOT_FILE).await? {
        Some(bytes) => match ProducerStateTable::restore(&bytes) {
            Ok((t, offset)) => (t, offset),
            Err(e) => {
                tracing::warn!(dir = %log.dir().display(), "producer snapshot unusable, rebuilding from the log: {e}");
                (ProducerStateTable::new(PRODUCERS_PER_PARTITION_MAX), 0)
            }
        },
        None => (ProducerStateTable::new(PRODUCERS_PER_PARTITION_MAX), 0),
    };
    let end = log.log_end_offset();
    if from > end.0 {
        // The snapshot is ahead of a log that lost its tail: rebuild from scratch.
        table = ProducerStateTable::new(PRODUCERS_PER_PARTITION_MAX);
        from = 0;
    }
    let mut offset = Offset(from.max(log.log_start_offset().0));
    while offset < end {
        let r = match log.read(offset, end, REBUILD_READ_BYTES).await {
            Ok(r) => r,
            Err(Error::OffsetOutOfRange { .. }) => break,
            Err(e) => return Err(e),
        };
        if r.chunks.is_empty() || r.next_offset <= offset {
            break;
        }
        for chunk in &r.chunks {
            for_each_header(chunk, |h| {
                if h.has_producer_id() {
                    table.update(h, h.base_offset, now_ms, -1);
                }
            });
        }
        offset = r.next_offset;
    }
    Ok(table)
}

/// Call `f` for every batch header in a chunk of whole stored batches.
fn for_each_header(mut chunk: &[u8], mut f: impl FnMut(&BatchHeader)) {
    while let Ok(h) = BatchHeader::parse(chunk) {
        let len = h.total_len();
        if len > chunk.len() {
            return;
        }
        f(&h);
        chunk = &chunk[len..];
    }
}
