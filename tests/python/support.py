"""Shared helpers for the interop suite: the broker process, polling with deadlines, and thin
wrappers around confluent-kafka (librdkafka) for producing and reading back whole topics.

Conventions used by every test:
- Everything talks to 127.0.0.1 only, and every wait is a poll with a deadline (`wait_until`);
  nothing sleeps to wait for a condition and nothing asserts a duration.
- Values carry a sequence number so content can be compared exactly (as multisets, and per
  partition in order).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence, TypeVar

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
HOST = "127.0.0.1"

LISTENING_RE = re.compile(r"^listening on (?P<host>[^\s:]+):(?P<port>\d+)\s*$")

T = TypeVar("T")


# --------------------------------------------------------------------------------------------
# Polling


def wait_until(cond: Callable[[], T], timeout: float, what, interval: float = 0.05,
               procs: Sequence["ManagedProcess"] = ()) -> T:
    """Call `cond` until it returns something truthy; return that. Raise TimeoutError after `timeout`
    s. Every turn, each of `procs` is checked first: one that exited by itself fails at once, with its
    log (and the tails of all their logs go with a timeout). `what` may be a callable, evaluated only
    for the failure message. The one place tests wait for a condition."""
    deadline = time.monotonic() + timeout
    last_exc: Optional[BaseException] = None
    while True:
        for p in procs:
            p.check_running()
        try:
            value = cond()
            if value:
                return value
        except Exception as exc:  # keep polling; report the last failure on timeout
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = what() if callable(what) else what
            err = f" (last error: {last_exc!r})" if last_exc else ""
            tails = "".join("\n" + p.stderr_tail(40) for p in procs)
            raise TimeoutError(f"timed out after {timeout}s waiting for {detail}{err}{tails}")
        time.sleep(interval)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def child_cmd(argv: list[str]) -> list[str]:
    """Wrap argv so the child gets SIGKILL if the test process dies (no orphan brokers).

    setpriv (util-linux, always on Debian) sets PR_SET_PDEATHSIG and execs, so the PID we
    hold is the real process. A Popen preexec_fn would do the same but is unsafe here: the
    test process runs librdkafka threads, and fork + Python code in the child can deadlock.
    """
    setpriv = shutil.which("setpriv")
    if setpriv and sys.platform.startswith("linux"):
        return [setpriv, "--pdeathsig", "KILL", "--", *argv]
    return argv


# --------------------------------------------------------------------------------------------
# The broker process


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (str, Path)):
        s = str(v).replace("\\", "\\\\").replace('"', '\\"')
        return f'"{s}"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {v!r} as TOML")


def close_and_report(processes, request, label: str, tail: int = 100) -> None:
    """Teardown for test-managed processes: kill every one; fail the test if one exited by itself or
    panicked; print each one's stderr tail if the test failed."""
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    problems = []
    for p in processes:
        rc = p.died_unexpectedly()
        p.close()
        if rc is not None:
            problems.append(f"{label} {p.workdir.name} exited by itself rc={rc}\n{p.stderr_tail()}")
        elif "panicked at" in p.stderr_text():
            problems.append(f"{label} {p.workdir.name} panicked\n{p.stderr_tail()}")
        elif failed:
            print(p.stderr_tail(tail))
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def parse_table(text: str) -> list[dict[str, str]]:
    """Rows of a kafka-consumer-groups.sh style table (header with PARTITION and LAG)."""
    lines = [line for line in text.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        cols = line.split()
        if "PARTITION" in cols and "LAG" in cols:
            return [dict(zip(cols, row.split())) for row in lines[i + 1:] if len(row.split()) >= len(cols) - 3]
    raise AssertionError(f"no table with PARTITION and LAG columns in:\n{text}")


class BrokerStartError(RuntimeError):
    pass


class ManagedProcess:
    """What every test-managed `logpipe` process shares: its pid, liveness, and the diagnostics a
    failing test prints. Subclasses set `proc`, `stderr_path`, `_expect_exit` and `NAME`."""

    NAME = "process"
    proc: Optional[subprocess.Popen]
    stderr_path: Path
    _expect_exit: bool

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def died_unexpectedly(self) -> Optional[int]:
        """The exit code if the process exited without a test asking it to."""
        if self.proc is None or self._expect_exit:
            return None
        return self.proc.poll()

    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stderr_tail(self, lines: int = 60) -> str:
        tail = self.stderr_text().splitlines()[-lines:]
        return f"--- {self.NAME} stderr (last {len(tail)} lines of {self.stderr_path}) ---\n" + "\n".join(tail)

    # -- lifecycle ------------------------------------------------------------------------------

    STOP_TIMEOUT = 60.0

    def check_running(self) -> None:
        """Fail now, with the log, if the process exited without being asked to."""
        rc = self.died_unexpectedly()
        if rc is not None:
            self._expect_exit = True  # reported here; teardown need not report it again
            raise AssertionError(f"{self.NAME} exited by itself rc={rc}\n{self.stderr_tail()}")

    def kill9(self) -> None:
        """SIGKILL and reap: the crash case. Nothing acknowledged may be lost."""
        if self.proc is None:
            return
        self._expect_exit = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=self.STOP_TIMEOUT)
        self._exited()

    def terminate(self) -> None:
        """SIGTERM without waiting (the caller bounds the wait)."""
        assert self.proc is not None
        self._expect_exit = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: Optional[float] = None) -> int:
        """SIGTERM (the clean shutdown) and wait up to `timeout` s (STOP_TIMEOUT by default); return the
        exit code. Past the bound: kill -9 and fail."""
        self.terminate()
        assert self.proc is not None
        timeout = timeout or self.STOP_TIMEOUT
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise AssertionError(f"{self.NAME} still running {timeout}s after SIGTERM\n{self.stderr_tail()}")
        self._exited()
        return rc

    def wait_exit(self, timeout: float) -> int:
        """Wait for an exit the test expects (e.g. a config the process must refuse)."""
        assert self.proc is not None
        self._expect_exit = True
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise AssertionError(f"{self.NAME} still running after {timeout}s\n{self.stderr_tail()}")

    def close(self) -> None:
        """Teardown: always leave no process behind."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=self.STOP_TIMEOUT)
        self._exited()

    def _exited(self) -> None:
        """Hook after the process is reaped (e.g. closing pipes)."""


class Broker(ManagedProcess):
    """One `logpipe broker -c FILE` process with its own temp log dir.

    `kill9()` / `stop()` end it; `restart()` starts it again on the same log dir (and the same
    port when that is still free). Stderr (the broker's logs) goes to `stderr_path`.
    """

    NAME = "broker"
    STARTUP_TIMEOUT = 30.0
    STOP_TIMEOUT = 30.0

    def __init__(self, binary: Path, workdir: Path, overrides: Optional[dict] = None,
                 env: Optional[dict] = None):
        self.binary = Path(binary)
        self.env = dict(env or {})  # extra environment, e.g. libfaketime's LD_PRELOAD
        self.workdir = Path(workdir)
        self.log_dirs = self.workdir / "data"
        self.config_path = self.workdir / "broker.toml"
        self.stderr_path = self.workdir / "broker.stderr.log"
        self.settings = {
            "log_dirs": str(self.log_dirs),
            "group_initial_rebalance_delay_ms": 0,
        }
        self.settings.update(overrides or {})
        self.port = 0
        self.proc: Optional[subprocess.Popen] = None
        self.starts = 0
        self.extra_stdout: list[str] = []
        self._expect_exit = False

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        assert self.port, "broker not started"
        return f"{HOST}:{self.port}"

    def write_config(self, port: int) -> None:
        lines = ["[broker]", f"listeners = {toml_value([f'{HOST}:{port}'])}"]
        lines += [f"{k} = {toml_value(v)}" for k, v in self.settings.items()]
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self, port: int = 0) -> "Broker":
        assert not self.alive(), "broker already running"
        self.log_dirs.mkdir(parents=True, exist_ok=True)
        self.write_config(port)
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        env.update(self.env)
        with open(self.stderr_path, "ab") as err:
            err.write(f"\n----- start #{self.starts + 1} (port {port}) -----\n".encode())
            err.flush()
            self.proc = subprocess.Popen(
                child_cmd([str(self.binary), "broker", "-c", str(self.config_path)]),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                env=env,
                cwd=self.workdir,
            )
        self.starts += 1
        self._expect_exit = False
        line = self._read_first_line(self.STARTUP_TIMEOUT)
        m = LISTENING_RE.match(line)
        if not m:
            self.kill9()
            raise BrokerStartError(
                f"first stdout line of the broker must be 'listening on {HOST}:PORT', got {line!r}"
                f"\n{self.stderr_tail()}"
            )
        if m.group("host") != HOST:
            self.kill9()
            raise BrokerStartError(f"broker listens on {m.group('host')}, expected {HOST}")
        self.port = int(m.group("port"))
        # Keep draining stdout so a chatty broker can never block on a full pipe.
        threading.Thread(target=self._drain_stdout, args=(self.proc,), daemon=True).start()
        return self

    def _read_first_line(self, timeout: float) -> str:
        import selectors

        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_READ)
        buf = b""
        deadline = time.monotonic() + timeout
        try:
            while b"\n" not in buf:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.kill9()
                    raise BrokerStartError(
                        f"broker printed no 'listening on' line within {timeout}s\n{self.stderr_tail()}"
                    )
                if sel.select(timeout=min(remaining, 0.2)):
                    chunk = os.read(fd, 4096)
                    if not chunk:
                        rc = self.proc.wait(timeout=5)
                        self._expect_exit = True
                        raise BrokerStartError(
                            f"broker exited (rc={rc}) before listening\n{self.stderr_tail()}"
                        )
                    buf += chunk
        finally:
            sel.close()
        first, _, rest = buf.partition(b"\n")
        if rest.strip():
            self.extra_stdout.append(rest.decode(errors="replace"))
        return first.decode(errors="replace").rstrip("\r")

    def _drain_stdout(self, proc: subprocess.Popen) -> None:
        try:
            for raw in proc.stdout:  # type: ignore[union-attr]
                self.extra_stdout.append(raw.decode(errors="replace"))
        except (OSError, ValueError):
            pass

    def restart(self) -> "Broker":
        """Start again on the same log dir; same port if it can still be bound, else a new one."""
        if self.alive():
            self.stop()
        old = self.port
        try:
            return self.start(port=old)
        except BrokerStartError:
            if old == 0:
                raise
            # The old port may be taken (or in a state the broker refuses); any port will do,
            # since tests recreate their clients after a restart.
            return self.start(port=0)

    def _exited(self) -> None:
        self._close_pipes()

    def _close_pipes(self) -> None:
        if self.proc is not None and self.proc.stdout is not None:
            try:
                self.proc.stdout.close()
            except OSError:
                pass

    # -- diagnostics --------------------------------------------------------------------------

    def proc_status(self, key: str) -> int:
        """A kB value from /proc/PID/status, e.g. VmRSS."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise KeyError(key)


# --------------------------------------------------------------------------------------------
# The console CLI


class Cli:
    """`logpipe <args> --bootstrap-server B`. The flag goes last so it works whether the CLI
    defines it globally or on each leaf subcommand."""

    def __init__(self, binary: Path, bootstrap: str):
        self.binary = Path(binary)
        self.bootstrap = bootstrap

    def run(self, *args: str, input: Optional[str] = None, timeout: float = 60, check: bool = True):
        argv = [str(self.binary), *args, "--bootstrap-server", self.bootstrap]
        proc = subprocess.run(
            child_cmd(argv),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc


# --------------------------------------------------------------------------------------------
# Kafka client helpers (confluent-kafka / librdkafka)


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def topic_partitions(bootstrap: str, topic: str, timeout: float = 10) -> Optional[list[int]]:
    """Partition ids from Metadata, or None if the broker does not know the topic."""
    md = admin(bootstrap).list_topics(timeout=timeout)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return None
    return sorted(t.partitions)


def create_topic(bootstrap: str, name: str, partitions: int, config: Optional[dict] = None,
                 timeout: float = 30) -> None:
    """CreateTopics via librdkafka's admin API, then wait until Metadata shows every partition."""
    # Keep the client referenced until the future resolves: a collected AdminClient is destroyed and
    # fails its pending futures with _DESTROY.
    client = admin(bootstrap)
    fs = client.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        operation_timeout=timeout, request_timeout=timeout,
    )
    fs[name].result(timeout=timeout)
    wait_until(lambda: topic_partitions(bootstrap, name) == list(range(partitions)), timeout,
               f"metadata for new topic {name} with {partitions} partitions")


@dataclass(frozen=True)
class Delivered:
    partition: int
    offset: int
    key: Optional[bytes]
    value: bytes


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: Optional[bytes]
    value: bytes
    headers: Optional[list]
    timestamp: tuple


def producer_conf(bootstrap: str, **extra) -> dict:
    conf = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5}
    conf.update(extra)
    return conf


