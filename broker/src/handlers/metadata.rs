//! Metadata: this node is the only broker, the controller, and the leader (and sole replica) of every
//! partition, at the address of the listener the client connected to. Unknown topics are created here when `auto_create_topics_enable` is on and the client
//! allows it (v4+ carries `allow_auto_topic_creation`; older clients always allow it), as Kafka does.
//!
//! References: <https://kafka.apache.org/protocol#The_Messages_Metadata>, KIP-516 (topic ids).

use std::collections::BTreeMap;
use std::future::{ready, Future};
use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, RequestHeader, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{code, str_bytes};
use crate::broker::{Broker, NodeInfo};
use crate::storage::{TopicError, TopicMeta};

pub const VERSIONS: (i16, i16) = (0, 12);

pub fn handle(
    broker: &Arc<Broker>,
    header: &RequestHeader,
    request: MetadataRequest,
    node: &NodeInfo,
) -> impl Future<Output = MetadataResponse> + Send + 'static {
    let version = header.request_api_version;
    // v0 has no null array: an empty list means "all topics". From v1 on, null means all and empty none.
    let all_topics =
        request.topics.is_none() || (version == 0 && request.topics.as_ref().is_some_and(|t| t.is_empty()));
    let allow_create = version < 4 || request.allow_auto_topic_creation;

    let topics = if all_topics {
        broker.logs.topics().iter().map(|meta| topic_metadata(broker, meta)).collect()
    } else {
        request
            .topics
            .unwrap_or_default()
            .into_iter()
            .map(|wanted| match wanted.name {
                Some(name) => lookup_or_create(broker, &name, allow_create),
                None => match broker.logs.topics().into_iter().find(|m| m.id == wanted.topic_id) {
                    Some(meta) => topic_metadata(broker, &meta),
                    None => MetadataResponseTopic::default()
                        .with_topic_id(wanted.topic_id)
                        .with_error_code(code(ResponseError::UnknownTopicId)),
                },
            })
            .collect()
    };

    ready(
        MetadataResponse::default()
            .with_brokers(vec![MetadataResponseBroker::default()
                .with_node_id(BrokerId(node.node_id))
                .with_host(str_bytes(node.host.clone()))
                .with_port(node.port)])
            .with_cluster_id(Some(str_bytes(broker.logs.cluster_id())))
            .with_controller_id(BrokerId(node.node_id))
            .with_topics(topics),
    )
}

fn lookup_or_create(broker: &Broker, name: &TopicName, allow_create: bool) -> MetadataResponseTopic {
    if let Some(meta) = broker.logs.topic(name) {
        return topic_metadata(broker, &meta);
    }
    let error = if allow_create && broker.config.auto_create_topics_enable {
        match broker.logs.create_topic(name, broker.config.num_partitions, BTreeMap::new()) {
            Ok(meta) => {
                tracing::info!(topic = %meta.name, partitions = meta.partitions, "auto-created topic");
                return topic_metadata(broker, &meta);
            }
            // Another connection created it between our lookup and our create.
            Err(TopicError::AlreadyExists(_)) => match broker.logs.topic(name) {
                Some(meta) => return topic_metadata(broker, &meta),
                None => ResponseError::UnknownTopicOrPartition,
            },
            Err(TopicError::InvalidName { .. }) => ResponseError::InvalidTopicException,
            Err(e) => {
                tracing::warn!(topic = %name.0, error = %e, "auto-creating topic failed");
                ResponseError::UnknownServerError
            }
        }
    } else {
        ResponseError::UnknownTopicOrPartition
    };
    MetadataResponseTopic::default().with_name(Some(name.clone())).with_error_code(code(error))
}

fn topic_metadata(broker: &Broker, meta: &TopicMeta) -> MetadataResponseTopic {
    let me = BrokerId(broker.node.node_id);
    let partitions = (0..meta.partitions)
        .map(|index| {
            MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(me)
                .with_leader_epoch(0)
                .with_replica_nodes(vec![me])
                .with_isr_nodes(vec![me])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(meta.name.clone()))))
        .with_topic_id(meta.id)
        .with_is_internal(false)
        .with_partitions(partitions)
}
