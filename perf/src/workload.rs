//! Workload files (`perf/workloads/*.toml`), in the OpenMessaging Benchmark spirit: what to
//! send, how fast, for how long. `--set key=value` overrides patch the TOML table before it is
//! deserialized, so a script can sweep a parameter without writing a file per point.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Upper bounds that keep a typo in a workload from eating the machine.
pub const PARTITIONS_MAX: u32 = 10_000;
pub const CLIENTS_MAX: u32 = 64;
pub const MESSAGE_SIZE_MAX: u32 = 8 * 1024 * 1024;
/// The payload starts with an 8-byte send timestamp (µs since the Unix epoch, little endian).
pub const MESSAGE_SIZE_MIN: u32 = 8;
pub const DURATION_S_MAX: u64 = 3_600;

/// Message size: a fixed number of bytes or a uniform distribution.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum MessageSize {
    Fixed(u32),
    Uniform { min: u32, max: u32 },
}

impl MessageSize {
    pub fn bounds(&self) -> (u32, u32) {
        match *self {
            MessageSize::Fixed(n) => (n, n),
            MessageSize::Uniform { min, max } => (min, max),
        }
    }
    pub fn mean(&self) -> f64 {
        let (lo, hi) = self.bounds();
        (lo as f64 + hi as f64) / 2.0
    }
}

/// Keys: `"none"`, `"random"` (a fresh key per message) or a number N of distinct keys.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum Keys {
    Named(String),
    Distinct(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyMode {
    None,
    Random,
    Distinct(u64),
}

impl Keys {
    pub fn mode(&self) -> Result<KeyMode> {
        match self {
            Keys::Named(s) if s == "none" => Ok(KeyMode::None),
            Keys::Named(s) if s == "random" => Ok(KeyMode::Random),
            Keys::Named(s) => bail!("keys must be \"none\", \"random\" or a number, not {s:?}"),
            Keys::Distinct(0) => bail!("keys = 0 distinct keys; use \"none\""),
            Keys::Distinct(n) => Ok(KeyMode::Distinct(*n)),
        }
    }
}

/// How consumers get their partitions.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Subscription {
    /// Partition p goes to consumer p % consumers; no group coordinator involved.
    #[default]
    Direct,
    /// A consumer group (librdkafka driver only).
    Group,
}

/// Accepts `acks = 1` as well as `acks = "1"` (a shell eats the quotes of `--set acks="1"`).
fn string_or_int<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum S {
        Str(String),
        Int(i64),
    }
    Ok(match S::deserialize(d)? {
        S::Str(s) => s,
        S::Int(i) => i.to_string(),
    })
}

fn one() -> u32 {
    1
}
fn one_i16() -> i16 {
    1
}
fn acks_default() -> String {
    "all".into()
}
fn compression_default() -> String {
    "none".into()
}
fn keys_default() -> Keys {
    Keys::Named("none".into())
}
fn batch_default() -> u32 {
    64 * 1024
}
fn in_flight_default() -> u32 {
    5
}
fn fetch_wait_default() -> u32 {
    100
}
fn drain_default() -> u64 {
    15
}

#[derive(Deserialize, Serialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "one")]
    pub topics: u32,
    pub partitions_per_topic: u32,
    #[serde(default = "one_i16")]
    pub replication_factor: i16,
    pub message_size: MessageSize,
    #[serde(default = "keys_default")]
    pub keys: Keys,
    #[serde(default = "one")]
    pub producers: u32,
    #[serde(default)]
    pub consumers: u32,
    /// Total target rate over all producers, messages per second; 0 means as fast as possible.
    #[serde(default)]
    pub producer_rate_msgs_per_s: u64,
    /// "0", "1" or "all" (integers 0, 1, -1 are accepted too).
    #[serde(default = "acks_default", deserialize_with = "string_or_int")]
    pub acks: String,
    /// none, gzip, snappy, lz4, zstd (native driver: none only).
    #[serde(default = "compression_default")]
    pub compression: String,
    #[serde(default)]
    pub linger_ms: u64,
    #[serde(default = "batch_default")]
    pub batch_size_bytes: u32,
    /// Produce requests in flight per connection.
    #[serde(default = "in_flight_default")]
    pub max_in_flight: u32,
    pub duration_s: u64,
    #[serde(default)]
    pub warmup_s: u64,
    /// Keep producing past `duration_s` until at least this many payload bytes were measured.
    #[serde(default)]
    pub produce_bytes_min: u64,
    #[serde(default)]
    pub subscription: Subscription,
    /// When > 0: first produce this many bytes, then measure consumers reading them from the
    /// beginning (the consume-throughput workload). When 0, consumers read the tail live.
    #[serde(default)]
    pub consume_backlog_bytes: u64,
    /// Consumers' Fetch max_wait_ms (long-poll bound when no data is ready).
    #[serde(default = "fetch_wait_default")]
    pub fetch_max_wait_ms: u32,
    /// After producers stop, how long consumers may take to catch up before the run reports
    /// missing messages.
    #[serde(default = "drain_default")]
    pub drain_timeout_s: u64,
    /// Topic configs sent with CreateTopics (e.g. `retention.bytes`, so that a long run
    /// cannot fill the disk), as in OpenMessaging Benchmark's `topicConfig`.
    #[serde(default)]
    pub topic_configs: std::collections::BTreeMap<String, String>,
}

