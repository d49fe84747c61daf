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
    // Group coordinator (src/coordinator): each maps to its Kafka code in api::codes.
    #[error("not the coordinator for group {0}")]
    NotCoordinator(String),
    #[error("coordinator partition {0} of __consumer_offsets is loading")]
    CoordinatorLoadInProgress(i32),
    #[error("coordinator not available for {0}")]
    CoordinatorNotAvailable(String),
    #[error("illegal generation {0}")]
    IllegalGeneration(i32),
    #[error("unknown member id {0:?}")]
    UnknownMemberId(String),
    #[error("group {0} is rebalancing")]
    RebalanceInProgress(String),
    /// KIP-394: carries the member id the client must rejoin with.
    #[error("member id required; rejoin with {0}")]
    MemberIdRequired(String),
    #[error("static member {0} is fenced by a newer instance")]
    FencedInstanceId(String),
    #[error("group {0} not found")]
    GroupIdNotFound(String),
    #[error("group {0} is not empty")]
    NonEmptyGroup(String),
    #[error("inconsistent group protocol for group {0}")]
    InconsistentGroupProtocol(String),
    #[error("group is subscribed to topic {0}")]
    GroupSubscribedToTopic(String),
    #[error("session timeout {0} ms outside the broker's bounds")]
    InvalidSessionTimeout(i32),
    #[error("offset metadata of {0} bytes is too large")]
    OffsetMetadataTooLarge(usize),
    #[error("group {0} reached its maximum size")]
    GroupMaxSizeReached(String),
    #[error("invalid group id {0:?}")]
    InvalidGroupId(String),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}
