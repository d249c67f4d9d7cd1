//! Handler tests over a real broker on a temp dir, without sockets: every advertised version encodes,
//! and produce → fetch returns the producer's bytes.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use kafka_protocol::ResponseError;

use super::{dispatch, SUPPORTED};
use crate::broker::{Broker, NodeInfo, Session};
use crate::config::BrokerConfig;
use crate::protocol::{encode_response, Request};

const PEER: std::net::SocketAddr =
    std::net::SocketAddr::V4(std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 0));

fn session(broker: &Broker) -> Session {
    Session { peer: PEER, principal: "User:ANONYMOUS".into(), node: broker.node.clone(), sendfile: false }
}

fn broker(dir: &tempfile::TempDir) -> Arc<Broker> {
    let config = BrokerConfig {
        log_dirs: dir.path().to_path_buf(),
        num_partitions: 2,
        group_initial_rebalance_delay_ms: 0,
        ..BrokerConfig::default()
    };
    Broker::open(
        logpipe_config::Valid::new(config).unwrap(),
        NodeInfo { node_id: 0, host: "127.0.0.1".into(), port: 9092 },
    )
    .unwrap()
}

fn request(api_key: ApiKey, version: i16, body: RequestKind) -> Request {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(42)
        .with_client_id(Some(StrBytes::from_static_str("handler-test")));
    Request { api_key, header, body }
}

async fn call(broker: &Arc<Broker>, api_key: ApiKey, version: i16, body: RequestKind) -> ResponseKind {
    tokio::time::timeout(Duration::from_secs(10), dispatch(broker, request(api_key, version, body), &session(broker)))
        .await
        .unwrap_or_else(|_| panic!("{api_key:?} v{version} did not answer"))
        .body
}

fn default_body(api_key: ApiKey) -> RequestKind {
    match api_key {
        ApiKey::Produce => RequestKind::Produce(ProduceRequest::default().with_acks(1)),
        ApiKey::Fetch => RequestKind::Fetch(FetchRequest::default()),
        ApiKey::ListOffsets => RequestKind::ListOffsets(ListOffsetsRequest::default()),
        ApiKey::Metadata => RequestKind::Metadata(MetadataRequest::default()),
        ApiKey::OffsetCommit => RequestKind::OffsetCommit(OffsetCommitRequest::default()),
        ApiKey::OffsetFetch => RequestKind::OffsetFetch(OffsetFetchRequest::default()),
        ApiKey::FindCoordinator => RequestKind::FindCoordinator(
            FindCoordinatorRequest::default()
                .with_key(StrBytes::from_static_str("g"))
                .with_coordinator_keys(vec![StrBytes::from_static_str("g")]),
        ),
        ApiKey::JoinGroup => RequestKind::JoinGroup(JoinGroupRequest::default()),
        ApiKey::Heartbeat => RequestKind::Heartbeat(HeartbeatRequest::default()),
        ApiKey::LeaveGroup => RequestKind::LeaveGroup(LeaveGroupRequest::default()),
        ApiKey::SyncGroup => RequestKind::SyncGroup(SyncGroupRequest::default()),
        ApiKey::DescribeGroups => RequestKind::DescribeGroups(DescribeGroupsRequest::default()),
        ApiKey::ListGroups => RequestKind::ListGroups(ListGroupsRequest::default()),
        ApiKey::ApiVersions => RequestKind::ApiVersions(ApiVersionsRequest::default()),
        ApiKey::CreateTopics => RequestKind::CreateTopics(CreateTopicsRequest::default()),
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(DeleteTopicsRequest::default()),
        ApiKey::InitProducerId => RequestKind::InitProducerId(InitProducerIdRequest::default()),
        ApiKey::DescribeConfigs => RequestKind::DescribeConfigs(DescribeConfigsRequest::default()),
        ApiKey::DescribeLogDirs => RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default()),
        ApiKey::DeleteGroups => RequestKind::DeleteGroups(DeleteGroupsRequest::default()),
        ApiKey::OffsetDelete => RequestKind::OffsetDelete(OffsetDeleteRequest::default()),
        ApiKey::CreatePartitions => RequestKind::CreatePartitions(Default::default()),
        ApiKey::AlterConfigs => RequestKind::AlterConfigs(Default::default()),
        ApiKey::IncrementalAlterConfigs => RequestKind::IncrementalAlterConfigs(Default::default()),
        ApiKey::DeleteRecords => RequestKind::DeleteRecords(Default::default()),
        ApiKey::SaslHandshake => RequestKind::SaslHandshake(Default::default()),
        ApiKey::DescribeUserScramCredentials => RequestKind::DescribeUserScramCredentials(Default::default()),
        ApiKey::AlterUserScramCredentials => RequestKind::AlterUserScramCredentials(Default::default()),
        ApiKey::SaslAuthenticate => RequestKind::SaslAuthenticate(Default::default()),
        ApiKey::DescribeAcls => RequestKind::DescribeAcls(Default::default()),
        ApiKey::CreateAcls => RequestKind::CreateAcls(Default::default()),
        ApiKey::DeleteAcls => RequestKind::DeleteAcls(Default::default()),
        other => panic!("no default request for {other:?}"),
    }
}

