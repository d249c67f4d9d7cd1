//! Time- and size-based retention: deleting whole old segments and moving the log start offset.
//!
//! As in Kafka, retention works on whole segments from the oldest end: a segment goes when its newest
//! record is older than `retention.ms`, or while the partition without it would still be at least
//! `retention.bytes`, or when all its records are below a log start that DeleteRecords moved. No segment
//! holding records at or past the high watermark is deleted (they may still be lost in a crash and must
//! not be "consumed" by deletion), nor an empty active segment. A non-empty active segment is deleted by
//! time or size like the others (Kafka's `UnifiedLog.deleteSegments`): a new empty one is rolled first,
//! so an idle topic is emptied and its log start moves to the log end.
//! The new log start offset is persisted by the caller, because a log start offset need not be a
//! segment boundary and so cannot be recovered from the files alone.
//!
//! A [`Floor`] (the broker's `[broker.retention] protect_groups`) holds back time and size retention
//! for segments holding records at or above an offset some consumer group still has to read, until the
//! partition would exceed the floor's byte cap; DeleteRecords is not held back.
//!
//! References: https://kafka.apache.org/documentation/#topicconfigs_retention.ms

use std::io;
use std::sync::atomic::Ordering;

use super::partition_log::PartitionLog;
use super::producer_state::PRODUCER_EXPIRATION_MS;
use super::util::lock;

/// Records retention must not delete yet: those at or above `offset`, while the partition holds at most
/// `max_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Floor {
    pub offset: i64,
    pub max_bytes: u64,
}

impl PartitionLog {
    /// Deletes the segments retention no longer keeps; returns how many.
    ///
    /// The active segment counts too once it is not empty and wholly below the high watermark. When every
    /// segment is to go, a new empty active segment is rolled first (and synced before anything is
    /// unlinked), so the log start moves to the log end and appends continue from there.
    pub(crate) fn enforce_retention(&self, now_ms: i64, floor: Option<Floor>) -> io::Result<usize> {
        let c = self.config();
        let high_watermark = self.high_watermark();
        let (doomed, rolled) = {
            let mut st = lock(&self.state);
            let expired = st.producers.expire(now_ms);
            if expired > 0 {
                tracing::debug!(dir = %self.dir.display(), expired, max_idle_ms = PRODUCER_EXPIRATION_MS, "forgot idle producers");
            }
            let mut total: u64 = st.segments.values().map(|s| s.size()).sum();
            let segments = st.segments.len();
            let mut count = 0;
            for seg in st.segments.values() {
                let active = count + 1 == segments;
                if (active && seg.is_empty()) || seg.next_offset() > high_watermark {
                    break;
                }
                let too_old = c.retention_ms >= 0 && now_ms - seg.newest_timestamp()? > c.retention_ms;
                let too_big = c.retention_bytes >= 0 && total - seg.size() >= c.retention_bytes as u64;
                // Wholly below a log start that DeleteRecords moved (never the active segment).
                let deleted = !active && seg.next_offset() <= self.log_start_offset();
                if !(too_old || too_big || deleted) {
                    break;
                }
                let protected = floor.is_some_and(|f| seg.next_offset() > f.offset && total <= f.max_bytes);
                if protected && !deleted {
                    break;
                }
                total -= seg.size();
                count += 1;
            }
            // A partition always keeps one segment: to delete the active one, roll past it first.
            let mut rolled = false;
            if count > 0 && count == segments {
                if st.closed || st.failed.is_some() {
                    count -= 1;
                } else if let Err(e) = self.roll(&mut st, now_ms) {
                    // Logged and handled by `roll` (fail-stop, or retried on a full disk); the older
                    // segments still go.
                    tracing::debug!(dir = %self.dir.display(), error = %e, "keeping the active segment: roll failed");
                    count -= 1;
                } else {
                    rolled = true;
                }
            }
            let doomed: Vec<_> = (0..count).filter_map(|_| st.segments.pop_first().map(|(_, seg)| seg)).collect();
            if let Some(first) = st.segments.values().next() {
                self.log_start_offset.fetch_max(first.base_offset, Ordering::AcqRel);
            }
            (doomed, rolled)
        };
        if rolled {
            // The new segment, its producer-state snapshot and the directory are durable before the old
            // segment is unlinked, as the flusher makes them for any roll.
            self.flush()?;
        }
        // Unlinking happens outside the lock; readers that already hold a segment's file keep reading it.
        for seg in &doomed {
            tracing::info!(log = %seg.log_path().display(), "deleting segment past retention");
            seg.delete()?;
        }
        Ok(doomed.len())
    }
}

#[cfg(test)]
mod tests {
    use super::Floor;
    use crate::storage::batch::TestBatch;
    use crate::storage::testkit::{config_with, manager, partition, sync_append};
    use crate::storage::ReadError;

