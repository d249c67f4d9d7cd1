"""The whole appliance, `logpipe run PIPELINE`: embedded broker, agent and indexer in one process,
with the Elasticsearch stand-in (es_standin.py) as the cluster.

- The README's quickstart command, run exactly as written in a fresh clone, fills data/indices/
  within 60 s, and stops cleanly on SIGTERM to the script or on a terminal's Ctrl-C.
- 1,000,000 generated nginx lines at 20,000 lines/s with rename rotation every 5 s, and the process
  killed -9 five times at random moments: afterwards every line is in exactly one document, in the
  daily index of its own time stamp, and the counts per index are what the generator wrote.
- SIGTERM stops the process within 10 s with exit code 0, and the restarted process re-sends
  nothing that was acknowledged end to end (the stand-in answers no 409).
- `logpipe status --once` and `/status` show the files, the topic, the group and the indices, with the
  stand-in's counts.
- `logpipe check` rejects a typo'd key and names the key and the file.
- The binary's jemalloc runs with the two arenas `.cargo/config.toml` builds in.

Generated lines carry the generator's sequence number (`rid=<seq>` / `*<seq>`, see
appliance_support.py), which is how each line is found again in the stand-in.
"""

from __future__ import annotations

import os
import random
import re
import shlex
import signal
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from appliance_support import (
    Stored,
    counter_diff,
    drained,
    expected_indices,
    free_port,
    nginx_pipeline,
    port_taken,
    record_fault_run,
    summarize,
)
from support import HOST, REPO, wait_until

pytestmark = pytest.mark.appliance

GROUP = "logpipe-indexer"


