"""kafka-python: a second, independent (pure Python) implementation of the protocol. It negotiates
versions through ApiVersions like librdkafka does, but encodes and parses everything itself."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType

from support import create_topic, topic_partitions, unique, wait_until

MESSAGES = 5_000


def kp_consume_all(bootstrap: str, topic: str, partitions: list[int], expect: int, timeout: float = 120):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", client_id=unique("kp-consumer"))
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records = []
        deadline = time.monotonic() + timeout
        while len(records) < expect:
            assert time.monotonic() < deadline, f"kafka-python consumed {len(records)}/{expect}"
            for batch in consumer.poll(timeout_ms=500, max_records=5000).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_kafka_python_produce_consume(broker, compression):
    topic = unique("kp")
    create_topic(broker.bootstrap, topic, 3)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=5,
                             compression_type=compression, client_id=unique("kp-producer"))
    try:
        sent = [(f"k{i % 11}".encode() if i % 2 else None, f"{i:06d} kafka-python".encode()) for i in range(MESSAGES)]
        futures = [producer.send(topic, key=k, value=v) for k, v in sent]
        producer.flush(timeout=120)
        metas = [f.get(timeout=60) for f in futures]
    finally:
        producer.close(timeout=30)

    assert len({(m.partition, m.offset) for m in metas}) == MESSAGES
    records = kp_consume_all(broker.bootstrap, topic, [0, 1, 2], MESSAGES)
    assert len(records) == MESSAGES
    assert Counter((r.key, r.value) for r in records) == Counter(sent)
    by_pos = {(r.partition, r.offset): r.value for r in records}
    for (_, v), m in zip(sent, metas):
        assert by_pos[(m.partition, m.offset)] == v
    for p in range(3):
        seqs = [int(r.value[:6]) for r in sorted((r for r in records if r.partition == p), key=lambda r: r.offset)]
        assert seqs == sorted(seqs), f"partition {p}: order not kept"


def test_kafka_python_admin_create_describe_delete(broker):
    topic = unique("kp-admin")
    adm = KafkaAdminClient(bootstrap_servers=broker.bootstrap, client_id=unique("kp-admin"))
    try:
        adm.create_topics({topic: {"num_partitions": 4, "replication_factor": 1,
                                   "configs": {"retention.ms": "86400000", "segment.bytes": "1048576"}}})
        wait_until(lambda: topic_partitions(broker.bootstrap, topic) == [0, 1, 2, 3], 30,
                   f"{topic} with 4 partitions in metadata")
        assert topic in adm.list_topics()

        configs = adm.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
        topic_configs = configs["topic"][topic]
        assert topic_configs["retention.ms"]["value"] == "86400000"
        assert topic_configs["segment.bytes"]["value"] == "1048576"

        adm.delete_topics([topic])
        wait_until(lambda: topic_partitions(broker.bootstrap, topic) is None, 30, f"{topic} gone from metadata")
    finally:
        adm.close()


def test_kafka_python_reads_librdkafka_batches(broker):
    """Cross-client: what librdkafka wrote (lz4, idempotent) kafka-python reads, and the reverse."""
    from support import produce, read_topic

    topic = unique("kp-cross")
    create_topic(broker.bootstrap, topic, 1)
    produce(broker.bootstrap, topic, [{"value": f"rd-{i}".encode()} for i in range(500)],
            **{"enable.idempotence": True, "compression.type": "lz4"})
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", compression_type="gzip")
    try:
        for i in range(500):
            producer.send(topic, value=f"kp-{i}".encode(), partition=0)
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=30)

    expected = [f"rd-{i}".encode() for i in range(500)] + [f"kp-{i}".encode() for i in range(500)]
    kp = sorted(kp_consume_all(broker.bootstrap, topic, [0], 1000), key=lambda r: r.offset)
    assert [r.value for r in kp] == expected
    assert [r.value for r in read_topic(broker.bootstrap, topic)[0]] == expected
