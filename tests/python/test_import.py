"""`logpipe import` and `logpipe run --from`: the classic stack's own configs (Filebeat, Logstash, Flume)
imported as they are.

- Every fixture in tests/import imports and the pipeline written passes `logpipe check`.
- Without --bypass-errors an import with untranslatable items writes nothing and exits 1, naming each
  with file:line:col; bad input names file, line, column and what was expected.
- End to end: the nginx-module filebeat.yml and the issue's Logstash pipeline (pointed at a test broker
  and the Elasticsearch stand-in) run with `logpipe run --from`, and generated nginx logs land in the same
  daily indices, with the same lines, as with the hand-written pipelines/nginx.toml. A second pair does
  the same with the classic Filebeat (log and filestream inputs, tags, multiline) and a Logstash pipeline
  that parses with grok and date itself."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from appliance_support import Stored, expected_indices, free_port, nginx_pipeline
from es_standin import EsStandin
from support import REPO, child_cmd, wait_until

FIXTURES = REPO / "tests" / "import"


def fixture_sets() -> list[list[Path]]:
    sets = [[p] for p in sorted((FIXTURES / "logstash").glob("*.conf"))]
    sets.append([FIXTURES / "logstash" / "conf.d"])
    sets += [[p] for p in sorted((FIXTURES / "filebeat").glob("*.yml"))]
    sets += [[p] for p in sorted((FIXTURES / "flume").glob("*.properties"))]
    sets.append([FIXTURES / "filebeat" / "nginx-module.yml", FIXTURES / "logstash" / "issue-nginx.conf"])
    sets.append([FIXTURES / "filebeat" / "nginx-tags.yml", FIXTURES / "logstash" / "issue-nginx.conf"])
    return sets


def run(logpipe_bin, *args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(logpipe_bin), *map(str, args)], capture_output=True, text=True, timeout=60, cwd=cwd)


@pytest.mark.parametrize("sources", fixture_sets(), ids=lambda s: "+".join(p.name for p in s))
def test_every_fixture_imports_and_passes_check(logpipe_bin, tmp_path, sources):
    out = tmp_path / "pipeline.toml"
    imported = run(logpipe_bin, "import", "--bypass-errors", "--report", "-o", out, *sources)
    assert imported.returncode == 0, imported.stderr
    assert "errors," in imported.stderr  # the report's closing line
    checked = run(logpipe_bin, "check", out)
    assert checked.returncode == 0, f"{checked.stderr}\n{out.read_text()}"
    text = out.read_text()
    assert text.startswith("# Written by `logpipe import`")
    # Every section points back to a source line.
    for source in sources:
        name = source.name if source.is_file() else ""
        assert f"{name}:" in text, text


def test_errors_refuse_unless_bypassed(logpipe_bin, tmp_path):
    source = FIXTURES / "logstash" / "unsupported.conf"
    out = tmp_path / "pipeline.toml"
    refused = run(logpipe_bin, "import", "-o", out, source)
    assert refused.returncode == 1
    assert not out.exists()
    assert "(Error) " in refused.stderr and "unsupported.conf:8:3: filter `ruby`" in refused.stderr, refused.stderr
    assert "--bypass-errors" in refused.stderr
    report = tmp_path / "report.txt"
    bypassed = run(logpipe_bin, "import", "--bypass-errors", f"--report={report}", "-o", out, source)
    assert bypassed.returncode == 0, bypassed.stderr
    assert "# Left out (--bypass-errors)" in out.read_text()
    assert "unsupported.conf:8:3: filter `ruby`" in out.read_text()
    lines = report.read_text().splitlines()
    assert lines[0].startswith("(Error) ") and lines[-1].endswith("notes"), lines


@pytest.mark.parametrize("name, where, what", [
    ("unbalanced.conf", "unbalanced.conf:5:1:", "`}`"),
    ("missing-arrow.conf", "missing-arrow.conf:2:", "`=>`"),
    ("tabs.yml", "tabs.yml:4:", "YAML"),
])
def test_bad_input_names_file_line_column_and_what_was_expected(logpipe_bin, name, where, what):
    r = run(logpipe_bin, "import", FIXTURES / "bad" / name)
    assert r.returncode == 1
    assert where in r.stderr and what in r.stderr and "expected" in r.stderr, r.stderr


def test_flume_exec_tail_is_reported_with_the_file_input_it_should_be(logpipe_bin):
    r = run(logpipe_bin, "import", FIXTURES / "flume" / "issue.properties")
    assert r.returncode == 0, r.stderr
    assert "(Warning) " in r.stderr and "loses data on restart" in r.stderr
    assert 'type = "file", paths = ["/home/xdl/logs/test.log"]' in r.stderr
    assert 'command = "tail -F /home/xdl/logs/test.log"' in r.stdout


# ---------------------------------------------------------------------------------------------------
# End to end


START = datetime(2026, 11, 20, 22, 0, tzinfo=timezone.utc)
LINES = 3000
STEP_MS = 60_000  # one line a minute: about two days, three daily indices per log


FILEBEAT = """\
filebeat.modules:
  - module: nginx
    access:
      enabled: true
      var.paths: ["{logs}/access.log*"]
    error:
      enabled: true
      var.paths: ["{logs}/error.log*"]

