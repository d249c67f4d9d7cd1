"""Helpers for the indexer tests (test_indexer.py): the `logpipe indexer` process, its `[indexer]`
config, agent-envelope events produced fast with confluent-kafka, and the group's committed offsets.

The indexer's contract these helpers assume (see test_indexer.py's docstring):
- `logpipe indexer -c FILE` runs the `[indexer]` section alone (`logpipe run FILE` runs every section);
  logs go to stderr; SIGTERM flushes, commits and exits 0.
- Events are agent envelopes; the document `_id` is `event.id`, else `<topic>-<partition>-<offset>`.

Event ids here are `<run><seq:016x>`: 32 hex digits like the agent's, unique per test run (`run` is 16
random hex digits), so the expected set of ids is known exactly.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

from confluent_kafka import Consumer, Producer, TopicPartition

from agent_support import toml_value as _toml_scalar
from support import ManagedProcess, consumer_conf, wait_until

DAY = "2026-11-21"
TIMESTAMP = f"{DAY}T10:00:00.000Z"

# A restarted indexer (new member id) waits for the killed one's session to expire before the group
# rebalances; librdkafka's default is 45 s. The broker's minimum is 6 s.
FAST_GROUP = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"}


# --------------------------------------------------------------------------------------------
# Config

BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_value(v) -> str:
    """agent_support's TOML values, with inline-table keys quoted when they are not bare
    (`{ "session.timeout.ms" = "6000" }`: unquoted, the dots would make nested tables)."""
    if isinstance(v, dict):
        def key(k: str) -> str:
            return k if BARE_KEY.match(k) else json.dumps(k)
        return "{ " + ", ".join(f"{key(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return _toml_scalar(v)


def es_output(url: str, **overrides) -> dict:
    """`[indexer.output.elasticsearch]` keys as the tests use them (fast batches and retries)."""
    out = {
        "hosts": [url],
        "batch_max_events": 5000,
        "batch_max_bytes": 5 << 20,
        "batch_timeout": "200ms",
        "concurrency": 2,
        "compression": False,
        "retry_initial_backoff": "50ms",
        "retry_max_backoff": "1s",
        "manage_template": True,
        "dead_letter_topic_suffix": "-dlq",
    }
    out.update(overrides)
    return out


def indexer_toml(brokers: Sequence[str], topics: Sequence[str], group_id: str, *,
                 auto_offset_reset: str = "earliest", codec: str = "json",
                 filters: Sequence[dict] = (), routes: Sequence[dict] = (),
                 default_index: Optional[str] = None, drop_unmatched: Optional[bool] = None,
                 elasticsearch: Optional[dict] = None, file_path: Optional[Path] = None,
                 stdout: Optional[bool] = None, librdkafka: Optional[dict] = None,
                 extra_sections: str = "") -> str:
    """An `[indexer]` pipeline file. `filters` and `routes` are `[[indexer.filters]]` /
    `[[indexer.routes]]` tables (dicts; `when` as a dict becomes an inline table). `elasticsearch`
    is the output table (see `es_output`), `file_path` the `[indexer.output.file]` directory.
    `librdkafka` defaults to FAST_GROUP; pass {} for librdkafka's own defaults. `extra_sections` is
    appended verbatim (e.g. a `[broker]` section for `logpipe run`)."""
    lines = ["[indexer]"]
    if default_index is not None:
        lines.append(f"default_index = {toml_value(default_index)}")
    if drop_unmatched is not None:
        lines.append(f"drop_unmatched = {toml_value(drop_unmatched)}")
    lines += ["", "[indexer.input]",
              f"brokers = {toml_value(list(brokers))}",
              f"topics = {toml_value(list(topics))}",
              f"group_id = {toml_value(group_id)}",
              f"auto_offset_reset = {toml_value(auto_offset_reset)}",
              f"codec = {toml_value(codec)}"]
    rdk = FAST_GROUP if librdkafka is None else librdkafka
    if rdk:
        lines.append(f"librdkafka = {toml_value(dict(rdk))}")
    for f in filters:
        lines += ["", "[[indexer.filters]]"] + [f"{k} = {toml_value(v)}" for k, v in f.items()]
    for r in routes:
        lines += ["", "[[indexer.routes]]"] + [f"{k} = {toml_value(v)}" for k, v in r.items()]
    if stdout is not None:
        lines += ["", "[indexer.output]", f"stdout = {toml_value(stdout)}"]
    if elasticsearch is not None:
        lines += ["", "[indexer.output.elasticsearch]"] + [f"{k} = {toml_value(v)}" for k, v in elasticsearch.items()]
    if file_path is not None:
        lines += ["", "[indexer.output.file]", f"path = {toml_value(Path(file_path))}"]
    text = "\n".join(lines) + "\n"
    if extra_sections:
        text += "\n" + extra_sections.strip() + "\n"
    return text


NGINX_FILTERS = [{"type": "nginx_access", "when": {"tag": "access"}},
                 {"type": "nginx_error", "when": {"tag": "error"}}]
NGINX_ROUTES = [{"when": {"tag": "access"}, "index": "nginx_access-%{+YYYY.MM.dd}"},
                {"when": {"tag": "error"}, "index": "nginx_error-%{+YYYY.MM.dd}"}]


# --------------------------------------------------------------------------------------------
# The indexer process


class IndexerProcess(ManagedProcess):
    """One `logpipe indexer -c FILE` (or `logpipe run FILE` with mode="run") process. Stderr (its
    log) and stdout are appended to files in `workdir`; `start()` may be called again after
    `kill9()` / `stop()` to restart it on the same config."""

    NAME = "indexer"

    def __init__(self, binary: Path, workdir: Path, config_text: str, child_cmd: Callable,
                 mode: str = "indexer", env: Optional[dict] = None):
        assert mode in ("indexer", "run")
        self.env = dict(env or {})  # extra environment, e.g. libfaketime's LD_PRELOAD
        self.binary = Path(binary)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / "pipeline.toml"
        self.config_path.write_text(config_text)
        self.stderr_path = self.workdir / "indexer.stderr.log"
        self.stdout_path = self.workdir / "indexer.stdout.log"
        self.child_cmd = child_cmd
        self.mode = mode
        self.proc: Optional[subprocess.Popen] = None
        self.starts = 0
        self._expect_exit = False
        self._stderr_start = 0

    def argv(self) -> list[str]:
        if self.mode == "run":
            return [str(self.binary), "run", str(self.config_path)]
        return [str(self.binary), "indexer", "-c", str(self.config_path)]

    def start(self, wait_for: Optional[str] = None, timeout: float = 30.0) -> "IndexerProcess":
        """Spawn. With `wait_for`, also wait until that text appears in this run's stderr."""
        assert not self.alive(), "indexer already running"
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        env.setdefault("NO_COLOR", "1")
        env.update(self.env)
        with open(self.stderr_path, "ab") as err, open(self.stdout_path, "ab") as out:
            err.write(f"\n----- indexer start #{self.starts + 1} -----\n".encode())
            err.flush()
            self._stderr_start = err.tell()
            self.proc = subprocess.Popen(self.child_cmd(self.argv()), stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=err, env=env, cwd=self.workdir)
        self.starts += 1
        self._expect_exit = False
        if wait_for is not None:
            wait_until(lambda: wait_for in self.run_stderr(), timeout, f"the indexer to log {wait_for!r}", procs=[self])
        return self

    def run_stderr(self) -> str:
        """Stderr of the current (or last) run only."""
        try:
            with open(self.stderr_path, "rb") as f:
                f.seek(self._stderr_start)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def stdout_text(self) -> str:
        try:
            return self.stdout_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


