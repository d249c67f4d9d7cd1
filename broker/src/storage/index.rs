//! The sparse offset index (`.index`) and time index (`.timeindex`) of a segment.
//!
//! Both are append-only files of fixed-size big-endian entries, relative to the segment's base offset:
//!
//! - offset index, 8 bytes: relative offset u32 | file position u32 — one entry per `index.interval.bytes`
//!   of log, pointing at the start of a batch. A lookup gives a position at or before the wanted batch,
//!   and a short header scan from there finds it.
//! - time index, 12 bytes: timestamp i64 | relative offset u32 — the running maximum timestamp of the
//!   segment up to and including the batch at that offset. Timestamps strictly increase, so a binary
//!   search finds where a timestamp lookup may start without skipping any batch.
//!
//! The active segment keeps its entries in memory (lookups by tailing consumers are the hot path). Sealed
//! segments are searched with positioned reads, so a broker holding months of segments does not hold all
//! their indexes in RAM. Index files are never trusted blindly after a crash: a file whose size is not a
//! multiple of its entry size, that is not monotonic, or that points past the log is rebuilt from the log.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::marker::PhantomData;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::util::annotate;

pub(crate) trait IndexEntry: Copy + std::fmt::Debug {
    const SIZE: usize;
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(b: &[u8]) -> Self;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub rel: u32,
    pub pos: u32,
}

impl IndexEntry for OffsetEntry {
    const SIZE: usize = 8;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.rel.to_be_bytes());
        out.extend_from_slice(&self.pos.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        Self { rel: u32::from_be_bytes([b[0], b[1], b[2], b[3]]), pos: u32::from_be_bytes([b[4], b[5], b[6], b[7]]) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub timestamp: i64,
    pub rel: u32,
}

impl IndexEntry for TimeEntry {
    const SIZE: usize = 12;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.rel.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&b[..8]);
        Self { timestamp: i64::from_be_bytes(ts), rel: u32::from_be_bytes([b[8], b[9], b[10], b[11]]) }
    }
}

pub(crate) type OffsetIndex = IndexFile<OffsetEntry>;
pub(crate) type TimeIndex = IndexFile<TimeEntry>;

pub(crate) struct IndexFile<E> {
    path: PathBuf,
    file: Arc<File>,
    len: usize,
    last: Option<E>,
    /// All entries, for the active segment only.
    cache: Option<Vec<E>>,
    /// False when the file existed with a size that is not a whole number of entries, or did not exist.
    well_formed: bool,
    _entry: PhantomData<E>,
}

