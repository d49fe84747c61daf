"""Restarts: a clean stop (SIGTERM) and a kill -9 both keep every topic, config and
acknowledged record; offsets continue where they were. Under the default
log.flush.policy=always an acknowledged record is fsync'd, so kill -9 (which keeps the
page cache anyway) must not lose one.

(kill -9 cannot tell a broker that fsyncs from one that does not: the power-cut tests
of the storage seam prove durability; these prove recovery and bookkeeping.)"""

import signal
import subprocess
import threading
import time

from confluent_kafka import Producer, TopicCollection, TopicPartition
from confluent_kafka.admin import ConfigResource, NewTopic, ResourceType

import kwire
from broker_process import Broker
from clients import (
    OP_TIMEOUT_S,
    admin,
    assert_delivered,
    by_partition,
    conf_for,
    consume,
    consumer,
    create_topic,
    produce_all,
)


def snapshot(bootstrap, topic, partitions):
    """Everything a restart must keep about a topic, as comparable data."""
    a = admin(bootstrap)
    [fut] = a.describe_topics(TopicCollection([topic]), request_timeout=OP_TIMEOUT_S).values()
    d = fut.result(timeout=OP_TIMEOUT_S)
    [cfut] = a.describe_configs([ConfigResource(ResourceType.TOPIC, topic)], request_timeout=OP_TIMEOUT_S).values()
    configs = {k: e.value for k, e in cfut.result(timeout=OP_TIMEOUT_S).items() if not e.is_default}
    c = consumer(bootstrap)
    try:
        marks = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in range(partitions)}
    finally:
        c.close()
    return dict(topic_id=str(d.topic_id), partitions=len(d.partitions), configs=configs, watermarks=marks)


def messages(n, partitions, tag=b""):
    return [
        {
            "partition": i % partitions,
            "key": b"key-%d" % (i % 17),
            "value": tag + b"value-%d" % i,
            "headers": [("i", b"%d" % i)],
            "timestamp": 1_700_000_000_000 + i,
        }
        for i in range(n)
    ]


def as_tuples(msgs):
    """Comparable records, in (partition, offset) order: arrival order across partitions
    is not defined."""
    return sorted((m.partition(), m.offset(), m.key(), m.value(), m.headers(), m.timestamp()[1]) for m in msgs)


def check_restart_keeps_everything(broker, topic_name, kill):
    partitions = 3
    n = 3000
    a = admin(broker.bootstrap)
    fs = a.create_topics(
        [NewTopic(topic_name, partitions, 1, config={"retention.ms": "7200000", "segment.bytes": "1048576"})],
        operation_timeout=OP_TIMEOUT_S,
    )
    fs[topic_name].result(timeout=OP_TIMEOUT_S)
    auto_topic = topic_name + "-auto"
    # Values of ~1 KiB so the log spans several 1 MiB segments.
    msgs = messages(n, partitions)
    for m in msgs:
        m["value"] += b"." * 1000
    assert_delivered(produce_all(broker.bootstrap, topic_name, msgs, conf={"acks": "all"}), n)
    assert_delivered(produce_all(broker.bootstrap, auto_topic, [{"value": b"auto"}]), 1)
    before = snapshot(broker.bootstrap, topic_name, partitions)
    assert before["watermarks"] == {0: (0, 1000), 1: (0, 1000), 2: (0, 1000)}
    stored = as_tuples(consume(broker.bootstrap, topic_name, range(partitions), n))

    if kill:
        broker.kill9()
    else:
        assert broker.stop() == 0, "SIGTERM did not shut the broker down cleanly (exit code)"
    broker.start()

    after = snapshot(broker.bootstrap, topic_name, partitions)
    assert after == before
    assert as_tuples(consume(broker.bootstrap, topic_name, range(partitions), n)) == stored
    [m] = consume(broker.bootstrap, auto_topic, [0], 1)
    assert m.value() == b"auto"
    # New records continue the offsets.
    more = messages(30, partitions, tag=b"after-restart-")
    reports = produce_all(broker.bootstrap, topic_name, more, conf={"acks": "all"})
    assert_delivered(reports, 30)
    assert sorted((r.partition, r.offset) for r in reports) == sorted(
        (p, 1000 + j) for p in range(partitions) for j in range(10)
    )
    got = by_partition(consume(broker.bootstrap, topic_name, range(partitions), n + 30))
    for p in range(partitions):
        assert [m.offset() for m in got[p]] == list(range(1010))


