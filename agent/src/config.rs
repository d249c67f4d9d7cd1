//! The `[agent]` section of a pipeline file: `[agent]`, `[agent.output]` and `[[agent.inputs]]`.
//!
//! Names follow Filebeat where Filebeat has one (`paths`, `exclude_files`, `close_inactive`,
//! `scan_frequency`, `clean_removed`, `multiline.*`, `include_lines`, `fields_under_root`) and librdkafka's
//! otherwise (`linger_ms`, `batch_bytes`, `compression`). Durations are strings with a unit: `"500ms"`,
//! `"10s"`, `"5m"`, `"24h"` (a bare number means seconds, as in Filebeat). Unknown keys are errors.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use logpipe_config::{duration, Validate};
pub use logpipe_config::{Acks, Compression};
use logpipe_config::{KafkaSecurity, SaslTable, SecurityTable, SslTable};
use regex::Regex;
use serde::Deserialize;

use crate::error::{Error, Result};

/// Everything the agent needs: where the registry lives, where events go, and what to read.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Registry file (identity → acknowledged offset), written atomically with mode 0600.
    /// Default `data/agent/registry.json`.
    pub registry: PathBuf,
    /// Forget registry entries of files not seen for this long. Default `"24h"`.
    #[serde(deserialize_with = "duration")]
    pub clean_removed: Duration,
    /// How often the registry is written while something changed. Default `"1s"`.
    #[serde(deserialize_with = "duration")]
    pub registry_flush: Duration,
    /// Bytes of encoded events handed to the output and not yet acknowledged. When reached, reading
    /// pauses until acknowledgements arrive; nothing is dropped, the backlog waits in the file. Default
    /// 8388608 (8 MiB) with the agent's own producer: eight batches of the default `batch_bytes`, enough
    /// for five in flight while the next ones fill (2 MiB shipped a 512 MiB file a fifth slower). With
    /// `client = "librdkafka"`, 2097152 (2 MiB): librdkafka 2.12's idempotent producer has one request
    /// in flight per partition and, while a full batch waits behind it, its broker thread polls without
    /// sleeping; a deeper queue only lengthens that wait (docs/PERFORMANCE.md, "The agent"). Peak RSS
    /// grows with this bound: about 20 MiB plus twice the bound (librdkafka: 25 MiB plus 1.6 times).
    pub queue_max_bytes: Option<usize>,
    /// On shutdown, how long to wait for outstanding acknowledgements before writing the registry.
    /// Unacknowledged events are sent again on the next start. Default `"10s"`.
    #[serde(deserialize_with = "duration")]
    pub shutdown_timeout: Duration,
    /// `host.name` in every event. Default: this machine's host name.
    pub host_name: Option<String>,
    /// How often a one-line summary is logged. Default `"30s"`.
    #[serde(deserialize_with = "duration")]
    pub summary_interval: Duration,
    /// Serve Prometheus metrics at `http://ADDRESS/metrics`, e.g. `"127.0.0.1:9601"`. Default none (off).
    pub metrics_address: Option<String>,
    /// Use file-system events (inotify) to read appended lines and find new files sooner. Polling
    /// (`scan_frequency`, and reads at most 50 ms apart) runs either way; events only cut latency.
    /// Default true.
    pub fs_events: bool,
    /// Where events go. See [`OutputConfig`].
    pub output: OutputConfig,
    /// What to read. Default: none (validation then fails: an agent with no input does nothing).
    pub inputs: Vec<InputConfig>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            registry: PathBuf::from("data/agent/registry.json"),
            clean_removed: Duration::from_secs(24 * 3600),
            registry_flush: Duration::from_secs(1),
            queue_max_bytes: None,
            shutdown_timeout: Duration::from_secs(10),
            host_name: None,
            summary_interval: Duration::from_secs(30),
            metrics_address: None,
            fs_events: true,
            output: OutputConfig::default(),
            inputs: Vec::new(),
        }
    }
}

impl AgentConfig {
    /// `queue_max_bytes`, or its default for the output's client.
    pub fn queue_max_bytes(&self) -> usize {
        self.queue_max_bytes.unwrap_or(match self.output.client {
            KafkaClient::Logpipe => 8 << 20,
            KafkaClient::Librdkafka => 2 << 20,
        })
    }
}

