"""Fetch with sendfile: on a PLAINTEXT listener the broker sends record sets straight from their segment
files; on an SSL listener it reads them and encrypts them. One broker with both listeners, one topic
of small segments (every fetch ends at a segment boundary or at its size limit):

- byte for byte, a Fetch answered on PLAINTEXT holds what the same Fetch answered on SSL holds, for
  fetch sizes below one batch (KIP-74: the whole first batch), of one and a half batches (the partial
  batch is left out) and larger than a segment, from every batch's base offset and from the middle of
  batches; every record set is whole batches;
- librdkafka (confluent-kafka) and kafka-python read every record back, as produced, over both
  listeners, with a partition fetch size smaller than one batch and with the default."""

from __future__ import annotations

import os
import socket
import ssl
import struct

import pytest
from confluent_kafka import Consumer, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition

from appliance_support import free_port
from support import HOST, Broker, close_and_report, consumer_conf, create_topic, produce, toml_value, unique
from test_security import pki, tls_settings  # noqa: F401

RECORDS = 3000
VALUE_SIZE = 300
# About 100 records per batch (30 KiB: above the 16 KiB from which the broker uses sendfile) and three
# batches per segment.
BATCH_RECORDS = 100
SEGMENT_BYTES = 100_000


class TwoListenerBroker(Broker):
    """A broker with a PLAINTEXT listener (the bootstrap) and an SSL listener on `ssl_port`."""

    def __init__(self, binary, workdir, overrides):
        super().__init__(binary, workdir, overrides)
        self.ssl_port = free_port()

    def write_config(self, port: int) -> None:
        listeners = [f"PLAINTEXT://{HOST}:{port}", f"SSL://{HOST}:{self.ssl_port}"]
        lines = ["[broker]", f"listeners = {toml_value(listeners)}"]
        lines += [f"{k} = {toml_value(v)}" for k, v in self.settings.items()]
        self.config_path.write_text("\n".join(lines) + "\n")

    @property
    def ssl_bootstrap(self) -> str:
        return f"{HOST}:{self.ssl_port}"


@pytest.fixture
def broker(logpipe_bin, tmp_path, request, pki):  # noqa: F811
    b = TwoListenerBroker(logpipe_bin, tmp_path / "broker", {
        "log_segment_bytes": SEGMENT_BYTES, "allow_everyone_if_no_acl_found": True, **tls_settings(pki)})
    b.workdir.mkdir()
    yield b.start()
    close_and_report([b], request, "broker", tail=60)


@pytest.fixture
def topic(broker):
    name = unique("sendfile")
    create_topic(broker.bootstrap, name, 1)
    messages = [{"key": f"k{i}".encode(), "value": os.urandom(VALUE_SIZE), "partition": 0} for i in range(RECORDS)]
    delivered = produce(broker.bootstrap, name, messages, **{
        "batch.num.messages": BATCH_RECORDS, "linger.ms": 200, "compression.type": "none"})
    assert sorted(d.offset for d in delivered) == list(range(RECORDS))
    return name, [(m["key"], m["value"]) for m in messages]


# -- Fetch v4 by hand, to compare what goes on the wire ------------------------------------------


def fetch_request(correlation_id: int, topic: str, offset: int, partition_max_bytes: int) -> bytes:
    client_id = b"sendfile-test"
    name = topic.encode()
    body = struct.pack(">hhih", 1, 4, correlation_id, len(client_id)) + client_id
    # replica_id, max_wait_ms, min_bytes, max_bytes, isolation_level
    body += struct.pack(">iiiib", -1, 0, 0, 64 << 20, 0)
    body += struct.pack(">ih", 1, len(name)) + name + struct.pack(">iiqi", 1, 0, offset, partition_max_bytes)
    return struct.pack(">i", len(body)) + body


