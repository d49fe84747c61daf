//! Broker and topic configuration: Kafka's key names, types, defaults and validators (the
//! [`registry`]), server.properties parsing with `--set` overrides ([`BrokerConfig`]),
//! validated topic overrides ([`TopicConfig`]) and the DescribeConfigs view of both
//! ([`DescribedConfig`], with Kafka's sources and synonyms).
//!
//! Pure: no I/O beyond reading the config file in [`BrokerConfig::load`].

pub mod properties;
pub mod registry;

mod describe;
mod topic;

pub use describe::{ConfigSource, ConfigSynonym, DescribedConfig};
pub use registry::{
    broker_def, reference_markdown, topic_def, ConfigDef, ConfigType, Scope, Synonym, Validator,
};
pub use topic::{CleanupPolicy, EffectiveTopicConfig, TimestampType, TopicConfig};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use shards::{Error, NodeId, Result};

/// A parsed, validated config value.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigValue {
    Bool(bool),
    String(String),
    Int(i32),
    Short(i16),
    Long(i64),
    Double(f64),
    List(Vec<String>),
}

impl ConfigValue {
    /// The string Kafka's `ConfigDef.convertToString` prints (DescribeConfigs values, stored
    /// config records): lists comma-joined, doubles always with a fraction (`0.5`, `1.0`).
    pub fn to_kafka_string(&self) -> String {
        match self {
            ConfigValue::Bool(b) => b.to_string(),
            ConfigValue::String(s) => s.clone(),
            ConfigValue::Int(v) => v.to_string(),
            ConfigValue::Short(v) => v.to_string(),
            ConfigValue::Long(v) => v.to_string(),
            ConfigValue::Double(v) if v.is_finite() && v.fract() == 0.0 => format!("{v:.1}"),
            ConfigValue::Double(v) => v.to_string(),
            ConfigValue::List(items) => items.join(","),
        }
    }

    /// The integer value of an Int, Short or Long.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            ConfigValue::Int(v) => Some(i64::from(*v)),
            ConfigValue::Short(v) => Some(i64::from(*v)),
            ConfigValue::Long(v) => Some(*v),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            ConfigValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            ConfigValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ConfigValue::Double(v) => Some(*v),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&[String]> {
        match self {
            ConfigValue::List(items) => Some(items),
            _ => None,
        }
    }
}

/// The flush policy of a topic (`flush.policy`) or the broker default (`log.flush.policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushPolicy {
    /// fdatasync before acknowledging or exposing to consumers (Riptide's default).
    Always,
    /// Kafka's model: flush after `flush.ms` / `flush.messages`.
    Interval,
    /// Never flush explicitly; the OS decides.
    None,
}

impl FlushPolicy {
    fn from_name(name: &str) -> FlushPolicy {
        match name {
            "interval" => FlushPolicy::Interval,
            "none" => FlushPolicy::None,
            _ => FlushPolicy::Always,
        }
    }
}

/// A listener: `NAME://host:port`. An empty host means all interfaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

impl Listener {
    /// Parses `NAME://host:port` (IPv6 hosts in brackets: `PLAINTEXT://[::1]:9092`).
    pub fn parse(text: &str) -> std::result::Result<Listener, String> {
        let (name, rest) = text.split_once("://").ok_or("expected NAME://host:port")?;
        let name_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !name_ok {
            return Err(format!(
                "listener name {name:?} must be upper-case letters, digits or _"
            ));
        }
        let (host, port) = rest.rsplit_once(':').ok_or("expected NAME://host:port")?;
        let port: u16 = port.parse().map_err(|_| format!("invalid port {port:?}"))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        Ok(Listener {
            name: name.to_string(),
            host: host.to_string(),
            port,
        })
    }
}

/// A non-fatal finding while loading the broker config (unknown key, key Riptide ignores).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigWarning {
    pub key: String,
    pub message: String,
}

