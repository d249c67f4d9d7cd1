//! The appliance: running the parts of a pipeline in one process, in dependency order, with the admin
//! endpoint beside them, and stopping them in reverse on a signal.

use std::io::Write;

use anyhow::{Context, Result};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use logpipe_agent::snapshot::SharedSnapshot;
use logpipe_broker::Server;
use logpipe_status::{About, AdminConfig, AdminServer, PartAbout, Sources};

use crate::pipeline::Pipeline;

/// Starts the parts in dependency order (broker, indexer, agent) and stops them in reverse: the agent
/// flushes and writes its registry while the broker is still there to acknowledge, and the indexer
/// finishes its bulk requests and commits before the broker goes. A part that stops by itself (the
/// agent at the end of stdin, the indexer on an error) stops the others the same way.
pub async fn run_pipeline(pipeline: Pipeline) -> Result<()> {
    if pipeline.broker.is_none() && pipeline.agent.is_none() && pipeline.indexer.is_none() {
        anyhow::bail!("the pipeline has no [broker], [agent] or [indexer] section: nothing to run");
    }
    // The admin port is bound first, so a configured port that is taken fails before anything starts.
    let admin = bind_admin(pipeline.admin.unwrap_or_default()).await?;
    let stop = CancellationToken::new();
    tokio::spawn(stop_on_signal(stop.clone()));
    let mut about = About {
        version: env!("LOGPIPE_VERSION").to_owned(),
        pipeline: pipeline.path.as_ref().map(|p| p.canonicalize().unwrap_or_else(|_| p.clone()).display().to_string()),
        ..About::default()
    };
    let broker_stop = CancellationToken::new();
    let mut broker_address = None;
    let broker = match pipeline.broker {
        Some(config) => {
            let log_dirs = config.log_dirs.clone();
            let server = Server::bind(config)
                .await
                .with_context(|| format!("cannot start the broker on {}", log_dirs.display()))?;
            // Scripts and tests read the bound address (port 0 picks one) from this first line of stdout.
            for addr in server.local_addrs() {
                println!("listening on {addr}");
            }
            about.parts.push(PartAbout::broker(&log_dirs, &server.local_addrs()));
            broker_address = server.local_addrs().first().map(|a| a.to_string());
            std::io::stdout().flush()?;
            let broker = server.broker().clone();
            Some((tokio::spawn(server.run(broker_stop.clone())), broker))
        }
        None => None,
    };
    about.parts.extend(pipeline.indexer.as_ref().map(|i| PartAbout::indexer(i.config())));
    about.parts.extend(pipeline.agent.as_deref().map(PartAbout::agent));
    about.admin = admin.as_ref().and_then(|server| server.local_addr().ok()).map(|a| a.to_string());
    let mut sources = Sources { broker: broker.as_ref().map(|(_, b)| b.clone()), about, ..Sources::default() };
    let indexer = pipeline.indexer;
    sources.indexer = indexer.as_ref().map(|i| i.stats());
    sources.agent = pipeline.agent.as_ref().map(|_| SharedSnapshot::default());
    let admin_stop = CancellationToken::new();
    if let Some(server) = admin {
        println!("admin on http://{}", server.local_addr()?);
        std::io::stdout().flush()?;
        // The web console at `/` beside `/status` and `/metrics`.
        let console = logpipe_web::Console::for_appliance(sources.clone(), broker_address, indexer.as_ref())
            .map_err(|e| anyhow::anyhow!("the web console: {e}"))?;
        let routes = logpipe_status::router(sources.clone()).merge(logpipe_web::router(console, admin_stop.clone()));
        tokio::spawn(server.serve(routes, admin_stop.clone()));
    }

    if let (Some(indexer), Some(agent)) = (&indexer, &pipeline.agent) {
        // "latest" means from this pipeline's first start, not from when the group forms.
        let written: Vec<String> = std::iter::once(&agent.output.topic)
            .chain(agent.inputs.iter().filter_map(|input| input.topic.as_ref()))
            .cloned()
            .collect();
        for (topic, partition, offset) in indexer.pin_latest_start(&written).await? {
            tracing::info!(topic, partition, offset, "new group starts at the end as the pipeline starts");
        }
    }
    let indexer_stop = CancellationToken::new();
    let indexer = match indexer {
        Some(indexer) => {
            let (stop, done) = (stop.clone(), indexer_stop.clone());
            Some(tokio::spawn(async move {
                let result = indexer.run(done).await;
                stop.cancel();
                result
            }))
        }
        None => None,
    };
    let agent_stop = CancellationToken::new();
    let agent = pipeline.agent.map(|config| {
        let (stop, done, status) = (stop.clone(), agent_stop.clone(), sources.agent.clone());
        tokio::spawn(async move {
            let result = logpipe_agent::run_reporting(config, done, status).await;
            stop.cancel();
            result
        })
    });
    stop.cancelled().await;

    let mut first_error: Option<anyhow::Error> = None;
    agent_stop.cancel();
    join(agent, "agent", &mut first_error).await;
    indexer_stop.cancel();
    join(indexer, "indexer", &mut first_error).await;
    broker_stop.cancel();
    join(broker.map(|(task, _)| task), "broker", &mut first_error).await;
    admin_stop.cancel();
    first_error.map_or(Ok(()), Err)
}

/// Waits for a part's task and keeps the first error.
async fn join<E>(task: Option<JoinHandle<Result<(), E>>>, part: &str, first_error: &mut Option<anyhow::Error>)
where
    E: std::error::Error + Send + Sync + 'static,
{
    let Some(task) = task else { return };
    let result = match task.await {
        Ok(result) => result.with_context(|| format!("the {part} stopped")),
        Err(e) => Err(e).with_context(|| format!("the {part} task failed")),
    };
    if let Err(e) = result {
        first_error.get_or_insert(e);
    }
}

/// Binds the admin endpoint; its address is printed on stdout (`admin on http://ADDR`) after the broker's.
/// A configured address (`[admin] address`, or `LOGPIPE_ADMIN__ADDRESS`) that cannot be bound is an
/// error naming the key; the default one (taken, say, by a second appliance on the host) only logs a
/// warning saying how to get an endpoint.
async fn bind_admin(config: AdminConfig) -> Result<Option<AdminServer>> {
    if !config.enabled {
        return Ok(None);
    }
    let protection = config.protection().map_err(|e| anyhow::anyhow!(e))?;
    match AdminServer::bind(config.address(), protection).await {
        Ok(server) => Ok(Some(server)),
        Err(e @ logpipe_status::BindError::Io { .. }) if config.address.is_none() => {
            tracing::warn!(
                "admin endpoint off: cannot listen on the default {} ({e}); `logpipe status` will not reach \
                 this process: set [admin] address to a free port (or enabled = false to silence this)",
                config.address()
            );
            Ok(None)
        }
        Err(e) => Err(anyhow::anyhow!("admin.address: {e}")),
    }
}

/// The first SIGINT/SIGTERM starts a clean shutdown; a second one exits at once, which is safe because
/// recovery handles an unclean stop. A signal within a second of the first counts as the same request
/// (a terminal's Ctrl-C reaches both a wrapper script and its child, and the script forwards it).
async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    let first = std::time::Instant::now();
    tracing::info!("stopping; send the signal again to exit at once");
    shutdown.cancel();
    loop {
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        if first.elapsed() >= std::time::Duration::from_secs(1) {
            std::process::exit(130);
        }
    }
}
