//! [`MetadataStore`]: the single-node controller's write path. Each admin operation is
//! validated against the image and the config registry, turned into records, applied to a
//! copy of the image (so a record that does not fit never reaches disk), appended to the log
//! as one atomic, fsync'd batch, and only then made visible.
//!
//! Errors map to Kafka codes in the API layer (see `shards::Error`'s variants).

use std::path::{Path, PathBuf};

use shards::{Error, LeaderEpoch, NodeId, Result, ShardId, TopicId};
use uuid::Uuid;

use super::image::{MetadataImage, PartitionImage, TopicImage};
use super::log::{MetadataLog, MetadataLogOptions, RecoveryReport, METADATA_DIR_NAME};
use super::properties::{random_kafka_uuid, MetaProperties};
use super::record::*;
use crate::config::{registry::topic_def, BrokerConfig, ConfigType, TopicConfig};

/// Kafka's limit on topic name length.
pub const TOPIC_NAME_BYTES_MAX: usize = 249;
/// Partitions a single CreateTopics / CreatePartitions may ask for (keeps one batch bounded).
pub const PARTITIONS_PER_REQUEST_MAX: i32 = 10_000;
/// Producer ids handed out per block (Kafka's `ProducerIdsBlock` size).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;
/// The largest block one call may take.
pub const PRODUCER_ID_BLOCK_SIZE_MAX: i64 = 1_000_000;

/// A CreateTopics entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    /// -1: the broker's `num.partitions` (must be -1 with manual assignments).
    pub num_partitions: i32,
    /// -1: the broker's `default.replication.factor` (must be -1 with manual assignments).
    pub replication_factor: i16,
    /// Manual assignment: `(partition index, replicas)`, indices 0..n in any order.
    pub assignments: Vec<(i32, Vec<NodeId>)>,
    /// Config entries; a `None` value is INVALID_CONFIG, as in Kafka.
    pub configs: Vec<(String, Option<String>)>,
}

/// What CreateTopics reports back (v5+: partitions, replication factor, configs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatedTopic {
    pub topic_id: TopicId,
    pub num_partitions: i32,
    pub replication_factor: i16,
    pub config: TopicConfig,
}

/// IncrementalAlterConfigs operation (Kafka `AlterConfigOp.OpType` ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlterConfigOpType {
    Set = 0,
    Delete = 1,
    Append = 2,
    Subtract = 3,
}

impl AlterConfigOpType {
    pub fn from_id(id: i8) -> Option<AlterConfigOpType> {
        match id {
            0 => Some(AlterConfigOpType::Set),
            1 => Some(AlterConfigOpType::Delete),
            2 => Some(AlterConfigOpType::Append),
            3 => Some(AlterConfigOpType::Subtract),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlterConfigOp {
    pub name: String,
    pub op: AlterConfigOpType,
    pub value: Option<String>,
}

/// A block of producer ids `[first_id, first_id + size)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerIdBlock {
    pub first_id: i64,
    pub size: i64,
}

pub struct MetadataStore {
    node_id: NodeId,
    data_dir: PathBuf,
    meta: MetaProperties,
    log: MetadataLog,
    image: MetadataImage,
    recovery: RecoveryReport,
}

/// Kafka `Topic.validate`: 1..=249 chars of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<()> {
    let invalid = |reason: &str| Error::InvalidTopic {
        name: name.to_string(),
        reason: reason.into(),
    };
    if name.is_empty() {
        return Err(invalid("topic name is empty"));
    }
    if name == "." || name == ".." {
        return Err(invalid("topic name cannot be \".\" or \"..\""));
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return Err(invalid("topic name is longer than 249 characters"));
    }
    let legal = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-';
    if !name.bytes().all(legal) {
        return Err(invalid(
            "topic name contains characters other than ASCII alphanumerics, '.', '_' and '-'",
        ));
    }
    Ok(())
}

/// Kafka treats `.` and `_` as colliding in topic names (both map to `_` in metric names).
fn collision_key(name: &str) -> String {
    name.replace('.', "_")
}

impl MetadataStore {
    /// Opens the data directory: formats or checks `meta.properties`, then recovers the
    /// metadata log under `<data_dir>/__cluster_metadata-0/`.
    pub fn open(
        data_dir: &Path,
        node_id: NodeId,
        options: MetadataLogOptions,
    ) -> Result<MetadataStore> {
        let meta = MetaProperties::load_or_format(data_dir, node_id)?;
        let (log, image, recovery) = MetadataLog::open(&data_dir.join(METADATA_DIR_NAME), options)?;
        if recovery.truncated_bytes > 0 {
            tracing::warn!(
                bytes = recovery.truncated_bytes,
                "metadata log: torn tail truncated"
            );
        }
        Ok(MetadataStore {
            node_id,
            data_dir: data_dir.to_path_buf(),
            meta,
            log,
            image,
            recovery,
        })
    }

