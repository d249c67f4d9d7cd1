//! The group coordinator: Kafka's classic consumer-group protocol and durable committed offsets.
//!
//! - [`state`]: one group's state machine (Empty, PreparingRebalance, CompletingRebalance, Stable, Dead)
//!   with time passed in, so tests drive it without sleeping.
//! - [`coordinator`]: [`GroupCoordinator`], all groups behind one lock, offset validation, expiry and the
//!   background timers ([`GroupCoordinator::run_timers`]).
//! - [`offsets`]: the append-only, CRC-framed, fsynced offsets file under `<log_dirs>/__consumer_offsets`.
//! - [`subscription`]: the topics in a consumer's JoinGroup metadata.
//!
//! Only committed offsets (and the little the expiry rules need) are durable. Membership is not: after a
//! restart every group is Empty and consumers simply rejoin, which is what Kafka clients do after a
//! coordinator failover anyway.
//!
//! References:
//! - Kafka protocol guide: <https://kafka.apache.org/protocol>
//! - KIP-345 static membership, KIP-394 MEMBER_ID_REQUIRED, KIP-211 offset expiry, KIP-496 OffsetDelete
//!   (links in the submodules).

pub mod coordinator;
pub mod offsets;
pub mod state;
pub mod subscription;

#[cfg(test)]
pub(crate) use coordinator::PartitionExists;
pub use coordinator::{CommitPartition, CommitRequest, FetchedOffsets, GroupCoordinator, GroupListing};
pub use offsets::{CommittedOffset, TopicPartition};
pub use state::{
    GroupDescription, GroupStateName, JoinRequest, JoinResponse, LeaveMember, Protocol, SyncRequest, SyncResponse,
};
#[cfg(test)]
pub(crate) use state::{JoinedMember, MemberDescription, Reply};

/// A Kafka error code as response data: 0 for no error.
pub fn error_code(error: Option<kafka_protocol::ResponseError>) -> i16 {
    error.map_or(0, |e| e.code())
}

/// Helpers shared by the group and handler tests: a coordinator over a temp dir (topics `logs` with
/// 4 partitions and `other` with 2 exist), and short-hands for joining and syncing.
#[cfg(test)]
pub(crate) mod tests_support {
    use std::path::Path;
    use std::sync::Arc;

    use kafka_protocol::ResponseError;
    use tokio::sync::oneshot;

    use super::subscription::encode_subscription;
    use super::{GroupCoordinator, JoinRequest, JoinResponse, PartitionExists, Protocol, Reply, SyncRequest};
    use crate::config::BrokerConfig;

    pub const SESSION_MS: i32 = 10_000;
    pub const REBALANCE_MS: i32 = 30_000;

    pub fn config(dir: &Path) -> BrokerConfig {
        BrokerConfig { log_dirs: dir.to_owned(), ..BrokerConfig::default() }
    }

    pub fn partition_exists() -> PartitionExists {
        Arc::new(|topic, partition| match topic {
            "logs" => (0..4).contains(&partition),
            "other" => (0..2).contains(&partition),
            _ => false,
        })
    }

    /// Default config (3 s initial rebalance delay).
    pub fn coordinator() -> (tempfile::TempDir, Arc<GroupCoordinator>) {
        coordinator_with_delay(3000)
    }

    pub fn coordinator_with_delay(delay_ms: u64) -> (tempfile::TempDir, Arc<GroupCoordinator>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = BrokerConfig { group_initial_rebalance_delay_ms: delay_ms, ..config(dir.path()) };
        let groups = GroupCoordinator::open_with(&config, partition_exists(), 0).expect("open");
        (dir, groups)
    }

    /// Consumer-protocol metadata for the given assignors, all subscribing to `topics`.
    pub fn protocols(names: &[&str], topics: &[&str]) -> Vec<Protocol> {
        names.iter().map(|n| Protocol { name: (*n).to_owned(), metadata: encode_subscription(1, topics) }).collect()
    }

    pub fn range() -> Vec<Protocol> {
        protocols(&["range"], &["logs"])
    }

    pub fn join_request(member_id: &str, instance: Option<&str>, protocols: Vec<Protocol>) -> JoinRequest {
        JoinRequest {
            group_id: "g".into(),
            member_id: member_id.into(),
            group_instance_id: instance.map(str::to_owned),
            client_id: "client".into(),
            client_host: "/10.0.0.1".into(),
            session_timeout_ms: SESSION_MS,
            rebalance_timeout_ms: REBALANCE_MS,
            protocol_type: "consumer".into(),
            protocols,
            require_known_member_id: true,
            supports_skip_assignment: false,
        }
    }

    /// A dynamic member's first join, v4+ style: MEMBER_ID_REQUIRED, then the rejoin with the id.
    pub fn new_member(groups: &GroupCoordinator, protocols: Vec<Protocol>, now: i64) -> (String, Reply<JoinResponse>) {
        let first = resolved(groups.join(join_request("", None, protocols.clone()), now));
        assert_eq!(first.error, Some(ResponseError::MemberIdRequired));
        let id = first.member_id;
        let reply = groups.join(join_request(&id, None, protocols), now);
        (id, reply)
    }

    pub fn sync_request(member_id: &str, generation: i32, assignments: &[(&str, &str)]) -> SyncRequest {
        SyncRequest {
            group_id: "g".into(),
            generation_id: generation,
            member_id: member_id.into(),
            group_instance_id: None,
            protocol_type: None,
            protocol_name: None,
            assignments: assignments
                .iter()
                .map(|(m, a)| ((*m).to_owned(), bytes::Bytes::copy_from_slice(a.as_bytes())))
                .collect(),
        }
    }

    /// The answer, which must already be there.
    pub fn resolved<T: std::fmt::Debug>(reply: Reply<T>) -> T {
        match reply {
            Reply::Ready(t) => t,
            Reply::Pending(mut rx) => rx.try_recv().expect("the request should have been answered"),
        }
    }

    /// The receiver of a request that must still be waiting.
    pub fn pending<T: std::fmt::Debug>(reply: Reply<T>) -> oneshot::Receiver<T> {
        let mut rx = reply.into_pending().expect("the request should wait");
        assert!(matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Empty)), "answered too early");
        rx
    }
}
