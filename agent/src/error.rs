//! The agent crate's error type: failures of the agent itself (config, registry disk, Kafka client setup).
//! Per-line problems (bad bytes, huge lines) are never errors; they are tagged and shipped.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad config value; the message names the key.
    #[error("invalid agent config: {0}")]
    Config(String),
    #[error("registry {path}: {source}")]
    Registry { path: PathBuf, source: std::io::Error },
    #[error(
        "registry {path} is corrupt ({source}); move it away to start over (files are then read per start_position)"
    )]
    RegistryFormat { path: PathBuf, source: serde_json::Error },
    #[error("kafka output: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