/// `[agent.output]`: the Kafka cluster (or embedded broker) events are produced to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// Bootstrap brokers, `host:port`. Default `["127.0.0.1:9092"]`.
    pub brokers: Vec<String>,
    /// Topic for inputs that set none. Default `"logs"`.
    pub topic: String,
    /// `round_robin` (no record key; batches go to one partition at a time, moving on as each fills) or
    /// `hash` (key from the event field named by `key`). Default `round_robin`.
    pub partitioner: Partitioner,
    /// Event field whose value is the record key with `partitioner = "hash"`, e.g. `host.name`,
    /// `log.file.path`, `fields.service`. Default `host.name`.
    pub key: String,
    /// `all` (= `-1`), `1` or `0`. Default `all`. Idempotence is enabled with `all` (it requires it).
    pub acks: Acks,
    /// `lz4`, `zstd`, `gzip`, `snappy` or `none`. Default `lz4`.
    pub compression: Compression,
    /// `linger.ms`: how long to wait to fill a batch. Default 5.
    pub linger_ms: u64,
    /// `batch.size`: bytes per partition batch. Default 1000000.
    pub batch_bytes: usize,
    /// The cluster's `message.max.bytes`. A larger event has its message cut to fit and is tagged
    /// `message_truncated`. Default 1000000 (Kafka's default, minus nothing: the cut leaves headroom).
    pub max_message_bytes: usize,
    /// The Kafka client: `logpipe` (logpipe's own producer: idempotent, lz4, TLS and SASL; the default)
    /// or `librdkafka` (for properties only librdkafka has, set in `librdkafka`).
    pub client: KafkaClient,
    /// `client.id` on the wire. Default `logpipe-agent`.
    pub client_id: String,
    /// Extra librdkafka properties with `client = "librdkafka"`, e.g.
    /// `{ "socket.keepalive.enable" = "true" }`. Default empty.
    pub librdkafka: BTreeMap<String, String>,
    /// `security.protocol`: `PLAINTEXT` (default), `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.
    pub security: Option<SecurityTable>,
    /// `sasl.mechanism`, `sasl.username`, `sasl.password` / `sasl.password_file`.
    pub sasl: Option<SaslTable>,
    /// `ssl.ca.location`, `ssl.certificate.location`, `ssl.key.location`.
    pub ssl: Option<SslTable>,
}

impl OutputConfig {
    /// The librdkafka properties of `security`, `sasl` and `ssl` (reads `sasl.password_file`).
    pub fn security_properties(&self) -> Result<Vec<(&'static str, String)>> {
        KafkaSecurity { security: self.security.as_ref(), sasl: self.sasl.as_ref(), ssl: self.ssl.as_ref() }
            .librdkafka("agent.output")
            .map_err(Error::Config)
    }
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            brokers: vec!["127.0.0.1:9092".into()],
            topic: "logs".into(),
            partitioner: Partitioner::RoundRobin,
            key: "host.name".into(),
            acks: Acks::All,
            compression: Compression::Lz4,
            linger_ms: 5,
            batch_bytes: 1_000_000,
            max_message_bytes: 1_000_000,
            client: KafkaClient::Logpipe,
            client_id: "logpipe-agent".into(),
            librdkafka: BTreeMap::new(),
            security: None,
            sasl: None,
            ssl: None,
        }
    }
}

