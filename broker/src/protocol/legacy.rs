//! Request and response versions that Apache Kafka 3.9 still accepts but that the `kafka-protocol` crate
//! dropped with Kafka 4.0's baselines (KIP-896): Produce v0–v2, Fetch v0–v3, ListOffsets v0,
//! OffsetCommit v0–v1, OffsetFetch v0, DescribeConfigs v0, CreateTopics v0–v1, DeleteTopics v0 and
//! DescribeLogDirs v0. Clients of the Kafka 0.10–2.x era (old sarama, kafka-python pinned to an old
//! `api_version`, librdkafka without ApiVersions) send them.
//!
//! An old request is decoded into the oldest typed request the crate knows, so every handler serves it
//! with the same code; the handler sees the original version in the header. Most old versions differ
//! from the next one by a field at the start or the end, so the bytes are completed (a null
//! `transactional_id`, `validate_only = false`, …) and decoded as that version; the rest are parsed
//! here. Responses go the other way: the same layout where it is the same, or written here.
//!
//! Reference: the message definitions of Apache Kafka 3.9 (`clients/src/main/resources/common/message`).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_response::CreateTopicsResponse;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResponse;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse, OffsetCommitRequest, ProduceResponse,
    RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// The oldest version `kafka-protocol` decodes, for the APIs whose older versions are handled here.
pub fn crate_min_version(api_key: ApiKey) -> Option<i16> {
    Some(match api_key {
        ApiKey::Produce => 3,
        ApiKey::Fetch => 4,
        ApiKey::ListOffsets
        | ApiKey::OffsetFetch
        | ApiKey::DescribeConfigs
        | ApiKey::DeleteTopics
        | ApiKey::DescribeLogDirs => 1,
        ApiKey::OffsetCommit | ApiKey::CreateTopics => 2,
        _ => return None,
    })
}

/// True if `version` of `api_key` is decoded and encoded here rather than by the crate.
pub fn is_legacy(api_key: ApiKey, version: i16) -> bool {
    crate_min_version(api_key).is_some_and(|min| version < min)
}

/// Decodes the body of a legacy request (after its header).
pub fn decode_request(api_key: ApiKey, version: i16, mut body: Bytes) -> anyhow::Result<RequestKind> {
    Ok(match api_key {
        // v3 = a nullable transactional_id, then v0–v2.
        ApiKey::Produce => RequestKind::Produce(decode_as(prefixed(&(-1i16).to_be_bytes(), &body), 3)?),
        ApiKey::Fetch => RequestKind::Fetch(decode_fetch(version, &mut body)?),
        ApiKey::ListOffsets => RequestKind::ListOffsets(decode_list_offsets_v0(&mut body)?),
        ApiKey::OffsetCommit => RequestKind::OffsetCommit(decode_offset_commit(version, &mut body)?),
        // v0 read offsets from ZooKeeper in old Kafka; the layout is v1's.
        ApiKey::OffsetFetch => RequestKind::OffsetFetch(decode_as(body, 1)?),
        // v1 adds include_synonyms at the end.
        ApiKey::DescribeConfigs => RequestKind::DescribeConfigs(decode_as(suffixed(&body, &[0]), 1)?),
        // v1 adds validate_only at the end; v2 is v1.
        ApiKey::CreateTopics if version == 0 => RequestKind::CreateTopics(decode_as(suffixed(&body, &[0]), 2)?),
        ApiKey::CreateTopics => RequestKind::CreateTopics(decode_as(body, 2)?),
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(decode_as(body, 1)?),
        ApiKey::DescribeLogDirs => RequestKind::DescribeLogDirs(decode_as(body, 1)?),
        other => anyhow::bail!("{other:?} v{version} is not a legacy version"),
    })
}

/// Encodes the body of a response to a legacy request.
pub fn encode_response(version: i16, body: &ResponseKind, buf: &mut BytesMut) -> anyhow::Result<()> {
    match body {
        ResponseKind::Produce(r) if version == 2 => r.encode(buf, 3),
        ResponseKind::Produce(r) => encode_produce(version, r, buf),
        ResponseKind::Fetch(r) => encode_fetch(version, r, buf),
        ResponseKind::ListOffsets(r) => encode_list_offsets_v0(r, buf),
        // v0–v2 answer alike.
        ResponseKind::OffsetCommit(r) => r.encode(buf, 2),
        ResponseKind::OffsetFetch(r) => r.encode(buf, 1),
        ResponseKind::DescribeConfigs(r) => encode_describe_configs_v0(r, buf),
        ResponseKind::CreateTopics(r) => encode_create_topics(version, r, buf),
        // v1 adds throttle_time_ms in front.
        ResponseKind::DeleteTopics(r) => encode_without_throttle(|b| r.encode(b, 1), buf),
        ResponseKind::DescribeLogDirs(r) => r.encode(buf, 1),
        other => anyhow::bail!("no legacy encoding for {other:?}"),
    }
}

