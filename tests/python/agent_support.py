"""Helpers for the agent tests (test_agent.py): the `logpipe agent` process, a log writer that runs
in its own process (rename rotation, copytruncate, numbered files), the on-disk truth of what was
written, and a topic collector that parses the agent's JSON envelopes.

Every line the writer writes is `SEQ PAYLOAD\\n` with a 9-digit sequence number that is unique over
the whole test, and all lines have the same length. The truth a test checks against is read back
from the files on disk after the writer stopped (tests never delete log files), so it holds for
every rotation scheme: each sequence number maps to (file on disk, byte offset).

This file is also the writer's entry point: `python agent_support.py write '<json args>'`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

from support import ManagedProcess, wait_until

HERE = Path(__file__).resolve().parent
LINE_RE = re.compile(r"^(\d{9}) ")
SEQ_DIGITS = 9


# --------------------------------------------------------------------------------------------
# Agent config and process


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (str, Path)):
        # literal strings: regexes and paths stay as written
        s = str(v)
        if "'" not in s and "\n" not in s:
            return f"'{s}'"
        s = s.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{s}"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {v!r} as TOML")


def agent_toml(registry: Path, brokers: list[str], topic: str, inputs: list[dict],
               output: Optional[dict] = None, **agent) -> str:
    """An `[agent]` config. `inputs` are `[[agent.inputs]]` tables; `output` extra output keys."""
    lines = ["[agent]", f"registry = {toml_value(registry)}"]
    lines += [f"{k} = {toml_value(v)}" for k, v in agent.items()]
    out = {"brokers": brokers, "topic": topic, "acks": "all", "compression": "lz4"}
    out.update(output or {})
    lines += ["", "[agent.output]"] + [f"{k} = {toml_value(v)}" for k, v in out.items()]
    for inp in inputs:
        lines += ["", "[[agent.inputs]]"] + [f"{k} = {toml_value(v)}" for k, v in inp.items()]
    return "\n".join(lines) + "\n"


def file_input(paths: list[str], **extra) -> dict:
    inp = {"type": "file", "paths": paths, "tags": ["test"], "scan_frequency": "200ms",
           "close_inactive": "1s"}
    inp.update(extra)
    return inp


def exec_input(command: str, **extra) -> dict:
    inp = {"type": "exec", "command": command, "tags": ["exec"]}
    inp.update(extra)
    return inp


class AgentProcess(ManagedProcess):
    """One `logpipe agent -c FILE` process. Stderr (its log) is appended to `stderr_path`."""

    NAME = "agent"
    START_TIMEOUT = 30.0

    def __init__(self, binary: Path, workdir: Path, config_text: str, child_cmd: Callable):
        self.binary = Path(binary)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / "agent.toml"
        self.config_path.write_text(config_text)
        self.stderr_path = self.workdir / "agent.stderr.log"
        self.child_cmd = child_cmd
        self.proc: Optional[subprocess.Popen] = None
        self.starts = 0
        self._expect_exit = False

    def start(self) -> "AgentProcess":
        assert not self.alive(), "agent already running"
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        env.setdefault("NO_COLOR", "1")
        before = len(self.stderr_text())
        with open(self.stderr_path, "ab") as err:
            err.write(f"\n----- agent start #{self.starts + 1} -----\n".encode())
            err.flush()
            self.proc = subprocess.Popen(
                self.child_cmd([str(self.binary), "agent", "-c", str(self.config_path)]),
                stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=env, cwd=self.workdir)
        self.starts += 1
        self._expect_exit = False
        wait_until(lambda: "agent started" in self.stderr_text()[before:], self.START_TIMEOUT,
                   "the agent to log 'agent started'", procs=[self])
        return self

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_registry(path: Path) -> list[dict]:
    """The registry's entries ([] if it was never written)."""
    try:
        return json.loads(Path(path).read_text())["entries"]
    except FileNotFoundError:
        return []


# --------------------------------------------------------------------------------------------
# The writer (runs in its own process so it is not slowed by the test's consumer)


