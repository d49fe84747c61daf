//! Tests of the metadata records, image, log (replay, snapshots, torn tails), meta.properties
//! and the store's admin operations.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use shards::{Error, LeaderEpoch, NodeId, ShardId, TopicId};
use uuid::Uuid;

use super::log::test_encode_batch;
use super::*;
use crate::config::{BrokerConfig, CleanupPolicy};

fn never() -> MetadataLogOptions {
    MetadataLogOptions {
        snapshot_interval_records: u64::MAX,
    }
}

fn every(n: u64) -> MetadataLogOptions {
    MetadataLogOptions {
        snapshot_interval_records: n,
    }
}

fn meta_dir(data: &Path) -> PathBuf {
    data.join(METADATA_DIR_NAME)
}

// ---- a deterministic generator of valid record batches ----

#[derive(Clone, Debug)]
enum Op {
    CreateTopic { partitions: u8, with_config: bool },
    DeleteTopic(usize),
    AddPartition(usize),
    SetConfig(usize, u8, Option<u16>),
    ChangeLeader(usize, u8, bool),
    ProducerIds(u16),
    RegisterBroker(u8),
    Feature(i16),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u8..4, any::<bool>()).prop_map(|(partitions, with_config)| Op::CreateTopic { partitions, with_config }),
        1 => any::<usize>().prop_map(Op::DeleteTopic),
        1 => any::<usize>().prop_map(Op::AddPartition),
        2 => (any::<usize>(), 0u8..3, proptest::option::of(0u16..1000)).prop_map(|(t, k, v)| Op::SetConfig(t, k, v)),
        2 => (any::<usize>(), any::<u8>(), any::<bool>()).prop_map(|(t, p, isr)| Op::ChangeLeader(t, p, isr)),
        1 => (1u16..2000).prop_map(Op::ProducerIds),
        1 => (1u8..4).prop_map(Op::RegisterBroker),
        1 => (0i16..4).prop_map(Op::Feature),
    ]
}

/// Turns `op` into one batch of records valid against `image` (empty if the op does not
/// apply); topic ids come from `counter` so two runs produce the same records.
fn records_for(op: &Op, image: &MetadataImage, counter: &mut u128) -> Vec<MetadataRecord> {
    let topics: Vec<&TopicImage> = image.topics().collect();
    let pick = |i: usize| (!topics.is_empty()).then(|| topics[i % topics.len()]);
    *counter += 1;
    match op {
        Op::CreateTopic {
            partitions,
            with_config,
        } => {
            let topic_id = TopicId(Uuid::from_u128(*counter + 1000));
            let name = format!("t{counter}");
            let mut out = vec![MetadataRecord::Topic(TopicRecord {
                name: name.clone(),
                topic_id,
            })];
            if *with_config {
                out.push(MetadataRecord::Config(ConfigRecord {
                    resource_type: ConfigResourceType::Topic,
                    resource_name: name,
                    name: "retention.ms".into(),
                    value: Some("1000".into()),
                }));
            }
            for p in 0..i32::from(*partitions) {
                out.push(partition_record(topic_id, p));
                out.push(MetadataRecord::Placement(PlacementRecord {
                    topic_id,
                    partition: p,
                    shard: ShardId((p % 3) as u16),
                }));
            }
            out
        }
        Op::DeleteTopic(i) => pick(*i)
            .map(|t| {
                vec![MetadataRecord::RemoveTopic(RemoveTopicRecord {
                    topic_id: t.id,
                })]
            })
            .unwrap_or_default(),
        Op::AddPartition(i) => pick(*i)
            .map(|t| vec![partition_record(t.id, t.partitions.len() as i32)])
            .unwrap_or_default(),
        Op::SetConfig(i, key, value) => pick(*i)
            .map(|t| {
                let name = ["retention.ms", "segment.bytes", "cleanup.policy"][usize::from(*key)];
                vec![MetadataRecord::Config(ConfigRecord {
                    resource_type: ConfigResourceType::Topic,
                    resource_name: t.name.clone(),
                    name: name.into(),
                    value: value.map(|v| v.to_string()),
                })]
            })
            .unwrap_or_default(),
        Op::ChangeLeader(i, p, isr) => pick(*i)
            .map(|t| {
                let partition = i32::from(*p) % t.partitions.len() as i32;
                vec![MetadataRecord::PartitionChange(PartitionChangeRecord {
                    topic_id: t.id,
                    partition,
                    leader: Some(NodeId(1)),
                    isr: isr.then(|| vec![NodeId(1)]),
                    replicas: None,
                })]
            })
            .unwrap_or_default(),
        Op::ProducerIds(size) => {
            let next = image.producer_ids().next_producer_id + i64::from(*size);
            vec![MetadataRecord::ProducerIds(ProducerIdsRecord {
                broker_id: NodeId(1),
                broker_epoch: 3,
                next_producer_id: next,
            })]
        }
        Op::RegisterBroker(id) => vec![MetadataRecord::RegisterBroker(RegisterBrokerRecord {
            broker_id: NodeId(i32::from(*id)),
            incarnation_id: Uuid::from_u128(*counter),
            broker_epoch: *counter as i64,
            listeners: vec![BrokerEndpoint {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9092,
                security_protocol: 0,
            }],
            rack: (*id == 2).then(|| "r1".to_string()),
            fenced: *id == 3,
        })],
        Op::Feature(level) => vec![MetadataRecord::FeatureLevel(FeatureLevelRecord {
            name: "metadata.version".into(),
            feature_level: *level,
        })],
    }
}