/// Parses and validates `raw` as the value of `def`; the error names the key.
pub fn parse_value(def: &ConfigDef, raw: &str) -> Result<ConfigValue> {
    let invalid = |reason: String| Error::InvalidConfig {
        key: def.name.to_string(),
        value: raw.to_string(),
        reason,
    };
    let trimmed = raw.trim();
    let value = match def.ty {
        ConfigType::Bool => match trimmed.to_ascii_lowercase().as_str() {
            "true" => ConfigValue::Bool(true),
            "false" => ConfigValue::Bool(false),
            _ => return Err(invalid("expected true or false".into())),
        },
        ConfigType::String => ConfigValue::String(trimmed.to_string()),
        ConfigType::Int => ConfigValue::Int(
            trimmed
                .parse()
                .map_err(|_| invalid("expected a 32-bit integer".into()))?,
        ),
        ConfigType::Short => ConfigValue::Short(
            trimmed
                .parse()
                .map_err(|_| invalid("expected a 16-bit integer".into()))?,
        ),
        ConfigType::Long => ConfigValue::Long(
            trimmed
                .parse()
                .map_err(|_| invalid("expected a 64-bit integer".into()))?,
        ),
        ConfigType::Double => {
            let v: f64 = trimmed
                .parse()
                .map_err(|_| invalid("expected a number".into()))?;
            if !v.is_finite() {
                return Err(invalid("expected a finite number".into()));
            }
            ConfigValue::Double(v)
        }
        ConfigType::List if trimmed.is_empty() => ConfigValue::List(Vec::new()),
        ConfigType::List => {
            ConfigValue::List(trimmed.split(',').map(|s| s.trim().to_string()).collect())
        }
    };
    validate(def, &value).map_err(invalid)?;
    Ok(value)
}

fn validate(def: &ConfigDef, value: &ConfigValue) -> std::result::Result<(), String> {
    match (def.validator, value) {
        (Validator::None, _) => Ok(()),
        (Validator::AtLeast(min), v) => match v.as_i64() {
            Some(n) if n >= min => Ok(()),
            _ => Err(format!("value must be at least {min}")),
        },
        (Validator::Between(lo, hi), v) => match v.as_i64() {
            Some(n) if (lo..=hi).contains(&n) => Ok(()),
            _ => Err(format!("value must be between {lo} and {hi}")),
        },
        (Validator::DoubleBetween(lo, hi), ConfigValue::Double(v)) if (lo..=hi).contains(v) => {
            Ok(())
        }
        (Validator::DoubleBetween(lo, hi), _) => {
            Err(format!("value must be between {lo} and {hi}"))
        }
        (Validator::OneOf(allowed), ConfigValue::String(s)) if allowed.contains(&s.as_str()) => {
            Ok(())
        }
        (Validator::OneOf(allowed), _) => {
            Err(format!("value must be one of {}", allowed.join(", ")))
        }
        (Validator::ListOf(allowed), ConfigValue::List(items)) => {
            match items.iter().find(|i| !allowed.contains(&i.as_str())) {
                None => Ok(()),
                Some(bad) => Err(format!("{bad:?} is not one of {}", allowed.join(", "))),
            }
        }
        (Validator::Listeners, ConfigValue::List(items)) => {
            let mut names = Vec::new();
            for item in items {
                let listener = Listener::parse(item)?;
                if names.contains(&listener.name) {
                    return Err(format!("listener name {} appears twice", listener.name));
                }
                names.push(listener.name);
            }
            Ok(())
        }
        (Validator::OneDirectory, ConfigValue::List(items)) => match items.as_slice() {
            [one] if !one.is_empty() => Ok(()),
            [] => Err("at least one directory is required".into()),
            _ => Err("Riptide supports exactly one data directory for now".into()),
        },
        (_, _) => Err("value does not match the key's validator".into()),
    }
}

/// The parsed default of a registry key (`None` for Kafka's null defaults).
pub fn default_value(def: &ConfigDef) -> Option<ConfigValue> {
    let raw = def.default?;
    // Defaults are constants checked by `registry_defaults_parse_and_validate`.
    Some(parse_value(def, raw).expect("registry default must be valid"))
}

/// The broker's configuration: the keys set explicitly (server.properties, `--set`, flags)
/// over the registry defaults. Every stored value has been validated.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BrokerConfig {
    /// Explicitly set keys: the raw string (as DescribeConfigs reports a static synonym) and
    /// its parsed value.
    explicit: BTreeMap<&'static str, (String, ConfigValue)>,
}

