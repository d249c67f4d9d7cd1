//! Reading open files: the per-file [`Harvester`] (handle, line reader, multiline state), the bounded
//! read of every open file per loop turn, and turning lines into events through [`EmitCtx`] (line
//! filters, envelope, key, hand-off to the sink). Also closing files: idle, deleted, or on error.
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

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::time::Instant;

use super::{unix_ms, FileInput, FileStats, Tailer, PASS_BYTES, PASS_TIME, READ_PER_TURN, TRUNCATION_CHECK};
use crate::envelope::{timestamp_now, Encoder, EventParts, KeyField};
use crate::identity::{event_id, FileIdentity, Head};
use crate::line_reader::{LineReader, RawLine};
use crate::multiline::Multiline;
use crate::registry::AckedRanges;
use crate::sink::{Ack, Record, Sink};

/// Builds an [`EmitCtx`] from disjoint borrows of the tailer and one file's state. A macro rather than a
/// method because the borrow checker must see each field borrowed separately while `state` is itself
/// borrowed from `self.files`.
macro_rules! emit_ctx {
    ($tailer:ident, $slot:expr, $state:ident, $input:expr, $path:expr, $head:expr, $timestamp:expr) => {
        EmitCtx {
            slot: $slot,
            input: $input,
            state_acked: &mut $state.acked,
            stats: &mut $state.stats,
            sink: &mut $tailer.sink,
            encoder: &mut $tailer.encoder,
            buf: &mut $tailer.buf,
            in_flight: &mut $tailer.in_flight,
            key: $tailer.key.as_ref(),
            timestamp: $timestamp,
            path: $path,
            head: $head,
            events: &mut $tailer.totals.events_sent,
            dirty: &mut $tailer.dirty,
        }
    };
}

/// An open file being read.
pub(super) struct Harvester {
    pub(super) file: File,
    /// `log.file.path` of its events: the path it was opened under (as Filebeat does).
    pub(super) path: String,
    pub(super) head: Head,
    pub(super) reader: LineReader,
    pub(super) multiline: Option<Multiline>,
    pub(super) last_data: Instant,
    pub(super) at_eof: bool,
    pub(super) deleted: bool,
    pub(super) last_check: Instant,
    /// Set while the file may be an unfinished copy of a known file: it is not read.
    pub(super) unsettled: Option<Unsettled>,
}

/// The size of an unsettled file when last looked at, and since when it has had that size.
pub(super) struct Unsettled {
    size: u64,
    since: Instant,
}

impl<S: Sink> Tailer<S> {
    /// Opens `file` for `slot` at `offset`. `unsettled`: it may be an unfinished copy; see the module doc.
    pub(super) fn open_harvester(
        &mut self,
        slot: u64,
        mut file: File,
        head: Head,
        offset: u64,
        unsettled: bool,
    ) -> io::Result<()> {
        file.seek(SeekFrom::Start(offset))?;
        let now = Instant::now();
        // The size the decision was made on is the head's (all of the file, as it is short): bytes
        // written since are looked at by the first `settle`.
        let unsettled = unsettled.then(|| Unsettled { size: head.len() as u64, since: now });
        let state = self.files.get_mut(&slot).expect("slot exists");
        let input = &self.inputs[state.input];
        let multiline = input
            .multiline
            .as_ref()
            .map(|m| Multiline::new(m, input.max_line_bytes).expect("validated multiline pattern"));
        self.open.insert((state.dev, state.ino), slot);
        tracing::debug!(path = %state.path.display(), offset, "opened");
        state.harvester = Some(Harvester {
            file,
            path: state.path.to_string_lossy().into_owned(),
            head,
            reader: LineReader::new(input.max_line_bytes, offset),
            multiline,
            last_data: now,
            at_eof: false,
            deleted: false,
            last_check: now,
            unsettled,
        });
        Ok(())
    }

