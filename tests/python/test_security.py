"""TLS and SASL on the broker, proven with clients others wrote: librdkafka (confluent-kafka), Debian's
kcat, kafka-python and Kafka's own Java tools, over SASL_SSL with SCRAM-SHA-512/256 and PLAIN, over
mTLS, and the refusals: wrong password, unknown user, a plaintext client on a TLS port, a certificate
from another CA, bad SASL frames. After each refusal the broker still serves the others."""

from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from peers import run_tool
from security_support import Pki, SecureBroker
from support import HOST, close_and_report, toml_value, unique, wait_until

PASSWORD = "correct horse battery staple"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def log_of(broker) -> str:
    """The broker's stderr without terminal colours."""
    return ANSI.sub("", broker.stderr_text())


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("pki")
    ca = Pki(d, "ca")
    other = Pki(d, "other-ca")
    server = ca.issue("broker", "/CN=localhost", server=True)
    agent = ca.issue("agent", "/O=logpipe/OU=ops/CN=agent-1", server=False)
    stranger = other.issue("stranger", "/CN=stranger", server=False)
    return {"dir": d, "ca": ca.ca, "other_ca": other.ca, "server": server, "agent": agent, "stranger": stranger,
            "other": other, "ca_pki": ca}


@pytest.fixture
def secure_broker(logpipe_bin, tmp_path, request, monkeypatch):
    """`secure_broker(protocol, users={name: mechanism}, **settings)`: users are added before the start.
    These tests are about authentication: unless a test says otherwise, resources without ACLs are open
    to every authenticated user (`allow_everyone_if_no_acl_found`, false by default off PLAINTEXT)."""
    brokers: list[SecureBroker] = []
    # Connection-level events (principals, re-authentication) are logged at debug.
    monkeypatch.setenv("LOGPIPE_LOG", "info,logpipe_broker::server=debug")

    def make(protocol: str, users: dict | None = None, **settings) -> SecureBroker:
        workdir = tmp_path / f"broker{len(brokers)}"
        workdir.mkdir()
        b = SecureBroker(logpipe_bin, workdir, protocol, {"allow_everyone_if_no_acl_found": True, **settings})
        brokers.append(b)
        for name, mechanism in (users or {}).items():
            b.add_user(name, PASSWORD, mechanism)
        return b.start()

    yield make
    close_and_report(brokers, request, "broker", tail=80)


def tls_settings(pki) -> dict:
    cert, key = pki["server"]
    return {"ssl_certificate_location": str(cert), "ssl_key_location": str(key)}


def sasl_conf(broker, mechanism="SCRAM-SHA-512", user="alice", password=PASSWORD, pki=None) -> dict:
    conf = {"bootstrap.servers": broker.bootstrap, "security.protocol": broker.protocol.lower(),
            "sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password}
    if pki is not None:
        conf["ssl.ca.location"] = str(pki["ca"])
    return conf


def roundtrip(conf: dict, n: int = 20, timeout: float = 60) -> list[bytes]:
    """Create a topic, produce `n` records and read them back, all through `conf`'s security settings."""
    topic = unique("sec")
    admin = AdminClient(conf)
    admin.create_topics([NewTopic(topic, 1, 1)], operation_timeout=timeout)[topic].result(timeout=timeout)
    p = Producer({**conf, "acks": "all", "linger.ms": 5})
    errors = []
    for i in range(n):
        p.produce(topic, f"v{i}".encode(), on_delivery=lambda e, m: e and errors.append(e))
    assert p.flush(timeout) == 0 and not errors, errors
    c = Consumer({**conf, "group.id": unique("g"), "auto.offset.reset": "earliest", "enable.auto.commit": True})
    try:
        c.subscribe([topic])
        got: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got.append(m.value())
        assert got == [f"v{i}".encode() for i in range(n)]
        c.commit(asynchronous=False)
    finally:
        c.close()
    return got


def auth_error(conf: dict, timeout: float = 30) -> str:
    """The error librdkafka reports for a connection these settings cannot make."""
    errors: list[str] = []
    conf = {**conf, "error_cb": lambda e: errors.append(str(e))}
    admin = AdminClient(conf)
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=5)
    wait_until(lambda: admin.poll(0.1) is not None and errors, timeout, "an error callback")
    return " | ".join(errors)


# ---------------------------------------------------------------------------------------------
# SASL_SSL with SCRAM and PLAIN, librdkafka


