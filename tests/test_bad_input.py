"""Hostile bytes on raw sockets. Each must get an error response or a closed connection —
never a crash, a stall, or an allocation of a declared size — and the broker must keep
serving: its RSS does not jump, a client connected before keeps working, and new
clients (confluent-kafka, kcat) work right after."""

import shutil
import socket
import struct
import subprocess
import time
import uuid

import pytest
from confluent_kafka import Producer

import kwire
from clients import assert_delivered, conf_for, consume, produce_all

RSS_GROWTH_MAX_KIB = 64 * 1024
REQUEST_BYTES_MAX = 104_857_600  # socket.request.max.bytes default


def uvarint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def metadata_v1_huge_array():
    # 20-byte frame: header v1 (client id "") is 10 bytes, then the topics array count
    # 2^31-1 and 6 bytes: nowhere near room for that many topics.
    payload = kwire.header(kwire.API_METADATA, 1, 1, client_id="") + struct.pack(">i", 2**31 - 1) + b"\x00" * 6
    assert len(payload) == 20
    return kwire.frame(payload)


def metadata_v9_huge_compact_array():
    payload = kwire.header(kwire.API_METADATA, 9, 1, client_id="", flexible=True) + uvarint(2**31) + b"\x00" * 6
    return kwire.frame(payload)


def client_id_longer_than_frame():
    payload = struct.pack(">hhih", kwire.API_METADATA, 1, 1, 30000) + b"abcde"
    return kwire.frame(payload)


def produce_v3_huge_records():
    body = kwire.string(None) + struct.pack(">hi", 1, 1000)  # transactional id, acks, timeout
    body += struct.pack(">i", 1) + kwire.string("t") + struct.pack(">i", 1) + struct.pack(">i", 0)
    body += struct.pack(">i", 0x7FFFFFF0) + b"\x00" * 8  # records: declared ~2 GiB, 8 bytes present
    return kwire.frame(kwire.header(kwire.API_PRODUCE, 3, 1) + body)


def produce_v3_garbage_batch():
    """A well-formed request whose records are not a valid RecordBatch: CORRUPT_MESSAGE
    (or a closed connection)."""
    junk = b"\x00" * 12 + struct.pack(">i", 49) + b"\x07" * 49  # batch length 49, magic 7, bad CRC
    body = kwire.string(None) + struct.pack(">hi", 1, 1000)
    body += struct.pack(">i", 1) + kwire.string("bad-batch") + struct.pack(">i", 1) + struct.pack(">i", 0)
    body += struct.pack(">i", len(junk)) + junk
    return kwire.frame(kwire.header(kwire.API_PRODUCE, 3, 1) + body)


def create_topics_v2_huge_partitions():
    body = struct.pack(">i", 1) + kwire.string("huge-partitions") + struct.pack(">ihii", 2**31 - 1, 1, 0, 0)
    body += struct.pack(">ib", 5000, 0)  # timeout, validate_only
    return kwire.frame(kwire.header(19, 2, 1) + body)


