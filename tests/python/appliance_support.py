"""Helpers for the appliance tests (test_appliance.py): the whole `logpipe run PIPELINE` process
(broker + agent + indexer + admin endpoint in one), its pipeline file, the `logpipe gen nginx`
generator, and reading the Elasticsearch stand-in back line by line.

The appliance's contract these helpers assume:
- `logpipe run FILE` prints `listening on HOST:PORT` (the broker) and then `admin on http://HOST:PORT`
  on stdout; logs go to stderr. SIGTERM stops it cleanly (exit 0); a second signal exits at once.
- The broker's port is fixed in the file (the agent and the indexer must name it), so a test picks a
  free port once and keeps it across restarts; the admin endpoint uses port 0 and is read from stdout.
- Every generated line carries the generator's sequence number: `rid=<seq>` in an access line's URL,
  `*<seq>` (the connection number, `nginx.error.connection_id` once parsed) in an error line. With
  `--start` and `--step-ms`, line `seq` is stamped `start + (seq - 1) * step`, so the daily index each
  line belongs to is known exactly.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import threading
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Optional, Sequence

from support import HOST, ManagedProcess, wait_until

ADMIN_RE = re.compile(r"^admin on https?://(?P<addr>[^\s/]+)\s*$")
LISTENING_RE = re.compile(r"^listening on (?P<addr>\S+)\s*$")

# The sequence number of a stored document, from its raw JSON: the access line's `rid=` (in `message`
# and `url.original`), or the error line's connection number (parsed into `nginx.error.connection_id`;
# still `*<seq>` in `message` if the line did not parse).
ACCESS_SEQ_RE = re.compile(rb"[?&]rid=(\d+)[ \"]")
ERROR_SEQ_RE = re.compile(rb"\"connection_id\":(\d+)|#\d+: \*(\d+) ")

# A restarted indexer (static membership) gets its partitions back at once; a short session keeps a
# rebalance after a kill -9 short in case it does not.
INDEXER_LIBRDKAFKA = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"}


def record_fault_run(line: dict) -> None:
    """Prints one kill -9 run's outcome as a JSON line and, when LOGPIPE_KILL_MATRIX_RESULTS names a file,
    appends it there; scripts/fault_table.py makes the tables of scripts/test.sh and scripts/soak.sh from
    it (`kills` maps agent, broker, indexer or whole to a count)."""
    print(json.dumps(line))
    if results := os.environ.get("LOGPIPE_KILL_MATRIX_RESULTS"):
        with open(results, "a") as f:
            f.write(json.dumps(line) + "\n")


def free_port() -> int:
    """A port that was free a moment ago (bind to 0, read it, close). The broker binds it next."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_taken(port: int) -> bool:
    """True if nothing can listen on HOST:port now (the quickstart's fixed 9092)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return True
    return False


# --------------------------------------------------------------------------------------------
# The pipeline file


def _s(v) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(str(v))


def _inline(d: dict) -> str:
    return "{ " + ", ".join(f"{_s(k)} = {_s(v)}" for k, v in d.items()) + " }"


def nginx_pipeline(*, port: int, data_dir: Path, logs_dir: Path, es_url: str, group_id: str = "logpipe-indexer",
                   instance_id: str = "appliance-indexer", admin: bool = True,
                   es_extra: Optional[dict] = None) -> str:
    """The classic stack as pipelines/nginx.toml has it, on 127.0.0.1:`port`, with the indexer writing
    to the Elasticsearch stand-in at `es_url` and everything else under `data_dir`.

    Differences from the shipped file, each for a test's sake: `auto_offset_reset = "earliest"` (a line
    sent before the group first formed is indexed, not skipped), a static `group_instance_id` and a
    short session (restarts after kill -9), no rebalance delay, and a 1 s scan."""
    es = {"hosts": [es_url], **(es_extra or {})}
    es_lines = [f"{k} = {json.dumps(v)}" for k, v in es.items()]
    return f"""\
[broker]
listeners = [{_s(f"{HOST}:{port}")}]
log_dirs = {_s(data_dir / "broker")}
num_partitions = 3
group_initial_rebalance_delay_ms = 0

[admin]
{f'address = {_s(f"{HOST}:0")}' if admin else 'enabled = false'}

[agent]
registry = {_s(data_dir / "agent" / "registry.json")}
host_name = "appliance-test"

[agent.output]
brokers = [{_s(f"{HOST}:{port}")}]
topic = "nginx"
acks = "all"

[[agent.inputs]]
type = "file"
paths = [{_s(logs_dir / "access.log*")}]
tags = ["access"]
scan_frequency = "1s"

