//! Durable committed offsets: `<log_dirs>/__consumer_offsets/offsets.log`.
//!
//! Kafka keeps committed offsets in the compacted `__consumer_offsets` topic. A single node needs far
//! less: an append-only file of framed records, replayed into a map on open and rewritten (compacted)
//! when it has grown much larger than the live state.
//!
//! File layout: an 8-byte magic, then frames `[len: u32 BE][crc32c(payload): u32 BE][payload]`. A frame
//! holds every entry of one request (all partitions of one OffsetCommit), so a commit is applied on
//! replay entirely or not at all. Replay stops at the first frame that is short, oversized, fails its
//! CRC or does not decode: that is a torn or corrupt tail, written by a request that was never
//! acknowledged, and the compaction on open drops it. The bytes of frames and records, and replay, are
//! in `format`; this file is the store around them (files, fsync, compaction, the in-memory state).
//!
//! Durability: [`OffsetStore::commit`] writes the frame (page cache) and returns a sequence number;
//! [`OffsetStore::wait_durable`] resolves once an fsync covering that number has completed. Concurrent
//! waiters share one fsync (group commit): whoever holds the sync turn syncs everything written so far.
//! Every fsync that acknowledges frames runs under one blocking `fsync_lock` (never held across an
//! `.await`), which is also what run-time compaction holds while it swaps files, so no frame is ever
//! acknowledged that the file in place after a crash might lack.
//! A failed write is cut back off the file; a failed fsync poisons the store (after an fsync error the
//! page cache can no longer be trusted, see "fsyncgate"), and every later commit is refused until a
//! restart replays what really reached the disk.
//!
//! Compaction never holds the state lock (which commits take) across file I/O of the whole state: it
//! snapshots the state under the lock and starts capturing every frame appended from then on, writes and
//! fsyncs the snapshot without any lock, appends the captured frames (fsynced while holding the
//! `fsync_lock`, so everything acknowledged so far is durable in the new file), and only then takes the
//! state lock to append the few frames that arrived meanwhile and rename the new file into place.
//!
//! References:
//! - Kafka's offsets topic and its record schemas: `GroupMetadataManager` / `OffsetCommitValue`
//!   (<https://github.com/apache/kafka/tree/trunk/group-coordinator/src/main/resources/common/message>)
//! - KIP-211 (offset expiration semantics, which is why the group's empty-since time is stored too):
//!   <https://cwiki.apache.org/confluence/display/KAFKA/KIP-211%3A+Revise+Expiration+Semantics+of+Consumer+Group+Offsets>

mod format;

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use format::{encode_commit, encode_meta, frame, put_str, replay, MAGIC, REC_DELETE_GROUP, REC_DELETE_OFFSET};

const FILE_NAME: &str = "offsets.log";
const TMP_NAME: &str = "offsets.log.tmp";
/// Below this size the file is never compacted at run time.
const DEFAULT_COMPACT_MIN_BYTES: u64 = 16 << 20;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self { topic: topic.into(), partition }
    }
}

/// One committed offset, as Kafka's `OffsetAndMetadata`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    /// -1 when the client did not send one (OffsetCommit < v6).
    pub leader_epoch: i32,
    /// Kafka stores a null metadata as "", and so do we.
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    /// Only OffsetCommit v2–v4 with an explicit `retention_time_ms` set this (old expiry semantics).
    pub expire_timestamp_ms: Option<i64>,
}

/// What the offset expiry rules need to know about a group across restarts (KIP-211): whether it used
/// group management (has a protocol type), and since when it has been empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMeta {
    pub protocol_type: Option<String>,
    /// `None` while the group has members.
    pub empty_since_ms: Option<i64>,
}

#[derive(Debug, Default, Clone)]
struct State {
    offsets: HashMap<String, BTreeMap<TopicPartition, CommittedOffset>>,
    meta: HashMap<String, GroupMeta>,
}

impl State {
    fn live_entries(&self) -> u64 {
        let offsets: usize = self.offsets.values().map(BTreeMap::len).sum();
        (offsets + self.meta.len()) as u64
    }
}

struct Inner {
    file: Arc<File>,
    len: u64,
    /// Sequence number of the last frame written (not necessarily synced).
    written_seq: u64,
    /// Entries written since the last compaction, live or not: compaction pays off once this is a
    /// multiple of the live entries.
    entries_in_file: u64,
    state: State,
    /// While a compaction runs: every frame appended since its snapshot, to be appended to the new file.
    capture: Option<Capture>,
}

