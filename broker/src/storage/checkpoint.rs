//! Per-partition offset checkpoints: the recovery point and the log start offset.
//!
//! - The recovery point of a partition is an offset below which everything was fsynced. After a crash
//!   only segments from the one holding it onward are re-read and CRC-checked; older segments are
//!   trusted. The flusher writes it every few seconds and `close()` writes it one last time.
//! - The log start offset is where retention (or, later, DeleteRecords) moved the start of a partition.
//!   It need not be a segment boundary, so it cannot be derived from the files and must be kept here.
//!
//! Entries carry the topic id, so a topic deleted and re-created under the same name never inherits the
//! old topic's offsets.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::util::{annotate, read_optional, write_atomic};

pub(crate) const RECOVERY_POINT_FILE: &str = "recovery-point-offset-checkpoint.json";
pub(crate) const LOG_START_FILE: &str = "log-start-offset-checkpoint.json";
const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct TopicOffsets {
    id: Uuid,
    partitions: BTreeMap<i32, i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OffsetCheckpoint {
    version: u32,
    topics: BTreeMap<String, TopicOffsets>,
}

impl Default for OffsetCheckpoint {
    fn default() -> Self {
        Self { version: VERSION, topics: BTreeMap::new() }
    }
}

impl OffsetCheckpoint {
    /// Reads a checkpoint. A missing or unreadable one is empty, which only makes the next start more
    /// careful (a full recovery scan; log start at the first segment).
    pub fn read(path: &Path) -> io::Result<Self> {
        let Some(bytes) = read_optional(path)? else { return Ok(Self::default()) };
        match serde_json::from_slice::<Self>(&bytes) {
            Ok(c) if c.version == VERSION => Ok(c),
            Ok(c) => {
                tracing::warn!(path = %path.display(), version = c.version, "ignoring checkpoint of unknown version");
                Ok(Self::default())
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable checkpoint");
                Ok(Self::default())
            }
        }
    }

    pub fn write(&self, path: &Path) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| annotate(io::Error::other(e), path))?;
        write_atomic(path, &bytes)
    }

    pub fn get(&self, topic: &str, id: Uuid, partition: i32) -> Option<i64> {
        self.topics.get(topic).filter(|t| t.id == id).and_then(|t| t.partitions.get(&partition).copied())
    }

    pub fn set(&mut self, topic: &str, id: Uuid, partition: i32, offset: i64) {
        let entry =
            self.topics.entry(topic.to_owned()).or_insert_with(|| TopicOffsets { id, partitions: BTreeMap::new() });
        if entry.id != id {
            *entry = TopicOffsets { id, partitions: BTreeMap::new() };
        }
        entry.partitions.insert(partition, offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_ignores_other_topic_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RECOVERY_POINT_FILE);
        let id = Uuid::new_v4();
        let mut c = OffsetCheckpoint::default();
        c.set("logs-a", id, 0, 10);
        c.set("logs-a", id, 1, 20);
        c.write(&path).unwrap();
        let read = OffsetCheckpoint::read(&path).unwrap();
        assert_eq!(read, c);
        assert_eq!(read.get("logs-a", id, 1), Some(20));
        assert_eq!(read.get("logs-a", Uuid::new_v4(), 1), None);
        assert_eq!(read.get("other", id, 0), None);
    }

    #[test]
    fn garbage_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOG_START_FILE);
        std::fs::write(&path, b"{not json").unwrap();
        assert_eq!(OffsetCheckpoint::read(&path).unwrap(), OffsetCheckpoint::default());
    }
}
