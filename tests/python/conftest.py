"""Fixtures: the logpipe binary, brokers on 127.0.0.1:0 with temp log dirs, the console CLI, and
consumer-group member subprocesses. Every process a test starts is killed at teardown."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support import REPO, Broker, Cli
from members import MemberPool


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Lets fixtures see whether the test failed, to print the broker's log only then.
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(scope="session")
def logpipe_bin() -> Path:
    path = Path(os.environ.get("LOGPIPE_BIN") or REPO / "target" / "debug" / "logpipe")
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.exit(f"LOGPIPE_BIN={path} is not an executable; run `cargo build --bin logpipe` "
                    "or scripts/test.sh", returncode=2)
    return path


@pytest.fixture
def broker_factory(logpipe_bin, tmp_path, request):
    """`broker_factory(**broker_settings)` starts another broker; settings are [broker] keys."""
    brokers: list[Broker] = []

    def make(**settings) -> Broker:
        workdir = tmp_path / f"broker{len(brokers)}"
        workdir.mkdir()
        b = Broker(logpipe_bin, workdir, settings)
        brokers.append(b)
        return b.start()

    yield make

    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    problems = []
    for b in brokers:
        rc = b.died_unexpectedly()
        b.close()
        if rc is not None:
            problems.append(f"broker {b.workdir.name} exited by itself with rc={rc}\n{b.stderr_tail()}")
        elif "panicked at" in b.stderr_text():
            problems.append(f"broker {b.workdir.name} panicked\n{b.stderr_tail()}")
        elif failed:
            print(b.stderr_tail())
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def broker(broker_factory) -> Broker:
    return broker_factory()


@pytest.fixture
def cli(logpipe_bin, broker) -> Cli:
    return Cli(logpipe_bin, broker.bootstrap)


@pytest.fixture
def members(tmp_path, request):
    """Consumer-group member subprocesses (see members.py); all are killed at teardown."""
    pool = MemberPool(tmp_path / "members")
    yield pool
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    pool.close(print_logs=failed)
