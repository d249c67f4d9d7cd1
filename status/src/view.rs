//! The terminal view of a [`StatusReport`] (`logpipe status`): one section per part, aligned columns,
//! sizes in human units.

use std::fmt::Write as _;

use crate::report::StatusReport;

/// Renders `report` as plain text, one screen.
pub fn render(report: &StatusReport) -> String {
    let mut out = String::new();
    if !report.files.is_empty() {
        let _ = writeln!(out, "FILES                                                        SIZE    BEHIND     LINES");
        for f in &report.files {
            let _ = writeln!(
                out,
                "{:<56} {:>9} {:>9} {:>9}",
                tail(&f.path, 56),
                bytes(f.size),
                bytes(f.bytes_behind),
                f.lines_read
            );
        }
        let _ = writeln!(out);
    }
    if !report.topics.is_empty() {
        let _ = writeln!(out, "TOPICS                          PARTITIONS       SIZE   END OFFSETS");
        for t in &report.topics {
            let ends: Vec<String> = t.partitions.iter().map(|p| p.log_end_offset.to_string()).collect();
            let _ = writeln!(
                out,
                "{:<32} {:>9} {:>10}   {}",
                t.name,
                t.partitions.len(),
                bytes(t.size_bytes),
                ends.join(" ")
            );
        }
        let _ = writeln!(out);
    }
    if !report.groups.is_empty() {
        let _ = writeln!(out, "GROUPS                          STATE                 MEMBERS        LAG");
        for g in &report.groups {
            let _ = writeln!(out, "{:<32} {:<20} {:>8} {:>10}", g.group_id, g.state, g.members, g.lag);
        }
        let _ = writeln!(out);
    }
    if let Some(ix) = &report.indexer {
        let _ = writeln!(out, "INDICES                                  INDEXED    RETRIED  DEAD-LETTERED");
        for i in &ix.indices {
            let _ = writeln!(out, "{:<40} {:>8} {:>10} {:>14}", i.index, i.indexed, i.retried, i.dead_lettered);
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
                let _ = writeln!(out, "{:<40} {health}", h.url);
            }
        }
    }
    if out.is_empty() {
        out.push_str("nothing running reports status\n");
    }
    out
}

fn tail(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n <= width {
        s.to_string()
    } else {
        format!("…{}", s.chars().skip(n - width + 1).collect::<String>())
    }
}

fn bytes(n: u64) -> String {
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

/// `logpipe status`: prints the report of the appliance at `address` every second (clearing the screen
/// between), or once with `once`.
pub async fn watch(address: &str, once: bool) -> anyhow::Result<()> {
    loop {
        let report = crate::client::fetch(address).await?;
        if once {
            print!("{}", render(&report));
            return Ok(());
        }
        print!("\x1b[2J\x1b[H{}", render(&report));
        use std::io::Write;
        std::io::stdout().flush()?;
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::*;

    #[test]
    fn renders_every_section() {
        let report = StatusReport {
            time_ms: 0,
            files: vec![FileReport {
                path: "/var/log/nginx/access.log".into(),
                open: true,
                size: 2048,
                acked_offset: 1024,
                bytes_behind: 1024,
                lines_read: 10,
                events_acked: 5,
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
        let text = render(&report);
        for want in [
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
        assert_eq!(render(&StatusReport::default()), "nothing running reports status\n");
    }
}
