"""Rough edges a new user hits in the first week: environment overrides, log output,
the admin endpoint of single-part commands, messages that name the key to change, stalls that say
so, version/completions/man page, and the systemd units' install steps."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from support import HOST, LISTENING_RE, child_cmd, toml_value, wait_until


def run(logpipe_bin, *args, env=None, cwd=None, timeout=60, input=None):
    full_env = {k: v for k, v in os.environ.items() if not k.upper().startswith("LOGPIPE_")}
    full_env.update(env or {})
    return subprocess.run(child_cmd([str(logpipe_bin), *map(str, args)]), capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout, input=input,
                          stdin=None if input is not None else subprocess.DEVNULL)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --------------------------------------------------------------------------------------------
# 1. Environment overrides


PIPELINE = """\
[broker]
log_dirs = "data/broker"
[agent.output]
topic = "t"
[[agent.inputs]]
type = "stdin"
[indexer.input]
topics = ["t"]
[admin]
address = "127.0.0.1:9600"
"""

# One override per section whose value the file's loader refuses, so the error proves it was read.
BAD_OVERRIDES = [
    ("BROKER__MESSAGE_MAX_BYTES", "big", "broker.message_max_bytes"),
    ("AGENT__QUEUE_MAX_BYTES", "lots", "agent.queue_max_bytes"),
    ("INDEXER__INPUT__AUTO_OFFSET_RESET", "sometimes", "indexer.input.auto_offset_reset"),
    ("ADMIN__ENABLED", "perhaps", "admin.enabled"),
]


@pytest.mark.parametrize("case", ["upper", "lower"])
@pytest.mark.parametrize("key,value,path", BAD_OVERRIDES, ids=[k for k, _, _ in BAD_OVERRIDES])
def test_env_override_is_read_for_every_section(logpipe_bin, tmp_path, key, value, path, case):
    pipeline = write(tmp_path / "p.toml", PIPELINE)
    assert run(logpipe_bin, "check", pipeline).returncode == 0
    name = "LOGPIPE_" + (key if case == "upper" else key.lower())
    r = run(logpipe_bin, "check", pipeline, env={name: value})
    assert r.returncode != 0, f"{name}={value} was ignored: {r.stdout}{r.stderr}"
    # The error names the variable to fix, as documented (upper case), whichever case was set.
    assert f'"LOGPIPE_{key}"' in r.stderr and "environment" in r.stderr, r.stderr


def test_documented_log_dirs_override_moves_the_broker(logpipe_bin, tmp_path):
    """The README's own example: LOGPIPE_BROKER__LOG_DIRS=/var/lib/logpipe."""
    config = write(tmp_path / "broker.toml", f'[broker]\nlisteners = ["{HOST}:0"]\nlog_dirs = "default-dir"\n'
                   '[admin]\nenabled = false\n')
    wanted = tmp_path / "from-env"
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("LOGPIPE_")}
    env["LOGPIPE_BROKER__LOG_DIRS"] = str(wanted)
    proc = subprocess.Popen(child_cmd([str(logpipe_bin), "broker", "-c", str(config)]), cwd=tmp_path, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert LISTENING_RE.match(proc.stdout.readline().decode()), "no 'listening on' line"
        wait_until(wanted.is_dir, 30, f"{wanted} created by the broker")
        assert not (tmp_path / "default-dir").exists()
    finally:
        proc.kill()
        proc.wait(timeout=30)


# --------------------------------------------------------------------------------------------
# 2. Log output: no colour codes off a terminal, JSON on request


def run_broker_briefly(logpipe_bin, tmp_path: Path, *flags: str) -> str:
    """Start a broker with stderr to a file (as under systemd), stop it cleanly, return its stderr."""
    config = write(tmp_path / "broker.toml", f'[broker]\nlisteners = ["{HOST}:0"]\nlog_dirs = "data"\n'
                   '[admin]\nenabled = false\n')
    stderr_path = tmp_path / "stderr.log"
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("LOGPIPE_")}
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(child_cmd([str(logpipe_bin), *flags, "broker", "-c", str(config)]), cwd=tmp_path,
                                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
    try:
        assert LISTENING_RE.match(proc.stdout.readline().decode()), "no 'listening on' line"
        wait_until(lambda: "broker listening" in stderr_path.read_text(), 30, "the broker's first log lines")
        proc.terminate()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    return stderr_path.read_text()


def test_logs_to_a_file_carry_no_colour_codes(logpipe_bin, tmp_path):
    text = run_broker_briefly(logpipe_bin, tmp_path)
    assert "broker stopped cleanly" in text
    assert "\x1b[" not in text, text


def test_log_format_json_prints_one_object_per_line(logpipe_bin, tmp_path):
    import json

    text = run_broker_briefly(logpipe_bin, tmp_path, "--log-format", "json")
    records = [json.loads(line) for line in text.splitlines()]  # every line is JSON
    assert any(r["fields"]["message"] == "broker stopped cleanly" for r in records), text
    assert all(r["level"] in ("TRACE", "DEBUG", "INFO", "WARN", "ERROR") for r in records)

    # A command's final error is a JSON line too, after the subcommand as well as before it.
    r = run(logpipe_bin, "check", tmp_path / "missing.toml", "--log-format", "json")
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert lines and all(json.loads(line) for line in lines), r.stderr
    assert "missing.toml" in json.loads(lines[-1])["fields"]["message"]


# --------------------------------------------------------------------------------------------
# 3. The admin endpoint of `logpipe agent|indexer|broker -c FILE`


def part_config(part: str, admin: str) -> str:
    """A config file for one part, pointed at a broker port nobody listens on (enough to start)."""
    sections = {
        "broker": f'[broker]\nlisteners = ["{HOST}:0"]\nlog_dirs = "data"\n',
        "agent": f'[agent]\nregistry = "registry.json"\n[agent.output]\nbrokers = ["{HOST}:1"]\ntopic = "t"\n'
                 '[[agent.inputs]]\ntype = "stdin"\n',
        "indexer": f'[indexer.input]\nbrokers = ["{HOST}:1"]\ntopics = ["t"]\n'
                   '[indexer.output.file]\npath = "indices"\n',
    }
    return sections[part] + f"[admin]\naddress = {toml_value(admin)}\n"


def start_part(logpipe_bin, tmp_path: Path, part: str, admin: str) -> subprocess.Popen:
    config = write(tmp_path / f"{part}.toml", part_config(part, admin))
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("LOGPIPE_")}
    return subprocess.Popen(child_cmd([str(logpipe_bin), part, "-c", str(config)]), cwd=tmp_path, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("part", ["broker", "agent", "indexer"])
def test_single_part_serves_admin_where_the_file_says(logpipe_bin, tmp_path, part):
    import json
    import urllib.request

    proc = start_part(logpipe_bin, tmp_path, part, f"{HOST}:0")
    try:
        def admin_line():
            line = proc.stdout.readline()
            assert line, f"{part} exited: {proc.stderr.read()}"
            return line.startswith("admin on http://") and line.split("http://", 1)[1].strip()

        address = wait_until(admin_line, 30, "the 'admin on' line")
        assert not address.endswith(":9600"), "the file's [admin] address was ignored"
        with urllib.request.urlopen(f"http://{address}/status", timeout=10) as resp:
            assert resp.status == 200 and isinstance(json.loads(resp.read()), dict)
    finally:
        proc.kill()
        proc.wait(timeout=30)


@pytest.mark.parametrize("part", ["broker", "agent", "indexer"])
def test_configured_admin_port_taken_fails_with_one_line(logpipe_bin, tmp_path, part):
    import socket

    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        address = f"{HOST}:{taken.getsockname()[1]}"
        proc = start_part(logpipe_bin, tmp_path, part, address)
        try:
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    assert proc.returncode == 1
    assert "admin on" not in out and "listening on" not in out, "started anyway"
    # The failure is one line; the indexer may log what it loaded first (its enrichment data), but
    # nothing starts and nothing else is an error.
    lines = [line for line in err.splitlines() if not re.match(r"\d{4}-\d\d-\d\dT\S+\s+(INFO|WARN)\b", line)]
    assert len(lines) == 1, err
    assert "admin.address" in lines[0] and address in lines[0], err
    assert err.count("Address already in use") == 1, err


# --------------------------------------------------------------------------------------------
# 4. Messages that say what to change


@pytest.mark.parametrize("status", [401, 403])
def test_elasticsearch_refusing_credentials_names_user_and_password(logpipe_bin, tmp_path, broker, es_standin,
                                                                     status):
    from indexer_support import es_output, indexer_toml

    es_standin.fail_requests(status)
    config = indexer_toml([broker.bootstrap], ["t"], "g", elasticsearch=es_output(es_standin.url, user="elastic",
                                                                                   password="wrong"))
    write(tmp_path / "indexer.toml", config + "[admin]\nenabled = false\n")
    r = run(logpipe_bin, "indexer", "-c", tmp_path / "indexer.toml", cwd=tmp_path, timeout=120)
    assert r.returncode == 1, r.stderr
    last = r.stderr.splitlines()[-1]
    assert str(status) in last, last
    assert "indexer.output.elasticsearch.user" in last and ".password" in last, last
    if status == 401:
        assert "manage_template" not in last, last


def test_unreachable_broker_says_check_the_address_not_the_timeout(logpipe_bin):
    r = run(logpipe_bin, "topics", "list", "--bootstrap-server", f"{HOST}:1", "--request-timeout-ms", "2000")
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert "request-timeout-ms" not in lines[0], lines[0]
    assert f"--bootstrap-server {HOST}:1" in lines[0] and "running" in lines[0], lines[0]
    # The librdkafka reason appears once, not once per link of the error chain.
    assert lines[0].count("BrokerTransportFailure") <= 2 and lines[0].count("Meta data fetch error") <= 1, lines[0]


def test_listener_port_taken_is_said_once_and_names_listeners(logpipe_bin, tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        address = f"{HOST}:{taken.getsockname()[1]}"
        write(tmp_path / "broker.toml", f'[broker]\nlisteners = ["{address}"]\nlog_dirs = "data"\n'
              '[admin]\nenabled = false\n')
        r = run(logpipe_bin, "broker", "-c", tmp_path / "broker.toml", cwd=tmp_path)
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].count("Address already in use") == 1, lines[0]
    assert "listeners" in lines[0] and address in lines[0], lines[0]


def test_topics_create_with_a_misspelt_config_names_the_key(broker, cli):
    r = cli.run("topics", "create", "typo", "--config", "retention.mss=5", check=False)
    assert r.returncode == 1
    assert "'retention.mss'" in r.stderr and "did you mean 'retention.ms'" in r.stderr, r.stderr
    assert "retention.bytes" in r.stderr, "the valid keys are not listed"


# --------------------------------------------------------------------------------------------
# 6. --version with the git commit, shell completions, man page


def test_version_names_the_git_commit(logpipe_bin):
    import shutil

    r = run(logpipe_bin, "--version")
    assert r.returncode == 0
    m = re.fullmatch(r"logpipe (\d+\.\d+\.\d+)(?: \(git ([0-9a-f]{7,40})\))?\s*", r.stdout)
    assert m, r.stdout
    from support import REPO
    in_git = shutil.which("git") and subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"],
                                                   capture_output=True).returncode == 0
    if in_git:
        assert m.group(2), f"built in a git checkout but no commit in {r.stdout!r}"
        # The commit the binary was built from exists in this repository.
        assert subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", m.group(2) + "^{commit}"]).returncode == 0


