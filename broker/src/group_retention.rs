//! Retention that knows about consumer groups: `[broker.retention]`.
//!
//! Kafka's retention ignores consumers: when a consumer is down for longer than `retention.ms` (the
//! indexer while Elasticsearch is down), segments it has not read are deleted and the loss is silent. Here:
//! - `protect_groups` holds back time and size retention for segments holding records at or above the
//!   slowest listed group's committed offset, until the partition reaches `protect_max_bytes`. A listed
//!   group without a committed offset on a partition protects nothing there. Default: no group (Kafka).
//! - Whatever retention deletes that a group had not consumed yet (its committed offset below the new log
//!   start) is counted per group ("records lost"), logged, and shown by `logpipe status` and `/metrics`.
//! - A group whose committed offset is behind the log end and within `lag_at_risk_records` of the log
//!   start is "at risk": the next retention pass may delete what it has not read. Logged once when it
//!   becomes so.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::broker::Broker;
use crate::storage::Floor;

/// The `[broker.retention]` table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroupRetention {
    /// Groups whose unread records retention keeps, e.g. `["logpipe-indexer"]`. Default none.
    pub protect_groups: Vec<String>,
    /// Most bytes a partition keeps for `protect_groups`; beyond it retention deletes unread segments
    /// anyway (and counts them as lost). Default 10737418240 (10 GiB).
    pub protect_max_bytes: u64,
    /// A committed offset this many records or fewer above the log start offset, with records left to
    /// read, is reported as lag at risk. Default 100000.
    pub lag_at_risk_records: i64,
}

impl Default for GroupRetention {
    fn default() -> Self {
        Self { protect_groups: Vec::new(), protect_max_bytes: 10 << 30, lag_at_risk_records: 100_000 }
    }
}

/// What retention did to groups since the broker started.
#[derive(Debug, Default)]
pub struct RetentionWatch {
    state: Mutex<WatchState>,
}

#[derive(Debug, Default)]
struct WatchState {
    /// Records deleted before the group consumed them, per group.
    lost: BTreeMap<String, u64>,
    /// Group partitions currently at risk (logged once when they become so).
    at_risk: BTreeSet<(String, String, i32)>,
}

impl RetentionWatch {
    /// Records of `group` that retention deleted before it consumed them, since the broker started.
    pub fn records_lost(&self, group: &str) -> u64 {
        self.lock().lost.get(group).copied().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WatchState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whether a committed offset is close enough to the log start for the next retention pass to delete
/// records it has not read.
pub fn lag_at_risk(committed: i64, log_start: i64, log_end: i64, margin: i64) -> bool {
    committed < log_end && committed.saturating_sub(log_start) <= margin
}

impl Broker {
    /// One retention pass: deletes what retention no longer keeps (holding back what `protect_groups`
    /// have not read), then counts and logs what groups lost and which are at risk. Returns the number of
    /// segments deleted.
    pub fn enforce_retention(&self, now_ms: i64) -> std::io::Result<usize> {
        let settings = &self.config.retention;
        let mut floors: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for group in &settings.protect_groups {
            for (tp, committed) in self.groups.committed_offsets(group) {
                let floor = floors.entry((tp.topic, tp.partition)).or_insert(committed.offset);
                *floor = (*floor).min(committed.offset);
            }
        }
        let outcome = self.logs.enforce_retention_with(now_ms, &|topic, partition| {
            floors
                .get(&(topic.to_string(), partition))
                .map(|&offset| Floor { offset, max_bytes: settings.protect_max_bytes })
        })?;
        let groups: Vec<String> = self.groups.list_groups().into_iter().map(|g| g.group_id).collect();
        let committed: Vec<(String, Vec<_>)> =
            groups.into_iter().map(|g| (g.clone(), self.groups.committed_offsets(&g))).collect();
        let mut watch = self.retention_watch.lock();
        for (topic, partition, old_start, new_start) in &outcome.moved {
            for (group, offsets) in &committed {
                let Some((_, c)) = offsets.iter().find(|(tp, _)| &tp.topic == topic && tp.partition == *partition)
                else {
                    continue;
                };
                let lost = new_start - c.offset.max(*old_start);
                if lost > 0 {
                    *watch.lost.entry(group.clone()).or_default() += lost as u64;
                    tracing::warn!(
                        group = %group, topic = %topic, partition, committed = c.offset, log_start = new_start, lost,
                        "retention deleted records the group had not consumed yet"
                    );
                }
            }
        }
        for (group, offsets) in &committed {
            for (tp, c) in offsets {
                let Some(log) = self.logs.partition(&tp.topic, tp.partition) else { continue };
                let key = (group.clone(), tp.topic.clone(), tp.partition);
                let (start, end) = (log.log_start_offset(), log.high_watermark());
                if lag_at_risk(c.offset, start, end, settings.lag_at_risk_records) {
                    if watch.at_risk.insert(key) {
                        tracing::warn!(
                            group = %group, topic = %tp.topic, partition = tp.partition, committed = c.offset,
                            log_start = start, margin = settings.lag_at_risk_records,
                            "lag at risk: the group's committed offset is near the log start, and retention may \
                             delete records it has not consumed (raise retention, or list the group in \
                             [broker.retention] protect_groups)"
                        );
                    }
                } else if watch.at_risk.remove(&key) {
                    tracing::info!(group = %group, topic = %tp.topic, partition = tp.partition, "lag no longer at risk");
                }
            }
        }
        Ok(outcome.segments)
    }
}

#[cfg(test)]
mod tests {
    use super::lag_at_risk;

    #[test]
    fn at_risk_needs_unread_records_near_the_log_start() {
        assert!(lag_at_risk(100, 100, 500, 10));
        assert!(lag_at_risk(110, 100, 500, 10));
        assert!(!lag_at_risk(111, 100, 500, 10));
        assert!(!lag_at_risk(500, 500, 500, 10), "nothing left to read");
        assert!(lag_at_risk(50, 100, 500, 10), "already below the log start");
    }
}
