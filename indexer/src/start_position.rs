//! Where a new group starts when the indexer runs in the same pipeline as the agent that feeds it.
//!
//! Logstash's `auto_offset_reset => "latest"` means "from when this consumer first joined". In one
//! process (`logpipe run` with `[agent]` and `[indexer]`) that would drop whatever the agent sends
//! before the group forms, seconds after start. There, "latest" means "from when this pipeline first
//! started": before the agent sends anything, every partition of the indexer's topics that the group has
//! no committed offset for gets the partition's current end offset committed. A topic that does not
//! exist yet is created first (with the broker's default partitions and replication), so its
//! partitions start at 0. Later starts find the committed offsets and change nothing; an indexer that
//! runs alone keeps Logstash's meaning.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::{AutoOffsetReset, InputConfig};
use crate::consumer::client_config;
use crate::error::{Error, Result};

/// How long each request to the cluster may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The partitions whose start was pinned: (topic, partition, offset committed).
pub type Pinned = Vec<(String, i32, i64)>;

/// Commits the end offsets of the partitions `input`'s group has no committed offset for, when
/// `auto_offset_reset = "latest"` (see the module documentation). Other policies change nothing.
pub async fn pin_latest_start(input: &InputConfig) -> Result<Pinned> {
    if input.auto_offset_reset != AutoOffsetReset::Latest {
        return Ok(Pinned::new());
    }
    create_missing_topics(input).await?;
    let input = input.clone();
    tokio::task::spawn_blocking(move || commit_end_offsets(&input))
        .await
        .map_err(|e| Error::Config(format!("pinning the group's start position failed: {e}")))?
}

async fn create_missing_topics(input: &InputConfig) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(input)?.create()?;
    let topics: Vec<NewTopic<'_>> =
        input.topics.iter().map(|name| NewTopic::new(name, -1, TopicReplication::Fixed(-1))).collect();
    let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT)).request_timeout(Some(REQUEST_TIMEOUT));
    for result in admin.create_topics(&topics, &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(Error::Config(format!(
                    "indexer.input.topics: cannot create topic {topic:?} on {} to pin the group's start \
                     position ({code}); create it, or set auto_offset_reset = \"earliest\"",
                    input.brokers.join(",")
                )))
            }
        }
    }
    Ok(())
}

fn commit_end_offsets(input: &InputConfig) -> Result<Pinned> {
    let consumer: BaseConsumer = client_config(input)?.create()?;
    let mut all = TopicPartitionList::new();
    for topic in &input.topics {
        let metadata = consumer.fetch_metadata(Some(topic), REQUEST_TIMEOUT)?;
        for t in metadata.topics() {
            for p in t.partitions() {
                all.add_partition(t.name(), p.id());
            }
        }
    }
    let committed = consumer.committed_offsets(all, REQUEST_TIMEOUT)?;
    let mut pin = TopicPartitionList::new();
    let mut pinned = Pinned::new();
    for e in committed.elements() {
        if matches!(e.offset(), Offset::Offset(_)) {
            continue;
        }
        let (_, high) = consumer.fetch_watermarks(e.topic(), e.partition(), REQUEST_TIMEOUT)?;
        pin.add_partition_offset(e.topic(), e.partition(), Offset::Offset(high))?;
        pinned.push((e.topic().to_owned(), e.partition(), high));
    }
    if !pinned.is_empty() {
        consumer.commit(&pin, CommitMode::Sync).map_err(|e| match e {
            KafkaError::ConsumerCommit(RDKafkaErrorCode::RebalanceInProgress | RDKafkaErrorCode::IllegalGeneration) => {
                Error::Config(format!(
                    "group {:?} is active elsewhere and has no committed offsets yet: cannot pin its start \
                     position; let that indexer commit first, or set auto_offset_reset = \"earliest\"",
                    input.group_id
                ))
            }
            e => e.into(),
        })?;
    }
    Ok(pinned)
}
