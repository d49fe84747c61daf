"""Small wrappers over confluent-kafka (librdkafka) used by many tests: create a topic,
produce a list of messages and collect the delivery reports, consume assigned partitions
from the beginning until a count is reached. Every wait is bounded."""

import logging
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

OP_TIMEOUT_S = 20.0

# librdkafka's log goes through Python logging: pytest shows it with a failing test's
# report, and a client that outlives its test (held by a traceback) does not print
# reconnect errors after the summary. The NullHandler keeps logging's last-resort
# handler from printing it outside tests.
RDKAFKA_LOG = logging.getLogger("librdkafka")
RDKAFKA_LOG.addHandler(logging.NullHandler())


def conf_for(bootstrap: str, extra=None) -> dict:
    """A client config for `bootstrap`, logging through RDKAFKA_LOG."""
    return {"bootstrap.servers": bootstrap, "logger": RDKAFKA_LOG, **(extra or {})}


def admin(bootstrap: str) -> AdminClient:
    return AdminClient(conf_for(bootstrap))


def create_topic(bootstrap: str, topic: str, partitions: int = 1, config=None):
    a = admin(bootstrap)  # must outlive the futures: its destruction fails them
    fs = a.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config or {})],
        operation_timeout=OP_TIMEOUT_S,
        request_timeout=OP_TIMEOUT_S,
    )
    fs[topic].result(timeout=OP_TIMEOUT_S)


def topic_partitions(bootstrap: str, topic: str) -> int:
    a = admin(bootstrap)
    md = a.list_topics(topic=topic, timeout=OP_TIMEOUT_S)
    t = md.topics[topic]
    if t.error is not None:
        raise KafkaException(t.error)
    return len(t.partitions)


class Delivery:
    """A delivery report: the message as sent plus where (or whether) it landed."""

    __slots__ = ("partition", "offset", "key", "value", "error", "timestamp")

    def __init__(self, msg, err):
        self.error = err
        self.partition = msg.partition()
        self.offset = msg.offset()
        self.key = msg.key()
        self.value = msg.value()
        self.timestamp = msg.timestamp()


def produce_all(bootstrap: str, topic: str, messages, conf=None, flush_timeout_s=60.0):
    """messages: dicts of Producer.produce keyword arguments (value, key, partition,
    headers, timestamp). Returns the delivery reports in delivery order; asserts every
    message was reported."""
    reports = []
    p = Producer(conf_for(bootstrap, {"linger.ms": 5, **(conf or {})}))

    def on_delivery(err, msg):
        reports.append(Delivery(msg, err))

    for m in messages:
        while True:
            try:
                p.produce(topic, on_delivery=on_delivery, **m)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    left = p.flush(flush_timeout_s)
    if left:
        p.purge()
    # Closed now, not at garbage collection: a lingering client keeps reconnecting (and
    # logging) after its broker is gone.
    p.close()
    assert left == 0, f"{left} messages not delivered within {flush_timeout_s}s"
    return reports


def assert_delivered(reports, count):
    errors = [r.error for r in reports if r.error is not None]
    assert not errors, f"{len(errors)} delivery errors, first: {errors[0]}"
    assert len(reports) == count, (len(reports), count)


def consumer(bootstrap: str, conf=None) -> Consumer:
    # A group.id is required by the client; offsets are never committed: these tests
    # assign partitions directly and do not depend on the group coordinator.
    return Consumer(
        conf_for(
            bootstrap,
            {
                "group.id": "riptide-tests",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                **(conf or {}),
            },
        )
    )


def consume(
    bootstrap: str, topic: str, partitions, count: int, timeout_s=60.0, conf=None, offset=OFFSET_BEGINNING, exact=True
):
    """Assign `partitions` of `topic` from `offset` and return the first `count` messages
    (confluent_kafka.Message) in arrival order; fails if they do not arrive in time or an
    error other than end-of-partition is seen. With `exact`, also fails if more arrive."""
    c = consumer(bootstrap, conf)
    try:
        c.assign([TopicPartition(topic, p, offset) for p in partitions])
        out = []
        deadline = time.monotonic() + timeout_s
        while len(out) < count and time.monotonic() < deadline:
            for m in c.consume(num_messages=min(10000, count - len(out)), timeout=0.5):
                if m.error() is not None:
                    if m.error().code() == -191:  # _PARTITION_EOF
                        continue
                    raise KafkaException(m.error())
                out.append(m)
        assert len(out) == count, f"consumed {len(out)} of {count} messages in {timeout_s}s"
        if not exact:
            return out
        # Nothing beyond what was produced.
        extra = c.consume(num_messages=10, timeout=0.3)
        extra = [m for m in extra if m.error() is None]
        assert not extra, f"{len(extra)} unexpected extra messages, first at offset {extra[0].offset()}"
        return out
    finally:
        c.close()


def by_partition(messages):
    out = {}
    for m in messages:
        out.setdefault(m.partition(), []).append(m)
    return out
