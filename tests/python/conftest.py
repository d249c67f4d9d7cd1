"""Fixtures: the logpipe binary, brokers on 127.0.0.1:0 with temp log dirs, the console CLI,
consumer-group member subprocesses, indexer processes and the Elasticsearch stand-in. Every process
a test starts is killed at teardown."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from es_standin import EsStandin
from indexer_support import IndexerProcess
from support import REPO, Broker, Cli, child_cmd, close_and_report
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

    close_and_report(brokers, request, "broker", tail=60)


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


@pytest.fixture
def es_standin(request):
    """An Elasticsearch stand-in (es_standin.py) on 127.0.0.1:0; its counters print if the test fails."""
    es = EsStandin()
    yield es
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    if failed:
        print(f"--- es stand-in {es.url}: {es.stats()}")
        for r in es.request_log()[-15:]:
            print(f"    {r}")
    es.close()


@pytest.fixture
def indexer_factory(logpipe_bin, tmp_path, request):
    """`indexer_factory(config_text, start=True, mode="indexer")` writes the pipeline file and starts
    `logpipe indexer -c FILE` (or `logpipe run FILE`). At teardown every indexer is killed; one that
    exited by itself or panicked fails the test."""
    made: list[IndexerProcess] = []

    def make(config_text: str, start: bool = True, mode: str = "indexer") -> IndexerProcess:
        p = IndexerProcess(logpipe_bin, tmp_path / f"indexer{len(made)}", config_text, child_cmd, mode=mode)
        made.append(p)
        return p.start() if start else p

    yield make

    close_and_report(made, request, "indexer")


@pytest.fixture
def appliance_factory(logpipe_bin, tmp_path, request):
    """`appliance_factory(pipeline_text, name="appliance")` writes the pipeline file into its own
    directory and returns an ApplianceProcess (`logpipe run FILE`), not started. At teardown every
    appliance is killed; one that exited by itself or panicked fails the test, and the stderr tail of
    each prints if the test failed."""
    from appliance_support import ApplianceProcess

    made: list[ApplianceProcess] = []

    def make(pipeline_text: str, name: str = "appliance") -> ApplianceProcess:
        a = ApplianceProcess(logpipe_bin, tmp_path / name, pipeline_text, child_cmd)
        made.append(a)
        return a

    yield make

    close_and_report(made, request, "appliance")


@pytest.fixture
def nginx_gen(logpipe_bin):
    """`nginx_gen(log_dir, summary_path, *gen_args)` starts `logpipe gen nginx` in the background (see
    appliance_support.Generator); every generator still running is killed at teardown."""
    from appliance_support import Generator

    made: list[Generator] = []

    def make(log_dir, summary, *args: str) -> Generator:
        g = Generator(logpipe_bin, child_cmd, log_dir, summary, *args)
        made.append(g)
        return g

    yield make
    for g in made:
        g.close()


@pytest.fixture(scope="session")
def opensearch_classes(tmp_path_factory) -> Path:
    """tests/java/OpenSearchNode.java compiled once per session."""
    from opensearch import compile_main

    return compile_main(tmp_path_factory.mktemp("opensearch-classes"))


@pytest.fixture(scope="module")
def opensearch(opensearch_classes, tmp_path_factory):
    """A real OpenSearch 2.19 node (opensearch.py), started once per test module on 127.0.0.1 with a temp
    path; tests use their own index names. Its log tail prints if it died."""
    from opensearch import OpenSearch

    node = OpenSearch(opensearch_classes, tmp_path_factory.mktemp("opensearch"))
    node.start()
    yield node
    rc = node.died_unexpectedly()
    node.close()
    if rc is not None:
        print(node.stderr_tail(80))
        pytest.fail(f"OpenSearch exited by itself rc={rc}", pytrace=False)