    /// Whether the unsettled file of `slot` may be read now; see the module doc. Looks again only when
    /// its size changed, or when it has kept its size for `scan_frequency`.
    fn settle(&mut self, slot: u64) -> bool {
        let now = Instant::now();
        let state = self.files.get_mut(&slot).expect("slot exists");
        let quiet_after = self.inputs[state.input].scan_frequency;
        let h = state.harvester.as_mut().expect("open");
        let Some(u) = h.unsettled.as_mut() else { return true };
        let Ok(meta) = h.file.metadata() else { return false };
        let size = meta.len();
        let changed = size != u.size;
        if changed {
            (u.size, u.since) = (size, now);
            (h.last_data, h.at_eof) = (now, false);
        } else {
            // Idle as far as `close_inactive` is concerned.
            h.at_eof = true;
        }
        let quiet = now.saturating_duration_since(u.since) >= quiet_after;
        // An empty file tells nothing yet (and holds nothing to read).
        if size == 0 || !(changed || quiet) {
            return false;
        }
        let Ok(head) = Head::read(&h.file) else { return false };
        if head.is_full() {
            if self.by_identity.contains_key(&FileIdentity::Fingerprint { hash: head.hash() }) {
                // A copy of a known file after all: let the identity rules decide what to read of it.
                let (path, input) = (state.path.clone(), state.input);
                tracing::debug!(path = %path.display(), "new file is a copy of a known file");
                self.forget(slot);
                if let Ok(meta) = std::fs::metadata(&path) {
                    let _ = self.consider(input, &path, &meta, unix_ms(), false);
                }
                return false;
            }
        } else if !quiet && self.may_be_unfinished_copy(&head, Some(slot)) {
            return false;
        }
        let state = self.files.get_mut(&slot).expect("slot exists");
        tracing::debug!(path = %state.path.display(), size, quiet, "new file is not a copy; reading it");
        let h = state.harvester.as_mut().expect("open");
        (h.unsettled, h.at_eof) = (None, false);
        true
    }

