"""Power loss. kill -9 keeps the page cache, so a write that was never fsynced survives it and no
kill -9 test can tell an fsync from none. Here the broker's log dir, the agent's registry and the file
output live on lazyfs (lazyfs_support.py), which forgets on command everything not fsynced, directory
entries included. A power cut is: kill -9, drop, restart. Afterwards:

- broker: every record acknowledged with acks=all is there, exactly once, at its acknowledged offset;
  every record a consumer was served is still there (consumers only see durable data); no torn or
  corrupt batch is served (librdkafka checks CRCs); the idempotent producer's retries across the cut
  add no duplicate (producer-id state survived); topics created before the cut, with their configs,
  and the group's acknowledged offset commits survive.
- appliance (`logpipe run`: broker + agent + indexer with the file output, all on lazyfs): every
  generated line ends up in exactly one document; the agent resent only lines its durable registry had
  not yet passed, and skipped none.

Each run draws its moment of failure from a seed, printed first, so a failure can be replayed with
LOGPIPE_POWER_LOSS_SEED=<seed>. LOGPIPE_POWER_LOSS_RUNS sets the number of runs (5 here; scripts/soak.sh
runs 50 and prints the table).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import ConfigResource

from appliance_support import ACCESS_SEQ_RE, ERROR_SEQ_RE, ApplianceProcess, free_port
from lazyfs_support import LazyFs
from support import (HOST, Broker, admin, check_contiguous, child_cmd, consumer_conf, create_topic,
                     read_topic, topic_partitions, wait_until)

pytestmark = pytest.mark.power_loss

RUNS = int(os.environ.get("LOGPIPE_POWER_LOSS_RUNS", "5"))
PARTITIONS = 3
GROUP = "power-loss-group"
TOPIC_CONFIG = {"retention.ms": "86400000", "max.message.bytes": "500000"}
# Where soak.sh collects one JSON line per run for its table.
RESULTS = os.environ.get("LOGPIPE_POWER_LOSS_RESULTS")


def seeds() -> list[int]:
    if os.environ.get("LOGPIPE_POWER_LOSS_SEED"):
        return [int(os.environ["LOGPIPE_POWER_LOSS_SEED"])]
    base = random.SystemRandom().randrange(1, 1 << 31)
    return [base + i for i in range(RUNS)]


def record_result(kind: str, seed: int, **fields) -> None:
    line = json.dumps({"test": kind, "seed": seed, **fields})
    print(line)
    if RESULTS:
        with open(RESULTS, "a") as f:
            f.write(line + "\n")


@pytest.fixture
def lazyfs(tmp_path, request):
    mounts: list[LazyFs] = []

    def make(name: str) -> LazyFs:
        fs = LazyFs(tmp_path / name, tmp_path / f"{name}.lazyfs.log")
        mounts.append(fs)
        return fs.start()

    yield make
    for fs in mounts:
        fs.close()


# --------------------------------------------------------------------------------------------
# The broker


def value_of(seq: int) -> bytes:
    return f"{seq:08d}|".encode() + b"p" * 200


class GroupCommitter(threading.Thread):
    """A consumer of the group that commits what it read, synchronously, every few hundred records.
    Remembers every value it was served and the last commit the broker acknowledged per partition."""

    def __init__(self, bootstrap: str, topic: str):
        super().__init__(daemon=True)
        self.consumer = Consumer(consumer_conf(bootstrap, GROUP, **{
            "check.crcs": True, "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
            "socket.timeout.ms": 5000}))
        self.topic = topic
        self.stop_flag = threading.Event()
        self.seen: set[bytes] = set()
        self.acked_commits: dict[int, int] = {}
        self.attempted: dict[int, int] = {}
        self.error: str | None = None

    def run(self) -> None:
        c = self.consumer
        c.assign([TopicPartition(self.topic, p, 0) for p in range(PARTITIONS)])
        position: dict[int, int] = {}
        since = 0
        try:
            while not self.stop_flag.is_set():
                for m in c.consume(num_messages=500, timeout=0.2):
                    if m.error() is not None:
                        if m.error().code() == KafkaError._PARTITION_EOF:
                            continue
                        if m.error().code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN):
                            continue
                        self.error = str(m.error())
                        return
                    self.seen.add(m.value())
                    position[m.partition()] = m.offset() + 1
                    since += 1
                if since >= 300 and not self.stop_flag.is_set():
                    since = 0
                    offsets = [TopicPartition(self.topic, p, o) for p, o in position.items()]
                    self.attempted.update(position)
                    try:
                        done = c.commit(offsets=offsets, asynchronous=False)
                    except KafkaException:
                        continue
                    for tp in done or []:
                        if tp.error is None:
                            self.acked_commits[tp.partition] = tp.offset
        except KafkaException as e:
            self.error = str(e)

    def finish(self) -> None:
        self.stop_flag.set()
        self.join(timeout=60)
        if not self.is_alive():
            self.consumer.close()


def committed_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    c = Consumer(consumer_conf(bootstrap, GROUP))
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=30)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()


def topic_config(bootstrap: str, topic: str) -> dict[str, str]:
    client = admin(bootstrap)
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    entries = client.describe_configs([res])[res].result(timeout=30)
    return {k: v.value for k, v in entries.items()}


def broker_run(seed: int, tmp_path: Path, lazyfs, logpipe_bin: Path) -> dict:
    rng = random.Random(seed)
    fs = lazyfs(f"mnt-broker-{seed}")
    workdir = tmp_path / f"broker-{seed}"
    workdir.mkdir()
    # Small segments: a run crosses many segment rolls (new files, producer snapshots, directory syncs).
    broker = Broker(logpipe_bin, workdir, {"log_dirs": str(fs.mountpoint / "broker"), "log_segment_bytes": 65536})
    # The broker creates its own log dir, as on a fresh install (the harness would otherwise mkdir it,
    # unsynced): making that directory durable is part of what is tested.
    broker.log_dirs = fs.mountpoint
    broker.start()
    try:
        return broker_power_cut(rng, seed, broker, fs)
    except BaseException:
        print(broker.stderr_tail(80))
        raise
    finally:
        broker.close()


class AckedProducer:
    """An idempotent acks=all producer that remembers (partition, offset) of every acknowledged value."""

    def __init__(self, bootstrap: str, linger_ms: int):
        self.producer = Producer({
            "bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": linger_ms,
            "message.timeout.ms": 120000, "queue.buffering.max.messages": 20000, "retry.backoff.ms": 100,
            # Batches must fit the small segments.
            "batch.size": 16384})
        self.acked: dict[bytes, tuple[int, int]] = {}
        self.errors: list[str] = []

    def on_delivery(self, err, msg) -> None:
        if err is None:
            self.acked[msg.value()] = (msg.partition(), msg.offset())
        else:
            self.errors.append(f"{err.name()}: {err.str()}")

    def produce(self, topic: str, seq: int) -> bool:
        try:
            self.producer.produce(topic, value_of(seq), partition=seq % PARTITIONS, on_delivery=self.on_delivery)
        except BufferError:
            self.producer.poll(0.01)
            return False
        self.producer.poll(0)
        return True


def broker_power_cut(rng: random.Random, seed: int, broker: Broker, fs: LazyFs) -> dict:
    topic = "records"
    create_topic(broker.bootstrap, topic, PARTITIONS, config=TOPIC_CONFIG)
    kill_at = rng.randint(300, 6000)  # acknowledged records before the power cut
    second_topic_at = rng.randint(0, kill_at)
    producer = AckedProducer(broker.bootstrap, rng.choice([0, 2, 10]))
    group = GroupCommitter(broker.bootstrap, topic)
    group.start()
    try:
        return produce_cut_check(broker, fs, topic, kill_at, second_topic_at, producer, group)
    finally:
        producer.producer.purge(in_queue=True, in_flight=True, blocking=False)
        if group.is_alive():
            group.finish()


def produce_cut_check(broker: Broker, fs: LazyFs, topic: str, kill_at: int, second_topic_at: int,
                      producer: AckedProducer, group: GroupCommitter) -> dict:
    acked, errors, p = producer.acked, producer.errors, producer.producer
    second_topic = None
    seq = 0
    deadline = time.monotonic() + 180
    t_start = time.monotonic()
    while len(acked) < kill_at:
        assert time.monotonic() < deadline, f"only {len(acked)} acknowledged"
        assert not errors, errors[:3]
        if second_topic is None and len(acked) >= second_topic_at:
            second_topic = "created-mid-run"
            create_topic(broker.bootstrap, second_topic, 2, config={"retention.ms": "7200000"})
        if producer.produce(topic, seq):
            seq += 1
    # The power cut, with batches queued and in flight and a commit maybe on the wire.
    group.stop_flag.set()
    print(f"  {len(acked)} acknowledged in {time.monotonic() - t_start:.1f}s; power cut")
    broker.kill9()
    acked_at_cut = dict(acked)
    seen_at_cut = set(group.seen)
    commits_at_cut = dict(group.acked_commits)
    dropped = fs.drop()
    broker.restart()
    t0 = time.monotonic()

    # The same idempotent producer resends what was in flight: nothing may be stored twice.
    remaining = p.flush(120)
    assert remaining == 0, f"{remaining} records never delivered after the restart"
    assert not errors, f"delivery errors after the restart: {errors[:5]}"
    print(f"  producer flushed {time.monotonic() - t0:.1f}s after the restart")
    group.finish()
    print(f"  group consumer stopped {time.monotonic() - t0:.1f}s after the restart")
    assert group.error is None, f"the group's consumer failed: {group.error}"

    assert topic_partitions(broker.bootstrap, topic) == list(range(PARTITIONS)), "topic lost"
    config = topic_config(broker.bootstrap, topic)
    assert {k: config.get(k) for k in TOPIC_CONFIG} == TOPIC_CONFIG, f"topic configs lost: {config}"
    if second_topic is not None:
        assert topic_partitions(broker.bootstrap, second_topic) == [0, 1], "a topic created before the cut is lost"
        assert topic_config(broker.bootstrap, second_topic).get("retention.ms") == "7200000"

    got = read_topic(broker.bootstrap, topic)
    check_contiguous(got)
    records = [r for recs in got.values() for r in recs]
    counts = Counter(r.value for r in records)
    dupes = [v[:8] for v, n in counts.items() if n > 1]
    assert not dupes, f"{len(dupes)} records stored twice (idempotent retries across the cut), e.g. {dupes[:3]}"
    produced = {value_of(s) for s in range(seq)}
    unknown = [v[:20] for v in counts if v not in produced]
    assert not unknown, f"records nobody produced (torn or corrupt?): {unknown[:3]}"
    at = {(r.partition, r.offset): r.value for r in records}
    lost = [v[:8] for v, pos in acked_at_cut.items() if at.get(pos) != v]
    assert not lost, f"{len(lost)} records acknowledged before the cut lost or moved, e.g. {lost[:5]}"
    unserved = [v[:8] for v in seen_at_cut if v not in counts]
    assert not unserved, f"{len(unserved)} records a consumer was served before the cut are gone: {unserved[:5]}"
    assert set(acked) == produced, "every produced record is delivered in the end"

    committed = committed_offsets(broker.bootstrap, topic)
    for part, offset in commits_at_cut.items():
        assert committed.get(part, -1) >= offset, \
            f"partition {part}: commit of {offset} was acknowledged before the cut, now {committed.get(part)}"
    return {"acked_at_cut": len(acked_at_cut), "produced": seq, "commits": len(commits_at_cut),
            "second_topic": second_topic is not None, "drop": dropped}


@pytest.mark.timeout(300 + 120 * RUNS)
def test_broker_survives_power_cuts(lazyfs, tmp_path, logpipe_bin):
    for seed in seeds():
        print(f"broker power-loss run, seed {seed} (replay: LOGPIPE_POWER_LOSS_SEED={seed})")
        try:
            outcome = broker_run(seed, tmp_path, lazyfs, logpipe_bin)
        except BaseException as e:
            record_result("broker", seed, ok=False, error=str(e).splitlines()[0][:200])
            raise AssertionError(f"seed {seed}: {e}") from e
        record_result("broker", seed, ok=True, **outcome)


# --------------------------------------------------------------------------------------------
# The appliance: broker, agent registry and file output on lazyfs


def appliance_pipeline(port: int, data: Path, logs: Path) -> str:
    q = json.dumps
    return f"""\
