"""Consumer groups and committed offsets (issue 5), driven with librdkafka (confluent-kafka)
and kafka-python: commit and resume, partitions split without overlap, eviction of a
silent member after session.timeout.ms, cooperative-sticky incremental rebalances, static
membership, admin list/describe/delete (AdminClient and `riptide groups`), and committed
offsets across restarts.

Brokers here run with group.initial.rebalance.delay.ms=0 (as Kafka's own tests do) unless
a test is about that delay, and group.min.session.timeout.ms=1000 so session timeouts of
a few seconds keep the eviction tests short."""

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from broker_process import riptide_bin
from clients import produce_all

FAST = ["--set", "group.initial.rebalance.delay.ms=0", "--set", "group.min.session.timeout.ms=1000"]
WAIT_S = 30.0


@pytest.fixture
def gbroker(broker_factory):
    return broker_factory(extra_args=FAST)


def group_name():
    return f"g-{uuid.uuid4().hex[:8]}"


def create_topic(bootstrap, topic, partitions):
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic].result(60)


def fill(bootstrap, topic, partitions, per_partition):
    produce_all(
        bootstrap,
        topic,
        [{"value": f"{p}-{i}".encode(), "partition": p} for p in range(partitions) for i in range(per_partition)],
    )


def ck_consumer(bootstrap, group, **conf):
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
            **conf,
        }
    )


