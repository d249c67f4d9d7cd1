//! `logpipe topics create|list|describe|delete`, like `kafka-topics.sh`.
//!
//! Create and delete go through librdkafka's AdminClient (CreateTopics/DeleteTopics). Describe combines
//! three sources, because no single Kafka API has it all: Metadata for leaders, replicas and ISR,
//! ListOffsets (`fetch_watermarks`) for the log start offset and high watermark, and — through
//! [`crate::admin_calls`], as librdkafka does not expose them — Metadata v10+ for the topic id and
//! DescribeLogDirs for the size on disk. `alter --config` is IncrementalAlterConfigs, likewise.

use std::collections::HashMap;

use logpipe_producer::ConnectionError;
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::metadata::Metadata;

use crate::admin_calls::{AdminConnection, ConfigChange};
use crate::client::{blocking, Connection};
use crate::error::{Error, Result};
use crate::table::or_dash;
use crate::topic_arg::{OptionalTopicArg, TopicArg};

/// `logpipe topics ...`
///
/// Every subcommand takes the topic positionally or as `--topic NAME`, the form kafka-topics.sh uses.
#[derive(Debug, clap::Subcommand)]
pub enum TopicsCommand {
    /// Create a topic.
    Create {
        #[command(flatten)]
        topic: TopicArg,
        /// Number of partitions [default: the broker's num_partitions].
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
        partitions: Option<i32>,
        /// Copies of each partition; the embedded broker does not replicate, so it takes only 1.
        #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
        replication_factor: i32,
        /// A topic config override, e.g. `--config retention.ms=86400000`; repeatable.
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
        /// Succeed without a change if the topic exists already.
        #[arg(long)]
        if_not_exists: bool,
        #[command(flatten)]
        connection: Connection,
    },
    /// List topic names, one per line.
    List {
        #[command(flatten)]
        connection: Connection,
    },
    /// Show each topic's config overrides, and each partition's leader, replicas, ISR, offsets and size.
    Describe {
        #[command(flatten)]
        topic: OptionalTopicArg,
        /// Succeed without output if the topic does not exist.
        #[arg(long)]
        if_exists: bool,
        #[command(flatten)]
        connection: Connection,
    },
    /// Add partitions to a topic, or change its config overrides.
    #[command(group(clap::ArgGroup::new("change").required(true).multiple(true)
        .args(["partitions", "configs", "delete_configs"])))]
    Alter {
        #[command(flatten)]
        topic: TopicArg,
        /// The topic's new partition count; partitions can only be added, never removed.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
        partitions: Option<i32>,
        /// Set a topic config override, e.g. `--config retention.ms=86400000`; repeatable. Other overrides
        /// stay as they are (like `kafka-configs.sh --alter --add-config`).
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
        /// Remove a topic config override, back to the broker's default; repeatable.
        #[arg(long = "delete-config", value_name = "KEY")]
        delete_configs: Vec<String>,
        /// Succeed without a change if the topic does not exist.
        #[arg(long)]
        if_exists: bool,
        #[command(flatten)]
        connection: Connection,
    },
    /// Delete a topic and its data.
    Delete {
        #[command(flatten)]
        topic: TopicArg,
        /// Succeed without a change if the topic does not exist.
        #[arg(long)]
        if_exists: bool,
        #[command(flatten)]
        connection: Connection,
    },
}

pub(crate) async fn run(cmd: TopicsCommand) -> Result<()> {
    match cmd {
        TopicsCommand::Create { topic, partitions, replication_factor, configs, if_not_exists, connection } => {
            let name = topic.name().to_owned();
            match create(&connection, &name, partitions, replication_factor, &configs).await {
                // As kafka-topics.sh: nothing to do, nothing printed.
                Err(Error::TopicOperation { code: RDKafkaErrorCode::TopicAlreadyExists, .. }) if if_not_exists => {
                    Ok(())
                }
                other => other,
            }
        }
        TopicsCommand::List { connection } => list(connection).await,
        TopicsCommand::Describe { topic, if_exists, connection } => {
            match describe(connection, topic.name().map(str::to_owned)).await {
                Err(Error::UnknownTopic { .. }) if if_exists => Ok(()),
                other => other,
            }
        }
        TopicsCommand::Alter { topic, partitions, configs, delete_configs, if_exists, connection } => {
            let name = topic.name().to_owned();
            match alter(&connection, &name, partitions, &configs, &delete_configs).await {
                Err(Error::UnknownTopic { .. }) if if_exists => Ok(()),
                other => other,
            }
        }
        TopicsCommand::Delete { topic, if_exists, connection } => {
            let name = topic.name().to_owned();
            match delete(&connection, &name).await {
                Err(Error::TopicOperation { code: RDKafkaErrorCode::UnknownTopicOrPartition, .. }) if if_exists => {
                    Ok(())
                }
                other => other,
            }
        }
    }
}

