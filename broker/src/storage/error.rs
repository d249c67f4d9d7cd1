//! Errors of the storage layer, one enum per operation family.
//!
//! The request handlers map each variant to a Kafka error code (`CORRUPT_MESSAGE`, `MESSAGE_TOO_LARGE`,
//! `OUT_OF_ORDER_SEQUENCE_NUMBER`, ...): Kafka error codes are data in responses, these are Rust errors.

/// Most partitions one topic may have. Each partition is a directory with open files, so an unbounded
/// count from a CreateTopics request could exhaust file descriptors and inodes.
pub const MAX_PARTITIONS: i32 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("topic '{0}' already exists")]
    AlreadyExists(String),
    #[error("unknown topic '{0}'")]
    UnknownTopic(String),
    #[error("invalid topic name '{name}': {reason}")]
    InvalidName { name: String, reason: String },
    #[error("invalid partition count {0}: must be between 1 and 10000")]
    InvalidPartitions(i32),
    #[error("topic '{topic}' has {current} partitions; the count can only grow, not become {requested}")]
    CannotShrink { topic: String, current: i32, requested: i32 },
    #[error("invalid topic config {key}: {reason}")]
    InvalidConfig { key: String, reason: String },
    #[error("storage error: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("corrupt record batch: {0}")]
    CorruptMessage(String),
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    MessageTooLarge { size: usize, max: i32 },
    #[error("invalid record batch: {0}")]
    InvalidRecord(String),
    #[error("unsupported record batch magic {0}: only v2 batches are accepted")]
    UnsupportedMagic(i8),
    #[error("out of order sequence for producer {producer_id}: expected {expected}, got {got}")]
    OutOfOrderSequence { producer_id: i64, expected: i32, got: i32 },
    #[error("producer {producer_id} epoch {epoch} is older than the current epoch {current}")]
    InvalidProducerEpoch { producer_id: i64, epoch: i16, current: i16 },
    #[error("transactional batches are not supported")]
    TransactionsUnsupported,
    #[error("storage error: {0}")]
    Io(#[from] std::io::Error),
}

impl AppendError {
    /// The disk is full: the append was undone and may be retried (see `full_disk.rs`).
    pub fn is_disk_full(&self) -> bool {
        matches!(self, AppendError::Io(e) if super::full_disk::is_full(e))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Below the log start or past the log end. Offsets from the high watermark up to the log end offset
    /// are in range: reading them returns nothing until they are durable.
    #[error(
        "offset {offset} is out of range [{log_start_offset}, {log_end_offset}] (high watermark {high_watermark})"
    )]
    OffsetOutOfRange { offset: i64, log_start_offset: i64, high_watermark: i64, log_end_offset: i64 },
    #[error("storage error: {0}")]
    Io(#[from] std::io::Error),
}
