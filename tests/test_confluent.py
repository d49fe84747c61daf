"""confluent-kafka (the librdkafka bundled in its wheel): produce/consume semantics.

Consumers use `Consumer.assign` with explicit offsets and never commit, so nothing here
needs the group coordinator."""

import time

import pytest
from confluent_kafka import (
    TIMESTAMP_CREATE_TIME,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import OffsetSpec

import kwire
from clients import (
    admin,
    conf_for,
    assert_delivered,
    by_partition,
    consume,
    consumer,
    create_topic,
    produce_all,
)
from proxy import Proxy


def test_100k_messages_round_trip_in_partition_order(broker, topic_name):
    partitions = 3
    n = 100_000
    create_topic(broker.bootstrap, topic_name, partitions)
    msgs = ({"partition": i % partitions, "value": b"%d:%d" % (i % partitions, i // partitions)} for i in range(n))
    reports = produce_all(broker.bootstrap, topic_name, msgs, conf={"linger.ms": 20})
    assert_delivered(reports, n)
    # The broker assigns offsets 0.. per partition in produce order.
    for p, rs in _reports_by_partition(reports).items():
        assert [r.offset for r in rs] == list(range(len(rs))), f"partition {p}: offsets out of order"
        assert [r.value for r in rs] == [b"%d:%d" % (p, j) for j in range(len(rs))]

    got = by_partition(consume(broker.bootstrap, topic_name, range(partitions), n))
    assert sorted(got) == [0, 1, 2]
    assert {p: len(ms) for p, ms in got.items()} == {0: 33334, 1: 33333, 2: 33333}
    for p, ms in got.items():
        assert [m.offset() for m in ms] == list(range(len(ms)))
        assert [m.value() for m in ms] == [b"%d:%d" % (p, j) for j in range(len(ms))], f"partition {p}"


def _reports_by_partition(reports):
    out = {}
    for r in reports:
        out.setdefault(r.partition, []).append(r)
    return out


def test_keyed_messages_land_on_one_partition(broker, topic_name):
    create_topic(broker.bootstrap, topic_name, 3)
    keys = [b"user-%d" % k for k in range(12)]
    msgs = [{"key": keys[i % len(keys)], "value": b"%d" % i} for i in range(1200)]
    reports = produce_all(broker.bootstrap, topic_name, msgs)
    assert_delivered(reports, len(msgs))
    partition_of = {}
    for r in reports:
        assert partition_of.setdefault(r.key, r.partition) == r.partition, f"key {r.key} on two partitions"
    assert len(set(partition_of.values())) > 1, "12 keys all hashed to one partition: partitioner ignored?"

    got = consume(broker.bootstrap, topic_name, range(3), len(msgs))
    for m in got:
        assert m.partition() == partition_of[m.key()]
    # Per key, consumption order is production order.
    per_key = {}
    for m in got:
        per_key.setdefault(m.key(), []).append(int(m.value()))
    for k, values in per_key.items():
        assert values == sorted(values), f"key {k} reordered"
        assert len(values) == 100


def test_headers_keys_null_values_and_timestamps_preserved(broker, topic_name):
    ts0 = 1_600_000_000_123
    msgs = [
        {"key": b"k1", "value": b"v1", "headers": [("h1", b"a"), ("h2", b"")], "timestamp": ts0},
        {"key": None, "value": b"no key", "timestamp": ts0 + 1},
        {"key": b"tombstone", "value": None, "timestamp": ts0 + 2},
        {"key": b"", "value": b"", "headers": [("dup", b"1"), ("dup", b"2"), ("null", None)], "timestamp": ts0 + 3},
        {"key": bytes(range(256)), "value": bytes(range(256)) * 400, "timestamp": ts0 - 5000},
        {"key": None, "value": None, "headers": [("\u00e9t\u00e9", "\u2603".encode())], "timestamp": ts0 + 4},
    ]
    reports = produce_all(broker.bootstrap, topic_name, [dict(m, partition=0) for m in msgs])
    assert_delivered(reports, len(msgs))
    got = consume(broker.bootstrap, topic_name, [0], len(msgs))
    for want, m in zip(msgs, got):
        assert m.key() == want["key"]
        assert m.value() == want["value"]
        assert m.headers() == (want.get("headers") or None)
        assert m.timestamp() == (TIMESTAMP_CREATE_TIME, want["timestamp"])


CODECS = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


# librdkafka compresses with lz4 only when the broker advertises FindCoordinator (its
# "LZ4" feature test); otherwise it silently sends lz4 batches uncompressed, which the
# stored-codec check below catches.
@pytest.mark.parametrize("codec", sorted(CODECS))
def test_compression_codec_round_trip(broker, topic_name, codec):
    n = 5000
    # Every message compressible on its own: librdkafka sends a batch uncompressed when
    # compression does not shrink it (e.g. a lone small first message).
    msgs = [
        {"partition": 0, "key": b"k%d" % (i % 10), "value": b"value %d " % i + b"x" * (100 + i % 200)} for i in range(n)
    ]
    reports = produce_all(broker.bootstrap, topic_name, msgs, conf={"compression.type": codec, "linger.ms": 50})
    assert_delivered(reports, n)
    got = consume(broker.bootstrap, topic_name, [0], n)
    assert [(m.key(), m.value()) for m in got] == [(m["key"], m["value"]) for m in msgs]
    assert [m.offset() for m in got] == list(range(n))

    # Stored as produced: the batches a raw Fetch returns carry the codec and a valid CRC.
    with kwire.connect(broker.port) as s:
        s.sendall(kwire.fetch_v4_request(topic_name, 0, 0))
        f = kwire.read_frame(s)
    err, hw, records = kwire.parse_fetch_v4(f)[(topic_name, 0)]
    assert (err, hw) == (0, n)
    bs = kwire.batches(records)
    assert bs, "no batches fetched"
    assert {b["codec"] for b in bs} == {CODECS[codec]}
    assert all(b["crc_ok"] for b in bs)
    assert bs[0]["base_offset"] == 0
    for a, b in zip(bs, bs[1:]):
        assert b["base_offset"] == a["base_offset"] + a["last_offset_delta"] + 1


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_acks(broker, topic_name, acks):
    create_topic(broker.bootstrap, topic_name, 2)
    n = 3000
    msgs = [{"partition": i % 2, "value": b"%d" % i} for i in range(n)]
    reports = produce_all(broker.bootstrap, topic_name, msgs, conf={"acks": acks})
    assert_delivered(reports, n)
    if acks != "0":
        # With acks, the delivery report carries the assigned offset.
        for p, rs in _reports_by_partition(reports).items():
            assert [r.offset for r in rs] == list(range(len(rs)))
    got = by_partition(consume(broker.bootstrap, topic_name, [0, 1], n))
    for p in (0, 1):
        assert [int(m.value()) for m in got[p]] == list(range(p, n, 2))


def _assert_exactly_once_in_order(bootstrap, topic, partitions, n):
    got = by_partition(consume(bootstrap, topic, range(partitions), n))
    for p in range(partitions):
        values = [int(m.value()) for m in got.get(p, [])]
        assert values == list(range(p, n, partitions)), (
            f"partition {p}: {len(values)} values, duplicates or gaps "
            f"(first mismatch at {next((i for i, (a, b) in enumerate(zip(values, range(p, n, partitions))) if a != b), None)})"
        )


IDEMPOTENT = {
    "enable.idempotence": True,
    "max.in.flight.requests.per.connection": 5,
    "acks": "all",
    "linger.ms": 1,
    "batch.num.messages": 200,
}


def test_idempotent_producer_exactly_once_in_order(broker, topic_name):
    partitions = 3
    n = 30_000
    create_topic(broker.bootstrap, topic_name, partitions)
    msgs = [{"partition": i % partitions, "value": b"%d" % i} for i in range(n)]
    reports = produce_all(broker.bootstrap, topic_name, msgs, conf=IDEMPOTENT)
    assert_delivered(reports, n)
    _assert_exactly_once_in_order(broker.bootstrap, topic_name, partitions, n)


def test_idempotent_producer_with_connections_dropped_mid_flight(broker_factory, topic_name):
    """Forced retries: a proxy between client and broker resets the connection right
    after forwarding every 7th Produce request, with up to 5 requests in flight.
    librdkafka resends with the same sequence numbers; the broker must answer the
    duplicates with their original offsets and not write them again."""
    proxy = Proxy(cut_every=7, cuts_max=25)
    try:
        b = broker_factory(extra_args=["--advertised-listeners", f"PLAINTEXT://127.0.0.1:{proxy.port}"])
        proxy.target_port = b.port
        partitions = 3
        n = 40_000
        create_topic(b.bootstrap, topic_name, partitions)
        msgs = [{"partition": i % partitions, "value": b"%d" % i} for i in range(n)]
        reports = produce_all(
            f"127.0.0.1:{proxy.port}",
            topic_name,
            msgs,
            conf={**IDEMPOTENT, "retry.backoff.ms": 10, "reconnect.backoff.ms": 10},
            flush_timeout_s=90,
        )
        assert proxy.cuts >= 10, f"only {proxy.cuts} connections cut: the test did not force retries"
        assert_delivered(reports, n)
        # Offsets in the delivery reports are unique and dense per partition.
        for p, rs in _reports_by_partition(reports).items():
            assert sorted(r.offset for r in rs) == list(range(len(rs))), f"partition {p}"
        _assert_exactly_once_in_order(b.bootstrap, topic_name, partitions, n)
    finally:
        proxy.close()


def test_offsets_for_times(broker, topic_name):
    create_topic(broker.bootstrap, topic_name, 2)
    ts0 = 1_700_000_000_000
    n = 200
    # Partition 0: increasing timestamps, 10 ms apart, several records per batch.
    # Partition 1: the same, compressed, so the broker must look inside compressed batches.
    msgs = [{"partition": 0, "value": b"%d" % i, "timestamp": ts0 + 10 * i} for i in range(n)]
    assert_delivered(produce_all(broker.bootstrap, topic_name, msgs, conf={"linger.ms": 50}), n)
    msgs = [{"partition": 1, "value": b"%d" % i, "timestamp": ts0 + 10 * i} for i in range(n)]
    assert_delivered(
        produce_all(broker.bootstrap, topic_name, msgs, conf={"linger.ms": 50, "compression.type": "lz4"}), n
    )
    c = consumer(broker.bootstrap)
    try:
        for p in (0, 1):
            queries = {
                ts0 - 60_000: 0,  # before everything: the first record
                ts0: 0,
                ts0 + 10 * 37: 37,  # exact timestamp
                ts0 + 10 * 37 - 5: 37,  # between two records: the later one
                ts0 + 10 * 150 + 1: 151,
                ts0 + 10 * (n - 1): n - 1,
                ts0 + 10 * n: -1,  # after everything: no offset (Kafka answers -1)
            }
            for ts, want in queries.items():
                [tp] = c.offsets_for_times([TopicPartition(topic_name, p, ts)], timeout=10)
                assert tp.error is None, tp.error
                assert tp.offset == want, f"partition {p}, timestamp {ts - ts0:+}: offset {tp.offset}, want {want}"
        lo, hi = c.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=10)
        assert (lo, hi) == (0, n)
    finally:
        c.close()


def test_offsets_for_times_out_of_order_timestamps(broker, topic_name):
    """Kafka returns the earliest offset whose timestamp is >= the target, even when
    timestamps in the log are not monotonic."""
    ts0 = 1_700_000_000_000
    stamps = [ts0 + d for d in (0, 300, 100, 200, 500, 400)]
    msgs = [{"partition": 0, "value": b"%d" % i, "timestamp": t} for i, t in enumerate(stamps)]
    assert_delivered(produce_all(broker.bootstrap, topic_name, msgs, conf={"linger.ms": 50}), len(msgs))
    c = consumer(broker.bootstrap)
    try:
        for target, want in {ts0 + 50: 1, ts0 + 150: 1, ts0 + 350: 4, ts0 + 450: 4, ts0 + 501: -1}.items():
            [tp] = c.offsets_for_times([TopicPartition(topic_name, 0, target)], timeout=10)
            assert tp.error is None, tp.error
            assert tp.offset == want, f"target +{target - ts0}: offset {tp.offset}, want {want}"
    finally:
        c.close()


def test_admin_list_offsets_max_timestamp_names_the_exact_record(broker, topic_name):
    """ListOffsets through librdkafka's admin API: MAX_TIMESTAMP answers the record that
    carries the largest timestamp (Kafka 3.8+), not the last offset of its batch, and a
    by-time query answers the found record's own timestamp."""
    create_topic(broker.bootstrap, topic_name, 1)
    ts0 = 1_700_000_000_000
    stamps = [ts0 + d for d in (0, 100, 900, 200, 300)]
    msgs = [{"partition": 0, "value": b"%d" % i, "timestamp": t} for i, t in enumerate(stamps)]
    # One batch (linger): the largest timestamp sits in its middle.
    conf = {"linger.ms": 200, "batch.num.messages": 100}
    assert_delivered(produce_all(broker.bootstrap, topic_name, msgs, conf=conf), len(msgs))
    a = admin(broker.bootstrap)
    tp = TopicPartition(topic_name, 0)
    for spec, want in [
        (OffsetSpec.max_timestamp(), (2, ts0 + 900)),
        (OffsetSpec.for_timestamp(ts0 + 50), (1, ts0 + 100)),
        (OffsetSpec.for_timestamp(ts0 + 250), (2, ts0 + 900)),
        (OffsetSpec.earliest(), (0, -1)),
        (OffsetSpec.latest(), (5, -1)),
    ]:
        info = a.list_offsets({tp: spec}, request_timeout=10)[tp].result(timeout=15)
        assert (info.offset, info.timestamp) == want, f"{spec}: {info}"


def test_admin_delete_records_moves_the_log_start(broker, topic_name):
    """DeleteRecords (librdkafka's admin API): records below the given offset go, the low
    watermark and consumers from the beginning start there, -1 means the high watermark
    (OffsetSpec-style), and an offset beyond the high watermark is OFFSET_OUT_OF_RANGE."""
    create_topic(broker.bootstrap, topic_name, 2)
    n = 50
    for p in (0, 1):
        msgs = [{"partition": p, "value": b"%d" % i} for i in range(n)]
        assert_delivered(produce_all(broker.bootstrap, topic_name, msgs), n)
    a = admin(broker.bootstrap)
    tp0, tp1 = TopicPartition(topic_name, 0, 20), TopicPartition(topic_name, 1, -1)
    res = a.delete_records([tp0, tp1], request_timeout=10)
    assert res[tp0].result(timeout=15).low_watermark == 20
    assert res[tp1].result(timeout=15).low_watermark == n
    c = consumer(broker.bootstrap)
    try:
        assert c.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=10) == (20, n)
        assert c.get_watermark_offsets(TopicPartition(topic_name, 1), timeout=10) == (n, n)
    finally:
        c.close()
    got = consume(broker.bootstrap, topic_name, [0], n - 20)
    assert [int(m.value()) for m in got] == list(range(20, n))
    beyond = TopicPartition(topic_name, 0, n + 1)
    with pytest.raises(KafkaException) as e:
        a.delete_records([beyond], request_timeout=10)[beyond].result(timeout=15)
    assert e.value.args[0].name() == "OFFSET_OUT_OF_RANGE", e.value


def test_consume_from_middle_and_watermarks(broker, topic_name):
    n = 1000
    assert_delivered(produce_all(broker.bootstrap, topic_name, [{"value": b"%d" % i} for i in range(n)]), n)
    got = consume(broker.bootstrap, topic_name, [0], n - 600, offset=600)
    assert [int(m.value()) for m in got] == list(range(600, n))
    c = consumer(broker.bootstrap)
    try:
        assert c.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=10) == (0, n)
    finally:
        c.close()


def test_long_poll_wakes_on_append(broker, topic_name):
    """A consumer waiting at the end of the log gets a new record promptly (the fetch
    long poll wakes on append, not on fetch.wait.max.ms expiry)."""
    assert_delivered(produce_all(broker.bootstrap, topic_name, [{"value": b"first"}]), 1)
    c = consumer(broker.bootstrap, {"fetch.wait.max.ms": 5000})
    p = Producer(conf_for(broker.bootstrap, {"linger.ms": 0}))
    try:
        c.assign([TopicPartition(topic_name, 0, 1)])
        # Let the consumer park its fetch at offset 1.
        assert c.consume(num_messages=1, timeout=1.5) == []
        latencies = []
        for i in range(5):
            t0 = time.monotonic()
            p.produce(topic_name, value=b"v%d" % i, partition=0)
            p.flush(10)
            ms = c.consume(num_messages=1, timeout=10)
            latencies.append(time.monotonic() - t0)
            assert len(ms) == 1 and ms[0].error() is None and ms[0].value() == b"v%d" % i
        # fetch.wait.max.ms is 5 s: a broker that only answers on expiry takes ~5 s.
        assert max(latencies) < 2.0, latencies
    finally:
        c.close()
        p.purge()
        p.close()