    pub fn image(&self) -> &MetadataImage {
        &self.image
    }
    pub fn meta_properties(&self) -> &MetaProperties {
        &self.meta
    }
    pub fn cluster_id(&self) -> &str {
        &self.meta.cluster_id
    }
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
    /// What recovery found when the store was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }
    /// The offset the next record gets.
    pub fn next_offset(&self) -> u64 {
        self.log.next_offset()
    }

    /// Applies `records` to a copy of the image, appends them as one fsync'd batch, then
    /// publishes the new image; snapshots when due. Empty input is a no-op.
    pub fn append(&mut self, records: Vec<MetadataRecord>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut next = self.image.clone();
        for record in &records {
            next.apply(record)?;
        }
        self.log.append(&records)?;
        self.image = next;
        // The records are durable: a failed snapshot costs replay time later, not data, so it
        // must not turn this append into an error.
        if let Err(error) = self.log.maybe_snapshot(&self.image) {
            tracing::warn!(%error, "metadata snapshot failed; retried after the next append");
        }
        Ok(())
    }

    /// Forces a snapshot now (e.g. on clean shutdown, so the next start replays nothing).
    pub fn snapshot(&mut self) -> Result<()> {
        self.log.snapshot(&self.image)
    }

    /// The brokers partitions may be assigned to: registered, unfenced brokers; this node
    /// alone before any registration.
    pub fn live_brokers(&self) -> Vec<NodeId> {
        let live: Vec<NodeId> = self
            .image
            .brokers()
            .filter(|b| !b.fenced)
            .map(|b| b.id)
            .collect();
        if live.is_empty() {
            vec![self.node_id]
        } else {
            live
        }
    }

    // ---- CreateTopics ----

    /// Validates and (unless `validate_only`) creates a topic: TopicRecord, ConfigRecords,
    /// PartitionRecords (leader = first replica, epoch 0, ISR = replicas) and a placement per
    /// partition on the least loaded of `shard_count` shards.
    pub fn create_topic(
        &mut self,
        spec: &NewTopic,
        broker: &BrokerConfig,
        shard_count: u16,
        validate_only: bool,
    ) -> Result<CreatedTopic> {
        validate_topic_name(&spec.name)?;
        if self.image.topic_by_name(&spec.name).is_some() {
            return Err(Error::TopicExists(spec.name.clone()));
        }
        let key = collision_key(&spec.name);
        if let Some(other) = self.image.topics().find(|t| collision_key(&t.name) == key) {
            return Err(Error::InvalidTopic {
                name: spec.name.clone(),
                reason: format!("collides with existing topic {}", other.name),
            });
        }
        let assignments = self.assignments_for(spec, broker)?;
        let mut config = TopicConfig::new();
        for (key, value) in &spec.configs {
            let value = value.as_deref().ok_or_else(|| Error::InvalidConfig {
                key: key.clone(),
                value: String::new(),
                reason: "null value not supported for topic configs".into(),
            })?;
            config.set(key, value)?;
        }
        config.validate_with(broker)?;
        let topic_id = self.new_topic_id();
        let created = CreatedTopic {
            topic_id,
            num_partitions: assignments.len() as i32,
            replication_factor: assignments.first().map_or(0, |r| r.len() as i16),
            config: config.clone(),
        };
        if validate_only {
            return Ok(created);
        }
        let mut records = vec![MetadataRecord::Topic(TopicRecord {
            name: spec.name.clone(),
            topic_id,
        })];
        for (key, value) in config.overrides() {
            records.push(topic_config_record(&spec.name, key, Some(value)));
        }
        let first = 0;
        self.push_partitions(&mut records, topic_id, first, &assignments, shard_count);
        self.append(records)?;
        Ok(created)
    }

