//! Fetch: serve stored batches byte for byte, with Kafka's long poll.
//!
//! A fetch returns at once if it has `min_bytes`, hit an error, or `max_wait_ms` passed; otherwise it
//! waits for the high watermark of any partition to move (`LogManager::data_arrived`) and reads again.
//! Each connection runs its own futures, so one consumer's long poll never holds up another client.
//!
//! Limits follow KIP-74: `max_bytes` bounds the whole response and `partition_max_bytes` each partition,
//! but the first batch of the first non-empty partition is returned whole even if it is larger, so a
//! consumer can always make progress.
//!
//! There are no fetch sessions (KIP-227): every response has session id 0, which tells clients to keep
//! sending full fetch requests.
//!
//! References: <https://kafka.apache.org/protocol#The_Messages_Fetch>, KIP-74, KIP-227, KIP-392.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::FetchTopic;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, RequestHeader};
use kafka_protocol::ResponseError;
use tokio::time::Instant;

use super::code;
use crate::broker::Broker;
use crate::protocol::message_set;
use crate::storage::ReadError;

pub const VERSIONS: (i16, i16) = (0, 12);

pub fn handle(
    broker: &Arc<Broker>,
    header: &RequestHeader,
    request: FetchRequest,
) -> impl Future<Output = FetchResponse> + Send + 'static {
    let broker = broker.clone();
    let message_format = legacy_message_format(header.request_api_version);
    let request = Arc::new(request);
    async move {
        let max_wait = Duration::from_millis(request.max_wait_ms.max(0) as u64);
        let deadline = Instant::now() + max_wait;
        let min_bytes = request.min_bytes.max(0) as usize;
        let arrived = broker.logs.data_arrived();
        loop {
            // Register interest before reading, so data that lands between the read and the wait
            // still wakes us.
            let notified = arrived.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            // Reads may touch the disk when the page cache is cold; keep them off the async workers so
            // heartbeats and other connections are never held up behind them.
            let round = {
                let (broker, request) = (broker.clone(), request.clone());
                match tokio::task::spawn_blocking(move || {
                    read_all(&broker, &request.topics, request.max_bytes, message_format)
                })
                .await
                {
                    Ok(round) => round,
                    Err(e) => {
                        tracing::error!(error = %e, "fetch read task failed");
                        return FetchResponse::default().with_error_code(code(ResponseError::UnknownServerError));
                    }
                }
            };
            // min_bytes = 0 means "answer at once", as in Kafka.
            if round.bytes >= min_bytes || round.has_error || Instant::now() >= deadline {
                return FetchResponse::default().with_session_id(0).with_responses(round.topics);
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}

struct Round {
    topics: Vec<FetchableTopicResponse>,
    bytes: usize,
    has_error: bool,
}

/// The message format an old fetcher reads: v0 for Fetch v0–v1, v1 for Fetch v2–v3 (KIP-32); `None`
/// for Fetch v4+, which reads record batches as stored.
fn legacy_message_format(version: i16) -> Option<i8> {
    match version {
        0 | 1 => Some(0),
        2 | 3 => Some(1),
        _ => None,
    }
}

fn read_all(broker: &Broker, topics: &[FetchTopic], max_bytes: i32, message_format: Option<i8>) -> Round {
    let mut remaining = if max_bytes <= 0 { usize::MAX } else { max_bytes as usize };
    let mut round = Round { topics: Vec::with_capacity(topics.len()), bytes: 0, has_error: false };
    for topic in topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for wanted in &topic.partitions {
            let response = PartitionData::default().with_partition_index(wanted.partition);
            let Some(log) = broker.logs.partition(&topic.topic, wanted.partition) else {
                round.has_error = true;
                partitions.push(failed(response, ResponseError::UnknownTopicOrPartition));
                continue;
            };
            // Until something has been returned, the first batch may exceed the limits (KIP-74) so the
            // consumer always makes progress; after that they hold strictly (`allow_oversize`).
            let limit = (wanted.partition_max_bytes.max(0) as usize).min(remaining);
            if limit == 0 && round.bytes > 0 {
                partitions.push(
                    response
                        .with_high_watermark(log.high_watermark())
                        .with_last_stable_offset(log.high_watermark())
                        .with_log_start_offset(log.log_start_offset())
                        .with_records(Some(Default::default())),
                );
                continue;
            }
            let read = log.read(wanted.fetch_offset, limit.max(1), round.bytes == 0).and_then(|mut read| {
                // Down-conversion is bounded by the same limit as the read it converts.
                if let Some(magic) = message_format {
                    read.records = message_set::down_convert(&read.records, magic, wanted.fetch_offset, limit.max(1))
                        .map_err(|e| ReadError::Io(std::io::Error::other(e)))?;
                }
                Ok(read)
            });
            match read {
                Ok(read) => {
                    round.bytes += read.records.len();
                    remaining = remaining.saturating_sub(read.records.len());
                    partitions.push(
                        response
                            .with_high_watermark(read.high_watermark)
                            .with_last_stable_offset(read.high_watermark)
                            .with_log_start_offset(read.log_start_offset)
                            .with_records(Some(read.records)),
                    );
                }
                Err(ReadError::OffsetOutOfRange { .. }) => {
                    round.has_error = true;
                    partitions.push(failed(response, ResponseError::OffsetOutOfRange));
                }
                Err(ReadError::Io(e)) => {
                    tracing::error!(topic = %topic.topic.0, partition = wanted.partition, error = %e, "fetch read failed");
                    round.has_error = true;
                    partitions.push(failed(response, ResponseError::KafkaStorageError));
                }
            }
        }
        round
            .topics
            .push(FetchableTopicResponse::default().with_topic(topic.topic.clone()).with_partitions(partitions));
    }
    round
}

/// Kafka answers a failed partition with unknown (-1) offsets and no records.
fn failed(response: PartitionData, error: ResponseError) -> PartitionData {
    response
        .with_error_code(code(error))
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_records(Some(Default::default()))
}
