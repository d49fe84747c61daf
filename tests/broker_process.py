"""A Riptide broker as a child process: start on a free port, wait until it answers,
restart on the same data directory, stop cleanly or kill -9.

The tests drive the real release binary (`RIPTIDE_BIN`, default target/release/riptide)
with third-party clients, so nothing here knows the broker's internals: readiness is an
ApiVersions round trip on the listener.
"""

import os
import signal
import sys
import socket
import subprocess
import time
from pathlib import Path

import kwire

REPO_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


def riptide_bin() -> Path:
    return Path(os.environ.get("RIPTIDE_BIN", REPO_ROOT / "target" / "release" / "riptide"))


def free_port() -> int:
    """A port no socket is bound to right now. The broker binds with SO_REUSEPORT, so a
    port shared with another broker would silently split connections: ask the kernel for
    an ephemeral one instead of guessing."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """One broker process on 127.0.0.1:`port` with its data in `data_dir`."""

    def __init__(self, data_dir: Path, log_path: Path, extra_args=(), port=None, cores=2):
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.extra_args = list(extra_args)
        self.port = port or free_port()
        self.cores = cores
        self.proc = None
        self.starts = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self):
        return [
            str(riptide_bin()),
            "broker",
            "--data-dir",
            str(self.data_dir),
            "--listeners",
            f"PLAINTEXT://{self.bootstrap}",
            "--cores",
            str(self.cores),
            "--pin",
            "false",
            *self.extra_args,
        ]

    def start(self, retry_hung_start=True):
        assert self.proc is None, "broker already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        log.write(f"\n===== start #{self.starts + 1}: {' '.join(self.command())}\n".encode())
        log.flush()
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env.setdefault("RUST_BACKTRACE", "1")
        env.setdefault("NO_COLOR", "1")
        self.proc = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.data_dir.parent
        )
        log.close()
        self.starts += 1
        try:
            self.wait_ready()
        except TimeoutError as e:
            if not retry_hung_start:
                raise
            # KNOWN BUG (see README, "How it differs from Kafka"): about one start in a few
            # hundred hangs before any shard is up — in the glommio channel-mesh join or the
            # O_DIRECT probe; seen as one shard asleep in io_cqring_wait and the other
            # spinning. Every such hang is reported on stderr with
            # the thread states, then the broker is killed and started once more; a second
            # hang fails the test.
            print(f"WARNING: broker start-up hung, retrying once: {e}", file=sys.stderr)
            self.kill9()
            return self.start(retry_hung_start=False)
        return self

    def wait_ready(self, timeout_s=START_TIMEOUT_S):
        deadline = time.monotonic() + timeout_s
        last_error = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited with {self.proc.returncode} during start-up:\n{self.log_tail()}")
            try:
                kwire.api_versions(self.port, timeout_s=2.0)
                return
            except OSError as e:
                last_error = e
                time.sleep(0.05)
        raise TimeoutError(
            f"broker not ready after {timeout_s}s ({last_error}):\n{self.log_tail()}\n"
            f"threads of pid {self.proc.pid}:\n{self.thread_states()}"
        )

    def thread_states(self) -> str:
        """Name, state, kernel wait channel and current syscall of every thread: enough to
        tell a hung start-up (both shards parked in io_uring_enter) from a busy one."""
        lines = []
        for task in sorted(Path(f"/proc/{self.proc.pid}/task").glob("*")):
            def read(name):
                try:
                    return (task / name).read_text().strip()
                except OSError as e:
                    return f"?({e.strerror})"
            stat = read("stat")
            state = stat.rsplit(")", 1)[-1].split()[0] if ")" in stat else "?"
            lines.append(
                f"  tid {task.name} {read('comm')!r} state={state} "
                f"wchan={read('wchan')} syscall={read('syscall').split(' ')[0]}"
            )
        return "\n".join(lines) or "  (no threads readable)"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s=STOP_TIMEOUT_S) -> int:
        """SIGTERM (clean shutdown), then SIGKILL if it does not exit in time. Returns the
        exit code; -9 means it had to be killed."""
        if self.proc is None:
            return 0
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def kill9(self):
        """kill -9: no flush, no shutdown marker."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        proc.kill()
        proc.wait()

    def restart(self, kill=False):
        """Stop (or kill -9) and start again on the same port and data directory."""
        if kill:
            self.kill9()
        else:
            self.stop()
        # The old sockets may linger briefly; the start loop retries until it answers.
        return self.start()

    def rss_kib(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def log_tail(self, lines=60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