#[derive(Default)]
struct Capture {
    frames: Vec<u8>,
    entries: u64,
}

pub struct OffsetStore {
    dir: PathBuf,
    inner: Mutex<Inner>,
    synced_seq: AtomicU64,
    /// Queues async waiters so that only one of them at a time occupies a blocking thread for an fsync;
    /// the others find their sequence already synced.
    sync_turn: tokio::sync::Mutex<()>,
    /// Held (only on blocking threads or by synchronous callers, never across an `.await`) by whoever
    /// fsyncs and advances `synced_seq`, and by compaction from the moment it makes the new file hold
    /// every acknowledged frame until the new file and its name are durable.
    fsync_lock: Mutex<()>,
    /// One compaction at a time.
    compaction: Mutex<()>,
    poisoned: AtomicBool,
    compact_min_bytes: u64,
}

fn poisoned_error() -> io::Error {
    io::Error::other("the committed-offsets file failed to write or fsync earlier; restart the broker to recover")
}

impl OffsetStore {
    /// Opens (creating if needed) the store in `dir`, replays it, and rewrites it compacted, which also
    /// drops a torn or corrupt tail.
    pub fn open(dir: &Path) -> io::Result<Arc<Self>> {
        Self::open_with(dir, DEFAULT_COMPACT_MIN_BYTES)
    }

