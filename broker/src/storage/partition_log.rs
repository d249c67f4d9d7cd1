//! The log of one partition: a sequence of segments, appended at the end and read from anywhere.
//!
//! Appends are serialized by one mutex per partition and only write to the page cache; the critical
//! section is validation-free (batches are checked before the lock) and fsync-free (the flusher thread
//! syncs, see `flusher.rs`). Reads take the lock only to find the segment and index position, then read
//! with `pread`, so they run concurrently with appends.
//!
//! The high watermark is the *durable* offset: the offset after the last fsynced record. Consumers never
//! see a record that a crash could still take away. Otherwise a consumer could commit an offset for
//! records lost in a crash, the producer's resend would get lower offsets, and it would skip them.
//!
//! References: https://kafka.apache.org/documentation/#recordbatch,
//! KIP-74 (a fetch returns at least one whole batch even when it exceeds the size limit).

use std::collections::BTreeMap;
use std::fs::File;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use tokio::sync::{watch, Notify};
use uuid::Uuid;

use super::batch::{set_base_offset, set_log_append_time, validate_produce};
use super::config::TopicConfig;
use super::error::AppendError;
use super::flusher::FlushQueue;
use super::full_disk::{self, DiskFull, DiskShortage};
use super::producer_snapshot::write_roll_snapshot;
use super::producer_state::{ProducerStateMap, SeqCheck, Staged};
use super::recovery::{load_partition, RecoveryReport};
use super::segment::{Placed, Segment};
use super::util::{annotate, lock};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_start_offset: i64,
    /// The batch repeated one already appended by an idempotent producer; offsets are the original ones.
    pub duplicate: bool,
    /// Under `message.timestamp.type=LogAppendTime`, the time stamped into the batches (for a duplicate,
    /// the one stored with the original); -1 otherwise.
    pub log_append_time: i64,
}

#[derive(Debug, Clone)]
pub struct ReadOutcome<R = Bytes> {
    pub records: R,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

impl<R> ReadOutcome<R> {
    pub(super) fn map<S>(self, f: impl FnOnce(R) -> S) -> ReadOutcome<S> {
        ReadOutcome {
            records: f(self.records),
            high_watermark: self.high_watermark,
            log_start_offset: self.log_start_offset,
        }
    }
}

/// Why a partition stopped accepting writes. After a failed fsync the kernel may have dropped the dirty
/// pages and cleared the error, so retrying could report success for lost data (PostgreSQL's
/// "fsyncgate"): the log fails stop instead and recovers from disk at the next start.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    kind: io::ErrorKind,
    message: String,
}

impl Failure {
    pub fn new(e: &io::Error) -> Self {
        Self { kind: e.kind(), message: e.to_string() }
    }
    pub fn closed(message: &str) -> Self {
        Self { kind: io::ErrorKind::BrokenPipe, message: message.to_owned() }
    }
    pub fn to_io(&self) -> io::Error {
        io::Error::new(self.kind, self.message.clone())
    }
}

/// What waiters in `wait_durable` watch.
#[derive(Debug, Clone)]
pub(crate) struct Durability {
    /// Everything below this offset is fsynced.
    pub offset: i64,
    pub failure: Option<Failure>,
}

pub(crate) struct LogState {
    pub segments: BTreeMap<i64, Segment>,
    pub producers: ProducerStateMap,
    /// Files of rolled segments (log and indexes) not yet fsynced. They are synced before any offset of a
    /// later segment counts as durable.
    pub unsynced: Vec<Arc<File>>,
    /// The base offset of the oldest segment among them. Recovery trusts the indexes of the segments
    /// before the one holding the recovery point, so the checkpoint stops there until they are synced.
    pub unsynced_from: Option<i64>,
    /// A segment file was created since the last fsync of the partition directory.
    pub dir_dirty: bool,
    pub failed: Option<Failure>,
    /// Set by `close()`: later appends are refused, flushes are no-ops.
    pub closed: bool,
}

impl LogState {
    pub fn active(&mut self) -> &mut Segment {
        self.segments.values_mut().next_back().expect("a partition log always has an active segment")
    }
}

