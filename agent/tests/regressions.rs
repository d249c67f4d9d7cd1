//! Regression tests for bugs found by the process-level tests (`tests/python/test_agent.py`).

mod common;

use std::fs;
use std::io::Write;
use std::sync::mpsc::{self, Sender};
use std::time::{Duration, Instant};

use common::*;
use logpipe_agent::config::{AgentConfig, InputConfig};
use logpipe_agent::{Ack, Record, Sink, Tailer};
use logpipe_config::Validate;
use serde_json::Value;

/// copytruncate while the tailer holds half a line: the half must not be sent as a line of its own.
/// The rest of that line was written before the copy, so the copy holds it whole; the tailer must
/// resume the copy at the start of the line and send it once, in one piece.
#[test]
fn copytruncate_does_not_split_the_buffered_partial_line() {
    // Long close_inactive: the partial line must still be buffered (not flushed as idle) at truncation.
    let mut h = Harness::new("app.log*", |i| i.close_inactive = Duration::from_secs(60));
    let a = h.path("app.log");
    // More than the 1 KiB fingerprint, so the copy is recognised by its first bytes.
    let before = lines("before", 0..100);
    append(&a, &before);
    let (half, rest) = ("split line 000001 first half|", "|second half");
    fs::OpenOptions::new().append(true).open(&a).unwrap().write_all(half.as_bytes()).unwrap();
    h.start();
    // The half line was on disk before the tailer started, so the single read that delivered `before`
    // (the file is far below one 64 KiB chunk) also put the half line in the tailer's buffer.
    h.wait_for_lines(&before);

    // The writer finishes the line, logrotate copies, then truncates (done here without a window in
    // which the tailer could read the rest from the live file).
    let mut copy = fs::read(&a).unwrap();
    copy.extend_from_slice(format!("{rest}\n").as_bytes());
    fs::write(h.path("app.log.1"), &copy).unwrap();
    fs::OpenOptions::new().write(true).open(&a).unwrap().set_len(0).unwrap();
    let after = lines("after", 0..100);
    append(&a, &after);

    let whole = format!("{half}{rest}");
    h.wait_for_lines(&after);
    h.wait_for_lines(std::slice::from_ref(&whole));
    h.stop();
    let messages = h.messages();
    assert!(!messages.iter().any(|m| m == half || m == rest), "line split in two: {messages:?}");
    assert_exactly_once(&h, &[before, vec![whole], after].concat());
}

/// copytruncate's copy met by a scan while `cp` has only created it, or written part of its first KiB:
/// too short to fingerprint, it must not be taken for a new file and read from 0, which sends every
/// copied line a second time. (A scan woken by the copy's creation event nearly always meets it empty.)
/// Driven turn by turn, each a scan, so the scan certainly meets the copy empty, then partial.
#[test]
fn a_copy_met_empty_or_partial_is_not_read_as_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let scan_frequency = Duration::from_millis(1);
    let config = AgentConfig {
        registry: dir.path().join("registry.json"),
        registry_flush: Duration::from_millis(20),
        host_name: Some("test-host".into()),
        inputs: vec![InputConfig {
            paths: vec![dir.path().join("app.log*").to_string_lossy().into_owned()],
            scan_frequency,
            close_inactive: Duration::from_secs(60),
            ..Default::default()
        }],
        ..Default::default()
    };
    config.validate().unwrap();
    let mut t = Stepper::new(&config);

    let live = dir.path().join("app.log");
    let before = lines("before", 0..100);
    append(&live, &before);
    t.step_until("the live file", scan_frequency, |t| t.sink.sent_count() == before.len());

    let copy_path = dir.path().join("app.log.1");
    let mut copy = fs::File::create(&copy_path).unwrap();
    t.step(scan_frequency);
    assert!(t.tailer.status().iter().any(|s| s.path == copy_path), "a scan met the empty copy");
    t.step(scan_frequency / 2);
    let content = fs::read(&live).unwrap();
    copy.write_all(&content[..500]).unwrap();
    // Turns in which a tailer taking the copy for a new file would read the partial copy, the last with
    // a scan that meets it partial. All less than `scan_frequency` after the copy changed: a copy that
    // stopped changing for that long would be read as a new file.
    t.steps(20, Duration::ZERO);
    t.step(scan_frequency / 2);
    copy.write_all(&content[500..]).unwrap();
    drop(copy);
    t.steps(20, scan_frequency);
    fs::OpenOptions::new().write(true).open(&live).unwrap().set_len(0).unwrap();
    let after = lines("after", 0..100);
    append(&live, &after);
    t.step_until("the lines after the truncation", scan_frequency, |t| {
        t.sink.sent_count() >= before.len() + after.len()
    });
    // More turns: scans resume the copy (nothing left in it) and must not read it again.
    t.steps(20, scan_frequency);
    let c = counts(&t.messages());
    for l in before.iter().chain(&after) {
        assert_eq!(c.get(l).copied(), Some(1), "line {l:?} should arrive exactly once; got {c:?}");
    }
    assert_eq!(c.len(), before.len() + after.len(), "nothing else arrives");
}

