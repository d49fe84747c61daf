//! DescribeConfigs as Kafka answers it (`ConfigHelper.createTopicConfigEntry`,
//! `createBrokerConfigEntry`, `configSynonyms`): each entry's value, its source and, on
//! request, the synonyms in precedence order.
//!
//! Kafka quirk kept on purpose: the broker synonym list is cut before the first entry named
//! like the key's first broker synonym (`dropWhile(name != ...)`). So with only
//! `log.retention.hours=24` in server.properties, topic `retention.ms` shows value 86400000 but
//! source DEFAULT_CONFIG and no synonyms — what clients see from Apache Kafka.

use super::registry::{broker_synonym_group, topic_def, BROKER_CONFIGS, TOPIC_CONFIGS};
use super::{broker_def, BrokerConfig, ConfigDef, ConfigType, TopicConfig};

/// Kafka's `DescribeConfigsResponse.ConfigSource`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    Unknown = 0,
    DynamicTopicConfig = 1,
    DynamicBrokerConfig = 2,
    DynamicDefaultBrokerConfig = 3,
    StaticBrokerConfig = 4,
    DefaultConfig = 5,
}

impl ConfigSource {
    /// The wire id (`config_source`, v1+).
    pub fn wire_id(self) -> i8 {
        self as i8
    }
}

/// One synonym of a described entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigSynonym {
    pub name: String,
    pub value: Option<String>,
    pub source: ConfigSource,
}

/// One DescribeConfigs result entry. For v0, `is_default` is `source == DefaultConfig`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescribedConfig {
    pub name: String,
    pub value: Option<String>,
    pub source: ConfigSource,
    pub read_only: bool,
    pub is_sensitive: bool,
    pub config_type: ConfigType,
    /// Filled only when documentation was requested (v3+).
    pub documentation: Option<&'static str>,
    /// Filled only when synonyms were requested (v1+).
    pub synonyms: Vec<ConfigSynonym>,
}

fn wanted(keys: Option<&[&str]>, name: &str) -> bool {
    keys.is_none_or(|keys| keys.contains(&name))
}

/// Kafka `configSynonyms` for static configs: explicitly set members of the group, then
/// members with a default, both in group order, cut before the first entry named `name`.
fn broker_synonyms(broker: &BrokerConfig, name: &'static str) -> Vec<ConfigSynonym> {
    let group = broker_synonym_group(name);
    let mut all = Vec::new();
    for member in &group {
        if let Some(raw) = broker.explicit_raw(member) {
            let value = Some(raw.to_string());
            all.push(ConfigSynonym {
                name: member.to_string(),
                value,
                source: ConfigSource::StaticBrokerConfig,
            });
        }
    }
    for member in &group {
        if let Some(default) = broker_def(member).and_then(|d| d.default) {
            let value = Some(default.to_string());
            all.push(ConfigSynonym {
                name: member.to_string(),
                value,
                source: ConfigSource::DefaultConfig,
            });
        }
    }
    let first = all.iter().position(|s| s.name == name).unwrap_or(all.len());
    all.split_off(first)
}

fn entry(
    def: &ConfigDef,
    value: Option<String>,
    all_synonyms: Vec<ConfigSynonym>,
    read_only: bool,
    include_synonyms: bool,
    include_documentation: bool,
) -> DescribedConfig {
    let source = all_synonyms
        .first()
        .map_or(ConfigSource::DefaultConfig, |s| s.source);
    DescribedConfig {
        name: def.name.to_string(),
        value,
        source,
        read_only,
        is_sensitive: false,
        config_type: def.ty,
        documentation: include_documentation.then_some(def.doc),
        synonyms: if include_synonyms {
            all_synonyms
        } else {
            Vec::new()
        },
    }
}

pub(super) fn describe_topic(
    topic: &TopicConfig,
    broker: &BrokerConfig,
    keys: Option<&[&str]>,
    include_synonyms: bool,
    include_documentation: bool,
) -> Vec<DescribedConfig> {
    let effective = topic.resolve(broker);
    let mut out = Vec::new();
    for def in TOPIC_CONFIGS.iter().filter(|d| wanted(keys, d.name)) {
        debug_assert!(topic_def(def.name).is_some());
        let value = effective.value(def.name).map(|v| v.to_kafka_string());
        let mut synonyms = match def.synonyms.first() {
            Some(first) => broker_synonyms(broker, first.name),
            None => Vec::new(),
        };
        if let Some(raw) = topic.get(def.name) {
            let synonym = ConfigSynonym {
                name: def.name.to_string(),
                value: value.clone().or_else(|| Some(raw.to_string())),
                source: ConfigSource::DynamicTopicConfig,
            };
            synonyms.insert(0, synonym);
        }
        out.push(entry(
            def,
            value,
            synonyms,
            false,
            include_synonyms,
            include_documentation,
        ));
    }
    out
}

pub(super) fn describe_broker(
    broker: &BrokerConfig,
    keys: Option<&[&str]>,
    include_synonyms: bool,
    include_documentation: bool,
) -> Vec<DescribedConfig> {
    let mut out = Vec::new();
    for def in BROKER_CONFIGS.iter().filter(|d| wanted(keys, d.name)) {
        let value = broker.value(def.name).map(|v| v.to_kafka_string());
        let synonyms = broker_synonyms(broker, def.name);
        // Riptide has no dynamic broker configs yet, so every broker key is read-only.
        out.push(entry(
            def,
            value,
            synonyms,
            true,
            include_synonyms,
            include_documentation,
        ));
    }
    out
}
