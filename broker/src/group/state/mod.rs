//! One consumer group and the classic rebalance protocol, as a pure state machine.
//!
//! This follows Kafka's `GroupCoordinator`/`GroupMetadata` (the pre-KIP-848 "classic" protocol) closely,
//! including its error codes, because clients are written against its exact behaviour:
//!
//! ```text
//!            join (first member)                      all members rejoined, or rebalance timeout
//!   Empty ───────────────────────► PreparingRebalance ────────────────────────► CompletingRebalance
//!     ▲                                ▲   ▲                                           │ leader's SyncGroup
//!     │ last member left/expired       │   └──── member joins/leaves/expires ──────────┤
//!     └────────────────────────────────┘         leader rejoins, metadata changes      ▼
//!                                                                                    Stable
//! ```
//!
//! Nothing here does I/O or reads a clock: every transition takes `now_ms`, and the waiting JoinGroup and
//! SyncGroup requests are `oneshot` senders stored on their member. Every code path that drops a member
//! or moves the group on answers that member's waiting requests, so no request is left hanging.
//!
//! References:
//! - Kafka protocol guide, group membership API: <https://kafka.apache.org/protocol#The_Messages_JoinGroup>
//! - "Kafka Client-side Assignment Proposal" (the classic JoinGroup/SyncGroup design):
//!   <https://cwiki.apache.org/confluence/display/KAFKA/Kafka+Client-side+Assignment+Proposal>
//! - KIP-345 static membership (`group.instance.id`, FENCED_INSTANCE_ID):
//!   <https://cwiki.apache.org/confluence/display/KAFKA/KIP-345%3A+Introduce+static+membership+protocol+to+reduce+consumer+rebalances>
//! - KIP-394 MEMBER_ID_REQUIRED on the first JoinGroup (v4+):
//!   <https://cwiki.apache.org/confluence/display/KAFKA/KIP-394%3A+Require+member.id+for+initial+join+group+request>
//! - KIP-134 `group.initial.rebalance.delay.ms`:
//!   <https://cwiki.apache.org/confluence/display/KAFKA/KIP-134%3A+Delay+initial+consumer+group+rebalance>
//! - KIP-814 static leader rejoin (`skip_assignment`, JoinGroup v9):
//!   <https://cwiki.apache.org/confluence/display/KAFKA/KIP-814%3A+Static+membership+protocol+should+let+the+leader+skip+assignment>
//!
//! `Group` is one struct; its handling is split by request:
//! - this file: the state types, `Group` itself, lookups shared by every request, and the admin view;
//! - `messages`: the requests and answers exchanged with the coordinator, and [`Reply`];
//! - `member`: one member and its parked JoinGroup/SyncGroup answers;
//! - `join`: JoinGroup, protocol selection and the end of a rebalance;
//! - `sync`: SyncGroup and distributing the leader's assignment;
//! - `membership`: Heartbeat, LeaveGroup, removing members, and the timers (session, pending-member,
//!   rebalance and sync deadlines);
//! - `commit`: which OffsetCommits the group accepts.

mod commit;
mod join;
mod member;
mod membership;
mod messages;
mod sync;
#[cfg(test)]
mod tests;

pub(crate) use member::Member;
pub use messages::{
    GroupDescription, JoinRequest, JoinResponse, JoinedMember, LeaveMember, MemberDescription, Protocol, Reply,
    SyncRequest, SyncResponse,
};

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

/// How long a brand-new member may wait in a rebalance without rejoining before it is dropped
/// (Kafka's `GroupCoordinator.NewMemberJoinTimeoutMs`). Its JoinGroup is in flight, so it cannot heartbeat.
pub const NEW_MEMBER_JOIN_TIMEOUT_MS: i64 = 5 * 60 * 1000;

/// Coordinator settings taken from the broker config.
#[derive(Debug, Clone)]
pub struct GroupSettings {
    pub initial_rebalance_delay_ms: i64,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub offsets_retention_ms: i64,
}

/// Kafka's group state names, exactly as DescribeGroups and ListGroups report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupStateName {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupStateName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::PreparingRebalance => "PreparingRebalance",
            Self::CompletingRebalance => "CompletingRebalance",
            Self::Stable => "Stable",
            Self::Dead => "Dead",
        }
    }

    /// Case-insensitive, as Kafka parses ListGroups' `states_filter`.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Empty, Self::PreparingRebalance, Self::CompletingRebalance, Self::Stable, Self::Dead]
            .into_iter()
            .find(|state| state.as_str().eq_ignore_ascii_case(s))
    }
}

