//! Discovery: matching the globs of an input, recognising each file by identity (not path), and the
//! state changes that follow from what a scan finds — a new file, a renamed one (rotation), a copy of a
//! file being read (copytruncate), a truncated or rewritten file, a file gone for `clean_removed`.
//!
//! Truncation is also checked through the open handle (`check_truncated`), which the harvester calls
//! before reading on at an old offset.
//!
//! A new file too short to fingerprint whose bytes agree with the first bytes of a known file may be a
//! copy of it that is still being written (copytruncate's `cp` creates the file empty, then fills it).
//! It is opened *unsettled* (see `harvester::settle`): not read until it is known not to be a copy.

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Instant;

use super::{unix_ms, FileState, FileStats, Tailer};
use crate::config::StartPosition;
use crate::identity::{dev_ino, FileIdentity, Head};
use crate::registry::AckedRanges;
use crate::sink::Sink;

impl<S: Sink> Tailer<S> {
    /// Finds the files of input `i`, opens new ones, resumes known ones, notices truncation and deletion.
    pub(super) fn scan(&mut self, i: usize) {
        let now_ms = unix_ms();
        let mut seen = HashSet::new();
        for pattern in self.inputs[i].paths.clone() {
            let entries = match glob::glob(&pattern) {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(pattern, error = %e, "bad glob");
                    continue;
                }
            };
            let mut matched = 0;
            for path in entries.flatten() {
                let Some(path_str) = path.to_str() else { continue };
                if self.inputs[i].exclude_files.iter().any(|re| re.is_match(path_str)) {
                    continue;
                }
                let meta = match std::fs::metadata(&path) {
                    Ok(m) if m.is_file() => m,
                    _ => continue,
                };
                matched += 1;
                if !seen.insert(dev_ino(&meta)) {
                    continue;
                }
                if let Err(e) = self.consider(i, &path, &meta, now_ms, false) {
                    tracing::debug!(path = %path.display(), error = %e, "cannot open file");
                }
            }
            crate::stalls::glob_matched(&mut self.inputs[i].unmatched, &pattern, matched);
        }
        self.check_open_files(i);
        if self.first_scan_done {
            self.prune();
        }
    }

    /// Looks at one file of input `i`: resumes it, opens it as new, or leaves it (open already, or a copy
    /// of a file being read). `same_file`: this is the file that was read under `path` until it was
    /// truncated just now, so it is no copy of anything.
    pub(super) fn consider(
        &mut self,
        i: usize,
        path: &Path,
        meta: &std::fs::Metadata,
        now_ms: i64,
        same_file: bool,
    ) -> io::Result<()> {
        let (dev, ino) = dev_ino(meta);
        if let Some(&slot) = self.open.get(&(dev, ino)) {
            let state = self.files.get_mut(&slot).expect("open slot exists");
            state.last_seen_ms = now_ms;
            if state.path != path {
                state.path = path.to_path_buf();
                self.dirty = true;
            }
            return Ok(());
        }
        let file = File::open(path)?;
        let fmeta = file.metadata()?;
        let (dev, ino) = dev_ino(&fmeta);
        let size = fmeta.len();
        let head = Head::read(&file)?;
        let candidate = FileIdentity::of(&head, dev, ino);

        let matches = |s: &FileState| head.extends(s.head_len, s.head_hash);
        let mut found = self.by_identity.get(&candidate).copied().filter(|slot| matches(&self.files[slot]));
        let mut same_file = same_file;
        if found.is_none() && head.is_full() {
            // Known while small (by device+inode), grown past the fingerprint size since.
            let small = FileIdentity::DevInode { dev, ino };
            found = self.by_identity.get(&small).copied().filter(|slot| matches(&self.files[slot]));
        }

        if let Some(slot) = found {
            let state = self.files.get_mut(&slot).expect("indexed slot exists");
            state.last_seen_ms = now_ms;
            state.size = size;
            if state.harvester.is_some() {
                // Same first bytes as a file being read: a copy (copytruncate). Reading it too would
                // send its lines twice.
                return Ok(());
            }
            if state.read_offset > size {
                tracing::info!(path = %path.display(), offset = state.read_offset, size, "file is shorter than the recorded offset (truncated); reading it from the start");
                same_file |= (state.dev, state.ino) == (dev, ino);
                self.forget(slot);
            } else {
                if state.path != path || state.dev != dev || state.ino != ino {
                    state.path = path.to_path_buf();
                    (state.dev, state.ino) = (dev, ino);
                    self.dirty = true;
                }
                if state.identity != candidate {
                    self.rekey(slot, candidate);
                }
                let state = self.files.get_mut(&slot).expect("slot exists");
                state.input = i;
                if size > state.read_offset {
                    let offset = state.read_offset;
                    self.open_harvester(slot, file, head, offset, false)?;
                } else {
                    state.head = Some(head);
                }
                return Ok(());
            }
        }

        // A file never seen, or one whose recorded identity no longer matches its bytes.
        if let Some(old) = self.by_identity.get(&candidate).copied() {
            tracing::info!(path = %path.display(), identity = %candidate, "identity reused by a different file (inode reuse or rewritten file); reading it from the start");
            self.forget(old);
        }
        let unsettled = !same_file && self.may_be_unfinished_copy(&head, None);
        let offset = match (self.first_scan_done, self.inputs[i].start_position) {
            (false, StartPosition::End) => size,
            _ => 0,
        };
        let slot = self.new_slot();
        self.by_identity.insert(candidate, slot);
        self.files.insert(
            slot,
            FileState {
                identity: candidate,
                path: path.to_path_buf(),
                dev,
                ino,
                head_len: head.len(),
                head_hash: head.hash(),
                head: None,
                acked: AckedRanges::new(offset),
                read_offset: offset,
                last_seen_ms: now_ms,
                input: i,
                harvester: None,
                size,
                stats: FileStats::default(),
            },
        );
        self.dirty = true;
        tracing::info!(path = %path.display(), identity = %candidate, offset, unsettled, "harvesting new file");
        self.open_harvester(slot, file, head, offset, unsettled)
    }

    /// Whether a file whose first bytes are `head` may be an unfinished copy of a known file (other than
    /// `except`): see [`Head::may_be_copy_of`]. Known first bytes are the harvester's while a file is
    /// open, else those recorded when it closed or was last seen, else (a registry entry not seen since
    /// the start) only their length and hash.
    pub(super) fn may_be_unfinished_copy(&self, head: &Head, except: Option<u64>) -> bool {
        !head.is_full()
            && self.files.iter().filter(|(slot, _)| Some(**slot) != except).any(|(_, s)| {
                match s.harvester.as_ref().map(|h| &h.head).or(s.head.as_ref()) {
                    Some(known) => head.may_be_copy_of(known),
                    None => head.may_be_copy_of_recorded(s.head_len, s.head_hash),
                }
            })
    }

    /// Truncation and deletion checks for the open files of input `i`, through their handles.
    fn check_open_files(&mut self, i: usize) {
        let slots: Vec<u64> =
            self.files.iter().filter(|(_, s)| s.input == i && s.harvester.is_some()).map(|(k, _)| *k).collect();
        for slot in slots {
            self.check_truncated(slot);
        }
    }

    /// Whether the open file of `slot` was truncated (it is then restarted as a new state at offset 0).
    /// Also refreshes the size and the deleted flag.
    pub(super) fn check_truncated(&mut self, slot: u64) -> bool {
        let state = self.files.get_mut(&slot).expect("slot exists");
        let h = state.harvester.as_mut().expect("open");
        h.last_check = Instant::now();
        let Ok(meta) = h.file.metadata() else { return false };
        state.size = meta.len();
        h.deleted = meta.nlink() == 0;
        let shrunk = meta.len() < h.reader.position();
        let rewritten = !shrunk && {
            let now = Head::read(&h.file).unwrap_or_default();
            now.len() < h.head.len() || now.bytes()[..h.head.len()] != *h.head.bytes()
        };
        if shrunk || rewritten {
            tracing::info!(path = %state.path.display(), offset = h.reader.position(), size = meta.len(), "file truncated (copytruncate?); reading it from the start");
            self.on_truncated(slot);
        }
        shrunk || rewritten
    }

    /// The open file `slot` was truncated: close the old content, start a new state at offset 0.
    ///
    /// The buffered partial line (and pending multiline event) is *not* sent: its rest was not read,
    /// so sending it would split one line into two broken events. The state's resume offset and acked
    /// prefix stay at the start of that line, so the copy (copytruncate's `.1`, matched by fingerprint)
    /// is resumed there and the whole line is read from it.
    pub(super) fn on_truncated(&mut self, slot: u64) {
        self.close_harvester(slot, false);
        let state = self.files.get_mut(&slot).expect("slot exists");
        let path = state.path.clone();
        let input = state.input;
        // Keep a fingerprinted identity: a copy of the old content (copytruncate's `.1`) then resumes where
        // reading stopped. A device+inode identity now names the new content, so the old state goes.
        if !matches!(state.identity, FileIdentity::Fingerprint { .. }) {
            self.forget(slot);
        }
        // The copy (if this was copytruncate) holds the rest of the old content; a scan resumes it.
        self.scan_soon(input, Instant::now());
        if let Ok(meta) = std::fs::metadata(&path) {
            let _ = self.consider(input, &path, &meta, unix_ms(), true);
        }
    }

    /// Drops a state and its identity; later acks for it only release queue bytes.
    pub(super) fn forget(&mut self, slot: u64) {
        if let Some(state) = self.files.remove(&slot) {
            if self.by_identity.get(&state.identity) == Some(&slot) {
                self.by_identity.remove(&state.identity);
            }
            if state.harvester.is_some() {
                self.open.remove(&(state.dev, state.ino));
            }
            self.dirty = true;
        }
    }

    pub(super) fn rekey(&mut self, slot: u64, identity: FileIdentity) {
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
        self.dirty = true;
    }

    /// Forgets files not seen by any scan for `clean_removed`.
    pub(super) fn prune(&mut self) {
        let cutoff = unix_ms() - self.clean_removed.as_millis() as i64;
        let stale: Vec<u64> = self
            .files
            .iter()
            .filter(|(_, s)| s.harvester.is_none() && s.last_seen_ms < cutoff)
            .map(|(k, _)| *k)
            .collect();
        for slot in stale {
            tracing::debug!(path = %self.files[&slot].path.display(), "forgetting file not seen for clean_removed");
            self.forget(slot);
        }
    }
}
