"""The agent as processes: a real `logpipe broker`, a real `logpipe agent`, a writer
process appending numbered lines, and a confluent-kafka consumer that reads the topic back and
compares it with what is on disk (see agent_support.py for the line format and the checks).

Slow tests are marked `agent` (select with -m agent, skip with -m "not agent"). Sizes can be scaled
with LOGPIPE_AGENT_SCALE (default 1.0; e.g. 0.2 for a quick run). Each test prints its figures
(run with -s to see them).
"""

from __future__ import annotations

import os
import random
import shlex
import time
from collections import defaultdict
from pathlib import Path

import pytest

from agent_support import (AgentProcess, DiskTruth, TopicCollector, Writer, agent_toml,
                           append_lines, check_delivery, exec_input, file_input, load_registry, make_line)
from support import child_cmd, close_and_report, create_topic, unique, wait_until

SCALE = float(os.environ.get("LOGPIPE_AGENT_SCALE", "1.0"))


def scaled(n: float) -> int:
    return max(1, int(n * SCALE))


@pytest.fixture
def agent_factory(logpipe_bin, tmp_path, request):
    """`agent_factory(bootstrap, topic, inputs, **agent_keys)` writes a config and starts an agent."""
    agents: list[AgentProcess] = []

    def make(bootstrap: str, topic: str, inputs: list[dict], start: bool = True, **agent) -> AgentProcess:
        workdir = tmp_path / f"agent{len(agents)}"
        text = agent_toml(workdir / "registry.json", [bootstrap], topic, inputs, **agent)
        a = AgentProcess(logpipe_bin, workdir, text, child_cmd)
        agents.append(a)
        return a.start() if start else a

    yield make

    close_and_report(agents, request, "agent")


@pytest.fixture
def writers():
    started: list[Writer] = []

    def make(**args) -> Writer:
        w = Writer(child_cmd, **args)
        started.append(w)
        return w

    yield make
    for w in started:
        w.close()


@pytest.fixture
def collectors():
    made: list[TopicCollector] = []

    def make(bootstrap: str, topic: str) -> TopicCollector:
        c = TopicCollector(bootstrap, topic)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def new_topic(broker, prefix: str) -> str:
    topic = unique(prefix)
    create_topic(broker.bootstrap, topic, 1)
    return topic


def fig(name: str, **values) -> None:
    print(f"\n[{name}] " + ", ".join(f"{k}={v}" for k, v in values.items()), flush=True)


# --------------------------------------------------------------------------------------------
# 1. rename rotation every 100 ms under 50,000 lines/s


