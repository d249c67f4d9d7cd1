//! File-system events (inotify through `notify`): with `scan_frequency` at an hour, only an event can
//! make the tailer find a new file, a rotated one, or a closed file that grew again before the deadline.
//! Polling alone is covered by the rest of the suite and by the model test's polling-only run.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use common::*;
use logpipe_agent::identity::FileIdentity;

fn events_harness(pattern: &str) -> Option<Harness> {
    if !std::path::Path::new("/proc/sys/fs/inotify").exists() {
        eprintln!("no inotify on this system: skipped");
        return None;
    }
    Some(Harness::new(pattern, |i| i.scan_frequency = Duration::from_secs(3600)))
}

#[test]
fn new_and_rotated_files_are_found_between_scans() {
    let Some(mut h) = events_harness("app.log*") else { return };
    h.start();
    // The first scan (at start) found nothing; the next is an hour away.
    let a = h.path("app.log");
    let first = lines("first", 0..50);
    append(&a, &first);
    h.wait_for_lines(&first);
    // Rename rotation and a new file under the old name.
    fs::rename(&a, h.path("app.log.1")).unwrap();
    let second = lines("second", 0..50);
    append(&a, &second);
    h.wait_for_lines(&second);
    h.stop();
    assert_exactly_once(&h, &[first, second].concat());
}

#[test]
fn a_closed_file_that_grows_again_is_reopened_between_scans() {
    let Some(mut h) = events_harness("*.log") else { return };
    let a = h.path("a.log");
    let first = lines("a", 0..20);
    append(&a, &first);
    h.start();
    h.wait_for_lines(&first);
    // close_inactive is 300 ms: the file is closed, and only a scan opens it again.
    h.wait_for("a.log to be closed as idle", |h| h.files().iter().any(|f| f.path == a && !f.open));
    let more = lines("more", 0..20);
    append(&a, &more);
    h.wait_for_lines(&more);
    h.stop();
    assert_exactly_once(&h, &[first, more].concat());
}

#[test]
fn files_in_subdirectories_of_a_double_star_glob_are_found_between_scans() {
    let Some(mut h) = events_harness("**/*.log") else { return };
    fs::create_dir_all(h.path("x")).unwrap();
    h.start();
    let l = lines("nested", 0..10);
    append(&h.path("x/app.log"), &l);
    h.wait_for_lines(&l);
    // A directory tree that appears after the start (moved in whole, so its file is there before any
    // watch on it could be: only the event for the directory itself can tell).
    let outside = tempfile::tempdir().unwrap();
    fs::create_dir_all(outside.path().join("y/z")).unwrap();
    let m = lines("deeper", 0..10);
    append(&outside.path().join("y/z/app.log"), &m);
    fs::rename(outside.path().join("y"), h.path("y")).unwrap();
    h.wait_for_lines(&m);
    h.stop();
    assert_exactly_once(&h, &[l, m].concat());
}

#[test]
fn a_rotated_in_file_seen_empty_is_read_when_written() {
    let Some(mut h) = events_harness("app.log*") else { return };
    let a = h.path("app.log");
    let first = lines("first", 0..50);
    append(&a, &first);
    h.start();
    h.wait_for_lines(&first);
    fs::rename(&a, h.path("app.log.1")).unwrap();
    // logrotate's `create`: the new file exists, empty, before the application writes to it. Empty, it
    // might be a copy that has not started (its bytes agree with any file's), so it is not read yet.
    fs::File::create(&a).unwrap();
    let meta = fs::metadata(&a).unwrap();
    let new = FileIdentity::DevInode { dev: meta.dev(), ino: meta.ino() };
    h.wait_for("the empty app.log to be found", |h| h.files().iter().any(|f| f.identity == new));
    let second = lines("second", 0..3);
    append(&a, &second);
    h.wait_for_lines(&second);
    h.stop();
    assert_exactly_once(&h, &[first, second].concat());
}
