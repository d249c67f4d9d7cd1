//! One client connection: a reader that decodes and dispatches requests in order, and a writer that
//! sends responses in the same order while letting their futures run concurrently.
//!
//! Pipelining: clients such as librdkafka keep several requests in flight. Each request's synchronous
//! part runs as it is read (so effects keep the client's order), and its future joins a
//! `FuturesOrdered`: the fsync waits of five produce requests overlap, yet responses leave in order.
//!
//! On a SASL listener the reader also keeps the connection's SASL state: until authentication succeeds
//! only ApiVersions, SaslHandshake and SaslAuthenticate (or, after SaslHandshake v0, raw SASL tokens)
//! are accepted; anything else closes the connection, as Kafka does. With `connections_max_reauth_ms`
//! the session expires (KIP-368) and a request after that, other than a re-authentication, closes it.
//!
//! On plain TCP the writer sends Fetch record sets from their segment files with `sendfile`
//! (`super::sendfile`); on TLS they are read into memory and encrypted like everything else.
//!
//! Bad input only ever closes this connection: an oversized or truncated frame, an unknown api key, a
//! body that does not decode or a failed authentication is logged with the peer's address and the
//! socket is dropped.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures::stream::{FuturesOrdered, StreamExt};
use futures::FutureExt;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use super::listener::Listener;
use super::sendfile;
use crate::broker::{Broker, Session};
use crate::handlers::{self, sasl_authenticate, sasl_handshake, Reply, ResponseFuture};
use crate::protocol::frame::FrameReader;
use crate::protocol::{decode_request, encode_response_parts, DecodeError, Part, Request};
use crate::security::sasl::{SaslSession, Step};
use crate::storage::FileRecords;

/// Requests a connection may have in flight before the reader stops reading (backpressure).
const MAX_IN_FLIGHT: usize = 64;

/// Largest SASL token accepted (a SCRAM message is well under 1 KiB; PLAIN carries a password).
const MAX_SASL_TOKEN: usize = 64 * 1024;

/// Largest frame read from a connection that has not authenticated yet (Kafka's
/// `sasl.server.max.receive.size`), so an anonymous peer cannot make the broker allocate
/// `socket_request_max_bytes`.
const MAX_UNAUTHENTICATED_FRAME: i32 = 512 * 1024;

/// A frame the writer owes, in request order, as parts to write one after the other (a Fetch response's
/// record batches are parts of their own, never copied into the frame, or left in their segment files);
/// `None` when the response could not be encoded.
type Outgoing = Pin<Box<dyn Future<Output = Option<Vec<Part>>> + Send + 'static>>;

/// A connection's stream, split into a reader and a writer. Plain TCP also lends the writer its socket,
/// so that record sets can go from their files with `sendfile`; TLS must encrypt them and has none.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {
    type Reader: AsyncRead + Send + Unpin + 'static;
    type Writer: AsyncWrite + Send + Unpin + 'static;

    fn into_halves(self) -> (Self::Reader, Self::Writer);

    fn socket(writer: &Self::Writer) -> Option<&TcpStream>;
}

impl Stream for TcpStream {
    type Reader = OwnedReadHalf;
    type Writer = OwnedWriteHalf;

    fn into_halves(self) -> (Self::Reader, Self::Writer) {
        self.into_split()
    }

    fn socket(writer: &Self::Writer) -> Option<&TcpStream> {
        Some(writer.as_ref())
    }
}

impl Stream for TlsStream<TcpStream> {
    type Reader = ReadHalf<Self>;
    type Writer = WriteHalf<Self>;

    fn into_halves(self) -> (Self::Reader, Self::Writer) {
        tokio::io::split(self)
    }

    fn socket(_: &Self::Writer) -> Option<&TcpStream> {
        None
    }
}

/// What the reader does after a frame.
enum Action {
    Send(Outgoing),
    /// Send this, then close (a failed authentication).
    SendAndClose(Outgoing),
    Nothing,
    Close,
}

