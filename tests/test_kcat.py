"""Debian's kcat (librdkafka 2.0.2 from Debian 12): metadata listing, producing with
keys and consuming them back. This old librdkafka is picky about tagged fields, so it
guards the broker's encoders too."""

import json
import shutil
import subprocess

import pytest

KCAT = shutil.which("kcat")
pytestmark = pytest.mark.skipif(KCAT is None, reason="kcat not installed (scripts/test.sh installs it)")


def kcat(broker, *args, stdin=None, timeout_s=30):
    r = subprocess.run(
        [KCAT, "-b", broker.bootstrap, *args],
        input=stdin,
        capture_output=True,
        timeout=timeout_s,
    )
    assert r.returncode == 0, f"kcat {' '.join(args)} exited {r.returncode}: {r.stderr.decode(errors='replace')}"
    return r.stdout.decode()


def test_kcat_metadata_lists_broker_and_topic(broker, topic_name):
    kcat(broker, "-P", "-t", topic_name, stdin=b"one\n")
    md = json.loads(kcat(broker, "-L", "-J", "-t", topic_name))
    brokers = {b["id"]: b["name"] for b in md["brokers"]}
    assert brokers == {1: broker.bootstrap}, md["brokers"]
    topics = {t["topic"]: t for t in md["topics"]}
    t = topics[topic_name]
    assert "error" not in t, t
    assert [p["partition"] for p in t["partitions"]] == [0]
    assert t["partitions"][0]["leader"] == 1


def test_kcat_metadata_plain_output(broker, topic_name):
    kcat(broker, "-P", "-t", topic_name, stdin=b"x\n")
    out = kcat(broker, "-L")
    assert f"broker 1 at {broker.bootstrap}" in out, out
    assert f'topic "{topic_name}" with 1 partitions' in out, out


def test_kcat_produce_consume_with_keys(broker, topic_name):
    lines = [f"key-{i % 7}:value-{i}" for i in range(500)]
    kcat(broker, "-P", "-t", topic_name, "-K", ":", stdin=("\n".join(lines) + "\n").encode())
    out = kcat(broker, "-C", "-t", topic_name, "-o", "beginning", "-e", "-f", "%p %o %k:%s\\n")
    got = out.splitlines()
    assert len(got) == len(lines), (len(got), got[:5])
    # One partition (auto-created with num.partitions=1): offsets 0.. in produce order.
    for i, (line, want) in enumerate(zip(got, lines)):
        p, o, kv = line.split(" ", 2)
        assert (p, int(o), kv) == ("0", i, want)


def test_kcat_consume_from_offset_and_count(broker, topic_name):
    kcat(broker, "-P", "-t", topic_name, stdin=("\n".join(f"m{i}" for i in range(100)) + "\n").encode())
    out = kcat(broker, "-C", "-t", topic_name, "-o", "42", "-c", "5", "-f", "%o=%s\\n")
    assert out.splitlines() == [f"{i}=m{i}" for i in range(42, 47)]
    # Negative offsets count back from the end (ListOffsets latest).
    out = kcat(broker, "-C", "-t", topic_name, "-o", "-3", "-e", "-f", "%o=%s\\n")
    assert out.splitlines() == [f"{i}=m{i}" for i in range(97, 100)]