def test_confluent_sasl_ssl_scram_and_plain_and_refusals(secure_broker, pki):
    broker = secure_broker("SASL_SSL", users={"alice": "SCRAM-SHA-512", "bob": "SCRAM-SHA-256"}, **tls_settings(pki))
    assert PASSWORD not in (broker.log_dirs / "credentials.json").read_text()
    roundtrip(sasl_conf(broker, "SCRAM-SHA-512", pki=pki))
    roundtrip(sasl_conf(broker, "SCRAM-SHA-256", user="bob", pki=pki))
    roundtrip(sasl_conf(broker, "PLAIN", user="alice", pki=pki))  # PLAIN checks against the SCRAM keys

    wrong = auth_error(sasl_conf(broker, "SCRAM-SHA-512", password="guess", pki=pki))
    assert "Authentication failed" in wrong, wrong
    unknown = auth_error(sasl_conf(broker, "SCRAM-SHA-512", user="mallory", pki=pki))
    assert "Authentication failed" in unknown, unknown
    # bob has only a SCRAM-SHA-256 credential
    assert "Authentication failed" in auth_error(sasl_conf(broker, "SCRAM-SHA-512", user="bob", pki=pki))
    # a plaintext client on the TLS port, and a TLS client that does not trust the broker's CA
    auth_error({**sasl_conf(broker, pki=pki), "security.protocol": "sasl_plaintext"})
    untrusting = auth_error({**sasl_conf(broker, pki=pki), "ssl.ca.location": str(pki["other_ca"])})
    assert "certificate verify failed" in untrusting or "SSL handshake failed" in untrusting, untrusting

    log = log_of(broker)
    assert "authentication failed" in log and "user=mallory" in log and "TLS handshake failed" in log
    assert PASSWORD not in log and "guess" not in log
    roundtrip(sasl_conf(broker, pki=pki))  # still healthy for everyone else
    broker.check_running()


def test_sasl_plaintext_listener_and_unauthenticated_requests(secure_broker):
    broker = secure_broker("SASL_PLAINTEXT", users={"alice": "SCRAM-SHA-512"})
    roundtrip(sasl_conf(broker))
    # A client without SASL: its first request after ApiVersions closes the connection.
    auth_error({"bootstrap.servers": broker.bootstrap})
    assert "request before SASL authentication" in log_of(broker)
    roundtrip(sasl_conf(broker, "PLAIN"))


# ---------------------------------------------------------------------------------------------
# mTLS


def test_mtls_client_certificates(secure_broker, pki):
    broker = secure_broker("SSL", ssl_ca_location=str(pki["ca"]), ssl_client_auth="required", **tls_settings(pki))
    cert, key = pki["agent"]
    conf = {"bootstrap.servers": broker.bootstrap, "security.protocol": "ssl", "ssl.ca.location": str(pki["ca"]),
            "ssl.certificate.location": str(cert), "ssl.key.location": str(key)}
    roundtrip(conf)
    # The principal is Kafka's: the subject in RFC 2253 order.
    assert "principal=User:CN=agent-1,OU=ops,O=logpipe" in log_of(broker)
    s_cert, s_key = pki["stranger"]
    auth_error({**conf, "ssl.certificate.location": str(s_cert), "ssl.key.location": str(s_key)})
    no_cert = {k: v for k, v in conf.items() if not k.startswith("ssl.certificate") and not k.startswith("ssl.key")}
    auth_error(no_cert)
    assert log_of(broker).count("TLS handshake failed") >= 2
    roundtrip(conf)


def test_expired_certificates_are_refused(secure_broker, pki):
    broker = secure_broker("SSL", ssl_ca_location=str(pki["ca"]), ssl_client_auth="required", **tls_settings(pki))
    cert, key = pki["agent"]
    conf = {"bootstrap.servers": broker.bootstrap, "security.protocol": "ssl", "ssl.ca.location": str(pki["ca"]),
            "ssl.certificate.location": str(cert), "ssl.key.location": str(key)}
    old_cert, old_key = pki["ca_pki"].issue_expired("old-agent", "/CN=old-agent", server=False)
    auth_error({**conf, "ssl.certificate.location": str(old_cert), "ssl.key.location": str(old_key)})
    assert "Expired" in log_of(broker) or "expired" in log_of(broker), log_of(broker)[-2000:]
    roundtrip(conf)
    # A broker serving an expired certificate: librdkafka refuses it.
    old_server, old_server_key = pki["ca_pki"].issue_expired("old-broker", "/CN=localhost", server=True)
    stale = secure_broker("SSL", ssl_certificate_location=str(old_server), ssl_key_location=str(old_server_key))
    error = auth_error({"bootstrap.servers": stale.bootstrap, "security.protocol": "ssl",
                        "ssl.ca.location": str(pki["ca"])})
    assert "certificate verify failed" in error, error[:500]


def test_tls_files_reload_without_restart(secure_broker, pki, tmp_path):
    live_cert, live_key = tmp_path / "live.pem", tmp_path / "live.key"
    shutil.copy(pki["server"][0], live_cert)
    shutil.copy(pki["server"][1], live_key)
    broker = secure_broker("SSL", ssl_certificate_location=str(live_cert), ssl_key_location=str(live_key))
    conf = {"bootstrap.servers": broker.bootstrap, "security.protocol": "ssl", "ssl.ca.location": str(pki["ca"])}
    roundtrip(conf)
    # A new certificate from another CA: clients that trust only that CA get in once it is reloaded.
    new_cert, new_key = pki["other"].issue("broker2", "/CN=localhost", server=True)
    shutil.copy(new_key, live_key)
    shutil.copy(new_cert, live_cert)
    new_conf = {**conf, "ssl.ca.location": str(pki["other_ca"])}

    def connects() -> bool:
        try:
            AdminClient(new_conf).list_topics(timeout=2)
            return True
        except KafkaException:
            return False

    wait_until(connects, 30, "a client trusting only the new CA to connect")
    assert "TLS certificate and key reloaded" in log_of(broker)
    roundtrip(new_conf)


