"""An Elasticsearch stand-in for the indexer tests: a stdlib HTTP server that answers the `_bulk`,
index-template, cluster-info and health APIs the way Elasticsearch 8 documents them, keeps the
documents it accepted, and injects faults on demand.

It enforces the `_bulk` contract rather than accepting anything:
- `Content-Type` must be `application/x-ndjson` (or the versioned
  `application/vnd.elasticsearch+x-ndjson; compatible-with=8`); anything else is answered 406 with
  Elasticsearch's body `{"error":"Content-Type header [...] is not supported","status":406}`.
  (Real Elasticsearch also takes `application/json` on `_bulk`; pass `accept_json_bulk=True` for that.)
- The body must end with `\\n`; `Content-Encoding: gzip` is accepted; bodies over
  `max_content_length` (Elasticsearch's `http.max_content_length`, 100 MiB) get 413.
- A malformed action line fails the whole request with 400 and an `illegal_argument_exception` (or
  `action_request_validation_exception` for a missing index), as Elasticsearch's bulk parser does. A
  source line that is not a JSON object fails only its item (400 `document_parsing_exception`).
- `create` of an `_id` the index already holds is item status 409 `version_conflict_engine_exception`;
  the document is not replaced. Indices are created on first write; names are checked as
  Elasticsearch checks them (lowercase, no `\\ / * ? " < > | , # :` or space, no leading `_ - +`).

Faults (thread-safe; change them while the indexer runs):
- `fail_requests(status, count=None, until=None)`: whole requests answered 429/503/... with an
  Elasticsearch-shaped error body, for the next `count` requests and/or until a `time.monotonic()`.
- `reject_items(predicate, status=400)`: items whose source satisfies `predicate` are answered with a
  mapping error and not stored.
- `item_status(predicate, status)`: items whose source satisfies `predicate` get a retryable per-item
  429 (`es_rejected_execution_exception`) or 503 (`unavailable_shards_exception`), optionally only
  `count` times in all or `per_doc` times per document.
- `drop_connections(count, apply=False)`: the next `count` requests are read and the connection is
  closed without an answer; with `apply=True` a `_bulk` is applied first (the answer is lost after the
  write, the case that makes `create` + 409 matter).
- `hold()` / `release()`: `_bulk` answers wait (in their handler threads, not under the store's lock) from
  `hold()` until `release()` or `close()`: a node that has stopped answering writes, for as long as a test
  needs; other requests (templates, health) are answered as usual.

Storage: `docs[index][id]` is the source as a dict (parsed on access; raw bytes are kept so hundreds of
thousands of documents stay cheap). `count()`, `indices()`, `all_ids()`, `sources()` and the counters
(`created_total`, `conflicts_total`, `rejected_total`, `requests_total`, `bulk_requests_total`,
`bulk_items_total`, `failed_requests_total`, `dropped_total`) read a consistent snapshot.

Run alone for manual poking: `python es_standin.py` (prints its URL; Ctrl-C prints its stats and stops).
"""

from __future__ import annotations

import base64
import fnmatch
import gzip
import json
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator, Optional, Sequence, Union
from urllib.parse import unquote, urlsplit

HOST = "127.0.0.1"
VERSION = "8.15.3"
NDJSON_TYPES = ("application/x-ndjson", "application/vnd.elasticsearch+x-ndjson")
JSON_TYPES = ("application/json", "application/vnd.elasticsearch+json")
INVALID_INDEX_CHARS = set('\\/*?"<>| ,#:')
SHARDS = '{"total":2,"successful":1,"failed":0}'

Predicate = Callable[[dict], bool]


def es_error(status: int, etype: str, reason: str, **extra) -> dict:
    """A top-level error body as Elasticsearch writes it."""
    cause = {"type": etype, "reason": reason, **extra}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


WHOLE_REQUEST_ERRORS = {
    429: ("es_rejected_execution_exception",
          "rejected execution of coordinating operation [coordinating_and_primary_bytes=104857600, "
          "replica_bytes=0, all_bytes=104857600, coordinating_operation_bytes=5242880, "
          "max_coordinating_and_primary_bytes=107374182]"),
    503: ("cluster_block_exception", "blocked by: [SERVICE_UNAVAILABLE/2/no master];"),
    500: ("exception", "stand-in: injected internal error"),
    502: ("exception", "stand-in: injected bad gateway"),
    504: ("exception", "stand-in: injected gateway timeout"),
}


