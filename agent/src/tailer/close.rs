//! Closing files: those idle for `close_inactive`, deleted files read to their end, and (without sending
//! what they hold) files that were truncated or failed to read. Also the multiline timeout of open files.

use std::time::Instant;

use super::file_output::FileLines;
use super::Tailer;
use crate::sink::Sink;

impl<S: Sink> Tailer<S> {
    /// Multiline timeouts; closes files idle for `close_inactive` and deleted files read to their end.
    pub(super) fn close_idle(&mut self, now: Instant) {
        let unix_ms = self.clock.unix_ms();
        let mut to_close = Vec::new();
        let mut acked_moved = false;
        for (slot, state) in self.files.states_mut() {
            let Some(mut h) = state.harvester.take() else { continue };
            let input = &self.inputs[state.input];
            // The timeout is for an event with no new line since: not for one whose next lines are on disk
            // but unread (reading paused while the queue was full), which would be cut in two.
            let stale = h.multiline.as_ref().is_some_and(|ml| ml.is_stale(now));
            if stale && !h.has_unread() {
                let mut lines = FileLines::new(&mut self.emitter, input, slot, state, &h.path, &h.head, unix_ms);
                if let Some(ml) = h.multiline.as_mut() {
                    ml.flush(|e| lines.emit(e));
                }
                acked_moved |= lines.acked_moved;
                state.read_offset = h.resume_offset();
            }
            if h.idle(now, input.close_inactive) {
                to_close.push(slot);
            }
            state.harvester = Some(h);
        }
        if acked_moved {
            self.files.mark_unsaved();
        }
        for slot in to_close {
            let state = self.files.state(slot);
            let deleted = state.harvester.as_ref().is_some_and(|h| h.deleted);
            tracing::debug!(path = %state.path.display(), deleted, "closing");
            self.close_harvester(slot, true);
        }
    }

    /// Closes the file of `slot`. With `finish`, the partial last line and the pending multiline event are
    /// sent first: only when the file is done (idle for `close_inactive`, or deleted and read to its
    /// end), so that last line really is whole. Otherwise (truncation, read error) they are dropped and
    /// `read_offset` stays at their start, as does the acked prefix, so whatever resumes this identity
    /// (a reopen, the copy of a copytruncate, the next run) reads them whole.
    pub(super) fn close_harvester(&mut self, slot: u64, finish: bool) {
        let Some(mut h) = self.files.detach(slot) else { return };
        let state = self.files.state_mut(slot);
        if finish {
            let input = &self.inputs[state.input];
            let now = self.clock.now();
            let super::harvester::Harvester { reader, multiline, path, head, .. } = &mut h;
            let mut lines = FileLines::new(&mut self.emitter, input, slot, state, path, head, self.clock.unix_ms());
            reader.flush_partial(|line| lines.line(line, multiline.as_mut(), now));
            if let Some(ml) = multiline.as_mut() {
                ml.flush(|e| lines.emit(e));
            }
            if lines.acked_moved {
                self.files.mark_unsaved();
            }
            self.files.state_mut(slot).read_offset = h.reader.position();
        } else {
            state.read_offset = h.resume_offset();
        }
        let state = self.files.state_mut(slot);
        state.head_len = h.head.len();
        state.head_hash = h.head.hash();
        state.head = Some(h.head);
    }
}
