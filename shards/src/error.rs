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
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
