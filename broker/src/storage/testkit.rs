//! Helpers shared by the storage tests: a small-scale config, a manager with one topic, synced appends.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::partition_log::AppendOutcome;
use super::{LogConfig, LogManager, PartitionLog};

/// Test settings: no retention, hour-long flush interval (tests flush explicitly or wait), then `f`.
pub(crate) fn config_with(dir: &Path, f: impl FnOnce(&mut LogConfig)) -> LogConfig {
    let mut c = LogConfig {
        dir: dir.to_owned(),
        segment_bytes: 1 << 20,
        roll_ms: 7 * 86_400_000,
        retention_ms: -1,
        retention_bytes: -1,
        index_interval_bytes: 4096,
        message_max_bytes: 1 << 20,
        flush_interval_ms: 3_600_000,
    };
    f(&mut c);
    c
}

pub(crate) fn manager(config: LogConfig) -> Arc<LogManager> {
    LogManager::open(config).expect("open the log manager")
}

/// Creates `topic` with one partition and the given configs, and returns partition 0.
pub(crate) fn partition(mgr: &LogManager, topic: &str, configs: &[(&str, &str)]) -> Arc<PartitionLog> {
    let configs: BTreeMap<String, String> = configs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    mgr.create_topic(topic, 1, configs).expect("create topic");
    mgr.partition(topic, 0).expect("partition 0")
}

/// Appends and makes the data durable (and so visible to reads).
pub(crate) fn sync_append(log: &PartitionLog, records: &[u8]) -> AppendOutcome {
    let out = log.append(records, 0).expect("append");
    log.flush().expect("flush");
    out
}