#[tokio::test]
async fn every_advertised_version_answers_and_encodes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(&dir);
    for (api_key, (min, max)) in SUPPORTED {
        for version in *min..=*max {
            let response = call(&broker, *api_key, version, default_body(*api_key)).await;
            encode_response(*api_key, version, 42, &response).unwrap_or_else(|e| panic!("{api_key:?} v{version}: {e}"));
        }
    }
}

#[test]
fn api_versions_v3_reply_has_no_tagged_fields() {
    // librdkafka < 2.2 (Debian's kcat) misparses tagged fields in this reply.
    let body = ResponseKind::ApiVersions(super::api_versions::unsupported_version_response().with_error_code(0));
    let frame = encode_response(ApiKey::ApiVersions, 3, 1, &body).unwrap();
    assert_eq!(*frame.last().unwrap(), 0, "empty tagged-field section");
    // Header v0 (no tagged fields even though v3 is a flexible version): size, correlation id, error code.
    assert_eq!(&frame[4..8], &1i32.to_be_bytes());
    assert_eq!(&frame[8..10], &0i16.to_be_bytes());
}

fn batch(values: &[&str], producer_id: i64, sequence: i32) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: sequence + i as i32,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::copy_from_slice(v.as_bytes())),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions { version: 2, compression: Compression::None },
    )
    .unwrap();
    buf.freeze()
}

fn produce(topic: &str, partition: i32, records: Bytes, acks: i16) -> RequestKind {
    RequestKind::Produce(ProduceRequest::default().with_acks(acks).with_timeout_ms(5000).with_topic_data(vec![
        TopicProduceData::default().with_name(TopicName(StrBytes::from_string(topic.into()))).with_partition_data(
            vec![PartitionProduceData::default().with_index(partition).with_records(Some(records))],
        ),
    ]))
}

fn partition_result(response: ResponseKind) -> produce_response::PartitionProduceResponse {
    let ResponseKind::Produce(response) = response else { panic!("not a produce response") };
    response.responses[0].partition_responses[0].clone()
}

fn fetch(topic: &str, offset: i64, max_wait_ms: i32) -> RequestKind {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    RequestKind::Fetch(
        FetchRequest::default().with_max_wait_ms(max_wait_ms).with_min_bytes(1).with_max_bytes(1 << 20).with_topics(
            vec![FetchTopic::default().with_topic(TopicName(StrBytes::from_string(topic.into()))).with_partitions(
                vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)],
            )],
        ),
    )
}

async fn auto_create(broker: &Arc<Broker>, topic: &str) {
    let body = RequestKind::Metadata(
        MetadataRequest::default()
            .with_allow_auto_topic_creation(true)
            .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(topic.into()))))])),
    );
    let ResponseKind::Metadata(metadata) = call(broker, ApiKey::Metadata, 9, body).await else { panic!() };
    assert_eq!(metadata.topics[0].error_code, 0);
    assert_eq!(metadata.topics[0].partitions.len(), 2);
}