/// Parses `KEY=VALUE` (the value may itself contain `=`).
pub(crate) fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE (e.g. retention.ms=86400000), got '{s}'")),
    }
}

fn admin_client(connection: &Connection) -> Result<AdminClient<DefaultClientContext>> {
    connection.client_config().create().map_err(connection.creation_error())
}

fn admin_options(connection: &Connection) -> AdminOptions {
    AdminOptions::new().request_timeout(Some(connection.timeout())).operation_timeout(Some(connection.timeout()))
}

async fn create(
    connection: &Connection,
    name: &str,
    partitions: Option<i32>,
    replication_factor: i32,
    configs: &[(String, String)],
) -> Result<()> {
    let admin = admin_client(connection)?;
    // -1 asks the broker for its default partition count (CreateTopics v4+, KIP-464), as kafka-topics.sh does.
    let mut topic = NewTopic::new(name, partitions.unwrap_or(-1), TopicReplication::Fixed(replication_factor));
    for (key, value) in configs {
        topic = topic.set(key, value);
    }
    let results = admin
        .create_topics([&topic], &admin_options(connection))
        .await
        .map_err(connection.kafka_error(format!("creating topic '{name}'")))?;
    match check_results("creating", connection, results) {
        Err(Error::TopicOperation { code: RDKafkaErrorCode::InvalidConfig, topic, broker, .. }) => {
            return Err(Error::InvalidArgument(format!(
                "creating topic '{topic}' on broker {broker} failed: the broker refused the --config \
                 {}",
                explain_invalid_config(configs)
            )));
        }
        other => other?,
    }
    println!("Created topic {name}.");
    Ok(())
}

/// Topic configs logpipe's own broker accepts (README, "The broker").
const LOGPIPE_TOPIC_CONFIGS: &[&str] =
    &["retention.ms", "retention.bytes", "segment.bytes", "segment.ms", "max.message.bytes", "cleanup.policy"];

/// Apache Kafka's topic-level configs (`TopicConfig`, Kafka 3.9/4.x), to tell a typo from a key a
/// particular broker does not support.
const KAFKA_TOPIC_CONFIGS: &[&str] = &[
    "cleanup.policy",
    "compression.type",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
    "delete.retention.ms",
    "file.delete.delay.ms",
    "flush.messages",
    "flush.ms",
    "follower.replication.throttled.replicas",
    "index.interval.bytes",
    "leader.replication.throttled.replicas",
    "local.retention.bytes",
    "local.retention.ms",
    "max.compaction.lag.ms",
    "max.message.bytes",
    "message.downconversion.enable",
    "message.format.version",
    "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.difference.max.ms",
    "message.timestamp.type",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "preallocate",
    "remote.log.copy.disable",
    "remote.log.delete.on.disable",
    "remote.storage.enable",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.index.bytes",
    "segment.jitter.ms",
    "segment.ms",
    "unclean.leader.election.enable",
];

