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
//!
//! A `^regex` entry of `topics` names no topic to create (CreateTopics would refuse it as a name). Its
//! pin still matters, for the same reason: the topics it matches when the pipeline starts, dead-letter
//! topics left out as the consumer leaves them out ([`Subscription`]), are pinned like named ones. A
//! topic it matches only once created later cannot be pinned here; the group reads it from
//! `auto_offset_reset` when it finds it. So in a pipeline with an agent, the topics the agent writes to
//! that a regex matches are created first, as named ones are.

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
use crate::subscription::Subscription;

/// How long each request to the cluster may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The partitions whose start was pinned: (topic, partition, offset committed).
pub type Pinned = Vec<(String, i32, i64)>;

/// Commits the end offsets of the partitions of `subscription`'s topics that `input`'s group has no
/// committed offset for, when `auto_offset_reset = "latest"` (see the module documentation). Other
/// policies change nothing.
pub async fn pin_latest_start(input: &InputConfig, subscription: &Subscription, written: &[String]) -> Result<Pinned> {
    if input.auto_offset_reset != AutoOffsetReset::Latest {
        return Ok(Pinned::new());
    }
    // Literal names only: a topic name the agent builds per event (`%{[fields.app]}`) is not one.
    let matched = subscription.matched(written.iter().map(String::as_str).filter(|topic| !topic.contains("%{")));
    let mut to_create = subscription.names().to_vec();
    let unnamed: Vec<String> = matched.into_iter().filter(|topic| !to_create.contains(topic)).collect();
    to_create.extend(unnamed);
    create_missing_topics(input, &to_create).await?;
    let (input, subscription) = (input.clone(), subscription.clone());
    tokio::task::spawn_blocking(move || commit_end_offsets(&input, &subscription))
        .await
        .map_err(|e| Error::Config(format!("pinning the group's start position failed: {e}")))?
}

/// Creates the topics named in `names` that do not exist yet.
async fn create_missing_topics(input: &InputConfig, names: &[String]) -> Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = client_config(input)?.create()?;
    let topics: Vec<NewTopic<'_>> =
        names.iter().map(|name| NewTopic::new(name, -1, TopicReplication::Fixed(-1))).collect();
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

fn commit_end_offsets(input: &InputConfig, subscription: &Subscription) -> Result<Pinned> {
    let consumer: BaseConsumer = client_config(input)?.create()?;
    let mut topics: Vec<String> = subscription.names().to_vec();
    if subscription.has_patterns() {
        let metadata = consumer.fetch_metadata(None, REQUEST_TIMEOUT)?;
        let matched = subscription.matched(metadata.topics().iter().map(|t| t.name()));
        topics.extend(matched.into_iter().filter(|topic| !subscription.names().contains(topic)));
    }
    let mut all = TopicPartitionList::new();
    for topic in &topics {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use rdkafka::config::ClientConfig;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    use super::*;

    #[test]
    fn regex_topics_are_matched_not_created() {
        let cluster = MockCluster::new(1).unwrap();
        for topic in ["nginx-access", "nginx-access-dlq", "other"] {
            cluster.create_topic(topic, 1, 1).unwrap();
        }
        let producer: BaseProducer =
            ClientConfig::new().set("bootstrap.servers", cluster.bootstrap_servers()).create().unwrap();
        for topic in ["nginx-access", "nginx-access", "nginx-access-dlq"] {
            producer.send(BaseRecord::<(), _>::to(topic).payload("x")).unwrap();
        }
        producer.flush(Duration::from_secs(10)).unwrap();
        let input = InputConfig {
            brokers: vec![cluster.bootstrap_servers()],
            topics: vec!["^nginx-.*".into()],
            group_id: "pinned".into(),
            auto_offset_reset: AutoOffsetReset::Latest,
            ..InputConfig::default()
        };
        let subscription = Subscription::new(&input, Some("-dlq")).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let pinned = runtime.block_on(pin_latest_start(&input, &subscription, &[])).unwrap();
        assert_eq!(pinned, [("nginx-access".to_owned(), 0, 2)]);
        // No topic named after the pattern was made.
        let consumer: BaseConsumer = client_config(&input).unwrap().create().unwrap();
        let metadata = consumer.fetch_metadata(None, REQUEST_TIMEOUT).unwrap();
        let names: BTreeSet<&str> = metadata.topics().iter().map(|t| t.name()).collect();
        assert_eq!(names, BTreeSet::from(["nginx-access", "nginx-access-dlq", "other"]));
        // Pinned once: a second start finds the committed offset and changes nothing.
        assert_eq!(runtime.block_on(pin_latest_start(&input, &subscription, &[])).unwrap(), Pinned::new());
    }
}
