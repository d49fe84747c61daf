//! Topic administration and producer ids: CreateTopics (19), InitProducerId (22).

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, InitProducerIdRequest, InitProducerIdResponse,
    ProducerId,
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
