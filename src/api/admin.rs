//! Topic administration and producer ids: CreateTopics (19), DeleteTopics (20),
//! InitProducerId (22), CreatePartitions (37), DescribeCluster (60).

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{
    BrokerId, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, DescribeClusterRequest,
    DescribeClusterResponse, InitProducerIdRequest, InitProducerIdResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{codes, Ctx};
use crate::broker::state;
use crate::config::TopicConfig;
use crate::controller;
use crate::metadata::store::NewTopic;
use shards::{NodeId, TopicId};

pub async fn create_topics(ctx: Ctx, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let specs: Vec<NewTopic> = req
        .topics
        .iter()
        .map(|t| NewTopic {
            name: t.name.0.to_string(),
            num_partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            assignments: t
                .assignments
                .iter()
                .map(|a| {
                    (
                        a.partition_index,
                        a.broker_ids.iter().map(|b| NodeId(b.0)).collect(),
                    )
                })
                .collect(),
            configs: t
                .configs
                .iter()
                .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                .collect(),
        })
        .collect();
    let results = controller::create_topics(specs, req.validate_only).await;
    let topics = req
        .topics
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let r = CreatableTopicResult::default().with_name(t.name);
            let outcome = match &results {
                Ok(rs) => rs[i]
                    .as_ref()
                    .map_err(|e| (codes::code_of(e), e.to_string())),
                Err(e) => Err((codes::code_of(e), e.to_string())),
            };
            match outcome {
                Ok(created) => r
                    .with_topic_id(created.topic_id.0)
                    .with_num_partitions(created.num_partitions)
                    .with_replication_factor(created.replication_factor)
                    .with_configs((ctx.version >= 5).then(|| created_configs(&t.configs))),
                Err((code, msg)) => r
                    .with_error_code(code)
                    .with_error_message(Some(StrBytes::from_string(msg)))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

/// KIP-525 (CreateTopics v5+): the new topic's full config, as DescribeConfigs would
/// show it (its overrides and the defaults with their sources), so an admin client need
/// not ask again. Only called for a created (or validated) topic: its configs are valid.
fn created_configs(
    requested: &[kafka_protocol::messages::create_topics_request::CreatableTopicConfig],
) -> Vec<CreatableTopicConfigs> {
    let overrides = requested
        .iter()
        .filter_map(|c| Some((c.name.as_str(), c.value.as_ref()?.as_str())));
    let topic = TopicConfig::from_entries(overrides).unwrap_or_else(|_| TopicConfig::new());
    topic
        .describe(&state().settings.config, None, false, false)
        .into_iter()
        .map(|e| {
            CreatableTopicConfigs::default()
                .with_config_source(e.source.wire_id())
                .with_name(StrBytes::from_string(e.name))
                .with_value(e.value.map(StrBytes::from_string))
                .with_read_only(e.read_only)
                .with_is_sensitive(e.is_sensitive)
        })
        .collect()
}

/// Non-transactional producers get a fresh id with epoch 0. Transactions come later: a
/// transactional id is refused cleanly.
pub async fn init_producer_id(_ctx: Ctx, req: InitProducerIdRequest) -> InitProducerIdResponse {
    // Kafka's TransactionCoordinator: an empty transactional id is an invalid request.
    if req.transactional_id.as_ref().is_some_and(|t| t.is_empty()) {
        return InitProducerIdResponse::default()
            .with_error_code(codes::INVALID_REQUEST)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    if req.transactional_id.is_some() {
        return InitProducerIdResponse::default()
            .with_error_code(codes::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    match controller::allocate_producer_id().await {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => InitProducerIdResponse::default()
            .with_error_code(codes::code_of(&e))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}

pub async fn delete_topics(ctx: Ctx, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    // v0-5 name topics in `topic_names`; v6 in `topics` (by name or id).
    let asked: Vec<(Option<String>, uuid::Uuid)> = if ctx.version >= 6 {
        req.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let asks = asked
        .iter()
        .map(|(n, id)| (n.clone(), TopicId(*id)))
        .collect();
    let results = controller::delete_topics(asks).await;
    let responses = asked
        .into_iter()
        .enumerate()
        .map(|(i, (name, id))| {
            let r = DeletableTopicResult::default()
                .with_name(name.clone().map(|n| TopicName(StrBytes::from_string(n))))
                .with_topic_id(id);
            let outcome = match &results {
                Ok(rs) => rs[i]
                    .as_ref()
                    .map_err(|e| (codes::code_of(e), e.to_string()))
                    .cloned(),
                Err(e) => Err((codes::code_of(e), e.to_string())),
            };
            match outcome {
                Ok((n, topic_id)) => r
                    .with_name(Some(TopicName(StrBytes::from_string(n))))
                    .with_topic_id(topic_id.0),
                Err((code, msg)) => {
                    // Asked by id and unknown: Kafka's UNKNOWN_TOPIC_ID.
                    let code = if name.is_none() && code == codes::UNKNOWN_TOPIC_OR_PARTITION {
                        codes::UNKNOWN_TOPIC_ID
                    } else {
                        code
                    };
                    let r = r.with_error_code(code);
                    if ctx.version >= 5 {
                        r.with_error_message(Some(StrBytes::from_string(msg)))
                    } else {
                        r
                    }
                }
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(
    _ctx: Ctx,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let asks: Vec<(String, i32)> = req
        .topics
        .iter()
        .map(|t| (t.name.0.to_string(), t.count))
        .collect();
    let results = controller::create_partitions(asks, req.validate_only).await;
    let results = req
        .topics
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let r = CreatePartitionsTopicResult::default().with_name(t.name);
            let outcome = match &results {
                Ok(rs) => rs[i]
                    .as_ref()
                    .map_err(|e| (codes::code_of(e), e.to_string()))
                    .map(|_| ()),
                Err(e) => Err((codes::code_of(e), e.to_string())),
            };
            match outcome {
                Ok(()) => r,
                Err((code, msg)) => r
                    .with_error_code(code)
                    .with_error_message(Some(StrBytes::from_string(msg))),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

pub async fn describe_cluster(_ctx: Ctx, _req: DescribeClusterRequest) -> DescribeClusterResponse {
    let view = state().view();
    DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(view.cluster_id.clone()))
        .with_controller_id(BrokerId(view.controller_id.0))
        .with_brokers(
            view.brokers
                .iter()
                .map(|b| {
                    DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(b.node_id.0))
                        .with_host(StrBytes::from_string(b.host.clone()))
                        .with_port(b.port)
                        .with_rack(b.rack.clone().map(StrBytes::from_string))
                })
                .collect(),
        )
        // Kafka's "operations not requested" sentinel.
        .with_cluster_authorized_operations(i32::MIN)
}