/// A new file too short to fingerprint whose bytes agree with the first bytes of a known file may be an
/// unfinished copy, so its reading waits. When it stops changing for `scan_frequency` it is read: it
/// may as well be a new file that starts like the other, and losing it would be worse than a duplicate.
#[test]
fn a_small_new_file_that_starts_like_a_known_one_is_still_read() {
    let h = Harness::new("*.log", |_| {});
    let scan_frequency = h.config.inputs[0].scan_frequency;
    let mut t = Stepper::new(&h.config);
    let a = lines("same start", 0..100);
    append(&h.path("a.log"), &a);
    t.step_until("a.log", scan_frequency, |t| t.sink.sent_count() == a.len());
    append(&h.path("b.log"), &a[..2]);
    t.step(scan_frequency);
    assert_eq!(t.tailer.status().len(), 2, "b.log found");
    // Unchanged, but not yet for scan_frequency: it may still be a copy being written.
    t.steps(10, scan_frequency / 20);
    assert_eq!(t.sink.sent_count(), a.len(), "b.log read before it settled");
    t.step(scan_frequency);
    let c = counts(&t.messages());
    assert!(a[..2].iter().all(|l| c.get(l) == Some(&2)), "both copies of the first two lines; got {c:?}");
}

/// A sink that acknowledges at once (like a fast broker) and, every `SAMPLE` records, notes the sum of
/// the offsets in the registry file on disk: what a restart after a crash at that moment would resume.
struct SamplingSink {
    acks: Sender<Vec<Ack>>,
    registry: std::path::PathBuf,
    sent: usize,
    samples: Vec<u64>,
}

const SAMPLE: usize = 200;

impl Sink for SamplingSink {
    fn send(&mut self, record: Record<'_>) {
        let _ = self.acks.send(vec![record.ack]);
        self.sent += 1;
        if self.sent.is_multiple_of(SAMPLE) {
            self.samples.push(registry_sum(&self.registry));
        }
    }

    fn flush(&mut self, _timeout: Duration) -> bool {
        true
    }
}

fn registry_sum(path: &std::path::Path) -> u64 {
    let Ok(bytes) = fs::read(path) else { return 0 };
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    v["entries"].as_array().unwrap().iter().map(|e| e["offset"].as_u64().unwrap()).sum()
}

