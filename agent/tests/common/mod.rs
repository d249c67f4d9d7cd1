//! Shared harness for tailer tests: a tailer on a real temp dir, acknowledging through a `MemorySink`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use logpipe_agent::config::{AgentConfig, InputConfig};
use logpipe_agent::snapshot::SharedSnapshot;
use logpipe_agent::tailer::{FileStatus, ManualClock};
use logpipe_agent::{MemorySink, Tailer};
use logpipe_config::Validate;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub const DEADLINE: Duration = Duration::from_secs(30);

/// Polls `probe` every few milliseconds until it returns `Ok`, and returns that value; panics after
/// `timeout` naming `what` and the last `Err` (what was seen instead). The one place tests wait for a
/// condition.
pub fn poll_until<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(seen) => assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}; {seen}"),
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `Ok(())` if `cond`, else `Err(seen())`: adapts a plain condition for [`poll_until`].
pub fn holds(cond: bool, seen: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(seen())
    }
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub config: AgentConfig,
    pub sink: MemorySink,
    /// The running tailer's status, refreshed every 200 ms.
    pub snapshot: SharedSnapshot,
    running: Option<(CancellationToken, JoinHandle<logpipe_agent::Result<()>>)>,
}

impl Harness {
    /// A harness tailing `pattern` (relative to the temp dir).
    pub fn new(pattern: &str, tweak: impl FnOnce(&mut InputConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut input = InputConfig {
            paths: vec![dir.path().join(pattern).to_string_lossy().into_owned()],
            scan_frequency: Duration::from_millis(20),
            close_inactive: Duration::from_millis(300),
            tags: vec!["test".into()],
            ..Default::default()
        };
        tweak(&mut input);
        let config = AgentConfig {
            registry: dir.path().join("state/registry.json"),
            registry_flush: Duration::from_millis(20),
            shutdown_timeout: Duration::from_millis(500),
            host_name: Some("test-host".into()),
            inputs: vec![input],
            ..Default::default()
        };
        config.validate().unwrap();
        let (tx, _rx) = mpsc::channel();
        Self { dir, config, sink: MemorySink::new(tx), snapshot: SharedSnapshot::default(), running: None }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn start(&mut self) {
        assert!(self.running.is_none());
        let (tx, rx) = mpsc::channel();
        let mut tailer = Tailer::new(&self.config, self.sink.with_acks(tx), rx).unwrap();
        tailer.publish_to(self.snapshot.clone());
        let token = CancellationToken::new();
        let t = token.clone();
        self.running = Some((token, std::thread::spawn(move || tailer.run(&t))));
    }

    /// Clean stop: waits for acknowledgements (bounded) and writes the registry.
    pub fn stop(&mut self) {
        let (token, handle) = self.running.take().expect("running");
        token.cancel();
        handle.join().unwrap().unwrap();
    }

    /// A crash as far as the output is concerned: whatever was not acknowledged yet never will be.
    pub fn crash(&mut self) {
        self.sink.hold_acks(true);
        self.stop();
        self.sink.drop_held();
        self.sink.hold_acks(false);
    }

    pub fn events(&self) -> Vec<Value> {
        self.sink.sent().iter().map(|s| serde_json::from_slice(&s.payload).unwrap()).collect()
    }

    pub fn messages(&self) -> Vec<String> {
        self.events().iter().map(|e| e["message"].as_str().unwrap().to_string()).collect()
    }

    /// Polls until `cond` holds, or panics after [`DEADLINE`] with `what` and the messages received.
    pub fn wait_for(&self, what: &str, mut cond: impl FnMut(&Self) -> bool) {
        poll_until(what, DEADLINE, || holds(cond(self), || format!("got {:?}", self.messages())));
    }

    /// Waits until every line in `lines` has been received at least once.
    pub fn wait_for_lines(&self, lines: &[String]) {
        self.wait_for("lines", |h| {
            let got: std::collections::HashSet<String> = h.messages().into_iter().collect();
            lines.iter().all(|l| got.contains(l))
        });
    }

    /// The files of the last status snapshot.
    pub fn files(&self) -> Vec<FileStatus> {
        self.snapshot.lock().unwrap().files.clone()
    }

    pub fn registry_exists(&self) -> bool {
        self.config.registry.exists()
    }

    pub fn registry(&self) -> Value {
        serde_json::from_slice(&fs::read(&self.config.registry).unwrap()).unwrap()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some((token, handle)) = self.running.take() {
            token.cancel();
            let _ = handle.join();
        }
    }
}

/// Most turns [`Stepper::turn_until`] takes before it gives up.
pub const MAX_TURNS: usize = 10_000;

/// A tailer driven turn by turn on the calling thread, on a [`ManualClock`]: time moves only when the
/// test moves it, so what depends on time (`scan_frequency`, `close_inactive`, settling a copy) happens
/// exactly when the test says and never because the machine was slow.
pub struct Stepper {
    pub tailer: Tailer<MemorySink>,
    pub clock: ManualClock,
    pub sink: MemorySink,
}

impl Stepper {
    /// A tailer for `config`, acknowledging every event at once.
    pub fn new(config: &AgentConfig) -> Self {
        let (tx, rx) = mpsc::channel();
        let sink = MemorySink::new(tx);
        let clock = ManualClock::new();
        let tailer = Tailer::with_clock(config, sink.clone(), rx, clock.clone()).unwrap();
        Self { tailer, clock, sink }
    }

    /// Moves the clock by `by`, then runs one turn.
    pub fn step(&mut self, by: Duration) {
        self.clock.advance(by);
        self.tailer.turn();
    }

    /// [`Stepper::step`] `n` times.
    pub fn steps(&mut self, n: usize, by: Duration) {
        for _ in 0..n {
            self.step(by);
        }
    }

    /// Steps by `by` until `cond` holds; panics after [`MAX_TURNS`] naming `what`.
    pub fn step_until(&mut self, what: &str, by: Duration, cond: impl Fn(&Self) -> bool) {
        for _ in 0..MAX_TURNS {
            if cond(self) {
                return;
            }
            self.step(by);
        }
        panic!("{what} did not happen in {MAX_TURNS} turns; got {:?}", self.messages());
    }

    pub fn messages(&self) -> Vec<String> {
        let sent = self.sink.sent();
        let events = sent.iter().map(|s| serde_json::from_slice::<Value>(&s.payload).unwrap());
        events.map(|e| e["message"].as_str().unwrap().to_string()).collect()
    }
}

pub fn append(path: &Path, lines: &[String]) {
    let mut f = OpenOptions::new().create(true).append(true).open(path).unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
    f.sync_data().unwrap();
}

pub fn lines(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix} line {i:06} {}", "x".repeat(i % 37))).collect()
}

/// Count of each message.
pub fn counts(messages: &[String]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for msg in messages {
        *m.entry(msg.clone()).or_insert(0) += 1;
    }
    m
}

pub fn assert_exactly_once(h: &Harness, expected: &[String]) {
    let c = counts(&h.messages());
    for l in expected {
        assert_eq!(c.get(l).copied(), Some(1), "line {l:?} should arrive exactly once");
    }
}

pub fn create(path: &Path) -> File {
    File::create(path).unwrap()
}
