//! A minimal Kafka protocol client for the APIs librdkafka does not expose: DescribeLogDirs (size on disk
//! per partition, for `topics describe`), Metadata v10+ (topic ids, likewise) and IncrementalAlterConfigs (KIP-339, for `topics alter
//! --config`; librdkafka's AlterConfigs replaces a topic's whole set of overrides instead).
//!
//! One TCP connection to one broker, one request in flight at a time. Framing is the protocol's: a 4-byte
//! big-endian length, then a request header and body (responses: response header and body). Messages are
//! encoded and decoded by the `kafka-protocol` crate; this module only frames them and picks versions.
//!
//! Versions are negotiated with ApiVersions v0, which every broker answers (KIP-511 keeps v0 as the
//! fallback), then the highest DescribeLogDirs version both sides support is used. v0 of DescribeLogDirs is
//! deprecated (removed in Kafka 4.0, KIP-896), so the client speaks v1..=4.
//!
//! References:
//! - Kafka protocol guide: <https://kafka.apache.org/protocol#protocol_messages>
//! - KIP-113 (DescribeLogDirs), KIP-339 (IncrementalAlterConfigs), KIP-482 (flexible versions and tagged fields), KIP-511 (ApiVersions)

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, DescribeLogDirsRequest, DescribeLogDirsResponse, IncrementalAlterConfigsRequest,
    MetadataRequest, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

/// Refuse larger responses before allocating: a wrong port (say, an HTTP server) would otherwise make us
/// allocate whatever its first four bytes spell.
const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// Size on disk of one partition replica on one broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReplicaSize {
    pub topic: String,
    pub partition: i32,
    pub bytes: i64,
}

/// A connection to one broker.
pub(crate) struct RawClient {
    stream: TcpStream,
    broker: String,
    timeout: Duration,
    next_correlation_id: i32,
}