def test_sigterm_with_active_clients_exits_cleanly(broker, topic_name):
    """SIGTERM while consumers' fetches are parked in long polls (on both shards: several
    connections and partitions) and a producer is connected: the broker shuts down
    cleanly (exit code 0, no panic) and promptly."""
    partitions = 4
    create_topic(broker.bootstrap, topic_name, partitions)
    msgs = [{"partition": q, "value": b"x"} for q in range(partitions)]
    assert_delivered(produce_all(broker.bootstrap, topic_name, msgs), partitions)
    consumers = [consumer(broker.bootstrap, {"fetch.wait.max.ms": 5000}) for _ in range(4)]
    p = Producer(conf_for(broker.bootstrap))
    try:
        for c in consumers:
            c.assign([TopicPartition(topic_name, q, 0) for q in range(partitions)])
            got = []
            deadline = time.monotonic() + 10
            while len(got) < partitions and time.monotonic() < deadline:
                got += c.consume(num_messages=partitions, timeout=0.5)
            assert len(got) == partitions
        time.sleep(0.5)  # every consumer is now parked at the end of every partition
        p.list_topics(timeout=5)
        t0 = time.monotonic()
        code = broker.stop(timeout_s=10)
        took_s = time.monotonic() - t0
    finally:
        for c in consumers:
            c.close()
        p.close()
    log = broker.log_path.read_text(errors="replace")
    assert "panicked" not in log, broker.log_tail(40)
    assert code == 0, f"exit code {code}"
    assert took_s < 8, f"shutdown took {took_s:.1f}s"


def test_clean_restart_keeps_everything(broker, topic_name):
    check_restart_keeps_everything(broker, topic_name, kill=False)


def test_kill9_restart_keeps_everything(broker, topic_name):
    check_restart_keeps_everything(broker, topic_name, kill=True)


def test_kill9_during_acks_all_produce_keeps_acknowledged(broker, topic_name):
    """A producer with acks=all writes continuously; the broker is killed -9 mid-stream and
    restarted. Every record whose delivery was acknowledged is there, at its offset."""
    partitions = 3
    a = admin(broker.bootstrap)
    a.create_topics([NewTopic(topic_name, partitions, 1)], operation_timeout=OP_TIMEOUT_S)[topic_name].result(
        timeout=OP_TIMEOUT_S
    )
    acked = []  # (partition, offset, value)
    failed = []
    lock = threading.Lock()

    def on_delivery(err, msg):
        with lock:
            (failed if err else acked).append((msg.partition(), msg.offset(), msg.value()))

    p = Producer(
        conf_for(
            broker.bootstrap,
            {
                "acks": "all",
                "linger.ms": 2,
                "message.timeout.ms": 3000,
                "retries": 0,
            },
        )
    )
    stop = threading.Event()

    def run():
        i = 0
        while not stop.is_set():
            try:
                p.produce(topic_name, value=b"r%d" % i, partition=i % partitions, on_delivery=on_delivery)
                i += 1
            except BufferError:
                pass
            p.poll(0.001 if i % 100 == 0 else 0)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with lock:
            if len(acked) >= 5000:
                break
        time.sleep(0.01)
    broker.kill9()
    time.sleep(0.2)
    stop.set()
    t.join(10)
    # Collect the remaining reports (they fail: the broker is gone), then drop the client.
    p.flush(5)
    p.purge()
    p.flush(1)
    p.close()
    with lock:
        acked_now = list(acked)
    assert len(acked_now) >= 5000, f"only {len(acked_now)} records acknowledged before the kill"

    broker.start()
    c = consumer(broker.bootstrap)
    try:
        ends = {q: c.get_watermark_offsets(TopicPartition(topic_name, q), timeout=10)[1] for q in range(partitions)}
    finally:
        c.close()
    total = sum(ends.values())
    stored = {
        (m.partition(), m.offset()): m.value() for m in consume(broker.bootstrap, topic_name, range(partitions), total)
    }
    missing = [(q, o, v) for q, o, v in acked_now if stored.get((q, o)) != v]
    assert not missing, f"{len(missing)} of {len(acked_now)} acknowledged records lost or changed, first: {missing[:3]}"


