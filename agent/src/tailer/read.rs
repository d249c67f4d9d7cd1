//! The read pass: a bounded amount from every open file per turn, round-robin from where the previous
//! pass stopped, and settling files that may be unfinished copies before they are read.
//!
//! An *unsettled* harvester (a new file that may be an unfinished copy of a known one, see `scan`) is
//! not read. Each turn, while its size changes, [`Tailer::settle`] looks again: it becomes readable
//! once its bytes no longer agree with any known file's first bytes, or once it has not changed for
//! `scan_frequency` (a finished copy of a small file, or a new file that merely starts like another:
//! read, as losing it would be worse than a duplicate). If it reaches the fingerprint size with a known
//! fingerprint, it is a copy: it is forgotten and handed to [`Tailer::consider`], which resumes the
//! known file's offset on it or leaves it alone while the original is still being read.
//!
//! `FileState::read_offset` is kept at the start of the first line not yet handed on (a partial line
//! or a pending multiline event), so a reopen in the same process continues there.

use std::io;
use std::time::Duration;

use super::file_output::FileLines;
use super::harvester::Settling;
use super::Tailer;
use crate::identity::FileIdentity;
use crate::sink::Sink;

/// Bytes read per system call.
pub(super) const READ_CHUNK: usize = 64 * 1024;
/// Bytes read from one file per loop turn, so one busy file cannot starve the others.
pub(super) const READ_PER_TURN: usize = 1 << 20;
/// Bytes read from all files in one loop turn. With many files behind, a turn over all of them at
/// `READ_PER_TURN` each would keep scans, multiline timeouts and the summary waiting for seconds.
const PASS_BYTES: usize = 4 << 20;
/// Longest a turn keeps reading files (checked between chunks), for the same reason.
const PASS_TIME: Duration = Duration::from_millis(200);

/// Where the read pass stands between turns.
pub(super) struct ReadPass {
    /// The last slot a read pass finished with; the next pass starts after it (round-robin).
    cursor: u64,
    /// Read buffer, `READ_CHUNK` bytes.
    buf: Vec<u8>,
}

impl ReadPass {
    pub(super) fn new() -> Self {
        Self { cursor: 0, buf: vec![0; READ_CHUNK] }
    }
}

impl<S: Sink> Tailer<S> {
    /// Reads from the open files, a bounded amount each, round-robin from where the previous pass
    /// stopped. Returns whether anything was read.
    ///
    /// A pass is bounded too (`PASS_BYTES`, `PASS_TIME`): with many files behind, a pass over all of
    /// them at `READ_PER_TURN` each takes seconds, and everything done only between passes — scans,
    /// checkpoints — would lag by as much. Between chunks, acknowledgements are drained (a non-blocking
    /// channel read) and the registry is checkpointed when due, so after a crash the next run resends
    /// at most about `registry_flush` worth of acknowledged events. Draining also frees queue budget.
    pub(super) fn read_all(&mut self) -> bool {
        let mut slots = self.files.open_slots(None);
        // Start after the last file a pass finished, so a pass cut short does not starve later files.
        let first = slots.partition_point(|&s| s <= self.read_pass.cursor);
        slots.rotate_left(first);
        let started = self.clock.now();
        let pass_over = |pass_bytes: usize, tailer: &Self| {
            pass_bytes >= PASS_BYTES || tailer.clock.now().saturating_duration_since(started) >= PASS_TIME
        };
        let mut pass_bytes = 0;
        let mut progressed = false;
        for slot in slots {
            if pass_over(pass_bytes, self) {
                break;
            }
            // An earlier file's truncation may have forgotten or closed this one meanwhile.
            let Some(h) = self.files.get(slot).and_then(|s| s.harvester.as_ref()) else { continue };
            // A truncated file must be noticed before reading on at the old offset, or the new content's
            // bytes would be read as the old file's (fragments of lines, wrong ids).
            let (due, unsettled) = (h.check_due(self.clock.now()), h.is_unsettled());
            if due && self.check_truncated(slot) {
                progressed = true;
                self.read_pass.cursor = slot;
                continue;
            }
            if unsettled && !self.settle(slot) {
                self.read_pass.cursor = slot;
                continue;
            }
            let mut budget = READ_PER_TURN;
            let mut finished = true;
            while budget > 0 && self.emitter.has_room() {
                if pass_over(pass_bytes, self) {
                    // Cut short: the next pass starts with this file again.
                    finished = false;
                    break;
                }
                match self.read_chunk(slot) {
                    Ok(0) => break,
                    Ok(n) => {
                        progressed = true;
                        budget = budget.saturating_sub(n);
                        pass_bytes += n;
                        self.drain_acks();
                        self.checkpointer.maybe_checkpoint(&mut self.files, self.clock.now());
                    }
                    Err(e) => {
                        tracing::warn!(path = %self.files.state(slot).path.display(), error = %e, "read failed; closing the file");
                        self.close_harvester(slot, false);
                        break;
                    }
                }
            }
            if finished {
                self.read_pass.cursor = slot;
            }
        }
        progressed
    }

