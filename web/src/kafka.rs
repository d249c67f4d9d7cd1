//! The console's Kafka client (librdkafka through `rdkafka`, like the console tools): it reads records
//! without joining any group (assign, never subscribe), so browsing disturbs nothing.
//!
//! - [`KafkaAccess::browse`]: records of one partition from an offset, or from the first record at or
//!   after a time (ListOffsets by timestamp), with a substring filter.
//! - [`KafkaAccess::configs`]: a topic's configs (DescribeConfigs), defaults marked.
//! - [`KafkaAccess::dead_letters`] / [`KafkaAccess::resend`]: the recent records of `<topic>-dlq`, and
//!   producing a dead letter's `event` back to its source topic for another try.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

/// Where the cluster is: bootstrap servers and extra librdkafka properties (TLS, SASL).
#[derive(Debug, Clone)]
pub struct KafkaAccess {
    pub bootstrap: String,
    pub properties: Vec<(String, String)>,
}

const TIMEOUT: Duration = Duration::from_secs(10);
/// Records looked at for one page when a filter skips most of them.
const SCAN_LIMIT: usize = 20_000;

/// Where a page of records starts.
#[derive(Debug, Clone, Copy)]
pub enum Seek {
    Offset(i64),
    /// Milliseconds since the epoch: the first record at or after it.
    Time(i64),
    /// The last `limit` records.
    Tail,
}

#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: Option<i64>,
    pub key: Option<String>,
    pub value: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Page {
    pub topic: String,
    pub partition: i32,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    /// Where the page started (after resolving a time).
    pub start_offset: i64,
    /// The offset to ask for the next page.
    pub next_offset: i64,
    /// Records read (filtered or not).
    pub scanned: usize,
    pub records: Vec<Record>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub is_default: bool,
}

impl KafkaAccess {
    pub(crate) fn connection(&self) -> logpipe_console::Connection {
        logpipe_console::Connection {
            bootstrap_server: self.bootstrap.clone(),
            request_timeout_ms: TIMEOUT.as_millis() as u64,
            properties: self.properties.clone(),
            config_file: None,
        }
    }

    fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap)
            .set("client.id", "logpipe-web")
            .set("allow.auto.create.topics", "false");
        for (k, v) in &self.properties {
            config.set(k, v);
        }
        config
    }

    fn reader(&self) -> Result<BaseConsumer, String> {
        self.config()
            .set("group.id", "logpipe-web-browser")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .create()
            .map_err(|e| format!("cannot create a Kafka client for {}: {e}", self.bootstrap))
    }

    /// Up to `limit` records of `topic`/`partition` from `seek` whose key or value contains `filter`.
    pub fn browse(&self, topic: &str, partition: i32, seek: Seek, limit: usize, filter: &str) -> Result<Page, String> {
        let consumer = self.reader()?;
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, TIMEOUT)
            .map_err(|e| format!("topic '{topic}' partition {partition} on {}: {e}", self.bootstrap))?;
        let start = match seek {
            Seek::Offset(o) => o.clamp(low, high),
            Seek::Tail => (high - limit as i64).max(low),
            Seek::Time(ms) => {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition_offset(topic, partition, Offset::Offset(ms)).map_err(|e| e.to_string())?;
                let found = consumer
                    .offsets_for_times(tpl, TIMEOUT)
                    .map_err(|e| format!("looking up offsets by time on {}: {e}", self.bootstrap))?;
                match found.elements().first().map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => o,
                    _ => high, // no record at or after that time
                }
            }
        };
        let mut page = Page {
            topic: topic.to_owned(),
            partition,
            log_start_offset: low,
            log_end_offset: high,
            start_offset: start,
            next_offset: start,
            scanned: 0,
            records: Vec::new(),
        };
        if start >= high || limit == 0 {
            return Ok(page);
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(start)).map_err(|e| e.to_string())?;
        consumer.assign(&tpl).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + TIMEOUT;
        while page.records.len() < limit && page.next_offset < high && page.scanned < SCAN_LIMIT {
            let Some(message) = consumer.poll(deadline.saturating_duration_since(Instant::now())) else { break };
            let message = match message {
                Ok(m) => m,
                Err(rdkafka::error::KafkaError::PartitionEOF(_)) => break,
                Err(e) => return Err(format!("reading topic '{topic}' partition {partition}: {e}")),
            };
            page.scanned += 1;
            page.next_offset = message.offset() + 1;
            let record = Record {
                partition,
                offset: message.offset(),
                timestamp_ms: message.timestamp().to_millis(),
                key: message.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                value: message.payload().map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default(),
            };
            if filter.is_empty()
                || record.value.contains(filter)
                || record.key.as_deref().is_some_and(|k| k.contains(filter))
            {
                page.records.push(record);
            }
        }
        Ok(page)
    }

    /// The partition ids of `topic`.
    pub fn partitions(&self, topic: &str) -> Result<Vec<i32>, String> {
        let consumer = self.reader()?;
        let metadata = consumer
            .fetch_metadata(Some(topic), TIMEOUT)
            .map_err(|e| format!("metadata of topic '{topic}' from {}: {e}", self.bootstrap))?;
        let mut ids: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// A topic's configs (DescribeConfigs).
    pub async fn configs(&self, topic: &str) -> Result<Vec<ConfigEntry>, String> {
        let admin: AdminClient<DefaultClientContext> =
            self.config().create().map_err(|e| format!("cannot create a Kafka admin client: {e}"))?;
        let options = AdminOptions::new().request_timeout(Some(TIMEOUT));
        let results = admin
            .describe_configs(&[ResourceSpecifier::Topic(topic)], &options)
            .await
            .map_err(|e| format!("configs of topic '{topic}' from {}: {e}", self.bootstrap))?;
        let resource = results
            .into_iter()
            .next()
            .ok_or("no answer")?
            .map_err(|code| format!("configs of topic '{topic}': {code}"))?;
        Ok(resource
            .entries
            .into_iter()
            .map(|e| ConfigEntry { name: e.name, value: e.value, is_default: e.is_default })
            .collect())
    }

    /// The newest `limit` records of each partition of the dead-letter topic, newest first.
    pub fn dead_letters(&self, dlq_topic: &str, limit: usize) -> Result<Vec<Record>, String> {
        let mut records = Vec::new();
        for partition in self.partitions(dlq_topic)? {
            records.extend(self.browse(dlq_topic, partition, Seek::Tail, limit, "")?.records);
        }
        records.sort_by_key(|r| std::cmp::Reverse((r.timestamp_ms, r.offset)));
        records.truncate(limit);
        Ok(records)
    }

    /// Produces the `event` of dead letter `dlq_topic`/`partition`/`offset` back to the topic it came from
    /// (its `topic` field); returns that topic and the new record's partition and offset.
    pub async fn resend(&self, dlq_topic: &str, partition: i32, offset: i64) -> Result<(String, i32, i64), String> {
        let access = self.clone();
        let dlq = dlq_topic.to_owned();
        let page = tokio::task::spawn_blocking(move || access.browse(&dlq, partition, Seek::Offset(offset), 1, ""))
            .await
            .map_err(|e| e.to_string())??;
        let record = page
            .records
            .into_iter()
            .find(|r| r.offset == offset)
            .ok_or_else(|| format!("no record at {dlq_topic} partition {partition} offset {offset}"))?;
        let letter: serde_json::Value = serde_json::from_str(&record.value)
            .map_err(|e| format!("{dlq_topic} offset {offset} is not a dead letter (not JSON: {e})"))?;
        let (Some(topic), Some(event)) = (letter["topic"].as_str(), letter.get("event")) else {
            return Err(format!("{dlq_topic} offset {offset} is not a dead letter: no `topic` or `event`"));
        };
        let producer: FutureProducer = self
            .config()
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .create()
            .map_err(|e| format!("cannot create a Kafka producer: {e}"))?;
        let payload = event.to_string();
        let sent = producer
            .send(FutureRecord::<(), _>::to(topic).payload(&payload), TIMEOUT)
            .await
            .map_err(|(e, _)| format!("cannot produce to '{topic}' on {}: {e}", self.bootstrap))?;
        Ok((topic.to_owned(), sent.partition, sent.offset))
    }
}
