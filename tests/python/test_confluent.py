"""confluent-kafka (a recent librdkafka): idempotent producer, acks=all, lz4 and zstd batches,
keys, headers and timestamps, read back exactly once."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from support import check_contiguous, create_topic, produce, read_topic, unique

MESSAGES = 30_000


def message(i: int) -> dict:
    """No explicit partition: librdkafka's partitioner spreads them (by key hash when keyed)."""
    m = {"value": f"{i:07d} ".encode() + b"x" * (i % 400)}
    if i % 3:
        m["key"] = f"user-{i % 97}".encode()
    if i % 50 == 0:
        m["headers"] = [("seq", str(i).encode()), ("kind", b"header-test")]
    return m


@pytest.mark.parametrize("compression", ["lz4", "zstd"])
def test_idempotent_compressed_produce_consume(broker, compression):
    topic = unique(f"cf-{compression}")
    create_topic(broker.bootstrap, topic, 3)
    sent = [message(i) for i in range(MESSAGES)]

    delivered = produce(broker.bootstrap, topic, sent,
                        **{"enable.idempotence": True, "acks": "all", "compression.type": compression,
                           "linger.ms": 10, "batch.num.messages": 5000})

    # Every acknowledged offset is unique and inside 0..n-1 of its partition.
    assert len({(d.partition, d.offset) for d in delivered}) == MESSAGES
    got = read_topic(broker.bootstrap, topic)
    assert set(got) == {0, 1, 2}
    check_contiguous(got)
    for p, recs in got.items():
        assert not recs or recs[0].offset == 0

    records = [r for recs in got.values() for r in recs]
    assert len(records) == MESSAGES, "each message exactly once"
    assert Counter(r.value for r in records) == Counter(m["value"] for m in sent)

    # The broker serves each record at the offset it acknowledged, with key and headers intact.
    at = {(r.partition, r.offset): r for r in records}
    by_value = {m["value"]: m for m in sent}
    for d in delivered:
        r = at[(d.partition, d.offset)]
        assert r.value == d.value
        m = by_value[r.value]
        assert r.key == m.get("key")
        if "headers" in m:
            assert r.headers == m["headers"]
        else:
            assert not r.headers

    # Keyed messages: one key, one partition; per partition the producer's order is kept.
    key_parts: dict[bytes, set[int]] = {}
    for r in records:
        if r.key is not None:
            key_parts.setdefault(r.key, set()).add(r.partition)
    assert all(len(ps) == 1 for ps in key_parts.values())
    for p, recs in got.items():
        seqs = [int(r.value[:7]) for r in recs]
        assert seqs == sorted(seqs), f"partition {p}: order not kept"


def test_create_timestamps_round_trip(broker):
    topic = unique("cf-ts")
    create_topic(broker.bootstrap, topic, 1)
    base = int(time.time() * 1000) - 3_600_000  # recent: no retention setting may expire it mid-test
    produce(broker.bootstrap, topic,
            [{"value": f"{i}".encode(), "timestamp": base + i * 1000} for i in range(100)],
            **{"compression.type": "lz4"})
    got = read_topic(broker.bootstrap, topic)[0]
    # (TIMESTAMP_CREATE_TIME == 1, ms)
    assert [r.timestamp for r in got] == [(1, base + i * 1000) for i in range(100)]
