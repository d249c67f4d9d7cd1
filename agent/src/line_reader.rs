//! Splitting a byte stream into lines with a hard cap on line length.
//!
//! Lines end at `\n`; one trailing `\r` is stripped. A line longer than `max_line_bytes` keeps its first
//! `max_line_bytes` bytes, is marked truncated, and the rest up to the next newline is skipped as it
//! streams past: memory stays bounded by the cap whatever the input (vector `buffer.rs`). Every line
//! carries the byte range it came from, newline included, so the ranges of consecutive lines tile the
//! input and acknowledgements can advance the registry exactly to a line boundary.
//!
//! Bytes are not validated here: invalid UTF-8 and NUL bytes are dealt with when the event is encoded.

/// One line as read, borrowed from the reader or the input chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawLine<'a> {
    pub bytes: &'a [u8],
    /// Offset of the line's first byte.
    pub start: u64,
    /// Offset just past the line's newline (or past its last byte for a flushed partial line).
    pub end: u64,
    pub truncated: bool,
}

#[derive(Debug)]
pub struct LineReader {
    max: usize,
    /// The current partial line: at most `max + 1` bytes (one more than the cap, so a `\r` right after a
    /// line of exactly `max` bytes can still be told apart from content).
    buf: Vec<u8>,
    /// Bytes of the current line dropped beyond `buf`.
    skipped: u64,
    line_start: u64,
    pos: u64,
}

impl LineReader {
    /// A reader whose next input byte is at file offset `pos`.
    pub fn new(max_line_bytes: usize, pos: u64) -> Self {
        Self { max: max_line_bytes, buf: Vec::new(), skipped: 0, line_start: pos, pos }
    }

    /// Offset of the next byte to feed.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Offset where the pending partial line starts (= `position()` when nothing is pending).
    pub fn line_start(&self) -> u64 {
        self.line_start
    }

    pub fn has_partial(&self) -> bool {
        self.pos > self.line_start
    }