impl RawClient {
    /// Connects to `broker` (HOST:PORT).
    pub(crate) async fn connect(broker: &str, timeout: Duration) -> Result<Self> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(broker))
            .await
            .map_err(|_| protocol_error("connect", broker, "connection timed out"))?
            .map_err(|e| protocol_error("connect", broker, e))?;
        stream.set_nodelay(true).map_err(|e| protocol_error("connect", broker, e))?;
        Ok(Self { stream, broker: broker.to_owned(), timeout, next_correlation_id: 1 })
    }

    /// Sizes of the given topics' partitions in this broker's log dirs (`None`: every topic).
    ///
    /// A replica being moved between log dirs appears twice; the "future" copy is skipped so that each
    /// replica counts once.
    pub(crate) async fn describe_log_dirs(
        &mut self,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> Result<Vec<ReplicaSize>> {
        let version = self.negotiate(ApiKey::DescribeLogDirs, DESCRIBE_LOG_DIRS_VERSIONS).await?;
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
        let response: DescribeLogDirsResponse = self.call(&request, version).await?;
        replica_sizes(&response).map_err(|message| protocol_error("DescribeLogDirs", &self.broker, message))
    }

    /// Applies `changes` to topic `topic`'s config overrides, leaving the other overrides as they are.
    /// A refusal comes back as (Kafka error code, the broker's message).
    pub(crate) async fn alter_topic_configs(
        &mut self,
        topic: &str,
        changes: &[ConfigChange],
    ) -> Result<Result<(), (i16, Option<String>)>> {
        let version = self.negotiate(ApiKey::IncrementalAlterConfigs, INCREMENTAL_ALTER_CONFIGS_VERSIONS).await?;
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
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(StrBytes::from_string(topic.to_owned()))
            .with_configs(configs)]);
        let response = self.call(&request, version).await?;
        let Some(result) = response.responses.into_iter().find(|r| &*r.resource_name == topic) else {
            return Err(protocol_error("IncrementalAlterConfigs", &self.broker, "no result for the topic"));
        };
        if result.error_code == 0 {
            return Ok(Ok(()));
        }
        Ok(Err((result.error_code, result.error_message.map(|m| m.to_string()))))
    }

    /// The topic ids of `topics` (Metadata v10+; librdkafka's metadata API does not expose them), by name.
    /// A topic the broker does not know, or knows without an id, is left out.
    pub(crate) async fn topic_ids(&mut self, topics: &[String]) -> Result<Vec<(String, uuid::Uuid)>> {
        let version = self.negotiate(ApiKey::Metadata, METADATA_VERSIONS).await?;
        let request = MetadataRequest::default().with_allow_auto_topic_creation(false).with_topics(Some(
            topics
                .iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(t.clone())))))
                .collect(),
        ));
        let response = self.call(&request, version).await?;
        Ok(response
            .topics
            .into_iter()
            .filter(|t| t.error_code == 0 && !t.topic_id.is_nil())
            .filter_map(|t| Some((t.name?.0.to_string(), t.topic_id)))
            .collect())
    }

    /// Picks the highest version of `api` in `ours` that the broker also supports.
    async fn negotiate(&mut self, api: ApiKey, ours: (i16, i16)) -> Result<i16> {
        let response = self.call(&ApiVersionsRequest::default(), 0).await?;
        // UNSUPPORTED_VERSION (35) still carries the broker's list; any other error does not.
        if response.error_code != 0 && response.error_code != 35 {
            return Err(protocol_error("ApiVersions", &self.broker, format!("error code {}", response.error_code)));
        }
        let theirs = response.api_keys.iter().find(|v| v.api_key == api as i16).map(|v| (v.min_version, v.max_version));
        pick_version(ours, theirs).ok_or_else(|| {
            protocol_error(
                api_name(api),
                &self.broker,
                format!("broker supports versions {theirs:?}, this client {}..={}", ours.0, ours.1),
            )
        })
    }

    /// Sends one request and waits for its response, within the timeout.
    async fn call<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response> {
        let api = ApiKey::try_from(R::KEY).map_err(|()| protocol_error("request", &self.broker, "unknown API key"))?;
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let frame = encode_request(request, version, correlation_id)
            .map_err(|message| protocol_error(api_name(api), &self.broker, message))?;
        let exchange = async {
            self.stream.write_all(&frame).await?;
            let len = self.stream.read_i32().await?;
            let len = usize::try_from(len)
                .ok()
                .filter(|&len| len <= MAX_RESPONSE_BYTES)
                .ok_or_else(|| std::io::Error::other(format!("bad response frame size {len}")))?;
            let mut body = vec![0; len];
            self.stream.read_exact(&mut body).await?;
            Ok::<_, std::io::Error>(Bytes::from(body))
        };
        let body = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| protocol_error(api_name(api), &self.broker, "no response within the request timeout"))?
            .map_err(|e| protocol_error(api_name(api), &self.broker, e))?;
        decode_response::<R>(body, version, correlation_id)
            .map_err(|message| protocol_error(api_name(api), &self.broker, message))
    }
}

/// Encodes a complete request frame: length, header, body.
fn encode_request<R: Request>(request: &R, version: i16, correlation_id: i32) -> Result<BytesMut, String> {
    let api = ApiKey::try_from(R::KEY).map_err(|()| format!("unknown API key {}", R::KEY))?;
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
    let mut frame = BytesMut::with_capacity(64);
    frame.extend_from_slice(&[0; 4]);
    header.encode(&mut frame, api.request_header_version(version)).map_err(|e| format!("encoding header: {e:#}"))?;
    request.encode(&mut frame, version).map_err(|e| format!("encoding v{version} request: {e:#}"))?;
    let len = i32::try_from(frame.len() - 4).map_err(|_| "request too large".to_owned())?;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    Ok(frame)
}

