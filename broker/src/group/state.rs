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

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;

use super::subscription::{subscribed_topics, CONSUMER_PROTOCOL_TYPE};

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
    Empty { since_ms: i64 },
    /// Waiting for members to (re)join until `deadline_ms`.
    PreparingRebalance(Rebalance),
    /// Join complete; waiting for the leader's assignment. Members that have not sent SyncGroup by
    /// `sync_deadline_ms` are removed.
    CompletingRebalance { sync_deadline_ms: i64 },
    /// Assignment done. Members that still owe a SyncGroup are removed at `sync_deadline_ms`.
    Stable { sync_deadline_ms: Option<i64> },
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

#[derive(Debug)]
pub(crate) struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    pub assignment: Bytes,
    pub heartbeat_deadline_ms: i64,
    /// Joined in the current rebalance and never completed one: it cannot heartbeat yet, so it gets
    /// [`NEW_MEMBER_JOIN_TIMEOUT_MS`] instead of its session timeout.
    pub is_new: bool,
    join_waiter: Option<oneshot::Sender<JoinResponse>>,
    sync_waiter: Option<oneshot::Sender<SyncResponse>>,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols.iter().find(|p| p.name == protocol).map(|p| &p.metadata)
    }

    fn supports(&self, protocol: &str) -> bool {
        self.metadata_for(protocol).is_some()
    }

    fn awaiting_join(&self) -> bool {
        self.join_waiter.is_some()
    }

    /// Kafka's `!hasSatisfiedHeartbeat` at the deadline: members parked in a JoinGroup or SyncGroup
    /// cannot heartbeat, so they do not expire (the rebalance and sync deadlines handle them), except
    /// new members, which would otherwise linger forever if they went away mid-join.
    fn expired(&self, now_ms: i64) -> bool {
        if now_ms < self.heartbeat_deadline_ms {
            return false;
        }
        self.is_new || (self.join_waiter.is_none() && self.sync_waiter.is_none())
    }

    fn touch(&mut self, now_ms: i64) {
        self.heartbeat_deadline_ms = now_ms + i64::from(self.session_timeout_ms);
    }

    fn answer_join(&mut self, response: JoinResponse) {
        if let Some(tx) = self.join_waiter.take() {
            // The receiver is gone if the client disconnected; nothing to do then.
            let _ = tx.send(response);
        }
    }

    fn answer_sync(&mut self, response: SyncResponse) {
        if let Some(tx) = self.sync_waiter.take() {
            let _ = tx.send(response);
        }
    }
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

    /// Kafka's `supportsProtocols`: an empty group takes anyone with a protocol; otherwise the type must
    /// match and at least one of the offered protocols must be supported by every current member.
    fn supports_protocols(&self, protocol_type: &str, protocols: &[Protocol]) -> bool {
        if self.is(GroupStateName::Empty) {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|p| self.members.iter().all(|m| m.supports(&p.name)))
    }

    /// Kafka's `selectProtocol`: among the protocols every member supports, each member votes for the
    /// first in its own preference order; most votes wins. Ties go to the leader's preference order
    /// (Kafka leaves them to hash order).
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.first()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .filter(|name| self.members.iter().all(|m| m.supports(name)))
            .collect();
        if candidates.is_empty() {
            // Cannot happen after supports_protocols, but never leave a generation without a protocol.
            return Some(first.protocols.first()?.name.clone());
        }
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for m in &self.members {
            if let Some(vote) = m.protocols.iter().find(|p| candidates.contains(&p.name.as_str())) {
                *votes.entry(vote.name.as_str()).or_default() += 1;
            }
        }
        let leader = self.leader.as_deref().and_then(|l| self.members.iter().find(|m| m.id == l)).unwrap_or(first);
        let preference = |name: &str| leader.protocols.iter().position(|p| p.name == name).unwrap_or(usize::MAX);
        candidates
            .iter()
            .max_by(|a, b| votes.get(*a).cmp(&votes.get(*b)).then_with(|| preference(b).cmp(&preference(a))))
            .map(|name| (*name).to_owned())
    }

    fn compute_subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return None;
        }
        if self.members.is_empty() {
            return Some(HashSet::new());
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = HashSet::new();
        for m in &self.members {
            topics.extend(subscribed_topics(m.metadata_for(protocol)?)?);
        }
        Some(topics)
    }

    /// OffsetDelete's test: may this group still be consuming `topic`?
    pub fn is_subscribed_to(&self, topic: &str) -> bool {
        match &self.subscribed_topics {
            Some(topics) => topics.contains(topic),
            None => true,
        }
    }

    fn current_member_metadata(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        self.members
            .iter()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                group_instance_id: m.instance_id.clone(),
                metadata: m.metadata_for(protocol).cloned().unwrap_or_default(),
            })
            .collect()
    }

    fn current_join_response(&self, member_id: &str, members: Vec<JoinedMember>) -> JoinResponse {
        JoinResponse {
            error: None,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            skip_assignment: false,
            member_id: member_id.to_owned(),
            members,
        }
    }

    // ---- JoinGroup -------------------------------------------------------------------------------

    /// Kafka's `handleJoinGroup` after the group lookup (the coordinator has validated the group id and
    /// the session timeout).
    pub fn join(&mut self, req: JoinRequest, settings: &GroupSettings, now_ms: i64) -> JoinResult {
        if self.is(GroupStateName::Dead) {
            // Removed concurrently: let the client find the coordinator again and rejoin.
            return Reply::Ready(JoinResponse::error(req.member_id, ResponseError::CoordinatorNotAvailable));
        }
        if !self.supports_protocols(&req.protocol_type, &req.protocols) {
            return Reply::Ready(JoinResponse::error(req.member_id, ResponseError::InconsistentGroupProtocol));
        }
        let reply = if req.member_id.is_empty() {
            self.join_new_member(req, settings, now_ms)
        } else {
            self.join_known_member(req, settings, now_ms)
        };
        self.try_complete_join(now_ms);
        reply
    }

    fn join_new_member(&mut self, req: JoinRequest, settings: &GroupSettings, now_ms: i64) -> JoinResult {
        // Kafka's member id format: client id, a dash, a random UUID.
        let member_id = format!("{}-{}", req.client_id, uuid::Uuid::new_v4());
        if let Some(instance) = req.group_instance_id.clone() {
            return match self.static_member_id(&instance) {
                Some(old_id) => self.replace_static_member(&old_id, member_id, req, settings, now_ms),
                None => self.add_member_and_rebalance(member_id, req, settings, now_ms),
            };
        }
        if req.require_known_member_id {
            // KIP-394: hand out the id and wait for the rejoin that carries it. The pending member holds
            // the rebalance open until it rejoins or its session timeout passes.
            self.pending_members.insert(member_id.clone(), now_ms + i64::from(req.session_timeout_ms));
            return Reply::Ready(JoinResponse::error(member_id, ResponseError::MemberIdRequired));
        }
        self.add_member_and_rebalance(member_id, req, settings, now_ms)
    }

    fn join_known_member(&mut self, req: JoinRequest, settings: &GroupSettings, now_ms: i64) -> JoinResult {
        if self.pending_members.contains_key(&req.member_id) && req.group_instance_id.is_none() {
            let member_id = req.member_id.clone();
            return self.add_member_and_rebalance(member_id, req, settings, now_ms);
        }
        let idx = match self.validate_current_member(&req.member_id, req.group_instance_id.as_deref()) {
            Ok(idx) => idx,
            Err(e) => return Reply::Ready(JoinResponse::error(req.member_id, e)),
        };
        let unchanged = self.members[idx].protocols == req.protocols;
        match self.state_name() {
            GroupStateName::PreparingRebalance => self.update_member_and_rebalance(idx, req, settings, now_ms),
            GroupStateName::CompletingRebalance if unchanged => {
                // A retry of a JoinGroup whose response got lost: answer with the current generation.
                let members =
                    if self.is_leader(&req.member_id) { self.current_member_metadata() } else { Vec::new() };
                Reply::Ready(self.current_join_response(&req.member_id, members))
            }
            GroupStateName::CompletingRebalance => self.update_member_and_rebalance(idx, req, settings, now_ms),
            GroupStateName::Stable if self.is_leader(&req.member_id) || !unchanged => {
                // A leader's JoinGroup forces a rebalance: it is how it reacts to changes that affect the
                // assignment but not its metadata (new partitions of a subscribed topic).
                self.update_member_and_rebalance(idx, req, settings, now_ms)
            }
            GroupStateName::Stable => Reply::Ready(self.current_join_response(&req.member_id, Vec::new())),
            GroupStateName::Empty | GroupStateName::Dead => {
                Reply::Ready(JoinResponse::error(req.member_id, ResponseError::UnknownMemberId))
            }
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        member_id: String,
        req: JoinRequest,
        settings: &GroupSettings,
        now_ms: i64,
    ) -> JoinResult {
        let (tx, rx) = oneshot::channel();
        let member = Member {
            id: member_id.clone(),
            instance_id: req.group_instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            protocol_type: req.protocol_type,
            protocols: req.protocols,
            assignment: Bytes::new(),
            heartbeat_deadline_ms: now_ms + NEW_MEMBER_JOIN_TIMEOUT_MS,
            is_new: true,
            join_waiter: Some(tx),
            sync_waiter: None,
        };
        if self.is(GroupStateName::PreparingRebalance) && self.generation == 0 {
            self.new_member_added = true;
        }
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(member_id.clone());
        }
        self.pending_members.remove(&member_id);
        self.members.push(member);
        self.maybe_prepare_rebalance(settings, now_ms);
        Reply::Pending(rx)
    }

    fn update_member_and_rebalance(
        &mut self,
        idx: usize,
        req: JoinRequest,
        settings: &GroupSettings,
        now_ms: i64,
    ) -> JoinResult {
        let (tx, rx) = oneshot::channel();
        let member = &mut self.members[idx];
        member.protocols = req.protocols;
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        // A second JoinGroup replaces one still waiting (the client gave up on it); answer the old one.
        member.answer_join(JoinResponse::error(member.id.clone(), ResponseError::RebalanceInProgress));
        member.join_waiter = Some(tx);
        self.maybe_prepare_rebalance(settings, now_ms);
        Reply::Pending(rx)
    }

    /// KIP-345: a static member came back with a new member id (a restarted process). It takes over the
    /// old member's place; the old id is fenced. A Stable group is not rebalanced when nothing the
    /// assignment depends on changed.
    fn replace_static_member(
        &mut self,
        old_id: &str,
        new_id: String,
        req: JoinRequest,
        settings: &GroupSettings,
        now_ms: i64,
    ) -> JoinResult {
        let Some(idx) = self.member_index(old_id) else {
            return self.add_member_and_rebalance(new_id, req, settings, now_ms);
        };
        let leader_before = self.leader.clone().unwrap_or_default();
        let (tx, rx) = oneshot::channel();
        let member = &mut self.members[idx];
        // Whatever the old incarnation still has in flight is answered: it must stop.
        member.answer_join(JoinResponse::error(old_id, ResponseError::FencedInstanceId));
        member.answer_sync(SyncResponse::error(ResponseError::FencedInstanceId));
        member.id = new_id.clone();
        let metadata_unchanged = member.protocols == req.protocols;
        member.protocols = req.protocols;
        member.client_id = req.client_id;
        member.client_host = req.client_host;
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.touch(now_ms);
        member.join_waiter = Some(tx);
        if self.is_leader(old_id) {
            self.leader = Some(new_id.clone());
        }
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.clone());
        }

        match self.state_name() {
            GroupStateName::Stable => {
                // Kafka only compares the selected protocol; we also rebalance when the member's metadata
                // (its subscription) changed, since no one else would notice that.
                if metadata_unchanged && self.select_protocol() == self.protocol_name {
                    let is_leader = self.is_leader(&new_id);
                    let response = if is_leader && req.supports_skip_assignment {
                        // KIP-814: the leader gets the members so it can track metadata, but must not
                        // compute a new assignment a Stable group would never distribute.
                        JoinResponse {
                            skip_assignment: true,
                            ..self.current_join_response(&new_id, self.current_member_metadata())
                        }
                    } else {
                        // Older clients get the previous leader id: a restarted leader then sees it is
                        // "not the leader" and just syncs, instead of assigning for a Stable group.
                        JoinResponse { leader: leader_before, ..self.current_join_response(&new_id, Vec::new()) }
                    };
                    self.members[idx].answer_join(response);
                } else {
                    self.maybe_prepare_rebalance(settings, now_ms);
                }
            }
            // The leader may already hold the old member id in its assignment: start over.
            GroupStateName::CompletingRebalance => self.prepare_rebalance(settings, now_ms),
            // The member simply waits for the rebalance in progress, under its new id.
            GroupStateName::PreparingRebalance => {}
            GroupStateName::Empty | GroupStateName::Dead => self.maybe_prepare_rebalance(settings, now_ms),
        }
        Reply::Pending(rx)
    }

    fn maybe_prepare_rebalance(&mut self, settings: &GroupSettings, now_ms: i64) {
        if matches!(
            self.state,
            GroupState::Stable { .. } | GroupState::CompletingRebalance { .. } | GroupState::Empty { .. }
        ) {
            self.prepare_rebalance(settings, now_ms);
        }
    }

    fn prepare_rebalance(&mut self, settings: &GroupSettings, now_ms: i64) {
        if self.is(GroupStateName::CompletingRebalance) {
            // Followers parked in SyncGroup will not get an assignment for this generation.
            self.reset_and_propagate_assignment_error(ResponseError::RebalanceInProgress, now_ms);
        }
        let timeout = self.rebalance_timeout_ms();
        let delay = settings.initial_rebalance_delay_ms;
        let rebalance = if self.is(GroupStateName::Empty) && delay > 0 {
            // KIP-134: give the other consumers of a freshly started application a moment to join, so
            // the group does not rebalance once per consumer.
            Rebalance {
                deadline_ms: now_ms + delay,
                initial: Some(InitialDelay { delay_ms: delay, remaining_ms: (timeout - delay).max(0) }),
            }
        } else {
            Rebalance { deadline_ms: now_ms + timeout, initial: None }
        };
        self.pending_sync.clear();
        self.state = GroupState::PreparingRebalance(rebalance);
        self.try_complete_join(now_ms);
    }

    fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.iter().all(Member::awaiting_join)
    }

    /// Kafka's DelayedJoin.tryComplete: the rebalance ends early once everyone is back.
    fn try_complete_join(&mut self, now_ms: i64) {
        if let GroupState::PreparingRebalance(Rebalance { initial: None, .. }) = self.state {
            if self.all_members_joined() {
                self.complete_join(now_ms);
            }
        }
    }

    /// Kafka's `maybeElectNewJoinedLeader`: keep the leader if it rejoined, else take the first member
    /// that did. False if nobody rejoined.
    fn elect_joined_leader(&mut self) -> bool {
        let Some(leader) = self.leader.as_deref() else { return false };
        if self.members.iter().any(|m| m.id == leader && m.awaiting_join()) {
            return true;
        }
        match self.members.iter().find(|m| m.awaiting_join()) {
            Some(m) => {
                self.leader = Some(m.id.clone());
                true
            }
            None => false,
        }
    }

    /// Kafka's `onCompleteJoin`: end of PreparingRebalance.
    fn complete_join(&mut self, now_ms: i64) {
        // Dynamic members that did not rejoin in time are gone. Static members stay: they are expected
        // back (a rolling restart) and their session timeout removes them otherwise (KIP-345).
        let mut i = 0;
        while i < self.members.len() {
            if !self.members[i].awaiting_join() && self.members[i].instance_id.is_none() {
                self.detach_member(i);
            } else {
                i += 1;
            }
        }
        if !self.elect_joined_leader() && !self.members.is_empty() {
            // Only absent static members remain: wait another round for them or their session expiry.
            self.state =
                GroupState::PreparingRebalance(Rebalance { deadline_ms: now_ms + self.rebalance_timeout_ms(), initial: None });
            return;
        }
        self.generation += 1;
        self.pending_sync.clear();
        self.new_member_added = false;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.subscribed_topics = self.compute_subscribed_topics();
            self.state = GroupState::Empty { since_ms: now_ms };
            return;
        }
        self.protocol_name = self.select_protocol();
        self.subscribed_topics = self.compute_subscribed_topics();
        self.state = GroupState::CompletingRebalance { sync_deadline_ms: now_ms + self.rebalance_timeout_ms() };
        let all = self.current_member_metadata();
        for idx in 0..self.members.len() {
            let id = self.members[idx].id.clone();
            let members = if self.is_leader(&id) { all.clone() } else { Vec::new() };
            let response = self.current_join_response(&id, members);
            let member = &mut self.members[idx];
            member.answer_join(response);
            member.touch(now_ms);
            member.is_new = false;
            self.pending_sync.insert(id);
        }
    }

    // ---- SyncGroup -------------------------------------------------------------------------------

    pub fn sync(&mut self, req: SyncRequest, now_ms: i64) -> Reply<SyncResponse> {
        let error = |e| Reply::Ready(SyncResponse::error(e));
        if self.is(GroupStateName::Dead) {
            return error(ResponseError::CoordinatorNotAvailable);
        }
        let idx = match self.validate_current_member(&req.member_id, req.group_instance_id.as_deref()) {
            Ok(idx) => idx,
            Err(e) => return error(e),
        };
        if req.generation_id != self.generation {
            return error(ResponseError::IllegalGeneration);
        }
        if req.protocol_type.is_some() && req.protocol_type != self.protocol_type {
            return error(ResponseError::InconsistentGroupProtocol);
        }
        if req.protocol_name.is_some() && req.protocol_name != self.protocol_name {
            return error(ResponseError::InconsistentGroupProtocol);
        }
        match self.state {
            GroupState::Empty { .. } | GroupState::Dead => error(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance(_) => error(ResponseError::RebalanceInProgress),
            GroupState::CompletingRebalance { sync_deadline_ms } => {
                let (tx, rx) = oneshot::channel();
                let member = &mut self.members[idx];
                member.answer_sync(SyncResponse::error(ResponseError::RebalanceInProgress));
                member.sync_waiter = Some(tx);
                self.pending_sync.remove(&req.member_id);
                if self.is_leader(&req.member_id) {
                    // Members the leader left out get an empty assignment; unknown ids are ignored.
                    let assignments: HashMap<String, Bytes> = req.assignments.into_iter().collect();
                    self.set_and_propagate_assignment(assignments, now_ms);
                    let sync_deadline_ms = (!self.pending_sync.is_empty()).then_some(sync_deadline_ms);
                    self.state = GroupState::Stable { sync_deadline_ms };
                }
                Reply::Pending(rx)
            }
            GroupState::Stable { .. } => {
                self.pending_sync.remove(&req.member_id);
                if self.pending_sync.is_empty() {
                    self.state = GroupState::Stable { sync_deadline_ms: None };
                }
                let member = &mut self.members[idx];
                member.touch(now_ms);
                Reply::Ready(SyncResponse {
                    error: None,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    assignment: member.assignment.clone(),
                })
            }
        }
    }

    fn set_and_propagate_assignment(&mut self, mut assignments: HashMap<String, Bytes>, now_ms: i64) {
        for member in &mut self.members {
            member.assignment = assignments.remove(&member.id).unwrap_or_default();
            if member.sync_waiter.is_some() {
                member.answer_sync(SyncResponse {
                    error: None,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    assignment: member.assignment.clone(),
                });
                member.touch(now_ms);
            }
        }
    }

    fn reset_and_propagate_assignment_error(&mut self, error: ResponseError, now_ms: i64) {
        for member in &mut self.members {
            member.assignment = Bytes::new();
            if member.sync_waiter.is_some() {
                member.answer_sync(SyncResponse::error(error));
                member.touch(now_ms);
            }
        }
    }

    // ---- Heartbeat, LeaveGroup -------------------------------------------------------------------

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> Option<ResponseError> {
        if self.is(GroupStateName::Dead) {
            return Some(ResponseError::CoordinatorNotAvailable);
        }
        let idx = match self.validate_current_member(member_id, instance_id) {
            Ok(idx) => idx,
            Err(e) => return Some(e),
        };
        match self.state {
            GroupState::Empty { .. } | GroupState::Dead => Some(ResponseError::UnknownMemberId),
            // Members may heartbeat between their JoinGroup response and their SyncGroup.
            GroupState::CompletingRebalance { .. } => {
                self.members[idx].touch(now_ms);
                None
            }
            // The heartbeat keeps the member alive and tells it to rejoin.
            GroupState::PreparingRebalance(_) => {
                self.members[idx].touch(now_ms);
                Some(ResponseError::RebalanceInProgress)
            }
            GroupState::Stable { .. } if generation_id != self.generation => Some(ResponseError::IllegalGeneration),
            GroupState::Stable { .. } => {
                self.members[idx].touch(now_ms);
                None
            }
        }
    }

    /// Per-member results, or a group-level error.
    pub fn leave(
        &mut self,
        leaving: &[LeaveMember],
        settings: &GroupSettings,
        now_ms: i64,
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        if self.is(GroupStateName::Dead) {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let results = leaving
            .iter()
            .map(|m| {
                if m.member_id.is_empty() {
                    // Admin removal of a static member by instance id alone.
                    let current = m.group_instance_id.as_deref().and_then(|i| self.static_member_id(i));
                    match current.and_then(|id| self.member_index(&id)) {
                        Some(idx) => {
                            self.remove_member_and_update_group(idx, settings, now_ms);
                            None
                        }
                        None => Some(ResponseError::UnknownMemberId),
                    }
                } else if self.pending_members.remove(&m.member_id).is_some() {
                    self.try_complete_join(now_ms);
                    None
                } else {
                    match self.validate_current_member(&m.member_id, m.group_instance_id.as_deref()) {
                        Ok(idx) => {
                            self.remove_member_and_update_group(idx, settings, now_ms);
                            None
                        }
                        Err(e) => Some(e),
                    }
                }
            })
            .collect();
        Ok(results)
    }

    /// Removes a member, answering whatever it has waiting, and fixes up the leader.
    fn detach_member(&mut self, idx: usize) -> Member {
        let mut member = self.members.remove(idx);
        member.answer_join(JoinResponse::error("", ResponseError::UnknownMemberId));
        member.answer_sync(SyncResponse::error(ResponseError::UnknownMemberId));
        self.pending_sync.remove(&member.id);
        if self.is_leader(&member.id) {
            self.leader = self.members.first().map(|m| m.id.clone());
        }
        member
    }

    fn remove_member_and_update_group(&mut self, idx: usize, settings: &GroupSettings, now_ms: i64) {
        self.detach_member(idx);
        match self.state_name() {
            GroupStateName::Dead | GroupStateName::Empty => {}
            GroupStateName::Stable | GroupStateName::CompletingRebalance => self.maybe_prepare_rebalance(settings, now_ms),
            GroupStateName::PreparingRebalance => self.try_complete_join(now_ms),
        }
    }

    // ---- OffsetCommit ----------------------------------------------------------------------------

    /// Kafka's `validateOffsetCommit` plus the state check of `doCommitOffsets`.
    pub fn validate_offset_commit(
        &mut self,
        generation_id: i32,
        member_id: &str,
        instance_id: Option<&str>,
        now_ms: i64,
    ) -> Result<(), ResponseError> {
        if self.is(GroupStateName::Dead) {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        if generation_id < 0 && self.is(GroupStateName::Empty) {
            // As Kafka checks first: a commit without a generation (admin client, a consumer without group
            // management) may commit for an empty group, whatever member id it sends.
            return Ok(());
        }
        let member = if generation_id >= 0 || !member_id.is_empty() || instance_id.is_some() {
            let idx = self.validate_current_member(member_id, instance_id)?;
            if generation_id != self.generation {
                return Err(ResponseError::IllegalGeneration);
            }
            Some(idx)
        } else if !self.is(GroupStateName::Empty) {
            // Only members may commit for a group that has members; a standalone consumer (or
            // `--reset-offsets`) may commit for an empty one.
            return Err(ResponseError::UnknownMemberId);
        } else {
            None
        };
        match self.state {
            GroupState::Empty { .. } => Ok(()),
            // During PreparingRebalance commits of the previous generation are still allowed: the member
            // learns about the rebalance from its next heartbeat.
            GroupState::Stable { .. } | GroupState::PreparingRebalance(_) => {
                if let Some(idx) = member {
                    self.members[idx].touch(now_ms);
                }
                Ok(())
            }
            GroupState::CompletingRebalance { .. } => Err(ResponseError::RebalanceInProgress),
            GroupState::Dead => Err(ResponseError::CoordinatorNotAvailable),
        }
    }

    // ---- Timers ----------------------------------------------------------------------------------

    /// Session expiry, pending-member expiry, rebalance and sync deadlines.
    pub fn tick(&mut self, settings: &GroupSettings, now_ms: i64) {
        let pending_before = self.pending_members.len();
        self.pending_members.retain(|_, deadline| *deadline > now_ms);
        while let Some(idx) = self.members.iter().position(|m| m.expired(now_ms)) {
            tracing::info!(group = %self.id, member = %self.members[idx].id, "member session expired; removing it from the group");
            self.remove_member_and_update_group(idx, settings, now_ms);
        }
        if self.pending_members.len() != pending_before {
            self.try_complete_join(now_ms);
        }
        match self.state.clone() {
            GroupState::PreparingRebalance(r) if now_ms >= r.deadline_ms => match r.initial {
                Some(initial) if self.new_member_added && initial.remaining_ms > 0 => {
                    // Someone joined during the initial delay: wait once more, within the rebalance timeout.
                    self.new_member_added = false;
                    let delay = settings.initial_rebalance_delay_ms.min(initial.remaining_ms);
                    let remaining_ms = (initial.remaining_ms - initial.delay_ms).max(0);
                    self.state = GroupState::PreparingRebalance(Rebalance {
                        deadline_ms: now_ms + delay,
                        initial: Some(InitialDelay { delay_ms: delay, remaining_ms }),
                    });
                }
                _ => self.complete_join(now_ms),
            },
            GroupState::CompletingRebalance { sync_deadline_ms }
            | GroupState::Stable { sync_deadline_ms: Some(sync_deadline_ms) }
                if now_ms >= sync_deadline_ms =>
            {
                self.expire_pending_sync(settings, now_ms);
            }
            _ => {}
        }
    }

    /// Members that got their JoinGroup response but never sent SyncGroup within the rebalance timeout
    /// are removed and the group rebalances (Kafka ≥ 3.1's pending-sync expiry). Without this a leader
    /// that died after its JoinGroup would park every follower's SyncGroup until its session expired.
    fn expire_pending_sync(&mut self, settings: &GroupSettings, now_ms: i64) {
        if self.pending_sync.is_empty() {
            if self.is(GroupStateName::Stable) {
                self.state = GroupState::Stable { sync_deadline_ms: None };
            }
            return;
        }
        let late: Vec<String> = self.pending_sync.drain().collect();
        tracing::info!(group = %self.id, members = ?late, "members did not send SyncGroup in time; removing them");
        for id in late {
            if let Some(idx) = self.member_index(&id) {
                self.detach_member(idx);
            }
        }
        self.prepare_rebalance(settings, now_ms);
    }

    // ---- Admin -----------------------------------------------------------------------------------

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
                    metadata: if stable { m.metadata_for(&protocol).cloned().unwrap_or_default() } else { Bytes::new() },
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

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::ResponseError as E;

    use super::*;
    use crate::group::tests_support::*;
    use crate::group::GroupCoordinator;

    const T0: i64 = 1_000_000;

    /// One member, joined and synced: returns its id (generation 1).
    fn stable_single(groups: &GroupCoordinator, now: i64) -> String {
        let (a, reply) = new_member(groups, range(), now);
        let joined = resolved(reply);
        assert_eq!((joined.generation_id, joined.leader.as_str()), (1, a.as_str()));
        let synced = resolved(groups.sync(sync_request(&a, 1, &[(&a, "for-a")]), now));
        assert_eq!(synced.assignment, Bytes::from_static(b"for-a"));
        a
    }

    /// Two members, stable at generation 2; A is the leader.
    fn stable_pair(groups: &GroupCoordinator, now: i64) -> (String, String) {
        let a = stable_single(groups, now);
        let (b, reply) = new_member(groups, range(), now);
        let mut b_join = pending(reply);
        let a_join = resolved(groups.join(join_request(&a, None, range()), now));
        let b_join = b_join.try_recv().expect("B answered once A rejoined");
        assert_eq!((a_join.generation_id, b_join.generation_id), (2, 2));
        assert_eq!(a_join.members.len(), 2, "the leader gets every member");
        assert!(b_join.members.is_empty());
        let mut b_sync = pending(groups.sync(sync_request(&b, 2, &[]), now));
        resolved(groups.sync(sync_request(&a, 2, &[(&a, "a"), (&b, "b")]), now));
        assert_eq!(b_sync.try_recv().unwrap().assignment, Bytes::from_static(b"b"));
        (a, b)
    }

    fn state(groups: &GroupCoordinator) -> GroupStateName {
        groups.group_state("g").expect("group exists")
    }

    #[test]
    fn join_then_sync_makes_a_stable_group_after_the_initial_delay() {
        let (_dir, groups) = coordinator();
        let (a, reply) = new_member(&groups, range(), T0);
        assert!(a.starts_with("client-"), "{a}");
        let mut rx = pending(reply);
        assert_eq!(state(&groups), GroupStateName::PreparingRebalance);
        groups.tick(T0 + 2999);
        assert!(rx.try_recv().is_err(), "the initial delay holds the first rebalance");
        groups.tick(T0 + 3000);
        let joined = rx.try_recv().unwrap();
        assert_eq!(joined.error, None);
        assert_eq!(joined.generation_id, 1);
        assert_eq!(joined.leader, a);
        assert_eq!(joined.protocol_name.as_deref(), Some("range"));
        assert_eq!(joined.protocol_type.as_deref(), Some("consumer"));
        assert_eq!(joined.members.len(), 1);
        assert_eq!(state(&groups), GroupStateName::CompletingRebalance);

        let synced = resolved(groups.sync(sync_request(&a, 1, &[(&a, "p0")]), T0 + 3001));
        assert_eq!(synced.assignment, Bytes::from_static(b"p0"));
        assert_eq!(state(&groups), GroupStateName::Stable);
        assert_eq!(groups.heartbeat("g", &a, None, 1, T0 + 4000), None);
    }

    #[test]
    fn initial_delay_is_extended_while_members_keep_arriving() {
        let (_dir, groups) = coordinator();
        let (_, a) = new_member(&groups, range(), T0);
        let mut a = pending(a);
        let (_, b) = new_member(&groups, range(), T0 + 1000);
        let mut b = pending(b);
        groups.tick(T0 + 3000);
        assert!(a.try_recv().is_err(), "B joined during the delay: wait once more");
        groups.tick(T0 + 5999);
        assert!(a.try_recv().is_err());
        groups.tick(T0 + 6000);
        let (a, b) = (a.try_recv().unwrap(), b.try_recv().unwrap());
        assert_eq!((a.generation_id, b.generation_id), (1, 1));
        assert_eq!(a.members.len(), 2);
    }

    #[test]
    fn member_id_required_then_pending_member_expires() {
        let (_dir, groups) = coordinator_with_delay(0);
        let first = resolved(groups.join(join_request("", None, range()), T0));
        assert_eq!(first.error, Some(E::MemberIdRequired));
        assert_eq!(first.generation_id, -1);
        assert!(first.member_id.starts_with("client-"));
        assert_eq!(state(&groups), GroupStateName::Empty);
        assert!(groups.describe("g").members.is_empty(), "a pending member is not a member yet");

        // Not rejoining within the session timeout forfeits the id.
        groups.tick(T0 + i64::from(SESSION_MS));
        let late = resolved(groups.join(join_request(&first.member_id, None, range()), T0 + i64::from(SESSION_MS)));
        assert_eq!(late.error, Some(E::UnknownMemberId));

        // Before v4 a member joins in one go.
        let mut old = join_request("", None, range());
        old.require_known_member_id = false;
        let joined = resolved(groups.join(old, T0 + 20_000));
        assert_eq!((joined.error, joined.generation_id), (None, 1));
    }

    #[test]
    fn pending_member_holds_the_rebalance_open() {
        let (_dir, groups) = coordinator_with_delay(0);
        let (a, b) = stable_pair(&groups, T0);
        // C got its id but has not rejoined yet; A and B rejoin: the rebalance waits for C.
        let c_id = resolved(groups.join(join_request("", None, range()), T0)).member_id;
        let mut a_join = pending(groups.join(join_request(&a, None, range()), T0));
        let _b_join = pending(groups.join(join_request(&b, None, range()), T0));
        let c_join = resolved(groups.join(join_request(&c_id, None, range()), T0 + 10));
        assert_eq!(c_join.generation_id, 3);
        assert_eq!(a_join.try_recv().unwrap().members.len(), 3);
    }

    #[test]
    fn second_member_triggers_rebalance_and_follower_waits_for_leader() {
        let (_dir, groups) = coordinator_with_delay(0);
        let a = stable_single(&groups, T0);
        let (b, reply) = new_member(&groups, range(), T0 + 100);
        let mut b_join = pending(reply);
        assert_eq!(state(&groups), GroupStateName::PreparingRebalance);
        assert_eq!(groups.heartbeat("g", &a, None, 1, T0 + 200), Some(E::RebalanceInProgress));

        let a_join = resolved(groups.join(join_request(&a, None, range()), T0 + 300));
        let b_join = b_join.try_recv().unwrap();
        assert_eq!(a_join.leader, a, "the previous leader stays leader");
        assert_eq!(b_join.leader, a);
        assert_eq!(a_join.members.iter().map(|m| m.member_id.as_str()).collect::<Vec<_>>(), vec![&a, &b]);

        let mut b_sync = pending(groups.sync(sync_request(&b, 2, &[]), T0 + 400));
        assert_eq!(state(&groups), GroupStateName::CompletingRebalance);
        let a_sync = resolved(groups.sync(sync_request(&a, 2, &[(&a, "a"), (&b, "b")]), T0 + 500));
        assert_eq!(a_sync.assignment, Bytes::from_static(b"a"));
        assert_eq!(b_sync.try_recv().unwrap().assignment, Bytes::from_static(b"b"));
        assert_eq!(state(&groups), GroupStateName::Stable);

        // A follower rejoining with unchanged metadata in a Stable group changes nothing.
        let again = resolved(groups.join(join_request(&b, None, range()), T0 + 600));
        assert_eq!((again.generation_id, again.error), (2, None));
        assert_eq!(state(&groups), GroupStateName::Stable);
        // The leader rejoining forces a rebalance.
        let _a_join = pending(groups.join(join_request(&a, None, range()), T0 + 700));
        assert_eq!(state(&groups), GroupStateName::PreparingRebalance);
    }

    #[test]
    fn session_timeout_evicts_silent_member() {
        let (_dir, groups) = coordinator_with_delay(0);
        let (a, b) = stable_pair(&groups, T0);
        let session = i64::from(SESSION_MS);
        for t in [5000, session - 1] {
            assert_eq!(groups.heartbeat("g", &a, None, 2, T0 + t), None);
            groups.tick(T0 + t);
        }
        assert_eq!(state(&groups), GroupStateName::Stable);
        groups.tick(T0 + session);
        assert_eq!(state(&groups), GroupStateName::PreparingRebalance, "B expired at T0 + session");
        assert_eq!(groups.heartbeat("g", &b, None, 2, T0 + session + 1), Some(E::UnknownMemberId));
        assert_eq!(groups.heartbeat("g", &a, None, 2, T0 + session + 1), Some(E::RebalanceInProgress));
        let a_join = resolved(groups.join(join_request(&a, None, range()), T0 + session + 2));
        assert_eq!(a_join.generation_id, 3);
        assert_eq!(a_join.members.len(), 1);
    }

    #[test]
    fn members_that_do_not_rejoin_in_the_rebalance_timeout_are_removed() {
        let (_dir, groups) = coordinator_with_delay(0);
        let (a, b) = stable_pair(&groups, T0);
        let (c, c_join) = new_member(&groups, range(), T0);
        let mut c_join = pending(c_join);
        let mut a_join = pending(groups.join(join_request(&a, None, range()), T0 + 1));
        // B keeps heartbeating (so its session never expires) but never rejoins.
        let rebalance = i64::from(REBALANCE_MS);
        for t in (1000..rebalance).step_by(3000) {
            assert_eq!(groups.heartbeat("g", &b, None, 2, T0 + t), Some(E::RebalanceInProgress));
            groups.tick(T0 + t);
        }
        groups.tick(T0 + rebalance - 1);
        assert!(a_join.try_recv().is_err());
        groups.tick(T0 + rebalance);
        let (a_join, c_join) = (a_join.try_recv().unwrap(), c_join.try_recv().unwrap());
        assert_eq!((a_join.generation_id, c_join.generation_id), (3, 3));
        let ids: Vec<_> = a_join.members.iter().map(|m| m.member_id.clone()).collect();
        assert_eq!(ids, vec![a.clone(), c.clone()]);
        assert_eq!(groups.heartbeat("g", &b, None, 3, T0 + rebalance + 1), Some(E::UnknownMemberId));
    }

    #[test]
    fn new_member_that_never_rejoins_does_not_block_forever() {
        let (_dir, groups) = coordinator_with_delay(0);
        let (a, _b) = stable_pair(&groups, T0);
        // A (leader) rejoins; B never does and keeps no session: after the rebalance timeout only A is left.
        let mut a_join = pending(groups.join(join_request(&a, None, range()), T0));
        groups.tick(T0 + i64::from(REBALANCE_MS));
        assert_eq!(a_join.try_recv().unwrap().members.len(), 1);
    }

    #[test]
    fn static_member_rejoining_with_a_new_id_replaces_the_old_one_without_rebalance() {
        let (_dir, groups) = coordinator_with_delay(0);
        let a_old = resolved(groups.join(join_request("", Some("ia"), range()), T0));
        assert_eq!(a_old.error, None, "static members skip MEMBER_ID_REQUIRED");
        let a_old = a_old.member_id;
        resolved(groups.sync(SyncRequest { group_instance_id: Some("ia".into()), ..sync_request(&a_old, 1, &[(&a_old, "a")]) }, T0));
        let (b, b_join) = new_member(&groups, range(), T0);
        let mut b_join = pending(b_join);
        resolved(groups.join(join_request(&a_old, Some("ia"), range()), T0));
        b_join.try_recv().unwrap();
        let mut b_sync = pending(groups.sync(sync_request(&b, 2, &[]), T0));
        resolved(groups.sync(
            SyncRequest { group_instance_id: Some("ia".into()), ..sync_request(&a_old, 2, &[(&a_old, "a2"), (&b, "b2")]) },
            T0,
        ));
        b_sync.try_recv().unwrap();

        // The process of "ia" restarts: same metadata, no member id.
        let rejoin = resolved(groups.join(join_request("", Some("ia"), range()), T0 + 1000));
        assert_eq!(rejoin.error, None);
        assert_eq!(rejoin.generation_id, 2, "no new generation");
        assert_ne!(rejoin.member_id, a_old);
        assert_eq!(rejoin.leader, a_old, "pre-v9 clients see the old leader id and do not assign");
        assert!(rejoin.members.is_empty());
        assert_eq!(state(&groups), GroupStateName::Stable);
        let a_new = rejoin.member_id;
        assert_eq!(groups.heartbeat("g", &a_old, Some("ia"), 2, T0 + 1001), Some(E::FencedInstanceId));
        assert_eq!(groups.heartbeat("g", &a_new, Some("ia"), 2, T0 + 1001), None);
        assert_eq!(groups.heartbeat("g", &b, None, 2, T0 + 1001), None, "B was not disturbed");
        let synced = resolved(groups.sync(SyncRequest { group_instance_id: Some("ia".into()), ..sync_request(&a_new, 2, &[]) }, T0 + 1002));
        assert_eq!(synced.assignment, Bytes::from_static(b"a2"), "the assignment carries over");

        // v9 leader: gets the members and skip_assignment instead.
        let mut v9 = join_request("", Some("ia"), range());
        v9.supports_skip_assignment = true;
        let rejoin = resolved(groups.join(v9, T0 + 2000));
        assert!(rejoin.skip_assignment);
        assert_eq!(rejoin.leader, rejoin.member_id);
        assert_eq!(rejoin.members.len(), 2);
        assert_eq!(state(&groups), GroupStateName::Stable);

        // Changed subscription: that needs a rebalance.
        let changed = join_request("", Some("ia"), protocols(&["range"], &["logs", "other"]));
        let _rejoin = pending(groups.join(changed, T0 + 3000));
        assert_eq!(state(&groups), GroupStateName::PreparingRebalance);
    }

    #[test]
    fn static_member_with_a_stale_id_is_fenced() {
        let (_dir, groups) = coordinator_with_delay(0);
        let static_sync = |member: &str, generation: i32, assignments: &[(&str, &str)]| SyncRequest {
            group_instance_id: Some("ia".into()),
            ..sync_request(member, generation, assignments)
        };
        let a = resolved(groups.join(join_request("", Some("ia"), range()), T0)).member_id;
        let stale = resolved(groups.join(join_request("stale-id", Some("ia"), range()), T0));
        assert_eq!(stale.error, Some(E::FencedInstanceId));
        let unknown = resolved(groups.join(join_request(&a, Some("unknown-instance"), range()), T0));
        assert_eq!(unknown.error, Some(E::UnknownMemberId));
        assert_eq!(resolved(groups.sync(static_sync("stale-id", 1, &[]), T0)).error, Some(E::FencedInstanceId));
        resolved(groups.sync(static_sync(&a, 1, &[]), T0));

        let (b, b_join) = new_member(&groups, range(), T0);
        let mut b_join = pending(b_join);
        resolved(groups.join(join_request(&a, Some("ia"), range()), T0));
        b_join.try_recv().unwrap();
        let mut b_sync = pending(groups.sync(sync_request(&b, 2, &[]), T0));
        resolved(groups.sync(static_sync(&a, 2, &[(&a, "a"), (&b, "b")]), T0));
        b_sync.try_recv().unwrap();

        // A rebalance is under way and the old incarnation of "ia" waits in JoinGroup when the new one
        // arrives: the old request is fenced, the new one takes its place in the rebalance.
        let (_c, c_join) = new_member(&groups, range(), T0);
        let _c_join = pending(c_join);
        let mut old_join = pending(groups.join(join_request(&a, Some("ia"), range()), T0));
        let mut new_join = pending(groups.join(join_request("", Some("ia"), range()), T0 + 1));
        assert_eq!(old_join.try_recv().unwrap().error, Some(E::FencedInstanceId));
        let _ = groups.join(join_request(&b, None, range()), T0 + 2);
        let new_join = new_join.try_recv().unwrap();
        assert_eq!(new_join.generation_id, 3);
        assert_ne!(new_join.member_id, a);
        assert_eq!(new_join.leader, new_join.member_id, "leadership moved to the new id");
        assert_eq!(new_join.members.len(), 3);
    }

    #[test]
    fn error_codes_where_kafka_returns_them() {
        let (_dir, groups) = coordinator_with_delay(0);
        let (a, b) = stable_pair(&groups, T0);
        let t = T0 + 100;
        assert_eq!(groups.heartbeat("g", &a, None, 1, t), Some(E::IllegalGeneration));
        assert_eq!(groups.heartbeat("g", "nobody", None, 2, t), Some(E::UnknownMemberId));
        assert_eq!(groups.heartbeat("other-group", &a, None, 2, t), Some(E::UnknownMemberId));
        assert_eq!(groups.heartbeat("", &a, None, 2, t), Some(E::InvalidGroupId));
        assert_eq!(resolved(groups.sync(sync_request(&a, 1, &[]), t)).error, Some(E::IllegalGeneration));
        assert_eq!(resolved(groups.sync(sync_request("nobody", 2, &[]), t)).error, Some(E::UnknownMemberId));
        let mut wrong_protocol = sync_request(&a, 2, &[]);
        wrong_protocol.protocol_name = Some("roundrobin".into());
        assert_eq!(resolved(groups.sync(wrong_protocol, t)).error, Some(E::InconsistentGroupProtocol));
        assert_eq!(resolved(groups.join(join_request("gone", None, range()), t)).error, Some(E::UnknownMemberId));
        let mut unknown_group = join_request("some-id", None, range());
        unknown_group.group_id = "never-seen".into();
        assert_eq!(resolved(groups.join(unknown_group, t)).error, Some(E::UnknownMemberId));
        let mut short = join_request("", None, range());
        short.session_timeout_ms = 5999;
        assert_eq!(resolved(groups.join(short, t)).error, Some(E::InvalidSessionTimeout));

        // A rebalance starts: sync says REBALANCE_IN_PROGRESS; commits of the old generation still pass.
        let (_c, c_join) = new_member(&groups, range(), t);
        let _c_join = pending(c_join);
        assert_eq!(resolved(groups.sync(sync_request(&b, 2, &[]), t)).error, Some(E::RebalanceInProgress));
        assert_eq!(groups.heartbeat("g", &b, None, 2, t), Some(E::RebalanceInProgress));
        let commit = |member: &str, generation: i32| {
            let request = crate::group::CommitRequest {
                group_id: "g".into(),
                generation_id: generation,
                member_id: member.into(),
                group_instance_id: None,
                retention_time_ms: -1,
                partitions: vec![crate::group::CommitPartition {
                    topic: "logs".into(),
                    partition: 0,
                    offset: 5,
                    leader_epoch: -1,
                    metadata: None,
                }],
            };
            groups.commit_offsets(request, t).errors()[0]
        };
        assert_eq!(commit(&a, 2), None);
        assert_eq!(commit(&a, 1), Some(E::IllegalGeneration));
        assert_eq!(commit("nobody", 2), Some(E::UnknownMemberId));
        assert_eq!(commit("", -1), Some(E::UnknownMemberId), "only members commit for a non-empty group");

        // Everyone rejoins: CompletingRebalance refuses commits.
        let _ = groups.join(join_request(&a, None, range()), t);
        let _ = groups.join(join_request(&b, None, range()), t);
        assert_eq!(state(&groups), GroupStateName::CompletingRebalance);
        assert_eq!(commit(&a, 3), Some(E::RebalanceInProgress));
        assert_eq!(groups.heartbeat("g", &a, None, 3, t), None);
    }

    #[test]
    fn protocol_chosen_by_member_votes_among_common_ones() {
        let (_dir, groups) = coordinator_with_delay(0);
        let (a, a_join) = new_member(&groups, protocols(&["range", "roundrobin"], &["logs"]), T0);
        assert_eq!(resolved(a_join).protocol_name.as_deref(), Some("range"));
        let (_b, b_join) = new_member(&groups, protocols(&["roundrobin", "range"], &["logs"]), T0);
        let _b_join = pending(b_join);
        // A tie (1:1) goes to the leader's preference.
        let a_join = resolved(groups.join(join_request(&a, None, protocols(&["range", "roundrobin"], &["logs"])), T0));
        assert_eq!(a_join.protocol_name.as_deref(), Some("range"));
        // A third member preferring roundrobin tips the vote.
        let (_c, c_join) = new_member(&groups, protocols(&["roundrobin", "range", "sticky"], &["logs"]), T0);
        let _c_join = pending(c_join);
        let _ = groups.join(join_request(&a, None, protocols(&["range", "roundrobin"], &["logs"])), T0);
        let b_join = groups.join(join_request(&_b, None, protocols(&["roundrobin", "range"], &["logs"])), T0);
        assert_eq!(resolved(b_join).protocol_name.as_deref(), Some("roundrobin"));
    }

    #[test]
    fn inconsistent_protocols_are_refused() {
        let (_dir, groups) = coordinator_with_delay(0);
        let _a = stable_single(&groups, T0);
        let rr = join_request("", None, protocols(&["roundrobin"], &["logs"]));
        assert_eq!(resolved(groups.join(rr, T0)).error, Some(E::InconsistentGroupProtocol));
        let mut connect = join_request("", None, range());
        connect.protocol_type = "connect".into();
        assert_eq!(resolved(groups.join(connect, T0)).error, Some(E::InconsistentGroupProtocol));
        let mut none = join_request("", None, Vec::new());
        none.group_id = "fresh".into();
        assert_eq!(resolved(groups.join(none, T0)).error, Some(E::InconsistentGroupProtocol));
    }

    #[test]
    fn waiting_requests_are_answered_when_the_group_moves_on() {
        let (_dir, groups) = coordinator_with_delay(0);
        let (a, b) = stable_pair(&groups, T0);
        // A pending JoinGroup of a member that leaves is answered.
        let (c, c_join) = new_member(&groups, range(), T0);
        let mut c_join = pending(c_join);
        let left = groups.leave("g", &[LeaveMember { member_id: c.clone(), group_instance_id: None }], T0).unwrap();
        assert_eq!(left, vec![None]);
        assert_eq!(c_join.try_recv().unwrap().error, Some(E::UnknownMemberId));

        // Followers parked in SyncGroup are answered when the leader leaves.
        let _ = groups.join(join_request(&a, None, range()), T0);
        let _ = groups.join(join_request(&b, None, range()), T0);
        assert_eq!(state(&groups), GroupStateName::CompletingRebalance);
        let mut b_sync = pending(groups.sync(sync_request(&b, 3, &[]), T0));
        groups.leave("g", &[LeaveMember { member_id: a.clone(), group_instance_id: None }], T0).unwrap();
        assert_eq!(b_sync.try_recv().unwrap().error, Some(E::RebalanceInProgress));
        assert_eq!(state(&groups), GroupStateName::PreparingRebalance);

        // Unknown members leaving.
        let left = groups.leave("g", &[LeaveMember { member_id: "nobody".into(), group_instance_id: None }], T0).unwrap();
        assert_eq!(left, vec![Some(E::UnknownMemberId)]);
        let left = groups.leave("nope", &[LeaveMember { member_id: "x".into(), group_instance_id: None }], T0).unwrap();
        assert_eq!(left, vec![Some(E::UnknownMemberId)]);
        assert_eq!(groups.leave("", &[], T0), Err(E::InvalidGroupId));

        // The last member leaving empties the group.
        let _ = groups.join(join_request(&b, None, range()), T0);
        groups.leave("g", &[LeaveMember { member_id: b, group_instance_id: None }], T0).unwrap();
        assert_eq!(state(&groups), GroupStateName::Empty);
    }

    #[test]
    fn static_member_removed_by_instance_id() {
        let (_dir, groups) = coordinator_with_delay(0);
        let _ = resolved(groups.join(join_request("", Some("ia"), range()), T0));
        let left = groups.leave("g", &[LeaveMember { member_id: String::new(), group_instance_id: Some("ia".into()) }], T0);
        assert_eq!(left, Ok(vec![None]));
        assert_eq!(state(&groups), GroupStateName::Empty);
    }

    #[test]
    fn members_that_never_sync_are_removed_after_the_rebalance_timeout() {
        let (_dir, groups) = coordinator_with_delay(0);
        let (a, b) = stable_pair(&groups, T0);
        let _ = groups.join(join_request(&a, None, range()), T0);
        let _ = groups.join(join_request(&b, None, range()), T0);
        // The follower syncs; the leader heartbeats (so its session holds) but never syncs.
        let mut b_sync = pending(groups.sync(sync_request(&b, 3, &[]), T0 + 10));
        for t in (5000..i64::from(REBALANCE_MS)).step_by(5000) {
            assert_eq!(groups.heartbeat("g", &a, None, 3, T0 + t), None);
            groups.tick(T0 + t);
        }
        groups.tick(T0 + i64::from(REBALANCE_MS) - 1);
        assert!(b_sync.try_recv().is_err());
        groups.tick(T0 + i64::from(REBALANCE_MS));
        assert_eq!(b_sync.try_recv().unwrap().error, Some(E::RebalanceInProgress));
        let d = groups.describe("g");
        assert_eq!(d.members.iter().map(|m| m.member_id.as_str()).collect::<Vec<_>>(), vec![b.as_str()]);
        assert_eq!(d.state, GroupStateName::PreparingRebalance);
    }

    #[test]
    fn state_names_are_kafkas() {
        for (state, name) in [
            (GroupStateName::Empty, "Empty"),
            (GroupStateName::PreparingRebalance, "PreparingRebalance"),
            (GroupStateName::CompletingRebalance, "CompletingRebalance"),
            (GroupStateName::Stable, "Stable"),
            (GroupStateName::Dead, "Dead"),
        ] {
            assert_eq!(state.as_str(), name);
            assert_eq!(GroupStateName::parse(&name.to_lowercase()), Some(state));
        }
    }
}
