//! The config registry: every broker and topic key Riptide knows, with Kafka's names, types,
//! defaults, validators and broker ↔ topic synonyms.
//!
//! Names, defaults and validators follow Apache Kafka 4.x (`LogConfig`, `ServerLogConfigs`,
//! `ServerTopicConfigSynonyms`); the Riptide-specific keys are `flush.policy` /
//! `log.flush.policy` (DESIGN invariant 4) and `riptide.*`. Defaults are written as the
//! strings Kafka's `ConfigDef.convertToString` would print, and are parsed by the same code
//! as user input: one path, and a test checks every default parses and validates.

/// A key's type, as DescribeConfigs reports it (`config_type`, v3+). Kafka has no enum type:
/// an enumerated key is a `String` with a [`Validator::OneOf`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigType {
    Bool,
    String,
    Int,
    Short,
    Long,
    Double,
    List,
}

impl ConfigType {
    /// Kafka's `DescribeConfigsResponse.ConfigType` id.
    pub fn wire_id(self) -> i8 {
        match self {
            ConfigType::Bool => 1,
            ConfigType::String => 2,
            ConfigType::Int => 3,
            ConfigType::Short => 4,
            ConfigType::Long => 5,
            ConfigType::Double => 6,
            ConfigType::List => 7,
        }
    }
}

/// What a value must satisfy beyond parsing as its type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Validator {
    None,
    /// Integer at least this (Kafka `Range.atLeast`).
    AtLeast(i64),
    /// Integer within the closed range (Kafka `Range.between`).
    Between(i64, i64),
    /// Double within the closed range.
    DoubleBetween(f64, f64),
    /// String equal to one of these, case-sensitive (Kafka `ValidString.in`).
    OneOf(&'static [&'static str]),
    /// Every list element is one of these (Kafka `ValidList.in`).
    ListOf(&'static [&'static str]),
    /// A list of `NAME://host:port` listeners with distinct names.
    Listeners,
    /// A list of exactly one directory (Riptide serves one data directory for now).
    OneDirectory,
}

/// Whether a key configures the broker (server.properties) or a topic (CreateTopics,
/// AlterConfigs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Broker,
    Topic,
}

/// A broker key a topic key falls back to, and the factor that turns its value into the topic
/// key's unit (`log.retention.hours` → `retention.ms`: 3 600 000).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Synonym {
    pub name: &'static str,
    pub to_topic_unit: i64,
}

/// One key of the registry.
#[derive(Clone, Copy, Debug)]
pub struct ConfigDef {
    pub name: &'static str,
    pub ty: ConfigType,
    /// `None`: Kafka's `null` default (e.g. `log.retention.ms`, resolved through synonyms).
    pub default: Option<&'static str>,
    pub validator: Validator,
    pub scope: Scope,
    pub doc: &'static str,
    /// Topic keys: the broker keys that supply the topic default, highest precedence first.
    pub synonyms: &'static [Synonym],
    /// False for keys accepted for compatibility with Kafka's server.properties but not acted
    /// on by Riptide; loading one yields a warning rather than silent acceptance.
    pub used: bool,
}

const MS: i64 = 1;
const MINUTE_MS: i64 = 60 * 1000;
const HOUR_MS: i64 = 60 * MINUTE_MS;

const fn syn(name: &'static str) -> Synonym {
    Synonym {
        name,
        to_topic_unit: MS,
    }
}

const fn broker(
    name: &'static str,
    ty: ConfigType,
    default: Option<&'static str>,
    validator: Validator,
    doc: &'static str,
) -> ConfigDef {
    ConfigDef {
        name,
        ty,
        default,
        validator,
        scope: Scope::Broker,
        doc,
        synonyms: &[],
        used: true,
    }
}

const fn compat(
    name: &'static str,
    ty: ConfigType,
    default: Option<&'static str>,
    doc: &'static str,
) -> ConfigDef {
    ConfigDef {
        name,
        ty,
        default,
        validator: Validator::None,
        scope: Scope::Broker,
        doc,
        synonyms: &[],
        used: false,
    }
}

