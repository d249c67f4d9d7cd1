//! Rates between successive [`StatusReport`]s, for the live view: lines per second the agent reads,
//! documents per second the indexer indexes, records per second each group commits, and how long a group
//! (or the agent) needs to catch up at the pace its backlog is shrinking.
//!
//! A report carries counters, not rates, so the view keeps the previous report and divides the change by
//! the time between the two. Each rate is smoothed (exponentially, over a few samples) so that one slow
//! bulk request does not make the ETA jump around.

use std::collections::BTreeMap;

use crate::report::StatusReport;

/// Weight of the newest sample in a smoothed rate.
const SMOOTHING: f64 = 0.5;

/// What the view shows beside the counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rates {
    /// Lines per second read from the agent's files; `None` without an agent or before two reports.
    pub lines_in: Option<f64>,
    /// Documents per second indexed; `None` without an indexer or before two reports.
    pub docs_out: Option<f64>,
    /// Seconds until the agent has sent everything written to its files so far, at the pace its backlog
    /// shrinks; `None` when nothing is behind or the backlog is not shrinking.
    pub agent_eta: Option<f64>,
    /// Per group id.
    pub groups: BTreeMap<String, GroupRate>,
}

/// One consumer group's pace.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GroupRate {
    /// Records per second the group commits.
    pub committed: f64,
    /// Seconds until its lag is gone at the pace the lag shrinks (lag / drain rate); `None` while there
    /// is no lag or the lag is not shrinking.
    pub eta: Option<f64>,
}

/// Keeps the previous report and the smoothed rates.
#[derive(Debug, Default)]
pub struct Tracker {
    previous: Option<StatusReport>,
    lines_in: Smoothed,
    docs_out: Smoothed,
    agent_drain: Smoothed,
    groups: BTreeMap<String, (Smoothed, Smoothed)>,
}

/// An exponentially smoothed rate; empty until the first sample.
#[derive(Debug, Default, Clone, Copy)]
struct Smoothed(Option<f64>);

impl Smoothed {
    fn add(&mut self, sample: f64) -> f64 {
        let value = match self.0 {
            Some(old) => old + SMOOTHING * (sample - old),
            None => sample,
        };
        self.0 = Some(value);
        value
    }
}

/// Seconds to clear `backlog` when it shrinks by `drain` per second.
fn eta(backlog: f64, drain: f64) -> Option<f64> {
    (backlog > 0.0 && drain > 0.0).then(|| backlog / drain)
}

fn lines_read(r: &StatusReport) -> u64 {
    r.files.iter().map(|f| f.lines_read).sum()
}

fn documents_indexed(r: &StatusReport) -> Option<u64> {
    r.indexer.as_ref().map(|ix| ix.indices.iter().map(|i| i.indexed).sum())
}

fn bytes_behind(r: &StatusReport) -> u64 {
    r.files.iter().map(|f| f.bytes_behind).sum()
}

