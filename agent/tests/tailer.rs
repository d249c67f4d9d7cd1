//! Tailer behaviour on real files through a test sink: rotation, truncation, deletion, restarts.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use common::*;

#[test]
fn reads_lines_with_the_envelope() {
    let mut h = Harness::new("*.log", |i| i.fields = [("service".to_string(), "web".into())].into_iter().collect());
    let a = h.path("a.log");
    let l = lines("a", 0..100);
    append(&a, &l);
    h.start();
    h.wait_for_lines(&l);
    h.stop();
    assert_exactly_once(&h, &l);
    let e = &h.events()[1];
    assert_eq!(e["log"]["file"]["path"], a.to_str().unwrap());
    assert_eq!(e["log"]["offset"], (l[0].len() + 1) as u64);
    assert_eq!(e["host"]["name"], "test-host");
    assert_eq!(e["input"]["type"], "file");
    assert_eq!(e["tags"], serde_json::json!(["test"]));
    assert_eq!(e["fields"]["service"], "web");
    assert_eq!(e["event"]["id"].as_str().unwrap().len(), 32);
    // The registry is at the end of the file.
    let reg = h.registry();
    assert_eq!(reg["entries"][0]["offset"], fs::metadata(&a).unwrap().len());
}

#[test]
fn rename_rotation_loses_nothing() {
    let mut h = Harness::new("app.log*", |_| {});
    let a = h.path("app.log");
    let first = lines("first", 0..200);
    append(&a, &first);
    h.start();
    h.wait_for_lines(&first);
    // The writer still holds the old file after the rename and writes a few more lines into it.
    let mut old = fs::OpenOptions::new().append(true).open(&a).unwrap();
    fs::rename(&a, h.path("app.log.1")).unwrap();
    let late = lines("late", 0..50);
    for l in &late {
        writeln!(old, "{l}").unwrap();
    }
    let second = lines("second", 0..200);
    append(&a, &second);
    h.wait_for_lines(&late);
    h.wait_for_lines(&second);
    // The status counts the rotation at the path it happened at.
    let rotations = |h: &Harness, name: &str| h.files().iter().find(|f| f.path == h.path(name)).map(|f| f.rotations);
    h.wait_for("the rotation in the status", |h| rotations(h, "app.log") == Some(1));
    assert_eq!(rotations(&h, "app.log.1"), Some(0));
    // The rotated file is closed once idle.
    h.stop();
    assert_exactly_once(&h, &[first, late, second].concat());
}

#[test]
fn copytruncate_reads_the_new_content_from_zero() {
    let mut h = Harness::new("app.log*", |_| {});
    let a = h.path("app.log");
    let before = lines("before", 0..100);
    append(&a, &before);
    h.start();
    h.wait_for_lines(&before);
    fs::copy(&a, h.path("app.log.1")).unwrap();
    fs::OpenOptions::new().write(true).open(&a).unwrap().set_len(0).unwrap();
    let after = lines("after", 0..100);
    append(&a, &after);
    h.wait_for_lines(&after);
    // The truncation counts as a rotation of app.log.
    let rotations = |h: &Harness| h.files().iter().find(|f| f.path == a).map(|f| f.rotations);
    h.wait_for("the truncation in the status", |h| rotations(h) == Some(1));
    h.stop();
    assert_eq!(rotations(&h), Some(1), "the copy is no second rotation");
    // The copy has the same fingerprint as what was already read: not read twice.
    assert_exactly_once(&h, &[before, after].concat());
}

#[test]
fn copytruncate_while_down_resumes_the_copy() {
    let mut h = Harness::new("app.log*", |_| {});
    let a = h.path("app.log");
    let before = lines("before", 0..100);
    append(&a, &before);
    h.start();
    h.wait_for_lines(&before);
    h.stop();
    let unread = lines("unread", 0..30);
    append(&a, &unread);
    fs::copy(&a, h.path("app.log.1")).unwrap();
    fs::OpenOptions::new().write(true).open(&a).unwrap().set_len(0).unwrap();
    let after = lines("after", 0..5);
    append(&a, &after);
    h.start();
    h.wait_for_lines(&unread);
    h.wait_for_lines(&after);
    h.stop();
    assert_exactly_once(&h, &[before, unread, after].concat());
}

#[test]
fn deleted_file_is_read_to_its_end_then_released() {
    let mut h = Harness::new("*.log", |i| i.close_inactive = std::time::Duration::from_secs(3600));
    let a = h.path("a.log");
    let first = lines("a", 0..10);
    append(&a, &first);
    h.start();
    h.wait_for_lines(&first);
    // Written and deleted before the tailer could read it: it still holds the file open.
    let rest = lines("rest", 0..5000);
    append(&a, &rest);
    fs::remove_file(&a).unwrap();
    h.wait_for_lines(&rest);
    h.stop();
    assert_exactly_once(&h, &[first, rest].concat());
}

