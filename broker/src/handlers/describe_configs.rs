//! DescribeConfigs for topics (effective values: topic overrides over broker defaults) and for the broker.
//!
//! References: <https://kafka.apache.org/protocol#The_Messages_DescribeConfigs>, KIP-226.

use std::future::{ready, Future};
use std::sync::Arc;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse, RequestHeader};
use kafka_protocol::ResponseError;

use super::create_topics::effective_config_entries;
use super::{code, str_bytes};
use crate::broker::Broker;

pub const VERSIONS: (i16, i16) = (0, 4);

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SOURCE_STATIC_BROKER: i8 = 4;

pub fn handle(
    broker: &Arc<Broker>,
    _header: &RequestHeader,
    request: DescribeConfigsRequest,
) -> impl Future<Output = DescribeConfigsResponse> + Send + 'static {
    let results = request.resources.into_iter().map(|resource| describe(broker, resource)).collect();
    ready(DescribeConfigsResponse::default().with_results(results))
}

fn describe(broker: &Broker, resource: DescribeConfigsResource) -> DescribeConfigsResult {
    let result = DescribeConfigsResult::default()
        .with_resource_type(resource.resource_type)
        .with_resource_name(resource.resource_name.clone());
    let entries = match resource.resource_type {
        RESOURCE_TOPIC => match broker.logs.topic(&resource.resource_name) {
            Some(meta) => effective_config_entries(broker, &meta),
            None => {
                return result
                    .with_error_code(code(ResponseError::UnknownTopicOrPartition))
                    .with_error_message(Some(str_bytes(format!("unknown topic '{}'", &*resource.resource_name))))
            }
        },
        RESOURCE_BROKER => broker_entries(broker),
        other => {
            return result
                .with_error_code(code(ResponseError::InvalidRequest))
                .with_error_message(Some(str_bytes(format!("resource type {other} is not supported"))))
        }
    };
    let wanted = resource.configuration_keys.map(|keys| keys.into_iter().map(|k| k.to_string()).collect::<Vec<_>>());
    let configs = entries
        .into_iter()
        .filter(|(name, _, _)| wanted.as_ref().is_none_or(|keys| keys.contains(name)))
        .map(|(name, value, source)| {
            DescribeConfigsResourceResult::default()
                .with_name(str_bytes(name))
                .with_value(Some(str_bytes(value)))
                .with_config_source(source)
        })
        .collect();
    result.with_configs(configs)
}

fn broker_entries(broker: &Broker) -> Vec<(String, String, i8)> {
    let c = &broker.config;
    [
        ("num.partitions", c.num_partitions.to_string()),
        ("auto.create.topics.enable", c.auto_create_topics_enable.to_string()),
        ("log.dirs", c.log_dirs.display().to_string()),
        ("log.retention.hours", c.log_retention_hours.to_string()),
        ("log.retention.bytes", c.log_retention_bytes.to_string()),
        ("log.segment.bytes", c.log_segment_bytes.to_string()),
        ("log.roll.hours", c.log_roll_hours.to_string()),
        ("message.max.bytes", c.message_max_bytes.to_string()),
        ("socket.request.max.bytes", c.socket_request_max_bytes.to_string()),
        ("offsets.retention.minutes", c.offsets_retention_minutes.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v, SOURCE_STATIC_BROKER))
    .collect()
}