const fn topic(
    name: &'static str,
    ty: ConfigType,
    default: &'static str,
    validator: Validator,
    synonyms: &'static [Synonym],
    doc: &'static str,
) -> ConfigDef {
    ConfigDef {
        name,
        ty,
        default: Some(default),
        validator,
        scope: Scope::Topic,
        doc,
        synonyms,
        used: true,
    }
}

use ConfigType as T;
use Validator as V;

const LONG_MAX: &str = "9223372036854775807";
const INT_MAX: &str = "2147483647";

pub const CLEANUP_POLICIES: &[&str] = &["compact", "delete"];
pub const COMPRESSION_TYPES: &[&str] =
    &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];
pub const FLUSH_POLICIES: &[&str] = &["always", "interval", "none"];
/// Values of `riptide.log.flush.shared`.
pub const FLUSH_SHARED_MODES: &[&str] = &["auto", "true", "false"];
pub const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];

/// Every topic-level key (Kafka `LogConfig`, minus tiered storage and replication throttles,
/// plus Riptide's `flush.policy`), sorted by name.
pub static TOPIC_CONFIGS: &[ConfigDef] = &[
    topic("cleanup.policy", T::List, "delete", V::ListOf(CLEANUP_POLICIES), &[syn("log.cleanup.policy")],
        "A comma-separated list of retention policies for old log segments: \"delete\" discards them after the retention time or size limit, \"compact\" keeps the latest value per key."),
    topic("compression.gzip.level", T::Int, "-1", V::Between(-1, 9), &[syn("compression.gzip.level")],
        "The compression level to use if compression.type is set to gzip."),
    topic("compression.lz4.level", T::Int, "9", V::Between(1, 17), &[syn("compression.lz4.level")],
        "The compression level to use if compression.type is set to lz4."),
    topic("compression.type", T::String, "producer", V::OneOf(COMPRESSION_TYPES), &[syn("compression.type")],
        "The final compression type for the topic; \"producer\" keeps the codec the producer used."),
    topic("compression.zstd.level", T::Int, "3", V::Between(-131072, 22), &[syn("compression.zstd.level")],
        "The compression level to use if compression.type is set to zstd."),
    topic("delete.retention.ms", T::Long, "86400000", V::AtLeast(0), &[syn("log.cleaner.delete.retention.ms")],
        "The time to retain delete tombstone markers for log compacted topics."),
    topic("file.delete.delay.ms", T::Long, "60000", V::AtLeast(0), &[syn("log.segment.delete.delay.ms")],
        "The time to wait before deleting a file from the filesystem."),
    topic("flush.messages", T::Long, LONG_MAX, V::AtLeast(1), &[syn("log.flush.interval.messages")],
        "Under flush.policy=interval, the number of messages appended to a partition before it is fsync'd."),
    topic("flush.ms", T::Long, LONG_MAX, V::AtLeast(0),
        &[syn("log.flush.interval.ms"), syn("log.flush.scheduler.interval.ms")],
        "Under flush.policy=interval, the maximum time in ms a message stays unflushed."),
    topic("flush.policy", T::String, "always", V::OneOf(FLUSH_POLICIES), &[syn("log.flush.policy")],
        "Riptide: when appended data is fsync'd. always: before any acknowledgement and before consumers see it; interval: per flush.ms / flush.messages (Kafka's model); none: left to the OS."),
    topic("index.interval.bytes", T::Int, "4096", V::AtLeast(0), &[syn("log.index.interval.bytes")],
        "How frequently an entry is added to the offset index, in bytes of log."),
    topic("max.compaction.lag.ms", T::Long, LONG_MAX, V::AtLeast(1), &[syn("log.cleaner.max.compaction.lag.ms")],
        "The maximum time a message will remain ineligible for compaction in the log."),
    topic("max.message.bytes", T::Int, "1048588", V::AtLeast(0), &[syn("message.max.bytes")],
        "The largest record batch size allowed for this topic."),
    topic("message.timestamp.after.max.ms", T::Long, LONG_MAX, V::AtLeast(0),
        &[syn("log.message.timestamp.after.max.ms")],
        "The allowed amount a CreateTime message timestamp may be ahead of the broker's time."),
    topic("message.timestamp.before.max.ms", T::Long, LONG_MAX, V::AtLeast(0),
        &[syn("log.message.timestamp.before.max.ms")],
        "The allowed amount a CreateTime message timestamp may be behind the broker's time."),
    topic("message.timestamp.type", T::String, "CreateTime", V::OneOf(TIMESTAMP_TYPES),
        &[syn("log.message.timestamp.type")],
        "Whether the timestamp in a message is the producer's create time or the log append time."),
    topic("min.cleanable.dirty.ratio", T::Double, "0.5", V::DoubleBetween(0.0, 1.0),
        &[syn("log.cleaner.min.cleanable.ratio")],
        "How frequently the log compactor will attempt to clean the log (dirty to total ratio)."),
    topic("min.compaction.lag.ms", T::Long, "0", V::AtLeast(0), &[syn("log.cleaner.min.compaction.lag.ms")],
        "The minimum time a message will remain uncompacted in the log."),
    topic("min.insync.replicas", T::Int, "1", V::AtLeast(1), &[syn("min.insync.replicas")],
        "With acks=all, the minimum number of in-sync replicas that must acknowledge a write."),
    topic("preallocate", T::Bool, "false", V::None, &[syn("log.preallocate")],
        "True if a file should be preallocated on disk when creating a new log segment."),
    topic("retention.bytes", T::Long, "-1", V::None, &[syn("log.retention.bytes")],
        "The maximum size a partition can grow to before old segments are discarded; -1: no limit."),
    topic("retention.ms", T::Long, "604800000", V::AtLeast(-1),
        &[
            syn("log.retention.ms"),
            Synonym { name: "log.retention.minutes", to_topic_unit: MINUTE_MS },
            Synonym { name: "log.retention.hours", to_topic_unit: HOUR_MS },
        ],
        "The maximum time a log segment is retained before it is discarded; -1: no time limit."),
    topic("segment.bytes", T::Int, "1073741824", V::AtLeast(1024 * 1024), &[syn("log.segment.bytes")],
        "The segment file size for the log."),
    topic("segment.index.bytes", T::Int, "10485760", V::AtLeast(4), &[syn("log.index.size.max.bytes")],
        "The size of the index that maps offsets to file positions."),
    topic("segment.jitter.ms", T::Long, "0", V::AtLeast(0),
        &[syn("log.roll.jitter.ms"), Synonym { name: "log.roll.jitter.hours", to_topic_unit: HOUR_MS }],
        "The maximum random jitter subtracted from the scheduled segment roll time."),
    topic("segment.ms", T::Long, "604800000", V::AtLeast(1),
        &[syn("log.roll.ms"), Synonym { name: "log.roll.hours", to_topic_unit: HOUR_MS }, syn("log.segment.ms")],
        "The period of time after which the log rolls a new segment even if the segment is not full."),
    topic("unclean.leader.election.enable", T::Bool, "false", V::None, &[syn("unclean.leader.election.enable")],
        "Whether replicas not in the ISR may be elected leader as a last resort, at the risk of data loss."),
];

