//! The set of partition logs under one `log_dirs`: topics, their metadata, the flusher, checkpoints and
//! clean shutdown.
//!
//! Files in `<log_dirs>`:
//!
//! - `topics.json`: topics and the cluster id (see `topic.rs`).
//! - `<topic>-<partition>/`: one directory of segments per partition.
//! - `recovery-point-offset-checkpoint.json`, `log-start-offset-checkpoint.json` (see `checkpoint.rs`).
//! - `.clean-shutdown`: written last by `close()`, deleted first by `open()`. Its presence means every
//!   byte was fsynced and every index is complete, so the next start skips all recovery scans.
//! - `.lock`: locked exclusively (`flock`) by `open()` for the manager's lifetime, so a second broker
//!   (or manager) on the same directory fails to start instead of corrupting the logs. The kernel drops
//!   the lock when the process dies, so a crash never leaves it behind.
//!
//! Other components may keep their own files in the same directory; this module only touches the names
//! above and `*-delete` directories of topics it deleted. Creating and deleting topics is in `topic.rs`.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

use super::checkpoint::{OffsetCheckpoint, LOG_START_FILE, RECOVERY_POINT_FILE};
use super::config::{default_topic_config, LogConfig, TopicConfig};
use super::flusher::{FlushQueue, Flusher};
use super::partition_log::{Failure, OpenParams, PartitionLog};
use super::retention::Floor;
use super::topic::{Metadata, TopicMeta};
use super::util::{annotate, create_dir_all, lock, read, sync_dir, write_atomic};
use crate::error::Error;

/// What a retention pass did.
#[derive(Debug, Default)]
pub struct RetentionOutcome {
    /// Segments deleted.
    pub segments: usize,
    /// Partitions whose log start moved: topic, partition, old and new log start offset.
    pub moved: Vec<(String, i32, i64, i64)>,
}

pub(crate) const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";
pub(crate) const LOCK_FILE: &str = ".lock";
pub(super) const DELETE_SUFFIX: &str = "-delete";
/// How often the flusher rewrites the recovery-point checkpoint. Bounds the work of a crash recovery.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);

pub(super) fn wall_clock_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn storage_error(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Storage { path: path.to_owned(), source }
}

/// Takes the directory's exclusive lock; the lock lasts as long as the returned file is open.
fn lock_dir(dir: &Path) -> crate::Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| annotate(e, &path))
        .map_err(storage_error(dir))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => {
            let msg = format!("another broker is using {}", dir.display());
            Err(storage_error(dir)(io::Error::new(io::ErrorKind::WouldBlock, msg)))
        }
        Err(TryLockError::Error(e)) => Err(storage_error(dir)(annotate(e, &path))),
    }
}

/// State shared with the flusher thread.
pub(super) struct Shared {
    pub(super) dir: PathBuf,
    pub(super) partitions: RwLock<BTreeMap<String, Vec<Arc<PartitionLog>>>>,
    /// The last recovery points written, and when.
    last_checkpoint: Mutex<(Instant, Option<OffsetCheckpoint>)>,
    /// Retention and close may both write the log-start checkpoint; they must not share a tmp file.
    log_start_lock: Mutex<()>,
    /// The last checkpoint write failed (a full disk, typically): logged once, not every round.
    checkpoint_failing: AtomicBool,
}

impl Shared {
    fn all(&self) -> Vec<Arc<PartitionLog>> {
        read(&self.partitions).values().flatten().cloned().collect()
    }

    fn checkpoint(&self, offset: impl Fn(&PartitionLog) -> i64) -> OffsetCheckpoint {
        let mut c = OffsetCheckpoint::default();
        for p in self.all() {
            c.set(&p.topic, p.topic_id, p.partition, offset(&p));
        }
        c
    }

    fn write_recovery_checkpoint(&self) -> io::Result<()> {
        let c = self.checkpoint(PartitionLog::recovery_point);
        let mut last = lock(&self.last_checkpoint);
        if last.1.as_ref() != Some(&c) {
            c.write(&self.dir.join(RECOVERY_POINT_FILE))?;
        }
        *last = (Instant::now(), Some(c));
        Ok(())
    }

