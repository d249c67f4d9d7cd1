//! `logpipe import`: the configs of the classic stack — Filebeat's `filebeat.yml`, Logstash pipelines
//! (`.conf` files or a `conf.d` directory) and Flume agents' `.properties` — read as they are and
//! written as one logpipe pipeline file, with a report of what does not translate.
//!
//! The pipeline is produced as TOML text with comments pointing back at the source lines; whether it
//! loads is for logpipe's own config loading to say (`logpipe check`), which the binary runs on it.

mod draft;
mod error;
mod filebeat;
mod flume;
mod glob_regex;
pub mod logstash;
mod report;
mod when;

use std::path::{Path, PathBuf};

pub use error::{Error, Result};
pub use report::{Diagnostic, Origin, Report, Severity};

use draft::{strings, Draft, Table};

/// The pipeline file's text and the report.
#[derive(Debug)]
pub struct Imported {
    pub pipeline: String,
    pub report: Report,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Filebeat,
    Logstash,
    Flume,
}

/// Which reader a file needs: by extension, else by a look at its content.
fn kind_of(path: &Path, text: &str) -> Kind {
    match path.extension().and_then(|e| e.to_str()) {
        Some("yml" | "yaml") => Kind::Filebeat,
        Some("properties") => Kind::Flume,
        Some("conf" | "cfg") => Kind::Logstash,
        _ if text.contains("filebeat.") || text.contains("output.kafka") => Kind::Filebeat,
        _ if text.lines().any(|l| l.trim_start().contains(".sources") && l.contains('=')) => Kind::Flume,
        _ => Kind::Logstash,
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })
}

/// Expands directories: a Logstash `conf.d` is its `*.conf` files, by name, as Logstash reads it.
fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|source| Error::Io { path: path.clone(), source })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "conf"))
                .collect();
            entries.sort();
            if entries.is_empty() {
                return Err(Error::Input(format!("{}: a directory with no *.conf files", path.display())));
            }
            out.extend(entries);
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

/// Reads every file and builds one pipeline. Fails only on a file that cannot be read or parsed;
/// everything else is in the report.
pub fn import(paths: &[PathBuf]) -> Result<Imported> {
    if paths.is_empty() {
        return Err(Error::Input(
            "nothing to import: name a filebeat.yml, Logstash .conf files or a Flume .properties".into(),
        ));
    }
    let mut draft = Draft::default();
    let mut report = Report::default();
    let mut logstash: Vec<(String, logstash::ast::Config)> = Vec::new();
    for path in files(paths)? {
        let text = read(&path)?;
        let name = path.display().to_string();
        draft.sources.push(name.clone());
        match kind_of(&path, &text) {
            Kind::Filebeat => filebeat::translate(&name, &text, &mut draft, &mut report)?,
            Kind::Flume => flume::translate(&name, &text, &mut draft, &mut report)?,
            Kind::Logstash => logstash.push((name.clone(), logstash::parse(&name, &text)?)),
        }
    }
    if !logstash.is_empty() {
        let sources: Vec<logstash::Source> =
            logstash.iter().map(|(file, config)| logstash::Source { file, config }).collect();
        logstash::translate(&sources, &mut draft, &mut report);
    }
    link(&mut draft, &mut report);
    if !draft.has_agent() && !draft.has_indexer() {
        return Err(Error::Input(format!(
            "nothing in {} translates to a logpipe agent or indexer; see the report:\n{report}",
            draft.sources.join(", ")
        )));
    }
    Ok(Imported { pipeline: draft.render(), report })
}

const EMBEDDED: &str = "127.0.0.1:9092";

