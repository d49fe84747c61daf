//! The broker's resolved settings: what the shards, the server and the API layer read.
//! Built once from the validated [`BrokerConfig`]; plain data, `Send + Sync`.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use shards::batch::TimestampType;
use shards::log::{FlushPolicy, LogConfig};
use shards::NodeId;

use crate::config::{self, BrokerConfig, TopicConfig};
use crate::server::ServerLimits;

#[derive(Clone, Debug)]
pub struct BrokerSettings {
    pub config: BrokerConfig,
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
    pub request_bytes_max: usize,
    pub connections_max: usize,
    pub idle_ms_max: u64,
    /// Shared device flushes for syncs (`riptide.log.flush.shared`, resolved for the data
    /// directory's filesystem).
    pub shared_syncs: bool,
    /// Each shard's share of the tail cache (`riptide.log.cache.bytes`).
    pub tail_cache_bytes_per_shard: usize,
}

impl BrokerSettings {
    pub fn from_config(config: BrokerConfig) -> Result<BrokerSettings, String> {
        let listener = config
            .listeners()
            .into_iter()
            .next()
            .ok_or("listeners: at least one listener is required")?;
        let host = if listener.host.is_empty() {
            "0.0.0.0".to_string()
        } else {
            listener.host.clone()
        };
        let listen_addr = (host.as_str(), listener.port)
            .to_socket_addrs()
            .map_err(|e| format!("listeners: cannot resolve {host}: {e}"))?
            .next()
            .ok_or_else(|| format!("listeners: cannot resolve {host}"))?;
        let advertised = config
            .advertised_listeners()
            .into_iter()
            .next()
            .unwrap_or(listener);
        let advertised_host = if advertised.host.is_empty() {
            "127.0.0.1".to_string()
        } else {
            advertised.host
        };
        let shard_count = config
            .cores()
            .map(|c| c as u16)
            .unwrap_or_else(shards::runtime::default_shard_count);
        Ok(BrokerSettings {
            node_id: config.node_id(),
            listen_addr,
            advertised_host,
            advertised_port: advertised.port as i32,
            data_dir: config.data_dir(),
            shard_count,
            pin: config.pin(),
            num_partitions: config.num_partitions(),
            default_replication_factor: config.default_replication_factor(),
            auto_create_topics: config.auto_create_topics_enable(),
            request_bytes_max: config.socket_request_max_bytes().max(0) as usize,
            connections_max: config.max_connections().max(0) as usize,
            idle_ms_max: config.connections_max_idle_ms().max(0) as u64,
            shared_syncs: config.log_flush_shared().unwrap_or_else(|| {
                shards::storage::device_flush_covers_overwrites(&config.data_dir())
            }),
            tail_cache_bytes_per_shard: tail_cache_bytes_per_shard(
                config.log_cache_bytes(),
                physical_memory_bytes(),
                shard_count,
            ),
            config,
        })
    }

    pub fn server_limits(&self) -> ServerLimits {
        ServerLimits {
            request_bytes_max: self.request_bytes_max,
            connections_max: self.connections_max,
            idle_ms_max: self.idle_ms_max,
            ..ServerLimits::default()
        }
    }

    /// `message.timestamp.before.max.ms` and `after.max.ms` of a topic.
    pub fn timestamp_bounds(&self, overrides: &BTreeMap<String, String>) -> (i64, i64) {
        let eff = self.topic_config(overrides).resolve(&self.config);
        (
            eff.message_timestamp_before_max_ms(),
            eff.message_timestamp_after_max_ms(),
        )
    }

    fn topic_config(&self, overrides: &BTreeMap<String, String>) -> TopicConfig {
        TopicConfig::from_entries(overrides.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .unwrap_or_else(|_| TopicConfig::new())
    }

    /// `min.insync.replicas` of a topic: its override (validated when it was set) over the
    /// broker default. Two map lookups: it runs for every partition of an acks=all produce.
    pub fn min_insync_replicas(&self, overrides: &BTreeMap<String, String>) -> i32 {
        overrides
            .get("min.insync.replicas")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| self.config.min_insync_replicas())
    }