def rfc3339(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def stand_in_counts(es) -> dict[str, int]:
    return {name: es.count(name) for name in es.indices()}


# --------------------------------------------------------------------------------------------
# 1. The quickstart, from a fresh clone

QUICKSTART_BROKER_PORT = 9092
QUICKSTART_DEADLINE = 60.0


def readme_quickstart_command(readme: Path) -> str:
    """The command the README's "Set up on a fresh machine" section gives for the quickstart: the
    indented code line that mentions it."""
    text = readme.read_text()
    assert "## Set up on a fresh machine" in text, f"{readme} has no 'Set up on a fresh machine' section"
    section = text.split("## Set up on a fresh machine", 1)[1].split("\n## ", 1)[0]
    commands = [line.strip() for line in section.splitlines()
                if line.startswith("    ") and "quickstart" in line]
    assert commands, f"no quickstart command in the README's set-up section:\n{section}"
    return commands[0]


def ndjson_lines(paths) -> int:
    n = 0
    for p in paths:
        with open(p, "rb") as f:
            n += sum(1 for line in f if line.endswith(b"\n"))
    return n


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`, from the parent pids in /proc/*/stat."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # exited while we looked
    found: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        kids = {c for c, pp in parent.items() if pp == p} - found
        found |= kids
        todo += kids
    return found


def alive(pids) -> set[int]:
    out = set()
    for pid in pids:
        try:
            os.kill(pid, 0)
            out.add(pid)
        except ProcessLookupError:
            pass
    return out


@pytest.mark.parametrize("stop_with", ["sigterm", "ctrl-c"])
def test_quickstart_from_a_fresh_clone(logpipe_bin, tmp_path, stop_with):
    """Fresh clone: the README's quickstart command produces indexed files within 60 s. Then it stops
    cleanly (exit 0, the appliance's clean shutdown, no process left) on SIGTERM to the script (which
    forwards it), or on a terminal's Ctrl-C (SIGINT to the whole foreground process group)."""
    if port_taken(QUICKSTART_BROKER_PORT):
        pytest.skip(f"{HOST}:{QUICKSTART_BROKER_PORT} is in use; the quickstart's broker needs that port")
    clone = tmp_path / "logpipe"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True, timeout=300,
                   stdin=subprocess.DEVNULL)
    command = readme_quickstart_command(clone / "README.md")
    argv = shlex.split(command)
    # Only the script honours LOGPIPE_BIN; anything else would build a release binary in the clone.
    assert Path(argv[0]).name == "quickstart.sh", f"the README's quickstart command is {command!r}"
    env = {**os.environ, "LOGPIPE_BIN": str(Path(logpipe_bin).resolve()), "NO_COLOR": "1"}
    out_path, err_path = tmp_path / "quickstart.stdout", tmp_path / "quickstart.stderr"
    indices = clone / "data" / "indices"

    def tail() -> str:
        lines = err_path.read_text(errors="replace").splitlines()[-60:] if err_path.exists() else []
        return f"--- {command} stderr (last {len(lines)} lines) ---\n" + "\n".join(lines)

    started = time.monotonic()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        # Its own process group, as a shell gives a foreground job: the group is what Ctrl-C signals.
        proc = subprocess.Popen(argv, cwd=clone, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                start_new_session=True)
    children: set[int] = set()
    try:
        def indexed_lines() -> int:
            assert proc.poll() is None, f"{command} exited rc={proc.returncode} before indexing\n{tail()}"
            return ndjson_lines(indices.glob("nginx_access-*.ndjson"))

        indexed = wait_until(indexed_lines, started + QUICKSTART_DEADLINE - time.monotonic(),
                             lambda: f"a line in {indices}/nginx_access-*.ndjson after {command}\n{tail()}",
                             interval=0.1)
        print(f"quickstart: {indexed} access documents after {time.monotonic() - started:.1f} s")
        children = descendants(proc.pid)
        assert children, "the quickstart script has no child processes"

        if stop_with == "sigterm":
            proc.send_signal(signal.SIGTERM)  # to the script alone: it forwards the signal
        else:
            os.killpg(proc.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{command} still running 30 s after {stop_with}\n{tail()}")
        stderr = err_path.read_text(errors="replace")
        assert "panicked at" not in stderr, tail()
        assert "broker stopped cleanly" in stderr, \
            f"the appliance did not stop cleanly after {stop_with} (rc={rc})\n{tail()}"
        assert not alive(children), f"processes left behind by the quickstart: {alive(children)}"
        assert rc == 0, f"{command} exited rc={rc} after {stop_with}, expected 0 (the appliance stopped cleanly)\n{tail()}"
    finally:
        for pid in alive(children | descendants(proc.pid)):
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


# --------------------------------------------------------------------------------------------
# 2. kill -9 under load

LINES = 1_000_000
RATE = 20_000
KILLS = 5
# 21:00 UTC plus 50 ms per line: the run's time stamps cross midnight after 216,000 lines.
START = datetime(2026, 11, 20, 21, 0, tzinfo=timezone.utc)
STEP_MS = 50


@pytest.mark.timeout(900)
def test_kill9_five_times_under_load(appliance_factory, es_standin, nginx_gen, tmp_path):
    """The generator writes 1,000,000 lines at 20,000 lines/s with rename rotation every 5 s and one
    copytruncate rotation at a random line; the whole process is killed -9 five times at random moments
    and restarted each time. Afterwards every line is in exactly one document, in the right daily index,
    and the counts per index match the generator's. The outcome is recorded for the kill-matrix table
    (scripts/soak.sh runs this test 10 times)."""
    seed = int(os.environ.get("LOGPIPE_TEST_SEED") or random.randrange(1 << 32))
    rnd = random.Random(seed)
    print(f"seed {seed} (LOGPIPE_TEST_SEED={seed} repeats the kill moments and the lines)")
    copytruncate_at = rnd.randrange(LINES // 10, LINES * 9 // 10)
    logs = tmp_path / "logs"
    app = appliance_factory(nginx_pipeline(port=free_port(), data_dir=tmp_path / "data", logs_dir=logs,
                                           es_url=es_standin.url, group_id=GROUP))
    app.start()
    # --keep 20 with a rotation every 5 s keeps 100 s of files: no file is deleted during the 50 s run,
    # however far behind the agent is.
    gen = nginx_gen(logs, tmp_path / "summary.json", "--rate", str(RATE), "--lines", str(LINES),
                    "--rotate-every", "5", "--keep", "20", "--start", rfc3339(START), "--step-ms", str(STEP_MS),
                    "--seed", str(seed), "--copytruncate-at", str(copytruncate_at))
    t0 = time.monotonic()
    # Random moments, chosen as random amounts of progress: each kill comes once the stand-in holds a
    # planned number of documents, and at least 2 % more than at the kill before.
    planned = sorted(rnd.randrange(LINES // 50, LINES * 85 // 100) for _ in range(KILLS))
    kills = []
    for documents in planned:
        target = max(documents, es_standin.count() + LINES // 50)
        wait_until(lambda: es_standin.count() >= target, 300,
                   lambda: f"{target} documents before the next kill, have {es_standin.count()}", procs=[app])
        app.kill9()
        kills.append(round(time.monotonic() - t0, 1))
        app.start()
    summary = gen.wait(timeout=300)
    written_at = time.monotonic() - t0
    assert summary["total"] == LINES, summary
    print(f"kills at {kills} s; generator done after {written_at:.1f} s: {summary}")

    want = expected_indices(summary)
    wait_until(lambda: es_standin.count() >= LINES, 600,
               lambda: f"{LINES} documents in the stand-in, have {es_standin.count()}: {es_standin.stats()}",
               interval=0.5, procs=[app])
    indexed_at = time.monotonic() - t0
    # Nothing left in flight that could still add a document.
    wait_until(lambda: drained(app.status(), GROUP), 120,
               lambda: f"the appliance to drain: {app.status()}", interval=0.5, procs=[app])
    stats = es_standin.stats()
    print(f"all {LINES} indexed after {indexed_at:.1f} s; stand-in: {stats}")

    stored = Stored.read(es_standin)
    duplicates, missing, bad = stored.duplicates(), stored.missing(1, LINES), stored.misplaced(START, STEP_MS)
    record_fault_run({"test": "kill_matrix", "seed": seed, "kills": {"whole": len(kills)}, "lines": LINES,
                      "copytruncate_at": copytruncate_at,
                      "lost": len(missing), "duplicates": len(duplicates), "misplaced": len(bad)})
    assert not stored.unnumbered, f"documents without a sequence number {summarize(stored.unnumbered, 3)}"
    assert not duplicates, f"lines stored more than once {summarize(duplicates.items())}"
    assert not missing, f"lines never indexed {summarize(missing)}"
    assert len(stored.where) == LINES
    assert not bad, f"documents in the wrong daily index {summarize(bad)}"
    assert stored.per_index == want, f"per index (stored, generated): {counter_diff(stored.per_index, want)}"
    assert len(want) == 4, f"the run should span two days of both logs: {want}"
    assert stats["rejected"] == 0 and stats["created"] == LINES, stats
    ix = app.status()["indexer"]
    assert all(i["dead_lettered"] == 0 for i in ix["indices"]), ix


# --------------------------------------------------------------------------------------------
# 3. Graceful stop; 5. status

STOP_BOUND = 10.0


def start_with_lines(appliance_factory, es, nginx_gen, tmp_path, lines: int, start: datetime):
    """An appliance on the stand-in with `lines` generated lines indexed and nothing in flight."""
    logs = tmp_path / "logs"
    app = appliance_factory(nginx_pipeline(port=free_port(), data_dir=tmp_path / "data", logs_dir=logs,
                                           es_url=es.url, group_id=GROUP))
    app.start()
    summary = nginx_gen(logs, tmp_path / "summary1.json", "--rate", "0", "--lines", str(lines),
                        "--start", rfc3339(start), "--step-ms", "10", "--seed", "1").wait(timeout=60)
    wait_until(lambda: es.count() >= lines and drained(app.status(), GROUP), 120,
               lambda: f"{lines} documents indexed and nothing in flight: stand-in {es.stats()}, "
                       f"status {app.status()}", procs=[app])
    return app, logs, summary


@pytest.mark.parametrize("load", ["idle", "writing"])
def test_graceful_stop_resends_nothing(appliance_factory, es_standin, nginx_gen, tmp_path, load):
    """After SIGTERM the process exits within 10 s with code 0, and the restarted process re-sends
    nothing that was already acknowledged end to end. `idle`: SIGTERM with everything indexed;
    `writing`: SIGTERM while the generator keeps writing (through the stop and the restart)."""
    day1 = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)
    day2 = datetime(2026, 11, 22, 10, 0, tzinfo=timezone.utc)
    app, logs, first = start_with_lines(appliance_factory, es_standin, nginx_gen, tmp_path, 3000, day1)
    assert stand_in_counts(es_standin) == expected_indices(first)

    more = None
    if load == "writing":
        more = nginx_gen(logs, tmp_path / "summary2.json", "--rate", "2000", "--lines", "20000",
                         "--start", rfc3339(day2), "--step-ms", "10", "--seed", "2")
        wait_until(lambda: es_standin.count("nginx_access-2026.11.22") > 0, 60,
                   "the second generator's lines to reach the stand-in", procs=[app])
    sent_before_stop = es_standin.stats()["bulk_items"]
    stopping = time.monotonic()
    rc = app.stop(timeout=STOP_BOUND)
    print(f"{load}: exited rc={rc} {time.monotonic() - stopping:.1f} s after SIGTERM")
    assert rc == 0, f"exit code {rc} after SIGTERM\n{app.stderr_tail()}"
    assert "panicked at" not in app.stderr_text(), app.stderr_tail()
    after_stop = es_standin.stats()
    assert after_stop["conflicts"] == 0, f"409s before the restart: {after_stop}"

    app.start()
    if more is None:
        more = nginx_gen(logs, tmp_path / "summary2.json", "--rate", "0", "--lines", "1000",
                         "--start", rfc3339(day2), "--step-ms", "10", "--seed", "2")
    second = more.wait(timeout=120)
    total = first["total"] + second["total"]
    want = {**expected_indices(first), **expected_indices(second)}
    assert len(want) == len(expected_indices(first)) + len(expected_indices(second)), "the days must differ"
    wait_until(lambda: es_standin.count() >= total and drained(app.status(), GROUP), 120,
               lambda: f"{total} documents and nothing in flight: stand-in {es_standin.stats()}, "
                       f"status {app.status()}", procs=[app])
    stats = es_standin.stats()
    print(f"{load}: {sent_before_stop} items sent before SIGTERM, {after_stop['bulk_items']} by exit; "
          f"after the restart: {stats}")
    assert stats["conflicts"] == 0, \
        f"the restarted appliance re-sent {stats['conflicts']} documents already indexed: {stats}"
    assert stats["bulk_items"] == total == stats["created"], stats
    assert stand_in_counts(es_standin) == want, counter_diff(stand_in_counts(es_standin), want)
    for pattern, summary in ((r".*-2026\.11\.20", first), (r".*-2026\.11\.22", second)):
        stored = Stored.read(es_standin, pattern)
        assert not stored.duplicates() and not stored.unnumbered
        assert not (missing := stored.missing(1, summary["total"])), summarize(missing)


def test_status_shows_files_topic_group_and_indices(appliance_factory, es_standin, nginx_gen, tmp_path,
                                                    logpipe_bin):
    """`logpipe status --once` shows the files, the topic `nginx`, the group and the indices, and
    `/status` has the stand-in's per-index counts."""
    day = datetime(2026, 11, 20, 23, 59, 50, tzinfo=timezone.utc)  # crosses midnight: two days
    app, logs, summary = start_with_lines(appliance_factory, es_standin, nginx_gen, tmp_path, 2000, day)
    want = expected_indices(summary)
    assert len(want) == 4, want

    # The indexer counts a bulk answer just after the stand-in stored it: poll until they agree.
    def indexer_counts():
        ix = app.status()["indexer"]
        return {i["index"]: i["indexed"] for i in ix["indices"]}
    wait_until(lambda: indexer_counts() == stand_in_counts(es_standin) == want, 30,
               lambda: f"/status counts {indexer_counts()} == stand-in {stand_in_counts(es_standin)} == {want}",
               procs=[app])
    status = app.status()
    assert sorted(Path(f["path"]).name for f in status["files"]) == ["access.log", "error.log"], status["files"]
    assert all(Path(f["path"]).parent == logs for f in status["files"]), status["files"]
    assert sum(f["lines_read"] for f in status["files"]) == summary["total"], status["files"]
    nginx = [t for t in status["topics"] if t["name"] == "nginx"]
    assert nginx and len(nginx[0]["partitions"]) == 3, status["topics"]
    assert sum(p["log_end_offset"] for p in nginx[0]["partitions"]) == summary["total"], nginx
    group = [g for g in status["groups"] if g["group_id"] == GROUP]
    assert group and group[0]["members"] == 1 and group[0]["lag"] == 0, status["groups"]
    assert all(i["dead_lettered"] == 0 for i in status["indexer"]["indices"]), status["indexer"]
    assert [h["healthy"] for h in status["indexer"]["hosts"]] == [True], status["indexer"]["hosts"]

    r = subprocess.run([str(logpipe_bin), "status", "--address", app.admin_address, "--once"],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"logpipe status exited {r.returncode}\n{r.stdout}\n{r.stderr}"
    text = r.stdout
    for want_text in ["access.log", "error.log", "nginx", GROUP, *want, es_standin.url]:
        assert want_text in text, f"{want_text!r} missing from `logpipe status --once`:\n{text}"
    for index, n in want.items():
        assert re.search(rf"^{re.escape(index)}\s+{n}\s+0\s+0\s*$", text, re.M), \
            f"{index} with {n} indexed, 0 retried, 0 dead-lettered not in:\n{text}"


# --------------------------------------------------------------------------------------------
# 4. logpipe check

TYPOS = [
    # (section, the correct line, the typo'd line, the typo'd key)
    ("broker", "num_partitions = 3", "num_partition = 3", "num_partition"),
    ("agent", 'acks = "all"', 'ack = "all"', "ack"),
    ("indexer", 'codec = "json"', 'codex = "json"', "codex"),
    ("admin", 'address = "127.0.0.1:0"', 'adress = "127.0.0.1:0"', "adress"),
]


@pytest.mark.parametrize("section,right,wrong,key", TYPOS, ids=[t[0] for t in TYPOS])
def test_check_names_the_typo_and_the_file(logpipe_bin, tmp_path, section, right, wrong, key):
    """`logpipe check` rejects a pipeline with a typo'd key and names the key and the file."""
    text = nginx_pipeline(port=9092, data_dir=tmp_path / "data", logs_dir=tmp_path / "logs",
                          es_url="http://127.0.0.1:9200")
    good = tmp_path / "good.toml"
    good.write_text(text)
    ok = subprocess.run([str(logpipe_bin), "check", str(good)], capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0, f"the untouched pipeline fails the check:\n{ok.stderr}"

    assert text.count(f"\n{right}\n") == 1, f"{right!r} is not one line of the pipeline"
    bad = tmp_path / f"typo-in-{section}.toml"
    bad.write_text(text.replace(f"\n{right}\n", f"\n{wrong}\n"))
    r = subprocess.run([str(logpipe_bin), "check", str(bad)], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0, f"`logpipe check` accepted {wrong!r}:\n{r.stdout}{r.stderr}"
    message = r.stderr
    assert re.search(rf"\b{section}\b[\w.\[\]]*\.{key}\b", message), \
        f"the message does not name the key {section}...{key}:\n{message}"
    assert str(bad) in message, f"the message does not name the file {bad}:\n{message}"
    assert "panicked" not in message and "backtrace" not in message.lower(), message
    assert "ok" not in r.stdout, r.stdout


# --------------------------------------------------------------------------------------------
# The allocator


def test_jemalloc_runs_with_two_arenas_unless_told_otherwise(logpipe_bin):
    """`.cargo/config.toml` builds jemalloc's options into the binary: two arenas instead of four per CPU,
    which kept the end-to-end catch-up's peak RSS under its 128 MiB bound. jemalloc's own report of its
    options (`stats_print`, on stderr at exit) says which it runs with; `_RJEM_MALLOC_CONF` still wins."""
    def narenas(conf: str) -> int:
        env = {**os.environ, "_RJEM_MALLOC_CONF": conf}
        r = subprocess.run([str(logpipe_bin), "--version"], capture_output=True, text=True, timeout=30, env=env)
        assert r.returncode == 0, r.stderr
        found = re.search(r"opt\.narenas: (\d+)", r.stderr)
        assert found, f"no jemalloc option report on stderr with _RJEM_MALLOC_CONF={conf}:\n{r.stderr[:2000]}"
        return int(found.group(1))

    assert narenas("stats_print:true") == 2, "the binary was built without .cargo/config.toml's malloc conf"
    assert narenas("stats_print:true,narenas:8") == 8


# --------------------------------------------------------------------------------------------
# The shipped pipeline as it is


def shipped_nginx_pipeline(port: int, data: Path, logs: Path, es_url: str) -> str:
    """pipelines/nginx.toml with only its addresses and paths moved into the test's: its
    `auto_offset_reset = "latest"` and the broker's default group rebalance delay stay."""
    text = (REPO / "pipelines" / "nginx.toml").read_text()
    for old, new in [("127.0.0.1:9092", f"{HOST}:{port}"), ('"data/broker"', f'"{data / "broker"}"'),
                     ('"data/agent/registry.json"', f'"{data / "agent" / "registry.json"}"'),
                     ("/var/log/nginx/", f"{logs}/"), ("http://127.0.0.1:9200", es_url)]:
        assert old in text, f"pipelines/nginx.toml no longer has {old!r}; update this test"
        text = text.replace(old, new)
    return text + f'\n[admin]\naddress = "{HOST}:0"\n'


@pytest.mark.parametrize("topics", ['["nginx"]', '["^ngin.*"]'])
def test_shipped_pipeline_indexes_the_lines_there_at_its_first_start(appliance_factory, es_standin, nginx_gen,
                                                                      tmp_path, topics):
    """pipelines/nginx.toml says auto_offset_reset = "latest". In one process that means from the
    pipeline's first start: lines the agent ships before the indexer's group has formed are indexed,
    not skipped. A restart resumes from the committed offsets and indexes nothing twice. The same with
    the indexer's topic as a regex: the agent's topic, which it matches, is created and pinned at start
    (not found five minutes later, at the next match, and read from its end then)."""
    logs, lines = tmp_path / "logs", 2_000
    summary = nginx_gen(logs, tmp_path / "summary.json", "--rate", "0", "--lines", str(lines),
                        "--start", rfc3339(datetime(2026, 11, 21, 8, 0, tzinfo=timezone.utc)), "--step-ms", "10",
                        "--seed", "7").wait(timeout=60)
    pipeline = shipped_nginx_pipeline(free_port(), tmp_path / "data", logs, es_standin.url)
    assert 'topics = ["nginx"]' in pipeline
    app = appliance_factory(pipeline.replace('topics = ["nginx"]', f"topics = {topics}"))
    app.start()
    want = expected_indices(summary)
    wait_until(lambda: stand_in_counts(es_standin) == want, 120,
               lambda: f"documents per index {want}, have {stand_in_counts(es_standin)}", procs=[app])
    assert app.stop(timeout=30) == 0
    app.start()
    wait_until(lambda: drained(app.status(), "logpipe-indexer"), 60, lambda: f"status {app.status()}", procs=[app])
    assert stand_in_counts(es_standin) == want and es_standin.stats()["created"] == sum(want.values()), \
        es_standin.stats()