/// Joins what the files describe: the agent's topic to the indexer's, a Logstash beats input to
/// Filebeat's output.logstash, agent inputs without a Kafka output to the embedded broker.
fn link(draft: &mut Draft, report: &mut Report) {
    let pipeline = Origin::new("(pipeline)", 0);
    let mut needs_broker = false;
    // Logstash beats input ⇐ Filebeat output.logstash.
    if let Some(beats) = draft.beats_input.clone() {
        match &draft.beats_output {
            Some(_) if draft.indexer_input.is_none() => {
                let mut input = Table::from(&beats, "Logstash beats input (Filebeat's output.logstash, through the broker)");
                input.set("brokers", strings([EMBEDDED]));
                input.set("topics", strings(["beats"]));
                input.set("group_id", "logstash");
                input.set("auto_offset_reset", "earliest");
                input.set("codec", "json");
                draft.indexer_input = Some(input);
                needs_broker = true;
            }
            Some(_) => report.error(beats.clone(), "beats input next to a kafka input: logpipe's indexer reads one Kafka cluster; the beats input is left out"),
            None => {
                report.error(
                    beats.clone(),
                    "input `beats`: logpipe has no Beats listener; import the filebeat.yml too (its output.logstash \
                     then goes through logpipe's broker), or point Filebeat's output.kafka at logpipe's broker",
                );
                draft.left_out.push((beats, "beats input".into()));
            }
        }
    } else if let Some(origin) = draft.beats_output.clone() {
        if draft.indexer_input.is_none() {
            report.warn(
                origin,
                "output.logstash: no Logstash pipeline with a beats input was imported; events wait in topic `beats`",
            );
        }
        needs_broker = true;
    }
    // Agent inputs from a Logstash file/stdin input: they need a queue.
    if !draft.agent_inputs.is_empty() && draft.agent_output.is_none() {
        let mut output = Table::default();
        match draft.indexer_input.as_ref() {
            Some(input) => {
                let topic = input
                    .get("topics")
                    .and_then(|t| t.as_array())
                    .and_then(|t| t.iter().filter_map(|t| t.as_str()).find(|t| !t.starts_with('^')))
                    .unwrap_or("logstash")
                    .to_string();
                output.comment(format!("file/stdin inputs ship to the kafka input's cluster, topic {topic}"));
                output.set("brokers", input.get("brokers").cloned().unwrap_or_else(|| strings([EMBEDDED])));
                output.set("topic", topic.as_str());
                report.warn(
                    pipeline.clone(),
                    format!("Logstash file/stdin inputs ship through Kafka topic {topic}, which the kafka input reads"),
                );
            }
            None => {
                output.comment("file/stdin inputs ship to the embedded broker, which stands in for Logstash's queue");
                output.set("brokers", strings([EMBEDDED]));
                output.set("topic", "logstash");
                if draft.has_indexer() {
                    let mut input = Table::default();
                    input.comment("reads what the agent ships");
                    input.set("brokers", strings([EMBEDDED]));
                    input.set("topics", strings(["logstash"]));
                    input.set("group_id", "logstash");
                    input.set("auto_offset_reset", "earliest");
                    input.set("codec", "json");
                    draft.indexer_input = Some(input);
                }
                needs_broker = true;
            }
        }
        draft.agent_output = Some(output);
    }
    // Filebeat's module parsers and drop_fields run first in the indexer.
    let beat_filters = std::mem::take(&mut draft.beat_filters);
    if !beat_filters.is_empty() {
        if draft.has_indexer() || draft.indexer_input.is_some() {
            let mut filters: Vec<Table> = beat_filters.into_iter().map(|(_, t)| t).collect();
            filters.append(&mut draft.filters);
            draft.filters = filters;
        } else {
            for (origin, table) in beat_filters {
                let what = table.comments.first().and_then(|c| c.split(", from").next()).unwrap_or("this").to_string();
                report.warn(
                    origin,
                    format!("{what} needs logpipe's indexer: import the Logstash pipeline that reads the topic too, or add an [indexer] section"),
                );
            }
        }
    }
    // Does the indexer read what the agent ships?
    if let (Some(output), Some(input)) = (&draft.agent_output, &draft.indexer_input) {
        let topics: Vec<String> = input
            .get("topics")
            .and_then(|t| t.as_array())
            .map(|t| t.iter().filter_map(|t| t.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let mut shipped: Vec<String> =
            draft.agent_inputs.iter().filter_map(|i| i.get("topic")?.as_str().map(str::to_string)).collect();
        if draft.agent_inputs.iter().any(|i| i.get("topic").is_none()) {
            shipped.push(output.get("topic").and_then(|t| t.as_str()).unwrap_or("logs").to_string());
        }
        for topic in shipped {
            let read = topics.iter().any(|t| match t.strip_prefix('^') {
                Some(re) => regex::Regex::new(&format!("^{re}")).is_ok_and(|r| r.is_match(&topic)),
                None => *t == topic,
            });
            if !read {
                report.warn(
                    pipeline.clone(),
                    format!(
                        "the agent ships to topic {topic}, which the indexer does not read ({})",
                        topics.join(", ")
                    ),
                );
            }
        }
    }
    if needs_broker && draft.broker.is_none() {
        let mut broker = Table::default();
        broker.comment("the embedded broker, between agent and indexer");
        broker.set("listeners", strings([EMBEDDED]));
        broker.set("log_dirs", "data/broker");
        draft.broker = Some(broker);
    }
}