impl std::fmt::Display for GroupStateName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state with the data that only makes sense in it (deadlines), so a deadline cannot outlive its state.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum GroupState {
    /// No members. `since_ms` is the base of offset expiry (KIP-211).
    Empty {
        since_ms: i64,
    },
    /// Waiting for members to (re)join until `deadline_ms`.
    PreparingRebalance(Rebalance),
    /// Join complete; waiting for the leader's assignment. Members that have not sent SyncGroup by
    /// `sync_deadline_ms` are removed.
    CompletingRebalance {
        sync_deadline_ms: i64,
    },
    /// Assignment done. Members that still owe a SyncGroup are removed at `sync_deadline_ms`.
    Stable {
        sync_deadline_ms: Option<i64>,
    },
    Dead,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rebalance {
    pub deadline_ms: i64,
    /// Set for the first rebalance of an empty group: it only ends on its timer (Kafka's InitialDelayedJoin).
    pub initial: Option<InitialDelay>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct InitialDelay {
    pub delay_ms: i64,
    pub remaining_ms: i64,
}
#[derive(Debug)]
pub(crate) struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    /// Set by the first member and kept after the group empties (Kafka does too; expiry relies on it).
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    /// In join order, which makes leader fallback and responses deterministic.
    pub members: Vec<Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with the deadline for the rejoin.
    pub pending_members: HashMap<String, i64>,
    /// Members of this generation that have not sent SyncGroup yet.
    pub pending_sync: HashSet<String>,
    /// A member joined during the initial delayed rebalance, so the delay may be extended once more.
    pub new_member_added: bool,
    /// Topics the members subscribed to in this generation; `None` if unknown (not a consumer group, or
    /// metadata that does not parse), which OffsetDelete treats as "maybe subscribed".
    pub subscribed_topics: Option<HashSet<String>>,
}

type JoinResult = Reply<JoinResponse>;

impl Group {
    pub fn new(id: impl Into<String>, now_ms: i64) -> Self {
        Self {
            id: id.into(),
            state: GroupState::Empty { since_ms: now_ms },
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: Vec::new(),
            pending_members: HashMap::new(),
            pending_sync: HashSet::new(),
            new_member_added: false,
            subscribed_topics: None,
        }
    }

    pub fn state_name(&self) -> GroupStateName {
        match self.state {
            GroupState::Empty { .. } => GroupStateName::Empty,
            GroupState::PreparingRebalance(_) => GroupStateName::PreparingRebalance,
            GroupState::CompletingRebalance { .. } => GroupStateName::CompletingRebalance,
            GroupState::Stable { .. } => GroupStateName::Stable,
            GroupState::Dead => GroupStateName::Dead,
        }
    }

    pub fn is(&self, state: GroupStateName) -> bool {
        self.state_name() == state
    }

    /// When the group became empty, if it is.
    pub fn empty_since(&self) -> Option<i64> {
        match self.state {
            GroupState::Empty { since_ms } => Some(since_ms),
            _ => None,
        }
    }

    fn member_index(&self, member_id: &str) -> Option<usize> {
        self.members.iter().position(|m| m.id == member_id)
    }

    fn static_member_id(&self, instance_id: &str) -> Option<String> {
        self.members.iter().find(|m| m.instance_id.as_deref() == Some(instance_id)).map(|m| m.id.clone())
    }

    fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    fn rebalance_timeout_ms(&self) -> i64 {
        self.members.iter().map(|m| i64::from(m.rebalance_timeout_ms)).max().unwrap_or(0)
    }

    /// Kafka's `validateCurrentMember`: a static member must map to this member id, and the member must
    /// exist. Returns the member's index.
    fn validate_current_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<usize, ResponseError> {
        if let Some(instance) = instance_id {
            match self.static_member_id(instance) {
                None => return Err(ResponseError::UnknownMemberId),
                Some(current) if current != member_id => return Err(ResponseError::FencedInstanceId),
                Some(_) => {}
            }
        }
        self.member_index(member_id).ok_or(ResponseError::UnknownMemberId)
    }

    /// OffsetDelete's test: may this group still be consuming `topic`?
    pub fn is_subscribed_to(&self, topic: &str) -> bool {
        match &self.subscribed_topics {
            Some(topics) => topics.contains(topic),
            None => true,
        }
    }

    pub fn describe(&self) -> GroupDescription {
        // Like Kafka, protocol, member metadata and assignments are only shown for a Stable group: in any
        // other state they are from a generation that is being replaced.
        let stable = self.is(GroupStateName::Stable);
        let protocol = if stable { self.protocol_name.clone().unwrap_or_default() } else { String::new() };
        GroupDescription {
            group_id: self.id.clone(),
            state: self.state_name(),
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol: protocol.clone(),
            generation_id: self.generation,
            leader: self.leader.clone(),
            members: self
                .members
                .iter()
                .map(|m| MemberDescription {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata_for(&protocol).cloned().unwrap_or_default()
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable { m.assignment.clone() } else { Bytes::new() },
                })
                .collect(),
        }
    }

    /// Marks the group Dead (deleted or forgotten). It has no members then, only possibly pending ones,
    /// which will get UNKNOWN_MEMBER_ID on their rejoin.
    pub fn mark_dead(&mut self) {
        while !self.members.is_empty() {
            self.detach_member(0);
        }
        self.pending_members.clear();
        self.state = GroupState::Dead;
    }
}
