//! Partition logs on disk: segments, sparse indexes, group-commit fsync, recovery and retention.
//!
//! Each partition is a directory of segments holding Kafka v2 record batches byte for byte as producers
//! sent them, so a Fetch is a plain copy of file bytes and real Kafka clients read them unchanged.
//! Durability is explicit: appends write to the page cache, a flusher thread fsyncs (sharing one fsync
//! among concurrent `acks=all` producers), and the high watermark that consumers see is the fsynced
//! offset. After a crash every batch past the last recovery point is CRC-checked and the log is cut at
//! the first torn or corrupt one.
//!
//! - [`LogManager`] (`log_manager.rs`): topics, the flusher, checkpoints, clean shutdown.
//! - [`PartitionLog`] (`partition_log.rs`, `read.rs`, `retention.rs`): append, read, offsets.
//! - `segment.rs`, `segment_load.rs`, `index.rs`, `scan.rs`: segment files (and opening or recovering
//!   them), offset and time indexes, batch walking.
//! - `batch.rs`: the record batch v2 header and produce validation.
//! - `producer_state.rs`, `producer_snapshot.rs`: idempotent-producer deduplication, and its snapshots
//!   at segment rolls for crash recovery.
//! - `flusher.rs`: group commit and fail-stop on fsync errors.
//! - `recovery.rs`, `checkpoint.rs`: opening a partition after a clean or unclean shutdown.
//! - `topic.rs`, `config.rs`: topic metadata and Kafka topic configs.
//!
//! References: https://kafka.apache.org/documentation/#recordbatch, https://kafka.apache.org/documentation/#log

mod batch;
mod checkpoint;
mod config;
mod error;
mod flusher;
mod full_disk;
mod index;
mod log_manager;
mod partition_log;
mod producer_snapshot;
mod producer_state;
mod read;
mod recovery;
mod retention;
mod scan;
mod segment;
mod segment_load;
#[cfg(test)]
mod testkit;
mod topic;
mod topic_changes;
mod util;

pub use config::LogConfig;
pub use error::{AppendError, ReadError, TopicError};
pub use full_disk::DiskShortage;
pub use log_manager::LogManager;
pub use partition_log::PartitionLog;
pub use read::FileRecords;
pub use retention::Floor;
pub use topic::TopicMeta;
pub use topic_changes::DeleteRecordsError;
