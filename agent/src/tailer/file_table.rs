//! The file table: every file identity the tailer knows (from the registry or from scans), what it knows
//! of each ([`FileState`]), and which of them are open. States live in numbered *slots*; a slot number is
//! also the `source` of the acks of that file's events, so acks of a forgotten state find nothing.
//!
//! The table keeps its indexes consistent: by identity (at most one state per identity) and by the
//! (device, inode) of open files (an open handle keeps its inode from being reused). It also tracks
//! whether anything the registry records changed since the registry was last written.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::harvester::Harvester;
use crate::identity::{FileIdentity, Head};
use crate::registry::{AckedRanges, Entry};

/// Everything known about one file identity.
pub(crate) struct FileState {
    pub(crate) identity: FileIdentity,
    pub(crate) path: PathBuf,
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) head_len: usize,
    pub(crate) head_hash: u64,
    /// The file's first bytes as last read (while open, the harvester's are current). `None` for a
    /// registry entry until its file is seen. Tells an unfinished copy of this file apart.
    pub(crate) head: Option<Head>,
    pub(crate) acked: AckedRanges,
    /// Everything before this was handed on (sent or filtered); where an in-process reopen continues.
    pub(crate) read_offset: u64,
    pub(crate) last_seen_ms: i64,
    pub(crate) input: usize,
    /// Set while the file is open; only [`FileTable::attach`] and [`FileTable::detach`] change it.
    pub(crate) harvester: Option<Harvester>,
    /// Size at the last scan, for "bytes behind".
    pub(crate) size: u64,
    pub(crate) stats: FileStats,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct FileStats {
    pub lines_read: u64,
    pub bytes_read: u64,
    pub events_sent: u64,
    pub events_acked: u64,
    /// Lines cut at `max_line_bytes`.
    pub events_truncated: u64,
    /// Events whose message was cut to fit `max_message_bytes`.
    pub events_too_large: u64,
}

impl FileState {
    /// A file first seen at `path` with first bytes `head`, to be read from `offset`.
    pub(crate) fn new(
        identity: FileIdentity,
        path: &Path,
        (dev, ino): (u64, u64),
        head: &Head,
        offset: u64,
        input: usize,
        now_ms: i64,
    ) -> Self {
        Self {
            identity,
            path: path.to_path_buf(),
            dev,
            ino,
            head_len: head.len(),
            head_hash: head.hash(),
            head: None,
            acked: AckedRanges::new(offset),
            read_offset: offset,
            last_seen_ms: now_ms,
            input,
            harvester: None,
            size: 0,
            stats: FileStats::default(),
        }
    }

    /// A file known from the registry, not seen yet in this run.
    fn recorded(entry: Entry) -> Self {
        Self {
            identity: entry.identity,
            path: entry.path,
            dev: entry.dev,
            ino: entry.ino,
            head_len: entry.head_len,
            head_hash: entry.head_hash,
            head: None,
            acked: AckedRanges::new(entry.offset),
            read_offset: entry.offset,
            last_seen_ms: entry.last_seen_ms,
            input: 0,
            harvester: None,
            size: 0,
            stats: FileStats::default(),
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.harvester.is_some()
    }

    /// Whether a file whose first bytes are `head` continues this one (same first bytes, maybe more).
    pub(crate) fn extended_by(&self, head: &Head) -> bool {
        head.extends(self.head_len, self.head_hash)
    }

    /// What the registry records of this state.
    fn entry(&self) -> Entry {
        let (head_len, head_hash) = match &self.harvester {
            Some(h) => (h.head.len(), h.head.hash()),
            None => (self.head_len, self.head_hash),
        };
        Entry {
            identity: self.identity,
            path: self.path.clone(),
            offset: self.acked.offset(),
            dev: self.dev,
            ino: self.ino,
            head_len,
            head_hash,
            last_seen_ms: self.last_seen_ms,
        }
    }
}

/// Known files by slot, with their identity and open-file indexes.
#[derive(Default)]
pub(crate) struct FileTable {
    files: HashMap<u64, FileState>,
    by_identity: HashMap<FileIdentity, u64>,
    /// (dev, ino) of open files → slot.
    open: HashMap<(u64, u64), u64>,
    next_slot: u64,
    /// Something the registry records changed since it was last written.
    unsaved: bool,
    /// Rotations seen since start, by the path they happened at: a file renamed away from it, or the
    /// file there truncated (copytruncate). Shown beside each file in the status.
    rotations: HashMap<PathBuf, u64>,
}

impl FileTable {
    /// The table of the files a registry recorded.
    pub(crate) fn from_registry(entries: Vec<Entry>) -> Self {
        let mut table = Self::default();
        for entry in entries {
            table.insert(FileState::recorded(entry));
        }
        table.unsaved = false;
        table
    }

