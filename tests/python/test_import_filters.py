"""`logpipe run --from` with a Logstash pipeline that takes lines apart with dissect, kv and json and
cleans the fields with mutate convert, gsub and lowercase: a Filebeat config ships an application log to
the test broker, the imported indexer applies the filters and writes the documents with the file output,
and every document has the fields Logstash would have given it."""

from __future__ import annotations

import json
import os
import subprocess

from support import child_cmd, wait_until

FILEBEAT = """\
filebeat.inputs:
- type: filestream
  id: app
  paths: ["{log}"]
  tags: ["app"]
output.kafka:
  hosts: ["{bootstrap}"]
  topic: app
  required_acks: -1
"""

LOGSTASH = """\
input {{ kafka {{ bootstrap_servers => "{bootstrap}" topics => ["app"] codec => json auto_offset_reset => "earliest" }} }}
filter {{
  if "app" in [tags] {{
    dissect {{
      mapping => {{ "message" => "%{{ts}} %{{level->}} %{{[process][pid]}} %{{pairs}} | %{{payload}}" }}
      convert_datatype => {{ "[process][pid]" => "int" }}
    }}
    kv {{ source => "pairs" target => "app" include_keys => ["user", "bytes", "seq"] }}
    json {{ source => "payload" target => "doc" add_tag => ["parsed"] }}
    mutate {{
      convert => {{ "[app][bytes]" => "integer" "[doc][ms]" => "float" "[app][seq]" => "integer" }}
      gsub => [ "[doc][path]", "/+", "/" ]
      lowercase => [ "level", "[app][user]" ]
      remove_field => [ "pairs", "payload" ]
    }}
  }}
}}
output {{ file {{ path => "{out}/app.ndjson" }} }}
"""

LINES = 50


def line(i: int) -> str:
    payload = json.dumps({"path": f"/Cart//Items///{i}", "ms": f"{i}.5"})
    level = ["INFO", "WARN"][i % 2]
    return f"2026-12-04T10:00:{i % 60:02d}Z {level:<6} {4000 + i} user=User{i} bytes=1,{i:03d} seq={i} noise=x | {payload}\n"


def test_json_kv_dissect_and_mutate_run_as_imported(logpipe_bin, broker, tmp_path):
    log = tmp_path / "app.log"
    log.write_text("".join(line(i) for i in range(LINES)) + "not a structured line\n")
    out = tmp_path / "out"
    work = tmp_path / "work"
    work.mkdir()
    (work / "filebeat.yml").write_text(FILEBEAT.format(log=log, bootstrap=broker.bootstrap))
    (work / "app.conf").write_text(LOGSTASH.format(bootstrap=broker.bootstrap, out=out))

    # The import translates every filter: the report has no errors.
    imported = subprocess.run([str(logpipe_bin), "import", "--report", "-o", work / "pipeline.toml",
                               work / "filebeat.yml", work / "app.conf"], capture_output=True, text=True, timeout=60)
    assert imported.returncode == 0, imported.stderr
    assert "\n0 errors," in imported.stderr, imported.stderr

    env = dict(os.environ, LOGPIPE_ADMIN__ADDRESS="127.0.0.1:0")
    documents = out / "app.ndjson"
    with open(work / "run.stderr.log", "wb") as err:
        proc = subprocess.Popen(child_cmd([str(logpipe_bin), "run", "--from", "filebeat.yml", "--from", "app.conf"]),
                                cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    try:
        def done():
            assert proc.poll() is None, (work / "run.stderr.log").read_text()[-3000:]
            return documents.exists() and len(documents.read_text().splitlines()) >= LINES + 1
        wait_until(done, 120, lambda: f"{LINES + 1} documents in {documents}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    docs = [json.loads(d) for d in documents.read_text().splitlines()]
    assert len(docs) == LINES + 1
    by_seq = {d["app"]["seq"]: d for d in docs if "app" in d}
    assert sorted(by_seq) == list(range(LINES))
    for i, d in by_seq.items():
        assert d["ts"] == f"2026-12-04T10:00:{i % 60:02d}Z"
        assert d["level"] == ["info", "warn"][i % 2]
        assert d["app"] == {"user": f"user{i}", "bytes": 1000 + i, "seq": i}
        assert d["doc"] == {"path": f"/Cart/Items/{i}", "ms": i + 0.5}
        assert d["process"] == {"pid": 4000 + i}
        assert "pairs" not in d and "payload" not in d
        assert set(d["tags"]) == {"app", "parsed"}
    [plain] = [d for d in docs if "app" not in d]
    assert plain["message"] == "not a structured line"
    # Without their source fields, json and kv neither fail nor succeed: no failure tag, no add_tag.
    assert set(plain["tags"]) == {"app", "_dissectfailure"}