@pytest.mark.parametrize("shell,marker", [("bash", "complete -F _logpipe"), ("zsh", "#compdef logpipe"),
                                          ("fish", "complete -c logpipe")])
def test_completions_cover_the_subcommands(logpipe_bin, shell, marker):
    import shutil

    r = run(logpipe_bin, "completions", shell)
    assert r.returncode == 0, r.stderr
    assert marker in r.stdout
    for sub in ("run", "agent", "indexer", "broker", "topics", "groups", "status", "completions", "man"):
        assert sub in r.stdout, f"{sub} missing from the {shell} completions"
    assert "log-format" in r.stdout
    if shell == "bash":
        assert subprocess.run(["bash", "-n"], input=r.stdout, text=True).returncode == 0
    elif shutil.which(shell):
        assert subprocess.run([shell, "-n"], input=r.stdout, text=True).returncode == 0


def test_man_page_is_generated_from_the_cli(logpipe_bin, tmp_path):
    import shutil

    r = run(logpipe_bin, "man")
    assert r.returncode == 0, r.stderr
    page = r.stdout
    assert page.splitlines()[2].startswith(".TH logpipe 1"), page[:300]
    version = run(logpipe_bin, "--version").stdout.strip()
    assert version in page, "the man page carries the same version as --version"
    for section in (".SH NAME", ".SH SYNOPSIS", ".SH SUBCOMMANDS"):
        assert section in page
    for sub in ("run", "agent", "indexer", "broker", "completions"):
        assert f"logpipe\\-{sub}" in page or f"logpipe-{sub}" in page, sub
    if shutil.which("groff"):
        rendered = subprocess.run(["groff", "-man", "-Tutf8"], input=page, capture_output=True, text=True)
        assert rendered.returncode == 0 and "logpipe" in rendered.stdout


