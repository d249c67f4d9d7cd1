//! The requests a group handles and the answers it gives, as the coordinator sees them: wire version
//! differences are already resolved by the handlers, and error codes are Kafka's (data, not Rust
//! errors). [`Reply`] is an answer now or one parked until the rebalance moves on.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;

use super::GroupStateName;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    pub metadata: Bytes,
}

/// A JoinGroup as the coordinator sees it (wire version differences already resolved).
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub group_id: String,
    /// Empty on a member's first join.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    /// JoinGroup v4+: a member without an id first gets MEMBER_ID_REQUIRED (KIP-394).
    pub require_known_member_id: bool,
    /// JoinGroup v9+: `skip_assignment` can be sent (KIP-814).
    pub supports_skip_assignment: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JoinResponse {
    pub error: Option<ResponseError>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub skip_assignment: bool,
    pub member_id: String,
    /// Only the leader gets the members (and their metadata for the chosen protocol).
    pub members: Vec<JoinedMember>,
}

impl JoinResponse {
    pub fn error(member_id: impl Into<String>, error: ResponseError) -> Self {
        Self {
            error: Some(error),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            member_id: member_id.into(),
            members: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// SyncGroup v5+; checked against the group's when present.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// Only the leader sends assignments.
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SyncResponse {
    pub error: Option<ResponseError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResponse {
    pub fn error(error: ResponseError) -> Self {
        Self { error: Some(error), protocol_type: None, protocol_name: None, assignment: Bytes::new() }
    }
}

#[derive(Debug, Clone)]
pub struct LeaveMember {
    /// Empty to remove a static member by `group_instance_id` alone (admin removal, LeaveGroup v3+).
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

/// What a waiting request gets if its sender vanished without an answer (it should not happen: every
/// path answers; this is the belt to those braces). Both make the client rejoin.
pub trait Abandoned {
    fn abandoned() -> Self;
}

impl Abandoned for JoinResponse {
    fn abandoned() -> Self {
        JoinResponse::error("", ResponseError::UnknownMemberId)
    }
}

impl Abandoned for SyncResponse {
    fn abandoned() -> Self {
        SyncResponse::error(ResponseError::RebalanceInProgress)
    }
}

/// An answer now, or one that comes when the rebalance moves on.
#[derive(Debug)]
pub enum Reply<T> {
    Ready(T),
    Pending(oneshot::Receiver<T>),
}

impl<T: Abandoned> Reply<T> {
    pub async fn wait(self) -> T {
        match self {
            Reply::Ready(t) => t,
            Reply::Pending(rx) => rx.await.unwrap_or_else(|_| T::abandoned()),
        }
    }
}

impl<T> Reply<T> {
    pub fn into_ready(self) -> Option<T> {
        match self {
            Reply::Ready(t) => Some(t),
            Reply::Pending(_) => None,
        }
    }

    pub fn into_pending(self) -> Option<oneshot::Receiver<T>> {
        match self {
            Reply::Ready(_) => None,
            Reply::Pending(rx) => Some(rx),
        }
    }
}

/// What DescribeGroups and the CLI show about one group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: GroupStateName,
    pub protocol_type: String,
    /// The selected protocol (assignor); empty unless Stable, as in Kafka.
    pub protocol: String,
    pub generation_id: i32,
    pub leader: Option<String>,
    pub members: Vec<MemberDescription>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Metadata for the selected protocol and the assignment; empty unless the group is Stable.
    pub metadata: Bytes,
    pub assignment: Bytes,
}
