//! The broker library's error type. Engine errors (`shards::Error`) pass through; the
//! mapping of every error to a Kafka error code lives in one place: `api::codes`.

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Engine(#[from] shards::Error),
    #[error("unknown topic or partition: {0}")]
    UnknownTopicOrPartition(String),
    #[error("topic already exists: {0}")]
    TopicExists(String),
    #[error("invalid topic name {0:?}: {1}")]
    InvalidTopic(String, String),
    #[error("invalid partitions: {0}")]
    InvalidPartitions(String),
    #[error("invalid replication factor: {0}")]
    InvalidReplicationFactor(String),
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("not leader or follower for {0}")]
    NotLeader(String),
    #[error("fenced leader epoch {request} < {current}")]
    FencedLeaderEpoch { request: i32, current: i32 },
    #[error("unknown leader epoch {request} > {current}")]
    UnknownLeaderEpoch { request: i32, current: i32 },
    #[error("the metadata log failed: {0}")]
    Metadata(String),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}
