"""The README's "Running at scale" layout on a real Apache Kafka 4.4 cluster: three KRaft nodes on
127.0.0.1 (replication factor 3, min.insync.replicas=2), `logpipe agent` (acks=all) shipping nginx logs,
two `logpipe indexer` processes in one group writing to the Elasticsearch stand-in. While it runs, the
leader of a partition is killed -9 and restarted, and one indexer is stopped so the other takes over its
partitions. Afterwards every generated line is in exactly one document. The agent's own producer also
ships with each codec and keyed partitioning to the cluster, whose brokers validate every batch."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timezone

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import NewTopic

from agent_support import AgentProcess, agent_toml
from appliance_support import Stored, expected_indices, summarize
from indexer_support import (FAST_GROUP, NGINX_FILTERS, NGINX_ROUTES, envelope, es_output, event_id, indexer_toml,
                             new_run, produce_values, wait_committed_to_end)
from kafka_cluster import KafkaCluster
from support import child_cmd, close_and_report, unique, wait_until

LINES = 40_000
RATE = 2_000
START = datetime(2026, 11, 20, 23, 55, tzinfo=timezone.utc)
STEP_MS = 20
GROUP = "logpipe-indexer"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, request):
    c = KafkaCluster(tmp_path_factory.mktemp("kafka"), nodes=3)
    try:
        c.start()
        yield c
    finally:
        failed = request.session.testsfailed > 0
        if failed:
            print(c.tails())
        c.close()


def rfc3339(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_agent_and_two_indexers_survive_a_leader_kill_and_an_indexer_stop(
        cluster, logpipe_bin, indexer_factory, es_standin, nginx_gen, tmp_path, request):
    admin = cluster.admin()
    futures = admin.create_topics([NewTopic("nginx", num_partitions=3, replication_factor=3,
                                            config={"min.insync.replicas": "2"})])
    futures["nginx"].result(timeout=60)
    logs = tmp_path / "logs"
    logs.mkdir()
    brokers = cluster.bootstrap.split(",")

    agent = AgentProcess(logpipe_bin, tmp_path / "agent", agent_toml(
        tmp_path / "agent" / "registry.json", brokers, "nginx",
        [{"type": "file", "paths": [str(logs / "access.log*")], "tags": ["access"], "scan_frequency": "500ms"},
         {"type": "file", "paths": [str(logs / "error.log*")], "tags": ["error"], "scan_frequency": "500ms",
          "multiline": {"pattern": r"^\d{4}/\d{2}/\d{2} ", "negate": True, "match": "after"}}],
        host_name="scale-test"), child_cmd)
    indexers = []
    try:
        agent.start()
        config = indexer_toml(brokers, ["nginx"], GROUP, filters=NGINX_FILTERS, routes=NGINX_ROUTES,
                              elasticsearch=es_output(es_standin.url))
        indexers = [indexer_factory(config), indexer_factory(config)]
        gen = nginx_gen(logs, tmp_path / "summary.json", "--rate", str(RATE), "--lines", str(LINES),
                        "--rotate-every", "5", "--keep", "20", "--start", rfc3339(START),
                        "--step-ms", str(STEP_MS), "--seed", "7")
        procs = [agent, *indexers]

        # A quarter in: kill -9 the leader of partition 0, and bring it back a little later.
        wait_until(lambda: es_standin.count() >= LINES // 4, 300,
                   lambda: f"{LINES // 4} documents, have {es_standin.count()}", procs=procs)
        victim = cluster.leader("nginx", 0)
        victim.kill9()
        wait_until(lambda: cluster.leader("nginx", 0).node_id != victim.node_id, 60, "a new leader for nginx-0")
        wait_until(lambda: es_standin.count() >= LINES // 2, 300,
                   lambda: f"{LINES // 2} documents with node {victim.node_id} down, have {es_standin.count()}",
                   procs=procs)
        victim.start()
        cluster.wait_brokers(3)

        # Half-way on: one indexer leaves; the other takes over its partitions.
        wait_until(lambda: es_standin.count() >= LINES * 3 // 4, 300,
                   lambda: f"{LINES * 3 // 4} documents, have {es_standin.count()}", procs=procs)
        assert indexers[0].stop() == 0
        procs = [agent, indexers[1]]

        summary = gen.wait(timeout=300)
        assert summary["total"] == LINES, summary
        wait_until(lambda: es_standin.count() >= LINES, 300,
                   lambda: f"{LINES} documents, have {es_standin.count()}: {es_standin.stats()}",
                   interval=0.5, procs=procs)

        stored = Stored.read(es_standin)
        assert not stored.unnumbered, summarize(stored.unnumbered, 3)
        assert not stored.duplicates(), f"lines stored more than once {summarize(stored.duplicates().items())}"
        assert not (missing := stored.missing(1, LINES)), f"lines never indexed {summarize(missing)}"
        assert stored.per_index == expected_indices(summary)
        print(f"scale-out: {LINES} lines through a 3-node Kafka cluster; node {victim.node_id} killed and "
              f"restarted, one indexer stopped; stand-in {es_standin.stats()}")
    finally:
        close_and_report([agent], request, "agent")


def with_instance(text: str, instance: str) -> str:
    """An indexer_toml() pipeline with `group_instance_id = instance` in [indexer.input]."""
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("group_id = "))
    lines.insert(at + 1, f'group_instance_id = "{instance}"')
    return "\n".join(lines) + "\n"


def test_indexer_replaces_a_fenced_consumer(cluster, indexer_factory, es_standin):
    """A static member the coordinator fences (FENCED_INSTANCE_ID: another consumer joined with its
    group.instance.id, as when a coordinator failover loses a member's join; seen in the scale-out test)
    is a fatal error in librdkafka: that consumer never reads again. The indexer replaces it with a new
    one, which joins again and goes on indexing; nothing is lost or indexed twice."""
    topic, group, run, partitions = unique("static"), unique("logpipe-indexer"), new_run(), 3
    admin = cluster.admin()  # kept alive until the topic exists: a dropped client cancels its futures
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=3)])[topic].result(60)
    es = es_standin
    first, second = 1000, 1000
    produce_values(cluster.bootstrap, topic, (envelope(run, i) for i in range(first)))
    ix = indexer_factory(with_instance(indexer_toml(cluster.bootstrap.split(","), [topic], group,
                                                    default_index="static-docs", elasticsearch=es_output(es.url)),
                                       "indexer-a"))
    wait_until(lambda: es.count() == first, 120, lambda: f"{first} documents, have {es.count()}", procs=[ix])

    # Another consumer joins with the same group.instance.id: the coordinator fences the indexer's.
    impostor = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": group, "group.instance.id": "indexer-a",
                         "session.timeout.ms": 6000, "enable.auto.commit": False, "log_level": 0})
    try:
        impostor.subscribe([topic])

        def fenced() -> bool:
            impostor.poll(0.1)  # joins the group, and takes the indexer's place
            return "fenced" in ix.run_stderr().lower()

        wait_until(fenced, 120, "the indexer to log that its consumer was fenced", procs=[ix])
    finally:
        impostor.close()  # a static member sends no LeaveGroup: the indexer's new consumer replaces it

    produce_values(cluster.bootstrap, topic, (envelope(run, i) for i in range(first, first + second)))
    wait_until(lambda: es.count() == first + second, 120,
               lambda: f"{first + second} documents, have {es.count()}", procs=[ix])
    wait_committed_to_end([ix], cluster.bootstrap, group, topic, list(range(partitions)))
    assert set(es.all_ids()) == {event_id(run, i) for i in range(first + second)}
    stats = es.stats()
    assert stats["created"] == first + second and stats["rejected"] == 0, stats


@pytest.mark.parametrize("isolation", ["read_committed", "read_uncommitted"])
def test_indexer_reads_committed_transactions_only(cluster, logpipe_bin, indexer_factory, es_standin, isolation):
    """The indexer's fetch path under `isolation.level`: a transactional producer (confluent-kafka)
    commits a transaction, aborts one and commits a third, across two partitions of the cluster. Under
    read_committed (the default, as in librdkafka and the Java client) the aborted events are left out;
    under read_uncommitted they are indexed too. The transaction markers never become documents. The
    last transaction is committed after the aborted one, so once its events are in, any aborted event
    would have been read before them. `logpipe replay` of the whole topic then ends, though each
    partition's log ends with a commit marker, which no consumer is ever handed."""
    topic, group, run, partitions = unique("txn"), unique("logpipe-indexer"), new_run(), 2
    admin = cluster.admin()
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=3)])[topic].result(60)
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "transactional.id": unique("txn-producer"),
                         "linger.ms": 5, "log_level": 0})
    producer.init_transactions(60)
    transactions = [(range(0, 100), True), (range(100, 200), False), (range(200, 300), True)]
    for seqs, commit in transactions:
        producer.begin_transaction()
        for i in seqs:
            producer.produce(topic, envelope(run, i), partition=i % partitions)
        producer.flush(60)
        if commit:
            producer.commit_transaction(60)
        else:
            producer.abort_transaction(60)
    expected = {event_id(run, i) for seqs, commit in transactions for i in seqs
                if commit or isolation == "read_uncommitted"}
    es = es_standin
    ix = indexer_factory(indexer_toml(cluster.bootstrap.split(","), [topic], group, default_index="txn-docs",
                                      elasticsearch=es_output(es.url),
                                      librdkafka={**FAST_GROUP, "isolation.level": isolation}))
    last = {event_id(run, i) for i in range(200, 300)}
    wait_until(lambda: last <= set(es.all_ids()), 120, lambda: f"the last transaction's events, have {es.count()}",
               procs=[ix])
    assert set(es.all_ids()) == expected
    stats = es.stats()
    assert stats["created"] == len(expected) and stats["rejected"] == 0, stats

    replayed = subprocess.run([str(logpipe_bin), "replay", "-c", str(ix.config_path), "--topic", topic,
                               "--from", "2000-01-01T00:00:00Z"], capture_output=True, text=True, timeout=120)
    assert replayed.returncode == 0, replayed.stderr
    assert f"replayed {len(expected)} records; 0 refused" in replayed.stdout, replayed.stdout
    assert es.stats()["created"] == len(expected), "a replay only meets what is indexed"


