//! Inputs that are a byte stream rather than a file: `exec` (a command's stdout, see [`crate::exec`]) and
//! `stdin`.
//!
//! A producer (the exec supervisor task, or the stdin thread) sends [`StreamMsg`]s over a bounded channel;
//! the tailer's loop drains them into a [`StreamInput`], which splits lines with the same cap, lossy UTF-8,
//! NUL escaping, multiline joining and include/exclude filters as file inputs, and emits events through the
//! same sink and the same `queue_max_bytes` budget. The channel is bounded, so when the output is slow the
//! tailer stops draining, the producer blocks, and (for exec) the command blocks writing its stdout:
//! backpressure reaches the source and nothing is dropped in between.
//!
//! There is no offset to resume from. Acknowledgements still count against the queue budget and in the
//! metrics, but they move nothing persistent: the registry knows nothing of streams. A partial last line
//! and a pending multiline event are sent when a run ends and on shutdown, because nothing could re-read
//! them later.
//!
//! `event.id` is a hash of (host, a basis, the event's sequence number in the run). The basis hashes the
//! command and a random id drawn per run, so ids are unique but not stable: a resent copy of a line after
//! a restart is a new event as far as Elasticsearch is concerned.

use std::io::Read;

use regex::bytes::Regex as BytesRegex;
use tokio::sync::mpsc;
use xxhash_rust::xxh3::xxh3_64;

use crate::config::{InputConfig, InputType};
use crate::envelope::{timestamp_at, EventParts, InputMeta};
use crate::error::{Error, Result};
use crate::identity::event_id;
use crate::line_reader::{LineReader, RawLine};
use crate::multiline::Multiline;
use crate::sink::Sink;
use crate::tailer::clock::Clock;
use crate::tailer::emitter::{Emitter, Origin};

/// Messages buffered between a producer and the tailer. Each holds at most one read (64 KiB), so the
/// channel holds at most `CHANNEL_MESSAGES` × 64 KiB.
pub const CHANNEL_MESSAGES: usize = 16;
/// Bytes read from the source per message.
pub const READ_CHUNK: usize = 64 * 1024;
/// Acks for stream events carry `source = STREAM_SOURCE | input index`; file slots never set this bit.
pub(crate) const STREAM_SOURCE: u64 = 1 << 63;

/// What a stream producer tells the tailer.
#[derive(Debug)]
pub enum StreamMsg {
    /// A new run (an exec child was started, or stdin was opened); `run` is random.
    Started { run: u64 },
    /// Bytes of the current run's stream.
    Data(Vec<u8>),
    /// The current run's stream ended (the command exited): the partial last line is sent as is.
    Ended,
    /// The input ends for good (stdin reached EOF). Sent after `Ended`.
    Closed,
}

pub type StreamReceiver = mpsc::Receiver<StreamMsg>;

/// Reads `reader` (the agent's stdin, or anything in tests) on a dedicated thread until EOF. A thread and
/// not a tokio task: a blocking read on stdin cannot be cancelled and would hold up runtime shutdown.
pub fn read_to_end(mut reader: impl Read + Send + 'static) -> StreamReceiver {
    let (tx, rx) = mpsc::channel(CHANNEL_MESSAGES);
    let spawned = std::thread::Builder::new().name("logpipe-stdin".into()).spawn(move || {
        if tx.blocking_send(StreamMsg::Started { run: rand::random() }).is_err() {
            return;
        }
        let mut buf = vec![0; READ_CHUNK];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tx.blocking_send(StreamMsg::Data(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read stdin; the stdin input ends");
                    break;
                }
            }
        }
        let _ = tx.blocking_send(StreamMsg::Ended);
        let _ = tx.blocking_send(StreamMsg::Closed);
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the stdin reader thread");
    }
    rx
}

/// Counters of one stream input, for metrics and the summary.
#[derive(Debug, Default, Clone, Copy)]
pub struct StreamStats {
    pub runs: u64,
    pub lines_read: u64,
    pub bytes_read: u64,
    pub events_sent: u64,
    pub events_acked: u64,
    pub bytes_acked: u64,
    pub events_truncated: u64,
    pub events_too_large: u64,
}

