//! The flow of records from the consumer to the outputs and back to committed offsets: the batch being
//! filled, the batches in flight (at most `concurrency`), and the [`OffsetTracker`] that turns settled
//! batches into commits. It lives on the consumer's thread, which only copies records and registers
//! each batch's offsets in consumption order; decoding, filtering and encoding run on the runtime's
//! blocking pool (so `concurrency` batches are processed in parallel), delivery on its async workers,
//! and settled batches report back through a channel.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::batch::{Processor, RecordBatch};
use crate::dead_letter::DeadLetterTopic;
use crate::output::Outputs;
use crate::stats::Stats;
use crate::tracker::{BatchId, OffsetTracker, TopicPartition};

/// When a batch is sent, how many may be in flight, and how often what is safe is committed.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_events: usize,
    pub max_bytes: usize,
    pub timeout: Duration,
    pub concurrency: usize,
    /// Between asynchronous commits, at least (see [`InputConfig::commit_interval`]).
    ///
    /// [`InputConfig::commit_interval`]: crate::config::InputConfig::commit_interval
    pub commit_interval: Duration,
}

enum Completion {
    /// Every item is indexed, already there, or dead-lettered: the batch's offsets may be committed. With
    /// the number of records it held.
    Settled(BatchId, usize),
    /// Given up at shutdown: nothing of it may be committed.
    Abandoned,
    /// Building or sending it panicked (a bug): nothing of it may be committed, and the consumer stops
    /// rather than commit past it forever after.
    Failed(String),
}

/// Where batches go once full.
struct Dispatcher {
    runtime: Handle,
    outputs: Arc<Outputs>,
    dead_letters: Option<Arc<DeadLetterTopic>>,
    done: Sender<Completion>,
    /// Cancelled when the indexer stops waiting for in-flight batches.
    abandon: CancellationToken,
}

pub struct Flow {
    processor: Arc<Processor>,
    batch: RecordBatch,
    next_id: BatchId,
    limits: Limits,
    tracker: OffsetTracker,
    in_flight: usize,
    dispatcher: Dispatcher,
    done: Receiver<Completion>,
    stats: Arc<Stats>,
    /// When offsets were last committed.
    committed_at: Option<Instant>,
    /// Records of the batches settled since then.
    settled_since_commit: usize,
    /// Why a batch failed, once one has.
    failure: Option<String>,
}

