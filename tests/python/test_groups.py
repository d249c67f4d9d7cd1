"""Consumer groups: the group coordinator seen through librdkafka, kafka-python and the
`logpipe groups` tool. Select with `-m groups`, skip with `-m "not groups"`.

Multi-member tests run each member as a subprocess (group_member.py) so a member can be killed
with SIGKILL like a crashed application; everything waits by polling with deadlines.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import datetime, timezone

import pytest
from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, TopicPartition
from kafka import KafkaConsumer
from kafka.errors import NoOffsetForPartitionError

from members import stable_split
from support import (TRANSIENT, Cli, consumer_conf, create_topic, parse_table, produce, unique, wait_until,
                     watermarks)

pytestmark = pytest.mark.groups

N = 60_000
PARTITIONS = 6
# librdkafka may surface OFFSET_OUT_OF_RANGE as an event while it applies auto.offset.reset.
OUT_OF_RANGE = frozenset({KafkaError.OFFSET_OUT_OF_RANGE})


def seq_value(i: int) -> bytes:
    return f"{i:06d}".encode()


def produce_seq(bootstrap: str, topic: str, start: int, stop: int, partitions: int = PARTITIONS, **conf):
    return produce(bootstrap, topic, [{"value": seq_value(i), "partition": i % partitions}
                                      for i in range(start, stop)], **conf)


def committed(bootstrap: str, group: str, topic: str, partitions) -> dict[int, int]:
    """OffsetFetch for a group, from a consumer that does not join it."""
    c = Consumer(consumer_conf(bootstrap, group=group))
    try:
        tps = c.committed([TopicPartition(topic, p) for p in partitions], timeout=30)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()


def consume_in_group(c: Consumer, want: int, timeout: float = 120,
                     allow: frozenset = frozenset()) -> list[tuple[int, int, bytes]]:
    """Poll a subscribed consumer until it returned `want` records. Fails on error events other
    than transient ones and those in `allow`."""
    got: list[tuple[int, int, bytes]] = []
    deadline = time.monotonic() + timeout
    while len(got) < want:
        assert time.monotonic() < deadline, f"consumed {len(got)}/{want} within {timeout}s"
        for m in c.consume(num_messages=min(1000, want - len(got)), timeout=0.2):
            err = m.error()
            if err is not None:
                assert err.code() in TRANSIENT or err.code() in allow, f"consumer error: {err}"
                continue
            got.append((m.partition(), m.offset(), m.value()))
    return got


def assert_partition_order(records) -> None:
    """Within each partition: offsets strictly increase and values follow the producer's order."""
    by_p: dict[int, list[tuple[int, int]]] = {}
    for p, o, v in records:
        by_p.setdefault(p, []).append((o, int(v)))
    for p, rows in by_p.items():
        offs = [o for o, _ in rows]
        assert offs == sorted(set(offs)), f"partition {p}: offsets out of order or repeated"
        seqs = [s for _, s in rows]
        assert seqs == sorted(seqs), f"partition {p}: producer order not kept"


# -------------------------------------------------------------------------------------------
# Queue and publish/subscribe semantics


@pytest.mark.timeout(600)
def test_queue_semantics_two_members_split_the_partitions(broker, members):
    topic = unique("g-queue")
    group = unique("queue")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    a = members.start("a", broker.bootstrap, group, topic, commit_every=5000)
    b = members.start("b", broker.bootstrap, group, topic, commit_every=5000)
    split = wait_until(lambda: stable_split([a, b], PARTITIONS), 120,
                       "two members with disjoint assignments covering all partitions")

    produce_seq(broker.bootstrap, topic, 0, N)

    wait_until(lambda: len(a.refresh().records) + len(b.refresh().records) >= N, 300,
               f"{N} records consumed by the group")
    assert stable_split([a, b], PARTITIONS) == split, "the group rebalanced while consuming"

    values = a.log.values() + b.log.values()
    counts = Counter(values)
    assert len(values) == N and set(counts.values()) == {1}, "each record exactly once across the group"
    assert {int(v) for v in values} == set(range(N))
    pa = {p for p, _, _ in a.log.records}
    pb = {p for p, _, _ in b.log.records}
    assert not pa & pb, f"both members consumed partitions {pa & pb}"
    assert pa <= split[0] and pb <= split[1]
    assert_partition_order(a.log.records)
    assert_partition_order(b.log.records)

    assert a.stop() == 0 and b.stop() == 0
    end = N // PARTITIONS
    assert committed(broker.bootstrap, group, topic, range(PARTITIONS)) == {p: end for p in range(PARTITIONS)}


