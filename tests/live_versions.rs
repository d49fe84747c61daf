//! Every advertised version of the admin and metadata APIs, against the real broker:
//! a broker binary is started, and each version of each request (encoded by the
//! `kafka-protocol` crate, a second reading of Kafka's schemas) must get a response that
//! decodes at that version and says what Kafka would say. Clients only ever pick one
//! version each; this covers the rest of what ApiVersions promises.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{self as km, ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

const START_TIMEOUT: Duration = Duration::from_secs(60);
const TOPIC_CONFIG: i8 = 2;

struct Broker {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary and waits until it answers ApiVersions. A start that does not answer
/// within `START_TIMEOUT` is retried once (the Python harness does the same for the rare
/// start-up hang ARCHITECTURE.md describes); the broker's log is in the panic message.
fn start_broker() -> Broker {
    for attempt in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log_path = dir.path().join("broker.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_riptide"))
            .args(["broker", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listeners", &format!("PLAINTEXT://127.0.0.1:{port}")])
            .args(["--cores", "1", "--pin", "false"])
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the riptide binary");
        let broker = Broker {
            child,
            port,
            _dir: dir,
        };
        if answers(port) {
            return broker;
        }
        let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: String = tail
            .chars()
            .rev()
            .take(4000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        assert!(
            attempt == 0,
            "broker did not answer within {START_TIMEOUT:?}; log:\n{tail}"
        );
        eprintln!("broker start {attempt} did not answer; retrying. Log:\n{tail}");
    }
    unreachable!()
}

/// Whether the broker on `port` answers an ApiVersions request before `START_TIMEOUT`.
fn answers(port: u16) -> bool {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(mut conn) = TcpStream::connect(("127.0.0.1", port)) {
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let resp: km::ApiVersionsResponse = call(
                    &mut conn,
                    ApiKey::ApiVersions,
                    3,
                    &km::ApiVersionsRequest::default(),
                );
                resp.error_code
            }));
            if let Ok(code) = answered {
                assert_eq!(code, 0, "ApiVersions error");
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn connect(broker: &Broker) -> TcpStream {
    let conn = TcpStream::connect(("127.0.0.1", broker.port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    conn
}

/// One request at `version`; the response decoded at the same version, nothing left over.
fn call<Req, Resp>(conn: &mut TcpStream, key: ApiKey, version: i16, req: &Req) -> Resp
where
    Req: Encodable + HeaderVersion,
    Resp: Decodable + HeaderVersion,
{
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("live-versions")));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, Req::header_version(version))
        .unwrap();
    req.encode(&mut body, version)
        .unwrap_or_else(|e| panic!("{key:?} v{version}: encode: {e}"));
    let mut frame = BytesMut::with_capacity(body.len() + 4);
    frame.put_i32(body.len() as i32);
    frame.put(body);
    conn.write_all(&frame).unwrap();
    let mut size = [0u8; 4];
    conn.read_exact(&mut size)
        .unwrap_or_else(|e| panic!("{key:?} v{version}: no response: {e}"));
    let mut buf = vec![0u8; i32::from_be_bytes(size) as usize];
    conn.read_exact(&mut buf).unwrap();
    let mut buf = Bytes::from(buf);
    let header_version = if key == ApiKey::ApiVersions {
        0
    } else {
        Resp::header_version(version)
    };
    let rh = ResponseHeader::decode(&mut buf, header_version).unwrap();
    assert_eq!(rh.correlation_id, 7, "{key:?} v{version}");
    let resp = Resp::decode(&mut buf, version)
        .unwrap_or_else(|e| panic!("{key:?} v{version}: decode: {e}"));
    assert_eq!(buf.remaining(), 0, "{key:?} v{version}: trailing bytes");
    resp
}

fn versions(conn: &mut TcpStream, key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let resp: km::ApiVersionsResponse = call(
        conn,
        ApiKey::ApiVersions,
        3,
        &km::ApiVersionsRequest::default(),
    );
    let row = resp
        .api_keys
        .iter()
        .find(|k| k.api_key == key as i16)
        .unwrap_or_else(|| panic!("{key:?} not advertised"));
    row.min_version..=row.max_version
}

fn name(s: &str) -> km::TopicName {
    km::TopicName(StrBytes::from_string(s.to_string()))
}

fn create_topic(conn: &mut TcpStream, version: i16, topic: &str, partitions: i32) -> i16 {
    let req = km::CreateTopicsRequest::default()
        .with_topics(vec![km::create_topics_request::CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(-1)])
        .with_timeout_ms(30_000);
    let resp: km::CreateTopicsResponse = call(conn, ApiKey::CreateTopics, version, &req);
    assert_eq!(resp.topics.len(), 1);
    resp.topics[0].error_code
}

#[test]
fn every_advertised_admin_version_answers_like_kafka() {
    let broker = start_broker();
    let mut conn = connect(&broker);
    let c = &mut conn;

    // CreateTopics: each version creates a topic; a second create is TOPIC_ALREADY_EXISTS.
    for v in versions(c, ApiKey::CreateTopics) {
        let topic = format!("create-v{v}");
        assert_eq!(create_topic(c, v, &topic, 2), 0, "CreateTopics v{v}");
        assert_eq!(create_topic(c, v, &topic, 2), 36, "CreateTopics v{v} again");
    }

    // Metadata: each version lists the topic with its partitions led by node 1.
    for v in versions(c, ApiKey::Metadata) {
        let req = km::MetadataRequest::default().with_topics(Some(vec![
            km::metadata_request::MetadataRequestTopic::default()
                .with_name(Some(name("create-v2"))),
        ]));
        let resp: km::MetadataResponse = call(c, ApiKey::Metadata, v, &req);
        assert_eq!(resp.brokers.len(), 1, "Metadata v{v}");
        assert_eq!(resp.brokers[0].node_id.0, 1, "Metadata v{v}");
        let t = &resp.topics[0];
        assert_eq!((t.error_code, t.partitions.len()), (0, 2), "Metadata v{v}");
        assert!(t
            .partitions
            .iter()
            .all(|p| p.leader_id.0 == 1 && p.error_code == 0));
        if v >= 10 {
            assert!(!t.topic_id.is_nil(), "Metadata v{v}: no topic id");
        }
        // Unknown topic, no auto-creation asked (v4+ has the flag).
        if v >= 4 {
            let req = km::MetadataRequest::default()
                .with_topics(Some(vec![
                    km::metadata_request::MetadataRequestTopic::default()
                        .with_name(Some(name(&format!("absent-v{v}")))),
                ]))
                .with_allow_auto_topic_creation(false);
            let resp: km::MetadataResponse = call(c, ApiKey::Metadata, v, &req);
            assert_eq!(resp.topics[0].error_code, 3, "Metadata v{v}: absent topic");
        }
    }

    // ListOffsets: latest of an empty partition is 0, earliest 0.
    for v in versions(c, ApiKey::ListOffsets) {
        for ts in [-1i64, -2] {
            let req = km::ListOffsetsRequest::default()
                .with_replica_id(km::BrokerId(-1))
                .with_topics(vec![km::list_offsets_request::ListOffsetsTopic::default()
                    .with_name(name("create-v2"))
                    .with_partitions(vec![
                        km::list_offsets_request::ListOffsetsPartition::default()
                            .with_partition_index(1)
                            .with_current_leader_epoch(-1)
                            .with_timestamp(ts),
                    ])]);
            let resp: km::ListOffsetsResponse = call(c, ApiKey::ListOffsets, v, &req);
            let p = &resp.topics[0].partitions[0];
            assert_eq!((p.error_code, p.offset), (0, 0), "ListOffsets v{v} ts {ts}");
        }
    }

    // DescribeConfigs (topic), AlterConfigs, IncrementalAlterConfigs.
    for v in versions(c, ApiKey::AlterConfigs) {
        let value = format!("{}", 1_000_000 + v as i64);
        let req = km::AlterConfigsRequest::default().with_resources(vec![
            km::alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(TOPIC_CONFIG)
                .with_resource_name(StrBytes::from_static_str("create-v2"))
                .with_configs(vec![km::alter_configs_request::AlterableConfig::default()
                    .with_name(StrBytes::from_static_str("retention.ms"))
                    .with_value(Some(StrBytes::from_string(value.clone())))]),
        ]);
        let resp: km::AlterConfigsResponse = call(c, ApiKey::AlterConfigs, v, &req);
        assert_eq!(resp.responses[0].error_code, 0, "AlterConfigs v{v}");
        assert_eq!(describe_retention(c, 1).as_deref(), Some(value.as_str()));
    }
    for v in versions(c, ApiKey::IncrementalAlterConfigs) {
        let value = format!("{}", 2_000_000 + v as i64);
        let req = km::IncrementalAlterConfigsRequest::default().with_resources(vec![
            km::incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(TOPIC_CONFIG)
                .with_resource_name(StrBytes::from_static_str("create-v2"))
                .with_configs(vec![
                    km::incremental_alter_configs_request::AlterableConfig::default()
                        .with_name(StrBytes::from_static_str("retention.ms"))
                        .with_config_operation(0)
                        .with_value(Some(StrBytes::from_string(value.clone()))),
                ]),
        ]);
        let resp: km::IncrementalAlterConfigsResponse =
            call(c, ApiKey::IncrementalAlterConfigs, v, &req);
        assert_eq!(
            resp.responses[0].error_code, 0,
            "IncrementalAlterConfigs v{v}"
        );
        for dv in versions(c, ApiKey::DescribeConfigs) {
            assert_eq!(
                describe_retention(c, dv).as_deref(),
                Some(value.as_str()),
                "DescribeConfigs v{dv}"
            );
        }
    }

    // CreatePartitions: each version grows a topic by one partition.
    for v in versions(c, ApiKey::CreatePartitions) {
        let topic = format!("create-v{}", 3 + v);
        let req = km::CreatePartitionsRequest::default()
            .with_topics(vec![
                km::create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(name(&topic))
                    .with_count(3),
            ])
            .with_timeout_ms(30_000);
        let resp: km::CreatePartitionsResponse = call(c, ApiKey::CreatePartitions, v, &req);
        assert_eq!(resp.results[0].error_code, 0, "CreatePartitions v{v}");
        let meta: km::MetadataResponse = call(
            c,
            ApiKey::Metadata,
            9,
            &km::MetadataRequest::default().with_topics(Some(vec![
                km::metadata_request::MetadataRequestTopic::default().with_name(Some(name(&topic))),
            ])),
        );
        assert_eq!(meta.topics[0].partitions.len(), 3, "CreatePartitions v{v}");
    }

    // DeleteRecords on an empty partition: low watermark 0; beyond it OFFSET_OUT_OF_RANGE.
    for v in versions(c, ApiKey::DeleteRecords) {
        for (offset, want) in [(0i64, 0i16), (5, 1)] {
            let req = km::DeleteRecordsRequest::default()
                .with_topics(vec![
                    km::delete_records_request::DeleteRecordsTopic::default()
                        .with_name(name("create-v2"))
                        .with_partitions(vec![
                            km::delete_records_request::DeleteRecordsPartition::default()
                                .with_partition_index(0)
                                .with_offset(offset),
                        ]),
                ])
                .with_timeout_ms(30_000);
            let resp: km::DeleteRecordsResponse = call(c, ApiKey::DeleteRecords, v, &req);
            let p = &resp.topics[0].partitions[0];
            assert_eq!(p.error_code, want, "DeleteRecords v{v} to {offset}");
        }
    }

    // InitProducerId: a fresh id each time, epoch 0.
    let mut ids = Vec::new();
    for v in versions(c, ApiKey::InitProducerId) {
        let req = init_producer_id(None);
        let resp: km::InitProducerIdResponse = call(c, ApiKey::InitProducerId, v, &req);
        assert_eq!(
            (resp.error_code, resp.producer_epoch),
            (0, 0),
            "InitProducerId v{v}"
        );
        assert!(resp.producer_id.0 >= 0 && !ids.contains(&resp.producer_id.0));
        ids.push(resp.producer_id.0);
        // Transactions are not implemented: refused; an empty id is an invalid request.
        for (id, want) in [("tx", 53i16), ("", 42)] {
            let req = init_producer_id(Some(id));
            let resp: km::InitProducerIdResponse = call(c, ApiKey::InitProducerId, v, &req);
            assert_eq!(resp.error_code, want, "InitProducerId v{v} {id:?}");
        }
    }

    // OffsetForLeaderEpoch (consumer form): the current epoch ends at the log end (0).
    for v in versions(c, ApiKey::OffsetForLeaderEpoch) {
        let req = km::OffsetForLeaderEpochRequest::default()
            .with_replica_id(km::BrokerId(-1))
            .with_topics(vec![
                km::offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                    .with_topic(name("create-v2"))
                    .with_partitions(vec![
                        km::offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                            .with_partition(0)
                            .with_current_leader_epoch(-1)
                            .with_leader_epoch(0),
                    ]),
            ]);
        let resp: km::OffsetForLeaderEpochResponse = call(c, ApiKey::OffsetForLeaderEpoch, v, &req);
        let p = &resp.topics[0].partitions[0];
        assert_eq!(
            (p.error_code, p.end_offset),
            (0, 0),
            "OffsetForLeaderEpoch v{v}"
        );
    }

    // DescribeCluster: this node, the cluster id.
    for v in versions(c, ApiKey::DescribeCluster) {
        let resp: km::DescribeClusterResponse = call(
            c,
            ApiKey::DescribeCluster,
            v,
            &km::DescribeClusterRequest::default(),
        );
        assert_eq!(resp.error_code, 0, "DescribeCluster v{v}");
        assert_eq!(resp.brokers.len(), 1);
        assert!(!resp.cluster_id.is_empty());
    }

    // DeleteTopics: each version deletes one topic; Metadata then says unknown.
    for v in versions(c, ApiKey::DeleteTopics) {
        let topic = format!("create-v{}", v + 1);
        let req = if v >= 6 {
            km::DeleteTopicsRequest::default()
                .with_topics(vec![km::delete_topics_request::DeleteTopicState::default()
                    .with_name(Some(name(&topic)))])
        } else {
            km::DeleteTopicsRequest::default().with_topic_names(vec![name(&topic)])
        }
        .with_timeout_ms(30_000);
        let resp: km::DeleteTopicsResponse = call(c, ApiKey::DeleteTopics, v, &req);
        assert_eq!(resp.responses[0].error_code, 0, "DeleteTopics v{v}");
        let meta: km::MetadataResponse = call(
            c,
            ApiKey::Metadata,
            9,
            &km::MetadataRequest::default()
                .with_topics(Some(vec![
                    km::metadata_request::MetadataRequestTopic::default()
                        .with_name(Some(name(&topic))),
                ]))
                .with_allow_auto_topic_creation(false),
        );
        assert_eq!(
            meta.topics[0].error_code, 3,
            "DeleteTopics v{v}: still there"
        );
    }
}

/// A new producer's InitProducerId, transactional when `transactional_id` is given.
fn init_producer_id(transactional_id: Option<&'static str>) -> km::InitProducerIdRequest {
    km::InitProducerIdRequest::default()
        .with_transactional_id(
            transactional_id.map(|id| km::TransactionalId(StrBytes::from_static_str(id))),
        )
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(km::ProducerId(-1))
        .with_producer_epoch(-1)
}

/// `retention.ms` of topic `create-v2` per DescribeConfigs at `version`.
fn describe_retention(c: &mut TcpStream, version: i16) -> Option<String> {
    let req = km::DescribeConfigsRequest::default().with_resources(vec![
        km::describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(TOPIC_CONFIG)
            .with_resource_name(StrBytes::from_static_str("create-v2"))
            .with_configuration_keys(Some(vec![StrBytes::from_static_str("retention.ms")])),
    ]);
    let resp: km::DescribeConfigsResponse = call(c, ApiKey::DescribeConfigs, version, &req);
    let r = &resp.results[0];
    assert_eq!(r.error_code, 0, "DescribeConfigs v{version}");
    r.configs
        .iter()
        .find(|e| e.name.as_str() == "retention.ms")
        .and_then(|e| e.value.as_ref().map(|v| v.to_string()))
}

/// One record whose value names the Produce version that wrote it.
fn one_record_batch(value: &str) -> Bytes {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1_700_000_000_000,
        key: Some(Bytes::from_static(b"k")),
        value: Some(Bytes::copy_from_slice(value.as_bytes())),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, [&record], &options).unwrap();
    buf.freeze()
}

