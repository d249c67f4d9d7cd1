//! One client connection: a reader that decodes and dispatches requests in order, and a writer that
//! sends responses in the same order while letting their futures run concurrently.
//!
//! Pipelining: clients such as librdkafka keep several requests in flight. Each request's synchronous
//! part runs as it is read (so effects keep the client's order), and its future joins a
//! `FuturesOrdered`: the fsync waits of five produce requests overlap, yet responses leave in order.
//!
//! Bad input only ever closes this connection: an oversized or truncated frame, an unknown api key or
//! a body that does not decode is logged with the peer's address and the socket is dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{FuturesOrdered, StreamExt};
use futures::FutureExt;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::handlers::{self, ResponseFuture};
use crate::protocol::frame::read_frame;
use crate::protocol::{decode_request, encode_response, DecodeError};

/// Requests a connection may have in flight before the reader stops reading (backpressure).
const MAX_IN_FLIGHT: usize = 64;

/// A response the writer owes, in request order.
struct Pending {
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    response: ResponseFuture,
}

pub async fn serve(socket: TcpStream, peer: SocketAddr, broker: Arc<Broker>, shutdown: CancellationToken) {
    let (mut reader, writer) = socket.into_split();
    let (pending_tx, pending_rx) = mpsc::channel::<Pending>(MAX_IN_FLIGHT);
    let writer_task = tokio::spawn(write_responses(writer, pending_rx, peer));

    let idle = Duration::from_millis(broker.config.connections_max_idle_ms);
    let max_frame = broker.config.socket_request_max_bytes;
    loop {
        let frame = tokio::select! {
            frame = tokio::time::timeout(idle, read_frame(&mut reader, max_frame)) => frame,
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
        let Some(pending) = handle_frame(&broker, frame, peer) else { continue };
        let Ok(pending) = pending else { break };
        if pending_tx.send(pending).await.is_err() {
            break; // the writer failed: the peer is gone
        }
    }
    drop(pending_tx);
    let _ = writer_task.await;
}

/// `None`: nothing to answer (acks=0). `Some(Err)`: close the connection.
fn handle_frame(broker: &Arc<Broker>, frame: Bytes, peer: SocketAddr) -> Option<Result<Pending, ()>> {
    let request = match decode_request(frame, handlers::supported_versions) {
        Ok(request) => request,
        Err(DecodeError::UnsupportedVersion { api_key: ApiKey::ApiVersions, version, correlation_id }) => {
            tracing::debug!(%peer, version, "ApiVersions version unsupported; answering with v0 (KIP-511)");
            let response = ResponseKind::ApiVersions(handlers::unsupported_version_response());
            return Some(Ok(Pending {
                api_key: ApiKey::ApiVersions,
                version: 0,
                correlation_id,
                response: futures::future::ready(response).boxed(),
            }));
        }
        Err(e) => {
            tracing::warn!(%peer, error = %e, "undecodable request; closing connection");
            return Some(Err(()));
        }
    };
    let api_key = request.api_key;
    let version = request.version();
    let correlation_id = request.header.correlation_id;
    // Kafka sends no response at all to an acks=0 produce; the append still happens in dispatch.
    let fire_and_forget = matches!(&request.body, RequestKind::Produce(p) if p.acks == 0);
    let response = handlers::dispatch(broker, request, peer);
    if fire_and_forget {
        return None;
    }
    Some(Ok(Pending { api_key, version, correlation_id, response }))
}

async fn write_responses(writer: OwnedWriteHalf, mut pending_rx: mpsc::Receiver<Pending>, peer: SocketAddr) {
    let mut writer = BufWriter::with_capacity(64 * 1024, writer);
    let mut in_flight = FuturesOrdered::new();
    let mut reader_done = false;
    loop {
        tokio::select! {
            // Stop taking requests while MAX_IN_FLIGHT are pending: the channel then fills and the
            // reader stops reading the socket, so one client cannot park unbounded work.
            next = pending_rx.recv(), if !reader_done && in_flight.len() < MAX_IN_FLIGHT => match next {
                Some(p) => in_flight.push_back(p.response.map(move |r| (p.api_key, p.version, p.correlation_id, r))),
                None => reader_done = true,
            },
            Some(first) = in_flight.next(), if !in_flight.is_empty() => {
                // Write every response that is already complete, then flush once: pipelined responses
                // share a syscall, and none waits behind a slower one still in flight.
                let mut ready = Some(first);
                while let Some((api_key, version, correlation_id, response)) = ready.take() {
                    let frame = match encode_response(api_key, version, correlation_id, &response) {
                        Ok(frame) => frame,
                        Err(e) => {
                            tracing::error!(%peer, error = %e, "cannot encode response; closing connection");
                            return;
                        }
                    };
                    if writer.write_all(&frame).await.is_err() {
                        return;
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
}
