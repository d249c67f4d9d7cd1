//! The pipeline being built from the source configs, and its rendering as a pipeline TOML file with
//! comments pointing back at the source lines. It holds keys and values only; whether they load is
//! decided by logpipe's own config loading (`logpipe check`), never here.

use std::fmt::Write;

pub(crate) use toml::Value;

use crate::report::Origin;

/// One TOML table: comment lines above its header, then `key = value  # note` lines.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    pub comments: Vec<String>,
    pub entries: Vec<(String, Value, Option<String>)>,
}

impl Table {
    pub fn from(origin: &Origin, what: &str) -> Self {
        Self { comments: vec![format!("{what}, from {origin}")], entries: Vec::new() }
    }

    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.set_noted(key, value, None::<String>);
    }

    pub fn set_noted(&mut self, key: &str, value: impl Into<Value>, note: Option<impl Into<String>>) {
        let value = value.into();
        let note = note.map(Into::into);
        match self.entries.iter_mut().find(|(k, _, _)| k == key) {
            Some(entry) => *entry = (key.to_string(), value, note),
            None => self.entries.push((key.to_string(), value, note)),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _, _)| k == key).map(|(_, v, _)| v)
    }

    /// Kafka client properties of `[agent.output]`, librdkafka-named, as `librdkafka` with
    /// `client = "librdkafka"`. The agent's own producer reads the security ones from its `security`,
    /// `sasl` and `ssl` tables, but checks their files and password when the pipeline loads, and the
    /// source names files and secrets of its own host: kept as librdkafka properties, the pipeline loads
    /// here and librdkafka reads them where it runs.
    pub fn set_agent_kafka_properties(&mut self, properties: Vec<(String, Value)>) {
        if properties.is_empty() {
            return;
        }
        self.set_noted(
            "client",
            "librdkafka",
            Some("the source's Kafka security settings (files, secrets of its host) as librdkafka properties"),
        );
        self.set("librdkafka", inline(properties));
    }

    pub fn comment(&mut self, line: impl Into<String>) {
        self.comments.push(line.into());
    }
}

/// Everything a pipeline file can hold, filled by the translators in turn.
#[derive(Debug, Default)]
pub(crate) struct Draft {
    pub broker: Option<Table>,
    pub agent: Option<Table>,
    pub agent_output: Option<Table>,
    pub agent_inputs: Vec<Table>,
    pub indexer: Option<Table>,
    pub indexer_input: Option<Table>,
    /// `[indexer.enrichment]`: database files the geoip and useragent filters name.
    pub enrichment: Option<Table>,
    pub filters: Vec<Table>,
    pub routes: Vec<Table>,
    pub output: Option<Table>,
    pub elasticsearch: Option<Table>,
    pub file_output: Option<Table>,
    /// `(origin, what)` of everything left out under `--bypass-errors`.
    pub left_out: Vec<(Origin, String)>,
    /// The source files, for the header.
    pub sources: Vec<String>,
    /// Indexer filters a Filebeat config asks for (module parsers, top-level drop_fields), placed
    /// first when there is an indexer.
    pub beat_filters: Vec<(Origin, Table)>,
    /// Filebeat's `output.logstash`, to be joined to a Logstash `beats` input.
    pub beats_output: Option<Origin>,
    /// A Logstash `beats` input, to be joined to Filebeat's `output.logstash`.
    pub beats_input: Option<Origin>,
}

impl Draft {
    pub fn has_agent(&self) -> bool {
        self.agent.is_some() || self.agent_output.is_some() || !self.agent_inputs.is_empty()
    }

    pub fn has_indexer(&self) -> bool {
        self.indexer.is_some() || self.indexer_input.is_some() || !self.routes.is_empty() || !self.filters.is_empty()
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# Written by `logpipe import`");
        if !self.sources.is_empty() {
            let _ = write!(out, " from {}", self.sources.join(", "));
        }
        out.push_str(".\n# Each section names the source lines it comes from; `logpipe check` validates this file.\n");
        let mut table = |header: &str, array: bool, t: &Table| {
            out.push('\n');
            for c in &t.comments {
                let _ = writeln!(out, "# {c}");
            }
            if array {
                let _ = writeln!(out, "[[{header}]]");
            } else {
                let _ = writeln!(out, "[{header}]");
            }
            for (k, v, note) in &t.entries {
                let _ = write!(out, "{} = {}", key(k), value(v));
                if let Some(n) = note {
                    let _ = write!(out, "  # {n}");
                }
                out.push('\n');
            }
        };
        let single = [("broker", &self.broker), ("agent", &self.agent), ("agent.output", &self.agent_output)];
        for (h, t) in single {
            if let Some(t) = t {
                table(h, false, t);
            }
        }
        for t in &self.agent_inputs {
            table("agent.inputs", true, t);
        }
        for (h, t) in [
            ("indexer", &self.indexer),
            ("indexer.input", &self.indexer_input),
            ("indexer.enrichment", &self.enrichment),
        ] {
            if let Some(t) = t {
                table(h, false, t);
            }
        }
        for t in &self.filters {
            table("indexer.filters", true, t);
        }
        for t in &self.routes {
            table("indexer.routes", true, t);
        }
        for (h, t) in [
            ("indexer.output", &self.output),
            ("indexer.output.elasticsearch", &self.elasticsearch),
            ("indexer.output.file", &self.file_output),
        ] {
            if let Some(t) = t {
                table(h, false, t);
            }
        }
        if !self.left_out.is_empty() {
            out.push_str("\n# Left out (--bypass-errors); see the report:\n");
            for (origin, what) in &self.left_out {
                let _ = writeln!(out, "#   {origin}: {what}");
            }
        }
        out
    }
}

fn is_bare_key(k: &str) -> bool {
    !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn key(k: &str) -> String {
    if is_bare_key(k) {
        k.to_string()
    } else {
        Value::String(k.to_string()).to_string()
    }
}

/// A value on one line: inline arrays and tables.
pub(crate) fn value(v: &Value) -> String {
    match v {
        Value::Array(items) => format!("[{}]", items.iter().map(value).collect::<Vec<_>>().join(", ")),
        Value::Table(t) if t.is_empty() => "{}".into(),
        Value::Table(t) => {
            format!(
                "{{ {} }}",
                t.iter().map(|(k, v)| format!("{} = {}", key(k), value(v))).collect::<Vec<_>>().join(", ")
            )
        }
        other => other.to_string(),
    }
}

/// `[("a", 1)]` → `{ a = 1 }`, keeping the order given.
pub(crate) fn inline<K: Into<String>, V: Into<Value>>(pairs: impl IntoIterator<Item = (K, V)>) -> Value {
    let mut t = toml::map::Map::new();
    for (k, v) in pairs {
        t.insert(k.into(), v.into());
    }
    Value::Table(t)
}

pub(crate) fn strings<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Value {
    Value::Array(items.into_iter().map(|s| Value::String(s.as_ref().to_string())).collect())
}