# --------------------------------------------------------------------------------------------
# 7. The systemd units' install steps install every file the units reference


def documented_install_steps() -> list[str]:
    """The indented block after 'Install' in examples/README.md."""
    from support import REPO

    lines = (REPO / "examples" / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Install"))
    block, seen = [], False
    for line in lines[start + 1:]:
        if line.startswith("    "):
            block.append(line.strip())
            seen = True
        elif seen and line.strip():
            break
    assert block, "no install block in examples/README.md"
    return block


def unit_references(unit_text: str) -> list[str]:
    """Absolute paths a unit needs to exist: the executable and the files in ExecStart, the docs."""
    import shlex

    paths = []
    for line in unit_text.splitlines():
        key, _, value = line.partition("=")
        if key == "ExecStart":
            paths += [w for w in shlex.split(value) if w.startswith("/")]
        elif key == "Documentation":
            for ref in value.split():
                if ref.startswith("file://"):
                    paths.append(ref[len("file://"):])
                elif ref.startswith("man:"):
                    name, section = ref[len("man:"):].rstrip(")").split("(")
                    paths.append(f"/usr/local/share/man/man{section}/{name}.{section}")
    return paths


def test_systemd_install_steps_install_everything_the_units_reference(logpipe_bin, tmp_path):

    from support import REPO

    root = tmp_path / "root"
    for d in ("etc/systemd/system", "usr/local/bin", "usr/share"):  # there on any systemd host
        (root / d).mkdir(parents=True)
    for step in documented_install_steps():
        if re.match(r"(sudo )?(useradd|systemctl|journalctl)\b", step):
            continue  # system state, not files
        # The binary under test, not whatever release build lies in target/ (it may be older).
        step = step.replace("sudo ", "").replace("target/release/logpipe", str(logpipe_bin))
        step = re.sub(r"(?<![\w./-])/(etc|usr|var)/", lambda m: f"{root}/{m.group(1)}/", step)
        r = subprocess.run(["bash", "-euo", "pipefail", "-c", step], cwd=REPO, capture_output=True, text=True)
        assert r.returncode == 0, f"install step failed: {step}\n{r.stderr}"

    units = sorted((root / "etc" / "systemd" / "system").glob("*.service"))
    assert {u.name for u in units} >= {"logpipe.service", "logpipe-agent.service"}, units
    missing = []
    for unit in units:
        refs = unit_references(unit.read_text())
        assert any(ref.endswith("/logpipe") for ref in refs), f"{unit.name}: no ExecStart binary"
        missing += [f"{unit.name}: {ref}" for ref in refs if not (root / ref.lstrip("/")).exists()]
    assert not missing, "referenced but not installed by examples/README.md: " + ", ".join(missing)

    # The installed pipeline files are valid for the units' commands.
    for config in sorted((root / "etc" / "logpipe").glob("*.toml")):
        r = run(logpipe_bin, "check", config)
        assert r.returncode == 0, r.stderr


# --------------------------------------------------------------------------------------------
# 5. Stalls say so, once; shutdown summarises what was not delivered


# The agent's own producer calls a topic missing as soon as the metadata says so; librdkafka (`client =
# "librdkafka"`) waits topic.metadata.propagation.max.ms (30 s), shortened here.
LIBRDKAFKA_FAST_UNKNOWN_TOPIC = ('[agent.output]\nclient = "librdkafka"\n'
                                 'librdkafka = { "topic.metadata.propagation.max.ms" = "100" }\n')


def test_missing_file_and_missing_topic_are_logged_once_and_when_they_clear(logpipe_bin, tmp_path, broker_factory):
    from agent_support import AgentProcess, agent_toml, append_lines, file_input
    from support import create_topic

    broker = broker_factory(auto_create_topics_enable=False)
    topic = "not-there-yet"
    logs = tmp_path / "logs"
    pattern = str(logs / "app*.log")
    config = agent_toml(tmp_path / "registry.json", [broker.bootstrap], topic, [file_input([pattern])],
                        shutdown_timeout="1s")
    agent = AgentProcess(logpipe_bin, tmp_path / "agent", config + "[admin]\nenabled = false\n", child_cmd)
    try:
        agent.start()
        wait_until(lambda: "no file matches this path" in agent.stderr_text(), 30, "the no-file warning",
                   procs=[agent])
        logs.mkdir()
        append_lines(logs / "app1.log", range(1, 201))
        wait_until(lambda: "files match this path now" in agent.stderr_text(), 30, "the glob clearing",
                   procs=[agent])
        wait_until(lambda: f"topic {topic} does not exist" in agent.stderr_text(), 60, "the missing-topic warning",
                   procs=[agent])
        assert f"logpipe topics create {topic}" in agent.stderr_text()
        create_topic(broker.bootstrap, topic, 1)
        wait_until(lambda: f"topic {topic} accepts events again" in agent.stderr_text(), 60,
                   "the topic clearing", procs=[agent])
        assert agent.stop() == 0
        text = agent.stderr_text()
    finally:
        agent.close()
    assert text.count("no file matches this path") == 1, text
    assert text.count(f"topic {topic} does not exist") == 1, text
    assert "delivery failed" not in text, text
    assert pattern in text


def test_shutdown_summarises_undelivered_events_in_one_line(logpipe_bin, tmp_path, broker_factory):

    from agent_support import AgentProcess, agent_toml, append_lines, file_input
    from support import create_topic, read_topic

    broker = broker_factory(auto_create_topics_enable=False)
    logs = tmp_path / "logs"
    logs.mkdir()
    append_lines(logs / "app.log", range(1, 3001))
    config = agent_toml(tmp_path / "registry.json", [broker.bootstrap], "nowhere", [file_input([str(logs / "*.log")])],
                        shutdown_timeout="1s").replace("[agent.output]\n", LIBRDKAFKA_FAST_UNKNOWN_TOPIC)
    agent = AgentProcess(logpipe_bin, tmp_path / "agent", config + "[admin]\nenabled = false\n", child_cmd)
    try:
        agent.start()
        wait_until(lambda: "topic nowhere does not exist" in agent.stderr_text(), 60, "the missing-topic warning",
                   procs=[agent])
        assert agent.stop() == 0
        text = agent.stderr_text()
        assert "PurgeQueue" not in text and "delivery failed" not in text, text[-3000:]
        summary = [line for line in text.splitlines() if "not acknowledged by Kafka" in line]
        assert len(summary) == 1, text[-3000:]
        m = re.search(r"stopped with (\d+) event\(s\)", summary[0])
        assert m and 0 < int(m.group(1)) <= 3000, summary[0]
        assert len(text.splitlines()) < 40, f"{len(text.splitlines())} lines of log"

        # As the line says: the file's events are read again at the next start.
        create_topic(broker.bootstrap, "nowhere", 1)
        agent.start()
        wait_until(lambda: len(read_topic(broker.bootstrap, "nowhere")[0]) >= 3000, 60, "all 3000 lines delivered",
                   procs=[agent])
    finally:
        agent.close()


# --------------------------------------------------------------------------------------------
# 6. `logpipe status`: what runs and where, rates and ETA, stalls, 80 columns, `q` quits


class LiveView:
    """`logpipe status --address A` on a pseudo-terminal of 80x24, as a user runs it. The output is read
    in the background; `screen()` is the last complete redraw as plain lines (cursor moves become line
    breaks, other escape sequences are dropped)."""

    def __init__(self, logpipe_bin, address: str):
        import fcntl
        import pty
        import struct
        import termios
        import threading

        self.master, self.slave = pty.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        self.modes_before = termios.tcgetattr(self.slave)
        self.proc = subprocess.Popen(child_cmd([str(logpipe_bin), "status", "--address", address]),
                                     stdin=self.slave, stdout=self.slave, stderr=self.slave, start_new_session=True)
        self.output = b""
        self._stop = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        import select
        while not self._stop:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    self.output += os.read(self.master, 65536)
                except OSError:
                    return

    def screen(self) -> list[str]:
        frames = [f for f in self.output.decode(errors="replace").split("\x1b[1;1H") if f]
        if len(frames) < 3:
            return []
        frame = re.sub(r"\x1b\[\d+;\d+H", "\n", frames[-2])
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", frame).split("\n")

    def terminal_modes(self):
        import termios
        return termios.tcgetattr(self.slave)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self._stop = True
        self._reader.join(timeout=5)
        os.close(self.master)
        os.close(self.slave)


def status_pipeline(tmp_path: Path, *, es_url: str | None = None, auto_create: bool = True) -> str:
    """Broker, agent (one file input that matches, one that does not) and optionally an indexer, with
    the admin endpoint on a free port. Paths are long, as under /var/lib: they test the 80 columns."""
    from appliance_support import free_port

    port = free_port()
    deep = tmp_path / "a-rather-long-directory-name-for-the-logs" / "of-this-application"
    deep.mkdir(parents=True)
    broker = f"{HOST}:{port}"
    text = f"""\
[broker]
listeners = [{toml_value(broker)}]
log_dirs = {toml_value(tmp_path / "data")}
group_initial_rebalance_delay_ms = 0
auto_create_topics_enable = {toml_value(auto_create)}

[admin]
address = "{HOST}:0"

[agent]
registry = {toml_value(tmp_path / "registry.json")}

[agent.output]
brokers = [{toml_value(broker)}]
topic = "app"

[[agent.inputs]]
type = "file"
paths = [{toml_value(deep / "app*.log")}]
scan_frequency = "200ms"

[[agent.inputs]]
type = "file"
paths = [{toml_value(tmp_path / "not-there-yet" / "*.log")}]
scan_frequency = "200ms"
"""
    if es_url:
        text += f"""
[indexer.input]
brokers = [{toml_value(broker)}]
topics = ["app"]
group_id = "status-indexer"
auto_offset_reset = "earliest"

[indexer.output.elasticsearch]
hosts = [{toml_value(es_url)}]
"""
    return text


@pytest.mark.parametrize("quit_with", ["q", "ctrl-c", "SIGTERM"])
def test_status_view_says_what_runs_fits_80_columns_and_quits(logpipe_bin, tmp_path, quit_with):
    import signal

    from agent_support import append_lines
    from appliance_support import ApplianceProcess

    appliance = ApplianceProcess(logpipe_bin, tmp_path / "run", status_pipeline(tmp_path), child_cmd)
    append_lines(tmp_path / "a-rather-long-directory-name-for-the-logs" / "of-this-application" / "app.log",
                 range(1, 11))
    view = None
    try:
        appliance.start()
        view = LiveView(logpipe_bin, appliance.admin_address)
        # Long paths are cut from the left to fit: the ends are shown.
        pipeline_end = str(appliance.pipeline_path)[-40:]

        def complete():
            text = "\n".join(view.screen())
            return all(want in text for want in (
                f"admin {appliance.admin_address}", f"{pipeline_end}\n",
                f"broker   listening on {appliance.broker_address}", "agent    2 inputs -> topic app",
                " lines/s", "STALLED", "not-there-yet/*.log: no file matches", "FILES")) and text

        text = wait_until(complete, 60, lambda: f"a full screen, have:\n{view.output[-3000:]!r}", procs=[appliance])
        wide = [line for line in view.screen() if len(line) > 80]
        assert not wide, f"lines wider than 80 columns: {wide}"
        assert "…" in text, "nothing needed cutting: the 80-column check proves nothing"

        if quit_with == "q":
            os.write(view.master, b"q")
        elif quit_with == "ctrl-c":
            os.write(view.master, b"\x03")  # in raw mode a key, not a signal
        else:
            view.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: view.proc.poll() is not None, 30, f"the view to quit on {quit_with}")
        assert view.proc.returncode == 0
        assert view.terminal_modes() == view.modes_before, "terminal left in raw mode"
        wait_until(lambda: view.output.endswith(b"\x1b[?1049l"), 10, "the alternate screen left")
    finally:
        if view:
            view.close()
        appliance.close()


