//! The logpipe indexer: what Logstash does with a kafka input, filters and an elasticsearch output, but
//! committing offsets only once documents are safe. A record value is decoded into an [`Event`], run
//! through [`filters`], given an index by the [`RouteTable`], and encoded into a [`BulkRequest`]; the
//! bulk response is turned into a [`retry::BulkOutcome`] that says what to retry, what to dead-letter
//! and what is done. [`Indexer::run`] wires that core to Kafka and the outputs.
//!
//! The pure core (no I/O):
//! - [`event`]: the event and field references (`[a][b]`, `a.b`), tags, `@timestamp`.
//! - [`codec`]: `json` and `plain` record decoding (never drops; `_jsonparsefailure`).
//! - [`condition`]: `when` conditions (tag, equals, matches, and/or/not).
//! - [`template`]: Logstash sprintf templates (`%{[f]}`, `%{+YYYY.MM.dd}`).
//! - [`filters`]: `nginx_access`, `nginx_error`, `grok`, `date`, `mutate`, `user_agent`, `geoip`, and the
//!   [`FilterChain`].
//! - [`enrich`]: the user-agent rules and GeoIP/ASN databases those filters read (loaded once).
//! - [`route`]: the ordered [`RouteTable`].
//! - [`bulk`]: the NDJSON `_bulk` body ([`BulkRequest`]) and document ids.
//! - [`retry`]: the pure retry decision on a `_bulk` response.
//! - [`config`]: the `[indexer]` section ([`IndexerConfig`]) and its compilation into the types above.
//! - [`batch`]: records into batches of bulk items ([`batch::Processor`]).
//! - [`tracker`]: which offsets are safe to commit when batches settle out of order.
//!
//! The runtime:
//! - [`consumer`]: the librdkafka group member, rebalance handling and the consumer loop.
//! - [`subscription`]: the topics it consumes; `^regex` entries matched here, dead-letter topics left out.
//! - [`fetch`]: the fetch path of the indexer's own: Fetch requests, whole record batches decoded.
//! - [`flow`]: batches in flight and commits.
//! - [`output`]: Elasticsearch (`reqwest`), NDJSON files, stdout.
//! - [`dead_letter`]: the `<topic>-dlq` producer.
//! - [`replay`]: `logpipe replay`, re-indexing a time range of a topic outside the live group.
//! - [`retention`]: deleting daily indices older than `[indexer.retention] delete_after`, and
//!   `logpipe indices`.
//! - [`stats`]: counters for `/status` and `/metrics`.

mod backoff;
mod batch;
mod bulk;
mod codec;
mod condition;
mod config;
mod consumer;
mod dead_letter;
mod direct;
mod enrich;
mod error;
mod event;
mod fetch;
mod filters;
mod flow;
mod json_marks;
mod json_text;
mod output;
mod raw_entries;
pub mod replay;
pub mod retention;
mod retry;
mod route;
mod split_memo;
mod start_position;
mod stats;
mod subscription;
mod template;
mod tracker;

pub use config::IndexerConfig;
pub use error::{Error, Result};
pub use stats::{HostHealth, IndexCounts, Stats, StatsSnapshot};

/// The batch-building core, for `examples/json_baseline.rs` (which measures it against a plain JSON
/// parse); not an API.
#[doc(hidden)]
pub mod benchmarking {
    pub use crate::batch::{Processor, Record, RecordBatch};
    pub use crate::bulk::{BulkRequest, DocId};
    pub use crate::config::Compiled;
    pub use crate::enrich::Enrichment;
    pub use crate::route::Routed;
}

use std::sync::Arc;

use logpipe_config::Valid;
use tokio_util::sync::CancellationToken;

use batch::Processor;
use config::Compiled;
use dead_letter::DeadLetterTopic;
use flow::{Flow, Limits};
use output::Outputs;
use subscription::Subscription;

