//! One open file being read: its handle, line reader and multiline state, and what it knows about the
//! file through that handle — whether it was truncated or rewritten, whether it is idle, and, for a new
//! file that may be an unfinished copy of a known one, whether it is still changing.
//!
//! Nothing here reads a clock: the tailer passes `now` in.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::input::FileInput;
use crate::identity::Head;
use crate::line_reader::LineReader;
use crate::multiline::Multiline;

/// Longest time a continuously read file goes without a truncation check.
const TRUNCATION_CHECK: Duration = Duration::from_millis(100);

/// An open file being read.
pub(crate) struct Harvester {
    pub(crate) file: File,
    /// `log.file.path` of its events: the path it was opened under (as Filebeat does).
    pub(crate) path: String,
    pub(crate) head: Head,
    pub(crate) reader: LineReader,
    pub(crate) multiline: Option<Multiline>,
    last_data: Instant,
    at_eof: bool,
    pub(crate) deleted: bool,
    last_check: Instant,
    /// Set while the file may be an unfinished copy of a known file: it is not read.
    unsettled: Option<Unsettled>,
}

/// The size of an unsettled file when last looked at, and since when it has had that size.
struct Unsettled {
    size: u64,
    since: Instant,
}

/// What an unsettled file's size says ([`Harvester::watch_unsettled`]).
pub(crate) enum Settling {
    /// Nothing new to decide on: not read yet.
    Wait,
    /// Its first bytes, to decide on; `quiet` if its size has not changed for `scan_frequency`.
    Look { head: Head, quiet: bool },
}

/// What a check through the handle found ([`Harvester::check`]).
pub(crate) struct Checked {
    pub(crate) size: u64,
    /// Shorter than what was read, or its first bytes changed.
    pub(crate) truncated: bool,
}

impl Harvester {
    /// Opens `file` (found under `path`, first bytes `head`) at `offset` for `input`. `unsettled`: it may
    /// be an unfinished copy, not to be read until [`Harvester::settled`].
    pub(crate) fn open(
        mut file: File,
        path: &Path,
        head: Head,
        offset: u64,
        input: &FileInput,
        unsettled: bool,
        now: Instant,
    ) -> io::Result<Self> {
        file.seek(SeekFrom::Start(offset))?;
        // The size the decision was made on is the head's (all of the file, as it is short): bytes
        // written since are looked at by the first `watch_unsettled`.
        let unsettled = unsettled.then(|| Unsettled { size: head.len() as u64, since: now });
        let multiline = input
            .multiline
            .as_ref()
            .map(|m| Multiline::new(m, input.max_line_bytes).expect("validated multiline pattern"));
        Ok(Self {
            file,
            path: path.to_string_lossy().into_owned(),
            head,
            reader: LineReader::new(input.max_line_bytes, offset),
            multiline,
            last_data: now,
            at_eof: false,
            deleted: false,
            last_check: now,
            unsettled,
        })
    }

