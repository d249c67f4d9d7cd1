//! AlterConfigs (legacy: the request's set replaces a topic's overrides) and, shared with
//! IncrementalAlterConfigs, how a new set of topic configs is applied: validated like CreateTopics',
//! persisted, and in force for the next append and retention round. Broker configs come from the
//! pipeline file and are not changed at run time; such requests are refused with a message saying so.
//!
//! References: <https://kafka.apache.org/protocol#The_Messages_AlterConfigs>, KIP-133.

use std::collections::BTreeMap;
use std::future::{ready, Future};
use std::sync::Arc;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse, RequestHeader};
use kafka_protocol::ResponseError;

use super::{code, str_bytes, topic_error_code};
use crate::broker::Broker;

pub const VERSIONS: (i16, i16) = (0, 2);

/// ConfigResource.Type: TOPIC.
pub(crate) const RESOURCE_TOPIC: i8 = 2;
/// ConfigResource.Type: BROKER and BROKER_LOGGER.
const RESOURCE_BROKERS: [i8; 2] = [4, 8];

pub fn handle(
    broker: &Arc<Broker>,
    _header: &RequestHeader,
    request: AlterConfigsRequest,
) -> impl Future<Output = AlterConfigsResponse> + Send + 'static {
    let responses = request
        .resources
        .into_iter()
        .map(|resource| {
            let configs = resource
                .configs
                .iter()
                .filter_map(|c| c.value.as_ref().map(|v| (c.name.to_string(), v.to_string())))
                .collect();
            let outcome =
                apply(broker, resource.resource_type, &resource.resource_name, |_| Ok(configs), request.validate_only);
            respond(resource.resource_type, &resource.resource_name, outcome)
        })
        .collect();
    ready(AlterConfigsResponse::default().with_responses(responses))
}

pub(crate) type Outcome = Result<(), (ResponseError, String)>;

/// Computes a topic's new overrides from its current ones with `change`, then applies them.
pub(crate) fn apply(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    change: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, (ResponseError, String)>,
    validate_only: bool,
) -> Outcome {
    if RESOURCE_BROKERS.contains(&resource_type) {
        return Err((
            ResponseError::InvalidRequest,
            "broker configs are read from the [broker] section of the pipeline file; change them there and restart"
                .into(),
        ));
    }
    if resource_type != RESOURCE_TOPIC {
        return Err((ResponseError::InvalidRequest, format!("unknown resource type {resource_type}")));
    }
    let Some(meta) = broker.logs.topic(name) else {
        return Err((ResponseError::UnknownTopicOrPartition, format!("unknown topic '{name}'")));
    };
    let next = change(&meta.configs)?;
    broker
        .logs
        .alter_topic_configs(name, next, validate_only)
        .map(drop)
        .map_err(|e| (topic_error_code(&e), e.to_string()))
}

pub(crate) fn respond(resource_type: i8, name: &str, outcome: Outcome) -> AlterConfigsResourceResponse {
    let response =
        AlterConfigsResourceResponse::default().with_resource_type(resource_type).with_resource_name(str_bytes(name));
    match outcome {
        Ok(()) => response,
        Err((error, message)) => {
            tracing::info!(resource = name, %message, "alter configs refused");
            response.with_error_code(code(error)).with_error_message(Some(str_bytes(message)))
        }
    }
}