def make_line(seq: int, line_bytes: int) -> bytes:
    head = f"{seq:0{SEQ_DIGITS}d} "
    body = f"GET /api/v1/items/{seq % 9973} HTTP/1.1 status=200 bytes={seq % 65536} ua=test-writer "
    pad = line_bytes - 1 - len(head) - len(body)
    if pad < 0:
        body = body[:pad]
        pad = 0
    return (head + body + "x" * pad + "\n").encode()


def writer_main(args: dict) -> dict:
    """Append numbered lines at `rate` lines/s (0: as fast as possible) until `lines` were written
    or `seconds` passed, in batches every `batch_ms`. Rotation (`mode`):
      - none:         one file `name`.
      - rename:       every `rotate_ms`, rename `name` to `name.NNNNN` and reopen `name` (nginx + USR1).
      - copytruncate: a second thread copies `name` to `name.NNNNN` then truncates `name` to 0 every
                      `rotate_ms`, while the writer keeps appending through its O_APPEND descriptor
                      (logrotate copytruncate: lines written between the copy and the truncate are lost).
      - files:        a new file `name-NNN.log` every `lines_per_file` lines, no rotation.
    Prints a JSON summary (lines, seconds, rate, rotations) on stdout."""
    d = Path(args["dir"])
    d.mkdir(parents=True, exist_ok=True)
    name = args.get("name", "app.log")
    mode = args.get("mode", "none")
    rate = float(args.get("rate", 0))
    total = args.get("lines")
    seconds = args.get("seconds")
    seq = int(args.get("start_seq", 0))
    line_bytes = int(args.get("line_bytes", 100))
    batch_ms = float(args.get("batch_ms", 10))
    rotate_s = float(args.get("rotate_ms", 100)) / 1000
    lines_per_file = int(args.get("lines_per_file", 100_000))
    max_batch = int(args.get("max_batch", 20_000))
    stop_file = args.get("stop_file")
    first_seq = seq

    gen = 0
    rotations = 0
    file_lines = 0

    def open_live(path: Path) -> int:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def live_path() -> Path:
        return d / (f"{Path(name).stem}-{gen:03d}.log" if mode == "files" else name)

    fd = open_live(live_path())
    stop = threading.Event()

    def copytruncate_loop():
        nonlocal rotations
        live = d / name
        nxt = time.monotonic() + rotate_s
        n = 0
        while not stop.is_set():
            delay = nxt - time.monotonic()
            if delay > 0:
                stop.wait(delay)
                continue
            nxt += rotate_s
            n += 1
            shutil.copyfile(live, d / f"{name}.{n:05d}")
            os.truncate(live, 0)
            rotations += 1

    rot_thread = None
    if mode == "copytruncate":
        rot_thread = threading.Thread(target=copytruncate_loop, daemon=True)
        rot_thread.start()

    t0 = time.monotonic()
    next_rotate = t0 + rotate_s
    written = 0
    next_tick = t0
    while True:
        now = time.monotonic()
        elapsed = now - t0
        if total is not None and written >= total:
            break
        if seconds is not None and elapsed >= seconds:
            break
        if stop_file and os.path.exists(stop_file):
            break
        due = int(rate * elapsed) - written if rate > 0 else max_batch
        if total is not None:
            due = min(due, total - written)
        due = min(due, max_batch)
        if mode == "files":
            due = min(due, lines_per_file - file_lines)
        if due > 0:
            buf = b"".join(make_line(s, line_bytes) for s in range(seq, seq + due))
            os.write(fd, buf)
            seq += due
            written += due
            file_lines += due
        if mode == "rename" and time.monotonic() >= next_rotate:
            next_rotate += rotate_s
            gen += 1
            os.rename(d / name, d / f"{name}.{gen:05d}")
            os.close(fd)
            fd = open_live(d / name)
            rotations += 1
        elif mode == "files" and file_lines >= lines_per_file:
            os.close(fd)
            gen += 1
            file_lines = 0
            fd = open_live(live_path())
        if rate > 0:
            next_tick += batch_ms / 1000
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing, not waiting for a condition
            else:
                next_tick = time.monotonic()
    elapsed = time.monotonic() - t0
    stop.set()
    if rot_thread is not None:
        rot_thread.join()
    os.close(fd)
    return {"first_seq": first_seq, "lines": written, "seconds": elapsed,
            "rate": written / elapsed if elapsed > 0 else 0.0, "rotations": rotations}