fn decode_as<T: Decodable>(mut body: Bytes, version: i16) -> anyhow::Result<T> {
    T::decode(&mut body, version)
}

fn prefixed(prefix: &[u8], body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(prefix.len() + body.len());
    out.put_slice(prefix);
    out.put_slice(body);
    out.freeze()
}

fn suffixed(body: &[u8], suffix: &[u8]) -> Bytes {
    prefixed(body, suffix)
}

/// Fetch v0–v3: replica_id, max_wait_ms, min_bytes, [max_bytes from v3], topics. No response-level
/// limit before v3.
fn decode_fetch(version: i16, body: &mut Bytes) -> anyhow::Result<FetchRequest> {
    let mut r = Reader(body);
    let replica_id = r.i32()?;
    let max_wait_ms = r.i32()?;
    let min_bytes = r.i32()?;
    let max_bytes = if version >= 3 { r.i32()? } else { i32::MAX };
    let topics = r.array(|r| {
        let topic = r.string()?;
        let partitions = r.array(|r| {
            Ok(FetchPartition::default()
                .with_partition(r.i32()?)
                .with_fetch_offset(r.i64()?)
                .with_partition_max_bytes(r.i32()?))
        })?;
        Ok(FetchTopic::default().with_topic(TopicName(topic)).with_partitions(partitions))
    })?;
    Ok(FetchRequest::default()
        .with_replica_id(replica_id.into())
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(max_bytes)
        .with_topics(topics))
}

/// ListOffsets v0: replica_id, topics [name, partitions [index, timestamp, max_num_offsets]]. This
/// broker answers with at most one offset, as Kafka 3.x does for the -1 (latest) and -2 (earliest)
/// that clients send.
fn decode_list_offsets_v0(body: &mut Bytes) -> anyhow::Result<ListOffsetsRequest> {
    let mut r = Reader(body);
    let replica_id = r.i32()?;
    let topics = r.array(|r| {
        let name = r.string()?;
        let partitions = r.array(|r| {
            let p = ListOffsetsPartition::default().with_partition_index(r.i32()?).with_timestamp(r.i64()?);
            let _max_num_offsets = r.i32()?;
            Ok(p)
        })?;
        Ok(ListOffsetsTopic::default().with_name(TopicName(name)).with_partitions(partitions))
    })?;
    Ok(ListOffsetsRequest::default().with_replica_id(replica_id.into()).with_topics(topics))
}

/// OffsetCommit v0: group_id, topics [name, partitions [index, offset, metadata]].
/// v1: group_id, generation_id, member_id, topics [name, partitions [index, offset, timestamp, metadata]].
fn decode_offset_commit(version: i16, body: &mut Bytes) -> anyhow::Result<OffsetCommitRequest> {
    let mut r = Reader(body);
    let group_id = r.string()?;
    let (generation, member_id) = if version >= 1 { (r.i32()?, r.string()?) } else { (-1, StrBytes::default()) };
    let topics = r.array(|r| {
        let name = r.string()?;
        let partitions = r.array(|r| {
            let index = r.i32()?;
            let offset = r.i64()?;
            if version >= 1 {
                let _commit_timestamp = r.i64()?;
            }
            let metadata = r.nullable_string()?;
            Ok(OffsetCommitRequestPartition::default()
                .with_partition_index(index)
                .with_committed_offset(offset)
                .with_committed_metadata(metadata))
        })?;
        Ok(OffsetCommitRequestTopic::default().with_name(TopicName(name)).with_partitions(partitions))
    })?;
    Ok(OffsetCommitRequest::default()
        .with_group_id(group_id.into())
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(member_id)
        .with_retention_time_ms(-1)
        .with_topics(topics))
}

/// Produce v0: responses [name, partitions [index, error_code, base_offset]]; v1 adds throttle_time_ms
/// at the end.
fn encode_produce(version: i16, r: &ProduceResponse, buf: &mut BytesMut) -> anyhow::Result<()> {
    let mut w = Writer(buf);
    w.array(&r.responses, |w, t| {
        w.string(&t.name.0);
        w.array(&t.partition_responses, |w, p| {
            w.0.put_i32(p.index);
            w.0.put_i16(p.error_code);
            w.0.put_i64(p.base_offset);
        });
    });
    if version >= 1 {
        w.0.put_i32(r.throttle_time_ms);
    }
    Ok(())
}

