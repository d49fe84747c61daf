//! Metadata (key 3), v0–v12: brokers, cluster and controller ids, topics with ids,
//! partitions with leader, leader epoch, replicas and ISR; auto-creation per broker config
//! (`auto.create.topics.enable`) and per request flag (v4+).

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{codes, Ctx};
use crate::broker::state;
use crate::cluster::{ClusterView, TopicView};
use crate::controller;
use crate::metadata::store::{validate_topic_name, NewTopic};

pub async fn handle(ctx: Ctx, req: MetadataRequest) -> MetadataResponse {
    let st = state();
    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let requested: Option<Vec<(Option<String>, uuid::Uuid)>> = match req.topics {
        None => None,
        Some(ts) if ts.is_empty() && ctx.version == 0 => None,
        Some(ts) => Some(
            ts.into_iter()
                .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
                .collect(),
        ),
    };
    let auto_create =
        st.settings.auto_create_topics && (ctx.version < 4 || req.allow_auto_topic_creation);
    if let (Some(list), true) = (&requested, auto_create) {
        create_missing(list, &st.view()).await;
    }
    let view = st.view();
    let topics = match requested {
        None => view.topics.values().map(|t| topic_entry(t)).collect(),
        Some(list) => list
            .iter()
            .map(|(name, id)| lookup(&view, name.as_deref(), id))
            .collect(),
    };
    MetadataResponse::default()
        .with_brokers(
            view.brokers
                .iter()
                .map(|b| {
                    MetadataResponseBroker::default()
                        .with_node_id(BrokerId(b.node_id.0))
                        .with_host(StrBytes::from_string(b.host.clone()))
                        .with_port(b.port)
                        .with_rack(b.rack.clone().map(StrBytes::from_string))
                })
                .collect(),
        )
        .with_cluster_id(Some(StrBytes::from_string(view.cluster_id.clone())))
        .with_controller_id(BrokerId(view.controller_id.0))
        .with_topics(topics)
}

async fn create_missing(list: &[(Option<String>, uuid::Uuid)], view: &ClusterView) {
    let specs: Vec<NewTopic> = list
        .iter()
        .filter_map(|(n, _)| n.clone())
        .filter(|n| view.topic(n).is_none() && validate_topic_name(n).is_ok())
        .map(|name| NewTopic {
            name,
            num_partitions: -1,
            replication_factor: -1,
            ..Default::default()
        })
        .collect();
    if !specs.is_empty() {
        // Races with concurrent creators are fine: TOPIC_ALREADY_EXISTS is ignored here.
        let _ = controller::create_topics(specs, false).await;
    }
}

fn lookup(view: &ClusterView, name: Option<&str>, id: &uuid::Uuid) -> MetadataResponseTopic {
    let found = match name {
        Some(n) => view.topic(n),
        None => view.topic_by_id(id),
    };
    match found {
        Some(t) => topic_entry(t),
        None => {
            let code = match name {
                Some(n) if validate_topic_name(n).is_err() => codes::INVALID_TOPIC_EXCEPTION,
                Some(_) => codes::UNKNOWN_TOPIC_OR_PARTITION,
                None => codes::UNKNOWN_TOPIC_ID,
            };
            MetadataResponseTopic::default()
                .with_error_code(code)
                .with_name(name.map(|n| TopicName(StrBytes::from_string(n.to_string()))))
                .with_topic_id(*id)
        }
    }
}

fn topic_entry(t: &TopicView) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(t.name.to_string()))))
        .with_topic_id(t.id.0)
        .with_is_internal(t.internal)
        .with_partitions(
            t.partitions
                .iter()
                .map(|p| {
                    MetadataResponsePartition::default()
                        .with_partition_index(p.index)
                        .with_leader_id(BrokerId(p.leader.0))
                        .with_leader_epoch(p.leader_epoch.0)
                        .with_replica_nodes(p.replicas.iter().map(|n| BrokerId(n.0)).collect())
                        .with_isr_nodes(p.isr.iter().map(|n| BrokerId(n.0)).collect())
                })
                .collect(),
        )
}
