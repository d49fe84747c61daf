#!/usr/bin/env python3
"""What the disk alone gives N partition files that are made durable together.

Issue 2 asks, under `flush.policy=always`, for 16 partitions at >= 50% of the device's
write ceiling with append -> durable p99 <= fio's single-write fdatasync p99 + 2 ms. This
script measures the best any log engine could do with one file per partition, with no
engine in the way: rounds in which each of N threads writes CHUNK_KIB (O_DIRECT,
sequential in its own file), then the round is made durable by

  own     an fdatasync per file (what a log per file must do when its writes allocate);
  shared  one fdatasync of one file after every write completed: one device cache flush
          for all files. Durable only for pure overwrites (layout `over`), and timed with
          `new` files only as a lower bound;
  syncfs  one syncfs(2) of the whole filesystem (every dirty inode, then a flush).

Layouts: `new` files are fallocated in 32 MiB steps (unwritten extents, converted by each
write, as in the partition log); `over` files are written and synced first, so every
write is a pure overwrite.

It prints the rounds per second as throughput, round-latency percentiles, and the latency
of a batch appended at a uniformly random moment: it joins the round after the one in
progress, so it waits for the rest of that round and then its own. That last figure is
the one to hold against issue 2's p99.

usage: sync_rounds.py DIR FILES CHUNK_KIB SECONDS new|over own|shared|syncfs
example: scripts/sync_rounds.py /var/tmp/rounds 16 96 10 new syncfs
"""
import ctypes
import mmap
import os
import random
import sys
import threading
import time

STEP_BYTES = 32 << 20


def parse_args(argv):
    if len(argv) != 7 or argv[5] not in ("new", "over") or argv[6] not in ("own", "shared", "syncfs"):
        sys.exit(__doc__)
    return argv[1], int(argv[2]), int(argv[3]) * 1024, float(argv[4]), argv[5], argv[6]


def open_files(d, n, layout, over_bytes):
    os.makedirs(d, exist_ok=True)
    fds = []
    for i in range(n):
        p = os.path.join(d, f"f{i}")
        if os.path.exists(p):
            os.unlink(p)
        fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
        if layout == "new":
            os.posix_fallocate(fd, 0, STEP_BYTES)
        fds.append(fd)
    if layout == "over":
        ones = mmap.mmap(-1, 1 << 20)
        ones.write(b"z" * (1 << 20))
        for fd in fds:
            for off in range(0, over_bytes, 1 << 20):
                os.pwrite(fd, ones, off)
            os.fsync(fd)
        os.sync()
    return fds


def percentile_ms(sorted_s, p):
    return sorted_s[min(len(sorted_s) - 1, int(p * len(sorted_s)))] * 1000


def main():
    d, n, chunk, secs, layout, sync = parse_args(sys.argv)
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    # Enough pre-written bytes that overwrites never turn into appends at ~2.5 GiB/s.
    over_bytes = int(secs * 2.5 * (1 << 30) / n) + (64 << 20)
    fds = open_files(d, n, layout, over_bytes)
    bufs = []
    for i in range(n):
        b = mmap.mmap(-1, chunk)
        b.write(bytes([65 + i % 26]) * chunk)
        bufs.append(b)

    start_bar = threading.Barrier(n + 1)
    done_bar = threading.Barrier(n + 1)
    state = {"stop": False}

    def worker(i):
        fd, off, allocated = fds[i], 0, STEP_BYTES
        while True:
            start_bar.wait()
            if state["stop"]:
                return
            if layout == "new" and off + chunk > allocated:
                os.posix_fallocate(fd, allocated, STEP_BYTES)
                allocated += STEP_BYTES
            if layout == "over" and off + chunk > over_bytes:
                off = 0
            os.pwrite(fd, bufs[i], off)
            off += chunk
            if sync == "own":
                os.fdatasync(fd)
            done_bar.wait()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    rounds_s, ends = [], []
    t0 = time.monotonic()
    while time.monotonic() < t0 + secs:
        r0 = time.monotonic()
        start_bar.wait()
        done_bar.wait()
        if sync == "shared":
            os.fdatasync(fds[0])
        elif sync == "syncfs" and libc.syncfs(fds[0]) != 0:
            sys.exit(f"syncfs: {os.strerror(ctypes.get_errno())}")
        ends.append(time.monotonic())
        rounds_s.append(ends[-1] - r0)
    elapsed = time.monotonic() - t0
    state["stop"] = True
    start_bar.wait()
    for t in threads:
        t.join()
    for fd in fds:
        os.close(fd)
    if len(ends) < 3:
        sys.exit("too few rounds to measure")

    rnd = random.Random(1)
    batch_s = []
    for _ in range(200_000):
        i = rnd.randrange(1, len(ends) - 1)
        arrival = ends[i - 1] + rnd.random() * (ends[i] - ends[i - 1])
        batch_s.append(ends[i + 1] - arrival)
    batch_s.sort()
    rounds_s.sort()
    gib_s = len(rounds_s) * n * chunk / (1 << 30) / elapsed
    r = lambda p: percentile_ms(rounds_s, p)
    b = lambda p: percentile_ms(batch_s, p)
    print(f"{n} files x {chunk // 1024} KiB, {layout}, {sync}: {len(rounds_s)} rounds, {gib_s:.3f} GiB/s; "
          f"round p50 {r(0.5):.2f} p99 {r(0.99):.2f} p99.9 {r(0.999):.2f} ms; "
          f"batch p50 {b(0.5):.2f} p99 {b(0.99):.2f} p99.9 {b(0.999):.2f} ms")


if __name__ == "__main__":
    main()