    fn new_topic_id(&self) -> TopicId {
        loop {
            let id = TopicId(random_kafka_uuid());
            if self.image.topic_by_id(id).is_none() {
                return id;
            }
        }
    }

    /// Replica lists, one per partition, from a manual assignment or round-robin over the
    /// live brokers.
    fn assignments_for(&self, spec: &NewTopic, broker: &BrokerConfig) -> Result<Vec<Vec<NodeId>>> {
        if !spec.assignments.is_empty() {
            if spec.num_partitions != -1 || spec.replication_factor != -1 {
                return Err(Error::Invalid(
                    "both a replica assignment and numPartitions/replicationFactor were given"
                        .into(),
                ));
            }
            let count = spec.assignments.len();
            let mut by_index = vec![None; count];
            for (index, replicas) in &spec.assignments {
                let slot = usize::try_from(*index)
                    .ok()
                    .filter(|i| *i < count)
                    .ok_or_else(|| {
                        Error::InvalidReplicaAssignment(format!(
                            "partition indices must be 0..{count}, got {index}"
                        ))
                    })?;
                if by_index[slot].replace(replicas.clone()).is_some() {
                    return Err(Error::InvalidReplicaAssignment(format!(
                        "partition {index} assigned twice"
                    )));
                }
            }
            let lists: Vec<Vec<NodeId>> = by_index
                .into_iter()
                .map(|r| r.expect("all indices filled"))
                .collect();
            self.check_replica_lists(&lists)?;
            return Ok(lists);
        }
        let partitions = match spec.num_partitions {
            -1 => broker.num_partitions(),
            n => n,
        };
        let replication = match spec.replication_factor {
            -1 => broker.default_replication_factor(),
            n => n,
        };
        if partitions <= 0 {
            return Err(Error::InvalidPartitions(format!(
                "number of partitions {partitions} must be positive"
            )));
        }
        if partitions > PARTITIONS_PER_REQUEST_MAX {
            return Err(Error::InvalidPartitions(format!(
                "number of partitions {partitions} exceeds the limit of {PARTITIONS_PER_REQUEST_MAX}"
            )));
        }
        if replication <= 0 {
            return Err(Error::InvalidReplicationFactor(format!(
                "replication factor {replication} must be positive"
            )));
        }
        self.round_robin(0, partitions, replication)
    }

    fn round_robin(&self, first: i32, count: i32, replication: i16) -> Result<Vec<Vec<NodeId>>> {
        let brokers = self.live_brokers();
        if usize::from(replication as u16) > brokers.len() {
            return Err(Error::InvalidReplicationFactor(format!(
                "unable to replicate the partition {replication} time(s): the target replication factor of \
                 {replication} cannot be reached because only {} broker(s) are registered",
                brokers.len()
            )));
        }
        let n = brokers.len();
        Ok((first..first + count)
            .map(|p| {
                (0..replication as usize)
                    .map(|r| brokers[(p as usize + r) % n])
                    .collect()
            })
            .collect())
    }

    fn check_replica_lists(&self, lists: &[Vec<NodeId>]) -> Result<()> {
        let known: Vec<NodeId> = self.live_brokers();
        let width = lists.first().map_or(0, Vec::len);
        if lists.len() > PARTITIONS_PER_REQUEST_MAX as usize {
            return Err(Error::InvalidPartitions(format!(
                "more than {PARTITIONS_PER_REQUEST_MAX} partitions"
            )));
        }
        for replicas in lists {
            if replicas.is_empty() || replicas.len() != width {
                return Err(Error::InvalidReplicaAssignment(
                    "every partition needs the same, non-zero number of replicas".into(),
                ));
            }
            for (i, node) in replicas.iter().enumerate() {
                if replicas[..i].contains(node) {
                    return Err(Error::InvalidReplicaAssignment(format!(
                        "broker {} listed twice",
                        node.0
                    )));
                }
                if !known.contains(node) {
                    return Err(Error::InvalidReplicaAssignment(format!(
                        "unknown broker {}",
                        node.0
                    )));
                }
            }
        }
        Ok(())
    }

