//! `exec` and `stdin` inputs through the tailer and a test sink, and the `/metrics` endpoint over real HTTP.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use logpipe_admin::AdminServer;
use logpipe_agent::config::{AgentConfig, InputConfig, InputType, MultilineConfig};
use logpipe_agent::snapshot::{self, SharedSnapshot};
use logpipe_agent::{MemorySink, Tailer};
use logpipe_config::Validate;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

mod common;
use common::{holds, poll_until, DEADLINE};

fn config(dir: &Path, input: InputConfig) -> AgentConfig {
    let config = AgentConfig {
        registry: dir.join("state/registry.json"),
        registry_flush: Duration::from_millis(20),
        shutdown_timeout: Duration::from_millis(500),
        host_name: Some("test-host".into()),
        inputs: vec![input],
        ..Default::default()
    };
    config.validate().unwrap();
    config
}

fn events(sink: &MemorySink) -> Vec<Value> {
    sink.sent().iter().map(|s| serde_json::from_slice(&s.payload).unwrap()).collect()
}

fn messages(sink: &MemorySink) -> Vec<String> {
    events(sink).iter().map(|e| e["message"].as_str().unwrap().to_string()).collect()
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    poll_until(what, DEADLINE, || holds(cond(), String::new));
}

fn start(tailer: Tailer<MemorySink>) -> (CancellationToken, JoinHandle<logpipe_agent::Result<()>>) {
    let token = CancellationToken::new();
    let t = token.clone();
    (token, std::thread::spawn(move || tailer.run(&t)))
}

