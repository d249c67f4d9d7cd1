//! The `logpipe` binary: parses the command line, loads config, and calls into the crates.

mod appliance;
mod import;
mod pipeline;
mod users;

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

use appliance::run_pipeline;
use logpipe_broker::BrokerConfig;
use logpipe_config::Valid;
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
#[command(name = "logpipe", version = env!("LOGPIPE_VERSION"), about = "Tail logs, queue them in a Kafka-protocol broker, index them")]
struct Cli {
    /// How log lines on stderr look: `text` (coloured only when stderr is a terminal) or `json`, one
    /// object per line, for journald, Docker or a log shipper.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "LOGPIPE_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run every part a pipeline file holds, in one process: broker first, then indexer, then agent.
    Run {
        /// The pipeline file (TOML or YAML).
        #[arg(required_unless_present = "from", conflicts_with = "from")]
        pipeline: Option<PathBuf>,
        /// Import these Filebeat, Logstash or Flume configs in memory (as `logpipe import`) and run the result.
        #[arg(long, value_name = "FILE")]
        from: Vec<PathBuf>,
        /// With --from: leave out what does not translate instead of refusing to run.
        #[arg(long, requires = "from")]
        bypass_errors: bool,
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
    /// Show what a running appliance runs and where, its rates, stalls, files, topics, groups and indices,
    /// refreshed every second (`q` quits); from its admin endpoint.
    Status {
        /// The admin endpoint, `host:port`.
        #[arg(long, default_value = "127.0.0.1:9600")]
        address: String,
        /// Print one snapshot and exit instead of refreshing every second.
        #[arg(long)]
        once: bool,
    },
    /// Translate filebeat.yml, Logstash pipelines (.conf files or a conf.d directory) and Flume .properties
    /// into one pipeline file, reporting what does not translate.
    Import {
        /// The source configs, in any mix.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Write the pipeline here instead of to stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Print the whole report (notes too) to stderr, or write it to a file with --report=FILE.
        #[arg(long, value_name = "FILE", num_args = 0..=1, require_equals = true, default_missing_value = "-")]
        report: Option<PathBuf>,
        /// Write the pipeline even when some items do not translate; they are left out, each named in a comment.
        #[arg(long)]
        bypass_errors: bool,
    },
    /// Manage the broker's SASL/SCRAM users (`credentials.json` under its log_dirs).
    Users(users::UsersArgs),
    /// Validate a pipeline file and exit.
    Check { pipeline: PathBuf },
    /// List or delete the daily indices a pipeline's routes write (Elasticsearch, OpenSearch or files).
    #[command(subcommand)]
    Indices(IndicesCommand),
    /// Re-index a time range of a topic into the same indices (outside the live group; idempotent).
    Replay {
        /// The pipeline file whose `[indexer]` input, filters, routes and output to use.
        #[arg(short, long)]
        config: PathBuf,
        #[arg(long)]
        topic: String,
        /// Start of the range (RFC 3339, e.g. 2026-11-20T00:00:00Z), by the records' Kafka timestamps.
        #[arg(long)]
        from: chrono::DateTime<chrono::Utc>,
        /// End of the range (exclusive); default: the end of the topic.
        #[arg(long)]
        to: Option<chrono::DateTime<chrono::Utc>>,
    },
    #[command(flatten)]
    Console(logpipe_console::ConsoleCommand),
    /// Print a shell completion script: `logpipe completions bash > /etc/bash_completion.d/logpipe`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `logpipe man > /usr/local/share/man/man1/logpipe.1`.
    Man,
}

#[derive(Subcommand)]
enum IndicesCommand {
    /// Every index the routes' templates can have made: documents, bytes and the date in its name.
    List {
        /// The pipeline file whose `[indexer]` routes and output to use.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Delete the indices whose whole period (day) ended longer ago than --older-than, judged by the
    /// date in the name, as `[indexer.retention] delete_after` does.
    Delete {
        #[arg(short, long)]
        config: PathBuf,
        /// E.g. `30d`, `12h`.
        #[arg(long, value_parser = parse_age)]
        older_than: std::time::Duration,
        /// Only print what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
}

fn parse_age(s: &str) -> Result<std::time::Duration, String> {
    logpipe_config::parse_duration(s).ok_or_else(|| format!("{s:?} is not an age such as 30d or 12h"))
}

fn main() {
    let cli = Cli::parse();
    let format = cli.log_format;
    init_logging(format);
    if let Err(e) = run(cli) {
        // The whole chain on one line, without a backtrace: errors here are for operators.
        match format {
            LogFormat::Text => eprintln!("error: {e:#}"),
            LogFormat::Json => tracing::error!("{e:#}"),
        }
        std::process::exit(1);
    }
}

/// Logs go to stderr, filtered by `LOGPIPE_LOG` (default `info`). Colour codes only when stderr is a
/// terminal: under systemd, Docker or a redirect they would land in the journal as `\x1b[32m`.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOGPIPE_LOG").unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}

/// Writes generated text to stdout; a closed pipe (`| head`) is not an error.
fn print_generated(bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(bytes) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("cannot write to stdout"),
        _ => Ok(()),
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "logpipe", &mut script);
            return print_generated(&script);
        }
        Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut page).context("cannot render the man page")?;
            return print_generated(&page);
        }
        _ => {}
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        match cli.command {
            Command::Run { pipeline: Some(pipeline), .. } => run_pipeline(Pipeline::load(&pipeline)?).await,
            Command::Run { pipeline: None, from, bypass_errors } => {
                run_pipeline(import::import_for_run(&from, bypass_errors)?).await
            }
            Command::Import { files, output, report, bypass_errors } => {
                import::import_command(&files, output.as_deref(), report.as_deref(), bypass_errors)
            }
            // A single part keeps the file's [admin] section: its endpoint is where the file says.
            Command::Agent { config } => {
                let file = Pipeline::load(&config)?;
                let agent = file.agent.context("the config file has no [agent] section")?;
                run_pipeline(Pipeline { agent: Some(agent), admin: file.admin, path: file.path, ..Pipeline::default() })
                    .await
            }
            Command::Indexer { config } => {
                let file = Pipeline::load(&config)?;
                let indexer = file.indexer.context("the config file has no [indexer] section")?;
                run_pipeline(Pipeline {
                    indexer: Some(indexer),
                    admin: file.admin,
                    path: file.path,
                    ..Pipeline::default()
                })
                .await
            }
            Command::Broker { config } => {
                let (broker, admin, path) = match config {
                    Some(path) => {
                        let file = Pipeline::load(&path)?;
                        (file.broker, file.admin, file.path)
                    }
                    None => (None, None, None),
                };
                let broker = match broker {
                    Some(broker) => broker,
                    None => Valid::new(BrokerConfig::default())?,
                };
                run_pipeline(Pipeline { broker: Some(broker), admin, path, ..Pipeline::default() }).await
            }
            Command::Gen(command) => {
                logpipe_gen::run(command).await?;
                Ok(())
            }
            Command::Status { address, once } => logpipe_status::live::watch(&address, once).await,
            Command::Check { pipeline } => {
                Pipeline::load(&pipeline)?;
                println!("{}: ok", pipeline.display());
                Ok(())
            }
            Command::Users(args) => users::run(args),
            Command::Indices(command) => indices(command).await,
            Command::Replay { config, topic, from, to } => replay(&config, &topic, from, to).await,
            Command::Console(command) => Ok(logpipe_console::run(command).await?),
            Command::Completions { .. } | Command::Man => unreachable!("handled before the runtime starts"),
        }
    })
}

