//! The file server: scans globs, follows files by identity (not path) through rename rotation,
//! copytruncate and deletes, reads lines, and turns acknowledgements into registry offsets.
//!
//! One thread runs the loop (vector `file_server.rs`): acknowledgements → scan (every `scan_frequency`)
//! → read a bounded amount from the open files (acknowledgements and checkpoints also between chunks)
//! → time-based closing → checkpoint. File I/O is plain
//! blocking I/O on that thread. It is generic over the [`Sink`] so tests drive it without Kafka.
//! When idle it sleeps at most [`MAX_IDLE`]; file-system events (`watch`) end the sleep early and bring
//! scans forward. Polling alone is always correct; events only cut latency.
//!
//! Rules that keep lines from being lost:
//! - A file's offset in the registry only moves past a contiguous prefix of acknowledged events
//!   ([`AckedRanges`]); a restart resumes there and resends at most what was unacknowledged.
//! - A renamed file keeps its identity, so it is read to its end through the open handle, and after a
//!   restart a glob match under its new name resumes its recorded offset.
//! - A file that shrinks below what was read, or whose first bytes change, was truncated: it is read again
//!   from 0 as a new identity. The old identity stays known, so a copy made by copytruncate that a glob
//!   matches is resumed where reading stopped instead of being read twice or skipped.
//! - A deleted file stays open until read to its end.
//! - A new file shorter than the fingerprint whose bytes agree with the first bytes of a known file may
//!   be a copy still being written (copytruncate's `cp`). It is opened but not read until that is
//!   settled: its fingerprint then matches the known file (it is handed over as a copy), its bytes
//!   differ, or it stopped changing for `scan_frequency`. Reading it as new at once would send the
//!   copied lines a second time.
//! - On shutdown, partial lines and pending multiline events are *not* sent; the registry stays before
//!   them so the next run reads them whole.
//!
//! The [`Tailer`] is one struct; its methods are split by concern:
//! - this file: the state types, construction, the run loop and shutdown;
//! - `input`: a `file` input compiled from its config (globs, regexes, multiline);
//! - `scan`: glob discovery, identity matching, rotation, truncation and forgetting files;
//! - `harvester`: reading open files into lines and events, settling unfinished copies, and closing;
//! - `watch`: file-system events that wake the loop early;
//! - `acks`: acknowledgements into [`AckedRanges`], and writing the registry;
//! - `status`: per-file status, the metrics snapshot and the periodic summary log.

mod acks;
mod harvester;
mod input;
mod scan;
mod status;
mod watch;

pub use status::FileStatus;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use crate::config::{AgentConfig, InputType};
use crate::envelope::{Encoder, KeyField};
use crate::error::{Error, Result};
use crate::identity::{FileIdentity, Head};
use crate::registry::{AckedRanges, RegistryFile};
use crate::sink::{Ack, Sink};
use crate::snapshot::SharedSnapshot;
use crate::stream::{Out, StreamInput, StreamReceiver};

use harvester::Harvester;
use input::{compile, FileInput};

/// Bytes read per system call.
const READ_CHUNK: usize = 64 * 1024;
/// Bytes read from one file per loop turn, so one busy file cannot starve the others.
const READ_PER_TURN: usize = 1 << 20;
/// Bytes read from all files in one loop turn. With many files behind, a turn over all of them at
/// `READ_PER_TURN` each would keep scans, multiline timeouts and the summary waiting for seconds.
const PASS_BYTES: usize = 4 << 20;
/// Longest a turn keeps reading files (checked between chunks), for the same reason.
const PASS_TIME: Duration = Duration::from_millis(200);
/// Longest sleep when nothing is happening; bounds the latency of picking up appended lines.
const MAX_IDLE: Duration = Duration::from_millis(50);
/// Longest time a continuously read file goes without a truncation check.
const TRUNCATION_CHECK: Duration = Duration::from_millis(100);
/// How often the metrics snapshot is refreshed.
const METRICS_PUBLISH: Duration = Duration::from_millis(200);
/// Least time between two scans of one input that file-system events asked for: a burst of events
/// (a copy being written, many files created) costs one scan per gap, not one per event.
const EVENT_SCAN_GAP: Duration = Duration::from_millis(10);

