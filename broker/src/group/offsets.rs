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
//! acknowledged, and the compaction on open drops it.
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

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

const MAGIC: &[u8; 8] = b"LPOFFS\x00\x01";
const FILE_NAME: &str = "offsets.log";
const TMP_NAME: &str = "offsets.log.tmp";
/// Frames larger than this are treated as corruption on replay (a real commit of 10k partitions with
/// 4 KiB metadata each stays well below it).
const MAX_FRAME_BYTES: u32 = 256 << 20;
/// Below this size the file is never compacted at run time.
const DEFAULT_COMPACT_MIN_BYTES: u64 = 16 << 20;

const REC_COMMIT: u8 = 1;
const REC_DELETE_OFFSET: u8 = 2;
const REC_DELETE_GROUP: u8 = 3;
const REC_GROUP_META: u8 = 4;

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
        if !dir.exists() {
            fs::create_dir_all(dir)?;
            // The new directory's own entry must be durable too, or a crash could lose every offset.
            if let Some(parent) = dir.parent() {
                File::open(parent)?.sync_all()?;
            }
        }
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
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fsync_lock(&self) -> MutexGuard<'_, ()> {
        self.fsync_lock.lock().unwrap_or_else(|p| p.into_inner())
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
        let _one = self.compaction.lock().unwrap_or_else(|p| p.into_inner());
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

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 8);
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    frame.extend_from_slice(payload);
    frame
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

/// Applies every valid frame of `bytes` to `state`; returns the length of the valid prefix.
fn replay(bytes: &[u8], state: &mut State) -> io::Result<usize> {
    if bytes.len() < MAGIC.len() {
        // Only a crash while creating the file leaves it this short (it is created by rename).
        return Ok(0);
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a logpipe committed-offsets file (bad magic); move it away to start with no committed offsets",
        ));
    }
    let mut pos = MAGIC.len();
    loop {
        let Some(header) = bytes.get(pos..pos + 8) else { return Ok(pos) };
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        if len > MAX_FRAME_BYTES {
            return Ok(pos);
        }
        let Some(payload) = bytes.get(pos + 8..pos + 8 + len as usize) else { return Ok(pos) };
        if crc32c::crc32c(payload) != crc {
            return Ok(pos);
        }
        // Decode fully before applying, so a frame that does not decode changes nothing.
        let Some(records) = decode_frame(payload) else { return Ok(pos) };
        for record in records {
            apply(state, record);
        }
        pos += 8 + len as usize;
    }
}

enum Record {
    Commit(String, TopicPartition, CommittedOffset),
    DeleteOffset(String, TopicPartition),
    DeleteGroup(String),
    Meta(String, GroupMeta),
}

fn apply(state: &mut State, record: Record) {
    match record {
        Record::Commit(group, tp, c) => {
            state.offsets.entry(group).or_default().insert(tp, c);
        }
        Record::DeleteOffset(group, tp) => {
            if let Some(offsets) = state.offsets.get_mut(&group) {
                offsets.remove(&tp);
                if offsets.is_empty() {
                    state.offsets.remove(&group);
                }
            }
        }
        Record::DeleteGroup(group) => {
            state.offsets.remove(&group);
            state.meta.remove(&group);
        }
        Record::Meta(group, meta) => {
            state.meta.insert(group, meta);
        }
    }
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u32).to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
}

fn encode_commit(buf: &mut Vec<u8>, group: &str, tp: &TopicPartition, c: &CommittedOffset) {
    buf.push(REC_COMMIT);
    put_str(buf, group);
    put_str(buf, &tp.topic);
    buf.extend_from_slice(&tp.partition.to_be_bytes());
    buf.extend_from_slice(&c.offset.to_be_bytes());
    buf.extend_from_slice(&c.leader_epoch.to_be_bytes());
    put_str(buf, &c.metadata);
    buf.extend_from_slice(&c.commit_timestamp_ms.to_be_bytes());
    buf.extend_from_slice(&c.expire_timestamp_ms.unwrap_or(-1).to_be_bytes());
}

