//! Where documents go: Elasticsearch, or NDJSON files when no Elasticsearch is configured, plus an
//! optional copy on stdout for debugging. Every output settles a whole batch before it counts as safe:
//! a batch's offsets are committed only after [`Outputs::deliver`] returns.

pub mod elasticsearch;
pub mod file;
pub mod index_template;
mod recent_ids;
mod stdout;
mod tls;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::batch::Batch;
use crate::config::OutputConfig;
use crate::error::Result;
use crate::route::RouteTable;
use crate::stats::{IndexCounts, Stats};

pub use elasticsearch::Elasticsearch;
pub use file::FileOutput;

/// Items (batch positions) the output refused for good, with the reason, for the dead-letter topic.
pub type DeadLetters = Vec<(usize, String)>;

/// The store documents are written to.
enum Store {
    Elasticsearch(Elasticsearch),
    File(Arc<FileOutput>),
    /// Only stdout (`output.stdout = true` and nothing else).
    None,
}

pub struct Outputs {
    store: Store,
    stdout: bool,
    stats: Arc<Stats>,
}

impl Outputs {
    /// Elasticsearch if configured, else the file output (at its configured or default path) unless the
    /// config asks for stdout alone.
    pub fn new(config: &OutputConfig, stats: Arc<Stats>) -> Result<Self> {
        let store = match (&config.elasticsearch, &config.file) {
            (Some(es), _) => Store::Elasticsearch(Elasticsearch::new(es, stats.clone())?),
            (None, Some(file)) => Store::File(Arc::new(FileOutput::open(&file.path, file.dedupe_window)?)),
            (None, None) if config.stdout => Store::None,
            (None, None) => {
                let file = crate::config::FileOutputConfig::default();
                Store::File(Arc::new(FileOutput::open(&file.path, file.dedupe_window)?))
            }
        };
        Ok(Self { store, stdout: config.stdout, stats })
    }

    /// One-time preparation before consuming: the Elasticsearch index template. False if `stop` fired.
    pub async fn prepare(
        &self,
        routes: &RouteTable,
        default_index: Option<&str>,
        stop: &CancellationToken,
    ) -> Result<bool> {
        match &self.store {
            Store::Elasticsearch(es) => {
                let daily = routes.routes().iter().filter(|r| r.data_stream.is_none());
                let mut patterns: Vec<String> =
                    daily.map(|r| r.index.source()).chain(default_index).filter_map(index_pattern).collect();
                patterns.sort();
                patterns.dedup();
                let mut streams: Vec<String> =
                    routes.routes().iter().filter_map(|r| r.data_stream.as_ref().map(|d| d.name())).collect();
                streams.sort();
                streams.dedup();
                Ok(es.install_template(&patterns, false, stop).await?
                    && es.install_template(&streams, true, stop).await?)
            }
            Store::File(_) | Store::None => Ok(true),
        }
    }

    /// The indices the store holds for `patterns` (`nginx_access-*`): name, documents, bytes. The file
    /// output lists every file of its directory (the caller filters by name).
    pub async fn list_indices(&self, patterns: &[String]) -> Result<Vec<(String, u64, u64)>> {
        match &self.store {
            Store::Elasticsearch(es) => es.list_indices(patterns).await,
            Store::File(file) => {
                let file = file.clone();
                tokio::task::spawn_blocking(move || file.list())
                    .await
                    .map_err(|e| crate::Error::Config(format!("listing the file output failed: {e}")))?
            }
            Store::None => Ok(Vec::new()),
        }
    }

    /// Deletes one index (a file for the file output).
    pub async fn delete_index(&self, name: &str) -> Result<()> {
        match &self.store {
            Store::Elasticsearch(es) => es.delete_index(name).await,
            Store::File(file) => file.delete(name),
            Store::None => Ok(()),
        }
    }

    /// Writes `batch`, retrying until it is settled. `None` if `stop` fired first.
    pub async fn deliver(&self, batch: Arc<Batch>, stop: &CancellationToken) -> Option<DeadLetters> {
        if self.stdout {
            stdout::print(&batch);
        }
        match &self.store {
            Store::Elasticsearch(es) => es.deliver(&batch, stop).await,
            Store::File(file) => {
                let written = file::deliver(file.clone(), batch.clone(), stop).await;
                if written {
                    self.stats.add(count_by_index(&batch, |c| c.indexed += 1));
                }
                written.then(DeadLetters::new)
            }
            Store::None => {
                self.stats.add(count_by_index(&batch, |c| c.indexed += 1));
                Some(DeadLetters::new())
            }
        }
    }
}

/// `nginx_access-%{+YYYY.MM.dd}` → `nginx_access-*`; templates that start with a placeholder give none.
pub(crate) fn index_pattern(template: &str) -> Option<String> {
    let prefix = &template[..template.find("%{").unwrap_or(template.len())];
    if prefix.is_empty() {
        None
    } else if prefix.len() == template.len() {
        Some(prefix.to_string())
    } else {
        Some(format!("{prefix}*"))
    }
}

/// Applies `add` once per item to its index's counts.
pub(crate) fn count_by_index(batch: &Batch, add: impl Fn(&mut IndexCounts)) -> BTreeMap<&str, IndexCounts> {
    let mut counts: BTreeMap<&str, IndexCounts> = BTreeMap::new();
    for item in batch.items() {
        add(counts.entry(item.index).or_default());
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_patterns_come_from_static_prefixes() {
        assert_eq!(index_pattern("nginx_access-%{+YYYY.MM.dd}").as_deref(), Some("nginx_access-*"));
        assert_eq!(index_pattern("static").as_deref(), Some("static"));
        assert_eq!(index_pattern("%{[service]}-%{+YYYY}"), None);
    }
}
