//! The metadata state machine: [`MetadataImage::apply`] folds records into the cluster state
//! the broker serves (topics, partitions, configs, brokers, producer-id blocks, placement).
//! Deterministic (ordered maps only) so a replayed image equals the live one, and
//! [`MetadataImage::to_records`] rebuilds it exactly (what snapshots store).

use std::collections::BTreeMap;

use shards::{Error, LeaderEpoch, NodeId, Result, ShardId, TopicId};

use super::record::*;
use crate::config::TopicConfig;

/// A partition's current state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionImage {
    pub replicas: Vec<NodeId>,
    pub isr: Vec<NodeId>,
    /// -1: no leader.
    pub leader: NodeId,
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: i32,
    /// The shard this partition was placed on, once placed.
    pub shard: Option<ShardId>,
}

/// A topic and its partitions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub id: TopicId,
    pub partitions: BTreeMap<i32, PartitionImage>,
}

/// A registered broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerImage {
    pub id: NodeId,
    pub incarnation_id: uuid::Uuid,
    pub epoch: i64,
    pub listeners: Vec<BrokerEndpoint>,
    pub rack: Option<String>,
    pub fenced: bool,
}

/// The last producer-id block handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ProducerIdsImage {
    pub broker_id: NodeId,
    pub broker_epoch: i64,
    /// The first id of the next block; 0 before any allocation.
    pub next_producer_id: i64,
}

/// The cluster metadata.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MetadataImage {
    topics: BTreeMap<TopicId, TopicImage>,
    topic_ids: BTreeMap<String, TopicId>,
    configs: BTreeMap<(ConfigResourceType, String), BTreeMap<String, String>>,
    brokers: BTreeMap<NodeId, BrokerImage>,
    features: BTreeMap<String, i16>,
    producer_ids: ProducerIdsImage,
}

fn inconsistent(message: String) -> Error {
    Error::MetadataRecord(message)
}

impl MetadataImage {
    pub fn new() -> MetadataImage {
        MetadataImage::default()
    }

    /// Applies one record. An error means the record does not fit the state (a bug in the
    /// writer or a corrupt log); the image is then unchanged.
    pub fn apply(&mut self, record: &MetadataRecord) -> Result<()> {
        match record {
            MetadataRecord::Topic(r) => self.apply_topic(r),
            MetadataRecord::Partition(r) => self.apply_partition(r),
            MetadataRecord::PartitionChange(r) => self.apply_partition_change(r),
            MetadataRecord::Config(r) => {
                let key = (r.resource_type, r.resource_name.clone());
                match &r.value {
                    Some(value) => {
                        self.configs
                            .entry(key)
                            .or_default()
                            .insert(r.name.clone(), value.clone());
                    }
                    None => {
                        if let Some(map) = self.configs.get_mut(&key) {
                            map.remove(&r.name);
                            if map.is_empty() {
                                self.configs.remove(&key);
                            }
                        }
                    }
                }
                Ok(())
            }
            MetadataRecord::RemoveTopic(r) => {
                let topic = self.topics.remove(&r.topic_id).ok_or_else(|| {
                    inconsistent(format!("RemoveTopic for unknown topic id {}", r.topic_id.0))
                })?;
                self.topic_ids.remove(&topic.name);
                // As KRaft does on RemoveTopicRecord: the topic's configs go with it.
                self.configs
                    .remove(&(ConfigResourceType::Topic, topic.name));
                Ok(())
            }
            MetadataRecord::ProducerIds(r) => {
                if r.next_producer_id <= self.producer_ids.next_producer_id {
                    return Err(inconsistent(format!(
                        "ProducerIds next {} does not advance past {}",
                        r.next_producer_id, self.producer_ids.next_producer_id
                    )));
                }
                self.producer_ids = ProducerIdsImage {
                    broker_id: r.broker_id,
                    broker_epoch: r.broker_epoch,
                    next_producer_id: r.next_producer_id,
                };
                Ok(())
            }
            MetadataRecord::RegisterBroker(r) => {
                let broker = BrokerImage {
                    id: r.broker_id,
                    incarnation_id: r.incarnation_id,
                    epoch: r.broker_epoch,
                    listeners: r.listeners.clone(),
                    rack: r.rack.clone(),
                    fenced: r.fenced,
                };
                self.brokers.insert(r.broker_id, broker);
                Ok(())
            }
            MetadataRecord::FeatureLevel(r) => {
                if r.feature_level == 0 {
                    self.features.remove(&r.name);
                } else {
                    self.features.insert(r.name.clone(), r.feature_level);
                }
                Ok(())
            }
            MetadataRecord::Placement(r) => {
                let partition = self.partition_mut(r.topic_id, r.partition)?;
                partition.shard = Some(r.shard);
                Ok(())
            }
        }
    }

