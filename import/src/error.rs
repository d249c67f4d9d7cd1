//! What stops an import: a file that cannot be read or parsed. Everything else (a plugin with no
//! equivalent, a setting that does not translate) is a [`Diagnostic`](crate::Diagnostic) in the report.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// A Logstash syntax error, a YAML error or a malformed properties file.
    #[error("{file}:{line}:{col}: {message}")]
    Syntax { file: String, line: usize, col: usize, message: String },
    /// A file of no kind `logpipe import` reads, or nothing to import.
    #[error("{0}")]
    Input(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