CASES = {
    # name: (bytes, half-close after sending)
    "http-request": (b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", False),
    "random-bytes": (bytes((i * 73 + 41) % 256 for i in range(300)), False),
    "garbage-body-in-valid-frame": (kwire.frame(bytes((i * 31 + 7) % 256 for i in range(64))), False),
    "truncated-frame": (struct.pack(">i", 100) + b"\x00\x03\x00\x01", True),
    "truncated-header": (kwire.frame(b"\x00\x12"), False),
    "zero-size": (struct.pack(">i", 0), False),
    "negative-size": (struct.pack(">i", -8) + b"\x00" * 16, False),
    "size-above-request-max": (struct.pack(">i", REQUEST_BYTES_MAX + 1) + b"\x00" * 64, False),
    "size-int-max": (struct.pack(">i", 2**31 - 1) + b"\x00" * 64, False),
    "unknown-api-key": (kwire.frame(kwire.header(9999, 0, 1)), False),
    "unadvertised-api-key": (kwire.frame(kwire.header(57, 0, 1) + b"\x00" * 8), False),  # UpdateFeatures
    "unsupported-version": (kwire.frame(kwire.header(kwire.API_METADATA, 99, 1) + b"\x00" * 8), False),
    "negative-version": (kwire.frame(kwire.header(kwire.API_METADATA, -1, 1) + b"\x00" * 8), False),
    "metadata-v1-array-2^31-1-in-20-bytes": (metadata_v1_huge_array(), False),
    "metadata-v9-compact-array-2^31": (metadata_v9_huge_compact_array(), False),
    "client-id-longer-than-frame": (client_id_longer_than_frame(), False),
    "produce-records-length-2GiB": (produce_v3_huge_records(), False),
    "produce-corrupt-batch": (produce_v3_garbage_batch(), False),
    "create-topics-2^31-1-partitions": (create_topics_v2_huge_partitions(), False),
}


@pytest.fixture
def healthy_broker(broker):
    """A broker that has served clients once (so its RSS baseline includes the usual
    connection and topic state), plus a producer connected before the attack."""
    check_clients(broker)
    p = Producer(conf_for(broker.bootstrap, {"linger.ms": 0}))
    p.list_topics(timeout=10)
    broker.rss_before_kib = broker.rss_kib()
    broker.early_producer = p
    yield broker
    # Without a purge, close() waits message.timeout.ms (5 min) for undelivered messages
    # when the broker failed.
    p.purge()
    p.close()


def check_clients(broker):
    topic = "health-" + uuid.uuid4().hex[:8]
    assert_delivered(produce_all(broker.bootstrap, topic, [{"value": b"ok", "partition": 0}]), 1)
    [m] = consume(broker.bootstrap, topic, [0], 1)
    assert m.value() == b"ok"
    kcat = shutil.which("kcat")
    if kcat:
        r = subprocess.run([kcat, "-b", broker.bootstrap, "-L", "-t", topic], capture_output=True, timeout=30)
        assert r.returncode == 0 and topic.encode() in r.stdout, r.stderr
    return topic


def assert_still_serving(broker):
    assert broker.alive(), f"broker died:\n{broker.log_tail()}"
    growth = broker.rss_kib() - broker.rss_before_kib
    assert growth < RSS_GROWTH_MAX_KIB, f"RSS grew by {growth} KiB"
    # The client connected before the bad input still works...
    p = broker.early_producer
    errors = []
    p.produce("early-producer", value=b"still here", on_delivery=lambda err, msg: errors.append(err))
    assert p.flush(15) == 0 and errors == [None], errors
    # ...and so do new ones.
    check_clients(broker)
    assert broker.alive()


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gets_error_or_close(healthy_broker, case):
    data, half_close = CASES[case]
    b = healthy_broker
    with kwire.connect(b.port) as s:
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed while we were still sending: an acceptable answer
        what, frame = kwire.outcome(s, timeout_s=5.0)
    assert what in ("closed", "response"), f"{case}: the broker neither answered nor closed within 5 s"
    if case == "create-topics-2^31-1-partitions":
        assert what == "response", "CreateTopics v2 is advertised: a bad partition count deserves an error, not a close"
    if what == "response":
        (corr,) = struct.unpack_from(">i", frame, 0)
        assert corr == 1, f"{case}: response with correlation id {corr}"
        if case == "create-topics-2^31-1-partitions":
            # CreateTopics v2 response: throttle, [name, error_code, error_message]; must be an error.
            (n,) = struct.unpack_from(">i", frame, 8)
            (nl,) = struct.unpack_from(">h", frame, 12)
            (err,) = struct.unpack_from(">h", frame, 14 + nl)
            assert n == 1 and err != 0, "2^31-1 partitions accepted"
        if case == "produce-corrupt-batch":
            # Produce v3 response: [topic, [partition, error_code, ...]]
            (nl,) = struct.unpack_from(">h", frame, 8)
            (err,) = struct.unpack_from(">h", frame, 10 + nl + 4 + 4)
            assert err != 0, "corrupt batch accepted"
    assert_still_serving(b)


def test_api_versions_unsupported_version_answers_v0(broker):
    """Kafka's rule: an ApiVersions request at a version the broker does not know gets a
    v0 response body with UNSUPPORTED_VERSION and the supported ranges, so the client
    can retry at a version both sides speak."""
    with kwire.connect(broker.port) as s:
        s.sendall(kwire.frame(kwire.header(kwire.API_API_VERSIONS, 127, 42, flexible=True)))
        f = kwire.read_frame(s)
    assert f is not None, "connection closed instead of an UNSUPPORTED_VERSION answer"
    (corr,) = struct.unpack_from(">i", f, 0)
    err, keys = kwire.parse_api_versions_v0(f[4:])
    assert corr == 42
    assert err == kwire.UNSUPPORTED_VERSION
    assert keys[kwire.API_API_VERSIONS][0] == 0 and keys[kwire.API_API_VERSIONS][1] >= 3
    assert kwire.API_METADATA in keys and kwire.API_PRODUCE in keys


def test_pipelined_requests_answered_in_order(broker):
    """1000 requests written back to back without reading: the broker applies
    backpressure (bounded in-flight) and answers all of them, in order."""
    n = 1000
    reqs = b"".join(kwire.frame(kwire.header(kwire.API_API_VERSIONS, i % 3, i)) for i in range(n))
    with kwire.connect(broker.port, timeout_s=15) as s:
        s.sendall(reqs)
        for i in range(n):
            f = kwire.read_frame(s)
            assert f is not None, f"closed after {i} responses"
            (corr,) = struct.unpack_from(">i", f, 0)
            assert corr == i
            (err,) = struct.unpack_from(">h", f, 4)
            assert err == 0


def test_many_stalled_connections_do_not_block_others(healthy_broker):
    """100 connections each holding half a frame (a slow or malicious client): other
    clients are served normally, and the stalled ones cost no declared-size memory."""
    b = healthy_broker
    socks = []
    try:
        for i in range(100):
            s = kwire.connect(b.port)
            # Declares the largest allowed request, sends 10 bytes of it.
            s.sendall(struct.pack(">i", REQUEST_BYTES_MAX) + b"\x00\x03\x00\x01\x00\x00\x00\x01\x00\x00")
            socks.append(s)
        time.sleep(0.3)
        assert_still_serving(b)
    finally:
        for s in socks:
            s.close()
    assert_still_serving(b)


def fetch_v4_many(topic, offsets, max_wait_ms, correlation_id):
    """Fetch v4 of several partitions of one topic: {partition: offset}, min_bytes 1."""
    body = struct.pack(">iiiib", -1, max_wait_ms, 1, 16 << 20, 0)
    body += struct.pack(">i", 1) + kwire.string(topic) + struct.pack(">i", len(offsets))
    for p, o in offsets.items():
        body += struct.pack(">iqi", p, o, 1 << 20)
    return kwire.frame(kwire.header(kwire.API_FETCH, 4, correlation_id) + body)


def test_answered_long_polls_leave_no_waiters_behind(broker, topic_name):
    """A long poll over partitions of both shards, answered by data on one shard, must not
    leave its waiter on the other shard until max.wait.ms: a client long-polling (here for
    60 s) an idle shard's partitions while another shard's get data would otherwise pile
    up waiters without bound (~40 KiB each here: 20 MiB per 500 polls). Each phase feeds
    one partition; partitions 0 and 1 are placed on different shards (least-loaded
    placement), so one of the phases answers from the shard the connection is not on."""
    from clients import create_topic

    partitions = 400
    polls = 1000
    create_topic(broker.bootstrap, topic_name, partitions)
    batch = kwire.record_batch([(None, b"x")], int(time.time() * 1000))
    offsets = {p: 0 for p in range(partitions)}
    corr = 0
    with kwire.connect(broker.port) as fetcher, kwire.connect(broker.port) as producer:

        def poll_once(partition):
            nonlocal corr
            corr += 1
            fetcher.sendall(fetch_v4_many(topic_name, offsets, 60_000, corr))
            time.sleep(0.001)  # the poll is waiting when the record arrives
            producer.sendall(kwire.produce_request(topic_name, partition, batch, correlation_id=corr))
            err, base = kwire.parse_produce_v3(kwire.read_frame(producer))[(topic_name, partition)]
            assert err == 0
            err, hw, records = kwire.parse_fetch_v4(kwire.read_frame(fetcher))[(topic_name, partition)]
            assert (err, hw) == (0, base + 1) and records
            offsets[partition] = hw

        for partition in (0, 1):
            for _ in range(50):  # warm up: first-use allocations are not waiters
                poll_once(partition)
            before = broker.rss_kib()
            for _ in range(polls):
                poll_once(partition)
            growth = broker.rss_kib() - before
            assert growth < 10 * 1024, f"RSS grew by {growth} KiB over {polls} long polls fed by partition {partition}"
