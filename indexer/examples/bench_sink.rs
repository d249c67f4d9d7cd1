//! The Elasticsearch stand-in of `scripts/bench-indexer.sh`: accepts every `_bulk` request at once, so
//! the benchmark measures the indexer and not a cluster.
//!
//! A minimal HTTP/1.1 server (raw TCP, keep-alive, `Content-Length` bodies) on one thread:
//! - `POST …/_bulk`: counts documents as non-empty lines / 2 while the body streams in, and answers
//!   `{"took":1,"errors":false,"items":[]}`, which the indexer's fast path accepts on the `errors` flag.
//! - `PUT /_index_template/…`: `{"acknowledged":true}`.
//! - `GET /_bench/stats`: `{"docs":N,"bytes":N,"requests":N}`.
//! - anything else: `{}`.
//!
//! Stdout: `listening on 127.0.0.1:PORT` first; a `progress docs=… bytes=… requests=…` line each second
//! while documents arrive; and, with `--expect N`, one `reached docs=… bytes=… requests=…
//! first_request_unix=… reached_unix=…` line when N documents have arrived (times are Unix seconds, so
//! a script can subtract its own start time).
//!
//! ```text
//! cargo run --release -p logpipe-indexer --example bench_sink -- --expect 1000000
//! ```

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const USAGE: &str = "\
usage: bench_sink [options]
  --listen ADDR   address to listen on (127.0.0.1:0)
  --expect N      print a `reached` line once N documents have arrived (0 = never)";

/// Refuse header blocks larger than this (the indexer's are a few hundred bytes).
const MAX_HEAD: usize = 64 * 1024;

#[derive(Default)]
struct Counters {
    docs: AtomicU64,
    bytes: AtomicU64,
    requests: AtomicU64,
    /// Unix time of the first `_bulk` request, in nanoseconds (0 until then).
    first_ns: AtomicU64,
    reached: AtomicBool,
}

fn unix_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

fn secs(ns: u64) -> String {
    format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000)
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

impl Counters {
    fn stats(&self) -> String {
        format!(
            "docs={} bytes={} requests={}",
            self.docs.load(Relaxed),
            self.bytes.load(Relaxed),
            self.requests.load(Relaxed)
        )
    }

    fn bulk(&self, docs: u64, bytes: u64, expect: u64) {
        let now = unix_ns();
        let _ = self.first_ns.compare_exchange(0, now, Relaxed, Relaxed);
        self.requests.fetch_add(1, Relaxed);
        self.bytes.fetch_add(bytes, Relaxed);
        let total = self.docs.fetch_add(docs, Relaxed) + docs;
        if expect > 0 && total >= expect && !self.reached.swap(true, Relaxed) {
            say(&format!(
                "reached {} first_request_unix={} reached_unix={}",
                self.stats(),
                secs(self.first_ns.load(Relaxed)),
                secs(now)
            ));
        }
    }
}

/// What the request line and headers say.
struct Head {
    method: String,
    path: String,
    content_length: usize,
    chunked: bool,
    close: bool,
}

fn parse_head(head: &[u8]) -> Result<Head, String> {
    let text = std::str::from_utf8(head).map_err(|_| "request head is not UTF-8".to_string())?;
    let mut lines = text.split("\r\n");
    let mut request = lines.next().unwrap_or_default().split(' ');
    let (method, path) =
        (request.next().unwrap_or_default().to_string(), request.next().unwrap_or_default().to_string());
    let mut h = Head { method, path, content_length: 0, chunked: false, close: false };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            h.content_length = value.parse().map_err(|_| format!("bad content-length {value:?}"))?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            h.chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            h.close = value.eq_ignore_ascii_case("close");
        }
    }
    Ok(h)
}

fn newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

