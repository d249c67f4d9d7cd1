//! One broker's produce pipeline: a task that writes Produce requests as the sender hands them over, and
//! a task that reads their responses in order (Kafka answers a connection's requests in the order it
//! received them) and hands each back as an [`Event`]. When either side fails, the link reports itself
//! closed once; the sender then retries every batch it had in flight on it.
//!
//! Both sides are bounded by the request timeout: a request must be written within it, and answered
//! within it once written. A write blocks when the broker stops reading (its receive window is zero) or
//! its host is gone without a reset; unbounded, it would stall the partition until TCP gave up, minutes
//! later. librdkafka times out requests still queued or partly sent the same way
//! (`rd_kafka_broker_timeout_scan`). A request cut off mid-frame leaves the connection unusable, so the
//! link closes.

use std::time::Duration;

use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use tokio::sync::mpsc;

use crate::connection::{Connection, ConnectionError, RequestWriter, ResponseReader};

/// A request for the writer: the sender's token for it and the request.
pub(crate) struct Outgoing {
    pub token: u64,
    pub request: ProduceRequest,
}

/// What a link tells the sender.
pub(crate) enum Event {
    /// The answer to the request `token`; `None` with `acks=0`, which has none.
    Answered { token: u64, response: Option<ProduceResponse> },
    /// The connection failed or was closed: requests without an answer will get none.
    Closed { link: u64, reason: String },
}

/// The sender's handle on a link.
pub(crate) struct Link {
    pub requests: mpsc::UnboundedSender<Outgoing>,
}

/// Starts the writer and reader tasks of an open connection.
pub(crate) fn start(
    link: u64,
    connection: Connection,
    version: i16,
    expects_answers: bool,
    request_timeout: Duration,
    events: mpsc::UnboundedSender<Event>,
) -> Link {
    let (requests, outgoing) = mpsc::unbounded_channel();
    let (writer, reader) = connection.split();
    let (sent, awaited) = mpsc::unbounded_channel();
    let sent = expects_answers.then_some(sent);
    tokio::spawn(write(link, writer, version, outgoing, sent, request_timeout, events.clone()));
    tokio::spawn(read(link, reader, version, awaited, request_timeout, events));
    Link { requests }
}

/// Writes the requests of `outgoing` in turn; each written one goes to `sent`, to await its answer, or
/// (`sent` is `None` with `acks=0`) counts as answered at once.
async fn write(
    link: u64,
    mut writer: RequestWriter,
    version: i16,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
    sent: Option<mpsc::UnboundedSender<(u64, i32)>>,
    request_timeout: Duration,
    events: mpsc::UnboundedSender<Event>,
) {
    while let Some(Outgoing { token, request }) = outgoing.recv().await {
        let Ok(written) = tokio::time::timeout(request_timeout, writer.send(&request, version)).await else {
            let reason = format!(
                "a produce request could not be written within {request_timeout:?} (the broker stopped reading it, \
                 or the network to it is down)"
            );
            let _ = events.send(Event::Closed { link, reason });
            return;
        };
        match (written, &sent) {
            (Ok(correlation_id), Some(sent)) => {
                if sent.send((token, correlation_id)).is_err() {
                    return; // the reader failed and reported it
                }
            }
            (Ok(_), None) => {
                let _ = events.send(Event::Answered { token, response: None });
            }
            (Err(error), _) => {
                closed(link, &error, &events);
                return;
            }
        }
    }
}

async fn read(
    link: u64,
    mut reader: ResponseReader,
    version: i16,
    mut awaited: mpsc::UnboundedReceiver<(u64, i32)>,
    request_timeout: Duration,
    events: mpsc::UnboundedSender<Event>,
) {
    while let Some((token, correlation_id)) = awaited.recv().await {
        let answer = tokio::time::timeout(request_timeout, reader.receive::<ProduceRequest>(version, correlation_id));
        match answer.await {
            Ok(Ok(response)) => {
                if events.send(Event::Answered { token, response: Some(response) }).is_err() {
                    return;
                }
            }
            Ok(Err(error)) => {
                closed(link, &error, &events);
                return;
            }
            Err(_) => {
                let reason = format!("no answer to a produce request within {request_timeout:?}");
                let _ = events.send(Event::Closed { link, reason });
                return;
            }
        }
    }
}

fn closed(link: u64, error: &ConnectionError, events: &mpsc::UnboundedSender<Event>) {
    let _ = events.send(Event::Closed { link, reason: error.to_string() });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::Security;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, ResponseHeader, TopicName};
    use kafka_protocol::protocol::{decode_request_header_from_buffer, Encodable, StrBytes};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpSocket;

    /// A broker that answers ApiVersions, then never reads again: its receive window fills and the
    /// client's writes block, as with a broker that hangs or a host gone without a reset.
    async fn broker_that_stops_reading(held: tokio::sync::oneshot::Receiver<()>) -> String {
        let socket = TcpSocket::new_v4().unwrap();
        // Small, so that the window closes after little; accepted sockets inherit it.
        socket.set_recv_buffer_size(4096).unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(1).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let size = socket.read_i32().await.unwrap();
            let mut body = vec![0; size as usize];
            socket.read_exact(&mut body).await.unwrap();
            let header = decode_request_header_from_buffer(&mut Bytes::from(body)).unwrap();
            let produce = ApiVersion::default().with_api_key(ApiKey::Produce as i16).with_max_version(9);
            let mut frame = BytesMut::new();
            ResponseHeader::default().with_correlation_id(header.correlation_id).encode(&mut frame, 0).unwrap();
            let answer = ApiVersionsResponse::default().with_api_keys(vec![produce]);
            answer.encode(&mut frame, header.request_api_version).unwrap();
            socket.write_all(&[&(frame.len() as i32).to_be_bytes()[..], &frame].concat()).await.unwrap();
            let _ = held.await;
            drop(socket);
        });
        addr
    }

    /// A request whose write blocks (the broker stopped reading) closes the link at the request timeout,
    /// so the sender reconnects and retries. Before, only the wait for an answer was bounded, and it
    /// starts once the request is written: the link hung, and the partition with it.
    #[tokio::test]
    async fn a_request_the_broker_does_not_read_times_out() {
        let (release, held) = tokio::sync::oneshot::channel();
        let addr = broker_that_stops_reading(held).await;
        let connection =
            Connection::open(&addr, &Security::plaintext(), "test", Duration::from_secs(10)).await.unwrap();
        let version = connection.version(ApiKey::Produce, (3, 9)).unwrap();
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let request_timeout = Duration::from_secs(1);
        let link = start(7, connection, version, true, request_timeout, events_tx);
        // Far more than the socket buffers of both ends hold.
        let records = Bytes::from(vec![0u8; 32 << 20]);
        let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(1000).with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("logs")))
                .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(records))]),
        ]);
        link.requests.send(Outgoing { token: 1, request }).unwrap();
        let event = tokio::time::timeout(Duration::from_secs(30), events.recv()).await;
        match event.expect("the link neither closed nor answered: the blocked write was not timed out") {
            Some(Event::Closed { link: 7, reason }) => {
                assert!(reason.contains("could not be written within 1s"), "{reason}");
            }
            Some(Event::Closed { link, reason }) => panic!("closed link {link}: {reason}"),
            Some(Event::Answered { token, .. }) => panic!("request {token} answered by a broker that reads nothing"),
            None => panic!("the link's tasks ended without a word"),
        }
        drop(release);
    }
}
