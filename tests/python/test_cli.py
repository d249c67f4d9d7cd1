"""The console tools (`logpipe topics|produce|consume|groups`), checked against what a Kafka client sees."""

from __future__ import annotations

from collections import Counter

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import ConfigResource, ResourceType

from support import (admin, consumer_conf, create_topic, parse_table, read_topic, topic_partitions, unique, wait_until,
                     watermarks)


def listed_topics(cli) -> set[str]:
    return {line.split()[0] for line in cli.run("topics", "list").stdout.splitlines() if line.strip()}


def topic_config(bootstrap: str, topic: str) -> dict[str, str]:
    res = ConfigResource(ResourceType.TOPIC, topic)
    client = admin(bootstrap)  # must outlive the future
    entries = client.describe_configs([res])[res].result(timeout=30)
    return {k: e.value for k, e in entries.items()}


def test_topics_create_list_describe_delete(broker, cli):
    topic = unique("cli")
    cli.run("topics", "create", topic, "--partitions", "3", "--config", "retention.ms=3600000")
    wait_until(lambda: topic_partitions(broker.bootstrap, topic) == [0, 1, 2], 30, "the topic in metadata")
    assert topic_config(broker.bootstrap, topic)["retention.ms"] == "3600000"

    assert topic in listed_topics(cli)

    described = cli.run("topics", "describe", topic).stdout
    assert topic in described
    everything = cli.run("topics", "describe").stdout
    assert topic in everything

    cli.run("topics", "delete", topic)
    wait_until(lambda: topic_partitions(broker.bootstrap, topic) is None, 30, "the topic gone from metadata")
    assert topic not in listed_topics(cli)


def test_topics_create_twice_fails(broker, cli):
    topic = unique("cli-dup")
    cli.run("topics", "create", topic, "--partitions", "1")
    again = cli.run("topics", "create", topic, "--partitions", "1", check=False)
    assert again.returncode != 0
    assert topic in again.stderr


def test_topics_describe_unknown_topic_fails(cli):
    r = cli.run("topics", "describe", unique("no-such-topic"), check=False)
    assert r.returncode != 0


def test_produce_then_consume_from_beginning(broker, cli):
    topic = unique("cli-pc")
    cli.run("topics", "create", topic, "--partitions", "1")
    lines = [f"line {i} ünïcødé ✓" for i in range(200)]
    cli.run("produce", topic, input="\n".join(lines) + "\n")

    assert [r.value.decode() for r in read_topic(broker.bootstrap, topic)[0]] == lines

    out = cli.run("consume", topic, "--from-beginning", "--max-messages", str(len(lines)),
                  "--timeout-ms", "30000").stdout
    assert out.splitlines() == lines


def test_consume_multi_partition_topic(broker, cli):
    topic = unique("cli-mp")
    create_topic(broker.bootstrap, topic, 3)
    lines = [f"v{i}" for i in range(300)]
    cli.run("produce", topic, input="\n".join(lines) + "\n")
    out = cli.run("consume", topic, "--from-beginning", "--max-messages", "300", "--timeout-ms", "30000").stdout
    assert Counter(out.splitlines()) == Counter(lines)


@pytest.mark.parametrize("acks", ["all", "1", "0"])
def test_produce_with_key_partition_and_acks(broker, cli, acks):
    topic = unique("cli-kp")
    create_topic(broker.bootstrap, topic, 3)
    cli.run("produce", topic, "--key", "k1", "--partition", "2", "--acks", acks, input="a\nb\nc\n")

    def all_there():
        return len(read_topic(broker.bootstrap, topic)[2]) == 3

    wait_until(all_there, 30, "3 records in partition 2")  # acks=0 returns before the broker has them
    got = read_topic(broker.bootstrap, topic)
    assert not got[0] and not got[1]
    assert [(r.key, r.value) for r in got[2]] == [(b"k1", b"a"), (b"k1", b"b"), (b"k1", b"c")]

    out = cli.run("consume", topic, "--partition", "2", "--offset", "1", "--max-messages", "2",
                  "--timeout-ms", "30000").stdout
    assert out.splitlines() == ["b", "c"]


def test_consume_stops_at_max_messages(broker, cli):
    topic = unique("cli-max")
    create_topic(broker.bootstrap, topic, 1)
    cli.run("produce", topic, input="".join(f"{i}\n" for i in range(50)))
    out = cli.run("consume", topic, "--from-beginning", "--max-messages", "7", "--timeout-ms", "30000").stdout
    assert out.splitlines() == [str(i) for i in range(7)]


