#!/usr/bin/env bash
# Runs the disk ceilings with fio (O_DIRECT, io_uring, sequential) and then Riptide's
# logbench on the same directory, so both sets of figures come from the same run.
#
#   scripts/logbench.sh [DIR] [SIZE_GIB]      (defaults: /var/tmp/riptide-logbench 4)
#
# fio cases (issue 2):
#   w128k_qd8   128 KiB writes, iodepth 8          the practical write ceiling
#   w16k_qd1    16 KiB writes, iodepth 1           a naive one-write-per-batch log
#   w16k_sync   16 KiB writes + fdatasync each     latency of one durable write (p99)
#   w1m_sync    1 MiB writes + fdatasync each      reference for group commit
#   r128k_qd8   128 KiB reads, iodepth 8           the read ceiling
#   w256k_sync_16f   16 new files, each 256 KiB writes + fdatasync: the sync pattern of
#                    logbench's 16-partition `always` case (16 batches per fdatasync)
#   w64k_sync_256f   256 new files, each 64 KiB writes + fdatasync: the 256-partition one
set -euo pipefail
DIR=${1:-/var/tmp/riptide-logbench}
GIB=${2:-4}
command -v fio >/dev/null || { apt-get update -qq && apt-get install -y -qq fio; }
mkdir -p "$DIR"
F="$DIR/fio.dat"
common=(--filename="$F" --ioengine=io_uring --direct=1 --group_reporting --output-format=json)



run() { # name, fio args...
  local name=$1; shift
  fio --name="$name" "${common[@]}" "$@" > "$DIR/$name.json"
}

echo "machine: $(nproc) cores, $(grep MemTotal /proc/meminfo | awk '{print $2/1048576 " GiB"}'), kernel $(uname -r), fs $(findmnt -n -o FSTYPE --target "$DIR") on $(findmnt -n -o SOURCE --target "$DIR")"
run w128k_qd8 --rw=write --bs=128k --iodepth=8 --size="${GIB}G"
run r128k_qd8 --rw=read --bs=128k --iodepth=8 --size="${GIB}G"
rm -f "$F"
run w16k_qd1 --rw=write --bs=16k --iodepth=1 --size="$(python3 -c "print(max(1, int($GIB/4)))")G"
rm -f "$F"
run w16k_sync --rw=write --bs=16k --iodepth=1 --fdatasync=1 --size=256M
rm -f "$F"
run w1m_sync --rw=write --bs=1m --iodepth=1 --fdatasync=1 --size="${GIB}G"
rm -f "$F"
# One file per job, new (fallocated, so every fdatasync also writes extent metadata), as a
# partition's segment is; the fdatasync p99 plus the write p99 bounds what group commit
# over that many logs can promise on this device.
many() { # name, files, block size, fio args...
  local name=$1 files=$2 bs=$3; shift 3
  mkdir -p "$DIR/$name.d"
  fio --name="$name" --directory="$DIR/$name.d" --ioengine=io_uring --direct=1 --group_reporting \
    --output-format=json --rw=write --bs="$bs" --iodepth=1 --fdatasync=1 --numjobs="$files" \
    --size="$(( GIB * 1024 / 4 / files ))M" "$@" > "$DIR/$name.json"
  rm -rf "$DIR/$name.d"
}
many w256k_sync_16f 16 256k
many w64k_sync_256f 256 64k

python3 - "$DIR" <<'PY'
import json, sys, os
d = sys.argv[1]
def load(n):
    return json.load(open(os.path.join(d, n + ".json")))["jobs"][0]
for n in ["w128k_qd8", "w16k_qd1", "w16k_sync", "w1m_sync", "w256k_sync_16f", "w64k_sync_256f"]:
    j = load(n)["write"]
    line = f"fio {n:<10} write {j['bw_bytes']/2**30:.3f} GiB/s"
    s = load(n).get("sync")
    if s and s.get("lat_ns", {}).get("percentile"):
        p = s["lat_ns"]["percentile"]
        line += f"  fdatasync p50={p.get('50.000000',0)/1000:.0f}us p99={p.get('99.000000',0)/1000:.0f}us"
    cl = j.get("clat_ns", {}).get("percentile")
    if cl:
        line += f"  write clat p99={cl.get('99.000000',0)/1000:.0f}us"
    print(line)
j = load("r128k_qd8")["read"]
print(f"fio r128k_qd8  read  {j['bw_bytes']/2**30:.3f} GiB/s")
PY

cd "$(dirname "$0")/.."
cargo build --release -q -p shards --bin logbench
./target/release/logbench --dir "$DIR" --gib "$GIB" "${@:3}"