class Writer:
    """The writer subprocess. `wait()` returns its summary."""

    def __init__(self, child_cmd: Callable, **args):
        self.args = args
        self.proc = subprocess.Popen(
            child_cmd([sys.executable, str(Path(__file__)), "write", json.dumps(args)]),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.summary: Optional[dict] = None

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float = 300) -> dict:
        out, err = self.proc.communicate(timeout=timeout)
        assert self.proc.returncode == 0, f"writer failed rc={self.proc.returncode}\n{err}"
        self.summary = json.loads(out.strip().splitlines()[-1])
        return self.summary

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def append_lines(path: Path, seqs: Iterable[int], line_bytes: int = 100) -> None:
    with open(path, "ab") as f:
        f.write(b"".join(make_line(s, line_bytes) for s in seqs))


# --------------------------------------------------------------------------------------------
# What is on disk


@dataclass
class DiskTruth:
    """Every complete line found in the log files: seq → (file name, offset, line bytes)."""
    where: dict[int, tuple[str, int]] = field(default_factory=dict)
    lines: dict[int, bytes] = field(default_factory=dict)
    partial_tails: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)

    @classmethod
    def read(cls, d: Path, pattern: str = "*") -> "DiskTruth":
        t = cls()
        for p in sorted(Path(d).glob(pattern)):
            if not p.is_file():
                continue
            data = p.read_bytes()
            t.sizes[p.name] = len(data)
            off = 0
            while off < len(data):
                nl = data.find(b"\n", off)
                if nl < 0:
                    t.partial_tails[p.name] = (off, data[off:])
                    break
                line = data[off:nl]
                m = LINE_RE.match(line.decode(errors="replace"))
                assert m, f"{p}: unexpected line at {off}: {line[:80]!r}"
                seq = int(m.group(1))
                assert seq not in t.where, f"seq {seq} twice on disk: {t.where[seq]} and {(p.name, off)}"
                t.where[seq] = (p.name, off)
                t.lines[seq] = line
                off = nl + 1
        return t


# --------------------------------------------------------------------------------------------
# Reading the topic


@dataclass
class Event:
    pos: int               # offset in the topic (partition 0)
    seq: Optional[int]     # None for a fragment (a message that is not a whole written line)
    message: str
    path: Optional[str]    # log.file.path; None for exec and stdin events
    offset: Optional[int]  # log.offset; None for exec and stdin events
    id: str
    tags: list
    input_type: str = "file"
    command_line: Optional[str] = None  # process.command_line of exec events


class StalledError(AssertionError):
    pass


