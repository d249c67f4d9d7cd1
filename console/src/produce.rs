//! `logpipe produce TOPIC`, like `kafka-console-producer.sh`: each stdin line becomes one record.
//!
//! Records are handed to librdkafka as fast as stdin yields them and librdkafka batches them (`linger.ms`),
//! so 100k lines take seconds; deliveries are awaited concurrently, never one by one. The command succeeds
//! only if every record was acknowledged, and always reports how many were. With `--acks all` the producer is
//! idempotent, so librdkafka's internal retries can neither duplicate nor reorder records.

use logpipe_config::{Acks, Compression};

use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::client::Connection;
use crate::error::{Error, Result};
use crate::topic_arg::TopicArg;

/// `logpipe produce ...`
#[derive(Debug, Clone, clap::Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub topic: TopicArg,
    /// Key for every record [default: none, records spread over partitions].
    #[arg(long, value_name = "K")]
    pub key: Option<String>,
    /// Write every record to this partition [default: chosen by the key, or spread].
    #[arg(long, value_name = "P", value_parser = clap::value_parser!(i32).range(0..))]
    pub partition: Option<i32>,
    /// Acknowledgements to wait for: all (= -1, idempotent), 1 (leader only) or 0 (none).
    #[arg(long, value_enum, default_value_t = Acks::All, allow_hyphen_values = true)]
    pub acks: Acks,
    /// Compression codec for record batches.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    pub compression: Compression,
    /// Give up on a record not acknowledged within this many milliseconds (Kafka's delivery.timeout.ms).
    #[arg(long, value_name = "MS", default_value_t = 120_000)]
    pub delivery_timeout_ms: u64,
    #[command(flatten)]
    pub connection: Connection,
}

/// Delivery tally.
#[derive(Debug, Default)]
struct Tally {
    sent: u64,
    acknowledged: u64,
    first_error: Option<String>,
}

impl Tally {
    fn record(&mut self, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => self.acknowledged += 1,
            Err(e) => {
                self.first_error.get_or_insert(e);
            }
        }
    }

    fn failed(&self) -> u64 {
        self.sent - self.acknowledged
    }
}

fn outcome(
    result: Result<rdkafka::producer::future_producer::OwnedDeliveryResult, futures::channel::oneshot::Canceled>,
) -> Result<(), String> {
    match result {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(e.to_string()),
        Err(_) => Err("producer shut down before the delivery report".to_owned()),
    }
}

pub(crate) async fn run(args: ProduceArgs) -> Result<()> {
    let connection = &args.connection;
    let idempotent = args.acks.allows_idempotence();
    let producer: FutureProducer = connection
        .client_config()
        .set("acks", args.acks.as_config())
        .set("enable.idempotence", idempotent.to_string())
        .set("compression.codec", args.compression.to_string())
        .set("message.timeout.ms", args.delivery_timeout_ms.to_string())
        // Piped input arrives far faster than the broker round trip; a short linger lets librdkafka fill
        // large batches, while a line typed by hand still goes out without a noticeable delay.
        .set("linger.ms", "10")
        // Like kafka-console-producer: a broker with auto_create_topics_enable creates a missing topic.
        .set("allow.auto.create.topics", "true")
        .create()
        .map_err(connection.creation_error())?;

    // Fail fast with a clear message rather than letting every record time out on a missing topic or
    // partition. Other metadata trouble (say LEADER_NOT_AVAILABLE while a broker auto-creates the topic) is
    // left to librdkafka, which waits and retries within the delivery timeout.
    {
        let producer = producer.clone();
        let conn = connection.clone();
        let topic = args.topic.name().to_owned();
        let partition = args.partition;
        crate::client::blocking(move || {
            use rdkafka::producer::Producer;
            match conn.partitions(producer.client(), &topic) {
                Ok(ids) => match partition {
                    Some(p) => conn.check_partition(&topic, &ids, p),
                    None => Ok(()),
                },
                Err(e @ Error::UnknownTopic { .. }) => Err(e),
                Err(e) => {
                    tracing::debug!(%topic, "metadata not ready, producing anyway: {e}");
                    Ok(())
                }
            }
        })
        .await?;
    }

    let mut tally = Tally::default();
    let mut in_flight: FuturesUnordered<DeliveryFuture> = FuturesUnordered::new();
    let mut stdin = BufReader::with_capacity(1 << 16, tokio::io::stdin());
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = stdin.read_until(b'\n', &mut line).await.map_err(|error| Error::Io { what: "reading stdin", error })?;
        if n == 0 {
            break;
        }
        let payload = strip_line_ending(&line);
        let mut record = FutureRecord::<str, [u8]>::to(args.topic.name()).payload(payload);
        if let Some(key) = &args.key {
            record = record.key(key.as_str());
        }
        if let Some(partition) = args.partition {
            record = record.partition(partition);
        }
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    tally.sent += 1;
                    in_flight.push(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    // librdkafka's queue is full: wait for a delivery to make room, then retry the record.
                    record = returned;
                    match in_flight.next().await {
                        Some(result) => tally.record(outcome(result)),
                        None => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
                    }
                }
                Err((e, _)) => {
                    tally.sent += 1;
                    tally.record(Err(e.to_string()));
                    break;
                }
            }
        }
        // Collect finished deliveries as we go so memory stays bounded by what is really in flight.
        while let Some(Some(result)) = in_flight.next().now_or_never() {
            tally.record(outcome(result));
        }
    }
    while let Some(result) = in_flight.next().await {
        tally.record(outcome(result));
    }

    eprintln!(
        "Acknowledged {} of {} record(s) to topic {} (acks={}).",
        tally.acknowledged,
        tally.sent,
        args.topic,
        args.acks.as_config()
    );
    if tally.failed() > 0 {
        return Err(Error::DeliveryFailed {
            topic: args.topic.name().to_owned(),
            broker: connection.bootstrap_server.clone(),
            total: tally.sent,
            acknowledged: tally.acknowledged,
            failed: tally.failed(),
            first_error: tally.first_error.unwrap_or_default(),
        });
    }
    Ok(())
}

/// Drops the `\n` or `\r\n` that ended a line; the record is the line's content only.
fn strip_line_ending(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: ProduceArgs,
    }

    #[test]
    fn line_endings_are_stripped() {
        assert_eq!(strip_line_ending(b"abc\n"), b"abc");
        assert_eq!(strip_line_ending(b"abc\r\n"), b"abc");
        assert_eq!(strip_line_ending(b"abc"), b"abc");
        assert_eq!(strip_line_ending(b"\n"), b"");
        assert_eq!(strip_line_ending(b"a\rb\n"), b"a\rb");
    }

    #[test]
    fn acks_accepts_kafka_spellings() {
        for (flag, acks) in [("all", Acks::All), ("-1", Acks::All), ("1", Acks::Leader), ("0", Acks::None)] {
            let cli = Cli::try_parse_from(["produce", "t", "--acks", flag]).unwrap();
            assert_eq!(cli.args.acks, acks, "{flag}");
        }
        assert_eq!(Cli::try_parse_from(["produce", "t"]).unwrap().args.acks, Acks::All);
        assert!(Cli::try_parse_from(["produce", "t", "--acks", "2"]).is_err());
    }

    #[test]
    fn tally_counts_failures() {
        let mut tally = Tally { sent: 3, ..Tally::default() };
        tally.record(Ok(()));
        tally.record(Err("first".into()));
        tally.record(Err("second".into()));
        assert_eq!(tally.acknowledged, 1);
        assert_eq!(tally.failed(), 2);
        assert_eq!(tally.first_error.as_deref(), Some("first"));
    }
}
