//! The terminal view of a [`StatusReport`] (`logpipe status`): a header saying what runs and where, the
//! rates in and out, any stalls, then one section per part with aligned columns and sizes in human units.
//! Every line fits [`WIDTH`] columns, the classic terminal; longer names are cut from the left (paths) or
//! the right (reasons), with `…`.

use std::fmt::Write as _;

use crate::rates::Rates;
use crate::report::StatusReport;

/// Columns every line of the view fits in.
pub const WIDTH: usize = 80;

/// Renders `report` as plain text, one screen; `rates` (from the live view) adds throughput and ETAs.
pub fn render(report: &StatusReport, rates: Option<&Rates>) -> String {
    let mut out = String::new();
    header(&mut out, report, rates);
    if !report.stalls.is_empty() {
        let _ = writeln!(out, "STALLED");
        for s in &report.stalls {
            let since = age(report.time_ms - s.since_ms);
            let key = tail(&s.key, 34);
            let reason = head(&s.reason, WIDTH - 2 - 5 - 1 - key.chars().count() - 2 - since.len() - 1);
            let _ = writeln!(out, "  {:<5} {key}: {reason} {since}", s.kind);
        }
        let _ = writeln!(out);
    }
    if !report.files.is_empty() {
        let _ = writeln!(out, "{:<48} {:>10} {:>10} {:>9}", "FILES", "SIZE", "BEHIND", "LINES");
        for f in &report.files {
            let _ = writeln!(
                out,
                "{:<48} {:>10} {:>10} {:>9}",
                tail(&f.path, 48),
                bytes(f.size),
                bytes(f.bytes_behind),
                f.lines_read
            );
        }
        let _ = writeln!(out);
    }
    if !report.topics.is_empty() {
        let _ = writeln!(out, "{:<36} {:>5} {:>10}  END OFFSETS", "TOPICS", "PARTS", "SIZE");
        for t in &report.topics {
            let ends: Vec<String> = t.partitions.iter().map(|p| p.log_end_offset.to_string()).collect();
            let _ = writeln!(
                out,
                "{:<36} {:>5} {:>10}  {}",
                tail(&t.name, 36),
                t.partitions.len(),
                bytes(t.size_bytes),
                head(&ends.join(" "), WIDTH - 55)
            );
        }
        let _ = writeln!(out);
    }
    if !report.groups.is_empty() {
        let _ = writeln!(
            out,
            "{:<26} {:<12} {:>7} {:>11} {:>9} {:>9}",
            "GROUPS", "STATE", "MEMBERS", "LAG", "RATE/s", "ETA"
        );
        for g in &report.groups {
            let pace = rates.and_then(|r| r.groups.get(&g.group_id));
            let _ = writeln!(
                out,
                "{:<26} {:<12} {:>7} {:>11} {:>9} {:>9}",
                tail(&g.group_id, 26),
                head(&g.state, 12),
                g.members,
                g.lag,
                pace.map_or_else(|| "-".to_owned(), |p| rate(p.committed)),
                pace.and_then(|p| p.eta).map_or_else(|| "-".to_owned(), duration),
            );
        }
        for g in &report.groups {
            let risky: Vec<String> =
                g.partitions.iter().filter(|p| p.at_risk).map(|p| format!("{}/{}", p.topic, p.partition)).collect();
            if !risky.is_empty() {
                let _ = writeln!(
                    out,
                    "{}",
                    head(
                        &format!(
                            "! {}: lag at risk on {} (committed offset near the log start; retention may delete \
                             unread records)",
                            g.group_id,
                            risky.join(" ")
                        ),
                        WIDTH
                    )
                );
            }
            if g.records_lost > 0 {
                let _ = writeln!(
                    out,
                    "! {}: {} records deleted by retention before the group consumed them",
                    tail(&g.group_id, 26),
                    g.records_lost
                );
            }
        }
        let _ = writeln!(out);
    }
    if let Some(ix) = &report.indexer {
        let _ = writeln!(out, "{:<42} {:>9} {:>10} {:>15}", "INDICES", "INDEXED", "RETRIED", "DEAD-LETTERED");
        for i in &ix.indices {
            let _ =
                writeln!(out, "{:<42} {:>9} {:>10} {:>15}", tail(&i.index, 42), i.indexed, i.retried, i.dead_lettered);
        }
        let _ = writeln!(
            out,
            "(consumed {} records, {} bulk requests, {} failed)",
            ix.records_consumed, ix.bulk_requests, ix.bulk_failures
        );
        if !ix.hosts.is_empty() {
            let _ = writeln!(out, "\nELASTICSEARCH");
            for h in &ix.hosts {
                let health = if h.healthy {
                    "up".to_string()
                } else {
                    format!("DOWN: {}", h.last_error.as_deref().unwrap_or("?"))
                };
                let _ = writeln!(out, "{:<40} {}", tail(&h.url, 40), head(&health, WIDTH - 41));
            }
        }
    }
    if report.files.is_empty() && report.topics.is_empty() && report.groups.is_empty() && report.indexer.is_none() {
        out.push_str("nothing running reports status\n");
    }
    fit(&out)
}