def partition_dirs(data_dir, topic):
    """The partition directories of `topic` in a data directory, with their segment files."""
    return {
        d.name: sorted(f.name for f in d.iterdir() if f.suffix == ".log")
        for d in data_dir.iterdir()
        if d.is_dir() and d.name.startswith(topic + "-") and d.name[len(topic) + 1 :].isdigit()
    }


def test_kill9_keeps_producer_state_for_retried_duplicates(broker, topic_name):
    """An idempotent producer's state survives a crash. It is snapshotted when a segment
    rolls (Kafka), and after kill -9 it is rebuilt from that snapshot plus the log tail:
    a retried batch among the producer's last 5 is answered with its original offset and
    not written again, a sequence gap is OUT_OF_ORDER_SEQUENCE_NUMBER, and the next
    sequence appends."""
    create_topic(broker.bootstrap, topic_name, 1, config={"segment.bytes": str(1 << 20)})
    pid, value, now_ms = 4242, b"x" * 60_000, int(time.time() * 1000)

    def produce(seq):
        batch = kwire.record_batch(
            [(None, value)], now_ms + seq, producer_id=pid, producer_epoch=0, base_sequence=seq
        )
        resp = kwire.roundtrip(broker.port, kwire.produce_request(topic_name, 0, batch, acks=-1))
        assert resp is not None, f"connection closed on sequence {seq}"
        return kwire.parse_produce_v3(resp)[(topic_name, 0)]

    offsets = []
    for seq in range(40):  # 2.4 MB into 1 MiB segments: two rolls
        err, base = produce(seq)
        assert err == 0, f"sequence {seq}: error {err}"
        offsets.append(base)
    assert offsets == list(range(40))
    part_dir = broker.data_dir / f"{topic_name}-0"
    segments = sorted(part_dir.glob("*.log"))
    assert len(segments) >= 3, f"expected rolls, found {[p.name for p in segments]}"
    snapshot = part_dir / "producer.snapshot"
    deadline = time.monotonic() + 5
    while not snapshot.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert snapshot.exists(), "no producer-state snapshot after the segment rolled"

    broker.restart(kill=True)
    for seq in (39, 37, 35):
        assert produce(seq) == (0, offsets[seq]), f"retry of sequence {seq} not answered as a duplicate"
    c = consumer(broker.bootstrap)
    try:
        lo_hi = c.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=OP_TIMEOUT_S)
    finally:
        c.close()
    assert lo_hi == (0, 40), f"watermarks {lo_hi}: a retry was written again"
    assert produce(41)[0] == 45, "a sequence gap after the restart was not OUT_OF_ORDER_SEQUENCE_NUMBER"
    assert produce(40) == (0, 40)


