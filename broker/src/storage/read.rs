//! Reading a partition log: Fetch (`read`) and ListOffsets by timestamp (`offset_for_timestamp`).
//!
//! A read takes the partition lock only to find the segment (`BTreeMap::range(..=offset)`) and the
//! sparse-index position, then walks batch headers and copies bytes with `pread` outside the lock, so
//! reads never wait for appends' I/O and never move a shared file cursor. Only bytes below the segment
//! size seen under the lock are read: those were written completely. Batches are returned whole, exactly
//! as stored, and never past the high watermark (the durable offset).
//!
//! An offset between the high watermark and the log end offset is valid but not yet readable: the read
//! is empty, as in Kafka (a consumer that saw the offset must not be told it is out of range). Only
//! offsets below the log start or past the log end are out of range.
//!
//! `read` copies the batches into memory; `read_in_place` only says where they are (`FileRecords`), for a
//! connection that sends them from the file with `sendfile` (`server::sendfile`). Both stop at the same
//! batch (`whole_batches`), so a response holds the same bytes either way.
//!
//! References: https://kafka.apache.org/documentation/#recordbatch,
//! KIP-74 (https://cwiki.apache.org/confluence/display/KAFKA/KIP-74%3A+Add+Fetch+Response+Size+Limit+in+Bytes):
//! the first partition of a fetch response returns at least one whole batch even when it exceeds the
//! size limit; the caller says with `allow_oversize` whether this read may do so.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use rustix::buffer::spare_capacity;

use super::batch::{BatchHeader, HEADER_LEN};
use super::error::ReadError;
use super::partition_log::{PartitionLog, ReadOutcome};
use super::scan::{BatchScanner, ScanError};
use super::util::{annotate, lock};

impl PartitionLog {
    /// Whole batches from the one holding `offset`, up to `max_bytes`. With `allow_oversize` a first batch
    /// larger than `max_bytes` is still returned whole (KIP-74); without it the result may be empty.
    pub fn read(&self, offset: i64, max_bytes: usize, allow_oversize: bool) -> Result<ReadOutcome, ReadError> {
        let outcome = self.read_as(offset, max_bytes, allow_oversize, Extent::Copy)?;
        Ok(outcome.map(|found| match found {
            Some(Found::Copied(records)) => Bytes::from(records),
            _ => Bytes::new(),
        }))
    }

    /// The same batches as `read`, left where they are in their segment file: `None` when there are none.
    /// The file stays open as long as the result lives, so a segment deleted meanwhile (retention, a
    /// deleted topic) can still be sent.
    pub fn read_in_place(
        &self,
        offset: i64,
        max_bytes: usize,
        allow_oversize: bool,
    ) -> Result<ReadOutcome<Option<FileRecords>>, ReadError> {
        let outcome = self.read_as(offset, max_bytes, allow_oversize, Extent::InPlace)?;
        Ok(outcome.map(|found| match found {
            Some(Found::InPlace(records)) if records.len > 0 => Some(records),
            _ => None,
        }))
    }

    fn read_as(
        &self,
        offset: i64,
        max_bytes: usize,
        allow_oversize: bool,
        extent: Extent,
    ) -> Result<ReadOutcome<Option<Found>>, ReadError> {
        // In this order, so that high_watermark <= log_end_offset.
        let high_watermark = self.high_watermark();
        let log_end_offset = self.log_end_offset();
        let log_start_offset = self.log_start_offset();
        let out_of_range =
            |log_start_offset| ReadError::OffsetOutOfRange { offset, log_start_offset, high_watermark, log_end_offset };
        if offset < log_start_offset || offset > log_end_offset {
            return Err(out_of_range(log_start_offset));
        }
        let outcome = |records: Option<Found>| ReadOutcome { records, high_watermark, log_start_offset };
        let mut cursor = offset;
        while cursor < high_watermark {
            let (base, file, path, start, end, segment_end) = {
                let st = lock(&self.state);
                // Retention may have moved the start since the check above.
                let Some((&base, seg)) = st.segments.range(..=cursor).next_back() else {
                    return Err(out_of_range(self.log_start_offset()));
                };
                (base, seg.log(), seg.log_path().to_owned(), seg.position_for(cursor)?, seg.size(), seg.next_offset())
            };
            let limit = Limit { max_bytes, allow_oversize, high_watermark };
            // None when the segment is gone meanwhile: the headers are then walked from the first batch.
            let indexed = |within: u64| match lock(&self.state).segments.get(&base) {
                Some(seg) => seg.indexed_batch_start(within, high_watermark),
                None => Ok(None),
            };
            if let Some(found) = read_batches(&file, &path, (start, end), cursor, limit, extent, indexed)? {
                return Ok(outcome(Some(found)));
            }
            // The segment holds nothing at or after `cursor` (a hole left by a corrupt, truncated old
            // segment): continue in the next one rather than returning nothing forever.
            if segment_end <= cursor {
                break;
            }
            cursor = segment_end;
        }
        Ok(outcome(None))
    }

