"""Restarts: a clean stop (SIGTERM) and a kill -9 both keep every topic, config and
acknowledged record; offsets continue where they were. Under the default
log.flush.policy=always an acknowledged record is fsync'd, so kill -9 (which keeps the
page cache anyway) must not lose one.

(kill -9 cannot tell a broker that fsyncs from one that does not: the power-cut tests
of the storage seam prove durability; these prove recovery and bookkeeping.)"""

import threading
import time

from confluent_kafka import Producer, TopicCollection, TopicPartition
from confluent_kafka.admin import ConfigResource, NewTopic, ResourceType

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