    /// Appends PartitionRecords and PlacementRecords for partitions `first..`.
    fn push_partitions(
        &self,
        records: &mut Vec<MetadataRecord>,
        topic_id: TopicId,
        first: i32,
        assignments: &[Vec<NodeId>],
        shard_count: u16,
    ) {
        let mut loads = self.image.shard_loads(shard_count);
        for (i, replicas) in assignments.iter().enumerate() {
            let partition = first + i as i32;
            records.push(MetadataRecord::Partition(PartitionRecord {
                topic_id,
                partition,
                replicas: replicas.clone(),
                isr: replicas.clone(),
                leader: replicas[0],
                leader_epoch: LeaderEpoch(0),
                partition_epoch: 0,
            }));
            let shard = least_loaded(&mut loads);
            records.push(MetadataRecord::Placement(PlacementRecord {
                topic_id,
                partition,
                shard,
            }));
        }
    }

    // ---- DeleteTopics ----

    /// Deletes a topic by name; returns what it was (the caller removes its directories).
    pub fn delete_topic(&mut self, name: &str) -> Result<TopicImage> {
        let topic = self
            .image
            .topic_by_name(name)
            .cloned()
            .ok_or_else(|| Error::UnknownTopic(name.to_string()))?;
        self.append(vec![MetadataRecord::RemoveTopic(RemoveTopicRecord {
            topic_id: topic.id,
        })])?;
        Ok(topic)
    }

    /// Deletes a topic by id (DeleteTopics v6+).
    pub fn delete_topic_by_id(&mut self, id: TopicId) -> Result<TopicImage> {
        let topic = self
            .image
            .topic_by_id(id)
            .cloned()
            .ok_or_else(|| Error::UnknownTopic(id.0.to_string()))?;
        self.append(vec![MetadataRecord::RemoveTopic(RemoveTopicRecord {
            topic_id: topic.id,
        })])?;
        Ok(topic)
    }

    // ---- CreatePartitions ----

    /// Grows a topic to `new_total` partitions; returns the new partition indices. Manual
    /// `assignments` (one replica list per new partition) or round-robin with the replication
    /// factor of partition 0.
    pub fn create_partitions(
        &mut self,
        name: &str,
        new_total: i32,
        assignments: Option<Vec<Vec<NodeId>>>,
        shard_count: u16,
        validate_only: bool,
    ) -> Result<Vec<i32>> {
        let topic = self
            .image
            .topic_by_name(name)
            .ok_or_else(|| Error::UnknownTopic(name.to_string()))?;
        let current = topic.partitions.len() as i32;
        let topic_id = topic.id;
        if new_total == current {
            return Err(Error::InvalidPartitions(format!(
                "topic already has {current} partitions"
            )));
        }
        if new_total < current {
            return Err(Error::InvalidPartitions(format!(
                "topic currently has {current} partitions, which is higher than the requested {new_total}"
            )));
        }
        let added = new_total - current;
        if added > PARTITIONS_PER_REQUEST_MAX {
            return Err(Error::InvalidPartitions(format!(
                "more than {PARTITIONS_PER_REQUEST_MAX} new partitions"
            )));
        }
        let replication = topic
            .partitions
            .values()
            .next()
            .map_or(1, |p| p.replicas.len() as i16);
        let lists = match assignments {
            Some(lists) => {
                if lists.len() as i32 != added {
                    return Err(Error::InvalidReplicaAssignment(format!(
                        "{} replica lists for {added} new partitions",
                        lists.len()
                    )));
                }
                self.check_replica_lists(&lists)?;
                lists
            }
            None => self.round_robin(current, added, replication)?,
        };
        let indices: Vec<i32> = (current..new_total).collect();
        if validate_only {
            return Ok(indices);
        }
        let mut records = Vec::new();
        self.push_partitions(&mut records, topic_id, current, &lists, shard_count);
        self.append(records)?;
        Ok(indices)
    }

    // ---- AlterConfigs / IncrementalAlterConfigs ----

