"""An outage longer than retention ([broker.retention], issue 16 part 3).

The issue's case is a 2-minute outage against a 1-minute retention; here retention.ms is 4 s and the
outage lasts until retention has certainly run past it (at least 2x), which keeps the semantics
(segments older than retention, a group that has not read them) at a test's pace.

Two topics with the same settings get the same records at the same time; a group commits offset 10 on
each and stops (the outage). `logpipe-indexer` is listed in `protect_groups` and holds the only offset
on topic `kept`; group `unprotected` holds the only offset on topic `control`, as if the option were
off. Retention deleting the control topic's unread segments is the oracle that it ran with those ages:
- `kept` still has every record from offset 10 on, and the group reads them all once it is back;
- `control` lost records, and /status, /metrics, `logpipe status` and the log count them, not silent;
- the count is a running total: after a kill -9 and a restart /status and /metrics still report it.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request

from confluent_kafka import Consumer, Producer, TopicPartition

from support import HOST, create_topic, read_topic, unique, wait_until

RETENTION_MS = 4000
RECORDS = 50
COMMITTED = 10
PROTECTED = "logpipe-indexer"


def pipeline(port_dir) -> str:
    return f"""\
[broker]
listeners = ["{HOST}:0"]
log_dirs = "{port_dir}"
log_retention_check_interval_ms = 200

[broker.retention]
protect_groups = ["{PROTECTED}"]
lag_at_risk_records = 5

[admin]
address = "{HOST}:0"
"""


def commit(bootstrap: str, group: str, topic: str, offset: int) -> None:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    finally:
        c.close()


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def test_an_outage_longer_than_retention_loses_nothing_a_protected_group_has_not_read(
        appliance_factory, logpipe_bin, tmp_path):
    app = appliance_factory(pipeline(tmp_path / "broker")).start()
    bootstrap, admin = app.broker_address, app.admin_address
    kept, control = unique("kept"), unique("control")
    for topic in (kept, control):
        create_topic(bootstrap, topic, 1, config={"retention.ms": str(RETENTION_MS), "segment.bytes": "1024"})
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    for i in range(RECORDS):
        for topic in (kept, control):
            p.produce(topic, value=f"record {i:04d} ".ljust(200, "x").encode())
        assert p.flush(30) == 0
    commit(bootstrap, PROTECTED, kept, COMMITTED)
    commit(bootstrap, "unprotected", control, COMMITTED)

    def status() -> dict:
        return json.loads(get(f"http://{admin}/status"))

    def log_start(topic: str) -> int:
        t = next(t for t in status()["topics"] if t["name"] == topic)
        return t["partitions"][0]["log_start_offset"]

    # The outage: retention deletes the control topic's unread segments.
    wait_until(lambda: log_start(control) > COMMITTED, 60,
               lambda: f"retention to delete the control topic's unread segments: {status()['topics']}")
    assert log_start(kept) <= COMMITTED, status()["topics"]

    def groups() -> dict:
        return {g["group_id"]: g for g in status()["groups"]}

    # The count follows the deletion within the same retention pass.
    wait_until(lambda: groups()["unprotected"]["records_lost"] == log_start(control) - COMMITTED, 30,
               lambda: f"the loss to be counted: {groups()}, {status()['topics']}")
    lost = log_start(control) - COMMITTED
    now = groups()
    assert now[PROTECTED]["records_lost"] == 0, now
    assert now[PROTECTED]["partitions"][0]["at_risk"], now
    metrics = get(f"http://{admin}/metrics")
    assert f'logpipe_broker_group_records_lost_total{{group="unprotected"}} {lost}' in metrics, metrics
    assert re.search(rf'logpipe_broker_group_lag_at_risk{{group="{PROTECTED}",topic="{kept}",partition="0"}} 1',
                     metrics), metrics
    text = subprocess.run([str(logpipe_bin), "status", "--address", admin, "--once"], capture_output=True, text=True,
                          timeout=30, check=True).stdout
    assert f"unprotected: {lost} records deleted by retention before the group consumed them" in text, text
    assert f"! {PROTECTED}: lag at risk on {kept}/0" in text, text
    log = app.stderr_text()
    assert "retention deleted records the group had not consumed yet" in log
    assert "lag at risk" in log

    # The group comes back and reads everything from its committed offset on.
    records = read_topic(bootstrap, kept)[0]
    assert [r.offset for r in records if r.offset >= COMMITTED] == list(range(COMMITTED, RECORDS))

    # The count survives a kill -9 and a restart (records-lost.json under log_dirs). Retention may delete
    # more of `control` meanwhile; the total stays what was deleted below the committed offset.
    app.kill9()
    assert (tmp_path / "broker" / "records-lost.json").is_file()
    app.start()
    admin = app.admin_address
    wait_until(lambda: groups().get("unprotected", {}).get("records_lost") == log_start(control) - COMMITTED, 30,
               lambda: f"the total after the restart: {groups()}, {status()['topics']}")
    after = groups()["unprotected"]["records_lost"]
    assert after >= lost > 0, (after, lost)
    metrics = get(f"http://{admin}/metrics")
    assert f'logpipe_broker_group_records_lost_total{{group="unprotected"}} {after}' in metrics, metrics