@pytest.mark.agent
@pytest.mark.timeout(300)
def test_rename_rotation_every_100ms(broker, agent_factory, writers, collectors, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    topic = new_topic(broker, "rename")
    agent = agent_factory(broker.bootstrap, topic, [file_input([str(logs / "app.log*")])])

    w = writers(dir=str(logs), mode="rename", rate=50_000, seconds=10 * SCALE, rotate_ms=100)
    summary = w.wait()
    truth = DiskTruth.read(logs)
    # Rename rotation keeps every line on disk (the test deletes nothing).
    assert len(truth.where) == summary["lines"] and not truth.partial_tails

    col = collectors(broker.bootstrap, topic)
    t0 = time.monotonic()
    col.wait_for_seqs(set(truth.where), timeout=240)
    drain_s = time.monotonic() - t0
    assert agent.stop() == 0
    col.drain()
    report = check_delivery(col.events, truth, range(summary["first_seq"], summary["lines"]))
    fig("rename", lines=summary["lines"], writer_rate=f"{summary['rate']:.0f}/s",
        rotations=summary["rotations"], files=len(truth.sizes), result=str(report),
        backlog_drained_after_writer_s=f"{drain_s:.1f}")


# --------------------------------------------------------------------------------------------
# 2. copytruncate every 100 ms under 50,000 lines/s


@pytest.mark.agent
@pytest.mark.timeout(300)
def test_copytruncate_every_100ms(broker, agent_factory, writers, collectors, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    topic = new_topic(broker, "copytrunc")
    agent = agent_factory(broker.bootstrap, topic, [file_input([str(logs / "app.log*")])])

    w = writers(dir=str(logs), mode="copytruncate", rate=50_000, seconds=10 * SCALE, rotate_ms=100)
    summary = w.wait()
    written = range(summary["first_seq"], summary["lines"])
    truth = DiskTruth.read(logs)
    # Lines written between a copy and its truncate are on no file: logrotate's copytruncate loses them.
    not_on_disk = set(written) - set(truth.where)

    col = collectors(broker.bootstrap, topic)
    col.wait_for_seqs(set(truth.where), timeout=240)
    assert agent.stop() == 0
    col.drain()
    report = check_delivery(col.events, truth, written, allow_fragments=True)
    lost = [s for s in written if s not in report.delivered]
    # Only lines that copytruncate itself took off the disk may be missing...
    assert set(lost) <= not_on_disk
    # ...and they are few (each copy→truncate window is about a millisecond; 1% is generous).
    assert len(lost) <= 0.01 * len(written), report
    fig("copytruncate", lines=summary["lines"], writer_rate=f"{summary['rate']:.0f}/s",
        rotations=summary["rotations"], lines_not_on_disk=len(not_on_disk),
        of_those_delivered_anyway=len(not_on_disk) - len(lost), lost=len(lost),
        lost_pct=f"{100 * len(lost) / max(1, len(written)):.3f}%", result=str(report))


# --------------------------------------------------------------------------------------------
# 3. kill -9 the agent 5 times during a 1,000,000-line run


@pytest.mark.agent
@pytest.mark.timeout(420)
def test_agent_kill9_five_times(broker, agent_factory, writers, collectors, tmp_path):
    total = scaled(int(os.environ.get("LOGPIPE_AGENT_KILL_LINES", "1000000")))
    logs = tmp_path / "logs"
    logs.mkdir()
    topic = new_topic(broker, "kill9")
    agent = agent_factory(broker.bootstrap, topic, [file_input([str(logs / "*.log")])])
    registry = agent.workdir / "registry.json"

    # 10 files of total/10 lines, written at 100k lines/s: the kills fall both while the files grow
    # and while the agent works through the backlog.
    w = writers(dir=str(logs), mode="files", name="app.log", rate=100_000, lines=total,
                lines_per_file=max(1, total // 10))
    seed = int(os.environ.get("LOGPIPE_AGENT_SEED", random.SystemRandom().randrange(1 << 30)))
    rng = random.Random(seed)
    thresholds = sorted(rng.uniform(0.03, 0.9) * total for _ in range(5))
    print(f"\nseed {seed}; kill when the topic holds {[int(t) for t in thresholds]} records")

    col = collectors(broker.bootstrap, topic)
    kills = []  # (high watermark right after the kill, {path: registry offset})
    for t in thresholds:
        wait_until(lambda: col.high_watermark() >= t, 180, f"{int(t)} records in the topic",
                   interval=0.02)
        agent.kill9()
        hw = col.high_watermark()
        reg = {e["path"]: e["offset"] for e in load_registry(registry)}
        kills.append((hw, reg))
        agent.start()

    summary = w.wait()
    truth = DiskTruth.read(logs)
    assert len(truth.where) == total
    col.wait_for_seqs(set(truth.where), timeout=300)
    assert agent.stop() == 0
    col.drain()
    report = check_delivery(col.events, truth, range(total), allow_duplicates=True)

    first_pos: dict[int, int] = {}
    for e in col.events:
        first_pos.setdefault(e.seq, e.pos)
    name_of = {str(logs / n): n for n in truth.sizes}
    by_file: dict[str, list[tuple[int, int]]] = defaultdict(list)  # file → [(offset, seq)]
    for seq, (fname, off) in truth.where.items():
        by_file[fname].append((off, seq))

    # The registry only moved past lines the broker had acknowledged: at every kill, each line
    # before a file's registry offset was already in the topic (below the high watermark).
    problems = []
    for k, (hw, reg) in enumerate(kills):
        for path, roff in reg.items():
            fname = name_of.get(path)
            assert fname is not None, f"registry names {path}, which is not a log file"
            late = [seq for off, seq in by_file[fname] if off < roff and first_pos[seq] >= hw]
            if late:
                problems.append(f"kill {k}: registry offset {roff} of {fname} covers {len(late)} lines "
                                f"not in the topic at the kill (high watermark {hw}), e.g. {late[:5]}")

    # Duplicates are lines a restarted agent sent again because its registry was not past them.
    dup_per_kill = [0] * len(kills)
    acked_resent = [0] * len(kills)
    seen: set[int] = set()
    for e in col.events:
        if e.seq not in seen:
            seen.add(e.seq)
            continue
        fname, off = truth.where[e.seq]
        path = str(logs / fname)
        # the restart this copy came from: the last kill whose high watermark is not after it
        ks = [k for k, (hw, _) in enumerate(kills) if hw <= e.pos]
        if not ks:
            problems.append(f"seq {e.seq} duplicated at topic offset {e.pos} before any kill")
            continue
        k = ks[-1]
        roff = kills[k][1].get(path, 0)
        if off < roff:
            problems.append(f"seq {e.seq} ({fname}@{off}) sent again after kill {k} although the registry "
                            f"was at {roff}")
        dup_per_kill[k] += 1
        if first_pos[e.seq] < kills[k][0]:
            acked_resent[k] += 1
    # How far each registry was behind the topic at its kill, per file (lines in the topic whose
    # file offset is at or past the registry offset): what a restart sends again.
    behind = []
    for hw, reg in kills:
        per_file = {}
        for fname, lines in by_file.items():
            roff = reg.get(str(logs / fname), 0)
            n = sum(1 for off, seq in lines if off >= roff and first_pos[seq] < hw)
            if n:
                per_file[fname] = n
        behind.append(per_file)
    print(f"registry behind the topic at each kill (lines per file): {behind}")
    assert not problems, "\n".join(problems[:20])
    fig("kill9", lines=total, writer_rate=f"{summary['rate']:.0f}/s", seed=seed, result=str(report),
        duplicates_per_restart=dup_per_kill,
        of_which_already_in_topic_at_kill=acked_resent)


# --------------------------------------------------------------------------------------------
# 4. the broker is down for 20 s mid-run


@pytest.mark.agent
@pytest.mark.timeout(300)
@pytest.mark.parametrize("how", ["kill9", "sigterm"])
def test_broker_down_20s(how, broker, agent_factory, writers, collectors, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    topic = new_topic(broker, "outage")
    agent = agent_factory(broker.bootstrap, topic, [file_input([str(logs / "app.log*")])])
    stop_file = tmp_path / "stop-writer"
    # 5,000 lines/s with a rename rotation every 2 s, until told to stop.
    w = writers(dir=str(logs), mode="rename", rate=5_000, seconds=240, rotate_ms=2000,
                stop_file=str(stop_file))
    col = collectors(broker.bootstrap, topic)
    wait_until(lambda: col.high_watermark() >= 10_000, 60, "10,000 lines shipped before the outage")
    port = broker.port
    log_mark = len(agent.stderr_text())
    outage_started = time.monotonic()
    if how == "kill9":
        broker.kill9()
    else:
        assert broker.stop() == 0
    # The outage lasts 20 s by definition of the scenario (the writer keeps writing), and the agent
    # must notice it: it logs the state change once, not once per reconnect attempt.
    unreachable = "all Kafka brokers are unreachable"
    wait_until(lambda: time.monotonic() - outage_started >= 20 and unreachable in agent.stderr_text()[log_mark:],
               60, "20 s of outage, noticed by the agent", procs=[agent])
    assert agent.stderr_text()[log_mark:].count(unreachable) == 1, agent.stderr_tail()
    broker.start(port=port)
    # (the consumer's metadata needs a moment to find the partition again)
    hw_after_restart = wait_until(col.high_watermark, 60, "the topic's high watermark after the restart")
    # The agent reconnects by itself and ships the backlog; stop the writer once it has resumed.
    wait_until(lambda: col.high_watermark() >= hw_after_restart + 20_000, 120,
               "the agent shipping again after the broker came back")
    stop_file.touch()
    summary = w.wait()
    truth = DiskTruth.read(logs)
    assert len(truth.where) == summary["lines"]
    col.wait_for_seqs(set(truth.where), timeout=180)
    assert agent.stop() == 0
    col.drain()
    report = check_delivery(col.events, truth, range(summary["lines"]), allow_duplicates=True)
    fig(f"broker-down-{how}", lines=summary["lines"], result=str(report))


# --------------------------------------------------------------------------------------------
# 5. files created, appended to and rotated twice while the agent is down


@pytest.mark.agent
@pytest.mark.timeout(180)
@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_changes_while_agent_down(how, broker, agent_factory, collectors, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    topic = new_topic(broker, "down")
    agent = agent_factory(broker.bootstrap, topic, [file_input([str(logs / "*.log*")])])
    col = collectors(broker.bootstrap, topic)

    big, small, trunc = logs / "big.log", logs / "small.log", logs / "trunc.log"
    append_lines(big, range(0, 1000))        # 100 KB: known by fingerprint
    append_lines(small, range(1000, 1005))   # 500 B: known by device+inode while < 1 KiB
    append_lines(trunc, range(1005, 1205))
    assert col.wait_for_seqs(set(range(1205)), timeout=60)
    # A little more that the agent ships, so a kill -9 can fall with a registry behind the topic.
    append_lines(big, range(1205, 1300))
    assert col.wait_for_seqs(set(range(1300)), timeout=60)
    if how == "kill9":
        agent.kill9()
    else:
        assert agent.stop() == 0

    def rotate_twice(path: Path, appended: range, second: range, third: range):
        append_lines(path, appended)                   # grows while nobody reads it
        path.rename(path.with_name(path.name + ".1"))  # rotation 1
        append_lines(path, second)
        path.with_name(path.name + ".1").rename(path.with_name(path.name + ".2"))  # rotation 2
        path.rename(path.with_name(path.name + ".1"))
        append_lines(path, third)

    rotate_twice(big, range(2000, 2500), range(2500, 3000), range(3000, 3100))
    rotate_twice(small, range(3100, 3120), range(3120, 3130), range(3130, 3133))
    os.truncate(trunc, 0)                                # truncated while down, then rewritten
    append_lines(trunc, range(3133, 3183))
    append_lines(logs / "new-big.log", range(4000, 6000))  # created while down
    append_lines(logs / "new-small.log", range(6000, 6003))

    agent.start()
    truth = DiskTruth.read(logs)
    col.wait_for_seqs(set(truth.where), timeout=120)
    assert agent.stop() == 0
    col.drain()
    report = check_delivery(col.events, truth, allow_duplicates=(how == "kill9"))
    # Lines before the stop that are now on no file (trunc.log's first content) came once, earlier.
    assert set(range(1005, 1205)) <= col.seen
    fig(f"while-down-{how}", files=sorted(truth.sizes), result=str(report))


# --------------------------------------------------------------------------------------------
# 6. the exec input: `tail -F` on a file through a rename rotation, and a command that exits


@pytest.mark.agent
@pytest.mark.timeout(180)
def test_exec_tail_F_follows_the_file_through_rename_rotation(broker, agent_factory, collectors, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    live = logs / "app.log"
    topic = new_topic(broker, "exec-tail")
    # Fewer lines than tail's default of 10, so plain `tail -F` prints them all: their arrival shows
    # that the command runs and has the file open before anything else is appended.
    append_lines(live, range(0, 5))
    command = f"tail -F {shlex.quote(str(live))}"
    agent = agent_factory(broker.bootstrap, topic, [exec_input(command)])
    col = collectors(broker.bootstrap, topic)
    assert col.wait_for_seqs(set(range(5)), timeout=60)

    for first in range(5, 1005, 100):
        append_lines(live, range(first, first + 100))
    assert col.wait_for_seqs(set(range(1005)), timeout=60)
    # Rename rotation, as nginx + logrotate do it. Everything in the old file was shipped (tail -F
    # closes the old file once it sees the rename, without reading on; the next line is what the
    # agent then cannot guarantee). tail -F follows the name and reads the new file from its start.
    live.rename(logs / "app.log.1")
    append_lines(live, range(1005, 1505))
    assert col.wait_for_seqs(set(range(1505)), timeout=60)
    for first in range(1505, 2005, 100):
        append_lines(live, range(first, first + 100))
    assert col.wait_for_seqs(set(range(2005)), timeout=60)
    assert agent.stop() == 0
    col.drain()

    seqs = [e.seq for e in col.events]
    assert seqs == list(range(2005)), f"not every line exactly once and in order: {seqs[:20]}..."
    for e in col.events:
        assert e.message == make_line(e.seq, 100)[:-1].decode()
        assert (e.input_type, e.command_line, e.tags, e.path) == ("exec", command, ["exec"], None)
    fig("exec-tail-F", lines=len(seqs), rotations=1)


@pytest.mark.agent
@pytest.mark.timeout(120)
def test_exec_command_that_exits_is_restarted_with_backoff(broker, agent_factory, collectors, tmp_path):
    topic = new_topic(broker, "exec-restart")
    counter = shlex.quote(str(tmp_path / "runs"))
    # Each run prints two lines, the first with its run number and start time, then exits.
    command = (f"n=$(( $(cat {counter} 2>/dev/null || echo 0) + 1 )); echo $n > {counter}; "
               f'echo "run $n started $(date +%s%N)"; echo "run $n done"')
    agent = agent_factory(broker.bootstrap, topic, [exec_input(command)])
    col = collectors(broker.bootstrap, topic)
    col.collect_until(lambda c: any(e.message == "run 3 done" for e in c.events), timeout=60,
                      what="three runs of the command")
    assert agent.stop() == 0
    col.drain()

    messages = [e.message for e in col.events]
    starts = []
    for run in range(1, len(messages) // 2 + 1):
        first, done = messages[2 * run - 2], messages[2 * run - 1]
        assert first.startswith(f"run {run} started ") and done == f"run {run} done", messages
        starts.append(int(first.rsplit(" ", 1)[1]) / 1e9)
    assert len(starts) >= 3 and len(messages) == 2 * len(starts), messages
    assert all(e.input_type == "exec" and e.command_line == command for e in col.events)
    # Backoff after runs that end at once: 1 s, then 2 s (exec::MIN_BACKOFF, doubled). Lower bounds
    # only: a slow machine makes the gaps longer, never shorter.
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert gaps[0] >= 0.9 and gaps[1] >= 1.8, gaps
    assert len({e.id for e in col.events}) == len(col.events), "each run has its own event ids"
    fig("exec-restart", runs=len(starts), gaps_s=[round(g, 2) for g in gaps])


# --------------------------------------------------------------------------------------------
# The example pipeline loads


def test_nginx_agent_example_loads(logpipe_bin):
    import subprocess

    path = Path(__file__).resolve().parents[2] / "pipelines" / "nginx-agent.toml"
    proc = subprocess.run(child_cmd([str(logpipe_bin), "check", str(path)]), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