/// The rest of an InvalidConfig message: which `--config` key is wrong and what the valid ones are.
fn explain_invalid_config(configs: &[(String, String)]) -> String {
    let supported = format!(
        "logpipe's broker accepts {} (cleanup.policy=delete only; see \"The broker\" in the README); a Kafka \
         cluster accepts Kafka's topic configs (`kafka-configs.sh --describe --all --topic T` lists them)",
        LOGPIPE_TOPIC_CONFIGS.join(", ")
    );
    let unknown: Vec<String> = configs
        .iter()
        .filter(|(key, _)| !KAFKA_TOPIC_CONFIGS.contains(&key.as_str()))
        .map(|(key, _)| match closest(key, KAFKA_TOPIC_CONFIGS) {
            Some(near) => format!("'{key}' (not a topic config; did you mean '{near}'?)"),
            None => format!("'{key}' (not a topic config)"),
        })
        .collect();
    if !unknown.is_empty() {
        return format!("key {}; {supported}", unknown.join(", "));
    }
    let sent: Vec<String> = configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if sent.is_empty() {
        return format!("defaults; {supported}");
    }
    format!("{} (a key this broker does not support, or a value out of range); {supported}", sent.join(" "))
}

/// The candidate within edit distance 2 of `word`, if any (for "did you mean").
fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for j in 0..b.len() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != b[j])).min(row[j] + 1).min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    }
    candidates.iter().map(|c| (distance(word, c), *c)).filter(|(d, _)| *d <= 2).min().map(|(_, c)| c)
}

/// `topics alter`: config changes first (IncrementalAlterConfigs), then new partitions (CreatePartitions).
async fn alter(
    connection: &Connection,
    name: &str,
    partitions: Option<i32>,
    configs: &[(String, String)],
    delete_configs: &[String],
) -> Result<()> {
    let (conn, topic) = (connection.clone(), name.to_owned());
    let (current, brokers) = blocking(move || {
        let admin = admin_client(&conn)?;
        let metadata = conn.topic_metadata(admin.inner(), &topic)?;
        let current = metadata.topics().iter().find(|t| t.name() == topic).map_or(0, |t| t.partitions().len());
        let brokers: Vec<String> = metadata.brokers().iter().map(|b| host_port(b.host(), b.port())).collect();
        Ok((current, brokers))
    })
    .await?;
    if let Some(wanted) = partitions {
        if usize::try_from(wanted).unwrap_or(0) <= current {
            return Err(Error::InvalidArgument(format!(
                "topic '{name}' on broker {} has {current} partition(s); pass --partitions with more than                  {current} (partitions can be added, never removed)",
                connection.bootstrap_server
            )));
        }
    }
    let changes: Vec<ConfigChange> = configs
        .iter()
        .map(|(k, v)| ConfigChange::Set(k.clone(), v.clone()))
        .chain(delete_configs.iter().map(|k| ConfigChange::Delete(k.clone())))
        .collect();
    if !changes.is_empty() {
        alter_configs(connection, &brokers, name, &changes, configs).await?;
    }
    if let Some(wanted) = partitions {
        let admin = admin_client(connection)?;
        let new = NewPartitions::new(name, usize::try_from(wanted).unwrap_or_default());
        let results = admin
            .create_partitions([&new], &admin_options(connection))
            .await
            .map_err(connection.kafka_error(format!("adding partitions to topic '{name}'")))?;
        check_results("adding partitions to", connection, results)?;
    }
    println!("Altered topic {name}.");
    Ok(())
}

/// Sends the config changes to the first broker of the cluster that answers (any broker takes topic config
/// changes; a Kafka cluster forwards them to its controller).
async fn alter_configs(
    connection: &Connection,
    brokers: &[String],
    topic: &str,
    changes: &[ConfigChange],
    sets: &[(String, String)],
) -> Result<()> {
    let security = connection.security()?;
    let action = format!("altering the configs of topic '{topic}'");
    let mut last_error = None;
    for address in brokers {
        let answer = async {
            let mut client = AdminConnection::open(address, &security, connection.timeout(), &action).await?;
            client.alter_topic_configs(topic, changes).await
        }
        .await;
        match answer {
            Ok(Ok(())) => return Ok(()),
            Ok(Err((code, message))) => {
                let refused = kafka_protocol::ResponseError::try_from_code(code);
                if matches!(refused, Some(kafka_protocol::ResponseError::InvalidConfig)) {
                    return Err(Error::InvalidArgument(format!(
                        "altering topic '{topic}' on broker {address} failed: the broker refused the change ({}); \
                         --config {}",
                        message.unwrap_or_default(),
                        explain_invalid_config(sets)
                    )));
                }
                let error = match (refused, message) {
                    (Some(e), Some(m)) => format!("{e}: {m}"),
                    (Some(e), None) => e.to_string(),
                    (None, m) => format!("error code {code} {}", m.unwrap_or_default()),
                };
                return Err(Error::ConfigRefused { topic: topic.to_owned(), broker: address.clone(), error });
            }
            // Settings or software that the next broker would fail on the same way (TLS, SASL, versions).
            Err(e) if matches!(&e, Error::Connection { error, .. } if !error.is_retriable()) => return Err(e),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| connection.unknown_topic(topic)))
}

