//! One group member: what it joined with, its session deadline, its assignment, and the JoinGroup and
//! SyncGroup answers it is waiting for. Answering goes through [`Member::answer_join`] and
//! [`Member::answer_sync`], which take the waiting sender, so a request is answered at most once.

use bytes::Bytes;
use tokio::sync::oneshot;

use super::{JoinResponse, Protocol, SyncResponse};

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
    /// [`NEW_MEMBER_JOIN_TIMEOUT_MS`](super::NEW_MEMBER_JOIN_TIMEOUT_MS) instead of its session timeout.
    pub is_new: bool,
    pub(super) join_waiter: Option<oneshot::Sender<JoinResponse>>,
    pub(super) sync_waiter: Option<oneshot::Sender<SyncResponse>>,
}

impl Member {
    pub(super) fn metadata_for(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols.iter().find(|p| p.name == protocol).map(|p| &p.metadata)
    }

    pub(super) fn supports(&self, protocol: &str) -> bool {
        self.metadata_for(protocol).is_some()
    }

    pub(super) fn awaiting_join(&self) -> bool {
        self.join_waiter.is_some()
    }

    /// Kafka's `!hasSatisfiedHeartbeat` at the deadline: members parked in a JoinGroup or SyncGroup
    /// cannot heartbeat, so they do not expire (the rebalance and sync deadlines handle them), except
    /// new members, which would otherwise linger forever if they went away mid-join.
    pub(super) fn expired(&self, now_ms: i64) -> bool {
        if now_ms < self.heartbeat_deadline_ms {
            return false;
        }
        self.is_new || (self.join_waiter.is_none() && self.sync_waiter.is_none())
    }

    pub(super) fn touch(&mut self, now_ms: i64) {
        self.heartbeat_deadline_ms = now_ms + i64::from(self.session_timeout_ms);
    }

    pub(super) fn answer_join(&mut self, response: JoinResponse) {
        if let Some(tx) = self.join_waiter.take() {
            // The receiver is gone if the client disconnected; nothing to do then.
            let _ = tx.send(response);
        }
    }

    pub(super) fn answer_sync(&mut self, response: SyncResponse) {
        if let Some(tx) = self.sync_waiter.take() {
            let _ = tx.send(response);
        }
    }
}
