//! The logpipe agent: Filebeat-grade `tail -F` shipping of log files into Kafka (the embedded broker or
//! any Kafka cluster), with no loss across rotation, truncation, restarts and broker outages. Also reads
//! a command's stdout (`exec`, like Flume's exec source) and its own stdin.
//!
//! - [`config`]: the `[agent]` section ([`AgentConfig`]).
//! - [`identity`]: file identity (fingerprint of the first KiB, or device+inode while smaller) and `event.id`.
//! - [`line_reader`]: splitting bytes into lines with a hard length cap.
//! - [`multiline`]: Filebeat's multiline joining.
//! - [`envelope`]: the JSON event envelope (written by `json`, escaping eight bytes at a time).
//! - [`registry`]: the on-disk registry and contiguous acknowledgement tracking.
//! - [`sink`]: where events go ([`Sink`]); [`kafka`] is the real one.
//! - [`tailer`]: the file server that ties it together.
//! - [`stream`]: `exec` and `stdin` inputs on the tailer side; [`exec`]: running the command.
//! - [`snapshot`]: what the agent publishes about itself, and its Prometheus families.

pub mod config;
pub mod envelope;
mod error;
pub mod exec;
pub mod identity;
mod json;
pub mod kafka;
pub mod line_reader;
pub mod multiline;
pub mod registry;
pub mod sink;
pub mod snapshot;
pub mod stalls;
pub mod stream;
pub mod tailer;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

pub use config::AgentConfig;
pub use error::{Error, Result};
pub use sink::{Ack, Record, Sink};
pub use tailer::Tailer;
#[cfg(any(test, feature = "testkit"))]
pub use testkit::MemorySink;

use config::InputType;
use logpipe_config::Valid;
use tokio_util::sync::CancellationToken;

/// Runs the agent until `shutdown` is cancelled: tails the configured inputs into the Kafka output, then
/// flushes (bounded by `shutdown_timeout`) and writes the registry. With only `stdin` inputs it also
/// returns, after the same flush, once stdin reached its end.
pub async fn run(config: Valid<AgentConfig>, shutdown: CancellationToken) -> Result<()> {
    run_reporting(config, shutdown, None).await
}

/// [`run`], also publishing the agent's status into `status` (refreshed every 200 ms), which the
/// appliance's admin endpoint reads.
pub async fn run_reporting(
    config: Valid<AgentConfig>,
    shutdown: CancellationToken,
    status: Option<snapshot::SharedSnapshot>,
) -> Result<()> {
    let (acks_tx, acks_rx) = std::sync::mpsc::channel();
    let sink = kafka::KafkaSink::new(&config.output, config.queue_max_bytes(), acks_tx)?;
    let mut tailer = Tailer::new(&config, sink, acks_rx)?;
    // Children and servers stop with the agent, including when it stops by itself (stdin at EOF).
    let stop = shutdown.child_token();
    for (i, input) in config.inputs.iter().enumerate() {
        match input.kind {
            InputType::File => {}
            InputType::Exec => {
                let command = input.command.clone().unwrap_or_default();
                tailer.add_stream(&config, i, exec::spawn(command, stop.clone()))?;
            }
            InputType::Stdin => tailer.add_stream(&config, i, stream::read_to_end(std::io::stdin()))?,
        }
    }
    let status = status.or_else(|| config.metrics_address.as_ref().map(|_| snapshot::SharedSnapshot::default()));
    if let Some(status) = &status {
        tailer.publish_to(status.clone());
    }
    if let (Some(address), Some(status)) = (&config.metrics_address, status) {
        // No authentication here: off loopback the bind refuses (use the appliance's [admin] for that).
        let server = logpipe_admin::AdminServer::bind(address, logpipe_admin::Protection::default())
            .await
            .map_err(|e| Error::Config(format!("agent.metrics_address: {e}")))?;
        tracing::info!(address = %server.local_addr()?, "metrics at http://{}/metrics", server.local_addr()?);
        tokio::spawn(server.serve(snapshot::router(status), stop.clone()));
    }
    tracing::info!(
        brokers = %config.output.brokers.join(","),
        registry = %config.registry.display(),
        inputs = config.inputs.len(),
        "agent started"
    );
    // A thread of its own, named, so that `top -H` and profiles tell the tailer from the runtime's workers.
    let tailer_stop = stop.clone();
    let (finished, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name("logpipe-tailer".into()).spawn(move || {
        let _ = finished.send(tailer.run(&tailer_stop));
    })?;
    // The tailer's thread drops `finished` unsent only if it panicked.
    let result = result.await.map_err(|_| Error::Io(std::io::Error::other("the tailer's thread panicked")));
    stop.cancel();
    result?
}
