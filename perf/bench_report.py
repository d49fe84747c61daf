#!/usr/bin/env python3
"""Writes the results section of BENCHMARKS.md from one scripts/bench.sh run.

Usage: bench_report.py <out-dir> <BENCHMARKS.md> <plots-dir> <mode> <runs>

Reads <out-dir>/{iperf3,fio-*}.json (the same-run ceilings) and <out-dir>/<row>/ (the
riptide-perf summary JSON, markdown, SVGs, the exact command, and peer.txt: which peer and
storage engine the row ran against, from `scripts/peer-tansu.sh describe`), copies the SVGs
into <plots-dir>, and replaces everything between the markers below in BENCHMARKS.md.
"""
import glob
import json
import os
import platform
import re
import shutil
import subprocess
import sys

BEGIN = "<!-- bench:results:begin -->"
END = "<!-- bench:results:end -->"
GIB = 1024 ** 3
MIB = 1024 ** 2


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def ceilings(out):
    c = {}
    ip = load(os.path.join(out, "iperf3.json"))
    if ip and "end" in ip:
        c["loopback"] = ip["end"]["sum_received"]["bits_per_second"] / 8
    for kind in ("write", "read"):
        f = load(os.path.join(out, f"fio-{kind}.json"))
        if f:
            c[f"disk_{kind}"] = f["jobs"][0][kind]["bw_bytes"]
    f = load(os.path.join(out, "fio-fdatasync.json"))
    if f:
        sync = f["jobs"][0].get("sync", {})
        pct = sync.get("lat_ns", {}).get("percentile", {})
        if pct:
            c["fdatasync_p99_ms"] = pct.get("99.000000", 0) / 1e6
            c["fdatasync_p999_ms"] = pct.get("99.900000", 0) / 1e6
    try:
        c["fio_engine"] = open(os.path.join(out, "fio-engine.txt")).read().strip()
    except OSError:
        c["fio_engine"] = "?"
    return c


def machine():
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem = next(l for l in open("/proc/meminfo") if l.startswith("MemTotal")).split()[1]
        mem_gib = int(mem) / 1024 / 1024
    except (OSError, StopIteration):
        mem_gib = 0
    return f"{model}, {os.cpu_count()} vCPU, {mem_gib:.0f} GiB RAM, Linux {platform.release()}"


def git_commit(out=None):
    """The commit measured: <out>/commit.txt (written by bench.sh when the run starts), else
    the current HEAD (a report re-rendered later must not claim a later commit)."""
    if out and os.path.exists(os.path.join(out, "commit.txt")):
        return open(os.path.join(out, "commit.txt")).read().strip()
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def row_key(name):
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def metric(summary, target, key):
    for t in summary["targets"]:
        if t["name"] == target and key in t["metrics"]:
            return t["metrics"][key]["median"]
    return None


def fmt(v, digits=1):
    return "–" if v is None else f"{v:,.{digits}f}"


def fmt_ratio(v):
    """A ratio with enough digits to stay readable when it is far below 1."""
    if v is None:
        return "–"
    if 0 < v < 0.001:
        return f"1/{1 / v:,.0f}×"  # e.g. latency 1.4 ms vs 36 s: "1/26,400×", not "0.0000×"
    if 0 < v < 0.01:
        return f"{v:.4f}×"
    return f"{v:,.2f}×"


def headline(row, summary, c):
    """(what, riptide value, ceiling, fraction, cpu/GiB, peer value, ratio) for one row."""
    rid = row
    if rid.startswith("3") or rid.startswith("5"):
        key = "e2e p99 (ms)"
        ceiling = c.get("fdatasync_p99_ms") if "always" in rid or rid.startswith("5") else None
        what = "e2e p99 ms"
    elif rid.startswith("2"):
        key = "consume (MiB/s)"
        ceiling = c.get("disk_read") if rid == "2c" else c.get("loopback")
        ceiling = ceiling / MIB if ceiling else None
        what = "consume MiB/s"
    else:
        key = "produce (MiB/s)"
        lim = [v for v in (c.get("loopback"), c.get("disk_write")) if v]
        ceiling = min(lim) / MIB if lim else None
        what = "produce MiB/s"
    rip = metric(summary, "riptide", key)
    peer = metric(summary, "tansu", key)
    cpu = metric(summary, "riptide", "broker CPU (core-s/GiB)")
    peer_cpu = metric(summary, "tansu", "broker CPU (core-s/GiB)")
    if what.endswith("ms"):
        frac = None
    else:
        frac = rip / ceiling if rip is not None and ceiling else None
    ratio = rip / peer if rip is not None and peer else None
    return what, rip, ceiling, frac, cpu, peer, peer_cpu, ratio


