//! The generator's error type. Every failure is a file operation, so every message names the file.

use std::io;
use std::path::PathBuf;

/// Result of a generator operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why the generator stopped early.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The log directory is missing and cannot be created.
    #[error("cannot create the log directory {path}: {source}; check --dir and its parent's permissions")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A log file cannot be opened for appending.
    #[error("cannot open {path} for appending: {source}; check that the directory is writable")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Appending to a log file failed (a full disk, usually).
    #[error("cannot write to {path}: {source}; check the free space of its file system")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A rename or delete during rotation failed.
    #[error("cannot rotate {path}: {source}; check that the directory is writable")]
    Rotate {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The `--summary` file cannot be written.
    #[error("cannot write the summary to {path}: {source}; check --summary and its directory")]
    Summary {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// SIGINT/SIGTERM handlers cannot be installed.
    #[error("cannot install the SIGINT/SIGTERM handlers: {0}")]
    Signal(#[source] io::Error),
}
