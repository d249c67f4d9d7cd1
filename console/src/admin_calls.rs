//! The admin requests librdkafka does not expose: DescribeLogDirs (size on disk per partition, for `topics
//! describe`), Metadata v10+ (topic ids, likewise) and IncrementalAlterConfigs (KIP-339, for `topics alter
//! --config`; librdkafka's AlterConfigs replaces a topic's whole set of overrides instead).
//!
//! They go over the producer crate's [`logpipe_producer::Connection`], one connection to one broker, one
//! request at a time. It does what the console's librdkafka clients do with the same `-X`/`-F` properties
//! ([`crate::client::Connection::security`]): TLS (rustls), SASL PLAIN or SCRAM-SHA-256/512, and the
//! ApiVersions exchange from which each call here picks the highest version both sides speak.
//! Messages are the `kafka-protocol` crate's. DescribeLogDirs v0 is deprecated (removed in Kafka 4.0,
//! KIP-896), so the client speaks v1..=4.
//!
//! References:
//! - Kafka protocol guide: <https://kafka.apache.org/protocol#protocol_messages>
//! - KIP-113 (DescribeLogDirs), KIP-339 (IncrementalAlterConfigs), KIP-516 (topic ids)

use std::time::Duration;

use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, DescribeLogDirsRequest, DescribeLogDirsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};
use logpipe_producer::{Connection, ConnectionError, Security};

use crate::error::{Error, Result};

const CLIENT_ID: &str = "logpipe-console";

/// DescribeLogDirs versions this client speaks.
const DESCRIBE_LOG_DIRS_VERSIONS: (i16, i16) = (1, 4);

/// IncrementalAlterConfigs versions this client speaks (v1 is v0 in the flexible encoding).
const INCREMENTAL_ALTER_CONFIGS_VERSIONS: (i16, i16) = (0, 1);

/// Metadata versions that carry topic ids (KIP-516) this client speaks.
const METADATA_VERSIONS: (i16, i16) = (10, 12);

/// ConfigResource type of a topic.
const RESOURCE_TOPIC: i8 = 2;

/// One change to a topic config, as IncrementalAlterConfigs carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConfigChange {
    /// Set the key to this value (operation SET).
    Set(String, String),
    /// Remove the override, back to the broker's default (operation DELETE).
    Delete(String),
}

/// Size on disk of one partition replica on one broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReplicaSize {
    pub topic: String,
    pub partition: i32,
    pub bytes: i64,
}

/// An open, authenticated connection to one broker, for one command's admin requests.
pub(crate) struct AdminConnection {
    connection: Connection,
    /// What the command is doing, for errors ("altering the configs of topic 'nginx'").
    action: String,
    timeout: Duration,
}

impl AdminConnection {
    /// Connects to `broker` (HOST:PORT) with `security`, within `timeout` (which also bounds each request).
    /// `action` says what for, in errors.
    pub(crate) async fn open(broker: &str, security: &Security, timeout: Duration, action: &str) -> Result<Self> {
        let connection = Connection::open(broker, security, CLIENT_ID, timeout)
            .await
            .map_err(|error| Error::Connection { action: action.to_owned(), error })?;
        Ok(Self { connection, action: action.to_owned(), timeout })
    }

