//! `logpipe consume TOPIC`, like `kafka-console-consumer.sh`: prints record values to stdout, one per line.
//!
//! Without `--group` the consumer `assign()`s partitions itself and never commits, so it leaves no trace in
//! the cluster (kafka-console-consumer gets the same effect with a throwaway random group; librdkafka needs
//! a group id even for assign(), so there is one, but it is never joined). With `--group` it
//! subscribes as a member of that group and commits offsets — but only of records whose output was flushed
//! to stdout, so a reader killed mid-batch, or a closed pipe, re-reads rather than skips.
//!
//! librdkafka's poll blocks, so the loop runs on a blocking thread; Ctrl-C sets a flag the loop checks
//! between polls, so the final commit still happens.

use std::collections::HashMap;
use std::io::{self, BufWriter, Write};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::client::{blocking, Connection};
use crate::error::{Error, Result};
use crate::topic_arg::TopicArg;

/// Records written between two stdout flushes (and offset stores).
const MAX_BATCH: usize = 1000;

/// Longest single poll, so that Ctrl-C and `--timeout-ms` are noticed promptly.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// `logpipe consume ...`
#[derive(Debug, Clone, clap::Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub topic: TopicArg,
    /// Start from the earliest record instead of the end (with --group: only where the group has no
    /// committed offset).
    #[arg(long, conflicts_with = "offset")]
    pub from_beginning: bool,
    /// Read only this partition [default: all partitions].
    #[arg(long, value_name = "P", value_parser = clap::value_parser!(i32).range(0..), conflicts_with = "group")]
    pub partition: Option<i32>,
    /// Where to start: an offset (needs --partition), `earliest` or `latest` [default: latest].
    #[arg(long, value_name = "N|earliest|latest", conflicts_with = "group")]
    pub offset: Option<StartOffset>,
    /// Exit after printing this many records.
    #[arg(long, value_name = "N")]
    pub max_messages: Option<u64>,
    /// Consume as a member of this consumer group and commit its offsets.
    #[arg(long, value_name = "G")]
    pub group: Option<String>,
    /// Exit after this many milliseconds without a record [default: wait forever].
    #[arg(long, value_name = "MS")]
    pub timeout_ms: Option<u64>,
    /// Print each record's key before its value, separated by a tab.
    #[arg(long)]
    pub print_key: bool,
    #[command(flatten)]
    pub connection: Connection,
}

/// `--offset`: where reading starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOffset {
    Earliest,
    Latest,
    At(i64),
}

impl FromStr for StartOffset {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "earliest" | "beginning" => Ok(StartOffset::Earliest),
            "latest" | "end" => Ok(StartOffset::Latest),
            n => match n.parse::<i64>() {
                Ok(n) if n >= 0 => Ok(StartOffset::At(n)),
                _ => Err(format!("expected a non-negative offset, 'earliest' or 'latest', got '{s}'")),
            },
        }
    }
}

impl StartOffset {
    fn to_offset(self) -> Offset {
        match self {
            StartOffset::Earliest => Offset::Beginning,
            StartOffset::Latest => Offset::End,
            StartOffset::At(n) => Offset::Offset(n),
        }
    }
}

impl ConsumeArgs {
    fn start(&self) -> StartOffset {
        match (self.offset, self.from_beginning) {
            (Some(offset), _) => offset,
            (None, true) => StartOffset::Earliest,
            (None, false) => StartOffset::Latest,
        }
    }

    fn validate(&self) -> Result<()> {
        if let (Some(StartOffset::At(n)), None) = (self.offset, self.partition) {
            return Err(Error::InvalidArgument(format!(
                "--offset {n} needs --partition: an offset only means something within one partition"
            )));
        }
        Ok(())
    }
}

pub(crate) async fn run(args: ConsumeArgs) -> Result<()> {
    args.validate()?;
    let stop = Arc::new(AtomicBool::new(false));
    let on_ctrl_c = {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.store(true, Ordering::Relaxed);
            }
        })
    };
    let result = blocking(move || consume(&args, &stop)).await;
    on_ctrl_c.abort();
    result
}

