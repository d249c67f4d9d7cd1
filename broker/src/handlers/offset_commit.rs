//! OffsetCommit (API key 8): store a group's consumed positions, durably.
//!
//! The commit is validated and applied when the request is read (so a later OffsetFetch on the same
//! connection sees it); the response waits for the fsync of the offsets file, which concurrent commits
//! share. v0/v1 are not offered: kafka-protocol 0.18 cannot decode them (Kafka 4 dropped them too), and
//! every client we target uses v2+.
//! Version notes: v2–v4 carry `retention_time_ms`; v6+ the leader epoch; v7+ `group_instance_id`.
//!
//! References:
//! - <https://kafka.apache.org/protocol#The_Messages_OffsetCommit>
//! - KIP-211: <https://cwiki.apache.org/confluence/display/KAFKA/KIP-211%3A+Revise+Expiration+Semantics+of+Consumer+Group+Offsets>

use std::future::Future;
use std::sync::Arc;

use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, RequestHeader};

use crate::broker::{steady_clock_ms, Broker};
use crate::group::{error_code, CommitPartition, CommitRequest};

pub const VERSIONS: (i16, i16) = (0, 8);

pub fn handle(
    broker: &Arc<Broker>,
    header: &RequestHeader,
    request: OffsetCommitRequest,
) -> impl Future<Output = OffsetCommitResponse> + Send + 'static {
    let version = header.request_api_version;
    let commit = to_commit_request(version, &request);
    let outcome = broker.groups.commit_offsets(commit, steady_clock_ms());
    async move {
        let errors = outcome.wait().await;
        to_response(&request, errors)
    }
}

fn to_commit_request(version: i16, request: &OffsetCommitRequest) -> CommitRequest {
    CommitRequest {
        group_id: request.group_id.0.to_string(),
        generation_id: request.generation_id_or_member_epoch,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|i| i.to_string()),
        retention_time_ms: if (2..=4).contains(&version) { request.retention_time_ms } else { -1 },
        partitions: request
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| CommitPartition {
                    topic: t.name.0.to_string(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                })
            })
            .collect(),
    }
}

/// Answers in the request's shape; `errors` is in the order partitions appear in the request.
fn to_response(
    request: &OffsetCommitRequest,
    errors: Vec<Option<kafka_protocol::ResponseError>>,
) -> OffsetCommitResponse {
    let mut errors = errors.into_iter();
    let mut response = OffsetCommitResponse::default();
    response.topics = request
        .topics
        .iter()
        .map(|t| {
            let mut topic = OffsetCommitResponseTopic::default();
            topic.name = t.name.clone();
            topic.partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut partition = OffsetCommitResponsePartition::default();
                    partition.partition_index = p.partition_index;
                    partition.error_code = error_code(errors.next().flatten());
                    partition
                })
                .collect();
            topic
        })
        .collect();
    response
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
    use kafka_protocol::messages::{ApiKey, TopicName};
    use kafka_protocol::ResponseError;

    use super::*;
    use crate::handlers::str_bytes;

    fn request() -> OffsetCommitRequest {
        let mut request = OffsetCommitRequest::default();
        request.group_id = str_bytes("g").into();
        request.retention_time_ms = 5000;
        request.topics = ["a", "b"]
            .iter()
            .map(|name| {
                let mut t = OffsetCommitRequestTopic::default();
                t.name = TopicName(str_bytes(*name));
                t.partitions = (0..2)
                    .map(|p| {
                        let mut part = OffsetCommitRequestPartition::default();
                        part.partition_index = p;
                        part.committed_offset = 10 + i64::from(p);
                        part
                    })
                    .collect();
                t
            })
            .collect();
        request
    }

    #[test]
    fn flattens_and_maps_errors_back_in_order() {
        let request = request();
        let commit = to_commit_request(2, &request);
        assert_eq!(commit.partitions.len(), 4);
        assert_eq!((commit.partitions[3].topic.as_str(), commit.partitions[3].partition), ("b", 1));
        assert_eq!(commit.retention_time_ms, 5000);
        assert_eq!(to_commit_request(5, &request).retention_time_ms, -1);

        let errors = vec![None, Some(ResponseError::UnknownTopicOrPartition), None, None];
        let response = to_response(&request, errors);
        assert_eq!(response.topics[0].partitions[1].error_code, ResponseError::UnknownTopicOrPartition.code());
        assert_eq!(response.topics[1].partitions[1].error_code, 0);
        let response = kafka_protocol::messages::ResponseKind::OffsetCommit(response);
        for version in VERSIONS.0..=VERSIONS.1 {
            crate::protocol::encode_response(ApiKey::OffsetCommit, version, 1, &response)
                .unwrap_or_else(|e| panic!("v{version}: {e}"));
        }
    }
}
