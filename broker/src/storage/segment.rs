//! One segment of a partition log: `{base_offset:020}.log` plus its `.index` and `.timeindex`.
//!
//! A segment is a file of record batches exactly as producers sent them (with the broker's offsets in
//! `baseOffset`). Only the last segment of a partition is written to; when it is full or old it is
//! sealed (its final time-index entry is written, its in-memory index dropped) and a new one is started.
//!
//! Opening an existing segment (trusted or recovered) lives in `segment_load.rs`.
//!
//! References: https://kafka.apache.org/documentation/#recordbatch, https://kafka.apache.org/documentation/#log

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use super::index::{OffsetEntry, OffsetIndex, TimeEntry, TimeIndex};
use super::util::annotate;

pub(crate) const LOG_SUFFIX: &str = "log";
pub(crate) const INDEX_SUFFIX: &str = "index";
pub(crate) const TIME_INDEX_SUFFIX: &str = "timeindex";

pub(crate) fn file_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:020}.{suffix}")
}

/// What opening or recovering a segment had to do, for logs and for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SegmentReport {
    /// Bytes read and CRC-checked by a recovery scan.
    pub scanned_bytes: u64,
    /// Bytes cut off the end of the log because they were torn or corrupt.
    pub truncated_bytes: u64,
    /// Index files (offset or time) rebuilt from the log.
    pub rebuilt_indexes: u32,
}

/// Where a batch was placed, for index maintenance.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placed {
    pub pos: u64,
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
}

pub(crate) struct Segment {
    pub base_offset: i64,
    pub(super) log_path: PathBuf,
    pub(super) log: Arc<File>,
    pub(super) size: u64,
    pub(super) next_offset: i64,
    pub(super) offset_index: OffsetIndex,
    pub(super) time_index: TimeIndex,
    /// Largest batch maxTimestamp in the segment; None while it holds no batch.
    pub(super) max_timestamp: Option<i64>,
    pub(super) last_batch_rel: Option<u32>,
    pub(super) bytes_since_index: u64,
    pub(super) created_ms: i64,
}

pub(super) fn open_log(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).append(true).create(true).open(path).map_err(|e| annotate(e, path))
}

impl Segment {
    /// Starts an empty segment at `base_offset`. A leftover file of that name can only hold bytes that
    /// were never acknowledged (the log end is the base offset), so it is emptied.
    pub fn create(dir: &Path, base_offset: i64, now_ms: i64) -> io::Result<Self> {
        let log_path = dir.join(file_name(base_offset, LOG_SUFFIX));
        let log = open_log(&log_path)?;
        log.set_len(0).map_err(|e| annotate(e, &log_path))?;
        let mut offset_index = OffsetIndex::open(&dir.join(file_name(base_offset, INDEX_SUFFIX)), true)?;
        let mut time_index = TimeIndex::open(&dir.join(file_name(base_offset, TIME_INDEX_SUFFIX)), true)?;
        offset_index.reset()?;
        time_index.reset()?;
        Ok(Self::assemble(base_offset, log_path, log, offset_index, time_index, now_ms))
    }

    pub(super) fn assemble(
        base: i64,
        log_path: PathBuf,
        log: File,
        oi: OffsetIndex,
        ti: TimeIndex,
        created_ms: i64,
    ) -> Self {
        Self {
            base_offset: base,
            log_path,
            log: Arc::new(log),
            size: 0,
            next_offset: base,
            offset_index: oi,
            time_index: ti,
            max_timestamp: None,
            last_batch_rel: None,
            bytes_since_index: 0,
            created_ms,
        }
    }

    /// Appends already-offset-assigned batches. The write goes to the page cache only; durability is the
    /// flusher's job. On error the file may hold part of the bytes: the caller must stop appending.
    pub fn append(&mut self, bytes: &[u8], batches: &[Placed], interval: u64) -> io::Result<()> {
        if let Err(e) = (&*self.log).write_all(bytes) {
            // A full disk: cut off whatever part of the append reached the file, so the segment is as
            // it was and the append can be retried (see `full_disk.rs`). Only then is the error "full".
            if super::full_disk::is_full(&e) && self.log.set_len(self.size).is_ok() {
                return Err(annotate(e, &self.log_path));
            }
            return Err(io::Error::other(annotate(e, &self.log_path)));
        }
        let start = self.size;
        for (i, b) in batches.iter().enumerate() {
            let end = batches.get(i + 1).map_or(bytes.len() as u64, |n| n.pos);
            // Index entries may already be written for earlier batches: never a retryable "full".
            self.track(Placed { pos: start + b.pos, ..*b }, end - b.pos, interval).map_err(io::Error::other)?;
        }
        self.size = start + bytes.len() as u64;
        Ok(())
    }

