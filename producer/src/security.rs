//! How the producer's connections encrypt and authenticate, built from librdkafka's property names
//! (the list `logpipe_config::kafka_security::KafkaSecurity::librdkafka` makes), so the agent's
//! `[agent.output]` security settings mean the same with this producer as with librdkafka.
//!
//! Everything that can be wrong in the settings is found here, once, when the producer is made: the PEM
//! files are read and parsed now and one rustls `ClientConfig` is built for every connection; a missing
//! file or a key that does not match its certificate is an error naming the property, not a failed
//! connection later.
//!
//! TLS is rustls with the ring provider (as the broker uses), TLS 1.2 and 1.3. The broker's certificate
//! must chain to `ssl.ca.location` (or to the system's roots without it) and, unless
//! `ssl.endpoint.identification.algorithm` is `none`, be valid for the host name or IP address the
//! producer connects to, as librdkafka checks. The SASL password never appears in `Debug`, a log line or
//! an error.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::crypto::{ring, CryptoProvider};
use tokio_rustls::rustls::{
    self, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::scram::ScramMechanism;

/// How connections authenticate and encrypt. [`Default`] is plaintext, without authentication.
#[derive(Clone, Default)]
pub struct Security {
    tls: Option<Arc<ClientConfig>>,
    sasl: Option<SaslCredentials>,
}

/// `sasl.mechanism`, `sasl.username` and `sasl.password`.
#[derive(Clone)]
pub(crate) struct SaslCredentials {
    pub(crate) mechanism: SaslMechanism,
    pub(crate) username: String,
    password: String,
}

impl SaslCredentials {
    /// The secret: for the SASL exchange only, never for a message.
    pub(crate) fn password(&self) -> &str {
        &self.password
    }
}

impl std::fmt::Debug for SaslCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslCredentials")
            .field("mechanism", &self.mechanism.name())
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SaslMechanism {
    Plain,
    Scram(ScramMechanism),
}

impl SaslMechanism {
    fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "PLAIN" => Some(Self::Plain),
            "SCRAM-SHA-256" => Some(Self::Scram(ScramMechanism::Sha256)),
            "SCRAM-SHA-512" => Some(Self::Scram(ScramMechanism::Sha512)),
            _ => None,
        }
    }

    /// The name SaslHandshake carries.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::Scram(ScramMechanism::Sha256) => "SCRAM-SHA-256",
            Self::Scram(ScramMechanism::Sha512) => "SCRAM-SHA-512",
        }
    }
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("protocol", &self.protocol())
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl)
            .finish()
    }
}

/// librdkafka's other names for properties, and the name this module reads them by.
const ALIASES: [(&str, &str); 1] = [("sasl.mechanisms", "sasl.mechanism")];

/// A property's name, aliases resolved.
fn canonical(key: &str) -> &str {
    ALIASES.iter().find(|(alias, _)| *alias == key).map_or(key, |(_, name)| name)
}

const PROTOCOLS: [&str; 4] = ["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"];
const SASL_KEYS: [&str; 3] = ["sasl.mechanism", "sasl.username", "sasl.password"];
const SSL_KEYS: [&str; 4] =
    ["ssl.ca.location", "ssl.certificate.location", "ssl.key.location", "ssl.endpoint.identification.algorithm"];

impl Security {
    /// No TLS, no SASL.
    pub fn plaintext() -> Security {
        Security::default()
    }

    /// From librdkafka properties (`security.protocol`, `sasl.mechanism` or its librdkafka alias
    /// `sasl.mechanisms`, `sasl.username`, `sasl.password`, `ssl.*`; others are ignored; of a key given
    /// twice the last counts), reading the PEM files now. `prefix` names the settings' section in errors
    /// (`agent.output`); with an empty one, errors name the bare property (the console's `-X`/`-F`).
    pub fn from_properties(properties: &[(&str, String)], prefix: &str) -> Result<Security, String> {
        let prefix = &if prefix.is_empty() { String::new() } else { format!("{prefix}.") };
        let get = |key: &str| properties.iter().rev().find(|(k, _)| canonical(k) == key).map(|(_, v)| v.as_str());
        let protocol = get("security.protocol").unwrap_or("plaintext").to_ascii_lowercase();
        if !PROTOCOLS.contains(&protocol.as_str()) {
            return Err(format!("{prefix}security.protocol: `{protocol}` must be one of {}", PROTOCOLS.join(", ")));
        }
        let uses_sasl = protocol.starts_with("sasl_");
        let uses_tls = protocol.ends_with("ssl");
        let misplaced = |keys: &[&str], fix: &str| match keys.iter().find(|k| get(k).is_some()) {
            Some(key) => Err(format!("{prefix}{key} is set but security.protocol is {protocol}; use {fix}")),
            None => Ok(()),
        };
        if !uses_sasl {
            misplaced(&SASL_KEYS, "sasl_ssl (or sasl_plaintext)")?;
        }
        if !uses_tls {
            misplaced(&SSL_KEYS, "ssl or sasl_ssl")?;
        }
        let sasl = uses_sasl.then(|| sasl_credentials(&get, prefix, &protocol)).transpose()?;
        let tls = uses_tls.then(|| client_config(&get, prefix)).transpose()?;
        Ok(Security { tls, sasl })
    }