/// Everything known about one file identity.
struct FileState {
    identity: FileIdentity,
    path: PathBuf,
    dev: u64,
    ino: u64,
    head_len: usize,
    head_hash: u64,
    /// The file's first bytes as last read (while open, the harvester's are current). `None` for a
    /// registry entry until its file is seen. Tells an unfinished copy of this file apart.
    head: Option<Head>,
    acked: AckedRanges,
    /// Everything before this was handed on (sent or filtered); where an in-process reopen continues.
    read_offset: u64,
    last_seen_ms: i64,
    input: usize,
    harvester: Option<Harvester>,
    /// Size at the last scan, for "bytes behind".
    size: u64,
    stats: FileStats,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct FileStats {
    pub lines_read: u64,
    pub bytes_read: u64,
    pub events_sent: u64,
    pub events_acked: u64,
    /// Lines cut at `max_line_bytes`.
    pub events_truncated: u64,
    /// Events whose message was cut to fit `max_message_bytes`.
    pub events_too_large: u64,
}

pub struct Tailer<S: Sink> {
    inputs: Vec<FileInput>,
    sink: S,
    acks: Receiver<Ack>,
    registry_path: PathBuf,
    registry_flush: Duration,
    clean_removed: Duration,
    queue_max_bytes: usize,
    shutdown_timeout: Duration,
    files: HashMap<u64, FileState>,
    by_identity: HashMap<FileIdentity, u64>,
    /// (dev, ino) of open harvesters → slot; an open handle keeps its inode from being reused.
    open: HashMap<(u64, u64), u64>,
    next_slot: u64,
    /// The last slot a read pass finished with; the next pass starts after it (round-robin).
    read_cursor: u64,
    in_flight: usize,
    dirty: bool,
    first_scan_done: bool,
    encoder: Encoder,
    key: Option<KeyField>,
    buf: Vec<u8>,
    read_buf: Vec<u8>,
    last_checkpoint: Instant,
    /// The last registry write failed (a full disk, typically): logged once, not every `registry_flush`
    /// (faults branch, issue #16).
    registry_failing: bool,
    last_summary: Instant,
    summary_interval: Duration,
    totals: Totals,
    /// `exec` and `stdin` inputs.
    streams: Vec<StreamInput>,
    host: String,
    default_topic: String,
    metrics: Option<SharedSnapshot>,
    last_publish: Instant,
    /// `fs_events` from the config; the watcher itself starts with [`Tailer::run`].
    fs_events: bool,
    events: Option<watch::FsEvents>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    events_sent: u64,
    events_acked: u64,
    bytes_acked: u64,
}

impl<S: Sink> Tailer<S> {
    /// Builds the tailer for the `file` inputs of `config` and loads the registry. `acks` must receive
    /// the acknowledgements of everything sent to `sink`.
    pub fn new(config: &AgentConfig, sink: S, acks: Receiver<Ack>) -> Result<Self> {
        let host = host_name(config);
        let now = Instant::now();
        let mut inputs = Vec::new();
        for input in config.inputs.iter().filter(|i| i.kind == InputType::File) {
            inputs.push(compile(input, &host, &config.output.topic, now)?);
        }
        let key = match config.output.partitioner {
            crate::config::Partitioner::Hash => KeyField::parse(&config.output.key),
            crate::config::Partitioner::RoundRobin => None,
        };
        let mut tailer = Self {
            inputs,
            sink,
            acks,
            registry_path: config.registry.clone(),
            registry_flush: config.registry_flush,
            clean_removed: config.clean_removed,
            queue_max_bytes: config.queue_max_bytes,
            shutdown_timeout: config.shutdown_timeout,
            files: HashMap::new(),
            by_identity: HashMap::new(),
            open: HashMap::new(),
            next_slot: 0,
            read_cursor: 0,
            in_flight: 0,
            dirty: false,
            first_scan_done: false,
            encoder: Encoder::new(message_limit(config.output.max_message_bytes)),
            key,
            buf: Vec::new(),
            read_buf: vec![0; READ_CHUNK],
            last_checkpoint: now,
            registry_failing: false,
            last_summary: now,
            summary_interval: config.summary_interval,
            totals: Totals::default(),
            streams: Vec::new(),
            host,
            default_topic: config.output.topic.clone(),
            metrics: None,
            last_publish: now,
            fs_events: config.fs_events,
            events: None,
        };
        for entry in RegistryFile::load(&config.registry)?.entries {
            let slot = tailer.new_slot();
            tailer.by_identity.insert(entry.identity, slot);
            tailer.files.insert(
                slot,
                FileState {
                    identity: entry.identity,
                    path: entry.path,
                    dev: entry.dev,
                    ino: entry.ino,
                    head_len: entry.head_len,
                    head_hash: entry.head_hash,
                    head: None,
                    acked: AckedRanges::new(entry.offset),
                    read_offset: entry.offset,
                    last_seen_ms: entry.last_seen_ms,
                    input: 0,
                    harvester: None,
                    size: 0,
                    stats: FileStats::default(),
                },
            );
        }
        Ok(tailer)
    }

