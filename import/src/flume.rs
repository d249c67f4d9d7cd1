//! A Flume agent's properties: `exec`, `spooldir` and `taildir` sources become agent inputs, Kafka
//! sinks (old and new property names) become `[agent.output]`, channels are noted (the agent's
//! registry and the broker replace them).

use std::collections::BTreeMap;

use java_properties::{LineContent, PropertiesIter};

use crate::draft::{inline, strings, Draft, Table, Value as Toml};
use crate::error::{Error, Result};
use crate::glob_regex::glob_to_regex;
use crate::report::{Origin, Report};

/// One property: its value and line.
#[derive(Clone)]
struct Prop {
    value: String,
    line: usize,
}

struct Ctx<'a> {
    file: &'a str,
    props: BTreeMap<String, Prop>,
    draft: &'a mut Draft,
    report: &'a mut Report,
}

impl Ctx<'_> {
    fn get(&self, key: &str) -> Option<&Prop> {
        self.props.get(key)
    }

    fn value(&self, key: &str) -> Option<String> {
        self.get(key).map(|p| p.value.trim().to_string())
    }

    fn origin(&self, key: &str) -> Origin {
        Origin::new(self.file, self.get(key).map(|p| p.line).unwrap_or(1))
    }

    fn left_out(&mut self, origin: Origin, what: impl Into<String>, why: impl Into<String>) {
        let what = what.into();
        self.report.error(origin.clone(), format!("{what}: {}", why.into()));
        self.draft.left_out.push((origin, what));
    }

    /// Keys under `prefix.` (without it), in order.
    fn under(&self, prefix: &str) -> Vec<(String, Prop)> {
        let p = format!("{prefix}.");
        self.props.iter().filter_map(|(k, v)| k.strip_prefix(&p).map(|rest| (rest.to_string(), v.clone()))).collect()
    }
}

fn read(file: &str, text: &str) -> Result<BTreeMap<String, Prop>> {
    let mut props = BTreeMap::new();
    for line in PropertiesIter::new(text.as_bytes()) {
        let line = line.map_err(|e| Error::Syntax {
            file: file.to_string(),
            line: e.line_number().unwrap_or(1),
            col: 1,
            message: format!("properties: {e}"),
        })?;
        let number = line.line_number();
        if let LineContent::KVPair(k, v) = line.consume_content() {
            props.insert(k, Prop { value: v, line: number });
        }
    }
    Ok(props)
}

pub(crate) fn translate(file: &str, text: &str, draft: &mut Draft, report: &mut Report) -> Result<()> {
    let props = read(file, text)?;
    let agents: Vec<String> = props
        .keys()
        .filter_map(|k| k.strip_suffix(".sources").filter(|a| !a.contains('.')).map(str::to_string))
        .collect();
    if agents.is_empty() {
        return Err(Error::Syntax {
            file: file.to_string(),
            line: 1,
            col: 1,
            message: "expected a Flume agent: `<agent>.sources = <names>` with `<agent>.sources.<name>.type = ...`"
                .into(),
        });
    }
    let mut ctx = Ctx { file, props, draft, report };
    for agent in agents {
        translate_agent(&mut ctx, &agent);
    }
    Ok(())
}

fn names(ctx: &Ctx, key: &str) -> Vec<String> {
    ctx.value(key).map(|v| v.split_whitespace().map(str::to_string).collect()).unwrap_or_default()
}

