//! JoinGroup (API key 11): enter a group or take part in its rebalance.
//!
//! The coordinator decides synchronously (so pipelined requests apply in order); the returned future
//! waits, when the member has to, until the rebalance completes or the group moves on.
//! Version notes: v0 has no rebalance timeout (the session timeout is used, as Kafka does); v4+ first
//! gets MEMBER_ID_REQUIRED (KIP-394); v5+ carries `group_instance_id` (KIP-345); v7+ returns the
//! protocol type; v9 may set `skip_assignment` (KIP-814).
//!
//! References:
//! - <https://kafka.apache.org/protocol#The_Messages_JoinGroup>
//! - KIP-394: <https://cwiki.apache.org/confluence/display/KAFKA/KIP-394%3A+Require+member.id+for+initial+join+group+request>

use std::future::Future;
use std::sync::Arc;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse, RequestHeader};

use super::str_bytes;
use crate::broker::{steady_clock_ms, Broker};
use crate::group::{error_code, JoinRequest, JoinResponse, Protocol};

pub const VERSIONS: (i16, i16) = (0, 9);

/// Unlike the other handlers, JoinGroup also takes the client's address, which DescribeGroups shows
/// as the member's host, as Kafka does (`"/" + ip`).
pub fn handle_from(
    broker: &Arc<Broker>,
    header: &RequestHeader,
    request: JoinGroupRequest,
    client_host: String,
) -> impl Future<Output = JoinGroupResponse> + Send + 'static {
    let version = header.request_api_version;
    let client_id = header.client_id.as_ref().map(|c| c.to_string()).unwrap_or_default();
    let join = to_join_request(version, request, client_id, client_host);
    let reply = broker.groups.join(join, steady_clock_ms());
    async move { to_response(version, reply.wait().await) }
}

fn to_join_request(version: i16, request: JoinGroupRequest, client_id: String, client_host: String) -> JoinRequest {
    JoinRequest {
        group_id: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|i| i.to_string()),
        client_id,
        client_host,
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout for it.
        rebalance_timeout_ms: if version >= 1 && request.rebalance_timeout_ms >= 0 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| Protocol { name: p.name.to_string(), metadata: p.metadata })
            .collect(),
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
    }
}

fn to_response(version: i16, r: JoinResponse) -> JoinGroupResponse {
    let mut response = JoinGroupResponse::default();
    response.error_code = error_code(r.error);
    response.generation_id = r.generation_id;
    response.protocol_type = r.protocol_type.map(str_bytes);
    // The protocol name is only nullable from v7; before that Kafka sends "" for "none".
    response.protocol_name = match r.protocol_name {
        Some(name) => Some(str_bytes(name)),
        None if version < 7 => Some(str_bytes("")),
        None => None,
    };
    response.leader = str_bytes(r.leader);
    response.skip_assignment = r.skip_assignment && version >= 9;
    response.member_id = str_bytes(r.member_id);
    response.members = r
        .members
        .into_iter()
        .map(|m| {
            let mut member = JoinGroupResponseMember::default();
            member.member_id = str_bytes(m.member_id);
            member.group_instance_id = m.group_instance_id.map(str_bytes);
            member.metadata = m.metadata;
            member
        })
        .collect();
    response
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::protocol::Encodable;
    use kafka_protocol::ResponseError;

    use super::*;
    use crate::group::JoinedMember;

    #[test]
    fn every_version_encodes_success_and_error() {
        for version in VERSIONS.0..=VERSIONS.1 {
            let ok = JoinResponse {
                error: None,
                generation_id: 3,
                protocol_type: Some("consumer".into()),
                protocol_name: Some("range".into()),
                leader: "m1".into(),
                skip_assignment: true,
                member_id: "m1".into(),
                members: vec![JoinedMember {
                    member_id: "m1".into(),
                    group_instance_id: Some("i1".into()),
                    metadata: Bytes::from_static(b"x"),
                }],
            };
            let err = JoinResponse::error("", ResponseError::MemberIdRequired);
            for r in [ok, err] {
                let mut buf = BytesMut::new();
                to_response(version, r).encode(&mut buf, version).unwrap_or_else(|e| panic!("v{version}: {e}"));
            }
        }
    }

    #[test]
    fn v0_uses_session_timeout_as_rebalance_timeout() {
        let mut request = JoinGroupRequest::default();
        request.session_timeout_ms = 10_000;
        let mut protocol = JoinGroupRequestProtocol::default();
        protocol.name = str_bytes("range");
        request.protocols = vec![protocol];
        let join = to_join_request(0, request.clone(), "c".into(), "/h".into());
        assert_eq!(join.rebalance_timeout_ms, 10_000);
        assert!(!join.require_known_member_id);
        request.rebalance_timeout_ms = 60_000;
        let join = to_join_request(5, request, "c".into(), "/h".into());
        assert_eq!(join.rebalance_timeout_ms, 60_000);
        assert!(join.require_known_member_id);
        assert_eq!(join.protocols[0].name, "range");
    }
}