fn partition_record(topic_id: TopicId, partition: i32) -> MetadataRecord {
    MetadataRecord::Partition(PartitionRecord {
        topic_id,
        partition,
        replicas: vec![NodeId(1)],
        isr: vec![NodeId(1)],
        leader: NodeId(1),
        leader_epoch: LeaderEpoch(0),
        partition_epoch: 0,
    })
}

/// The batches for `ops` and the live image after them.
fn batches_for(ops: &[Op]) -> (Vec<Vec<MetadataRecord>>, MetadataImage) {
    let mut image = MetadataImage::new();
    let mut counter = 0;
    let mut batches = Vec::new();
    for op in ops {
        let records = records_for(op, &image, &mut counter);
        if records.is_empty() {
            continue;
        }
        for record in &records {
            image
                .apply(record)
                .unwrap_or_else(|e| panic!("{op:?}: {e}"));
        }
        batches.push(records);
    }
    (batches, image)
}

fn write_batches(
    data: &Path,
    options: MetadataLogOptions,
    batches: &[Vec<MetadataRecord>],
) -> MetadataImage {
    let mut store = MetadataStore::open(data, NodeId(1), options).unwrap();
    for batch in batches {
        store.append(batch.clone()).unwrap();
    }
    store.image().clone()
}

fn reopen(data: &Path, options: MetadataLogOptions) -> MetadataStore {
    MetadataStore::open(data, NodeId(1), options).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Replaying the log (with or without snapshots) rebuilds exactly the live image.
    #[test]
    fn replay_equals_live_state(ops in proptest::collection::vec(op_strategy(), 1..60), interval in 1u64..12) {
        let (batches, live) = batches_for(&ops);
        let full = tempfile::tempdir().unwrap();
        let snap = tempfile::tempdir().unwrap();
        prop_assert_eq!(&write_batches(full.path(), never(), &batches), &live);
        prop_assert_eq!(&write_batches(snap.path(), every(interval), &batches), &live);
        let replayed = reopen(full.path(), never());
        prop_assert_eq!(replayed.image(), &live);
        prop_assert_eq!(replayed.recovery_report().snapshot_offset, None);
        let from_snapshot = reopen(snap.path(), every(interval));
        prop_assert_eq!(from_snapshot.image(), &live);
        prop_assert_eq!(from_snapshot.next_offset(), replayed.next_offset());
    }

    /// A snapshot's records rebuild the image they were taken from.
    #[test]
    fn snapshot_records_rebuild_the_image(ops in proptest::collection::vec(op_strategy(), 1..60)) {
        let (_, live) = batches_for(&ops);
        let mut rebuilt = MetadataImage::new();
        for record in live.to_records() {
            rebuilt.apply(&record).unwrap();
        }
        prop_assert_eq!(rebuilt, live);
    }

    /// Every record decodes back to itself.
    #[test]
    fn records_round_trip(ops in proptest::collection::vec(op_strategy(), 1..30)) {
        let (batches, _) = batches_for(&ops);
        for record in batches.iter().flatten() {
            let mut bytes = Vec::new();
            record.encode(&mut bytes);
            prop_assert_eq!(&MetadataRecord::decode(&bytes).unwrap(), record);
            // Any strict prefix is an error, never a panic.
            for cut in 0..bytes.len() {
                prop_assert!(MetadataRecord::decode(&bytes[..cut]).is_err());
            }
        }
    }

    /// Arbitrary bytes never panic the decoder.
    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = MetadataRecord::decode(&bytes);
    }

    #[test]
    fn kafka_uuid_strings_round_trip(n in any::<u128>()) {
        let uuid = Uuid::from_u128(n);
        let text = kafka_uuid_string(&uuid);
        prop_assert_eq!(text.len(), 22);
        prop_assert_eq!(parse_kafka_uuid(&text), Some(uuid));
    }
}

