//! Model-based test: random sequences of write / rename rotation / copytruncate / delete / clean stop /
//! crash against a model of what must arrive (vector `file_watcher/tests/`).
//!
//! The model: every line written must arrive (at least once). Every copy of a line carries the same
//! `event.id`. Duplicates are allowed only after a crash (unacknowledged events are resent) or a
//! copytruncate of a file whose first KiB the tailer had not read yet (it knew the file by device+inode,
//! so the copy is a new identity whose bytes are read again, with the same ids). Known gap: matching
//! such a copy to the truncated file by its head prefix would remove those duplicates too. Lines written between a copy and a truncate would be lost; the ops
//! here run one at a time, so that window is empty and nothing may be lost.

mod common;

use std::collections::HashMap;
use std::fs;

use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn rotated(h: &Harness, n: usize) -> std::path::PathBuf {
    h.path(&format!("app.log.{n}"))
}

/// logrotate's shift: app.log.3 → app.log.4, …, app.log.1 → app.log.2. Nothing is overwritten (that
/// would be a delete of a file possibly never read; deletes are their own op).
fn shift(h: &Harness) {
    let last = (1..).take_while(|n| rotated(h, *n).exists()).last().unwrap_or(0);
    for n in (1..=last).rev() {
        if rotated(h, n).exists() {
            fs::rename(rotated(h, n), rotated(h, n + 1)).unwrap();
        }
    }
}

fn run_model(seed: u64, fs_events: bool) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut h = Harness::new("app.log*", |_| {});
    h.config.fs_events = fs_events;
    let log = h.path("app.log");
    let mut written: Vec<String> = Vec::new();
    let mut running = false;
    let mut dups_allowed = false;
    let mut trace = vec![format!("fs_events={fs_events}")];
    for step in 0..30 {
        let op = rng.gen_range(0..100);
        match op {
            0..=44 => {
                let n = rng.gen_range(1..40);
                let new: Vec<String> =
                    (0..n).map(|i| format!("s{seed} w{step} l{i} {}", "p".repeat(rng.gen_range(0..60)))).collect();
                append(&log, &new);
                written.extend(new);
                trace.push(format!("write {n}"));
            }
            45..=59 => {
                if log.exists() {
                    shift(&h);
                    fs::rename(&log, rotated(&h, 1)).unwrap();
                    trace.push("rename-rotate".into());
                }
            }
            60..=69 => {
                if log.exists() {
                    shift(&h);
                    // If the tailer had not yet read the first KiB, it knew the file by device+inode only;
                    // the copy is then a new identity and is read from 0 (same event ids). See the module doc.
                    dups_allowed = true;
                    fs::copy(&log, rotated(&h, 1)).unwrap();
                    fs::OpenOptions::new().write(true).open(&log).unwrap().set_len(0).unwrap();
                    trace.push("copytruncate".into());
                }
            }
            70..=77 => {
                // Delete the oldest rotated file, once everything written so far was received (deleting
                // a file nobody read yet loses it by definition).
                if running {
                    if let Some(n) = (1..).take_while(|n| rotated(&h, *n).exists()).last() {
                        h.wait_for_lines(&written);
                        fs::remove_file(rotated(&h, n)).unwrap();
                        trace.push(format!("delete .{n}"));
                    }
                }
            }
            78..=89 => {
                if running {
                    h.stop();
                    trace.push("stop".into());
                } else {
                    h.start();
                    trace.push("start".into());
                }
                running = !running;
            }
            _ => {
                if running {
                    h.crash();
                    dups_allowed = true;
                    running = false;
                    trace.push("crash".into());
                } else {
                    h.start();
                    running = true;
                    trace.push("start".into());
                }
            }
        }
    }
    if !running {
        h.start();
    }
    poll_until("every written line", DEADLINE, || {
        let got: std::collections::HashSet<String> = h.messages().into_iter().collect();
        let missing: Vec<&String> = written.iter().filter(|l| !got.contains(*l)).collect();
        holds(missing.is_empty(), || {
            format!(
                "seed {seed}: {} lines never arrived, e.g. {:?}; ops {trace:?}",
                missing.len(),
                &missing[..missing.len().min(3)]
            )
        })
    });
    h.stop();

    let mut ids: HashMap<String, String> = HashMap::new();
    let mut where_: HashMap<String, String> = HashMap::new();
    for (e, sent) in h.events().iter().zip(h.sink.sent()) {
        let msg = e["message"].as_str().unwrap().to_string();
        let id = e["event"]["id"].as_str().unwrap().to_string();
        let here = format!("{} @{} source {}", e["log"]["file"]["path"], e["log"]["offset"], sent.ack.source);
        let first = where_.insert(msg.clone(), here.clone());
        if let Some(prev) = ids.insert(msg.clone(), id.clone()) {
            assert!(
                dups_allowed,
                "seed {seed}: duplicate {msg:?} without a crash ({first:?}, then {here}); ops {trace:?}"
            );
            assert_eq!(prev, id, "seed {seed}: copies of {msg:?} must share event.id; ops {trace:?}");
        }
    }
    let written_set: std::collections::HashSet<&String> = written.iter().collect();
    let extra: Vec<&String> = ids.keys().filter(|m| !written_set.contains(m)).collect();
    assert!(extra.is_empty(), "seed {seed}: messages that were never written arrived: {extra:?}; ops {trace:?}");
}

fn run_models(fs_events: bool) {
    // MODEL_SEED=n replays one sequence; MODEL_SEEDS=n runs seeds 0..n.
    if let Some(seed) = std::env::var("MODEL_SEED").ok().and_then(|s| s.parse().ok()) {
        let _ = tracing_subscriber::fmt().with_env_filter("logpipe_agent=debug").with_test_writer().try_init();
        return run_model(seed, fs_events);
    }
    let seeds: u64 = std::env::var("MODEL_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(12);
    for seed in 0..seeds {
        run_model(seed, fs_events);
    }
}

#[test]
fn random_rotation_truncation_delete_restart_sequences() {
    run_models(true);
}

/// The same with file-system events off: polling alone must be correct.
#[test]
fn random_rotation_truncation_delete_restart_sequences_polling_only() {
    run_models(false);
}