impl Tracker {
    /// Takes the newest report and returns the rates since the previous one.
    pub fn update(&mut self, report: &StatusReport) -> Rates {
        let mut rates = Rates::default();
        let Some(previous) = self.previous.replace(report.clone()) else { return rates };
        let seconds = (report.time_ms - previous.time_ms) as f64 / 1000.0;
        if seconds <= 0.0 {
            self.previous = Some(previous);
            return rates;
        }
        let per_second = |now: u64, before: u64| now.saturating_sub(before) as f64 / seconds;

        if !report.files.is_empty() {
            rates.lines_in = Some(self.lines_in.add(per_second(lines_read(report), lines_read(&previous))));
            let (now, before) = (bytes_behind(report) as f64, bytes_behind(&previous) as f64);
            let drain = self.agent_drain.add((before - now) / seconds);
            rates.agent_eta = eta(now, drain);
        }
        if let (Some(now), Some(before)) = (documents_indexed(report), documents_indexed(&previous)) {
            rates.docs_out = Some(self.docs_out.add(per_second(now, before)));
        }
        for group in &report.groups {
            let Some(old) = previous.groups.iter().find(|g| g.group_id == group.group_id) else { continue };
            let committed =
                |g: &crate::report::GroupReport| g.partitions.iter().map(|p| p.committed.max(0)).sum::<i64>();
            let (commit_rate, drain) = self.groups.entry(group.group_id.clone()).or_default();
            let committed = commit_rate.add((committed(group) - committed(old)).max(0) as f64 / seconds);
            let drain = drain.add((old.lag - group.lag) as f64 / seconds);
            rates.groups.insert(group.group_id.clone(), GroupRate { committed, eta: eta(group.lag as f64, drain) });
        }
        self.groups.retain(|id, _| report.groups.iter().any(|g| &g.group_id == id));
        rates
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{FileReport, GroupPartitionReport, GroupReport, IndexReport, IndexerReport};

    fn report(time_ms: i64, lines: u64, behind: u64, indexed: u64, committed: i64, lag: i64) -> StatusReport {
        StatusReport {
            time_ms,
            files: vec![FileReport {
                path: "/var/log/app.log".into(),
                open: true,
                size: 0,
                acked_offset: 0,
                bytes_behind: behind,
                lines_read: lines,
                events_acked: 0,
                rotations: 0,
            }],
            groups: vec![GroupReport {
                group_id: "g".into(),
                state: "Stable".into(),
                members: 1,
                lag,
                records_lost: 0,
                partitions: vec![GroupPartitionReport {
                    topic: "t".into(),
                    partition: 0,
                    committed,
                    log_end_offset: committed + lag,
                    lag,
                    log_start_offset: 0,
                    at_risk: false,
                }],
            }],
            indexer: Some(IndexerReport {
                records_consumed: 0,
                records_dropped: 0,
                bulk_requests: 0,
                bulk_failures: 0,
                indices: vec![IndexReport { index: "i".into(), indexed, retried: 0, dead_lettered: 0 }],
                hosts: vec![],
            }),
            ..StatusReport::default()
        }
    }

    #[test]
    fn first_report_has_no_rates() {
        assert_eq!(Tracker::default().update(&report(0, 10, 0, 0, 0, 0)), Rates::default());
    }

    #[test]
    fn rates_are_changes_per_second_and_eta_is_lag_over_drain() {
        let mut t = Tracker::default();
        t.update(&report(0, 0, 2000, 0, 0, 1000));
        let r = t.update(&report(2000, 400, 1000, 300, 200, 800));
        assert_eq!(r.lines_in, Some(200.0));
        assert_eq!(r.docs_out, Some(150.0));
        let g = r.groups["g"];
        assert_eq!(g.committed, 100.0);
        // The lag fell by 100/s, 800 are left.
        assert_eq!(g.eta, Some(8.0));
        // The files' backlog fell by 500 B/s, 1000 B are left.
        assert_eq!(r.agent_eta, Some(2.0));
    }

    #[test]
    fn no_eta_when_caught_up_or_falling_behind() {
        let mut t = Tracker::default();
        t.update(&report(0, 0, 0, 0, 0, 100));
        let growing = t.update(&report(1000, 0, 0, 0, 0, 200));
        assert_eq!(growing.groups["g"].eta, None);
        let mut t = Tracker::default();
        t.update(&report(0, 0, 0, 0, 0, 100));
        let done = t.update(&report(1000, 0, 0, 0, 100, 0));
        assert_eq!(done.groups["g"].eta, None);
        assert_eq!(done.agent_eta, None);
    }

    #[test]
    fn rates_are_smoothed() {
        let mut t = Tracker::default();
        t.update(&report(0, 0, 0, 0, 0, 0));
        assert_eq!(t.update(&report(1000, 100, 0, 0, 0, 0)).lines_in, Some(100.0));
        assert_eq!(t.update(&report(2000, 100, 0, 0, 0, 0)).lines_in, Some(50.0));
    }
}
