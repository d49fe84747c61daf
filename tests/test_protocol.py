"""Kafka's error codes and limits where clients act on them: per-partition Produce
errors, OFFSET_OUT_OF_RANGE, message.max.bytes, LogAppendTime, and the connection
limits connections.max.idle.ms and max.connections."""

import struct
import threading
import time

from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, KafkaError

import kwire
from clients import assert_delivered, consume, create_topic, produce_all

NONE = 0
OFFSET_OUT_OF_RANGE = 1
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
MESSAGE_TOO_LARGE = 10
INVALID_REQUIRED_ACKS = 21


def produce_raw(broker, topic, partition, batch, acks=1, version=3):
    f = kwire.roundtrip(broker.port, kwire.produce_request(topic, partition, batch, acks=acks, version=version))
    assert f is not None, "connection closed instead of a Produce response"
    return kwire.parse_produce_v3(f)[(topic, partition)]


def test_raw_produce_then_fetch(broker, topic_name):
    """The hand-built batch is valid: appended at offset 0, fetched back byte-exact
    except baseOffset/partitionLeaderEpoch (which the broker assigns)."""
    create_topic(broker.bootstrap, topic_name, 1)
    batch = kwire.record_batch([(b"k", b"v"), (None, b"w"), (b"x", None)], 1_700_000_000_000)
    assert produce_raw(broker, topic_name, 0, batch) == (NONE, 0)
    assert produce_raw(broker, topic_name, 0, batch) == (NONE, 3)
    f = kwire.roundtrip(broker.port, kwire.fetch_v4_request(topic_name, 0, 0))
    err, hw, records = kwire.parse_fetch_v4(f)[(topic_name, 0)]
    assert (err, hw) == (NONE, 6)
    bs = kwire.batches(records)
    assert [(b["base_offset"], b["count"], b["crc_ok"]) for b in bs] == [(0, 3, True), (3, 3, True)]
    # Stored verbatim: everything after partitionLeaderEpoch is what we sent.
    assert records[8:12] == batch[8:12] and records[16 : len(batch)] == batch[16:]