impl Workload {
    pub fn acks_i16(&self) -> Result<i16> {
        match self.acks.as_str() {
            "0" => Ok(0),
            "1" => Ok(1),
            "all" | "-1" => Ok(-1),
            other => bail!("acks must be 0, 1 or all, not {other:?}"),
        }
    }

    pub fn partitions_total(&self) -> u32 {
        self.topics * self.partitions_per_topic
    }

    pub fn validate(&self) -> Result<()> {
        self.acks_i16()?;
        self.keys.mode()?;
        let (lo, hi) = self.message_size.bounds();
        if lo < MESSAGE_SIZE_MIN || hi > MESSAGE_SIZE_MAX || lo > hi {
            bail!(
                "message_size must lie in {MESSAGE_SIZE_MIN}..={MESSAGE_SIZE_MAX} with min <= max"
            );
        }
        if self.topics == 0 || self.partitions_per_topic == 0 {
            bail!("topics and partitions_per_topic must be >= 1");
        }
        if self.partitions_total() > PARTITIONS_MAX {
            bail!("at most {PARTITIONS_MAX} partitions");
        }
        if self.producers > CLIENTS_MAX || self.consumers > CLIENTS_MAX {
            bail!("at most {CLIENTS_MAX} producers and consumers");
        }
        if self.producers == 0 && self.consume_backlog_bytes == 0 {
            bail!("producers = 0 needs consume_backlog_bytes > 0");
        }
        if self.consume_backlog_bytes > 0 && self.consumers == 0 {
            bail!("consume_backlog_bytes > 0 needs consumers >= 1");
        }
        if self.duration_s == 0
            || self.duration_s > DURATION_S_MAX
            || self.warmup_s > DURATION_S_MAX
        {
            bail!("duration_s must lie in 1..={DURATION_S_MAX} and warmup_s <= {DURATION_S_MAX}");
        }
        if self.max_in_flight == 0 || self.max_in_flight > 1024 {
            bail!("max_in_flight must lie in 1..=1024");
        }
        if !["none", "gzip", "snappy", "lz4", "zstd"].contains(&self.compression.as_str()) {
            bail!("unknown compression {:?}", self.compression);
        }
        if self.fetch_max_wait_ms > 30_000 {
            bail!("fetch_max_wait_ms must be <= 30000");
        }
        if self.replication_factor < 1 {
            bail!("replication_factor must be >= 1");
        }
        Ok(())
    }
}

/// Parses a workload from TOML text, applying `key=value` overrides (values parsed as TOML,
/// falling back to a string), then validates it.
pub fn parse(text: &str, overrides: &[String]) -> Result<Workload> {
    let mut table: toml::Table = toml::from_str(text).context("workload is not valid TOML")?;
    for o in overrides {
        let (k, v) = o
            .split_once('=')
            .with_context(|| format!("override {o:?} is not key=value"))?;
        let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {v}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(v.to_string()));
        table.insert(k.trim().to_string(), value);
    }
    let w: Workload = toml::Value::Table(table)
        .try_into()
        .context("workload fields")?;
    w.validate()?;
    Ok(w)
}

pub fn load(path: &std::path::Path, overrides: &[String]) -> Result<Workload> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text, overrides).with_context(|| format!("workload {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str =
        "name = \"t\"\npartitions_per_topic = 3\nmessage_size = 1024\nduration_s = 5\n";

    #[test]
    fn parses_defaults_and_overrides() {
        let w = parse(
            BASE,
            &[
                "acks=\"1\"".into(),
                "producer_rate_msgs_per_s=5000".into(),
                "keys=100".into(),
            ],
        )
        .unwrap();
        assert_eq!(w.acks_i16().unwrap(), 1);
        assert_eq!(
            parse(BASE, &["acks=1".into()]).unwrap().acks_i16().unwrap(),
            1
        );
        assert_eq!(
            parse(BASE, &["acks=all".into()])
                .unwrap()
                .acks_i16()
                .unwrap(),
            -1
        );
        assert_eq!(
            parse(BASE, &["acks=-1".into()])
                .unwrap()
                .acks_i16()
                .unwrap(),
            -1
        );
        assert_eq!(w.producer_rate_msgs_per_s, 5000);
        assert_eq!(w.keys.mode().unwrap(), KeyMode::Distinct(100));
        assert_eq!(w.partitions_total(), 3);
        // A bare word that is not TOML becomes a string.
        let w = parse(BASE, &["compression=lz4".into()]).unwrap();
        assert_eq!(w.compression, "lz4");
    }

    #[test]
    fn rejects_bad_values() {
        assert!(parse(BASE, &["message_size=4".into()]).is_err());
        assert!(parse(BASE, &["acks=\"2\"".into()]).is_err());
        assert!(parse(BASE, &["partitions_per_topic=0".into()]).is_err());
        assert!(parse(BASE, &["no_such_field=1".into()]).is_err());
        assert!(parse(BASE, &["keys=\"some\"".into()]).is_err());
        let w = parse(BASE, &["message_size={min=100,max=200}".into()]).unwrap();
        assert_eq!(w.message_size.bounds(), (100, 200));
    }
}
