//! A consumer baseline for `scripts/bench-indexer.sh`: reads every record of a topic's partitions with
//! plain Fetch requests on one connection and decodes their record batches (lz4 included) with
//! `kafka-protocol`'s decoder, doing nothing else with the values. Run under `/usr/bin/time` beside
//! `kcat -G` (librdkafka's consumer, one queued message per record), it shows what reading the same
//! records costs at the least: the floor for the indexer's own fetch path (`indexer/src/fetch/`), which
//! also filters transactions, tracks positions and hands the values to the consumer's thread.
//!
//! No consumer group, no commits, one partition after another from offset 0 to the high watermark seen
//! when it is reached; the connection is the agent's producer's (`logpipe-producer`), plaintext.
//!
//! Prints one `RESULT records=N bytes=N` line (the values' bytes).
//!
//! ```text
//! cargo run --release -p logpipe-indexer --example fetch_baseline -- \
//!     --bootstrap 127.0.0.1:9092 --topic nginx --partitions 3
//! ```

use std::process::ExitCode;
use std::time::Duration;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use logpipe_producer::{Connection, Security};

const USAGE: &str = "\
usage: fetch_baseline --bootstrap HOST:PORT --topic NAME [--partitions N]
  --partitions N   partitions 0..N of the topic are read (1)";

/// Fetch versions that name topics (13 and later name them by id).
const FETCH_VERSIONS: (i16, i16) = (4, 12);
/// Bytes asked for per request, as librdkafka's `fetch.max.bytes`-sized answers would be.
const MAX_BYTES: i32 = 8 << 20;
const TIMEOUT: Duration = Duration::from_secs(30);

struct Totals {
    records: u64,
    bytes: u64,
}

/// Reads partition `partition` of `topic` from offset 0 until the high watermark.
async fn read_partition(
    connection: &mut Connection,
    version: i16,
    topic: &str,
    partition: i32,
) -> Result<Totals, String> {
    let mut totals = Totals { records: 0, bytes: 0 };
    let mut offset = 0i64;
    loop {
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(100)
            .with_min_bytes(1)
            .with_max_bytes(MAX_BYTES)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(MAX_BYTES)])]);
        let response = connection.call(&request, version, TIMEOUT).await.map_err(|e| e.to_string())?;
        let answer = response
            .responses
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| format!("{topic}/{partition}: an empty Fetch response"))?;
        if answer.error_code != 0 {
            return Err(format!("{topic}/{partition}: Fetch error code {}", answer.error_code));
        }
        let before = offset;
        for mut batch in whole_batches(answer.records.clone().unwrap_or_default()) {
            let set = RecordBatchDecoder::decode(&mut batch).map_err(|e| format!("{topic}/{partition}: {e}"))?;
            for record in &set.records {
                // A batch may start before the offset asked for; its earlier records were read already.
                if record.offset >= offset {
                    totals.records += 1;
                    totals.bytes += record.value.as_ref().map_or(0, Bytes::len) as u64;
                    offset = record.offset + 1;
                }
            }
        }
        if offset >= answer.high_watermark || offset == before {
            return Ok(totals);
        }
    }
}

/// The complete record batches of a Fetch answer (a broker may cut the last one short).
fn whole_batches(mut records: Bytes) -> impl Iterator<Item = Bytes> {
    std::iter::from_fn(move || {
        // Base offset (8 bytes), then the batch's length after its first 12 bytes.
        let length = usize::try_from(i32::from_be_bytes(records.get(8..12)?.try_into().ok()?)).ok()?;
        (records.remaining() >= 12 + length).then(|| records.split_to(12 + length))
    })
}

async fn run(bootstrap: &str, topic: &str, partitions: i32) -> Result<Totals, String> {
    let mut connection = Connection::open(bootstrap, &Security::default(), "fetch_baseline", TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let version = connection.require_version(ApiKey::Fetch, FETCH_VERSIONS).map_err(|e| e.to_string())?;
    let mut totals = Totals { records: 0, bytes: 0 };
    for partition in 0..partitions {
        let read = read_partition(&mut connection, version, topic, partition).await?;
        totals.records += read.records;
        totals.bytes += read.bytes;
    }
    Ok(totals)
}

fn main() -> ExitCode {
    let (mut bootstrap, mut topic, mut partitions) = (None, None, 1);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--bootstrap", Some(v)) => bootstrap = Some(v),
            ("--topic", Some(v)) => topic = Some(v),
            ("--partitions", Some(v)) => match v.parse() {
                Ok(n) => partitions = n,
                Err(e) => {
                    eprintln!("--partitions {v}: {e}");
                    return ExitCode::from(2);
                }
            },
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let (Some(bootstrap), Some(topic)) = (bootstrap, topic) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    match runtime.block_on(run(&bootstrap, &topic, partitions)) {
        Ok(totals) => {
            println!("RESULT records={} bytes={}", totals.records, totals.bytes);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fetch_baseline: {e}");
            ExitCode::FAILURE
        }
    }
}
