//! `logpipe topics create|list|describe|delete`, like `kafka-topics.sh`.
//!
//! Create and delete go through librdkafka's AdminClient (CreateTopics/DeleteTopics). Describe combines
//! three sources, because no single Kafka API has it all: Metadata for leaders, replicas and ISR,
//! ListOffsets (`fetch_watermarks`) for the log start offset and high watermark, and DescribeLogDirs —
//! which librdkafka does not expose — through [`crate::raw_client`] for the size on disk.

use std::collections::HashMap;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::metadata::Metadata;

use crate::client::{blocking, Connection};
use crate::error::{Error, Result};
use crate::raw_client::RawClient;
use crate::table::or_dash;

/// `logpipe topics ...`
#[derive(Debug, clap::Subcommand)]
pub enum TopicsCommand {
    /// Create a topic.
    Create {
        /// Topic name.
        name: String,
        /// Number of partitions [default: the broker's num_partitions].
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
        partitions: Option<i32>,
        /// Copies of each partition; the embedded broker does not replicate, so it takes only 1.
        #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
        replication_factor: i32,
        /// A topic config override, e.g. `--config retention.ms=86400000`; repeatable.
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
        #[command(flatten)]
        connection: Connection,
    },
    /// List topic names, one per line.
    List {
        #[command(flatten)]
        connection: Connection,
    },
    /// Show each partition's leader, replicas, ISR, offsets and size on disk.
    Describe {
        /// Topic to describe [default: all topics].
        name: Option<String>,
        #[command(flatten)]
        connection: Connection,
    },
    /// Delete a topic and its data.
    Delete {
        /// Topic name.
        name: String,
        #[command(flatten)]
        connection: Connection,
    },
}

pub(crate) async fn run(cmd: TopicsCommand) -> Result<()> {
    match cmd {
        TopicsCommand::Create { name, partitions, replication_factor, configs, connection } => {
            create(&connection, &name, partitions, replication_factor, &configs).await
        }
        TopicsCommand::List { connection } => list(connection).await,
        TopicsCommand::Describe { name, connection } => describe(connection, name).await,
        TopicsCommand::Delete { name, connection } => delete(&connection, &name).await,
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
    check_results("creating", connection, results)?;
    println!("Created topic {name}.");
    Ok(())
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
    partitions: Vec<PartitionInfo>,
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

    let sizes = replica_sizes(&connection, &brokers, &topics).await;
    for topic in &mut topics {
        for partition in &mut topic.partitions {
            partition.size_on_disk = sizes.get(&(partition.leader, topic.name.clone(), partition.id)).copied();
        }
    }
    print!("{}", format_describe(&topics));
    Ok(())
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
            TopicInfo { name: t.name().to_owned(), partitions }
        })
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    topics
}

/// Asks every broker for its replicas' sizes: `(broker id, topic, partition) → bytes`.
///
/// Failures only cost the SizeOnDisk column (printed as `-`), never the whole describe: older brokers may
/// not support DescribeLogDirs v1+, and the size is the least important column. The raw client speaks
/// only PLAINTEXT, so over TLS or SASL the column stays `-`.
async fn replica_sizes(
    connection: &Connection,
    brokers: &[(i32, String)],
    topics: &[TopicInfo],
) -> HashMap<(i32, String, i32), i64> {
    let wanted: Vec<(String, Vec<i32>)> =
        topics.iter().map(|t| (t.name.clone(), t.partitions.iter().map(|p| p.id).collect())).collect();
    let mut sizes = HashMap::new();
    if wanted.is_empty() || !connection.is_plaintext() {
        return sizes;
    }
    for (broker_id, address) in brokers {
        let result = async {
            let mut client = RawClient::connect(address, connection.timeout()).await?;
            client.describe_log_dirs(Some(&wanted)).await
        }
        .await;
        match result {
            Ok(replicas) => {
                for replica in replicas {
                    // A replica split over several log dirs (JBOD) is summed.
                    *sizes.entry((*broker_id, replica.topic, replica.partition)).or_insert(0) += replica.bytes;
                }
            }
            Err(e) => tracing::debug!(broker = %address, "size on disk unavailable: {e}"),
        }
    }
    sizes
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

/// kafka-topics.sh's layout: a summary line per topic, then one tab-separated `Key: value` line per
/// partition, extended with LogStartOffset, HighWatermark and SizeOnDisk (`-` when unknown).
fn format_describe(topics: &[TopicInfo]) -> String {
    let mut out = String::new();
    for topic in topics {
        let replication = topic.partitions.first().map_or(0, |p| p.replicas.len());
        out += &format!(
            "Topic: {}\tPartitionCount: {}\tReplicationFactor: {}\n",
            topic.name,
            topic.partitions.len(),
            replication
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
        }];
        assert_eq!(
            format_describe(&topics),
            "Topic: nginx\tPartitionCount: 2\tReplicationFactor: 1\n\
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
