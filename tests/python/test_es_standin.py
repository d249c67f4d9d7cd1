"""The Elasticsearch stand-in (es_standin.py) itself, over plain urllib: the `_bulk` contract it
enforces, the bodies it answers with, and each injected fault. Fast; needs no logpipe process."""

from __future__ import annotations

import gzip
import http.client
import json
import threading
import time
import urllib.request
from typing import Optional

import pytest

from es_standin import EsStandin
from support import wait_until
from support import wait_until

NDJSON = "application/x-ndjson"


@pytest.fixture
def es():
    with EsStandin() as s:
        yield s


def request(es: EsStandin, method: str, path: str, body: Optional[bytes] = None,
            headers: Optional[dict] = None) -> tuple[int, dict, dict]:
    """(status, parsed JSON body or {}, response headers), over http.client so no header is
    added behind the test's back (urllib adds a form Content-Type to every POST)."""
    conn = http.client.HTTPConnection("127.0.0.1", es.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        status, raw, hdrs = resp.status, resp.read(), dict(resp.getheaders())
    finally:
        conn.close()
    if hdrs.get("Content-Encoding") == "gzip":
        raw = gzip.decompress(raw)
    return status, (json.loads(raw) if raw else {}), hdrs


def ndjson(*lines) -> bytes:
    return b"".join((json.dumps(x) if not isinstance(x, (bytes, str)) else
                     (x.decode() if isinstance(x, bytes) else x)).encode() + b"\n" for x in lines)


def bulk(es: EsStandin, body: bytes, path: str = "/_bulk", ctype: Optional[str] = NDJSON,
         gz: bool = False) -> tuple[int, dict]:
    headers = {}
    if ctype is not None:
        headers["Content-Type"] = ctype
    if gz:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    status, doc, _ = request(es, "POST", path, body, headers)
    return status, doc


def create(index: str, doc_id: str, **source) -> bytes:
    return ndjson({"create": {"_index": index, "_id": doc_id}}, source)


# --------------------------------------------------------------------------------------------
# Cluster info, health, templates


def test_info_health_and_product_header(es):
    status, info, headers = request(es, "GET", "/")
    assert status == 200 and info["version"]["number"].startswith("8.")
    assert info["tagline"] == "You Know, for Search"
    assert headers["X-elastic-product"] == "Elasticsearch"
    status, health, _ = request(es, "GET", "/_cluster/health")
    assert status == 200 and health["status"] == "green"


def test_index_template_put_get_and_validation(es):
    tpl = {"index_patterns": ["nginx_*"], "template": {"mappings": {"properties": {"@timestamp": {"type": "date"}}}}}
    status, body, _ = request(es, "PUT", "/_index_template/logpipe", json.dumps(tpl).encode(),
                              {"Content-Type": "application/json"})
    assert (status, body) == (200, {"acknowledged": True})
    assert es.templates["logpipe"] == tpl
    status, body, _ = request(es, "GET", "/_index_template/logpipe")
    assert status == 200 and body["index_templates"][0]["index_template"] == tpl
    status, body, _ = request(es, "PUT", "/_index_template/bad", b"{}", {"Content-Type": "application/json"})
    assert status == 400 and body["error"]["type"] == "action_request_validation_exception"
    status, body, _ = request(es, "GET", "/_index_template/nope")
    assert status == 404 and body["status"] == 404


# --------------------------------------------------------------------------------------------
# _bulk: the happy path and conflicts


def test_create_answers_exactly_as_elasticsearch(es):
    status, r = bulk(es, create("logs-2026.11.21", "a", message="one") + create("logs-2026.11.21", "b", message="two"))
    assert status == 200
    assert r["errors"] is False and isinstance(r["took"], int)
    assert r["items"] == [
        {"create": {"_index": "logs-2026.11.21", "_id": "a", "_version": 1, "result": "created",
                    "_shards": {"total": 2, "successful": 1, "failed": 0}, "_seq_no": 0,
                    "_primary_term": 1, "status": 201}},
        {"create": {"_index": "logs-2026.11.21", "_id": "b", "_version": 1, "result": "created",
                    "_shards": {"total": 2, "successful": 1, "failed": 0}, "_seq_no": 1,
                    "_primary_term": 1, "status": 201}},
    ]
    assert es.docs["logs-2026.11.21"]["a"] == {"message": "one"}
    assert es.count() == 2 and es.count("logs-*") == 2 and es.indices() == ["logs-2026.11.21"]
    assert es.created_total == 2 and es.bulk_items_total == 2 and es.bulk_requests_total == 1


def test_create_of_existing_id_is_409_and_keeps_the_first(es):
    bulk(es, create("i", "x", v=1))
    status, r = bulk(es, create("i", "x", v=2) + create("i", "y", v=3) + create("other", "x", v=4))
    assert status == 200 and r["errors"] is True
    conflict = r["items"][0]["create"]
    assert conflict["status"] == 409 and conflict["_id"] == "x" and conflict["_index"] == "i"
    assert conflict["error"]["type"] == "version_conflict_engine_exception"
    assert conflict["error"]["reason"] == "[x]: version conflict, document already exists (current version [1])"
    assert conflict["error"]["index"] == "i" and conflict["error"]["shard"] == "0"
    assert [it["create"]["status"] for it in r["items"][1:]] == [201, 201], "ids are per index"
    assert es.docs["i"]["x"] == {"v": 1}
    assert es.conflicts_total == 1 and es.created_total == 3
    assert sorted(es.all_ids()) == ["x", "x", "y"]


def test_index_in_path_and_auto_id(es):
    body = ndjson({"create": {"_id": "p1"}}, {"a": 1}, {"create": {}}, {"a": 2})
    status, r = bulk(es, body, path="/fromurl/_bulk")
    assert status == 200 and not r["errors"]
    ids = [it["create"]["_id"] for it in r["items"]]
    assert ids[0] == "p1" and len(ids[1]) >= 20
    assert {it["create"]["_index"] for it in r["items"]} == {"fromurl"}
    assert es.count("fromurl") == 2


def test_index_update_delete_actions(es):
    bulk(es, create("i", "1", a=1, nested={"x": 1}))
    body = ndjson({"index": {"_index": "i", "_id": "1"}}, {"a": 2},
                  {"update": {"_index": "i", "_id": "1"}}, {"doc": {"b": 3}},
                  {"update": {"_index": "i", "_id": "missing"}}, {"doc": {"b": 3}},
                  {"update": {"_index": "i", "_id": "up"}}, {"doc": {"c": 1}, "doc_as_upsert": True},
                  {"delete": {"_index": "i", "_id": "gone"}},
                  {"index": {"_index": "i", "_id": "2"}}, {"z": 1},
                  {"delete": {"_index": "i", "_id": "2"}})
    status, r = bulk(es, body)
    assert status == 200 and r["errors"] is True
    got = [(next(iter(it)), it[next(iter(it))]["status"], it[next(iter(it))].get("result")) for it in r["items"]]
    assert got == [("index", 200, "updated"), ("update", 200, "updated"), ("update", 404, None),
                   ("update", 201, "created"), ("delete", 404, "not_found"), ("index", 201, "created"),
                   ("delete", 200, "deleted")]
    assert r["items"][2]["update"]["error"]["type"] == "document_missing_exception"
    assert es.docs["i"]["1"] == {"a": 2, "b": 3}
    assert r["items"][1]["update"]["_version"] == 3
    assert sorted(es.docs["i"]) == ["1", "up"]


def test_gzip_request_and_response(es):
    body = b"".join(create("gz", str(i), n=i) for i in range(500))
    req = urllib.request.Request(es.url + "/_bulk", data=gzip.compress(body), method="POST", headers={
        "Content-Type": NDJSON, "Content-Encoding": "gzip", "Accept-Encoding": "gzip"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.headers["Content-Encoding"] == "gzip"
        r = json.loads(gzip.decompress(resp.read()))
    assert not r["errors"] and len(r["items"]) == 500
    assert es.count("gz") == 500 and es.docs["gz"]["499"] == {"n": 499}
    assert es.request_log("/_bulk")[-1].gzip


def test_chunked_request_body(es):
    conn = http.client.HTTPConnection("127.0.0.1", es.port, timeout=10)
    try:
        body = (create("ch", str(i), n=i) for i in range(50))  # an iterable: sent chunked
        conn.request("POST", "/_bulk", body=body, encode_chunked=True,
                     headers={"Content-Type": NDJSON, "Transfer-Encoding": "chunked"})
        resp = conn.getresponse()
        assert resp.status == 200 and not json.loads(resp.read())["errors"]
    finally:
        conn.close()
    assert es.count("ch") == 50


def test_versioned_ndjson_content_type_is_accepted(es):
    status, r = bulk(es, create("v", "1"), ctype="application/vnd.elasticsearch+x-ndjson; compatible-with=8")
    assert status == 200 and not r["errors"]


# --------------------------------------------------------------------------------------------
# _bulk: what Elasticsearch refuses


@pytest.mark.parametrize("ctype, message", [
    ("application/json", "Content-Type header [application/json] is not supported"),
    ("text/plain", "Content-Type header [text/plain] is not supported"),
    (None, "Content-Type header is missing"),
])
def test_wrong_content_type_is_406(es, ctype, message):
    status, r = bulk(es, create("i", "1"), ctype=ctype)
    assert (status, r) == (406, {"error": message, "status": 406})
    assert es.count() == 0


def test_json_content_type_when_allowed():
    with EsStandin(accept_json_bulk=True) as s:
        status, r = bulk(s, create("i", "1"), ctype="application/json")
        assert status == 200 and not r["errors"]


def test_body_without_final_newline_is_400(es):
    status, r = bulk(es, create("i", "1")[:-1])
    assert status == 400 and r["status"] == 400
    assert r["error"]["type"] == "illegal_argument_exception"
    assert r["error"]["reason"] == "The bulk request must be terminated by a newline [\\n]"
    assert r["error"]["root_cause"][0]["type"] == "illegal_argument_exception"
    assert es.count() == 0


@pytest.mark.parametrize("body", [
    b'{"create":{"_index":"i","_id":"1"}}\n{"a":1}\nnot json\n{"a":2}\n',
    b'{"create":{"_index":"i","_id":"1"}}\n{"a":1}\n{"frobnicate":{"_index":"i"}}\n{"a":2}\n',
    b'{"create":{"_index":"i","_id":"1"}}\n{"a":1}\n["create"]\n{"a":2}\n',
    b'{"create":{"_index":"i","_id":"1"}}\n{"a":1}\n\n{"a":2}\n',
    b'{"create":{"_index":"i","_id":"1","colour":"red"}}\n{"a":1}\n',
    b'{"create":{"_index":"i","_id":"1"}}\n',
])
def test_malformed_action_lines_fail_the_whole_request(es, body):
    status, r = bulk(es, body)
    assert status == 400 and r["status"] == 400
    assert r["error"]["type"] == "illegal_argument_exception", r
    assert r["error"]["root_cause"] and r["error"]["reason"]
    assert es.count() == 0, "nothing of a refused request is applied"


def test_missing_index_is_a_validation_error(es):
    status, r = bulk(es, ndjson({"create": {"_id": "1"}}, {"a": 1}))
    assert status == 400 and r["error"]["type"] == "action_request_validation_exception"


def test_empty_body_is_400(es):
    status, r = bulk(es, b"")
    assert status == 400 and r["error"]["reason"] == "request body is required"


def test_unparsable_source_fails_only_its_item(es):
    body = create("i", "ok1") + b'{"create":{"_index":"i","_id":"bad"}}\n{"cut": \n' + create("i", "ok2") \
        + b'{"create":{"_index":"i","_id":"arr"}}\n[1,2]\n'
    status, r = bulk(es, body)
    assert status == 200 and r["errors"] is True
    assert [it["create"]["status"] for it in r["items"]] == [201, 400, 201, 400]
    assert r["items"][1]["create"]["error"]["type"] == "document_parsing_exception"
    assert sorted(es.docs["i"]) == ["ok1", "ok2"]


def test_invalid_index_name_fails_its_item(es):
    status, r = bulk(es, create("Nginx-2026", "1") + create("_hidden", "2") + create("fine", "3"))
    assert [it["create"]["status"] for it in r["items"]] == [400, 400, 201]
    assert r["items"][0]["create"]["error"]["type"] == "invalid_index_name_exception"
    assert "must be lowercase" in r["items"][0]["create"]["error"]["reason"]
    assert es.indices() == ["fine"]


def test_oversized_body_is_413():
    with EsStandin(max_content_length=1000) as s:
        status, _ = bulk(s, create("i", "1", pad="x" * 2000))
        assert status == 413 and s.count() == 0


# --------------------------------------------------------------------------------------------
# Faults


def test_fail_requests_count_and_status_cycle(es):
    es.fail_requests((429, 503), count=3)
    got = [bulk(es, create("i", str(n))) for n in range(4)]
    assert [s for s, _ in got] == [429, 503, 429, 200]
    assert got[0][1]["error"]["type"] == "es_rejected_execution_exception" and got[0][1]["status"] == 429
    assert got[1][1]["error"]["root_cause"][0]["type"] == "cluster_block_exception"
    assert es.count() == 1 and es.failed_requests_total == 3
    assert request(es, "GET", "/")[0] == 200


def test_fail_requests_until_a_deadline_covers_every_api(es):
    es.fail_requests(503, until=time.monotonic() + 0.5)
    assert request(es, "GET", "/")[0] == 503
    assert bulk(es, create("i", "1"))[0] == 503
    wait_until(lambda: bulk(es, create("i", "1"))[0] == 200, 5, "the fault to end at its deadline")
    assert es.count("i") == 1


def test_fail_requests_bulk_only_and_clear(es):
    es.fail_requests(429, bulk_only=True)
    assert request(es, "GET", "/_cluster/health")[0] == 200
    assert bulk(es, create("i", "1"))[0] == 429
    es.clear_faults()
    assert bulk(es, create("i", "1"))[0] == 200


def test_reject_items_by_predicate(es):
    es.reject_items(lambda src: "BAD" in src.get("message", ""))
    body = create("i", "1", message="fine") + create("i", "2", message="this is BAD") + create("i", "3", message="ok")
    status, r = bulk(es, body)
    assert status == 200 and r["errors"] is True
    assert [it["create"]["status"] for it in r["items"]] == [201, 400, 201]
    err = r["items"][1]["create"]["error"]
    assert err["type"] == "document_parsing_exception" and "failed to parse field [message]" in err["reason"]
    assert sorted(es.docs["i"]) == ["1", "3"] and es.rejected_total == 1

    es.reject_items(lambda src: src.get("n") == 7, error_type="mapper_parsing_exception", reason="nope")
    status, r = bulk(es, create("i", "7", n=7))
    assert r["items"][0]["create"]["error"] == {"type": "mapper_parsing_exception", "reason": "nope"}


def test_item_status_retryable_per_doc(es):
    es.item_status(lambda src: src.get("slow") is True, 429, per_doc=2)
    body = create("i", "a", slow=True) + create("i", "b", slow=False)
    statuses = []
    for _ in range(3):
        _, r = bulk(es, body)
        statuses.append([it["create"]["status"] for it in r["items"]])
    assert statuses == [[429, 201], [429, 409], [201, 409]]
    assert es.item_retryable_total == 2

    es.item_status(lambda src: True, 503, count=1)
    _, r = bulk(es, create("i", "c") + create("i", "d"))
    assert [it["create"]["status"] for it in r["items"]] == [503, 201]
    assert r["items"][0]["create"]["error"]["type"] == "unavailable_shards_exception"


def test_drop_connections(es):
    es.drop_connections(2)
    for _ in range(2):
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            bulk(es, create("i", "1"))
    assert es.count() == 0 and es.dropped_total == 2
    assert bulk(es, create("i", "1"))[0] == 200
    assert [r.status for r in es.request_log("/_bulk")] == [None, None, 200]


def test_drop_after_apply_then_replay_conflicts(es):
    es.drop_connections(1, apply=True)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        bulk(es, create("i", "1"))
    assert es.count("i") == 1, "applied before the answer was lost"
    _, r = bulk(es, create("i", "1"))
    assert r["items"][0]["create"]["status"] == 409


def test_held_answers_and_concurrency_are_observed(es):
    es.hold()
    threads = [threading.Thread(target=bulk, args=(es, create("c", str(i)))) for i in range(4)]
    for t in threads:
        t.start()
    wait_until(lambda: es.in_flight_bulk >= 2, 10, "two bulk requests held at once")
    assert all(t.is_alive() for t in threads), "no answer goes out while held"
    es.release()
    for t in threads:
        t.join(10)
    assert es.count("c") == 4 and es.max_in_flight_bulk >= 2


def test_keep_alive_connection_serves_many_requests(es):
    conn = http.client.HTTPConnection("127.0.0.1", es.port, timeout=10)
    try:
        for i in range(20):
            conn.request("POST", "/_bulk", body=create("ka", str(i)), headers={"Content-Type": NDJSON})
            resp = conn.getresponse()
            assert resp.status == 200 and not json.loads(resp.read())["errors"]
    finally:
        conn.close()
    assert es.count("ka") == 20


def test_many_documents_and_views(es):
    n = 20_000
    body = b"".join(create(f"big-{i % 2}", f"id{i}", seq=i, message=f"m{i}") for i in range(n))
    status, r = bulk(es, body)
    assert status == 200 and not r["errors"] and len(r["items"]) == n
    assert es.count("big-*") == n and es.count("big-0,big-1") == n and es.count("big-0") == n // 2
    assert len(set(es.all_ids())) == n
    assert sum(1 for _ in es.sources("big-1")) == n // 2
    assert es.find("id7") == [("big-1", {"seq": 7, "message": "m7"})]
    assert request(es, "GET", "/big-0/_count")[1]["count"] == n // 2
    status, d, _ = request(es, "GET", "/big-0/_doc/id8")
    assert status == 200 and d["_source"] == {"seq": 8, "message": "m8"}


def test_close_stops_listening():
    s = EsStandin()
    port = s.port
    s.close()
    with pytest.raises(OSError):
        http.client.HTTPConnection("127.0.0.1", port, timeout=2).connect()
