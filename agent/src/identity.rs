//! File identity: what makes "the same file" across renames, restarts and inode reuse.
//!
//! A file is identified by a fingerprint of its first [`FINGERPRINT_BYTES`] bytes once it has that many
//! (vector's `checksum` fingerprinter), and by device + inode while it is smaller. Never by its path: a
//! renamed file keeps its identity, and a new file at an old path gets a new one.
//!
//! Device + inode alone is unsafe because inodes are reused after a delete. So every registry entry also
//! keeps the length and hash of the file's first bytes as far as they were known (the [`Head`]); a
//! candidate file only resumes an entry if its own first bytes hash the same.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_128, xxh3_64, Xxh3};

/// Bytes hashed for a fingerprint. Log lines carry timestamps, so 1 KiB tells files apart.
pub const FINGERPRINT_BYTES: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FileIdentity {
    /// xxh3-64 of the first [`FINGERPRINT_BYTES`] bytes.
    Fingerprint { hash: u64 },
    /// For files smaller than [`FINGERPRINT_BYTES`].
    DevInode { dev: u64, ino: u64 },
}

impl FileIdentity {
    /// The identity of a file whose first bytes are `head` (at most [`FINGERPRINT_BYTES`]).
    pub fn of(head: &Head, dev: u64, ino: u64) -> Self {
        if head.is_full() {
            FileIdentity::Fingerprint { hash: head.hash() }
        } else {
            FileIdentity::DevInode { dev, ino }
        }
    }
}

impl std::fmt::Display for FileIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileIdentity::Fingerprint { hash } => write!(f, "fp:{hash:016x}"),
            FileIdentity::DevInode { dev, ino } => write!(f, "dev:{dev}:ino:{ino}"),
        }
    }
}

/// The first bytes of a file, up to [`FINGERPRINT_BYTES`], as far as they are known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Head {
    bytes: Vec<u8>,
}