    #[test]
    fn time_retention_deletes_old_segments_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_with(dir.path(), |c| c.segment_bytes = 300);
        let mgr = manager(config.clone());
        let log = partition(&mgr, "t", &[("retention.ms", "1000")]);
        for i in 0..20 {
            // Old records first, then recent ones.
            let ts = if i < 12 { 1_000 } else { 100_000 };
            sync_append(&log, &TestBatch::new(1).ts(ts).build());
        }
        let segments = log.segment_count();
        let deleted = mgr.enforce_retention(100_500).unwrap();
        assert!(deleted > 0);
        assert_eq!(log.segment_count(), segments - deleted);
        let start = log.log_start_offset();
        assert!(start > 0 && start <= 12, "start {start}");
        assert!(matches!(log.read(start - 1, 100, true), Err(ReadError::OffsetOutOfRange { .. })));
        assert!(!log.read(start, 100, true).unwrap().records.is_empty());
        assert_eq!(mgr.enforce_retention(100_500).unwrap(), 0, "idempotent");
        drop((log, mgr));

        let mgr = manager(config);
        let log = mgr.partition("t", 0).unwrap();
        assert_eq!(log.log_start_offset(), start);
        assert_eq!(log.log_end_offset(), 20);
    }

    #[test]
    fn size_retention_keeps_at_least_retention_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = manager(config_with(dir.path(), |c| c.segment_bytes = 300));
        let log = partition(&mgr, "t", &[("retention.bytes", "500")]);
        for _ in 0..30 {
            sync_append(&log, &TestBatch::new(1).build());
        }
        let deleted = mgr.enforce_retention(0).unwrap();
        assert!(deleted > 0);
        let size = log.size_bytes();
        assert!((500..800).contains(&size), "size {size}");
        assert!(log.log_start_offset() > 0);
    }

    #[test]
    fn never_deletes_data_past_the_high_watermark_or_an_empty_active_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = manager(config_with(dir.path(), |c| {
            c.segment_bytes = 200;
            c.flush_interval_ms = 3_600_000;
        }));
        let log = partition(&mgr, "t", &[("retention.ms", "0")]);
        for _ in 0..10 {
            log.append(&TestBatch::new(1).ts(1).build(), 0).unwrap();
        }
        assert_eq!(mgr.enforce_retention(1_000_000).unwrap(), 0, "nothing is durable yet");
        log.flush().unwrap();
        let n = log.segment_count();
        assert_eq!(mgr.enforce_retention(1_000_000).unwrap(), n, "the active segment too, once durable");
        assert_eq!(log.segment_count(), 1);
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (10, 10));
        assert_eq!(mgr.enforce_retention(1_000_000).unwrap(), 0, "the new active segment is empty");
        assert_eq!(log.segment_count(), 1);
    }

    #[test]
    fn time_retention_empties_an_idle_partition_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_with(dir.path(), |_| {});
        let mgr = manager(config.clone());
        let log = partition(&mgr, "t", &[("retention.ms", "1000")]);
        for _ in 0..3 {
            sync_append(&log, &TestBatch::new(1).ts(1_000).build());
        }
        assert_eq!(log.segment_count(), 1);
        assert_eq!(mgr.enforce_retention(100_000).unwrap(), 1);
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (3, 3));
        assert!(matches!(log.read(0, 100, true), Err(ReadError::OffsetOutOfRange { .. })));
        // The roll was synced like any other: nothing for recovery to recheck.
        assert_eq!(log.recovery_point(), 3);
        assert_eq!(sync_append(&log, &TestBatch::new(1).ts(100_000).build()).base_offset, 3);
        assert!(!log.read(3, 100, true).unwrap().records.is_empty());
        drop((log, mgr));

        let mgr = manager(config);
        let log = mgr.partition("t", 0).unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (3, 4));
    }

    #[test]
    fn a_floor_keeps_unread_segments_up_to_its_byte_cap() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = manager(config_with(dir.path(), |c| c.segment_bytes = 300));
        let log = partition(&mgr, "t", &[("retention.ms", "1000")]);
        for _ in 0..20 {
            sync_append(&log, &TestBatch::new(1).ts(1_000).build());
        }
        let floor = |offset, max_bytes| move |_: &str, _: i32| Some(Floor { offset, max_bytes });
        let segments = log.segment_count();
        assert_eq!(mgr.enforce_retention_with(100_000, &floor(0, u64::MAX)).unwrap().segments, 0, "all unread");
        let outcome = mgr.enforce_retention_with(100_000, &floor(8, u64::MAX)).unwrap();
        assert!(outcome.segments > 0);
        let start = log.log_start_offset();
        assert!(start > 0 && start <= 8, "only segments wholly below the floor go, start {start}");
        assert_eq!(outcome.moved, vec![("t".to_string(), 0, 0, start)]);
        // Over the cap, retention deletes what the group has not read.
        let outcome = mgr.enforce_retention_with(100_000, &floor(8, 600)).unwrap();
        assert!(outcome.segments > 0 && log.log_start_offset() > 8, "start {}", log.log_start_offset());
        assert!(log.segment_count() < segments);
    }
}