/// Many files far behind: acknowledgements are taken in and the registry is checkpointed *during* a
/// read pass, and a pass is bounded, so a crash in a long catch-up does not resend seconds of
/// acknowledged events. (Before: acks were drained only between passes of 1 MiB per file, and the
/// registry written only after a pass.)
#[test]
fn acks_and_checkpoints_keep_up_during_a_long_catch_up() {
    let dir = tempfile::tempdir().unwrap();
    let files = 6;
    let line = format!("{}\n", "y".repeat(99));
    let per_file = 1_500_000 / line.len();
    let mut size = 0;
    for f in 0..files {
        let mut out = std::io::BufWriter::new(fs::File::create(dir.path().join(format!("f{f}.log"))).unwrap());
        for i in 0..per_file {
            // Distinct first bytes per file, so each has its own fingerprint.
            let l = format!("{f}:{i:08}:{}", &line[12..]);
            out.write_all(l.as_bytes()).unwrap();
        }
        out.flush().unwrap();
        size = out.get_ref().metadata().unwrap().len();
    }
    let config = AgentConfig {
        registry: dir.path().join("registry.json"),
        registry_flush: Duration::from_millis(1),
        host_name: Some("test-host".into()),
        inputs: vec![InputConfig {
            paths: vec![dir.path().join("*.log").to_string_lossy().into_owned()],
            close_inactive: Duration::from_secs(60),
            ..Default::default()
        }],
        ..Default::default()
    };
    config.validate().unwrap();
    let (tx, rx) = mpsc::channel();
    let sink = SamplingSink { acks: tx, registry: config.registry.clone(), sent: 0, samples: Vec::new() };
    let mut tailer = Tailer::new(&config, sink, rx).unwrap();

    // One turn: a bounded pass (4 MiB at most, plus the chunk that crossed it), not 1 MiB × 6 files.
    tailer.turn();
    let read: u64 = tailer.status().iter().map(|s| s.stats.bytes_read).sum();
    assert!(read > 0 && read <= (4 << 20) + (64 << 10), "one turn read {read} bytes");
    // The registry moved during that first turn, not only after it.
    let samples = tailer.sink().samples.clone();
    assert!(samples.iter().any(|&s| s > 0), "registry never advanced during the pass: {samples:?}");
    // And at the end of the turn it is at everything acknowledged: every complete line read.
    let acked: u64 = tailer.status().iter().map(|s| s.acked_offset).sum();
    assert_eq!(registry_sum(&config.registry), acked);
    assert!(acked + 100 * files as u64 >= read, "acked {acked} of {read} read");

    // Round-robin over bounded passes reads every file to its end.
    let deadline = Instant::now() + DEADLINE;
    while !tailer.status().iter().all(|s| s.acked_offset == size) {
        assert!(Instant::now() < deadline, "not caught up: {:?}", tailer.status());
        tailer.turn();
    }
    // The registry is written every `registry_flush` (1 ms): turn until the next write has happened.
    while registry_sum(&config.registry) != size * files as u64 {
        assert!(Instant::now() < deadline, "registry never reached the acknowledged offsets");
        tailer.turn();
    }
}

/// A tailer stepped by hand for the copytruncate races below: `app.log*`, a scan every turn, a
/// `queue_max_bytes` so small that one held chunk of events pauses reading.
fn copytruncate_stepper(dir: &std::path::Path) -> (AgentConfig, Stepper) {
    paused_stepper(dir, |_| {})
}

/// [`copytruncate_stepper`] with the input changed by `edit`.
fn paused_stepper(dir: &std::path::Path, edit: impl FnOnce(&mut InputConfig)) -> (AgentConfig, Stepper) {
    let config = one_input(dir, "app.log*", |config| {
        config.queue_max_bytes = Some(1024);
        edit(&mut config.inputs[0]);
    });
    let t = Stepper::new(&config);
    (config, t)
}

/// A checked agent config with one file input on `glob` in `dir`, scanned every turn, changed by `edit`.
fn one_input(dir: &std::path::Path, glob: &str, edit: impl FnOnce(&mut AgentConfig)) -> AgentConfig {
    let mut config = AgentConfig {
        registry: dir.join("registry.json"),
        registry_flush: Duration::from_millis(20),
        host_name: Some("test-host".into()),
        inputs: vec![InputConfig {
            paths: vec![dir.join(glob).to_string_lossy().into_owned()],
            scan_frequency: Duration::from_millis(1),
            close_inactive: Duration::from_secs(60),
            ..Default::default()
        }],
        ..Default::default()
    };
    edit(&mut config);
    config.validate().unwrap();
    config
}

/// Holds acknowledgements and fills the queue from another file, so that reading pauses.
fn pause_reading(t: &mut Stepper, dir: &std::path::Path) -> Vec<String> {
    t.sink.hold_acks(true);
    let filler = lines("filler", 0..50);
    append(&dir.join("app.log-filler"), &filler);
    t.step_until("the queue fills", Duration::from_millis(1), |t| t.sink.sent_count() > 0);
    t.steps(3, Duration::from_millis(1));
    filler
}

