//! The Kafka input: a librdkafka consumer-group member with manual commits, and the loop that feeds
//! its records into the [`Flow`]. It runs on its own thread, because librdkafka calls the rebalance
//! callback from inside `poll`, and that callback must be able to wait.
//!
//! - `enable.auto.commit = false`: offsets are committed by the flow, only once safe.
//! - Before partitions are revoked (a rebalance, or leaving the group) the open batch is sent, the
//!   batches holding their records are awaited (up to `revoke_timeout`), and what is safe is committed
//!   synchronously, so the next owner starts right after the last indexed event.
//! - While `concurrency` batches are in flight no more records are read. If that lasts (Elasticsearch
//!   slow or down), the assignment is paused and polling continues, so the member keeps its place in the
//!   group (`max.poll.interval.ms`). The pause is applied again to every new assignment ([`PauseSwitch`]):
//!   librdkafka keeps it on the partition across a rebalance.
//! - `auto_offset_reset = none` maps to librdkafka's `error` policy: the first partition without a
//!   committed offset stops the indexer with [`Error::NoCommittedOffset`].

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::TopicPartitionList;
use tokio_util::sync::CancellationToken;

use crate::config::{AutoOffsetReset, InputConfig};
use crate::error::{Error, Result};
use crate::flow::Flow;
use crate::pause::PauseSwitch;
use crate::tracker::TopicPartition;

/// How long a revocation waits for in-flight batches of the revoked partitions.
const REVOKE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the outputs may be saturated before the assignment is paused.
const PAUSE_AFTER: Duration = Duration::from_secs(1);

pub struct IndexerContext {
    flow: Arc<Mutex<Flow>>,
    /// Set once the indexer has settled and committed for good; later revocations have nothing to do.
    closing: std::sync::atomic::AtomicBool,
    /// Whether the assignment is paused (outputs saturated), applied again to each new assignment.
    pause: PauseSwitch,
}

fn lock(flow: &Mutex<Flow>) -> MutexGuard<'_, Flow> {
    flow.lock().unwrap_or_else(PoisonError::into_inner)
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
            self.pause.on_assigned(consumer, list);
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
        // librdkafka stops fetching a partition whose local queue is full and looks again only after
        // this long (1 s by default); the indexer drains a full queue faster than that, and every
        // refill cost a half-second stall.
        .set("fetch.queue.backoff.ms", "20")
        // librdkafka prefetches up to 64 MiB into its local queue by default; under a burst that is RAM
        // holding what the broker already holds on disk, and more than the setting says: the appliance's
        // peak during a full-speed catch-up of 1,000,000 lines fell by about 30 MiB from 4 MiB to 1 MiB
        // (160–165 → 128–133 MiB, three runs each, the same CPU per line), 60 from 16 MiB.
        // `[indexer.input.librdkafka]` can raise it.
        .set("queued.max.messages.kbytes", "1024")
        .set(
            "auto.offset.reset",
            match input.auto_offset_reset {
                AutoOffsetReset::Earliest => "earliest",
                AutoOffsetReset::Latest => "latest",
                AutoOffsetReset::None => "error",
            },
        );
    if let Some(instance) = &input.group_instance_id {
        config.set("group.instance.id", instance);
    }
    for (key, value) in &input.librdkafka {
        config.set(key, value);
    }
    for (key, value) in input.security_properties()? {
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

/// Subscribes and consumes until `shutdown`, then settles in-flight batches (up to `shutdown_timeout`),
/// commits, and leaves the group. A consumer that fails fatally is replaced by a new one.
pub fn consume(input: &InputConfig, flow: Flow, shutdown: CancellationToken, shutdown_timeout: Duration) -> Result<()> {
    let flow = Arc::new(Mutex::new(flow));
    loop {
        match consume_once(input, &flow, &shutdown, shutdown_timeout)? {
            Ended::Done(result) => return result,
            Ended::Fatal(reason) => {
                tracing::error!("consumer failed fatally: {reason}; joining the group again with a new consumer")
            }
        }
    }
}

fn consume_once(
    input: &InputConfig,
    flow: &Arc<Mutex<Flow>>,
    shutdown: &CancellationToken,
    shutdown_timeout: Duration,
) -> Result<Ended> {
    let context = IndexerContext { flow: flow.clone(), closing: false.into(), pause: PauseSwitch::default() };
    let consumer: BaseConsumer<IndexerContext> = client_config(input)?.create_with_context(context)?;
    let topics: Vec<&str> = input.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    tracing::info!(group = %input.group_id, topics = ?topics, "consuming");

    let mut full_since: Option<Instant> = None;
    let mut last_error: Option<String> = None;
    // A poll's result left for the next turn of the loop (see below).
    let mut pending = None;
    let ended = loop {
        if shutdown.is_cancelled() {
            break Ended::Done(Ok(()));
        }
        let (full, timeout) = {
            let mut f = lock(flow);
            f.drain();
            if f.due() && f.has_capacity() {
                f.dispatch();
            }
            f.commit(&consumer, CommitMode::Async);
            if !f.has_capacity() {
                // Back-pressure: wait for a batch to settle instead of reading more.
                f.wait_one(Duration::from_millis(50));
            }
            (!f.has_capacity(), f.poll_timeout())
        };
        // Pausing drops librdkafka's prefetched records, so a short wait only stops polling; once the
        // outputs have been busy for PAUSE_AFTER (Elasticsearch slow or down), the assignment is paused
        // and polling resumes, to keep the member in the group past `max.poll.interval.ms`.
        full_since = if full { full_since.or_else(|| Some(Instant::now())) } else { None };
        let pause = full_since.is_some_and(|t| t.elapsed() >= PAUSE_AFTER);
        let switch = &consumer.context().pause;
        if pause != switch.is_paused() {
            switch.set(&consumer, pause);
        }
        if full && !pause {
            continue;
        }
        let polled = match pending.take() {
            Some(result) => Some(result),
            None => consumer.poll(if full { Duration::ZERO } else { timeout }),
        };
        match polled {
            None => {}
            Some(Ok(message)) => {
                if last_error.take().is_some() {
                    tracing::info!("consuming again");
                }
                // Adds a record; whether the open batch is now full.
                let add = |message: &BorrowedMessage<'_>| {
                    let mut f = lock(flow);
                    f.add(message);
                    f.is_full()
                };
                // Records librdkafka has already fetched are taken without waiting, up to the open
                // batch's bounds, so the checks above (the completions, the commit, two clock reads)
                // run once per run of records instead of once per record. The lock is not held across
                // `poll`: a rebalance callback inside it takes the lock.
                let mut batch_full = add(&message);
                while !batch_full {
                    match consumer.poll(Duration::ZERO) {
                        Some(Ok(message)) => batch_full = add(&message),
                        other => {
                            pending = other;
                            break;
                        }
                    }
                }
            }
            Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset))) => {
                break Ended::Done(Err(Error::NoCommittedOffset {
                    group: input.group_id.clone(),
                    topics: input.topics.join(", "),
                }));
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
