//! Counters of a running indexer, shared by the pipeline (writers) and the status endpoint (readers).

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

use crate::tracker::TopicPartition;

/// Per index: documents accepted (indexed, or already there), item retries, and dead letters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IndexCounts {
    pub indexed: u64,
    pub retried: u64,
    pub dead_lettered: u64,
}

/// An output host (an Elasticsearch URL) and whether the last request to it worked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostHealth {
    pub url: String,
    pub healthy: bool,
    pub last_error: Option<String>,
}

/// A snapshot of [`Stats`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct StatsSnapshot {
    pub records_consumed: u64,
    pub records_dropped: u64,
    pub bulk_requests: u64,
    pub bulk_failures: u64,
    pub indices: BTreeMap<String, IndexCounts>,
    pub hosts: Vec<HostHealth>,
    /// Last committed offset per partition, as `topic/partition`.
    pub committed: BTreeMap<String, i64>,
}

#[derive(Debug, Default)]
pub struct Stats {
    inner: Mutex<StatsSnapshot>,
}

impl Stats {
    pub fn snapshot(&self) -> StatsSnapshot {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StatsSnapshot> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn consumed(&self, records: u64, dropped: u64) {
        let mut s = self.lock();
        s.records_consumed += records;
        s.records_dropped += dropped;
    }

    pub(crate) fn bulk_request(&self, failed: bool) {
        let mut s = self.lock();
        s.bulk_requests += 1;
        s.bulk_failures += u64::from(failed);
    }

    /// Adds to the counters of each index, e.g. `[("nginx_access-2026.11.21", IndexCounts { indexed: 5, .. })]`.
    pub(crate) fn add<'a>(&self, counts: impl IntoIterator<Item = (&'a str, IndexCounts)>) {
        let mut s = self.lock();
        for (index, c) in counts {
            let entry = s.indices.entry(index.to_string()).or_default();
            entry.indexed += c.indexed;
            entry.retried += c.retried;
            entry.dead_lettered += c.dead_lettered;
        }
    }

    pub(crate) fn host(&self, url: &str, error: Option<String>) {
        let mut s = self.lock();
        let health = HostHealth { url: url.to_string(), healthy: error.is_none(), last_error: error };
        match s.hosts.iter_mut().find(|h| h.url == url) {
            Some(h) => *h = health,
            None => s.hosts.push(health),
        }
    }

    pub(crate) fn committed(&self, partition: &TopicPartition, offset: i64) {
        self.lock().committed.insert(format!("{}/{}", partition.topic, partition.partition), offset);
    }
}
