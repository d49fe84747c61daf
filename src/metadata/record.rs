//! The typed metadata records, the same set the Raft controller will replicate.
//!
//! Encoding: hand-written, versioned, big-endian — `type: u16` (Kafka's metadata record api
//! key where one exists), `version: u8`, then the fields. Chosen over rkyv because the records
//! are tiny and written off the hot path, the on-disk format must stay stable and readable
//! across Riptide versions (an explicit version byte per record, fields appended in new
//! versions), decoding needs no aligned buffer, and every length is checked against the
//! bytes that remain — the property bytecheck would give, with no extra dependency.

use shards::{LeaderEpoch, NodeId, ShardId, TopicId};
use uuid::Uuid;

use super::codec::{DecodeResult, Reader, Writer};

/// Kafka's `ConfigResource.Type` ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigResourceType {
    Topic = 2,
    Broker = 4,
}

impl ConfigResourceType {
    pub fn from_id(id: i8) -> Option<ConfigResourceType> {
        match id {
            2 => Some(ConfigResourceType::Topic),
            4 => Some(ConfigResourceType::Broker),
            _ => None,
        }
    }
}

/// A topic came into existence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicRecord {
    pub name: String,
    pub topic_id: TopicId,
}

/// A partition's full state (creation, or a snapshot of it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionRecord {
    pub topic_id: TopicId,
    pub partition: i32,
    pub replicas: Vec<NodeId>,
    pub isr: Vec<NodeId>,
    /// -1: no leader.
    pub leader: NodeId,
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: i32,
}

/// A change to an existing partition. A leader change bumps the leader epoch; every change
/// bumps the partition epoch (as KRaft's `PartitionChangeRecord`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionChangeRecord {
    pub topic_id: TopicId,
    pub partition: i32,
    pub leader: Option<NodeId>,
    pub isr: Option<Vec<NodeId>>,
    pub replicas: Option<Vec<NodeId>>,
}

/// A config key set (`value: Some`) or deleted (`None`) on a resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigRecord {
    pub resource_type: ConfigResourceType,
    pub resource_name: String,
    pub name: String,
    pub value: Option<String>,
}

/// A topic and everything under it (partitions, placements, topic configs) is gone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoveTopicRecord {
    pub topic_id: TopicId,
}

/// A block of producer ids was handed to `broker_id`; `next_producer_id` is the first id of
/// the next block (Kafka's semantics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerIdsRecord {
    pub broker_id: NodeId,
    pub broker_epoch: i64,
    pub next_producer_id: i64,
}

/// One endpoint a broker serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerEndpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
    /// Kafka `SecurityProtocol` id (0: PLAINTEXT).
    pub security_protocol: i16,
}

/// A broker registered (or re-registered after a restart: new incarnation, new epoch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterBrokerRecord {
    pub broker_id: NodeId,
    pub incarnation_id: Uuid,
    pub broker_epoch: i64,
    pub listeners: Vec<BrokerEndpoint>,
    pub rack: Option<String>,
    pub fenced: bool,
}

/// A finalized feature level (e.g. `metadata.version`); level 0 removes the feature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeatureLevelRecord {
    pub name: String,
    pub feature_level: i16,
}

/// Riptide: the shard a partition was placed on. Recorded once; if the shard count later
/// shrinks, ownership moves (see `MetadataImage::owner_shard`) but the record stays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacementRecord {
    pub topic_id: TopicId,
    pub partition: i32,
    pub shard: ShardId,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetadataRecord {
    RegisterBroker(RegisterBrokerRecord),
    Topic(TopicRecord),
    Partition(PartitionRecord),
    Config(ConfigRecord),
    PartitionChange(PartitionChangeRecord),
    RemoveTopic(RemoveTopicRecord),
    FeatureLevel(FeatureLevelRecord),
    ProducerIds(ProducerIdsRecord),
    Placement(PlacementRecord),
}