class BulkParseError(Exception):
    def __init__(self, status: int, etype: str, reason: str):
        super().__init__(reason)
        self.status, self.etype, self.reason = status, etype, reason


@dataclass
class RequestInfo:
    """One request as the stand-in saw it (kept for the last `request_log_size` requests)."""
    at: float            # time.monotonic() when the request line arrived
    method: str
    path: str
    status: Optional[int]  # None: the connection was dropped without an answer
    items: int = 0
    body_bytes: int = 0
    gzip: bool = False
    content_type: str = ""
    fault: str = ""


@dataclass
class _RequestFault:
    statuses: Sequence[int]
    count: Optional[int]
    until: Optional[float]
    bulk_only: bool
    served: int = 0

    def active(self, now: float) -> bool:
        if self.count is not None and self.served >= self.count:
            return False
        if self.until is not None and now >= self.until:
            return False
        return True


@dataclass
class _ItemFault:
    predicate: Predicate
    status: int
    etype: str
    reason: Optional[str]
    count: Optional[int] = None
    per_doc: Optional[int] = None
    served: int = 0


@dataclass
class _Drop:
    remaining: int
    apply: bool


class IndexView(Mapping):
    """A snapshot of one index: id -> source dict (decoded on access)."""

    def __init__(self, raw: dict[str, bytes]):
        self._raw = raw

    def __getitem__(self, doc_id: str) -> dict:
        return json.loads(self._raw[doc_id])

    def __iter__(self):
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def raw(self, doc_id: str) -> bytes:
        return self._raw[doc_id]


class DocsView(Mapping):
    """`docs[index][id]` -> source dict, over a snapshot taken when an index is looked up."""

    def __init__(self, standin: "EsStandin"):
        self._s = standin

    def __getitem__(self, index: str) -> IndexView:
        with self._s._lock:
            idx = self._s._docs.get(index)
            if idx is None:
                raise KeyError(index)
            return IndexView({k: v[0] for k, v in idx.items()})

    def __iter__(self):
        return iter(self._s.indices())

    def __len__(self) -> int:
        return len(self._s.indices())


