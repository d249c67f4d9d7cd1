//! The Prometheus `/metrics` endpoint (opt-in with `agent.metrics_address`).
//!
//! The tailer thread refreshes a [`Snapshot`] every 200 ms ([`crate::Tailer::publish_to`]); the HTTP side
//! only renders the latest one, so a slow or hostile scraper can never stall reading. The server is a
//! few lines of tokio: one task per connection, a request head capped at 8 KiB and 5 s, `GET /metrics`
//! answered in the text exposition format 0.0.4, anything else 404 (or 405 for other methods), and the
//! connection closed after each response.
//!
//! References: <https://prometheus.io/docs/instrumenting/exposition_formats/>.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::stream::StreamStatus;
use crate::tailer::FileStatus;

/// Largest request head read before answering 431.
const MAX_HEAD: usize = 8 * 1024;
/// A client that has not sent its request head by then is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

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
}

pub type SharedSnapshot = Arc<Mutex<Snapshot>>;

/// A bound, not yet running, metrics listener.
pub struct MetricsServer {
    listener: TcpListener,
}

impl MetricsServer {
    pub async fn bind(address: &str) -> std::io::Result<Self> {
        Ok(Self { listener: TcpListener::bind(address).await? })
    }

    /// The bound address (port 0 picks one).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `snapshot` at `/metrics` until `shutdown` is cancelled.
    pub async fn run(self, snapshot: SharedSnapshot, shutdown: CancellationToken) {
        let handler: Handler = Arc::new(move |path: &str| match path {
            "/metrics" => Some(Page::metrics(render(&snapshot.lock().unwrap_or_else(|e| e.into_inner())))),
            _ => None,
        });
        self.serve(handler, shutdown).await
    }