    pub(super) fn write_log_start_checkpoint(&self) -> io::Result<()> {
        let _serial = lock(&self.log_start_lock);
        self.checkpoint(PartitionLog::log_start_offset).write(&self.dir.join(LOG_START_FILE))
    }

    /// The flusher's periodic round: sync whatever is dirty, then maybe checkpoint.
    fn tick(&self) {
        for p in self.all() {
            // A failure is reported to waiters and logged by the partition itself.
            let _ = p.flush();
        }
        let due = lock(&self.last_checkpoint).0.elapsed() >= CHECKPOINT_INTERVAL;
        if due {
            match self.write_recovery_checkpoint() {
                // Harmless while it lasts (a crash then rescans more of the log); said once, not each round.
                Err(e) if !self.checkpoint_failing.swap(true, Ordering::AcqRel) => {
                    tracing::error!(error = %e, "cannot write the recovery-point checkpoint; retrying every round")
                }
                Err(_) => {}
                Ok(()) if self.checkpoint_failing.swap(false, Ordering::AcqRel) => {
                    tracing::info!("the recovery-point checkpoint is written again")
                }
                Ok(()) => {}
            }
        }
    }
}

pub struct LogManager {
    pub(super) config: LogConfig,
    pub(super) shared: Arc<Shared>,
    pub(super) meta: RwLock<Metadata>,
    /// Serializes topic creation and deletion (and their metadata writes).
    pub(super) admin: Mutex<()>,
    pub(super) queue: Arc<FlushQueue>,
    flusher: Mutex<Option<Flusher>>,
    pub(super) data_arrived: Arc<Notify>,
    pub(super) closed: AtomicBool,
    clean_start: bool,
    /// Holds the exclusive lock on `.lock` until the manager is dropped.
    _dir_lock: File,
}

impl LogManager {
    pub fn open(config: LogConfig) -> crate::Result<Arc<Self>> {
        let dir = config.dir.clone();
        // Durably: on a fresh install, a power cut must not take the new log dir (and every fsynced
        // record in it) away with an unsynced entry in its parent.
        create_dir_all(&dir).map_err(storage_error(&dir))?;
        // Before anything is read or written: another process may be writing here.
        let dir_lock = lock_dir(&dir)?;
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean_start = marker.exists();
        if clean_start {
            // Removed (durably) before anything is written, so a crash from here on is seen as one.
            fs::remove_file(&marker).map_err(storage_error(&marker))?;
            sync_dir(&dir).map_err(storage_error(&dir))?;
        }
        let (meta, fresh) = Metadata::load_or_init(&dir).map_err(storage_error(&dir))?;
        if fresh {
            meta.save(&dir).map_err(storage_error(&dir))?;
        }
        remove_deleted_dirs(&dir).map_err(storage_error(&dir))?;
        let recovery_points = OffsetCheckpoint::read(&dir.join(RECOVERY_POINT_FILE)).map_err(storage_error(&dir))?;
        let log_starts = OffsetCheckpoint::read(&dir.join(LOG_START_FILE)).map_err(storage_error(&dir))?;

        let queue = FlushQueue::new();
        let data_arrived = Arc::new(Notify::new());
        let mut partitions = BTreeMap::new();
        let now_ms = wall_clock_ms();
        for t in meta.topics.values() {
            let topic_config = TopicConfig::resolve(&config, &t.configs).map_err(|e| {
                Error::Config(format!("topic '{}' in {}: {e}", t.name, dir.join(super::topic::META_FILE).display()))
            })?;
            let mut logs = Vec::with_capacity(t.partitions as usize);
            for p in 0..t.partitions {
                let params = OpenParams {
                    dir: partition_dir(&dir, &t.name, p),
                    topic: t.name.clone(),
                    topic_id: t.id,
                    partition: p,
                    config: topic_config,
                    clean: clean_start,
                    recovery_point: recovery_points.get(&t.name, t.id, p),
                    log_start_offset: log_starts.get(&t.name, t.id, p),
                    now_ms,
                };
                let path = params.dir.clone();
                logs.push(
                    PartitionLog::open(params, queue.clone(), data_arrived.clone()).map_err(storage_error(&path))?,
                );
            }
            partitions.insert(t.name.clone(), logs);
        }
        let shared = Arc::new(Shared {
            dir: dir.clone(),
            partitions: RwLock::new(partitions),
            last_checkpoint: Mutex::new((Instant::now(), None)),
            log_start_lock: Mutex::new(()),
            checkpoint_failing: AtomicBool::new(false),
        });
        // Everything was made durable during open: record it, so a crash soon after rescans little.
        shared.write_recovery_checkpoint().map_err(storage_error(&dir))?;
        shared.write_log_start_checkpoint().map_err(storage_error(&dir))?;
        let tick_shared = shared.clone();
        let flusher =
            Flusher::spawn(queue.clone(), Duration::from_millis(config.flush_interval_ms), move || tick_shared.tick())
                .map_err(storage_error(&dir))?;
        tracing::info!(dir = %dir.display(), clean_start, topics = meta.topics.len(), "storage opened");
        Ok(Arc::new(Self {
            config,
            shared,
            meta: RwLock::new(meta),
            admin: Mutex::new(()),
            queue,
            flusher: Mutex::new(Some(flusher)),
            data_arrived,
            closed: AtomicBool::new(false),
            clean_start,
            _dir_lock: dir_lock,
        }))
    }

