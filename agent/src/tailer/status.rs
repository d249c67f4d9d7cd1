//! What the tailer reports about itself: per-file [`FileStatus`], the metrics [`Snapshot`] published for
//! the `/metrics` endpoint, and the periodic summary log line.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::file_table::FileStats;
use super::Tailer;
use crate::identity::FileIdentity;
use crate::sink::Sink;
use crate::snapshot::{SharedSnapshot, Snapshot};
use crate::stalls::StallKind;
use crate::stream::{StreamInput, StreamStatus};

/// How often the metrics snapshot is refreshed.
const METRICS_PUBLISH: Duration = Duration::from_millis(200);

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
    /// Rotations seen at this path since start (renamed away or truncated).
    pub rotations: u64,
}

/// When the summary is logged and the metrics snapshot refreshed, and where it goes.
pub(super) struct Reports {
    metrics: Option<SharedSnapshot>,
    summary_interval: Duration,
    last_summary: Instant,
    last_publish: Instant,
}

impl Reports {
    pub(super) fn new(summary_interval: Duration, now: Instant) -> Self {
        Self { metrics: None, summary_interval, last_summary: now, last_publish: now }
    }

    /// Whether the summary is due at `now`; if so, it counts as logged.
    fn summary_due(&mut self, now: Instant) -> bool {
        let due = now.saturating_duration_since(self.last_summary) >= self.summary_interval;
        if due {
            self.last_summary = now;
        }
        due
    }

    fn publish_due(&self, now: Instant) -> bool {
        self.metrics.is_some() && now.saturating_duration_since(self.last_publish) >= METRICS_PUBLISH
    }
}

impl<S: Sink> Tailer<S> {
    /// Keeps `shared` up to date (every 200 ms) for the metrics endpoint.
    pub fn publish_to(&mut self, shared: SharedSnapshot) {
        *shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = self.snapshot();
        self.reports.metrics = Some(shared);
    }

    /// The summary and the metrics snapshot, when due.
    pub(super) fn report(&mut self) {
        if self.reports.summary_due(self.clock.now()) {
            self.log_summary();
        }
        if self.reports.publish_due(self.clock.now()) {
            self.publish();
        }
    }

    pub(super) fn publish(&mut self) {
        self.reports.last_publish = self.clock.now();
        if let Some(shared) = &self.reports.metrics {
            let snapshot = self.snapshot();
            *shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = snapshot;
        }
    }

    pub(super) fn publishing(&self) -> bool {
        self.reports.metrics.is_some()
    }

    /// Per-file status, for metrics and tests.
    pub fn status(&self) -> Vec<FileStatus> {
        let mut out: Vec<FileStatus> = self
            .files
            .states()
            .map(|s| FileStatus {
                path: s.path.clone(),
                identity: s.identity,
                open: s.is_open(),
                acked_offset: s.acked.offset(),
                read_offset: s.read_offset,
                size: s.size,
                stats: s.stats,
                rotations: self.files.rotations(&s.path),
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
        let totals = self.emitter.totals();
        Snapshot {
            files: self.status(),
            streams: self.stream_status(),
            in_flight_bytes: self.emitter.in_flight(),
            events_sent: totals.events_sent,
            events_acked: totals.events_acked,
            message_truncated: self.emitter.message_truncated(),
            stalls: self
                .inputs
                .iter()
                .flat_map(|input| input.unmatched.stalls(StallKind::Glob))
                .chain(self.emitter.sink_stalls())
                .collect(),
        }
    }

    /// Encoded bytes handed to the sink and not yet acknowledged.
    pub fn in_flight_bytes(&self) -> usize {
        self.emitter.in_flight()
    }

    fn log_summary(&self) {
        let open = self.files.states().filter(|s| s.is_open()).count();
        let behind: u64 = self.files.states().map(|s| s.size.saturating_sub(s.acked.offset())).sum();
        let totals = self.emitter.totals();
        tracing::info!(
            files_open = open,
            files_known = self.files.known(),
            events_sent = totals.events_sent,
            events_acked = totals.events_acked,
            stream_events_sent = self.streams.iter().map(|s| s.stats.events_sent).sum::<u64>(),
            in_flight_bytes = self.emitter.in_flight(),
            bytes_behind = behind,
            events_message_truncated = self.emitter.encoder_truncated(),
            "agent summary"
        );
    }
}