/// A file at its end when reading paused (the queue full: the broker is down), then written and deleted
/// (logrotate's `rotate 0`, a cleanup) before reading resumed. Its last read had found the end, so it
/// passed for idle, and the deletion closed it with its new lines unread: lost. It must stay open until
/// read to its end.
#[test]
fn a_file_deleted_while_reading_is_paused_is_read_to_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let (_config, mut t) = copytruncate_stepper(dir.path());
    let live = dir.path().join("app.log");
    create(&live);
    t.steps(3, Duration::from_millis(1));
    assert_eq!(t.tailer.status().len(), 1, "the empty live file is open, at its end");
    let filler = pause_reading(&mut t, dir.path());
    let sent_while_paused = t.sink.sent_count();

    let gen = lines("written while paused", 0..100);
    append(&live, &gen);
    fs::remove_file(&live).unwrap();
    t.steps(5, Duration::from_millis(1));
    assert_eq!(t.sink.sent_count(), sent_while_paused, "reading is paused");
    t.sink.hold_acks(false);
    t.step_until("the deleted file's lines", Duration::from_millis(1), |t| {
        let got: std::collections::HashSet<String> = t.messages().into_iter().collect();
        gen.iter().all(|l| got.contains(l))
    });
    t.step_until("the deleted file closed", Duration::from_millis(1), |t| {
        t.tailer.status().iter().all(|s| !(s.open && s.path.ends_with("app.log")))
    });
    assert_each_once(&t.messages(), &[filler, gen].concat());
}

/// A multiline event pending when reading paused, its next lines written meanwhile: the timeout (no new
/// line for 5 s) must not send it, as its next lines are on disk, only unread. Before, the event was
/// cut in two: the lines read before the pause, and the rest once reading resumed.
#[test]
fn a_multiline_event_is_not_cut_while_reading_is_paused() {
    let dir = tempfile::tempdir().unwrap();
    let (_config, mut t) = paused_stepper(dir.path(), |i| {
        i.multiline = Some(logpipe_agent::config::MultilineConfig { pattern: r"^\s".into(), ..Default::default() });
    });
    let live = dir.path().join("app.log");
    append(&live, &["Exception in thread main".into(), "  at first".into()]);
    t.steps(3, Duration::from_millis(1));
    let filler = pause_reading(&mut t, dir.path());
    let sent_while_paused = t.sink.sent_count();

    append(&live, &["  at second".into(), "  at third".into(), "next event".into()]);
    t.steps(10, Duration::from_secs(1));
    t.sink.hold_acks(false);
    let whole = "Exception in thread main\n  at first\n  at second\n  at third".to_string();
    t.step_until("the whole event", Duration::from_millis(1), |t| t.messages().contains(&whole));
    t.step_until("the next event, at its timeout", Duration::from_secs(1), |t| {
        t.messages().iter().any(|m| m == "next event")
    });
    assert!(t.sink.sent_count() > sent_while_paused);
    let mut expected = filler;
    expected.extend([whole, "next event".to_string()]);
    assert_each_once(&t.messages(), &expected);
}

fn assert_each_once(messages: &[String], expected: &[String]) {
    let c = counts(messages);
    for l in expected {
        assert_eq!(c.get(l).copied(), Some(1), "line {l:?} should arrive exactly once");
    }
    assert_eq!(c.len(), expected.len(), "nothing else arrives");
}

