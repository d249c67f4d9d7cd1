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

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use tokio_util::sync::CancellationToken;

use super::offsets::{CommittedOffset, GroupMeta, OffsetStore, TopicPartition};
use super::state::{
    Group, GroupDescription, GroupSettings, GroupStateName, JoinRequest, JoinResponse, LeaveMember, Reply,
    SyncRequest, SyncResponse,
};
use super::subscription::CONSUMER_PROTOCOL_TYPE;
use crate::broker::now_ms;
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
        Self::open_with(config, exists, now_ms())
    }

    /// [`open`](Self::open) with the partition-existence check and the current time supplied.
    pub fn open_with(config: &BrokerConfig, partition_exists: PartitionExists, now_ms: i64) -> crate::Result<Arc<Self>> {
        let dir = config.log_dirs.join(OFFSETS_DIR);
        let offsets = OffsetStore::open(&dir).map_err(|source| Error::Storage { path: dir.clone(), source })?;
        Ok(Arc::new(Self::with_store(config, offsets, partition_exists, now_ms)))
    }

    fn with_store(config: &BrokerConfig, offsets: Arc<OffsetStore>, partition_exists: PartitionExists, now_ms: i64) -> Self {
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
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
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
        for (id, group) in groups.iter_mut() {
            let result = match (group.protocol_type.as_deref(), group.empty_since()) {
                (Some(_), Some(since)) => self.offsets.expire(id, |_, c| expired(since, c)),
                (Some(CONSUMER_PROTOCOL_TYPE), None) if group.is(GroupStateName::Stable) => {
                    match &group.subscribed_topics {
                        Some(topics) => self
                            .offsets
                            .expire(id, |tp, c| !topics.contains(&tp.topic) && expired(c.commit_timestamp_ms, c)),
                        None => Ok(0),
                    }
                }
                (None, _) => self.offsets.expire(id, |_, c| expired(c.commit_timestamp_ms, c)),
                _ => Ok(0),
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
            self.tick(now_ms());
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
mod tests {
    use kafka_protocol::ResponseError as E;

    use super::*;
    use crate::group::state::LeaveMember;
    use crate::group::tests_support::*;

    const T0: i64 = 1_000_000;
    const DAY: i64 = 24 * 3600 * 1000;
    /// The default `offsets_retention_minutes` (7 days).
    const RETENTION: i64 = 7 * DAY;

    fn commit_request(group: &str, generation: i32, member: &str, partitions: &[(&str, i32, i64)]) -> CommitRequest {
        CommitRequest {
            group_id: group.into(),
            generation_id: generation,
            member_id: member.into(),
            group_instance_id: None,
            retention_time_ms: -1,
            partitions: partitions
                .iter()
                .map(|(topic, partition, offset)| CommitPartition {
                    topic: (*topic).into(),
                    partition: *partition,
                    offset: *offset,
                    leader_epoch: 4,
                    metadata: Some(format!("m{offset}")),
                })
                .collect(),
        }
    }

    /// A standalone consumer's commit (generation -1, no member id), which must succeed.
    fn simple_commit(groups: &GroupCoordinator, group: &str, partitions: &[(&str, i32, i64)], now: i64) {
        let outcome = groups.commit_offsets(commit_request(group, -1, "", partitions), now);
        assert!(outcome.errors().iter().all(Option::is_none), "{:?}", outcome.errors());
    }

    fn offset_of(groups: &GroupCoordinator, group: &str, topic: &str, partition: i32) -> Option<i64> {
        let fetched = groups.fetch_offsets(group, Some(&[(topic.to_owned(), vec![partition])]));
        fetched[0].1[0].1.as_ref().map(|c| c.offset)
    }

    /// A consumer group "g" with one member subscribed to `logs`, Stable at generation 1.
    fn stable_consumer(groups: &GroupCoordinator, now: i64) -> String {
        let (a, reply) = new_member(groups, range(), now);
        resolved(reply);
        resolved(groups.sync(sync_request(&a, 1, &[(&a, "x")]), now));
        a
    }

    #[test]
    fn standalone_commit_creates_an_offsets_only_group() {
        let (_dir, groups) = coordinator();
        simple_commit(&groups, "tool", &[("logs", 0, 10), ("logs", 3, 30)], T0);
        assert_eq!(offset_of(&groups, "tool", "logs", 0), Some(10));
        assert_eq!(offset_of(&groups, "tool", "logs", 1), None);
        assert_eq!(offset_of(&groups, "nobody", "logs", 0), None);
        let listing = groups.list_groups();
        assert_eq!(
            listing,
            vec![GroupListing { group_id: "tool".into(), protocol_type: String::new(), state: GroupStateName::Empty }]
        );
        let all = groups.fetch_offsets("tool", None);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].1.iter().map(|(p, _)| *p).collect::<Vec<_>>(), vec![0, 3]);
        let committed = groups.committed_offsets("tool");
        assert_eq!(committed[1].0, TopicPartition::new("logs", 3));
        assert_eq!(committed[1].1.metadata, "m30");
        assert_eq!(committed[1].1.leader_epoch, 4);
        assert_eq!(committed[1].1.commit_timestamp_ms, T0);
    }

    #[test]
    fn commit_to_unknown_partition_is_refused_per_partition() {
        let (_dir, groups) = coordinator();
        let request = commit_request("g", -1, "", &[("logs", 0, 1), ("logs", 4, 1), ("nope", 0, 1)]);
        let outcome = groups.commit_offsets(request, T0);
        assert_eq!(outcome.errors(), &[None, Some(E::UnknownTopicOrPartition), Some(E::UnknownTopicOrPartition)]);
        assert_eq!(offset_of(&groups, "g", "logs", 0), Some(1));
        assert_eq!(offset_of(&groups, "g", "logs", 4), None);

        // Nothing valid at all: no group is created.
        let outcome = groups.commit_offsets(commit_request("h", -1, "", &[("nope", 0, 1)]), T0);
        assert_eq!(outcome.errors(), &[Some(E::UnknownTopicOrPartition)]);
        assert!(groups.list_groups().iter().all(|g| g.group_id != "h"));
    }

    #[test]
    fn commit_checks_metadata_size_and_unknown_generations() {
        let (_dir, groups) = coordinator();
        let mut request = commit_request("g", -1, "", &[("logs", 0, 1), ("logs", 1, 1)]);
        request.partitions[1].metadata = Some("x".repeat(OFFSET_METADATA_MAX_BYTES + 1));
        let outcome = groups.commit_offsets(request, T0);
        assert_eq!(outcome.errors(), &[None, Some(E::OffsetMetadataTooLarge)]);
        // A generation for a group that does not exist: a member of a group that is gone.
        let outcome = groups.commit_offsets(commit_request("gone", 3, "m", &[("logs", 0, 1)]), T0);
        assert_eq!(outcome.errors(), &[Some(E::IllegalGeneration)]);
    }

    #[test]
    fn member_commits_and_reset_offsets_on_an_empty_group() {
        let (_dir, groups) = coordinator_with_delay(0);
        let a = stable_consumer(&groups, T0);
        let outcome = groups.commit_offsets(commit_request("g", 1, &a, &[("logs", 0, 7)]), T0);
        assert_eq!(outcome.errors(), &[None]);
        groups.leave("g", &[LeaveMember { member_id: a, group_instance_id: None }], T0).unwrap();
        // `kafka-consumer-groups --reset-offsets` on the now empty group.
        simple_commit(&groups, "g", &[("logs", 0, 0)], T0 + 1);
        assert_eq!(offset_of(&groups, "g", "logs", 0), Some(0));
    }

    #[test]
    fn commit_without_generation_but_with_a_member_id_to_an_empty_group_is_accepted() {
        let (_dir, groups) = coordinator_with_delay(0);
        // An admin/simple commit that carries some member id, to a group Kafka would create for it.
        let outcome = groups.commit_offsets(commit_request("tool", -1, "some-admin-client", &[("logs", 0, 3)]), T0);
        assert_eq!(outcome.errors(), &[None]);
        assert_eq!(offset_of(&groups, "tool", "logs", 0), Some(3));
        // To an existing Empty group, which once had members.
        let a = stable_consumer(&groups, T0);
        groups.leave("g", &[LeaveMember { member_id: a.clone(), group_instance_id: None }], T0).unwrap();
        let outcome = groups.commit_offsets(commit_request("g", -1, &a, &[("logs", 0, 9)]), T0 + 1);
        assert_eq!(outcome.errors(), &[None]);
        assert_eq!(offset_of(&groups, "g", "logs", 0), Some(9));
        // A group with members still validates the member, as Kafka does.
        let (b, reply) = new_member(&groups, range(), T0 + 2);
        let generation = resolved(reply).generation_id;
        resolved(groups.sync(sync_request(&b, generation, &[(&b, "x")]), T0 + 2));
        assert_eq!(groups.describe("g").state, GroupStateName::Stable);
        let outcome = groups.commit_offsets(commit_request("g", -1, "stranger", &[("logs", 0, 1)]), T0 + 2);
        assert_eq!(outcome.errors(), &[Some(E::UnknownMemberId)]);
        let outcome = groups.commit_offsets(commit_request("g", -1, &b, &[("logs", 0, 1)]), T0 + 2);
        assert_eq!(outcome.errors(), &[Some(E::IllegalGeneration)]);
        assert_eq!(offset_of(&groups, "g", "logs", 0), Some(9));
    }

    #[test]
    fn deleting_a_topic_deletes_its_committed_offsets_durably() {
        let dir = tempfile::tempdir().unwrap();
        let logs_exists = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let exists: PartitionExists = {
            let logs_exists = Arc::clone(&logs_exists);
            Arc::new(move |topic, partition| match topic {
                "logs" => logs_exists.load(Ordering::SeqCst) && (0..4).contains(&partition),
                "other" => (0..2).contains(&partition),
                _ => false,
            })
        };
        let config = BrokerConfig { group_initial_rebalance_delay_ms: 0, ..config(dir.path()) };
        let groups = GroupCoordinator::open_with(&config, Arc::clone(&exists), T0).unwrap();
        let a = stable_consumer(&groups, T0);
        groups.commit_offsets(commit_request("g", 1, &a, &[("logs", 0, 7), ("logs", 3, 8), ("other", 0, 9)]), T0);
        simple_commit(&groups, "only-logs", &[("logs", 1, 1)], T0);
        simple_commit(&groups, "only-other", &[("other", 1, 2)], T0);

        logs_exists.store(false, Ordering::SeqCst); // LogManager::delete_topic("logs")
        groups.delete_topic_offsets("logs", T0 + 1);
        assert_eq!(offset_of(&groups, "g", "logs", 0), None);
        assert_eq!(offset_of(&groups, "g", "other", 0), Some(9));
        let listed: Vec<String> = groups.list_groups().into_iter().map(|g| g.group_id).collect();
        assert_eq!(listed, vec!["g", "only-other"], "an empty group left without offsets is forgotten");
        assert_eq!(groups.describe("g").state, GroupStateName::Stable, "members are untouched");
        // A commit racing in after the deletion finds the topic gone.
        let late = groups.commit_offsets(commit_request("g", 1, &a, &[("logs", 0, 10)]), T0 + 2);
        assert_eq!(late.errors(), &[Some(E::UnknownTopicOrPartition)]);
        drop(groups); // no close(): the deletion was synced before delete_topic_offsets returned

        // The topic is re-created under the same name: nobody resumes at the old positions.
        logs_exists.store(true, Ordering::SeqCst);
        let groups = GroupCoordinator::open_with(&config, exists, T0 + 3).unwrap();
        for (group, partition) in [("g", 0), ("g", 3), ("only-logs", 1)] {
            assert_eq!(offset_of(&groups, group, "logs", partition), None, "{group} logs-{partition}");
        }
        assert_eq!(offset_of(&groups, "g", "other", 0), Some(9));
        assert_eq!(offset_of(&groups, "only-other", "other", 1), Some(2));
        let listed: Vec<String> = groups.list_groups().into_iter().map(|g| g.group_id).collect();
        assert_eq!(listed, vec!["g", "only-other"]);
        // Deleting a topic nobody committed for is a no-op.
        groups.delete_topic_offsets("never-committed", T0 + 4);
        groups.close().unwrap();
    }

    #[test]
    fn close_is_idempotent_and_best_effort() {
        let (_dir, groups) = coordinator();
        simple_commit(&groups, "tool", &[("logs", 0, 1)], T0);
        groups.close().unwrap();
        groups.close().unwrap();
        simple_commit(&groups, "tool", &[("logs", 0, 2)], T0);
        groups.close().unwrap();
    }

    #[tokio::test]
    async fn acknowledged_commits_survive_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let groups = GroupCoordinator::open_with(&config(dir.path()), partition_exists(), T0).unwrap();
        let commits: Vec<_> = (0..8)
            .map(|i| groups.commit_offsets(commit_request("g", -1, "", &[("logs", i % 4, i64::from(i))]), T0).wait())
            .collect();
        for errors in futures::future::join_all(commits).await {
            assert_eq!(errors, vec![None]);
        }
        drop(groups); // no close(): as after kill -9, only what was fsynced counts

        let groups = GroupCoordinator::open_with(&config(dir.path()), partition_exists(), T0 + 1).unwrap();
        for p in 0..4 {
            assert_eq!(offset_of(&groups, "g", "logs", p), Some(i64::from(p) + 4));
        }
        groups.close().unwrap();
    }

    #[test]
    fn offsets_of_a_group_empty_for_the_retention_period_expire() {
        let (dir, groups) = coordinator_with_delay(0);
        let a = stable_consumer(&groups, T0);
        groups.commit_offsets(commit_request("g", 1, &a, &[("logs", 0, 7)]), T0);
        // Stable and subscribed: nothing expires, however old the commit.
        groups.expire_offsets(T0 + 30 * DAY);
        assert_eq!(offset_of(&groups, "g", "logs", 0), Some(7));

        let empty_at = T0 + 30 * DAY;
        groups.leave("g", &[LeaveMember { member_id: a, group_instance_id: None }], empty_at).unwrap();
        groups.expire_offsets(empty_at + RETENTION - 1);
        assert_eq!(offset_of(&groups, "g", "logs", 0), Some(7), "KIP-211: counted from when the group emptied");

        // The empty-since time survives a restart.
        drop(groups);
        let groups = GroupCoordinator::open_with(&config(dir.path()), partition_exists(), empty_at + DAY).unwrap();
        groups.expire_offsets(empty_at + RETENTION - 1);
        assert_eq!(offset_of(&groups, "g", "logs", 0), Some(7));
        groups.expire_offsets(empty_at + RETENTION);
        assert_eq!(offset_of(&groups, "g", "logs", 0), None);
        assert!(groups.list_groups().is_empty(), "an empty group without offsets is forgotten");
        assert_eq!(groups.describe("g").state, GroupStateName::Dead);
    }

    #[test]
    fn a_group_active_at_a_crash_gets_the_full_retention_after_restart() {
        let (dir, groups) = coordinator_with_delay(0);
        let a = stable_consumer(&groups, T0);
        groups.commit_offsets(commit_request("g", 1, &a, &[("logs", 0, 7)]), T0);
        drop(groups);
        let restart = T0 + 10 * DAY;
        let groups = GroupCoordinator::open_with(&config(dir.path()), partition_exists(), restart).unwrap();
        assert_eq!(groups.describe("g").state, GroupStateName::Empty);
        assert_eq!(groups.describe("g").protocol_type, "consumer");
        groups.expire_offsets(restart + RETENTION - 1);
        assert_eq!(offset_of(&groups, "g", "logs", 0), Some(7));
        groups.expire_offsets(restart + RETENTION);
        assert_eq!(offset_of(&groups, "g", "logs", 0), None);
    }

    #[test]
    fn standalone_offsets_expire_by_commit_time_and_explicit_retention() {
        let (_dir, groups) = coordinator();
        simple_commit(&groups, "tool", &[("logs", 0, 1)], T0);
        simple_commit(&groups, "tool", &[("logs", 1, 1)], T0 + DAY);
        let mut v2 = commit_request("tool", -1, "", &[("logs", 2, 1)]);
        v2.retention_time_ms = 1000;
        groups.commit_offsets(v2, T0);
        groups.expire_offsets(T0 + 1000);
        assert_eq!(offset_of(&groups, "tool", "logs", 2), None, "OffsetCommit v2-v4 retention is honoured");
        groups.expire_offsets(T0 + RETENTION);
        assert_eq!(offset_of(&groups, "tool", "logs", 0), None);
        assert_eq!(offset_of(&groups, "tool", "logs", 1), Some(1));
        groups.expire_offsets(T0 + DAY + RETENTION);
        assert!(groups.list_groups().is_empty());
    }

    #[test]
    fn stable_consumer_group_loses_offsets_of_topics_it_no_longer_reads() {
        let (_dir, groups) = coordinator_with_delay(0);
        let a = stable_consumer(&groups, T0);
        groups.commit_offsets(commit_request("g", 1, &a, &[("logs", 0, 1), ("other", 0, 1)]), T0);
        groups.expire_offsets(T0 + RETENTION);
        assert_eq!(offset_of(&groups, "g", "logs", 0), Some(1));
        assert_eq!(offset_of(&groups, "g", "other", 0), None);
    }

    #[test]
    fn tick_runs_expiry() {
        let (_dir, groups) = coordinator();
        simple_commit(&groups, "tool", &[("logs", 0, 1)], T0);
        groups.tick(T0);
        groups.tick(T0 + RETENTION);
        assert!(groups.list_groups().is_empty());
    }

    #[tokio::test]
    async fn delete_groups_only_when_empty() {
        let (dir, groups) = coordinator_with_delay(0);
        let _a = stable_consumer(&groups, T0);
        simple_commit(&groups, "tool", &[("logs", 0, 1)], T0);
        let ids = vec!["g".to_owned(), "tool".to_owned(), "nobody".to_owned()];
        let errors = groups.delete_groups(&ids).wait().await;
        assert_eq!(errors, vec![Some(E::NonEmptyGroup), None, Some(E::GroupIdNotFound)]);
        assert_eq!(offset_of(&groups, "tool", "logs", 0), None);
        assert_eq!(groups.list_groups().len(), 1);
        drop(groups);
        let groups = GroupCoordinator::open_with(&config(dir.path()), partition_exists(), T0).unwrap();
        assert_eq!(offset_of(&groups, "tool", "logs", 0), None, "the deletion is durable");
    }

    #[tokio::test]
    async fn offset_delete_respects_subscriptions() {
        let (_dir, groups) = coordinator_with_delay(0);
        let a = stable_consumer(&groups, T0);
        groups.commit_offsets(commit_request("g", 1, &a, &[("logs", 0, 1), ("other", 0, 1)]), T0);
        let tps = [TopicPartition::new("logs", 0), TopicPartition::new("other", 0), TopicPartition::new("nope", 0)];
        let errors = groups.delete_offsets("g", &tps).unwrap().wait().await;
        assert_eq!(errors, vec![Some(E::GroupSubscribedToTopic), None, Some(E::UnknownTopicOrPartition)]);
        assert_eq!(offset_of(&groups, "g", "logs", 0), Some(1));
        assert_eq!(offset_of(&groups, "g", "other", 0), None);
        assert_eq!(groups.delete_offsets("nobody", &tps).err(), Some(E::GroupIdNotFound));

        // Once empty, anything goes.
        groups.leave("g", &[LeaveMember { member_id: a, group_instance_id: None }], T0).unwrap();
        let errors = groups.delete_offsets("g", &tps[..1]).unwrap().wait().await;
        assert_eq!(errors, vec![None]);
        assert_eq!(offset_of(&groups, "g", "logs", 0), None);
    }

    #[test]
    fn offset_delete_refuses_active_groups_of_other_protocols() {
        let (_dir, groups) = coordinator_with_delay(0);
        let mut join = join_request("", None, range());
        join.protocol_type = "connect".into();
        join.require_known_member_id = false;
        resolved(groups.join(join, T0));
        assert_eq!(groups.delete_offsets("g", &[TopicPartition::new("logs", 0)]).err(), Some(E::NonEmptyGroup));
    }

    #[test]
    fn describe_shows_kafkas_view() {
        let (_dir, groups) = coordinator_with_delay(0);
        let (a, reply) = new_member(&groups, range(), T0);
        resolved(reply);
        let d = groups.describe("g");
        assert_eq!(d.state, GroupStateName::CompletingRebalance);
        assert_eq!(d.protocol, "", "no protocol or assignment until Stable");
        assert!(d.members[0].metadata.is_empty());
        resolved(groups.sync(sync_request(&a, 1, &[(&a, "assigned")]), T0));
        let d = groups.describe("g");
        assert_eq!(d.state.as_str(), "Stable");
        assert_eq!((d.protocol_type.as_str(), d.protocol.as_str()), ("consumer", "range"));
        let m = &d.members[0];
        assert_eq!((m.member_id.as_str(), m.client_id.as_str(), m.client_host.as_str()), (a.as_str(), "client", "/10.0.0.1"));
        assert_eq!(m.assignment.as_ref(), b"assigned");
        assert_eq!(m.metadata, range()[0].metadata);
        assert_eq!(groups.describe("nobody").state, GroupStateName::Dead);
    }

    #[tokio::test]
    async fn run_timers_stops_on_shutdown() {
        let (_dir, groups) = coordinator();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(Arc::clone(&groups).run_timers(shutdown.clone()));
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), task).await.expect("stops").expect("no panic");
    }
}