/// A configured indexer. [`stats`](Self::stats) can be read while it runs.
pub struct Indexer {
    config: IndexerConfig,
    compiled: Compiled,
    stats: Arc<Stats>,
}

impl std::fmt::Debug for Indexer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Indexer").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Indexer {
    /// Compiles the filters and routes of a checked `config`, once; errors name the key
    /// (`indexer.routes[1].time_zone`).
    pub fn new(config: Valid<IndexerConfig>) -> Result<Self> {
        let config = config.into_inner();
        let enrichment = enrich::Enrichment::load(&config.enrichment);
        let compiled = Compiled::with_enrichment(&config, &enrichment)?;
        Ok(Self { config, compiled, stats: Arc::new(Stats::default()) })
    }

    pub fn config(&self) -> &IndexerConfig {
        &self.config
    }

    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Pins a new group's start to the topics' current end when `auto_offset_reset = "latest"`; for an
    /// indexer started beside the agent that feeds it ([`start_position`]).
    ///
    /// `written`: the topics the agent of the same pipeline writes to. Those a `^regex` entry matches are
    /// created first too, so that they are matched and pinned now rather than found at the next match,
    /// when the lines the agent sent meanwhile would be skipped.
    pub async fn pin_latest_start(&self, written: &[String]) -> Result<start_position::Pinned> {
        start_position::pin_latest_start(&self.config.input, &self.subscription()?, written).await
    }

    /// The input's topics; a `^regex` never matches the dead-letter topics the output writes.
    fn subscription(&self) -> Result<Subscription> {
        let dead_letter_suffix =
            self.config.output.elasticsearch.as_ref().map(|es| es.dead_letter_topic_suffix.as_str());
        Subscription::new(&self.config.input, dead_letter_suffix)
    }

    /// Consumes until `shutdown` is cancelled, then finishes in-flight bulk requests (bounded by
    /// `shutdown_timeout`), commits and leaves the group. Returns early with an error if the consumer
    /// cannot go on (e.g. `auto_offset_reset = "none"` and no committed offset).
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let subscription = self.subscription()?;
        let Self { config, compiled, stats } = self;
        let outputs = Arc::new(Outputs::new(&config.output, stats.clone())?);
        let default_index = (!config.drop_unmatched).then_some(config.default_index.as_str());
        if !outputs.prepare(&compiled.routes, default_index, &shutdown).await? {
            return Ok(());
        }
        if let Some(r) = &config.retention {
            let retention = retention::Retention::new(&compiled.routes);
            tokio::spawn(retention.run(outputs.clone(), r.delete_after, r.check_interval, shutdown.clone()));
        }
        let commit_interval = config.input.commit_interval()?;
        let (limits, dead_letters) = match &config.output.elasticsearch {
            Some(es) => (
                Limits {
                    max_events: es.batch_max_events,
                    max_bytes: es.batch_max_bytes,
                    timeout: es.batch_timeout,
                    concurrency: es.concurrency,
                    commit_interval,
                },
                Some(Arc::new(DeadLetterTopic::new(&config.input, &es.dead_letter_topic_suffix)?)),
            ),
            // Files and stdout: one writer; the batch bounds only set how often it syncs.
            None => (
                Limits {
                    max_events: 5000,
                    max_bytes: 5 << 20,
                    timeout: std::time::Duration::from_millis(50),
                    concurrency: 1,
                    commit_interval,
                },
                None,
            ),
        };
        let flow = Flow::new(
            Processor::new(compiled).reusing_bodies(limits.concurrency),
            limits,
            tokio::runtime::Handle::current(),
            outputs,
            dead_letters,
            stats,
        );
        let (input, timeout) = (config.input.clone(), config.shutdown_timeout);
        tokio::task::spawn_blocking(move || consumer::consume(&input, subscription, flow, shutdown, timeout))
            .await
            .map_err(|e| Error::Config(format!("the consumer thread failed: {e}")))?
    }
}
