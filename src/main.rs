//! The `logpipe` binary: parses the command line, loads config, and calls into the crates.

mod pipeline;

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use logpipe_agent::metrics::SharedSnapshot;
use logpipe_broker::{BrokerConfig, Server};
use logpipe_status::{AdminConfig, AdminServer, Sources};
use pipeline::Pipeline;

/// jemalloc, for throughput and for safety against hostile frames: the `kafka-protocol` decoder
/// reserves `Vec` capacity from array lengths read off the wire before checking them against the frame
/// (upstream kafka-protocol-rs PRs #152/#161/#200, not yet released). glibc malloc refuses such a
/// reservation and the process aborts; jemalloc maps it with MAP_NORESERVE (overcommit modes 0 and 1),
/// touches none of it, and the decoder then fails cleanly on the short frame. A test in
/// `broker/src/protocol/tests.rs` sends such a frame.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "logpipe", version, about = "Tail logs, queue them in a Kafka-protocol broker, index them")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every part a pipeline file holds, in one process: broker first, then indexer, then agent.
    Run {
        /// The pipeline file (TOML or YAML).
        pipeline: PathBuf,
    },
    /// Run the broker alone, from the `[broker]` section of a config file.
    Broker {
        /// Config file; without one the broker runs on Kafka's defaults.
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Run the agent alone (tail files into Kafka), from the `[agent]` section of a config file.
    Agent {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Run the indexer alone (Kafka to Elasticsearch), from the `[indexer]` section of a config file.
    Indexer {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Generate test logs: nginx access and error logs at a steady rate, with rotation.
    #[command(subcommand)]
    Gen(logpipe_gen::GenCommand),
    /// Show a running appliance's files, topics, groups and indices (from its admin endpoint).
    Status {
        /// The admin endpoint, `host:port`.
        #[arg(long, default_value = "127.0.0.1:9600")]
        address: String,
        /// Print one snapshot and exit instead of refreshing every second.
        #[arg(long)]
        once: bool,
    },
    /// Validate a pipeline file and exit.
    Check {
        pipeline: PathBuf,
    },
    #[command(flatten)]
    Console(logpipe_console::ConsoleCommand),
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        // The whole chain on one line, without a backtrace: errors here are for operators.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOGPIPE_LOG").unwrap_or_else(|_| "info".into()),
        )
        .init();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        match cli.command {
            Command::Run { pipeline } => run_pipeline(Pipeline::load(&pipeline)?).await,
            Command::Agent { config } => {
                let agent = Pipeline::load(&config)?.agent.context("the config file has no [agent] section")?;
                run_pipeline(Pipeline { agent: Some(agent), ..Pipeline::default() }).await
            }
            Command::Indexer { config } => {
                let indexer = Pipeline::load(&config)?.indexer.context("the config file has no [indexer] section")?;
                run_pipeline(Pipeline { indexer: Some(indexer), ..Pipeline::default() }).await
            }
            Command::Broker { config } => {
                let broker = match config {
                    Some(path) => Pipeline::load(&path)?.broker.unwrap_or_default(),
                    None => BrokerConfig::default(),
                };
                run_broker(broker).await
            }
            Command::Gen(command) => {
                logpipe_gen::run(command).await?;
                Ok(())
            }
            Command::Status { address, once } => logpipe_status::view::watch(&address, once).await,
            Command::Check { pipeline } => {
                Pipeline::load(&pipeline)?;
                println!("{}: ok", pipeline.display());
                Ok(())
            }
            Command::Console(command) => Ok(logpipe_console::run(command).await?),
        }
    })
}

async fn run_broker(config: BrokerConfig) -> Result<()> {
    run_pipeline(Pipeline { broker: Some(config), ..Pipeline::default() }).await
}

/// Starts the parts in dependency order (broker, indexer, agent) and stops them in reverse: the agent
/// flushes and writes its registry while the broker is still there to acknowledge, and the indexer
/// finishes its bulk requests and commits before the broker goes. A part that stops by itself (the
/// agent at the end of stdin, the indexer on an error) stops the others the same way.
async fn run_pipeline(pipeline: Pipeline) -> Result<()> {
    if pipeline.broker.is_none() && pipeline.agent.is_none() && pipeline.indexer.is_none() {
        anyhow::bail!("the pipeline has no [broker], [agent] or [indexer] section: nothing to run");
    }
    let stop = CancellationToken::new();
    tokio::spawn(stop_on_signal(stop.clone()));
    let broker_stop = CancellationToken::new();
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
            std::io::stdout().flush()?;
            let broker = server.broker().clone();
            Some((tokio::spawn(server.run(broker_stop.clone())), broker))
        }
        None => None,
    };
    let mut sources = Sources { broker: broker.as_ref().map(|(_, b)| b.clone()), ..Sources::default() };
    let indexer = pipeline.indexer.map(logpipe_indexer::Indexer::new).transpose()?;
    sources.indexer = indexer.as_ref().map(|i| i.stats());
    sources.agent = pipeline.agent.as_ref().map(|_| SharedSnapshot::default());
    let admin_stop = CancellationToken::new();
    serve_admin(pipeline.admin.unwrap_or_default(), sources.clone(), admin_stop.clone()).await?;

    let indexer_stop = CancellationToken::new();
    let mut indexer = match indexer {
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
    let mut agent = pipeline.agent.map(|config| {
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
    if let Some(agent) = agent.take() {
        if let Err(e) = agent.await.context("the agent task failed").and_then(|r| r.context("the agent stopped")) {
            first_error.get_or_insert(e);
        }
    }
    indexer_stop.cancel();
    if let Some(indexer) = indexer.take() {
        if let Err(e) = indexer.await.context("the indexer task failed").and_then(|r| r.context("the indexer stopped")) {
            first_error.get_or_insert(e);
        }
    }
    broker_stop.cancel();
    if let Some((broker, _)) = broker {
        if let Err(e) = broker.await.context("the broker task failed").and_then(|r| r.context("the broker stopped")) {
            first_error.get_or_insert(e);
        }
    }
    admin_stop.cancel();
    first_error.map_or(Ok(()), Err)
}

/// Starts the admin endpoint. Its address is printed on stdout (`admin on http://ADDR`) after the
/// broker's. An explicitly configured address that cannot be bound is an error; the default one (taken,
/// say, by a second appliance on the host) only logs a warning.
async fn serve_admin(config: AdminConfig, sources: Sources, stop: CancellationToken) -> Result<()> {
    if !config.enabled {
        return Ok(());
    }
    match AdminServer::bind(&config.address).await {
        Ok(server) => {
            println!("admin on http://{}", server.local_addr()?);
            std::io::stdout().flush()?;
            tokio::spawn(server.run(sources, stop));
            Ok(())
        }
        Err(e) if config.address == AdminConfig::default().address => {
            tracing::warn!("admin endpoint off: cannot listen on {}: {e}", config.address);
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("admin.address: cannot listen on {}", config.address)),
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