    /// The first batch whose maxTimestamp is at or after `timestamp_ms`, as (base offset, maxTimestamp).
    /// Batch granularity errs on the early side: a consumer may see a few older records, never miss one.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> io::Result<Option<(i64, i64)>> {
        let high_watermark = self.high_watermark();
        let log_start = self.log_start_offset();
        let candidates: Vec<(Arc<File>, PathBuf, u64, u64)> = {
            let st = lock(&self.state);
            let mut c = Vec::new();
            for seg in st.segments.values() {
                if seg.next_offset() > log_start && seg.max_timestamp().is_some_and(|m| m >= timestamp_ms) {
                    c.push((
                        seg.log(),
                        seg.log_path().to_owned(),
                        seg.position_for_timestamp(timestamp_ms)?,
                        seg.size(),
                    ));
                }
            }
            c
        };
        for (file, path, start, end) in candidates {
            let mut scanner = BatchScanner::new(&file, start, end);
            while let Some(b) = scanner.next_batch(false).map_err(|e| scan_error(e, &path))? {
                let h = b.header;
                if h.base_offset >= high_watermark {
                    return Ok(None);
                }
                if h.last_offset() >= log_start && h.max_timestamp >= timestamp_ms {
                    return Ok(Some((h.base_offset.max(log_start), h.max_timestamp)));
                }
            }
        }
        Ok(None)
    }
}

fn scan_error(e: ScanError, path: &Path) -> io::Error {
    match e {
        ScanError::Io(e) => annotate(e, path),
        // Bytes below the segment size were written whole by this process; finding garbage there means
        // the disk changed under us. Refuse to serve it.
        ScanError::Invalid { pos, reason } => annotate(
            io::Error::new(io::ErrorKind::InvalidData, format!("corrupt batch at position {pos}: {reason}")),
            path,
        ),
    }
}

/// How much one read may return.
#[derive(Clone, Copy)]
struct Limit {
    max_bytes: usize,
    /// Return the first batch even when it alone exceeds `max_bytes` (KIP-74).
    allow_oversize: bool,
    high_watermark: i64,
}

/// Whether a read copies the batches or only says where they are.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Extent {
    Copy,
    InPlace,
}

enum Found {
    Copied(Vec<u8>),
    InPlace(FileRecords),
}

/// Record batches left in their segment file: `len` bytes at `position`, whole batches below the high
/// watermark. The file is held open, so the bytes outlive the deletion of the segment; nothing rewrites
/// bytes below a segment's size while the broker runs (only recovery at start-up truncates).
#[derive(Clone, Debug)]
pub struct FileRecords {
    file: Arc<File>,
    path: Arc<Path>,
    position: u64,
    len: u64,
}

