"""Clock steps (issue 16, point 4): the logpipe binary runs under Debian's libfaketime with a timestamp
file the test rewrites while the process runs (FAKETIME_NO_CACHE=1), so its wall clock jumps an hour
back or forward. FAKETIME_DONT_FAKE_MONOTONIC=1 leaves the monotonic clock alone: only the wall clock
steps, which is what an NTP step (or `date -s`) does. The test process and its Kafka clients keep the
real clock.

- offsets keep increasing and ListOffsets by timestamp (kafka-python's offsets_for_times) answers as
  Kafka does when LogAppendTime timestamps go back an hour; every .timeindex file stays strictly
  increasing;
- retention measures ages on a clock anchored at start and advanced by the monotonic clock: a step
  forward deletes nothing early, a step back does not stall it;
- a step forward does not expire a live consumer-group member (no rebalance);
- the indexer's daily index follows the event's own time whatever the indexer's clock says.

libfaketime does not hook C11's cnd_timedwait(), which librdkafka waits with (glibc's C11 threads): the
deadline comes from the faked clock, glibc waits for it on the real one, so under +1 h every librdkafka
timed wait lasted an hour and the indexer's consumer never joined its group. tests/faketime/c11_waits.c,
compiled here with the system's C compiler and preloaded before libfaketime, routes cnd_timedwait()
through pthread_cond_timedwait(), whose deadline libfaketime converts. (A real step of the wall clock does
something libfaketime cannot show: it lengthens librdkafka's waits already in progress; see the README.)
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KTopicPartition

from indexer_support import IndexerProcess, envelope, indexer_toml, new_run, produce_values, read_ndjson_dir
from support import (Broker, check_contiguous, child_cmd, close_and_report, consumer_conf, create_topic,
                     read_topic, unique, wait_until, watermarks)

FAKETIME_LIB = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
C11_WAITS_SRC = Path(__file__).resolve().parents[1] / "faketime" / "c11_waits.c"

pytestmark = pytest.mark.skipif(not FAKETIME_LIB.is_file(),
                                reason=f"{FAKETIME_LIB} missing: scripts/test.sh installs Debian's libfaketime")


@pytest.fixture(scope="session")
def c11_waits(tmp_path_factory) -> Path:
    """tests/faketime/c11_waits.c as a shared object (see the module docstring)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "no C compiler (cc): needed to build tests/faketime/c11_waits.c (Debian: build-essential)"
    out = tmp_path_factory.mktemp("faketime") / "c11_waits.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-pthread", "-o", str(out), str(C11_WAITS_SRC)], check=True,
                   timeout=120)
    return out

HOUR_MS = 3_600_000


class FakeClock:
    """A libfaketime timestamp file: `step(seconds)` moves the wall clock of every process started with
    `env()` by that much relative to the real clock ("+3600", "-3600"); `at(iso)` steps it to a given
    time."""

    def __init__(self, path: Path, c11_waits: Path):
        self.path = path
        self.c11_waits = c11_waits
        self.set("+0")

    def set(self, spec: str) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(spec + "\n")
        os.replace(tmp, self.path)  # atomic: the process never reads a half-written file

    def step(self, seconds: int) -> None:
        self.set(f"{seconds:+d}")

    def at(self, iso_utc: str) -> None:
        """Step the clock so that it reads `iso_utc` ("2026-06-15T23:40:00") now, and runs on from there."""
        target = datetime.fromisoformat(iso_utc).replace(tzinfo=timezone.utc).timestamp()
        self.step(int(target - time.time()))

    def env(self) -> dict:
        return {"LD_PRELOAD": f"{self.c11_waits} {FAKETIME_LIB}", "FAKETIME_TIMESTAMP_FILE": str(self.path),
                "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1",
                "FAKETIME_FORCE_MONOTONIC_FIX": "1"}


@pytest.fixture
def clock(tmp_path, c11_waits) -> FakeClock:
    return FakeClock(tmp_path / "faketime.rc", c11_waits)


@pytest.fixture
def faked_broker(logpipe_bin, tmp_path, clock, request):
    """`faked_broker(**settings)`: a broker whose wall clock is `clock`."""
    made: list[Broker] = []

    def make(**settings) -> Broker:
        workdir = tmp_path / f"broker{len(made)}"
        workdir.mkdir()
        b = Broker(logpipe_bin, workdir, settings, env=clock.env())
        made.append(b)
        return b.start()

    yield make
    close_and_report(made, request, "broker", tail=60)


