//! Logstash inputs: `kafka` → `[indexer.input]`; `file` and `stdin` → agent inputs; `beats` → the
//! agent's topic when the Filebeat config is imported too.

use super::ast::*;
use super::plugins;
use super::translate::{input_fields, Translator};
use crate::draft::{inline, strings, Table, Value as Toml};
use crate::glob_regex::glob_to_regex;

const COMMON: &[&str] = &["id", "enable_metric", "tags", "type", "add_field", "ecs_compatibility"];

pub(crate) fn input(t: &mut Translator, p: &Plugin) {
    match p.name.as_str() {
        "kafka" => kafka(t, p),
        "file" => file(t, p),
        "stdin" => stdin(t, p),
        "beats" => {
            let origin = t.origin(p.pos);
            t.beats = Some(origin);
            input_fields(t, p);
        }
        name if plugins::INPUTS.contains(&name) => t.left_out(
            p.pos,
            format!("input `{name}`"),
            "no equivalent in logpipe (inputs: kafka, file, stdin, and beats together with the filebeat.yml)",
        ),
        name => t.left_out(
            p.pos,
            format!("input `{name}`"),
            "unknown input plugin: not one Logstash bundles; expected kafka, beats, file or stdin",
        ),
    }
}

/// Logstash's librdkafka-equivalent consumer settings: `name => value` to a librdkafka property.
const KAFKA_PROPERTIES: &[(&str, &str)] = &[
    ("session_timeout_ms", "session.timeout.ms"),
    ("heartbeat_interval_ms", "heartbeat.interval.ms"),
    ("max_poll_interval_ms", "max.poll.interval.ms"),
    ("fetch_min_bytes", "fetch.min.bytes"),
    ("fetch_max_bytes", "fetch.max.bytes"),
    ("fetch_max_wait_ms", "fetch.wait.max.ms"),
    ("max_partition_fetch_bytes", "max.partition.fetch.bytes"),
    ("isolation_level", "isolation.level"),
    ("client_rack", "client.rack"),
    ("reconnect_backoff_ms", "reconnect.backoff.ms"),
    ("retry_backoff_ms", "retry.backoff.ms"),
    ("request_timeout_ms", "socket.timeout.ms"),
    ("metadata_max_age_ms", "metadata.max.age.ms"),
    ("check_crcs", "check.crcs"),
    ("sasl_mechanism", "sasl.mechanism"),
    ("sasl_kerberos_service_name", "sasl.kerberos.service.name"),
];

/// Consumer settings librdkafka and logpipe handle by themselves.
const KAFKA_NOT_NEEDED: &[(&str, &str)] = &[
    ("enable_auto_commit", "logpipe commits offsets itself, only after the events are indexed"),
    ("auto_commit_interval_ms", "logpipe commits offsets itself, only after the events are indexed"),
    ("consumer_threads", "one indexer process consumes all its partitions; for more, run several `logpipe indexer` with the same group_id"),
    ("poll_timeout_ms", "not needed"),
    ("max_poll_records", "librdkafka fetches by bytes, not records"),
    ("key_deserializer_class", "logpipe reads record values as bytes"),
    ("value_deserializer_class", "logpipe reads record values as bytes"),
    ("receive_buffer_bytes", "left to librdkafka"),
    ("send_buffer_bytes", "left to librdkafka"),
    ("connections_max_idle_ms", "left to librdkafka"),
    ("exclude_internal_topics", "librdkafka never subscribes internal topics by pattern"),
    ("ssl_truststore_password", "a PEM CA file has no password"),
    ("ssl_truststore_type", "read with the truststore location"),
    ("ssl_keystore_type", "read with the keystore location"),
];