impl BrokerConfig {
    /// All defaults.
    pub fn new() -> BrokerConfig {
        BrokerConfig::default()
    }

    /// Reads `path` (if any), then applies `overrides` (`--set key=value`, flags) in order.
    /// An invalid value is an error naming the key; unknown keys are returned as warnings.
    pub fn load(
        path: Option<&Path>,
        overrides: &[(String, String)],
    ) -> Result<(BrokerConfig, Vec<ConfigWarning>)> {
        let text = match path {
            Some(path) => std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?,
            None => String::new(),
        };
        let (mut config, mut warnings) = BrokerConfig::parse_unchecked(&text)?;
        for (key, value) in overrides {
            warnings.extend(config.set(key, value)?);
        }
        config.check_combinations()?;
        Ok((config, warnings))
    }

    /// Parses server.properties text.
    pub fn from_properties_str(text: &str) -> Result<(BrokerConfig, Vec<ConfigWarning>)> {
        let (config, warnings) = BrokerConfig::parse_unchecked(text)?;
        config.check_combinations()?;
        Ok((config, warnings))
    }

    /// Parses without the cross-key rules, which must wait for the `--set` overrides.
    fn parse_unchecked(text: &str) -> Result<(BrokerConfig, Vec<ConfigWarning>)> {
        let mut config = BrokerConfig::new();
        let mut warnings = Vec::new();
        for prop in properties::parse_properties(text)? {
            warnings.extend(config.set(&prop.key, &prop.value)?);
        }
        Ok((config, warnings))
    }