impl Head {
    /// Reads the first bytes of `file` (positional read; the file's cursor is untouched).
    pub fn read(file: &File) -> io::Result<Self> {
        let mut bytes = vec![0; FINGERPRINT_BYTES];
        let mut n = 0;
        while n < bytes.len() {
            match file.read_at(&mut bytes[n..], n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        bytes.truncate(n);
        Ok(Self { bytes })
    }

    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self { bytes: bytes[..bytes.len().min(FINGERPRINT_BYTES)].to_vec() }
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.bytes.len() == FINGERPRINT_BYTES
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn hash(&self) -> u64 {
        xxh3_64(&self.bytes)
    }

    /// Hash of the first `len` bytes (`len <= self.len()`).
    pub fn hash_prefix(&self, len: usize) -> u64 {
        xxh3_64(&self.bytes[..len])
    }

    /// Whether this head starts with a head of `len` bytes hashing to `hash`.
    pub fn extends(&self, len: usize, hash: u64) -> bool {
        len <= self.bytes.len() && self.hash_prefix(len) == hash
    }

    /// Whether a file whose first bytes are `self` may be an unfinished copy of a file whose first bytes
    /// are `known` (`cp`, or logrotate's copytruncate, still writing it): `self` is shorter than
    /// [`FINGERPRINT_BYTES`], so the fingerprint cannot tell yet, and the bytes the two have in common
    /// agree. An empty `self` agrees with everything; an empty `known` tells nothing and never agrees.
    pub fn may_be_copy_of(&self, known: &Head) -> bool {
        let common = self.len().min(known.len());
        !self.is_full() && !known.is_empty() && self.bytes[..common] == known.bytes[..common]
    }

    /// [`Head::may_be_copy_of`] for a file known only by the length and hash of its first bytes (a
    /// registry entry not opened since the start). Only a head at least that long can be checked; a
    /// shorter one counts as not a copy.
    pub fn may_be_copy_of_recorded(&self, len: usize, hash: u64) -> bool {
        !self.is_full() && len > 0 && self.extends(len, hash)
    }

    /// Records bytes read at `offset`; only the part that extends the head contiguously is kept.
    pub fn observe(&mut self, offset: u64, data: &[u8]) {
        let have = self.bytes.len() as u64;
        if have >= FINGERPRINT_BYTES as u64 || offset > have || offset + data.len() as u64 <= have {
            return;
        }
        let from = (have - offset) as usize;
        let take = (FINGERPRINT_BYTES - self.bytes.len()).min(data.len() - from);
        self.bytes.extend_from_slice(&data[from..from + take]);
    }

    /// The basis of `event.id` for an event ending at byte `end`: the hash of the file's first
    /// `min(end, FINGERPRINT_BYTES)` bytes. For events past the first KiB this is the fingerprint; for
    /// earlier ones it covers only bytes that were on disk when the event was read, so re-reading the
    /// same file after a crash gives the same id even while the file is too small to fingerprint.
    pub fn id_basis(&self, end: u64) -> u64 {
        let len = (end.min(FINGERPRINT_BYTES as u64) as usize).min(self.bytes.len());
        xxh3_64(&self.bytes[..len])
    }
}

/// Device and inode of a file or open handle.
pub fn dev_ino(meta: &std::fs::Metadata) -> (u64, u64) {
    (meta.dev(), meta.ino())
}

/// `event.id`: 32 hex chars of xxh3-128 over (host name, identity basis, start offset, end offset).
///
/// The end is part of it because an event's start does not say where it stops: a multiline event sent at
/// its timeout, or a partial last line sent at close, and read again whole after a crash (before its
/// acknowledgement reached the registry) starts at the same offset but is longer. With the same id, the
/// indexer's `create` would answer 409 for it and its extra lines would be lost; with its own, it is a
/// duplicate at worst. The same event read again (same start and end) keeps its id. Streams, which have
/// no offsets, pass the event's sequence number in the run as both.
pub fn event_id(host: &str, basis: u64, start: u64, end: u64) -> [u8; 32] {
    // One-shot over a stack buffer: the streaming hasher's state is over 500 bytes to set up per event,
    // which cost more than the hashing. Both give the same digest for the same bytes.
    const ID_INPUT: usize = 256;
    let host = host.as_bytes();
    let len = host.len() + 25;
    if len > ID_INPUT {
        let mut h = Xxh3::new();
        h.update(host);
        h.update(&[0]);
        h.update(&basis.to_le_bytes());
        h.update(&start.to_le_bytes());
        h.update(&end.to_le_bytes());
        return hex32(h.digest128());
    }
    let mut input = [0u8; ID_INPUT];
    let mut at = host.len() + 1;
    input[..host.len()].copy_from_slice(host);
    for word in [basis, start, end] {
        input[at..at + 8].copy_from_slice(&word.to_le_bytes());
        at += 8;
    }
    hex32(xxh3_128(&input[..len]))
}

pub(crate) fn hex32(v: u128) -> [u8; 32] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (i, b) in v.to_be_bytes().iter().enumerate() {
        out[2 * i] = HEX[(b >> 4) as usize];
        out[2 * i + 1] = HEX[(b & 15) as usize];
    }
    out
}

/// Reads the whole head through an ordinary `Read` (used by tests).
pub fn head_of(mut r: impl Read) -> io::Result<Head> {
    let mut bytes = Vec::new();
    r.by_ref().take(FINGERPRINT_BYTES as u64).read_to_end(&mut bytes)?;
    Ok(Head { bytes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn small_files_use_dev_inode_large_ones_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut f = File::create(&path).unwrap();
        f.write_all(b"hello\n").unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        let (dev, ino) = dev_ino(&meta);
        let head = Head::read(&File::open(&path).unwrap()).unwrap();
        assert_eq!(FileIdentity::of(&head, dev, ino), FileIdentity::DevInode { dev, ino });
        f.write_all(&[b'x'; 2000]).unwrap();
        let head2 = Head::read(&File::open(&path).unwrap()).unwrap();
        assert!(head2.is_full());
        assert!(head2.extends(head.len(), head.hash()));
        let id = FileIdentity::of(&head2, dev, ino);
        assert!(matches!(id, FileIdentity::Fingerprint { .. }));
        // Renaming keeps the identity.
        std::fs::rename(&path, dir.path().join("a.log.1")).unwrap();
        let head3 = Head::read(&File::open(dir.path().join("a.log.1")).unwrap()).unwrap();
        assert_eq!(FileIdentity::of(&head3, 0, 0), id);
    }

    #[test]
    fn observe_builds_the_head_contiguously() {
        let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let mut head = Head::default();
        head.observe(10, &data[10..20]); // gap: ignored
        assert!(head.is_empty());
        let mut off = 0;
        for chunk in data.chunks(7) {
            head.observe(off, chunk);
            off += chunk.len() as u64;
        }
        assert_eq!(head.bytes(), &data[..FINGERPRINT_BYTES]);
        assert_eq!(head, head_of(&data[..]).unwrap());
    }

    const PINNED_ID: &str = "f63227055317503da7ec5d3a868fa579";

    #[test]
    fn event_id_is_stable_and_distinguishes_inputs() {
        let a = event_id("web-01", 42, 100, 180);
        assert_eq!(a, event_id("web-01", 42, 100, 180));
        assert_ne!(a, event_id("web-02", 42, 100, 180));
        assert_ne!(a, event_id("web-01", 43, 100, 180));
        assert_ne!(a, event_id("web-01", 42, 101, 180));
        assert!(a.iter().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        // Pinned: the id must not change between releases, or re-sent events stop deduplicating. (It changed
        // once, when the end offset was added: an event resent across that upgrade comes twice, none is lost.)
        let pinned = event_id("web-01", 0x0123_4567_89ab_cdef, 123456, 123500);
        assert_eq!(std::str::from_utf8(&pinned).unwrap(), PINNED_ID);
    }

    /// An event that starts where another did but ends elsewhere (cut by the multiline timeout, then read
    /// whole after a crash) is another event: with the same id its longer copy would be taken for a
    /// duplicate and dropped by the indexer's `create`.
    #[test]
    fn event_id_covers_where_the_event_ends() {
        assert_ne!(event_id("web-01", 42, 100, 180), event_id("web-01", 42, 100, 260));
        assert_ne!(event_id("web-01", 42, 100, 180), event_id("web-01", 42, 180, 100), "start and end not mixed");
    }

    #[test]
    fn event_id_is_the_streamed_hash_for_short_and_long_host_names() {
        for host in [String::new(), "web-01".into(), "h".repeat(231), "h".repeat(232), "h".repeat(1000)] {
            let mut h = Xxh3::new();
            h.update(host.as_bytes());
            h.update(&[0]);
            h.update(&7u64.to_le_bytes());
            h.update(&9u64.to_le_bytes());
            h.update(&11u64.to_le_bytes());
            assert_eq!(event_id(&host, 7, 9, 11), hex32(h.digest128()), "host of {} bytes", host.len());
        }
    }

    #[test]
    fn an_unfinished_copy_agrees_with_the_first_bytes_of_its_source() {
        let source: Vec<u8> = (0..2000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let known = Head::from_bytes(&source);
        assert!(Head::default().may_be_copy_of(&known), "an empty file may be a copy that has not started");
        assert!(Head::from_bytes(&source[..500]).may_be_copy_of(&known));
        assert!(!Head::from_bytes(b"something else").may_be_copy_of(&known));
        // A full head is decided by its fingerprint, not by this.
        assert!(!Head::from_bytes(&source[..FINGERPRINT_BYTES]).may_be_copy_of(&known));
        // Nothing agrees with an empty file.
        assert!(!Head::from_bytes(b"x").may_be_copy_of(&Head::default()));
        // A small source (known by device+inode) may have grown since it was read: a longer copy agrees.
        let small = Head::from_bytes(&source[..100]);
        assert!(Head::from_bytes(&source[..300]).may_be_copy_of(&small));
        assert!(Head::from_bytes(&source[..300]).may_be_copy_of_recorded(100, small.hash()));
        assert!(!Head::from_bytes(&source[..50]).may_be_copy_of_recorded(100, small.hash()));
        assert!(!Head::from_bytes(b"other bytes").may_be_copy_of_recorded(5, small.hash_prefix(5)));
    }

    #[test]
    fn id_basis_of_early_events_only_covers_bytes_before_their_end() {
        let mut head = Head::from_bytes(b"line one\nline two\n");
        let early = head.id_basis(9);
        head.observe(18, b"more data that arrives later\n");
        assert_eq!(head.id_basis(9), early);
        assert_ne!(head.id_basis(18), early);
    }
}