/// Fetch v0: responses [topic, partitions [partition, error_code, high_watermark, records]]; v1–v3
/// start with throttle_time_ms.
fn encode_fetch(version: i16, r: &FetchResponse, buf: &mut BytesMut) -> anyhow::Result<()> {
    let mut w = Writer(buf);
    if version >= 1 {
        w.0.put_i32(r.throttle_time_ms);
    }
    w.array(&r.responses, |w, t| {
        w.string(&t.topic.0);
        w.array(&t.partitions, |w, p| {
            w.0.put_i32(p.partition_index);
            w.0.put_i16(p.error_code);
            w.0.put_i64(p.high_watermark);
            w.bytes(p.records.as_deref());
        });
    });
    Ok(())
}

/// ListOffsets v0: responses [name, partitions [index, error_code, old_style_offsets [int64]]].
fn encode_list_offsets_v0(r: &ListOffsetsResponse, buf: &mut BytesMut) -> anyhow::Result<()> {
    let mut w = Writer(buf);
    w.array(&r.topics, |w, t| {
        w.string(&t.name.0);
        w.array(&t.partitions, |w, p| {
            w.0.put_i32(p.partition_index);
            w.0.put_i16(p.error_code);
            let offsets: &[i64] = if p.offset >= 0 { std::slice::from_ref(&p.offset) } else { &[] };
            w.array(offsets, |w, o| w.0.put_i64(*o));
        });
    });
    Ok(())
}

/// DescribeConfigs v0: as v1, but each config says `is_default` instead of its source, and has no
/// synonyms.
fn encode_describe_configs_v0(r: &DescribeConfigsResponse, buf: &mut BytesMut) -> anyhow::Result<()> {
    const DEFAULT_CONFIG: i8 = 5;
    let mut w = Writer(buf);
    w.0.put_i32(r.throttle_time_ms);
    w.array(&r.results, |w, res| {
        w.0.put_i16(res.error_code);
        w.nullable_string(res.error_message.as_deref());
        w.0.put_i8(res.resource_type);
        w.string(&res.resource_name);
        w.array(&res.configs, |w, c| {
            w.string(&c.name);
            w.nullable_string(c.value.as_deref());
            w.0.put_u8(c.read_only.into());
            w.0.put_u8((c.config_source == DEFAULT_CONFIG).into());
            w.0.put_u8(c.is_sensitive.into());
        });
    });
    Ok(())
}

/// CreateTopics v0: topics [name, error_code]; v1 adds error_message (and is v2 without the leading
/// throttle_time_ms).
fn encode_create_topics(version: i16, r: &CreateTopicsResponse, buf: &mut BytesMut) -> anyhow::Result<()> {
    if version == 1 {
        return encode_without_throttle(|b| r.encode(b, 2), buf);
    }
    let mut w = Writer(buf);
    w.array(&r.topics, |w, t| {
        w.string(&t.name.0);
        w.0.put_i16(t.error_code);
    });
    Ok(())
}

/// Encodes with `encode` (a version that starts with throttle_time_ms) and drops those four bytes.
fn encode_without_throttle(
    encode: impl FnOnce(&mut BytesMut) -> anyhow::Result<()>,
    buf: &mut BytesMut,
) -> anyhow::Result<()> {
    let mut tmp = BytesMut::new();
    encode(&mut tmp)?;
    anyhow::ensure!(tmp.len() >= 4, "response shorter than its throttle time");
    buf.put_slice(&tmp[4..]);
    Ok(())
}

/// Non-flexible (pre-KIP-482) primitives, with truncation as an error.
struct Reader<'a>(&'a mut Bytes);

impl Reader<'_> {
    fn need(&self, n: usize) -> anyhow::Result<()> {
        anyhow::ensure!(self.0.remaining() >= n, "request truncated");
        Ok(())
    }

    fn i32(&mut self) -> anyhow::Result<i32> {
        self.need(4)?;
        Ok(self.0.get_i32())
    }

    fn i64(&mut self) -> anyhow::Result<i64> {
        self.need(8)?;
        Ok(self.0.get_i64())
    }

    fn nullable_string(&mut self) -> anyhow::Result<Option<StrBytes>> {
        self.need(2)?;
        let len = self.0.get_i16();
        if len < 0 {
            return Ok(None);
        }
        self.need(len as usize)?;
        let raw = self.0.split_to(len as usize);
        Ok(Some(StrBytes::from_utf8(raw).map_err(|e| anyhow::anyhow!("string is not UTF-8: {e}"))?))
    }

    fn string(&mut self) -> anyhow::Result<StrBytes> {
        self.nullable_string()?.ok_or_else(|| anyhow::anyhow!("null where a string is required"))
    }

    fn array<T>(&mut self, mut item: impl FnMut(&mut Self) -> anyhow::Result<T>) -> anyhow::Result<Vec<T>> {
        let len = self.i32()?;
        if len <= 0 {
            return Ok(Vec::new());
        }
        // Every item takes at least one byte, so a hostile count cannot make us allocate much.
        anyhow::ensure!(len as usize <= self.0.remaining(), "array length {len} exceeds the request");
        (0..len).map(|_| item(self)).collect()
    }
}