struct Connection {
    broker: Arc<Broker>,
    listener: Arc<Listener>,
    session: Session,
    /// `Some` on SASL listeners.
    sasl: Option<SaslSession>,
    /// After SaslHandshake v0 the next frames are raw SASL tokens, not Kafka requests.
    raw_tokens: bool,
}

pub async fn serve<S: Stream>(
    stream: S,
    peer: SocketAddr,
    listener: Arc<Listener>,
    principal: String,
    broker: Arc<Broker>,
    shutdown: CancellationToken,
) {
    let (mut reader, writer) = stream.into_halves();
    let sendfile = S::socket(&writer).is_some();
    let (pending_tx, pending_rx) = mpsc::channel::<Outgoing>(MAX_IN_FLIGHT);
    let writer_task = tokio::spawn(write_responses::<S>(writer, pending_rx, peer));

    let idle = Duration::from_millis(broker.config.connections_max_idle_ms);
    let max_frame = broker.config.socket_request_max_bytes;
    let sasl = listener.protocol.uses_sasl().then(|| SaslSession::new(&broker.config.sasl_enabled_mechanisms));
    let session = Session { peer, principal, node: listener.node.clone(), sendfile };
    let mut connection = Connection { broker, listener, session, sasl, raw_tokens: false };
    let mut frames = FrameReader::default();
    loop {
        let limit = match &connection.sasl {
            Some(sasl) if !sasl.is_authenticated(Instant::now()) => max_frame.min(MAX_UNAUTHENTICATED_FRAME),
            _ => max_frame,
        };
        let frame = tokio::select! {
            frame = tokio::time::timeout(idle, frames.next(&mut reader, limit)) => frame,
            _ = shutdown.cancelled() => break,
        };
        let frame = match frame {
            Err(_) => {
                tracing::debug!(%peer, "closing idle connection");
                break;
            }
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) => break,
            Ok(Err(e)) => {
                tracing::warn!(%peer, error = %e, "bad frame; closing connection");
                break;
            }
        };
        let action =
            if connection.raw_tokens { connection.raw_token(frame).await } else { connection.request(frame).await };
        let (outgoing, close) = match action {
            Action::Nothing => continue,
            Action::Close => break,
            Action::Send(outgoing) => (outgoing, false),
            Action::SendAndClose(outgoing) => (outgoing, true),
        };
        if pending_tx.send(outgoing).await.is_err() || close {
            break; // the writer failed (the peer is gone), or this connection is done
        }
    }
    drop(pending_tx);
    let _ = writer_task.await;
}

/// The api key, version and correlation id a response needs.
type Ids = (ApiKey, i16, i32);

fn ids(request: &Request) -> Ids {
    (request.api_key, request.version(), request.header.correlation_id)
}

fn response((api_key, version, correlation_id): Ids, response: ResponseFuture) -> Outgoing {
    Box::pin(response.map(move |reply| encode(api_key, version, correlation_id, &reply)))
}

fn ready_response(request: &Request, body: ResponseKind) -> Outgoing {
    response(ids(request), futures::future::ready(Reply::from(body)).boxed())
}

/// A raw SASL token frame (after SaslHandshake v0): size, then the token.
fn raw_frame(token: &[u8]) -> Outgoing {
    let mut frame = BytesMut::with_capacity(4 + token.len());
    frame.put_i32(token.len() as i32);
    frame.put_slice(token);
    Box::pin(futures::future::ready(Some(vec![Part::Bytes(frame.freeze())])))
}

enum Refusal {
    Failed(String),
    IllegalState(String),
}

fn encode(api_key: ApiKey, version: i16, correlation_id: i32, reply: &Reply) -> Option<Vec<Part>> {
    match encode_response_parts(api_key, version, correlation_id, &reply.body, &reply.files) {
        Ok(parts) => Some(parts),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode response; closing connection");
            None
        }
    }
}

impl Connection {
    fn peer(&self) -> SocketAddr {
        self.session.peer
    }

