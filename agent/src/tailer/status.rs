//! What the tailer reports about itself: per-file [`FileStatus`], the metrics [`Snapshot`] published for
//! the `/metrics` endpoint, and the periodic summary log line.

use std::path::PathBuf;
use std::time::Instant;

use super::{FileStats, Tailer};
use crate::identity::FileIdentity;
use crate::sink::Sink;
use crate::snapshot::Snapshot;
use crate::stalls::StallKind;
use crate::stream::{StreamInput, StreamStatus};

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

impl<S: Sink> Tailer<S> {
    pub(super) fn publish(&mut self) {
        self.last_publish = Instant::now();
        if let Some(shared) = &self.metrics {
            let snapshot = self.snapshot();
            *shared.lock().unwrap() = snapshot;
        }
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
            stalls: self
                .inputs
                .iter()
                .flat_map(|input| input.unmatched.stalls(StallKind::Glob))
                .chain(self.sink.stalls())
                .collect(),
        }
    }

    /// Encoded bytes handed to the sink and not yet acknowledged.
    pub fn in_flight_bytes(&self) -> usize {
        self.in_flight
    }

    pub(super) fn log_summary(&self) {
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
