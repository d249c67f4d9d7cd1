//! The registry: for every known file identity, its last path and the offset up to which every event
//! has been acknowledged by the output.
//!
//! On disk it is a versioned JSON document written tmp → fsync → rename → fsync(dir) with mode 0600
//! (vector `checkpointer.rs`), so a crash leaves either the old or the new registry, never a torn one.
//!
//! [`AckedRanges`] turns acknowledgements, which arrive out of order across partitions, into an offset
//! that only ever moves past a contiguous prefix of acknowledged events.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::identity::FileIdentity;

pub const REGISTRY_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistryFile {
    pub version: u32,
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub identity: FileIdentity,
    /// Where the file was last seen.
    pub path: PathBuf,
    /// Every byte before this offset belongs to an acknowledged (or filtered-out) event.
    pub offset: u64,
    pub dev: u64,
    pub ino: u64,
    /// Length and xxh3-64 of the file's first bytes as known (at most 1 KiB). A candidate file only
    /// resumes this entry if its own first `head_len` bytes hash the same: this is what stops a reused
    /// inode from resuming at someone else's offset.
    pub head_len: usize,
    pub head_hash: u64,
    /// Unix milliseconds when the file was last seen by a scan; entries older than `clean_removed` go.
    pub last_seen_ms: i64,
}

impl RegistryFile {
    /// Loads the registry; a missing file is an empty registry.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self { version: REGISTRY_VERSION, entries: Vec::new() })
            }
            Err(source) => return Err(Error::Registry { path: path.into(), source }),
        };
        let file: RegistryFile =
            serde_json::from_slice(&bytes).map_err(|source| Error::RegistryFormat { path: path.into(), source })?;
        if file.version != REGISTRY_VERSION {
            return Err(Error::Registry {
                path: path.into(),
                source: std::io::Error::other(format!(
                    "registry version {} is not supported (this agent writes version {REGISTRY_VERSION})",
                    file.version
                )),
            });
        }
        Ok(file)
    }

    /// Writes atomically (mode 0600, `logpipe_durable::write_atomic`), creating the directory if needed.
    pub fn save(&self, path: &Path) -> Result<()> {
        let io = |source| Error::Registry { path: path.into(), source };
        let bytes = serde_json::to_vec(self).map_err(|e| io(std::io::Error::other(e)))?;
        let options = logpipe_durable::WriteOptions { mode: Some(0o600), create_dir: true };
        logpipe_durable::write_atomic_with(path, &bytes, options).map_err(io)
    }
}

/// The acknowledged prefix of one file, from out-of-order acknowledgements of byte ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckedRanges {
    offset: u64,
    /// Acknowledged ranges beyond `offset`, start → end, not touching `offset`.
    ahead: BTreeMap<u64, u64>,
}

impl AckedRanges {
    pub fn new(offset: u64) -> Self {
        Self { offset, ahead: BTreeMap::new() }
    }

    /// Every byte before this is acknowledged.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Number of ranges waiting for a gap before them to close.
    pub fn gaps(&self) -> usize {
        self.ahead.len()
    }

    /// Records that `[start, end)` is done. Returns whether the offset moved. Overlapping and repeated
    /// ranges are fine (an event may be sent twice after a copytruncate).
    pub fn ack(&mut self, start: u64, end: u64) -> bool {
        if end <= self.offset {
            return false;
        }
        if start > self.offset {
            let e = self.ahead.entry(start).or_insert(end);
            *e = (*e).max(end);
            return false;
        }
        self.offset = end;
        while let Some((&s, &e)) = self.ahead.first_key_value() {
            if s > self.offset {
                break;
            }
            self.ahead.pop_first();
            self.offset = self.offset.max(e);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn out_of_order_acks_advance_only_a_contiguous_prefix() {
        let mut a = AckedRanges::new(100);
        assert!(!a.ack(110, 120));
        assert!(!a.ack(130, 140));
        assert_eq!(a.offset(), 100);
        assert!(a.ack(100, 110));
        assert_eq!(a.offset(), 120);
        assert!(a.ack(120, 130));
        assert_eq!(a.offset(), 140);
        assert!(!a.ack(50, 60));
        assert_eq!(a.gaps(), 0);
    }

    proptest! {
        #[test]
        fn any_ack_order_ends_at_the_end(lens in proptest::collection::vec(1u64..50, 1..60), seed in any::<u64>()) {
            let mut ranges = Vec::new();
            let mut off = 7;
            for l in &lens { ranges.push((off, off + l)); off += l; }
            let end = off;
            // A deterministic shuffle, with some ranges acknowledged twice.
            let mut order: Vec<usize> = (0..ranges.len()).chain((0..ranges.len()).step_by(3)).collect();
            let mut s = seed | 1;
            for i in (1..order.len()).rev() { s ^= s << 13; s ^= s >> 7; s ^= s << 17; order.swap(i, (s % (i as u64 + 1)) as usize); }
            let mut a = AckedRanges::new(7);
            let mut done = vec![false; ranges.len()];
            for i in order {
                a.ack(ranges[i].0, ranges[i].1);
                done[i] = true;
                // The offset is exactly the end of the longest acknowledged prefix.
                let prefix = done.iter().take_while(|d| **d).count();
                let expect = if prefix == 0 { 7 } else { ranges[prefix - 1].1 };
                prop_assert_eq!(a.offset(), expect);
            }
            prop_assert_eq!(a.offset(), end);
            prop_assert_eq!(a.gaps(), 0);
        }
    }

    #[test]
    fn save_is_atomic_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/registry.json");
        let reg = RegistryFile {
            version: REGISTRY_VERSION,
            entries: vec![Entry {
                identity: FileIdentity::Fingerprint { hash: 0xdead_beef },
                path: "/var/log/a.log".into(),
                offset: 42,
                dev: 1,
                ino: 2,
                head_len: 1024,
                head_hash: 0xdead_beef,
                last_seen_ms: 1_700_000_000_000,
            }],
        };
        reg.save(&path).unwrap();
        assert_eq!(RegistryFile::load(&path).unwrap(), reg);
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!dir.path().join("sub/registry.json.tmp").exists());
        // A leftover tmp from a crash mid-write does not affect loading, and the next save replaces it.
        fs::write(dir.path().join("sub/registry.json.tmp"), b"{torn").unwrap();
        assert_eq!(RegistryFile::load(&path).unwrap(), reg);
        reg.save(&path).unwrap();
        assert_eq!(RegistryFile::load(&path).unwrap(), reg);
        // Missing → empty; corrupt → an error that names the file.
        assert!(RegistryFile::load(&dir.path().join("none.json")).unwrap().entries.is_empty());
        fs::write(&path, b"{not json").unwrap();
        assert!(RegistryFile::load(&path).unwrap_err().to_string().contains("registry.json"));
    }
}
