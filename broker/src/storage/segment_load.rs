//! Opening an existing segment, in two strengths.
//!
//! [`Segment::open`] trusts the log bytes (they were fsynced before a clean shutdown, or lie before the
//! crash-recovery point) and only sanity-checks the indexes, rebuilding any that look wrong: a missing
//! file, a size that is not a whole number of entries, entries that are not monotonic or that point past
//! the log. [`Segment::recover`] trusts nothing: it re-reads every batch, checks length, magic, CRC32C and
//! offset continuity, cuts the file at the first bad byte and rebuilds both indexes. The rule is to never
//! serve a corrupt record and never drop an fsynced one.
//!
//! References: https://kafka.apache.org/documentation/#recordbatch

use std::io;
use std::path::Path;
use std::time::UNIX_EPOCH;

use super::batch::BatchHeader;
use super::index::{OffsetIndex, TimeIndex};
use super::scan::{BatchScanner, ScanError};
use super::segment::{
    file_name, open_log, Placed, Segment, SegmentReport, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX,
};
use super::util::annotate;

impl Segment {
    fn open_files(dir: &Path, base: i64, active: bool) -> io::Result<Self> {
        let log_path = dir.join(file_name(base, LOG_SUFFIX));
        let log = open_log(&log_path)?;
        let meta = log.metadata().map_err(|e| annotate(e, &log_path))?;
        // The roll clock of a reopened segment: its birth time where the file system records one.
        let born = meta.created().or_else(|_| meta.modified()).ok();
        let created_ms = born.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_millis() as i64);
        let oi = OffsetIndex::open(&dir.join(file_name(base, INDEX_SUFFIX)), active)?;
        let ti = TimeIndex::open(&dir.join(file_name(base, TIME_INDEX_SUFFIX)), active)?;
        let mut seg = Self::assemble(base, log_path, log, oi, ti, created_ms);
        seg.size = meta.len();
        Ok(seg)
    }

    /// Opens a segment whose log bytes are trusted. `next_offset` is known for all but the last segment
    /// (the next segment's base); for the last one it is found by scanning from the last index entry.
    /// Indexes that fail the checks are rebuilt; if the tail scan finds bad bytes the whole segment is
    /// recovered instead.
    pub fn open(
        dir: &Path,
        base: i64,
        next_offset: Option<i64>,
        thorough: bool,
        interval: u64,
    ) -> io::Result<(Self, SegmentReport)> {
        let active = next_offset.is_none();
        let mut seg = Self::open_files(dir, base, active)?;
        let size = seg.size;
        let offsets_ok = seg.offset_index.validate(thorough, |prev, e| {
            prev.is_none_or(|p| p.rel < e.rel && p.pos < e.pos)
                && u64::from(e.pos) < size
                && next_offset.is_none_or(|n| base + i64::from(e.rel) < n)
        })?;
        if !offsets_ok {
            tracing::warn!(index = %seg.offset_index.path().display(), "offset index is damaged; rebuilding it from the log");
            return seg.rebuild(interval, active);
        }
        match next_offset {
            Some(n) => seg.next_offset = n,
            None => {
                if let Err(reason) = seg.find_end() {
                    tracing::warn!(log = %seg.log_path.display(), %reason, "log tail does not match its index; recovering the segment");
                    return seg.rebuild(interval, active);
                }
            }
        }
        let next = seg.next_offset;
        let times_ok = seg.time_index.validate(thorough, |prev, e| {
            prev.is_none_or(|p| p.timestamp < e.timestamp && p.rel <= e.rel) && base + i64::from(e.rel) < next
        })? && (size == 0 || seg.time_index.len() > 0);
        if !times_ok {
            tracing::warn!(index = %seg.time_index.path().display(), "time index is damaged; rebuilding it from the log");
            return seg.rebuild(interval, active);
        }
        let indexed_max = seg.time_index.last().map(|e| e.timestamp);
        seg.max_timestamp = match (seg.max_timestamp, indexed_max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        Ok((seg, SegmentReport::default()))
    }

    /// Opens a segment whose bytes may be torn or corrupt (written after the last recovery point).
    pub fn recover(dir: &Path, base: i64, active: bool, interval: u64) -> io::Result<(Self, SegmentReport)> {
        Self::open_files(dir, base, active)?.rebuild(interval, active)
    }

    /// Walks the headers after the last offset-index entry to find the log end of the last segment.
    fn find_end(&mut self) -> Result<(), String> {
        let (start_pos, start_offset) = match self.offset_index.last() {
            Some(e) => (u64::from(e.pos), self.base_offset + i64::from(e.rel)),
            None => (0, self.base_offset),
        };
        let log = self.log.clone();
        let mut scanner = BatchScanner::new(&log, start_pos, self.size);
        let mut expected = start_offset;
        let mut max_ts = None::<i64>;
        loop {
            match scanner.next_batch(false) {
                Ok(None) => break,
                Ok(Some(b)) => {
                    if b.header.base_offset != expected {
                        return Err(format!(
                            "batch at position {} has offset {}, expected {expected}",
                            b.pos, b.header.base_offset
                        ));
                    }
                    expected = b.header.last_offset() + 1;
                    max_ts = Some(max_ts.map_or(b.header.max_timestamp, |m| m.max(b.header.max_timestamp)));
                    self.last_batch_rel = Some((b.header.base_offset - self.base_offset) as u32);
                }
                Err(ScanError::Invalid { pos, reason }) => return Err(format!("at position {pos}: {reason}")),
                Err(ScanError::Io(e)) => return Err(annotate(e, &self.log_path).to_string()),
            }
        }
        self.next_offset = expected;
        self.max_timestamp = max_ts;
        self.bytes_since_index = self.size - start_pos;
        Ok(())
    }

    /// Re-reads the whole log, verifying every batch, cutting it at the first bad one, and rewriting both
    /// indexes.
    fn rebuild(mut self, interval: u64, active: bool) -> io::Result<(Self, SegmentReport)> {
        self.offset_index.reset()?;
        self.time_index.reset()?;
        self.max_timestamp = None;
        self.last_batch_rel = None;
        self.bytes_since_index = 0;
        let file_len = self.log.metadata().map_err(|e| annotate(e, &self.log_path))?.len();
        let log = self.log.clone();
        let mut scanner = BatchScanner::new(&log, 0, file_len);
        let mut expected = self.base_offset;
        let mut valid_end = 0;
        let mut stop = None;
        loop {
            let placed = match scanner.next_batch(true) {
                Ok(None) => break,
                Ok(Some(b)) => {
                    let h: BatchHeader = b.header;
                    if h.base_offset != expected {
                        stop = Some((b.pos, format!("base offset {} where {expected} was expected", h.base_offset)));
                        break;
                    }
                    if h.records_count < 1 || i64::from(h.last_offset_delta) != i64::from(h.records_count) - 1 {
                        stop = Some((
                            b.pos,
                            format!("recordsCount {} / lastOffsetDelta {}", h.records_count, h.last_offset_delta),
                        ));
                        break;
                    }
                    Placed {
                        pos: b.pos,
                        base_offset: h.base_offset,
                        last_offset: h.last_offset(),
                        max_timestamp: h.max_timestamp,
                    }
                }
                Err(ScanError::Invalid { pos, reason }) => {
                    stop = Some((pos, reason));
                    break;
                }
                Err(ScanError::Io(e)) => return Err(annotate(e, &self.log_path)),
            };
            let size = scanner.position() - placed.pos;
            self.track(placed, size, interval)?;
            expected = placed.last_offset + 1;
            valid_end = scanner.position();
        }
        if let Some((pos, reason)) = &stop {
            tracing::warn!(
                log = %self.log_path.display(), position = pos, %reason, cut_bytes = file_len - valid_end,
                "truncating the log at the first torn or corrupt batch"
            );
        }
        if valid_end < file_len {
            self.log.set_len(valid_end).map_err(|e| annotate(e, &self.log_path))?;
        }
        self.size = valid_end;
        self.next_offset = expected;
        if !active {
            self.seal()?;
        }
        // A rebuilt segment is trusted by the next clean start, and a cut must not come undone.
        self.log.sync_data().map_err(|e| annotate(e, &self.log_path))?;
        self.sync_indexes()?;
        Ok((
            self,
            SegmentReport { scanned_bytes: valid_end, truncated_bytes: file_len - valid_end, rebuilt_indexes: 2 },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::segment::tests::fill;

    #[test]
    fn reopen_trusts_valid_indexes_and_rebuilds_broken_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut seg = Segment::create(dir.path(), 0, 0).unwrap();
        fill(&mut seg, 30, 100);
        seg.write_final_time_entry().unwrap();
        let (size, next, max) = (seg.size(), seg.next_offset(), seg.max_timestamp());
        drop(seg);

        let (seg, report) = Segment::open(dir.path(), 0, None, false, 100).unwrap();
        assert_eq!(report, SegmentReport::default());
        assert_eq!((seg.size(), seg.next_offset(), seg.max_timestamp()), (size, next, max));
        drop(seg);

        std::fs::write(dir.path().join(file_name(0, INDEX_SUFFIX)), [1u8; 12]).unwrap();
        let (seg, report) = Segment::open(dir.path(), 0, None, false, 100).unwrap();
        assert_eq!(report.rebuilt_indexes, 2);
        assert_eq!((seg.size(), seg.next_offset(), seg.max_timestamp()), (size, next, max));
        drop(seg);

        std::fs::remove_file(dir.path().join(file_name(0, TIME_INDEX_SUFFIX))).unwrap();
        let (seg, report) = Segment::open(dir.path(), 0, Some(next), true, 100).unwrap();
        assert_eq!(report.rebuilt_indexes, 2);
        assert_eq!(seg.max_timestamp(), max);
    }

    #[test]
    fn recover_cuts_at_the_first_bad_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut seg = Segment::create(dir.path(), 0, 0).unwrap();
        let positions = fill(&mut seg, 5, 0);
        let path = seg.log_path().to_owned();
        drop(seg);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[positions[3] as usize + 40] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (seg, report) = Segment::recover(dir.path(), 0, true, 0).unwrap();
        assert_eq!(seg.size(), positions[3]);
        assert_eq!(seg.next_offset(), 3);
        assert_eq!(report.truncated_bytes, bytes.len() as u64 - positions[3]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), positions[3]);
    }
}
