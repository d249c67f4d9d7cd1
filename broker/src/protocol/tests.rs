//! Property tests for the request decoder: client-encoded requests round-trip, and arbitrary bytes never
//! panic or over-allocate.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, MetadataRequest, ProduceRequest, RequestHeader, RequestKind, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use proptest::prelude::*;

use super::*;
use crate::handlers::supported_versions;

fn encode_request(api_key: ApiKey, version: i16, body: &RequestKind) -> Bytes {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("test")))
        .encode(&mut buf, api_key.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    buf.freeze()
}

fn topic_name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._-]{1,40}"
}

proptest! {
    #[test]
    fn metadata_requests_round_trip(names in proptest::collection::vec(topic_name(), 0..5), version in 1i16..=12) {
        let topics = names.iter().map(|n| {
            kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(n.clone()))))
        }).collect();
        let body = RequestKind::Metadata(MetadataRequest::default().with_topics(Some(topics)));
        let decoded = decode_request(encode_request(ApiKey::Metadata, version, &body), supported_versions).unwrap();
        prop_assert_eq!(decoded.header.correlation_id, 7);
        prop_assert_eq!(decoded.body, body);
    }

    #[test]
    fn produce_requests_round_trip(records in proptest::collection::vec(any::<u8>(), 0..512), acks in -1i16..=1, version in 3i16..=9) {
        use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
        let body = RequestKind::Produce(ProduceRequest::default().with_acks(acks).with_timeout_ms(1000).with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("logs")))
                .with_partition_data(vec![PartitionProduceData::default().with_index(2).with_records(Some(Bytes::from(records)))]),
        ]));
        let decoded = decode_request(encode_request(ApiKey::Produce, version, &body), supported_versions).unwrap();
        prop_assert_eq!(decoded.body, body);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_request(Bytes::from(bytes), supported_versions);
    }

    #[test]
    fn corrupted_valid_requests_never_panic(flip in 8usize..64, value in any::<u8>(), version in 4i16..=12) {
        let body = RequestKind::Fetch(FetchRequest::default().with_max_wait_ms(100));
        let mut frame = encode_request(ApiKey::Fetch, version, &body).to_vec();
        if flip < frame.len() {
            frame[flip] = value;
        }
        let _ = decode_request(Bytes::from(frame), supported_versions);
    }
}

#[test]
fn unknown_api_key_and_unsupported_version_are_reported() {
    let mut frame = BytesMut::new();
    frame.put_i16(999);
    frame.put_i16(0);
    frame.put_i32(1);
    frame.put_i16(-1);
    assert!(matches!(decode_request(frame.freeze(), supported_versions), Err(DecodeError::UnknownApiKey(999))));

    // A request header claiming Produce v99: the version is refused before the body is read.
    let mut frame = BytesMut::new();
    frame.put_i16(ApiKey::Produce as i16);
    frame.put_i16(99);
    frame.put_i32(7);
    frame.put_i16(-1);
    let frame = frame.freeze();
    assert!(matches!(
        decode_request(frame, supported_versions),
        Err(DecodeError::UnsupportedVersion { api_key: ApiKey::Produce, version: 99, correlation_id: 7 })
    ));
}

#[test]
fn huge_declared_array_length_is_refused_without_allocating() {
    // Metadata v1: header, then a topics array claiming i32::MAX entries in a tiny frame.
    let mut frame = BytesMut::new();
    frame.put_i16(ApiKey::Metadata as i16);
    frame.put_i16(1);
    frame.put_i32(1);
    frame.put_i16(-1);
    frame.put_i32(i32::MAX);
    assert!(matches!(decode_request(frame.freeze(), supported_versions), Err(DecodeError::Malformed { .. })));
}