#[test]
fn kafka_uuid_known_values() {
    // Kafka's Uuid.ZERO_UUID and Uuid.ONE_UUID (the metadata topic id).
    assert_eq!(
        kafka_uuid_string(&Uuid::from_u128(0)),
        "AAAAAAAAAAAAAAAAAAAAAA"
    );
    assert_eq!(
        kafka_uuid_string(&Uuid::from_u128(1)),
        "AAAAAAAAAAAAAAAAAAAAAQ"
    );
    assert_eq!(
        parse_kafka_uuid("AAAAAAAAAAAAAAAAAAAAAR"),
        None,
        "non-zero spare bits"
    );
    assert_eq!(parse_kafka_uuid("AAAA"), None);
    assert_eq!(parse_kafka_uuid("AAAAAAAAAAAAAAAAAAAAA*"), None);
}

fn sample_ops() -> Vec<Op> {
    let mut ops = Vec::new();
    for i in 0..10 {
        ops.push(Op::CreateTopic {
            partitions: 2,
            with_config: i % 2 == 0,
        });
        ops.push(Op::ChangeLeader(i, 1, true));
        ops.push(Op::ProducerIds(10));
    }
    ops
}

fn segments(data: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(meta_dir(data))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    out.sort();
    out
}

fn snapshots(data: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(meta_dir(data))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "checkpoint"))
        .collect();
    out.sort();
    out
}

#[test]
fn torn_tail_is_truncated_and_the_log_continues() {
    let (batches, _) = batches_for(&sample_ops());
    let dir = tempfile::tempdir().unwrap();
    let (head, last) = batches.split_at(batches.len() - 1);
    let before_last = write_batches(dir.path(), never(), head);
    let complete = {
        let mut store = reopen(dir.path(), never());
        store.append(last[0].clone()).unwrap();
        store.image().clone()
    };
    assert_ne!(before_last, complete);
    let segment = segments(dir.path()).pop().unwrap();
    let len = fs::metadata(&segment).unwrap().len();
    // Cut into the last batch: a write torn by a crash.
    OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let mut store = reopen(dir.path(), never());
    assert_eq!(store.image(), &before_last);
    assert!(store.recovery_report().truncated_bytes > 0);
    let frame_len = test_encode_batch(0, &last[0]).len() as u64;
    assert_eq!(fs::metadata(&segment).unwrap().len(), len - frame_len);
    // The log accepts appends after the cut and replays them.
    store.append(last[0].clone()).unwrap();
    assert_eq!(store.image(), &complete);
    drop(store);
    assert_eq!(reopen(dir.path(), never()).image(), &complete);
    assert_eq!(
        reopen(dir.path(), never())
            .recovery_report()
            .truncated_bytes,
        0
    );
}

#[test]
fn garbage_appended_to_the_tail_is_truncated() {
    let (batches, live) = batches_for(&sample_ops());
    let dir = tempfile::tempdir().unwrap();
    write_batches(dir.path(), never(), &batches);
    let segment = segments(dir.path()).pop().unwrap();
    let len = fs::metadata(&segment).unwrap().len();
    // A frame header claiming a huge body, then junk: must not allocate it, must truncate.
    let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
    file.write_all(&[0x7f, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7])
        .unwrap();
    drop(file);
    let store = reopen(dir.path(), never());
    assert_eq!(store.image(), &live);
    assert_eq!(store.recovery_report().truncated_bytes, 11);
    assert_eq!(fs::metadata(&segment).unwrap().len(), len);
}

