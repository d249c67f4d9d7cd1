//! ListGroups (API key 16): every group this coordinator knows, including offset-only groups of
//! standalone consumers (empty protocol type), as Kafka lists them. v4+ (KIP-518) filters by state
//! (case-insensitive) and returns each group's state; v5+ (KIP-848) filters by type and returns it. Every
//! group here is a `classic` group (KIP-848's `consumer` protocol is not implemented).
//!
//! References:
//! - <https://kafka.apache.org/protocol#The_Messages_ListGroups>
//! - KIP-518: <https://cwiki.apache.org/confluence/display/KAFKA/KIP-518%3A+Allow+listing+consumer+groups+per+state>

use std::future::{ready, Future};
use std::sync::Arc;

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{ListGroupsRequest, ListGroupsResponse, RequestHeader};

use super::str_bytes;
use crate::broker::Broker;
use crate::group::{GroupListing, GroupStateName};

pub const VERSIONS: (i16, i16) = (0, 5);

pub fn handle(
    broker: &Arc<Broker>,
    header: &RequestHeader,
    request: ListGroupsRequest,
) -> impl Future<Output = ListGroupsResponse> + Send + 'static {
    let filter: Vec<String> = if header.request_api_version >= 4 {
        request.states_filter.iter().map(|s| s.to_string()).collect()
    } else {
        Vec::new()
    };
    let types: Vec<String> = if header.request_api_version >= 5 {
        request.types_filter.iter().map(|s| s.to_lowercase()).collect()
    } else {
        Vec::new()
    };
    let listing =
        if types.is_empty() || types.iter().any(|t| t == CLASSIC) { broker.groups.list_groups() } else { Vec::new() };
    ready(respond(listing, &filter))
}

/// The group type of every group this coordinator runs (KIP-848 names the old protocol `classic`).
const CLASSIC: &str = "classic";

fn respond(listing: Vec<GroupListing>, states_filter: &[String]) -> ListGroupsResponse {
    // A state name we do not know matches nothing (Kafka rejects it; an empty answer is kinder).
    let wanted: Vec<Option<GroupStateName>> = states_filter.iter().map(|s| GroupStateName::parse(s)).collect();
    let mut response = ListGroupsResponse::default();
    response.groups = listing
        .into_iter()
        .filter(|g| wanted.is_empty() || wanted.contains(&Some(g.state)))
        .map(|g| {
            let mut listed = ListedGroup::default();
            listed.group_id = str_bytes(g.group_id).into();
            listed.protocol_type = str_bytes(g.protocol_type);
            listed.group_state = str_bytes(g.state.as_str());
            listed.group_type = str_bytes(CLASSIC);
            listed
        })
        .collect();
    response
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::protocol::Encodable;

    use super::*;

    fn listing() -> Vec<GroupListing> {
        vec![
            GroupListing { group_id: "a".into(), protocol_type: "consumer".into(), state: GroupStateName::Stable },
            GroupListing { group_id: "b".into(), protocol_type: String::new(), state: GroupStateName::Empty },
        ]
    }

    #[test]
    fn filters_by_state_case_insensitively() {
        assert_eq!(respond(listing(), &[]).groups.len(), 2);
        let response = respond(listing(), &["empty".to_owned()]);
        assert_eq!(response.groups.len(), 1);
        assert_eq!(response.groups[0].group_id.0.as_str(), "b");
        assert!(respond(listing(), &["Bogus".to_owned()]).groups.is_empty());
        for version in VERSIONS.0..=VERSIONS.1 {
            let mut buf = BytesMut::new();
            respond(listing(), &[]).encode(&mut buf, version).unwrap_or_else(|e| panic!("v{version}: {e}"));
        }
    }
}
