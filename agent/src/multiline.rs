//! Joining lines into events with Filebeat's `multiline` semantics.
//!
//! A line is a *continuation* when `pattern` matches it (or does not, with `negate = true`).
//! - `match = "after"`: a continuation is appended to the event before it. nginx error logs use
//!   `pattern = '^\d{4}/\d{2}/\d{2} ', negate = true`: every line not starting with a date continues the
//!   previous one. Java stack traces use `pattern = '^\s+at |^Caused by:'`.
//! - `match = "before"`: continuation lines are held and joined to the next non-continuation line, which
//!   ends the event.
//!
//! An event is sent when the next event starts, after `timeout` without a new line, when the file is
//! closed, or when it reaches `max_lines` or `max_bytes` (then the next line starts a new event: unlike
//! Filebeat, no line is dropped). Lines are joined with `\n`; the event's byte range spans all its lines.

use std::time::{Duration, Instant};

use regex::bytes::Regex;

use crate::config::{MultilineConfig, MultilineMatch};
use crate::line_reader::RawLine;

#[derive(Debug)]
pub struct Multiline {
    pattern: Regex,
    negate: bool,
    match_: MultilineMatch,
    max_lines: usize,
    max_bytes: usize,
    timeout: Duration,
    pending: Option<Pending>,
}

#[derive(Debug)]
struct Pending {
    message: Vec<u8>,
    start: u64,
    end: u64,
    truncated: bool,
    lines: usize,
    last_line_at: Instant,
}

impl Multiline {
    /// `max_bytes` caps one event's message (the input's `max_line_bytes`).
    pub fn new(config: &MultilineConfig, max_bytes: usize) -> Result<Self, regex::Error> {
        Ok(Self {
            pattern: Regex::new(&config.pattern)?,
            negate: config.negate,
            match_: config.match_,
            max_lines: config.max_lines.max(1),
            max_bytes,
            timeout: config.timeout,
            pending: None,
        })
    }

    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Offset where the pending event starts, if any.
    pub fn pending_start(&self) -> Option<u64> {
        self.pending.as_ref().map(|p| p.start)
    }