/// Every broker-level key, sorted by name.
pub static BROKER_CONFIGS: &[ConfigDef] = &[
    broker("advertised.listeners", T::List, None, V::Listeners,
        "Listeners published to clients in Metadata if different from listeners; defaults to listeners."),
    broker("auto.create.topics.enable", T::Bool, Some("true"), V::None,
        "Enable auto creation of topics on the server (Metadata and Produce for an unknown topic)."),
    broker("compression.gzip.level", T::Int, Some("-1"), V::Between(-1, 9),
        "The compression level to use if compression.type is set to gzip."),
    broker("compression.lz4.level", T::Int, Some("9"), V::Between(1, 17),
        "The compression level to use if compression.type is set to lz4."),
    broker("compression.type", T::String, Some("producer"), V::OneOf(COMPRESSION_TYPES),
        "The final compression type for topics; \"producer\" keeps the codec the producer used."),
    broker("compression.zstd.level", T::Int, Some("3"), V::Between(-131072, 22),
        "The compression level to use if compression.type is set to zstd."),
    broker("connections.max.idle.ms", T::Long, Some("600000"), V::None,
        "Idle connections timeout: connections idle longer than this are closed."),
    compat("controller.listener.names", T::List, None, "Accepted for compatibility; Riptide does not use it yet."),
    compat("controller.quorum.bootstrap.servers", T::List, None, "Accepted for compatibility; Riptide does not use it yet."),
    compat("controller.quorum.voters", T::List, None, "Accepted for compatibility; Riptide does not use it yet."),
    broker("default.replication.factor", T::Int, Some("1"), V::AtLeast(1),
        "The replication factor for automatically created topics and CreateTopics with -1."),
    broker("group.initial.rebalance.delay.ms", T::Int, Some("3000"), V::AtLeast(0),
        "The time the group coordinator waits for more consumers to join a new group before the first rebalance."),
    broker("group.max.session.timeout.ms", T::Int, Some("1800000"), V::AtLeast(1),
        "The maximum allowed session timeout for registered consumers."),
    broker("group.max.size", T::Int, Some(INT_MAX), V::AtLeast(1),
        "The maximum number of consumers that a single consumer group can accommodate."),
    broker("group.min.session.timeout.ms", T::Int, Some("6000"), V::AtLeast(1),
        "The minimum allowed session timeout for registered consumers."),
    compat("inter.broker.listener.name", T::String, None, "Accepted for compatibility; Riptide does not use it yet."),
    compat("listener.security.protocol.map", T::List, None, "Accepted for compatibility; Riptide speaks PLAINTEXT only."),
    broker("listeners", T::List, Some("PLAINTEXT://127.0.0.1:9092"), V::Listeners,
        "Comma-separated list of NAME://host:port the broker listens on; an empty host binds all interfaces."),
    broker("log.cleaner.delete.retention.ms", T::Long, Some("86400000"), V::AtLeast(0),
        "The default time to retain delete tombstone markers for log compacted topics."),
    broker("log.cleaner.max.compaction.lag.ms", T::Long, Some(LONG_MAX), V::AtLeast(1),
        "The default maximum time a message will remain ineligible for compaction."),
    broker("log.cleaner.min.cleanable.ratio", T::Double, Some("0.5"), V::DoubleBetween(0.0, 1.0),
        "The default minimum ratio of dirty log to total log for a log to be eligible for cleaning."),
    broker("log.cleaner.min.compaction.lag.ms", T::Long, Some("0"), V::AtLeast(0),
        "The default minimum time a message will remain uncompacted in the log."),
    broker("log.cleanup.policy", T::List, Some("delete"), V::ListOf(CLEANUP_POLICIES),
        "The default cleanup policy for segments beyond the retention window."),
    broker("log.dir", T::String, None, V::None,
        "The directory in which the log data is kept (used when log.dirs is not set)."),
    broker("log.dirs", T::List, Some("./data"), V::OneDirectory,
        "The directory where the log data and cluster metadata are stored (one directory for now)."),
    broker("log.flush.interval.messages", T::Long, Some(LONG_MAX), V::AtLeast(1),
        "Under log.flush.policy=interval, the number of messages accumulated on a partition before it is fsync'd."),
    broker("log.flush.interval.ms", T::Long, None, V::None,
        "Under log.flush.policy=interval, the maximum time in ms a message stays unflushed; if not set, log.flush.scheduler.interval.ms is used."),
    broker("log.flush.policy", T::String, Some("always"), V::OneOf(FLUSH_POLICIES),
        "Riptide: default flush policy of topics. always: no acknowledgement and no consumer visibility before fdatasync (differs from Kafka); interval: Kafka's flush.ms / flush.messages; none: left to the OS."),
    broker("log.flush.scheduler.interval.ms", T::Long, Some(LONG_MAX), V::None,
        "The frequency in ms that the log flusher checks whether any log needs to be flushed."),
    broker("log.index.interval.bytes", T::Int, Some("4096"), V::AtLeast(0),
        "The interval with which an entry is added to the offset index."),
    broker("log.index.size.max.bytes", T::Int, Some("10485760"), V::AtLeast(4),
        "The maximum size in bytes of the offset index."),
    broker("log.message.timestamp.after.max.ms", T::Long, Some(LONG_MAX), V::AtLeast(0),
        "The allowed amount a CreateTime message timestamp may be ahead of the broker's time."),
    broker("log.message.timestamp.before.max.ms", T::Long, Some(LONG_MAX), V::AtLeast(0),
        "The allowed amount a CreateTime message timestamp may be behind the broker's time."),
    broker("log.message.timestamp.type", T::String, Some("CreateTime"), V::OneOf(TIMESTAMP_TYPES),
        "Whether the timestamp in a message is the create time or the log append time."),
    broker("log.preallocate", T::Bool, Some("false"), V::None,
        "Whether to preallocate a file when creating a new segment."),
    broker("log.retention.bytes", T::Long, Some("-1"), V::None,
        "The maximum size of a partition before old segments are deleted; -1: no limit."),
    broker("log.retention.check.interval.ms", T::Long, Some("300000"), V::AtLeast(1),
        "How often each shard deletes segments past retention.ms / retention.bytes."),
    broker("log.retention.hours", T::Int, Some("168"), V::None,
        "The number of hours to keep a log segment before deleting it, tertiary to log.retention.ms."),
    broker("log.retention.minutes", T::Int, None, V::None,
        "The number of minutes to keep a log segment before deleting it, secondary to log.retention.ms."),
    broker("log.retention.ms", T::Long, None, V::None,
        "The number of milliseconds to keep a log segment before deleting it; if not set, log.retention.minutes is used; -1: no limit."),
    broker("log.roll.hours", T::Int, Some("168"), V::AtLeast(1),
        "The maximum time before a new log segment is rolled out (hours), secondary to log.roll.ms."),
    broker("log.roll.jitter.hours", T::Int, Some("0"), V::AtLeast(0),
        "The maximum jitter subtracted from the roll time (hours), secondary to log.roll.jitter.ms."),
    broker("log.roll.jitter.ms", T::Long, None, V::None,
        "The maximum jitter subtracted from the roll time (ms); if not set, log.roll.jitter.hours is used."),
    broker("log.roll.ms", T::Long, None, V::None,
        "The maximum time before a new log segment is rolled out (ms); if not set, log.roll.hours is used."),
    broker("log.segment.bytes", T::Int, Some("1073741824"), V::AtLeast(1024 * 1024),
        "The maximum size of a single log segment file."),
    broker("log.segment.delete.delay.ms", T::Long, Some("60000"), V::AtLeast(0),
        "The amount of time to wait before deleting a file from the filesystem."),
    broker("log.segment.ms", T::Long, None, V::AtLeast(1),
        "Riptide alias (named in issue 3) for the segment roll time in ms; log.roll.ms and log.roll.hours take precedence, as Kafka knows only those."),
    broker("max.connections", T::Int, Some(INT_MAX), V::AtLeast(0),
        "The maximum number of connections the broker accepts; further connections are refused."),
    broker("message.max.bytes", T::Int, Some("1048588"), V::AtLeast(0),
        "The largest record batch size allowed by the broker (default of max.message.bytes)."),
    broker("min.insync.replicas", T::Int, Some("1"), V::AtLeast(1),
        "With acks=all, the minimum number of in-sync replicas that must acknowledge a write."),
    broker("node.id", T::Int, Some("1"), V::AtLeast(0),
        "The node id of this broker; must match meta.properties in the data directory."),
    compat("num.io.threads", T::Int, Some("8"), "Accepted for compatibility; Riptide runs one shard per core (riptide.cores)."),
    compat("num.network.threads", T::Int, Some("3"), "Accepted for compatibility; Riptide runs one shard per core (riptide.cores)."),
    broker("num.partitions", T::Int, Some("1"), V::AtLeast(1),
        "The default number of partitions per topic."),
    compat("num.recovery.threads.per.data.dir", T::Int, Some("1"), "Accepted for compatibility; each shard recovers its own partitions."),
    broker("offset.metadata.max.bytes", T::Int, Some("4096"), V::AtLeast(0),
        "The maximum size for a metadata entry associated with an offset commit."),
    broker("offsets.retention.check.interval.ms", T::Long, Some("600000"), V::AtLeast(1),
        "Frequency at which to check for expired offsets."),
    broker("offsets.retention.minutes", T::Int, Some("10080"), V::AtLeast(1),
        "Committed offsets of a group without members are kept this long (from when it became empty, or from the commit for groups that never had members)."),
    broker("offsets.topic.num.partitions", T::Int, Some("50"), V::AtLeast(1),
        "The number of partitions of the __consumer_offsets topic."),
    broker("offsets.topic.replication.factor", T::Short, Some("3"), V::AtLeast(1),
        "The replication factor of the __consumer_offsets topic (the minimum of this and the live brokers is used)."),
    compat("process.roles", T::List, Some("broker,controller"), "Accepted for compatibility; Riptide runs both roles."),
    broker("producer.id.expiration.ms", T::Int, Some("86400000"), V::AtLeast(1),
        "The time a producer id is kept after its last write before its state is expired."),
    broker("riptide.cores", T::Int, Some("0"), V::Between(0, 1024),
        "Riptide: number of shards (one per core); 0 = one per available core."),
    broker("riptide.log.cache.bytes", T::Long, Some("-1"), V::AtLeast(-1),
        "Riptide: memory for the tail cache (recent batches kept in memory, so readers of them never touch the disk), split evenly over the shards; at least 64 MiB per shard. -1: a sixteenth of the machine's physical memory. Kafka leaves this to the OS page cache; Riptide's segment files bypass it (O_DIRECT), so this is the broker's read cache."),
    broker("riptide.log.dsync.step.bytes.max", T::Long, Some("262144"), V::AtLeast(0),
        "Riptide: under flush.policy=always, a partition's flush step of at most this many bytes (one write) is written with RWF_DSYNC, durable on completion, instead of a write followed by an fdatasync, while no fdatasync runs on its shard and fewer durable writes than its sync slots (4) do: one operation and one wake-up instead of two, and no io_uring worker hand-off. Bigger steps, and steps while fdatasyncs run (many busy partitions: their syncs group), still write and fdatasync. 0: never."),
    broker("riptide.log.dsync.writes", T::Bool, Some("false"), V::None,
        "Riptide: under flush.policy=always, write segments through O_DSYNC files (each write durable on completion) instead of writes followed by fdatasync; may pay on devices with FUA."),
    broker("riptide.log.flush.shared", T::String, Some("auto"), V::OneOf(FLUSH_SHARED_MODES),
        "Riptide: let the syncs of partitions that overwrite zero-filled, already durable blocks share one device cache flush per shard (one fdatasync for many partitions). auto: on for ext4 and XFS data directories, where an fdatasync flushes the whole device cache and such overwrites change no metadata; true forces it on (only safe on such filesystems); false: every partition pays its own fdatasync."),
    broker("riptide.log.write.linger.ms", T::Long, Some("5"), V::AtLeast(0),
        "Riptide: under flush.policy none or interval, appended batches wait in memory up to this long (or until 256 KiB are pending) before they are written to the segment file, so small produce requests share one write. Such batches are acknowledged before they are written either way; a crash of the process loses what is not yet written (with Kafka's page cache it would survive a process crash, not a power cut). 0 writes at once. No effect under always, where the acknowledgement waits for the write and the sync."),
    broker("riptide.log.zero.fill.sync.bytes.max", T::Long, Some("131072"), V::AtLeast(0),
        "Riptide: under flush.policy=always, a partition whose fdatasyncs cover less than this many bytes on average grows its segments by writing zeros one step ahead of the data (every data write then overwrites written blocks: no metadata to sync, syncs can be shared) instead of by fallocate (no extra device writes). 0 turns zero fills off."),
    broker("riptide.pin", T::Bool, Some("true"), V::None,
        "Riptide: pin each shard to its core."),
    compat("socket.receive.buffer.bytes", T::Int, Some("102400"), "Accepted for compatibility; Riptide uses the OS default."),
    broker("socket.request.max.bytes", T::Int, Some("104857600"), V::AtLeast(1),
        "The maximum number of bytes in a request; larger size prefixes close the connection."),
    compat("socket.send.buffer.bytes", T::Int, Some("102400"), "Accepted for compatibility; Riptide uses the OS default."),
    compat("transaction.state.log.min.isr", T::Int, Some("2"), "Accepted for compatibility; transactions are not implemented yet."),
    compat("transaction.state.log.num.partitions", T::Int, Some("50"), "Accepted for compatibility; transactions are not implemented yet."),
    compat("transaction.state.log.replication.factor", T::Short, Some("3"), "Accepted for compatibility; transactions are not implemented yet."),
    broker("unclean.leader.election.enable", T::Bool, Some("false"), V::None,
        "Whether replicas not in the ISR may be elected leader as a last resort, at the risk of data loss."),
];