fn translate_agent(ctx: &mut Ctx, agent: &str) {
    // Channels: what each is for, and which sink drains it.
    for channel in names(ctx, &format!("{agent}.channels")) {
        let key = format!("{agent}.channels.{channel}.type");
        let kind = ctx.value(&key).unwrap_or_default();
        let origin = ctx.origin(&key);
        let note = match kind.as_str() {
            "memory" => "memory channel: events in it are lost when Flume stops; logpipe's agent keeps no such buffer, its registry moves only past what the broker acknowledged",
            "file" => "file channel: logpipe's agent needs none; its registry moves only past what the broker acknowledged",
            _ => "channel: logpipe's agent reads straight into Kafka; no channel is needed",
        };
        ctx.report.info(origin, format!("{channel}: {note}"));
    }
    let mut topic_of_channel: BTreeMap<String, String> = BTreeMap::new();
    for sink in names(ctx, &format!("{agent}.sinks")) {
        if let Some(topic) = kafka_sink(ctx, agent, &sink) {
            if let Some(channel) = ctx.value(&format!("{agent}.sinks.{sink}.channel")) {
                topic_of_channel.insert(channel, topic);
            }
        }
    }
    for source in names(ctx, &format!("{agent}.sources")) {
        let prefix = format!("{agent}.sources.{source}");
        let type_key = format!("{prefix}.type");
        let origin = ctx.origin(&type_key);
        let kind = ctx.value(&type_key).unwrap_or_default();
        let mut inputs = match kind.as_str() {
            "exec" => exec(ctx, &prefix, &source),
            "spooldir" | "org.apache.flume.source.SpoolDirectorySource" => spooldir(ctx, &prefix, &source),
            "TAILDIR" | "taildir" | "org.apache.flume.source.taildir.TaildirSource" => taildir(ctx, &prefix, &source),
            "" => {
                ctx.left_out(origin, format!("source {source}"), format!("it has no {type_key}"));
                continue;
            }
            other => {
                ctx.left_out(
                    origin,
                    format!("source {source} of type {other}"),
                    "no equivalent in logpipe's agent (sources: exec, spooldir, taildir)",
                );
                continue;
            }
        };
        let channels = names(ctx, &format!("{prefix}.channels"));
        let topics: Vec<&String> = channels.iter().filter_map(|c| topic_of_channel.get(c)).collect();
        if topics.len() > 1 {
            let key = format!("{prefix}.channels");
            let o = ctx.origin(&key);
            ctx.report.warn(
                o,
                format!("source {source} feeds several Kafka sinks; logpipe sends it to the first, {}", topics[0]),
            );
        }
        for input in &mut inputs {
            if let Some(topic) = topics.first() {
                input.set("topic", topic.as_str());
            }
            interceptors(ctx, &prefix, input);
        }
        ctx.draft.agent_inputs.extend(inputs);
    }
}

fn exec(ctx: &mut Ctx, prefix: &str, source: &str) -> Vec<Table> {
    let command_key = format!("{prefix}.command");
    let origin = ctx.origin(&format!("{prefix}.type"));
    let Some(command) = ctx.value(&command_key) else {
        ctx.left_out(origin, format!("exec source {source}"), format!("it has no {command_key}"));
        return Vec::new();
    };
    let mut table = Table::from(&origin, &format!("Flume exec source {source}"));
    table.set("type", "exec");
    table.set("command", command.as_str());
    let words: Vec<&str> = command.split_whitespace().collect();
    if words.first() == Some(&"tail") && words.iter().any(|w| *w == "-F" || *w == "-f" || w.starts_with("--follow")) {
        let file = words.last().copied().unwrap_or("FILE");
        ctx.report.warn(
            ctx.origin(&command_key),
            format!(
                "exec `{command}` loses data on restart: whatever tail printed but was not yet sent is lost, and lines \
                 written while it was down are skipped (or repeated). Use a file input instead, which records \
                 acknowledged offsets: [[agent.inputs]] type = \"file\", paths = [\"{file}\"]"
            ),
        );
    }
    let restart_key = format!("{prefix}.restart");
    match ctx.value(&restart_key).as_deref() {
        Some("true") => {}
        _ => ctx.report.info(
            origin.clone(),
            "exec restart: logpipe restarts the command (1 s to 30 s backoff) whenever it exits; Flume only with restart=true",
        ),
    }
    for (key, note) in [
        ("batchSize", "batchSize: the agent batches by bytes and time (linger_ms, batch_bytes)"),
        ("batchTimeout", "batchTimeout: the agent batches by bytes and time (linger_ms, batch_bytes)"),
        ("restartThrottle", "restartThrottle: logpipe backs off from 1 s to 30 s"),
        ("shell", "shell: logpipe runs the command with sh -c"),
        ("logStdErr", "logStdErr: the command's stderr goes to logpipe's stderr"),
    ] {
        let k = format!("{prefix}.{key}");
        if ctx.get(&k).is_some() {
            let o = ctx.origin(&k);
            ctx.report.info(o, note);
        }
    }
    vec![table]
}

fn spooldir(ctx: &mut Ctx, prefix: &str, source: &str) -> Vec<Table> {
    let origin = ctx.origin(&format!("{prefix}.type"));
    let Some(dir) = ctx.value(&format!("{prefix}.spoolDir")) else {
        ctx.left_out(origin, format!("spooldir source {source}"), "it has no spoolDir");
        return Vec::new();
    };
    let mut table = Table::from(&origin, &format!("Flume spooldir source {source}"));
    table.set("type", "file");
    table.set("paths", strings([format!("{}/*", dir.trim_end_matches('/'))]));
    let mut exclude = vec![r"\.COMPLETED$".to_string()];
    if let Some(ignore) = ctx.value(&format!("{prefix}.ignorePattern")) {
        exclude.push(format!("(^|/){}$", ignore.trim_start_matches('^').trim_end_matches('$')));
    }
    table.set("exclude_files", strings(exclude));
    if ctx.get(&format!("{prefix}.includePattern")).is_some() {
        let o = ctx.origin(&format!("{prefix}.includePattern"));
        ctx.report.warn(
            o,
            "includePattern is not translated: every file in the spool directory is read (narrow `paths` by hand)",
        );
    }
    ctx.report.warn(
        origin,
        "spooldir: logpipe reads each file in the directory and follows it; it neither renames files to .COMPLETED nor deletes them",
    );
    vec![table]
}