    /// Sizes of the given topics' partitions in this broker's log dirs (`None`: every topic).
    ///
    /// A replica being moved between log dirs appears twice; the "future" copy is skipped so that each
    /// replica counts once.
    pub(crate) async fn describe_log_dirs(
        &mut self,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> Result<Vec<ReplicaSize>> {
        let request = DescribeLogDirsRequest::default().with_topics(topics.map(|topics| {
            topics
                .iter()
                .map(|(name, partitions)| {
                    DescribableLogDirTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(name.clone())))
                        .with_partitions(partitions.clone())
                })
                .collect()
        }));
        let response = self.call(&request, DESCRIBE_LOG_DIRS_VERSIONS).await?;
        replica_sizes(&response).map_err(|message| self.protocol_error(ApiKey::DescribeLogDirs, message))
    }

    /// Applies `changes` to topic `topic`'s config overrides, leaving the other overrides as they are.
    /// A refusal comes back as (Kafka error code, the broker's message).
    pub(crate) async fn alter_topic_configs(
        &mut self,
        topic: &str,
        changes: &[ConfigChange],
    ) -> Result<Result<(), (i16, Option<String>)>> {
        let request = alter_request(topic, changes);
        let response = self.call(&request, INCREMENTAL_ALTER_CONFIGS_VERSIONS).await?;
        alter_result(response, topic).map_err(|message| self.protocol_error(ApiKey::IncrementalAlterConfigs, message))
    }

    /// The topic ids of `topics` (Metadata v10+; librdkafka's metadata API does not expose them), by name.
    /// A topic the broker does not know, or knows without an id, is left out.
    pub(crate) async fn topic_ids(&mut self, topics: &[String]) -> Result<Vec<(String, uuid::Uuid)>> {
        let request = MetadataRequest::default().with_allow_auto_topic_creation(false).with_topics(Some(
            topics
                .iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(t.clone())))))
                .collect(),
        ));
        let response = self.call(&request, METADATA_VERSIONS).await?;
        Ok(topic_ids(response))
    }

    /// Sends one request in the highest version in `ours` that the broker also speaks, and waits for its
    /// response.
    async fn call<R: Request>(&mut self, request: &R, ours: (i16, i16)) -> Result<R::Response> {
        let api = ApiKey::try_from(R::KEY).expect("kafka-protocol's requests have known API keys");
        let version = self.connection.require_version(api, ours).map_err(|e| self.connection_error(e))?;
        self.connection.call(request, version, self.timeout).await.map_err(|e| self.connection_error(e))
    }

    fn connection_error(&self, error: ConnectionError) -> Error {
        Error::Connection { action: self.action.clone(), error }
    }

    fn protocol_error(&self, api: ApiKey, message: String) -> Error {
        Error::Protocol { api: api_name(api), broker: self.connection.broker().to_owned(), message }
    }
}

fn alter_request(topic: &str, changes: &[ConfigChange]) -> IncrementalAlterConfigsRequest {
    let configs = changes
        .iter()
        .map(|change| match change {
            ConfigChange::Set(key, value) => AlterableConfig::default()
                .with_name(StrBytes::from_string(key.clone()))
                .with_config_operation(0)
                .with_value(Some(StrBytes::from_string(value.clone()))),
            ConfigChange::Delete(key) => {
                AlterableConfig::default().with_name(StrBytes::from_string(key.clone())).with_config_operation(1)
            }
        })
        .collect();
    IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
        .with_resource_type(RESOURCE_TOPIC)
        .with_resource_name(StrBytes::from_string(topic.to_owned()))
        .with_configs(configs)])
}

/// The topic's result in an IncrementalAlterConfigs response: Ok, or (error code, message).
fn alter_result(
    response: IncrementalAlterConfigsResponse,
    topic: &str,
) -> Result<Result<(), (i16, Option<String>)>, String> {
    let Some(result) = response.responses.into_iter().find(|r| &*r.resource_name == topic) else {
        return Err(format!("the response has no result for topic '{topic}'"));
    };
    if result.error_code == 0 {
        return Ok(Ok(()));
    }
    Ok(Err((result.error_code, result.error_message.map(|m| m.to_string()))))
}

/// The ids of the topics a Metadata response knows without error.
fn topic_ids(response: MetadataResponse) -> Vec<(String, uuid::Uuid)> {
    response
        .topics
        .into_iter()
        .filter(|t| t.error_code == 0 && !t.topic_id.is_nil())
        .filter_map(|t| Some((t.name?.0.to_string(), t.topic_id)))
        .collect()
}

/// Flattens a DescribeLogDirs response into per-replica sizes.
fn replica_sizes(response: &DescribeLogDirsResponse) -> Result<Vec<ReplicaSize>, String> {
    if response.error_code != 0 {
        return Err(format!("error code {}", response.error_code));
    }
    let mut sizes = Vec::new();
    for dir in &response.results {
        if dir.error_code != 0 {
            // An offline log dir (KAFKA_STORAGE_ERROR) holds nothing we can size; the others still count.
            tracing::debug!(dir = %&*dir.log_dir, code = dir.error_code, "log dir reported an error");
            continue;
        }
        for topic in &dir.topics {
            for partition in topic.partitions.iter().filter(|p| !p.is_future_key) {
                sizes.push(ReplicaSize {
                    topic: topic.name.0.to_string(),
                    partition: partition.partition_index,
                    bytes: partition.partition_size,
                });
            }
        }
    }
    Ok(sizes)
}