    /// The TLS settings, when connections use TLS.
    pub(crate) fn tls(&self) -> Option<&Arc<ClientConfig>> {
        self.tls.as_ref()
    }

    /// The SASL credentials, when connections authenticate with SASL.
    pub(crate) fn sasl(&self) -> Option<&SaslCredentials> {
        self.sasl.as_ref()
    }

    /// `security.protocol`, as librdkafka spells it.
    pub(crate) fn protocol(&self) -> &'static str {
        match (self.sasl.is_some(), self.tls.is_some()) {
            (false, false) => "plaintext",
            (false, true) => "ssl",
            (true, false) => "sasl_plaintext",
            (true, true) => "sasl_ssl",
        }
    }
}

fn sasl_credentials<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    prefix: &str,
    protocol: &str,
) -> Result<SaslCredentials, String> {
    let name = get("sasl.mechanism").unwrap_or("PLAIN");
    let mechanism = SaslMechanism::parse(name).ok_or_else(|| {
        format!("{prefix}sasl.mechanism: `{name}` must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512")
    })?;
    let username = get("sasl.username")
        .filter(|u| !u.is_empty())
        .ok_or_else(|| format!("{prefix}sasl.username is required with security.protocol {protocol}"))?;
    let password = get("sasl.password").ok_or_else(|| format!("{prefix}sasl.password is required with {protocol}"))?;
    Ok(SaslCredentials { mechanism, username: username.to_owned(), password: password.to_owned() })
}

/// The rustls configuration every TLS connection of the producer shares.
fn client_config<'a>(get: &impl Fn(&str) -> Option<&'a str>, prefix: &str) -> Result<Arc<ClientConfig>, String> {
    let check_name = match get("ssl.endpoint.identification.algorithm").map(str::to_ascii_lowercase).as_deref() {
        None | Some("https") => true,
        Some("none") => false,
        Some(other) => {
            return Err(format!("{prefix}ssl.endpoint.identification.algorithm: `{other}` must be https or none"))
        }
    };
    let roots = match get("ssl.ca.location") {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for certificate in read_certificates(prefix, "ssl.ca.location", path)? {
                roots.add(certificate).map_err(|e| {
                    format!("{prefix}ssl.ca.location: {path} holds a certificate that cannot be a CA ({e})")
                })?;
            }
            roots
        }
        None => system_roots(prefix)?,
    };
    let provider: Arc<CryptoProvider> = Arc::new(ring::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("{prefix}ssl.ca.location: {e}"))?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("{prefix}security.protocol: cannot set up TLS: {e}"))?;
    let builder = if check_name {
        builder.with_webpki_verifier(verifier)
    } else {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(ChainOnly(verifier)))
    };
    let config = match (get("ssl.certificate.location"), get("ssl.key.location")) {
        (None, None) => builder.with_no_client_auth(),
        (Some(certificate), Some(key)) => {
            let chain = read_certificates(prefix, "ssl.certificate.location", certificate)?;
            let key = read_private_key(prefix, key)?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                format!("{prefix}ssl.key.location: the key does not fit ssl.certificate.location {certificate} ({e})")
            })?
        }
        (Some(_), None) => return Err(format!("{prefix}ssl.key.location is required with ssl.certificate.location")),
        (None, Some(_)) => return Err(format!("{prefix}ssl.certificate.location is required with ssl.key.location")),
    };
    Ok(Arc::new(config))
}

fn read_file(prefix: &str, key: &str, path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{prefix}{key}: cannot read {path}: {e}"))
}

fn read_certificates(prefix: &str, key: &str, path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read_file(prefix, key, path)?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{prefix}{key}: {path} is not a PEM file ({e})"))?;
    if certificates.is_empty() {
        return Err(format!("{prefix}{key}: {path} contains no certificate (PEM `BEGIN CERTIFICATE`)"));
    }
    Ok(certificates)
}

fn read_private_key(prefix: &str, path: &str) -> Result<PrivateKeyDer<'static>, String> {
    let pem = read_file(prefix, "ssl.key.location", path)?;
    // The parser's own message could quote a line of the file: it is left out.
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|_| format!("{prefix}ssl.key.location: {path} contains no private key (PEM: PKCS#8, PKCS#1 or SEC1)"))
}

fn system_roots(prefix: &str) -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let why = found.errors.first().map(|e| format!(" ({e})")).unwrap_or_default();
        return Err(format!(
            "{prefix}ssl.ca.location is not set and the system has no CA certificates{why}; set it to the \
             CA that signed the broker's certificate"
        ));
    }
    Ok(roots)
}