/// The registry entry of a broker key.
pub fn broker_def(name: &str) -> Option<&'static ConfigDef> {
    BROKER_CONFIGS
        .binary_search_by(|d| d.name.cmp(name))
        .ok()
        .map(|i| &BROKER_CONFIGS[i])
}

/// The registry entry of a topic key.
pub fn topic_def(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS
        .binary_search_by(|d| d.name.cmp(name))
        .ok()
        .map(|i| &TOPIC_CONFIGS[i])
}

/// The group of broker keys that configure the same thing as `name`, in precedence order
/// (Kafka `DynamicBrokerConfig.brokerConfigSynonyms`): `log.retention.{ms,minutes,hours}`,
/// `log.roll.{ms,hours}`, `log.roll.jitter.{ms,hours}`, `log.flush.interval.ms` →
/// `log.flush.scheduler.interval.ms`; any other key is its own group.
pub fn broker_synonym_group(name: &'static str) -> Vec<&'static str> {
    for def in TOPIC_CONFIGS {
        if def.synonyms.len() > 1 && def.synonyms.iter().any(|s| s.name == name) {
            return def.synonyms.iter().map(|s| s.name).collect();
        }
    }
    vec![name]
}

/// The config reference as Markdown tables (broker keys, then topic keys), generated from the
/// registry so the README cannot drift from the code.
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "### Broker configs\n\n| Key | Type | Default | Description |\n|---|---|---|---|\n",
    );
    for def in BROKER_CONFIGS {
        let default = def.default.unwrap_or("(none)");
        out.push_str(&format!(
            "| `{}` | {:?} | `{}` | {} |\n",
            def.name, def.ty, default, def.doc
        ));
    }
    out.push_str("\n### Topic configs\n\n| Key | Type | Default | Broker synonyms | Description |\n|---|---|---|---|---|\n");
    for def in TOPIC_CONFIGS {
        let synonyms: Vec<String> = def
            .synonyms
            .iter()
            .map(|s| format!("`{}`", s.name))
            .collect();
        let default = def.default.unwrap_or("(none)");
        out.push_str(&format!(
            "| `{}` | {:?} | `{}` | {} | {} |\n",
            def.name,
            def.ty,
            default,
            synonyms.join(", "),
            def.doc
        ));
    }
    out
}
