//! CreatePartitions: grow a topic (`kafka-topics --alter --partitions N`). Shrinking is refused with
//! INVALID_PARTITIONS, as Kafka does; an explicit assignment may only name this node.
//!
//! References: <https://kafka.apache.org/protocol#The_Messages_CreatePartitions>, KIP-195.

use std::future::{ready, Future};
use std::sync::Arc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse, RequestHeader};
use kafka_protocol::ResponseError;

use super::{code, str_bytes, topic_error_code};
use crate::broker::Broker;

pub const VERSIONS: (i16, i16) = (0, 3);

pub fn handle(
    broker: &Arc<Broker>,
    _header: &RequestHeader,
    request: CreatePartitionsRequest,
) -> impl Future<Output = CreatePartitionsResponse> + Send + 'static {
    let node = broker.node.node_id;
    let results = request
        .topics
        .into_iter()
        .map(|topic| {
            let result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
            let foreign = topic
                .assignments
                .iter()
                .flatten()
                .find(|a| a.broker_ids.iter().map(|b| b.0).collect::<Vec<_>>() != [node]);
            let outcome = match foreign {
                Some(a) => Err((
                    ResponseError::InvalidReplicaAssignment,
                    format!(
                        "new partitions assigned to brokers {:?}; this cluster has one broker, node {node}",
                        a.broker_ids
                    ),
                )),
                None => broker
                    .logs
                    .create_partitions(&topic.name, topic.count, request.validate_only)
                    .map(drop)
                    .map_err(|e| (topic_error_code(&e), e.to_string())),
            };
            match outcome {
                Ok(()) => result,
                Err((error, message)) => {
                    tracing::info!(topic = %topic.name.0, %message, "create partitions refused");
                    result.with_error_code(code(error)).with_error_message(Some(str_bytes(message)))
                }
            }
        })
        .collect();
    ready(CreatePartitionsResponse::default().with_results(results))
}