/// What runs and where, then the rates in and out.
fn header(out: &mut String, report: &StatusReport, rates: Option<&Rates>) {
    let about = &report.about;
    if about.version.is_empty() && about.parts.is_empty() {
        return;
    }
    let mut first = format!("logpipe {}", about.version);
    if let Some(admin) = &about.admin {
        let _ = write!(first, "  admin {admin}");
    }
    let _ = writeln!(out, "{first}");
    if let Some(pipeline) = &about.pipeline {
        let _ = writeln!(out, "pipeline {}", tail(pipeline, WIDTH - 9));
    }
    for part in &about.parts {
        let _ = writeln!(out, "  {:<8} {}", part.part, head(&part.detail, WIDTH - 11));
    }
    if let Some(rates) = rates {
        let mut line = String::new();
        if !report.files.is_empty() {
            let _ = write!(line, "in {} lines/s", rates.lines_in.map_or_else(|| "-".to_owned(), rate));
            if let Some(eta) = rates.agent_eta {
                let _ = write!(line, " (files behind, ETA {})", duration(eta));
            }
        }
        if report.indexer.is_some() {
            if !line.is_empty() {
                line.push_str("   ");
            }
            let _ = write!(line, "out {} documents/s", rates.docs_out.map_or_else(|| "-".to_owned(), rate));
        }
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out);
}

/// Cuts every line to [`WIDTH`] columns (a last guard: the sections above are laid out to fit).
fn fit(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        out.push_str(&head(line, WIDTH));
        out.push('\n');
    }
    out
}

