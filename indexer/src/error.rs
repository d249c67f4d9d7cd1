//! The indexer crate's error type: failures of the indexer itself (config, patterns, templates, the
//! consumer, an output that cannot be used).
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
    /// The Kafka consumer or dead-letter producer failed in a way retrying cannot fix.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// `auto_offset_reset = "none"` and a partition has no usable committed offset.
    #[error(
        "group {group:?} has no committed offset for a partition of {topics} (or it is out of range) and \
         auto_offset_reset = \"none\": set auto_offset_reset to \"earliest\" or \"latest\", or set the \
         group's offsets with `logpipe groups reset-offsets`"
    )]
    NoCommittedOffset { group: String, topics: String },
    /// The file output could not write or sync.
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    /// Elasticsearch refused something that retrying cannot fix (e.g. the index template).
    #[error("elasticsearch: {0}")]
    Elasticsearch(String),
    /// Processing or sending a batch panicked: a bug. The indexer stops rather than commit past records it
    /// could not index; they are read again at the next start.
    #[error(
        "a batch failed: {0}; this is a bug in logpipe (please report it with the log), the indexer stops \
         without committing that batch's records, which are read again at the next start"
    )]
    BatchPanicked(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}
