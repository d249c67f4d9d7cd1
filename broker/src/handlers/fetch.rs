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
//! On a connection that sends with `sendfile` (plain TCP, `Session::sendfile`) the record sets of Fetch
//! v4+ are left in their segment files (`PartitionLog::read_in_place`) and go with the reply as
//! `Reply::files`; small ones are still read, as one write of the whole response is cheaper than a
//! `sendfile` of its own. Older versions down-convert, which needs the bytes.
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
use kafka_protocol::messages::{FetchRequest, FetchResponse, RequestHeader, ResponseKind};
use kafka_protocol::ResponseError;
use tokio::time::Instant;

use super::{code, Reply};
use crate::broker::Broker;
use crate::protocol::message_set;
use crate::storage::{FileRecords, ReadError};

pub const VERSIONS: (i16, i16) = (0, 12);

/// Record sets shorter than this are read into the response even when the connection could send them
/// with `sendfile`: a consumer at the end of the log gets one small write, not three.
const SENDFILE_FROM: u64 = 16 * 1024;

/// How a round reads each partition's records.
#[derive(Clone, Copy)]
enum Reading {
    /// Into memory, down-converted to this message format for Fetch v0–v3 (KIP-32).
    Copy { message_format: Option<i8> },
    /// Left in the segment file where large enough (`SENDFILE_FROM`).
    InPlace,
}

pub fn handle(
    broker: &Arc<Broker>,
    header: &RequestHeader,
    request: FetchRequest,
    sendfile: bool,
) -> impl Future<Output = Reply> + Send + 'static {
    let broker = broker.clone();
    let reading = match legacy_message_format(header.request_api_version) {
        None if sendfile => Reading::InPlace,
        message_format => Reading::Copy { message_format },
    };
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
                    read_all(&broker, &request.topics, request.max_bytes, reading)
                })
                .await
                {
                    Ok(round) => round,
                    Err(e) => {
                        tracing::error!(error = %e, "fetch read task failed");
                        let failed = FetchResponse::default().with_error_code(code(ResponseError::UnknownServerError));
                        return Reply::from(ResponseKind::Fetch(failed));
                    }
                }
            };
            // min_bytes = 0 means "answer at once", as in Kafka.
            if round.bytes >= min_bytes || round.has_error || Instant::now() >= deadline {
                let response = FetchResponse::default().with_session_id(0).with_responses(round.topics);
                return Reply { body: ResponseKind::Fetch(response), files: round.files };
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
    /// One per partition of `topics`, in order: the records left in their file, if any.
    files: Vec<Option<FileRecords>>,
    bytes: usize,
    has_error: bool,
}

/// One partition's read: the records either in memory or in their file.
struct Read {
    records: bytes::Bytes,
    file: Option<FileRecords>,
    high_watermark: i64,
    log_start_offset: i64,
}

impl Read {
    fn len(&self) -> usize {
        self.records.len() + self.file.as_ref().map_or(0, |f| f.len() as usize)
    }
}

fn read_partition(
    log: &crate::storage::PartitionLog,
    offset: i64,
    limit: usize,
    allow_oversize: bool,
    reading: Reading,
) -> Result<Read, ReadError> {
    match reading {
        Reading::Copy { message_format } => {
            let mut read = log.read(offset, limit.max(1), allow_oversize)?;
            // Down-conversion is bounded by the same limit as the read it converts.
            if let Some(magic) = message_format {
                read.records = message_set::down_convert(&read.records, magic, offset, limit.max(1))
                    .map_err(|e| ReadError::Io(std::io::Error::other(e)))?;
            }
            let (high_watermark, log_start_offset) = (read.high_watermark, read.log_start_offset);
            Ok(Read { records: read.records, file: None, high_watermark, log_start_offset })
        }
        Reading::InPlace => {
            let read = log.read_in_place(offset, limit.max(1), allow_oversize)?;
            let (high_watermark, log_start_offset) = (read.high_watermark, read.log_start_offset);
            let (records, file) = match read.records {
                Some(file) if file.len() < SENDFILE_FROM => (file.read()?, None),
                file => (bytes::Bytes::new(), file),
            };
            Ok(Read { records, file, high_watermark, log_start_offset })
        }
    }
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

fn read_all(broker: &Broker, topics: &[FetchTopic], max_bytes: i32, reading: Reading) -> Round {
    let mut remaining = if max_bytes <= 0 { usize::MAX } else { max_bytes as usize };
    let mut round = Round { topics: Vec::with_capacity(topics.len()), files: Vec::new(), bytes: 0, has_error: false };
    for topic in topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for wanted in &topic.partitions {
            round.files.push(None);
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
            match read_partition(&log, wanted.fetch_offset, limit, round.bytes == 0, reading) {
                Ok(read) => {
                    round.bytes += read.len();
                    remaining = remaining.saturating_sub(read.len());
                    *round.files.last_mut().expect("pushed above") = read.file;
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