class EsStandin:
    """See the module docstring. Starts serving on construction; `close()` (or `with`) stops it."""

    def __init__(self, *, version: str = VERSION, max_content_length: int = 100 << 20,
                 accept_json_bulk: bool = False, compress_responses: bool = True,
                 request_log_size: int = 20_000):
        self.version = version
        self.max_content_length = max_content_length
        self.accept_json_bulk = accept_json_bulk
        self.compress_responses = compress_responses
        self.cluster_uuid = _b64uuid()

        self._lock = threading.Lock()
        # index -> id -> (source bytes, version, seq_no)
        self._docs: dict[str, dict[str, tuple[bytes, int, int]]] = {}
        self._index_meta: dict[str, dict] = {}  # index -> {"uuid", "seq_no"}
        self.templates: dict[str, dict] = {}
        self._request_faults: list[_RequestFault] = []
        self._item_faults: list[_ItemFault] = []
        self._item_attempts: dict[tuple[str, str], int] = {}
        self._drops: list[_Drop] = []
        self.requests: deque[RequestInfo] = deque(maxlen=request_log_size)

        self.created_total = 0
        self.updated_total = 0
        self.deleted_total = 0
        self.conflicts_total = 0
        self.rejected_total = 0        # items answered 4xx other than 409 (not stored)
        self.item_retryable_total = 0  # items answered 429/5xx/403 (not stored)
        self.requests_total = 0
        self.bulk_requests_total = 0
        self.bulk_items_total = 0
        self.failed_requests_total = 0  # whole requests answered with an injected error
        self.dropped_total = 0
        self.in_flight_bulk = 0
        self.max_in_flight_bulk = 0

        self._connections: set[socket.socket] = set()
        # Cleared by hold(), set by release() and close(): `_bulk` answers wait on it.
        self._answering = threading.Event()
        self._answering.set()
        self._server = _Server((HOST, 0), _Handler)
        self._server.standin = self
        self.port = self._server.server_address[1]
        self.url = f"http://{HOST}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"es-standin-{self.port}", daemon=True)
        self._thread.start()
        self._closed = False

    # -- lifecycle ----------------------------------------------------------------------------

    def hold(self) -> None:
        """`_bulk` answers wait from now until `release()` (or `close()`); the writes are still applied."""
        self._answering.clear()

    def release(self) -> None:
        """Held answers go out, and new ones are no longer held."""
        self._answering.set()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._answering.set()
        self._server.shutdown()
        self._server.server_close()
        # Keep-alive connections outlive serve_forever; end them so handler threads exit.
        with self._lock:
            conns = list(self._connections)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)

    def __enter__(self) -> "EsStandin":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- faults -------------------------------------------------------------------------------

    def fail_requests(self, status: Union[int, Sequence[int]], count: Optional[int] = None,
                      until: Optional[float] = None, bulk_only: bool = False) -> None:
        """Answer whole requests with `status` (a sequence cycles per request, e.g. (429, 503)) for
        the next `count` requests and/or until `until` (time.monotonic()); with neither, until
        `clear_faults()`. `bulk_only` spares everything but `_bulk`."""
        statuses = (status,) if isinstance(status, int) else tuple(status)
        assert statuses, "at least one status"
        with self._lock:
            self._request_faults.append(_RequestFault(statuses, count, until, bulk_only))

    def reject_items(self, predicate: Predicate, status: int = 400,
                     error_type: str = "document_parsing_exception", reason: Optional[str] = None) -> None:
        """Items whose source satisfies `predicate` get `status` with a mapping error; not stored.
        The default reason reads like Elasticsearch's for a field that does not fit its mapping."""
        with self._lock:
            self._item_faults.append(_ItemFault(predicate, status, error_type, reason))

    def item_status(self, predicate: Predicate, status: int = 429, count: Optional[int] = None,
                    per_doc: Optional[int] = None) -> None:
        """Per-item retryable failures (429, 5xx, or 403 as a write block answers) for items whose source
        satisfies `predicate`:
        at most `count` in all, and at most `per_doc` attempts of each document (None: unlimited)."""
        etype = {429: "es_rejected_execution_exception", 403: "cluster_block_exception"}.get(
            status, "unavailable_shards_exception")
        with self._lock:
            self._item_faults.append(_ItemFault(predicate, status, etype, None, count, per_doc))

    def drop_connections(self, count: int, apply: bool = False) -> None:
        """Close the connection without answering the next `count` requests (after applying a
        `_bulk` first when `apply`)."""
        with self._lock:
            self._drops.append(_Drop(count, apply))

    def clear_faults(self) -> None:
        with self._lock:
            self._request_faults.clear()
            self._item_faults.clear()
            self._drops.clear()

    # -- reading the store --------------------------------------------------------------------

    @property
    def docs(self) -> DocsView:
        return DocsView(self)

    def indices(self) -> list[str]:
        with self._lock:
            return sorted(self._docs)

    def _matching(self, pattern: Optional[str]) -> list[str]:
        """Index names matching `pattern`: a name, a wildcard (`nginx_access-*`), or a comma list."""
        if pattern is None:
            return list(self._docs)
        names: list[str] = []
        for part in pattern.split(","):
            if any(c in part for c in "*?["):
                names += [n for n in self._docs if fnmatch.fnmatchcase(n, part)]
            elif part in self._docs:
                names.append(part)
        return names

    def count(self, index: Optional[str] = None) -> int:
        """Documents in `index` (a name, wildcard or comma list), or in all indices."""
        with self._lock:
            return sum(len(self._docs[n]) for n in self._matching(index))

    def all_ids(self, index: Optional[str] = None) -> list[str]:
        """Every stored `_id` across the matching indices (an id stored in two indices appears twice)."""
        with self._lock:
            return [i for n in self._matching(index) for i in self._docs[n]]

    def sources(self, index: Optional[str] = None) -> Iterator[tuple[str, str, dict]]:
        """(index, id, source) for every stored document, over a snapshot."""
        with self._lock:
            snap = [(n, list(self._docs[n].items())) for n in self._matching(index)]
        for n, items in snap:
            for doc_id, (raw, _, _) in items:
                yield n, doc_id, json.loads(raw)

    def doc(self, index: str, doc_id: str) -> Optional[dict]:
        with self._lock:
            entry = self._docs.get(index, {}).get(doc_id)
        return None if entry is None else json.loads(entry[0])

    def find(self, doc_id: str) -> list[tuple[str, dict]]:
        """(index, source) of every stored copy of `doc_id`."""
        with self._lock:
            hits = [(n, d[doc_id][0]) for n, d in self._docs.items() if doc_id in d]
        return [(n, json.loads(raw)) for n, raw in hits]

    def stats(self) -> dict:
        with self._lock:
            return {
                "indices": {n: len(d) for n, d in sorted(self._docs.items())},
                "created": self.created_total, "conflicts": self.conflicts_total,
                "rejected": self.rejected_total, "item_retryable": self.item_retryable_total,
                "requests": self.requests_total, "bulk_requests": self.bulk_requests_total,
                "bulk_items": self.bulk_items_total, "failed_requests": self.failed_requests_total,
                "dropped": self.dropped_total, "max_in_flight_bulk": self.max_in_flight_bulk,
                "templates": sorted(self.templates),
            }

    def request_log(self, path_contains: str = "") -> list[RequestInfo]:
        with self._lock:
            return [r for r in self.requests if path_contains in r.path]

    # -- request handling (called from handler threads) ---------------------------------------

    def _take_request_fault(self, is_bulk: bool) -> Optional[int]:
        now = time.monotonic()
        with self._lock:
            self._request_faults = [f for f in self._request_faults if f.active(now)]
            for f in self._request_faults:
                if f.bulk_only and not is_bulk:
                    continue
                status = f.statuses[f.served % len(f.statuses)]
                f.served += 1
                self.failed_requests_total += 1
                return status
        return None

    def _take_drop(self) -> Optional[_Drop]:
        with self._lock:
            while self._drops and self._drops[0].remaining <= 0:
                self._drops.pop(0)
            if not self._drops:
                return None
            d = self._drops[0]
            d.remaining -= 1
            self.dropped_total += 1
            return d

    def _bulk(self, body: bytes, path_index: Optional[str]) -> tuple[int, bytes, int]:
        """Parses and applies a `_bulk` body. Returns (status, response body, items)."""
        t0 = time.monotonic()
        if not body:
            raise BulkParseError(400, "parse_exception", "request body is required")
        if not body.endswith(b"\n"):
            raise BulkParseError(400, "illegal_argument_exception",
                                 "The bulk request must be terminated by a newline [\\n]")
        lines = body.split(b"\n")
        lines.pop()  # after the final newline
        ops: list[tuple[str, str, Optional[str], Optional[bytes], int]] = []
        i = 0
        while i < len(lines):
            line_no = i + 1
            raw = lines[i].rstrip(b"\r")
            i += 1
            action, meta = _parse_action(raw, line_no)
            index = meta.get("_index", path_index)
            if index is None:
                raise BulkParseError(400, "action_request_validation_exception",
                                     "Validation Failed: 1: index is missing;")
            doc_id = meta.get("_id")
            if doc_id is not None and not isinstance(doc_id, str):
                doc_id = json.dumps(doc_id)
            source = None
            if action != "delete":
                if i >= len(lines):
                    raise BulkParseError(400, "illegal_argument_exception",
                                         f"Malformed action/metadata line [{line_no}], expected a "
                                         f"source line after the [{action}] action")
                source = lines[i].rstrip(b"\r")
                i += 1
            elif doc_id is None:
                raise BulkParseError(400, "action_request_validation_exception",
                                     "Validation Failed: 1: id is missing;")
            ops.append((action, index, doc_id, source, line_no))

        parts: list[str] = []
        errors = False
        with self._lock:
            self.bulk_items_total += len(ops)
            for action, index, doc_id, source, line_no in ops:
                item, failed = self._apply(action, index, doc_id, source, line_no)
                errors |= failed
                parts.append(item)
        took = int((time.monotonic() - t0) * 1000)
        out = f'{{"took":{took},"errors":{"true" if errors else "false"},"items":[{",".join(parts)}]}}'
        return 200, out.encode(), len(ops)

    def _apply(self, action: str, index: str, doc_id: Optional[str], source: Optional[bytes],
               line_no: int) -> tuple[str, bool]:
        """Applies one operation under the lock. Returns (item JSON, whether the item failed)."""
        bad = _invalid_index_reason(index)
        if bad:
            self.rejected_total += 1
            return _item_error(action, index, doc_id, 400, {
                "type": "invalid_index_name_exception", "reason": f"Invalid index name [{index}], {bad}",
                "index_uuid": "_na_", "index": index}), True
        doc: Any = None
        if action in ("create", "index", "update"):
            try:
                doc = json.loads(source)  # type: ignore[arg-type]
                if not isinstance(doc, dict):
                    raise ValueError(f"expected a JSON object, found {type(doc).__name__}")
            except (ValueError, UnicodeDecodeError) as e:
                self.rejected_total += 1
                return _item_error(action, index, doc_id, 400, {
                    "type": "document_parsing_exception",
                    "reason": f"[{line_no + 1}:1] failed to parse: {e}"}), True
        if action in ("create", "index"):
            if doc_id is None:
                doc_id = _b64uuid()
            fault = self._item_fault(action, index, doc_id, doc)
            if fault is not None:
                return fault, True
            idx = self._index(index)
            existing = idx.get(doc_id)
            meta = self._index_meta[index]
            if existing is not None and action == "create":
                self.conflicts_total += 1
                return _item_conflict(index, doc_id, existing[1], meta["uuid"]), True
            version = 1 if existing is None else existing[1] + 1
            seq_no = meta["seq_no"]
            meta["seq_no"] += 1
            idx[doc_id] = (bytes(source), version, seq_no)  # type: ignore[arg-type]
            if existing is None:
                self.created_total += 1
                result, status = "created", 201
            else:
                self.updated_total += 1
                result, status = "updated", 200
            return _item_ok(action, index, doc_id, version, result, seq_no, status), False
        if action == "delete":
            idx = self._docs.get(index)
            existing = idx.pop(doc_id, None) if idx is not None else None  # type: ignore[arg-type]
            meta = self._index_meta.get(index) or {"seq_no": 0}
            seq_no = meta["seq_no"]
            meta["seq_no"] = seq_no + 1
            if existing is None:
                return _item_ok(action, index, doc_id, 1, "not_found", seq_no, 404), False  # type: ignore[arg-type]
            self.deleted_total += 1
            return _item_ok(action, index, doc_id, existing[1] + 1, "deleted", seq_no, 200), False  # type: ignore[arg-type]
        # update: {"doc": {...}, "doc_as_upsert": bool, "upsert": {...}} (no scripts)
        if doc_id is None:
            return _item_error(action, index, doc_id, 400, {
                "type": "action_request_validation_exception",
                "reason": "Validation Failed: 1: id is missing;"}), True
        idx = self._docs.get(index, {})
        existing = idx.get(doc_id)
        partial = doc.get("doc")
        if existing is None:
            base = doc.get("upsert") if "upsert" in doc else (partial if doc.get("doc_as_upsert") else None)
            if base is None:
                return _item_error(action, index, doc_id, 404, {
                    "type": "document_missing_exception", "reason": f"[{doc_id}]: document missing",
                    "index_uuid": self._index_meta.get(index, {}).get("uuid", "_na_"), "shard": "0",
                    "index": index}), True
            merged, version, result, status = base, 1, "created", 201
            self.created_total += 1
        else:
            merged = _merge(json.loads(existing[0]), partial or {})
            version, result, status = existing[1] + 1, "updated", 200
            self.updated_total += 1
        idx = self._index(index)
        meta = self._index_meta[index]
        seq_no = meta["seq_no"]
        meta["seq_no"] += 1
        idx[doc_id] = (json.dumps(merged, separators=(",", ":")).encode(), version, seq_no)
        return _item_ok(action, index, doc_id, version, result, seq_no, status), False

    def _item_fault(self, action: str, index: str, doc_id: str, doc: dict) -> Optional[str]:
        for f in self._item_faults:
            if f.count is not None and f.served >= f.count:
                continue
            key = (index, doc_id)
            if f.per_doc is not None and self._item_attempts.get(key, 0) >= f.per_doc:
                continue
            try:
                hit = f.predicate(doc)
            except Exception:
                hit = False
            if not hit:
                continue
            f.served += 1
            if f.per_doc is not None:
                self._item_attempts[key] = self._item_attempts.get(key, 0) + 1
            if f.status in (403, 429) or f.status >= 500:
                self.item_retryable_total += 1
            else:
                self.rejected_total += 1
            return _item_error(action, index, doc_id, f.status, self._fault_error(f, index, doc_id, doc))
        return None

    def _fault_error(self, f: _ItemFault, index: str, doc_id: str, doc: dict) -> dict:
        if f.status == 429:
            return {"type": f.etype, "reason": "rejected execution of primary operation "
                    "[shard_detail=[" + index + "][0][stand-in], shard_write_bytes=4096, "
                    "max_write_bytes=107374182] on EsThreadPoolExecutor[name = stand-in/write, "
                    "queue capacity = 10000]"}
        if f.status >= 500:
            return {"type": f.etype, "reason": f"[{index}][0] primary shard is not active Timeout: [1m], "
                    f"request: [BulkShardRequest [[{index}][0]] containing [1] requests]"}
        if f.status == 403:
            return {"type": f.etype, "reason": f"index [{index}] blocked by: [FORBIDDEN/8/index write (api)];"}
        preview = str(doc.get("message", ""))[:20]
        reason = f.reason or (f"[1:42] failed to parse field [message] of type [long] in document with id "
                              f"'{doc_id}'. Preview of field's value: '{preview}'")
        err = {"type": f.etype, "reason": reason}
        if f.reason is None:
            err["caused_by"] = {"type": "illegal_argument_exception",
                                "reason": f"For input string: \"{preview}\""}
        return err

    def _index(self, name: str) -> dict:
        idx = self._docs.get(name)
        if idx is None:
            idx = self._docs[name] = {}
            self._index_meta[name] = {"uuid": _b64uuid(), "seq_no": 0}
        return idx

    # -- small APIs ---------------------------------------------------------------------------

    def _info(self) -> dict:
        return {
            "name": "es-standin", "cluster_name": "logpipe-test", "cluster_uuid": self.cluster_uuid,
            "version": {"number": self.version, "build_flavor": "default", "build_type": "docker",
                        "build_hash": "0" * 40, "build_date": "2024-10-01T00:00:00.000Z",
                        "build_snapshot": False, "lucene_version": "9.11.1",
                        "minimum_wire_compatibility_version": "7.17.0",
                        "minimum_index_compatibility_version": "7.0.0"},
            "tagline": "You Know, for Search",
        }

    def _health(self) -> dict:
        with self._lock:
            n = len(self._docs)
        return {"cluster_name": "logpipe-test", "status": "green", "timed_out": False,
                "number_of_nodes": 1, "number_of_data_nodes": 1, "active_primary_shards": n,
                "active_shards": n, "relocating_shards": 0, "initializing_shards": 0,
                "unassigned_shards": 0, "delayed_unassigned_shards": 0, "number_of_pending_tasks": 0,
                "number_of_in_flight_fetch": 0, "task_max_waiting_in_queue_millis": 0,
                "active_shards_percent_as_number": 100.0}


