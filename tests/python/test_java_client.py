"""The Apache Kafka Java client, at the version Logstash 8.19/9.x bundle (3.9.2) and the newest 4.x, run
from tests/java/JavaClient.java against the broker: an idempotent producer with each codec, a consumer
with Logstash's kafka input settings, the AdminClient calls operators' tools make, queue and pub/sub
semantics of groups, and clean refusals of what the broker does not do (transactions, KIP-848)."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from collections import Counter
from pathlib import Path

import pytest

from peers import KAFKA_CLIENTS, classpath, java_cmd
from support import REPO, Cli, create_topic, parse_table, produce, read_topic, unique, wait_until

SOURCE = REPO / "tests" / "java" / "JavaClient.java"
VERSIONS = list(KAFKA_CLIENTS)
# Warnings a client repeats when a broker answers it wrongly; one is tolerated (the first metadata
# round for a new topic), a loop is not.
LOOP = re.compile(r"UNSUPPORTED_VERSION|NOT_COORDINATOR|COORDINATOR_NOT_AVAILABLE|LEADER_NOT_AVAILABLE|"
                  r"NOT_LEADER_OR_FOLLOWER|UNKNOWN_TOPIC_OR_PARTITION|CORRUPT_MESSAGE|Disconnected")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict[str, Path]:
    """JavaClient compiled once per client version."""
    out = {}
    for version, peer in KAFKA_CLIENTS.items():
        dest = tmp_path_factory.mktemp(f"java-{version}")
        javac = shutil.which("javac")
        assert javac, "javac not found; scripts/peers.sh installs a JDK"
        subprocess.run([javac, "-nowarn", "-cp", classpath(peer), "-d", str(dest), str(SOURCE)], check=True,
                       capture_output=True, text=True, timeout=180)
        out[version] = dest
    return out


class Java:
    """One JavaClient process; stdout lines are collected as they arrive."""

    def __init__(self, compiled: dict[str, Path], version: str, *args: str):
        argv = java_cmd(KAFKA_CLIENTS[version], "JavaClient", list(args), extra_classpath=[str(compiled[version])])
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.stderr: list[str] = []
        self._threads = [threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines), daemon=True),
                         threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr), daemon=True)]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(stream, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    def tagged(self, tag: str) -> list[list[str]]:
        return [line.split(" ", 3)[1:] for line in list(self.lines) if line.startswith(tag + " ") or line == tag]

    def wait(self, timeout: float = 180) -> "Java":
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = f"nothing: still running after {timeout} s"
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            for t in self._threads:
                t.join(timeout=10)
        assert rc == 0, f"JavaClient exited {rc}\n{self.summary()}"
        return self

    def summary(self) -> str:
        """The lines that tell what happened: everything but records (counted), and stderr's tail."""
        records = sum(1 for line in self.lines if line.startswith("RECORD "))
        others = [line for line in self.lines if not line.startswith("RECORD ")]
        return (f"stdout ({records} RECORD lines left out):\n" + "\n".join(others[-30:]) +
                "\nstderr:\n" + "\n".join(self.stderr[-60:]))

    def assert_no_warning_loops(self) -> None:
        hits = Counter(m.group(0) for line in self.stderr if "WARN" in line or "ERROR" in line
                       for m in [LOOP.search(line)] if m)
        loops = {k: v for k, v in hits.items() if v > 2}
        assert not loops, f"client warning loops {loops}:\n" + "\n".join(self.stderr[-40:])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def java(compiled):
    started: list[Java] = []

    def start(version: str, *args: str) -> Java:
        j = Java(compiled, version, *args)
        started.append(j)
        return j

    yield start
    for j in started:
        j.kill()


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_idempotent_producer_acks_all_each_codec(broker, java, version, codec):
    topic, n = unique(f"java-{codec}"), 2_000
    create_topic(broker.bootstrap, topic, 3)
    p = java(version, "produce", broker.bootstrap, topic, str(n), codec).wait()
    p.assert_no_warning_loops()
    acked = {(int(part), int(off)) for part, off in p.tagged("ACKED")}
    assert len(acked) == n

    records = read_topic(broker.bootstrap, topic, [0, 1, 2])
    values = [r.value for recs in records.values() for r in recs]
    seqs = [int(re.search(rb'"seq":(\d+)', v).group(1)) for v in values]
    assert sorted(seqs) == list(range(n)), "every record once"
    for part, recs in records.items():
        in_order = [int(re.search(rb'"seq":(\d+)', r.value).group(1)) for r in recs]
        assert in_order == sorted(in_order), f"partition {part} out of order"


