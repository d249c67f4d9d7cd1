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
//! The [`Tailer`] runs the loop and owns one collaborator per job:
//! - `file_table`: the known files ([`FileState`](file_table::FileState) by slot), their identities and
//!   which are open;
//! - `harvester`: one open file — handle, line reader, multiline state, truncation and idle checks;
//! - `emitter`: encoder, sink and in-flight bytes — the one place an output record is built (file and
//!   stream events alike); `file_output`: what a file's lines become on their way there;
//! - `checkpointer`: writing the registry;
//! - `clock`: where every `now` comes from ([`Clock`]; tests pass a [`ManualClock`]);
//! - `input`: a `file` input compiled from its config (globs, regexes, multiline);
//! - `watch`: file-system events that wake the loop early;
//! - `status`: per-file status, the metrics snapshot and the periodic summary log.
//!
//! The loop's steps, as `Tailer` methods, one file each: `scan` (glob discovery, identity matching,
//! rotation, truncation, forgetting files), `read` (the bounded read pass and settling unfinished
//! copies), `close` (closing idle, deleted and truncated files), `acks` (acknowledgements).
mod acks;
mod checkpointer;
pub mod clock;
mod close;
pub(crate) mod emitter;
mod file_output;
mod file_table;
mod harvester;
mod input;
mod read;
mod scan;
mod status;
mod watch;

pub use clock::{Clock, ManualClock, SystemClock};
pub use file_table::FileStats;
pub use status::FileStatus;

use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::config::{AgentConfig, InputType};
use crate::envelope::{Encoder, KeyField};
use crate::error::{Error, Result};
use crate::sink::{Ack, Sink};
use crate::stream::{StreamInput, StreamReceiver};

use checkpointer::Checkpointer;
use emitter::Emitter;
use file_table::FileTable;
use input::{compile, FileInput};
use read::{ReadPass, READ_PER_TURN};
use status::Reports;

/// Longest sleep when nothing is happening; bounds the latency of picking up appended lines.
const MAX_IDLE: Duration = Duration::from_millis(50);
/// Least time between two scans of one input that file-system events asked for: a burst of events
/// (a copy being written, many files created) costs one scan per gap, not one per event.
const EVENT_SCAN_GAP: Duration = Duration::from_millis(10);

pub struct Tailer<S: Sink> {
    /// The `file` inputs, with when each is scanned next.
    inputs: Vec<FileInput>,
    /// `exec` and `stdin` inputs.
    streams: Vec<StreamInput>,
    files: FileTable,
    emitter: Emitter<S>,
    acks: Receiver<Vec<Ack>>,
    checkpointer: Checkpointer,
    reports: Reports,
    read_pass: ReadPass,
    clock: Box<dyn Clock>,
    settings: Settings,
    first_scan_done: bool,
    /// Started with [`Tailer::run`] when `fs_events` is on.
    events: Option<watch::FsEvents>,
}

/// What the loop takes from the config as it is.
struct Settings {
    clean_removed: Duration,
    shutdown_timeout: Duration,
    fs_events: bool,
    host: String,
    default_topic: String,
}

impl<S: Sink> Tailer<S> {
    /// Builds the tailer for the `file` inputs of `config` and loads the registry. `acks` must receive
    /// the acknowledgements of everything sent to `sink`.
    pub fn new(config: &AgentConfig, sink: S, acks: Receiver<Vec<Ack>>) -> Result<Self> {
        Self::with_clock(config, sink, acks, SystemClock)
    }

    /// [`Tailer::new`] with the time taken from `clock`.
    pub fn with_clock(config: &AgentConfig, sink: S, acks: Receiver<Vec<Ack>>, clock: impl Clock) -> Result<Self> {
        let host = host_name(config);
        let now = clock.now();
        let mut inputs = Vec::new();
        for input in config.inputs.iter().filter(|i| i.kind == InputType::File) {
            inputs.push(compile(input, &host, &config.output.topic, now)?);
        }
        let key = match config.output.partitioner {
            crate::config::Partitioner::Hash => KeyField::parse(&config.output.key),
            crate::config::Partitioner::RoundRobin => None,
        };
        let encoder = Encoder::new(message_limit(config.output.max_message_bytes));
        let checkpointer = Checkpointer::new(config.registry.clone(), config.registry_flush, now);
        Ok(Self {
            inputs,
            streams: Vec::new(),
            files: FileTable::from_registry(checkpointer.load()?),
            emitter: Emitter::new(sink, encoder, key, config.queue_max_bytes()),
            acks,
            checkpointer,
            reports: Reports::new(config.summary_interval, now),
            read_pass: ReadPass::new(),
            clock: Box::new(clock),
            settings: Settings {
                clean_removed: config.clean_removed,
                shutdown_timeout: config.shutdown_timeout,
                fs_events: config.fs_events,
                host,
                default_topic: config.output.topic.clone(),
            },
            first_scan_done: false,
            events: None,
        })
    }