    pub(crate) fn open_with(dir: &Path, compact_min_bytes: u64) -> io::Result<Arc<Self>> {
        // The new directory's own entry must be durable too (each created level's parent is fsynced), or
        // a power cut could lose every offset.
        logpipe_durable::create_dir_all(dir)?;
        let path = dir.join(FILE_NAME);
        let mut state = State::default();
        match fs::read(&path) {
            Ok(bytes) => {
                let replayed = replay(&bytes, &mut state)?;
                if replayed < bytes.len() {
                    tracing::warn!(
                        file = %path.display(),
                        valid_bytes = replayed,
                        dropped_bytes = bytes.len() - replayed,
                        "committed-offsets file has a torn or corrupt tail; dropping it (it held no acknowledged commit)"
                    );
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        // Meta only matters for groups that still have offsets (a group without offsets is forgotten,
        // as Kafka's cleanup does).
        let State { offsets, mut meta } = state;
        meta.retain(|g, _| offsets.contains_key(g));
        let state = State { offsets, meta };
        let (file, len, entries) = write_compacted(dir, &state)?;
        let store = Self {
            dir: dir.to_owned(),
            inner: Mutex::new(Inner {
                file: Arc::new(file),
                len,
                written_seq: 0,
                entries_in_file: entries,
                state,
                capture: None,
            }),
            synced_seq: AtomicU64::new(0),
            sync_turn: tokio::sync::Mutex::new(()),
            fsync_lock: Mutex::new(()),
            compaction: Mutex::new(()),
            poisoned: AtomicBool::new(false),
            compact_min_bytes,
        };
        Ok(Arc::new(store))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map half-updated in a way that matters more
        // than losing the coordinator, so keep serving.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fsync_lock(&self) -> MutexGuard<'_, ()> {
        self.fsync_lock.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends one frame holding `entries`, applies them to the map, and returns the sequence number to
    /// pass to [`wait_durable`](Self::wait_durable).
    pub fn commit(&self, group: &str, entries: &[(TopicPartition, CommittedOffset)]) -> io::Result<u64> {
        let mut payload = Vec::with_capacity(64 * entries.len());
        for (tp, c) in entries {
            encode_commit(&mut payload, group, tp, c);
        }
        let mut inner = self.lock();
        let seq = self.append(&mut inner, &payload, entries.len() as u64)?;
        let offsets = inner.state.offsets.entry(group.to_owned()).or_default();
        for (tp, c) in entries {
            offsets.insert(tp.clone(), c.clone());
        }
        Ok(seq)
    }

    /// Deletes the given offsets of `group` (OffsetDelete, expiry).
    pub fn delete(&self, group: &str, partitions: &[TopicPartition]) -> io::Result<u64> {
        let mut inner = self.lock();
        self.delete_locked(&mut inner, group, partitions)
    }

    fn delete_locked(&self, inner: &mut Inner, group: &str, partitions: &[TopicPartition]) -> io::Result<u64> {
        let mut payload = Vec::new();
        for tp in partitions {
            payload.push(REC_DELETE_OFFSET);
            put_str(&mut payload, group);
            put_str(&mut payload, &tp.topic);
            payload.extend_from_slice(&tp.partition.to_be_bytes());
        }
        let seq = self.append(inner, &payload, partitions.len() as u64)?;
        let now_empty = match inner.state.offsets.get_mut(group) {
            Some(offsets) => {
                for tp in partitions {
                    offsets.remove(tp);
                }
                offsets.is_empty()
            }
            None => false,
        };
        if now_empty {
            inner.state.offsets.remove(group);
        }
        Ok(seq)
    }

    /// Deletes every group's offsets of `topic` (the topic was deleted), one frame per group; returns the
    /// groups that had some, the number of offsets deleted and the sequence number to wait for (0: nothing
    /// was written).
    pub fn delete_topic(&self, topic: &str) -> io::Result<(Vec<String>, usize, u64)> {
        let mut inner = self.lock();
        let doomed: Vec<(String, Vec<TopicPartition>)> = inner
            .state
            .offsets
            .iter()
            .filter_map(|(group, offsets)| {
                let tps: Vec<TopicPartition> = offsets.keys().filter(|tp| tp.topic == topic).cloned().collect();
                (!tps.is_empty()).then(|| (group.clone(), tps))
            })
            .collect();
        let (mut groups, mut deleted, mut seq) = (Vec::with_capacity(doomed.len()), 0, 0);
        for (group, tps) in doomed {
            seq = self.delete_locked(&mut inner, &group, &tps)?;
            deleted += tps.len();
            groups.push(group);
        }
        Ok((groups, deleted, seq))
    }

    /// Forgets a group: its offsets and its meta (DeleteGroups, expiry of an empty group).
    pub fn delete_group(&self, group: &str) -> io::Result<u64> {
        let mut payload = vec![REC_DELETE_GROUP];
        put_str(&mut payload, group);
        let mut inner = self.lock();
        let seq = self.append(&mut inner, &payload, 1)?;
        inner.state.offsets.remove(group);
        inner.state.meta.remove(group);
        Ok(seq)
    }

    /// Records the group's meta if it changed. Not waited for: losing it in a crash only makes expiry
    /// later (the group counts as empty since the restart).
    pub fn put_meta(&self, group: &str, meta: &GroupMeta) -> io::Result<()> {
        let mut inner = self.lock();
        if inner.state.meta.get(group) == Some(meta) {
            return Ok(());
        }
        let mut payload = Vec::new();
        encode_meta(&mut payload, group, meta);
        self.append(&mut inner, &payload, 1)?;
        inner.state.meta.insert(group.to_owned(), meta.clone());
        Ok(())
    }

    pub fn meta(&self, group: &str) -> Option<GroupMeta> {
        self.lock().state.meta.get(group).cloned()
    }

    pub fn get(&self, group: &str, tp: &TopicPartition) -> Option<CommittedOffset> {
        self.lock().state.offsets.get(group).and_then(|o| o.get(tp)).cloned()
    }

    /// All committed offsets of `group`, ordered by topic and partition.
    pub fn group_offsets(&self, group: &str) -> Vec<(TopicPartition, CommittedOffset)> {
        let inner = self.lock();
        inner
            .state
            .offsets
            .get(group)
            .map(|o| o.iter().map(|(tp, c)| (tp.clone(), c.clone())).collect())
            .unwrap_or_default()
    }

    pub fn has_offsets(&self, group: &str) -> bool {
        self.lock().state.offsets.contains_key(group)
    }

    /// Groups that have at least one committed offset.
    pub fn groups(&self) -> Vec<String> {
        self.lock().state.offsets.keys().cloned().collect()
    }

    /// Deletes every offset of `group` for which `expired` holds; returns how many were deleted.
    pub fn expire(
        &self,
        group: &str,
        mut expired: impl FnMut(&TopicPartition, &CommittedOffset) -> bool,
    ) -> io::Result<usize> {
        // Chosen and deleted under one lock, so a commit racing in cannot be deleted as "expired".
        let mut inner = self.lock();
        let doomed: Vec<TopicPartition> = match inner.state.offsets.get(group) {
            Some(offsets) => offsets.iter().filter(|(tp, c)| expired(tp, c)).map(|(tp, _)| tp.clone()).collect(),
            None => return Ok(0),
        };
        if !doomed.is_empty() {
            self.delete_locked(&mut inner, group, &doomed)?;
        }
        Ok(doomed.len())
    }

    fn append(&self, inner: &mut Inner, payload: &[u8], entries: u64) -> io::Result<u64> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(poisoned_error());
        }
        let frame = frame(payload);
        if let Err(e) = (&*inner.file).write_all(&frame) {
            // A partial frame in the middle of the file would hide every later frame from replay: cut
            // it off. If even that fails, nothing written from now on could be trusted.
            if inner.file.set_len(inner.len).is_err() {
                self.poisoned.store(true, Ordering::Release);
            }
            return Err(e);
        }
        inner.len += frame.len() as u64;
        inner.entries_in_file += entries;
        inner.written_seq += 1;
        if let Some(capture) = &mut inner.capture {
            capture.frames.extend_from_slice(&frame);
            capture.entries += entries;
        }
        Ok(inner.written_seq)
    }

    /// Resolves once everything up to `seq` is on disk. Concurrent callers share one fsync.
    pub fn wait_durable(self: &Arc<Self>, seq: u64) -> impl Future<Output = io::Result<()>> + Send + 'static {
        let store = Arc::clone(self);
        async move {
            if store.synced_seq.load(Ordering::Acquire) >= seq {
                return Ok(());
            }
            let _turn = store.sync_turn.lock().await;
            if store.synced_seq.load(Ordering::Acquire) >= seq {
                return Ok(());
            }
            let blocking = Arc::clone(&store);
            tokio::task::spawn_blocking(move || blocking.wait_durable_blocking(seq))
                .await
                .unwrap_or_else(|join| Err(io::Error::other(join)))
        }
    }

    /// [`wait_durable`](Self::wait_durable) for synchronous callers: blocks the calling thread for at most
    /// one fsync in progress plus its own (or a compaction's file swap).
    pub fn wait_durable_blocking(&self, seq: u64) -> io::Result<()> {
        if self.synced_seq.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        let _fsync = self.fsync_lock();
        if self.synced_seq.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        if self.poisoned.load(Ordering::Acquire) {
            return Err(poisoned_error());
        }
        // Everything numbered up to `target` is in this file's page cache, so one fsync covers it. The file
        // cannot be swapped under us: compaction swaps only while holding `fsync_lock`.
        let (target, file) = {
            let inner = self.lock();
            (inner.written_seq, Arc::clone(&inner.file))
        };
        match file.sync_data() {
            Ok(()) => {
                self.synced_seq.fetch_max(target, Ordering::AcqRel);
                Ok(())
            }
            Err(e) => Err(self.poison(e, "fsync of committed offsets failed")),
        }
    }

    fn poison(&self, e: io::Error, what: &str) -> io::Error {
        tracing::error!(dir = %self.dir.display(), error = %e, "{what}; refusing further commits until a restart");
        self.poisoned.store(true, Ordering::Release);
        e
    }

    /// Whether the file has grown enough past the live state that rewriting it is worth it.
    pub fn needs_compaction(&self) -> bool {
        let inner = self.lock();
        inner.len >= self.compact_min_bytes && inner.entries_in_file > 4 * inner.state.live_entries().max(1)
    }

    /// Rewrites the file with only the live state: tmp file, fsync, rename, fsync the directory.
    ///
    /// Commits go on meanwhile: the state lock is held only to take a snapshot and, at the end, to append
    /// the frames written since the last catch-up and rename the file into place (page-cache writes and a
    /// rename, no fsync). Acknowledgements (fsyncs) wait during the final catch-up, swap and syncs. It does
    /// blocking I/O, so run it off the async workers (`spawn_blocking`).
    pub fn compact(&self) -> io::Result<()> {
        self.compact_with(|_| {})
    }

    /// [`compact`](Self::compact) calling `step(1)` once the snapshot is written (no lock held) and
    /// `step(2)` once the catch-up is synced (`fsync_lock` held), so tests can interleave commits.
    fn compact_with(&self, step: impl FnMut(u8)) -> io::Result<()> {
        let _one = self.compaction.lock().unwrap_or_else(PoisonError::into_inner);
        let snapshot = {
            let mut inner = self.lock();
            if self.poisoned.load(Ordering::Acquire) {
                return Err(poisoned_error());
            }
            inner.capture = Some(Capture::default());
            inner.state.clone()
        };
        let result = self.compact_from(snapshot, step);
        if result.is_err() {
            self.lock().capture = None;
            // Only a compaction that failed before its rename leaves the temp file (open() ignores it).
            let _ = fs::remove_file(self.dir.join(TMP_NAME));
        }
        result
    }

    fn compact_from(&self, snapshot: State, mut step: impl FnMut(u8)) -> io::Result<()> {
        // 1. The snapshot, without any lock.
        let (file, mut len, mut entries) = write_snapshot(&self.dir, &snapshot)?;
        drop(snapshot);
        file.sync_all()?;
        step(1);

        // 2. No acknowledgement from here on until the swap is durable. Catch up with what was written
        // since the snapshot: that includes every frame acknowledged so far, so once this fsync is done the
        // new file durably holds all of them, whichever file a crash leaves in place.
        let _fsync = self.fsync_lock();
        let caught_up = self.lock().capture.replace(Capture::default()).unwrap_or_default();
        (&file).write_all(&caught_up.frames)?;
        len += caught_up.frames.len() as u64;
        entries += caught_up.entries;
        file.sync_all()?;
        step(2);

        // 3. Under the state lock, briefly: the frames written during that fsync (none acknowledged), then the
        // rename. From here on appends go to the new file.
        let file = Arc::new(file);
        let final_seq = {
            let mut inner = self.lock();
            if self.poisoned.load(Ordering::Acquire) {
                return Err(poisoned_error());
            }
            let rest = inner.capture.take().unwrap_or_default();
            (&*file).write_all(&rest.frames)?;
            fs::rename(self.dir.join(TMP_NAME), self.dir.join(FILE_NAME))?;
            inner.file = Arc::clone(&file);
            inner.len = len + rest.frames.len() as u64;
            inner.entries_in_file = entries + rest.entries;
            inner.written_seq
        };

        // 4. Make the new file's tail and its name durable before anything more is acknowledged. A failure
        // here leaves it unknown which file a crash would bring back: refuse commits until a restart.
        file.sync_data().map_err(|e| self.poison(e, "fsync of the compacted committed-offsets file failed"))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.poison(e, "fsync of the committed-offsets directory failed"))?;
        self.synced_seq.fetch_max(final_seq, Ordering::AcqRel);
        Ok(())
    }