#[test]
fn corruption_before_the_tail_is_an_error() {
    let (batches, _) = batches_for(&sample_ops());
    let dir = tempfile::tempdir().unwrap();
    write_batches(dir.path(), never(), &batches);
    let segment = segments(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&segment).unwrap();
    bytes[20] ^= 0xff;
    fs::write(&segment, &bytes).unwrap();
    // Only one segment: it is the tail, so everything from the bad batch is cut (Kafka does the
    // same). Make it a non-tail segment by adding a later one.
    let next = meta_dir(dir.path()).join(format!("{:020}.log", 10_000));
    fs::write(&next, b"").unwrap();
    match MetadataStore::open(dir.path(), NodeId(1), never()) {
        Err(Error::MetadataCorrupt { .. }) => {}
        other => panic!(
            "expected corruption, got {:?}",
            other.map(|s| s.next_offset())
        ),
    }
}

#[test]
fn snapshots_roll_segments_and_old_files_are_removed() {
    let (batches, live) = batches_for(&sample_ops());
    let dir = tempfile::tempdir().unwrap();
    write_batches(dir.path(), every(5), &batches);
    let snaps = snapshots(dir.path());
    assert_eq!(snaps.len(), 2, "{snaps:?}");
    // Segments before the older kept snapshot are gone; the rest start at snapshot offsets.
    let segs = segments(dir.path());
    let first_seg: u64 = segs[0]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let older_snap: u64 = snaps[0]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        first_seg <= older_snap && first_seg > 0,
        "{segs:?} {snaps:?}"
    );
    let store = reopen(dir.path(), every(5));
    assert_eq!(store.image(), &live);
    let newest: u64 = snaps[1]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(store.recovery_report().snapshot_offset, Some(newest));
    assert_eq!(
        store.recovery_report().records_replayed,
        store.next_offset() - newest
    );
}

#[test]
fn a_corrupt_newest_snapshot_falls_back_to_the_older_one() {
    let (batches, live) = batches_for(&sample_ops());
    let dir = tempfile::tempdir().unwrap();
    write_batches(dir.path(), every(5), &batches);
    let snaps = snapshots(dir.path());
    let mut bytes = fs::read(&snaps[1]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    fs::write(&snaps[1], &bytes).unwrap();
    let store = reopen(dir.path(), every(5));
    assert_eq!(store.image(), &live);
    let older: u64 = snaps[0]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(store.recovery_report().snapshot_offset, Some(older));
}

#[test]
fn a_covered_segment_is_not_read() {
    let (batches, live) = batches_for(&sample_ops());
    let dir = tempfile::tempdir().unwrap();
    write_batches(dir.path(), every(5), &batches);
    // The first remaining segment is wholly covered by the newest snapshot: damage in it
    // does not matter while that snapshot is good.
    let first = segments(dir.path()).remove(0);
    fs::write(&first, b"garbage").unwrap();
    assert_eq!(reopen(dir.path(), every(5)).image(), &live);
}

#[test]
fn leftover_temp_snapshot_is_ignored_and_removed() {
    let (batches, live) = batches_for(&sample_ops());
    let dir = tempfile::tempdir().unwrap();
    write_batches(dir.path(), never(), &batches);
    let tmp = meta_dir(dir.path()).join(format!("{:020}.checkpoint.tmp", 3));
    fs::write(&tmp, b"half written").unwrap();
    assert_eq!(reopen(dir.path(), never()).image(), &live);
    assert!(!tmp.exists());
}

// ---- meta.properties ----

#[test]
fn meta_properties_formatted_once_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let first = MetaProperties::load_or_format(dir.path(), NodeId(3)).unwrap();
    assert_eq!(first.cluster_id.len(), 22);
    assert_eq!(first.directory_id.len(), 22);
    assert!(parse_kafka_uuid(&first.cluster_id).is_some());
    assert_ne!(first.cluster_id, first.directory_id);
    let text = fs::read_to_string(dir.path().join("meta.properties")).unwrap();
    assert!(
        text.contains("version=1") && text.contains("node.id=3"),
        "{text}"
    );
    let again = MetaProperties::load_or_format(dir.path(), NodeId(3)).unwrap();
    assert_eq!(again, first);
    let err = MetaProperties::load_or_format(dir.path(), NodeId(4)).unwrap_err();
    assert!(err.to_string().contains("node.id"), "{err}");
    fs::write(
        dir.path().join("meta.properties"),
        "version=1\nnode.id=3\ncluster.id=???\n",
    )
    .unwrap();
    assert!(matches!(
        MetaProperties::load_or_format(dir.path(), NodeId(3)),
        Err(Error::MetadataCorrupt { .. })
    ));
}