def targets_section(out, c):
    """Issue 3's speed targets, checked against this run (librdkafka rows)."""
    def summ(row):
        js = glob.glob(os.path.join(out, row, "*.json"))
        return load(js[0]) if js else None

    def m(row, target, key):
        s = summ(row)
        return metric(s, target, key) if s and not isinstance(s, list) else None

    def verdict(ok):
        return "–" if ok is None else ("**met**" if ok else "**missed**")

    rows = []
    for row, what in (("1c", "produce acks=1"), ("1d", "produce acks=all")):
        rip, peer = m(row, "riptide", "produce (msg/s)"), m(row, "tansu", "produce (msg/s)")
        cpu = m(row, "riptide", "broker CPU (core-s/GiB)")
        ratio = rip / peer if rip and peer else None
        rows.append((f"{what} ≥ 1.5× Tansu msg/s (row {row})", fmt(ratio, 2) + ("×" if ratio else ""),
                     verdict(None if ratio is None else ratio >= 1.5)))
        rows.append((f"{what} broker CPU ≤ 1.0 core-s/GiB (row {row})", fmt(cpu, 2),
                     verdict(None if cpu is None else cpu <= 1.0)))
    rip, peer = m("2a", "riptide", "consume (msg/s)"), m("2a", "tansu", "consume (msg/s)")
    cpu = m("2a", "riptide", "broker CPU (core-s/GiB)")
    ratio = rip / peer if rip and peer else None
    rows.append(("consume from the beginning ≥ 1.5× Tansu (row 2a)", fmt(ratio, 2) + ("×" if ratio else ""),
                 verdict(None if ratio is None else ratio >= 1.5)))
    rows.append(("consume broker CPU ≤ 0.5 core-s/GiB (row 2a)", fmt(cpu, 2), verdict(None if cpu is None else cpu <= 0.5)))
    r = "3-none-5000-rdkafka"
    p99, p999 = m(r, "riptide", "e2e p99 (ms)"), m(r, "riptide", "e2e p99.9 (ms)")
    rows.append((f"flush none, 5k msg/s: e2e p99 ≤ 2 ms (row {r})", fmt(p99, 2), verdict(None if p99 is None else p99 <= 2)))
    rows.append((f"flush none, 5k msg/s: e2e p99.9 ≤ 5 ms (row {r})", fmt(p999, 2), verdict(None if p999 is None else p999 <= 5)))
    r = "3-always-5000-rdkafka"
    pub99, e999 = m(r, "riptide", "publish p99 (ms)"), m(r, "riptide", "e2e p99.9 (ms)")
    f99, f999 = c.get("fdatasync_p99_ms"), c.get("fdatasync_p999_ms")
    if f99 is not None:
        rows.append((f"flush always: publish p99 ≤ fdatasync p99 + 2 = {f99 + 2:.2f} ms (row {r})", fmt(pub99, 2),
                     verdict(None if pub99 is None else pub99 <= f99 + 2)))
        rows.append((f"flush always: e2e p99.9 ≤ fdatasync p99.9 + 5 = {f999 + 5:.2f} ms (row {r})", fmt(e999, 2),
                     verdict(None if e999 is None else e999 <= f999 + 5)))
    out_lines = ["### Speed targets (issue 3), this run", "", "| target | measured | verdict |", "|---|---:|---|"]
    out_lines += [f"| {a} | {b} | {v} |" for a, b, v in rows]
    return out_lines + [""]