class TopicCollector:
    """Reads partition 0 of `topic` from the start and parses every envelope, incrementally."""

    def __init__(self, bootstrap: str, topic: str, line_bytes: int = 100):
        from confluent_kafka import Consumer, TopicPartition
        from support import consumer_conf

        self.bootstrap = bootstrap
        self.topic = topic
        self.consumer = Consumer(consumer_conf(bootstrap, **{"fetch.max.bytes": 52428800, "log_level": 0}))
        self.tp = TopicPartition(topic, 0)
        self.consumer.assign([TopicPartition(topic, 0, 0)])
        self.events: list[Event] = []
        self.next_pos = 0
        self.seen: set[int] = set()
        self.line_bytes = line_bytes

    def close(self) -> None:
        self.consumer.close()

    def high_watermark(self) -> int:
        return self.consumer.get_watermark_offsets(self.tp, timeout=10, cached=False)[1]

    def _consume(self, timeout: float) -> int:
        from confluent_kafka import KafkaException
        from support import TRANSIENT

        n = 0
        for m in self.consumer.consume(num_messages=20000, timeout=timeout):
            err = m.error()
            if err is not None:
                if err.code() in TRANSIENT:
                    continue
                raise KafkaException(err)
            if m.offset() < self.next_pos:
                continue
            assert m.partition() == 0
            doc = json.loads(m.value())
            msg = doc["message"]
            mm = LINE_RE.match(msg)
            seq = int(mm.group(1)) if mm else None
            log = doc.get("log") or {}
            self.events.append(Event(m.offset(), seq, msg, (log.get("file") or {}).get("path"),
                                     log.get("offset"), doc["event"]["id"], doc.get("tags", []),
                                     doc["input"]["type"], (doc.get("process") or {}).get("command_line")))
            if seq is not None and msg == make_line(seq, self.line_bytes)[:-1].decode():
                self.seen.add(seq)  # whole lines only: a fragment does not deliver its line
            self.next_pos = m.offset() + 1
            n += 1
        return n

    def collect_until(self, done: Callable[["TopicCollector"], bool], timeout: float,
                      stall: float = 30.0, what="events") -> None:
        """Consume until `done(self)`. Fails after `timeout`, or after `stall` seconds in which
        neither our position nor the high watermark moved (nothing more is coming)."""
        deadline = time.monotonic() + timeout
        last_progress = time.monotonic()
        last_hw = -1
        while not done(self):
            n = self._consume(0.5)
            now = time.monotonic()
            if n:
                last_progress = now
            elif now - last_progress > 2:
                hw = self.high_watermark()
                if hw != last_hw:
                    last_hw = hw
                    last_progress = now
            if now > deadline or now - last_progress > stall:
                if callable(what):
                    what = what()
                raise (AssertionError if now > deadline else StalledError)(
                    f"waiting for {what}: {len(self.events)} events read, position {self.next_pos}, "
                    f"high watermark {self.high_watermark()}; "
                    f"{'no progress for %.0fs' % stall if now <= deadline else 'timed out after %.0fs' % timeout}")

    def wait_for_seqs(self, needed: set[int], timeout: float, stall: float = 20.0) -> bool:
        """Consume until every line of `needed` arrived whole. Returns False (instead of failing)
        when nothing moved for `stall` seconds, so the caller's checks can say what is wrong."""
        def what() -> str:
            missing = sorted(needed - self.seen)
            return f"{len(needed)} lines (missing {len(missing)}: {ranges(missing)[:10]})"

        try:
            self.collect_until(lambda c: needed <= c.seen, timeout, stall, what=what)
            return True
        except StalledError as e:
            print(f"\n{e}", flush=True)
            return False

    def drain(self, timeout: float = 120) -> None:
        """Read up to the current high watermark."""
        hw = self.high_watermark()
        self.collect_until(lambda c: c.next_pos >= hw, timeout, what=f"the high watermark {hw}")


# --------------------------------------------------------------------------------------------
# Checks


@dataclass
class Report:
    events: int = 0
    distinct: int = 0
    duplicates: int = 0
    fragments: int = 0
    missing: list = field(default_factory=list)
    lost_not_on_disk: int = 0
    delivered: set = field(default_factory=set)
    fragment_events: list = field(default_factory=list)

    def __str__(self) -> str:
        return (f"{self.events} events, {self.distinct} distinct lines, {self.duplicates} duplicates, "
                f"{self.fragments} fragments, {len(self.missing)} missing on-disk lines, "
                f"{self.lost_not_on_disk} written lines neither on disk nor delivered")