    /// Legacy AlterConfigs: `entries` replace the topic's whole override set.
    pub fn alter_topic_configs(
        &mut self,
        name: &str,
        entries: &[(String, Option<String>)],
        broker: &BrokerConfig,
        validate_only: bool,
    ) -> Result<TopicConfig> {
        if self.image.topic_by_name(name).is_none() {
            return Err(Error::UnknownTopic(name.to_string()));
        }
        let mut next = TopicConfig::new();
        for (key, value) in entries {
            let value = value.as_deref().ok_or_else(|| Error::InvalidConfig {
                key: key.clone(),
                value: String::new(),
                reason: "null value not supported for topic configs".into(),
            })?;
            next.set(key, value)?;
        }
        self.replace_topic_config(name, next, broker, validate_only)
    }

    /// IncrementalAlterConfigs for a topic: SET, DELETE, and APPEND / SUBTRACT on list keys.
    pub fn incremental_alter_topic_configs(
        &mut self,
        name: &str,
        ops: &[AlterConfigOp],
        broker: &BrokerConfig,
        validate_only: bool,
    ) -> Result<TopicConfig> {
        if self.image.topic_by_name(name).is_none() {
            return Err(Error::UnknownTopic(name.to_string()));
        }
        let mut next = self.image.topic_config(name);
        for op in ops {
            apply_op(&mut next, op)?;
        }
        self.replace_topic_config(name, next, broker, validate_only)
    }

    fn replace_topic_config(
        &mut self,
        name: &str,
        next: TopicConfig,
        broker: &BrokerConfig,
        validate_only: bool,
    ) -> Result<TopicConfig> {
        next.validate_with(broker)?;
        if validate_only {
            return Ok(next);
        }
        let current = self.image.topic_config(name);
        let mut records = Vec::new();
        for (key, _) in current.overrides() {
            if next.get(key).is_none() {
                records.push(topic_config_record(name, key, None));
            }
        }
        for (key, value) in next.overrides() {
            if current.get(key) != Some(value) {
                records.push(topic_config_record(name, key, Some(value)));
            }
        }
        self.append(records)?;
        Ok(next)
    }

    // ---- producer ids, brokers, partitions, features, placement ----

    /// Hands out the next block of producer ids (InitProducerId) and records it.
    pub fn allocate_producer_id_block(&mut self, size: i64) -> Result<ProducerIdBlock> {
        if !(1..=PRODUCER_ID_BLOCK_SIZE_MAX).contains(&size) {
            return Err(Error::Invalid(format!(
                "producer id block size {size} outside 1..={PRODUCER_ID_BLOCK_SIZE_MAX}"
            )));
        }
        let first_id = self.image.producer_ids().next_producer_id;
        let next_producer_id = first_id
            .checked_add(size)
            .ok_or_else(|| Error::Invalid("producer ids exhausted".into()))?;
        let broker_epoch = self.image.broker(self.node_id).map_or(-1, |b| b.epoch);
        let record = ProducerIdsRecord {
            broker_id: self.node_id,
            broker_epoch,
            next_producer_id,
        };
        self.append(vec![MetadataRecord::ProducerIds(record)])?;
        assert_eq!(self.image.producer_ids().next_producer_id, first_id + size);
        Ok(ProducerIdBlock { first_id, size })
    }

    /// Registers this node (once per process incarnation); returns its broker epoch (the
    /// offset of the registration record, as KRaft does).
    pub fn register_broker(
        &mut self,
        incarnation_id: Uuid,
        listeners: Vec<BrokerEndpoint>,
        rack: Option<String>,
    ) -> Result<i64> {
        if let Some(existing) = self.image.broker(self.node_id) {
            if existing.incarnation_id == incarnation_id {
                return Ok(existing.epoch);
            }
        }
        let broker_epoch = self.log.next_offset() as i64;
        let record = RegisterBrokerRecord {
            broker_id: self.node_id,
            incarnation_id,
            broker_epoch,
            listeners,
            rack,
            fenced: false,
        };
        self.append(vec![MetadataRecord::RegisterBroker(record)])?;
        Ok(broker_epoch)
    }

