//! Topic administration and producer ids: CreateTopics (19), DeleteTopics (20),
//! InitProducerId (22), CreatePartitions (37), DescribeCluster (60).

use std::collections::BTreeMap;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
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
use crate::controller::{self, TopicSpec};

pub async fn create_topics(_ctx: Ctx, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let st = state();
    let mut specs = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let configs: BTreeMap<String, String> = t
            .configs
            .iter()
            .filter_map(|c| {
                c.value
                    .as_ref()
                    .map(|v| (c.name.to_string(), v.to_string()))
            })
            .collect();
        specs.push(TopicSpec {
            name: t.name.0.to_string(),
            partitions: if t.num_partitions == -1 {
                st.settings.num_partitions
            } else {
                t.num_partitions
            },
            replication_factor: if t.replication_factor == -1 {
                st.settings.default_replication_factor
            } else {
                t.replication_factor
            },
            configs,
        });
    }
    let results = controller::create_topics(specs.clone(), req.validate_only).await;
    let topics = req
        .topics
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let r = CreatableTopicResult::default()
                .with_name(t.name)
                .with_num_partitions(specs[i].partitions)
                .with_replication_factor(specs[i].replication_factor);
            let outcome = match &results {
                Ok(rs) => rs[i]
                    .as_ref()
                    .map_err(|e| (codes::code_of(e), e.to_string()))
                    .map(|id| *id),
                Err(e) => Err((codes::code_of(e), e.to_string())),
            };
            match outcome {
                Ok(id) => r.with_topic_id(id.0),
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

/// Non-transactional producers get a fresh id with epoch 0. Transactions come later: a
/// transactional id is refused cleanly.
pub async fn init_producer_id(_ctx: Ctx, req: InitProducerIdRequest) -> InitProducerIdResponse {
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
    let view = state().view();
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
    let names: Vec<Option<String>> = asked
        .iter()
        .map(|(n, id)| {
            n.clone()
                .or_else(|| view.topic_by_id(id).map(|t| t.name.to_string()))
        })
        .collect();
    let known: Vec<String> = names.iter().flatten().cloned().collect();
    let results = controller::delete_topics(known).await;
    let mut results_iter = match results {
        Ok(r) => r
            .into_iter()
            .map(|r| r.map_err(|e| codes::code_of(&e)))
            .collect::<Vec<_>>()
            .into_iter(),
        Err(e) => vec![Err(codes::code_of(&e)); names.iter().flatten().count()].into_iter(),
    };
    let responses = asked
        .into_iter()
        .zip(names)
        .map(|((_, id), name)| {
            let r = DeletableTopicResult::default()
                .with_name(name.clone().map(|n| TopicName(StrBytes::from_string(n))))
                .with_topic_id(id);
            match name {
                None => r.with_error_code(codes::UNKNOWN_TOPIC_ID),
                Some(_) => match results_iter.next().expect("one result per named topic") {
                    Ok(topic_id) => r.with_topic_id(topic_id.0),
                    Err(code) => r.with_error_code(code),
                },
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