    /// Serves GET requests with `handler` (path → page; `None` answers 404) until `shutdown` is
    /// cancelled. The appliance's admin endpoint uses this with its own pages.
    pub async fn serve(self, handler: Handler, shutdown: CancellationToken) {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => return,
                a = self.listener.accept() => a,
            };
            match accepted {
                Ok((socket, _)) => {
                    tokio::spawn(serve(socket, handler.clone()));
                }
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "metrics: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// A page served by [`MetricsServer::serve`].
pub struct Page {
    pub content_type: &'static str,
    pub body: String,
}

impl Page {
    /// Prometheus text exposition format 0.0.4.
    pub fn metrics(body: String) -> Self {
        Self { content_type: "text/plain; version=0.0.4; charset=utf-8", body }
    }

    pub fn json(body: String) -> Self {
        Self { content_type: "application/json", body }
    }
}

/// Maps a request path (without query) to a page.
pub type Handler = Arc<dyn Fn(&str) -> Option<Page> + Send + Sync>;

async fn serve(mut socket: TcpStream, handler: Handler) {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let complete = tokio::time::timeout(READ_TIMEOUT, async {
        loop {
            if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
                return true;
            }
            if head.len() > MAX_HEAD {
                return false;
            }
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .unwrap_or(false);
    let response = if !complete {
        if head.len() <= MAX_HEAD {
            return;
        }
        respond("431 Request Header Fields Too Large", "text/plain", "request head too large\n")
    } else {
        let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
        let line = String::from_utf8_lossy(line);
        let mut parts = line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let path = target.split('?').next().unwrap_or("");
        match (method, handler(path)) {
            ("GET", Some(page)) => respond("200 OK", page.content_type, &page.body),
            ("GET", None) => respond("404 Not Found", "text/plain", "not found\n"),
            _ => respond("405 Method Not Allowed", "text/plain", "only GET\n"),
        }
    };
    let _ = socket.write_all(&response).await;
    let _ = socket.shutdown().await;
}

fn respond(status: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The text exposition of `s`.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: &mut dyn Iterator<Item = (String, u64)>| {
        let _ = writeln!(out, "# HELP logpipe_agent_{name} {help}");
        let _ = writeln!(out, "# TYPE logpipe_agent_{name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "logpipe_agent_{name}{labels} {value}");
        }
    };
    let file = |f: &FileStatus| format!("{{path=\"{}\"}}", escape(&f.path.to_string_lossy()));
    type FileMetric = (&'static str, &'static str, &'static str, fn(&FileStatus) -> u64);
    let per_file: [FileMetric; 9] = [
        ("file_lines_read_total", "counter", "Lines read from the file by this process.", |f| f.stats.lines_read),
        ("file_bytes_read_total", "counter", "Bytes read from the file by this process.", |f| f.stats.bytes_read),
        ("file_events_sent_total", "counter", "Events handed to the output.", |f| f.stats.events_sent),
        ("file_events_acked_total", "counter", "Events acknowledged by the output.", |f| f.stats.events_acked),
        ("file_events_in_flight", "gauge", "Events sent and not yet acknowledged.", |f| {
            f.stats.events_sent.saturating_sub(f.stats.events_acked)
        }),
        ("file_acknowledged_offset_bytes", "gauge", "Bytes of the file acknowledged (the registry offset).", |f| {
            f.acked_offset
        }),
        ("file_bytes_behind", "gauge", "File size minus the acknowledged offset.", |f| f.size.saturating_sub(f.acked_offset)),
        ("file_events_truncated_total", "counter", "Lines cut at max_line_bytes.", |f| f.stats.events_truncated),
        ("file_events_too_large_total", "counter", "Events whose message was cut to fit max_message_bytes.", |f| {
            f.stats.events_too_large
        }),
    ];
    for (name, kind, help, value) in per_file {
        family(name, kind, help, &mut s.files.iter().map(|f| (file(f), value(f))));
    }
    let stream = |st: &StreamStatus| {
        format!("{{type=\"{}\",input=\"{}\",command=\"{}\"}}", st.kind, st.input, escape(&st.command))
    };
    type StreamMetric = (&'static str, &'static str, &'static str, fn(&StreamStatus) -> u64);
    let per_stream: [StreamMetric; 9] = [
        ("input_runs_total", "counter", "Times the exec command was started (stdin: 1).", |st| st.stats.runs),
        ("input_lines_read_total", "counter", "Lines read from an exec or stdin input.", |st| st.stats.lines_read),
        ("input_bytes_read_total", "counter", "Bytes read from an exec or stdin input.", |st| st.stats.bytes_read),
        ("input_events_sent_total", "counter", "Events handed to the output.", |st| st.stats.events_sent),
        ("input_bytes_acked_total", "counter", "Bytes of lines whose events were acknowledged.", |st| st.stats.bytes_acked),
        ("input_events_in_flight", "gauge", "Events sent and not yet acknowledged.", |st| {
            st.stats.events_sent.saturating_sub(st.stats.events_acked)
        }),
        ("input_events_truncated_total", "counter", "Lines cut at max_line_bytes.", |st| st.stats.events_truncated),
        ("input_events_too_large_total", "counter", "Events cut to fit max_message_bytes.", |st| st.stats.events_too_large),
        ("input_closed", "gauge", "1 once the input ended (stdin at EOF).", |st| st.closed as u64),
    ];
    for (name, kind, help, value) in per_stream {
        family(name, kind, help, &mut s.streams.iter().map(|st| (stream(st), value(st))));
    }
    let none = String::new;
    family("events_sent_total", "counter", "Events handed to the output, all inputs.", &mut std::iter::once((none(), s.events_sent)));
    family("events_acked_total", "counter", "Events acknowledged, all inputs.", &mut std::iter::once((none(), s.events_acked)));
    family("in_flight_bytes", "gauge", "Encoded bytes sent and not yet acknowledged.", &mut std::iter::once((none(), s.in_flight_bytes as u64)));
    family(
        "events_message_truncated_total",
        "counter",
        "Events cut to fit max_message_bytes, all inputs.",
        &mut std::iter::once((none(), s.message_truncated)),
    );
    out
}

/// Label values escape `\`, `"` and newlines.
fn escape(v: &str) -> String {
    v.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), r#"a\"b\\c\nd"#);
    }
}
