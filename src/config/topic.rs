//! Topic-level configuration: validated overrides as stored in the metadata log
//! ([`TopicConfig`]), and the effective values after falling back to the broker
//! ([`EffectiveTopicConfig`]) with typed getters for the log and the API layer.

use std::collections::BTreeMap;

use shards::{Error, Result};

use super::registry::{topic_def, TOPIC_CONFIGS};
use super::{describe, parse_value, BrokerConfig, ConfigValue, DescribedConfig, FlushPolicy};

/// At most this many overrides per topic: every key of the registry once.
pub const TOPIC_OVERRIDES_MAX: usize = 64;

/// A topic's dynamic overrides (DYNAMIC_TOPIC_CONFIG), keyed by name, values as the client
/// sent them (trimmed). Every entry names a registry key and has passed its validator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicConfig {
    overrides: BTreeMap<String, String>,
}

impl TopicConfig {
    pub fn new() -> TopicConfig {
        TopicConfig::default()
    }

    /// Validates one topic key and value: an unknown key is [`Error::UnknownConfig`], a bad
    /// value [`Error::InvalidConfig`] (both INVALID_CONFIG on the wire).
    pub fn validate_entry(key: &str, value: &str) -> Result<ConfigValue> {
        let def = topic_def(key).ok_or_else(|| Error::UnknownConfig {
            key: key.to_string(),
        })?;
        parse_value(def, value)
    }

    /// Builds from CreateTopics-style entries; a later duplicate wins.
    pub fn from_entries<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut config = TopicConfig::new();
        for (key, value) in entries {
            config.set(key, value)?;
        }
        Ok(config)
    }

    /// Sets one override after validating it.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        TopicConfig::validate_entry(key, value)?;
        assert!(self.overrides.len() <= TOPIC_OVERRIDES_MAX);
        self.overrides
            .insert(key.to_string(), value.trim().to_string());
        Ok(())
    }

    /// Removes an override (back to the broker's value). Unknown keys are INVALID_CONFIG;
    /// removing a key that is not overridden is a no-op, as in Kafka.
    pub fn delete(&mut self, key: &str) -> Result<()> {
        if topic_def(key).is_none() {
            return Err(Error::UnknownConfig {
                key: key.to_string(),
            });
        }
        self.overrides.remove(key);
        Ok(())
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.overrides.get(key).map(String::as_str)
    }

    /// The overrides in key order (what ConfigRecords store).
    pub fn overrides(&self) -> impl Iterator<Item = (&str, &str)> {
        self.overrides.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.overrides.is_empty()
    }

    /// Every key with its effective value: override, else broker synonym, else default.
    pub fn resolve(&self, broker: &BrokerConfig) -> EffectiveTopicConfig {
        let mut values = BTreeMap::new();
        for def in TOPIC_CONFIGS {
            let value = match self.overrides.get(def.name) {
                // Stored overrides were validated by `set`.
                Some(raw) => parse_value(def, raw).expect("validated override"),
                None => broker.topic_default_value(def),
            };
            values.insert(def.name, value);
        }
        EffectiveTopicConfig { values }
    }

    /// Rules spanning keys (Kafka `LogConfig.validateValues`): min.compaction.lag.ms must not
    /// exceed max.compaction.lag.ms. Call before storing a new set of overrides.
    pub fn validate_with(&self, broker: &BrokerConfig) -> Result<()> {
        let effective = self.resolve(broker);
        let (min, max) = (
            effective.min_compaction_lag_ms(),
            effective.max_compaction_lag_ms(),
        );
        if min > max {
            return Err(Error::InvalidConfig {
                key: "min.compaction.lag.ms".into(),
                value: min.to_string(),
                reason: format!("greater than max.compaction.lag.ms ({max})"),
            });
        }
        Ok(())
    }

    /// DescribeConfigs for a topic resource: every topic key, or only `keys` when given.
    pub fn describe(
        &self,
        broker: &BrokerConfig,
        keys: Option<&[&str]>,
        include_synonyms: bool,
        include_documentation: bool,
    ) -> Vec<DescribedConfig> {
        describe::describe_topic(self, broker, keys, include_synonyms, include_documentation)
    }
}