    /// Reads the next bytes into `buf`. Zero at the end of the file, which makes it idle.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = loop {
            match self.file.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        if n == 0 {
            self.at_eof = true;
        }
        Ok(n)
    }

    /// `data` (just read) is being handed to the line reader at `now`.
    pub(crate) fn received(&mut self, data: &[u8], now: Instant) {
        self.at_eof = false;
        self.last_data = now;
        self.head.observe(self.reader.position(), data);
    }

    /// Whether the first bytes on disk no longer start with those read: the file was truncated and
    /// rewritten, so bytes read at the old offset are not lines of this file.
    pub(crate) fn rewritten(&self) -> bool {
        !self.head.is_empty() && Head::read(&self.file).map_or(true, |now| !now.bytes().starts_with(self.head.bytes()))
    }

    /// Takes the file's first bytes on disk as its head when they extend the head known so far (bytes not
    /// read yet: reading is paused or behind). Bytes that do not extend it are a truncation, for
    /// [`Harvester::check`] to find. Returns whether the head grew.
    pub(crate) fn learn_head(&mut self) -> bool {
        match Head::read(&self.file) {
            Ok(now) if now.len() > self.head.len() && now.bytes().starts_with(self.head.bytes()) => {
                self.head = now;
                true
            }
            _ => false,
        }
    }

    /// Whether a truncation check is due: the file was at its end (that is when copytruncate happens
    /// under a tailer keeping up), or it has been read continuously for `TRUNCATION_CHECK`.
    pub(crate) fn check_due(&self, now: Instant) -> bool {
        self.at_eof || now.saturating_duration_since(self.last_check) >= TRUNCATION_CHECK
    }

    /// Looks at the file through the handle: its size, whether it was deleted, whether it was truncated.
    /// `None` if it cannot be looked at.
    pub(crate) fn check(&mut self, now: Instant) -> Option<Checked> {
        self.last_check = now;
        let meta = self.file.metadata().ok()?;
        self.deleted = meta.nlink() == 0;
        let shrunk = meta.len() < self.reader.position();
        let rewritten = !shrunk && {
            let now = Head::read(&self.file).unwrap_or_default();
            now.len() < self.head.len() || now.bytes()[..self.head.len()] != *self.head.bytes()
        };
        Some(Checked { size: meta.len(), truncated: shrunk || rewritten })
    }

    /// Whether the file is done for now: at its end, and deleted or without new data for `close_inactive`.
    /// The end is looked at again through the handle first, as `at_eof` only says what the last read found:
    /// reading may have paused since (the queue full while the broker is slow or down), and a deleted
    /// file can still be written through another process's handle. Closing such a file would lose its
    /// unread lines, for a deleted or renamed file for good.
    pub(crate) fn idle(&mut self, now: Instant, close_inactive: Duration) -> bool {
        let quiet = self.at_eof && (self.deleted || now.saturating_duration_since(self.last_data) >= close_inactive);
        if quiet && self.has_unread() {
            self.at_eof = false;
            return false;
        }
        quiet
    }

    /// Whether the file holds bytes past those read (looked at through the handle).
    pub(crate) fn has_unread(&self) -> bool {
        self.file.metadata().is_ok_and(|meta| meta.len() > self.reader.position())
    }

    /// Where a reopen continues: the start of the first line not handed on (a partial line or a pending
    /// multiline event).
    pub(crate) fn resume_offset(&self) -> u64 {
        self.reader.line_start().min(self.multiline.as_ref().and_then(|m| m.pending_start()).unwrap_or(u64::MAX))
    }

    pub(crate) fn is_unsettled(&self) -> bool {
        self.unsettled.is_some()
    }

    /// For an unsettled file: looks at its size. Asks for a decision only when the size changed, or when
    /// it has kept its size for `quiet_after`; an empty file tells nothing yet.
    pub(crate) fn watch_unsettled(&mut self, now: Instant, quiet_after: Duration) -> Settling {
        let Some(u) = self.unsettled.as_mut() else { return Settling::Wait };
        let Ok(meta) = self.file.metadata() else { return Settling::Wait };
        let size = meta.len();
        let changed = size != u.size;
        if changed {
            (u.size, u.since) = (size, now);
            (self.last_data, self.at_eof) = (now, false);
        } else {
            // Idle as far as `close_inactive` is concerned.
            self.at_eof = true;
        }
        let quiet = now.saturating_duration_since(u.since) >= quiet_after;
        if size == 0 || !(changed || quiet) {
            return Settling::Wait;
        }
        match Head::read(&self.file) {
            Ok(head) => Settling::Look { head, quiet },
            Err(_) => Settling::Wait,
        }
    }

    /// The file is known not to be an unfinished copy: it is read from now on.
    pub(crate) fn settled(&mut self) {
        (self.unsettled, self.at_eof) = (None, false);
    }
}
