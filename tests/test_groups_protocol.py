"""Every advertised version of the group APIs, one request at a time, encoded and decoded
by kafka-python's schema-generated protocol classes (a reading of Kafka's JSON schemas
independent of the broker's `kafka-protocol` crate): FindCoordinator v0-4, JoinGroup
v0-9, SyncGroup v0-5, Heartbeat v0-4, LeaveGroup v0-5, OffsetCommit v2-9, OffsetFetch
v1-9, DescribeGroups v0-5, ListGroups v0-4, DeleteGroups v0-2, OffsetDelete v0, and the
error codes clients act on (MEMBER_ID_REQUIRED, ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID,
FENCED_INSTANCE_ID, NON_EMPTY_GROUP, GROUP_ID_NOT_FOUND, GROUP_SUBSCRIBED_TO_TOPIC)."""

import socket
import struct
import uuid

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from kafka.protocol.admin.groups import DeleteGroupsRequest, DescribeGroupsRequest, ListGroupsRequest
from kafka.protocol.consumer.group import (
    HeartbeatRequest,
    JoinGroupRequest,
    LeaveGroupRequest,
    OffsetCommitRequest,
    OffsetDeleteRequest,
    OffsetFetchRequest,
    SyncGroupRequest,
)
from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest
from kafka.protocol.parser import KafkaProtocol

NONE = 0
ILLEGAL_GENERATION = 22
UNKNOWN_MEMBER_ID = 25
REBALANCE_IN_PROGRESS = 27
NON_EMPTY_GROUP = 68
GROUP_ID_NOT_FOUND = 69
MEMBER_ID_REQUIRED = 79
FENCED_INSTANCE_ID = 82
GROUP_SUBSCRIBED_TO_TOPIC = 86

FAST = ["--set", "group.initial.rebalance.delay.ms=0"]


