//! Writing the registry: what the [`FileTable`] records, at most every `registry_flush`, and only when
//! something changed. Offsets in it are each file's contiguous acknowledged prefix, so a restart resends
//! at most what was not acknowledged.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::file_table::FileTable;
use crate::error::Result;
use crate::registry::{Entry, RegistryFile, REGISTRY_VERSION};

/// The registry file and when it was last written.
pub(crate) struct Checkpointer {
    path: PathBuf,
    flush: Duration,
    last: Instant,
    /// The last write failed (a full disk, typically): said once, not every `registry_flush`.
    failing: bool,
}

impl Checkpointer {
    pub(crate) fn new(path: PathBuf, flush: Duration, now: Instant) -> Self {
        Self { path, flush, last: now, failing: false }
    }

    /// The entries of the registry file, if there is one.
    pub(crate) fn load(&self) -> Result<Vec<Entry>> {
        Ok(RegistryFile::load(&self.path)?.entries)
    }

    /// Writes the registry if something changed and `registry_flush` has passed since the last write.
    /// Called between read chunks as well as once per turn, so long catch-up turns keep the schedule.
    pub(crate) fn maybe_checkpoint(&mut self, files: &mut FileTable, now: Instant) {
        if files.is_unsaved() && now.saturating_duration_since(self.last) >= self.flush {
            // Shipping goes on either way; the write is retried every `registry_flush` while something is
            // unsaved. Said once per change of state, not once a second while a disk stays full.
            match self.save(files) {
                Ok(()) if self.failing => {
                    self.failing = false;
                    tracing::info!(path = %self.path.display(), "the registry is written again");
                }
                Ok(()) => {}
                Err(e) if !self.failing => {
                    self.failing = true;
                    tracing::error!(
                        error = %e,
                        "cannot write the registry; shipping goes on and the write is retried every \
                         registry_flush (a restart now would resend what was sent since the last successful write)"
                    );
                }
                Err(_) => {}
            }
            self.last = now;
        }
    }

    /// Writes the registry now.
    pub(crate) fn save(&self, files: &mut FileTable) -> Result<()> {
        RegistryFile { version: REGISTRY_VERSION, entries: files.entries() }.save(&self.path)?;
        files.mark_saved();
        Ok(())
    }
}
