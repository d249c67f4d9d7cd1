//! Group commit: one thread per [`LogManager`](super::LogManager) that fsyncs partitions.
//!
//! Appends only write to the page cache. A producer with `acks=all` then awaits
//! [`PartitionLog::wait_durable`], which queues the partition here and wakes the thread. While the thread
//! is inside an fsync, further waiters queue up behind it and are all satisfied by the *next* fsync, so
//! N concurrent producers cost about two fsyncs, not N. Data nobody waits for (`acks=0|1`) is synced at
//! least every `flush_interval_ms`, when the thread also writes the recovery-point checkpoint.
//!
//! Ordering matters for durability: the files of a rolled segment (and the producer-state snapshot taken
//! at the roll), then the new active segment, then the partition directory (which records the new segment
//! and snapshot files) are synced before the durable offset — and with it the high watermark that
//! consumers see — moves past any offset of the new segment.
//!
//! An fsync error is final for that partition (fail-stop): waiters get the error and appends are refused.
//! Linux may drop the dirty pages after reporting the error once, so a later "successful" fsync would
//! prove nothing; restarting runs recovery from what is really on disk.

use std::io;
use std::mem;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::partition_log::{Failure, PartitionLog};
use super::util::{annotate, lock, sync_dir};

#[derive(Default)]
struct QueueState {
    urgent: Vec<Weak<PartitionLog>>,
    stop: bool,
}

/// Partitions that have a `wait_durable` caller, for the flusher thread to sync first.
#[derive(Default)]
pub(crate) struct FlushQueue {
    state: Mutex<QueueState>,
    wake: Condvar,
}

impl FlushQueue {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn request(&self, log: Weak<PartitionLog>) {
        lock(&self.state).urgent.push(log);
        self.wake.notify_one();
    }

    fn stop(&self) {
        lock(&self.state).stop = true;
        self.wake.notify_one();
    }
}

pub(crate) struct Flusher {
    queue: Arc<FlushQueue>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    /// Starts the thread. `periodic` runs every `interval` (flush everything dirty, checkpoint).
    pub fn spawn(
        queue: Arc<FlushQueue>,
        interval: Duration,
        mut periodic: impl FnMut() + Send + 'static,
    ) -> io::Result<Self> {
        let q = queue.clone();
        let interval = interval.max(Duration::from_millis(1));
        let thread = std::thread::Builder::new().name("logpipe-flusher".into()).spawn(move || {
            let mut next_tick = Instant::now() + interval;
            loop {
                let urgent = {
                    let mut st = lock(&q.state);
                    loop {
                        if st.stop {
                            return;
                        }
                        if !st.urgent.is_empty() {
                            break mem::take(&mut st.urgent);
                        }
                        let now = Instant::now();
                        if now >= next_tick {
                            break Vec::new();
                        }
                        st = q.wake.wait_timeout(st, next_tick - now).unwrap_or_else(PoisonError::into_inner).0;
                    }
                };
                for log in urgent.iter().filter_map(Weak::upgrade) {
                    // Cleared before the fsync starts, so a waiter arriving during it queues the next one.
                    log.flush_requested.store(false, Ordering::Release);
                    // Errors reach the waiters through the durability channel; nothing more to do here.
                    let _ = log.flush();
                }
                if Instant::now() >= next_tick {
                    periodic();
                    next_tick = Instant::now() + interval;
                }
            }
        })?;
        Ok(Self { queue, thread: Some(thread) })
    }

    /// Stops the thread after its current round and waits for it.
    pub fn stop(&mut self) {
        self.queue.stop();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the flusher thread panicked");
            }
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.stop();
    }
}

impl PartitionLog {
    /// Fsyncs everything appended so far and advances the durable offset (= high watermark).
    pub(crate) fn flush(&self) -> io::Result<()> {
        let _serial = lock(&self.flush_lock);
        let (target, files, dir_dirty, unsynced_from) = {
            let mut st = lock(&self.state);
            if let Some(f) = &st.failed {
                return Err(f.to_io());
            }
            let target = self.log_end_offset.load(Ordering::Acquire);
            let behind = target > self.durable_offset();
            if !behind && st.unsynced.is_empty() && !st.dir_dirty {
                return Ok(());
            }
            let mut files = mem::take(&mut st.unsynced);
            if behind {
                files.push(st.active().log());
            }
            (target, files, mem::take(&mut st.dir_dirty), st.unsynced_from.take())
        };
        let synced = files.iter().try_for_each(|f| f.sync_data().map_err(|e| annotate(e, &self.dir))).and_then(|()| {
            if dir_dirty {
                sync_dir(&self.dir)
            } else {
                Ok(())
            }
        });
        if let Err(e) = synced {
            let mut st = lock(&self.state);
            st.unsynced_from = st.unsynced_from.into_iter().chain(unsynced_from).min();
            drop(st);
            self.fail(&e);
            return Err(e);
        }
        self.advance_durable(target);
        Ok(())
    }

    pub(crate) fn durable_offset(&self) -> i64 {
        self.durable.borrow().offset
    }