def test_consume_timeout_returns_what_it_has(broker, cli):
    """--timeout-ms bounds the wait when fewer than --max-messages exist; never hangs."""
    topic = unique("cli-timeout")
    create_topic(broker.bootstrap, topic, 1)
    cli.run("produce", topic, input="only\n")
    r = cli.run("consume", topic, "--from-beginning", "--max-messages", "5", "--timeout-ms", "2000",
                check=False, timeout=60)
    assert r.stdout.splitlines() == ["only"]


# --------------------------------------------------------------------------------------------
# kafka-topics.sh's flags: --topic NAME, --if-not-exists / --if-exists, alter, and Configs: in describe


def describe_summary(cli, *args: str) -> dict[str, str]:
    """The `Topic: ...\tConfigs: ...` line of `topics describe`, as a dict."""
    line = next(line for line in cli.run("topics", "describe", *args).stdout.splitlines()
                if line.startswith("Topic:"))
    return dict(field.split(": ", 1) if ": " in field else (field.rstrip(":"), "") for field in line.split("\t"))


def test_topics_take_the_topic_flag_and_if_exists_flags(broker, cli):
    topic = unique("cli-flag")
    cli.run("topics", "create", "--topic", topic, "--partitions", "2")
    wait_until(lambda: topic_partitions(broker.bootstrap, topic) == [0, 1], 30, "the topic in metadata")
    assert describe_summary(cli, "--topic", topic)["Topic"] == topic

    again = cli.run("topics", "create", "--topic", topic, check=False)
    assert again.returncode != 0 and "TopicAlreadyExists" in again.stderr
    quiet = cli.run("topics", "create", "--topic", topic, "--if-not-exists")
    assert quiet.stdout == "" and quiet.stderr == ""

    both = cli.run("topics", "describe", topic, "--topic", topic, check=False)
    assert both.returncode != 0 and "cannot be used with" in both.stderr

    # The console producer and consumer take it too, as kafka-console-producer/consumer.sh do.
    cli.run("produce", "--topic", topic, "--partition", "1", input="a\nb\n")
    out = cli.run("consume", "--topic", topic, "--from-beginning", "--max-messages", "2", "--timeout-ms", "30000")
    assert out.stdout.splitlines() == ["a", "b"]

    cli.run("topics", "delete", "--topic", topic)
    wait_until(lambda: topic_partitions(broker.bootstrap, topic) is None, 30, "the topic gone")
    for args in (("delete", "--topic", topic), ("alter", topic, "--partitions", "3"), ("describe", topic)):
        missing = cli.run("topics", *args, check=False)
        assert missing.returncode != 0 and f"topic '{topic}'" in missing.stderr, (args, missing.stderr)
        assert cli.run("topics", *args, "--if-exists").returncode == 0, args


def test_topics_alter_adds_partitions_and_changes_only_the_named_configs(broker, cli):
    topic = unique("cli-alter")
    cli.run("topics", "create", topic, "--partitions", "1", "--config", "retention.ms=3600000")
    wait_until(lambda: topic_partitions(broker.bootstrap, topic) == [0], 30, "the topic in metadata")
    assert describe_summary(cli, topic)["Configs"] == "retention.ms=3600000"

    out = cli.run("topics", "alter", "--topic", topic, "--partitions", "4", "--config", "segment.bytes=1048576")
    assert f"Altered topic {topic}." in out.stdout
    wait_until(lambda: topic_partitions(broker.bootstrap, topic) == [0, 1, 2, 3], 30, "4 partitions")
    config = topic_config(broker.bootstrap, topic)
    assert (config["retention.ms"], config["segment.bytes"]) == ("3600000", "1048576"), config
    summary = describe_summary(cli, topic)
    assert summary["PartitionCount"] == "4"
    assert summary["Configs"] == "retention.ms=3600000,segment.bytes=1048576"

    cli.run("topics", "alter", topic, "--delete-config", "retention.ms")
    assert describe_summary(cli, topic)["Configs"] == "segment.bytes=1048576"

    fewer = cli.run("topics", "alter", topic, "--partitions", "2", check=False)
    assert fewer.returncode != 0 and "has 4 partition(s)" in fewer.stderr and "never removed" in fewer.stderr
    typo = cli.run("topics", "alter", topic, "--config", "retention.mss=5", check=False)
    assert typo.returncode != 0 and "'retention.mss'" in typo.stderr and "retention.ms" in typo.stderr
    nothing = cli.run("topics", "alter", topic, check=False)
    assert nothing.returncode != 0 and "--partitions" in nothing.stderr


