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

    /// A file of librdkafka properties, as with kcat -F, in Java's .properties format (a Kafka
    /// client.properties): `key=value` or `key: value` a line, `#` comments. security.protocol,
    /// sasl.mechanism, sasl.username, sasl.password, ssl.ca.location, ….
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
    // The text is not repeated: it may be a password.
    let (key, value) = text.split_once('=').ok_or("expected key=value")?;
    let key = key.trim();
    if key.is_empty() {
        return Err("the key before `=` is empty".into());
    }
    Ok((key.to_owned(), value.trim().to_owned()))
}

/// Reads a `-F` file as Java's `Properties.load` reads a Kafka `client.properties`: `key=value`,
/// `key: value` or `key value`; `#` and `!` comment lines; a line ending in `\` goes on on the next; `\`
/// escapes (`\=`, `\:`, `\\`, `\t`, `\uXXXX`). Unlike Java, whitespace at the end of a value is dropped, and a
/// key alone on its line is an error. Errors name the file, the line and at most the key, never a value:
/// the file holds passwords.
///
/// Not the `java-properties` crate: it follows Java in taking a line without a separator for a key with an
/// empty value, so a password pasted on a line of its own would become a property name, which librdkafka's
/// "no such configuration property" error then prints.
fn read_properties_file(path: &str) -> std::result::Result<PropertiesFile, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let mut properties = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((index, first)) = lines.next() {
        let mut line = first.trim_start().to_owned();
        if line.is_empty() || line.starts_with(['#', '!']) {
            continue;
        }
        while ends_in_continuation(&line) {
            line.pop();
            match lines.next() {
                Some((_, next)) => line.push_str(next.trim_start()),
                None => break,
            }
        }
        properties.push(split_property(line.trim_end()).map_err(|why| format!("{path} line {}: {why}", index + 1))?);
    }
    Ok(PropertiesFile(properties))
}

/// Whether a line ends in an odd number of backslashes: the last one joins the next line.
fn ends_in_continuation(line: &str) -> bool {
    line.bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 1
}

/// One logical line of a properties file: the key ends at the first unescaped `=`, `:` or whitespace; then
/// whitespace and at most one `=` or `:`; the rest is the value.
fn split_property(line: &str) -> std::result::Result<(String, String), String> {
    let mut escaped = false;
    let key_end = line
        .char_indices()
        .find(|&(_, c)| {
            let ends = !escaped && (c == '=' || c == ':' || c.is_whitespace());
            escaped = !escaped && c == '\\';
            ends
        })
        .map(|(i, _)| i)
        .ok_or("no `=` or `:` after the key (the line is not shown: it may hold a secret)")?;
    let key = unescape(&line[..key_end]).map_err(|why| format!("the key has {why}"))?;
    if key.is_empty() {
        return Err("the key before the `=` or `:` is empty".into());
    }
    let rest = line[key_end..].trim_start();
    let value = rest.strip_prefix(['=', ':']).map_or(rest, str::trim_start);
    let value = unescape(value).map_err(|why| format!("the value of `{key}` has {why}"))?;
    Ok((key, value))
}

/// The text with Java's properties escapes resolved; `\x` for any other `x` is `x`.
fn unescape(text: &str) -> std::result::Result<String, &'static str> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = u32::from_str_radix(&hex, 16).ok().filter(|_| hex.len() == 4).and_then(char::from_u32);
                out.push(code.ok_or("a \\u escape that is not four hex digits of a character")?);
            }
            Some(other) => out.push(other),
            None => {} // a backslash ending the file's last line joins nothing
        }
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `text` as a `-F` file named after `test`.
    fn read(test: &str, text: &str) -> std::result::Result<Vec<(String, String)>, String> {
        let path = std::env::temp_dir().join(format!("logpipe-console-{test}-{}.properties", std::process::id()));
        std::fs::write(&path, text).unwrap();
        let read = read_properties_file(path.to_str().unwrap());
        let _ = std::fs::remove_file(&path);
        read.map(|file| file.0)
    }

    #[test]
    fn a_java_client_properties_file_is_read() {
        let text = "# Kafka client.properties\r\n\
                    ! also a comment\n\
                    security.protocol=SASL_SSL\n\
                    sasl.mechanism : SCRAM-SHA-512\n\
                    sasl.username agent\n\
                    sasl.password: s3cret=:x \n\
                    \n\
                    ssl.ca.location = C:\\\\certs\\\\ca.pem\n\
                    client.id = logpipe-\\\n    console\n\
                    sasl.kerberos.service.name=\\u006bafka\n\
                    socket.keepalive.enable=\n";
        let read = read("java", text).unwrap();
        let expected = [
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", "agent"),
            ("sasl.password", "s3cret=:x"),
            ("ssl.ca.location", "C:\\certs\\ca.pem"),
            ("client.id", "logpipe-console"),
            ("sasl.kerberos.service.name", "kafka"),
            ("socket.keepalive.enable", ""),
        ];
        let read: Vec<(&str, &str)> = read.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(read, expected);
    }

    #[test]
    fn a_bad_line_names_the_file_line_and_key_but_never_the_value() {
        for (text, line, key) in [
            ("security.protocol=SASL_SSL\ns3cret-password\n", "line 2", None),
            ("=s3cret-password\n", "line 1", None),
            ("# x\nsasl.password=s3cret-password\\u12\n", "line 2", Some("sasl.password")),
        ] {
            let err = read("bad", text).unwrap_err();
            assert!(err.contains("logpipe-console-bad-") && err.contains(line), "{err}");
            assert!(key.is_none_or(|key| err.contains(key)), "{err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
        let err = parse_property("sasl.password:s3cret").unwrap_err();
        assert!(!err.contains("s3cret"), "{err}");
    }
}