def read_exact(sock, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        assert chunk, "the broker closed the connection"
        out += chunk
    return bytes(out)


def fetch_records(sock, correlation_id: int, topic: str, offset: int, partition_max_bytes: int) -> bytes:
    """The record set of partition 0 in a Fetch v4 response."""
    sock.sendall(fetch_request(correlation_id, topic, offset, partition_max_bytes))
    (size,) = struct.unpack(">i", read_exact(sock, 4))
    frame = read_exact(sock, size)
    pos = 0

    def take(fmt):
        nonlocal pos
        values = struct.unpack_from(fmt, frame, pos)
        pos += struct.calcsize(fmt)
        return values

    (got_id, _throttle, topics) = take(">iii")
    assert (got_id, topics) == (correlation_id, 1)
    (name_len,) = take(">h")
    pos += name_len
    (partitions, partition, error, _hw, _lso, aborted) = take(">iihqqi")
    assert (partitions, partition, error) == (1, 0, 0) and aborted in (0, -1)
    (records_len,) = take(">i")
    records = frame[pos:pos + records_len]
    assert pos + records_len == size, "the frame's size adds up"
    return records


def batches(records: bytes) -> list[tuple[int, int]]:
    """(base offset, last offset) of each batch; fails unless the records are whole batches."""
    out, pos = [], 0
    while pos < len(records):
        assert pos + 61 <= len(records), f"a partial batch header at {pos} of {len(records)}"
        base, length = struct.unpack_from(">qi", records, pos)
        (last_delta,) = struct.unpack_from(">i", records, pos + 23)
        assert pos + 12 + length <= len(records), f"a partial batch at {pos} of {len(records)}"
        out.append((base, base + last_delta))
        pos += 12 + length
    return out


def test_plaintext_sendfile_sends_the_bytes_tls_sends(broker, topic, pki):  # noqa: F811
    name, _ = topic
    plain = socket.create_connection((HOST, broker.port), timeout=30)
    context = ssl.create_default_context(cafile=str(pki["ca"]))
    tls = context.wrap_socket(socket.create_connection((HOST, broker.ssl_port), timeout=30),
                              server_hostname="localhost")
    try:
        whole = fetch_records(plain, 1, name, 0, 1 << 20)
        first = batches(whole)
        batch_size = len(whole) // len(first)
        assert batch_size > 16 * 1024, "batches large enough for sendfile"
        assert len(whole) <= SEGMENT_BYTES < 2 * len(whole), "a fetch stops at its segment's end"
        # Every batch start and a few offsets inside batches, up to the log end (read segment by segment).
        starts, offset = [], 0
        while offset < RECORDS:
            got = batches(fetch_records(plain, 2, name, offset, 1 << 20))
            starts += [base for base, _ in got]
            offset = got[-1][1] + 1
        assert len(starts) >= RECORDS // BATCH_RECORDS and offset == RECORDS
        sizes = [1, batch_size * 3 // 2, 1 << 20]
        correlation_id = 10
        for base in starts:
            for offset in (base, base + 7):
                for max_bytes in sizes:
                    correlation_id += 1
                    sent = fetch_records(plain, correlation_id, name, offset, max_bytes)
                    encrypted = fetch_records(tls, correlation_id, name, offset, max_bytes)
                    what = f"offset {offset}, partition max bytes {max_bytes}"
                    assert sent == encrypted, what
                    got = batches(sent)
                    assert got and got[0][0] <= offset <= got[0][1], what
                    if max_bytes == 1:
                        assert len(got) == 1, f"{what}: one whole batch (KIP-74)"
                    elif max_bytes < 1 << 20:
                        assert len(sent) <= max_bytes, f"{what}: the partial batch is left out"
    finally:
        plain.close()
        tls.close()


def confluent_read(bootstrap: str, topic: str, security: dict, **conf) -> list[tuple[int, bytes, bytes]]:
    c = Consumer(consumer_conf(bootstrap, **security, **conf))
    out = []
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        idle = 0
        while len(out) < RECORDS and idle < 300:
            msgs = c.consume(num_messages=1000, timeout=0.1)
            idle = 0 if msgs else idle + 1
            for m in msgs:
                assert m.error() is None, m.error()
                out.append((m.offset(), m.key(), m.value()))
    finally:
        c.close()
    return out


@pytest.mark.parametrize("partition_max_bytes", [8192, 1 << 20], ids=["smaller-than-a-batch", "default"])
def test_librdkafka_reads_every_record_over_both_listeners(broker, topic, pki, partition_max_bytes):  # noqa: F811
    name, produced = topic
    expected = [(i, k, v) for i, (k, v) in enumerate(produced)]
    conf = {"max.partition.fetch.bytes": partition_max_bytes}
    assert confluent_read(broker.bootstrap, name, {}, **conf) == expected
    tls = {"security.protocol": "ssl", "ssl.ca.location": str(pki["ca"])}
    assert confluent_read(broker.ssl_bootstrap, name, tls, **conf) == expected


@pytest.mark.parametrize("partition_max_bytes", [8192, 1 << 20], ids=["smaller-than-a-batch", "default"])
def test_kafka_python_reads_every_record_over_plaintext(broker, topic, partition_max_bytes):
    name, produced = topic
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False, consumer_timeout_ms=30_000,
                      max_partition_fetch_bytes=partition_max_bytes)
    try:
        tp = KpTopicPartition(name, 0)
        c.assign([tp])
        c.seek(tp, 0)
        got = []
        for m in c:
            got.append((m.offset, m.key, m.value))
            if len(got) == RECORDS:
                break
    finally:
        c.close()
    assert got == [(i, k, v) for i, (k, v) in enumerate(produced)]
