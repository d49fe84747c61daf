"""kafka-python: a pure-Python client that picks request versions from the broker
version it infers from ApiVersions, so it exercises older versions of every API."""

import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.protocol.broker_version_data import infer_broker_version_from_api_versions

import kwire


def produce(bootstrap, topic, records, **conf):
    p = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, **conf)
    try:
        futures = [p.send(topic, key=k, value=v, partition=part) for part, k, v in records]
        p.flush(30)
        return [f.get(timeout=30) for f in futures]
    finally:
        p.close(timeout=10)


def consume(bootstrap, topic, partitions, count, timeout_s=30, **conf):
    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None, **conf)
    try:
        c.assign([TopicPartition(topic, p) for p in partitions])
        c.seek_to_beginning()
        out = []
        deadline = time.monotonic() + timeout_s
        while len(out) < count and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=500).values():
                out.extend(recs)
        assert len(out) == count, f"consumed {len(out)} of {count}"
        assert not any(c.poll(timeout_ms=300).values()), "more records than produced"
        return out
    finally:
        c.close()


def test_api_version_inferred_from_api_versions(broker):
    """With no api_version configured, kafka-python asks ApiVersions and infers the
    broker's Kafka version from it: the result must be that inference (not a fallback
    after failed probes) and at least 3.0, the level the advertised table implies."""
    _, err, keys = kwire.api_versions(broker.port)
    assert err == 0
    expected = infer_broker_version_from_api_versions(keys)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)
    try:
        assert p.config["api_version"] == expected
    finally:
        p.close()
    assert expected >= (3, 0), expected


@pytest.mark.parametrize("api_version", [None, (2, 5), (2, 0), (1, 1), (0, 11)], ids=str)
def test_round_trip(broker, topic_name, api_version):
    """Round trip with keys, headers and explicit partitions; pinned older api_versions
    make the client use older Produce/Fetch/Metadata/ListOffsets versions."""
    conf = {} if api_version is None else {"api_version": api_version}
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, **conf)
    try:
        a.create_topics([NewTopic(topic_name, num_partitions=2, replication_factor=1)])
    finally:
        a.close()
    n = 2000
    records = [(i % 2, b"k%d" % (i % 5), b"v%d" % i) for i in range(n)]
    metas = produce(broker.bootstrap, topic_name, records, **conf)
    per_part = {}
    for m in metas:
        per_part.setdefault(m.partition, []).append(m.offset)
    assert {p: offs for p, offs in per_part.items()} == {0: list(range(n // 2)), 1: list(range(n // 2))}
    got = consume(broker.bootstrap, topic_name, [0, 1], n, **conf)
    by_part = {}
    for r in got:
        by_part.setdefault(r.partition, []).append((r.offset, r.key, r.value))
    for p in (0, 1):
        want = [(j, k, v) for j, (_, k, v) in enumerate(rec for rec in records if rec[0] == p)]
        assert by_part[p] == want


def test_headers_and_null_value(broker, topic_name):
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)
    try:
        p.send(
            topic_name,
            key=b"k",
            value=None,
            headers=[("a", b"1"), ("b", b"")],
            partition=0,
            timestamp_ms=1_234_567_890_123,
        )
        p.send(topic_name, key=None, value=b"v", partition=0)
        p.flush(30)
    finally:
        p.close()
    r0, r1 = consume(broker.bootstrap, topic_name, [0], 2)
    assert (r0.key, r0.value, r0.headers, r0.timestamp) == (b"k", None, [("a", b"1"), ("b", b"")], 1_234_567_890_123)
    assert (r1.key, r1.value) == (None, b"v")


def test_admin_create_list_describe_delete(broker, topic_name):
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        a.create_topics(
            [NewTopic(topic_name, num_partitions=3, replication_factor=1, topic_configs={"retention.ms": "7200000"})]
        )
        assert topic_name in a.list_topics()
        [d] = a.describe_topics([topic_name])
        assert (d["name"], d["error_code"]) == (topic_name, 0)
        assert sorted(p["partition_index"] for p in d["partitions"]) == [0, 1, 2]
        assert all((p["leader_id"], p["replica_nodes"], p["isr_nodes"]) == (1, [1], [1]) for p in d["partitions"])
        a.delete_topics([topic_name])
        deadline = time.monotonic() + 10
        while topic_name in a.list_topics() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert topic_name not in a.list_topics()
    finally:
        a.close()


def test_offsets_earliest_latest(broker, topic_name):
    produce(broker.bootstrap, topic_name, [(0, None, b"%d" % i) for i in range(50)])
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
    try:
        tp = TopicPartition(topic_name, 0)
        assert c.beginning_offsets([tp]) == {tp: 0}
        assert c.end_offsets([tp]) == {tp: 50}
    finally:
        c.close()
