//! ListOffsets: earliest (-2), latest (-1), or the first offset at or after a timestamp.
//!
//! A timestamp lookup finds the first batch whose newest record is at or after the timestamp (through
//! the time index), then decodes that one batch, decompressing it if needed, to answer with the exact
//! first record at or after the timestamp, as Kafka does.
//!
//! References: <https://kafka.apache.org/protocol#The_Messages_ListOffsets>, KIP-79.

use std::future::{ready, Future};
use std::sync::Arc;

use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse, RequestHeader};
use kafka_protocol::records::{RecordBatchDecoder, TimestampType};
use kafka_protocol::ResponseError;

use super::code;
use crate::broker::Broker;
use crate::storage::PartitionLog;

/// v7 adds the max-timestamp query (KIP-734), which we do not implement.
pub const VERSIONS: (i16, i16) = (0, 6);

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

pub fn handle(
    broker: &Arc<Broker>,
    _header: &RequestHeader,
    request: ListOffsetsRequest,
) -> impl Future<Output = ListOffsetsResponse> + Send + 'static {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|wanted| {
                    let response = ListOffsetsPartitionResponse::default().with_partition_index(wanted.partition_index);
                    let Some(log) = broker.logs.partition(&topic.name, wanted.partition_index) else {
                        return response.with_error_code(code(ResponseError::UnknownTopicOrPartition));
                    };
                    match wanted.timestamp {
                        LATEST => response.with_offset(log.high_watermark()).with_timestamp(-1),
                        EARLIEST => response.with_offset(log.log_start_offset()).with_timestamp(-1),
                        ts if ts < 0 => response.with_error_code(code(ResponseError::InvalidRequest)),
                        ts => match log.offset_for_timestamp(ts) {
                            Ok(Some((batch_offset, batch_timestamp))) => {
                                let (offset, timestamp) = first_record_at_or_after(&log, batch_offset, ts)
                                    .unwrap_or((batch_offset, batch_timestamp));
                                // After DeleteRecords the log may start inside the batch found.
                                response.with_offset(offset.max(log.log_start_offset())).with_timestamp(timestamp)
                            }
                            // Kafka's answer when no record is that new: offset and timestamp -1.
                            Ok(None) => response.with_offset(-1).with_timestamp(-1),
                            Err(e) => {
                                tracing::error!(topic = %topic.name.0, error = %e, "timestamp lookup failed");
                                response.with_error_code(code(ResponseError::KafkaStorageError))
                            }
                        },
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default().with_name(topic.name).with_partitions(partitions)
        })
        .collect();
    ready(ListOffsetsResponse::default().with_topics(topics))
}

/// The offset and timestamp of the first record at or after `timestamp` in the batch at `batch_offset`.
/// `None` (fall back to the batch's own offset, which is never late) if the batch cannot be decoded.
fn first_record_at_or_after(log: &PartitionLog, batch_offset: i64, timestamp: i64) -> Option<(i64, i64)> {
    let mut records = log.read(batch_offset, 1, true).ok()?.records;
    let batch = RecordBatchDecoder::decode(&mut records).ok()?;
    // A LogAppendTime batch's records all carry the batch's append time (its maxTimestamp), whatever
    // create times they were produced with: the batch's own answer is the record's.
    if batch.records.first().is_some_and(|r| r.timestamp_type == TimestampType::LogAppend) {
        return None;
    }
    batch.records.iter().find(|r| r.offset >= batch_offset && r.timestamp >= timestamp).map(|r| (r.offset, r.timestamp))
}