/// A point-in-time view of one stream input.
#[derive(Debug, Clone)]
pub struct StreamStatus {
    /// Index in `agent.inputs`.
    pub input: usize,
    /// `exec` or `stdin`.
    pub kind: &'static str,
    /// The exec command; empty for stdin.
    pub command: String,
    pub closed: bool,
    pub stats: StreamStats,
}

/// The tailer-side state of one `exec` or `stdin` input.
pub(crate) struct StreamInput {
    index: usize,
    rx: StreamReceiver,
    meta: InputMeta,
    topic: String,
    command: String,
    include_lines: Vec<BytesRegex>,
    exclude_lines: Vec<BytesRegex>,
    multiline_config: Option<crate::config::MultilineConfig>,
    max_line_bytes: usize,
    reader: LineReader,
    multiline: Option<Multiline>,
    /// Hash of (command, run id): the `event.id` basis of this run.
    basis: u64,
    seq: u64,
    pub(crate) closed: bool,
    pub(crate) stats: StreamStats,
}

impl StreamInput {
    pub(crate) fn new(
        index: usize,
        input: &InputConfig,
        host: &str,
        default_topic: &str,
        rx: StreamReceiver,
    ) -> Result<Self> {
        let bre = |list: &[String]| -> Result<Vec<BytesRegex>> {
            list.iter().map(|r| BytesRegex::new(r).map_err(|e| Error::Config(format!("{r:?}: {e}")))).collect()
        };
        let (input_type, command) = match input.kind {
            InputType::Exec => ("exec", input.command.clone().unwrap_or_default()),
            InputType::Stdin => ("stdin", String::new()),
            InputType::File => {
                return Err(Error::Config(format!("agent.inputs[{index}] is a file input, not a stream")))
            }
        };
        let multiline = input
            .multiline
            .as_ref()
            .map(|m| Multiline::new(m, input.max_line_bytes))
            .transpose()
            .map_err(|e| Error::Config(format!("agent.inputs[{index}].multiline.pattern: {e}")))?;
        Ok(Self {
            index,
            rx,
            meta: InputMeta {
                host: host.to_string(),
                input_type,
                tags: input.tags.clone(),
                fields: input.fields.clone(),
                fields_under_root: input.fields_under_root,
                command_line: (!command.is_empty()).then(|| command.clone()),
                timezone: crate::envelope::input_timezone(input.timezone.as_deref()),
                fragments: Default::default(),
            },
            topic: input.topic.clone().unwrap_or_else(|| default_topic.to_string()),
            command,
            include_lines: bre(&input.include_lines)?,
            exclude_lines: bre(&input.exclude_lines)?,
            multiline_config: input.multiline.clone(),
            max_line_bytes: input.max_line_bytes,
            reader: LineReader::new(input.max_line_bytes, 0),
            multiline,
            basis: 0,
            seq: 0,
            closed: false,
            stats: StreamStats::default(),
        })
    }

    pub(crate) fn index(&self) -> usize {
        self.index
    }

    pub(crate) fn status(&self) -> StreamStatus {
        StreamStatus {
            input: self.index,
            kind: self.meta.input_type,
            command: self.command.clone(),
            closed: self.closed,
            stats: self.stats,
        }
    }

    /// Counts `events` acknowledged events, `bytes` of the stream's output.
    pub(crate) fn on_acks(&mut self, events: u64, bytes: u64) {
        self.stats.events_acked += events;
        self.stats.bytes_acked += bytes;
    }

    /// Drains messages while the queue budget allows, at most `budget` bytes. Returns whether anything
    /// was received.
    pub(crate) fn pump<S: Sink>(&mut self, out: &mut Emitter<S>, clock: &dyn Clock, mut budget: usize) -> bool {
        let mut progressed = false;
        while !self.closed && budget > 0 && out.has_room() {
            let msg = match self.rx.try_recv() {
                Ok(m) => m,
                Err(mpsc::error::TryRecvError::Empty) => break,
                // The producer is gone without saying Closed (it panicked, or the runtime stopped).
                Err(mpsc::error::TryRecvError::Disconnected) => StreamMsg::Closed,
            };
            progressed = true;
            match msg {
                StreamMsg::Started { run } => {
                    self.finish_run(out, clock);
                    self.stats.runs += 1;
                    let mut basis = self.command.as_bytes().to_vec();
                    basis.extend_from_slice(&run.to_le_bytes());
                    self.basis = xxh3_64(&basis);
                    self.seq = 0;
                    self.reader = LineReader::new(self.max_line_bytes, 0);
                    self.multiline =
                        self.multiline_config.as_ref().and_then(|m| Multiline::new(m, self.max_line_bytes).ok());
                }
                StreamMsg::Data(data) => {
                    budget = budget.saturating_sub(data.len());
                    self.stats.bytes_read += data.len() as u64;
                    self.feed(&data, out, clock);
                }
                StreamMsg::Ended => self.finish_run(out, clock),
                StreamMsg::Closed => {
                    self.finish_run(out, clock);
                    self.closed = true;
                }
            }
        }
        progressed
    }