def test_restart_with_other_shard_count_keeps_placement_and_data(broker_factory, topic_name):
    """Placement survives a change of the shard count: a partition's data is where it
    was; ownership moves, not files. Written with 2 shards, read back with 1 (the
    partitions of shard 1 now owned by shard 0), then written and read with 2 again."""
    partitions = 6
    per_partition = 1200
    broker = broker_factory(cores=2)
    create_topic(broker.bootstrap, topic_name, partitions, config={"segment.bytes": "1048576"})
    msgs = [
        {
            "partition": q,
            "key": b"k-%d-%d" % (q, i),
            "value": b"v-%d-%d-" % (q, i) + b"x" * 1000,
            "timestamp": 1_700_000_000_000 + i,
        }
        for i in range(per_partition)
        for q in range(partitions)
    ]
    reports = produce_all(broker.bootstrap, topic_name, msgs, conf={"acks": "all"})
    assert_delivered(reports, len(msgs))
    # Every partition got its records at offsets 0..per_partition.
    landed = sorted((r.partition, r.offset, r.key) for r in reports)
    assert landed == sorted(
        (q, i, b"k-%d-%d" % (q, i)) for q in range(partitions) for i in range(per_partition)
    ), "records landed out of order or on the wrong partition"
    dirs_before = partition_dirs(broker.data_dir, topic_name)
    assert sorted(dirs_before) == sorted(f"{topic_name}-{q}" for q in range(partitions))
    # 1200 records of ~1 KiB on 1 MiB segments: several segments per partition.
    assert all(len(logs) >= 2 for logs in dirs_before.values()), dirs_before
    before = snapshot(broker.bootstrap, topic_name, partitions)
    assert before["watermarks"] == {q: (0, per_partition) for q in range(partitions)}
    stored = as_tuples(consume(broker.bootstrap, topic_name, range(partitions), len(msgs)))

    # One shard: it owns every partition, including those shard 1 wrote.
    assert broker.stop() == 0, "SIGTERM did not shut the broker down cleanly (exit code)"
    broker.cores = 1
    broker.start()
    assert partition_dirs(broker.data_dir, topic_name) == dirs_before, "files moved"
    assert snapshot(broker.bootstrap, topic_name, partitions) == before
    assert as_tuples(consume(broker.bootstrap, topic_name, range(partitions), len(msgs))) == stored
    for m in consume(broker.bootstrap, topic_name, range(partitions), len(msgs)):
        q, i = m.partition(), m.offset()
        assert m.key() == b"k-%d-%d" % (q, i)
        assert m.value() == b"v-%d-%d-" % (q, i) + b"x" * 1000
    # Writes continue the offsets of every partition on the single shard.
    more = [{"partition": q, "key": b"one-%d" % q, "value": b"one-shard-%d" % q} for q in range(partitions)]
    reports = produce_all(broker.bootstrap, topic_name, more, conf={"acks": "all"})
    assert_delivered(reports, partitions)
    assert sorted((r.partition, r.offset) for r in reports) == [(q, per_partition) for q in range(partitions)]

    # Back to two shards: ownership moves back; the data written by one shard stays.
    assert broker.stop() == 0
    broker.cores = 2
    broker.start()
    dirs_now = partition_dirs(broker.data_dir, topic_name)
    assert sorted(dirs_now) == sorted(dirs_before), "partition directories changed"
    more2 = [{"partition": q, "key": b"two-%d" % q, "value": b"two-shards-%d" % q} for q in range(partitions)]
    reports = produce_all(broker.bootstrap, topic_name, more2, conf={"acks": "all"})
    assert_delivered(reports, partitions)
    assert sorted((r.partition, r.offset) for r in reports) == [(q, per_partition + 1) for q in range(partitions)]
    total = len(msgs) + 2 * partitions
    got = by_partition(consume(broker.bootstrap, topic_name, range(partitions), total))
    for q in range(partitions):
        assert [m.offset() for m in got[q]] == list(range(per_partition + 2))
        assert [m.key() for m in got[q][:per_partition]] == [b"k-%d-%d" % (q, i) for i in range(per_partition)]
        assert got[q][per_partition].value() == b"one-shard-%d" % q
        assert got[q][per_partition + 1].value() == b"two-shards-%d" % q


def watermarks(bootstrap, topic, partition):
    c = consumer(bootstrap)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    finally:
        c.close()


def test_retention_deletes_an_idle_partitions_only_segment(broker_factory, topic_name):
    """A partition whose only (active) segment expired does not keep its data forever:
    retention rolls it (as Kafka does) and deletes it; the log start moves to the log end,
    new records continue the offsets, and the log start survives a restart."""
    broker = broker_factory(extra_args=["--set", "log.retention.check.interval.ms=200"])
    create_topic(broker.bootstrap, topic_name, 1, config={"retention.ms": "3000"})
    msgs = [{"partition": 0, "value": b"old-%d" % i} for i in range(20)]
    assert_delivered(produce_all(broker.bootstrap, topic_name, msgs, conf={"acks": "all"}), 20)
    assert watermarks(broker.bootstrap, topic_name, 0) == (0, 20)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and watermarks(broker.bootstrap, topic_name, 0)[0] == 0:
        time.sleep(0.2)
    assert watermarks(broker.bootstrap, topic_name, 0) == (20, 20), "the expired active segment was kept"
    data = broker.data_dir / f"{topic_name}-0"
    assert sorted(f.name for f in data.iterdir() if f.suffix == ".log") == ["%020d.log" % 20]
    reports = produce_all(broker.bootstrap, topic_name, [{"partition": 0, "value": b"new"}], conf={"acks": "all"})
    assert_delivered(reports, 1)
    assert reports[0].offset == 20
    [m] = consume(broker.bootstrap, topic_name, [0], 1)
    assert (m.offset(), m.value()) == (20, b"new")
    assert broker.stop() == 0
    broker.start()
    low, high = watermarks(broker.bootstrap, topic_name, 0)
    assert low >= 20 and high == 21, (low, high)