/// copytruncate while reading is paused (queue full: the broker is slow): the live file was opened
/// (after the previous truncation) before its first KiB was written, so the tailer still knows it by
/// device+inode. The copy, met by a scan, has the fingerprint of the live file's bytes on disk: it is a
/// copy of a file being read, not a new file. (Before: it was taken for new and read from 0; once
/// reading resumed, the live file was read too before the truncation, and every line came twice —
/// `test_copytruncate_every_100ms` with `queue_max_bytes` 16 MiB under load.)
#[test]
fn a_copy_made_while_reading_is_paused_is_not_read_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (_config, mut t) = copytruncate_stepper(dir.path());
    let live = dir.path().join("app.log");
    create(&live);
    t.steps(3, Duration::from_millis(1));
    assert_eq!(t.tailer.status().len(), 1, "the empty live file is open");

    // The broker stops acknowledging; another file fills the queue, so the live file is not read.
    t.sink.hold_acks(true);
    let filler = lines("filler", 0..50);
    append(&dir.path().join("app.log-filler"), &filler);
    t.step_until("the queue fills", Duration::from_millis(1), |t| t.sink.sent_count() > 0);
    t.steps(3, Duration::from_millis(1));
    let sent_while_paused = t.sink.sent_count();

    let gen = lines("generation", 0..100);
    append(&live, &gen);
    t.steps(3, Duration::from_millis(1));
    assert_eq!(t.sink.sent_count(), sent_while_paused, "reading is paused");
    fs::copy(&live, dir.path().join("app.log.1")).unwrap();
    t.steps(3, Duration::from_millis(1));
    // Acknowledgements resume between the copy and the truncation.
    t.sink.hold_acks(false);
    t.step_until("the copied lines", Duration::from_millis(1), |t| {
        let got: std::collections::HashSet<String> = t.messages().into_iter().collect();
        gen.iter().all(|l| got.contains(l))
    });
    fs::OpenOptions::new().write(true).open(&live).unwrap().set_len(0).unwrap();
    let after = lines("after", 0..100);
    append(&live, &after);
    t.step_until("the lines after the truncation", Duration::from_millis(1), |t| {
        let got: std::collections::HashSet<String> = t.messages().into_iter().collect();
        after.iter().all(|l| got.contains(l))
    });
    t.steps(20, Duration::from_millis(1));
    assert_each_once(&t.messages(), &[filler, gen, after].concat());
}

/// copytruncate with lines written between the copy and the truncation, which the tailer read from
/// the live file: the copy is shorter than what was read of its original. Every line in it was read,
/// so nothing of it is read. (Before: "shorter than the recorded offset" was taken for a truncation of
/// the copy and all of it was read again.)
#[test]
fn a_copy_shorter_than_what_was_read_of_its_original_is_not_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let (_config, mut t) = copytruncate_stepper(dir.path());
    let live = dir.path().join("app.log");
    let before = lines("before", 0..100);
    append(&live, &before);
    t.step_until("the live file", Duration::from_millis(1), |t| t.sink.sent_count() == before.len());

    fs::copy(&live, dir.path().join("app.log.1")).unwrap();
    t.steps(3, Duration::from_millis(1));
    let window = lines("between copy and truncate", 0..10);
    append(&live, &window);
    t.step_until("the lines written after the copy", Duration::from_millis(1), |t| {
        t.sink.sent_count() == before.len() + window.len()
    });
    fs::OpenOptions::new().write(true).open(&live).unwrap().set_len(0).unwrap();
    let after = lines("after", 0..100);
    append(&live, &after);
    t.step_until("the lines after the truncation", Duration::from_millis(1), |t| {
        t.sink.sent_count() >= before.len() + window.len() + after.len()
    });
    t.steps(20, Duration::from_millis(1));
    assert_each_once(&t.messages(), &[before, window, after].concat());
}