def check_delivery(events: list[Event], truth: DiskTruth, written: Optional[range] = None,
                   allow_duplicates: bool = False, allow_fragments: bool = False,
                   line_bytes: int = 100) -> Report:
    """The checks every test shares:
    - every complete line on disk arrived;
    - every delivered message is exactly a written line (fragments are returned for the caller);
    - for lines on disk, log.offset is the line's offset in its file;
    - copies of one line all carry the same event.id, and different lines have different ids;
    - per file on disk (file identity), first deliveries are in increasing offset order;
    - without `allow_duplicates`, each line arrives exactly once;
    - without `allow_fragments`, no message is anything but a whole written line. With it, pieces of
      lines (copytruncate can copy half a line) are counted in `fragments` and listed in
      `fragment_events`, and do not count as delivering their line."""
    r = Report(events=len(events))
    by_seq: dict[int, list[Event]] = defaultdict(list)
    for e in events:
        if e.seq is None or (allow_fragments and e.message != make_line(e.seq, line_bytes)[:-1].decode()):
            r.fragments += 1
            r.fragment_events.append(e)
            continue
        by_seq[e.seq].append(e)
    r.delivered = set(by_seq)
    r.distinct = len(by_seq)
    r.duplicates = sum(len(v) - 1 for v in by_seq.values())

    r.missing = sorted(set(truth.where) - set(by_seq))
    if written is not None:
        r.lost_not_on_disk = sum(1 for s in written if s not in by_seq and s not in truth.where)
        unknown = [s for s in by_seq if s not in written]
        assert not unknown, f"delivered lines that were never written: {unknown[:10]}"

    problems = []
    id_owner: dict[str, int] = {}
    for seq, copies in by_seq.items():
        expect = make_line(seq, line_bytes)[:-1].decode()
        for e in copies:
            if e.message != expect:
                problems.append(f"seq {seq}: message {e.message[:60]!r}... differs from what was written")
        ids = {e.id for e in copies}
        if len(ids) != 1:
            problems.append(f"seq {seq}: {len(copies)} copies with different event.ids {sorted(ids)} "
                            f"(paths/offsets {[(e.path, e.offset) for e in copies]})")
        for i in ids:
            if id_owner.setdefault(i, seq) != seq:
                problems.append(f"event.id {i} used by seq {id_owner[i]} and seq {seq}")
        if seq in truth.where:
            fname, off = truth.where[seq]
            for e in copies:
                if e.offset != off:
                    problems.append(f"seq {seq}: log.offset {e.offset} (path {e.path}) but it is at "
                                    f"offset {off} of {fname}")
        if not allow_duplicates and len(copies) > 1:
            problems.append(f"seq {seq} delivered {len(copies)} times at topic offsets "
                            f"{[e.pos for e in copies]} (paths {[e.path for e in copies]}, "
                            f"log.offsets {[e.offset for e in copies]})")
        if len(problems) > 20:
            break

    # Order per file identity: first copies in topic order have increasing offsets.
    last: dict[str, tuple[int, int]] = {}
    first_seen: set[int] = set()
    for e in events:
        if e.seq is None or e.seq in first_seen or e.seq not in truth.where:
            continue
        first_seen.add(e.seq)
        fname, off = truth.where[e.seq]
        prev = last.get(fname)
        if prev is not None and off <= prev[0]:
            problems.append(f"{fname}: offset {off} (seq {e.seq}, topic offset {e.pos}) delivered after "
                            f"offset {prev[0]} (topic offset {prev[1]})")
        last[fname] = (off, e.pos)
        if len(problems) > 40:
            break

    if r.missing:
        sample = [(s, truth.where[s]) for s in r.missing[:10]]
        problems.insert(0, f"{len(r.missing)} lines on disk never arrived, e.g. (seq, (file, offset)): "
                           f"{sample}; ranges: {ranges(r.missing)[:10]}")
    if r.missing and r.fragments:
        problems.insert(1, f"{r.fragments} messages are pieces of lines, e.g. (topic offset, path, log.offset, "
                           f"message): {[(e.pos, Path(e.path).name, e.offset, e.message[:24]) for e in r.fragment_events[:12]]}")
    if r.fragments and not allow_fragments:
        problems.append(f"{r.fragments} messages are not written lines, e.g. "
                        f"{[(e.path, e.offset, e.message[:40]) for e in r.fragment_events[:5]]}")
    assert not problems, f"{r}\n" + "\n".join(problems[:40])
    return r


def ranges(seqs: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s in seqs:
        if out and out[-1][1] == s - 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "write":
        print(json.dumps(writer_main(json.loads(sys.argv[2]))), flush=True)
    else:
        sys.exit("usage: agent_support.py write '<json args>'")
