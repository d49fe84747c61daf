"""Fixtures: a fresh broker process per test (free port, temp data dir), a factory for
brokers with extra flags, and unique topic names. On a failure the broker's log tail is
attached to the report."""

import itertools
import shutil
import uuid

import pytest

from broker_process import Broker, riptide_bin


def pytest_sessionstart(session):
    b = riptide_bin()
    if not b.exists():
        raise pytest.UsageError(f"broker binary {b} not found: run `cargo build --release` (or scripts/test.sh)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and rep.when in ("setup", "call"):
        item._riptide_failed = True
        for b in getattr(item, "_riptide_brokers", []):
            rep.sections.append((f"broker log ({b.bootstrap})", b.log_tail(80)))


@pytest.fixture
def broker_factory(request, tmp_path):
    """start(extra_args=[...], cores=2) -> a running Broker; all are killed after the test."""
    brokers = []
    request.node._riptide_brokers = brokers
    counter = itertools.count()

    def start(extra_args=(), cores=2):
        n = next(counter)
        b = Broker(tmp_path / f"data{n}", tmp_path / f"broker{n}.log", extra_args=extra_args, cores=cores)
        brokers.append(b)
        return b.start()

    yield start
    for b in brokers:
        b.kill9() if b.alive() else b.stop()
    # A passing test's data is not needed; keep a failing one's for inspection.
    if not getattr(request.node, "_riptide_failed", False):
        shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture
def broker(broker_factory):
    """A fresh single-node broker on a free port with an empty data directory."""
    return broker_factory()


@pytest.fixture
def topic_name(request):
    """A topic name unique to this test (auto-creation and admin tests share brokers only
    within a test, but unique names keep logs readable)."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name)[:40].strip("-")
    return f"{base}-{uuid.uuid4().hex[:6]}"