#[test]
fn stdin_only_agent_ends_after_eof_with_every_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = InputConfig {
        kind: InputType::Stdin,
        tags: vec!["in".into()],
        max_line_bytes: 64,
        exclude_lines: vec!["^DEBUG".into()],
        ..Default::default()
    };
    let config = config(dir.path(), input);
    let mut data = Vec::new();
    for i in 0..1000 {
        writeln!(data, "line {i}").unwrap();
    }
    data.extend_from_slice(b"DEBUG dropped\r\n");
    data.extend_from_slice(b"bad \xff utf8 and \0 nul\n");
    data.extend_from_slice(&[b'x'; 200]);
    data.extend_from_slice(b"\nlast line without newline");
    let (tx, rx) = mpsc::channel();
    let sink = MemorySink::new(tx.clone());
    let mut tailer = Tailer::new(&config, sink.clone(), rx).unwrap();
    tailer.add_stream(&config, 0, logpipe_agent::stream::read_to_end(std::io::Cursor::new(data))).unwrap();
    // Never cancelled: the tailer must stop by itself at EOF.
    let (_token, handle) = start(tailer);
    wait_for("the tailer to end at EOF", || handle.is_finished());
    handle.join().unwrap().unwrap();

    let msgs = messages(&sink);
    assert_eq!(msgs.len(), 1003, "1000 lines, bad bytes, the long line, the last partial line");
    assert_eq!(msgs[0], "line 0");
    assert_eq!(msgs[999], "line 999");
    assert_eq!(msgs[1000], "bad \u{fffd} utf8 and \u{0} nul");
    assert_eq!(msgs[1001], "x".repeat(64));
    assert_eq!(msgs[1002], "last line without newline");
    let evs = events(&sink);
    assert_eq!(evs[1001]["tags"], serde_json::json!(["in", "truncated"]));
    assert_eq!(evs[0]["input"]["type"], "stdin");
    assert!(evs[0].get("log").is_none() && evs[0].get("process").is_none());
    let ids: std::collections::HashSet<&str> = evs.iter().map(|e| e["event"]["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), evs.len(), "ids are unique");
    // The registry is written as on any shutdown (streams add nothing to it).
    assert!(config.registry.exists());
}

#[test]
fn stdin_multiline_pending_event_is_sent_at_eof() {
    let dir = tempfile::tempdir().unwrap();
    let input = InputConfig {
        kind: InputType::Stdin,
        multiline: Some(MultilineConfig { pattern: r"^\s".into(), ..Default::default() }),
        ..Default::default()
    };
    let config = config(dir.path(), input);
    let (tx, rx) = mpsc::channel();
    let sink = MemorySink::new(tx);
    let mut tailer = Tailer::new(&config, sink.clone(), rx).unwrap();
    let data = b"Exception: boom\n  at a\n  at b\nnext\n  at c\n".to_vec();
    tailer.add_stream(&config, 0, logpipe_agent::stream::read_to_end(std::io::Cursor::new(data))).unwrap();
    let (_token, handle) = start(tailer);
    wait_for("the tailer to end at EOF", || handle.is_finished());
    handle.join().unwrap().unwrap();
    assert_eq!(messages(&sink), ["Exception: boom\n  at a\n  at b", "next\n  at c"]);
}

fn exec_tailer(dir: &Path, command: String) -> (MemorySink, CancellationToken, JoinHandle<logpipe_agent::Result<()>>) {
    let input = InputConfig {
        kind: InputType::Exec,
        command: Some(command.clone()),
        tags: vec!["x".into()],
        ..Default::default()
    };
    let config = config(dir, input);
    let (tx, rx) = mpsc::channel();
    let sink = MemorySink::new(tx);
    let mut tailer = Tailer::new(&config, sink.clone(), rx).unwrap();
    let exec_stop = CancellationToken::new();
    tailer.add_stream(&config, 0, logpipe_agent::exec::spawn(command, exec_stop.clone())).unwrap();
    let (token, handle) = start(tailer);
    // One token for both, as `logpipe_agent::run` does.
    let t = token.clone();
    tokio::spawn(async move {
        t.cancelled().await;
        exec_stop.cancel();
    });
    (sink, token, handle)
}

fn alive(pid: u32) -> bool {
    // A zombie is dead for our purposes (its parent has not reaped it yet).
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_tail_f_ships_lines_and_is_killed_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let pidfile = dir.path().join("pid");
    std::fs::write(&log, "one\ntwo\n").unwrap();
    let command = format!("echo $$ > {}; exec tail -n +1 -F {}", pidfile.display(), log.display());
    let (sink, token, handle) = exec_tailer(dir.path(), command.clone());
    let s = sink.clone();
    tokio::task::spawn_blocking(move || wait_for("the first lines", || s.sent_count() >= 2)).await.unwrap();
    std::fs::OpenOptions::new().append(true).open(&log).unwrap().write_all(b"three\n").unwrap();
    let s = sink.clone();
    tokio::task::spawn_blocking(move || wait_for("the appended line", || s.sent_count() >= 3)).await.unwrap();
    let pid: u32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    assert!(alive(pid));

    token.cancel();
    tokio::task::spawn_blocking(move || handle.join().unwrap().unwrap()).await.unwrap();
    tokio::task::spawn_blocking(move || wait_for("tail -F to be killed", || !alive(pid))).await.unwrap();

    assert_eq!(messages(&sink), ["one", "two", "three"]);
    let e = &events(&sink)[0];
    assert_eq!(e["input"]["type"], "exec");
    assert_eq!(e["process"]["command_line"], command.as_str());
    assert_eq!(e["tags"], serde_json::json!(["x"]));
    assert!(e.get("log").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_restarts_a_command_that_exits() {
    let dir = tempfile::tempdir().unwrap();
    // Also writes to stderr (logged, not shipped) and ends without a newline (sent when the run ends).
    let (sink, token, handle) = exec_tailer(dir.path(), "echo run; echo oops >&2; printf tail; exit 3".into());
    let s = sink.clone();
    tokio::task::spawn_blocking(move || wait_for("a restart", || s.sent_count() >= 4)).await.unwrap();
    token.cancel();
    tokio::task::spawn_blocking(move || handle.join().unwrap().unwrap()).await.unwrap();
    let msgs = messages(&sink);
    assert_eq!(msgs[..4], ["run", "tail", "run", "tail"]);
    let evs = events(&sink);
    // Each run has its own random id basis: the same line in two runs gets two ids.
    assert_ne!(evs[0]["event"]["id"], evs[2]["event"]["id"]);
}

fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_reports_per_file_and_stream_figures() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    let body: String = (0..100).map(|i| format!("line {i}\n")).collect();
    std::fs::write(&log, &body).unwrap();
    let file_input = InputConfig {
        paths: vec![dir.path().join("*.log").to_string_lossy().into_owned()],
        scan_frequency: Duration::from_millis(20),
        ..Default::default()
    };
    let mut config = config(dir.path(), file_input);
    config.inputs.push(InputConfig { kind: InputType::Stdin, ..Default::default() });
    let (tx, rx) = mpsc::channel();
    let sink = MemorySink::new(tx);
    let mut tailer = Tailer::new(&config, sink.clone(), rx).unwrap();
    tailer
        .add_stream(&config, 1, logpipe_agent::stream::read_to_end(std::io::Cursor::new(b"a\nb\n".to_vec())))
        .unwrap();
    let snapshot = SharedSnapshot::default();
    tailer.publish_to(snapshot.clone());
    let server = AdminServer::bind("127.0.0.1:0", logpipe_admin::Protection::default()).await.unwrap();
    let addr = server.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(server.serve(snapshot::router(snapshot), stop.clone()));
    let (token, handle) = start(tailer);

    let path = log.to_string_lossy().into_owned();
    let want = [
        format!("logpipe_agent_file_lines_read_total{{path=\"{path}\"}} 100"),
        format!("logpipe_agent_file_bytes_read_total{{path=\"{path}\"}} {}", body.len()),
        format!("logpipe_agent_file_acknowledged_offset_bytes{{path=\"{path}\"}} {}", body.len()),
        format!("logpipe_agent_file_bytes_behind{{path=\"{path}\"}} 0"),
        format!("logpipe_agent_file_events_in_flight{{path=\"{path}\"}} 0"),
        "logpipe_agent_input_lines_read_total{type=\"stdin\",input=\"1\",command=\"\"} 2".to_string(),
        "logpipe_agent_input_bytes_acked_total{type=\"stdin\",input=\"1\",command=\"\"} 4".to_string(),
        "logpipe_agent_events_acked_total 102".to_string(),
    ];
    let text = tokio::task::spawn_blocking(move || {
        poll_until(&format!("metrics showing {want:?}"), DEADLINE, || {
            let last = http_get(addr, "/metrics");
            if want.iter().all(|w| last.contains(w.as_str())) {
                Ok(last)
            } else {
                Err(format!("last:\n{last}"))
            }
        })
    })
    .await
    .unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{text}");
    assert!(text.contains("# TYPE logpipe_agent_file_lines_read_total counter"));
    let other = tokio::task::spawn_blocking(move || http_get(addr, "/nope")).await.unwrap();
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");

    token.cancel();
    stop.cancel();
    tokio::task::spawn_blocking(move || handle.join().unwrap().unwrap()).await.unwrap();
}