[broker]
listeners = [{q(f"{HOST}:{port}")}]
log_dirs = {q(str(data / "broker"))}
num_partitions = 3
group_initial_rebalance_delay_ms = 0
log_segment_bytes = 262144

[admin]
address = {q(f"{HOST}:0")}

[agent]
registry = {q(str(data / "agent" / "registry.json"))}
host_name = "power-loss"
registry_flush = "200ms"

[agent.output]
brokers = [{q(f"{HOST}:{port}")}]
topic = "nginx"
acks = "all"

[[agent.inputs]]
type = "file"
paths = [{q(str(logs / "access.log"))}]
tags = ["access"]
scan_frequency = "1s"

[[agent.inputs]]
type = "file"
paths = [{q(str(logs / "error.log"))}]
tags = ["error"]
scan_frequency = "1s"
multiline = {{ pattern = '^\\d{{4}}/\\d{{2}}/\\d{{2}} ', negate = true, match = "after" }}

[indexer.input]
brokers = [{q(f"{HOST}:{port}")}]
topics = ["nginx"]
group_id = "logpipe-indexer"
group_instance_id = "power-loss-indexer"
auto_offset_reset = "earliest"
librdkafka = {{ "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "500" }}

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

[indexer.output.file]
path = {q(str(data / "indices"))}
"""


def output_seqs(indices: Path) -> dict[int, list[str]]:
    """seq -> the `_id`s of every document holding line `seq`, over all NDJSON files."""
    where: dict[int, list[str]] = defaultdict(list)
    for path in sorted(indices.glob("*.ndjson")):
        seq_re = ACCESS_SEQ_RE if path.name.startswith("nginx_access-") else ERROR_SEQ_RE
        with open(path, "rb") as f:
            for line in f:
                m = seq_re.search(line)
                doc_id = json.loads(line)["_id"]
                assert m, f"{path.name}: a document without a line number: {line[:200]!r}"
                where[int(m.group(1) or m.group(2))].append(doc_id)
    return where


def lines_written(logs: Path) -> int:
    n = 0
    for name in ("access.log", "error.log"):
        try:
            with open(logs / name, "rb") as f:
                n += sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        except FileNotFoundError:
            pass
    return n


def topic_events(bootstrap: str) -> list[dict]:
    got = read_topic(bootstrap, "nginx")
    return [json.loads(r.value) for recs in got.values() for r in recs]


def appliance_run(seed: int, tmp_path: Path, lazyfs, logpipe_bin: Path, nginx_gen) -> dict:
    rng = random.Random(seed)
    fs = lazyfs(f"mnt-appliance-{seed}")
    data = fs.mountpoint / "data"
    logs = tmp_path / f"logs-{seed}"
    logs.mkdir()
    lines = rng.randint(5000, 20000)
    rate = rng.choice([2000, 5000, 10000])
    app = ApplianceProcess(logpipe_bin, tmp_path / f"appliance-{seed}", appliance_pipeline(free_port(), data, logs),
                           child_cmd)
    gen = None
    try:
        app.start()
        gen = nginx_gen(logs, tmp_path / f"summary-{seed}.json", "--rate", str(rate), "--lines", str(lines))
        # The cut comes at a random moment of the stream: once the generator has written this many lines.
        cut_line = rng.randint(lines // 20, lines)
        wait_until(lambda: lines_written(logs) >= cut_line, 120, f"{cut_line} lines written", procs=[app])
        app.kill9()
        dropped = fs.drop()
        registry_at_cut = {Path(e["path"]).name: e["offset"] for e in _registry(data / "agent" / "registry.json")}
        app.start()
        summary = gen.wait(timeout=120)
        total = summary["total"]
        where = wait_until(lambda: (w := output_seqs(data / "indices")) and len(w) >= total and w, 180,
                           lambda: f"all {total} lines in the file output (have {len(output_seqs(data / 'indices'))})",
                           interval=0.5, procs=[app])
        assert app.broker_address
        events = topic_events(app.broker_address)
    except BaseException:
        print(app.stderr_tail(80))
        raise
    finally:
        app.close()
        if gen is not None:
            gen.close()

    missing = [s for s in range(1, total + 1) if s not in where]
    assert not missing, f"{len(missing)} lines never indexed, e.g. {missing[:10]}"
    doubled = {s: ids for s, ids in where.items() if len(ids) > 1}
    assert not doubled, f"{len(doubled)} lines in more than one document, e.g. {list(doubled.items())[:3]}"
    per_id = Counter(e["event"]["id"] for e in events)
    resent = [e for e in events if per_id[e["event"]["id"]] > 1]
    early = [(e["log"]["file"]["path"], e["log"]["offset"]) for e in resent
             if e["log"]["offset"] < registry_at_cut.get(Path(e["log"]["file"]["path"]).name, 0)]
    assert not early, (f"the agent resent {len(early)} events its durable registry had already passed, "
                       f"e.g. {early[:5]} (registry at the cut: {registry_at_cut})")
    return {"lines": total, "cut_at_line": cut_line, "resent_events": len(resent) - len(set(e["event"]["id"] for e in resent)),
            "registry_at_cut": registry_at_cut, "drop": dropped}


def _registry(path: Path) -> list[dict]:
    try:
        return json.loads(path.read_text())["entries"]
    except FileNotFoundError:
        return []


@pytest.mark.timeout(300 + 200 * RUNS)
def test_appliance_survives_power_cuts(lazyfs, tmp_path, logpipe_bin, nginx_gen):
    for seed in seeds():
        print(f"appliance power-loss run, seed {seed} (replay: LOGPIPE_POWER_LOSS_SEED={seed})")
        try:
            outcome = appliance_run(seed, tmp_path, lazyfs, logpipe_bin, nginx_gen)
        except BaseException as e:
            record_result("appliance", seed, ok=False, error=str(e).splitlines()[0][:200])
            raise AssertionError(f"seed {seed}: {e}") from e
        record_result("appliance", seed, ok=True, **outcome)
