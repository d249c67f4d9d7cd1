"""A real OpenSearch 2.19 node for the tests: the jars scripts/peers.sh fetches into .peers/opensearch
(tests/peers/opensearch/pom.xml), started by tests/java/OpenSearchNode.java in single-node discovery on
127.0.0.1 with a temp path, and a small JSON-over-HTTP client (the stdlib's urllib) for what a Kibana
user's searches and an operator's checks need.

The node takes tens of seconds to start, so test modules share one (the `opensearch` fixture in
conftest.py is module-scoped); every test uses its own index names (`support.unique`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

from peers import java_cmd, classpath
from support import REPO, ManagedProcess, child_cmd, wait_until

PEER = "opensearch"
SOURCE = REPO / "tests" / "java" / "OpenSearchNode.java"
STARTUP_TIMEOUT = 180.0


def compile_main(dest: Path) -> Path:
    """Compiles OpenSearchNode.java against the peer's jars into `dest`."""
    javac = shutil.which("javac")
    assert javac, "javac not found; scripts/peers.sh installs a JDK"
    subprocess.run([javac, "-nowarn", "-cp", classpath(PEER), "-d", str(dest), str(SOURCE)], check=True,
                   capture_output=True, text=True, timeout=300)
    return dest


class HttpError(Exception):
    def __init__(self, status: int, body):
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


class OpenSearch(ManagedProcess):
    """One node. `kill9()` then `start()` brings it back on the same data and port."""

    NAME = "opensearch"
    STOP_TIMEOUT = 60.0

    def __init__(self, classes: Path, home: Path):
        self.classes = Path(classes)
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.stderr_path = self.home / "node.log"
        self.proc: Optional[subprocess.Popen] = None
        self._expect_exit = False
        self.port = 0
        self._stdout = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "OpenSearch":
        """Starts the node (on the port it had before, if any) and waits until the cluster is at least
        yellow."""
        argv = java_cmd(PEER, "OpenSearchNode", [str(self.home), str(self.port)], heap="768m",
                        extra_classpath=[str(self.classes)])
        # java_cmd's flags are tuned for short-lived client tools; a server wants the full JIT.
        argv = [a for a in argv if a != "-XX:TieredStopAtLevel=1"]
        out_path = self.home / "node.out"
        self._stdout = open(out_path, "w")
        self._expect_exit = False
        with open(self.stderr_path, "a") as err:
            self.proc = subprocess.Popen(child_cmd(argv), stdout=self._stdout, stderr=err,
                                         env={**os.environ, "KAFKA_LOG_LEVEL": "WARN"})

        def bound() -> Optional[int]:
            for line in out_path.read_text().splitlines():
                if line.startswith("HTTP "):
                    return int(line.rsplit(":", 1)[1])
            return None

        self.port = wait_until(bound, STARTUP_TIMEOUT, "OpenSearch to bind its HTTP port", interval=0.2,
                               procs=[self])
        wait_until(lambda: self.request("GET", "/_cluster/health?wait_for_status=yellow&timeout=1s")
                   .get("status") in ("yellow", "green"), STARTUP_TIMEOUT, "OpenSearch cluster health",
                   interval=0.2, procs=[self])
        return self

    def _exited(self) -> None:
        if self._stdout is not None:
            self._stdout.close()
            self._stdout = None

    # -- HTTP ------------------------------------------------------------------------------------

    def request(self, method: str, path: str, body=None, ndjson: Optional[str] = None, timeout: float = 30):
        """A JSON request; returns the decoded answer; a non-2xx answer raises HttpError."""
        data, ctype = None, "application/json"
        if ndjson is not None:
            data, ctype = ndjson.encode(), "application/x-ndjson"
        elif body is not None:
            data = json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={"Content-Type": ctype})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw = r.read()
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                detail = json.loads(raw)
            except ValueError:
                detail = raw.decode(errors="replace")
            raise HttpError(e.code, detail) from None
        return json.loads(raw) if raw else None

    def refresh(self, index: str = "_all") -> None:
        self.request("POST", f"/{index}/_refresh")

    def count(self, index: str, query: Optional[dict] = None) -> int:
        """Documents in `index` (a name or pattern) after a refresh; 0 if nothing matches the name."""
        try:
            self.refresh(index)
            body = {"query": query} if query else None
            return self.request("POST", f"/{index}/_count?ignore_unavailable=true&allow_no_indices=true",
                                body)["count"]
        except HttpError as e:
            if e.status == 404:
                return 0
            raise

    def search(self, index: str, body: dict) -> dict:
        self.refresh(index)
        return self.request("POST", f"/{index}/_search", body)

    def indices(self, pattern: str = "*") -> dict[str, int]:
        """Index name → document count, for indices matching `pattern` (hidden ones excluded)."""
        self.request("POST", f"/{pattern}/_refresh?allow_no_indices=true&ignore_unavailable=true")
        rows = self.request("GET", f"/_cat/indices/{pattern}?format=json&h=index,docs.count")
        return {r["index"]: int(r["docs.count"] or 0) for r in rows}

    def mapping(self, index: str) -> dict:
        return self.request("GET", f"/{index}/_mapping")[index]["mappings"]
