//! TEMPORARY STUB written by the lead so the crate compiles; the group-coordinator engineer replaces it.
use std::future::{ready, Future};
use std::sync::Arc;
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, RequestHeader};
use crate::broker::Broker;
pub const VERSIONS: (i16, i16) = (2, 8);
pub fn handle(_broker: &Arc<Broker>, _header: &RequestHeader, _request: OffsetCommitRequest) -> impl Future<Output = OffsetCommitResponse> + Send + 'static {
    ready(OffsetCommitResponse::default())
}
