//! The run loop around a [`Generator`] and the two log files: pacing, the `--lines` and `--duration`
//! limits, rotation (by rename on a schedule, and one copytruncate at a given line), and shutdown.
//!
//! Time is tokio's clock, so tests run the loop with paused time and get exact line counts per tick
//! without sleeping. File writes are plain blocking writes inside the task: they are small, go to the
//! page cache, and the generator is the only work on its runtime apart from the signal listener.

use std::path::Path;
use std::time::Duration;

use tokio::time::{self, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::args::GenArgs;
use crate::error::{Error, Result};
use crate::generator::{Generator, Kind};
use crate::log_file::LogFile;
use crate::summary::Summary;

/// Lines are written in a burst this often: smooth at the scale a tailer polls at, and cheap.
const TICK: Duration = Duration::from_millis(10);

/// Lines per burst at `--rate 0`, between checks for shutdown, the limits and rotation.
const FLAT_OUT_BATCH: u64 = 4096;

/// Writes nginx logs into `args.dir` until `--lines`, `--duration` or `shutdown`, and returns what it
/// wrote. Every line handed to a file is flushed before this returns, also on shutdown.
pub async fn generate(args: &GenArgs, shutdown: CancellationToken) -> Result<Summary> {
    let mut logs = NginxLogs::open(args)?;
    let start = Instant::now();
    let limit = args.lines.unwrap_or(u64::MAX);
    let mut rotation = args.rotation_interval().map(|every| Rotation { every, next: start + every });
    let mut copytruncate = args.copytruncate_at;
    if args.rate == 0 {
        loop {
            let done = logs.summary.total >= limit || args.duration.is_some_and(|d| start.elapsed() >= d);
            if done || shutdown.is_cancelled() {
                break;
            }
            let stop = copytruncate.map_or(limit, |at| at.max(logs.summary.total).min(limit));
            logs.write(FLAT_OUT_BATCH.min(stop - logs.summary.total))?;
            logs.flush()?;
            copytruncate_if_due(&mut copytruncate, &mut logs)?;
            if let Some(rotation) = &mut rotation {
                rotation.rotate_if_due(&mut logs, Instant::now())?;
            }
            // Lets the signal listener (and, in tests, the test) run between bursts.
            tokio::task::yield_now().await;
        }
    } else {
        let mut ticks = time::interval(TICK);
        // The number of lines due is computed from the elapsed time, so late ticks catch up anyway.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                _ = ticks.tick() => {}
            }
            let now = Instant::now();
            let elapsed = now - start;
            let paced = args.duration.map_or(elapsed, |d| elapsed.min(d));
            let due = lines_due(args.rate, paced).min(limit);
            // Up to the copytruncate line, rotate, then the rest of what is due: the rotation falls
            // exactly after that line, as between two of a real program's writes.
            if let Some(at) = copytruncate.filter(|&at| at < due) {
                logs.write(at.saturating_sub(logs.summary.total))?;
                logs.flush()?;
                copytruncate_if_due(&mut copytruncate, &mut logs)?;
            }
            logs.write(due.saturating_sub(logs.summary.total))?;
            logs.flush()?;
            copytruncate_if_due(&mut copytruncate, &mut logs)?;
            if let Some(rotation) = &mut rotation {
                rotation.rotate_if_due(&mut logs, now)?;
            }
            if logs.summary.total >= limit || args.duration.is_some_and(|d| elapsed >= d) {
                break;
            }
        }
    }
    logs.flush()?;
    Ok(logs.summary)
}

/// Performs the pending copytruncate rotation once its line has been written (and flushed), then clears
/// it: there is only one.
fn copytruncate_if_due(pending: &mut Option<u64>, logs: &mut NginxLogs) -> Result<()> {
    if pending.is_some_and(|at| logs.summary.total >= at) {
        *pending = None;
        logs.copy_truncate()?;
    }
    Ok(())
}

