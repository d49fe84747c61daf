//! The hand-written Fetch response encoder against the `kafka-protocol` crate: for every
//! version 4..=16 and random inputs, the concatenated pieces (1) decode with
//! `FetchResponse::decode` to exactly the input, field by field, records included, and
//! (2) are byte-identical to `kafka-protocol`'s own encoding of the same response.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint,
    PartitionData,
};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchResponse, TopicName};
use kafka_protocol::protocol::{Decodable, StrBytes};
use proptest::prelude::*;
use riptide::wire::encode_response;
use riptide::wire::fetch::{
    encode_fetch_response, FetchNodeEndpoint, FetchPartition, FetchResponseData, FetchTopic,
    FETCH_VERSION_MAX, FETCH_VERSION_MIN,
};
use uuid::Uuid;

fn strbytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn partition_strategy() -> impl Strategy<Value = FetchPartition> {
    (
        (
            any::<i32>(),
            any::<i16>(),
            any::<i64>(),
            any::<i64>(),
            any::<i64>(),
        ),
        proptest::option::of(proptest::collection::vec(
            (any::<i64>(), any::<i64>()),
            0..3,
        )),
        prop_oneof![Just(-1), any::<i32>()],
        proptest::option::of(prop_oneof![Just((-1, -1)), (any::<i32>(), any::<i64>())]),
        proptest::option::of(prop_oneof![Just((-1, -1)), (any::<i32>(), any::<i32>())]),
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..4),
    )
        .prop_map(
            |((index, error, hw, lso, lstart), aborted, replica, diverging, leader, records)| {
                FetchPartition {
                    partition_index: index,
                    error_code: error,
                    high_watermark: hw,
                    last_stable_offset: lso,
                    log_start_offset: lstart,
                    aborted_transactions: aborted,
                    preferred_read_replica: replica,
                    diverging_epoch: diverging,
                    current_leader: leader,
                    records: records.into_iter().map(Bytes::from).collect(),
                }
            },
        )
}

fn data_strategy() -> impl Strategy<Value = FetchResponseData> {
    let topic = (
        "\\PC{0,12}",
        any::<u128>(),
        proptest::collection::vec(partition_strategy(), 0..4),
    )
        .prop_map(|(name, id, partitions)| FetchTopic {
            name: strbytes(&name),
            topic_id: Uuid::from_u128(id),
            partitions,
        });
    let node = (
        any::<i32>(),
        "[a-z0-9.]{0,15}",
        any::<i32>(),
        proptest::option::of("[a-z]{0,5}"),
    )
        .prop_map(|(node_id, host, port, rack)| FetchNodeEndpoint {
            node_id,
            host: strbytes(&host),
            port,
            rack: rack.map(|r| strbytes(&r)),
        });
    (
        any::<i32>(),
        any::<i16>(),
        any::<i32>(),
        proptest::collection::vec(topic, 0..4),
        proptest::collection::vec(node, 0..3),
    )
        .prop_map(
            |(throttle, error, session, topics, nodes)| FetchResponseData {
                throttle_time_ms: throttle,
                error_code: error,
                session_id: session,
                topics,
                node_endpoints: nodes,
            },
        )
}

/// What `kafka-protocol` should hold after decoding `data` at `version`: fields the version
/// lacks take their defaults; tagged fields equal to their defaults are absent.
fn expected(data: &FetchResponseData, version: i16) -> FetchResponse {
    let partition = |p: &FetchPartition| {
        let mut out = PartitionData::default()
            .with_partition_index(p.partition_index)
            .with_error_code(p.error_code)
            .with_high_watermark(p.high_watermark)
            .with_last_stable_offset(p.last_stable_offset)
            .with_aborted_transactions(p.aborted_transactions.as_ref().map(|txns| {
                txns.iter()
                    .map(|&(pid, first)| {
                        AbortedTransaction::default()
                            .with_producer_id(pid.into())
                            .with_first_offset(first)
                    })
                    .collect()
            }))
            .with_records(Some(p.records.concat().into()));
        if version >= 5 {
            out.log_start_offset = p.log_start_offset;
        }
        if version >= 11 {
            out.preferred_read_replica = BrokerId(p.preferred_read_replica);
        }
        if version >= 12 {
            if let Some((epoch, end_offset)) = p.diverging_epoch {
                out.diverging_epoch = EpochEndOffset::default()
                    .with_epoch(epoch)
                    .with_end_offset(end_offset);
            }
            if let Some((leader_id, leader_epoch)) = p.current_leader {
                out.current_leader = LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(leader_id))
                    .with_leader_epoch(leader_epoch);
            }
        }
        out
    };
    let topic = |t: &FetchTopic| {
        let mut out = FetchableTopicResponse::default()
            .with_partitions(t.partitions.iter().map(partition).collect());
        if version >= 13 {
            out.topic_id = t.topic_id;
        } else {
            out.topic = TopicName(t.name.clone());
        }
        out
    };
    let mut out = FetchResponse::default()
        .with_throttle_time_ms(data.throttle_time_ms)
        .with_responses(data.topics.iter().map(topic).collect());
    if version >= 7 {
        out.error_code = data.error_code;
        out.session_id = data.session_id;
    }
    if version >= 16 {
        out.node_endpoints = data
            .node_endpoints
            .iter()
            .map(|n| {
                NodeEndpoint::default()
                    .with_node_id(BrokerId(n.node_id))
                    .with_host(n.host.clone())
                    .with_port(n.port)
                    .with_rack(n.rack.clone())
            })
            .collect();
    }
    out
}

