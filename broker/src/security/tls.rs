//! TLS for SSL and SASL_SSL listeners, through rustls (ring provider).
//!
//! The PEM files carry librdkafka's names in snake_case: `ssl_certificate_location` (the chain),
//! `ssl_key_location`, `ssl_ca_location` (the CAs client certificates must chain to). A missing or
//! unreadable file stops the broker at start with the key named; it never falls back to plaintext.
//! [`TlsContext::reload_if_changed`] rebuilds the config when any file changed on disk; a broken new file
//! is logged and the previous config stays in use, so connections keep working while the files are
//! replaced.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::config::BrokerConfig;
use crate::error::{Error, Result};

/// Kafka's `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    Required,
    Requested,
    None,
}

impl ClientAuth {
    pub fn parse(text: &str) -> Result<Self> {
        match text.to_ascii_lowercase().as_str() {
            "required" => Ok(Self::Required),
            "requested" => Ok(Self::Requested),
            "none" | "" => Ok(Self::None),
            other => {
                Err(Error::Config(format!("broker.ssl_client_auth: `{other}` must be required, requested or none")))
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Files {
    certificate: PathBuf,
    key: PathBuf,
    ca: Option<PathBuf>,
    client_auth: ClientAuth,
}

type Stamp = Vec<Option<(SystemTime, u64)>>;

pub struct TlsContext {
    files: Files,
    current: RwLock<(Stamp, TlsAcceptor)>,
}

fn missing(key: &str) -> Error {
    Error::Config(format!("broker.{key} is required: an SSL or SASL_SSL listener needs it (PEM file)"))
}

impl TlsContext {
    /// Reads and checks the PEM files named in `config`. Errors name the key and the file.
    pub fn load(config: &BrokerConfig) -> Result<Self> {
        let client_auth = ClientAuth::parse(&config.ssl_client_auth)?;
        let files = Files {
            certificate: config.ssl_certificate_location.clone().ok_or_else(|| missing("ssl_certificate_location"))?,
            key: config.ssl_key_location.clone().ok_or_else(|| missing("ssl_key_location"))?,
            ca: config.ssl_ca_location.clone(),
            client_auth,
        };
        if client_auth != ClientAuth::None && files.ca.is_none() {
            return Err(Error::Config(format!(
                "broker.ssl_ca_location is required when broker.ssl_client_auth = \"{}\" (the CAs client \
                 certificates are checked against)",
                config.ssl_client_auth
            )));
        }
        let stamp = stamp(&files);
        let acceptor = build(&files)?;
        Ok(Self { files, current: RwLock::new((stamp, acceptor)) })
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        self.current.read().expect("tls lock poisoned").1.clone()
    }

    /// Rebuilds the acceptor if a file's modification time or size changed. Returns whether it did.
    pub fn reload_if_changed(&self) -> bool {
        let now = stamp(&self.files);
        if self.current.read().expect("tls lock poisoned").0 == now {
            return false;
        }
        match build(&self.files) {
            Ok(acceptor) => {
                *self.current.write().expect("tls lock poisoned") = (now, acceptor);
                tracing::info!(certificate = %self.files.certificate.display(), "TLS certificate and key reloaded");
                true
            }
            Err(e) => {
                // Remember the stamp so a broken file is reported once, not every second.
                self.current.write().expect("tls lock poisoned").0 = now;
                tracing::error!(error = %e, "cannot reload TLS files; keeping the previous certificate");
                false
            }
        }
    }
}

fn stamp(files: &Files) -> Stamp {
    [Some(&files.certificate), Some(&files.key), files.ca.as_ref()]
        .into_iter()
        .flatten()
        .map(|p| std::fs::metadata(p).ok().map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len())))
        .collect()
}

fn pem_error(key: &str, path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Config(format!("broker.{key}: cannot use {}: {what}", path.display()))
}

fn read_certificates(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    std::fs::metadata(path).map_err(|e| pem_error(key, path, e))?;
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(key, path, e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| pem_error(key, path, e))?;
    if certs.is_empty() {
        return Err(pem_error(key, path, "no PEM certificate in it"));
    }
    Ok(certs)
}

fn build(files: &Files) -> Result<TlsAcceptor> {
    let chain = read_certificates("ssl_certificate_location", &files.certificate)?;
    std::fs::metadata(&files.key).map_err(|e| pem_error("ssl_key_location", &files.key, e))?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| pem_error("ssl_key_location", &files.key, format!("no PEM private key in it ({e})")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS setup: {e}")))?;
    let builder = match (&files.ca, files.client_auth) {
        (Some(ca), auth) if auth != ClientAuth::None => {
            let mut roots = RootCertStore::empty();
            for cert in read_certificates("ssl_ca_location", ca)? {
                roots.add(cert).map_err(|e| pem_error("ssl_ca_location", ca, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == ClientAuth::Requested { verifier.allow_unauthenticated() } else { verifier };
            let verifier = verifier.build().map_err(|e| pem_error("ssl_ca_location", ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| pem_error("ssl_key_location", &files.key, format!("does not match the certificate ({e})")))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Kafka's default principal for a client certificate: `User:` and the subject as RFC 2253 prints it
/// (most specific first, `CN=client,OU=ops,O=example`).
pub fn principal_from_certificate(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let registry = x509_parser::objects::oid_registry();
    let mut rdns = Vec::new();
    for rdn in cert.subject().iter().collect::<Vec<_>>().into_iter().rev() {
        let attributes: Vec<String> = rdn
            .iter()
            .map(|attr| {
                let name = x509_parser::objects::oid2abbrev(attr.attr_type(), registry)
                    .map(str::to_owned)
                    .unwrap_or_else(|_| attr.attr_type().to_id_string());
                let value = attr.as_str().map(escape_rfc2253).unwrap_or_default();
                format!("{name}={value}")
            })
            .collect();
        rdns.push(attributes.join("+"));
    }
    Some(format!("User:{}", rdns.join(",")))
}

fn escape_rfc2253(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';') || (i == 0 && matches!(c, '#' | ' ')) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