#[tokio::test]
async fn produce_then_fetch_returns_the_same_records() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(&dir);
    auto_create(&broker, "logs").await;
    let first =
        partition_result(call(&broker, ApiKey::Produce, 9, produce("logs", 0, batch(&["a", "b"], -1, -1), -1)).await);
    assert_eq!((first.error_code, first.base_offset), (0, 0));
    // acks=1 is acknowledged before the fsync; consumers see it once the flusher has synced it, so a
    // long poll from offset 2 wakes up with it.
    let second =
        partition_result(call(&broker, ApiKey::Produce, 7, produce("logs", 0, batch(&["c"], -1, -1), 1)).await);
    assert_eq!((second.error_code, second.base_offset), (0, 2));
    let ResponseKind::Fetch(response) = call(&broker, ApiKey::Fetch, 11, fetch("logs", 2, 9000)).await else {
        panic!()
    };
    assert_eq!(response.responses[0].partitions[0].high_watermark, 3);

    let ResponseKind::Fetch(response) = call(&broker, ApiKey::Fetch, 11, fetch("logs", 0, 2000)).await else {
        panic!()
    };
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    assert_eq!(partition.high_watermark, 3);
    let mut records = partition.records.clone().unwrap();
    let values: Vec<String> = RecordBatchDecoder::decode_all(&mut records)
        .unwrap()
        .into_iter()
        .flat_map(|set| set.records)
        .map(|r| (r.offset, String::from_utf8(r.value.unwrap().to_vec()).unwrap()))
        .map(|(offset, value)| format!("{offset}:{value}"))
        .collect();
    assert_eq!(values, ["0:a", "1:b", "2:c"]);
}

#[tokio::test]
async fn fetch_long_poll_wakes_on_new_data_and_reports_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(&dir);
    auto_create(&broker, "logs").await;
    let waiting =
        tokio::spawn(dispatch(&broker, request(ApiKey::Fetch, 11, fetch("logs", 0, 30_000)), &session(&broker)));
    tokio::task::yield_now().await;
    partition_result(call(&broker, ApiKey::Produce, 9, produce("logs", 0, batch(&["x"], -1, -1), -1)).await);
    let ResponseKind::Fetch(response) =
        tokio::time::timeout(Duration::from_secs(10), waiting).await.unwrap().unwrap().body
    else {
        panic!()
    };
    assert!(!response.responses[0].partitions[0].records.as_ref().unwrap().is_empty());

    let ResponseKind::Fetch(response) = call(&broker, ApiKey::Fetch, 11, fetch("logs", 99, 0)).await else { panic!() };
    assert_eq!(response.responses[0].partitions[0].error_code, ResponseError::OffsetOutOfRange.code());
}

#[tokio::test]
async fn idempotent_retry_is_acknowledged_without_a_second_append() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(&dir);
    auto_create(&broker, "logs").await;
    let ResponseKind::InitProducerId(init) = call(
        &broker,
        ApiKey::InitProducerId,
        4,
        RequestKind::InitProducerId(
            InitProducerIdRequest::default().with_producer_id(ProducerId(-1)).with_producer_epoch(-1),
        ),
    )
    .await
    else {
        panic!()
    };
    let pid = init.producer_id.0;
    assert!(pid >= 0, "{init:?}");
    let first =
        partition_result(call(&broker, ApiKey::Produce, 9, produce("logs", 0, batch(&["a", "b"], pid, 0), -1)).await);
    let retry =
        partition_result(call(&broker, ApiKey::Produce, 9, produce("logs", 0, batch(&["a", "b"], pid, 0), -1)).await);
    assert_eq!((retry.error_code, retry.base_offset), (0, first.base_offset));
    let gap = partition_result(call(&broker, ApiKey::Produce, 9, produce("logs", 0, batch(&["z"], pid, 5), -1)).await);
    assert_eq!(gap.error_code, ResponseError::OutOfOrderSequenceNumber.code());
    assert_eq!(broker.logs.partition("logs", 0).unwrap().log_end_offset(), 2);
}

#[tokio::test]
async fn corrupt_and_oversized_batches_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(&dir);
    auto_create(&broker, "logs").await;
    let mut corrupt = batch(&["hello"], -1, -1).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let result = partition_result(call(&broker, ApiKey::Produce, 9, produce("logs", 0, corrupt.into(), -1)).await);
    assert_eq!(result.error_code, ResponseError::CorruptMessage.code());

    let big = "x".repeat(broker.config.message_max_bytes as usize + 10);
    let result =
        partition_result(call(&broker, ApiKey::Produce, 9, produce("logs", 0, batch(&[&big], -1, -1), -1)).await);
    assert_eq!(result.error_code, ResponseError::MessageTooLarge.code());
    let result =
        partition_result(call(&broker, ApiKey::Produce, 9, produce("nope", 0, batch(&["a"], -1, -1), -1)).await);
    assert_eq!(result.error_code, ResponseError::UnknownTopicOrPartition.code());
}