/// The first `width` characters of `s`, ending in `…` when cut.
fn head(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let mut cut: String = s.chars().take(width.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// A rate per second: whole numbers from 10 up, one decimal below.
fn rate(per_second: f64) -> String {
    if per_second >= 10.0 {
        format!("{per_second:.0}")
    } else {
        format!("{per_second:.1}")
    }
}

/// Seconds as `42s`, `3m07s`, `2h05m` or `3d04h`.
fn duration(seconds: f64) -> String {
    let s = seconds.ceil() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// How long ago, from milliseconds.
fn age(ms: i64) -> String {
    duration((ms.max(0) / 1000) as f64)
}

fn tail(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n <= width {
        s.to_string()
    } else {
        format!("…{}", s.chars().skip(n - width + 1).collect::<String>())
    }
}

pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::about::{About, PartAbout};
    use crate::report::*;

    #[test]
    fn renders_every_section() {
        let report = StatusReport {
            time_ms: 600_000,
            about: About {
                version: "0.1.0 (git 1234567)".into(),
                pipeline: Some("/etc/logpipe/nginx.toml".into()),
                admin: Some("127.0.0.1:9600".into()),
                parts: vec![PartAbout { part: "broker".into(), detail: "listening on 127.0.0.1:9092".into() }],
            },
            stalls: vec![StallReport {
                kind: "topic".into(),
                key: "nginx-missing".into(),
                reason: "does not exist (auto-create off)".into(),
                since_ms: 600_000 - 125_000,
            }],
            files: vec![FileReport {
                path: "/var/log/nginx/access.log".into(),
                open: true,
                size: 2048,
                acked_offset: 1024,
                bytes_behind: 1024,
                lines_read: 10,
                events_acked: 5,
                rotations: 0,
            }],
            topics: vec![TopicReport {
                name: "nginx".into(),
                size_bytes: 3 << 20,
                partitions: vec![PartitionReport {
                    partition: 0,
                    log_start_offset: 0,
                    log_end_offset: 42,
                    size_bytes: 3 << 20,
                }],
            }],
            groups: vec![GroupReport {
                group_id: "logpipe-indexer".into(),
                state: "Stable".into(),
                members: 1,
                lag: 7,
                records_lost: 0,
                partitions: vec![],
            }],
            indexer: Some(IndexerReport {
                records_consumed: 35,
                records_dropped: 0,
                bulk_requests: 3,
                bulk_failures: 1,
                indices: vec![IndexReport {
                    index: "nginx_access-2026.11.21".into(),
                    indexed: 34,
                    retried: 2,
                    dead_lettered: 1,
                }],
                hosts: vec![HostReport {
                    url: "http://127.0.0.1:9200".into(),
                    healthy: false,
                    last_error: Some("HTTP 503".into()),
                }],
            }),
        };
        let mut rates = crate::rates::Rates { lines_in: Some(1234.4), docs_out: Some(2.25), ..Default::default() };
        rates.groups.insert("logpipe-indexer".into(), crate::rates::GroupRate { committed: 50.0, eta: Some(187.0) });
        let text = render(&report, Some(&rates));
        for want in [
            "logpipe 0.1.0 (git 1234567)  admin 127.0.0.1:9600",
            "pipeline /etc/logpipe/nginx.toml",
            "broker   listening on 127.0.0.1:9092",
            "in 1234 lines/s",
            "out 2.2 documents/s",
            "STALLED",
            "topic nginx-missing: does not exist (auto-create off) 2m05s",
            "3m07s",
            "access.log",
            "1.0 KiB",
            "nginx",
            "3.0 MiB",
            "42",
            "logpipe-indexer",
            "Stable",
            "nginx_access-2026.11.21",
            "DOWN: HTTP 503",
        ] {
            assert!(text.contains(want), "{want} missing from\n{text}");
        }
        assert_eq!(render(&StatusReport::default(), None), "nothing running reports status\n");
    }

    #[test]
    fn every_line_fits_80_columns() {
        let long = "x".repeat(200);
        let report = StatusReport {
            time_ms: 0,
            about: About {
                version: long.clone(),
                pipeline: Some(long.clone()),
                admin: Some(long.clone()),
                parts: vec![PartAbout { part: "agent".into(), detail: long.clone() }],
            },
            stalls: vec![StallReport { kind: "glob".into(), key: long.clone(), reason: long.clone(), since_ms: 0 }],
            files: vec![FileReport {
                path: long.clone(),
                open: true,
                size: u64::MAX,
                acked_offset: 0,
                bytes_behind: u64::MAX,
                lines_read: u64::MAX,
                events_acked: 0,
                rotations: 0,
            }],
            topics: vec![TopicReport {
                name: long.clone(),
                size_bytes: u64::MAX,
                partitions: (0..50)
                    .map(|p| PartitionReport {
                        partition: p,
                        log_start_offset: 0,
                        log_end_offset: i64::MAX,
                        size_bytes: 0,
                    })
                    .collect(),
            }],
            groups: vec![GroupReport {
                group_id: long.clone(),
                state: long.clone(),
                members: usize::MAX,
                lag: i64::MAX,
                records_lost: 0,
                partitions: vec![],
            }],
            indexer: Some(IndexerReport {
                records_consumed: u64::MAX,
                records_dropped: 0,
                bulk_requests: u64::MAX,
                bulk_failures: u64::MAX,
                indices: vec![IndexReport {
                    index: long.clone(),
                    indexed: u64::MAX,
                    retried: u64::MAX,
                    dead_lettered: u64::MAX,
                }],
                hosts: vec![HostReport { url: long.clone(), healthy: false, last_error: Some(long.clone()) }],
            }),
        };
        let mut rates = crate::rates::Rates {
            lines_in: Some(1e12),
            docs_out: Some(1e12),
            agent_eta: Some(1e12),
            ..Default::default()
        };
        rates.groups.insert(long.clone(), crate::rates::GroupRate { committed: 1e12, eta: Some(1e12) });
        for line in render(&report, Some(&rates)).lines() {
            assert!(line.chars().count() <= WIDTH, "{} columns: {line}", line.chars().count());
        }
    }

    #[test]
    fn durations_read_like_a_clock() {
        assert_eq!(duration(0.2), "1s");
        assert_eq!(duration(59.0), "59s");
        assert_eq!(duration(187.0), "3m07s");
        assert_eq!(duration(7500.0), "2h05m");
        assert_eq!(duration(273_600.0), "3d04h");
    }
}