    /// Adds the `exec` or `stdin` input `config.inputs[index]`, fed by `rx` (from [`crate::exec::spawn`]
    /// or [`crate::stream::read_to_end`]).
    pub fn add_stream(&mut self, config: &AgentConfig, index: usize, rx: StreamReceiver) -> Result<()> {
        let input =
            config.inputs.get(index).ok_or_else(|| Error::Config(format!("agent.inputs[{index}] does not exist")))?;
        self.streams.push(StreamInput::new(index, input, &self.host, &self.default_topic, rx)?);
        Ok(())
    }

    /// Keeps `shared` up to date (every 200 ms) for the metrics endpoint.
    pub fn publish_to(&mut self, shared: SharedSnapshot) {
        *shared.lock().unwrap() = self.snapshot();
        self.metrics = Some(shared);
    }

    /// Whether every input has ended: only stream inputs, all closed (stdin at EOF). File inputs and
    /// exec inputs never end.
    fn finished(&self) -> bool {
        self.inputs.is_empty() && !self.streams.is_empty() && self.streams.iter().all(|s| s.closed)
    }

    /// The sink, e.g. to inspect a test sink.
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// Runs until `shutdown` is cancelled (or, with only stream inputs, until all of them ended), then
    /// waits up to `shutdown_timeout` for acknowledgements and writes the registry.
    pub fn run(mut self, shutdown: &CancellationToken) -> Result<()> {
        if self.fs_events && !self.inputs.is_empty() {
            self.events = watch::FsEvents::new(&self.inputs);
        }
        let mut idle = Duration::from_millis(1);
        while !shutdown.is_cancelled() && !self.finished() {
            let progressed = self.turn();
            if progressed {
                idle = Duration::from_millis(1);
            } else {
                self.wait(idle);
                idle = (idle * 2).min(MAX_IDLE);
            }
        }
        self.shutdown()
    }

    /// Sleeps up to `idle` (less if a scan is due sooner). A file-system event ends the sleep; so does an
    /// acknowledgement while the queue is full, since reading waits for those then. Otherwise
    /// acknowledgements wait in their channel for the next turn.
    fn wait(&mut self, idle: Duration) {
        let now = Instant::now();
        let until_scan = self.inputs.iter().map(|i| i.next_scan.saturating_duration_since(now)).min();
        let timeout = until_scan.map_or(idle, |d| d.min(idle));
        match &self.events {
            Some(events) if self.in_flight < self.queue_max_bytes => {
                events.wait(timeout);
            }
            _ => match self.acks.recv_timeout(timeout) {
                Ok(ack) => self.on_ack(ack),
                Err(RecvTimeoutError::Timeout) => {}
                // Every sender is gone: the sink died; nothing more will be acknowledged.
                Err(RecvTimeoutError::Disconnected) => std::thread::sleep(timeout),
            },
        }
    }

    /// Brings scans forward for what file-system events reported since the last turn.
    fn take_events(&mut self, now: Instant) {
        let Some(events) = self.events.as_mut() else { return };
        let woken = events.take();
        let mut scan = woken.scan;
        // A change to a file that is not open (closed as idle, or never opened) needs a scan to be read.
        // Event paths are absolute; so are state paths unless the glob was relative.
        for (i, path) in woken.modified {
            let open = self.files.values().any(|s| {
                s.harvester.is_some()
                    && (s.path == path || s.path.is_relative() && std::path::absolute(&s.path).is_ok_and(|a| a == path))
            });
            if !open {
                scan.insert(i);
            }
        }
        for i in scan {
            self.scan_soon(i, now);
        }
    }

