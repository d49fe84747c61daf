"""Topic administration through confluent-kafka's AdminClient: CreateTopics (configs,
validate_only, broker defaults, errors), DeleteTopics, CreatePartitions, DescribeConfigs,
AlterConfigs, IncrementalAlterConfigs, DescribeCluster — with Kafka's error codes."""

import time

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from clients import OP_TIMEOUT_S, admin, assert_delivered, consume, produce_all, topic_partitions

T = dict(operation_timeout=OP_TIMEOUT_S, request_timeout=OP_TIMEOUT_S)


def result(fut):
    return fut.result(timeout=OP_TIMEOUT_S)


def error_code(fut):
    """The KafkaError code a future failed with (None if it succeeded)."""
    try:
        fut.result(timeout=OP_TIMEOUT_S)
    except KafkaException as e:
        return e.args[0].code()
    return None


def topics(a):
    return set(a.list_topics(timeout=OP_TIMEOUT_S).topics)


def topic_configs(a, topic):
    [fut] = a.describe_configs([ConfigResource(ResourceType.TOPIC, topic)], request_timeout=OP_TIMEOUT_S).values()
    return result(fut)


def test_create_topic_with_configs(broker, topic_name):
    a = admin(broker.bootstrap)
    fs = a.create_topics(
        [NewTopic(topic_name, 3, 1, config={"retention.ms": "123456", "cleanup.policy": "delete"})], **T
    )
    assert result(fs[topic_name]) is None
    assert topic_name in topics(a)
    assert topic_partitions(broker.bootstrap, topic_name) == 3
    md = a.list_topics(topic=topic_name, timeout=OP_TIMEOUT_S).topics[topic_name]
    for p in md.partitions.values():
        assert (p.leader, p.replicas, p.isrs) == (1, [1], [1])
    # Every partition takes writes.
    msgs = [{"partition": i % 3, "value": b"%d" % i} for i in range(30)]
    assert_delivered(produce_all(broker.bootstrap, topic_name, msgs), 30)
    assert len(consume(broker.bootstrap, topic_name, range(3), 30)) == 30


def test_create_topic_validate_only_creates_nothing(broker, topic_name):
    a = admin(broker.bootstrap)
    fs = a.create_topics([NewTopic(topic_name, 2, 1)], validate_only=True, **T)
    assert result(fs[topic_name]) is None
    assert topic_name not in topics(a)
    # validate_only still validates.
    fs = a.create_topics([NewTopic(topic_name, 2, 1, config={"no.such.config": "1"})], validate_only=True, **T)
    assert error_code(fs[topic_name]) == KafkaError.INVALID_CONFIG
    assert topic_name not in topics(a)


def test_create_topic_broker_defaults(broker, topic_name):
    """num_partitions and replication_factor -1 mean the broker's num.partitions (1) and
    default.replication.factor (1)."""
    a = admin(broker.bootstrap)
    fs = a.create_topics([NewTopic(topic_name, num_partitions=-1, replication_factor=-1)], **T)
    assert result(fs[topic_name]) is None
    assert topic_partitions(broker.bootstrap, topic_name) == 1


def test_create_topic_errors(broker, topic_name):
    a = admin(broker.bootstrap)
    assert result(a.create_topics([NewTopic(topic_name, 1, 1)], **T)[topic_name]) is None
    cases = [
        (NewTopic(topic_name, 1, 1), KafkaError.TOPIC_ALREADY_EXISTS),
        (NewTopic(topic_name + "-cfg", 1, 1, config={"retention.ms": "not-a-number"}), KafkaError.INVALID_CONFIG),
        (NewTopic(topic_name + "-key", 1, 1, config={"no.such.config": "x"}), KafkaError.INVALID_CONFIG),
        (NewTopic(topic_name + "-rf", 1, 3), KafkaError.INVALID_REPLICATION_FACTOR),
        (NewTopic(topic_name + "-p0", 0, 1), KafkaError.INVALID_PARTITIONS),
        (NewTopic("bad/name", 1, 1), KafkaError.TOPIC_EXCEPTION),
        (NewTopic("x" * 250, 1, 1), KafkaError.TOPIC_EXCEPTION),
    ]
    for new_topic, want in cases:
        fs = a.create_topics([new_topic], **T)
        got = error_code(fs[new_topic.topic])
        assert got == want, f"{new_topic.topic[:40]}: {got} != {want}"
    assert topics(a) & {c[0].topic for c in cases} == {topic_name}


