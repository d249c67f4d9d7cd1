"""Filebeat's Kafka output client: github.com/elastic/sarama at the version elastic/beats pins, configured
with Filebeat's defaults (tests/go/filebeat-kafka, built into .peers/bin by scripts/peers.sh). It
produces to the broker, reads back with sarama and librdkafka, and a sarama consumer group commits
(with OffsetCommit v1, as this sarama does without offset retention) until `logpipe groups describe`
shows LAG 0."""

from __future__ import annotations

import re
import subprocess
from collections import Counter

import pytest

from peers import PEERS
from support import create_topic, parse_table, read_topic, unique, wait_until, watermarks

BIN = PEERS / "bin" / "filebeat-kafka"
CASES = [("2.1.0", 1, 100_000), ("2.1.0", -1, 100_000), ("1.0.0", 1, 20_000), ("1.0.0", -1, 20_000)]


def run(*args: str, timeout: float = 300) -> str:
    assert BIN.is_file(), f"{BIN} is missing; run scripts/peers.sh"
    p = subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"filebeat-kafka {' '.join(args)} exited {p.returncode}\n{p.stdout}\n{p.stderr[-3000:]}"
    return p.stdout


def fields(line: str) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in line.split() if "=" in kv)


@pytest.mark.parametrize("version,acks,n", CASES, ids=[f"v{v}-acks{a}-{n}" for v, a, n in CASES])
def test_filebeat_produces_consumes_and_commits(broker, cli, version, acks, n):
    topic, group = unique("filebeat"), unique("fb-group")
    create_topic(broker.bootstrap, topic, 3)
    common = ["-brokers", broker.bootstrap, "-topic", topic, "-n", str(n), "-version", version]

    produced = fields(run("produce", *common, "-acks", str(acks)))
    assert produced["acked"] == str(n) and produced["failed"] == "0", produced

    # acks=1 is answered before the fsync; the records become visible (high watermark) once it is done.
    wait_until(lambda: sum(watermarks(broker.bootstrap, topic, p)[1] for p in range(3)) == n, 60,
               f"{n} records visible")
    # Read back by librdkafka: every event once, and the hash partitioner kept each host on one partition.
    records = read_topic(broker.bootstrap, topic, [0, 1, 2])
    seqs = Counter(int(re.search(rb'"seq":(\d+)', r.value).group(1)) for recs in records.values() for r in recs)
    assert len(seqs) == n and set(seqs.values()) == {1}
    hosts = {p: {r.key for r in recs} for p, recs in records.items()}
    assert sum(len(h) for h in hosts.values()) == 4, f"each of 4 hosts on exactly one partition: {hosts}"

    # Stored as gzip batches: far smaller than the JSON.
    raw = sum(len(r.value) for recs in records.values() for r in recs)
    stored = sum(f.stat().st_size for f in broker.log_dirs.glob(f"{topic}-*/*.log"))
    assert stored < raw / 2, f"{stored} bytes stored for {raw} bytes of events"

    consumed = fields(run("consume", *common))
    assert consumed == {"consumed": str(n), "distinct": str(n), "missing": "0"}, consumed

    grouped = fields(run("group", *common, "-group", group))
    assert grouped["distinct"] == str(n) and grouped["missing"] == "0", grouped

    def lag_zero():
        rows = [r for r in parse_table(cli.run("groups", "describe", group).stdout) if r.get("TOPIC") == topic]
        return rows if len(rows) == 3 and all(r["LAG"] == "0" for r in rows) else None

    rows = wait_until(lag_zero, 60, lambda: cli.run("groups", "describe", group, check=False).stdout)
    assert sum(int(r["CURRENT-OFFSET"]) for r in rows) == n
    if version == "2.1.0" and n == 100_000:
        print(f"filebeat (sarama {version}, acks={acks}): {produced['events_per_s']} events/s produced")
