#!/usr/bin/env bash
# Records a broker under a workload and renders a flamegraph SVG.
#   perf record -e cpu-clock -g (software clock: no hardware counters on these VMs)
#   -> perf script -> inferno-collapse-perf -> inferno-flamegraph
#   -> flamegraphs/<workload>-<label>-<UTC date>.svg
#
# Usage: scripts/flamegraph.sh <workload-name> <bootstrap> [label] [-- extra riptide-perf args]
#   e.g. scripts/flamegraph.sh produce-1k-3p 127.0.0.1:9092 riptide -- --set acks=all
# Env:   BROKER_PID (default: the process listening on the bootstrap port)
#        PERF_FREQ  (sampling Hz, default 499)   CALL_GRAPH (default dwarf: release Rust has no
#        frame pointers, so "fp" loses most Rust frames; dwarf files are bigger)
#        TOOLS_DIR (inferno lives in $TOOLS_DIR/inferno)  KEEP_FOLDED=1 keeps <svg>.folded
#        DRIVER (native|rdkafka, default native) OUT_DIR (default flamegraphs)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
WORKLOAD=${1:?workload name (perf/workloads/<name>.toml)}
BOOTSTRAP=${2:?bootstrap address}
LABEL=${3:-broker}
shift $(( $# >= 3 ? 3 : $# ))
[[ ${1:-} == -- ]] && shift
EXTRA=("$@")
TOOLS_DIR=${TOOLS_DIR:-/work/tools}
PERF_FREQ=${PERF_FREQ:-499}
CALL_GRAPH=${CALL_GRAPH:-dwarf}
DRIVER=${DRIVER:-native}
OUT_DIR=${OUT_DIR:-flamegraphs}
INFERNO="$TOOLS_DIR/inferno/bin"

if [[ ! -x $INFERNO/inferno-flamegraph ]]; then
    cargo install inferno --root "$TOOLS_DIR/inferno"
fi
command -v perf >/dev/null || { echo "perf not found: apt-get install linux-perf" >&2; exit 1; }
if [[ ${SKIP_BUILD:-0} == 1 ]]; then
    [[ -x target/release/riptide-perf ]] || { echo "SKIP_BUILD=1 but no target/release/riptide-perf" >&2; exit 1; }
elif [[ $DRIVER == rdkafka ]]; then
    cargo build --release -p perf --features rdkafka --bin riptide-perf
else
    cargo build --release -p perf --bin riptide-perf
fi

PORT=${BOOTSTRAP##*:}
PID=${BROKER_PID:-$(ss -Hltnp "sport = :$PORT" | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -1)}
[[ -n $PID ]] || { echo "no process listens on port $PORT; set BROKER_PID" >&2; exit 1; }

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
WORK=$(mktemp -d /tmp/flamegraph.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT_DIR"
SVG="$OUT_DIR/$WORKLOAD-$LABEL-$STAMP.svg"

echo "recording pid $PID during $WORKLOAD ($DRIVER) -> $SVG" >&2
perf record -e cpu-clock -F "$PERF_FREQ" --call-graph "$CALL_GRAPH" -p "$PID" -o "$WORK/perf.data" 2>"$WORK/record.log" &
REC=$!
sleep 1
if ! kill -0 "$REC" 2>/dev/null; then
    echo "perf record did not start:" >&2
    cat "$WORK/record.log" >&2
    exit 1
fi
stop_recording() {
    kill -INT "$REC" 2>/dev/null || true
    wait "$REC" 2>/dev/null || true
}
if ! target/release/riptide-perf --workload "perf/workloads/$WORKLOAD.toml" --bootstrap "$BOOTSTRAP" --names "$LABEL" \
    --driver "$DRIVER" --no-progress --out-dir "$WORK/results" "${EXTRA[@]}" >"$WORK/run.md" 2>"$WORK/run.log"; then
    stop_recording
    echo "the workload failed; its log without backtraces:" >&2
    grep -v '^ *[0-9]*: \|^ *at ' "$WORK/run.log" | tail -8 >&2
    exit 1
fi
stop_recording
perf script -i "$WORK/perf.data" 2>/dev/null | "$INFERNO/inferno-collapse-perf" >"$WORK/collapsed.txt"
"$INFERNO/inferno-flamegraph" --title "$WORKLOAD on $LABEL ($STAMP, perf cpu-clock ${PERF_FREQ} Hz)" \
    <"$WORK/collapsed.txt" >"$SVG"
# A plain-text top list next to the SVG, for reading without a browser. (`|| true`: head
# closing the pipe early is not a failure.)
awk '{n=$NF; $NF=""; k=split($0,f,";"); leaf=f[k]; s[leaf]+=n; t+=n}
    END {for (x in s) printf "%6.2f%% %s\n", 100*s[x]/t, x}' "$WORK/collapsed.txt" | sort -nr | head -25 \
    >"${SVG%.svg}.top.txt" || true
cp "$WORK/run.md" "${SVG%.svg}.run.md"
if [[ ${KEEP_FOLDED:-0} == 1 ]]; then cp "$WORK/collapsed.txt" "${SVG%.svg}.folded"; fi
echo "$SVG"
