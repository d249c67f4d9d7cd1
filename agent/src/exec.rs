//! The `exec` input, like Flume's exec source: runs `sh -c COMMAND` (e.g. `tail -F /var/log/app.log`),
//! turns its stdout into events through [`crate::stream`], and restarts it with capped exponential
//! backoff (1 s → 30 s) whenever it exits. Its stderr goes to the agent's log, line by line.
//!
//! # What exec cannot guarantee
//!
//! There is no offset: the agent only sees a pipe. Whatever the command printed but the agent had not
//! yet read when the command or the agent stopped is gone, and after a restart the command itself decides
//! what is read again: `tail -F -n 0 FILE` skips everything written while it was not running, and
//! `tail -n +1 -F FILE` sends the whole file again (duplicates with new `event.id`s, since ids come from
//! a per-run random id and the line's sequence number in that run). Acknowledgements gate nothing
//! persistent. For no loss and no duplicates across restarts, use a `file` input, which keeps a registry.
//!
//! # Process handling
//!
//! The child is the leader of its own process group, so on shutdown the whole pipeline a shell command
//! started (`tail -F x | grep y`) is sent SIGTERM, then SIGKILL after [`KILL_GRACE`]. If the agent itself
//! is killed with SIGKILL the child outlives it until its next write to the closed pipe (SIGPIPE).
//! Stdin of the child is `/dev/null`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use rustix::process::{kill_process_group, Pid, Signal};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::line_reader::LineReader;
use crate::stream::{StreamMsg, StreamReceiver, CHANNEL_MESSAGES, READ_CHUNK};

/// First restart delay; doubled after every run that ended sooner than [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// Longest restart delay. A run that lasted at least this long restarts after [`MIN_BACKOFF`].
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Between SIGTERM and SIGKILL on shutdown.
pub const KILL_GRACE: Duration = Duration::from_secs(2);
/// Longest stderr line logged; the rest of the line is dropped (it is diagnostics, not data).
const STDERR_LINE_MAX: usize = 4096;

/// Starts supervising `command` on the current tokio runtime until `shutdown` is cancelled. The returned
/// receiver is handed to the tailer ([`crate::Tailer::add_stream`]).
pub fn spawn(command: String, shutdown: CancellationToken) -> StreamReceiver {
    let (tx, rx) = mpsc::channel(CHANNEL_MESSAGES);
    tokio::spawn(supervise(command, tx, shutdown));
    rx
}

/// The next restart delay after a run of `ran`, given the previous delay.
pub fn next_backoff(previous: Option<Duration>, ran: Duration) -> Duration {
    match previous {
        _ if ran >= MAX_BACKOFF => MIN_BACKOFF,
        None => MIN_BACKOFF,
        Some(d) => (d * 2).min(MAX_BACKOFF),
    }
}

