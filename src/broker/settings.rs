//! The broker's resolved settings: what the shards, the server and the API layer read.
//! Built from the config registry (`crate::config`) by `main`; plain data, `Send + Sync`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use shards::log::{FlushPolicy, LogConfig};
use shards::NodeId;

use crate::server::ServerLimits;

#[derive(Clone, Debug)]
pub struct BrokerSettings {
    pub node_id: NodeId,
    pub listen_addr: SocketAddr,
    pub advertised_host: String,
    pub advertised_port: i32,
    pub data_dir: PathBuf,
    pub shard_count: u16,
    pub pin: bool,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics: bool,
    pub message_max_bytes: usize,
    pub request_bytes_max: usize,
    pub connections_max: usize,
    pub idle_ms_max: u64,
    pub flush_policy: FlushPolicy,
    /// Broker-level defaults of topic configs, as key → value, for DescribeConfigs and
    /// for building each log's config.
    pub topic_defaults: BTreeMap<String, String>,
}

impl Default for BrokerSettings {
    fn default() -> Self {
        BrokerSettings {
            node_id: NodeId(1),
            listen_addr: "127.0.0.1:9092".parse().expect("literal address"),
            advertised_host: "127.0.0.1".into(),
            advertised_port: 9092,
            data_dir: PathBuf::from("./data"),
            shard_count: shards::runtime::default_shard_count(),
            pin: true,
            num_partitions: 1,
            default_replication_factor: 1,
            auto_create_topics: true,
            message_max_bytes: 1_048_588,
            request_bytes_max: 104_857_600,
            connections_max: i32::MAX as usize,
            idle_ms_max: 600_000,
            flush_policy: FlushPolicy::Always,
            topic_defaults: BTreeMap::new(),
        }
    }
}

impl BrokerSettings {
    pub fn server_limits(&self) -> ServerLimits {
        ServerLimits {
            request_bytes_max: self.request_bytes_max,
            connections_max: self.connections_max,
            idle_ms_max: self.idle_ms_max,
            in_flight_max: 16,
        }
    }

    /// The log config of a topic: its overrides over the broker defaults.
    pub fn log_config(&self, overrides: &BTreeMap<String, String>) -> LogConfig {
        let get = |k: &str| overrides.get(k).or_else(|| self.topic_defaults.get(k));
        let flush_policy = match get("flush.policy").map(String::as_str) {
            Some("none") => FlushPolicy::None,
            Some("interval") => FlushPolicy::Interval {
                flush_ms: i64::MAX,
                flush_messages: i64::MAX,
            },
            Some("always") => FlushPolicy::Always,
            _ => self.flush_policy,
        };
        let max_message_bytes = get("max.message.bytes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(self.message_max_bytes);
        let log_append_time = get("message.timestamp.type")
            .map(|v| v == "LogAppendTime")
            .unwrap_or(false);
        LogConfig {
            flush_policy,
            max_message_bytes,
            log_append_time,
        }
    }
}
