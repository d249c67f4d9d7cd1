//! SyncGroup (API key 14): the leader hands in the assignment; every member gets its own part.
//!
//! Followers that arrive before the leader wait (the future) until it does, or until the group moves on
//! (then they get REBALANCE_IN_PROGRESS or another error and rejoin). v5+ repeats the protocol type and
//! name, which the coordinator checks (INCONSISTENT_GROUP_PROTOCOL).
//!
//! References:
//! - <https://kafka.apache.org/protocol#The_Messages_SyncGroup>

use std::future::Future;
use std::sync::Arc;

use kafka_protocol::messages::{RequestHeader, SyncGroupRequest, SyncGroupResponse};

use super::str_bytes;
use crate::broker::{steady_clock_ms, Broker};
use crate::group::{error_code, SyncRequest, SyncResponse};

pub const VERSIONS: (i16, i16) = (0, 5);

pub fn handle(
    broker: &Arc<Broker>,
    _header: &RequestHeader,
    request: SyncGroupRequest,
) -> impl Future<Output = SyncGroupResponse> + Send + 'static {
    let reply = broker.groups.sync(to_sync_request(request), steady_clock_ms());
    async move { to_response(reply.wait().await) }
}

fn to_sync_request(request: SyncGroupRequest) -> SyncRequest {
    SyncRequest {
        group_id: request.group_id.0.to_string(),
        generation_id: request.generation_id,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|i| i.to_string()),
        protocol_type: request.protocol_type.map(|p| p.to_string()),
        protocol_name: request.protocol_name.map(|p| p.to_string()),
        assignments: request.assignments.into_iter().map(|a| (a.member_id.to_string(), a.assignment)).collect(),
    }
}

fn to_response(r: SyncResponse) -> SyncGroupResponse {
    let mut response = SyncGroupResponse::default();
    response.error_code = error_code(r.error);
    response.protocol_type = r.protocol_type.map(str_bytes);
    response.protocol_name = r.protocol_name.map(str_bytes);
    response.assignment = r.assignment;
    response
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::protocol::Encodable;
    use kafka_protocol::ResponseError;

    use super::*;

    #[test]
    fn every_version_encodes() {
        for version in VERSIONS.0..=VERSIONS.1 {
            let ok = SyncResponse {
                error: None,
                protocol_type: Some("consumer".into()),
                protocol_name: Some("range".into()),
                assignment: Bytes::from_static(b"assignment"),
            };
            for r in [ok, SyncResponse::error(ResponseError::RebalanceInProgress)] {
                let mut buf = BytesMut::new();
                to_response(r).encode(&mut buf, version).unwrap_or_else(|e| panic!("v{version}: {e}"));
            }
        }
    }
}
