//! LeaveGroup (API key 13): members leave at once instead of waiting for their session to expire.
//!
//! v0–v2 carry one `member_id` and report its error at the top level; v3+ (KIP-345) carry a batch of
//! members, identified by member id and/or `group_instance_id` (admin removal of static members), with
//! an error per member.
//!
//! References:
//! - <https://kafka.apache.org/protocol#The_Messages_LeaveGroup>
//! - KIP-345: <https://cwiki.apache.org/confluence/display/KAFKA/KIP-345%3A+Introduce+static+membership+protocol+to+reduce+consumer+rebalances>

use std::future::{ready, Future};
use std::sync::Arc;

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse, RequestHeader};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::broker::{steady_clock_ms, Broker};
use crate::group::{error_code, LeaveMember};

pub const VERSIONS: (i16, i16) = (0, 5);

pub fn handle(
    broker: &Arc<Broker>,
    header: &RequestHeader,
    request: LeaveGroupRequest,
) -> impl Future<Output = LeaveGroupResponse> + Send + 'static {
    let version = header.request_api_version;
    let members = leaving_members(version, &request);
    let result = broker.groups.leave(&request.group_id.0, &members, steady_clock_ms());
    ready(to_response(version, &members, result))
}

fn leaving_members(version: i16, request: &LeaveGroupRequest) -> Vec<LeaveMember> {
    if version < 3 {
        return vec![LeaveMember { member_id: request.member_id.to_string(), group_instance_id: None }];
    }
    request
        .members
        .iter()
        .map(|m| LeaveMember {
            member_id: m.member_id.to_string(),
            group_instance_id: m.group_instance_id.as_ref().map(|i| i.to_string()),
        })
        .collect()
}

fn to_response(
    version: i16,
    members: &[LeaveMember],
    result: Result<Vec<Option<ResponseError>>, ResponseError>,
) -> LeaveGroupResponse {
    let mut response = LeaveGroupResponse::default();
    match result {
        Err(e) => response.error_code = e.code(),
        // Before v3 the one member's error is the response's error.
        Ok(errors) if version < 3 => response.error_code = error_code(errors.first().copied().flatten()),
        Ok(errors) => {
            response.members = members
                .iter()
                .zip(errors)
                .map(|(m, e)| {
                    let mut r = MemberResponse::default();
                    r.member_id = str_bytes(m.member_id.clone());
                    r.group_instance_id = m.group_instance_id.clone().map(str_bytes);
                    r.error_code = error_code(e);
                    r
                })
                .collect();
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::protocol::Encodable;

    use super::*;

    #[test]
    fn every_version_encodes() {
        for version in VERSIONS.0..=VERSIONS.1 {
            let members = vec![LeaveMember { member_id: "m".into(), group_instance_id: Some("i".into()) }];
            for result in
                [Ok(vec![Some(ResponseError::UnknownMemberId)]), Ok(vec![None]), Err(ResponseError::InvalidGroupId)]
            {
                let response = to_response(version, &members, result);
                let mut buf = BytesMut::new();
                response.encode(&mut buf, version).unwrap_or_else(|e| panic!("v{version}: {e}"));
            }
        }
    }

    #[test]
    fn old_versions_report_the_member_error_at_top_level() {
        let members = vec![LeaveMember { member_id: "m".into(), group_instance_id: None }];
        let response = to_response(2, &members, Ok(vec![Some(ResponseError::UnknownMemberId)]));
        assert_eq!(response.error_code, ResponseError::UnknownMemberId.code());
        assert!(response.members.is_empty());
        let response = to_response(3, &members, Ok(vec![Some(ResponseError::UnknownMemberId)]));
        assert_eq!(response.error_code, 0);
        assert_eq!(response.members[0].error_code, ResponseError::UnknownMemberId.code());
    }
}
