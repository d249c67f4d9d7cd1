//! TEMPORARY STUB written by the lead so the crate compiles; the group-coordinator engineer replaces it.
use std::future::{ready, Future};
use std::sync::Arc;
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse, RequestHeader};
use crate::broker::Broker;
pub const VERSIONS: (i16, i16) = (0, 4);
pub fn handle(_broker: &Arc<Broker>, _header: &RequestHeader, _request: HeartbeatRequest) -> impl Future<Output = HeartbeatResponse> + Send + 'static {
    ready(HeartbeatResponse::default())
}