async fn delete(connection: &Connection, name: &str) -> Result<()> {
    let admin = admin_client(connection)?;
    let results = admin
        .delete_topics(&[name], &admin_options(connection))
        .await
        .map_err(connection.kafka_error(format!("deleting topic '{name}'")))?;
    check_results("deleting", connection, results)?;
    println!("Deleted topic {name}.");
    Ok(())
}

fn check_results(
    operation: &'static str,
    connection: &Connection,
    results: Vec<rdkafka::admin::TopicResult>,
) -> Result<()> {
    for result in results {
        if let Err((topic, code)) = result {
            return Err(Error::TopicOperation { operation, topic, broker: connection.bootstrap_server.clone(), code });
        }
    }
    Ok(())
}

async fn list(connection: Connection) -> Result<()> {
    let names = blocking(move || {
        let admin = admin_client(&connection)?;
        let metadata = admin
            .inner()
            .fetch_metadata(None, connection.timeout())
            .map_err(connection.kafka_error("listing topics"))?;
        let mut names: Vec<String> = metadata.topics().iter().map(|t| t.name().to_owned()).collect();
        names.sort();
        Ok(names)
    })
    .await?;
    for name in names {
        println!("{name}");
    }
    Ok(())
}

/// One partition as `describe` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PartitionInfo {
    id: i32,
    leader: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    /// (log start offset, high watermark); `None` when ListOffsets failed.
    watermarks: Option<(i64, i64)>,
    size_on_disk: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct TopicInfo {
    name: String,
    /// Kafka's form of the topic id (base64url of its 16 bytes); `None` when the broker gave none.
    id: Option<String>,
    partitions: Vec<PartitionInfo>,
    /// Configs whose value is not the hard-coded default (overrides, and broker-wide settings), as
    /// kafka-topics.sh shows them; empty when DescribeConfigs failed.
    configs: Vec<(String, String)>,
}

async fn describe(connection: Connection, name: Option<String>) -> Result<()> {
    let conn = connection.clone();
    let (mut topics, brokers) = blocking(move || {
        let admin = admin_client(&conn)?;
        let client = admin.inner();
        let metadata = match &name {
            Some(name) => conn.topic_metadata(client, name)?,
            None => client.fetch_metadata(None, conn.timeout()).map_err(conn.kafka_error("listing topics"))?,
        };
        let mut topics = topic_infos(&metadata);
        for topic in &mut topics {
            for partition in &mut topic.partitions {
                partition.watermarks = client
                    .fetch_watermarks(&topic.name, partition.id, conn.timeout())
                    .inspect_err(|e| tracing::debug!(topic = %topic.name, partition = partition.id, "watermarks: {e}"))
                    .ok();
            }
        }
        let brokers: Vec<(i32, String)> =
            metadata.brokers().iter().map(|b| (b.id(), host_port(b.host(), b.port()))).collect();
        Ok((topics, brokers))
    })
    .await?;

    let configs = non_default_configs(&connection, &topics).await;
    for topic in &mut topics {
        topic.configs = configs.get(&topic.name).cloned().unwrap_or_default();
    }
    let (ids, sizes) = ids_and_sizes(&connection, &brokers, &topics).await;
    for topic in &mut topics {
        topic.id = ids.get(&topic.name).cloned();
        for partition in &mut topic.partitions {
            partition.size_on_disk = sizes.get(&(partition.leader, topic.name.clone(), partition.id)).copied();
        }
    }
    print!("{}", format_describe(&topics));
    Ok(())
}

