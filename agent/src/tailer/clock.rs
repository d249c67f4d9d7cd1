//! Time as the tailer sees it. Every decision that depends on time — scan intervals, `close_inactive`,
//! settling an unfinished copy, multiline timeouts, checkpoint and report intervals, `clean_removed` —
//! takes its `now` from a [`Clock`] handed to the tailer, as the broker's group state takes `now_ms`.
//! [`SystemClock`] is the real one; [`ManualClock`] only moves when a test moves it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of the current time: monotonic for intervals, wall-clock for what is recorded (the
/// registry's `last_seen_ms`, the envelope's `@timestamp`).
pub trait Clock: Send + 'static {
    /// Monotonic time, for every interval and timeout.
    fn now(&self) -> Instant;
    /// Wall-clock time in milliseconds since the Unix epoch.
    fn unix_ms(&self) -> i64;
}

/// The operating system's clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn unix_ms(&self) -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
    }
}

/// A clock that stands still until [`ManualClock::advance`] moves it. Clones share one time, so a test
/// keeps a clone to move the clock of a tailer it handed the other one to.
#[derive(Debug, Clone)]
pub struct ManualClock {
    elapsed: Arc<Mutex<Duration>>,
    start: Instant,
    start_unix_ms: i64,
}

impl ManualClock {
    /// A clock at the system's current time, which from then on moves only when advanced.
    pub fn new() -> Self {
        Self { elapsed: Arc::default(), start: SystemClock.now(), start_unix_ms: SystemClock.unix_ms() }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        *self.elapsed.lock().unwrap_or_else(PoisonError::into_inner) += by;
    }

    fn elapsed(&self) -> Duration {
        *self.elapsed.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + self.elapsed()
    }

    fn unix_ms(&self) -> i64 {
        self.start_unix_ms + self.elapsed().as_millis() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_clones_share_it() {
        let clock = ManualClock::new();
        let (t0, ms0) = (clock.now(), clock.unix_ms());
        assert_eq!(clock.now(), t0);
        let other = clock.clone();
        other.advance(Duration::from_millis(1500));
        assert_eq!(clock.now(), t0 + Duration::from_millis(1500));
        assert_eq!(clock.unix_ms(), ms0 + 1500);
    }
}