# --------------------------------------------------------------------------------------------
# Pieces of responses


def _b64uuid() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _parse_action(raw: bytes, line_no: int) -> tuple[str, dict]:
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise BulkParseError(400, "illegal_argument_exception",
                             f"Malformed action/metadata line [{line_no}], expected START_OBJECT or "
                             f"END_OBJECT but found [{_token(raw)}] ({e})")
    if not isinstance(obj, dict):
        raise BulkParseError(400, "illegal_argument_exception",
                             f"Malformed action/metadata line [{line_no}], expected START_OBJECT or "
                             f"END_OBJECT but found [{_token(raw)}]")
    if len(obj) != 1:
        raise BulkParseError(400, "illegal_argument_exception",
                             f"Malformed action/metadata line [{line_no}], expected one action, found "
                             f"{len(obj)} fields")
    (action, meta), = obj.items()
    if action not in ("create", "index", "delete", "update"):
        raise BulkParseError(400, "illegal_argument_exception",
                             f"Malformed action/metadata line [{line_no}], expected field [create], "
                             f"[delete], [index] or [update] but found [{action}]")
    if not isinstance(meta, dict):
        raise BulkParseError(400, "illegal_argument_exception",
                             f"Malformed action/metadata line [{line_no}], expected START_OBJECT but "
                             f"found [{_token(json.dumps(meta).encode())}]")
    allowed = {"_index", "_id", "routing", "pipeline", "require_alias", "require_data_stream",
               "dynamic_templates", "if_seq_no", "if_primary_term", "version", "version_type",
               "retry_on_conflict", "_source", "list_executed_pipelines"}
    for key in meta:
        if key not in allowed:
            raise BulkParseError(400, "illegal_argument_exception",
                                 f"Action/metadata line [{line_no}] contains an unknown parameter [{key}]")
    return action, meta