const TYPE_REGISTER_BROKER: u16 = 0;
const TYPE_TOPIC: u16 = 2;
const TYPE_PARTITION: u16 = 3;
const TYPE_CONFIG: u16 = 4;
const TYPE_PARTITION_CHANGE: u16 = 5;
const TYPE_REMOVE_TOPIC: u16 = 9;
const TYPE_FEATURE_LEVEL: u16 = 12;
const TYPE_PRODUCER_IDS: u16 = 15;
/// Riptide-specific types start at 1000, clear of Kafka's api keys.
const TYPE_PLACEMENT: u16 = 1000;

/// Every record type is at version 0 so far.
const VERSION: u8 = 0;

fn put_nodes(w: &mut Writer, nodes: &[NodeId]) {
    let ids: Vec<i32> = nodes.iter().map(|n| n.0).collect();
    w.i32s(&ids);
}

fn get_nodes(r: &mut Reader) -> DecodeResult<Vec<NodeId>> {
    Ok(r.i32s()?.into_iter().map(NodeId).collect())
}

fn put_opt_nodes(w: &mut Writer, nodes: &Option<Vec<NodeId>>) {
    w.bool(nodes.is_some());
    if let Some(nodes) = nodes {
        put_nodes(w, nodes);
    }
}

fn get_opt_nodes(r: &mut Reader) -> DecodeResult<Option<Vec<NodeId>>> {
    if r.bool()? {
        Ok(Some(get_nodes(r)?))
    } else {
        Ok(None)
    }
}

impl MetadataRecord {
    fn type_id(&self) -> u16 {
        match self {
            MetadataRecord::RegisterBroker(_) => TYPE_REGISTER_BROKER,
            MetadataRecord::Topic(_) => TYPE_TOPIC,
            MetadataRecord::Partition(_) => TYPE_PARTITION,
            MetadataRecord::Config(_) => TYPE_CONFIG,
            MetadataRecord::PartitionChange(_) => TYPE_PARTITION_CHANGE,
            MetadataRecord::RemoveTopic(_) => TYPE_REMOVE_TOPIC,
            MetadataRecord::FeatureLevel(_) => TYPE_FEATURE_LEVEL,
            MetadataRecord::ProducerIds(_) => TYPE_PRODUCER_IDS,
            MetadataRecord::Placement(_) => TYPE_PLACEMENT,
        }
    }

