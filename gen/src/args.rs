//! The command line of `logpipe gen nginx`.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::generator::Clock;

/// Where, how fast, for how long, and with which time stamps to write nginx logs.
#[derive(Debug, Clone, clap::Args)]
pub struct GenArgs {
    /// Directory for access.log and error.log; created if missing. Existing files are appended to.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,

    /// Lines per second, both files together, written in bursts every 10 ms; 0 = as fast as possible.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub rate: u64,

    /// Rotate both files every this many seconds (fractions allowed) by renaming, like logrotate:
    /// access.log.(KEEP-1) is removed, access.log.i becomes access.log.(i+1), access.log becomes
    /// access.log.1, and a fresh access.log is created. Default: never (also 0).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub rotate_every: Option<Duration>,

    /// Once, right after line N (both files together), rotate both files like logrotate's
    /// `copytruncate`: numbered files shift as with --rotate-every, each live file is copied to
    /// `.1` and then truncated to 0, and writing goes on in the same file. The generator writes
    /// nothing between the copy and the truncate, so no line falls in copytruncate's window.
    /// Independent of --rotate-every. Default: never.
    #[arg(long, value_name = "N")]
    pub copytruncate_at: Option<u64>,

    /// Stop after exactly this many lines (both files together). Default: no limit.
    #[arg(long, value_name = "N")]
    pub lines: Option<u64>,

    /// Stop after this many seconds (fractions allowed). With --rate N, exactly N × SECONDS lines.
    /// Default: no limit. Without --lines and --duration the generator runs until SIGINT/SIGTERM.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub duration: Option<Duration>,

    /// Share of lines that go to error.log, between 0 and 1.
    #[arg(long, value_name = "F", default_value_t = 0.05, value_parser = parse_ratio)]
    pub error_ratio: f64,

    /// Deterministic time stamps: line number i (from 0) is stamped START + i × --step-ms, whatever
    /// the wall clock says. RFC 3339, e.g. 2026-11-20T23:59:00Z. Default: the current time (UTC).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub start: Option<DateTime<Utc>>,

    /// Milliseconds between consecutive lines' time stamps with --start. Default: 10.
    #[arg(long, value_name = "MS", requires = "start")]
    pub step_ms: Option<u64>,

    /// Seed for the random choices (addresses, paths, statuses, which file). Default: a random seed.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Files kept per log when rotating, the live one included: access.log plus access.log.1 ..
    /// access.log.(KEEP-1). With 1, rotation deletes the live file and starts a fresh one.
    #[arg(long, value_name = "K", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: u32,

    /// Also write the summary JSON to this file at exit (tmp → fsync → rename).
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
}

/// The step between `--start` time stamps when `--step-ms` is not given.
const DEFAULT_STEP_MS: u64 = 10;

impl GenArgs {
    /// The arguments `logpipe gen nginx --dir DIR` gets: every other flag at its default.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        GenArgs {
            dir: dir.into(),
            rate: 1000,
            rotate_every: None,
            copytruncate_at: None,
            lines: None,
            duration: None,
            error_ratio: 0.05,
            start: None,
            step_ms: None,
            seed: None,
            keep: 5,
            summary: None,
        }
    }

    /// How often to rotate, if ever (`--rotate-every 0` means never).
    pub fn rotation_interval(&self) -> Option<Duration> {
        self.rotate_every.filter(|every| !every.is_zero())
    }

    /// Where time stamps come from.
    pub fn clock(&self) -> Clock {
        match self.start {
            None => Clock::Wall,
            Some(start) => {
                let step_ms = self.step_ms.unwrap_or(DEFAULT_STEP_MS);
                let step =
                    TimeDelta::try_milliseconds(i64::try_from(step_ms).unwrap_or(i64::MAX)).unwrap_or(TimeDelta::MAX);
                Clock::Fixed { start, step }
            }
        }
    }
}

/// Seconds as a decimal number, e.g. `2.5`.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text.parse().map_err(|_| format!("'{text}' is not a number of seconds"))?;
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("'{text}' is not a number of seconds ≥ 0"))
}

fn parse_ratio(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err(format!("'{text}' is not a ratio between 0 and 1 (e.g. 0.05)")),
    }
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|e| format!("'{text}' is not an RFC 3339 time such as 2026-11-20T23:59:00Z: {e}"))
}
