//! Reading a partition log: Fetch (`read`) and ListOffsets by timestamp (`offset_for_timestamp`).
//!
//! A read takes the partition lock only to find the segment (`BTreeMap::range(..=offset)`) and the
//! sparse-index position, then walks batch headers and copies bytes with `pread` outside the lock, so
//! reads never wait for appends' I/O and never move a shared file cursor. Only bytes below the segment
//! size seen under the lock are read: those were written completely. Batches are returned whole, exactly
//! as stored, and never past the high watermark (the durable offset).
//!
//! References: https://kafka.apache.org/documentation/#recordbatch,
//! KIP-74 (https://cwiki.apache.org/confluence/display/KAFKA/KIP-74%3A+Add+Fetch+Response+Size+Limit+in+Bytes):
//! a fetch returns at least one whole batch even when it exceeds the size limit.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::batch::{BatchHeader, HEADER_LEN};
use super::error::ReadError;
use super::partition_log::{PartitionLog, ReadOutcome};
use super::scan::{BatchScanner, ScanError};
use super::util::{annotate, lock};

impl PartitionLog {
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadOutcome, ReadError> {
        let high_watermark = self.high_watermark();
        let log_start_offset = self.log_start_offset();
        if offset < log_start_offset || offset > high_watermark {
            return Err(ReadError::OffsetOutOfRange { offset, log_start_offset, high_watermark });
        }
        let outcome =
            |records: Vec<u8>| ReadOutcome { records: Bytes::from(records), high_watermark, log_start_offset };
        let mut cursor = offset;
        while cursor < high_watermark {
            let (file, path, start, end, segment_end) = {
                let st = lock(&self.state);
                // Retention may have moved the start since the check above.
                let Some((_, seg)) = st.segments.range(..=cursor).next_back() else {
                    let log_start_offset = self.log_start_offset();
                    return Err(ReadError::OffsetOutOfRange { offset, log_start_offset, high_watermark });
                };
                (seg.log(), seg.log_path().to_owned(), seg.position_for(cursor)?, seg.size(), seg.next_offset())
            };
            if let Some(records) = read_batches(&file, &path, start, end, cursor, max_bytes, high_watermark)? {
                return Ok(outcome(records));
            }
            // The segment holds nothing at or after `cursor` (a hole left by a corrupt, truncated old
            // segment): continue in the next one rather than returning nothing forever.
            if segment_end <= cursor {
                break;
            }
            cursor = segment_end;
        }
        Ok(outcome(Vec::new()))
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

/// Reads whole batches from the one holding `offset`, up to `max_bytes` but at least one batch (KIP-74),
/// and none at or past the high watermark. None when the segment holds no batch at or after `offset`.
fn read_batches(
    file: &File,
    path: &Path,
    start: u64,
    end: u64,
    offset: i64,
    max_bytes: usize,
    high_watermark: i64,
) -> io::Result<Option<Vec<u8>>> {
    let mut scanner = BatchScanner::new(file, start, end);
    let (first_pos, first) = loop {
        match scanner.next_batch(false).map_err(|e| scan_error(e, path))? {
            None => return Ok(None),
            Some(b) if b.header.last_offset() < offset => continue,
            Some(b) => break (b.pos, b.header),
        }
    };
    if first.base_offset >= high_watermark {
        return Ok(Some(Vec::new()));
    }
    let len = (max_bytes.max(first.size()) as u64).min(end - first_pos) as usize;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, first_pos).map_err(|e| annotate(e, path))?;
    let mut used = 0;
    while used + HEADER_LEN <= buf.len() {
        let Ok(h) = BatchHeader::parse(&buf[used..]) else { break };
        if used + h.size() > buf.len() || h.base_offset >= high_watermark {
            break;
        }
        used += h.size();
    }
    buf.truncate(used);
    Ok(Some(buf))
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
            let out = log.read(offset, 1).unwrap();
            let got = batches_in(&out.records);
            assert_eq!(got.len(), 1, "one batch when max_bytes is tiny (KIP-74)");
            assert!(got[0].base_offset <= offset && offset <= got[0].last_offset(), "offset {offset}");
            crate::storage::batch::check_crc(&out.records).unwrap();
            let many = batches_in(&log.read(offset, 400).unwrap().records);
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
        assert_eq!(log.read(1, 100).unwrap().records.len(), big.len(), "oversize batch returned whole");
        assert_eq!(log.read(0, 100).unwrap().records.len(), TestBatch::new(1).build().len());
        assert!(log.read(3, 100).unwrap().records.is_empty(), "read at HW is empty");
        assert!(matches!(log.read(4, 100), Err(ReadError::OffsetOutOfRange { offset: 4, high_watermark: 3, .. })));
        assert!(matches!(log.read(-1, 100), Err(ReadError::OffsetOutOfRange { .. })));
        let all = log.read(0, 1 << 20).unwrap();
        assert_eq!(batches_in(&all.records).len(), 3);
        assert_eq!(all.high_watermark, 3);
    }

    #[test]
    fn unflushed_data_is_invisible_until_durable() {
        let dir = tempfile::tempdir().unwrap();
        let mgr = manager(config_with(dir.path(), |_| {}));
        let log = partition(&mgr, "t", &[]);
        let out = log.append(&TestBatch::new(2).build(), 0).unwrap();
        assert_eq!((log.log_end_offset(), log.high_watermark()), (2, 0));
        assert!(log.read(0, 1000).unwrap().records.is_empty());
        assert_eq!(log.offset_for_timestamp(0).unwrap(), None);
        log.flush().unwrap();
        assert_eq!(log.high_watermark(), out.last_offset + 1);
        assert_eq!(batches_in(&log.read(0, 1000).unwrap().records).len(), 1);
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
        let records = log.read(0, 1000).unwrap().records;
        crate::storage::batch::check_crc(&records).unwrap();
        assert_eq!(BatchHeader::parse(&records).unwrap().max_timestamp, 777);
        assert_eq!(log.offset_for_timestamp(700).unwrap(), Some((0, 777)));
    }
}