@pytest.mark.parametrize("version", VERSIONS)
def test_logstash_consumer_latest_json_and_commits(broker, logpipe_bin, java, version):
    topic, group, n = unique("ls"), "logstash", 300
    create_topic(broker.bootstrap, topic, 3)
    produce(broker.bootstrap, topic, [{"value": b'{"old":true}'} for _ in range(50)])  # before it joins: skipped

    c = java(version, "consume", broker.bootstrap, topic, group, str(n))
    wait_until(lambda: c.tagged("ASSIGNED"), 90, "the Logstash consumer to be assigned", interval=0.2)
    sent = [f'{{"message":"event {i}","seq":{i}}}'.encode() for i in range(n)]
    produce(broker.bootstrap, topic, [{"value": v} for v in sent])
    c.wait()
    c.assert_no_warning_loops()
    got = [rest[2].encode() for rest in c.tagged("RECORD")]
    assert Counter(got) == Counter(sent), "latest: only what came after the join, each once"

    cli = Cli(logpipe_bin, broker.bootstrap)
    rows = [r for r in parse_table(cli.run("groups", "describe", group).stdout) if r.get("TOPIC") == topic]
    assert len(rows) == 3 and all(r["LAG"] == "0" for r in rows), rows
    cli.run("groups", "delete", group, check=False)


@pytest.mark.parametrize("version", VERSIONS)
def test_admin_client(broker, java, version):
    topic, group = unique("adm"), unique("adm-g")
    create_topic(broker.bootstrap, topic, 3)
    produce(broker.bootstrap, topic, [{"value": b"x", "partition": p} for p in (0, 1, 1, 2, 2, 2)])
    member = java(version, "consume", broker.bootstrap, topic, group, "-1", "auto.offset.reset=earliest")
    wait_until(lambda: len(member.tagged("RECORD")) == 6, 90, "the member to read 6 records", interval=0.2)

    a = java(version, "admin", broker.bootstrap, topic, group).wait()
    a.assert_no_warning_loops()
    (cluster,) = a.tagged("CLUSTER")
    assert cluster[1:] == ["1", "0"], cluster
    assert a.tagged("TOPIC") == [[topic, "3", "0"]]
    assert [group] in a.tagged("GROUP")
    assert [[g, state.upper(), members] for g, state, members in a.tagged("DESCRIBED")] == [[group, "STABLE", "1"]]
    assert a.tagged("MEMBER") == [["logstash-0", "3"]]
    assert sorted(a.tagged("EARLIEST")) == [["0", "0"], ["1", "0"], ["2", "0"]]
    assert sorted(a.tagged("LATEST")) == [["0", "1"], ["1", "2"], ["2", "3"]]
    assert sorted(a.tagged("BYTIME")) == [["0", "0"], ["1", "0"], ["2", "0"]]
    member.kill()


def test_three_member_group_is_a_queue_and_two_groups_are_pub_sub(broker, java):
    topic, n = unique("queue"), 3_000
    create_topic(broker.bootstrap, topic, 6)
    queue = [java("3.9", "consume", broker.bootstrap, topic, "queue-group", "-1") for _ in range(3)]
    other = java("4", "consume", broker.bootstrap, topic, "other-group", "-1")

    def settled():
        # Everyone has an assignment from the same (last) rebalance: 6 partitions in the queue group.
        last = [m.tagged("ASSIGNED")[-1] if m.tagged("ASSIGNED") else None for m in queue]
        return all(last) and sum(len(" ".join(a).split()) for a in last) == 6 and other.tagged("ASSIGNED")

    wait_until(settled, 120, lambda: f"3 members sharing 6 partitions: {[m.tagged('ASSIGNED') for m in queue]}",
               interval=0.3)
    sent = [f"q{i}".encode() for i in range(n)]
    # Spread over every partition by hand: librdkafka's sticky partitioner may put a whole burst of
    # keyless records on the partitions of one member, and a member with nothing never finishes.
    produce(broker.bootstrap, topic, [{"value": v, "partition": i % 6} for i, v in enumerate(sent)])
    for m in [*queue, other]:
        m.wait(timeout=240)
        m.assert_no_warning_loops()

    per_member = [[r[2] for r in m.tagged("RECORD")] for m in queue]
    union = [v for vals in per_member for v in vals]
    assert Counter(union) == Counter(v.decode() for v in sent), "queue: each record to exactly one member"
    assert all(per_member), "every member got a share"
    assert Counter(r[2] for r in other.tagged("RECORD")) == Counter(v.decode() for v in sent), \
        "pub/sub: the second group sees every record"


@pytest.mark.parametrize("version", VERSIONS)
def test_transactions_and_kip848_are_refused_cleanly(broker, java, version):
    topic = unique("refused")
    create_topic(broker.bootstrap, topic, 1)
    tx = java(version, "transactional", broker.bootstrap, topic).wait(timeout=120)
    (refusal,) = tx.tagged("REFUSED")
    assert "TransactionalIdAuthorizationException" in refusal[0], refusal

    kip848 = java(version, "consumer-protocol", broker.bootstrap, topic).wait(timeout=120)
    (refusal,) = kip848.tagged("REFUSED")
    assert "UnsupportedVersionException" in refusal[0], refusal
