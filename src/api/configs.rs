//! DescribeConfigs (32), AlterConfigs (33) and IncrementalAlterConfigs (44) for topic and
//! broker resources. Topic overrides are validated by the config registry; an unknown or
//! invalid key is INVALID_CONFIG. Broker configs are static (read-only) for now: altering
//! them is answered INVALID_REQUEST, as Kafka answers keys that cannot be updated
//! dynamically.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{codes, Ctx};
use crate::broker::state;
use crate::config::{DescribedConfig, TopicConfig};
use crate::controller;
use crate::error::Error;
use crate::metadata::store::{AlterConfigOp, AlterConfigOpType};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

pub async fn describe(_ctx: Ctx, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let st = state();
    let view = st.view();
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let keys: Option<Vec<String>> = r
                .configuration_keys
                .as_ref()
                .map(|ks| ks.iter().map(|k| k.to_string()).collect());
            let keys_ref: Option<Vec<&str>> = keys
                .as_ref()
                .map(|ks| ks.iter().map(String::as_str).collect());
            let res = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let described = match r.resource_type {
                RESOURCE_TOPIC => match view.topic(r.resource_name.as_str()) {
                    Some(t) => {
                        let topic = topic_config(&t.configs);
                        Ok(topic.describe(
                            &st.settings.config,
                            keys_ref.as_deref(),
                            req.include_synonyms,
                            req.include_documentation,
                        ))
                    }
                    None => Err((
                        codes::UNKNOWN_TOPIC_OR_PARTITION,
                        format!("topic {} does not exist", r.resource_name.as_str()),
                    )),
                },
                RESOURCE_BROKER => {
                    if r.resource_name.as_str().is_empty()
                        || r.resource_name.as_str() == st.settings.node_id.0.to_string()
                    {
                        Ok(st.settings.config.describe(
                            keys_ref.as_deref(),
                            req.include_synonyms,
                            req.include_documentation,
                        ))
                    } else {
                        Err((
                            codes::INVALID_REQUEST,
                            format!("unexpected broker id {}", r.resource_name.as_str()),
                        ))
                    }
                }
                other => Err((
                    codes::INVALID_REQUEST,
                    format!("unsupported resource type {other}"),
                )),
            };
            match described {
                Ok(entries) => res.with_configs(entries.into_iter().map(entry).collect()),
                Err((code, msg)) => res.with_error_code(code).with_error_message(Some(s(msg))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn entry(e: DescribedConfig) -> DescribeConfigsResourceResult {
    let source = e.source.wire_id();
    DescribeConfigsResourceResult::default()
        .with_name(s(e.name))
        .with_value(e.value.map(s))
        .with_read_only(e.read_only)
        .with_is_sensitive(e.is_sensitive)
        .with_config_source(source)
        .with_synonyms(
            e.synonyms
                .into_iter()
                .map(|syn| {
                    DescribeConfigsSynonym::default()
                        .with_name(s(syn.name))
                        .with_value(syn.value.map(s))
                        .with_source(syn.source.wire_id())
                })
                .collect(),
        )
        .with_config_type(e.config_type.wire_id())
        .with_documentation(e.documentation.map(s))
}

fn topic_config(overrides: &BTreeMap<String, String>) -> TopicConfig {
    TopicConfig::from_entries(overrides.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .unwrap_or_else(|_| TopicConfig::new())
}

fn failed(e: Error) -> (i16, String) {
    (codes::code_of(&e), e.to_string())
}

fn broker_static(name: &str) -> (i16, String) {
    (codes::INVALID_REQUEST, format!("broker {name}: dynamic broker configs are not supported; set them in server.properties"))
}

/// AlterConfigs replaces the whole override set of a resource.
pub async fn alter(_ctx: Ctx, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let name = r.resource_name.to_string();
        let outcome = match r.resource_type {
            RESOURCE_TOPIC => {
                let entries = r
                    .configs
                    .iter()
                    .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                    .collect();
                controller::alter_topic_configs(name.clone(), entries, req.validate_only)
                    .await
                    .map_err(failed)
            }
            RESOURCE_BROKER => Err(broker_static(&name)),
            other => Err((
                codes::INVALID_REQUEST,
                format!("unsupported resource type {other}"),
            )),
        };
        let resp = alter_configs_response::AlterConfigsResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name);
        responses.push(match outcome {
            Ok(()) => resp,
            Err((code, msg)) => resp.with_error_code(code).with_error_message(Some(s(msg))),
        });
    }
    AlterConfigsResponse::default().with_responses(responses)
}

/// IncrementalAlterConfigs: SET (0), DELETE (1), APPEND (2) and SUBTRACT (3) per key.
pub async fn incremental_alter(
    _ctx: Ctx,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let name = r.resource_name.to_string();
        let outcome = match r.resource_type {
            RESOURCE_TOPIC => match ops(&r.configs) {
                Ok(ops) => controller::incremental_alter_topic_configs(
                    name.clone(),
                    ops,
                    req.validate_only,
                )
                .await
                .map_err(failed),
                Err(e) => Err(failed(e)),
            },
            RESOURCE_BROKER => Err(broker_static(&name)),
            other => Err((
                codes::INVALID_REQUEST,
                format!("unsupported resource type {other}"),
            )),
        };
        let resp = incremental_alter_configs_response::AlterConfigsResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name);
        responses.push(match outcome {
            Ok(()) => resp,
            Err((code, msg)) => resp.with_error_code(code).with_error_message(Some(s(msg))),
        });
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

fn ops(
    configs: &[kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig],
) -> Result<Vec<AlterConfigOp>, Error> {
    configs
        .iter()
        .map(|c| {
            let op = AlterConfigOpType::from_id(c.config_operation).ok_or_else(|| {
                Error::InvalidRequest(format!("unknown config operation {}", c.config_operation))
            })?;
            Ok(AlterConfigOp {
                name: c.name.to_string(),
                op,
                value: c.value.as_ref().map(|v| v.to_string()),
            })
        })
        .collect()
}
