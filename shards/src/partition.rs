//! A partition replica on its home shard: the log plus the state Kafka keeps beside it —
//! leader epoch, high watermark, and (later) producer state and ISR.
//!
//! Only the home shard touches a `Partition` (invariant 3): it is `Rc`, not `Arc`, and its
//! interior mutability is `Cell`/`RefCell`, never a lock.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use bytes::BytesMut;

use crate::batch::BatchHeader;
use crate::error::Result;
use crate::log::{AppendInfo, FlushPolicy, Log, ReadResult};
use crate::producer_state::{ProducerStateTable, SeqCheck};
use crate::types::{LeaderEpoch, Offset, TopicId, TopicPartition};

pub struct Partition {
    pub tp: TopicPartition,
    pub topic_id: TopicId,
    log: Rc<Log>,
    leader_epoch: Cell<LeaderEpoch>,
    flush_policy: FlushPolicy,
    producers: RefCell<ProducerStateTable>,
}

/// Producer ids tracked per partition before the least recently used is evicted.
pub const PRODUCERS_PER_PARTITION_MAX: usize = 10_000;

impl Partition {
    pub fn new(
        tp: TopicPartition,
        topic_id: TopicId,
        log: Rc<Log>,
        leader_epoch: LeaderEpoch,
        flush_policy: FlushPolicy,
    ) -> Rc<Self> {
        Rc::new(Partition {
            tp,
            topic_id,
            log,
            leader_epoch: Cell::new(leader_epoch),
            flush_policy,
            producers: RefCell::new(ProducerStateTable::new(PRODUCERS_PER_PARTITION_MAX)),
        })
    }

    pub fn log(&self) -> &Rc<Log> {
        &self.log
    }

    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.leader_epoch.get()
    }

    /// Stage 1 of a produce: check the producer's sequence, validate, assign offsets.
    /// Synchronous so that the order of calls is the order of offsets. A retried duplicate
    /// of one of the producer's last 5 batches is answered with its original offsets and
    /// not written again.
    pub fn append(&self, batch: BytesMut, now_ms: i64) -> Result<AppendInfo> {
        let header = BatchHeader::parse(&batch)?;
        if let SeqCheck::Duplicate {
            base_offset,
            last_offset,
            log_append_time_ms,
        } = self.producers.borrow().check(&header)?
        {
            return Ok(AppendInfo {
                base_offset: Offset(base_offset),
                last_offset: Offset(last_offset),
                log_append_time_ms,
                log_start_offset: self.log.log_start_offset(),
            });
        }
        let info = self.log.append(batch, self.leader_epoch.get())?;
        self.producers.borrow_mut().update(
            &header,
            info.base_offset.0,
            now_ms,
            info.log_append_time_ms,
        );
        Ok(info)
    }

    /// Stage 2: resolves when the batch ending at `last` may be acknowledged.
    pub async fn wait_committed(&self, last: Offset) -> Result<()> {
        self.log.wait_durable(last).await
    }

    /// What consumers may read up to (exclusive). Single node: the durable offset under
    /// `always`, the log end otherwise (DESIGN invariant 4).
    pub fn high_watermark(&self) -> Offset {
        match self.flush_policy {
            FlushPolicy::Always => self.log.durable_offset(),
            _ => self.log.log_end_offset(),
        }
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
}
