//! Which OffsetCommits a group accepts (Kafka's `validateOffsetCommit` plus the state check of
//! `doCommitOffsets`). Storing the offsets is the coordinator's and the offset store's business.

use kafka_protocol::error::ResponseError;

use super::{Group, GroupState, GroupStateName};

impl Group {
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
}
