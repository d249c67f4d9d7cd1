//! A full disk is a condition to wait out, not a failure to stop for.
//!
//! When `log_dirs` fills up, `write()` returns ENOSPC (or EDQUOT) before the bytes reach the page cache.
//! Unlike a failed fsync (see `flusher.rs`, which fails stop), nothing acknowledged is at stake: the
//! append that hit the wall is cut back off the segment, the producer gets `KAFKA_STORAGE_ERROR`
//! (which every Kafka client retries), and the next append simply tries again, so produce resumes on
//! its own once retention, a deleted topic or an operator frees space. A roll that cannot create its new
//! segment is undone the same way. Each partition logs the state change once, not every request.
//!
//! While a partition is marked full it does not even try to write until the file system has room for
//! the append plus [`RESUME_HEADROOM`]: otherwise small batches squeezing into the last free blocks would
//! make it flap between full and not (and log each time).

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use super::producer_snapshot::SNAPSHOT_SUFFIX;
use super::segment::{file_name, remove_files};

/// Free space, beyond the append itself, a full partition waits for before it writes again.
pub(crate) const RESUME_HEADROOM: u64 = 1 << 20;

/// Bytes an unprivileged writer may still use on the file system holding `dir`.
pub(crate) fn available_bytes(dir: &Path) -> io::Result<u64> {
    let s = rustix::fs::statvfs(dir).map_err(io::Error::from)?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

/// ENOSPC or EDQUOT.
pub(crate) fn is_full(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
}

/// Removes what a roll at `base` left before it failed (its new segment files and snapshot).
pub(crate) fn remove_roll_leftovers(dir: &Path, base: i64) {
    let _ = remove_files(dir, base);
    let snapshot = dir.join(file_name(base, SNAPSHOT_SUFFIX));
    let _ = std::fs::remove_file(&snapshot);
    let mut tmp = snapshot.into_os_string();
    tmp.push(".tmp");
    let _ = std::fs::remove_file(tmp);
}

/// Whether a partition is refusing appends for lack of space, to log the change once each way, and for
/// how long and how much room it waits for, for `logpipe status`.
#[derive(Debug, Default)]
pub(crate) struct DiskFull(AtomicBool, AtomicI64, AtomicU64);

/// A partition refusing appends for lack of space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskShortage {
    /// When it began, milliseconds since the Unix epoch.
    pub since_ms: i64,
    /// Free bytes on the file system now.
    pub available_bytes: u64,
    /// Free bytes it waits for: the refused append plus the resume headroom.
    pub needed_bytes: u64,
}

impl DiskFull {
    pub fn report(&self, dir: &Path, e: &io::Error, incoming: u64) {
        self.2.store(incoming.saturating_add(RESUME_HEADROOM), Ordering::Release);
        if !self.0.swap(true, Ordering::AcqRel) {
            self.1.store(super::log_manager::wall_clock_ms(), Ordering::Release);
            tracing::warn!(
                dir = %dir.display(),
                available_bytes = available_bytes(dir).unwrap_or(0),
                error = %e,
                "disk full: produce to this partition is refused with KAFKA_STORAGE_ERROR (clients retry) \
                 until space is freed; records already written stay readable"
            );
        }
    }

    /// While marked full: the error to answer without writing, unless there is room again for
    /// `incoming` bytes and the headroom.
    pub fn still_full(&self, dir: &Path, incoming: u64) -> Option<io::Error> {
        if !self.0.load(Ordering::Acquire) {
            return None;
        }
        let available = available_bytes(dir).ok()?;
        let needed = incoming.saturating_add(RESUME_HEADROOM);
        self.2.store(needed, Ordering::Release);
        (available < needed).then(|| {
            io::Error::new(
                io::ErrorKind::StorageFull,
                format!("{}: disk full ({available} bytes free, waiting for {needed})", dir.display()),
            )
        })
    }

    /// The shortage while marked full.
    pub fn shortage(&self, dir: &Path) -> Option<DiskShortage> {
        self.0.load(Ordering::Acquire).then(|| DiskShortage {
            since_ms: self.1.load(Ordering::Acquire),
            available_bytes: available_bytes(dir).unwrap_or(0),
            needed_bytes: self.2.load(Ordering::Acquire),
        })
    }

    pub fn cleared(&self, dir: &Path) {
        if self.0.load(Ordering::Acquire) && self.0.swap(false, Ordering::AcqRel) {
            tracing::info!(dir = %dir.display(), "space is available again: produce to this partition resumes");
        }
    }
}