    /// Adds a state under a new slot, indexed by its identity.
    pub(crate) fn insert(&mut self, state: FileState) -> u64 {
        self.next_slot += 1;
        let slot = self.next_slot;
        self.by_identity.insert(state.identity, slot);
        self.files.insert(slot, state);
        self.unsaved = true;
        slot
    }

    pub(crate) fn get(&self, slot: u64) -> Option<&FileState> {
        self.files.get(&slot)
    }

    pub(crate) fn get_mut(&mut self, slot: u64) -> Option<&mut FileState> {
        self.files.get_mut(&slot)
    }

    /// The state of a slot known to exist.
    pub(crate) fn state(&self, slot: u64) -> &FileState {
        self.files.get(&slot).expect("slot exists")
    }

    /// The state of a slot known to exist.
    pub(crate) fn state_mut(&mut self, slot: u64) -> &mut FileState {
        self.files.get_mut(&slot).expect("slot exists")
    }

    /// The slot of `identity`, if its state passes `accept`.
    pub(crate) fn find(&self, identity: &FileIdentity, accept: impl Fn(&FileState) -> bool) -> Option<u64> {
        self.by_identity.get(identity).copied().filter(|slot| accept(&self.files[slot]))
    }

    pub(crate) fn slot_of(&self, identity: &FileIdentity) -> Option<u64> {
        self.by_identity.get(identity).copied()
    }

    /// The slot of the open file with this device and inode.
    pub(crate) fn open_slot(&self, dev_ino: (u64, u64)) -> Option<u64> {
        self.open.get(&dev_ino).copied()
    }

    /// Marks `slot` open, reading through `harvester`.
    pub(crate) fn attach(&mut self, slot: u64, harvester: Harvester) {
        let state = self.files.get_mut(&slot).expect("slot exists");
        self.open.insert((state.dev, state.ino), slot);
        state.harvester = Some(harvester);
    }

    /// Marks `slot` closed and returns its harvester, if it was open.
    pub(crate) fn detach(&mut self, slot: u64) -> Option<Harvester> {
        let state = self.files.get_mut(&slot)?;
        let harvester = state.harvester.take()?;
        self.open.remove(&(state.dev, state.ino));
        Some(harvester)
    }

    /// Drops a state and its identity; later acks for it only release queue bytes.
    pub(crate) fn forget(&mut self, slot: u64) {
        if let Some(state) = self.files.remove(&slot) {
            if self.by_identity.get(&state.identity) == Some(&slot) {
                self.by_identity.remove(&state.identity);
            }
            if state.is_open() {
                self.open.remove(&(state.dev, state.ino));
            }
            self.unsaved = true;
        }
    }

    /// Gives `slot` a new identity, forgetting any other state that had it.
    pub(crate) fn rekey(&mut self, slot: u64, identity: FileIdentity) {
        if let Some(other) = self.by_identity.get(&identity).copied() {
            if other != slot {
                self.forget(other);
            }
        }
        let state = self.files.get_mut(&slot).expect("slot exists");
        if self.by_identity.get(&state.identity) == Some(&slot) {
            self.by_identity.remove(&state.identity);
        }
        state.identity = identity;
        self.by_identity.insert(identity, slot);
        self.unsaved = true;
    }

    /// Slots of the open files, in slot order; of input `input` only, if given.
    pub(crate) fn open_slots(&self, input: Option<usize>) -> Vec<u64> {
        let mut slots: Vec<u64> = self
            .files
            .iter()
            .filter(|(_, s)| s.is_open() && input.is_none_or(|i| s.input == i))
            .map(|(k, _)| *k)
            .collect();
        slots.sort_unstable();
        slots
    }

    /// Slots of the closed files not seen by a scan since `cutoff_ms`.
    pub(crate) fn unseen_since(&self, cutoff_ms: i64) -> Vec<u64> {
        self.files.iter().filter(|(_, s)| !s.is_open() && s.last_seen_ms < cutoff_ms).map(|(k, _)| *k).collect()
    }

