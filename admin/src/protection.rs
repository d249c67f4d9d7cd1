//! Protection of an admin endpoint that leaves loopback: a bearer token or HTTP basic auth, plus TLS.
//!
//! On a loopback address the endpoint may run without either (the default). On any other address the
//! caller must give an authentication method *and* a certificate, or [`crate::AdminServer::bind`]
//! refuses, naming what is missing: nothing is served unauthenticated or in clear text by accident.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::Request;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use subtle::ConstantTimeEq;
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// Where the secrets and certificate are, as a config section names them. Paths, never secrets inline.
#[derive(Debug, Clone, Default)]
pub struct ProtectionFiles {
    /// A file whose first line is the bearer token (`Authorization: Bearer …`).
    pub auth_token_file: Option<PathBuf>,
    /// HTTP basic auth user name, with `auth_basic_password_file`.
    pub auth_basic_username: Option<String>,
    pub auth_basic_password_file: Option<PathBuf>,
    /// PEM certificate chain and key for HTTPS.
    pub ssl_certificate_location: Option<PathBuf>,
    pub ssl_key_location: Option<PathBuf>,
}

#[derive(Clone, Default)]
pub struct Protection {
    token: Option<Arc<str>>,
    basic: Option<Arc<str>>, // the expected `user:password`
    pub(crate) tls: Option<TlsAcceptor>,
}

impl std::fmt::Debug for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protection")
            .field("token", &self.token.is_some())
            .field("basic", &self.basic.is_some())
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

fn first_line(key: &str, path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{key}: cannot read {}: {e}", path.display()))?;
    let line = text.lines().next().unwrap_or("").trim().to_owned();
    if line.is_empty() {
        return Err(format!("{key}: {} is empty", path.display()));
    }
    Ok(line)
}

impl Protection {
    /// Reads the files. `section` prefixes keys in errors (`admin`).
    pub fn load(files: &ProtectionFiles, section: &str) -> Result<Self, String> {
        let key = |k: &str| format!("{section}.{k}");
        let token = match &files.auth_token_file {
            Some(path) => Some(Arc::from(first_line(&key("auth_token_file"), path)?)),
            None => None,
        };
        let basic = match (&files.auth_basic_username, &files.auth_basic_password_file) {
            (Some(user), Some(path)) => {
                Some(Arc::from(format!("{user}:{}", first_line(&key("auth_basic_password_file"), path)?)))
            }
            (None, None) => None,
            _ => {
                return Err(format!(
                    "{} and {} go together",
                    key("auth_basic_username"),
                    key("auth_basic_password_file")
                ))
            }
        };
        let tls = match (&files.ssl_certificate_location, &files.ssl_key_location) {
            (Some(cert), Some(k)) => {
                Some(tls_acceptor(&key("ssl_certificate_location"), cert, &key("ssl_key_location"), k)?)
            }
            (None, None) => None,
            _ => {
                return Err(format!("{} and {} go together", key("ssl_certificate_location"), key("ssl_key_location")))
            }
        };
        Ok(Self { token, basic, tls })
    }

    pub(crate) fn authenticates(&self) -> bool {
        self.token.is_some() || self.basic.is_some()
    }

    /// Whether a request's `Authorization` header carries the token or the basic credentials.
    fn admits(&self, header: Option<&str>) -> bool {
        let Some(header) = header else { return false };
        if let (Some(token), Some(given)) = (&self.token, header.strip_prefix("Bearer ")) {
            if bool::from(token.as_bytes().ct_eq(given.trim().as_bytes())) {
                return true;
            }
        }
        if let (Some(basic), Some(given)) = (&self.basic, header.strip_prefix("Basic ")) {
            if let Ok(decoded) = B64.decode(given.trim()) {
                return bool::from(basic.as_bytes().ct_eq(&decoded));
            }
        }
        false
    }
}

/// The middleware: 401 with a `WWW-Authenticate` challenge unless the request is admitted.
pub(crate) async fn require_auth(protection: Protection, request: Request, next: Next) -> Response {
    let header = request.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    if protection.admits(header) {
        return next.run(request).await;
    }
    let challenge = if protection.basic.is_some() { "Basic realm=\"logpipe\"" } else { "Bearer" };
    (StatusCode::UNAUTHORIZED, [(WWW_AUTHENTICATE, challenge)], "authentication required\n").into_response()
}

fn tls_acceptor(cert_key: &str, cert: &Path, key_key: &str, key: &Path) -> Result<TlsAcceptor, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{cert_key}: cannot use {}: {e}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{cert_key}: cannot use {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{cert_key}: no PEM certificate in {}", cert.display()));
    }
    let private =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{key_key}: cannot use {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| format!("{key_key}: {} does not match the certificate ({e})", key.display()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_the_token_or_basic_credentials_only() {
        let p = Protection { token: Some("t0k".into()), basic: Some("ops:pw".into()), tls: None };
        assert!(p.admits(Some("Bearer t0k")));
        assert!(!p.admits(Some("Bearer t0kx")));
        assert!(p.admits(Some(&format!("Basic {}", B64.encode("ops:pw")))));
        assert!(!p.admits(Some(&format!("Basic {}", B64.encode("ops:pw2")))));
        assert!(!p.admits(None));
        assert!(!format!("{p:?}").contains("t0k"));
    }
}