fn taildir(ctx: &mut Ctx, prefix: &str, source: &str) -> Vec<Table> {
    let mut out = Vec::new();
    for group in names(ctx, &format!("{prefix}.filegroups")) {
        let key = format!("{prefix}.filegroups.{group}");
        let origin = ctx.origin(&key);
        let Some(path) = ctx.value(&key) else {
            ctx.left_out(origin, format!("taildir file group {group}"), format!("it has no {key}"));
            continue;
        };
        // Taildir's file-name part is a regex; the directory part is literal.
        let (dir, name_re) = path.rsplit_once('/').unwrap_or((".", path.as_str()));
        let literal = !name_re.chars().any(|c| "\\^$.|?*+()[]{}".contains(c));
        let mut table = Table::from(&origin, &format!("Flume taildir source {source}, file group {group}"));
        table.set("type", "file");
        if literal {
            table.set("paths", strings([path.clone()]));
        } else if name_re == ".*" || name_re == ".*log" || !name_re.contains(['\\', '[', '(', '|']) {
            let glob = name_re.replace(".*", "*").replace("\\.", ".");
            table.set("paths", strings([format!("{dir}/{glob}")]));
            let back = glob_to_regex(&glob);
            ctx.report.info(
                origin.clone(),
                format!("file group {group}: the regex {name_re} read as the glob {glob} ({back})"),
            );
        } else {
            table.set("paths", strings([format!("{dir}/*")]));
            ctx.report.warn(
                origin.clone(),
                format!("file group {group}: the file-name regex {name_re} has no glob equivalent; every file in {dir} is read (narrow `paths` by hand)"),
            );
        }
        let headers = ctx.under(&format!("{prefix}.headers.{group}"));
        if !headers.is_empty() {
            table.set("fields", inline(headers.into_iter().map(|(k, v)| (k, Toml::String(v.value)))));
        }
        out.push(table);
    }
    if out.is_empty() {
        let origin = ctx.origin(&format!("{prefix}.type"));
        ctx.left_out(origin, format!("taildir source {source}"), "it has no filegroups");
    }
    for key in ["positionFile", "fileHeader", "skipToEnd"] {
        let k = format!("{prefix}.{key}");
        if ctx.get(&k).is_some() {
            let o = ctx.origin(&k);
            if key == "skipToEnd" && ctx.value(&k).as_deref() == Some("true") {
                for t in &mut out {
                    t.set("start_position", "end");
                }
            } else {
                ctx.report.info(
                    o,
                    format!("{key}: logpipe keeps offsets in [agent] registry and sets log.file.path on every event"),
                );
            }
        }
    }
    out
}

/// `static` interceptors add a field; `host` and `timestamp` are what logpipe does anyway.
fn interceptors(ctx: &mut Ctx, prefix: &str, input: &mut Table) {
    for name in names(ctx, &format!("{prefix}.interceptors")) {
        let key = format!("{prefix}.interceptors.{name}.type");
        let origin = ctx.origin(&key);
        match ctx.value(&key).as_deref() {
            Some("static") => {
                let k = ctx.value(&format!("{prefix}.interceptors.{name}.key")).unwrap_or_else(|| "key".into());
                let v = ctx.value(&format!("{prefix}.interceptors.{name}.value")).unwrap_or_else(|| "value".into());
                let mut fields = input.get("fields").and_then(|f| f.as_table()).cloned().unwrap_or_default();
                fields.insert(k, Toml::String(v));
                input.set("fields", Toml::Table(fields));
            }
            Some("host") | Some("timestamp") => {
                ctx.report.info(origin, format!("interceptor {name}: every event carries host.name and @timestamp"))
            }
            other => ctx.left_out(
                origin,
                format!("interceptor {name} ({})", other.unwrap_or("no type")),
                "no equivalent in logpipe (static, host and timestamp translate)",
            ),
        }
    }
}