/// Lines a steady `rate` per second has produced after `elapsed`.
fn lines_due(rate: u64, elapsed: Duration) -> u64 {
    u64::try_from(u128::from(rate) * elapsed.as_nanos() / 1_000_000_000).unwrap_or(u64::MAX)
}

/// `access.log` and `error.log` in one directory, fed by one generator.
struct NginxLogs {
    generator: Generator,
    access: LogFile,
    error: LogFile,
    keep: u32,
    summary: Summary,
}

impl NginxLogs {
    fn open(args: &GenArgs) -> Result<Self> {
        std::fs::create_dir_all(&args.dir).map_err(|source| Error::CreateDir { path: args.dir.clone(), source })?;
        let dir: &Path = &args.dir;
        Ok(NginxLogs {
            generator: Generator::new(args.seed.unwrap_or_else(rand::random), args.clock(), args.error_ratio),
            access: LogFile::open(dir.join("access.log"))?,
            error: LogFile::open(dir.join("error.log"))?,
            keep: args.keep,
            summary: Summary::default(),
        })
    }

    fn write(&mut self, lines: u64) -> Result<()> {
        for _ in 0..lines {
            let line = self.generator.next_line();
            match line.kind {
                Kind::Access => self.access.append(&line.text)?,
                Kind::Error => self.error.append(&line.text)?,
            }
            self.summary.record(&line);
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.access.flush()?;
        self.error.flush()
    }

    fn rotate(&mut self) -> Result<()> {
        self.access.rotate(self.keep)?;
        self.error.rotate(self.keep)
    }

    fn copy_truncate(&mut self) -> Result<()> {
        self.access.copy_truncate(self.keep)?;
        self.error.copy_truncate(self.keep)
    }
}

/// When the logs rotate next.
struct Rotation {
    every: Duration,
    next: Instant,
}

impl Rotation {
    fn rotate_if_due(&mut self, logs: &mut NginxLogs, now: Instant) -> Result<()> {
        if now < self.next {
            return Ok(());
        }
        logs.rotate()?;
        // After a stall, rotate once and resume the schedule rather than rotating in a burst.
        self.next += self.every;
        if self.next <= now {
            self.next = now + self.every;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fs;
    use std::path::PathBuf;

    use regex::Regex;

    use super::*;

    /// Every line in `dir`, rotations included: (seq, kind, daily index date).
    fn read_back(dir: &Path) -> Vec<(u64, Kind, String)> {
        let access = Regex::new(r#" \[(\d{2})/(\w{3})/(\d{4}):.*[?&]rid=(\d+) HTTP"#).unwrap();
        let error = Regex::new(r"^(\d{4})/(\d{2})/(\d{2}) .*?: \*(\d+) ").unwrap();
        let month = |name: &str| {
            let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
            months.iter().position(|m| *m == name).unwrap() + 1
        };
        let mut lines = Vec::new();
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            for text in fs::read_to_string(&path).unwrap().lines() {
                if name.starts_with("access.log") {
                    let c = access.captures(text).unwrap_or_else(|| panic!("{name}: {text}"));
                    let day = format!("{}.{:02}.{}", &c[3], month(&c[2]), &c[1]);
                    lines.push((c[4].parse().unwrap(), Kind::Access, day));
                } else if name.starts_with("error.log") {
                    let c = error.captures(text).unwrap_or_else(|| panic!("{name}: {text}"));
                    lines.push((c[4].parse().unwrap(), Kind::Error, format!("{}.{}.{}", &c[1], &c[2], &c[3])));
                } else {
                    panic!("unexpected file {name}");
                }
            }
        }
        lines.sort_by_key(|(seq, ..)| *seq);
        lines
    }

    /// Checks that the files hold exactly the lines the summary counts, each once.
    fn assert_files_match(dir: &Path, summary: &Summary) {
        let lines = read_back(dir);
        let seqs: Vec<u64> = lines.iter().map(|(seq, ..)| *seq).collect();
        assert_eq!(seqs, (1..=summary.total).collect::<Vec<_>>(), "every seq exactly once");
        assert_eq!(summary.last_seq, summary.total);
        let mut per_day = [BTreeMap::<String, u64>::new(), BTreeMap::new()];
        for (_, kind, day) in lines {
            *per_day[usize::from(kind == Kind::Error)].entry(day).or_default() += 1;
        }
        let [access, error] = per_day;
        assert_eq!(summary.access, access.values().sum::<u64>());
        assert_eq!(summary.error, error.values().sum::<u64>());
        assert_eq!((&summary.per_day.access, &summary.per_day.error), (&access, &error));
    }

    fn args(dir: &Path) -> GenArgs {
        GenArgs { seed: Some(1), ..GenArgs::new(dir) }
    }

    #[tokio::test]
    async fn lines_stops_exactly() {
        let dir = tempfile::tempdir().unwrap();
        for lines in [0, 1, 4096, 12_345] {
            let out = dir.path().join(lines.to_string());
            let args = GenArgs { rate: 0, lines: Some(lines), error_ratio: 0.1, ..args(&out) };
            let summary = generate(&args, CancellationToken::new()).await.unwrap();
            assert_eq!(summary.total, lines);
            assert!(lines < 1000 || summary.error > 0);
            assert_files_match(&out, &summary);
        }
    }

    #[tokio::test]
    async fn start_and_step_give_per_day_counts() {
        let dir = tempfile::tempdir().unwrap();
        let args = GenArgs {
            rate: 0,
            lines: Some(10_000),
            start: Some("2026-11-20T23:59:00Z".parse().unwrap()),
            step_ms: Some(10),
            ..args(dir.path())
        };
        let summary = generate(&args, CancellationToken::new()).await.unwrap();
        let day =
            |day: &str| summary.per_day.access.get(day).unwrap_or(&0) + summary.per_day.error.get(day).unwrap_or(&0);
        // One minute at 10 ms per line before midnight, the rest after.
        assert_eq!((day("2026.11.20"), day("2026.11.21")), (6000, 4000));
        assert_eq!(summary.per_day.access.len(), 2);
        assert_files_match(dir.path(), &summary);
    }

    #[tokio::test(start_paused = true)]
    async fn rotation_keeps_every_line() {
        let dir = tempfile::tempdir().unwrap();
        let args = GenArgs {
            rate: 1000,
            rotate_every: Some(Duration::from_secs(1)),
            duration: Some(Duration::from_millis(3500)),
            keep: 10,
            ..args(dir.path())
        };
        let summary = generate(&args, CancellationToken::new()).await.unwrap();
        assert_eq!(summary.total, 3500);
        let mut names: Vec<String> =
            fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "access.log",
                "access.log.1",
                "access.log.2",
                "access.log.3",
                "error.log",
                "error.log.1",
                "error.log.2",
                "error.log.3"
            ]
        );
        assert_files_match(dir.path(), &summary);
        // The first second's lines are in the oldest rotation.
        let oldest = fs::read_to_string(dir.path().join("access.log.3")).unwrap()
            + &fs::read_to_string(dir.path().join("error.log.3")).unwrap();
        assert_eq!(oldest.lines().count(), 1000);
    }