def produce_one_by_one(bootstrap: str, topic: str, n: int, tag: str, **extra) -> list[int]:
    """`n` records, one batch each (so each batch has its own broker timestamp); returns their offsets."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    offsets: list[int] = []
    errors: list = []

    def done(err, msg):
        (errors.append(err) if err else offsets.append(msg.offset()))

    for i in range(n):
        p.produce(topic, value=f"{tag}-{i}".encode(), partition=0, on_delivery=done, **extra)
        assert p.flush(30) == 0, "undelivered"
    assert not errors, errors
    return offsets


def broker_now_ms(bootstrap: str, stamp_topic: str) -> int:
    """The broker's wall clock as it stamps a LogAppendTime record."""
    produce_one_by_one(bootstrap, stamp_topic, 1, "stamp")
    recs = read_topic(bootstrap, stamp_topic)[0]
    return recs[-1].timestamp[1]


def time_index_entries(path: Path) -> list[tuple[int, int]]:
    data = path.read_bytes()
    return [struct.unpack(">qI", data[i:i + 12]) for i in range(0, len(data) - len(data) % 12, 12)]


# --------------------------------------------------------------------------------------------
# 1. Offsets and the time index


def test_step_back_keeps_offsets_and_time_index_monotonic(faked_broker, clock):
    b = faked_broker()
    topic = unique("clock-ts")
    create_topic(b.bootstrap, topic, 1, config={"message.timestamp.type": "LogAppendTime",
                                                 "segment.bytes": "1024", "index.interval.bytes": "1"})
    before = produce_one_by_one(b.bootstrap, topic, 30, "before")
    clock.step(-3600)
    stamp = unique("clock-stamp")
    create_topic(b.bootstrap, stamp, 1, config={"message.timestamp.type": "LogAppendTime"})
    real = int(time.time() * 1000)
    wait_until(lambda: broker_now_ms(b.bootstrap, stamp) < real - HOUR_MS // 2, 30, "the broker's clock to step back")
    after = produce_one_by_one(b.bootstrap, topic, 30, "after")

    # Offsets keep increasing across the step.
    assert before == list(range(30)) and after == list(range(30, 60)), (before, after)
    recs = read_topic(b.bootstrap, topic)
    check_contiguous(recs)
    ts = [r.timestamp[1] for r in recs[0]]
    assert len(ts) == 60
    assert min(ts[:30]) - max(ts[30:]) > HOUR_MS // 2, "the second half is stamped an hour earlier"

    # ListOffsets by timestamp gives Kafka's answer: the earliest offset whose timestamp is >= the target.
    def expected(target):
        return next((i for i, t in enumerate(ts) if t >= target), None)

    kc = KafkaConsumer(bootstrap_servers=b.bootstrap)
    try:
        tp = KTopicPartition(topic, 0)
        targets = [min(ts[30:]), ts[45], min(ts[:30]), ts[10], ts[29], max(ts) + 1, max(ts) + HOUR_MS]
        for target in targets:
            got = kc.offsets_for_times({tp: target})[tp]
            want = expected(target)
            assert (got.offset if got else None) == want, f"offsets_for_times({target}): {got}, want {want}"
            if got:
                assert got.timestamp == ts[want]
    finally:
        kc.close()

    # Every time index stays strictly increasing, and each sealed segment's last entry is its newest record
    # timestamp: the segments written after the step do not pull the maximum back.
    pdir = b.log_dirs / f"{topic}-0"
    b.stop()
    files = sorted(pdir.glob("*.timeindex"))
    assert len(files) > 2, f"expected several segments, got {files}"
    for f in files:
        entries = time_index_entries(f)
        stamps = [e[0] for e in entries]
        assert stamps == sorted(set(stamps)), f"{f.name} not strictly increasing: {entries}"
    b.restart()
    kc = KafkaConsumer(bootstrap_servers=b.bootstrap)
    try:
        tp = KTopicPartition(topic, 0)
        for target in (min(ts[30:]), ts[10], max(ts) + 1):
            got = kc.offsets_for_times({tp: target})[tp]
            assert (got.offset if got else None) == expected(target), f"after restart, {target}: {got}"
    finally:
        kc.close()


# --------------------------------------------------------------------------------------------
# 2. Retention


def test_retention_neither_deletes_early_nor_stalls_across_steps(faked_broker, clock):
    b = faked_broker(log_retention_check_interval_ms=100)
    stamp = unique("clock-stamp")
    create_topic(b.bootstrap, stamp, 1, config={"message.timestamp.type": "LogAppendTime"})
    topic = unique("clock-ret")
    retention_ms = 10 * 60_000
    create_topic(b.bootstrap, topic, 1, config={"retention.ms": str(retention_ms), "segment.bytes": "1024"})
    now = int(time.time() * 1000)
    # Records stamped now (recent), then records stamped 20 minutes ago (past retention): the old ones go.
    produce_one_by_one(b.bootstrap, topic, 40, "recent", timestamp=now)
    old = produce_one_by_one(b.bootstrap, topic, 40, "old", timestamp=now - 2 * retention_ms)
    # A last recent batch so the old ones are in sealed segments and the newest segment's maximum is recent.
    produce_one_by_one(b.bootstrap, topic, 40, "recent2", timestamp=now)

    # Step forward an hour: the recent records are 0 minutes old by the real clock, 60 by the broker's.
    clock.step(3600)
    wait_until(lambda: broker_now_ms(b.bootstrap, stamp) > now + HOUR_MS // 2, 30, "the broker's clock to step forward")
    # Segments whose newest record is recent stay; the log start offset may move only past segments made of
    # old records. Nothing before the first old record's segment goes since its segments hold recent data.
    lo, hi = watermarks(b.bootstrap, topic, 0)
    assert (lo, hi) == (0, 120)
    # Retention still runs: a topic with a short retention set now loses its old-stamped segments.
    probe = unique("clock-probe")
    create_topic(b.bootstrap, probe, 1, config={"retention.ms": str(retention_ms), "segment.bytes": "1024"})
    produce_one_by_one(b.bootstrap, probe, 40, "old", timestamp=now - 2 * retention_ms)
    produce_one_by_one(b.bootstrap, probe, 20, "recent", timestamp=now)
    wait_until(lambda: watermarks(b.bootstrap, probe, 0)[0] > 0, 60, "retention to delete old segments after the step")
    # Several retention passes have run since the step (the probe's deletion came after it); the recent
    # segments of the first topic are still there.
    assert watermarks(b.bootstrap, topic, 0)[0] == 0, "a forward step deleted recent records early"

    # Step back an hour (two hours below the previous step): retention does not stall. Old records produced
    # now still go on the next passes.
    clock.step(-3600)
    wait_until(lambda: broker_now_ms(b.bootstrap, stamp) < now - HOUR_MS // 2, 30, "the broker's clock to step back")
    probe2 = unique("clock-probe2")
    create_topic(b.bootstrap, probe2, 1, config={"retention.ms": str(retention_ms), "segment.bytes": "1024"})
    produce_one_by_one(b.bootstrap, probe2, 40, "old", timestamp=now - 2 * retention_ms)
    produce_one_by_one(b.bootstrap, probe2, 20, "recent", timestamp=now)
    wait_until(lambda: watermarks(b.bootstrap, probe2, 0)[0] > 0, 60, "retention to delete old segments after a step back")
    assert old == list(range(40, 80))


# --------------------------------------------------------------------------------------------
# 3. Group session timeouts


def test_step_forward_does_not_expire_a_live_group_member(faked_broker, clock):
    b = faked_broker()
    stamp = unique("clock-stamp")
    create_topic(b.bootstrap, stamp, 1, config={"message.timestamp.type": "LogAppendTime"})
    topic = unique("clock-group")
    create_topic(b.bootstrap, topic, 2)
    group = unique("clock-group")
    session_ms = 6000
    assigned: list = []
    revoked: list = []
    c = Consumer(consumer_conf(b.bootstrap, group, **{"session.timeout.ms": session_ms, "heartbeat.interval.ms": 300}))
    c.subscribe([topic], on_assign=lambda _c, ps: assigned.append(sorted(p.partition for p in ps)),
                on_revoke=lambda _c, ps: revoked.append(sorted(p.partition for p in ps)))
    try:
        seen: list[bytes] = []

        def poll_once():
            m = c.poll(0.1)
            if m is not None and m.error() is None:
                seen.append(m.value())
            return assigned == [[0, 1]]

        wait_until(poll_once, 60, "the member's first assignment", interval=0)
        member = c.memberid()

        clock.step(3600)
        real = int(time.time() * 1000)
        wait_until(lambda: broker_now_ms(b.bootstrap, stamp) > real + HOUR_MS // 2, 30, "the broker's clock to step")
        # Watch the member for three session timeouts of real time after the step (a window to observe that
        # nothing happens, not a wait for a condition): an eviction would revoke and reassign.
        end = time.monotonic() + 3 * session_ms / 1000
        while time.monotonic() < end:
            poll_once()
        assert revoked == [] and assigned == [[0, 1]], f"rebalanced after the step: revoked={revoked} assigned={assigned}"
        assert c.memberid() == member
        # And it still consumes.
        p = Producer({"bootstrap.servers": b.bootstrap})
        p.produce(topic, value=b"after-step", partition=1)
        p.flush(30)
        wait_until(lambda: poll_once() and b"after-step" in seen, 30, "the member to consume after the step", interval=0)
        assert revoked == [], revoked
    finally:
        c.close()


# --------------------------------------------------------------------------------------------
# 4. Daily indices follow the event's time


def test_daily_index_follows_the_events_time_under_a_stepped_clock(broker, logpipe_bin, tmp_path, clock,
                                                                   request):
    topic = unique("clock-idx")
    create_topic(broker.bootstrap, topic, 1)
    out = tmp_path / "indices"
    # The indexer runs with its wall clock an hour ahead of the real one, and the lines were written around
    # midnight between 15 and 16 June, read on the 16th.
    clock.step(3600)
    config = indexer_toml([broker.bootstrap], [topic], unique("clock-idx"),
                          filters=[{"type": "nginx_access", "when": {"tag": "access"}}],
                          routes=[{"when": {"tag": "access"}, "index": "nginx_access-%{+YYYY.MM.dd}"}],
                          file_path=out)
    ix = IndexerProcess(logpipe_bin, tmp_path / "indexer", config, child_cmd, env=clock.env())
    try:
        ix.start()
        run = new_run()

        def line(seq, when, read_at):
            msg = f'203.0.113.{seq} - - [{when}] "GET /p{seq} HTTP/1.1" 200 1 "-" "curl/8"'
            return envelope(run, seq, tag="access", message=msg, timestamp=read_at)

        produce_values(broker.bootstrap, topic, [
            line(1, "15/Jun/2026:23:35:00 +0000", "2026-06-16T00:41:00.000Z"),
            line(2, "15/Jun/2026:23:59:59 +0000", "2026-06-16T00:41:00.000Z"),
            line(3, "16/Jun/2026:00:05:00 +0000", "2026-06-16T00:41:00.000Z"),
            line(4, "16/Jun/2026:01:10:00 +0200", "2026-06-16T00:41:00.000Z"),  # 23:10 UTC on the 15th
        ], 1)
        def documents() -> int:
            return sum(len(v) for v in read_ndjson_dir(out)[0].values()) if out.exists() else 0

        wait_until(lambda: documents() >= 4, 30, "four documents", procs=[ix])
        # Then the indexer's clock steps back two hours while it runs (an hour behind the real clock), and
        # two more lines arrive.
        clock.step(-3600)
        produce_values(broker.bootstrap, topic, [
            line(5, "16/Jun/2026:00:00:00 +0000", "2026-06-16T00:42:00.000Z"),
            line(6, "15/Jun/2026:19:59:59 -0400", "2026-06-16T00:42:00.000Z"),  # 23:59:59 UTC on the 15th
        ], 1)
        wait_until(lambda: documents() >= 6, 30, "six documents", procs=[ix])
        docs, bad = read_ndjson_dir(out)
        assert not bad, bad
        where = {d["url"]["original"] if "url" in d else json.dumps(d): idx for idx, ds in docs.items() for d in ds}
        # Neither the indexer's clock (today, an hour ahead or behind) nor the read time (the 16th) decides.
        assert where == {"/p1": "nginx_access-2026.06.15", "/p2": "nginx_access-2026.06.15",
                         "/p3": "nginx_access-2026.06.16", "/p4": "nginx_access-2026.06.15",
                         "/p5": "nginx_access-2026.06.16", "/p6": "nginx_access-2026.06.15"}, where
    finally:
        close_and_report([ix], request, "indexer")