    pub fn push(&mut self, line: RawLine<'_>, now: Instant, mut emit: impl FnMut(RawLine<'_>)) {
        let continuation = self.pattern.is_match(line.bytes) != self.negate;
        match self.match_ {
            MultilineMatch::After => {
                if !continuation || !self.fits(&line) {
                    self.flush(&mut emit);
                }
                self.append(line, now);
            }
            MultilineMatch::Before => {
                if !self.fits(&line) {
                    self.flush(&mut emit);
                }
                self.append(line, now);
                if !continuation {
                    self.flush(&mut emit);
                }
            }
        }
    }

    /// Sends the pending event if no line arrived for `timeout`.
    pub fn flush_if_stale(&mut self, now: Instant, emit: impl FnMut(RawLine<'_>)) {
        if self.is_stale(now) {
            self.flush(emit);
        }
    }

    /// Whether an event is pending and its last line was taken `timeout` or more before `now`.
    pub fn is_stale(&self, now: Instant) -> bool {
        self.pending.as_ref().is_some_and(|p| now.saturating_duration_since(p.last_line_at) >= self.timeout)
    }

    pub fn flush(&mut self, mut emit: impl FnMut(RawLine<'_>)) {
        if let Some(p) = self.pending.take() {
            emit(RawLine { bytes: &p.message, start: p.start, end: p.end, truncated: p.truncated });
        }
    }

    /// Drops the pending event (the file was truncated under it; its bytes are re-read elsewhere or gone).
    pub fn discard(&mut self) {
        self.pending = None;
    }

    fn fits(&self, line: &RawLine<'_>) -> bool {
        match &self.pending {
            None => true,
            Some(p) => p.lines < self.max_lines && p.message.len() + 1 + line.bytes.len() <= self.max_bytes,
        }
    }

    fn append(&mut self, line: RawLine<'_>, now: Instant) {
        match &mut self.pending {
            Some(p) => {
                p.message.push(b'\n');
                p.message.extend_from_slice(line.bytes);
                p.end = line.end;
                p.truncated |= line.truncated;
                p.lines += 1;
                p.last_line_at = now;
            }
            None => {
                self.pending = Some(Pending {
                    message: line.bytes.to_vec(),
                    start: line.start,
                    end: line.end,
                    truncated: line.truncated,
                    lines: 1,
                    last_line_at: now,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line_reader::LineReader;

    fn join(config: MultilineConfig, input: &str) -> Vec<(String, u64, u64)> {
        let mut ml = Multiline::new(&config, 1 << 20).unwrap();
        let mut reader = LineReader::new(1 << 20, 0);
        let mut out = Vec::new();
        let now = Instant::now();
        reader.feed(input.as_bytes(), |line| {
            ml.push(line, now, |e| out.push((String::from_utf8(e.bytes.to_vec()).unwrap(), e.start, e.end)))
        });
        ml.flush(|e| out.push((String::from_utf8(e.bytes.to_vec()).unwrap(), e.start, e.end)));
        out
    }

    fn cfg(pattern: &str, negate: bool, match_: MultilineMatch) -> MultilineConfig {
        MultilineConfig { pattern: pattern.into(), negate, match_, ..Default::default() }
    }

    #[test]
    fn nginx_error_log() {
        let input = "2026/11/21 08:15:30 [error] 1234#0: *1 open() \"/x\" failed\n\
                     2026/11/21 08:15:31 [crit] 1234#0: *2 upstream said:\n  detail one\n  detail two\n\
                     2026/11/21 08:15:32 [warn] 1234#0: last\n";
        let events = join(cfg(r"^\d{4}/\d{2}/\d{2} ", true, MultilineMatch::After), input);
        assert_eq!(events.len(), 3);
        assert_eq!(events[1].0, "2026/11/21 08:15:31 [crit] 1234#0: *2 upstream said:\n  detail one\n  detail two");
        // Byte ranges tile the input.
        assert_eq!(events[0].1, 0);
        assert_eq!(events[0].2, events[1].1);
        assert_eq!(events[1].2, events[2].1);
        assert_eq!(events[2].2, input.len() as u64);
    }

    #[test]
    fn java_stack_trace() {
        let input = "Exception in thread \"main\" java.lang.IllegalStateException: boom\n\
                     \tat com.example.App.run(App.java:10)\n\
                     \tat com.example.App.main(App.java:5)\n\
                     Caused by: java.lang.NullPointerException\n\
                     \tat com.example.Dep.go(Dep.java:3)\n\
                     INFO next event\n";
        let events = join(cfg(r"^\s+at |^Caused by:", false, MultilineMatch::After), input);
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(events[0].0.starts_with("Exception in thread"));
        assert!(events[0].0.ends_with("Dep.java:3)"));
        assert_eq!(events[0].0.lines().count(), 5);
        assert_eq!(events[1].0, "INFO next event");
    }

    #[test]
    fn match_before_joins_to_the_next_line() {
        // Lines ending in a backslash continue onto the next line.
        let events = join(cfg(r"\\$", false, MultilineMatch::Before), "a \\\nb \\\nc\nd\n");
        let msgs: Vec<_> = events.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(msgs, ["a \\\nb \\\nc", "d"]);
    }

    #[test]
    fn max_lines_starts_a_new_event_and_drops_nothing() {
        let mut c = cfg(r"^\s", false, MultilineMatch::After);
        c.max_lines = 2;
        let events = join(c, "head\n 1\n 2\n 3\n");
        let msgs: Vec<_> = events.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(msgs, ["head\n 1", " 2\n 3"]);
    }

    #[test]
    fn timeout_flushes_the_pending_event() {
        let c = cfg(r"^\s", false, MultilineMatch::After);
        let mut ml = Multiline::new(&c, 1024).unwrap();
        let t0 = Instant::now();
        let mut out = Vec::new();
        ml.push(RawLine { bytes: b"head", start: 0, end: 5, truncated: false }, t0, |e| out.push(e.bytes.to_vec()));
        ml.flush_if_stale(t0 + Duration::from_secs(1), |e| out.push(e.bytes.to_vec()));
        assert!(out.is_empty());
        ml.flush_if_stale(t0 + Duration::from_secs(5), |e| out.push(e.bytes.to_vec()));
        assert_eq!(out, vec![b"head".to_vec()]);
        assert!(!ml.has_pending());
    }
}