#[tokio::test]
async fn produce_reports_the_log_append_time_of_log_append_time_topics() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(&dir);
    auto_create(&broker, "created").await;
    let configs = [("message.timestamp.type".to_string(), "LogAppendTime".to_string())].into();
    broker.logs.create_topic("stamped", 1, configs).unwrap();

    let plain =
        partition_result(call(&broker, ApiKey::Produce, 9, produce("created", 0, batch(&["a"], -1, -1), -1)).await);
    assert_eq!((plain.error_code, plain.log_append_time_ms), (0, -1));

    let first =
        partition_result(call(&broker, ApiKey::Produce, 9, produce("stamped", 0, batch(&["a"], 7, 0), -1)).await);
    assert_eq!(first.error_code, 0);
    let records = broker.logs.partition("stamped", 0).unwrap().read(0, 1 << 20, true).unwrap().records;
    // maxTimestamp: after baseOffset, length, leader epoch, magic, CRC, attributes, lastOffsetDelta, firstTimestamp.
    let stored = i64::from_be_bytes(records[35..43].try_into().unwrap());
    assert_ne!(stored, 1_700_000_000_000, "stamped by the broker");
    assert_eq!(first.log_append_time_ms, stored);
    let retry =
        partition_result(call(&broker, ApiKey::Produce, 9, produce("stamped", 0, batch(&["a"], 7, 0), -1)).await);
    assert_eq!((retry.base_offset, retry.log_append_time_ms), (0, stored), "a retry reports the original's");

    // Produce v2 (answered in the v3 layout) ends with log_append_time_ms, then throttle_time_ms.
    let response = call(&broker, ApiKey::Produce, 2, produce("stamped", 0, batch(&["b"], -1, -1), -1)).await;
    let time = partition_result(response.clone()).log_append_time_ms;
    assert!(time >= stored);
    let frame = encode_response(ApiKey::Produce, 2, 42, &response).unwrap();
    assert_eq!(&frame[frame.len() - 12..frame.len() - 4], &time.to_be_bytes());
}

#[tokio::test]
async fn create_topics_validate_only_refuses_what_a_real_create_refuses() {
    use create_topics_request::{CreatableTopic, CreatableTopicConfig};
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(&dir);
    auto_create(&broker, "logs.a").await;
    let create = |name: &str, partitions: i32, configs: &[(&str, &str)], validate_only: bool| {
        let configs = configs
            .iter()
            .map(|(k, v)| {
                CreatableTopicConfig::default()
                    .with_name(StrBytes::from_string(k.to_string()))
                    .with_value(Some(StrBytes::from_string(v.to_string())))
            })
            .collect();
        let topic = CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.into())))
            .with_num_partitions(partitions)
            .with_replication_factor(1)
            .with_configs(configs);
        RequestKind::CreateTopics(
            CreateTopicsRequest::default().with_topics(vec![topic]).with_validate_only(validate_only),
        )
    };
    type Case<'a> = (&'a str, i32, &'a [(&'a str, &'a str)], ResponseError);
    let cases: [Case; 7] = [
        ("bad/name", 1, &[], ResponseError::InvalidTopicException),
        ("logs_a", 1, &[], ResponseError::InvalidTopicException),
        ("logs.a", 1, &[], ResponseError::TopicAlreadyExists),
        ("t", 0, &[], ResponseError::InvalidPartitions),
        ("t", 1, &[("retention.hours", "1")], ResponseError::InvalidConfig),
        ("t", 1, &[("retention.ms", "soon")], ResponseError::InvalidConfig),
        ("t", 1, &[("cleanup.policy", "compact")], ResponseError::InvalidConfig),
    ];
    for (name, partitions, configs, expected) in cases {
        for validate_only in [true, false] {
            let body = create(name, partitions, configs, validate_only);
            let ResponseKind::CreateTopics(r) = call(&broker, ApiKey::CreateTopics, 7, body).await else { panic!() };
            assert_eq!(r.topics[0].error_code, expected.code(), "{name} {configs:?} validate_only={validate_only}");
        }
    }
    let body = create("t", 3, &[("retention.ms", "1000")], true);
    let ResponseKind::CreateTopics(r) = call(&broker, ApiKey::CreateTopics, 7, body).await else { panic!() };
    assert_eq!((r.topics[0].error_code, r.topics[0].num_partitions), (0, 3));
    assert!(broker.logs.topic("t").is_none(), "validate_only creates nothing");
}