/// `cleanup.policy` as flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CleanupPolicy {
    pub delete: bool,
    pub compact: bool,
}

/// `message.timestamp.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// The effective value of every topic key for one topic.
#[derive(Clone, Debug, PartialEq)]
pub struct EffectiveTopicConfig {
    values: BTreeMap<&'static str, ConfigValue>,
}

impl EffectiveTopicConfig {
    /// The effective value of a topic key (`None` for an unknown key).
    pub fn value(&self, key: &str) -> Option<&ConfigValue> {
        self.values.get(key)
    }

    fn int(&self, key: &str) -> i64 {
        self.values[key].as_i64().expect("integer key")
    }

    fn string(&self, key: &str) -> &str {
        self.values[key].as_str().expect("string key")
    }

    fn boolean(&self, key: &str) -> bool {
        self.values[key].as_bool().expect("boolean key")
    }

    pub fn cleanup_policy(&self) -> CleanupPolicy {
        let items = self.values["cleanup.policy"].as_list().expect("list key");
        CleanupPolicy {
            delete: items.iter().any(|i| i == "delete"),
            compact: items.iter().any(|i| i == "compact"),
        }
    }
    pub fn compression_type(&self) -> &str {
        self.string("compression.type")
    }
    pub fn delete_retention_ms(&self) -> i64 {
        self.int("delete.retention.ms")
    }
    pub fn file_delete_delay_ms(&self) -> i64 {
        self.int("file.delete.delay.ms")
    }
    pub fn flush_messages(&self) -> i64 {
        self.int("flush.messages")
    }
    pub fn flush_ms(&self) -> i64 {
        self.int("flush.ms")
    }
    pub fn flush_policy(&self) -> FlushPolicy {
        FlushPolicy::from_name(self.string("flush.policy"))
    }
    pub fn index_interval_bytes(&self) -> i32 {
        self.int("index.interval.bytes") as i32
    }
    pub fn max_compaction_lag_ms(&self) -> i64 {
        self.int("max.compaction.lag.ms")
    }
    pub fn max_message_bytes(&self) -> i32 {
        self.int("max.message.bytes") as i32
    }
    pub fn message_timestamp_after_max_ms(&self) -> i64 {
        self.int("message.timestamp.after.max.ms")
    }
    pub fn message_timestamp_before_max_ms(&self) -> i64 {
        self.int("message.timestamp.before.max.ms")
    }
    pub fn message_timestamp_type(&self) -> TimestampType {
        match self.string("message.timestamp.type") {
            "LogAppendTime" => TimestampType::LogAppendTime,
            _ => TimestampType::CreateTime,
        }
    }
    pub fn min_cleanable_dirty_ratio(&self) -> f64 {
        self.values["min.cleanable.dirty.ratio"]
            .as_f64()
            .expect("double key")
    }
    pub fn min_compaction_lag_ms(&self) -> i64 {
        self.int("min.compaction.lag.ms")
    }
    pub fn min_insync_replicas(&self) -> i32 {
        self.int("min.insync.replicas") as i32
    }
    pub fn preallocate(&self) -> bool {
        self.boolean("preallocate")
    }
    pub fn retention_bytes(&self) -> i64 {
        self.int("retention.bytes")
    }
    pub fn retention_ms(&self) -> i64 {
        self.int("retention.ms")
    }
    pub fn segment_bytes(&self) -> i32 {
        self.int("segment.bytes") as i32
    }
    pub fn segment_index_bytes(&self) -> i32 {
        self.int("segment.index.bytes") as i32
    }
    pub fn segment_jitter_ms(&self) -> i64 {
        self.int("segment.jitter.ms")
    }
    pub fn segment_ms(&self) -> i64 {
        self.int("segment.ms")
    }
    pub fn unclean_leader_election_enable(&self) -> bool {
        self.boolean("unclean.leader.election.enable")
    }
}
