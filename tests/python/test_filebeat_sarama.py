"""Filebeat's Kafka client: github.com/elastic/sarama (the fork Filebeat ships, pinned as beats pins
it) driven with Filebeat's default output settings by the Go peer tests/go/filebeat-kafka, which
scripts/peers.sh builds into .peers/bin/.

For `version` 2.1.0 (Filebeat 9.x's default) and 1.0.0 (8.x's), and `required_acks` 1 and -1:
Filebeat-shaped JSON events go out through sarama's async producer (gzip level 4, client id
"beats", bulk 2048, the hash partitioner: random partition when the event has no key), and must come
back exactly — every sequence number once — through librdkafka, through sarama's consumer, and through
a sarama consumer group whose autocommitted offsets leave `logpipe groups describe` at LAG 0. The
stored batches must be the gzip batches sarama sent (the log keeps producers' bytes as they came).
"""

from __future__ import annotations

import json
import struct
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME

from peers import FILEBEAT_KAFKA, go_peer
from support import (Cli, check_contiguous, child_cmd, create_topic, read_topic, unique, wait_until,
                     watermarks)

PARTITIONS = 3
FULL = 100_000  # Filebeat 9.x's default version with acks=all carries the full load
SMALL = FULL  # every combination carries the full load (about 6 s each here); lower it on a slow machine

COMBINATIONS = [
    pytest.param("2.1.0", -1, FULL, id="v2.1.0-acks-all"),
    pytest.param("2.1.0", 1, SMALL, id="v2.1.0-acks-1"),
    pytest.param("1.0.0", -1, SMALL, id="v1.0.0-acks-all"),
    pytest.param("1.0.0", 1, SMALL, id="v1.0.0-acks-1"),
    # Filebeat configured for a Kafka 0.10 cluster: Produce v2 and Fetch v3 with message format v1,
    # which the broker converts to record batches (keeping gzip) and back.
    pytest.param("0.10.2.0", 1, 20_000, id="v0.10.2.0-acks-1"),
]

GZIP = 1  # record batch attributes & 0x07


