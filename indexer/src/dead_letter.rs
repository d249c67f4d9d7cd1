//! The dead-letter topic: documents Elasticsearch refused for good (400 mapping errors, 404) go to
//! `<source topic><suffix>` (`nginx-dlq`) with their reason, so they are never dropped silently and can
//! be fixed and replayed. The record's key is the document `_id`; the value is
//!
//! ```json
//! {"reason":"400 document_parsing_exception: …","index":"nginx_access-2026.11.21","_id":"…",
//!  "topic":"nginx","partition":0,"offset":41,"event":{…the document…}}
//! ```
//!
//! A batch counts as settled only once its dead letters are acknowledged (acks=all, idempotent), so a
//! committed offset never passes a document that is neither indexed nor dead-lettered. While the broker
//! is unreachable the producer retries forever.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::batch::Batch;
use crate::config::InputConfig;
use crate::error::Result;
use crate::output::DeadLetters;

pub struct DeadLetterTopic {
    producer: FutureProducer,
    suffix: String,
}

impl DeadLetterTopic {
    /// A producer to the same cluster the input reads, with the input's extra connection properties.
    pub fn new(input: &InputConfig, suffix: &str) -> Result<Self> {
        Ok(Self { producer: client_config(input)?.create()?, suffix: suffix.to_string() })
    }

    /// The dead-letter record value for item `i` of `batch`.
    pub fn value(batch: &Batch, i: usize, reason: &str) -> Vec<u8> {
        let item = batch.item(i);
        let mut value = Vec::with_capacity(batch.document(i).len() + 256);
        let json = |v: &mut Vec<u8>, s: &str| serde_json::to_writer(v, s).expect("strings serialize");
        value.extend_from_slice(br#"{"reason":"#);
        json(&mut value, reason);
        value.extend_from_slice(br#","index":"#);
        json(&mut value, item.index);
        value.extend_from_slice(br#","_id":"#);
        json(&mut value, item.id);
        value.extend_from_slice(br#","topic":"#);
        json(&mut value, item.topic);
        value.extend_from_slice(
            format!(r#","partition":{},"offset":{},"event":"#, item.partition, item.offset).as_bytes(),
        );
        value.extend_from_slice(batch.document(i));
        value.push(b'}');
        value
    }

    /// Sends the batch's dead letters and waits until all are acknowledged. False if `stop` fired first.
    pub async fn send(&self, batch: &Batch, dead: &DeadLetters, stop: &CancellationToken) -> bool {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        for (i, reason) in dead {
            let item = batch.item(*i);
            let topic = format!("{}{}", item.topic, self.suffix);
            let value = Self::value(batch, *i, reason);
            loop {
                let record = FutureRecord::to(&topic).key(item.id.as_bytes()).payload(&value);
                let delivery = tokio::select! {
                    d = self.producer.send(record, Duration::from_secs(30)) => d,
                    _ = stop.cancelled() => return false,
                };
                match delivery {
                    Ok(_) => {
                        backoff.reset();
                        break;
                    }
                    Err((e, _)) => {
                        tracing::warn!(%topic, "cannot write a dead letter ({e}); retrying");
                        if !crate::output::elasticsearch::sleep_or_stop(backoff.next_delay(), stop).await {
                            return false;
                        }
                    }
                }
            }
            tracing::warn!(index = %item.index, id = %item.id, %reason, %topic, "document refused by elasticsearch, written to the dead-letter topic");
        }
        true
    }
}

/// The producer's librdkafka settings.
fn client_config(input: &InputConfig) -> Result<ClientConfig> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", input.brokers.join(","))
        .set("client.id", format!("{}-dlq", input.client_id))
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "0")
        .set("compression.type", "lz4");
    // Connection settings (TLS, SASL, sockets) apply to the producer too; consumer settings
    // (session.timeout.ms, fetch.*) would only draw librdkafka warnings.
    const SHARED: [&str; 7] = ["security.", "sasl.", "ssl.", "socket.", "broker.", "metadata.", "client."];
    let shared = |key: &str| SHARED.iter().any(|prefix| key.starts_with(prefix));
    for (key, value) in input.client_properties()?.into_iter().filter(|(key, _)| shared(key)) {
        config.set(key, value);
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn librdkafka_table_security_wins_over_the_security_tables_default() {
        let table = [("security.protocol", "SASL_SSL"), ("ssl.ca.location", "/ca.pem"), ("session.timeout.ms", "9000")];
        let input = InputConfig {
            librdkafka: table.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..InputConfig::default()
        };
        let config = client_config(&input).unwrap();
        assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(config.get("ssl.ca.location"), Some("/ca.pem"));
        assert_eq!(config.get("session.timeout.ms"), None, "a consumer setting");
        let config = client_config(&InputConfig::default()).unwrap();
        assert_eq!(config.get("security.protocol"), Some("plaintext"));
    }
}