async fn indices(command: IndicesCommand) -> Result<()> {
    use logpipe_indexer::retention;
    let config = match &command {
        IndicesCommand::List { config } | IndicesCommand::Delete { config, .. } => config,
    };
    let indexer = Pipeline::load(config)?.indexer.context("the config file has no [indexer] section")?;
    let (rules, outputs) = retention::open(&indexer)?;
    let now = chrono::Utc::now();
    match command {
        IndicesCommand::List { .. } => print!("{}", retention::table(&rules.list(&outputs).await?, now, None)),
        IndicesCommand::Delete { older_than, dry_run, .. } => {
            let gone = rules.delete_expired(&outputs, now, older_than, dry_run).await?;
            print!("{}", retention::table(&gone, now, Some(older_than)));
            println!("{} {} index(es)", if dry_run { "would delete" } else { "deleted" }, gone.len());
        }
    }
    Ok(())
}

async fn replay(
    config: &std::path::Path,
    topic: &str,
    from: chrono::DateTime<chrono::Utc>,
    to: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<()> {
    let indexer = Pipeline::load(config)?.indexer.context("the config file has no [indexer] section")?;
    let stop = tokio_util::sync::CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        on_signal.cancel();
    });
    let report = logpipe_indexer::replay::replay(indexer, topic, from, to, &stop).await?;
    for (partition, (start, end)) in &report.ranges {
        println!("{topic}/{partition}: offsets {start}..{end}");
    }
    for (index, n) in &report.documents {
        println!("{index}: {n} documents sent (created, or already there)");
    }
    for (id, reason) in report.refused.iter().take(10) {
        println!("refused {id}: {reason}");
    }
    println!("replayed {} records; {} refused", report.records, report.refused.len());
    if stop.is_cancelled() {
        anyhow::bail!("interrupted");
    }
    Ok(())
}