def _token(raw: bytes) -> str:
    s = raw.lstrip()[:1]
    return {b"": "null", b"[": "START_ARRAY", b"\"": "VALUE_STRING", b"{": "START_OBJECT",
            b"t": "VALUE_BOOLEAN", b"f": "VALUE_BOOLEAN", b"n": "VALUE_NULL"}.get(s, "VALUE_NUMBER")


def _invalid_index_reason(name: str) -> Optional[str]:
    if not name:
        return "must not be empty"
    if name != name.lower():
        return "must be lowercase"
    if name[0] in "_-+":
        return "must not start with '_', '-', or '+'"
    if name in (".", ".."):
        return "must not be '.' or '..'"
    if INVALID_INDEX_CHARS & set(name):
        return 'must not contain the following characters [ , ", *, \\, <, |, ,, >, /, ?]'
    if len(name.encode()) > 255:
        return "index name is too long, (" + str(len(name.encode())) + " > 255)"
    return None


def _item_ok(action: str, index: str, doc_id: str, version: int, result: str, seq_no: int,
             status: int) -> str:
    return (f'{{"{action}":{{"_index":{json.dumps(index)},"_id":{json.dumps(doc_id)},'
            f'"_version":{version},"result":"{result}","_shards":{SHARDS},"_seq_no":{seq_no},'
            f'"_primary_term":1,"status":{status}}}}}')