output.kafka:
  hosts: ["{bootstrap}"]
  topic: nginx
  required_acks: -1
"""

# The pipeline, pointed at the test broker and stand-in; `earliest` so lines shipped before
# the group formed are read (a new group at `latest` would skip them, as in Logstash).
LOGSTASH = """\
input {{ kafka {{ bootstrap_servers => "{bootstrap}" topics => "nginx" codec => "json" auto_offset_reset => "earliest" }} }}
output {{
  if "access" in [tags] {{ elasticsearch {{ hosts => ["{es}"] index => "nginx_access-%{{+YYYY.MM.dd}}" }} }}
  if "error" in [tags]  {{ elasticsearch {{ hosts => ["{es}"] index => "nginx_error-%{{+YYYY.MM.dd}}" }} }}
}}
"""


# The classic stack's Filebeat: two log inputs, tagged, the error log joined with multiline.
FILEBEAT_TAGS = """\
filebeat.inputs:
- type: log
  paths: ["{logs}/access.log*"]
  tags: ["access"]
- type: filestream
  id: nginx-error
  paths: ["{logs}/error.log*"]
  tags: ["error"]
  parsers:
    - multiline:
        type: pattern
        pattern: '^\\d{{4}}/\\d{{2}}/\\d{{2}} '
        negate: true
        match: after
output.kafka:
  hosts: ["{bootstrap}"]
  topic: nginx
  required_acks: -1
  compression: lz4