    /// Appends the encoding of this record to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer {
            buf: std::mem::take(out),
        };
        w.u16(self.type_id());
        w.u8(VERSION);
        match self {
            MetadataRecord::RegisterBroker(r) => {
                w.i32(r.broker_id.0);
                w.uuid(&r.incarnation_id);
                w.i64(r.broker_epoch);
                w.u32(u32::try_from(r.listeners.len()).expect("bounded"));
                for l in &r.listeners {
                    w.str(&l.name);
                    w.str(&l.host);
                    w.u16(l.port);
                    w.i16(l.security_protocol);
                }
                w.opt_str(r.rack.as_deref());
                w.bool(r.fenced);
            }
            MetadataRecord::Topic(r) => {
                w.str(&r.name);
                w.uuid(&r.topic_id.0);
            }
            MetadataRecord::Partition(r) => {
                w.uuid(&r.topic_id.0);
                w.i32(r.partition);
                put_nodes(&mut w, &r.replicas);
                put_nodes(&mut w, &r.isr);
                w.i32(r.leader.0);
                w.i32(r.leader_epoch.0);
                w.i32(r.partition_epoch);
            }
            MetadataRecord::Config(r) => {
                w.u8(r.resource_type as u8);
                w.str(&r.resource_name);
                w.str(&r.name);
                w.opt_str(r.value.as_deref());
            }
            MetadataRecord::PartitionChange(r) => {
                w.uuid(&r.topic_id.0);
                w.i32(r.partition);
                w.bool(r.leader.is_some());
                w.i32(r.leader.map_or(-1, |l| l.0));
                put_opt_nodes(&mut w, &r.isr);
                put_opt_nodes(&mut w, &r.replicas);
            }
            MetadataRecord::RemoveTopic(r) => w.uuid(&r.topic_id.0),
            MetadataRecord::FeatureLevel(r) => {
                w.str(&r.name);
                w.i16(r.feature_level);
            }
            MetadataRecord::ProducerIds(r) => {
                w.i32(r.broker_id.0);
                w.i64(r.broker_epoch);
                w.i64(r.next_producer_id);
            }
            MetadataRecord::Placement(r) => {
                w.uuid(&r.topic_id.0);
                w.i32(r.partition);
                w.u16(r.shard.0);
            }
        }
        *out = w.buf;
    }

    /// Decodes exactly one record occupying all of `bytes`.
    pub fn decode(bytes: &[u8]) -> DecodeResult<MetadataRecord> {
        let mut r = Reader::new(bytes);
        let type_id = r.u16()?;
        let version = r.u8()?;
        if version != VERSION {
            return Err(format!(
                "record type {type_id} has unknown version {version}"
            ));
        }
        let record = match type_id {
            TYPE_REGISTER_BROKER => {
                let broker_id = NodeId(r.i32()?);
                let incarnation_id = r.uuid()?;
                let broker_epoch = r.i64()?;
                let count = r.count(12)?;
                let mut listeners = Vec::with_capacity(count);
                for _ in 0..count {
                    listeners.push(BrokerEndpoint {
                        name: r.str()?,
                        host: r.str()?,
                        port: r.u16()?,
                        security_protocol: r.i16()?,
                    });
                }
                let rack = r.opt_str()?;
                let fenced = r.bool()?;
                MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                    broker_id,
                    incarnation_id,
                    broker_epoch,
                    listeners,
                    rack,
                    fenced,
                })
            }
            TYPE_TOPIC => MetadataRecord::Topic(TopicRecord {
                name: r.str()?,
                topic_id: TopicId(r.uuid()?),
            }),
            TYPE_PARTITION => MetadataRecord::Partition(PartitionRecord {
                topic_id: TopicId(r.uuid()?),
                partition: r.i32()?,
                replicas: get_nodes(&mut r)?,
                isr: get_nodes(&mut r)?,
                leader: NodeId(r.i32()?),
                leader_epoch: LeaderEpoch(r.i32()?),
                partition_epoch: r.i32()?,
            }),
            TYPE_CONFIG => {
                let resource_type = ConfigResourceType::from_id(r.u8()? as i8)
                    .ok_or("unknown config resource type")?;
                MetadataRecord::Config(ConfigRecord {
                    resource_type,
                    resource_name: r.str()?,
                    name: r.str()?,
                    value: r.opt_str()?,
                })
            }
            TYPE_PARTITION_CHANGE => {
                let topic_id = TopicId(r.uuid()?);
                let partition = r.i32()?;
                let has_leader = r.bool()?;
                let leader = NodeId(r.i32()?);
                MetadataRecord::PartitionChange(PartitionChangeRecord {
                    topic_id,
                    partition,
                    leader: has_leader.then_some(leader),
                    isr: get_opt_nodes(&mut r)?,
                    replicas: get_opt_nodes(&mut r)?,
                })
            }
            TYPE_REMOVE_TOPIC => MetadataRecord::RemoveTopic(RemoveTopicRecord {
                topic_id: TopicId(r.uuid()?),
            }),
            TYPE_FEATURE_LEVEL => MetadataRecord::FeatureLevel(FeatureLevelRecord {
                name: r.str()?,
                feature_level: r.i16()?,
            }),
            TYPE_PRODUCER_IDS => MetadataRecord::ProducerIds(ProducerIdsRecord {
                broker_id: NodeId(r.i32()?),
                broker_epoch: r.i64()?,
                next_producer_id: r.i64()?,
            }),
            TYPE_PLACEMENT => MetadataRecord::Placement(PlacementRecord {
                topic_id: TopicId(r.uuid()?),
                partition: r.i32()?,
                shard: ShardId(r.u16()?),
            }),
            other => return Err(format!("unknown record type {other}")),
        };
        r.finish()?;
        Ok(record)
    }
}
