//! Retention that knows about consumer groups: `[broker.retention]`.
//!
//! Kafka's retention ignores consumers: when a consumer is down for longer than `retention.ms` (the
//! indexer while Elasticsearch is down), segments it has not read are deleted and the loss is silent. Here:
//! - `protect_groups` holds back time and size retention for segments holding records at or above the
//!   slowest listed group's committed offset, until the partition reaches `protect_max_bytes`. A listed
//!   group without a committed offset on a partition protects nothing there. Default: no group (Kafka).
//!   The committed offsets of listed groups never expire (`offsets_retention_minutes` does not apply to
//!   them, see `GroupCoordinator::expire_offsets`): otherwise a group stopped for longer would lose its
//!   floor, and retention would delete what it had not read without counting it as lost.
//! - Whatever retention deletes that a group had not consumed yet (its committed offset below the new log
//!   start) is counted per group ("records lost"), logged, and shown by `logpipe status` and `/metrics`.
//!   The count is a running total kept in `records-lost.json` under `log_dirs` (written durably, after
//!   the pass that deleted the records), so it survives restarts as a Prometheus `_total` should.
//! - A group whose committed offset is behind the log end and within `lag_at_risk_records` of the log
//!   start is "at risk": the next retention pass may delete what it has not read. Logged once when it
//!   becomes so.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::broker::Broker;
use crate::error::{Error, Result};
use crate::storage::Floor;

/// The file under `log_dirs` that keeps the records-lost totals.
pub const LOST_FILE: &str = "records-lost.json";

/// The `[broker.retention]` table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroupRetention {
    /// Groups whose unread records retention keeps, e.g. `["logpipe-indexer"]`. Their committed offsets
    /// never expire (only deleting the group, its offsets or the topic removes them). Default none.
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

/// What retention did to groups: the records-lost totals (persisted) and who is at risk now.
#[derive(Debug)]
pub struct RetentionWatch {
    /// `records-lost.json`.
    path: PathBuf,
    state: Mutex<WatchState>,
}

#[derive(Debug, Default)]
struct WatchState {
    /// Records deleted before the group consumed them, per group, since the data directory was made.
    lost: BTreeMap<String, u64>,
    /// `lost` has grown since it was last written (a write failed, e.g. on a full disk): write it on
    /// the next pass.
    unsaved: bool,
    /// Group partitions currently at risk (logged once when they become so).
    at_risk: BTreeSet<(String, String, i32)>,
}

/// `records-lost.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LostFile {
    version: u32,
    /// Group id → records retention deleted before the group consumed them.
    records_lost: BTreeMap<String, u64>,
}

const LOST_FILE_VERSION: u32 = 1;

impl RetentionWatch {
    /// Loads the totals from `records-lost.json` under `log_dirs` (none yet: all zero).
    pub fn open(log_dirs: &Path) -> Result<Self> {
        let path = log_dirs.join(LOST_FILE);
        let lost = match logpipe_durable::read_optional(&path)
            .map_err(|source| Error::Storage { path: path.clone(), source })?
        {
            None => BTreeMap::new(),
            Some(bytes) => match serde_json::from_slice::<LostFile>(&bytes) {
                Ok(file) if file.version == LOST_FILE_VERSION => file.records_lost,
                Ok(file) => {
                    return Err(Error::Config(format!(
                        "{}: version {} is not one this broker reads ({LOST_FILE_VERSION}); was it written by a \
                         newer logpipe?",
                        path.display(),
                        file.version
                    )))
                }
                Err(e) => {
                    return Err(Error::Config(format!(
                        "{}: not a logpipe records-lost file ({e}); fix it, or remove it to count lost records \
                         from 0 again",
                        path.display()
                    )))
                }
            },
        };
        Ok(Self { path, state: Mutex::new(WatchState { lost, ..WatchState::default() }) })
    }

    /// Records of `group` that retention deleted before it consumed them, in total (across restarts).
    pub fn records_lost(&self, group: &str) -> u64 {
        self.lock().lost.get(group).copied().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WatchState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes the totals if they changed since the last successful write. A failure is logged and the
    /// write is tried again on the next retention pass; the totals in memory stay right meanwhile.
    fn save_if_changed(&self, state: &mut WatchState) {
        if !state.unsaved {
            return;
        }
        let file = LostFile { version: LOST_FILE_VERSION, records_lost: state.lost.clone() };
        let bytes = serde_json::to_vec_pretty(&file).expect("a map of strings to numbers serializes");
        match logpipe_durable::write_atomic(&self.path, &bytes) {
            Ok(()) => state.unsaved = false,
            Err(e) => tracing::error!(
                file = %self.path.display(), error = %e,
                "cannot save the records-lost totals; retrying on the next retention pass (they are kept in memory \
                 meanwhile, and a restart before then forgets this pass's count)"
            ),
        }
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
                    watch.unsaved = true;
                    tracing::warn!(
                        group = %group, topic = %topic, partition, committed = c.offset, log_start = new_start, lost,
                        "retention deleted records the group had not consumed yet"
                    );
                }
            }
        }
        self.retention_watch.save_if_changed(&mut watch);
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
    use super::*;

    #[test]
    fn records_lost_totals_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let watch = RetentionWatch::open(dir.path()).unwrap();
        assert_eq!(watch.records_lost("g"), 0);
        {
            let mut state = watch.lock();
            state.lost.insert("g".into(), 40);
            state.unsaved = true;
            watch.save_if_changed(&mut state);
            assert!(!state.unsaved);
        }
        let again = RetentionWatch::open(dir.path()).unwrap();
        assert_eq!((again.records_lost("g"), again.records_lost("other")), (40, 0));
    }

    #[test]
    fn a_failed_save_is_retried() {
        let dir = tempfile::tempdir().unwrap();
        let watch = RetentionWatch::open(&dir.path().join("gone")).unwrap();
        let mut state = watch.lock();
        state.lost.insert("g".into(), 1);
        state.unsaved = true;
        watch.save_if_changed(&mut state);
        assert!(state.unsaved, "the directory is missing: still to be saved");
        std::fs::create_dir(dir.path().join("gone")).unwrap();
        watch.save_if_changed(&mut state);
        assert!(!state.unsaved);
        drop(state);
        assert_eq!(RetentionWatch::open(&dir.path().join("gone")).unwrap().records_lost("g"), 1);
    }

    #[test]
    fn a_damaged_file_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOST_FILE), b"{not json").unwrap();
        let message = RetentionWatch::open(dir.path()).unwrap_err().to_string();
        assert!(message.contains(LOST_FILE) && message.contains("remove it"), "{message}");
        std::fs::write(dir.path().join(LOST_FILE), br#"{"version":9,"records_lost":{}}"#).unwrap();
        let message = RetentionWatch::open(dir.path()).unwrap_err().to_string();
        assert!(message.contains("version 9"), "{message}");
    }

    #[test]
    fn at_risk_needs_unread_records_near_the_log_start() {
        assert!(lag_at_risk(100, 100, 500, 10));
        assert!(lag_at_risk(110, 100, 500, 10));
        assert!(!lag_at_risk(111, 100, 500, 10));
        assert!(!lag_at_risk(500, 500, 500, 10), "nothing left to read");
        assert!(lag_at_risk(50, 100, 500, 10), "already below the log start");
    }
}
