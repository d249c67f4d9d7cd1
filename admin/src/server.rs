//! An admin endpoint: bind first (so the caller can report the address, or fail on a taken port),
//! then serve a [`Router`] until shutdown. The caller's router decides the methods (the status pages
//! are GETs; the web console adds a few JSON POSTs); any other method gets axum's 405, an unknown path
//! 404. Pages are rendered per request from the caller's state, so a slow scraper
//! only ever waits on itself.

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::protection::{require_auth, Protection};

/// A bound, not yet serving, admin listener.
pub struct AdminServer {
    listener: TcpListener,
    protection: Protection,
}

/// Why an admin endpoint cannot start.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("cannot listen on {address}: {source}")]
    Io { address: String, source: std::io::Error },
    #[error(
        "{address} is not a loopback address: an admin endpoint off loopback needs authentication \
         (auth_token_file, or auth_basic_username with auth_basic_password_file) and TLS \
         (ssl_certificate_location and ssl_key_location); {missing}"
    )]
    Unprotected { address: String, missing: &'static str },
}

impl AdminServer {
    /// Binds `address`. Off loopback, `protection` must authenticate and carry TLS, or this refuses.
    pub async fn bind(address: &str, protection: Protection) -> Result<Self, BindError> {
        let listener =
            TcpListener::bind(address).await.map_err(|source| BindError::Io { address: address.to_owned(), source })?;
        let bound = listener.local_addr().map_err(|source| BindError::Io { address: address.to_owned(), source })?;
        if !bound.ip().is_loopback() {
            let missing = match (protection.authenticates(), protection.tls.is_some()) {
                (true, true) => None,
                (false, true) => Some("authentication is missing"),
                (true, false) => Some("TLS is missing"),
                (false, false) => Some("both are missing"),
            };
            if let Some(missing) = missing {
                return Err(BindError::Unprotected { address: address.to_owned(), missing });
            }
        }
        Ok(Self { listener, protection })
    }

    /// `http` or `https`, as clients should use it.
    pub fn scheme(&self) -> &'static str {
        if self.protection.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The bound address (port 0 picks one).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `router` until `shutdown` is cancelled; connections in progress finish their request.
    pub async fn serve(self, router: Router, shutdown: CancellationToken) {
        let address = self.listener.local_addr().ok();
        let router = if self.protection.authenticates() {
            let protection = self.protection.clone();
            router.layer(axum::middleware::from_fn(
                move |request: axum::extract::Request, next: axum::middleware::Next| {
                    require_auth(protection.clone(), request, next)
                },
            ))
        } else {
            router
        };
        let result = match self.protection.tls {
            Some(acceptor) => {
                let listener = TlsListener { tcp: self.listener, acceptor };
                axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned()).await
            }
            None => axum::serve(self.listener, router).with_graceful_shutdown(shutdown.cancelled_owned()).await,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, ?address, "admin endpoint stopped");
        }
    }
}

/// Longest a client may take for the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// HTTPS: each accepted connection is a finished TLS handshake; failed handshakes are logged and skipped.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (socket, peer) = match self.tcp.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "admin endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, self.acceptor.accept(socket)).await {
                Ok(Ok(stream)) => return (stream, peer),
                Ok(Err(e)) => tracing::warn!(%peer, error = %e, "admin endpoint: TLS handshake failed"),
                Err(_) => tracing::warn!(%peer, "admin endpoint: TLS handshake timed out"),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// A `/metrics` answer: the text exposition with its content type.
pub fn metrics(body: String) -> Response {
    ([(CONTENT_TYPE, crate::CONTENT_TYPE)], body).into_response()
}

/// A JSON answer from an already serialized body.
pub fn json(body: String) -> Response {
    ([(CONTENT_TYPE, "application/json")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;

    #[tokio::test]
    async fn serves_pages_404s_unknown_paths_and_stops_on_shutdown() {
        let server = AdminServer::bind("127.0.0.1:0", Protection::default()).await.unwrap();
        let base = format!("http://{}", server.local_addr().unwrap());
        let router = Router::new().route("/metrics", get(|| async { metrics("up 1\n".into()) }));
        let shutdown = CancellationToken::new();
        let serving = tokio::spawn(server.serve(router, shutdown.clone()));

        let client = reqwest::Client::new();
        let page = client.get(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        assert_eq!(page.headers()[CONTENT_TYPE.as_str()], crate::CONTENT_TYPE);
        assert_eq!(page.text().await.unwrap(), "up 1\n");
        assert_eq!(client.get(format!("{base}/nope")).send().await.unwrap().status(), 404);
        assert_eq!(client.post(format!("{base}/metrics")).send().await.unwrap().status(), 405);

        shutdown.cancel();
        serving.await.unwrap();
    }

    #[tokio::test]
    async fn refuses_an_unprotected_non_loopback_address() {
        let err = AdminServer::bind("0.0.0.0:0", Protection::default()).await.err().unwrap().to_string();
        assert!(err.contains("auth_token_file") && err.contains("ssl_certificate_location"), "{err}");
    }
}
