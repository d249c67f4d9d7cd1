//! The broker crate's error type. Kafka error codes are *data* in responses and live in the handlers;
//! this type is for failures of the broker itself (config, disk, sockets).

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid broker config: {0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source} (is another broker already using this port?)")]
    Bind { addr: String, source: std::io::Error },
    #[error("storage error in {path}: {source}")]
    Storage { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