def poll_until(consumers, cond, timeout_s=WAIT_S, what="condition"):
    """Poll every consumer (keeping them alive in the group) until cond() holds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for c in consumers:
            m = c.poll(0.1)
            if m is not None and m.error() is not None and m.error().code() != -191:
                raise KafkaException(m.error())
        if cond():
            return
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def partitions_of(c):
    return {tp.partition for tp in c.assignment()}


# ----- commit and resume -------------------------------------------------------------------


def consume_n(c, n, timeout_s=WAIT_S):
    out = []
    deadline = time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None or m.error() is not None:
            continue
        out.append(m)
    assert len(out) == n, f"consumed {len(out)} of {n}"
    return out


def test_commit_and_resume_confluent(gbroker, topic_name):
    create_topic(gbroker.bootstrap, topic_name, 2)
    fill(gbroker.bootstrap, topic_name, 2, 10)
    group = group_name()
    c = ck_consumer(gbroker.bootstrap, group)
    c.subscribe([topic_name])
    first = consume_n(c, 8)
    c.commit(asynchronous=False)
    committed = c.committed([TopicPartition(topic_name, p) for p in range(2)], timeout=10)
    seen = {p: max([m.offset() for m in first if m.partition() == p], default=-1) for p in range(2)}
    assert {tp.partition: tp.offset for tp in committed} == {p: seen[p] + 1 if seen[p] >= 0 else -1001 for p in range(2)}
    c.close()

    c2 = ck_consumer(gbroker.bootstrap, group)
    c2.subscribe([topic_name])
    rest = consume_n(c2, 12)
    firsts = {p: min(m.offset() for m in rest if m.partition() == p) for p in {m.partition() for m in rest}}
    for p, off in firsts.items():
        assert off == seen[p] + 1, f"partition {p} resumed at {off}, committed {seen[p] + 1}"
    got = {(m.partition(), m.offset()) for m in first} | {(m.partition(), m.offset()) for m in rest}
    assert got == {(p, o) for p in range(2) for o in range(10)}, "every record exactly once"
    c2.close()


# (0, 10, 1) and older fetch with Fetch v3-: below Kafka 4's minimum (Fetch v4), so not served.
KAFKA_PYTHON_VERSIONS = [None, (2, 3), (2, 0), (1, 0), (0, 11)]


@pytest.mark.parametrize("api_version", KAFKA_PYTHON_VERSIONS, ids=lambda v: "auto" if v is None else ".".join(map(str, v)))
def test_commit_and_resume_kafka_python(gbroker, topic_name, api_version):
    """kafka-python picks each API's version from the broker version it is told (or
    infers): pinned versions exercise old JoinGroup/SyncGroup/OffsetCommit/OffsetFetch."""
    from kafka import KafkaConsumer

    create_topic(gbroker.bootstrap, topic_name, 1)
    fill(gbroker.bootstrap, topic_name, 1, 10)
    group = group_name()
    extra = {} if api_version is None else {"api_version": api_version}

    def consumer():
        c = KafkaConsumer(
            topic_name,
            bootstrap_servers=gbroker.bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            consumer_timeout_ms=15000,
            **extra,
        )
        return c

    c = consumer()
    got = []
    for m in c:
        got.append(m.offset)
        if len(got) == 4:
            break
    c.commit()
    c.close()
    c = consumer()
    rest = []
    for m in c:
        rest.append(m.offset)
        if len(rest) == 6:
            break
    c.close()
    assert got == [0, 1, 2, 3]
    assert rest == [4, 5, 6, 7, 8, 9]


# ----- membership ----------------------------------------------------------------------------


def test_two_consumers_split_then_survivor_takes_all_confluent(gbroker, topic_name):
    create_topic(gbroker.bootstrap, topic_name, 4)
    group = group_name()
    c1 = ck_consumer(gbroker.bootstrap, group)
    c2 = ck_consumer(gbroker.bootstrap, group)
    c1.subscribe([topic_name])
    c2.subscribe([topic_name])
    poll_until(
        [c1, c2],
        lambda: len(partitions_of(c1)) == 2 and len(partitions_of(c2)) == 2,
        what="a 2+2 split",
    )
    assert partitions_of(c1).isdisjoint(partitions_of(c2))
    assert partitions_of(c1) | partitions_of(c2) == {0, 1, 2, 3}
    c2.close()
    poll_until([c1], lambda: partitions_of(c1) == {0, 1, 2, 3}, what="the survivor owning all 4")
    c1.close()


class KafkaPythonMember:
    """A kafka-python consumer in its own process, reporting its assignment on stdout.
    (Two kafka-python consumers polled from one Python process starve each other: a
    poll blocks while the group rebalances.) Closing its stdin ends it with a clean
    close (LeaveGroup)."""

    def __init__(self, bootstrap, group, topic):
        import threading

        self.proc = subprocess.Popen(
            [sys.executable, "-c", KAFKA_PYTHON_MEMBER_MAIN, bootstrap, group, topic],
            stdout=subprocess.PIPE,
            stdin=subprocess.PIPE,
            text=True,
        )
        self.partitions = set()
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def read(self):
        import json

        for line in self.proc.stdout:
            self.partitions = set(json.loads(line))

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# The member stops (clean close) when its stdin closes: a reader thread watches it.
KAFKA_PYTHON_MEMBER_MAIN = textwrap.dedent(
    """
    import json, sys, threading
    from kafka import KafkaConsumer
    bootstrap, group, topic = sys.argv[1:4]
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                      session_timeout_ms=6000, heartbeat_interval_ms=500)
    last = None
    while not done.is_set():
        c.poll(timeout_ms=100)
        now = sorted(tp.partition for tp in c.assignment())
        if now != last:
            print(json.dumps(now), flush=True)
            last = now
    c.close()
    """
)


def wait_for(cond, timeout_s=WAIT_S, what="condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def test_two_consumers_split_then_survivor_takes_all_kafka_python(gbroker, topic_name):
    create_topic(gbroker.bootstrap, topic_name, 4)
    group = group_name()
    a = KafkaPythonMember(gbroker.bootstrap, group, topic_name)
    b = KafkaPythonMember(gbroker.bootstrap, group, topic_name)
    try:
        wait_for(lambda: len(a.partitions) == 2 and len(b.partitions) == 2, what="a 2+2 split")
        assert a.partitions | b.partitions == {0, 1, 2, 3}
        b.close()
        wait_for(lambda: a.partitions == {0, 1, 2, 3}, what="the survivor owning all 4")
    finally:
        a.close()
        b.close()


CHILD = textwrap.dedent(
    """
    import sys, time
    from confluent_kafka import Consumer
    bootstrap, group, topic, session_ms = sys.argv[1:5]
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "session.timeout.ms": int(session_ms), "heartbeat.interval.ms": 300,
                  "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    while True:
        c.poll(0.1)
        if c.assignment():
            print("assigned", flush=True)
            break
    while True:
        c.poll(0.1)
    """
)


def test_silent_consumer_is_evicted_after_session_timeout(gbroker, topic_name):
    """The second member is a child process that gets SIGSTOPped: no more polls and no
    more heartbeats (librdkafka heartbeats from a background thread, so a merely idle
    consumer would stay). Its partitions must move only once its session expires."""
    create_topic(gbroker.bootstrap, topic_name, 4)
    group = group_name()
    session_ms = 3000
    c1 = ck_consumer(gbroker.bootstrap, group, **{"session.timeout.ms": session_ms})
    c1.subscribe([topic_name])
    poll_until([c1], lambda: partitions_of(c1) == {0, 1, 2, 3}, what="c1 owning all")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, gbroker.bootstrap, group, topic_name, str(session_ms)],
        stdout=subprocess.PIPE,
    )
    try:
        poll_until([c1], lambda: len(partitions_of(c1)) == 2, what="a 2+2 split with the child")
        stopped_at = time.monotonic()
        child.send_signal(signal.SIGSTOP)
        poll_until([c1], lambda: partitions_of(c1) == {0, 1, 2, 3}, what="c1 taking the silent member's partitions")
        elapsed = time.monotonic() - stopped_at
        assert elapsed >= session_ms / 1000 * 0.8, f"partitions moved after {elapsed:.2f}s, before the session expired"
        assert elapsed < session_ms / 1000 + 10, f"eviction took {elapsed:.2f}s"
    finally:
        child.kill()
        child.wait()
        c1.close()


def test_cooperative_sticky_keeps_unaffected_partitions(gbroker, topic_name):
    create_topic(gbroker.bootstrap, topic_name, 4)
    group = group_name()
    conf = {"partition.assignment.strategy": "cooperative-sticky"}
    revoked_c1 = []

    def on_revoke(c, parts):
        revoked_c1.extend(tp.partition for tp in parts)

    c1 = ck_consumer(gbroker.bootstrap, group, **conf)
    c1.subscribe([topic_name], on_revoke=on_revoke)
    poll_until([c1], lambda: partitions_of(c1) == {0, 1, 2, 3}, what="c1 owning all")
    c2 = ck_consumer(gbroker.bootstrap, group, **conf)
    c2.subscribe([topic_name])
    poll_until(
        [c1, c2],
        lambda: len(partitions_of(c1)) == 2 and len(partitions_of(c2)) == 2,
        what="an incremental 2+2 split",
    )
    kept = partitions_of(c1)
    assert kept.isdisjoint(partitions_of(c2))
    # Only the partitions that moved were revoked from c1: the others were never paused.
    assert set(revoked_c1) == partitions_of(c2), (revoked_c1, kept)
    c2.close()
    c1.close()


def test_static_member_restart_keeps_assignment(gbroker, topic_name):
    create_topic(gbroker.bootstrap, topic_name, 4)
    group = group_name()
    events_c2 = []

    def c2_assign(c, parts):
        events_c2.append(("assign", sorted(tp.partition for tp in parts)))

    def c2_revoke(c, parts):
        events_c2.append(("revoke", sorted(tp.partition for tp in parts)))

    c1 = ck_consumer(gbroker.bootstrap, group, **{"group.instance.id": "static-1", "session.timeout.ms": 10000})
    c2 = ck_consumer(gbroker.bootstrap, group, **{"group.instance.id": "static-2", "session.timeout.ms": 10000})
    c1.subscribe([topic_name])
    c2.subscribe([topic_name], on_assign=c2_assign, on_revoke=c2_revoke)
    poll_until(
        [c1, c2],
        lambda: len(partitions_of(c1)) == 2 and len(partitions_of(c2)) == 2,
        what="a 2+2 split",
    )
    before = partitions_of(c1)
    events_before = list(events_c2)
    c1.close()  # a static member sends no LeaveGroup: its seat stays for the session
    c1b = ck_consumer(gbroker.bootstrap, group, **{"group.instance.id": "static-1", "session.timeout.ms": 10000})
    c1b.subscribe([topic_name])
    poll_until([c1b, c2], lambda: len(partitions_of(c1b)) == 2, what="the restarted static member's assignment")
    assert partitions_of(c1b) == before
    # Keep c2 polling a little longer: no rebalance reaches it.
    poll_until([c1b, c2], lambda: False if time.sleep(0) else True, timeout_s=1)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        c2.poll(0.1)
        c1b.poll(0.1)
    assert events_c2 == events_before, f"c2 saw a rebalance: {events_c2[len(events_before):]}"
    c1b.close()
    c2.close()


def test_first_join_waits_initial_rebalance_delay(broker_factory, topic_name):
    """Kafka's group.initial.rebalance.delay.ms (here 1500 ms): the first rebalance of a
    new group waits for more members, then completes."""
    b = broker_factory(extra_args=["--set", "group.initial.rebalance.delay.ms=1500"])
    create_topic(b.bootstrap, topic_name, 2)
    c = ck_consumer(b.bootstrap, group_name())
    c.subscribe([topic_name])
    t0 = time.monotonic()
    poll_until([c], lambda: len(partitions_of(c)) == 2, what="assignment")
    elapsed = time.monotonic() - t0
    c.close()
    assert 1.4 <= elapsed < 10, f"first assignment after {elapsed:.2f}s"


# ----- admin ---------------------------------------------------------------------------------


def stable_group_with_commit(bootstrap, topic, group):
    create_topic(bootstrap, topic, 2)
    fill(bootstrap, topic, 2, 5)
    c = ck_consumer(bootstrap, group, **{"client.id": "admin-test-client"})
    c.subscribe([topic])
    consume_n(c, 10)
    c.commit(asynchronous=False)
    return c


def test_admin_client_list_describe_delete(gbroker, topic_name):
    group = group_name()
    c = stable_group_with_commit(gbroker.bootstrap, topic_name, group)
    a = AdminClient({"bootstrap.servers": gbroker.bootstrap})
    listed = a.list_consumer_groups(request_timeout=10).result()
    ids = {g.group_id: g for g in listed.valid}
    assert group in ids, listed.valid
    assert str(ids[group].state).endswith("STABLE"), ids[group].state

    desc = a.describe_consumer_groups([group], request_timeout=10)[group].result()
    assert str(desc.state).endswith("STABLE")
    assert desc.partition_assignor == "range" or desc.partition_assignor in ("roundrobin", "cooperative-sticky")
    assert len(desc.members) == 1
    m = desc.members[0]
    assert m.client_id == "admin-test-client"
    assert {tp.partition for tp in m.assignment.topic_partitions} == {0, 1}

    # Deleting a group with members is refused (NON_EMPTY_GROUP).
    with pytest.raises(KafkaException) as e:
        a.delete_consumer_groups([group], request_timeout=10)[group].result()
    assert "NON_EMPTY_GROUP" in str(e.value) or "not empty" in str(e.value).lower(), e.value

    c.close()
    poll_state = time.monotonic() + 10
    while time.monotonic() < poll_state:
        if str(a.describe_consumer_groups([group])[group].result().state).endswith("EMPTY"):
            break
        time.sleep(0.1)
    a.delete_consumer_groups([group], request_timeout=10)[group].result()
    listed = a.list_consumer_groups(request_timeout=10).result()
    assert group not in {g.group_id for g in listed.valid}
    # Its committed offsets went with it.
    c = ck_consumer(gbroker.bootstrap, group)
    committed = c.committed([TopicPartition(topic_name, 0)], timeout=10)
    assert committed[0].offset < 0, committed
    c.close()


def riptide_groups(broker, *args, check=True):
    r = subprocess.run(
        [str(riptide_bin()), "groups", "--bootstrap-server", broker.bootstrap, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check:
        assert r.returncode == 0, f"riptide groups {args}: {r.stderr}"
    return r


def test_riptide_groups_cli(gbroker, topic_name):
    group = group_name()
    c = stable_group_with_commit(gbroker.bootstrap, topic_name, group)
    out = riptide_groups(gbroker, "list").stdout
    assert group in out.split()
    out = riptide_groups(gbroker, "list", "--state", "stable").stdout
    assert group in out and "Stable" in out
    out = riptide_groups(gbroker, "describe", group).stdout
    rows = [line.split() for line in out.splitlines() if line.startswith(group + " ")]
    assert sorted((r[1], r[2], r[3], r[4], r[5]) for r in rows) == [
        (topic_name, "0", "5", "5", "0"),
        (topic_name, "1", "5", "5", "0"),
    ], out
    assert all("admin-test-client" in r for r in rows), out

    # Reset needs an empty group.
    r = riptide_groups(gbroker, "reset-offsets", group, "--topic", topic_name, "--to-earliest", "--execute", check=False)
    assert r.returncode != 0
    c.close()
    out = riptide_groups(gbroker, "reset-offsets", group, "--topic", topic_name, "--to-offset", "2").stdout
    assert "dry run" in out
    riptide_groups(gbroker, "reset-offsets", group, "--topic", topic_name, "--to-offset", "2", "--execute")
    out = riptide_groups(gbroker, "describe", group).stdout
    rows = [line.split() for line in out.splitlines() if line.startswith(group + " ")]
    assert sorted((r[2], r[3], r[5]) for r in rows) == [("0", "2", "3"), ("1", "2", "3")], out
    riptide_groups(gbroker, "reset-offsets", group, "--topic", topic_name, "--to-earliest", "--execute")
    out = riptide_groups(gbroker, "describe", group).stdout
    rows = [line.split() for line in out.splitlines() if line.startswith(group + " ")]
    assert sorted((r[2], r[3]) for r in rows) == [("0", "0"), ("1", "0")], out
    riptide_groups(gbroker, "reset-offsets", group, "--topic", topic_name, "--to-latest", "--execute")
    out = riptide_groups(gbroker, "describe", group).stdout
    rows = [line.split() for line in out.splitlines() if line.startswith(group + " ")]
    assert sorted((r[2], r[3]) for r in rows) == [("0", "5"), ("1", "5")], out
    # Records were written just now: a time far back resolves to the first offsets, a
    # time far ahead to the log end.
    riptide_groups(gbroker, "reset-offsets", group, "--topic", topic_name, "--to-datetime", "2001-01-01T00:00:00", "--execute")
    out = riptide_groups(gbroker, "describe", group).stdout
    rows = [line.split() for line in out.splitlines() if line.startswith(group + " ")]
    assert sorted((r[2], r[3]) for r in rows) == [("0", "0"), ("1", "0")], out
    riptide_groups(gbroker, "reset-offsets", group, "--topic", topic_name, "--to-datetime", "2999-01-01T00:00:00.000", "--execute")

    # A consumer of the group resumes from the reset offsets.
    c = ck_consumer(gbroker.bootstrap, group)
    c.subscribe([topic_name])
    committed = c.committed([TopicPartition(topic_name, p) for p in range(2)], timeout=10)
    assert [tp.offset for tp in committed] == [5, 5]
    c.close()

    riptide_groups(gbroker, "delete", group)
    assert group not in riptide_groups(gbroker, "list").stdout.split()
    r = riptide_groups(gbroker, "delete", group, check=False)
    assert r.returncode != 0 and "GroupIdNotFound" in r.stderr, r.stderr


# ----- durability ----------------------------------------------------------------------------



@pytest.mark.parametrize("kill", [False, True], ids=["clean-restart", "kill-9"])
def test_committed_offsets_survive_restart(gbroker, topic_name, kill):
    create_topic(gbroker.bootstrap, topic_name, 2)
    fill(gbroker.bootstrap, topic_name, 2, 10)
    group = group_name()
    c = ck_consumer(gbroker.bootstrap, group)
    c.subscribe([topic_name])
    consume_n(c, 20)
    c.commit(
        offsets=[TopicPartition(topic_name, 0, 7), TopicPartition(topic_name, 1, 3)],
        asynchronous=False,
    )
    c.close()
    gbroker.restart(kill=kill)
    c = ck_consumer(gbroker.bootstrap, group)
    deadline = time.monotonic() + WAIT_S
    committed = None
    while time.monotonic() < deadline:
        try:
            committed = c.committed([TopicPartition(topic_name, p) for p in range(2)], timeout=5)
            break
        except KafkaException:
            time.sleep(0.2)  # COORDINATOR_LOAD_IN_PROGRESS while the partition replays
    c.close()
    assert committed is not None
    assert [tp.offset for tp in committed] == [7, 3]


# ----- topic deletion --------------------------------------------------------------------------


def retry_coordinator(f, what):
    """f() retried while the coordinator loads its partition (COORDINATOR_LOAD_IN_PROGRESS
    and the like, which clients retry)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            return f()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def commit_offsets(bootstrap, group, offsets):
    """Commit from outside the group (no member, generation -1), as admin tools do."""
    c = ck_consumer(bootstrap, group)
    try:
        retry_coordinator(
            lambda: c.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False),
            "commit",
        )
    finally:
        c.close()


