"""The console tools (`logpipe topics|produce|consume`), checked against what a Kafka client sees."""

from __future__ import annotations

from collections import Counter

import pytest
from confluent_kafka.admin import ConfigResource, ResourceType

from support import admin, create_topic, read_topic, topic_partitions, unique, wait_until


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