def peer_info(row_dir):
    """(description, storage engine) of the row's peer, from its peer.txt; (None, "–")
    when the row recorded none."""
    try:
        desc = open(os.path.join(row_dir, "peer.txt")).read().strip()
    except OSError:
        return None, "–"
    m = re.search(r"storage engine (\w+)://", desc)
    return desc, m.group(1) if m else "?"


def main():
    out, bench_md, plots, mode, runs = sys.argv[1:6]
    os.makedirs(plots, exist_ok=True)
    c = ceilings(out)
    stamp = os.path.basename(os.path.normpath(out))
    lines = [BEGIN, "", f"## Results ({stamp}, mode {mode}, {runs} runs per target)", ""]
    lines.append(f"Machine: {machine()}. Commit `{git_commit(out)}`. Client and brokers share the machine; "
                 "figures are medians with min–max over alternating runs (Riptide, Tansu, Riptide, …). "
                 "MiB are payload bytes (key + value). Broker CPU is user + system time of the broker "
                 "process over the measured window, from /proc.")
    rows = sorted((d for d in os.listdir(out) if os.path.isdir(os.path.join(out, d))), key=row_key)
    peers = sorted({p for p in (peer_info(os.path.join(out, r))[0] for r in rows) if p})
    if peers:
        lines += ["", "Peer (the `tansu` column of every table), per row as the summary's last column says:"]
        lines += [f"- {p}" for p in peers]
    lines += ["", "### Same-run ceilings", "", "| ceiling | value |", "|---|---:|"]
    if "loopback" in c:
        lines.append(f"| loopback TCP, `iperf3 -l 1M` | {c['loopback'] / GIB:.2f} GiB/s |")
    if "disk_write" in c:
        lines.append(f"| disk write, fio O_DIRECT {c['fio_engine']} 128 KiB iodepth 8 | {c['disk_write'] / GIB:.2f} GiB/s |")
    if "disk_read" in c:
        lines.append(f"| disk read, fio O_DIRECT {c['fio_engine']} 128 KiB iodepth 8 | {c['disk_read'] / GIB:.2f} GiB/s |")
    if "fdatasync_p99_ms" in c:
        lines.append(f"| fio 16 KiB write + fdatasync, p99 / p99.9 | {c['fdatasync_p99_ms']:.2f} / {c['fdatasync_p999_ms']:.2f} ms |")
    lines += ["", "Commands: `iperf3 -s` + `iperf3 -c 127.0.0.1 -l 1M -t T -J`; "
              "`fio --rw=write|read --bs=128k --iodepth=8 --ioengine=io_uring --direct=1 --size=2G --time_based`; "
              "`fio --rw=write --bs=16k --ioengine=sync --fdatasync=1`.", ""]
    table = ["### Summary", "",
             "| row | metric | Riptide | ceiling | Riptide / ceiling | Riptide CPU core-s/GiB | Tansu | Tansu CPU core-s/GiB | Riptide / Tansu | Tansu store |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    details = []
    gap_rows = []
    for row in rows:
        d = os.path.join(out, row)
        title = open(os.path.join(d, "title.txt")).read().strip() if os.path.exists(os.path.join(d, "title.txt")) else row
        command = open(os.path.join(d, "command.txt")).read().strip() if os.path.exists(os.path.join(d, "command.txt")) else "?"
        peer_desc, store = peer_info(d)
        details += [f"### Row {row}: {title}", "", "```", command, "```", ""]
        if peer_desc:
            details += [f"Peer: {peer_desc}.", ""]
        for name in ("broker-died.txt", "peer-died.txt"):
            died = os.path.join(d, name)
            if os.path.exists(died):
                details += ["**" + open(died).read().strip() + "**", ""]
        maxes = glob.glob(os.path.join(d, "max-*.json"))
        if maxes:
            for m in load(maxes[0]) or []:
                details.append(f"**{m['target']}**: max rate {m['max_rate_msgs_per_s'] or 'not found'} msg/s "
                               f"(publish p99 < {m['p99_limit_ms']} ms)")
                details += ["", "| step rate (msg/s) | achieved (msg/s) | publish p99 (ms) | errors | held |", "|---:|---:|---:|---:|---|"]
                for st in m["steps"]:
                    rate = st["rate_msgs_per_s"] or "unthrottled"
                    p99 = st["publish_p99_ms"]
                    details.append(f"| {rate} | {st['achieved_msgs_per_s']:,.0f} | {fmt(p99, 2)} | {st['errors']} | {st['held']} |")
                details.append("")
                name = "Riptide" if m["target"] == "riptide" else m["target"]
                table.append(f"| {row} | max msg/s held, p99 < {m['p99_limit_ms']} ms ({name}) | "
                             f"{fmt(m['max_rate_msgs_per_s'], 0) if m['target'] == 'riptide' else '–'} | – | – | – | "
                             f"{fmt(m['max_rate_msgs_per_s'], 0) if m['target'] != 'riptide' else '–'} | – | – | {store} |")
            continue
        jsons = [j for j in glob.glob(os.path.join(d, "*.json"))]
        summary = load(jsons[0]) if jsons else None
        if not summary:
            details += ["No result: the run failed. Last lines of its log:", "", "```"]
            try:
                details += open(os.path.join(d, "stderr.log")).read().strip().splitlines()[-8:]
            except OSError:
                pass
            details += ["```", ""]
            table.append(f"| {row} | failed | – | – | – | – | – | – | – | {store} |")
            continue
        what, rip, ceiling, frac, cpu, peer, peer_cpu, ratio = headline(row, summary, c)
        if frac is not None:
            gap_rows.append((row, frac, what))
        table.append(f"| {row} | {what} | {fmt(rip, 2)} | {fmt(ceiling, 2)} | {fmt(frac and frac * 100, 1)}{'%' if frac else ''} "
                     f"| {fmt(cpu, 2)} | {fmt(peer, 2)} | {fmt(peer_cpu, 2)} | {fmt_ratio(ratio)} | {store} |")
        md_path = next(iter(glob.glob(os.path.join(d, "*.md"))), None)
        md = open(md_path).read() if md_path else ""
        for svg in glob.glob(os.path.join(d, "*.svg")):
            name = f"{stamp}-{row}-{os.path.basename(svg)}"
            shutil.copy(svg, os.path.join(plots, name))
            rel = os.path.relpath(os.path.join(plots, name), os.path.dirname(os.path.abspath(bench_md)))
            md = md.replace(f"]({os.path.basename(svg)})", f"]({rel})")
        details += [md.strip(), ""]
    lines += table + ["", "Ceiling for produce: min(loopback, disk write); consume: loopback (2c: disk read); "
                      "latency rows compare e2e p99 with the fdatasync p99 (flush.policy=always); "
                      "for latency rows a Riptide / Tansu ratio below 1 means Riptide is faster. "
                      "A row marked failed has no complete comparison; its section below says why.", ""]
    lines += targets_section(out, c)
    gaps = sorted(gap_rows, key=lambda g: g[1])
    if gaps:
        lines += ["### Biggest gaps to the ceilings (Riptide / ceiling, lowest first)", ""]
        lines += [f"- row {r}: {what} at {frac * 100:.1f}% of the ceiling" for r, frac, what in gaps[:5]]
        lines.append("")
    fg = os.path.join(out, "flamegraphs.txt")
    if os.path.exists(fg):
        lines += ["### Flamegraphs (Riptide, this run)", ""]
        for svg in open(fg).read().split():
            rel = os.path.relpath(os.path.abspath(svg), os.path.dirname(os.path.abspath(bench_md)))
            lines.append(f"- [{os.path.basename(svg)}]({rel}); hottest leaf functions:")
            top = svg[:-4] + ".top.txt"
            if os.path.exists(top):
                lines += ["", "  ```"] + ["  " + l for l in open(top).read().splitlines()[:8]] + ["  ```", ""]
        lines.append("")
    lines += details + [END]
    section = "\n".join(lines) + "\n"
    if os.path.exists(bench_md):
        text = open(bench_md).read()
    else:
        text = "# Benchmarks\n\nProduced by `scripts/bench.sh` (see perf/README.md).\n\n"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + section.rstrip("\n") + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with open(bench_md, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
