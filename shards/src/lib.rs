//! `shards`: Riptide's thread-per-core engine.
//!
//! Each CPU core runs one shard (a glommio executor) that owns a set of partitions and all of
//! their state: the on-disk log ([`log`]), its tail cache and checkpoints. Shards talk only by
//! message over the channel mesh ([`runtime`]). This crate knows nothing of the Kafka wire
//! protocol or the controller; it only knows Kafka's RecordBatch v2 layout ([`batch`]).

pub mod batch;
pub mod clock;
pub mod error;
pub mod log;
pub mod partition;
pub mod producer_state;
pub mod runtime;
pub mod storage;
pub mod table;
pub mod types;

pub use error::{Error, Result};
pub use types::{LeaderEpoch, NodeId, Offset, ShardId, TopicId, TopicPartition};
