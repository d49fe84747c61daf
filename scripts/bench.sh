#!/usr/bin/env bash
# The standard benchmark suite of issue 4, in one command:
#   builds release binaries, starts a fresh Riptide and the peer (Tansu 0.6.0; its storage
#   engine per row, see TANSU_STORAGE below and scripts/peer-tansu.sh),
#   records the same-run physical ceilings (iperf3 loopback, fio O_DIRECT, fio fdatasync),
#   runs every suite row with `riptide-perf --compare riptide,tansu` (alternating runs),
#   and rewrites the results section of BENCHMARKS.md between its markers.
#
# Usage: scripts/bench.sh                # full suite: about 2 hours on 2 cores (RUNS=5, 60 s
#                                        #   latency rows; RUNS=3 RUNS_E2E=1 roughly halves it)
#        MODE=quick scripts/bench.sh     # seconds per run, for checking the pipeline
# Knobs (environment):
#   ROWS="1 0 2 3 4 5 f"  suite rows (0 = max-rate search, f = Riptide flamegraphs,
#                       s = issue 3's speed rows only: 1c 1d 2a and the librdkafka e2e rows)
#   RUNS=5              runs per target (quick: 2)
#   PEER=tansu|none     the side-by-side peer      SKIP_RIPTIDE=1  peer only (no Riptide yet)
#   TANSU_STORAGE=auto|sqlite|memory  the peer's storage engine. auto (default): the in-memory
#                       store (Tansu's fastest) wherever it holds the row's data, with a fresh
#                       peer per row; sqlite (disk-backed) for rows 0 and 5, whose volume
#                       (60 s holds at the max rate; 5 minutes at half of it) exhausts RAM.
#                       Recorded per row in the report (<row>/peer.txt).
#   RIPTIDE_CMD         how to start Riptide; $RIPTIDE_PORT, $DATA_DIR and $FLUSH_POLICY are
#                       expanded when it runs (default below)
#   MAX_RATE            msg/s used as "max" by rows 3 and 5 (default: measured in row 1)
#   OUT                 raw results directory      BENCH_MD    file to rewrite
#   BUILD_RIPTIDE=0     do not build Riptide (e.g. RIPTIDE_CMD points at a prebuilt binary)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
MODE=${MODE:-full}
ROWS=${ROWS:-"1 0 2 3 4 5 f"}
PEER=${PEER:-tansu}
TANSU_STORAGE=${TANSU_STORAGE:-auto}
PEER_ENGINE=memory   # the engine of the running peer (set by fresh_brokers)
SKIP_RIPTIDE=${SKIP_RIPTIDE:-0}
# A free port, chosen at random: brokers may use SO_REUSEPORT, and then a second broker on
# the same port silently takes half the connections.
port_free() { [[ -z $(ss -Hltn "sport = :$1") ]]; }
pick_port() {
    local p
    for _ in $(seq 1 200); do
        p=$((20000 + RANDOM % 30000))
        if port_free "$p"; then echo "$p"; return 0; fi
    done
    echo "bench: no free port found" >&2
    return 1
}
RIPTIDE_PORT=${RIPTIDE_PORT:-$(pick_port)}
PEER_PORT=${PEER_PORT:-$(pick_port)}
IPERF_PORT=${IPERF_PORT:-$(pick_port)}
# The processes listening on a port (one line each).
listeners() { ss -Hltnp "sport = :$1" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u; }
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-$ROOT/target/bench-results/$STAMP}
BENCH_MD=${BENCH_MD:-$ROOT/BENCHMARKS.md}
PLOTS_DIR=${PLOTS_DIR:-$ROOT/benchmarks/plots}
SCRATCH=${SCRATCH:-$(mktemp -d /tmp/riptide-bench.XXXXXX)}
DATA_DIR="$SCRATCH/riptide-data"
# shellcheck disable=SC2016  # expanded later, on purpose
# Retention checked every 10 s (Kafka's default is 5 minutes): the 5-minute mixed row relies
# on retention.bytes to stay within the disk.
RIPTIDE_CMD=${RIPTIDE_CMD:-'target/release/riptide broker --data-dir $DATA_DIR --listeners PLAINTEXT://127.0.0.1:$RIPTIDE_PORT --set log.flush.policy=$FLUSH_POLICY --set log.retention.check.interval.ms=10000'}
PERF=target/release/riptide-perf