# --------------------------------------------------------------------------------------------
# Events


def new_run() -> str:
    """16 hex digits that make this run's event ids unique."""
    return uuid.uuid4().hex[:16]


def event_id(run: str, seq: int) -> str:
    return f"{run}{seq:016x}"


def envelope(run: str, seq: int, *, tag: str = "test", message: Optional[str] = None,
             timestamp: str = TIMESTAMP, path: str = "/var/log/app/app.log", host: str = "h",
             with_id: bool = True) -> bytes:
    """One agent envelope, as `logpipe agent` writes it, formatted without json.dumps of the whole
    object so hundreds of thousands are cheap."""
    if message is None:
        message = f"{seq:09d} GET /api/v1/items/{seq % 9973} status=200 bytes={seq % 65536}"
    ident = f',"event":{{"id":"{event_id(run, seq)}"}}' if with_id else ""
    return (f'{{"@timestamp":"{timestamp}","message":{json.dumps(message)},"tags":["{tag}"],"fields":{{}},'
            f'"log":{{"file":{{"path":{json.dumps(path)}}},"offset":{seq * 100}}},"host":{{"name":"{host}"}},'
            f'"input":{{"type":"filestream"}},"agent":{{"type":"logpipe","version":"test"}}{ident}}}').encode()


def fast_producer_conf(bootstrap: str, **extra) -> dict:
    conf = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 50,
        "batch.num.messages": 10000,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 1_000_000,
        "log_level": 3,
    }
    conf.update(extra)
    return conf