def test_indexer_sends_a_backlog_in_full_batches_and_new_records_at_once(cluster, indexer_factory, es_standin):
    """When the indexer sends a batch, judged by the cluster's high watermarks (three partitions, their
    leaders spread over the nodes, so the fetcher reads over several connections). A backlog of 3,000
    records goes in three full batches of 1,000. Once the indexer has read everything, each new record
    is sent at once, although `batch_timeout` is ten minutes: a consumer that has caught up has nothing
    to wait for, so the latency at a steady rate is a fetch and a bulk request rather than the timeout."""
    topic, group, run, partitions = unique("batches"), unique("logpipe-indexer"), new_run(), 3
    admin = cluster.admin()
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=3)])[topic].result(60)
    backlog = 3000
    produce_values(cluster.bootstrap, topic, (envelope(run, i) for i in range(backlog)), partitions)
    es = es_standin
    output = es_output(es.url, batch_max_events=1000, batch_timeout="10m")
    ix = indexer_factory(indexer_toml(cluster.bootstrap.split(","), [topic], group, default_index="batch-docs",
                                      elasticsearch=output))
    wait_until(lambda: es.count() >= backlog, 120, lambda: f"{backlog} documents, have {es.count()}", procs=[ix])
    assert es.bulk_requests_total == 3, es.stats()
    for i in range(backlog, backlog + 5):
        produce_values(cluster.bootstrap, topic, [envelope(run, i)], partitions)
        wait_until(lambda i=i: es.count() > i, 60, lambda i=i: f"document {i}, have {es.count()}", procs=[ix])
    assert es.bulk_requests_total == 3 + 5, es.stats()
    assert set(es.all_ids()) == {event_id(run, i) for i in range(backlog + 5)}


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_agent_producer_codecs_and_key_partitioning_on_kafka(cluster, logpipe_bin, tmp_path, request, codec):
    """The agent's own producer against Kafka's broker, which validates each batch (CRC, sequence
    numbers, every compressed record) before it appends it: every codec is accepted, each line arrives
    once and in its file's order, keyed records land where Kafka's own partitioner (here kafka-python's
    murmur2) puts them, and records carry their CreateTime."""
    from kafka.partitioner.default import murmur2

    from agent_support import append_lines, file_input
    from support import read_topic

    topic = f"codec-{codec}"
    admin = cluster.admin()
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=3,
                                  config={"min.insync.replicas": "2"})])[topic].result(timeout=60)
    logs = tmp_path / "logs"
    logs.mkdir()
    per_file = 3_000
    names = [f"app{i}.log" for i in range(4)]
    for i, name in enumerate(names):
        append_lines(logs / name, range(i * per_file, (i + 1) * per_file))
    before_ms = int(datetime.now(timezone.utc).timestamp() * 1000)
    agent = AgentProcess(logpipe_bin, tmp_path / "agent", agent_toml(
        tmp_path / "agent" / "registry.json", cluster.bootstrap.split(","), topic,
        [file_input([str(logs / "*.log")])],
        output={"compression": codec, "partitioner": "hash", "key": "log.file.path"}), child_cmd)
    try:
        agent.start()
        total = per_file * len(names)

        def read_all():
            records = read_topic(cluster.bootstrap, topic)
            return records if sum(len(r) for r in records.values()) >= total else None

        records = wait_until(read_all, 120, f"{total} records in {topic}", procs=[agent])
        after_ms = int(datetime.now(timezone.utc).timestamp() * 1000)
        seen = {}
        for partition, recs in records.items():
            for r in recs:
                path = r.key.decode()
                assert (murmur2(r.key) & 0x7FFFFFFF) % 3 == partition, (path, partition)
                assert before_ms - 1000 <= r.timestamp[1] <= after_ms + 1000, r.timestamp
                seen.setdefault(path, []).append(r.value)
        assert sorted(seen) == sorted(str(logs / n) for n in names)
        for path, values in seen.items():
            messages = [json.loads(v)["message"] for v in values]
            assert len(messages) == per_file, (path, len(messages))
            assert messages == sorted(messages, key=lambda m: int(m.split()[0])), f"{path} out of order"
    finally:
        close_and_report([agent], request, "agent")