// ---- store operations ----

fn new_topic(name: &str, partitions: i32) -> NewTopic {
    NewTopic {
        name: name.into(),
        num_partitions: partitions,
        replication_factor: -1,
        ..NewTopic::default()
    }
}

#[test]
fn create_topic_defaults_placement_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerConfig::from_properties_str("num.partitions=3")
        .unwrap()
        .0;
    let mut store = reopen(dir.path(), every(4));
    let spec = NewTopic {
        configs: vec![("cleanup.policy".into(), Some("compact".into()))],
        ..new_topic("orders", -1)
    };
    let created = store.create_topic(&spec, &broker, 2, false).unwrap();
    assert_eq!((created.num_partitions, created.replication_factor), (3, 1));
    let other = store
        .create_topic(&new_topic("payments", 3), &broker, 2, false)
        .unwrap();
    let image = store.image().clone();
    let topic = image.topic_by_name("orders").unwrap();
    assert_eq!(topic.id, created.topic_id);
    assert_eq!(image.topic_by_id(other.topic_id).unwrap().name, "payments");
    let names: Vec<&str> = image.topics_by_name().map(|t| t.name.as_str()).collect();
    assert_eq!(names, vec!["orders", "payments"]);
    let p0 = &topic.partitions[&0];
    assert_eq!(
        (p0.leader, p0.leader_epoch, p0.replicas.clone()),
        (NodeId(1), LeaderEpoch(0), vec![NodeId(1)])
    );
    // Six partitions over two shards: three each.
    assert_eq!(image.shard_loads(2), vec![3, 3]);
    assert_eq!(
        image
            .topic_config("orders")
            .resolve(&broker)
            .cleanup_policy(),
        CleanupPolicy {
            delete: false,
            compact: true
        }
    );
    drop(store);
    let store = reopen(dir.path(), every(4));
    assert_eq!(store.image(), &image);
    // One shard now: every partition is owned by shard 0, placements unchanged.
    let id = created.topic_id;
    let recorded: Vec<ShardId> = (0..3)
        .map(|p| store.image().placement(id, p).unwrap())
        .collect();
    assert!(recorded.iter().any(|s| s.0 == 1));
    assert!((0..3).all(|p| store.image().owner_shard(id, p, 1) == Some(ShardId(0))));
}

