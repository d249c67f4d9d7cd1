//! The indexer crate's error type: failures of the indexer itself (config, patterns, templates).
//! Per-event problems (malformed JSON, lines that do not parse) are never errors: the event is tagged
//! (`_jsonparsefailure`, `_grokparsefailure`, `_dateparsefailure`) and indexed anyway.

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad config value; the message names the key, e.g. `indexer.routes[1].index`.
    #[error("invalid indexer config: {0}")]
    Config(String),
    /// A field reference such as `[a][b` that does not parse.
    #[error("bad field reference {reference:?}: {why}")]
    FieldRef { reference: String, why: &'static str },
    /// An index or sprintf template such as `nginx-%{+YYYY.MM.qq}` that does not parse.
    #[error("bad template {template:?}: {why}")]
    Template { template: String, why: String },
    /// A grok pattern that references an unknown pattern or expands to an invalid regex.
    #[error("bad grok pattern {pattern:?}: {why}")]
    Grok { pattern: String, why: String },
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}
