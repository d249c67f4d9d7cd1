//! The Kafka output: a librdkafka producer whose delivery reports become [`Ack`]s.
//!
//! Durability choices:
//! - `acks=all` and `enable.idempotence=true` by default, so librdkafka's own retries neither duplicate
//!   nor reorder records within a partition.
//! - `message.timeout.ms=0` (no timeout): while the cluster is unreachable records wait in librdkafka's
//!   queue and are retried with its capped reconnect backoff, forever. Reading pauses once
//!   `queue_max_bytes` are unacknowledged, so the file stays the buffer.
//! - A record that still fails (a permanent error such as `MSG_SIZE_TOO_LARGE` or a missing topic) is
//!   kept and sent again with capped exponential backoff; a too-large one has its message cut first and
//!   is tagged `message_truncated`. Nothing is dropped.
//! - The broker's state is logged once per change (unreachable / reachable again), not per attempt; so
//!   is each topic's (delivery failing, e.g. a topic that does not exist, / delivering again).
//! - At shutdown, what is left unacknowledged is summarised in one line rather than one line per event.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig, ThreadedProducer};

use crate::config::OutputConfig;
use crate::error::Result;
use crate::sink::{Ack, Record, Sink};
use crate::stalls::{Ongoing, Stall, StallKind};

/// Longest wait between two resends of a record that failed permanently.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(30);

pub struct KafkaSink {
    producer: ThreadedProducer<AgentContext>,
    shared: Arc<Shared>,
}

struct Shared {
    acks: Sender<Ack>,
    failed: Mutex<VecDeque<Failed>>,
    down: AtomicBool,
    /// Events whose message was cut after the broker refused them as too large.
    too_large: AtomicU64,
    /// Topics whose deliveries fail (logged once when it starts and once when it clears).
    stalled: Mutex<Ongoing>,
    /// Whether `stalled` may be non-empty: spares the lock on every acknowledgement.
    any_stalled: AtomicBool,
    /// Events librdkafka gave back unsent when the producer was purged at shutdown.
    purged: AtomicU64,
}

impl Shared {
    /// A delivery to `topic` failed with `code`: log it if the topic was flowing until now.
    fn delivery_failed(&self, topic: &str, code: RDKafkaErrorCode, error: &KafkaError) {
        if matches!(code, RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight) {
            // Shutdown: summarised once by `KafkaSink::drop`.
            self.purged.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if !self.stalled.lock().unwrap_or_else(PoisonError::into_inner).start(topic, stall_reason(code)) {
            tracing::debug!(topic, error = %error, "delivery failed again; will resend");
            return;
        }
        self.any_stalled.store(true, Ordering::Relaxed);
        match code {
            RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic => tracing::warn!(
                topic,
                "topic {topic} does not exist and the cluster does not create topics on first use \
                 (auto_create_topics_enable = false on logpipe's broker, auto.create.topics.enable on Kafka): its \
                 events wait and are resent; create it with `logpipe topics create {topic} --partitions N`, or \
                 enable auto-creation"
            ),
            RDKafkaErrorCode::MessageSizeTooLarge => tracing::warn!(
                topic,
                "topic {topic} refused an event as too large: such events are cut, tagged message_truncated and \
                 resent; raise max_message_bytes (and the broker's message_max_bytes) to keep them whole"
            ),
            RDKafkaErrorCode::TopicAuthorizationFailed => tracing::warn!(
                topic,
                "not authorized to write to topic {topic}: its events wait and are resent; grant the agent's \
                 principal WRITE on it"
            ),
            _ => tracing::warn!(
                topic,
                error = %error,
                "delivery to topic {topic} failing: its events wait and are resent (logged again when it recovers)"
            ),
        }
    }

    /// The topics whose deliveries fail now.
    fn stalls(&self) -> Vec<Stall> {
        if !self.any_stalled.load(Ordering::Relaxed) {
            return Vec::new();
        }
        self.stalled.lock().unwrap_or_else(PoisonError::into_inner).stalls(StallKind::Topic).collect()
    }

    /// A delivery to `topic` succeeded while some topic is stalled: log it if it was this one.
    fn delivered(&self, topic: &str) {
        let mut stalled = self.stalled.lock().unwrap_or_else(PoisonError::into_inner);
        if stalled.clear(topic) {
            tracing::info!(topic, "topic {topic} accepts events again; delivering");
        }
        self.any_stalled.store(!stalled.is_empty(), Ordering::Relaxed);
    }
}

/// The few words `logpipe status` shows for a topic stalled by `code`.
fn stall_reason(code: RDKafkaErrorCode) -> &'static str {
    match code {
        RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic => {
            "does not exist (auto-create off); create it with `logpipe topics create`"
        }
        RDKafkaErrorCode::MessageSizeTooLarge => "refuses too large events; they are cut and resent",
        RDKafkaErrorCode::TopicAuthorizationFailed => "not authorized; grant the agent WRITE on it",
        _ => "deliveries fail; events wait and are resent",
    }
}

