//! One bound listener: its name, security protocol and advertised address, and the TLS handshake that
//! precedes the Kafka protocol on SSL and SASL_SSL listeners.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::connection;
use crate::broker::{Broker, NodeInfo};
use crate::config::BrokerConfig;
use crate::error::{Error, Result};
use crate::security::tls::{principal_from_certificate, TlsContext};
use crate::security::{ListenerSpec, SecurityProtocol};

/// Longest a client may take to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Who is on the other end before SASL: `User:ANONYMOUS` unless a client certificate names someone.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

pub struct Listener {
    pub name: String,
    pub protocol: SecurityProtocol,
    /// The node as clients of this listener must reach it (Metadata, FindCoordinator).
    pub node: NodeInfo,
    tls: Option<Arc<TlsContext>>,
}

impl Listener {
    pub fn new(
        config: &BrokerConfig,
        spec: ListenerSpec,
        bound: SocketAddr,
        legacy_advertised: Option<&str>,
        tls: Option<Arc<TlsContext>>,
    ) -> Result<Self> {
        let (host, port) = match (spec.advertised, legacy_advertised) {
            (Some(advertised), _) => advertised,
            (None, Some(listener)) => {
                let (host, port) = listener.rsplit_once(':').ok_or_else(|| {
                    Error::Config(format!("broker.advertised_listener: `{listener}` is not host:port"))
                })?;
                let port = port
                    .parse::<u16>()
                    .map_err(|_| Error::Config(format!("broker.advertised_listener: bad port in `{listener}`")))?;
                (host.to_owned(), port)
            }
            (None, None) if bound.ip().is_unspecified() => {
                return Err(Error::Config(format!(
                    "broker.listeners: listener {} on {bound} needs an address in broker.advertised_listeners \
                     ({}://host:port, what clients should use)",
                    spec.name, spec.name
                )))
            }
            (None, None) => (bound.ip().to_string(), bound.port()),
        };
        let node = NodeInfo { node_id: config.node_id, host, port: port as i32 };
        let tls = if spec.protocol.uses_tls() { tls } else { None };
        Ok(Self { name: spec.name, protocol: spec.protocol, node, tls })
    }

    /// Runs one accepted connection to its end: TLS first where the listener asks for it (a failed
    /// handshake closes only this connection), then the Kafka protocol.
    pub async fn serve(
        self: Arc<Self>,
        socket: TcpStream,
        peer: SocketAddr,
        broker: Arc<Broker>,
        shutdown: CancellationToken,
    ) {
        let Some(tls) = &self.tls else {
            connection::serve(socket, peer, self.clone(), ANONYMOUS.to_owned(), broker, shutdown).await;
            return;
        };
        let handshake = tokio::select! {
            handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.acceptor().accept(socket)) => handshake,
            _ = shutdown.cancelled() => return,
        };
        let stream = match handshake {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) if closed_by_peer(&e) => {
                // The client went away before it offered or refused anything (a librdkafka client destroyed
                // while its second connection is still shaking hands does this): a disconnect, as Kafka
                // counts it, not a failed authentication. A client refusing our certificate sends an alert
                // instead, which is an error of another kind, below.
                tracing::debug!(%peer, listener = %self.name, error = %e, "connection closed during the TLS handshake");
                return;
            }
            Ok(Err(e)) => {
                broker.auth_failures.record(peer, &self.name, None, &format!("TLS handshake failed: {e}"));
                return;
            }
            Err(_) => {
                broker.auth_failures.record(peer, &self.name, None, "TLS handshake timed out");
                return;
            }
        };
        let principal = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|cert| principal_from_certificate(cert.as_ref()))
            .unwrap_or_else(|| ANONYMOUS.to_owned());
        tracing::debug!(%peer, listener = %self.name, %principal, "TLS connection established");
        connection::serve(stream, peer, self.clone(), principal, broker, shutdown).await;
    }
}

/// The peer closed or reset the connection: no alert, no bytes that fail to parse.
fn closed_by_peer(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    matches!(error.kind(), UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe)
}