    /// Reads one chunk of the file of `slot` and sends the lines it completes.
    fn read_chunk(&mut self, slot: u64) -> io::Result<usize> {
        let state = self.files.state_mut(slot);
        let mut h = state.harvester.take().expect("open");
        let n = h.read(&mut self.read_pass.buf);
        let n = match n {
            Ok(0) | Err(_) => {
                state.harvester = Some(h);
                return n;
            }
            Ok(n) => n,
        };
        // Truncated and rewritten between the last check and this read? Then these bytes are the new
        // content at the old offset: not lines of this file. Checked after the read, so no window remains
        // (short of a rewrite with identical first bytes).
        if h.rewritten() {
            state.harvester = Some(h);
            tracing::info!(path = %state.path.display(), "file truncated and rewritten (copytruncate?); reading it from the start");
            self.on_truncated(slot);
            return Ok(0);
        }
        let now = self.clock.now();
        let data = &self.read_pass.buf[..n];
        h.received(data, now);
        state.stats.bytes_read += n as u64;
        let input = &self.inputs[state.input];
        let super::harvester::Harvester { reader, multiline, path, head, .. } = &mut h;
        let mut lines = FileLines::new(&mut self.emitter, input, slot, state, path, head, self.clock.unix_ms());
        reader.feed(data, |line| lines.line(line, multiline.as_mut(), now));
        if lines.acked_moved {
            self.files.mark_unsaved();
        }
        let state = self.files.state_mut(slot);
        state.read_offset = h.resume_offset();
        state.harvester = Some(h);
        // The file just grew past the fingerprint size: from now on it is known by its first bytes.
        self.files.fingerprint_if_full(slot);
        Ok(n)
    }

    /// Whether the unsettled file of `slot` may be read now; see the module doc.
    fn settle(&mut self, slot: u64) -> bool {
        let now = self.clock.now();
        let state = self.files.state_mut(slot);
        let quiet_after = self.inputs[state.input].scan_frequency;
        let h = state.harvester.as_mut().expect("open");
        let Settling::Look { head, quiet } = h.watch_unsettled(now, quiet_after) else { return false };
        let (path, input) = (state.path.clone(), state.input);
        // The original may be open but behind, its first bytes on disk not read yet: compare with those.
        self.files.learn_open_heads();
        if head.is_full() {
            if self.files.slot_of(&FileIdentity::Fingerprint { hash: head.hash() }).is_some() {
                // A copy of a known file after all: let the identity rules decide what to read of it.
                tracing::debug!(path = %path.display(), "new file is a copy of a known file");
                self.files.forget(slot);
                if let Ok(meta) = std::fs::metadata(&path) {
                    let _ = self.consider(input, &path, &meta, false);
                }
                return false;
            }
        } else if !quiet && self.files.may_be_unfinished_copy(&head, Some(slot)) {
            return false;
        }
        tracing::debug!(path = %path.display(), quiet, "new file is not a copy; reading it");
        self.files.state_mut(slot).harvester.as_mut().expect("open").settled();
        true
    }
}