    /// Whether a file whose first bytes are `head` may be an unfinished copy of a known file (other than
    /// `except`): see [`Head::may_be_copy_of`]. Known first bytes are the harvester's while a file is
    /// open, else those recorded when it closed or was last seen, else (a registry entry not seen since
    /// the start) only their length and hash.
    pub(crate) fn may_be_unfinished_copy(&self, head: &Head, except: Option<u64>) -> bool {
        !head.is_full()
            && self.files.iter().filter(|(slot, _)| Some(**slot) != except).any(|(_, s)| {
                match s.harvester.as_ref().map(|h| &h.head).or(s.head.as_ref()) {
                    Some(known) => head.may_be_copy_of(known),
                    None => head.may_be_copy_of_recorded(s.head_len, s.head_hash),
                }
            })
    }

    /// Reads again, from disk, the first bytes of the open files that have not read a whole fingerprint's
    /// worth yet (a file opened small, whose reading is paused or behind), and gives those that now have
    /// one their fingerprint identity. A file copied from one of them (copytruncate) is then known for a
    /// copy. Unsettled files are left alone. Returns whether any identity changed.
    pub(crate) fn learn_open_heads(&mut self) -> bool {
        let mut learnt = Vec::new();
        for (slot, state) in &mut self.files {
            // An unsettled file may itself be such a copy: it must not take the fingerprint first.
            if let Some(h) = state.harvester.as_mut().filter(|h| !h.head.is_full() && !h.is_unsettled()) {
                if h.learn_head() && h.head.is_full() {
                    learnt.push(*slot);
                }
            }
        }
        let mut changed = false;
        for slot in learnt {
            changed |= self.fingerprint_if_full(slot);
        }
        changed
    }

    /// Gives the open file of `slot` its fingerprint identity once its first bytes are known in full.
    /// Unless another file already has it (this one turned out to be a copy of it after it was taken for
    /// new): taking that identity over would drop the other file's state, and with it what it still has
    /// to read. This one then stays known by device+inode. Returns whether the identity changed.
    pub(crate) fn fingerprint_if_full(&mut self, slot: u64) -> bool {
        let Some(state) = self.files.get(&slot) else { return false };
        let Some(h) = state.harvester.as_ref().filter(|h| h.head.is_full()) else { return false };
        let fingerprint = FileIdentity::Fingerprint { hash: h.head.hash() };
        if state.identity == fingerprint || self.by_identity.get(&fingerprint).is_some_and(|other| *other != slot) {
            return false;
        }
        if matches!(state.identity, FileIdentity::Fingerprint { .. }) {
            return false;
        }
        self.rekey(slot, fingerprint);
        true
    }

    /// Whether a file open under `path` (absolute, as file-system events report it) is open.
    pub(crate) fn is_open_at(&self, path: &Path) -> bool {
        self.files.values().any(|s| {
            s.is_open()
                && (s.path == path || s.path.is_relative() && std::path::absolute(&s.path).is_ok_and(|a| a == path))
        })
    }

    pub(crate) fn states(&self) -> impl Iterator<Item = &FileState> {
        self.files.values()
    }

    pub(crate) fn states_mut(&mut self) -> impl Iterator<Item = (u64, &mut FileState)> {
        self.files.iter_mut().map(|(k, s)| (*k, s))
    }

    /// Number of identities known.
    pub(crate) fn known(&self) -> usize {
        self.by_identity.len()
    }

    /// What the registry records: one entry per known identity, by path and offset.
    pub(crate) fn entries(&self) -> Vec<Entry> {
        let mut entries: Vec<Entry> =
            self.by_identity.values().filter_map(|slot| self.files.get(slot)).map(FileState::entry).collect();
        entries.sort_by(|a, b| a.path.cmp(&b.path).then(a.offset.cmp(&b.offset)));
        entries
    }

    /// Something the registry records changed.
    /// A rotation at `path`: the file read there was renamed away or truncated.
    pub(crate) fn rotated(&mut self, path: &Path) {
        *self.rotations.entry(path.to_path_buf()).or_default() += 1;
    }

    /// Rotations seen at `path` since start.
    pub(crate) fn rotations(&self, path: &Path) -> u64 {
        self.rotations.get(path).copied().unwrap_or(0)
    }

    pub(crate) fn mark_unsaved(&mut self) {
        self.unsaved = true;
    }

    pub(crate) fn is_unsaved(&self) -> bool {
        self.unsaved
    }

    /// The registry was written with [`FileTable::entries`].
    pub(crate) fn mark_saved(&mut self) {
        self.unsaved = false;
    }
}
