//! The Kafka output through logpipe's own producer (`client = "logpipe"`, the default): its reports
//! become the sink's [`Ack`]s and refusals.

use std::sync::Arc;
use std::time::Duration;

use logpipe_config::{Acks, Compression};
use logpipe_producer::{Codec, Producer, ProducerConfig, Report, Security};

use super::{Refusal, Shared};
use crate::config::OutputConfig;
use crate::error::{Error, Result};
use crate::sink::Ack;

pub(super) struct Native {
    producer: Producer<Ack>,
}

impl Native {
    pub(super) fn new(config: &OutputConfig, shared: Arc<Shared>) -> Result<Self> {
        let security =
            Security::from_properties(&config.security_properties()?, "agent.output").map_err(Error::Config)?;
        let producer_config = ProducerConfig {
            client_id: config.client_id.clone(),
            acks: match config.acks {
                Acks::All => -1,
                Acks::Leader => 1,
                Acks::None => 0,
            },
            compression: match config.compression {
                Compression::None => Codec::None,
                Compression::Gzip => Codec::Gzip,
                Compression::Snappy => Codec::Snappy,
                Compression::Lz4 => Codec::Lz4,
                Compression::Zstd => Codec::Zstd,
            },
            linger: Duration::from_millis(config.linger_ms),
            batch_bytes: config.batch_bytes.min(config.max_message_bytes),
            security,
            ..ProducerConfig::new(config.brokers.clone())
        };
        let producer = Producer::start(producer_config, move |report| match report {
            Report::Delivered { topic, opaques } => shared.delivered(&topic, opaques),
            Report::Failed(failed) => {
                let refusal = if failed.error.is_too_large() {
                    Refusal::TooLarge
                } else if failed.error.is_unknown_topic() {
                    Refusal::UnknownTopic
                } else if failed.error.is_unauthorized() {
                    Refusal::Unauthorized
                } else {
                    Refusal::Other(failed.error.to_string())
                };
                shared.refused(&failed.topic, failed.key, failed.value, failed.opaque, refusal);
            }
            Report::Unreachable(reason) => shared.unreachable(&reason),
            Report::Reachable => shared.reachable(),
        })?;
        Ok(Self { producer })
    }

    pub(super) fn send(&self, topic: &str, key: Option<&[u8]>, payload: &[u8], ack: Ack) {
        self.producer.send(topic, key, payload, ack);
    }

    /// Waits up to `timeout` for every record to be reported; returns whether all were.
    pub(super) fn flush(&self, timeout: Duration) -> bool {
        self.producer.flush(timeout)
    }

    /// Stops the producer; returns how many records were left unreported.
    pub(super) fn close(self) -> usize {
        self.producer.close()
    }
}
