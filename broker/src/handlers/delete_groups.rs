//! TEMPORARY STUB written by the lead so the crate compiles; the group-coordinator engineer replaces it.
use std::future::{ready, Future};
use std::sync::Arc;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, RequestHeader};
use crate::broker::Broker;
pub const VERSIONS: (i16, i16) = (0, 2);
pub fn handle(_broker: &Arc<Broker>, _header: &RequestHeader, _request: DeleteGroupsRequest) -> impl Future<Output = DeleteGroupsResponse> + Send + 'static {
    ready(DeleteGroupsResponse::default())
}
