//! Tests of the registry, server.properties loading, synonyms and DescribeConfigs.

use super::registry::{BROKER_CONFIGS, TOPIC_CONFIGS};
use super::*;

fn broker(text: &str) -> BrokerConfig {
    BrokerConfig::from_properties_str(text).unwrap().0
}

#[test]
fn registry_is_sorted_and_defaults_parse_and_validate() {
    for table in [BROKER_CONFIGS, TOPIC_CONFIGS] {
        for pair in table.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} before {}",
                pair[0].name,
                pair[1].name
            );
        }
        for def in table {
            if let Some(raw) = def.default {
                let value = parse_value(def, raw).unwrap_or_else(|e| panic!("{}: {e}", def.name));
                // Defaults are written in Kafka's canonical form.
                assert_eq!(value.to_kafka_string(), raw, "{}", def.name);
            }
        }
    }
    for def in TOPIC_CONFIGS {
        assert!(def.default.is_some(), "{}", def.name);
        for synonym in def.synonyms {
            assert!(
                broker_def(synonym.name).is_some(),
                "{} -> {}",
                def.name,
                synonym.name
            );
        }
    }
}

#[test]
fn broker_defaults_match_issue_and_kafka() {
    let b = BrokerConfig::new();
    assert_eq!(b.node_id(), shards::NodeId(1));
    assert_eq!(
        b.listeners(),
        vec![Listener {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9092
        }]
    );
    assert_eq!(b.advertised_listeners(), b.listeners());
    assert_eq!(b.data_dir(), PathBuf::from("./data"));
    assert_eq!(b.num_partitions(), 1);
    assert_eq!(b.default_replication_factor(), 1);
    assert!(b.auto_create_topics_enable());
    assert_eq!(b.message_max_bytes(), 1048588);
    assert_eq!(b.socket_request_max_bytes(), 104857600);
    assert_eq!(b.max_connections(), i32::MAX);
    assert_eq!(b.connections_max_idle_ms(), 600000);
    assert_eq!(b.producer_id_expiration_ms(), 86400000);
    assert_eq!(b.offsets_topic_num_partitions(), 50);
    assert_eq!(b.offsets_topic_replication_factor(1), 1);
    assert_eq!(b.offsets_topic_replication_factor(5), 3);
    assert_eq!(b.group_initial_rebalance_delay_ms(), 3000);
    assert_eq!(b.log_flush_policy(), FlushPolicy::Always);
    assert_eq!(b.cores(), None);
    assert!(b.pin());
    let t = b.topic_defaults();
    assert_eq!(t.retention_ms(), 168 * 3600 * 1000);
    assert_eq!(t.segment_ms(), 168 * 3600 * 1000);
    assert_eq!(t.segment_bytes(), 1 << 30);
    assert_eq!(t.retention_bytes(), -1);
    assert_eq!(t.max_message_bytes(), 1048588);
    assert_eq!(t.flush_ms(), i64::MAX);
    assert_eq!(t.flush_messages(), i64::MAX);
    assert_eq!(
        t.cleanup_policy(),
        CleanupPolicy {
            delete: true,
            compact: false
        }
    );
    assert_eq!(t.message_timestamp_type(), TimestampType::CreateTime);
    assert_eq!(t.min_insync_replicas(), 1);
    assert_eq!(t.index_interval_bytes(), 4096);
}

#[test]
fn invalid_values_name_the_key() {
    let cases = [
        ("num.partitions=0", "num.partitions"),
        ("node.id=abc", "node.id"),
        ("auto.create.topics.enable=yes", "auto.create.topics.enable"),
        ("log.flush.policy=sometimes", "log.flush.policy"),
        ("riptide.log.flush.shared=maybe", "riptide.log.flush.shared"),
        ("riptide.log.cache.bytes=-2", "riptide.log.cache.bytes"),
        (
            "riptide.log.write.linger.ms=-1",
            "riptide.log.write.linger.ms",
        ),
        ("listeners=PLAINTEXT://host", "listeners"),
        ("listeners=PLAINTEXT://a:1,PLAINTEXT://b:2", "listeners"),
        ("log.dirs=/a,/b", "log.dirs"),
        ("log.segment.bytes=1000", "log.segment.bytes"),
        ("log.retention.ms=0", "log.retention.ms"),
        (
            "log.cleaner.min.cleanable.ratio=1.5",
            "log.cleaner.min.cleanable.ratio",
        ),
        ("log.cleanup.policy=delete,shred", "log.cleanup.policy"),
        (
            "advertised.listeners=PLAINTEXT://0.0.0.0:9092",
            "advertised.listeners",
        ),
    ];
    for (text, key) in cases {
        let err = BrokerConfig::from_properties_str(text).unwrap_err();
        assert!(err.to_string().contains(key), "{text}: {err}");
        match err {
            Error::InvalidConfig { key: k, .. } => assert_eq!(k, key),
            other => panic!("{text}: unexpected {other:?}"),
        }
    }
}