    /// Brings the next scan of input `i` forward to now, or to [`EVENT_SCAN_GAP`] after its last scan.
    fn scan_soon(&mut self, i: usize, now: Instant) {
        if let Some(input) = self.inputs.get_mut(i) {
            input.next_scan = input.next_scan.min((input.last_scan + EVENT_SCAN_GAP).max(now));
        }
    }

    /// One turn of the loop. Returns whether any bytes were read.
    pub fn turn(&mut self) -> bool {
        self.drain_acks();
        let now = Instant::now();
        self.take_events(now);
        let mut scanned = false;
        for i in 0..self.inputs.len() {
            if now >= self.inputs[i].next_scan {
                // Set before the scan, which may ask for another one soon (after a truncation).
                self.inputs[i].last_scan = now;
                self.inputs[i].next_scan = now + self.inputs[i].scan_frequency;
                self.scan(i);
                scanned = true;
            }
        }
        if scanned {
            // Directories that did not exist (or whose watch ended) are watched once they do.
            if let Some(events) = self.events.as_mut().filter(|e| !e.all_watched()) {
                events.watch_missing();
            }
        }
        if !self.first_scan_done {
            self.first_scan_done = true;
            self.prune();
        }
        let mut progressed = self.read_all();
        progressed |= self.pump_streams();
        self.close_idle(Instant::now());
        self.sink.poll();
        self.drain_acks();
        self.maybe_checkpoint();
        if self.last_summary.elapsed() >= self.summary_interval {
            self.last_summary = Instant::now();
            self.log_summary();
        }
        if self.metrics.is_some() && self.last_publish.elapsed() >= METRICS_PUBLISH {
            self.publish();
        }
        progressed
    }

    /// Reads what the stream inputs produced, within the queue budget; sends stale multiline events.
    fn pump_streams(&mut self) -> bool {
        let mut progressed = false;
        let now = Instant::now();
        for stream in &mut self.streams {
            let mut out = Out {
                sink: &mut self.sink,
                encoder: &mut self.encoder,
                buf: &mut self.buf,
                in_flight: &mut self.in_flight,
                key: self.key.as_ref(),
                events: &mut self.totals.events_sent,
            };
            progressed |= stream.pump(&mut out, self.queue_max_bytes, READ_PER_TURN);
            stream.flush_stale(now, &mut out);
        }
        progressed
    }

    fn shutdown(mut self) -> Result<()> {
        for stream in &mut self.streams {
            let mut out = Out {
                sink: &mut self.sink,
                encoder: &mut self.encoder,
                buf: &mut self.buf,
                in_flight: &mut self.in_flight,
                key: self.key.as_ref(),
                events: &mut self.totals.events_sent,
            };
            stream.shutdown(&mut out);
        }
        let deadline = Instant::now() + self.shutdown_timeout;
        let all = self.sink.flush(self.shutdown_timeout);
        // Acks may still be on their way through the channel after the sink's flush returned.
        while self.in_flight > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.acks.recv_timeout(left.max(Duration::from_millis(10))) {
                Ok(ack) => self.on_ack(ack),
                Err(_) => break,
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        self.drain_acks();
        if !all || self.in_flight > 0 {
            tracing::warn!(
                unacknowledged_bytes = self.in_flight,
                "shutting down with unacknowledged events; they are sent again on the next start"
            );
        }
        let saved = self.save_registry();
        if self.metrics.is_some() {
            self.publish();
        }
        saved
    }

    fn new_slot(&mut self) -> u64 {
        self.next_slot += 1;
        self.next_slot
    }
}

/// The encoded event limit for a cluster `message.max.bytes`: headroom for the record and batch headers
/// and for compression that expands incompressible data.
pub fn message_limit(max_message_bytes: usize) -> usize {
    max_message_bytes - (max_message_bytes / 100).max(1024)
}

pub(crate) fn host_name(config: &AgentConfig) -> String {
    config.host_name.clone().unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned())
}

fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