impl FileRecords {
    #[cfg(test)]
    pub(crate) fn new(file: Arc<File>, path: &Path, position: u64, len: u64) -> Self {
        Self { file, path: path.into(), position, len }
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// The segment file's path, for error messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn position(&self) -> u64 {
        self.position
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes themselves, for a connection that cannot send from a file (TLS).
    pub fn read(&self) -> io::Result<Bytes> {
        read_at_uninit(&self.file, self.position, self.len as usize)
            .map(Bytes::from)
            .map_err(|e| annotate(e, &self.path))
    }
}

/// Reads whole batches from the one holding `offset`, up to `max_bytes` (but at least one batch if
/// `allow_oversize`), and none at or past the high watermark. None when the segment holds no batch at or
/// after `offset`.
///
/// An in-place read does not read the records, only batch headers: it skips to the last batch the offset
/// index places within the limit (`indexed(position)`) and walks the headers from there.
fn read_batches(
    file: &Arc<File>,
    path: &Path,
    (start, end): (u64, u64),
    offset: i64,
    limit: Limit,
    extent: Extent,
    indexed: impl Fn(u64) -> io::Result<Option<u64>>,
) -> io::Result<Option<Found>> {
    let Limit { max_bytes, allow_oversize, high_watermark } = limit;
    let mut scanner = BatchScanner::new(file, start, end);
    if extent == Extent::InPlace {
        // Only headers are wanted: do not read the records around them.
        scanner = scanner.chunk(HEADER_LEN);
    }
    let (first_pos, first) = loop {
        match scanner.next_batch(false).map_err(|e| scan_error(e, path))? {
            None => return Ok(None),
            Some(b) if b.header.last_offset() < offset => continue,
            Some(b) => break (b.pos, b.header),
        }
    };
    let found = |len: usize| match extent {
        Extent::Copy => Found::Copied(Vec::new()),
        Extent::InPlace => {
            Found::InPlace(FileRecords { file: file.clone(), path: path.into(), position: first_pos, len: len as u64 })
        }
    };
    if first.base_offset >= high_watermark || (first.size() > max_bytes && !allow_oversize) {
        return Ok(Some(found(0)));
    }
    let len = (max_bytes.max(first.size()) as u64).min(end - first_pos) as usize;
    match extent {
        Extent::Copy => {
            let mut buf = read_at_uninit(file, first_pos, len).map_err(|e| annotate(e, path))?;
            let used = whole_batches(len, high_watermark, 0, |at| Ok(BatchHeader::parse(&buf[at..]).ok()))?;
            buf.truncate(used);
            Ok(Some(Found::Copied(buf)))
        }
        Extent::InPlace => {
            let skip = match indexed(first_pos + len as u64)? {
                Some(pos) if pos > first_pos => (pos - first_pos) as usize,
                _ => 0,
            };
            let mut head = [0u8; HEADER_LEN];
            let used = whole_batches(len, high_watermark, skip, |at| {
                if at == 0 {
                    return Ok(Some(first));
                }
                let pos = first_pos + at as u64;
                rustix::io::pread(&**file, &mut head, pos).map_err(|e| annotate(e.into(), path))?;
                Ok(BatchHeader::parse(&head).ok())
            })?;
            Ok(Some(found(used)))
        }
    }
}

/// How many of the `len` bytes from the first batch on are whole batches below the high watermark, the
/// first `from` bytes being known to be. `header_at(at)` is the header `at` bytes in (`None` where none
/// parses); a read ends at the first batch that does not fit, starts at the high watermark, or is not a
/// valid batch.
fn whole_batches(
    len: usize,
    high_watermark: i64,
    from: usize,
    mut header_at: impl FnMut(usize) -> io::Result<Option<BatchHeader>>,
) -> io::Result<usize> {
    let mut used = from;
    while used + HEADER_LEN <= len {
        let Some(h) = header_at(used)? else { break };
        if used + h.size() > len || h.base_offset >= high_watermark {
            break;
        }
        used += h.size();
    }
    Ok(used)
}

/// `len` bytes at `pos`, read straight into a new buffer's spare capacity: a fetch reads up to a
/// partition's max_bytes (1 MiB by default) per partition, and zero-filling that first cost as much as
/// the read from the page cache itself.
fn read_at_uninit(file: &File, pos: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        let at = pos + buf.len() as u64;
        if rustix::io::pread(file, spare_capacity(&mut buf), at)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("file ends before {}", pos + len as u64)));
        }
    }
    buf.truncate(len); // the spare capacity may have been larger than asked for
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::TestBatch;
    use crate::storage::testkit::{config_with, manager, partition, sync_append};

    fn batches_in(records: &[u8]) -> Vec<BatchHeader> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < records.len() {
            let h = BatchHeader::parse(&records[pos..]).unwrap();
            pos += h.size();
            out.push(h);
        }
        out
    }

    #[test]
    fn append_and_read_across_segment_rolls() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = manager(config_with(dir.path(), |c| {
            c.segment_bytes = 1024;
            c.index_interval_bytes = 128;
        }));
        let log = partition(&mgr, "t", &[]);
        let mut expected = 0;
        for i in 0..60 {
            let records = 1 + i % 3;
            let out = sync_append(&log, &TestBatch::new(records).ts(1_000 + i64::from(i)).build());
            assert_eq!((out.base_offset, out.last_offset), (expected, expected + i64::from(records) - 1));
            expected += i64::from(records);
        }
        assert!(log.segment_count() >= 4, "tiny segments roll");
        assert_eq!((log.log_end_offset(), log.high_watermark()), (expected, expected));
        assert_eq!(
            log.size_bytes(),
            std::fs::read_dir(log.dir())
                .unwrap()
                .filter_map(|e| {
                    let e = e.unwrap();
                    (e.path().extension().unwrap() == "log").then(|| e.metadata().unwrap().len())
                })
                .sum::<u64>()
        );
        for offset in 0..expected {
            let out = log.read(offset, 1, true).unwrap();
            let got = batches_in(&out.records);
            assert_eq!(got.len(), 1, "one batch when max_bytes is tiny (KIP-74)");
            assert!(got[0].base_offset <= offset && offset <= got[0].last_offset(), "offset {offset}");
            crate::storage::batch::check_crc(&out.records).unwrap();
            let many = batches_in(&log.read(offset, 400, true).unwrap().records);
            assert!(many.windows(2).all(|w| w[1].base_offset == w[0].last_offset() + 1));
        }
    }

    #[test]
    fn reads_respect_bounds_and_max_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = manager(config_with(dir.path(), |_| {}));
        let log = partition(&mgr, "t", &[]);
        let big = TestBatch::new(1).payload(10_000).build();
        sync_append(&log, &TestBatch::new(1).build());
        sync_append(&log, &big);
        sync_append(&log, &TestBatch::new(1).build());
        assert_eq!(log.read(1, 100, true).unwrap().records.len(), big.len(), "oversize batch returned whole");
        assert_eq!(log.read(0, 100, true).unwrap().records.len(), TestBatch::new(1).build().len());
        assert!(log.read(3, 100, true).unwrap().records.is_empty(), "read at HW is empty");
        assert!(matches!(
            log.read(4, 100, true),
            Err(ReadError::OffsetOutOfRange { offset: 4, log_end_offset: 3, .. })
        ));
        assert!(matches!(log.read(-1, 100, true), Err(ReadError::OffsetOutOfRange { .. })));
        let all = log.read(0, 1 << 20, true).unwrap();
        assert_eq!(batches_in(&all.records).len(), 3);
        assert_eq!(all.high_watermark, 3);
    }

    #[test]
    fn without_oversize_only_whole_batches_within_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = manager(config_with(dir.path(), |_| {}));
        let log = partition(&mgr, "t", &[]);
        let small = TestBatch::new(1).build();
        let big = TestBatch::new(1).payload(10_000).build();
        sync_append(&log, &small);
        sync_append(&log, &big);
        sync_append(&log, &small);
        assert!(log.read(1, 100, false).unwrap().records.is_empty(), "the oversize batch is not returned");
        assert_eq!(log.read(1, big.len(), false).unwrap().records.len(), big.len());
        assert_eq!(log.read(1, big.len() + small.len() - 1, false).unwrap().records.len(), big.len());
        assert_eq!(log.read(0, small.len() + 100, false).unwrap().records.len(), small.len(), "stops before big");
        assert!(log.read(0, small.len() - 1, false).unwrap().records.is_empty());
        assert_eq!(batches_in(&log.read(0, 1 << 20, false).unwrap().records).len(), 3);
        assert_eq!(log.read(1, 100, true).unwrap().records.len(), big.len(), "KIP-74 when allowed");
    }

    #[test]
    fn offsets_between_high_watermark_and_log_end_read_empty() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = manager(config_with(dir.path(), |_| {}));
        let log = partition(&mgr, "t", &[]);
        sync_append(&log, &TestBatch::new(2).build());
        log.append(&TestBatch::new(3).build(), 0).unwrap();
        assert_eq!((log.high_watermark(), log.log_end_offset()), (2, 5));
        for offset in 2..=5 {
            let out = log.read(offset, 1000, true).unwrap();
            assert!(out.records.is_empty(), "offset {offset}");
            assert_eq!(out.high_watermark, 2);
        }
        assert!(matches!(
            log.read(6, 1000, true),
            Err(ReadError::OffsetOutOfRange { offset: 6, high_watermark: 2, log_end_offset: 5, .. })
        ));
        log.flush().unwrap();
        assert_eq!(batches_in(&log.read(3, 1000, true).unwrap().records)[0].base_offset, 2);
    }

    #[test]
    fn unflushed_data_is_invisible_until_durable() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = manager(config_with(dir.path(), |_| {}));
        let log = partition(&mgr, "t", &[]);
        let out = log.append(&TestBatch::new(2).build(), 0).unwrap();
        assert_eq!((log.log_end_offset(), log.high_watermark()), (2, 0));
        assert!(log.read(0, 1000, true).unwrap().records.is_empty());
        assert_eq!(log.offset_for_timestamp(0).unwrap(), None);
        log.flush().unwrap();
        assert_eq!(log.high_watermark(), out.last_offset + 1);
        assert_eq!(batches_in(&log.read(0, 1000, true).unwrap().records).len(), 1);
    }

    #[test]
    fn offset_for_timestamp_finds_the_first_batch_at_or_after() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = manager(config_with(dir.path(), |c| {
            c.segment_bytes = 600;
            c.index_interval_bytes = 0;
        }));
        let log = partition(&mgr, "t", &[]);
        for i in 0..30 {
            sync_append(&log, &TestBatch::new(2).ts(1_000 + 10 * i).build());
        }
        assert!(log.segment_count() > 3);
        assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 1_000)));
        assert_eq!(log.offset_for_timestamp(1_000).unwrap(), Some((0, 1_000)));
        assert_eq!(log.offset_for_timestamp(1_001).unwrap(), Some((2, 1_010)));
        assert_eq!(log.offset_for_timestamp(1_150).unwrap(), Some((30, 1_150)));
        assert_eq!(log.offset_for_timestamp(1_290).unwrap(), Some((58, 1_290)));
        assert_eq!(log.offset_for_timestamp(1_291).unwrap(), None);
    }

    #[test]
    fn log_append_time_stamps_batches() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = manager(config_with(dir.path(), |_| {}));
        let log = partition(&mgr, "t", &[("message.timestamp.type", "LogAppendTime")]);
        log.append(&TestBatch::new(1).ts(5).build(), 777).unwrap();
        log.flush().unwrap();
        let records = log.read(0, 1000, true).unwrap().records;
        crate::storage::batch::check_crc(&records).unwrap();
        assert_eq!(BatchHeader::parse(&records).unwrap().max_timestamp, 777);
        assert_eq!(log.offset_for_timestamp(700).unwrap(), Some((0, 777)));
    }

    fn in_place(log: &PartitionLog, offset: i64, max_bytes: usize, allow_oversize: bool) -> Vec<u8> {
        let out = log.read_in_place(offset, max_bytes, allow_oversize).unwrap();
        out.records.map(|f| f.read().unwrap().to_vec()).unwrap_or_default()
    }

    #[test]
    fn in_place_reads_hold_the_bytes_a_copy_holds() {
        // Every batch indexed, some, none: in-place reads skip to the last indexed batch within the limit.
        for interval in [0, 256, 1 << 20] {
            in_place_reads_match_copies(interval);
        }
    }

    fn in_place_reads_match_copies(index_interval_bytes: u64) {
        let dir = tempfile::tempdir().unwrap();
        let mgr = manager(config_with(dir.path(), |c| {
            c.segment_bytes = 2048;
            c.index_interval_bytes = index_interval_bytes;
        }));
        let log = partition(&mgr, "t", &[]);
        for i in 0..40 {
            sync_append(&log, &TestBatch::new(1 + i % 4).payload(50 + 97 * (i as usize % 7)).build());
        }
        log.append(&TestBatch::new(2).build(), 0).unwrap(); // past the high watermark: never read
        assert!(log.segment_count() >= 5, "reads cross segment boundaries");
        for offset in 0..log.log_end_offset() {
            for max_bytes in [1, 100, 700, 1500, 5000, 1 << 20] {
                for allow_oversize in [true, false] {
                    let copied = log.read(offset, max_bytes, allow_oversize).unwrap();
                    let placed = log.read_in_place(offset, max_bytes, allow_oversize).unwrap();
                    assert_eq!((placed.high_watermark, placed.log_start_offset), (copied.high_watermark, 0));
                    assert_eq!(
                        in_place(&log, offset, max_bytes, allow_oversize),
                        copied.records.to_vec(),
                        "offset {offset}, max_bytes {max_bytes}, allow_oversize {allow_oversize}, \
                         index interval {index_interval_bytes}"
                    );
                }
            }
        }
    }

    #[test]
    fn in_place_records_outlive_their_deleted_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = manager(config_with(dir.path(), |c| c.segment_bytes = 300));
        let log = partition(&mgr, "t", &[("retention.ms", "1000")]);
        for i in 0..20 {
            sync_append(&log, &TestBatch::new(1).ts(if i < 12 { 1_000 } else { 100_000 }).build());
        }
        let expected = log.read(0, 200, true).unwrap().records;
        let placed = log.read_in_place(0, 200, true).unwrap().records.unwrap();
        assert!(mgr.enforce_retention(100_500).unwrap() > 0);
        assert!(!placed.path().exists(), "the segment file is deleted");
        assert_eq!(placed.read().unwrap(), expected, "the open file still holds the bytes");
    }
}
