//! The one error type of the `shards` crate. Variants carry the context (path, offset) the
//! operator needs; the broker maps them to Kafka error codes in one place.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corrupt record batch: {0}")]
    CorruptBatch(String),
    #[error("record batch of {size} bytes exceeds the limit of {limit}")]
    BatchTooLarge { size: usize, limit: usize },
    #[error("record list of {size} bytes exceeds the limit of {limit}")]
    RecordListTooLarge { size: usize, limit: usize },
    #[error("offset {offset} out of range [{start}, {end}]")]
    OffsetOutOfRange { offset: i64, start: i64, end: i64 },
    #[error("shard {0} is unavailable (shutting down)")]
    ShardUnavailable(u16),
    #[error("queue to shard {0} is full")]
    Backpressure(u16),
    #[error("log is closed")]
    Closed,
    #[error("{0}")]
    Invalid(String),
    /// Kafka OUT_OF_ORDER_SEQUENCE_NUMBER: neither the next sequence nor a retained duplicate.
    #[error("out of order sequence for producer {producer_id} epoch {producer_epoch}: got {sequence}, last {last_sequence}")]
    OutOfOrderSequence {
        producer_id: i64,
        producer_epoch: i16,
        sequence: i32,
        last_sequence: i32,
    },
    /// Kafka INVALID_PRODUCER_EPOCH: the batch's epoch is older than the producer's current one.
    #[error("producer {producer_id} epoch {producer_epoch} is older than the current epoch {current_epoch}")]
    InvalidProducerEpoch {
        producer_id: i64,
        producer_epoch: i16,
        current_epoch: i16,
    },
    /// Kafka UNKNOWN_PRODUCER_ID: a non-zero sequence from a producer the partition has no state
    /// for (expired, evicted, or its batches removed by retention or truncation).
    #[error("unknown producer {producer_id} (sequence {sequence} without state)")]
    UnknownProducerId { producer_id: i64, sequence: i32 },
    /// Kafka INVALID_TXN_STATE: a non-transactional batch while the producer has an open
    /// transaction in this partition.
    #[error("producer {producer_id} wrote a non-transactional batch inside an open transaction")]
    InvalidTxnState { producer_id: i64 },
    /// A producer-state snapshot that fails its checks; the caller rebuilds from the log.
    #[error("corrupt producer state snapshot: {0}")]
    CorruptSnapshot(String),
    /// The log's in-flight limit is reached; wait for `Log::wait_for_space` and retry.
    #[error("log in-flight bytes {in_flight_bytes} at the limit {limit}")]
    LogInFlightFull { in_flight_bytes: usize, limit: usize },
    /// The partition directory belongs to another topic (same name, different id).
    #[error("{path} holds topic id {found}, expected {expected}")]
    TopicIdMismatch { path: PathBuf, expected: String, found: String },
    /// The log hit an I/O error and refuses writes until reopened (recovery).
    #[error("log failed: {0}")]
    LogFailed(String),
    /// An unreadable metadata or checkpoint file.
    #[error("corrupt file {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
