//! The logpipe agent: Filebeat-grade `tail -F` shipping of log files into Kafka (the embedded broker or
//! any Kafka cluster), with no loss across rotation, truncation, restarts and broker outages.
//!
//! - [`config`]: the `[agent]` section ([`AgentConfig`]).
//! - [`identity`]: file identity (fingerprint of the first KiB, or device+inode while smaller) and `event.id`.
//! - [`line_reader`]: splitting bytes into lines with a hard length cap.
//! - [`multiline`]: Filebeat's multiline joining.
//! - [`envelope`]: the JSON event envelope.
//! - [`registry`]: the on-disk registry and contiguous acknowledgement tracking.
//! - [`sink`]: where events go ([`Sink`]); [`kafka`] is the real one.
//! - [`tailer`]: the file server that ties it together.

pub mod config;
mod error;
pub mod envelope;
pub mod identity;
pub mod kafka;
pub mod line_reader;
pub mod multiline;
pub mod registry;
pub mod sink;
pub mod tailer;

pub use config::AgentConfig;
pub use error::{Error, Result};
pub use sink::{Ack, MemorySink, Record, Sink};
pub use tailer::Tailer;

use tokio_util::sync::CancellationToken;

/// Runs the agent until `shutdown` is cancelled: tails the configured files into the Kafka output, then
/// flushes (bounded by `shutdown_timeout`) and writes the registry.
pub async fn run(config: AgentConfig, shutdown: CancellationToken) -> Result<()> {
    config.validate()?;
    if let Some((i, _)) = config.inputs.iter().enumerate().find(|(_, i)| i.kind != config::InputType::File) {
        return Err(Error::Config(format!(
            "agent.inputs[{i}].type: only \"file\" inputs are implemented in this version"
        )));
    }
    let (acks_tx, acks_rx) = std::sync::mpsc::channel();
    let sink = kafka::KafkaSink::new(&config.output, config.queue_max_bytes, acks_tx)?;
    let tailer = Tailer::new(&config, sink, acks_rx)?;
    tracing::info!(
        brokers = %config.output.brokers.join(","),
        registry = %config.registry.display(),
        inputs = config.inputs.len(),
        "agent started"
    );
    tokio::task::spawn_blocking(move || tailer.run(&shutdown))
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?
}