fn consume(args: &ConsumeArgs, stop: &AtomicBool) -> Result<()> {
    let conn = &args.connection;
    let mut config = conn.client_config();
    config
        // Offsets are stored by hand after stdout is flushed; auto-commit (group mode) then commits only those.
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", if args.from_beginning { "earliest" } else { "latest" });
    match &args.group {
        Some(group) => config.set("group.id", group).set("enable.auto.commit", "true"),
        // librdkafka's assign() lives in its group machinery and needs some group.id, so give it a
        // throwaway one (kafka-console-consumer does the same). It is never joined nor committed to: no
        // subscribe, no auto-commit, explicit start offsets, so the broker never sees the group.
        None => config
            .set("group.id", format!("logpipe-console-{}-{}", std::process::id(), unique_suffix()))
            .set("enable.auto.commit", "false"),
    };
    let consumer: BaseConsumer = config.create().map_err(conn.creation_error())?;

    let partitions = conn.partitions(consumer.client(), args.topic.name())?;
    match &args.group {
        Some(group) => consumer
            .subscribe(&[args.topic.name()])
            .map_err(conn.kafka_error(format!("joining group '{group}' for topic '{}'", args.topic)))?,
        None => {
            if let Some(p) = args.partition {
                conn.check_partition(args.topic.name(), &partitions, p)?;
            }
            let start = args.start().to_offset();
            let mut tpl = TopicPartitionList::new();
            for &p in &partitions {
                if args.partition.is_none() || args.partition == Some(p) {
                    tpl.add_partition_offset(args.topic.name(), p, start)
                        .map_err(conn.kafka_error("setting the start offset"))?;
                }
            }
            consumer
                .assign(&tpl)
                .map_err(conn.kafka_error(format!("assigning partitions of topic '{}'", args.topic)))?;
        }
    }

    let mut output = Output::new(args.print_key);
    let timeout = args.timeout_ms.map(Duration::from_millis);
    let mut last_record = Instant::now();
    let mut printed: u64 = 0;
    // Next offset to commit per partition, for records already flushed to stdout.
    let mut flushed: HashMap<i32, i64> = HashMap::new();
    let mut last_error = String::new();

    'poll: loop {
        if stop.load(Ordering::Relaxed) || args.max_messages.is_some_and(|max| printed >= max) {
            break;
        }
        let wait = match timeout {
            Some(timeout) => match timeout.checked_sub(last_record.elapsed()) {
                Some(left) if !left.is_zero() => left.min(POLL_INTERVAL),
                _ => break,
            },
            None => POLL_INTERVAL,
        };
        let mut next = consumer.poll(wait);
        let mut pending: Vec<(i32, i64)> = Vec::new();
        while let Some(result) = next.take() {
            match result {
                Ok(message) => {
                    output.push(message.key(), message.payload());
                    pending.push((message.partition(), message.offset()));
                    printed += 1;
                    last_record = Instant::now();
                }
                Err(KafkaError::MessageConsumptionFatal(code)) => {
                    return Err(Error::Kafka {
                        broker: conn.bootstrap_server.clone(),
                        action: format!("consuming topic '{}'", args.topic),
                        error: Box::new(KafkaError::MessageConsumptionFatal(code)),
                    })
                }
                Err(e) => {
                    // Mostly transient (broker restarting, leader moving); librdkafka retries by itself.
                    // Say it once, not on every poll.
                    let text = e.to_string();
                    if text != last_error {
                        tracing::warn!(topic = %args.topic, broker = %conn.bootstrap_server, "consumer: {text}");
                        last_error = text;
                    }
                }
            }
            let full = pending.len() >= MAX_BATCH || args.max_messages.is_some_and(|max| printed >= max);
            if !full {
                next = consumer.poll(Duration::ZERO);
            }
        }
        if pending.is_empty() {
            continue;
        }
        match output.flush() {
            Ok(()) => {}
            // The reader went away (`| head`): that is the end of the command, not a failure.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => break 'poll,
            Err(error) => return Err(Error::Io { what: "writing to stdout", error }),
        }
        for (partition, offset) in pending {
            flushed.insert(partition, offset + 1);
            if args.group.is_some() {
                // The legacy `rd_kafka_offset_store` behind `store_offset` takes the offset of the last
                // processed record and commits offset + 1 itself.
                if let Err(e) = consumer.store_offset(args.topic.name(), partition, offset) {
                    // A partition revoked by a rebalance cannot be stored; its new owner re-reads it.
                    tracing::debug!(partition, "offset not stored: {e}");
                }
            }
        }
    }

    if let Some(group) = &args.group {
        commit_flushed(&consumer, conn, group, args.topic.name(), &flushed)?;
    }
    eprintln!("Processed a total of {printed} messages");
    Ok(())
}