    /// Adds the `exec` or `stdin` input `config.inputs[index]`, fed by `rx` (from [`crate::exec::spawn`]
    /// or [`crate::stream::read_to_end`]).
    pub fn add_stream(&mut self, config: &AgentConfig, index: usize, rx: StreamReceiver) -> Result<()> {
        let input =
            config.inputs.get(index).ok_or_else(|| Error::Config(format!("agent.inputs[{index}] does not exist")))?;
        let Settings { host, default_topic, .. } = &self.settings;
        self.streams.push(StreamInput::new(index, input, host, default_topic, rx)?);
        Ok(())
    }

    /// Whether every input has ended: only stream inputs, all closed (stdin at EOF). File inputs and
    /// exec inputs never end.
    fn finished(&self) -> bool {
        self.inputs.is_empty() && !self.streams.is_empty() && self.streams.iter().all(|s| s.closed)
    }

    /// The sink, e.g. to inspect a test sink.
    pub fn sink(&self) -> &S {
        self.emitter.sink()
    }

    /// Runs until `shutdown` is cancelled (or, with only stream inputs, until all of them ended), then
    /// waits up to `shutdown_timeout` for acknowledgements and writes the registry.
    pub fn run(mut self, shutdown: &CancellationToken) -> Result<()> {
        if self.settings.fs_events && !self.inputs.is_empty() {
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
        let now = self.clock.now();
        let until_scan = self.inputs.iter().map(|i| i.next_scan.saturating_duration_since(now)).min();
        let timeout = until_scan.map_or(idle, |d| d.min(idle));
        match &self.events {
            Some(events) if self.emitter.has_room() => {
                events.wait(timeout);
            }
            _ => match self.acks.recv_timeout(timeout) {
                Ok(acks) => self.on_acks(acks),
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
            if !self.files.is_open_at(Path::new(&path)) {
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
        let now = self.clock.now();
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
        self.close_idle(self.clock.now());
        self.emitter.sink_mut().poll();
        self.drain_acks();
        self.checkpointer.maybe_checkpoint(&mut self.files, self.clock.now());
        self.report();
        progressed
    }

    /// Reads what the stream inputs produced, within the queue budget; sends stale multiline events.
    fn pump_streams(&mut self) -> bool {
        let mut progressed = false;
        for stream in &mut self.streams {
            progressed |= stream.pump(&mut self.emitter, &*self.clock, READ_PER_TURN);
            stream.flush_stale(&mut self.emitter, &*self.clock);
        }
        progressed
    }

    fn shutdown(mut self) -> Result<()> {
        for stream in &mut self.streams {
            stream.shutdown(&mut self.emitter, &*self.clock);
        }
        let timeout = self.settings.shutdown_timeout;
        let deadline = self.clock.now() + timeout;
        let all = self.emitter.sink_mut().flush(timeout);
        // Acks may still be on their way through the channel after the sink's flush returned.
        while self.emitter.in_flight() > 0 {
            let left = deadline.saturating_duration_since(self.clock.now());
            match self.acks.recv_timeout(left.max(Duration::from_millis(10))) {
                Ok(acks) => self.on_acks(acks),
                Err(_) => break,
            }
            if self.clock.now() >= deadline {
                break;
            }
        }
        self.drain_acks();
        if !all || self.emitter.in_flight() > 0 {
            tracing::warn!(
                unacknowledged_bytes = self.emitter.in_flight(),
                "shutting down with unacknowledged events; they are sent again on the next start"
            );
        }
        let saved = self.checkpointer.save(&mut self.files);
        if self.publishing() {
            self.publish();
        }
        saved
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