def committed_ck(bootstrap, group, tps):
    """OffsetFetch of named partitions through librdkafka: {(topic, partition): offset}."""
    c = ck_consumer(bootstrap, group)
    try:
        got = retry_coordinator(lambda: c.committed([TopicPartition(t, p) for t, p in tps], timeout=10), "committed")
    finally:
        c.close()
    return {(tp.topic, tp.partition): tp.offset for tp in got}


def all_committed_kp(bootstrap, group):
    """OffsetFetch of every committed partition through kafka-python: {(topic, partition): offset}."""
    from kafka import KafkaAdminClient

    a = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        got = retry_coordinator(lambda: a.list_group_offsets({group: None}), "list_group_offsets")
    finally:
        a.close()
    return {(tp.topic, tp.partition): om.offset for tp, om in got[group].items()}


def listed_groups(bootstrap):
    a = AdminClient({"bootstrap.servers": bootstrap})
    return {g.group_id for g in a.list_consumer_groups(request_timeout=10).result().valid}


def delete_topic(bootstrap, topic):
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.delete_topics([topic], operation_timeout=30)[topic].result(60)


def test_deleting_a_topic_removes_its_committed_offsets(gbroker, topic_name):
    """Kafka's GroupMetadataManager drops the committed offsets of a deleted topic (with
    tombstones), and an Empty group left without offsets goes with them. Checked with
    librdkafka and kafka-python, through a kill -9 right after DeleteTopics, a topic
    recreated under the same name, and a deletion that reaches a coordinator partition
    not loaded since the restart."""
    b = gbroker.bootstrap
    gone, kept = f"{topic_name}-gone", f"{topic_name}-kept"
    create_topic(b, gone, 2)
    create_topic(b, kept, 1)
    fill(b, gone, 2, 5)
    fill(b, kept, 1, 5)
    both, only_gone = group_name(), group_name()
    commit_offsets(b, both, {(gone, 0): 4, (gone, 1): 2, (kept, 0): 3})
    commit_offsets(b, only_gone, {(gone, 0): 1})
    assert all_committed_kp(b, both) == {(gone, 0): 4, (gone, 1): 2, (kept, 0): 3}
    assert all_committed_kp(b, only_gone) == {(gone, 0): 1}
    assert {both, only_gone} <= listed_groups(b)

    delete_topic(b, gone)
    # At once: DeleteTopics returns after every shard installed the view without the topic.
    assert all_committed_kp(b, both) == {(kept, 0): 3}
    assert committed_ck(b, both, [(gone, 0), (gone, 1), (kept, 0)]) == {(gone, 0): -1001, (gone, 1): -1001, (kept, 0): 3}
    groups = listed_groups(b)
    assert both in groups
    assert only_gone not in groups, "an Empty group left without offsets is removed (Kafka)"

    # The same name again is a new topic: the old offsets do not come back.
    create_topic(b, gone, 2)
    assert committed_ck(b, both, [(gone, 0), (gone, 1)]) == {(gone, 0): -1001, (gone, 1): -1001}

    # Durable: the tombstones were written before DeleteTopics answered.
    gbroker.restart(kill=True)
    assert all_committed_kp(b, both) == {(kept, 0): 3}
    assert committed_ck(b, both, [(gone, 0)]) == {(gone, 0): -1001}
    assert only_gone not in listed_groups(b)

    # A deletion reaching coordinator partitions that nobody touched since a restart:
    # they are loaded, then cleaned.
    gbroker.restart(kill=False)
    delete_topic(b, kept)
    assert committed_ck(b, both, [(kept, 0)]) == {(kept, 0): -1001}
    assert all_committed_kp(b, both) == {}
    gbroker.restart(kill=True)
    assert all_committed_kp(b, both) == {}