@pytest.mark.timeout(600)
def test_publish_subscribe_each_group_sees_everything(broker, members):
    topic = unique("g-pubsub")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    produce_seq(broker.bootstrap, topic, 0, N)

    g1 = members.start("g1", broker.bootstrap, unique("pubsub-1"), topic, commit_every=5000)
    g2 = members.start("g2", broker.bootstrap, unique("pubsub-2"), topic, commit_every=5000)
    wait_until(lambda: len(g1.refresh().records) >= N and len(g2.refresh().records) >= N, 300,
               f"both groups consumed {N} records")
    for m in (g1, g2):
        values = m.log.values()
        assert len(values) == N and Counter(values) == Counter(v.decode() for v in map(seq_value, range(N)))
        assert_partition_order(m.log.records)


# -------------------------------------------------------------------------------------------
# Failover and resume


@pytest.mark.timeout(600)
def test_failover_after_member_is_killed(broker, members):
    """kill -9 a member (no LeaveGroup): after session.timeout.ms its partitions move to the
    survivor, which resumes them at the dead member's last committed offsets: nothing is skipped."""
    topic = unique("g-failover")
    group = unique("failover")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    opts = dict(session_timeout_ms=6000, heartbeat_interval_ms=1000, commit_every=500)
    a = members.start("a", broker.bootstrap, group, topic, **opts)
    b = members.start("b", broker.bootstrap, group, topic, **opts)
    a_parts, _ = wait_until(lambda: stable_split([a, b], PARTITIONS), 120, "a stable two-member group")

    half = N // 2
    produce_seq(broker.bootstrap, topic, 0, half)
    wait_until(lambda: len(a.refresh().records) + len(b.refresh().records) >= half, 300,
               "the first half consumed")
    assert a.log.commits, "member a never committed"

    # Stream the second half and kill a while records are flowing to it.
    producer_error: list[BaseException] = []

    def stream():
        try:
            for start in range(half, N, 1000):
                produce_seq(broker.bootstrap, topic, start, start + 1000)
        except BaseException as exc:  # surfaced below
            producer_error.append(exc)

    t = threading.Thread(target=stream, daemon=True)
    t.start()
    wait_until(lambda: any(int(v) >= half for v in a.refresh().values()), 120,
               "member a consuming the second half")
    a.kill9()
    a_log = a.refresh()

    t.join(timeout=300)
    assert not t.is_alive() and not producer_error, producer_error

    def all_consumed():
        seen = {int(v) for v in a_log.values()} | {int(v) for v in b.refresh().values()}
        return b.log.assignment == set(range(PARTITIONS)) and len(seen) == N

    try:
        wait_until(all_consumed, 300, "member b owning every partition and every record consumed")
    except TimeoutError:
        seen = {int(v) for v in a_log.values()} | {int(v) for v in b.refresh().values()}
        raise AssertionError(f"b assignment {sorted(b.log.assignment)}, {N - len(seen)} records never consumed")

    b_by_p = b.log.by_partition()
    a_by_p = a_log.by_partition()
    for p in a_parts:
        took_over_at = b_by_p[p][0]
        last_commit = a_log.commits.get(p, 0)
        a_end = max(a_by_p.get(p, [-1])) + 1
        assert last_commit <= took_over_at, \
            f"partition {p}: b re-read committed records (started {took_over_at}, a committed {last_commit})"
        assert took_over_at <= a_end, \
            f"partition {p}: b started at {took_over_at} but a had only consumed up to {a_end}: records skipped"
    for p, offs in b_by_p.items():
        for x, y in zip(offs, offs[1:]):
            assert y <= x + 1, f"partition {p}: b skipped from {x} to {y}"


