//! What every command shares: the `--bootstrap-server` flags, librdkafka client configuration, and
//! metadata look-ups with errors that name the broker and topic.
//!
//! librdkafka's metadata, watermark, group-list and commit calls block the calling thread, so commands run
//! them inside [`blocking`] rather than on the async runtime's worker threads.

use std::time::Duration;

use logpipe_producer::Security;
use rdkafka::client::{Client, ClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::metadata::Metadata;

use crate::error::{Error, Result};

/// Where the cluster is and how long to wait for it. Flattened into every command.
#[derive(Debug, Clone, clap::Args)]
pub struct Connection {
    /// Broker to bootstrap from; several may be given, comma-separated.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9092")]
    pub bootstrap_server: String,

    /// How long to wait for the cluster to answer one request, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    pub request_timeout_ms: u64,

    /// A librdkafka property, as with kcat -X (repeatable): `-X security.protocol=SASL_SSL`,
    /// `-X sasl.mechanism=SCRAM-SHA-512`, `-X ssl.ca.location=ca.pem`. Put passwords in a file (-F).
    #[arg(short = 'X', long = "property", value_name = "KEY=VALUE", value_parser = parse_property)]
    pub properties: Vec<(String, String)>,

    /// A file of librdkafka properties, one `key=value` a line (`#` comments), as with kcat -F:
    /// security.protocol, sasl.mechanism, sasl.username, sasl.password, ssl.ca.location, ….
    #[arg(short = 'F', long = "config-file", value_name = "FILE", value_parser = read_properties_file)]
    pub config_file: Option<PropertiesFile>,
}

/// The properties of a `-F` file, read when the command line is parsed.
#[derive(Clone)]
pub struct PropertiesFile(Vec<(String, String)>);

impl std::fmt::Debug for PropertiesFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only the keys: the file may hold a password.
        f.debug_list().entries(self.0.iter().map(|(k, _)| k)).finish()
    }
}

fn parse_property(text: &str) -> std::result::Result<(String, String), String> {
    let (key, value) = text.split_once('=').ok_or_else(|| format!("`{text}` is not key=value"))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(format!("`{text}` has no key"));
    }
    Ok((key.to_owned(), value.trim().to_owned()))
}

fn read_properties_file(path: &str) -> std::result::Result<PropertiesFile, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let mut properties = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        properties.push(parse_property(line).map_err(|e| format!("{path} line {}: {e}", n + 1))?);
    }
    Ok(PropertiesFile(properties))
}

impl Connection {
    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// Base librdkafka configuration shared by admin clients, producers and consumers.
    pub(crate) fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_server)
            .set("client.id", "logpipe-console")
            // Surface a dead broker within the request timeout instead of librdkafka's 60 s default.
            .set("socket.timeout.ms", self.request_timeout_ms.clamp(10, 300_000).to_string())
            // Looking at a topic must never create it. AdminClients are producers inside librdkafka, whose
            // metadata requests would otherwise ask brokers with auto_create_topics_enable to create it.
            .set("allow.auto.create.topics", "false");
        for (key, value) in self.all_properties() {
            config.set(key, value);
        }
        config
    }

    /// The `-F` file's properties, then the `-X` ones (a later one overrides an earlier one of its key).
    fn all_properties(&self) -> impl Iterator<Item = &(String, String)> {
        self.config_file.iter().flat_map(|f| f.0.iter()).chain(&self.properties)
    }

    /// TLS and SASL for the console's own connections (`crate::admin_calls`), from the same properties
    /// the librdkafka clients get (`security.protocol`, `sasl.mechanism` or `sasl.mechanisms`,
    /// `sasl.username`, `sasl.password`, `ssl.ca.location`, …; the others are librdkafka's alone).
    /// Reads the PEM files now.
    pub(crate) fn security(&self) -> Result<Security> {
        let properties: Vec<(&str, String)> = self.all_properties().map(|(k, v)| (k.as_str(), v.clone())).collect();
        Security::from_properties(&properties, "").map_err(Error::Security)
    }

    /// Wraps a failed request in an error that names this broker.
    pub(crate) fn kafka_error(&self, action: impl Into<String>) -> impl FnOnce(KafkaError) -> Error + '_ {
        let action = action.into();
        move |source| Error::Kafka { broker: self.bootstrap_server.clone(), action, error: Box::new(source) }
    }

    pub(crate) fn creation_error(&self) -> impl FnOnce(KafkaError) -> Error + '_ {
        move |source| Error::Client { broker: self.bootstrap_server.clone(), error: Box::new(source) }
    }

    /// Metadata for one topic; an unknown topic becomes [`Error::UnknownTopic`].
    pub(crate) fn topic_metadata<C: ClientContext>(&self, client: &Client<C>, topic: &str) -> Result<Metadata> {
        let metadata = client
            .fetch_metadata(Some(topic), self.timeout())
            .map_err(self.kafka_error(format!("fetching metadata for topic '{topic}'")))?;
        let Some(entry) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Err(self.unknown_topic(topic));
        };
        match entry.error().map(RDKafkaErrorCode::from) {
            None => {}
            Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
                return Err(self.unknown_topic(topic))
            }
            Some(code) => {
                return Err(Error::Kafka {
                    broker: self.bootstrap_server.clone(),
                    action: format!("fetching metadata for topic '{topic}'"),
                    error: Box::new(KafkaError::MetadataFetch(code)),
                })
            }
        }
        // A topic being created can briefly show up without partitions; that is "not ready", not "unknown".
        if entry.partitions().is_empty() {
            return Err(Error::Kafka {
                broker: self.bootstrap_server.clone(),
                action: format!("fetching metadata for topic '{topic}' (it has no partitions yet)"),
                error: Box::new(KafkaError::MetadataFetch(RDKafkaErrorCode::LeaderNotAvailable)),
            });
        }
        Ok(metadata)
    }

    /// The partition ids of a topic, sorted.
    pub(crate) fn partitions<C: ClientContext>(&self, client: &Client<C>, topic: &str) -> Result<Vec<i32>> {
        let metadata = self.topic_metadata(client, topic)?;
        let mut ids: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic)
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// Checks that `partition` exists in a topic with partitions `ids`.
    pub(crate) fn check_partition(&self, topic: &str, ids: &[i32], partition: i32) -> Result<()> {
        if ids.contains(&partition) {
            Ok(())
        } else {
            Err(Error::UnknownPartition {
                topic: topic.to_owned(),
                partition,
                count: ids.len(),
                broker: self.bootstrap_server.clone(),
            })
        }
    }

    pub(crate) fn unknown_topic(&self, topic: &str) -> Error {
        Error::UnknownTopic { topic: topic.to_owned(), broker: self.bootstrap_server.clone() }
    }
}

/// Runs blocking librdkafka work on tokio's blocking pool so the async runtime keeps running.
pub(crate) async fn blocking<T, F>(work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(work).await?
}
