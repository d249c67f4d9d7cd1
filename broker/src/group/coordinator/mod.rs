//! [`GroupCoordinator`]: every group's state machine behind one lock, the durable offset store, and the
//! timers. Handlers call it synchronously (state changes happen in request order) and only await what it
//! hands back: a pending JoinGroup/SyncGroup answer or the fsync of a commit.
//!
//! The group-level validation that Kafka does before reaching a group (group id, session timeout bounds,
//! unknown group) lives here; everything about one group lives in [`super::state`].
//!
//! References:
//! - Kafka protocol guide: <https://kafka.apache.org/protocol#The_Messages_OffsetCommit>
//! - KIP-211 offset expiry: <https://cwiki.apache.org/confluence/display/KAFKA/KIP-211%3A+Revise+Expiration+Semantics+of+Consumer+Group+Offsets>
//! - KIP-496 OffsetDelete: <https://cwiki.apache.org/confluence/display/KAFKA/KIP-496%3A+Administrative+API+to+delete+consumer+offsets>

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use tokio_util::sync::CancellationToken;

use super::offsets::{CommittedOffset, GroupMeta, OffsetStore, TopicPartition};
use super::state::{
    Group, GroupDescription, GroupSettings, GroupStateName, JoinRequest, JoinResponse, LeaveMember, Reply, SyncRequest,
    SyncResponse,
};
use super::subscription::CONSUMER_PROTOCOL_TYPE;
use crate::broker::steady_clock_ms;
use crate::config::BrokerConfig;
use crate::error::Error;
use crate::storage::LogManager;

/// Directory under `log_dirs` holding the committed offsets (the name of Kafka's offsets topic).
pub const OFFSETS_DIR: &str = "__consumer_offsets";
/// Kafka's `offset.metadata.max.bytes` default.
pub const OFFSET_METADATA_MAX_BYTES: usize = 4096;
const TICK_INTERVAL: Duration = Duration::from_millis(100);
/// Kafka checks every 10 minutes (`offsets.retention.check.interval.ms`); a minute costs nothing here.
const OFFSET_EXPIRY_CHECK_INTERVAL_MS: i64 = 60_000;
/// The error a commit gets when the offsets file cannot take it: Kafka maps a storage error of the
/// offsets topic to NOT_COORDINATOR, which clients handle by looking the coordinator up and retrying.
const STORAGE_FAILURE: ResponseError = ResponseError::NotCoordinator;

/// Does this topic partition exist? (The storage's `partition(topic, p).is_some()`, abstracted so the
/// coordinator can be tested without partition logs.)
pub type PartitionExists = Arc<dyn Fn(&str, i32) -> bool + Send + Sync>;

pub struct GroupCoordinator {
    settings: GroupSettings,
    groups: Mutex<HashMap<String, Group>>,
    offsets: Arc<OffsetStore>,
    offsets_dir: std::path::PathBuf,
    partition_exists: PartitionExists,
    next_expiry_check_ms: AtomicI64,
    /// `[broker.retention] protect_groups`: their committed offsets never expire, since they are the
    /// floor that holds back log retention for the group.
    protected_groups: HashSet<String>,
    /// Protected groups with offsets that would have expired, logged once until that stops being so.
    expiry_held: Mutex<HashSet<String>>,
}

/// One partition of an OffsetCommit.
#[derive(Debug, Clone)]
pub struct CommitPartition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// -1 if unknown (OffsetCommit < v6).
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CommitRequest {
    pub group_id: String,
    /// -1 with an empty member id: a standalone consumer or an admin tool.
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// OffsetCommit v2–v4 only; -1 means the broker default.
    pub retention_time_ms: i64,
    pub partitions: Vec<CommitPartition>,
}

/// Per-partition results (in request order), final once the write is durable.
pub struct WriteOutcome {
    errors: Vec<Option<ResponseError>>,
    durable: Option<(Arc<OffsetStore>, u64)>,
}