impl Flow {
    pub fn new(
        processor: Processor,
        limits: Limits,
        runtime: Handle,
        outputs: Arc<Outputs>,
        dead_letters: Option<Arc<DeadLetterTopic>>,
        stats: Arc<Stats>,
    ) -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        let dispatcher = Dispatcher { runtime, outputs, dead_letters, done: tx, abandon: CancellationToken::new() };
        Self {
            processor: Arc::new(processor),
            batch: RecordBatch::default(),
            next_id: 1,
            limits,
            tracker: OffsetTracker::new(),
            in_flight: 0,
            dispatcher,
            done: rx,
            stats,
            committed_at: None,
            settled_since_commit: 0,
            failure: None,
        }
    }

    /// Adds a fetched record to the open batch, keeping its value as the fetcher decoded it; `topic` is the
    /// fetcher's name for it, shared by its records.
    pub fn add(&mut self, topic: &Arc<str>, partition: i32, offset: i64, timestamp: i64, value: Option<Bytes>) {
        self.batch.push_shared(topic, partition, offset, timestamp, value);
    }

    /// Whether another batch may be sent now.
    pub fn has_capacity(&self) -> bool {
        self.in_flight < self.limits.concurrency
    }

    /// Whether the open batch has reached its bound in events or bytes.
    pub fn is_full(&self) -> bool {
        self.batch.len() >= self.limits.max_events || self.batch.bytes >= self.limits.max_bytes
    }

    /// Whether the open batch should be sent: full, open longer than the batch timeout, or holding all
    /// there is for now (`caught_up`: the fetcher has handed on everything the brokers had, so waiting
    /// longer only adds latency).
    pub fn due(&self, caught_up: bool) -> bool {
        !self.batch.is_empty()
            && (caught_up || self.is_full() || self.batch.opened.is_some_and(|t| t.elapsed() >= self.limits.timeout))
    }

    /// How long the consumer may wait for the next record before the open batch is due.
    pub fn poll_timeout(&self) -> Duration {
        let idle = Duration::from_millis(100);
        match self.batch.opened {
            Some(t) => self.limits.timeout.saturating_sub(t.elapsed()).clamp(Duration::from_millis(1), idle),
            None => idle,
        }
    }

    /// Sends the open batch, if it holds any record.
    pub fn dispatch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let next = self.batch.next();
        let records = std::mem::replace(&mut self.batch, next);
        let id = self.next_id;
        self.next_id += 1;
        for (partition, last) in records.covers() {
            self.tracker.register(id, partition, last);
        }
        self.in_flight += 1;
        let d = &self.dispatcher;
        let (outputs, dead_letters, done, abandon) =
            (d.outputs.clone(), d.dead_letters.clone(), d.done.clone(), d.abandon.clone());
        let (processor, stats) = (self.processor.clone(), self.stats.clone());
        let gathered = records.opened.map_or(Duration::ZERO, |t| t.elapsed());
        let count = records.len();
        let runtime = d.runtime.clone();
        let settling = d.runtime.spawn(async move {
            let started = Instant::now();
            let batch = match tokio::task::spawn_blocking(move || processor.build(id, records)).await {
                Ok(batch) => batch,
                Err(e) => return Completion::Failed(panic_text(e)),
            };
            let built = started.elapsed();
            stats.consumed(batch.records as u64, batch.dropped as u64);
            let batch = Arc::new(batch);
            let delivered = match outputs.deliver(batch.clone(), &abandon).await {
                Some(dead) if dead.is_empty() => true,
                Some(dead) => match &dead_letters {
                    Some(topic) => topic.send(&batch, &dead, &abandon).await,
                    None => true,
                },
                None => false,
            };
            tracing::debug!(batch = id, records = batch.records, ?gathered, ?built, total = ?started.elapsed(), settled = delivered, "batch done");
            // Freed before the consumer hears of it and dispatches the next batch, which then reuses its
            // body's buffer (see `BodyPool`).
            drop(batch);
            if delivered {
                Completion::Settled(id, count)
            } else {
                Completion::Abandoned
            }
        });
        // Whatever happens to the batch, the consumer hears of it: a panic in it is not a batch in flight
        // forever, which would hold its partitions' commits and, once `concurrency` of them, every batch.
        runtime.spawn(async move {
            let _ = done.send(settling.await.unwrap_or_else(|e| Completion::Failed(panic_text(e))));
        });
    }

    /// The reason a batch failed, once one has: the consumer stops.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Applies completions that have arrived, without waiting.
    pub fn drain(&mut self) {
        while let Ok(c) = self.done.try_recv() {
            self.complete(c);
        }
    }

    /// Waits up to `timeout` for one completion. False on timeout.
    pub fn wait_one(&mut self, timeout: Duration) -> bool {
        match self.done.recv_timeout(timeout) {
            Ok(c) => {
                self.complete(c);
                true
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => false,
        }
    }

    fn complete(&mut self, completion: Completion) {
        self.in_flight -= 1;
        match completion {
            Completion::Settled(id, count) => {
                self.tracker.complete(id);
                self.settled_since_commit += count;
            }
            Completion::Abandoned => {}
            Completion::Failed(reason) => {
                tracing::error!(%reason, "a batch failed; the indexer stops");
                self.failure.get_or_insert(reason);
            }
        }
    }

    /// Sends the open batch and waits, until `deadline`, for every in-flight batch holding records of
    /// `partitions` (all partitions if `None`) to settle.
    pub fn settle(&mut self, partitions: Option<&BTreeSet<TopicPartition>>, deadline: Instant) {
        self.dispatch();
        while self.in_flight > 0 && self.tracker.has_pending_in(partitions) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!(
                    in_flight = self.in_flight,
                    "gave up waiting for in-flight bulk requests; their records will be consumed again"
                );
                return;
            }
            self.wait_one(left.min(Duration::from_millis(100)));
        }
    }

    /// Commits the offsets that became safe: synchronously when the group is about to change hands, else
    /// once `commit_interval` has passed or a full batch's worth of records has settled since the last
    /// commit. Each commit is an OffsetCommit request that the broker makes durable (logpipe's broker
    /// syncs it to disk), and once batches go out as soon as the consumer has caught up there can be a
    /// hundred small ones a second. What is not committed is read again after a crash: at most the open
    /// batch, the `concurrency` in flight and one batch's worth settled, which the file output's window of
    /// ids covers (docs/DESIGN.md).
    pub fn commit<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, mode: CommitMode) {
        let recently = self.committed_at.is_some_and(|t| t.elapsed() < self.limits.commit_interval);
        if matches!(mode, CommitMode::Async) && recently && self.settled_since_commit < self.limits.max_events {
            return;
        }
        let offsets: BTreeMap<TopicPartition, i64> = self.tracker.take_committable();
        if offsets.is_empty() {
            return;
        }
        self.committed_at = Some(Instant::now());
        self.settled_since_commit = 0;
        let mut list = TopicPartitionList::new();
        for (tp, offset) in &offsets {
            if let Err(e) = list.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*offset)) {
                tracing::warn!("cannot commit {tp}: {e}");
            }
        }
        match consumer.commit(&list, mode) {
            Ok(()) => {
                for (tp, offset) in &offsets {
                    self.stats.committed(tp, *offset);
                }
            }
            // Not fatal: the next commit covers these offsets too, and a replay is harmless.
            Err(e) => tracing::warn!("offset commit failed: {e}"),
        }
    }

    /// Forgets revoked partitions: their late completions commit nothing.
    pub fn forget(&mut self, partitions: &BTreeSet<TopicPartition>) {
        for p in partitions {
            self.tracker.forget(p);
        }
    }

    /// Forgets every partition: the consumer that read them is gone, and its successor starts again
    /// from the committed offsets.
    pub fn forget_all(&mut self) {
        self.tracker.forget_all();
    }

    /// Stops every in-flight delivery; nothing of those batches is committed.
    pub fn abandon(&mut self) {
        self.dispatcher.abandon.cancel();
    }
}