/// `[agent.output] client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KafkaClient {
    Logpipe,
    Librdkafka,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Partitioner {
    RoundRobin,
    Hash,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputType {
    File,
    Exec,
    Stdin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartPosition {
    Beginning,
    End,
}

/// One `[[agent.inputs]]` entry. `type` picks the kind; keys of other kinds are rejected by `validate`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputConfig {
    /// `file`, `exec` or `stdin`. Default `file`.
    #[serde(rename = "type")]
    pub kind: InputType,
    /// file: glob patterns; `**` matches any number of directories. Default empty.
    pub paths: Vec<String>,
    /// file: regexes on the full path; a matching file is never opened. Default empty.
    pub exclude_files: Vec<String>,
    /// exec: a shell command (`sh -c`) whose stdout lines are events, e.g. `tail -F /var/log/app.log`.
    /// Restarted with capped backoff when it exits. Default none.
    pub command: Option<String>,
    /// Tags added to every event of this input. Default empty.
    pub tags: Vec<String>,
    /// Extra fields, under `fields` (or at the top level with `fields_under_root`). Default empty.
    pub fields: BTreeMap<String, serde_json::Value>,
    /// Put `fields` at the top level of the event instead of under `fields`. Default false.
    pub fields_under_root: bool,
    /// Topic for this input's events. Default: `output.topic`.
    pub topic: Option<String>,
    /// file: where to start in a file the registry has never seen, when it is found by the first scan.
    /// Files that appear later are always read from the beginning. Default `beginning`.
    pub start_position: StartPosition,
    /// Only events matching one of these regexes are shipped (all when empty). Default empty.
    pub include_lines: Vec<String>,
    /// Events matching one of these regexes are not shipped. Applied after `include_lines`. Default empty.
    pub exclude_lines: Vec<String>,
    /// Join lines into events (Filebeat semantics). Default none.
    pub multiline: Option<MultilineConfig>,
    /// A longer line is cut to this many bytes and tagged `truncated`. Default 1048576 (1 MiB).
    pub max_line_bytes: usize,
    /// file: how often `paths` are scanned for new, rotated and removed files. Default `"10s"`.
    #[serde(deserialize_with = "duration")]
    pub scan_frequency: Duration,
    /// file: close a file after no new data for this long (a renamed or idle file). It is reopened by a
    /// later scan if it grows. A final line without a newline is shipped at close. Default `"5m"`.
    #[serde(deserialize_with = "duration")]
    pub close_inactive: Duration,
    /// `event.timezone` in every event of this input: the zone of the local times in its lines, which
    /// the indexer reads zone-less times (nginx error logs) in. An offset (`"+08:00"`) or an IANA name
    /// (`"Asia/Shanghai"`). Default: this host's UTC offset when the agent starts, as Filebeat's
    /// `add_locale` records it.
    pub timezone: Option<String>,
}

impl Default for InputConfig {
    fn default() -> Self {
        Self {
            kind: InputType::File,
            paths: Vec::new(),
            exclude_files: Vec::new(),
            command: None,
            tags: Vec::new(),
            fields: BTreeMap::new(),
            fields_under_root: false,
            topic: None,
            start_position: StartPosition::Beginning,
            include_lines: Vec::new(),
            exclude_lines: Vec::new(),
            multiline: None,
            max_line_bytes: 1 << 20,
            scan_frequency: Duration::from_secs(10),
            close_inactive: Duration::from_secs(300),
            timezone: None,
        }
    }
}

/// `multiline = { pattern = '^\d{4}/', negate = true, match = "after" }`, as in Filebeat.
///
/// A line is a *continuation* when it matches `pattern` (with `negate = false`) or does not match it
/// (with `negate = true`). With `match = "after"` continuations are appended to the line before them
/// (nginx error logs, stack traces); with `match = "before"` a continuation line and the lines before it
/// are joined to the next non-continuation line.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MultilineConfig {
    /// Regex. Required.
    pub pattern: String,
    /// Invert the match. Default false.
    pub negate: bool,
    /// `after` or `before`. Default `after`.
    #[serde(rename = "match")]
    pub match_: MultilineMatch,
    /// An event holding this many lines is sent, and the next line starts a new event (Filebeat drops
    /// the extra lines; logpipe never drops a line). Default 500.
    pub max_lines: usize,
    /// A pending event is sent after no new line for this long. Default `"5s"`.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
}