/// DescribeConfigs for each topic: the entries that are not defaults, by topic. A failure only leaves the
/// `Configs:` field empty (and is logged at debug), as the rest of the description still holds.
async fn non_default_configs(connection: &Connection, topics: &[TopicInfo]) -> HashMap<String, Vec<(String, String)>> {
    let mut configs = HashMap::new();
    if topics.is_empty() {
        return configs;
    }
    let admin = match admin_client(connection) {
        Ok(admin) => admin,
        Err(e) => {
            tracing::debug!("configs unavailable: {e}");
            return configs;
        }
    };
    let resources: Vec<ResourceSpecifier<'_>> = topics.iter().map(|t| ResourceSpecifier::Topic(&t.name)).collect();
    match admin.describe_configs(&resources, &admin_options(connection)).await {
        Ok(results) => {
            for (topic, result) in topics.iter().zip(results) {
                match result {
                    // A sensitive value is withheld by the broker; kafka-topics.sh prints it as `null`.
                    Ok(resource) => {
                        let entries = resource
                            .entries
                            .into_iter()
                            .filter(|e| !e.is_default)
                            .map(|e| (e.name, e.value.unwrap_or_else(|| "null".to_owned())))
                            .collect();
                        configs.insert(topic.name.clone(), entries);
                    }
                    Err(code) => tracing::debug!(topic = %topic.name, "configs unavailable: {code}"),
                }
            }
        }
        Err(e) => tracing::debug!("configs unavailable: {e}"),
    }
    configs
}

fn topic_infos(metadata: &Metadata) -> Vec<TopicInfo> {
    let mut topics: Vec<TopicInfo> = metadata
        .topics()
        .iter()
        .map(|t| {
            let mut partitions: Vec<PartitionInfo> = t
                .partitions()
                .iter()
                .map(|p| PartitionInfo {
                    id: p.id(),
                    leader: p.leader(),
                    replicas: p.replicas().to_vec(),
                    isr: p.isr().to_vec(),
                    watermarks: None,
                    size_on_disk: None,
                })
                .collect();
            partitions.sort_by_key(|p| p.id);
            TopicInfo { name: t.name().to_owned(), id: None, partitions, configs: Vec::new() }
        })
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    topics
}

/// The topics' ids (from the first broker that gives them, in Kafka's notation) and every broker's replica
/// sizes, `(broker id, topic, partition) → bytes`, over one connection to each broker.
///
/// Failures only cost the SizeOnDisk column and the TopicId field (left out), never the whole describe:
/// older brokers may not support DescribeLogDirs v1+ or Metadata v10+, and these are the least important
/// fields. They are logged at debug; security settings the console's own connection cannot use, at warn.
async fn ids_and_sizes(
    connection: &Connection,
    brokers: &[(i32, String)],
    topics: &[TopicInfo],
) -> (HashMap<String, String>, HashMap<(i32, String, i32), i64>) {
    use base64::Engine as _;
    let (mut ids, mut sizes) = (HashMap::new(), HashMap::new());
    if topics.is_empty() {
        return (ids, sizes);
    }
    let security = match connection.security() {
        Ok(security) => security,
        Err(e) => {
            tracing::warn!("sizes on disk and topic ids left out: {e}");
            return (ids, sizes);
        }
    };
    let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
    let wanted: Vec<(String, Vec<i32>)> =
        topics.iter().map(|t| (t.name.clone(), t.partitions.iter().map(|p| p.id).collect())).collect();
    let mut ids_known = false;
    for (broker_id, address) in brokers {
        let action = "reading topic ids and sizes on disk";
        let mut client = match AdminConnection::open(address, &security, connection.timeout(), action).await {
            Ok(client) => client,
            Err(e) => {
                tracing::debug!(broker = %address, "topic ids and sizes on disk unavailable: {e}");
                continue;
            }
        };
        if !ids_known {
            match client.topic_ids(&names).await {
                Ok(found) => {
                    ids_known = !found.is_empty();
                    ids.extend(found.into_iter().map(|(name, id)| {
                        (name, base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.as_bytes()))
                    }));
                }
                // A version neither side speaks was never sent; after any other failure the connection may
                // be out of step.
                Err(Error::Connection { error: ConnectionError::Unsupported { .. }, .. }) => {}
                Err(e) => {
                    tracing::debug!(broker = %address, "topic ids and sizes on disk unavailable: {e}");
                    continue;
                }
            }
        }
        match client.describe_log_dirs(Some(&wanted)).await {
            Ok(replicas) => {
                for replica in replicas {
                    // A replica split over several log dirs (JBOD) is summed.
                    *sizes.entry((*broker_id, replica.topic, replica.partition)).or_insert(0) += replica.bytes;
                }
            }
            Err(e) => tracing::debug!(broker = %address, "size on disk unavailable: {e}"),
        }
    }
    (ids, sizes)
}