/// `ssl.endpoint.identification.algorithm = none`: the chain must still lead to a trusted CA, but the
/// certificate need not name the host connected to (librdkafka's behaviour).
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The name is checked last, after the chain: a name error means the chain was good.
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, certificate, signature)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, certificate, signature)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn properties(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
    }

    #[test]
    fn plaintext_by_default_and_unknown_properties_ignored() {
        let security = Security::from_properties(&properties(&[("linger.ms", "5")]), "agent.output").unwrap();
        assert_eq!(security.protocol(), "plaintext");
        assert!(security.tls().is_none() && security.sasl().is_none());
        assert_eq!(Security::plaintext().protocol(), "plaintext");
    }

    #[test]
    fn sasl_plaintext_keeps_the_password_out_of_debug() {
        let props = properties(&[
            ("security.protocol", "sasl_plaintext"),
            ("sasl.mechanism", "scram-sha-512"),
            ("sasl.username", "agent"),
            ("sasl.password", "s3cret-pw"),
        ]);
        let security = Security::from_properties(&props, "agent.output").unwrap();
        let sasl = security.sasl().unwrap();
        assert_eq!(sasl.mechanism, SaslMechanism::Scram(ScramMechanism::Sha512));
        assert_eq!((sasl.username.as_str(), sasl.password()), ("agent", "s3cret-pw"));
        let debug = format!("{security:?}");
        assert!(!debug.contains("s3cret-pw") && debug.contains("<hidden>") && debug.contains("agent"), "{debug}");
    }

    #[test]
    fn librdkafka_alias_sasl_mechanisms_last_one_counts() {
        let mechanism = |pairs: &[(&'static str, &str)]| {
            let mut all =
                properties(&[("security.protocol", "SASL_PLAINTEXT"), ("sasl.username", "u"), ("sasl.password", "pw")]);
            all.extend(properties(pairs));
            Security::from_properties(&all, "").unwrap().sasl().unwrap().mechanism
        };
        assert_eq!(mechanism(&[("sasl.mechanisms", "SCRAM-SHA-256")]), SaslMechanism::Scram(ScramMechanism::Sha256));
        assert_eq!(
            mechanism(&[("sasl.mechanisms", "SCRAM-SHA-256"), ("sasl.mechanism", "PLAIN")]),
            SaslMechanism::Plain
        );
        assert_eq!(
            mechanism(&[("sasl.mechanism", "PLAIN"), ("sasl.mechanisms", "scram-sha-512")]),
            SaslMechanism::Scram(ScramMechanism::Sha512)
        );
        let e = Security::from_properties(&properties(&[("sasl.mechanisms", "PLAIN")]), "").unwrap_err();
        assert!(e.starts_with("sasl.mechanism is set but security.protocol is plaintext"), "{e}");
    }

    #[test]
    fn without_a_prefix_errors_name_the_bare_property() {
        let e = Security::from_properties(&properties(&[("security.protocol", "SASL_SSL")]), "").unwrap_err();
        assert_eq!(e, "sasl.username is required with security.protocol sasl_ssl");
        let e = Security::from_properties(
            &properties(&[("security.protocol", "ssl"), ("ssl.ca.location", "/nonexistent/ca.pem")]),
            "",
        )
        .unwrap_err();
        assert!(e.starts_with("ssl.ca.location: cannot read /nonexistent/ca.pem: "), "{e}");
    }

    #[test]
    fn errors_name_the_property() {
        let err = |pairs: &[(&'static str, &str)]| Security::from_properties(&properties(pairs), "a.o").unwrap_err();
        let e = err(&[("security.protocol", "tls")]);
        assert!(e.starts_with("a.o.security.protocol:"), "{e}");
        let e = err(&[("security.protocol", "sasl_ssl"), ("sasl.password", "pw")]);
        assert!(e.starts_with("a.o.sasl.username") && !e.contains("pw"), "{e}");
        let e = err(&[("security.protocol", "sasl_plaintext"), ("sasl.mechanism", "GSSAPI")]);
        assert!(e.starts_with("a.o.sasl.mechanism:"), "{e}");
        let e = err(&[("security.protocol", "plaintext"), ("ssl.ca.location", "/x")]);
        assert!(e.starts_with("a.o.ssl.ca.location is set"), "{e}");
        let e = err(&[("security.protocol", "ssl"), ("sasl.username", "u")]);
        assert!(e.starts_with("a.o.sasl.username is set"), "{e}");
        let e = err(&[("security.protocol", "ssl"), ("ssl.ca.location", "/nonexistent/ca.pem")]);
        assert!(e.starts_with("a.o.ssl.ca.location: cannot read /nonexistent/ca.pem: "), "{e}");
        let e = err(&[("security.protocol", "ssl"), ("ssl.endpoint.identification.algorithm", "dns")]);
        assert!(e.starts_with("a.o.ssl.endpoint.identification.algorithm:"), "{e}");
    }

    #[test]
    fn pem_files_without_what_they_should_hold() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let empty = empty.to_str().unwrap();
        let e = Security::from_properties(
            &properties(&[("security.protocol", "ssl"), ("ssl.ca.location", empty)]),
            "agent.output",
        )
        .unwrap_err();
        assert_eq!(
            e,
            format!("agent.output.ssl.ca.location: {empty} contains no certificate (PEM `BEGIN CERTIFICATE`)")
        );
    }
}