    /// Splits a `--set key=value` argument.
    pub fn parse_override(arg: &str) -> Result<(String, String)> {
        match arg.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                Ok((key.trim().to_string(), value.to_string()))
            }
            _ => Err(Error::Invalid(format!(
                "--set expects key=value, got {arg:?}"
            ))),
        }
    }

    /// Sets one key. Unknown keys are not stored and come back as a warning; keys Riptide
    /// accepts but ignores are stored and also warned about.
    pub fn set(&mut self, key: &str, raw: &str) -> Result<Option<ConfigWarning>> {
        let Some(def) = broker_def(key) else {
            return Ok(Some(ConfigWarning {
                key: key.to_string(),
                message: format!("unknown broker config {key} ignored"),
            }));
        };
        let value = parse_value(def, raw)?;
        self.explicit
            .insert(def.name, (raw.trim().to_string(), value));
        if def.used {
            Ok(None)
        } else {
            Ok(Some(ConfigWarning {
                key: key.to_string(),
                message: format!("{key} is accepted for compatibility but not used by Riptide"),
            }))
        }
    }

    /// Rules spanning keys, checked once all keys are in.
    fn check_combinations(&self) -> Result<()> {
        if self.value("log.retention.ms").and_then(|v| v.as_i64()) == Some(0) {
            return Err(Error::InvalidConfig {
                key: "log.retention.ms".into(),
                value: "0".into(),
                reason: "must be unlimited (-1) or at least 1".into(),
            });
        }
        for listener in self.advertised_listeners() {
            if listener.host.is_empty() || listener.host == "0.0.0.0" {
                return Err(Error::InvalidConfig {
                    key: "advertised.listeners".into(),
                    value: self
                        .explicit_raw("advertised.listeners")
                        .unwrap_or("")
                        .to_string(),
                    reason: "cannot advertise the meta-address 0.0.0.0 or an empty host".into(),
                });
            }
        }
        Ok(())
    }

    /// The raw string of an explicitly set key.
    pub fn explicit_raw(&self, key: &str) -> Option<&str> {
        self.explicit.get(key).map(|(raw, _)| raw.as_str())
    }

    /// Whether `key` was set explicitly (STATIC_BROKER_CONFIG in DescribeConfigs).
    pub fn is_set(&self, key: &str) -> bool {
        self.explicit.contains_key(key)
    }

    /// The effective value of a broker key: explicit, else default; `None` for an unknown key
    /// or an unset key whose default is null.
    pub fn value(&self, key: &str) -> Option<ConfigValue> {
        if let Some((_, value)) = self.explicit.get(key) {
            return Some(value.clone());
        }
        default_value(broker_def(key)?)
    }

    fn int(&self, key: &str) -> i64 {
        self.value(key)
            .and_then(|v| v.as_i64())
            .expect("registry key with a default")
    }

    fn boolean(&self, key: &str) -> bool {
        self.value(key)
            .and_then(|v| v.as_bool())
            .expect("registry key with a default")
    }

    pub fn node_id(&self) -> NodeId {
        NodeId(self.int("node.id") as i32)
    }

    pub fn listeners(&self) -> Vec<Listener> {
        self.listener_list("listeners")
    }

    /// `advertised.listeners`, or `listeners` when not set.
    pub fn advertised_listeners(&self) -> Vec<Listener> {
        if self.is_set("advertised.listeners") {
            self.listener_list("advertised.listeners")
        } else {
            self.listeners()
        }
    }

    fn listener_list(&self, key: &str) -> Vec<Listener> {
        let value = self.value(key).unwrap_or(ConfigValue::List(Vec::new()));
        let items = value.as_list().unwrap_or(&[]);
        // Validated on the way in, so every item parses.
        items
            .iter()
            .filter_map(|item| Listener::parse(item).ok())
            .collect()
    }

    /// The data directory: `log.dirs` if set, else `log.dir` if set, else `./data`.
    pub fn data_dir(&self) -> PathBuf {
        if !self.is_set("log.dirs") {
            if let Some(ConfigValue::String(dir)) = self.value("log.dir") {
                return PathBuf::from(dir);
            }
        }
        let dirs = self.value("log.dirs").expect("log.dirs has a default");
        PathBuf::from(&dirs.as_list().expect("list")[0])
    }

    pub fn num_partitions(&self) -> i32 {
        self.int("num.partitions") as i32
    }
    pub fn default_replication_factor(&self) -> i16 {
        self.int("default.replication.factor")
            .min(i64::from(i16::MAX)) as i16
    }
    pub fn auto_create_topics_enable(&self) -> bool {
        self.boolean("auto.create.topics.enable")
    }
    pub fn message_max_bytes(&self) -> i32 {
        self.int("message.max.bytes") as i32
    }
    pub fn socket_request_max_bytes(&self) -> i32 {
        self.int("socket.request.max.bytes") as i32
    }
    pub fn max_connections(&self) -> i32 {
        self.int("max.connections") as i32
    }
    pub fn connections_max_idle_ms(&self) -> i64 {
        self.int("connections.max.idle.ms")
    }
    pub fn min_insync_replicas(&self) -> i32 {
        self.int("min.insync.replicas") as i32
    }
    pub fn log_retention_check_interval_ms(&self) -> i64 {
        self.int("log.retention.check.interval.ms")
    }
    pub fn producer_id_expiration_ms(&self) -> i64 {
        self.int("producer.id.expiration.ms")
    }
    pub fn offsets_topic_num_partitions(&self) -> i32 {
        self.int("offsets.topic.num.partitions") as i32
    }
    /// The configured `offsets.topic.replication.factor`, capped by the live brokers so a
    /// single node works out of the box (DESIGN: Coordinators).
    pub fn offsets_topic_replication_factor(&self, live_brokers: usize) -> i16 {
        let configured = self.int("offsets.topic.replication.factor");
        configured.min(live_brokers.max(1) as i64) as i16
    }
    pub fn group_initial_rebalance_delay_ms(&self) -> i64 {
        self.int("group.initial.rebalance.delay.ms")
    }
    pub fn group_min_session_timeout_ms(&self) -> i32 {
        self.int("group.min.session.timeout.ms") as i32
    }
    pub fn group_max_session_timeout_ms(&self) -> i32 {
        self.int("group.max.session.timeout.ms") as i32
    }
    pub fn group_max_size(&self) -> i32 {
        self.int("group.max.size") as i32
    }
    pub fn offset_metadata_max_bytes(&self) -> i32 {
        self.int("offset.metadata.max.bytes") as i32
    }
    pub fn offsets_retention_ms(&self) -> i64 {
        self.int("offsets.retention.minutes") * 60_000
    }
    pub fn offsets_retention_check_interval_ms(&self) -> i64 {
        self.int("offsets.retention.check.interval.ms")
    }
    /// `riptide.cores`: `None` means one shard per available core.
    pub fn cores(&self) -> Option<usize> {
        match self.int("riptide.cores") {
            0 => None,
            n => Some(n as usize),
        }
    }
    /// `riptide.log.dsync.writes`: O_DSYNC segment writes under `flush.policy=always`.
    pub fn log_dsync_writes(&self) -> bool {
        self.boolean("riptide.log.dsync.writes")
    }

    /// `riptide.log.cache.bytes`: the tail cache across all shards; `None` for the default
    /// (a share of physical memory, see `broker::settings`).
    pub fn log_cache_bytes(&self) -> Option<u64> {
        let v = self.int("riptide.log.cache.bytes");
        (v >= 0).then_some(v as u64)
    }

    /// `riptide.log.dsync.step.bytes.max`: `always` flush steps up to this size are one
    /// RWF_DSYNC write.
    pub fn log_dsync_step_bytes_max(&self) -> u64 {
        self.int("riptide.log.dsync.step.bytes.max").max(0) as u64
    }

    /// `riptide.log.write.linger.ms`: how long `none`/`interval` appends may wait before
    /// they are written.
    pub fn log_write_linger_ms(&self) -> i64 {
        self.int("riptide.log.write.linger.ms").max(0)
    }

    /// `riptide.log.zero.fill.sync.bytes.max`: below this many bytes per fdatasync on
    /// average, an `always` log grows its segments by zero fills instead of fallocate.
    pub fn log_zero_fill_sync_bytes_max(&self) -> u64 {
        self.int("riptide.log.zero.fill.sync.bytes.max").max(0) as u64
    }

    /// `riptide.log.flush.shared`: `Some(forced)` for true/false, `None` for auto.
    pub fn log_flush_shared(&self) -> Option<bool> {
        match self
            .value("riptide.log.flush.shared")
            .as_ref()
            .and_then(|v| v.as_str())
        {
            Some("true") => Some(true),
            Some("false") => Some(false),
            _ => None,
        }
    }

    pub fn pin(&self) -> bool {
        self.boolean("riptide.pin")
    }
    pub fn log_flush_policy(&self) -> FlushPolicy {
        self.topic_defaults().flush_policy()
    }

    /// The effective topic-level defaults this broker gives topics without overrides:
    /// `log.retention.ms` > `log.retention.minutes` > `log.retention.hours`, `log.roll.ms` >
    /// `log.roll.hours`, and so on, as Kafka resolves them.
    pub fn topic_defaults(&self) -> EffectiveTopicConfig {
        TopicConfig::new().resolve(self)
    }

    /// The value a topic key takes from the broker: the first explicitly set synonym,
    /// converted to the topic key's unit, else the topic key's own default.
    pub fn topic_default_value(&self, def: &ConfigDef) -> ConfigValue {
        debug_assert_eq!(def.scope, Scope::Topic);
        for synonym in def.synonyms {
            if let Some((_, value)) = self.explicit.get(synonym.name) {
                return convert_synonym(def, synonym, value);
            }
        }
        default_value(def).expect("topic keys have defaults")
    }

    /// DescribeConfigs for this broker's resource (resource name = its node id): every broker
    /// key, or only `keys` when given (unknown names are left out, as Kafka does).
    pub fn describe(
        &self,
        keys: Option<&[&str]>,
        include_synonyms: bool,
        include_documentation: bool,
    ) -> Vec<DescribedConfig> {
        describe::describe_broker(self, keys, include_synonyms, include_documentation)
    }
}

/// Converts a broker synonym's value to the topic key's type and unit (Kafka
/// `ConfigSynonym` converters). A negative retention in minutes or hours means unlimited
/// (-1), as `KafkaConfig.logRetentionTimeMillis` has it.
fn convert_synonym(def: &ConfigDef, synonym: &Synonym, value: &ConfigValue) -> ConfigValue {
    let Some(n) = value.as_i64() else {
        return value.clone();
    };
    let mut n = n.saturating_mul(synonym.to_topic_unit);
    if def.name == "retention.ms" && n < 0 {
        n = -1;
    }
    match def.ty {
        ConfigType::Int => {
            ConfigValue::Int(n.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32)
        }
        ConfigType::Short => {
            ConfigValue::Short(n.clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16)
        }
        _ => ConfigValue::Long(n),
    }
}

#[cfg(test)]
mod tests;