struct Writer<'a>(&'a mut BytesMut);

impl Writer<'_> {
    fn string(&mut self, s: &str) {
        self.0.put_i16(s.len() as i16);
        self.0.put_slice(s.as_bytes());
    }

    fn nullable_string(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.string(s),
            None => self.0.put_i16(-1),
        }
    }

    fn bytes(&mut self, b: Option<&[u8]>) {
        match b {
            Some(b) => {
                self.0.put_i32(b.len() as i32);
                self.0.put_slice(b);
            }
            None => self.0.put_i32(-1),
        }
    }

    fn array<T>(&mut self, items: &[T], mut item: impl FnMut(&mut Self, &T)) {
        self.0.put_i32(items.len() as i32);
        for i in items {
            item(self, i);
        }
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
    use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
    use kafka_protocol::messages::{ApiKey, RequestHeader};

    use super::*;
    use crate::handlers::supported_versions;
    use crate::protocol::{decode_request, encode_response};

    /// A request frame (without size prefix): header v1, then `body`.
    fn frame(api_key: ApiKey, version: i16, body: &[u8]) -> Bytes {
        let mut buf = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(3)
            .encode(&mut buf, 1)
            .unwrap();
        buf.put_slice(body);
        buf.freeze()
    }

    fn body(write: impl FnOnce(&mut Writer)) -> Vec<u8> {
        let mut buf = BytesMut::new();
        write(&mut Writer(&mut buf));
        buf.to_vec()
    }

    #[test]
    fn produce_v0_to_v2_decode_as_v3_without_a_transactional_id() {
        let b = body(|w| {
            w.0.put_i16(-1);
            w.0.put_i32(1500);
            w.array(&["logs"], |w, t| {
                w.string(t);
                w.array(&[2], |w, p| {
                    w.0.put_i32(*p);
                    w.bytes(Some(b"message set"));
                });
            });
        });
        for version in 0..=2 {
            let request = decode_request(frame(ApiKey::Produce, version, &b), supported_versions).unwrap();
            let RequestKind::Produce(p) = request.body else { panic!("not a produce") };
            assert_eq!(
                (request.header.request_api_version, p.acks, p.timeout_ms, p.transactional_id),
                (version, -1, 1500, None)
            );
            assert_eq!(p.topic_data[0].partition_data[0].records.as_deref(), Some(&b"message set"[..]));
        }
    }

    #[test]
    fn fetch_v0_to_v3_decode_with_and_without_a_response_limit() {
        for version in 0..=3 {
            let b = body(|w| {
                w.0.put_i32(-1);
                w.0.put_i32(500);
                w.0.put_i32(1);
                if version == 3 {
                    w.0.put_i32(4096);
                }
                w.array(&["logs"], |w, t| {
                    w.string(t);
                    w.array(&[(0, 42i64)], |w, (p, o)| {
                        w.0.put_i32(*p);
                        w.0.put_i64(*o);
                        w.0.put_i32(1024);
                    });
                });
            });
            let RequestKind::Fetch(f) =
                decode_request(frame(ApiKey::Fetch, version, &b), supported_versions).unwrap().body
            else {
                panic!("not a fetch")
            };
            assert_eq!((f.max_wait_ms, f.min_bytes), (500, 1));
            assert_eq!(f.max_bytes, if version == 3 { 4096 } else { i32::MAX });
            let p = &f.topics[0].partitions[0];
            assert_eq!((p.partition, p.fetch_offset, p.partition_max_bytes), (0, 42, 1024));
        }
    }

    #[test]
    fn offset_commit_v0_and_v1_and_list_offsets_v0_decode() {
        for version in 0..=1 {
            let b = body(|w| {
                w.string("g");
                if version == 1 {
                    w.0.put_i32(4);
                    w.string("member-1");
                }
                w.array(&["logs"], |w, t| {
                    w.string(t);
                    w.array(&[1], |w, p| {
                        w.0.put_i32(*p);
                        w.0.put_i64(77);
                        if version == 1 {
                            w.0.put_i64(123);
                        }
                        w.nullable_string(Some("meta"));
                    });
                });
            });
            let RequestKind::OffsetCommit(c) =
                decode_request(frame(ApiKey::OffsetCommit, version, &b), supported_versions).unwrap().body
            else {
                panic!("not a commit")
            };
            assert_eq!(c.group_id.0.as_str(), "g");
            assert_eq!(c.generation_id_or_member_epoch, if version == 1 { 4 } else { -1 });
            let p = &c.topics[0].partitions[0];
            assert_eq!((p.partition_index, p.committed_offset, p.committed_metadata.as_deref()), (1, 77, Some("meta")));
        }
        let b = body(|w| {
            w.0.put_i32(-1);
            w.array(&["logs"], |w, t| {
                w.string(t);
                w.array(&[0], |w, p| {
                    w.0.put_i32(*p);
                    w.0.put_i64(-2);
                    w.0.put_i32(1);
                });
            });
        });
        let RequestKind::ListOffsets(l) =
            decode_request(frame(ApiKey::ListOffsets, 0, &b), supported_versions).unwrap().body
        else {
            panic!("not list offsets")
        };
        assert_eq!(l.topics[0].partitions[0].timestamp, -2);
    }

    #[test]
    fn truncated_legacy_requests_are_malformed_not_panics() {
        for (api_key, version) in
            [(ApiKey::Fetch, 0), (ApiKey::OffsetCommit, 1), (ApiKey::ListOffsets, 0), (ApiKey::Produce, 0)]
        {
            for len in 0..12 {
                let b = vec![0x7f; len];
                assert!(
                    decode_request(frame(api_key, version, &b), supported_versions).is_err(),
                    "{api_key:?} v{version} len {len}"
                );
            }
        }
    }

    #[test]
    fn responses_encode_in_the_old_layouts() {
        let partition = PartitionProduceResponse::default().with_index(0).with_base_offset(5);
        let topic = TopicProduceResponse::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partition_responses(vec![partition]);
        let produce =
            ResponseKind::Produce(ProduceResponse::default().with_throttle_time_ms(9).with_responses(vec![topic]));
        // size, correlation id, then [1 topic "t" [1 partition: 0, error 0, offset 5]] (+ throttle in v1).
        let v0 = encode_response(ApiKey::Produce, 0, 3, &produce).unwrap();
        assert_eq!(v0.len(), 4 + 4 + 4 + 2 + 1 + 4 + 4 + 2 + 8);
        assert_eq!(&v0[v0.len() - 8..], &5i64.to_be_bytes());
        let v1 = encode_response(ApiKey::Produce, 1, 3, &produce).unwrap();
        assert_eq!(&v1[v1.len() - 4..], &9i32.to_be_bytes());

        let fetch =
            ResponseKind::Fetch(FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(vec![PartitionData::default()
                        .with_high_watermark(3)
                        .with_records(Some(Bytes::from_static(b"xyz")))])]));
        let v0 = encode_response(ApiKey::Fetch, 0, 3, &fetch).unwrap();
        assert_eq!(&v0[v0.len() - 3..], b"xyz");
        let v3 = encode_response(ApiKey::Fetch, 3, 3, &fetch).unwrap();
        assert_eq!(v3.len(), v0.len() + 4);

        let offsets = ResponseKind::ListOffsets(ListOffsetsResponse::default().with_topics(
            vec![ListOffsetsTopicResponse::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(vec![ListOffsetsPartitionResponse::default().with_offset(11)])],
        ));
        let v0 = encode_response(ApiKey::ListOffsets, 0, 3, &offsets).unwrap();
        assert_eq!(&v0[v0.len() - 12..], &[&1i32.to_be_bytes()[..], &11i64.to_be_bytes()[..]].concat()[..]);

        for (api_key, body) in [
            (ApiKey::DescribeConfigs, ResponseKind::DescribeConfigs(Default::default())),
            (ApiKey::CreateTopics, ResponseKind::CreateTopics(Default::default())),
            (ApiKey::DeleteTopics, ResponseKind::DeleteTopics(Default::default())),
            (ApiKey::DescribeLogDirs, ResponseKind::DescribeLogDirs(Default::default())),
            (ApiKey::OffsetFetch, ResponseKind::OffsetFetch(Default::default())),
            (ApiKey::OffsetCommit, ResponseKind::OffsetCommit(Default::default())),
        ] {
            for version in 0..crate_min_version(api_key).unwrap() {
                encode_response(api_key, version, 3, &body).unwrap_or_else(|e| panic!("{api_key:?} v{version}: {e}"));
            }
        }
    }
}
