"""More cells of the security matrix: the Java client (kafka-clients 3.9 and 4.x, as Logstash and Java
applications embed it) over SASL_SSL with SCRAM-SHA-512; and over mTLS (a client certificate, no SASL):
kafka-python, kcat, the Java client, Kafka's CLI tools and the agent → broker → indexer pipeline, each
with its refusal."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from peers import KAFKA_CLIENTS, classpath, java_cmd, run_tool
from support import unique
from test_security import (CONSUMER, PASSWORD, PRODUCER, TOPICS, java_props, log_of, pki, run_secure_pipeline,  # noqa: F401
                           secure_broker, tls_settings)

SOURCE = Path(__file__).resolve().parents[1] / "java" / "JavaClient.java"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict[str, Path]:
    out = {}
    for version, peer in KAFKA_CLIENTS.items():
        dest = tmp_path_factory.mktemp(f"java-sec-{version}")
        javac = shutil.which("javac")
        assert javac, "javac not found; scripts/peers.sh installs a JDK"
        subprocess.run([javac, "-nowarn", "-cp", classpath(peer), "-d", str(dest), str(SOURCE)], check=True,
                       capture_output=True, text=True, timeout=180)
        out[version] = dest
    return out


def java_client(compiled, version: str, props: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    argv = java_cmd(KAFKA_CLIENTS[version], "JavaClient", list(args), extra_classpath=[str(compiled[version])])
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "JAVA_CLIENT_SECURITY": str(props)})


@pytest.mark.parametrize("version", list(KAFKA_CLIENTS))
def test_java_client_sasl_ssl_scram_sha_512(secure_broker, pki, tmp_path, compiled, version):
    broker = secure_broker("SASL_SSL", users={"alice": "SCRAM-SHA-512"}, **tls_settings(pki))
    props = java_props(tmp_path / "client.properties", "alice", PASSWORD, pki)
    topic, n = unique(f"java{version.replace('.', '')}"), 200
    produced = java_client(compiled, version, props, "produce", broker.bootstrap, topic, str(n), "lz4")
    assert produced.returncode == 0, produced.stderr[-3000:]
    assert produced.stdout.count("ACKED ") == n
    consumed = java_client(compiled, version, props, "consume", broker.bootstrap, topic, unique("g"), str(n),
                           "auto.offset.reset=earliest")
    assert consumed.returncode == 0, consumed.stderr[-3000:]
    assert sum(1 for line in consumed.stdout.splitlines() if line.startswith("RECORD ")) == n

    wrong = java_props(tmp_path / "wrong.properties", "alice", "not the password", pki)
    refused = java_client(compiled, version, wrong, "admin", broker.bootstrap, topic, "g", timeout=120)
    assert refused.returncode != 0
    assert "SaslAuthenticationException" in refused.stdout + refused.stderr, refused.stderr[-3000:]
    assert "not the password" not in log_of(broker)


@pytest.mark.parametrize("version", list(KAFKA_CLIENTS))
def test_java_admin_deletes_a_topic_by_id_only_with_delete(secure_broker, pki, tmp_path, compiled, version):
    """DeleteTopics v6 names a topic by its id alone: the ACL check is on the topic the id stands for."""
    topic = unique("byid")
    broker = secure_broker("SASL_SSL", users={"alice": "SCRAM-SHA-512", "admin": "SCRAM-SHA-512"},
                           super_users=["User:admin"], allow_everyone_if_no_acl_found=False,
                           acls=[{"principal": "User:alice", "resource_type": "topic", "resource_name": topic,
                                  "operations": ["read", "write", "create"]}],
                           **tls_settings(pki))
    alice = java_props(tmp_path / "alice.properties", "alice", PASSWORD, pki)
    produced = java_client(compiled, version, alice, "produce", broker.bootstrap, topic, "1", "none")
    assert produced.returncode == 0 and produced.stdout.count("ACKED ") == 1, produced.stderr[-3000:]

    # alice may describe the topic (WRITE implies it), so she learns its id, but she may not delete it
    refused = java_client(compiled, version, alice, "delete-by-id", broker.bootstrap, topic)
    assert refused.returncode == 0, refused.stderr[-3000:]
    assert "REFUSED org.apache.kafka.common.errors.TopicAuthorizationException" in refused.stdout, refused.stdout
    admin = java_props(tmp_path / "admin.properties", "admin", PASSWORD, pki)
    deleted = java_client(compiled, version, admin, "delete-by-id", broker.bootstrap, topic)
    assert deleted.returncode == 0 and "DELETED" in deleted.stdout, deleted.stdout + deleted.stderr[-3000:]
    assert f"topic={topic}" in log_of(broker) and "deleted topic" in log_of(broker)


def test_kafka_python_over_mtls(secure_broker, pki):
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.errors import KafkaError as KPError

    broker = secure_broker("SSL", ssl_ca_location=str(pki["ca"]), ssl_client_auth="required", **tls_settings(pki))
    cert, key = pki["agent"]
    tls = dict(security_protocol="SSL", ssl_cafile=str(pki["ca"]), ssl_certfile=str(cert), ssl_keyfile=str(key),
               ssl_check_hostname=False)
    topic = unique("kp-mtls")
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", **tls)
    for i in range(30):
        producer.send(topic, f"m{i}".encode())
    producer.flush(30)
    producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=10000, group_id=unique("kpm"), **tls)
    got = [m.value for m in consumer]
    consumer.close()
    assert got == [f"m{i}".encode() for i in range(30)]
    assert "principal=User:CN=agent-1,OU=ops,O=logpipe" in log_of(broker)

    # a certificate from another CA, and none at all: refused at the handshake
    s_cert, s_key = pki["stranger"]
    for bad in ({**tls, "ssl_certfile": str(s_cert), "ssl_keyfile": str(s_key)},
                {k: v for k, v in tls.items() if k not in ("ssl_certfile", "ssl_keyfile")}):
        with pytest.raises(KPError):
            # api_version given: no probing at construction, the send fails within max_block_ms
            p = KafkaProducer(bootstrap_servers=broker.bootstrap, request_timeout_ms=5000, max_block_ms=5000,
                              api_version=(2, 5, 0), **bad)
            try:
                p.send(topic, b"x").get(timeout=10)
            finally:
                p.close(timeout=2)
    assert log_of(broker).count("TLS handshake failed") >= 2
    broker.check_running()


SARAMA_SCRAM = "sarama-scram"  # Filebeat's SASL settings on elastic/sarama + xdg-go/scram (tests/go/sarama-scram)


@pytest.mark.parametrize("mechanism,protocol,handshake_v1", [
    ("SCRAM-SHA-512", "SASL_SSL", False),
    ("SCRAM-SHA-512", "SASL_SSL", True),
    ("SCRAM-SHA-256", "SASL_PLAINTEXT", True),
    ("PLAIN", "SASL_SSL", True),
])
def test_sarama_filebeat_sasl(secure_broker, pki, tmp_path, mechanism, protocol, handshake_v1):
    """Filebeat's output.kafka with sasl.mechanism, as sarama runs it: SaslHandshake v0 followed by raw
    tokens (sarama's default) and v1 with SaslAuthenticate; then a wrong password is refused."""
    from peers import go_peer

    settings = tls_settings(pki) if protocol == "SASL_SSL" else {}
    stored = "SCRAM-SHA-512" if mechanism == "PLAIN" else mechanism
    broker = secure_broker(protocol, users={"agent": stored}, **settings)
    secret = tmp_path / "agent.password"
    secret.write_text(PASSWORD + "\n")
    argv = [str(go_peer(SARAMA_SCRAM)), "-brokers", broker.bootstrap, "-topic", unique("sarama-sasl"), "-n", "100",
            "-mechanism", mechanism, "-username", "agent", "-password-file", str(secret)]
    if protocol == "SASL_SSL":
        argv += ["-ca", str(pki["ca"])]
    if handshake_v1:
        argv.append("-handshake-v1")
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    import json

    assert json.loads(p.stdout.strip().splitlines()[-1]) == {"produced": 100, "consumed": 100}
    secret.write_text("wrong\n")
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert p.returncode != 0
    assert "authentication failed" in log_of(broker) and "user=agent" in log_of(broker)
    broker.check_running()


# ---------------------------------------------------------------------------------------------
# mTLS: the broker's SSL listener with ssl.client.auth=required, clients with the agent's certificate


def mtls_broker(secure_broker, pki):
    return secure_broker("SSL", ssl_ca_location=str(pki["ca"]), ssl_client_auth="required", **tls_settings(pki))


def test_kcat_over_mtls(secure_broker, pki):
    broker = mtls_broker(secure_broker, pki)
    cert, key = pki["agent"]
    sec = ["-X", "security.protocol=SSL", "-X", f"ssl.ca.location={pki['ca']}",
           "-X", f"ssl.certificate.location={cert}", "-X", f"ssl.key.location={key}"]
    topic, lines = unique("kcat-mtls"), [f"line-{i}" for i in range(50)]
    p = subprocess.run(["kcat", "-b", broker.bootstrap, *sec, "-P", "-t", topic], input="\n".join(lines) + "\n",
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    p = subprocess.run(["kcat", "-b", broker.bootstrap, *sec, "-C", "-t", topic, "-o", "beginning", "-e", "-q"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == lines
    assert "principal=User:CN=agent-1,OU=ops,O=logpipe" in log_of(broker)
    s_cert, s_key = pki["stranger"]
    bad = [a.replace(str(cert), str(s_cert)).replace(str(key), str(s_key)) for a in sec]
    p = subprocess.run(["kcat", "-b", broker.bootstrap, *bad, "-L", "-m", "5"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode != 0, p.stdout
    assert "TLS handshake failed" in log_of(broker)
    broker.check_running()


def java_mtls_props(path: Path, pki, identity: str = "agent") -> Path:
    """Kafka client settings for mTLS with PEM files: the CA as truststore, the certificate and key
    inline as a PEM keystore (`\\n` escapes: a properties value is one line)."""
    cert, key = pki[identity]

    def inline(pem: Path) -> str:
        return pem.read_text().strip().replace("\n", "\\n")

    path.write_text("\n".join([
        "security.protocol=SSL",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={pki['ca']}",
        "ssl.keystore.type=PEM",
        f"ssl.keystore.certificate.chain={inline(cert)}",
        f"ssl.keystore.key={inline(key)}",
    ]) + "\n")
    return path


@pytest.mark.parametrize("version", list(KAFKA_CLIENTS))
def test_java_client_over_mtls(secure_broker, pki, tmp_path, compiled, version):
    broker = mtls_broker(secure_broker, pki)
    props = java_mtls_props(tmp_path / "client.properties", pki)
    topic, n = unique(f"javamtls{version.replace('.', '')}"), 200
    produced = java_client(compiled, version, props, "produce", broker.bootstrap, topic, str(n), "lz4")
    assert produced.returncode == 0, produced.stderr[-3000:]
    assert produced.stdout.count("ACKED ") == n
    consumed = java_client(compiled, version, props, "consume", broker.bootstrap, topic, unique("g"), str(n),
                           "auto.offset.reset=earliest")
    assert consumed.returncode == 0, consumed.stderr[-3000:]
    assert sum(1 for line in consumed.stdout.splitlines() if line.startswith("RECORD ")) == n
    assert "principal=User:CN=agent-1,OU=ops,O=logpipe" in log_of(broker)

    stranger = java_mtls_props(tmp_path / "stranger.properties", pki, "stranger")
    refused = java_client(compiled, version, stranger, "admin", broker.bootstrap, topic, "g", timeout=120)
    assert refused.returncode != 0
    assert "SslAuthenticationException" in refused.stdout + refused.stderr, refused.stderr[-3000:]
    broker.check_running()


def test_kafka_tools_over_mtls(secure_broker, pki, tmp_path):
    broker = mtls_broker(secure_broker, pki)
    props = java_mtls_props(tmp_path / "client.properties", pki)
    topic = unique("tools-mtls")
    common = ["--bootstrap-server", broker.bootstrap, "--command-config", str(props)]
    run_tool(TOPICS, [*common, "--create", "--topic", topic, "--partitions", "2"]).check()
    assert topic in run_tool(TOPICS, [*common, "--list"]).check().stdout.split()
    lines = [f"tool-{i}" for i in range(30)]
    run_tool(PRODUCER, [*common, "--topic", topic], stdin="\n".join(lines) + "\n").check()
    out = run_tool(CONSUMER, [*common, "--topic", topic, "--from-beginning", "--max-messages", "30",
                              "--timeout-ms", "30000"]).check()
    assert sorted(out.stdout.split()) == sorted(lines)
    stranger = java_mtls_props(tmp_path / "stranger.properties", pki, "stranger")
    bad = run_tool(TOPICS, ["--bootstrap-server", broker.bootstrap, "--command-config", str(stranger), "--list"],
                   timeout=120)
    assert bad.returncode != 0 and "SslAuthenticationException" in bad.stdout + bad.stderr
    broker.check_running()


def test_agent_broker_indexer_over_mtls(logpipe_bin, tmp_path, pki):
    """The multi-host layout with a certificate per client instead of a password: the ACLs name the
    certificates' subjects, Kafka's way (`User:CN=…,O=…`)."""
    ca = pki["ca_pki"]
    identities = {user: ca.issue(f"pipe-{user}", f"/O=logpipe/CN={user}", server=False)
                  for user in ("shipper", "indexer")}

    def client_security(user: str) -> str:
        cert, key = identities[user]
        return f"""
security.protocol = "SSL"
ssl.ca.location = "{pki['ca']}"
ssl.certificate.location = "{cert}"
ssl.key.location = "{key}"
"""
    broker_extra = f'ssl_ca_location = "{pki["ca"]}"\nssl_client_auth = "required"\n'
    run_secure_pipeline(logpipe_bin, tmp_path, pki, "SSL", broker_extra, client_security,
                        {user: f"User:CN={user},O=logpipe" for user in identities})
