//! TLS to Elasticsearch: the trusted CAs (`ca_file`, else the system's) and Filebeat's
//! `ca_trusted_fingerprint`.
//!
//! The fingerprint is the hex SHA-256 of a CA certificate (Elasticsearch prints it at first start;
//! `openssl x509 -fingerprint -sha256` gives it with colons, which are accepted). When the server's
//! chain contains a certificate with that fingerprint, it is trusted as a CA for that handshake and the
//! chain is verified against it as usual (validity, signatures, host name), as Filebeat and the
//! Elasticsearch clients do. A chain without it is verified against the other roots only.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::crypto::{ring, CryptoProvider};
use tokio_rustls::rustls::{ClientConfig, DigitallySignedStruct, Error as TlsError, RootCertStore, SignatureScheme};

/// Parses a hex SHA-256 fingerprint, with or without `:` separators.
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], String> {
    let hex: String = text.chars().filter(|c| *c != ':' && !c.is_whitespace()).collect();
    if hex.len() != 64 {
        return Err(format!("`{text}` is not a SHA-256 fingerprint (64 hex digits, colons allowed)"));
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| format!("`{text}` is not a SHA-256 fingerprint (64 hex digits, colons allowed)"))?;
    }
    Ok(out)
}

/// The CA certificates of a PEM file, or a message naming the file.
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls_pki_types::pem::PemObject;
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// A rustls client config that trusts `roots` (the CA file's, else the system's) plus the chain
/// certificate whose SHA-256 is `fingerprint`.
pub fn pinned_client_config(
    ca_certs: Option<Vec<CertificateDer<'static>>>,
    fingerprint: [u8; 32],
) -> Result<ClientConfig, String> {
    let provider = Arc::new(ring::default_provider());
    let mut roots = RootCertStore::empty();
    match ca_certs {
        Some(certs) => {
            for cert in certs {
                roots.add(cert).map_err(|e| format!("a CA certificate is unusable: {e}"))?;
            }
        }
        None => {
            // The system's roots, as without pinning; unreadable ones are skipped as reqwest does.
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let verifier = PinnedCa { roots: Arc::new(roots), fingerprint, provider: provider.clone() };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[derive(Debug)]
struct PinnedCa {
    roots: Arc<RootCertStore>,
    fingerprint: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl PinnedCa {
    fn verifier(&self, roots: Arc<RootCertStore>) -> Result<Arc<WebPkiServerVerifier>, TlsError> {
        WebPkiServerVerifier::builder_with_provider(roots, self.provider.clone())
            .build()
            .map_err(|e| TlsError::General(e.to_string()))
    }
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        let pinned = std::iter::once(end_entity)
            .chain(intermediates)
            .find(|cert| Sha256::digest(cert.as_ref()).as_slice() == self.fingerprint);
        let roots = match pinned {
            None => self.roots.clone(),
            Some(cert) => {
                let mut roots = (*self.roots).clone();
                roots.add(cert.clone().into_owned()).map_err(|e| TlsError::General(e.to_string()))?;
                Arc::new(roots)
            }
        };
        if roots.is_empty() {
            return Err(TlsError::General(
                "no certificate in the server's chain matches ca_trusted_fingerprint, and no other CA is trusted"
                    .into(),
            ));
        }
        self.verifier(roots)?.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        tokio_rustls::rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        tokio_rustls::rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_with_or_without_colons() {
        let plain = "a".repeat(64);
        assert_eq!(parse_fingerprint(&plain).unwrap(), [0xaa; 32]);
        let colons = vec!["AA"; 32].join(":");
        assert_eq!(parse_fingerprint(&colons).unwrap(), [0xaa; 32]);
        assert!(parse_fingerprint("abc").is_err());
        assert!(parse_fingerprint(&"g".repeat(64)).is_err());
    }
}
