//! The broker crate's error type. Kafka error codes are *data* in responses and live in the handlers;
//! this type is for failures of the broker itself (config, disk, sockets).

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid broker config: {0}")]
    Config(String),
    /// A listener could not be bound. The I/O error is part of the message and deliberately not the
    /// `source`, so a chain printed with `{:#}` says it once.
    #[error(
        "broker.listeners: cannot listen on {addr}: {reason}; another process (a second broker?) holds the \
         port: stop it, or set another address in `listeners` under [broker]"
    )]
    Bind { addr: String, reason: std::io::Error },
    #[error("storage error in {path}: {source}")]
    Storage { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