#[test]
fn unknown_and_ignored_keys_are_warnings() {
    let (config, warnings) =
        BrokerConfig::from_properties_str("no.such.key=1\nnum.io.threads=8\nnum.partitions=3\n")
            .unwrap();
    assert_eq!(config.num_partitions(), 3);
    let keys: Vec<&str> = warnings.iter().map(|w| w.key.as_str()).collect();
    assert_eq!(keys, vec!["no.such.key", "num.io.threads"]);
    assert!(!config.is_set("no.such.key"));
}

#[test]
fn overrides_apply_after_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.properties");
    std::fs::write(&path, "node.id=7\nlog.dirs=/var/lib/x\n").unwrap();
    let overrides = vec![
        BrokerConfig::parse_override("node.id=9").unwrap(),
        BrokerConfig::parse_override("riptide.cores=2").unwrap(),
    ];
    let (config, warnings) = BrokerConfig::load(Some(&path), &overrides).unwrap();
    assert!(warnings.is_empty());
    assert_eq!(config.node_id(), shards::NodeId(9));
    assert_eq!(config.cores(), Some(2));
    assert_eq!(config.data_dir(), PathBuf::from("/var/lib/x"));
    assert!(BrokerConfig::parse_override("novalue").is_err());
    let bad = vec![("message.max.bytes".to_string(), "-5".to_string())];
    let err = BrokerConfig::load(Some(&path), &bad).unwrap_err();
    assert!(err.to_string().contains("message.max.bytes"), "{err}");
}

#[test]
fn log_dir_is_used_only_without_log_dirs() {
    assert_eq!(broker("log.dir=/x").data_dir(), PathBuf::from("/x"));
    assert_eq!(
        broker("log.dir=/x\nlog.dirs=/y").data_dir(),
        PathBuf::from("/y")
    );
}

#[test]
fn retention_precedence_ms_over_minutes_over_hours() {
    let hours = broker("log.retention.hours=2");
    assert_eq!(hours.topic_defaults().retention_ms(), 2 * 3_600_000);
    let minutes = broker("log.retention.hours=2\nlog.retention.minutes=3");
    assert_eq!(minutes.topic_defaults().retention_ms(), 3 * 60_000);
    let ms = broker("log.retention.hours=2\nlog.retention.minutes=3\nlog.retention.ms=4");
    assert_eq!(ms.topic_defaults().retention_ms(), 4);
    let unlimited = broker("log.retention.hours=-5");
    assert_eq!(unlimited.topic_defaults().retention_ms(), -1);
    let roll = broker("log.roll.hours=1");
    assert_eq!(roll.topic_defaults().segment_ms(), 3_600_000);
    let roll_ms = broker("log.roll.hours=1\nlog.roll.ms=500");
    assert_eq!(roll_ms.topic_defaults().segment_ms(), 500);
    let alias = broker("log.segment.ms=900");
    assert_eq!(alias.topic_defaults().segment_ms(), 900);
    let alias_loses = broker("log.segment.ms=900\nlog.roll.hours=2");
    assert_eq!(alias_loses.topic_defaults().segment_ms(), 2 * 3_600_000);
    let flush = broker("log.flush.scheduler.interval.ms=700");
    assert_eq!(flush.topic_defaults().flush_ms(), 700);
    let flush_ms = broker("log.flush.scheduler.interval.ms=700\nlog.flush.interval.ms=50");
    assert_eq!(flush_ms.topic_defaults().flush_ms(), 50);
}