[[agent.inputs]]
type = "file"
paths = [{_s(logs_dir / "error.log*")}]
tags = ["error"]
scan_frequency = "1s"
multiline = {{ pattern = '^\\d{{4}}/\\d{{2}}/\\d{{2}} ', negate = true, match = "after" }}

[indexer.input]
brokers = [{_s(f"{HOST}:{port}")}]
topics = ["nginx"]
group_id = {_s(group_id)}
group_instance_id = {_s(instance_id)}
auto_offset_reset = "earliest"
codec = "json"
librdkafka = {_inline(INDEXER_LIBRDKAFKA)}

[[indexer.filters]]
type = "nginx_access"
when = {{ tag = "access" }}

[[indexer.filters]]
type = "nginx_error"
when = {{ tag = "error" }}

[[indexer.routes]]
when = {{ tag = "access" }}
index = "nginx_access-%{{+YYYY.MM.dd}}"

[[indexer.routes]]
when = {{ tag = "error" }}
index = "nginx_error-%{{+YYYY.MM.dd}}"

[indexer.output.elasticsearch]
{chr(10).join(es_lines)}
"""


# --------------------------------------------------------------------------------------------
# The appliance process


class ApplianceProcess(ManagedProcess):
    """One `logpipe run PIPELINE` process. `start()` may be called again after `kill9()` / `stop()`
    (same pipeline file, same data, same broker port). Stderr of every run is appended to
    `stderr_path`, with a marker line per start."""

    NAME = "appliance"
    START_TIMEOUT = 60.0

    def __init__(self, binary: Path, workdir: Path, pipeline_text: str, child_cmd: Callable):
        self.binary = Path(binary).resolve()  # the process runs in `workdir`
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pipeline_path = self.workdir / "pipeline.toml"
        self.pipeline_path.write_text(pipeline_text)
        self.stderr_path = self.workdir / "appliance.stderr.log"
        self.child_cmd = child_cmd
        self.proc: Optional[subprocess.Popen] = None
        self.starts = 0
        self._expect_exit = False
        self.broker_address: Optional[str] = None
        self.admin_address: Optional[str] = None
        self._stdout: list[str] = []

    def start(self) -> "ApplianceProcess":
        """Spawn and wait until it printed both its broker and admin addresses."""
        assert not self.alive(), "appliance already running"
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        env.setdefault("NO_COLOR", "1")
        with open(self.stderr_path, "ab") as err:
            err.write(f"\n----- appliance start #{self.starts + 1} -----\n".encode())
            err.flush()
            self.proc = subprocess.Popen(
                self.child_cmd([str(self.binary), "run", str(self.pipeline_path)]),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, env=env, cwd=self.workdir)
        self.starts += 1
        self._expect_exit = False
        lines: list[str] = []
        self._stdout = lines
        threading.Thread(target=self._drain, args=(self.proc, lines), daemon=True).start()
        admin = wait_until(lambda: next((m for m in map(ADMIN_RE.match, list(lines)) if m), None),
                           self.START_TIMEOUT, lambda: f"an 'admin on' line on stdout (have {lines})",
                           interval=0.02, procs=[self])
        listening = next((m for m in map(LISTENING_RE.match, lines) if m), None)
        assert listening, f"no 'listening on' line before the admin line: {lines}"
        assert lines.index(listening.string) < lines.index(admin.string), f"stdout order: {lines}"
        self.broker_address = listening.group("addr")
        self.admin_address = admin.group("addr")
        return self

    @staticmethod
    def _drain(proc: subprocess.Popen, lines: list[str]) -> None:
        try:
            for raw in proc.stdout:  # type: ignore[union-attr]
                lines.append(raw.decode(errors="replace").rstrip("\r\n"))
        except (OSError, ValueError):
            pass

    # -- the admin endpoint -------------------------------------------------------------------

    def status(self, timeout: float = 5) -> dict:
        """GET /status as JSON."""
        assert self.admin_address, "appliance not started"
        with urllib.request.urlopen(f"http://{self.admin_address}/status", timeout=timeout) as r:
            return json.loads(r.read())

    def vm_hwm_kb(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise KeyError("VmHWM")


def drained(status: dict, group_id: str) -> bool:
    """The agent has every byte of its files acknowledged and the group has committed to the end of
    every partition: nothing is left in flight anywhere."""
    files = status.get("files") or []
    groups = [g for g in status.get("groups") or [] if g.get("group_id") == group_id]
    return (bool(files) and all(f["bytes_behind"] == 0 for f in files)
            and bool(groups) and groups[0]["lag"] == 0 and bool(groups[0]["partitions"]))


# --------------------------------------------------------------------------------------------
# The generator


class Generator:
    """`logpipe gen nginx --dir DIR ARGS... --summary FILE` in the background. `wait()` returns its
    summary: {"access", "error", "total", "last_seq", "per_day": {"access": {day: n}, "error": {...}}}."""

    def __init__(self, binary: Path, child_cmd: Callable, log_dir: Path, summary: Path, *args: str):
        self.summary_path = Path(summary)
        self.argv = [str(binary), "gen", "nginx", "--dir", str(log_dir), "--summary", str(summary), *args]
        self.proc = subprocess.Popen(child_cmd(self.argv), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.summary: Optional[dict] = None

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float) -> dict:
        out, err = self.proc.communicate(timeout=timeout)
        assert self.proc.returncode == 0, f"{' '.join(self.argv)} exited {self.proc.returncode}\n{err}"
        self.summary = json.loads(self.summary_path.read_text())
        assert json.loads(out.strip().splitlines()[-1]) == self.summary, "stdout and --summary differ"
        return self.summary

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


REQUEST_RE = re.compile(r'"[A-Z]+ (\S+) HTTP/[0-9.]+"')


def path_counts(logs_dir: Path) -> "Counter[str]":
    """Request path (the URL before `?`) -> generated access lines, read from the generator's own files
    (the live access.log and its rotations)."""
    from collections import Counter

    counts: Counter = Counter()
    for log in logs_dir.glob("access.log*"):
        for line in log.read_text().splitlines():
            m = REQUEST_RE.search(line)
            if m:
                counts[m.group(1).split("?", 1)[0]] += 1
    return counts


def expected_indices(summary: dict) -> dict[str, int]:
    """Index name -> documents the generator's summary says it must hold."""
    out = {}
    for kind in ("access", "error"):
        for day, n in summary["per_day"][kind].items():
            out[f"nginx_{kind}-{day}"] = n
    return out


