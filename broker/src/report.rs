//! What the broker reports about itself to the admin endpoint: each topic's partitions (offsets and
//! bytes on disk) and each consumer group's state, members and committed offsets with their lag. The
//! admin endpoint reads the broker only through [`Broker::report`].

use crate::broker::Broker;
use crate::group_retention::lag_at_risk;
use crate::storage::DiskShortage;

/// A point-in-time view of the broker, sorted by topic and group name.
#[derive(Debug, Clone, Default)]
pub struct BrokerReport {
    /// The broker's `log_dirs`.
    pub log_dir: String,
    pub topics: Vec<TopicState>,
    pub groups: Vec<GroupState>,
}

#[derive(Debug, Clone)]
pub struct TopicState {
    pub name: String,
    pub partitions: Vec<PartitionState>,
}

#[derive(Debug, Clone)]
pub struct PartitionState {
    pub partition: i32,
    pub log_start_offset: i64,
    /// The offset after the last durable record (the high watermark).
    pub log_end_offset: i64,
    pub size_bytes: u64,
    /// Set while produce to this partition is refused because `log_dirs` is full.
    pub disk_full: Option<DiskShortage>,
}

#[derive(Debug, Clone)]
pub struct GroupState {
    pub group_id: String,
    /// Kafka's state name: `Stable`, `Empty`, `PreparingRebalance`, …
    pub state: String,
    pub members: usize,
    pub offsets: Vec<CommittedState>,
    /// Records retention deleted before this group consumed them, in total across broker restarts.
    pub records_lost: u64,
}

#[derive(Debug, Clone)]
pub struct CommittedState {
    pub topic: String,
    pub partition: i32,
    pub committed: i64,
    pub log_end_offset: i64,
    /// Records between the committed offset and the log end; never negative.
    pub lag: i64,
    pub log_start_offset: i64,
    /// The committed offset is within `[broker.retention] lag_at_risk_records` of the log start, with
    /// records left to read: the next retention pass may delete some before the group reads them.
    pub at_risk: bool,
}

impl Broker {
    /// Collects a [`BrokerReport`]. Cheap enough to call per admin request.
    pub fn report(&self) -> BrokerReport {
        let mut topics: Vec<TopicState> = self
            .logs
            .topics()
            .into_iter()
            .map(|topic| TopicState {
                partitions: (0..topic.partitions)
                    .filter_map(|p| self.logs.partition(&topic.name, p))
                    .map(|log| PartitionState {
                        partition: log.partition(),
                        log_start_offset: log.log_start_offset(),
                        log_end_offset: log.high_watermark(),
                        size_bytes: log.size_bytes(),
                        disk_full: log.disk_shortage(),
                    })
                    .collect(),
                name: topic.name,
            })
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));

        let mut groups: Vec<GroupState> = self
            .groups
            .list_groups()
            .into_iter()
            .map(|listing| {
                let description = self.groups.describe(&listing.group_id);
                let mut offsets: Vec<CommittedState> = self
                    .groups
                    .committed_offsets(&listing.group_id)
                    .into_iter()
                    .map(|(tp, committed)| {
                        let (start, end) = self
                            .logs
                            .partition(&tp.topic, tp.partition)
                            .map_or((committed.offset, committed.offset), |log| {
                                (log.log_start_offset(), log.high_watermark())
                            });
                        let margin = self.config.retention.lag_at_risk_records;
                        CommittedState {
                            log_start_offset: start,
                            at_risk: lag_at_risk(committed.offset, start, end, margin),
                            topic: tp.topic.clone(),
                            partition: tp.partition,
                            committed: committed.offset,
                            log_end_offset: end,
                            lag: (end - committed.offset).max(0),
                        }
                    })
                    .collect();
                offsets.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
                GroupState {
                    records_lost: self.retention_watch.records_lost(&listing.group_id),
                    group_id: listing.group_id,
                    state: description.state.as_str().to_string(),
                    members: description.members.len(),
                    offsets,
                }
            })
            .collect();
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        BrokerReport { log_dir: self.config.log_dirs.display().to_string(), topics, groups }
    }
}