#[test]
fn broker_synonyms_feed_topic_defaults_and_topic_overrides_win() {
    let b = broker(
        "log.segment.bytes=2097152\nmessage.max.bytes=5000\nlog.cleanup.policy=compact\n\
         log.message.timestamp.type=LogAppendTime\nlog.flush.policy=interval\n\
         log.flush.interval.messages=10\nlog.retention.bytes=99\nlog.index.interval.bytes=100\n\
         min.insync.replicas=2",
    );
    let t = b.topic_defaults();
    assert_eq!(t.segment_bytes(), 2097152);
    assert_eq!(t.max_message_bytes(), 5000);
    assert_eq!(
        t.cleanup_policy(),
        CleanupPolicy {
            delete: false,
            compact: true
        }
    );
    assert_eq!(t.message_timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(t.flush_policy(), FlushPolicy::Interval);
    assert_eq!(t.flush_messages(), 10);
    assert_eq!(t.retention_bytes(), 99);
    assert_eq!(t.index_interval_bytes(), 100);
    assert_eq!(t.min_insync_replicas(), 2);

    let topic = TopicConfig::from_entries([
        ("segment.bytes", "3145728"),
        ("flush.policy", "none"),
        ("cleanup.policy", "compact,delete"),
        ("retention.ms", "1000"),
    ])
    .unwrap();
    let e = topic.resolve(&b);
    assert_eq!(e.segment_bytes(), 3145728);
    assert_eq!(e.flush_policy(), FlushPolicy::None);
    assert_eq!(
        e.cleanup_policy(),
        CleanupPolicy {
            delete: true,
            compact: true
        }
    );
    assert_eq!(e.retention_ms(), 1000);
    assert_eq!(e.max_message_bytes(), 5000);
}

#[test]
fn topic_config_errors_are_typed() {
    assert!(matches!(
        TopicConfig::validate_entry("retention.mss", "1"),
        Err(Error::UnknownConfig { key }) if key == "retention.mss"
    ));
    // Broker names are not topic names.
    assert!(matches!(
        TopicConfig::validate_entry("log.retention.ms", "1"),
        Err(Error::UnknownConfig { .. })
    ));
    for (key, value) in [
        ("retention.ms", "-2"),
        ("segment.bytes", "10"),
        ("cleanup.policy", "delete,nope"),
        ("flush.policy", "Always"),
        ("message.timestamp.type", "createtime"),
        ("min.insync.replicas", "0"),
        ("max.message.bytes", "x"),
        ("min.cleanable.dirty.ratio", "NaN"),
    ] {
        match TopicConfig::validate_entry(key, value) {
            Err(Error::InvalidConfig { key: k, .. }) => assert_eq!(k, key),
            other => panic!("{key}={value}: {other:?}"),
        }
    }
    let mut t = TopicConfig::new();
    assert!(t.delete("nope").is_err());
    t.set("min.compaction.lag.ms", "10").unwrap();
    t.set("max.compaction.lag.ms", "5").unwrap();
    assert!(matches!(
        t.validate_with(&BrokerConfig::new()),
        Err(Error::InvalidConfig { .. })
    ));
    t.delete("min.compaction.lag.ms").unwrap();
    t.validate_with(&BrokerConfig::new()).unwrap();
}

fn find<'a>(entries: &'a [DescribedConfig], name: &str) -> &'a DescribedConfig {
    entries
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("{name} missing"))
}