    /// Changes a partition's leader (bumping its leader epoch) and/or ISR; returns the new
    /// state.
    pub fn change_partition(
        &mut self,
        topic_id: TopicId,
        partition: i32,
        leader: Option<NodeId>,
        isr: Option<Vec<NodeId>>,
    ) -> Result<PartitionImage> {
        if self.image.partition(topic_id, partition).is_none() {
            return Err(Error::UnknownTopic(format!("{}-{partition}", topic_id.0)));
        }
        let record = PartitionChangeRecord {
            topic_id,
            partition,
            leader,
            isr,
            replicas: None,
        };
        self.append(vec![MetadataRecord::PartitionChange(record)])?;
        Ok(self
            .image
            .partition(topic_id, partition)
            .cloned()
            .expect("partition exists"))
    }

    /// Sets a finalized feature level (0 removes it).
    pub fn set_feature_level(&mut self, name: &str, level: i16) -> Result<()> {
        let record = FeatureLevelRecord {
            name: name.to_string(),
            feature_level: level,
        };
        self.append(vec![MetadataRecord::FeatureLevel(record)])
    }

    /// Records a placement for every partition that has none (e.g. from an older format);
    /// returns how many were placed.
    pub fn place_unplaced(&mut self, shard_count: u16) -> Result<usize> {
        let mut loads = self.image.shard_loads(shard_count);
        let mut records = Vec::new();
        for topic in self.image.topics() {
            for (partition, state) in &topic.partitions {
                if state.shard.is_none() {
                    let shard = least_loaded(&mut loads);
                    let r = PlacementRecord {
                        topic_id: topic.id,
                        partition: *partition,
                        shard,
                    };
                    records.push(MetadataRecord::Placement(r));
                }
            }
        }
        let placed = records.len();
        self.append(records)?;
        Ok(placed)
    }
}

fn topic_config_record(topic: &str, key: &str, value: Option<&str>) -> MetadataRecord {
    MetadataRecord::Config(ConfigRecord {
        resource_type: ConfigResourceType::Topic,
        resource_name: topic.to_string(),
        name: key.to_string(),
        value: value.map(str::to_string),
    })
}

/// Picks the shard with the fewest partitions (lowest id on ties) and counts the new one.
fn least_loaded(loads: &mut [usize]) -> ShardId {
    let (index, _) = loads
        .iter()
        .enumerate()
        .min_by_key(|(i, load)| (**load, *i))
        .expect("at least one shard");
    loads[index] += 1;
    ShardId(index as u16)
}

/// One IncrementalAlterConfigs op on a topic's overrides. APPEND / SUBTRACT start from the
/// override, else the key's default (Kafka's behaviour), and apply to list keys only.
fn apply_op(config: &mut TopicConfig, op: &AlterConfigOp) -> Result<()> {
    let def = topic_def(&op.name).ok_or_else(|| Error::UnknownConfig {
        key: op.name.clone(),
    })?;
    let value = || {
        op.value.clone().ok_or_else(|| Error::InvalidConfig {
            key: op.name.clone(),
            value: String::new(),
            reason: "null value not supported".into(),
        })
    };
    match op.op {
        AlterConfigOpType::Set => config.set(&op.name, &value()?),
        AlterConfigOpType::Delete => config.delete(&op.name),
        AlterConfigOpType::Append | AlterConfigOpType::Subtract => {
            if def.ty != ConfigType::List {
                return Err(Error::InvalidConfig {
                    key: op.name.clone(),
                    value: op.value.clone().unwrap_or_default(),
                    reason: "APPEND and SUBTRACT apply only to list configs".into(),
                });
            }
            let current = config
                .get(&op.name)
                .map(str::to_string)
                .or(def.default.map(str::to_string))
                .unwrap_or_default();
            let mut items: Vec<String> = current
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            let given = value()?;
            let operands = given.split(',').map(str::trim).filter(|s| !s.is_empty());
            for operand in operands {
                if op.op == AlterConfigOpType::Append {
                    if !items.iter().any(|i| i == operand) {
                        items.push(operand.to_string());
                    }
                } else {
                    items.retain(|i| i != operand);
                }
            }
            config.set(&op.name, &items.join(","))
        }
    }
}
