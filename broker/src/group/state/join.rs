//! JoinGroup (Kafka's `handleJoinGroup`): new, known and static members joining, protocol selection,
//! and the rebalance from PreparingRebalance to CompletingRebalance (`onCompleteJoin`), including
//! KIP-394 (MEMBER_ID_REQUIRED), KIP-345 (static members), KIP-134 (initial delay) and KIP-814
//! (static leader rejoin).

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;

use super::{
    Group, GroupSettings, GroupState, GroupStateName, InitialDelay, JoinRequest, JoinResponse, JoinResult,
    JoinedMember, Member, Protocol, Rebalance, Reply, SyncResponse, NEW_MEMBER_JOIN_TIMEOUT_MS,
};
use crate::group::subscription::{same_topics, subscribed_topics, CONSUMER_PROTOCOL_TYPE};

impl Group {
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

    /// Whether a restarted static member asks for what its previous incarnation did: the same protocols
    /// and, in a consumer group, the same subscribed topics. The rest of a consumer's metadata (its
    /// generation, owned partitions, user data) always differs after a restart, and the member gets its
    /// previous assignment back in SyncGroup. Metadata of other protocol types is compared byte for byte.
    fn same_subscription(&self, before: &[Protocol], after: &[Protocol]) -> bool {
        let consumer = self.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE);
        before.len() == after.len()
            && before.iter().zip(after).all(|(b, a)| {
                b.name == a.name
                    && if consumer { same_topics(&b.metadata, &a.metadata) } else { b.metadata == a.metadata }
            })
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
                let members = if self.is_leader(&req.member_id) { self.current_member_metadata() } else { Vec::new() };
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
        let subscription_unchanged = self.same_subscription(&self.members[idx].protocols, &req.protocols);
        let (tx, rx) = oneshot::channel();
        let member = &mut self.members[idx];
        // Whatever the old incarnation still has in flight is answered: it must stop.
        member.answer_join(JoinResponse::error(old_id, ResponseError::FencedInstanceId));
        member.answer_sync(SyncResponse::error(ResponseError::FencedInstanceId));
        member.id = new_id.clone();
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
                // Kafka only compares the selected protocol; we also rebalance when the member's
                // subscription changed, since no one else would notice that.
                if subscription_unchanged && self.select_protocol() == self.protocol_name {
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

    pub(super) fn maybe_prepare_rebalance(&mut self, settings: &GroupSettings, now_ms: i64) {
        if matches!(
            self.state,
            GroupState::Stable { .. } | GroupState::CompletingRebalance { .. } | GroupState::Empty { .. }
        ) {
            self.prepare_rebalance(settings, now_ms);
        }
    }

    pub(super) fn prepare_rebalance(&mut self, settings: &GroupSettings, now_ms: i64) {
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
    pub(super) fn try_complete_join(&mut self, now_ms: i64) {
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
    pub(super) fn complete_join(&mut self, now_ms: i64) {
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
            self.state = GroupState::PreparingRebalance(Rebalance {
                deadline_ms: now_ms + self.rebalance_timeout_ms(),
                initial: None,
            });
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
}
