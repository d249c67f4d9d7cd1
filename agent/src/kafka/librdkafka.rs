//! The Kafka output through librdkafka (`client = "librdkafka"`), for settings only librdkafka has
//! (the `librdkafka` property table). Its delivery reports become the sink's [`Ack`]s and refusals.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig, ThreadedProducer};

use super::{Refusal, Shared};
use crate::config::OutputConfig;
use crate::error::Result;
use crate::sink::Ack;

pub(super) struct Librdkafka {
    producer: ThreadedProducer<AgentContext>,
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
            self.shared.unreachable(reason);
        } else {
            tracing::debug!(error = %error, "kafka client error: {reason}");
        }
    }
}

impl ProducerContext for AgentContext {
    type DeliveryOpaque = Box<Ack>;

    fn delivery(&self, result: &DeliveryResult<'_>, ack: Box<Ack>) {
        match result {
            Ok(message) => self.shared.delivered(message.topic(), vec![*ack]),
            Err((error, message)) => {
                let code = error.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
                if matches!(code, RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight) {
                    // Shutdown: summarised once by the sink's drop.
                    self.shared.purged.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                self.shared.refused(
                    message.topic(),
                    message.key().map(<[u8]>::to_vec),
                    message.payload().unwrap_or_default().to_vec(),
                    *ack,
                    refusal(code, error),
                );
            }
        }
    }
}

fn refusal(code: RDKafkaErrorCode, error: &KafkaError) -> Refusal {
    match code {
        RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic => Refusal::UnknownTopic,
        RDKafkaErrorCode::MessageSizeTooLarge => Refusal::TooLarge,
        RDKafkaErrorCode::TopicAuthorizationFailed => Refusal::Unauthorized,
        _ => Refusal::Other(error.to_string()),
    }
}

impl Librdkafka {
    /// A producer for `config`. `queue_max_bytes` sizes librdkafka's queue so it never refuses what the
    /// tailer's budget allows.
    pub(super) fn new(config: &OutputConfig, queue_max_bytes: usize, shared: Arc<Shared>) -> Result<Self> {
        let producer = client_config(config, queue_max_bytes)?.create_with_context(AgentContext { shared })?;
        Ok(Self { producer })
    }

    pub(super) fn send(&self, shared: &Shared, topic: &str, key: Option<&[u8]>, payload: &[u8], ack: Ack) {
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
                    let payload = back.payload.map(<[u8]>::to_vec).unwrap_or_default();
                    shared.refused(
                        topic,
                        key.map(<[u8]>::to_vec),
                        payload,
                        *back.delivery_opaque,
                        refusal(code, &error),
                    );
                    return;
                }
            }
        }
    }

    /// Waits up to `timeout` for librdkafka's queue; returns whether it is empty.
    pub(super) fn flush(&self, timeout: Duration) -> bool {
        let _ = self.producer.flush(timeout);
        self.producer.in_flight_count() == 0
    }

    /// Purges what is still queued (as librdkafka's own drop would, but counting instead of logging
    /// each event); the purged events' reports arrive through the polling thread.
    pub(super) fn purge(&self) {
        self.producer.purge(PurgeConfig::default().queue().inflight());
        let _ = self.producer.flush(Duration::from_millis(500));
    }
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
    for (k, v) in config.security_properties()? {
        c.set(k, v);
    }
    // Last, so that the table's own properties win: an imported config's `security.protocol` there is
    // not overridden by the `security` table's default (PLAINTEXT).
    for (k, v) in &config.librdkafka {
        c.set(k, v);
    }
    Ok(c)
}