@pytest.mark.parametrize("restart_broker", [False, True], ids=["member-restart", "broker-kill9-restart"])
def test_resume_from_committed_offset(broker, restart_broker):
    topic = unique("g-resume")
    group = unique("resume")
    create_topic(broker.bootstrap, topic, 3)
    total = 3000
    produce_seq(broker.bootstrap, topic, 0, total, partitions=3)

    c1 = Consumer(consumer_conf(broker.bootstrap, group=group))
    try:
        c1.subscribe([topic])
        first = consume_in_group(c1, 1000)
        last = {}
        for p, o, _ in first:
            last[p] = max(o, last.get(p, -1))
        commit = [TopicPartition(topic, p, o + 1) for p, o in sorted(last.items())]
        c1.commit(offsets=commit, asynchronous=False)
    finally:
        c1.close()
    want = {p: last.get(p, -1) + 1 for p in range(3)}
    assert {p: o for p, o in committed(broker.bootstrap, group, topic, range(3)).items() if p in last} == \
        {p: want[p] for p in last}

    if restart_broker:
        broker.kill9()
        broker.restart()
        assert {p: o for p, o in committed(broker.bootstrap, group, topic, range(3)).items() if p in last} == \
            {p: want[p] for p in last}, "committed offsets lost by kill -9"

    c2 = Consumer(consumer_conf(broker.bootstrap, group=group))
    try:
        c2.subscribe([topic])
        rest = consume_in_group(c2, total - sum(want.values()))
    finally:
        c2.close()

    firsts = {}
    for p, o, _ in rest:
        firsts.setdefault(p, o)
    for p, o in firsts.items():
        assert o == want[p], f"partition {p}: resumed at {o}, committed {want[p]}"
    kept = [(p, o) for p, o, _ in first if o < want[p]]
    both = Counter(kept + [(p, o) for p, o, _ in rest])
    assert len(both) == total and set(both.values()) == {1}, "each record exactly once across the restart"


# -------------------------------------------------------------------------------------------
# auto.offset.reset for a group without committed offsets


def new_group_consumer(bootstrap: str, topic: str, reset: str) -> tuple[Consumer, threading.Event]:
    assigned = threading.Event()
    c = Consumer(consumer_conf(bootstrap, group=unique(f"reset-{reset}"), **{"auto.offset.reset": reset}))
    c.subscribe([topic], on_assign=lambda _c, parts: assigned.set())
    return c, assigned


def test_new_group_earliest(broker):
    topic = unique("g-earliest")
    create_topic(broker.bootstrap, topic, 1)
    produce_seq(broker.bootstrap, topic, 0, 100, partitions=1)
    c, _ = new_group_consumer(broker.bootstrap, topic, "earliest")
    try:
        assert [o for _, o, _ in consume_in_group(c, 100)] == list(range(100))
    finally:
        c.close()


def test_new_group_latest(broker):
    topic = unique("g-latest")
    create_topic(broker.bootstrap, topic, 1)
    produce_seq(broker.bootstrap, topic, 0, 100, partitions=1)
    c, assigned = new_group_consumer(broker.bootstrap, topic, "latest")
    try:
        seen: list[tuple[int, int, bytes]] = []

        def marker_arrived():
            produce(broker.bootstrap, topic, [{"value": b"marker", "partition": 0}])
            for m in c.consume(num_messages=100, timeout=1):
                if m.error() is None:
                    seen.append((m.partition(), m.offset(), m.value()))
            return assigned.is_set() and bool(seen)

        wait_until(marker_arrived, 120, "a marker produced after the group joined")
        assert all(v == b"marker" and o >= 100 for _, o, v in seen), seen[:5]
    finally:
        c.close()


def test_new_group_reset_error(broker):
    topic = unique("g-error")
    create_topic(broker.bootstrap, topic, 1)
    produce_seq(broker.bootstrap, topic, 0, 10, partitions=1)
    c, _ = new_group_consumer(broker.bootstrap, topic, "error")
    try:
        errors, msgs = [], []

        def reset_error():
            for m in c.consume(num_messages=10, timeout=0.5):
                (msgs if m.error() is None else errors).append(m)
            return any(m.error().code() == KafkaError._AUTO_OFFSET_RESET for m in errors)

        wait_until(reset_error, 120, "an _AUTO_OFFSET_RESET error event")
        assert not msgs
    finally:
        c.close()


