//! Cluster metadata as a log of typed records — on a single node too, so that the Raft
//! controller later replaces the transport, not the model (DESIGN: "Identity, metadata and
//! files").
//!
//! - [`record`]: the record types and their versioned binary encoding.
//! - [`image`]: the state machine ([`MetadataImage::apply`]) and its queries.
//! - [`log`]: the local log in `<data-dir>/__cluster_metadata-0/` (fsync'd atomic batches,
//!   torn-tail truncation, atomic snapshots).
//! - [`properties`]: `meta.properties` (cluster.id, node.id, directory.id).
//! - [`store`]: [`MetadataStore`], the validated write path the admin APIs call.
//!
//! Pure of networking; file I/O is std::fs (small, off the hot path).

mod codec;
pub mod image;
pub mod log;
pub mod properties;
pub mod record;
pub mod store;

pub use image::{BrokerImage, MetadataImage, PartitionImage, ProducerIdsImage, TopicImage};
pub use log::{MetadataLog, MetadataLogOptions, RecoveryReport, METADATA_DIR_NAME};
pub use properties::{kafka_uuid_string, parse_kafka_uuid, random_kafka_uuid, MetaProperties};
pub use record::*;
pub use store::{
    validate_topic_name, AlterConfigOp, AlterConfigOpType, CreatedTopic, MetadataStore, NewTopic,
    ProducerIdBlock, PRODUCER_ID_BLOCK_SIZE,
};

#[cfg(test)]
mod tests;
