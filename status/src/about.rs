//! What a process runs and where — the header of `logpipe status`: the version, the pipeline file, the
//! admin address, and one line per part saying where it listens, reads and writes.

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use logpipe_agent::config::InputType;
use logpipe_agent::AgentConfig;
use logpipe_indexer::IndexerConfig;

/// What a process runs and where.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct About {
    /// logpipe's version (and git commit).
    pub version: String,
    /// The pipeline or config file the process was started from.
    pub pipeline: Option<String>,
    /// The admin endpoint's address.
    pub admin: Option<String>,
    /// One line per running part, in start order.
    pub parts: Vec<PartAbout>,
}

/// One running part and where it works.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PartAbout {
    /// `broker`, `indexer` or `agent`.
    pub part: String,
    /// Where: listeners and data dir, inputs and output, topics and Elasticsearch hosts.
    pub detail: String,
}

impl PartAbout {
    /// `listening on 127.0.0.1:9092, data in /var/lib/logpipe`.
    pub fn broker(log_dirs: &Path, listening: &[SocketAddr]) -> Self {
        let addresses: Vec<String> = listening.iter().map(SocketAddr::to_string).collect();
        Self {
            part: "broker".into(),
            detail: format!("listening on {}, data in {}", addresses.join(", "), log_dirs.display()),
        }
    }

    /// `topics nginx (group logpipe-indexer) from 127.0.0.1:9092 -> http://127.0.0.1:9200`.
    pub fn indexer(config: &IndexerConfig) -> Self {
        let input = &config.input;
        let mut outputs: Vec<String> = Vec::new();
        if let Some(es) = &config.output.elasticsearch {
            outputs.extend(es.hosts.iter().cloned());
        }
        if let Some(file) = &config.output.file {
            outputs.push(file.path.display().to_string());
        }
        if config.output.stdout {
            outputs.push("stdout".into());
        }
        Self {
            part: "indexer".into(),
            detail: format!(
                "topics {} (group {}) from {} -> {}",
                input.topics.join(","),
                input.group_id,
                input.brokers.join(","),
                outputs.join(", ")
            ),
        }
    }

    /// `2 inputs -> topic nginx on 127.0.0.1:9092: /var/log/nginx/access.log*, /var/log/nginx/error.log*`
    /// (the destination first: a narrow terminal cuts the end).
    pub fn agent(config: &AgentConfig) -> Self {
        let inputs: Vec<String> = config
            .inputs
            .iter()
            .map(|input| match input.kind {
                InputType::File => input.paths.join(" "),
                InputType::Exec => format!("exec `{}`", input.command.as_deref().unwrap_or_default()),
                InputType::Stdin => "stdin".into(),
            })
            .collect();
        Self {
            part: "agent".into(),
            detail: format!(
                "{} input{} -> topic {} on {}: {}",
                inputs.len(),
                if inputs.len() == 1 { "" } else { "s" },
                config.output.topic,
                config.output.brokers.join(","),
                inputs.join(", ")
            ),
        }
    }
}
