"""Full disks. The broker's log dir on a size-limited tmpfs (tests run as root) fills up under an
acks=all stream:

- produce gets KAFKA_STORAGE_ERROR, which Kafka clients retry, never an acknowledgement and never a
  crash; fetches keep working and every acknowledged record stays readable, uncorrupted;
- when space is freed (here: another file on the same disk is removed) produce resumes by itself,
  without a restart, and the records appended after that read back behind the earlier ones;
- the broker says so once per partition (not once per request), and once that it resumed.

And the agent's registry on a full disk: it ships on, retries the write, warns once, and catches up.
"""

from __future__ import annotations

import errno
import subprocess
from collections import Counter

import pytest
from confluent_kafka import Producer

from agent_support import AgentProcess, TopicCollector, agent_toml, append_lines, file_input, load_registry
from support import (admin, child_cmd, check_contiguous, create_topic, produce, read_topic, topic_partitions, unique,
                     wait_until)

pytestmark = pytest.mark.full_disk


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill_until_refused(bootstrap: str, topic: str) -> tuple[set[bytes], list[str]]:
    """Produce acks=all (no retries, to see the error itself) until the broker refuses."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "retries": 0, "linger.ms": 5,
                  "enable.idempotence": False, "batch.size": 65536})
    acked: set[bytes] = set()
    errors: list[str] = []

    def on_delivery(err, msg):
        if err is None:
            acked.add(msg.value())
        else:
            errors.append(err.name())

    seq = 0
    while not errors:
        assert seq < 100_000, "a 6 MiB disk took 100 MB"
        for _ in range(100):
            p.produce(topic, f"{seq:08d}|".encode() + b"f" * 1000, on_delivery=on_delivery)
            seq += 1
        p.flush(30)
    p.flush(30)
    return acked, errors


def fill_to_the_last_block(path) -> None:
    """Nothing at all fits any more, not even the broker's small metadata file."""
    with open(path, "wb", buffering=0) as f:
        for size in (1 << 16, 4096, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e


def test_broker_refuses_then_resumes_on_a_full_disk(broker_factory, small_disk):
    filler = small_disk / "other-files"
    filler.write_bytes(b"\0" * (2 << 20))
    broker = broker_factory(log_dirs=str(small_disk / "broker"), log_segment_bytes=1 << 20)
    topic = unique("full")
    create_topic(broker.bootstrap, topic, 1)

    acked, errors = fill_until_refused(broker.bootstrap, topic)
    assert set(errors) == {"KAFKA_STORAGE_ERROR"}, errors
    assert broker.alive()
    got = read_topic(broker.bootstrap, topic)
    check_contiguous(got)
    values = Counter(r.value for r in got[0])
    assert set(values) == acked and max(values.values()) == 1, \
        f"{len(acked)} acknowledged, {len(values)} readable after the disk filled up"

    # Still full: a client that retries keeps being told so (and the broker does not log each time).
    for _ in range(3):
        _, again = fill_until_refused(broker.bootstrap, topic)
        assert set(again) == {"KAFKA_STORAGE_ERROR"}, again

    filler.unlink()
    more = [{"value": f"after|{i}".encode()} for i in range(500)]
    wait_until(lambda: produce(broker.bootstrap, topic, more[:1], timeout=10), 60,
               "produce to resume after space was freed", procs=[broker])
    produce(broker.bootstrap, topic, more[1:])
    got = read_topic(broker.bootstrap, topic)
    check_contiguous(got)
    stored = [r.value for r in got[0]]
    assert stored[-499:] == [m["value"] for m in more[1:]], "records after the freed space follow the old ones"
    assert acked <= set(stored)

    log = broker.stderr_text()
    assert log.count("disk full:") == 1, f"the disk-full warning should appear once:\n{broker.stderr_tail()}"
    assert "produce to this partition resumes" in log
    assert broker.alive()


def test_deleting_a_topic_makes_room_and_produce_resumes(broker_factory, small_disk):
    broker = broker_factory(log_dirs=str(small_disk / "broker"), log_segment_bytes=1 << 20)
    victim, topic = unique("old-logs"), unique("live")
    create_topic(broker.bootstrap, victim, 1)
    create_topic(broker.bootstrap, topic, 1)
    produce(broker.bootstrap, victim, [{"value": b"v" * 1000} for _ in range(2500)])
    acked, errors = fill_until_refused(broker.bootstrap, topic)
    assert set(errors) == {"KAFKA_STORAGE_ERROR"}, errors
    fill_to_the_last_block(small_disk / "other-files")

    client = admin(broker.bootstrap)
    client.delete_topics([victim], operation_timeout=30)[victim].result(timeout=30)
    assert topic_partitions(broker.bootstrap, victim) is None
    assert "removing the topic's files before its metadata" in broker.stderr_text()
    wait_until(lambda: produce(broker.bootstrap, topic, [{"value": b"after"}], timeout=10), 60,
               "produce to resume after the topic was deleted", procs=[broker])
    assert acked <= {r.value for r in read_topic(broker.bootstrap, topic)[0]}
    # The deletion holds across a restart.
    broker.restart()
    assert topic_partitions(broker.bootstrap, victim) is None
    assert topic_partitions(broker.bootstrap, topic) == [0]


def registry_offset(path) -> int:
    entries = load_registry(path)
    return entries[0]["offset"] if entries else -1


def test_agent_ships_on_while_its_registry_disk_is_full(broker, logpipe_bin, small_disk, tmp_path):
    """The agent's registry disk fills up: it keeps shipping, keeps retrying the registry write and
    says so once; once there is room the registry catches up, and a kill -9 then resends nothing."""
    topic = unique("registry-full")
    create_topic(broker.bootstrap, topic, 1)
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "app.log"
    registry = small_disk / "agent" / "registry.json"
    text = agent_toml(registry, [broker.bootstrap], topic, [file_input([str(log)])], registry_flush="200ms")
    agent = AgentProcess(logpipe_bin, tmp_path / "agent", text, child_cmd)
    collector = TopicCollector(broker.bootstrap, topic)
    try:
        append_lines(log, range(0, 1000))
        agent.start()
        assert collector.wait_for_seqs(set(range(1000)), 60)
        size = log.stat().st_size
        wait_until(lambda: registry_offset(registry) == size, 30, "the registry at the end of the file",
                   procs=[agent])

        fill_to_the_last_block(small_disk / "other-files")
        append_lines(log, range(1000, 2000))
        assert collector.wait_for_seqs(set(range(2000)), 60), "the agent stopped shipping on a full registry disk"
        wait_until(lambda: "cannot write the registry" in agent.stderr_text(), 30, "the registry warning",
                   procs=[agent])
        assert registry_offset(registry) == size, "the registry cannot have moved on a full disk"

        (small_disk / "other-files").unlink()
        new_size = log.stat().st_size
        wait_until(lambda: registry_offset(registry) == new_size, 30, "the registry to catch up",
                   procs=[agent])
        log_text = agent.stderr_text()
        assert log_text.count("cannot write the registry") == 1, agent.stderr_tail()
        assert "the registry is written again" in log_text

        agent.kill9()
        append_lines(log, range(2000, 2500))
        agent.start()
        assert collector.wait_for_seqs(set(range(2500)), 60)
        per_seq = Counter(e.seq for e in collector.events if e.seq is not None)
        doubled = [s for s, n in per_seq.items() if n > 1]
        assert not doubled, f"{len(doubled)} lines resent although the registry had caught up: {doubled[:5]}"
    finally:
        collector.close()
        agent.close()


def test_status_says_what_is_full_and_by_how_much(appliance_factory, logpipe_bin, small_disk):
    """`/status` and `logpipe status` name the broker's full log dir, its free space and what produce
    waits for, and the partitions refused; the stall goes once space is freed."""
    import json
    import urllib.request

    from support import HOST

    filler = small_disk / "other-files"
    filler.write_bytes(b"\0" * (2 << 20))
    log_dir = small_disk / "broker"
    app = appliance_factory(f"""\
[broker]
listeners = ["{HOST}:0"]
log_dirs = "{log_dir}"
log_segment_bytes = {1 << 20}

[admin]
address = "{HOST}:0"
""").start()
    topic = unique("full")
    create_topic(app.broker_address, topic, 1)

    def stalls() -> list:
        with urllib.request.urlopen(f"http://{app.admin_address}/status", timeout=5) as r:
            return json.loads(r.read())["stalls"]

    assert stalls() == []
    _, errors = fill_until_refused(app.broker_address, topic)
    assert set(errors) == {"KAFKA_STORAGE_ERROR"}, errors
    [stall] = stalls()
    assert (stall["kind"], stall["key"]) == ("disk", str(log_dir)), stall
    assert stall["reason"].startswith("broker log dir full: ") and f"to {topic}/0;" in stall["reason"], stall
    assert "free, produce waits for " in stall["reason"], stall
    text = subprocess.run([str(logpipe_bin), "status", "--address", app.admin_address, "--once"],
                          capture_output=True, text=True, timeout=30, check=True).stdout
    assert "STALLED" in text and "broker log dir full:" in text, text

    filler.unlink()
    wait_until(lambda: produce(app.broker_address, topic, [{"value": b"after"}], timeout=10), 60,
               "produce to resume after space was freed", procs=[app])
    assert stalls() == []


def test_file_output_waits_out_a_full_disk(broker, indexer_factory, small_disk):
    """The indexer's file output on a full disk: it stops consuming and retries, commits nothing past what
    is on disk, and goes on by itself once space is freed, every document written once."""
    from indexer_support import (committed_offsets, envelope, event_id, indexer_toml, new_run, produce_values,
                                 read_ndjson_dir, wait_committed_to_end)

    filler = small_disk / "other-files"
    filler.write_bytes(b"\0" * (3 << 20))
    out = small_disk / "indices"
    topic, group, run = unique("file-full"), unique("file-full"), new_run()
    create_topic(broker.bootstrap, topic, 1)
    n = 4000  # about 4.5 MB of output: more than the 3 MiB left, less than 6 MiB
    produce_values(broker.bootstrap, topic, (envelope(run, i, message=f"{i:06d} " + "m" * 1000) for i in range(n)), 1)
    indexer = indexer_factory(indexer_toml([broker.bootstrap], [topic], group, default_index="files",
                                           file_path=out))
    wait_until(lambda: "consumption pauses" in indexer.stderr_text(), 120,
               "the file output to hit the full disk", procs=[indexer])

    def written() -> set[str]:
        docs, _ = read_ndjson_dir(out)
        return {d["_id"] for ds in docs.values() for d in ds}

    for _ in range(3):
        committed = committed_offsets(broker.bootstrap, group, topic, [0])[0]
        on_disk = written()
        assert committed < n, "the disk cannot hold everything"
        missing = [i for i in range(max(committed, 0)) if event_id(run, i) not in on_disk]
        assert not missing, f"committed {committed}, but {len(missing)} of those are not on disk, e.g. {missing[:3]}"

    filler.unlink()
    wait_committed_to_end([indexer], broker.bootstrap, group, topic, [0], timeout=120)
    docs, bad = read_ndjson_dir(out)
    assert not bad, bad[:3]
    ids = [d["_id"] for ds in docs.values() for d in ds]
    assert sorted(ids) == sorted(event_id(run, i) for i in range(n)), f"{len(ids)} documents for {n} events"
    assert indexer.stderr_text().count("consumption pauses") == 1, "the full disk is logged once"