    /// Syncs whatever is written; called on clean shutdown. Idempotent; after a failed fsync it keeps
    /// failing (what the failed fsync covered may not be on disk).
    pub fn close(&self) -> io::Result<()> {
        let written = self.lock().written_seq;
        self.wait_durable_blocking(written)
    }

    #[cfg(test)]
    pub(crate) fn file_len(&self) -> u64 {
        self.lock().len
    }
}

/// Writes `state` to a fresh temp file in `dir` (not synced); returns it opened for append, its length and
/// the number of entries written.
fn write_snapshot(dir: &Path, state: &State) -> io::Result<(File, u64, u64)> {
    let tmp = dir.join(TMP_NAME);
    // Left over by a crash or a failed compaction. (Append mode cannot be combined with truncation.)
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let file = OpenOptions::new().append(true).create_new(true).open(&tmp)?;
    let mut out = BufWriter::new(&file);
    out.write_all(MAGIC)?;
    let mut len = MAGIC.len() as u64;
    let mut entries = 0u64;
    // One frame per group keeps frames bounded and replay of each group all-or-nothing. Meta is kept
    // even for groups without offsets yet: it must precede their first commit in the file, or a crash
    // would bring that group back looking like a standalone consumer, with the wrong expiry rule.
    let groups: std::collections::BTreeSet<&String> = state.offsets.keys().chain(state.meta.keys()).collect();
    for group in groups {
        let mut payload = Vec::new();
        if let Some(meta) = state.meta.get(group) {
            encode_meta(&mut payload, group, meta);
            entries += 1;
        }
        for (tp, c) in state.offsets.get(group).into_iter().flatten() {
            encode_commit(&mut payload, group, tp, c);
            entries += 1;
        }
        let frame = frame(&payload);
        out.write_all(&frame)?;
        len += frame.len() as u64;
    }
    out.flush()?;
    drop(out);
    Ok((file, len, entries))
}

/// Writes `state` to a fresh file and atomically puts it in place; returns the file opened for append.
fn write_compacted(dir: &Path, state: &State) -> io::Result<(File, u64, u64)> {
    let (file, len, entries) = write_snapshot(dir, state)?;
    file.sync_all()?;
    fs::rename(dir.join(TMP_NAME), dir.join(FILE_NAME))?;
    // The rename itself is only durable once the directory is synced.
    File::open(dir)?.sync_all()?;
    Ok((file, len, entries))
}

#[cfg(test)]
mod tests;
