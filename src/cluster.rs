//! `ClusterView`: the immutable snapshot of cluster metadata every shard reads (topics,
//! partitions, leaders and epochs, configs, brokers). The controller builds a new view
//! from the metadata image after every change and installs it on all shards; readers hold
//! an `Arc` and never see a half-applied change.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use shards::{LeaderEpoch, NodeId, ShardId, TopicId};

#[derive(Clone, Debug)]
pub struct BrokerView {
    pub node_id: NodeId,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

#[derive(Clone, Debug)]
pub struct PartitionView {
    pub index: i32,
    pub leader: NodeId,
    pub leader_epoch: LeaderEpoch,
    pub replicas: Vec<NodeId>,
    pub isr: Vec<NodeId>,
    /// The shard recorded at creation (folded onto the live shard count by the table).
    pub shard: ShardId,
}

#[derive(Clone, Debug)]
pub struct TopicView {
    pub name: Arc<str>,
    pub id: TopicId,
    pub internal: bool,
    pub partitions: Vec<PartitionView>,
    /// Topic-level overrides only (key → value); defaults come from the broker config.
    pub configs: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default)]
pub struct ClusterView {
    /// The metadata offset this view reflects; shards ignore older views.
    pub revision: i64,
    pub cluster_id: String,
    pub controller_id: NodeId,
    pub brokers: Vec<BrokerView>,
    pub topics: BTreeMap<Arc<str>, Arc<TopicView>>,
    pub topic_names_by_id: HashMap<uuid::Uuid, Arc<str>>,
}

impl ClusterView {
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicView>> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: &uuid::Uuid) -> Option<&Arc<TopicView>> {
        self.topic_names_by_id
            .get(id)
            .and_then(|n| self.topics.get(n))
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionView> {
        let t = self.topics.get(topic)?;
        if partition < 0 {
            return None;
        }
        t.partitions.get(partition as usize)
    }
}
