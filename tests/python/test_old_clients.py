"""Clients of the Kafka 0.9–2.x era on the same broker as current ones.

kafka-python pinned to an old `api_version` speaks what a client of that Kafka release spoke: Produce
v0–v2 with message format v0/v1 (magic 0 before 0.10, magic 1 from 0.10), Fetch v0–v3, OffsetCommit
v0–v2 and ListOffsets v0. The broker stores record batches, converting up on produce and down on fetch,
so each pair crosses in both directions: old → old, old → current (librdkafka), current → old.
Debian's kcat (librdkafka 2.0.2) keeps its codec now that Produce is advertised from v0."""

from __future__ import annotations

import subprocess
import time
from collections import Counter

import pytest
from confluent_kafka import Consumer, TopicPartition as CkTopicPartition
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from support import consumer_conf, create_topic, parse_table, produce, read_topic, unique, wait_until

# (api_version, the message format it writes, codecs kafka-python offers at that level)
LEVELS = [
    ((0, 9), 0, [None, "gzip", "lz4"]),
    ((0, 10), 1, [None, "gzip", "lz4"]),
    ((0, 10, 1), 1, [None, "gzip"]),
    ((0, 11), 2, [None, "gzip"]),
    ((1, 0), 2, [None, "lz4"]),
    ((2, 0), 2, [None, "gzip"]),
]
CASES = [(level, codec) for level, _, codecs in LEVELS for codec in codecs]
N = 500


def values(tag: str, n: int = N) -> list[bytes]:
    return [f"{i:05d} {tag}".encode() for i in range(n)]


def old_produce(bootstrap: str, api_version, topic: str, vals: list[bytes], codec=None) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, api_version=api_version, acks="all",
                             compression_type=codec, linger_ms=5, client_id=unique("old-producer"))
    try:
        futures = [producer.send(topic, key=(b"k%d" % (i % 3)) if i % 2 else None, value=v) for i, v in enumerate(vals)]
        producer.flush(timeout=60)
        for f in futures:
            f.get(timeout=30)
    finally:
        producer.close(timeout=30)


def old_consume(bootstrap: str, api_version, topic: str, partitions: list[int], expect: int,
                group: str | None = None, timeout: float = 90) -> list:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, api_version=api_version, group_id=group,
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             client_id=unique("old-consumer"))
    try:
        if group is None:
            tps = [TopicPartition(topic, p) for p in partitions]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
        else:
            consumer.subscribe([topic])
        records = []
        deadline = time.monotonic() + timeout
        while len(records) < expect:
            assert time.monotonic() < deadline, f"old consumer {api_version} read {len(records)}/{expect}"
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        if group is not None:
            consumer.commit()
        return records
    finally:
        consumer.close()


@pytest.mark.parametrize("level,codec", CASES, ids=[f"{'.'.join(map(str, l))}-{c or 'none'}" for l, c in CASES])
def test_old_producer_to_old_and_current_consumers(broker, level, codec):
    topic = unique("old")
    create_topic(broker.bootstrap, topic, 2)
    sent = values(f"v{level}")
    old_produce(broker.bootstrap, level, topic, sent, codec)

    back = old_consume(broker.bootstrap, level, topic, [0, 1], len(sent))
    assert Counter(r.value for r in back) == Counter(sent)
    for p in (0, 1):
        offsets = [r.offset for r in back if r.partition == p]
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets), f"partition {p}: {offsets[:10]}"

    current = read_topic(broker.bootstrap, topic, [0, 1])
    assert Counter(r.value for recs in current.values() for r in recs) == Counter(sent)
    keyed = [r for recs in current.values() for r in recs if r.key is not None]
    assert keyed and all(r.key in (b"k0", b"k1", b"k2") for r in keyed)


@pytest.mark.parametrize("level", [l for l, _, _ in LEVELS], ids=lambda l: ".".join(map(str, l)))
def test_current_producer_to_old_consumer(broker, level):
    topic = unique("new2old")
    create_topic(broker.bootstrap, topic, 2)
    messages = [{"value": v, "key": None} for v in values("librdkafka")]
    produce(broker.bootstrap, topic, messages, **{"compression.type": "lz4"})
    back = old_consume(broker.bootstrap, level, topic, [0, 1], len(messages))
    assert Counter(r.value for r in back) == Counter(m["value"] for m in messages)
    if level >= (0, 10):
        assert all(r.timestamp > 0 for r in back), "message format v1+ carries the producer's timestamps"


@pytest.mark.parametrize("level", [(0, 9), (0, 10), (0, 11), (2, 0)], ids=lambda l: ".".join(map(str, l)))
def test_old_consumer_group_commits(broker, cli, level):
    topic, group = unique("oldgrp"), unique("oldgroup")
    create_topic(broker.bootstrap, topic, 2)
    sent = values("grp", 200)
    old_produce(broker.bootstrap, level, topic, sent)
    back = old_consume(broker.bootstrap, level, topic, [0, 1], len(sent), group=group)
    assert Counter(r.value for r in back) == Counter(sent)

    def lag_zero():
        rows = [r for r in parse_table(cli.run("groups", "describe", group).stdout) if r.get("TOPIC") == topic]
        return rows if len(rows) == 2 and all(r["LAG"] == "0" for r in rows) else None

    rows = wait_until(lag_zero, 30, lambda: f"group {group} committed with LAG 0:\n"
                      + cli.run("groups", "describe", group, check=False).stdout)
    assert sum(int(r["CURRENT-OFFSET"]) for r in rows) == len(sent)


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_debian_kcat_keeps_its_codec(broker, codec):
    """librdkafka 2.0.2 compresses only if the broker advertises Produce from v0 (librdkafka#4956)."""
    topic = unique(f"kcat-{codec}")
    create_topic(broker.bootstrap, topic, 1)
    lines = "".join(f"{i:05d} {'compressible ' * 8}\n" for i in range(2000))
    p = subprocess.run(["kcat", "-P", "-b", broker.bootstrap, "-t", topic, "-p", "0", "-X", f"compression.codec={codec}",
                        "-X", "linger.ms=50"], input=lines, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "does not support compression" not in p.stderr, p.stderr

    consumer = Consumer(consumer_conf(broker.bootstrap))
    try:
        consumer.assign([CkTopicPartition(topic, 0, 0)])
        got = []
        deadline = time.monotonic() + 60
        while len(got) < 2000 and time.monotonic() < deadline:
            for m in consumer.consume(1000, 0.5):
                if m.error() is None:
                    got.append(m.value())
    finally:
        consumer.close()
    assert [g.decode() + "\n" for g in got] == lines.splitlines(keepends=True)

    # Stored compressed: the partition's segment is far smaller than the text.
    segments = list((broker.log_dirs / f"{topic}-0").glob("*.log"))
    stored = sum(s.stat().st_size for s in segments)
    assert stored < len(lines) / 3, f"{codec}: {stored} bytes stored for {len(lines)} bytes of text"
