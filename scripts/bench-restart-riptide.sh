#!/usr/bin/env bash
# Run by riptide-perf (--before-consume) in scripts/bench.sh's cold-consume row, between
# the backlog fill and the read: when the target under test is Riptide, stop it cleanly and
# start it again on the same port and data directory (its tail cache is then empty: reads
# come from disk), then drop the kernel page cache. Any other target (the in-memory peer)
# is left alone. riptide-perf finds the new pid by the listening port afterwards.
# Env (from bench.sh): RIPTIDE_PIDFILE, SCRATCH, OUT; (from riptide-perf): RIPTIDE_PERF_TARGET,
# RIPTIDE_PERF_BOOTSTRAP.
set -euo pipefail

if [[ ${RIPTIDE_PERF_TARGET:-} == riptide ]]; then
    old=$(cat "$RIPTIDE_PIDFILE")
    cmd=$(cat "$SCRATCH/riptide.cmd")
    port=${RIPTIDE_PERF_BOOTSTRAP##*:}
    kill -TERM "$old"
    for _ in $(seq 1 300); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$old" 2>/dev/null; then
        echo "bench-restart-riptide: pid $old did not stop in 30 s" >&2
        exit 1
    fi
    echo "=== $(date -u +%H:%M:%S) restart for a cold read: $cmd" >>"$OUT/riptide.log"
    # shellcheck disable=SC2086  # the command is a plain word list
    setsid $cmd >>"$OUT/riptide.log" 2>&1 </dev/null &
    echo $! >"$RIPTIDE_PIDFILE"
    for _ in $(seq 1 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
        sleep 0.1
    done
fi
sync
echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