fn api_name(api: ApiKey) -> &'static str {
    match api {
        ApiKey::DescribeLogDirs => "DescribeLogDirs",
        ApiKey::IncrementalAlterConfigs => "IncrementalAlterConfigs",
        ApiKey::Metadata => "Metadata",
        _ => "request",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::describe_log_dirs_response::{
        DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
    };
    use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
    use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
    use kafka_protocol::protocol::{Decodable, Encodable};

    fn canned_response() -> DescribeLogDirsResponse {
        let partition = |index, size, future| {
            DescribeLogDirsPartition::default()
                .with_partition_index(index)
                .with_partition_size(size)
                .with_is_future_key(future)
        };
        DescribeLogDirsResponse::default().with_results(vec![
            DescribeLogDirsResult::default().with_log_dir(StrBytes::from_static_str("/data/a")).with_topics(vec![
                DescribeLogDirsTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("nginx")))
                    .with_partitions(vec![partition(0, 1000, false), partition(1, 5, true)]),
            ]),
            DescribeLogDirsResult::default()
                .with_error_code(56)
                .with_log_dir(StrBytes::from_static_str("/data/broken")),
        ])
    }

    #[test]
    fn log_dirs_flatten_skipping_future_replicas_and_broken_dirs() {
        for version in DESCRIBE_LOG_DIRS_VERSIONS.0..=DESCRIBE_LOG_DIRS_VERSIONS.1 {
            let mut body = bytes::BytesMut::new();
            canned_response().encode(&mut body, version).unwrap();
            let decoded = DescribeLogDirsResponse::decode(&mut body.freeze(), version).unwrap();
            assert_eq!(
                replica_sizes(&decoded).unwrap(),
                vec![ReplicaSize { topic: "nginx".into(), partition: 0, bytes: 1000 }]
            );
        }
    }

    #[test]
    fn top_level_error_is_an_error() {
        let response = DescribeLogDirsResponse::default().with_error_code(31);
        assert!(replica_sizes(&response).is_err());
    }

    #[test]
    fn alter_request_sets_and_deletes_in_every_version() {
        let changes =
            [ConfigChange::Set("retention.ms".into(), "60000".into()), ConfigChange::Delete("segment.ms".into())];
        let request = alter_request("nginx", &changes);
        for version in INCREMENTAL_ALTER_CONFIGS_VERSIONS.0..=INCREMENTAL_ALTER_CONFIGS_VERSIONS.1 {
            let mut body = bytes::BytesMut::new();
            request.encode(&mut body, version).unwrap();
            assert_eq!(IncrementalAlterConfigsRequest::decode(&mut body.freeze(), version).unwrap(), request);
        }
        let [resource] = &request.resources[..] else { panic!("{request:?}") };
        assert_eq!((resource.resource_type, &*resource.resource_name), (RESOURCE_TOPIC, "nginx"));
        let ops: Vec<(&str, i8, Option<&str>)> =
            resource.configs.iter().map(|c| (&*c.name, c.config_operation, c.value.as_deref())).collect();
        // A DELETE carries an empty value, as kafka-configs.sh's does.
        assert_eq!(ops, [("retention.ms", 0, Some("60000")), ("segment.ms", 1, Some(""))]);
    }

    #[test]
    fn alter_result_is_the_topics_own() {
        let result = |name: &'static str, code: i16, message: Option<&'static str>| {
            AlterConfigsResourceResponse::default()
                .with_resource_name(StrBytes::from_static_str(name))
                .with_error_code(code)
                .with_error_message(message.map(StrBytes::from_static_str))
        };
        let response = IncrementalAlterConfigsResponse::default()
            .with_responses(vec![result("other", 0, None), result("nginx", 40, Some("bad value"))]);
        assert_eq!(alter_result(response.clone(), "nginx"), Ok(Err((40, Some("bad value".into())))));
        assert_eq!(alter_result(response.clone(), "other"), Ok(Ok(())));
        assert!(alter_result(response, "absent").unwrap_err().contains("'absent'"));
    }

    #[test]
    fn topic_ids_leave_out_errors_and_nil_ids() {
        let id = uuid::Uuid::from_u128(1);
        let topic = |name: &'static str, code: i16, id: uuid::Uuid| {
            MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str(name))))
                .with_error_code(code)
                .with_topic_id(id)
        };
        let response = MetadataResponse::default().with_topics(vec![
            topic("nginx", 0, id),
            topic("gone", 3, uuid::Uuid::from_u128(2)),
            topic("old", 0, uuid::Uuid::nil()),
        ]);
        assert_eq!(topic_ids(response), vec![("nginx".to_owned(), id)]);
    }
}
