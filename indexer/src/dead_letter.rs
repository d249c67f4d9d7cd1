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
//!
//! A document too large for a Kafka record at the default limits (librdkafka's `message.max.bytes`,
//! 1,000,000, and the broker's, 1 MiB; a document Elasticsearch refused as larger than a request is
//! always so) goes as its first bytes, in `"event_head"` (text), with `"event": null` and its size in
//! `"event_bytes"`: a record that can never be written would be retried forever, and the whole document
//! is the source record, at `topic`/`partition`/`offset`.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::batch::Batch;
use crate::config::InputConfig;
use crate::error::Result;
use crate::output::DeadLetters;

/// The most a dead letter's value holds: under librdkafka's default `message.max.bytes` (1,000,000), with
/// room for the key and the record's framing.
pub const MAX_VALUE_BYTES: usize = 990_000;

pub struct DeadLetterTopic {
    producer: FutureProducer,
    suffix: String,
}

impl DeadLetterTopic {
    /// A producer to the same cluster the input reads, with the input's extra connection properties.
    pub fn new(input: &InputConfig, suffix: &str) -> Result<Self> {
        Ok(Self { producer: client_config(input)?.create()?, suffix: suffix.to_string() })
    }

    /// The dead-letter record value for item `i` of `batch`, at most [`MAX_VALUE_BYTES`].
    pub fn value(batch: &Batch, i: usize, reason: &str) -> Vec<u8> {
        let item = batch.item(i);
        let document = batch.document(i);
        let mut value = Vec::with_capacity(document.len().min(MAX_VALUE_BYTES) + 256);
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
        if value.len() + document.len() < MAX_VALUE_BYTES {
            value.extend_from_slice(document);
            value.push(b'}');
            return value;
        }
        value.extend_from_slice(format!(r#"null,"event_bytes":{},"event_head":"#, document.len()).as_bytes());
        let fixed = value.len();
        // Escaping may lengthen the text (up to six times, for control characters): halve until it fits.
        let mut head = document.len().min(MAX_VALUE_BYTES);
        loop {
            head = head.min(MAX_VALUE_BYTES - fixed) / 2;
            let text = String::from_utf8_lossy(&document[..head]);
            value.truncate(fixed);
            json(&mut value, &text);
            value.push(b'}');
            if value.len() <= MAX_VALUE_BYTES {
                return value;
            }
        }
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
    fn a_document_too_large_for_a_record_goes_as_its_head() {
        let topic: std::sync::Arc<str> = "t".into();
        let small = r#"{"message":"short"}"#.as_bytes().to_vec();
        let large = format!(r#"{{"message":"{}\"quoted\""}}"#, "é".repeat(1_000_000)).into_bytes();
        let values = [(0, 0, Some(&small[..])), (0, 1, Some(&large[..]))];
        let processor = crate::batch::tests::processor("default_index = \"logs\"\n");
        let batch = processor.build(1, crate::batch::tests::records(&topic, &values));

        let whole: serde_json::Value = serde_json::from_slice(&DeadLetterTopic::value(&batch, 0, "400 x")).unwrap();
        assert_eq!(whole["event"]["message"], "short");
        assert_eq!(whole["reason"], "400 x");

        let value = DeadLetterTopic::value(&batch, 1, "413: too large");
        assert!(value.len() <= MAX_VALUE_BYTES, "{}", value.len());
        let cut: serde_json::Value = serde_json::from_slice(&value).unwrap();
        assert_eq!(cut["event"], serde_json::Value::Null);
        assert_eq!(cut["event_bytes"], batch.document(1).len());
        let head = cut["event_head"].as_str().unwrap();
        assert!(
            head.len() > 100_000
                && String::from_utf8_lossy(batch.document(1)).starts_with(head.trim_end_matches('\u{fffd}'))
        );
        assert_eq!((cut["topic"].as_str(), cut["offset"].as_i64()), (Some("t"), Some(1)));
    }

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