# ---------------------------------------------------------------------------------------------
# Start-up refusals


def start_error(logpipe_bin, tmp_path, config: str) -> str:
    path = tmp_path / "broker.toml"
    path.write_text(config + f'\nlog_dirs = "{tmp_path / "data"}"\n')
    p = subprocess.run([str(logpipe_bin), "broker", "-c", str(path)], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0, p.stdout
    assert "listening on" not in p.stdout
    return p.stderr


def test_refuses_to_start_without_tls_files_or_with_remote_plaintext(logpipe_bin, tmp_path, pki):
    err = start_error(logpipe_bin, tmp_path, '[broker]\nlisteners = ["SASL_SSL://127.0.0.1:0"]')
    assert "broker.ssl_certificate_location" in err, err
    cert, _ = pki["server"]
    err = start_error(logpipe_bin, tmp_path, f'[broker]\nlisteners = ["SSL://127.0.0.1:0"]\n'
                      f'ssl_certificate_location = "{cert}"\nssl_key_location = "{tmp_path / "missing.key"}"')
    assert "broker.ssl_key_location" in err and "missing.key" in err, err
    err = start_error(logpipe_bin, tmp_path, '[broker]\nlisteners = ["PLAINTEXT://0.0.0.0:0"]')
    assert "allow_plaintext_remote" in err, err
    err = start_error(logpipe_bin, tmp_path, f'[broker]\nlisteners = ["SSL://127.0.0.1:0"]\nssl_client_auth = "required"\n'
                      f'ssl_certificate_location = "{cert}"\nssl_key_location = "{pki["server"][1]}"')
    assert "broker.ssl_ca_location" in err, err


# ---------------------------------------------------------------------------------------------
# Other clients: kcat (librdkafka 2.0.2), kafka-python, Kafka's Java tools


def test_kcat_sasl_ssl_scram(secure_broker, pki):
    broker = secure_broker("SASL_SSL", users={"alice": "SCRAM-SHA-512"}, **tls_settings(pki))
    topic = unique("kcat")
    sec = ["-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanisms=SCRAM-SHA-512", "-X", "sasl.username=alice",
           "-X", f"sasl.password={PASSWORD}", "-X", f"ssl.ca.location={pki['ca']}"]
    lines = [f"line-{i}" for i in range(50)]
    p = subprocess.run(["kcat", "-b", broker.bootstrap, *sec, "-P", "-t", topic], input="\n".join(lines) + "\n",
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    p = subprocess.run(["kcat", "-b", broker.bootstrap, *sec, "-C", "-t", topic, "-o", "beginning", "-e", "-q"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == lines
    bad = [a.replace(PASSWORD, "wrong") for a in sec]
    p = subprocess.run(["kcat", "-b", broker.bootstrap, *bad, "-L", "-m", "5"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode != 0 and "Authentication failed" in p.stderr, p.stderr


def test_kafka_python_sasl_ssl_scram(secure_broker, pki):
    from kafka import KafkaConsumer, KafkaProducer

    broker = secure_broker("SASL_SSL", users={"alice": "SCRAM-SHA-512"}, **tls_settings(pki))
    sec = dict(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="alice",
               sasl_plain_password=PASSWORD, ssl_cafile=str(pki["ca"]))
    topic = unique("kp")
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", **sec)
    for i in range(20):
        producer.send(topic, f"kp-{i}".encode())
    producer.flush(30)
    producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=10000, group_id=unique("kpg"), **sec)
    got = [m.value for m in consumer]
    consumer.close()
    assert got == [f"kp-{i}".encode() for i in range(20)]


TOPICS = "org.apache.kafka.tools.TopicCommand"
PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"


def test_kafka_tools_sasl_ssl_scram(secure_broker, pki, tmp_path):
    broker = secure_broker("SASL_SSL", users={"alice": "SCRAM-SHA-512"}, **tls_settings(pki))
    props = tmp_path / "client.properties"
    props.write_text("\n".join([
        "security.protocol=SASL_SSL",
        "sasl.mechanism=SCRAM-SHA-512",
        f'sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required '
        f'username="alice" password="{PASSWORD}";',
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={pki['ca']}",
    ]) + "\n")
    topic = unique("java")
    run_tool(TOPICS, ["--bootstrap-server", broker.bootstrap, "--command-config", str(props), "--create", "--topic",
                      topic, "--partitions", "2"]).check()
    listed = run_tool(TOPICS, ["--bootstrap-server", broker.bootstrap, "--command-config", str(props), "--list"]).check()
    assert topic in listed.stdout.split()
    lines = [f"java-{i}" for i in range(30)]
    run_tool(PRODUCER, ["--bootstrap-server", broker.bootstrap, "--command-config", str(props), "--topic", topic],
             stdin="\n".join(lines) + "\n").check()
    out = run_tool(CONSUMER, ["--bootstrap-server", broker.bootstrap, "--command-config", str(props), "--topic", topic,
                              "--from-beginning", "--max-messages", "30", "--timeout-ms", "30000"]).check()
    assert sorted(out.stdout.split()) == sorted(lines)
    props.write_text(props.read_text().replace(PASSWORD, "wrong"))
    bad = run_tool(TOPICS, ["--bootstrap-server", broker.bootstrap, "--command-config", str(props), "--list"],
                   timeout=120)
    assert bad.returncode != 0 and "SaslAuthenticationException" in bad.stdout + bad.stderr


# ---------------------------------------------------------------------------------------------
# Re-authentication (KIP-368)


def test_clients_reauthenticate_before_the_session_ends(secure_broker, pki):
    broker = secure_broker("SASL_SSL", users={"alice": "SCRAM-SHA-512"}, connections_max_reauth_ms=2000,
                           **tls_settings(pki))
    conf = sasl_conf(broker, pki=pki)
    topic = unique("reauth")
    admin = AdminClient(conf)  # referenced until the future resolves
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
    p = Producer({**conf, "acks": "all"})
    sent = 0

    def produced_through_reauth() -> bool:
        nonlocal sent
        p.produce(topic, f"r{sent}".encode())
        sent += 1
        p.flush(10)
        return log_of(broker).count("re-authenticated") >= 2

    wait_until(produced_through_reauth, 60, "two re-authentications while producing", interval=0.2)
    assert p.flush(30) == 0
    assert "session expired" not in log_of(broker)


# ---------------------------------------------------------------------------------------------
# Bad SASL frames close only their connection


def frame(api_key: int, version: int, correlation: int, body: bytes) -> bytes:
    header = struct.pack(">hhih", api_key, version, correlation, 4) + b"test"
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def kstr(s: bytes) -> bytes:
    return struct.pack(">h", len(s)) + s


def read_response(sock: socket.socket) -> bytes:
    size = struct.unpack(">i", recv_exact(sock, 4))[0]
    return recv_exact(sock, size)


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_bad_sasl_frames_close_only_their_connection(secure_broker):
    broker = secure_broker("SASL_PLAINTEXT", users={"alice": "SCRAM-SHA-512"})

    def connect() -> socket.socket:
        s = socket.create_connection((HOST, broker.port), timeout=10)
        return s

    # SaslAuthenticate without a handshake: ILLEGAL_SASL_STATE (34), then closed.
    s = connect()
    s.sendall(frame(36, 0, 1, struct.pack(">i", 3) + b"abc"))
    body = read_response(s)
    assert struct.unpack(">h", body[4:6])[0] == 34
    assert closed(s)
    # A handshake for a mechanism that is not offered: UNSUPPORTED_SASL_MECHANISM (33) and the list.
    s = connect()
    s.sendall(frame(17, 1, 2, kstr(b"GSSAPI")))
    body = read_response(s)
    assert struct.unpack(">h", body[4:6])[0] == 33 and b"SCRAM-SHA-512" in body
    assert closed(s)
    # v0 handshake, then a raw token that is garbage: closed without an answer.
    s = connect()
    s.sendall(frame(17, 0, 3, kstr(b"SCRAM-SHA-512")))
    assert struct.unpack(">h", read_response(s)[4:6])[0] == 0
    s.sendall(struct.pack(">i", 5) + b"\xff\x00zz\x01")
    assert closed(s)
    # An oversized token in SaslAuthenticate: SASL_AUTHENTICATION_FAILED (58).
    s = connect()
    s.sendall(frame(17, 1, 4, kstr(b"PLAIN")))
    read_response(s)
    token = b"\0alice\0" + b"x" * 100_000
    s.sendall(frame(36, 0, 5, struct.pack(">i", len(token)) + token))
    assert struct.unpack(">h", read_response(s)[4:6])[0] == 58
    assert closed(s)
    # Before authentication a frame may not exceed 512 KiB (Kafka's sasl.server.max.receive.size).
    s = connect()
    s.sendall(struct.pack(">i", 600 * 1024))
    assert closed(s)
    # A truncated SaslAuthenticate frame, then the peer goes away.
    s = connect()
    s.sendall(frame(17, 1, 6, kstr(b"SCRAM-SHA-512")))
    read_response(s)
    s.sendall(struct.pack(">i", 200) + b"\x00\x24\x00\x01")
    s.close()
    # A replayed client-final, sent as the first token of a new exchange: refused.
    s = connect()
    s.sendall(frame(17, 1, 7, kstr(b"SCRAM-SHA-512")))
    read_response(s)
    s.sendall(frame(36, 0, 8, struct.pack(">i", 33) + b"c=biws,r=abc,p=AAAAAAAAAAAAAAAAAAA="[:33]))
    assert struct.unpack(">h", read_response(s)[4:6])[0] == 58
    assert closed(s)
    roundtrip(sasl_conf(broker))
    broker.check_running()


# ---------------------------------------------------------------------------------------------
# logpipe users


def test_users_cli_adds_lists_and_deletes_without_a_broker(logpipe_bin, tmp_path):
    config = tmp_path / "broker.toml"
    config.write_text(f'[broker]\nlog_dirs = "{tmp_path / "data"}"\n')

    def users(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([str(logpipe_bin), "users", *args, "-c", str(config)], input=stdin,
                              capture_output=True, text=True, timeout=60)

    assert users("add", "alice", "--mechanism", "SCRAM-SHA-512", "--password-stdin", stdin="pw1\n").returncode == 0
    assert users("add", "alice", "--mechanism", "SCRAM-SHA-256", "--password-stdin", stdin="pw1\n").returncode == 0
    assert users("add", "bob", "--password-stdin", stdin="pw2\n").returncode == 0
    listed = users("list").stdout
    assert "alice\tSCRAM-SHA-256(iterations=4096),SCRAM-SHA-512(iterations=4096)" in listed, listed
    store = tmp_path / "data" / "credentials.json"
    assert os.stat(store).st_mode & 0o777 == 0o600
    assert "pw1" not in store.read_text()
    assert users("delete", "bob").returncode == 0
    missing = users("delete", "bob")
    assert missing.returncode != 0 and "no such user bob" in missing.stderr
    assert "bob" not in users("list").stdout
    weak = users("add", "carol", "--iterations", "1000", "--password-stdin", stdin="pw\n")
    assert weak.returncode != 0 and "4096" in weak.stderr
    empty = users("add", "carol", "--password-stdin", stdin="\n")
    assert empty.returncode != 0 and "no password" in empty.stderr


def test_users_added_while_the_broker_runs_can_log_in(secure_broker, pki):
    broker = secure_broker("SASL_SSL", users={"alice": "SCRAM-SHA-512"}, **tls_settings(pki))
    assert "Authentication failed" in auth_error(sasl_conf(broker, user="dave", pki=pki))
    broker.add_user("dave", PASSWORD, "SCRAM-SHA-256")
    roundtrip(sasl_conf(broker, "SCRAM-SHA-256", user="dave", pki=pki))


# ---------------------------------------------------------------------------------------------
# Two listeners on one broker, each advertising its own address


def test_two_listeners_each_advertise_their_own_address(logpipe_bin, tmp_path, pki):
    from appliance_support import free_port

    sasl_port, plain_port = free_port(), free_port()
    b = SecureBroker(logpipe_bin, tmp_path / "b", "SASL_SSL", {**tls_settings(pki),
                                                                "allow_everyone_if_no_acl_found": True})
    (tmp_path / "b").mkdir()
    b.add_user("alice", PASSWORD)

    def two_listeners(port: int) -> None:
        lines = ["[broker]", f'listeners = ["CLIENTS://{HOST}:{sasl_port}", "PLAINTEXT://{HOST}:{plain_port}"]',
                 'listener_security_protocol_map = { CLIENTS = "SASL_SSL" }',
                 f'advertised_listeners = ["CLIENTS://localhost:{sasl_port}"]']
        lines += [f"{k} = {toml_value(v)}" for k, v in b.settings.items()]
        b.config_path.write_text("\n".join(lines) + "\n")

    b.write_config = two_listeners
    b.start()
    try:
        assert b.port == sasl_port
        # SASL_SSL clients are told `localhost` (the server certificate names it); PLAINTEXT ones 127.0.0.1.
        conf = {**sasl_conf(b, pki=pki), "ssl.endpoint.identification.algorithm": "https"}
        md = AdminClient(conf).list_topics(timeout=20)
        assert [(x.host, x.port) for x in md.brokers.values()] == [("localhost", sasl_port)]
        plain = AdminClient({"bootstrap.servers": f"{HOST}:{plain_port}"}).list_topics(timeout=20)
        assert [(x.host, x.port) for x in plain.brokers.values()] == [(HOST, plain_port)]
        roundtrip(conf)
        roundtrip({"bootstrap.servers": f"{HOST}:{plain_port}"})
    finally:
        b.stop()


# ---------------------------------------------------------------------------------------------
# logpipe's own clients: console tools, and agent → broker → indexer in one appliance


def test_console_tools_over_sasl_ssl(secure_broker, pki, logpipe_bin, tmp_path):
    broker = secure_broker("SASL_SSL", users={"alice": "SCRAM-SHA-512"}, **tls_settings(pki))
    props = tmp_path / "client.properties"
    props.write_text(f"# librdkafka names, as kcat -F reads them\nsecurity.protocol=SASL_SSL\n"
                     f"sasl.mechanism=SCRAM-SHA-512\nsasl.username=alice\nsasl.password={PASSWORD}\n")

    def cli(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        argv = [str(logpipe_bin), *args, "--bootstrap-server", broker.bootstrap, "-F", str(props),
                "-X", f"ssl.ca.location={pki['ca']}"]
        p = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=120)
        assert not check or p.returncode == 0, p.stderr
        return p

    topic = unique("console")
    cli("topics", "create", topic, "--partitions", "2")
    assert topic in cli("topics", "list").stdout
    cli("produce", topic, input="".join(f"c{i}\n" for i in range(25)))
    out = cli("consume", topic, "--from-beginning", "--max-messages", "25").stdout.split()
    assert sorted(out) == sorted(f"c{i}" for i in range(25))
    assert topic in cli("topics", "describe", topic).stdout
    props.write_text(props.read_text().replace(PASSWORD, "wrong"))
    bad = cli("topics", "list", "--request-timeout-ms", "3000", check=False)
    assert bad.returncode != 0, bad.stdout
    assert "wrong" not in bad.stderr and PASSWORD not in bad.stderr
    assert "user=alice reason=Authentication failed" in log_of(broker)


def describe_fields(text: str) -> list[dict[str, str]]:
    """Each line of `topics describe`, its tab-separated `Key: value` fields as a dict."""
    return [dict(f.split(": ", 1) if ": " in f else (f.rstrip(":"), "") for f in line.strip("\t").split("\t"))
            for line in text.splitlines() if line.strip()]


def test_console_sizes_ids_and_config_changes_over_sasl_ssl(secure_broker, pki, logpipe_bin, tmp_path):
    """What librdkafka has no API for (DescribeLogDirs, Metadata v10+, IncrementalAlterConfigs), the console
    asks over logpipe's own connection, with the same -F/-X settings, librdkafka's `sasl.mechanisms`
    spelling included: over SASL_SSL too, describe shows sizes and the topic id, and alter changes configs."""
    broker = secure_broker("SASL_SSL", users={"alice": "SCRAM-SHA-512"}, **tls_settings(pki))
    props = tmp_path / "client.properties"
    props.write_text(f"security.protocol=SASL_SSL\nsasl.mechanisms=SCRAM-SHA-512\nsasl.username=alice\n"
                     f"sasl.password={PASSWORD}\nssl.ca.location={pki['ca']}\n")

    def cli(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
        argv = [str(logpipe_bin), *args, "--bootstrap-server", broker.bootstrap, "-F", str(props)]
        p = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        assert PASSWORD not in p.stdout + p.stderr
        return p

    topic = unique("console-admin")
    cli("topics", "create", topic, "--partitions", "2", "--config", "retention.ms=3600000")
    cli("produce", topic, "--partition", "0", "--acks", "all", input="".join(f"r{i}\n" for i in range(100)))

    described = cli("topics", "describe", topic)
    assert "left out" not in described.stderr, described.stderr
    summary, *partitions = describe_fields(described.stdout)
    conf = sasl_conf(broker, pki=pki)
    admin = AdminClient(conf)  # referenced until the futures resolve
    theirs = admin.describe_topics(TopicCollection([topic]))[topic].result(timeout=30)
    # Kafka's notation (kafka-topics.sh): URL-safe base64 of the 16 bytes; librdkafka's str() uses `+/`.
    mask = (1 << 64) - 1
    their_id = struct.pack(">QQ", theirs.topic_id.get_most_significant_bits() & mask,
                           theirs.topic_id.get_least_significant_bits() & mask)
    assert summary["TopicId"] == base64.urlsafe_b64encode(their_id).decode().rstrip("="), summary
    assert summary["Configs"] == "retention.ms=3600000", summary
    sizes = {p["Partition"]: p["SizeOnDisk"] for p in partitions}
    assert sizes.keys() == {"0", "1"} and all(size.isdigit() for size in sizes.values()), sizes
    assert int(sizes["0"]) > int(sizes["1"]) >= 0, sizes  # 100 records in partition 0 only

    out = cli("topics", "alter", topic, "--config", "retention.ms=60000", "--config", "segment.bytes=1048576")
    assert f"Altered topic {topic}." in out.stdout
    configs = describe_fields(cli("topics", "describe", topic).stdout)[0]["Configs"]
    assert configs == "retention.ms=60000,segment.bytes=1048576", configs
    cli("topics", "alter", topic, "--delete-config", "segment.bytes", "-X", "sasl.mechanism=SCRAM-SHA-512")
    assert describe_fields(cli("topics", "describe", topic).stdout)[0]["Configs"] == "retention.ms=60000"
    res = ConfigResource(ResourceType.TOPIC, topic)
    assert admin.describe_configs([res])[res].result(timeout=30)["retention.ms"].value == "60000"


def test_agent_broker_indexer_over_sasl_ssl(logpipe_bin, tmp_path, pki):
    """The README's multi-host layout, authorization on: the agent's user may only create and write the
    `app` topic, the indexer's only read it in its group. Those ACLs are all the pipeline needs."""
    secret = tmp_path / "agent.password"
    secret.write_text(PASSWORD + "\n")
    os.chmod(secret, 0o600)

    def client_security(user: str) -> str:
        return f"""
security.protocol = "SASL_SSL"
sasl.mechanism = "SCRAM-SHA-512"
sasl.username = "{user}"
sasl.password_file = "{secret}"
ssl.ca.location = "{pki['ca']}"
"""
    run_secure_pipeline(logpipe_bin, tmp_path, pki, "SASL_SSL", "", client_security,
                        {"shipper": "User:shipper", "indexer": "User:indexer"})


def run_secure_pipeline(logpipe_bin, tmp_path, pki, protocol: str, broker_extra: str, client_security,
                        principals: dict) -> None:
    """Agent → broker → indexer in one appliance, the broker's listener on `protocol`, each client's
    settings from `client_security("shipper"|"indexer")`, and only the ACLs each needs, granted to
    `principals[...]`. SCRAM users `shipper` and `indexer` are added before the first start."""
    from appliance_support import ApplianceProcess, free_port
    from support import child_cmd

    port = free_port()
    data = tmp_path / "data"
    logs = tmp_path / "logs"
    logs.mkdir()
    cert, key = pki["server"]
    pipeline = f"""
[broker]
listeners = ["{protocol}://{HOST}:{port}"]
log_dirs = "{data / 'broker'}"
ssl_certificate_location = "{cert}"
ssl_key_location = "{key}"
group_initial_rebalance_delay_ms = 0
{broker_extra}
# authorization is on (not a PLAINTEXT broker): these are all the ACLs the pipeline needs
[[broker.acls]]
principal = "{principals['shipper']}"
resource_type = "topic"
resource_name = "app"
operations = ["write", "create"]

[[broker.acls]]
principal = "{principals['indexer']}"
resource_type = "topic"
resource_name = "app"
operations = ["read"]

[[broker.acls]]
principal = "{principals['indexer']}"
resource_type = "group"
resource_name = "secure-indexer"
operations = ["read"]

[admin]
address = "{HOST}:0"

[agent]
registry = "{data / 'agent' / 'registry.json'}"

[agent.output]
brokers = ["{HOST}:{port}"]
topic = "app"
{client_security("shipper")}
[[agent.inputs]]
type = "file"
paths = ["{logs / 'app.log'}"]
scan_frequency = "1s"

[indexer.input]
brokers = ["{HOST}:{port}"]
topics = ["app"]
group_id = "secure-indexer"
auto_offset_reset = "earliest"
codec = "json"
{client_security("indexer")}
[[indexer.routes]]
index = "app"

[indexer.output.file]
path = "{data / 'indices'}"
"""
    if protocol.startswith("SASL_"):
        # The users exist before the broker first starts.
        cfg = tmp_path / "pipeline-broker.toml"
        cfg.write_text(pipeline)
        for user in ("shipper", "indexer"):
            p = subprocess.run([str(logpipe_bin), "users", "add", user, "--password-stdin", "-c", str(cfg)],
                               input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)
            assert p.returncode == 0, p.stderr
    lines = [f"secure line {i}" for i in range(200)]
    (logs / "app.log").write_text("\n".join(lines) + "\n")
    app = ApplianceProcess(logpipe_bin, tmp_path / "run", pipeline, child_cmd).start()
    try:
        out = data / "indices" / "app.ndjson"

        def indexed() -> int:
            return len(out.read_text().splitlines()) if out.exists() else 0

        wait_until(lambda: indexed() >= len(lines), 120, lambda: f"{len(lines)} documents (have {indexed()})",
                   procs=[app])
        import json

        messages = sorted(json.loads(line)["message"] for line in out.read_text().splitlines())
        assert messages == sorted(lines)
        log = ANSI.sub("", app.stderr_text())
        assert PASSWORD not in log
        assert "authentication failed" not in log
        assert "TLS handshake failed" not in log
        assert "AUTHORIZATION_FAILED" not in log.upper().replace(" ", "_"), log[-3000:]
    finally:
        app.stop()


# ---------------------------------------------------------------------------------------------
# The admin endpoint off loopback


def test_admin_endpoint_off_loopback_needs_auth_and_tls(logpipe_bin, tmp_path, pki):
    import ssl
    import urllib.error
    import urllib.request
    import base64

    from appliance_support import ApplianceProcess
    from support import child_cmd

    broker = f'[broker]\nlisteners = ["{HOST}:0"]\nlog_dirs = "{tmp_path / "data"}"\n'
    check = tmp_path / "open.toml"
    check.write_text(broker + '[admin]\naddress = "0.0.0.0:0"\n')
    p = subprocess.run([str(logpipe_bin), "run", str(check)], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "admin.address" in p.stderr and "auth_token_file" in p.stderr, p.stderr
    token, password = tmp_path / "token", tmp_path / "admin.password"
    token.write_text("s3cr3t-token\n")
    password.write_text("ops-password\n")
    no_tls = tmp_path / "no-tls.toml"
    no_tls.write_text(broker + f'[admin]\naddress = "0.0.0.0:0"\nauth_token_file = "{token}"\n')
    p = subprocess.run([str(logpipe_bin), "run", str(no_tls)], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "TLS is missing" in p.stderr, p.stderr

    cert, key = pki["server"]
    pipeline = broker + f"""[admin]
address = "0.0.0.0:0"
auth_token_file = "{token}"
auth_basic_username = "ops"
auth_basic_password_file = "{password}"
ssl_certificate_location = "{cert}"
ssl_key_location = "{key}"
"""
    app = ApplianceProcess(logpipe_bin, tmp_path / "run", pipeline, child_cmd).start()
    try:
        port = app.admin_address.rsplit(":", 1)[1]
        url = f"https://localhost:{port}/metrics"
        context = ssl.create_default_context(cafile=str(pki["ca"]))

        def get(headers: dict) -> int:
            try:
                with urllib.request.urlopen(urllib.request.Request(url, headers=headers), context=context,
                                            timeout=10) as r:
                    return r.status
            except urllib.error.HTTPError as e:
                return e.code

        assert get({}) == 401
        assert get({"Authorization": "Bearer wrong"}) == 401
        assert get({"Authorization": "Bearer s3cr3t-token"}) == 200
        basic = base64.b64encode(b"ops:ops-password").decode()
        assert get({"Authorization": f"Basic {basic}"}) == 200
        import http.client

        with pytest.raises((urllib.error.URLError, http.client.HTTPException, ConnectionError)):  # plain HTTP
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
        assert get({"Authorization": "Bearer s3cr3t-token"}) == 200
        assert "s3cr3t-token" not in app.stderr_text() and "ops-password" not in app.stderr_text()
    finally:
        app.stop()


# ---------------------------------------------------------------------------------------------
# Users through the Kafka protocol (KIP-554): kafka-configs --entity-type users

CONFIGS = "org.apache.kafka.tools.ConfigCommand"


def java_props(path: Path, user: str, password: str, pki) -> Path:
    path.write_text("\n".join([
        "security.protocol=SASL_SSL",
        "sasl.mechanism=SCRAM-SHA-512",
        f'sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required '
        f'username="{user}" password="{password}";',
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={pki['ca']}",
    ]) + "\n")
    return path


def test_kafka_configs_manages_scram_users_for_super_users_only(secure_broker, pki, tmp_path):
    broker = secure_broker("SASL_SSL", users={"admin": "SCRAM-SHA-512", "alice": "SCRAM-SHA-512"},
                           super_users=["User:admin"], allow_everyone_if_no_acl_found=False,
                           acls=[{"principal": "User:*", "resource_type": "topic", "resource_name": "*",
                                  "operations": ["all"]},
                                 {"principal": "User:*", "resource_type": "group", "resource_name": "*",
                                  "operations": ["all"]}],
                           **tls_settings(pki))
    admin_props = java_props(tmp_path / "admin.properties", "admin", PASSWORD, pki)
    alice_props = java_props(tmp_path / "alice.properties", "alice", PASSWORD, pki)

    def configs(props: Path, *args: str):
        return run_tool(CONFIGS, ["--bootstrap-server", broker.bootstrap, "--command-config", str(props), *args])

    configs(admin_props, "--alter", "--add-config", "SCRAM-SHA-512=[iterations=8192,password=carol-pw]",
            "--entity-type", "users", "--entity-name", "carol").check()
    roundtrip(sasl_conf(broker, "SCRAM-SHA-512", user="carol", password="carol-pw", pki=pki))
    assert "carol-pw" not in (broker.log_dirs / "credentials.json").read_text()
    assert "SCRAM credential set" in log_of(broker)

    denied = configs(alice_props, "--alter", "--add-config", "SCRAM-SHA-512=[password=x]", "--entity-type", "users",
                     "--entity-name", "alice")
    assert denied.returncode != 0 and "ClusterAuthorization" in denied.stdout + denied.stderr
    weak = configs(admin_props, "--alter", "--add-config", "SCRAM-SHA-256=[iterations=100,password=x]",
                   "--entity-type", "users", "--entity-name", "dave")
    assert weak.returncode != 0 and "Iterations" in weak.stdout + weak.stderr

    configs(admin_props, "--alter", "--delete-config", "SCRAM-SHA-512", "--entity-type", "users",
            "--entity-name", "carol").check()
    assert "Authentication failed" in auth_error(sasl_conf(broker, user="carol", password="carol-pw", pki=pki))
    roundtrip(sasl_conf(broker, user="alice", pki=pki))


# ---------------------------------------------------------------------------------------------
# Load: 50 clients authenticating while 5 produce


def test_fifty_clients_authenticate_while_five_produce(secure_broker, pki):
    import threading

    broker = secure_broker("SASL_SSL", users={"alice": "SCRAM-SHA-512"}, **tls_settings(pki))
    conf = sasl_conf(broker, pki=pki)
    topics = [unique("load") for _ in range(5)]
    admin = AdminClient(conf)
    for f in admin.create_topics([NewTopic(t, 1, 1) for t in topics]).values():
        f.result(timeout=30)
    per_producer = 20_000
    failures: list[str] = []

    def produce(topic: str) -> None:
        p = Producer({**conf, "acks": "all", "linger.ms": 5})
        for i in range(per_producer):
            while True:
                try:
                    p.produce(topic, b"x" * 200, on_delivery=lambda e, m: e and failures.append(str(e)))
                    break
                except BufferError:
                    p.poll(0.05)
        if p.flush(120) != 0:
            failures.append(f"{topic}: not all delivered")

    def authenticate(i: int) -> None:
        mechanism = ["SCRAM-SHA-512", "PLAIN"][i % 2]
        try:
            md = AdminClient(sasl_conf(broker, mechanism, pki=pki)).list_topics(timeout=60)
            assert md.brokers
        except Exception as e:  # noqa: BLE001 - reported below
            failures.append(f"client {i}: {e}")

    threads = [threading.Thread(target=produce, args=(t,)) for t in topics]
    threads += [threading.Thread(target=authenticate, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not failures, failures[:5]
    c = Consumer({**conf, "group.id": unique("count")})
    try:
        for t in topics:
            low, high = c.get_watermark_offsets(TopicPartition(t, 0), timeout=30, cached=False)
            assert high - low == per_producer, (t, low, high)
    finally:
        c.close()
    assert "authentication failed" not in log_of(broker)