def test_status_shows_rates_in_and_out_and_an_eta_while_a_group_catches_up(logpipe_bin, tmp_path, es_standin):

    from agent_support import append_lines
    from appliance_support import ApplianceProcess
    from confluent_kafka import Consumer, TopicPartition

    from support import consumer_conf, create_topic, produce

    appliance = ApplianceProcess(logpipe_bin, tmp_path / "run", status_pipeline(tmp_path, es_url=es_standin.url),
                                 child_cmd)
    view = reader = None
    log = tmp_path / "a-rather-long-directory-name-for-the-logs" / "of-this-application" / "app.log"
    try:
        appliance.start()
        bootstrap = appliance.broker_address
        backlog, group = "backlog", "slow-reader"
        create_topic(bootstrap, backlog, 1)
        produce(bootstrap, backlog, [{"value": b"x", "partition": 0}] * 20_000)
        reader = Consumer(consumer_conf(bootstrap, group=group))
        committed = [0]

        def commit_more():
            committed[0] = min(committed[0] + 25, 20_000)
            reader.commit(offsets=[TopicPartition(backlog, 0, committed[0])], asynchronous=False)

        commit_more()
        view = LiveView(logpipe_bin, appliance.admin_address)
        seq = [0]

        def flowing():
            append_lines(log, range(seq[0], seq[0] + 50))  # lines keep coming in
            seq[0] += 50
            commit_more()  # and the group drains its backlog, slowly
            text = "\n".join(view.screen())
            rates = re.search(r"in ([\d.]+) lines/s.*?out ([\d.]+) documents/s", text)
            eta = re.search(rf"^{group}\s+Empty\s+0\s+\d+\s+[\d.]+\s+(\d+[smhd]\S*)$", text, re.M)
            return rates and float(rates[1]) > 0 and float(rates[2]) > 0 and eta and (text, eta[1])

        text, eta = wait_until(flowing, 120, lambda: "rates and an ETA, have:\n" + "\n".join(view.screen()),
                               interval=0.02, procs=[appliance])
        assert committed[0] < 20_000, "the backlog drained before the view showed an ETA"
        assert not [line for line in view.screen() if len(line) > 80]
        os.write(view.master, b"q")
        wait_until(lambda: view.proc.poll() is not None, 30, "the view to quit")
    finally:
        if reader:
            reader.close()
        if view:
            view.close()
        appliance.close()