#[test]
fn create_topic_validation_errors() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerConfig::new();
    let mut store = reopen(dir.path(), never());
    store
        .create_topic(&new_topic("a.b", 1), &broker, 1, false)
        .unwrap();
    let offset = store.next_offset();
    type Check = fn(&Error) -> bool;
    let cases: Vec<(NewTopic, Check)> = vec![
        (new_topic("a.b", 1), |e| matches!(e, Error::TopicExists(_))),
        (new_topic("a_b", 1), |e| {
            matches!(e, Error::InvalidTopic { .. })
        }),
        (new_topic("bad/name", 1), |e| {
            matches!(e, Error::InvalidTopic { .. })
        }),
        (new_topic("..", 1), |e| {
            matches!(e, Error::InvalidTopic { .. })
        }),
        (new_topic(&"x".repeat(250), 1), |e| {
            matches!(e, Error::InvalidTopic { .. })
        }),
        (new_topic("z", 0), |e| {
            matches!(e, Error::InvalidPartitions(_))
        }),
        (
            NewTopic {
                replication_factor: 3,
                ..new_topic("z", 1)
            },
            |e| matches!(e, Error::InvalidReplicationFactor(_)),
        ),
        (
            NewTopic {
                replication_factor: 0,
                ..new_topic("z", 1)
            },
            |e| matches!(e, Error::InvalidReplicationFactor(_)),
        ),
        (
            NewTopic {
                configs: vec![("retention.ms".into(), Some("-7".into()))],
                ..new_topic("z", 1)
            },
            |e| matches!(e, Error::InvalidConfig { key, .. } if key == "retention.ms"),
        ),
        (
            NewTopic {
                configs: vec![("no.such".into(), Some("1".into()))],
                ..new_topic("z", 1)
            },
            |e| matches!(e, Error::UnknownConfig { .. }),
        ),
        (
            NewTopic {
                configs: vec![("retention.ms".into(), None)],
                ..new_topic("z", 1)
            },
            |e| matches!(e, Error::InvalidConfig { .. }),
        ),
        (
            NewTopic {
                assignments: vec![(0, vec![NodeId(9)])],
                ..new_topic("z", -1)
            },
            |e| matches!(e, Error::InvalidReplicaAssignment(_)),
        ),
        (
            NewTopic {
                assignments: vec![(1, vec![NodeId(1)])],
                ..new_topic("z", -1)
            },
            |e| matches!(e, Error::InvalidReplicaAssignment(_)),
        ),
    ];
    for (spec, check) in cases {
        let err = store.create_topic(&spec, &broker, 1, false).unwrap_err();
        assert!(check(&err), "{}: {err:?}", spec.name);
    }
    // validate_only validates but writes nothing.
    store
        .create_topic(&new_topic("z", 2), &broker, 1, true)
        .unwrap();
    assert!(store.image().topic_by_name("z").is_none());
    assert_eq!(store.next_offset(), offset);
    let manual = NewTopic {
        assignments: vec![(1, vec![NodeId(1)]), (0, vec![NodeId(1)])],
        ..new_topic("m", -1)
    };
    assert_eq!(
        store
            .create_topic(&manual, &broker, 1, false)
            .unwrap()
            .num_partitions,
        2
    );
}

#[test]
fn delete_and_recreate_gets_a_new_id_and_drops_configs() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerConfig::new();
    let mut store = reopen(dir.path(), never());
    let spec = NewTopic {
        configs: vec![("retention.ms".into(), Some("5".into()))],
        ..new_topic("t", 2)
    };
    let first = store.create_topic(&spec, &broker, 1, false).unwrap();
    let removed = store.delete_topic("t").unwrap();
    assert_eq!((removed.id, removed.partitions.len()), (first.topic_id, 2));
    assert!(matches!(
        store.delete_topic("t"),
        Err(Error::UnknownTopic(_))
    ));
    assert!(store
        .image()
        .configs(ConfigResourceType::Topic, "t")
        .is_none());
    let second = store
        .create_topic(&new_topic("t", 1), &broker, 1, false)
        .unwrap();
    assert_ne!(second.topic_id, first.topic_id);
    assert!(store.image().topic_config("t").is_empty());
    store.delete_topic_by_id(second.topic_id).unwrap();
    assert_eq!(store.image().topic_count(), 0);
}

#[test]
fn create_partitions_grows_only() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerConfig::new();
    let mut store = reopen(dir.path(), never());
    let created = store
        .create_topic(&new_topic("t", 2), &broker, 4, false)
        .unwrap();
    assert!(matches!(
        store.create_partitions("t", 2, None, 4, false),
        Err(Error::InvalidPartitions(_))
    ));
    assert!(matches!(
        store.create_partitions("t", 1, None, 4, false),
        Err(Error::InvalidPartitions(_))
    ));
    assert!(matches!(
        store.create_partitions("u", 5, None, 4, false),
        Err(Error::UnknownTopic(_))
    ));
    assert_eq!(
        store.create_partitions("t", 5, None, 4, true).unwrap(),
        vec![2, 3, 4]
    );
    assert_eq!(
        store.image().topic_by_name("t").unwrap().partitions.len(),
        2
    );
    assert_eq!(
        store.create_partitions("t", 5, None, 4, false).unwrap(),
        vec![2, 3, 4]
    );
    assert_eq!(
        store
            .image()
            .topic_by_id(created.topic_id)
            .unwrap()
            .partitions
            .len(),
        5
    );
    assert_eq!(store.image().shard_loads(4).iter().sum::<usize>(), 5);
    assert!(store
        .image()
        .shard_loads(4)
        .iter()
        .all(|l| (1..=2).contains(l)));
    let bad = Some(vec![vec![NodeId(1)], vec![NodeId(1)]]);
    assert!(matches!(
        store.create_partitions("t", 6, bad, 4, false),
        Err(Error::InvalidReplicaAssignment(_))
    ));
}

