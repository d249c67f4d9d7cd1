//! The file server: scans globs, follows files by identity (not path) through rename rotation,
//! copytruncate and deletes, reads lines, and turns acknowledgements into registry offsets.
//!
//! One thread runs the loop (vector `file_server.rs`): acknowledgements → scan (every `scan_frequency`)
//! → read a bounded amount from every open file → time-based closing → checkpoint. File I/O is plain
//! blocking I/O on that thread. It is generic over the [`Sink`] so tests drive it without Kafka.
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
//! - On shutdown, partial lines and pending multiline events are *not* sent; the registry stays before
//!   them so the next run reads them whole.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use regex::bytes::Regex as BytesRegex;
use regex::Regex;
use tokio_util::sync::CancellationToken;

use crate::config::{AgentConfig, InputConfig, InputType, MultilineConfig, StartPosition};
use crate::envelope::{timestamp_now, Encoder, EventParts, InputMeta, KeyField};
use crate::error::{Error, Result};
use crate::identity::{dev_ino, event_id, FileIdentity, Head};
use crate::line_reader::{LineReader, RawLine};
use crate::multiline::Multiline;
use crate::registry::{AckedRanges, Entry, RegistryFile, REGISTRY_VERSION};
use crate::metrics::{SharedSnapshot, Snapshot};
use crate::sink::{Ack, Record, Sink};
use crate::stream::{Out, StreamInput, StreamReceiver, StreamStatus, STREAM_SOURCE};

/// Bytes read per system call.
const READ_CHUNK: usize = 64 * 1024;
/// Bytes read from one file per loop turn, so one busy file cannot starve the others.
const READ_PER_TURN: usize = 1 << 20;
/// Longest sleep when nothing is happening; bounds the latency of picking up appended lines.
const MAX_IDLE: Duration = Duration::from_millis(50);
/// Longest time a continuously read file goes without a truncation check.
const TRUNCATION_CHECK: Duration = Duration::from_millis(100);
/// How often the metrics snapshot is refreshed.
const METRICS_PUBLISH: Duration = Duration::from_millis(200);

/// One compiled `file` input.
struct FileInput {
    paths: Vec<String>,
    exclude_files: Vec<Regex>,
    include_lines: Vec<BytesRegex>,
    exclude_lines: Vec<BytesRegex>,
    multiline: Option<MultilineConfig>,
    max_line_bytes: usize,
    scan_frequency: Duration,
    close_inactive: Duration,
    start_position: StartPosition,
    meta: InputMeta,
    topic: String,
    next_scan: Instant,
}

/// Everything known about one file identity.
struct FileState {
    identity: FileIdentity,
    path: PathBuf,
    dev: u64,
    ino: u64,
    head_len: usize,
    head_hash: u64,
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

/// An open file being read.
struct Harvester {
    file: File,
    /// `log.file.path` of its events: the path it was opened under (as Filebeat does).
    path: String,
    head: Head,
    reader: LineReader,
    multiline: Option<Multiline>,
    last_data: Instant,
    at_eof: bool,
    deleted: bool,
    last_check: Instant,
}

/// A point-in-time view of one file, for metrics and tests.
#[derive(Debug, Clone)]
pub struct FileStatus {
    pub path: PathBuf,
    pub identity: FileIdentity,
    pub open: bool,
    pub acked_offset: u64,
    pub read_offset: u64,
    pub size: u64,
    pub stats: FileStats,
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
    in_flight: usize,
    dirty: bool,
    first_scan_done: bool,
    encoder: Encoder,
    key: Option<KeyField>,
    buf: Vec<u8>,
    read_buf: Vec<u8>,
    last_checkpoint: Instant,
    last_summary: Instant,
    summary_interval: Duration,
    totals: Totals,
    /// `exec` and `stdin` inputs.
    streams: Vec<StreamInput>,
    host: String,
    default_topic: String,
    metrics: Option<SharedSnapshot>,
    last_publish: Instant,
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
            in_flight: 0,
            dirty: false,
            first_scan_done: false,
            encoder: Encoder::new(message_limit(config.output.max_message_bytes)),
            key,
            buf: Vec::new(),
            read_buf: vec![0; READ_CHUNK],
            last_checkpoint: now,
            last_summary: now,
            summary_interval: config.summary_interval,
            totals: Totals::default(),
            streams: Vec::new(),
            host,
            default_topic: config.output.topic.clone(),
            metrics: None,
            last_publish: now,
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
        let input = config
            .inputs
            .get(index)
            .ok_or_else(|| Error::Config(format!("agent.inputs[{index}] does not exist")))?;
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
        let mut idle = Duration::from_millis(1);
        while !shutdown.is_cancelled() && !self.finished() {
            let progressed = self.turn();
            if progressed {
                idle = Duration::from_millis(1);
            } else {
                match self.acks.recv_timeout(idle) {
                    Ok(ack) => self.on_ack(ack),
                    Err(RecvTimeoutError::Timeout) => {}
                    // Every sender is gone: the sink died; nothing more will be acknowledged.
                    Err(RecvTimeoutError::Disconnected) => std::thread::sleep(idle),
                }
                idle = (idle * 2).min(MAX_IDLE);
            }
        }
        self.shutdown()
    }

