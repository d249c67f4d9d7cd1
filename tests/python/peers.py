"""Third-party peers fetched by scripts/peers.sh into .peers/: Apache Kafka's broker and tools, and the
Java client at the versions users run. Tests that need a peer that is missing are an error, not a
skip: scripts/test.sh always fetches them first."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from support import REPO

PEERS = Path(os.environ.get("LOGPIPE_PEERS") or REPO / ".peers")
LOG4J2_CONFIG = REPO / "tests" / "peers" / "log4j2.properties"

# The peer directories under tests/peers/ (one pom.xml each).
KAFKA = "kafka"  # Apache Kafka 4.x: kafka.Kafka, kafka.tools.StorageTool, org.apache.kafka.tools.*
KAFKA_CLIENTS = {"3.9": "kafka-clients-3.9", "4": "kafka-clients-4"}


def java() -> str:
    path = shutil.which("java")
    if path is None:
        raise RuntimeError("java not found; scripts/peers.sh installs a JDK")
    return path


def classpath(peer: str) -> str:
    libs = PEERS / peer / "libs"
    if not any(libs.glob("*.jar")):
        raise RuntimeError(f"peer {peer} is missing from {libs}; run scripts/peers.sh")
    return str(libs / "*")


def java_cmd(peer: str, main_class: str, args: Sequence[str] = (), heap: str = "256m",
             extra_classpath: Sequence[str] = ()) -> list[str]:
    """The command line that runs `main_class` from a peer's jars, as Kafka's shell scripts would."""
    cp = os.pathsep.join([*extra_classpath, classpath(peer)])
    return [java(), f"-Xmx{heap}", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}", "-cp", cp, main_class, *args]


@dataclass
class ToolResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    def check(self) -> "ToolResult":
        if self.returncode != 0:
            raise AssertionError(f"{' '.join(self.argv[-8:])} exited {self.returncode}\n"
                                 f"stdout:\n{self.stdout[-3000:]}\nstderr:\n{self.stderr[-3000:]}")
        return self


def run_tool(main_class: str, args: Sequence[str], timeout: float = 120, stdin: Optional[str] = None,
             peer: str = KAFKA, env: Optional[dict] = None) -> ToolResult:
    """Run one of Kafka's command-line tools (e.g. org.apache.kafka.tools.TopicCommand, which is what
    kafka-topics.sh runs) to completion. Tools log at WARN so their stderr shows only what matters."""
    argv = java_cmd(peer, main_class, args)
    full_env = {**os.environ, "KAFKA_LOG_LEVEL": "WARN", **(env or {})}
    p = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, env=full_env)
    return ToolResult(argv, p.returncode, p.stdout, p.stderr)


# --------------------------------------------------------------------------------------------
# Go peers: programs under tests/go/<name>/ that scripts/peers.sh builds into .peers/bin/<name>.

FILEBEAT_KAFKA = "filebeat-kafka"  # Filebeat's Kafka output settings on elastic/sarama (tests/go/filebeat-kafka)


def go_peer(name: str) -> Path:
    path = PEERS / "bin" / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise RuntimeError(f"Go peer {name} is missing from {path}; run scripts/peers.sh")
    return path