def test_second_broker_on_a_running_brokers_directory_or_port_exits(broker, tmp_path):
    """Kafka's `.lock`: a second broker process on a running broker's data directory exits
    with an error instead of writing the same segments. One on its port exits too: the
    shards bind with SO_REUSEPORT, which would let it take a share of the connections.
    The first broker keeps serving."""
    same_dir = Broker(broker.data_dir, tmp_path / "same-dir.log")
    r = subprocess.run(same_dir.command(), capture_output=True, timeout=60, cwd=tmp_path)
    assert r.returncode != 0, r.stderr
    assert b"another broker process is using data directory" in r.stderr, r.stderr
    same_port = Broker(tmp_path / "other-data", tmp_path / "same-port.log", port=broker.port)
    r = subprocess.run(same_port.command(), capture_output=True, timeout=60, cwd=tmp_path)
    assert r.returncode != 0, r.stderr
    assert f"failed to bind to 127.0.0.1:{broker.port}".encode() in r.stderr, r.stderr
    kwire.api_versions(broker.port, timeout_s=5.0)
    assert broker.alive()


def test_command_line_and_config_file_against_the_binary(broker_factory, tmp_path, topic_name):
    """The broker's command line as an operator meets it: an invalid value exits non-zero
    naming the key (on the command line and in a `--config` file); an unknown broker key
    is only a warning; `--config server.properties` is read and `--set` overrides it;
    SIGINT shuts down cleanly (exit 0) and the next start has everything."""
    bad = Broker(tmp_path / "bad-data", tmp_path / "bad.log", extra_args=["--set", "log.segment.bytes=lots"])
    r = subprocess.run(bad.command(), capture_output=True, timeout=60, cwd=tmp_path)
    assert r.returncode != 0 and b"log.segment.bytes" in r.stderr, r.stderr
    props = tmp_path / "server.properties"
    props.write_text("num.partitions=lots\n")
    bad = Broker(tmp_path / "bad-data", tmp_path / "bad.log", extra_args=["--config", str(props)])
    r = subprocess.run(bad.command(), capture_output=True, timeout=60, cwd=tmp_path)
    assert r.returncode != 0 and b"num.partitions" in r.stderr, r.stderr

    props.write_text("# Kafka-style keys\nnum.partitions=3\nno.such.broker.key=1\nlog.retention.hours=5\n")
    b = broker_factory(extra_args=["--config", str(props), "--set", "log.retention.hours=7"])
    # Auto-creation takes num.partitions from the file.
    assert_delivered(produce_all(b.bootstrap, topic_name, [{"value": b"x"}]), 1)
    a = admin(b.bootstrap)
    md = a.list_topics(topic_name, timeout=OP_TIMEOUT_S)
    assert len(md.topics[topic_name].partitions) == 3
    res = ConfigResource(ResourceType.BROKER, "1")
    entries = a.describe_configs([res])[res].result(timeout=OP_TIMEOUT_S)
    assert entries["log.retention.hours"].value == "7", "--set did not override the file"
    log = b.log_path.read_text(errors="replace")
    assert "no.such.broker.key" in log, "unknown broker key not warned about"

    b.proc.send_signal(signal.SIGINT)
    assert b.proc.wait(timeout=60) == 0, "SIGINT did not exit cleanly"
    b.proc = None
    assert "stopped" in b.log_path.read_text(errors="replace")
    b.start()
    md = admin(b.bootstrap).list_topics(topic_name, timeout=OP_TIMEOUT_S)
    assert len(md.topics[topic_name].partitions) == 3
