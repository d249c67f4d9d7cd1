//! Heartbeat (API key 12): keeps a member's session alive and tells it when to rejoin
//! (REBALANCE_IN_PROGRESS). Answered at once.
//!
//! References:
//! - <https://kafka.apache.org/protocol#The_Messages_Heartbeat>

use std::future::{ready, Future};
use std::sync::Arc;

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse, RequestHeader};

use crate::broker::{steady_clock_ms, Broker};
use crate::group::error_code;

pub const VERSIONS: (i16, i16) = (0, 4);

pub fn handle(
    broker: &Arc<Broker>,
    _header: &RequestHeader,
    request: HeartbeatRequest,
) -> impl Future<Output = HeartbeatResponse> + Send + 'static {
    let error = broker.groups.heartbeat(
        &request.group_id.0,
        &request.member_id,
        request.group_instance_id.as_deref(),
        request.generation_id,
        steady_clock_ms(),
    );
    let mut response = HeartbeatResponse::default();
    response.error_code = error_code(error);
    ready(response)
}
