//! Keeping and losing members: Heartbeat, LeaveGroup, removing a member (answering whatever it has
//! waiting and moving the leader), and the timers driven by `tick` — session and pending-member expiry,
//! the rebalance deadline (with the KIP-134 initial delay) and the pending-sync deadline.

use kafka_protocol::error::ResponseError;

use super::{
    Group, GroupSettings, GroupState, GroupStateName, InitialDelay, JoinResponse, LeaveMember, Member, Rebalance,
    SyncResponse,
};

impl Group {
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
        // As Kafka (`validateClassicGroupHeartbeat`): the generation is checked in every state, before
        // the state is looked at, and a stale heartbeat does not keep the member alive.
        if generation_id != self.generation {
            return Some(ResponseError::IllegalGeneration);
        }
        match self.state {
            GroupState::Empty { .. } | GroupState::Dead => Some(ResponseError::UnknownMemberId),
            // The heartbeat keeps the member alive and tells it to rejoin.
            GroupState::PreparingRebalance(_) => {
                self.members[idx].touch(now_ms);
                Some(ResponseError::RebalanceInProgress)
            }
            // Members may heartbeat between their JoinGroup response and their SyncGroup.
            GroupState::CompletingRebalance { .. } | GroupState::Stable { .. } => {
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
    pub(super) fn detach_member(&mut self, idx: usize) -> Member {
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
            GroupStateName::Stable | GroupStateName::CompletingRebalance => {
                self.maybe_prepare_rebalance(settings, now_ms)
            }
            GroupStateName::PreparingRebalance => self.try_complete_join(now_ms),
        }
    }

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
}
