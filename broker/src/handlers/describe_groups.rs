//! DescribeGroups (API key 15): state, protocol and members of groups (`kafka-consumer-groups --describe`).
//!
//! An unknown group is described as "Dead" with no error, as Kafka does up to v5. Member metadata and
//! assignments are only filled in for a Stable group. v3+ may ask for authorized operations: without
//! ACLs every group operation is allowed.
//!
//! References:
//! - <https://kafka.apache.org/protocol#The_Messages_DescribeGroups>

use std::future::{ready, Future};
use std::sync::Arc;

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, RequestHeader};

use super::str_bytes;
use crate::broker::Broker;
use crate::group::GroupDescription;

pub const VERSIONS: (i16, i16) = (0, 5);

/// Kafka's AclOperation codes a group supports: READ (3), DELETE (6), DESCRIBE (8), as a bit field.
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

pub fn handle(
    broker: &Arc<Broker>,
    header: &RequestHeader,
    request: DescribeGroupsRequest,
) -> impl Future<Output = DescribeGroupsResponse> + Send + 'static {
    let version = header.request_api_version;
    let include_operations = version >= 3 && request.include_authorized_operations;
    let mut response = DescribeGroupsResponse::default();
    response.groups =
        request.groups.iter().map(|id| to_described(broker.groups.describe(&id.0), include_operations)).collect();
    ready(response)
}

fn to_described(d: GroupDescription, include_operations: bool) -> DescribedGroup {
    let mut group = DescribedGroup::default();
    group.group_id = str_bytes(d.group_id).into();
    group.group_state = str_bytes(d.state.as_str());
    group.protocol_type = str_bytes(d.protocol_type);
    group.protocol_data = str_bytes(d.protocol);
    if include_operations {
        group.authorized_operations = GROUP_OPERATIONS;
    }
    group.members = d
        .members
        .into_iter()
        .map(|m| {
            let mut member = DescribedGroupMember::default();
            member.member_id = str_bytes(m.member_id);
            member.group_instance_id = m.group_instance_id.map(str_bytes);
            member.client_id = str_bytes(m.client_id);
            member.client_host = str_bytes(m.client_host);
            member.member_metadata = m.metadata;
            member.member_assignment = m.assignment;
            member
        })
        .collect();
    group
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::protocol::Encodable;

    use super::*;
    use crate::group::{GroupStateName, MemberDescription};

    #[test]
    fn every_version_encodes() {
        let d = GroupDescription {
            group_id: "g".into(),
            state: GroupStateName::Stable,
            protocol_type: "consumer".into(),
            protocol: "range".into(),
            generation_id: 1,
            leader: Some("m".into()),
            members: vec![MemberDescription {
                member_id: "m".into(),
                group_instance_id: Some("i".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                metadata: Bytes::from_static(b"md"),
                assignment: Bytes::from_static(b"as"),
            }],
        };
        for version in VERSIONS.0..=VERSIONS.1 {
            let mut response = DescribeGroupsResponse::default();
            response.groups = vec![to_described(d.clone(), version >= 3)];
            assert_eq!(response.groups[0].group_state.as_str(), "Stable");
            let mut buf = BytesMut::new();
            response.encode(&mut buf, version).unwrap_or_else(|e| panic!("v{version}: {e}"));
        }
    }
}