impl Default for MultilineConfig {
    fn default() -> Self {
        Self {
            pattern: String::new(),
            negate: false,
            match_: MultilineMatch::After,
            max_lines: 500,
            timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MultilineMatch {
    After,
    Before,
}

/// Envelope keys that `fields_under_root` may not overwrite. `fields` is not one: under the root the
/// envelope has no `fields` of its own, and Filebeat's `add_fields` writes there whatever the input says.
pub(crate) const RESERVED_ROOT_KEYS: &[&str] =
    &["@timestamp", "message", "tags", "log", "process", "host", "input", "agent", "event"];

impl Validate for AgentConfig {
    type Error = Error;

    /// Checks everything serde cannot, once, when [`Valid::new`](logpipe_config::Valid::new) makes the
    /// config that [`run`](crate::run) takes: regexes compile, required keys per input type, value
    /// ranges. Errors name the key, e.g. `agent.inputs[1].exclude_files[0]`.
    fn validate(&self) -> Result<()> {
        let bad = |key: String, why: String| Err(Error::Config(format!("{key}: {why}")));
        if self.inputs.is_empty() {
            return bad("agent.inputs".into(), "no inputs configured; add an [[agent.inputs]] section".into());
        }
        if self.registry.as_os_str().is_empty() {
            return bad("agent.registry".into(), "must be a file path".into());
        }
        if self.queue_max_bytes.is_some_and(|bytes| bytes < 1024) {
            return bad("agent.queue_max_bytes".into(), "must be at least 1024".into());
        }
        if self.registry_flush.is_zero() {
            return bad("agent.registry_flush".into(), "must be greater than 0".into());
        }
        if let Some(addr) = &self.metrics_address {
            if addr.parse::<std::net::SocketAddr>().is_err() {
                return bad(
                    "agent.metrics_address".into(),
                    format!("{addr:?} is not an ip:port such as \"127.0.0.1:9601\""),
                );
            }
        }
        let out = &self.output;
        if out.brokers.is_empty() || out.brokers.iter().any(|b| b.trim().is_empty()) {
            return bad("agent.output.brokers".into(), "needs at least one host:port".into());
        }
        if out.topic.is_empty() {
            return bad("agent.output.topic".into(), "must not be empty".into());
        }
        out.security_properties()?;
        if out.client == KafkaClient::Logpipe && !out.librdkafka.is_empty() {
            let keys: Vec<&str> = out.librdkafka.keys().map(String::as_str).collect();
            return bad(
                "agent.output.librdkafka".into(),
                format!(
                    "{} apply to librdkafka only, and the output's client is logpipe's own producer; set \
                     client = \"librdkafka\" in [agent.output] to use librdkafka with them, or remove them",
                    keys.join(", ")
                ),
            );
        }
        if out.partitioner == Partitioner::Hash && crate::envelope::KeyField::parse(&out.key).is_none() {
            return bad(
                "agent.output.key".into(),
                format!(
                    "{:?} is not an event field (host.name, log.file.path, input.type, event.id, fields.NAME)",
                    out.key
                ),
            );
        }
        if out.max_message_bytes < 4096 {
            return bad("agent.output.max_message_bytes".into(), "must be at least 4096".into());
        }
        for (i, input) in self.inputs.iter().enumerate() {
            let key = |k: &str| format!("agent.inputs[{i}].{k}");
            if let Some(zone) = &input.timezone {
                if !crate::envelope::valid_timezone(zone) {
                    return bad(
                        key("timezone"),
                        format!(
                            "{zone:?} is not an offset such as \"+08:00\" or an IANA zone such as \"Asia/Shanghai\""
                        ),
                    );
                }
            }
            match input.kind {
                InputType::File => {
                    if input.paths.is_empty() {
                        return bad(key("paths"), "a file input needs at least one glob".into());
                    }
                    for (j, p) in input.paths.iter().enumerate() {
                        if let Err(e) = glob::Pattern::new(p) {
                            return bad(key(&format!("paths[{j}]")), format!("bad glob {p:?}: {e}"));
                        }
                    }
                    if input.command.is_some() {
                        return bad(key("command"), "only for type = \"exec\"".into());
                    }
                }
                InputType::Exec => {
                    if input.command.as_deref().is_none_or(|c| c.trim().is_empty()) {
                        return bad(key("command"), "an exec input needs a command".into());
                    }
                    if !input.paths.is_empty() {
                        return bad(key("paths"), "only for type = \"file\"".into());
                    }
                }
                InputType::Stdin => {
                    if !input.paths.is_empty() || input.command.is_some() {
                        return bad(key("type"), "a stdin input takes neither paths nor command".into());
                    }
                }
            }
            for (name, list) in [
                ("exclude_files", &input.exclude_files),
                ("include_lines", &input.include_lines),
                ("exclude_lines", &input.exclude_lines),
            ] {
                for (j, re) in list.iter().enumerate() {
                    if let Err(e) = Regex::new(re) {
                        return bad(key(&format!("{name}[{j}]")), format!("bad regex: {e}"));
                    }
                }
            }
            if let Some(ml) = &input.multiline {
                if ml.pattern.is_empty() {
                    return bad(key("multiline.pattern"), "required".into());
                }
                if let Err(e) = Regex::new(&ml.pattern) {
                    return bad(key("multiline.pattern"), format!("bad regex: {e}"));
                }
                if ml.max_lines == 0 {
                    return bad(key("multiline.max_lines"), "must be at least 1".into());
                }
            }
            if input.max_line_bytes < 16 {
                return bad(key("max_line_bytes"), "must be at least 16".into());
            }
            if input.scan_frequency.is_zero() {
                return bad(key("scan_frequency"), "must be greater than 0".into());
            }
            if input.topic.as_deref() == Some("") {
                return bad(key("topic"), "must not be empty".into());
            }
            if input.fields_under_root {
                if let Some(k) = input.fields.keys().find(|k| RESERVED_ROOT_KEYS.contains(&k.as_str())) {
                    return bad(
                        key(&format!("fields.{k}")),
                        "clashes with an envelope field under fields_under_root".into(),
                    );
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::{Format, Toml};

    #[allow(clippy::result_large_err)]
    fn load(toml: &str) -> Result<AgentConfig, figment::Error> {
        figment::Figment::from(Toml::string(toml)).extract_inner("agent")
    }

    #[test]
    fn design_example_loads_with_defaults() {
        let cfg = load(
            r#"
            [agent]
            registry = "data/agent/registry.json"
            [agent.output]
            brokers = ["127.0.0.1:9092"]
            topic = "nginx"
            acks = "all"
            compression = "lz4"
            [[agent.inputs]]
            type = "file"
            paths = ["/var/log/nginx/access.log*"]
            exclude_files = ['\.gz$']
            tags = ["access"]
            [[agent.inputs]]
            type = "file"
            paths = ["/var/log/nginx/error.log*"]
            exclude_files = ['\.gz$']
            tags = ["error"]
            multiline = { pattern = '^\d{4}/\d{2}/\d{2} ', negate = true, match = "after" }
            "#,
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.inputs.len(), 2);
        assert_eq!(cfg.inputs[0].close_inactive, Duration::from_secs(300));
        assert_eq!(cfg.inputs[0].max_line_bytes, 1 << 20);
        let ml = cfg.inputs[1].multiline.as_ref().unwrap();
        assert!(ml.negate);
        assert_eq!(ml.max_lines, 500);
        assert_eq!(ml.timeout, Duration::from_secs(5));
        assert_eq!(cfg.clean_removed, Duration::from_secs(86400));
        assert_eq!(cfg.output.compression, Compression::Lz4);
        assert!(cfg.fs_events);
    }

    #[test]
    fn unknown_key_is_named() {
        let err = load("[agent]\nregistyr = \"x\"\n").unwrap_err().to_string();
        assert!(err.contains("registyr"), "{err}");
        let err = load("[agent.output]\nlinger = 5\n").unwrap_err().to_string();
        assert!(err.contains("linger"), "{err}");
        let err = load("[[agent.inputs]]\npath = [\"x\"]\n").unwrap_err().to_string();
        assert!(err.contains("path"), "{err}");
    }

    #[test]
    fn validate_names_the_bad_key() {
        let cfg = load("[[agent.inputs]]\npaths = [\"/x\"]\nexclude_files = ['(']\n").unwrap();
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("agent.inputs[0].exclude_files[0]"), "{err}");
        let cfg = load("[[agent.inputs]]\ntype = \"exec\"\n").unwrap();
        assert!(cfg.validate().unwrap_err().to_string().contains("agent.inputs[0].command"));
        let cfg =
            load("[[agent.inputs]]\npaths = [\"/x\"]\nfields_under_root = true\nfields = { message = 1 }\n").unwrap();
        assert!(cfg.validate().unwrap_err().to_string().contains("fields.message"));
        let cfg =
            load("[[agent.inputs]]\npaths = [\"/x\"]\nfields_under_root = true\nfields = { fields = { a = 1 } }\n")
                .unwrap();
        cfg.validate().expect("under the root, `fields` is the input's own");
        let err = load("[agent.output]\nacks = \"2\"\n[[agent.inputs]]\npaths = [\"/x\"]\n").unwrap_err();
        assert!(err.to_string().contains("not one of all, -1, 1, 0"), "{err}");
        assert!(err.path.iter().any(|k| k == "acks"), "{err}");
        assert!(load("[agent]\nclean_removed = \"5 parsecs\"\n").unwrap_err().to_string().contains("invalid duration"));
        let cfg = load("[agent]\nmetrics_address = \"localhost\"\n[[agent.inputs]]\ntype = \"stdin\"\n").unwrap();
        assert!(cfg.validate().unwrap_err().to_string().contains("agent.metrics_address"));
        let cfg = load("[agent]\nmetrics_address = \"127.0.0.1:9601\"\n[[agent.inputs]]\ntype = \"exec\"\ncommand = \"tail -F /x\"\n").unwrap();
        cfg.validate().unwrap();
    }
}