#[test]
fn describe_topic_sources_and_synonyms() {
    let b = broker("log.segment.bytes=2097152\nlog.retention.ms=5000\nlog.retention.hours=1");
    let mut topic = TopicConfig::new();
    topic.set("cleanup.policy", "compact").unwrap();
    let all = topic.describe(&b, None, true, true);
    assert_eq!(all.len(), TOPIC_CONFIGS.len());

    let cleanup = find(&all, "cleanup.policy");
    assert_eq!(cleanup.source, ConfigSource::DynamicTopicConfig);
    assert_eq!(cleanup.source.wire_id(), 1);
    assert_eq!(cleanup.value.as_deref(), Some("compact"));
    let names: Vec<(&str, ConfigSource)> = cleanup
        .synonyms
        .iter()
        .map(|s| (s.name.as_str(), s.source))
        .collect();
    assert_eq!(
        names,
        vec![
            ("cleanup.policy", ConfigSource::DynamicTopicConfig),
            ("log.cleanup.policy", ConfigSource::DefaultConfig)
        ]
    );
    assert!(!cleanup.read_only);
    assert!(cleanup.documentation.is_some());

    let segment = find(&all, "segment.bytes");
    assert_eq!(segment.source, ConfigSource::StaticBrokerConfig);
    assert_eq!(segment.source.wire_id(), 4);
    assert_eq!(segment.value.as_deref(), Some("2097152"));
    assert_eq!(segment.synonyms[0].value.as_deref(), Some("2097152"));
    assert_eq!(segment.synonyms[1].source, ConfigSource::DefaultConfig);
    assert_eq!(segment.synonyms[1].value.as_deref(), Some("1073741824"));

    let retention = find(&all, "retention.ms");
    assert_eq!(retention.source, ConfigSource::StaticBrokerConfig);
    assert_eq!(retention.value.as_deref(), Some("5000"));
    let names: Vec<(&str, ConfigSource)> = retention
        .synonyms
        .iter()
        .map(|s| (s.name.as_str(), s.source))
        .collect();
    assert_eq!(
        names,
        vec![
            ("log.retention.ms", ConfigSource::StaticBrokerConfig),
            ("log.retention.hours", ConfigSource::StaticBrokerConfig),
            ("log.retention.hours", ConfigSource::DefaultConfig),
        ]
    );

    let flush = find(&all, "flush.policy");
    assert_eq!(flush.source, ConfigSource::DefaultConfig);
    assert_eq!(flush.source.wire_id(), 5);
    assert_eq!(flush.value.as_deref(), Some("always"));

    let ratio = find(&all, "min.cleanable.dirty.ratio");
    assert_eq!(ratio.value.as_deref(), Some("0.5"));
    assert_eq!(ratio.config_type.wire_id(), 6);
}

#[test]
fn describe_topic_keeps_kafkas_drop_while_quirk() {
    // Only log.retention.hours is set: the value follows it, but (as in Kafka) the synonym
    // list is cut before `log.retention.ms`, so the source is DEFAULT_CONFIG.
    let b = broker("log.retention.hours=24");
    let all = TopicConfig::new().describe(&b, Some(&["retention.ms"]), true, false);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].value.as_deref(), Some("86400000"));
    assert_eq!(all[0].source, ConfigSource::DefaultConfig);
    assert!(all[0].synonyms.is_empty());
    assert!(all[0].documentation.is_none());
}

#[test]
fn describe_without_synonyms_still_reports_source() {
    let mut topic = TopicConfig::new();
    topic.set("retention.ms", " 1234 ").unwrap();
    let all = topic.describe(
        &BrokerConfig::new(),
        Some(&["retention.ms", "unknown"]),
        false,
        false,
    );
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].source, ConfigSource::DynamicTopicConfig);
    assert_eq!(all[0].value.as_deref(), Some("1234"));
    assert!(all[0].synonyms.is_empty());
}

#[test]
fn describe_broker_sources() {
    let b = broker("num.partitions=4\nlog.retention.hours=10");
    let all = b.describe(None, true, false);
    assert_eq!(all.len(), BROKER_CONFIGS.len());
    let partitions = find(&all, "num.partitions");
    assert_eq!(partitions.source, ConfigSource::StaticBrokerConfig);
    assert_eq!(partitions.value.as_deref(), Some("4"));
    assert!(partitions.read_only);
    let hours = find(&all, "log.retention.hours");
    assert_eq!(hours.source, ConfigSource::StaticBrokerConfig);
    assert_eq!(hours.synonyms.len(), 2);
    let ms = find(&all, "log.retention.ms");
    assert_eq!(ms.value, None);
    assert_eq!(ms.source, ConfigSource::DefaultConfig);
    let listeners = find(&all, "listeners");
    assert_eq!(
        listeners.value.as_deref(),
        Some("PLAINTEXT://127.0.0.1:9092")
    );
    assert_eq!(listeners.source, ConfigSource::DefaultConfig);
    assert_eq!(listeners.config_type.wire_id(), 7);
}