def test_delete_topics(broker, topic_name):
    a = admin(broker.bootstrap)
    assert result(a.create_topics([NewTopic(topic_name, 2, 1)], **T)[topic_name]) is None
    assert_delivered(produce_all(broker.bootstrap, topic_name, [{"partition": 0, "value": b"x"}]), 1)
    assert result(a.delete_topics([topic_name], **T)[topic_name]) is None
    assert topic_name not in topics(a)
    assert error_code(a.delete_topics([topic_name], **T)[topic_name]) == KafkaError.UNKNOWN_TOPIC_OR_PART
    # The name can be used again, and the new topic starts empty.
    assert result(a.create_topics([NewTopic(topic_name, 1, 1)], **T)[topic_name]) is None
    assert_delivered(produce_all(broker.bootstrap, topic_name, [{"partition": 0, "value": b"new"}]), 1)
    [m] = consume(broker.bootstrap, topic_name, [0], 1)
    assert (m.offset(), m.value()) == (0, b"new")


def test_create_partitions(broker, topic_name):
    a = admin(broker.bootstrap)
    assert result(a.create_topics([NewTopic(topic_name, 1, 1)], **T)[topic_name]) is None
    assert result(a.create_partitions([NewPartitions(topic_name, 4)], **T)[topic_name]) is None
    deadline = time.monotonic() + 10
    while topic_partitions(broker.bootstrap, topic_name) != 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert topic_partitions(broker.bootstrap, topic_name) == 4
    msgs = [{"partition": p, "value": b"p%d" % p} for p in range(4)]
    assert_delivered(produce_all(broker.bootstrap, topic_name, msgs), 4)
    assert sorted(m.value() for m in consume(broker.bootstrap, topic_name, range(4), 4)) == [b"p0", b"p1", b"p2", b"p3"]
    # Partitions can only grow.
    assert (
        error_code(a.create_partitions([NewPartitions(topic_name, 2)], **T)[topic_name])
        == KafkaError.INVALID_PARTITIONS
    )
    assert (
        error_code(a.create_partitions([NewPartitions(topic_name + "-missing", 2)], **T)[topic_name + "-missing"])
        == KafkaError.UNKNOWN_TOPIC_OR_PART
    )


def test_describe_configs_topic(broker, topic_name):
    a = admin(broker.bootstrap)
    fs = a.create_topics([NewTopic(topic_name, 1, 1, config={"retention.ms": "3600000"})], **T)
    assert result(fs[topic_name]) is None
    entries = topic_configs(a, topic_name)
    r = entries["retention.ms"]
    assert r.value == "3600000"
    assert r.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert not r.is_default
    # Keys not set on the topic report Kafka's defaults.
    c = entries["cleanup.policy"]
    assert (c.value, c.is_default) == ("delete", True)
    assert entries["max.message.bytes"].value == "1048588"
    for key in ("segment.bytes", "retention.bytes", "min.insync.replicas", "message.timestamp.type"):
        assert key in entries, key


def test_describe_configs_broker(broker):
    a = admin(broker.bootstrap)
    [fut] = a.describe_configs([ConfigResource(ResourceType.BROKER, "1")], request_timeout=OP_TIMEOUT_S).values()
    entries = result(fut)
    assert entries["num.partitions"].value == "1"
    assert entries["auto.create.topics.enable"].value == "true"
    assert entries["log.flush.policy"].value == "always"


