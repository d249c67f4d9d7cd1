//! The connection layer against logpipe's own broker, started in-process with one listener of each
//! security protocol: plaintext, TLS (with the right CA, a wrong one, a wrong host name, client
//! certificates), SASL PLAIN and SCRAM (right and wrong passwords), and the mix-ups of a TLS client on a
//! plaintext port and the reverse, which must fail fast with an error that says so.
//!
//! Certificates are made with the `openssl` command, as `scripts/bench-security.sh` makes them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kafka_protocol::messages::{ApiKey, MetadataRequest};
use logpipe_broker::users::{add_user, ScramMechanism};
use logpipe_broker::{BrokerConfig, Server};
use tokio_util::sync::CancellationToken;

use super::{Connection, ConnectionError};
use crate::security::Security;

const TIMEOUT: Duration = Duration::from_secs(10);
const USER: &str = "alice";
const PASSWORD: &str = "alice-secret-7";

/// A throw-away CA, a second CA that signed nothing, a broker certificate for IP 127.0.0.1 only, and
/// a client certificate.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let out = Command::new("openssl").args(args).current_dir(dir.path()).output().expect("openssl runs");
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        for ca in ["ca", "other-ca"] {
            let (key, pem, subject) = (format!("{ca}.key"), format!("{ca}.pem"), format!("/CN=test {ca}"));
            run(&[&["req", "-x509", "-days", "2"][..], &ec, &["-keyout", &key, "-out", &pem, "-subj", &subject]]
                .concat());
        }
        for (name, extensions) in [
            ("broker", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
            ("client", "extendedKeyUsage=clientAuth\n"),
        ] {
            let (key, csr, pem, ext) =
                (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"), format!("{name}.ext"));
            run(&[&["req"][..], &ec, &["-keyout", &key, "-out", &csr, "-subj", &format!("/CN={name}")]].concat());
            std::fs::write(dir.path().join(&ext), extensions).unwrap();
            run(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &ext,
                "-out",
                &pem,
            ]);
        }
        Pki { dir }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    fn file(&self, file: &str) -> String {
        self.path(file).to_str().unwrap().to_owned()
    }
}

/// The listeners, in this order.
const LISTENERS: [&str; 4] =
    ["PLAINTEXT://127.0.0.1:0", "SSL://127.0.0.1:0", "SASL_PLAINTEXT://127.0.0.1:0", "SASL_SSL://127.0.0.1:0"];

struct Broker {
    addrs: Vec<SocketAddr>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<logpipe_broker::Result<()>>,
    _data: tempfile::TempDir,
}

