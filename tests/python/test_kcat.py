"""kcat interop. Debian's kcat 1.7.1 runs on librdkafka 2.0.2, which breaks on brokers that put
tagged fields in the ApiVersions response header (that response always uses header v0), so this
is the oldest client we promise to serve."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from collections import Counter, defaultdict

import pytest

from support import create_topic, unique

pytestmark = pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat not installed (scripts/test.sh installs it)")

LINES = 100_000


def kcat(*args: str, timeout: float = 300, input: bytes | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(["kcat", *args], capture_output=True, timeout=timeout, input=input,
                          stdin=None if input is not None else subprocess.DEVNULL)
    assert proc.returncode == 0, (
        f"kcat {' '.join(args)} exited {proc.returncode}\nstderr:\n{proc.stderr.decode(errors='replace')[-4000:]}"
    )
    return proc


def make_lines(n: int, seed: int) -> list[str]:
    """Distinct, numbered lines of varying length (printable ASCII, no delimiter inside)."""
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_=/.:[]{}\"'"
    return [f"{i:07d} " + "".join(rng.choices(alphabet, k=rng.randint(0, 300))) for i in range(n)]


@pytest.mark.timeout(600)
def test_kcat_produce_file_and_consume_back(broker, tmp_path):
    topic = unique("kcat")
    create_topic(broker.bootstrap, topic, 3)
    lines = make_lines(LINES, seed=1)
    src = tmp_path / "lines.txt"
    src.write_text("\n".join(lines) + "\n")

    kcat("-P", "-b", broker.bootstrap, "-t", topic, "-l", str(src))

    out = kcat("-C", "-b", broker.bootstrap, "-t", topic, "-o", "beginning", "-e", "-q",
               "-f", "%p %o %s\\n").stdout.decode()
    by_partition: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for row in out.split("\n"):
        if not row:
            continue
        p, o, s = row.split(" ", 2)
        by_partition[int(p)].append((int(o), s))

    consumed = [s for recs in by_partition.values() for _, s in recs]
    assert len(consumed) == len(lines)
    assert Counter(consumed) == Counter(lines)
    assert set(by_partition) <= {0, 1, 2}
    assert len(by_partition) > 1, "kcat's partitioner spread nothing: all lines in one partition"
    for p, recs in by_partition.items():
        offsets = [o for o, _ in recs]
        assert offsets == list(range(len(recs))), f"partition {p}: offsets not 0..n-1"
        seqs = [int(s.split(" ", 1)[0]) for _, s in recs]
        assert seqs == sorted(seqs), f"partition {p}: producer order not kept"


def test_kcat_metadata(broker):
    topic = unique("kcat-md")
    create_topic(broker.bootstrap, topic, 3)

    md = json.loads(kcat("-L", "-J", "-b", broker.bootstrap, timeout=60).stdout)
    brokers = {b["id"]: b["name"] for b in md["brokers"]}
    assert list(brokers.values()) == [broker.bootstrap], f"advertised brokers: {md['brokers']}"
    topics = {t["topic"]: t for t in md["topics"]}
    assert topic in topics
    t = topics[topic]
    assert "error" not in t, t
    assert sorted(p["partition"] for p in t["partitions"]) == [0, 1, 2]
    for p in t["partitions"]:
        assert "error" not in p, p
        assert p["leader"] in brokers

    text = kcat("-L", "-b", broker.bootstrap, "-t", topic, timeout=60).stdout.decode()
    assert f'topic "{topic}" with 3 partitions' in text


def test_kcat_keys_and_gzip(broker, tmp_path):
    """Keyed messages (-K) with gzip, read back as JSON envelopes: keys and values intact,
    and the same key always lands in the same partition."""
    topic = unique("kcat-keys")
    create_topic(broker.bootstrap, topic, 3)
    rows = [(f"key-{i % 17}", f"value {i:05d}") for i in range(2000)]
    data = "".join(f"{k}\t{v}\n" for k, v in rows).encode()

    kcat("-P", "-b", broker.bootstrap, "-t", topic, "-K", "\t", "-z", "gzip", input=data, timeout=120)

    out = kcat("-C", "-b", broker.bootstrap, "-t", topic, "-o", "beginning", "-e", "-q", "-J",
               timeout=120).stdout.decode()
    got = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert Counter((m["key"], m["payload"]) for m in got) == Counter(rows)
    partitions_of_key: dict[str, set[int]] = defaultdict(set)
    for m in got:
        partitions_of_key[m["key"]].add(m["partition"])
    assert all(len(ps) == 1 for ps in partitions_of_key.values()), partitions_of_key
