//! DeleteGroups (API key 42): forget empty groups and their committed offsets
//! (`kafka-consumer-groups --delete`). A group with members gets NON_EMPTY_GROUP, an unknown one
//! GROUP_ID_NOT_FOUND. The response waits until the deletion is on disk.
//!
//! References:
//! - <https://kafka.apache.org/protocol#The_Messages_DeleteGroups>
//! - KIP-229: <https://cwiki.apache.org/confluence/display/KAFKA/KIP-229%3A+DeleteGroups+API>

use std::future::Future;
use std::sync::Arc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, RequestHeader};

use crate::broker::Broker;
use crate::group::error_code;

pub const VERSIONS: (i16, i16) = (0, 2);

pub fn handle(
    broker: &Arc<Broker>,
    _header: &RequestHeader,
    request: DeleteGroupsRequest,
) -> impl Future<Output = DeleteGroupsResponse> + Send + 'static {
    let ids: Vec<String> = request.groups_names.iter().map(|g| g.0.to_string()).collect();
    let outcome = broker.groups.delete_groups(&ids);
    async move {
        let errors = outcome.wait().await;
        let mut response = DeleteGroupsResponse::default();
        response.results = request
            .groups_names
            .into_iter()
            .zip(errors)
            .map(|(group_id, e)| {
                let mut result = DeletableGroupResult::default();
                result.group_id = group_id;
                result.error_code = error_code(e);
                result
            })
            .collect();
        response
    }
}
