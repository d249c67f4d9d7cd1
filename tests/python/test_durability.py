"""Crash and restart. An acks=all produce is acknowledged only after fsync, so a kill -9 in the
middle of a stream must keep every acknowledged record, exactly once, at the offset the broker
acknowledged. Unacknowledged records may or may not be there."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from confluent_kafka import Producer

from support import (check_contiguous, create_topic, produce, producer_conf, read_topic,
                     topic_partitions, unique, wait_until, watermarks)

PARTITIONS = 3


def value_of(seq: int) -> bytes:
    return f"{seq:08d}|".encode() + b"d" * 150


def produce_until_killed(broker, topic: str, first_seq: int, acked_before_kill: int,
                         sent_after_kill: int = 2000, timeout: float = 180) -> tuple[dict, int]:
    """Stream acks=all records; once `acked_before_kill` are acknowledged, kill -9 the broker and
    keep sending `sent_after_kill` more into the dead connection. Then drop everything unsent.
    Returns ({value: (partition, offset)} for every acknowledged record, next sequence number)."""
    p = Producer(producer_conf(broker.bootstrap, **{
        "acks": "all", "linger.ms": 2, "request.timeout.ms": 30000,
        "queue.buffering.max.messages": 20000,
    }))
    acked: dict[bytes, tuple[int, int]] = {}
    failed: list[str] = []

    def on_delivery(err, msg):
        if err is None:
            acked[msg.value()] = (msg.partition(), msg.offset())
        else:
            failed.append(err.name())

    seq = first_seq
    killed = False
    after = 0
    deadline = time.monotonic() + timeout
    while after < sent_after_kill:
        assert time.monotonic() < deadline, f"only {len(acked)} acknowledged before the deadline"
        try:
            p.produce(topic, value_of(seq), partition=seq % PARTITIONS, on_delivery=on_delivery)
        except BufferError:
            if killed:
                break  # the local queue is full of records for the dead broker
            p.poll(0.01)
            continue
        seq += 1
        p.poll(0)
        if killed:
            after += 1
        elif len(acked) >= acked_before_kill:
            broker.kill9()  # the producer still has batches queued and in flight
            killed = True
    # Nothing may be acknowledged by a broker we have not restarted yet: purge what is left,
    # and serve the remaining delivery reports (acks that arrived before the kill count).
    p.purge(in_queue=True, in_flight=True, blocking=True)
    p.flush(30)
    assert not broker.alive()
    return acked, seq


def check_acked_present(bootstrap: str, topic: str, acked: dict[bytes, tuple[int, int]], produced_upto: int):
    got = read_topic(bootstrap, topic)
    check_contiguous(got)
    records = [r for recs in got.values() for r in recs]
    counts = Counter(r.value for r in records)
    dupes = [v for v, n in counts.items() if n > 1]
    assert not dupes, f"{len(dupes)} records stored twice, e.g. {dupes[:3]}"
    known = {value_of(s) for s in range(produced_upto)}
    assert set(counts) <= known, "records nobody produced (corrupt or torn?)"
    at = {(r.partition, r.offset): r.value for r in records}
    missing = [v for v in acked if v not in counts]
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {missing[:3]}"
    moved = [(v, pos) for v, pos in acked.items() if at.get(pos) != v]
    assert not moved, f"{len(moved)} acknowledged records not at their acknowledged offset, e.g. {moved[:3]}"
    for p, recs in got.items():
        seqs = [int(r.value[:8]) for r in recs]
        assert seqs == sorted(seqs), f"partition {p}: order not kept"
    return got


@pytest.mark.timeout(600)
def test_kill9_mid_stream_keeps_every_acknowledged_record(broker):
    topic = unique("crash")
    create_topic(broker.bootstrap, topic, PARTITIONS)

    acked: dict[bytes, tuple[int, int]] = {}
    seq = 0
    for round_ in range(2):
        got, seq = produce_until_killed(broker, topic, seq, acked_before_kill=20_000)
        acked.update(got)
        broker.restart()
        assert topic_partitions(broker.bootstrap, topic) == list(range(PARTITIONS)), \
            f"round {round_}: topic metadata not recovered"
        check_acked_present(broker.bootstrap, topic, acked, seq)

    # The recovered log takes appends at its end, and they read back after the existing records.
    before = read_topic(broker.bootstrap, topic)
    ends = {p: watermarks(broker.bootstrap, topic, p)[1] for p in range(PARTITIONS)}
    extra = [{"value": value_of(s), "partition": s % PARTITIONS} for s in range(seq, seq + 3000)]
    delivered = produce(broker.bootstrap, topic, extra)
    assert all(d.offset >= ends[d.partition] for d in delivered)
    after = check_acked_present(broker.bootstrap, topic, acked, seq + 3000)
    assert sum(len(v) for v in after.values()) == sum(len(v) for v in before.values()) + 3000


def test_sigterm_is_a_clean_shutdown(broker):
    topic = unique("sigterm")
    create_topic(broker.bootstrap, topic, PARTITIONS, config={"retention.ms": "604800000"})
    sent = [{"value": value_of(s), "partition": s % PARTITIONS} for s in range(10_000)]
    delivered = produce(broker.bootstrap, topic, sent)

    assert broker.stop() == 0, f"SIGTERM exit code\n{broker.stderr_tail()}"
    broker.restart()
    got = read_topic(broker.bootstrap, topic)
    check_contiguous(got)
    at = {(r.partition, r.offset): r.value for recs in got.values() for r in recs}
    assert len(at) == len(sent)
    assert all(at[(d.partition, d.offset)] == d.value for d in delivered)

    # Restart again without traffic in between: recovery is idempotent.
    assert broker.stop() == 0
    broker.restart()
    assert read_topic(broker.bootstrap, topic) == got


def test_kill9_right_after_topic_creation_keeps_the_topic(broker):
    topic = unique("crash-create")
    create_topic(broker.bootstrap, topic, 5)
    broker.kill9()
    broker.restart()
    wait_until(lambda: topic_partitions(broker.bootstrap, topic) == [0, 1, 2, 3, 4], 30,
               "the topic after kill -9 and restart")
    produce(broker.bootstrap, topic, [{"value": b"after", "partition": 4}])
    assert [r.value for r in read_topic(broker.bootstrap, topic)[4]] == [b"after"]
