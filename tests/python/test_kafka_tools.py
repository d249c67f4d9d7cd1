"""Apache Kafka's own command-line tools (4.4, from .peers/kafka) against the broker, typed as users type
them with `--bootstrap-server`. Each tool is run through the main class its `bin/kafka-*.sh` script
runs. One broker serves the module; every test uses its own topic and group."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest

from peers import run_tool
from support import Broker, close_and_report, parse_table, unique, wait_until

TOPICS = "org.apache.kafka.tools.TopicCommand"
PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
GROUPS = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
CONFIGS = "org.apache.kafka.tools.ConfigCommand"
DELETE_RECORDS = "org.apache.kafka.tools.DeleteRecordsCommand"
GET_OFFSETS = "org.apache.kafka.tools.GetOffsetShell"
API_VERSIONS = "org.apache.kafka.tools.BrokerApiVersionsCommand"
PRODUCER_PERF = "org.apache.kafka.tools.ProducerPerformance"
CONSUMER_PERF = "org.apache.kafka.tools.ConsumerPerformance"

# Error loops a client logs when a broker answers it wrongly.
LOOPS = re.compile(r"UNSUPPORTED_VERSION|UnsupportedVersion|NOT_COORDINATOR|COORDINATOR_NOT_AVAILABLE|"
                   r"LEADER_NOT_AVAILABLE|NOT_LEADER_OR_FOLLOWER|CORRUPT_MESSAGE")


@pytest.fixture(scope="module")
def broker(logpipe_bin, tmp_path_factory, request):
    b = Broker(logpipe_bin, tmp_path_factory.mktemp("tools-broker"), {})
    b.start()
    yield b
    close_and_report([b], request, "broker", tail=60)


def tool(broker, main_class: str, *args: str, stdin: str | None = None, timeout: float = 180):
    result = run_tool(main_class, ["--bootstrap-server", broker.bootstrap, *args], stdin=stdin, timeout=timeout).check()
    loops = LOOPS.findall(result.stderr)
    assert not loops, f"{main_class} logged {loops[:5]}:\n{result.stderr[-3000:]}"
    return result


def create(broker, topic: str, partitions: int = 3) -> None:
    out = tool(broker, TOPICS, "--create", "--replication-factor", "1", "--partitions", str(partitions), "--topic", topic)
    assert f"Created topic {topic}." in out.stdout


def end_offsets(broker, topic: str, time: str = "-1") -> dict[int, int]:
    out = tool(broker, GET_OFFSETS, "--topic", topic, "--time", time).stdout
    return {int(p): int(o) for t, p, o in (line.rsplit(":", 2) for line in out.split()) if t == topic}


def consume(broker, topic: str, n: int, *extra: str) -> list[str]:
    out = tool(broker, CONSUMER, "--topic", topic, "--from-beginning", "--max-messages", str(n),
               "--timeout-ms", "60000", *extra)
    return out.stdout.splitlines()


def test_seed_commands_topics_console_producer_consumer_and_groups(broker):
    topic, group = unique("order"), unique("G")
    create(broker, topic)
    assert topic in tool(broker, TOPICS, "--list").stdout.split()
    described = tool(broker, TOPICS, "--describe", "--topic", topic).stdout
    assert "PartitionCount: 3" in described and "ReplicationFactor: 1" in described
    assert len(re.findall(r"Partition: \d+\s+Leader: 0", described)) == 3

    lines = [f"order {i}" for i in range(30)]
    tool(broker, PRODUCER, "--topic", topic, stdin="\n".join(lines) + "\n")
    keyed = [f"k{i}:keyed {i}" for i in range(10)]
    tool(broker, PRODUCER, "--topic", topic, "--property", "parse.key=true", "--property", "key.separator=:",
         stdin="\n".join(keyed) + "\n")
    assert sum(end_offsets(broker, topic).values()) == 40

    got = consume(broker, topic, 40, "--group", group)
    assert sorted(got) == sorted(lines + [k.split(":", 1)[1] for k in keyed])
    rows = [r for r in parse_table(tool(broker, GROUPS, "--describe", "--group", group).stdout) if r["TOPIC"] == topic]
    assert len(rows) == 3 and all(r["LAG"] == "0" for r in rows), rows
    assert sum(int(r["CURRENT-OFFSET"]) for r in rows) == 40


def test_alter_partitions_configs_and_delete_records(broker):
    topic = unique("alter")
    create(broker, topic, 2)
    tool(broker, TOPICS, "--alter", "--topic", topic, "--partitions", "5")
    assert "PartitionCount: 5" in tool(broker, TOPICS, "--describe", "--topic", topic).stdout
    shrink = run_tool(TOPICS, ["--bootstrap-server", broker.bootstrap, "--alter", "--topic", topic, "--partitions", "3"])
    assert shrink.returncode != 0 and "can only grow" in shrink.stdout + shrink.stderr

    tool(broker, CONFIGS, "--alter", "--entity-type", "topics", "--entity-name", topic, "--add-config", "retention.ms=86400000")
    dynamic = tool(broker, CONFIGS, "--describe", "--entity-type", "topics", "--entity-name", topic).stdout
    assert "retention.ms=86400000" in dynamic
    assert "retention.ms=86400000" in tool(broker, TOPICS, "--describe", "--topic", topic).stdout
    tool(broker, CONFIGS, "--alter", "--entity-type", "topics", "--entity-name", topic, "--delete-config", "retention.ms")
    assert "retention.ms" not in tool(broker, CONFIGS, "--describe", "--entity-type", "topics", "--entity-name", topic).stdout
    typo = run_tool(CONFIGS, ["--bootstrap-server", broker.bootstrap, "--alter", "--entity-type", "topics",
                              "--entity-name", topic, "--add-config", "retention.mss=5"])
    assert typo.returncode != 0 and "retention.mss" in typo.stdout + typo.stderr
    assert "configs for broker 0" in tool(broker, CONFIGS, "--describe", "--entity-type", "brokers", "--entity-name", "0").stdout

    lines = [f"rec {i}" for i in range(20)]
    tool(broker, PRODUCER, "--topic", topic, "--property", "parse.key=true", "--property", "key.separator=:",
         stdin="".join(f"same:{line}\n" for line in lines))
    (partition, end), = [(p, o) for p, o in end_offsets(broker, topic).items() if o > 0]
    spec = broker.workdir / f"{topic}-delete.json"
    spec.write_text(json.dumps({"partitions": [{"topic": topic, "partition": partition, "offset": 12}], "version": 1}))
    out = tool(broker, DELETE_RECORDS, "--offset-json-file", str(spec)).stdout
    assert f"partition: {topic}-{partition}\tlow_watermark: 12" in out, out
    assert end_offsets(broker, topic, "-2")[partition] == 12
    assert consume(broker, topic, 8) == lines[12:]


def test_consumer_group_list_reset_and_delete(broker):
    topic, group = unique("reset"), unique("G")
    create(broker, topic, 2)
    tool(broker, PRODUCER, "--topic", topic, stdin="".join(f"m{i}\n" for i in range(20)))
    consume(broker, topic, 20, "--group", group)

    listed = tool(broker, GROUPS, "--list").stdout.split()
    assert group in listed
    states = tool(broker, GROUPS, "--list", "--state").stdout
    assert re.search(rf"^{re.escape(group)}\s+Empty\s*$", states, re.M), states
    types = tool(broker, GROUPS, "--list", "--type").stdout
    assert re.search(rf"^{re.escape(group)}\s+Classic\s*$", types, re.M), types
    assert group in tool(broker, GROUPS, "--list", "--type", "classic").stdout
    assert group not in tool(broker, GROUPS, "--list", "--type", "consumer").stdout

    def committed() -> dict[int, int]:
        return {int(r["PARTITION"]): int(r["CURRENT-OFFSET"])
                for r in parse_table(tool(broker, GROUPS, "--describe", "--group", group).stdout) if r["TOPIC"] == topic}

    ends = end_offsets(broker, topic)
    assert committed() == ends
    reset = ["--reset-offsets", "--group", group, "--topic", topic, "--execute"]
    tool(broker, GROUPS, *reset, "--to-earliest")
    assert committed() == {p: 0 for p in ends}
    tool(broker, GROUPS, *reset, "--shift-by", "3")
    assert committed() == {p: min(3, e) for p, e in ends.items()}
    future = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000")
    tool(broker, GROUPS, *reset, "--to-datetime", future)
    assert committed() == ends, "a datetime after every record resets to the log end"
    past = "2000-01-01T00:00:00.000"
    tool(broker, GROUPS, *reset, "--to-datetime", past)
    assert committed() == {p: 0 for p in ends}

    assert "was successful" in tool(broker, GROUPS, "--delete", "--group", group).stdout
    assert group not in tool(broker, GROUPS, "--list").stdout.split()


def test_get_offsets_and_broker_api_versions(broker):
    topic = unique("offsets")
    create(broker, topic, 3)
    tool(broker, PRODUCER, "--topic", topic, stdin="".join(f"x{i}\n" for i in range(9)))
    latest = end_offsets(broker, topic)
    assert sum(latest.values()) == 9 and set(latest) == {0, 1, 2}
    assert end_offsets(broker, topic, "-2") == {0: 0, 1: 0, 2: 0}

    out = tool(broker, API_VERSIONS).stdout
    for api in ["Produce(0): 0 to 9", "Fetch(1): 0 to 12", "ListOffsets(2): 0 to 6", "OffsetCommit(8): 0 to 8",
                "CreatePartitions(37)", "IncrementalAlterConfigs(44)", "DeleteRecords(21)", "ListGroups(16): 0 to 5"]:
        assert api in out, f"{api} missing from\n{out}"
    implemented = ["Produce", "Fetch", "ListOffsets", "Metadata", "OffsetCommit", "OffsetFetch", "FindCoordinator",
                   "JoinGroup", "Heartbeat", "LeaveGroup", "SyncGroup", "DescribeGroups", "ListGroups", "ApiVersions",
                   "CreateTopics", "DeleteTopics", "DeleteRecords", "InitProducerId", "DescribeConfigs",
                   "AlterConfigs", "DescribeLogDirs", "CreatePartitions", "DeleteGroups", "IncrementalAlterConfigs",
                   "OffsetDelete"]
    for api in implemented:
        line = re.search(rf"^\s*{api}\(\d+\): .*$", out, re.M)
        assert line and "UNSUPPORTED" not in line.group(0) and "usable" in line.group(0), f"{api}: {line and line.group(0)}"


def test_producer_and_consumer_perf_tests(broker):
    topic, n = unique("perf"), 50_000
    create(broker, topic, 3)
    out = tool(broker, PRODUCER_PERF, "--topic", topic, "--num-records", str(n), "--record-size", "200",
               "--throughput", "-1", "--producer-props", f"bootstrap.servers={broker.bootstrap}", "acks=all",
               timeout=300).stdout
    # e.g. "50000 records sent, 41666.7 records/sec (7.95 MB/sec), 250.00 ms avg latency, ..."
    assert re.search(rf"^{n} records sent, [\d.]+ records/sec", out, re.M), out
    assert sum(end_offsets(broker, topic).values()) == n

    out = tool(broker, CONSUMER_PERF, "--topic", topic, "--messages", str(n), "--timeout", "60000",
               timeout=300).stdout
    # The data line: start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, ...
    rows = [line.split(", ") for line in out.splitlines() if re.match(r"^\d{4}-\d\d-\d\d", line)]
    assert rows and int(rows[-1][4]) == n, out


# --------------------------------------------------------------------------------------------
# logpipe's console tools beside Kafka's, on the same broker: same flags, same answers


def logpipe(logpipe_bin, broker, *args: str, env: dict | None = None, check: bool = True):
    import os
    import subprocess

    from support import child_cmd
    argv = [str(logpipe_bin), *args, "--bootstrap-server", broker.bootstrap]
    p = subprocess.run(child_cmd(argv), capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                       env={**os.environ, **(env or {})})
    assert not check or p.returncode == 0, f"{argv} exited {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def summary_line(text: str, topic: str) -> dict[str, str]:
    """The `Topic: T\tTopicId: ...\tConfigs: ...` line of a describe, as a dict."""
    line = next(line for line in text.splitlines() if line.startswith(f"Topic: {topic}\t"))
    return dict(f.split(": ", 1) if ": " in f else (f.rstrip(":"), "") for f in line.split("\t"))


def test_logpipe_topics_describe_alter_and_if_not_exists_agree_with_kafka_topics(broker, logpipe_bin):
    topic = unique("lp-topics")
    tool(broker, TOPICS, "--create", "--topic", topic, "--partitions", "2", "--replication-factor", "1",
         "--config", "retention.ms=3600000")
    logpipe(logpipe_bin, broker, "topics", "alter", "--topic", topic, "--partitions", "3",
            "--config", "segment.bytes=1048576")
    tool(broker, TOPICS, "--alter", "--topic", topic, "--partitions", "4")

    ours = summary_line(logpipe(logpipe_bin, broker, "topics", "describe", "--topic", topic).stdout, topic)
    theirs = summary_line(tool(broker, TOPICS, "--describe", "--topic", topic).stdout, topic)
    assert ours == theirs, f"logpipe: {ours}\nkafka-topics: {theirs}"
    assert ours["PartitionCount"] == "4" and len(ours["TopicId"]) == 22
    assert ours["Configs"] == "retention.ms=3600000,segment.bytes=1048576"

    # --if-not-exists / --if-exists: both succeed quietly.
    assert tool(broker, TOPICS, "--create", "--if-not-exists", "--topic", topic).stdout == ""
    assert logpipe(logpipe_bin, broker, "topics", "create", "--if-not-exists", "--topic", topic).stdout == ""
    missing = unique("lp-missing")
    tool(broker, TOPICS, "--delete", "--if-exists", "--topic", missing)
    logpipe(logpipe_bin, broker, "topics", "delete", "--if-exists", "--topic", missing)


def plan(text: str) -> list[tuple[str, str, int, int]]:
    """The rows of a reset-offsets plan (GROUP TOPIC PARTITION NEW-OFFSET), sorted."""
    rows = [line.split() for line in text.splitlines()]
    return sorted((r[0], r[1], int(r[2]), int(r[3])) for r in rows if len(r) == 4 and r[2].isdigit() and r[3].isdigit())


def test_logpipe_reset_plans_agree_with_kafka_consumer_groups(broker, logpipe_bin):
    """--shift-by and --to-datetime in Kafka's zone-less format plan the same offsets in both tools. Kafka
    reads a zone-less time as UTC whatever the machine's zone; both run in a +05:30 zone here, so a tool
    reading it as local time would be off by hours."""
    from pathlib import Path

    from confluent_kafka import Consumer, TopicPartition

    from support import consumer_conf, produce

    assert Path("/usr/share/zoneinfo/Asia/Kolkata").exists(), "install tzdata (apt-get install tzdata)"
    zone = {"TZ": "Asia/Kolkata"}
    topic, group = unique("lp-reset"), unique("lp-reset")
    create(broker, topic, 2)
    t0 = int(datetime.now(timezone.utc).timestamp() * 1000) - 3_600_000
    produce(broker.bootstrap, topic, [{"value": f"{i}".encode(), "partition": p, "timestamp": t0 + i * 1000}
                                      for p in range(2) for i in range(20)])
    c = Consumer(consumer_conf(broker.bootstrap, group=group))
    try:
        c.commit(offsets=[TopicPartition(topic, p, 7) for p in range(2)], asynchronous=False)
    finally:
        c.close()

    when = datetime.fromtimestamp((t0 + 12_500) / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    # The records are an hour old: 30 minutes back is after all of them, two hours before.
    for target in (["--shift-by", "-3"], ["--shift-by", "100"], ["--to-current"], ["--by-duration", "PT30M"],
                   ["--by-duration", "PT2H"], ["--to-datetime", when]):
        theirs = run_tool(GROUPS, ["--bootstrap-server", broker.bootstrap, "--reset-offsets", "--group", group,
                                   "--topic", topic, "--dry-run", *target], env=zone).check()
        ours = logpipe(logpipe_bin, broker, "groups", "reset-offsets", "--group", group, "--topic", topic, *target,
                       env=zone)
        assert plan(ours.stdout) == plan(theirs.stdout), (target, ours.stdout, theirs.stdout)
    assert plan(ours.stdout) == [(group, topic, 0, 13), (group, topic, 1, 13)]