#[test]
fn files_created_while_down_are_read_from_the_start() {
    let mut h = Harness::new("*.log", |i| i.start_position = logpipe_agent::config::StartPosition::End);
    let old = lines("old", 0..10);
    append(&h.path("a.log"), &old);
    h.start();
    // start_position = end: a file found by the first scan and unknown to the registry starts at its end.
    let more = lines("more", 0..10);
    h.wait_for("a.log known", |h| h.registry_exists());
    append(&h.path("a.log"), &more);
    h.wait_for_lines(&more);
    h.stop();
    assert!(h.messages().iter().all(|m| !m.starts_with("old")));
    let new = lines("new", 0..10);
    append(&h.path("b.log"), &new);
    append(&h.path("a.log"), &lines("down", 0..3));
    h.start();
    // a.log resumes from its offset; b.log is unknown to the registry and start_position = end applies.
    h.wait_for_lines(&lines("down", 0..3));
    let later = lines("later", 0..10);
    append(&h.path("c.log"), &later);
    h.wait_for_lines(&later);
    h.stop();
    assert_exactly_once(&h, &[more, lines("down", 0..3), later].concat());
}

#[test]
fn files_created_while_down_with_start_beginning() {
    let mut h = Harness::new("*.log", |_| {});
    let a = lines("a", 0..10);
    append(&h.path("a.log"), &a);
    h.start();
    h.wait_for_lines(&a);
    h.stop();
    let b = lines("b", 0..10);
    append(&h.path("b.log"), &b);
    h.start();
    h.wait_for_lines(&b);
    h.stop();
    assert_exactly_once(&h, &[a, b].concat());
}

#[test]
fn rotated_twice_while_down() {
    let mut h = Harness::new("app.log*", |_| {});
    let a = h.path("app.log");
    let g0 = lines("gen0", 0..100);
    append(&a, &g0);
    h.start();
    h.wait_for_lines(&g0);
    h.stop();
    // While down: more lines, rotate, new file, rotate again, newest file.
    let g0b = lines("gen0-unread", 0..20);
    append(&a, &g0b);
    fs::rename(&a, h.path("app.log.1")).unwrap();
    let g1 = lines("gen1", 0..100);
    append(&a, &g1);
    fs::rename(h.path("app.log.1"), h.path("app.log.2")).unwrap();
    fs::rename(&a, h.path("app.log.1")).unwrap();
    let g2 = lines("gen2", 0..10);
    append(&a, &g2);
    h.start();
    let all = [g0, g0b, g1, g2].concat();
    h.wait_for_lines(&all);
    h.stop();
    assert_exactly_once(&h, &all);
}

#[test]
fn inode_reuse_reads_the_new_file_from_zero() {
    let mut h = Harness::new("*.log", |_| {});
    let a = h.path("a.log");
    let old = lines("old", 0..3); // small: identified by device + inode
    append(&a, &old);
    h.start();
    h.wait_for_lines(&old);
    h.stop();
    fs::remove_file(&a).unwrap();
    let new = lines("new-content", 0..5);
    append(&a, &new);
    // The file system may or may not hand out the same inode again; make the registry say it did.
    let meta = fs::metadata(&a).unwrap();
    let mut reg = h.registry();
    let entry = &mut reg["entries"][0];
    assert_eq!(entry["identity"]["kind"], "dev_inode");
    entry["identity"]["dev"] = meta.dev().into();
    entry["identity"]["ino"] = meta.ino().into();
    entry["dev"] = meta.dev().into();
    entry["ino"] = meta.ino().into();
    fs::write(&h.config.registry, serde_json::to_vec(&reg).unwrap()).unwrap();
    h.start();
    h.wait_for_lines(&new);
    h.stop();
    assert_exactly_once(&h, &[old, new].concat());
}

/// Ships `before` lines, truncates the file while the agent is down, writes `after` lines named
/// `prefix`, and checks every line arrived exactly once.
fn truncation_while_down(before: usize, prefix: &str, after: usize) {
    let mut h = Harness::new("*.log", |_| {});
    let a = h.path("a.log");
    let old = lines("old", 0..before);
    append(&a, &old);
    h.start();
    h.wait_for_lines(&old);
    h.stop();
    fs::OpenOptions::new().write(true).open(&a).unwrap().set_len(0).unwrap();
    let new = lines(prefix, 0..after);
    append(&a, &new);
    h.start();
    h.wait_for_lines(&new);
    h.stop();
    assert_exactly_once(&h, &[old, new].concat());
}

#[test]
fn truncation_while_down_reads_from_zero() {
    truncation_while_down(100, "new", 10);
}

#[test]
fn truncation_while_down_to_a_larger_file_is_noticed_by_its_first_bytes() {
    truncation_while_down(50, "replacement", 200);
}