    /// Whether the previous shutdown was clean (no recovery scan was needed).
    pub fn clean_start(&self) -> bool {
        self.clean_start
    }

    /// Writes the recovery-point checkpoint now, as the flusher does every few seconds.
    #[cfg(test)]
    pub(crate) fn checkpoint_now(&self) {
        self.shared.write_recovery_checkpoint().expect("write recovery checkpoint");
    }

    pub fn topics(&self) -> Vec<TopicMeta> {
        read(&self.meta).topics.values().cloned().collect()
    }

    pub fn topic(&self, name: &str) -> Option<TopicMeta> {
        read(&self.meta).topics.get(name).cloned()
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<Arc<PartitionLog>> {
        let index = usize::try_from(partition).ok()?;
        read(&self.shared.partitions).get(topic)?.get(index).cloned()
    }

    /// Notified on every high-watermark advance of any partition (Fetch long-polls on it).
    pub fn data_arrived(&self) -> Arc<Notify> {
        self.data_arrived.clone()
    }

    /// Deletes segments past retention in every partition and persists the new log start offsets.
    pub fn enforce_retention(&self, now_ms: i64) -> std::io::Result<usize> {
        self.enforce_retention_with(now_ms, &|_, _| None).map(|outcome| outcome.segments)
    }

    /// [`enforce_retention`](Self::enforce_retention), keeping what `floor(topic, partition)` protects.
    pub fn enforce_retention_with(
        &self,
        now_ms: i64,
        floor: &dyn Fn(&str, i32) -> Option<Floor>,
    ) -> std::io::Result<RetentionOutcome> {
        let mut outcome = RetentionOutcome::default();
        if self.closed.load(Ordering::Acquire) {
            return Ok(outcome);
        }
        for p in self.shared.all() {
            let before = p.log_start_offset();
            // One partition's failure (a sync or an unlink; the partition stops on a failed sync) is logged
            // and the others go on: their log starts are still persisted below, and their moves counted.
            match p.enforce_retention(now_ms, floor(p.topic(), p.partition())) {
                Ok(segments) => outcome.segments += segments,
                Err(e) => tracing::error!(
                    topic = p.topic(), partition = p.partition(), error = %e,
                    "retention failed on this partition; the others go on"
                ),
            }
            let after = p.log_start_offset();
            if after > before {
                outcome.moved.push((p.topic().to_string(), p.partition(), before, after));
            }
        }
        if outcome.segments > 0 || !outcome.moved.is_empty() {
            self.shared.write_log_start_checkpoint()?;
        }
        Ok(outcome)
    }

    pub fn cluster_id(&self) -> String {
        read(&self.meta).cluster_id.clone()
    }

    pub fn default_topic_config(&self) -> BTreeMap<String, String> {
        default_topic_config(&self.config)
    }

    /// Syncs everything, writes the checkpoints and then the clean-shutdown marker. Appends afterwards
    /// fail; `open` on the same directory (once this manager is dropped, which releases the directory
    /// lock) starts without any recovery scan.
    ///
    /// Every partition is closed even when one fails; a partition that fails is shut down (its waiters
    /// get the error), the marker is not written, and the first error is returned (the others are
    /// logged). The checkpoints are still written: they only record what was fsynced.
    pub fn close(&self) -> crate::Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let dir = &self.shared.dir;
        if let Some(mut f) = lock(&self.flusher).take() {
            f.stop();
        }
        let mut errors = Vec::new();
        for p in self.shared.all() {
            if let Err(e) = p.close() {
                p.shut_down(Failure::new(&e));
                errors.push(storage_error(&p.dir)(e));
            }
        }
        if let Err(e) = self.shared.write_recovery_checkpoint() {
            errors.push(storage_error(dir)(e));
        }
        if let Err(e) = self.shared.write_log_start_checkpoint() {
            errors.push(storage_error(dir)(e));
        }
        let mut errors = errors.into_iter();
        let Some(first) = errors.next() else {
            write_atomic(&dir.join(CLEAN_SHUTDOWN_FILE), b"").map_err(storage_error(dir))?;
            tracing::info!(dir = %dir.display(), "storage closed cleanly");
            return Ok(());
        };
        for e in errors {
            tracing::error!(error = %e, "closing storage");
        }
        tracing::error!(dir = %dir.display(), error = %first, "storage not closed cleanly; the next start recovers");
        Err(first)
    }
}

