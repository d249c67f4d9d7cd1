"""One consumer-group member (confluent-kafka, classic group protocol), run as a subprocess by
the group tests so that it can be killed with SIGKILL like a crashed application.

It appends JSON lines to --out and flushes after each one, so the test can follow it and so that
a line is on disk before the offsets it mentions are committed:

    {"ev": "ready"}                                    subscribed
    {"ev": "assign", "partitions": [0, 1]}             on_assign (eager: the full new set)
    {"ev": "revoke", "partitions": [0, 1]}             on_revoke
    {"ev": "lost", "partitions": [0, 1]}               on_lost
    {"ev": "msgs", "m": [[partition, offset, value], ...]}
    {"ev": "commit", "offsets": {"0": 123}}            after a successful synchronous commit
    {"ev": "error", "code": -140, "name": "_AUTO_OFFSET_RESET", "str": "..."}
    {"ev": "closed"}                                   after consumer.close() on SIGTERM

SIGTERM: commit (if committing), close (LeaveGroup), exit 0.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys

from confluent_kafka import Consumer, KafkaError, KafkaException


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--session-timeout-ms", type=int, default=10000)
    ap.add_argument("--heartbeat-interval-ms", type=int, default=1000)
    ap.add_argument("--auto-offset-reset", default="earliest")
    ap.add_argument("--commit-every", type=int, default=0,
                    help="synchronous commit after this many messages (and on revoke/stop); 0 = never commit")
    ap.add_argument("--assignment-strategy", default="range")
    args = ap.parse_args()

    stopping = False

    def on_term(_signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    out = open(args.out, "a", encoding="utf-8")

    def emit(obj) -> None:
        out.write(json.dumps(obj, separators=(",", ":")) + "\n")
        out.flush()

    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "client.id": f"member-{args.out.rsplit('/', 1)[-1]}",
        "session.timeout.ms": args.session_timeout_ms,
        "heartbeat.interval.ms": args.heartbeat_interval_ms,
        "auto.offset.reset": args.auto_offset_reset,
        "enable.auto.commit": False,
        "partition.assignment.strategy": args.assignment_strategy,
        "fetch.wait.max.ms": 100,
    })

    uncommitted = 0

    def commit(reason: str) -> None:
        nonlocal uncommitted
        if args.commit_every <= 0 or uncommitted == 0:
            return
        try:
            committed = consumer.commit(asynchronous=False)
        except KafkaException as exc:
            err = exc.args[0]
            if err.code() != KafkaError._NO_OFFSET:
                emit({"ev": "error", "code": err.code(), "name": err.name(), "str": f"commit ({reason}): {err}"})
            return
        offsets = {str(tp.partition): tp.offset for tp in committed or [] if tp.error is None and tp.offset >= 0}
        emit({"ev": "commit", "offsets": offsets, "reason": reason})
        uncommitted = 0

    def on_assign(_c, partitions):
        emit({"ev": "assign", "partitions": sorted(tp.partition for tp in partitions)})

    def on_revoke(_c, partitions):
        commit("revoke")
        emit({"ev": "revoke", "partitions": sorted(tp.partition for tp in partitions)})

    def on_lost(_c, partitions):
        emit({"ev": "lost", "partitions": sorted(tp.partition for tp in partitions)})

    consumer.subscribe([args.topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    emit({"ev": "ready"})

    while not stopping:
        batch = []
        for m in consumer.consume(num_messages=1000, timeout=0.2):
            err = m.error()
            if err is not None:
                emit({"ev": "error", "code": err.code(), "name": err.name(), "str": str(err)})
                if err.fatal():
                    return 3
                continue
            batch.append([m.partition(), m.offset(), m.value().decode("utf-8", "replace")])
        if batch:
            emit({"ev": "msgs", "m": batch})  # on disk before the commit that covers it
            uncommitted += len(batch)
            if args.commit_every > 0 and uncommitted >= args.commit_every:
                commit("every")

    commit("stop")
    consumer.close()
    emit({"ev": "closed"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