"""

# A Logstash pipeline that parses the lines itself: grok and date, per tag.
LOGSTASH_GROK = """\
input {{ kafka {{ bootstrap_servers => "{bootstrap}" topics => ["nginx"] codec => json auto_offset_reset => "earliest" }} }}
filter {{
  if "access" in [tags] {{
    grok {{ match => {{ "message" => "%{{COMBINEDAPACHELOG}}" }} }}
    date {{ match => [ "timestamp", "dd/MMM/yyyy:HH:mm:ss Z" ] }}
  }} else if "error" in [tags] {{
    grok {{
      pattern_definitions => {{ "NGINX_ERROR_TIME" => "%{{YEAR}}/%{{MONTHNUM}}/%{{MONTHDAY}} %{{TIME}}" }}
      match => {{ "message" => "^%{{NGINX_ERROR_TIME:ts}} \\[%{{LOGLEVEL:[log][level]}}\\]" }}
    }}
    date {{ match => [ "ts", "yyyy/MM/dd HH:mm:ss" ] timezone => "UTC" }}
  }}
}}
output {{
  if "access" in [tags] {{ elasticsearch {{ hosts => ["{es}"] index => "nginx_access-%{{+YYYY.MM.dd}}" }} }}
  if "error" in [tags]  {{ elasticsearch {{ hosts => ["{es}"] index => "nginx_error-%{{+YYYY.MM.dd}}" }} }}
}}
"""


def stored(es) -> dict[str, list[int]]:
    """Index name -> sorted generator sequence numbers of the lines stored there (each line carries
    one, so this compares lines whatever a filter made of `message`)."""
    s = Stored.read(es)
    assert not s.unnumbered and not s.duplicates(), (s.unnumbered[:3], list(s.duplicates().items())[:3])
    out: dict[str, list[int]] = {}
    for seq, places in s.where.items():
        out.setdefault(places[0][0], []).append(seq)
    return {index: sorted(seqs) for index, seqs in out.items()}


@pytest.mark.parametrize("filebeat, logstash", [(FILEBEAT, LOGSTASH), (FILEBEAT_TAGS, LOGSTASH_GROK)],
                         ids=["nginx-module+issue-pipeline", "multiline-inputs+grok-date-pipeline"])
def test_filebeat_and_logstash_configs_run_into_the_same_daily_indices(logpipe_bin, broker, es_standin, nginx_gen,
                                                                        tmp_path, filebeat, logstash):
    logs = tmp_path / "logs"
    summary = nginx_gen(logs, tmp_path / "summary.json", "--rate", "0", "--lines", str(LINES),
                        "--start", START.isoformat().replace("+00:00", "Z"), "--step-ms", str(STEP_MS),
                        "--seed", "7").wait(timeout=60)
    want = expected_indices(summary)
    assert len(want) >= 4, want

    # The imported configs, run in memory.
    work = tmp_path / "imported"
    work.mkdir()
    (work / "filebeat.yml").write_text(filebeat.format(logs=logs, bootstrap=broker.bootstrap))
    (work / "nginx.conf").write_text(logstash.format(bootstrap=broker.bootstrap, es=es_standin.url))
    env = dict(os.environ, LOGPIPE_ADMIN__ADDRESS="127.0.0.1:0")
    if logstash is LOGSTASH_GROK:
        # The agent's host is on UTC+8 (its event.timezone says so); the error lines' times are UTC, which
        # the date filter's `timezone => "UTC"` says and which must win, as in Logstash.
        env["TZ"] = "<+08>-8"
    stderr = open(work / "run.stderr.log", "wb")
    proc = subprocess.Popen(child_cmd([str(logpipe_bin), "run", "--from", "filebeat.yml", "--from", "nginx.conf"]),
                            cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        def done():
            assert proc.poll() is None, (work / "run.stderr.log").read_text()[-3000:]
            return es_standin.count() >= summary["total"]
        wait_until(done, 120, lambda: f"{summary['total']} documents: {es_standin.stats()}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        stderr.close()
    imported = stored(es_standin)
    assert {i: len(seqs) for i, seqs in imported.items()} == want

    # The hand-written pipeline on the same files.
    with EsStandin() as es2:
        app_dir = tmp_path / "handwritten"
        app_dir.mkdir()
        (app_dir / "pipeline.toml").write_text(nginx_pipeline(port=free_port(), data_dir=app_dir / "data",
                                                               logs_dir=logs, es_url=es2.url, admin=False))
        err2 = open(app_dir / "run.stderr.log", "wb")
        proc2 = subprocess.Popen(child_cmd([str(logpipe_bin), "run", "pipeline.toml"]), cwd=app_dir,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err2)
        try:
            def done2():
                assert proc2.poll() is None, (app_dir / "run.stderr.log").read_text()[-3000:]
                return es2.count() >= summary["total"]
            wait_until(done2, 120, lambda: f"{summary['total']} documents: {es2.stats()}")
        finally:
            proc2.terminate()
            proc2.wait(timeout=30)
            err2.close()
        handwritten = stored(es2)
    assert imported == handwritten


FLUME = """\
producer.sources = s
producer.channels = c
producer.sinks = r
producer.sources.s.type = exec
producer.sources.s.command = tail -F {log}
producer.sources.s.channels = c
producer.channels.c.type = memory
producer.sinks.r.type = org.apache.flume.plugins.KafkaSink
producer.sinks.r.metadata.broker.list = {bootstrap}
producer.sinks.r.request.required.acks = -1
producer.sinks.r.custom.topic.name = test-topic
producer.sinks.r.channel = c
"""


def test_flume_agent_runs_as_imported(logpipe_bin, broker, cli, tmp_path):
    """The issue's Flume agent (exec `tail -F`, the old Kafka sink names) runs with `logpipe run --from`:
    the file's lines arrive in test-topic as events with the line in `message`."""
    log = tmp_path / "test.log"
    log.write_text("".join(f"flume line {i}\n" for i in range(5)))
    work = tmp_path / "flume"
    work.mkdir()
    (work / "producer.properties").write_text(FLUME.format(log=log, bootstrap=broker.bootstrap))
    env = dict(os.environ, LOGPIPE_ADMIN__ADDRESS="127.0.0.1:0")
    with open(work / "run.stderr.log", "wb") as err:
        proc = subprocess.Popen(child_cmd([str(logpipe_bin), "run", "--from", "producer.properties"]), cwd=work,
                                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_until(lambda: "test-topic" in cli.run("topics", "list", check=False).stdout, 60,
                   "the agent to create test-topic")
        out = cli.run("consume", "test-topic", "--from-beginning", "--max-messages", "5", timeout=60).stdout
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    stderr = (work / "run.stderr.log").read_text()
    assert "loses data on restart" in stderr, stderr
    messages = sorted(json.loads(line)["message"] for line in out.splitlines() if line.strip())
    assert messages == [f"flume line {i}" for i in range(5)], out