    /// The log config of a topic: its overrides over the broker defaults. Overrides were
    /// validated when the topic was created or altered.
    pub fn log_config(&self, overrides: &BTreeMap<String, String>) -> LogConfig {
        let topic =
            TopicConfig::from_entries(overrides.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .unwrap_or_else(|_| TopicConfig::new());
        let eff = topic.resolve(&self.config);
        let flush_policy = match eff.flush_policy() {
            config::FlushPolicy::Always => FlushPolicy::Always,
            config::FlushPolicy::None => FlushPolicy::None,
            config::FlushPolicy::Interval => FlushPolicy::Interval {
                flush_ms: eff.flush_ms(),
                flush_messages: eff.flush_messages(),
            },
        };
        LogConfig {
            segment_bytes: eff.segment_bytes().max(0) as u64,
            segment_ms: eff.segment_ms(),
            segment_index_bytes: eff.segment_index_bytes().max(8) as u64,
            retention_ms: eff.retention_ms(),
            retention_bytes: eff.retention_bytes(),
            index_interval_bytes: eff.index_interval_bytes().max(1) as u64,
            flush_policy,
            max_message_bytes: eff.max_message_bytes().max(0) as usize,
            message_timestamp_type: match eff.message_timestamp_type() {
                config::TimestampType::LogAppendTime => TimestampType::LogAppendTime,
                _ => TimestampType::CreateTime,
            },
            dsync_writes: self.config.log_dsync_writes(),
            dsync_step_bytes_max: self.config.log_dsync_step_bytes_max(),
            shared_syncs: self.shared_syncs,
            zero_fill_sync_bytes_max: self.config.log_zero_fill_sync_bytes_max(),
            write_linger_ms: self.config.log_write_linger_ms(),
            ..LogConfig::default()
        }
    }
}

/// The default tail cache, across all shards, is this fraction of physical memory (a
/// sixteenth: it shares the machine with the page cache of indexes, clients, other brokers): the
/// segment files bypass the page cache (O_DIRECT), so this cache is what Kafka gets from
/// the page cache — recent data read back (a consumer starting from a recent offset, a
/// lagging one) costs no disk read and no copy.
const TAIL_CACHE_MEMORY_DIVISOR: u64 = 16;
/// A shard's share is never below this, whatever is configured or however small the
/// machine: caught-up readers must find the last batches in memory.
const TAIL_CACHE_BYTES_PER_SHARD_MIN: u64 = 64 << 20;

/// Each shard's tail cache: `configured` bytes (or a sixteenth of `memory_bytes`) split
/// evenly over `shards`, at least the per-shard minimum. Pure.
fn tail_cache_bytes_per_shard(configured: Option<u64>, memory_bytes: u64, shards: u16) -> usize {
    let total = configured.unwrap_or(memory_bytes / TAIL_CACHE_MEMORY_DIVISOR);
    let share = total / u64::from(shards.max(1));
    usize::try_from(share.max(TAIL_CACHE_BYTES_PER_SHARD_MIN)).unwrap_or(usize::MAX)
}

/// Physical memory of the machine (0 if the OS does not say: the per-shard minimum then
/// applies).
fn physical_memory_bytes() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let (pages, page_bytes) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    if pages <= 0 || page_bytes <= 0 {
        return 0;
    }
    (pages as u64).saturating_mul(page_bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_cache_is_a_share_of_memory_or_the_configured_total_split_over_shards() {
        const GIB: u64 = 1 << 30;
        // Default: a sixteenth of memory, over the shards.
        assert_eq!(
            tail_cache_bytes_per_shard(None, 24 * GIB, 2),
            (3 * GIB / 4) as usize
        );
        assert_eq!(tail_cache_bytes_per_shard(None, 64 * GIB, 4), GIB as usize);
        // Configured: that total, over the shards.
        assert_eq!(
            tail_cache_bytes_per_shard(Some(GIB), 24 * GIB, 4),
            (GIB / 4) as usize
        );
        // Never below the per-shard minimum (small machines, tiny settings, unknown memory).
        let min = TAIL_CACHE_BYTES_PER_SHARD_MIN as usize;
        assert_eq!(tail_cache_bytes_per_shard(None, GIB, 2), min);
        assert_eq!(tail_cache_bytes_per_shard(Some(0), 24 * GIB, 2), min);
        assert_eq!(tail_cache_bytes_per_shard(None, 0, 1), min);
        assert_eq!(tail_cache_bytes_per_shard(Some(u64::MAX), 0, 0), usize::MAX);
    }
}