impl WriteOutcome {
    fn ready(errors: Vec<Option<ResponseError>>) -> Self {
        Self { errors, durable: None }
    }

    /// The errors as known now, before the fsync (tests, and callers that do not need durability).
    pub fn errors(&self) -> &[Option<ResponseError>] {
        &self.errors
    }

    /// Waits for the fsync covering the write; if it fails, the partitions that were written fail too.
    pub fn wait(self) -> impl Future<Output = Vec<Option<ResponseError>>> + Send + 'static {
        let Self { mut errors, durable } = self;
        let sync = durable.map(|(store, seq)| store.wait_durable(seq));
        async move {
            if let Some(sync) = sync {
                if sync.await.is_err() {
                    for e in errors.iter_mut().filter(|e| e.is_none()) {
                        *e = Some(STORAGE_FAILURE);
                    }
                }
            }
            errors
        }
    }
}

/// OffsetFetch results: per topic, per partition, the committed offset if any.
pub type FetchedOffsets = Vec<(String, Vec<(i32, Option<CommittedOffset>)>)>;

#[derive(Debug, Clone, PartialEq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupStateName,
}

impl GroupCoordinator {
    /// Opens the committed offsets under `<log_dirs>/__consumer_offsets` (replaying and compacting them).
    pub fn open(config: &BrokerConfig, logs: Arc<LogManager>) -> crate::Result<Arc<Self>> {
        let exists: PartitionExists = Arc::new(move |topic, partition| logs.partition(topic, partition).is_some());
        Self::open_with(config, exists, steady_clock_ms())
    }

    /// [`open`](Self::open) with the partition-existence check and the current time supplied.
    pub fn open_with(
        config: &BrokerConfig,
        partition_exists: PartitionExists,
        now_ms: i64,
    ) -> crate::Result<Arc<Self>> {
        let dir = config.log_dirs.join(OFFSETS_DIR);
        let offsets = OffsetStore::open(&dir).map_err(|source| Error::Storage { path: dir.clone(), source })?;
        Ok(Arc::new(Self::with_store(config, offsets, partition_exists, now_ms)))
    }

    fn with_store(
        config: &BrokerConfig,
        offsets: Arc<OffsetStore>,
        partition_exists: PartitionExists,
        now_ms: i64,
    ) -> Self {
        let settings = GroupSettings {
            initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms as i64,
            min_session_timeout_ms: config.group_min_session_timeout_ms,
            max_session_timeout_ms: config.group_max_session_timeout_ms,
            offsets_retention_ms: config.offsets_retention_minutes.saturating_mul(60_000),
        };
        // Groups come back as Empty groups holding their offsets. One that had members when the broker
        // stopped counts as empty from now on, so its offsets get the full retention after the restart.
        let mut groups = HashMap::new();
        for id in offsets.groups() {
            let mut group = Group::new(id.clone(), now_ms);
            if let Some(meta) = offsets.meta(&id) {
                group.protocol_type = meta.protocol_type.clone();
                group.state = super::state::GroupState::Empty { since_ms: meta.empty_since_ms.unwrap_or(now_ms) };
                let current = GroupMeta { protocol_type: meta.protocol_type, empty_since_ms: group.empty_since() };
                if let Err(e) = offsets.put_meta(&id, &current) {
                    tracing::warn!(group = %id, error = %e, "cannot record group metadata");
                }
            }
            groups.insert(id, group);
        }
        Self {
            settings,
            groups: Mutex::new(groups),
            offsets,
            offsets_dir: config.log_dirs.join(OFFSETS_DIR),
            partition_exists,
            next_expiry_check_ms: AtomicI64::new(0),
            protected_groups: config.retention.protect_groups.iter().cloned().collect(),
            expiry_held: Mutex::new(HashSet::new()),
        }
    }