async fn supervise(command: String, tx: mpsc::Sender<StreamMsg>, shutdown: CancellationToken) {
    let mut backoff: Option<Duration> = None;
    // Logged once per change between "running" and "failing", not on every restart of a crash loop.
    let mut failing = false;
    loop {
        let started = Instant::now();
        let outcome = match spawn_child(&command) {
            Ok(child) => run_once(&command, child, &tx, &shutdown, &mut failing).await,
            Err(e) => Outcome::Exited(format!("cannot start it: {e}")),
        };
        let why = match outcome {
            Outcome::Stop => return,
            Outcome::Exited(why) => why,
        };
        let delay = next_backoff(backoff, started.elapsed());
        backoff = Some(delay);
        if !failing {
            failing = true;
            tracing::warn!(
                command,
                "exec command {why}; restarting it with backoff (up to {}s)",
                MAX_BACKOFF.as_secs()
            );
        } else {
            tracing::debug!(command, ?delay, "exec command {why} again");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

enum Outcome {
    /// Shutdown, or the tailer is gone.
    Stop,
    /// The command ended by itself; the text says how.
    Exited(String),
}

fn spawn_child(command: &str) -> std::io::Result<Child> {
    Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
}

async fn run_once(
    command: &str,
    mut child: Child,
    tx: &mpsc::Sender<StreamMsg>,
    shutdown: &CancellationToken,
    failing: &mut bool,
) -> Outcome {
    let pid = child.id().and_then(|id| Pid::from_raw(id as i32));
    let mut stdout = child.stdout.take().expect("stdout is piped");
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(log_stderr(command.to_string(), stderr));
    }
    if tx.send(StreamMsg::Started { run: rand::random() }).await.is_err() {
        stop(&mut child, pid).await;
        return Outcome::Stop;
    }
    tracing::debug!(command, pid = ?pid.map(|p| p.as_raw_nonzero()), "exec command started");
    let mut buf = vec![0; READ_CHUNK];
    loop {
        let read = tokio::select! {
            _ = shutdown.cancelled() => {
                stop(&mut child, pid).await;
                return Outcome::Stop;
            }
            r = stdout.read(&mut buf) => r,
        };
        let n = match read {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(command, error = %e, "cannot read the exec command's stdout");
                break;
            }
        };
        if *failing {
            *failing = false;
            tracing::info!(command, "exec command running again");
        }
        // A full channel means the output is slow: waiting here stops reading the pipe, which in turn
        // blocks the command. Shutdown must still get through.
        tokio::select! {
            _ = shutdown.cancelled() => {
                stop(&mut child, pid).await;
                return Outcome::Stop;
            }
            sent = tx.send(StreamMsg::Data(buf[..n].to_vec())) => if sent.is_err() {
                stop(&mut child, pid).await;
                return Outcome::Stop;
            },
        }
    }
    // Stdout closed: the command exited (or closed its stdout); reap it.
    let status = tokio::select! {
        _ = shutdown.cancelled() => {
            stop(&mut child, pid).await;
            return Outcome::Stop;
        }
        s = child.wait() => s,
    };
    if tx.send(StreamMsg::Ended).await.is_err() {
        return Outcome::Stop;
    }
    // Children of the shell may still hold nothing of ours, but could linger: end the group.
    if let Some(pid) = pid {
        let _ = kill_process_group(pid, Signal::KILL);
    }
    Outcome::Exited(match status {
        Ok(s) => format!("exited ({s})"),
        Err(e) => format!("ended (wait failed: {e})"),
    })
}

/// SIGTERM to the child's process group, then SIGKILL after [`KILL_GRACE`].
async fn stop(child: &mut Child, pid: Option<Pid>) {
    if let Some(pid) = pid {
        let _ = kill_process_group(pid, Signal::TERM);
    }
    if tokio::time::timeout(KILL_GRACE, child.wait()).await.is_err() {
        if let Some(pid) = pid {
            let _ = kill_process_group(pid, Signal::KILL);
        }
        let _ = child.kill().await;
    } else if let Some(pid) = pid {
        // The shell is gone; anything it left in its group goes too.
        let _ = kill_process_group(pid, Signal::KILL);
    }
}

async fn log_stderr(command: String, mut stderr: tokio::process::ChildStderr) {
    let mut reader = LineReader::new(STDERR_LINE_MAX, 0);
    let mut buf = vec![0; 8192];
    loop {
        match stderr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => reader.feed(&buf[..n], |line| {
                tracing::warn!(command, "exec stderr: {}", String::from_utf8_lossy(line.bytes));
            }),
        }
    }
    reader.flush_partial(|line| tracing::warn!(command, "exec stderr: {}", String::from_utf8_lossy(line.bytes)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_and_resets_after_a_long_run() {
        let short = Duration::from_millis(10);
        let mut d = None;
        let mut seen = Vec::new();
        for _ in 0..8 {
            let next = next_backoff(d, short);
            seen.push(next.as_secs());
            d = Some(next);
        }
        assert_eq!(seen, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(next_backoff(d, MAX_BACKOFF), MIN_BACKOFF);
    }
}
