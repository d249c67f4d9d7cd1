//! `logpipe replay --topic T --from TIME [--to TIME]`: re-index a time range of a topic into the same
//! indices, e.g. yesterday after fixing a mapping or deleting an index. The range is found with Kafka's
//! ListOffsets by timestamp (the records' own timestamps: when the agent sent them), read by a consumer
//! outside the live group (partitions assigned, nothing committed), and run through the same filters and
//! routes. Every document keeps its `_id` (`event.id`) and goes with `create`, so what is still indexed
//! answers 409 and nothing is duplicated; only what is missing comes back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::batch::{Processor, RecordBatch};

use crate::consumer::client_config;
use crate::error::{Error, Result};
use crate::fetch::ISOLATION_LEVEL;
use crate::output::Outputs;
use crate::stats::Stats;

const TIMEOUT: Duration = Duration::from_secs(30);

/// What a replay did.
#[derive(Debug, Default)]
pub struct ReplayReport {
    /// Records read from the range, per partition: (first offset, end offset).
    pub ranges: BTreeMap<i32, (i64, i64)>,
    pub records: u64,
    /// Documents sent, per index (each one either created or already there).
    pub documents: BTreeMap<String, u64>,
    /// Documents the cluster refused (400/404), with the reason; not dead-lettered.
    pub refused: Vec<(String, String)>,
}

/// Replays `[from, to)` of `topic` (to the end when `to` is `None`) through the indexer's filters, routes
/// and output. Returns early with what was done if `stop` fires.
pub async fn replay(
    indexer: crate::Indexer,
    topic: &str,
    from: DateTime<Utc>,
    to: Option<DateTime<Utc>>,
    stop: &CancellationToken,
) -> Result<ReplayReport> {
    let crate::Indexer { config, compiled, .. } = indexer;
    let outputs = Outputs::new(&config.output, Arc::new(Stats::default()))?;
    let default_index = (!config.drop_unmatched).then_some(config.default_index.as_str());
    if !outputs.prepare(&compiled.routes, default_index, stop).await? {
        return Ok(ReplayReport::default());
    }
    let processor = Processor::new(compiled);

    // Outside the live group: a group id of its own, partitions assigned by hand, nothing committed.
    let mut cc = client_config(&config.input)?;
    // A partition whose range runs to the end of its log is done at its end, which librdkafka reports: its
    // last offsets may hold no record to deliver (a transaction's marker, a record compaction removed).
    cc.set("group.id", format!("{}-replay", config.input.group_id))
        .set("enable.partition.eof", "true")
        .remove("group.instance.id");
    // The replay reads through librdkafka, not the live consumer's fetcher, which alone takes the fetch
    // settings: `isolation.level` must still hold here. (The sizes are not passed on: librdkafka refuses
    // some values the fetcher takes.)
    for (key, value) in config.input.client_properties()?.into_iter().filter(|(key, _)| *key == ISOLATION_LEVEL) {
        cc.set(key, value);
    }
    let consumer: BaseConsumer = cc.create()?;
    let ranges = tokio::task::block_in_place(|| ranges(&consumer, topic, from, to))?;
    let mut report = ReplayReport { ranges: ranges.clone(), ..ReplayReport::default() };
    let mut assignment = TopicPartitionList::new();
    for (&p, &(start, end)) in &ranges {
        if start < end {
            assignment.add_partition_offset(topic, p, Offset::Offset(start))?;
        }
    }
    if assignment.count() == 0 {
        return Ok(report);
    }
    consumer.assign(&assignment)?;
    let mut open: BTreeMap<i32, i64> = ranges.iter().filter(|(_, (s, e))| s < e).map(|(p, (_, e))| (*p, *e)).collect();
    let max = config.output.elasticsearch.as_ref().map_or(5000, |e| e.batch_max_events);
    let topic_name: Arc<str> = topic.into();
    let mut batch_id = 0u64;
    while !open.is_empty() && !stop.is_cancelled() {
        let mut records = RecordBatch::default();
        while records.len() < max && !open.is_empty() && !stop.is_cancelled() {
            let Some(message) = tokio::task::block_in_place(|| consumer.poll(Duration::from_millis(200))) else {
                if !records.is_empty() {
                    break;
                }
                continue;
            };
            let message = match message {
                Err(KafkaError::PartitionEOF(p)) => {
                    open.remove(&p);
                    continue;
                }
                other => other?,
            };
            let (p, offset) = (message.partition(), message.offset());
            let Some(&end) = open.get(&p) else { continue };
            if offset >= end {
                open.remove(&p);
                continue;
            }
            records.push(&topic_name, p, offset, message.timestamp().to_millis().unwrap_or(-1), message.payload());
            if offset + 1 >= end {
                open.remove(&p);
            }
        }
        if records.is_empty() {
            continue;
        }
        report.records += records.len() as u64;
        batch_id += 1;
        let batch = Arc::new(processor.build(batch_id, records));
        for item in batch.items() {
            *report.documents.entry(item.index.to_string()).or_default() += 1;
        }
        let Some(refused) = outputs.deliver(batch.clone(), stop).await else { break };
        report.refused.extend(refused.into_iter().map(|(i, reason)| (batch.item(i).id.to_string(), reason)));
    }
    Ok(report)
}

/// Per partition: the first offset at or after `from` and the first at or after `to` (or the end).
fn ranges(
    consumer: &BaseConsumer,
    topic: &str,
    from: DateTime<Utc>,
    to: Option<DateTime<Utc>>,
) -> Result<BTreeMap<i32, (i64, i64)>> {
    let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    if partitions.is_empty() {
        return Err(Error::Config(format!("replay: topic {topic:?} does not exist or has no partitions")));
    }
    let at = |time: DateTime<Utc>| -> Result<BTreeMap<i32, Option<i64>>> {
        let mut query = TopicPartitionList::new();
        for &p in &partitions {
            query.add_partition_offset(topic, p, Offset::Offset(time.timestamp_millis()))?;
        }
        let answer = consumer.offsets_for_times(query, TIMEOUT)?;
        Ok(answer
            .elements()
            .iter()
            .map(|e| (e.partition(), if let Offset::Offset(o) = e.offset() { Some(o) } else { None }))
            .collect())
    };
    let starts = at(from)?;
    let ends = to.map(at).transpose()?;
    let mut out = BTreeMap::new();
    for &p in &partitions {
        let (_, high) = consumer.fetch_watermarks(topic, p, TIMEOUT)?;
        // No record at or after the time: the range starts (or ends) at the end of the log.
        let start = starts.get(&p).copied().flatten().unwrap_or(high);
        let end = ends.as_ref().and_then(|e| e.get(&p).copied().flatten()).unwrap_or(high);
        out.insert(p, (start, end.max(start)));
    }
    Ok(out)
}