    /// Syncs the committed offsets. Best effort and idempotent: it never panics, logs a failure (and
    /// returns it), and can be called again (a later call syncs whatever was written since).
    pub fn close(&self) -> crate::Result<()> {
        self.offsets.close().map_err(|source| {
            tracing::error!(error = %source, "cannot sync committed offsets on close");
            Error::Storage { path: self.offsets_dir.clone(), source }
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Group>> {
        // Transitions keep the group map consistent between statements; a panic in one request must not
        // take every group down with it.
        self.groups.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on a group and records the group's meta (protocol type, empty-since) if it changed:
    /// offset expiry after a restart needs it (KIP-211).
    fn update<R>(&self, group: &mut Group, f: impl FnOnce(&mut Group) -> R) -> R {
        let before = (group.protocol_type.clone(), group.empty_since());
        let result = f(group);
        let after = (group.protocol_type.clone(), group.empty_since());
        if before != after && after.0.is_some() {
            let meta = GroupMeta { protocol_type: after.0, empty_since_ms: after.1 };
            if let Err(e) = self.offsets.put_meta(&group.id, &meta) {
                tracing::warn!(group = %group.id, error = %e, "cannot record group metadata");
            }
        }
        result
    }

    // ---- Membership ------------------------------------------------------------------------------

    pub fn join(&self, req: JoinRequest, now_ms: i64) -> Reply<JoinResponse> {
        if req.group_id.is_empty() {
            return Reply::Ready(JoinResponse::error(req.member_id, ResponseError::InvalidGroupId));
        }
        if req.session_timeout_ms < self.settings.min_session_timeout_ms
            || req.session_timeout_ms > self.settings.max_session_timeout_ms
        {
            return Reply::Ready(JoinResponse::error(req.member_id, ResponseError::InvalidSessionTimeout));
        }
        let mut groups = self.lock();
        // Only a member without an id may create the group; a known id for an unknown group is stale.
        if !groups.contains_key(&req.group_id) {
            if !req.member_id.is_empty() {
                return Reply::Ready(JoinResponse::error(req.member_id, ResponseError::UnknownMemberId));
            }
            groups.insert(req.group_id.clone(), Group::new(req.group_id.clone(), now_ms));
        }
        let group = groups.get_mut(&req.group_id).expect("inserted above");
        self.update(group, |g| g.join(req, &self.settings, now_ms))
    }

    pub fn sync(&self, req: SyncRequest, now_ms: i64) -> Reply<SyncResponse> {
        if req.group_id.is_empty() {
            return Reply::Ready(SyncResponse::error(ResponseError::InvalidGroupId));
        }
        let mut groups = self.lock();
        match groups.get_mut(&req.group_id) {
            None => Reply::Ready(SyncResponse::error(ResponseError::UnknownMemberId)),
            Some(group) => self.update(group, |g| g.sync(req, now_ms)),
        }
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> Option<ResponseError> {
        if group_id.is_empty() {
            return Some(ResponseError::InvalidGroupId);
        }
        let mut groups = self.lock();
        match groups.get_mut(group_id) {
            None => Some(ResponseError::UnknownMemberId),
            Some(group) => self.update(group, |g| g.heartbeat(member_id, group_instance_id, generation_id, now_ms)),
        }
    }

    /// Per-member results in request order, or a group-level error.
    pub fn leave(
        &self,
        group_id: &str,
        members: &[LeaveMember],
        now_ms: i64,
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let mut groups = self.lock();
        match groups.get_mut(group_id) {
            None => Ok(vec![Some(ResponseError::UnknownMemberId); members.len()]),
            Some(group) => self.update(group, |g| g.leave(members, &self.settings, now_ms)),
        }
    }

    // ---- Offsets ---------------------------------------------------------------------------------

    /// Validates and applies an OffsetCommit; the returned outcome resolves once it is on disk.
    pub fn commit_offsets(&self, req: CommitRequest, now_ms: i64) -> WriteOutcome {
        let mut errors = vec![None; req.partitions.len()];
        // Checked under the groups lock: a topic deleted before we look is refused here, one deleted after
        // is cleaned up by `delete_topic_offsets`, which waits for this lock. No stale offset survives.
        let mut groups = self.lock();
        // Like Kafka's request handler, unknown partitions are refused before the group is consulted.
        let mut valid = Vec::with_capacity(req.partitions.len());
        for (i, p) in req.partitions.iter().enumerate() {
            if (self.partition_exists)(&p.topic, p.partition) {
                valid.push(i);
            } else {
                errors[i] = Some(ResponseError::UnknownTopicOrPartition);
            }
        }
        if valid.is_empty() {
            return WriteOutcome::ready(errors);
        }
        let fail_all = |errors: &mut Vec<Option<ResponseError>>, valid: &[usize], e: ResponseError| {
            for &i in valid {
                errors[i] = Some(e);
            }
        };

        if !groups.contains_key(&req.group_id) {
            if req.generation_id >= 0 {
                // A generation for a group we do not know: a member of a group that is gone.
                fail_all(&mut errors, &valid, ResponseError::IllegalGeneration);
                return WriteOutcome::ready(errors);
            }
            // A group that does not use group management: it exists only to hold offsets.
            groups.insert(req.group_id.clone(), Group::new(req.group_id.clone(), now_ms));
        }
        let group = groups.get_mut(&req.group_id).expect("inserted above");
        let validation = self.update(group, |g| {
            g.validate_offset_commit(req.generation_id, &req.member_id, req.group_instance_id.as_deref(), now_ms)
        });
        if let Err(e) = validation {
            fail_all(&mut errors, &valid, e);
            return WriteOutcome::ready(errors);
        }

        // Kafka stores a non-default retention of OffsetCommit v2–v4 as an explicit expire timestamp.
        let expire_timestamp_ms = (req.retention_time_ms >= 0).then(|| now_ms.saturating_add(req.retention_time_ms));
        let mut entries = Vec::with_capacity(valid.len());
        let mut written = Vec::with_capacity(valid.len());
        for i in valid {
            let p = &req.partitions[i];
            let metadata = p.metadata.clone().unwrap_or_default();
            if metadata.len() > OFFSET_METADATA_MAX_BYTES {
                errors[i] = Some(ResponseError::OffsetMetadataTooLarge);
                continue;
            }
            entries.push((
                TopicPartition::new(p.topic.clone(), p.partition),
                CommittedOffset {
                    offset: p.offset,
                    leader_epoch: p.leader_epoch,
                    metadata,
                    commit_timestamp_ms: now_ms,
                    expire_timestamp_ms,
                },
            ));
            written.push(i);
        }
        if entries.is_empty() {
            return WriteOutcome::ready(errors);
        }
        match self.offsets.commit(&req.group_id, &entries) {
            Ok(seq) => WriteOutcome { errors, durable: Some((Arc::clone(&self.offsets), seq)) },
            Err(e) => {
                tracing::error!(group = %req.group_id, error = %e, "cannot write committed offsets");
                fail_all(&mut errors, &written, STORAGE_FAILURE);
                WriteOutcome::ready(errors)
            }
        }
    }

    /// OffsetFetch: the requested partitions (`None`: every committed one). Unknown groups, topics and
    /// partitions simply have no committed offset (-1 on the wire), as in Kafka.
    pub fn fetch_offsets(&self, group_id: &str, topics: Option<&[(String, Vec<i32>)]>) -> FetchedOffsets {
        match topics {
            Some(topics) => topics
                .iter()
                .map(|(topic, partitions)| {
                    let offsets = partitions
                        .iter()
                        .map(|&p| (p, self.offsets.get(group_id, &TopicPartition::new(topic.clone(), p))))
                        .collect();
                    (topic.clone(), offsets)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<(i32, Option<CommittedOffset>)>> = BTreeMap::new();
                for (tp, c) in self.offsets.group_offsets(group_id) {
                    by_topic.entry(tp.topic).or_default().push((tp.partition, Some(c)));
                }
                by_topic.into_iter().collect()
            }
        }
    }

    /// Every committed offset of a group, ordered by topic and partition (CLI `groups describe`, lag).
    pub fn committed_offsets(&self, group_id: &str) -> Vec<(TopicPartition, CommittedOffset)> {
        self.offsets.group_offsets(group_id)
    }

    /// OffsetDelete (KIP-496): per-partition results, or a group-level error.
    pub fn delete_offsets(&self, group_id: &str, partitions: &[TopicPartition]) -> Result<WriteOutcome, ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let groups = self.lock();
        let group = match groups.get(group_id) {
            Some(g) if !g.is(GroupStateName::Dead) => g,
            _ => return Err(ResponseError::GroupIdNotFound),
        };
        let consumer = group.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE);
        if !group.is(GroupStateName::Empty) && !consumer {
            // Kafka cannot tell what a non-consumer group with members uses, so it refuses outright.
            return Err(ResponseError::NonEmptyGroup);
        }
        let mut errors = vec![None; partitions.len()];
        let mut doomed = Vec::new();
        for (i, tp) in partitions.iter().enumerate() {
            if !(self.partition_exists)(&tp.topic, tp.partition) {
                errors[i] = Some(ResponseError::UnknownTopicOrPartition);
            } else if !group.is(GroupStateName::Empty) && group.is_subscribed_to(&tp.topic) {
                errors[i] = Some(ResponseError::GroupSubscribedToTopic);
            } else {
                doomed.push((i, tp.clone()));
            }
        }
        if doomed.is_empty() {
            return Ok(WriteOutcome::ready(errors));
        }
        let tps: Vec<TopicPartition> = doomed.iter().map(|(_, tp)| tp.clone()).collect();
        match self.offsets.delete(group_id, &tps) {
            Ok(seq) => Ok(WriteOutcome { errors, durable: Some((Arc::clone(&self.offsets), seq)) }),
            Err(e) => {
                tracing::error!(group = %group_id, error = %e, "cannot write offset deletion");
                for (i, _) in doomed {
                    errors[i] = Some(STORAGE_FAILURE);
                }
                Ok(WriteOutcome::ready(errors))
            }
        }
    }

    /// After DeleteTopics: removes every group's committed offsets of `topic`, durably, as Kafka's
    /// `GroupMetadataManager.cleanupGroupMetadata` does for deleted partitions, so a topic re-created
    /// under the same name starts without the old positions. Empty groups left without offsets are
    /// forgotten, as after expiry. Failures are logged (the topic is gone either way).
    ///
    /// Blocks for the fsync (after releasing the groups lock), like the topic deletion itself. `_now_ms`
    /// is accepted for symmetry with the other entry points; nothing here depends on the time yet.
    pub fn delete_topic_offsets(&self, topic: &str, _now_ms: i64) {
        let seq = {
            let mut groups = self.lock();
            let (touched, deleted, seq) = match self.offsets.delete_topic(topic) {
                Ok(done) => done,
                Err(e) => {
                    tracing::error!(topic, error = %e, "cannot delete the committed offsets of a deleted topic");
                    return;
                }
            };
            if deleted > 0 {
                let groups = touched.len();
                tracing::info!(topic, offsets = deleted, groups, "deleted committed offsets of a deleted topic");
            }
            self.forget_unused_groups(&mut groups, touched);
            seq
        };
        if let Err(e) = self.offsets.wait_durable_blocking(seq) {
            tracing::error!(topic, error = %e, "cannot sync the deletion of a deleted topic's committed offsets");
        }
    }

    /// Removes those of `ids` that are Empty, have no pending member and no committed offset left.
    fn forget_unused_groups(&self, groups: &mut HashMap<String, Group>, ids: Vec<String>) {
        for id in ids {
            let unused = groups.get(&id).is_some_and(|g| {
                g.is(GroupStateName::Empty) && g.pending_members.is_empty() && !self.offsets.has_offsets(&id)
            });
            if !unused {
                continue;
            }
            if let Some(mut group) = groups.remove(&id) {
                group.mark_dead();
            }
            if self.offsets.meta(&id).is_some() {
                if let Err(e) = self.offsets.delete_group(&id) {
                    tracing::warn!(group = %id, error = %e, "cannot write group removal");
                }
            }
        }
    }

    // ---- Admin -----------------------------------------------------------------------------------

    /// DescribeGroups / CLI. An unknown group is described as Dead with no members, as Kafka does.
    pub fn describe(&self, group_id: &str) -> GroupDescription {
        match self.lock().get(group_id) {
            Some(group) => group.describe(),
            None => GroupDescription {
                group_id: group_id.to_owned(),
                state: GroupStateName::Dead,
                protocol_type: String::new(),
                protocol: String::new(),
                generation_id: -1,
                leader: None,
                members: Vec::new(),
            },
        }
    }

    /// ListGroups / CLI, sorted by group id.
    pub fn list_groups(&self) -> Vec<GroupListing> {
        let mut listing: Vec<GroupListing> = self
            .lock()
            .values()
            .map(|g| GroupListing {
                group_id: g.id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state_name(),
            })
            .collect();
        listing.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        listing
    }

    /// DeleteGroups: only empty groups can be deleted (NON_EMPTY_GROUP otherwise). Their offsets go too.
    pub fn delete_groups(&self, group_ids: &[String]) -> WriteOutcome {
        let mut groups = self.lock();
        let mut errors = Vec::with_capacity(group_ids.len());
        let mut last_seq = None;
        for id in group_ids {
            let error = match groups.get_mut(id) {
                None => Some(ResponseError::GroupIdNotFound),
                Some(g) if g.is(GroupStateName::Dead) => Some(ResponseError::GroupIdNotFound),
                Some(g) if !g.is(GroupStateName::Empty) => Some(ResponseError::NonEmptyGroup),
                Some(g) => match self.offsets.delete_group(id) {
                    Ok(seq) => {
                        g.mark_dead();
                        groups.remove(id);
                        last_seq = Some(seq);
                        None
                    }
                    Err(e) => {
                        tracing::error!(group = %id, error = %e, "cannot write group deletion");
                        Some(STORAGE_FAILURE)
                    }
                },
            };
            errors.push(error);
        }
        WriteOutcome { errors, durable: last_seq.map(|seq| (Arc::clone(&self.offsets), seq)) }
    }

    // ---- Timers ----------------------------------------------------------------------------------

    /// Advances every group's timers to `now_ms` (sessions, rebalance and sync deadlines) and, once a
    /// minute, expires offsets.
    pub fn tick(&self, now_ms: i64) {
        {
            let mut groups = self.lock();
            for group in groups.values_mut() {
                self.update(group, |g| g.tick(&self.settings, now_ms));
            }
        }
        if now_ms >= self.next_expiry_check_ms.load(Ordering::Relaxed) {
            self.next_expiry_check_ms.store(now_ms + OFFSET_EXPIRY_CHECK_INTERVAL_MS, Ordering::Relaxed);
            self.expire_offsets(now_ms);
        }
    }

    /// KIP-211 expiry, as Kafka's `GroupMetadata.removeExpiredOffsets`:
    /// - a group that used group management and is Empty: all offsets, once it has been empty for the
    ///   retention period;
    /// - a Stable consumer group: offsets of topics it no longer subscribes to, by commit time;
    /// - a group that never had members (standalone consumers): each offset by its commit time.
    ///
    /// Offsets committed with an explicit retention (OffsetCommit v2–v4) expire at their own timestamp.
    /// Empty groups left without offsets are forgotten.
    ///
    /// Not in Kafka: the offsets of `[broker.retention] protect_groups` never expire. They are the floor
    /// below which log retention waits for the group, and what it counts a group's lost records against;
    /// expiring them would let retention delete what the group has not read without counting it. Only
    /// OffsetDelete, DeleteGroups or deleting the topic remove them.
    pub fn expire_offsets(&self, now_ms: i64) {
        let retention = self.settings.offsets_retention_ms;
        if retention < 0 {
            return;
        }
        let expired = |base_ms: i64, c: &CommittedOffset| match c.expire_timestamp_ms {
            Some(at) => now_ms >= at,
            None => now_ms.saturating_sub(base_ms) >= retention,
        };
        let mut groups = self.lock();
        let mut candidates = Vec::new();
        for (id, group) in groups.iter() {
            let stable_consumer =
                group.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE) && group.is(GroupStateName::Stable);
            let is_expired =
                |tp: &TopicPartition, c: &CommittedOffset| match (&group.protocol_type, group.empty_since()) {
                    (Some(_), Some(since)) => expired(since, c),
                    (Some(_), None) if stable_consumer => match &group.subscribed_topics {
                        Some(topics) => !topics.contains(&tp.topic) && expired(c.commit_timestamp_ms, c),
                        None => false,
                    },
                    (None, _) => expired(c.commit_timestamp_ms, c),
                    _ => false,
                };
            let result = if self.protected_groups.contains(id) {
                let held = self.offsets.group_offsets(id).iter().filter(|(tp, c)| is_expired(tp, c)).count();
                self.note_held_expiry(id, held);
                Ok(0)
            } else {
                self.offsets.expire(id, is_expired)
            };
            match result {
                Ok(0) => {}
                Ok(n) => tracing::info!(group = %id, expired = n, "expired committed offsets"),
                Err(e) => tracing::warn!(group = %id, error = %e, "cannot write offset expiry"),
            }
            if group.is(GroupStateName::Empty) && group.pending_members.is_empty() {
                candidates.push(id.clone());
            }
        }
        self.forget_unused_groups(&mut groups, candidates);
    }

    /// Logs, once, that a protected group's offsets outlived `offsets_retention_minutes`, and again if
    /// that happens anew after it stopped (the group came back, or its offsets were deleted).
    fn note_held_expiry(&self, group: &str, held: usize) {
        let mut logged = self.expiry_held.lock().unwrap_or_else(PoisonError::into_inner);
        if held == 0 {
            logged.remove(group);
        } else if logged.insert(group.to_owned()) {
            tracing::info!(
                group,
                offsets = held,
                "committed offsets outlived offsets_retention_minutes but are kept: the group is in \
                 [broker.retention] protect_groups, so retention keeps holding its unread records (if the group \
                 is gone for good, delete it with `logpipe groups delete`)"
            );
        }
    }

    /// Calls [`tick`](Self::tick) every 100 ms and compacts the offsets file when it has grown, until
    /// `shutdown` is cancelled. The lead spawns this once.
    pub async fn run_timers(self: Arc<Self>, shutdown: CancellationToken) {
        let mut interval = tokio::time::interval(TICK_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = interval.tick() => {}
            }
            self.tick(steady_clock_ms());
            if self.offsets.needs_compaction() {
                let store = Arc::clone(&self.offsets);
                match tokio::task::spawn_blocking(move || store.compact()).await {
                    Ok(Ok(())) => tracing::debug!("compacted committed offsets"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "cannot compact committed offsets"),
                    Err(e) => tracing::warn!(error = %e, "committed offsets compaction task failed"),
                }
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn group_state(&self, group_id: &str) -> Option<GroupStateName> {
        self.lock().get(group_id).map(Group::state_name)
    }
}

#[cfg(test)]
mod tests;