    /// Reads from the open files, a bounded amount each, round-robin from where the previous pass
    /// stopped. Returns whether anything was read.
    ///
    /// A pass is bounded too (`PASS_BYTES`, `PASS_TIME`): with many files behind, a pass over all of
    /// them at `READ_PER_TURN` each takes seconds, and everything done only between passes — scans,
    /// checkpoints — would lag by as much. Between chunks, acknowledgements are drained (a non-blocking
    /// channel read) and the registry is checkpointed when due, so after a crash the next run resends
    /// at most about `registry_flush` worth of acknowledged events. Draining also frees queue budget.
    pub(super) fn read_all(&mut self) -> bool {
        let mut slots: Vec<u64> = self.files.iter().filter(|(_, s)| s.harvester.is_some()).map(|(k, _)| *k).collect();
        slots.sort_unstable();
        // Start after the last file a pass finished, so a pass cut short does not starve later files.
        let first = slots.partition_point(|&s| s <= self.read_cursor);
        slots.rotate_left(first);
        let started = Instant::now();
        let mut pass_bytes = 0;
        let mut progressed = false;
        for slot in slots {
            if pass_bytes >= PASS_BYTES || started.elapsed() >= PASS_TIME {
                break;
            }
            // An earlier file's truncation may have forgotten or closed this one meanwhile.
            if self.files.get(&slot).is_none_or(|s| s.harvester.is_none()) {
                continue;
            }
            // A truncated file must be noticed before reading on at the old offset, or the new content's
            // bytes would be read as the old file's (fragments of lines, wrong ids). Checked whenever the
            // file was at its end (that is when copytruncate happens under a tailer keeping up), and
            // at least every TRUNCATION_CHECK while it is read continuously.
            let due = self.files[&slot]
                .harvester
                .as_ref()
                .is_some_and(|h| h.at_eof || h.last_check.elapsed() >= TRUNCATION_CHECK);
            if due && self.check_truncated(slot) {
                progressed = true;
                self.read_cursor = slot;
                continue;
            }
            let unsettled = self.files[&slot].harvester.as_ref().is_some_and(|h| h.unsettled.is_some());
            if unsettled && !self.settle(slot) {
                self.read_cursor = slot;
                continue;
            }
            let mut budget = READ_PER_TURN;
            let mut finished = true;
            while budget > 0 && self.in_flight < self.queue_max_bytes {
                if pass_bytes >= PASS_BYTES || started.elapsed() >= PASS_TIME {
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
                        self.maybe_checkpoint();
                    }
                    Err(e) => {
                        tracing::warn!(path = %self.files[&slot].path.display(), error = %e, "read failed; closing the file");
                        self.close_harvester(slot, false);
                        break;
                    }
                }
            }
            if finished {
                self.read_cursor = slot;
            }
        }
        progressed
    }

    fn read_chunk(&mut self, slot: u64) -> io::Result<usize> {
        let state = self.files.get_mut(&slot).expect("slot exists");
        let mut h = state.harvester.take().expect("open");
        let n = loop {
            match h.file.read(&mut self.read_buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                state.harvester = Some(h);
                return Err(e);
            }
        };
        if n == 0 {
            h.at_eof = true;
            state.harvester = Some(h);
            return Ok(0);
        }
        // Truncated and rewritten between the last check and this read? Then these bytes are the new
        // content at the old offset: not lines of this file. Checked after the read, so no window remains
        // (short of a rewrite with identical first bytes).
        if !h.head.is_empty() && Head::read(&h.file).map_or(true, |now| !now.bytes().starts_with(h.head.bytes())) {
            state.harvester = Some(h);
            tracing::info!(path = %state.path.display(), "file truncated and rewritten (copytruncate?); reading it from the start");
            self.on_truncated(slot);
            return Ok(0);
        }
        let now = Instant::now();
        h.at_eof = false;
        h.last_data = now;
        let data = &self.read_buf[..n];
        h.head.observe(h.reader.position(), data);
        state.stats.bytes_read += n as u64;
        let timestamp = timestamp_now();
        let Harvester { reader, multiline, path, head, .. } = &mut h;
        let mut ctx = emit_ctx!(self, slot, state, &self.inputs[state.input], path, head, &timestamp);
        reader.feed(data, |line| ctx.line(line, multiline.as_mut(), now));
        state.read_offset =
            h.reader.line_start().min(h.multiline.as_ref().and_then(|m| m.pending_start()).unwrap_or(u64::MAX));
        let upgrade = h.head.is_full() && !matches!(state.identity, FileIdentity::Fingerprint { .. });
        let fingerprint = FileIdentity::Fingerprint { hash: h.head.hash() };
        state.harvester = Some(h);
        // The file just grew past the fingerprint size: from now on it is known by its first bytes. Unless
        // another file already is (this one turned out to be a copy of it after it was taken for new):
        // taking that identity over would drop the other file's state, and with it what it still has to
        // read. This one stays known by device+inode.
        if upgrade && self.by_identity.get(&fingerprint).is_none_or(|&other| other == slot) {
            self.rekey(slot, fingerprint);
        }
        Ok(n)
    }

    /// Multiline timeouts; closes files idle for `close_inactive` and deleted files read to their end.
    pub(super) fn close_idle(&mut self, now: Instant) {
        let mut to_close = Vec::new();
        for (&slot, state) in self.files.iter_mut() {
            let Some(h) = state.harvester.as_mut() else { continue };
            let input = &self.inputs[state.input];
            if let Some(ml) = h.multiline.as_mut() {
                if ml.has_pending() {
                    let timestamp = timestamp_now();
                    let mut ctx = emit_ctx!(self, slot, state, input, &h.path, &h.head, &timestamp);
                    ml.flush_if_stale(now, |e| ctx.emit(e));
                    state.read_offset = h.reader.line_start().min(ml.pending_start().unwrap_or(u64::MAX));
                }
            }
            if h.at_eof && (h.deleted || now.saturating_duration_since(h.last_data) >= input.close_inactive) {
                to_close.push(slot);
            }
        }
        for slot in to_close {
            let deleted = self.files[&slot].harvester.as_ref().is_some_and(|h| h.deleted);
            tracing::debug!(path = %self.files[&slot].path.display(), deleted, "closing");
            self.close_harvester(slot, true);
        }
    }

    /// Closes the file of `slot`. With `finish`, the partial last line and the pending multiline event are
    /// sent first: only when the file is done (idle for `close_inactive`, or deleted and read to its
    /// end), so that last line really is whole. Otherwise (truncation, read error) they are dropped and
    /// `read_offset` stays at their start, as does the acked prefix, so whatever resumes this identity
    /// (a reopen, the copy of a copytruncate, the next run) reads them whole.
    pub(super) fn close_harvester(&mut self, slot: u64, finish: bool) {
        let state = self.files.get_mut(&slot).expect("slot exists");
        let Some(mut h) = state.harvester.take() else { return };
        self.open.remove(&(state.dev, state.ino));
        if finish {
            let timestamp = timestamp_now();
            let Harvester { reader, multiline, path, head, .. } = &mut h;
            let mut ctx = emit_ctx!(self, slot, state, &self.inputs[state.input], path, head, &timestamp);
            let now = Instant::now();
            reader.flush_partial(|line| ctx.line(line, multiline.as_mut(), now));
            if let Some(ml) = multiline.as_mut() {
                ml.flush(|e| ctx.emit(e));
            }
            state.read_offset = h.reader.position();
        } else {
            state.read_offset =
                h.reader.line_start().min(h.multiline.as_ref().and_then(|m| m.pending_start()).unwrap_or(u64::MAX));
        }
        state.head_len = h.head.len();
        state.head_hash = h.head.hash();
        state.head = Some(h.head);
    }
}

