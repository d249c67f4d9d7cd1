//! Each consumer group's total lag, sampled every [`INTERVAL`] from the status report and kept for the
//! last hour in memory (720 points a group): no extra storage, gone on restart, as the issue asks.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use logpipe_status::Sources;
use tokio_util::sync::CancellationToken;

pub const INTERVAL: Duration = Duration::from_secs(5);
const KEEP_MS: i64 = 3_600_000;

/// group → (time ms, lag), oldest first.
type Samples = BTreeMap<String, VecDeque<(i64, i64)>>;

#[derive(Clone, Default)]
pub struct LagHistory {
    samples: Arc<Mutex<Samples>>,
}

impl LagHistory {
    /// Samples `sources` every [`INTERVAL`] until `stop`.
    pub fn start(sources: Sources, stop: CancellationToken) -> Self {
        let history = Self::default();
        let writer = history.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(INTERVAL);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.cancelled() => return,
                }
                let report = sources.collect();
                for group in report.groups {
                    writer.record(&group.group_id, report.time_ms, group.lag);
                }
            }
        });
        history
    }

    fn record(&self, group: &str, time_ms: i64, lag: i64) {
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        let points = samples.entry(group.to_owned()).or_default();
        points.push_back((time_ms, lag));
        while points.front().is_some_and(|(t, _)| *t < time_ms - KEEP_MS) {
            points.pop_front();
        }
    }

    /// The samples of one group, oldest first.
    pub fn of(&self, group: &str) -> Vec<(i64, i64)> {
        let samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        samples.get(group).map(|p| p.iter().copied().collect()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_hour() {
        let history = LagHistory::default();
        for minute in 0..90 {
            history.record("g", minute * 60_000, minute);
        }
        let points = history.of("g");
        assert_eq!(points.first(), Some(&(29 * 60_000, 29)), "samples of exactly an hour ago stay");
        assert_eq!(points.last(), Some(&(89 * 60_000, 89)));
        assert!(history.of("other").is_empty());
    }
}