#[test]
fn alter_configs_full_and_incremental() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerConfig::new();
    let mut store = reopen(dir.path(), never());
    let spec = NewTopic {
        configs: vec![("retention.ms".into(), Some("5".into()))],
        ..new_topic("t", 1)
    };
    store.create_topic(&spec, &broker, 1, false).unwrap();

    // Legacy AlterConfigs replaces the whole set.
    let full = vec![("segment.ms".to_string(), Some("100".to_string()))];
    store
        .alter_topic_configs("t", &full, &broker, false)
        .unwrap();
    let config = store.image().topic_config("t");
    assert_eq!(
        (config.get("retention.ms"), config.get("segment.ms")),
        (None, Some("100"))
    );

    let op = |name: &str, op, value: Option<&str>| AlterConfigOp {
        name: name.into(),
        op,
        value: value.map(str::to_string),
    };
    use AlterConfigOpType::*;
    store
        .incremental_alter_topic_configs(
            "t",
            &[
                op("cleanup.policy", Append, Some("compact")),
                op("segment.ms", Delete, None),
                op("flush.policy", Set, Some("none")),
            ],
            &broker,
            false,
        )
        .unwrap();
    let config = store.image().topic_config("t");
    assert_eq!(config.get("cleanup.policy"), Some("delete,compact"));
    assert_eq!(config.get("segment.ms"), None);
    assert_eq!(config.get("flush.policy"), Some("none"));
    store
        .incremental_alter_topic_configs(
            "t",
            &[op("cleanup.policy", Subtract, Some("delete"))],
            &broker,
            false,
        )
        .unwrap();
    assert_eq!(
        store.image().topic_config("t").get("cleanup.policy"),
        Some("compact")
    );

    let before = store.next_offset();
    for bad in [
        op("retention.ms", Append, Some("1")),
        op("retention.ms", Set, Some("x")),
        op("nope", Set, Some("1")),
        op("retention.ms", Set, None),
    ] {
        let err = store
            .incremental_alter_topic_configs("t", std::slice::from_ref(&bad), &broker, false)
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidConfig { .. } | Error::UnknownConfig { .. }
            ),
            "{bad:?}: {err:?}"
        );
    }
    // validate_only and failed requests write nothing.
    store
        .incremental_alter_topic_configs("t", &[op("retention.ms", Set, Some("9"))], &broker, true)
        .unwrap();
    assert_eq!(store.next_offset(), before);
    assert!(matches!(
        store.incremental_alter_topic_configs("u", &[], &broker, false),
        Err(Error::UnknownTopic(_))
    ));
    let image = store.image().clone();
    drop(store);
    assert_eq!(reopen(dir.path(), never()).image(), &image);
}

#[test]
fn producer_id_blocks_are_consecutive_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = reopen(dir.path(), never());
    let a = store
        .allocate_producer_id_block(PRODUCER_ID_BLOCK_SIZE)
        .unwrap();
    let b = store.allocate_producer_id_block(10).unwrap();
    assert_eq!((a.first_id, a.size, b.first_id), (0, 1000, 1000));
    assert!(store.allocate_producer_id_block(0).is_err());
    drop(store);
    let mut store = reopen(dir.path(), every(1));
    assert_eq!(store.image().producer_ids().next_producer_id, 1010);
    assert_eq!(store.allocate_producer_id_block(5).unwrap().first_id, 1010);
    drop(store);
    assert_eq!(
        reopen(dir.path(), every(1))
            .allocate_producer_id_block(1)
            .unwrap()
            .first_id,
        1015
    );
}

