//! The stream of numbered log lines: which file each goes to, its time stamp, and its text.
//!
//! The generator is pure apart from `Clock::Wall`: given a seed and a fixed clock it yields the same
//! lines every time, which is what lets tests predict per-day counts.

use chrono::{DateTime, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::vocabulary::{self, Agent, AGENTS};
use crate::{combined, error_log};

/// Where time stamps come from.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    /// The current time, UTC.
    Wall,
    /// The first line at `start`, each next one `step` later.
    Fixed { start: DateTime<Utc>, step: TimeDelta },
}

/// Which log a line belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `access.log`, nginx `combined` format.
    Access,
    /// `error.log`, nginx error-log format.
    Error,
}

/// One generated line, without its newline.
#[derive(Debug, Clone)]
pub struct Line {
    pub kind: Kind,
    /// 1 for the first line, shared by both logs, so each line of either file is unique.
    pub seq: u64,
    pub time: DateTime<Utc>,
    pub text: String,
}

/// One visitor: an address with the user agent it keeps using, like a real client across requests.
pub(crate) struct Client {
    pub addr: String,
    pub agent: &'static Agent,
}

/// Distinct clients; a few of them send most of the requests (see [`Generator::client`]).
const CLIENTS: usize = 400;

/// nginx worker processes; every error-log line names the worker's pid.
const WORKERS: usize = 4;

/// An endless, numbered stream of nginx access and error lines.
pub struct Generator {
    rng: StdRng,
    clock: Clock,
    /// The next time stamp of a fixed clock; added to step by step, which is exact for `TimeDelta`.
    next_time: Option<DateTime<Utc>>,
    error_ratio: f64,
    next_seq: u64,
    clients: Vec<Client>,
    workers: [u32; WORKERS],
}

impl Generator {
    /// A generator whose choices follow `seed`; `error_ratio` (clamped to 0..=1) of the lines go to
    /// the error log.
    pub fn new(seed: u64, clock: Clock, error_ratio: f64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let clients = (0..CLIENTS)
            .map(|_| {
                let agent = vocabulary::pick_ref(&mut rng, AGENTS);
                Client { addr: vocabulary::address(&mut rng, agent), agent }
            })
            .collect();
        let master = rng.gen_range(900..30_000);
        let workers = std::array::from_fn(|i| master + 1 + i as u32);
        let next_time = match clock {
            Clock::Wall => None,
            Clock::Fixed { start, .. } => Some(start),
        };
        let error_ratio = if error_ratio.is_nan() { 0.0 } else { error_ratio.clamp(0.0, 1.0) };
        Generator { rng, clock, next_time, error_ratio, next_seq: 1, clients, workers }
    }

    /// The sequence number the next line will carry.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Makes the next line.
    pub fn next_line(&mut self) -> Line {
        let seq = self.next_seq;
        self.next_seq += 1;
        let time = match (self.clock, self.next_time) {
            (Clock::Fixed { step, .. }, Some(time)) => {
                self.next_time = time.checked_add_signed(step);
                time
            }
            // A fixed clock that ran past the end of chrono's range stays there.
            (Clock::Fixed { .. }, None) => DateTime::<Utc>::MAX_UTC,
            (Clock::Wall, _) => Utc::now(),
        };
        let kind = if self.rng.gen_bool(self.error_ratio) { Kind::Error } else { Kind::Access };
        let index = self.client_index();
        let client = &self.clients[index];
        let host = vocabulary::pick(&mut self.rng, vocabulary::HOSTS);
        let mut text = String::with_capacity(256);
        match kind {
            Kind::Access => combined::write_line(&mut text, &mut self.rng, client, host, seq, &time),
            Kind::Error => {
                let pid = self.workers[self.rng.gen_range(0..WORKERS)];
                error_log::write_line(&mut text, &mut self.rng, client, host, pid, seq, &time)
            }
        }
        Line { kind, seq, time, text }
    }

    /// A client, skewed so that the first few of the pool send a large share of the requests, as on a
    /// real server (crawlers and office NATs at the top, a long tail of one-off visitors).
    fn client_index(&mut self) -> usize {
        let skew = self.rng.gen::<f64>().powi(3);
        ((skew * CLIENTS as f64) as usize).min(CLIENTS - 1)
    }
}

impl Iterator for Generator {
    type Item = Line;

    fn next(&mut self) -> Option<Line> {
        Some(self.next_line())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(start: &str, step_ms: i64) -> Clock {
        let start = DateTime::parse_from_rfc3339(start).unwrap().with_timezone(&Utc);
        Clock::Fixed { start, step: TimeDelta::milliseconds(step_ms) }
    }

    #[test]
    fn numbers_lines_from_one_across_both_logs() {
        let lines: Vec<Line> = Generator::new(1, Clock::Wall, 0.5).take(1000).collect();
        let seqs: Vec<u64> = lines.iter().map(|line| line.seq).collect();
        assert_eq!(seqs, (1..=1000).collect::<Vec<_>>());
        assert!(lines.iter().any(|line| line.kind == Kind::Access));
        assert!(lines.iter().any(|line| line.kind == Kind::Error));
    }

    #[test]
    fn every_line_is_unique() {
        let mut texts: Vec<String> =
            Generator::new(2, fixed("2026-11-20T00:00:00Z", 0), 0.05).take(50_000).map(|line| line.text).collect();
        texts.sort_unstable();
        texts.dedup();
        assert_eq!(texts.len(), 50_000);
    }

    #[test]
    fn same_seed_same_lines() {
        let clock = fixed("2026-11-20T23:59:00Z", 10);
        let a: Vec<String> = Generator::new(42, clock, 0.05).take(500).map(|l| l.text).collect();
        let b: Vec<String> = Generator::new(42, clock, 0.05).take(500).map(|l| l.text).collect();
        let c: Vec<String> = Generator::new(43, clock, 0.05).take(500).map(|l| l.text).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn fixed_clock_stamps_line_i_at_start_plus_i_steps() {
        let clock = fixed("2026-11-20T23:59:00Z", 10);
        let Clock::Fixed { start, .. } = clock else { unreachable!() };
        for (i, line) in Generator::new(3, clock, 0.05).take(10_000).enumerate() {
            assert_eq!(line.time, start + TimeDelta::milliseconds(10 * i as i64));
        }
    }

    #[test]
    fn error_ratio_is_respected() {
        let count =
            |ratio: f64| Generator::new(4, Clock::Wall, ratio).take(20_000).filter(|l| l.kind == Kind::Error).count();
        assert_eq!(count(0.0), 0);
        assert_eq!(count(1.0), 20_000);
        let share = count(0.05) as f64 / 20_000.0;
        assert!((0.04..0.06).contains(&share), "error share {share}");
    }
}