    async fn request(&mut self, frame: Bytes) -> Action {
        let peer = self.peer();
        let request = match decode_request(frame, handlers::supported_versions) {
            Ok(request) => request,
            Err(DecodeError::UnsupportedVersion { api_key: ApiKey::ApiVersions, version, correlation_id }) => {
                tracing::debug!(%peer, version, "ApiVersions version unsupported; answering with v0 (KIP-511)");
                let response = Reply::from(ResponseKind::ApiVersions(handlers::unsupported_version_response()));
                return Action::Send(Box::pin(futures::future::ready(encode(
                    ApiKey::ApiVersions,
                    0,
                    correlation_id,
                    &response,
                ))));
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "undecodable request; closing connection");
                return Action::Close;
            }
        };
        match &request.body {
            RequestKind::SaslHandshake(r) => {
                let (body, go_on) = sasl_handshake::handle(self.sasl.as_mut(), r);
                if !go_on {
                    let reason =
                        format!("SASL handshake for {} refused (error {})", r.mechanism.as_str(), body.error_code);
                    self.broker.auth_failures.record(peer, &self.listener.name, None, &reason);
                    return Action::SendAndClose(ready_response(&request, ResponseKind::SaslHandshake(body)));
                }
                self.raw_tokens = request.version() == 0;
                return Action::Send(ready_response(&request, ResponseKind::SaslHandshake(body)));
            }
            RequestKind::SaslAuthenticate(r) => {
                let token = r.auth_bytes.clone();
                let (body, close) = match self.authenticate(token).await {
                    Ok((reply, lifetime)) => (sasl_authenticate::token(request.version(), reply, lifetime), false),
                    Err(Refusal::Failed(message)) => (sasl_authenticate::failed(&message), true),
                    Err(Refusal::IllegalState(message)) => (sasl_authenticate::illegal_state(&message), true),
                };
                let outgoing = ready_response(&request, ResponseKind::SaslAuthenticate(body));
                return if close { Action::SendAndClose(outgoing) } else { Action::Send(outgoing) };
            }
            _ => {}
        }
        if let Some(sasl) = &self.sasl {
            if request.api_key != ApiKey::ApiVersions && !sasl.is_authenticated(Instant::now()) {
                let reason = if sasl.principal().is_some() {
                    "SASL session expired without re-authentication (connections_max_reauth_ms)"
                } else {
                    "request before SASL authentication"
                };
                let reason = format!("{reason} ({:?}); connection closed", request.api_key);
                self.broker.auth_failures.record(peer, &self.listener.name, None, &reason);
                return Action::Close;
            }
        }
        // Kafka sends no response at all to an acks=0 produce; the append still happens in dispatch.
        let fire_and_forget = matches!(&request.body, RequestKind::Produce(p) if p.acks == 0);
        let ids = ids(&request);
        let future = handlers::dispatch(&self.broker, request, &self.session);
        if fire_and_forget {
            return Action::Nothing;
        }
        Action::Send(response(ids, future))
    }

    /// After SaslHandshake v0: one raw token in, one raw token out; a failure closes without a reply.
    async fn raw_token(&mut self, frame: Bytes) -> Action {
        match self.authenticate(frame).await {
            Ok((reply, _)) => {
                if self.sasl.as_ref().is_some_and(|s| !s.in_exchange()) {
                    self.raw_tokens = false; // authenticated: Kafka requests follow
                }
                Action::Send(raw_frame(&reply))
            }
            Err(_) => Action::Close,
        }
    }

    /// One SASL token through the connection's exchange. `Ok`: the token to answer with and the session
    /// lifetime to report (0: none).
    async fn authenticate(&mut self, token: Bytes) -> Result<(Vec<u8>, i64), Refusal> {
        let peer = self.peer();
        let Some(mut sasl) = self.sasl.take() else {
            return Err(Refusal::IllegalState(format!("listener {} does not use SASL", self.listener.name)));
        };
        if !sasl.in_exchange() {
            self.sasl = Some(sasl);
            return Err(Refusal::IllegalState("SaslAuthenticate without a SaslHandshake first".into()));
        }
        if token.len() > MAX_SASL_TOKEN {
            self.broker.auth_failures.record(peer, &self.listener.name, None, "SASL token too large");
            return Err(Refusal::Failed(format!("SASL token of {} bytes is too large", token.len())));
        }
        let was_authenticated = sasl.principal().is_some();
        let store = self.broker.credentials.clone();
        let lifetime = self.broker.config.connections_max_reauth_ms;
        // PLAIN runs PBKDF2 (thousands of HMACs): off the async workers.
        let outcome = tokio::task::spawn_blocking(move || {
            let step = sasl.step(&store, &token, lifetime);
            (sasl, step)
        })
        .await;
        let Ok((sasl, step)) = outcome else {
            return Err(Refusal::Failed("internal error during authentication".into()));
        };
        self.sasl = Some(sasl);
        match step {
            Step::Continue(reply) => Ok((reply, 0)),
            Step::Done { user, reply } => {
                let principal = format!("User:{user}");
                if was_authenticated {
                    tracing::debug!(%peer, listener = %self.listener.name, %principal, "re-authenticated");
                } else {
                    tracing::debug!(%peer, listener = %self.listener.name, %principal, "authenticated");
                }
                self.session.principal = principal;
                Ok((reply, lifetime.max(0)))
            }
            Step::Failed { user, reason } => {
                self.broker.auth_failures.record(peer, &self.listener.name, user.as_deref(), &reason);
                Err(Refusal::Failed(reason))
            }
        }
    }
}