def day_of(seq: int, start: datetime, step_ms: int) -> str:
    """The daily index date (`YYYY.MM.dd`, UTC) of line `seq` of a generator run with --start/--step-ms."""
    return (start + timedelta(milliseconds=(seq - 1) * step_ms)).astimezone(timezone.utc).strftime("%Y.%m.%d")


# --------------------------------------------------------------------------------------------
# What the stand-in holds


@dataclass
class Stored:
    """The stand-in's documents, by generator sequence number."""
    per_index: dict[str, int] = field(default_factory=dict)
    # seq -> every (index, _id) holding it; a line stored once has exactly one entry.
    where: dict[int, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))
    # (index, _id, first 200 bytes) of documents with no sequence number.
    unnumbered: list[tuple[str, str, bytes]] = field(default_factory=list)

    @classmethod
    def read(cls, es, pattern: Optional[str] = None) -> "Stored":
        """Every stored document (of indices matching `pattern`), parsed with regexes over the raw
        source (hundreds of thousands of json.loads would take longer than the test)."""
        s = cls()
        names = es.indices() if pattern is None else [n for n in es.indices() if re.fullmatch(pattern, n)]
        for name in names:
            view = es.docs[name]
            s.per_index[name] = len(view)
            seq_re = ACCESS_SEQ_RE if name.startswith("nginx_access-") else ERROR_SEQ_RE
            for doc_id in view:
                raw = view.raw(doc_id)
                m = seq_re.search(raw)
                if m is None:
                    s.unnumbered.append((name, doc_id, raw[:200]))
                    continue
                s.where[int(m.group(1) or m.group(2))].append((name, doc_id))
        return s

    def duplicates(self) -> dict[int, list[tuple[str, str]]]:
        return {seq: w for seq, w in self.where.items() if len(w) > 1}

    def missing(self, first: int, last: int) -> list[int]:
        return [seq for seq in range(first, last + 1) if seq not in self.where]

    def misplaced(self, start: datetime, step_ms: int) -> list[tuple[int, str, str]]:
        """(seq, index, expected day) of documents whose index date is not their line's own date."""
        bad = []
        for seq, w in self.where.items():
            want = day_of(seq, start, step_ms)
            bad += [(seq, index, want) for index, _ in w if not index.endswith(want)]
        return bad


def summarize(items: Sequence, limit: int = 10) -> str:
    items = list(items)
    return f"{len(items)}: {items[:limit]}{' ...' if len(items) > limit else ''}"


def counter_diff(got: dict, want: dict) -> dict:
    keys = set(got) | set(want)
    return {k: (got.get(k, 0), want.get(k, 0)) for k in sorted(keys) if got.get(k, 0) != want.get(k, 0)}


__all__ = [
    "ApplianceProcess", "Generator", "Stored", "counter_diff", "day_of", "drained",
    "expected_indices", "free_port", "nginx_pipeline", "port_taken", "summarize",
]
