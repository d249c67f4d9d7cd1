//! OffsetDelete (API key 47, KIP-496): delete some committed offsets of a group
//! (`kafka-consumer-groups --delete-offsets`).
//!
//! Allowed for an Empty group; for an active consumer group only for topics none of its members
//! subscribes to (GROUP_SUBSCRIBED_TO_TOPIC otherwise); an active group of another protocol type gets
//! NON_EMPTY_GROUP. On a group-level error the response carries no topics, as Kafka's does.
//!
//! References:
//! - <https://kafka.apache.org/protocol#The_Messages_OffsetDelete>
//! - KIP-496: <https://cwiki.apache.org/confluence/display/KAFKA/KIP-496%3A+Administrative+API+to+delete+consumer+offsets>

use std::future::Future;
use std::sync::Arc;

use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse, RequestHeader};

use crate::broker::Broker;
use crate::group::{error_code, TopicPartition};

pub const VERSIONS: (i16, i16) = (0, 0);

pub fn handle(
    broker: &Arc<Broker>,
    _header: &RequestHeader,
    request: OffsetDeleteRequest,
) -> impl Future<Output = OffsetDeleteResponse> + Send + 'static {
    let partitions: Vec<TopicPartition> = request
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| TopicPartition::new(t.name.0.to_string(), p.partition_index)))
        .collect();
    let outcome = broker.groups.delete_offsets(&request.group_id.0, &partitions);
    async move {
        let mut response = OffsetDeleteResponse::default();
        let errors = match outcome {
            Err(e) => {
                response.error_code = e.code();
                return response;
            }
            Ok(outcome) => outcome.wait().await,
        };
        let mut errors = errors.into_iter();
        response.topics = request
            .topics
            .into_iter()
            .map(|t| {
                let mut topic = OffsetDeleteResponseTopic::default();
                topic.name = t.name;
                topic.partitions = t
                    .partitions
                    .into_iter()
                    .map(|p| {
                        let mut partition = OffsetDeleteResponsePartition::default();
                        partition.partition_index = p.partition_index;
                        partition.error_code = error_code(errors.next().flatten());
                        partition
                    })
                    .collect();
                topic
            })
            .collect();
        response
    }
}
