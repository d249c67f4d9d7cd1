//! Walking the batches of a segment file with positioned reads.
//!
//! Every scan of a segment goes through [`BatchScanner`]: locating a fetch offset after an index lookup,
//! finding the log end on a clean start, rebuilding producer state and indexes, and crash recovery (which
//! also checks each batch's CRC). It reads in chunks with `read_at`, so it never moves a shared file cursor
//! and can run while appends go on.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::batch::{check_crc, BatchError, BatchHeader, HEADER_LEN};

const CHUNK: usize = 64 * 1024;

/// Why a scan stopped before the end: an I/O failure, or bytes that are not a valid batch (a torn write,
/// garbage, a CRC mismatch), with the position where the valid prefix ends.
#[derive(Debug)]
pub(crate) enum ScanError {
    Io(io::Error),
    Invalid { pos: u64, reason: String },
}

impl From<io::Error> for ScanError {
    fn from(e: io::Error) -> Self {
        ScanError::Io(e)
    }
}

pub(crate) struct Scanned {
    pub pos: u64,
    pub header: BatchHeader,
}

pub(crate) struct BatchScanner<'f> {
    file: &'f File,
    pos: u64,
    end: u64,
    buf: Vec<u8>,
    buf_start: u64,
    /// How much one read fetches ahead.
    chunk: usize,
}

impl<'f> BatchScanner<'f> {
    /// Scans `[start, end)`; `end` must not exceed what has been completely written.
    pub fn new(file: &'f File, start: u64, end: u64) -> Self {
        Self { file, pos: start, end, buf: Vec::new(), buf_start: start, chunk: CHUNK }
    }

    /// Reads ahead `chunk` bytes at a time instead of 64 KiB (`HEADER_LEN`: headers only).
    pub fn chunk(self, chunk: usize) -> Self {
        Self { chunk, ..self }
    }

    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The next batch. With `verify`, the whole batch is read and its CRC checked; without, only its
    /// header is read and its length checked against the end.
    pub fn next_batch(&mut self, verify: bool) -> Result<Option<Scanned>, ScanError> {
        let pos = self.pos;
        if pos >= self.end {
            return Ok(None);
        }
        let remaining = self.end - pos;
        let invalid = |reason: String| ScanError::Invalid { pos, reason };
        let head_len = (HEADER_LEN as u64).min(remaining) as usize;
        self.fill(pos, head_len)?;
        let header = match BatchHeader::parse(self.slice(pos, head_len)) {
            Ok(h) => h,
            Err(BatchError::Truncated { .. }) => {
                return Err(invalid(format!("torn batch header: only {remaining} bytes left")));
            }
            Err(e) => return Err(invalid(e.to_string())),
        };
        let size = header.size() as u64;
        if size > remaining {
            return Err(invalid(format!("torn batch: {size} bytes declared, {remaining} left")));
        }
        self.pos = pos + size;
        if !verify {
            return Ok(Some(Scanned { pos, header }));
        }
        self.fill(pos, size as usize)?;
        check_crc(self.slice(pos, size as usize)).map_err(|e| invalid(e.to_string()))?;
        Ok(Some(Scanned { pos, header }))
    }

    fn slice(&self, pos: u64, len: usize) -> &[u8] {
        let at = (pos - self.buf_start) as usize;
        &self.buf[at..at + len]
    }

    fn fill(&mut self, pos: u64, len: usize) -> io::Result<()> {
        let have = pos >= self.buf_start && pos + len as u64 <= self.buf_start + self.buf.len() as u64;
        if have {
            return Ok(());
        }
        let want = (len.max(self.chunk) as u64).min(self.end - pos) as usize;
        self.buf.resize(want, 0);
        self.buf_start = pos;
        self.file.read_exact_at(&mut self.buf, pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::{set_base_offset, TestBatch};
    use std::io::Write;

    fn file_with(batches: &[Vec<u8>]) -> (tempfile::NamedTempFile, u64) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        for (offset, b) in batches.iter().enumerate() {
            let mut b = b.clone();
            set_base_offset(&mut b, offset as i64);
            f.write_all(&b).unwrap();
        }
        let len = f.as_file().metadata().unwrap().len();
        (f, len)
    }

    #[test]
    fn walks_batches_bigger_than_a_chunk() {
        let batches = vec![
            TestBatch::new(1).payload(10).build(),
            TestBatch::new(1).payload(200_000).build(),
            TestBatch::new(1).build(),
        ];
        let (f, len) = file_with(&batches);
        let mut s = BatchScanner::new(f.as_file(), 0, len);
        let mut n = 0;
        while let Some(b) = s.next_batch(true).unwrap() {
            assert_eq!(b.header.base_offset, n);
            assert_eq!(b.header.size(), batches[n as usize].len());
            n += 1;
        }
        assert_eq!(n, 3);
        assert_eq!(s.position(), len);
    }

    #[test]
    fn reports_the_start_of_a_torn_batch() {
        let batches = vec![TestBatch::new(1).build(), TestBatch::new(1).build()];
        let (f, len) = file_with(&batches);
        let mut s = BatchScanner::new(f.as_file(), 0, len - 1);
        assert!(s.next_batch(false).unwrap().is_some());
        match s.next_batch(false) {
            Err(ScanError::Invalid { pos, .. }) => assert_eq!(pos, batches[0].len() as u64),
            other => panic!("expected a torn batch, got {:?}", other.map(|o| o.map(|b| b.pos))),
        }
    }
}