class Wire:
    """One connection; `call` sends a request and returns the decoded response."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.proto = KafkaProtocol(client_id="riptide-protocol-test")

    def call(self, request):
        self.proto.send_request(request)
        self.sock.sendall(self.proto.send_bytes())
        while True:
            data = self.sock.recv(1 << 16)
            assert data, "broker closed the connection"
            responses = self.proto.receive_bytes(data)
            if responses:
                return responses[0][1]

    def close(self):
        self.sock.close()


@pytest.fixture
def wire_broker(broker_factory):
    return broker_factory(extra_args=FAST)


def subscription(topics):
    """ConsumerProtocolSubscription v0: version, topics, user data (null)."""
    out = struct.pack(">hi", 0, len(topics))
    for t in topics:
        out += struct.pack(">h", len(t)) + t.encode()
    return out + struct.pack(">i", -1)


def create_topic(bootstrap, topic, partitions=2):
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic].result(60)


def find(w, group, version):
    """FindCoordinator, retried while the offsets topic is being created (error 15)."""
    import time

    deadline = time.monotonic() + 60
    while True:
        result = find_once(w, group, version)
        if result[0] != 15 or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def find_once(w, group, version):
    if version >= 4:
        r = w.call(FindCoordinatorRequest(version=version, key_type=0, coordinator_keys=[group]))
        assert len(r.coordinators) == 1
        c = r.coordinators[0]
        return c.error_code, c.node_id, c.port
    kw = {"key_type": 0} if version >= 1 else {}
    r = w.call(FindCoordinatorRequest(version=version, key=group, **kw))
    return r.error_code, r.node_id, r.port


def join(w, group, version, member_id="", instance=None, topics=("t",)):
    P = JoinGroupRequest.JoinGroupRequestProtocol
    return w.call(
        JoinGroupRequest(
            version=version,
            group_id=group,
            session_timeout_ms=10000,
            rebalance_timeout_ms=10000,
            member_id=member_id,
            group_instance_id=instance,
            protocol_type="consumer",
            protocols=[P(name="range", metadata=subscription(list(topics)))],
        )
    )


def join_fully(w, group, version, instance=None, topics=("t",)):
    r = join(w, group, version, instance=instance, topics=topics)
    if version >= 4 and instance is None:
        assert r.error_code == MEMBER_ID_REQUIRED, r
        assert r.member_id, "MEMBER_ID_REQUIRED carries the member id"
        r = join(w, group, version, member_id=r.member_id, topics=topics)
    assert r.error_code == NONE, r
    return r


def sync(w, group, version, generation, member_id, assignments, instance=None):
    A = SyncGroupRequest.SyncGroupRequestAssignment
    kw = {"protocol_type": "consumer", "protocol_name": "range"} if version >= 5 else {}
    return w.call(
        SyncGroupRequest(
            version=version,
            group_id=group,
            generation_id=generation,
            member_id=member_id,
            group_instance_id=instance,
            assignments=[A(member_id=m, assignment=a) for m, a in assignments],
            **kw,
        )
    )


@pytest.mark.parametrize("version", range(0, 5))
def test_find_coordinator_every_version(wire_broker, version):
    w = Wire(wire_broker.port)
    error, node, port = find(w, f"g-{uuid.uuid4().hex[:6]}", version)
    assert (error, node, port) == (NONE, 1, wire_broker.port)
    w.close()


def test_find_coordinator_batched_keys(wire_broker):
    w = Wire(wire_broker.port)
    assert find(w, "warm-up", 4)[0] == NONE  # the offsets topic exists and is open
    keys = [f"g{i}" for i in range(5)]
    r = w.call(FindCoordinatorRequest(version=4, key_type=0, coordinator_keys=keys))
    assert [c.key for c in r.coordinators] == keys
    assert all(c.error_code == NONE and c.port == wire_broker.port for c in r.coordinators)
    # Transactions have no coordinator yet.
    r = w.call(FindCoordinatorRequest(version=4, key_type=1, coordinator_keys=["txn"]))
    assert r.coordinators[0].error_code == 15
    w.close()


@pytest.mark.parametrize("version", range(0, 10))
def test_join_sync_heartbeat_leave_every_version(wire_broker, version):
    group = f"g-{uuid.uuid4().hex[:6]}"
    w = Wire(wire_broker.port)
    assert find(w, group, 3)[0] == NONE
    r = join_fully(w, group, version)
    member, generation = r.member_id, r.generation_id
    assert generation == 1 and r.leader == member
    assert [m.member_id for m in r.members] == [member]
    assert r.members[0].metadata == subscription(["t"])
    if version >= 7:
        assert r.protocol_type == "consumer"
    assert r.protocol_name == "range"

    sv = min(version, 5)
    s = sync(w, group, sv, generation, member, [(member, b"assignment-1")])
    assert (s.error_code, s.assignment) == (NONE, b"assignment-1")
    s = sync(w, group, sv, generation + 1, member, [])
    assert s.error_code == ILLEGAL_GENERATION

    hv = min(version, 4)
    hb = lambda gen, mid: w.call(HeartbeatRequest(version=hv, group_id=group, generation_id=gen, member_id=mid)).error_code  # noqa: E731
    assert hb(generation, member) == NONE
    assert hb(generation - 1, member) == ILLEGAL_GENERATION
    assert hb(generation, "nobody") == UNKNOWN_MEMBER_ID

    lv = min(version, 5)
    if lv >= 3:
        M = LeaveGroupRequest.MemberIdentity
        r = w.call(LeaveGroupRequest(version=lv, group_id=group, members=[M(member_id=member), M(member_id="ghost")]))
        assert r.error_code == NONE
        assert [(m.member_id, m.error_code) for m in r.members] == [(member, NONE), ("ghost", UNKNOWN_MEMBER_ID)]
    else:
        r = w.call(LeaveGroupRequest(version=lv, group_id=group, member_id=member))
        assert r.error_code == NONE
    assert hb(generation, member) == UNKNOWN_MEMBER_ID
    w.close()


@pytest.mark.parametrize("version", range(5, 10))
def test_static_membership_fences_the_old_instance(wire_broker, version):
    group = f"g-{uuid.uuid4().hex[:6]}"
    w = Wire(wire_broker.port)
    find(w, group, 3)
    r = join_fully(w, group, version, instance="i-1")
    old = r.member_id
    sync(w, group, min(version, 5), r.generation_id, old, [(old, b"a")], instance="i-1")
    r2 = join(w, group, version, instance="i-1")
    assert r2.error_code == NONE and r2.member_id != old
    assert r2.generation_id == r.generation_id, "a stable group does not rebalance"
    s = sync(w, group, min(version, 5), r2.generation_id, r2.member_id, [], instance="i-1")
    assert s.assignment == b"a"
    hb = w.call(HeartbeatRequest(version=min(version, 4), group_id=group, generation_id=r.generation_id, member_id=old, group_instance_id="i-1"))
    assert hb.error_code == FENCED_INSTANCE_ID
    w.close()


def commit(w, group, version, generation, member, topic, offsets):
    T, Pt = OffsetCommitRequest.OffsetCommitRequestTopic, OffsetCommitRequest.OffsetCommitRequestTopic.OffsetCommitRequestPartition
    kw = {"retention_time_ms": -1} if 2 <= version <= 4 else {}
    return w.call(
        OffsetCommitRequest(
            version=version,
            group_id=group,
            generation_id_or_member_epoch=generation,
            member_id=member,
            topics=[T(name=topic, partitions=[Pt(partition_index=p, committed_offset=o, committed_metadata="m") for p, o in offsets])],
            **kw,
        )
    )


def fetch(w, group, version, topic, partitions):
    if version >= 8:
        G = OffsetFetchRequest.OffsetFetchRequestGroup
        Ts = G.OffsetFetchRequestTopics
        r = w.call(OffsetFetchRequest(version=version, groups=[G(group_id=group, topics=[Ts(name=topic, partition_indexes=partitions)])]))
        g = r.groups[0]
        assert g.error_code == NONE
        return {p.partition_index: p.committed_offset for t in g.topics for p in t.partitions}
    T = OffsetFetchRequest.OffsetFetchRequestTopic
    r = w.call(OffsetFetchRequest(version=version, group_id=group, topics=[T(name=topic, partition_indexes=partitions)]))
    if version >= 2:
        assert r.error_code == NONE
    return {p.partition_index: p.committed_offset for t in r.topics for p in t.partitions}


@pytest.mark.parametrize("version", range(2, 10))
def test_offset_commit_and_fetch_every_version(wire_broker, topic_name, version):
    create_topic(wire_broker.bootstrap, topic_name)
    group = f"g-{uuid.uuid4().hex[:6]}"
    w = Wire(wire_broker.port)
    find(w, group, 3)
    # From outside the group (generation -1, no member): allowed while it has no members.
    r = commit(w, group, version, -1, "", topic_name, [(0, 11), (1, 22)])
    assert [p.error_code for t in r.topics for p in t.partitions] == [NONE, NONE]
    fv = min(max(version, 1), 9)
    assert fetch(w, group, fv, topic_name, [0, 1]) == {0: 11, 1: 22}
    # Inside the group: generation checks.
    j = join_fully(w, group, 5)
    sync(w, group, 5, j.generation_id, j.member_id, [(j.member_id, b"")])
    r = commit(w, group, version, j.generation_id, j.member_id, topic_name, [(0, 33)])
    assert r.topics[0].partitions[0].error_code == NONE
    r = commit(w, group, version, j.generation_id + 5, j.member_id, topic_name, [(0, 44)])
    assert r.topics[0].partitions[0].error_code == ILLEGAL_GENERATION
    r = commit(w, group, version, -1, "", topic_name, [(0, 55)])
    assert r.topics[0].partitions[0].error_code == UNKNOWN_MEMBER_ID
    r = commit(w, group, version, j.generation_id, j.member_id, "no-such-topic", [(0, 1)])
    assert r.topics[0].partitions[0].error_code == 3
    assert fetch(w, group, fv, topic_name, [0, 1, 7]) == {0: 33, 1: 22, 7: -1}
    w.close()


@pytest.mark.parametrize("version", [1, 7, 8])
def test_offset_fetch_all_and_unknown_group(wire_broker, topic_name, version):
    create_topic(wire_broker.bootstrap, topic_name)
    group = f"g-{uuid.uuid4().hex[:6]}"
    w = Wire(wire_broker.port)
    find(w, group, 3)
    commit(w, group, 8, -1, "", topic_name, [(0, 5)])
    assert fetch(w, f"unknown-{group}", version, topic_name, [0]) == {0: -1}
    if version >= 2:
        # topics = null: every committed partition (v2+).
        if version >= 8:
            G = OffsetFetchRequest.OffsetFetchRequestGroup
            r = w.call(OffsetFetchRequest(version=version, groups=[G(group_id=group, topics=None)]))
            got = {(t.name, p.partition_index): p.committed_offset for t in r.groups[0].topics for p in t.partitions}
        else:
            r = w.call(OffsetFetchRequest(version=version, group_id=group, topics=None))
            got = {(t.name, p.partition_index): p.committed_offset for t in r.topics for p in t.partitions}
        assert got == {(topic_name, 0): 5}
    w.close()


@pytest.mark.parametrize("version", range(0, 6))
def test_describe_groups_every_version(wire_broker, version):
    group = f"g-{uuid.uuid4().hex[:6]}"
    w = Wire(wire_broker.port)
    find(w, group, 3)
    j = join_fully(w, group, 5, instance="inst" if version >= 4 else None)
    sync(w, group, 5, j.generation_id, j.member_id, [(j.member_id, b"asg")], instance="inst" if version >= 4 else None)
    r = w.call(DescribeGroupsRequest(version=version, groups=[group, "never-seen"]))
    g, missing = r.groups
    assert (g.error_code, g.group_state, g.protocol_type, g.protocol_data) == (NONE, "Stable", "consumer", "range")
    assert [m.member_id for m in g.members] == [j.member_id]
    m = g.members[0]
    assert m.client_id == "riptide-protocol-test"
    assert m.client_host.startswith("/127.0.0.1")
    assert m.member_assignment == b"asg"
    assert m.member_metadata == subscription(["t"])
    if version >= 4:
        assert m.group_instance_id == "inst"
    assert (missing.error_code, missing.group_state) == (NONE, "Dead")
    w.close()


@pytest.mark.parametrize("version", range(0, 5))
def test_list_groups_every_version(wire_broker, version):
    w = Wire(wire_broker.port)
    stable, empty = f"s-{uuid.uuid4().hex[:6]}", f"e-{uuid.uuid4().hex[:6]}"
    for g in (stable, empty):
        find(w, g, 3)
    j = join_fully(w, stable, 5)
    sync(w, stable, 5, j.generation_id, j.member_id, [])
    j2 = join_fully(w, empty, 5)
    w.call(LeaveGroupRequest(version=1, group_id=empty, member_id=j2.member_id))
    r = w.call(ListGroupsRequest(version=version))
    assert r.error_code == NONE
    listed = {g.group_id: g for g in r.groups}
    assert {stable, empty} <= set(listed)
    assert listed[stable].protocol_type == "consumer"
    if version >= 4:
        assert listed[stable].group_state == "Stable"
        assert listed[empty].group_state == "Empty"
        r = w.call(ListGroupsRequest(version=version, states_filter=["Empty"]))
        names = {g.group_id for g in r.groups}
        assert empty in names and stable not in names
    w.close()


@pytest.mark.parametrize("version", range(0, 3))
def test_delete_groups_every_version(wire_broker, topic_name, version):
    create_topic(wire_broker.bootstrap, topic_name)
    w = Wire(wire_broker.port)
    busy, idle = f"b-{uuid.uuid4().hex[:6]}", f"i-{uuid.uuid4().hex[:6]}"
    for g in (busy, idle):
        find(w, g, 3)
    join_fully(w, busy, 5)
    commit(w, idle, 8, -1, "", topic_name, [(0, 9)])
    r = w.call(DeleteGroupsRequest(version=version, groups_names=[busy, idle, "never-seen"]))
    got = {x.group_id: x.error_code for x in r.results}
    assert got == {busy: NON_EMPTY_GROUP, idle: NONE, "never-seen": GROUP_ID_NOT_FOUND}
    assert fetch(w, idle, 8, topic_name, [0]) == {0: -1}
    w.close()


def test_offset_delete(wire_broker, topic_name):
    create_topic(wire_broker.bootstrap, topic_name)
    other = topic_name + "-other"
    create_topic(wire_broker.bootstrap, other)
    group = f"g-{uuid.uuid4().hex[:6]}"
    w = Wire(wire_broker.port)
    find(w, group, 3)
    commit(w, group, 8, -1, "", topic_name, [(0, 1), (1, 2)])
    commit(w, group, 8, -1, "", other, [(0, 3)])
    j = join_fully(w, group, 5, topics=(topic_name,))
    sync(w, group, 5, j.generation_id, j.member_id, [])
    T = OffsetDeleteRequest.OffsetDeleteRequestTopic
    Pt = T.OffsetDeleteRequestPartition
    r = w.call(
        OffsetDeleteRequest(
            version=0,
            group_id=group,
            topics=[T(name=topic_name, partitions=[Pt(partition_index=0)]), T(name=other, partitions=[Pt(partition_index=0)])],
        )
    )
    assert r.error_code == NONE
    got = {(t.name, p.partition_index): p.error_code for t in r.topics for p in t.partitions}
    assert got == {(topic_name, 0): GROUP_SUBSCRIBED_TO_TOPIC, (other, 0): NONE}
    assert fetch(w, group, 8, other, [0]) == {0: -1}
    assert fetch(w, group, 8, topic_name, [0, 1]) == {0: 1, 1: 2}
    r = w.call(OffsetDeleteRequest(version=0, group_id="never-seen", topics=[]))
    assert r.error_code == GROUP_ID_NOT_FOUND
    w.close()


def test_rebalance_in_progress_reaches_the_old_member(wire_broker):
    group = f"g-{uuid.uuid4().hex[:6]}"
    a, b = Wire(wire_broker.port), Wire(wire_broker.port)
    find(a, group, 3)
    j = join_fully(a, group, 5)
    sync(a, group, 5, j.generation_id, j.member_id, [])
    # b's join waits for a to rejoin: send it without waiting for the answer.
    first = join(b, group, 5)
    assert first.error_code == MEMBER_ID_REQUIRED
    P = JoinGroupRequest.JoinGroupRequestProtocol
    b.proto.send_request(
        JoinGroupRequest(
            version=5, group_id=group, session_timeout_ms=10000, rebalance_timeout_ms=10000,
            member_id=first.member_id, group_instance_id=None, protocol_type="consumer",
            protocols=[P(name="range", metadata=subscription(["t"]))],
        )
    )
    b.sock.sendall(b.proto.send_bytes())
    # b's join travels on another connection: a sees the rebalance once it has landed.
    import time

    deadline = time.monotonic() + 10
    while True:
        hb = a.call(HeartbeatRequest(version=4, group_id=group, generation_id=j.generation_id, member_id=j.member_id))
        if hb.error_code != NONE or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert hb.error_code == REBALANCE_IN_PROGRESS
    ra = join(a, group, 5, member_id=j.member_id)
    assert ra.error_code == NONE and ra.generation_id == j.generation_id + 1
    assert len(ra.members) == 2, "the leader sees both members"
    rb = None
    while rb is None:
        responses = b.proto.receive_bytes(b.sock.recv(1 << 16))
        if responses:
            rb = responses[0][1]
    assert rb.error_code == NONE and rb.generation_id == ra.generation_id and rb.members == []
    a.close()
    b.close()