def produce_values(bootstrap: str, topic: str, values: Iterable[bytes], partitions: Optional[int] = None,
                   *, keys: Optional[Iterable[Optional[bytes]]] = None, track: bool = False,
                   timeout: float = 300, **conf) -> list[tuple[int, int, int]]:
    """Produce `values` (to partition i % `partitions` when given, else the default partitioner) and
    wait for every delivery. Fails on any delivery error. With `track`, returns (partition, offset,
    timestamp in ms) per value in input order; else []."""
    p = Producer(fast_producer_conf(bootstrap, **conf))
    errors: list[str] = []
    positions: list[Optional[tuple[int, int, int]]] = []
    delivered = 0

    def on_delivery(i, err, msg):
        nonlocal delivered
        if err is not None:
            errors.append(f"{err} (partition {msg.partition()})")
            return
        delivered += 1
        if i is not None:
            positions[i] = (msg.partition(), msg.offset(), msg.timestamp()[1])

    plain = functools.partial(on_delivery, None)
    key_iter = iter(keys) if keys is not None else None
    deadline = time.monotonic() + timeout
    sent = 0
    for i, v in enumerate(values):
        kwargs = {"value": v, "on_delivery": plain}
        if track:
            positions.append(None)
            kwargs["on_delivery"] = functools.partial(on_delivery, i)
        if partitions is not None:
            kwargs["partition"] = i % partitions
        if key_iter is not None:
            kwargs["key"] = next(key_iter)
        while True:
            try:
                p.produce(topic, **kwargs)
                break
            except BufferError:
                p.poll(0.05)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"producer queue stayed full; {delivered} delivered")
        sent += 1
        if sent % 5000 == 0:
            p.poll(0)
    remaining = p.flush(max(1.0, deadline - time.monotonic()))
    assert not errors, f"{len(errors)} delivery errors, first: {errors[:5]}"
    assert remaining == 0 and delivered == sent, f"{sent} sent, {delivered} delivered, {remaining} queued"
    return [pos for pos in positions if pos is not None] if track else []


# --------------------------------------------------------------------------------------------
# Offsets


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: Iterable[int]) -> dict[int, int]:
    """OffsetFetch for `group` from a consumer that does not join it. No commit: OFFSET_INVALID (-1001)."""
    c = Consumer(consumer_conf(bootstrap, group=group, log_level=0))
    try:
        tps = c.committed([TopicPartition(topic, p) for p in partitions], timeout=30)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()


def committed_total(bootstrap: str, group: str, topic: str, partitions: Iterable[int]) -> int:
    """Records below the committed offsets, summed over partitions (logs that start at 0)."""
    return sum(max(o, 0) for o in committed_offsets(bootstrap, group, topic, partitions).values())


def end_offsets(bootstrap: str, topic: str, partitions: Iterable[int]) -> dict[int, int]:
    c = Consumer(consumer_conf(bootstrap, log_level=0))
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
                for p in partitions}
    finally:
        c.close()


def wait_committed_to_end(procs: Sequence[ManagedProcess], bootstrap: str, group: str, topic: str,
                          partitions: Sequence[int], timeout: float = 120) -> dict[int, int]:
    """Until the group's committed offsets equal the log end offsets of every partition."""
    end = end_offsets(bootstrap, topic, partitions)
    last: dict = {}

    def done():
        last["c"] = committed_offsets(bootstrap, group, topic, partitions)
        return last["c"] == end

    wait_until(done, timeout,
               lambda: f"group {group} to commit {end} on {topic} (last seen {last.get('c')})",
               interval=0.25, procs=procs)
    return end


def commit_offsets(bootstrap: str, group: str, topic: str, offsets: dict[int, int], timeout: float = 60) -> None:
    """Commit `offsets` for a group as an application that stopped would have left them. The group
    must be empty: a member that exited without leaving keeps it busy until its session expires
    (the broker answers UNKNOWN_MEMBER_ID meanwhile, as Kafka does), so this polls."""
    def attempt() -> bool:
        c = Consumer(consumer_conf(bootstrap, group=group, log_level=0))
        try:
            c.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
            return True
        finally:
            c.close()

    wait_until(attempt, timeout, f"an empty group {group} that takes a commit", interval=0.5)


# --------------------------------------------------------------------------------------------
# File output


def ndjson_dir_size(d: Path) -> int:
    return sum(p.stat().st_size for p in Path(d).glob("*.ndjson") if p.is_file())


def read_ndjson_dir(d: Path) -> tuple[dict[str, list[dict]], list[str]]:
    """index name -> documents, from DIR/<index>.ndjson; and the lines that are not JSON objects
    (each as `file:line: text`)."""
    out: dict[str, list[dict]] = {}
    bad: list[str] = []
    for p in sorted(Path(d).glob("*.ndjson")):
        docs = out.setdefault(p.name[: -len(".ndjson")], [])
        with open(p, "rb") as f:
            for n, line in enumerate(f, 1):
                try:
                    doc = json.loads(line)
                    assert isinstance(doc, dict)
                    docs.append(doc)
                except (ValueError, AssertionError):
                    bad.append(f"{p.name}:{n}: {line[:120]!r}")
        if not docs:
            out.pop(p.name[: -len(".ndjson")])
    return out, bad


def id_counts(docs: Iterable[dict]) -> Counter:
    return Counter((d.get("event") or {}).get("id") for d in docs)


def get(doc: dict, dotted: str, default=None):
    """`doc["a"]["b"]` for "a.b" (documents are nested objects), or `default`."""
    cur = doc
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    return cur