struct Failed {
    topic: String,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    ack: Ack,
    error: RDKafkaErrorCode,
    attempts: u32,
    not_before: Instant,
}

struct AgentContext {
    shared: Arc<Shared>,
}

impl ClientContext for AgentContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        // Connection failures are reported once per state change by `error`; librdkafka's own messages
        // repeat on every attempt, so they stay at debug.
        tracing::debug!(?level, fac, "librdkafka: {log_message}");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            if !self.shared.down.swap(true, Ordering::Relaxed) {
                tracing::warn!("all Kafka brokers are unreachable ({reason}); retrying, events wait in the queue");
            }
        } else {
            tracing::debug!(error = %error, "kafka client error: {reason}");
        }
    }
}

impl ProducerContext for AgentContext {
    type DeliveryOpaque = Box<Ack>;

    fn delivery(&self, result: &DeliveryResult<'_>, ack: Box<Ack>) {
        match result {
            Ok(message) => {
                // Once per delivered record: the common case reads two flags and sends the ack.
                if self.shared.down.load(Ordering::Relaxed) && self.shared.down.swap(false, Ordering::Relaxed) {
                    tracing::info!("Kafka brokers reachable again");
                }
                if self.shared.any_stalled.load(Ordering::Relaxed) {
                    self.shared.delivered(message.topic());
                }
                let _ = self.shared.acks.send(*ack);
            }
            Err((error, message)) => {
                let code = error.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
                self.shared.delivery_failed(message.topic(), code, error);
                self.shared.failed.lock().unwrap_or_else(PoisonError::into_inner).push_back(Failed {
                    topic: message.topic().to_string(),
                    key: message.key().map(<[u8]>::to_vec),
                    payload: message.payload().unwrap_or_default().to_vec(),
                    ack: *ack,
                    error: code,
                    attempts: 1,
                    not_before: Instant::now() + Duration::from_millis(100),
                });
            }
        }
    }
}

impl KafkaSink {
    /// A producer for `config`, acknowledging delivered records on `acks`. `queue_max_bytes` sizes
    /// librdkafka's queue so it never refuses what the tailer's budget allows.
    pub fn new(config: &OutputConfig, queue_max_bytes: usize, acks: Sender<Ack>) -> Result<Self> {
        let shared = Arc::new(Shared {
            acks,
            failed: Mutex::new(VecDeque::new()),
            down: AtomicBool::new(false),
            too_large: AtomicU64::new(0),
            stalled: Mutex::new(Ongoing::default()),
            any_stalled: AtomicBool::new(false),
            purged: AtomicU64::new(0),
        });
        let producer: ThreadedProducer<AgentContext> =
            client_config(config, queue_max_bytes)?.create_with_context(AgentContext { shared: shared.clone() })?;
        Ok(Self { producer, shared })
    }

    fn send_raw(&self, topic: &str, key: Option<&[u8]>, payload: &[u8], ack: Ack) {
        let mut record = BaseRecord::<[u8], [u8], Box<Ack>>::with_opaque_to(topic, Box::new(ack)).payload(payload);
        if let Some(k) = key {
            record = record.key(k);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // librdkafka's queue is sized above our budget, so this is brief.
                    record = back;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((error, back)) => {
                    let code = error.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
                    self.shared.delivery_failed(topic, code, &error);
                    self.shared.failed.lock().unwrap_or_else(PoisonError::into_inner).push_back(Failed {
                        topic: topic.to_string(),
                        key: key.map(<[u8]>::to_vec),
                        payload: back.payload.map(<[u8]>::to_vec).unwrap_or_default(),
                        ack: *back.delivery_opaque,
                        error: code,
                        attempts: 1,
                        not_before: Instant::now() + Duration::from_millis(100),
                    });
                    return;
                }
            }
        }
    }

    fn resend_failed(&self) {
        let now = Instant::now();
        let due: Vec<Failed> = {
            let mut failed = self.shared.failed.lock().unwrap_or_else(PoisonError::into_inner);
            let (due, wait): (Vec<_>, Vec<_>) = failed.drain(..).partition(|f| f.not_before <= now);
            failed.extend(wait);
            due
        };
        for mut f in due {
            if matches!(f.error, RDKafkaErrorCode::MessageSizeTooLarge) {
                f.payload = shrink(&f.payload);
                self.shared.too_large.fetch_add(1, Ordering::Relaxed);
            }
            let before = self.shared.failed.lock().unwrap_or_else(PoisonError::into_inner).len();
            self.send_raw(&f.topic, f.key.as_deref(), &f.payload, Ack { bytes: f.ack.bytes, ..f.ack });
            let mut failed = self.shared.failed.lock().unwrap_or_else(PoisonError::into_inner);
            if failed.len() > before {
                // Refused again at once: back off.
                if let Some(last) = failed.back_mut() {
                    last.attempts = f.attempts + 1;
                    let backoff = Duration::from_millis(100u64 << last.attempts.min(9)).min(MAX_RETRY_BACKOFF);
                    last.not_before = now + backoff;
                }
            }
        }
    }
}

