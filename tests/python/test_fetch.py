"""Fetch and ListOffsets semantics, seen through real clients: OFFSET_OUT_OF_RANGE and
auto.offset.reset, reads from the middle of a compressed batch, the "at least one batch" rule
for small fetch sizes, and ListOffsets earliest / latest / by timestamp."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import OFFSET_END, Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import OffsetSpec
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition
from kafka.errors import OffsetOutOfRangeError

from support import (TRANSIENT, admin, consumer_conf, create_topic, produce, unique, wait_until,
                     watermarks)


def topic_with(broker, n: int, partitions: int = 1, **produce_conf) -> str:
    topic = unique("fetch")
    create_topic(broker.bootstrap, topic, partitions)
    if n:
        produce(broker.bootstrap, topic, [{"value": f"m{i}".encode(), "partition": 0} for i in range(n)],
                **produce_conf)
    return topic


# librdkafka may also surface the broker's OFFSET_OUT_OF_RANGE as an informational event while it
# applies auto.offset.reset; that is not a failure.
RESETTING = TRANSIENT | {KafkaError.OFFSET_OUT_OF_RANGE}


def poll_messages(c: Consumer, want: int, timeout: float = 30, stop_on_error: bool = False):
    """Up to `want` messages (and any unexpected error events) within `timeout`."""
    msgs, errors = [], []
    deadline = time.monotonic() + timeout
    while len(msgs) < want and time.monotonic() < deadline:
        for m in c.consume(num_messages=want - len(msgs), timeout=0.2):
            if m.error() is None:
                msgs.append(m)
            elif m.error().code() not in RESETTING:
                errors.append(m.error())
        if errors and stop_on_error:
            break
    return msgs, errors


def test_offset_past_end_resets_to_earliest(broker):
    topic = topic_with(broker, 10)
    c = Consumer(consumer_conf(broker.bootstrap, **{"auto.offset.reset": "earliest"}))
    try:
        c.assign([TopicPartition(topic, 0, 1000)])
        msgs, errors = poll_messages(c, 10)
        assert not errors
        assert [m.offset() for m in msgs] == list(range(10))
    finally:
        c.close()


def test_offset_past_end_resets_to_latest(broker):
    topic = topic_with(broker, 10)
    c = Consumer(consumer_conf(broker.bootstrap, **{"auto.offset.reset": "latest"}))
    try:
        c.assign([TopicPartition(topic, 0, 1000)])
        # The reset happens asynchronously: keep appending markers until one arrives.
        seen = []

        def got_marker():
            produce(broker.bootstrap, topic, [{"value": b"marker", "partition": 0}])
            msgs, errors = poll_messages(c, 1, timeout=1)
            assert not errors, errors
            seen.extend(msgs)
            return bool(msgs)

        wait_until(got_marker, 60, "a marker produced after the reset")
        assert all(m.value() == b"marker" and m.offset() >= 10 for m in seen), \
            [(m.offset(), m.value()) for m in seen]
    finally:
        c.close()


def test_offset_past_end_with_reset_error_reports_it(broker):
    topic = topic_with(broker, 10)
    c = Consumer(consumer_conf(broker.bootstrap, **{"auto.offset.reset": "error"}))
    try:
        c.assign([TopicPartition(topic, 0, 1000)])
        msgs, errors = poll_messages(c, 1, timeout=30, stop_on_error=True)
        assert not msgs
        assert [e.code() for e in errors][:1] == [KafkaError._AUTO_OFFSET_RESET], errors
    finally:
        c.close()


def test_kafka_python_offset_out_of_range_raises_without_reset(broker):
    topic = topic_with(broker, 10)
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="none")
    try:
        tp = KpTopicPartition(topic, 0)
        c.assign([tp])
        c.seek(tp, 1000)

        def raises():
            try:
                c.poll(timeout_ms=500)
            except OffsetOutOfRangeError:
                return True
            return False

        wait_until(raises, 30, "OffsetOutOfRangeError from kafka-python")
    finally:
        c.close()


def test_fetch_from_the_middle_of_a_compressed_batch(broker):
    topic = topic_with(broker, 100, **{"compression.type": "lz4", "linger.ms": 50})
    c = Consumer(consumer_conf(broker.bootstrap))
    try:
        c.assign([TopicPartition(topic, 0, 37)])
        msgs, errors = poll_messages(c, 63)
        assert not errors
        assert [m.offset() for m in msgs] == list(range(37, 100))
        assert [m.value() for m in msgs] == [f"m{i}".encode() for i in range(37, 100)]
    finally:
        c.close()


def test_small_fetch_sizes_still_make_progress(broker):
    """A batch bigger than max.partition.fetch.bytes / fetch.max.bytes is still returned whole
    (KIP-74), or the consumer would be stuck."""
    topic = unique("fetch-big")
    create_topic(broker.bootstrap, topic, 1)
    values = [bytes([65 + i]) * 20_000 for i in range(5)]
    produce(broker.bootstrap, topic, [{"value": v} for v in values])
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest", max_partition_fetch_bytes=1024, fetch_max_bytes=1024)
    try:
        tp = KpTopicPartition(topic, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        got = []
        deadline = time.monotonic() + 60
        while len(got) < 5 and time.monotonic() < deadline:
            for batch in c.poll(timeout_ms=500).values():
                got.extend(r.value for r in batch)
        assert got == values
    finally:
        c.close()


def test_list_offsets_earliest_latest(broker):
    topic = topic_with(broker, 0, partitions=2)
    assert watermarks(broker.bootstrap, topic, 0) == (0, 0)
    produce(broker.bootstrap, topic, [{"value": b"x", "partition": 0} for _ in range(25)])
    assert watermarks(broker.bootstrap, topic, 0) == (0, 25)
    assert watermarks(broker.bootstrap, topic, 1) == (0, 0)

    client = admin(broker.bootstrap)  # must outlive its futures
    fs = client.list_offsets({TopicPartition(topic, 0): OffsetSpec.earliest()})
    assert [r.result(timeout=30).offset for r in fs.values()] == [0]
    fs = client.list_offsets({TopicPartition(topic, 0): OffsetSpec.latest()})
    assert [r.result(timeout=30).offset for r in fs.values()] == [25]

    kc = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
    try:
        tps = [KpTopicPartition(topic, 0), KpTopicPartition(topic, 1)]
        assert kc.beginning_offsets(tps) == {tps[0]: 0, tps[1]: 0}
        assert kc.end_offsets(tps) == {tps[0]: 25, tps[1]: 0}
    finally:
        kc.close()


def test_list_offsets_by_timestamp(broker):
    topic = unique("fetch-ts")
    create_topic(broker.bootstrap, topic, 1)
    t0 = int(time.time() * 1000) - 3_600_000  # recent enough for any retention setting
    # One produce call, lz4, lingering: the ten records share a batch, so the broker must find the
    # first *record* with timestamp >= t, not just the batch.
    produce(broker.bootstrap, topic,
            [{"value": f"t{i}".encode(), "timestamp": t0 + i * 1000} for i in range(10)],
            **{"compression.type": "lz4", "linger.ms": 50})

    cases = {t0 - 5000: 0, t0: 0, t0 + 1: 1, t0 + 3500: 4, t0 + 9000: 9, t0 + 9001: OFFSET_END}
    c = Consumer(consumer_conf(broker.bootstrap))
    try:
        for ts, want in cases.items():
            [res] = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)
            assert res.error is None
            assert res.offset == want, f"offsets_for_times({ts - t0:+d} ms) = {res.offset}, want {want}"
    finally:
        c.close()

    client = admin(broker.bootstrap)  # must outlive its futures
    fs = client.list_offsets({TopicPartition(topic, 0): OffsetSpec.for_timestamp(t0 + 3500)})
    assert [r.result(timeout=30).offset for r in fs.values()] == [4]

    kc = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
    try:
        tp = KpTopicPartition(topic, 0)
        found = kc.offsets_for_times({tp: t0 + 3500})[tp]
        assert (found.offset, found.timestamp) == (4, t0 + 4000)
        assert kc.offsets_for_times({tp: t0 + 10_000})[tp] is None
    finally:
        kc.close()


@pytest.mark.parametrize("reset", ["earliest", "latest"])
def test_kafka_python_reset_policies(broker, reset):
    topic = topic_with(broker, 10)
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset=reset)
    try:
        tp = KpTopicPartition(topic, 0)
        c.assign([tp])
        c.seek(tp, 500)
        if reset == "earliest":
            got = []
            deadline = time.monotonic() + 30
            while len(got) < 10 and time.monotonic() < deadline:
                for batch in c.poll(timeout_ms=500).values():
                    got.extend(r.offset for r in batch)
            assert got == list(range(10))
        else:
            wait_until(lambda: (c.poll(timeout_ms=200) is not None) and c.position(tp) == 10, 30,
                       "position reset to the log end")
    finally:
        c.close()