def produce(bootstrap: str, topic: str, messages: Iterable[dict], timeout: float = 120,
            **conf) -> list[Delivered]:
    """Produce `messages` (dicts of produce() kwargs: value, key, partition, headers, timestamp)
    and wait for every delivery report. Fails on any delivery error. Returns reports in ack order."""
    p = Producer(producer_conf(bootstrap, **conf))
    delivered: list[Delivered] = []
    errors: list[str] = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(f"{err} (partition {msg.partition()})")
        else:
            delivered.append(Delivered(msg.partition(), msg.offset(), msg.key(), msg.value()))

    deadline = time.monotonic() + timeout
    sent = 0
    for m in messages:
        while True:
            try:
                p.produce(topic, on_delivery=on_delivery, **m)
                break
            except BufferError:  # local queue full: serve delivery reports, then retry
                p.poll(0.05)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"producer queue stayed full; {len(delivered)} delivered")
        sent += 1
        if sent % 1000 == 0:
            p.poll(0)
    remaining = p.flush(max(1.0, deadline - time.monotonic()))
    assert not errors, f"{len(errors)} delivery errors, first: {errors[:5]}"
    assert remaining == 0, f"{remaining} messages still undelivered after {timeout}s"
    assert len(delivered) == sent
    return delivered


# Errors a consumer may see transiently (e.g. around a broker restart); anything else fails the read.
TRANSIENT = {KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._PARTITION_EOF,
             KafkaError._RESOLVE, KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_NOT_AVAILABLE,
             KafkaError.COORDINATOR_LOAD_IN_PROGRESS}