#[test]
fn huge_line_without_newline_is_cut_and_tagged() {
    let mut h = Harness::new("*.log", |i| i.max_line_bytes = 64 * 1024);
    let a = h.path("a.log");
    let mut f = fs::File::create(&a).unwrap();
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..50 {
        f.write_all(&chunk).unwrap();
    }
    h.start();
    f.write_all(b"\nafter\n").unwrap();
    h.wait_for_lines(&["after".to_string()]);
    h.stop();
    let events = h.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["message"].as_str().unwrap().len(), 64 * 1024);
    assert_eq!(events[0]["tags"], serde_json::json!(["test", "truncated"]));
    assert_eq!(events[1]["log"]["offset"], 50 << 20 | 1);
    assert_eq!(h.registry()["entries"][0]["offset"], (50u64 << 20) + 7);
}

#[test]
fn final_line_without_newline_waits_until_idle() {
    let h = Harness::new("*.log", |i| i.close_inactive = Duration::from_secs(300));
    fs::write(h.path("a.log"), "complete\npartial").unwrap();
    let mut t = Stepper::new(&h.config);
    t.step_until("the complete line", Duration::ZERO, |t| t.messages() == ["complete"]);
    // Not idle yet: the partial line may still be completed.
    t.steps(10, Duration::from_secs(29));
    assert_eq!(t.messages(), ["complete"]);
    assert!(t.tailer.status()[0].open);
    // Shipped once the file is idle for close_inactive, and the file closed.
    t.step(Duration::from_secs(10));
    assert_eq!(t.messages(), ["complete", "partial"]);
    assert!(!t.tailer.status()[0].open);
}

#[test]
fn unacknowledged_events_are_resent_with_the_same_id() {
    let mut h = Harness::new("*.log", |_| {});
    let a = h.path("a.log");
    let first = lines("acked", 0..50);
    append(&a, &first);
    h.start();
    h.wait_for_lines(&first);
    h.wait_for("registry at end", |h| {
        h.registry_exists() && h.registry()["entries"][0]["offset"] == fs::metadata(&a).unwrap().len()
    });
    h.sink.hold_acks(true);
    let second = lines("unacked", 0..50);
    append(&a, &second);
    h.wait_for_lines(&second);
    h.crash();
    h.start();
    h.wait_for("resend", |h| h.messages().len() >= 150);
    h.stop();
    let c = counts(&h.messages());
    for l in &first {
        assert_eq!(c[l], 1, "acknowledged lines are not resent");
    }
    for l in &second {
        assert_eq!(c[l], 2, "unacknowledged lines are resent");
    }
    let mut ids = std::collections::HashMap::new();
    for e in h.events() {
        let id = e["event"]["id"].as_str().unwrap().to_string();
        let prev = ids.insert(e["message"].as_str().unwrap().to_string(), id.clone());
        assert!(prev.is_none() || prev == Some(id), "a resent event keeps its id");
    }
}

#[test]
fn multiline_and_filters() {
    let mut h = Harness::new("*.log", |i| {
        i.multiline = Some(logpipe_agent::config::MultilineConfig {
            pattern: r"^\d{4}/\d{2}/\d{2} ".into(),
            negate: true,
            timeout: std::time::Duration::from_millis(100),
            ..Default::default()
        });
        i.exclude_lines = vec!["DEBUG".into()];
    });
    let a = h.path("error.log");
    fs::write(
        &a,
        "2026/11/21 08:15:30 [error] 1#0: boom\n  at detail\n2026/11/21 08:15:31 [debug] DEBUG noise\n2026/11/21 08:15:32 [warn] last\n",
    )
    .unwrap();
    h.start();
    // The last event is only complete after the multiline timeout.
    h.wait_for_lines(&["2026/11/21 08:15:32 [warn] last".to_string()]);
    h.wait_for("registry at end", |h| {
        h.registry_exists() && h.registry()["entries"][0]["offset"] == fs::metadata(&a).unwrap().len()
    });
    h.stop();
    assert_eq!(h.messages(), ["2026/11/21 08:15:30 [error] 1#0: boom\n  at detail", "2026/11/21 08:15:32 [warn] last"]);
}

#[test]
fn invalid_utf8_and_nul_bytes_are_shipped() {
    let mut h = Harness::new("*.log", |_| {});
    fs::write(h.path("a.log"), b"ok\r\nbad \xff\xfe bytes\nnul \0 here\n").unwrap();
    h.start();
    h.wait_for("3 events", |h| h.messages().len() == 3);
    h.stop();
    assert_eq!(h.messages(), ["ok", "bad \u{fffd}\u{fffd} bytes", "nul \u{0} here"]);
    assert!(String::from_utf8(h.sink.sent()[2].payload.clone()).unwrap().contains("\\u0000"));
}