    /// One turn of the loop. Returns whether any bytes were read.
    pub fn turn(&mut self) -> bool {
        self.drain_acks();
        let now = Instant::now();
        for i in 0..self.inputs.len() {
            if now >= self.inputs[i].next_scan {
                self.scan(i);
                self.inputs[i].next_scan = now + self.inputs[i].scan_frequency;
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
        if self.dirty && self.last_checkpoint.elapsed() >= self.registry_flush {
            self.checkpoint();
        }
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

    fn publish(&mut self) {
        self.last_publish = Instant::now();
        if let Some(shared) = &self.metrics {
            let snapshot = self.snapshot();
            *shared.lock().unwrap() = snapshot;
        }
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

    fn drain_acks(&mut self) {
        while let Ok(ack) = self.acks.try_recv() {
            self.on_ack(ack);
        }
    }

    fn on_ack(&mut self, ack: Ack) {
        self.in_flight = self.in_flight.saturating_sub(ack.bytes);
        self.totals.events_acked += 1;
        self.totals.bytes_acked += ack.bytes as u64;
        if ack.source & STREAM_SOURCE != 0 {
            let index = (ack.source & !STREAM_SOURCE) as usize;
            if let Some(stream) = self.streams.iter_mut().find(|s| s.index() == index) {
                stream.on_ack(&ack);
            }
            return;
        }
        // Acks of a forgotten state (inode reuse, truncation of a small file) only release bytes.
        if let Some(state) = self.files.get_mut(&ack.source) {
            state.stats.events_acked += 1;
            if state.acked.ack(ack.start, ack.end) {
                self.dirty = true;
            }
        }
    }

    /// Finds the files of input `i`, opens new ones, resumes known ones, notices truncation and deletion.
    fn scan(&mut self, i: usize) {
        let now_ms = unix_ms();
        let mut seen = HashSet::new();
        for pattern in self.inputs[i].paths.clone() {
            let entries = match glob::glob(&pattern) {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(pattern, error = %e, "bad glob");
                    continue;
                }
            };
            for path in entries.flatten() {
                let Some(path_str) = path.to_str() else { continue };
                if self.inputs[i].exclude_files.iter().any(|re| re.is_match(path_str)) {
                    continue;
                }
                let meta = match std::fs::metadata(&path) {
                    Ok(m) if m.is_file() => m,
                    _ => continue,
                };
                if !seen.insert(dev_ino(&meta)) {
                    continue;
                }
                if let Err(e) = self.consider(i, &path, &meta, now_ms) {
                    tracing::debug!(path = %path.display(), error = %e, "cannot open file");
                }
            }
        }
        self.check_open_files(i);
        if self.first_scan_done {
            self.prune();
        }
    }

    fn consider(&mut self, i: usize, path: &Path, meta: &std::fs::Metadata, now_ms: i64) -> io::Result<()> {
        let (dev, ino) = dev_ino(meta);
        if let Some(&slot) = self.open.get(&(dev, ino)) {
            let state = self.files.get_mut(&slot).expect("open slot exists");
            state.last_seen_ms = now_ms;
            if state.path != path {
                state.path = path.to_path_buf();
                self.dirty = true;
            }
            return Ok(());
        }
        let file = File::open(path)?;
        let fmeta = file.metadata()?;
        let (dev, ino) = dev_ino(&fmeta);
        let size = fmeta.len();
        let head = Head::read(&file)?;
        let candidate = FileIdentity::of(&head, dev, ino);

        let matches = |s: &FileState| head.extends(s.head_len, s.head_hash);
        let mut found = self.by_identity.get(&candidate).copied().filter(|slot| matches(&self.files[slot]));
        if found.is_none() && head.is_full() {
            // Known while small (by device+inode), grown past the fingerprint size since.
            let small = FileIdentity::DevInode { dev, ino };
            found = self.by_identity.get(&small).copied().filter(|slot| matches(&self.files[slot]));
        }

        if let Some(slot) = found {
            let state = self.files.get_mut(&slot).expect("indexed slot exists");
            state.last_seen_ms = now_ms;
            state.size = size;
            if state.harvester.is_some() {
                // Same first bytes as a file being read: a copy (copytruncate). Reading it too would
                // send its lines twice.
                return Ok(());
            }
            if state.read_offset > size {
                tracing::info!(path = %path.display(), offset = state.read_offset, size, "file is shorter than the recorded offset (truncated); reading it from the start");
                self.forget(slot);
            } else {
                if state.path != path || state.dev != dev || state.ino != ino {
                    state.path = path.to_path_buf();
                    (state.dev, state.ino) = (dev, ino);
                    self.dirty = true;
                }
                if state.identity != candidate {
                    self.rekey(slot, candidate);
                }
                let state = self.files.get_mut(&slot).expect("slot exists");
                state.input = i;
                if size > state.read_offset {
                    let offset = state.read_offset;
                    self.open_harvester(slot, file, head, offset)?;
                }
                return Ok(());
            }
        }

        // A file never seen, or one whose recorded identity no longer matches its bytes.
        if let Some(old) = self.by_identity.get(&candidate).copied() {
            tracing::info!(path = %path.display(), identity = %candidate, "identity reused by a different file (inode reuse or rewritten file); reading it from the start");
            self.forget(old);
        }
        let offset = match (self.first_scan_done, self.inputs[i].start_position) {
            (false, StartPosition::End) => size,
            _ => 0,
        };
        let slot = self.new_slot();
        self.by_identity.insert(candidate, slot);
        self.files.insert(
            slot,
            FileState {
                identity: candidate,
                path: path.to_path_buf(),
                dev,
                ino,
                head_len: head.len(),
                head_hash: head.hash(),
                acked: AckedRanges::new(offset),
                read_offset: offset,
                last_seen_ms: now_ms,
                input: i,
                harvester: None,
                size,
                stats: FileStats::default(),
            },
        );
        self.dirty = true;
        tracing::info!(path = %path.display(), identity = %candidate, offset, "harvesting new file");
        self.open_harvester(slot, file, head, offset)
    }

    fn open_harvester(&mut self, slot: u64, mut file: File, head: Head, offset: u64) -> io::Result<()> {
        file.seek(SeekFrom::Start(offset))?;
        let state = self.files.get_mut(&slot).expect("slot exists");
        let input = &self.inputs[state.input];
        let multiline = input
            .multiline
            .as_ref()
            .map(|m| Multiline::new(m, input.max_line_bytes).expect("validated multiline pattern"));
        self.open.insert((state.dev, state.ino), slot);
        tracing::debug!(path = %state.path.display(), offset, "opened");
        state.harvester = Some(Harvester {
            file,
            path: state.path.to_string_lossy().into_owned(),
            head,
            reader: LineReader::new(input.max_line_bytes, offset),
            multiline,
            last_data: Instant::now(),
            at_eof: false,
            deleted: false,
            last_check: Instant::now(),
        });
        Ok(())
    }

    /// Truncation and deletion checks for the open files of input `i`, through their handles.
    fn check_open_files(&mut self, i: usize) {
        let slots: Vec<u64> =
            self.files.iter().filter(|(_, s)| s.input == i && s.harvester.is_some()).map(|(k, _)| *k).collect();
        for slot in slots {
            self.check_truncated(slot);
        }
    }

    /// Whether the open file of `slot` was truncated (it is then restarted as a new state at offset 0).
    /// Also refreshes the size and the deleted flag.
    fn check_truncated(&mut self, slot: u64) -> bool {
        let state = self.files.get_mut(&slot).expect("slot exists");
        let h = state.harvester.as_mut().expect("open");
        h.last_check = Instant::now();
        let Ok(meta) = h.file.metadata() else { return false };
        state.size = meta.len();
        h.deleted = meta.nlink() == 0;
        let shrunk = meta.len() < h.reader.position();
        let rewritten = !shrunk && {
            let now = Head::read(&h.file).unwrap_or_default();
            now.len() < h.head.len() || now.bytes()[..h.head.len()] != *h.head.bytes()
        };
        if shrunk || rewritten {
            tracing::info!(path = %state.path.display(), offset = h.reader.position(), size = meta.len(), "file truncated (copytruncate?); reading it from the start");
            self.on_truncated(slot);
        }
        shrunk || rewritten
    }

    /// The open file `slot` was truncated: finish the old content, start a new state at offset 0.
    fn on_truncated(&mut self, slot: u64) {
        self.close_harvester(slot, true);
        let state = self.files.get_mut(&slot).expect("slot exists");
        let path = state.path.clone();
        let input = state.input;
        // Keep a fingerprinted identity: a copy of the old content (copytruncate's `.1`) then resumes where
        // reading stopped. A device+inode identity now names the new content, so the old state goes.
        if !matches!(state.identity, FileIdentity::Fingerprint { .. }) {
            self.forget(slot);
        }
        if let Ok(meta) = std::fs::metadata(&path) {
            let _ = self.consider(input, &path, &meta, unix_ms());
        }
    }

    /// Drops a state and its identity; later acks for it only release queue bytes.
    fn forget(&mut self, slot: u64) {
        if let Some(state) = self.files.remove(&slot) {
            if self.by_identity.get(&state.identity) == Some(&slot) {
                self.by_identity.remove(&state.identity);
            }
            if state.harvester.is_some() {
                self.open.remove(&(state.dev, state.ino));
            }
            self.dirty = true;
        }
    }

    fn rekey(&mut self, slot: u64, identity: FileIdentity) {
        if let Some(other) = self.by_identity.get(&identity).copied() {
            if other != slot {
                self.forget(other);
            }
        }
        let state = self.files.get_mut(&slot).expect("slot exists");
        if self.by_identity.get(&state.identity) == Some(&slot) {
            self.by_identity.remove(&state.identity);
        }
        state.identity = identity;
        self.by_identity.insert(identity, slot);
        self.dirty = true;
    }

    /// Reads from every open file, a bounded amount each. Returns whether anything was read.
    fn read_all(&mut self) -> bool {
        let slots: Vec<u64> = self.files.iter().filter(|(_, s)| s.harvester.is_some()).map(|(k, _)| *k).collect();
        let mut progressed = false;
        for slot in slots {
            // A truncated file must be noticed before reading on at the old offset, or the new content's
            // bytes would be read as the old file's (fragments of lines, wrong ids). Checked whenever the
            // file was at its end (that is when copytruncate happens under a tailer keeping up), and
            // at least every TRUNCATION_CHECK while it is read continuously.
            let due = self.files[&slot]
                .harvester
                .as_ref()
                .is_some_and(|h| h.at_eof || h.last_check.elapsed() >= TRUNCATION_CHECK);
            if due && self.check_truncated(slot) {
                progressed = true;
                continue;
            }
            let mut budget = READ_PER_TURN;
            while budget > 0 && self.in_flight < self.queue_max_bytes {
                match self.read_chunk(slot) {
                    Ok(0) => break,
                    Ok(n) => {
                        progressed = true;
                        budget = budget.saturating_sub(n);
                    }
                    Err(e) => {
                        tracing::warn!(path = %self.files[&slot].path.display(), error = %e, "read failed; closing the file");
                        self.close_harvester(slot, false);
                        break;
                    }
                }
            }
        }
        progressed
    }

    fn read_chunk(&mut self, slot: u64) -> io::Result<usize> {
        let state = self.files.get_mut(&slot).expect("slot exists");
        let mut h = state.harvester.take().expect("open");
        let n = loop {
            match h.file.read(&mut self.read_buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                state.harvester = Some(h);
                return Err(e);
            }
        };
        if n == 0 {
            h.at_eof = true;
            state.harvester = Some(h);
            return Ok(0);
        }
        // Truncated and rewritten between the last check and this read? Then these bytes are the new
        // content at the old offset: not lines of this file. Checked after the read, so no window remains
        // (short of a rewrite with identical first bytes).
        if !h.head.is_empty() && Head::read(&h.file).map_or(true, |now| !now.bytes().starts_with(h.head.bytes())) {
            state.harvester = Some(h);
            tracing::info!(path = %state.path.display(), "file truncated and rewritten (copytruncate?); reading it from the start");
            self.on_truncated(slot);
            return Ok(0);
        }
        let now = Instant::now();
        h.at_eof = false;
        h.last_data = now;
        let data = &self.read_buf[..n];
        h.head.observe(h.reader.position(), data);
        state.stats.bytes_read += n as u64;
        let timestamp = timestamp_now();
        let Harvester { reader, multiline, path, head, .. } = &mut h;
        let mut ctx = EmitCtx {
            slot,
            input: &self.inputs[state.input],
            state_acked: &mut state.acked,
            stats: &mut state.stats,
            sink: &mut self.sink,
            encoder: &mut self.encoder,
            buf: &mut self.buf,
            in_flight: &mut self.in_flight,
            key: self.key.as_ref(),
            timestamp: &timestamp,
            path,
            head,
            events: &mut self.totals.events_sent,
            dirty: &mut self.dirty,
        };
        reader.feed(data, |line| {
            ctx.stats.lines_read += 1;
            match multiline {
                Some(ml) => ml.push(line, now, |event| ctx.emit(event)),
                None => ctx.emit(line),
            }
        });
        state.read_offset = h.reader.line_start().min(h.multiline.as_ref().and_then(|m| m.pending_start()).unwrap_or(u64::MAX));
        let upgrade = h.head.is_full() && !matches!(state.identity, FileIdentity::Fingerprint { .. });
        let fingerprint = FileIdentity::Fingerprint { hash: h.head.hash() };
        state.harvester = Some(h);
        if upgrade {
            // The file just grew past the fingerprint size: from now on it is known by its first bytes.
            self.rekey(slot, fingerprint);
        }
        Ok(n)
    }

    /// Multiline timeouts; closes files idle for `close_inactive` and deleted files read to their end.
    fn close_idle(&mut self, now: Instant) {
        let mut to_close = Vec::new();
        for (&slot, state) in self.files.iter_mut() {
            let Some(h) = state.harvester.as_mut() else { continue };
            let input = &self.inputs[state.input];
            if let Some(ml) = h.multiline.as_mut() {
                if ml.has_pending() {
                    let timestamp = timestamp_now();
                    let mut ctx = EmitCtx {
                        slot,
                        input,
                        state_acked: &mut state.acked,
                        stats: &mut state.stats,
                        sink: &mut self.sink,
                        encoder: &mut self.encoder,
                        buf: &mut self.buf,
                        in_flight: &mut self.in_flight,
                        key: self.key.as_ref(),
                        timestamp: &timestamp,
                        path: &h.path,
                        head: &h.head,
                        events: &mut self.totals.events_sent,
                        dirty: &mut self.dirty,
                    };
                    ml.flush_if_stale(now, |e| ctx.emit(e));
                    state.read_offset = h.reader.line_start().min(ml.pending_start().unwrap_or(u64::MAX));
                }
            }
            if h.at_eof && (h.deleted || now.saturating_duration_since(h.last_data) >= input.close_inactive) {
                to_close.push(slot);
            }
        }
        for slot in to_close {
            let deleted = self.files[&slot].harvester.as_ref().is_some_and(|h| h.deleted);
            tracing::debug!(path = %self.files[&slot].path.display(), deleted, "closing");
            self.close_harvester(slot, true);
        }
    }

    /// Closes the file of `slot`. With `finish`, the partial last line and the pending multiline event are
    /// sent first (the file was rotated away, deleted, idle or truncated).
    fn close_harvester(&mut self, slot: u64, finish: bool) {
        let state = self.files.get_mut(&slot).expect("slot exists");
        let Some(mut h) = state.harvester.take() else { return };
        self.open.remove(&(state.dev, state.ino));
        if finish {
            let timestamp = timestamp_now();
            let Harvester { reader, multiline, path, head, .. } = &mut h;
            let mut ctx = EmitCtx {
                slot,
                input: &self.inputs[state.input],
                state_acked: &mut state.acked,
                stats: &mut state.stats,
                sink: &mut self.sink,
                encoder: &mut self.encoder,
                buf: &mut self.buf,
                in_flight: &mut self.in_flight,
                key: self.key.as_ref(),
                timestamp: &timestamp,
                path,
                head,
                events: &mut self.totals.events_sent,
                dirty: &mut self.dirty,
            };
            let now = Instant::now();
            reader.flush_partial(|line| {
                ctx.stats.lines_read += 1;
                match multiline.as_mut() {
                    Some(ml) => ml.push(line, now, |e| ctx.emit(e)),
                    None => ctx.emit(line),
                }
            });
            if let Some(ml) = multiline.as_mut() {
                ml.flush(|e| ctx.emit(e));
            }
            state.read_offset = h.reader.position();
        } else {
            state.read_offset = h.reader.line_start().min(h.multiline.as_ref().and_then(|m| m.pending_start()).unwrap_or(u64::MAX));
        }
        state.head_len = h.head.len();
        state.head_hash = h.head.hash();
    }

    /// Forgets files not seen by any scan for `clean_removed`.
    fn prune(&mut self) {
        let cutoff = unix_ms() - self.clean_removed.as_millis() as i64;
        let stale: Vec<u64> = self
            .files
            .iter()
            .filter(|(_, s)| s.harvester.is_none() && s.last_seen_ms < cutoff)
            .map(|(k, _)| *k)
            .collect();
        for slot in stale {
            tracing::debug!(path = %self.files[&slot].path.display(), "forgetting file not seen for clean_removed");
            self.forget(slot);
        }
    }

    fn checkpoint(&mut self) {
        match self.save_registry() {
            Ok(()) => {}
            Err(e) => tracing::error!(error = %e, "cannot write the registry; will retry"),
        }
        self.last_checkpoint = Instant::now();
    }

    fn save_registry(&mut self) -> Result<()> {
        let mut entries: Vec<Entry> = self
            .by_identity
            .iter()
            .filter_map(|(id, slot)| self.files.get(slot).map(|s| (id, s)))
            .map(|(identity, s)| {
                let (head_len, head_hash) = match &s.harvester {
                    Some(h) => (h.head.len(), h.head.hash()),
                    None => (s.head_len, s.head_hash),
                };
                Entry {
                    identity: *identity,
                    path: s.path.clone(),
                    offset: s.acked.offset(),
                    dev: s.dev,
                    ino: s.ino,
                    head_len,
                    head_hash,
                    last_seen_ms: s.last_seen_ms,
                }
            })
            .collect();
        entries.sort_by(|a, b| a.path.cmp(&b.path).then(a.offset.cmp(&b.offset)));
        RegistryFile { version: REGISTRY_VERSION, entries }.save(&self.registry_path)?;
        self.dirty = false;
        Ok(())
    }

    /// Per-file status, for metrics and tests.
    pub fn status(&self) -> Vec<FileStatus> {
        let mut out: Vec<FileStatus> = self
            .files
            .values()
            .map(|s| FileStatus {
                path: s.path.clone(),
                identity: s.identity,
                open: s.harvester.is_some(),
                acked_offset: s.acked.offset(),
                read_offset: s.read_offset,
                size: s.size,
                stats: s.stats,
            })
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }

    /// Status of the `exec` and `stdin` inputs.
    pub fn stream_status(&self) -> Vec<StreamStatus> {
        self.streams.iter().map(StreamInput::status).collect()
    }

    /// Everything the metrics endpoint shows.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            files: self.status(),
            streams: self.stream_status(),
            in_flight_bytes: self.in_flight,
            events_sent: self.totals.events_sent,
            events_acked: self.totals.events_acked,
            message_truncated: self.encoder.message_truncated + self.sink.too_large(),
        }
    }

    /// Encoded bytes handed to the sink and not yet acknowledged.
    pub fn in_flight_bytes(&self) -> usize {
        self.in_flight
    }

    fn log_summary(&self) {
        let open = self.files.values().filter(|s| s.harvester.is_some()).count();
        let behind: u64 = self.files.values().map(|s| s.size.saturating_sub(s.acked.offset())).sum();
        tracing::info!(
            files_open = open,
            files_known = self.by_identity.len(),
            events_sent = self.totals.events_sent,
            events_acked = self.totals.events_acked,
            stream_events_sent = self.streams.iter().map(|s| s.stats.events_sent).sum::<u64>(),
            in_flight_bytes = self.in_flight,
            bytes_behind = behind,
            events_message_truncated = self.encoder.message_truncated,
            "agent summary"
        );
    }
}

/// What emitting one event needs, borrowed from the tailer and the file's state.
struct EmitCtx<'a, S: Sink> {
    slot: u64,
    input: &'a FileInput,
    state_acked: &'a mut AckedRanges,
    stats: &'a mut FileStats,
    sink: &'a mut S,
    encoder: &'a mut Encoder,
    buf: &'a mut Vec<u8>,
    in_flight: &'a mut usize,
    key: Option<&'a KeyField>,
    timestamp: &'a str,
    path: &'a str,
    head: &'a Head,
    events: &'a mut u64,
    dirty: &'a mut bool,
}