def consumer_conf(bootstrap: str, group: Optional[str] = None, **extra) -> dict:
    conf = {
        "bootstrap.servers": bootstrap,
        # librdkafka insists on a group.id; with assign() and explicit offsets it is never used
        # for offsets (no commits), so it does not need the group coordinator.
        "group.id": group or unique("assign-only"),
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 100,
    }
    conf.update(extra)
    return conf


def watermarks(bootstrap: str, topic: str, partition: int, timeout: float = 10) -> tuple[int, int]:
    """(log start offset, log end offset) via ListOffsets earliest/latest."""
    c = Consumer(consumer_conf(bootstrap))
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout, cached=False)
    finally:
        c.close()


def read_topic(bootstrap: str, topic: str, partitions: Optional[list[int]] = None,
               timeout: float = 120) -> dict[int, list[Record]]:
    """Everything between each partition's log start and log end (as of the call), in order."""
    c = Consumer(consumer_conf(bootstrap))
    try:
        if partitions is None:
            md = c.list_topics(topic, timeout=10)
            assert topic in md.topics and md.topics[topic].error is None, f"no metadata for {topic}"
            partitions = sorted(md.topics[topic].partitions)
        marks = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
                 for p in partitions}
        out: dict[int, list[Record]] = {p: [] for p in partitions}
        remaining = {p for p, (lo, hi) in marks.items() if hi > lo}
        if remaining:
            c.assign([TopicPartition(topic, p, marks[p][0]) for p in sorted(remaining)])
        deadline = time.monotonic() + timeout
        while remaining:
            if time.monotonic() > deadline:
                got = {p: len(v) for p, v in out.items()}
                raise TimeoutError(f"reading {topic}: got {got}, watermarks {marks}")
            for m in c.consume(num_messages=10000, timeout=0.5):
                err = m.error()
                if err is not None:
                    if err.code() in TRANSIENT:
                        continue
                    raise KafkaException(err)
                p = m.partition()
                if m.offset() >= marks[p][1]:
                    continue  # written after we took the watermarks
                out[p].append(Record(p, m.offset(), m.key(), m.value(), m.headers(), m.timestamp()))
                if m.offset() + 1 >= marks[p][1]:
                    remaining.discard(p)
        return out
    finally:
        c.close()


def roundtrip(bootstrap: str, n: int = 10, timeout: float = 60) -> None:
    """A fresh connection can still create a topic, produce and consume: the broker is healthy."""
    topic = unique("health")
    create_topic(bootstrap, topic, 1, timeout=timeout)
    values = [f"health-{i}".encode() for i in range(n)]
    produce(bootstrap, topic, [{"value": v} for v in values], timeout=timeout)
    got = read_topic(bootstrap, topic, timeout=timeout)
    assert [r.value for r in got[0]] == values


def check_contiguous(records: dict[int, list[Record]]) -> None:
    """Offsets of each partition run without gaps or repeats (no compaction, no transactions)."""
    for p, recs in records.items():
        offs = [r.offset for r in recs]
        if offs:
            assert offs == list(range(offs[0], offs[0] + len(offs))), \
                f"partition {p}: offsets not contiguous near {first_gap(offs)}"


def first_gap(offs: list[int]) -> str:
    for a, b in zip(offs, offs[1:]):
        if b != a + 1:
            return f"{a} -> {b}"
    return "?"
