//! SyncGroup: followers park until the leader's assignment arrives, which then goes to every member; a
//! new rebalance answers parked followers with REBALANCE_IN_PROGRESS instead.

use std::collections::HashMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;

use super::{Group, GroupState, GroupStateName, Reply, SyncRequest, SyncResponse};

impl Group {
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

    pub(super) fn reset_and_propagate_assignment_error(&mut self, error: ResponseError, now_ms: i64) {
        for member in &mut self.members {
            member.assignment = Bytes::new();
            if member.sync_waiter.is_some() {
                member.answer_sync(SyncResponse::error(error));
                member.touch(now_ms);
            }
        }
    }
}
