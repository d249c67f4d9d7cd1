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

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use super::file_table::FileState;
use super::harvester::Harvester;
use super::Tailer;
use crate::config::StartPosition;
use crate::identity::{dev_ino, FileIdentity, Head};
use crate::sink::Sink;

impl<S: Sink> Tailer<S> {
    /// Finds the files of input `i`, opens new ones, resumes known ones, notices truncation and deletion.
    pub(super) fn scan(&mut self, i: usize) {
        // Each file once, however many globs match it: whether it could be read.
        let mut seen: HashMap<(u64, u64), bool> = HashMap::new();
        let mut unreadable = HashMap::new();
        for pattern in self.inputs[i].paths.clone() {
            let entries = match glob::glob(&pattern) {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(pattern, error = %e, "bad glob");
                    continue;
                }
            };
            let mut readable = 0;
            let mut cannot_read = Vec::new();
            for path in entries.flatten() {
                let Some(path_str) = path.to_str() else { continue };
                if self.inputs[i].exclude_files.iter().any(|re| re.is_match(path_str)) {
                    continue;
                }
                let meta = match std::fs::metadata(&path) {
                    Ok(m) if m.is_file() => m,
                    _ => continue,
                };
                let read = match seen.get(&dev_ino(&meta)) {
                    Some(&read) => read,
                    None => {
                        let read = match self.consider(i, &path, &meta, false) {
                            Ok(()) => true,
                            // Gone between the glob and the open: not there, rather than unreadable.
                            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                            Err(e) => {
                                unreadable.insert(path.clone(), e.to_string());
                                false
                            }
                        };
                        seen.insert(dev_ino(&meta), read);
                        read
                    }
                };
                if read {
                    readable += 1;
                } else if let Some(error) = unreadable.get(&path) {
                    cannot_read.push((path_str.to_owned(), error.clone()));
                }
            }
            crate::stalls::glob_matched(&mut self.inputs[i].unmatched, &pattern, readable, &cannot_read);
        }
        self.note_unreadable(i, unreadable);
        self.check_open_files(i);
        if self.first_scan_done {
            self.prune();
        }
    }

    /// Logs the files of input `i` that could not be opened at this scan (`now`: path → error), each when
    /// it starts failing or fails differently, and those that can be read again.
    fn note_unreadable(&mut self, i: usize, now: HashMap<PathBuf, String>) {
        let before = std::mem::take(&mut self.inputs[i].unreadable);
        for (path, error) in &now {
            if before.get(path) != Some(error) {
                tracing::warn!(
                    path = %path.display(),
                    error = %error,
                    "file could not be opened for reading; it is skipped and tried again every scan_frequency \
                     (check its permissions and the agent's open-file limit)"
                );
            }
        }
        for path in before.keys().filter(|path| !now.contains_key(*path)) {
            tracing::info!(path = %path.display(), "file can be opened for reading again, or is gone");
        }
        self.inputs[i].unreadable = now;
    }

    /// Looks at one file of input `i`: resumes it, opens it as new, or leaves it (open already, or a copy
    /// of a file being read). `same_file`: this is the file that was read under `path` until it was
    /// truncated just now, so it is no copy of anything.
    pub(super) fn consider(
        &mut self,
        i: usize,
        path: &Path,
        meta: &std::fs::Metadata,
        same_file: bool,
    ) -> io::Result<()> {
        let now_ms = self.clock.unix_ms();
        if let Some(slot) = self.files.open_slot(dev_ino(meta)) {
            let state = self.files.state_mut(slot);
            state.last_seen_ms = now_ms;
            if state.path != path {
                let old = std::mem::replace(&mut state.path, path.to_path_buf());
                self.files.rotated(&old);
                self.files.mark_unsaved();
            }
            return Ok(());
        }
        let file = File::open(path)?;
        let fmeta = file.metadata()?;
        let (dev, ino) = dev_ino(&fmeta);
        let size = fmeta.len();
        let head = Head::read(&file)?;
        let candidate = FileIdentity::of(&head, dev, ino);

        let lookup = |files: &super::file_table::FileTable| {
            files.find(&candidate, |s| s.extended_by(&head)).or_else(|| {
                // Known while small (by device+inode), grown past the fingerprint size since.
                head.is_full()
                    .then(|| files.find(&FileIdentity::DevInode { dev, ino }, |s| s.extended_by(&head)))
                    .flatten()
            })
        };
        let mut found = lookup(&self.files);
        if found.is_none() && !same_file && self.files.learn_open_heads() {
            // An open file's bytes on disk were ahead of what it has read (reading paused or behind): this
            // file may be a copy of it, known by its fingerprint only now.
            found = lookup(&self.files);
        }
        let mut same_file = same_file;

        if let Some(slot) = found {
            let state = self.files.state_mut(slot);
            state.last_seen_ms = now_ms;
            state.size = size;
            if state.is_open() {
                // Same first bytes as a file being read: a copy (copytruncate). Reading it too would
                // send its lines twice.
                return Ok(());
            }
            if state.read_offset > size && (state.dev, state.ino) != (dev, ino) && truncated_in_place(state) {
                // The file this state was read from was truncated where it is (copytruncate), and this
                // other file with its first bytes is shorter than what was read of it: a copy made before
                // the last lines read were written (lines written between logrotate's copy and its
                // truncate). Every line in it was read from the original; reading it from the start would
                // send them all again.
                tracing::debug!(path = %path.display(), offset = state.read_offset, size, "copy of a truncated file, shorter than what was read of it; nothing to read");
                return Ok(());
            }
            if state.read_offset > size {
                tracing::info!(path = %path.display(), offset = state.read_offset, size, "file is shorter than the recorded offset (truncated); reading it from the start");
                same_file |= (state.dev, state.ino) == (dev, ino);
                self.files.forget(slot);
            } else {
                if state.path != path || state.dev != dev || state.ino != ino {
                    // The same file under a new name was renamed away (a rotation while it was closed or
                    // the agent down); another file with its bytes is a copy (copytruncate's `.1`), whose
                    // truncation was counted already.
                    let renamed = (state.dev, state.ino) == (dev, ino);
                    let old = std::mem::replace(&mut state.path, path.to_path_buf());
                    (state.dev, state.ino) = (dev, ino);
                    if renamed && old != path {
                        self.files.rotated(&old);
                    }
                    self.files.mark_unsaved();
                }
                if self.files.state(slot).identity != candidate {
                    self.files.rekey(slot, candidate);
                }
                let state = self.files.state_mut(slot);
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
        if let Some(old) = self.files.slot_of(&candidate) {
            tracing::info!(path = %path.display(), identity = %candidate, "identity reused by a different file (inode reuse or rewritten file); reading it from the start");
            self.files.forget(old);
        }
        let unsettled = !same_file && self.files.may_be_unfinished_copy(&head, None);
        let offset = match (self.first_scan_done, self.inputs[i].start_position) {
            (false, StartPosition::End) => size,
            _ => 0,
        };
        let mut state = FileState::new(candidate, path, (dev, ino), &head, offset, i, now_ms);
        state.size = size;
        let slot = self.files.insert(state);
        tracing::info!(path = %path.display(), identity = %candidate, offset, unsettled, "harvesting new file");
        self.open_harvester(slot, file, head, offset, unsettled)
    }

    /// Opens `file` for `slot` at `offset`. `unsettled`: it may be an unfinished copy; see `read`.
    fn open_harvester(&mut self, slot: u64, file: File, head: Head, offset: u64, unsettled: bool) -> io::Result<()> {
        let state = self.files.state(slot);
        let input = &self.inputs[state.input];
        let harvester = Harvester::open(file, &state.path, head, offset, input, unsettled, self.clock.now())?;
        tracing::debug!(path = %state.path.display(), offset, "opened");
        self.files.attach(slot, harvester);
        Ok(())
    }

    /// Truncation and deletion checks for the open files of input `i`, through their handles.
    fn check_open_files(&mut self, i: usize) {
        for slot in self.files.open_slots(Some(i)) {
            self.check_truncated(slot);
        }
    }

    /// Whether the open file of `slot` was truncated (it is then restarted as a new state at offset 0).
    /// Also refreshes the size and the deleted flag.
    pub(super) fn check_truncated(&mut self, slot: u64) -> bool {
        let now = self.clock.now();
        let state = self.files.state_mut(slot);
        let h = state.harvester.as_mut().expect("open");
        let Some(checked) = h.check(now) else { return false };
        state.size = checked.size;
        if checked.truncated {
            tracing::info!(path = %state.path.display(), offset = h.reader.position(), size = checked.size, "file truncated (copytruncate?); reading it from the start");
            self.on_truncated(slot);
        }
        checked.truncated
    }

    /// The open file `slot` was truncated: close the old content, start a new state at offset 0.
    ///
    /// The buffered partial line (and pending multiline event) is *not* sent: its rest was not read,
    /// so sending it would split one line into two broken events. The state's resume offset and acked
    /// prefix stay at the start of that line, so the copy (copytruncate's `.1`, matched by fingerprint)
    /// is resumed there and the whole line is read from it.
    pub(super) fn on_truncated(&mut self, slot: u64) {
        self.close_harvester(slot, false);
        let state = self.files.state(slot);
        let path = state.path.clone();
        let input = state.input;
        let fingerprinted = matches!(state.identity, FileIdentity::Fingerprint { .. });
        self.files.rotated(&path);
        // Keep a fingerprinted identity: a copy of the old content (copytruncate's `.1`) then resumes where
        // reading stopped. A device+inode identity now names the new content, so the old state goes.
        if !fingerprinted {
            self.files.forget(slot);
        }
        // The copy (if this was copytruncate) holds the rest of the old content; a scan resumes it.
        self.scan_soon(input, self.clock.now());
        if let Ok(meta) = std::fs::metadata(&path) {
            let _ = self.consider(input, &path, &meta, true);
        }
    }

    /// Forgets files not seen by any scan for `clean_removed`.
    pub(super) fn prune(&mut self) {
        let cutoff = self.clock.unix_ms() - self.settings.clean_removed.as_millis() as i64;
        for slot in self.files.unseen_since(cutoff) {
            tracing::debug!(path = %self.files.state(slot).path.display(), "forgetting file not seen for clean_removed");
            self.files.forget(slot);
        }
    }
}

/// Whether the file `state` was read from is still where it was read, with other first bytes: it was
/// truncated (and maybe written again) in place, as copytruncate does, rather than replaced or deleted.
fn truncated_in_place(state: &FileState) -> bool {
    let Ok(file) = File::open(&state.path) else { return false };
    let same_file = file.metadata().is_ok_and(|m| dev_ino(&m) == (state.dev, state.ino));
    same_file && Head::read(&file).is_ok_and(|head| !head.extends(state.head_len, state.head_hash))
}