async fn respond(stream: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let response =
        format!("HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len());
    stream.write_all(response.as_bytes()).await
}

/// Serves one keep-alive connection until the peer closes it.
async fn serve(mut stream: TcpStream, counters: Arc<Counters>, expect: u64) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; 1 << 20];
    // Unread bytes are buf[start..end].
    let (mut start, mut end) = (0usize, 0usize);
    loop {
        let head_end = loop {
            if let Some(p) = buf[start..end].windows(4).position(|w| w == b"\r\n\r\n") {
                break start + p + 4;
            }
            if end - start > MAX_HEAD {
                return Err("request head over 64 KiB".into());
            }
            if start > 0 {
                buf.copy_within(start..end, 0);
                (start, end) = (0, end - start);
            }
            let n = stream.read(&mut buf[end..]).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Ok(());
            }
            end += n;
        };
        let head = parse_head(&buf[start..head_end])?;
        start = head_end;
        if head.chunked {
            let _ =
                respond(&mut stream, "501 Not Implemented", r#"{"error":"chunked bodies are not supported"}"#).await;
            return Err("chunked request body".into());
        }

        // The body streams through the buffer; only its newlines are counted.
        let mut remaining = head.content_length;
        let mut lines = 0u64;
        let take = remaining.min(end - start);
        lines += newlines(&buf[start..start + take]);
        (start, remaining) = (start + take, remaining - take);
        if start == end {
            (start, end) = (0, 0);
        }
        while remaining > 0 {
            let n = stream.read(&mut buf[..]).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed inside a request body".into());
            }
            let take = remaining.min(n);
            lines += newlines(&buf[..take]);
            remaining -= take;
            (start, end) = (take, n);
        }

        if head.path.split('?').next().unwrap_or_default().ends_with("/_bulk") && head.method == "POST" {
            counters.bulk(lines / 2, head.content_length as u64, expect);
            respond(&mut stream, "200 OK", r#"{"took":1,"errors":false,"items":[]}"#).await
        } else if head.path.starts_with("/_index_template/") {
            respond(&mut stream, "200 OK", r#"{"acknowledged":true}"#).await
        } else if head.path == "/_bench/stats" {
            let body = format!(
                r#"{{"docs":{},"bytes":{},"requests":{}}}"#,
                counters.docs.load(Relaxed),
                counters.bytes.load(Relaxed),
                counters.requests.load(Relaxed)
            );
            respond(&mut stream, "200 OK", &body).await
        } else {
            respond(&mut stream, "200 OK", "{}").await
        }
        .map_err(|e| e.to_string())?;
        if head.close {
            return Ok(());
        }
    }
}

async fn run(listen: &str, expect: u64) -> Result<(), String> {
    let listener = TcpListener::bind(listen).await.map_err(|e| format!("{listen}: {e}"))?;
    say(&format!("listening on {}", listener.local_addr().map_err(|e| e.to_string())?));
    let counters = Arc::new(Counters::default());
    let progress = counters.clone();
    tokio::spawn(async move {
        let mut last = 0;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let docs = progress.docs.load(Relaxed);
            if docs != last {
                say(&format!("progress {}", progress.stats()));
                last = docs;
            }
        }
    });
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("bench_sink: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let counters = counters.clone();
        tokio::spawn(async move {
            if let Err(e) = serve(stream, counters, expect).await {
                eprintln!("bench_sink: {peer}: {e}");
            }
        });
    }
}

fn main() -> ExitCode {
    let (mut listen, mut expect) = ("127.0.0.1:0".to_string(), 0u64);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match (flag.as_str(), it.next()) {
            ("--listen", Some(v)) => listen = v,
            ("--expect", Some(v)) => match v.parse() {
                Ok(n) => expect = n,
                Err(e) => {
                    eprintln!("--expect {v}: {e}");
                    return ExitCode::from(2);
                }
            },
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    // One thread: the stand-in shares the machine with the indexer and the broker.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench_sink: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&listen, expect)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_sink: {e}");
            ExitCode::FAILURE
        }
    }
}