/// `host:port`, bracketing IPv6 literals.
fn host_port(host: &str, port: i32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn join_ids(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

/// kafka-topics.sh's layout: a summary line per topic (with its non-default `Configs:`), then one tab-separated `Key: value` line per
/// partition, extended with LogStartOffset, HighWatermark and SizeOnDisk (`-` when unknown).
fn format_describe(topics: &[TopicInfo]) -> String {
    let mut out = String::new();
    for topic in topics {
        let replication = topic.partitions.first().map_or(0, |p| p.replicas.len());
        let configs: Vec<String> = topic.configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let id = topic.id.as_ref().map(|id| format!("\tTopicId: {id}")).unwrap_or_default();
        out += &format!(
            "Topic: {}{id}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}\n",
            topic.name,
            topic.partitions.len(),
            replication,
            configs.join(",")
        );
        for p in &topic.partitions {
            let leader = if p.leader < 0 { "none".to_owned() } else { p.leader.to_string() };
            out += &format!(
                "\tTopic: {}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}\tLogStartOffset: {}\tHighWatermark: {}\tSizeOnDisk: {}\n",
                topic.name,
                p.id,
                leader,
                join_ids(&p.replicas),
                join_ids(&p.isr),
                or_dash(p.watermarks.map(|w| w.0)),
                or_dash(p.watermarks.map(|w| w.1)),
                or_dash(p.size_on_disk),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_parsing() {
        assert_eq!(parse_key_value("retention.ms=1000"), Ok(("retention.ms".into(), "1000".into())));
        assert_eq!(parse_key_value("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_key_value("cleanup.policy="), Ok(("cleanup.policy".into(), String::new())));
        assert!(parse_key_value("retention.ms").is_err());
        assert!(parse_key_value("=5").is_err());
    }

    #[test]
    fn describe_layout() {
        let topics = vec![TopicInfo {
            name: "nginx".into(),
            id: Some("AAAAAAAAAAAAAAAAAAAAAQ".into()),
            partitions: vec![
                PartitionInfo {
                    id: 0,
                    leader: 1,
                    replicas: vec![1],
                    isr: vec![1],
                    watermarks: Some((0, 42)),
                    size_on_disk: Some(4096),
                },
                PartitionInfo {
                    id: 1,
                    leader: -1,
                    replicas: vec![1, 2],
                    isr: vec![],
                    watermarks: None,
                    size_on_disk: None,
                },
            ],
            configs: vec![("retention.ms".into(), "3600000".into()), ("segment.bytes".into(), "1048576".into())],
        }];
        assert_eq!(
            format_describe(&topics),
            "Topic: nginx\tTopicId: AAAAAAAAAAAAAAAAAAAAAQ\tPartitionCount: 2\tReplicationFactor: 1\tConfigs: retention.ms=3600000,segment.bytes=1048576\n\
             \tTopic: nginx\tPartition: 0\tLeader: 1\tReplicas: 1\tIsr: 1\tLogStartOffset: 0\tHighWatermark: 42\tSizeOnDisk: 4096\n\
             \tTopic: nginx\tPartition: 1\tLeader: none\tReplicas: 1,2\tIsr: \tLogStartOffset: -\tHighWatermark: -\tSizeOnDisk: -\n"
        );
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        assert_eq!(host_port("127.0.0.1", 9092), "127.0.0.1:9092");
        assert_eq!(host_port("::1", 9092), "[::1]:9092");
    }
}
