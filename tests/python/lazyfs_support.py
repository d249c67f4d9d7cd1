"""The power-cut file system for the power-loss tests: `lazyfs MOUNTPOINT` (tests/lazyfs, a test-only
binary built next to `logpipe`) mounts an in-memory FUSE file system that forgets, on `drop`, every
write not covered by an fsync of its file and every directory entry not covered by an fsync of its
directory. kill -9 keeps the page cache, so only on such a file system can a test tell an fsync from
none.

A power cut in a test is: kill -9 every process writing to the mount (and reap it), then `drop()`,
then start them again on the same mount.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from pathlib import Path
from typing import Optional

from support import REPO


def lazyfs_bin() -> Path:
    """`LAZYFS_BIN`, else the `lazyfs` built beside `LOGPIPE_BIN` (cargo puts both in target/debug)."""
    if os.environ.get("LAZYFS_BIN"):
        return Path(os.environ["LAZYFS_BIN"])
    logpipe = Path(os.environ.get("LOGPIPE_BIN") or REPO / "target" / "debug" / "logpipe")
    return logpipe.parent / "lazyfs"


class LazyFs:
    """One mount; `drop()` is the power cut. `close()` unmounts (also after a crash of lazyfs)."""

    def __init__(self, mountpoint: Path, log_path: Path):
        self.mountpoint = Path(mountpoint)
        self.log_path = Path(log_path)
        self.proc: Optional[subprocess.Popen] = None
        self.drops: list[str] = []

    def start(self, timeout: float = 30) -> "LazyFs":
        binary = lazyfs_bin()
        if not binary.is_file():
            raise AssertionError(f"{binary} is missing: build it with `cargo build -p logpipe-lazyfs` "
                                 "(scripts/test.sh does)")
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as err:
            self.proc = subprocess.Popen([str(binary), str(self.mountpoint)], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=err)
        line = self._answer(timeout)
        if not line.startswith("ready "):
            self.close()
            raise AssertionError(f"lazyfs did not mount on {self.mountpoint} (it needs /dev/fuse and root): "
                                 f"{line!r}\n{self.log_path.read_text(errors='replace')}")
        return self

    def command(self, command: str, timeout: float = 30) -> str:
        assert self.proc is not None and self.proc.poll() is None, \
            f"lazyfs is not running\n{self.log_path.read_text(errors='replace')}"
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{command}\n".encode())
        self.proc.stdin.flush()
        return self._answer(timeout)

    def drop(self) -> str:
        """The power cut: forget everything not fsynced. Every writer must be dead and reaped first."""
        answer = self.command("drop")
        assert answer.startswith("dropped "), answer
        self.drops.append(answer)
        return answer

    def stats(self) -> dict[str, int]:
        answer = self.command("stats")
        assert answer.startswith("stats "), answer
        return {k: int(v) for k, v in (kv.split("=") for kv in answer.split()[1:])}

    def close(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    assert self.proc.stdin is not None
                    self.proc.stdin.write(b"quit\n")
                    self.proc.stdin.close()
                    self.proc.wait(timeout=30)
                except (OSError, subprocess.TimeoutExpired):
                    self.proc.kill()
                    self.proc.wait(timeout=30)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None
        # A lazyfs that died leaves a dead mount ("Transport endpoint is not connected"): detach it.
        if os.path.ismount(self.mountpoint) or _is_dead_mount(self.mountpoint):
            subprocess.run(["umount", "-l", str(self.mountpoint)], capture_output=True)

    def _answer(self, timeout: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_READ)
        buf = b""
        deadline = time.monotonic() + timeout
        try:
            while not buf.endswith(b"\n"):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"lazyfs gave no answer within {timeout}s")
                if sel.select(timeout=min(remaining, 0.2)):
                    chunk = os.read(fd, 1)
                    if not chunk:
                        return buf.decode(errors="replace") or "<lazyfs exited>"
                    buf += chunk
        finally:
            sel.close()
        return buf.decode(errors="replace").strip()


def _is_dead_mount(path: Path) -> bool:
    try:
        os.stat(path)
        return False
    except OSError as e:
        return e.errno == 107  # ENOTCONN
