//! FindCoordinator (API key 10): every group's coordinator is this node.
//!
//! v0–v3 ask for one key; v4+ (KIP-699) batch several in `coordinator_keys` and answer per key.
//! Transaction coordinators (`key_type` 1) are refused with TRANSACTIONAL_ID_AUTHORIZATION_FAILED: we do
//! not implement transactions, and that is the error the Java client and librdkafka treat as final, so
//! `initTransactions()` fails at once with a clear exception instead of retrying until `max.block.ms`
//! (which COORDINATOR_NOT_AVAILABLE would cause). Produce refuses transactional batches the same way.
//!
//! References:
//! - <https://kafka.apache.org/protocol#The_Messages_FindCoordinator>
//! - KIP-699: <https://cwiki.apache.org/confluence/display/KAFKA/KIP-699%3A+Update+FindCoordinator+to+resolve+multiple+Coordinators+at+a+time>

use std::future::{ready, Future};
use std::sync::Arc;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, RequestHeader};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::broker::{Broker, NodeInfo};

pub const VERSIONS: (i16, i16) = (0, 4);

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

pub fn handle(
    _broker: &Arc<Broker>,
    header: &RequestHeader,
    request: FindCoordinatorRequest,
    node: &NodeInfo,
) -> impl Future<Output = FindCoordinatorResponse> + Send + 'static {
    ready(respond(node, header.request_api_version, request))
}

fn lookup(node: &NodeInfo, key_type: i8) -> Result<(i32, String, i32), ResponseError> {
    match key_type {
        KEY_TYPE_GROUP => Ok((node.node_id, node.host.clone(), node.port)),
        KEY_TYPE_TRANSACTION => Err(ResponseError::TransactionalIdAuthorizationFailed),
        _ => Err(ResponseError::InvalidRequest),
    }
}

fn respond(node: &NodeInfo, version: i16, request: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let mut response = FindCoordinatorResponse::default();
    if version >= 4 {
        response.coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let mut c = Coordinator::default();
                c.key = key;
                match lookup(node, request.key_type) {
                    Ok((node_id, host, port)) => {
                        c.node_id = BrokerId(node_id);
                        c.host = str_bytes(host);
                        c.port = port;
                        c.error_message = None;
                    }
                    Err(e) => {
                        c.node_id = BrokerId(-1);
                        c.port = -1;
                        c.error_code = e.code();
                        c.error_message = Some(str_bytes(e.to_string()));
                    }
                }
                c
            })
            .collect();
        return response;
    }
    // v0 has no key_type field; it decodes as 0 (group).
    match lookup(node, request.key_type) {
        Ok((node_id, host, port)) => {
            response.node_id = BrokerId(node_id);
            response.host = str_bytes(host);
            response.port = port;
            response.error_message = None;
        }
        Err(e) => {
            response.error_code = e.code();
            response.error_message = Some(str_bytes(e.to_string()));
            response.node_id = BrokerId(-1);
            response.port = -1;
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::protocol::Encodable;

    use super::*;

    fn node() -> NodeInfo {
        NodeInfo { node_id: 7, host: "broker.local".into(), port: 9092 }
    }

    #[test]
    fn every_version_encodes() {
        for version in VERSIONS.0..=VERSIONS.1 {
            for key_type in [KEY_TYPE_GROUP, KEY_TYPE_TRANSACTION] {
                let mut request = FindCoordinatorRequest::default();
                request.key = str_bytes("g");
                request.key_type = if version == 0 { 0 } else { key_type };
                request.coordinator_keys = vec![str_bytes("g1"), str_bytes("g2")];
                let response = respond(&node(), version, request);
                let mut buf = BytesMut::new();
                response.encode(&mut buf, version).unwrap_or_else(|e| panic!("v{version}: {e}"));
            }
        }
    }

    #[test]
    fn batched_and_single_answers() {
        let mut request = FindCoordinatorRequest::default();
        request.coordinator_keys = vec![str_bytes("a"), str_bytes("b")];
        let response = respond(&node(), 4, request);
        assert_eq!(response.coordinators.len(), 2);
        assert_eq!(response.coordinators[1].key.as_str(), "b");
        assert_eq!(response.coordinators[1].node_id, BrokerId(7));
        assert_eq!(response.coordinators[1].port, 9092);

        let mut request = FindCoordinatorRequest::default();
        request.key = str_bytes("a");
        let response = respond(&node(), 3, request);
        assert_eq!((response.error_code, response.node_id, response.host.as_str()), (0, BrokerId(7), "broker.local"));

        let mut request = FindCoordinatorRequest::default();
        request.key_type = KEY_TYPE_TRANSACTION;
        let response = respond(&node(), 3, request);
        assert_eq!(response.error_code, ResponseError::TransactionalIdAuthorizationFailed.code());
    }
}