    /// The numbered files' contents, oldest first, then the live file: (seq of the first line, line count).
    fn seq_ranges(dir: &Path, name: &str) -> Vec<(u64, usize)> {
        let rid = Regex::new(r"[?&]rid=(\d+) ").unwrap();
        let mut files: Vec<PathBuf> =
            (1..10).map(|i| crate::log_file::numbered(&dir.join(name), i)).filter(|p| p.exists()).collect();
        files.reverse();
        files.push(dir.join(name));
        files
            .iter()
            .map(|path| {
                let text = fs::read_to_string(path).unwrap();
                let first = text.lines().next().map_or(0, |l| rid.captures(l).unwrap()[1].parse().unwrap());
                (first, text.lines().count())
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn copytruncate_rotates_once_right_after_its_line() {
        for rate in [0, 1000] {
            let dir = tempfile::tempdir().unwrap();
            // All access lines, so the split is exact: lines 1..=2500 in the copy, the rest in the live file.
            let args =
                GenArgs { rate, lines: Some(4000), copytruncate_at: Some(2500), error_ratio: 0.0, ..args(dir.path()) };
            let summary = generate(&args, CancellationToken::new()).await.unwrap();
            assert_eq!(summary.total, 4000);
            assert_files_match(dir.path(), &summary);
            assert_eq!(seq_ranges(dir.path(), "access.log"), [(1, 2500), (2501, 1500)], "rate {rate}");
            // error.log was rotated too (empty here): a copy exists beside it.
            assert!(dir.path().join("error.log.1").exists());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn copytruncate_and_rename_rotation_together_keep_every_line() {
        let dir = tempfile::tempdir().unwrap();
        let args = GenArgs {
            rate: 1000,
            rotate_every: Some(Duration::from_secs(1)),
            copytruncate_at: Some(1700),
            duration: Some(Duration::from_millis(3500)),
            error_ratio: 0.0,
            keep: 10,
            ..args(dir.path())
        };
        let summary = generate(&args, CancellationToken::new()).await.unwrap();
        assert_eq!(summary.total, 3500);
        assert_files_match(dir.path(), &summary);
        // Renames at 1 s, 2 s and 3 s; the copytruncate after line 1700, in the second second.
        assert_eq!(
            seq_ranges(dir.path(), "access.log"),
            [(1, 1000), (1001, 700), (1701, 300), (2001, 1000), (3001, 500)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn rate_is_paced_in_small_bursts_until_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let args = GenArgs { rate: 1000, ..args(dir.path()) };
        let shutdown = CancellationToken::new();
        let run = tokio::spawn({
            let (args, shutdown) = (args.clone(), shutdown.clone());
            async move { generate(&args, shutdown).await }
        });
        // Virtual time: the generator has had its ticks up to 500 ms, and flushed each one.
        time::sleep(Duration::from_millis(505)).await;
        assert_eq!(read_back(dir.path()).len(), 500);
        time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(read_back(dir.path()).len(), 1500);
        shutdown.cancel();
        let summary = run.await.unwrap().unwrap();
        assert_eq!(summary.total, 1500);
        assert_files_match(dir.path(), &summary);
    }

    #[tokio::test(start_paused = true)]
    async fn duration_gives_rate_times_seconds() {
        let dir = tempfile::tempdir().unwrap();
        let args = GenArgs { rate: 333, duration: Some(Duration::from_secs(3)), ..args(dir.path()) };
        let summary = generate(&args, CancellationToken::new()).await.unwrap();
        assert_eq!(summary.total, 999);
        assert_files_match(dir.path(), &summary);
    }

    #[tokio::test]
    async fn shutdown_stops_a_flat_out_run_with_everything_flushed() {
        let dir = tempfile::tempdir().unwrap();
        let args = GenArgs { rate: 0, ..args(dir.path()) };
        let shutdown = CancellationToken::new();
        let run = tokio::spawn({
            let (args, shutdown) = (args.clone(), shutdown.clone());
            async move { generate(&args, shutdown).await }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while fs::metadata(dir.path().join("access.log")).map_or(0, |m| m.len()) == 0 {
            assert!(std::time::Instant::now() < deadline, "nothing written");
            tokio::task::yield_now().await;
        }
        shutdown.cancel();
        let summary = run.await.unwrap().unwrap();
        assert!(summary.total > 0);
        assert_files_match(dir.path(), &summary);
    }

    #[tokio::test]
    async fn wall_clock_lines_are_dated_today() {
        let dir = tempfile::tempdir().unwrap();
        let before = chrono::Utc::now().format("%Y.%m.%d").to_string();
        let args = GenArgs { rate: 0, lines: Some(100), error_ratio: 0.0, ..args(dir.path()) };
        let summary = generate(&args, CancellationToken::new()).await.unwrap();
        let after = chrono::Utc::now().format("%Y.%m.%d").to_string();
        assert!(summary.per_day.access.keys().all(|day| *day == before || *day == after));
        assert_files_match(dir.path(), &summary);
    }
}