def test_new_group_kafka_python_reset_none(broker):
    topic = unique("g-none")
    create_topic(broker.bootstrap, topic, 1)
    produce_seq(broker.bootstrap, topic, 0, 10, partitions=1)
    c = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=unique("kp-none"),
                      auto_offset_reset="none", enable_auto_commit=False)
    try:
        def raised():
            try:
                c.poll(timeout_ms=500)
            except NoOffsetForPartitionError:
                return True
            return False

        wait_until(raised, 120, "NoOffsetForPartitionError from kafka-python")
    finally:
        c.close()


def test_kafka_python_group_member_commits(broker):
    """kafka-python's own coordinator client (JoinGroup/SyncGroup/Heartbeat/OffsetCommit)."""
    topic = unique("g-kp")
    group = unique("kp-group")
    create_topic(broker.bootstrap, topic, 3)
    produce_seq(broker.bootstrap, topic, 0, 3000, partitions=3)
    c = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=group,
                      auto_offset_reset="earliest", enable_auto_commit=False)
    try:
        got = []
        deadline = time.monotonic() + 120
        while len(got) < 3000:
            assert time.monotonic() < deadline, f"kafka-python group consumed {len(got)}/3000"
            for batch in c.poll(timeout_ms=500).values():
                got.extend((r.partition, r.offset, r.value) for r in batch)
        c.commit()
    finally:
        c.close()
    assert len(got) == 3000 and len(set(got)) == 3000
    assert committed(broker.bootstrap, group, topic, range(3)) == {0: 1000, 1: 1000, 2: 1000}


# -------------------------------------------------------------------------------------------
# Committed offsets that fell out of retention


@pytest.mark.timeout(300)
def test_committed_offset_below_log_start_resets_to_log_start(broker_factory):
    broker = broker_factory(log_retention_check_interval_ms=200)
    topic = unique("g-retention")
    group = unique("retention")
    # Tiny segments so old records sit in closed segments; retention by record timestamp (1 h).
    create_topic(broker.bootstrap, topic, 1, config={"segment.bytes": "16384", "retention.ms": "3600000"})
    old = int(time.time() * 1000) - 2 * 3_600_000
    produce(broker.bootstrap, topic,
            [{"value": f"{i:06d}".encode() + b"o" * 200, "timestamp": old + i} for i in range(1000)],
            **{"batch.size": 4096, "linger.ms": 0})

    # Fresh records: they stay. Without them retention would empty the whole log, the active segment
    # too (as in Kafka), and leave nothing to consume.
    produce(broker.bootstrap, topic, [{"value": f"new-{i}".encode()} for i in range(200)])

    # The group commits offset 100, in the middle of what is about to expire.
    c = Consumer(consumer_conf(broker.bootstrap, group=group))
    try:
        c.subscribe([topic])
        consume_in_group(c, 1, allow=OUT_OF_RANGE)  # retention may already be at work
        c.commit(offsets=[TopicPartition(topic, 0, 100)], asynchronous=False)
    finally:
        c.close()

    wait_until(lambda: watermarks(broker.bootstrap, topic, 0)[0] > 100, 120,
               "retention moving the log start past the committed offset")
    log_start, log_end = watermarks(broker.bootstrap, topic, 0)
    assert log_start < log_end
    assert committed(broker.bootstrap, group, topic, [0]) == {0: 100}, "retention must not touch commits"

    c = Consumer(consumer_conf(broker.bootstrap, group=group, **{"auto.offset.reset": "earliest"}))
    try:
        c.subscribe([topic])
        [(_, first, _)] = consume_in_group(c, 1, allow=OUT_OF_RANGE)
    finally:
        c.close()
    assert first != log_end, "reset to latest: everything between log start and end skipped"
    # Retention keeps running (every 200 ms) while the consumer joins, so the log start it resets to
    # may have moved on since it was sampled: it lies between the two samples.
    log_start_after, _ = watermarks(broker.bootstrap, topic, 0)
    assert log_start <= first <= log_start_after < log_end, (log_start, first, log_start_after, log_end)


# -------------------------------------------------------------------------------------------
# logpipe groups list | describe | reset-offsets


