//! One broker's produce pipeline: a task that writes Produce requests as the sender hands them over, and
//! a task that reads their responses in order (Kafka answers a connection's requests in the order it
//! received them) and hands each back as an [`Event`]. When either side fails, the link reports itself
//! closed once; the sender then retries every batch it had in flight on it.

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
    tokio::spawn(write(link, writer, version, outgoing, sent, expects_answers, events.clone()));
    tokio::spawn(read(link, reader, version, awaited, request_timeout, events));
    Link { requests }
}

async fn write(
    link: u64,
    mut writer: RequestWriter,
    version: i16,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
    sent: mpsc::UnboundedSender<(u64, i32)>,
    expects_answers: bool,
    events: mpsc::UnboundedSender<Event>,
) {
    while let Some(Outgoing { token, request }) = outgoing.recv().await {
        match writer.send(&request, version).await {
            Ok(correlation_id) if expects_answers => {
                if sent.send((token, correlation_id)).is_err() {
                    return; // the reader failed and reported it
                }
            }
            Ok(_) => {
                let _ = events.send(Event::Answered { token, response: None });
            }
            Err(error) => {
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