    /// Index bookkeeping for a batch at `b.pos` of `size` bytes.
    pub(super) fn track(&mut self, b: Placed, size: u64, interval: u64) -> io::Result<()> {
        let rel = (b.base_offset - self.base_offset) as u32;
        let max = self.max_timestamp.map_or(b.max_timestamp, |m| m.max(b.max_timestamp));
        self.max_timestamp = Some(max);
        if self.bytes_since_index >= interval {
            self.offset_index.append(OffsetEntry { rel, pos: b.pos as u32 })?;
            self.append_time_entry(max, rel)?;
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += size;
        self.last_batch_rel = Some(rel);
        self.next_offset = b.last_offset + 1;
        Ok(())
    }

    fn append_time_entry(&mut self, timestamp: i64, rel: u32) -> io::Result<()> {
        match self.time_index.last() {
            Some(last) if last.timestamp >= timestamp => Ok(()),
            _ => self.time_index.append(TimeEntry { timestamp, rel }),
        }
    }

    /// Records the running maximum timestamp as a final time-index entry, so a sealed (or cleanly closed)
    /// segment's newest timestamp is known without reading it.
    pub fn write_final_time_entry(&mut self) -> io::Result<()> {
        match (self.max_timestamp, self.last_batch_rel) {
            (Some(ts), Some(rel)) => self.append_time_entry(ts, rel),
            _ => Ok(()),
        }
    }

    /// Turns the active segment into a read-only one.
    pub fn seal(&mut self) -> io::Result<()> {
        self.write_final_time_entry()?;
        self.offset_index.uncache();
        self.time_index.uncache();
        Ok(())
    }

    /// The position of a batch at or before the one holding `offset`.
    pub fn position_for(&self, offset: i64) -> io::Result<u64> {
        let rel = (offset - self.base_offset).clamp(0, i64::from(u32::MAX)) as u32;
        Ok(self.offset_index.search_last(|e| e.rel <= rel)?.map_or(0, |e| u64::from(e.pos)))
    }

    /// The start of the last indexed batch that begins at or before `limit` and has a base offset below
    /// `below`: the batches before it are whole and below `below`, so a read may skip to it.
    pub fn indexed_batch_start(&self, limit: u64, below: i64) -> io::Result<Option<u64>> {
        let below = below - self.base_offset;
        let entry = self.offset_index.search_last(|e| u64::from(e.pos) <= limit && i64::from(e.rel) < below)?;
        Ok(entry.map(|e| u64::from(e.pos)))
    }

    /// A position from which scanning for the first batch with maxTimestamp ≥ `timestamp` skips nothing.
    pub fn position_for_timestamp(&self, timestamp: i64) -> io::Result<u64> {
        match self.time_index.search_last(|e| e.timestamp < timestamp)? {
            Some(e) => self.position_for(self.base_offset + i64::from(e.rel)),
            None => Ok(0),
        }
    }

    pub fn log(&self) -> Arc<File> {
        self.log.clone()
    }

    /// The log file and both indexes, for fsync.
    pub fn files(&self) -> [Arc<File>; 3] {
        [self.log.clone(), self.offset_index.file(), self.time_index.file()]
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    pub fn max_timestamp(&self) -> Option<i64> {
        self.max_timestamp
    }

    pub fn created_ms(&self) -> i64 {
        self.created_ms
    }

    /// Relative offsets and positions are u32 in the index files, as in Kafka.
    pub fn can_hold(&self, extra_bytes: u64, last_offset: i64) -> bool {
        self.size + extra_bytes <= u64::from(u32::MAX) && last_offset - self.base_offset <= i64::from(u32::MAX)
    }

    /// The newest record time, for time-based retention: the largest batch timestamp, or the file's
    /// modification time when batches carry none (-1).
    pub fn newest_timestamp(&self) -> io::Result<i64> {
        if let Some(ts) = self.max_timestamp.filter(|t| *t >= 0) {
            return Ok(ts);
        }
        let modified = self.log.metadata().and_then(|m| m.modified()).map_err(|e| annotate(e, &self.log_path))?;
        Ok(modified.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64))
    }

    pub fn sync_indexes(&self) -> io::Result<()> {
        self.offset_index.sync()?;
        self.time_index.sync()
    }

    /// Removes the three files. Readers holding the log's `Arc<File>` can still finish their reads.
    pub fn delete(&self) -> io::Result<()> {
        remove_files(self.log_path.parent().unwrap_or(Path::new(".")), self.base_offset)
    }
}

/// Removes a segment's log and index files; missing ones are fine.
pub(crate) fn remove_files(dir: &Path, base_offset: i64) -> io::Result<()> {
    for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
        let path = dir.join(file_name(base_offset, suffix));
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(annotate(e, &path)),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::storage::batch::{set_base_offset, TestBatch};

    /// Appends `n` single-record batches and returns each batch's position.
    pub(crate) fn fill(seg: &mut Segment, n: i64, interval: u64) -> Vec<u64> {
        let mut positions = Vec::new();
        for i in 0..n {
            let mut b = TestBatch::new(1).ts(100 + i).payload(30).build();
            let offset = seg.next_offset();
            set_base_offset(&mut b, offset);
            positions.push(seg.size());
            let placed = Placed { pos: 0, base_offset: offset, last_offset: offset, max_timestamp: 100 + i };
            seg.append(&b, &[placed], interval).unwrap();
        }
        positions
    }

    #[test]
    fn index_lookups_land_at_or_before_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut seg = Segment::create(dir.path(), 50, 0).unwrap();
        let positions = fill(&mut seg, 40, 200);
        for (i, pos) in positions.iter().enumerate() {
            let found = seg.position_for(50 + i as i64).unwrap();
            assert!(found <= *pos);
            assert!(*pos - found <= 200 + 100, "sparse index keeps scans short");
        }
        assert_eq!(seg.position_for_timestamp(100).unwrap(), 0);
        assert!(seg.position_for_timestamp(139).unwrap() <= positions[39]);
    }
}