impl Drop for LogManager {
    /// Without `close()` (a crash, or a test simulating one) no marker is written: the next open
    /// recovers. Pending waiters are released with an error instead of hanging.
    fn drop(&mut self) {
        if let Some(mut f) = lock(&self.flusher).take() {
            f.stop();
        }
        if !self.closed.load(Ordering::Acquire) {
            for p in self.shared.all() {
                p.shut_down(Failure::closed("the log manager was dropped without close()"));
            }
        }
    }
}

pub(crate) fn partition_dir(root: &Path, topic: &str, partition: i32) -> PathBuf {
    root.join(format!("{topic}-{partition}"))
}

/// Removes directories a crash left behind in the middle of `delete_topic`.
fn remove_deleted_dirs(root: &Path) -> io::Result<()> {
    for entry in fs::read_dir(root).map_err(|e| annotate(e, root))? {
        let entry = entry?;
        let is_deleted = entry.file_name().to_str().is_some_and(|n| n.ends_with(DELETE_SUFFIX));
        if is_deleted && entry.file_type()?.is_dir() {
            tracing::info!(dir = %entry.path().display(), "finishing an interrupted topic deletion");
            fs::remove_dir_all(entry.path()).map_err(|e| annotate(e, &entry.path()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::TestBatch;
    use crate::storage::testkit::{config_with, manager, sync_append};

    fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn topics_and_cluster_id_survive_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = manager(config_with(dir.path(), |_| {}));
        let cluster_id = mgr.cluster_id();
        let a = mgr.create_topic("nginx.access", 3, configs(&[("retention.ms", "60000")])).unwrap();
        let b = mgr.create_topic("errors", 1, BTreeMap::new()).unwrap();
        sync_append(&mgr.partition("nginx.access", 2).unwrap(), &TestBatch::new(5).build());
        assert!(mgr.partition("nginx.access", 3).is_none());
        assert!(mgr.partition("nginx.access", -1).is_none());
        assert!(mgr.partition("nope", 0).is_none());
        mgr.close().unwrap();
        drop(mgr);

        // Crash-restart too (no close this time): metadata does not depend on a clean shutdown.
        for _ in 0..2 {
            let mgr = manager(config_with(dir.path(), |_| {}));
            assert_eq!(mgr.cluster_id(), cluster_id);
            assert_eq!(mgr.topics(), vec![b.clone(), a.clone()]);
            assert_eq!(mgr.topic("nginx.access"), Some(a.clone()));
            assert_eq!(mgr.partition("nginx.access", 2).unwrap().log_end_offset(), 5);
            assert_eq!(mgr.partition("nginx.access", 0).unwrap().log_end_offset(), 0);
        }
    }

    #[test]
    fn leftovers_of_an_interrupted_delete_are_removed_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("t-0.abc-delete")).unwrap();
        fs::create_dir_all(dir.path().join("groups")).unwrap();
        let mgr = manager(config_with(dir.path(), |_| {}));
        assert!(!dir.path().join("t-0.abc-delete").exists());
        assert!(dir.path().join("groups").exists(), "files of other components are left alone");
        drop(mgr);
    }

    #[test]
    fn a_second_manager_on_the_same_dir_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_with(dir.path(), |_| {});
        let mgr = manager(config.clone());
        let second = LogManager::open(config.clone()).err().expect("the directory is locked");
        assert!(second.to_string().contains(&format!("another broker is using {}", dir.path().display())), "{second}");
        mgr.close().unwrap();
        assert!(LogManager::open(config.clone()).is_err(), "the lock lasts until the manager is dropped");
        assert!(dir.path().join(CLEAN_SHUTDOWN_FILE).exists(), "a refused open touches nothing");
        drop(mgr);
        let mgr = manager(config.clone());
        assert!(mgr.clean_start());
        drop(mgr); // a crash: the lock goes with the manager (with the process, for a real one)
        drop(manager(config));
    }

    #[test]
    fn close_closes_every_partition_even_after_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = manager(config_with(dir.path(), |_| {}));
        mgr.create_topic("a", 1, BTreeMap::new()).unwrap();
        mgr.create_topic("b", 1, BTreeMap::new()).unwrap();
        let (a, b) = (mgr.partition("a", 0).unwrap(), mgr.partition("b", 0).unwrap());
        a.append(&TestBatch::new(1).build(), 0).unwrap();
        let out = b.append(&TestBatch::new(2).build(), 0).unwrap();
        // No flush request reaches the flusher: only close() can make b durable.
        b.flush_requested.store(true, Ordering::Release);
        let waiter = b.wait_durable(out.last_offset);
        // a's producer snapshot cannot be written: a fails to close, after its flush.
        fs::create_dir(a.dir().join("producer-state.json.tmp")).unwrap();
        let err = mgr.close().unwrap_err();
        assert!(err.to_string().contains(&a.dir().display().to_string()), "{err}");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let released = rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), waiter).await });
        released.expect("b's waiter is released").unwrap();
        assert_eq!(b.high_watermark(), 2, "b was flushed although a failed first");
        assert!(a.append(&TestBatch::new(1).build(), 0).is_err());
        assert!(a.flush().is_err(), "a was shut down");
        assert!(!dir.path().join(CLEAN_SHUTDOWN_FILE).exists(), "not a clean shutdown");
        fs::remove_dir(a.dir().join("producer-state.json.tmp")).unwrap();
        drop((a, b, mgr));
        let mgr = manager(config_with(dir.path(), |_| {}));
        assert!(!mgr.clean_start());
        assert_eq!(mgr.partition("b", 0).unwrap().log_end_offset(), 2);
    }

    #[test]
    fn default_topic_config_and_close_twice() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = manager(config_with(dir.path(), |c| c.retention_ms = 1234));
        let d = mgr.default_topic_config();
        assert_eq!(d["retention.ms"], "1234");
        assert_eq!(d["cleanup.policy"], "delete");
        mgr.close().unwrap();
        mgr.close().unwrap();
        assert!(dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
        assert!(mgr.create_topic("late", 1, BTreeMap::new()).is_err());
    }
}