    /// Bytes held for the partial line; never more than `max_line_bytes + 1`.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Feeds the next bytes of the stream, calling `emit` for every completed line.
    pub fn feed(&mut self, mut data: &[u8], mut emit: impl FnMut(RawLine<'_>)) {
        while !data.is_empty() {
            match memchr::memchr(b'\n', data) {
                Some(nl) => {
                    let end = self.pos + nl as u64 + 1;
                    if self.buf.is_empty() && self.skipped == 0 {
                        // Fast path: the whole line is in this chunk; no copy.
                        let (line, truncated) = self.cap(&data[..nl], 0);
                        emit(RawLine { bytes: line, start: self.line_start, end, truncated });
                    } else {
                        self.append(&data[..nl]);
                        let buf = std::mem::take(&mut self.buf);
                        let (line, truncated) = self.cap(&buf, self.skipped);
                        emit(RawLine { bytes: line, start: self.line_start, end, truncated });
                        self.buf = buf;
                        self.buf.clear();
                        if self.buf.capacity() > 2 * 64 * 1024 {
                            // A huge line passed; do not keep its buffer for the file's lifetime.
                            self.buf = Vec::new();
                        }
                        self.skipped = 0;
                    }
                    self.pos = end;
                    self.line_start = end;
                    data = &data[nl + 1..];
                }
                None => {
                    self.append(data);
                    self.pos += data.len() as u64;
                    data = &[];
                }
            }
        }
    }

    /// Emits the pending partial line, if any (the file is being closed: rotated, deleted or idle).
    pub fn flush_partial(&mut self, mut emit: impl FnMut(RawLine<'_>)) {
        if !self.has_partial() {
            return;
        }
        let buf = std::mem::take(&mut self.buf);
        // No newline follows, so a trailing `\r` is content, but a line cut at `max` is still truncated.
        let truncated = self.skipped > 0 || buf.len() > self.max;
        let line = &buf[..buf.len().min(self.max)];
        emit(RawLine { bytes: line, start: self.line_start, end: self.pos, truncated });
        self.skipped = 0;
        self.line_start = self.pos;
    }

    /// Restarts at `pos` (after a truncation), dropping any partial line.
    pub fn reset(&mut self, pos: u64) {
        *self = Self::new(self.max, pos);
    }

    fn append(&mut self, data: &[u8]) {
        let room = (self.max + 1).saturating_sub(self.buf.len());
        let take = room.min(data.len());
        self.buf.extend_from_slice(&data[..take]);
        self.skipped += (data.len() - take) as u64;
    }

    /// Strips one trailing `\r` and applies the cap. `skipped` bytes were already dropped.
    fn cap<'a>(&self, line: &'a [u8], skipped: u64) -> (&'a [u8], bool) {
        let line = if skipped == 0 { line.strip_suffix(b"\r").unwrap_or(line) } else { line };
        if skipped > 0 || line.len() > self.max {
            (&line[..line.len().min(self.max)], true)
        } else {
            (line, false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, PartialEq)]
    struct Owned {
        bytes: Vec<u8>,
        start: u64,
        end: u64,
        truncated: bool,
    }

    fn run(max: usize, chunks: &[&[u8]], flush: bool) -> (Vec<Owned>, usize) {
        let mut r = LineReader::new(max, 0);
        let mut out = Vec::new();
        let mut peak = 0;
        for c in chunks {
            r.feed(c, |l| {
                out.push(Owned { bytes: l.bytes.to_vec(), start: l.start, end: l.end, truncated: l.truncated })
            });
            peak = peak.max(r.buffered());
        }
        if flush {
            r.flush_partial(|l| {
                out.push(Owned { bytes: l.bytes.to_vec(), start: l.start, end: l.end, truncated: l.truncated })
            });
        }
        (out, peak)
    }

    /// The obvious, whole-input definition of what the reader must produce.
    fn reference(max: usize, input: &[u8], flush: bool) -> Vec<Owned> {
        let mut out = Vec::new();
        let mut start = 0usize;
        while start < input.len() {
            match input[start..].iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    let mut line = &input[start..start + nl];
                    if line.last() == Some(&b'\r') {
                        line = &line[..line.len() - 1];
                    }
                    let truncated = line.len() > max;
                    out.push(Owned {
                        bytes: line[..line.len().min(max)].to_vec(),
                        start: start as u64,
                        end: (start + nl + 1) as u64,
                        truncated,
                    });
                    start += nl + 1;
                }
                None => {
                    if flush {
                        let line = &input[start..];
                        out.push(Owned {
                            bytes: line[..line.len().min(max)].to_vec(),
                            start: start as u64,
                            end: input.len() as u64,
                            truncated: line.len() > max,
                        });
                    }
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn crlf_and_partial_lines() {
        let (lines, _) = run(100, &[b"a\r\nb", b"c\n", b"tail"], false);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].bytes, b"a");
        assert_eq!((lines[0].start, lines[0].end), (0, 3));
        assert_eq!(lines[1].bytes, b"bc");
        assert_eq!((lines[1].start, lines[1].end), (3, 6));
        let (lines, _) = run(100, &[b"a\n", b"tail"], true);
        assert_eq!(lines[1].bytes, b"tail");
        assert_eq!((lines[1].start, lines[1].end), (2, 6));
    }

    #[test]
    fn long_line_is_cut_and_the_rest_skipped() {
        let mut input = vec![b'x'; 10_000];
        input.extend_from_slice(b"\nnext\n");
        let chunks: Vec<&[u8]> = input.chunks(333).collect();
        let (lines, peak) = run(64, &chunks, false);
        assert_eq!(lines.len(), 2);
        assert!(lines[0].truncated);
        assert_eq!(lines[0].bytes.len(), 64);
        assert_eq!(lines[0].end, 10_001);
        assert_eq!(lines[1].bytes, b"next");
        assert!(peak <= 65, "peak buffer {peak}");
    }

    #[test]
    fn nul_and_invalid_utf8_pass_through_untouched() {
        let (lines, _) = run(100, &[b"a\0b\xff\xfe\n"], false);
        assert_eq!(lines[0].bytes, b"a\0b\xff\xfe");
    }

    #[test]
    fn line_of_exactly_max_with_crlf_is_not_truncated() {
        let (lines, _) = run(4, &[b"ab", b"cd\r", b"\n"], false);
        assert_eq!(lines[0].bytes, b"abcd");
        assert!(!lines[0].truncated);
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_reference_lines(
            input in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), Just(0u8), Just(0xffu8), b'a'..=b'e'], 0..400),
            cuts in proptest::collection::vec(0usize..400, 0..20),
            max in 1usize..40,
            flush in any::<bool>(),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(input.len())).collect();
            cuts.push(0);
            cuts.push(input.len());
            cuts.sort_unstable();
            let chunks: Vec<&[u8]> = cuts.windows(2).map(|w| &input[w[0]..w[1]]).collect();
            let (got, peak) = run(max, &chunks, flush);
            prop_assert!(peak <= max + 1);
            prop_assert_eq!(got, reference(max, &input, flush));
        }
    }
}