#[test]
fn listener_parsing() {
    let l = Listener::parse("PLAINTEXT://[::1]:19092").unwrap();
    assert_eq!((l.host.as_str(), l.port), ("::1", 19092));
    let l = Listener::parse("INTERNAL_2://:9093").unwrap();
    assert_eq!(
        (l.name.as_str(), l.host.as_str(), l.port),
        ("INTERNAL_2", "", 9093)
    );
    assert!(Listener::parse("plaintext://a:1").is_err());
    assert!(Listener::parse("PLAINTEXT://a:70000").is_err());
    assert!(Listener::parse("a:1").is_err());
}

proptest::proptest! {
    #[test]
    fn arbitrary_properties_text_never_panics(text in "\\PC{0,200}") {
        let _ = BrokerConfig::from_properties_str(&text);
    }

    #[test]
    fn integer_keys_accept_exactly_their_range(n in proptest::num::i64::ANY) {
        let ok = TopicConfig::validate_entry("min.insync.replicas", &n.to_string()).is_ok();
        proptest::prop_assert_eq!(ok, (1..=i64::from(i32::MAX)).contains(&n));
        let ok = TopicConfig::validate_entry("retention.ms", &n.to_string()).is_ok();
        proptest::prop_assert_eq!(ok, n >= -1);
    }
}

#[test]
fn reference_lists_every_key_once() {
    let text = reference_markdown();
    let (brokers, topics) = text.split_once("### Topic configs").unwrap();
    for (section, table) in [(brokers, BROKER_CONFIGS), (topics, TOPIC_CONFIGS)] {
        for def in table {
            let row = format!("\n| `{}` |", def.name);
            assert_eq!(section.matches(&row).count(), 1, "{}", def.name);
        }
        assert_eq!(section.matches("\n| `").count(), table.len());
    }
}

#[test]
fn zero_fill_threshold_defaults_to_128_kib_and_can_be_turned_off() {
    assert_eq!(broker("").log_zero_fill_sync_bytes_max(), 128 << 10);
    assert_eq!(
        broker("riptide.log.zero.fill.sync.bytes.max=0").log_zero_fill_sync_bytes_max(),
        0
    );
    assert_eq!(
        shards::log::LogConfig::default().zero_fill_sync_bytes_max,
        broker("").log_zero_fill_sync_bytes_max(),
        "the broker default and the engine default must agree"
    );
}

#[test]
fn tail_cache_defaults_to_a_share_of_memory_and_a_set_total_is_split_over_the_shards() {
    let settings =
        |text: &str| crate::broker::settings::BrokerSettings::from_config(broker(text)).unwrap();
    assert_eq!(broker("").log_cache_bytes(), None);
    assert_eq!(
        broker("riptide.log.cache.bytes=1073741824").log_cache_bytes(),
        Some(1 << 30)
    );
    assert_eq!(
        settings("riptide.log.cache.bytes=1073741824\nriptide.cores=4").tail_cache_bytes_per_shard,
        256 << 20
    );
    assert!(settings("riptide.cores=2").tail_cache_bytes_per_shard >= 64 << 20);
}

#[test]
fn dsync_steps_default_to_256_kib_and_reach_the_log_config() {
    let log_config = |text: &str| {
        crate::broker::settings::BrokerSettings::from_config(broker(text))
            .unwrap()
            .log_config(&Default::default())
    };
    assert_eq!(broker("").log_dsync_step_bytes_max(), 256 << 10);
    assert_eq!(log_config("").dsync_step_bytes_max, 256 << 10);
    assert_eq!(
        shards::log::LogConfig::default().dsync_step_bytes_max,
        256 << 10,
        "the broker default and the engine default must agree"
    );
    assert_eq!(
        log_config("riptide.log.dsync.step.bytes.max=0").dsync_step_bytes_max,
        0
    );
}

#[test]
fn write_linger_defaults_to_5_ms_and_reaches_the_log_config() {
    assert_eq!(broker("").log_write_linger_ms(), 5);
    assert_eq!(
        broker("riptide.log.write.linger.ms=0").log_write_linger_ms(),
        0
    );
    let settings = crate::broker::settings::BrokerSettings::from_config(broker(
        "riptide.log.write.linger.ms=12",
    ))
    .unwrap();
    assert_eq!(settings.log_config(&Default::default()).write_linger_ms, 12);
}
