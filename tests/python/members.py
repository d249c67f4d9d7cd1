"""Consumer-group members as subprocesses (group_member.py) and a reader for their JSON-lines logs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Optional

from support import HERE, child_cmd


class MemberLog:
    """Follows one member's --out file. Call refresh() before reading the fields."""

    def __init__(self, path: Path):
        self.path = path
        self._pos = 0
        self._partial = b""
        self.ready = False
        self.closed = False
        self.assignment: set[int] = set()
        self.events: list[dict] = []  # assign / revoke / lost / commit / error, in order
        self.records: list[tuple[int, int, str]] = []  # (partition, offset, value) in consume order
        self.commits: dict[int, int] = {}  # partition -> last offset this member committed
        self.errors: list[dict] = []

    def refresh(self) -> "MemberLog":
        try:
            with open(self.path, "rb") as f:
                f.seek(self._pos)
                data = f.read()
        except FileNotFoundError:
            return self
        self._pos += len(data)
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")  # a SIGKILL may leave half a line
        for line in lines:
            if line.strip():
                self._apply(json.loads(line))
        return self

    def _apply(self, ev: dict) -> None:
        kind = ev["ev"]
        if kind == "msgs":
            self.records.extend((p, o, v) for p, o, v in ev["m"])
            return
        if kind == "ready":
            self.ready = True
        elif kind == "closed":
            self.closed = True
        elif kind == "assign":
            self.assignment = set(ev["partitions"])  # eager protocol: the whole new set
        elif kind in ("revoke", "lost"):
            self.assignment -= set(ev["partitions"])
        elif kind == "commit":
            for p, o in ev["offsets"].items():
                self.commits[int(p)] = o
        elif kind == "error":
            self.errors.append(ev)
        self.events.append(ev)

    def values(self) -> list[str]:
        return [v for _, _, v in self.records]

    def by_partition(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for p, o, _ in self.records:
            out.setdefault(p, []).append(o)
        return out


class Member:
    def __init__(self, name: str, proc: subprocess.Popen, log: MemberLog, stderr_path: Path):
        self.name = name
        self.proc = proc
        self.log = log
        self.stderr_path = stderr_path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill9(self) -> None:
        """Crash: no LeaveGroup, no commit. The coordinator must notice via the session timeout."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout: float = 60) -> int:
        """Clean stop: final commit, close() (LeaveGroup)."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def refresh(self) -> MemberLog:
        return self.log.refresh()


class MemberPool:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.members: list[Member] = []

    def start(self, name: str, bootstrap: str, group: str, topic: str, *,
              session_timeout_ms: int = 10000, heartbeat_interval_ms: int = 1000,
              auto_offset_reset: str = "earliest", commit_every: int = 0,
              assignment_strategy: str = "range") -> Member:
        self.workdir.mkdir(parents=True, exist_ok=True)
        out = self.workdir / f"{name}.jsonl"
        err = self.workdir / f"{name}.stderr.log"
        argv = [
            sys.executable, str(HERE / "group_member.py"),
            "--bootstrap", bootstrap, "--group", group, "--topic", topic, "--out", str(out),
            "--session-timeout-ms", str(session_timeout_ms),
            "--heartbeat-interval-ms", str(heartbeat_interval_ms),
            "--auto-offset-reset", auto_offset_reset,
            "--commit-every", str(commit_every),
            "--assignment-strategy", assignment_strategy,
        ]
        with open(err, "ab") as errf:
            proc = subprocess.Popen(child_cmd(argv), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=errf)
        m = Member(name, proc, MemberLog(out), err)
        self.members.append(m)
        return m

    def close(self, print_logs: bool = False) -> None:
        for m in self.members:
            if m.alive():
                m.proc.send_signal(signal.SIGKILL)
            try:
                m.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            if print_logs:
                log = m.refresh()
                print(f"--- member {m.name}: rc={m.proc.returncode} records={len(log.records)} "
                      f"assignment={sorted(log.assignment)} commits={log.commits}")
                for ev in log.events[-30:]:
                    print("   ", ev)
                try:
                    tail = m.stderr_path.read_text(errors="replace").splitlines()[-20:]
                except FileNotFoundError:
                    tail = []
                for line in tail:
                    print("    stderr:", line)


def stable_split(members: list[Member], partitions: int) -> Optional[list[set[int]]]:
    """The members' assignments if every member has some partitions, they are pairwise
    disjoint, and together they cover all partitions; else None."""
    sets = [m.refresh().assignment for m in members]
    if any(not s for s in sets):
        return None
    union: set[int] = set()
    for s in sets:
        if union & s:
            return None
        union |= s
    return [set(s) for s in sets] if union == set(range(partitions)) else None
