"""ACLs in Kafka's model, proven with clients others wrote: Apache Kafka's `kafka-acls` (AclCommand)
adds, lists and removes ACLs through CreateAcls/DescribeAcls/DeleteAcls, and they survive a restart;
users without the ACLs get Kafka's authorization errors in librdkafka (confluent-kafka), kafka-python and
the Java tools, while the broker keeps serving the others; Metadata hides what a user may not describe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from peers import run_tool
from support import unique, wait_until
from test_security import PASSWORD, java_props, log_of, pki, roundtrip, sasl_conf, secure_broker, tls_settings  # noqa: F401

ACLS = "org.apache.kafka.tools.AclCommand"
TOPICS = "org.apache.kafka.tools.TopicCommand"
CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
PRODUCER = "org.apache.kafka.tools.ConsoleProducer"

USERS = {"admin": "SCRAM-SHA-512", "alice": "SCRAM-SHA-512", "bob": "SCRAM-SHA-512"}


@pytest.fixture
def acl_broker(secure_broker, pki):
    """A SASL_SSL broker with Kafka's default authorization: admin is a super user; alice and bob have
    nothing until an ACL grants it."""
    return secure_broker("SASL_SSL", users=USERS, super_users=["User:admin"], allow_everyone_if_no_acl_found=False,
                         **tls_settings(pki))


def create_topic(conf: dict, topic: str) -> None:
    admin = AdminClient(conf)  # referenced until the future resolves
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)


def acls_tool(broker, props: Path, *args: str, check: bool = True):
    r = run_tool(ACLS, ["--bootstrap-server", broker.bootstrap, "--command-config", str(props), *args])
    return r.check() if check else r


def test_kafka_acls_adds_lists_and_removes_and_acls_survive_a_restart(acl_broker, pki, tmp_path):
    broker = acl_broker
    admin = java_props(tmp_path / "admin.properties", "admin", PASSWORD, pki)
    alice = java_props(tmp_path / "alice.properties", "alice", PASSWORD, pki)
    topic = unique("acl")
    create_topic(sasl_conf(broker, user="admin", pki=pki), topic)
    alice_conf = sasl_conf(broker, user="alice", pki=pki)

    # alice may not even see the topic yet
    md = AdminClient(alice_conf).list_topics(timeout=20)
    assert topic not in md.topics

    acls_tool(broker, admin, "--add", "--allow-principal", "User:alice", "--operation", "Write", "--operation",
              "Read", "--topic", topic)
    acls_tool(broker, admin, "--add", "--allow-principal", "User:alice", "--operation", "Read", "--group", "alice-",
              "--resource-pattern-type", "prefixed")
    listed = acls_tool(broker, admin, "--list", "--topic", topic).stdout
    assert "User:alice" in listed and "WRITE" in listed and "READ" in listed, listed
    listed_all = acls_tool(broker, admin, "--list").stdout
    assert "PREFIXED" in listed_all and "alice-" in listed_all, listed_all
    stored = json.loads((broker.log_dirs / "acls.json").read_text())["acls"]
    assert len(stored) == 3

    # with the ACLs: produce, consume in an alice- group, and the topic is visible
    assert topic in AdminClient(alice_conf).list_topics(timeout=20).topics
    roundtrip_existing(alice_conf, topic, group=unique("alice-g"))

    # only super users (or ALTER on the cluster) manage ACLs
    denied = acls_tool(broker, alice, "--add", "--allow-principal", "User:alice", "--operation", "All", "--topic",
                       "*", check=False)
    assert denied.returncode != 0 or "ClusterAuthorization" in denied.stdout + denied.stderr
    assert "ClusterAuthorization" in denied.stdout + denied.stderr, denied.stdout + denied.stderr

    broker.stop()
    broker.start(broker.port)
    listed = acls_tool(broker, admin, "--list", "--topic", topic).stdout
    assert "User:alice" in listed and "WRITE" in listed, "ACLs survive a restart"

    acls_tool(broker, admin, "--remove", "--force", "--allow-principal", "User:alice", "--operation", "Write",
              "--topic", topic)
    listed = acls_tool(broker, admin, "--list", "--topic", topic).stdout
    assert "WRITE" not in listed and "READ" in listed, listed
    p = Producer({**alice_conf, "acks": "all", "message.timeout.ms": 20000})
    errors: list[KafkaError] = []
    p.produce(topic, b"no longer allowed", on_delivery=lambda e, m: errors.append(e))
    p.flush(30)
    assert errors and errors[0] is not None and errors[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, errors
    assert "ACL created" in log_of(broker) and "ACL deleted" in log_of(broker)


def roundtrip_existing(conf: dict, topic: str, group: str, n: int = 10) -> None:
    p = Producer({**conf, "acks": "all"})
    errors = []
    for i in range(n):
        p.produce(topic, f"a{i}".encode(), on_delivery=lambda e, m: e and errors.append(e))
    assert p.flush(30) == 0 and not errors, errors
    c = Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest"})
    try:
        c.subscribe([topic])
        got = []

        def read() -> bool:
            m = c.poll(0.5)
            if m is not None:
                assert m.error() is None, m.error()
                got.append(m.value())
            return len(got) >= n

        wait_until(read, 60, f"{n} records")
        c.commit(asynchronous=False)
    finally:
        c.close()


def test_users_without_acls_get_kafkas_errors_and_others_carry_on(secure_broker, pki, tmp_path):
    topic, secret = unique("granted"), unique("secret")
    acls = [
        {"principal": "User:alice", "resource_type": "topic", "resource_name": topic,
         "operations": ["read", "write", "create"]},
        {"principal": "User:alice", "resource_type": "group", "resource_name": "alice-", "pattern_type": "prefixed",
         "operations": ["read"]},
        # bob may describe and read `topic`, but no group: his group operations are refused
        {"principal": "User:bob", "resource_type": "topic", "resource_name": topic, "operations": ["read"]},
        # a deny wins over the allow above for bob's writes
        {"principal": "User:bob", "resource_type": "topic", "resource_name": topic, "operations": ["write"],
         "permission": "deny"},
    ]
    broker = secure_broker("SASL_SSL", users=USERS, super_users=["User:admin"], allow_everyone_if_no_acl_found=False,
                           acls=acls, **tls_settings(pki))
    admin_conf = sasl_conf(broker, user="admin", pki=pki)
    alice_conf, bob_conf = sasl_conf(broker, user="alice", pki=pki), sasl_conf(broker, user="bob", pki=pki)
    create_topic(admin_conf, secret)
    roundtrip_existing(alice_conf, topic, group="alice-1")

    # Metadata hides what a user may not describe; naming it gives TOPIC_AUTHORIZATION_FAILED
    listed = AdminClient(alice_conf).list_topics(timeout=20).topics
    assert topic in listed and secret not in listed
    named = AdminClient(alice_conf).list_topics(secret, timeout=20).topics[secret]
    assert named.error is not None and named.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, named.error

    # librdkafka: bob may not write (deny), alice may not read `secret`, bob has no group
    p = Producer({**bob_conf, "acks": "all", "message.timeout.ms": 20000})
    errors: list = []
    p.produce(topic, b"x", on_delivery=lambda e, m: errors.append(e))
    p.flush(30)
    assert errors and errors[0] is not None and errors[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, errors
    c = Consumer({**bob_conf, "group.id": "bobs-group", "auto.offset.reset": "earliest"})
    try:
        c.subscribe([topic])
        seen: list = []

        def group_refused() -> bool:
            m = c.poll(0.5)
            if m is not None and m.error() is not None:
                seen.append(m.error())
            return any(e.code() == KafkaError.GROUP_AUTHORIZATION_FAILED for e in seen)

        wait_until(group_refused, 60, "GROUP_AUTHORIZATION_FAILED for bob's group")
    finally:
        c.close()
    # alice creating topics she has no CREATE for
    alice_admin = AdminClient(alice_conf)  # referenced until its futures resolve
    f = alice_admin.create_topics([NewTopic(unique("nope"), 1, 1)])
    with pytest.raises(KafkaException) as raised:
        list(f.values())[0].result(30)
    assert raised.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    f = alice_admin.delete_topics([secret], operation_timeout=30)
    with pytest.raises(KafkaException) as raised:
        f[secret].result(30)
    assert raised.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    # kafka-python: TopicAuthorizationFailedError for a producer on `secret`
    from kafka import KafkaProducer
    from kafka.errors import KafkaError as KPError, TopicAuthorizationFailedError

    kp = KafkaProducer(bootstrap_servers=broker.bootstrap, security_protocol="SASL_SSL",
                       sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="alice", sasl_plain_password=PASSWORD,
                       ssl_cafile=str(pki["ca"]), max_block_ms=20000)
    try:
        with pytest.raises(KPError) as kp_error:
            kp.send(secret, b"x").get(timeout=30)
        assert isinstance(kp_error.value, TopicAuthorizationFailedError) or \
            "TopicAuthorizationFailed" in repr(kp_error.value), repr(kp_error.value)
    finally:
        kp.close(timeout=5)

    # The Java tools: the console consumer in a group alice has no ACL for; kafka-topics on a hidden topic
    props = java_props(tmp_path / "alice.properties", "alice", PASSWORD, pki)
    out = run_tool(CONSUMER, ["--bootstrap-server", broker.bootstrap, "--command-config", str(props),
                              "--topic", topic, "--group", "not-alices", "--from-beginning",
                              "--timeout-ms", "20000"], timeout=120)
    assert "GroupAuthorizationException" in out.stdout + out.stderr, out.stdout[-2000:] + out.stderr[-2000:]
    out = run_tool(TOPICS, ["--bootstrap-server", broker.bootstrap, "--command-config", str(props), "--delete",
                            "--topic", secret], timeout=120)
    # as against Kafka: the topic alice may not describe is not even revealed to exist
    assert out.returncode != 0 and "does not exist" in out.stdout + out.stderr, out.stdout + out.stderr
    out = run_tool(TOPICS, ["--bootstrap-server", broker.bootstrap, "--command-config", str(props), "--list"])
    assert secret not in out.check().stdout.split() and topic in out.stdout.split()

    # all along, the others are served: a super user's round trip, alice's in her group
    roundtrip(admin_conf)
    roundtrip_existing(alice_conf, topic, group="alice-2")
    broker.check_running()
    # refusals are logged (rate-limited) with who and what was missing; listing hides without logging
    log = log_of(broker)
    assert "request refused by ACLs" in log and "principal=User:bob" in log, log[-3000:]
    assert f"Write Topic:{topic}" in log and "Group:bobs-group" in log, log[-3000:]



def test_defaults_open_only_on_a_loopback_plaintext_broker(secure_broker, pki):
    """`allow_everyone_if_no_acl_found` defaults to false on a SASL broker: with no ACLs only super users
    get anything; on the loopback PLAINTEXT broker every test uses, everything stays open."""
    broker = secure_broker("SASL_SSL", users=USERS, super_users=["User:admin"], **{
        **tls_settings(pki), "allow_everyone_if_no_acl_found": None})
    topic = unique("closed")
    create_topic(sasl_conf(broker, user="admin", pki=pki), topic)
    assert topic not in AdminClient(sasl_conf(broker, user="alice", pki=pki)).list_topics(timeout=20).topics
    assert "authorization is on" in log_of(broker)
    roundtrip(sasl_conf(broker, user="admin", pki=pki))


def test_acls_apply_to_certificate_principals(secure_broker, pki):
    """With mTLS the principal is the certificate's subject: ACLs name it like any user."""
    principal = "User:CN=agent-1,OU=ops,O=logpipe"
    topic = unique("mtls-acl")
    acls = [{"principal": principal, "resource_type": "topic", "resource_name": topic,
             "operations": ["write", "create", "read"]},
            {"principal": principal, "resource_type": "group", "resource_name": "web-", "pattern_type": "prefixed",
             "operations": ["read"]}]
    broker = secure_broker("SSL", ssl_ca_location=str(pki["ca"]), ssl_client_auth="required", acls=acls,
                           allow_everyone_if_no_acl_found=False, **tls_settings(pki))
    base = {"bootstrap.servers": broker.bootstrap, "security.protocol": "ssl", "ssl.ca.location": str(pki["ca"])}
    cert, key = pki["agent"]
    agent = {**base, "ssl.certificate.location": str(cert), "ssl.key.location": str(key)}
    roundtrip_existing(agent, topic, group="web-1")
    other_cert, other_key = pki["ca_pki"].issue("web-2", "/O=logpipe/OU=ops/CN=web-2", server=False)
    other = {**base, "ssl.certificate.location": str(other_cert), "ssl.key.location": str(other_key)}
    p = Producer({**other, "acks": "all", "message.timeout.ms": 20000})
    errors: list = []
    p.produce(topic, b"x", on_delivery=lambda e, m: errors.append(e))
    p.flush(30)
    assert errors and errors[0] is not None and errors[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, errors