fn check(data: &FetchResponseData, version: i16, correlation_id: i32) -> Result<(), TestCaseError> {
    let frame = encode_fetch_response(correlation_id, version, data).unwrap();
    let whole = frame.to_bytes();
    prop_assert_eq!(whole.len(), frame.total_bytes);

    // Record slices are spliced in as they are: same memory, not copies.
    let input_slices: Vec<&Bytes> = data
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .flat_map(|p| &p.records)
        .filter(|r| !r.is_empty())
        .collect();
    let spliced: Vec<&Bytes> = frame
        .pieces
        .iter()
        .filter(|piece| input_slices.iter().any(|r| r.as_ptr() == piece.as_ptr()))
        .collect();
    prop_assert_eq!(spliced.len(), input_slices.len());

    // (1) Decode with kafka-protocol and compare every field.
    let mut rest = whole.clone();
    prop_assert_eq!(rest.get_i32() as usize, whole.len() - 4);
    prop_assert_eq!(rest.get_i32(), correlation_id);
    if version >= 12 {
        prop_assert_eq!(rest.get_u8(), 0, "response header v1 tagged fields");
    }
    let decoded = FetchResponse::decode(&mut rest, version).unwrap();
    prop_assert!(rest.is_empty(), "trailing bytes at v{}", version);
    let want = expected(data, version);
    prop_assert_eq!(&decoded, &want, "v{}", version);

    // (2) Byte-identical to kafka-protocol's encoder for the same response.
    let reference = encode_response(correlation_id, ApiKey::Fetch, version, &want).unwrap();
    prop_assert_eq!(&whole, &reference, "v{}", version);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn fetch_encoder_matches_kafka_protocol(data in data_strategy(),
                                            version in FETCH_VERSION_MIN..=FETCH_VERSION_MAX,
                                            correlation_id in any::<i32>()) {
        check(&data, version, correlation_id)?;
    }
}

#[test]
fn every_version_with_one_fixed_input() {
    let data = FetchResponseData {
        throttle_time_ms: 5,
        error_code: 0,
        session_id: 77,
        topics: vec![FetchTopic {
            name: strbytes("orders"),
            topic_id: Uuid::from_u128(0x1234),
            partitions: vec![
                FetchPartition {
                    partition_index: 2,
                    high_watermark: 100,
                    last_stable_offset: 100,
                    log_start_offset: 0,
                    aborted_transactions: Some(vec![(9, 50)]),
                    diverging_epoch: Some((3, 40)),
                    current_leader: Some((1, 4)),
                    records: vec![
                        Bytes::from_static(b"batch-one"),
                        Bytes::from_static(b"batch-two"),
                    ],
                    ..FetchPartition::default()
                },
                FetchPartition {
                    partition_index: 3,
                    error_code: 1,
                    ..FetchPartition::default()
                },
            ],
        }],
        node_endpoints: vec![FetchNodeEndpoint {
            node_id: 1,
            host: strbytes("localhost"),
            port: 9092,
            rack: None,
        }],
    };
    for version in FETCH_VERSION_MIN..=FETCH_VERSION_MAX {
        check(&data, version, version as i32).unwrap();
        // Framing, batch-one, batch-two, then framing to the end: 4 pieces.
        let frame = encode_fetch_response(1, version, &data).unwrap();
        assert_eq!(frame.pieces.len(), 4, "v{version}");
    }
}

#[test]
fn default_tagged_fields_are_left_out() {
    let data = FetchResponseData {
        topics: vec![FetchTopic {
            name: strbytes("t"),
            topic_id: Uuid::nil(),
            partitions: vec![FetchPartition {
                diverging_epoch: Some((-1, -1)),
                current_leader: Some((-1, -1)),
                ..FetchPartition::default()
            }],
        }],
        ..FetchResponseData::default()
    };
    let with = encode_fetch_response(1, 12, &data).unwrap().to_bytes();
    let mut plain = data.clone();
    plain.topics[0].partitions[0].diverging_epoch = None;
    plain.topics[0].partitions[0].current_leader = None;
    let without = encode_fetch_response(1, 12, &plain).unwrap().to_bytes();
    assert_eq!(with, without);
}

#[test]
fn versions_outside_the_encoder_are_refused() {
    let data = FetchResponseData::default();
    for version in [-1, 0, 3, 17, 100] {
        assert!(
            encode_fetch_response(1, version, &data).is_err(),
            "v{version}"
        );
    }
}