    /// Sends a multiline event that waited longer than its `timeout`, unless output is waiting in the
    /// channel: reading pauses while the queue is full, and the event's next lines may be there, unread.
    pub(crate) fn flush_stale<S: Sink>(&mut self, out: &mut Emitter<S>, clock: &dyn Clock) {
        if !self.rx.is_empty() {
            return;
        }
        let Some(mut ml) = self.multiline.take() else { return };
        if ml.has_pending() {
            let timestamp = timestamp_at(clock.unix_ms());
            ml.flush_if_stale(clock.now(), |e| self.emit(e, &timestamp, out));
        }
        self.multiline = Some(ml);
    }

    /// Drains what is already buffered, then sends the partial line and the pending multiline event:
    /// on shutdown nothing could read them again later.
    pub(crate) fn shutdown<S: Sink>(&mut self, out: &mut Emitter<S>, clock: &dyn Clock) {
        while let Ok(msg) = self.rx.try_recv() {
            if let StreamMsg::Data(data) = msg {
                self.stats.bytes_read += data.len() as u64;
                self.feed(&data, out, clock);
            }
        }
        self.finish_run(out, clock);
    }

    fn feed<S: Sink>(&mut self, data: &[u8], out: &mut Emitter<S>, clock: &dyn Clock) {
        let timestamp = timestamp_at(clock.unix_ms());
        let now = clock.now();
        let mut reader = std::mem::replace(&mut self.reader, LineReader::new(self.max_line_bytes, 0));
        let mut multiline = self.multiline.take();
        reader.feed(data, |line| {
            self.stats.lines_read += 1;
            match multiline.as_mut() {
                Some(ml) => ml.push(line, now, |e| self.emit(e, &timestamp, out)),
                None => self.emit(line, &timestamp, out),
            }
        });
        self.reader = reader;
        self.multiline = multiline;
    }

    fn finish_run<S: Sink>(&mut self, out: &mut Emitter<S>, clock: &dyn Clock) {
        let timestamp = timestamp_at(clock.unix_ms());
        let now = clock.now();
        let mut reader = std::mem::replace(&mut self.reader, LineReader::new(self.max_line_bytes, 0));
        let mut multiline = self.multiline.take();
        reader.flush_partial(|line| {
            self.stats.lines_read += 1;
            match multiline.as_mut() {
                Some(ml) => ml.push(line, now, |e| self.emit(e, &timestamp, out)),
                None => self.emit(line, &timestamp, out),
            }
        });
        if let Some(ml) = multiline.as_mut() {
            ml.flush(|e| self.emit(e, &timestamp, out));
        }
        self.reader = reader;
        self.multiline = multiline;
    }

    fn emit<S: Sink>(&mut self, event: RawLine<'_>, timestamp: &str, out: &mut Emitter<S>) {
        let keep = (self.include_lines.is_empty() || self.include_lines.iter().any(|re| re.is_match(event.bytes)))
            && !self.exclude_lines.iter().any(|re| re.is_match(event.bytes));
        let seq = self.seq;
        self.seq += 1;
        if !keep {
            return;
        }
        let id = event_id(&self.meta.host, self.basis, seq, seq);
        let parts = EventParts { timestamp, message: event.bytes, file: None, id: &id, truncated: event.truncated };
        let origin = Origin { source: STREAM_SOURCE | self.index as u64, start: event.start, end: event.end };
        if out.send(&self.meta, &self.topic, &parts, origin).too_large {
            self.stats.events_too_large += 1;
        }
        self.stats.events_sent += 1;
        if event.truncated {
            self.stats.events_truncated += 1;
        }
    }
}
