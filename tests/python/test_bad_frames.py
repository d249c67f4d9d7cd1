"""Malformed traffic on raw sockets. After each case the broker is still running and a real client
on another connection still creates, produces and consumes (support.roundtrip).

Also pins the ApiVersions quirk that old librdkafka (kcat 1.7.1) depends on: the ApiVersions
response header is always v0, without a tagged-fields byte, even for the flexible versions 3+;
and an ApiVersions request with a version the broker does not know gets a v0-format reply with
UNSUPPORTED_VERSION and the supported ranges (KIP-511), so that clients can retry lower.
"""

from __future__ import annotations

import random
import socket
import struct
from typing import Optional

import pytest

from support import HOST, roundtrip, wait_until

API_VERSIONS = 18
UNSUPPORTED_VERSION = 35
REQUIRED_APIS = {0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 18: "ApiVersions", 19: "CreateTopics"}


# -------------------------------------------------------------------------------------------
# Encoding


def uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def compact_string(s: str) -> bytes:
    b = s.encode()
    return uvarint(len(b) + 1) + b


def request(api_key: int, version: int, correlation_id: int, body: bytes = b"",
            flexible: bool = False, client_id: str = "logpipe-raw-test") -> bytes:
    """A length-prefixed request with header v1 (or v2 = v1 + tagged fields when flexible)."""
    cid = client_id.encode()
    header = struct.pack(">hhih", api_key, version, correlation_id, len(cid)) + cid
    if flexible:
        header += uvarint(0)
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def api_versions_v3_body() -> bytes:
    return compact_string("logpipe-tests") + compact_string("1.0") + uvarint(0)


# -------------------------------------------------------------------------------------------
# Decoding


class Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        assert self.pos + n <= len(self.data), f"response too short: need {n} bytes at {self.pos}"
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def i16(self) -> int:
        return struct.unpack(">h", self.take(2))[0]

    def i32(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def uvarint(self) -> int:
        shift = result = 0
        while True:
            b = self.take(1)[0]
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    def skip_tagged_fields(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()  # tag
            self.take(self.uvarint())

    def done(self) -> bool:
        return self.pos == len(self.data)


def parse_api_versions(body: bytes, version: int) -> tuple[int, dict[int, tuple[int, int]]]:
    """Parse an ApiVersions response body (after the correlation id) exactly; any misalignment,
    such as a stray header tagged-fields byte, makes this fail."""
    r = Reader(body)
    error = r.i16()
    apis: dict[int, tuple[int, int]] = {}
    if version >= 3:
        n = r.uvarint() - 1
        for _ in range(n):
            key, lo, hi = r.i16(), r.i16(), r.i16()
            r.skip_tagged_fields()
            apis[key] = (lo, hi)
        r.i32()  # throttle_time_ms
        r.skip_tagged_fields()  # supported/finalized features live here, all tagged
    else:
        n = r.i32()
        for _ in range(n):
            key, lo, hi = r.i16(), r.i16(), r.i16()
            apis[key] = (lo, hi)
        if version >= 1:
            r.i32()
    assert r.done(), f"{len(body) - r.pos} unparsed bytes at the end of ApiVersions v{version} response"
    return error, apis


# -------------------------------------------------------------------------------------------
# Sockets


def connect(broker, timeout: float = 10) -> socket.socket:
    s = socket.create_connection((HOST, broker.port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exact(s: socket.socket, n: int) -> Optional[bytes]:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def read_response(s: socket.socket) -> Optional[tuple[int, bytes]]:
    """(correlation id, rest of the frame), or None if the broker closed the connection."""
    try:
        head = recv_exact(s, 4)
        if head is None:
            return None
        (size,) = struct.unpack(">i", head)
        assert 4 <= size <= 64 * 1024 * 1024, f"implausible response size {size}"
        frame = recv_exact(s, size)
        if frame is None:
            return None
    except ConnectionResetError:
        return None
    return struct.unpack(">i", frame[:4])[0], frame[4:]


def answer_or_close(s: socket.socket, timeout: float = 15) -> Optional[tuple[int, bytes]]:
    """The broker's response, or None if it closed the connection; fails if it did neither."""
    s.settimeout(timeout)
    try:
        return read_response(s)
    except socket.timeout:
        raise AssertionError(f"broker neither answered nor closed the connection within {timeout}s")


def closed_by_peer(s: socket.socket, timeout: float = 15) -> bool:
    """True once the broker has closed this connection (EOF or RST), False if it stays open."""
    s.settimeout(timeout)
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def abort(s: socket.socket) -> None:
    """Close with RST instead of FIN."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def healthy(broker) -> None:
    assert broker.alive(), f"broker died\n{broker.stderr_tail()}"
    roundtrip(broker.bootstrap)


# -------------------------------------------------------------------------------------------
# Well-formed requests first: the baseline the bad cases are measured against.


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_api_versions_raw(broker, version):
    with connect(broker) as s:
        flexible = version >= 3
        body = api_versions_v3_body() if flexible else b""
        s.sendall(request(API_VERSIONS, version, 1234 + version, body, flexible=flexible))
        resp = read_response(s)
        assert resp is not None, "broker closed the connection instead of answering ApiVersions"
        corr, rest = resp
        assert corr == 1234 + version
        error, apis = parse_api_versions(rest, version)
        assert error == 0
        for key, name in REQUIRED_APIS.items():
            assert key in apis, f"ApiVersions does not list {name} ({key})"
        assert apis[API_VERSIONS][1] >= 3


def test_api_versions_unknown_version_gets_v0_error_reply(broker):
    with connect(broker) as s:
        s.sendall(request(API_VERSIONS, 999, 77, api_versions_v3_body(), flexible=True))
        resp = read_response(s)
        assert resp is not None, "broker closed the connection instead of answering UNSUPPORTED_VERSION"
        corr, rest = resp
        assert corr == 77
        error, apis = parse_api_versions(rest, 0)
        assert error == UNSUPPORTED_VERSION
        assert API_VERSIONS in apis, "the error reply must still list the supported ranges"
    healthy(broker)


def test_request_split_into_single_bytes(broker):
    """Framing must not assume a request arrives in one read."""
    with connect(broker) as s:
        for b in request(API_VERSIONS, 0, 5):
            s.sendall(bytes([b]))
        resp = read_response(s)
        assert resp is not None and resp[0] == 5


def test_pipelined_requests_answered_in_order(broker):
    with connect(broker) as s:
        frames = []
        for i in range(20):
            version = i % 4
            flexible = version >= 3
            frames.append(request(API_VERSIONS, version, 100 + i,
                                  api_versions_v3_body() if flexible else b"", flexible=flexible))
        s.sendall(b"".join(frames))
        got = [read_response(s) for _ in range(20)]
        assert [g[0] for g in got if g] == list(range(100, 120))


# -------------------------------------------------------------------------------------------
# Bad frames


@pytest.mark.parametrize("size", [2**31 - 1, 2**30, -1, -(2**31)], ids=["2^31-1", "2^30", "-1", "-2^31"])
def test_absurd_length_prefix_is_rejected_without_allocating(broker, size):
    rss_before = broker.proc_status("VmRSS")
    with connect(broker) as s:
        s.sendall(struct.pack(">i", size) + b"\x00" * 64)
        assert closed_by_peer(s), f"broker kept a connection open after a {size}-byte length prefix"
    assert broker.proc_status("VmRSS") < rss_before + 256 * 1024, "broker allocated for the declared size"
    healthy(broker)


def test_frame_over_socket_request_max_bytes_is_rejected(broker_factory):
    broker = broker_factory(socket_request_max_bytes=65536, message_max_bytes=32768)
    with connect(broker) as s:
        s.sendall(struct.pack(">i", 65537) + b"\x00" * 1024)
        assert closed_by_peer(s)
    with connect(broker) as s:  # a normal request still fits
        s.sendall(request(API_VERSIONS, 0, 9))
        assert read_response(s) is not None
    healthy(broker)


def test_zero_length_frame(broker):
    with connect(broker) as s:
        try:
            s.sendall(struct.pack(">i", 0))
            s.sendall(request(API_VERSIONS, 0, 3))
        except (BrokenPipeError, ConnectionResetError):
            pass  # it hung up on the empty frame: fine
        answer_or_close(s)  # an error answer or a close are both fine; a crash or a hang is not
    healthy(broker)


def test_truncated_frame_then_close(broker):
    for how in (socket.socket.close, abort):
        s = connect(broker)
        frame = request(API_VERSIONS, 0, 1)
        s.sendall(struct.pack(">i", 1000) + frame[4:])  # promises 1000 bytes, sends ~25
        how(s)
    s = connect(broker)
    s.sendall(request(API_VERSIONS, 0, 1)[:7])  # cut inside the header
    s.close()
    healthy(broker)


def test_unknown_api_key(broker):
    with connect(broker) as s:
        s.sendall(request(9999, 0, 42, b"\x01\x02\x03"))
        resp = answer_or_close(s)
        # Apache Kafka closes the connection; an error response would also be acceptable.
        # What is not acceptable is leaving the client waiting forever.
        assert resp is None or resp[0] == 42
    healthy(broker)


def test_known_api_with_garbage_body(broker):
    with connect(broker) as s:
        # Metadata v9 (flexible) whose body is noise: the decoder must fail cleanly.
        s.sendall(request(3, 9, 11, b"\xff" * 40, flexible=True))
        resp = answer_or_close(s)
        assert resp is None or resp[0] == 11
    healthy(broker)


def test_unsupported_version_of_produce(broker):
    with connect(broker) as s:
        s.sendall(request(0, 999, 12, b"\x00" * 16, flexible=True))
        resp = answer_or_close(s)
        assert resp is None or resp[0] == 12
    healthy(broker)


def test_garbage_bytes(broker):
    rng = random.Random(7)
    for _ in range(5):
        with connect(broker) as s:
            try:
                for _ in range(16):
                    s.sendall(bytes(rng.getrandbits(8) for _ in range(4096)))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the broker hung up on us; fine
    # Small frames with plausible sizes and random content.
    with connect(broker) as s:
        try:
            for _ in range(200):
                body = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64)))
                s.sendall(struct.pack(">i", len(body)) + body)
        except (BrokenPipeError, ConnectionResetError):
            pass
    healthy(broker)


def test_stalled_half_frame_does_not_block_others(broker):
    stalled = connect(broker)
    try:
        stalled.sendall(b"\x00\x00")  # half a length prefix, then nothing
        healthy(broker)
        stalled.sendall(request(API_VERSIONS, 0, 1)[:10])
        healthy(broker)
    finally:
        stalled.close()


def test_many_aborted_connections(broker):
    for i in range(200):
        s = connect(broker)
        if i % 2:
            s.sendall(request(API_VERSIONS, 0, i))
        abort(s)
    healthy(broker)


def test_connection_slots_are_released(broker_factory):
    """50 connections one after the other through max_connections=8: closed ones give their slot
    back (whether the broker makes new connections wait or turns them away while full)."""
    broker = broker_factory(max_connections=8)
    for i in range(50):
        def served() -> bool:
            s = connect(broker)
            try:
                s.sendall(request(API_VERSIONS, 0, i))
                return answer_or_close(s) is not None
            except (BrokenPipeError, ConnectionResetError):
                return False
            finally:
                abort(s) if i % 2 else s.close()

        wait_until(served, 30, f"connection {i} to be served")
    healthy(broker)


def test_idle_connections_are_closed(broker_factory):
    broker = broker_factory(connections_max_idle_ms=1000)
    with connect(broker) as s:
        s.sendall(request(API_VERSIONS, 0, 1))
        assert read_response(s) is not None
        assert closed_by_peer(s, timeout=30), "idle connection was not closed"
    healthy(broker)


def test_oversized_record_is_refused_not_fatal(broker_factory):
    from confluent_kafka import KafkaError

    from support import create_topic, produce, unique

    broker = broker_factory(message_max_bytes=100_000)
    topic = unique("too-big")
    create_topic(broker.bootstrap, topic, 1)
    with pytest.raises(AssertionError) as info:
        produce(broker.bootstrap, topic, [{"value": b"z" * 300_000}],
                **{"message.max.bytes": 1_000_000, "compression.type": "none"})
    assert KafkaError(KafkaError.MSG_SIZE_TOO_LARGE).name() in str(info.value)
    produce(broker.bootstrap, topic, [{"value": b"small"}])
    healthy(broker)


def test_broker_still_up_after_everything(broker):
    """All the bad cases against one broker, one after the other."""
    cases = [
        struct.pack(">i", 2**31 - 1) + b"\x00" * 8,
        struct.pack(">i", -5),
        struct.pack(">i", 1000) + b"\x00\x12",
        request(9999, 0, 1),
        request(API_VERSIONS, 999, 2, api_versions_v3_body(), flexible=True),
        bytes(range(256)) * 8,
    ]
    for data in cases:
        with connect(broker) as s:
            try:
                s.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass
        assert broker.alive(), f"broker died after {data[:16]!r}\n{broker.stderr_tail()}"
    healthy(broker)
