#!/usr/bin/env python3
"""Rebalance time when a third member joins a 2-member group, eager (range) vs
cooperative-sticky, with librdkafka (confluent-kafka) clients.

Per trial: a fresh group on a 6-partition topic fed by a steady producer; members c1 and c2
consume until stable; c3 subscribes at t0. Reported:
  rebalance_ms  t0 -> every member holds its final assignment (2 partitions each)
  pause_ms      per old member, the longest gap between consecutive records it received
                in [t0, stable + 1 s] (the consume pause the rebalance caused; the
                producer's steady rate makes the baseline gap a few ms)

Usage: scripts/rebalance_bench.py [--bootstrap HOST:PORT] [--trials N] [--heartbeat-ms MS]
Without --bootstrap it starts target/release/riptide on a temp dir (flush policy: the
broker default, always). Results are printed, not asserted.
"""

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from confluent_kafka import Consumer, Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

PARTITIONS = 6
RATE_PER_S = 2000
# Members learn of a rebalance from their next heartbeat: it bounds the rebalance time.
HEARTBEAT_MS = 1000


class Member(threading.Thread):
    def __init__(self, bootstrap, group, topic, strategy):
        super().__init__(daemon=True)
        self.c = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "partition.assignment.strategy": strategy,
                "auto.offset.reset": "latest",
                "enable.auto.commit": False,
                "session.timeout.ms": 10000,
                "heartbeat.interval.ms": HEARTBEAT_MS,
            }
        )
        self.topic = topic
        self.stop = threading.Event()
        self.received = []  # monotonic receive times
        self.partitions = set()
        self.subscribed_at = None

    def run(self):
        self.subscribed_at = time.monotonic()
        self.c.subscribe([self.topic])
        while not self.stop.is_set():
            m = self.c.poll(0.005)
            if m is not None and m.error() is None:
                self.received.append(time.monotonic())
            self.partitions = {tp.partition for tp in self.c.assignment()}
        self.c.close()


def producer_loop(bootstrap, topic, stop):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1, "acks": 1})
    interval = 1.0 / RATE_PER_S
    i = 0
    next_t = time.monotonic()
    while not stop.is_set():
        p.produce(topic, value=b"x" * 100, partition=i % PARTITIONS)
        i += 1
        p.poll(0)
        next_t += interval
        delay = next_t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    p.flush(10)


def wait(cond, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.002)
    return False


def max_gap_ms(times, start, end):
    window = [t for t in times if start <= t <= end]
    if len(window) < 2:
        return float("nan")
    return max(b - a for a, b in zip(window, window[1:])) * 1000


def trial(bootstrap, topic, strategy):
    group = f"bench-{uuid.uuid4().hex[:8]}"
    c1, c2 = Member(bootstrap, group, topic, strategy), Member(bootstrap, group, topic, strategy)
    c1.start()
    c2.start()
    ok = wait(lambda: len(c1.partitions) == 3 and len(c2.partitions) == 3)
    assert ok, "two members never split the partitions"
    time.sleep(1.0)  # steady consumption before the join
    c3 = Member(bootstrap, group, topic, strategy)
    t0 = time.monotonic()
    c3.start()
    ok = wait(lambda: all(len(c.partitions) == 2 for c in (c1, c2, c3))
              and c1.partitions | c2.partitions | c3.partitions == set(range(PARTITIONS)))
    t_stable = time.monotonic()
    time.sleep(1.0)
    for c in (c1, c2, c3):
        c.stop.set()
    for c in (c1, c2, c3):
        c.join(timeout=30)
    if not ok:
        return None
    return {
        "rebalance_ms": (t_stable - t0) * 1000,
        "pause_c1_ms": max_gap_ms(c1.received, t0, t_stable + 1.0),
        "pause_c2_ms": max_gap_ms(c2.received, t0, t_stable + 1.0),
    }


def main():
    global HEARTBEAT_MS
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap")
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--heartbeat-ms", type=int, default=HEARTBEAT_MS)
    args = ap.parse_args()
    HEARTBEAT_MS = args.heartbeat_ms
    broker = None
    if args.bootstrap is None:
        from broker_process import Broker

        tmp = Path(tempfile.mkdtemp(prefix="rebalance-bench-"))
        broker = Broker(tmp / "data", tmp / "broker.log", cores=2).start()
        args.bootstrap = broker.bootstrap
    try:
        topic = f"rebalance-{uuid.uuid4().hex[:6]}"
        a = AdminClient({"bootstrap.servers": args.bootstrap})
        a.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(20)
        stop = threading.Event()
        prod = threading.Thread(target=producer_loop, args=(args.bootstrap, topic, stop), daemon=True)
        prod.start()
        print(
            f"broker {args.bootstrap}, {PARTITIONS} partitions, producer {RATE_PER_S} rec/s, "
            f"heartbeat.interval.ms {HEARTBEAT_MS}, {args.trials} trials"
        )
        for strategy in ("range", "cooperative-sticky"):
            results = [r for r in (trial(args.bootstrap, topic, strategy) for _ in range(args.trials)) if r]
            if not results:
                print(f"{strategy}: no trial completed")
                continue
            rb = [r["rebalance_ms"] for r in results]
            pauses = [r["pause_c1_ms"] for r in results] + [r["pause_c2_ms"] for r in results]
            print(
                f"{strategy:<20} rebalance ms: median {statistics.median(rb):.0f} "
                f"min {min(rb):.0f} max {max(rb):.0f} | old members' consume pause ms: "
                f"median {statistics.median(pauses):.0f} max {max(pauses):.0f} "
                f"({len(results)}/{args.trials} trials)"
            )
        stop.set()
        prod.join(timeout=20)
    finally:
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    main()
