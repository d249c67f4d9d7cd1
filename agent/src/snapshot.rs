//! What the agent publishes about itself: the [`Snapshot`] the tailer thread refreshes every 200 ms
//! ([`crate::Tailer::publish_to`]), and its Prometheus families (`logpipe_agent_*`), served at
//! `/metrics` on `agent.metrics_address` (opt-in) and by the appliance's admin endpoint. The HTTP side
//! only renders the latest snapshot, so a slow or hostile scraper can never stall reading.

use std::sync::{Arc, Mutex, PoisonError};

use axum::routing::get;
use logpipe_admin::{Exposition, Kind, Router};

use crate::stalls::{Stall, StallKind};
use crate::stream::StreamStatus;
use crate::tailer::FileStatus;

/// What the endpoint shows, as of the last refresh.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub files: Vec<FileStatus>,
    pub streams: Vec<StreamStatus>,
    pub in_flight_bytes: usize,
    pub events_sent: u64,
    pub events_acked: u64,
    /// Events whose message was cut to fit `max_message_bytes` (by the encoder or after a refusal).
    pub message_truncated: u64,
    /// What keeps events from flowing now: globs matching no file, topics refusing deliveries.
    pub stalls: Vec<Stall>,
}

pub type SharedSnapshot = Arc<Mutex<Snapshot>>;

/// The agent's own endpoint: `GET /metrics`.
pub fn router(snapshot: SharedSnapshot) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let page = render(&snapshot.lock().unwrap_or_else(PoisonError::into_inner)).finish();
            async move { logpipe_admin::metrics(page) }
        }),
    )
}

/// The agent's metric families for `s`.
pub fn render(s: &Snapshot) -> Exposition {
    let mut page = Exposition::new();
    let file = |f: &FileStatus| [("path", f.path.to_string_lossy().into_owned())];
    type FileMetric = (&'static str, Kind, &'static str, fn(&FileStatus) -> u64);
    let per_file: [FileMetric; 9] = [
        ("file_lines_read_total", Kind::Counter, "Lines read from the file by this process.", |f| f.stats.lines_read),
        ("file_bytes_read_total", Kind::Counter, "Bytes read from the file by this process.", |f| f.stats.bytes_read),
        ("file_events_sent_total", Kind::Counter, "Events handed to the output.", |f| f.stats.events_sent),
        ("file_events_acked_total", Kind::Counter, "Events acknowledged by the output.", |f| f.stats.events_acked),
        ("file_events_in_flight", Kind::Gauge, "Events sent and not yet acknowledged.", |f| {
            f.stats.events_sent.saturating_sub(f.stats.events_acked)
        }),
        ("file_acknowledged_offset_bytes", Kind::Gauge, "Bytes of the file acknowledged (the registry offset).", |f| {
            f.acked_offset
        }),
        ("file_bytes_behind", Kind::Gauge, "File size minus the acknowledged offset.", |f| {
            f.size.saturating_sub(f.acked_offset)
        }),
        ("file_events_truncated_total", Kind::Counter, "Lines cut at max_line_bytes.", |f| f.stats.events_truncated),
        ("file_events_too_large_total", Kind::Counter, "Events whose message was cut to fit max_message_bytes.", |f| {
            f.stats.events_too_large
        }),
    ];
    for (name, kind, help, value) in per_file {
        page.family(&format!("logpipe_agent_{name}"), kind, help, s.files.iter().map(|f| (file(f), value(f))));
    }
    let stream = |st: &StreamStatus| {
        [("type", st.kind.to_string()), ("input", st.input.to_string()), ("command", st.command.clone())]
    };
    type StreamMetric = (&'static str, Kind, &'static str, fn(&StreamStatus) -> u64);
    let per_stream: [StreamMetric; 9] = [
        ("input_runs_total", Kind::Counter, "Times the exec command was started (stdin: 1).", |st| st.stats.runs),
        ("input_lines_read_total", Kind::Counter, "Lines read from an exec or stdin input.", |st| st.stats.lines_read),
        ("input_bytes_read_total", Kind::Counter, "Bytes read from an exec or stdin input.", |st| st.stats.bytes_read),
        ("input_events_sent_total", Kind::Counter, "Events handed to the output.", |st| st.stats.events_sent),
        ("input_bytes_acked_total", Kind::Counter, "Bytes of lines whose events were acknowledged.", |st| {
            st.stats.bytes_acked
        }),
        ("input_events_in_flight", Kind::Gauge, "Events sent and not yet acknowledged.", |st| {
            st.stats.events_sent.saturating_sub(st.stats.events_acked)
        }),
        ("input_events_truncated_total", Kind::Counter, "Lines cut at max_line_bytes.", |st| st.stats.events_truncated),
        ("input_events_too_large_total", Kind::Counter, "Events cut to fit max_message_bytes.", |st| {
            st.stats.events_too_large
        }),
        ("input_closed", Kind::Gauge, "1 once the input ended (stdin at EOF).", |st| st.closed as u64),
    ];
    for (name, kind, help, value) in per_stream {
        page.family(&format!("logpipe_agent_{name}"), kind, help, s.streams.iter().map(|st| (stream(st), value(st))));
    }
    page.single(
        "logpipe_agent_events_sent_total",
        Kind::Counter,
        "Events handed to the output, all inputs.",
        s.events_sent,
    );
    page.single("logpipe_agent_events_acked_total", Kind::Counter, "Events acknowledged, all inputs.", s.events_acked);
    page.single(
        "logpipe_agent_in_flight_bytes",
        Kind::Gauge,
        "Encoded bytes sent and not yet acknowledged.",
        s.in_flight_bytes,
    );
    page.family(
        "logpipe_agent_stalled",
        Kind::Gauge,
        "1 per condition that keeps events from flowing: a glob matching no file or a file it cannot open, a topic \
         refusing deliveries.",
        s.stalls.iter().map(|st| {
            let kind = match st.kind {
                StallKind::Glob => "glob",
                StallKind::Topic => "topic",
            };
            ([("kind", kind.to_owned()), ("key", st.key.clone())], 1)
        }),
    );
    page.single(
        "logpipe_agent_events_message_truncated_total",
        Kind::Counter,
        "Events cut to fit max_message_bytes, all inputs.",
        s.message_truncated,
    );
    page
}
