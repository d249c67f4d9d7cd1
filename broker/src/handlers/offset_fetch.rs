//! OffsetFetch (API key 9): a group's committed offsets.
//!
//! A partition without a commit (or of an unknown group or topic) answers offset -1 with no error, as
//! Kafka does; `topics = null` (v2+) means every committed partition. v8 (KIP-709) batches groups.
//! v7's `require_stable` is accepted and ignored: we have no transactional offsets that could be pending.
//! v0 (ZooKeeper offsets) is not offered and kafka-protocol 0.18 cannot decode it.
//!
//! References:
//! - <https://kafka.apache.org/protocol#The_Messages_OffsetFetch>
//! - KIP-709: <https://cwiki.apache.org/confluence/display/KAFKA/KIP-709%3A+Extend+OffsetFetch+requests+to+accept+multiple+group+ids>

use std::future::{ready, Future};
use std::sync::Arc;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, RequestHeader, TopicName};

use super::str_bytes;
use crate::broker::Broker;
use crate::group::{CommittedOffset, FetchedOffsets, GroupCoordinator};

pub const VERSIONS: (i16, i16) = (0, 8);

pub fn handle(
    broker: &Arc<Broker>,
    header: &RequestHeader,
    request: OffsetFetchRequest,
) -> impl Future<Output = OffsetFetchResponse> + Send + 'static {
    ready(respond(&broker.groups, header.request_api_version, request))
}

/// (offset, leader epoch, metadata) as the wire wants them for a partition with or without a commit.
fn fields(c: Option<CommittedOffset>) -> (i64, i32, String) {
    match c {
        Some(c) => (c.offset, c.leader_epoch, c.metadata),
        None => (-1, -1, String::new()),
    }
}

fn respond(groups: &GroupCoordinator, version: i16, request: OffsetFetchRequest) -> OffsetFetchResponse {
    let mut response = OffsetFetchResponse::default();
    if version >= 8 {
        response.groups = request
            .groups
            .into_iter()
            .map(|g| {
                let wanted: Option<Vec<(String, Vec<i32>)>> =
                    g.topics.map(|ts| ts.into_iter().map(|t| (t.name.0.to_string(), t.partition_indexes)).collect());
                let fetched = groups.fetch_offsets(&g.group_id.0, wanted.as_deref());
                let mut group = OffsetFetchResponseGroup::default();
                group.group_id = g.group_id;
                group.topics = batched_topics(fetched);
                group
            })
            .collect();
        return response;
    }
    let wanted: Option<Vec<(String, Vec<i32>)>> =
        request.topics.map(|ts| ts.into_iter().map(|t| (t.name.0.to_string(), t.partition_indexes)).collect());
    let fetched = groups.fetch_offsets(&request.group_id.0, wanted.as_deref());
    response.topics = fetched
        .into_iter()
        .map(|(name, partitions)| {
            let mut topic = OffsetFetchResponseTopic::default();
            topic.name = TopicName(str_bytes(name));
            topic.partitions = partitions
                .into_iter()
                .map(|(index, c)| {
                    let (offset, epoch, metadata) = fields(c);
                    let mut p = OffsetFetchResponsePartition::default();
                    p.partition_index = index;
                    p.committed_offset = offset;
                    p.committed_leader_epoch = epoch;
                    p.metadata = Some(str_bytes(metadata));
                    p
                })
                .collect();
            topic
        })
        .collect();
    response
}

fn batched_topics(fetched: FetchedOffsets) -> Vec<OffsetFetchResponseTopics> {
    fetched
        .into_iter()
        .map(|(name, partitions)| {
            let mut topic = OffsetFetchResponseTopics::default();
            topic.name = TopicName(str_bytes(name));
            topic.partitions = partitions
                .into_iter()
                .map(|(index, c)| {
                    let (offset, epoch, metadata) = fields(c);
                    let mut p = OffsetFetchResponsePartitions::default();
                    p.partition_index = index;
                    p.committed_offset = offset;
                    p.committed_leader_epoch = epoch;
                    p.metadata = Some(str_bytes(metadata));
                    p
                })
                .collect();
            topic
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::messages::offset_fetch_request::{
        OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
    };
    use kafka_protocol::protocol::Encodable;

    use super::*;
    use crate::group::tests_support::coordinator;
    use crate::group::{CommitPartition, CommitRequest};

    #[test]
    fn fetch_all_some_and_batched() {
        let (_dir, groups) = coordinator();
        let commit = CommitRequest {
            group_id: "g".into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
            retention_time_ms: -1,
            partitions: vec![CommitPartition {
                topic: "logs".into(),
                partition: 0,
                offset: 42,
                leader_epoch: 2,
                metadata: None,
            }],
        };
        assert_eq!(groups.commit_offsets(commit, 1).errors(), &[None]);

        // topics = null: everything committed.
        let mut request = OffsetFetchRequest::default();
        request.group_id = str_bytes("g").into();
        request.topics = None;
        let response = respond(&groups, 7, request);
        assert_eq!(response.topics.len(), 1);
        assert_eq!(response.topics[0].partitions[0].committed_offset, 42);
        assert_eq!(response.topics[0].partitions[0].committed_leader_epoch, 2);

        // A partition without a commit: -1.
        let mut request = OffsetFetchRequest::default();
        request.group_id = str_bytes("g").into();
        let mut topic = OffsetFetchRequestTopic::default();
        topic.name = TopicName(str_bytes("logs"));
        topic.partition_indexes = vec![0, 1];
        request.topics = Some(vec![topic]);
        for version in 1..=7 {
            let response = respond(&groups, version, request.clone());
            let offsets: Vec<i64> = response.topics[0].partitions.iter().map(|p| p.committed_offset).collect();
            assert_eq!(offsets, vec![42, -1]);
            let mut buf = BytesMut::new();
            response.encode(&mut buf, version).unwrap_or_else(|e| panic!("v{version}: {e}"));
        }

        // v8: two groups, one unknown.
        let mut request = OffsetFetchRequest::default();
        request.groups = ["g", "nobody"]
            .iter()
            .map(|id| {
                let mut g = OffsetFetchRequestGroup::default();
                g.group_id = str_bytes(*id).into();
                let mut t = OffsetFetchRequestTopics::default();
                t.name = TopicName(str_bytes("logs"));
                t.partition_indexes = vec![0];
                g.topics = Some(vec![t]);
                g
            })
            .collect();
        let response = respond(&groups, 8, request);
        assert_eq!(response.groups[0].topics[0].partitions[0].committed_offset, 42);
        assert_eq!(response.groups[1].topics[0].partitions[0].committed_offset, -1);
        let mut buf = BytesMut::new();
        response.encode(&mut buf, 8).unwrap();
    }
}
