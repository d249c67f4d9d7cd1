//! The [`StatusReport`]: a serializable snapshot of every part running in this process. Each part is
//! optional; a central host running broker and indexer reports no files, an agent host no topics.

use std::sync::{Arc, PoisonError};

use serde::{Deserialize, Serialize};

use logpipe_agent::snapshot::SharedSnapshot;
use logpipe_agent::stalls::StallKind;
use logpipe_broker::Broker;
use logpipe_indexer::Stats;

use crate::about::About;

/// The parts a report is collected from.
#[derive(Clone, Default)]
pub struct Sources {
    pub broker: Option<Arc<Broker>>,
    pub agent: Option<SharedSnapshot>,
    pub indexer: Option<Arc<Stats>>,
    /// What runs and where, as the process was started.
    pub about: About,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// Milliseconds since the Unix epoch when collected.
    pub time_ms: i64,
    #[serde(default)]
    pub about: About,
    /// What keeps the agent's events from flowing now (none when all flows).
    #[serde(default)]
    pub stalls: Vec<StallReport>,
    pub files: Vec<FileReport>,
    pub topics: Vec<TopicReport>,
    pub groups: Vec<GroupReport>,
    pub indexer: Option<IndexerReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileReport {
    pub path: String,
    pub open: bool,
    pub size: u64,
    pub acked_offset: u64,
    /// File size minus acknowledged offset.
    pub bytes_behind: u64,
    pub lines_read: u64,
    pub events_acked: u64,
    /// Rotations seen at this path since the agent started (renamed away or truncated).
    #[serde(default)]
    pub rotations: u64,
}

/// An agent stall: a glob that matches no file, or a topic refusing deliveries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StallReport {
    /// `glob` or `topic` (the agent), `disk` (the broker's `log_dirs` is full).
    pub kind: String,
    /// The glob, the topic, or the directory.
    pub key: String,
    /// What is wrong and what to do.
    pub reason: String,
    /// When it started, milliseconds since the Unix epoch.
    pub since_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicReport {
    pub name: String,
    pub partitions: Vec<PartitionReport>,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionReport {
    pub partition: i32,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupReport {
    pub group_id: String,
    pub state: String,
    pub members: usize,
    /// Sum over partitions of log end offset minus committed offset.
    pub lag: i64,
    /// Records retention deleted before the group consumed them, in total across broker restarts.
    #[serde(default)]
    pub records_lost: u64,
    pub partitions: Vec<GroupPartitionReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupPartitionReport {
    pub topic: String,
    pub partition: i32,
    pub committed: i64,
    pub log_end_offset: i64,
    pub lag: i64,
    #[serde(default)]
    pub log_start_offset: i64,
    /// Retention may delete records of this partition before the group reads them.
    #[serde(default)]
    pub at_risk: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexerReport {
    pub records_consumed: u64,
    pub records_dropped: u64,
    pub bulk_requests: u64,
    pub bulk_failures: u64,
    pub indices: Vec<IndexReport>,
    pub hosts: Vec<HostReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexReport {
    pub index: String,
    pub indexed: u64,
    pub retried: u64,
    pub dead_lettered: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostReport {
    pub url: String,
    pub healthy: bool,
    pub last_error: Option<String>,
}

impl Sources {
    pub fn collect(&self) -> StatusReport {
        let mut report =
            StatusReport { time_ms: logpipe_broker::now_ms(), about: self.about.clone(), ..StatusReport::default() };
        if let Some(snapshot) = &self.agent {
            let snapshot = snapshot.lock().unwrap_or_else(PoisonError::into_inner).clone();
            report.stalls = snapshot
                .stalls
                .iter()
                .map(|s| StallReport {
                    kind: match s.kind {
                        StallKind::Glob => "glob",
                        StallKind::Topic => "topic",
                    }
                    .to_owned(),
                    key: s.key.clone(),
                    reason: s.reason.clone(),
                    since_ms: s.since_ms,
                })
                .collect();
            report.files = snapshot
                .files
                .iter()
                .map(|f| FileReport {
                    path: f.path.display().to_string(),
                    open: f.open,
                    size: f.size,
                    acked_offset: f.acked_offset,
                    bytes_behind: f.size.saturating_sub(f.acked_offset),
                    lines_read: f.stats.lines_read,
                    events_acked: f.stats.events_acked,
                    rotations: f.rotations,
                })
                .collect();
        }
        if let Some(broker) = &self.broker {
            collect_broker(broker, &mut report);
        }
        if let Some(stats) = &self.indexer {
            let s = stats.snapshot();
            report.indexer = Some(IndexerReport {
                records_consumed: s.records_consumed,
                records_dropped: s.records_dropped,
                bulk_requests: s.bulk_requests,
                bulk_failures: s.bulk_failures,
                indices: s
                    .indices
                    .into_iter()
                    .map(|(index, c)| IndexReport {
                        index,
                        indexed: c.indexed,
                        retried: c.retried,
                        dead_lettered: c.dead_lettered,
                    })
                    .collect(),
                hosts: s
                    .hosts
                    .into_iter()
                    .map(|h| HostReport { url: h.url, healthy: h.healthy, last_error: h.last_error })
                    .collect(),
            });
        }
        report
    }
}

fn collect_broker(broker: &Broker, report: &mut StatusReport) {
    let state = broker.report();
    if let Some(stall) = disk_full_stall(&state) {
        report.stalls.push(stall);
    }
    report.topics = state
        .topics
        .into_iter()
        .map(|topic| {
            let partitions: Vec<PartitionReport> = topic
                .partitions
                .into_iter()
                .map(|p| PartitionReport {
                    partition: p.partition,
                    log_start_offset: p.log_start_offset,
                    log_end_offset: p.log_end_offset,
                    size_bytes: p.size_bytes,
                })
                .collect();
            TopicReport { name: topic.name, size_bytes: partitions.iter().map(|p| p.size_bytes).sum(), partitions }
        })
        .collect();
    report.groups = state
        .groups
        .into_iter()
        .map(|group| {
            let partitions: Vec<GroupPartitionReport> = group
                .offsets
                .into_iter()
                .map(|o| GroupPartitionReport {
                    topic: o.topic,
                    partition: o.partition,
                    committed: o.committed,
                    log_end_offset: o.log_end_offset,
                    lag: o.lag,
                    log_start_offset: o.log_start_offset,
                    at_risk: o.at_risk,
                })
                .collect();
            GroupReport {
                group_id: group.group_id,
                state: group.state,
                members: group.members,
                lag: partitions.iter().map(|p| p.lag).sum(),
                records_lost: group.records_lost,
                partitions,
            }
        })
        .collect();
}

/// A full `log_dirs` as a stall: what is full, by how much, and which partitions refuse produce.
fn disk_full_stall(state: &logpipe_broker::BrokerReport) -> Option<StallReport> {
    let full: Vec<(String, logpipe_broker::DiskShortage)> = state
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().filter_map(|p| p.disk_full.map(|s| (format!("{}/{}", t.name, p.partition), s)))
        })
        .collect();
    let first = full.first()?.1;
    let available = full.iter().map(|(_, s)| s.available_bytes).min().unwrap_or(first.available_bytes);
    let needed = full.iter().map(|(_, s)| s.needed_bytes).max().unwrap_or(first.needed_bytes);
    let names: Vec<&str> = full.iter().map(|(name, _)| name.as_str()).collect();
    Some(StallReport {
        kind: "disk".to_owned(),
        key: state.log_dir.clone(),
        reason: format!(
            "broker log dir full: {} free, produce waits for {} ({} more); refused with KAFKA_STORAGE_ERROR \
             (clients retry) to {}; free space or delete a topic",
            crate::view::bytes(available),
            crate::view::bytes(needed),
            crate::view::bytes(needed.saturating_sub(available)),
            names.join(" ")
        ),
        since_ms: full.iter().map(|(_, s)| s.since_ms).min().unwrap_or(first.since_ms),
    })
}