pub struct PartitionLog {
    pub(super) me: Weak<PartitionLog>,
    pub(super) topic: String,
    pub(super) topic_id: Uuid,
    pub(super) partition: i32,
    pub(super) dir: PathBuf,
    /// Replaced whole by AlterConfigs; read as a copy.
    pub(super) config: std::sync::Mutex<TopicConfig>,
    pub(super) state: Mutex<LogState>,
    /// Serializes flushes of this partition so durable offsets only move forward.
    pub(super) flush_lock: Mutex<()>,
    pub(super) high_watermark: AtomicI64,
    pub(super) log_start_offset: AtomicI64,
    /// Written only under `state`; read without it.
    pub(super) log_end_offset: AtomicI64,
    pub(super) durable: watch::Sender<Durability>,
    pub(super) data_arrived: Arc<Notify>,
    pub(super) queue: Arc<FlushQueue>,
    pub(super) flush_requested: AtomicBool,
    pub(super) report: RecoveryReport,
    pub(super) disk_full: DiskFull,
}

/// Where to open a partition and how much to trust what is there.
pub(crate) struct OpenParams {
    pub dir: PathBuf,
    pub topic: String,
    pub topic_id: Uuid,
    pub partition: i32,
    pub config: TopicConfig,
    pub clean: bool,
    pub recovery_point: Option<i64>,
    pub log_start_offset: Option<i64>,
    pub now_ms: i64,
}

impl PartitionLog {
    /// Opens (and after a crash, recovers) the partition in `p.dir`, creating it when it does not exist.
    pub(crate) fn open(p: OpenParams, queue: Arc<FlushQueue>, data_arrived: Arc<Notify>) -> io::Result<Arc<Self>> {
        let loaded = load_partition(&p.dir, p.clean, p.recovery_point, p.log_start_offset, &p.config, p.now_ms)?;
        let end = loaded.next_offset;
        let (durable, _) = watch::channel(Durability { offset: end, failure: None });
        Ok(Arc::new_cyclic(|me| Self {
            me: me.clone(),
            topic: p.topic,
            topic_id: p.topic_id,
            partition: p.partition,
            dir: p.dir,
            config: std::sync::Mutex::new(p.config),
            state: Mutex::new(LogState {
                segments: loaded.segments,
                producers: loaded.producers,
                unsynced: Vec::new(),
                unsynced_from: None,
                dir_dirty: false,
                failed: None,
                closed: false,
            }),
            flush_lock: Mutex::new(()),
            // Everything recovered was fsynced during open, so it is all visible.
            high_watermark: AtomicI64::new(end),
            log_start_offset: AtomicI64::new(loaded.log_start_offset),
            log_end_offset: AtomicI64::new(end),
            durable,
            data_arrived,
            queue,
            flush_requested: AtomicBool::new(false),
            report: loaded.report,
            disk_full: DiskFull::default(),
        }))
    }

    /// Moves the log start up to `offset` (never down); returns the log start after the move.
    pub(crate) fn advance_log_start(&self, offset: i64) -> i64 {
        self.log_start_offset.fetch_max(offset, std::sync::atomic::Ordering::AcqRel).max(offset)
    }

    /// The settings this partition runs with now.
    pub fn config(&self) -> TopicConfig {
        *lock(&self.config)
    }

