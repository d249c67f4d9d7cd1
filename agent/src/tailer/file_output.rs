//! What a file's lines become: counted, joined by multiline, filtered by `include_lines` and
//! `exclude_lines`, given their `event.id` (from the file and where the event starts and ends), and sent
//! through the [`Emitter`] with an ack for their byte range. A filtered event counts as acknowledged at
//! once, or the registry could never move past it.

use super::emitter::{Emitter, Origin};
use super::file_table::FileState;
use super::input::FileInput;
use crate::envelope::{timestamp_at, EventParts};
use crate::identity::{event_id, Head, FINGERPRINT_BYTES};
use crate::line_reader::RawLine;
use crate::multiline::Multiline;
use crate::sink::Sink;
use std::time::Instant;

/// Sends the events of one open file: its slot and state, and the path and first bytes of its harvester.
pub(crate) struct FileLines<'a, S: Sink> {
    emitter: &'a mut Emitter<S>,
    input: &'a FileInput,
    slot: u64,
    state: &'a mut FileState,
    path: &'a str,
    head: &'a Head,
    timestamp: String,
    /// `head.hash()` once the head is full: the `id_basis` of every event ending past the first KiB.
    /// Hashed once per chunk rather than 1 KiB per line, which was most of the agent's CPU per line.
    full_basis: Option<u64>,
    /// A filtered event moved the acknowledged prefix: the registry has something new to record.
    pub(crate) acked_moved: bool,
}

impl<'a, S: Sink> FileLines<'a, S> {
    /// Events of the file in `slot` read at `unix_ms`, whose harvester has `path` and `head`.
    pub(crate) fn new(
        emitter: &'a mut Emitter<S>,
        input: &'a FileInput,
        slot: u64,
        state: &'a mut FileState,
        path: &'a str,
        head: &'a Head,
        unix_ms: i64,
    ) -> Self {
        let full_basis = head.is_full().then(|| head.hash());
        let timestamp = timestamp_at(unix_ms);
        Self { emitter, input, slot, state, path, head, timestamp, full_basis, acked_moved: false }
    }

    /// One line read from the file at `now`: counted, then joined by multiline or emitted as it is.
    pub(crate) fn line(&mut self, line: RawLine<'_>, multiline: Option<&mut Multiline>, now: Instant) {
        self.state.stats.lines_read += 1;
        match multiline {
            Some(ml) => ml.push(line, now, |event| self.emit(event)),
            None => self.emit(line),
        }
    }

    /// One event (a line, or lines joined by multiline).
    pub(crate) fn emit(&mut self, event: RawLine<'_>) {
        let input = self.input;
        let keep = (input.include_lines.is_empty() || input.include_lines.iter().any(|re| re.is_match(event.bytes)))
            && !input.exclude_lines.iter().any(|re| re.is_match(event.bytes));
        if !keep {
            self.acked_moved |= self.state.acked.ack(event.start, event.end);
            return;
        }
        let basis = match self.full_basis {
            Some(hash) if event.end >= FINGERPRINT_BYTES as u64 => hash,
            _ => self.head.id_basis(event.end),
        };
        let id = event_id(&input.meta.host, basis, event.start, event.end);
        let parts = EventParts {
            timestamp: &self.timestamp,
            message: event.bytes,
            file: Some((self.path, event.start)),
            id: &id,
            truncated: event.truncated,
        };
        let origin = Origin { source: self.slot, start: event.start, end: event.end };
        let stats = &mut self.state.stats;
        if self.emitter.send(&input.meta, &input.topic, &parts, origin).too_large {
            stats.events_too_large += 1;
        }
        stats.events_sent += 1;
        if event.truncated {
            stats.events_truncated += 1;
        }
    }
}