impl Broker {
    /// A broker with `listeners`, `pki`'s certificate, and user alice for both SCRAM mechanisms.
    async fn start(pki: &Pki, listeners: &[&str], configure: impl FnOnce(&mut BrokerConfig)) -> Broker {
        let data = tempfile::tempdir().unwrap();
        for mechanism in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
            add_user(data.path(), USER, mechanism, PASSWORD, 4096).unwrap();
        }
        let mut config = BrokerConfig {
            listeners: listeners.iter().map(|l| l.to_string()).collect(),
            log_dirs: data.path().to_path_buf(),
            ssl_certificate_location: Some(pki.path("broker.pem")),
            ssl_key_location: Some(pki.path("broker.key")),
            allow_everyone_if_no_acl_found: Some(true),
            ..BrokerConfig::default()
        };
        configure(&mut config);
        let server = Server::bind(logpipe_config::Valid::new(config).unwrap()).await.unwrap();
        let addrs = server.local_addrs();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.run(shutdown.clone()));
        Broker { addrs, shutdown, task, _data: data }
    }

    async fn with_every_protocol(pki: &Pki) -> Broker {
        Broker::start(pki, &LISTENERS, |_| {}).await
    }

    /// The address of the listener with this protocol.
    fn addr(&self, protocol: &str) -> String {
        let index = LISTENERS.iter().position(|l| l.starts_with(&format!("{protocol}://"))).unwrap();
        self.addrs[index].to_string()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

fn security(properties: &[(&'static str, &str)]) -> Security {
    let properties: Vec<(&str, String)> = properties.iter().map(|(k, v)| (*k, v.to_string())).collect();
    Security::from_properties(&properties, "agent.output").unwrap()
}

async fn open(addr: &str, security: &Security) -> Result<Connection, ConnectionError> {
    Connection::open(addr, security, "connection-test", TIMEOUT).await
}

/// A Metadata round trip: the connection is usable (on a SASL listener: authenticated).
async fn assert_metadata(connection: &mut Connection) {
    let version = connection.version(ApiKey::Metadata, (1, 12)).expect("a Metadata version in common");
    let metadata = connection.call(&MetadataRequest::default(), version, TIMEOUT).await.unwrap();
    assert_eq!(metadata.brokers.len(), 1, "{metadata:?}");
}

#[tokio::test]
async fn plaintext_open_learns_versions() {
    let pki = Pki::new();
    let broker = Broker::with_every_protocol(&pki).await;
    let mut connection = open(&broker.addr("PLAINTEXT"), &Security::plaintext()).await.unwrap();
    assert!(connection.version(ApiKey::Produce, (3, 9)).is_some());
    assert_metadata(&mut connection).await;
    broker.stop().await;
}

#[tokio::test]
async fn sasl_plain_and_scram_authenticate() {
    let pki = Pki::new();
    let broker = Broker::with_every_protocol(&pki).await;
    for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let sasl = security(&[
            ("security.protocol", "sasl_plaintext"),
            ("sasl.mechanism", mechanism),
            ("sasl.username", USER),
            ("sasl.password", PASSWORD),
        ]);
        let mut connection = open(&broker.addr("SASL_PLAINTEXT"), &sasl).await.unwrap();
        assert_metadata(&mut connection).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn wrong_password_names_the_user_not_the_password() {
    let pki = Pki::new();
    let broker = Broker::with_every_protocol(&pki).await;
    for mechanism in ["PLAIN", "SCRAM-SHA-512"] {
        let wrong = security(&[
            ("security.protocol", "sasl_plaintext"),
            ("sasl.mechanism", mechanism),
            ("sasl.username", USER),
            ("sasl.password", "not-the-password"),
        ]);
        let err = open(&broker.addr("SASL_PLAINTEXT"), &wrong).await.err().unwrap();
        let text = err.to_string();
        assert!(matches!(err, ConnectionError::Authentication { .. }) && !err.is_retriable(), "{text}");
        assert!(text.contains("`alice`") && text.contains(mechanism) && text.contains("sasl.password"), "{text}");
        assert!(!text.contains("not-the-password") && !format!("{err:?}").contains("not-the-password"), "{text}");
    }
    // A SASL client on a listener without SASL.
    let sasl = security(&[("security.protocol", "sasl_plaintext"), ("sasl.username", USER), ("sasl.password", "x")]);
    let err = open(&broker.addr("PLAINTEXT"), &sasl).await.err().unwrap();
    assert!(err.to_string().contains("does not use SASL"), "{err}");
    broker.stop().await;
}

#[tokio::test]
async fn tls_with_the_ca_then_metadata() {
    let pki = Pki::new();
    let broker = Broker::with_every_protocol(&pki).await;
    let ca = pki.file("ca.pem");
    let tls = security(&[("security.protocol", "ssl"), ("ssl.ca.location", &ca)]);
    let mut connection = open(&broker.addr("SSL"), &tls).await.unwrap();
    assert_eq!(connection.broker(), broker.addr("SSL"));
    assert_metadata(&mut connection).await;

    let sasl_tls = security(&[
        ("security.protocol", "sasl_ssl"),
        ("ssl.ca.location", &ca),
        ("sasl.mechanism", "SCRAM-SHA-512"),
        ("sasl.username", USER),
        ("sasl.password", PASSWORD),
    ]);
    let mut connection = open(&broker.addr("SASL_SSL"), &sasl_tls).await.unwrap();
    assert_metadata(&mut connection).await;

    // Pipelined: three requests out, then their answers in order.
    let version = connection.version(ApiKey::Metadata, (1, 12)).unwrap();
    let (mut writer, mut reader) = connection.split();
    let mut sent = Vec::new();
    for _ in 0..3 {
        sent.push(writer.send(&MetadataRequest::default(), version).await.unwrap());
    }
    for correlation_id in sent {
        reader.receive::<MetadataRequest>(version, correlation_id).await.unwrap();
    }
    broker.stop().await;
}

#[tokio::test]
async fn protocol_mix_ups_fail_fast_and_say_so() {
    let pki = Pki::new();
    let broker = Broker::with_every_protocol(&pki).await;
    let tls = security(&[("security.protocol", "ssl"), ("ssl.ca.location", &pki.file("ca.pem"))]);

    let err = open(&broker.addr("PLAINTEXT"), &tls).await.err().unwrap();
    assert!(!matches!(err, ConnectionError::Timeout { .. }), "{err}");
    assert!(err.to_string().contains(&broker.addr("PLAINTEXT")) && err.to_string().contains("PLAINTEXT"), "{err}");

    let err = open(&broker.addr("SSL"), &Security::plaintext()).await.err().unwrap();
    assert!(!matches!(err, ConnectionError::Timeout { .. }), "{err}");
    assert!(err.to_string().contains(&broker.addr("SSL")) && err.to_string().contains("SSL listener"), "{err}");
    broker.stop().await;
}

#[tokio::test]
async fn untrusted_certificate_and_wrong_name_are_tls_errors() {
    let pki = Pki::new();
    let broker = Broker::with_every_protocol(&pki).await;
    let other_ca = security(&[("security.protocol", "ssl"), ("ssl.ca.location", &pki.file("other-ca.pem"))]);
    let err = open(&broker.addr("SSL"), &other_ca).await.err().unwrap();
    assert!(matches!(err, ConnectionError::Tls { .. }) && !err.is_retriable(), "{err}");
    assert!(err.to_string().contains("ssl.ca.location"), "{err}");

    // The certificate holds IP 127.0.0.1 only: by the name `localhost` it fails, unless names are not checked.
    let by_name = broker.addr("SSL").replace("127.0.0.1", "localhost");
    let ca = pki.file("ca.pem");
    let err = open(&by_name, &security(&[("security.protocol", "ssl"), ("ssl.ca.location", &ca)])).await.err().unwrap();
    assert!(matches!(err, ConnectionError::Tls { .. }), "{err}");
    assert!(err.to_string().contains("not valid for name"), "{err}");
    let chain_only = security(&[
        ("security.protocol", "ssl"),
        ("ssl.ca.location", &ca),
        ("ssl.endpoint.identification.algorithm", "none"),
    ]);
    let mut connection = open(&by_name, &chain_only).await.unwrap();
    assert_metadata(&mut connection).await;
    // Not checking the name still checks the chain.
    let err = open(
        &by_name,
        &security(&[
            ("security.protocol", "ssl"),
            ("ssl.ca.location", &pki.file("other-ca.pem")),
            ("ssl.endpoint.identification.algorithm", "none"),
        ]),
    )
    .await
    .err()
    .unwrap();
    assert!(matches!(err, ConnectionError::Tls { .. }), "{err}");
    broker.stop().await;
}

#[tokio::test]
async fn client_certificates_when_the_broker_requires_them() {
    let pki = Pki::new();
    let ca_path: &Path = &pki.path("ca.pem");
    let broker = Broker::start(&pki, &["SSL://127.0.0.1:0"], |config| {
        config.ssl_client_auth = "required".into();
        config.ssl_ca_location = Some(ca_path.to_path_buf());
    })
    .await;
    let addr = broker.addrs[0].to_string();
    let ca = pki.file("ca.pem");
    let err = open(&addr, &security(&[("security.protocol", "ssl"), ("ssl.ca.location", &ca)])).await.err().unwrap();
    assert!(matches!(err, ConnectionError::Tls { .. }), "{err}");
    assert!(err.to_string().contains("ssl.certificate.location"), "{err}");
    let mtls = security(&[
        ("security.protocol", "ssl"),
        ("ssl.ca.location", &ca),
        ("ssl.certificate.location", &pki.file("client.pem")),
        ("ssl.key.location", &pki.file("client.key")),
    ]);
    let mut connection = open(&addr, &mtls).await.unwrap();
    assert_metadata(&mut connection).await;
    // A key that is not the certificate's is refused when the settings are read.
    let mismatched = [
        ("security.protocol", "ssl".to_owned()),
        ("ssl.ca.location", ca.clone()),
        ("ssl.certificate.location", pki.file("client.pem")),
        ("ssl.key.location", pki.file("broker.key")),
    ];
    let err = Security::from_properties(&mismatched, "agent.output").unwrap_err();
    assert!(err.starts_with("agent.output.ssl.key.location:"), "{err}");
    broker.stop().await;
}