fn encode_meta(buf: &mut Vec<u8>, group: &str, meta: &GroupMeta) {
    buf.push(REC_GROUP_META);
    put_str(buf, group);
    match &meta.protocol_type {
        Some(t) => {
            buf.push(1);
            put_str(buf, t);
        }
        None => buf.push(0),
    }
    buf.extend_from_slice(&meta.empty_since_ms.unwrap_or(-1).to_be_bytes());
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn i32(&mut self) -> Option<i32> {
        self.take(4).map(|b| i32::from_be_bytes(b.try_into().expect("4 bytes")))
    }
    fn i64(&mut self) -> Option<i64> {
        self.take(8).map(|b| i64::from_be_bytes(b.try_into().expect("8 bytes")))
    }
    fn string(&mut self) -> Option<String> {
        let len = u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
}

fn decode_frame(payload: &[u8]) -> Option<Vec<Record>> {
    let mut r = Reader(payload);
    let mut records = Vec::new();
    while !r.0.is_empty() {
        let record = match r.u8()? {
            REC_COMMIT => {
                let group = r.string()?;
                let tp = TopicPartition { topic: r.string()?, partition: r.i32()? };
                let offset = r.i64()?;
                let leader_epoch = r.i32()?;
                let metadata = r.string()?;
                let commit_timestamp_ms = r.i64()?;
                let expire = r.i64()?;
                let c = CommittedOffset {
                    offset,
                    leader_epoch,
                    metadata,
                    commit_timestamp_ms,
                    expire_timestamp_ms: (expire >= 0).then_some(expire),
                };
                Record::Commit(group, tp, c)
            }
            REC_DELETE_OFFSET => {
                let group = r.string()?;
                Record::DeleteOffset(group, TopicPartition { topic: r.string()?, partition: r.i32()? })
            }
            REC_DELETE_GROUP => Record::DeleteGroup(r.string()?),
            REC_GROUP_META => {
                let group = r.string()?;
                let protocol_type = match r.u8()? {
                    0 => None,
                    1 => Some(r.string()?),
                    _ => return None,
                };
                let since = r.i64()?;
                Record::Meta(group, GroupMeta { protocol_type, empty_since_ms: (since >= 0).then_some(since) })
            }
            _ => return None,
        };
        records.push(record);
    }
    Some(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset(offset: i64, ts: i64) -> CommittedOffset {
        CommittedOffset {
            offset,
            leader_epoch: 3,
            metadata: format!("meta-{offset}"),
            commit_timestamp_ms: ts,
            expire_timestamp_ms: None,
        }
    }

    fn tp(topic: &str, p: i32) -> TopicPartition {
        TopicPartition::new(topic, p)
    }

    fn data_file(dir: &Path) -> PathBuf {
        dir.join(FILE_NAME)
    }

    #[tokio::test]
    async fn acknowledged_commits_survive_drop_without_close() {
        let dir = tempfile::tempdir().unwrap();
        let store = OffsetStore::open(dir.path()).unwrap();
        let s1 = store.commit("g1", &[(tp("logs", 0), offset(10, 1)), (tp("logs", 1), offset(20, 1))]).unwrap();
        let s2 = store.commit("g1", &[(tp("logs", 0), offset(11, 2))]).unwrap();
        let s3 = store.commit("g2", &[(tp("other", 0), offset(5, 3))]).unwrap();
        store
            .put_meta("g1", &GroupMeta { protocol_type: Some("consumer".into()), empty_since_ms: Some(7) })
            .unwrap();
        // Group commit: all three waits share fsyncs and all succeed.
        let (a, b, c) = tokio::join!(store.wait_durable(s1), store.wait_durable(s2), store.wait_durable(s3));
        a.unwrap();
        b.unwrap();
        c.unwrap();
        drop(store); // no close()

        let store = OffsetStore::open(dir.path()).unwrap();
        assert_eq!(store.get("g1", &tp("logs", 0)), Some(offset(11, 2)));
        assert_eq!(store.get("g1", &tp("logs", 1)), Some(offset(20, 1)));
        assert_eq!(store.get("g2", &tp("other", 0)), Some(offset(5, 3)));
        assert_eq!(
            store.meta("g1"),
            Some(GroupMeta { protocol_type: Some("consumer".into()), empty_since_ms: Some(7) })
        );
        let mut groups = store.groups();
        groups.sort();
        assert_eq!(groups, vec!["g1", "g2"]);
    }

    #[test]
    fn torn_tail_is_dropped_and_later_commits_replay() {
        let dir = tempfile::tempdir().unwrap();
        let store = OffsetStore::open(dir.path()).unwrap();
        store.commit("g", &[(tp("t", 0), offset(1, 1))]).unwrap();
        store.commit("g", &[(tp("t", 0), offset(2, 2)), (tp("t", 1), offset(9, 2))]).unwrap();
        drop(store);

        // Tear the last frame in half, as a crash during write would.
        let path = data_file(dir.path());
        let len = fs::metadata(&path).unwrap().len();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 10).unwrap();
        drop(f);

        let store = OffsetStore::open(dir.path()).unwrap();
        assert_eq!(store.get("g", &tp("t", 0)), Some(offset(1, 1)), "the torn commit is not applied");
        assert_eq!(store.get("g", &tp("t", 1)), None, "a torn frame is dropped as a whole");
        // Writes after the recovery must not sit behind garbage.
        store.commit("g", &[(tp("t", 1), offset(3, 3))]).unwrap();
        drop(store);
        let store = OffsetStore::open(dir.path()).unwrap();
        assert_eq!(store.get("g", &tp("t", 0)), Some(offset(1, 1)));
        assert_eq!(store.get("g", &tp("t", 1)), Some(offset(3, 3)));
    }

    #[test]
    fn corrupt_frame_and_everything_after_it_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = OffsetStore::open(dir.path()).unwrap();
        store.commit("g", &[(tp("t", 0), offset(1, 1))]).unwrap();
        let before = store.file_len();
        store.commit("g", &[(tp("t", 0), offset(2, 2))]).unwrap();
        store.commit("g", &[(tp("t", 0), offset(3, 3))]).unwrap();
        drop(store);

        let path = data_file(dir.path());
        let mut bytes = fs::read(&path).unwrap();
        // Flip a payload byte of the second frame: its CRC no longer matches.
        bytes[before as usize + 12] ^= 0xff;
        fs::write(&path, &bytes).unwrap();

        let store = OffsetStore::open(dir.path()).unwrap();
        assert_eq!(store.get("g", &tp("t", 0)), Some(offset(1, 1)));

        // Garbage that is not even a frame header is also just a tail.
        drop(store);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0xff; 5]).unwrap();
        drop(f);
        let store = OffsetStore::open(dir.path()).unwrap();
        assert_eq!(store.get("g", &tp("t", 0)), Some(offset(1, 1)));
    }

    #[test]
    fn compaction_keeps_latest_values_and_deletions() {
        let dir = tempfile::tempdir().unwrap();
        let store = OffsetStore::open_with(dir.path(), 1024).unwrap();
        for i in 0..500 {
            store.commit("g", &[(tp("t", 0), offset(i, i)), (tp("t", 1), offset(i * 2, i))]).unwrap();
        }
        store.commit("gone", &[(tp("t", 0), offset(1, 1))]).unwrap();
        store.delete_group("gone").unwrap();
        store.commit("partial", &[(tp("t", 0), offset(1, 1)), (tp("t", 1), offset(1, 1))]).unwrap();
        store.delete("partial", &[tp("t", 1)]).unwrap();
        assert!(store.needs_compaction());
        let big = store.file_len();
        store.compact().unwrap();
        assert!(store.file_len() < big / 50, "{} vs {big}", store.file_len());
        assert!(!store.needs_compaction());
        // Appends continue in the new file.
        store.commit("g", &[(tp("t", 2), offset(7, 7))]).unwrap();
        drop(store);

        let store = OffsetStore::open(dir.path()).unwrap();
        assert_eq!(store.get("g", &tp("t", 0)), Some(offset(499, 499)));
        assert_eq!(store.get("g", &tp("t", 1)), Some(offset(998, 499)));
        assert_eq!(store.get("g", &tp("t", 2)), Some(offset(7, 7)));
        assert!(!store.has_offsets("gone"));
        assert_eq!(store.get("partial", &tp("t", 0)), Some(offset(1, 1)));
        assert_eq!(store.get("partial", &tp("t", 1)), None);
        assert!(!dir.path().join(TMP_NAME).exists());
    }

    #[test]
    fn open_compacts_and_forgets_meta_of_groups_without_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let store = OffsetStore::open(dir.path()).unwrap();
        for i in 0..100 {
            store.commit("g", &[(tp("t", 0), offset(i, i))]).unwrap();
        }
        store.put_meta("lonely", &GroupMeta { protocol_type: Some("consumer".into()), empty_since_ms: None }).unwrap();
        let big = store.file_len();
        drop(store);
        let store = OffsetStore::open(dir.path()).unwrap();
        assert!(store.file_len() < big / 10);
        assert_eq!(store.meta("lonely"), None);
        assert_eq!(store.get("g", &tp("t", 0)), Some(offset(99, 99)));
    }

    #[test]
    fn runtime_compaction_keeps_meta_written_before_the_first_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = OffsetStore::open(dir.path()).unwrap();
        let active = GroupMeta { protocol_type: Some("consumer".into()), empty_since_ms: None };
        store.put_meta("g", &active).unwrap();
        store.compact().unwrap();
        store.commit("g", &[(tp("t", 0), offset(1, 1))]).unwrap();
        drop(store);
        let store = OffsetStore::open(dir.path()).unwrap();
        assert_eq!(store.meta("g"), Some(active));
    }

    #[test]
    fn expire_deletes_matching_offsets_durably() {
        let dir = tempfile::tempdir().unwrap();
        let store = OffsetStore::open(dir.path()).unwrap();
        store.commit("g", &[(tp("a", 0), offset(1, 100)), (tp("b", 0), offset(1, 200))]).unwrap();
        assert_eq!(store.expire("g", |_, c| c.commit_timestamp_ms < 150).unwrap(), 1);
        drop(store);
        let store = OffsetStore::open(dir.path()).unwrap();
        assert_eq!(store.get("g", &tp("a", 0)), None);
        assert!(store.get("g", &tp("b", 0)).is_some());
    }

    #[test]
    fn commits_proceed_and_are_kept_while_compaction_rewrites_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = OffsetStore::open_with(dir.path(), 1024).unwrap();
        for i in 0..300 {
            store.commit("g", &[(tp("t", 0), offset(i, i))]).unwrap();
        }
        store.commit("gone", &[(tp("t", 0), offset(1, 1))]).unwrap();
        assert!(store.needs_compaction());
        let meta = GroupMeta { protocol_type: Some("consumer".into()), empty_since_ms: Some(9) };
        store
            .compact_with(|step| match step {
                1 => {
                    // The snapshot is being written without the state lock: commits, deletions and their
                    // acknowledgement (fsync of the old file) all go through.
                    assert!(store.inner.try_lock().is_ok(), "state lock held during the rewrite");
                    let seq = store.commit("g", &[(tp("t", 0), offset(1000, 1000))]).unwrap();
                    store.delete_group("gone").unwrap();
                    store.wait_durable_blocking(seq).unwrap();
                    assert!(store.synced_seq.load(Ordering::Acquire) >= seq);
                }
                2 => {
                    // After the catch-up: still accepted, just not acknowledged until the swap is durable.
                    assert!(store.inner.try_lock().is_ok());
                    store.commit("g", &[(tp("t", 1), offset(5, 5))]).unwrap();
                    store.put_meta("g", &meta).unwrap();
                }
                _ => unreachable!(),
            })
            .unwrap();
        assert_eq!(store.synced_seq.load(Ordering::Acquire), store.lock().written_seq, "the swap synced everything");
        assert!(store.lock().capture.is_none());
        assert!(!store.needs_compaction());
        let live = store.file_len();
        assert_eq!(live, fs::metadata(data_file(dir.path())).unwrap().len(), "tracked length matches the file");
        store.commit("g", &[(tp("t", 2), offset(7, 7))]).unwrap();
        drop(store);

        let store = OffsetStore::open(dir.path()).unwrap();
        assert_eq!(store.get("g", &tp("t", 0)), Some(offset(1000, 1000)));
        assert_eq!(store.get("g", &tp("t", 1)), Some(offset(5, 5)));
        assert_eq!(store.get("g", &tp("t", 2)), Some(offset(7, 7)));
        assert!(!store.has_offsets("gone"));
        assert_eq!(store.meta("g"), Some(meta));
    }

    #[test]
    fn concurrent_commits_and_compactions_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = OffsetStore::open_with(dir.path(), 0).unwrap();
        std::thread::scope(|s| {
            for w in 0..2 {
                let store = &store;
                s.spawn(move || {
                    for i in 0..400 {
                        let seq = store.commit(&format!("g{w}"), &[(tp("t", i % 3), offset(i64::from(i), 1))]).unwrap();
                        if i % 50 == 0 {
                            store.wait_durable_blocking(seq).unwrap();
                        }
                    }
                });
            }
            s.spawn(|| {
                for _ in 0..20 {
                    store.compact().unwrap();
                }
            });
        });
        drop(store);
        let store = OffsetStore::open(dir.path()).unwrap();
        for w in 0..2 {
            for p in 0..3 {
                let last = (0..400).filter(|i| i % 3 == p).max().unwrap();
                assert_eq!(store.get(&format!("g{w}"), &tp("t", p)), Some(offset(i64::from(last), 1)));
            }
        }
    }

    #[test]
    fn failed_compaction_leaves_the_store_working() {
        let dir = tempfile::tempdir().unwrap();
        let store = OffsetStore::open(dir.path()).unwrap();
        store.commit("g", &[(tp("t", 0), offset(1, 1))]).unwrap();
        // Something in the way of the temp file: the rewrite fails before touching the live file.
        fs::create_dir(dir.path().join(TMP_NAME)).unwrap();
        fs::write(dir.path().join(TMP_NAME).join("x"), b"x").unwrap();
        assert!(store.compact().is_err());
        assert!(store.lock().capture.is_none(), "no frame capture left running");
        let seq = store.commit("g", &[(tp("t", 0), offset(2, 2))]).unwrap();
        store.wait_durable_blocking(seq).unwrap();
        fs::remove_dir_all(dir.path().join(TMP_NAME)).unwrap();
        store.compact().unwrap();
        drop(store);
        let store = OffsetStore::open(dir.path()).unwrap();
        assert_eq!(store.get("g", &tp("t", 0)), Some(offset(2, 2)));
    }

    #[test]
    fn delete_topic_removes_every_groups_offsets_durably() {
        let dir = tempfile::tempdir().unwrap();
        let store = OffsetStore::open(dir.path()).unwrap();
        let three = [(tp("t", 0), offset(1, 1)), (tp("t", 1), offset(1, 1)), (tp("u", 0), offset(1, 1))];
        store.commit("a", &three).unwrap();
        store.commit("b", &[(tp("t", 0), offset(2, 2))]).unwrap();
        store.commit("c", &[(tp("u", 0), offset(3, 3))]).unwrap();
        let (mut groups, deleted, seq) = store.delete_topic("t").unwrap();
        groups.sort();
        assert_eq!((groups, deleted), (vec!["a".to_owned(), "b".to_owned()], 3));
        store.wait_durable_blocking(seq).unwrap();
        assert_eq!(store.delete_topic("t").unwrap(), (vec![], 0, 0), "nothing left to delete");
        drop(store);
        let store = OffsetStore::open(dir.path()).unwrap();
        assert_eq!(store.get("a", &tp("t", 0)), None);
        assert_eq!(store.get("a", &tp("t", 1)), None);
        assert_eq!(store.get("a", &tp("u", 0)), Some(offset(1, 1)));
        assert!(!store.has_offsets("b"));
        assert_eq!(store.get("c", &tp("u", 0)), Some(offset(3, 3)));
    }

    #[test]
    fn close_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let store = OffsetStore::open(dir.path()).unwrap();
        store.close().unwrap();
        store.commit("g", &[(tp("t", 0), offset(1, 1))]).unwrap();
        store.close().unwrap();
        store.close().unwrap();
        assert_eq!(store.synced_seq.load(Ordering::Acquire), 1);
    }

    #[test]
    fn foreign_file_is_refused_not_discarded() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(data_file(dir.path()), b"something else entirely").unwrap();
        assert!(OffsetStore::open(dir.path()).is_err());
    }
}
