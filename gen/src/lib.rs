//! Test log generators for logpipe: `logpipe gen nginx` writes a realistic nginx `access.log` (the
//! `combined` format) and `error.log` into a directory at a steady rate, rotating them like logrotate,
//! and prints a JSON summary of what it wrote so end-to-end tests can compare it with what arrived in
//! Kafka and in the Elasticsearch daily indices.
//!
//! Every line carries a sequence number shared by both files (`rid=<seq>` in the access log's query
//! string, the `*<seq>` connection number in the error log), so a test can check that each line arrived
//! exactly once. With `--start` and `--step-ms` time stamps are deterministic, so a test can spread lines
//! over two days and know how many belong to each daily index.
//!
//! The binary nests [`GenCommand`] under its own `gen` subcommand and calls [`run`]:
//!
//! ```text
//! logpipe gen nginx --dir /tmp/nginx --rate 1000 --rotate-every 60 --duration 300
//! ```
//!
//! Rotation is by rename on a schedule (`--rotate-every`), and optionally once by copytruncate after a
//! given line (`--copytruncate-at`), done by the generator itself between two writes.

mod args;
mod combined;
mod driver;
mod error;
mod error_log;
mod generator;
mod log_file;
mod summary;
mod vocabulary;

pub use args::GenArgs;
pub use driver::generate;
pub use error::{Error, Result};
pub use generator::{Clock, Generator, Kind, Line};
pub use log_file::LogFile;
pub use summary::{PerDay, Summary};

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// What to generate. The binary nests this enum under `logpipe gen`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum GenCommand {
    /// Write nginx access.log (combined format) and error.log into a directory at a steady rate.
    ///
    /// At exit (after --lines, after --duration, or on SIGINT/SIGTERM) prints one line of JSON:
    /// {"access":N,"error":M,"total":N+M,"last_seq":S,"per_day":{"access":{"2026.11.20":n,...},"error":{...}}}
    Nginx(GenArgs),
}

/// Runs a generator until its limit or until SIGINT/SIGTERM, then writes the summary to `--summary`
/// (if given) and prints it as one line of JSON on stdout.
pub async fn run(command: GenCommand) -> Result<Summary> {
    let GenCommand::Nginx(args) = command;
    let shutdown = CancellationToken::new();
    let (mut term, mut int) = (
        signal(SignalKind::terminate()).map_err(Error::Signal)?,
        signal(SignalKind::interrupt()).map_err(Error::Signal)?,
    );
    let on_signal = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
            shutdown.cancel();
        })
    };
    let summary = generate(&args, shutdown).await;
    on_signal.abort();
    let summary = summary?;
    if let Some(path) = &args.summary {
        summary.write_to(path)?;
    }
    println!("{}", summary.to_json());
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    /// Mirrors how the binary embeds the generator: `Gen(GenCommand)` next to its own subcommands.
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Command {
        Status,
        #[command(subcommand)]
        Gen(GenCommand),
    }

    fn parse(args: &[&str]) -> Result<GenArgs, clap::Error> {
        let argv = ["logpipe", "gen", "nginx"].iter().chain(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Gen(GenCommand::Nginx(args)) => Ok(args),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn command_tree_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let args = parse(&["--dir", "/tmp/x"]).unwrap();
        assert_eq!(args.dir, std::path::Path::new("/tmp/x"));
        assert_eq!(args.rate, 1000);
        assert_eq!(args.error_ratio, 0.05);
        assert_eq!(args.keep, 5);
        assert_eq!((args.lines, args.duration, args.rotate_every, args.copytruncate_at), (None, None, None, None));
        assert!(matches!(args.clock(), Clock::Wall));
        assert!(matches!(Cli::try_parse_from(["logpipe", "status"]).unwrap().command, Command::Status));
    }

    #[test]
    fn every_flag() {
        let args = parse(&[
            "--dir",
            "d",
            "--rate",
            "0",
            "--rotate-every",
            "1.5",
            "--copytruncate-at",
            "5",
            "--lines",
            "10",
            "--duration",
            "2",
            "--error-ratio",
            "0.25",
            "--start",
            "2026-11-20T23:59:00Z",
            "--step-ms",
            "10",
            "--seed",
            "7",
            "--keep",
            "3",
            "--summary",
            "s.json",
        ])
        .unwrap();
        assert_eq!(args.rate, 0);
        assert_eq!(args.rotate_every, Some(std::time::Duration::from_millis(1500)));
        assert_eq!(args.lines, Some(10));
        assert_eq!(args.copytruncate_at, Some(5));
        assert_eq!(args.duration, Some(std::time::Duration::from_secs(2)));
        assert_eq!(args.error_ratio, 0.25);
        assert_eq!(args.seed, Some(7));
        assert_eq!(args.keep, 3);
        assert_eq!(args.summary.as_deref(), Some(std::path::Path::new("s.json")));
        let Clock::Fixed { start, step } = args.clock() else { panic!("expected a fixed clock") };
        assert_eq!(start.to_rfc3339(), "2026-11-20T23:59:00+00:00");
        assert_eq!(step, chrono::TimeDelta::milliseconds(10));
        // --rotate-every 0 means never.
        assert_eq!(parse(&["--dir", "d", "--rotate-every", "0"]).unwrap().rotation_interval(), None);
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in [
            &["--rate", "10"][..],
            &["--dir", "d", "--step-ms", "10"],
            &["--dir", "d", "--keep", "0"],
            &["--dir", "d", "--error-ratio", "1.5"],
            &["--dir", "d", "--error-ratio", "NaN"],
            &["--dir", "d", "--duration", "-1"],
            &["--dir", "d", "--start", "yesterday"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
