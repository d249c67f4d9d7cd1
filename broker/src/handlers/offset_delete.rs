//! TEMPORARY STUB written by the lead so the crate compiles; the group-coordinator engineer replaces it.
use std::future::{ready, Future};
use std::sync::Arc;
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse, RequestHeader};
use crate::broker::Broker;
pub const VERSIONS: (i16, i16) = (0, 0);
pub fn handle(_broker: &Arc<Broker>, _header: &RequestHeader, _request: OffsetDeleteRequest) -> impl Future<Output = OffsetDeleteResponse> + Send + 'static {
    ready(OffsetDeleteResponse::default())
}