def test_pipelined_produces_take_effect_in_send_order(broker, topic_name):
    """400 produce requests written back to back on one connection, over 4 partitions
    (on both shards): the connection reads on without waiting for each append on the
    other shard, yet every partition's appends happen in send order (request i is the
    (i // 4)-th batch of its partition), with acks=0 requests among them, and the
    responses come back in order."""
    parts = 4
    create_topic(broker.bootstrap, topic_name, parts)
    n = 400
    reqs = b""
    for i in range(n):
        batch = kwire.record_batch([(b"k", str(i).encode())], 1_700_000_000_000 + i)
        acks = 0 if i % 10 == 3 else 1
        reqs += kwire.produce_request(topic_name, i % parts, batch, acks=acks, correlation_id=i)
    with kwire.connect(broker.port, timeout_s=30) as s:
        s.sendall(reqs)
        for i in range(n):
            if i % 10 == 3:
                continue
            f = kwire.read_frame(s)
            assert f is not None, f"closed before the response to request {i}"
            (corr,) = struct.unpack_from(">i", f, 0)
            assert corr == i
            got = kwire.parse_produce_v3(f)[(topic_name, i % parts)]
            assert got == (NONE, i // parts), f"request {i}"
    # And the stored records are in that order too.
    for p in range(parts):
        values = [int(m.value()) for m in consume(broker.bootstrap, topic_name, [p], n // parts)]
        assert values == list(range(p, n, parts))


def test_produce_per_partition_errors(broker, topic_name):
    create_topic(broker.bootstrap, topic_name, 1)
    good = kwire.record_batch([(b"k", b"v")], 1_700_000_000_000)
    assert produce_raw(broker, topic_name, 7, good)[0] == UNKNOWN_TOPIC_OR_PARTITION
    bad_crc = kwire.record_batch([(b"k", b"v")], 1_700_000_000_000, corrupt_crc=True)
    assert produce_raw(broker, topic_name, 0, bad_crc)[0] == CORRUPT_MESSAGE
    assert produce_raw(broker, topic_name, 0, good, acks=2)[0] == INVALID_REQUIRED_ACKS
    # Nothing of the rejected requests was written.
    f = kwire.roundtrip(broker.port, kwire.fetch_v4_request(topic_name, 0, 0))
    err, hw, _ = kwire.parse_fetch_v4(f)[(topic_name, 0)]
    assert (err, hw) == (NONE, 0)
    assert produce_raw(broker, topic_name, 0, good) == (NONE, 0)


def test_produce_refusals_write_nothing(broker, topic_name):
    """Produce errors Kafka returns before writing: NOT_ENOUGH_REPLICAS for acks=all when
    the in-sync replicas (one, here) are fewer than the topic's `min.insync.replicas`
    (acks=1 is still taken), INVALID_TIMESTAMP for a CreateTime timestamp further behind
    than `message.timestamp.before.max.ms`, and TRANSACTIONAL_ID_AUTHORIZATION_FAILED for a
    transactional produce (transactions are not implemented yet)."""
    create_topic(
        broker.bootstrap,
        topic_name,
        1,
        config={"min.insync.replicas": "2", "message.timestamp.before.max.ms": "3600000"},
    )
    now_ms = int(time.time() * 1000)
    good = kwire.record_batch([(b"k", b"v")], now_ms)
    assert produce_raw(broker, topic_name, 0, good, acks=-1)[0] == 19  # NOT_ENOUGH_REPLICAS
    stale = kwire.record_batch([(b"k", b"v")], now_ms - 2 * 3600_000)
    assert produce_raw(broker, topic_name, 0, stale)[0] == 32  # INVALID_TIMESTAMP
    f = kwire.roundtrip(broker.port, kwire.produce_request(topic_name, 0, good, transactional_id="tx"))
    assert kwire.parse_produce_v3(f)[(topic_name, 0)][0] == 53
    f = kwire.roundtrip(broker.port, kwire.fetch_v4_request(topic_name, 0, 0))
    assert kwire.parse_fetch_v4(f)[(topic_name, 0)][:2] == (NONE, 0), "a refused produce was written"
    assert produce_raw(broker, topic_name, 0, good, acks=1) == (NONE, 0)


def test_transactional_init_producer_id_is_refused_cleanly(broker):
    """Until transactions exist, a transactional InitProducerId gets an error (and no
    producer id); a non-transactional one gets a fresh id with epoch 0."""
    f = kwire.roundtrip(broker.port, kwire.init_producer_id_v1_request("tx-1"))
    assert kwire.parse_init_producer_id_v1(f) == (53, -1, -1)
    err, pid, epoch = kwire.parse_init_producer_id_v1(kwire.roundtrip(broker.port, kwire.init_producer_id_v1_request(None)))
    assert (err, epoch) == (NONE, 0) and pid >= 0


def test_current_leader_epoch_and_offset_for_leader_epoch(broker, topic_name):
    """KIP-320: ListOffsets and Fetch check `current_leader_epoch` (a newer epoch than the
    leader's is UNKNOWN_LEADER_EPOCH, -1 skips the check), and OffsetForLeaderEpoch answers
    the end offset of the asked epoch (the log end for the current one)."""
    create_topic(broker.bootstrap, topic_name, 1)
    assert_delivered(produce_all(broker.bootstrap, topic_name, [{"value": b"%d" % i} for i in range(7)]), 7)
    f = kwire.roundtrip(broker.port, kwire.list_offsets_v4_request(topic_name, 0, -1))
    err, _ts, offset, epoch = kwire.parse_list_offsets_v4(f)
    assert (err, offset) == (NONE, 7) and epoch >= 0
    f = kwire.roundtrip(broker.port, kwire.list_offsets_v4_request(topic_name, 0, -1, current_leader_epoch=epoch))
    assert kwire.parse_list_offsets_v4(f)[:3:2] == (NONE, 7)
    f = kwire.roundtrip(broker.port, kwire.list_offsets_v4_request(topic_name, 0, -2, current_leader_epoch=epoch + 1))
    assert kwire.parse_list_offsets_v4(f)[0] == 75  # UNKNOWN_LEADER_EPOCH
    f = kwire.roundtrip(broker.port, kwire.fetch_v9_request(topic_name, 0, 0, current_leader_epoch=epoch))
    assert kwire.parse_fetch_v9_partition_error(f) == (NONE, NONE)
    f = kwire.roundtrip(broker.port, kwire.fetch_v9_request(topic_name, 0, 0, current_leader_epoch=epoch + 1))
    assert kwire.parse_fetch_v9_partition_error(f) == (NONE, 75)
    f = kwire.roundtrip(broker.port, kwire.offset_for_leader_epoch_v3_request(topic_name, 0, epoch))
    assert kwire.parse_offset_for_leader_epoch_v3(f) == (NONE, epoch, 7)
    f = kwire.roundtrip(
        broker.port, kwire.offset_for_leader_epoch_v3_request(topic_name, 0, epoch, current_leader_epoch=epoch + 1)
    )
    assert kwire.parse_offset_for_leader_epoch_v3(f)[0] == 75


def test_create_topics_v5_returns_the_topic_config(broker, topic_name):
    """KIP-525: CreateTopics v5+ answers each created topic's configs with their sources
    (the request's override as a topic config, the rest as defaults), as DescribeConfigs
    would, for a validate-only request too."""
    for validate_only in (True, False):
        f = kwire.roundtrip(
            broker.port,
            kwire.create_topics_v5_request(topic_name, 3, {"retention.ms": "123456"}, validate_only=validate_only),
        )
        err, partitions, rf, configs = kwire.parse_create_topics_v5(f)
        assert (err, partitions, rf) == (NONE, 3, 1)
        assert configs is not None and len(configs) > 10, configs
        assert configs["retention.ms"] == ("123456", 1)  # DYNAMIC_TOPIC_CONFIG
        assert configs["cleanup.policy"] == ("delete", 5)  # DEFAULT_CONFIG


def test_fetch_min_bytes_waits_for_enough_data(broker, topic_name):
    """Fetch `min.bytes` above 1: with less data than that the broker holds the fetch for
    `max.wait.ms` and then answers with what it has; when appends bring enough during the
    wait, it answers at once."""
    create_topic(broker.bootstrap, topic_name, 1)
    small = kwire.record_batch([(b"k", b"v")], 1_700_000_000_000)
    assert produce_raw(broker, topic_name, 0, small) == (NONE, 0)
    t0 = time.monotonic()
    f = kwire.roundtrip(broker.port, kwire.fetch_v9_request(topic_name, 0, 0, max_wait_ms=700, min_bytes=50_000))
    waited = time.monotonic() - t0
    assert kwire.parse_fetch_v9_partition_error(f) == (NONE, NONE)
    assert 0.6 <= waited < 5, f"answered after {waited:.3f} s, not after max.wait.ms"
    assert len(f) > len(small), "the data there was not returned after the wait"

    big = kwire.record_batch([(None, b"x" * 60_000)], 1_700_000_000_000)
    done = []

    def fetch():
        t = time.monotonic()
        try:
            request = kwire.fetch_v9_request(topic_name, 0, 0, max_wait_ms=8_000, min_bytes=50_000)
            r = kwire.roundtrip(broker.port, request, timeout_s=20)
        except Exception as e:  # reported below, not lost in the thread
            r = e
        done.append((time.monotonic() - t, r))

    th = threading.Thread(target=fetch)
    th.start()
    time.sleep(0.3)  # the fetch is waiting by now (it fails the checks above otherwise)
    assert produce_raw(broker, topic_name, 0, big) == (NONE, 1)
    th.join(timeout=25)
    assert done, "the fetch did not return"
    waited, f = done[0]
    assert isinstance(f, bytes), f"the fetch failed: {f!r}"
    assert waited < 5, f"a fetch with enough data waited {waited:.3f} s"
    assert len(f) > 60_000


def test_fetch_sessions_are_declined(broker, topic_name):
    """KIP-227 as far as clients need it: a request for a new session (id 0, epoch 0) is
    answered in full with session id 0 (no session created: clients keep sending full
    fetches), and an incremental fetch on a session the broker does not have is
    FETCH_SESSION_ID_NOT_FOUND (clients then start over with a full fetch)."""
    create_topic(broker.bootstrap, topic_name, 1)
    assert produce_raw(broker, topic_name, 0, kwire.record_batch([(b"k", b"v")], 1_700_000_000_000)) == (NONE, 0)
    f = kwire.roundtrip(broker.port, kwire.fetch_v9_request(topic_name, 0, 0, session=(0, 0)))
    assert kwire.parse_fetch_v9_session(f) == (NONE, 0)
    assert kwire.parse_fetch_v9_partition_error(f) == (NONE, NONE)
    f = kwire.roundtrip(broker.port, kwire.fetch_v9_request(topic_name, 0, 0, session=(1234, 1)))
    assert kwire.parse_fetch_v9_session(f)[0] == 70  # FETCH_SESSION_ID_NOT_FOUND


def test_produce_v2_listed_but_rejected(broker, topic_name):
    """Produce v0-2 are advertised (librdkafka needs them listed) and answered with
    UNSUPPORTED_VERSION, as Kafka 4 does — or the connection is closed."""
    _, _, keys = kwire.api_versions(broker.port)
    assert keys[kwire.API_PRODUCE][0] == 0
    create_topic(broker.bootstrap, topic_name, 1)
    batch = kwire.record_batch([(b"k", b"v")], 1_700_000_000_000)
    # v2 has no transactional id: build it by hand.
    body = struct.pack(">hi", 1, 5000) + struct.pack(">i", 1) + kwire.string(topic_name)
    body += struct.pack(">ii", 1, 0) + struct.pack(">i", len(batch)) + batch
    f = kwire.roundtrip(broker.port, kwire.frame(kwire.header(kwire.API_PRODUCE, 2, 1) + body))
    if f is not None:
        assert kwire.UNSUPPORTED_VERSION in (struct.unpack_from(">h", f, i)[0] for i in range(4, len(f) - 1)), f.hex()
    f = kwire.roundtrip(broker.port, kwire.fetch_v4_request(topic_name, 0, 0))
    assert kwire.parse_fetch_v4(f)[(topic_name, 0)][1] == 0, "a Produce v2 record was written"


def test_fetch_offset_out_of_range(broker, topic_name):
    assert_delivered(produce_all(broker.bootstrap, topic_name, [{"value": b"%d" % i} for i in range(10)]), 10)
    f = kwire.roundtrip(broker.port, kwire.fetch_v4_request(topic_name, 0, 11))
    err, hw, records = kwire.parse_fetch_v4(f)[(topic_name, 0)]
    assert (err, hw, records) == (OFFSET_OUT_OF_RANGE, 10, b"")
    # Fetching exactly at the end is not out of range: it is empty (after max wait).
    f = kwire.roundtrip(broker.port, kwire.fetch_v4_request(topic_name, 0, 10))
    assert kwire.parse_fetch_v4(f)[(topic_name, 0)] == (NONE, 10, b"")


def test_message_max_bytes(broker_factory, topic_name):
    b = broker_factory(extra_args=["--set", "message.max.bytes=20000"])
    # The client allows larger messages than the broker: the broker must refuse.
    conf = {"message.max.bytes": 1_000_000, "linger.ms": 0}
    reports = produce_all(b.bootstrap, topic_name, [{"value": b"x" * 50_000, "partition": 0}], conf=conf)
    assert [r.error.code() if r.error else None for r in reports] == [KafkaError.MSG_SIZE_TOO_LARGE]
    reports = produce_all(b.bootstrap, topic_name, [{"value": b"x" * 10_000, "partition": 0}], conf=conf)
    assert_delivered(reports, 1)
    assert reports[0].offset == 0


def test_topic_max_message_bytes(broker, topic_name):
    create_topic(broker.bootstrap, topic_name, 1, {"max.message.bytes": "5000"})
    conf = {"linger.ms": 0}
    reports = produce_all(broker.bootstrap, topic_name, [{"value": b"y" * 20_000, "partition": 0}], conf=conf)
    assert [r.error.code() if r.error else None for r in reports] == [KafkaError.MSG_SIZE_TOO_LARGE]
    assert_delivered(produce_all(broker.bootstrap, topic_name, [{"value": b"y" * 1000, "partition": 0}], conf=conf), 1)


def test_log_append_time(broker, topic_name):
    create_topic(broker.bootstrap, topic_name, 1, {"message.timestamp.type": "LogAppendTime"})
    t0_ms = int(time.time() * 1000)
    msgs = [{"value": b"%d" % i, "partition": 0, "timestamp": 1_000_000_000_000 + i} for i in range(20)]
    assert_delivered(produce_all(broker.bootstrap, topic_name, msgs, conf={"linger.ms": 20}), 20)
    t1_ms = int(time.time() * 1000)
    got = consume(broker.bootstrap, topic_name, [0], 20)
    for m in got:
        kind, ts = m.timestamp()
        assert kind == TIMESTAMP_LOG_APPEND_TIME
        assert t0_ms - 1000 <= ts <= t1_ms + 1000, (ts, t0_ms, t1_ms)
    # The broker recomputed the CRC after stamping (attributes and maxTimestamp are inside it).
    f = kwire.roundtrip(broker.port, kwire.fetch_v4_request(topic_name, 0, 0))
    bs = kwire.batches(kwire.parse_fetch_v4(f)[(topic_name, 0)][2])
    assert bs and all(b["crc_ok"] and b["attributes"] & 0x08 for b in bs)


def test_idle_connection_closed(broker_factory):
    b = broker_factory(extra_args=["--set", "connections.max.idle.ms=1000"])
    with kwire.connect(b.port) as idle, kwire.connect(b.port) as busy:
        for s in (idle, busy):
            s.sendall(kwire.frame(kwire.header(kwire.API_API_VERSIONS, 0, 1)))
            assert kwire.read_frame(s) is not None
        # The busy connection sends a request every 300 ms and must stay open; the idle
        # one must be closed about 1 s after its last request.
        t0 = time.monotonic()
        for i in range(10):
            busy.sendall(kwire.frame(kwire.header(kwire.API_API_VERSIONS, 0, 100 + i)))
            assert kwire.read_frame(busy) is not None, f"busy connection closed after {time.monotonic() - t0:.1f}s"
            time.sleep(0.3)
        what, _ = kwire.outcome(idle, timeout_s=2.0)
        assert what == "closed", f"idle connection still open after {time.monotonic() - t0:.1f}s"


def test_max_connections(broker_factory):
    b = broker_factory(extra_args=["--set", "max.connections=4"])
    time.sleep(0.2)  # the readiness probe's connection is gone
    socks = []
    try:
        for i in range(4):
            s = kwire.connect(b.port)
            s.sendall(kwire.frame(kwire.header(kwire.API_API_VERSIONS, 0, i)))
            assert kwire.read_frame(s) is not None, f"connection {i + 1} of 4 refused"
            socks.append(s)
        with kwire.connect(b.port) as extra:
            try:
                extra.sendall(kwire.frame(kwire.header(kwire.API_API_VERSIONS, 0, 9)))
            except (BrokenPipeError, ConnectionResetError):
                pass
            what, _ = kwire.outcome(extra, timeout_s=3.0)
            assert what == "closed", "a 5th connection was served with max.connections=4"
        # Freeing a slot lets a new connection in.
        socks.pop().close()
        deadline = time.monotonic() + 5
        while True:
            try:
                kwire.api_versions(b.port, timeout_s=2.0)
                break
            except (OSError, ConnectionError):
                assert time.monotonic() < deadline, "no connection accepted after one was closed"
                time.sleep(0.1)
    finally:
        for s in socks:
            s.close()


def _fetch_v4(topic, offsets, max_wait_ms, max_bytes, correlation_id):
    """Fetch v4 of {partition: offset} of one topic, min_bytes 1, 1 MiB per partition."""
    body = struct.pack(">iiiib", -1, max_wait_ms, 1, max_bytes, 0)
    body += struct.pack(">i", 1) + kwire.string(topic) + struct.pack(">i", len(offsets))
    for p, o in offsets.items():
        body += struct.pack(">iqi", p, o, 1 << 20)
    return kwire.frame(kwire.header(kwire.API_FETCH, 4, correlation_id) + body)


def _produce_v3(topic, batch_by_partition, correlation_id):
    """Produce v3, acks=1: one batch for each partition, in one request."""
    body = kwire.string(None) + struct.pack(">hi", 1, 5000)
    body += struct.pack(">i", 1) + kwire.string(topic) + struct.pack(">i", len(batch_by_partition))
    for p, batch in batch_by_partition.items():
        body += struct.pack(">ii", p, len(batch)) + batch
    return kwire.frame(kwire.header(kwire.API_PRODUCE, 3, correlation_id) + body)


def _check_budget(parts, max_bytes):
    """Whole batches only, each partition's data starting at its fetch offset, and at most
    max_bytes in all — unless the response is a single batch (Kafka returns the first batch
    even when it is larger). Returns the number of batches."""
    total_bytes = 0
    total_batches = 0
    for (_, p), (err, _hw, records) in parts.items():
        assert err == 0, (p, err)
        bs = kwire.batches(records)
        whole = sum(12 + struct.unpack_from(">i", records, pos + 8)[0] for pos in _batch_starts(records))
        assert whole == len(records) and len(bs) == len(_batch_starts(records)), f"partition {p}: a partial batch"
        assert all(b["crc_ok"] for b in bs)
        total_bytes += len(records)
        total_batches += len(bs)
    assert total_batches >= 1
    assert total_bytes <= max_bytes or total_batches == 1, f"{total_bytes} bytes in {total_batches} batches for max_bytes {max_bytes}"
    return total_batches


def _batch_starts(records):
    starts, pos = [], 0
    while pos + 12 <= len(records):
        starts.append(pos)
        pos += 12 + struct.unpack_from(">i", records, pos + 8)[0]
    return starts


def test_fetch_max_bytes_is_one_budget_across_shards(broker_factory, topic_name):
    """max_bytes bounds the whole Fetch response when its partitions live on three shards
    — read in turn when data is there, or all waiting at once in a long poll and each
    reading when woken (then the replies are cut back at batch boundaries). The first batch
    is returned even when it is larger than max_bytes."""
    b = broker_factory(cores=3)
    partitions = 6
    create_topic(b.bootstrap, topic_name, partitions)
    batch = kwire.record_batch([(None, b"v" * 1000)], int(time.time() * 1000))
    one = len(batch)
    ends = {p: 0 for p in range(partitions)}
    corr = 0
    with kwire.connect(b.port) as fetcher, kwire.connect(b.port) as producer:

        def produce_all():
            nonlocal corr
            corr += 1
            producer.sendall(_produce_v3(topic_name, {p: batch for p in range(partitions)}, corr))
            acks = kwire.parse_produce_v3(kwire.read_frame(producer))
            for p in range(partitions):
                err, base = acks[(topic_name, p)]
                assert err == 0
                ends[p] = base + 1

        def fetch(offsets, max_wait_ms, max_bytes):
            nonlocal corr
            corr += 1
            fetcher.sendall(_fetch_v4(topic_name, offsets, max_wait_ms, max_bytes, corr))
            return corr

        # Data already there: three batches in every partition.
        for _ in range(3):
            produce_all()
        for max_bytes, batches_max in ((int(2.5 * one), 2), (100, 1), (64 * one, 18)):
            fetch({p: 0 for p in range(partitions)}, 1000, max_bytes)
            parts = kwire.parse_fetch_v4(kwire.read_frame(fetcher))
            n = _check_budget(parts, max_bytes)
            assert n == batches_max, (max_bytes, n)
        # Long polls at the end of every partition, woken by one produce to all of them.
        for _ in range(20):
            offsets = dict(ends)
            t0 = time.monotonic()
            fetch(offsets, 10_000, int(2.5 * one))
            time.sleep(0.005)  # the poll is parked when the records arrive
            produce_all()
            parts = kwire.parse_fetch_v4(kwire.read_frame(fetcher))
            assert time.monotonic() - t0 < 5, "the long poll was not woken by the append"
            _check_budget(parts, int(2.5 * one))


def test_fetch_returns_an_oversized_first_batch_behind_empty_partitions(broker, topic_name):
    """The first batch with data is returned even when larger than max_bytes, also when the
    partitions before it — on another shard, read first — have nothing. Partitions 0 and 1
    are placed on different shards; each one gets the only data once, so one of the two
    rounds has the empty partition on the shard read first. max_wait 0: read once."""
    create_topic(broker.bootstrap, topic_name, 2)
    batch = kwire.record_batch([(None, b"v" * 1000)], int(time.time() * 1000))
    corr = 0
    with kwire.connect(broker.port) as s:
        for full in (0, 1):
            corr += 1
            s.sendall(kwire.produce_request(topic_name, full, batch, correlation_id=corr))
            assert kwire.parse_produce_v3(kwire.read_frame(s))[(topic_name, full)][0] == 0
            empty = 1 - full
            corr += 1
            # partition `empty` is at its end (offset 1 after round 0, 0 before it)
            s.sendall(_fetch_v4(topic_name, {0: 1 if full == 1 else 0, 1: 0}, 0, 100, corr))
            parts = kwire.parse_fetch_v4(kwire.read_frame(s))
            err, _hw, records = parts[(topic_name, full)]
            assert err == 0 and len(kwire.batches(records)) == 1, f"no batch from partition {full} behind empty {empty}"
