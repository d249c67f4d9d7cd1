//! DeleteTopics, by name (v1-6) or by topic id (v6).
//!
//! References: <https://kafka.apache.org/protocol#The_Messages_DeleteTopics>, KIP-516.

use std::future::{ready, Future};
use std::sync::Arc;

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, RequestHeader, TopicName};
use kafka_protocol::ResponseError;

use super::{code, str_bytes};
use crate::broker::Broker;
use crate::storage::TopicError;

pub const VERSIONS: (i16, i16) = (0, 6);

pub fn handle(
    broker: &Arc<Broker>,
    header: &RequestHeader,
    request: DeleteTopicsRequest,
) -> impl Future<Output = DeleteTopicsResponse> + Send + 'static {
    let version = header.request_api_version;
    let wanted: Vec<(Option<TopicName>, uuid::Uuid)> = if version >= 6 {
        request.topics.into_iter().map(|t| (t.name, t.topic_id)).collect()
    } else {
        request.topic_names.into_iter().map(|name| (Some(name), uuid::Uuid::nil())).collect()
    };
    let responses = wanted
        .into_iter()
        .map(|(name, id)| {
            let name = name
                .map(|n| n.to_string())
                .or_else(|| broker.logs.topics().into_iter().find(|meta| meta.id == id).map(|meta| meta.name));
            let result = DeletableTopicResult::default().with_topic_id(id);
            let Some(name) = name else {
                return result.with_name(None).with_error_code(code(ResponseError::UnknownTopicId));
            };
            let result = result.with_name(Some(TopicName(str_bytes(name.clone()))));
            match broker.logs.delete_topic(&name) {
                Ok(()) => {
                    broker.groups.delete_topic_offsets(&name, crate::broker::steady_clock_ms());
                    tracing::info!(topic = %name, "deleted topic");
                    result
                }
                Err(e) => {
                    let error = match e {
                        TopicError::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition,
                        _ => ResponseError::UnknownServerError,
                    };
                    let result = result.with_error_code(code(error));
                    if version >= 5 {
                        result.with_error_message(Some(str_bytes(e.to_string())))
                    } else {
                        result
                    }
                }
            }
        })
        .collect();
    ready(DeleteTopicsResponse::default().with_responses(responses))
}
