//! The one place that maps internal errors to Kafka error codes. Handlers never write a
//! numeric code for an error value themselves; they call [`code_of`].

use crate::error::Error;

pub const NONE: i16 = 0;
pub const UNKNOWN_SERVER_ERROR: i16 = -1;
pub const OFFSET_OUT_OF_RANGE: i16 = 1;
pub const CORRUPT_MESSAGE: i16 = 2;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub const LEADER_NOT_AVAILABLE: i16 = 5;
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
pub const REQUEST_TIMED_OUT: i16 = 7;
pub const MESSAGE_TOO_LARGE: i16 = 10;
pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
pub const RECORD_LIST_TOO_LARGE: i16 = 18;
pub const NOT_ENOUGH_REPLICAS: i16 = 19;
pub const INVALID_REQUIRED_ACKS: i16 = 21;
pub const INVALID_TIMESTAMP: i16 = 32;
pub const UNSUPPORTED_VERSION: i16 = 35;
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
pub const INVALID_PARTITIONS: i16 = 37;
pub const INVALID_REPLICATION_FACTOR: i16 = 38;
pub const INVALID_REQUEST: i16 = 42;
pub const INVALID_CONFIG: i16 = 40;
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
pub const INVALID_PRODUCER_EPOCH: i16 = 47;
pub const UNKNOWN_PRODUCER_ID: i16 = 59;
pub const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
pub const FENCED_LEADER_EPOCH: i16 = 74;
pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
pub const INVALID_RECORD: i16 = 87;
pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
pub const UNKNOWN_TOPIC_ID: i16 = 100;
pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
pub const NOT_COORDINATOR: i16 = 16;
pub const ILLEGAL_GENERATION: i16 = 22;
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
pub const INVALID_GROUP_ID: i16 = 24;
pub const UNKNOWN_MEMBER_ID: i16 = 25;
pub const INVALID_SESSION_TIMEOUT: i16 = 26;
pub const REBALANCE_IN_PROGRESS: i16 = 27;
pub const NON_EMPTY_GROUP: i16 = 68;
pub const GROUP_ID_NOT_FOUND: i16 = 69;
pub const MEMBER_ID_REQUIRED: i16 = 79;
pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
pub const FENCED_INSTANCE_ID: i16 = 82;
pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;

pub fn code_of(err: &Error) -> i16 {
    match err {
        Error::Engine(e) => engine_code(e),
        Error::UnknownTopicOrPartition(_) => UNKNOWN_TOPIC_OR_PARTITION,
        Error::TopicExists(_) => TOPIC_ALREADY_EXISTS,
        Error::InvalidTopic(..) => INVALID_TOPIC_EXCEPTION,
        Error::InvalidPartitions(_) => INVALID_PARTITIONS,
        Error::InvalidReplicationFactor(_) => INVALID_REPLICATION_FACTOR,
        Error::InvalidConfig(_) => INVALID_CONFIG,
        Error::InvalidRequest(_) => INVALID_REQUEST,
        Error::NotLeader(_) => NOT_LEADER_OR_FOLLOWER,
        Error::FencedLeaderEpoch { .. } => FENCED_LEADER_EPOCH,
        Error::UnknownLeaderEpoch { .. } => UNKNOWN_LEADER_EPOCH,
        Error::Metadata(_) | Error::Io { .. } => UNKNOWN_SERVER_ERROR,
        Error::NotCoordinator(_) => NOT_COORDINATOR,
        Error::CoordinatorLoadInProgress(_) => COORDINATOR_LOAD_IN_PROGRESS,
        Error::CoordinatorNotAvailable(_) => COORDINATOR_NOT_AVAILABLE,
        Error::IllegalGeneration(_) => ILLEGAL_GENERATION,
        Error::UnknownMemberId(_) => UNKNOWN_MEMBER_ID,
        Error::RebalanceInProgress(_) => REBALANCE_IN_PROGRESS,
        Error::MemberIdRequired(_) => MEMBER_ID_REQUIRED,
        Error::FencedInstanceId(_) => FENCED_INSTANCE_ID,
        Error::GroupIdNotFound(_) => GROUP_ID_NOT_FOUND,
        Error::NonEmptyGroup(_) => NON_EMPTY_GROUP,
        Error::InconsistentGroupProtocol(_) => INCONSISTENT_GROUP_PROTOCOL,
        Error::GroupSubscribedToTopic(_) => GROUP_SUBSCRIBED_TO_TOPIC,
        Error::InvalidSessionTimeout(_) => INVALID_SESSION_TIMEOUT,
        Error::OffsetMetadataTooLarge(_) => OFFSET_METADATA_TOO_LARGE,
        Error::GroupMaxSizeReached(_) => GROUP_MAX_SIZE_REACHED,
        Error::InvalidGroupId(_) => INVALID_GROUP_ID,
    }
}

fn engine_code(err: &shards::Error) -> i16 {
    use shards::Error as E;
    match err {
        E::CorruptBatch(_) => CORRUPT_MESSAGE,
        E::BatchTooLarge { .. } => MESSAGE_TOO_LARGE,
        E::RecordListTooLarge { .. } => RECORD_LIST_TOO_LARGE,
        E::OffsetOutOfRange { .. } => OFFSET_OUT_OF_RANGE,
        E::ShardUnavailable(_) | E::Backpressure(_) | E::Closed => NOT_LEADER_OR_FOLLOWER,
        E::Io { .. } => UNKNOWN_SERVER_ERROR,
        E::Invalid(_) => INVALID_REQUEST,
        E::OutOfOrderSequence { .. } => OUT_OF_ORDER_SEQUENCE_NUMBER,
        E::InvalidProducerEpoch { .. } => INVALID_PRODUCER_EPOCH,
        E::UnknownProducerId { .. } => UNKNOWN_PRODUCER_ID,
        E::CorruptSnapshot(_) => UNKNOWN_SERVER_ERROR,
        E::InvalidTimestamp { .. } => INVALID_TIMESTAMP,
        E::InvalidConfig { .. } | E::UnknownConfig { .. } => INVALID_CONFIG,
        E::TopicExists(_) => TOPIC_ALREADY_EXISTS,
        E::UnknownTopic(_) => UNKNOWN_TOPIC_OR_PARTITION,
        E::InvalidTopic { .. } => INVALID_TOPIC_EXCEPTION,
        E::InvalidPartitions(_) => INVALID_PARTITIONS,
        E::InvalidReplicationFactor(_) => INVALID_REPLICATION_FACTOR,
        E::InvalidReplicaAssignment(_) => INVALID_REPLICA_ASSIGNMENT,
        E::MetadataCorrupt { .. } | E::MetadataRecord(_) => UNKNOWN_SERVER_ERROR,
        #[allow(unreachable_patterns)]
        _ => UNKNOWN_SERVER_ERROR,
    }
}
