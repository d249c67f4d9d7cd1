//! CreateTopics. A single node holds one replica of everything, so a replication factor above 1 is
//! refused with INVALID_REPLICATION_FACTOR, as a one-broker Kafka cluster would.
//!
//! References: <https://kafka.apache.org/protocol#The_Messages_CreateTopics>, KIP-525 (configs in the
//! response, v5+).

use std::collections::BTreeMap;
use std::future::{ready, Future};
use std::sync::Arc;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, RequestHeader};
use kafka_protocol::ResponseError;

use super::{code, str_bytes, topic_error_code};
use crate::broker::Broker;
use crate::storage::{TopicError, TopicMeta};

pub const VERSIONS: (i16, i16) = (0, 7);

/// Kafka's ConfigSource values for DescribeConfigs and CreateTopics responses.
pub(crate) const SOURCE_TOPIC_OVERRIDE: i8 = 1;
pub(crate) const SOURCE_DEFAULT: i8 = 5;

pub fn handle(
    broker: &Arc<Broker>,
    header: &RequestHeader,
    request: CreateTopicsRequest,
) -> impl Future<Output = CreateTopicsResponse> + Send + 'static {
    let version = header.request_api_version;
    let results = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.clone();
            let result = CreatableTopicResult::default().with_name(name.clone());
            match create(broker, topic, request.validate_only) {
                Ok(meta) => {
                    let result = result.with_topic_id(meta.id);
                    if version >= 5 {
                        result
                            .with_num_partitions(meta.partitions)
                            .with_replication_factor(1)
                            .with_configs(Some(effective_configs(broker, &meta)))
                    } else {
                        result
                    }
                }
                Err((error, message)) => {
                    tracing::info!(topic = %name.0, %message, "create topic refused");
                    result.with_error_code(code(error)).with_error_message(Some(str_bytes(message)))
                }
            }
        })
        .collect();
    ready(CreateTopicsResponse::default().with_topics(results))
}

fn create(broker: &Broker, topic: CreatableTopic, validate_only: bool) -> Result<TopicMeta, (ResponseError, String)> {
    if topic.replication_factor > 1 {
        return Err((
            ResponseError::InvalidReplicationFactor,
            format!("replication factor {} is larger than the 1 available broker", topic.replication_factor),
        ));
    }
    // An explicit assignment (kafka-topics --replica-assignment) may only name this node, one replica
    // per partition, partitions 0..n in any order; the partition count then comes from it.
    let assigned = if topic.assignments.is_empty() {
        None
    } else {
        let node = broker.node.node_id;
        let mut indexes: Vec<i32> = topic.assignments.iter().map(|a| a.partition_index).collect();
        indexes.sort_unstable();
        if topic.num_partitions != -1 || topic.replication_factor != -1 {
            return Err((
                ResponseError::InvalidRequest,
                "give either a replica assignment or partitions and replication factor".into(),
            ));
        }
        if let Some(a) =
            topic.assignments.iter().find(|a| a.broker_ids.iter().map(|b| b.0).collect::<Vec<_>>() != [node])
        {
            let ids: Vec<i32> = a.broker_ids.iter().map(|b| b.0).collect();
            return Err((
                ResponseError::InvalidReplicaAssignment,
                format!(
                    "partition {} is assigned to brokers {ids:?}; this cluster has one broker, node {node}",
                    a.partition_index
                ),
            ));
        }
        if indexes.iter().enumerate().any(|(i, &p)| p != i as i32) {
            return Err((
                ResponseError::InvalidReplicaAssignment,
                format!("partitions {indexes:?} are not 0..{}", indexes.len()),
            ));
        }
        Some(indexes.len() as i32)
    };
    let partitions = match assigned {
        Some(n) => n,
        None if topic.num_partitions == -1 => broker.config.num_partitions,
        None => topic.num_partitions,
    };
    let mut configs = BTreeMap::new();
    for config in topic.configs {
        let Some(value) = config.value else {
            return Err((ResponseError::InvalidConfig, format!("config {} has no value", &*config.name)));
        };
        configs.insert(config.name.to_string(), value.to_string());
    }
    let refused = |e: TopicError| (topic_error_code(&e), e.to_string());
    if validate_only {
        broker.logs.validate_new_topic(&topic.name, partitions, &configs).map_err(refused)?;
        return Ok(TopicMeta { name: topic.name.to_string(), id: uuid::Uuid::nil(), partitions, configs });
    }
    broker.logs.create_topic(&topic.name, partitions, configs).map_err(refused)
}

/// Broker defaults overlaid with the topic's own overrides, with Kafka's config-source codes.
pub(crate) fn effective_config_entries(broker: &Broker, meta: &TopicMeta) -> Vec<(String, String, i8)> {
    let mut entries: BTreeMap<String, (String, i8)> =
        broker.logs.default_topic_config().into_iter().map(|(k, v)| (k, (v, SOURCE_DEFAULT))).collect();
    for (key, value) in &meta.configs {
        entries.insert(key.clone(), (value.clone(), SOURCE_TOPIC_OVERRIDE));
    }
    entries.into_iter().map(|(k, (v, source))| (k, v, source)).collect()
}

fn effective_configs(broker: &Broker, meta: &TopicMeta) -> Vec<CreatableTopicConfigs> {
    effective_config_entries(broker, meta)
        .into_iter()
        .map(|(name, value, source)| {
            CreatableTopicConfigs::default()
                .with_name(str_bytes(name))
                .with_value(Some(str_bytes(value)))
                .with_config_source(source)
        })
        .collect()
}