fn kafka(t: &mut Translator, p: &Plugin) {
    const P: &str = "kafka input";
    if t.draft.indexer_input.is_some() {
        return t.left_out(
            p.pos,
            "a second kafka input",
            "logpipe's indexer is one consumer group on one cluster; merge the topics into one kafka input, or run one `logpipe indexer` per input",
        );
    }
    input_fields(t, p);
    let mut table = Table::from(&t.origin(p.pos), P);
    let mut brokers = vec!["localhost:9092".to_string()];
    let mut topics = vec!["logstash".to_string()];
    let mut librdkafka: Vec<(String, Toml)> = Vec::new();
    let mut group_id = "logstash".to_string();
    let mut client_id = "logstash".to_string();
    let mut codec = "plain".to_string();
    let mut reset = None;
    for attr in &p.attributes {
        let origin = t.origin(attr.pos);
        match attr.name.as_str() {
            "bootstrap_servers" => {
                if let Some(v) = t.attr_text(P, attr) {
                    brokers = v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
                }
            }
            "topics" => {
                if let Some(v) = t.attr_list(P, attr) {
                    topics = v;
                }
            }
            "topics_pattern" => {
                if let Some(v) = t.attr_text(P, attr) {
                    // The Java client matches the whole name (`Pattern.matcher(topic).matches()`); logpipe's
                    // `^` topics are searched, as in librdkafka, so the pattern is anchored at both ends.
                    topics = vec![format!("^(?:{v})$")];
                }
            }
            "group_id" => group_id = t.attr_text(P, attr).unwrap_or(group_id),
            "client_id" => client_id = t.attr_text(P, attr).unwrap_or(client_id),
            "group_instance_id" => {
                if let Some(v) = t.attr_text(P, attr) {
                    table.set("group_instance_id", v);
                }
            }
            "auto_offset_reset" => match t.attr_text(P, attr).as_deref() {
                Some(v @ ("earliest" | "latest" | "none")) => reset = Some(v.to_string()),
                Some(other) => t.bad_value(P, attr, format!("expected earliest, latest or none, found `{other}`")),
                None => {}
            },
            "codec" => match t.attr_codec(P, attr).as_deref() {
                Some("json") => codec = "json".into(),
                Some("plain") => codec = "plain".into(),
                Some("line") => {
                    t.report
                        .warn(origin, "codec `line` becomes `plain`: each record is one event, not split on newlines");
                }
                Some(other) => t.left_out(
                    attr.pos,
                    format!("kafka input codec `{other}`"),
                    "logpipe decodes records as json or plain",
                ),
                None => {}
            },
            "decorate_events" => {
                if t.attr_text(P, attr).is_some_and(|v| v != "false" && v != "none") {
                    t.report.warn(
                        origin,
                        "decorate_events: logpipe does not add [@metadata][kafka] (topic, partition, offset, key) to events",
                    );
                }
            }
            "security_protocol" => {
                if let Some(v) = t.attr_text(P, attr) {
                    librdkafka.push(("security.protocol".into(), Toml::String(v.to_lowercase())));
                }
            }
            "sasl_jaas_config" => {
                if let Some(v) = t.attr_text(P, attr) {
                    let field = |name: &str| {
                        regex::Regex::new(&format!(r#"{name}\s*=\s*["']([^"']*)["']"#))
                            .expect("static regex")
                            .captures(&v)
                            .map(|c| c[1].to_string())
                    };
                    match (field("username"), field("password")) {
                        (Some(user), Some(password)) => {
                            librdkafka.push(("sasl.username".into(), Toml::String(user)));
                            librdkafka.push(("sasl.password".into(), Toml::String(password)));
                            t.report.warn(
                                origin,
                                "sasl_jaas_config: its username and password become librdkafka sasl.username and \
                                 sasl.password, written into the pipeline file: keep it mode 0600",
                            );
                        }
                        _ => t.left_out(
                            attr.pos,
                            "kafka input sasl_jaas_config",
                            "no username=\"...\" password=\"...\" in it; set librdkafka sasl.* properties by hand",
                        ),
                    }
                }
            }
            "ssl_truststore_location" | "ssl_keystore_location" => {
                if let Some(v) = t.attr_text(P, attr) {
                    let pem = v.ends_with(".pem") || v.ends_with(".crt") || type_is(p, &attr.name, "PEM");
                    let pkcs12 = v.ends_with(".p12") || v.ends_with(".pfx") || type_is(p, &attr.name, "PKCS12");
                    match (attr.name.as_str(), pem, pkcs12) {
                        ("ssl_truststore_location", true, _) => {
                            librdkafka.push(("ssl.ca.location".into(), Toml::String(v)))
                        }
                        ("ssl_keystore_location", _, true) => {
                            librdkafka.push(("ssl.keystore.location".into(), Toml::String(v)))
                        }
                        _ => t.left_out(
                            attr.pos,
                            format!("kafka input {}", attr.name),
                            "librdkafka reads PEM files (and PKCS#12 keystores), not Java keystores: export the \
                             certificates (`keytool -exportcert -rfc`) and set librdkafka ssl.ca.location / \
                             ssl.certificate.location / ssl.key.location",
                        ),
                    }
                }
            }
            "ssl_keystore_password" | "ssl_key_password" => {
                if let Some(v) = t.attr_text(P, attr) {
                    let key =
                        if attr.name == "ssl_key_password" { "ssl.key.password" } else { "ssl.keystore.password" };
                    librdkafka.push((key.into(), Toml::String(v)));
                }
            }
            "ssl_endpoint_identification_algorithm" => {
                if t.attr_text(P, attr).is_some_and(|v| v.is_empty()) {
                    librdkafka.push(("ssl.endpoint.identification.algorithm".into(), Toml::String("none".into())));
                    t.report.warn(origin, "ssl_endpoint_identification_algorithm is empty: broker host names are not verified, as in the source");
                }
            }
            "partition_assignment_strategy" => {
                if let Some(v) = t.attr_text(P, attr) {
                    let v = match v.as_str() {
                        "round_robin" => "roundrobin",
                        "cooperative_sticky" => "cooperative-sticky",
                        "sticky" => "cooperative-sticky",
                        other => other,
                    };
                    librdkafka.push(("partition.assignment.strategy".into(), Toml::String(v.to_string())));
                }
            }
            name if COMMON.contains(&name) => {}
            name => {
                if let Some((_, property)) = KAFKA_PROPERTIES.iter().find(|(n, _)| *n == name) {
                    if let Some(v) = t.attr_text(P, attr) {
                        librdkafka.push((property.to_string(), Toml::String(v)));
                    }
                } else if let Some((_, why)) = KAFKA_NOT_NEEDED.iter().find(|(n, _)| *n == name) {
                    t.report.info(origin, format!("kafka input `{name}`: {why}"));
                } else {
                    t.report.warn(origin, format!("kafka input `{name}` is not translated"));
                }
            }
        }
    }
    table.set("brokers", strings(&brokers));
    table.set("topics", strings(&topics));
    table.set("group_id", group_id);
    table.set("client_id", client_id);
    table.set_noted(
        "auto_offset_reset",
        reset.clone().unwrap_or_else(|| "latest".into()),
        reset.is_none().then_some("Kafka's default, as Logstash leaves it"),
    );
    table.set_noted("codec", codec.as_str(), (codec == "plain").then_some("Logstash's kafka input default"));
    if !librdkafka.is_empty() {
        table.set("librdkafka", inline(librdkafka));
    }
    t.draft.indexer_input = Some(table);
}

fn type_is(p: &Plugin, location: &str, kind: &str) -> bool {
    let type_key = location.replace("_location", "_type");
    p.get(&type_key).and_then(|a| super::values::text(&a.value).ok()).is_some_and(|v| v.eq_ignore_ascii_case(kind))
}

fn file(t: &mut Translator, p: &Plugin) {
    const P: &str = "file input";
    let mut table = Table::from(&t.origin(p.pos), P);
    table.set("type", "file");
    let mut start = "end";
    let mut fields: Vec<(String, Toml)> = Vec::new();
    for attr in &p.attributes {
        let origin = t.origin(attr.pos);
        match attr.name.as_str() {
            "path" => {
                if let Some(v) = t.attr_list(P, attr) {
                    table.set("paths", strings(v));
                }
            }
            "exclude" => {
                if let Some(v) = t.attr_list(P, attr) {
                    // Logstash matches `exclude` globs against the file name; logpipe's exclude_files are
                    // regexes on the whole path.
                    table.set("exclude_files", strings(v.iter().map(|g| format!("(^|/){}$", glob_to_regex(g)))));
                }
            }
            "start_position" => match t.attr_text(P, attr).as_deref() {
                Some("beginning") => start = "beginning",
                Some("end") => start = "end",
                Some(other) => t.bad_value(P, attr, format!("expected beginning or end, found `{other}`")),
                None => {}
            },
            "tags" => {
                if let Some(v) = t.attr_list(P, attr) {
                    table.set("tags", strings(v));
                }
            }
            "type" => {
                if let Some(v) = t.attr_text(P, attr) {
                    fields.push(("type".into(), Toml::String(v)));
                }
            }
            "add_field" => {
                if let Some(Toml::Table(m)) = t.attr_string_map(P, attr) {
                    fields.extend(m);
                }
            }
            "close_older" => {
                if let Some(v) = t.attr_text(P, attr) {
                    table.set("close_inactive", duration(&v));
                }
            }
            "stat_interval" | "discover_interval" => {
                if let Some(v) = t.attr_text(P, attr) {
                    table.set("scan_frequency", duration(&v));
                }
            }
            "sincedb_path" | "sincedb_write_interval" => {
                t.report.info(origin, format!("file input `{}`: logpipe keeps offsets in [agent] registry", attr.name))
            }
            "codec" => match &attr.value {
                Value::Plugin(codec) if codec.name == "multiline" => multiline(t, codec, &mut table),
                other => match super::values::codec_name(other).as_deref() {
                    Ok("plain") | Ok("line") => {}
                    Ok(name) => t.report.warn(
                        origin,
                        format!("file input codec `{name}`: the agent ships lines; decode them in the indexer"),
                    ),
                    Err(e) => t.bad_value(P, attr, e.clone()),
                },
            },
            "mode" => {
                if t.attr_text(P, attr).as_deref() == Some("read") {
                    t.report.warn(origin, "file input mode `read`: logpipe tails files; they are read to the end and followed, not deleted or logged as completed");
                }
            }
            name if COMMON.contains(&name) => {}
            name => t.report.warn(origin, format!("file input `{name}` is not translated")),
        }
    }
    table.set_noted(
        "start_position",
        start,
        (start == "end").then_some("Logstash's default for files it has never seen"),
    );
    if !fields.is_empty() {
        table.set("fields", inline(fields));
        table.set_noted("fields_under_root", true, Some("Logstash's add_field and type are top-level fields"));
    }
    t.agent_inputs += 1;
    t.draft.agent_inputs.push(table);
}

/// Grok patterns a multiline codec's pattern may use, as the regexes the agent reads.
const MULTILINE_GROK: &[(&str, &str)] = &[
    ("TIMESTAMP_ISO8601", r"\d{4}-\d{2}-\d{2}[T ]\d{2}:?\d{2}(?::?\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"),
    ("SYSLOGTIMESTAMP", r"[A-Z][a-z]{2} +\d{1,2} \d{2}:\d{2}:\d{2}"),
    ("HTTPDATE", r"\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}"),
    ("DATESTAMP", r"\d{1,4}[/.-]\d{1,2}[/.-]\d{1,4}[- ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?"),
    ("YEAR", r"\d{2,4}"),
    ("TIME", r"\d{2}:\d{2}:\d{2}(?:[.,]\d+)?"),
    (
        "LOGLEVEL",
        r"(?i:trace|debug|info|notice|warn(?:ing)?|err(?:or)?|crit(?:ical)?|fatal|severe|alert|emerg(?:ency)?)",
    ),
    ("INT", r"[+-]?\d+"),
    ("NUMBER", r"[+-]?\d+(?:\.\d+)?"),
    ("WORD", r"\b\w+\b"),
    ("SPACE", r"\s*"),
    ("NOTSPACE", r"\S+"),
    ("DATA", r".*?"),
    ("GREEDYDATA", r".*"),
    ("IPV4", r"\d{1,3}(?:\.\d{1,3}){3}"),
    ("JAVACLASS", r"(?:[a-zA-Z$_][a-zA-Z$_0-9]*\.)*[a-zA-Z$_][a-zA-Z$_0-9]*"),
];

/// `^%{TIMESTAMP_ISO8601} ` → the regex; `Err(name)` for a pattern not in [`MULTILINE_GROK`].
fn expand_grok(pattern: &str) -> Result<String, String> {
    let re = regex::Regex::new(r"%\{(\w+)(?::[^}]*)?\}").expect("static regex");
    let mut out = String::new();
    let mut last = 0;
    for c in re.captures_iter(pattern) {
        let m = c.get(0).expect("whole match");
        let name = &c[1];
        let def = MULTILINE_GROK.iter().find(|(n, _)| *n == name).ok_or_else(|| name.to_string())?;
        out.push_str(&pattern[last..m.start()]);
        out.push_str(&format!("(?:{})", def.1));
        last = m.end();
    }
    out.push_str(&pattern[last..]);
    Ok(out)
}

/// `codec => multiline { pattern, negate, what }` → the agent's `multiline`.
fn multiline(t: &mut Translator, codec: &Plugin, table: &mut Table) {
    const P: &str = "multiline codec";
    let mut pairs: Vec<(String, Toml)> = Vec::new();
    for attr in &codec.attributes {
        match attr.name.as_str() {
            "pattern" => {
                if let Some(v) = t.attr_text(P, attr) {
                    match expand_grok(&v) {
                        Ok(re) => pairs.push(("pattern".into(), Toml::String(re))),
                        Err(name) => {
                            t.left_out(
                                attr.pos,
                                format!("multiline pattern {v:?}"),
                                format!("the grok pattern {name} is not known here; write the regex out"),
                            );
                            return;
                        }
                    }
                }
            }
            "negate" => {
                if let Some(v) = t.attr_bool(P, attr) {
                    pairs.push(("negate".into(), Toml::Boolean(v)));
                }
            }
            "what" => match t.attr_text(P, attr).as_deref() {
                Some("previous") => pairs.push(("match".into(), Toml::String("after".into()))),
                Some("next") => pairs.push(("match".into(), Toml::String("before".into()))),
                Some(other) => t.bad_value(P, attr, format!("expected previous or next, found `{other}`")),
                None => {}
            },
            "max_lines" => {
                if let Some(v) = t.attr_number(P, attr) {
                    pairs.push(("max_lines".into(), Toml::Integer(v as i64)));
                }
            }
            "auto_flush_interval" => {
                if let Some(v) = t.attr_number(P, attr) {
                    pairs.push(("timeout".into(), Toml::String(format!("{}s", v))));
                }
            }
            name => {
                let origin = t.origin(attr.pos);
                t.report.warn(origin, format!("multiline codec `{name}` is not translated"));
            }
        }
    }
    table.set("multiline", inline(pairs));
}

fn stdin(t: &mut Translator, p: &Plugin) {
    let mut table = Table::from(&t.origin(p.pos), "stdin input");
    table.set("type", "stdin");
    if let Some(attr) = p.get("tags") {
        if let Some(v) = t.attr_list("stdin input", attr) {
            table.set("tags", strings(v));
        }
    }
    t.agent_inputs += 1;
    t.draft.agent_inputs.push(table);
}

/// Logstash durations (`"1 hour"`, `3600`, `"5s"`) as logpipe's (`"3600s"`).
fn duration(v: &str) -> String {
    let v = v.trim();
    if v.chars().all(|c| c.is_ascii_digit()) {
        return format!("{v}s");
    }
    let (num, unit): (String, String) = v.chars().partition(|c| c.is_ascii_digit() || *c == '.');
    let secs = num.parse::<f64>().unwrap_or(0.0)
        * match unit.trim() {
            "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => 0.001,
            "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
            "h" | "hour" | "hours" => 3600.0,
            "d" | "day" | "days" => 86400.0,
            "w" | "week" | "weeks" => 604800.0,
            _ => 1.0,
        };
    format!("{}s", secs)
}