/// Decodes a response frame (without its length prefix) and checks it answers `correlation_id`.
fn decode_response<R: Request>(mut body: Bytes, version: i16, correlation_id: i32) -> Result<R::Response, String> {
    let api = ApiKey::try_from(R::KEY).map_err(|()| format!("unknown API key {}", R::KEY))?;
    let header = ResponseHeader::decode(&mut body, api.response_header_version(version))
        .map_err(|e| format!("decoding response header: {e:#}"))?;
    if header.correlation_id != correlation_id {
        return Err(format!(
            "response correlation id {} does not match request {correlation_id}",
            header.correlation_id
        ));
    }
    let response =
        R::Response::decode(&mut body, version).map_err(|e| format!("decoding v{version} response: {e:#}"))?;
    if body.has_remaining() {
        tracing::debug!(api = ?api, trailing = body.remaining(), "response has trailing bytes");
    }
    Ok(response)
}

/// Highest version in both ranges.
fn pick_version(ours: (i16, i16), theirs: Option<(i16, i16)>) -> Option<i16> {
    let (min, max) = theirs?;
    let best = ours.1.min(max);
    (best >= ours.0.max(min)).then_some(best)
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
        ApiKey::ApiVersions => "ApiVersions",
        ApiKey::DescribeLogDirs => "DescribeLogDirs",
        ApiKey::IncrementalAlterConfigs => "IncrementalAlterConfigs",
        ApiKey::Metadata => "Metadata",
        _ => "request",
    }
}

fn protocol_error(api: &'static str, broker: &str, message: impl ToString) -> Error {
    Error::Protocol { api, broker: broker.to_owned(), message: message.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::describe_log_dirs_response::{
        DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
    };
    use kafka_protocol::protocol::decode_request_header_from_buffer;

    #[test]
    fn request_frame_decodes_like_a_broker_would() {
        for version in 1..=4 {
            let request = DescribeLogDirsRequest::default().with_topics(Some(vec![DescribableLogDirTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("nginx")))
                .with_partitions(vec![0, 2])]));
            let frame = encode_request(&request, version, 7).unwrap();
            let mut bytes = frame.freeze();
            let len = bytes.get_i32();
            assert_eq!(len as usize, bytes.len());
            let header = decode_request_header_from_buffer(&mut bytes).unwrap();
            assert_eq!(header.request_api_key, ApiKey::DescribeLogDirs as i16);
            assert_eq!(header.request_api_version, version);
            assert_eq!(header.correlation_id, 7);
            assert_eq!(header.client_id.as_deref(), Some(CLIENT_ID));
            let decoded = DescribeLogDirsRequest::decode(&mut bytes, version).unwrap();
            assert_eq!(decoded, request);
            assert!(!bytes.has_remaining());
        }
    }

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
    fn response_frame_round_trips_and_flattens() {
        for version in 1..=4 {
            let response = canned_response();
            let mut body = BytesMut::new();
            let header_version = ApiKey::DescribeLogDirs.response_header_version(version);
            ResponseHeader::default().with_correlation_id(9).encode(&mut body, header_version).unwrap();
            response.encode(&mut body, version).unwrap();

            let decoded = decode_response::<DescribeLogDirsRequest>(body.clone().freeze(), version, 9).unwrap();
            assert_eq!(
                replica_sizes(&decoded).unwrap(),
                vec![ReplicaSize { topic: "nginx".into(), partition: 0, bytes: 1000 }]
            );
            let mismatch = decode_response::<DescribeLogDirsRequest>(body.freeze(), version, 10).unwrap_err();
            assert!(mismatch.contains("correlation id"), "{mismatch}");
        }
    }

    #[test]
    fn top_level_error_is_an_error() {
        let response = DescribeLogDirsResponse::default().with_error_code(31);
        assert!(replica_sizes(&response).is_err());
    }

    #[test]
    fn picks_highest_common_version() {
        assert_eq!(pick_version((1, 4), Some((0, 4))), Some(4));
        assert_eq!(pick_version((1, 4), Some((1, 2))), Some(2));
        assert_eq!(pick_version((1, 4), Some((0, 0))), None);
        assert_eq!(pick_version((1, 4), Some((5, 6))), None);
        assert_eq!(pick_version((1, 4), None), None);
    }
}
