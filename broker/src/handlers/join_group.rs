//! TEMPORARY STUB written by the lead so the crate compiles; the group-coordinator engineer replaces it.
use std::future::{ready, Future};
use std::sync::Arc;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse, RequestHeader};
use crate::broker::Broker;
pub const VERSIONS: (i16, i16) = (0, 9);
pub fn handle(_broker: &Arc<Broker>, _header: &RequestHeader, _request: JoinGroupRequest) -> impl Future<Output = JoinGroupResponse> + Send + 'static {
    ready(JoinGroupResponse::default())
}