def _item_conflict(index: str, doc_id: str, version: int, index_uuid: str) -> str:
    """The 409 of a `create` whose `_id` exists (formatted by hand: replays answer thousands)."""
    i, d = json.dumps(index), json.dumps(doc_id)
    reason = json.dumps(f"[{doc_id}]: version conflict, document already exists (current version [{version}])")
    return (f'{{"create":{{"_index":{i},"_id":{d},"status":409,"error":{{'
            f'"type":"version_conflict_engine_exception","reason":{reason},'
            f'"index_uuid":"{index_uuid}","shard":"0","index":{i}}}}}}}')


def _item_error(action: str, index: str, doc_id: Optional[str], status: int, error: dict) -> str:
    body = {"_index": index, "_id": doc_id, "status": status, "error": error}
    return json.dumps({action: body}, separators=(",", ":"))


def _merge(base: dict, patch: dict) -> dict:
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
    return base


# --------------------------------------------------------------------------------------------
# HTTP


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    standin: EsStandin

    def handle_error(self, request, client_address) -> None:
        # A client that hangs up (a killed indexer, a dropped connection) is part of the tests.
        import sys
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "es-standin"
    sys_version = ""
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body are two writes; without this, Nagle + delayed ACK stall keep-alive clients.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s = self.server.standin
        with s._lock:
            s._connections.add(self.connection)

    def finish(self) -> None:
        s = self.server.standin
        with s._lock:
            s._connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - quiet; RequestInfo keeps the log
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    # -- plumbing -----------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline(1024)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status: int, body: Union[dict, bytes, None], info: RequestInfo) -> None:
        s = self.server.standin
        if info.path.split("?")[0].endswith("/_bulk"):
            s._answering.wait()
        payload = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        payload = payload or b""
        info.status = status  # before the answer leaves: a client may look at the log right after
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-elastic-product", "Elasticsearch")
        if payload and s.compress_responses and "gzip" in self.headers.get("Accept-Encoding", ""):
            payload = gzip.compress(payload, compresslevel=1)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _drop(self, info: RequestInfo) -> None:
        info.status = None
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _serve(self, method: str) -> None:
        s = self.server.standin
        url = urlsplit(self.path)
        path = unquote(url.path)
        parts = [p for p in path.split("/") if p]
        info = RequestInfo(time.monotonic(), method, self.path, None,
                           content_type=self.headers.get("Content-Type", ""),
                           gzip="gzip" in self.headers.get("Content-Encoding", "").lower())
        with s._lock:
            s.requests_total += 1
            s.requests.append(info)
        is_bulk = bool(parts) and parts[-1] == "_bulk" and len(parts) <= 2
        if is_bulk:
            with s._lock:
                s.in_flight_bulk += 1
                s.max_in_flight_bulk = max(s.max_in_flight_bulk, s.in_flight_bulk)
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length > s.max_content_length:
                self.close_connection = True
                self._send(413, b"", info)
                return
            raw = self._read_body()
            info.body_bytes = len(raw)
            drop = s._take_drop()
            if drop is not None and not (drop.apply and is_bulk):
                info.fault = "dropped"
                self._drop(info)
                return
            status = s._take_request_fault(is_bulk)
            if status is not None:
                etype, reason = WHOLE_REQUEST_ERRORS.get(status, ("exception", f"stand-in: injected {status}"))
                info.fault = f"request {status}"
                self._send(status, es_error(status, etype, reason), info)
                return
            if info.gzip:
                try:
                    raw = gzip.decompress(raw)
                except (OSError, EOFError) as e:
                    self._send(400, es_error(400, "illegal_argument_exception",
                                             f"failed to decompress gzip request body: {e}"), info)
                    return
            self._route(method, parts, path, raw, info, drop)
        except (ConnectionError, BrokenPipeError):
            self.close_connection = True
        finally:
            if is_bulk:
                with s._lock:
                    s.in_flight_bulk -= 1

    def _route(self, method: str, parts: list[str], path: str, raw: bytes, info: RequestInfo,
               drop: Optional[_Drop]) -> None:
        s = self.server.standin
        if not parts and method in ("GET", "HEAD"):
            return self._send(200, s._info(), info)
        if parts[-1:] == ["_bulk"] and len(parts) <= 2:
            if method not in ("POST", "PUT"):
                return self._send(405, {"error": f"Incorrect HTTP method for uri [{path}] and method "
                                                  f"[{method}], allowed: [POST, PUT]", "status": 405}, info)
            return self._serve_bulk(parts, raw, info, drop)
        if parts[:2] == ["_cluster", "health"]:
            return self._send(200, s._health(), info)
        if len(parts) == 2 and parts[0] in ("_index_template", "_template"):
            return self._serve_template(method, parts[1], raw, info)
        if parts[-1:] == ["_refresh"] and len(parts) <= 2:
            return self._send(200, {"_shards": {"total": 1, "successful": 1, "failed": 0}}, info)
        if len(parts) == 2 and parts[1] == "_count" and method in ("GET", "POST"):
            return self._send(200, {"count": s.count(parts[0]),
                                    "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0}}, info)
        if len(parts) == 3 and parts[1] == "_doc" and method in ("GET", "HEAD"):
            with s._lock:
                entry = s._docs.get(parts[0], {}).get(parts[2])
            if entry is None:
                return self._send(404, {"_index": parts[0], "_id": parts[2], "found": False}, info)
            return self._send(200, {"_index": parts[0], "_id": parts[2], "_version": entry[1],
                                    "_seq_no": entry[2], "_primary_term": 1, "found": True,
                                    "_source": json.loads(entry[0])}, info)
        return self._send(400, {"error": f"no handler found for uri [{path}] and method [{method}]",
                                "status": 400}, info)

    def _serve_bulk(self, parts: list[str], raw: bytes, info: RequestInfo, drop: Optional[_Drop]) -> None:
        s = self.server.standin
        ctype = self.headers.get("Content-Type")
        media = (ctype or "").split(";")[0].strip().lower()
        allowed = NDJSON_TYPES + (JSON_TYPES if s.accept_json_bulk else ())
        if media not in allowed:
            msg = ("Content-Type header is missing" if ctype is None
                   else f"Content-Type header [{ctype}] is not supported")
            return self._send(406, {"error": msg, "status": 406}, info)
        with s._lock:
            s.bulk_requests_total += 1
        try:
            status, body, items = s._bulk(raw, parts[0] if len(parts) == 2 else None)
        except BulkParseError as e:
            return self._send(e.status, es_error(e.status, e.etype, e.reason), info)
        info.items = items
        if drop is not None:  # apply=True: written, answer lost
            info.fault = "dropped after apply"
            self._drop(info)
            return
        self._send(status, body, info)

    def _serve_template(self, method: str, name: str, raw: bytes, info: RequestInfo) -> None:
        s = self.server.standin
        if method in ("PUT", "POST"):
            try:
                body = json.loads(raw or b"null")
            except ValueError as e:
                return self._send(400, es_error(400, "x_content_parse_exception", str(e)), info)
            if not isinstance(body, dict) or not body.get("index_patterns"):
                return self._send(400, es_error(400, "action_request_validation_exception",
                                                "Validation Failed: 1: index patterns are missing;"), info)
            with s._lock:
                s.templates[name] = body
            return self._send(200, {"acknowledged": True}, info)
        with s._lock:
            found = s.templates.get(name)
        if method in ("GET", "HEAD"):
            if found is None:
                return self._send(404, es_error(404, "resource_not_found_exception",
                                                f"index template matching [{name}] not found"), info)
            return self._send(200, {"index_templates": [{"name": name, "index_template": found}]}, info)
        if method == "DELETE":
            with s._lock:
                s.templates.pop(name, None)
            return self._send(200, {"acknowledged": True}, info)
        return self._send(405, {"error": f"Incorrect HTTP method for uri [/_index_template/{name}] and "
                                         f"method [{method}]", "status": 405}, info)


if __name__ == "__main__":
    import sys

    es = EsStandin()
    print(f"es stand-in on {es.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print(json.dumps(es.stats()), flush=True)
        es.close()
        sys.exit(0)