impl<E: IndexEntry> IndexFile<E> {
    /// Opens or creates the index at `path`. A missing file counts as not well formed: the caller must
    /// rebuild it, because a sealed segment's time index always holds at least its final entry.
    pub fn open(path: &Path, cached: bool) -> io::Result<Self> {
        let existed = path.exists();
        let file = OpenOptions::new().read(true).append(true).create(true).open(path).map_err(|e| annotate(e, path))?;
        let bytes = file.metadata().map_err(|e| annotate(e, path))?.len();
        let well_formed = existed && bytes % E::SIZE as u64 == 0;
        let len = (bytes / E::SIZE as u64) as usize;
        let mut index = Self {
            path: path.to_owned(),
            file: Arc::new(file),
            len,
            last: None,
            cache: None,
            well_formed,
            _entry: PhantomData,
        };
        if len > 0 {
            index.last = Some(index.entry_at(len - 1)?);
        }
        if cached {
            index.load_cache()?;
        }
        Ok(index)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self) -> Arc<File> {
        self.file.clone()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn last(&self) -> Option<E> {
        self.last
    }

    /// Checks every consecutive pair (`thorough`, or when the entries are in memory anyway), or else only
    /// the last entry, with `ok(previous, entry)`.
    pub fn validate(&self, thorough: bool, ok: impl Fn(Option<&E>, &E) -> bool) -> io::Result<bool> {
        if !self.well_formed {
            return Ok(false);
        }
        if thorough || self.cache.is_some() {
            let entries = self.all_entries()?;
            let mut prev = None;
            for e in &entries {
                if !ok(prev, e) {
                    return Ok(false);
                }
                prev = Some(e);
            }
            return Ok(true);
        }
        Ok(self.last.as_ref().is_none_or(|e| ok(None, e)))
    }

    pub fn append(&mut self, entry: E) -> io::Result<()> {
        let mut buf = Vec::with_capacity(E::SIZE);
        entry.encode(&mut buf);
        (&*self.file).write_all(&buf).map_err(|e| annotate(e, &self.path))?;
        self.len += 1;
        self.last = Some(entry);
        if let Some(cache) = &mut self.cache {
            cache.push(entry);
        }
        Ok(())
    }

    /// Empties the file, before a rebuild.
    pub fn reset(&mut self) -> io::Result<()> {
        self.file.set_len(0).map_err(|e| annotate(e, &self.path))?;
        self.len = 0;
        self.last = None;
        self.well_formed = true;
        if let Some(cache) = &mut self.cache {
            cache.clear();
        }
        Ok(())
    }

    /// The last entry for which `pred` holds; `pred` must hold for a prefix of the entries and not after.
    pub fn search_last(&self, pred: impl Fn(&E) -> bool) -> io::Result<Option<E>> {
        let (mut lo, mut hi) = (0usize, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if pred(&self.entry_at(mid)?) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == 0 {
            Ok(None)
        } else {
            self.entry_at(lo - 1).map(Some)
        }
    }

    /// Drops the in-memory copy once the segment is sealed.
    pub fn uncache(&mut self) {
        self.cache = None;
    }

    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data().map_err(|e| annotate(e, &self.path))
    }

    fn load_cache(&mut self) -> io::Result<()> {
        self.cache = Some(self.all_entries()?);
        Ok(())
    }

    fn all_entries(&self) -> io::Result<Vec<E>> {
        if let Some(cache) = &self.cache {
            return Ok(cache.clone());
        }
        let mut bytes = vec![0u8; self.len * E::SIZE];
        self.file.read_exact_at(&mut bytes, 0).map_err(|e| annotate(e, &self.path))?;
        Ok(bytes.chunks_exact(E::SIZE).map(E::decode).collect())
    }

    fn entry_at(&self, i: usize) -> io::Result<E> {
        if let Some(cache) = &self.cache {
            return Ok(cache[i]);
        }
        let mut b = vec![0u8; E::SIZE];
        self.file.read_exact_at(&mut b, (i * E::SIZE) as u64).map_err(|e| annotate(e, &self.path))?;
        Ok(E::decode(&b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_works_cached_and_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut idx = OffsetIndex::open(&path, true).unwrap();
        idx.reset().unwrap();
        for i in 0..100u32 {
            idx.append(OffsetEntry { rel: i * 10, pos: i * 1000 }).unwrap();
        }
        let disk = OffsetIndex::open(&path, false).unwrap();
        for index in [&idx, &disk] {
            assert_eq!(index.search_last(|e| e.rel <= 5).unwrap(), Some(OffsetEntry { rel: 0, pos: 0 }));
            assert_eq!(index.search_last(|e| e.rel <= 555).unwrap(), Some(OffsetEntry { rel: 550, pos: 55_000 }));
            assert_eq!(index.search_last(|e| e.rel <= 10_000).unwrap().unwrap().rel, 990);
            assert!(index.validate(true, |p, e| p.is_none_or(|p| p.rel < e.rel)).unwrap());
        }
        assert_eq!(disk.search_last(|_| false).unwrap(), None);
    }

    #[test]
    fn malformed_or_missing_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.timeindex");
        assert!(!TimeIndex::open(&path, false).unwrap().validate(false, |_, _| true).unwrap(), "missing file");
        std::fs::write(&path, [0u8; 13]).unwrap();
        assert!(!TimeIndex::open(&path, false).unwrap().validate(false, |_, _| true).unwrap(), "13 bytes");
        let mut t = TimeIndex::open(&path, false).unwrap();
        t.reset().unwrap();
        t.append(TimeEntry { timestamp: 5, rel: 0 }).unwrap();
        t.append(TimeEntry { timestamp: 4, rel: 1 }).unwrap();
        let t = TimeIndex::open(&path, false).unwrap();
        assert!(t.validate(false, |p, e| p.is_none_or(|p| p.timestamp < e.timestamp)).unwrap(), "light check");
        assert!(!t.validate(true, |p, e| p.is_none_or(|p| p.timestamp < e.timestamp)).unwrap(), "not monotonic");
    }
}