impl<S: Sink> EmitCtx<'_, S> {
    fn emit(&mut self, event: RawLine<'_>) {
        let input = self.input;
        let keep = (input.include_lines.is_empty() || input.include_lines.iter().any(|re| re.is_match(event.bytes)))
            && !input.exclude_lines.iter().any(|re| re.is_match(event.bytes));
        if !keep {
            // Filtered events count as done, or the registry could never move past them.
            if self.state_acked.ack(event.start, event.end) {
                *self.dirty = true;
            }
            return;
        }
        let id = event_id(&input.meta.host, self.head.id_basis(event.end), event.start);
        let parts = EventParts {
            timestamp: self.timestamp,
            message: event.bytes,
            file: Some((self.path, event.start)),
            id: &id,
            truncated: event.truncated,
        };
        let cut_before = self.encoder.message_truncated;
        self.encoder.encode(&input.meta, &parts, self.buf);
        if self.encoder.message_truncated > cut_before {
            self.stats.events_too_large += 1;
        }
        let key = self.key.and_then(|k| k.value(&input.meta, &parts));
        let ack = Ack { source: self.slot, start: event.start, end: event.end, bytes: self.buf.len() };
        self.sink.send(Record { topic: &input.topic, key: key.as_deref(), payload: self.buf, ack });
        *self.in_flight += self.buf.len();
        *self.events += 1;
        self.stats.events_sent += 1;
        if event.truncated {
            self.stats.events_truncated += 1;
        }
    }
}