/// A Kafka sink; returns its topic. Property names of Flume 1.7+ (`kafka.*`), 1.6 (`brokerList`,
/// `topic`, `requiredAcks`) and the flumeng-kafka-plugin (`metadata.broker.list`,
/// `custom.topic.name`, `request.required.acks`).
fn kafka_sink(ctx: &mut Ctx, agent: &str, sink: &str) -> Option<String> {
    let prefix = format!("{agent}.sinks.{sink}");
    let type_key = format!("{prefix}.type");
    let origin = ctx.origin(&type_key);
    let kind = ctx.value(&type_key).unwrap_or_default();
    if !kind.ends_with("KafkaSink") {
        ctx.left_out(
            origin,
            format!("sink {sink} of type {kind}"),
            "logpipe's agent ships to Kafka only (org.apache.flume.sink.kafka.KafkaSink and its older forms)",
        );
        return None;
    }
    let first = |ctx: &Ctx, keys: &[&str]| keys.iter().find_map(|k| ctx.value(&format!("{prefix}.{k}")));
    let brokers = first(ctx, &["kafka.bootstrap.servers", "brokerList", "metadata.broker.list"]);
    let topic =
        first(ctx, &["kafka.topic", "topic", "custom.topic.name"]).unwrap_or_else(|| "default-flume-topic".into());
    let acks =
        first(ctx, &["kafka.producer.acks", "requiredAcks", "request.required.acks"]).unwrap_or_else(|| "1".into());
    let compression = first(ctx, &["kafka.producer.compression.type", "compression.codec"]);
    let mut table = Table::from(&origin, &format!("Flume Kafka sink {sink}"));
    let Some(brokers) = brokers else {
        ctx.left_out(origin, format!("Kafka sink {sink}"), "it names no brokers (kafka.bootstrap.servers)");
        return None;
    };
    table.set("brokers", strings(brokers.split(',').map(str::trim).filter(|s| !s.is_empty())));
    table.set("topic", topic.as_str());
    match acks.as_str() {
        "-1" | "all" => table.set("acks", "all"),
        "0" | "1" => table.set_noted(
            "acks",
            acks.parse::<i64>().unwrap_or(1),
            (acks == "1").then_some("Flume's default; \"all\" waits for the broker's fsync"),
        ),
        other => ctx.left_out(
            ctx.origin(&format!("{prefix}.kafka.producer.acks")),
            format!("acks {other}"),
            "expected -1, 0 or 1",
        ),
    }
    match compression.as_deref() {
        None => table.set_noted("compression", "none", Some("Flume's default")),
        Some(c @ ("none" | "gzip" | "snappy" | "lz4" | "zstd")) => table.set("compression", c),
        Some(other) => {
            ctx.left_out(origin.clone(), format!("compression {other}"), "expected none, gzip, snappy, lz4 or zstd")
        }
    }
    if let Some(linger) = first(ctx, &["kafka.producer.linger.ms"]) {
        if let Ok(ms) = linger.parse::<i64>() {
            table.set("linger_ms", ms);
        }
    }
    let mut librdkafka: Vec<(String, Toml)> = Vec::new();
    for (key, prop) in ctx.under(&format!("{prefix}.kafka.producer")) {
        if matches!(key.as_str(), "acks" | "compression.type" | "linger.ms") {
            continue;
        }
        if key.starts_with("security.") || key.starts_with("sasl.") || key.starts_with("ssl.") {
            librdkafka.push((key, Toml::String(prop.value)));
        } else {
            ctx.report.info(
                Origin::new(ctx.file, prop.line),
                format!("kafka.producer.{key} has no logpipe equivalent (the producer's default applies)"),
            );
        }
    }
    table.set_agent_kafka_properties(librdkafka);
    for (key, note) in [
        ("flumeBatchSize", "the agent batches by bytes and time (linger_ms, batch_bytes)"),
        ("batchSize", "the agent batches by bytes and time (linger_ms, batch_bytes)"),
        ("producer.type", "librdkafka always sends asynchronously and waits for acknowledgements"),
        ("serializer.class", "events are JSON documents"),
        ("useFlumeEventFormat", "events are JSON documents with the line in `message`"),
        ("partitionIdHeader", "logpipe partitions round robin or by a field's hash (partitioner, key)"),
        ("defaultPartitionId", "logpipe partitions round robin or by a field's hash (partitioner, key)"),
    ] {
        let k = format!("{prefix}.{key}");
        if ctx.get(&k).is_some() {
            let o = ctx.origin(&k);
            ctx.report.info(o, format!("{key}: {note}"));
        }
    }
    ctx.report.info(
        origin.clone(),
        "events are JSON documents (the line in `message`, with host, file and a stable event.id), not Flume's raw bodies",
    );
    match &ctx.draft.agent_output {
        None => ctx.draft.agent_output = Some(table),
        Some(existing) if existing.get("brokers") == table.get("brokers") => {}
        Some(_) => {
            ctx.left_out(
                origin,
                format!("Kafka sink {sink} to another cluster"),
                "logpipe's agent ships to one cluster",
            );
            return None;
        }
    }
    Some(topic)
}