def test_status_snapshot_lists_agent_stalls_until_they_clear(logpipe_bin, tmp_path):
    import urllib.request

    from agent_support import append_lines

    from appliance_support import ApplianceProcess
    from support import create_topic

    appliance = ApplianceProcess(logpipe_bin, tmp_path / "run", status_pipeline(tmp_path, auto_create=False),
                                 child_cmd)
    pattern = str(tmp_path / "not-there-yet" / "*.log")
    append_lines(tmp_path / "a-rather-long-directory-name-for-the-logs" / "of-this-application" / "app.log",
                 range(1, 11))
    try:
        appliance.start()
        status = appliance.status()
        assert status["about"]["pipeline"] == str(appliance.pipeline_path)
        assert [p["part"] for p in status["about"]["parts"]] == ["broker", "agent"]
        assert status["about"]["admin"] == appliance.admin_address

        def stalls():
            return {(s["kind"], s["key"]) for s in appliance.status()["stalls"]}

        wait_until(lambda: ("glob", pattern) in stalls(), 30, "the glob stall", procs=[appliance])
        with urllib.request.urlopen(f"http://{appliance.admin_address}/metrics", timeout=10) as resp:
            assert f'logpipe_agent_stalled{{kind="glob",key="{pattern}"}} 1' in resp.read().decode()
        (tmp_path / "not-there-yet").mkdir()
        append_lines(tmp_path / "not-there-yet" / "x.log", range(1, 11))
        wait_until(lambda: ("topic", "app") in stalls(), 60, "the missing-topic stall", procs=[appliance])
        topic_stall = next(s for s in appliance.status()["stalls"] if s["kind"] == "topic")
        assert "does not exist" in topic_stall["reason"] and "logpipe topics create" in topic_stall["reason"]
        wait_until(lambda: ("glob", pattern) not in stalls(), 30, "the glob stall clearing", procs=[appliance])
        create_topic(appliance.broker_address, "app", 1)
        wait_until(lambda: not stalls(), 60, "every stall cleared", procs=[appliance])
    finally:
        appliance.close()
