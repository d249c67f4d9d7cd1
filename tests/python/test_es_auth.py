"""The indexer's Elasticsearch security settings against a real TLS and auth front: Debian's nginx
(nginx_proxy.py) before the Elasticsearch stand-in. HTTPS with `ca_file`, with Filebeat's
`ca_trusted_fingerprint` instead of a CA file, basic auth and API keys; refusals (401, 403, an untrusted
certificate) get a message about credentials or trust that names the host and the keys to set."""

from __future__ import annotations

import subprocess

import pytest

from indexer_support import envelope, es_output, event_id, indexer_toml, new_run, produce_values
from nginx_proxy import NginxProxy
from security_support import Pki
from support import create_topic, unique, wait_until

USER, PASSWORD = "logpipe_writer", "writer-password"
API_KEY, READONLY_KEY = "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==", "cmVhZG9ubHk6a2V5"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("es-pki")
    ca = Pki(d, "es-ca")
    cert, key = ca.issue("es-http", "/CN=localhost", server=True)
    chain = d / "es-http-chain.pem"  # the CA is in the chain, as Elasticsearch's own http certificate has it
    chain.write_text(cert.read_text() + ca.ca.read_text())
    fp = subprocess.run(["openssl", "x509", "-in", str(ca.ca), "-noout", "-fingerprint", "-sha256"],
                        capture_output=True, text=True, check=True).stdout
    return {"ca": ca.ca, "chain": chain, "key": key, "fingerprint": fp.strip().split("=", 1)[1],
            "other_ca": Pki(d, "other-ca").ca}


@pytest.fixture
def proxy(es_standin, tls_files, tmp_path):
    p = NginxProxy(tmp_path / "nginx", es_standin.url, tls_files["chain"], tls_files["key"], user=USER,
                   password=PASSWORD, api_key=API_KEY, readonly_key=READONLY_KEY)
    yield p
    p.close()


def indexed(broker, indexer_factory, es, output: dict, n: int = 50) -> None:
    topic, run = unique("esauth"), new_run()
    create_topic(broker.bootstrap, topic, 1)
    produce_values(broker.bootstrap, topic, (envelope(run, i) for i in range(n)), 1)
    indexer = indexer_factory(indexer_toml([broker.bootstrap], [topic], unique("g"), elasticsearch=output))
    wait_until(lambda: es.count() >= n, 90, lambda: f"{n} documents (have {es.count()})", procs=[indexer])
    assert set(es.all_ids()) >= {event_id(run, i) for i in range(n)}


def test_basic_auth_over_https_with_a_ca_file(broker, indexer_factory, es_standin, proxy, tls_files):
    indexed(broker, indexer_factory, es_standin,
            es_output(proxy.basic_url, user=USER, password=PASSWORD, ca_file=str(tls_files["ca"])))
    assert 200 in proxy.statuses() and 401 not in proxy.statuses()


def test_api_key_with_ca_trusted_fingerprint(broker, indexer_factory, es_standin, proxy, tls_files):
    # no ca_file: the CA is trusted because the server's chain holds the certificate with that fingerprint
    indexed(broker, indexer_factory, es_standin,
            es_output(proxy.api_key_url, api_key=API_KEY, ca_trusted_fingerprint=tls_files["fingerprint"]))
    assert 200 in proxy.statuses()


def refusal(logpipe_bin, tmp_path, broker, output: dict) -> str:
    """Runs an indexer that must stop at its first request to Elasticsearch; its last stderr line."""
    config = tmp_path / "indexer.toml"
    config.write_text(indexer_toml([broker.bootstrap], ["t"], "g", elasticsearch=output) +
                      "\n[admin]\nenabled = false\n")
    p = subprocess.run([str(logpipe_bin), "indexer", "-c", str(config)], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path, env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin"})
    assert p.returncode == 1, p.stderr[-3000:]
    return p.stderr.strip().splitlines()[-1]


def test_refusals_talk_about_credentials_and_name_host_and_keys(logpipe_bin, tmp_path, broker, proxy, tls_files):
    ca = str(tls_files["ca"])
    last = refusal(logpipe_bin, tmp_path, broker, es_output(proxy.basic_url, user=USER, password="wrong", ca_file=ca))
    assert "401" in last and proxy.basic_url in last, last
    assert "indexer.output.elasticsearch.user" in last and ".password" in last and ".api_key" in last, last
    assert "template" not in last and "wrong" not in last, last

    last = refusal(logpipe_bin, tmp_path, broker, es_output(proxy.api_key_url, api_key="bm9wZTpub3Bl", ca_file=ca))
    assert "401" in last and proxy.api_key_url in last and ".api_key" in last and "template" not in last, last

    last = refusal(logpipe_bin, tmp_path, broker, es_output(proxy.api_key_url, api_key=READONLY_KEY, ca_file=ca))
    assert "403" in last and proxy.api_key_url in last and ".api_key" in last, last
    assert "privilege" in last, last


def test_untrusted_certificates_are_refused_not_ignored(indexer_factory, broker, es_standin, proxy, tls_files):
    """A CA file of another CA, or a fingerprint that matches nothing in the chain: no request is sent,
    and the log says why."""
    topic = unique("untrusted")
    create_topic(broker.bootstrap, topic, 1)
    wrong_fp = ":".join(["AB"] * 32)
    for output in (es_output(proxy.basic_url, user=USER, password=PASSWORD, ca_file=str(tls_files["other_ca"])),
                   es_output(proxy.api_key_url, api_key=API_KEY, ca_trusted_fingerprint=wrong_fp,
                             ca_file=str(tls_files["other_ca"]))):
        indexer = indexer_factory(indexer_toml([broker.bootstrap], [topic], unique("g"), elasticsearch=output))
        wait_until(lambda: "certificate" in indexer.run_stderr().lower() or "UnknownIssuer" in indexer.run_stderr(),
                   60, "the indexer to log the certificate problem", procs=[indexer])
        indexer.stop()
    assert proxy.statuses() == [], "nothing was sent over an untrusted connection"
    assert es_standin.count() == 0


def test_a_bad_fingerprint_is_a_config_error(logpipe_bin, tmp_path, broker, proxy):
    last = refusal(logpipe_bin, tmp_path, broker, es_output(proxy.api_key_url, api_key=API_KEY,
                                                             ca_trusted_fingerprint="not-hex"))
    assert "indexer.output.elasticsearch.ca_trusted_fingerprint" in last, last