def stopped_group_with_commits(broker, topic: str, group: str, commits: dict[int, int]) -> None:
    c = Consumer(consumer_conf(broker.bootstrap, group=group))
    try:
        c.subscribe([topic])
        consume_in_group(c, 1)
        c.commit(offsets=[TopicPartition(topic, p, o) for p, o in commits.items()], asynchronous=False)
    finally:
        c.close()


def test_groups_describe_lag_of_a_stopped_group(broker, logpipe_bin):
    cli = Cli(logpipe_bin, broker.bootstrap)
    topic = unique("g-lag")
    group = unique("lag")
    create_topic(broker.bootstrap, topic, 3)
    produce_seq(broker.bootstrap, topic, 0, 300, partitions=3)
    commits = {0: 10, 1: 50, 2: 100}
    stopped_group_with_commits(broker, topic, group, commits)
    produce_seq(broker.bootstrap, topic, 300, 360, partitions=3)  # the log moves on; lag grows

    assert group in {line.split()[0] for line in cli.run("groups", "list").stdout.splitlines() if line.strip()}

    rows = [r for r in parse_table(cli.run("groups", "describe", group).stdout) if r.get("TOPIC") == topic]
    assert sorted(int(r["PARTITION"]) for r in rows) == [0, 1, 2]
    for r in rows:
        p = int(r["PARTITION"])
        end = watermarks(broker.bootstrap, topic, p)[1]
        assert int(r["LAG"]) == end - commits[p], r
        if "CURRENT-OFFSET" in r:
            assert int(r["CURRENT-OFFSET"]) == commits[p], r
        if "LOG-END-OFFSET" in r:
            assert int(r["LOG-END-OFFSET"]) == end, r


def test_groups_reset_offsets(broker, logpipe_bin):
    cli = Cli(logpipe_bin, broker.bootstrap)
    topic = unique("g-reset")
    group = unique("reset")
    create_topic(broker.bootstrap, topic, 2)
    t0 = int(time.time() * 1000) - 600_000
    produce(broker.bootstrap, topic, [{"value": f"{i}".encode(), "partition": p, "timestamp": t0 + i * 1000}
                                      for p in range(2) for i in range(10)])
    stopped_group_with_commits(broker, topic, group, {0: 7, 1: 7})
    now = lambda: committed(broker.bootstrap, group, topic, range(2))  # noqa: E731

    cli.run("groups", "reset-offsets", group, "--topic", topic, "--to-earliest")  # dry run
    assert now() == {0: 7, 1: 7}, "reset-offsets without --execute changed offsets"

    cli.run("groups", "reset-offsets", group, "--topic", topic, "--to-earliest", "--execute")
    assert now() == {0: 0, 1: 0}
    cli.run("groups", "reset-offsets", group, "--topic", topic, "--to-offset", "5", "--execute")
    assert now() == {0: 5, 1: 5}
    cli.run("groups", "reset-offsets", group, "--topic", topic, "--to-latest", "--execute")
    assert now() == {0: 10, 1: 10}
    ts = datetime.fromtimestamp((t0 + 3500) / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    cli.run("groups", "reset-offsets", group, "--topic", topic, "--to-datetime", ts, "--execute")
    assert now() == {0: 4, 1: 4}


def test_cli_consume_with_group_resumes(broker, logpipe_bin):
    cli = Cli(logpipe_bin, broker.bootstrap)
    topic = unique("g-cli")
    group = unique("cli")
    create_topic(broker.bootstrap, topic, 1)
    cli.run("produce", topic, input="".join(f"{i}\n" for i in range(10)))
    args = ("consume", topic, "--group", group, "--from-beginning", "--max-messages", "5", "--timeout-ms", "30000")
    assert cli.run(*args).stdout.splitlines() == [str(i) for i in range(5)]
    assert cli.run(*args).stdout.splitlines() == [str(i) for i in range(5, 10)]
    assert committed(broker.bootstrap, group, topic, [0]) == {0: 10}


def test_no_commits_means_invalid_offset(broker):
    topic = unique("g-none-committed")
    create_topic(broker.bootstrap, topic, 2)
    assert committed(broker.bootstrap, unique("never"), topic, range(2)) == {0: OFFSET_INVALID, 1: OFFSET_INVALID}