@pytest.mark.filterwarnings("ignore:alter_configs has been deprecated")
def test_alter_configs(broker, topic_name):
    a = admin(broker.bootstrap)
    fs = a.create_topics([NewTopic(topic_name, 1, 1, config={"retention.ms": "1000000"})], **T)
    assert result(fs[topic_name]) is None
    # AlterConfigs replaces the whole set: retention.ms goes back to its default.
    res = ConfigResource(ResourceType.TOPIC, topic_name, set_config={"cleanup.policy": "compact"})
    [fut] = a.alter_configs([res], request_timeout=OP_TIMEOUT_S).values()
    assert result(fut) is None
    entries = topic_configs(a, topic_name)
    assert entries["cleanup.policy"].value == "compact"
    assert entries["retention.ms"].is_default
    # An invalid value is rejected and changes nothing.
    res = ConfigResource(ResourceType.TOPIC, topic_name, set_config={"cleanup.policy": "sometimes"})
    [fut] = a.alter_configs([res], request_timeout=OP_TIMEOUT_S).values()
    assert error_code(fut) == KafkaError.INVALID_CONFIG
    assert topic_configs(a, topic_name)["cleanup.policy"].value == "compact"


def test_incremental_alter_configs(broker, topic_name):
    a = admin(broker.bootstrap)
    fs = a.create_topics([NewTopic(topic_name, 1, 1, config={"retention.ms": "1000000"})], **T)
    assert result(fs[topic_name]) is None
    res = ConfigResource(
        ResourceType.TOPIC,
        topic_name,
        incremental_configs=[
            ConfigEntry("segment.bytes", "2097152", incremental_operation=AlterConfigOpType.SET),
        ],
    )
    [fut] = a.incremental_alter_configs([res], request_timeout=OP_TIMEOUT_S).values()
    assert result(fut) is None
    entries = topic_configs(a, topic_name)
    # SET adds one key and keeps the others (unlike AlterConfigs).
    assert entries["segment.bytes"].value == "2097152"
    assert entries["retention.ms"].value == "1000000"
    res = ConfigResource(
        ResourceType.TOPIC,
        topic_name,
        incremental_configs=[ConfigEntry("retention.ms", "", incremental_operation=AlterConfigOpType.DELETE)],
    )
    [fut] = a.incremental_alter_configs([res], request_timeout=OP_TIMEOUT_S).values()
    assert result(fut) is None
    entries = topic_configs(a, topic_name)
    assert entries["retention.ms"].is_default
    assert entries["segment.bytes"].value == "2097152"


def test_describe_cluster_and_topics(broker, topic_name):
    a = admin(broker.bootstrap)
    assert result(a.create_topics([NewTopic(topic_name, 2, 1)], **T)[topic_name]) is None
    cluster = result(a.describe_cluster(request_timeout=OP_TIMEOUT_S))
    assert [(n.id, n.host, n.port) for n in cluster.nodes] == [(1, "127.0.0.1", broker.port)]
    assert cluster.controller.id == 1
    assert cluster.cluster_id
    [fut] = a.describe_topics(TopicCollection([topic_name]), request_timeout=OP_TIMEOUT_S).values()
    d = result(fut)
    assert d.name == topic_name
    assert len(d.partitions) == 2
    assert str(d.topic_id) not in ("", "AAAAAAAAAAAAAAAAAAAAAA"), "topic id missing (zero UUID)"


def test_auto_create_on_metadata(broker, topic_name):
    """auto.create.topics.enable (default true): producing to an unknown topic creates it
    with num.partitions (1)."""
    assert_delivered(produce_all(broker.bootstrap, topic_name, [{"value": b"auto"}]), 1)
    assert topic_partitions(broker.bootstrap, topic_name) == 1


def test_auto_create_disabled(broker_factory, topic_name):
    b = broker_factory(extra_args=["--set", "auto.create.topics.enable=false"])
    a = admin(b.bootstrap)
    md = a.list_topics(topic=topic_name, timeout=OP_TIMEOUT_S)
    t = md.topics.get(topic_name)
    assert t is not None and t.error is not None and t.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    assert topic_name not in topics(a)


@pytest.mark.parametrize("partitions", [1, 3])
def test_num_partitions_broker_setting(broker_factory, topic_name, partitions):
    b = broker_factory(extra_args=["--set", f"num.partitions={partitions}"])
    assert_delivered(produce_all(b.bootstrap, topic_name, [{"value": b"x"}]), 1)
    assert topic_partitions(b.bootstrap, topic_name) == partitions