/// What a panicked task said.
fn panic_text(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(payload) => match payload.downcast::<String>() {
            Ok(text) => format!("panicked: {text}"),
            Err(payload) => payload.downcast::<&str>().map_or("panicked".into(), |text| format!("panicked: {text}")),
        },
        Err(e) => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Compiled, IndexerConfig};
    use crate::event::Event;
    use crate::filters::Filter;

    /// A filter with a bug: it panics on the message `boom`.
    #[derive(Debug)]
    struct PanicsOnBoom;

    impl Filter for PanicsOnBoom {
        fn apply(&self, event: &mut Event) {
            assert_ne!(event.get_str_path(&["message"]).as_deref(), Some("boom"), "the filter's bug");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_that_panics_stops_the_consumer_and_commits_nothing_of_it() {
        use figment::providers::{Format, Toml};
        let dir = tempfile::tempdir().unwrap();
        let toml = format!("[output.file]\npath = {:?}\n", dir.path().join("indices"));
        let config: IndexerConfig = figment::Figment::from(Toml::string(&toml)).extract().unwrap();
        let mut compiled = Compiled::try_from(&config).unwrap();
        compiled.filters.push(None, Box::new(PanicsOnBoom));
        let stats = Arc::new(Stats::default());
        let outputs = Arc::new(Outputs::new(&config.output, stats.clone()).unwrap());
        let limits = Limits {
            max_events: 10,
            max_bytes: 1 << 20,
            timeout: Duration::from_millis(50),
            concurrency: 2,
            commit_interval: Duration::ZERO,
        };
        let mut flow = Flow::new(Processor::new(compiled), limits, Handle::current(), outputs, None, stats);
        let topic: Arc<str> = "t".into();
        for (offset, message) in [(0, "boom"), (1, "fine")] {
            flow.add(&topic, 0, offset, -1, Some(Bytes::from(format!(r#"{{"message":"{message}"}}"#))));
            flow.dispatch();
        }
        for _ in 0..2 {
            assert!(tokio::task::block_in_place(|| flow.wait_one(Duration::from_secs(60))), "a completion");
        }
        let failure = flow.failure().expect("the consumer hears of the panic");
        assert!(failure.contains("the filter's bug"), "{failure}");
        assert!(flow.has_capacity(), "the failed batch is not in flight forever");
        assert!(flow.tracker.take_committable().is_empty(), "nothing at or past the failed batch is committed");
    }
}