#[test]
fn leader_changes_bump_epochs_persistently() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerConfig::new();
    let mut store = reopen(dir.path(), never());
    let id = store
        .create_topic(&new_topic("t", 1), &broker, 1, false)
        .unwrap()
        .topic_id;
    let after = store
        .change_partition(id, 0, Some(NodeId(1)), None)
        .unwrap();
    assert_eq!(
        (after.leader_epoch, after.partition_epoch),
        (LeaderEpoch(1), 1)
    );
    let after = store
        .change_partition(id, 0, None, Some(vec![NodeId(1)]))
        .unwrap();
    assert_eq!(
        (after.leader_epoch, after.partition_epoch),
        (LeaderEpoch(1), 2)
    );
    assert!(store
        .change_partition(id, 7, Some(NodeId(1)), None)
        .is_err());
    drop(store);
    let store = reopen(dir.path(), never());
    assert_eq!(
        store.image().partition(id, 0).unwrap().leader_epoch,
        LeaderEpoch(1)
    );
}

#[test]
fn broker_registration_and_features() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = reopen(dir.path(), never());
    let incarnation = random_kafka_uuid();
    let endpoint = BrokerEndpoint {
        name: "PLAINTEXT".into(),
        host: "127.0.0.1".into(),
        port: 9092,
        security_protocol: 0,
    };
    let epoch = store
        .register_broker(incarnation, vec![endpoint.clone()], None)
        .unwrap();
    assert_eq!(
        store
            .register_broker(incarnation, vec![endpoint.clone()], None)
            .unwrap(),
        epoch
    );
    let offset = store.next_offset();
    let epoch2 = store
        .register_broker(random_kafka_uuid(), vec![endpoint], None)
        .unwrap();
    assert_eq!(epoch2, offset as i64);
    assert!(epoch2 > epoch);
    store.set_feature_level("metadata.version", 1).unwrap();
    assert_eq!(store.image().feature_level("metadata.version"), Some(1));
    assert_eq!(store.live_brokers(), vec![NodeId(1)]);
    drop(store);
    let store = reopen(dir.path(), never());
    assert_eq!(store.image().broker(NodeId(1)).unwrap().epoch, epoch2);
}

#[test]
fn failed_apply_leaves_image_and_log_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = reopen(dir.path(), never());
    let before = (store.image().clone(), store.next_offset());
    let bad = vec![
        MetadataRecord::Topic(TopicRecord {
            name: "x".into(),
            topic_id: TopicId(Uuid::from_u128(7)),
        }),
        MetadataRecord::RemoveTopic(RemoveTopicRecord {
            topic_id: TopicId(Uuid::from_u128(8)),
        }),
    ];
    assert!(matches!(store.append(bad), Err(Error::MetadataRecord(_))));
    assert_eq!((store.image().clone(), store.next_offset()), before);
    drop(store);
    assert_eq!(reopen(dir.path(), never()).image(), &before.0);
}

#[test]
fn node_id_mismatch_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    drop(reopen(dir.path(), never()));
    assert!(MetadataStore::open(dir.path(), NodeId(2), never()).is_err());
}

#[test]
fn clean_shutdown_snapshot_means_nothing_to_replay() {
    let (batches, live) = batches_for(&sample_ops());
    let dir = tempfile::tempdir().unwrap();
    write_batches(dir.path(), never(), &batches);
    let mut store = reopen(dir.path(), never());
    assert!(store.recovery_report().records_replayed > 0);
    store.snapshot().unwrap();
    drop(store);
    let store = reopen(dir.path(), never());
    assert_eq!(store.image(), &live);
    assert_eq!(store.recovery_report().records_replayed, 0);
    assert_eq!(
        store.recovery_report().snapshot_offset,
        Some(store.next_offset())
    );
}

#[test]
fn a_missing_segment_is_corruption() {
    let (batches, _) = batches_for(&sample_ops());
    let dir = tempfile::tempdir().unwrap();
    write_batches(dir.path(), never(), &batches);
    // A segment that starts past the end of the records before it: records are missing.
    let later = meta_dir(dir.path()).join(format!("{:020}.log", 10_000));
    fs::write(&later, test_encode_batch(10_000, &batches[0])).unwrap();
    assert!(matches!(
        MetadataStore::open(dir.path(), NodeId(1), never()),
        Err(Error::MetadataCorrupt { .. })
    ));
}