impl Sink for KafkaSink {
    fn send(&mut self, record: Record<'_>) {
        self.send_raw(record.topic, record.key, record.payload, record.ack);
    }

    fn too_large(&self) -> u64 {
        self.shared.too_large.load(Ordering::Relaxed)
    }

    fn stalls(&self) -> Vec<Stall> {
        self.shared.stalls()
    }

    fn poll(&mut self) {
        if !self.shared.failed.lock().unwrap_or_else(PoisonError::into_inner).is_empty() {
            self.resend_failed();
        }
    }

    fn flush(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            self.poll();
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = self.producer.flush(left.min(Duration::from_millis(100)));
            let done = self.producer.in_flight_count() == 0
                && self.shared.failed.lock().unwrap_or_else(PoisonError::into_inner).is_empty();
            if done || Instant::now() >= deadline {
                return done;
            }
        }
    }
}

impl Drop for KafkaSink {
    /// Purges what is still queued (as librdkafka's own drop would, but counting instead of logging
    /// each event) and says in one line how many events were left unacknowledged.
    fn drop(&mut self) {
        self.producer.purge(PurgeConfig::default().queue().inflight());
        // The purged events' delivery reports arrive through the polling thread.
        let _ = self.producer.flush(Duration::from_millis(500));
        let waiting = self.shared.failed.lock().unwrap_or_else(PoisonError::into_inner).len() as u64;
        let undelivered = self.shared.purged.load(Ordering::Relaxed) + waiting;
        if undelivered > 0 {
            tracing::warn!(
                undelivered,
                "stopped with {undelivered} event(s) not acknowledged by Kafka; events of file inputs are read \
                 again at the next start (the registry moved only over acknowledged lines), those of exec and \
                 stdin inputs are lost"
            );
        }
    }
}

/// Halves the message of an encoded event refused as too large and tags it `message_truncated`.
fn shrink(payload: &[u8]) -> Vec<u8> {
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return payload[..payload.len() / 2].to_vec();
    };
    if let Some(msg) = v.get("message").and_then(|m| m.as_str()) {
        let mut keep = msg.len() / 2;
        while !msg.is_char_boundary(keep) {
            keep -= 1;
        }
        v["message"] = serde_json::Value::String(msg[..keep].to_string());
    }
    if let Some(tags) = v.get_mut("tags").and_then(|t| t.as_array_mut()) {
        if !tags.iter().any(|t| t == "message_truncated") {
            tags.push("message_truncated".into());
        }
    }
    serde_json::to_vec(&v).unwrap_or_else(|_| payload[..payload.len() / 2].to_vec())
}

/// The librdkafka configuration for `[agent.output]`.
pub fn client_config(config: &OutputConfig, queue_max_bytes: usize) -> Result<ClientConfig> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", config.brokers.join(","))
        .set("client.id", &config.client_id)
        .set("acks", config.acks.as_config())
        .set("enable.idempotence", config.acks.allows_idempotence().to_string())
        .set("compression.type", config.compression.as_config())
        .set("linger.ms", config.linger_ms.to_string())
        // TCP_NODELAY, as Kafka's Java clients set it. With Nagle on (librdkafka's default) a produce
        // request sent while the previous one is unacknowledged waits for the broker's delayed ACK:
        // at 10,000 lines/s that put p99 append -> indexed at 190-530 ms instead of 78-94 ms.
        .set("socket.nagle.disable", "true")
        .set("batch.size", config.batch_bytes.min(config.max_message_bytes).to_string())
        .set("message.max.bytes", config.max_message_bytes.to_string())
        // 0 = never time out: records wait for the cluster instead of failing.
        .set("message.timeout.ms", "0")
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "10000")
        .set("queue.buffering.max.kbytes", (queue_max_bytes / 1024 * 2).clamp(16 * 1024, 2_097_151).to_string())
        .set("queue.buffering.max.messages", (queue_max_bytes / 16).clamp(100_000, 10_000_000).to_string())
        // Java-compatible hashing for keyed records; keyless records use sticky partitioning.
        .set("partitioner", "murmur2_random");
    for (k, v) in &config.librdkafka {
        c.set(k, v);
    }
    for (k, v) in config.security_properties()? {
        c.set(k, v);
    }
    Ok(c)
}
