"""Apache Kafka 4.x in KRaft mode on 127.0.0.1, from the jars in .peers/kafka: a cluster of N combined
broker+controller nodes (N=3 for the scale-out test, N=1 for the side-by-side benchmark). Each node is a
JVM with a small heap, its own free ports and temp log dir; nodes can be killed -9 and restarted."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import uuid
from pathlib import Path
from typing import Optional

from confluent_kafka.admin import AdminClient

from peers import KAFKA, java_cmd
from support import HOST, wait_until

KAFKA_MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class KafkaNode:
    def __init__(self, cluster: "KafkaCluster", node_id: int, port: int, controller_port: int):
        self.cluster = cluster
        self.node_id = node_id
        self.port = port
        self.controller_port = controller_port
        self.dir = cluster.root / f"node{node_id}"
        self.log_dir = self.dir / "data"
        self.config = self.dir / "server.properties"
        self.stderr_path = self.dir / "kafka.log"
        self.proc: Optional[subprocess.Popen] = None

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def write_config(self, voters: str, extra: dict[str, str]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        n = len(self.cluster.nodes)
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.log_dir),
            "num.partitions": "3",
            "default.replication.factor": str(n),
            "min.insync.replicas": str(min(2, n)),
            "offsets.topic.replication.factor": str(n),
            "offsets.topic.num.partitions": "3",
            "transaction.state.log.replication.factor": str(n),
            "transaction.state.log.min.isr": str(min(2, n)),
            "transaction.state.log.num.partitions": "3",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            **extra,
        }
        self.config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))

    def format(self, cluster_id: str) -> None:
        subprocess.run(java_cmd(KAFKA, STORAGE_TOOL, ["format", "-t", cluster_id, "-c", str(self.config)]),
                       check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> "KafkaNode":
        assert not self.alive(), f"node {self.node_id} already running"
        env = {**os.environ, "KAFKA_LOG_LEVEL": "WARN"}
        with open(self.stderr_path, "ab") as err:
            err.write(b"\n----- start -----\n")
            err.flush()
            self.proc = subprocess.Popen(java_cmd(KAFKA, KAFKA_MAIN, [str(self.config)], heap=self.cluster.heap),
                                         stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=env)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=60)

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill9()

    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.stderr_path.read_text(errors="replace").splitlines()[-lines:]
        except FileNotFoundError:
            return ""
        return f"--- kafka node {self.node_id} ({self.stderr_path}) ---\n" + "\n".join(text)


class KafkaCluster:
    """`KafkaCluster(root, nodes=3).start()`; `close()` kills every JVM."""

    def __init__(self, root: Path, nodes: int = 3, heap: str = "512m", extra: Optional[dict[str, str]] = None):
        self.root = Path(root)
        self.heap = heap
        self.extra = extra or {}
        ports = free_ports(2 * nodes)
        self.nodes = [KafkaNode(self, i + 1, ports[2 * i], ports[2 * i + 1]) for i in range(nodes)]

    @property
    def bootstrap(self) -> str:
        return ",".join(n.address for n in self.nodes)

    def admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.bootstrap})

    def start(self, timeout: float = 180) -> "KafkaCluster":
        voters = ",".join(f"{n.node_id}@{HOST}:{n.controller_port}" for n in self.nodes)
        # Kafka's cluster ids are 16 random bytes in URL-safe base64 without padding.
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        for n in self.nodes:
            n.write_config(voters, self.extra)
            n.format(cid)
        for n in self.nodes:
            n.start()
        self.wait_brokers(len(self.nodes), timeout)
        return self

    def wait_brokers(self, count: int, timeout: float = 180) -> None:
        def listening(n: KafkaNode) -> bool:
            try:
                socket.create_connection((HOST, n.port), timeout=1).close()
                return True
            except OSError:
                return False

        def up():
            for n in self.nodes:
                if n.proc is not None and n.proc.poll() is not None:
                    raise AssertionError(f"kafka node {n.node_id} exited\n{n.tail()}")
            # Ask for metadata only once every node listens, so the client does not log refusals.
            if not all(listening(n) for n in self.nodes):
                return False
            return len(self.admin().list_topics(timeout=5).brokers) >= count
        wait_until(up, timeout, lambda: f"{count} Kafka brokers up\n" + "\n".join(n.tail(15) for n in self.nodes),
                   interval=0.5)

    def leader(self, topic: str, partition: int) -> KafkaNode:
        md = self.admin().list_topics(topic, timeout=10)
        leader = md.topics[topic].partitions[partition].leader
        return next(n for n in self.nodes if n.node_id == leader)

    def node(self, node_id: int) -> KafkaNode:
        return next(n for n in self.nodes if n.node_id == node_id)

    def close(self) -> None:
        for n in self.nodes:
            n.kill9()

    def tails(self) -> str:
        return "\n".join(n.tail() for n in self.nodes)