    fn apply_topic(&mut self, r: &TopicRecord) -> Result<()> {
        if self.topic_ids.contains_key(&r.name) || self.topics.contains_key(&r.topic_id) {
            return Err(inconsistent(format!(
                "Topic {} ({}) exists",
                r.name, r.topic_id.0
            )));
        }
        let topic = TopicImage {
            name: r.name.clone(),
            id: r.topic_id,
            partitions: BTreeMap::new(),
        };
        self.topics.insert(r.topic_id, topic);
        self.topic_ids.insert(r.name.clone(), r.topic_id);
        Ok(())
    }

    fn apply_partition(&mut self, r: &PartitionRecord) -> Result<()> {
        if r.partition < 0 {
            return Err(inconsistent(format!(
                "Partition index {} is negative",
                r.partition
            )));
        }
        let topic = self.topics.get_mut(&r.topic_id).ok_or_else(|| {
            inconsistent(format!("Partition for unknown topic id {}", r.topic_id.0))
        })?;
        // A PartitionRecord for an existing partition replaces its state (snapshots, and
        // KRaft's own replay) but keeps the recorded placement.
        let shard = topic.partitions.get(&r.partition).and_then(|p| p.shard);
        let partition = PartitionImage {
            replicas: r.replicas.clone(),
            isr: r.isr.clone(),
            leader: r.leader,
            leader_epoch: r.leader_epoch,
            partition_epoch: r.partition_epoch,
            shard,
        };
        topic.partitions.insert(r.partition, partition);
        Ok(())
    }

    fn apply_partition_change(&mut self, r: &PartitionChangeRecord) -> Result<()> {
        let partition = self.partition_mut(r.topic_id, r.partition)?;
        if let Some(leader) = r.leader {
            partition.leader = leader;
            partition.leader_epoch = LeaderEpoch(partition.leader_epoch.0 + 1);
        }
        if let Some(isr) = &r.isr {
            partition.isr = isr.clone();
        }
        if let Some(replicas) = &r.replicas {
            partition.replicas = replicas.clone();
        }
        partition.partition_epoch += 1;
        Ok(())
    }

    fn partition_mut(&mut self, topic_id: TopicId, index: i32) -> Result<&mut PartitionImage> {
        self.topics
            .get_mut(&topic_id)
            .and_then(|t| t.partitions.get_mut(&index))
            .ok_or_else(|| inconsistent(format!("unknown partition {}-{index}", topic_id.0)))
    }