#[test]
fn every_advertised_produce_and_fetch_version_round_trips() {
    let broker = start_broker();
    let mut conn = connect(&broker);
    let c = &mut conn;
    assert_eq!(create_topic(c, 7, "pf", 1), 0);

    let mut produced = Vec::new();
    // Produce v0-v2 are listed only because librdkafka needs them (answered
    // UNSUPPORTED_VERSION, tested in Python); v3 and up write.
    for v in versions(c, ApiKey::Produce).filter(|v| *v >= 3) {
        let value = format!("produce-v{v}");
        let req = km::ProduceRequest::default()
            .with_transactional_id(None)
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![km::produce_request::TopicProduceData::default()
                .with_name(name("pf"))
                .with_partition_data(vec![
                    km::produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(one_record_batch(&value))),
                ])]);
        let resp: km::ProduceResponse = call(c, ApiKey::Produce, v, &req);
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!(
            (p.error_code, p.base_offset),
            (0, produced.len() as i64),
            "Produce v{v}"
        );
        produced.push(value);
    }
    assert!(produced.len() >= 7, "Produce v3..v9 at least");

    for v in versions(c, ApiKey::Fetch) {
        let req = km::FetchRequest::default()
            .with_replica_id(km::BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![km::fetch_request::FetchTopic::default()
                .with_topic(name("pf"))
                .with_partitions(vec![km::fetch_request::FetchPartition::default()
                    .with_partition(0)
                    .with_current_leader_epoch(-1)
                    .with_fetch_offset(0)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(1 << 20)])]);
        let resp: km::FetchResponse = call(c, ApiKey::Fetch, v, &req);
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "Fetch v{v}");
        assert_eq!(p.high_watermark, produced.len() as i64, "Fetch v{v}");
        let mut records = p.records.clone().expect("records");
        let mut values = Vec::new();
        while records.has_remaining() {
            let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut records).unwrap();
            for r in set.records {
                values.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
            }
        }
        assert_eq!(values, produced, "Fetch v{v}");
    }
}