/// The same for a `stdin` (or `exec`) input: the event's next lines wait in the stream's channel while
/// reading is paused, and the timeout must not send the event without them. (The channel is fed here as
/// the stream's reading thread feeds it, so that the lines are certainly waiting before the clock moves.)
#[test]
fn a_stream_multiline_event_is_not_cut_while_reading_is_paused() {
    use logpipe_agent::stream::StreamMsg;
    let dir = tempfile::tempdir().unwrap();
    let (mut config, _) = paused_stepper(dir.path(), |_| {});
    config.inputs.push(InputConfig {
        kind: logpipe_agent::config::InputType::Stdin,
        multiline: Some(logpipe_agent::config::MultilineConfig { pattern: r"^\s".into(), ..Default::default() }),
        ..Default::default()
    });
    config.validate().unwrap();
    let mut t = Stepper::new(&config);
    let (stream, output) = tokio::sync::mpsc::channel(16);
    t.tailer.add_stream(&config, 1, output).unwrap();
    stream.try_send(StreamMsg::Started { run: 1 }).unwrap();
    stream.try_send(StreamMsg::Data(b"Exception in thread main\n  at first\n".to_vec())).unwrap();
    t.step_until("the first lines read", Duration::from_millis(1), |t| {
        t.tailer.stream_status().iter().any(|s| s.stats.bytes_read > 0)
    });
    let filler = pause_reading(&mut t, dir.path());

    stream.try_send(StreamMsg::Data(b"  at second\nnext event\n".to_vec())).unwrap();
    t.steps(10, Duration::from_secs(1));
    t.sink.hold_acks(false);
    let whole = "Exception in thread main\n  at first\n  at second".to_string();
    t.step_until("the whole event", Duration::from_millis(1), |t| t.messages().contains(&whole));
    t.step_until("the next event, at its timeout", Duration::from_secs(1), |t| {
        t.messages().iter().any(|m| m == "next event")
    });
    let mut expected = filler;
    expected.extend([whole, "next event".to_string()]);
    assert_each_once(&t.messages(), &expected);
}

/// The events a sink received, as `(event.id, message)`.
fn ids_and_messages(sink: &logpipe_agent::MemorySink) -> Vec<(String, String)> {
    let events = sink.sent().into_iter().map(|s| serde_json::from_slice::<Value>(&s.payload).unwrap());
    events.map(|e| (e["event"]["id"].as_str().unwrap().into(), e["message"].as_str().unwrap().into())).collect()
}

/// A multiline event sent at its timeout, then killed (kill -9) before its acknowledgement reached the
/// registry, and read again after a restart with more lines: the event now ends later. Its `event.id`
/// came only from where it starts, so the longer copy had the first one's id; the indexer's `create`
/// answered 409 for it and its extra lines were lost. The id covers the end too: the longer copy is a
/// new event (a duplicate of the first lines, never a loss), and the same event read again keeps its id.
#[test]
fn an_event_cut_by_the_multiline_timeout_and_read_again_longer_gets_a_new_id() {
    let dir = tempfile::tempdir().unwrap();
    let config = one_input(dir.path(), "app.log", |config| {
        let input = &mut config.inputs[0];
        input.close_inactive = Duration::from_secs(3600);
        input.multiline = Some(logpipe_agent::config::MultilineConfig { pattern: r"^\s".into(), ..Default::default() });
    });
    let timeout = config.inputs[0].multiline.as_ref().unwrap().timeout;
    let live = dir.path().join("app.log");
    // More than the 1 KiB fingerprint, so the file is known by its first bytes.
    let first = lines("first", 0..60);
    append(&live, &first);
    let acked = fs::metadata(&live).unwrap().len();
    assert!(acked > 1024);

    let mut t = Stepper::new(&config);
    t.step_until("the first lines, acknowledged and recorded", timeout, |t| {
        t.sink.sent_count() == first.len() && registry_sum(&config.registry) == acked
    });
    // The broker stops answering: the event cut by the timeout is sent, never acknowledged.
    t.sink.hold_acks(true);
    append(&live, &["Exception in thread main".into(), "  at first".into()]);
    t.step(Duration::from_millis(1));
    t.step_until("the event cut by the timeout", timeout, |t| {
        t.messages().iter().any(|m| m == "Exception in thread main\n  at first")
    });
    t.steps(3, config.registry_flush);
    // kill -9: the held acknowledgement is gone, the registry is what was last written.
    t.sink.drop_held();
    let before_crash = ids_and_messages(&t.sink);
    drop(t);
    assert_eq!(registry_sum(&config.registry), acked, "the cut event was never acknowledged");

    append(&live, &["  at second".into(), "  at third".into()]);
    let whole = "Exception in thread main\n  at first\n  at second\n  at third";
    let restart = |what: &str| {
        let mut t = Stepper::new(&config);
        t.sink.hold_acks(true);
        t.step(Duration::from_millis(1));
        t.step_until(what, timeout, |t| t.messages().iter().any(|m| m == whole));
        t.sink.drop_held();
        ids_and_messages(&t.sink)
    };
    let after_restart = restart("the whole event read again after the restart");

    // What the indexer keeps: the first event of each id.
    let mut kept: Vec<&str> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (id, message) in before_crash.iter().chain(&after_restart) {
        if seen.insert(id.as_str()) {
            kept.push(message);
        }
    }
    let exceptions: Vec<&&str> = kept.iter().filter(|m| m.starts_with("Exception")).collect();
    assert!(
        exceptions.iter().any(|m| m.contains("  at second")),
        "the lines read after the restart are lost: the longer event had an id already sent; kept {exceptions:?}"
    );

    // The same event read again (same start, same end) after another crash keeps its id: replays still
    // de-duplicate.
    let id_of = |events: &[(String, String)]| events.iter().find(|(_, m)| m == whole).unwrap().0.clone();
    let again = restart("the whole event read again after a second restart");
    assert_eq!(id_of(&again), id_of(&after_restart), "the same event read again has another id");
}