/// Distinguishes throwaway group ids of runs that share a pid (containers often start at pid 1).
fn unique_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// Synchronously commits what was printed, so that `groups describe` right after exit shows it.
/// Only partitions still assigned are committed: a revoked one belongs to another member now.
fn commit_flushed(
    consumer: &BaseConsumer,
    conn: &Connection,
    group: &str,
    topic: &str,
    flushed: &HashMap<i32, i64>,
) -> Result<()> {
    let assignment = consumer.assignment().map_err(conn.kafka_error("reading the assignment"))?;
    let mut tpl = TopicPartitionList::new();
    for (&partition, &next) in flushed {
        if assignment.find_partition(topic, partition).is_some() {
            tpl.add_partition_offset(topic, partition, Offset::Offset(next))
                .map_err(conn.kafka_error("building the commit"))?;
        }
    }
    if tpl.count() > 0 {
        consumer
            .commit(&tpl, CommitMode::Sync)
            .map_err(conn.kafka_error(format!("committing offsets of group '{group}'")))?;
    }
    Ok(())
}

/// Buffered stdout; a record is its value (`null` for a tombstone) and a newline.
struct Output {
    out: BufWriter<io::Stdout>,
    print_key: bool,
    /// First write error, reported at the next flush (writes into a BufWriter rarely fail on their own).
    error: Option<io::Error>,
}

impl Output {
    fn new(print_key: bool) -> Self {
        Self { out: BufWriter::with_capacity(1 << 16, io::stdout()), print_key, error: None }
    }

    fn push(&mut self, key: Option<&[u8]>, value: Option<&[u8]>) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = write_record(&mut self.out, self.print_key, key, value) {
            self.error = Some(e);
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.error.take() {
            Some(e) => Err(e),
            None => self.out.flush(),
        }
    }
}

fn write_record(out: &mut impl Write, print_key: bool, key: Option<&[u8]>, value: Option<&[u8]>) -> io::Result<()> {
    if print_key {
        out.write_all(key.unwrap_or(b"null"))?;
        out.write_all(b"\t")?;
    }
    out.write_all(value.unwrap_or(b"null"))?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: ConsumeArgs,
    }

    fn parse(args: &[&str]) -> Result<ConsumeArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("consume").chain(args.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn start_offset_parsing() {
        assert_eq!("earliest".parse(), Ok(StartOffset::Earliest));
        assert_eq!("latest".parse(), Ok(StartOffset::Latest));
        assert_eq!("42".parse(), Ok(StartOffset::At(42)));
        assert!("-3".parse::<StartOffset>().is_err());
        assert!("soon".parse::<StartOffset>().is_err());
    }

    #[test]
    fn default_starts_at_the_end() {
        assert_eq!(parse(&["t"]).unwrap().start(), StartOffset::Latest);
        assert_eq!(parse(&["t", "--from-beginning"]).unwrap().start(), StartOffset::Earliest);
        assert_eq!(parse(&["t", "--partition", "1", "--offset", "7"]).unwrap().start(), StartOffset::At(7));
    }

    #[test]
    fn flag_combinations() {
        assert!(parse(&["t", "--from-beginning", "--offset", "earliest"]).is_err());
        assert!(parse(&["t", "--group", "g", "--partition", "0"]).is_err());
        assert!(parse(&["t", "--group", "g", "--offset", "5"]).is_err());
        assert!(parse(&["t", "--offset", "5"]).unwrap().validate().is_err());
        assert!(parse(&["t", "--offset", "earliest"]).unwrap().validate().is_ok());
        let args =
            parse(&["t", "--group", "g", "--from-beginning", "--max-messages", "10", "--timeout-ms", "500"]).unwrap();
        assert_eq!(args.group.as_deref(), Some("g"));
        assert_eq!(args.max_messages, Some(10));
        assert_eq!(args.timeout_ms, Some(500));
    }

    #[test]
    fn records_are_lines() {
        let mut out = Vec::new();
        write_record(&mut out, false, Some(b"k"), Some(b"hello")).unwrap();
        write_record(&mut out, false, None, None).unwrap();
        write_record(&mut out, true, Some(b"k"), Some(b"v")).unwrap();
        write_record(&mut out, true, None, Some(b"v")).unwrap();
        assert_eq!(out, b"hello\nnull\nk\tv\nnull\tv\n");
    }
}
