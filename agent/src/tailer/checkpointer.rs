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
}

impl Checkpointer {
    pub(crate) fn new(path: PathBuf, flush: Duration, now: Instant) -> Self {
        Self { path, flush, last: now }
    }

    /// The entries of the registry file, if there is one.
    pub(crate) fn load(&self) -> Result<Vec<Entry>> {
        Ok(RegistryFile::load(&self.path)?.entries)
    }

    /// Writes the registry if something changed and `registry_flush` has passed since the last write.
    /// Called between read chunks as well as once per turn, so long catch-up turns keep the schedule.
    pub(crate) fn maybe_checkpoint(&mut self, files: &mut FileTable, now: Instant) {
        if files.is_unsaved() && now.saturating_duration_since(self.last) >= self.flush {
            if let Err(e) = self.save(files) {
                tracing::error!(error = %e, "cannot write the registry; will retry");
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