    /// Applies new topic settings (AlterConfigs); the next append, roll and retention round use them.
    pub(crate) fn set_config(&self, config: TopicConfig) {
        *lock(&self.config) = config;
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn partition(&self) -> i32 {
        self.partition
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What the last open found and repaired.
    pub fn recovery_report(&self) -> RecoveryReport {
        self.report.clone()
    }

    pub fn append(&self, records: &[u8], now_ms: i64) -> Result<AppendOutcome, AppendError> {
        let config = self.config();
        let batches = validate_produce(records, config.max_message_bytes)?;
        // Copy and stamp outside the lock; only offsets need the lock.
        let mut bytes = records.to_vec();
        if config.log_append_time {
            for b in &batches {
                set_log_append_time(&mut bytes[b.pos..b.pos + b.header.size()], now_ms);
            }
        }
        let mut st = lock(&self.state);
        if st.closed {
            return Err(AppendError::Io(Failure::closed("the partition log is closed").to_io()));
        }
        if let Some(f) = &st.failed {
            return Err(AppendError::Io(f.to_io()));
        }
        let start = self.log_end_offset.load(Ordering::Acquire);
        let mut staged = Staged::new();
        let mut placed = Vec::with_capacity(batches.len());
        let mut duplicates = Vec::new();
        let mut next = start;
        for b in &batches {
            match st.producers.check(&staged, &b.header)? {
                SeqCheck::Duplicate { base_offset, last_offset, max_timestamp } => {
                    duplicates.push((base_offset, last_offset, max_timestamp))
                }
                SeqCheck::Append => {
                    let last = next + i64::from(b.header.last_offset_delta);
                    let max_timestamp = if config.log_append_time { now_ms } else { b.header.max_timestamp };
                    st.producers.stage(&mut staged, &b.header, (next, last), max_timestamp, now_ms);
                    placed.push(Placed { pos: b.pos as u64, base_offset: next, last_offset: last, max_timestamp });
                    next = last + 1;
                }
            }
        }
        if let (Some(first), Some(last)) = (duplicates.first(), duplicates.last()) {
            if placed.is_empty() {
                let stamped = duplicates.iter().map(|d| d.2).max().filter(|_| config.log_append_time);
                return Ok(AppendOutcome {
                    base_offset: first.0,
                    last_offset: last.1,
                    log_start_offset: self.log_start_offset(),
                    duplicate: true,
                    log_append_time: stamped.unwrap_or(-1),
                });
            }
            // Requests are appended whole, so a genuine retry is all duplicates or none.
            return Err(AppendError::InvalidRecord(
                "the request mixes retried and new batches of an idempotent producer".into(),
            ));
        }
        for p in &placed {
            set_base_offset(&mut bytes[p.pos as usize..], p.base_offset);
        }
        if let Some(e) = self.disk_full.still_full(&self.dir, bytes.len() as u64) {
            return Err(AppendError::Io(e));
        }
        // A failed roll has stopped the partition, or was undone on a full disk (see `roll`).
        self.maybe_roll(&mut st, bytes.len() as u64, next - 1, now_ms)?;
        let interval = config.index_interval_bytes;
        if let Err(e) = st.active().append(&bytes, &placed, interval) {
            if full_disk::is_full(&e) {
                // Undone by the segment: nothing changed, the next append tries again.
                self.disk_full.report(&self.dir, &e, bytes.len() as u64);
                return Err(AppendError::Io(e));
            }
            // The file may now end in a partial batch; recovery at the next start cuts it off.
            self.stop_after_write_error(&mut st, &e, "write failed");
            return Err(AppendError::Io(e));
        }
        self.disk_full.cleared(&self.dir);
        st.producers.commit(staged);
        self.log_end_offset.store(next, Ordering::Release);
        drop(st);
        Ok(AppendOutcome {
            base_offset: start,
            last_offset: next - 1,
            log_start_offset: self.log_start_offset(),
            duplicate: false,
            log_append_time: if config.log_append_time { now_ms } else { -1 },
        })
    }

    fn maybe_roll(&self, st: &mut LogState, incoming: u64, last_offset: i64, now_ms: i64) -> io::Result<()> {
        let c = self.config();
        let active = st.active();
        if active.is_empty() {
            return Ok(());
        }
        let full = active.size() + incoming > c.segment_bytes;
        let old = c.roll_ms > 0 && now_ms - active.created_ms() > c.roll_ms;
        if full || old || !active.can_hold(incoming, last_offset) {
            self.roll(st, now_ms)?;
        }
        Ok(())
    }

    /// Seals the active segment and starts a new one at the log end offset, writing a producer-state
    /// snapshot at that offset (see `producer_snapshot.rs`). Any error stops the partition, as a failed
    /// write does: the segment files may be half changed.
    pub(super) fn roll(&self, st: &mut LogState, now_ms: i64) -> io::Result<()> {
        let base = self.log_end_offset.load(Ordering::Acquire);
        // The new segment and the snapshot first: until the active segment is sealed, failing to make
        // them on a full disk changes nothing, so it is undone and the roll is retried by the next append.
        let prepared = Segment::create(&self.dir, base, now_ms)
            .and_then(|fresh| write_roll_snapshot(&self.dir, base, &st.producers).map(|snapshot| (fresh, snapshot)));
        let (fresh, snapshot) = match prepared {
            Ok(prepared) => prepared,
            Err(e) if full_disk::is_full(&e) => {
                full_disk::remove_roll_leftovers(&self.dir, base);
                self.disk_full.report(&self.dir, &e, 0);
                return Err(e);
            }
            Err(e) => {
                self.stop_after_write_error(st, &e, "segment roll failed");
                return Err(e);
            }
        };
        let result = self.finish_roll(st, base, fresh, snapshot);
        if let Err(e) = &result {
            self.stop_after_write_error(st, e, "segment roll failed");
        }
        result
    }

    fn finish_roll(&self, st: &mut LogState, base: i64, fresh: Segment, snapshot: Arc<File>) -> io::Result<()> {
        let sealed_base = *st.segments.keys().next_back().expect("a partition log always has an active segment");
        let sealed = st.active();
        sealed.seal()?;
        let files = sealed.files();
        // Synced by the flusher (with the directory) before any offset of the new segment is durable.
        st.unsynced.extend(files);
        st.unsynced.push(snapshot);
        st.unsynced_from.get_or_insert(sealed_base);
        st.segments.insert(base, fresh);
        st.dir_dirty = true;
        tracing::debug!(dir = %self.dir.display(), base_offset = base, "rolled to a new segment");
        Ok(())
    }

    /// Fail-stop after a failed write (see [`Failure`]): refuse appends and release every waiter.
    fn stop_after_write_error(&self, st: &mut LogState, e: &io::Error, what: &str) {
        tracing::error!(dir = %self.dir.display(), error = %e, "{what}; the partition refuses further appends");
        let failure = Failure::new(e);
        st.failed.get_or_insert_with(|| failure.clone());
        // Lock order state -> durability channel, as in `flush`.
        self.durable.send_modify(|d| {
            d.failure.get_or_insert(failure);
        });
    }

    /// Resolves once every record up to and including `offset` is fsynced, waking the flusher at once:
    /// concurrent callers share one fsync (group commit).
    pub fn wait_durable(&self, offset: i64) -> impl Future<Output = io::Result<()>> + Send + 'static {
        let mut rx = self.durable.subscribe();
        let end = self.log_end_offset.load(Ordering::Acquire);
        let pending = rx.borrow().offset <= offset;
        if pending && offset < end {
            self.request_flush();
        }
        let dir = self.dir.clone();
        async move {
            if pending && offset >= end {
                let msg = format!("offset {offset} was never appended (log end offset {end})");
                return Err(annotate(io::Error::new(io::ErrorKind::InvalidInput, msg), &dir));
            }
            loop {
                {
                    let d = rx.borrow_and_update();
                    if d.offset > offset {
                        return Ok(());
                    }
                    if let Some(f) = &d.failure {
                        return Err(f.to_io());
                    }
                }
                if rx.changed().await.is_err() {
                    return Err(Failure::closed("the partition log was closed").to_io());
                }
            }
        }
    }

    pub(super) fn request_flush(&self) {
        if !self.flush_requested.swap(true, Ordering::AcqRel) {
            self.queue.request(self.me.clone());
        }
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset.load(Ordering::Acquire)
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset.load(Ordering::Acquire)
    }

    /// Whether appends are refused for lack of space, since when, and how much room they wait for.
    pub fn disk_shortage(&self) -> Option<DiskShortage> {
        self.disk_full.shortage(&self.dir)
    }

    pub fn size_bytes(&self) -> u64 {
        lock(&self.state).segments.values().map(Segment::size).sum()
    }

    /// Number of segments, for tests and status output.
    pub fn segment_count(&self) -> usize {
        lock(&self.state).segments.len()
    }
    /// Final sync for a clean shutdown: data, the active segment's indexes (with its final time-index
    /// entry) and the producer-state snapshot, so the next start needs no scan.
    pub(crate) fn close(&self) -> io::Result<()> {
        // Refuse appends first, so nothing can slip in after the last fsync.
        lock(&self.state).closed = true;
        self.flush()?;
        let mut st = lock(&self.state);
        let active = st.active();
        active.write_final_time_entry()?;
        active.sync_indexes()?;
        st.producers.save(&self.dir)
    }

    /// Stops the log without a final sync (topic deleted, manager dropped) and releases every waiter.
    pub(crate) fn shut_down(&self, reason: Failure) {
        {
            let mut st = lock(&self.state);
            st.closed = true;
            // Also stops the flusher from syncing it: the log's files may be on their way out.
            st.failed.get_or_insert_with(|| reason.clone());
        }
        self.durable.send_modify(|d| {
            d.failure.get_or_insert(reason);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::TestBatch;
    use crate::storage::testkit::{config_with, manager, partition, sync_append};

    #[test]
    fn idempotent_retries_and_fencing() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = manager(config_with(dir.path(), |_| {}));
        let log = partition(&mgr, "t", &[]);
        let first = TestBatch::new(3).producer(42, 0, 0).build();
        let a = sync_append(&log, &first);
        sync_append(&log, &TestBatch::new(1).build());
        let retry = log.append(&first, 0).unwrap();
        assert!(retry.duplicate);
        assert_eq!((retry.base_offset, retry.last_offset), (a.base_offset, a.last_offset));
        assert_eq!(log.log_end_offset(), 4, "a retry appends nothing");
        assert!(matches!(
            log.append(&TestBatch::new(1).producer(42, 0, 9).build(), 0),
            Err(AppendError::OutOfOrderSequence { producer_id: 42, expected: 3, got: 9 })
        ));
        sync_append(&log, &TestBatch::new(1).producer(42, 1, 0).build());
        assert!(matches!(
            log.append(&TestBatch::new(1).producer(42, 0, 3).build(), 0),
            Err(AppendError::InvalidProducerEpoch { epoch: 0, current: 1, .. })
        ));
        assert_eq!(log.log_end_offset(), 5);
    }

    #[test]
    fn a_failed_roll_stops_the_partition() {
        let dir = tempfile::tempdir().unwrap();
        // Every append after the first in a segment rolls.
        let mgr = manager(config_with(dir.path(), |c| c.segment_bytes = 1));
        let log = partition(&mgr, "t", &[]);
        let first = sync_append(&log, &TestBatch::new(1).build());
        // Keep the flusher out, so the next batch is still pending when the roll fails.
        let serial = lock(&log.flush_lock);
        let pending = log.append(&TestBatch::new(1).build(), 0).unwrap();
        // The next segment's log file cannot be created.
        let blocker = log.dir().join(super::super::segment::file_name(pending.base_offset + 1, "log"));
        std::fs::create_dir(&blocker).unwrap();
        let waiter = log.wait_durable(pending.last_offset);
        assert!(matches!(log.append(&TestBatch::new(1).build(), 0), Err(AppendError::Io(_))));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let released = rt.block_on(async { tokio::time::timeout(std::time::Duration::from_secs(10), waiter).await });
        assert!(released.expect("waiters are released").is_err(), "with the error");
        drop(serial);
        std::fs::remove_dir(&blocker).unwrap();
        assert!(log.append(&TestBatch::new(1).build(), 0).is_err(), "fail-stop: no more appends");
        assert!(log.flush().is_err());
        assert_eq!(log.high_watermark(), first.last_offset + 1);
    }

    #[test]
    fn invalid_batches_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = manager(config_with(dir.path(), |_| {}));
        let log = partition(&mgr, "t", &[("max.message.bytes", "200")]);
        let mut payload = TestBatch::new(1).build();
        payload.extend(TestBatch::new(1).payload(300).build());
        assert!(matches!(log.append(&payload, 0), Err(AppendError::MessageTooLarge { max: 200, .. })));
        assert_eq!((log.log_end_offset(), log.size_bytes()), (0, 0));
    }
}
