"""The web console (`/` on the admin endpoint) in a real browser: Debian's chromium driven by
playwright-core (tests/browser/console.test.mjs), against running `logpipe run` appliances fed by
`logpipe gen nginx`.

This file sets the scene and checks what the browser cannot see:
- appliance A (file output): drained after the generator; the browser checks every page, the pipeline
  numbers against /status, the message browser by timestamp (the expected offset comes from
  kafka-python's offsets_for_times, an independent client), the guarded group reset (an idle group made
  with `logpipe groups reset-offsets`, the indexer's own group for the refusal) and a search whose count
  is the generator's count for one request path, counted here from the generated access.log;
- appliance B (Elasticsearch stand-in that refuses one document once, as a mapping error): the browser
  re-sends that dead letter from the page; this file then finds it indexed.

Screenshots of every page go to target/screenshots/web-console/ (printed at the end)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from appliance_support import ApplianceProcess, Generator, drained, free_port, nginx_pipeline, path_counts
from support import HOST, REPO, child_cmd, wait_until

BROWSER_DIR = REPO / "tests" / "browser"
SCREENSHOTS = REPO / "target" / "screenshots" / "web-console"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
GROUP = "logpipe-indexer"
IDLE_GROUP = "web-console-idle"

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and (BROWSER_DIR / "node_modules" / "playwright-core").is_dir()),
    reason="needs /usr/bin/chromium and tests/browser/node_modules (scripts/test.sh installs both)")


def file_pipeline(*, port: int, data_dir: Path, logs_dir: Path) -> str:
    """The appliance test pipeline with the file output (the embedded default) instead of Elasticsearch."""
    text = nginx_pipeline(port=port, data_dir=data_dir, logs_dir=logs_dir, es_url="http://unused")
    head = text.split("[indexer.output.elasticsearch]", 1)[0]
    return head + f"[indexer.output.file]\npath = {json.dumps(str(data_dir / 'indices'))}\n"


def start(logpipe_bin, workdir: Path, text: str, stack: list) -> ApplianceProcess:
    appliance = ApplianceProcess(logpipe_bin, workdir, text, child_cmd)
    stack.append(appliance)
    return appliance.start()


def record_at_time(bootstrap: str, topic: str, partition: int, offset: int) -> dict:
    """The time of the record at `offset`; by kafka-python's offsets_for_times, the first offset at or
    after that time (an earlier record may share the millisecond), and the value of that first record."""
    from kafka import KafkaConsumer, TopicPartition

    tp = TopicPartition(topic, partition)

    def consumer_at(at: int) -> KafkaConsumer:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                 consumer_timeout_ms=30_000)
        consumer.assign([tp])
        consumer.seek(tp, at)
        return consumer

    def read_one(consumer: KafkaConsumer, at: int):
        record = next(iter(consumer), None)
        assert record is not None, f"kafka-python read nothing at {topic}/{partition} offset {at} in 30 s"
        return record

    # Each read on a consumer of its own: kafka-python, sought back to offset 0 after reading further on,
    # sometimes fetched nothing until its timeout.
    consumer = consumer_at(offset)
    try:
        record = read_one(consumer, offset)
        found = consumer.offsets_for_times({tp: record.timestamp})[tp]
    finally:
        consumer.close()
    consumer = consumer_at(found.offset)
    try:
        first = read_one(consumer, found.offset)
    finally:
        consumer.close()
    return {"timestamp": record.timestamp, "first_offset": found.offset, "value": first.value.decode()}


def test_web_console_in_chromium(logpipe_bin, tmp_path, es_standin):
    stack: list = []
    try:
        _run(logpipe_bin, tmp_path, es_standin, stack)
    finally:
        for p in reversed(stack):
            p.close()


def _run(logpipe_bin, tmp_path, es, stack):
    # --- appliance A: file output, fed by the generator, drained
    logs_a = tmp_path / "logs-a"
    a = start(logpipe_bin, tmp_path / "a", file_pipeline(port=free_port(), data_dir=tmp_path / "a" / "data",
                                                         logs_dir=logs_a), stack)
    gen = Generator(logpipe_bin, child_cmd, logs_a, tmp_path / "summary-a.json", "--lines", "3000", "--rate", "0",
                    "--seed", "14")
    summary = gen.wait(120)
    wait_until(lambda: drained(a.status(), GROUP) and sum(f["lines_read"] for f in a.status()["files"]) == summary["total"],
               120, lambda: f"appliance A drained ({a.status()})", procs=[a])
    # The ledger holds: every line read is acknowledged and indexed.
    s = a.status()
    assert sum(i["indexed"] for i in s["indexer"]["indices"]) == summary["total"], s

    # An idle group (no members) behind on every partition, made by the console tool.
    r = subprocess.run(child_cmd([str(logpipe_bin), "groups", "reset-offsets", IDLE_GROUP, "--topic", "nginx",
                                  "--to-earliest", "--execute", "--bootstrap-server", a.broker_address]),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    wait_until(lambda: any(g["group_id"] == IDLE_GROUP for g in a.status()["groups"]), 30, "the idle group in /status")

    # A record in the middle of the fullest partition (the agent's sticky partitioner can leave a partition
    # with few records or none after a burst), and the offset a seek to its time must land on. The filter's
    # needle is that first record's `event.id`, which no other record holds (a burst can give the whole
    # partition one timestamp, so the first record may be an error.log line, with no `rid=`).
    fullest = max(next(t for t in s["topics"] if t["name"] == "nginx")["partitions"],
                  key=lambda p: p["log_end_offset"] - p["log_start_offset"])
    assert fullest["log_end_offset"] - fullest["log_start_offset"] > 20, fullest
    offset = (fullest["log_start_offset"] + fullest["log_end_offset"]) // 2
    rec = record_at_time(a.broker_address, "nginx", fullest["partition"], offset)
    needle = re.search(r"[0-9a-f]{32}", json.loads(rec["value"])["event"]["id"])
    assert needle, rec
    path, count = path_counts(logs_a).most_common(3)[-1]

    # --- appliance B: Elasticsearch stand-in refusing the first document once
    rejected: dict = {}
    lock = threading.Lock()

    def refuse_once(source: dict) -> bool:
        m = re.search(r"rid=(\d+) ", str(source.get("message", "")))
        with lock:
            if m and not rejected:
                rejected["rid"] = m.group(1)
                return True
        return False

    es.reject_items(refuse_once, reason="failed to parse field [http.response.bytes] of type [long]")
    logs_b = tmp_path / "logs-b"
    b = start(logpipe_bin, tmp_path / "b",
              nginx_pipeline(port=free_port(), data_dir=tmp_path / "b" / "data", logs_dir=logs_b, es_url=es.url), stack)
    gen_b = Generator(logpipe_bin, child_cmd, logs_b, tmp_path / "summary-b.json", "--lines", "50", "--rate", "0",
                      "--error-ratio", "0", "--seed", "7")
    gen_b.wait(60)
    wait_until(lambda: sum(i["dead_lettered"] for i in (b.status()["indexer"] or {}).get("indices", [])) == 1
               and drained(b.status(), GROUP), 120, lambda: f"one dead letter on appliance B ({b.status()})", procs=[b])
    assert es.count() == 49

    # --- the browser
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    expect = {
        "console": f"http://{a.admin_address}",
        "screenshots": str(SCREENSHOTS),
        "topic": "nginx",
        "record": {"partition": fullest["partition"], "offset": rec["first_offset"], "needle": needle.group(0),
                   "time_iso": _iso(rec["timestamp"])},
        "search": {"path": path, "count": count},
        "idle_group": IDLE_GROUP,
        "active_group": GROUP,
        "dead_letters": {"console": f"http://{b.admin_address}", "rid": rejected["rid"]},
    }
    expectations = tmp_path / "expect.json"
    expectations.write_text(json.dumps(expect))
    run = subprocess.run(["node", str(BROWSER_DIR / "console.test.mjs"), str(expectations)], cwd=BROWSER_DIR,
                         capture_output=True, text=True, timeout=600, env={**os.environ, "CHROMIUM": CHROMIUM})
    print(run.stdout)
    assert run.returncode == 0, f"browser checks failed:\n{run.stdout}\n{run.stderr}"

    # The re-sent dead letter is indexed.
    wait_until(lambda: any(f"rid={rejected['rid']} " in str(src.get("message", "")) for _, _, src in es.sources()),
               60, f"the re-sent document rid={rejected['rid']} indexed", procs=[b])
    assert es.count() == 50
    print(f"screenshots in {SCREENSHOTS}")


def _iso(ms: int) -> str:
    from datetime import datetime, timezone
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