    /// What the recovery checkpoint may record: the durable offset, but not past the base of a segment
    /// that a roll left with unsynced files. After a crash, recovery rechecks the segment holding the
    /// point and trusts the indexes of those before it; an index that lost its last entries to a power
    /// cut passes that check and would answer ListOffsets by timestamp late. Taken under the flush lock,
    /// so no flush is between taking those files and syncing them.
    pub(crate) fn recovery_point(&self) -> i64 {
        let _serial = lock(&self.flush_lock);
        let unsynced_from = lock(&self.state).unsynced_from;
        let durable = self.durable_offset();
        unsynced_from.map_or(durable, |base| durable.min(base))
    }

    fn advance_durable(&self, offset: i64) {
        let before = self.high_watermark.fetch_max(offset, Ordering::AcqRel);
        self.durable.send_modify(|d| d.offset = d.offset.max(offset));
        if offset > before {
            self.data_arrived.notify_waiters();
        }
    }

    /// Fail-stop: refuse appends and release every waiter with the error.
    pub(crate) fn fail(&self, e: &io::Error) {
        tracing::error!(dir = %self.dir.display(), error = %e, "fsync failed; the partition refuses further appends until restart");
        let failure = Failure::new(e);
        lock(&self.state).failed.get_or_insert_with(|| failure.clone());
        self.durable.send_modify(|d| {
            d.failure.get_or_insert(failure);
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::storage::batch::TestBatch;
    use crate::storage::testkit::{config_with, manager, partition};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_waiters_share_fsyncs_and_all_complete() {
        let dir = tempfile::tempdir().unwrap();
        // A long interval: only waiters can trigger flushes in this test.
        let mgr = manager(config_with(dir.path(), |c| c.flush_interval_ms = 3_600_000));
        let log = partition(&mgr, "t", &[]);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..64 {
            let log = log.clone();
            tasks.spawn(async move {
                let out = log.append(&TestBatch::new(2).build(), 0).unwrap();
                assert!(log.high_watermark() <= log.log_end_offset());
                log.wait_durable(out.last_offset).await.unwrap();
                assert!(log.high_watermark() > out.last_offset);
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
        assert_eq!(log.high_watermark(), 128);
    }

    #[tokio::test]
    async fn high_watermark_moves_only_after_flush_and_notifies_fetchers() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = manager(config_with(dir.path(), |c| c.flush_interval_ms = 3_600_000));
        let log = partition(&mgr, "t", &[]);
        let arrived = mgr.data_arrived();
        let notified = arrived.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let out = log.append(&TestBatch::new(1).build(), 0).unwrap();
        assert_eq!(log.high_watermark(), 0, "no flush, no visibility");
        log.wait_durable(out.last_offset).await.unwrap();
        assert_eq!(log.high_watermark(), 1);
        tokio::time::timeout(Duration::from_secs(10), notified).await.expect("data_arrived was notified");
        // Already durable: resolves without another flush; never-written offsets are an error.
        log.wait_durable(0).await.unwrap();
        assert!(log.wait_durable(5).await.is_err());
    }

    #[tokio::test]
    async fn the_recovery_point_stops_at_a_rolled_segment_until_its_files_are_synced() {
        let dir = tempfile::tempdir().unwrap();
        // Every append after the first in a segment rolls; only waiters trigger flushes.
        let mgr = manager(config_with(dir.path(), |c| {
            c.segment_bytes = 1;
            c.flush_interval_ms = 3_600_000;
        }));
        let log = partition(&mgr, "t", &[]);
        let first = log.append(&TestBatch::new(1).build(), 0).unwrap();
        log.wait_durable(first.last_offset).await.unwrap();
        assert_eq!(log.recovery_point(), 1, "the first segment is synced up to its end");

        // The roll seals the first segment: its log is synced, its indexes are not yet.
        let second = log.append(&TestBatch::new(1).build(), 0).unwrap();
        assert_eq!(log.durable_offset(), 1);
        assert_eq!(log.recovery_point(), 0, "recovery must recheck the rolled segment");

        log.wait_durable(second.last_offset).await.unwrap();
        assert_eq!(log.recovery_point(), 2, "synced: the point moves on");
    }

    #[test]
    fn the_interval_flushes_without_waiters() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = manager(config_with(dir.path(), |c| c.flush_interval_ms = 10));
        let log = partition(&mgr, "t", &[]);
        log.append(&TestBatch::new(1).build(), 0).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while log.high_watermark() < 1 {
            assert!(std::time::Instant::now() < deadline, "periodic flush never happened");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_failed_log_refuses_appends_and_waiters() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = manager(config_with(dir.path(), |c| c.flush_interval_ms = 3_600_000));
        let log = partition(&mgr, "t", &[]);
        let out = log.append(&TestBatch::new(1).build(), 0).unwrap();
        log.fail(&std::io::Error::other("simulated EIO"));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let err = rt.block_on(log.wait_durable(out.last_offset)).unwrap_err();
        assert!(err.to_string().contains("simulated EIO"));
        assert!(log.append(&TestBatch::new(1).build(), 0).is_err());
        assert!(log.flush().is_err());
    }
}