/// What emitting one event needs, borrowed from the tailer and the file's state.
struct EmitCtx<'a, S: Sink> {
    slot: u64,
    input: &'a FileInput,
    state_acked: &'a mut AckedRanges,
    stats: &'a mut FileStats,
    sink: &'a mut S,
    encoder: &'a mut Encoder,
    buf: &'a mut Vec<u8>,
    in_flight: &'a mut usize,
    key: Option<&'a KeyField>,
    timestamp: &'a str,
    path: &'a str,
    head: &'a Head,
    events: &'a mut u64,
    dirty: &'a mut bool,
}

impl<S: Sink> EmitCtx<'_, S> {
    /// One line read from the file: counted, then joined by multiline or emitted as it is.
    fn line(&mut self, line: RawLine<'_>, multiline: Option<&mut Multiline>, now: Instant) {
        self.stats.lines_read += 1;
        match multiline {
            Some(ml) => ml.push(line, now, |event| self.emit(event)),
            None => self.emit(line),
        }
    }

    fn emit(&mut self, event: RawLine<'_>) {
        let input = self.input;
        let keep = (input.include_lines.is_empty() || input.include_lines.iter().any(|re| re.is_match(event.bytes)))
            && !input.exclude_lines.iter().any(|re| re.is_match(event.bytes));
        if !keep {
            // Filtered events count as done, or the registry could never move past them.
            if self.state_acked.ack(event.start, event.end) {
                *self.dirty = true;
            }
            return;
        }
        let id = event_id(&input.meta.host, self.head.id_basis(event.end), event.start);
        let parts = EventParts {
            timestamp: self.timestamp,
            message: event.bytes,
            file: Some((self.path, event.start)),
            id: &id,
            truncated: event.truncated,
        };
        let cut_before = self.encoder.message_truncated;
        self.encoder.encode(&input.meta, &parts, self.buf);
        if self.encoder.message_truncated > cut_before {
            self.stats.events_too_large += 1;
        }
        let key = self.key.and_then(|k| k.value(&input.meta, &parts));
        let ack = Ack { source: self.slot, start: event.start, end: event.end, bytes: self.buf.len() };
        self.sink.send(Record { topic: &input.topic, key: key.as_deref(), payload: self.buf, ack });
        *self.in_flight += self.buf.len();
        *self.events += 1;
        self.stats.events_sent += 1;
        if event.truncated {
            self.stats.events_truncated += 1;
        }
    }
}