def filebeat(*args: str, timeout: float = 240) -> dict:
    """Run the Go peer to completion; it must exit 0. Returns its JSON summary (last stdout line)."""
    argv = [str(go_peer(FILEBEAT_KAFKA)), *args, "-timeout", f"{int(timeout) - 10}s"]
    p = subprocess.run(child_cmd(argv), capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    lines = p.stdout.strip().splitlines()
    summary = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None
    assert p.returncode == 0, (f"{' '.join(argv[1:])} exited {p.returncode}\nsummary: {summary}\n"
                               f"stderr:\n{p.stderr[-3000:]}")
    assert summary is not None, f"no summary from {' '.join(argv[1:])}: {p.stdout[-2000:]}"
    return summary


def log_ends(bootstrap: str, topic: str) -> dict[int, int]:
    return {p: watermarks(bootstrap, topic, p)[1] for p in range(PARTITIONS)}


def describe_rows(cli: Cli, group: str, topic: str) -> dict[int, dict[str, str]]:
    """`logpipe groups describe G`: the offsets table (the one with PARTITION and LAG), by partition."""
    lines = [line.split() for line in cli.run("groups", "describe", group).stdout.splitlines()
             if line.strip()]
    for i, cols in enumerate(lines):
        if "PARTITION" in cols and "LAG" in cols:
            rows = [dict(zip(cols, row)) for row in lines[i + 1:] if len(row) >= len(cols) - 3]
            return {int(r["PARTITION"]): r for r in rows if r.get("TOPIC") == topic}
    raise AssertionError(f"no PARTITION/LAG table in `logpipe groups describe {group}`")


def stored_batches(log_dir: Path, topic: str, partition: int) -> list[tuple[int, int, int]]:
    """(magic, attributes, record count) of every batch in the partition's segment files."""
    out = []
    for seg in sorted((log_dir / f"{topic}-{partition}").glob("*.log")):
        data = seg.read_bytes()
        pos = 0
        while pos + 61 <= len(data):
            (length,) = struct.unpack_from(">i", data, pos + 8)
            magic = data[pos + 16]
            (attributes,) = struct.unpack_from(">h", data, pos + 21)
            (count,) = struct.unpack_from(">i", data, pos + 57)
            out.append((magic, attributes, count))
            pos += 12 + length
    return out


def seq_of(value: bytes) -> int:
    event = json.loads(value)
    assert {"@timestamp", "message", "log", "host", "agent"} <= event.keys(), event
    return event["seq"]


@pytest.mark.parametrize("version,acks,count", COMBINATIONS)
def test_filebeat_output_roundtrip(broker, logpipe_bin, version, acks, count):
    topic = unique(f"filebeat-{version}")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    common = ["-brokers", broker.bootstrap, "-topic", topic, "-version", version]

    produced = filebeat("produce", *common, "-acks", str(acks), "-count", str(count))
    print(f"filebeat-kafka produce {version} acks={acks}: {count} events in {produced['seconds']:.2f}s "
          f"({produced['events_per_sec']:.0f} events/s)")
    assert produced["acked"] == count and produced["errors"] == 0, produced
    # Without a key Filebeat's hash partitioner picks partitions at random: all three get events.
    assert sorted(int(p) for p in produced["partitions"]) == list(range(PARTITIONS)), produced

    # acks=1 is answered before the fsync that moves the high watermark; wait for it to catch up.
    acked = {int(p): n for p, n in produced["partitions"].items()}
    wait_until(lambda: log_ends(broker.bootstrap, topic) == acked, 60,
               lambda: f"log ends {log_ends(broker.bootstrap, topic)} to reach the acked counts {acked}",
               procs=[broker])

    # librdkafka reads back exactly what was acknowledged, in offset order, with CreateTime stamps.
    records = read_topic(broker.bootstrap, topic, timeout=180)
    check_contiguous(records)
    assert {p: len(r) for p, r in records.items()} == acked
    seqs = Counter(seq_of(r.value) for recs in records.values() for r in recs)
    assert len(seqs) == count and set(seqs) == set(range(count)) and max(seqs.values()) == 1
    for recs in records.values():
        assert all(r.key is None for r in recs)
        assert all(r.timestamp[0] == TIMESTAMP_CREATE_TIME and r.timestamp[1] > 0 for r in recs[:100])

    # sarama's consumer: every seq exactly once, offsets without gaps.
    consumed = filebeat("consume", *common, "-expect", str(count))
    assert consumed["distinct"] == count and consumed["records"] == count, consumed

    # A sarama consumer group member marks every message and autocommits; it exits once OffsetFetch
    # shows its commits at the log end. `logpipe groups describe` must agree: LAG 0 everywhere.
    group = unique("filebeat-group")
    grouped = filebeat("group", *common, "-group", group, "-expect", str(count))
    assert grouped["missing"] == 0 and grouped["distinct"] == count, grouped
    ends = log_ends(broker.bootstrap, topic)
    assert {int(p): o for p, o in grouped["committed"].items()} == ends, grouped
    rows = describe_rows(Cli(logpipe_bin, broker.bootstrap), group, topic)
    assert sorted(rows) == list(range(PARTITIONS)), rows
    for p, row in rows.items():
        assert row["LAG"] == "0", row
        assert int(row["CURRENT-OFFSET"]) == ends[p], row

    # The log holds sarama's record batches as they came: v2 (magic 2), gzip-compressed.
    for p in range(PARTITIONS):
        batches = stored_batches(broker.log_dirs, topic, p)
        assert batches, f"no batches on disk for partition {p}"
        assert {magic for magic, _, _ in batches} == {2}
        assert {attrs & 0x07 for _, attrs, _ in batches} == {GZIP}, Counter(a & 0x07 for _, a, _ in batches)
        assert sum(n for _, _, n in batches) == acked[p]


def fnv1a_32(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def test_filebeat_keyed_events_follow_the_hash_partitioner(broker):
    """With `output.kafka.key` set, Filebeat's default partitioner hashes the key (FNV-1a, sign bit
    cleared, modulo the partition count): every event of a key lands on the partition it names."""
    topic = unique("filebeat-keyed")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    count = 2_000
    produced = filebeat("produce", "-brokers", broker.bootstrap, "-topic", topic, "-acks", "-1",
                        "-count", str(count), "-keys", "16")
    assert produced["acked"] == count and produced["errors"] == 0, produced

    records = read_topic(broker.bootstrap, topic)
    assert sum(len(r) for r in records.values()) == count
    for p, recs in records.items():
        for r in recs:
            assert r.key is not None and (fnv1a_32(r.key) & 0x7FFFFFFF) % PARTITIONS == p, (p, r.key)
            assert r.key == f"key-{seq_of(r.value) % 16}".encode()


@pytest.mark.parametrize("version", ["2.1.0", "1.0.0"])
def test_filebeat_events_shared_by_two_sarama_group_members(broker_factory, logpipe_bin, tmp_path, version):
    """Two sarama members of one group split the partitions (the broker holds the first rebalance
    back so both join it), autocommit as they go, and between them consume every event."""
    broker = broker_factory(group_initial_rebalance_delay_ms=3000)
    topic = unique(f"filebeat-shared-{version}")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    count = 30_000
    common = ["-brokers", broker.bootstrap, "-topic", topic, "-version", version]
    produced = filebeat("produce", *common, "-acks", "-1", "-count", str(count))
    assert produced["acked"] == count, produced

    group = unique("filebeat-shared")
    argv = [str(go_peer(FILEBEAT_KAFKA)), "group", *common, "-group", group, "-expect", str(count),
            "-share", "-timeout", "150s"]
    members = []
    try:
        for i in range(2):
            out = open(tmp_path / f"member{i}.out", "w+")
            seqs = tmp_path / f"member{i}.seqs"
            members.append((subprocess.Popen(child_cmd([*argv, "-seqs-file", str(seqs)]), stdout=out,
                                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL), out, seqs))
        for proc, out, _ in members:
            rc = proc.wait(timeout=180)
            out.seek(0)
            assert rc == 0, f"group member exited {rc}:\n{out.read()[-3000:]}"
    finally:
        for proc, out, _ in members:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            out.close()

    shares = [Counter(int(line) for line in seqs.read_text().split()) for _, _, seqs in members]
    assert all(shares), f"a member got no partition: {[sum(s.values()) for s in shares]}"
    everything = shares[0] + shares[1]
    assert set(everything) == set(range(count))
    ends = log_ends(broker.bootstrap, topic)
    rows = describe_rows(Cli(logpipe_bin, broker.bootstrap), group, topic)
    assert sorted(rows) == list(range(PARTITIONS)), rows
    for p, row in rows.items():
        assert row["LAG"] == "0" and int(row["CURRENT-OFFSET"]) == ends[p], row


CODECS = {"none": 0, "snappy": 2, "lz4": 3}


@pytest.mark.parametrize("compression", sorted(CODECS))
def test_filebeat_other_compression_settings(broker, compression):
    """`output.kafka.compression` none, snappy and lz4 (the others Filebeat accepts): the events come
    back through sarama's consumer and the log holds batches in that codec."""
    topic = unique(f"filebeat-{compression}")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    count = 10_000
    common = ["-brokers", broker.bootstrap, "-topic", topic]
    produced = filebeat("produce", *common, "-acks", "-1", "-count", str(count), "-compression", compression)
    assert produced["acked"] == count and produced["errors"] == 0, produced
    consumed = filebeat("consume", *common, "-expect", str(count))
    assert consumed["distinct"] == count and consumed["records"] == count, consumed
    for p in range(PARTITIONS):
        batches = stored_batches(broker.log_dirs, topic, p)
        assert {attrs & 0x07 for _, attrs, _ in batches} == {CODECS[compression]}
        assert sum(n for _, _, n in batches) == produced["partitions"][str(p)]