async fn write_responses<S: Stream>(writer: S::Writer, mut pending_rx: mpsc::Receiver<Outgoing>, peer: SocketAddr) {
    let mut writer = BufWriter::with_capacity(64 * 1024, writer);
    let mut in_flight = FuturesOrdered::new();
    let mut reader_done = false;
    loop {
        tokio::select! {
            // Stop taking requests while MAX_IN_FLIGHT are pending: the channel then fills and the
            // reader stops reading the socket, so one client cannot park unbounded work.
            next = pending_rx.recv(), if !reader_done && in_flight.len() < MAX_IN_FLIGHT => match next {
                Some(outgoing) => in_flight.push_back(outgoing),
                None => reader_done = true,
            },
            Some(first) = in_flight.next(), if !in_flight.is_empty() => {
                // Write every response that is already complete, then flush once: pipelined responses
                // share a syscall, and none waits behind a slower one still in flight.
                let mut ready = Some(first);
                while let Some(frame) = ready.take() {
                    let Some(frame) = frame else {
                        tracing::debug!(%peer, "closing connection after an encoding failure");
                        return;
                    };
                    // Small parts gather in the BufWriter; a part larger than its buffer (a partition's
                    // record batches) goes to the socket straight from where it was read, or from its
                    // file.
                    for part in frame {
                        let written = match part {
                            Part::Bytes(bytes) => writer.write_all(&bytes).await,
                            Part::File(records) => send_file::<S>(&mut writer, &records).await,
                        };
                        if let Err(e) = written {
                            tracing::debug!(%peer, error = %e, "closing connection: cannot send a response");
                            return;
                        }
                    }
                    ready = in_flight.next().now_or_never().flatten();
                }
                if writer.flush().await.is_err() {
                    return;
                }
            },
            else => break,
        }
    }
    let _ = writer.flush().await;
    let _ = writer.shutdown().await;
}

/// Record batches from their segment file, after whatever the writer holds.
async fn send_file<S: Stream>(writer: &mut BufWriter<S::Writer>, records: &FileRecords) -> std::io::Result<()> {
    writer.flush().await?;
    match S::socket(writer.get_ref()) {
        Some(socket) => sendfile::send(socket, records).await,
        // Fetch leaves records in their files only for connections that send them so (`Session::sendfile`).
        None => writer.write_all(&records.read()?).await,
    }
}