if [[ $MODE == quick ]]; then
    RUNS=${RUNS:-2}
    RUNS_E2E=${RUNS_E2E:-1}
    CEILING_S=3
    SHORT=(--set warmup_s=1 --set duration_s=4 --set produce_bytes_min=0)
    BACKLOG=(--set consume_backlog_bytes=268435456)
    E2E_SHORT=(--set warmup_s=1 --set duration_s=5)
    MIXED_SHORT=(--set warmup_s=2 --set duration_s=15)
    MAX_SHORT=(--set warmup_s=1 --set duration_s=4 --set produce_bytes_min=0)
else
    RUNS=${RUNS:-5}
    RUNS_E2E=${RUNS_E2E:-3}
    CEILING_S=10
    SHORT=()
    BACKLOG=()
    E2E_SHORT=()
    MIXED_SHORT=()
    # "Max" (issue 4): the highest rate held for 60 s with publish p99 < 50 ms.
    MAX_SHORT=(--set warmup_s=10 --set duration_s=60 --set produce_bytes_min=0)
fi

mkdir -p "$OUT" "$PLOTS_DIR"
git rev-parse --short HEAD >"$OUT/commit.txt" 2>/dev/null || true
log() { echo "[bench $(date -u +%H:%M:%S)] $*" >&2; }

