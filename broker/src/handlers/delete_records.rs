//! DeleteRecords: move a partition's log start (`kafka-delete-records`); offset -1 means the high
//! watermark. The answer carries the new log start ("low watermark").
//!
//! References: <https://kafka.apache.org/protocol#The_Messages_DeleteRecords>, KIP-107.

use std::future::{ready, Future};
use std::sync::Arc;

use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse, RequestHeader};
use kafka_protocol::ResponseError;

use super::code;
use crate::broker::Broker;
use crate::storage::DeleteRecordsError;

pub const VERSIONS: (i16, i16) = (0, 2);

pub fn handle(
    broker: &Arc<Broker>,
    _header: &RequestHeader,
    request: DeleteRecordsRequest,
) -> impl Future<Output = DeleteRecordsResponse> + Send + 'static {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let result = DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
                    let Some(log) = broker.logs.partition(&topic.name, p.partition_index) else {
                        return result.with_low_watermark(-1).with_error_code(code(ResponseError::UnknownTopicOrPartition));
                    };
                    match broker.logs.delete_records(&log, p.offset) {
                        Ok(low_watermark) => {
                            tracing::info!(topic = %topic.name.0, partition = p.partition_index, low_watermark, "records deleted");
                            result.with_low_watermark(low_watermark)
                        }
                        Err(DeleteRecordsError::OffsetOutOfRange { .. }) => {
                            result.with_low_watermark(-1).with_error_code(code(ResponseError::OffsetOutOfRange))
                        }
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default().with_name(topic.name).with_partitions(partitions)
        })
        .collect();
    ready(DeleteRecordsResponse::default().with_topics(topics))
}