# --------------------------------------------------------------------------------------------
# kafka-consumer-groups.sh's flags: --group, delete, --shift-by, --all-groups, --all-topics


def commit_as(bootstrap: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    """Commit offsets for `group` from a consumer that never joins it (the group stays Empty)."""
    c = Consumer(consumer_conf(bootstrap, group=group))
    try:
        c.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
    finally:
        c.close()


def committed(bootstrap: str, group: str, topic: str, partitions) -> dict[int, int]:
    c = Consumer(consumer_conf(bootstrap, group=group))
    try:
        return {tp.partition: tp.offset for tp in c.committed([TopicPartition(topic, p) for p in partitions],
                                                             timeout=30)}
    finally:
        c.close()


def test_groups_shift_by_all_groups_all_topics_and_delete(broker, cli):
    topic = unique("cli-groups")
    create_topic(broker.bootstrap, topic, 2)
    for p in (0, 1):
        cli.run("produce", topic, "--partition", str(p), input="".join(f"{i}\n" for i in range(20)))
    ends = {p: watermarks(broker.bootstrap, topic, p)[1] for p in (0, 1)}
    g1, g2 = unique("shift-a"), unique("shift-b")
    commit_as(broker.bootstrap, g1, topic, {0: 5, 1: 5})
    commit_as(broker.bootstrap, g2, topic, {0: 6, 1: 6})

    plan = cli.run("groups", "reset-offsets", "--group", g1, "--topic", topic, "--shift-by", "-2")
    assert [(r["GROUP"], r["TOPIC"], r["NEW-OFFSET"]) for r in parse_plan(plan.stdout)] == [(g1, topic, "3")] * 2
    assert committed(broker.bootstrap, g1, topic, [0, 1]) == {0: 5, 1: 5}, "a dry run committed"
    cli.run("groups", "reset-offsets", g1, "--topic", topic, "--shift-by", "-2", "--execute")
    assert committed(broker.bootstrap, g1, topic, [0, 1]) == {0: 3, 1: 3}
    cli.run("groups", "reset-offsets", g1, "--topic", topic, "--shift-by", "1000", "--execute")
    assert committed(broker.bootstrap, g1, topic, [0, 1]) == ends, "a shift past the end stops at the end"

    nothing = unique("never-committed")
    r = cli.run("groups", "reset-offsets", nothing, "--topic", topic, "--shift-by", "1", check=False)
    assert r.returncode != 0 and "no committed offset" in r.stderr

    described = cli.run("groups", "describe", "--all-groups").stdout
    assert g1 in described and g2 in described
    both = cli.run("groups", "describe", "--group", g1, "--group", g2).stdout
    assert {row[0] for row in map(str.split, both.splitlines()) if len(row) > 2 and row[1] == topic} == {g1, g2}

    cli.run("groups", "reset-offsets", "--all-groups", "--all-topics", "--to-earliest", "--execute")
    assert committed(broker.bootstrap, g1, topic, [0, 1]) == {0: 0, 1: 0}
    assert committed(broker.bootstrap, g2, topic, [0, 1]) == {0: 0, 1: 0}

    out = cli.run("groups", "delete", "--group", g1, "--group", g2)
    assert out.stdout.strip() == f"Deletion of requested consumer groups ('{g1}', '{g2}') was successful."
    listed = cli.run("groups", "list").stdout.split()
    assert g1 not in listed and g2 not in listed
    gone = cli.run("groups", "delete", g1, check=False)
    assert gone.returncode != 0 and g1 in gone.stderr and "groups list" in gone.stderr


def test_groups_delete_refuses_a_group_with_members(broker, cli):
    topic, group = unique("cli-busy"), unique("busy")
    create_topic(broker.bootstrap, topic, 1)
    c = Consumer(consumer_conf(broker.bootstrap, group=group))
    try:
        c.subscribe([topic])
        wait_until(lambda: c.poll(0.2) is None and c.assignment(), 60, "the member's assignment")
        r = cli.run("groups", "delete", group, check=False)
        assert r.returncode != 0 and group in r.stderr and "stop its consumers" in r.stderr, r.stderr
    finally:
        c.close()


def parse_plan(text: str) -> list[dict[str, str]]:
    lines = [line.split() for line in text.splitlines() if line.strip()]
    assert lines and lines[0] == ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"], text
    return [dict(zip(lines[0], row)) for row in lines[1:]]