    /// The records that rebuild this image from empty (the body of a snapshot).
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut out = Vec::new();
        for (name, level) in &self.features {
            let r = FeatureLevelRecord {
                name: name.clone(),
                feature_level: *level,
            };
            out.push(MetadataRecord::FeatureLevel(r));
        }
        for b in self.brokers.values() {
            out.push(MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                broker_id: b.id,
                incarnation_id: b.incarnation_id,
                broker_epoch: b.epoch,
                listeners: b.listeners.clone(),
                rack: b.rack.clone(),
                fenced: b.fenced,
            }));
        }
        if self.producer_ids.next_producer_id > 0 {
            out.push(MetadataRecord::ProducerIds(ProducerIdsRecord {
                broker_id: self.producer_ids.broker_id,
                broker_epoch: self.producer_ids.broker_epoch,
                next_producer_id: self.producer_ids.next_producer_id,
            }));
        }
        for topic in self.topics.values() {
            out.push(MetadataRecord::Topic(TopicRecord {
                name: topic.name.clone(),
                topic_id: topic.id,
            }));
            for (index, p) in &topic.partitions {
                out.push(MetadataRecord::Partition(PartitionRecord {
                    topic_id: topic.id,
                    partition: *index,
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    leader: p.leader,
                    leader_epoch: p.leader_epoch,
                    partition_epoch: p.partition_epoch,
                }));
                if let Some(shard) = p.shard {
                    let r = PlacementRecord {
                        topic_id: topic.id,
                        partition: *index,
                        shard,
                    };
                    out.push(MetadataRecord::Placement(r));
                }
            }
        }
        for ((resource_type, resource_name), entries) in &self.configs {
            for (name, value) in entries {
                out.push(MetadataRecord::Config(ConfigRecord {
                    resource_type: *resource_type,
                    resource_name: resource_name.clone(),
                    name: name.clone(),
                    value: Some(value.clone()),
                }));
            }
        }
        out
    }

    // ---- queries ----

    pub fn topics(&self) -> impl Iterator<Item = &TopicImage> {
        self.topics.values()
    }

    /// Topics in name order (Metadata responses list them so).
    pub fn topics_by_name(&self) -> impl Iterator<Item = &TopicImage> {
        self.topic_ids.values().map(|id| &self.topics[id])
    }

    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }

    pub fn topic_by_name(&self, name: &str) -> Option<&TopicImage> {
        self.topic_ids.get(name).and_then(|id| self.topics.get(id))
    }

    pub fn topic_by_id(&self, id: TopicId) -> Option<&TopicImage> {
        self.topics.get(&id)
    }

    pub fn partition(&self, topic_id: TopicId, partition: i32) -> Option<&PartitionImage> {
        self.topics.get(&topic_id)?.partitions.get(&partition)
    }

    /// The stored config entries of a resource (topic overrides, dynamic broker configs).
    pub fn configs(
        &self,
        resource_type: ConfigResourceType,
        name: &str,
    ) -> Option<&BTreeMap<String, String>> {
        self.configs.get(&(resource_type, name.to_string()))
    }

    /// A topic's overrides as a [`TopicConfig`]. Stored entries were validated when written;
    /// one that no longer validates (a key removed in a later version) is skipped.
    pub fn topic_config(&self, topic: &str) -> TopicConfig {
        let mut config = TopicConfig::new();
        for (key, value) in self
            .configs(ConfigResourceType::Topic, topic)
            .into_iter()
            .flatten()
        {
            if config.set(key, value).is_err() {
                tracing::warn!(
                    topic,
                    key,
                    value,
                    "stored topic config no longer valid; ignored"
                );
            }
        }
        config
    }

    pub fn brokers(&self) -> impl Iterator<Item = &BrokerImage> {
        self.brokers.values()
    }

    pub fn broker(&self, id: NodeId) -> Option<&BrokerImage> {
        self.brokers.get(&id)
    }

    pub fn feature_level(&self, name: &str) -> Option<i16> {
        self.features.get(name).copied()
    }

    pub fn features(&self) -> impl Iterator<Item = (&str, i16)> {
        self.features.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// The last producer-id allocation; `next_producer_id` starts the next block.
    pub fn producer_ids(&self) -> ProducerIdsImage {
        self.producer_ids
    }

    /// The recorded placement of a partition.
    pub fn placement(&self, topic_id: TopicId, partition: i32) -> Option<ShardId> {
        self.partition(topic_id, partition)?.shard
    }

    /// The shard that owns a partition given the current shard count: the recorded shard if
    /// it still exists, else the recorded shard modulo the count (ownership moves, the record
    /// stays, so growing back restores the original owner).
    pub fn owner_shard(
        &self,
        topic_id: TopicId,
        partition: i32,
        shard_count: u16,
    ) -> Option<ShardId> {
        assert!(shard_count > 0);
        let shard = self.placement(topic_id, partition)?;
        Some(ShardId(shard.0 % shard_count))
    }

    /// How many placed partitions each of the first `shard_count` shards owns.
    pub fn shard_loads(&self, shard_count: u16) -> Vec<usize> {
        let mut loads = vec![0usize; usize::from(shard_count)];
        for topic in self.topics.values() {
            for index in topic.partitions.keys() {
                if let Some(owner) = self.owner_shard(topic.id, *index, shard_count) {
                    loads[usize::from(owner.0)] += 1;
                }
            }
        }
        loads
    }
}
