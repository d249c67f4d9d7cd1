//! The Kafka input: a librdkafka consumer-group member with manual commits, the [`Fetcher`] that
//! reads its partitions, and the loop that feeds their records into the [`Flow`]. It runs on its own
//! thread, because librdkafka calls the rebalance callback from inside `poll`, and that callback must be
//! able to wait.
//!
//! - librdkafka joins the group, heartbeats, takes assignments and commits; every partition it assigns
//!   is paused at once, so it never fetches. The fetcher reads them (see `fetch`).
//! - `enable.auto.commit = false`: offsets are committed by the flow, only once safe.
//! - Before partitions are revoked (a rebalance, or leaving the group) the fetcher drops what it holds
//!   of them, the open batch is sent, the batches holding their records are awaited (up to
//!   `revoke_timeout`), and what is safe is committed synchronously, so the next owner starts right
//!   after the last indexed event.
//! - While `concurrency` batches are in flight, the next batch fills, and then fetched values wait up
//!   to their bound (`queued.max.messages.kbytes`); beyond that nothing more is fetched. The loop still
//!   polls librdkafka, so the member keeps its place in the group (`max.poll.interval.ms`) however long
//!   Elasticsearch is slow or down.
//! - `auto_offset_reset = none`: the first partition without a committed offset stops the indexer with
//!   [`Error::NoCommittedOffset`].
//! - `^regex` topics are matched by the indexer, not librdkafka, so that dead-letter topics are left out
//!   (see `subscription`).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::TopicPartitionList;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::config::{AutoOffsetReset, InputConfig};
use crate::error::{Error, Result};
use crate::fetch::{Fetcher, FETCH_KEYS};
use crate::flow::Flow;
use crate::subscription::{Subscriber, Subscription};
use crate::tracker::TopicPartition;

/// How long a revocation waits for in-flight batches of the revoked partitions.
const REVOKE_TIMEOUT: Duration = Duration::from_secs(30);

pub struct IndexerContext {
    flow: Arc<Mutex<Flow>>,
    /// Set once the indexer has settled and committed for good; later revocations have nothing to do.
    closing: std::sync::atomic::AtomicBool,
    fetcher: Mutex<Fetcher>,
}

fn lock<T>(shared: &Mutex<T>) -> MutexGuard<'_, T> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

fn partitions(list: &TopicPartitionList) -> BTreeSet<TopicPartition> {
    list.elements().iter().map(|e| TopicPartition { topic: e.topic().to_string(), partition: e.partition() }).collect()
}

/// `nginx/0 nginx/1`, for the log.
fn names(partitions: &BTreeSet<TopicPartition>) -> String {
    partitions.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
}

impl ClientContext for IndexerContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        tracing::debug!(?level, fac, "librdkafka: {log_message}");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(error = %error, "kafka client error: {reason}");
    }
}

impl ConsumerContext for IndexerContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(list) if !self.closing.load(std::sync::atomic::Ordering::Relaxed) => {
                let revoked = partitions(list);
                lock(&self.fetcher).revoke(&revoked);
                let mut flow = lock(&self.flow);
                flow.settle(Some(&revoked), Instant::now() + REVOKE_TIMEOUT);
                flow.commit(consumer, CommitMode::Sync);
                flow.forget(&revoked);
                tracing::info!(partitions = %names(&revoked), "partitions revoked after flushing and committing");
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Assign(list) => tracing::info!(partitions = %names(&partitions(list)), "partitions assigned"),
            Rebalance::Error(e) => tracing::warn!("rebalance failed: {e}"),
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            // librdkafka would fetch them too: paused, it does not. The pause stays on the partition
            // across rebalances; each assignment is paused again all the same.
            if list.count() > 0 {
                if let Err(e) = consumer.pause(list) {
                    tracing::warn!("cannot pause librdkafka's fetching of the assignment: {e}");
                }
            }
            lock(&self.fetcher).assign(partitions(list));
        }
    }
}

/// The librdkafka settings for the input.
pub fn client_config(input: &InputConfig) -> Result<ClientConfig> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", input.brokers.join(","))
        .set("group.id", &input.group_id)
        .set("client.id", &input.client_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // The partitions are paused (the fetcher reads them); a fetch that slips in before the pause
        // holds little.
        .set("queued.max.messages.kbytes", "1024")
        .set(
            "auto.offset.reset",
            match input.auto_offset_reset {
                AutoOffsetReset::None => "error",
                other => other.name(),
            },
        );
    if let Some(instance) = &input.group_instance_id {
        config.set("group.instance.id", instance);
    }
    for (key, value) in input.client_properties()?.into_iter().filter(|(key, _)| !FETCH_KEYS.contains(key)) {
        config.set(key, value);
    }
    Ok(config)
}

/// How a consumer's run ended.
enum Ended {
    /// `shutdown`, or an error that stops the indexer.
    Done(Result<()>),
    /// librdkafka raised a fatal error (e.g. `FENCED_INSTANCE_ID`: with static membership, the group
    /// coordinator moved and no longer recognises this member). That consumer instance is unusable;
    /// a new one joins the group again.
    Fatal(String),
}