/// Root opens any file, whatever its mode, through `CAP_DAC_OVERRIDE` and `CAP_DAC_READ_SEARCH`: they are
/// taken out of this thread's effective capabilities (capabilities are per thread), and put back on drop.
/// Nothing happens without them.
struct WithoutDacOverride(Option<rustix::thread::CapabilitySets>);

impl WithoutDacOverride {
    fn on_this_thread() -> Self {
        use rustix::thread::{capabilities, set_capabilities, CapabilitySet};
        let Ok(sets) = capabilities(None) else { return Self(None) };
        let dac = CapabilitySet::DAC_OVERRIDE | CapabilitySet::DAC_READ_SEARCH;
        if !sets.effective.intersects(dac) {
            return Self(None);
        }
        let dropped = rustix::thread::CapabilitySets { effective: sets.effective - dac, ..sets };
        Self(set_capabilities(None, dropped).is_ok().then_some(sets))
    }
}

impl Drop for WithoutDacOverride {
    fn drop(&mut self) {
        if let Some(sets) = self.0 {
            rustix::thread::set_capabilities(None, sets).expect("the capabilities this thread had");
        }
    }
}

/// A file the glob matches but the agent cannot open (mode 000 here; EMFILE alike): it was skipped with a
/// debug line, and counted as matched, so the glob did not count as stalled and nobody was told that
/// nothing was shipped. It is a stall of its glob naming the file and the error, until it can be read.
#[test]
fn a_matched_file_that_cannot_be_opened_is_a_stall() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let config = one_input(dir.path(), "*.log", |_| {});
    let pattern = config.inputs[0].paths[0].clone();
    let path = dir.path().join("app.log");
    let written = lines("unreadable", 0..10);
    append(&path, &written);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();
    let _unprivileged = WithoutDacOverride::on_this_thread();
    let Err(denied) = fs::File::open(&path) else {
        eprintln!("skipped: this thread can open a file of mode 000 (root, and its capabilities cannot be dropped)");
        return;
    };

    let mut t = Stepper::new(&config);
    t.steps(3, Duration::from_millis(1));
    assert_eq!(t.sink.sent_count(), 0);
    let stalls = t.tailer.snapshot().stalls;
    let stall = stalls.iter().find(|s| s.key == pattern).unwrap_or_else(|| panic!("no stall for the glob: {stalls:?}"));
    assert_eq!(stall.kind, logpipe_agent::stalls::StallKind::Glob);
    assert!(
        stall.reason.contains(&format!("cannot open {} for reading: {denied}", path.display())),
        "the stall does not say which file cannot be read and why: {stall:?}"
    );

    // Readable again: read, and the stall is over.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    t.step_until("the file's lines", Duration::from_millis(1), |t| t.sink.sent_count() == written.len());
    assert!(t.tailer.snapshot().stalls.is_empty(), "{:?}", t.tailer.snapshot().stalls);
}