wait_port() {
    for _ in $(seq 1 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

RIPTIDE_PID=""
RIPTIDE_PIDFILE="$SCRATCH/riptide.pid"
export RIPTIDE_PIDFILE SCRATCH OUT
PEER_PIDFILE="$SCRATCH/peer.pid"

start_riptide() {  # $1 = flush policy
    [[ $SKIP_RIPTIDE == 1 ]] && return 0
    stop_riptide
    rm -rf "$DATA_DIR" && mkdir -p "$DATA_DIR"
    if ! port_free "$RIPTIDE_PORT"; then
        log "port $RIPTIDE_PORT is taken by pid(s) $(listeners "$RIPTIDE_PORT" | tr '\n' ' '); picking another"
        RIPTIDE_PORT=$(pick_port)
    fi
    local FLUSH_POLICY=$1 cmd
    cmd=$(RIPTIDE_PORT=$RIPTIDE_PORT DATA_DIR=$DATA_DIR FLUSH_POLICY=$FLUSH_POLICY envsubst_simple "$RIPTIDE_CMD")
    log "starting riptide: $cmd"
    # shellcheck disable=SC2086
    echo "=== $(date -u +%H:%M:%S) $cmd" >>"$OUT/riptide.log"
    $cmd >>"$OUT/riptide.log" 2>&1 &
    RIPTIDE_PID=$!
    # For scripts/bench-restart-riptide.sh (the cold-consume row restarts Riptide mid-run).
    echo "$RIPTIDE_PID" >"$RIPTIDE_PIDFILE"
    echo "$cmd" >"$SCRATCH/riptide.cmd"
    if ! wait_port "$RIPTIDE_PORT"; then
        log "riptide did not open port $RIPTIDE_PORT (see $OUT/riptide.log); continuing with the peer only"
        kill "$RIPTIDE_PID" 2>/dev/null || true
        RIPTIDE_PID=""
        return 1
    fi
    local owners
    owners=$(listeners "$RIPTIDE_PORT" | tr '\n' ' ')
    if [[ $owners != "$RIPTIDE_PID " ]]; then
        log "port $RIPTIDE_PORT is held by pid(s) $owners, not only riptide $RIPTIDE_PID: refusing to measure a mix"
        stop_riptide
        return 1
    fi
}

# A restart during a row (scripts/bench-restart-riptide.sh) leaves the new pid in the pidfile.
refresh_riptide_pid() {
    if [[ -n $RIPTIDE_PID && -s $RIPTIDE_PIDFILE ]]; then
        RIPTIDE_PID=$(cat "$RIPTIDE_PIDFILE")
    fi
}

stop_riptide() {
    refresh_riptide_pid
    if [[ -n $RIPTIDE_PID ]]; then
        kill "$RIPTIDE_PID" 2>/dev/null || true
        wait "$RIPTIDE_PID" 2>/dev/null || true
        # Not our child after a restart: wait for it to go.
        for _ in $(seq 1 300); do kill -0 "$RIPTIDE_PID" 2>/dev/null || break; sleep 0.1; done
        RIPTIDE_PID=""
    fi
}

start_peer() {
    [[ $PEER == none ]] && return 0
    stop_peer
    port_free "$PEER_PORT" || PEER_PORT=$(pick_port)
    TANSU_STORAGE=$PEER_ENGINE TANSU_DATA_DIR="$SCRATCH/tansu-data" \
        scripts/peer-tansu.sh start "$PEER_PORT" "$PEER_PIDFILE" "$OUT/tansu.log" >/dev/null
}

stop_peer() { [[ -f $PEER_PIDFILE ]] && scripts/peer-tansu.sh stop "$PEER_PIDFILE"; return 0; }

cleanup() {
    stop_riptide
    stop_peer
    rm -rf "$SCRATCH"
}
trap cleanup EXIT
trap "exit 130" INT TERM

# Expands $RIPTIDE_PORT, $DATA_DIR and $FLUSH_POLICY in a command template (no eval).
envsubst_simple() {
    local s=$1
    s=${s//\$RIPTIDE_PORT/$RIPTIDE_PORT}
    s=${s//\$DATA_DIR/$DATA_DIR}
    s=${s//\$FLUSH_POLICY/$FLUSH_POLICY}
    echo "$s"
}

# Fresh brokers for every row: both get an empty data dir (Tansu's memory store starts empty).
# $2: the peer engine the row needs under TANSU_STORAGE=auto (default memory).
fresh_brokers() {  # $1 = flush policy, [$2 = sqlite|memory]
    CURRENT_POLICY=$1
    if [[ $TANSU_STORAGE == auto ]]; then PEER_ENGINE=${2:-memory}; else PEER_ENGINE=$TANSU_STORAGE; fi
    start_riptide "$1" || true
    start_peer
}

compare_args() {
    local addrs=() names=()
    if [[ -n $RIPTIDE_PID ]]; then addrs+=("127.0.0.1:$RIPTIDE_PORT"); names+=(riptide); fi
    if [[ $PEER != none ]]; then addrs+=("127.0.0.1:$PEER_PORT"); names+=(tansu); fi
    if [[ ${#addrs[@]} -eq 0 ]]; then log "no broker to measure"; exit 1; fi
    local IFS=,
    if [[ ${#addrs[@]} -eq 1 ]]; then
        echo "--bootstrap ${addrs[*]} --names ${names[*]}"
    else
        echo "--compare ${addrs[*]} --names ${names[*]}"
    fi
}

# run_row <row-id> <title> <workload> <driver> <runs> [riptide-perf args...]
run_row() {
    local id=$1 title=$2 workload=$3 driver=$4 runs=$5
    shift 5
    local dir="$OUT/$id"
    mkdir -p "$dir"
    local cmd
    # shellcheck disable=SC2207  # compare_args is space-separated words without spaces
    cmd=("$PERF" --workload "perf/workloads/$workload.toml" $(compare_args) --driver "$driver" --runs "$runs"
        --no-progress --out-dir "$dir" "$@")
    log "row $id: $title"
    printf '%q ' "${cmd[@]}" | sed 's/ $//' >"$dir/command.txt"
    [[ $PEER != none ]] && TANSU_STORAGE=$PEER_ENGINE scripts/peer-tansu.sh describe >"$dir/peer.txt"
    echo "$title" >"$dir/title.txt"
    if ! "${cmd[@]}" >"$dir/stdout.md" 2>"$dir/stderr.log"; then
        log "row $id failed (see $dir/stderr.log)"
        grep -v '^ *[0-9]*: \|^ *at ' "$dir/stderr.log" | tail -6 >&2
    fi
    # A broker that died during the row is restarted, and the death recorded in the report.
    refresh_riptide_pid
    if [[ -n $RIPTIDE_PID ]] && ! kill -0 "$RIPTIDE_PID" 2>/dev/null; then
        wait "$RIPTIDE_PID" 2>/dev/null
        local rc=$?
        log "riptide (pid $RIPTIDE_PID) died during row $id with status $rc; see $OUT/riptide.log"
        echo "Riptide (pid $RIPTIDE_PID) exited with status $rc during this row; see riptide.log." >"$dir/broker-died.txt"
        RIPTIDE_PID=""
        start_riptide "${CURRENT_POLICY:-always}" || true
    fi
    # The peer too: a dead peer fails every later run of the row group otherwise.
    if [[ $PEER != none && -s $PEER_PIDFILE ]] && ! kill -0 "$(cat "$PEER_PIDFILE")" 2>/dev/null; then
        log "the peer (pid $(cat "$PEER_PIDFILE")) died during row $id; see $OUT/tansu.log"
        echo "The peer (Tansu, pid $(cat "$PEER_PIDFILE")) exited during this row; its later runs failed. See tansu.log." >"$dir/peer-died.txt"
        start_peer
    fi
}

# --- tools ------------------------------------------------------------------------------
# What the suite runs besides cargo: the ceilings (iperf3, fio), flamegraphs (perf), and
# the librdkafka build of the rdkafka driver (cmake, a C++ compiler, ssl, zlib, curl headers).
missing=()
for tool in iperf3:iperf3 fio:fio perf:linux-perf cmake:cmake g++:g++; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
for pkg in libssl-dev zlib1g-dev libcurl4-openssl-dev; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
    log "apt-get install ${missing[*]}"
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# --- build ------------------------------------------------------------------------------
log "building release binaries"
if [[ $SKIP_RIPTIDE == 1 ]]; then
    cargo build --release -p perf --features rdkafka --bin riptide-perf
else
    cargo build --release -p perf --features rdkafka --bin riptide-perf
    [[ ${BUILD_RIPTIDE:-1} == 1 ]] && cargo build --release --bin riptide
fi
if [[ $PEER == tansu ]]; then
    engines=$TANSU_STORAGE
    [[ $engines == auto ]] && engines="memory sqlite"
    for e in $engines; do
        TANSU_STORAGE=$e scripts/peer-tansu.sh install
        log "peer: $(TANSU_STORAGE=$e scripts/peer-tansu.sh describe)"
    done
fi

# --- ceilings ---------------------------------------------------------------------------
ceilings() {
    log "ceilings: iperf3 loopback (-l 1M), fio O_DIRECT 128 KiB iodepth 8, fio 16 KiB fdatasync"
    iperf3 -s -1 -p "$IPERF_PORT" >/dev/null 2>&1 &
    local srv=$!
    sleep 0.5
    iperf3 -c 127.0.0.1 -p "$IPERF_PORT" -l 1M -t "$CEILING_S" -J >"$OUT/iperf3.json" || true
    wait "$srv" 2>/dev/null || true
    local f="$SCRATCH/fio.dat" engine=io_uring
    mkdir -p "$SCRATCH"
    if ! fio --name=probe --filename="$f" --size=16M --rw=write --bs=128k --ioengine=io_uring --direct=1 \
        --output-format=json >/dev/null 2>&1; then
        engine=libaio
        log "fio: io_uring unavailable here, using libaio"
    fi
    echo "$engine" >"$OUT/fio-engine.txt"
    local common=(--filename="$f" --size=2G --bs=128k --iodepth=8 --ioengine=$engine --direct=1
        --runtime="$CEILING_S" --time_based --output-format=json)
    fio --name=write "${common[@]}" --rw=write >"$OUT/fio-write.json"
    fio --name=read "${common[@]}" --rw=read >"$OUT/fio-read.json"
    fio --name=fdatasync --filename="$f" --size=256M --bs=16k --rw=write --ioengine=sync --fdatasync=1 \
        --runtime="$CEILING_S" --time_based --output-format=json >"$OUT/fio-fdatasync.json"
    rm -f "$f"
}
ceilings

# --- suite ------------------------------------------------------------------------------
# The first target's max rate: $MAX_RATE, else row 0's search, else row 1b's median.
max_rate() {
    if [[ -n ${MAX_RATE:-} ]]; then echo "$MAX_RATE"; return; fi
    python3 - "$OUT/0/max-produce-1k-3p.json" "$OUT/1b/produce-1k-3p-native.json" <<'PY' 2>/dev/null || echo 20000
import json, sys
try:
    m = json.load(open(sys.argv[1]))[0]["max_rate_msgs_per_s"]
    if m:
        print(int(m)); sys.exit(0)
except (OSError, ValueError, IndexError, KeyError):
    pass
s = json.load(open(sys.argv[2]))
print(int(s["targets"][0]["metrics"]["produce (msg/s)"]["median"]))
PY
}

for row in $ROWS; do
    case $row in
    0)
        fresh_brokers always sqlite
        run_row 0 "Max rate: highest producer rate held with publish p99 < 50 ms, acks=all (native)" \
            produce-1k-3p native 1 --set acks=all --find-max-p99-ms 50 "${MAX_SHORT[@]}"
        ;;
    1)
        fresh_brokers always
        run_row 1a "Produce 1 KiB, 3 partitions, acks=1 (native)" produce-1k-3p native "$RUNS" --set acks=1 "${SHORT[@]}"
        # A fresh peer: the memory store does not give memory back between runs (1a peaked
        # at 8.8 GiB RSS), and 1b on 1a's peer ran it out of memory.
        fresh_brokers always
        run_row 1b "Produce 1 KiB, 3 partitions, acks=all (native)" produce-1k-3p native "$RUNS" --set acks=all "${SHORT[@]}"
        fresh_brokers always
        run_row 1c "Produce 1 KiB, 3 partitions, acks=1 (librdkafka)" produce-1k-3p rdkafka "$RUNS" --set acks=1 "${SHORT[@]}"
        fresh_brokers always
        run_row 1d "Produce 1 KiB, 3 partitions, acks=all (librdkafka)" produce-1k-3p rdkafka "$RUNS" --set acks=all "${SHORT[@]}"
        ;;
    2)
        fresh_brokers always
        run_row 2a "Consume from the beginning, tail cache (librdkafka)" consume-backlog-1k-3p rdkafka "$RUNS" "${BACKLOG[@]}"
        run_row 2b "Consume from the beginning, tail cache (native)" consume-backlog-1k-3p native "$RUNS" "${BACKLOG[@]}"
        fresh_brokers always
        # Cold: between fill and read Riptide is restarted (its tail cache is then empty and
        # it reads with O_DIRECT from disk) and the kernel page cache is dropped. The peer is
        # not restarted (peer-tansu.sh starts from an empty store; memory:// would lose the
        # backlog), so for it only the page cache is cold.
        run_row 2c "Consume from the beginning, cold: Riptide restarted, page cache dropped (native)" consume-backlog-1k-3p native "$RUNS" \
            "${BACKLOG[@]}" --before-consume "scripts/bench-restart-riptide.sh"
        ;;
    3)
        max=$(max_rate)
        half=$((max / 2))
        for policy in always none; do
            for rate in 5000 50000 "$half"; do
                # A fresh peer per rate; at half the max rate a memory peer would hold
                # ~16 GiB per run, so that rate gets the disk-backed one.
                if [[ $rate == "$half" ]]; then fresh_brokers "$policy" sqlite; else fresh_brokers "$policy"; fi
                run_row "3-$policy-$rate" "E2E latency at $rate msg/s, acks=all, linger 0, flush.policy=$policy (native)" \
                    e2e-5k native "$RUNS_E2E" --set producer_rate_msgs_per_s="$rate" "${E2E_SHORT[@]}"
            done
            fresh_brokers "$policy"
            run_row "3-$policy-5000-rdkafka" "E2E latency at 5000 msg/s, acks=all, linger 0, flush.policy=$policy (librdkafka)" \
                e2e-5k rdkafka "$RUNS_E2E" "${E2E_SHORT[@]}"
        done
        ;;
    s)
        # Issue 3's speed section alone (librdkafka rows: produce, consume, e2e at 5k msg/s),
        # under the same row ids as the full suite so the report checks its targets.
        fresh_brokers always
        run_row 1c "Produce 1 KiB, 3 partitions, acks=1 (librdkafka)" produce-1k-3p rdkafka "$RUNS" --set acks=1 "${SHORT[@]}"
        run_row 1d "Produce 1 KiB, 3 partitions, acks=all (librdkafka)" produce-1k-3p rdkafka "$RUNS" --set acks=all "${SHORT[@]}"
        fresh_brokers always
        run_row 2a "Consume from the beginning, tail cache (librdkafka)" consume-backlog-1k-3p rdkafka "$RUNS" "${BACKLOG[@]}"
        for policy in always none; do
            fresh_brokers "$policy"
            run_row "3-$policy-5000-rdkafka" "E2E latency at 5000 msg/s, acks=all, linger 0, flush.policy=$policy (librdkafka)" \
                e2e-5k rdkafka "$RUNS_E2E" "${E2E_SHORT[@]}"
        done
        ;;
    4)
        fresh_brokers always
        run_row 4 "1,000 partitions, 10,000 keys, acks=1 (native)" many-partitions-1000 native "$RUNS_E2E" "${SHORT[@]}"
        ;;
    5)
        max=$(max_rate)
        fresh_brokers always sqlite
        run_row 5 "Mixed produce+consume at 50% of max ($((max / 2)) msg/s), acks=all (native)" mixed-50pct native 1 \
            --set producer_rate_msgs_per_s=$((max / 2)) "${MIXED_SHORT[@]}"
        ;;
    f)
        # Flamegraphs of Riptide under the main suite workloads, into flamegraphs/.
        [[ $SKIP_RIPTIDE == 1 ]] && continue
        fresh_brokers always
        [[ -z $RIPTIDE_PID ]] && continue
        if [[ $MODE == quick ]]; then FG=(--set warmup_s=1 --set duration_s=3 --set produce_bytes_min=0); else
            FG=(--set warmup_s=2 --set duration_s=20 --set produce_bytes_min=0); fi
        for spec in "produce-1k-3p:--set acks=all" "consume-backlog-1k-3p:--set consume_backlog_bytes=536870912" \
            "e2e-5k:--set producer_rate_msgs_per_s=50000"; do
            wl=${spec%%:*}
            read -r -a extra <<<"${spec#*:}"
            log "flamegraph: $wl"
            SKIP_BUILD=1 BROKER_PID=$RIPTIDE_PID scripts/flamegraph.sh "$wl" "127.0.0.1:$RIPTIDE_PORT" riptide -- "${extra[@]}" "${FG[@]}" \
                >>"$OUT/flamegraphs.txt" 2>>"$OUT/flamegraphs.log" || log "flamegraph $wl failed (see $OUT/flamegraphs.log)"
        done
        ;;
    *) log "unknown row $row" ;;
    esac
done
stop_riptide
stop_peer

# --- BENCHMARKS.md ----------------------------------------------------------------------
log "writing $BENCH_MD"
python3 perf/bench_report.py "$OUT" "$BENCH_MD" "$PLOTS_DIR" "$MODE" "$RUNS"
log "done: raw results in $OUT"