fn compile(input: &InputConfig, host: &str, default_topic: &str, now: Instant) -> Result<FileInput> {
    let re = |list: &[String]| -> Result<Vec<Regex>> {
        list.iter().map(|r| Regex::new(r).map_err(|e| Error::Config(format!("{r:?}: {e}")))).collect()
    };
    let bre = |list: &[String]| -> Result<Vec<BytesRegex>> {
        list.iter().map(|r| BytesRegex::new(r).map_err(|e| Error::Config(format!("{r:?}: {e}")))).collect()
    };
    if let Some(ml) = &input.multiline {
        BytesRegex::new(&ml.pattern).map_err(|e| Error::Config(format!("multiline.pattern: {e}")))?;
    }
    Ok(FileInput {
        paths: input.paths.clone(),
        exclude_files: re(&input.exclude_files)?,
        include_lines: bre(&input.include_lines)?,
        exclude_lines: bre(&input.exclude_lines)?,
        multiline: input.multiline.clone(),
        max_line_bytes: input.max_line_bytes,
        scan_frequency: input.scan_frequency,
        close_inactive: input.close_inactive,
        start_position: input.start_position,
        meta: InputMeta {
            host: host.to_string(),
            input_type: "file",
            tags: input.tags.clone(),
            fields: input.fields.clone(),
            fields_under_root: input.fields_under_root,
            command_line: None,
        },
        topic: input.topic.clone().unwrap_or_else(|| default_topic.to_string()),
        next_scan: now,
    })
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