/// Subscribes to `subscription`'s topics and consumes until `shutdown`, then settles in-flight batches (up
/// to `shutdown_timeout`), commits, and leaves the group. A consumer that fails fatally is replaced by a
/// new one.
pub fn consume(
    input: &InputConfig,
    subscription: Subscription,
    flow: Flow,
    shutdown: CancellationToken,
    shutdown_timeout: Duration,
) -> Result<()> {
    let flow = Arc::new(Mutex::new(flow));
    loop {
        let subscriber = Subscriber::new(subscription.clone(), input);
        match consume_once(input, subscriber, &flow, &shutdown, shutdown_timeout)? {
            Ended::Done(result) => return result,
            Ended::Fatal(reason) => {
                tracing::error!("consumer failed fatally: {reason}; joining the group again with a new consumer")
            }
        }
    }
}

fn consume_once(
    input: &InputConfig,
    mut subscriber: Subscriber,
    flow: &Arc<Mutex<Flow>>,
    shutdown: &CancellationToken,
    shutdown_timeout: Duration,
) -> Result<Ended> {
    let fetcher = Mutex::new(Fetcher::new(input, Handle::current())?);
    let context = IndexerContext { flow: flow.clone(), closing: false.into(), fetcher };
    let consumer: BaseConsumer<IndexerContext> = client_config(input)?.create_with_context(context)?;
    subscriber.update(&consumer)?;
    tracing::info!(group = %input.group_id, topics = ?input.topics, "consuming");

    let mut last_error: Option<String> = None;
    // Whether the fetcher had handed on all there was, as of the last turn.
    let mut caught_up = false;
    let ended = loop {
        if shutdown.is_cancelled() {
            break Ended::Done(Ok(()));
        }
        // Matches `^regex` topics again when due: new topics are consumed, deleted ones dropped.
        if let Err(e) = subscriber.update(&consumer) {
            break Ended::Done(Err(e));
        }
        {
            let mut f = lock(flow);
            f.drain();
            if let Some(reason) = f.failure() {
                break Ended::Done(Err(Error::BatchPanicked(reason.to_owned())));
            }
            if f.has_capacity() && f.due(caught_up) {
                f.dispatch();
            }
            f.commit(&consumer, CommitMode::Async);
        }
        {
            let mut fetcher = lock(&consumer.context().fetcher);
            if let Err(e) = fetcher.prepare(&consumer) {
                break Ended::Done(Err(e));
            }
            // The next fetch goes out before the last one's values are handed on, so the broker works
            // meanwhile, and again after, should handing them on have made room below the bound. The
            // open batch is filled even while `concurrency` batches are in flight, so it is ready when
            // one settles.
            fetcher.request();
            let mut f = lock(flow);
            fetcher.feed(&mut *f);
            // A consumer that has read all there is sends what it has as soon as a request may go,
            // rather than waiting out the batch timeout for records that are not there yet: the
            // latency at a steady rate is then a fetch and a bulk request, not the timeout. Batches
            // still grow while `concurrency` requests are in flight, and fill to their bound while the
            // consumer is behind, so a backlog is indexed in full batches.
            caught_up = fetcher.caught_up();
            fetcher.request();
            if f.due(caught_up) {
                if !f.has_capacity() {
                    // Back-pressure: wait for a batch to settle.
                    f.wait_one(Duration::from_millis(50));
                }
                // The top of the loop sends it.
                drop(f);
                fetcher.receive(Duration::ZERO);
            } else {
                // Every fetched value is in the open batch: wait for the next answer, or until the
                // batch is due.
                let timeout = f.poll_timeout();
                drop(f);
                fetcher.receive(timeout);
            }
        }
        // Rebalances (their callbacks take the locks above), and the client's errors.
        match consumer.poll(Duration::ZERO) {
            None => {}
            Some(Ok(message)) => {
                tracing::debug!(
                    topic = message.topic(),
                    partition = message.partition(),
                    "librdkafka fetched despite the pause; ignored"
                );
            }
            Some(Err(e)) => {
                if let Some((code, reason)) = consumer.client().fatal_error() {
                    break Ended::Fatal(format!("{reason} ({code:?})"));
                }
                let text = e.to_string();
                if last_error.as_deref() != Some(text.as_str()) {
                    tracing::warn!("consumer: {text}; retrying");
                    last_error = Some(text);
                }
            }
        }
    };

    let mut f = lock(flow);
    f.settle(None, Instant::now() + shutdown_timeout);
    f.commit(&consumer, CommitMode::Sync);
    match ended {
        // Batches already sent finish (their documents are indexed, and their offsets committed if the
        // group still takes this member's commits); the next consumer reads on from the committed offsets.
        Ended::Fatal(_) => f.forget_all(),
        Ended::Done(_) => f.abandon(),
    }
    drop(f);
    consumer.context().closing.store(true, std::sync::atomic::Ordering::Relaxed);
    consumer.unsubscribe();
    drop(consumer);
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn librdkafka_table_security_wins_over_the_security_tables_default() {
        // An imported Logstash input: `security_protocol => "SASL_SSL"` lands in the table, with no
        // `security` table, whose default is PLAINTEXT.
        let table = [("security.protocol", "SASL_SSL"), ("sasl.mechanism", "SCRAM-SHA-512"), ("fetch.max.bytes", "1")];
        let input = InputConfig {
            librdkafka: table.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..InputConfig::default()
        };
        let config = client_config(&input).unwrap();
        assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(config.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(config.get("fetch.max.bytes"), None, "the fetch path's keys are not librdkafka's");
        // Without the table's key, the `security` table decides.
        let config = client_config(&InputConfig::default()).unwrap();
        assert_eq!(config.get("security.protocol"), Some("plaintext"));
    }
}
