//! The producer's public face: [`Producer::send`] on the caller's thread, reports back through a callback
//! run on the producer's own thread.
//!
//! Guarantees, as librdkafka's idempotent producer with `message.timeout.ms=0` gives them:
//! - every record is reported exactly once: [`Report::Delivered`] once the broker acknowledged it with the
//!   configured `acks`, or [`Report::Failed`] with the record given back when the cluster refused it for
//!   good (too large on its own, a topic that does not exist, no right to write to it);
//! - network trouble, leader changes and retriable errors are retried for ever, in order;
//! - with `acks=all` the producer is idempotent (KIP-98): a retried batch is never written twice and the
//!   order within a partition holds, with up to five batches in flight per partition.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use tokio::sync::Notify;

use crate::accumulator::{Accumulator, Wake};
use crate::batch::Codec;
use crate::sealer::Sealer;
use crate::security::Security;
use crate::sender;

/// How the producer connects, batches and acknowledges.
#[derive(Clone)]
pub struct ProducerConfig {
    /// Bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
    pub client_id: String,
    /// -1 (all), 1 or 0.
    pub acks: i16,
    pub compression: Codec,
    /// How long an open batch waits for more records.
    pub linger: Duration,
    /// Uncompressed bytes of records per batch at most.
    pub batch_bytes: usize,
    pub security: Security,
    /// How long a produce request may take to be written, and then to be answered, before the connection
    /// is dropped and its batches retried.
    pub request_timeout: Duration,
}

impl ProducerConfig {
    pub fn new(brokers: Vec<String>) -> Self {
        Self {
            brokers,
            client_id: "logpipe".into(),
            acks: -1,
            compression: Codec::Lz4,
            linger: Duration::from_millis(5),
            batch_bytes: 1_000_000,
            security: Security::default(),
            request_timeout: Duration::from_secs(30),
        }
    }

    pub(crate) fn idempotent(&self) -> bool {
        self.acks == -1
    }
}

/// Why the cluster refused records for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceError {
    pub code: i16,
    pub message: Option<String>,
}

impl ProduceError {
    pub(crate) fn new(code: i16, message: Option<String>) -> Self {
        Self { code, message }
    }

    /// The record alone is larger than the broker or topic accepts (`MESSAGE_TOO_LARGE`).
    pub fn is_too_large(&self) -> bool {
        matches!(self.error(), Some(ResponseError::MessageTooLarge | ResponseError::RecordListTooLarge))
    }

    /// The topic does not exist and the cluster does not create it on first use.
    pub fn is_unknown_topic(&self) -> bool {
        matches!(self.error(), Some(ResponseError::UnknownTopicOrPartition))
    }

    /// The producer's principal may not write to the topic.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self.error(), Some(ResponseError::TopicAuthorizationFailed))
    }

    fn error(&self) -> Option<ResponseError> {
        ResponseError::try_from_code(self.code)
    }
}

impl std::fmt::Display for ProduceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.error() {
            Some(e) => write!(f, "{e:?} (error code {})", self.code)?,
            None => write!(f, "error code {}", self.code)?,
        }
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        Ok(())
    }
}

/// A record given back after the cluster refused it for good.
pub struct FailedRecord<T> {
    pub topic: Arc<str>,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub opaque: T,
    pub error: ProduceError,
}

/// What the producer tells its owner, on the producer's thread.
pub enum Report<T> {
    /// These records of `topic` were acknowledged, in the order they were sent.
    Delivered {
        topic: Arc<str>,
        opaques: Vec<T>,
    },
    Failed(FailedRecord<T>),
    /// No broker could be reached (the reason of the last attempt); records wait and are retried.
    Unreachable(String),
    /// A broker answered again after [`Report::Unreachable`].
    Reachable,
}

pub(crate) struct Shared<T> {
    pub accumulator: Mutex<Accumulator<T>>,
    /// Wakes the sender: something to send, to fetch, or to stop.
    pub wake: Notify,
    /// Signalled by the sender when records are reported, for `flush`.
    pub reported: Condvar,
}

impl<T> Shared<T> {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Accumulator<T>> {
        self.accumulator.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A Kafka producer whose records carry an opaque `T` that comes back in their [`Report`].
pub struct Producer<T: Send + 'static> {
    shared: Arc<Shared<T>>,
    thread: Option<JoinHandle<usize>>,
}

impl<T: Send + 'static> Producer<T> {
    /// Starts the producer's thread. Connecting happens there, in the background: an unreachable cluster
    /// is reported through `report`, not here.
    pub fn start(config: ProducerConfig, report: impl FnMut(Report<T>) + Send + 'static) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            accumulator: Mutex::new(Accumulator::new(config.batch_bytes.max(1))),
            wake: Notify::new(),
            reported: Condvar::new(),
        });
        let thread_shared = shared.clone();
        let sealer = Sealer::start(config.compression)?;
        let thread = std::thread::Builder::new()
            .name("kafka-producer".into())
            .spawn(move || sender::run(config, thread_shared, sealer, Box::new(report)))?;
        Ok(Self { shared, thread: Some(thread) })
    }

    /// Takes over one record; its bytes are copied into the partition's batch before this returns.
    pub fn send(&self, topic: &str, key: Option<&[u8]>, value: &[u8], opaque: T) {
        let timestamp = now_ms();
        let wake = self.shared.lock().append(topic, timestamp, key, value, opaque);
        if wake == Wake::Yes {
            self.shared.wake.notify_one();
        }
    }

    /// Records taken over and not reported yet.
    pub fn pending(&self) -> usize {
        self.shared.lock().pending
    }

    /// Sends every open batch now and waits up to `timeout` for all records to be reported. Returns
    /// whether they were.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut accumulator = self.shared.lock();
        accumulator.flushing = true;
        self.shared.wake.notify_one();
        while accumulator.pending > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            accumulator =
                self.shared.reported.wait_timeout(accumulator, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        accumulator.flushing = false;
        accumulator.pending == 0
    }

    /// Stops the producer's threads at once (the compression thread after the batch it is sealing);
    /// returns how many records were never reported (neither delivered nor given back).
    pub fn close(mut self) -> usize {
        self.stop()
    }

    fn stop(&mut self) -> usize {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        self.thread.take().map_or(0, |thread| thread.join().unwrap_or(0))
    }
}

impl<T: Send + 'static> Drop for Producer<T> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The record timestamp: the coarse real-time clock (one to four milliseconds of resolution), which
/// costs a few nanoseconds where the precise one took about 2% of the agent's CPU.
fn now_ms() -> i64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
    now.tv_sec * 1000 + now.tv_nsec / 1_000_000
}
